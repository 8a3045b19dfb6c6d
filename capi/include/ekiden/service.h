/*
 * ekiden/service.h - services: asynchronous functions from request to response
 * (Finagle), with back-pressure (Tower). Included by ekiden.h (after
 * ekiden/msg.h).
 *
 * A service is an opaque handle over a vtable. Requests and responses are
 * ek_msg values (ekiden/msg.h). The contract, enforced by the functions below:
 *
 * 1. Readiness first. ek_service_call is allowed only after ek_service_poll_ready
 *    returned EK_OK on the same handle (and no call or disarm since); otherwise it
 *    fails with EK_ENOTREADY (never undefined behaviour). Calling poll_ready again
 *    while ready returns EK_OK at once and reserves nothing more.
 * 2. Reservations. What poll_ready reserves (a concurrency permit, a buffer slot,
 *    a rate-limit token) belongs to the next call and then to its response: it is
 *    held until the response completes or is dropped. A caller that decides not
 *    to call gives it back with ek_service_disarm (Tower has no disarm and its
 *    users leak reservations: tower#408). Freeing or closing a ready handle
 *    disarms it.
 * 3. Final errors. An error from poll_ready is final: the handle is closed (status
 *    EK_SERVICE_CLOSED) and every later poll_ready returns the same error.
 * 4. Ownership. ek_service_call consumes the request, even on error; the response
 *    future belongs to the caller (await it with ek_future_poll, drop it to
 *    cancel: dropping a response at any point releases what it holds). A response
 *    completes with EK_OK and *out = the response ek_msg (the awaiting caller's),
 *    or a negative error.
 * 5. Lifetime. A handle may be freed while its responses are in flight: the
 *    service's state (its vtable `drop`) is released when the handle and the last
 *    response are both gone, in any order, on the thread that releases the last.
 * 6. Threads. A handle is used by one task or thread at a time (it may move
 *    between threads); concurrent users need their own handles: ek_service_clone
 *    of a shareable service (ek_svc_buffer), each clone with its own readiness.
 *    Vtable functions run on the thread calling the matching ek_service_*
 *    function; `drop` as rule 5 says.
 *
 * Handles: NULL or a handle of another type gives EK_EINVAL; void functions
 * ignore NULL.
 */
#ifndef EKIDEN_SERVICE_H
#define EKIDEN_SERVICE_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ek_service ek_service;

/* Status (Finagle's): open (ready for work), busy (alive but not ready now: a full
 * limit or buffer), closed (closed, or failed for good). */
#define EK_SERVICE_OPEN   0
#define EK_SERVICE_BUSY   1
#define EK_SERVICE_CLOSED 2

/*
 * What a service implements. `self` is the implementation's state.
 *
 * - poll_ready(self, cx): task context. EK_OK when a call may be made (having
 *   reserved what it needs); EK_PENDING (the task will be woken); a negative
 *   error (final). Must not be NULL.
 * - call(self, req, resp): after poll_ready gave EK_OK. Consumes req in every
 *   case. EK_OK with *resp = a response future (whose result is an ek_msg *), or
 *   a negative error (the reservation is then the implementation's to release).
 *   Must not be NULL.
 * - disarm(self): give back what the last successful poll_ready reserved, or
 *   the place it holds in a queue after it pended (the caller will not poll
 *   again). Called only after a poll_ready that gave EK_OK or EK_PENDING and no
 *   call since. May be NULL (nothing is ever reserved).
 * - status(self): EK_SERVICE_OPEN / BUSY / CLOSED. May be NULL (always open).
 * - drop(self): release the state (rule 5). May be NULL.
 */
typedef struct ek_service_vtable {
    int (*poll_ready)(void *self, ek_cx *cx);
    int (*call)(void *self, ek_msg *req, ek_future **resp);
    void (*disarm)(void *self);
    int (*status)(void *self);
    void (*drop)(void *self);
} ek_service_vtable;

/*
 * A service over vt (copied) and self. On error vt->drop(self) has run (if vt
 * and its drop are not NULL). Any thread.
 * Errors: EK_EINVAL (NULL vt, out, poll_ready or call), EK_ENOMEM.
 */
