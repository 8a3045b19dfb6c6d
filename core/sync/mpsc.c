/*
 * mpsc.c - multi-producer, single-consumer channels, bounded and unbounded.
 *
 * One lock per channel (an ek__lock: a futex word, taken without a spin) guards
 * a growable ring of messages and, for bounded channels, a fair permit queue of
 * free slots (sync.h). Invariant while the channel is open:
 *
 *   slots.avail + len + (slots held by READY senders) + permits_out == bound
 *
 * A slot is taken when a send or reserve starts and given back when the receiver
 * pops the message (or a permit/waiter gives it up), so a bounded channel never
 * queues more than `bound` messages and waiting senders are served in FIFO
 * order: a free slot goes straight to the front waiter (never to a newcomer's
 * try_send), which is what makes the channel fair.
 *
 * Each sender handle embeds its waiter and its one permit, so waiting and
 * reserving never allocate and dropping the handle is enough to give its place
 * back. The receiver's waiter is a lone slot (one receiver): a sender that pushes
 * moves the receiver's waker out under the lock and wakes it after unlocking;
 * the receiver clones a new one only when it next finds the queue empty.
 *
 * Lifetime: the channel is freed when the receiver is gone and `senders` (live
 * sender handles, including dropped ones whose permit is still out) reaches 0.
 */
#include "sync.h"

struct ek_mpsc_receiver {
    uint32_t tag;
};
struct ek_mpsc_permit {
    uint32_t tag; /* EK__TAG_MPSC_PERMIT while outstanding, else 0 */
};

typedef struct mpsc_chan {
    ek__lock lock; /* a futex word, taken without a spin (ek__lock_acquire_nospin) */
    void **buf;    /* ring of buf_cap (a power of two) messages */
    size_t buf_cap, head, len;
    size_t bound;       /* 0: unbounded */
    ek__permits slots;  /* bounded: free slots and the senders waiting for one */
    size_t senders;     /* sender handles alive (see lifetime above) */
    size_t permits_out; /* reserved through a permit, not yet sent or dropped */
    bool closed;        /* receiver closed or dropped: no new sends */
    bool rx_alive;
    ek__waiter rxw; /* the receiver's waker or parker; never linked */
    ek_drop_fn drop;
    struct ek_mpsc_receiver rx;
} mpsc_chan;

struct ek_mpsc_sender {
    uint32_t tag;
    mpsc_chan *chan;
    ek__waiter w; /* place in chan->slots */
    bool dropped; /* ek_mpsc_sender_drop ran while the permit was out */
    struct ek_mpsc_permit permit;
};

static mpsc_chan *chan_of_rx(ek_mpsc_receiver *rx)
{
    return EK__CONTAINER_OF(rx, mpsc_chan, rx);
}

static void chan_destroy(mpsc_chan *c)
{
    EK__ASSERT(c->len == 0);
    ek_waker_drop(c->rxw.waker);
    ek__free(c->buf);
    c->rx.tag = EK__TAG_DEAD;
    ek__free(c);
}

static ek_mpsc_sender *sender_new(mpsc_chan *c)
{
    ek_mpsc_sender *tx = ek__malloc(sizeof *tx);
    if (tx == NULL) return NULL;
    tx->tag = EK__TAG_MPSC_TX;
    tx->chan = c;
    ek__waiter_init(&tx->w);
    tx->dropped = false;
    tx->permit.tag = 0;
    return tx;
}

static int chan_new(size_t bound, ek_drop_fn drop, ek_mpsc_sender **tx, ek_mpsc_receiver **rx)
{
    if (tx == NULL || rx == NULL) return EK_EINVAL;
    mpsc_chan *c = ek__calloc(1, sizeof *c);
    if (c == NULL) return EK_ENOMEM;
    ek__lock_init(&c->lock);
    c->bound = bound;
    ek__permits_init(&c->slots, bound);
    c->senders = 1;
    c->rx_alive = true;
    ek__waiter_init(&c->rxw);
    c->drop = drop;
    c->rx.tag = EK__TAG_MPSC_RX;
    ek_mpsc_sender *s = sender_new(c);
    if (s == NULL) {
        ek__free(c);
        return EK_ENOMEM;
    }
    *tx = s;
    *rx = &c->rx;
    return EK_OK;
}

int ek_mpsc_bounded(size_t cap, ek_drop_fn drop, ek_mpsc_sender **tx, ek_mpsc_receiver **rx)
{
    if (cap == 0 || cap > EK_SEMAPHORE_MAX_PERMITS) return EK_EINVAL;
    return chan_new(cap, drop, tx, rx);
}

