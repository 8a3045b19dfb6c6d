/*
 * observe.c - the task harness's slow path when its runtime observes tasks
 * (ekiden/observe.h): the task hooks and slow-poll detection. The harness
 * (task.c) comes here only when t->sched->obs is set, so a runtime without
 * hooks never reads a clock or calls out.
 *
 * Every hook runs on the thread that does what it reports, with no lock of
 * the runtime held; the task is alive during the call (its poll, its finish,
 * or the spawn that still holds it), so its name (kept in the task's own
 * allocation) may be handed out as is.
 */
#include "task.h"

void ek__observe_event(ek__observer *obs, ek__task *t, int which)
{
    ek_task_hook_fn fn = obs->hook[which].fn;
    if (fn) fn(obs->hook[which].data, t->id, ek__task_name(t));
}

int ek__observe_poll(ek__observer *obs, ek__task *t, ek_cx *cx, void **out)
{
    ek__observe_event(obs, t, EK__TASK_HOOK_BEFORE_POLL);
    uint64_t start = obs->slow_poll_ns ? ek__mono_ns() : 0;
    int rc = t->poll(t->fstate, cx, out);
    if (obs->slow_poll_ns) {
        uint64_t took = ek__mono_ns() - start;
        if (took > obs->slow_poll_ns) {
            atomic_fetch_add_explicit(&obs->slow_polls, 1, memory_order_relaxed);
            if (obs->slow_fn) obs->slow_fn(obs->slow_data, t->id, ek__task_name(t), took);
        }
    }
    ek__observe_event(obs, t, EK__TASK_HOOK_AFTER_POLL);
    return rc;
}