EK_EXTERN int ek_service_new(const ek_service_vtable *vt, void *self, ek_service **out);

/*
 * Poll readiness (rule 1): EK_OK (ready: the next ek_service_call may be made),
 * EK_PENDING, or a negative error, which is final (rule 3); EK_ECLOSED after
 * ek_service_close. Task context.
 * Errors: EK_EINVAL (bad handle or NULL cx), the service's error.
 */
EK_EXTERN int ek_service_poll_ready(ek_service *svc, ek_cx *cx);

/*
 * Call the service with req (consumed in every case). EK_OK: *resp is the response
 * future (the caller's). Any thread (the one using the handle).
 * Errors: EK_EINVAL (bad handle, NULL resp, req not a message), EK_ENOTREADY (no
 * successful poll_ready before this call), EK_ECLOSED (closed), the service's
 * error.
 */
EK_EXTERN int ek_service_call(ek_service *svc, ek_msg *req, ek_future **resp);

/*
 * A response future that is complete at once: EK_OK with resp (consumed, even on
 * error; may be a shared reply, ekiden/msg.h), or the error rc (< 0; resp NULL).
 * What a vtable's call gives when it answers without waiting. A server polls a
 * response once when the call returns, so a ready one costs no more than this
 * future (one allocation: a block of the thread's cache under the C library's
 * allocator, docs/services.md). Any thread.
 * Errors: EK_EINVAL (NULL out, rc positive, rc EK_OK without resp), EK_ENOMEM.
 */
EK_EXTERN int ek_service_ready(int rc, ek_msg *resp, ek_future **out);

/* Give back what the last successful poll_ready reserved (rule 2), or the place
 * a pending poll_ready holds in a queue; a no-op when there is none.
 * Errors: EK_EINVAL. */
EK_EXTERN int ek_service_disarm(ek_service *svc);

/* EK_SERVICE_OPEN, BUSY or CLOSED; EK_EINVAL for a bad handle. */
EK_EXTERN int ek_service_status(ek_service *svc);

/* Responses made by ek_service_call on this handle and not yet completed or
 * dropped, or EK_EINVAL. Any thread (a snapshot). */
EK_EXTERN int64_t ek_service_pending(ek_service *svc);

/*
 * Close (Finagle's close(deadline)): the handle takes no more work (status
 * CLOSED; poll_ready and call give EK_ECLOSED; a held reservation is disarmed).
 * Responses in flight go on. If done is not NULL it gets a future that completes
 * with EK_OK once every response of this handle has completed or been dropped,
 * or with EK_ETIMEDOUT `deadline_ms` after its first poll (on its runtime's
 * clock; UINT64_MAX: no deadline); after a timeout, a response still in flight is
 * cancelled at its next poll (its inner future dropped, EK_ECANCELED). The
 * handle must still be freed. Idempotent (each call may ask for a future).
 * Errors: EK_EINVAL, EK_ENOMEM (for done; the handle is closed anyway).
 */
EK_EXTERN int ek_service_close(ek_service *svc, uint64_t deadline_ms, ek_future **done);

/* Release the handle (disarming a held reservation); rule 5. NULL ignored. */
EK_EXTERN void ek_service_free(ek_service *svc);

/*
 * A new handle to the same shareable service (ek_svc_buffer, a registry lookup),
 * with its own readiness. Errors: EK_EINVAL, EK_ENOTSUP (not shareable: wrap it in
 * ek_svc_buffer), EK_ECLOSED, EK_ENOMEM.
 */
EK_EXTERN int ek_service_clone(ek_service *svc, ek_service **out);

/*
 * A shareable service: as ek_service_new, and `clone(self, &new_self)` makes the
 * state of a new handle for ek_service_clone (for state that is safe to share:
 * a stateless C service, a thread-safe client; may be called from any thread
 * while other handles are in use). On error vt->drop(self) has run.
 * Errors: EK_EINVAL (as ek_service_new, or NULL clone), EK_ENOMEM.
 */
EK_EXTERN int ek_service_new_shareable(const ek_service_vtable *vt, void *self, ek_clone_fn clone,
                                       ek_service **out);

