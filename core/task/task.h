/*
 * task.h - the task: one allocation holding the header, the future and the
 * result, reference-counted by a single atomic state word.
 *
 * State word (as Tokio's task/state.rs):
 *   RUNNING        a thread is polling the future (it owns the future's state)
 *   COMPLETE       the future is gone; the result stage holds status + output
 *   NOTIFIED       a notification is pending: the task is in (or about to be put
 *                  in) a run queue, or it will be resubmitted when its poll ends
 *   JOIN_INTEREST  a join handle exists
 *   JOIN_WAKER     the join handle's waker is stored and the runtime may read it
 *   CANCELLED      abort or shutdown requested
 *   refcount       the remaining bits, in units of EK__REF_ONE
 *
 * References are held by: the owned-tasks list (until the task completes), each
 * notification (a run-queue entry), the join handle, each waker.
 *
 * Invariants:
 *   - only the thread that set RUNNING touches the future or writes the result;
 *   - the result is written before COMPLETE is published (release) and read only
 *     after COMPLETE is observed (acquire);
 *   - after COMPLETE, the output belongs to the join handle if JOIN_INTEREST was
 *     set at completion, else it was released by the runtime;
 *   - the join waker field is written by the join handle only while JOIN_WAKER
 *     is clear, and read by the runtime only while it is set.
 */
#ifndef EK_CORE_TASK_TASK_H
#define EK_CORE_TASK_TASK_H

#include "../common.h"

#define EK__ST_RUNNING       0x01u
#define EK__ST_COMPLETE      0x02u
#define EK__ST_NOTIFIED      0x04u
#define EK__ST_JOIN_INTEREST 0x08u
#define EK__ST_JOIN_WAKER    0x10u
#define EK__ST_CANCELLED     0x20u
#define EK__REF_ONE          0x40u
#define EK__REF_MASK         (~(uint64_t)(EK__REF_ONE - 1))

typedef struct ek__task ek__task;
typedef struct ek__sched ek__sched;

/* What a runtime observes of its tasks (ekiden/observe.h): the task hooks and
 * the slow-poll threshold. A scheduler without any has obs NULL, and the
 * harness then pays one branch per poll and per task end (observe.c). */
enum {
    EK__TASK_HOOK_SPAWN,
    EK__TASK_HOOK_TERMINATE,
    EK__TASK_HOOK_BEFORE_POLL,
    EK__TASK_HOOK_AFTER_POLL,
    EK__TASK_HOOK_COUNT
};
typedef struct ek__observer {
    struct {
        ek_task_hook_fn fn;
        void *data;
    } hook[EK__TASK_HOOK_COUNT];
    uint64_t slow_poll_ns; /* 0: not measured */
    ek_slow_poll_fn slow_fn;
    void *slow_data;
    _Atomic uint64_t slow_polls; /* EK_METRIC_SLOW_POLLS */
} ek__observer;

/* A waker is anything starting with this header: tasks, and the parkers of
 * threads inside ek_block_on. ek_waker * points at it. */
typedef struct ek__waker_vt {
    void (*wake)(void *self); /* wake and release this reference */
    void (*wake_by_ref)(void *self);
    void (*clone)(void *self); /* add a reference */
    void (*drop)(void *self);  /* release a reference */
} ek__waker_vt;
typedef struct ek__wakeable {
    const ek__waker_vt *vt;
} ek__wakeable;

/* The scheduler a task belongs to (as Tokio's Schedule trait): where its
 * notifications go and which owned list holds it. */
struct ek__sched {
    /* Take the notification reference of `t` and queue it; `how` is one of
     * EK__SCHED_* below. */
    void (*schedule)(ek__sched *s, ek__task *t, int how);
    /* List a new task (the list takes one reference): EK_OK, or EK_ECLOSED
     * once the scheduler is shut down (the spawn is refused). */
    int (*bind)(ek__sched *s, ek__task *t);
    /* The task completed: take it off the list. True if it was still listed
     * (the caller then drops the list's reference). */
    bool (*release)(ek__sched *s, ek__task *t);
    ek_runtime *rt;
    ek__observer *obs; /* the runtime's, or NULL when it observes nothing */
};

/* How a notification is queued. */
#define EK__SCHED_WAKE  0 /* woken by someone else: the LIFO slot if the waker runs here */
#define EK__SCHED_YIELD 1 /* woken during its own poll: the back of the queue */
#define EK__SCHED_DEFER 2 /* yielded or out of budget: after the other runnable work */

/* Pinned to one thread: polled and dropped only there (sched is its ek__local). */
#define EK__TASK_LOCAL    0x1u
#define EK__TASK_BLOCKING 0x2u
/* Its scheduler observes tasks (sched->obs is set): hooks, slow polls. */
#define EK__TASK_OBSERVED 0x4u
/* It has a name, stored right after the struct (ek__task_name). */
#define EK__TASK_NAMED 0x8u

