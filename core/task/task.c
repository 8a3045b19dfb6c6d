/*
 * task.c - the task harness (run one notification, complete, cancel), join
 * handles, task wakers and the poll context. Spawning a task and waiting for
 * one from outside the runtime are the scheduler's (sched/spawn.c,
 * sched/block_on.c): this layer knows the scheduler only through ek__sched.
 *
 * Join waker protocol (see task.h invariants): the join handle owns the
 * join_waker field while JOIN_WAKER is clear; it writes the field and then sets
 * the bit (failing if COMPLETE is already set, in which case the result is
 * ready). The runtime, on completion, wakes the stored waker if the bit is set,
 * then clears the bit; whoever clears the last interest drops the waker.
 */
#include "task.h"
#include "future.h"
#include "slab.h"
#include "../rt.h"

/* A task cell with the longest name still fits a cell (rt.h). */
_Static_assert(sizeof(ek__task) + EK_TASK_NAME_MAX + 1 <= EK__SLAB_MAX_CELL,
               "a named task must fit a cell");
/* An idle task costs 112 bytes (docs/benchmarks.md): a new field finds room in
 * the struct (as pend_site did beside owned_shard) or the goal is broken. */
_Static_assert(sizeof(ek__task) <= 112, "a task stays within 112 bytes");
/* Inline state (ek_spawn_inline) starts 16-byte aligned right after the struct
 * and its largest size fits a cell. */
_Static_assert(sizeof(ek__task) % 16 == 0, "inline state after the struct is 16-byte aligned");
_Static_assert(sizeof(ek__task) + EK_SPAWN_INLINE_MAX <= EK__SLAB_MAX_CELL,
               "the largest inline state fits a cell");
/* The hot window (task.h): every field a poll touches lies in [8, 58). */
_Static_assert(offsetof(ek__task, state) == EK__TASK_HOT_BEGIN &&
                   offsetof(ek__task, wk) < EK__TASK_HOT_END &&
                   offsetof(ek__task, next) < EK__TASK_HOT_END &&
                   offsetof(ek__task, sched) < EK__TASK_HOT_END &&
                   offsetof(ek__task, poll) < EK__TASK_HOT_END &&
                   offsetof(ek__task, fstate) < EK__TASK_HOT_END &&
                   offsetof(ek__task, pend_site) < EK__TASK_HOT_END &&
                   offsetof(ek__task, flags) + 1 == EK__TASK_HOT_END,
               "a poll's fields stay in the hot window");

/* ---------------------------------------------------------------- wakers -- */

static inline ek__task *task_of(void *wk)
{
    return EK__CONTAINER_OF(wk, ek__task, wk);
}

static void task_wake_by_ref(void *self)
{
    ek__task *t = task_of(self);
    if (ek__state_to_notified_by_ref(t)) ek__task_submit(t, EK__SCHED_WAKE);
}

static void task_wake(void *self)
{
    ek__task *t = task_of(self);
    bool dealloc;
    if (ek__state_to_notified_by_val(t, &dealloc))
        ek__task_submit(t, EK__SCHED_WAKE);
    else if (dealloc)
        ek__task_dealloc(t);
}

static void task_waker_clone(void *self)
{
    ek__task_ref_inc(task_of(self));
}

static void task_waker_drop(void *self)
{
    ek__task *t = task_of(self);
    if (ek__task_ref_dec(t, 1)) ek__task_dealloc(t);
}

static const ek__waker_vt task_waker_vt = {task_wake, task_wake_by_ref, task_waker_clone,
                                           task_waker_drop};

ek_waker *ek_cx_waker(ek_cx *cx)
{
    if (!cx) return NULL;
    cx->waker->vt->clone(cx->waker);
    return (ek_waker *)cx->waker;
}

void ek_waker_wake(ek_waker *w)
{
    if (w) ((ek__wakeable *)w)->vt->wake(w);
}

void ek_waker_wake_by_ref(ek_waker *w)
{
    if (w) ((ek__wakeable *)w)->vt->wake_by_ref(w);
}

ek_waker *ek_waker_clone(ek_waker *w)
{
    if (w) ((ek__wakeable *)w)->vt->clone(w);
    return w;
}

