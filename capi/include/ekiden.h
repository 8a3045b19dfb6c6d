/*
 * ekiden.h - the public interface of Ekiden, an asynchronous runtime in C.
 *
 * Conventions (read these once, they hold for every function below):
 *
 * - Status: functions return `int`: EK_OK (0) on success, EK_PENDING (1) when an
 *   operation cannot complete yet (the current task will be woken when it may), or
 *   a negative EK_E* error code. OS errors are negative errno values.
 * - Handles are opaque. A NULL or wrong-type handle gives EK_EINVAL; a handle whose
 *   object was closed gives EK_ECLOSED. Never a crash.
 * - Ownership, the one rule: a function that takes ownership of something
 *   ("consumes X": a state with its drop function, a future, a join handle, a
 *   value with its drop function) takes it in every case, on error too. When it
 *   fails, X has been released (its drop function ran, the future was dropped,
 *   the handle detached) before it returns, so the caller never cleans up after
 *   a failed call. Every drop function handed over is called exactly once. What
 *   cannot be released is not touched: an argument that is not a valid object (a
 *   NULL or wrong-type handle or future, a state given without a drop function),
 *   and a value handed to a NULL or wrong-type handle (whose drop function is
 *   unknown). Examples: ek_spawn, ek_spawn_local, ek_spawn_blocking,
 *   ek_spawn_future, ek_spawn_inline (drop runs on the caller's bytes),
 *   ek_future_new, ek_join_into_future, ek_block_on,
 *   ek_timeout, ek_select, ek_join_all (every future of the array),
 *   ek_watch_new, ek_mutex_new.
 *   Exceptions, by name: messages handed to a channel's send pass only on
 *   EK_OK, so that a full or closed channel can be retried or the message used
 *   elsewhere: ek_oneshot_send (msg; tx is consumed always), ek_mpsc_send,
 *   ek_mpsc_try_send, ek_mpsc_blocking_send, ek_mpsc_permit_send on EK_ENOMEM
 *   (msg; the permit is consumed always), ek_broadcast_send, ek_watch_send.
 *   Borrowed, not consumed: addresses (ek_sockaddr) and buffers passed to socket
 *   functions.
 *   libuv's rule for callbacks: if a function that takes a callback returns an
 *   error, that callback is never called.
 * - Clones: `int ek_X_clone(X *x, X **out)` gives a new handle (or reference)
 *   in *out, EK_EINVAL for a bad handle or NULL out, EK_ENOMEM where it
 *   allocates. The one exception is the waker (ek_cx_waker, ek_waker_clone),
 *   which returns the new reference itself so that the hot path of wakers stays
 *   one call.
 * - Counts and sizes are returned as int64_t (or int), never unsigned, so that a
 *   bad handle gives a negative EK_E* code instead of a plausible 0. (Two
 *   functions return a value that is not a count: ek_version, and ek_now_ms,
 *   a time, which gives UINT64_MAX, never a time, for a bad handle.)
 * - Threads: unless a function says otherwise it may be called from any thread.
 *   "Task context" means inside a poll function (it takes the poll's ek_cx).
 * - Memory: every allocation goes through the allocator set by ek_set_allocator;
 *   allocation failure is reported as EK_ENOMEM, never an abort.
 *
 * Nothing here is inline and no struct layout is exposed, so FFI hosts (cffi,
 * LuaJIT FFI, libffi, JNA) can call every function by symbol.
 */
#ifndef EKIDEN_H
#define EKIDEN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define EK_EXTERN __attribute__((visibility("default")))
#else
#define EK_EXTERN
#endif

/* ------------------------------------------------------------------------- */
/* Version                                                                   */
/* ------------------------------------------------------------------------- */

#define EK_VERSION_MAJOR 0
#define EK_VERSION_MINOR 1
#define EK_VERSION_PATCH 0
/* (major << 16) | (minor << 8) | patch, comparable with EK_VERSION_HEX. */
#define EK_VERSION_HEX ((EK_VERSION_MAJOR << 16) | (EK_VERSION_MINOR << 8) | EK_VERSION_PATCH)

/* The version of the library actually loaded, as EK_VERSION_HEX. Any thread. */
EK_EXTERN unsigned ek_version(void);
/* The same as "MAJOR.MINOR.PATCH"; static storage, never freed. Any thread. */
EK_EXTERN const char *ek_version_string(void);

/* ------------------------------------------------------------------------- */
/* Status and errors                                                         */
/* ------------------------------------------------------------------------- */

#define EK_OK      0
#define EK_PENDING 1

/*
 * The one error table: X(NAME, value, message). OS errors keep Linux's errno
 * numbers (negated) so that `-errno` is the code on Linux; the runtime's own
 * errors live below -4000.
 */
