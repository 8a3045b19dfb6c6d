/*
 * sync.h - what the sync primitives share: their type tags, the parker used by
 * blocking (non-task) waits, the intrusive waiter, the batch of wakers to wake
 * after a lock is released, and the fair permit queue used by mpsc (slots),
 * semaphore and mutex.
 *
 * Locking rule for every primitive: one lock per object (an ek__lock, a futex
 * word taken without a spin: ek__lock_acquire_nospin in common.h) guards its
 * state and its waiter lists. Under that lock we only
 * move pointers: task wakers are *moved out* of the waiters into an
 * ek__wake_list and woken after the unlock
 * (waking may take scheduler locks; and a waiter may be freed the moment the
 * lock is released). Parkers (threads blocked in *_blocking_*) are the exception:
 * they are unparked while the lock is still held, because the parker lives on the
 * blocked thread's stack and that thread cannot return before it re-takes the
 * lock and sees why it was woken. User callbacks (drop and clone functions) never
 * run under a lock, except clone functions, which the header documents.
 */
#ifndef EK_CORE_SYNC_SYNC_H
#define EK_CORE_SYNC_SYNC_H

#include "../common.h"
#include "../task/task.h"

/* Type tags of the sync handles ("EKS" + a letter); distinct from common.h's. */
enum {
    EK__TAG_ONESHOT_TX = 0x454b5361u,
    EK__TAG_ONESHOT_RX = 0x454b5362u,
    EK__TAG_MPSC_TX = 0x454b5363u,
    EK__TAG_MPSC_RX = 0x454b5364u,
    EK__TAG_MPSC_PERMIT = 0x454b5365u,
    EK__TAG_BCAST_TX = 0x454b5366u,
    EK__TAG_BCAST_RX = 0x454b5367u,
    EK__TAG_WATCH_TX = 0x454b5368u,
    EK__TAG_WATCH_RX = 0x454b5369u,
    EK__TAG_NOTIFY = 0x454b536au,
    EK__TAG_NOTIFIED = 0x454b536bu,
    EK__TAG_SEMAPHORE = 0x454b536cu,
    EK__TAG_SEM_PERMIT = 0x454b536du,
    EK__TAG_MUTEX = 0x454b536eu,
    EK__TAG_MUTEX_GUARD = 0x454b536fu,
};

/* ---- parker: a thread blocked outside the runtime ---- */
typedef struct ek__sync_parker {
    ek__mutex m;
    ek__cond c;
    bool notified; /* guarded by m; consumed by ek__sync_parker_park */
} ek__sync_parker;

int ek__sync_parker_init(ek__sync_parker *p);
void ek__sync_parker_destroy(ek__sync_parker *p);
/* Block until unparked (a notification given before the park is not lost). */
void ek__sync_parker_park(ek__sync_parker *p);
void ek__sync_parker_unpark(ek__sync_parker *p);

/* EK_OK if the calling thread may block (not a runtime thread, or a
 * blocking-pool thread), EK_EDEADLK if it runs tasks. */
int ek__sync_blocking_check(void);

/* ---- waiter ---- */
enum {
    EK__W_IDLE = 0,   /* not waiting */
    EK__W_QUEUED = 1, /* linked in a wait list */
    EK__W_READY = 2,  /* served (permits assigned / notified); unlinked */
    EK__W_CLOSED = 3, /* woken because the object closed; unlinked */
};

/*
 * One waiting task (waker) or blocked thread (parker). Embedded in the handle
 * that waits (sender, permit object, guard, receiver), so waiting never
 * allocates. Every field is guarded by the owning primitive's lock.
 */
typedef struct ek__waiter {
    ek__list node;
    ek_waker *waker;         /* owned reference, or NULL */
    ek__sync_parker *parker; /* borrowed from a blocked thread's stack, or NULL */
    size_t want;             /* permit queues: permits requested */
    size_t need;             /* permit queues: permits still missing (want - assigned) */
    int state;               /* EK__W_* */
    /* ek__sem only: a wait is outstanding (queued, or served and not yet
     * collected). Written only by the waiter's owner, so the owner may read it
     * without the lock. */
    bool armed;
} ek__waiter;

