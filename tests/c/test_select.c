/* test_select.c - ek_select, ek_join_all and the wait futures of the sync
 * primitives (ek_*_future): results, the index reported, what is dropped and
 * when, cancellation at every await point, argument errors and allocation
 * failure. Deterministic: a current-thread runtime with the paused test clock,
 * and hand-driven futures whose readiness the test sets. */
#include "support.h"
#include "sync_util.h"

#include <limits.h>
#include <stdlib.h>

/* ---- a hand-driven future: pends until `ready`, then completes with status
 * and value; counts its polls and drops ---- */
typedef struct mf {
    int ready, status, polls, drops;
    void *value;
    ek_waker *w;
} mf;

static int mf_poll(void *state, ek_cx *cx, void **out)
{
    mf *m = state;
    m->polls++;
    if (m->ready) {
        *out = m->value;
        return m->status;
    }
    if (!m->w || !ek_waker_will_wake(m->w, cx)) {
        ek_waker_drop(m->w);
        m->w = ek_cx_waker(cx);
    }
    return EK_PENDING;
}

static void mf_drop(void *state)
{
    mf *m = state;
    m->drops++;
    ek_waker_drop(m->w);
    m->w = NULL;
}

/* Make m complete and wake whoever polled it. */
static void mf_fire(mf *m, int status, void *value)
{
    m->ready = 1;
    m->status = status;
    m->value = value;
    ek_waker_wake_by_ref(m->w);
}

static ek_future *mf_future(mf *m)
{
    ek_future *f = NULL;
    assert_int_equal(ek_future_new(mf_poll, mf_drop, m, &f), EK_OK);
    return f;
}

static ek_runtime *rt_paused(void)
{
    ek_builder *b = ekt_builder(EK_FLAVOR_CURRENT_THREAD, 0, -1, 0);
    assert_int_equal(ek_builder_set_start_paused(b, 1), EK_OK);
    ek_runtime *rt = NULL;
    assert_int_equal(ek_runtime_new(b, &rt), EK_OK);
    ek_builder_free(b);
    return rt;
}

/* A driver polled by ek_block_on: polls `f` once per step; before step `fire_at`
 * returns it makes `target` complete. Records the last status and result. */
typedef struct drive {
    ek_future *f;
    int step, fire_at, fire_status;
    mf *target;
    void *fire_value;
    int last;
    void *result;
} drive;

static int drive_poll(void *state, ek_cx *cx, void **out)
{
    drive *d = state;
    d->last = ek_future_poll(d->f, cx, &d->result);
    int step = d->step++;
    if (d->last != EK_PENDING) {
        *out = d->result;
        return d->last;
    }
    if (step == d->fire_at && d->target) mf_fire(d->target, d->fire_status, d->fire_value);
    return EK_PENDING;
}

/* ========================================================================= */
/* select                                                                    */
/* ========================================================================= */

static void test_select_first_to_complete_wins_and_the_others_are_dropped(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    mf m[3] = {{0}};
    ek_future *fs[3] = {mf_future(&m[0]), mf_future(&m[1]), mf_future(&m[2])};
    ek_future *sel = NULL;
    int index = 99;
    assert_int_equal(ek_select(fs, 3, &index, &sel), EK_OK);
    assert_int_equal(index, -1);
    int value = 42;
    drive d = {.f = sel, .fire_at = 0, .target = &m[1], .fire_status = EK_OK, .fire_value = &value};
    void *out = NULL;
    assert_int_equal(ekt_block_on_fn(rt, drive_poll, &d, &out), EK_OK);
    assert_ptr_equal(out, &value);
    assert_int_equal(index, 1);
    assert_int_equal(d.step, 2); /* pending once, then done: woken by m[1] */
    /* every inner future was polled while pending, and each dropped once, at
     * completion (before the select itself is dropped) */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(m[i].drops, 1);
        assert_true(m[i].polls >= 1);
    }
    assert_int_equal(m[2].polls, 1); /* after m[1] won, m[2] is not polled again */
    ek_future_drop(sel);
    for (int i = 0; i < 3; i++) assert_int_equal(m[i].drops, 1);
    ekt_rt_free_checked(rt);
}

static void test_select_error_counts_as_completion_with_its_index(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    mf m[2] = {{0}};
    ek_future *fs[2] = {mf_future(&m[0]), mf_future(&m[1])};
    ek_future *sel = NULL;
    int index = 99;
    assert_int_equal(ek_select(fs, 2, &index, &sel), EK_OK);
    drive d = {.f = sel, .fire_at = 0, .target = &m[0], .fire_status = EK_ECONNRESET};
    void *out = (void *)1;
    assert_int_equal(ekt_block_on_fn(rt, drive_poll, &d, &out), EK_ECONNRESET);
    assert_int_equal(index, 0);
    assert_int_equal(m[0].drops, 1);
    assert_int_equal(m[1].drops, 1);
    ek_future_drop(sel);
    ekt_rt_free_checked(rt);
}

