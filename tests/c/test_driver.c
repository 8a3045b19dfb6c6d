/*
 * test_driver.c - the driver and its backend contract (core/driver/backend.h):
 * what a backend's poll reports when it fails, and what the driver does then.
 */
#include "support.h"

#include "driver/backend.h"
#include "driver/driver.h"
#include "driver/io.h"
#include "net/sock.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The backends this build and kernel give (the fallback makes a refused
 * io_uring an epoll: then only epoll is tested). */
static const int kinds[] = {EK_IO_BACKEND_EPOLL, EK_IO_BACKEND_URING};
static const char *const inodes[] = {"anon_inode:[eventpoll]", "anon_inode:[io_uring]"};
static const char *const names[] = {"epoll", "io_uring"};

static bool have(int i)
{
    ek__backend *b = NULL;
    if (ek__backend_new(kinds[i], &b) != EK_OK) return false;
    bool ok = ek__backend_kind(b) == kinds[i];
    ek__backend_free(b);
    return ok;
}

/* Close every descriptor of this process that is an `inode` (the runtime's
 * epoll or io_uring descriptor; io_uring has two where it defers receive
 * arms: the main ring and the sender ring of its wake-ups, uring.c). */
static int close_backend_fds(const char *inode)
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
        if (strcmp(target, inode) == 0 && close(atoi(e->d_name)) == 0) closed++;
    }
    closedir(d);
    return closed;
}

/* The contract: a failed poll is a negative errno, never a count. */
static void test_backend_poll_reports_failure_as_negative_errno(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        if (!have(i)) continue;
        ek__backend *b = NULL;
        assert_int_equal(ek__backend_new(kinds[i], &b), EK_OK);
        assert_string_equal(ek__backend_name(b), names[i]);
        ek__event ev[4];
        assert_int_equal(ek__backend_poll(b, ev, 0, 0), EK_EINVAL); /* no room for an event */
        assert_int_equal(ek__backend_poll(b, ev, 4, 0), 0);         /* nothing ready */
        ek__backend_wake(b);
        assert_int_equal(ek__backend_poll(b, ev, 4, 1000), 1);
        assert_ptr_equal(ev[0].token, EK__WAKE_TOKEN);
        ek__backend_clear_wake(b);
        assert_int_equal(ek__backend_poll(b, ev, 4, 0), 0);
        int closed = close_backend_fds(inodes[i]);
        assert_true(closed >= 1 && closed <= (i == 0 ? 1 : 2));
        /* A wait (1 ms) so that io_uring enters the kernel too. */
        assert_int_equal(ek__backend_poll(b, ev, 4, 1), EK_EBADF);
        ek__backend_free(b); /* closes the (now closed) descriptor again: harmless */
    }
}

/* Child: a runtime whose epoll descriptor is gone, asked to sleep 200 ms. A
 * driver that ignored the failed poll would spin for those 200 ms and exit 0. */
static void broken_backend_child(int errfd, int i)
{
    dup2(errfd, STDERR_FILENO);
    ek_builder *b = NULL;
    ek_runtime *rt = NULL;
    if (ek_builder_new(&b) != EK_OK ||
        ek_builder_set_flavor(b, EK_FLAVOR_CURRENT_THREAD) != EK_OK ||
        ek_builder_set_io_backend(b, kinds[i]) != EK_OK || ek_runtime_new(b, &rt) != EK_OK)
        _exit(3);
    int closed = close_backend_fds(inodes[i]);
    if (closed < 1 || closed > (i == 0 ? 1 : 2)) _exit(4);
    ek_future *f = NULL;
    if (ek_sleep(rt, 200, &f) != EK_OK) _exit(5);
    int rc = ek_block_on(rt, f, NULL);
    _exit(rc == EK_OK ? 0 : 6);
}

static void abort_case(int i)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        broken_backend_child(p[1], i);
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
    char want[64];
    snprintf(want, sizeof want, "%s backend poll failed: bad file descriptor", names[i]);
    assert_non_null(strstr(msg, want));
}

static void test_driver_aborts_with_the_reason_when_the_backend_poll_fails(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        if (have(i)) abort_case(i);
}

/* ---- the two windows of the lost-wake-up protocol (io.c) ----
 *
 * A current-thread runtime and a Unix stream pair: the task reads `a`, the test
 * hook plays the driver. At the chosen window it writes one byte into the pair
 * (so the kernel has data) and delivers that byte's readiness edge with
 * ek__io_dispatch, exactly as a driver turn on another thread could at that
 * moment. The read must then complete in the same poll: a lost edge would leave
 * it EK_PENDING with nothing left to wake it (the test records the first poll's
 * status instead of waiting, so a lost wake-up fails instead of hanging). */

static struct {
    ek__io *io;  /* the resource watched */
    int point;   /* the window to act at */
    int peer_fd; /* where the byte is written */
    int fired;   /* times the hook acted */
} race;

static void race_hook(ek__io *io, int point)
{
    if (io != race.io || point != race.point || race.fired++ > 0) return;
    assert_int_equal(write(race.peer_fd, "x", 1), 1);
    ek__io_dispatch(io, EK__READABLE, (ek__io_tick(io) + 1) & EK__IO_TICK_MASK);
}

typedef struct {
    ek_unix_stream *s;
    int rc;
    size_t n;
} read_once;