void ek_waker_drop(ek_waker *w)
{
    if (w) ((ek__wakeable *)w)->vt->drop(w);
}

int ek_waker_will_wake(const ek_waker *w, ek_cx *cx)
{
    return cx && w == (const ek_waker *)cx->waker;
}

ek_runtime *ek_cx_runtime(ek_cx *cx)
{
    return cx ? cx->rt : NULL;
}

/* A task asks to be re-polled after the other runnable work: the harness
 * queues it as EK__SCHED_DEFER (as Tokio defers yield wakers). ek_block_on's own
 * future simply wakes its thread. */
static void yield_task(ek_cx *cx)
{
    if (cx->task)
        cx->defer = true;
    else
        cx->waker->vt->wake_by_ref(cx->waker);
}

int ek_coop_proceed(ek_cx *cx)
{
    if (!cx) return EK_EINVAL;
    if (cx->budget == 0) {
        /* Out of budget: be polled again once the others had their turn. */
        yield_task(cx);
        return EK_PENDING;
    }
    cx->budget--;
    return EK_OK;
}

int ek_yield_now(ek_cx *cx)
{
    if (!cx) return EK_EINVAL;
    yield_task(cx);
    return EK_PENDING;
}

/* --------------------------------------------------------------- harness -- */

static ek_runtime *task_rt(ek__task *t)
{
    return t->sched->rt;
}

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) & ~(to - 1);
}

int ek__task_new(ek__sched *sched, ek_poll_fn poll, ek_drop_fn drop, void *fstate,
                 size_t inline_size, ek_drop_fn out_drop, bool joined, uint32_t flags,
                 const char *name, ek__task **out)
{
    size_t name_len = EK__UNLIKELY(name != NULL) ? strnlen(name, EK_TASK_NAME_MAX) : 0;
    size_t size = sizeof(ek__task) + (name_len ? name_len + 1 : 0);
    size_t state_at = 0;
    if (inline_size != EK__TASK_HEAP_STATE) {
        state_at = round_up(size, 16);
        /* Whole lines: the state a poll writes shares no line with the next
         * cell's hot window (slab.c, first_cell_offset). */
        size = round_up(state_at + round_up(inline_size, 16), 64);
        if (size > EK__SLAB_MAX_CELL) return EK_EINVAL;
    }
    ek__task *t = ek__rt_cell_alloc(sched->rt, size);
    if (!t) return EK_ENOMEM;
    memset(t, 0, sizeof *t);
    if (state_at != 0) {
        void *st = (char *)t + state_at;
        if (inline_size != 0) memcpy(st, fstate, inline_size);
        fstate = st;
    }
    if (EK__UNLIKELY(name_len != 0)) {
        flags |= EK__TASK_NAMED;
        memcpy(t + 1, name, name_len);
        ((char *)(t + 1))[name_len] = '\0';
    }
    t->tag = EK__TAG_JOIN;
    t->flags = (uint8_t)flags;
    /* References: owned list, the first notification, and the join handle. */
    uint64_t refs = joined ? 3 : 2;
    atomic_init(&t->state,
                refs * EK__REF_ONE | EK__ST_NOTIFIED | (joined ? EK__ST_JOIN_INTEREST : 0));
    t->wk.vt = &task_waker_vt;
    ek__list_init(&t->owned);
    t->sched = sched;
    t->poll = poll;
    t->drop = drop;
    t->out_drop = out_drop;
    t->fstate = fstate;
    *out = t;
    return EK_OK;
}

void ek__task_dealloc(ek__task *t)
{
    ek_runtime *rt = task_rt(t);
    if (t->join_waker) ek_waker_drop(t->join_waker);
    t->tag = EK__TAG_DEAD;
    ek__rt_cell_free(rt, t);
    /* The task's reference on the runtime: the last one frees it (a join
     * handle detached after ek_runtime_free, say). */
    ek__rt_task_unref(rt);
}

static void release_output(ek__task *t)
{
    if (t->status == EK_OK && t->u.output && t->out_drop) t->out_drop(t->u.output);
    t->u.output = NULL;
}

/* The future is done (or cancelled): drop it, publish the result, hand it to the
 * join handle or release it, leave the owned list, drop the running reference. */