static void test_select_is_biased_to_the_lowest_ready_index(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    mf m[3] = {{0}, {.ready = 1, .value = (void *)11}, {.ready = 1, .value = (void *)22}};
    ek_future *fs[3] = {mf_future(&m[0]), mf_future(&m[1]), mf_future(&m[2])};
    ek_future *sel = NULL;
    int index = 99;
    assert_int_equal(ek_select(fs, 3, &index, &sel), EK_OK);
    void *out = NULL;
    assert_int_equal(ek_block_on(rt, sel, &out), EK_OK);
    assert_ptr_equal(out, (void *)11);
    assert_int_equal(index, 1);
    assert_int_equal(m[0].polls, 1);
    assert_int_equal(m[1].polls, 1);
    assert_int_equal(m[2].polls, 0); /* never polled: its result is not lost, it never existed */
    for (int i = 0; i < 3; i++) assert_int_equal(m[i].drops, 1);
    ekt_rt_free_checked(rt);
}

/* A receive with a deadline, built from parts: select(recv future, sleep). */
static void test_select_recv_against_a_sleep_is_a_receive_with_deadline(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    atomic_store(&st_msg_drops, 0);
    assert_int_equal(ek_mpsc_bounded(4, st_msg_drop, &tx, &rx), EK_OK);
    ek_future *fs[2], *sel;
    int index = 99;
    /* nothing sent: the sleep wins after 50 ms of (paused) time */
    uint64_t t0 = ek_now_ms(rt);
    assert_int_equal(ek_mpsc_recv_future(rx, &fs[0]), EK_OK);
    assert_int_equal(ek_sleep(rt, 50, &fs[1]), EK_OK);
    assert_int_equal(ek_select(fs, 2, &index, &sel), EK_OK);
    void *out = (void *)1;
    assert_int_equal(ek_block_on(rt, sel, &out), EK_OK);
    assert_int_equal(index, 1);
    assert_null(out);
    assert_true(ek_now_ms(rt) - t0 >= 50);
    /* a message queued: the receive wins at once and the sleep is cancelled */
    assert_int_equal(ek_mpsc_try_send(tx, st_msg(7)), EK_OK);
    assert_int_equal(ek_mpsc_recv_future(rx, &fs[0]), EK_OK);
    assert_int_equal(ek_sleep(rt, 50, &fs[1]), EK_OK);
    assert_int_equal(ek_select(fs, 2, &index, &sel), EK_OK);
    t0 = ek_now_ms(rt);
    assert_int_equal(ek_block_on(rt, sel, &out), EK_OK);
    assert_int_equal(index, 0);
    assert_int_equal(st_msg_val(out), 7);
    assert_int_equal(ek_now_ms(rt), t0);
    free(out);
    assert_int_equal(ekt_metric(rt, EK_METRIC_TIMERS), 0); /* the sleep left the wheel */
    ek_mpsc_sender_drop(tx);
    ek_mpsc_receiver_drop(rx);
    assert_int_equal(atomic_load(&st_msg_drops), 0);
    ekt_rt_free_checked(rt);
}

static void test_select_dropped_while_pending_drops_every_inner_future(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    mf m[2] = {{0}};
    ek_future *fs[3] = {mf_future(&m[0]), mf_future(&m[1]), NULL};
    assert_int_equal(ek_sleep(rt, 1000, &fs[2]), EK_OK);
    ek_future *sel;
    int index = 99;
    assert_int_equal(ek_select(fs, 3, &index, &sel), EK_OK);
    /* poll it once as a task would, then drop it (the task was aborted) */
    drive d = {.f = sel, .fire_at = -1};
    ek_future *sleep2;
    assert_int_equal(ek_sleep(rt, 1, &sleep2), EK_OK);
    ek_future *pair[2] = {NULL, sleep2};
    assert_int_equal(ek_future_new(drive_poll, ekt_noop_drop, &d, &pair[0]), EK_OK);
    ek_future *outer;
    assert_int_equal(ek_select(pair, 2, NULL, &outer), EK_OK);
    assert_int_equal(ek_block_on(rt, outer, NULL), EK_OK); /* the 1 ms sleep won */
    assert_true(d.step >= 1);
    assert_int_equal(d.last, EK_PENDING);
    assert_int_equal(index, -1);
    assert_int_equal(ekt_metric(rt, EK_METRIC_TIMERS), 1); /* the 1000 ms sleep is registered */
    ek_future_drop(sel);
    assert_int_equal(m[0].drops, 1);
    assert_int_equal(m[1].drops, 1);
    assert_int_equal(ekt_metric(rt, EK_METRIC_TIMERS), 0);
    assert_int_equal(index, -1);
    ekt_rt_free_checked(rt);
}

