/* test_watch.c - watch: latest value, versions seen per receiver, change
 * notification, sender drop, cloned values, cancellation, allocation failure. */
#include "sync_util.h"

/* Values are heap ints; the clone function copies them. */
static atomic_int clones;
static int int_clone(void *m, void **out)
{
    atomic_fetch_add(&clones, 1);
    *out = st_msg(st_msg_val(m));
    return EK_OK;
}
static int failing_clone(void *m, void **out)
{
    (void)m;
    (void)out;
    return EK_ENOMEM;
}

static void test_borrow_send_and_versions(void **s)
{
    (void)s;
    ek_watch_sender *tx;
    ek_watch_receiver *rx, *rx2;
    atomic_store(&st_msg_drops, 0);
    assert_int_equal(ek_watch_new(st_msg(1), int_clone, st_msg_drop, &tx, &rx), EK_OK);
    void *v;
    assert_int_equal(ek_watch_has_changed(rx), 0);
    assert_int_equal(ek_watch_borrow(rx, &v), EK_OK);
    assert_int_equal(st_msg_val(v), 1);
    free(v);
    assert_int_equal(ek_watch_send(tx, st_msg(2)), EK_OK);
    assert_int_equal(atomic_load(&st_msg_drops), 1); /* the replaced value */
    assert_int_equal(ek_watch_subscribe(tx, &rx2), EK_OK);
    assert_int_equal(ek_watch_receiver_count(tx), 2);
    assert_int_equal(ek_watch_has_changed(rx), 1);
    assert_int_equal(ek_watch_has_changed(rx2), 0);   /* subscribed after the send */
    assert_int_equal(ek_watch_borrow(rx, &v), EK_OK); /* borrow does not mark seen */
    free(v);
    assert_int_equal(ek_watch_has_changed(rx), 1);
    assert_int_equal(ek_watch_borrow_and_update(rx, &v), EK_OK);
    assert_int_equal(st_msg_val(v), 2);
    free(v);
    assert_int_equal(ek_watch_has_changed(rx), 0);
    /* sender gone: unseen change first, then ECLOSED; the value stays readable */
    assert_int_equal(ek_watch_send(tx, st_msg(3)), EK_OK);
    ek_watch_sender_drop(tx);
    assert_int_equal(ek_watch_has_changed(rx), 1);
    assert_int_equal(ek_watch_blocking_changed(rx), EK_OK);
    assert_int_equal(ek_watch_has_changed(rx), EK_ECLOSED);
    assert_int_equal(ek_watch_blocking_changed(rx), EK_ECLOSED);
    assert_int_equal(ek_watch_borrow(rx, &v), EK_OK);
    assert_int_equal(st_msg_val(v), 3);
    free(v);
    ek_watch_receiver_drop(rx);
    ek_watch_receiver_drop(rx2);
    assert_int_equal(atomic_load(&st_msg_drops), 3); /* 1, 2 replaced; 3 with the channel */
}

static void test_send_without_receivers_fails_send_replace_works(void **s)
{
    (void)s;
    ek_watch_sender *tx;
    ek_watch_receiver *rx;
    assert_int_equal(ek_watch_new((void *)1, NULL, NULL, &tx, &rx), EK_OK);
    ek_watch_receiver_drop(rx);
    assert_int_equal(ek_watch_receiver_count(tx), 0);
    assert_int_equal(ek_watch_send(tx, (void *)2), EK_ECLOSED);
    assert_int_equal(ek_watch_send_replace(tx, (void *)3), EK_OK);
    assert_int_equal(ek_watch_subscribe(tx, &rx), EK_OK);
    void *v;
    assert_int_equal(ek_watch_borrow(rx, &v), EK_OK);
    assert_ptr_equal(v, (void *)3); /* NULL clone: the pointer itself */
    ek_watch_receiver_drop(rx);
    ek_watch_sender_drop(tx);
}

