/*
 * test_io_backend.c - choosing the reactor backend (ek_builder_set_io_backend,
 * EKIDEN_IO_BACKEND, ek_runtime_io_backend), the fallback from io_uring to
 * epoll when the kernel refuses, and what only the io_uring backend has to get
 * right: a poll armed by a thread that has exited (the kernel ends it: the
 * driver re-arms), register/deregister churn with events in flight, the
 * cross-thread wake-up and poll timeout, and its ring reads (a stream's bytes
 * taken by a multishot recv into provided buffers): order across reads of any
 * size, the pause of a stream that queues too much, running out of buffers,
 * and every buffer back in the ring at the end.
 *
 * The rest of the suite runs on both backends (tests/run_all.sh, stage uring).
 */
#include "support.h"
#include "net_helpers.h"

#include "driver/backend.h"
#include "driver/driver.h"
#include "driver/io.h"
#include "net/sock.h"
#include "rt.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>

/* Can this process have an io_uring at all? Asked of the kernel directly, not
 * through the code under test: built with liburing, not disabled by sysctl,
 * and io_uring_setup succeeds. */
static bool uring_possible(void)
{
    if (!ek__backend_uring_built()) return false;
    int fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char c = '0';
        ssize_t got = read(fd, &c, 1);
        close(fd);
        if (got == 1 && c == '2') return false;
    }
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    long ring = syscall(__NR_io_uring_setup, 4, &p);
    if (ring < 0) return false;
    close((int)ring);
    return (p.features & IORING_FEAT_EXT_ARG) != 0;
}

static int want_uring(void)
{
    return uring_possible() ? EK_IO_BACKEND_URING : EK_IO_BACKEND_EPOLL;
}

/* The backend a runtime built from b (NULL: defaults) gets. */
static int backend_of(const ek_builder *b)
{
    ek_runtime *rt = NULL;
    assert_int_equal(ek_runtime_new(b, &rt), EK_OK);
    int kind = ek_runtime_io_backend(rt);
    ek_runtime_free(rt);
    return kind;
}

static ek_builder *builder_for(int flavor, int backend)
{
    ek_builder *b = ekt_builder(flavor, flavor == EK_FLAVOR_MULTI_THREAD ? 2 : 0, -1, 0);
    assert_int_equal(ek_builder_set_io_backend(b, backend), EK_OK);
    return b;
}

static ek_runtime *rt_for(int flavor, int backend)
{
    ek_builder *b = builder_for(flavor, backend);
    ek_runtime *rt = NULL;
    assert_int_equal(ek_runtime_new(b, &rt), EK_OK);
    ek_builder_free(b);
    assert_int_equal(ek_runtime_io_backend(rt), backend);
    return rt;
}

/* One round trip each way over a fresh loopback pair. */
static void echo_once(ek_runtime *rt)
{
    ek_tcp_stream *c, *s;
    t_tcp_pair(rt, &c, &s);
    char buf[16];
    t_tcp_write_all(rt, c, "ping", 4);
    assert_int_equal(t_tcp_read_exact(rt, s, buf, 4), 4);
    assert_memory_equal(buf, "ping", 4);
    t_tcp_write_all(rt, s, "pong!", 5);
    assert_int_equal(t_tcp_read_exact(rt, c, buf, 5), 5);
    assert_memory_equal(buf, "pong!", 5);
    ek_tcp_free(c);
    ek_tcp_free(s);
}

/* ---- selection ---- */

static char *saved_env;
static void env_save(void)
{
    const char *v = getenv("EKIDEN_IO_BACKEND");
    saved_env = v ? strdup(v) : NULL;
}
static void env_restore(void)
{
    if (saved_env)
        setenv("EKIDEN_IO_BACKEND", saved_env, 1);
    else
        unsetenv("EKIDEN_IO_BACKEND");
    free(saved_env);
    saved_env = NULL;
}

