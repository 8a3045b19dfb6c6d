/*
 * runtime.h - the runtime object and the scheduler internals shared by
 * runtime.c (lifecycle, block_on, metrics), multi_thread.c (workers),
 * current_thread.c, local.c (thread-pinned tasks) and blocking.c.
 */
#ifndef EK_CORE_SCHED_RUNTIME_H
#define EK_CORE_SCHED_RUNTIME_H

#include "../rt.h"
#include "../driver/driver.h"
#include "../task/slab.h"
#include "../task/task.h"
#include "../time/time.h"
#include "context.h"
#include "inject.h"
#include "owned.h"
#include "park.h"
#include "queue.h"

/* Thread hooks (ek_builder_on_thread_*). */
enum { EK__HOOK_START, EK__HOOK_STOP, EK__HOOK_PARK, EK__HOOK_UNPARK, EK__HOOK_COUNT };
typedef struct ek__hook {
    ek_thread_hook_fn fn;
    void *data;
} ek__hook;

typedef struct ek__config {
    int flavor;
    unsigned workers;
    unsigned max_blocking;
    uint64_t blocking_keep_alive_ms;
    char thread_name[16];
    bool lifo;
    unsigned global_queue_interval;
    bool global_interval_fixed; /* set by the builder: do not self-tune */
    unsigned event_interval;
    unsigned budget;
    bool start_paused;
    ek__hook hooks[EK__HOOK_COUNT];
    int io_backend;   /* EK_IO_BACKEND_* */
    ek__observer obs; /* task hooks, slow polls (observe.c); the runtime's is live */
} ek__config;

struct ek_builder {
    uint32_t tag;
    ek__config cfg;
};

/* ---- local (thread-pinned) tasks ----
 * A local set belongs to one thread (a worker, or a thread that called
 * ek_spawn_local / ek_block_on / ek_join_wait): its tasks are polled and
 * dropped only there. Its owned list is touched only by that thread (spawns
 * pin to the calling thread; completions run there), so it needs no lock.
 * Shutdown does not drop them on the thread that calls it: it hands them back.
 * The owner drops them (ek__local_shutdown) when it sees the runtime closed: a
 * worker before it exits, a thread in ek_block_on / ek_join_wait when it leaves,
 * the thread calling shutdown for its own set, any other at its next
 * ek_block_on, ek_join_wait or ek_spawn_local, or when the thread exits (a
 * thread-exit destructor, local.c: also while the runtime still runs). */
struct ek__local {
    ek__sched sched; /* schedule() for tasks pinned here */
    pthread_t owner;
    ek__list owned;          /* tasks pinned here, until they complete (owner only) */
    bool closed;             /* shut down: spawns refused (owner only) */
    ek__lock lock;           /* guards the remote queue and owned */
    ek__task *rhead, *rtail; /* pushed from other threads */
    _Atomic size_t rlen;
    ek__task *head, *tail;        /* owner-only FIFO */
    _Atomic(ek__parker *) parker; /* where the owner sleeps now (may be NULL) */
    ek__list link;                /* rt->locals (foreign threads only) */
    /* The owner thread's list of its sets (foreign threads only), so that a
     * thread that exits drops its tasks (local.c); guarded by the process-wide
     * lock there. */
    ek__list thread_link;
    /* The owner's heap in rt->h.slab (cells.c); NULL: the slab's shared heap. */
    ek__slab_heap *heap;
    /* The owner's references on rt while it runs rt's tasks (rt.h). */
    ek__ref_cache refs;
};

int ek__local_init(ek__local *l, ek_runtime *rt); /* EK_OK or EK_ENOMEM (its heap) */
/* Owner: pop the next runnable local task, or NULL. */
ek__task *ek__local_pop(ek__local *l);
bool ek__local_has_work(ek__local *l);
/* Drop the notifications still queued (shutdown). */
void ek__local_drain(ek__local *l);
/* Owner thread: close the set and drop (cancel) every task pinned here, then
 * the notifications still queued. Idempotent. */
void ek__local_shutdown(ek__local *l);
/* The calling thread's local context for rt (created on first use for foreign
 * threads). NULL on allocation failure. */
ek__local *ek__local_for_current_thread(ek_runtime *rt);
/* The calling thread's local context for rt if it has one, else NULL. */
ek__local *ek__local_find_current(ek_runtime *rt);
/* If rt is closed, drop the calling thread's local tasks of rt (see above). */
void ek__local_shutdown_if_closed(ek_runtime *rt);
/* The last reference went: take rt's foreign sets off their threads' lists
 * (a thread exiting later finds none of them), then free them. */
void ek__local_free_all(ek_runtime *rt);

