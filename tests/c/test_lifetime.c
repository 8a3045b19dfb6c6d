/*
 * test_lifetime.c - no order of frees crashes or leaks (DESIGN section 7a).
 *
 * Every resource type is made on a runtime, then the runtime and the resource
 * are freed in every order: the resource first; shutdown, use, free the
 * resource, free the runtime; shutdown, free the runtime, use, free the
 * resource; free the runtime (which shuts down), use, free the resource. A use
 * after shutdown answers EK_ECLOSED (join handles: the task's final result),
 * driven from a second runtime since the first cannot drive anything any more.
 * Each case ends with the allocator holding exactly what it held before, so the
 * runtime's memory went with the last reference. ASan runs the same cases.
 */
#include "net_helpers.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>

enum kind {
    K_TCP_LISTENER,
    K_TCP_STREAM,
    K_TCP_ACCEPTED,
    K_UDP,
    K_UNIX_LISTENER,
    K_UNIX_STREAM,
    K_UNIX_DGRAM,
    K_SLEEP,
    K_SLEEP_FILED, /* polled once: sits in the timer wheel with a waker */
    K_TIMEOUT,
    K_INTERVAL,
    K_CONNECT, /* a connect future never polled */
    K_JOIN_PENDING,
    K_JOIN_DONE,
    K_JOIN_BLOCKING,
    K_JOIN_LOCAL,
    K_COUNT
};

static const char *const kind_names[K_COUNT] = {
    "tcp listener", "tcp stream", "tcp accepted",  "udp",        "unix listener", "unix stream",
    "unix dgram",   "sleep",      "sleep filed",   "timeout",    "interval",      "connect",
    "join pending", "join done",  "join blocking", "join local",
};

enum order { O_FREE_FIRST, O_SHUTDOWN_USE, O_SHUTDOWN_RTFREE_USE, O_RTFREE_USE, O_COUNT };

static char unix_dir[64];
static int unix_seq;

static void unix_path(char *buf, size_t len)
{
    snprintf(buf, len, "%s/s%d", unix_dir, unix_seq++);
}

static int poll_once_then_done(void *state, ek_cx *cx, void **out)
{
    int rc = ek_future_poll(state, cx, NULL);
    assert_int_equal(rc, EK_PENDING);
    *out = NULL;
    return EK_OK;
}

/* Drive rt until j finished (a current-thread runtime runs only when driven). */
static int until_finished(void *state, ek_cx *cx, void **out)
{
    *out = NULL;
    return ek_join_is_finished(state) == 1 ? EK_OK : ek_yield_now(cx);
}

static int job_ok(void *arg, void **out)
{
    *out = arg;
    return EK_OK;
}

/* Make one resource of `kind` on rt. Helper resources (a listener for the
 * stream kinds) are freed before returning. */
