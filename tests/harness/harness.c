/* Test runner: forks one child per test, bounds it with a timeout, runs several side by
 * side (two per CPU unless -j / NLP_TEST_JOBS says otherwise), and reports each with its
 * output once it ends, so outputs never interleave.
 * Usage: unit [-k SUBSTRING] [-j JOBS] [-l] [script.sh ...] */
#include "tests/harness/harness.h"

#include <cjson/cJSON.h>

#include "common/common.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TH_MAX 1024

static struct th_test {
    const char *name;
    th_fn fn;
    int timeout_s;
} th_tests[TH_MAX];
static int th_n;
static int th_failures; /* in the child: failures of the running test */

void th_register(const char *name, th_fn fn, int timeout_s)
{
    if (th_n == TH_MAX) {
        fprintf(stderr, "harness: too many tests\n");
        abort();
    }
    th_tests[th_n++] = (struct th_test){ name, fn, timeout_s };
}

void th_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    th_failures++;
}

void th_end(void)
{
    fflush(stdout);
    fflush(stderr);
    exit(th_failures ? 1 : 0);
}

const char *th_data(const char *rel)
{
    static char buf[8][1024];
    static int slot;
    const char *dir = getenv("NLP_TESTDATA");
    char *p = buf[slot++ & 7];
    snprintf(p, 1024, "%s/%s", dir ? dir : "tests/data", rel);
    return p;
}

cJSON *th_json(const char *rel)
{
    char *buf;
    size_t n;
    if (cm_read_file(th_data(rel), 64 << 20, &buf, &n) != 0) return NULL;
    cJSON *j = cJSON_ParseWithLength(buf, n);
    free(buf);
    return j;
}

int th_ids(const cJSON *arr, int32_t *out, int max)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach (e, arr) {
        if (n < max) out[n] = (int32_t)e->valueint;
        n++;
    }
    return n;
}

const char *th_build(void)
{
    const char *b = getenv("NLP_BUILD");
    return b ? b : "build";
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One test to run: a C function or a script. */
typedef struct th_job {
    const char *name;
    th_fn fn;
    const char *script;
    int timeout_s;
    pid_t pid; /* running: its process group too */
    double t0;
    double cpu; /* user + system seconds of the child and the children it waited for */
    FILE *out;  /* its stdout and stderr, shown when it ends */
} th_job;

/* Starts a job in a child of its own process group, its output into a temp file. */
static int start_job(th_job *j)
{
    fflush(stdout);
    fflush(stderr);
    j->out = tmpfile();
    if (!j->out) {
        perror("tmpfile");
        return -1;
    }
    j->t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        fclose(j->out);
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0); /* so a timeout kills the whole group (daemons started by scripts) */
        dup2(fileno(j->out), 1);
        dup2(fileno(j->out), 2);
        if (j->script) {
            execlp("bash", "bash", j->script, (char *)NULL);
            perror("exec bash");
            _exit(127);
        }
        th_failures = 0;
        j->fn();
        th_end();
    }
    setpgid(pid, pid);
    j->pid = pid;
    return 0;
}

/* Reports a finished job: its output, then one line. Returns 1 on pass. */
static int end_job(th_job *j, int status, int timed_out)
{
    /* Scripts may leave background children behind in their group: end them. */
    kill(-j->pid, SIGKILL);
    double dt = now_s() - j->t0;
    char buf[4096];
    size_t n;
    rewind(j->out);
    while ((n = fread(buf, 1, sizeof buf, j->out)) > 0) fwrite(buf, 1, n, stdout);
    fclose(j->out);
    int ok = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok) printf("ok    %-44s %7.2fs  cpu %6.2fs\n", j->name, dt, j->cpu);
    else if (timed_out) printf("FAIL  %-44s timed out after %ds\n", j->name, j->timeout_s);
    else if (WIFSIGNALED(status))
        printf("FAIL  %-44s killed by signal %d (%s)\n", j->name, WTERMSIG(status),
               strsignal(WTERMSIG(status)));
    else printf("FAIL  %-44s exit %d\n", j->name, WEXITSTATUS(status));
    fflush(stdout);
    j->pid = 0;
    return ok;
}

/* Runs jobs[0..n), at most `par` at a time, in order of start; adds to the two counts. */
static void run_jobs(th_job *jobs, int n, int par, int *passed, int *failed)
{
    int next = 0, running = 0;
    while (next < n || running > 0) {
        while (running < par && next < n) {
            if (start_job(&jobs[next]) == 0) running++;
            else (*failed)++;
            next++;
        }
        int progressed = 0;
        for (int k = 0; k < next; k++) {
            th_job *j = &jobs[k];
            if (!j->pid) continue;
            int status = 0, timed_out = 0;
            struct rusage ru = { 0 };
            pid_t r = wait4(j->pid, &status, WNOHANG, &ru);
            if (r != j->pid) {
                if (now_s() - j->t0 <= j->timeout_s) continue;
                kill(-j->pid, SIGKILL);
                kill(j->pid, SIGKILL);
                wait4(j->pid, &status, 0, &ru);
                timed_out = 1;
            }
            j->cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                     ru.ru_stime.tv_usec / 1e6;
            if (end_job(j, status, timed_out)) (*passed)++;
            else (*failed)++;
            running--;
            progressed = 1;
        }
        if (!progressed) usleep(2000);
    }
}

static int script_timeout(void)
{
    const char *t = getenv("NLP_SCRIPT_TIMEOUT");
    return t ? atoi(t) : 180;
}

/* Tests run side by side: NLP_TEST_JOBS, else -j, else two per online CPU: most scripts
 * wait (on daemons, sockets, timeouts) for more of their time than they compute. */
static int default_jobs(void)
{
    const char *e = getenv("NLP_TEST_JOBS");
    long n = e ? strtol(e, NULL, 10) : 2 * sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

int main(int argc, char **argv)
{
    const char *filter = NULL;
    int list = 0, i = 1, passed = 0, failed = 0, par = default_jobs();
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-k") && i + 1 < argc) {
            filter = argv[++i];
        } else if (!strcmp(argv[i], "-j") && i + 1 < argc) {
            par = atoi(argv[++i]);
            if (par < 1) par = 1;
        } else if (!strcmp(argv[i], "-l")) {
            list = 1;
        } else {
            fprintf(stderr, "usage: %s [-k SUBSTRING] [-j JOBS] [-l] [script.sh ...]\n", argv[0]);
            return 2;
        }
    }
    /* ASan's slowdown: give tests more time under sanitizers. */
    int scale = getenv("NLP_ASAN") ? 4 : 1;
    static th_job jobs[TH_MAX + 256];
    int n = 0;
    /* Scripts first: they are the long ones (daemons, fuzzers), and the C tests fill the
     * other slots around them. */
    for (int k = i; k < argc && n < (int)(sizeof jobs / sizeof *jobs); k++) {
        const char *base = strrchr(argv[k], '/');
        base = base ? base + 1 : argv[k];
        if (filter && !strstr(base, filter)) continue;
        jobs[n++] =
            (th_job){ .name = base, .script = argv[k], .timeout_s = script_timeout() * scale };
    }
    for (int t = 0; t < th_n; t++) {
        if (filter && !strstr(th_tests[t].name, filter)) continue;
        jobs[n++] = (th_job){ .name = th_tests[t].name,
                              .fn = th_tests[t].fn,
                              .timeout_s = th_tests[t].timeout_s * scale };
    }
    if (list) {
        for (int k = 0; k < n; k++) puts(jobs[k].name);
        return 0;
    }
    run_jobs(jobs, n, par, &passed, &failed);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