#define EK_ERRNO_MAP(X)                                                                            \
    X(EPERM, -1, "operation not permitted")                                                        \
    X(ENOENT, -2, "no such file or directory")                                                     \
    X(EINTR, -4, "interrupted system call")                                                        \
    X(EIO, -5, "i/o error")                                                                        \
    X(EBADF, -9, "bad file descriptor")                                                            \
    X(EAGAIN, -11, "resource temporarily unavailable")                                             \
    X(ENOMEM, -12, "not enough memory")                                                            \
    X(EACCES, -13, "permission denied")                                                            \
    X(EFAULT, -14, "bad address in system call argument")                                          \
    X(EBUSY, -16, "resource busy or locked")                                                       \
    X(EEXIST, -17, "file already exists")                                                          \
    X(EINVAL, -22, "invalid argument")                                                             \
    X(ENFILE, -23, "file table overflow")                                                          \
    X(EMFILE, -24, "too many open files")                                                          \
    X(EPIPE, -32, "broken pipe")                                                                   \
    X(ERANGE, -34, "result too large")                                                             \
    X(EDEADLK, -35, "operation would deadlock (called from a runtime thread)")                     \
    X(ENAMETOOLONG, -36, "name too long")                                                          \
    X(ENOSYS, -38, "function not implemented")                                                     \
    X(EPROTO, -71, "protocol error")                                                               \
    X(ENOTSOCK, -88, "socket operation on non-socket")                                             \
    X(EDESTADDRREQ, -89, "destination address required")                                           \
    X(EMSGSIZE, -90, "message too long")                                                           \
    X(EPROTOTYPE, -91, "protocol wrong type for socket")                                           \
    X(ENOPROTOOPT, -92, "protocol not available")                                                  \
    X(EPROTONOSUPPORT, -93, "protocol not supported")                                              \
    X(ENOTSUP, -95, "operation not supported")                                                     \
    X(EAFNOSUPPORT, -97, "address family not supported")                                           \
    X(EADDRINUSE, -98, "address already in use")                                                   \
    X(EADDRNOTAVAIL, -99, "address not available")                                                 \
    X(ENETDOWN, -100, "network is down")                                                           \
    X(ENETUNREACH, -101, "network is unreachable")                                                 \
    X(ECONNABORTED, -103, "software caused connection abort")                                      \
    X(ECONNRESET, -104, "connection reset by peer")                                                \
    X(ENOBUFS, -105, "no buffer space available")                                                  \
    X(EISCONN, -106, "socket is already connected")                                                \
    X(ENOTCONN, -107, "socket is not connected")                                                   \
    X(ETIMEDOUT, -110, "timed out")                                                                \
    X(ECONNREFUSED, -111, "connection refused")                                                    \
    X(EHOSTUNREACH, -113, "host is unreachable")                                                   \
    X(EALREADY, -114, "operation already in progress")                                             \
    X(EINPROGRESS, -115, "operation in progress")                                                  \
    X(ECANCELED, -125, "operation canceled")                                                       \
    X(ECLOSED, -4001, "handle or runtime is closed")                                               \
    X(EFULL, -4002, "no capacity left")                                                            \
    X(EEMPTY, -4003, "nothing available")                                                          \
    X(ELAGGED, -4004, "receiver lagged behind; messages were missed")                              \
    X(EWRONGTHREAD, -4005, "called from a thread that does not own the object")                    \
    X(EAI_NONAME, -4010, "unknown node or service")                                                \
    X(EAI_AGAIN, -4011, "temporary failure in name resolution")                                    \
    X(EAI_FAIL, -4012, "permanent failure in name resolution")                                     \
    X(EAI_FAMILY, -4013, "address family not supported by resolver")                               \
    X(EAI_OTHER, -4014, "name resolution failed")                                                  \
    X(EOVERLOADED, -4020, "service overloaded: not ready, request shed")                           \
    X(EKIND, -4021, "message is not of the kind or type this function reads")                      \
    X(ENOTREADY, -4022, "service called without a successful poll_ready")                          \
    X(EHOST, -4030, "host-language code raised an error (the host reports it)")

enum ek_errno {
#define EK__ERR_ENUM(name, value, msg) EK_##name = (value),
    EK_ERRNO_MAP(EK__ERR_ENUM)
#undef EK__ERR_ENUM
        EK__ERRNO_END = -4999
};

/* A human-readable message for `err` (also EK_OK and EK_PENDING). Unknown codes
 * give "unknown error". Static storage, no allocation; any thread. */
EK_EXTERN const char *ek_strerror(int err);
/* The code's name without prefix, e.g. "ECLOSED"; "UNKNOWN" for unknown codes.
 * Static storage, no allocation; any thread. */
EK_EXTERN const char *ek_err_name(int err);
/*
 * The codes this library knows, so that hosts build their constants from the
 * library they loaded instead of copying numbers: ek_err_count() codes, indexed
 * 0 .. ek_err_count() - 1 by ek_err_code(i): EK_OK (index 0), EK_PENDING (1),
 * then every EK_E* code of EK_ERRNO_MAP in table order. Name each with
 * ek_err_name. ek_err_code gives EK_EINVAL for an index out of range. Any thread;
 * no allocation.
 */
EK_EXTERN int ek_err_count(void);
EK_EXTERN int ek_err_code(int i);

