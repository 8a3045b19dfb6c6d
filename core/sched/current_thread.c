/*
 * current_thread.c - the current-thread scheduler: one "core" (a run queue)
 * driven by whichever thread is inside ek_block_on and holds it; it runs the
 * tasks and turns the driver itself (as a libuv loop). Tasks woken by the holder
 * go to the core's queue; tasks spawned or woken by other threads go to the
 * global queue and unpark the holder.
 */
#include "fifo.h"
#include "runtime.h"

int ek__ct_init(ek_runtime *rt)
{
    ek__ct_core *c = &rt->core;
    memset(c, 0, sizeof *c);
    ek__list_init(&c->waiters);
    return ek__mutex_init(&c->lock);
}

void ek__ct_destroy(ek_runtime *rt)
{
    ek__mutex_destroy(&rt->core.lock);
}

void ek__ct_schedule(ek__sched *s, ek__task *t, int how)
{
    EK__UNUSED(how);
    ek_runtime *rt = s->rt;
    ek__ct_core *c = &rt->core;
    if (ek__cur.core == c) {
        ek__fifo_push(&c->head, &c->tail, t);
        atomic_store_explicit(&c->len, atomic_load_explicit(&c->len, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        return;
    }
    ek__inject_push(&rt->inject, t);
    ek__mutex_lock(&c->lock);
    if (c->holder) ek__parker_unpark(c->holder);
    ek__mutex_unlock(&c->lock);
}

void ek__ct_drain(ek_runtime *rt)
{
    ek__ct_core *c = &rt->core;
    ek__task *t = c->head;
    c->head = c->tail = NULL;
    atomic_store_explicit(&c->len, 0, memory_order_relaxed);
    while (t) {
        ek__task *next = t->next;
        ek__task_drop_notification(t);
        t = next;
    }
}
