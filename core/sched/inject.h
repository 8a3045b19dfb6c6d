/*
 * inject.h - the global injection queue: an intrusive FIFO of tasks under a
 * lock, with an atomic length so that workers skip the lock when it is empty.
 * Tasks spawned or woken from outside the workers, and local-queue overflow,
 * come through here.
 *
 * Every push takes the lock. A lock-free stash for single pushes (6b19a33,
 * for time.million_timers' spawn burst) lost wake-ups: a stress of three
 * spawns from outside a two-worker runtime left them unpolled in about 1 of
 * 2,000 runs under TSan and load (never in 40,000 on the locked queue); it was
 * taken out until its protocol with the idle workers' parking is proven.
 */
#ifndef EK_CORE_SCHED_INJECT_H
#define EK_CORE_SCHED_INJECT_H

#include "../task/task.h"

struct ek__inject {
    ek__lock lock; /* a futex word (common.h) */
    ek__task *head, *tail;
    _Atomic size_t len; /* tasks in head..tail; written under the lock */
    bool closed;        /* under the lock: pushes release their task */
};
typedef struct ek__inject ek__inject;

int ek__inject_init(ek__inject *q); /* EK_OK or a negative errno */
void ek__inject_destroy(ek__inject *q);
/*
 * Queue notifications (each task's reference goes with it). Once the queue is
 * closed nobody will run them: they are released here instead (as Tokio's
 * Inject::push after close), after the lock, so that a task freed by it may
 * take the runtime's last reference with it.
 * ek__inject_push: one task, any thread. ek__inject_push_batch: a
 * chain first..last of n tasks (linked through ->next), under the lock.
 */
void ek__inject_push(ek__inject *q, ek__task *t);
void ek__inject_push_batch(ek__inject *q, ek__task *first, ek__task *last, size_t n);
/*
 * Close the queue at shutdown, once no worker runs: release every queued or
 * notification, and every one pushed later. A spawn that passed its
 * closed check and listed its task before the shutdown cancelled it submits
 * the task's first notification after the drain; it is released, not left in
 * a queue nobody pops (its cell and its reference on the runtime leaked).
 */
void ek__inject_close(ek__inject *q);
ek__task *ek__inject_pop(ek__inject *q);
/* Pop up to max tasks as a linked list (via ->next); returns the count. */
size_t ek__inject_pop_n(ek__inject *q, size_t max, ek__task **first);
/* Queued tasks, for sizing a batch, for "is there work" and for the metric
 * (acquire: a worker that sees len > 0 then takes the lock and finds them). */
static inline size_t ek__inject_len(ek__inject *q)
{
    return atomic_load_explicit(&q->len, memory_order_acquire);
}

#endif
