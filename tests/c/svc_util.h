/* svc_util.h - a test backend service and helpers shared by test_middleware.c and
 * test_registry.c: the backend echoes integer requests after an optional delay
 * on the runtime's clock (the test clock when paused), can fail its first
 * responses or its readiness, and counts calls, completions and dropped
 * response futures (the proof that cancellation reached it). */
#ifndef EK_TEST_SVC_UTIL_H
#define EK_TEST_SVC_UTIL_H

#include "support.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct be {
    ek_runtime *rt;
    uint64_t delay_ms;     /* a response sleeps this long first (0: at once) */
    atomic_int fail_first; /* the first N responses fail with fail_rc */
    int fail_rc;
    atomic_int ready_err; /* poll_ready's final error, if not 0 */
    atomic_int calls, completed, resp_drops, handle_drops, polls;
    pthread_t owner; /* if owner_check: every callback must run on it */
    bool owner_check;
    atomic_int wrong_thread;
} be;

static inline void be_thread(be *b)
{
    if (b->owner_check && !pthread_equal(pthread_self(), b->owner))
        atomic_fetch_add(&b->wrong_thread, 1);
}

static int be_poll_ready(void *self, ek_cx *cx)
{
    be *b = self;
    (void)cx;
    be_thread(b);
    atomic_fetch_add(&b->polls, 1);
    int e = atomic_load(&b->ready_err);
    return e ? e : EK_OK;
}

typedef struct be_resp {
    be *b;
    ek_msg *msg;
    ek_future *sleep;
    int rc;
} be_resp;

static int be_resp_poll(void *state, ek_cx *cx, void **out)
{
    be_resp *r = state;
    be_thread(r->b);
    if (r->b->delay_ms) {
        if (r->sleep == NULL && ek_sleep(r->b->rt, r->b->delay_ms, &r->sleep) != EK_OK)
            return EK_ENOMEM;
        int rc = ek_future_poll(r->sleep, cx, NULL);
        if (rc != EK_OK) return rc;
    }
    atomic_fetch_add(&r->b->completed, 1);
    if (r->rc != EK_OK) return r->rc;
    *out = r->msg;
    r->msg = NULL;
    return EK_OK;
}

static void be_resp_drop(void *state)
{
    be_resp *r = state;
    be_thread(r->b);
    atomic_fetch_add(&r->b->resp_drops, 1);
    ek_future_drop(r->sleep);
    ek_msg_free(r->msg);
    free(r);
}

static int be_call(void *self, ek_msg *req, ek_future **resp)
{
    be *b = self;
    be_thread(b);
    atomic_fetch_add(&b->calls, 1);
    be_resp *r = calloc(1, sizeof *r);
    r->b = b;
    r->msg = req;
    if (atomic_fetch_sub(&b->fail_first, 1) > 0)
        r->rc = b->fail_rc;
    else
        atomic_fetch_add(&b->fail_first, 1);
    return ek_future_new(be_resp_poll, be_resp_drop, r, resp);
}

static void be_drop(void *self)
{
    be *b = self;
    be_thread(b);
    atomic_fetch_add(&b->handle_drops, 1);
}

/* Every handle shares the one backend (its counters are atomic). */
static int be_clone(void *self, void **out)
{
    *out = self;
    return EK_OK;
}

static const ek_service_vtable be_vt = {be_poll_ready, be_call, NULL, NULL, be_drop};

static inline ek_service *be_service(be *b)
{
    ek_service *s = NULL;
    assert_int_equal(ek_service_new(&be_vt, b, &s), EK_OK);
    return s;
}
static inline ek_service *be_shareable(be *b)
{
    ek_service *s = NULL;
    assert_int_equal(ek_service_new_shareable(&be_vt, b, be_clone, &s), EK_OK);
    return s;
}

static inline ek_msg *int_msg(int64_t v)
{
    ek_msg *m = NULL;
    assert_int_equal(ek_msg_resp_integer(v, &m), EK_OK);
    return m;
}
static inline int64_t msg_int(ek_msg *m)
{
    int64_t v = -1;
    assert_int_equal(ek_msg_resp_get_integer(m, &v), EK_OK);
    return v;
}

/* A current-thread runtime on the paused test clock. */
static inline ek_runtime *paused_rt(void)
{
    ek_builder *bl = ekt_builder(EK_FLAVOR_CURRENT_THREAD, 0, -1, 0);
    assert_int_equal(ek_builder_set_start_paused(bl, 1), EK_OK);
    ek_runtime *rt = NULL;
    assert_int_equal(ek_runtime_new(bl, &rt), EK_OK);
    ek_builder_free(bl);
    return rt;
}

/* One whole request on svc, driven by ek_block_on: its status; *v its integer. */
static inline int request(ek_runtime *rt, ek_service *svc, int64_t x, int64_t *v)
{
    ek_future *f = NULL;
    assert_int_equal(ek_service_oneshot(svc, int_msg(x), &f), EK_OK);
    void *out = NULL;
    int rc = ek_block_on(rt, f, &out);
    if (rc == EK_OK) {
        if (v) *v = msg_int(out);
        ek_msg_free(out);
    }
    return rc;
}

#endif
