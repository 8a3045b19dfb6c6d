/* test_semaphore.c - the fair semaphore: raw permits, permit objects, FIFO
 * order with partial assignment, close, cancellation, blocking acquire,
 * allocation failure, and a bounded-concurrency stress. */
#include "sync_util.h"

typedef struct acq_task {
    ek_semaphore_permit *p;
    size_t n;
    atomic_int *pending;
    atomic_int *done; /* set to order+1 when acquired */
    atomic_int *order;
    bool own; /* drop the permit object (and what it holds) with the task */
} acq_task;

static int acq_poll(void *s, ek_cx *cx, void **out)
{
    acq_task *t = s;
    (void)out;
    int rc = ek_semaphore_acquire(t->p, cx, t->n);
    if (rc == EK_PENDING) atomic_fetch_add(t->pending, 1);
    if (rc == EK_OK && t->done) atomic_store(t->done, atomic_fetch_add(t->order, 1) + 1);
    return rc;
}
static void acq_drop(void *s)
{
    acq_task *t = s;
    if (t->own) ek_semaphore_permit_drop(t->p);
    free(t);
}
static ek_join *spawn_acq(ek_runtime *rt, ek_semaphore_permit *p, size_t n, atomic_int *pending,
                          atomic_int *done, atomic_int *order, bool own)
{
    acq_task *t = malloc(sizeof *t);
    *t = (acq_task){p, n, pending, done, order, own};
    return ekt_spawn(rt, acq_poll, acq_drop, t);
}
static ek_semaphore_permit *permit_new(ek_semaphore *s)
{
    ek_semaphore_permit *p = NULL;
    assert_int_equal(ek_semaphore_permit_new(s, &p), EK_OK);
    return p;
}

static void test_raw_permits_try_acquire_and_release(void **s)
{
    (void)s;
    ek_semaphore *sem;
    assert_int_equal(ek_semaphore_new(3, &sem), EK_OK);
    assert_int_equal(ek_semaphore_available_permits(sem), 3);
    assert_int_equal(ek_semaphore_try_acquire(sem, 2), EK_OK);
    assert_int_equal(ek_semaphore_try_acquire(sem, 2), EK_EFULL);
    assert_int_equal(ek_semaphore_try_acquire(sem, 0), EK_OK);
    assert_int_equal(ek_semaphore_try_acquire(sem, 1), EK_OK);
    assert_int_equal(ek_semaphore_available_permits(sem), 0);
    assert_int_equal(ek_semaphore_release(sem, 3), EK_OK);
    assert_int_equal(ek_semaphore_available_permits(sem), 3);
    assert_int_equal(ek_semaphore_release(sem, EK_SEMAPHORE_MAX_PERMITS), EK_ERANGE);
    assert_int_equal(ek_semaphore_try_acquire(sem, EK_SEMAPHORE_MAX_PERMITS + 1), EK_EINVAL);
    assert_int_equal(ek_semaphore_is_closed(sem), 0);
    ek_semaphore *sem2 = NULL;
    assert_int_equal(ek_semaphore_clone(sem, &sem2), EK_OK);
    assert_ptr_equal(sem2, sem);
    assert_int_equal(ek_semaphore_clone(sem, NULL), EK_EINVAL);
    ek_semaphore_drop(sem);
    ek_semaphore_drop(sem);
}

