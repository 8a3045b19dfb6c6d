/*
 * watch.c - a single value with a version; receivers wait for a version they
 * have not seen. One sender (embedded in the shared allocation), any number of
 * receivers, each embedding its waiter. Waiting receivers sit in one list that
 * every send empties (all are woken: each then compares versions itself).
 */
#include "sync.h"

struct ek_watch_sender {
    uint32_t tag;
};

typedef struct watch_shared {
    ek__lock lock;
    void *value;
    uint64_t version; /* bumped by every send */
    bool tx_alive;
    size_t receivers;
    ek__list waiters;
    ek_clone_fn clone;
    ek_drop_fn drop;
    struct ek_watch_sender tx;
} watch_shared;

struct ek_watch_receiver {
    uint32_t tag;
    watch_shared *sh;
    uint64_t seen;
    ek__waiter w; /* linked in sh->waiters while state is EK__W_QUEUED */
};

static watch_shared *shared_of_tx(ek_watch_sender *tx)
{
    return EK__CONTAINER_OF(tx, watch_shared, tx);
}

static void shared_destroy(watch_shared *sh)
{
    if (sh->drop != NULL) sh->drop(sh->value);
    ek__free(sh);
}

static ek_watch_receiver *receiver_new(watch_shared *sh, uint64_t seen)
{
    ek_watch_receiver *rx = ek__malloc(sizeof *rx);
    if (rx == NULL) return NULL;
    rx->tag = EK__TAG_WATCH_RX;
    rx->sh = sh;
    rx->seen = seen;
    ek__waiter_init(&rx->w);
    return rx;
}

int ek_watch_new(void *initial, ek_clone_fn clone, ek_drop_fn drop, ek_watch_sender **tx,
                 ek_watch_receiver **rx)
{
    /* Consumes initial in every case: on error it goes through drop now. */
    int rc = EK_EINVAL;
    watch_shared *sh = NULL;
    ek_watch_receiver *r;
    if (tx == NULL || rx == NULL) goto fail;
    rc = EK_ENOMEM;
    sh = ek__calloc(1, sizeof *sh);
    if (sh == NULL) goto fail;
    ek__lock_init(&sh->lock);
    r = receiver_new(sh, 0);
    if (r == NULL) goto fail;
    sh->value = initial;
    sh->tx_alive = true;
    sh->receivers = 1;
    ek__list_init(&sh->waiters);
    sh->clone = clone;
    sh->drop = drop;
    sh->tx.tag = EK__TAG_WATCH_TX;
    *tx = &sh->tx;
    *rx = r;
    return EK_OK;
fail:
    ek__free(sh);
    if (drop) drop(initial);
    return rc;
}

/* Replace the value and wake every waiting receiver. */
static int send_impl(ek_watch_sender *tx, void *value, bool need_receivers)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_WATCH_TX)) return EK_EINVAL;
    watch_shared *sh = shared_of_tx(tx);
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek__lock_acquire_nospin(&sh->lock);
    if (need_receivers && sh->receivers == 0) {
        ek__lock_release(&sh->lock);
        return EK_ECLOSED;
    }
    void *old = sh->value;
    sh->value = value;
    sh->version++;
    ek__waiters_wake_all(&sh->waiters, EK__W_READY, &wl);
    ek__lock_release(&sh->lock);
    ek__wake_list_wake(&wl);
    if (sh->drop != NULL) sh->drop(old);
    return EK_OK;
}

int ek_watch_send(ek_watch_sender *tx, void *value)
{
    return send_impl(tx, value, true);
}

int ek_watch_send_replace(ek_watch_sender *tx, void *value)
{
    return send_impl(tx, value, false);
}

int ek_watch_subscribe(ek_watch_sender *tx, ek_watch_receiver **out)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_WATCH_TX) || out == NULL) return EK_EINVAL;
    watch_shared *sh = shared_of_tx(tx);
    ek_watch_receiver *r = receiver_new(sh, 0);
    if (r == NULL) return EK_ENOMEM;
    ek__lock_acquire_nospin(&sh->lock);
    r->seen = sh->version;
    sh->receivers++;
    ek__lock_release(&sh->lock);
    *out = r;
    return EK_OK;
}

int64_t ek_watch_receiver_count(ek_watch_sender *tx)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_WATCH_TX)) return EK_EINVAL;
    watch_shared *sh = shared_of_tx(tx);
    ek__lock_acquire_nospin(&sh->lock);
    int64_t n = (int64_t)sh->receivers;
    ek__lock_release(&sh->lock);
    return n;
}