static void finish(ek__task *t, int status, void *output)
{
    if (t->drop) t->drop(t->fstate);
    t->fstate = NULL;
    /* Before COMPLETE is published: a join that sees the task finished sees
     * the hook returned. */
    if (EK__UNLIKELY(t->flags & EK__TASK_OBSERVED))
        ek__observe_event(t->sched->obs, t, EK__TASK_HOOK_TERMINATE);
    t->status = status;
    t->u.output = status == EK_OK ? output : NULL;
    uint64_t snap = ek__state_to_complete(t);
    if (!(snap & EK__ST_JOIN_INTEREST)) {
        release_output(t);
    } else if (snap & EK__ST_JOIN_WAKER) {
        ek_waker_wake_by_ref(t->join_waker);
        uint64_t after = atomic_fetch_and_explicit(&t->state, ~(uint64_t)EK__ST_JOIN_WAKER,
                                                   memory_order_acq_rel) &
                         ~(uint64_t)EK__ST_JOIN_WAKER;
        if (!(after & EK__ST_JOIN_INTEREST)) {
            ek_waker *w = t->join_waker;
            t->join_waker = NULL;
            ek_waker_drop(w);
        }
    }
    unsigned n = t->sched->release(t->sched, t) ? 2 : 1;
    if (ek__task_ref_dec(t, n)) ek__task_dealloc(t);
}

void ek__task_cancel_owned(ek__task *t)
{
    finish(t, EK_ECANCELED, NULL);
}

void ek__task_drop_notification(ek__task *t)
{
    if (ek__task_ref_dec(t, 1)) ek__task_dealloc(t);
}

void ek__task_run(ek__task *t, ek_runtime *rt, unsigned budget)
{
    switch (ek__state_to_running(t)) {
    case EK__RUN_FAILED:
        return;
    case EK__RUN_CANCELLED:
        finish(t, EK_ECANCELED, NULL);
        return;
    case EK__RUN_OK:
        break;
    }
    void *out = NULL;
    int rc;
    ek_cx cx = {.waker = &t->wk, .task = t, .rt = rt, .budget = budget};
    /* One test for both rare kinds: a plain task pays nothing for either. */
    if (EK__UNLIKELY(t->flags & (EK__TASK_BLOCKING | EK__TASK_OBSERVED))) {
        if (t->flags & EK__TASK_BLOCKING) {
            rc = t->u.blocking_fn(t->fstate, &out);
            finish(t, rc > 0 ? EK_OK : rc, out); /* jobs cannot pend */
            return;
        }
        rc = ek__observe_poll(t->sched->obs, t, &cx, &out);
    } else {
        rc = t->poll(t->fstate, &cx, &out);
    }
    if (rc == EK_PENDING) {
        atomic_store_explicit(&t->pend_site, cx.site, memory_order_relaxed);
        /* A yield is a notification made during the poll. */
        if (cx.defer) (void)ek__state_to_notified_by_ref(t);
        switch (ek__state_to_idle(t)) {
        case EK__IDLE_OK:
            return;
        case EK__IDLE_DEALLOC:
            ek__task_dealloc(t);
            return;
        case EK__IDLE_NOTIFIED:
            ek__task_submit(t, cx.defer ? EK__SCHED_DEFER : EK__SCHED_YIELD);
            return;
        case EK__IDLE_CANCELLED:
            finish(t, EK_ECANCELED, NULL);
            return;
        }
    }
    if (rc > 0) rc = EK_EINVAL; /* a poll must return OK, PENDING or an error */
    finish(t, rc, out);
}

/* ------------------------------------------------------------------ join -- */

static bool join_check(ek_join *j)
{
    return EK__CHECK_TAG(j, EK__TAG_JOIN);
}

/* Store w as the join waker (we own the field: JOIN_WAKER is clear). Returns
 * false if the task completed first (then the result can be read). */
static bool set_join_waker(ek__task *t, ek_waker *w)
{
    if (t->join_waker) ek_waker_drop(t->join_waker);
    t->join_waker = w;
    uint64_t cur = atomic_load_explicit(&t->state, memory_order_acquire);
    for (;;) {
        if (cur & EK__ST_COMPLETE) {
            t->join_waker = NULL;
            ek_waker_drop(w);
            return false;
        }
        /* release: publishes join_waker to the completing thread. */
        if (atomic_compare_exchange_weak_explicit(&t->state, &cur, cur | EK__ST_JOIN_WAKER,
                                                  memory_order_acq_rel, memory_order_acquire))
            return true;
    }
}

