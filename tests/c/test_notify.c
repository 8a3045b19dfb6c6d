/* test_notify.c - Notify with Tokio's permit semantics: notify_one before the
 * wait is kept, notify_waiters reaches waiters created before it (polled or
 * not), FIFO notify_one, cancellation passes an unconsumed notification on. */
#include "sync_util.h"

static ek_notified *notified_new(ek_notify *n)
{
    ek_notified *w = NULL;
    assert_int_equal(ek_notified_new(n, &w), EK_OK);
    return w;
}

typedef struct wait_task {
    ek_notified *w;
    atomic_int *pending;
    atomic_int *order;
    int got;
    bool own;
} wait_task;
static int wait_poll(void *s, ek_cx *cx, void **out)
{
    wait_task *t = s;
    (void)out;
    int rc = ek_notified_poll(t->w, cx);
    if (rc == EK_PENDING) atomic_fetch_add(t->pending, 1);
    if (rc == EK_OK && t->order) t->got = atomic_fetch_add(t->order, 1) + 1;
    return rc;
}
static void wait_drop(void *s)
{
    wait_task *t = s;
    if (t->own) {
        ek_notified_drop(t->w);
        free(t);
    }
}

/* Checks inside one poll, so the order of events is exact. */
static int permit_semantics_poll(void *s, ek_cx *cx, void **out)
{
    (void)s;
    (void)out;
    ek_notify *n;
    assert_int_equal(ek_notify_new(&n), EK_OK);
    /* notify_one before the wait: stored as one permit */
    ek_notify_one(n);
    ek_notify_one(n); /* at most one permit */
    ek_notified *a = notified_new(n), *b = notified_new(n);
    assert_int_equal(ek_notified_poll(a, cx), EK_OK);
    assert_int_equal(ek_notified_poll(a, cx), EK_OK); /* stays complete */
    assert_int_equal(ek_notified_poll(b, cx), EK_PENDING);
    /* notify_waiters stores no permit, but reaches b (created before) */
    assert_int_equal(ek_notified_reset(a), EK_OK);
    ek_notify_waiters(n);
    assert_int_equal(ek_notified_poll(b, cx), EK_OK);
    assert_int_equal(ek_notified_poll(a, cx), EK_OK); /* reset before the call: reached */
    ek_notified *c = notified_new(n);                 /* created after: not reached */
    assert_int_equal(ek_notified_poll(c, cx), EK_PENDING);
    /* notify_one goes to the longest waiter */
    ek_notified_reset(a);
    assert_int_equal(ek_notified_poll(a, cx), EK_PENDING);
    ek_notify_one(n);
    assert_int_equal(ek_notified_poll(a, cx), EK_PENDING);
    assert_int_equal(ek_notified_poll(c, cx), EK_OK);
    /* a waiter picked by notify_one but dropped before seeing it passes it on */
    ek_notified_reset(c);
    assert_int_equal(ek_notified_poll(c, cx), EK_PENDING); /* queue: a, c */
    ek_notify_one(n);                                      /* picks a */
    ek_notified_drop(a);                                   /* ... which passes it to c */
    assert_int_equal(ek_notified_poll(c, cx), EK_OK);
    /* ... or back into the permit when nobody else waits */
    ek_notified_reset(c);
    assert_int_equal(ek_notified_poll(c, cx), EK_PENDING);
    ek_notify_one(n);
    ek_notified_drop(c);
    ek_notified *d = notified_new(n);
    assert_int_equal(ek_notified_poll(d, cx), EK_OK);
    ek_notified_drop(d);
    ek_notified_drop(b);
    ek_notify_drop(n);
    return EK_OK;
}
static void test_permit_and_waiters_semantics(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    assert_int_equal(ekt_block_on_fn(rt, permit_semantics_poll, NULL, NULL), EK_OK);
    ekt_rt_free_checked(rt);
}

static void test_notify_waiters_reaches_unpolled_waiter(void **s)
{
    (void)s;
    ek_notify *n;
    assert_int_equal(ek_notify_new(&n), EK_OK);
    ek_notified *w = notified_new(n);
    ek_notify_waiters(n);
    assert_int_equal(ek_notified_blocking_wait(w), EK_OK);
    ek_notified_drop(w);
    ek_notify_drop(n);
}