#define EK__TASK_HOT_BEGIN 8  /* offsetof(ek__task, state) */
#define EK__TASK_HOT_END   58 /* one past flags */

struct ek__task {
    uint32_t tag; /* EK__TAG_JOIN: the join handle is the task itself */
    /* The spawn's ordinal in its runtime, modulo 2^32 (ekiden/observe.h): set
     * before the task is listed, never after. */
    uint32_t id;
    /*
     * The hot window, bytes [8, 58): every field a poll reads or writes
     * (state, the waker, the run-queue link, the scheduler, poll, fstate,
     * pend_site, flags). Slab cells are 112 bytes apart and start on 16-byte
     * boundaries (slab.c), so the window starts 8 bytes past a 16-byte
     * boundary: at every one of the four phases a 112-byte stride takes
     * modulo a 64-byte line, the 54 bytes from one window's end to the next
     * one's start keep the two windows on different lines. Two tasks polled
     * at once on two workers then never share a line they touch (with the
     * read-only poll and fstate at offsets 64-96, the next cell's state shared
     * a line with them on every other cell: rt_multi.yield_many ran 1.2x
     * slower than with malloc's 128-byte spacing). Checked by task.c's
     * asserts and test_slab's neighbouring-cells test.
     */
    _Atomic uint64_t state;
    ek__wakeable wk;  /* the task's waker identity */
    ek__task *next;   /* run-queue link (inject queue, local lists) */
    ek__sched *sched; /* where notifications go */
    ek_poll_fn poll;  /* NULL for blocking jobs */
    void *fstate;     /* the future's state, or the blocking job's arg */
    /* Where its last poll that returned EK_PENDING waited (EK__SITE_*, or an
     * interned host name: observe.c): written by the polling thread after
     * each such poll, read by ek_runtime_dump from any thread (relaxed: a
     * site is a small integer, and a stale one is a fair snapshot). */
    _Atomic uint8_t pend_site;
    uint8_t flags; /* EK__TASK_*, fixed at spawn */
    /* End of the hot window (EK__TASK_HOT_END). Below: spawn, completion, join. */
    uint8_t owned_shard; /* < EK__OWNED_SHARDS (16) */
    bool output_taken;   /* join handle only, after COMPLETE */
    int status;          /* result status: EK_OK, a negative error, or EK_ECANCELED */
    ek__list owned;      /* owned-tasks list link (rt->owned, or its local set's) */
    ek_drop_fn drop;     /* releases the future's state (may be NULL for jobs) */
    ek_drop_fn out_drop;
    union {
        void *output;               /* result stage */
        ek_blocking_fn blocking_fn; /* before a blocking job runs */
    } u;
    ek_waker *join_waker;
    /* A name (EK__TASK_NAMED) follows the struct in the same allocation, then
     * an inline state (ek_spawn_inline: fstate points at it), 16-byte aligned. */
};

/* The context of one poll. */
struct ek_cx {
    ek__wakeable *waker; /* the task's (or block_on parker's) waker, borrowed */
    ek__task *task;      /* NULL inside ek_block_on's own future */
    ek_runtime *rt;
    unsigned budget;
    bool defer;   /* the task yielded: re-poll it after the others (set by the poll) */
    uint8_t site; /* where this poll first waited (EK__SITE_*), 0: nowhere yet */
};

/* Whether something this poll polled yielded (ek_yield_now, ek_coop_proceed out
 * of budget): the task is re-polled after the other runnable work, so a future
 * that loops over its parts (the framed server's connection) stops there rather
 * than poll the yielded part again in the same poll. */
static inline bool ek__cx_yielded(const ek_cx *cx)
{
    return cx->defer;
}

/*
 * Pend sites: where a task waits, for ek_runtime_dump ("where it last
 * pended"). Every leaf operation that returns EK_PENDING after storing the
 * task's waker names itself in the poll's context (ek__cx_pend: a store into
 * the caller's stack frame, the first one of the poll wins, so that a timeout
 * around a read says "read" and a select says which branch waited first); the
 * harness copies it into the task once per pending poll. A host future names
 * its own with ek_task_set_pend_site (an interned name, observe.c).
 */
enum {
    EK__SITE_NONE,
    EK__SITE_SLEEP,
    EK__SITE_TIMEOUT,
    EK__SITE_INTERVAL,
    EK__SITE_READ,
    EK__SITE_WRITE,
    EK__SITE_RECV,
    EK__SITE_SEND,
    EK__SITE_ACCEPT,
    EK__SITE_CONNECT,
    EK__SITE_MUTEX,
    EK__SITE_SEMAPHORE,
    EK__SITE_NOTIFY,
    EK__SITE_ONESHOT,
    EK__SITE_MPSC_RECV,
    EK__SITE_MPSC_SEND,
    EK__SITE_BROADCAST,
    EK__SITE_WATCH,
    EK__SITE_JOIN,
    EK__SITE_SELECT,
    EK__SITE_JOIN_ALL,
    EK__SITE_GROUP,
    EK__SITE_CORE_COUNT /* host names are interned from here up to 255 */
};
static inline void ek__cx_pend(ek_cx *cx, uint8_t site)
{
    if (cx->site == EK__SITE_NONE) cx->site = site;
}
/* ek_coop_proceed with its common case inline: budget left, spend one unit.
 * The rest (no context, out of budget: the yield) is the call's. */
