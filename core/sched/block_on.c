/*
 * block_on.c - driving a future on the calling (non-runtime) thread:
 * ek_block_on, and ek_join_wait (a join handle driven the same way).
 *
 * The thread's waker is a heap "thread parker" (reference-counted, since wakers
 * cloned from it may outlive the call). Waking it sets `woken` and unparks the
 * thread. While waiting, the thread runs the local tasks pinned to it; on a
 * current-thread runtime it takes the core and runs everything, turning the
 * driver when idle (that loop is current_thread.c's ek__ct_block_on).
 */
#include "runtime.h"

static void tp_wake_by_ref(void *self)
{
    ek__thread_parker *tp = self;
    /* release: the waker's writes are visible to the poll that follows. */
    atomic_store_explicit(&tp->woken, true, memory_order_release);
    ek__parker_unpark(&tp->p);
}

static void tp_clone(void *self)
{
    atomic_fetch_add_explicit(&((ek__thread_parker *)self)->refs, 1, memory_order_relaxed);
}

static void tp_drop(void *self)
{
    ek__thread_parker *tp = self;
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

static int drive_multi_thread(ek_runtime *rt, ek__thread_parker *tp, ek__local *l, ek_poll_fn poll,
                              void *state, void **out)
{
    int rc = EK_PENDING;
    for (;;) {
        if (ek__block_on_poll_main(rt, tp, poll, state, out, &rc)) return rc;
        if (ek__rt_closed(rt)) return EK_ECLOSED;
        if (ek__block_on_run_locals(rt, l, rt->cfg.event_interval) > 0) continue;
        if (!atomic_load_explicit(&tp->woken, memory_order_acquire))
            ek__parker_park(&tp->p, false, -1, 0);
    }
}

/* A thread parker (one reference, woken once so that the first poll runs) that
 * parks in `driver` when it may (NULL: on its futex / condvar only). */
static int tp_new(ek__driver *driver, ek__thread_parker **out)
{
    ek__thread_parker *tp = ek__malloc(sizeof *tp);
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
    ek__thread_parker *tp;
    int rc = tp_new(NULL, &tp);
    if (rc) return rc;
    void *dummy = NULL;
    if (!out) out = &dummy;
    ek__cur.in_block_on = true;
    for (;;) {
        if (ek__thread_parker_take_woken(tp)) {
            ek_cx cx = {.waker = &tp->wk, .task = NULL, .rt = NULL, .budget = 128};
            rc = poll(state, &cx, out);
            if (rc != EK_PENDING) break;
        }
        if (!atomic_load_explicit(&tp->woken, memory_order_acquire))
            ek__parker_park(&tp->p, false, -1, 0);
    }
    ek__cur.in_block_on = false;
    tp_drop(tp);
    return rc;
}

/* Count the calling thread in rt->bo_active: one CAS, false once shutdown waits
 * for the count to drain (the runtime is closed). */
static bool bo_enter(ek_runtime *rt)
{
    unsigned cur = atomic_load_explicit(&rt->bo_active, memory_order_relaxed);
    do {
        if (cur & EK__BO_WAITING) return false;
    } while (!atomic_compare_exchange_weak_explicit(&rt->bo_active, &cur, cur + EK__BO_ONE,
                                                    memory_order_relaxed, memory_order_relaxed));
    return true;
}

/* Leave the count: one CAS while shutdown does not wait (after which this thread
 * touches rt no more, so shutdown may free it). Once it waits, the count drops
 * under bo_lock, and the last one out wakes it. */
static void bo_leave(ek_runtime *rt)
{
    unsigned cur = atomic_load_explicit(&rt->bo_active, memory_order_relaxed);
    while (!(cur & EK__BO_WAITING)) {
        /* release: what this thread did in the runtime is seen by shutdown,
         * which reads the count with acquire. */
        if (atomic_compare_exchange_weak_explicit(&rt->bo_active, &cur, cur - EK__BO_ONE,
                                                  memory_order_release, memory_order_relaxed))
            return;
    }
    ek__mutex_lock(&rt->bo_lock);
    cur = atomic_fetch_sub_explicit(&rt->bo_active, EK__BO_ONE, memory_order_release);
    if (cur - EK__BO_ONE == EK__BO_WAITING) ek__cond_broadcast(&rt->bo_cond);
    ek__mutex_unlock(&rt->bo_lock);
}

int ek__block_on_poll(ek_runtime *rt, ek_poll_fn poll, void *state, void **out)
{
    int rc = ek__rt_check(rt);
    if (rc == EK_ECLOSED) ek__local_shutdown_if_closed(rt); /* handed back to us */
    if (rc) return rc;
    if (ek__cur.rt || ek__cur.in_block_on) return EK_EDEADLK;
    ek__local *l = ek__local_for_current_thread(rt);
    if (!l) return EK_ENOMEM;
    ek__thread_parker *tp;
    rc = tp_new(rt->h.driver, &tp);
    if (rc) return rc;
    if (!bo_enter(rt)) {
        tp_drop(tp);
        return EK_ECLOSED;
    }
    if (atomic_load_explicit(&rt->h.closed, memory_order_acquire)) {
        bo_leave(rt);
        tp_drop(tp);
        return EK_ECLOSED;
    }
    ek__cur_set((ek__tls){.rt = rt, .local = l, .in_block_on = true});
    ek__lock_acquire(&l->lock);
    atomic_store_explicit(&l->parker, &tp->p, memory_order_relaxed);
    ek__lock_release(&l->lock);

    void *dummy = NULL;
    if (!out) out = &dummy;
    if (rt->cfg.flavor == EK_FLAVOR_CURRENT_THREAD)
        rc = ek__ct_block_on(rt, tp, l, poll, state, out);
    else
        rc = drive_multi_thread(rt, tp, l, poll, state, out);

    ek__lock_acquire(&l->lock);
    atomic_store_explicit(&l->parker, NULL, memory_order_relaxed);
    ek__lock_release(&l->lock);
    /* Shut down meanwhile: the tasks pinned to this thread are dropped here,
     * on it, before shutdown (waiting for us to leave) goes on. */
    if (ek__rt_closed(rt)) ek__local_shutdown(l);
    ek__cur_set((ek__tls){0});
    tp_drop(tp);
    bo_leave(rt);
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
