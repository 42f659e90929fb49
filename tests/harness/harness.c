/* Test runner: forks one child per test, bounds it with a timeout, reports.
 * Usage: unit [-k SUBSTRING] [-l] [script.sh ...] */
#include "tests/harness/harness.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
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

/* Runs one test (a C function or a script) in a child; returns 1 on pass. */
static int run_one(const char *name, th_fn fn, const char *script, int timeout_s)
{
    fflush(stdout);
    fflush(stderr);
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 0;
    }
    if (pid == 0) {
        setpgid(0, 0); /* so a timeout kills the whole group (daemons started by scripts) */
        if (script) {
            execlp("bash", "bash", script, (char *)NULL);
            perror("exec bash");
            _exit(127);
        }
        th_failures = 0;
        fn();
        th_end();
    }
    setpgid(pid, pid);
    int status = 0, timed_out = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (now_s() - t0 > timeout_s) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            timed_out = 1;
            break;
        }
        usleep(2000);
    }
    /* Scripts may leave background children behind in their group: end them. */
    kill(-pid, SIGKILL);
    double dt = now_s() - t0;
    int ok = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok)
        printf("ok    %-44s %7.2fs\n", name, dt);
    else if (timed_out)
        printf("FAIL  %-44s timed out after %ds\n", name, timeout_s);
    else if (WIFSIGNALED(status))
        printf("FAIL  %-44s killed by signal %d (%s)\n", name, WTERMSIG(status),
               strsignal(WTERMSIG(status)));
    else
        printf("FAIL  %-44s exit %d\n", name, WEXITSTATUS(status));
    fflush(stdout);
    return ok;
}

static int script_timeout(void)
{
    const char *t = getenv("NLP_SCRIPT_TIMEOUT");
    return t ? atoi(t) : 180;
}

int main(int argc, char **argv)
{
    const char *filter = NULL;
    int list = 0, i = 1, passed = 0, failed = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-k") && i + 1 < argc) {
            filter = argv[++i];
        } else if (!strcmp(argv[i], "-l")) {
            list = 1;
        } else {
            fprintf(stderr, "usage: %s [-k SUBSTRING] [-l] [script.sh ...]\n", argv[0]);
            return 2;
        }
    }
    /* ASan's slowdown: give tests more time under sanitizers. */
    int scale = getenv("NLP_ASAN") ? 4 : 1;
    for (int t = 0; t < th_n; t++) {
        if (filter && !strstr(th_tests[t].name, filter)) continue;
        if (list) {
            puts(th_tests[t].name);
            continue;
        }
        if (run_one(th_tests[t].name, th_tests[t].fn, NULL, th_tests[t].timeout_s * scale))
            passed++;
        else
            failed++;
    }
    for (; i < argc; i++) {
        const char *base = strrchr(argv[i], '/');
        base = base ? base + 1 : argv[i];
        if (filter && !strstr(base, filter)) continue;
        if (list) {
            puts(base);
            continue;
        }
        if (run_one(base, NULL, argv[i], script_timeout() * scale))
            passed++;
        else
            failed++;
    }
    if (list) return 0;
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