static void test_default_is_epoll_and_the_environment_chooses(void **state)
{
    env_save();
    unsetenv("EKIDEN_IO_BACKEND");
    assert_int_equal(backend_of(NULL), EK_IO_BACKEND_EPOLL);
    ek_builder *b = NULL;
    assert_int_equal(ek_builder_new(&b), EK_OK);
    assert_int_equal(backend_of(b), EK_IO_BACKEND_EPOLL);

    setenv("EKIDEN_IO_BACKEND", "uring", 1);
    assert_int_equal(backend_of(NULL), want_uring());
    assert_int_equal(backend_of(b), want_uring());
    setenv("EKIDEN_IO_BACKEND", "io_uring", 1);
    assert_int_equal(backend_of(b), want_uring());
    setenv("EKIDEN_IO_BACKEND", "epoll", 1);
    assert_int_equal(backend_of(b), EK_IO_BACKEND_EPOLL);
    /* Bad values are ignored, as EKIDEN_WORKER_THREADS's are. */
    const char *bad[] = {"", "URING", "uring ", "kqueue", "2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("EKIDEN_IO_BACKEND", bad[i], 1);
        assert_int_equal(backend_of(b), EK_IO_BACKEND_EPOLL);
    }
    /* Read when the runtime is built, not when the builder was made. */
    setenv("EKIDEN_IO_BACKEND", "uring", 1);
    assert_int_equal(backend_of(b), want_uring());
    ek_builder_free(b);
    env_restore();
    assert_int_equal(ekt_alloc_live(), 0);
}

static void test_the_builder_overrides_the_environment(void **state)
{
    env_save();
    setenv("EKIDEN_IO_BACKEND", "uring", 1);
    ek_builder *b = ekt_builder(EK_FLAVOR_CURRENT_THREAD, 0, -1, 0);
    assert_int_equal(ek_builder_set_io_backend(b, EK_IO_BACKEND_EPOLL), EK_OK);
    assert_int_equal(backend_of(b), EK_IO_BACKEND_EPOLL);
    setenv("EKIDEN_IO_BACKEND", "epoll", 1);
    assert_int_equal(ek_builder_set_io_backend(b, EK_IO_BACKEND_URING), EK_OK);
    assert_int_equal(backend_of(b), want_uring());
    /* Back to the default: the environment again. */
    assert_int_equal(ek_builder_set_io_backend(b, EK_IO_BACKEND_DEFAULT), EK_OK);
    assert_int_equal(backend_of(b), EK_IO_BACKEND_EPOLL);
    ek_builder_free(b);
    env_restore();
    assert_int_equal(ekt_alloc_live(), 0);
}

static void test_bad_arguments(void **state)
{
    assert_int_equal(ek_builder_set_io_backend(NULL, EK_IO_BACKEND_EPOLL), EK_EINVAL);
    ek_builder *b = ekt_builder(EK_FLAVOR_CURRENT_THREAD, 0, -1, 0);
    assert_int_equal(ek_builder_set_io_backend(b, 3), EK_EINVAL);
    assert_int_equal(ek_builder_set_io_backend(b, -1), EK_EINVAL);
    assert_int_equal(ek_builder_set_io_backend(b, EK_IO_BACKEND_EPOLL | EK_IO_BACKEND_URING),
                     EK_EINVAL);
    /* A rejected value leaves the builder as it was. */
    assert_int_equal(ek_builder_set_io_backend(b, EK_IO_BACKEND_EPOLL), EK_OK);
    assert_int_equal(ek_builder_set_io_backend(b, 7), EK_EINVAL);
    assert_int_equal(backend_of(b), EK_IO_BACKEND_EPOLL);
    assert_int_equal(ek_runtime_io_backend(NULL), EK_EINVAL);
    assert_int_equal(ek_runtime_io_backend((ek_runtime *)(void *)b), EK_EINVAL); /* not one */
    ek_builder_free(b);
    assert_int_equal(ekt_alloc_live(), 0);
}

/* ---- fallback ---- */

static void test_falls_back_to_epoll_when_the_kernel_refuses(void **state)
{
    static const int refusals[] = {EK_EPERM, EK_ENOSYS, EK_ENOTSUP};
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
        for (int fl = 0; fl < 2; fl++) {
            int flavor = fl ? EK_FLAVOR_CURRENT_THREAD : EK_FLAVOR_MULTI_THREAD;
            atomic_store(&ek__uring_test_init_error, refusals[i]);
            ek_builder *b = builder_for(flavor, EK_IO_BACKEND_URING);
            ek_runtime *rt = NULL;
            assert_int_equal(ek_runtime_new(b, &rt), EK_OK);
            atomic_store(&ek__uring_test_init_error, 0);
            ek_builder_free(b);
            assert_int_equal(ek_runtime_io_backend(rt), EK_IO_BACKEND_EPOLL);
            echo_once(rt); /* and it works */
            ekt_rt_free_checked(rt);
        }
    }
    /* Through the environment too. */
    env_save();
    setenv("EKIDEN_IO_BACKEND", "uring", 1);
    atomic_store(&ek__uring_test_init_error, EK_EPERM);
    assert_int_equal(backend_of(NULL), EK_IO_BACKEND_EPOLL);
    atomic_store(&ek__uring_test_init_error, 0);
    assert_int_equal(backend_of(NULL), want_uring());
    env_restore();
    assert_int_equal(ekt_alloc_live(), 0);
}

