/*
 * test_local.c - local tasks belong to their thread: every poll and every drop
 * of a task spawned with ek_spawn_local runs on the thread that spawned it,
 * shutdown included (DESIGN section 7a). Each task records the thread of each
 * poll and of its drop; a poll or drop anywhere else is counted as wrong.
 */
#include "support.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct rec {
    pthread_t owner;
    atomic_int polls, drops, wrong;
    int pend; /* polls to pend before completing; < 0: pend forever */
} rec;

static void rec_init(rec *r, int pend)
{
    r->owner = pthread_self();
    atomic_init(&r->polls, 0);
    atomic_init(&r->drops, 0);
    atomic_init(&r->wrong, 0);
    r->pend = pend;
}

static void check_thread(rec *r)
{
    if (!pthread_equal(r->owner, pthread_self())) atomic_fetch_add(&r->wrong, 1);
}

static int rec_poll(void *s, ek_cx *cx, void **out)
{
    rec *r = s;
    check_thread(r);
    int n = atomic_fetch_add(&r->polls, 1);
    if (r->pend < 0) return EK_PENDING;
    if (n < r->pend) return ek_yield_now(cx);
    *out = NULL;
    return EK_OK;
}

static void rec_drop(void *s)
{
    rec *r = s;
    check_thread(r);
    atomic_fetch_add(&r->drops, 1);
}

#define NTASKS 8

/* ---- a foreign thread with local tasks ---- */

typedef struct foreign {
    ek_runtime *rt;
    rec recs[NTASKS];
    ek_join *joins[NTASKS];
    atomic_int stage; /* 1: spawned and polled; 2: main shut down; 3: done */
    int mode;
    int rc_after;
} foreign;

enum {
    M_BLOCK_ON_AFTER, /* leave; shutdown; the next ek_block_on drops them */
    M_INSIDE,         /* inside ek_block_on when shutdown comes */
    M_JOIN_WAIT,      /* ek_join_wait on one of them after shutdown */
    M_SPAWN_LOCAL,    /* ek_spawn_local after shutdown */
    M_AFTER_FREE,     /* the runtime freed; ek_join_wait on a held join handle */
};

static int run_until_polled(void *s, ek_cx *cx, void **out)
{
    foreign *f = s;
    *out = NULL;
    for (int i = 0; i < NTASKS; i++)
        if (atomic_load(&f->recs[i].polls) == 0) return ek_yield_now(cx);
    return EK_OK;
}

static int pend_until_closed(void *s, ek_cx *cx, void **out)
{
    foreign *f = s;
    (void)cx;
    (void)out;
    if (atomic_load(&f->stage) == 1) atomic_store(&f->stage, 11); /* inside now */
    return EK_PENDING;
}

static void *foreign_main(void *arg)
{
    foreign *f = arg;
    for (int i = 0; i < NTASKS; i++) {
        rec_init(&f->recs[i], -1);
        assert_int_equal(ek_spawn_local(f->rt, rec_poll, rec_drop, &f->recs[i], NULL, &f->joins[i]),
                         EK_OK);
    }
    assert_int_equal(ekt_block_on_fn(f->rt, run_until_polled, f, NULL), EK_OK);
    atomic_store(&f->stage, 1);
    if (f->mode == M_INSIDE) {
        f->rc_after = ekt_block_on_fn(f->rt, pend_until_closed, f, NULL);
    } else {
        while (atomic_load(&f->stage) != 2) usleep(1000);
        /* Shut down by another thread: nothing was dropped there. */
        for (int i = 0; i < NTASKS; i++) assert_int_equal(atomic_load(&f->recs[i].drops), 0);
        switch (f->mode) {
        case M_BLOCK_ON_AFTER:
            f->rc_after = ekt_block_on_fn(f->rt, run_until_polled, f, NULL);
            break;
        case M_JOIN_WAIT:
        case M_AFTER_FREE:
            f->rc_after = ek_join_wait(f->joins[0], NULL);
            break;
        case M_SPAWN_LOCAL: {
            static rec extra;
            rec_init(&extra, 0);
            f->rc_after = ek_spawn_local(f->rt, rec_poll, rec_drop, &extra, NULL, NULL);
            assert_int_equal(atomic_load(&extra.drops), 1); /* consumed, here */
            break;
        }
        }
    }
    for (int i = 0; i < NTASKS; i++) ek_join_detach(f->joins[i]);
    atomic_store(&f->stage, 3);
    return NULL;
}

