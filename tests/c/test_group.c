/* test_group.c - task groups (ek_group): waiting for every member, the first
 * error, cancel on error, cancel all, free as cancel + join, local members,
 * argument errors, allocation failure, free orders, and a concurrent stress. */
#include "support.h"
#include "sync_util.h"

#include <pthread.h>
#include <stdlib.h>

/* ---- a member that completes with `status` after `yields` polls ---- */
typedef struct job {
    int yields, status;
    void *value;
    atomic_int polls, drops;
} job;

static int job_poll(void *state, ek_cx *cx, void **out)
{
    job *j = state;
    if (atomic_fetch_add(&j->polls, 1) < j->yields) return ek_yield_now(cx);
    *out = j->value;
    return j->status;
}

static void job_drop(void *state)
{
    atomic_fetch_add(&((job *)state)->drops, 1);
}

/* A member that never completes and arranges no wake-up of its own: only
 * cancellation ends it. Counts drops. */
static atomic_int forever_polls, forever_drops;
static int forever_poll(void *state, ek_cx *cx, void **out)
{
    (void)state, (void)cx, (void)out;
    atomic_fetch_add(&forever_polls, 1);
    return EK_PENDING;
}
static void forever_drop(void *state)
{
    (void)state;
    atomic_fetch_add(&forever_drops, 1);
}

static void reset_forever(void)
{
    atomic_store(&forever_polls, 0);
    atomic_store(&forever_drops, 0);
}

static ek_group *group_new(ek_runtime *rt, unsigned flags)
{
    ek_group *g = NULL;
    assert_int_equal(ek_group_new(rt, flags, &g), EK_OK);
    return g;
}

static void test_blocking_wait_returns_after_every_member_was_dropped(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_group *g = group_new(rt, 0);
    assert_int_equal(ek_group_blocking_wait(g), EK_OK); /* empty: at once */
    enum { N = 50 };
    static job jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (job){.yields = i % 7};
        atomic_init(&jobs[i].polls, 0);
        atomic_init(&jobs[i].drops, 0);
        assert_int_equal(ek_group_spawn(g, job_poll, job_drop, &jobs[i], NULL, NULL), EK_OK);
    }
    assert_int_equal(ek_group_blocking_wait(g), EK_OK);
    assert_int_equal(ek_group_len(g), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&jobs[i].drops), 1);
        assert_int_equal(atomic_load(&jobs[i].polls), jobs[i].yields + 1);
    }
    ek_group_free(g);
    ekt_rt_free_checked(rt);
}

static void test_wait_future_completes_with_the_outcome(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    ek_group *g = group_new(rt, 0);
    ek_future *w;
    assert_int_equal(ek_group_wait_future(g, &w), EK_OK);
    assert_int_equal(ek_block_on(rt, w, NULL), EK_OK); /* empty group */
    job a = {.yields = 3, .value = (void *)7};
    ek_join *ja;
    assert_int_equal(ek_group_spawn(g, job_poll, job_drop, &a, NULL, &ja), EK_OK);
    assert_int_equal(ek_group_len(g), 1);
    assert_int_equal(ek_group_wait_future(g, &w), EK_OK);
    void *out = (void *)1;
    assert_int_equal(ek_block_on(rt, w, &out), EK_OK);
    assert_null(out);
    assert_int_equal(atomic_load(&a.drops), 1);
    /* the member's own join handle still gives its result */
    assert_int_equal(ek_join_wait(ja, &out), EK_OK);
    assert_ptr_equal(out, (void *)7);
    ek_join_detach(ja);
    ek_group_free(g);
    ekt_rt_free_checked(rt);
}

/* A member that completes with `status` once `rx` received (or closed). */
typedef struct after {
    ek_oneshot_receiver *rx;
    int status;
    atomic_int drops;
} after;
static int after_poll(void *state, ek_cx *cx, void **out)
{
    after *a = state;
    void *v;
    int rc = ek_oneshot_recv(a->rx, cx, &v);
    if (rc == EK_PENDING) return rc;
    *out = NULL;
    return a->status;
}
static void after_drop(void *state)
{
    atomic_fetch_add(&((after *)state)->drops, 1);
}
/* A member that fails with `status` and then lets `tx` go (its drop). */
typedef struct failer {
    ek_oneshot_sender *tx;
    int status;
} failer;
static int failer_poll(void *state, ek_cx *cx, void **out)
{
    (void)cx, (void)out;
    return ((failer *)state)->status;
}
static void failer_drop(void *state)
{
    ek_oneshot_sender_drop(((failer *)state)->tx); /* the other member then fails */
}