/* Kernels before 5.19 refuse IORING_SETUP_COOP_TASKRUN with EINVAL; uring.c
 * then sets the ring up again without it (ur_create). This executable's own
 * io_uring_queue_init_params is the one the backend's call binds to (liburing
 * is a shared library): it refuses the flag while refuse_coop is set and
 * passes every other call on to liburing's. */
struct io_uring;
static atomic_int refuse_coop, coop_refused, setups_without_coop;
int io_uring_queue_init_params(unsigned entries, struct io_uring *ring, struct io_uring_params *p);
int io_uring_queue_init_params(unsigned entries, struct io_uring *ring, struct io_uring_params *p)
{
    typedef int (*init_fn)(unsigned, struct io_uring *, struct io_uring_params *);
    static void *_Atomic real_sym; /* any thread may set up a ring */
    void *sym = atomic_load(&real_sym);
    if (sym == NULL) {
        sym = dlsym(RTLD_NEXT, "io_uring_queue_init_params");
        atomic_store(&real_sym, sym);
    }
    if (sym == NULL) return -ENOSYS;
    init_fn real;
    memcpy(&real, &sym, sizeof real);
    if (atomic_load(&refuse_coop)) {
        if (p->flags & IORING_SETUP_COOP_TASKRUN) {
            atomic_fetch_add(&coop_refused, 1);
            return -EINVAL;
        }
        atomic_fetch_add(&setups_without_coop, 1);
    }
    return real(entries, ring, p);
}

static void test_uring_sets_up_again_without_coop_taskrun_when_refused(void **state)
{
    (void)state;
    if (!uring_possible()) {
        skip();
        return;
    }
    for (int fl = 0; fl < 2; fl++) {
        int flavor = fl ? EK_FLAVOR_CURRENT_THREAD : EK_FLAVOR_MULTI_THREAD;
        atomic_store(&coop_refused, 0);
        atomic_store(&setups_without_coop, 0);
        atomic_store(&refuse_coop, 1);
        ek_builder *b = builder_for(flavor, EK_IO_BACKEND_URING);
        ek_runtime *rt = NULL;
        assert_int_equal(ek_runtime_new(b, &rt), EK_OK);
        atomic_store(&refuse_coop, 0);
        ek_builder_free(b);
        /* refused once per ring asked with the flag, each set up again without it */
        assert_true(atomic_load(&coop_refused) >= 1);
        assert_true(atomic_load(&setups_without_coop) >= atomic_load(&coop_refused));
        assert_int_equal(ek_runtime_io_backend(rt), EK_IO_BACKEND_URING); /* not epoll */
        echo_once(rt);                                                    /* and it works */
        ekt_rt_free_checked(rt);
    }
    assert_int_equal(ekt_alloc_live(), 0);
}

/* ---- both backends ---- */

static const int backends[] = {EK_IO_BACKEND_EPOLL, EK_IO_BACKEND_URING};

static bool have(int backend)
{
    return backend == EK_IO_BACKEND_EPOLL || uring_possible();
}

static void test_echo_on_both_backends_and_flavours(void **state)
{
    for (int i = 0; i < 2; i++) {
        if (!have(backends[i])) continue;
        for (int fl = 0; fl < 2; fl++) {
            ek_runtime *rt =
                rt_for(fl ? EK_FLAVOR_CURRENT_THREAD : EK_FLAVOR_MULTI_THREAD, backends[i]);
            for (int k = 0; k < 3; k++) echo_once(rt);
            ekt_rt_free_checked(rt);
        }
    }
}

/* The read after a short read is skipped (backend.h, "Short reads"): the
 * short read clears READABLE, and the next bytes still come, on both backends
 * and flavours. On io_uring a fresh stream's first read is a direct recv(2)
 * (its receive is not armed yet): a skip that did not arm it first would wait
 * forever for the second message (the hang seen in session 3). A full read
 * (as many bytes as asked) leaves READABLE set: the rest is read at once. */
