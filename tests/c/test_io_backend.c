/*
 * test_io_backend.c - choosing the reactor backend (ek_builder_set_io_backend,
 * EKIDEN_IO_BACKEND, ek_runtime_io_backend), the fallback from io_uring to
 * epoll when the kernel refuses, and what only the io_uring backend has to get
 * right: a poll armed by a thread that has exited (the kernel ends it: the
 * driver re-arms), register/deregister churn with events in flight, and the
 * cross-thread wake-up and poll timeout.
 *
 * The rest of the suite runs on both backends (tests/run_all.sh, stage uring).
 */
#include "support.h"
#include "net_helpers.h"

#include "driver/backend.h"

#include <fcntl.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <signal.h>
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
        T(test_echo_on_both_backends_and_flavours),
        T(test_timeout_and_wake_on_both_backends),
        T(test_streams_outlive_the_thread_that_registered_them),
        T(test_deregister_with_events_in_flight),
#undef T
    };
    if (getenv("EKT_FILTER")) cmocka_set_test_filter(getenv("EKT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