static void test_select_bad_arguments_are_einval_and_consume_the_valid_futures(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    ek_future *sel = (ek_future *)1;
    mf m[2] = {{0}};
    ek_future *fs[3];
    assert_int_equal(ek_select(NULL, 1, NULL, &sel), EK_EINVAL);
    fs[0] = mf_future(&m[0]);
    assert_int_equal(ek_select(fs, 0, NULL, &sel), EK_EINVAL);
    assert_int_equal(m[0].drops, 0); /* n = 0: the array holds nothing */
    assert_int_equal(ek_select(fs, 1, NULL, NULL), EK_EINVAL);
    assert_int_equal(m[0].drops, 1);
    /* a NULL or wrong-type element: the valid ones are dropped, the other not touched */
    ek_builder *b = NULL;
    assert_int_equal(ek_builder_new(&b), EK_OK);
    fs[0] = mf_future(&m[0]);
    fs[1] = NULL;
    fs[2] = mf_future(&m[1]);
    assert_int_equal(ek_select(fs, 3, NULL, &sel), EK_EINVAL);
    assert_int_equal(m[0].drops, 2);
    assert_int_equal(m[1].drops, 1);
    fs[0] = mf_future(&m[0]);
    fs[1] = (ek_future *)b;
    assert_int_equal(ek_select(fs, 2, NULL, &sel), EK_EINVAL);
    assert_int_equal(m[0].drops, 3);
    ek_builder_free(b);
    /* the same future twice: dropped once */
    fs[0] = mf_future(&m[0]);
    fs[1] = mf_future(&m[1]);
    fs[2] = fs[0];
    int index = 99;
    assert_int_equal(ek_select(fs, 3, &index, &sel), EK_EINVAL);
    assert_int_equal(m[0].drops, 4);
    assert_int_equal(m[1].drops, 2);
    assert_int_equal(index, 99); /* not written on error */
    assert_ptr_equal(sel, (ek_future *)1);
    assert_int_equal(ek_select(fs, (size_t)INT_MAX + 1, NULL, &sel), EK_EINVAL);
    ekt_rt_free_checked(rt);
}

static void test_select_allocation_failure_is_enomem_and_drops_every_future(void **state)
{
    (void)state;
    mf m[2] = {{0}};
    int failures = 0;
    ek_future *sel = NULL;
    for (long k = 0;; k++) {
        ek_future *fs[2] = {mf_future(&m[0]), mf_future(&m[1])};
        long live = ekt_alloc_live();
        ekt_alloc_fail_here_after(k);
        int rc = ek_select(fs, 2, NULL, &sel);
        ekt_alloc_fail_here_after(-1);
        if (rc == EK_OK) break;
        assert_int_equal(rc, EK_ENOMEM);
        failures++;
        assert_int_equal(m[0].drops, failures);
        assert_int_equal(m[1].drops, failures);
        assert_int_equal(ekt_alloc_live(), live - 2);
    }
    assert_true(failures >= 1);
    ek_future_drop(sel);
    assert_int_equal(m[0].drops, failures + 1);
}

/* ========================================================================= */
/* join_all                                                                  */
/* ========================================================================= */

static void test_join_all_gathers_every_result_in_index_order(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    mf m[3] = {{0}, {.ready = 1, .value = (void *)2}, {0}};
    ek_future *fs[3] = {mf_future(&m[0]), mf_future(&m[1]), NULL};
    assert_int_equal(ek_sleep(rt, 30, &fs[2]), EK_OK); /* result NULL */
    void *results[3] = {(void *)9, (void *)9, (void *)9};
    int index = 99;
    ek_future *all;
    assert_int_equal(ek_join_all(fs, 3, results, ekt_count_out_drop, &index, &all), EK_OK);
    assert_null(results[0]);
    assert_int_equal(index, -1);
    ekt_reset_drops();
    drive d = {.f = all, .fire_at = 0, .target = &m[0], .fire_value = (void *)1};
    void *out = (void *)7;
    assert_int_equal(ekt_block_on_fn(rt, drive_poll, &d, &out), EK_OK);
    assert_null(out);
    assert_ptr_equal(results[0], (void *)1);
    assert_ptr_equal(results[1], (void *)2);
    assert_null(results[2]);
    assert_int_equal(index, -1);
    assert_int_equal(m[1].polls, 1); /* completed on the first poll, not polled again */
    assert_int_equal(m[0].drops, 1);
    assert_int_equal(m[1].drops, 1);
    ek_future_drop(all);
    assert_int_equal(atomic_load(&ekt_out_drops), 0); /* the results are ours */
    ekt_rt_free_checked(rt);
}

static void test_join_all_first_error_cancels_the_rest_and_releases_gathered_results(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    mf m[4] = {{.ready = 1, .value = (void *)10}, {0}, {0}, {.ready = 1, .value = (void *)13}};
    ek_future *fs[4] = {mf_future(&m[0]), mf_future(&m[1]), mf_future(&m[2]), mf_future(&m[3])};
    void *results[4];
    int index = 99;
    ek_future *all;
    assert_int_equal(ek_join_all(fs, 4, results, ekt_count_out_drop, &index, &all), EK_OK);
    ekt_reset_drops();
    drive d = {.f = all, .fire_at = 0, .target = &m[2], .fire_status = EK_ETIMEDOUT};
    assert_int_equal(ekt_block_on_fn(rt, drive_poll, &d, NULL), EK_ETIMEDOUT);
    assert_int_equal(index, 2);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(m[i].drops, 1);
        assert_null(results[i]);
    }
    assert_int_equal(atomic_load(&ekt_out_drops), 2); /* results 10 and 13 went back */
    assert_int_equal(m[1].ready, 0);                  /* cancelled while pending */
    ek_future_drop(all);
    assert_int_equal(atomic_load(&ekt_out_drops), 2);
    ekt_rt_free_checked(rt);
}

