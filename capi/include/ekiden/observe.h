/*
 * ekiden/observe.h - seeing what a runtime's tasks do: task names, task hooks
 * (spawn, terminate, before and after each poll), slow-poll detection, and a
 * text dump of the runtime (workers, queues, every live task). Included by
 * ekiden.h; uses its types (ek_runtime, ek_builder, ek_join, ek_poll_fn,
 * ek_drop_fn) and conventions.
 *
 * Cost. A runtime built without any task hook and without a slow-poll
 * threshold pays a predictable branch per spawn and per task end and none per
 * poll; a name is kept in the task's own allocation (no second one). The dump
 * costs nothing until it is called.
 *
 * Task ids. Every task (ek_spawn, ek_spawn_local, ek_spawn_blocking, the named
 * and inline variants, ek_spawn_future) gets an id, 1, 2, 3, ... in spawn order per
 * runtime; the hooks and the dump show it. It is the spawn's ordinal modulo
 * 2^32 (so that a task stays 112 bytes): unique unless a task lives through
 * four billion later spawns.
 */
#ifndef EKIDEN_OBSERVE_H
#define EKIDEN_OBSERVE_H

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------- */
/* Task names                                                                */
/* ------------------------------------------------------------------------- */

/* Longest name kept, in bytes (a longer one is cut there, at a byte). */
#define EK_TASK_NAME_MAX 63

/*
 * As ek_spawn and ek_spawn_local, with a name for the task: shown by
 * ek_runtime_dump and passed to the task hooks and the slow-poll callback.
 * `name` is copied (its first EK_TASK_NAME_MAX bytes); NULL or "" means no
 * name (as ek_spawn). Thread, ownership and errors as ek_spawn /
 * ek_spawn_local (state is consumed on every path; *join is NULL after a
 * failure; EK_ENOMEM when the task, with its name, cannot be allocated).
 */
EK_EXTERN int ek_spawn_named(ek_runtime *rt, const char *name, ek_poll_fn poll, ek_drop_fn drop,
                             void *state, ek_drop_fn out_drop, ek_join **join);
EK_EXTERN int ek_spawn_local_named(ek_runtime *rt, const char *name, ek_poll_fn poll,
                                   ek_drop_fn drop, void *state, ek_drop_fn out_drop,
                                   ek_join **join);

/* ------------------------------------------------------------------------- */
/* Task hooks                                                                */
/* ------------------------------------------------------------------------- */

/*
 * Task hooks (Tokio's on_task_spawn, on_task_terminate, on_before_task_poll,
 * on_after_task_poll), for tracing and for a binding's bookkeeping. Each takes
 * a function and a user pointer handed back to it; NULL fn clears the hook, and
 * setting one replaces the previous one. The builder copies them into each
 * runtime it builds. The hook gets the task's id and its name (NULL if it has
 * none; the string is valid only during the call).
 * - spawn: on the thread that spawns the task, before the task can first be
 *   polled or cancelled (so it comes before the task's other hooks). Every
 *   kind of task: async, local and blocking. A spawn refused with EK_ECLOSED
 *   reports nothing, unless the shutdown overtook it during this hook: then
 *   its terminate follows at once, on the same thread.
 * - terminate: once per task, on the thread that completes or cancels it
 *   (a worker, a thread inside ek_block_on, the thread calling
 *   ek_runtime_shutdown for the idle tasks it cancels, a blocking thread), after
 *   its future or job was dropped and before its join handle can see it
 *   finished (so ek_join_wait returning implies the hook has returned). Every
 *   task whose spawn hook ran gets exactly one terminate.
 * - before_poll, after_poll: on the thread that polls, around each poll of an
 *   async or local task (not around a blocking job, which is run, not polled).
 * `data` is borrowed: it must stay valid while the runtime's tasks may still
 *   run, i.e. until every task whose spawn was reported has terminated (after
 *   ek_runtime_free, only a blocking job that outlived a shutdown timeout or a
 *   local task that another thread has not dropped yet can still terminate).
 * No lock of the runtime is held while a hook runs: a hook may spawn, wake,
 * and call ek_runtime_dump or ek_runtime_metrics. It must not block for long,
 * and must not call ek_runtime_shutdown or ek_runtime_free.
 * Errors: EK_EINVAL (bad builder).
 */
typedef void (*ek_task_hook_fn)(void *data, uint64_t task_id, const char *name);
EK_EXTERN int ek_builder_on_task_spawn(ek_builder *b, ek_task_hook_fn fn, void *data);
EK_EXTERN int ek_builder_on_task_terminate(ek_builder *b, ek_task_hook_fn fn, void *data);
EK_EXTERN int ek_builder_on_before_task_poll(ek_builder *b, ek_task_hook_fn fn, void *data);
EK_EXTERN int ek_builder_on_after_task_poll(ek_builder *b, ek_task_hook_fn fn, void *data);