static void *make(ek_runtime *rt, int kind)
{
    void *h = NULL;
    char path[128];
    switch (kind) {
    case K_TCP_LISTENER:
        assert_int_equal(ek_tcp_listen(rt, "127.0.0.1:0", (ek_tcp_listener **)&h), EK_OK);
        break;
    case K_TCP_STREAM:
    case K_TCP_ACCEPTED: {
        ek_tcp_stream *c, *s;
        t_tcp_pair(rt, &c, &s);
        if (kind == K_TCP_STREAM) {
            ek_tcp_free(s);
            h = c;
        } else {
            ek_tcp_free(c);
            h = s;
        }
        break;
    }
    case K_UDP: {
        ek_sockaddr *a;
        assert_int_equal(ek_sockaddr_parse("127.0.0.1:0", &a), EK_OK);
        assert_int_equal(ek_udp_bind(rt, a, 0, (ek_udp_socket **)&h), EK_OK);
        ek_sockaddr_free(a);
        break;
    }
    case K_UNIX_LISTENER:
        unix_path(path, sizeof path);
        assert_int_equal(ek_unix_bind(rt, path, 0, (ek_unix_listener **)&h), EK_OK);
        break;
    case K_UNIX_STREAM: {
        ek_unix_stream *a, *b;
        assert_int_equal(ek_unix_pair(rt, &a, &b), EK_OK);
        ek_unix_free(b);
        h = a;
        break;
    }
    case K_UNIX_DGRAM:
        unix_path(path, sizeof path);
        assert_int_equal(ek_unix_dgram_bind(rt, path, (ek_unix_dgram **)&h), EK_OK);
        break;
    case K_SLEEP:
        assert_int_equal(ek_sleep(rt, 100000, (ek_future **)&h), EK_OK);
        break;
    case K_SLEEP_FILED:
        assert_int_equal(ek_sleep(rt, 100000, (ek_future **)&h), EK_OK);
        assert_int_equal(ekt_block_on_fn(rt, poll_once_then_done, h, NULL), EK_OK);
        break;
    case K_TIMEOUT: {
        ek_future *inner;
        assert_int_equal(ek_sleep(rt, 100000, &inner), EK_OK);
        assert_int_equal(ek_timeout(rt, inner, 100000, (ek_future **)&h), EK_OK);
        break;
    }
    case K_INTERVAL:
        assert_int_equal(ek_interval_new(rt, 100000, EK_MISSED_TICK_BURST, (ek_interval **)&h),
                         EK_OK);
        break;
    case K_CONNECT: {
        ek_sockaddr *a;
        assert_int_equal(ek_sockaddr_parse("127.0.0.1:9", &a), EK_OK);
        assert_int_equal(ek_tcp_connect(rt, a, (ek_future **)&h), EK_OK);
        ek_sockaddr_free(a);
        break;
    }
    case K_JOIN_PENDING:
        assert_int_equal(ek_spawn(rt, ekt_pend_forever, ekt_count_drop, NULL, NULL, (ek_join **)&h),
                         EK_OK);
        break;
    case K_JOIN_DONE: {
        assert_int_equal(
            ek_spawn(rt, ekt_ret_state, ekt_noop_drop, (void *)0x51, NULL, (ek_join **)&h), EK_OK);
        assert_int_equal(ekt_block_on_fn(rt, until_finished, h, NULL), EK_OK);
        break;
    }
    case K_JOIN_BLOCKING:
        assert_int_equal(ek_spawn_blocking(rt, job_ok, NULL, (void *)0x52, NULL, (ek_join **)&h),
                         EK_OK);
        assert_int_equal(ekt_block_on_fn(rt, until_finished, h, NULL), EK_OK);
        break;
    case K_JOIN_LOCAL:
        assert_int_equal(
            ek_spawn_local(rt, ekt_pend_forever, ekt_count_drop, NULL, NULL, (ek_join **)&h),
            EK_OK);
        break;
    }
    assert_non_null(h);
    return h;
}

/* ---- use: one operation, polled on another runtime ---- */

typedef struct use_op {
    int kind;
    void *h;
} use_op;

static int use_poll(void *state, ek_cx *cx, void **out)
{
    use_op *u = state;
    char buf[8];
    size_t n;
    uint64_t tick;
    void *o = NULL;
    *out = NULL;
    switch (u->kind) {
    case K_TCP_LISTENER: {
        ek_tcp_stream *s = NULL;
        return ek_tcp_accept(u->h, cx, &s, NULL);
    }
    case K_TCP_STREAM:
    case K_TCP_ACCEPTED:
        return ek_tcp_read(u->h, cx, buf, sizeof buf, &n);
    case K_UDP:
        return ek_udp_recv(u->h, cx, buf, sizeof buf, &n);
    case K_UNIX_LISTENER: {
        ek_unix_stream *s = NULL;
        return ek_unix_accept(u->h, cx, &s, NULL);
    }
    case K_UNIX_STREAM:
        return ek_unix_read(u->h, cx, buf, sizeof buf, &n);
    case K_UNIX_DGRAM:
        return ek_unix_dgram_recv(u->h, cx, buf, sizeof buf, &n);
    case K_SLEEP:
    case K_SLEEP_FILED:
    case K_TIMEOUT:
    case K_CONNECT:
        return ek_future_poll(u->h, cx, &o);
    case K_INTERVAL:
        return ek_interval_tick(u->h, cx, &tick);
    }
    return EK_EINVAL;
}