/* 1 if ek_service_clone works on svc, 0 if not, EK_EINVAL. */
EK_EXTERN int ek_service_is_shareable(ek_service *svc);

/*
 * One whole request (Tower's oneshot): a future that polls svc ready, calls it
 * with req (consumed, even on error) and completes with the response. The future
 * uses the handle until it completes or is dropped (do not use svc meanwhile);
 * dropping it gives back a reservation it made. It holds its own reference: svc
 * may be freed before it completes. Task context for polls.
 * Errors: EK_EINVAL, EK_ENOMEM (req freed).
 */
EK_EXTERN int ek_service_oneshot(ek_service *svc, ek_msg *req, ek_future **out);

/* ========================================================================= */
/* Middleware                                                                */
/* ========================================================================= */

/*
 * Each constructor takes ownership of the inner service(s) in every case (on
 * error they have been freed) and returns a new service, which wraps a client or
 * a server handler alike. Canonical order, outermost first: timeout, load shed,
 * limits, buffer, balance. Unless said otherwise a middleware is shareable
 * (ek_service_clone) exactly when its inner service is: clones share the
 * middleware's state (a concurrency limit's permits, a retry budget) and each
 * has a clone of the inner. Callbacks run on the thread of the ek_service_* call
 * or response poll that triggers them.
 * Common errors: EK_EINVAL (a bad handle or argument, NULL out), EK_ECLOSED (rt
 * shut down), EK_ENOMEM.
 */

/*
 * A deadline of `ms` per request that also counts the time spent waiting for
 * readiness (behind a limit or a full buffer), unlike Tower's, which starts at
 * call: the clock starts at the first poll_ready that finds the inner not ready,
 * or else at the first poll of the response that finds it pending (a response
 * ready at once costs no clock read and no timer). If the deadline passes while
 * waiting,
 * poll_ready gives back the inner's place in its queue and reports ready, and
 * the call's response fails with EK_ETIMEDOUT without calling the inner (so the
 * service is not closed, as an error from poll_ready would). A response past the
 * deadline fails with EK_ETIMEDOUT and its inner future is dropped at once
 * (cancelled). Time is rt's clock (the test clock when paused).
 */
EK_EXTERN int ek_svc_timeout(ek_runtime *rt, ek_service *inner, uint64_t ms, ek_service **out);

/*
 * At most `max` (>= 1) requests in flight: poll_ready takes a permit (waiting in
 * FIFO order when none is free), the call hands it to the response, which holds
 * it until it completes or is dropped; disarm gives it back (or leaves the
 * queue). Clones share the permits. Status BUSY while no permit is free.
 */
EK_EXTERN int ek_svc_concurrency_limit(ek_service *inner, size_t max, ek_service **out);

/*
 * At most `n` (>= 1) requests per `period_ms` (>= 1) window of rt's clock
 * (Tower's RateLimit): poll_ready takes a token, waiting for the next window when
 * none is left; disarm returns it. Not shareable (the window is one caller's:
 * put a buffer in front to share it).
 */
EK_EXTERN int ek_svc_rate_limit(ek_runtime *rt, ek_service *inner, uint64_t n, uint64_t period_ms,
                                ek_service **out);

/*
 * Fail fast instead of waiting (Tower's LoadShed): poll_ready is always ready at
 * once; when the inner was not, its place in a queue is given back and the call's
 * response fails with EK_EOVERLOADED (the inner is not called).
 */
EK_EXTERN int ek_svc_load_shed(ek_service *inner, ek_service **out);

/*
 * A bounded queue (`bound` >= 1 requests) in front of one worker task that owns
 * the inner service: poll_ready reserves a queue slot, call queues the request;
 * the worker polls the inner ready, calls it, and hands the response future to
 * the caller, who awaits it. The result is shareable by any number of tasks on
 * any threads (ek_service_clone gives each its own handle; size `bound` for the
 * callers that may wait at once). A request whose caller dropped its response
 * before the worker reached it is not sent. If the inner's poll_ready fails,
 * that error is final for every handle: queued and later requests get it. The
 * worker ends, and drops the inner, when the last handle and queued request are
 * gone (or the runtime shuts down).
 */
