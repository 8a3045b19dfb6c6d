/*
 * test_alloc.c - allocation failure injected through the allocator hook at
 * every allocation of builder and runtime creation, the spawn functions, heap
 * futures, ek_block_on and ek_join_wait. For k = 0, 1, 2, ... the k-th
 * allocation of the operation fails, until the operation succeeds. Every
 * failure must be a clean EK_ENOMEM: consumed state dropped exactly once,
 * nothing left allocated, nothing written to the out parameter, and the
 * runtime still usable afterwards.
 */
#include "support.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define MAX_K 64 /* no operation here allocates anywhere near this often */

static atomic_int polls;

static void reset_counts(void)
{
    ekt_reset_drops();
    atomic_store(&polls, 0);
}

static int ready_poll(void *s, ek_cx *cx, void **out)
{
    (void)cx;
    atomic_fetch_add(&polls, 1);
    *out = s;
    return EK_OK;
}

static int ready_job(void *arg, void **out)
{
    atomic_fetch_add(&polls, 1);
    *out = arg;
    return EK_OK;
}

static const int flavors[2] = {EK_FLAVOR_MULTI_THREAD, EK_FLAVOR_CURRENT_THREAD};

/* Wait for a spawned task and check its result. */
static void join_expect(ek_join *j, void *want)
{
    void *out = (void *)0x1;
    assert_int_equal(ekt_join(j, &out), EK_OK);
    assert_ptr_equal(out, want);
}

/* Make sure this thread's local context for rt exists (the first ek_block_on,
 * blocking ek_join_wait or ek_spawn_local of a thread allocates it; it lives as
 * long as the runtime), so that later baselines of live allocations include it.
 * (ek_join_wait on a finished task returns at once and allocates nothing.) */
static void warm_up(ek_runtime *rt)
{
    ek_future *f = NULL;
    assert_int_equal(ek_future_new(ready_poll, ekt_noop_drop, (void *)0x3, &f), EK_OK);
    void *out = NULL;
    assert_int_equal(ek_block_on(rt, f, &out), EK_OK);
    assert_ptr_equal(out, (void *)0x3);
    atomic_store(&polls, 0);
}

/* Bracket one attempt: arm the failure, and report whether it was consumed. */
static long failures_before;
/* Thread-local injection: only allocations made by the arming thread count, so a
 * worker or the test thread allocating at the same time cannot take the failure. */
static void arm(long k)
{
    failures_before = ekt_alloc_failures();
    ekt_alloc_fail_here_after(k);
}
static long disarm(void)
{
    ekt_alloc_fail_here_after(-1);
    return ekt_alloc_failures() - failures_before;
}

/* ---- builder and runtime ---- */

static void test_builder_new_enomem_at_every_allocation(void **state)
{
    (void)state;
    long k;
    for (k = 0; k < MAX_K; k++) {
        ek_builder *b = (ek_builder *)(void *)0x1;
        arm(k);
        int rc = ek_builder_new(&b);
        long failed = disarm();
        if (rc == EK_OK) {
            assert_int_equal(failed, 0);
            assert_int_equal(ekt_alloc_leaked(), 1);
            ek_builder_free(b);
            break;
        }
        assert_int_equal(rc, EK_ENOMEM);
        assert_int_equal(failed, 1);
        assert_ptr_equal(b, (void *)0x1);
        assert_int_equal(ekt_alloc_leaked(), 0);
    }
    assert_int_equal(k, 1); /* one allocation */
    assert_int_equal(ekt_alloc_leaked(), 0);
}

