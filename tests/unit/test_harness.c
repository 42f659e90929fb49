/* The harness itself: a check that can fail does fail, in its own process. */
#include "tests/harness/harness.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

TEST(harness_check_failure_is_reported)
{
    /* Run a failing CHECK in a grandchild and make sure it exits non-zero. */
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int fd = open("/dev/null", 1);
        if (fd >= 0) dup2(fd, 2);
        CHECK(1 == 2);
        th_end();
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
}
