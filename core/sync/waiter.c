/*
 * waiter.c - the pieces every sync primitive shares: parkers for blocked
 * threads, waiter registration, the wake list, and the fair permit queue.
 * See sync.h for the locking rule these functions assume.
 */
#include "sync.h"

#include "../sched/context.h"

int ek__sync_parker_init(ek__sync_parker *p)
{
    int rc = ek__mutex_init(&p->m);
    if (rc != 0) return rc;
    rc = ek__cond_init(&p->c);
    if (rc != 0) {
        ek__mutex_destroy(&p->m);
        return rc;
    }
    p->notified = false;
    return EK_OK;
}

void ek__sync_parker_destroy(ek__sync_parker *p)
{
    ek__cond_destroy(&p->c);
    ek__mutex_destroy(&p->m);
}

void ek__sync_parker_park(ek__sync_parker *p)
{
    ek__mutex_lock(&p->m);
    while (!p->notified) ek__cond_wait(&p->c, &p->m);
    p->notified = false;
    ek__mutex_unlock(&p->m);
}

void ek__sync_parker_unpark(ek__sync_parker *p)
{
    ek__mutex_lock(&p->m);
    p->notified = true;
    ek__cond_signal(&p->c);
    ek__mutex_unlock(&p->m);
}

int ek__sync_blocking_check(void)
{
    /* A thread that runs tasks (a worker, or one inside ek_block_on) could be
     * the one that has to run the task we would wait for: refuse rather than
     * deadlock, as Tokio panics there. Blocking-pool threads may block: that is
     * what they are for (a spawn_blocking job feeding a channel). */
    return (ek__cur.rt != NULL && !ek__cur.blocking) ? EK_EDEADLK : EK_OK;
}

void ek__waiter_init(ek__waiter *w)
{
    ek__list_init(&w->node);
    w->waker = NULL;
    w->parker = NULL;
    w->want = 0;
    w->need = 0;
    w->state = EK__W_IDLE;
    w->armed = false;
}

void ek__wake_list_wake(ek__wake_list *wl)
{
    for (unsigned i = 0; i < wl->n; i++) ek_waker_wake(wl->w[i]);
    wl->n = 0;
}

void ek__waiter_wake(ek__waiter *w, ek__wake_list *wl)
{
    if (w->parker != NULL) {
        ek__sync_parker_unpark(w->parker);
        return;
    }
    ek_waker *k = w->waker;
    if (k == NULL) return;
    w->waker = NULL;
    if (wl->n < EK__WAKE_BATCH)
        wl->w[wl->n++] = k;
    else
        ek_waker_wake(k);
}

int ek__waiter_register(ek__waiter *w, ek_cx *cx, ek__sync_parker *pk, ek_waker **old)
{
    *old = NULL;
    if (pk != NULL) {
        w->parker = pk;
        return EK_OK;
    }
    if (w->waker != NULL && ek_waker_will_wake(w->waker, cx)) return EK_OK;
    ek_waker *k = ek_cx_waker(cx);
    if (k == NULL) return EK_ENOMEM;
    *old = w->waker;
    w->waker = k;
    return EK_OK;
}

int ek__waiter_enqueue(ek__waiter *w, ek__list *waiters, ek_cx *cx, ek__sync_parker *pk,
                       ek_waker **old)
{
    int rc = ek__waiter_register(w, cx, pk, old);
    if (rc != EK_OK) return rc;
    if (w->state != EK__W_QUEUED) ek__list_push_back(waiters, &w->node);
    w->state = EK__W_QUEUED;
    return EK_PENDING;
}

void ek__waiter_done(ek__waiter *w)
{
    if (w->state == EK__W_QUEUED) ek__list_remove(&w->node);
    w->state = EK__W_IDLE;
}