static void runtime_new_enomem_at_every_allocation(int flavor, unsigned workers)
{
    ek_builder *b = ekt_builder(flavor, workers, -1, 0);
    long k;
    for (k = 0; k < MAX_K; k++) {
        ek_runtime *rt = (ek_runtime *)(void *)0x1;
        arm(k);
        int rc = ek_runtime_new(b, &rt);
        long failed = disarm();
        if (rc == EK_OK) {
            assert_int_equal(failed, 0);
            /* A runtime built after all those failures works. */
            ek_join *j = NULL;
            assert_int_equal(ek_spawn(rt, ready_poll, ekt_noop_drop, (void *)0x7, NULL, &j), EK_OK);
            join_expect(j, (void *)0x7);
            ek_runtime_free(rt);
            break;
        }
        assert_int_equal(rc, EK_ENOMEM);
        assert_int_equal(failed, 1);
        assert_ptr_equal(rt, (void *)0x1);
        assert_int_equal(ekt_alloc_leaked(), 1); /* just the builder */
    }
    /* At least the runtime, the clock and the driver (+ its backend). */
    assert_true(k >= 3);
    assert_true(k < MAX_K);
    ek_builder_free(b);
    assert_int_equal(ekt_alloc_leaked(), 0);
}

static void test_runtime_new_current_thread_enomem_at_every_allocation(void **state)
{
    (void)state;
    runtime_new_enomem_at_every_allocation(EK_FLAVOR_CURRENT_THREAD, 0);
}

static void test_runtime_new_multi_thread_enomem_at_every_allocation(void **state)
{
    (void)state;
    runtime_new_enomem_at_every_allocation(EK_FLAVOR_MULTI_THREAD, 3);
}

static void test_runtime_new_with_default_builder_enomem_at_every_allocation(void **state)
{
    (void)state;
    long k;
    for (k = 0; k < MAX_K; k++) {
        ek_runtime *rt = NULL;
        arm(k);
        int rc = ek_runtime_new(NULL, &rt);
        long failed = disarm();
        if (rc == EK_OK) {
            ek_runtime_free(rt);
            break;
        }
        assert_int_equal(rc, EK_ENOMEM);
        assert_int_equal(failed, 1);
        assert_null(rt);
        assert_int_equal(ekt_alloc_leaked(), 0);
    }
    assert_true(k >= 3 && k < MAX_K);
    assert_int_equal(ekt_alloc_leaked(), 0);
}

/* ---- spawn from outside the runtime ---- */

typedef int (*spawn_fn)(ek_runtime *, ek_poll_fn, ek_drop_fn, void *, ek_drop_fn, ek_join **);

/* The k-loop for ek_spawn / ek_spawn_local from this thread. Returns k. */
static long spawn_enomem_loop(ek_runtime *rt, spawn_fn spawn)
{
    long k;
    int expected_drops = 0;
    for (k = 0; k < MAX_K; k++) {
        reset_counts();
        long live = ekt_alloc_leaked();
        ek_join *j = (ek_join *)(void *)0x1;
        arm(k);
        int rc = spawn(rt, ready_poll, ekt_count_drop, (void *)0x11, ekt_count_out_drop, &j);
        long failed = disarm();
        if (rc == EK_OK) {
            assert_int_equal(failed, 0);
            join_expect(j, (void *)0x11);
            assert_int_equal(atomic_load(&polls), 1);
            assert_int_equal(atomic_load(&ekt_drops), 1);
            assert_int_equal(atomic_load(&ekt_out_drops), 0);
            break;
        }
        assert_int_equal(rc, EK_ENOMEM);
        assert_int_equal(failed, 1);
        assert_null(j);                               /* a failed spawn leaves NULL */
        assert_int_equal(atomic_load(&ekt_drops), 1); /* consumed: dropped once */
        assert_int_equal(atomic_load(&polls), 0);
        assert_int_equal(atomic_load(&ekt_out_drops), 0);
        /* Nothing new is alive, except what a successful earlier allocation
         * of this same operation keeps for the runtime's lifetime. */
        assert_true(ekt_alloc_leaked() <= live + k);
        assert_int_equal(ekt_metric(rt, EK_METRIC_TASKS_ALIVE), 0);
        expected_drops++;
    }
    (void)expected_drops;
    return k;
}

