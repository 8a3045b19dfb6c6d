/*
 * notify.c - Tokio's Notify: notify_one wakes the longest waiter or stores one
 * permit; notify_waiters wakes every waiter that existed before the call.
 *
 * "Existed before" is decided by a generation counter: an ek_notified records
 * the generation when created (or reset), notify_waiters increments it, so a
 * waiter created before the call completes even if it was never polled (and so
 * never queued) - exactly Tokio's rule. notify_one picks a queued waiter and
 * marks it NOTIFIED_ONE; if that waiter is dropped before it reports EK_OK the
 * notification moves on (to the next waiter, or back into the permit).
 */
#include "sync.h"

enum { N_IDLE, N_QUEUED, N_NOTIFIED_ONE, N_NOTIFIED_ALL, N_DONE };

struct ek_notify {
    uint32_t tag;
    ek__refcount refs; /* handles + waiters */
    ek__lock lock;
    ek__list waiters; /* FIFO of ek_notified.w.node */
    uint64_t gen;     /* ek_notify_waiters calls */
    bool permit;
};

struct ek_notified {
    uint32_t tag;
    ek_notify *n;
    ek__waiter w; /* w.state unused: `state` below is notify's own */
    uint64_t gen;
    int state;
};

int ek_notify_new(ek_notify **out)
{
    if (out == NULL) return EK_EINVAL;
    ek_notify *n = ek__malloc(sizeof *n);
    if (n == NULL) return EK_ENOMEM;
    ek__lock_init(&n->lock);
    n->tag = EK__TAG_NOTIFY;
    ek__ref_init(&n->refs);
    ek__list_init(&n->waiters);
    n->gen = 0;
    n->permit = false;
    *out = n;
    return EK_OK;
}

/* A new reference; the caller holds one already. */
static ek_notify *notify_ref(ek_notify *n)
{
    ek__ref_get(&n->refs);
    return n;
}

int ek_notify_clone(ek_notify *n, ek_notify **out)
{
    if (!EK__CHECK_TAG(n, EK__TAG_NOTIFY) || out == NULL) return EK_EINVAL;
    *out = notify_ref(n);
    return EK_OK;
}

void ek_notify_drop(ek_notify *n)
{
    if (!EK__CHECK_TAG(n, EK__TAG_NOTIFY)) return;
    if (!ek__ref_put(&n->refs)) return;
    EK__ASSERT(ek__list_empty(&n->waiters));
    n->tag = EK__TAG_DEAD;
    ek__free(n);
}

/* notify_one with the lock held. */
static void notify_one_locked(ek_notify *n, ek__wake_list *wl)
{
    ek__list *node = ek__list_pop_front(&n->waiters);
    if (node == NULL) {
        n->permit = true;
        return;
    }
    ek_notified *w = EK__CONTAINER_OF(node, ek_notified, w.node);
    w->state = N_NOTIFIED_ONE;
    ek__waiter_wake(&w->w, wl);
}

int ek_notify_one(ek_notify *n)
{
    if (!EK__CHECK_TAG(n, EK__TAG_NOTIFY)) return EK_EINVAL;
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek__lock_acquire_nospin(&n->lock);
    notify_one_locked(n, &wl);
    ek__lock_release(&n->lock);
    ek__wake_list_wake(&wl);
    return EK_OK;
}

int ek_notify_waiters(ek_notify *n)
{
    if (!EK__CHECK_TAG(n, EK__TAG_NOTIFY)) return EK_EINVAL;
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek__lock_acquire_nospin(&n->lock);
    n->gen++;
    ek__list *node;
    while ((node = ek__list_pop_front(&n->waiters)) != NULL) {
        ek_notified *w = EK__CONTAINER_OF(node, ek_notified, w.node);
        w->state = N_NOTIFIED_ALL;
        ek__waiter_wake(&w->w, &wl);
    }
    ek__lock_release(&n->lock);
    ek__wake_list_wake(&wl);
    return EK_OK;
}

int ek_notified_new(ek_notify *n, ek_notified **out)
{
    if (!EK__CHECK_TAG(n, EK__TAG_NOTIFY) || out == NULL) return EK_EINVAL;
    ek_notified *w = ek__malloc(sizeof *w);
    if (w == NULL) return EK_ENOMEM;
    w->tag = EK__TAG_NOTIFIED;
    w->n = notify_ref(n);
    ek__waiter_init(&w->w);
    w->state = N_IDLE;
    ek__lock_acquire_nospin(&n->lock);
    w->gen = n->gen;
    ek__lock_release(&n->lock);
    *out = w;
    return EK_OK;
}

static int poll_impl(ek_notified *w, ek_cx *cx, ek__sync_parker *pk)
{
    ek_notify *n = w->n;
    ek_waker *old = NULL;
    int rc = EK_PENDING;
    ek__lock_acquire_nospin(&n->lock);
    if (w->state >= N_NOTIFIED_ONE) {
        rc = EK_OK;
    } else if (w->gen != n->gen) {
        rc = EK_OK; /* a notify_waiters came after this waiter was created */
    } else if (w->state == N_IDLE && n->permit) {
        n->permit = false;
        rc = EK_OK;
    }
    if (rc == EK_OK) {
        if (w->state == N_QUEUED) ek__list_remove(&w->w.node);
        w->state = N_DONE;
    } else {
        rc = ek__waiter_register(&w->w, cx, pk, &old);
        if (rc == EK_OK) {
            if (w->state == N_IDLE) ek__list_push_back(&n->waiters, &w->w.node);
            w->state = N_QUEUED;
            rc = EK_PENDING;
        }
    }
    ek__lock_release(&n->lock);
    ek_waker_drop(old);
    return rc;
}

int ek_notified_poll(ek_notified *w, ek_cx *cx)
{
    if (!EK__CHECK_TAG(w, EK__TAG_NOTIFIED) || cx == NULL) return EK_EINVAL;
    int rc = ek_coop_proceed(cx);
    if (rc != EK_OK) return rc;
    return ek__cx_pended(cx, poll_impl(w, cx, NULL), EK__SITE_NOTIFY);
}

static int blocking_wait_attempt(void *arg, ek__sync_parker *pk)
{
    return poll_impl(arg, NULL, pk);
}

int ek_notified_blocking_wait(ek_notified *w)
{
    if (!EK__CHECK_TAG(w, EK__TAG_NOTIFIED)) return EK_EINVAL;
    return ek__sync_blocking_wait(&w->n->lock, &w->w, blocking_wait_attempt, w);
}

/* Leave the queue; pass on a notify_one this waiter received but never reported. */
static void disarm(ek_notified *w)
{
    ek_notify *n = w->n;
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek__lock_acquire_nospin(&n->lock);
    if (w->state == N_QUEUED) ek__list_remove(&w->w.node);
    if (w->state == N_NOTIFIED_ONE) notify_one_locked(n, &wl);
    w->state = N_IDLE;
    w->gen = n->gen;
    ek__lock_release(&n->lock);
    ek__wake_list_wake(&wl);
}

int ek_notified_reset(ek_notified *w)
{
    if (!EK__CHECK_TAG(w, EK__TAG_NOTIFIED)) return EK_EINVAL;
    disarm(w);
    return EK_OK;
}

void ek_notified_drop(ek_notified *w)
{
    if (!EK__CHECK_TAG(w, EK__TAG_NOTIFIED)) return;
    disarm(w);
    ek_waker_drop(w->w.waker);
    w->tag = EK__TAG_DEAD;
    ek_notify *n = w->n;
    ek__free(w);
    ek_notify_drop(n);
}
