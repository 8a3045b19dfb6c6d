/*
 * test_time.c - sleep, timeout and interval through the public API.
 *
 * Most tests run on a current-thread runtime whose test clock starts paused:
 * time moves only when every task is idle, straight to the next timer, so
 * deadlines are observed exactly (ek_now_ms) and the tests are deterministic.
 * A few use the real clock on a multi-thread runtime, to exercise firing from
 * the driver on another thread and unparking a sleeping driver.
 *
 * Poll functions never assert (a cmocka failure would longjmp out of the
 * runtime); they record what happened and the test checks it afterwards.
 */
#include "support.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---- */

static ek_runtime *rt_paused(void)
{
    ek_builder *b = ekt_builder(EK_FLAVOR_CURRENT_THREAD, 0, -1, 0);
    assert_int_equal(ek_builder_set_start_paused(b, 1), EK_OK);
    ek_runtime *rt = NULL;
    assert_int_equal(ek_runtime_new(b, &rt), EK_OK);
    ek_builder_free(b);
    assert_int_equal(ek_now_ms(rt), 0);
    return rt;
}

static uint64_t timers(ek_runtime *rt)
{
    return ekt_metric(rt, EK_METRIC_TIMERS);
}

/* A task that sleeps `ms` (from its first poll) and records when it woke. */
typedef struct sleeper {
    ek_runtime *rt;
    uint64_t ms;
    ek_future *sleep;
    int status;
    uint64_t woke_at;
    /* Completion log and counter shared by a group of sleepers. */
    struct group *group;
    int id;
} sleeper;

typedef struct group {
    int *order; /* ids in completion order */
    size_t done, n;
    ek_waker *waiter; /* woken when done == n */
} group;

static int sleeper_poll(void *state, ek_cx *cx, void **out)
{
    sleeper *s = state;
    if (s->sleep == NULL) {
        int rc = ek_sleep(s->rt, s->ms, &s->sleep);
        if (rc != EK_OK) return s->status = rc;
    }
    int rc = ek_future_poll(s->sleep, cx, out);
    if (rc == EK_PENDING) return rc;
    s->status = rc;
    s->woke_at = ek_now_ms(s->rt);
    group *g = s->group;
    if (g != NULL) {
        if (g->order) g->order[g->done] = s->id;
        if (++g->done == g->n && g->waiter) {
            ek_waker_wake(g->waiter);
            g->waiter = NULL;
        }
    }
    return rc;
}

static void sleeper_drop(void *state)
{
    sleeper *s = state;
    ek_future_drop(s->sleep);
    s->sleep = NULL;
}

/* The block_on future of a current-thread test: wait until the group is done. */
static int group_wait_poll(void *state, ek_cx *cx, void **out)
{
    group *g = state;
    *out = NULL;
    if (g->done == g->n) return EK_OK;
    if (g->waiter == NULL || !ek_waker_will_wake(g->waiter, cx)) {
        ek_waker_drop(g->waiter);
        g->waiter = ek_cx_waker(cx);
    }
    return EK_PENDING;
}

/* A future that never completes and notes that it was dropped. */
typedef struct never {
    int polls;
    int dropped;
} never;

static int never_poll(void *state, ek_cx *cx, void **out)
{
    (void)cx;
    (void)out;
    ((never *)state)->polls++;
    return EK_PENDING;
}

static void never_drop(void *state)
{
    ((never *)state)->dropped++;
}

/* A future that completes with `status`/`value` after `ms` of sleep (0: at
 * once). */
typedef struct delayed {
    ek_runtime *rt;
    uint64_t ms;
    ek_future *sleep;
    int status;
    void *value;
    int dropped;
} delayed;

static int delayed_poll(void *state, ek_cx *cx, void **out)
{
    delayed *d = state;
    if (d->ms > 0) {
        if (d->sleep == NULL) {
            int rc = ek_sleep(d->rt, d->ms, &d->sleep);
            if (rc != EK_OK) return rc;
        }
        int rc = ek_future_poll(d->sleep, cx, NULL);
        if (rc != EK_OK) return rc;
    }
    *out = d->value;
    return d->status;
}

static void delayed_drop(void *state)
{
    delayed *d = state;
    ek_future_drop(d->sleep);
    d->sleep = NULL;
    d->dropped++;
}

/* ---- sleep ---- */