static void test_spawn_from_outside_enomem_runs_drop_once_and_leaks_nothing(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = ekt_rt(flavors[fl], 2);
        warm_up(rt);
        long live = ekt_alloc_leaked();
        assert_int_equal(spawn_enomem_loop(rt, ek_spawn), 1); /* one allocation per task */
        while (ekt_metric(rt, EK_METRIC_TASKS_ALIVE) != 0) usleep(100);
        assert_int_equal(ekt_alloc_leaked(), live);
        assert_int_equal(ekt_metric(rt, EK_METRIC_TASKS_SPAWNED), 1);
        /* Detached spawn too. */
        reset_counts();
        arm(0);
        assert_int_equal(ek_spawn(rt, ready_poll, ekt_count_drop, NULL, ekt_count_out_drop, NULL),
                         EK_ENOMEM);
        assert_int_equal(disarm(), 1);
        assert_int_equal(atomic_load(&ekt_drops), 1);
        assert_int_equal(ekt_alloc_leaked(), live);
        ekt_rt_free_checked(rt);
    }
}

static void test_spawn_local_from_outside_enomem_runs_drop_once_and_leaks_nothing(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = ekt_rt(flavors[fl], 2);
        long live = ekt_alloc_leaked();
        /* First local spawn from this thread: its local context, then the task. */
        assert_int_equal(spawn_enomem_loop(rt, ek_spawn_local), 2);
        assert_int_equal(ekt_alloc_leaked(), live + 1); /* the context stays with the runtime */
        /* Later ones: just the task. */
        assert_int_equal(spawn_enomem_loop(rt, ek_spawn_local), 1);
        assert_int_equal(ekt_alloc_leaked(), live + 1);
        ekt_rt_free_checked(rt);
    }
}

static void test_spawn_future_enomem_drops_the_future_once(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    warm_up(rt);
    long live = ekt_alloc_leaked();
    reset_counts();
    ek_future *f = NULL;
    assert_int_equal(ek_future_new(ready_poll, ekt_count_drop, (void *)0x21, &f), EK_OK);
    ek_join *j = (ek_join *)(void *)0x1;
    arm(0);
    assert_int_equal(ek_spawn_future(rt, f, ekt_count_out_drop, &j), EK_ENOMEM);
    assert_int_equal(disarm(), 1);
    assert_int_equal(atomic_load(&ekt_drops), 1);
    assert_null(j);                             /* a failed spawn leaves NULL */
    assert_int_equal(ekt_alloc_leaked(), live); /* the future is freed too */
    assert_int_equal(ek_future_new(ready_poll, ekt_count_drop, (void *)0x22, &f), EK_OK);
    assert_int_equal(ek_spawn_future(rt, f, ekt_count_out_drop, &j), EK_OK);
    join_expect(j, (void *)0x22);
    assert_int_equal(atomic_load(&ekt_drops), 2);
    ekt_rt_free_checked(rt);
}

/* ---- spawn from inside a task ---- */

typedef struct {
    long k;
    spawn_fn spawn;
    int rc;
    long failed;
    ek_join *j;
} inner_spawn;

static int inner_spawn_poll(void *s, ek_cx *cx, void **out)
{
    (void)cx;
    inner_spawn *p = s;
    p->j = (ek_join *)(void *)0x1;
    arm(p->k);
    p->rc = p->spawn(ek_cx_runtime(cx), ready_poll, ekt_count_drop, (void *)0x31,
                     ekt_count_out_drop, &p->j);
    p->failed = disarm();
    *out = NULL;
    return EK_OK;
}

static void spawn_in_task_enomem(int flavor, spawn_fn spawn)
{
    ek_runtime *rt = ekt_rt(flavor, 2);
    long k;
    for (k = 0; k < MAX_K; k++) {
        reset_counts();
        inner_spawn p = {.k = k, .spawn = spawn, .rc = 12345};
        ek_join *outer = NULL;
        assert_int_equal(ek_spawn(rt, inner_spawn_poll, ekt_noop_drop, &p, NULL, &outer), EK_OK);
        long live = ekt_alloc_leaked(); /* includes the outer task */
        join_expect(outer, NULL);
        if (p.rc == EK_OK) {
            assert_int_equal(p.failed, 0);
            join_expect(p.j, (void *)0x31);
            assert_int_equal(atomic_load(&ekt_drops), 1);
            break;
        }
        assert_int_equal(p.rc, EK_ENOMEM);
        assert_int_equal(p.failed, 1);
        assert_null(p.j); /* a failed spawn leaves NULL */
        assert_int_equal(atomic_load(&ekt_drops), 1);
        assert_int_equal(atomic_load(&polls), 0);
        (void)live;
        /* The outer task is gone once its join handle is detached. */
        while (ekt_metric(rt, EK_METRIC_TASKS_ALIVE) != 0) usleep(100);
    }
    assert_int_equal(k, 1);
    assert_int_equal(atomic_load(&ekt_out_drops), 0);
    ekt_rt_free_checked(rt);
}

