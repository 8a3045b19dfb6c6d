/*
 * queue.h - the per-worker run queue: a fixed ring of 256 task pointers, pushed
 * and popped by its owner without locks, stolen from by other workers (half at
 * a time), as Tokio's queue.rs.
 *
 * Indices are u32 and grow without wrapping the ring (the ring index is
 * idx & MASK), which makes ABA on head practically impossible. `head` packs two
 * indices in one 64-bit atomic: `steal` (high 32) and `real` (low 32).
 *   - real: the next task the owner pops;
 *   - steal: where an in-progress steal started; steal != real means a thief is
 *     copying slots [steal, real) out, so the owner must not overwrite them.
 * `tail` is written only by the owner. The owner may push while tail - steal <
 * CAP. Overflow moves half the queue (claimed by a CAS on head) plus the new task
 * to the global queue in one batch.
 */
#ifndef EK_CORE_SCHED_QUEUE_H
#define EK_CORE_SCHED_QUEUE_H

#include "../task/task.h"

#define EK__QUEUE_CAP  256u
#define EK__QUEUE_MASK (EK__QUEUE_CAP - 1u)

typedef struct ek__inject ek__inject;

typedef struct ek__local_queue {
    _Alignas(64) _Atomic uint64_t head;
    _Alignas(64) _Atomic uint32_t tail;
    _Atomic(ek__task *) buf[EK__QUEUE_CAP];
} ek__local_queue;

void ek__queue_init(ek__local_queue *q);
/* Owner only. Returns true if it overflowed (half moved to `inject`). */
bool ek__queue_push_back(ek__local_queue *q, ek__task *t, ek__inject *inject);
/* Owner only. */
ek__task *ek__queue_pop(ek__local_queue *q);
/* Thief: steal half of src into dst (dst's owner calls); returns one task to run
 * now and the number stolen in *n (0 if none). */
ek__task *ek__queue_steal_into(ek__local_queue *src, ek__local_queue *dst, uint32_t *n);
/* Approximate length, any thread. */
uint32_t ek__queue_len(ek__local_queue *q);
/* Owner only: free slots. */
uint32_t ek__queue_free_slots(ek__local_queue *q);

#endif
