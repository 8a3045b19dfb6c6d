/* test_mpsc.c - mpsc channels: every operation and error, close/drop orders,
 * permits, FIFO fairness of waiting senders, cancellation at every await point,
 * blocking ends, allocation failure, and the 8-producer stress. */
#include "sync_util.h"

static ek_mpsc_sender *tx_clone(ek_mpsc_sender *tx)
{
    ek_mpsc_sender *c = NULL;
    assert_int_equal(ek_mpsc_sender_clone(tx, &c), EK_OK);
    return c;
}

/* ------------------------------------------------------------------------ */
/* Without a runtime                                                        */
/* ------------------------------------------------------------------------ */

static void test_bounded_try_send_fills_then_efull_and_fifo(void **s)
{
    (void)s;
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(3, NULL, &tx, &rx), EK_OK);
    void *out = NULL;
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_EEMPTY);
    for (uintptr_t i = 1; i <= 3; i++) assert_int_equal(ek_mpsc_try_send(tx, (void *)i), EK_OK);
    assert_int_equal(ek_mpsc_try_send(tx, (void *)4), EK_EFULL);
    assert_int_equal(ek_mpsc_len(rx), 3);
    for (uintptr_t i = 1; i <= 3; i++) {
        assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_OK);
        assert_ptr_equal(out, (void *)i);
    }
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_EEMPTY);
    /* Room again; the ring wraps around. */
    for (uintptr_t i = 10; i < 100; i++) {
        assert_int_equal(ek_mpsc_try_send(tx, (void *)i), EK_OK);
        assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_OK);
        assert_ptr_equal(out, (void *)i);
    }
    ek_mpsc_sender_drop(tx);
    ek_mpsc_receiver_drop(rx);
}

static void test_unbounded_send_never_waits_and_keeps_order(void **s)
{
    (void)s;
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_unbounded(NULL, &tx, &rx), EK_OK);
    for (uintptr_t i = 1; i <= 1000; i++) {
        /* cx may be NULL: an unbounded send never waits */
        assert_int_equal(ek_mpsc_send(tx, NULL, (void *)i), EK_OK);
    }
    assert_int_equal(ek_mpsc_len(rx), 1000);
    void *out;
    for (uintptr_t i = 1; i <= 1000; i++) {
        assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_OK);
        assert_ptr_equal(out, (void *)i);
    }
    ek_mpsc_sender_drop(tx);
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_ECLOSED);
    ek_mpsc_receiver_drop(rx);
}

static void test_last_sender_drop_closes_after_drain(void **s)
{
    (void)s;
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(4, NULL, &tx, &rx), EK_OK);
    ek_mpsc_sender *tx2 = tx_clone(tx);
    assert_int_equal(ek_mpsc_try_send(tx, (void *)1), EK_OK);
    assert_int_equal(ek_mpsc_try_send(tx2, (void *)2), EK_OK);
    ek_mpsc_sender_drop(tx);
    void *out;
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_OK);
    ek_mpsc_sender_drop(tx2);
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_OK);
    assert_ptr_equal(out, (void *)2);
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_ECLOSED);
    assert_int_equal(ek_mpsc_blocking_recv(rx, &out), EK_ECLOSED);
    ek_mpsc_receiver_drop(rx);
}

static void test_close_fails_sends_but_keeps_queue(void **s)
{
    (void)s;
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(4, st_msg_drop, &tx, &rx), EK_OK);
    void *a = st_msg(1), *b = st_msg(2), *out;
    assert_int_equal(ek_mpsc_try_send(tx, a), EK_OK);
    assert_int_equal(ek_mpsc_sender_is_closed(tx), 0);
    assert_int_equal(ek_mpsc_close(rx), EK_OK);
    assert_int_equal(ek_mpsc_close(rx), EK_OK);
    assert_int_equal(ek_mpsc_sender_is_closed(tx), 1);
    assert_int_equal(ek_mpsc_try_send(tx, b), EK_ECLOSED); /* b still ours */
    assert_int_equal(ek_mpsc_blocking_send(tx, b), EK_ECLOSED);
    ek_mpsc_permit *p;
    assert_int_equal(ek_mpsc_try_reserve(tx, &p), EK_ECLOSED);
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_OK);
    assert_ptr_equal(out, a);
    /* closed + drained: closed even though a sender is alive */
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_ECLOSED);
    free(a);
    free(b);
    ek_mpsc_sender_drop(tx);
    ek_mpsc_receiver_drop(rx);
}

