/*
 * retry.c - ek_svc_retry and the retry budget (Tower's Retry and TpsBudget).
 *
 * The budget is Finagle's, as Tower ports it: deposits and withdrawals are
 * integers (deposit 1, withdraw 1/ratio; or 1000 and 1000/ratio above a ratio
 * of 1) summed over 10 slots covering the ttl, plus a reserve of
 * min_per_sec * ttl seconds withdrawals that is always there. A deposit is one
 * atomic add to the running slot (every request makes one: no lock, no clock
 * read); a withdrawal takes the mutex, commits the running slot to the slot of
 * its window and clears the windows that passed (reads the sum and writes, so
 * it must be one step). Deposits made since the last withdrawal are counted in
 * the window that was current then: they expire no later than exactly, so the
 * budget errs on the side of fewer retries.
 *
 * A retried request is sent from its response future, which owns a clone of
 * the inner service for that purpose (made at the first retry), so retries never
 * touch the handle the retry service's own caller is using.
 */
#include "rt.h"
#include "service/svc.h"
#include "task/future.h"

#define EK__TAG_RETRY_BUDGET 0x454b5242u /* "EKRB" */
#define SLOTS                10

struct ek_retry_budget {
    uint32_t tag;
    atomic_size_t refs;
    ek_runtime *rt;
    ek__mutex lock;
    uint64_t window;   /* ms per slot */
    uint64_t gen_time; /* start of the current slot */
    unsigned index;
    _Atomic int64_t writer; /* the running slot's sum (deposits without the lock) */
    int64_t slots[SLOTS];
    int64_t reserve, deposit_amount, withdraw_amount;
};

int ek_retry_budget_new(ek_runtime *rt, uint64_t ttl_ms, uint32_t min_per_sec, double retry_ratio,
                        ek_retry_budget **out)
{
    if (out == NULL || ttl_ms < 1000 || ttl_ms > 60000 || !(retry_ratio >= 0.0) ||
        retry_ratio > 1000.0 || min_per_sec >= INT32_MAX)
        return EK_EINVAL;
    int rc = ek__rt_acquire(rt); /* the budget reads rt's clock: a reference */
    if (rc != EK_OK) return rc;
    ek_retry_budget *b = ek__calloc(1, sizeof *b);
    rc = b ? ek__mutex_init(&b->lock) : EK_ENOMEM;
    if (rc != EK_OK) {
        ek__free(b);
        ek__rt_unref(rt);
        return rc;
    }
    b->tag = EK__TAG_RETRY_BUDGET;
    atomic_init(&b->refs, 1);
    atomic_init(&b->writer, 0);
    b->rt = rt;
    if (retry_ratio == 0.0) {
        b->deposit_amount = 0;
        b->withdraw_amount = 1;
    } else if (retry_ratio <= 1.0) {
        b->deposit_amount = 1;
        b->withdraw_amount = (int64_t)(1.0 / retry_ratio);
    } else {
        b->deposit_amount = 1000;
        b->withdraw_amount = (int64_t)(1000.0 / retry_ratio);
    }
    b->reserve = (int64_t)min_per_sec * (int64_t)(ttl_ms / 1000) * b->withdraw_amount;
    b->window = ttl_ms / SLOTS;
    b->gen_time = ek_now_ms(rt);
    *out = b;
    return EK_OK;
}

int ek_retry_budget_clone(ek_retry_budget *b, ek_retry_budget **out)
{
    if (!EK__CHECK_TAG(b, EK__TAG_RETRY_BUDGET) || out == NULL) return EK_EINVAL;
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    *out = b;
    return EK_OK;
}

void ek_retry_budget_drop(ek_retry_budget *b)
{
    if (!EK__CHECK_TAG(b, EK__TAG_RETRY_BUDGET)) return;
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return;
    ek__mutex_destroy(&b->lock);
    ek__rt_unref(b->rt);
    b->tag = EK__TAG_DEAD;
    ek__free(b);
}