/* Use h after its runtime shut down; returns the status. */
static int use(int kind, void *h)
{
    if (kind >= K_JOIN_PENDING) {
        void *out = NULL;
        int rc = ek_join_wait(h, &out);
        if (kind == K_JOIN_DONE && rc == EK_OK) assert_ptr_equal(out, (void *)0x51);
        if (kind == K_JOIN_BLOCKING && rc == EK_OK) assert_ptr_equal(out, (void *)0x52);
        return rc;
    }
    ek_runtime *rt2 = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    use_op u = {kind, h};
    int rc = ekt_block_on_fn(rt2, use_poll, &u, NULL);
    ek_runtime_free(rt2);
    return rc;
}

static int expected_after_shutdown(int kind)
{
    switch (kind) {
    case K_JOIN_PENDING:
    case K_JOIN_LOCAL:
        return EK_ECANCELED;
    case K_JOIN_DONE:
    case K_JOIN_BLOCKING:
        return EK_OK;
    default:
        return EK_ECLOSED;
    }
}

static void release(int kind, void *h)
{
    switch (kind) {
    case K_TCP_LISTENER:
        ek_tcp_listener_free(h);
        break;
    case K_TCP_STREAM:
    case K_TCP_ACCEPTED:
        ek_tcp_free(h);
        break;
    case K_UDP:
        ek_udp_free(h);
        break;
    case K_UNIX_LISTENER:
        ek_unix_listener_free(h);
        break;
    case K_UNIX_STREAM:
        ek_unix_free(h);
        break;
    case K_UNIX_DGRAM:
        ek_unix_dgram_free(h);
        break;
    case K_SLEEP:
    case K_SLEEP_FILED:
    case K_TIMEOUT:
    case K_CONNECT:
        ek_future_drop(h);
        break;
    case K_INTERVAL:
        ek_interval_free(h);
        break;
    default:
        ek_join_detach(h);
        break;
    }
}

static void one_case(int flavor, int kind, int order)
{
    long before = ekt_alloc_live();
    int fds = t_fd_count();
    ek_runtime *rt = ekt_rt(flavor, 2);
    void *h = make(rt, kind);
    int rc = EK_OK;
    switch (order) {
    case O_FREE_FIRST:
        release(kind, h);
        ek_runtime_free(rt);
        break;
    case O_SHUTDOWN_USE:
        assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
        rc = use(kind, h);
        release(kind, h);
        ek_runtime_free(rt);
        break;
    case O_SHUTDOWN_RTFREE_USE:
        assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
        ek_runtime_free(rt);
        rc = use(kind, h);
        release(kind, h);
        break;
    case O_RTFREE_USE:
        ek_runtime_free(rt);
        rc = use(kind, h);
        release(kind, h);
        break;
    }
    if (order != O_FREE_FIRST && rc != expected_after_shutdown(kind))
        fail_msg("%s, order %d: use gave %s, want %s", kind_names[kind], order, ek_err_name(rc),
                 ek_err_name(expected_after_shutdown(kind)));
    if (ekt_alloc_live() != before)
        fail_msg("%s, order %d: %ld allocations left", kind_names[kind], order,
                 ekt_alloc_live() - before);
    assert_int_equal(t_fd_count(), fds);
}

static void every_order(int flavor)
{
    for (int kind = 0; kind < K_COUNT; kind++)
        for (int order = 0; order < O_COUNT; order++) {
            ekt_reset_drops();
            one_case(flavor, kind, order);
            /* Tasks that never finished were dropped exactly once. */
            if (kind == K_JOIN_PENDING || kind == K_JOIN_LOCAL)
                assert_int_equal(atomic_load(&ekt_drops), 1);
        }
}

static void test_every_resource_in_every_order_multi_thread(void **state)
{
    (void)state;
    every_order(EK_FLAVOR_MULTI_THREAD);
}

static void test_every_resource_in_every_order_current_thread(void **state)
{
    (void)state;
    every_order(EK_FLAVOR_CURRENT_THREAD);
}

/* All at once, the runtime freed first, then the resources forwards or
 * backwards: the last one frees the runtime. */