static void test_receiver_drop_drops_every_queued_message(void **s)
{
    (void)s;
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_unbounded(st_msg_drop, &tx, &rx), EK_OK);
    atomic_store(&st_msg_drops, 0);
    for (int i = 0; i < 40; i++) assert_int_equal(ek_mpsc_try_send(tx, st_msg(i)), EK_OK);
    ek_mpsc_receiver_drop(rx);
    assert_int_equal(atomic_load(&st_msg_drops), 40);
    void *m = st_msg(99);
    assert_int_equal(ek_mpsc_try_send(tx, m), EK_ECLOSED);
    assert_int_equal(ek_mpsc_sender_is_closed(tx), 1);
    assert_int_equal(atomic_load(&st_msg_drops), 40);
    free(m);
    ek_mpsc_sender_drop(tx);
    /* and the other order: senders first, then the receiver with a queue */
    assert_int_equal(ek_mpsc_bounded(8, st_msg_drop, &tx, &rx), EK_OK);
    for (int i = 0; i < 5; i++) assert_int_equal(ek_mpsc_try_send(tx, st_msg(i)), EK_OK);
    ek_mpsc_sender_drop(tx);
    ek_mpsc_receiver_drop(rx);
    assert_int_equal(atomic_load(&st_msg_drops), 45);
}

static int recv_null_poll(void *state, ek_cx *cx, void **out)
{
    *out = NULL;
    return ek_mpsc_recv(state, cx, NULL);
}

/* A receive with nowhere to put the message hands it to the drop function. */
static void test_recv_with_null_out_passes_message_to_drop_fn(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(4, st_msg_drop, &tx, &rx), EK_OK);
    atomic_store(&st_msg_drops, 0);
    for (int i = 0; i < 4; i++) assert_int_equal(ek_mpsc_try_send(tx, st_msg(i)), EK_OK);
    assert_int_equal(ek_mpsc_try_recv(rx, NULL), EK_OK);
    assert_int_equal(atomic_load(&st_msg_drops), 1);
    assert_int_equal(ek_mpsc_blocking_recv(rx, NULL), EK_OK);
    assert_int_equal(atomic_load(&st_msg_drops), 2);
    assert_int_equal(ekt_block_on_fn(rt, recv_null_poll, rx, NULL), EK_OK);
    assert_int_equal(atomic_load(&st_msg_drops), 3);
    void *m = NULL;
    assert_int_equal(ek_mpsc_try_recv(rx, &m), EK_OK); /* the rest is untouched */
    assert_int_equal(st_msg_val(m), 3);
    free(m);
    assert_int_equal(ek_mpsc_try_recv(rx, NULL), EK_EEMPTY);
    ek_mpsc_sender_drop(tx);
    ek_mpsc_receiver_drop(rx);
    assert_int_equal(atomic_load(&st_msg_drops), 3);
    ekt_rt_free_checked(rt);
}

static void test_permit_reserves_a_slot(void **s)
{
    (void)s;
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(1, st_msg_drop, &tx, &rx), EK_OK);
    ek_mpsc_sender *tx2 = tx_clone(tx);
    ek_mpsc_permit *p = NULL, *p2 = NULL;
    assert_int_equal(ek_mpsc_try_reserve(tx, &p), EK_OK);
    /* one permit per sender; the slot is taken for everyone else */
    assert_int_equal(ek_mpsc_try_reserve(tx, &p2), EK_EBUSY);
    assert_int_equal(ek_mpsc_try_send(tx, (void *)1), EK_EBUSY);
    assert_int_equal(ek_mpsc_try_send(tx2, (void *)1), EK_EFULL);
    assert_int_equal(ek_mpsc_try_reserve(tx2, &p2), EK_EFULL);
    /* dropping the permit gives the slot back */
    ek_mpsc_permit_drop(p);
    assert_int_equal(ek_mpsc_permit_send(p, (void *)1), EK_EINVAL); /* spent */
    assert_int_equal(ek_mpsc_try_reserve(tx2, &p2), EK_OK);
    void *m = st_msg(5), *out;
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_EEMPTY);
    assert_int_equal(ek_mpsc_permit_send(p2, m), EK_OK);
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_OK);
    assert_ptr_equal(out, m);
    free(m);
    ek_mpsc_sender_drop(tx);
    ek_mpsc_sender_drop(tx2);
    ek_mpsc_receiver_drop(rx);
}

