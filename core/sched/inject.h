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
    bool closed; /* under the lock; the stash then holds EK__INJECT_CLOSED */
};
typedef struct ek__inject ek__inject;

/* The stash of a closed queue: pushes see it and release their task. */
#define EK__INJECT_CLOSED ((ek__task *)(uintptr_t)1)

int ek__inject_init(ek__inject *q); /* EK_OK or a negative errno */
void ek__inject_destroy(ek__inject *q);
/*
 * Queue notifications (each task's reference goes with it). Once the queue is
 * closed nobody will run them: they are released here instead (as Tokio's
 * Inject::push after close), after the lock, so that a task freed by it may
 * take the runtime's last reference with it.
 * ek__inject_push: one task, any thread, lock-free. ek__inject_push_batch: a
 * chain first..last of n tasks (linked through ->next), under the lock.
 */
void ek__inject_push(ek__inject *q, ek__task *t);
void ek__inject_push_batch(ek__inject *q, ek__task *first, ek__task *last, size_t n);
/*
 * Close the queue at shutdown, once no worker runs: release every queued or
 * stashed notification, and every one pushed later. A spawn that passed its
 * closed check and listed its task before the shutdown cancelled it submits
 * the task's first notification after the drain; it is released, not left in
 * a queue nobody pops (its cell and its reference on the runtime leaked).
 */
void ek__inject_close(ek__inject *q);
ek__task *ek__inject_pop(ek__inject *q);
/* Pop up to max tasks as a linked list (via ->next); returns the count. */
size_t ek__inject_pop_n(ek__inject *q, size_t max, ek__task **first);
/* Queued tasks, for sizing a batch and for "is there work": the FIFO's
 * length plus one if anything is stashed (not counted until moved). Nonzero
 * iff a pop would find a task (modulo concurrent pushes and pops). Acquire. */
static inline size_t ek__inject_len(ek__inject *q)
{
    /* A stash above EK__INJECT_CLOSED holds a task: one compare, as != NULL. */
    return atomic_load_explicit(&q->len, memory_order_acquire) +
           ((uintptr_t)atomic_load_explicit(&q->stash, memory_order_acquire) >
            (uintptr_t)EK__INJECT_CLOSED);
}
/* The exact number of queued tasks (moves the stash first, under the lock):
 * for the metric. */
size_t ek__inject_depth(ek__inject *q);

#endif
