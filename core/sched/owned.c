/* owned.c - the owned-tasks lists. */
#include "owned.h"

void ek__owned_init(ek__owned *o)
{
    atomic_init(&o->closed, false);
    for (unsigned i = 0; i < EK__OWNED_SHARDS; i++) {
        ek__lock_init(&o->shard[i].lock);
        ek__list_init(&o->shard[i].list);
    }
}

int ek__owned_insert(ek__owned *o, ek__task *t)
{
    /* The shard from the task's id (the spawn counter, already taken), as
     * Tokio's OwnedTasks: consecutive spawns spread over the shards without a
     * shared counter of their own. */
    uint32_t s = t->id % EK__OWNED_SHARDS;
    t->owned_shard = (uint8_t)s;
    ek__lock_acquire(&o->shard[s].lock);
    /* closed is written under every shard lock, so reading it under one is exact. */
    if (atomic_load_explicit(&o->closed, memory_order_relaxed)) {
        ek__lock_release(&o->shard[s].lock);
        return EK_ECLOSED;
    }
    ek__list_push_back(&o->shard[s].list, &t->owned);
    ek__lock_release(&o->shard[s].lock);
    return EK_OK;
}

bool ek__owned_remove(ek__owned *o, ek__task *t)
{
    uint32_t s = t->owned_shard;
    ek__lock_acquire(&o->shard[s].lock);
    bool linked = ek__list_linked(&t->owned);
    if (linked) ek__list_remove(&t->owned);
    ek__lock_release(&o->shard[s].lock);
    return linked;
}

void ek__owned_close(ek__owned *o)
{
    for (unsigned i = 0; i < EK__OWNED_SHARDS; i++) ek__lock_acquire(&o->shard[i].lock);
    atomic_store_explicit(&o->closed, true, memory_order_relaxed);
    for (unsigned i = EK__OWNED_SHARDS; i-- > 0;) ek__lock_release(&o->shard[i].lock);
}

void ek__owned_shutdown_one(ek__task *t)
{
    /* We hold the list's reference now. If the task is idle we own its
     * future: cancelling completes it and consumes that reference (as the
     * running reference in a normal completion). Otherwise the poller cancels
     * it after its poll and we just let go. */
    if (ek__state_to_shutdown(t))
        ek__task_cancel_owned(t);
    else if (ek__task_ref_dec(t, 1))
        ek__task_dealloc(t);
}

void ek__owned_shutdown_all(ek__owned *o)
{
    EK__ASSERT(atomic_load_explicit(&o->closed, memory_order_relaxed));
    for (unsigned i = 0; i < EK__OWNED_SHARDS; i++) {
        for (;;) {
            ek__lock_acquire(&o->shard[i].lock);
            ek__list *n = ek__list_pop_front(&o->shard[i].list);
            ek__lock_release(&o->shard[i].lock);
            if (!n) break;
            ek__task *t = EK__CONTAINER_OF(n, ek__task, owned);
            /* A local task is dropped on its own thread, never here. */
            EK__ASSERT(!(t->flags & EK__TASK_LOCAL));
            ek__owned_shutdown_one(t);
        }
    }
}

bool ek__owned_is_empty(ek__owned *o)
{
    bool empty = true;
    for (unsigned i = 0; i < EK__OWNED_SHARDS && empty; i++) {
        ek__lock_acquire(&o->shard[i].lock);
        empty = ek__list_empty(&o->shard[i].list);
        ek__lock_release(&o->shard[i].lock);
    }
    return empty;
}
