/* test_mutex.c - the async mutex: lock/unlock, guarded value, FIFO hand-off,
 * cancellation while queued and after the hand-off, blocking lock, allocation
 * failure, and mutual exclusion under stress. */
#include "sync_util.h"

static ek_mutex_guard *guard_new(ek_mutex *m)
{
    ek_mutex_guard *g = NULL;
    assert_int_equal(ek_mutex_guard_new(m, &g), EK_OK);
    return g;
}

typedef struct lock_task {
    ek_mutex_guard *g;
    atomic_int *pending;
    atomic_int *order; /* shared counter */
    int got;           /* order+1 at which the lock was obtained */
    bool own;          /* drop the guard with the task */
} lock_task;

static int lock_poll(void *s, ek_cx *cx, void **out)
{
    lock_task *t = s;
    (void)out;
    int rc = ek_mutex_lock(t->g, cx);
    if (rc == EK_PENDING) atomic_fetch_add(t->pending, 1);
    if (rc == EK_OK && t->order) t->got = atomic_fetch_add(t->order, 1) + 1;
    return rc;
}
static void lock_drop(void *s)
{
    lock_task *t = s;
    if (t->own) {
        ek_mutex_guard_drop(t->g);
        free(t);
    }
}

static void test_lock_unlock_and_guarded_value(void **s)
{
    (void)s;
    ek_mutex *m;
    int v = 1, w = 2;
    assert_int_equal(ek_mutex_new(&v, NULL, &m), EK_OK);
    ek_mutex_guard *a = guard_new(m), *b = guard_new(m);
    assert_null(ek_mutex_guard_get(a));
    assert_int_equal(ek_mutex_try_lock(a), EK_OK);
    assert_int_equal(ek_mutex_try_lock(a), EK_EDEADLK);
    assert_int_equal(ek_mutex_try_lock(b), EK_EBUSY);
    assert_ptr_equal(ek_mutex_guard_get(a), &v);
    void *old = NULL;
    assert_int_equal(ek_mutex_guard_set(a, &w, &old), EK_OK);
    assert_ptr_equal(old, &v);
    assert_int_equal(ek_mutex_guard_set(b, &w, &old), EK_EINVAL); /* b does not hold it */
    assert_int_equal(ek_mutex_unlock(a), EK_OK);
    assert_null(ek_mutex_guard_get(a));
    assert_int_equal(ek_mutex_blocking_lock(b), EK_OK);
    assert_ptr_equal(ek_mutex_guard_get(b), &w);
    ek_mutex_guard_drop(b); /* unlocks */
    assert_int_equal(ek_mutex_try_lock(a), EK_OK);
    ek_mutex_drop(m); /* guards keep it alive */
    ek_mutex_guard_drop(a);
}

static void test_value_dropped_with_last_reference(void **s)
{
    (void)s;
    ek_mutex *m;
    atomic_store(&st_msg_drops, 0);
    assert_int_equal(ek_mutex_new(st_msg(4), st_msg_drop, &m), EK_OK);
    ek_mutex_guard *g = guard_new(m);
    ek_mutex *m2 = NULL;
    assert_int_equal(ek_mutex_clone(m, &m2), EK_OK);
    assert_ptr_equal(m2, m);
    assert_int_equal(ek_mutex_clone(m, NULL), EK_EINVAL);
    ek_mutex_drop(m);
    ek_mutex_drop(m);
    assert_int_equal(atomic_load(&st_msg_drops), 0);
    ek_mutex_guard_drop(g);
    assert_int_equal(atomic_load(&st_msg_drops), 1);
}

