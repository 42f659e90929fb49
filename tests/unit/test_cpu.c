/* common/cpu.c: the CPUs a process has under a cgroup quota and an affinity mask, read
 * from a fake /proc and /sys laid out as v1, v2 and container mounts show them; the CPUs
 * it could use now (cm_cpu_read, cm_cpu_free); the OpenMP wait policy it starts with. */
#include "common/common.h"
#include "tests/harness/harness.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes text to root/rel, making its directories. */
static void put(const char *root, const char *rel, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            REQUIRE(mkdir(path, 0755) == 0 || errno == EEXIST);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fputs(text, f);
    fclose(f);
}

static char *fake_root(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/nlp-cpu.XXXXXX");
    REQUIRE(mkdtemp(dir));
    return dir;
}

static void rm_root(const char *root)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
}

/* cgroup v2: the process's cgroup is /a/b; the quota is the tightest on the way up. */
TEST(cpu_quota_v2_tightest_on_path)
{
    char *r = fake_root();
    put(r, "proc/self/cgroup", "0::/a/b\n");
    put(r, "proc/self/mountinfo",
        "25 30 0:23 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n");
    put(r, "sys/fs/cgroup/a/b/cpu.max", "max 100000\n");
    put(r, "sys/fs/cgroup/a/cpu.max", "150000 100000\n");
    put(r, "sys/fs/cgroup/cpu.max", "800000 100000\n");
    CHECK(cm_cpu_quota(r) == 1.5);
    CHECK(cm_cpu_count_at(r, 8) == 2); /* 1.5 rounds to 2 */
    CHECK(cm_cpu_count_at(r, 1) == 1); /* the affinity mask is tighter */
    put(r, "sys/fs/cgroup/a/b/cpu.max", "140000 100000\n");
    CHECK(cm_cpu_count_at(r, 8) == 1); /* 1.4 rounds to 1 */
    put(r, "sys/fs/cgroup/a/b/cpu.max", "20000 100000\n");
    CHECK(cm_cpu_count_at(r, 8) == 1); /* never 0 */
    rm_root(r);
}