static void test_short_read_skips_the_next_read_on_both_backends(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        if (!have(backends[i])) continue;
        for (int fl = 0; fl < 2; fl++) {
            bool current = fl == 1;
            ek_runtime *rt =
                rt_for(current ? EK_FLAVOR_CURRENT_THREAD : EK_FLAVOR_MULTI_THREAD, backends[i]);
            ek_tcp_stream *c, *s;
            t_tcp_pair(rt, &c, &s);
            ek__io *io = ((ek__sock *)s)->io;
            char buf[64];
            size_t n = 0;
            for (int round = 0; round < 3; round++) {
                /* Short: 5 of 64. */
                t_tcp_write_all(rt, c, "hello", 5);
                assert_int_equal(t_tcp_read(rt, s, buf, sizeof buf, &n), EK_OK);
                assert_int_equal(n, 5);
                assert_memory_equal(buf, "hello", 5);
                /* Exact only where no other thread turns the driver: a worker's
                 * late event may set READABLE again (never clear it). */
                if (current) assert_int_equal(ek__io_readiness(io) & EK__READABLE, 0);
                /* Full: 4 of 8, then the other 4 without an event. */
                t_tcp_write_all(rt, c, "worlds!!", 8);
                assert_int_equal(t_tcp_read_exact(rt, s, buf, 4), 4);
                assert_memory_equal(buf, "worl", 4);
                if (current) assert_int_not_equal(ek__io_readiness(io) & EK__READABLE, 0);
                assert_int_equal(t_tcp_read(rt, s, buf, sizeof buf, &n), EK_OK);
                assert_int_equal(n, 4);
                assert_memory_equal(buf, "ds!!", 4);
            }
            /* The end after a short read is still seen (READ_CLOSED is not
             * cleared with READABLE). */
            t_tcp_write_all(rt, c, "bye", 3);
            assert_int_equal(ek_tcp_shutdown(c), EK_OK);
            size_t got = 0;
            while (got < 3) {
                assert_int_equal(t_tcp_read(rt, s, buf + got, sizeof buf - got, &n), EK_OK);
                assert_int_not_equal(n, 0);
                got += n;
            }
            assert_memory_equal(buf, "bye", 3);
            assert_int_equal(t_tcp_read(rt, s, buf, sizeof buf, &n), EK_OK);
            assert_int_equal(n, 0);
            ek_tcp_free(c);
            ek_tcp_free(s);
            ekt_rt_free_checked(rt);
        }
    }
}

/* Where the kernel refuses the sender ring (uring.c, "Submission"), a
 * stream's receive is submitted by the thread that arms it, as before: the
 * same echo and short-read checks on that path (EKIDEN_URING_DEFER_ARMS=0 is
 * read when the backend is created). */
static void test_receives_armed_by_the_reader_when_arms_are_not_deferred(void **state)
{
    if (!have(EK_IO_BACKEND_URING)) return;
    const char *old = getenv("EKIDEN_URING_DEFER_ARMS");
    char *saved = old ? strdup(old) : NULL;
    setenv("EKIDEN_URING_DEFER_ARMS", "0", 1);
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt =
            rt_for(fl ? EK_FLAVOR_CURRENT_THREAD : EK_FLAVOR_MULTI_THREAD, EK_IO_BACKEND_URING);
        assert_false(ek__backend_uring_defers_arms(ek__rt_driver(rt)->be));
        for (int k = 0; k < 3; k++) echo_once(rt);
        ekt_rt_free_checked(rt);
    }
    test_short_read_skips_the_next_read_on_both_backends(state);
    if (saved)
        setenv("EKIDEN_URING_DEFER_ARMS", saved, 1);
    else
        unsetenv("EKIDEN_URING_DEFER_ARMS");
    free(saved);
}

/* A sleep is the driver's poll timeout; a spawn from another thread while the
 * workers are idle is the cross-thread wake-up. */
static int sleep_poll(void *s, ek_cx *cx, void **out)
{
    ek_future **f = s;
    return ek_future_poll(*f, cx, out);
}

static void test_timeout_and_wake_on_both_backends(void **state)
{
    for (int i = 0; i < 2; i++) {
        if (!have(backends[i])) continue;
        ek_runtime *rt = rt_for(EK_FLAVOR_MULTI_THREAD, backends[i]);
        ek_future *f = NULL;
        assert_int_equal(ek_sleep(rt, 30, &f), EK_OK);
        uint64_t t0 = ekt_now_ms();
        assert_int_equal(ekt_block_on_fn(rt, sleep_poll, &f, NULL), EK_OK);
        assert_true(ekt_now_ms() - t0 >= 29);
        ek_future_drop(f);
        for (int k = 0; k < 50; k++) {
            usleep(k % 10 == 0 ? 2000 : 0); /* let the workers park in the driver */
            ek_join *j = NULL;
            assert_int_equal(ek_spawn(rt, ekt_ret_state, ekt_noop_drop, (void *)0x5, NULL, &j),
                             EK_OK);
            void *out = NULL;
            assert_int_equal(ek_join_wait(j, &out), EK_OK);
            assert_ptr_equal(out, (void *)0x5);
            ek_join_detach(j);
        }
        ekt_rt_free_checked(rt);
    }
}

