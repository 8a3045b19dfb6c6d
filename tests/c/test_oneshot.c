/* test_oneshot.c - oneshot channel: every operation, drop orders, blocking
 * receive, cancellation, allocation failure, and a cross-thread race stress. */
#include "sync_util.h"

/* ---- a task that receives (optionally owning the receiver) ---- */
typedef struct recv_task {
    ek_oneshot_receiver *rx;
    atomic_int *pending;
    bool own_rx;
} recv_task;

static int recv_poll(void *s, ek_cx *cx, void **out)
{
    recv_task *t = s;
    int rc = ek_oneshot_recv(t->rx, cx, out);
    if (rc == EK_PENDING) atomic_fetch_add(t->pending, 1);
    return rc;
}
static void recv_drop(void *s)
{
    recv_task *t = s;
    if (t->own_rx) ek_oneshot_receiver_drop(t->rx);
    free(t);
}
static ek_join *spawn_recv(ek_runtime *rt, ek_oneshot_receiver *rx, atomic_int *pending, bool own)
{
    recv_task *t = malloc(sizeof *t);
    t->rx = rx;
    t->pending = pending;
    t->own_rx = own;
    return ekt_spawn(rt, recv_poll, recv_drop, t);
}

/* ------------------------------------------------------------------------ */

static void test_send_then_try_recv_delivers_value(void **s)
{
    (void)s;
    ek_oneshot_sender *tx;
    ek_oneshot_receiver *rx;
    assert_int_equal(ek_oneshot_new(st_msg_drop, &tx, &rx), EK_OK);
    void *out = NULL;
    assert_int_equal(ek_oneshot_try_recv(rx, &out), EK_EEMPTY);
    assert_int_equal(ek_oneshot_sender_is_closed(tx), 0);
    void *m = st_msg(7);
    assert_int_equal(ek_oneshot_send(tx, m), EK_OK);
    assert_int_equal(ek_oneshot_try_recv(rx, &out), EK_OK);
    assert_ptr_equal(out, m);
    /* Already received: the channel is spent. */
    assert_int_equal(ek_oneshot_try_recv(rx, &out), EK_ECLOSED);
    ek_oneshot_receiver_drop(rx);
    free(m);
}

static void test_sender_drop_gives_closed(void **s)
{
    (void)s;
    ek_oneshot_sender *tx;
    ek_oneshot_receiver *rx;
    assert_int_equal(ek_oneshot_new(NULL, &tx, &rx), EK_OK);
    ek_oneshot_sender_drop(tx);
    void *out = (void *)1;
    assert_int_equal(ek_oneshot_try_recv(rx, &out), EK_ECLOSED);
    assert_ptr_equal(out, (void *)1);
    assert_int_equal(ek_oneshot_blocking_recv(rx, &out), EK_ECLOSED);
    ek_oneshot_receiver_drop(rx);
}

static void test_receiver_drop_fails_send_and_returns_message(void **s)
{
    (void)s;
    ek_oneshot_sender *tx;
    ek_oneshot_receiver *rx;
    assert_int_equal(ek_oneshot_new(st_msg_drop, &tx, &rx), EK_OK);
    ek_oneshot_receiver_drop(rx);
    assert_int_equal(ek_oneshot_sender_is_closed(tx), 1);
    atomic_store(&st_msg_drops, 0);
    void *m = st_msg(1);
    assert_int_equal(ek_oneshot_send(tx, m), EK_ECLOSED); /* consumes tx, not m */
    assert_int_equal(atomic_load(&st_msg_drops), 0);
    free(m);
}

static void test_unreceived_value_goes_to_drop_fn(void **s)
{
    (void)s;
    ek_oneshot_sender *tx;
    ek_oneshot_receiver *rx;
    assert_int_equal(ek_oneshot_new(st_msg_drop, &tx, &rx), EK_OK);
    atomic_store(&st_msg_drops, 0);
    assert_int_equal(ek_oneshot_send(tx, st_msg(3)), EK_OK);
    ek_oneshot_receiver_drop(rx);
    assert_int_equal(atomic_load(&st_msg_drops), 1);
}