/* Commit the running slot and clear the slots whose time has passed. Locked. */
static void budget_expire(ek_retry_budget *b)
{
    uint64_t now = ek_now_ms(b->rt);
    uint64_t diff = now > b->gen_time ? now - b->gen_time : 0;
    if (diff < b->window) return;
    b->slots[b->index] = atomic_exchange_explicit(&b->writer, 0, memory_order_relaxed);
    unsigned idx = (b->index + 1) % SLOTS;
    for (unsigned k = 0; diff > b->window && k < SLOTS; k++) {
        b->slots[idx] = 0;
        diff -= b->window;
        idx = (idx + 1) % SLOTS;
    }
    b->index = idx;
    b->gen_time = now;
}

int ek_retry_budget_deposit(ek_retry_budget *b)
{
    if (!EK__CHECK_TAG(b, EK__TAG_RETRY_BUDGET)) return EK_EINVAL;
    /* Relaxed: the sum is a count; a withdrawal that misses a concurrent deposit
     * by a moment only errs towards one retry fewer. */
    atomic_fetch_add_explicit(&b->writer, b->deposit_amount, memory_order_relaxed);
    return EK_OK;
}

int ek_retry_budget_withdraw(ek_retry_budget *b)
{
    if (!EK__CHECK_TAG(b, EK__TAG_RETRY_BUDGET)) return EK_EINVAL;
    ek__mutex_lock(&b->lock);
    budget_expire(b);
    int64_t sum = atomic_load_explicit(&b->writer, memory_order_relaxed) + b->reserve;
    for (unsigned i = 0; i < SLOTS; i++) sum += b->slots[i];
    int rc = sum >= b->withdraw_amount ? EK_OK : EK_EEMPTY;
    if (rc == EK_OK)
        atomic_fetch_sub_explicit(&b->writer, b->withdraw_amount, memory_order_relaxed);
    ek__mutex_unlock(&b->lock);
    return rc;
}

/* ---- the retry service ---- */

typedef struct retry {
    ek_service *inner;
    ek_retry_budget *budget;
    ek_retry_policy_fn policy;
    ek__svc_ud *ud;
} retry;

typedef struct retry_resp {
    retry *r;          /* outlives its responses (svc.h) */
    ek_msg *keep;      /* the original request, for further attempts; NULL: no retry */
    ek_future *cur;    /* the attempt in flight */
    ek_service *again; /* the inner clone retries go through */
    unsigned attempt;
} retry_resp;

static int retry_resp_poll(void *state, ek_cx *cx, void **out)
{
    retry_resp *p = state;
    for (;;) {
        if (p->cur == NULL) {
            /* A retry: readiness of the clone, then a new copy of the request. */
            int rc = ek__service_poll_ready(p->again, cx);
            if (rc != EK_OK) return rc;
            ek_msg *req;
            rc = ek_msg_clone(p->keep, &req);
            if (rc != EK_OK) {
                ek__service_disarm(p->again);
                return rc;
            }
            rc = ek__service_call_raw(p->again, req, &p->cur);
            if (rc != EK_OK) {
                p->cur = NULL;
                return rc;
            }
        }
        void *got = NULL;
        int rc = ek_future_poll(p->cur, cx, &got);
        if (rc == EK_PENDING) return rc;
        ek_future_drop(p->cur);
        p->cur = NULL;
        p->attempt++;
        if (p->keep == NULL) {
            if (rc == EK_OK) *out = got;
            return rc;
        }
        int d = p->r->policy(p->r->ud->ud, p->keep, p->attempt, rc, rc == EK_OK ? got : NULL);
        if (d > 0 && ek_retry_budget_withdraw(p->r->budget) != EK_OK) d = 0;
        if (d > 0 && p->again == NULL) {
            int crc = ek__service_clone(p->r->inner, &p->again);
            if (crc != EK_OK) d = 0; /* cannot resend: the result stands */
        }
        if (d == 0) {
            if (rc == EK_OK) *out = got;
            return rc;
        }
        if (rc == EK_OK) ek_msg_free(got);
        if (d < 0) return d;
    }
}