/* Sockets registered by a thread that then exits: the kernel ends that
 * thread's multishot polls (-ECANCELED at their next event) and the driver
 * must re-arm them, or the streams go deaf. */
typedef struct {
    ek_runtime *rt;
    ek_tcp_stream *c, *s;
} pair_job;

static void *pair_thread(void *arg)
{
    pair_job *j = arg;
    t_tcp_pair(j->rt, &j->c, &j->s);
    return NULL;
}

static void test_streams_outlive_the_thread_that_registered_them(void **state)
{
    for (int i = 0; i < 2; i++) {
        if (!have(backends[i])) continue;
        for (int fl = 0; fl < 2; fl++) {
            ek_runtime *rt =
                rt_for(fl ? EK_FLAVOR_CURRENT_THREAD : EK_FLAVOR_MULTI_THREAD, backends[i]);
            pair_job j = {.rt = rt};
            pthread_t th;
            assert_int_equal(pthread_create(&th, NULL, pair_thread, &j), 0);
            assert_int_equal(pthread_join(th, NULL), 0);
            char buf[8];
            for (int k = 0; k < 20; k++) {
                t_tcp_write_all(rt, j.c, "abc", 3);
                assert_int_equal(t_tcp_read_exact(rt, j.s, buf, 3), 3);
                assert_memory_equal(buf, "abc", 3);
                t_tcp_write_all(rt, j.s, "xyz", 3);
                assert_int_equal(t_tcp_read_exact(rt, j.c, buf, 3), 3);
                assert_memory_equal(buf, "xyz", 3);
            }
            ek_tcp_free(j.c);
            ek_tcp_free(j.s);
            ekt_rt_free_checked(rt);
        }
    }
}

/* Churn: a raw peer keeps writing while the runtime's streams are freed, so
 * that events are in flight for registrations being torn down (ASan checks
 * that none of them reaches freed memory) and fds are reused at once. */
