/* test_broadcast.c - broadcast: every receiver gets its copy, lagging receivers
 * get EK_ELAGGED with the count, drops happen exactly once, close orders,
 * cancellation, blocking receive, allocation failure. */
#include "sync_util.h"

static int int_clone(void *m, void **out)
{
    *out = st_msg(st_msg_val(m));
    return EK_OK;
}
static int failing_clone(void *m, void **out)
{
    (void)m;
    (void)out;
    return EK_ENOMEM;
}

static void recv_val(ek_broadcast_receiver *rx, int want)
{
    void *m = NULL;
    assert_int_equal(ek_broadcast_try_recv(rx, &m, NULL), EK_OK);
    assert_int_equal(st_msg_val(m), want);
    free(m);
}

static void test_every_receiver_gets_each_message_once(void **s)
{
    (void)s;
    ek_broadcast_sender *tx;
    ek_broadcast_receiver *a, *b;
    atomic_store(&st_msg_drops, 0);
    assert_int_equal(ek_broadcast_new(4, int_clone, st_msg_drop, &tx, &a), EK_OK);
    assert_int_equal(ek_broadcast_subscribe(tx, &b), EK_OK);
    size_t n = 0;
    assert_int_equal(ek_broadcast_send(tx, st_msg(1), &n), EK_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ek_broadcast_send(tx, st_msg(2), NULL), EK_OK);
    recv_val(a, 1);
    recv_val(a, 2);
    void *m;
    assert_int_equal(ek_broadcast_try_recv(a, &m, NULL), EK_EEMPTY);
    assert_int_equal(atomic_load(&st_msg_drops), 0);
    recv_val(b, 1);
    assert_int_equal(atomic_load(&st_msg_drops), 1); /* last reader: channel copy dropped */
    /* a clone starts where b is */
    ek_broadcast_receiver *c;
    assert_int_equal(ek_broadcast_receiver_clone(b, &c), EK_OK);
    recv_val(b, 2);
    assert_int_equal(atomic_load(&st_msg_drops), 1);
    recv_val(c, 2);
    assert_int_equal(atomic_load(&st_msg_drops), 2);
    /* senders gone: ECLOSED once caught up */
    assert_int_equal(ek_broadcast_send(tx, st_msg(3), NULL), EK_OK);
    ek_broadcast_sender_drop(tx);
    recv_val(a, 3);
    assert_int_equal(ek_broadcast_try_recv(a, &m, NULL), EK_ECLOSED);
    assert_int_equal(ek_broadcast_blocking_recv(a, &m, NULL), EK_ECLOSED);
    ek_broadcast_receiver_drop(a);
    ek_broadcast_receiver_drop(b);
    ek_broadcast_receiver_drop(c); /* message 3 unread by b and c: dropped with the channel */
    assert_int_equal(atomic_load(&st_msg_drops), 3);
}

static atomic_int clones;
static int counting_clone(void *m, void **out)
{
    atomic_fetch_add(&clones, 1);
    return int_clone(m, out);
}

/* A receive with nowhere to put the message skips it without making a copy
 * (one made would leak); the channel's copy still goes when its last reader
 * has read it. */
static void test_recv_with_null_out_skips_without_a_copy(void **s)
{
    (void)s;
    ek_broadcast_sender *tx;
    ek_broadcast_receiver *a, *b;
    atomic_store(&st_msg_drops, 0);
    atomic_store(&clones, 0);
    assert_int_equal(ek_broadcast_new(4, counting_clone, st_msg_drop, &tx, &a), EK_OK);
    assert_int_equal(ek_broadcast_subscribe(tx, &b), EK_OK);
    assert_int_equal(ek_broadcast_send(tx, st_msg(1), NULL), EK_OK);
    assert_int_equal(ek_broadcast_send(tx, st_msg(2), NULL), EK_OK);
    assert_int_equal(ek_broadcast_try_recv(a, NULL, NULL), EK_OK);
    assert_int_equal(ek_broadcast_blocking_recv(a, NULL, NULL), EK_OK);
    assert_int_equal(atomic_load(&clones), 0);
    assert_int_equal(atomic_load(&st_msg_drops), 0);
    assert_int_equal(ek_broadcast_try_recv(a, NULL, NULL), EK_EEMPTY);
    recv_val(b, 1); /* b still gets its copies, and is the last reader */
    assert_int_equal(atomic_load(&clones), 1);
    assert_int_equal(atomic_load(&st_msg_drops), 1);
    assert_int_equal(ek_broadcast_try_recv(b, NULL, NULL), EK_OK);
    assert_int_equal(atomic_load(&clones), 1);
    assert_int_equal(atomic_load(&st_msg_drops), 2);
    ek_broadcast_sender_drop(tx);
    ek_broadcast_receiver_drop(a);
    ek_broadcast_receiver_drop(b);
    assert_int_equal(atomic_load(&st_msg_drops), 2);
}

