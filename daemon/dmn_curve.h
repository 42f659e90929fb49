/* CurveZMQ for the ROUTER (dmn_curve.c, docs/daemon.md "Security"): key files in CZMQ's
 * certificate format, the ZAP handler that admits the public keys of
 * security.curve_allowed_keys_dir, and the rule that a non-loopback TCP endpoint needs
 * keys (or security.allow_insecure). */
#ifndef NLP_DMN_CURVE_H
#define NLP_DMN_CURVE_H

#include <stddef.h>

#include "daemon/dmn_conf.h"

struct dmn_server;

/* Writes a new key pair as zcert_save does: PREFIX (the public certificate) and
 * PREFIX_secret (both keys, mode 0600). 0, or -1 with the reason. Main thread. */
int dmn_curve_make_keypair(const char *prefix, char *err, size_t errlen);

/* Reads a certificate's Z85 keys (41 bytes each with the NUL); secret may be NULL, and
 * is "" when the file has none. 0, or -1 with the reason. */
int dmn_curve_read_cert(const char *path, char *public_z85, char *secret_z85, char *err,
                        size_t errlen);

/* Cross-key checks of the security group (dmn_conf_check): keys need both files, and
 * every tcp:// bind endpoint that is not loopback needs keys or allow_insecure. */
int dmn_curve_check_conf(const dmn_conf *c, char *err, size_t errlen);

/* Starts the ZAP handler thread on srv->zctx (before any CURVE socket binds: without a
 * handler libzmq would admit every client). A no-op without keys configured. The thread
 * owns its socket and ends when the context terminates. 0, or -1 with the reason. I/O
 * thread, at start-up. */
int dmn_curve_start(struct dmn_server *srv, char *err, size_t errlen);

/* Makes `sock` (a ROUTER, before it binds) a CURVE server with the daemon's secret key
 * and the ZAP domain. A no-op without keys configured. 0, or -1 with the reason. */
int dmn_curve_server(struct dmn_server *srv, void *sock, char *err, size_t errlen);

#endif