/* ---- multi-thread scheduler ---- */
struct ek__worker {
    ek__local_queue q;
    ek_runtime *rt;
    unsigned index;
    pthread_t thread;
    bool inited; /* parker and local set initialised */
    bool started;
    ek__task *lifo;                          /* owner only */
    ek__task *deferred_head, *deferred_tail; /* yielded tasks, owner only */
    uint64_t maint_ns;                       /* when maintenance last ran */
    uint32_t maint_polls;                    /* polls since then */
    double poll_ewma_ns;                     /* average task poll time, tunes the global interval */
    unsigned global_interval;
    unsigned lifo_polls;
    bool is_searching;
    bool in_driver;        /* turning the driver: wakes are batched, notify after */
    uint64_t cpu_ns;       /* the thread's CPU time at the last maintenance (owner) */
    uint32_t cpu_tick;     /* tick then */
    double poll_cost_ns;   /* average busy time per poll, 0 until measured (owner) */
    uint64_t standby_seen; /* polls, as the standby worker last saw them (its field) */
    uint32_t tick;
    uint32_t turn_tick; /* tick at this worker's last driver turn (owner) */
    uint32_t fed;       /* tasks taken from the global queue or stolen since then (owner) */
    uint64_t rng;
    ek__parker parker;
    ek__local local;
    _Atomic uint64_t polls, steals, steal_ops, parks, overflows;
    _Atomic uint64_t turns; /* driver turns by this worker (its own writes: count_turn) */
};

typedef struct ek__idle {
    _Atomic uint32_t state; /* num_searching (low 16) | num_unparked << 16 */
    atomic_bool standby;    /* a parked worker watches the driver (multi_thread.c) */
    int standby_ms;         /* its next check's timeout (the role holder's field) */
    /* Guards sleepers. A futex word (common.h): a worker takes it twice per
     * park (to file itself, then to leave), once per echo round trip with one
     * connection, and pthread's pair cost ~70 instructions each time. */
    ek__lock lock;
    unsigned *sleepers;
    unsigned nsleepers;
} ek__idle;

/* ---- current-thread scheduler ---- */
struct ek__ct_core {
    ek__mutex lock;
    bool taken;
    ek__parker *holder;    /* parker of the thread holding the core */
    ek__list waiters;      /* threads waiting for the core (ek__ct_waiter) */
    ek__task *head, *tail; /* run queue, holder only */
    _Atomic size_t len;    /* written by the holder only; read by metrics (relaxed) */
    uint32_t tick;
};

/* ---- blocking pool ---- */
typedef struct ek__blocking {
    ek__sched sched;
    ek__mutex lock;
    ek__cond cond;      /* work available or shutdown */
    ek__cond exit_cond; /* a thread exited */
    ek__task *head, *tail;
    size_t queued;
    unsigned threads, idle, max;
    unsigned exiting; /* threads past their last job, running the stop hook */
    uint64_t keep_alive_ms;
    bool shutdown;
    unsigned pending_wakeups;
} ek__blocking;

/* ek_runtime.bo_active's low bit: shutdown waits for the count (the rest of
 * the word, in steps of 2) to reach 0. */
#define EK__BO_WAITING 1u
#define EK__BO_ONE     2u

struct ek_runtime {
    ek__rt_handle h; /* first: an ek_runtime * is its handle (rt.h) */
    ek__config cfg;
    atomic_bool owner_gone; /* ek_runtime_free ran */
    atomic_bool stopping;   /* workers exit */
    _Atomic(void *) data;   /* ek_runtime_set_data */
    ek_drop_fn data_drop;   /* guarded by shutdown_lock */
    bool shut_down;
    ek__mutex shutdown_lock;
    /* Threads inside ek_block_on / ek_join_wait (the count, times 2): shutdown
     * waits for them to leave before it drains the queues they use (the
     * current-thread core, their local queues). Entering and leaving are one
     * CAS each while shutdown does not wait; shutdown sets EK__BO_WAITING under
     * bo_lock, after which none enters and each leaves under bo_lock (block_on.c). */
    ek__mutex bo_lock;
    ek__cond bo_cond;
    _Atomic unsigned bo_active;
    ek__sched sched; /* multi-thread or current-thread schedule() */
    ek__owned owned;
    ek__inject inject;
    ek__blocking blocking;

    unsigned nworkers;
    ek__worker *workers;
    ek__idle idle;

    ek__ct_core core;

    ek__lock locals_lock;
    ek__list locals;  /* foreign threads' local sets */
    ek__list orphans; /* sets of threads that exited (local.c), freed at release */

    _Atomic uint64_t tasks_spawned, polls_external, unparks;
    _Atomic uint64_t spawns_refused; /* counted in tasks_spawned, but not spawned */
};

/* multi_thread.c */
int ek__mt_start(ek_runtime *rt);
void ek__mt_stop(ek_runtime *rt);  /* join workers */
void ek__mt_drain(ek_runtime *rt); /* drop queued notifications */
void ek__mt_destroy(ek_runtime *rt);
void ek__mt_schedule(ek__sched *s, ek__task *t, int how);
void ek__mt_notify_parked(ek_runtime *rt);

/* runtime.c: the scheduler vtable entries shared by rt->sched and the blocking
 * pool (the owned list rt->owned). */
int ek__rt_bind(ek__sched *s, ek__task *t);
bool ek__rt_release(ek__sched *s, ek__task *t);
/* Inhibit test-clock auto-advance while > 0 (blocking jobs in flight). */
void ek__rt_inhibit_auto_advance(ek_runtime *rt, int delta);
/* Drop a handle reference unless it is the last one (then false, nothing done). */
bool ek__rt_unref_unless_last(ek_runtime *rt);

