/*
 * timeout.c - ek_svc_timeout: a per-request deadline that starts when the caller
 * begins waiting for readiness, not at call (Tower's starts at call, so time
 * queued behind a limit or a full buffer is not counted).
 *
 * The wait for readiness is bounded by an ek_sleep_until made only when the
 * inner is not ready at once; a deadline that passes there does not fail
 * poll_ready (that would close the service, rule 3) but turns the call into an
 * immediate EK_ETIMEDOUT. The response wraps the inner one with a core timer
 * (as ek_timeout does, and like it checked without spending cooperative budget,
 * so a busy inner future cannot keep it from firing), armed with what is left of
 * the readiness deadline, or else `ms` from the first poll that finds the inner
 * response pending: a response that is ready at once costs no clock read and no
 * timer. The inner future is dropped the moment the deadline passes.
 */
#include "rt.h"
#include "service/svc.h"
#include "task/future.h"
#include "task/task.h"
#include "time/time.h"

#define NO_DEADLINE UINT64_MAX

typedef struct tmo {
    ek_runtime *rt;
    ek_service *inner;
    uint64_t ms;
    uint64_t deadline; /* set while waiting for readiness, NO_DEADLINE otherwise */
    ek_future *sleep;
    bool expired; /* the deadline passed before the inner was ready */
} tmo;

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX - 1 : a + b;
}

static void tmo_reset(tmo *t)
{
    ek_future_drop(t->sleep);
    t->sleep = NULL;
    t->deadline = NO_DEADLINE;
    t->expired = false;
}

static int tmo_poll_ready(void *self, ek_cx *cx)
{
    tmo *t = self;
    int rc = ek__service_poll_ready(t->inner, cx);
    if (rc != EK_PENDING) {
        ek_future_drop(t->sleep);
        t->sleep = NULL;
        if (rc != EK_OK) t->deadline = NO_DEADLINE;
        return rc;
    }
    if (t->deadline == NO_DEADLINE) t->deadline = add_sat(ek_now_ms(t->rt), t->ms);
    if (t->sleep == NULL) {
        rc = ek_sleep_until(t->rt, t->deadline, &t->sleep);
        if (rc != EK_OK) return rc;
    }
    rc = ek_future_poll(t->sleep, cx, NULL);
    if (rc == EK_PENDING) return rc;
    if (rc != EK_OK) return rc;
    /* Expired while waiting: leave the inner's queue, answer ready, fail the call. */
    ek__service_disarm(t->inner);
    ek_future_drop(t->sleep);
    t->sleep = NULL;
    t->expired = true;
    return EK_OK;
}

typedef struct tmo_resp {
    ek_runtime *rt;
    ek_future *inner; /* NULL once done */
    uint64_t ms, deadline;
    bool armed;
    ek__timer timer;
} tmo_resp;

static void tmo_resp_finish(tmo_resp *r)
{
    ek_future_drop(r->inner);
    r->inner = NULL;
    if (r->armed) ek__timer_cancel(ek__rt_time(r->rt), &r->timer);
    r->armed = false;
}

static int tmo_resp_poll(void *state, ek_cx *cx, void **out)
{
    tmo_resp *r = state;
    int rc = ek_future_poll(r->inner, cx, out);
    if (rc != EK_PENDING) {
        tmo_resp_finish(r);
        return rc;
    }
    ek__time *time = ek__rt_time(r->rt);
    if (!r->armed) {
        uint64_t d = r->deadline;
        if (d == NO_DEADLINE) d = ek__time_deadline_after(time, r->ms);
        ek__timer_init(&r->timer, d);
        r->armed = true;
    }
    rc = ek__timer_poll(time, r->rt, &r->timer, cx);
    if (rc == EK_PENDING) {
        ek__cx_pend(cx, EK__SITE_TIMEOUT);
        return rc;
    }
    tmo_resp_finish(r); /* the inner response is cancelled before anyone sees it */
    return rc == EK_OK ? EK_ETIMEDOUT : rc;
}

static void tmo_resp_drop(void *state)
{
    tmo_resp *r = state;
    if (r->inner) tmo_resp_finish(r);
}

static int tmo_call(void *self, ek_msg *req, ek_future **resp)
{
    tmo *t = self;
    if (t->expired) {
        tmo_reset(t);
        ek_msg_free(req);
        return ek__future_error(EK_ETIMEDOUT, resp);
    }
    uint64_t deadline = t->deadline;
    t->deadline = NO_DEADLINE;
    ek_future *f;
    int rc = ek__service_call_raw(t->inner, req, &f);
    if (rc != EK_OK) return rc;
    tmo_resp *r;
    rc = ek__future_new_inline(tmo_resp_poll, tmo_resp_drop, sizeof *r, resp, (void **)&r);
    if (rc != EK_OK) {
        ek_future_drop(f);
        return rc;
    }
    r->rt = t->rt;
    r->inner = f;
    r->ms = t->ms;
    r->deadline = deadline;
    return EK_OK;
}

static void tmo_disarm(void *self)
{
    tmo *t = self;
    tmo_reset(t);
    ek__service_disarm(t->inner);
}

static int tmo_status(void *self)
{
    return ek__service_status(((tmo *)self)->inner);
}

static void tmo_drop(void *self)
{
    tmo *t = self;
    tmo_reset(t);
    ek_service_free(t->inner);
    ek__rt_unref(t->rt);
    ek__free(t);
}

static int tmo_clone(void *self, void **out)
{
    tmo *t = self;
    tmo *c = ek__calloc(1, sizeof *c);
    if (c == NULL) return EK_ENOMEM;
    int rc = ek__service_clone(t->inner, &c->inner);
    if (rc != EK_OK) {
        ek__free(c);
        return rc;
    }
    c->rt = t->rt;
    ek__rt_ref(c->rt);
    c->ms = t->ms;
    c->deadline = NO_DEADLINE;
    *out = c;
    return EK_OK;
}

static const ek_service_vtable tmo_vt = {tmo_poll_ready, tmo_call, tmo_disarm, tmo_status,
                                         tmo_drop};

int ek_svc_timeout(ek_runtime *rt, ek_service *inner, uint64_t ms, ek_service **out)
{
    int rc = ek__svc_check_inner(inner, out);
    if (rc != EK_OK) return rc;
    rc = ek__rt_acquire(rt); /* the service holds a reference on the runtime */
    tmo *t = rc == EK_OK ? ek__calloc(1, sizeof *t) : NULL;
    if (rc == EK_OK && t == NULL) {
        ek__rt_unref(rt);
        rc = EK_ENOMEM;
    }
    if (rc != EK_OK) {
        ek_service_free(inner);
        return rc;
    }
    t->rt = rt;
    t->inner = inner;
    t->ms = ms;
    t->deadline = NO_DEADLINE;
    return ek__service_new(&tmo_vt, ek__service_shareable(inner) ? tmo_clone : NULL, t, out);
}
