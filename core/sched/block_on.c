/*
 * block_on.c - driving a future on the calling (non-runtime) thread:
 * ek_block_on, and ek_join_wait (a join handle driven the same way).
 *
 * The thread's waker is a heap "thread parker" (reference-counted, since wakers
 * cloned from it may outlive the call). Waking it sets `woken` and unparks the
 * thread. While waiting, the thread runs the local tasks pinned to it; on a
 * current-thread runtime it takes the core and runs everything, turning the
 * driver when idle.
 */
#include "fifo.h"
#include "runtime.h"

typedef struct thread_parker {
    ek__wakeable wk;
    _Atomic uint32_t refs;
    atomic_bool woken;
    ek__parker p;
} thread_parker;

/* A thread waiting for the current-thread core. */
typedef struct ct_waiter {
    ek__list link;
    ek__parker *p;
} ct_waiter;

static void tp_wake_by_ref(void *self)
{
    thread_parker *tp = self;
    /* release: the waker's writes are visible to the poll that follows. */
    atomic_store_explicit(&tp->woken, true, memory_order_release);
    ek__parker_unpark(&tp->p);
}

static void tp_clone(void *self)
{
    atomic_fetch_add_explicit(&((thread_parker *)self)->refs, 1, memory_order_relaxed);
}

static void tp_drop(void *self)
{
    thread_parker *tp = self;
    if (atomic_fetch_sub_explicit(&tp->refs, 1, memory_order_acq_rel) == 1) {
        ek__parker_destroy(&tp->p);
        ek__free(tp);
    }
}

static void tp_wake(void *self)
{
    tp_wake_by_ref(self);
    tp_drop(self);
}

static const ek__waker_vt tp_vt = {tp_wake, tp_wake_by_ref, tp_clone, tp_drop};

static bool take_woken(thread_parker *tp)
{
    return atomic_exchange_explicit(&tp->woken, false, memory_order_acquire);
}

/* Run up to `max` pinned local tasks; returns how many ran. */
static unsigned run_locals(ek_runtime *rt, ek__local *l, unsigned max)
{
    unsigned n = 0;
    ek__task *t;
    while (n < max && (t = ek__local_pop(l))) {
        ek__rt_run_task(rt, t);
        atomic_fetch_add_explicit(&rt->polls_external, 1, memory_order_relaxed);
        n++;
    }
    return n;
}