static void all_at_once(int flavor, int backwards)
{
    long before = ekt_alloc_live();
    ek_runtime *rt = ekt_rt(flavor, 2);
    void *h[K_COUNT];
    for (int k = 0; k < K_COUNT; k++) h[k] = make(rt, k);
    ek_runtime_free(rt);
    assert_true(ekt_alloc_live() > before); /* held by the resources */
    for (int i = 0; i < K_COUNT; i++) {
        int k = backwards ? K_COUNT - 1 - i : i;
        release(k, h[k]);
    }
    assert_int_equal(ekt_alloc_live(), before);
}

static void test_all_resources_outlive_the_runtime_freed_forwards(void **state)
{
    (void)state;
    all_at_once(EK_FLAVOR_MULTI_THREAD, 0);
    all_at_once(EK_FLAVOR_CURRENT_THREAD, 0);
}

static void test_all_resources_outlive_the_runtime_freed_backwards(void **state)
{
    (void)state;
    all_at_once(EK_FLAVOR_MULTI_THREAD, 1);
    all_at_once(EK_FLAVOR_CURRENT_THREAD, 1);
}

/* References cached by the thread that runs the runtime's tasks (rt.h's
 * ek__ref_cache): sleeps and tasks made inside ek_block_on, more than a batch
 * (64) of each so that the cache refills; TASKS_ALIVE exact inside and after;
 * the tasks cancelled by ek_runtime_free, the sleeps dropped after it: the last
 * drop frees the runtime, nothing is left. */
#define CACHED_N 200
typedef struct {
    ek_future *sleeps[CACHED_N];
    uint64_t alive_before, alive_inside;
} cached_ctx;

static uint64_t tasks_alive(ek_runtime *rt)
{
    uint64_t v[EK_METRIC_COUNT];
    assert_int_equal(ek_runtime_metrics(rt, v, EK_METRIC_COUNT), EK_METRIC_COUNT);
    return v[EK_METRIC_TASKS_ALIVE];
}

static int cached_root(void *state, ek_cx *cx, void **out)
{
    cached_ctx *c = state;
    ek_runtime *rt = ek_cx_runtime(cx);
    for (int i = 0; i < CACHED_N; i++)
        assert_int_equal(ek_sleep(rt, 1000000, &c->sleeps[i]), EK_OK);
    c->alive_before = tasks_alive(rt);
    for (int i = 0; i < CACHED_N; i++)
        assert_int_equal(ek_spawn(rt, ekt_pend_forever, ekt_count_drop, NULL, NULL, NULL), EK_OK);
    c->alive_inside = tasks_alive(rt);
    *out = NULL;
    return EK_OK;
}

static void cached_refs(int flavor)
{
    long before = ekt_alloc_live();
    int drops = atomic_load(&ekt_drops);
    ek_runtime *rt = ekt_rt(flavor, 2);
    cached_ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    assert_int_equal(ekt_block_on_fn(rt, cached_root, c, NULL), EK_OK);
    assert_int_equal(c->alive_inside, c->alive_before + CACHED_N);
    assert_int_equal(tasks_alive(rt), c->alive_inside); /* the cache was flushed */
    ek_runtime_free(rt);
    assert_int_equal(atomic_load(&ekt_drops), drops + CACHED_N);
    assert_true(ekt_alloc_live() > before); /* held by the sleeps */
    for (int i = 0; i < CACHED_N; i++) ek_future_drop(c->sleeps[i]);
    assert_int_equal(ekt_alloc_live(), before);
    free(c);
}

static void test_cached_references_outlive_block_on_and_free_the_runtime_last(void **state)
{
    (void)state;
    cached_refs(EK_FLAVOR_MULTI_THREAD);
    cached_refs(EK_FLAVOR_CURRENT_THREAD);
}

/* The reproducer: it aborted in a plain build and was a use-after-free
 * in the backend's deregister under ASan. */
static void test_listener_freed_after_runtime(void **state)
{
    (void)state;
    long before = ekt_alloc_live();
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_tcp_listener *l;
    assert_int_equal(ek_tcp_listen(rt, "127.0.0.1:0", &l), EK_OK);
    ek_runtime_free(rt);
    ek_tcp_listener_free(l);
    assert_int_equal(ekt_alloc_live(), before);
}

/* A join handle left attached keeps the runtime's memory until it is
 * detached; detaching after the free releases all of it. */