static inline int ek__coop_proceed(ek_cx *cx)
{
    if (cx != NULL && cx->budget != 0) {
        cx->budget--;
        return EK_OK;
    }
    return ek_coop_proceed(cx);
}
/* rc, after naming the wait when it is EK_PENDING: a leaf's last step. */
static inline int ek__cx_pended(ek_cx *cx, int rc, uint8_t site)
{
    if (rc == EK_PENDING && cx != NULL) ek__cx_pend(cx, site);
    return rc;
}
/* The name of a site (NULL for EK__SITE_NONE or an unknown one). Any thread. */
const char *ek__site_name(uint8_t site);

/* ---- state transitions (state.c) ---- */
typedef enum { EK__RUN_OK, EK__RUN_CANCELLED, EK__RUN_FAILED } ek__run_result;
typedef enum {
    EK__IDLE_OK,
    EK__IDLE_NOTIFIED,
    EK__IDLE_CANCELLED,
    EK__IDLE_DEALLOC
} ek__idle_result;

ek__run_result ek__state_to_running(ek__task *t);
ek__idle_result ek__state_to_idle(ek__task *t);
uint64_t ek__state_to_complete(ek__task *t);
bool ek__state_to_notified_by_ref(ek__task *t); /* true: caller submits (ref added) */
bool ek__state_to_notified_by_val(ek__task *t, bool *dealloc); /* true: submit w/ our ref */
bool ek__state_to_notified_and_cancel(ek__task *t);            /* true: submit (ref added) */
bool ek__state_to_shutdown(ek__task *t); /* true: caller now owns the future: cancel it */
void ek__task_ref_inc(ek__task *t);
bool ek__task_ref_dec(ek__task *t, unsigned n); /* true when it reached zero */

/* ---- task lifecycle (task.c) ---- */
/* inline_size of a task whose state the caller allocated (fstate is it). */
#define EK__TASK_HEAP_STATE ((size_t)-1)
/*
 * Allocate a task with `refs` initial references (2 + 1 if joined). `name`
 * (NULL or "": none) is copied into the same allocation, its first
 * EK_TASK_NAME_MAX bytes. With inline_size other than EK__TASK_HEAP_STATE the
 * state lives in the cell too (ek_spawn_inline): inline_size bytes copied from
 * fstate (NULL when inline_size is 0), 16-byte aligned after the struct and
 * the name, the cell rounded up to whole cache lines (slab.c gives such cells
 * lines of their own); t->fstate then points at the copy, which the task's
 * drop releases the contents of and ek__task_dealloc frees with the cell.
 * Errors: EK_ENOMEM; EK_EINVAL when the cell would exceed EK__SLAB_MAX_CELL
 * (a name and a state together too long). Nothing is dropped here.
 */
int ek__task_new(ek__sched *sched, ek_poll_fn poll, ek_drop_fn drop, void *fstate,
                 size_t inline_size, ek_drop_fn out_drop, bool joined, uint32_t flags,
                 const char *name, ek__task **out);
/* The task's name, or NULL. Immutable while the task lives. */
static inline const char *ek__task_name(const ek__task *t)
{
    return (t->flags & EK__TASK_NAMED) ? (const char *)(t + 1) : NULL;
}
/* Run one notification of t (the caller hands over the notification's ref). */
void ek__task_run(ek__task *t, ek_runtime *rt, unsigned budget);
/* Cancel a task the caller owns (RUNNING|CANCELLED set by ek__state_to_shutdown):
 * drop the future, complete with EK_ECANCELED. */
void ek__task_cancel_owned(ek__task *t);
/* Release a notification reference without running the task. */
void ek__task_drop_notification(ek__task *t);
/* Free a task whose refcount reached zero. */
void ek__task_dealloc(ek__task *t);
/* Hand the result of a completed task (COMPLETE observed, acquire) to its join
 * handle: into *out, or to out_drop when out is NULL. Returns the task's status.
 * Join handle only, once (output_taken is set). */
int ek__task_take_output(ek__task *t, void **out);
/* ---- observation (observe.c), for EK__TASK_OBSERVED tasks only ---- */
/* Call hook `which` (EK__TASK_HOOK_*) for t if it is set. */
void ek__observe_event(ek__observer *obs, ek__task *t, int which);
/* Poll t's future as ek__task_run does, with the poll hooks around it and the
 * slow-poll measurement. */
int ek__observe_poll(ek__observer *obs, ek__task *t, ek_cx *cx, void **out);

/* Submit a task to its scheduler (the caller gives one reference). */
static inline void ek__task_submit(ek__task *t, int how)
{
    t->sched->schedule(t->sched, t, how);
}

#endif
