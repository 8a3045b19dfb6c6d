/*
 * broadcast.c - a bounded ring that every receiver reads at its own position.
 *
 * Positions are absolute (uint64_t, never wrap in practice): message number p
 * lives in ring[p % cap] while tail - cap <= p < tail. A receiver at `next`
 * has lagged when tail - next > cap: it is told how many it missed and moved to
 * the oldest kept message. Each slot counts the receivers that still have to
 * read it (`rem`, set to the receiver count at send time; receivers joining
 * later start at tail and are not counted); the channel's copy is dropped when
 * the last reader reads it, or else when the slot is overwritten or the channel
 * freed. A receiver that goes away gives up its share of every slot it had not
 * read. All under one mutex.
 */
#include "sync.h"

typedef struct bc_slot {
    void *msg;
    size_t rem; /* receivers that have yet to read it */
    bool full;  /* msg not yet dropped */
} bc_slot;

typedef struct bc_shared {
    ek__lock lock;
    bc_slot *ring;
    size_t cap;
    uint64_t tail; /* position of the next message */
    size_t senders, receivers;
    ek__list waiters; /* receivers waiting for tail to move */
    ek_clone_fn clone;
    ek_drop_fn drop;
} bc_shared;

struct ek_broadcast_sender {
    uint32_t tag;
    bc_shared *sh;
};

struct ek_broadcast_receiver {
    uint32_t tag;
    bc_shared *sh;
    uint64_t next;
    ek__waiter w;
};

static void shared_destroy(bc_shared *sh)
{
    for (size_t i = 0; i < sh->cap; i++)
        if (sh->ring[i].full && sh->drop != NULL) sh->drop(sh->ring[i].msg);
    ek__free(sh->ring);
    ek__free(sh);
}

static ek_broadcast_receiver *receiver_alloc(bc_shared *sh)
{
    ek_broadcast_receiver *rx = ek__malloc(sizeof *rx);
    if (rx == NULL) return NULL;
    rx->tag = EK__TAG_BCAST_RX;
    rx->sh = sh;
    rx->next = 0;
    ek__waiter_init(&rx->w);
    return rx;
}

static ek_broadcast_sender *sender_alloc(bc_shared *sh)
{
    ek_broadcast_sender *tx = ek__malloc(sizeof *tx);
    if (tx == NULL) return NULL;
    tx->tag = EK__TAG_BCAST_TX;
    tx->sh = sh;
    return tx;
}

int ek_broadcast_new(size_t cap, ek_clone_fn clone, ek_drop_fn drop, ek_broadcast_sender **tx,
                     ek_broadcast_receiver **rx)
{
    if (cap == 0 || cap > (SIZE_MAX >> 8) || tx == NULL || rx == NULL) return EK_EINVAL;
    /* Without a clone every receiver gets the same pointer, so the channel cannot
     * drop it when the last one receives it (that receiver still holds it). */
    if (clone == NULL && drop != NULL) return EK_EINVAL;
    bc_shared *sh = ek__calloc(1, sizeof *sh);
    if (sh == NULL) return EK_ENOMEM;
    sh->ring = ek__calloc(cap, sizeof *sh->ring);
    ek_broadcast_sender *t = sh->ring ? sender_alloc(sh) : NULL;
    ek_broadcast_receiver *r = t ? receiver_alloc(sh) : NULL;
    if (r == NULL) {
        ek__free(r);
        ek__free(t);
        ek__free(sh->ring);
        ek__free(sh);
        return EK_ENOMEM;
    }
    sh->cap = cap;
    sh->senders = 1;
    sh->receivers = 1;
    ek__list_init(&sh->waiters);
    sh->clone = clone;
    sh->drop = drop;
    *tx = t;
    *rx = r;
    return EK_OK;
}