static void test_sleep_completes_exactly_at_its_deadline_on_paused_clock(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    ek_future *f = NULL;
    assert_int_equal(ek_sleep(rt, 100, &f), EK_OK);
    void *out = (void *)1;
    assert_int_equal(ek_block_on(rt, f, &out), EK_OK);
    assert_null(out);
    assert_int_equal(ek_now_ms(rt), 100);
    assert_int_equal(timers(rt), 0);
    /* ek_sleep_until counts in the same time. */
    assert_int_equal(ek_sleep_until(rt, 250, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    assert_int_equal(ek_now_ms(rt), 250);
    ekt_rt_free_checked(rt);
}

static void test_sleep_zero_and_past_deadline_complete_without_timer(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    ek_future *f = NULL;
    assert_int_equal(ek_sleep(rt, 0, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    assert_int_equal(ek_now_ms(rt), 0);
    assert_int_equal(ek_runtime_clock_advance(rt, 100), EK_OK);
    assert_int_equal(ek_sleep_until(rt, 40, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    assert_int_equal(ek_now_ms(rt), 100);
    assert_int_equal(ekt_metric(rt, EK_METRIC_TIMERS), 0);
    ekt_rt_free_checked(rt);
}

static void test_sleeps_complete_in_deadline_order(void **state)
{
    (void)state;
    enum { N = 64 };
    ek_runtime *rt = rt_paused();
    sleeper s[N];
    int order[N];
    group g = {.order = order, .n = N};
    for (int i = 0; i < N; i++) {
        /* Deadlines spread over several wheel levels, spawned out of order. */
        s[i] = (sleeper){.rt = rt, .ms = (uint64_t)((i * 37) % N + 1) * 997, .group = &g, .id = i};
        assert_int_equal(ek_spawn(rt, sleeper_poll, sleeper_drop, &s[i], NULL, NULL), EK_OK);
    }
    assert_int_equal(ekt_block_on_fn(rt, group_wait_poll, &g, NULL), EK_OK);
    assert_int_equal(g.done, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(s[i].status, EK_OK);
        assert_int_equal(s[i].woke_at, s[i].ms);
        if (i > 0) assert_true(s[order[i - 1]].ms < s[order[i]].ms);
    }
    assert_int_equal(ek_now_ms(rt), (uint64_t)N * 997);
    ekt_rt_free_checked(rt);
}

/* Poll a sleep once (registering it), check the metric, drop it. */
typedef struct drop_probe {
    ek_runtime *rt;
    uint64_t timers_before_poll, timers_registered, timers_after_drop;
    int first_poll;
} drop_probe;

static uint64_t timers_any(ek_runtime *rt)
{
    uint64_t v[EK_METRIC_COUNT] = {0};
    ek_runtime_metrics(rt, v, EK_METRIC_COUNT);
    return v[EK_METRIC_TIMERS];
}

static int drop_probe_poll(void *state, ek_cx *cx, void **out)
{
    drop_probe *p = state;
    ek_future *f = NULL;
    if (ek_sleep(p->rt, 1000, &f) != EK_OK) return EK_ENOMEM;
    p->timers_before_poll = timers_any(p->rt);
    p->first_poll = ek_future_poll(f, cx, NULL);
    p->timers_registered = timers_any(p->rt);
    ek_future_drop(f);
    p->timers_after_drop = timers_any(p->rt);
    *out = NULL;
    return EK_OK;
}

static void test_dropping_a_registered_sleep_removes_it_from_wheel(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    drop_probe p = {.rt = rt};
    assert_int_equal(ekt_block_on_fn(rt, drop_probe_poll, &p, NULL), EK_OK);
    assert_int_equal(p.timers_before_poll, 0); /* lazy: nothing until polled */
    assert_int_equal(p.first_poll, EK_PENDING);
    assert_int_equal(p.timers_registered, 1);
    assert_int_equal(p.timers_after_drop, 0);
    /* The dropped sleep's deadline never happened. */
    assert_int_equal(ek_now_ms(rt), 0);
    ekt_rt_free_checked(rt);
}

static void test_aborting_sleeping_tasks_removes_their_timers(void **state)
{
    (void)state;
    enum { N = 100 };
    ek_runtime *rt = rt_paused();
    sleeper s[N];
    ek_join *j[N];
    for (int i = 0; i < N; i++) {
        s[i] = (sleeper){.rt = rt, .ms = 1000 + (uint64_t)i};
        assert_int_equal(ek_spawn(rt, sleeper_poll, sleeper_drop, &s[i], NULL, &j[i]), EK_OK);
    }
    /* Let every task register its sleep: a short sleep of our own. */
    ek_future *f = NULL;
    assert_int_equal(ek_sleep(rt, 10, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    assert_int_equal(timers(rt), N);
    for (int i = 0; i < N; i += 2) assert_int_equal(ek_join_abort(j[i]), EK_OK);
    assert_int_equal(ek_sleep(rt, 5, &f), EK_OK); /* let the aborts run */
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    assert_int_equal(timers(rt), N / 2);
    assert_int_equal(ek_sleep(rt, 2000, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    for (int i = 0; i < N; i++) {
        void *out;
        assert_int_equal(ek_join_wait(j[i], &out), i % 2 == 0 ? EK_ECANCELED : EK_OK);
        if (i % 2) assert_int_equal(s[i].woke_at, s[i].ms);
        ek_join_detach(j[i]);
    }
    assert_int_equal(timers(rt), 0);
    ekt_rt_free_checked(rt);
}

static void test_million_concurrent_sleeps_all_complete_at_their_deadlines(void **state)
{
    (void)state;
    const size_t n = (size_t)ekt_scale(1000000);
    ek_runtime *rt = rt_paused();
    sleeper *s = calloc(n, sizeof *s);
    assert_non_null(s);
    group g = {.n = n};
    for (size_t i = 0; i < n; i++) {
        s[i] = (sleeper){.rt = rt, .ms = 1 + (i * 7919u) % 10000u, .group = &g};
        assert_int_equal(ek_spawn(rt, sleeper_poll, sleeper_drop, &s[i], NULL, NULL), EK_OK);
    }
    assert_int_equal(ekt_block_on_fn(rt, group_wait_poll, &g, NULL), EK_OK);
    assert_int_equal(g.done, n);
    size_t late = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        late += s[i].woke_at != s[i].ms;
        failed += s[i].status != EK_OK;
    }
    assert_int_equal(failed, 0);
    assert_int_equal(late, 0);
    assert_int_equal(timers(rt), 0);
    assert_true(ek_now_ms(rt) <= 10000);
    ekt_rt_free_checked(rt);
    free(s);
}

static void test_sleep_on_real_clock_waits_at_least_its_duration(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_future *f = NULL;
    uint64_t now0 = ek_now_ms(rt), t0 = ekt_now_ms();
    assert_int_equal(ek_sleep(rt, 30, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    uint64_t waited = ekt_now_ms() - t0;
    /* Never early (a loaded machine can only make it later, so no upper bound:
     * a sleep that never fired would hang and meet ctest's timeout). */
    assert_true(ek_now_ms(rt) - now0 >= 30);
    assert_true(waited >= 29); /* real_ms truncates: allow the rounding */
    assert_int_equal(timers(rt), 0);
    ekt_rt_free_checked(rt);
}

static void test_sleeps_on_multi_thread_runtime_fire_from_the_driver(void **state)
{
    (void)state;
    enum { N = 200 };
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    sleeper s[N];
    ek_join *j[N];
    for (int i = 0; i < N; i++) {
        s[i] = (sleeper){.rt = rt, .ms = (uint64_t)(i % 25)};
        assert_int_equal(ek_spawn(rt, sleeper_poll, sleeper_drop, &s[i], NULL, &j[i]), EK_OK);
    }
    /* Abort some while they sleep, racing the driver firing others. */
    for (int i = 0; i < N; i += 5) ek_join_abort(j[i]);
    int ok = 0, cancelled = 0;
    for (int i = 0; i < N; i++) {
        void *out;
        int rc = ek_join_wait(j[i], &out);
        ok += rc == EK_OK;
        cancelled += rc == EK_ECANCELED;
        ek_join_detach(j[i]);
    }
    assert_int_equal(ok + cancelled, N);
    assert_true(ok >= N - N / 5);
    assert_int_equal(timers(rt), 0);
    ekt_rt_free_checked(rt);
}

/* A timer armed from another thread while the only worker sleeps in the
 * driver with no timer (epoll_wait without a timeout: ek__time_next_expiration
 * answered "none" without the timer lock) must still fire: the filing lowers the
 * driver's deadline and wakes it (time.c states the seq_cst pairing). The sleeps
 * are polled by ek_block_on on this thread, which never turns the driver. Every
 * other round files after the worker counted its next park (it is about to
 * sleep, or sleeps); the others file at once, racing its timeout computation.
 * A missed wake-up hangs here until ctest's timeout. */
static void test_timer_armed_from_another_thread_wakes_a_driver_parked_without_timers(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 1);
    long n = ekt_scale(300);
    for (long i = 0; i < n; i++) {
        assert_int_equal(timers(rt), 0);
        uint64_t parks = ekt_metric(rt, EK_METRIC_PARKS);
        ek_future *f = NULL;
        assert_int_equal(ek_sleep(rt, 1, &f), EK_OK);
        assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
        /* The worker fired it from a driver turn, then parks again (a park
         * more than before this round: a bounded wait, not a timing). */
        struct timespec ts = {0, 20000};
        for (int k = 0; i % 2 == 0 && k < 100000 && ekt_metric(rt, EK_METRIC_PARKS) <= parks; k++)
            nanosleep(&ts, NULL);
    }
    assert_int_equal(timers(rt), 0);
    ekt_rt_free_checked(rt);
}

/* On the real clock, what is due when it is made completes on its first poll,
 * without a timer: a sleep and a timeout of 0 ms, an interval's first tick.
 * Recorded by one poll inside ek_block_on. */
typedef struct due_probe {
    ek_runtime *rt;
    never nv;
    int sleep_rc, timeout_rc, tick_rc;
    uint64_t timers_after;
} due_probe;

static int due_probe_poll(void *state, ek_cx *cx, void **out)
{
    due_probe *p = state;
    ek_future *f = NULL, *inner = NULL;
    p->sleep_rc = ek_sleep(p->rt, 0, &f);
    if (p->sleep_rc == EK_OK) {
        p->sleep_rc = ek_future_poll(f, cx, NULL);
        ek_future_drop(f);
    }
    p->timeout_rc = ek_future_new(never_poll, never_drop, &p->nv, &inner);
    if (p->timeout_rc == EK_OK) p->timeout_rc = ek_timeout(p->rt, inner, 0, &f);
    if (p->timeout_rc == EK_OK) {
        p->timeout_rc = ek_future_poll(f, cx, NULL);
        ek_future_drop(f);
    }
    ek_interval *iv = NULL;
    p->tick_rc = ek_interval_new(p->rt, 1000, EK_MISSED_TICK_BURST, &iv);
    if (p->tick_rc == EK_OK) {
        p->tick_rc = ek_interval_tick(iv, cx, NULL);
        ek_interval_free(iv);
    }
    p->timers_after = timers(p->rt);
    *out = NULL;
    return EK_OK;
}

static void test_real_clock_zero_durations_complete_on_first_poll_without_timer(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    due_probe p = {.rt = rt, .sleep_rc = -1, .timeout_rc = -1, .tick_rc = -1};
    assert_int_equal(ekt_block_on_fn(rt, due_probe_poll, &p, NULL), EK_OK);
    assert_int_equal(p.sleep_rc, EK_OK);
    assert_int_equal(p.timeout_rc, EK_ETIMEDOUT);
    assert_int_equal(p.nv.polls, 1);
    assert_int_equal(p.nv.dropped, 1);
    assert_int_equal(p.tick_rc, EK_OK);
    assert_int_equal(p.timers_after, 0);
    ekt_rt_free_checked(rt);
}

/* A sleep whose deadline passed before its first poll (created and awaited
 * only after it elapsed, a sleep_until in the past) completes on the real
 * clock, and never before its deadline. */
static void test_real_clock_sleep_first_polled_after_its_deadline_completes(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    for (int round = 0; round < 20; round++) {
        ek_future *f = NULL;
        uint64_t made = ek_now_ms(rt);
        assert_int_equal(ek_sleep(rt, 2, &f), EK_OK);
        /* Let the deadline pass before the first poll. */
        while (ek_now_ms(rt) < made + 4) {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
        assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
        assert_true(ek_now_ms(rt) >= made + 2);
        uint64_t now = ek_now_ms(rt);
        assert_int_equal(ek_sleep_until(rt, round % 2 ? now : now / 2, &f), EK_OK);
        assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    }
    assert_int_equal(timers(rt), 0);
    ekt_rt_free_checked(rt);
}

/* Spawns a task sleeping 5 s; waits 30 ms (the driver then parks until 5 s);
 * then sleeps 20 ms more, which must unpark the driver to fire in time. */
typedef struct unpark_probe {
    ek_runtime *rt;
    sleeper longer;
    ek_join *longer_join;
    ek_future *step;
    int phase;
    int status;
} unpark_probe;

static int unpark_probe_poll(void *state, ek_cx *cx, void **out)
{
    unpark_probe *p = state;
    *out = NULL;
    for (;;) {
        if (p->step == NULL) {
            if (p->phase == 0) {
                p->status =
                    ek_spawn(p->rt, sleeper_poll, sleeper_drop, &p->longer, NULL, &p->longer_join);
                if (p->status != EK_OK) return p->status;
            }
            if (p->phase == 2) return EK_OK;
            p->status = ek_sleep(p->rt, p->phase == 0 ? 30 : 20, &p->step);
            if (p->status != EK_OK) return p->status;
        }
        int rc = ek_future_poll(p->step, cx, NULL);
        if (rc != EK_OK) return rc;
        ek_future_drop(p->step);
        p->step = NULL;
        p->phase++;
    }
}

static void test_earlier_timer_unparks_driver_sleeping_until_a_later_one(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    unpark_probe p = {.rt = rt};
    /* Far enough that no loaded machine reaches it during the test: a driver
     * that kept sleeping until it would have fired it together with the short
     * ones, so its sleeper still pending shows the driver was unparked. */
    p.longer = (sleeper){.rt = rt, .ms = 600000};
    uint64_t t0 = ekt_now_ms();
    assert_int_equal(ekt_block_on_fn(rt, unpark_probe_poll, &p, NULL), EK_OK);
    assert_true(ekt_now_ms() - t0 >= 49);
    assert_int_equal(ek_join_is_finished(p.longer_join), 0);
    assert_int_equal(p.longer.woke_at, 0);
    assert_int_equal(timers(rt), 1); /* only the long one is still filed */
    assert_int_equal(ek_join_abort(p.longer_join), EK_OK);
    void *out;
    assert_int_equal(ek_join_wait(p.longer_join, &out), EK_ECANCELED);
    ek_join_detach(p.longer_join);
    assert_int_equal(timers(rt), 0);
    ekt_rt_free_checked(rt);
}

/* Task A polls a sleep once and leaves it behind; task B takes it over. */
typedef struct handover {
    ek_runtime *rt;
    ek_future *sleep;
    int a_status, b_status;
    uint64_t b_woke_at;
} handover;

static int handover_a_poll(void *state, ek_cx *cx, void **out)
{
    handover *h = state;
    *out = NULL;
    if ((h->a_status = ek_sleep(h->rt, 100, &h->sleep)) != EK_OK) return h->a_status;
    h->a_status = ek_future_poll(h->sleep, cx, NULL); /* registers A's waker */
    return EK_OK;
}

static int handover_b_poll(void *state, ek_cx *cx, void **out)
{
    handover *h = state;
    *out = NULL;
    int rc = ek_future_poll(h->sleep, cx, NULL);
    if (rc == EK_PENDING) return rc;
    h->b_status = rc;
    h->b_woke_at = ek_now_ms(h->rt);
    return EK_OK;
}

static void test_sleep_moved_to_another_task_wakes_its_new_owner(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    handover h = {.rt = rt};
    ek_join *a = NULL;
    assert_int_equal(ek_spawn(rt, handover_a_poll, ekt_noop_drop, &h, NULL, &a), EK_OK);
    void *out;
    assert_int_equal(ek_join_wait(a, &out), EK_OK);
    ek_join_detach(a);
    assert_int_equal(h.a_status, EK_PENDING);
    assert_int_equal(timers(rt), 1);
    /* B polls the same sleep: its waker must replace A's (A is gone). The
     * timeout turns a lost wake-up into a failure instead of a hang. */
    ek_future *b = NULL, *bounded = NULL;
    assert_int_equal(ek_future_new(handover_b_poll, ekt_noop_drop, &h, &b), EK_OK);
    assert_int_equal(ek_timeout(rt, b, 10000, &bounded), EK_OK);
    assert_int_equal(ek_block_on(rt, bounded, NULL), EK_OK);
    assert_int_equal(h.b_status, EK_OK);
    assert_int_equal(h.b_woke_at, 100);
    ek_future_drop(h.sleep);
    ekt_rt_free_checked(rt);
}

/* Each task races timeouts against sleeps of nearly the same length, so
 * timers are cancelled while the driver on another thread fires them. */
typedef struct churner {
    ek_runtime *rt;
    int round, rounds;
    ek_future *cur;
    int ok, timed_out, other;
} churner;

static int churner_poll(void *state, ek_cx *cx, void **out)
{
    churner *c = state;
    *out = NULL;
    while (c->round < c->rounds) {
        if (c->cur == NULL) {
            ek_future *inner = NULL;
            if (ek_sleep(c->rt, (uint64_t)(c->round % 3), &inner) != EK_OK) return EK_ENOMEM;
            if (ek_timeout(c->rt, inner, (uint64_t)((c->round + 1) % 3), &c->cur) != EK_OK) {
                ek_future_drop(inner);
                return EK_ENOMEM;
            }
        }
        int rc = ek_future_poll(c->cur, cx, NULL);
        if (rc == EK_PENDING) return rc;
        c->ok += rc == EK_OK;
        c->timed_out += rc == EK_ETIMEDOUT;
        c->other += rc != EK_OK && rc != EK_ETIMEDOUT;
        ek_future_drop(c->cur);
        c->cur = NULL;
        c->round++;
    }
    return EK_OK;
}

static void churner_drop(void *state)
{
    churner *c = state;
    ek_future_drop(c->cur);
    c->cur = NULL;
}

static void test_timeouts_racing_sleeps_across_threads_leave_no_timer(void **state)
{
    (void)state;
    enum { N = 64 };
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    churner c[N];
    ek_join *j[N];
    for (int i = 0; i < N; i++) {
        c[i] = (churner){.rt = rt, .rounds = (int)ekt_scale(60), .round = i % 3};
        assert_int_equal(ek_spawn(rt, churner_poll, churner_drop, &c[i], NULL, &j[i]), EK_OK);
    }
    for (int i = 0; i < N; i++) {
        void *out;
        assert_int_equal(ek_join_wait(j[i], &out), EK_OK);
        ek_join_detach(j[i]);
        assert_int_equal(c[i].other, 0);
        assert_int_equal(c[i].ok + c[i].timed_out, c[i].rounds - i % 3);
    }
    assert_int_equal(timers(rt), 0);
    ekt_rt_free_checked(rt);
}

/* ---- test clock ---- */

typedef struct advance_probe {
    ek_runtime *rt;
    ek_future *sleep;
    int advanced;
    int advance_rc;
    uint64_t done_at;
} advance_probe;

static int advance_probe_poll(void *state, ek_cx *cx, void **out)
{
    advance_probe *p = state;
    if (p->sleep == NULL && ek_sleep(p->rt, 100, &p->sleep) != EK_OK) return EK_ENOMEM;
    int rc = ek_future_poll(p->sleep, cx, out);
    if (rc == EK_PENDING && !p->advanced) {
        /* Time moves by 100 ms at once: the sleep fires and wakes us. */
        p->advanced = 1;
        p->advance_rc = ek_runtime_clock_advance(p->rt, 100);
        return EK_PENDING;
    }
    if (rc != EK_PENDING) {
        p->done_at = ek_now_ms(p->rt);
        ek_future_drop(p->sleep);
        p->sleep = NULL;
    }
    return rc;
}

static void test_clock_advance_fires_due_timers_in_one_jump(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    advance_probe p = {.rt = rt};
    assert_int_equal(ekt_block_on_fn(rt, advance_probe_poll, &p, NULL), EK_OK);
    assert_int_equal(p.advance_rc, EK_OK);
    assert_int_equal(p.done_at, 100);
    assert_int_equal(ek_now_ms(rt), 100);
    ekt_rt_free_checked(rt);
}

static void test_paused_clock_stands_still_and_resumes_where_it_stopped(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    assert_int_equal(ek_runtime_clock_pause(rt), EK_OK);
    uint64_t paused = ek_now_ms(rt);
    struct timespec ts = {.tv_nsec = 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_int_equal(ek_now_ms(rt), paused);
    assert_int_equal(ek_runtime_clock_advance(rt, 1000), EK_OK);
    assert_int_equal(ek_now_ms(rt), paused + 1000);
    assert_int_equal(ek_runtime_clock_resume(rt), EK_OK);
    uint64_t resumed = ek_now_ms(rt);
    assert_true(resumed >= paused + 1000 && resumed < paused + 1000 + 500);
    /* A sleep on the resumed clock runs in real time again. */
    ek_future *f = NULL;
    assert_int_equal(ek_sleep(rt, 10, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    assert_true(ek_now_ms(rt) >= resumed + 10);
    ekt_rt_free_checked(rt);
}

/* ---- timeout ---- */

/* ---- extremes: every deadline saturates at the clock's cap ---- */

/* The paused clock's cap: 2^63 ns in whole milliseconds (about 292 years). */
#define CLOCK_CAP_MS (UINT64_MAX / 2 / 1000000u)

/* Poll a heap future once and record its status (it stays the caller's). */
typedef struct poll_once {
    ek_future *f;
    int rc;
} poll_once;

static int poll_once_poll(void *state, ek_cx *cx, void **out)
{
    poll_once *p = state;
    p->rc = ek_future_poll(p->f, cx, NULL);
    *out = NULL;
    return EK_OK;
}

static int first_poll(ek_runtime *rt, ek_future *f)
{
    poll_once p = {f, 99};
    assert_int_equal(ekt_block_on_fn(rt, poll_once_poll, &p, NULL), EK_OK);
    ek_future_drop(f);
    return p.rc;
}

typedef struct tick_once {
    ek_interval *iv;
    int rc;
    uint64_t tick;
} tick_once;

static int tick_once_poll(void *state, ek_cx *cx, void **out)
{
    tick_once *t = state;
    t->rc = ek_interval_tick(t->iv, cx, &t->tick);
    *out = NULL;
    return EK_OK;
}

static void test_at_the_clock_cap_every_timer_is_due_at_once(void **state)
{
    (void)state;
    alarm(60); /* a hang is a failure, not a stuck suite */
    ek_runtime *rt = rt_paused();
    assert_int_equal(ek_runtime_clock_advance(rt, UINT64_MAX), EK_OK);
    assert_int_equal(ek_now_ms(rt), CLOCK_CAP_MS);
    assert_int_equal(ek_runtime_clock_advance(rt, 1), EK_OK);
    assert_int_equal(ek_now_ms(rt), CLOCK_CAP_MS); /* it stays there */

    /* Any later deadline saturates at the cap, which is now: due at the first
     * poll (a deadline past the cap could never be reached). */
    ek_future *f = NULL;
    assert_int_equal(ek_sleep(rt, 10, &f), EK_OK);
    assert_int_equal(first_poll(rt, f), EK_OK);
    assert_int_equal(ek_sleep(rt, UINT64_MAX, &f), EK_OK);
    assert_int_equal(first_poll(rt, f), EK_OK);
    assert_int_equal(ek_sleep_until(rt, UINT64_MAX, &f), EK_OK);
    assert_int_equal(first_poll(rt, f), EK_OK);
    never nv = {0};
    ek_future *inner = NULL;
    assert_int_equal(ek_future_new(never_poll, never_drop, &nv, &inner), EK_OK);
    assert_int_equal(ek_timeout(rt, inner, UINT64_MAX, &f), EK_OK);
    assert_int_equal(first_poll(rt, f), EK_ETIMEDOUT);
    assert_int_equal(nv.polls, 1);
    assert_int_equal(nv.dropped, 1);
    /* And awaited normally, a sleep completes (it used to hang here). */
    assert_int_equal(ek_sleep(rt, 10, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    assert_int_equal(timers(rt), 0);

    /* An interval at the cap ticks at the cap. */
    ek_interval *iv = NULL;
    assert_int_equal(ek_interval_new(rt, UINT64_MAX, EK_MISSED_TICK_BURST, &iv), EK_OK);
    tick_once t = {iv, 99, 0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ekt_block_on_fn(rt, tick_once_poll, &t, NULL), EK_OK);
        assert_int_equal(t.rc, EK_OK);
        assert_int_equal(t.tick, CLOCK_CAP_MS);
    }
    ek_interval_free(iv);
    ekt_rt_free_checked(rt);
    alarm(0);
}

static void test_farthest_deadlines_are_reached_by_auto_advance(void **state)
{
    (void)state;
    alarm(60);
    ek_runtime *rt = rt_paused();
    /* From 0: the clock jumps to the cap (the deadline's saturated value). */
    ek_future *f = NULL;
    assert_int_equal(ek_sleep_until(rt, UINT64_MAX, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    assert_int_equal(ek_now_ms(rt), CLOCK_CAP_MS);
    ekt_rt_free_checked(rt);

    rt = rt_paused();
    assert_int_equal(ek_runtime_clock_advance(rt, 1000), EK_OK);
    assert_int_equal(ek_sleep(rt, UINT64_MAX - 10, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    assert_int_equal(ek_now_ms(rt), CLOCK_CAP_MS);
    /* A timeout whose deadline saturates: the inner result ready at the
     * deadline wins. */
    assert_int_equal(ek_sleep_until(rt, UINT64_MAX, &f), EK_OK);
    ek_future *to = NULL;
    assert_int_equal(ek_timeout(rt, f, UINT64_MAX, &to), EK_OK);
    assert_int_equal(ek_block_on(rt, to, NULL), EK_OK);
    ekt_rt_free_checked(rt);
    alarm(0);
}

static void test_timeout_fires_at_deadline_and_drops_inner(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    never nv = {0};
    ek_future *inner = NULL, *f = NULL;
    assert_int_equal(ek_future_new(never_poll, never_drop, &nv, &inner), EK_OK);
    assert_int_equal(ek_timeout(rt, inner, 50, &f), EK_OK);
    void *out = NULL;
    assert_int_equal(ek_block_on(rt, f, &out), EK_ETIMEDOUT);
    assert_int_equal(ek_now_ms(rt), 50);
    assert_true(nv.polls >= 1);
    assert_int_equal(nv.dropped, 1);
    assert_int_equal(timers(rt), 0);
    ekt_rt_free_checked(rt);
}

static void test_timeout_returns_inner_result_when_inner_completes_first(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    static int value;
    delayed d = {.rt = rt, .ms = 20, .status = EK_OK, .value = &value};
    ek_future *inner = NULL, *f = NULL;
    assert_int_equal(ek_future_new(delayed_poll, delayed_drop, &d, &inner), EK_OK);
    assert_int_equal(ek_timeout(rt, inner, 100, &f), EK_OK);
    void *out = NULL;
    assert_int_equal(ek_block_on(rt, f, &out), EK_OK);
    assert_ptr_equal(out, &value);
    assert_int_equal(ek_now_ms(rt), 20);
    assert_int_equal(d.dropped, 1);
    /* The timeout's own timer is gone: nothing fires at 100. */
    assert_int_equal(timers(rt), 0);
    ekt_rt_free_checked(rt);
}

static void test_timeout_passes_inner_error_through(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    delayed d = {.rt = rt, .ms = 5, .status = EK_ECONNRESET};
    ek_future *inner = NULL, *f = NULL;
    assert_int_equal(ek_future_new(delayed_poll, delayed_drop, &d, &inner), EK_OK);
    assert_int_equal(ek_timeout(rt, inner, 100, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_ECONNRESET);
    assert_int_equal(ek_now_ms(rt), 5);
    ekt_rt_free_checked(rt);
}

static void test_timeout_zero_polls_inner_once_before_timing_out(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    /* A ready inner future wins even with no time at all. */
    static int value;
    delayed d = {.rt = rt, .status = EK_OK, .value = &value};
    ek_future *inner = NULL, *f = NULL;
    assert_int_equal(ek_future_new(delayed_poll, delayed_drop, &d, &inner), EK_OK);
    assert_int_equal(ek_timeout(rt, inner, 0, &f), EK_OK);
    void *out = NULL;
    assert_int_equal(ek_block_on(rt, f, &out), EK_OK);
    assert_ptr_equal(out, &value);
    /* A pending one times out at once. */
    never nv = {0};
    assert_int_equal(ek_future_new(never_poll, never_drop, &nv, &inner), EK_OK);
    assert_int_equal(ek_timeout(rt, inner, 0, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_ETIMEDOUT);
    assert_int_equal(nv.polls, 1);
    assert_int_equal(nv.dropped, 1);
    assert_int_equal(ek_now_ms(rt), 0);
    ekt_rt_free_checked(rt);
}

static void test_dropping_a_pending_timeout_drops_inner_and_timer(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    never nv = {0};
    ek_future *inner = NULL, *f = NULL;
    assert_int_equal(ek_future_new(never_poll, never_drop, &nv, &inner), EK_OK);
    assert_int_equal(ek_timeout(rt, inner, 50, &f), EK_OK);
    ek_future_drop(f);
    assert_int_equal(nv.dropped, 1);
    assert_int_equal(timers(rt), 0);
    ekt_rt_free_checked(rt);
}

static void test_timeout_over_a_join_detaches_the_slower_task(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    sleeper s = {.rt = rt, .ms = 100};
    ek_join *j = NULL;
    assert_int_equal(ek_spawn(rt, sleeper_poll, sleeper_drop, &s, NULL, &j), EK_OK);
    ek_future *jf = NULL, *f = NULL;
    assert_int_equal(ek_join_into_future(j, &jf), EK_OK);
    assert_int_equal(ek_timeout(rt, jf, 40, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_ETIMEDOUT);
    assert_int_equal(ek_now_ms(rt), 40);
    /* The task was detached, not aborted: it finishes on its own time. */
    assert_int_equal(ek_sleep(rt, 200, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    assert_int_equal(s.status, EK_OK);
    assert_int_equal(s.woke_at, 100);
    ekt_rt_free_checked(rt);
}

/* ---- interval ---- */

/* Ticks once, is busy (asleep) for `busy_ms`, then ticks `n - 1` more times. */
typedef struct ticker {
    ek_runtime *rt;
    ek_interval *iv;
    uint64_t busy_ms;
    ek_future *busy;
    size_t n, count;
    uint64_t tick[8], at[8];
    int status;
} ticker;

static int ticker_poll(void *state, ek_cx *cx, void **out)
{
    ticker *t = state;
    *out = NULL;
    for (;;) {
        if (t->count == 1 && t->busy_ms > 0) {
            if (t->busy == NULL && ek_sleep(t->rt, t->busy_ms, &t->busy) != EK_OK) return EK_ENOMEM;
            int rc = ek_future_poll(t->busy, cx, NULL);
            if (rc != EK_OK) return rc;
            ek_future_drop(t->busy);
            t->busy = NULL;
            t->busy_ms = 0;
        }
        uint64_t tick = 0;
        int rc = ek_interval_tick(t->iv, cx, &tick);
        if (rc == EK_PENDING) return rc;
        if (rc != EK_OK) return t->status = rc;
        t->tick[t->count] = tick;
        t->at[t->count] = ek_now_ms(t->rt);
        if (++t->count == t->n) return EK_OK;
    }
}

static void run_ticker(int policy, uint64_t busy_ms, const uint64_t *ticks, const uint64_t *at,
                       size_t n)
{
    ek_runtime *rt = rt_paused();
    ticker t = {.rt = rt, .busy_ms = busy_ms, .n = n};
    assert_int_equal(ek_interval_new(rt, 10, policy, &t.iv), EK_OK);
    assert_int_equal(ekt_block_on_fn(rt, ticker_poll, &t, NULL), EK_OK);
    assert_int_equal(t.count, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(t.tick[i], ticks[i]);
        assert_int_equal(t.at[i], at[i]);
    }
    ek_interval_free(t.iv);
    assert_int_equal(timers(rt), 0);
    ekt_rt_free_checked(rt);
}

static void test_interval_ticks_at_once_then_every_period(void **state)
{
    (void)state;
    const uint64_t ticks[] = {0, 10, 20, 30, 40};
    for (int policy = 0; policy <= 2; policy++) run_ticker(policy, 0, ticks, ticks, 5);
}

static void test_interval_burst_fires_missed_ticks_at_once(void **state)
{
    (void)state;
    /* Busy from 0 to 35: the ticks of 10, 20 and 30 fire at 35, then 40. */
    const uint64_t ticks[] = {0, 10, 20, 30, 40, 50};
    const uint64_t at[] = {0, 35, 35, 35, 40, 50};
    run_ticker(EK_MISSED_TICK_BURST, 35, ticks, at, 6);
}

static void test_interval_delay_restarts_schedule_from_late_tick(void **state)
{
    (void)state;
    const uint64_t ticks[] = {0, 10, 45, 55, 65};
    const uint64_t at[] = {0, 35, 45, 55, 65};
    run_ticker(EK_MISSED_TICK_DELAY, 35, ticks, at, 5);
}

static void test_interval_skip_jumps_to_next_multiple_of_period(void **state)
{
    (void)state;
    const uint64_t ticks[] = {0, 10, 40, 50, 60};
    const uint64_t at[] = {0, 35, 40, 50, 60};
    run_ticker(EK_MISSED_TICK_SKIP, 35, ticks, at, 5);
}

static void test_interval_late_within_tolerance_keeps_schedule(void **state)
{
    (void)state;
    /* 3 ms late (below the 5 ms tolerance): every policy keeps the grid. */
    const uint64_t ticks[] = {0, 10, 20, 30};
    const uint64_t at[] = {0, 13, 20, 30};
    for (int policy = 0; policy <= 2; policy++) run_ticker(policy, 13, ticks, at, 4);
}

static void test_freeing_a_waiting_interval_removes_its_timer(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    ticker t = {.rt = rt, .n = 8};
    assert_int_equal(ek_interval_new(rt, 10, EK_MISSED_TICK_BURST, &t.iv), EK_OK);
    /* Two ticks, then stop the task while the third is registered. */
    ek_future *f = NULL;
    ek_join *j = NULL;
    assert_int_equal(ek_spawn(rt, ticker_poll, ekt_noop_drop, &t, NULL, &j), EK_OK);
    assert_int_equal(ek_sleep(rt, 15, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    assert_int_equal(t.count, 2);
    assert_int_equal(timers(rt), 1);
    assert_int_equal(ek_join_abort(j), EK_OK);
    void *out;
    assert_int_equal(ek_join_wait(j, &out), EK_ECANCELED);
    ek_join_detach(j);
    ek_interval_free(t.iv);
    assert_int_equal(timers(rt), 0);
    ekt_rt_free_checked(rt);
}

/* ---- argument errors ---- */

typedef struct tick_args {
    ek_interval *iv;
    ek_future *not_interval;
    int null_iv, null_cx, wrong, ok_null_tick;
} tick_args;

static int tick_args_poll(void *state, ek_cx *cx, void **out)
{
    tick_args *a = state;
    uint64_t tick;
    a->null_iv = ek_interval_tick(NULL, cx, &tick);
    a->null_cx = ek_interval_tick(a->iv, NULL, &tick);
    a->wrong = ek_interval_tick((ek_interval *)a->not_interval, cx, &tick);
    a->ok_null_tick = ek_interval_tick(a->iv, cx, NULL); /* first tick: at once */
    *out = NULL;
    return EK_OK;
}

static void test_bad_arguments_are_einval(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    ek_builder *b = NULL;
    assert_int_equal(ek_builder_new(&b), EK_OK);
    ek_future *f = NULL;
    ek_interval *iv = NULL;

    assert_int_equal(ek_sleep(NULL, 1, &f), EK_EINVAL);
    assert_int_equal(ek_sleep(rt, 1, NULL), EK_EINVAL);
    assert_int_equal(ek_sleep((ek_runtime *)b, 1, &f), EK_EINVAL);
    assert_int_equal(ek_sleep_until(NULL, 1, &f), EK_EINVAL);
    assert_int_equal(ek_sleep_until(rt, 1, NULL), EK_EINVAL);
    assert_int_equal(ek_sleep_until((ek_runtime *)b, 1, &f), EK_EINVAL);
    assert_null(f);

    assert_int_equal(ek_interval_new(NULL, 10, EK_MISSED_TICK_BURST, &iv), EK_EINVAL);
    assert_int_equal(ek_interval_new(rt, 10, EK_MISSED_TICK_BURST, NULL), EK_EINVAL);
    assert_int_equal(ek_interval_new((ek_runtime *)b, 10, EK_MISSED_TICK_BURST, &iv), EK_EINVAL);
    assert_int_equal(ek_interval_new(rt, 0, EK_MISSED_TICK_BURST, &iv), EK_EINVAL);
    assert_int_equal(ek_interval_new(rt, 10, -1, &iv), EK_EINVAL);
    assert_int_equal(ek_interval_new(rt, 10, 3, &iv), EK_EINVAL);
    assert_null(iv);
    ek_interval_free(NULL);
    ek_interval_free((ek_interval *)b); /* wrong handle: ignored */

    ek_future *inner = NULL;
    assert_int_equal(ek_sleep(rt, 5, &inner), EK_OK);
    /* ek_timeout consumes a valid inner future even when it fails. */
    never nv = {0};
    ek_future *victim = NULL;
    assert_int_equal(ek_future_new(never_poll, never_drop, &nv, &victim), EK_OK);
    assert_int_equal(ek_timeout(NULL, victim, 1, &f), EK_EINVAL);
    assert_int_equal(nv.dropped, 1);
    assert_int_equal(ek_future_new(never_poll, never_drop, &nv, &victim), EK_OK);
    assert_int_equal(ek_timeout((ek_runtime *)b, victim, 1, &f), EK_EINVAL);
    assert_int_equal(nv.dropped, 2);
    assert_int_equal(ek_future_new(never_poll, never_drop, &nv, &victim), EK_OK);
    assert_int_equal(ek_timeout(rt, victim, 1, NULL), EK_EINVAL);
    assert_int_equal(nv.dropped, 3);
    assert_int_equal(nv.polls, 0);
    assert_int_equal(ek_timeout(rt, NULL, 1, &f), EK_EINVAL);
    assert_int_equal(ek_interval_new(rt, 10, EK_MISSED_TICK_SKIP, &iv), EK_OK);
    assert_int_equal(ek_timeout(rt, (ek_future *)iv, 1, &f), EK_EINVAL); /* not touched */
    assert_null(f);

    tick_args a = {.iv = iv, .not_interval = inner};
    assert_int_equal(ekt_block_on_fn(rt, tick_args_poll, &a, NULL), EK_OK);
    assert_int_equal(a.null_iv, EK_EINVAL);
    assert_int_equal(a.null_cx, EK_EINVAL);
    assert_int_equal(a.wrong, EK_EINVAL);
    assert_int_equal(a.ok_null_tick, EK_OK);

    ek_future_drop(inner);
    ek_interval_free(iv);
    ek_builder_free(b);
    ekt_rt_free_checked(rt);
}

static void test_shut_down_runtime_gives_eclosed(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    ek_future *inner = NULL, *f = NULL;
    ek_interval *iv = NULL;
    never nv = {0};
    assert_int_equal(ek_future_new(never_poll, never_drop, &nv, &inner), EK_OK);
    assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
    assert_int_equal(ek_sleep(rt, 1, &f), EK_ECLOSED);
    assert_int_equal(ek_sleep_until(rt, 1, &f), EK_ECLOSED);
    assert_int_equal(ek_timeout(rt, inner, 1, &f), EK_ECLOSED);
    assert_int_equal(nv.dropped, 1); /* consumed on error too */
    assert_int_equal(ek_interval_new(rt, 10, EK_MISSED_TICK_BURST, &iv), EK_ECLOSED);
    assert_null(f);
    assert_null(iv);
    ekt_rt_free_checked(rt);
}

/* ---- allocation failure ---- */

static void test_sleep_allocation_failure_is_enomem_without_leak(void **state)
{
    (void)state;
    /* One allocation per sleep is the path without the cell slab (a user
     * allocator); with it forced on (the *_slab run) a sleep allocates only
     * when a chunk runs out, and the chunk stays with the runtime: the slab's
     * own out-of-memory path is tested in test_slab. */
    const char *slab = getenv("EKIDEN_CELL_SLAB");
    if (slab != NULL && strcmp(slab, "1") == 0) skip();
    ek_runtime *rt = rt_paused();
    long base = ekt_alloc_leaked();
    int failures = 0;
    for (long k = 0;; k++) {
        ek_future *f = NULL;
        ekt_alloc_fail_here_after(k);
        int rc = k % 2 ? ek_sleep(rt, 10, &f) : ek_sleep_until(rt, 10, &f);
        ekt_alloc_fail_here_after(-1);
        if (rc == EK_OK) {
            ek_future_drop(f);
            break;
        }
        assert_int_equal(rc, EK_ENOMEM);
        assert_null(f);
        assert_int_equal(ekt_alloc_leaked(), base);
        failures++;
    }
    assert_true(failures >= 1);
    assert_int_equal(ekt_alloc_leaked(), base);
    ekt_rt_free_checked(rt);
}

static void test_timeout_allocation_failure_is_enomem_and_drops_inner(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    never nv = {0};
    int failures = 0;
    ek_future *f = NULL;
    for (long k = 0;; k++) {
        ek_future *inner = NULL;
        assert_int_equal(ek_future_new(never_poll, never_drop, &nv, &inner), EK_OK);
        long base = ekt_alloc_leaked();
        ekt_alloc_fail_here_after(k);
        int rc = ek_timeout(rt, inner, 10, &f);
        ekt_alloc_fail_here_after(-1);
        if (rc == EK_OK) break;
        assert_int_equal(rc, EK_ENOMEM);
        assert_null(f);
        failures++;
        /* inner was consumed: dropped and freed (one allocation fewer). */
        assert_int_equal(nv.dropped, failures);
        assert_int_equal(ekt_alloc_leaked(), base - 1);
    }
    assert_true(failures >= 1);
    assert_int_equal(nv.polls, 0);
    /* The timeout made after the failures works and owns its inner future. */
    assert_int_equal(ek_block_on(rt, f, NULL), EK_ETIMEDOUT);
    assert_int_equal(nv.dropped, failures + 1);
    ekt_rt_free_checked(rt);
}

static void test_interval_allocation_failure_is_enomem_without_leak(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    long base = ekt_alloc_leaked();
    int failures = 0;
    for (long k = 0;; k++) {
        ek_interval *iv = NULL;
        ekt_alloc_fail_here_after(k);
        int rc = ek_interval_new(rt, 10, EK_MISSED_TICK_DELAY, &iv);
        ekt_alloc_fail_here_after(-1);
        if (rc == EK_OK) {
            ek_interval_free(iv);
            break;
        }
        assert_int_equal(rc, EK_ENOMEM);
        assert_null(iv);
        assert_int_equal(ekt_alloc_leaked(), base);
        failures++;
    }
    assert_true(failures >= 1);
    assert_int_equal(ekt_alloc_leaked(), base);
    ekt_rt_free_checked(rt);
}

#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_sleep_completes_exactly_at_its_deadline_on_paused_clock),
        T(test_sleep_zero_and_past_deadline_complete_without_timer),
        T(test_sleeps_complete_in_deadline_order),
        T(test_dropping_a_registered_sleep_removes_it_from_wheel),
        T(test_aborting_sleeping_tasks_removes_their_timers),
        T(test_million_concurrent_sleeps_all_complete_at_their_deadlines),
        T(test_sleep_on_real_clock_waits_at_least_its_duration),
        T(test_sleeps_on_multi_thread_runtime_fire_from_the_driver),
        T(test_timer_armed_from_another_thread_wakes_a_driver_parked_without_timers),
        T(test_real_clock_zero_durations_complete_on_first_poll_without_timer),
        T(test_real_clock_sleep_first_polled_after_its_deadline_completes),
        T(test_earlier_timer_unparks_driver_sleeping_until_a_later_one),
        T(test_sleep_moved_to_another_task_wakes_its_new_owner),
        T(test_timeouts_racing_sleeps_across_threads_leave_no_timer),
        T(test_clock_advance_fires_due_timers_in_one_jump),
        T(test_paused_clock_stands_still_and_resumes_where_it_stopped),
        T(test_at_the_clock_cap_every_timer_is_due_at_once),
        T(test_farthest_deadlines_are_reached_by_auto_advance),
        T(test_timeout_fires_at_deadline_and_drops_inner),
        T(test_timeout_returns_inner_result_when_inner_completes_first),
        T(test_timeout_passes_inner_error_through),
        T(test_timeout_zero_polls_inner_once_before_timing_out),
        T(test_dropping_a_pending_timeout_drops_inner_and_timer),
        T(test_timeout_over_a_join_detaches_the_slower_task),
        T(test_interval_ticks_at_once_then_every_period),
        T(test_interval_burst_fires_missed_ticks_at_once),
        T(test_interval_delay_restarts_schedule_from_late_tick),
        T(test_interval_skip_jumps_to_next_multiple_of_period),
        T(test_interval_late_within_tolerance_keeps_schedule),
        T(test_freeing_a_waiting_interval_removes_its_timer),
        T(test_bad_arguments_are_einval),
        T(test_shut_down_runtime_gives_eclosed),
        T(test_sleep_allocation_failure_is_enomem_without_leak),
        T(test_timeout_allocation_failure_is_enomem_and_drops_inner),
        T(test_interval_allocation_failure_is_enomem_without_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
