/*
 * current_thread.c - the current-thread scheduler: one "core" (a run queue)
 * driven by whichever thread is inside ek_block_on and holds it; it runs the
 * tasks and turns the driver itself (as a libuv loop). Tasks woken by the holder
 * go to the core's queue; tasks spawned or woken by other threads go to the
 * global queue and unpark the holder.
 *
 * The loop (ek__ct_block_on) runs on a thread inside ek_block_on: it takes the
 * core (or waits for it, running its own local tasks meanwhile), then runs
 * the queues and turns the driver until the thread's own future completes.
 */
#include "fifo.h"
#include "runtime.h"

/* A thread waiting for the current-thread core. */
typedef struct ct_waiter {
    ek__list link;
    ek__parker *p;
} ct_waiter;

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

/* ------------------------------------------------------------- the loop -- */

/* The global queue, if it looks non-empty: the inline peek spares the call of
 * an empty pop (two per round trip of a one-connection echo). */
static ek__task *ct_pop_inject(ek_runtime *rt)
{
    return ek__inject_len(&rt->inject) ? ek__inject_pop(&rt->inject) : NULL;
}

static ek__task *ct_next(ek_runtime *rt, ek__ct_core *c)
{
    ek__task *t;
    if (c->tick % rt->cfg.global_queue_interval == 0 && (t = ct_pop_inject(rt))) return t;
    if ((t = ek__fifo_pop(&c->head, &c->tail))) {
        atomic_store_explicit(&c->len, atomic_load_explicit(&c->len, memory_order_relaxed) - 1,
                              memory_order_relaxed);
        return t;
    }
    return ct_pop_inject(rt);
}

static bool ct_try_take(ek__ct_core *c, ek__parker *p, ct_waiter *w)
{
    ek__mutex_lock(&c->lock);
    bool got = !c->taken;
    if (got) {
        c->taken = true;
        c->holder = p;
        if (ek__list_linked(&w->link)) ek__list_remove(&w->link);
    } else if (!ek__list_linked(&w->link)) {
        ek__list_push_back(&c->waiters, &w->link);
    }
    ek__mutex_unlock(&c->lock);
    return got;
}

static void ct_release(ek__ct_core *c, ct_waiter *w)
{
    ek__mutex_lock(&c->lock);
    c->taken = false;
    c->holder = NULL;
    if (ek__list_linked(&w->link)) ek__list_remove(&w->link);
    if (!ek__list_empty(&c->waiters)) {
        ct_waiter *next = EK__CONTAINER_OF(c->waiters.next, ct_waiter, link);
        ek__parker_unpark(next->p);
    }
    ek__mutex_unlock(&c->lock);
}

int ek__ct_block_on(ek_runtime *rt, ek__thread_parker *tp, ek__local *l, ek_poll_fn poll,
                    void *state, void **out)
{
    ek__ct_core *c = &rt->core;
    ct_waiter w = {.p = &tp->p};
    ek__list_init(&w.link);
    int rc = EK_PENDING;
    for (;;) {
        if (ek__block_on_poll_main(rt, tp, poll, state, out, &rc)) break;
        if (ek__rt_closed(rt)) {
            rc = EK_ECLOSED;
            break;
        }
        if (!ct_try_take(c, &tp->p, &w)) {
            if (ek__block_on_run_locals(rt, l, rt->cfg.event_interval) == 0 &&
                !atomic_load(&tp->woken))
                ek__parker_park(&tp->p, false, -1, 0);
            continue;
        }
        ek__cur.core = c;
        uint32_t since_turn = 0;
        for (;;) {
            if (ek__block_on_poll_main(rt, tp, poll, state, out, &rc)) break;
            if (ek__rt_closed(rt)) {
                rc = EK_ECLOSED;
                break;
            }
            unsigned ran = 0;
            ek__task *t;
            while (ran < rt->cfg.event_interval && (t = ct_next(rt, c))) {
                c->tick++;
                ek__rt_run_task(rt, t);
                atomic_fetch_add_explicit(&rt->polls_external, 1, memory_order_relaxed);
                ran++;
                if (atomic_load_explicit(&tp->woken, memory_order_relaxed)) break;
            }
            ran += ek__block_on_run_locals(rt, l, rt->cfg.event_interval);
            since_turn += ran;
            if (ran == 0 && !atomic_load_explicit(&tp->woken, memory_order_acquire)) {
                ek__rt_hook(rt, EK__HOOK_PARK);
                ek__parker_park(&tp->p, true, -1, EK__DRIVER_EVENTS);
                ek__rt_hook(rt, EK__HOOK_UNPARK);
                since_turn = 0;
            } else if (since_turn >= rt->cfg.event_interval) {
                ek__parker_park(&tp->p, true, 0, EK__DRIVER_EVENTS);
                since_turn = 0;
            }
        }
        ek__cur.core = NULL;
        ct_release(c, &w);
        break;
    }
    if (ek__list_linked(&w.link)) {
        ek__mutex_lock(&c->lock);
        ek__list_remove(&w.link);
        ek__mutex_unlock(&c->lock);
    }
    return rc;
}
