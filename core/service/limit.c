/*
 * limit.c - ek_svc_concurrency_limit: at most `max` responses in flight.
 *
 * The permits are a core semaphore shared by the clones. poll_ready takes one
 * raw permit without allocating when it can (ek_semaphore_try_acquire); only a
 * caller that must wait gets a permit object (its place in the FIFO queue),
 * whose permit is converted to a raw one once acquired (forgotten, then given
 * back with ek_semaphore_release like every raw permit). The permit is held
 * while the inner is polled ready, moves to the response at call and goes back
 * when the response completes or is dropped.
 */
#include "service/svc.h"
#include "task/future.h"

typedef struct lim {
    ek_service *inner;
    ek_semaphore *sem;
    ek_semaphore_permit *waiter; /* made on the first wait, reused */
    bool waiting;                /* waiter is queued */
    bool held;                   /* a permit for the next call */
} lim;

static int lim_poll_ready(void *self, ek_cx *cx)
{
    lim *l = self;
    if (!l->held) {
        int rc;
        if (l->waiting) {
            rc = ek_semaphore_acquire(l->waiter, cx, 1);
        } else {
            rc = ek_semaphore_try_acquire(l->sem, 1);
            if (rc == EK_EFULL) {
                if (l->waiter == NULL) {
                    rc = ek_semaphore_permit_new(l->sem, &l->waiter);
                    if (rc != EK_OK) return rc;
                }
                rc = ek_semaphore_acquire(l->waiter, cx, 1);
                l->waiting = true;
            }
        }
        if (rc == EK_PENDING) return rc;
        if (l->waiting) {
            l->waiting = false;
            if (rc == EK_OK) ek_semaphore_permit_forget(l->waiter);
        }
        if (rc != EK_OK) return rc;
        l->held = true;
    }
    int rc = ek__service_poll_ready(l->inner, cx);
    if (rc < 0) {
        l->held = false;
        ek_semaphore_release(l->sem, 1);
    }
    return rc;
}

typedef struct lim_resp {
    ek_semaphore *sem; /* the limit's: it outlives its responses (svc.h) */
    ek_future *inner;
} lim_resp;

static void lim_resp_finish(lim_resp *r)
{
    ek_future_drop(r->inner);
    r->inner = NULL;
    ek_semaphore_release(r->sem, 1);
    r->sem = NULL;
}

static int lim_resp_poll(void *state, ek_cx *cx, void **out)
{
    lim_resp *r = state;
    int rc = ek_future_poll(r->inner, cx, out);
    if (rc != EK_PENDING) lim_resp_finish(r);
    return rc;
}

static void lim_resp_drop(void *state)
{
    lim_resp *r = state;
    if (r->sem) lim_resp_finish(r);
}

static int lim_call(void *self, ek_msg *req, ek_future **resp)
{
    lim *l = self;
    l->held = false;
    ek_future *f;
    int rc = ek__service_call_raw(l->inner, req, &f);
    if (rc == EK_OK) {
        lim_resp *r;
        rc = ek__future_new_inline(lim_resp_poll, lim_resp_drop, sizeof *r, resp, (void **)&r);
        if (rc == EK_OK) {
            r->sem = l->sem;
            r->inner = f;
            return EK_OK;
        }
        ek_future_drop(f);
    }
    ek_semaphore_release(l->sem, 1);
    return rc;
}

static void lim_disarm(void *self)
{
    lim *l = self;
    if (l->held) {
        l->held = false;
        ek_semaphore_release(l->sem, 1);
    }
    if (l->waiting) {
        l->waiting = false;
        ek_semaphore_permit_release(l->waiter);
    }
    ek__service_disarm(l->inner);
}

static int lim_status(void *self)
{
    lim *l = self;
    if (!l->held && ek_semaphore_available_permits(l->sem) == 0) return EK_SERVICE_BUSY;
    return ek__service_status(l->inner);
}

static void lim_drop(void *self)
{
    lim *l = self;
    lim_disarm(l);
    ek_semaphore_permit_drop(l->waiter);
    ek_service_free(l->inner);
    ek_semaphore_drop(l->sem);
    ek__free(l);
}

static int lim_clone(void *self, void **out)
{
    lim *l = self;
    lim *c = ek__calloc(1, sizeof *c);
    if (c == NULL) return EK_ENOMEM;
    int rc = ek__service_clone(l->inner, &c->inner);
    if (rc == EK_OK) rc = ek_semaphore_clone(l->sem, &c->sem);
    if (rc != EK_OK) {
        ek_service_free(c->inner);
        ek__free(c);
        return rc;
    }
    *out = c;
    return EK_OK;
}

static const ek_service_vtable lim_vt = {lim_poll_ready, lim_call, lim_disarm, lim_status,
                                         lim_drop};

int ek_svc_concurrency_limit(ek_service *inner, size_t max, ek_service **out)
{
    int rc = ek__svc_check_inner(inner, out);
    if (rc != EK_OK) return rc;
    lim *l = NULL;
    if (max == 0 || max > EK_SEMAPHORE_MAX_PERMITS)
        rc = EK_EINVAL;
    else if ((l = ek__calloc(1, sizeof *l)) == NULL)
        rc = EK_ENOMEM;
    else if ((rc = ek_semaphore_new(max, &l->sem)) != EK_OK)
        ek__free(l);
    if (rc != EK_OK) {
        ek_service_free(inner);
        return rc;
    }
    l->inner = inner;
    return ek__service_new(&lim_vt, ek__service_shareable(inner) ? lim_clone : NULL, l, out);
}
