/*
 * oneshot.c - one value, one sender, one receiver; lock-free.
 *
 * One allocation holds the shared cell and both handles. Everything is decided
 * by one atomic state word:
 *
 *   RX_TASK   rx_slot holds a waker (or a blocked thread's parker) that the
 *             sender must wake when it completes. The receiver writes rx_slot
 *             only while RX_TASK is clear; the sender reads it only if RX_TASK
 *             was set at the moment it set COMPLETE. So the slot is never
 *             written and read at once.
 *   COMPLETE  the sender is done: it sent (has_value) or was dropped. Set once.
 *             The value is written before, with release; read after an acquire.
 *   CLOSED    the receiver closed or was dropped. Set once. The sender never
 *             sets COMPLETE over CLOSED when sending, so exactly one side owns
 *             the value: the sender keeps it (send fails) or the receiver does.
 *   TX_TASK   tx_slot holds the waker of ek_oneshot_sender_poll_closed; the
 *             mirror image of RX_TASK.
 *
 * A replaced waker is never freed while the other side may use it: a side that
 * finds the other's flag (e.g. COMPLETE while clearing RX_TASK) leaves its slot
 * alone, and both slots are released only when the cell is freed (refs == 0).
 */
#include "sync.h"

#define OS_RX_TASK  1u
#define OS_COMPLETE 2u
#define OS_CLOSED   4u
#define OS_TX_TASK  8u

typedef struct os_slot {
    ek_waker *waker;
    ek__sync_parker *parker;
} os_slot;

struct ek_oneshot_sender {
    uint32_t tag;
};
struct ek_oneshot_receiver {
    uint32_t tag;
};

typedef struct os_cell {
    _Atomic unsigned state;
    atomic_uint refs; /* one per live handle */
    void *value;      /* sender-written before COMPLETE */
    bool has_value;
    bool rx_done; /* receiver only: the value was taken or ECLOSED was reported */
    ek_drop_fn drop;
    os_slot rx_slot, tx_slot;
    struct ek_oneshot_sender tx;
    struct ek_oneshot_receiver rx;
} os_cell;

static os_cell *cell_of_tx(ek_oneshot_sender *tx)
{
    return EK__CONTAINER_OF(tx, os_cell, tx);
}
static os_cell *cell_of_rx(ek_oneshot_receiver *rx)
{
    return EK__CONTAINER_OF(rx, os_cell, rx);
}

static void slot_wake(os_slot *s)
{
    if (s->parker != NULL)
        ek__sync_parker_unpark(s->parker);
    else
        ek_waker_wake_by_ref(s->waker);
}

static void cell_release(os_cell *c)
{
    /* acq_rel: the last releaser must see every write the other side made
     * before its own release (slots, value) before freeing. */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1) return;
    ek_waker_drop(c->rx_slot.waker);
    ek_waker_drop(c->tx_slot.waker);
    ek__free(c);
}

int ek_oneshot_new(ek_drop_fn drop, ek_oneshot_sender **tx, ek_oneshot_receiver **rx)
{
    if (tx == NULL || rx == NULL) return EK_EINVAL;
    os_cell *c = ek__calloc(1, sizeof *c);
    if (c == NULL) return EK_ENOMEM;
    atomic_init(&c->state, 0);
    atomic_init(&c->refs, 2);
    c->drop = drop;
    c->tx.tag = EK__TAG_ONESHOT_TX;
    c->rx.tag = EK__TAG_ONESHOT_RX;
    *tx = &c->tx;
    *rx = &c->rx;
    return EK_OK;
}

int ek_oneshot_send(ek_oneshot_sender *tx, void *msg)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_ONESHOT_TX)) return EK_EINVAL;
    os_cell *c = cell_of_tx(tx);
    tx->tag = EK__TAG_DEAD;
    c->value = msg;
    c->has_value = true;
    int rc = EK_OK;
    /* relaxed load: the CAS below re-validates; nothing is read from it but bits. */
    unsigned s = atomic_load_explicit(&c->state, memory_order_relaxed);
    for (;;) {
        if (s & OS_CLOSED) {
            /* The receiver will never read the value: take it back. */
            c->value = NULL;
            c->has_value = false;
            rc = EK_ECLOSED;
            break;
        }
        /* release publishes the value; acquire makes rx_slot (written before
         * RX_TASK was set with release) visible. */
        if (atomic_compare_exchange_weak_explicit(&c->state, &s, s | OS_COMPLETE,
                                                  memory_order_acq_rel, memory_order_relaxed)) {
            if (s & OS_RX_TASK) slot_wake(&c->rx_slot);
            break;
        }
    }
    cell_release(c);
    return rc;
}

