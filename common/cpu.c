/* How many CPUs this process really has (see common.h), and how many of them it could
 * use right now (cm_cpu_read, cm_cpu_free).
 *
 * The host's core count is the wrong default on a shared machine: a container with a CPU
 * quota (docker --cpus, systemd CPUQuota=) or a narrower affinity mask (taskset, cpuset)
 * gets fewer, and OpenMP threads beyond them wait at every barrier for a thread that is
 * not running (issue 21: 5-9x slower than one thread). */
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Reads the first line of the file at path into buf. 0, or -1 when there is none. */
static int read_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    int ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    return ok ? 0 : -1;
}

/* 1 if the comma-separated list `list` (len bytes) holds `word`. */
static int has_word(const char *list, size_t len, const char *word)
{
    size_t wl = strlen(word);
    const char *p = list, *end = list + len;
    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        size_t n = c ? (size_t)(c - p) : (size_t)(end - p);
        if (n == wl && !memcmp(p, word, wl)) return 1;
        p += n + 1;
    }
    return 0;
}

/* The quota in CPUs of one cgroup directory: v2 "cpu.max" ("max 100000" or
 * "150000 100000"), v1 cpu.cfs_quota_us / cpu.cfs_period_us (-1: none). 0 when none. */
static double dir_quota(const char *dir, int v2)
{
    char path[PATH_MAX], a[64], b[64];
    long long q, p;
    if (v2) {
        if (snprintf(path, sizeof path, "%s/cpu.max", dir) >= (int)sizeof path) return 0;
        if (read_line(path, a, sizeof a) < 0) return 0;
        if (sscanf(a, "%lld %lld", &q, &p) != 2) return 0; /* "max ..." */
    } else {
        if (snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir) >= (int)sizeof path) return 0;
        if (read_line(path, a, sizeof a) < 0 || sscanf(a, "%lld", &q) != 1) return 0;
        if (snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir) >= (int)sizeof path) return 0;
        if (read_line(path, b, sizeof b) < 0 || sscanf(b, "%lld", &p) != 1) return 0;
    }
    if (q <= 0 || p <= 0) return 0;
    return (double)q / (double)p;
}

/* The tightest quota from `dir` up to `top` (the mount point): a parent's quota bounds
 * its children's. 0 when none. */
static double path_quota(char *dir, size_t top, int v2)
{
    double best = 0;
    for (;;) {
        double q = dir_quota(dir, v2);
        if (q > 0 && (best == 0 || q < best)) best = q;
        size_t n = strlen(dir);
        if (n <= top) break;
        char *slash = strrchr(dir + top, '/');
        if (!slash) break;
        *slash = '\0';
    }
    return best;
}

/* The cgroup path of this process for a hierarchy: v2 the "0::" line, v1 the line whose
 * controller list holds "cpu". 0, or -1 when there is none. */
static int own_cgroup(const char *root, int v2, char *out, size_t cap)
{
    char path[PATH_MAX], line[4096];
    snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    int rc = -1;
    while (rc < 0 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        int match = v2 ? (c1 - line == 1 && line[0] == '0' && c2 == c1 + 1)
                       : has_word(c1 + 1, (size_t)(c2 - c1 - 1), "cpu");
        if (match && strlen(c2 + 1) < cap) {
            strcpy(out, c2 + 1);
            rc = 0;
        }
    }
    fclose(f);
    return rc;
}

/* The quota of one hierarchy (v2: cgroup2; v1: the cgroup mount with the cpu
 * controller) for this process, from /proc/self/mountinfo and /proc/self/cgroup. */
static double hier_quota(const char *root, int v2)
{
    char cg[PATH_MAX], path[PATH_MAX], line[4096];
    if (own_cgroup(root, v2, cg, sizeof cg) < 0) return 0;
    snprintf(path, sizeof path, "%s/proc/self/mountinfo", root);
    FILE *f = fopen(path, "re");
    if (!f) return 0;
    double q = 0;
    while (fgets(line, sizeof line, f)) {
        /* id parent maj:min ROOT MOUNTPOINT opts [optional...] - FSTYPE SOURCE SUPEROPTS */
        char mroot[PATH_MAX], mpoint[PATH_MAX], fstype[64], super[1024];
        const char *dash = strstr(line, " - ");
        if (!dash || sscanf(line, "%*s %*s %*s %4095s %4095s", mroot, mpoint) != 2) continue;
        if (sscanf(dash + 3, "%63s %*s %1023s", fstype, super) != 2) continue;
        if (v2 ? strcmp(fstype, "cgroup2") != 0
               : (strcmp(fstype, "cgroup") != 0 || !has_word(super, strlen(super), "cpu")))
            continue;
        /* The process's path is relative to the namespace's root; a mount of a subtree
         * (a container's) starts below it. */
        const char *rel = cg;
        size_t rl = strlen(mroot);
        if (strcmp(mroot, "/") != 0 && !strncmp(cg, mroot, rl) && (cg[rl] == '/' || !cg[rl]))
            rel = cg + rl;
        if (!strcmp(rel, "/")) rel = "";
        char dir[PATH_MAX];
        int n = snprintf(dir, sizeof dir, "%s%s%s", root, mpoint, rel);
        if (n < 0 || n >= (int)sizeof dir) continue;
        size_t top = strlen(root) + strlen(mpoint);
        q = path_quota(dir, top, v2);
        break;
    }
    fclose(f);
    return q;
}