static void test_join_all_dropped_before_completion_releases_what_it_gathered(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    mf m[2] = {{.ready = 1, .value = (void *)5}, {0}};
    ek_future *fs[2] = {mf_future(&m[0]), mf_future(&m[1])};
    void *results[2];
    ek_future *all;
    assert_int_equal(ek_join_all(fs, 2, results, ekt_count_out_drop, NULL, &all), EK_OK);
    ekt_reset_drops();
    drive d = {.f = all, .fire_at = -1};
    ek_future *driver, *nap, *pair[2];
    assert_int_equal(ek_future_new(drive_poll, ekt_noop_drop, &d, &driver), EK_OK);
    assert_int_equal(ek_sleep(rt, 1, &nap), EK_OK);
    pair[0] = driver;
    pair[1] = nap;
    ek_future *outer;
    assert_int_equal(ek_select(pair, 2, NULL, &outer), EK_OK);
    assert_int_equal(ek_block_on(rt, outer, NULL), EK_OK);
    assert_int_equal(d.last, EK_PENDING);
    assert_ptr_equal(results[0], (void *)5);
    assert_int_equal(m[0].drops, 1); /* dropped at its completion */
    ek_future_drop(all);
    assert_int_equal(m[1].drops, 1);
    assert_int_equal(atomic_load(&ekt_out_drops), 1);
    assert_ptr_equal((void *)atomic_load(&ekt_last_out_drop), (void *)5);
    assert_null(results[0]);
    ekt_rt_free_checked(rt);
}

static void test_join_all_bad_arguments_and_allocation_failure(void **state)
{
    (void)state;
    mf m[2] = {{0}};
    void *results[2];
    ek_future *all = NULL;
    ek_future *fs[2] = {mf_future(&m[0]), mf_future(&m[1])};
    assert_int_equal(ek_join_all(fs, 2, NULL, NULL, NULL, &all), EK_EINVAL);
    assert_int_equal(m[0].drops, 1);
    assert_int_equal(m[1].drops, 1);
    fs[0] = mf_future(&m[0]);
    fs[1] = fs[0];
    assert_int_equal(ek_join_all(fs, 2, results, NULL, NULL, &all), EK_EINVAL);
    assert_int_equal(m[0].drops, 2);
    assert_int_equal(ek_join_all(NULL, 2, results, NULL, NULL, &all), EK_EINVAL);
    assert_int_equal(ek_join_all(fs, 0, results, NULL, NULL, &all), EK_EINVAL);
    fs[0] = mf_future(&m[0]);
    fs[1] = mf_future(&m[1]);
    assert_int_equal(ek_join_all(fs, 2, results, NULL, NULL, NULL), EK_EINVAL);
    assert_int_equal(m[0].drops, 3);
    assert_int_equal(m[1].drops, 2);
    assert_null(all);
    int failures = 0;
    for (long k = 0;; k++) {
        fs[0] = mf_future(&m[0]);
        fs[1] = mf_future(&m[1]);
        long live = ekt_alloc_live();
        ekt_alloc_fail_here_after(k);
        int rc = ek_join_all(fs, 2, results, NULL, NULL, &all);
        ekt_alloc_fail_here_after(-1);
        if (rc == EK_OK) break;
        assert_int_equal(rc, EK_ENOMEM);
        failures++;
        assert_int_equal(ekt_alloc_live(), live - 2);
    }
    assert_true(failures >= 1);
    assert_int_equal(m[0].drops, 3 + failures);
    ek_future_drop(all);
    assert_int_equal(m[0].drops, 4 + failures);
    assert_int_equal(m[1].drops, 3 + failures);
}

/* Nesting: a timeout over a select over a join_all. */
static void test_timeout_over_select_over_join_all(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    mf m[2] = {{.ready = 1, .value = (void *)1}, {0}}; /* m[1] never completes */
    ek_future *fs[2] = {mf_future(&m[0]), mf_future(&m[1])};
    void *results[2];
    ek_future *all, *pair[2], *sel, *bounded;
    assert_int_equal(ek_join_all(fs, 2, results, NULL, NULL, &all), EK_OK);
    pair[0] = all;
    assert_int_equal(ek_sleep(rt, 500, &pair[1]), EK_OK);
    int index = 99;
    assert_int_equal(ek_select(pair, 2, &index, &sel), EK_OK);
    assert_int_equal(ek_timeout(rt, sel, 100, &bounded), EK_OK);
    uint64_t t0 = ek_now_ms(rt);
    assert_int_equal(ek_block_on(rt, bounded, NULL), EK_ETIMEDOUT);
    uint64_t took = ek_now_ms(rt) - t0;
    assert_true(took >= 100 && took < 500);
    assert_int_equal(index, -1); /* the select was cancelled, nothing won */
    assert_int_equal(m[0].drops, 1);
    assert_int_equal(m[1].drops, 1);
    assert_int_equal(ekt_metric(rt, EK_METRIC_TIMERS), 0);
    ekt_rt_free_checked(rt);
}

