/*
 * rt.h - the runtime's internal handle: what the layers below the scheduler
 * (task, time, driver) and the ones above it (net, sync, service) need of a
 * runtime, in one small struct that the scheduler fills in and hands down.
 *
 * Lifetime (DESIGN section 7a). The handle is reference-counted and holds the
 * driver, the time source, the cell slab and the closed flag. The pointer
 * ek_runtime_new returns is the owner's handle: one reference, plus the
 * threads and shutdown. ek_runtime_free ends the threads and drops the owner's
 * reference; every resource (socket, timer future, interval, connect future,
 * task and so join handle, blocking thread) holds a reference of its own, so
 * the memory goes with the last of them, whatever the order of frees. A
 * resource used after shutdown gets EK_ECLOSED from ek__rt_check.
 *
 * Why a struct and not calls. The handle is the first member of every
 * ek_runtime (sched/runtime.h), so an ek_runtime * points at its handle and
 * everything here is an inline load, store or atomic on it: the layers below
 * the scheduler read what they need without calling back up into it (the
 * folder graph, calls included, is one-way: scripts/check-layers.py). The two
 * things only the scheduler can do are callbacks it sets before any resource
 * exists: `release` (the last reference went: end the runtime's memory) and
 * `unpark` (wake the thread parked in the driver, for time's "a new earliest
 * deadline"; the driver is below time's users but above time).
 */
#ifndef EK_CORE_RT_H
#define EK_CORE_RT_H

#include "common.h"

typedef struct ek__driver ek__driver;
typedef struct ek__time ek__time;
typedef struct ek__slab ek__slab;

typedef struct ek__rt_handle ek__rt_handle;
struct ek__rt_handle {
    uint32_t tag;       /* EK__TAG_RUNTIME (first, as every handle's tag) */
    atomic_bool closed; /* shut down: spawns refused, resources EK_ECLOSED */
    /* Set once while the runtime is made, before any resource exists; valid
     * while a reference is held. */
    ek__driver *driver;                /* I/O readiness */
    ek__time *time;                    /* clock and timer wheel */
    ek__slab *slab;                    /* task and timer cells (task/slab.h), or NULL: ek__malloc */
    void (*release)(ek__rt_handle *h); /* the last reference went */
    void (*unpark)(void *arg);         /* wake the driver's parked thread */
    void *unpark_arg;
    /* refs on a cache line of its own (64 bytes of padding either side,
     * whatever the block's alignment): every task and sleep takes and drops a
     * reference, from the spawning thread and the workers, and the fields
     * above are read by every spawn, sleep and poll (time.million_timers). */
    char pad_before[64];
    _Atomic uint64_t refs; /* see EK__RT_REF_*; the owner holds one handle ref */
    char pad_after[64];
};

/* References on the runtime: tasks count EK__RT_REF_TASK each (the low half is
 * the TASKS_ALIVE metric), every other holder EK__RT_REF_HANDLE. One word, so
 * that the last of either kind frees. */
#define EK__RT_REF_TASK   UINT64_C(1)
#define EK__RT_REF_HANDLE (UINT64_C(1) << 32)

/* rt's handle (the same address). rt must not be NULL. */
static inline ek__rt_handle *ek__rt_h(ek_runtime *rt)
{
    return (ek__rt_handle *)(void *)rt;
}

/* EK_OK if rt is a live runtime handle, EK_EINVAL if not a runtime, EK_ECLOSED if
 * it has been shut down. Any thread. */
static inline int ek__rt_check(ek_runtime *rt)
{
    if (!EK__CHECK_TAG(rt, EK__TAG_RUNTIME)) return EK_EINVAL;
    if (atomic_load_explicit(&ek__rt_h(rt)->closed, memory_order_acquire)) return EK_ECLOSED;
    return EK_OK;
}

/* Add a reference from an existing one (rt is known alive). Any thread. */
static inline void ek__rt_ref(ek_runtime *rt)
{
    /* relaxed: a new reference is made from a live one (as a task's). */
    atomic_fetch_add_explicit(&ek__rt_h(rt)->refs, EK__RT_REF_HANDLE, memory_order_relaxed);
}

/*
 * A thread's cache of references on one runtime: the thread that runs rt's
 * tasks (a worker, a thread inside ek_block_on) takes task and cell references
 * from it and returns them to it, and moves them to and from rt->refs
 * EK__REF_BATCH at a time, so that a spawn or a sleep does not make the
 * runtime's shared count bounce between the spawning thread and the workers
 * that free (time.million_timers: two read-modify-writes there per timer on
 * the creating thread, two on the workers). The cached references are real
 * ones: the runtime lives while a cache holds any. sched/runtime.h's
 * ek__cur_set points ek__refs_mine at the thread's cache and flushes it when
 * the thread leaves that role (a worker exits, ek_block_on returns), which is
 * always before shutdown lets the owner's reference go; the TASKS_ALIVE
 * metric subtracts what the caches hold.
 *
 * `held` is in refs' encoding (tasks in the low half, other holders in the
 * high half); written only by its thread, read by the metric (hence atomic,
 * relaxed).
 */
typedef struct ek__ref_cache {
    ek_runtime *rt;
    _Atomic uint64_t held;
} ek__ref_cache;
extern __attribute__((tls_model("initial-exec"))) _Thread_local ek__ref_cache *ek__refs_mine;
#define EK__REF_BATCH UINT64_C(64)