static void test_bad_arguments_give_einval(void **s)
{
    (void)s;
    ek_mutex *m;
    ek_mutex_guard *g;
    assert_int_equal(ek_mutex_new(NULL, NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_mutex_guard_new(NULL, &g), EK_EINVAL);
    assert_int_equal(ek_mutex_lock(NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_mutex_try_lock(NULL), EK_EINVAL);
    assert_int_equal(ek_mutex_blocking_lock(NULL), EK_EINVAL);
    assert_int_equal(ek_mutex_unlock(NULL), EK_EINVAL);
    assert_int_equal(ek_mutex_guard_set(NULL, NULL, NULL), EK_EINVAL);
    assert_null(ek_mutex_guard_get(NULL));
    ek_mutex *m2 = NULL;
    assert_int_equal(ek_mutex_clone(NULL, &m2), EK_EINVAL);
    assert_null(m2);
    ek_mutex_guard_drop(NULL);
    ek_mutex_drop(NULL);
    assert_int_equal(ek_mutex_new(NULL, NULL, &m), EK_OK);
    assert_int_equal(ek_mutex_guard_new(m, NULL), EK_EINVAL);
    assert_int_equal(ek_mutex_try_lock((ek_mutex_guard *)m), EK_EINVAL);
    g = guard_new(m);
    assert_int_equal(ek_mutex_lock(g, NULL), EK_EINVAL);
    ek_mutex_guard_drop(g);
    ek_mutex_drop(m);
}

static void test_alloc_failure_gives_enomem(void **s)
{
    (void)s;
    long live = ekt_alloc_leaked();
    ek_mutex *m = NULL;
    ek_mutex_guard *g = NULL;
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_mutex_new(NULL, NULL, &m), EK_ENOMEM);
    assert_int_equal(ekt_alloc_leaked(), live);
    assert_int_equal(ek_mutex_new(NULL, NULL, &m), EK_OK);
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_mutex_guard_new(m, &g), EK_ENOMEM);
    ek_mutex_drop(m);
    assert_int_equal(ekt_alloc_leaked(), live);
}

/* ek_mutex_new consumes the value in every case: on error it went through drop. */
static void test_new_consumes_value_on_error(void **s)
{
    (void)s;
    long live = ekt_alloc_leaked();
    ek_mutex *m = NULL;
    atomic_store(&st_msg_drops, 0);
    assert_int_equal(ek_mutex_new(st_msg(1), st_msg_drop, NULL), EK_EINVAL);
    assert_int_equal(atomic_load(&st_msg_drops), 1);
    void *v = st_msg(2);
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_mutex_new(v, st_msg_drop, &m), EK_ENOMEM);
    ekt_alloc_fail_here_after(-1);
    assert_int_equal(atomic_load(&st_msg_drops), 2);
    assert_null(m);
    assert_int_equal(ekt_alloc_leaked(), live);
}

/* Queued lockers get the lock in arrival order; a try_lock cannot jump in. */
static void test_lock_handed_over_fifo(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_mutex *m;
    assert_int_equal(ek_mutex_new(NULL, NULL, &m), EK_OK);
    ek_mutex_guard *main_g = guard_new(m), *other = guard_new(m);
    assert_int_equal(ek_mutex_try_lock(main_g), EK_OK);
    atomic_int pending[3] = {0}, order = 0;
    lock_task t[3];
    ek_join *j[3];
    for (int i = 0; i < 3; i++) {
        t[i] = (lock_task){guard_new(m), &pending[i], &order, 0, false};
        j[i] = ekt_spawn(rt, lock_poll, lock_drop, &t[i]);
        st_wait_for(&pending[i], 1);
    }
    assert_int_equal(ek_mutex_unlock(main_g), EK_OK);
    assert_int_equal(ek_mutex_try_lock(other), EK_EBUSY);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ekt_join(j[i], NULL), EK_OK);
        assert_int_equal(t[i].got, i + 1);
        assert_int_equal(ek_mutex_try_lock(other), EK_EBUSY);
        ek_mutex_guard_drop(t[i].g); /* hands the lock to the next */
    }
    assert_int_equal(ek_mutex_try_lock(other), EK_OK);
    ek_mutex_guard_drop(other);
    ek_mutex_guard_drop(main_g);
    ek_mutex_drop(m);
    ekt_rt_free_checked(rt);
}

/* Abort a queued locker: its place goes; abort after the lock was handed to it
 * (before it ran): the lock goes on to the next one. */
static void test_abort_queued_locker_returns_place_and_lock(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_mutex *m;
    assert_int_equal(ek_mutex_new(NULL, NULL, &m), EK_OK);
    ek_mutex_guard *main_g = guard_new(m);
    assert_int_equal(ek_mutex_try_lock(main_g), EK_OK);
    atomic_int p1 = 0, p2 = 0;
    lock_task *t1 = malloc(sizeof *t1), *t2 = malloc(sizeof *t2);
    *t1 = (lock_task){guard_new(m), &p1, NULL, 0, true};
    *t2 = (lock_task){guard_new(m), &p2, NULL, 0, true};
    ek_join *j1 = ekt_spawn(rt, lock_poll, lock_drop, t1);
    st_wait_for(&p1, 1);
    ek_join *j2 = ekt_spawn(rt, lock_poll, lock_drop, t2);
    st_wait_for(&p2, 1);
    assert_int_equal(ek_join_abort(j1), EK_OK);
    assert_int_equal(ekt_join(j1, NULL), EK_ECANCELED);
    assert_int_equal(ek_mutex_unlock(main_g), EK_OK); /* goes to t2, then t2's drop frees it */
    assert_int_equal(ekt_join(j2, NULL), EK_OK);
    assert_int_equal(ek_mutex_blocking_lock(main_g), EK_OK);
    ek_mutex_guard_drop(main_g);
    ek_mutex_drop(m);
    ekt_rt_free_checked(rt);
}