/* ------------------------------------------------------------------------- */
/* Memory                                                                    */
/* ------------------------------------------------------------------------- */

typedef void *(*ek_malloc_fn)(size_t size);
typedef void *(*ek_realloc_fn)(void *ptr, size_t size);
typedef void *(*ek_calloc_fn)(size_t count, size_t size);
typedef void (*ek_free_fn)(void *ptr);

/*
 * Replace the allocator used for every allocation the library makes. All four
 * functions must be given, or all four NULL to restore the C library's.
 * Call it before creating any runtime or object, or when none is alive: memory
 * allocated by one allocator must not be freed by another.
 * With the C library's allocator a runtime carves its tasks and timer futures
 * from 64 KiB chunks it keeps until it is freed (no allocation per task); a
 * runtime made while another allocator is installed allocates each of them
 * from it, so that every task and timer is counted and can fail.
 * Errors: EK_EINVAL if only some are NULL.
 */
EK_EXTERN int ek_set_allocator(ek_malloc_fn malloc_fn, ek_realloc_fn realloc_fn,
                               ek_calloc_fn calloc_fn, ek_free_fn free_fn);

/* ------------------------------------------------------------------------- */
/* Futures, tasks, wakers                                                    */
/* ------------------------------------------------------------------------- */

typedef struct ek_runtime ek_runtime;
typedef struct ek_builder ek_builder;
typedef struct ek_cx ek_cx;
typedef struct ek_waker ek_waker;
typedef struct ek_join ek_join;
typedef struct ek_future ek_future;

/*
 * A poll function advances a future. It returns EK_OK (done; *out holds the
 * result, owned by whoever awaits it), EK_PENDING (not done: the poll has arranged
 * for the task to be woken, by an operation that took `cx` or through a waker
 * cloned from it), or a negative error (done, failed; *out is ignored).
 * After EK_OK or an error the future is not polled again. Any other positive
 * value is a bug in the poll function and counts as EK_EINVAL (done, failed,
 * *out ignored): a task completes with it, ek_future_poll and ek_block_on
 * return it.
 */
typedef int (*ek_poll_fn)(void *state, ek_cx *cx, void **out);
/* Releases a future's state. Also what cancellation runs. Called exactly once. */
typedef void (*ek_drop_fn)(void *state);

/* The runtime the current poll runs on (borrowed). Task context. NULL if cx is NULL. */
EK_EXTERN ek_runtime *ek_cx_runtime(ek_cx *cx);

/*
 * A new reference to the waker of the task being polled. The caller owns it and
 * must release it with ek_waker_wake or ek_waker_drop. Task context.
 * Returns NULL if cx is NULL or on allocation failure (never for task wakers,
 * which are reference counts on the task itself).
 */
EK_EXTERN ek_waker *ek_cx_waker(ek_cx *cx);
/* Wake the task and release this reference (consumes w). Any thread, including
 * threads the runtime does not own. Cheap when the task is already scheduled.
 * NULL is ignored. */
EK_EXTERN void ek_waker_wake(ek_waker *w);
/* Wake the task, keeping the reference. Any thread. NULL is ignored. */
EK_EXTERN void ek_waker_wake_by_ref(ek_waker *w);
/* A new reference to the same waker; NULL if w is NULL. Any thread. */
EK_EXTERN ek_waker *ek_waker_clone(ek_waker *w);
/* Release a reference without waking. Any thread. NULL is ignored. */
EK_EXTERN void ek_waker_drop(ek_waker *w);
/* 1 if w wakes the task that cx polls (so a stored waker need not be replaced),
 * else 0. Task context. */
EK_EXTERN int ek_waker_will_wake(const ek_waker *w, ek_cx *cx);

/*
 * Cooperative budget. Every operation that can pend spends one unit of the
 * task's per-poll budget (128 by default). When the budget is spent, this
 * returns EK_PENDING and arranges for the task to be polled again after others
 * had their turn; otherwise it spends a unit and returns EK_OK. Host-language
 * operations built on wakers should call it too. Task context.
 * Errors: EK_EINVAL if cx is NULL.
 */
EK_EXTERN int ek_coop_proceed(ek_cx *cx);

/*
 * Yield: arranges for the current task to be polled again after the other
 * runnable tasks, and returns EK_PENDING. The caller returns EK_PENDING from its
 * poll and continues on the next one. Task context.
 * Errors: EK_EINVAL if cx is NULL.
 */
EK_EXTERN int ek_yield_now(ek_cx *cx);

/*
 * Spawn a task: the future (poll, drop, state) runs on the runtime's workers.
 * One allocation. `drop(state)` is called exactly once, after the final poll or
 * when the task is cancelled (abort, shutdown), on a runtime thread (or the
 * thread calling ek_runtime_shutdown).
 * `out_drop` (may be NULL) releases the task's result when nobody takes it: the
 * join handle was detached (or NULL) before the result was awaited.
 * `join` (may be NULL: detached) receives the join handle; when spawning fails
 * it receives NULL (as for every spawn function below).
 * Any thread. Consumes state: if spawning fails, drop(state) has run before this
 * returns (the one exception to libuv's rule, so that nothing leaks).
 * Errors: EK_EINVAL (NULL rt/poll/drop, wrong handle), EK_ECLOSED (runtime shut
 * down), EK_ENOMEM.
 * Tasks go to the back of the queue; one spawned (or woken) by a running task runs
 * next on the same worker (the LIFO slot).
 */