static void test_spawn_in_task_enomem_runs_drop_once_and_leaks_nothing(void **state)
{
    (void)state;
    spawn_in_task_enomem(EK_FLAVOR_MULTI_THREAD, ek_spawn);
    spawn_in_task_enomem(EK_FLAVOR_CURRENT_THREAD, ek_spawn);
}

static void test_spawn_local_in_task_enomem_runs_drop_once_and_leaks_nothing(void **state)
{
    (void)state;
    /* On a worker, tasks are pinned to the worker's own context: one allocation. */
    spawn_in_task_enomem(EK_FLAVOR_MULTI_THREAD, ek_spawn_local);
}

/* ---- blocking jobs ---- */

static void test_spawn_blocking_enomem_runs_drop_once_and_leaks_nothing(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = ekt_rt(flavors[fl], 2);
        warm_up(rt);
        long live = ekt_alloc_leaked();
        long k;
        for (k = 0; k < MAX_K; k++) {
            reset_counts();
            ek_join *j = (ek_join *)(void *)0x1;
            arm(k);
            int rc = ek_spawn_blocking(rt, ready_job, ekt_count_drop, (void *)0x41,
                                       ekt_count_out_drop, &j);
            long failed = disarm();
            if (rc == EK_OK) {
                assert_int_equal(failed, 0);
                join_expect(j, (void *)0x41);
                assert_int_equal(atomic_load(&ekt_drops), 1);
                break;
            }
            assert_int_equal(rc, EK_ENOMEM);
            assert_int_equal(failed, 1);
            assert_null(j); /* a failed spawn leaves NULL */
            assert_int_equal(atomic_load(&ekt_drops), 1);
            assert_int_equal(atomic_load(&polls), 0);
            assert_int_equal(ekt_alloc_leaked(), live);
            assert_int_equal(ekt_metric(rt, EK_METRIC_BLOCKING_THREADS), 0); /* no thread started */
        }
        assert_int_equal(k, 1);
        /* The pool thread lets go of the finished job just after it completes. */
        while (ekt_metric(rt, EK_METRIC_TASKS_ALIVE) != 0) usleep(100);
        assert_int_equal(ekt_alloc_leaked(), live);
        /* A failing spawn with a NULL drop is fine too. */
        arm(0);
        assert_int_equal(ek_spawn_blocking(rt, ready_job, NULL, NULL, NULL, NULL), EK_ENOMEM);
        assert_int_equal(disarm(), 1);
        assert_int_equal(ekt_alloc_leaked(), live);
        ekt_rt_free_checked(rt);
    }
}

/* ---- heap futures ---- */

static void test_future_new_enomem_runs_drop_once(void **state)
{
    (void)state;
    long k;
    for (k = 0; k < MAX_K; k++) {
        reset_counts();
        ek_future *f = (ek_future *)(void *)0x1;
        arm(k);
        int rc = ek_future_new(ready_poll, ekt_count_drop, NULL, &f);
        long failed = disarm();
        if (rc == EK_OK) {
            assert_int_equal(atomic_load(&ekt_drops), 0);
            ek_future_drop(f);
            assert_int_equal(atomic_load(&ekt_drops), 1);
            break;
        }
        assert_int_equal(rc, EK_ENOMEM);
        assert_int_equal(failed, 1);
        assert_ptr_equal(f, (void *)0x1);
        assert_int_equal(atomic_load(&ekt_drops), 1);
        assert_int_equal(ekt_alloc_leaked(), 0);
    }
    assert_int_equal(k, 1);
    assert_int_equal(ekt_alloc_leaked(), 0);
}