/* ========================================================================= */
/* wait futures of the sync primitives                                       */
/* ========================================================================= */

static void test_semaphore_acquire_future_with_timeout_gives_back_its_place(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    ek_semaphore *sem;
    assert_int_equal(ek_semaphore_new(1, &sem), EK_OK);
    assert_int_equal(ek_semaphore_try_acquire(sem, 1), EK_OK); /* none left */
    ek_future *acq, *bounded;
    assert_int_equal(ek_semaphore_acquire_future(sem, 1, &acq), EK_OK);
    assert_int_equal(ek_timeout(rt, acq, 20, &bounded), EK_OK);
    assert_int_equal(ek_block_on(rt, bounded, NULL), EK_ETIMEDOUT);
    /* the timed-out waiter left the queue: a release is available to others */
    assert_int_equal(ek_semaphore_release(sem, 1), EK_OK);
    assert_int_equal(ek_semaphore_available_permits(sem), 1);
    /* now it completes with a permit object holding 1 */
    assert_int_equal(ek_semaphore_acquire_future(sem, 1, &acq), EK_OK);
    void *out = NULL;
    assert_int_equal(ek_block_on(rt, acq, &out), EK_OK);
    ek_semaphore_permit *p = out;
    assert_int_equal(ek_semaphore_permit_count(p), 1);
    assert_int_equal(ek_semaphore_available_permits(sem), 0);
    ek_semaphore_permit_drop(p);
    assert_int_equal(ek_semaphore_available_permits(sem), 1);
    /* closed: EK_ECLOSED from the future */
    assert_int_equal(ek_semaphore_close(sem), EK_OK);
    assert_int_equal(ek_semaphore_acquire_future(sem, 1, &acq), EK_OK);
    assert_int_equal(ek_block_on(rt, acq, NULL), EK_ECLOSED);
    ek_semaphore_drop(sem);
    ekt_rt_free_checked(rt);
}

/* A queued acquire whose permits were assigned (a release handed them over)
 * but which is dropped before it is polled again passes them on: nothing lost. */
static void test_semaphore_acquire_future_dropped_after_assignment_passes_permits_on(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    ek_semaphore *sem;
    assert_int_equal(ek_semaphore_new(0, &sem), EK_OK);
    ek_future *first, *second;
    assert_int_equal(ek_semaphore_acquire_future(sem, 2, &first), EK_OK);
    assert_int_equal(ek_semaphore_acquire_future(sem, 2, &second), EK_OK);
    drive d1 = {.f = first, .fire_at = -1}, d2 = {.f = second, .fire_at = -1};
    ek_future *w1, *w2, *n1, *n2, *p1[2], *p2[2], *s1, *s2;
    assert_int_equal(ek_future_new(drive_poll, ekt_noop_drop, &d1, &w1), EK_OK);
    assert_int_equal(ek_future_new(drive_poll, ekt_noop_drop, &d2, &w2), EK_OK);
    assert_int_equal(ek_sleep(rt, 1, &n1), EK_OK);
    assert_int_equal(ek_sleep(rt, 1, &n2), EK_OK);
    p1[0] = w1, p1[1] = n1, p2[0] = w2, p2[1] = n2;
    assert_int_equal(ek_select(p1, 2, NULL, &s1), EK_OK);
    assert_int_equal(ek_select(p2, 2, NULL, &s2), EK_OK);
    assert_int_equal(ek_block_on(rt, s1, NULL), EK_OK); /* first is queued */
    assert_int_equal(ek_block_on(rt, s2, NULL), EK_OK); /* second behind it */
    assert_int_equal(d1.last, EK_PENDING);
    assert_int_equal(d2.last, EK_PENDING);
    assert_int_equal(ek_semaphore_release(sem, 2), EK_OK); /* assigned to first */
    assert_int_equal(ek_semaphore_available_permits(sem), 0);
    ek_future_drop(first); /* dropped without seeing them: they go to second */
    void *out = NULL;
    assert_int_equal(ek_block_on(rt, second, &out), EK_OK);
    assert_int_equal(ek_semaphore_permit_count(out), 2);
    ek_semaphore_permit_drop(out);
    assert_int_equal(ek_semaphore_available_permits(sem), 2);
    ek_semaphore_drop(sem);
    ekt_rt_free_checked(rt);
}

