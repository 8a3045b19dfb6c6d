/*
 * group.c - task groups (ek_group): structured concurrency over ek_spawn
 * (Tokio #1879, Go's errgroup, Trio's nursery).
 *
 * A member is an ordinary task whose state is a small record wrapping the
 * user's (poll, drop, state): the wrapper reports the member's outcome to the
 * group, and its drop (which the task harness runs exactly once: after the final
 * poll, on abort, on shutdown, or inside ek_spawn when spawning fails) unlinks
 * it. A member counts as finished when its drop has run, so when a wait
 * completes every member's state has been released (and the result of a member
 * spawned without a join handle has gone through its out_drop: the wrapper
 * releases it at completion, before the drop).
 *
 * Cancelling is cooperative, so that no extra join handle is needed and the
 * user keeps the real one: the group sets `cancelled` and wakes every member;
 * a member's wrapper polled after that returns EK_ECANCELED without polling the
 * user's future, and the harness drops it. No wake-up is lost: a member stores
 * its waker under the group lock and re-checks `cancelled` there, so either the
 * cancel sees the stored waker, or the member sees the flag and wakes itself.
 *
 * Lifetime: the group is reference-counted (the owner's handle, each member
 * record, each wait future), and holds a reference on the runtime (rt.h), so
 * the runtime may be freed first: spawns then fail with EK_ECLOSED and waits see
 * the members its shutdown dropped. ek_group_free cancels, waits when the
 * calling thread may block, and drops the owner's reference; the memory goes
 * with the last reference, so no order of frees crashes.
 *
 * Locking: one mutex per group guards the member lists, the counts, the outcome
 * and the wait list. Wakers are woken after it is released (in batches). User
 * code (poll, drop) never runs under it.
 */
#include "../rt.h"
#include "../task/future.h"
#include "../task/task.h"

/* "EKGR": distinct from common.h's and sync.h's tags. */
#define EK__TAG_GROUP 0x454b4752u

#define EK__GROUP_FLAGS    EK_GROUP_CANCEL_ON_ERROR
#define EK__GROUP_WAKE_MAX 32

typedef struct ek__gmember ek__gmember;

struct ek_group {
    uint32_t tag; /* EK__TAG_GROUP while the owner's handle is valid */
    unsigned flags;
    _Atomic size_t refs; /* owner + member records + wait futures */
    ek_runtime *rt;
    ek__mutex lock;
    ek__list members;  /* lock: members not yet woken for cancellation */
    ek__list canceled; /* lock: members woken for cancellation, not yet dropped */
    ek__list waiters;  /* lock: pending wait futures (ek__gwait) */
    size_t live;       /* lock: members spawned and not yet dropped */
    int first_err;     /* lock: 0, or the first failure */
    bool any_canceled; /* lock: a member ended without completing */
    bool closed;       /* lock: spawns refused (cancel, failure, free) */
    atomic_bool cancelled;
};

struct ek__gmember {
    ek__list link; /* in g->members or g->canceled (lock) */
    ek_group *g;   /* a reference */
    ek_poll_fn poll;
    ek_drop_fn drop;
    void *state;
    ek_drop_fn out_drop; /* spawned without a join handle: releases the result */
    ek_waker *waker;     /* written by the member's poll under the lock */
    bool completed;      /* the user's poll returned non-pending (poll thread only) */
};

typedef struct ek__gwait {
    ek_group *g; /* a reference */
    ek__list link;
    ek_waker *waker; /* lock */
} ek__gwait;

/* The member being spawned by this thread, so that its drop can tell a failed
 * spawn (drop(state) inside ek_spawn) from a task that ended. */
static _Thread_local ek__gmember *spawning;

/* ---- references ---- */

static void group_ref(ek_group *g)
{
    /* relaxed: the caller holds a reference already. */
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

static void group_unref(ek_group *g)
{
    /* acq_rel: the last one sees every other holder's writes before freeing. */
    if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1) return;
    ek_runtime *rt = g->rt;
    ek__mutex_destroy(&g->lock);
    ek__free(g);
    ek__rt_unref(rt);
}

/* ---- outcome and wake-ups (lock held unless said otherwise) ---- */

