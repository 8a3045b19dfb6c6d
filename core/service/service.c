/*
 * service.c - the service contract (ekiden/service.h): readiness before call,
 * reservations given back by disarm, final poll_ready errors, response futures
 * that keep the service alive, close with a drain deadline, oneshot.
 */
#include "service/svc.h"
#include "task/future.h"

/* ---- lifetime ---- */

void ek__service_retain(ek_service *svc)
{
    atomic_fetch_add_explicit(&svc->refs, 1, memory_order_relaxed);
}

void ek__service_release(ek_service *svc)
{
    /* acq_rel: what every holder did happens before the drop (buf.c says why
     * not a fence). */
    if (atomic_fetch_sub_explicit(&svc->refs, 1, memory_order_acq_rel) != 1) return;
    if (svc->vt.drop) svc->vt.drop(svc->self);
    ek_notify_drop(atomic_load_explicit(&svc->close_notify, memory_order_relaxed));
    svc->tag = EK__TAG_DEAD;
    ek__free(svc);
}

int ek__service_new(const ek_service_vtable *vt, ek__svc_clone_fn clone, void *self,
                    ek_service **out)
{
    if (vt == NULL || out == NULL || vt->poll_ready == NULL || vt->call == NULL) {
        if (vt && vt->drop) vt->drop(self);
        return EK_EINVAL;
    }
    ek_service *svc = ek__calloc(1, sizeof *svc);
    if (svc == NULL) {
        if (vt->drop) vt->drop(self);
        return EK_ENOMEM;
    }
    svc->tag = EK__TAG_SERVICE;
    atomic_init(&svc->refs, 1);
    atomic_init(&svc->pending, 0);
    atomic_init(&svc->close_notify, NULL);
    atomic_init(&svc->force, false);
    svc->vt = *vt;
    svc->clone = clone;
    svc->self = self;
    *out = svc;
    return EK_OK;
}

int ek_service_new(const ek_service_vtable *vt, void *self, ek_service **out)
{
    return ek__service_new(vt, NULL, self, out);
}

#define IS_SVC(s) EK__CHECK_TAG(s, EK__TAG_SERVICE)

/* ---- readiness and call ---- */

int ek__service_poll_ready(ek_service *svc, ek_cx *cx)
{
    if (svc->closed) return svc->final_err;
    if (svc->ready) return EK_OK;
    int rc = svc->vt.poll_ready(svc->self, cx);
    svc->polled = rc == EK_PENDING;
    if (rc == EK_OK) {
        svc->ready = true;
    } else if (rc < 0) {
        /* Final (rule 3): the service gave up; later polls repeat the error. */
        svc->closed = true;
        svc->final_err = rc;
    } else if (rc != EK_PENDING) {
        /* A positive status other than EK_PENDING is the implementation's bug:
         * treat it as pending would spin; fail it instead, exactly. */
        svc->closed = true;
        svc->final_err = rc = EK_EINVAL;
    }
    return rc;
}

int ek_service_poll_ready(ek_service *svc, ek_cx *cx)
{
    if (!IS_SVC(svc) || cx == NULL) return EK_EINVAL;
    return ek__service_poll_ready(svc, cx);
}

int ek__service_call_raw(ek_service *svc, ek_msg *req, ek_future **resp)
{
    if (resp == NULL || !EK__CHECK_TAG(req, EK__TAG_MSG)) {
        if (svc->ready) ek__service_disarm(svc);
        ek_msg_free(req);
        return EK_EINVAL;
    }
    if (!svc->ready) {
        ek_msg_free(req);
        return svc->closed && svc->final_err == EK_ECLOSED ? EK_ECLOSED : EK_ENOTREADY;
    }
    svc->ready = false;
    *resp = NULL;
    int rc = svc->vt.call(svc->self, req, resp);
    if (rc == EK_OK && !EK__CHECK_TAG(*resp, EK__TAG_FUTURE)) rc = EK_EINVAL;
    if (rc > 0) rc = EK_EINVAL; /* EK_PENDING is not an answer a call may give */
    return rc;
}