EK_EXTERN int ek_spawn(ek_runtime *rt, ek_poll_fn poll, ek_drop_fn drop, void *state,
                       ek_drop_fn out_drop, ek_join **join);

/*
 * Spawn a local task, pinned to the calling thread: it is only ever polled (and
 * dropped) on this thread. On a worker thread (inside a task) it is pinned to that
 * worker; on any other thread it runs while that thread is inside ek_block_on or
 * ek_join_wait for this runtime. This is how single-threaded interpreters (Lua,
 * Python) run their tasks. Same ownership and errors as ek_spawn, plus
 * EK_EWRONGTHREAD from a blocking-pool thread or a thread of another runtime
 * (drop(state) has run). Shutdown included: see ek_runtime_shutdown for when
 * the local tasks of a thread are dropped (always on that thread); after
 * shutdown this call drops them first, then returns EK_ECLOSED. A thread that
 * exits with local tasks of a runtime that still runs drops them as it exits
 * (their join handles then give EK_ECANCELED). EK_ENOMEM also when the thread
 * cannot be given its exit hook (pthread_key_create or _setspecific failed).
 */
EK_EXTERN int ek_spawn_local(ek_runtime *rt, ek_poll_fn poll, ek_drop_fn drop, void *state,
                             ek_drop_fn out_drop, ek_join **join);

/*
 * Spawn a task whose state lives in the task's own allocation, as a Tokio task
 * holds its future: no allocation of yours, and the state beside the task's
 * header, on cache lines no other task's poll touches. The call copies `size`
 * bytes from `init` into the task (a move: the state must not point into
 * itself; `init` is only read, and is the caller's again on return), then the
 * task runs as with ek_spawn (ek_spawn_local_inline: ek_spawn_local), its poll
 * and drop getting a pointer to the copy. The copy is aligned to 16 bytes (with
 * an allocator of ek_set_allocator, as aligned as its malloc's blocks) and
 * starts as the bytes of init; `size` may be 0 (init may then be NULL: the
 * state is a valid pointer to no bytes).
 * `drop` (may be NULL: nothing to release) releases what the state holds, not
 * the state itself: the runtime frees the memory after drop returns. It is
 * called exactly once, after the final poll or when the task is cancelled
 * (abort, shutdown), on the threads ek_spawn / ek_spawn_local say (a local
 * task's on its own thread).
 * Memory: the task takes one cell of whole cache lines: 128 bytes for a state
 * of up to 16 bytes, 192 up to 80, 256 up to EK_SPAWN_INLINE_MAX (144). A
 * larger state gives EK_EINVAL: allocate it yourself and use ek_spawn.
 * Any thread (ek_spawn_local_inline: as ek_spawn_local). Consumes the state:
 * if spawning fails, drop(init) has run on the caller's bytes before this
 * returns (so what the state held is released; init itself is never freed),
 * except when there was no state to drop (init NULL with size above 0).
 * *join is NULL after a failure.
 * Errors: as ek_spawn / ek_spawn_local, EK_EINVAL also for size above
 * EK_SPAWN_INLINE_MAX and for init NULL with size above 0 (drop not called).
 */
#define EK_SPAWN_INLINE_MAX 144
EK_EXTERN int ek_spawn_inline(ek_runtime *rt, ek_poll_fn poll, ek_drop_fn drop, const void *init,
                              size_t size, ek_drop_fn out_drop, ek_join **join);
EK_EXTERN int ek_spawn_local_inline(ek_runtime *rt, ek_poll_fn poll, ek_drop_fn drop,
                                    const void *init, size_t size, ek_drop_fn out_drop,
                                    ek_join **join);

/*
 * Blocking work: `fn(arg, &out)` runs on the blocking pool (threads that may
 * block: files, getaddrinfo, host code). Its return value and *out are the join
 * result. `drop(arg)` (may be NULL) runs exactly once, after fn returns or when
 * the job is cancelled before it started (abort or shutdown): the join then gives
 * EK_ECANCELED. A job that already started is never interrupted: it completes
 * and its join gives its real result. fn returning EK_PENDING counts as EK_OK.
 * Any thread. On error drop(arg) has run.
 * Errors: EK_EINVAL, EK_ECLOSED, EK_ENOMEM.
 */
typedef int (*ek_blocking_fn)(void *arg, void **out);
EK_EXTERN int ek_spawn_blocking(ek_runtime *rt, ek_blocking_fn fn, ek_drop_fn drop, void *arg,
                                ek_drop_fn out_drop, ek_join **join);

