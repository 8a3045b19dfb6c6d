/*
 * balance.c - ek_svc_balance: power of two choices by pending requests (Tower's
 * p2c with the simplest load, pending count; PeakEwma would weigh it by
 * latency).
 *
 * Each readiness first re-polls the services that pended last time (they hold
 * a waker, and maybe a place in a queue: one of them being ready is what woke
 * us), then samples two others. The first ready one is chosen and every other
 * one that was polled pending is disarmed, so no reservation is left behind. A
 * service whose poll_ready fails is freed and no longer sampled; its slot stays
 * (responses in flight point at its pending counter).
 */
#include "service/svc.h"
#include "task/future.h"

typedef struct bal_ep {
    ek_service *svc; /* NULL once removed */
    atomic_long pending;
    bool polled;
} bal_ep;

typedef struct bal {
    bal_ep *eps;
    size_t n, live;
    size_t chosen; /* SIZE_MAX: none */
    uint64_t rng;
    int last_err;
} bal;

static uint64_t next_rand(bal *b)
{
    /* xorshift64: sampling needs no quality beyond "not always the same". */
    uint64_t x = b->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b->rng = x;
    return x;
}

/* A live endpoint chosen at random, other than `not` (SIZE_MAX: any). */
static size_t sample(bal *b, size_t not )
{
    size_t avail = b->live - (not != SIZE_MAX);
    if (avail == 0) return SIZE_MAX;
    size_t k = (size_t)(next_rand(b) % avail);
    for (size_t i = 0; i < b->n; i++) {
        if (b->eps[i].svc == NULL || i == not ) continue;
        if (k-- == 0) return i;
    }
    return SIZE_MAX;
}

static void remove_ep(bal *b, size_t i, int err)
{
    ek_service_free(b->eps[i].svc);
    b->eps[i].svc = NULL;
    b->eps[i].polled = false;
    b->live--;
    b->last_err = err;
}

/* Poll endpoint i: EK_OK (chosen), EK_PENDING, or < 0 (removed). */
static int try_ep(bal *b, size_t i, ek_cx *cx)
{
    int rc = ek__service_poll_ready(b->eps[i].svc, cx);
    if (rc == EK_OK) {
        b->eps[i].polled = false;
        b->chosen = i;
        for (size_t j = 0; j < b->n; j++) {
            if (b->eps[j].polled) {
                b->eps[j].polled = false;
                ek__service_disarm(b->eps[j].svc);
            }
        }
    } else if (rc == EK_PENDING) {
        b->eps[i].polled = true;
    } else {
        remove_ep(b, i, rc);
    }
    return rc;
}

static int bal_poll_ready(void *self, ek_cx *cx)
{
    bal *b = self;
    for (size_t i = 0; i < b->n; i++)
        if (b->eps[i].polled && try_ep(b, i, cx) == EK_OK) return EK_OK;
    while (b->live > 0) {
        size_t x = sample(b, SIZE_MAX), y = sample(b, x);
        if (y != SIZE_MAX && atomic_load_explicit(&b->eps[y].pending, memory_order_relaxed) <
                                 atomic_load_explicit(&b->eps[x].pending, memory_order_relaxed)) {
            size_t t = x;
            x = y;
            y = t;
        }
        int rc = b->eps[x].polled ? EK_PENDING : try_ep(b, x, cx);
        if (rc == EK_OK) return EK_OK;
        if (rc < 0) continue; /* removed: sample again among the rest */
        if (y == SIZE_MAX) return EK_PENDING;
        rc = b->eps[y].polled ? EK_PENDING : try_ep(b, y, cx);
        if (rc == EK_OK) return EK_OK;
        if (rc == EK_PENDING) return EK_PENDING;
    }
    return b->last_err;
}

typedef struct bal_resp {
    atomic_long *pending; /* the balancer's: it outlives its responses (svc.h) */
    ek_future *inner;
} bal_resp;