static void test_first_error_is_reported_and_others_run_on_without_the_flag(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    ek_group *g = group_new(rt, 0);
    ek_oneshot_sender *tx;
    ek_oneshot_receiver *rx;
    assert_int_equal(ek_oneshot_new(NULL, &tx, &rx), EK_OK);
    after late = {.rx = rx, .status = EK_ETIMEDOUT};
    failer early = {.tx = tx, .status = EK_ECONNRESET};
    job fine = {.yields = 30, .status = EK_OK};
    assert_int_equal(ek_group_spawn(g, after_poll, after_drop, &late, NULL, NULL), EK_OK);
    assert_int_equal(ek_group_spawn(g, job_poll, job_drop, &fine, NULL, NULL), EK_OK);
    assert_int_equal(ek_group_spawn(g, failer_poll, failer_drop, &early, NULL, NULL), EK_OK);
    assert_int_equal(ek_group_blocking_wait(g), EK_ECONNRESET); /* the first, not the later one */
    assert_int_equal(atomic_load(&fine.polls), 31);             /* ran to completion */
    assert_int_equal(atomic_load(&late.drops), 1);
    ek_oneshot_receiver_drop(rx);
    /* the outcome stays; the group stays open */
    job more = {0};
    assert_int_equal(ek_group_spawn(g, job_poll, job_drop, &more, NULL, NULL), EK_OK);
    assert_int_equal(ek_group_blocking_wait(g), EK_ECONNRESET);
    assert_int_equal(atomic_load(&more.drops), 1);
    ek_group_free(g);
    ekt_rt_free_checked(rt);
}

static void test_cancel_on_error_cancels_the_rest_and_closes_the_group(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_group *g = group_new(rt, EK_GROUP_CANCEL_ON_ERROR);
    reset_forever();
    ek_join *jf[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(ek_group_spawn(g, forever_poll, forever_drop, NULL, NULL, &jf[i]), EK_OK);
    st_wait_for(&forever_polls, 3); /* all three are waiting */
    job bad = {.yields = 2, .status = EK_EPIPE};
    assert_int_equal(ek_group_spawn(g, job_poll, job_drop, &bad, NULL, NULL), EK_OK);
    assert_int_equal(ek_group_blocking_wait(g), EK_EPIPE);
    assert_int_equal(atomic_load(&forever_drops), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ek_join_wait(jf[i], NULL), EK_ECANCELED);
        ek_join_detach(jf[i]);
    }
    /* closed: a spawn is refused and its state dropped */
    job late = {0};
    ek_join *jl = (ek_join *)1;
    assert_int_equal(ek_group_spawn(g, job_poll, job_drop, &late, NULL, &jl), EK_ECLOSED);
    assert_null(jl);
    assert_int_equal(atomic_load(&late.drops), 1);
    assert_int_equal(atomic_load(&late.polls), 0);
    ek_group_free(g);
    ekt_rt_free_checked(rt);
}

static void test_cancel_drops_every_member_and_the_outcome_is_ecanceled(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_group *g = group_new(rt, 0);
    reset_forever();
    for (int i = 0; i < 40; i++)
        assert_int_equal(ek_group_spawn(g, forever_poll, forever_drop, NULL, NULL, NULL), EK_OK);
    st_wait_for(&forever_polls, 20); /* some polled, some maybe not yet */
    assert_int_equal(ek_group_cancel(g), EK_OK);
    assert_int_equal(ek_group_cancel(g), EK_OK); /* idempotent */
    assert_int_equal(ek_group_blocking_wait(g), EK_ECANCELED);
    assert_int_equal(atomic_load(&forever_drops), 40);
    assert_int_equal(ek_group_len(g), 0);
    assert_int_equal(ek_group_spawn(g, forever_poll, forever_drop, NULL, NULL, NULL), EK_ECLOSED);
    assert_int_equal(atomic_load(&forever_drops), 41);
    ek_group_free(g);
    ekt_rt_free_checked(rt);
}