/*
 * Await a task's result (a join handle is a future). EK_OK with *out = the
 * result (now owned by the caller); EK_PENDING; the task's own negative error;
 * EK_ECANCELED if it was aborted or the runtime shut down first. After a
 * non-pending return the result has been handed over; polling again gives
 * EK_ECLOSED. Task context, any task of any runtime.
 * Errors: EK_EINVAL for NULL/wrong handles.
 */
EK_EXTERN int ek_join_poll(ek_join *j, ek_cx *cx, void **out);
/* Request cancellation. An idle task is dropped without being polled again; a
 * running one after its current poll returns; a finished one is unaffected.
 * Any thread. Errors: EK_EINVAL. */
EK_EXTERN int ek_join_abort(ek_join *j);
/* 1 when the task has finished (result ready, error, or cancelled), else 0;
 * EK_EINVAL for bad handles. Any thread. */
EK_EXTERN int ek_join_is_finished(ek_join *j);
/* Release the join handle; the task runs on, detached. A result not yet taken goes
 * to the task's out_drop. Any thread. NULL is ignored. */
EK_EXTERN void ek_join_detach(ek_join *j);
/*
 * Block the calling thread until the task finishes; same results as
 * ek_join_poll. `out` may be NULL: the result is then released through the
 * task's out_drop (if any), as for a detached task. Does not release the handle.
 * Only outside the runtime's own threads: from a worker or blocking-pool thread,
 * or from inside a poll run by ek_block_on (of any runtime), it returns
 * EK_EDEADLK at once.
 * While it waits, local tasks pinned to this thread run (and a current-thread
 * runtime is driven by this thread if no other thread drives it).
 * After shutdown (or ek_runtime_free) it still gives the task's result: a
 * blocking job that outlived the shutdown timeout is waited for; a local task
 * of this thread is dropped here first (EK_ECANCELED); a local task of another
 * thread that has not been dropped yet gives EK_ECLOSED.
 */
EK_EXTERN int ek_join_wait(ek_join *j, void **out);

/*
 * Heap futures, so that futures compose (timeouts, join handles, services).
 * ek_future_new wraps (poll, drop, state): consumes state (on error drop(state)
 * has run). Errors: EK_EINVAL, EK_ENOMEM.
 */
EK_EXTERN int ek_future_new(ek_poll_fn poll, ek_drop_fn drop, void *state, ek_future **out);
/* Poll a heap future: as ek_poll_fn. Task context. EK_EINVAL for NULL. A future
 * that has completed returns EK_ECLOSED if polled again. */
EK_EXTERN int ek_future_poll(ek_future *f, ek_cx *cx, void **out);
/* Drop a heap future (cancels it if it was not complete). NULL is ignored. Must
 * not be called while the future is being polled. Any thread that owns it. */
EK_EXTERN void ek_future_drop(ek_future *f);
/* A future over a join handle (consumes j; dropping the future detaches it).
 * Errors: EK_EINVAL (for a valid j with NULL out, j is detached), EK_ENOMEM (j is
 * detached). */
EK_EXTERN int ek_join_into_future(ek_join *j, ek_future **out);
/* Spawn a heap future as a task (consumes f, even on error). As ek_spawn. */
EK_EXTERN int ek_spawn_future(ek_runtime *rt, ek_future *f, ek_drop_fn out_drop, ek_join **join);

/* ------------------------------------------------------------------------- */
/* Runtime                                                                   */
/* ------------------------------------------------------------------------- */

#define EK_FLAVOR_MULTI_THREAD   0
#define EK_FLAVOR_CURRENT_THREAD 1

/* A runtime builder with defaults: multi-thread, one worker per core (or the
 * EKIDEN_WORKER_THREADS environment variable, 1..1024, when set), up to 512
 * blocking threads kept 10 s, LIFO slot on, global-queue interval 31 (current
 * thread) / 61, event interval 61, budget 128. Any thread; the builder is used by
 * one thread at a time. Errors: EK_EINVAL (NULL out), EK_ENOMEM. */
EK_EXTERN int ek_builder_new(ek_builder **out);
/* Release a builder (runtimes built from it are independent). NULL ignored. */
EK_EXTERN void ek_builder_free(ek_builder *b);
/* EK_FLAVOR_MULTI_THREAD or EK_FLAVOR_CURRENT_THREAD. Errors: EK_EINVAL. */
EK_EXTERN int ek_builder_set_flavor(ek_builder *b, int flavor);
/* Worker threads for the multi-thread flavour, 1..1024. Errors: EK_EINVAL. */
EK_EXTERN int ek_builder_set_worker_threads(ek_builder *b, unsigned n);
/* Cap on blocking-pool threads, 1..65536. Errors: EK_EINVAL. */
EK_EXTERN int ek_builder_set_max_blocking_threads(ek_builder *b, unsigned n);
/* How long an idle blocking thread waits for work before exiting, in ms
 * (0 .. UINT64_MAX / 1000000). Errors: EK_EINVAL. */