static void test_permit_outlives_dropped_sender_and_closed_receiver(void **s)
{
    (void)s;
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(2, st_msg_drop, &tx, &rx), EK_OK);
    ek_mpsc_permit *p;
    assert_int_equal(ek_mpsc_try_reserve(tx, &p), EK_OK);
    ek_mpsc_sender_drop(tx); /* the permit keeps the sender (and channel) open */
    ek_mpsc_close(rx);
    void *out;
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_EEMPTY); /* a permit may still send */
    void *m = st_msg(8);
    assert_int_equal(ek_mpsc_permit_send(p, m), EK_OK);
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_OK);
    assert_ptr_equal(out, m);
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_ECLOSED);
    free(m);
    ek_mpsc_receiver_drop(rx);

    /* permit used after the receiver is dropped: the message is dropped */
    assert_int_equal(ek_mpsc_unbounded(st_msg_drop, &tx, &rx), EK_OK);
    assert_int_equal(ek_mpsc_try_reserve(tx, &p), EK_OK);
    ek_mpsc_receiver_drop(rx);
    atomic_store(&st_msg_drops, 0);
    assert_int_equal(ek_mpsc_permit_send(p, st_msg(1)), EK_ECLOSED);
    assert_int_equal(atomic_load(&st_msg_drops), 1);
    ek_mpsc_sender_drop(tx);
}

static void test_bad_arguments_give_einval(void **s)
{
    (void)s;
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    ek_mpsc_permit *p;
    void *out;
    assert_int_equal(ek_mpsc_bounded(0, NULL, &tx, &rx), EK_EINVAL);
    assert_int_equal(ek_mpsc_bounded(1, NULL, NULL, &rx), EK_EINVAL);
    assert_int_equal(ek_mpsc_unbounded(NULL, &tx, NULL), EK_EINVAL);
    assert_int_equal(ek_mpsc_send(NULL, NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_mpsc_try_send(NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_mpsc_blocking_send(NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_mpsc_reserve(NULL, NULL, &p), EK_EINVAL);
    assert_int_equal(ek_mpsc_try_reserve(NULL, &p), EK_EINVAL);
    assert_int_equal(ek_mpsc_permit_send(NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_mpsc_cancel(NULL), EK_EINVAL);
    assert_int_equal(ek_mpsc_sender_clone(NULL, &tx), EK_EINVAL);
    assert_int_equal(ek_mpsc_sender_is_closed(NULL), EK_EINVAL);
    assert_int_equal(ek_mpsc_recv(NULL, NULL, &out), EK_EINVAL);
    assert_int_equal(ek_mpsc_try_recv(NULL, &out), EK_EINVAL);
    assert_int_equal(ek_mpsc_blocking_recv(NULL, &out), EK_EINVAL);
    assert_int_equal(ek_mpsc_close(NULL), EK_EINVAL);
    assert_int_equal(ek_mpsc_len(NULL), EK_EINVAL);
    ek_mpsc_permit_drop(NULL);
    ek_mpsc_sender_drop(NULL);
    ek_mpsc_receiver_drop(NULL);
    assert_int_equal(ek_mpsc_bounded(1, NULL, &tx, &rx), EK_OK);
    /* wrong types, missing cx on a bounded send */
    assert_int_equal(ek_mpsc_try_send((ek_mpsc_sender *)rx, NULL), EK_EINVAL);
    assert_int_equal(ek_mpsc_try_recv((ek_mpsc_receiver *)tx, &out), EK_EINVAL);
    assert_int_equal(ek_mpsc_send(tx, NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_mpsc_sender_clone(tx, NULL), EK_EINVAL);
    assert_int_equal(ek_mpsc_try_reserve(tx, NULL), EK_EINVAL);
    assert_int_equal(ek_mpsc_cancel(tx), EK_OK); /* not waiting: a no-op */
    ek_mpsc_sender_drop(tx);
    ek_mpsc_receiver_drop(rx);
}

/* Every allocation of every operation fails once: EK_ENOMEM, nothing leaks,
 * and the message stays the caller's. */
static void test_alloc_failure_at_each_allocation(void **s)
{
    (void)s;
    long live = ekt_alloc_leaked();
    ek_mpsc_sender *tx = NULL, *tx2 = NULL;
    ek_mpsc_receiver *rx = NULL;
    /* channel creation: two allocations (channel, first sender) */
    for (long i = 0;; i++) {
        ekt_alloc_fail_here_after(i);
        int rc = ek_mpsc_bounded(4, st_msg_drop, &tx, &rx);
        ekt_alloc_fail_here_after(-1);
        if (rc == EK_OK) break;
        assert_int_equal(rc, EK_ENOMEM);
        assert_int_equal(ekt_alloc_leaked(), live);
        assert_true(i < 5);
    }
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_mpsc_sender_clone(tx, &tx2), EK_ENOMEM);
    /* the first send allocates the ring */
    void *m = st_msg(1), *out;
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_mpsc_try_send(tx, m), EK_ENOMEM);
    ekt_alloc_fail_here_after(-1);
    /* the slot is still assigned to tx: another sender sees only 3 free */
    assert_int_equal(ek_mpsc_try_send(tx, m), EK_OK);
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_OK);
    assert_ptr_equal(out, m);
    free(m);
    ek_mpsc_sender_drop(tx);
    ek_mpsc_receiver_drop(rx);
    assert_int_equal(ekt_alloc_leaked(), live);

    /* unbounded growth failure: the message is not consumed */
    assert_int_equal(ek_mpsc_unbounded(st_msg_drop, &tx, &rx), EK_OK);
    for (int i = 0; i < 16; i++) assert_int_equal(ek_mpsc_try_send(tx, st_msg(i)), EK_OK);
    m = st_msg(16);
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_mpsc_try_send(tx, m), EK_ENOMEM);
    ek_mpsc_permit *p;
    assert_int_equal(ek_mpsc_try_reserve(tx, &p), EK_OK);
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_mpsc_permit_send(p, m), EK_ENOMEM); /* permit spent, m ours */
    ekt_alloc_fail_here_after(-1);
    assert_int_equal(ek_mpsc_try_send(tx, m), EK_OK);
    atomic_store(&st_msg_drops, 0);
    ek_mpsc_sender_drop(tx);
    ek_mpsc_receiver_drop(rx);
    assert_int_equal(atomic_load(&st_msg_drops), 17);
    assert_int_equal(ekt_alloc_leaked(), live);
}