static int outcome_locked(const ek_group *g)
{
    if (g->first_err != 0) return g->first_err;
    return g->any_canceled ? EK_ECANCELED : EK_OK;
}

/* Wake every wait future, if no member is left. Takes and releases the lock. */
static void wake_waiters_if_done(ek_group *g)
{
    for (;;) {
        ek_waker *batch[EK__GROUP_WAKE_MAX];
        unsigned n = 0;
        ek__mutex_lock(&g->lock);
        while (g->live == 0 && n < EK__GROUP_WAKE_MAX && !ek__list_empty(&g->waiters)) {
            ek__gwait *w = EK__CONTAINER_OF(ek__list_pop_front(&g->waiters), ek__gwait, link);
            batch[n++] = w->waker; /* moved out: w may be freed once unlocked */
            w->waker = NULL;
        }
        ek__mutex_unlock(&g->lock);
        for (unsigned i = 0; i < n; i++) ek_waker_wake(batch[i]);
        if (n < EK__GROUP_WAKE_MAX) return;
    }
}

/* Cancel: refuse spawns, and wake every member so that it sees `cancelled`.
 * Takes and releases the lock. */
static void cancel_all(ek_group *g)
{
    ek__mutex_lock(&g->lock);
    g->closed = true;
    atomic_store_explicit(&g->cancelled, true, memory_order_release);
    ek__mutex_unlock(&g->lock);
    for (;;) {
        ek_waker *batch[EK__GROUP_WAKE_MAX];
        unsigned n = 0;
        ek__mutex_lock(&g->lock);
        while (n < EK__GROUP_WAKE_MAX && !ek__list_empty(&g->members)) {
            ek__gmember *m = EK__CONTAINER_OF(ek__list_pop_front(&g->members), ek__gmember, link);
            ek__list_push_back(&g->canceled, &m->link);
            /* A clone: the member keeps its own waker (and may replace it). A
             * member not polled yet has none; it is queued and will see the
             * flag on its first poll. */
            if (m->waker) batch[n++] = ek_waker_clone(m->waker);
        }
        bool more = !ek__list_empty(&g->members);
        ek__mutex_unlock(&g->lock);
        for (unsigned i = 0; i < n; i++) ek_waker_wake(batch[i]);
        if (!more) return;
    }
}

/* ---- the member wrapper ---- */

static int member_poll(void *state, ek_cx *cx, void **out)
{
    ek__gmember *m = state;
    ek_group *g = m->g;
    /* acquire: pairs with cancel_all's release (the lock below decides). */
    if (atomic_load_explicit(&g->cancelled, memory_order_acquire)) return EK_ECANCELED;
    int rc = m->poll(m->state, cx, out);
    if (rc == EK_PENDING) {
        if (m->waker == NULL || !ek_waker_will_wake(m->waker, cx)) {
            ek_waker *w = ek_cx_waker(cx), *old;
            ek__mutex_lock(&g->lock);
            old = m->waker;
            m->waker = w;
            bool cancelled = atomic_load_explicit(&g->cancelled, memory_order_relaxed);
            ek__mutex_unlock(&g->lock);
            ek_waker_drop(old);
            /* Cancelled before the new waker was visible: nobody will wake it. */
            if (cancelled) ek_waker_wake_by_ref(w);
        }
        return EK_PENDING;
    }
    m->completed = true;
    if (rc == EK_OK && m->out_drop && *out) {
        /* Nobody can take it (no join handle): release it now, so that it is
         * gone before the member counts as finished (the harness would release
         * it only after our drop). */
        m->out_drop(*out);
        *out = NULL;
    }
    if (rc < 0 && rc != EK_ECANCELED) {
        ek__mutex_lock(&g->lock);
        if (g->first_err == 0) g->first_err = rc;
        bool cancel = (g->flags & EK_GROUP_CANCEL_ON_ERROR) && !g->closed;
        ek__mutex_unlock(&g->lock);
        if (cancel) cancel_all(g);
    } else if (rc == EK_ECANCELED) {
        ek__mutex_lock(&g->lock);
        g->any_canceled = true;
        ek__mutex_unlock(&g->lock);
    }
    return rc;
}