EK_EXTERN int ek_builder_set_blocking_keep_alive_ms(ek_builder *b, uint64_t ms);
/* Thread name prefix (copied; at most 15 bytes are used, as Linux allows).
 * Errors: EK_EINVAL (NULL), EK_ENOMEM. */
EK_EXTERN int ek_builder_set_thread_name(ek_builder *b, const char *name);
/* Enable (1) or disable (0) the LIFO slot. Errors: EK_EINVAL. */
EK_EXTERN int ek_builder_set_lifo_slot(ek_builder *b, int enabled);
/* Take from the global queue first every `ticks` polls, 1..1000000. */
EK_EXTERN int ek_builder_set_global_queue_interval(ek_builder *b, unsigned ticks);
/* Poll the driver without blocking every `ticks` polls, 1..1000000. */
EK_EXTERN int ek_builder_set_event_interval(ek_builder *b, unsigned ticks);
/* Cooperative budget per task poll, 1..1000000 (default 128). */
EK_EXTERN int ek_builder_set_budget(ek_builder *b, unsigned ops);
/* Start with the test clock paused (time only moves by ek_runtime_clock_advance,
 * or jumps to the next timer when the runtime is idle). Current-thread flavour
 * only (EK_ENOTSUP at ek_runtime_new otherwise), as in Tokio. */
EK_EXTERN int ek_builder_set_start_paused(ek_builder *b, int paused);

/* Reactor backends (ek_builder_set_io_backend, ek_runtime_io_backend). */
#define EK_IO_BACKEND_DEFAULT 0 /* the EKIDEN_IO_BACKEND variable, else epoll */
#define EK_IO_BACKEND_EPOLL   1 /* edge-triggered epoll */
#define EK_IO_BACKEND_URING   2 /* io_uring, Linux 5.13+ (stream reads by completion: 6.0+) */
/*
 * Which reactor the runtime uses for I/O readiness. EK_IO_BACKEND_DEFAULT (the
 * builder's default) reads the EKIDEN_IO_BACKEND environment variable when the
 * runtime is built: "uring" (or "io_uring") asks for io_uring, "epoll" or any
 * other value for epoll. EK_IO_BACKEND_URING falls back to epoll, silently, when
 * the library was built without liburing, /proc/sys/kernel/io_uring_disabled
 * is 2, or the kernel refuses the ring (io_uring_queue_init fails, or it lacks
 * multishot poll): ek_runtime_io_backend says which one runs. The choice changes
 * no behaviour of the API, only the syscalls underneath. Thread: as the other
 * setters. Errors: EK_EINVAL (bad builder, or not one of the three values).
 */
EK_EXTERN int ek_builder_set_io_backend(ek_builder *b, int backend);

/*
 * Thread hooks (Tokio's on_thread_start/stop/park/unpark), for a binding's
 * per-thread bookkeeping (attach a thread to an interpreter, release a lock
 * while parked). Each takes a function and a user pointer handed back to it;
 * NULL fn clears the hook. Setting one replaces the previous one. The builder
 * copies them into each runtime it builds; `data` is borrowed and must stay
 * valid until ek_runtime_free of every such runtime has returned.
 * - start: on each worker thread and blocking-pool thread as it starts, before
 *   it runs any task or job;
 * - stop: on each of those threads as it ends, after its last task or job
 *   (worker threads at shutdown; blocking threads at shutdown or when their
 *   keep-alive expires), so start and stop pair up on every thread;
 * - park: on the thread that runs tasks (a worker; for the current-thread
 *   flavour the thread driving it in ek_block_on) before it goes to sleep for
 *   want of work; unpark: on the same thread when it wakes, once per park.
 * The hooks must not block for long, and must not call ek_runtime_shutdown or
 * ek_runtime_free. Errors: EK_EINVAL (bad builder).
 */
typedef void (*ek_thread_hook_fn)(void *data);
EK_EXTERN int ek_builder_on_thread_start(ek_builder *b, ek_thread_hook_fn fn, void *data);
EK_EXTERN int ek_builder_on_thread_stop(ek_builder *b, ek_thread_hook_fn fn, void *data);
EK_EXTERN int ek_builder_on_thread_park(ek_builder *b, ek_thread_hook_fn fn, void *data);
EK_EXTERN int ek_builder_on_thread_unpark(ek_builder *b, ek_thread_hook_fn fn, void *data);

/*
 * Create a runtime from a builder (NULL: defaults). Worker threads start at once.
 * Any thread. Errors: EK_EINVAL, EK_ENOMEM, EK_ENOTSUP, or a negative errno if a
 * thread or the driver could not be created (everything made so far is released).
 */
