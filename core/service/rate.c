/*
 * rate.c - ek_svc_rate_limit: n requests per period (Tower's RateLimit, whose
 * state is Ready{until, rem} or Limited on a sleep). A token is taken when the
 * inner is ready too, so a caller waiting on the inner holds none; the token
 * belongs to the next call and disarm gives it back.
 */
#include "rt.h"
#include "service/svc.h"

typedef struct rate {
    ek_runtime *rt;
    ek_service *inner;
    uint64_t n, period;
    uint64_t until; /* end of the current window (rt's clock) */
    uint64_t rem;   /* tokens left in it */
    ek_future *sleep;
    bool reserved;
} rate;

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static int rate_poll_ready(void *self, ek_cx *cx)
{
    rate *r = self;
    if (!r->reserved) {
        uint64_t now = ek_now_ms(r->rt);
        if (now >= r->until) {
            /* A new window (a sleep for the old one's end is moot). */
            ek_future_drop(r->sleep);
            r->sleep = NULL;
            r->until = add_sat(now, r->period);
            r->rem = r->n;
        }
        if (r->rem == 0) {
            if (r->sleep == NULL) {
                int rc = ek_sleep_until(r->rt, r->until, &r->sleep);
                if (rc != EK_OK) return rc;
            }
            int rc = ek_future_poll(r->sleep, cx, NULL);
            if (rc == EK_PENDING) return rc;
            ek_future_drop(r->sleep);
            r->sleep = NULL;
            if (rc != EK_OK) return rc;
            /* The window that starts now (at or after the old one's end). */
            r->until = add_sat(ek_now_ms(r->rt), r->period);
            r->rem = r->n;
        }
    }
    int rc = ek__service_poll_ready(r->inner, cx);
    if (rc == EK_OK && !r->reserved) {
        r->reserved = true;
        r->rem--;
    }
    return rc;
}

static int rate_call(void *self, ek_msg *req, ek_future **resp)
{
    rate *r = self;
    r->reserved = false;
    return ek__service_call_raw(r->inner, req, resp);
}

static void rate_disarm(void *self)
{
    rate *r = self;
    if (r->reserved && r->rem < r->n) r->rem++;
    r->reserved = false;
    ek_future_drop(r->sleep);
    r->sleep = NULL;
    ek__service_disarm(r->inner);
}

static int rate_status(void *self)
{
    rate *r = self;
    if (!r->reserved && r->rem == 0 && ek_now_ms(r->rt) < r->until) return EK_SERVICE_BUSY;
    return ek__service_status(r->inner);
}

static void rate_drop(void *self)
{
    rate *r = self;
    ek_future_drop(r->sleep);
    ek_service_free(r->inner);
    ek__rt_unref(r->rt);
    ek__free(r);
}

static const ek_service_vtable rate_vt = {rate_poll_ready, rate_call, rate_disarm, rate_status,
                                          rate_drop};

int ek_svc_rate_limit(ek_runtime *rt, ek_service *inner, uint64_t n, uint64_t period_ms,
                      ek_service **out)
{
    int rc = ek__svc_check_inner(inner, out);
    if (rc != EK_OK) return rc;
    rc = n == 0 || period_ms == 0 ? EK_EINVAL : ek__rt_acquire(rt);
    rate *r = rc == EK_OK ? ek__calloc(1, sizeof *r) : NULL;
    if (rc == EK_OK && r == NULL) {
        ek__rt_unref(rt);
        rc = EK_ENOMEM;
    }
    if (rc != EK_OK) {
        ek_service_free(inner);
        return rc;
    }
    r->rt = rt;
    r->inner = inner;
    r->n = n;
    r->period = period_ms;
    return ek__service_new(&rate_vt, NULL, r, out);
}
