/* test_task.c - tasks, join handles, wakers, local tasks, heap futures. */
#include "support.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

static int ret_error(void *s, ek_cx *cx, void **out)
{
    (void)s;
    (void)cx;
    (void)out;
    return EK_ECONNRESET;
}

static void run_both_flavors(void (*fn)(int flavor))
{
    fn(EK_FLAVOR_MULTI_THREAD);
    fn(EK_FLAVOR_CURRENT_THREAD);
}

/* ------------------------------------------------------------------------ */

static void spawn_and_join_wait(int flavor)
{
    ek_runtime *rt = ekt_rt(flavor, 2);
    ek_join *j = NULL;
    assert_int_equal(ek_spawn(rt, ekt_ret_state, ekt_noop_drop, (void *)0x42, NULL, &j), EK_OK);
    void *out = NULL;
    assert_int_equal(ek_join_wait(j, &out), EK_OK);
    assert_ptr_equal(out, (void *)0x42);
    assert_int_equal(ek_join_is_finished(j), 1);
    /* The result was handed over: a second wait reports the handle closed. */
    assert_int_equal(ek_join_wait(j, &out), EK_ECLOSED);
    ek_join_detach(j);
    ekt_rt_free_checked(rt);
}
static void test_spawn_then_join_wait_returns_result(void **s)
{
    (void)s;
    run_both_flavors(spawn_and_join_wait);
}

static void task_error_reaches_join(int flavor)
{
    ek_runtime *rt = ekt_rt(flavor, 2);
    ek_join *j = NULL;
    assert_int_equal(ek_spawn(rt, ret_error, ekt_count_drop, NULL, NULL, &j), EK_OK);
    atomic_store(&ekt_drops, 0);
    assert_int_equal(ek_join_wait(j, NULL), EK_ECONNRESET);
    ek_join_detach(j);
    ekt_rt_free_checked(rt);
}
static void test_task_error_is_the_join_result(void **s)
{
    (void)s;
    run_both_flavors(task_error_reaches_join);
}

static void abort_pending(int flavor)
{
    ek_runtime *rt = ekt_rt(flavor, 2);
    atomic_store(&ekt_drops, 0);
    ek_join *j = NULL;
    assert_int_equal(ek_spawn(rt, ekt_pend_forever, ekt_count_drop, NULL, NULL, &j), EK_OK);
    assert_int_equal(ek_join_abort(j), EK_OK);
    assert_int_equal(ek_join_wait(j, NULL), EK_ECANCELED);
    assert_int_equal(atomic_load(&ekt_drops), 1);
    /* Aborting a finished task changes nothing. */
    assert_int_equal(ek_join_abort(j), EK_OK);
    ek_join_detach(j);
    ekt_rt_free_checked(rt);
    assert_int_equal(atomic_load(&ekt_drops), 1);
}
static void test_abort_pending_task_drops_it_and_join_gets_canceled(void **s)
{
    (void)s;
    run_both_flavors(abort_pending);
}

static atomic_int out_drops;
static void out_drop(void *o)
{
    free(o);
    atomic_fetch_add(&out_drops, 1);
}
static int ret_malloc(void *s, ek_cx *cx, void **out)
{
    (void)s;
    (void)cx;
    *out = malloc(16);
    return EK_OK;
}

static void detached_result_released(int flavor)
{
    ek_runtime *rt = ekt_rt(flavor, 2);
    atomic_store(&out_drops, 0);
    /* Detached at spawn. */
    assert_int_equal(ek_spawn(rt, ret_malloc, ekt_noop_drop, NULL, out_drop, NULL), EK_OK);
    /* Detached after completion, result never taken. */
    ek_join *j = NULL;
    assert_int_equal(ek_spawn(rt, ret_malloc, ekt_noop_drop, NULL, out_drop, &j), EK_OK);
    ek_join *j2 = NULL;
    assert_int_equal(ek_spawn(rt, ekt_ret_state, ekt_noop_drop, NULL, NULL, &j2), EK_OK);
    assert_int_equal(ek_join_wait(j2, NULL), EK_OK); /* drives a current-thread rt */
    ek_join_detach(j2);
    while (!ek_join_is_finished(j)) {
        assert_int_equal(ekt_spawn_join(rt, ekt_ret_state, NULL, NULL), EK_OK);
    }
    ek_join_detach(j);
    ek_runtime_free(rt);
    assert_int_equal(atomic_load(&out_drops), 2);
    assert_int_equal(ekt_alloc_leaked(), 0);
}
static void test_untaken_result_goes_to_out_drop(void **s)
{
    (void)s;
    run_both_flavors(detached_result_released);
}