int ek_mpsc_unbounded(ek_drop_fn drop, ek_mpsc_sender **tx, ek_mpsc_receiver **rx)
{
    return chan_new(0, drop, tx, rx);
}

int ek_mpsc_sender_clone(ek_mpsc_sender *tx, ek_mpsc_sender **out)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_MPSC_TX) || out == NULL) return EK_EINVAL;
    mpsc_chan *c = tx->chan;
    ek_mpsc_sender *s = sender_new(c);
    if (s == NULL) return EK_ENOMEM;
    ek__lock_acquire_nospin(&c->lock);
    c->senders++;
    ek__lock_release(&c->lock);
    *out = s;
    return EK_OK;
}

/* ---- ring (lock held) ---- */

static int ring_push(mpsc_chan *c, void *msg)
{
    if (c->len == c->buf_cap) {
        size_t ncap = c->buf_cap ? c->buf_cap * 2 : 16;
        void **nb = ek__malloc(ncap * sizeof *nb);
        if (nb == NULL) return EK_ENOMEM;
        for (size_t i = 0; i < c->len; i++) nb[i] = c->buf[(c->head + i) & (c->buf_cap - 1)];
        ek__free(c->buf);
        c->buf = nb;
        c->buf_cap = ncap;
        c->head = 0;
    }
    c->buf[(c->head + c->len) & (c->buf_cap - 1)] = msg;
    c->len++;
    return EK_OK;
}

static void *ring_pop(mpsc_chan *c)
{
    void *m = c->buf[c->head];
    c->head = (c->head + 1) & (c->buf_cap - 1);
    c->len--;
    return m;
}

/* ---- sending ---- */

/*
 * Get a slot for tx (lock held). EK_OK: the slot is the caller's (bounded) or
 * none is needed (unbounded); EK_PENDING: queued and registered (only when
 * `wait`); EK_EFULL (only when !wait); EK_ECLOSED; EK_ENOMEM (no waker).
 */
static int slot_acquire(ek_mpsc_sender *tx, bool wait, ek_cx *cx, ek__sync_parker *pk,
                        ek_waker **old, ek__wake_list *wl)
{
    mpsc_chan *c = tx->chan;
    if (c->closed) {
        ek__permits_cancel(&c->slots, &tx->w, wl);
        return EK_ECLOSED;
    }
    if (c->bound == 0) return EK_OK;
    switch (tx->w.state) {
    case EK__W_READY:
        tx->w.state = EK__W_IDLE;
        return EK_OK;
    case EK__W_QUEUED:
        if (!wait) return EK_EFULL;
        break;
    case EK__W_CLOSED:
        tx->w.state = EK__W_IDLE;
        return EK_ECLOSED;
    default:
        if (!wait) return ek__permits_try(&c->slots, 1) ? EK_OK : EK_EFULL;
        if (ek__permits_acquire(&c->slots, &tx->w, 1)) return EK_OK;
        break;
    }
    int rc = ek__waiter_register(&tx->w, cx, pk, old);
    if (rc != EK_OK) {
        ek__permits_cancel(&c->slots, &tx->w, wl);
        return rc;
    }
    return EK_PENDING;
}

/* Push into a slot the caller holds (lock held). On failure the slot is kept by
 * tx as an assigned (READY) slot, so a retry does not queue again. */
static int push_with_slot(ek_mpsc_sender *tx, void *msg, ek__wake_list *wl)
{
    mpsc_chan *c = tx->chan;
    int rc = ring_push(c, msg);
    if (rc != EK_OK) {
        if (c->bound != 0) {
            tx->w.want = 1;
            tx->w.need = 0;
            tx->w.state = EK__W_READY;
        }
        return rc;
    }
    ek__waiter_wake(&c->rxw, wl);
    return EK_OK;
}

static int send_impl(ek_mpsc_sender *tx, bool wait, ek_cx *cx, ek__sync_parker *pk, void *msg)
{
    mpsc_chan *c = tx->chan;
    ek_waker *old = NULL;
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek__lock_acquire_nospin(&c->lock);
    int rc = slot_acquire(tx, wait, cx, pk, &old, &wl);
    if (rc == EK_OK) rc = push_with_slot(tx, msg, &wl);
    ek__lock_release(&c->lock);
    ek_waker_drop(old);
    ek__wake_list_wake(&wl);
    return rc;
}

