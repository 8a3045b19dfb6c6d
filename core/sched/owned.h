/*
 * owned.h - every live task of a runtime, in sharded intrusive lists, so that
 * shutdown can cancel them all. The list holds one reference per task until the
 * task completes. Closing is done under every shard's lock: after it, inserts
 * fail with EK_ECLOSED, which is how spawn-after-shutdown is refused.
 */
#ifndef EK_CORE_SCHED_OWNED_H
#define EK_CORE_SCHED_OWNED_H

#include "../task/task.h"

#define EK__OWNED_SHARDS 16u

typedef struct ek__owned {
    struct {
        _Alignas(64) ek__lock lock; /* a futex word (common.h): a spawn takes it once */
        ek__list list;
    } shard[EK__OWNED_SHARDS];
    atomic_bool closed;
} ek__owned;

void ek__owned_init(ek__owned *o); /* futex-word locks: nothing to fail, nothing to destroy */
/* EK_OK or EK_ECLOSED. The shard is t->id's (set before). */
int ek__owned_insert(ek__owned *o, ek__task *t);
/* True if t was still listed (the caller then drops the list's reference). */
bool ek__owned_remove(ek__owned *o, ek__task *t);
/* Close: inserts fail with EK_ECLOSED from now on. */
void ek__owned_close(ek__owned *o);
/* Cancel every listed task (idle ones are dropped here, running ones after
 * their poll). Closed first. Never holds local tasks (their sets own them). */
void ek__owned_shutdown_all(ek__owned *o);
/* Cancel one task taken off an owned list (the caller holds the list's
 * reference, which this consumes). */
void ek__owned_shutdown_one(ek__task *t);
bool ek__owned_is_empty(ek__owned *o);

#endif