double cm_cpu_quota(const char *root)
{
    double a = hier_quota(root, 1), b = hier_quota(root, 0);
    if (a > 0 && b > 0) return a < b ? a : b;
    return a > 0 ? a : b;
}

int cm_cpu_count_at(const char *root, int affinity)
{
    int n = affinity;
    if (n <= 0) {
        cpu_set_t set;
        n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    }
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 && c < INT_MAX ? (int)c : 1;
    }
    double q = cm_cpu_quota(root);
    if (q > 0) {
        /* Nearest whole CPU: 1.5 CPUs run 2 threads, 1.4 one. */
        int qn = (int)(q + 0.5);
        if (qn < 1) qn = 1;
        if (qn < n) n = qn;
    }
    return n;
}

int cm_cpu_count(void) { return cm_cpu_count_at("", 0); }

/* One "cpuN user nice system idle iowait ..." line of /proc/stat: adds its idle + iowait
 * to *sum when N is in mask. 1 for a cpuN line, 0 for the "cpu" total or a short line,
 * -1 for a line that is not about a CPU (the cpu lines come first, together). Steal
 * time is not idle: the hypervisor ran someone else. */
static int stat_line(const char *line, const cpu_set_t *mask, long long *sum)
{
    unsigned cpu;
    long long v[5];
    if (strncmp(line, "cpu", 3) != 0) return -1;
    if (line[3] < '0' || line[3] > '9') return 0; /* "cpu  ...": the total */
    if (sscanf(line + 3, "%u %lld %lld %lld %lld %lld", &cpu, &v[0], &v[1], &v[2], &v[3], &v[4]) !=
        6)
        return 0;
    if (cpu < CPU_SETSIZE && CPU_ISSET(cpu, mask)) *sum += v[3] + v[4];
    return 1;
}

/* The idle ticks of the CPUs in mask from the /proc/stat-format file fd, read in chunks
 * into a buffer on the stack (the engine reads it between decode steps, where nothing
 * allocates). -1 when it has no cpuN line. */
static long long stat_idle(int fd, const cpu_set_t *mask)
{
    char buf[4096];
    size_t have = 0;
    long long sum = 0;
    int seen = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        have += (size_t)n;
        buf[have] = '\0';
        char *p = buf, *nl;
        while ((nl = strchr(p, '\n'))) {
            *nl = '\0';
            int k = stat_line(p, mask, &sum);
            if (k < 0 && seen) return sum; /* past the cpu lines */
            seen |= k > 0;
            p = nl + 1;
        }
        have = (size_t)(buf + have - p);
        if (have == sizeof buf - 1) have = 0; /* a line longer than the buffer: skip */
        memmove(buf, p, have);
    }
    return seen ? sum : -1;
}

int cm_cpu_read_at(const char *root, cm_cpu_reading *r)
{
    char path[PATH_MAX];
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) < 0) return -1;
    snprintf(path, sizeof path, "%s/proc/stat", root);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    long long idle = stat_idle(fd, &mask);
    close(fd);
    long hz = sysconf(_SC_CLK_TCK);
    struct timespec own;
    if (idle < 0 || hz <= 0 || clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &own) < 0) return -1;
    r->wall = cm_now();
    r->own = (double)own.tv_sec + own.tv_nsec * 1e-9;
    r->idle = (double)idle / (double)hz;
    return 0;
}

int cm_cpu_read(cm_cpu_reading *r) { return cm_cpu_read_at("", r); }

double cm_cpu_free(const cm_cpu_reading *a, const cm_cpu_reading *b)
{
    double wall = b->wall - a->wall;
    if (!(wall > 0)) return -1;
    double f = ((b->own - a->own) + (b->idle - a->idle)) / wall;
    return f < 0 ? 0 : f;
}