static int read_once_poll(void *state, ek_cx *cx, void **out)
{
    read_once *r = state;
    char b;
    r->rc = ek_unix_read(r->s, cx, &b, 1, &r->n);
    *out = NULL;
    return EK_OK;
}

static int race_read(ek_runtime *rt, ek_unix_stream *s)
{
    read_once r = {s, 99, 0};
    int rc = ekt_block_on_fn(rt, read_once_poll, &r, NULL);
    atomic_store(&ek__io_test_hook, NULL);
    assert_int_equal(rc, EK_OK);
    if (r.rc == EK_OK) assert_int_equal(r.n, 1);
    return r.rc;
}

/* On epoll whatever EKIDEN_IO_BACKEND says: these tests play a readiness
 * driver (a byte written, then its READABLE edge dispatched by hand), which is
 * what epoll and io_uring's poll deliver; io_uring's ring reads deliver a
 * stream's bytes by completion instead (test_io_backend tests those). */
static ek_runtime *current_thread_rt(void)
{
    ek_builder *b = ekt_builder(EK_FLAVOR_CURRENT_THREAD, 0, -1, 0);
    assert_int_equal(ek_builder_set_io_backend(b, EK_IO_BACKEND_EPOLL), EK_OK);
    ek_runtime *rt = NULL;
    assert_int_equal(ek_runtime_new(b, &rt), EK_OK);
    ek_builder_free(b);
    return rt;
}

/* Read one byte from a fresh Unix pair on a current-thread runtime, with the
 * hook playing the driver at `point`; `stale` first sets a READABLE that has no
 * data behind it. Returns the status of the read's first poll. */
static int race_at(int point, bool stale)
{
    ek_runtime *rt = current_thread_rt();
    ek_unix_stream *a, *b;
    assert_int_equal(ek_unix_pair(rt, &a, &b), EK_OK);
    race.io = ((ek__sock *)a)->io;
    race.point = point;
    race.peer_fd = ((ek__sock *)b)->fd;
    race.fired = 0;
    if (stale) ek__io_dispatch(race.io, EK__READABLE, 5);
    atomic_store(&ek__io_test_hook, race_hook);
    int rc = race_read(rt, a);
    assert_int_equal(race.fired, 1);
    ek_unix_free(a);
    ek_unix_free(b);
    ekt_rt_free_checked(rt);
    return rc;
}

/* Caught by dropping the re-load of the word after the waker is stored. */
static void test_dispatch_between_readiness_check_and_waker_store_is_not_lost(void **state)
{
    (void)state;
    assert_int_equal(race_at(EK__IO_POINT_BEFORE_WAKER_STORE, false), EK_OK);
}

/* Caught by dropping the tick check in ek__io_clear_ready. With a stale
 * READABLE the read tries recv, gets EAGAIN, and clears with the tick it saw,
 * unless a newer event came meanwhile. */
static void test_dispatch_between_eagain_and_clear_is_not_erased(void **state)
{
    (void)state;
    assert_int_equal(race_at(EK__IO_POINT_BEFORE_CLEAR, true), EK_OK);
}

/* 32,768 turns after the tick an op observed (a whole wrap of a 15-bit tick),
 * a new event must still count as newer. */
static void test_an_event_a_15_bit_wrap_later_is_not_erased(void **state)
{
    (void)state;
    ek_runtime *rt = current_thread_rt();
    ek_unix_stream *a, *b;
    assert_int_equal(ek_unix_pair(rt, &a, &b), EK_OK);
    ek__io *io = ((ek__sock *)a)->io;
    uint32_t ready = 0;
    uint64_t tick = 0;
    ek__io_dispatch(io, EK__READABLE, 7);
    assert_int_equal(ek__io_poll_ready(io, NULL, EK__DIR_READ, &ready, &tick), EK_OK);
    assert_int_equal(tick, 7);
    ek__io_dispatch(io, EK__READABLE, 7 + 32768);
    ek__io_clear_ready(io, EK__READABLE, tick);
    assert_int_equal(ek__io_poll_ready(io, NULL, EK__DIR_READ, &ready, &tick), EK_OK);
    assert_true(ready & EK__READABLE);
    assert_int_equal(tick, 7 + 32768);
    /* The tick itself wraps at its 47 bits, as the driver's counter does. */
    ek__io_dispatch(io, EK__READABLE, EK__IO_TICK_MASK + 3);
    assert_int_equal(ek__io_tick(io), 2);
    ek__io_clear_ready(io, EK__READABLE, 2); /* the same tick: cleared */
    ek__io_dispatch(io, EK__WRITABLE, 2);    /* (to look at the bits through poll_ready) */
    assert_int_equal(ek__io_poll_ready(io, NULL, EK__DIR_WRITE, &ready, &tick), EK_OK);
    assert_int_equal(ready & (EK__READABLE | EK__WRITABLE), EK__WRITABLE);
    ek_unix_free(a);
    ek_unix_free(b);
    ekt_rt_free_checked(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)
        T(test_backend_poll_reports_failure_as_negative_errno),
        T(test_driver_aborts_with_the_reason_when_the_backend_poll_fails),
        T(test_dispatch_between_readiness_check_and_waker_store_is_not_lost),
        T(test_dispatch_between_eagain_and_clear_is_not_erased),
        T(test_an_event_a_15_bit_wrap_later_is_not_erased),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