static void test_mutex_lock_future_races_a_sleep_and_unlocks_when_dropped(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    ek_mutex *m;
    int value = 3;
    assert_int_equal(ek_mutex_new(&value, NULL, &m), EK_OK);
    ek_mutex_guard *holder;
    assert_int_equal(ek_mutex_guard_new(m, &holder), EK_OK);
    assert_int_equal(ek_mutex_try_lock(holder), EK_OK);
    ek_future *fs[2], *sel;
    int index = 99;
    assert_int_equal(ek_mutex_lock_future(m, &fs[0]), EK_OK);
    assert_int_equal(ek_sleep(rt, 10, &fs[1]), EK_OK);
    assert_int_equal(ek_select(fs, 2, &index, &sel), EK_OK);
    assert_int_equal(ek_block_on(rt, sel, NULL), EK_OK);
    assert_int_equal(index, 1); /* held: the sleep won, the lock wait was dropped */
    assert_int_equal(ek_mutex_unlock(holder), EK_OK);
    assert_int_equal(ek_mutex_try_lock(holder), EK_OK); /* no stale waiter in front */
    ek_future *lk;
    assert_int_equal(ek_mutex_lock_future(m, &lk), EK_OK);
    drive d = {.f = lk, .fire_at = -1};
    ek_future *w, *nap, *pair[2], *outer;
    assert_int_equal(ek_future_new(drive_poll, ekt_noop_drop, &d, &w), EK_OK);
    assert_int_equal(ek_sleep(rt, 1, &nap), EK_OK);
    pair[0] = w, pair[1] = nap;
    assert_int_equal(ek_select(pair, 2, NULL, &outer), EK_OK);
    assert_int_equal(ek_block_on(rt, outer, NULL), EK_OK);
    assert_int_equal(d.last, EK_PENDING);             /* queued */
    assert_int_equal(ek_mutex_unlock(holder), EK_OK); /* handed to lk's guard */
    assert_int_equal(ek_mutex_try_lock(holder), EK_EBUSY);
    ek_future_drop(lk); /* never saw it: dropping unlocks */
    assert_int_equal(ek_mutex_try_lock(holder), EK_OK);
    assert_int_equal(ek_mutex_unlock(holder), EK_OK);
    assert_int_equal(ek_mutex_lock_future(m, &lk), EK_OK);
    void *out = NULL;
    assert_int_equal(ek_block_on(rt, lk, &out), EK_OK);
    assert_ptr_equal(ek_mutex_guard_get(out), &value);
    ek_mutex_guard_drop(out);
    ek_mutex_guard_drop(holder);
    ek_mutex_drop(m);
    ekt_rt_free_checked(rt);
}

/* The snapshot for notify_waiters is taken when the future is created. */
static void test_notified_future_takes_its_snapshot_at_creation(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    ek_notify *n;
    assert_int_equal(ek_notify_new(&n), EK_OK);
    ek_future *f, *bounded;
    assert_int_equal(ek_notified_future(n, &f), EK_OK);
    assert_int_equal(ek_notify_waiters(n), EK_OK); /* before any poll: still counts */
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    /* created after the notify_waiters: waits, and times out */
    assert_int_equal(ek_notified_future(n, &f), EK_OK);
    assert_int_equal(ek_timeout(rt, f, 10, &bounded), EK_OK);
    assert_int_equal(ek_block_on(rt, bounded, NULL), EK_ETIMEDOUT);
    /* a stored permit (notify_one with nobody waiting) completes the next one */
    assert_int_equal(ek_notify_one(n), EK_OK);
    assert_int_equal(ek_notified_future(n, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    ek_notify_drop(n);
    ekt_rt_free_checked(rt);
}

static void test_receive_futures_complete_as_their_direct_polls(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    void *out = NULL;
    ek_future *f;
    /* oneshot */
    ek_oneshot_sender *otx;
    ek_oneshot_receiver *orx;
    assert_int_equal(ek_oneshot_new(NULL, &otx, &orx), EK_OK);
    assert_int_equal(ek_oneshot_send(otx, (void *)5), EK_OK);
    assert_int_equal(ek_oneshot_recv_future(orx, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, &out), EK_OK);
    assert_ptr_equal(out, (void *)5);
    assert_int_equal(ek_oneshot_recv_future(orx, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, &out), EK_ECLOSED); /* already received */
    ek_oneshot_receiver_drop(orx);
    /* mpsc: the last sender gone gives EK_ECLOSED */
    ek_mpsc_sender *mtx;
    ek_mpsc_receiver *mrx;
    assert_int_equal(ek_mpsc_unbounded(NULL, &mtx, &mrx), EK_OK);
    assert_int_equal(ek_mpsc_try_send(mtx, (void *)6), EK_OK);
    ek_mpsc_sender_drop(mtx);
    assert_int_equal(ek_mpsc_recv_future(mrx, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, &out), EK_OK);
    assert_ptr_equal(out, (void *)6);
    assert_int_equal(ek_mpsc_recv_future(mrx, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, &out), EK_ECLOSED);
    ek_mpsc_receiver_drop(mrx);
    /* broadcast: lagging is reported with the count */
    ek_broadcast_sender *btx;
    ek_broadcast_receiver *brx;
    assert_int_equal(ek_broadcast_new(2, NULL, NULL, &btx, &brx), EK_OK);
    for (intptr_t i = 1; i <= 5; i++)
        assert_int_equal(ek_broadcast_send(btx, (void *)i, NULL), EK_OK);
    uint64_t missed = 0;
    assert_int_equal(ek_broadcast_recv_future(brx, &missed, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, &out), EK_ELAGGED);
    assert_int_equal(missed, 3);
    assert_int_equal(ek_broadcast_recv_future(brx, NULL, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, &out), EK_OK);
    assert_ptr_equal(out, (void *)4);
    ek_broadcast_sender_drop(btx);
    assert_int_equal(ek_broadcast_recv_future(brx, NULL, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, &out), EK_OK);
    assert_ptr_equal(out, (void *)5);
    assert_int_equal(ek_broadcast_recv_future(brx, NULL, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, &out), EK_ECLOSED);
    ek_broadcast_receiver_drop(brx);
    /* watch: a change, then the sender gone */
    ek_watch_sender *wtx;
    ek_watch_receiver *wrx;
    assert_int_equal(ek_watch_new((void *)1, NULL, NULL, &wtx, &wrx), EK_OK);
    assert_int_equal(ek_watch_send(wtx, (void *)2), EK_OK);
    assert_int_equal(ek_watch_changed_future(wrx, &f), EK_OK);
    out = (void *)9;
    assert_int_equal(ek_block_on(rt, f, &out), EK_OK);
    assert_null(out);
    assert_int_equal(ek_watch_has_changed(wrx), 0); /* marked seen */
    ek_watch_sender_drop(wtx);
    assert_int_equal(ek_watch_changed_future(wrx, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, &out), EK_ECLOSED);
    ek_watch_receiver_drop(wrx);
    ekt_rt_free_checked(rt);
}

/* A receive future cancelled while pending takes nothing: the message sent
 * afterwards is still there for the next receive. */
static void test_receive_future_cancelled_while_pending_loses_nothing(void **state)
{
    (void)state;
    ek_runtime *rt = rt_paused();
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(1, NULL, &tx, &rx), EK_OK);
    ek_future *fs[2], *sel;
    assert_int_equal(ek_mpsc_recv_future(rx, &fs[0]), EK_OK);
    assert_int_equal(ek_sleep(rt, 5, &fs[1]), EK_OK);
    int index = 99;
    assert_int_equal(ek_select(fs, 2, &index, &sel), EK_OK);
    assert_int_equal(ek_block_on(rt, sel, NULL), EK_OK);
    assert_int_equal(index, 1);
    assert_int_equal(ek_mpsc_try_send(tx, (void *)8), EK_OK);
    void *out = NULL;
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_OK);
    assert_ptr_equal(out, (void *)8);
    ek_mpsc_sender_drop(tx);
    ek_mpsc_receiver_drop(rx);
    ekt_rt_free_checked(rt);
}