/* A response wrapped by ek_service_call: counts as pending and keeps svc alive. */
typedef struct ek__svc_resp {
    ek_service *svc;
    ek_future *inner;
} ek__svc_resp;

static void resp_finish(ek__svc_resp *r)
{
    ek_future_drop(r->inner);
    r->inner = NULL;
    ek_service *svc = r->svc;
    r->svc = NULL;
    /* seq_cst pairs with close: either close's done future sees pending reach 0,
     * or this sees the notify it published (svc.h, ek_service_close). */
    if (atomic_fetch_sub(&svc->pending, 1) == 1) {
        ek_notify *n = atomic_load(&svc->close_notify);
        if (n) ek_notify_waiters(n);
    }
    ek__service_release(svc);
}

static int resp_poll(void *state, ek_cx *cx, void **out)
{
    ek__svc_resp *r = state;
    if (atomic_load_explicit(&r->svc->force, memory_order_relaxed)) {
        resp_finish(r);
        return EK_ECANCELED;
    }
    int rc = ek_future_poll(r->inner, cx, out);
    if (rc != EK_PENDING) resp_finish(r);
    return rc;
}

static void resp_drop(void *state)
{
    ek__svc_resp *r = state;
    if (r->svc) resp_finish(r);
}

static int call_wrapped(ek_service *svc, ek_msg *req, ek_future **resp)
{
    ek_future *inner = NULL;
    int rc = ek__service_call_raw(svc, req, &inner);
    if (rc != EK_OK) return rc;
    ek__svc_resp *r;
    rc = ek__future_new_inline(resp_poll, resp_drop, sizeof *r, resp, (void **)&r);
    if (rc != EK_OK) {
        ek_future_drop(inner);
        return rc;
    }
    r->svc = svc;
    r->inner = inner;
    ek__service_retain(svc);
    atomic_fetch_add(&svc->pending, 1);
    return EK_OK;
}

int ek__service_call_counted(ek_service *svc, ek_msg *req, ek_future **resp)
{
    int rc = ek__service_call_raw(svc, req, resp);
    if (rc == EK_OK) atomic_fetch_add(&svc->pending, 1);
    return rc;
}

void ek__service_end(ek_service *svc)
{
    /* seq_cst as in resp_finish. */
    if (atomic_fetch_sub(&svc->pending, 1) == 1) {
        ek_notify *n = atomic_load(&svc->close_notify);
        if (n) ek_notify_waiters(n);
    }
}

bool ek__service_forced(ek_service *svc)
{
    return atomic_load_explicit(&svc->force, memory_order_relaxed);
}

int ek_service_call(ek_service *svc, ek_msg *req, ek_future **resp)
{
    if (!IS_SVC(svc)) {
        ek_msg_free(req);
        return EK_EINVAL;
    }
    return call_wrapped(svc, req, resp);
}

int ek__service_call(ek_service *svc, ek_msg *req, ek_future **resp)
{
    return call_wrapped(svc, req, resp);
}

void ek__service_disarm(ek_service *svc)
{
    if (!svc->ready && !svc->polled) return;
    svc->ready = false;
    svc->polled = false;
    if (svc->vt.disarm) svc->vt.disarm(svc->self);
}

int ek_service_disarm(ek_service *svc)
{
    if (!IS_SVC(svc)) return EK_EINVAL;
    ek__service_disarm(svc);
    return EK_OK;
}

int ek__service_status(ek_service *svc)
{
    if (svc->closed) return EK_SERVICE_CLOSED;
    if (svc->vt.status == NULL) return EK_SERVICE_OPEN;
    int st = svc->vt.status(svc->self);
    return st == EK_SERVICE_BUSY || st == EK_SERVICE_CLOSED ? st : EK_SERVICE_OPEN;
}

int ek_service_status(ek_service *svc)
{
    if (!IS_SVC(svc)) return EK_EINVAL;
    return ek__service_status(svc);
}

int64_t ek_service_pending(ek_service *svc)
{
    if (!IS_SVC(svc)) return EK_EINVAL;
    return atomic_load_explicit(&svc->pending, memory_order_relaxed);
}

