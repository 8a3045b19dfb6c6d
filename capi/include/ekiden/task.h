/*
 * ekiden/task.h - composing futures (select, join_all) and task groups
 * (structured concurrency). Included by ekiden.h; uses its types (ek_future,
 * ek_runtime, ek_cx, ek_poll_fn, ek_drop_fn) and conventions.
 *
 * Inner futures are heap futures (ek_future): anything ek_future_new wraps, a
 * join handle (ek_join_into_future), ek_sleep, ek_timeout, ek_tcp_connect, and
 * the wait futures of ekiden/sync.h (ek_semaphore_acquire_future,
 * ek_mutex_lock_future, ek_notified_future, ek_*_recv_future,
 * ek_watch_changed_future). A select or join_all is itself a heap future, so
 * they nest: ek_timeout over ek_select, ek_select over ek_join_all, ...
 */
#ifndef EKIDEN_TASK_H
#define EKIDEN_TASK_H

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------- */
/* select and join_all                                                       */
/* ------------------------------------------------------------------------- */

/*
 * A future that completes as soon as the first of futs[0..n) completes, with
 * that future's status and result (EK_OK and its *out, or its negative error:
 * an error counts as completing). The others are dropped (cancelled) at that
 * moment, before the result is handed over; so, for example, a select over a
 * channel receive and a sleep is a receive with a deadline. If `index` is not
 * NULL, *index is set to -1 now and to the index of the future that completed
 * when the select completes (the int must stay valid until then, or until the
 * select is dropped).
 * Order: every poll polls the futures not yet finished in index order, so when
 * several are ready the lowest index wins (Tokio's `biased` select). Dropping
 * the select before it completes drops every inner future. (Dropping is what
 * each future's drop does: a join future detaches its task rather than
 * aborting it; abort the task yourself if the race should stop it.)
 * Consumes every future of the array, on error too (the array itself is only
 * read). Any thread creates it; poll it from task context.
 * Errors: EK_EINVAL (futs NULL, n 0, an element that is not a live heap future,
 * the same future twice, out NULL: each distinct valid future has been dropped;
 * n above INT_MAX: the array is not read), EK_ENOMEM (every future dropped).
 */
EK_EXTERN int ek_select(ek_future **futs, size_t n, int *index, ek_future **out);

/*
 * A future that completes when every one of futs[0..n) has completed: EK_OK
 * with *out = NULL and results[i] = the result of futs[i] (each now the
 * caller's). Each inner future is dropped as soon as it completes. `results`
 * (n entries, set to NULL now) must stay valid until the join_all completes or
 * is dropped; it is the caller's to read once the join_all returned EK_OK.
 * First error: the first inner future to fail (in completion order; among
 * several failing in the same poll, the lowest index) ends the join_all with
 * its error at once (Tokio's try_join_all): the others are dropped (cancelled),
 * results gathered so far go through result_drop (may be NULL: results need no
 * release) and every results[i] is NULL again, and *index (if not NULL; -1 until
 * then and on success) gets the failing index. Dropping the join_all before it
 * completes does the same. So the results are the caller's only on EK_OK, and
 * nothing is lost.
 * Consumes every future of the array, on error too. Any thread creates it; poll
 * it from task context.
 * Errors: EK_EINVAL (as ek_select, or results NULL), EK_ENOMEM.
 */
EK_EXTERN int ek_join_all(ek_future **futs, size_t n, void **results, ek_drop_fn result_drop,
                          int *index, ek_future **out);

/* ------------------------------------------------------------------------- */
/* Task groups: structured concurrency                                       */
/* ------------------------------------------------------------------------- */

/*
 * A group owns the tasks spawned into it (Tokio #1879, Go's errgroup, Trio's
 * nursery): wait for all of them, cancel all of them, let the first failure
 * cancel the rest, and know the first error. Freeing the group cancels its tasks
 * and joins them, so no task outlives the scope that made it.
 *
 * A member is an ordinary task (it has its own join handle if asked for, and
 * runs on the runtime's workers, or pinned to a thread for local spawns). It is
 * "finished" when its drop function has run (after its final poll, or when it
 * was cancelled): so once a wait completes, the state of every member has been
 * released, and so has the result of every member spawned without a join handle
 * (through its out_drop). A result held by a join handle stays the handle's.
 *
 * Cancelling a member: it is not polled again (a poll in progress finishes
 * first), its drop runs, and its join handle gives EK_ECANCELED, as with
 * ek_join_abort.
 *
 * The group's outcome, reported by every wait: the first error (in completion
 * order) a member's poll returned, other than EK_ECANCELED; else EK_ECANCELED if
 * a member ended without completing (the group was cancelled, the task aborted
 * through its join handle, or the runtime shut down) or returned EK_ECANCELED;
 * else EK_OK. It accumulates over the group's life.
 *
 * Threads: every function may be called from any thread, except as noted; a
 * group may be used by several threads at once.
 */