static void foreign_case(int flavor, int mode)
{
    long before = ekt_alloc_live();
    foreign *f = calloc(1, sizeof *f);
    f->rt = ekt_rt(flavor, 2);
    f->mode = mode;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, foreign_main, f), 0);
    int want_stage = mode == M_INSIDE ? 11 : 1;
    while (atomic_load(&f->stage) != want_stage) usleep(1000);
    if (mode == M_AFTER_FREE) {
        ek_runtime_free(f->rt);
        atomic_store(&f->stage, 2);
    } else {
        assert_int_equal(ek_runtime_shutdown(f->rt, UINT64_MAX), EK_OK);
        if (mode != M_INSIDE) atomic_store(&f->stage, 2);
    }
    pthread_join(th, NULL);
    int want_rc = mode == M_JOIN_WAIT || mode == M_AFTER_FREE ? EK_ECANCELED : EK_ECLOSED;
    assert_int_equal(f->rc_after, want_rc);
    for (int i = 0; i < NTASKS; i++) {
        assert_true(atomic_load(&f->recs[i].polls) >= 1);
        assert_int_equal(atomic_load(&f->recs[i].drops), 1);
        assert_int_equal(atomic_load(&f->recs[i].wrong), 0);
    }
    if (mode != M_AFTER_FREE) ek_runtime_free(f->rt);
    free(f);
    assert_int_equal(ekt_alloc_live(), before);
}

static void test_foreign_thread_drops_after_shutdown_at_next_block_on(void **state)
{
    (void)state;
    foreign_case(EK_FLAVOR_MULTI_THREAD, M_BLOCK_ON_AFTER);
    foreign_case(EK_FLAVOR_CURRENT_THREAD, M_BLOCK_ON_AFTER);
}

static void test_foreign_thread_inside_block_on_drops_its_own(void **state)
{
    (void)state;
    foreign_case(EK_FLAVOR_MULTI_THREAD, M_INSIDE);
    foreign_case(EK_FLAVOR_CURRENT_THREAD, M_INSIDE);
}

static void test_foreign_thread_drops_at_join_wait(void **state)
{
    (void)state;
    foreign_case(EK_FLAVOR_MULTI_THREAD, M_JOIN_WAIT);
    foreign_case(EK_FLAVOR_CURRENT_THREAD, M_JOIN_WAIT);
}

static void test_foreign_thread_drops_at_spawn_local(void **state)
{
    (void)state;
    foreign_case(EK_FLAVOR_MULTI_THREAD, M_SPAWN_LOCAL);
    foreign_case(EK_FLAVOR_CURRENT_THREAD, M_SPAWN_LOCAL);
}

static void test_foreign_thread_drops_after_runtime_free(void **state)
{
    (void)state;
    foreign_case(EK_FLAVOR_MULTI_THREAD, M_AFTER_FREE);
    foreign_case(EK_FLAVOR_CURRENT_THREAD, M_AFTER_FREE);
}

/* ---- a thread that exits with local tasks: they are dropped on it ---- */

typedef struct exiting {
    ek_runtime *rt;
    rec recs[NTASKS];
    ek_join *kept;    /* recs[0]'s join handle, handed to the main thread */
    atomic_int stage; /* 1: spawned (and half of them polled); 2: may exit */
    bool wait_for_main;
} exiting;

static int run_half_polled(void *s, ek_cx *cx, void **out)
{
    exiting *e = s;
    *out = NULL;
    for (int i = 0; i < NTASKS / 2; i++)
        if (atomic_load(&e->recs[i].polls) == 0) return ek_yield_now(cx);
    return EK_OK;
}