static void test_bad_arguments_give_einval(void **s)
{
    (void)s;
    ek_semaphore *sem;
    ek_semaphore_permit *p;
    assert_int_equal(ek_semaphore_new(1, NULL), EK_EINVAL);
    assert_int_equal(ek_semaphore_new(EK_SEMAPHORE_MAX_PERMITS + 1, &sem), EK_EINVAL);
    assert_int_equal(ek_semaphore_try_acquire(NULL, 1), EK_EINVAL);
    assert_int_equal(ek_semaphore_release(NULL, 1), EK_EINVAL);
    assert_int_equal(ek_semaphore_close(NULL), EK_EINVAL);
    assert_int_equal(ek_semaphore_is_closed(NULL), EK_EINVAL);
    assert_int_equal(ek_semaphore_available_permits(NULL), EK_EINVAL);
    ek_semaphore *sem2 = (ek_semaphore *)&sem;
    assert_int_equal(ek_semaphore_clone(NULL, &sem2), EK_EINVAL);
    assert_ptr_equal(sem2, (ek_semaphore *)&sem); /* untouched on error */
    assert_int_equal(ek_semaphore_permit_new(NULL, &p), EK_EINVAL);
    assert_int_equal(ek_semaphore_acquire(NULL, NULL, 1), EK_EINVAL);
    assert_int_equal(ek_semaphore_blocking_acquire(NULL, 1), EK_EINVAL);
    assert_int_equal(ek_semaphore_permit_release(NULL), EK_EINVAL);
    assert_int_equal(ek_semaphore_permit_forget(NULL), EK_EINVAL);
    assert_int_equal(ek_semaphore_permit_count(NULL), EK_EINVAL);
    ek_semaphore_permit_drop(NULL);
    ek_semaphore_drop(NULL);
    assert_int_equal(ek_semaphore_new(1, &sem), EK_OK);
    p = permit_new(sem);
    assert_int_equal(ek_semaphore_try_acquire((ek_semaphore *)p, 1), EK_EINVAL);
    assert_int_equal(ek_semaphore_acquire(p, NULL, 1), EK_EINVAL);
    ek_semaphore_drop(sem); /* the permit object keeps it alive */
    ek_semaphore_permit_drop(p);
}

static void test_permit_object_holds_releases_and_forgets(void **s)
{
    (void)s;
    ek_semaphore *sem;
    assert_int_equal(ek_semaphore_new(5, &sem), EK_OK);
    ek_semaphore_permit *p = permit_new(sem);
    assert_int_equal(ek_semaphore_blocking_acquire(p, 2), EK_OK);
    assert_int_equal(ek_semaphore_blocking_acquire(p, 1), EK_OK);
    assert_int_equal(ek_semaphore_permit_count(p), 3);
    assert_int_equal(ek_semaphore_available_permits(sem), 2);
    assert_int_equal(ek_semaphore_permit_release(p), EK_OK);
    assert_int_equal(ek_semaphore_permit_count(p), 0);
    assert_int_equal(ek_semaphore_available_permits(sem), 5);
    assert_int_equal(ek_semaphore_blocking_acquire(p, 2), EK_OK);
    assert_int_equal(ek_semaphore_permit_forget(p), EK_OK);
    assert_int_equal(ek_semaphore_available_permits(sem), 3); /* gone for good */
    assert_int_equal(ek_semaphore_blocking_acquire(p, 3), EK_OK);
    ek_semaphore_permit_drop(p); /* drop returns what it holds */
    assert_int_equal(ek_semaphore_available_permits(sem), 3);
    ek_semaphore_drop(sem);
}

/* Waiters are served in order; a big request takes permits a few at a time and
 * blocks the ones behind it; try_acquire cannot overtake waiters. */