/* ------------------------------------------------------------------------ */
/* In tasks                                                                 */
/* ------------------------------------------------------------------------ */

/* A task that sends `count` messages (values first..first+count-1), via send or
 * reserve+permit_send. Owns its sender; owns the in-flight message. */
typedef struct send_task {
    ek_mpsc_sender *tx;
    atomic_int *pending;
    int next, end;
    bool use_reserve;
    void *msg; /* heap message currently being sent, or NULL */
} send_task;

static int send_poll(void *s, ek_cx *cx, void **out)
{
    send_task *t = s;
    (void)out;
    while (t->next < t->end) {
        if (t->msg == NULL) t->msg = st_msg(t->next);
        int rc;
        if (t->use_reserve) {
            ek_mpsc_permit *p;
            rc = ek_mpsc_reserve(t->tx, cx, &p);
            if (rc == EK_OK) rc = ek_mpsc_permit_send(p, t->msg);
        } else {
            rc = ek_mpsc_send(t->tx, cx, t->msg);
        }
        if (rc == EK_PENDING) {
            atomic_fetch_add(t->pending, 1);
            return EK_PENDING;
        }
        if (rc != EK_OK) return rc;
        t->msg = NULL;
        t->next++;
    }
    return EK_OK;
}
static void send_drop(void *s)
{
    send_task *t = s;
    if (t->msg != NULL) st_msg_drop(t->msg); /* cancelled with a message in hand */
    ek_mpsc_sender_drop(t->tx);
    free(t);
}
static ek_join *spawn_sender(ek_runtime *rt, ek_mpsc_sender *tx, atomic_int *pending, int first,
                             int count, bool use_reserve)
{
    send_task *t = calloc(1, sizeof *t);
    t->tx = tx;
    t->pending = pending;
    t->next = first;
    t->end = first + count;
    t->use_reserve = use_reserve;
    return ekt_spawn(rt, send_poll, send_drop, t);
}