/* cells.c: rt->h.slab, when the cell slab is on (see there). EK_OK or EK_ENOMEM. */
int ek__rt_cells_init(ek_runtime *rt);
/* observe.c: &rt->cfg.obs if the runtime has a task hook or a slow-poll
 * threshold, else NULL (what every scheduler's obs is set to). */
ek__observer *ek__rt_observer(ek_runtime *rt);

/* current_thread.c */
int ek__ct_init(ek_runtime *rt);
void ek__ct_destroy(ek_runtime *rt);
void ek__ct_schedule(ek__sched *s, ek__task *t, int how);
void ek__ct_drain(ek_runtime *rt);

/* blocking.c */
int ek__blocking_init(ek_runtime *rt);
/* Stop: cancel queued jobs, wait for running ones up to timeout_ms.
 * Returns EK_OK or EK_ETIMEDOUT. */
int ek__blocking_shutdown(ek_runtime *rt, uint64_t timeout_ms);
void ek__blocking_destroy(ek_runtime *rt);

/* block_on.c: drive poll(state) on this thread until it completes. */
int ek__block_on_poll(ek_runtime *rt, ek_poll_fn poll, void *state, void **out);
/* The same without a runtime (the waker just unparks this thread): for a join
 * handle whose runtime is closed while its task still completes elsewhere (a
 * blocking job that outlived a shutdown timeout). EK_EDEADLK on a runtime
 * thread. */
int ek__block_on_detached(ek_poll_fn poll, void *state, void **out);

/* The waker of a thread inside ek_block_on: a heap "thread parker"
 * (reference-counted, since wakers cloned from it may outlive the call). Waking
 * it sets `woken` and unparks the thread. */
typedef struct ek__thread_parker {
    ek__wakeable wk;
    _Atomic uint32_t refs;
    atomic_bool woken;
    ek__parker p;
} ek__thread_parker;
/* current_thread.c: the current-thread scheduler's loop, on the thread inside
 * ek_block_on (tp its waker, l its local set): until poll(state) completes or
 * the runtime closes (EK_ECLOSED). */
int ek__ct_block_on(ek_runtime *rt, ek__thread_parker *tp, ek__local *l, ek_poll_fn poll,
                    void *state, void **out);

/* Take (or, with an all-zero role, leave) a role on the calling thread:
 * ek__cur, and the slab heap of the role's local set as the thread's own
 * (task/slab.h), which only the thread running that set may use. */
static inline void ek__cur_set(ek__tls role)
{
    /* The old role's references go back first (rt.h): the caller still holds
     * one of its own (the worker's runtime is joined after this, ek_block_on's
     * caller has the handle), so this is never the last. */
    if (ek__refs_mine != NULL) ek__rt_refs_flush(ek__refs_mine);
    ek__cur = role;
    ek__slab_mine = role.local != NULL ? role.local->heap : NULL;
    ek__refs_mine = role.local != NULL ? &role.local->refs : NULL;
}

/* Shut down (spawns refused, loops leave). Any thread. */
static inline bool ek__rt_closed(ek_runtime *rt)
{
    return atomic_load_explicit(&rt->h.closed, memory_order_acquire);
}

/* Call a thread hook if one is set (on the thread it concerns). */
static inline void ek__rt_hook(ek_runtime *rt, int which)
{
    const ek__hook *h = &rt->cfg.hooks[which];
    if (EK__UNLIKELY(h->fn != NULL)) h->fn(h->data);
}

/* Run a task's notification on this thread with the runtime's budget. */
static inline void ek__rt_run_task(ek_runtime *rt, ek__task *t)
{
    ek__task_run(t, rt, rt->cfg.budget);
}

/* For the loops that drive a thread inside ek_block_on (block_on.c's, and the
 * current-thread scheduler's in current_thread.c): whether the thread's waker
 * fired since the last call; poll the thread's own future if it was woken
 * (true when it completed, status in *rc); run up to `max` of the local tasks
 * pinned to it (returns how many ran). Inline, so that neither file calls into
 * the other for them. */
static inline bool ek__thread_parker_take_woken(ek__thread_parker *tp)
{
    return atomic_exchange_explicit(&tp->woken, false, memory_order_acquire);
}

static inline bool ek__block_on_poll_main(ek_runtime *rt, ek__thread_parker *tp, ek_poll_fn poll,
                                          void *state, void **out, int *rc)
{
    if (!ek__thread_parker_take_woken(tp)) return false;
    ek_cx cx = {.waker = &tp->wk, .task = NULL, .rt = rt, .budget = rt->cfg.budget};
    *rc = poll(state, &cx, out);
    if (*rc > EK_PENDING) *rc = EK_EINVAL; /* as a task's poll (task.c) */
    return *rc != EK_PENDING;
}

static inline unsigned ek__block_on_run_locals(ek_runtime *rt, ek__local *l, unsigned max)
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

#endif