static void test_bad_arguments_and_alloc_failure(void **s)
{
    (void)s;
    ek_notify *n;
    ek_notified *w;
    assert_int_equal(ek_notify_new(NULL), EK_EINVAL);
    assert_int_equal(ek_notify_one(NULL), EK_EINVAL);
    assert_int_equal(ek_notify_waiters(NULL), EK_EINVAL);
    assert_int_equal(ek_notified_new(NULL, &w), EK_EINVAL);
    assert_int_equal(ek_notified_poll(NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_notified_blocking_wait(NULL), EK_EINVAL);
    assert_int_equal(ek_notified_reset(NULL), EK_EINVAL);
    ek_notify *n2 = NULL;
    assert_int_equal(ek_notify_clone(NULL, &n2), EK_EINVAL);
    assert_null(n2);
    ek_notified_drop(NULL);
    ek_notify_drop(NULL);
    long live = ekt_alloc_leaked();
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_notify_new(&n), EK_ENOMEM);
    assert_int_equal(ekt_alloc_leaked(), live);
    assert_int_equal(ek_notify_new(&n), EK_OK);
    assert_int_equal(ek_notified_new(n, NULL), EK_EINVAL);
    assert_int_equal(ek_notify_one(n), EK_OK);
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_notified_new(n, &w), EK_ENOMEM);
    w = notified_new(n);
    assert_int_equal(ek_notified_poll(w, NULL), EK_EINVAL);
    assert_int_equal(ek_notify_one((ek_notify *)w), EK_EINVAL);
    assert_int_equal(ek_notify_clone(n, NULL), EK_EINVAL);
    assert_int_equal(ek_notify_clone((ek_notify *)w, &n2), EK_EINVAL);
    assert_int_equal(ek_notify_clone(n, &n2), EK_OK);
    assert_ptr_equal(n2, n);
    ek_notify_drop(n);
    ek_notify_drop(n);
    ek_notified_drop(w); /* the last reference */
    assert_int_equal(ekt_alloc_leaked(), live);
}

static void test_notify_one_wakes_tasks_fifo(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_notify *n;
    assert_int_equal(ek_notify_new(&n), EK_OK);
    atomic_int pending[3] = {0}, order = 0;
    wait_task t[3];
    ek_join *j[3];
    for (int i = 0; i < 3; i++) {
        t[i] = (wait_task){notified_new(n), &pending[i], &order, 0, false};
        j[i] = ekt_spawn(rt, wait_poll, wait_drop, &t[i]);
        st_wait_for(&pending[i], 1);
    }
    for (int i = 0; i < 3; i++) {
        ek_notify_one(n);
        assert_int_equal(ekt_join(j[i], NULL), EK_OK);
        assert_int_equal(t[i].got, i + 1);
        ek_notified_drop(t[i].w);
    }
    ek_notify_drop(n);
    ekt_rt_free_checked(rt);
}

static void test_notify_waiters_wakes_all_tasks(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_notify *n;
    assert_int_equal(ek_notify_new(&n), EK_OK);
    enum { N = 40 }; /* more than one wake batch */
    atomic_int pending = 0;
    ek_join *j[N];
    for (int i = 0; i < N; i++) {
        wait_task *t = malloc(sizeof *t);
        *t = (wait_task){notified_new(n), &pending, NULL, 0, true};
        j[i] = ekt_spawn(rt, wait_poll, wait_drop, t);
    }
    st_wait_for(&pending, N);
    ek_notify_waiters(n);
    for (int i = 0; i < N; i++) assert_int_equal(ekt_join(j[i], NULL), EK_OK);
    ek_notify_drop(n);
    ekt_rt_free_checked(rt);
}

/* Abort a waiting task: it leaves the queue, so the next notify_one reaches the
 * waiter behind it instead of vanishing. */
static void test_abort_waiter_does_not_swallow_notification(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_notify *n;
    assert_int_equal(ek_notify_new(&n), EK_OK);
    atomic_int p1 = 0, p2 = 0;
    wait_task *t1 = malloc(sizeof *t1), *t2 = malloc(sizeof *t2);
    *t1 = (wait_task){notified_new(n), &p1, NULL, 0, true};
    *t2 = (wait_task){notified_new(n), &p2, NULL, 0, true};
    ek_join *j1 = ekt_spawn(rt, wait_poll, wait_drop, t1);
    st_wait_for(&p1, 1);
    ek_join *j2 = ekt_spawn(rt, wait_poll, wait_drop, t2);
    st_wait_for(&p2, 1);
    assert_int_equal(ek_join_abort(j1), EK_OK);
    assert_int_equal(ekt_join(j1, NULL), EK_ECANCELED);
    ek_notify_one(n);
    assert_int_equal(ekt_join(j2, NULL), EK_OK);
    ek_notify_drop(n);
    ekt_rt_free_checked(rt);
}

static void *notify_later(void *arg)
{
    usleep(10 * 1000);
    ek_notify_one(arg);
    return NULL;
}
static int blocking_in_task(void *s, ek_cx *cx, void **out)
{
    (void)cx;
    (void)out;
    return ek_notified_blocking_wait(s);
}
static void test_blocking_wait(void **s)
{
    (void)s;
    ek_notify *n;
    assert_int_equal(ek_notify_new(&n), EK_OK);
    ek_notified *w = notified_new(n);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, notify_later, n), 0);
    assert_int_equal(ek_notified_blocking_wait(w), EK_OK);
    pthread_join(th, NULL);
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    assert_int_equal(ekt_join(ekt_spawn(rt, blocking_in_task, ekt_noop_drop, w), NULL), EK_EDEADLK);
    ek_notified_drop(w);
    ek_notify_drop(n);
    ekt_rt_free_checked(rt);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, ekt_setup, ekt_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_permit_and_waiters_semantics),
        T(test_notify_waiters_reaches_unpolled_waiter),
        T(test_bad_arguments_and_alloc_failure),
        T(test_notify_one_wakes_tasks_fifo),
        T(test_notify_waiters_wakes_all_tasks),
        T(test_abort_waiter_does_not_swallow_notification),
        T(test_blocking_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