/* A task receiving one message (does not own the receiver). */
typedef struct recv_task {
    ek_mpsc_receiver *rx;
    atomic_int *pending;
} recv_task;
static int recv_poll(void *s, ek_cx *cx, void **out)
{
    recv_task *t = s;
    int rc = ek_mpsc_recv(t->rx, cx, out);
    if (rc == EK_PENDING) atomic_fetch_add(t->pending, 1);
    return rc;
}

static void test_send_waits_for_room_in_task(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(1, st_msg_drop, &tx, &rx), EK_OK);
    atomic_int pending = 0;
    ek_join *j = spawn_sender(rt, tx, &pending, 0, 3, false);
    st_wait_for(&pending, 1);
    void *out;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ek_mpsc_blocking_recv(rx, &out), EK_OK);
        assert_int_equal(st_msg_val(out), i);
        free(out);
    }
    assert_int_equal(ekt_join(j, NULL), EK_OK);
    assert_int_equal(ek_mpsc_blocking_recv(rx, &out), EK_ECLOSED);
    ek_mpsc_receiver_drop(rx);
    ekt_rt_free_checked(rt);
}

static void recv_woken(int flavor)
{
    ek_runtime *rt = ekt_rt(flavor, 2);
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(2, NULL, &tx, &rx), EK_OK);
    atomic_int pending = 0;
    recv_task t = {rx, &pending};
    ek_join *j = ekt_spawn(rt, recv_poll, ekt_noop_drop, &t);
    if (flavor == EK_FLAVOR_MULTI_THREAD) st_wait_for(&pending, 1);
    assert_int_equal(ek_mpsc_try_send(tx, (void *)5), EK_OK);
    void *out = NULL;
    assert_int_equal(ekt_join(j, &out), EK_OK);
    assert_ptr_equal(out, (void *)5);
    /* and woken by the last sender going away */
    j = ekt_spawn(rt, recv_poll, ekt_noop_drop, &t);
    if (flavor == EK_FLAVOR_MULTI_THREAD) st_wait_for(&pending, 2);
    ek_mpsc_sender_drop(tx);
    assert_int_equal(ekt_join(j, NULL), EK_ECLOSED);
    ek_mpsc_receiver_drop(rx);
    ekt_rt_free_checked(rt);
}
static void test_recv_is_woken_by_send_and_by_last_sender_drop(void **s)
{
    (void)s;
    recv_woken(EK_FLAVOR_MULTI_THREAD);
    recv_woken(EK_FLAVOR_CURRENT_THREAD);
}

/* Waiting senders are served in the order they started waiting, and a
 * newcomer's try_send cannot take a slot from them. */
static void test_waiting_senders_are_served_fifo(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(1, st_msg_drop, &tx, &rx), EK_OK);
    assert_int_equal(ek_mpsc_try_send(tx, st_msg(0)), EK_OK);
    atomic_int pending[3] = {0, 0, 0};
    ek_join *j[3];
    for (int i = 0; i < 3; i++) {
        j[i] = spawn_sender(rt, tx_clone(tx), &pending[i], i + 1, 1, i == 1);
        st_wait_for(&pending[i], 1);
    }
    void *out;
    for (int i = 0; i <= 3; i++) {
        assert_int_equal(ek_mpsc_blocking_recv(rx, &out), EK_OK);
        assert_int_equal(st_msg_val(out), i);
        free(out);
        if (i < 2) {
            void *m = st_msg(100);
            assert_int_equal(ek_mpsc_try_send(tx, m), EK_EFULL); /* slot went to a waiter */
            free(m);
        }
    }
    for (int i = 0; i < 3; i++) assert_int_equal(ekt_join(j[i], NULL), EK_OK);
    ek_mpsc_sender_drop(tx);
    ek_mpsc_receiver_drop(rx);
    ekt_rt_free_checked(rt);
}

/* Abort a task waiting in send (or reserve) on a full channel: its message is
 * released by the task's drop, its place goes to the next waiter, nothing is
 * lost and nothing leaks. */
