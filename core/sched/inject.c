/* inject.c - the global injection queue (inject.h). */
#include "inject.h"
#include "fifo.h"

int ek__inject_init(ek__inject *q)
{
    q->head = q->tail = NULL;
    atomic_init(&q->len, 0);
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

void ek__inject_push_batch(ek__inject *q, ek__task *first, ek__task *last, size_t n)
{
    ek__lock_acquire(&q->lock);
    if (EK__UNLIKELY(q->closed)) {
        ek__lock_release(&q->lock);
        last->next = NULL;
        drop_chain(first);
        return;
    }
    ek__fifo_push_chain(&q->head, &q->tail, first, last);
    atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) + n,
                          memory_order_release);
    ek__lock_release(&q->lock);
}

void ek__inject_push(ek__inject *q, ek__task *t)
{
    ek__inject_push_batch(q, t, t, 1);
}

size_t ek__inject_pop_n(ek__inject *q, size_t max, ek__task **first)
{
    *first = NULL;
    if (max == 0 || ek__inject_len(q) == 0) return 0;
    ek__lock_acquire(&q->lock);
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

void ek__inject_close(ek__inject *q)
{
    ek__lock_acquire(&q->lock);
    q->closed = true;
    ek__task *queued = q->head;
    q->head = q->tail = NULL;
    atomic_store_explicit(&q->len, 0, memory_order_relaxed);
    ek__lock_release(&q->lock);
    drop_chain(queued);
}