void ek_watch_sender_drop(ek_watch_sender *tx)
{
    if (!EK__CHECK_TAG(tx, EK__TAG_WATCH_TX)) return;
    watch_shared *sh = shared_of_tx(tx);
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek__lock_acquire_nospin(&sh->lock);
    tx->tag = EK__TAG_DEAD;
    sh->tx_alive = false;
    ek__waiters_wake_all(&sh->waiters, EK__W_CLOSED, &wl);
    bool last = sh->receivers == 0;
    ek__lock_release(&sh->lock);
    ek__wake_list_wake(&wl);
    if (last) shared_destroy(sh);
}

static int borrow_impl(ek_watch_receiver *rx, void **out, bool update)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_WATCH_RX) || out == NULL) return EK_EINVAL;
    watch_shared *sh = rx->sh;
    int rc = EK_OK;
    ek__lock_acquire_nospin(&sh->lock);
    if (sh->clone != NULL)
        rc = sh->clone(sh->value, out);
    else
        *out = sh->value;
    if (rc == EK_OK && update) rx->seen = sh->version;
    ek__lock_release(&sh->lock);
    return rc;
}

int ek_watch_borrow(ek_watch_receiver *rx, void **out)
{
    return borrow_impl(rx, out, false);
}

int ek_watch_borrow_and_update(ek_watch_receiver *rx, void **out)
{
    return borrow_impl(rx, out, true);
}

int ek_watch_has_changed(ek_watch_receiver *rx)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_WATCH_RX)) return EK_EINVAL;
    watch_shared *sh = rx->sh;
    ek__lock_acquire_nospin(&sh->lock);
    int rc = sh->version != rx->seen ? 1 : sh->tx_alive ? 0 : EK_ECLOSED;
    ek__lock_release(&sh->lock);
    return rc;
}

static int changed_impl(ek_watch_receiver *rx, ek_cx *cx, ek__sync_parker *pk)
{
    watch_shared *sh = rx->sh;
    ek_waker *old = NULL;
    int rc;
    ek__lock_acquire_nospin(&sh->lock);
    if (sh->version != rx->seen) {
        rx->seen = sh->version;
        rc = EK_OK;
    } else if (!sh->tx_alive) {
        rc = EK_ECLOSED;
    } else {
        rc = ek__waiter_enqueue(&rx->w, &sh->waiters, cx, pk, &old);
    }
    if (rc != EK_PENDING) ek__waiter_done(&rx->w);
    ek__lock_release(&sh->lock);
    ek_waker_drop(old);
    return rc;
}

int ek_watch_changed(ek_watch_receiver *rx, ek_cx *cx)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_WATCH_RX) || cx == NULL) return EK_EINVAL;
    int rc = ek_coop_proceed(cx);
    if (rc != EK_OK) return rc;
    return ek__cx_pended(cx, changed_impl(rx, cx, NULL), EK__SITE_WATCH);
}

static int blocking_changed_attempt(void *arg, ek__sync_parker *pk)
{
    return changed_impl(arg, NULL, pk);
}

int ek_watch_blocking_changed(ek_watch_receiver *rx)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_WATCH_RX)) return EK_EINVAL;
    return ek__sync_blocking_wait(&rx->sh->lock, &rx->w, blocking_changed_attempt, rx);
}

int ek_watch_receiver_clone(ek_watch_receiver *rx, ek_watch_receiver **out)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_WATCH_RX) || out == NULL) return EK_EINVAL;
    watch_shared *sh = rx->sh;
    ek_watch_receiver *r = receiver_new(sh, rx->seen);
    if (r == NULL) return EK_ENOMEM;
    ek__lock_acquire_nospin(&sh->lock);
    sh->receivers++;
    ek__lock_release(&sh->lock);
    *out = r;
    return EK_OK;
}

void ek_watch_receiver_drop(ek_watch_receiver *rx)
{
    if (!EK__CHECK_TAG(rx, EK__TAG_WATCH_RX)) return;
    watch_shared *sh = rx->sh;
    ek__lock_acquire_nospin(&sh->lock);
    ek__waiter_done(&rx->w);
    bool last = --sh->receivers == 0 && !sh->tx_alive;
    ek__lock_release(&sh->lock);
    ek_waker_drop(rx->w.waker);
    rx->tag = EK__TAG_DEAD;
    ek__free(rx);
    if (last) shared_destroy(sh);
}