static void test_free_cancels_and_joins_the_members(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_group *g = group_new(rt, 0);
    reset_forever();
    for (int i = 0; i < 10; i++)
        assert_int_equal(ek_group_spawn(g, forever_poll, forever_drop, NULL, NULL, NULL), EK_OK);
    st_wait_for(&forever_polls, 10);
    ek_group_free(g);
    assert_int_equal(atomic_load(&forever_drops), 10); /* joined: dropped before free returned */
    ekt_rt_free_checked(rt);
}

/* A current-thread runtime nobody drives: free drives it to drop the members. */
static void test_free_on_current_thread_drives_the_runtime_to_join(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    ek_group *g = group_new(rt, 0);
    reset_forever();
    for (int i = 0; i < 5; i++)
        assert_int_equal(ek_group_spawn(g, forever_poll, forever_drop, NULL, NULL, NULL), EK_OK);
    ek_group_free(g);
    assert_int_equal(atomic_load(&forever_drops), 5);
    assert_int_equal(atomic_load(&forever_polls), 0); /* cancelled before their first poll */
    ekt_rt_free_checked(rt);
}

/* ---- a task that owns a group (frees it in its drop, on a runtime thread) ---- */
typedef struct owner {
    ek_group *g;
    int spawned;
} owner;

static int owner_poll(void *state, ek_cx *cx, void **out)
{
    owner *o = state;
    if (!o->spawned) {
        o->spawned = 1;
        for (int i = 0; i < 4; i++)
            if (ek_group_spawn(o->g, forever_poll, forever_drop, NULL, NULL, NULL) != EK_OK)
                return EK_ENOMEM;
        /* blocking on a runtime thread is refused */
        if (ek_group_blocking_wait(o->g) != EK_EDEADLK) return EK_EINVAL;
    }
    (void)cx, (void)out;
    return EK_PENDING; /* waits for the abort */
}

static void owner_drop(void *state)
{
    owner *o = state;
    ek_group_free(o->g); /* on a worker: cancels, cannot wait */
    o->g = NULL;
}

static void test_free_from_a_task_drop_cancels_without_waiting_and_leaks_nothing(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    reset_forever();
    owner o = {.g = group_new(rt, 0)};
    ek_join *j = ekt_spawn(rt, owner_poll, owner_drop, &o);
    st_wait_for(&forever_polls, 4);
    assert_int_equal(ek_join_abort(j), EK_OK);
    assert_int_equal(ekt_join(j, NULL), EK_ECANCELED);
    assert_null(o.g);
    st_wait_for(&forever_drops, 4); /* dropped on their own threads */
    ekt_rt_free_checked(rt);        /* the group's memory went with the last member */
}

/* ---- local members run and are dropped on the thread that spawned them ---- */
static pthread_t local_thread;
static atomic_int local_wrong_thread;
typedef struct local_job {
    int polls;
} local_job;
static int local_poll(void *state, ek_cx *cx, void **out)
{
    local_job *l = state;
    if (!pthread_equal(pthread_self(), local_thread)) atomic_fetch_add(&local_wrong_thread, 1);
    if (l->polls++ < 3) return ek_yield_now(cx);
    *out = NULL;
    return EK_OK;
}
static void local_drop(void *state)
{
    (void)state;
    if (!pthread_equal(pthread_self(), local_thread)) atomic_fetch_add(&local_wrong_thread, 1);
    atomic_fetch_add(&forever_drops, 1);
}

