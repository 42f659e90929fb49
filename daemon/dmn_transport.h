/* Transports: where requests come from and where their replies go. I/O thread only.
 *
 * The server polls every transport's items in one zmq_poll (ZeroMQ sockets or plain file
 * descriptors), hands each transport its items back once they are ready, and the
 * transport reads what arrived and passes each request payload to dmn_server_submit()
 * with a route naming itself (route.transport = its index). Replies go back through the
 * transport named by the route. The request that travels through the queue holds that
 * route (bytes it owns) and nothing of the transport: no ZeroMQ frame, no socket.
 *
 * A transport is one file: daemon/dmn_zmq.c has the ROUTER and the PULL/PUSH pipeline. A
 * new one (HTTP, a Redis stream) implements these five operations and is added in
 * dmn_server.c's open_transports(). */
#ifndef NLP_DMN_TRANSPORT_H
#define NLP_DMN_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "daemon/dmn_route.h"

#define DMN_MAX_TRANSPORTS 4
#define DMN_MAX_POLL_ITEMS 4 /* per transport */

struct dmn_server;
typedef struct dmn_transport dmn_transport;

typedef struct dmn_transport_ops {
    const char *name;
    /* Fills up to DMN_MAX_POLL_ITEMS items for this round; returns how many. `pull`: 0
     * when the daemon cannot queue more work now (queue full, stopping): a transport
     * that pulls work (a pipeline, a queue) stops reading until it is 1 again; one that
     * serves clients reads anyway and lets the server answer OVERLOADED. */
    int (*poll_items)(dmn_transport *t, zmq_pollitem_t *items, int pull);
    /* The same items with revents set: read what is ready. */
    void (*on_ready)(dmn_transport *t, const zmq_pollitem_t *items, int n);
    /* Sends a packed response (ownership of buf moves here) to a route of this
     * transport. Never blocks; a reply that cannot go is dropped and logged. */
    void (*reply)(dmn_transport *t, const dmn_route *to, void *buf, size_t len, uint64_t seq,
                  uint64_t id);
    /* Closes its sockets (before the ZeroMQ context ends: replies then flush). */
    void (*close)(dmn_transport *t);
    /* Frees it (after the context ended: libzmq released every reply). NULLs *t. */
    void (*destroy)(dmn_transport **t);
} dmn_transport_ops;

struct dmn_transport {
    const dmn_transport_ops *ops;
    struct dmn_server *srv;
    int index; /* its number in routes */
};

/* The ZeroMQ transports (dmn_zmq.c). NULL with the reason in err. */
dmn_transport *dmn_zmq_router_new(struct dmn_server *srv, int index, char *err, size_t errlen);
dmn_transport *dmn_zmq_pipeline_new(struct dmn_server *srv, int index, char *err, size_t errlen);

/* Called by transports (dmn_server.c). */
/* One request payload that came with `to` (consumed: moved into the queued request, or
 * cleared once answered). */
void dmn_server_submit(struct dmn_server *srv, dmn_route *to, const void *data, size_t len);
/* Answers a message the transport could not take as a request (too many frames, ...)
 * with `code` and `msg`; counts it as a request. */
void dmn_server_reject(struct dmn_server *srv, const dmn_route *to, int code, const char *msg);

#endif