int ek_mpsc_send(ek_mpsc_sender *tx, ek_cx *cx, void *msg)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_MPSC_TX)) return EK_EINVAL;
    if (tx->permit.tag != 0) return EK_EBUSY;
    if (tx->chan->bound != 0) {
        if (cx == NULL) return EK_EINVAL;
        int rc = ek_coop_proceed(cx);
        if (rc != EK_OK) return rc;
    }
    return ek__cx_pended(cx, send_impl(tx, true, cx, NULL, msg), EK__SITE_MPSC_SEND);
}

int ek_mpsc_try_send(ek_mpsc_sender *tx, void *msg)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_MPSC_TX)) return EK_EINVAL;
    if (tx->permit.tag != 0) return EK_EBUSY;
    return send_impl(tx, false, NULL, NULL, msg);
}

int ek_mpsc_blocking_send(ek_mpsc_sender *tx, void *msg)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_MPSC_TX)) return EK_EINVAL;
    if (tx->permit.tag != 0) return EK_EBUSY;
    int rc = ek__sync_blocking_check();
    if (rc != EK_OK) return rc;
    if (tx->chan->bound == 0) return send_impl(tx, false, NULL, NULL, msg);
    ek__sync_parker pk;
    rc = ek__sync_parker_init(&pk);
    if (rc != EK_OK) return rc;
    mpsc_chan *c = tx->chan;
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek_waker *old = NULL;
    ek__lock_acquire_nospin(&c->lock);
    while ((rc = slot_acquire(tx, true, NULL, &pk, &old, &wl)) == EK_PENDING) {
        ek__lock_release(&c->lock);
        ek__sync_parker_park(&pk);
        ek__lock_acquire_nospin(&c->lock);
    }
    if (rc == EK_OK) rc = push_with_slot(tx, msg, &wl);
    /* Under the lock: after this nobody can unpark pk, so it may go. */
    tx->w.parker = NULL;
    ek__lock_release(&c->lock);
    ek__sync_parker_destroy(&pk);
    ek__wake_list_wake(&wl);
    return rc;
}

static int reserve_impl(ek_mpsc_sender *tx, bool wait, ek_cx *cx, ek_mpsc_permit **permit)
{
    mpsc_chan *c = tx->chan;
    ek_waker *old = NULL;
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek__lock_acquire_nospin(&c->lock);
    int rc = slot_acquire(tx, wait, cx, NULL, &old, &wl);
    if (rc == EK_OK) {
        c->permits_out++;
        tx->permit.tag = EK__TAG_MPSC_PERMIT;
        *permit = &tx->permit;
    }
    ek__lock_release(&c->lock);
    ek_waker_drop(old);
    ek__wake_list_wake(&wl);
    return rc;
}

int ek_mpsc_reserve(ek_mpsc_sender *tx, ek_cx *cx, ek_mpsc_permit **permit)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_MPSC_TX) || cx == NULL || permit == NULL) return EK_EINVAL;
    if (tx->permit.tag != 0) return EK_EBUSY;
    int rc = ek_coop_proceed(cx);
    if (rc != EK_OK) return rc;
    return ek__cx_pended(cx, reserve_impl(tx, true, cx, permit), EK__SITE_MPSC_SEND);
}

int ek_mpsc_try_reserve(ek_mpsc_sender *tx, ek_mpsc_permit **permit)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_MPSC_TX) || permit == NULL) return EK_EINVAL;
    if (tx->permit.tag != 0) return EK_EBUSY;
    return reserve_impl(tx, false, NULL, permit);
}

/* The last sender is gone (lock held): wake the receiver so it sees ECLOSED. */
static bool sender_release_locked(mpsc_chan *c, ek__wake_list *wl)
{
    if (--c->senders == 0) ek__waiter_wake(&c->rxw, wl);
    return c->senders == 0 && !c->rx_alive;
}

static void sender_free(ek_mpsc_sender *tx)
{
    ek_waker_drop(tx->w.waker);
    tx->tag = EK__TAG_DEAD;
    ek__free(tx);
}

/* Finish a permit (lock held): it no longer holds anything; a sender dropped
 * while it was out is released now. Returns whether the channel must be freed;
 * *free_tx says whether the sender must be freed. */
static bool permit_finish_locked(ek_mpsc_sender *tx, ek__wake_list *wl, bool *free_tx)
{
    mpsc_chan *c = tx->chan;
    tx->permit.tag = 0;
    c->permits_out--;
    /* A closed receiver may be waiting for the last permit to report ECLOSED. */
    if (c->permits_out == 0) ek__waiter_wake(&c->rxw, wl);
    *free_tx = tx->dropped;
    return tx->dropped ? sender_release_locked(c, wl) : false;
}

