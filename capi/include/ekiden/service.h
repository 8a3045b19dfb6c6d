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

#ifdef __cplusplus
}
#endif

#endif