static void test_lagging_receiver_gets_elagged_with_count(void **s)
{
    (void)s;
    ek_broadcast_sender *tx;
    ek_broadcast_receiver *rx;
    atomic_store(&st_msg_drops, 0);
    assert_int_equal(ek_broadcast_new(2, int_clone, st_msg_drop, &tx, &rx), EK_OK);
    for (int i = 0; i < 5; i++) assert_int_equal(ek_broadcast_send(tx, st_msg(i), NULL), EK_OK);
    assert_int_equal(atomic_load(&st_msg_drops), 3); /* overwritten */
    void *m;
    uint64_t missed = 0;
    assert_int_equal(ek_broadcast_try_recv(rx, &m, &missed), EK_ELAGGED);
    assert_int_equal(missed, 3);
    recv_val(rx, 3);
    recv_val(rx, 4);
    assert_int_equal(ek_broadcast_try_recv(rx, &m, &missed), EK_EEMPTY);
    assert_int_equal(atomic_load(&st_msg_drops), 5);
    ek_broadcast_receiver_drop(rx);
    ek_broadcast_sender_drop(tx);
}

static void test_no_receivers_send_fails_and_drop_releases_share(void **s)
{
    (void)s;
    ek_broadcast_sender *tx;
    ek_broadcast_receiver *rx, *rx2;
    atomic_store(&st_msg_drops, 0);
    /* A drop without a clone would free a pointer the last receiver still holds. */
    assert_int_equal(ek_broadcast_new(4, NULL, st_msg_drop, &tx, &rx), EK_EINVAL);
    assert_int_equal(ek_broadcast_new(4, int_clone, st_msg_drop, &tx, &rx), EK_OK);
    assert_int_equal(ek_broadcast_subscribe(tx, &rx2), EK_OK);
    assert_int_equal(ek_broadcast_send(tx, st_msg(1), NULL), EK_OK);
    void *m = NULL;
    assert_int_equal(ek_broadcast_try_recv(rx, &m, NULL), EK_OK); /* rx's own copy */
    assert_int_equal(st_msg_val(m), 1);
    st_msg_drop(m);
    ek_broadcast_receiver_drop(rx2); /* rx2's share released: the channel's copy goes */
    ek_broadcast_receiver_drop(rx);
    void *x = st_msg(2);
    assert_int_equal(ek_broadcast_send(tx, x, NULL), EK_ECLOSED); /* x still ours */
    free(x);
    assert_int_equal(ek_broadcast_subscribe(tx, &rx), EK_OK);
    assert_int_equal(ek_broadcast_try_recv(rx, &m, NULL), EK_EEMPTY); /* starts at the tail */
    ek_broadcast_sender_drop(tx);
    assert_int_equal(ek_broadcast_try_recv(rx, &m, NULL), EK_ECLOSED);
    ek_broadcast_receiver_drop(rx);
    assert_int_equal(atomic_load(&st_msg_drops), 2); /* rx's copy and the channel's */
}

static void test_clone_error_skips_message(void **s)
{
    (void)s;
    ek_broadcast_sender *tx;
    ek_broadcast_receiver *rx;
    assert_int_equal(ek_broadcast_new(2, failing_clone, NULL, &tx, &rx), EK_OK);
    assert_int_equal(ek_broadcast_send(tx, (void *)1, NULL), EK_OK);
    void *m;
    assert_int_equal(ek_broadcast_try_recv(rx, &m, NULL), EK_ENOMEM);
    assert_int_equal(ek_broadcast_try_recv(rx, &m, NULL), EK_EEMPTY);
    ek_broadcast_sender_drop(tx);
    ek_broadcast_receiver_drop(rx);
}