/*
 * Slow-poll detection (Tokio #6315): a poll of an async or local task that runs
 * for more than `threshold_us` microseconds (by the monotonic clock) counts in
 * EK_METRIC_SLOW_POLLS and, if fn is not NULL, is reported to fn right after
 * the poll returns, on the thread that polled, with the task's id, name (NULL
 * if none; valid during the call) and the poll's length in nanoseconds.
 * A slow poll is one that blocked its thread (a sleep, a lock held too long,
 * a heavy computation) and starved the other tasks of that thread.
 * threshold_us 0 turns detection off (the default; then no clock is read).
 * Blocking jobs (ek_spawn_blocking) are not measured. `data` is borrowed, as
 * for the task hooks. Thread and restrictions as the task hooks.
 * Errors: EK_EINVAL (bad builder, threshold_us above UINT64_MAX / 1000).
 */
typedef void (*ek_slow_poll_fn)(void *data, uint64_t task_id, const char *name, uint64_t poll_ns);
EK_EXTERN int ek_builder_set_slow_poll(ek_builder *b, uint64_t threshold_us, ek_slow_poll_fn fn,
                                       void *data);

/* ------------------------------------------------------------------------- */
/* Runtime dump                                                              */
/* ------------------------------------------------------------------------- */

/*
 * A text snapshot of the runtime, for a human or a log: the flavour and
 * whether it is shut down; the main metrics; one line per worker (its local
 * queue depth, polls, steals, parks); the global and blocking queues; then one
 * line per live task:
 *
 *   task 12 "accept" idle, pended at accept
 *   task 13 "conn" running, pended at read
 *   task 14 - scheduled cancelled
 *   local task 15 "lua" idle, pended at "await queue.get"
 *   blocking task 16 "resolve" running
 *
 * id, name (quoted; - when it has none; a quote, backslash or control byte
 * in it is escaped as \" \\ \xHH), then the state: idle (waiting to be woken),
 * scheduled (woken, in a queue), running (being polled, or a blocking job
 * running), complete (finishing now), and "cancelled" when an abort or the
 * shutdown is pending; then where the task's last poll that returned
 * EK_PENDING waited, when it is known: ", pended at " and the site. The
 * runtime's own waits are named bare: sleep, timeout, interval tick, read,
 * write, recv, send, accept, connect, mutex lock, semaphore acquire,
 * notified, oneshot, mpsc recv, mpsc send, broadcast recv, watch changed,
 * join, select, join all, group wait; a name set with ek_task_set_pend_site
 * is quoted as a task name. The first wait of a poll names it (a timeout
 * around a read says read). A task that has not pended yet, or whose last
 * pending poll waited on nothing the runtime knows (a host future that named
 * no site), has no site. The lines are in no particular order. Tasks end
 * while the dump is made, so it is a snapshot of each task, not of one
 * instant.
 *
 * The text goes to buf[0..cap) and is always NUL-terminated when cap > 0, as
 * snprintf: *len (if len is not NULL) gets the length of the whole dump
 * without the NUL, and the result is EK_OK if it fit, EK_ERANGE if it was cut
 * (then call again with a buffer of at least *len + 1 bytes; the dump may have
 * grown meanwhile). buf may be NULL with cap 0, to measure. Nothing is
 * allocated; the buffer is the caller's.
 * Any thread, any time while the handle is valid (also after
 * ek_runtime_shutdown: the tasks that are left), concurrently with everything
 * else (a task hook included); it takes each task list's lock briefly.
 * Errors: EK_EINVAL (bad rt, or buf NULL with cap > 0).
 */
EK_EXTERN int ek_runtime_dump(ek_runtime *rt, char *buf, size_t cap, size_t *len);

/*
 * Name where the polling task waits, for ek_runtime_dump: call it from a
 * future's poll that is about to return EK_PENDING (a host future, say "await
 * queue.get" for a Python coroutine). It replaces whatever the poll recorded
 * so far (the runtime's own operations record theirs first-come), and the
 * task keeps it until its next poll that pends. `site` is copied (its first
 * EK_TASK_NAME_MAX bytes) into a process-wide table of names that only grows
 * (at most 200 distinct names per process; the same name again costs a
 * lookup, no memory), so the caller keeps no memory alive; NULL or "" clears
 * the site. Inside ek_block_on's own future (no task) it has no effect.
 * Any thread, during a poll with this cx. Errors: EK_EINVAL (cx NULL),
 * EK_ENOMEM (the table is full: nothing recorded).
 */
EK_EXTERN int ek_task_set_pend_site(ek_cx *cx, const char *site);

#ifdef __cplusplus
}
#endif

#endif /* EKIDEN_OBSERVE_H */