EK_EXTERN int ek_svc_buffer(ek_runtime *rt, ek_service *inner, size_t bound, ek_service **out);

/*
 * As ek_svc_buffer, but the worker is a local task pinned to the calling thread
 * (ek_spawn_local's rules: a worker thread, or a thread that drives the runtime
 * with ek_block_on / ek_join_wait), and the inner service is only ever used
 * there: its poll_ready, call, response polls and drop all run on that thread,
 * which is what an interpreter entered only by its own thread needs (Python,
 * Lua). Callers on other threads get the result as it completes.
 * Errors: as ek_svc_buffer, plus EK_EWRONGTHREAD (as ek_spawn_local).
 */
EK_EXTERN int ek_svc_buffer_local(ek_runtime *rt, ek_service *inner, size_t bound,
                                  ek_service **out);

/*
 * What a buffer's worker did (the batching proof for hosts): values[i] for
 * i < n, indexed by EK_SVC_BUFFER_*; returns EK_SVC_BUFFER_STAT_COUNT.
 *   WAKEUPS   worker polls that took at least one request: a wake-up of the
 *             worker (of its thread, for the local variant) per batch;
 *   REQUESTS  requests the worker took (REQUESTS / WAKEUPS: the batch size;
 *             requests a connection pipelines arrive in one wake-up when the
 *             worker is not already running);
 *   DRIVEN    local variant: responses still pending after their first poll,
 *             which needed a driver task (the others were sent back finished).
 * Any handle of the buffer, any thread. Errors: EK_EINVAL (not a handle of
 * ek_svc_buffer / ek_svc_buffer_local, NULL values with n > 0).
 */
#define EK_SVC_BUFFER_WAKEUPS    0
#define EK_SVC_BUFFER_REQUESTS   1
#define EK_SVC_BUFFER_DRIVEN     2
#define EK_SVC_BUFFER_STAT_COUNT 3
EK_EXTERN int ek_svc_buffer_stats(ek_service *buffer, uint64_t *values, size_t n);

/*
 * Power of two choices over `n` (>= 1) services (consumed, the array is not):
 * each readiness samples two services and uses the one with fewer of this
 * balancer's requests pending; if it is not ready the other is tried; a
 * service whose poll_ready fails is removed (and freed); when none is left that
 * error is final. Not shareable (put a buffer in front). A request in flight
 * counts as pending until its response completes or is dropped.
 */
EK_EXTERN int ek_svc_balance(ek_service **services, size_t n, ek_service **out);
/* Number of services a balancer still uses, or EK_EINVAL (not a balancer). */
EK_EXTERN int64_t ek_svc_balance_size(ek_service *balance);

/*
 * Map requests and responses (for hosts adapting messages): `fn(ud, in, &out)`
 * consumes `in` in every case and gives EK_OK with *out, or an error (for a
 * request: the call fails with it and the inner's reservation is given back; for
 * a response: the response fails with it). NULL request or response function:
 * passed through. Errors of the inner response are not mapped. `ud_drop(ud)`
 * (may be NULL) runs once when the service (and its clones) are gone; on error
 * it has run.
 */
typedef int (*ek_svc_map_fn)(void *ud, ek_msg *in, ek_msg **out);
EK_EXTERN int ek_svc_map(ek_service *inner, ek_svc_map_fn map_request, ek_svc_map_fn map_response,
                         void *ud, ek_drop_fn ud_drop, ek_service **out);

/* ---- retry ---- */

typedef struct ek_retry_budget ek_retry_budget;

/*
 * A retry budget (Tower's TpsBudget, from Finagle): each request deposits, each
 * retry withdraws; `min_per_sec` retries per second are always allowed and on
 * top of that `retry_ratio` retries per request (0.2: one retry per five
 * requests; 0 .. 1000), counted over a sliding window of `ttl_ms` (1000 .. 60000)
 * of rt's clock. Tower's default: 10 s, 10 per second, 0.2. Shared by every
 * retry service (and clone) given it; thread-safe. Reference count 1.
 */