/* One reference of kind `one` (EK__RT_REF_TASK or EK__RT_REF_HANDLE) on the
 * live rt: from the thread's cache when it is rt's. */
static inline void ek__rt_ref_cached(ek_runtime *rt, uint64_t one)
{
    ek__ref_cache *c = ek__refs_mine;
    if (c != NULL && c->rt == rt) {
        uint64_t held = atomic_load_explicit(&c->held, memory_order_relaxed);
        uint64_t part = one == EK__RT_REF_TASK ? held & (EK__RT_REF_HANDLE - 1) : held >> 32;
        if (part == 0) {
            /* relaxed: made from a live reference (as ek__rt_ref). */
            atomic_fetch_add_explicit(&ek__rt_h(rt)->refs, one * EK__REF_BATCH,
                                      memory_order_relaxed);
            held += one * EK__REF_BATCH;
        }
        atomic_store_explicit(&c->held, held - one, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&ek__rt_h(rt)->refs, one, memory_order_relaxed);
}

/* A task was allocated: its reference (dropped with ek__rt_task_unref). */
static inline void ek__rt_task_ref(ek_runtime *rt)
{
    ek__rt_ref_cached(rt, EK__RT_REF_TASK);
}

static inline void ek__rt_unref_by(ek_runtime *rt, uint64_t n)
{
    ek__rt_handle *h = ek__rt_h(rt);
    /* acq_rel: the thread that frees sees every other holder's writes. */
    uint64_t prev = atomic_fetch_sub_explicit(&h->refs, n, memory_order_acq_rel);
    EK__ASSERT(prev >= n);
    if (prev == n) h->release(h);
}

/* Drop a reference; the last one frees the runtime's memory (its threads ended
 * at shutdown). NULL is ignored. Any thread except, for the last reference, a
 * thread inside one of rt's polls (impossible: a poll holds a reference). */
static inline void ek__rt_unref(ek_runtime *rt)
{
    if (rt) ek__rt_unref_by(rt, EK__RT_REF_HANDLE);
}

/* Drop one reference of kind `one`: into the thread's cache when it is rt's
 * (more than 2 batches there: one batch goes back to rt->refs, never the
 * last reference, as the cache keeps one), else from rt->refs. */
static inline void ek__rt_unref_cached(ek_runtime *rt, uint64_t one)
{
    ek__ref_cache *c = ek__refs_mine;
    if (c != NULL && c->rt == rt) {
        uint64_t held = atomic_load_explicit(&c->held, memory_order_relaxed) + one;
        uint64_t part = one == EK__RT_REF_TASK ? held & (EK__RT_REF_HANDLE - 1) : held >> 32;
        if (part > 2 * EK__REF_BATCH) {
            atomic_store_explicit(&c->held, held - one * EK__REF_BATCH, memory_order_relaxed);
            ek__rt_unref_by(rt, one * EK__REF_BATCH);
        } else {
            atomic_store_explicit(&c->held, held, memory_order_relaxed);
        }
        return;
    }
    ek__rt_unref_by(rt, one);
}

/* Give a cache's references back to its runtime (its thread leaves the role
 * that cached them); the last one frees the runtime, as any unref. Owner. */
static inline void ek__rt_refs_flush(ek__ref_cache *c)
{
    uint64_t held = atomic_load_explicit(&c->held, memory_order_relaxed);
    if (held == 0) return;
    atomic_store_explicit(&c->held, 0, memory_order_relaxed);
    ek__rt_unref_by(c->rt, held);
}

/* A task was freed: drop the reference the scheduler took for it at spawn (the
 * task layer calls this; the last reference frees the runtime). Any thread. */
static inline void ek__rt_task_unref(ek_runtime *rt)
{
    ek__rt_unref_cached(rt, EK__RT_REF_TASK);
}

/* A runtime cell's reference (sleep and timeout futures: task/future.c): as
 * ek__rt_ref / ek__rt_unref, through the thread's cache. rt is not NULL. */
static inline void ek__rt_cell_ref(ek_runtime *rt)
{
    ek__rt_ref_cached(rt, EK__RT_REF_HANDLE);
}
static inline void ek__rt_cell_unref(ek_runtime *rt)
{
    ek__rt_unref_cached(rt, EK__RT_REF_HANDLE);
}

/* ek__rt_check, and on EK_OK a new reference on rt (release it with
 * ek__rt_unref). */
static inline int ek__rt_acquire(ek_runtime *rt)
{
    int rc = ek__rt_check(rt);
    if (rc == EK_OK) ek__rt_ref(rt);
    return rc;
}

/* The runtime's driver (I/O), time source and cell slab. Valid while a
 * reference is held. */
static inline ek__driver *ek__rt_driver(ek_runtime *rt)
{
    return ek__rt_h(rt)->driver;
}
static inline ek__time *ek__rt_time(ek_runtime *rt)
{
    return ek__rt_h(rt)->time;
}
static inline ek__slab *ek__rt_slab(ek_runtime *rt)
{
    return ek__rt_h(rt)->slab;
}

/* Wake the thread parked in the driver (if any) so it recomputes its timeout or
 * handles new work; coalesced and cheap when nobody is parked. Any thread. */
static inline void ek__rt_unpark_driver(ek_runtime *rt)
{
    ek__rt_handle *h = ek__rt_h(rt);
    h->unpark(h->unpark_arg);
}

#endif