/* A receive with nowhere to put the value hands it to the drop function. */
static void test_recv_with_null_out_passes_value_to_drop_fn(void **s)
{
    (void)s;
    atomic_store(&st_msg_drops, 0);
    for (int how = 0; how < 2; how++) {
        ek_oneshot_sender *tx;
        ek_oneshot_receiver *rx;
        assert_int_equal(ek_oneshot_new(st_msg_drop, &tx, &rx), EK_OK);
        assert_int_equal(ek_oneshot_send(tx, st_msg(4)), EK_OK);
        int rc = how == 0 ? ek_oneshot_try_recv(rx, NULL) : ek_oneshot_blocking_recv(rx, NULL);
        assert_int_equal(rc, EK_OK);
        assert_int_equal(atomic_load(&st_msg_drops), how + 1); /* at once */
        assert_int_equal(ek_oneshot_try_recv(rx, NULL), EK_ECLOSED);
        ek_oneshot_receiver_drop(rx);
        assert_int_equal(atomic_load(&st_msg_drops), how + 1); /* exactly once */
    }
}

static void test_close_keeps_sent_value_and_fails_later_send(void **s)
{
    (void)s;
    ek_oneshot_sender *tx;
    ek_oneshot_receiver *rx;
    /* sent, then closed: still receivable */
    assert_int_equal(ek_oneshot_new(st_msg_drop, &tx, &rx), EK_OK);
    void *m = st_msg(5), *out = NULL;
    assert_int_equal(ek_oneshot_send(tx, m), EK_OK);
    assert_int_equal(ek_oneshot_close(rx), EK_OK);
    assert_int_equal(ek_oneshot_close(rx), EK_OK); /* idempotent */
    assert_int_equal(ek_oneshot_try_recv(rx, &out), EK_OK);
    assert_ptr_equal(out, m);
    free(m);
    ek_oneshot_receiver_drop(rx);
    /* closed, then sent: the send fails */
    assert_int_equal(ek_oneshot_new(st_msg_drop, &tx, &rx), EK_OK);
    assert_int_equal(ek_oneshot_close(rx), EK_OK);
    assert_int_equal(ek_oneshot_sender_is_closed(tx), 1);
    m = st_msg(6);
    assert_int_equal(ek_oneshot_send(tx, m), EK_ECLOSED);
    assert_int_equal(ek_oneshot_try_recv(rx, &out), EK_ECLOSED);
    free(m);
    ek_oneshot_receiver_drop(rx);
}

static void test_bad_handles_give_einval(void **s)
{
    (void)s;
    ek_oneshot_sender *tx;
    ek_oneshot_receiver *rx;
    void *out;
    assert_int_equal(ek_oneshot_new(NULL, NULL, &rx), EK_EINVAL);
    assert_int_equal(ek_oneshot_new(NULL, &tx, NULL), EK_EINVAL);
    assert_int_equal(ek_oneshot_send(NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_oneshot_try_recv(NULL, &out), EK_EINVAL);
    assert_int_equal(ek_oneshot_blocking_recv(NULL, &out), EK_EINVAL);
    assert_int_equal(ek_oneshot_close(NULL), EK_EINVAL);
    assert_int_equal(ek_oneshot_sender_is_closed(NULL), EK_EINVAL);
    assert_int_equal(ek_oneshot_recv(NULL, NULL, &out), EK_EINVAL);
    assert_int_equal(ek_oneshot_sender_poll_closed(NULL, NULL), EK_EINVAL);
    ek_oneshot_sender_drop(NULL);
    ek_oneshot_receiver_drop(NULL);
    assert_int_equal(ek_oneshot_new(NULL, &tx, &rx), EK_OK);
    /* A receiver is not a sender and vice versa. */
    assert_int_equal(ek_oneshot_send((ek_oneshot_sender *)rx, NULL), EK_EINVAL);
    assert_int_equal(ek_oneshot_try_recv((ek_oneshot_receiver *)tx, &out), EK_EINVAL);
    /* A consumed sender is stale while the cell lives: EK_EINVAL, no crash. */
    assert_int_equal(ek_oneshot_send(tx, NULL), EK_OK);
    assert_int_equal(ek_oneshot_send(tx, NULL), EK_EINVAL);
    ek_oneshot_sender_drop(tx); /* ignored */
    ek_oneshot_receiver_drop(rx);
}

static void test_alloc_failure_gives_enomem(void **s)
{
    (void)s;
    ek_oneshot_sender *tx = NULL;
    ek_oneshot_receiver *rx = NULL;
    long live = ekt_alloc_leaked();
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_oneshot_new(NULL, &tx, &rx), EK_ENOMEM);
    ekt_alloc_fail_here_after(-1);
    assert_int_equal(ekt_alloc_leaked(), live);
    assert_int_equal(ek_oneshot_new(NULL, &tx, &rx), EK_OK);
    ek_oneshot_sender_drop(tx);
    ek_oneshot_receiver_drop(rx);
}