static void test_wait_futures_reject_bad_arguments_and_survive_allocation_failure(void **state)
{
    (void)state;
    ek_future *f = NULL;
    ek_semaphore *sem;
    ek_mutex *m;
    ek_notify *n;
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_semaphore_new(1, &sem), EK_OK);
    assert_int_equal(ek_mutex_new(NULL, NULL, &m), EK_OK);
    assert_int_equal(ek_notify_new(&n), EK_OK);
    assert_int_equal(ek_mpsc_unbounded(NULL, &tx, &rx), EK_OK);
    assert_int_equal(ek_semaphore_acquire_future(NULL, 1, &f), EK_EINVAL);
    assert_int_equal(ek_semaphore_acquire_future(sem, 1, NULL), EK_EINVAL);
    assert_int_equal(ek_semaphore_acquire_future(sem, EK_SEMAPHORE_MAX_PERMITS + 1, &f), EK_EINVAL);
    assert_int_equal(ek_semaphore_acquire_future((ek_semaphore *)m, 1, &f), EK_EINVAL);
    assert_int_equal(ek_mutex_lock_future(NULL, &f), EK_EINVAL);
    assert_int_equal(ek_mutex_lock_future(m, NULL), EK_EINVAL);
    assert_int_equal(ek_mutex_lock_future((ek_mutex *)sem, &f), EK_EINVAL);
    assert_int_equal(ek_notified_future(NULL, &f), EK_EINVAL);
    assert_int_equal(ek_notified_future(n, NULL), EK_EINVAL);
    assert_int_equal(ek_oneshot_recv_future(NULL, &f), EK_EINVAL);
    assert_int_equal(ek_oneshot_recv_future((ek_oneshot_receiver *)rx, &f), EK_EINVAL);
    assert_int_equal(ek_mpsc_recv_future(NULL, &f), EK_EINVAL);
    assert_int_equal(ek_mpsc_recv_future(rx, NULL), EK_EINVAL);
    assert_int_equal(ek_mpsc_recv_future((ek_mpsc_receiver *)tx, &f), EK_EINVAL);
    assert_int_equal(ek_broadcast_recv_future(NULL, NULL, &f), EK_EINVAL);
    assert_int_equal(ek_watch_changed_future(NULL, &f), EK_EINVAL);
    assert_null(f);
    /* allocation failure at each allocation: EK_ENOMEM and nothing left over */
    for (int which = 0; which < 4; which++) {
        int failures = 0;
        for (long k = 0;; k++) {
            long live = ekt_alloc_live();
            ekt_alloc_fail_here_after(k);
            int rc = which == 0   ? ek_semaphore_acquire_future(sem, 1, &f)
                     : which == 1 ? ek_mutex_lock_future(m, &f)
                     : which == 2 ? ek_notified_future(n, &f)
                                  : ek_mpsc_recv_future(rx, &f);
            ekt_alloc_fail_here_after(-1);
            if (rc == EK_OK) break;
            assert_int_equal(rc, EK_ENOMEM);
            assert_int_equal(ekt_alloc_live(), live);
            failures++;
        }
        assert_true(failures >= 1);
        ek_future_drop(f);
    }
    ek_semaphore_drop(sem);
    ek_mutex_drop(m);
    ek_notify_drop(n);
    ek_mpsc_sender_drop(tx);
    ek_mpsc_receiver_drop(rx);
}