static void test_join_into_future_enomem_detaches_the_handle(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = ekt_rt(flavors[fl], 2);
        warm_up(rt);
        long live = ekt_alloc_leaked();
        reset_counts();

        /* Finished task: the detached result goes to out_drop at once. */
        ek_join *j = NULL, *k2 = NULL;
        assert_int_equal(
            ek_spawn(rt, ready_poll, ekt_count_drop, (void *)0x51, ekt_count_out_drop, &j), EK_OK);
        /* Wait for it through a second task that completes after it (FIFO on a
         * current-thread runtime), or by polling on a multi-thread one. */
        while (ek_join_is_finished(j) == 0) {
            assert_int_equal(ek_spawn(rt, ready_poll, ekt_noop_drop, NULL, NULL, &k2), EK_OK);
            join_expect(k2, NULL);
        }
        ek_future *f = (ek_future *)(void *)0x1;
        arm(0);
        assert_int_equal(ek_join_into_future(j, &f), EK_ENOMEM);
        assert_int_equal(disarm(), 1);
        assert_ptr_equal(f, (void *)0x1);
        assert_int_equal(atomic_load(&ekt_drops), 1);
        assert_int_equal(atomic_load(&ekt_out_drops), 1);
        while (ekt_metric(rt, EK_METRIC_TASKS_ALIVE) != 0) usleep(100);
        assert_int_equal(ekt_alloc_leaked(), live);

        /* Pending task: it runs on, detached; shutdown drops it once. */
        reset_counts();
        assert_int_equal(
            ek_spawn(rt, ekt_pend_forever, ekt_count_drop, NULL, ekt_count_out_drop, &j), EK_OK);
        arm(0);
        assert_int_equal(ek_join_into_future(j, &f), EK_ENOMEM);
        assert_int_equal(disarm(), 1);
        assert_int_equal(atomic_load(&ekt_drops), 0);
        assert_int_equal(ekt_alloc_leaked(), live + 1); /* the task itself */

        /* Success: the future yields the result. */
        assert_int_equal(
            ek_spawn(rt, ready_poll, ekt_count_drop, (void *)0x52, ekt_count_out_drop, &j), EK_OK);
        assert_int_equal(ek_join_into_future(j, &f), EK_OK);
        void *out = NULL;
        assert_int_equal(ek_block_on(rt, f, &out), EK_OK);
        assert_ptr_equal(out, (void *)0x52);

        assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
        assert_int_equal(atomic_load(&ekt_drops), 2);
        assert_int_equal(atomic_load(&ekt_out_drops), 0);
        ekt_rt_free_checked(rt);
    }
}

/* ---- ek_block_on and ek_join_wait ---- */

static void test_block_on_enomem_drops_the_future_once_and_leaks_nothing(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = ekt_rt(flavors[fl], 2);
        long live = ekt_alloc_leaked();
        long k, rounds = 0;
        /* Twice: first with no local context for this thread yet, then with one. */
        for (int round = 0; round < 2; round++) {
            for (k = 0; k < MAX_K; k++) {
                reset_counts();
                ek_future *f = NULL;
                assert_int_equal(ek_future_new(ready_poll, ekt_count_drop, (void *)0x61, &f),
                                 EK_OK);
                void *out = (void *)0x1;
                arm(k);
                int rc = ek_block_on(rt, f, &out);
                long failed = disarm();
                assert_int_equal(atomic_load(&ekt_drops), 1); /* consumed in every case */
                if (rc == EK_OK) {
                    assert_int_equal(failed, 0);
                    assert_ptr_equal(out, (void *)0x61);
                    break;
                }
                assert_int_equal(rc, EK_ENOMEM);
                assert_int_equal(failed, 1);
                assert_ptr_equal(out, (void *)0x1);
                assert_int_equal(atomic_load(&polls), 0);
                /* At most the thread's local context, kept by the runtime. */
                assert_true(ekt_alloc_leaked() <= live + 1);
            }
            assert_int_equal(k, round == 0 ? 2 : 1); /* (context +) parker */
            assert_int_equal(ekt_alloc_leaked(), live + 1);
            rounds++;
        }
        assert_int_equal(rounds, 2);
        ekt_rt_free_checked(rt);
    }
}