static void async_recv_woken_by_send(int flavor)
{
    ek_runtime *rt = ekt_rt(flavor, 2);
    ek_oneshot_sender *tx;
    ek_oneshot_receiver *rx;
    assert_int_equal(ek_oneshot_new(st_msg_drop, &tx, &rx), EK_OK);
    atomic_int pending = 0;
    ek_join *j = spawn_recv(rt, rx, &pending, true);
    if (flavor == EK_FLAVOR_MULTI_THREAD) st_wait_for(&pending, 1);
    void *m = st_msg(11), *out = NULL;
    assert_int_equal(ek_oneshot_send(tx, m), EK_OK);
    assert_int_equal(ekt_join(j, &out), EK_OK);
    assert_ptr_equal(out, m);
    free(m);
    ekt_rt_free_checked(rt);
}
static void test_async_recv_is_woken_by_send(void **s)
{
    (void)s;
    async_recv_woken_by_send(EK_FLAVOR_MULTI_THREAD);
    async_recv_woken_by_send(EK_FLAVOR_CURRENT_THREAD);
}

static void test_async_recv_is_woken_by_sender_drop(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_oneshot_sender *tx;
    ek_oneshot_receiver *rx;
    assert_int_equal(ek_oneshot_new(NULL, &tx, &rx), EK_OK);
    atomic_int pending = 0;
    ek_join *j = spawn_recv(rt, rx, &pending, true);
    st_wait_for(&pending, 1);
    ek_oneshot_sender_drop(tx);
    assert_int_equal(ekt_join(j, NULL), EK_ECLOSED);
    ekt_rt_free_checked(rt);
}

/* Aborting a task pending in recv loses nothing: the value sent afterwards is
 * still there for whoever holds the receiver. */
static void test_abort_pending_recv_loses_no_value(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_oneshot_sender *tx;
    ek_oneshot_receiver *rx;
    assert_int_equal(ek_oneshot_new(st_msg_drop, &tx, &rx), EK_OK);
    atomic_int pending = 0;
    ek_join *j = spawn_recv(rt, rx, &pending, false);
    st_wait_for(&pending, 1);
    assert_int_equal(ek_join_abort(j), EK_OK);
    assert_int_equal(ekt_join(j, NULL), EK_ECANCELED);
    void *m = st_msg(9), *out = NULL;
    assert_int_equal(ek_oneshot_send(tx, m), EK_OK);
    assert_int_equal(ek_oneshot_try_recv(rx, &out), EK_OK);
    assert_ptr_equal(out, m);
    free(m);
    ek_oneshot_receiver_drop(rx);
    ekt_rt_free_checked(rt);
}

/* Aborting a task that owns the receiver drops it: the sender sees the close
 * and gets its value back; a value already sent goes to the drop function. */
static void test_abort_task_owning_receiver_closes_channel(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_oneshot_sender *tx;
    ek_oneshot_receiver *rx;
    assert_int_equal(ek_oneshot_new(st_msg_drop, &tx, &rx), EK_OK);
    atomic_int pending = 0;
    ek_join *j = spawn_recv(rt, rx, &pending, true);
    st_wait_for(&pending, 1);
    assert_int_equal(ek_join_abort(j), EK_OK);
    assert_int_equal(ekt_join(j, NULL), EK_ECANCELED);
    assert_int_equal(ek_oneshot_sender_is_closed(tx), 1);
    void *m = st_msg(1);
    assert_int_equal(ek_oneshot_send(tx, m), EK_ECLOSED);
    free(m);
    ekt_rt_free_checked(rt);
}

/* ---- poll_closed ---- */
typedef struct closed_task {
    ek_oneshot_sender *tx;
    atomic_int *pending;
} closed_task;
static int closed_poll(void *s, ek_cx *cx, void **out)
{
    closed_task *t = s;
    (void)out;
    int rc = ek_oneshot_sender_poll_closed(t->tx, cx);
    if (rc == EK_PENDING) atomic_fetch_add(t->pending, 1);
    return rc;
}
static void closed_drop(void *s)
{
    closed_task *t = s;
    ek_oneshot_sender_drop(t->tx);
    free(t);
}

