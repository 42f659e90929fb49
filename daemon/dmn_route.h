/* Where a reply goes (dmn_route), and how many reply bytes wait unread on each
 * connection (dmn_backlog). Run by the I/O thread, except dmn_backlog_release, which
 * libzmq calls from its own threads and which touches only one peer's atomics.
 *
 * A request keeps its routing frames (a DEALER's identity; a REQ's identity and empty
 * delimiter; the identities a broker chain added) as bytes it owns, bounded by
 * limits.max_envelope_bytes and DMN_MAX_ENV frames: nothing a client sends before its
 * payload stays pinned in memory beyond that while the request is queued.
 *
 * Unread replies: libzmq queues a reply until the peer reads it (up to SNDHWM messages),
 * so a client that never reads would grow the daemon without bound. Every reply body is
 * handed to libzmq zero-copy with dmn_backlog_release as its free function; libzmq calls
 * it once the bytes are written to the connection (or dropped with it), so a peer's
 * count is exactly what libzmq still holds for it. A reply that would take a peer past
 * the cap is dropped instead (the caller counts it); the daemon and the other peers go
 * on. */
#ifndef NLP_DMN_ROUTE_H
#define NLP_DMN_ROUTE_H

#include <stddef.h>
#include <stdint.h>

/* Routing frames kept from receipt to reply. */
#define DMN_MAX_ENV 8

typedef struct dmn_route {
    int transport;                 /* the transport that answers (dmn_transport.h) */
    int n_env;                     /* routing frames sent before the reply */
    uint16_t env_len[DMN_MAX_ENV]; /* each frame's bytes */
    unsigned char *env;            /* the frames back to back; owned; NULL when empty */
} dmn_route;

/* Copies n frames (data[i], len[i]) into r, replacing what it held. 0, or -1 when n >
 * DMN_MAX_ENV, a frame is over 65535 bytes, or memory runs out (r is then empty). */
int dmn_route_set(dmn_route *r, int transport, const void *const *data, const size_t *len, int n);
/* Frees the frames; r is an empty route to the same transport afterwards. */
void dmn_route_clear(dmn_route *r);
/* Total bytes of the frames. */
size_t dmn_route_bytes(const dmn_route *r);
/* Frame i's bytes. */
const unsigned char *dmn_route_frame(const dmn_route *r, int i);

typedef struct dmn_backlog dmn_backlog;

/* cap: bytes of unread replies allowed per peer. NULL on allocation failure. */
dmn_backlog *dmn_backlog_new(size_t cap);
/* Only once libzmq released every message (after zmq_ctx_term). */
void dmn_backlog_free(dmn_backlog **b);

/* Reserves len bytes (a reply and its routing frames) on the peer named by key (a ROUTER peer's routing id; the empty key
 * for a PUSH socket's readers). Returns the hint to give zmq_msg_init_data with
 * dmn_backlog_release, or NULL when the peer's unread replies would pass the cap (or
 * memory runs out): the reply is to be dropped. */
void *dmn_backlog_reserve(dmn_backlog *b, const void *key, size_t keylen, size_t len);
/* zmq_free_fn: frees data and gives the reservation back. Any thread. */
void dmn_backlog_release(void *data, void *hint);
/* Frees the entries of peers with nothing outstanding. */
void dmn_backlog_sweep(dmn_backlog *b);
/* Peers with an entry; bytes outstanding on key (tests, stats). */
int dmn_backlog_peers(const dmn_backlog *b);
size_t dmn_backlog_bytes(const dmn_backlog *b, const void *key, size_t keylen);

#endif