int ek_broadcast_sender_clone(ek_broadcast_sender *tx, ek_broadcast_sender **out)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_BCAST_TX) || out == NULL) return EK_EINVAL;
    ek_broadcast_sender *t = sender_alloc(tx->sh);
    if (t == NULL) return EK_ENOMEM;
    ek__lock_acquire_nospin(&tx->sh->lock);
    tx->sh->senders++;
    ek__lock_release(&tx->sh->lock);
    *out = t;
    return EK_OK;
}

int ek_broadcast_subscribe(ek_broadcast_sender *tx, ek_broadcast_receiver **out)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_BCAST_TX) || out == NULL) return EK_EINVAL;
    bc_shared *sh = tx->sh;
    ek_broadcast_receiver *r = receiver_alloc(sh);
    if (r == NULL) return EK_ENOMEM;
    ek__lock_acquire_nospin(&sh->lock);
    r->next = sh->tail;
    sh->receivers++;
    ek__lock_release(&sh->lock);
    *out = r;
    return EK_OK;
}

void ek_broadcast_sender_drop(ek_broadcast_sender *tx)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_BCAST_TX)) return;
    bc_shared *sh = tx->sh;
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek__lock_acquire_nospin(&sh->lock);
    bool last = --sh->senders == 0;
    if (last) ek__waiters_wake_all(&sh->waiters, EK__W_CLOSED, &wl);
    bool destroy = last && sh->receivers == 0;
    ek__lock_release(&sh->lock);
    ek__wake_list_wake(&wl);
    tx->tag = EK__TAG_DEAD;
    ek__free(tx);
    if (destroy) shared_destroy(sh);
}

int ek_broadcast_send(ek_broadcast_sender *tx, void *msg, size_t *receivers)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_BCAST_TX)) return EK_EINVAL;
    bc_shared *sh = tx->sh;
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek__lock_acquire_nospin(&sh->lock);
    if (sh->receivers == 0) {
        ek__lock_release(&sh->lock);
        return EK_ECLOSED;
    }
    bc_slot *s = &sh->ring[sh->tail % sh->cap];
    bool evict = s->full;
    void *old = s->msg;
    s->msg = msg;
    s->rem = sh->receivers;
    s->full = true;
    sh->tail++;
    if (receivers != NULL) *receivers = sh->receivers;
    ek__waiters_wake_all(&sh->waiters, EK__W_READY, &wl);
    ek__lock_release(&sh->lock);
    ek__wake_list_wake(&wl);
    if (evict && sh->drop != NULL) sh->drop(old);
    return EK_OK;
}

/*
 * Read the next message for rx (lock held). EK_OK, EK_ELAGGED, the clone
 * function's error, EK_EEMPTY or EK_ECLOSED. *dropme gets the channel's copy
 * when this was its last reader.
 */
static int recv_locked(ek_broadcast_receiver *rx, void **out, uint64_t *missed, void **dropme,
                       bool *drop_it)
{
    bc_shared *sh = rx->sh;
    if (sh->tail - rx->next > sh->cap) {
        uint64_t oldest = sh->tail - sh->cap;
        if (missed != NULL) *missed = oldest - rx->next;
        rx->next = oldest;
        return EK_ELAGGED;
    }
    if (rx->next == sh->tail) return sh->senders == 0 ? EK_ECLOSED : EK_EEMPTY;
    bc_slot *s = &sh->ring[rx->next % sh->cap];
    rx->next++;
    EK__ASSERT(s->full && s->rem > 0);
    int rc = EK_OK;
    /* out NULL: the message is skipped, so no copy is made (one made here
     * would have no owner). */
    if (out != NULL) {
        void *copy = s->msg;
        if (sh->clone != NULL) rc = sh->clone(s->msg, &copy);
        if (rc == EK_OK) *out = copy;
    }
    if (--s->rem == 0) {
        *dropme = s->msg;
        *drop_it = true;
        s->full = false;
        s->msg = NULL;
    }
    return rc;
}