void ek__waiter_init(ek__waiter *w);

/* ---- wake list: wakers collected under a lock, woken after it ---- */
#define EK__WAKE_BATCH 32
typedef struct ek__wake_list {
    unsigned n;
    ek_waker *w[EK__WAKE_BATCH];
} ek__wake_list;

static inline void ek__wake_list_init(ek__wake_list *wl)
{
    wl->n = 0;
}
/* Wake everything collected (call with no lock held). */
void ek__wake_list_wake(ek__wake_list *wl);

/*
 * Wake the waiter (lock held): a parker is unparked now, a task waker is moved
 * into wl (woken later). If wl is full the waker is woken at once, still under
 * the lock: correct (waking never calls back into sync code) if slower; it only
 * happens past EK__WAKE_BATCH wake-ups in one operation.
 */
void ek__waiter_wake(ek__waiter *w, ek__wake_list *wl);

/*
 * Arrange for the waiter to be woken (lock held): with a parker, record it;
 * with a task context, keep the stored waker if it already wakes this task
 * (no clone), else clone a new one. The replaced waker, if any, is returned in
 * *old to be dropped after unlock (dropping may run arbitrary code).
 * Errors: EK_ENOMEM if no waker could be made.
 */
int ek__waiter_register(ek__waiter *w, ek_cx *cx, ek__sync_parker *pk, ek_waker **old);

/*
 * Wait on a plain wait list (lock held; not for permit queues): register w as
 * ek__waiter_register does and link it at the back of `waiters` unless it is
 * there already. EK_PENDING when w is queued; EK_ENOMEM if no waker could be
 * made (w is left as it was: the caller ends the wait with ek__waiter_done).
 */
int ek__waiter_enqueue(ek__waiter *w, ek__list *waiters, ek_cx *cx, ek__sync_parker *pk,
                       ek_waker **old);
/* End a wait (lock held): unlink w if it is queued, and make it idle. */
void ek__waiter_done(ek__waiter *w);
/* Empty a plain wait list (lock held): every waiter gets `state` (EK__W_READY
 * or EK__W_CLOSED) and is woken through wl. */
void ek__waiters_wake_all(ek__list *waiters, int state, ek__wake_list *wl);

/*
 * Block the calling thread (a *_blocking_* call) until attempt(arg, pk) returns
 * something other than EK_PENDING, and return that. attempt takes `lock` itself
 * and, when it returns EK_PENDING, has left w to be unparked through pk. Before
 * returning, w->parker is cleared under `lock`: after that no waker can still be
 * unparking pk, which lives on this stack. EK_EDEADLK on a thread that runs
 * tasks (see ek__sync_blocking_check); the parker's error if it cannot be made.
 */
typedef int (*ek__sync_attempt_fn)(void *arg, ek__sync_parker *pk);
int ek__sync_blocking_wait(ek__lock *lock, ek__waiter *w, ek__sync_attempt_fn attempt, void *arg);

/* ---- the fair permit queue (the caller holds the object's lock) ----
 *
 * A FIFO of waiters to which permits are assigned in order; only the front one
 * may hold a partial assignment (it collects them a few at a time, as Tokio's
 * batch semaphore). ek__permits (below) and ek__sem keep their waiters in one;
 * these four functions are all that touches it. */
/* Queue w at the back for n permits, `part` of which are assigned already. */
void ek__permit_queue_push(ek__list *q, ek__waiter *w, size_t n, size_t part);
/* Assign n permits to the waiters in order; each one served in full becomes
 * EK__W_READY, leaves the queue and is woken through wl. Returns the permits
 * left over (0 unless the queue ran empty). */