EK_EXTERN int ek_retry_budget_new(ek_runtime *rt, uint64_t ttl_ms, uint32_t min_per_sec,
                                  double retry_ratio, ek_retry_budget **out);
EK_EXTERN int ek_retry_budget_clone(ek_retry_budget *b, ek_retry_budget **out);
EK_EXTERN void ek_retry_budget_drop(ek_retry_budget *b);
/* Deposit one request. Errors: EK_EINVAL. */
EK_EXTERN int ek_retry_budget_deposit(ek_retry_budget *b);
/* Withdraw one retry: EK_OK, or EK_EEMPTY when the budget is spent. */
EK_EXTERN int ek_retry_budget_withdraw(ek_retry_budget *b);

/*
 * The retry policy, called with each result: the original request, the number
 * of the attempt that just finished (1 = the first call), its status and, for
 * EK_OK, its response (else NULL). Return > 0 to retry (if the budget allows),
 * 0 to accept the result, < 0 to fail the request with that code.
 */
typedef int (*ek_retry_policy_fn)(void *ud, const ek_msg *req, unsigned attempt, int rc,
                                  const ek_msg *resp);

/*
 * Retry by policy (Tower's Retry). Each call deposits in the budget and keeps a
 * clone of the request (ek_msg_clone; a request that cannot be cloned is sent
 * once, never retried); a retry withdraws, and when the budget is spent the last
 * result stands. Retries are sent from the response future, through a clone of
 * the inner service, so the inner must be shareable (EK_ENOTSUP otherwise: wrap
 * it in ek_svc_buffer). `budget` (consumed; NULL: Tower's default on rt) and
 * `ud_drop(ud)` as ek_svc_map's.
 */
EK_EXTERN int ek_svc_retry(ek_runtime *rt, ek_service *inner, ek_retry_budget *budget,
                           ek_retry_policy_fn policy, void *ud, ek_drop_fn ud_drop,
                           ek_service **out);

/* ========================================================================= */
/* Registry: named services per runtime                                      */
/* ========================================================================= */

/*
 * Each runtime keeps a registry of named services, so that a service written in
 * one language (a C vtable, a Python coroutine, a Lua function) is found,
 * wrapped and called, or served, from any other in the same process. Every
 * function is thread-safe. Names are NUL-terminated strings of 1 ..
 * EK_REGISTRY_NAME_MAX bytes (copied). The registry holds one handle per name;
 * lookups get clones of it. When the runtime shuts down the registry is emptied
 * (its handles freed); clones held elsewhere stay valid handles, and answer
 * EK_ECLOSED once what they need is gone.
 */
#define EK_REGISTRY_NAME_MAX 255
/* The queue bound of the buffer put in front of a non-shareable service. */
#define EK_REGISTRY_BUFFER_BOUND 256

/*
 * Register svc (consumed, even on error) under `name`. A service that is not
 * shareable is wrapped in ek_svc_buffer(rt, svc, EK_REGISTRY_BUFFER_BOUND) first,
 * so that any number of callers on any threads can use their clones; a service
 * that must stay on its thread (an interpreter's) should be wrapped in
 * ek_svc_buffer_local by its owner before it is registered.
 * Errors: EK_EINVAL (bad rt, svc or name), EK_EEXIST (name taken), EK_ECLOSED
 * (rt shut down), EK_ENOMEM.
 */
EK_EXTERN int ek_registry_register(ek_runtime *rt, const char *name, ek_service *svc);

/* A new handle (a clone, the caller's to free) of the service registered under
 * name. Errors: EK_EINVAL, EK_ENOENT (no such name), EK_ECLOSED, EK_ENOMEM. */
EK_EXTERN int ek_registry_lookup(ek_runtime *rt, const char *name, ek_service **out);

/* Remove name; the registry's handle is freed (clones keep working).
 * Errors: EK_EINVAL, EK_ENOENT, EK_ECLOSED. */
EK_EXTERN int ek_registry_unregister(ek_runtime *rt, const char *name);

#ifdef __cplusplus
}
#endif

#endif