static void test_local_members_run_on_the_waiting_thread(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_group *g = group_new(rt, 0);
    local_thread = pthread_self();
    atomic_store(&local_wrong_thread, 0);
    reset_forever();
    local_job l[3] = {{0}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(ek_group_spawn_local(g, local_poll, local_drop, &l[i], NULL, NULL), EK_OK);
    assert_int_equal(ek_group_blocking_wait(g), EK_OK);
    for (int i = 0; i < 3; i++) assert_int_equal(l[i].polls, 4);
    assert_int_equal(atomic_load(&forever_drops), 3);
    /* cancelled local members are dropped on this thread too, by free's join */
    for (int i = 0; i < 3; i++)
        assert_int_equal(ek_group_spawn_local(g, forever_poll, local_drop, NULL, NULL, NULL),
                         EK_OK);
    ek_group_free(g);
    assert_int_equal(atomic_load(&forever_drops), 6);
    assert_int_equal(atomic_load(&local_wrong_thread), 0);
    ekt_rt_free_checked(rt);
}

static void test_spawn_future_and_results_through_join_handles(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_group *g = group_new(rt, 0);
    ek_future *f;
    ek_join *j;
    assert_int_equal(ek_sleep(rt, 5, &f), EK_OK);
    assert_int_equal(ek_group_spawn_future(g, f, NULL, &j), EK_OK);
    assert_int_equal(ek_group_blocking_wait(g), EK_OK);
    void *out = (void *)1;
    assert_int_equal(ek_join_wait(j, &out), EK_OK);
    assert_null(out);
    ek_join_detach(j);
    /* a result nobody takes goes to out_drop */
    ekt_reset_drops();
    job r = {.value = (void *)0x55};
    assert_int_equal(ek_group_spawn(g, job_poll, job_drop, &r, ekt_count_out_drop, NULL), EK_OK);
    assert_int_equal(ek_group_blocking_wait(g), EK_OK);
    assert_int_equal(atomic_load(&ekt_out_drops), 1);
    assert_ptr_equal((void *)atomic_load(&ekt_last_out_drop), (void *)0x55);
    ek_group_free(g);
    ekt_rt_free_checked(rt);
}

/* Aborting a member through its own join handle counts as cancelled. */
static void test_member_aborted_through_its_join_handle_makes_the_outcome_ecanceled(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_group *g = group_new(rt, 0);
    reset_forever();
    ek_join *j;
    assert_int_equal(ek_group_spawn(g, forever_poll, forever_drop, NULL, NULL, &j), EK_OK);
    st_wait_for(&forever_polls, 1);
    assert_int_equal(ek_join_abort(j), EK_OK);
    assert_int_equal(ek_group_blocking_wait(g), EK_ECANCELED);
    assert_int_equal(ek_join_wait(j, NULL), EK_ECANCELED);
    ek_join_detach(j);
    ek_group_free(g);
    ekt_rt_free_checked(rt);
}

/* ---- members cancelled at real await points release what they hold ---- */
typedef struct holder {
    ek_runtime *rt;
    ek_future *sleep;
    ek_semaphore_permit *p;
    ek_mpsc_receiver *rx;
    atomic_int *waiting;
    int stage;
} holder;

static int holder_poll(void *state, ek_cx *cx, void **out)
{
    holder *h = state;
    (void)out;
    if (h->stage == 0) {
        h->stage = 1;
        atomic_fetch_add(h->waiting, 1);
    }
    void *msg;
    int rc = ek_future_poll(h->sleep, cx, NULL);
    if (rc != EK_PENDING) return EK_EINVAL;
    rc = ek_semaphore_acquire(h->p, cx, 1);
    if (rc != EK_PENDING) return EK_EINVAL;
    rc = ek_mpsc_recv(h->rx, cx, &msg);
    if (rc != EK_PENDING) return EK_EINVAL;
    return EK_PENDING;
}

static void holder_drop(void *state)
{
    holder *h = state;
    ek_future_drop(h->sleep);
    ek_semaphore_permit_drop(h->p);
    free(h);
}

static void test_cancel_at_every_await_point_releases_timers_permits_and_waiters(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_group *g = group_new(rt, 0);
    ek_semaphore *sem;
    assert_int_equal(ek_semaphore_new(0, &sem), EK_OK);
    enum { N = 8 };
    ek_mpsc_sender *tx[N];
    ek_mpsc_receiver *rx[N];
    atomic_int waiting = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(ek_mpsc_bounded(1, NULL, &tx[i], &rx[i]), EK_OK);
        holder *h = calloc(1, sizeof *h);
        assert_non_null(h);
        h->rt = rt;
        h->rx = rx[i];
        h->waiting = &waiting;
        assert_int_equal(ek_sleep(rt, 60000, &h->sleep), EK_OK);
        assert_int_equal(ek_semaphore_permit_new(sem, &h->p), EK_OK);
        assert_int_equal(ek_group_spawn(g, holder_poll, holder_drop, h, NULL, NULL), EK_OK);
    }
    st_wait_for(&waiting, N);
    assert_int_equal(ekt_metric_wait(rt, EK_METRIC_TIMERS, N), N);
    assert_int_equal(ek_group_cancel(g), EK_OK);
    assert_int_equal(ek_group_blocking_wait(g), EK_ECANCELED);
    assert_int_equal(ekt_metric_wait(rt, EK_METRIC_TIMERS, 0), 0);
    /* the queue of the semaphore is empty again: a release stays available */
    assert_int_equal(ek_semaphore_release(sem, 1), EK_OK);
    assert_int_equal(ek_semaphore_available_permits(sem), 1);
    for (int i = 0; i < N; i++) {
        ek_mpsc_sender_drop(tx[i]);
        ek_mpsc_receiver_drop(rx[i]);
    }
    ek_semaphore_drop(sem);
    ek_group_free(g);
    ekt_rt_free_checked(rt);
}