/* A task that waits until opened. The opener runs as a local task pinned to
 * the waiting thread, so it can only run once that thread is inside
 * ek_join_wait: a failing ek_join_wait cannot let the task finish. */
typedef struct {
    pthread_mutex_t mu;
    int open;
    ek_waker *w;
} gate;

static int gate_poll(void *s, ek_cx *cx, void **out)
{
    gate *g = s;
    pthread_mutex_lock(&g->mu);
    if (g->open) {
        pthread_mutex_unlock(&g->mu);
        *out = (void *)0x71;
        return EK_OK;
    }
    if (!ek_waker_will_wake(g->w, cx)) {
        ek_waker_drop(g->w);
        g->w = ek_cx_waker(cx);
    }
    pthread_mutex_unlock(&g->mu);
    return EK_PENDING;
}

static void gate_drop(void *s)
{
    gate *g = s;
    pthread_mutex_lock(&g->mu);
    ek_waker *w = g->w;
    g->w = NULL;
    pthread_mutex_unlock(&g->mu);
    ek_waker_drop(w);
    atomic_fetch_add(&ekt_drops, 1);
}

static int opener_poll(void *s, ek_cx *cx, void **out)
{
    (void)cx;
    gate *g = s;
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    ek_waker *w = g->w;
    g->w = NULL;
    pthread_mutex_unlock(&g->mu);
    ek_waker_wake(w);
    *out = NULL;
    return EK_OK;
}

static void join_wait_enomem(int flavor, int fresh_thread_context)
{
    ek_runtime *rt = ekt_rt(flavor, 2);
    long live = ekt_alloc_leaked();
    reset_counts();
    gate g = {.open = 0, .w = NULL};
    pthread_mutex_init(&g.mu, NULL);
    ek_join *j = NULL;
    assert_int_equal(ek_spawn(rt, gate_poll, gate_drop, &g, ekt_count_out_drop, &j), EK_OK);
    long ctx = 0;
    if (!fresh_thread_context || flavor == EK_FLAVOR_MULTI_THREAD) {
        /* The opener: pinned to this thread (creates its local context). */
        assert_int_equal(ek_spawn_local(rt, opener_poll, ekt_noop_drop, &g, NULL, NULL), EK_OK);
        ctx = 1;
    } else {
        /* Current-thread: the gate task only runs inside ek_join_wait; open it
         * up front, it still cannot finish before this thread drives it. */
        g.open = 1;
    }
    long k;
    for (k = 0; k < MAX_K; k++) {
        void *out = (void *)0x1;
        arm(k);
        int rc = ek_join_wait(j, &out);
        long failed = disarm();
        if (rc == EK_OK) {
            assert_int_equal(failed, 0);
            assert_ptr_equal(out, (void *)0x71);
            break;
        }
        assert_int_equal(rc, EK_ENOMEM);
        assert_int_equal(failed, 1);
        assert_ptr_equal(out, (void *)0x1);
        assert_int_equal(ek_join_is_finished(j), 0); /* the handle is intact */
        assert_int_equal(atomic_load(&ekt_drops), 0);
        assert_true(ekt_alloc_leaked() <= live + 2 + ctx);
    }
    /* Allocations: the thread's local context (unless it exists) and the parker. */
    assert_int_equal(k, ctx ? 1 : 2);
    ek_join_detach(j);
    assert_int_equal(atomic_load(&ekt_drops), 1);
    assert_int_equal(atomic_load(&ekt_out_drops), 0);
    ekt_rt_free_checked(rt);
    pthread_mutex_destroy(&g.mu);
}

static void test_join_wait_enomem_keeps_the_handle_and_leaks_nothing(void **state)
{
    (void)state;
    join_wait_enomem(EK_FLAVOR_MULTI_THREAD, 0);
    join_wait_enomem(EK_FLAVOR_CURRENT_THREAD, 0);
    join_wait_enomem(EK_FLAVOR_CURRENT_THREAD, 1);
}