int ek_mpsc_permit_send(ek_mpsc_permit *permit, void *msg)
{
    if (!EK__CHECK_TAG(permit, EK__TAG_MPSC_PERMIT)) return EK_EINVAL;
    ek_mpsc_sender *tx = EK__CONTAINER_OF(permit, ek_mpsc_sender, permit);
    mpsc_chan *c = tx->chan;
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    bool drop_msg = false, free_tx = false;
    int rc = EK_OK;
    /* Immutable, but read before unlocking: once the lock is released another
     * thread may free the channel (when this permit's sender was the last). */
    ek_drop_fn dropfn = c->drop;
    ek__lock_acquire_nospin(&c->lock);
    if (!c->rx_alive) {
        drop_msg = true;
        rc = EK_ECLOSED;
    } else if ((rc = ring_push(c, msg)) == EK_OK) {
        ek__waiter_wake(&c->rxw, &wl);
    } else if (c->bound != 0) {
        ek__permits_release(&c->slots, 1, &wl);
    }
    bool free_chan = permit_finish_locked(tx, &wl, &free_tx);
    ek__lock_release(&c->lock);
    ek__wake_list_wake(&wl);
    if (drop_msg && dropfn != NULL) dropfn(msg);
    if (free_tx) sender_free(tx);
    if (free_chan) chan_destroy(c);
    return rc;
}

void ek_mpsc_permit_drop(ek_mpsc_permit *permit)
{
    if (!EK__CHECK_TAG(permit, EK__TAG_MPSC_PERMIT)) return;
    ek_mpsc_sender *tx = EK__CONTAINER_OF(permit, ek_mpsc_sender, permit);
    mpsc_chan *c = tx->chan;
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    bool free_tx = false;
    ek__lock_acquire_nospin(&c->lock);
    if (c->bound != 0) ek__permits_release(&c->slots, 1, &wl);
    bool free_chan = permit_finish_locked(tx, &wl, &free_tx);
    ek__lock_release(&c->lock);
    ek__wake_list_wake(&wl);
    if (free_tx) sender_free(tx);
    if (free_chan) chan_destroy(c);
}

int ek_mpsc_cancel(ek_mpsc_sender *tx)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_MPSC_TX)) return EK_EINVAL;
    mpsc_chan *c = tx->chan;
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek__lock_acquire_nospin(&c->lock);
    ek__permits_cancel(&c->slots, &tx->w, &wl);
    ek__lock_release(&c->lock);
    ek__wake_list_wake(&wl);
    return EK_OK;
}

void ek_mpsc_sender_drop(ek_mpsc_sender *tx)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_MPSC_TX)) return;
    mpsc_chan *c = tx->chan;
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    bool free_chan = false, free_tx = true;
    ek__lock_acquire_nospin(&c->lock);
    ek__permits_cancel(&c->slots, &tx->w, &wl);
    if (tx->permit.tag != 0) {
        /* The permit borrows the sender: finish the drop when it is used. */
        tx->dropped = true;
        tx->tag = EK__TAG_DEAD;
        free_tx = false;
    } else {
        free_chan = sender_release_locked(c, &wl);
    }
    ek__lock_release(&c->lock);
    ek__wake_list_wake(&wl);
    if (free_tx) sender_free(tx);
    if (free_chan) chan_destroy(c);
}

int ek_mpsc_sender_is_closed(ek_mpsc_sender *tx)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_MPSC_TX)) return EK_EINVAL;
    mpsc_chan *c = tx->chan;
    ek__lock_acquire_nospin(&c->lock);
    int closed = c->closed;
    ek__lock_release(&c->lock);
    return closed;
}

/* ---- receiving ---- */

/* Take the next message into *m (lock held): EK_OK, EK_EEMPTY or EK_ECLOSED. */
static int recv_locked(mpsc_chan *c, void **m, ek__wake_list *wl)
{
    if (c->len > 0) {
        *m = ring_pop(c);
        if (c->bound != 0) ek__permits_release(&c->slots, 1, wl);
        return EK_OK;
    }
    if (c->permits_out == 0 && (c->senders == 0 || c->closed)) return EK_ECLOSED;
    return EK_EEMPTY;
}

/* Hand a received message to the caller, or (out NULL) to the channel's drop
 * function: a message is never silently lost. Lock not held (drop may be user
 * code that touches the channel). */