void ek__waiters_wake_all(ek__list *waiters, int state, ek__wake_list *wl)
{
    ek__list *n;
    while ((n = ek__list_pop_front(waiters)) != NULL) {
        ek__waiter *w = EK__CONTAINER_OF(n, ek__waiter, node);
        w->state = state;
        ek__waiter_wake(w, wl);
    }
}

int ek__sync_blocking_wait(ek__lock *lock, ek__waiter *w, ek__sync_attempt_fn attempt, void *arg)
{
    int rc = ek__sync_blocking_check();
    if (rc != EK_OK) return rc;
    ek__sync_parker pk;
    rc = ek__sync_parker_init(&pk);
    if (rc != EK_OK) return rc;
    while ((rc = attempt(arg, &pk)) == EK_PENDING) ek__sync_parker_park(&pk);
    ek__lock_acquire_nospin(lock);
    w->parker = NULL; /* under the lock: nobody can still be unparking pk */
    ek__lock_release(lock);
    ek__sync_parker_destroy(&pk);
    return rc;
}

/* ---- the fair permit queue ---- */

void ek__permit_queue_push(ek__list *q, ek__waiter *w, size_t n, size_t part)
{
    w->want = n;
    w->need = n - part;
    w->state = EK__W_QUEUED;
    ek__list_push_back(q, &w->node);
}

size_t ek__permit_queue_assign(ek__list *q, size_t n, ek__wake_list *wl)
{
    while (n > 0 && !ek__list_empty(q)) {
        ek__waiter *w = EK__CONTAINER_OF(q->next, ek__waiter, node);
        size_t take = n < w->need ? n : w->need;
        w->need -= take;
        n -= take;
        if (w->need > 0) break; /* n is 0 now: the front keeps its partial share */
        ek__list_remove(&w->node);
        w->state = EK__W_READY;
        ek__waiter_wake(w, wl);
    }
    return n;
}

size_t ek__permit_queue_unassign(ek__waiter *w)
{
    size_t back = 0;
    if (w->state == EK__W_QUEUED) {
        ek__list_remove(&w->node);
        back = w->want - w->need;
    } else if (w->state == EK__W_READY) {
        back = w->want;
    }
    w->state = EK__W_IDLE;
    return back;
}

size_t ek__permit_queue_close(ek__list *q, ek__wake_list *wl)
{
    size_t back = 0;
    ek__list *n;
    while ((n = ek__list_pop_front(q)) != NULL) {
        ek__waiter *w = EK__CONTAINER_OF(n, ek__waiter, node);
        back += w->want - w->need;
        w->state = EK__W_CLOSED;
        ek__waiter_wake(w, wl);
    }
    return back;
}

void ek__permits_init(ek__permits *p, size_t avail)
{
    p->avail = avail;
    ek__list_init(&p->waiters);
    p->closed = false;
}

bool ek__permits_try(ek__permits *p, size_t n)
{
    if (p->closed || p->avail < n || (n > 0 && !ek__list_empty(&p->waiters))) return false;
    p->avail -= n;
    return true;
}

bool ek__permits_acquire(ek__permits *p, ek__waiter *w, size_t n)
{
    if (ek__permits_try(p, n)) return true;
    /* Nobody ahead of us may be skipped, but when the queue is empty whatever is
     * free now is ours already: a large request then only waits for the rest. */
    size_t part = ek__list_empty(&p->waiters) ? p->avail : 0;
    p->avail -= part;
    ek__permit_queue_push(&p->waiters, w, n, part);
    return false;
}

void ek__permits_release(ek__permits *p, size_t n, ek__wake_list *wl)
{
    p->avail += ek__permit_queue_assign(&p->waiters, n, wl);
}

void ek__permits_cancel(ek__permits *p, ek__waiter *w, ek__wake_list *wl)
{
    ek__permits_release(p, ek__permit_queue_unassign(w), wl);
}

void ek__permits_close(ek__permits *p, ek__wake_list *wl)
{
    p->closed = true;
    p->avail += ek__permit_queue_close(&p->waiters, wl);
}
