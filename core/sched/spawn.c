/*
 * spawn.c - the scheduler's entry points that create tasks: ek_spawn (the
 * runtime's scheduler), ek_spawn_local (the calling thread's local set),
 * ek_spawn_blocking (the blocking pool), ek_spawn_future, the inline variants
 * (ek_spawn_inline, ek_spawn_local_inline: the state copied into the task's
 * cell) and the named ones (ekiden/observe.h). A task is allocated by the task
 * layer (ek__task_new), listed by its scheduler (bind) and submitted; it holds
 * a reference on the runtime until it is freed.
 */
#include "runtime.h"

/* Allocate, list and submit a task. `job` is set for a blocking job (poll is then
 * NULL). `inline_size` is EK__TASK_HEAP_STATE, or the size of an inline state
 * copied from `state` (ek__task_new). Consumes state on every path: a drop
 * (when given) has run on failure, on the caller's state or on the task's
 * copy of it, on this thread. */
static inline __attribute__((always_inline)) int
spawn_on(ek__sched *sched, const char *name, ek_poll_fn poll, ek_blocking_fn job, ek_drop_fn drop,
         void *state, size_t inline_size, ek_drop_fn out_drop, ek_join **join, uint32_t flags)
{
    ek_runtime *rt = sched->rt;
    if (EK__UNLIKELY(sched->obs != NULL)) flags |= EK__TASK_OBSERVED;
    ek__task *t;
    int rc = ek__task_new(sched, poll, drop, state, inline_size, out_drop, join != NULL, flags,
                          name, &t);
    if (rc) {
        if (drop) drop(state);
        return rc;
    }
    if (job) t->u.blocking_fn = job;
    ek__rt_task_ref(rt);
    /* The id comes from the spawn counter (its low 32 bits: the task stays 112
     * bytes); a refused spawn is counted apart, so that EK_METRIC_TASKS_SPAWNED
     * stays exact. */
    t->id = (uint32_t)(atomic_fetch_add_explicit(&rt->tasks_spawned, 1, memory_order_relaxed) + 1);
    /* Before the task is listed: it cannot be polled or cancelled yet, so the
     * spawn hook comes first of its hooks. */
    if (EK__UNLIKELY(flags & EK__TASK_OBSERVED))
        ek__observe_event(sched->obs, t, EK__TASK_HOOK_SPAWN);
    rc = sched->bind(sched, t);
    if (EK__UNLIKELY(rc != EK_OK)) {
        atomic_fetch_add_explicit(&rt->spawns_refused, 1, memory_order_relaxed);
        /* As a task's end (task.c, finish): the state it holds (an inline one
         * is in the cell) is dropped, then the terminate hook runs, then the
         * cell and the task's reference on the runtime go. */
        t->drop = NULL;
        if (drop) drop(t->fstate);
        if (flags & EK__TASK_OBSERVED) ek__observe_event(sched->obs, t, EK__TASK_HOOK_TERMINATE);
        ek__task_dealloc(t);
        return rc;
    }
    if (join) *join = (ek_join *)t;
    ek__task_submit(t, EK__SCHED_WAKE);
    return EK_OK;
}

/* The arguments of an async or local spawn. A heap state needs its drop; an
 * inline one (inline_size other than EK__TASK_HEAP_STATE) may have none, and
 * is at most EK_SPAWN_INLINE_MAX bytes. On error drop(state) has run (the
 * caller's state, or the caller's bytes of an inline one). */
static int spawn_check(ek_runtime *rt, ek_poll_fn poll, ek_drop_fn drop, void *state,
                       size_t inline_size)
{
    int rc = ek__rt_check(rt);
    if (rc == EK_OK &&
        (!poll || (inline_size == EK__TASK_HEAP_STATE ? !drop : inline_size > EK_SPAWN_INLINE_MAX)))
        rc = EK_EINVAL;
    if (rc && drop) drop(state);
    return rc;
}

static inline __attribute__((always_inline)) int spawn_async(ek_runtime *rt, const char *name,
                                                             ek_poll_fn poll, ek_drop_fn drop,
                                                             void *state, size_t inline_size,
                                                             ek_drop_fn out_drop, ek_join **join)
{
    if (join) *join = NULL; /* what a failed spawn leaves there */
    int rc = spawn_check(rt, poll, drop, state, inline_size);
    if (rc) return rc;
    return spawn_on(&rt->sched, name, poll, NULL, drop, state, inline_size, out_drop, join, 0);
}

int ek_spawn(ek_runtime *rt, ek_poll_fn poll, ek_drop_fn drop, void *state, ek_drop_fn out_drop,
             ek_join **join)
{
    return spawn_async(rt, NULL, poll, drop, state, EK__TASK_HEAP_STATE, out_drop, join);
}

