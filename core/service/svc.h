/*
 * svc.h - internals of the service layer shared by service.c, the middleware
 * and the registry (the contract is in ekiden/service.h).
 *
 * A handle and the service's state are one object, reference-counted: the
 * handle's owner holds one reference, each response future made by
 * ek_service_call one more, so the vtable's drop runs when both are gone.
 * Middleware call their inner service with ek__service_call_raw, which checks
 * the contract but does not wrap the response: the middleware's own response
 * keeps the middleware (and so the inner handle) alive, and the inner response
 * is dropped inside it. Whoever hands an inner response to another owner (the
 * buffer's worker sends it to the caller) must use the wrapped call instead.
 *
 * Middleware are shareable when their inner service is: a clone shares the
 * middleware's shared state (a semaphore, a budget) and clones the inner.
 */
#ifndef EK_CORE_SERVICE_SVC_H
#define EK_CORE_SERVICE_SVC_H

#include "../common.h"

#define EK__TAG_MSG     0x454b4d53u /* "EKMS" */
#define EK__TAG_SERVICE 0x454b5356u /* "EKSV" */

/* Makes a new self for a new handle of a shareable service. */
typedef int (*ek__svc_clone_fn)(void *self, void **out);

struct ek_service {
    uint32_t tag; /* EK__TAG_SERVICE; EK__TAG_DEAD once the owner freed it */
    bool ready;   /* poll_ready gave EK_OK; the next call consumes it */
    bool polled;  /* poll_ready pended: the service may hold a place in a queue */
    bool closed;  /* ek_service_close or a final poll_ready error */
    int final_err;
    atomic_size_t refs;
    atomic_long pending;               /* wrapped responses in flight */
    _Atomic(ek_notify *) close_notify; /* set by the first close */
    atomic_bool force;                 /* close deadline passed: cancel responses */
    ek_service_vtable vt;
    ek__svc_clone_fn clone; /* NULL: not shareable */
    void *self;
};

/* As ek_service_new, with a clone hook (NULL: not shareable). On error
 * vt->drop(self) has run. */
int ek__service_new(const ek_service_vtable *vt, ek__svc_clone_fn clone, void *self,
                    ek_service **out);
/* The contract's checks and the vtable's poll_ready/call, without the tag check
 * (for holders of a reference) and, for call, without wrapping the response. */
int ek__service_poll_ready(ek_service *svc, ek_cx *cx);
int ek__service_call_raw(ek_service *svc, ek_msg *req, ek_future **resp);
void ek__service_disarm(ek_service *svc);
int ek__service_status(ek_service *svc);
void ek__service_retain(ek_service *svc);
void ek__service_release(ek_service *svc);
/* For a caller that holds its handle past every response it makes (the framed
 * server's connection): ek_service_call without the wrapping future (one
 * allocation less per call). The response counts as pending until the caller
 * calls ek__service_end once for it (when it completes or is dropped), before it
 * frees the handle; ek__service_forced says that a close deadline passed (the
 * caller then cancels its responses, as the wrapper does). */
int ek__service_call_counted(ek_service *svc, ek_msg *req, ek_future **resp);
void ek__service_end(ek_service *svc);
bool ek__service_forced(ek_service *svc);
/* ek_service_call without the tag check (for holders of a reference). */
int ek__service_call(ek_service *svc, ek_msg *req, ek_future **resp);
/* A new handle from svc's clone hook without looking at the handle's own state
 * (so another thread may use svc meanwhile). EK_ENOTSUP if not shareable. */
int ek__service_clone(ek_service *svc, ek_service **out);
bool ek__service_shareable(ek_service *svc);

/* A future that completes at once with error rc. Errors: EK_ENOMEM. */
int ek__future_error(int rc, ek_future **out);
/* A future that completes at once with rc and *out = msg (owned until taken). On
 * error msg is freed. Errors: EK_ENOMEM. */
int ek__future_ready(int rc, ek_msg *msg, ek_future **out);

/* Flat RESP requests (msg.c): what the RESP server codec decodes, one
 * allocation per request. ek__msg_request_new makes an ARRAY of argc bulk
 * strings, unset, with `inline_bytes` of room for arguments that are not in
 * the frame (*space); set each argument with ek__msg_request_set (p in the held
 * chunk or in *space) and give it the frame's chunk reference with
 * ek__msg_request_hold (none if every argument is in *space). Errors: EK_ENOMEM. */
struct ek__chunk;
int ek__msg_request_new(size_t argc, size_t inline_bytes, ek_msg **out, uint8_t **space);
void ek__msg_request_set(ek_msg *m, size_t i, const uint8_t *p, size_t len);
void ek__msg_request_hold(ek_msg *m, struct ek__chunk *chunk);

/* User data with its drop function, shared by a middleware and its clones
 * (map, retry): the drop runs once, with the last reference. */
typedef struct ek__svc_ud {
    atomic_size_t refs;
    void *ud;
    ek_drop_fn drop;
} ek__svc_ud;
/* A new one (reference count 1); NULL on allocation failure (nothing dropped). */
ek__svc_ud *ek__svc_ud_new(void *ud, ek_drop_fn drop);
void ek__svc_ud_retain(ek__svc_ud *u);
void ek__svc_ud_release(ek__svc_ud *u);

/* Checks shared by the middleware constructors, which consume inner (and the
 * other services) in every case: EK_OK, or the error after freeing inner. */
int ek__svc_check_inner(ek_service *inner, ek_service **out);

#endif