static ek__task *ct_next(ek_runtime *rt, ek__ct_core *c)
{
    ek__task *t;
    if (c->tick % rt->cfg.global_queue_interval == 0 && (t = ek__inject_pop(&rt->inject))) return t;
    if ((t = ek__fifo_pop(&c->head, &c->tail))) {
        atomic_store_explicit(&c->len, atomic_load_explicit(&c->len, memory_order_relaxed) - 1,
                              memory_order_relaxed);
        return t;
    }
    return ek__inject_pop(&rt->inject);
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

static bool stopped(ek_runtime *rt)
{
    return atomic_load_explicit(&rt->closed, memory_order_acquire);
}

/* Poll the main future if it was woken. Returns true when it completed. */
static bool poll_main(ek_runtime *rt, thread_parker *tp, ek_poll_fn poll, void *state, void **out,
                      int *rc)
{
    if (!take_woken(tp)) return false;
    ek_cx cx = {.waker = &tp->wk, .task = NULL, .rt = rt, .budget = rt->cfg.budget};
    *rc = poll(state, &cx, out);
    if (*rc > EK_PENDING) *rc = EK_EINVAL; /* as a task's poll (task.c) */
    return *rc != EK_PENDING;
}

static int drive_current_thread(ek_runtime *rt, thread_parker *tp, ek__local *l, ek_poll_fn poll,
                                void *state, void **out)
{
    ek__ct_core *c = &rt->core;
    ct_waiter w = {.p = &tp->p};
    ek__list_init(&w.link);
    int rc = EK_PENDING;
    for (;;) {
        if (poll_main(rt, tp, poll, state, out, &rc)) break;
        if (stopped(rt)) {
            rc = EK_ECLOSED;
            break;
        }
        if (!ct_try_take(c, &tp->p, &w)) {
            if (run_locals(rt, l, rt->cfg.event_interval) == 0 && !atomic_load(&tp->woken))
                ek__parker_park(&tp->p, false, -1);
            continue;
        }
        ek__cur.core = c;
        uint32_t since_turn = 0;
        for (;;) {
            if (poll_main(rt, tp, poll, state, out, &rc)) break;
            if (stopped(rt)) {
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
            ran += run_locals(rt, l, rt->cfg.event_interval);
            since_turn += ran;
            if (ran == 0 && !atomic_load_explicit(&tp->woken, memory_order_acquire)) {
                ek__rt_hook(rt, EK__HOOK_PARK);
                ek__parker_park(&tp->p, true, -1);
                ek__rt_hook(rt, EK__HOOK_UNPARK);
                since_turn = 0;
            } else if (since_turn >= rt->cfg.event_interval) {
                ek__parker_park(&tp->p, true, 0);
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

static int drive_multi_thread(ek_runtime *rt, thread_parker *tp, ek__local *l, ek_poll_fn poll,
                              void *state, void **out)
{
    int rc = EK_PENDING;
    for (;;) {
        if (poll_main(rt, tp, poll, state, out, &rc)) return rc;
        if (stopped(rt)) return EK_ECLOSED;
        if (run_locals(rt, l, rt->cfg.event_interval) > 0) continue;
        if (!atomic_load_explicit(&tp->woken, memory_order_acquire))
            ek__parker_park(&tp->p, false, -1);
    }
}

/* A thread parker (one reference, woken once so that the first poll runs) that
 * parks in `driver` when it may (NULL: on its futex / condvar only). */
static int tp_new(ek__driver *driver, thread_parker **out)
{
    thread_parker *tp = ek__malloc(sizeof *tp);
    if (!tp) return EK_ENOMEM;
    tp->wk.vt = &tp_vt;
    atomic_init(&tp->refs, 1);
    atomic_init(&tp->woken, true);
    int rc = ek__parker_init(&tp->p, driver);
    if (rc) {
        ek__free(tp);
        return rc;
    }
    *out = tp;
    return EK_OK;
}

int ek__block_on_detached(ek_poll_fn poll, void *state, void **out)
{
    if (ek__cur.rt || ek__cur.in_block_on) return EK_EDEADLK;
    thread_parker *tp;
    int rc = tp_new(NULL, &tp);
    if (rc) return rc;
    void *dummy = NULL;
    if (!out) out = &dummy;
    ek__cur.in_block_on = true;
    for (;;) {
        if (take_woken(tp)) {
            ek_cx cx = {.waker = &tp->wk, .task = NULL, .rt = NULL, .budget = 128};
            rc = poll(state, &cx, out);
            if (rc != EK_PENDING) break;
        }
        if (!atomic_load_explicit(&tp->woken, memory_order_acquire))
            ek__parker_park(&tp->p, false, -1);
    }
    ek__cur.in_block_on = false;
    tp_drop(tp);
    return rc;
}

int ek__block_on_poll(ek_runtime *rt, ek_poll_fn poll, void *state, void **out)
{
    int rc = ek__rt_check(rt);
    if (rc == EK_ECLOSED) ek__local_shutdown_if_closed(rt); /* handed back to us */
    if (rc) return rc;
    if (ek__cur.rt || ek__cur.in_block_on) return EK_EDEADLK;
    ek__local *l = ek__local_for_current_thread(rt);
    if (!l) return EK_ENOMEM;
    thread_parker *tp;
    rc = tp_new(rt->driver, &tp);
    if (rc) return rc;
    ek__mutex_lock(&rt->bo_lock);
    if (atomic_load_explicit(&rt->closed, memory_order_acquire)) {
        ek__mutex_unlock(&rt->bo_lock);
        tp_drop(tp);
        return EK_ECLOSED;
    }
    rt->bo_active++;
    ek__mutex_unlock(&rt->bo_lock);
    ek__cur = (ek__tls){.rt = rt, .local = l, .in_block_on = true};
    ek__mutex_lock(&l->lock);
    atomic_store_explicit(&l->parker, &tp->p, memory_order_relaxed);
    ek__mutex_unlock(&l->lock);

    void *dummy = NULL;
    if (!out) out = &dummy;
    if (rt->cfg.flavor == EK_FLAVOR_CURRENT_THREAD)
        rc = drive_current_thread(rt, tp, l, poll, state, out);
    else
        rc = drive_multi_thread(rt, tp, l, poll, state, out);

    ek__mutex_lock(&l->lock);
    atomic_store_explicit(&l->parker, NULL, memory_order_relaxed);
    ek__mutex_unlock(&l->lock);
    /* Shut down meanwhile: the tasks pinned to this thread are dropped here,
     * on it, before shutdown (waiting for us to leave) goes on. */
    if (stopped(rt)) ek__local_shutdown(l);
    ek__cur = (ek__tls){0};
    tp_drop(tp);
    ek__mutex_lock(&rt->bo_lock);
    if (--rt->bo_active == 0) ek__cond_broadcast(&rt->bo_cond);
    ek__mutex_unlock(&rt->bo_lock);
    return rc;
}

static int block_on_future_poll(void *state, ek_cx *cx, void **out)
{
    return ek_future_poll((ek_future *)state, cx, out);
}

int ek_block_on(ek_runtime *rt, ek_future *f, void **out)
{
    if (!EK__CHECK_TAG(f, EK__TAG_FUTURE)) return EK_EINVAL;
    int rc = ek__block_on_poll(rt, block_on_future_poll, f, out);
    ek_future_drop(f); /* consumed in every case, as documented */
    return rc;
}

/* ---------------------------------------------- waiting for a join handle -- */

static int join_wait_poll(void *state, ek_cx *cx, void **out)
{
    return ek_join_poll((ek_join *)state, cx, out);
}

/* The runtime is closed and the task not finished: its result can still come.
 * A task pinned to this thread is dropped here (handed back by shutdown); a
 * blocking job that outlived the shutdown timeout is waited for without the
 * runtime. Anything else was cancelled by shutdown, or belongs to another
 * thread's local set: EK_ECLOSED. */
static int join_wait_closed(ek__task *t, void **result)
{
    ek_runtime *rt = t->sched->rt;
    if (t->flags & EK__TASK_LOCAL) ek__local_shutdown_if_closed(rt);
    if (atomic_load_explicit(&t->state, memory_order_acquire) & EK__ST_COMPLETE)
        return ek__task_take_output(t, result);
    if (t->flags & EK__TASK_BLOCKING) return ek__block_on_detached(join_wait_poll, t, result);
    return EK_ECLOSED;
}

int ek_join_wait(ek_join *j, void **out)
{
    if (!EK__CHECK_TAG(j, EK__TAG_JOIN)) return EK_EINVAL;
    ek__task *t = (ek__task *)j;
    if (t->output_taken) return EK_ECLOSED;
    if (ek__cur.rt || ek__cur.in_block_on) return EK_EDEADLK;
    /* Finished (e.g. cancelled by shutdown): the result is there even if the
     * runtime is closed and cannot drive anything any more. */
    void *result = NULL;
    int rc;
    if (atomic_load_explicit(&t->state, memory_order_acquire) & EK__ST_COMPLETE)
        rc = ek__task_take_output(t, &result);
    else
        rc = ek__block_on_poll(t->sched->rt, join_wait_poll, j, &result);
    /* Not taken: the runtime was closed before or while we waited. */
    if (rc == EK_ECLOSED && !t->output_taken) rc = join_wait_closed(t, &result);
    /* As ek_join_poll: a result nobody wants goes to the task's out_drop. */
    if (rc == EK_OK && out)
        *out = result;
    else if (rc == EK_OK && result && t->out_drop)
        t->out_drop(result);
    return rc;
}