static void retry_resp_drop(void *state)
{
    retry_resp *p = state;
    ek_future_drop(p->cur);
    ek_msg_free(p->keep);
    ek_service_free(p->again);
}

static int retry_poll_ready(void *self, ek_cx *cx)
{
    return ek__service_poll_ready(((retry *)self)->inner, cx);
}

static int retry_call(void *self, ek_msg *req, ek_future **resp)
{
    retry *r = self;
    ek_retry_budget_deposit(r->budget);
    ek_msg *keep = NULL;
    if (ek_msg_clone(req, &keep) != EK_OK) keep = NULL; /* sent once, never retried */
    ek_future *f;
    int rc = ek__service_call_raw(r->inner, req, &f);
    if (rc == EK_OK) {
        retry_resp *p;
        rc = ek__future_new_inline(retry_resp_poll, retry_resp_drop, sizeof *p, resp, (void **)&p);
        if (rc == EK_OK) {
            p->r = r;
            p->keep = keep;
            p->cur = f;
            return EK_OK;
        }
        ek_future_drop(f);
    }
    ek_msg_free(keep);
    return rc;
}

static void retry_disarm(void *self)
{
    ek__service_disarm(((retry *)self)->inner);
}

static int retry_status(void *self)
{
    return ek__service_status(((retry *)self)->inner);
}

static void retry_drop(void *self)
{
    retry *r = self;
    ek_service_free(r->inner);
    ek_retry_budget_drop(r->budget);
    ek__svc_ud_release(r->ud);
    ek__free(r);
}

static int retry_clone(void *self, void **out)
{
    retry *r = self;
    retry *c = ek__calloc(1, sizeof *c);
    if (c == NULL) return EK_ENOMEM;
    int rc = ek__service_clone(r->inner, &c->inner);
    if (rc != EK_OK) {
        ek__free(c);
        return rc;
    }
    ek_retry_budget_clone(r->budget, &c->budget);
    c->policy = r->policy;
    c->ud = r->ud;
    ek__svc_ud_retain(c->ud);
    *out = c;
    return EK_OK;
}

static const ek_service_vtable retry_vt = {retry_poll_ready, retry_call, retry_disarm, retry_status,
                                           retry_drop};

int ek_svc_retry(ek_runtime *rt, ek_service *inner, ek_retry_budget *budget,
                 ek_retry_policy_fn policy, void *ud, ek_drop_fn ud_drop, ek_service **out)
{
    int rc = ek__svc_check_inner(inner, out);
    if (rc == EK_OK &&
        (policy == NULL || (budget != NULL && !EK__CHECK_TAG(budget, EK__TAG_RETRY_BUDGET)))) {
        ek_service_free(inner);
        rc = EK_EINVAL;
    }
    if (rc == EK_OK && !ek__service_shareable(inner)) {
        ek_service_free(inner);
        rc = EK_ENOTSUP;
    }
    if (rc == EK_OK && budget == NULL) {
        rc = ek_retry_budget_new(rt, 10000, 10, 0.2, &budget);
        if (rc != EK_OK) ek_service_free(inner);
    }
    retry *r = NULL;
    ek__svc_ud *u = NULL;
    if (rc == EK_OK) {
        r = ek__calloc(1, sizeof *r);
        u = r ? ek__svc_ud_new(ud, ud_drop) : NULL;
        if (u == NULL) {
            ek__free(r);
            ek_service_free(inner);
            rc = EK_ENOMEM;
        }
    }
    if (rc != EK_OK) {
        ek_retry_budget_drop(budget);
        if (ud_drop) ud_drop(ud);
        return rc;
    }
    r->inner = inner;
    r->budget = budget;
    r->policy = policy;
    r->ud = u;
    return ek__service_new(&retry_vt, retry_clone, r, out);
}