static void test_join_wait_without_out_releases_result_through_out_drop(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    atomic_store(&out_drops, 0);
    ek_join *j = NULL;
    assert_int_equal(ek_spawn(rt, ret_malloc, ekt_noop_drop, NULL, out_drop, &j), EK_OK);
    assert_int_equal(ek_join_wait(j, NULL), EK_OK);
    assert_int_equal(atomic_load(&out_drops), 1);
    ek_join_detach(j);
    /* ek_join_into_future consumes the handle even when it refuses out == NULL. */
    assert_int_equal(ek_spawn(rt, ret_malloc, ekt_noop_drop, NULL, out_drop, &j), EK_OK);
    while (!ek_join_is_finished(j)) usleep(100); /* so its result exists */
    assert_int_equal(ek_join_into_future(j, NULL), EK_EINVAL);
    ekt_rt_free_checked(rt);
    assert_int_equal(atomic_load(&out_drops), 2);
}

/* A task that wakes itself during its own poll must be polled again. */
typedef struct {
    int polls;
} self_wake;
static int self_waking(void *s, ek_cx *cx, void **out)
{
    self_wake *w = s;
    if (++w->polls < 5) {
        ek_waker *wk = ek_cx_waker(cx);
        ek_waker_wake(wk); /* while running: must be resubmitted after the poll */
        return EK_PENDING;
    }
    *out = NULL;
    return EK_OK;
}
static void woken_during_poll(int flavor)
{
    ek_runtime *rt = ekt_rt(flavor, 2);
    self_wake w = {0};
    ek_join *j = NULL;
    assert_int_equal(ek_spawn(rt, self_waking, ekt_noop_drop, &w, NULL, &j), EK_OK);
    assert_int_equal(ek_join_wait(j, NULL), EK_OK);
    assert_int_equal(w.polls, 5);
    ek_join_detach(j);
    ekt_rt_free_checked(rt);
}
static void test_task_woken_during_its_own_poll_is_not_lost(void **s)
{
    (void)s;
    run_both_flavors(woken_during_poll);
}

/* yield_now: pending once, then polled again. */
typedef struct {
    int n;
} yielder;
static int yield_n(void *s, ek_cx *cx, void **out)
{
    yielder *y = s;
    if (y->n-- > 0) return ek_yield_now(cx);
    *out = NULL;
    return EK_OK;
}
static void yields(int flavor)
{
    ek_runtime *rt = ekt_rt(flavor, 2);
    yielder y = {1000};
    ek_join *j = NULL;
    assert_int_equal(ek_spawn(rt, yield_n, ekt_noop_drop, &y, NULL, &j), EK_OK);
    assert_int_equal(ek_join_wait(j, NULL), EK_OK);
    assert_int_equal(y.n, -1);
    ek_join_detach(j);
    ekt_rt_free_checked(rt);
}
static void test_yield_now_repolls_the_task(void **s)
{
    (void)s;
    run_both_flavors(yields);
}