int ek_oneshot_sender_is_closed(ek_oneshot_sender *tx)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_ONESHOT_TX)) return EK_EINVAL;
    /* relaxed: a snapshot; no data is read on its strength. */
    return (atomic_load_explicit(&cell_of_tx(tx)->state, memory_order_relaxed) & OS_CLOSED) != 0;
}

int ek_oneshot_sender_poll_closed(ek_oneshot_sender *tx, ek_cx *cx)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_ONESHOT_TX) || cx == NULL) return EK_EINVAL;
    os_cell *c = cell_of_tx(tx);
    int rc = ek_coop_proceed(cx);
    if (rc != EK_OK) return rc;
    unsigned s = atomic_load_explicit(&c->state, memory_order_acquire);
    if (s & OS_CLOSED) return EK_OK;
    if (s & OS_TX_TASK) {
        if (ek_waker_will_wake(c->tx_slot.waker, cx))
            return ek__cx_pended(cx, EK_PENDING, EK__SITE_ONESHOT);
        s = atomic_fetch_and_explicit(&c->state, ~OS_TX_TASK, memory_order_acq_rel);
        if (s & OS_CLOSED) return EK_OK; /* the receiver may be waking the slot: keep it */
    }
    ek_waker *k = ek_cx_waker(cx);
    if (k == NULL) return EK_ENOMEM;
    ek_waker_drop(c->tx_slot.waker);
    c->tx_slot.waker = k;
    s = atomic_fetch_or_explicit(&c->state, OS_TX_TASK, memory_order_acq_rel);
    return ek__cx_pended(cx, (s & OS_CLOSED) ? EK_OK : EK_PENDING, EK__SITE_ONESHOT);
}

void ek_oneshot_sender_drop(ek_oneshot_sender *tx)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_ONESHOT_TX)) return;
    os_cell *c = cell_of_tx(tx);
    tx->tag = EK__TAG_DEAD;
    unsigned s = atomic_fetch_or_explicit(&c->state, OS_COMPLETE, memory_order_acq_rel);
    if ((s & OS_RX_TASK) && !(s & OS_CLOSED)) slot_wake(&c->rx_slot);
    cell_release(c);
}

/* The sender has completed: hand over the value, or report that none came. */
static int take_value(os_cell *c, void **out)
{
    c->rx_done = true;
    if (!c->has_value) return EK_ECLOSED;
    c->has_value = false;
    /* No place to put it: the drop function, so it is never silently lost. */
    if (out != NULL)
        *out = c->value;
    else if (c->drop != NULL)
        c->drop(c->value);
    c->value = NULL;
    return EK_OK;
}

/* What a receive learns without waiting: the value or EK_ECLOSED once the
 * sender completed or the channel closed, else EK_EEMPTY with the state read
 * in *state. acquire pairs with the sender's release of the value. */
static int recv_now(os_cell *c, void **out, unsigned *state)
{
    if (c->rx_done) return EK_ECLOSED;
    unsigned s = atomic_load_explicit(&c->state, memory_order_acquire);
    *state = s;
    if (s & OS_COMPLETE) return take_value(c, out);
    if (s & OS_CLOSED) {
        c->rx_done = true;
        return EK_ECLOSED;
    }
    return EK_EEMPTY;
}