void ek_service_free(ek_service *svc)
{
    if (!IS_SVC(svc)) return;
    ek__service_disarm(svc);
    svc->tag = EK__TAG_DEAD; /* stale handles now give EK_EINVAL while it lives on */
    ek__service_release(svc);
}

int ek__service_clone(ek_service *svc, ek_service **out)
{
    if (svc->clone == NULL) return EK_ENOTSUP;
    void *self = NULL;
    int rc = svc->clone(svc->self, &self);
    if (rc != EK_OK) return rc;
    return ek__service_new(&svc->vt, svc->clone, self, out);
}

int ek_service_clone(ek_service *svc, ek_service **out)
{
    if (!IS_SVC(svc) || out == NULL) return EK_EINVAL;
    if (svc->clone == NULL) return EK_ENOTSUP;
    if (svc->closed) return EK_ECLOSED;
    return ek__service_clone(svc, out);
}

bool ek__service_shareable(ek_service *svc)
{
    return svc->clone != NULL;
}

int ek_service_is_shareable(ek_service *svc)
{
    if (!IS_SVC(svc)) return EK_EINVAL;
    return svc->clone != NULL;
}

int ek_service_new_shareable(const ek_service_vtable *vt, void *self, ek_clone_fn clone,
                             ek_service **out)
{
    if (clone == NULL) {
        if (vt && vt->drop) vt->drop(self);
        return EK_EINVAL;
    }
    return ek__service_new(vt, clone, self, out);
}

int ek__svc_check_inner(ek_service *inner, ek_service **out)
{
    if (!IS_SVC(inner)) return EK_EINVAL;
    if (out == NULL) {
        ek_service_free(inner);
        return EK_EINVAL;
    }
    return EK_OK;
}

/* ---- shared user data ---- */

ek__svc_ud *ek__svc_ud_new(void *ud, ek_drop_fn drop)
{
    ek__svc_ud *u = ek__malloc(sizeof *u);
    if (u == NULL) return NULL;
    atomic_init(&u->refs, 1);
    u->ud = ud;
    u->drop = drop;
    return u;
}

void ek__svc_ud_retain(ek__svc_ud *u)
{
    atomic_fetch_add_explicit(&u->refs, 1, memory_order_relaxed);
}

void ek__svc_ud_release(ek__svc_ud *u)
{
    if (atomic_fetch_sub_explicit(&u->refs, 1, memory_order_acq_rel) != 1) return;
    if (u->drop) u->drop(u->ud);
    ek__free(u);
}

/* ---- immediate futures ---- */

typedef struct ek__ready_state {
    int rc;
    ek_msg *msg;
} ek__ready_state;

static int ready_poll(void *state, ek_cx *cx, void **out)
{
    ek__ready_state *r = state;
    (void)cx;
    *out = r->msg;
    r->msg = NULL;
    return r->rc;
}

static void ready_drop(void *state)
{
    ek_msg_free(((ek__ready_state *)state)->msg);
}

int ek__future_ready(int rc, ek_msg *msg, ek_future **out)
{
    ek__ready_state *r;
    int err = ek__future_new_inline(ready_poll, ready_drop, sizeof *r, out, (void **)&r);
    if (err != EK_OK) {
        ek_msg_free(msg);
        return err;
    }
    r->rc = rc;
    r->msg = msg;
    return EK_OK;
}

int ek_service_ready(int rc, ek_msg *resp, ek_future **out)
{
    if (out == NULL || rc > 0 || (rc == EK_OK && resp == NULL)) {
        ek_msg_free(resp);
        return EK_EINVAL;
    }
    if (rc != EK_OK) {
        ek_msg_free(resp);
        resp = NULL;
    }
    return ek__future_ready(rc, resp, out);
}

int ek__future_error(int rc, ek_future **out)
{
    return ek__future_ready(rc, NULL, out);
}

/* ---- close ---- */

typedef struct ek__svc_close {
    ek_service *svc;
    ek_notified *notified;
    ek_future *sleep;
    uint64_t deadline_ms;
} ek__svc_close;

