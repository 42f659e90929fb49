/* The HTTP/JSON transport (dmn_http.c, docs/http.md): libmicrohttpd on `http.bind`. */
#ifndef NLP_DMN_HTTP_H
#define NLP_DMN_HTTP_H

#include <signal.h>
#include <stddef.h>

#include "daemon/dmn_transport.h"

/* Starts the HTTP server on srv->conf.http.bind (its thread runs from here on). NULL
 * with the reason in err. I/O thread. */
dmn_transport *dmn_http_new(struct dmn_server *srv, int index, char *err, size_t errlen);

/* Bumped by the SIGHUP handler (dmn_server.c), nothing else writes it: the HTTP
 * transport re-reads http.tokens_file in the I/O thread when it changes. */
extern volatile sig_atomic_t dmn_reload_gen;

#endif