static void member_drop(void *state)
{
    ek__gmember *m = state;
    ek_group *g = m->g;
    bool failed_spawn = spawning == m;
    m->drop(m->state);
    ek__mutex_lock(&g->lock);
    ek__list_remove(&m->link);
    if (!m->completed && !failed_spawn) g->any_canceled = true;
    g->live--;
    ek__mutex_unlock(&g->lock);
    ek_waker_drop(m->waker);
    ek__free(m);
    wake_waiters_if_done(g);
    group_unref(g);
}

/* ---- the API ---- */

int ek_group_new(ek_runtime *rt, unsigned flags, ek_group **out)
{
    if (out == NULL || (flags & ~(unsigned)EK__GROUP_FLAGS) != 0) return EK_EINVAL;
    int rc = ek__rt_acquire(rt); /* the group's reference, released with its memory */
    if (rc != EK_OK) return rc;
    ek_group *g = ek__calloc(1, sizeof *g);
    if (g == NULL || ek__mutex_init(&g->lock) != 0) {
        ek__free(g);
        ek__rt_unref(rt);
        return EK_ENOMEM;
    }
    g->tag = EK__TAG_GROUP;
    g->flags = flags;
    atomic_init(&g->refs, 1);
    atomic_init(&g->cancelled, false);
    g->rt = rt;
    ek__list_init(&g->members);
    ek__list_init(&g->canceled);
    ek__list_init(&g->waiters);
    *out = g;
    return EK_OK;
}

static int group_spawn(ek_group *g, bool local, ek_poll_fn poll, ek_drop_fn drop, void *state,
                       ek_drop_fn out_drop, ek_join **join)
{
    if (join) *join = NULL;
    int rc = EK_OK;
    if (!EK__CHECK_TAG(g, EK__TAG_GROUP) || poll == NULL || drop == NULL) rc = EK_EINVAL;
    ek__gmember *m = NULL;
    if (rc == EK_OK) {
        m = ek__calloc(1, sizeof *m);
        if (m == NULL) rc = EK_ENOMEM;
    }
    if (rc == EK_OK) {
        ek__mutex_lock(&g->lock);
        if (g->closed) {
            rc = EK_ECLOSED;
        } else {
            g->live++;
            ek__list_push_back(&g->members, &m->link);
        }
        ek__mutex_unlock(&g->lock);
        if (rc != EK_OK) ek__free(m);
    }
    if (rc != EK_OK) {
        if (drop) drop(state); /* consumed on error too, as ek_spawn */
        return rc;
    }
    group_ref(g);
    m->g = g;
    m->poll = poll;
    m->drop = drop;
    m->state = state;
    m->out_drop = join == NULL ? out_drop : NULL;
    /* On failure ek_spawn runs member_drop here, on this thread: it drops the
     * user's state, unlinks m and releases its reference. */
    ek__gmember *outer = spawning;
    spawning = m;
    ek_drop_fn task_out_drop = join == NULL ? NULL : out_drop;
    rc = local ? ek_spawn_local(g->rt, member_poll, member_drop, m, task_out_drop, join)
               : ek_spawn(g->rt, member_poll, member_drop, m, task_out_drop, join);
    spawning = outer;
    return rc;
}

int ek_group_spawn(ek_group *g, ek_poll_fn poll, ek_drop_fn drop, void *state, ek_drop_fn out_drop,
                   ek_join **join)
{
    return group_spawn(g, false, poll, drop, state, out_drop, join);
}

int ek_group_spawn_local(ek_group *g, ek_poll_fn poll, ek_drop_fn drop, void *state,
                         ek_drop_fn out_drop, ek_join **join)
{
    return group_spawn(g, true, poll, drop, state, out_drop, join);
}

static int future_member_poll(void *state, ek_cx *cx, void **out)
{
    return ek_future_poll(state, cx, out);
}

static void future_member_drop(void *state)
{
    ek_future_drop(state);
}

int ek_group_spawn_future(ek_group *g, ek_future *f, ek_drop_fn out_drop, ek_join **join)
{
    if (!EK__CHECK_TAG(f, EK__TAG_FUTURE)) {
        if (join) *join = NULL;
        return EK_EINVAL;
    }
    return group_spawn(g, false, future_member_poll, future_member_drop, f, out_drop, join);
}