static void *exiting_main(void *arg)
{
    exiting *e = arg;
    /* Half polled (idle), half never polled (scheduled): the thread leaves
     * ek_block_on before the second half is spawned. */
    for (int i = 0; i < NTASKS; i++) {
        rec_init(&e->recs[i], -1);
        ek_join *j;
        assert_int_equal(ek_spawn_local(e->rt, rec_poll, rec_drop, &e->recs[i], NULL, &j), EK_OK);
        if (i == 0)
            e->kept = j;
        else
            ek_join_detach(j);
        if (i == NTASKS / 2 - 1)
            assert_int_equal(ekt_block_on_fn(e->rt, run_half_polled, e, NULL), EK_OK);
    }
    atomic_store(&e->stage, 1);
    while (e->wait_for_main && atomic_load(&e->stage) != 2) usleep(1000);
    return NULL; /* no ek_block_on, no shutdown seen: the thread-exit destructor drops them */
}

/* Local tasks that a thread leaves behind when it exits (the runtime still
 * running, or already freed by another thread) are dropped on that thread as
 * it exits, once each; the runtime's memory goes with the last of them; a new
 * thread (whose pthread_t may be the old one's) starts with a set of its own. */
static void exit_case(int flavor, bool free_first)
{
    long before = ekt_alloc_live();
    exiting *e = calloc(1, sizeof *e);
    e->rt = ekt_rt(flavor, 2);
    e->wait_for_main = free_first;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, exiting_main, e), 0);
    while (atomic_load(&e->stage) != 1) usleep(1000);
    if (free_first) {
        ek_runtime_free(e->rt); /* handed back: nothing dropped here */
        for (int i = 0; i < NTASKS; i++) assert_int_equal(atomic_load(&e->recs[i].drops), 0);
        atomic_store(&e->stage, 2);
    }
    pthread_join(th, NULL);
    for (int i = 0; i < NTASKS; i++) {
        assert_int_equal(atomic_load(&e->recs[i].polls), i < NTASKS / 2 ? 1 : 0);
        assert_int_equal(atomic_load(&e->recs[i].drops), 1);
        assert_int_equal(atomic_load(&e->recs[i].wrong), 0);
    }
    assert_int_equal(ek_join_wait(e->kept, NULL), EK_ECANCELED);
    ek_join_detach(e->kept);
    if (!free_first) {
        assert_int_equal(ekt_metric(e->rt, EK_METRIC_TASKS_ALIVE), 0);
        /* A new thread's local tasks run on it, as usual. */
        for (int round = 0; round < 2; round++) {
            exiting e2 = {.rt = e->rt};
            assert_int_equal(pthread_create(&th, NULL, exiting_main, &e2), 0);
            pthread_join(th, NULL);
            assert_int_equal(ek_join_wait(e2.kept, NULL), EK_ECANCELED);
            ek_join_detach(e2.kept);
            for (int i = 0; i < NTASKS; i++) {
                assert_int_equal(atomic_load(&e2.recs[i].drops), 1);
                assert_int_equal(atomic_load(&e2.recs[i].wrong), 0);
            }
        }
        ek_runtime_free(e->rt);
    }
    free(e);
    assert_int_equal(ekt_alloc_live(), before);
}

static void test_thread_exit_drops_its_local_tasks_there(void **state)
{
    (void)state;
    exit_case(EK_FLAVOR_MULTI_THREAD, false);
    exit_case(EK_FLAVOR_CURRENT_THREAD, false);
}

static void test_thread_exit_after_runtime_free_drops_its_local_tasks(void **state)
{
    (void)state;
    exit_case(EK_FLAVOR_MULTI_THREAD, true);
    exit_case(EK_FLAVOR_CURRENT_THREAD, true);
}

/* ---- the thread that shuts down owns local tasks: dropped right there ---- */

static void test_own_local_tasks_dropped_by_own_shutdown(void **state)
{
    (void)state;
    for (int flavor = 0; flavor < 2; flavor++) {
        ek_runtime *rt = ekt_rt(flavor, 2);
        rec r[NTASKS];
        for (int i = 0; i < NTASKS; i++) {
            rec_init(&r[i], i % 2 ? -1 : 3);
            assert_int_equal(ek_spawn_local(rt, rec_poll, rec_drop, &r[i], NULL, NULL), EK_OK);
        }
        ek_runtime_free(rt);
        for (int i = 0; i < NTASKS; i++) {
            assert_int_equal(atomic_load(&r[i].drops), 1);
            assert_int_equal(atomic_load(&r[i].wrong), 0);
        }
    }
}