static void abort_waiting_sender(bool use_reserve)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(1, st_msg_drop, &tx, &rx), EK_OK);
    assert_int_equal(ek_mpsc_try_send(tx, st_msg(0)), EK_OK);
    atomic_int p1 = 0, p2 = 0;
    ek_join *j1 = spawn_sender(rt, tx_clone(tx), &p1, 1, 1, use_reserve);
    st_wait_for(&p1, 1);
    ek_join *j2 = spawn_sender(rt, tx_clone(tx), &p2, 2, 1, use_reserve);
    st_wait_for(&p2, 1);
    atomic_store(&st_msg_drops, 0);
    assert_int_equal(ek_join_abort(j1), EK_OK);
    assert_int_equal(ekt_join(j1, NULL), EK_ECANCELED);
    assert_int_equal(atomic_load(&st_msg_drops), 1); /* message 1 released by the task */
    void *out;
    assert_int_equal(ek_mpsc_blocking_recv(rx, &out), EK_OK);
    assert_int_equal(st_msg_val(out), 0);
    free(out);
    /* The freed slot reached the second waiter, not the aborted one. */
    assert_int_equal(ek_mpsc_blocking_recv(rx, &out), EK_OK);
    assert_int_equal(st_msg_val(out), 2);
    free(out);
    assert_int_equal(ekt_join(j2, NULL), EK_OK);
    /* And the capacity is whole again. */
    assert_int_equal(ek_mpsc_try_send(tx, (void *)1), EK_OK);
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_OK);
    ek_mpsc_sender_drop(tx);
    ek_mpsc_receiver_drop(rx);
    ekt_rt_free_checked(rt);
}
static void test_abort_waiting_send_returns_place(void **s)
{
    (void)s;
    abort_waiting_sender(false);
}
static void test_abort_waiting_reserve_returns_place(void **s)
{
    (void)s;
    abort_waiting_sender(true);
}

static void test_abort_waiting_recv_loses_no_message(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(4, NULL, &tx, &rx), EK_OK);
    atomic_int pending = 0;
    recv_task t = {rx, &pending};
    ek_join *j = ekt_spawn(rt, recv_poll, ekt_noop_drop, &t);
    st_wait_for(&pending, 1);
    assert_int_equal(ek_join_abort(j), EK_OK);
    assert_int_equal(ekt_join(j, NULL), EK_ECANCELED);
    assert_int_equal(ek_mpsc_try_send(tx, (void *)3), EK_OK);
    void *out;
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_OK);
    assert_ptr_equal(out, (void *)3);
    ek_mpsc_sender_drop(tx);
    ek_mpsc_receiver_drop(rx);
    ekt_rt_free_checked(rt);
}

/* Give up a wait after the slot was already assigned (ek_mpsc_cancel), all in
 * one poll so the order is exact. */
static int cancel_after_assignment_poll(void *s, ek_cx *cx, void **out)
{
    (void)s;
    (void)out;
    ek_mpsc_sender *tx, *tx2;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(1, NULL, &tx, &rx), EK_OK);
    tx2 = tx_clone(tx);
    assert_int_equal(ek_mpsc_try_send(tx, (void *)1), EK_OK);
    assert_int_equal(ek_mpsc_send(tx, cx, (void *)2), EK_PENDING);
    assert_int_equal(ek_mpsc_send(tx, cx, (void *)2), EK_PENDING); /* same place */
    void *m;
    assert_int_equal(ek_mpsc_try_recv(rx, &m), EK_OK); /* slot assigned to tx */
    assert_int_equal(ek_mpsc_try_send(tx2, (void *)3), EK_EFULL);
    assert_int_equal(ek_mpsc_cancel(tx), EK_OK); /* ... and given back */
    assert_int_equal(ek_mpsc_try_send(tx2, (void *)3), EK_OK);
    /* a waiter that is closed on gets ECLOSED */
    assert_int_equal(ek_mpsc_send(tx, cx, (void *)4), EK_PENDING);
    assert_int_equal(ek_mpsc_close(rx), EK_OK);
    assert_int_equal(ek_mpsc_send(tx, cx, (void *)4), EK_ECLOSED);
    ek_mpsc_sender_drop(tx);
    ek_mpsc_sender_drop(tx2);
    assert_int_equal(ek_mpsc_try_recv(rx, &m), EK_OK);
    assert_ptr_equal(m, (void *)3);
    assert_int_equal(ek_mpsc_try_recv(rx, &m), EK_ECLOSED);
    ek_mpsc_receiver_drop(rx);
    return EK_OK;
}
static void test_cancel_after_slot_assigned_gives_it_back(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    assert_int_equal(ekt_block_on_fn(rt, cancel_after_assignment_poll, NULL, NULL), EK_OK);
    ekt_rt_free_checked(rt);
}

