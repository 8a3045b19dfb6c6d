/*
 * futures.c - heap futures over the waits of the sync primitives, so that they
 * compose with ek_timeout, ek_select and ek_join_all.
 *
 * Each is a thin state over the direct poll of ekiden/sync.h and inherits its
 * cancellation safety: the waits that hold a place in a queue (semaphore
 * acquire, mutex lock, notified) own their waiter object, so dropping the
 * future gives the place back exactly as dropping the waiter object does; the
 * receives borrow the receiver and take nothing from it unless they complete.
 * One allocation at creation (plus the waiter object for the queued waits),
 * none while polling or dropping.
 */
#include "../task/future.h"
#include "sync.h"

/* ---- semaphore acquire ---- */

typedef struct acquire_fut {
    ek_semaphore_permit *p; /* NULL once handed to the awaiter */
    size_t n;
} acquire_fut;

static int acquire_poll(void *state, ek_cx *cx, void **out)
{
    acquire_fut *a = state;
    int rc = ek_semaphore_acquire(a->p, cx, a->n);
    if (rc == EK_OK) {
        *out = a->p;
        a->p = NULL;
    }
    return rc;
}

static void acquire_drop(void *state)
{
    ek_semaphore_permit_drop(((acquire_fut *)state)->p);
}

int ek_semaphore_acquire_future(ek_semaphore *s, size_t n, ek_future **out)
{
    if (!EK__CHECK_TAG(s, EK__TAG_SEMAPHORE) || out == NULL || n > EK_SEMAPHORE_MAX_PERMITS)
        return EK_EINVAL;
    ek_semaphore_permit *p;
    int rc = ek_semaphore_permit_new(s, &p);
    if (rc != EK_OK) return rc;
    acquire_fut *a;
    rc = ek__future_new_inline(acquire_poll, acquire_drop, sizeof *a, out, (void **)&a);
    if (rc != EK_OK) {
        ek_semaphore_permit_drop(p);
        return rc;
    }
    a->p = p;
    a->n = n;
    return EK_OK;
}

/* ---- mutex lock ---- */

typedef struct lock_fut {
    ek_mutex_guard *g; /* NULL once handed to the awaiter */
} lock_fut;

static int lock_poll(void *state, ek_cx *cx, void **out)
{
    lock_fut *l = state;
    int rc = ek_mutex_lock(l->g, cx);
    if (rc == EK_OK) {
        *out = l->g;
        l->g = NULL;
    }
    return rc;
}

static void lock_drop(void *state)
{
    ek_mutex_guard_drop(((lock_fut *)state)->g);
}

int ek_mutex_lock_future(ek_mutex *m, ek_future **out)
{
    if (!EK__CHECK_TAG(m, EK__TAG_MUTEX) || out == NULL) return EK_EINVAL;
    ek_mutex_guard *g;
    int rc = ek_mutex_guard_new(m, &g);
    if (rc != EK_OK) return rc;
    lock_fut *l;
    rc = ek__future_new_inline(lock_poll, lock_drop, sizeof *l, out, (void **)&l);
    if (rc != EK_OK) {
        ek_mutex_guard_drop(g);
        return rc;
    }
    l->g = g;
    return EK_OK;
}

/* ---- notified ---- */

typedef struct notified_fut {
    ek_notified *w;
} notified_fut;

static int notified_poll(void *state, ek_cx *cx, void **out)
{
    int rc = ek_notified_poll(((notified_fut *)state)->w, cx);
    if (rc == EK_OK) *out = NULL;
    return rc;
}

static void notified_drop(void *state)
{
    /* A notification picked for this waiter but not yet seen is passed on. */
    ek_notified_drop(((notified_fut *)state)->w);
}

int ek_notified_future(ek_notify *n, ek_future **out)
{
    if (!EK__CHECK_TAG(n, EK__TAG_NOTIFY) || out == NULL) return EK_EINVAL;
    ek_notified *w;
    int rc = ek_notified_new(n, &w);
    if (rc != EK_OK) return rc;
    notified_fut *nf;
    rc = ek__future_new_inline(notified_poll, notified_drop, sizeof *nf, out, (void **)&nf);
    if (rc != EK_OK) {
        ek_notified_drop(w);
        return rc;
    }
    nf->w = w;
    return EK_OK;
}

/* ---- receives (borrow the receiver) ---- */

typedef struct recv_fut {
    void *rx;
    uint64_t *missed; /* broadcast only; borrowed, may be NULL */
} recv_fut;

static int oneshot_recv_poll(void *state, ek_cx *cx, void **out)
{
    return ek_oneshot_recv(((recv_fut *)state)->rx, cx, out);
}

static int mpsc_recv_poll(void *state, ek_cx *cx, void **out)
{
    return ek_mpsc_recv(((recv_fut *)state)->rx, cx, out);
}

static int broadcast_recv_poll(void *state, ek_cx *cx, void **out)
{
    recv_fut *r = state;
    return ek_broadcast_recv(r->rx, cx, out, r->missed);
}

static int watch_changed_poll(void *state, ek_cx *cx, void **out)
{
    int rc = ek_watch_changed(((recv_fut *)state)->rx, cx);
    if (rc == EK_OK) *out = NULL;
    return rc;
}

static int recv_future(void *rx, uint32_t tag, ek_poll_fn poll, uint64_t *missed, ek_future **out)
{
    if (!EK__CHECK_TAG(rx, tag) || out == NULL) return EK_EINVAL;
    recv_fut *r;
    int rc = ek__future_new_inline(poll, NULL, sizeof *r, out, (void **)&r);
    if (rc != EK_OK) return rc;
    r->rx = rx;
    r->missed = missed;
    return EK_OK;
}

int ek_oneshot_recv_future(ek_oneshot_receiver *rx, ek_future **out)
{
    return recv_future(rx, EK__TAG_ONESHOT_RX, oneshot_recv_poll, NULL, out);
}

int ek_mpsc_recv_future(ek_mpsc_receiver *rx, ek_future **out)
{
    return recv_future(rx, EK__TAG_MPSC_RX, mpsc_recv_poll, NULL, out);
}

int ek_broadcast_recv_future(ek_broadcast_receiver *rx, uint64_t *missed, ek_future **out)
{
    return recv_future(rx, EK__TAG_BCAST_RX, broadcast_recv_poll, missed, out);
}

int ek_watch_changed_future(ek_watch_receiver *rx, ek_future **out)
{
    return recv_future(rx, EK__TAG_WATCH_RX, watch_changed_poll, NULL, out);
}