static void test_clone_error_and_bad_arguments(void **s)
{
    (void)s;
    ek_watch_sender *tx;
    ek_watch_receiver *rx, *rx2;
    void *v = (void *)7;
    assert_int_equal(ek_watch_new(NULL, NULL, NULL, NULL, &rx), EK_EINVAL);
    assert_int_equal(ek_watch_send(NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_watch_send_replace(NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_watch_subscribe(NULL, &rx), EK_EINVAL);
    assert_int_equal(ek_watch_receiver_count(NULL), EK_EINVAL);
    assert_int_equal(ek_watch_borrow(NULL, &v), EK_EINVAL);
    assert_int_equal(ek_watch_has_changed(NULL), EK_EINVAL);
    assert_int_equal(ek_watch_changed(NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_watch_blocking_changed(NULL), EK_EINVAL);
    assert_int_equal(ek_watch_receiver_clone(NULL, &rx), EK_EINVAL);
    ek_watch_sender_drop(NULL);
    ek_watch_receiver_drop(NULL);
    assert_int_equal(ek_watch_new(NULL, failing_clone, NULL, &tx, &rx), EK_OK);
    assert_int_equal(ek_watch_borrow(rx, &v), EK_ENOMEM);
    assert_int_equal(ek_watch_borrow((ek_watch_receiver *)tx, &v), EK_EINVAL);
    assert_int_equal(ek_watch_changed(rx, NULL), EK_EINVAL);
    /* allocation failure */
    long live = ekt_alloc_leaked();
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_watch_subscribe(tx, &rx2), EK_ENOMEM);
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_watch_receiver_clone(rx, &rx2), EK_ENOMEM);
    assert_int_equal(ekt_alloc_leaked(), live);
    ek_watch_receiver_drop(rx);
    ek_watch_sender_drop(tx);
    live = ekt_alloc_leaked();
    for (long i = 0; i < 3; i++) {
        ekt_alloc_fail_here_after(i);
        int rc = ek_watch_new(NULL, NULL, NULL, &tx, &rx);
        ekt_alloc_fail_here_after(-1);
        if (rc == EK_OK) {
            ek_watch_sender_drop(tx);
            ek_watch_receiver_drop(rx);
            break;
        }
        assert_int_equal(rc, EK_ENOMEM);
        assert_int_equal(ekt_alloc_leaked(), live);
    }
}

/* ek_watch_new consumes the initial value in every case: on each error it has
 * gone through the drop function (and its memory is released). */
static void test_new_consumes_initial_on_error(void **s)
{
    (void)s;
    ek_watch_sender *tx = NULL;
    ek_watch_receiver *rx = NULL;
    atomic_store(&st_msg_drops, 0);
    long live = ekt_alloc_leaked();
    assert_int_equal(ek_watch_new(st_msg(1), NULL, st_msg_drop, NULL, &rx), EK_EINVAL);
    assert_int_equal(ek_watch_new(st_msg(2), NULL, st_msg_drop, &tx, NULL), EK_EINVAL);
    assert_int_equal(atomic_load(&st_msg_drops), 2);
    assert_int_equal(ekt_alloc_leaked(), live);
    int failures = 0;
    for (long i = 0;; i++) {
        void *v = st_msg(3);
        ekt_alloc_fail_here_after(i);
        int rc = ek_watch_new(v, NULL, st_msg_drop, &tx, &rx);
        ekt_alloc_fail_here_after(-1);
        if (rc == EK_OK) break;
        assert_int_equal(rc, EK_ENOMEM);
        failures++;
        assert_int_equal(atomic_load(&st_msg_drops), 2 + failures);
        assert_int_equal(ekt_alloc_leaked(), live);
    }
    assert_true(failures >= 2);
    ek_watch_sender_drop(tx);
    ek_watch_receiver_drop(rx);
    assert_int_equal(atomic_load(&st_msg_drops), 3 + failures); /* freed with the channel */
    assert_int_equal(ekt_alloc_leaked(), live);
}

/* ---- tasks waiting for changes ---- */
typedef struct changed_task {
    ek_watch_receiver *rx;
    atomic_int *pending;
    int changes; /* how many changes to wait for */
    bool own;
} changed_task;
static int changed_poll(void *s, ek_cx *cx, void **out)
{
    changed_task *t = s;
    (void)out;
    while (t->changes > 0) {
        int rc = ek_watch_changed(t->rx, cx);
        if (rc == EK_PENDING) atomic_fetch_add(t->pending, 1);
        if (rc != EK_OK) return rc;
        t->changes--;
    }
    return EK_OK;
}
static void changed_drop(void *s)
{
    changed_task *t = s;
    if (t->own) ek_watch_receiver_drop(t->rx);
    free(t);
}

static void test_changed_wakes_every_waiting_receiver(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_watch_sender *tx;
    ek_watch_receiver *rx;
    assert_int_equal(ek_watch_new(NULL, NULL, NULL, &tx, &rx), EK_OK);
    enum { N = 36 };
    atomic_int pending = 0;
    ek_join *j[N];
    for (int i = 0; i < N; i++) {
        changed_task *t = malloc(sizeof *t);
        *t = (changed_task){NULL, &pending, 1, true};
        assert_int_equal(ek_watch_receiver_clone(rx, &t->rx), EK_OK);
        j[i] = ekt_spawn(rt, changed_poll, changed_drop, t);
    }
    st_wait_for(&pending, N);
    assert_int_equal(ek_watch_send(tx, (void *)1), EK_OK);
    for (int i = 0; i < N; i++) assert_int_equal(ekt_join(j[i], NULL), EK_OK);
    /* and a sender drop wakes waiters with ECLOSED */
    changed_task *t = malloc(sizeof *t);
    *t = (changed_task){rx, &pending, 2, true};
    ek_join *jj = ekt_spawn(rt, changed_poll, changed_drop, t);
    st_wait_for(&pending, N + 1);
    ek_watch_sender_drop(tx);
    assert_int_equal(ekt_join(jj, NULL), EK_ECLOSED);
    ekt_rt_free_checked(rt);
}

static void test_abort_waiting_receiver_then_send(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_watch_sender *tx;
    ek_watch_receiver *rx, *rx2;
    assert_int_equal(ek_watch_new(NULL, NULL, NULL, &tx, &rx), EK_OK);
    assert_int_equal(ek_watch_receiver_clone(rx, &rx2), EK_OK);
    atomic_int pending = 0;
    changed_task *t = malloc(sizeof *t);
    *t = (changed_task){rx2, &pending, 1, true};
    ek_join *j = ekt_spawn(rt, changed_poll, changed_drop, t);
    st_wait_for(&pending, 1);
    assert_int_equal(ek_join_abort(j), EK_OK);
    assert_int_equal(ekt_join(j, NULL), EK_ECANCELED);
    assert_int_equal(ek_watch_receiver_count(tx), 1);
    assert_int_equal(ek_watch_send(tx, (void *)5), EK_OK);
    assert_int_equal(ek_watch_has_changed(rx), 1);
    ek_watch_receiver_drop(rx);
    ek_watch_sender_drop(tx);
    ekt_rt_free_checked(rt);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, ekt_setup, ekt_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_borrow_send_and_versions),
        T(test_send_without_receivers_fails_send_replace_works),
        T(test_clone_error_and_bad_arguments),
        T(test_new_consumes_initial_on_error),
        T(test_changed_wakes_every_waiting_receiver),
        T(test_abort_waiting_receiver_then_send),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