static void test_sender_poll_closed_completes_on_receiver_drop(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_oneshot_sender *tx;
    ek_oneshot_receiver *rx;
    assert_int_equal(ek_oneshot_new(NULL, &tx, &rx), EK_OK);
    atomic_int pending = 0;
    closed_task *t = malloc(sizeof *t);
    t->tx = tx;
    t->pending = &pending;
    ek_join *j = ekt_spawn(rt, closed_poll, closed_drop, t);
    st_wait_for(&pending, 1);
    st_settle();
    assert_int_equal(ek_join_is_finished(j), 0);
    ek_oneshot_receiver_drop(rx);
    assert_int_equal(ekt_join(j, NULL), EK_OK);
    ekt_rt_free_checked(rt);
}

/* ---- blocking receive ---- */
static void *send_later(void *arg)
{
    usleep(10 * 1000);
    assert_int_equal(ek_oneshot_send(arg, (void *)0x77), EK_OK);
    return NULL;
}

static void test_blocking_recv_waits_for_send(void **s)
{
    (void)s;
    ek_oneshot_sender *tx;
    ek_oneshot_receiver *rx;
    assert_int_equal(ek_oneshot_new(NULL, &tx, &rx), EK_OK);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, send_later, tx), 0);
    void *out = NULL;
    assert_int_equal(ek_oneshot_blocking_recv(rx, &out), EK_OK);
    assert_ptr_equal(out, (void *)0x77);
    pthread_join(th, NULL);
    ek_oneshot_receiver_drop(rx);
}

static int blocking_in_task_poll(void *s, ek_cx *cx, void **out)
{
    (void)cx;
    (void)out;
    return ek_oneshot_blocking_recv(s, NULL);
}

static void test_blocking_recv_on_worker_is_edeadlk(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_oneshot_sender *tx;
    ek_oneshot_receiver *rx;
    assert_int_equal(ek_oneshot_new(NULL, &tx, &rx), EK_OK);
    ek_join *j = NULL;
    assert_int_equal(ek_spawn(rt, blocking_in_task_poll, ekt_noop_drop, rx, NULL, &j), EK_OK);
    assert_int_equal(ekt_join(j, NULL), EK_EDEADLK);
    assert_int_equal(ekt_block_on_fn(rt, blocking_in_task_poll, rx, NULL), EK_EDEADLK);
    ek_oneshot_sender_drop(tx);
    ek_oneshot_receiver_drop(rx);
    ekt_rt_free_checked(rt);
}

/* ---- race stress: a foreign thread sends while the task registers ---- */
typedef struct race {
    ek_oneshot_sender *tx;
    int delay;
} race;
static void *race_send(void *arg)
{
    race *r = arg;
    for (volatile int i = 0; i < r->delay; i++) {
    }
    ek_oneshot_send(r->tx, (void *)0x1);
    return NULL;
}

static void test_send_races_with_async_and_blocking_recv(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    long n = ekt_scale(4000);
    for (long i = 0; i < n; i++) {
        ek_oneshot_sender *tx;
        ek_oneshot_receiver *rx;
        assert_int_equal(ek_oneshot_new(NULL, &tx, &rx), EK_OK);
        race r = {tx, (int)(i % 64) * 20};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, race_send, &r), 0);
        void *out = NULL;
        if (i % 2 == 0) {
            atomic_int pending = 0;
            assert_int_equal(ekt_join(spawn_recv(rt, rx, &pending, true), &out), EK_OK);
        } else {
            assert_int_equal(ek_oneshot_blocking_recv(rx, &out), EK_OK);
            ek_oneshot_receiver_drop(rx);
        }
        assert_ptr_equal(out, (void *)0x1);
        pthread_join(th, NULL);
    }
    ekt_rt_free_checked(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_then_try_recv_delivers_value, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_sender_drop_gives_closed, ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_receiver_drop_fails_send_and_returns_message,
                                        ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_unreceived_value_goes_to_drop_fn, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_recv_with_null_out_passes_value_to_drop_fn, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_close_keeps_sent_value_and_fails_later_send, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_bad_handles_give_einval, ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure_gives_enomem, ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_async_recv_is_woken_by_send, ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_async_recv_is_woken_by_sender_drop, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_abort_pending_recv_loses_no_value, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_abort_task_owning_receiver_closes_channel, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_sender_poll_closed_completes_on_receiver_drop,
                                        ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_blocking_recv_waits_for_send, ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_blocking_recv_on_worker_is_edeadlk, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_send_races_with_async_and_blocking_recv, ekt_setup,
                                        ekt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
