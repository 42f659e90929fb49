/* systemd's service notifications (sd_notify, libsystemd), for Type=notify units
 * (conf/systemd/nlpd.service). I/O thread only. Every call is a no-op when nlpd does not
 * run under systemd ($NOTIFY_SOCKET unset) and never fails the daemon: a notification
 * that cannot be sent is logged once at debug level. */
#ifndef NLP_DMN_NOTIFY_H
#define NLP_DMN_NOTIFY_H

/* READY=1 with a STATUS line: the model is loaded and every endpoint bound. Also reads
 * the watchdog interval systemd asks for (WatchdogSec=). */
void dmn_notify_ready(const char *status);
/* STOPPING=1: the stop signal came; requests in flight are being finished. */
void dmn_notify_stopping(void);
/* WATCHDOG=1 at half the interval systemd asked for; call it every turn of the I/O
 * loop (cheap between pings): a loop that stops turning gets nlpd restarted. */
void dmn_notify_watchdog(void);

#endif