/* ---- free orders ---- */

static void test_wait_future_and_join_handles_outlive_the_group(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_group *g = group_new(rt, 0);
    reset_forever();
    ek_join *j;
    assert_int_equal(ek_group_spawn(g, forever_poll, forever_drop, NULL, NULL, &j), EK_OK);
    ek_future *w;
    assert_int_equal(ek_group_wait_future(g, &w), EK_OK);
    ek_group_free(g); /* cancels and joins */
    assert_int_equal(ek_join_wait(j, NULL), EK_ECANCELED);
    ek_join_detach(j);
    assert_int_equal(ek_block_on(rt, w, NULL),
                     EK_ECANCELED); /* the group's memory is still there */
    ekt_rt_free_checked(rt);
}

static void test_runtime_shut_down_first_then_group_freed(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_group *g = group_new(rt, 0);
    reset_forever();
    for (int i = 0; i < 6; i++)
        assert_int_equal(ek_group_spawn(g, forever_poll, forever_drop, NULL, NULL, NULL), EK_OK);
    ek_future *w;
    assert_int_equal(ek_group_wait_future(g, &w), EK_OK);
    assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
    assert_int_equal(atomic_load(&forever_drops), 6); /* shutdown dropped them */
    assert_int_equal(ek_group_len(g), 0);
    assert_int_equal(ek_group_blocking_wait(g), EK_ECANCELED);
    assert_int_equal(ek_group_spawn(g, forever_poll, forever_drop, NULL, NULL, NULL), EK_ECLOSED);
    assert_int_equal(atomic_load(&forever_drops), 7);
    ek_group *g2 = NULL;
    assert_int_equal(ek_group_new(rt, 0, &g2), EK_ECLOSED);
    ek_group_free(g);
    ek_future_drop(w);
    ekt_rt_free_checked(rt);
}

/* The runtime freed while the group, its wait future and a member's join handle
 * live: nothing crashes, the waits see the members dropped by the shutdown,
 * spawns are refused, and the last free releases everything. */
static void test_runtime_freed_before_the_group_and_its_handles(void **state)
{
    (void)state;
    for (int order = 0; order < 3; order++) {
        ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
        ek_group *g = group_new(rt, 0);
        reset_forever();
        ek_join *j;
        assert_int_equal(ek_group_spawn(g, forever_poll, forever_drop, NULL, NULL, &j), EK_OK);
        for (int i = 0; i < 3; i++)
            assert_int_equal(ek_group_spawn(g, forever_poll, forever_drop, NULL, NULL, NULL),
                             EK_OK);
        ek_future *w;
        assert_int_equal(ek_group_wait_future(g, &w), EK_OK);
        ek_runtime_free(rt);
        assert_int_equal(atomic_load(&forever_drops), 4);
        assert_int_equal(ek_group_len(g), 0);
        assert_int_equal(ek_group_blocking_wait(g), EK_ECANCELED);
        assert_int_equal(ek_group_spawn(g, forever_poll, forever_drop, NULL, NULL, NULL),
                         EK_ECLOSED);
        ek_future *w2 = NULL;
        assert_int_equal(ek_group_wait_future(g, &w2), EK_OK);
        /* free the rest in three orders */
        if (order == 0) {
            ek_group_free(g);
            ek_future_drop(w);
            ek_join_detach(j);
        } else if (order == 1) {
            ek_join_detach(j);
            ek_future_drop(w);
            ek_group_free(g);
        } else {
            ek_future_drop(w);
            ek_group_free(g);
            ek_join_detach(j);
        }
        ek_future_drop(w2);
        assert_int_equal(ekt_alloc_live(), 0);
    }
}