int ek_oneshot_recv(ek_oneshot_receiver *rx, ek_cx *cx, void **out)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_ONESHOT_RX) || cx == NULL) return EK_EINVAL;
    os_cell *c = cell_of_rx(rx);
    if (c->rx_done) return EK_ECLOSED;
    int rc = ek_coop_proceed(cx);
    if (rc != EK_OK) return rc;
    unsigned s;
    rc = recv_now(c, out, &s);
    if (rc != EK_EEMPTY) return rc;
    if (s & OS_RX_TASK) {
        if (ek_waker_will_wake(c->rx_slot.waker, cx))
            return ek__cx_pended(cx, EK_PENDING, EK__SITE_ONESHOT);
        s = atomic_fetch_and_explicit(&c->state, ~OS_RX_TASK, memory_order_acq_rel);
        /* The sender completed and may be waking the old waker: leave it. */
        if (s & OS_COMPLETE) return take_value(c, out);
    }
    ek_waker *k = ek_cx_waker(cx);
    if (k == NULL) return EK_ENOMEM;
    ek_waker_drop(c->rx_slot.waker);
    c->rx_slot.waker = k;
    c->rx_slot.parker = NULL;
    /* release publishes the slot to a sender that sees RX_TASK. */
    s = atomic_fetch_or_explicit(&c->state, OS_RX_TASK, memory_order_acq_rel);
    if (s & OS_COMPLETE) return take_value(c, out);
    return ek__cx_pended(cx, EK_PENDING, EK__SITE_ONESHOT);
}

int ek_oneshot_try_recv(ek_oneshot_receiver *rx, void **out)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_ONESHOT_RX)) return EK_EINVAL;
    unsigned s;
    return recv_now(cell_of_rx(rx), out, &s);
}

int ek_oneshot_blocking_recv(ek_oneshot_receiver *rx, void **out)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_ONESHOT_RX)) return EK_EINVAL;
    int rc = ek__sync_blocking_check();
    if (rc != EK_OK) return rc;
    os_cell *c = cell_of_rx(rx);
    unsigned s;
    rc = recv_now(c, out, &s);
    if (rc != EK_EEMPTY) return rc;
    if (s & OS_RX_TASK) {
        s = atomic_fetch_and_explicit(&c->state, ~OS_RX_TASK, memory_order_acq_rel);
        if (s & OS_COMPLETE) return take_value(c, out);
    }
    ek__sync_parker pk;
    rc = ek__sync_parker_init(&pk);
    if (rc != EK_OK) return rc;
    ek_waker_drop(c->rx_slot.waker);
    c->rx_slot.waker = NULL;
    c->rx_slot.parker = &pk;
    s = atomic_fetch_or_explicit(&c->state, OS_RX_TASK, memory_order_acq_rel);
    if (!(s & OS_COMPLETE)) {
        /* The sender saw RX_TASK, so it unparks exactly once, after COMPLETE;
         * we must not return (and free pk) before that unpark. */
        ek__sync_parker_park(&pk);
        /* acquire: the value written before COMPLETE. */
        s = atomic_load_explicit(&c->state, memory_order_acquire);
        EK__ASSERT(s & OS_COMPLETE);
    }
    c->rx_slot.parker = NULL;
    /* The sender has completed: it will never look at RX_TASK again. */
    atomic_fetch_and_explicit(&c->state, ~OS_RX_TASK, memory_order_relaxed);
    ek__sync_parker_destroy(&pk);
    return take_value(c, out);
}

/* Set CLOSED; wake a sender waiting in poll_closed. Returns the prior state. */
static unsigned close_rx(os_cell *c)
{
    unsigned s = atomic_fetch_or_explicit(&c->state, OS_CLOSED, memory_order_acq_rel);
    if ((s & OS_TX_TASK) && !(s & OS_COMPLETE) && !(s & OS_CLOSED))
        ek_waker_wake_by_ref(c->tx_slot.waker);
    return s;
}

int ek_oneshot_close(ek_oneshot_receiver *rx)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_ONESHOT_RX)) return EK_EINVAL;
    close_rx(cell_of_rx(rx));
    return EK_OK;
}

void ek_oneshot_receiver_drop(ek_oneshot_receiver *rx)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_ONESHOT_RX)) return;
    os_cell *c = cell_of_rx(rx);
    rx->tag = EK__TAG_DEAD;
    unsigned s = close_rx(c);
    /* A value sent (COMPLETE seen with acquire) and not taken is ours to drop. */
    if ((s & OS_COMPLETE) && c->has_value) {
        c->has_value = false;
        if (c->drop != NULL) c->drop(c->value);
    }
    cell_release(c);
}