/* Join from inside a task, via ek_join_poll, across many children. */
typedef struct {
    ek_join **js;
    int n, i, started;
    long sum;
} joiner;
static int join_children(void *s, ek_cx *cx, void **out)
{
    joiner *p = s;
    if (!p->started) {
        for (int i = 0; i < p->n; i++)
            if (ek_spawn(ek_cx_runtime(cx), ekt_ret_state, ekt_noop_drop, (void *)(intptr_t)(i + 1),
                         NULL, &p->js[i]) != EK_OK)
                return EK_ENOMEM;
        p->started = 1;
    }
    for (; p->i < p->n; p->i++) {
        void *o = NULL;
        int rc = ek_join_poll(p->js[p->i], cx, &o);
        if (rc == EK_PENDING) return rc;
        if (rc != EK_OK) return rc;
        p->sum += (intptr_t)o;
        ek_join_detach(p->js[p->i]);
    }
    *out = NULL;
    return EK_OK;
}
static void many_children(int flavor)
{
    ek_runtime *rt = ekt_rt(flavor, 2);
    joiner p = {0};
    p.n = (int)ekt_scale(20000);
    p.js = calloc((size_t)p.n, sizeof *p.js);
    assert_int_equal(ekt_block_on_fn(rt, join_children, &p, NULL), EK_OK);
    assert_int_equal(p.sum, (long)p.n * (p.n + 1) / 2);
    free(p.js);
    ekt_rt_free_checked(rt);
}
static void test_join_poll_inside_task_collects_every_child(void **s)
{
    (void)s;
    run_both_flavors(many_children);
}