/* No quota anywhere ("max"): the affinity count. */
TEST(cpu_no_quota_is_affinity)
{
    char *r = fake_root();
    put(r, "proc/self/cgroup", "0::/svc\n");
    put(r, "proc/self/mountinfo", "25 30 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    put(r, "sys/fs/cgroup/svc/cpu.max", "max 100000\n");
    CHECK(cm_cpu_quota(r) == 0);
    CHECK(cm_cpu_count_at(r, 6) == 6);
    rm_root(r);
    /* nothing readable at all: the affinity count too */
    CHECK(cm_cpu_count_at("/nonexistent-root", 3) == 3);
}

/* cgroup v1 in a container without a cgroup namespace: /proc/self/cgroup names the host
 * path, the mount's root is that path, so the files are at the mount point itself. */
TEST(cpu_quota_v1_container_mount)
{
    char *r = fake_root();
    put(r, "proc/self/cgroup", "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n");
    put(r, "proc/self/mountinfo",
        "30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
        "40 30 0:30 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup "
        "rw,cpu,cpuacct\n"
        "41 30 0:31 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
    put(r, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "300000\n");
    put(r, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    CHECK(cm_cpu_quota(r) == 3.0);
    CHECK(cm_cpu_count_at(r, 16) == 3);
    put(r, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
    CHECK(cm_cpu_count_at(r, 16) == 16);
    rm_root(r);
}

/* The real machine: at least one CPU and no more than the affinity mask allows. */
TEST(cpu_count_real)
{
    int n = cm_cpu_count();
    CHECK(n >= 1);
    CHECK(n <= sysconf(_SC_NPROCESSORS_ONLN));
}

/* The idle time of the process's own CPUs: /proc/stat's idle + iowait of the cpuN lines
 * in the affinity mask (not the "cpu" total, not steal, not a CPU outside the mask). */
TEST(cpu_read_idle_of_own_cpus)
{
    cpu_set_t mask;
    REQUIRE(sched_getaffinity(0, sizeof mask, &mask) == 0);
    char *r = fake_root(), text[1 << 16];
    size_t n = (size_t)snprintf(text, sizeof text, "cpu  999 0 999 99999 999 0 0 999 0 0\n");
    long long want = 0;
    for (int cpu = 0; cpu < 300; cpu++) { /* 10 KB: read in chunks */
        long long idle = 1000 + cpu, iowait = 7 * cpu;
        n += (size_t)snprintf(text + n, sizeof text - n, "cpu%d 5 0 5 %lld %lld 0 0 300 0 0\n", cpu,
                              idle, iowait);
        if (CPU_ISSET(cpu, &mask)) want += idle + iowait;
    }
    snprintf(text + n, sizeof text - n, "cpu1000 1 1 1 100000 1 0 0 0 0 0\nintr 1 2 3\n");
    put(r, "proc/stat", text);
    cm_cpu_reading a;
    REQUIRE(cm_cpu_read_at(r, &a) == 0);
    double hz = (double)sysconf(_SC_CLK_TCK);
    CHECK_MSG(fabs(a.idle - (double)want / hz) < 1e-9, "idle %.6f, want %.6f", a.idle,
              (double)want / hz);
    CHECK(a.own > 0 && a.wall > 0);
    put(r, "proc/stat", "intr 1 2 3\n");
    CHECK(cm_cpu_read_at(r, &a) == -1); /* no cpu lines: no reading */
    rm_root(r);
    /* the real one: idle never goes back, the process's time neither */
    cm_cpu_reading b, c;
    REQUIRE(cm_cpu_read(&b) == 0);
    for (volatile long i = 0; i < 20000000; i++) continue;
    REQUIRE(cm_cpu_read(&c) == 0);
    CHECK(c.idle >= b.idle && c.own > b.own && c.wall > b.wall);
    double f = cm_cpu_free(&b, &c);
    CHECK_MSG(f >= 0 && f <= CPU_COUNT(&mask) + 0.5, "free %.3f of %d", f, CPU_COUNT(&mask));
}

/* Free CPUs between two readings: own time plus idle time over wall time. */
TEST(cpu_free_arithmetic)
{
    cm_cpu_reading a = { .wall = 10.0, .own = 3.0, .idle = 100.0 };
    cm_cpu_reading b = { .wall = 10.5, .own = 3.4, .idle = 100.5 };
    CHECK(fabs(cm_cpu_free(&a, &b) - 1.8) < 1e-9);
    CHECK(cm_cpu_free(&b, &a) == -1); /* not after */
    CHECK(cm_cpu_free(&a, &a) == -1);
}

/* The programs leave libgomp's waiting alone (its threads spin ~300000 rounds before they
 * sleep; the engine takes threads away when the machine is busy instead, engine/
 * threads.c): libgomp itself says what it read (OMP_DISPLAY_ENV=verbose prints it when
 * it starts). */
static int omp_spin_of(const char *prog, const char *env, char *out, size_t cap)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT %s OMP_DISPLAY_ENV=verbose %s/%s "
             "--version 2>&1 >/dev/null | sed -n \"s/.*GOMP_SPINCOUNT = '\\(.*\\)'.*/\\1/p\" "
             "| tail -n 1",
             env, th_build(), prog);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    out[0] = '\0';
    if (!fgets(out, (int)cap, p)) out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    return pclose(p);
}

TEST(cpu_omp_spins_by_default)
{
    static const char *progs[] = { "nlpd", "nlprun" };
    char spin[64];
    for (int i = 0; i < 2; i++) {
        REQUIRE(omp_spin_of(progs[i], "", spin, sizeof spin) == 0);
        CHECK_MSG(!strcmp(spin, "300000"), "%s: default spin count '%s'", progs[i], spin);
        REQUIRE(omp_spin_of(progs[i], "OMP_WAIT_POLICY=passive", spin, sizeof spin) == 0);
        CHECK_MSG(!strcmp(spin, "0"), "%s: passive became '%s'", progs[i], spin);
    }
}
