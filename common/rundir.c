/* The runtime directory: where nlpd's default ipc socket lives (see common.h). */
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cm_runtime_dir(char *out, size_t cap)
{
    const char *rd = getenv("RUNTIME_DIRECTORY"), *xdg = getenv("XDG_RUNTIME_DIR");
    int n;
    if (rd && rd[0] == '/') {
        /* systemd's RuntimeDirectory=: several directories are joined by ':'. */
        size_t len = strcspn(rd, ":");
        n = snprintf(out, cap, "%.*s", (int)len, rd);
    } else if (xdg && xdg[0] == '/') {
        n = snprintf(out, cap, "%s/nlpd", xdg);
    } else if (geteuid() == 0) {
        n = snprintf(out, cap, "/run/nlpd");
    } else {
        n = snprintf(out, cap, "/tmp/nlpd-%u", (unsigned)geteuid());
    }
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int cm_default_ipc(char *out, size_t cap)
{
    char dir[4096];
    if (cm_runtime_dir(dir, sizeof dir) < 0) return -ENAMETOOLONG;
    int n = snprintf(out, cap, "ipc://%s/nlpd.sock", dir);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}
