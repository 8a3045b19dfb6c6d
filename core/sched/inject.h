/*
 * inject.h - the global injection queue: an intrusive FIFO of tasks under a
 * lock, with an atomic length so that workers skip the lock when it is empty.
 * Tasks spawned or woken from outside the workers, and local-queue overflow,
 * come through here.
 *
 * A single push (a spawn or wake from outside the workers) does not take the
 * lock: it goes onto `stash`, a lock-free stack (one CAS on a line of its
 * own), and whoever next takes the lock to push a batch or pop moves the
 * whole stash, oldest first, to the FIFO's back. Order is kept: everything
 * stashed before a batch push or a pop is moved before it. The lock, the FIFO
 * and `len` are then touched only when a consumer comes, not by each push (a
 * spawn burst from ek_block_on wrote them, and the previous task's link,
 * once per task while the workers popped them: time.million_timers).
 */
#ifndef EK_CORE_SCHED_INJECT_H
#define EK_CORE_SCHED_INJECT_H

#include "../task/task.h"

struct ek__inject {
    ek__lock lock; /* a futex word (common.h) */
    ek__task *head, *tail;
    _Atomic size_t len; /* tasks in head..tail; written under the lock */
    /* Newest first, linked through ->next; pushed with a release CAS, taken
     * whole with an acquire exchange under the lock (no pop from the middle,
     * so no ABA). */
    _Alignas(64) _Atomic(ek__task *) stash;
};
typedef struct ek__inject ek__inject;

int ek__inject_init(ek__inject *q); /* EK_OK or a negative errno */
void ek__inject_destroy(ek__inject *q);
/* One task, any thread, lock-free. */
void ek__inject_push(ek__inject *q, ek__task *t);
/* A chain first..last of n tasks (linked through ->next), under the lock. */
void ek__inject_push_batch(ek__inject *q, ek__task *first, ek__task *last, size_t n);
ek__task *ek__inject_pop(ek__inject *q);
/* Pop up to max tasks as a linked list (via ->next); returns the count. */
size_t ek__inject_pop_n(ek__inject *q, size_t max, ek__task **first);
/* Queued tasks, for sizing a batch and for "is there work": the FIFO's
 * length plus one if anything is stashed (not counted until moved). Nonzero
 * iff a pop would find a task (modulo concurrent pushes and pops). Acquire. */
static inline size_t ek__inject_len(ek__inject *q)
{
    return atomic_load_explicit(&q->len, memory_order_acquire) +
           (atomic_load_explicit(&q->stash, memory_order_acquire) != NULL);
}
/* The exact number of queued tasks (moves the stash first, under the lock):
 * for the metric. */
size_t ek__inject_depth(ek__inject *q);

#endif