static void test_waiters_served_fifo_with_partial_assignment(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_semaphore *sem;
    assert_int_equal(ek_semaphore_new(0, &sem), EK_OK);
    size_t need[3] = {1, 2, 1};
    atomic_int pending[3] = {0}, done[3] = {0}, order = 0;
    ek_semaphore_permit *p[3];
    ek_join *j[3];
    for (int i = 0; i < 3; i++) {
        p[i] = permit_new(sem);
        j[i] = spawn_acq(rt, p[i], need[i], &pending[i], &done[i], &order, false);
        st_wait_for(&pending[i], 1);
    }
    assert_int_equal(ek_semaphore_release(sem, 1), EK_OK);
    assert_int_equal(ekt_join(j[0], NULL), EK_OK);
    assert_int_equal(ek_semaphore_release(sem, 1), EK_OK); /* half of waiter 1's two */
    assert_int_equal(ek_semaphore_available_permits(sem), 0);
    assert_int_equal(ek_semaphore_try_acquire(sem, 1), EK_EFULL);
    st_settle();
    assert_int_equal(atomic_load(&done[1]), 0);
    assert_int_equal(atomic_load(&done[2]), 0);
    /* One at a time: both could become ready at once otherwise, and which task
     * then runs first is up to the scheduler, not the semaphore. */
    assert_int_equal(ek_semaphore_release(sem, 1), EK_OK);
    assert_int_equal(ekt_join(j[1], NULL), EK_OK);
    st_settle();
    assert_int_equal(atomic_load(&done[2]), 0);
    assert_int_equal(ek_semaphore_release(sem, 1), EK_OK);
    assert_int_equal(ekt_join(j[2], NULL), EK_OK);
    assert_int_equal(atomic_load(&done[0]), 1);
    assert_int_equal(atomic_load(&done[1]), 2);
    assert_int_equal(atomic_load(&done[2]), 3);
    assert_int_equal(ek_semaphore_permit_count(p[1]), 2);
    for (int i = 0; i < 3; i++) ek_semaphore_permit_drop(p[i]);
    assert_int_equal(ek_semaphore_available_permits(sem), 4);
    ek_semaphore_drop(sem);
    ekt_rt_free_checked(rt);
}

/* Aborting a waiter that already got part of its permits gives them back, and
 * the waiter behind it is served. */
static void test_abort_waiting_acquire_returns_partial_permits(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_semaphore *sem;
    assert_int_equal(ek_semaphore_new(1, &sem), EK_OK);
    atomic_int p1 = 0, p2 = 0;
    ek_join *j1 = spawn_acq(rt, permit_new(sem), 3, &p1, NULL, NULL, true);
    st_wait_for(&p1, 1); /* holds 1 of its 3 */
    ek_join *j2 = spawn_acq(rt, permit_new(sem), 2, &p2, NULL, NULL, true);
    st_wait_for(&p2, 1);
    assert_int_equal(ek_semaphore_available_permits(sem), 0);
    assert_int_equal(ek_join_abort(j1), EK_OK);
    assert_int_equal(ekt_join(j1, NULL), EK_ECANCELED);
    assert_int_equal(ek_semaphore_release(sem, 1), EK_OK); /* 1 returned + 1 = j2's 2 */
    assert_int_equal(ekt_join(j2, NULL), EK_OK);
    assert_int_equal(ek_semaphore_available_permits(sem), 2); /* j2's drop returned them */
    ek_semaphore_drop(sem);
    ekt_rt_free_checked(rt);
}

static void test_close_fails_waiters_and_new_acquires(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_semaphore *sem;
    assert_int_equal(ek_semaphore_new(1, &sem), EK_OK);
    ek_semaphore_permit *holder = permit_new(sem);
    assert_int_equal(ek_semaphore_blocking_acquire(holder, 1), EK_OK);
    atomic_int p1 = 0;
    ek_join *j1 = spawn_acq(rt, permit_new(sem), 1, &p1, NULL, NULL, true);
    st_wait_for(&p1, 1);
    assert_int_equal(ek_semaphore_close(sem), EK_OK);
    assert_int_equal(ek_semaphore_close(sem), EK_OK);
    assert_int_equal(ekt_join(j1, NULL), EK_ECLOSED);
    assert_int_equal(ek_semaphore_is_closed(sem), 1);
    assert_int_equal(ek_semaphore_try_acquire(sem, 1), EK_ECLOSED);
    assert_int_equal(ek_semaphore_blocking_acquire(holder, 1), EK_ECLOSED);
    assert_int_equal(ek_semaphore_permit_count(holder), 1); /* still held, releasable */
    ek_semaphore_permit_drop(holder);
    assert_int_equal(ek_semaphore_available_permits(sem), 1);
    ek_semaphore_drop(sem);
    ekt_rt_free_checked(rt);
}

