/*
 * test_driver.c - the driver and its backend contract (core/driver/backend.h):
 * what a backend's poll reports when it fails, and what the driver does then.
 */
#include "support.h"

#include "driver/backend.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Close every epoll descriptor of this process (the runtime's backend). */
static int close_epoll_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) return 0;
    int closed = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char path[300], target[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = '\0';
        if (strcmp(target, "anon_inode:[eventpoll]") == 0 && close(atoi(e->d_name)) == 0) closed++;
    }
    closedir(d);
    return closed;
}

/* The contract: a failed poll is a negative errno, never a count. */
static void test_backend_poll_reports_failure_as_negative_errno(void **state)
{
    (void)state;
    ek__backend *b = NULL;
    assert_int_equal(ek__backend_new(&b), EK_OK);
    ek__event ev[4];
    assert_int_equal(ek__backend_poll(b, ev, 0, 0), EK_EINVAL); /* no room for an event */
    assert_int_equal(ek__backend_poll(b, ev, 4, 0), 0);         /* nothing ready */
    ek__backend_wake(b);
    assert_int_equal(ek__backend_poll(b, ev, 4, 0), 1);
    assert_ptr_equal(ev[0].token, EK__WAKE_TOKEN);
    ek__backend_clear_wake(b);
    assert_int_equal(ek__backend_poll(b, ev, 4, 0), 0);
    assert_int_equal(close_epoll_fds(), 1);
    assert_int_equal(ek__backend_poll(b, ev, 4, 0), EK_EBADF);
    ek__backend_free(b); /* closes the (now closed) descriptor again: harmless */
}

/* Child: a runtime whose epoll descriptor is gone, asked to sleep 200 ms. A
 * driver that ignored the failed poll would spin for those 200 ms and exit 0. */
static void broken_backend_child(int errfd)
{
    dup2(errfd, STDERR_FILENO);
    ek_builder *b = NULL;
    ek_runtime *rt = NULL;
    if (ek_builder_new(&b) != EK_OK ||
        ek_builder_set_flavor(b, EK_FLAVOR_CURRENT_THREAD) != EK_OK ||
        ek_runtime_new(b, &rt) != EK_OK)
        _exit(3);
    if (close_epoll_fds() != 1) _exit(4);
    ek_future *f = NULL;
    if (ek_sleep(rt, 200, &f) != EK_OK) _exit(5);
    int rc = ek_block_on(rt, f, NULL);
    _exit(rc == EK_OK ? 0 : 6);
}

static void test_driver_aborts_with_the_reason_when_the_backend_poll_fails(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        broken_backend_child(p[1]);
    }
    close(p[1]);
    char msg[512];
    size_t got = 0;
    for (ssize_t n; got < sizeof msg - 1 && (n = read(p[0], msg + got, sizeof msg - 1 - got)) > 0;)
        got += (size_t)n;
    msg[got] = '\0';
    close(p[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status))
        fprintf(stderr, "child exited with %d: %s\n", WEXITSTATUS(status), msg);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(msg, "epoll backend poll failed: bad file descriptor"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)
        T(test_backend_poll_reports_failure_as_negative_errno),
        T(test_driver_aborts_with_the_reason_when_the_backend_poll_fails),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