static void *writer_thread(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[512];
    memset(buf, 'w', sizeof buf);
    while (write(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
    return NULL;
}

static void test_deregister_with_events_in_flight(void **state)
{
    long rounds = ekt_scale(200);
    for (int i = 0; i < 2; i++) {
        if (!have(backends[i])) continue;
        ek_runtime *rt = rt_for(EK_FLAVOR_MULTI_THREAD, backends[i]);
        ek_sockaddr *addr;
        ek_tcp_listener *l = t_tcp_listen(rt, "127.0.0.1:0", &addr);
        int fds0 = t_fd_count();
        for (long r = 0; r < rounds; r++) {
            int raw = t_raw_connect(addr);
            ek_tcp_stream *s = t_tcp_accept(rt, l);
            pthread_t th;
            assert_int_equal(pthread_create(&th, NULL, writer_thread, (void *)(intptr_t)raw), 0);
            char buf[256];
            size_t n = 0;
            assert_int_equal(t_tcp_read(rt, s, buf, sizeof buf, &n), EK_OK);
            assert_true(n > 0 && buf[0] == 'w');
            ek_tcp_free(s); /* the writer gets EPIPE/ECONNRESET and stops */
            assert_int_equal(pthread_join(th, NULL), 0);
        }
        assert_int_equal(t_fd_count(), fds0);
        ek_tcp_listener_free(l);
        ek_sockaddr_free(addr);
        ekt_rt_free_checked(rt);
    }
}

/* ---- io_uring: who submits ---- */

/* The kernel runs a request's completions as task work on the thread that
 * submitted it, waking that thread if it sleeps. Streams made by a thread
 * that then waits in ek_join_wait (as a server's main thread, which accepts,
 * waits in ek_block_on) must not wake it when they become writable again:
 * their polls are submitted by the driver's thread (uring.c, "Submission").
 * A task pumps bytes from one end of a pair to the other until its writes
 * have waited for room PUMP_WAITS times, each wait ended by a POLLOUT event. */
enum { PUMP_WAITS = 40, PUMP_CHUNK = 65536 };
typedef struct {
    ek_tcp_stream *c, *s;
    long waits, sent, got;
    char buf[PUMP_CHUNK];
} pump_job;

static int pump_poll(void *state, ek_cx *cx, void **out)
{
    pump_job *j = state;
    EK__UNUSED(out);
    for (;;) {
        bool blocked = false;
        while (j->waits < PUMP_WAITS && !blocked) {
            size_t n = 0;
            int rc = ek_tcp_write(j->c, cx, j->buf, sizeof j->buf, &n);
            if (rc == EK_PENDING) {
                j->waits++;
                blocked = true;
            } else if (rc != EK_OK) {
                return rc;
            } else {
                j->sent += (long)n;
            }
        }
        for (;;) {
            size_t n = 0;
            int rc = ek_tcp_read(j->s, cx, j->buf, sizeof j->buf, &n);
            if (rc == EK_PENDING) break;
            if (rc != EK_OK) return rc;
            if (n == 0) return EK_EPIPE;
            j->got += (long)n;
        }
        if (j->waits >= PUMP_WAITS && j->got == j->sent) return EK_OK;
        if (blocked || j->waits >= PUMP_WAITS) return EK_PENDING;
    }
}

static long thread_switches(void)
{
    struct rusage ru;
    assert_int_equal(getrusage(RUSAGE_THREAD, &ru), 0);
    return ru.ru_nvcsw; /* sleeps and wake-ups; preemptions (ru_nivcsw) follow the machine's load */
}

static void test_a_waiting_registrant_is_not_woken_by_its_streams(void **state)
{
    if (!have(EK_IO_BACKEND_URING)) return;
    ek_runtime *rt = rt_for(EK_FLAVOR_MULTI_THREAD, EK_IO_BACKEND_URING);
    if (!ek__backend_uring_defers_arms(ek__rt_driver(rt)->be)) {
        ekt_rt_free_checked(rt); /* no sender ring here: submitted by the caller */
        return;
    }
    pump_job *pj = calloc(1, sizeof *pj);
    assert_non_null(pj);
    t_tcp_pair(rt, &pj->c, &pj->s);
    ek_join *j = NULL;
    long before = thread_switches();
    assert_int_equal(ek_spawn(rt, pump_poll, ekt_noop_drop, pj, NULL, &j), EK_OK);
    assert_int_equal(ek_join_wait(j, NULL), EK_OK);
    long during = thread_switches() - before;
    ek_join_detach(j);
    assert_int_equal(pj->waits, PUMP_WAITS);
    assert_true(pj->got == pj->sent && pj->sent > 0);
    /* Woken once by the join (and by a few wake-ups of the runtime's own);
     * with the polls submitted here, about once per wait. */
    if (during >= PUMP_WAITS / 4)
        fail_msg("the waiting thread switched %ld times for %d waits", during, PUMP_WAITS);
    ek_tcp_free(pj->c);
    ek_tcp_free(pj->s);
    free(pj);
    ekt_rt_free_checked(rt);
}

/* ---- io_uring's ring reads ---- */

/* The ring-read figures of rt's backend; false when it has none (epoll, or a
 * kernel without multishot recv). */
static bool ring_info(ek_runtime *rt, int *free_bufs, int *nbufs, int *buf_size, uint64_t *starved)
{
    return ek__backend_ring_reads(ek__rt_driver(rt)->be, free_bufs, nbufs, buf_size, starved);
}

static unsigned char pattern(size_t k, unsigned salt)
{
    return (unsigned char)(k * 7 + (k >> 9) + salt);
}

/* Whether buf[0..n) is the pattern from offset `at`. */
static bool pattern_at(const unsigned char *buf, size_t n, size_t at, unsigned salt)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] != pattern(at + i, salt)) return false;
    return true;
}

typedef struct {
    int fd;
    size_t len;
    unsigned salt;
} raw_writer;

/* Write len bytes of the pattern in uneven pieces, then end the stream. */
static void *raw_write_thread(void *arg)
{
    raw_writer *w = arg;
    unsigned char buf[9000];
    size_t k = 0, piece = 1;
    while (k < w->len) {
        size_t n = piece < w->len - k ? piece : w->len - k;
        for (size_t i = 0; i < n; i++) buf[i] = pattern(k + i, w->salt);
        ssize_t put = write(w->fd, buf, n);
        assert_true(put > 0);
        k += (size_t)put;
        piece = piece * 3 % sizeof buf + 1;
    }
    shutdown(w->fd, SHUT_WR);
    return NULL;
}

/* A reader task: reads of sizes 1 .. 64 KiB in turn, a 1 ms nap every few
 * reads (so that its queue fills and the recv is paused), checking every
 * byte, until the end of the stream; then reads once more (0 again). */
typedef struct {
    ek_runtime *rt;
    ek_tcp_stream *s;
    unsigned salt;
    size_t got, reads;
    ek_future *nap;
    int rc; /* EK_OK, or what went wrong */
    bool eof;
    unsigned char buf[65536];
} slow_reader;