static int recv_impl(ek_broadcast_receiver *rx, ek_cx *cx, ek__sync_parker *pk, bool wait,
                     void **out, uint64_t *missed)
{
    bc_shared *sh = rx->sh;
    void *dropme = NULL;
    bool drop_it = false;
    ek_waker *old = NULL;
    ek__lock_acquire_nospin(&sh->lock);
    int rc = recv_locked(rx, out, missed, &dropme, &drop_it);
    if (rc == EK_EEMPTY && wait) rc = ek__waiter_enqueue(&rx->w, &sh->waiters, cx, pk, &old);
    if (rc != EK_PENDING) ek__waiter_done(&rx->w);
    ek__lock_release(&sh->lock);
    ek_waker_drop(old);
    if (drop_it && sh->drop != NULL) sh->drop(dropme);
    return rc;
}

int ek_broadcast_recv(ek_broadcast_receiver *rx, ek_cx *cx, void **out, uint64_t *missed)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_BCAST_RX) || cx == NULL) return EK_EINVAL;
    int rc = ek_coop_proceed(cx);
    if (rc != EK_OK) return rc;
    return ek__cx_pended(cx, recv_impl(rx, cx, NULL, true, out, missed), EK__SITE_BROADCAST);
}

int ek_broadcast_try_recv(ek_broadcast_receiver *rx, void **out, uint64_t *missed)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_BCAST_RX)) return EK_EINVAL;
    return recv_impl(rx, NULL, NULL, false, out, missed);
}

typedef struct blocking_recv {
    ek_broadcast_receiver *rx;
    void **out;
    uint64_t *missed;
} blocking_recv;

static int blocking_recv_attempt(void *arg, ek__sync_parker *pk)
{
    blocking_recv *b = arg;
    return recv_impl(b->rx, NULL, pk, true, b->out, b->missed);
}

int ek_broadcast_blocking_recv(ek_broadcast_receiver *rx, void **out, uint64_t *missed)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_BCAST_RX)) return EK_EINVAL;
    blocking_recv b = {rx, out, missed};
    return ek__sync_blocking_wait(&rx->sh->lock, &rx->w, blocking_recv_attempt, &b);
}

int ek_broadcast_receiver_clone(ek_broadcast_receiver *rx, ek_broadcast_receiver **out)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_BCAST_RX) || out == NULL) return EK_EINVAL;
    bc_shared *sh = rx->sh;
    ek_broadcast_receiver *r = receiver_alloc(sh);
    if (r == NULL) return EK_ENOMEM;
    ek__lock_acquire_nospin(&sh->lock);
    /* The clone owes a read of every kept message rx has not read yet. */
    uint64_t from = sh->tail - rx->next > sh->cap ? sh->tail - sh->cap : rx->next;
    for (uint64_t p = from; p < sh->tail; p++) sh->ring[p % sh->cap].rem++;
    r->next = rx->next;
    sh->receivers++;
    ek__lock_release(&sh->lock);
    *out = r;
    return EK_OK;
}

void ek_broadcast_receiver_drop(ek_broadcast_receiver *rx)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_BCAST_RX)) return;
    bc_shared *sh = rx->sh;
    ek__lock_acquire_nospin(&sh->lock);
    ek__waiter_done(&rx->w);
    /* Release this receiver's share of every kept message it did not read. A
     * message left with rem == 0 is never read again (later receivers start at
     * tail); it is dropped when overwritten or when the channel is freed, so no
     * user code runs under the lock and nothing allocates here. */
    uint64_t from = sh->tail - rx->next > sh->cap ? sh->tail - sh->cap : rx->next;
    for (uint64_t p = from; p < sh->tail; p++) sh->ring[p % sh->cap].rem--;
    bool destroy = --sh->receivers == 0 && sh->senders == 0;
    ek__lock_release(&sh->lock);
    ek_waker_drop(rx->w.waker);
    rx->tag = EK__TAG_DEAD;
    ek__free(rx);
    if (destroy) shared_destroy(sh);
}
