/* systemd notifications (see dmn_notify.h). I/O thread only: the state below is its. */
#include "daemon/dmn_notify.h"

#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "common/common.h"
#include "daemon/dmn_log.h"

static double watchdog_every; /* seconds between pings; 0 = no watchdog */
static double last_ping;

static void send_state(const char *state)
{
    static int warned;
    int rc = sd_notify(0, state);
    if (rc < 0 && !warned) {
        warned = 1;
        DMN_LOG(DMN_LOG_DEBUG, "sd_notify: error %d", rc);
    }
}

void dmn_notify_ready(const char *status)
{
    char msg[512];
    uint64_t usec = 0;
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
    send_state(msg);
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        watchdog_every = (double)usec / 2e6;
        last_ping = cm_now();
        DMN_LOG(DMN_LOG_INFO, "systemd watchdog: a ping every %.1f s", watchdog_every);
    }
}

void dmn_notify_stopping(void)
{
    send_state("STOPPING=1\nSTATUS=finishing the requests in flight");
}

void dmn_notify_watchdog(void)
{
    if (watchdog_every <= 0) return;
    double now = cm_now();
    if (now - last_ping < watchdog_every) return;
    last_ping = now;
    send_state("WATCHDOG=1");
}