int ek_spawn_named(ek_runtime *rt, const char *name, ek_poll_fn poll, ek_drop_fn drop, void *state,
                   ek_drop_fn out_drop, ek_join **join)
{
    return spawn_async(rt, name, poll, drop, state, EK__TASK_HEAP_STATE, out_drop, join);
}

/* init NULL with a size: no state was given, so there is nothing to drop. */
static bool inline_args_ok(const void *init, size_t size, ek_join **join)
{
    if (init != NULL || size == 0) return true;
    if (join) *join = NULL;
    return false;
}

/* A size spawn_check refuses stays one it refuses: SIZE_MAX itself would read
 * as EK__TASK_HEAP_STATE. */
static size_t inline_size_of(size_t size)
{
    return size > EK_SPAWN_INLINE_MAX ? EK_SPAWN_INLINE_MAX + 1 : size;
}

int ek_spawn_inline(ek_runtime *rt, ek_poll_fn poll, ek_drop_fn drop, const void *init, size_t size,
                    ek_drop_fn out_drop, ek_join **join)
{
    if (!inline_args_ok(init, size, join)) return EK_EINVAL;
    /* Only read (copied into the cell); drop gets it back on failure. */
    return spawn_async(rt, NULL, poll, drop, (void *)(uintptr_t)init, inline_size_of(size),
                       out_drop, join);
}

static int spawn_local(ek_runtime *rt, const char *name, ek_poll_fn poll, ek_drop_fn drop,
                       void *state, size_t inline_size, ek_drop_fn out_drop, ek_join **join)
{
    if (join) *join = NULL; /* what a failed spawn leaves there */
    int rc = spawn_check(rt, poll, drop, state, inline_size);
    /* Closed: the tasks shutdown handed back to this thread go now. */
    if (rc == EK_ECLOSED) ek__local_shutdown_if_closed(rt);
    if (rc) return rc;
    if ((ek__cur.rt && ek__cur.rt != rt) || ek__cur.blocking) {
        if (drop) drop(state);
        return EK_EWRONGTHREAD;
    }
    ek__local *l = ek__local_for_current_thread(rt);
    if (!l) {
        if (drop) drop(state);
        return EK_ENOMEM;
    }
    return spawn_on(&l->sched, name, poll, NULL, drop, state, inline_size, out_drop, join,
                    EK__TASK_LOCAL);
}

int ek_spawn_local(ek_runtime *rt, ek_poll_fn poll, ek_drop_fn drop, void *state,
                   ek_drop_fn out_drop, ek_join **join)
{
    return spawn_local(rt, NULL, poll, drop, state, EK__TASK_HEAP_STATE, out_drop, join);
}

int ek_spawn_local_inline(ek_runtime *rt, ek_poll_fn poll, ek_drop_fn drop, const void *init,
                          size_t size, ek_drop_fn out_drop, ek_join **join)
{
    if (!inline_args_ok(init, size, join)) return EK_EINVAL;
    return spawn_local(rt, NULL, poll, drop, (void *)(uintptr_t)init, inline_size_of(size),
                       out_drop, join);
}

int ek_spawn_local_named(ek_runtime *rt, const char *name, ek_poll_fn poll, ek_drop_fn drop,
                         void *state, ek_drop_fn out_drop, ek_join **join)
{
    return spawn_local(rt, name, poll, drop, state, EK__TASK_HEAP_STATE, out_drop, join);
}

int ek_spawn_blocking(ek_runtime *rt, ek_blocking_fn fn, ek_drop_fn drop, void *arg,
                      ek_drop_fn out_drop, ek_join **join)
{
    if (join) *join = NULL; /* what a failed spawn leaves there */
    int rc = ek__rt_check(rt);
    if (rc == EK_OK && !fn) rc = EK_EINVAL;
    if (rc) {
        if (drop) drop(arg);
        return rc;
    }
    return spawn_on(&rt->blocking.sched, NULL, NULL, fn, drop, arg, EK__TASK_HEAP_STATE, out_drop,
                    join, EK__TASK_BLOCKING);
}

static int future_task_poll(void *state, ek_cx *cx, void **out)
{
    return ek_future_poll((ek_future *)state, cx, out);
}

static void future_task_drop(void *state)
{
    ek_future_drop((ek_future *)state);
}

int ek_spawn_future(ek_runtime *rt, ek_future *f, ek_drop_fn out_drop, ek_join **join)
{
    if (join) *join = NULL; /* what a failed spawn leaves there */
    if (!EK__CHECK_TAG(f, EK__TAG_FUTURE)) return EK_EINVAL;
    return ek_spawn(rt, future_task_poll, future_task_drop, f, out_drop, join);
}