/* True when the result is ready; otherwise the waker is registered. */
static bool can_read_output(ek__task *t, ek_cx *cx)
{
    uint64_t cur = atomic_load_explicit(&t->state, memory_order_acquire);
    if (cur & EK__ST_COMPLETE) return true;
    if (cur & EK__ST_JOIN_WAKER) {
        if (ek_waker_will_wake(t->join_waker, cx)) return false;
        /* Take the field back to replace the waker. */
        for (;;) {
            if (cur & EK__ST_COMPLETE) return true;
            if (atomic_compare_exchange_weak_explicit(&t->state, &cur,
                                                      cur & ~(uint64_t)EK__ST_JOIN_WAKER,
                                                      memory_order_acq_rel, memory_order_acquire))
                break;
        }
    }
    return !set_join_waker(t, ek_cx_waker(cx));
}

int ek__task_take_output(ek__task *t, void **out)
{
    t->output_taken = true;
    int rc = t->status;
    if (out)
        *out = t->u.output;
    else
        release_output(t);
    t->u.output = NULL;
    return rc;
}

int ek_join_poll(ek_join *j, ek_cx *cx, void **out)
{
    if (!join_check(j) || !cx) return EK_EINVAL;
    ek__task *t = (ek__task *)j;
    if (t->output_taken) return EK_ECLOSED;
    if (ek_coop_proceed(cx) == EK_PENDING) return EK_PENDING;
    if (!can_read_output(t, cx)) return ek__cx_pended(cx, EK_PENDING, EK__SITE_JOIN);
    return ek__task_take_output(t, out);
}

int ek_join_abort(ek_join *j)
{
    if (!join_check(j)) return EK_EINVAL;
    ek__task *t = (ek__task *)j;
    if (ek__state_to_notified_and_cancel(t)) ek__task_submit(t, EK__SCHED_WAKE);
    return EK_OK;
}

int ek_join_is_finished(ek_join *j)
{
    if (!join_check(j)) return EK_EINVAL;
    ek__task *t = (ek__task *)j;
    return (atomic_load_explicit(&t->state, memory_order_acquire) & EK__ST_COMPLETE) ? 1 : 0;
}

void ek_join_detach(ek_join *j)
{
    if (!join_check(j)) return;
    ek__task *t = (ek__task *)j;
    uint64_t cur = atomic_load_explicit(&t->state, memory_order_acquire), next;
    for (;;) {
        EK__ASSERT(cur & EK__ST_JOIN_INTEREST);
        next = cur & ~(uint64_t)EK__ST_JOIN_INTEREST;
        if (!(cur & EK__ST_COMPLETE)) next &= ~(uint64_t)EK__ST_JOIN_WAKER;
        if (atomic_compare_exchange_weak_explicit(&t->state, &cur, next, memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    if ((cur & EK__ST_COMPLETE) && !t->output_taken) release_output(t);
    if (!(next & EK__ST_JOIN_WAKER) && t->join_waker) {
        ek_waker *w = t->join_waker;
        t->join_waker = NULL;
        ek_waker_drop(w);
    }
    if (ek__task_ref_dec(t, 1)) ek__task_dealloc(t);
}

/* ------------------------------------------------------- join as future -- */

typedef struct {
    ek_join *j;
} join_future;

static int join_future_poll(void *state, ek_cx *cx, void **out)
{
    return ek_join_poll(((join_future *)state)->j, cx, out);
}

static void join_future_drop(void *state)
{
    ek_join_detach(((join_future *)state)->j);
}

int ek_join_into_future(ek_join *j, ek_future **out)
{
    if (!join_check(j)) return EK_EINVAL;
    if (!out) {
        ek_join_detach(j); /* consumed, as documented */
        return EK_EINVAL;
    }
    void *st;
    int rc =
        ek__future_new_inline(join_future_poll, join_future_drop, sizeof(join_future), out, &st);
    if (rc) {
        ek_join_detach(j);
        return rc;
    }
    ((join_future *)st)->j = j;
    return EK_OK;
}