static void deliver(mpsc_chan *c, void *m, void **out)
{
    if (out != NULL)
        *out = m;
    else if (c->drop != NULL)
        c->drop(m);
}

int ek_mpsc_recv(ek_mpsc_receiver *rx, ek_cx *cx, void **out)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_MPSC_RX) || cx == NULL) return EK_EINVAL;
    int rc = ek_coop_proceed(cx);
    if (rc != EK_OK) return rc;
    mpsc_chan *c = chan_of_rx(rx);
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek_waker *old = NULL;
    void *m = NULL;
    ek__lock_acquire_nospin(&c->lock);
    rc = recv_locked(c, &m, &wl);
    if (rc == EK_EEMPTY) {
        rc = ek__waiter_register(&c->rxw, cx, NULL, &old);
        if (rc == EK_OK) rc = EK_PENDING;
    }
    ek__lock_release(&c->lock);
    ek_waker_drop(old);
    ek__wake_list_wake(&wl);
    if (rc == EK_OK) deliver(c, m, out);
    return ek__cx_pended(cx, rc, EK__SITE_MPSC_RECV);
}

int ek_mpsc_try_recv(ek_mpsc_receiver *rx, void **out)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_MPSC_RX)) return EK_EINVAL;
    mpsc_chan *c = chan_of_rx(rx);
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    void *m = NULL;
    ek__lock_acquire_nospin(&c->lock);
    int rc = recv_locked(c, &m, &wl);
    ek__lock_release(&c->lock);
    ek__wake_list_wake(&wl);
    if (rc == EK_OK) deliver(c, m, out);
    return rc;
}

int ek_mpsc_blocking_recv(ek_mpsc_receiver *rx, void **out)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_MPSC_RX)) return EK_EINVAL;
    int rc = ek__sync_blocking_check();
    if (rc != EK_OK) return rc;
    ek__sync_parker pk;
    rc = ek__sync_parker_init(&pk);
    if (rc != EK_OK) return rc;
    mpsc_chan *c = chan_of_rx(rx);
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    void *m = NULL;
    ek__lock_acquire_nospin(&c->lock);
    while ((rc = recv_locked(c, &m, &wl)) == EK_EEMPTY) {
        c->rxw.parker = &pk;
        ek__lock_release(&c->lock);
        ek__sync_parker_park(&pk);
        ek__lock_acquire_nospin(&c->lock);
    }
    c->rxw.parker = NULL;
    ek__lock_release(&c->lock);
    ek__sync_parker_destroy(&pk);
    ek__wake_list_wake(&wl);
    if (rc == EK_OK) deliver(c, m, out);
    return rc;
}

int ek_mpsc_close(ek_mpsc_receiver *rx)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_MPSC_RX)) return EK_EINVAL;
    mpsc_chan *c = chan_of_rx(rx);
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek__lock_acquire_nospin(&c->lock);
    c->closed = true;
    ek__permits_close(&c->slots, &wl);
    ek__lock_release(&c->lock);
    ek__wake_list_wake(&wl);
    return EK_OK;
}

int64_t ek_mpsc_len(ek_mpsc_receiver *rx)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_MPSC_RX)) return EK_EINVAL;
    mpsc_chan *c = chan_of_rx(rx);
    ek__lock_acquire_nospin(&c->lock);
    int64_t n = (int64_t)c->len;
    ek__lock_release(&c->lock);
    return n;
}

void ek_mpsc_receiver_drop(ek_mpsc_receiver *rx)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_MPSC_RX)) return;
    mpsc_chan *c = chan_of_rx(rx);
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek__lock_acquire_nospin(&c->lock);
    rx->tag = EK__TAG_DEAD;
    c->closed = true;
    c->rx_alive = false;
    ek__permits_close(&c->slots, &wl);
    /* Take the queue out so the drop function runs without the lock. */
    void **buf = c->buf;
    size_t cap = c->buf_cap, head = c->head, len = c->len;
    c->buf = NULL;
    c->buf_cap = c->head = c->len = 0;
    ek_waker *rxk = c->rxw.waker;
    c->rxw.waker = NULL;
    bool free_chan = c->senders == 0;
    /* After the unlock the last sender may free the channel: keep what we need. */
    ek_drop_fn dropfn = c->drop;
    ek__lock_release(&c->lock);
    ek__wake_list_wake(&wl);
    ek_waker_drop(rxk);
    if (dropfn != NULL)
        for (size_t i = 0; i < len; i++) dropfn(buf[(head + i) & (cap - 1)]);
    ek__free(buf);
    if (free_chan) chan_destroy(c);
}