static int slow_reader_poll(void *state, ek_cx *cx, void **out)
{
    static const size_t sizes[] = {1, 3, 17, 100, 4095, 4096, 4097, 5000, 65536};
    slow_reader *r = state;
    *out = NULL;
    for (;;) {
        if (r->nap) {
            int rc = ek_future_poll(r->nap, cx, NULL);
            if (rc == EK_PENDING) return EK_PENDING;
            ek_future_drop(r->nap);
            r->nap = NULL;
        }
        size_t n = 0, want = sizes[r->reads % (sizeof sizes / sizeof sizes[0])];
        int rc = ek_tcp_read(r->s, cx, r->buf, want, &n);
        if (rc == EK_PENDING) return EK_PENDING;
        if (rc != EK_OK) {
            r->rc = rc;
            return EK_OK;
        }
        if (n == 0) {
            if (r->eof) return EK_OK; /* the end, twice */
            r->eof = true;
            continue;
        }
        if (r->eof || n > want) {
            r->rc = EK_EINVAL; /* bytes after the end, or too many */
            return EK_OK;
        }
        if (!pattern_at(r->buf, n, r->got, r->salt)) {
            r->rc = EK_EINVAL;
            return EK_OK;
        }
        r->got += n;
        if (++r->reads % 8 == 0) assert_int_equal(ek_sleep(r->rt, 1, &r->nap), EK_OK);
    }
}

/* Caught by a queue that loses or reorders buffers, a pause whose buffers are
 * not read before the plain recv(2) that follows it, or buffers not given
 * back. */
static void test_ring_reads_keep_order_and_give_every_buffer_back(void **state)
{
    (void)state;
    if (!have(EK_IO_BACKEND_URING)) return;
    ek_runtime *rt = rt_for(EK_FLAVOR_MULTI_THREAD, EK_IO_BACKEND_URING);
    int nbufs = 0;
    if (!ring_info(rt, NULL, &nbufs, NULL, NULL)) {
        ekt_rt_free_checked(rt); /* (a kernel without multishot recv) */
        return;
    }
    ek_sockaddr *addr;
    ek_tcp_listener *l = t_tcp_listen(rt, "127.0.0.1:0", &addr);
    for (unsigned round = 0; round < 2; round++) {
        int raw = t_raw_connect(addr);
        slow_reader *r = calloc(1, sizeof *r);
        assert_non_null(r);
        r->rt = rt;
        r->s = t_tcp_accept(rt, l);
        r->salt = round;
        raw_writer w = {raw, (size_t)ekt_scale(2 << 20), round};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, raw_write_thread, &w), 0);
        assert_int_equal(ekt_spawn_join(rt, slow_reader_poll, r, NULL), EK_OK);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(r->rc, EK_OK);
        assert_true(r->eof);
        assert_int_equal(r->got, w.len);
        ek_tcp_free(r->s);
        free(r);
        close(raw);
        int free_bufs = -1;
        assert_true(ring_info(rt, &free_bufs, NULL, NULL, NULL));
        assert_int_equal(free_bufs, nbufs);
    }
    ek_tcp_listener_free(l);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

/* Many streams whose readers hold off while more bytes arrive than the ring
 * has buffers for: the recvs that find none end (-ENOBUFS), later reads go
 * through a read poll and recv(2), and every byte still arrives in order. */
typedef struct {
    ek_runtime *rt;
    ek_tcp_stream *s;
    atomic_int *gate;
    atomic_long *armed;
    unsigned salt;
    int phase;
    size_t got, want;
    ek_future *nap;
    int rc;
    unsigned char buf[6000];
} gated_reader;

static int gated_reader_poll(void *state, ek_cx *cx, void **out)
{
    gated_reader *r = state;
    *out = NULL;
    size_t n = 0;
    if (r->phase == 0) {
        /* Nothing was sent yet: this read arms the stream's recv. */
        int rc = ek_tcp_read(r->s, cx, r->buf, sizeof r->buf, &n);
        if (rc != EK_PENDING) {
            r->rc = rc == EK_OK ? EK_EINVAL : rc;
            atomic_fetch_add(r->armed, 1);
            return EK_OK;
        }
        r->phase = 1;
        atomic_fetch_add(r->armed, 1);
    }
    while (r->phase == 1) {
        if (r->nap) {
            if (ek_future_poll(r->nap, cx, NULL) == EK_PENDING) return EK_PENDING;
            ek_future_drop(r->nap);
            r->nap = NULL;
        }
        if (atomic_load(r->gate)) {
            r->phase = 2;
            break;
        }
        assert_int_equal(ek_sleep(r->rt, 1, &r->nap), EK_OK);
    }
    for (;;) {
        int rc = ek_tcp_read(r->s, cx, r->buf, sizeof r->buf, &n);
        if (rc == EK_PENDING) return EK_PENDING;
        if (rc != EK_OK || n == 0) {
            r->rc = rc != EK_OK ? rc : r->got == r->want ? EK_OK : EK_EPIPE;
            return EK_OK;
        }
        if (!pattern_at(r->buf, n, r->got, r->salt)) {
            r->rc = EK_EINVAL;
            return EK_OK;
        }
        r->got += n;
    }
}