static int close_poll(void *state, ek_cx *cx, void **out)
{
    ek__svc_close *c = state;
    *out = NULL;
    for (;;) {
        if (atomic_load(&c->svc->pending) == 0) return EK_OK;
        int rc = ek_notified_poll(c->notified, cx);
        if (rc == EK_PENDING) break;
        if (rc != EK_OK) return rc;
        /* Woken: re-arm and look again (another response may have started
         * before close, none after it). */
        rc = ek_notified_reset(c->notified);
        if (rc != EK_OK) return rc;
    }
    if (c->deadline_ms == UINT64_MAX) return EK_PENDING;
    if (c->sleep == NULL) {
        int rc = ek_sleep(ek_cx_runtime(cx), c->deadline_ms, &c->sleep);
        if (rc != EK_OK) return rc;
    }
    int rc = ek_future_poll(c->sleep, cx, NULL);
    if (rc == EK_PENDING) return rc;
    if (rc == EK_OK) {
        atomic_store_explicit(&c->svc->force, true, memory_order_relaxed);
        return EK_ETIMEDOUT;
    }
    return rc;
}

static void close_drop(void *state)
{
    ek__svc_close *c = state;
    ek_future_drop(c->sleep);
    ek_notified_drop(c->notified);
    ek__service_release(c->svc);
}

int ek_service_close(ek_service *svc, uint64_t deadline_ms, ek_future **done)
{
    if (!IS_SVC(svc)) return EK_EINVAL;
    ek__service_disarm(svc);
    if (!svc->closed) {
        svc->closed = true;
        svc->final_err = EK_ECLOSED;
    }
    if (done == NULL) return EK_OK;
    ek_notify *n = atomic_load(&svc->close_notify);
    if (n == NULL) {
        int rc = ek_notify_new(&n);
        if (rc != EK_OK) return rc;
        atomic_store(&svc->close_notify, n);
    }
    ek__svc_close *c;
    int rc = ek__future_new_inline(close_poll, close_drop, sizeof *c, done, (void **)&c);
    if (rc != EK_OK) return rc;
    rc = ek_notified_new(n, &c->notified);
    if (rc != EK_OK) {
        /* close_drop must not release a reference it never took. */
        ek__service_retain(svc);
        ek_future_drop(*done);
        *done = NULL;
        return rc;
    }
    c->svc = svc;
    c->deadline_ms = deadline_ms;
    ek__service_retain(svc);
    return EK_OK;
}

/* ---- oneshot ---- */

typedef struct ek__svc_oneshot {
    ek_service *svc;
    ek_msg *req;
    ek_future *resp;
} ek__svc_oneshot;

static int oneshot_poll(void *state, ek_cx *cx, void **out)
{
    ek__svc_oneshot *o = state;
    if (o->resp == NULL) {
        int rc = ek__service_poll_ready(o->svc, cx);
        if (rc != EK_OK) return rc;
        ek_msg *req = o->req;
        o->req = NULL;
        rc = call_wrapped(o->svc, req, &o->resp);
        if (rc != EK_OK) return rc;
    }
    return ek_future_poll(o->resp, cx, out);
}

static void oneshot_drop(void *state)
{
    ek__svc_oneshot *o = state;
    ek_msg_free(o->req);
    ek_future_drop(o->resp);
    ek__service_disarm(o->svc);
    ek__service_release(o->svc);
}

int ek_service_oneshot(ek_service *svc, ek_msg *req, ek_future **out)
{
    if (!IS_SVC(svc) || out == NULL || !EK__CHECK_TAG(req, EK__TAG_MSG)) {
        ek_msg_free(req);
        return EK_EINVAL;
    }
    ek__svc_oneshot *o;
    int rc = ek__future_new_inline(oneshot_poll, oneshot_drop, sizeof *o, out, (void **)&o);
    if (rc != EK_OK) {
        ek_msg_free(req);
        return rc;
    }
    ek__service_retain(svc);
    o->svc = svc;
    o->req = req;
    return EK_OK;
}
