/*
 * inject.h - the global injection queue: an intrusive FIFO of tasks under a
 * lock, with an atomic length so that workers skip the lock when it is empty.
 * Tasks spawned or woken from outside the workers, and local-queue overflow,
 * come through here.
 */
#ifndef EK_CORE_SCHED_INJECT_H
#define EK_CORE_SCHED_INJECT_H

#include "../task/task.h"

struct ek__inject {
    ek__lock lock; /* a futex word: a remote spawn takes it once (common.h) */
    ek__task *head, *tail;
    _Atomic size_t len;
};
typedef struct ek__inject ek__inject;

int ek__inject_init(ek__inject *q); /* EK_OK or a negative errno */
void ek__inject_destroy(ek__inject *q);
void ek__inject_push(ek__inject *q, ek__task *t);
void ek__inject_push_batch(ek__inject *q, ek__task *first, ek__task *last, size_t n);
ek__task *ek__inject_pop(ek__inject *q);
/* Pop up to max tasks as a linked list (via ->next); returns the count. */
size_t ek__inject_pop_n(ek__inject *q, size_t max, ek__task **first);
static inline size_t ek__inject_len(ek__inject *q)
{
    return atomic_load_explicit(&q->len, memory_order_acquire);
}

#endif