typedef struct ek_group ek_group;

/* Flags for ek_group_new. */
#define EK_GROUP_CANCEL_ON_ERROR 0x1u /* the first failure cancels the other members */

/*
 * A new, empty group spawning onto rt. The group is reference-counted
 * internally: its members and wait futures keep its memory alive, so it may be
 * freed in any order with respect to them; and it holds a reference on the
 * runtime, so ek_runtime_free may come first (its shutdown drops the members;
 * later spawns give EK_ECLOSED, waits the outcome).
 * Errors: EK_EINVAL (bad rt, NULL out, unknown flags), EK_ECLOSED (rt shut
 * down), EK_ENOMEM.
 */
EK_EXTERN int ek_group_new(ek_runtime *rt, unsigned flags, ek_group **out);

/*
 * Spawn a task into the group: as ek_spawn (same poll, drop, out_drop, join and
 * ownership: consumes state, on error too: drop(state) has run; *join is NULL
 * after a failure). Any thread, also from inside a member.
 * Errors: EK_EINVAL (bad group, NULL poll or drop), EK_ECLOSED (the group was
 * cancelled, by ek_group_cancel or a failure with EK_GROUP_CANCEL_ON_ERROR; or
 * the runtime shut down), EK_ENOMEM.
 */
EK_EXTERN int ek_group_spawn(ek_group *g, ek_poll_fn poll, ek_drop_fn drop, void *state,
                             ek_drop_fn out_drop, ek_join **join);

/* As ek_group_spawn, pinned to the calling thread (ek_spawn_local's rules and
 * errors, including EK_EWRONGTHREAD). */
EK_EXTERN int ek_group_spawn_local(ek_group *g, ek_poll_fn poll, ek_drop_fn drop, void *state,
                                   ek_drop_fn out_drop, ek_join **join);

/* Spawn a heap future into the group (consumes f, on error too; a NULL or
 * non-future f gives EK_EINVAL and is not touched). As ek_group_spawn. */
EK_EXTERN int ek_group_spawn_future(ek_group *g, ek_future *f, ek_drop_fn out_drop, ek_join **join);

/*
 * Cancel every member (see above) and close the group: later spawns fail with
 * EK_ECLOSED. Returns at once; wait to know when they are gone. Idempotent.
 * Errors: EK_EINVAL.
 */
EK_EXTERN int ek_group_cancel(ek_group *g);

/* Members spawned and not yet finished (a snapshot, >= 0), or EK_EINVAL. */
EK_EXTERN int64_t ek_group_len(ek_group *g);

/*
 * A future completing when the group has no member left (at once if it has
 * none), with the group's outcome (see above) and *out = NULL. Members spawned
 * while it waits are waited for too. The future holds a reference on the group
 * (it may outlive ek_group_free). Any thread creates it; poll from task context
 * (typically not from a member of the same group, which would wait for itself).
 * Errors now: EK_EINVAL (bad group, NULL out), EK_ENOMEM.
 */
EK_EXTERN int ek_group_wait_future(ek_group *g, ek_future **out);

/*
 * Block the calling thread until the group has no member left and return its
 * outcome. While it waits, the thread drives the runtime as ek_block_on does
 * (local members pinned to this thread run). Not from a runtime thread.
 * Errors: EK_EINVAL, EK_EDEADLK (a worker, blocking-pool thread or a thread
 * inside ek_block_on), EK_ECLOSED (the runtime was shut down while members
 * remain), EK_ENOMEM.
 */
EK_EXTERN int ek_group_blocking_wait(ek_group *g);

/*
 * Free the group: cancel every member, then join them, i.e. wait until each
 * has been dropped, when the calling thread may block (as ek_group_blocking_wait:
 * not on a runtime thread, and not after the runtime shut down). From a runtime
 * thread (e.g. the drop function of a task that owns the group) it cannot wait:
 * the members are cancelled and dropped shortly after on their own threads.
 * Either way the handle is invalid afterwards, and the group's memory goes with
 * the last member or wait future. NULL or a wrong handle is ignored.
 */
EK_EXTERN void ek_group_free(ek_group *g);

#ifdef __cplusplus
}
#endif

#endif /* EKIDEN_TASK_H */