/* Waiting senders are woken with ECLOSED when the receiver closes or drops. */
static void test_close_wakes_waiting_senders(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(1, st_msg_drop, &tx, &rx), EK_OK);
    assert_int_equal(ek_mpsc_try_send(tx, st_msg(0)), EK_OK);
    atomic_int p1 = 0;
    ek_join *j1 = spawn_sender(rt, tx_clone(tx), &p1, 1, 1, false);
    st_wait_for(&p1, 1);
    atomic_store(&st_msg_drops, 0);
    ek_mpsc_receiver_drop(rx);
    assert_int_equal(ekt_join(j1, NULL), EK_ECLOSED);
    ek_mpsc_sender_drop(tx);
    /* message 0 (queued) and message 1 (the task's) both released */
    assert_int_equal(atomic_load(&st_msg_drops), 2);
    ekt_rt_free_checked(rt);
}

/* ---- blocking ends ---- */
typedef struct bsend {
    ek_mpsc_sender *tx;
    int n;
} bsend;
static void *blocking_sender(void *arg)
{
    bsend *b = arg;
    for (int i = 0; i < b->n; i++)
        assert_int_equal(ek_mpsc_blocking_send(b->tx, (void *)(uintptr_t)(i + 1)), EK_OK);
    ek_mpsc_sender_drop(b->tx);
    return NULL;
}

static void test_blocking_send_and_recv_between_threads(void **s)
{
    (void)s;
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(2, NULL, &tx, &rx), EK_OK);
    bsend b = {tx, 2000};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, blocking_sender, &b), 0);
    void *out;
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(ek_mpsc_blocking_recv(rx, &out), EK_OK);
        assert_ptr_equal(out, (void *)(uintptr_t)(i + 1));
    }
    assert_int_equal(ek_mpsc_blocking_recv(rx, &out), EK_ECLOSED);
    pthread_join(th, NULL);
    ek_mpsc_receiver_drop(rx);
}

static int blocking_send_in_task(void *s, ek_cx *cx, void **out)
{
    (void)cx;
    (void)out;
    return ek_mpsc_blocking_send(s, NULL);
}
static int blocking_job(void *arg, void **out)
{
    (void)out;
    return ek_mpsc_blocking_send(arg, (void *)9);
}

static void test_blocking_send_refused_on_worker_allowed_on_blocking_pool(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(1, NULL, &tx, &rx), EK_OK);
    assert_int_equal(ekt_join(ekt_spawn(rt, blocking_send_in_task, ekt_noop_drop, tx), NULL),
                     EK_EDEADLK);
    ek_join *j = NULL;
    assert_int_equal(ek_spawn_blocking(rt, blocking_job, NULL, tx, NULL, &j), EK_OK);
    assert_int_equal(ekt_join(j, NULL), EK_OK);
    void *out;
    assert_int_equal(ek_mpsc_try_recv(rx, &out), EK_OK);
    assert_ptr_equal(out, (void *)9);
    ek_mpsc_sender_drop(tx);
    ek_mpsc_receiver_drop(rx);
    ekt_rt_free_checked(rt);
}

/* ------------------------------------------------------------------------ */
/* Stress: 8 producers into one bounded channel                              */
/* ------------------------------------------------------------------------ */

#define NPROD 8
static long stress_n;

static void *encode(int p, long seq)
{
    return (void *)(((uintptr_t)p << 40) | (uintptr_t)(seq + 1));
}

typedef struct prod_task {
    ek_mpsc_sender *tx;
    int id;
    long seq;
} prod_task;
static int prod_poll(void *s, ek_cx *cx, void **out)
{
    prod_task *t = s;
    (void)out;
    while (t->seq < stress_n) {
        int rc = ek_mpsc_send(t->tx, cx, encode(t->id, t->seq));
        if (rc == EK_PENDING) return EK_PENDING;
        if (rc != EK_OK) return rc;
        t->seq++;
    }
    return EK_OK;
}
static void prod_drop(void *s)
{
    prod_task *t = s;
    ek_mpsc_sender_drop(t->tx);
    free(t);
}
static void *prod_thread(void *arg)
{
    prod_task *t = arg;
    for (long i = 0; i < stress_n; i++)
        if (ek_mpsc_blocking_send(t->tx, encode(t->id, i)) != EK_OK) abort();
    ek_mpsc_sender_drop(t->tx);
    free(t);
    return NULL;
}