size_t ek__permit_queue_assign(ek__list *q, size_t n, ek__wake_list *wl);
/* Take w out of the queue (QUEUED) or undo its hand-off (READY); returns the
 * permits that were assigned to it, for the caller to give back. w is IDLE. */
size_t ek__permit_queue_unassign(ek__waiter *w);
/* Every queued waiter becomes EK__W_CLOSED and is woken; returns the permits
 * that were assigned to them. */
size_t ek__permit_queue_close(ek__list *q, ek__wake_list *wl);

/* A permit count with its queue: mpsc's slots. */
typedef struct ek__permits {
    size_t avail;     /* permits not assigned to anyone */
    ek__list waiters; /* FIFO; only the front one may hold a partial assignment */
    bool closed;
} ek__permits;

void ek__permits_init(ek__permits *p, size_t avail);
/* Take n permits at once if nobody waits and enough are free (fairness). */
bool ek__permits_try(ek__permits *p, size_t n);
/*
 * Take n permits or queue w for them. Returns true when all n were taken (w
 * untouched), false when w is queued (EK__W_QUEUED, possibly with part of the
 * permits already assigned to it, as Tokio does for the front waiter).
 */
bool ek__permits_acquire(ek__permits *p, ek__waiter *w, size_t n);
/* Give back n permits: assign them to waiters in order (READY ones are woken
 * through wl), the rest become available. */
void ek__permits_release(ek__permits *p, size_t n, ek__wake_list *wl);
/* Unlink a queued waiter and give back what was assigned to it; a READY waiter
 * gives back its whole `want`. Sets the waiter IDLE. */
void ek__permits_cancel(ek__permits *p, ek__waiter *w, ek__wake_list *wl);
/* Close: every queued waiter becomes EK__W_CLOSED and is woken; later acquires
 * fail. Permits assigned to them are given back (counted in avail). */
void ek__permits_close(ek__permits *p, ek__wake_list *wl);

/* ---- a fair semaphore: the core of ek_semaphore and ek_mutex ----
 *
 * state = avail << 2 | SEM_WAITERS | SEM_CLOSED, one atomic word, so that an
 * uncontended acquire or release is a single CAS. The waiter list is guarded by
 * `lock`; SEM_WAITERS is set and cleared only under it, and is set exactly
 * while the list is non-empty. Invariant: SEM_WAITERS implies avail == 0 (freed
 * permits go to the waiters first), and both fast paths refuse to act while it
 * is set, so nobody overtakes a waiter. */
typedef struct ek__sem {
    ek__lock lock; /* taken without a spin (ek__lock_acquire_nospin) */
    _Atomic size_t state;
    ek__list waiters; /* FIFO of ek__waiter.node; only the front may be partial */
} ek__sem;

void ek__sem_init(ek__sem *s, size_t permits); /* cannot fail */
void ek__sem_destroy(ek__sem *s);
/* EK_OK (n permits taken), EK_EFULL, EK_ECLOSED. */
int ek__sem_try_acquire(ek__sem *s, size_t n);
/*
 * Poll an acquire of n permits for waiter w (task: cx; blocked thread: pk).
 * EK_OK: the n permits are the caller's and w is idle again; EK_PENDING: w is
 * queued and will be woken; EK_ECLOSED; EK_EINVAL (n changed while queued);
 * EK_ENOMEM (no waker; w left the queue).
 */
int ek__sem_poll_acquire(ek__sem *s, ek__waiter *w, ek_cx *cx, ek__sync_parker *pk, size_t n);
/* Block the calling thread until ek__sem_poll_acquire completes. */
int ek__sem_blocking_acquire(ek__sem *s, ek__waiter *w, size_t n);
void ek__sem_release(ek__sem *s, size_t n);
/* w leaves the queue; permits assigned to it are given back. */
void ek__sem_cancel(ek__sem *s, ek__waiter *w);
void ek__sem_close(ek__sem *s);
size_t ek__sem_available(ek__sem *s);
bool ek__sem_is_closed(ek__sem *s);

#endif