static void bal_resp_finish(bal_resp *r)
{
    ek_future_drop(r->inner);
    r->inner = NULL;
    atomic_fetch_sub_explicit(r->pending, 1, memory_order_relaxed);
    r->pending = NULL;
}

static int bal_resp_poll(void *state, ek_cx *cx, void **out)
{
    bal_resp *r = state;
    int rc = ek_future_poll(r->inner, cx, out);
    if (rc != EK_PENDING) bal_resp_finish(r);
    return rc;
}

static void bal_resp_drop(void *state)
{
    bal_resp *r = state;
    if (r->pending) bal_resp_finish(r);
}

static int bal_call(void *self, ek_msg *req, ek_future **resp)
{
    bal *b = self;
    size_t i = b->chosen;
    b->chosen = SIZE_MAX;
    ek_future *f;
    int rc = ek__service_call_raw(b->eps[i].svc, req, &f);
    if (rc != EK_OK) return rc;
    bal_resp *r;
    rc = ek__future_new_inline(bal_resp_poll, bal_resp_drop, sizeof *r, resp, (void **)&r);
    if (rc != EK_OK) {
        ek_future_drop(f);
        return rc;
    }
    r->pending = &b->eps[i].pending;
    r->inner = f;
    atomic_fetch_add_explicit(r->pending, 1, memory_order_relaxed);
    return EK_OK;
}

static void bal_disarm(void *self)
{
    bal *b = self;
    if (b->chosen != SIZE_MAX) ek__service_disarm(b->eps[b->chosen].svc);
    b->chosen = SIZE_MAX;
    for (size_t j = 0; j < b->n; j++) {
        if (b->eps[j].polled) {
            b->eps[j].polled = false;
            ek__service_disarm(b->eps[j].svc);
        }
    }
}

static int bal_status(void *self)
{
    bal *b = self;
    if (b->live == 0) return EK_SERVICE_CLOSED;
    for (size_t i = 0; i < b->n; i++)
        if (b->eps[i].svc && ek__service_status(b->eps[i].svc) == EK_SERVICE_OPEN)
            return EK_SERVICE_OPEN;
    return EK_SERVICE_BUSY;
}

static void bal_drop(void *self)
{
    bal *b = self;
    for (size_t i = 0; i < b->n; i++) ek_service_free(b->eps[i].svc);
    ek__free(b->eps);
    ek__free(b);
}

static const ek_service_vtable bal_vt = {bal_poll_ready, bal_call, bal_disarm, bal_status,
                                         bal_drop};

int ek_svc_balance(ek_service **services, size_t n, ek_service **out)
{
    int rc = services == NULL || n == 0 || out == NULL ? EK_EINVAL : EK_OK;
    for (size_t i = 0; rc == EK_OK && i < n; i++)
        if (!EK__CHECK_TAG(services[i], EK__TAG_SERVICE)) rc = EK_EINVAL;
    bal *b = NULL;
    if (rc == EK_OK) {
        b = ek__calloc(1, sizeof *b);
        if (b) b->eps = ek__calloc(n, sizeof *b->eps);
        if (b == NULL || b->eps == NULL) {
            ek__free(b);
            rc = EK_ENOMEM;
        }
    }
    if (rc != EK_OK) {
        /* Consumed in every case: free every valid service given. */
        for (size_t i = 0; services != NULL && i < n; i++)
            if (EK__CHECK_TAG(services[i], EK__TAG_SERVICE)) ek_service_free(services[i]);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        b->eps[i].svc = services[i];
        atomic_init(&b->eps[i].pending, 0);
    }
    b->n = b->live = n;
    b->chosen = SIZE_MAX;
    b->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)b;
    b->last_err = EK_ECLOSED;
    return ek__service_new(&bal_vt, NULL, b, out);
}

int64_t ek_svc_balance_size(ek_service *balance)
{
    if (!EK__CHECK_TAG(balance, EK__TAG_SERVICE) || balance->vt.poll_ready != bal_poll_ready)
        return EK_EINVAL;
    return (int64_t)((bal *)balance->self)->live;
}