static int blocking_in_task(void *s, ek_cx *cx, void **out)
{
    (void)cx;
    (void)out;
    return ek_semaphore_blocking_acquire(s, 1);
}
static void test_blocking_acquire_on_worker_is_edeadlk(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_semaphore *sem;
    assert_int_equal(ek_semaphore_new(1, &sem), EK_OK);
    ek_semaphore_permit *p = permit_new(sem);
    assert_int_equal(ekt_join(ekt_spawn(rt, blocking_in_task, ekt_noop_drop, p), NULL), EK_EDEADLK);
    ek_semaphore_permit_drop(p);
    ek_semaphore_drop(sem);
    ekt_rt_free_checked(rt);
}

static void test_alloc_failure_gives_enomem(void **s)
{
    (void)s;
    long live = ekt_alloc_leaked();
    ek_semaphore *sem = NULL;
    ek_semaphore_permit *p = NULL;
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_semaphore_new(1, &sem), EK_ENOMEM);
    assert_int_equal(ekt_alloc_leaked(), live);
    assert_int_equal(ek_semaphore_new(1, &sem), EK_OK);
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_semaphore_permit_new(sem, &p), EK_ENOMEM);
    ek_semaphore_drop(sem);
    assert_int_equal(ekt_alloc_leaked(), live);
}

/* ---- stress: never more than `limit` holders at once ---- */
static atomic_int inside, max_inside;
static long stress_rounds;
static void note_inside(void)
{
    int v = atomic_fetch_add(&inside, 1) + 1;
    int m = atomic_load(&max_inside);
    while (v > m && !atomic_compare_exchange_weak(&max_inside, &m, v)) {
    }
    atomic_fetch_sub(&inside, 1);
}
typedef struct loop_task {
    ek_semaphore_permit *p;
    long i;
} loop_task;
static int loop_poll(void *s, ek_cx *cx, void **out)
{
    loop_task *t = s;
    (void)out;
    while (t->i < stress_rounds) {
        int rc = ek_semaphore_acquire(t->p, cx, 1);
        if (rc != EK_OK) return rc;
        note_inside();
        ek_semaphore_permit_release(t->p);
        t->i++;
    }
    return EK_OK;
}
static void loop_drop(void *s)
{
    loop_task *t = s;
    ek_semaphore_permit_drop(t->p);
    free(t);
}
static void *loop_thread(void *arg)
{
    ek_semaphore_permit *p = arg;
    for (long i = 0; i < stress_rounds; i++) {
        if (ek_semaphore_blocking_acquire(p, 1) != EK_OK) abort();
        note_inside();
        ek_semaphore_permit_release(p);
    }
    ek_semaphore_permit_drop(p);
    return NULL;
}

static void test_stress_tasks_and_threads_respect_limit(void **s)
{
    (void)s;
    stress_rounds = ekt_scale(20000);
    atomic_store(&inside, 0);
    atomic_store(&max_inside, 0);
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 3);
    ek_semaphore *sem;
    assert_int_equal(ek_semaphore_new(2, &sem), EK_OK);
    ek_join *j[6];
    pthread_t th[2];
    for (int i = 0; i < 6; i++) {
        loop_task *t = calloc(1, sizeof *t);
        t->p = permit_new(sem);
        j[i] = ekt_spawn(rt, loop_poll, loop_drop, t);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, loop_thread, permit_new(sem)), 0);
    for (int i = 0; i < 6; i++) assert_int_equal(ekt_join(j[i], NULL), EK_OK);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    assert_true(atomic_load(&max_inside) <= 2);
    assert_int_equal(ek_semaphore_available_permits(sem), 2);
    ek_semaphore_drop(sem);
    ekt_rt_free_checked(rt);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, ekt_setup, ekt_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_raw_permits_try_acquire_and_release),
        T(test_bad_arguments_give_einval),
        T(test_permit_object_holds_releases_and_forgets),
        T(test_waiters_served_fifo_with_partial_assignment),
        T(test_abort_waiting_acquire_returns_partial_permits),
        T(test_close_fails_waiters_and_new_acquires),
        T(test_blocking_acquire_on_worker_is_edeadlk),
        T(test_alloc_failure_gives_enomem),
        T(test_stress_tasks_and_threads_respect_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