/* ---- local tasks pinned to workers: dropped by their worker ---- */

typedef struct pinned {
    rec r;
    atomic_int ready;
} pinned;

static pinned pins[NTASKS];

static int spawn_pinned(void *s, ek_cx *cx, void **out)
{
    pinned *p = s;
    rec_init(&p->r, -1); /* owner: this worker */
    int rc = ek_spawn_local(ek_cx_runtime(cx), rec_poll, rec_drop, &p->r, NULL, NULL);
    atomic_store(&p->ready, 1);
    *out = NULL;
    return rc;
}

static void test_worker_local_tasks_dropped_on_their_worker(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    for (int i = 0; i < NTASKS; i++) {
        atomic_store(&pins[i].ready, 0);
        assert_int_equal(ekt_spawn_join(rt, spawn_pinned, &pins[i], NULL), EK_OK);
    }
    for (int i = 0; i < NTASKS; i++)
        while (atomic_load(&pins[i].r.polls) == 0) usleep(1000);
    ek_runtime_free(rt);
    for (int i = 0; i < NTASKS; i++) {
        assert_int_equal(atomic_load(&pins[i].r.drops), 1);
        assert_int_equal(atomic_load(&pins[i].r.wrong), 0);
    }
}

/* ---- completions (not only cancellations) on the owner, woken remotely ---- */

typedef struct remote_wake {
    rec r;
    ek_waker *_Atomic w;
} remote_wake;

static int wait_for_remote(void *s, ek_cx *cx, void **out)
{
    remote_wake *rw = s;
    check_thread(&rw->r);
    if (atomic_fetch_add(&rw->r.polls, 1) >= 1) {
        *out = NULL;
        return EK_OK;
    }
    atomic_store(&rw->w, ek_cx_waker(cx));
    return EK_PENDING;
}

static void *waker_thread(void *arg)
{
    remote_wake *rw = arg;
    ek_waker *w;
    while (!(w = atomic_load(&rw->w))) usleep(500);
    ek_waker_wake(w);
    return NULL;
}

static void test_local_task_woken_from_another_thread_runs_on_its_own(void **state)
{
    (void)state;
    for (int flavor = 0; flavor < 2; flavor++) {
        ek_runtime *rt = ekt_rt(flavor, 2);
        remote_wake rw;
        rec_init(&rw.r, 0);
        atomic_init(&rw.w, NULL);
        ek_join *j;
        assert_int_equal(ek_spawn_local(rt, wait_for_remote, rec_drop, &rw, NULL, &j), EK_OK);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, waker_thread, &rw), 0);
        assert_int_equal(ek_join_wait(j, NULL), EK_OK);
        pthread_join(th, NULL);
        ek_join_detach(j);
        assert_int_equal(atomic_load(&rw.r.polls), 2);
        assert_int_equal(atomic_load(&rw.r.drops), 1);
        assert_int_equal(atomic_load(&rw.r.wrong), 0);
        ek_runtime_free(rt);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)
        T(test_foreign_thread_drops_after_shutdown_at_next_block_on),
        T(test_foreign_thread_inside_block_on_drops_its_own),
        T(test_foreign_thread_drops_at_join_wait),
        T(test_foreign_thread_drops_at_spawn_local),
        T(test_foreign_thread_drops_after_runtime_free),
        T(test_thread_exit_drops_its_local_tasks_there),
        T(test_thread_exit_after_runtime_free_drops_its_local_tasks),
        T(test_own_local_tasks_dropped_by_own_shutdown),
        T(test_worker_local_tasks_dropped_on_their_worker),
        T(test_local_task_woken_from_another_thread_runs_on_its_own),
#undef T
    };
    if (getenv("EKT_FILTER")) cmocka_set_test_filter(getenv("EKT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
