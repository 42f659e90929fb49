/* Queue mode: the Redis Streams transport (dmn_redis.c, docs/queue.md). I/O thread only.
 *
 * The daemon is one consumer of a consumer group on `queue.stream`; each entry (field
 * `req`: a packed nlp.v1.Request, or `json`: an `nlpc batch` line object with its task)
 * is one request, its answer one entry on `queue.results`, written and acknowledged in
 * one server-side script that first checks this consumer still owns the entry. */
#ifndef NLP_DMN_REDIS_H
#define NLP_DMN_REDIS_H

#include <stddef.h>

#include "daemon/dmn_transport.h"

/* Starts connecting to srv->conf.queue.redis (asynchronously: a Redis that is not there
 * yet is retried with backoff, never an error here). NULL with the reason in err only
 * for a URL that cannot be used or out of memory. */
dmn_transport *dmn_redis_new(struct dmn_server *srv, int index, char *err, size_t errlen);

#endif