int ek_group_cancel(ek_group *g)
{
    if (!EK__CHECK_TAG(g, EK__TAG_GROUP)) return EK_EINVAL;
    cancel_all(g);
    return EK_OK;
}

int64_t ek_group_len(ek_group *g)
{
    if (!EK__CHECK_TAG(g, EK__TAG_GROUP)) return EK_EINVAL;
    ek__mutex_lock(&g->lock);
    int64_t n = (int64_t)g->live;
    ek__mutex_unlock(&g->lock);
    return n;
}

/* ---- waiting ---- */

static int wait_poll(void *state, ek_cx *cx, void **out)
{
    ek__gwait *w = state;
    ek_group *g = w->g;
    ek_waker *old = NULL, *fresh = NULL;
    if (w->waker == NULL || !ek_waker_will_wake(w->waker, cx)) {
        fresh = ek_cx_waker(cx);
        if (fresh == NULL) return EK_ENOMEM;
    }
    int rc = EK_PENDING;
    ek__mutex_lock(&g->lock);
    if (g->live == 0) {
        rc = outcome_locked(g);
        if (ek__list_linked(&w->link)) ek__list_remove(&w->link);
        old = w->waker;
        w->waker = NULL;
    } else {
        if (fresh) {
            old = w->waker;
            w->waker = fresh;
            fresh = NULL;
        }
        if (!ek__list_linked(&w->link)) ek__list_push_back(&g->waiters, &w->link);
    }
    ek__mutex_unlock(&g->lock);
    ek_waker_drop(old);
    ek_waker_drop(fresh);
    if (rc != EK_PENDING) *out = NULL;
    return ek__cx_pended(cx, rc, EK__SITE_GROUP);
}

static void wait_drop(void *state)
{
    ek__gwait *w = state;
    ek_group *g = w->g;
    ek__mutex_lock(&g->lock);
    if (ek__list_linked(&w->link)) ek__list_remove(&w->link);
    ek_waker *old = w->waker;
    w->waker = NULL;
    ek__mutex_unlock(&g->lock);
    ek_waker_drop(old);
    group_unref(g);
}

/* A wait future on a group known to be alive (tag checked, or a reference held). */
static int wait_future(ek_group *g, ek_future **out)
{
    ek__gwait *w;
    int rc = ek__future_new_inline(wait_poll, wait_drop, sizeof *w, out, (void **)&w);
    if (rc != EK_OK) return rc;
    group_ref(g);
    w->g = g;
    ek__list_init(&w->link);
    return EK_OK;
}

int ek_group_wait_future(ek_group *g, ek_future **out)
{
    if (!EK__CHECK_TAG(g, EK__TAG_GROUP) || out == NULL) return EK_EINVAL;
    return wait_future(g, out);
}

/* Block until no member is left (driving the runtime as ek_block_on does). */
static int blocking_wait(ek_group *g)
{
    ek__mutex_lock(&g->lock);
    bool done = g->live == 0;
    int rc = outcome_locked(g);
    ek__mutex_unlock(&g->lock);
    if (done) return rc;
    ek_future *f;
    rc = wait_future(g, &f);
    if (rc != EK_OK) return rc;
    rc = ek_block_on(g->rt, f, NULL);
    if (rc == EK_ECLOSED) {
        /* Shut down meanwhile: its tasks were dropped, so the outcome may be known. */
        ek__mutex_lock(&g->lock);
        if (g->live == 0) rc = outcome_locked(g);
        ek__mutex_unlock(&g->lock);
    }
    return rc;
}

int ek_group_blocking_wait(ek_group *g)
{
    if (!EK__CHECK_TAG(g, EK__TAG_GROUP)) return EK_EINVAL;
    return blocking_wait(g);
}

void ek_group_free(ek_group *g)
{
    if (!EK__CHECK_TAG(g, EK__TAG_GROUP)) return;
    g->tag = EK__TAG_DEAD; /* the owner's handle is gone; members keep the memory */
    cancel_all(g);
    /* Join: wait for the cancelled members to be dropped where this thread may
     * block (EK_EDEADLK on a runtime thread, EK_ECLOSED after shutdown: then the
     * members go on their own and release the group with the last of them). */
    (void)blocking_wait(g);
    group_unref(g);
}