/* ---- everything together: a runtime survives a failure storm ---- */

static atomic_int storm_runs;

static int storm_poll(void *s, ek_cx *cx, void **out)
{
    (void)s;
    atomic_fetch_add(&storm_runs, 1);
    /* Each task tries to spawn a detached child; some of these spawns fail. */
    int rc = ek_spawn(ek_cx_runtime(cx), ready_poll, ekt_count_drop, (void *)0x81,
                      ekt_count_out_drop, NULL);
    *out = NULL;
    return rc == EK_OK || rc == EK_ENOMEM ? EK_OK : rc;
}

/* Returns to the scheduler once (so the driving thread runs the queued tasks). */
static int yield_once_poll(void *s, ek_cx *cx, void **out)
{
    (void)s;
    (void)out;
    static _Thread_local int yielded;
    if (!yielded) {
        yielded = 1;
        return ek_yield_now(cx);
    }
    yielded = 0;
    return EK_OK;
}

static void test_interleaved_failures_never_leak_or_lose_a_drop(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = ekt_rt(flavors[fl], 2);
        reset_counts();
        atomic_store(&storm_runs, 0);
        long n = ekt_scale(3000), failed = 0;
        long f0 = ekt_alloc_failures();
        for (long i = 0; i < n; i++) {
            /* One of the next three allocations fails, on this thread (a spawn)
             * or on a worker (a child's spawn). */
            ekt_alloc_fail_after(i % 3);
            int rc = ek_spawn(rt, storm_poll, ekt_count_drop, NULL, NULL, NULL);
            if (rc != EK_OK) {
                assert_int_equal(rc, EK_ENOMEM);
                failed++;
            }
            if (flavors[fl] == EK_FLAVOR_CURRENT_THREAD && i % 64 == 63) {
                ekt_alloc_fail_after(-1);
                ek_future *f = NULL;
                assert_int_equal(ek_future_new(yield_once_poll, ekt_noop_drop, NULL, &f), EK_OK);
                assert_int_equal(ek_block_on(rt, f, NULL), EK_OK); /* drive it a while */
            }
        }
        ekt_alloc_fail_after(-1);
        assert_true(failed > 0);
        assert_true(ekt_alloc_failures() - f0 >= failed);
        ekt_rt_free_checked(rt);
        /* Every storm spawn (failed or not) dropped once, every child spawn
         * attempt (one per storm task that ran) dropped once, and every child
         * that completed handed its result to out_drop. */
        int runs = atomic_load(&storm_runs);
        assert_true(runs <= n - failed);
        assert_int_equal(atomic_load(&ekt_drops), n + runs);
        assert_true(atomic_load(&polls) <= runs);
        assert_int_equal(atomic_load(&ekt_out_drops), atomic_load(&polls));
    }
}

#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_builder_new_enomem_at_every_allocation),
        T(test_runtime_new_current_thread_enomem_at_every_allocation),
        T(test_runtime_new_multi_thread_enomem_at_every_allocation),
        T(test_runtime_new_with_default_builder_enomem_at_every_allocation),
        T(test_spawn_from_outside_enomem_runs_drop_once_and_leaks_nothing),
        T(test_spawn_local_from_outside_enomem_runs_drop_once_and_leaks_nothing),
        T(test_spawn_future_enomem_drops_the_future_once),
        T(test_spawn_in_task_enomem_runs_drop_once_and_leaks_nothing),
        T(test_spawn_local_in_task_enomem_runs_drop_once_and_leaks_nothing),
        T(test_spawn_blocking_enomem_runs_drop_once_and_leaks_nothing),
        T(test_future_new_enomem_runs_drop_once),
        T(test_join_into_future_enomem_detaches_the_handle),
        T(test_block_on_enomem_drops_the_future_once_and_leaks_nothing),
        T(test_join_wait_enomem_keeps_the_handle_and_leaks_nothing),
        T(test_interleaved_failures_never_leak_or_lose_a_drop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