static void test_join_detached_after_runtime_free(void **state)
{
    (void)state;
    long before = ekt_alloc_live();
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_join *j[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(ek_spawn(rt, ekt_pend_forever, ekt_noop_drop, NULL, NULL, &j[i]), EK_OK);
    ek_runtime_free(rt);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(ek_join_is_finished(j[i]), 1);
        assert_int_equal(ek_join_wait(j[i], NULL), EK_ECANCELED);
        ek_join_detach(j[i]);
    }
    assert_int_equal(ekt_alloc_live(), before);
}

/* Nothing new can be made on a runtime kept alive only by its resources. */
static void test_resources_refused_after_shutdown(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_future *f;
    assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
    assert_int_equal(ek_sleep(rt, 1, &f), EK_ECLOSED);
    ek_tcp_listener *l;
    assert_int_equal(ek_tcp_listen(rt, "127.0.0.1:0", &l), EK_ECLOSED);
    ek_interval *iv;
    assert_int_equal(ek_interval_new(rt, 5, EK_MISSED_TICK_BURST, &iv), EK_ECLOSED);
    ek_join *j;
    assert_int_equal(ek_spawn(rt, ekt_ret_state, ekt_count_drop, NULL, NULL, &j), EK_ECLOSED);
    assert_int_equal(ek_spawn_local(rt, ekt_ret_state, ekt_count_drop, NULL, NULL, &j), EK_ECLOSED);
    ek_runtime_free(rt);
    ek_runtime_free(rt == NULL ? rt : NULL); /* NULL ignored */
}

/* A second ek_runtime_free of a runtime its resources keep alive is ignored
 * (it must not drop a reference that is not the owner's). */
static void test_double_free_while_resources_hold_it(void **state)
{
    (void)state;
    long before = ekt_alloc_live();
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    ek_future *a, *b;
    assert_int_equal(ek_sleep(rt, 1000, &a), EK_OK);
    assert_int_equal(ek_sleep(rt, 1000, &b), EK_OK);
    ek_runtime_free(rt);
    ek_runtime_free(rt);
    ek_future_drop(a);
    assert_true(ekt_alloc_live() > before);
    ek_future_drop(b);
    assert_int_equal(ekt_alloc_live(), before);
}

/* Resources freed on other threads while the runtime is freed on this one. */
typedef struct racer {
    void *h[K_COUNT];
    atomic_int go;
} racer;

static void *race_free(void *arg)
{
    racer *r = arg;
    while (!atomic_load(&r->go)) sched_yield();
    for (int k = 0; k < K_COUNT; k++)
        if (k != K_JOIN_LOCAL) release(k, r->h[k]);
    return NULL;
}

static void test_resources_freed_on_another_thread_during_runtime_free(void **state)
{
    (void)state;
    long before = ekt_alloc_live();
    long rounds = ekt_scale(20);
    for (long i = 0; i < rounds; i++) {
        ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
        racer r = {.go = 0};
        for (int k = 0; k < K_COUNT; k++)
            if (k != K_JOIN_LOCAL) r.h[k] = make(rt, k);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, race_free, &r), 0);
        atomic_store(&r.go, 1);
        ek_runtime_free(rt);
        pthread_join(th, NULL);
    }
    assert_int_equal(ekt_alloc_live(), before);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(unix_dir, sizeof unix_dir, "/tmp/ek_lifetime_XXXXXX");
    return mkdtemp(unix_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", unix_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)
        T(test_listener_freed_after_runtime),
        T(test_join_detached_after_runtime_free),
        T(test_every_resource_in_every_order_multi_thread),
        T(test_every_resource_in_every_order_current_thread),
        T(test_all_resources_outlive_the_runtime_freed_forwards),
        T(test_all_resources_outlive_the_runtime_freed_backwards),
        T(test_cached_references_outlive_block_on_and_free_the_runtime_last),
        T(test_resources_refused_after_shutdown),
        T(test_double_free_while_resources_hold_it),
        T(test_resources_freed_on_another_thread_during_runtime_free),
#undef T
    };
    if (getenv("EKT_FILTER")) cmocka_set_test_filter(getenv("EKT_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