EK_EXTERN int ek_runtime_new(const ek_builder *b, ek_runtime **out);
/*
 * Shut down: stop accepting spawns (they return EK_ECLOSED), cancel (drop)
 * every task, wait for workers and for blocking jobs that already run, up to
 * timeout_ms for the blocking pool (UINT64_MAX, or any timeout too long to
 * represent: no limit; workers always stop promptly). Idempotent. Not from a
 * runtime thread (returns EK_EDEADLK).
 * Local tasks are dropped on their own thread, never on the caller's (unless
 * they are the caller's): a worker drops those pinned to it before it exits, a
 * thread inside ek_block_on or ek_join_wait as it returns, the caller its own;
 * any other thread at its next ek_block_on, ek_join_wait or ek_spawn_local for
 * this runtime (which then return EK_ECLOSED, or the join's result), or as it
 * exits, whichever comes first (a thread-exit hook, so that no task of a thread
 * that has gone is left, and the runtime's memory goes with the last of them).
 * Resources (sockets, timers, intervals, join handles) stay valid handles:
 * their operations return EK_ECLOSED and their free functions stay safe.
 * Errors: EK_EINVAL, EK_EDEADLK, EK_ETIMEDOUT (blocking jobs still running;
 * their threads finish on their own, and ek_join_wait still gives their real
 * results).
 */
EK_EXTERN int ek_runtime_shutdown(ek_runtime *rt, uint64_t timeout_ms);
/*
 * Free the runtime: shut it down if needed (waiting for running blocking jobs
 * without limit) and release the caller's handle; rt must not be used again.
 * Sockets, timers, intervals, futures and join handles made on it may be freed
 * before or after, in any order, from any thread: each holds a reference on the
 * runtime's internal state (driver, clock, queues), whose memory goes with the
 * last of them. Until then their operations return EK_ECLOSED. A second call is
 * ignored while something still holds the runtime. NULL is ignored. Not from a
 * runtime thread (ignored there).
 */
EK_EXTERN void ek_runtime_free(ek_runtime *rt);
/*
 * Drive `f` on the calling thread until it completes, while workers run the other
 * tasks (Tokio's block_on). Consumes f. Returns f's status; *out its result (out
 * may be NULL if the caller does not want it: the result is then not freed).
 * Local tasks pinned to this thread run meanwhile. On a current-thread runtime
 * the calling thread runs every task. Outside runtime threads only (EK_EDEADLK).
 * Errors: EK_EINVAL, EK_EDEADLK, EK_ECLOSED (runtime shut down; f is dropped).
 */
EK_EXTERN int ek_block_on(ek_runtime *rt, ek_future *f, void **out);
/* The runtime whose thread calls this (a worker, blocking thread, or a thread
 * inside ek_block_on), else NULL. */
EK_EXTERN ek_runtime *ek_runtime_current(void);
/* Number of worker threads (1 for current-thread). EK_EINVAL for NULL. */
EK_EXTERN int ek_runtime_worker_count(ek_runtime *rt);
/*
 * One user pointer per runtime, for a binding (its interpreter state, say).
 * ek_runtime_set_data stores `data` with its `drop` (may be NULL); the pointer
 * it replaces is dropped at once, on the calling thread. The last one is
 * dropped by ek_runtime_free, on the thread calling it, after the runtime's
 * threads have ended. Any thread; replacing it while other threads read it is
 * the caller's race. Errors: EK_EINVAL (bad rt; data is not touched).
 * ek_runtime_data returns the pointer, NULL if none or for a bad rt. Any
 * thread, lock-free (cheap enough to call in every poll).
 */
EK_EXTERN int ek_runtime_set_data(ek_runtime *rt, void *data, ek_drop_fn drop);
EK_EXTERN void *ek_runtime_data(ek_runtime *rt);
/* The reactor backend the runtime runs: EK_IO_BACKEND_EPOLL or
 * EK_IO_BACKEND_URING (after any fallback; never EK_IO_BACKEND_DEFAULT). Any
 * thread. Errors: EK_EINVAL for a bad handle. */
EK_EXTERN int ek_runtime_io_backend(ek_runtime *rt);

/* Test clock: pause, resume, and advance the paused clock (firing due timers).
 * The clock saturates at about 292 years (2^63 ns): advancing past it leaves it
 * there, and every timer then is due at once. Errors: EK_EINVAL, EK_ENOTSUP
 * (not a current-thread runtime). */
EK_EXTERN int ek_runtime_clock_pause(ek_runtime *rt);
EK_EXTERN int ek_runtime_clock_resume(ek_runtime *rt);
EK_EXTERN int ek_runtime_clock_advance(ek_runtime *rt, uint64_t ms);
/* The runtime's monotonic clock in milliseconds (the test clock when paused).
 * Deadlines for ek_sleep_until are in this time. Any thread. For NULL or a
 * handle that is not a runtime: UINT64_MAX, which is never a time (the clock
 * saturates at about 292 years, below 2^63 ms), so the error is exact; a
 * runtime that has been shut down still tells its time. */
EK_EXTERN uint64_t ek_now_ms(ek_runtime *rt);