typedef struct cons_task {
    ek_mpsc_receiver *rx;
    long next[NPROD];
    long total;
    int bad;
} cons_task;
static int cons_poll(void *s, ek_cx *cx, void **out)
{
    cons_task *t = s;
    for (;;) {
        void *m;
        int rc = ek_mpsc_recv(t->rx, cx, &m);
        if (rc == EK_PENDING) return rc;
        if (rc == EK_ECLOSED) break;
        if (rc != EK_OK) return rc;
        uintptr_t v = (uintptr_t)m;
        int p = (int)(v >> 40);
        long seq = (long)(v & ((1ul << 40) - 1)) - 1;
        if (p < 0 || p >= NPROD || seq != t->next[p])
            t->bad++;
        else
            t->next[p]++;
        t->total++;
    }
    *out = t;
    return EK_OK;
}

/* Messages per producer. The test command runs 100,000 (800,000 through the
 * channel; capacity 1 hands each over with a wake-up, mostly futex calls of the
 * foreign producers), so that it stays a few seconds on a loaded machine. The
 * full count, 1,000,000 per producer, is the stress target: `make stress`
 * (EK_STRESS_FULL=1; 141-160 s plain on a slow 2-core root). Sanitizer builds
 * scale either down with ekt_scale. */
static long stress_count(void)
{
    const char *full = getenv("EK_STRESS_FULL");
    return ekt_scale(full != NULL && full[0] == '1' ? 1000000 : 100000);
}

static void stress(size_t cap)
{
    stress_n = stress_count();
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 4);
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_mpsc_bounded(cap, NULL, &tx, &rx), EK_OK);
    cons_task *ct = calloc(1, sizeof *ct);
    ct->rx = rx;
    ek_join *cj = ekt_spawn(rt, cons_poll, ekt_noop_drop, ct);
    pthread_t th[NPROD / 2];
    ek_join *pj[NPROD / 2];
    for (int i = 0; i < NPROD; i++) {
        prod_task *t = calloc(1, sizeof *t);
        t->tx = tx_clone(tx);
        t->id = i;
        if (i % 2 == 0)
            pj[i / 2] = ekt_spawn(rt, prod_poll, prod_drop, t);
        else
            assert_int_equal(pthread_create(&th[i / 2], NULL, prod_thread, t), 0);
    }
    ek_mpsc_sender_drop(tx);
    for (int i = 0; i < NPROD / 2; i++) {
        assert_int_equal(ekt_join(pj[i], NULL), EK_OK);
        pthread_join(th[i], NULL);
    }
    assert_int_equal(ekt_join(cj, NULL), EK_OK);
    assert_int_equal(ct->bad, 0);
    assert_int_equal(ct->total, NPROD * stress_n);
    for (int i = 0; i < NPROD; i++) assert_int_equal(ct->next[i], stress_n);
    free(ct);
    ek_mpsc_receiver_drop(rx);
    ekt_rt_free_checked(rt);
}
static void test_stress_8_producers_capacity_1(void **s)
{
    (void)s;
    stress(1);
}
static void test_stress_8_producers_capacity_1024(void **s)
{
    (void)s;
    stress(1024);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, ekt_setup, ekt_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_bounded_try_send_fills_then_efull_and_fifo),
        T(test_unbounded_send_never_waits_and_keeps_order),
        T(test_last_sender_drop_closes_after_drain),
        T(test_close_fails_sends_but_keeps_queue),
        T(test_receiver_drop_drops_every_queued_message),
        T(test_recv_with_null_out_passes_message_to_drop_fn),
        T(test_permit_reserves_a_slot),
        T(test_permit_outlives_dropped_sender_and_closed_receiver),
        T(test_bad_arguments_give_einval),
        T(test_alloc_failure_at_each_allocation),
        T(test_send_waits_for_room_in_task),
        T(test_recv_is_woken_by_send_and_by_last_sender_drop),
        T(test_waiting_senders_are_served_fifo),
        T(test_abort_waiting_send_returns_place),
        T(test_abort_waiting_reserve_returns_place),
        T(test_abort_waiting_recv_loses_no_message),
        T(test_cancel_after_slot_assigned_gives_it_back),
        T(test_close_wakes_waiting_senders),
        T(test_blocking_send_and_recv_between_threads),
        T(test_blocking_send_refused_on_worker_allowed_on_blocking_pool),
        T(test_stress_8_producers_capacity_1),
        T(test_stress_8_producers_capacity_1024),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