static void test_bad_arguments_and_alloc_failure(void **s)
{
    (void)s;
    ek_broadcast_sender *tx, *tx2;
    ek_broadcast_receiver *rx, *rx2;
    void *m;
    assert_int_equal(ek_broadcast_new(0, NULL, NULL, &tx, &rx), EK_EINVAL);
    assert_int_equal(ek_broadcast_new(1, NULL, NULL, NULL, &rx), EK_EINVAL);
    assert_int_equal(ek_broadcast_send(NULL, NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_broadcast_try_recv(NULL, &m, NULL), EK_EINVAL);
    assert_int_equal(ek_broadcast_recv(NULL, NULL, &m, NULL), EK_EINVAL);
    assert_int_equal(ek_broadcast_blocking_recv(NULL, &m, NULL), EK_EINVAL);
    assert_int_equal(ek_broadcast_subscribe(NULL, &rx), EK_EINVAL);
    assert_int_equal(ek_broadcast_sender_clone(NULL, &tx), EK_EINVAL);
    assert_int_equal(ek_broadcast_receiver_clone(NULL, &rx), EK_EINVAL);
    ek_broadcast_sender_drop(NULL);
    ek_broadcast_receiver_drop(NULL);
    long live = ekt_alloc_leaked();
    for (long i = 0;; i++) {
        ekt_alloc_fail_here_after(i);
        int rc = ek_broadcast_new(3, NULL, NULL, &tx, &rx);
        ekt_alloc_fail_here_after(-1);
        if (rc == EK_OK) break;
        assert_int_equal(rc, EK_ENOMEM);
        assert_int_equal(ekt_alloc_leaked(), live);
        assert_true(i < 6);
    }
    assert_int_equal(ek_broadcast_send((ek_broadcast_sender *)rx, NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_broadcast_recv(rx, NULL, &m, NULL), EK_EINVAL);
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_broadcast_subscribe(tx, &rx2), EK_ENOMEM);
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_broadcast_receiver_clone(rx, &rx2), EK_ENOMEM);
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_broadcast_sender_clone(tx, &tx2), EK_ENOMEM);
    assert_int_equal(ek_broadcast_sender_clone(tx, &tx2), EK_OK);
    ek_broadcast_sender_drop(tx);
    ek_broadcast_sender_drop(tx2);
    ek_broadcast_receiver_drop(rx);
    assert_int_equal(ekt_alloc_leaked(), live);
}

/* ---- tasks ---- */
typedef struct recv_task {
    ek_broadcast_receiver *rx;
    atomic_int *pending;
    int want; /* messages to receive */
    long sum;
} recv_task;
static int recv_poll(void *s, ek_cx *cx, void **out)
{
    recv_task *t = s;
    while (t->want > 0) {
        void *m;
        int rc = ek_broadcast_recv(t->rx, cx, &m, NULL);
        if (rc == EK_PENDING) atomic_fetch_add(t->pending, 1);
        if (rc != EK_OK) return rc;
        t->sum += (long)(uintptr_t)m;
        t->want--;
    }
    *out = (void *)t->sum;
    return EK_OK;
}
static void recv_drop(void *s)
{
    recv_task *t = s;
    ek_broadcast_receiver_drop(t->rx);
    free(t);
}

static void test_waiting_receivers_woken_and_abort_loses_nothing(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_broadcast_sender *tx;
    ek_broadcast_receiver *rx;
    assert_int_equal(ek_broadcast_new(8, NULL, NULL, &tx, &rx), EK_OK);
    enum { N = 34 };
    atomic_int pending = 0;
    ek_join *j[N];
    for (int i = 0; i < N; i++) {
        recv_task *t = calloc(1, sizeof *t);
        assert_int_equal(ek_broadcast_receiver_clone(rx, &t->rx), EK_OK);
        t->pending = &pending;
        t->want = 2;
        j[i] = ekt_spawn(rt, recv_poll, recv_drop, t);
    }
    st_wait_for(&pending, N);
    /* abort one waiter: the others and rx still see everything */
    assert_int_equal(ek_join_abort(j[0]), EK_OK);
    assert_int_equal(ekt_join(j[0], NULL), EK_ECANCELED);
    assert_int_equal(ek_broadcast_send(tx, (void *)3, NULL), EK_OK);
    assert_int_equal(ek_broadcast_send(tx, (void *)4, NULL), EK_OK);
    for (int i = 1; i < N; i++) {
        void *out;
        assert_int_equal(ekt_join(j[i], &out), EK_OK);
        assert_int_equal((long)(uintptr_t)out, 7);
    }
    void *m;
    assert_int_equal(ek_broadcast_blocking_recv(rx, &m, NULL), EK_OK);
    assert_ptr_equal(m, (void *)3);
    ek_broadcast_sender_drop(tx);
    ek_broadcast_receiver_drop(rx);
    ekt_rt_free_checked(rt);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, ekt_setup, ekt_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_every_receiver_gets_each_message_once),
        T(test_recv_with_null_out_skips_without_a_copy),
        T(test_lagging_receiver_gets_elagged_with_count),
        T(test_no_receivers_send_fails_and_drop_releases_share),
        T(test_clone_error_skips_message),
        T(test_bad_arguments_and_alloc_failure),
        T(test_waiting_receivers_woken_and_abort_loses_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