/* Local tasks run on the thread that spawned them. */
typedef struct {
    pthread_t expect;
    atomic_int wrong;
    atomic_int ran;
} local_ctx;
static int local_check(void *s, ek_cx *cx, void **out)
{
    (void)cx;
    local_ctx *c = s;
    if (!pthread_equal(pthread_self(), c->expect)) atomic_fetch_add(&c->wrong, 1);
    atomic_fetch_add(&c->ran, 1);
    *out = NULL;
    return EK_OK;
}
static void local_tasks(int flavor)
{
    ek_runtime *rt = ekt_rt(flavor, 2);
    local_ctx c = {.expect = pthread_self()};
    enum { N = 200 };
    ek_join *js[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(ek_spawn_local(rt, local_check, ekt_noop_drop, &c, NULL, &js[i]), EK_OK);
    /* They run while this thread waits in ek_join_wait. */
    for (int i = 0; i < N; i++) {
        assert_int_equal(ek_join_wait(js[i], NULL), EK_OK);
        ek_join_detach(js[i]);
    }
    assert_int_equal(atomic_load(&c.ran), N);
    assert_int_equal(atomic_load(&c.wrong), 0);
    ekt_rt_free_checked(rt);
}
static void test_local_tasks_run_only_on_their_thread(void **s)
{
    (void)s;
    run_both_flavors(local_tasks);
}

/* A local task spawned inside a worker is pinned to that worker. */
typedef struct {
    pthread_t worker;
    local_ctx lc;
    ek_join *child;
    int phase;
} pin_ctx;
static int spawn_pinned(void *s, ek_cx *cx, void **out)
{
    pin_ctx *p = s;
    if (p->phase == 0) {
        p->lc.expect = pthread_self();
        if (ek_spawn_local(ek_cx_runtime(cx), local_check, ekt_noop_drop, &p->lc, NULL, &p->child))
            return EK_ENOMEM;
        p->phase = 1;
    }
    int rc = ek_join_poll(p->child, cx, out);
    if (rc == EK_OK) ek_join_detach(p->child);
    return rc;
}
static void test_local_task_spawned_in_worker_stays_on_that_worker(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    for (int i = 0; i < 50; i++) {
        pin_ctx p = {0};
        assert_int_equal(ekt_spawn_join(rt, spawn_pinned, &p, NULL), EK_OK);
        assert_int_equal(atomic_load(&p.lc.wrong), 0);
        assert_int_equal(atomic_load(&p.lc.ran), 1);
    }
    ekt_rt_free_checked(rt);
}

/* Heap futures: join_into_future, spawn_future, block_on. */
static void test_join_into_future_and_spawn_future(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_future *f = NULL;
    assert_int_equal(ek_future_new(ekt_ret_state, ekt_noop_drop, (void *)7, &f), EK_OK);
    ek_join *j = NULL;
    assert_int_equal(ek_spawn_future(rt, f, NULL, &j), EK_OK);
    ek_future *jf = NULL;
    assert_int_equal(ek_join_into_future(j, &jf), EK_OK);
    void *out = NULL;
    assert_int_equal(ek_block_on(rt, jf, &out), EK_OK);
    assert_ptr_equal(out, (void *)7);
    ekt_rt_free_checked(rt);
}

/* Shutdown drops every pending task exactly once, on any flavour. */
static void shutdown_drops(int flavor)
{
    ek_runtime *rt = ekt_rt(flavor, 2);
    atomic_store(&ekt_drops, 0);
    int n = (int)ekt_scale(10000);
    ek_join *kept = NULL;
    for (int i = 0; i < n; i++)
        assert_int_equal(
            ek_spawn(rt, ekt_pend_forever, ekt_count_drop, NULL, NULL, i == 0 ? &kept : NULL),
            EK_OK);
    assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
    assert_int_equal(atomic_load(&ekt_drops), n);
    /* A join handle outliving shutdown sees the cancellation. */
    assert_int_equal(ek_join_is_finished(kept), 1);
    ek_join_detach(kept);
    assert_int_equal(ek_spawn(rt, ekt_pend_forever, ekt_count_drop, NULL, NULL, NULL), EK_ECLOSED);
    assert_int_equal(atomic_load(&ekt_drops), n + 1);
    ekt_rt_free_checked(rt);
}
static void test_shutdown_drops_every_pending_task_once(void **s)
{
    (void)s;
    run_both_flavors(shutdown_drops);
}

/* Wakers cloned from a block_on future, woken from a foreign thread. */
typedef struct {
    ek_waker *w;
    atomic_int ready;
} foreign_wake;
static atomic_int wakers_done;
static void *wake_later(void *arg)
{
    foreign_wake *fw = arg;
    ek_waker *w = fw->w; /* fw may be gone once ready is seen */
    usleep(2000);
    atomic_store(&fw->ready, 1);
    ek_waker_wake(w);
    atomic_fetch_add(&wakers_done, 1);
    return NULL;
}
static int wait_foreign(void *s, ek_cx *cx, void **out)
{
    foreign_wake *fw = s;
    if (atomic_load(&fw->ready)) {
        *out = NULL;
        return EK_OK;
    }
    if (!fw->w) {
        fw->w = ek_cx_waker(cx);
        pthread_t t;
        pthread_create(&t, NULL, wake_later, fw);
        pthread_detach(t);
    }
    return EK_PENDING;
}
static void block_on_foreign(int flavor)
{
    ek_runtime *rt = ekt_rt(flavor, 2);
    atomic_store(&wakers_done, 0);
    for (int i = 0; i < 20; i++) {
        foreign_wake fw = {0};
        assert_int_equal(ekt_block_on_fn(rt, wait_foreign, &fw, NULL), EK_OK);
    }
    while (atomic_load(&wakers_done) < 20) usleep(1000); /* threads release their wakers */
    ekt_rt_free_checked(rt);
}
static void test_block_on_woken_from_foreign_thread(void **s)
{
    (void)s;
    run_both_flavors(block_on_foreign);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spawn_then_join_wait_returns_result, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_task_error_is_the_join_result, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_abort_pending_task_drops_it_and_join_gets_canceled,
                                        ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_untaken_result_goes_to_out_drop, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_join_wait_without_out_releases_result_through_out_drop,
                                        ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_task_woken_during_its_own_poll_is_not_lost, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_yield_now_repolls_the_task, ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_join_poll_inside_task_collects_every_child, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_local_tasks_run_only_on_their_thread, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_local_task_spawned_in_worker_stays_on_that_worker,
                                        ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_join_into_future_and_spawn_future, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_drops_every_pending_task_once, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_block_on_woken_from_foreign_thread, ekt_setup,
                                        ekt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