/* ---- multi-thread: select over a receive, woken from another thread ---- */

typedef struct mt_sel {
    ek_runtime *rt;
    ek_mpsc_receiver *rx;
    ek_future *sel;
    int index, got, timeouts;
} mt_sel;

static int mt_sel_poll(void *state, ek_cx *cx, void **out)
{
    mt_sel *t = state;
    for (;;) {
        if (t->sel == NULL) {
            ek_future *fs[2];
            if (ek_mpsc_recv_future(t->rx, &fs[0]) != EK_OK) return EK_ENOMEM;
            if (ek_sleep(t->rt, 5, &fs[1]) != EK_OK) {
                ek_future_drop(fs[0]);
                return EK_ENOMEM;
            }
            if (ek_select(fs, 2, &t->index, &t->sel) != EK_OK) return EK_ENOMEM;
        }
        void *msg = NULL;
        int rc = ek_future_poll(t->sel, cx, &msg);
        if (rc == EK_PENDING) return EK_PENDING;
        ek_future_drop(t->sel);
        t->sel = NULL;
        if (rc == EK_ECLOSED) {
            *out = NULL;
            return EK_OK;
        }
        if (rc != EK_OK) return rc;
        if (t->index == 0)
            t->got += (int)(intptr_t)msg;
        else
            t->timeouts++;
    }
}

static void mt_sel_drop(void *state)
{
    mt_sel *t = state;
    ek_future_drop(t->sel);
    t->sel = NULL;
}

static void test_select_in_a_multi_thread_task_woken_from_another_thread(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(8, NULL, &tx, &rx), EK_OK);
    mt_sel t = {.rt = rt, .rx = rx};
    ek_join *j = ekt_spawn(rt, mt_sel_poll, mt_sel_drop, &t);
    long n = ekt_scale(2000);
    for (long i = 0; i < n; i++) assert_int_equal(ek_mpsc_blocking_send(tx, (void *)1), EK_OK);
    ek_mpsc_sender_drop(tx);
    assert_int_equal(ekt_join(j, NULL), EK_OK);
    assert_int_equal(t.got, (int)n); /* every message received exactly once */
    ek_mpsc_receiver_drop(rx);
    ekt_rt_free_checked(rt);
}

/* Aborting a task at its select await point drops everything it held. */
static void test_abort_at_the_select_await_point_leaks_nothing(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(8, NULL, &tx, &rx), EK_OK);
    mt_sel t = {.rt = rt, .rx = rx};
    ek_join *j = ekt_spawn(rt, mt_sel_poll, mt_sel_drop, &t);
    assert_int_equal(ekt_metric_wait(rt, EK_METRIC_TIMERS, 1), 1); /* waiting in select */
    assert_int_equal(ek_join_abort(j), EK_OK);
    assert_int_equal(ekt_join(j, NULL), EK_ECANCELED);
    assert_null(t.sel);
    assert_int_equal(ekt_metric_wait(rt, EK_METRIC_TIMERS, 0), 0);
    ek_mpsc_sender_drop(tx);
    ek_mpsc_receiver_drop(rx);
    ekt_rt_free_checked(rt);
}

#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_select_first_to_complete_wins_and_the_others_are_dropped),
        T(test_select_error_counts_as_completion_with_its_index),
        T(test_select_is_biased_to_the_lowest_ready_index),
        T(test_select_recv_against_a_sleep_is_a_receive_with_deadline),
        T(test_select_dropped_while_pending_drops_every_inner_future),
        T(test_select_bad_arguments_are_einval_and_consume_the_valid_futures),
        T(test_select_allocation_failure_is_enomem_and_drops_every_future),
        T(test_join_all_gathers_every_result_in_index_order),
        T(test_join_all_first_error_cancels_the_rest_and_releases_gathered_results),
        T(test_join_all_dropped_before_completion_releases_what_it_gathered),
        T(test_join_all_bad_arguments_and_allocation_failure),
        T(test_timeout_over_select_over_join_all),
        T(test_semaphore_acquire_future_with_timeout_gives_back_its_place),
        T(test_semaphore_acquire_future_dropped_after_assignment_passes_permits_on),
        T(test_mutex_lock_future_races_a_sleep_and_unlocks_when_dropped),
        T(test_notified_future_takes_its_snapshot_at_creation),
        T(test_receive_futures_complete_as_their_direct_polls),
        T(test_receive_future_cancelled_while_pending_loses_nothing),
        T(test_wait_futures_reject_bad_arguments_and_survive_allocation_failure),
        T(test_select_in_a_multi_thread_task_woken_from_another_thread),
        T(test_abort_at_the_select_await_point_leaks_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