/* ---- arguments and allocation failure ---- */

static void test_bad_arguments_are_einval_and_consume_the_state(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    ek_group *g = NULL;
    ek_builder *b;
    assert_int_equal(ek_builder_new(&b), EK_OK);
    assert_int_equal(ek_group_new(NULL, 0, &g), EK_EINVAL);
    assert_int_equal(ek_group_new((ek_runtime *)b, 0, &g), EK_EINVAL);
    assert_int_equal(ek_group_new(rt, 0, NULL), EK_EINVAL);
    assert_int_equal(ek_group_new(rt, 0x2, &g), EK_EINVAL);
    assert_null(g);
    g = group_new(rt, 0);
    ekt_reset_drops();
    ek_join *j = (ek_join *)1;
    assert_int_equal(ek_group_spawn(NULL, ekt_ret_state, ekt_count_drop, NULL, NULL, &j),
                     EK_EINVAL);
    assert_null(j);
    assert_int_equal(ek_group_spawn((ek_group *)b, ekt_ret_state, ekt_count_drop, NULL, NULL, NULL),
                     EK_EINVAL);
    assert_int_equal(ek_group_spawn(g, NULL, ekt_count_drop, NULL, NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_group_spawn_local(g, NULL, ekt_count_drop, NULL, NULL, NULL), EK_EINVAL);
    assert_int_equal(atomic_load(&ekt_drops), 4); /* each state dropped */
    assert_int_equal(ek_group_spawn(g, ekt_ret_state, NULL, NULL, NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_group_spawn_future(g, NULL, NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_group_spawn_future(g, (ek_future *)b, NULL, NULL), EK_EINVAL);
    ek_future *f;
    assert_int_equal(ek_sleep(rt, 1, &f), EK_OK);
    assert_int_equal(ek_group_spawn_future(NULL, f, NULL, NULL), EK_EINVAL); /* f dropped */
    assert_int_equal(ek_group_cancel(NULL), EK_EINVAL);
    assert_int_equal(ek_group_cancel((ek_group *)b), EK_EINVAL);
    assert_int_equal(ek_group_len(NULL), EK_EINVAL);
    assert_int_equal(ek_group_wait_future(NULL, &f), EK_EINVAL);
    assert_int_equal(ek_group_wait_future(g, NULL), EK_EINVAL);
    assert_int_equal(ek_group_blocking_wait(NULL), EK_EINVAL);
    assert_int_equal(ek_group_blocking_wait((ek_group *)b), EK_EINVAL);
    ek_group_free(NULL);
    ek_group_free((ek_group *)b); /* ignored */
    /* a group of another runtime's thread: spawn_local from a blocking job is refused */
    ek_group_free(g);
    ek_builder_free(b);
    ekt_rt_free_checked(rt);
}

static void test_allocation_failure_is_enomem_without_leak(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    long live = ekt_alloc_live();
    ek_group *g = NULL;
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_group_new(rt, 0, &g), EK_ENOMEM);
    assert_int_equal(ekt_alloc_live(), live);
    g = group_new(rt, 0);
    ekt_reset_drops();
    int failures = 0;
    for (long k = 0;; k++) {
        long before = ekt_alloc_live();
        ekt_alloc_fail_here_after(k);
        int rc = ek_group_spawn(g, ekt_ret_state, ekt_count_drop, NULL, NULL, NULL);
        ekt_alloc_fail_here_after(-1);
        if (rc == EK_OK) break;
        assert_int_equal(rc, EK_ENOMEM);
        failures++;
        assert_int_equal(atomic_load(&ekt_drops), failures);
        assert_int_equal(ekt_alloc_live(), before);
        assert_int_equal(ek_group_len(g), 0);
    }
    assert_true(failures >= 2);                         /* the member record, then the task */
    assert_int_equal(ek_group_blocking_wait(g), EK_OK); /* a failed spawn is not a cancel */
    ekt_alloc_fail_here_after(0);
    ek_future *w = NULL;
    assert_int_equal(ek_group_wait_future(g, &w), EK_ENOMEM);
    ek_group_free(g);
    ekt_rt_free_checked(rt);
}

/* ---- stress: spawners on several threads, members spawning members, a
 * canceller; every state is dropped exactly once and the counts agree ---- */
typedef struct nest {
    ek_group *g;
    int depth;
} nest;
static atomic_int nest_drops, nest_spawned;

static void nest_drop(void *state)
{
    atomic_fetch_add(&nest_drops, 1);
    free(state);
}

static int nest_poll(void *state, ek_cx *cx, void **out)
{
    nest *n = state;
    if (n->depth > 0) {
        for (int i = 0; i < 2; i++) {
            nest *c = malloc(sizeof *c);
            if (c == NULL) return EK_ENOMEM;
            *c = (nest){.g = n->g, .depth = n->depth - 1};
            atomic_fetch_add(&nest_spawned, 1);
            int rc = ek_group_spawn(n->g, nest_poll, nest_drop, c, NULL, NULL);
            if (rc != EK_OK && rc != EK_ECLOSED) return rc;
        }
        n->depth = 0;
        return ek_yield_now(cx);
    }
    *out = NULL;
    return EK_OK;
}

typedef struct spawner {
    ek_group *g;
    int count;
} spawner;

static void *spawner_main(void *arg)
{
    spawner *s = arg;
    for (int i = 0; i < s->count; i++) {
        nest *n = malloc(sizeof *n);
        if (n == NULL) abort();
        *n = (nest){.g = s->g, .depth = 3};
        atomic_fetch_add(&nest_spawned, 1);
        int rc = ek_group_spawn(s->g, nest_poll, nest_drop, n, NULL, NULL);
        if (rc != EK_OK && rc != EK_ECLOSED) abort();
    }
    return NULL;
}

static void test_concurrent_spawns_nested_members_and_cancel(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) {
        ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 3);
        ek_group *g = group_new(rt, 0);
        atomic_store(&nest_drops, 0);
        atomic_store(&nest_spawned, 0);
        enum { THREADS = 3 };
        pthread_t t[THREADS];
        spawner s = {.g = g, .count = (int)ekt_scale(300)};
        reset_forever();
        for (int i = 0; i < THREADS; i++)
            assert_int_equal(pthread_create(&t[i], NULL, spawner_main, &s), 0);
        if (round == 1) {
            /* one member that only cancellation ends, so the outcome is known */
            assert_int_equal(ek_group_spawn(g, forever_poll, forever_drop, NULL, NULL, NULL),
                             EK_OK);
            usleep(2000);
            assert_int_equal(ek_group_cancel(g), EK_OK);
        }
        for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
        int rc = ek_group_blocking_wait(g);
        assert_int_equal(rc, round == 0 ? EK_OK : EK_ECANCELED);
        assert_int_equal(ek_group_len(g), 0);
        assert_int_equal(atomic_load(&nest_drops), atomic_load(&nest_spawned));
        assert_int_equal(atomic_load(&forever_drops), round);
        if (round == 0) assert_int_equal(atomic_load(&nest_spawned), THREADS * s.count * 15);
        ek_group_free(g);
        ekt_rt_free_checked(rt);
    }
}

#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_blocking_wait_returns_after_every_member_was_dropped),
        T(test_wait_future_completes_with_the_outcome),
        T(test_first_error_is_reported_and_others_run_on_without_the_flag),
        T(test_cancel_on_error_cancels_the_rest_and_closes_the_group),
        T(test_cancel_drops_every_member_and_the_outcome_is_ecanceled),
        T(test_free_cancels_and_joins_the_members),
        T(test_free_on_current_thread_drives_the_runtime_to_join),
        T(test_free_from_a_task_drop_cancels_without_waiting_and_leaks_nothing),
        T(test_local_members_run_on_the_waiting_thread),
        T(test_spawn_future_and_results_through_join_handles),
        T(test_member_aborted_through_its_join_handle_makes_the_outcome_ecanceled),
        T(test_cancel_at_every_await_point_releases_timers_permits_and_waiters),
        T(test_wait_future_and_join_handles_outlive_the_group),
        T(test_runtime_shut_down_first_then_group_freed),
        T(test_runtime_freed_before_the_group_and_its_handles),
        T(test_bad_arguments_are_einval_and_consume_the_state),
        T(test_allocation_failure_is_enomem_without_leak),
        T(test_concurrent_spawns_nested_members_and_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