typedef struct {
    int *fds;
    int n;
    size_t len;
} many_writer;

static void *many_write_thread(void *arg)
{
    many_writer *m = arg;
    for (int i = 0; i < m->n; i++) {
        raw_writer w = {m->fds[i], m->len, (unsigned)i};
        raw_write_thread(&w);
    }
    return NULL;
}

static void test_ring_reads_survive_running_out_of_buffers(void **state)
{
    (void)state;
    if (!have(EK_IO_BACKEND_URING)) return;
    ek_runtime *rt = rt_for(EK_FLAVOR_MULTI_THREAD, EK_IO_BACKEND_URING);
    int nbufs = 0, bsize = 0;
    uint64_t starved0 = 0, starved1 = 0;
    if (!ring_info(rt, NULL, &nbufs, &bsize, &starved0)) {
        ekt_rt_free_checked(rt);
        return;
    }
    /* 12 buffers a stream (fewer than the pause's 16), 25% more in all than
     * the ring has; each stream's 48 KiB fits in the kernel's socket buffers
     * while its recv is gone. */
    enum { PER_STREAM = 12 };
    int n = nbufs * 5 / 4 / PER_STREAM + 1;
    size_t len = (size_t)PER_STREAM * (size_t)bsize;
    ek_sockaddr *addr;
    ek_tcp_listener *l = t_tcp_listen(rt, "127.0.0.1:0", &addr);
    int *raw = calloc((size_t)n, sizeof *raw);
    gated_reader *rd = calloc((size_t)n, sizeof *rd);
    ek_join **joins = calloc((size_t)n, sizeof *joins);
    assert_true(raw && rd && joins);
    atomic_int gate = 0;
    atomic_long armed = 0;
    for (int i = 0; i < n; i++) {
        raw[i] = t_raw_connect(addr);
        rd[i] = (gated_reader){.rt = rt,
                               .s = t_tcp_accept(rt, l),
                               .gate = &gate,
                               .armed = &armed,
                               .salt = (unsigned)i,
                               .want = len};
        joins[i] = ekt_spawn(rt, gated_reader_poll, ekt_noop_drop, &rd[i]);
    }
    assert_int_equal(t_wait_for(&armed, n, 60000), n);
    many_writer m = {raw, n, len};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, many_write_thread, &m), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    atomic_store(&gate, 1);
    for (int i = 0; i < n; i++) {
        assert_int_equal(ekt_join(joins[i], NULL), EK_OK);
        assert_int_equal(rd[i].rc, EK_OK);
        assert_int_equal(rd[i].got, len);
    }
    int free_bufs = -1;
    assert_true(ring_info(rt, &free_bufs, NULL, NULL, &starved1));
    assert_true(starved1 > starved0); /* the ring did run short */
    assert_int_equal(free_bufs, nbufs);
    for (int i = 0; i < n; i++) {
        ek_tcp_free(rd[i].s);
        close(raw[i]);
    }
    free(raw);
    free(rd);
    free(joins);
    ek_tcp_listener_free(l);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)
    const struct CMUnitTest tests[] = {
        T(test_default_is_epoll_and_the_environment_chooses),
        T(test_the_builder_overrides_the_environment),
        T(test_bad_arguments),
        T(test_falls_back_to_epoll_when_the_kernel_refuses),
        T(test_uring_sets_up_again_without_coop_taskrun_when_refused),
        T(test_echo_on_both_backends_and_flavours),
        T(test_short_read_skips_the_next_read_on_both_backends),
        T(test_receives_armed_by_the_reader_when_arms_are_not_deferred),
        T(test_timeout_and_wake_on_both_backends),
        T(test_streams_outlive_the_thread_that_registered_them),
        T(test_deregister_with_events_in_flight),
        T(test_a_waiting_registrant_is_not_woken_by_its_streams),
        T(test_ring_reads_keep_order_and_give_every_buffer_back),
        T(test_ring_reads_survive_running_out_of_buffers),
#undef T
    };
    if (getenv("EKT_FILTER")) cmocka_set_test_filter(getenv("EKT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