/* The hand-off case exactly: in one poll, queue, receive the lock, then unlock
 * without ever observing it. */
static int handoff_then_cancel_poll(void *s, ek_cx *cx, void **out)
{
    (void)s;
    (void)out;
    ek_mutex *m;
    assert_int_equal(ek_mutex_new(NULL, NULL, &m), EK_OK);
    ek_mutex_guard *a = guard_new(m), *b = guard_new(m), *c = guard_new(m);
    assert_int_equal(ek_mutex_try_lock(a), EK_OK);
    assert_int_equal(ek_mutex_lock(b, cx), EK_PENDING);
    assert_int_equal(ek_mutex_lock(b, cx), EK_PENDING);
    assert_int_equal(ek_mutex_try_lock(b), EK_EBUSY); /* queued: not its turn yet */
    assert_int_equal(ek_mutex_unlock(a), EK_OK);      /* lock now belongs to b */
    assert_int_equal(ek_mutex_try_lock(c), EK_EBUSY);
    ek_mutex_guard_drop(b); /* never saw it: must pass it on */
    assert_int_equal(ek_mutex_try_lock(c), EK_OK);
    ek_mutex_guard_drop(c);
    ek_mutex_guard_drop(a);
    ek_mutex_drop(m);
    return EK_OK;
}
static void test_drop_after_handoff_passes_lock_on(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    assert_int_equal(ekt_block_on_fn(rt, handoff_then_cancel_poll, NULL, NULL), EK_OK);
    ekt_rt_free_checked(rt);
}

/* ---- stress: a non-atomic counter incremented under the lock ---- */
static long counter, rounds;
typedef struct inc_task {
    ek_mutex_guard *g;
    long i;
} inc_task;
static int inc_poll(void *s, ek_cx *cx, void **out)
{
    inc_task *t = s;
    (void)out;
    while (t->i < rounds) {
        int rc = ek_mutex_lock(t->g, cx);
        if (rc != EK_OK) return rc;
        long *c = ek_mutex_guard_get(t->g);
        *c = *c + 1;
        ek_mutex_unlock(t->g);
        t->i++;
    }
    return EK_OK;
}
static void inc_drop(void *s)
{
    inc_task *t = s;
    ek_mutex_guard_drop(t->g);
    free(t);
}
static void *inc_thread(void *arg)
{
    ek_mutex_guard *g = arg;
    for (long i = 0; i < rounds; i++) {
        if (ek_mutex_blocking_lock(g) != EK_OK) abort();
        long *c = ek_mutex_guard_get(g);
        *c = *c + 1;
        ek_mutex_unlock(g);
    }
    ek_mutex_guard_drop(g);
    return NULL;
}

static void test_stress_mutual_exclusion(void **s)
{
    (void)s;
    rounds = ekt_scale(20000);
    counter = 0;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 3);
    ek_mutex *m;
    assert_int_equal(ek_mutex_new(&counter, NULL, &m), EK_OK);
    ek_join *j[4];
    pthread_t th[2];
    for (int i = 0; i < 4; i++) {
        inc_task *t = calloc(1, sizeof *t);
        t->g = guard_new(m);
        j[i] = ekt_spawn(rt, inc_poll, inc_drop, t);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, inc_thread, guard_new(m)), 0);
    for (int i = 0; i < 4; i++) assert_int_equal(ekt_join(j[i], NULL), EK_OK);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    assert_int_equal(counter, 6 * rounds);
    ek_mutex_drop(m);
    ekt_rt_free_checked(rt);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, ekt_setup, ekt_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_lock_unlock_and_guarded_value),
        T(test_value_dropped_with_last_reference),
        T(test_bad_arguments_give_einval),
        T(test_alloc_failure_gives_enomem),
        T(test_new_consumes_value_on_error),
        T(test_lock_handed_over_fifo),
        T(test_abort_queued_locker_returns_place_and_lock),
        T(test_drop_after_handoff_passes_lock_on),
        T(test_stress_mutual_exclusion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
