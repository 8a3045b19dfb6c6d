/* inject.c - the global injection queue (inject.h). */
#include "inject.h"
#include "fifo.h"

int ek__inject_init(ek__inject *q)
{
    q->head = q->tail = NULL;
    atomic_init(&q->len, 0);
    atomic_init(&q->stash, NULL);
    q->closed = false;
    ek__lock_init(&q->lock);
    return EK_OK;
}

/* Release a chain of notifications linked through ->next, ending in NULL. */
static void drop_chain(ek__task *t)
{
    while (t) {
        ek__task *next = t->next;
        ek__task_drop_notification(t);
        t = next;
    }
}

void ek__inject_destroy(ek__inject *q)
{
    EK__UNUSED(q); /* a futex word holds nothing */
}

/* Under the lock: move the stash, reversed to oldest first, to the FIFO. */
static void unstash_locked(ek__inject *q)
{
    /* Empty, or closed (only ek__inject_close, under the lock, stores that). */
    if ((uintptr_t)atomic_load_explicit(&q->stash, memory_order_relaxed) <=
        (uintptr_t)EK__INJECT_CLOSED)
        return;
    /* Acquire pairs with the pushes' release CAS: their links and the tasks'
     * state are seen. */
    ek__task *t = atomic_exchange_explicit(&q->stash, NULL, memory_order_acquire);
    ek__task *first = NULL, *last = t;
    size_t n = 0;
    while (t) {
        ek__task *next = t->next;
        t->next = first;
        first = t;
        t = next;
        n++;
    }
    if (n == 0) return;
    ek__fifo_push_chain(&q->head, &q->tail, first, last);
    /* Writers hold the lock: a store, not a read-modify-write. Release: a
     * worker that sees len > 0 then takes the lock and finds them. */
    atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) + n,
                          memory_order_release);
}

void ek__inject_push_batch(ek__inject *q, ek__task *first, ek__task *last, size_t n)
{
    ek__lock_acquire(&q->lock);
    if (EK__UNLIKELY(q->closed)) {
        ek__lock_release(&q->lock);
        last->next = NULL;
        drop_chain(first);
        return;
    }
    unstash_locked(q); /* what was stashed before this batch goes first */
    ek__fifo_push_chain(&q->head, &q->tail, first, last);
    atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) + n,
                          memory_order_release);
    ek__lock_release(&q->lock);
}

void ek__inject_push(ek__inject *q, ek__task *t)
{
    ek__task *head = atomic_load_explicit(&q->stash, memory_order_relaxed);
    do {
        if (EK__UNLIKELY(head == EK__INJECT_CLOSED)) {
            ek__task_drop_notification(t); /* nobody pops a closed queue */
            return;
        }
        t->next = head;
        /* Release: the link and everything written to the task before its
         * push are seen by the consumer's acquire exchange. */
    } while (!atomic_compare_exchange_weak_explicit(&q->stash, &head, t, memory_order_release,
                                                    memory_order_relaxed));
}

size_t ek__inject_pop_n(ek__inject *q, size_t max, ek__task **first)
{
    *first = NULL;
    if (max == 0 || ek__inject_len(q) == 0) return 0;
    ek__lock_acquire(&q->lock);
    unstash_locked(q);
    size_t n = 0;
    ek__task *h = q->head, *last = NULL;
    while (h && n < max) {
        last = h;
        h = h->next;
        n++;
    }
    if (n) {
        *first = q->head;
        last->next = NULL;
        q->head = h;
        if (!h) q->tail = NULL;
        atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) - n,
                              memory_order_relaxed);
    }
    ek__lock_release(&q->lock);
    return n;
}

ek__task *ek__inject_pop(ek__inject *q)
{
    ek__task *t;
    return ek__inject_pop_n(q, 1, &t) ? t : NULL;
}

size_t ek__inject_depth(ek__inject *q)
{
    ek__lock_acquire(&q->lock);
    unstash_locked(q);
    size_t n = atomic_load_explicit(&q->len, memory_order_relaxed);
    ek__lock_release(&q->lock);
    return n;
}

void ek__inject_close(ek__inject *q)
{
    ek__lock_acquire(&q->lock);
    q->closed = true;
    /* Acquire, as unstash_locked: the stashed tasks' links are seen. A push
     * that loses its CAS to this exchange sees EK__INJECT_CLOSED and releases
     * its task itself. */
    ek__task *stashed =
        atomic_exchange_explicit(&q->stash, EK__INJECT_CLOSED, memory_order_acquire);
    if (stashed == EK__INJECT_CLOSED) stashed = NULL; /* closed before */
    ek__task *queued = q->head;
    q->head = q->tail = NULL;
    atomic_store_explicit(&q->len, 0, memory_order_relaxed);
    ek__lock_release(&q->lock);
    drop_chain(queued);
    drop_chain(stashed);
}