/* Metrics: a snapshot of counters (monotonic since creation) and gauges. */
#define EK_METRICS_MAP(X)                                                                          \
    X(WORKERS, "worker threads")                                                                   \
    X(TASKS_ALIVE, "tasks not yet released")                                                       \
    X(TASKS_SPAWNED, "tasks spawned since creation")                                               \
    X(POLLS, "task polls")                                                                         \
    X(STEALS, "tasks stolen from other workers")                                                   \
    X(STEAL_OPS, "successful steal operations")                                                    \
    X(PARKS, "times a worker parked")                                                              \
    X(UNPARKS, "targeted unparks")                                                                 \
    X(OVERFLOWS, "local queue overflows to the global queue")                                      \
    X(GLOBAL_QUEUE_DEPTH, "tasks in the global queue")                                             \
    X(LOCAL_QUEUE_DEPTH, "tasks in all local queues")                                              \
    X(IO_EVENTS, "I/O readiness events delivered")                                                 \
    X(TIMERS, "timers registered in the wheel")                                                    \
    X(BLOCKING_THREADS, "blocking-pool threads alive")                                             \
    X(BLOCKING_IDLE, "idle blocking-pool threads")                                                 \
    X(BLOCKING_QUEUE_DEPTH, "blocking jobs waiting for a thread")                                  \
    X(SLOW_POLLS, "task polls longer than the slow-poll threshold (ekiden/observe.h)")

enum ek_metric {
#define EK__METRIC_ENUM(name, doc) EK_METRIC_##name,
    EK_METRICS_MAP(EK__METRIC_ENUM)
#undef EK__METRIC_ENUM
        EK_METRIC_COUNT
};
/* Fill values[0..n) with metric values indexed by EK_METRIC_*; returns the number
 * of metrics this library knows (EK_METRIC_COUNT of its build), or EK_EINVAL.
 * Any thread; values are read without stopping the runtime. */
EK_EXTERN int ek_runtime_metrics(ek_runtime *rt, uint64_t *values, size_t n);
/* Depth of one worker's local queue; EK_EINVAL for a bad runtime or index. */
EK_EXTERN int64_t ek_runtime_worker_queue_depth(ek_runtime *rt, unsigned worker);
/* Name of a metric ("POLLS"), or NULL for an unknown key. */
EK_EXTERN const char *ek_metric_name(int key);

/* ------------------------------------------------------------------------- */
/* Time                                                                      */
/* ------------------------------------------------------------------------- */

/*
 * A future completing (EK_OK, *out = NULL) `ms` milliseconds from now on rt's
 * clock (1 ms resolution, rounded up). It registers with the timer wheel on first
 * poll; dropping it removes it from the wheel. Any thread creates; the owner
 * polls from task context. Errors: EK_EINVAL, EK_ECLOSED, EK_ENOMEM.
 */
EK_EXTERN int ek_sleep(ek_runtime *rt, uint64_t ms, ek_future **out);
/* As ek_sleep, completing at `deadline_ms` (in ek_now_ms time). Every deadline
 * (of sleeps, timeouts and interval ticks) saturates at the clock's cap of about
 * 292 years, so no duration overflows: UINT64_MAX means "at the end of time". */
EK_EXTERN int ek_sleep_until(ek_runtime *rt, uint64_t deadline_ms, ek_future **out);
/*
 * `inner` with a deadline: completes as inner does, or with EK_ETIMEDOUT after
 * `ms` (inner is then dropped, i.e. cancelled). Consumes inner, on error too
 * (inner has then been dropped). Any thread creates it; poll from task context.
 * Errors: EK_EINVAL (NULL out, bad rt; NULL or non-future inner, which is not
 * touched), EK_ECLOSED (runtime shut down), EK_ENOMEM.
 */
EK_EXTERN int ek_timeout(ek_runtime *rt, ek_future *inner, uint64_t ms, ek_future **out);

typedef struct ek_interval ek_interval;
/* Missed-tick policies (Tokio's): fire the missed ticks at once, delay the schedule
 * from now, or skip to the next multiple of the period. */
#define EK_MISSED_TICK_BURST 0
#define EK_MISSED_TICK_DELAY 1
#define EK_MISSED_TICK_SKIP  2
/* An interval with the given period (>= 1 ms); the first tick completes
 * immediately. Errors: EK_EINVAL, EK_ECLOSED, EK_ENOMEM. */
EK_EXTERN int ek_interval_new(ek_runtime *rt, uint64_t period_ms, int missed_tick_policy,
                              ek_interval **out);
/* Wait for the next tick: EK_OK with *tick_ms = the scheduled time of this tick,
 * or EK_PENDING. Task context. Errors: EK_EINVAL. */
EK_EXTERN int ek_interval_tick(ek_interval *iv, ek_cx *cx, uint64_t *tick_ms);
/* Release an interval. NULL ignored. */
EK_EXTERN void ek_interval_free(ek_interval *iv);

#ifdef __cplusplus
}
#endif

/* Parts of the API that live in their own files (each has its own extern "C"). */
#include "ekiden/net.h"
#include "ekiden/sync.h"
#include "ekiden/stream.h"
#include "ekiden/buf.h"
#include "ekiden/msg.h"
#include "ekiden/service.h"
#include "ekiden/task.h"
#include "ekiden/codec.h"
#include "ekiden/server.h"
#include "ekiden/client.h"
#include "ekiden/observe.h"

#endif /* EKIDEN_H */
