/* test_service.c - the service contract (ekiden/service.h): readiness before
 * call with exact errors, reservations given back by disarm (also of a pending
 * poll_ready), final poll_ready errors, responses outliving their handle in any
 * free order, pending counts, close with a drain deadline on the test clock,
 * oneshot, and a vtable that breaks the rules. */
#include "support.h"

#include <stdbool.h>
#include <stdlib.h>

/* ---- a test service: echoes the request; counts everything ---- */

typedef struct tsvc {
    int pend_first; /* poll_ready pends this many times first (waking itself) */
    int ready_err;  /* poll_ready's error, if not 0 */
    int ready_rc;   /* poll_ready's answer once it stops pending (default EK_OK) */
    bool hold;      /* responses pend until polled with `release` set */
    bool release;
    bool armed; /* a reservation made by poll_ready, not yet called or disarmed */
    int polls, calls, disarms, drops, resp_drops, reserved;
} tsvc;

static int t_poll_ready(void *self, ek_cx *cx)
{
    tsvc *t = self;
    t->polls++;
    if (t->ready_err) return t->ready_err;
    if (t->pend_first > 0) {
        t->pend_first--;
        ek_waker_wake(ek_cx_waker(cx));
        return EK_PENDING;
    }
    if (t->ready_rc) return t->ready_rc;
    t->reserved++;
    t->armed = true;
    return EK_OK;
}

typedef struct tresp {
    tsvc *t;
    ek_msg *msg;
} tresp;

static int tresp_poll(void *state, ek_cx *cx, void **out)
{
    tresp *r = state;
    if (r->t->hold && !r->t->release) return EK_PENDING;
    (void)cx;
    *out = r->msg;
    r->msg = NULL;
    return EK_OK;
}
static void tresp_drop(void *state)
{
    tresp *r = state;
    r->t->resp_drops++;
    r->t->reserved--;
    ek_msg_free(r->msg);
    free(r);
}

static int t_call(void *self, ek_msg *req, ek_future **resp)
{
    tsvc *t = self;
    t->calls++;
    t->armed = false; /* the response holds the reservation now */
    tresp *r = malloc(sizeof *r);
    r->t = t;
    r->msg = req;
    return ek_future_new(tresp_poll, tresp_drop, r, resp);
}
static void t_disarm(void *self)
{
    tsvc *t = self;
    t->disarms++;
    if (t->armed) t->reserved--;
    t->armed = false;
}
static int t_status(void *self)
{
    tsvc *t = self;
    return t->pend_first > 0 ? EK_SERVICE_BUSY : EK_SERVICE_OPEN;
}
static void t_drop(void *self)
{
    ((tsvc *)self)->drops++;
}

static const ek_service_vtable tvt = {t_poll_ready, t_call, t_disarm, t_status, t_drop};

static ek_service *tsvc_new(tsvc *t)
{
    ek_service *svc = NULL;
    assert_int_equal(ek_service_new(&tvt, t, &svc), EK_OK);
    return svc;
}

/* Poll readiness once, in task context, and return what it said. */
typedef struct ready_once {
    ek_service *svc;
    int rc;
} ready_once;
static int ready_once_poll(void *p, ek_cx *cx, void **out)
{
    ready_once *r = p;
    r->rc = ek_service_poll_ready(r->svc, cx);
    *out = NULL;
    return EK_OK;
}
static int poll_ready_once(ek_runtime *rt, ek_service *svc)
{
    ready_once r = {svc, 0};
    assert_int_equal(ekt_block_on_fn(rt, ready_once_poll, &r, NULL), EK_OK);
    return r.rc;
}

/* Await a future to completion; returns its status, *out its result. */
typedef struct await_st {
    ek_future *f;
} await_st;
static int await_poll(void *p, ek_cx *cx, void **out)
{
    return ek_future_poll(((await_st *)p)->f, cx, out);
}
static int await(ek_runtime *rt, ek_future *f, void **out)
{
    await_st a = {f};
    int rc = ekt_block_on_fn(rt, await_poll, &a, out);
    return rc;
}

static ek_msg *req_int(int64_t v)
{
    ek_msg *m;
    assert_int_equal(ek_msg_resp_integer(v, &m), EK_OK);
    return m;
}

/* ------------------------------------------------------------------------ */

static void test_call_without_poll_ready_is_enotready(void **s)
{
    (void)s;
    tsvc t = {0};
    ek_service *svc = tsvc_new(&t);
    ek_future *resp = NULL;
    /* The request is consumed (the teardown finds no leak). */
    assert_int_equal(ek_service_call(svc, req_int(1), &resp), EK_ENOTREADY);
    assert_null(resp);
    assert_int_equal(t.calls, 0);
    ek_service_free(svc);
    assert_int_equal(t.drops, 1);
}

static void test_ready_then_call_returns_response(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    tsvc t = {.pend_first = 2};
    ek_service *svc = tsvc_new(&t);
    assert_int_equal(ek_service_status(svc), EK_SERVICE_BUSY);
    assert_int_equal(poll_ready_once(rt, svc), EK_PENDING);
    assert_int_equal(poll_ready_once(rt, svc), EK_PENDING);
    assert_int_equal(poll_ready_once(rt, svc), EK_OK);
    assert_int_equal(ek_service_status(svc), EK_SERVICE_OPEN);
    /* Ready twice reserves once. */
    assert_int_equal(poll_ready_once(rt, svc), EK_OK);
    assert_int_equal(t.polls, 3);
    assert_int_equal(t.reserved, 1);
    ek_future *resp;
    assert_int_equal(ek_service_call(svc, req_int(7), &resp), EK_OK);
    assert_int_equal(ek_service_pending(svc), 1);
    /* One call per readiness. */
    ek_future *again;
    assert_int_equal(ek_service_call(svc, req_int(8), &again), EK_ENOTREADY);
    void *out = NULL;
    assert_int_equal(await(rt, resp, &out), EK_OK);
    int64_t v;
    assert_int_equal(ek_msg_resp_get_integer(out, &v), EK_OK);
    assert_int_equal(v, 7);
    ek_msg_free(out);
    assert_int_equal(ek_service_pending(svc), 0);
    ek_future_drop(resp);
    assert_int_equal(t.reserved, 0);
    ek_service_free(svc);
    assert_int_equal(t.drops, 1);
    ekt_rt_free_checked(rt);
}

static void test_disarm_gives_back_the_reservation(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    tsvc t = {0};
    ek_service *svc = tsvc_new(&t);
    assert_int_equal(ek_service_disarm(svc), EK_OK); /* nothing reserved: no-op */
    assert_int_equal(t.disarms, 0);
    assert_int_equal(poll_ready_once(rt, svc), EK_OK);
    assert_int_equal(t.reserved, 1);
    assert_int_equal(ek_service_disarm(svc), EK_OK);
    assert_int_equal(t.disarms, 1);
    assert_int_equal(t.reserved, 0);
    assert_int_equal(ek_service_disarm(svc), EK_OK);
    assert_int_equal(t.disarms, 1);
    ek_future *resp;
    assert_int_equal(ek_service_call(svc, req_int(1), &resp), EK_ENOTREADY);
    /* A pending poll_ready may hold a place in a queue: disarm cancels it too. */
    t.pend_first = 1;
    assert_int_equal(poll_ready_once(rt, svc), EK_PENDING);
    assert_int_equal(ek_service_disarm(svc), EK_OK);
    assert_int_equal(t.disarms, 2);
    /* Freeing a ready handle disarms it. */
    t.pend_first = 0;
    assert_int_equal(poll_ready_once(rt, svc), EK_OK);
    ek_service_free(svc);
    assert_int_equal(t.disarms, 3);
    assert_int_equal(t.reserved, 0);
    assert_int_equal(t.drops, 1);
    ekt_rt_free_checked(rt);
}

static void test_poll_ready_error_is_final(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    tsvc t = {.ready_err = EK_ECONNREFUSED};
    ek_service *svc = tsvc_new(&t);
    assert_int_equal(poll_ready_once(rt, svc), EK_ECONNREFUSED);
    assert_int_equal(ek_service_status(svc), EK_SERVICE_CLOSED);
    t.ready_err = 0; /* even if the implementation would recover */
    assert_int_equal(poll_ready_once(rt, svc), EK_ECONNREFUSED);
    assert_int_equal(t.polls, 1);
    ek_future *resp;
    assert_int_equal(ek_service_call(svc, req_int(1), &resp), EK_ENOTREADY);
    ek_service_free(svc);
    ekt_rt_free_checked(rt);
}

static void test_response_outlives_handle_in_any_order(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    for (int order = 0; order < 2; order++) {
        tsvc t = {.hold = true};
        ek_service *svc = tsvc_new(&t);
        ek_future *r1, *r2;
        assert_int_equal(poll_ready_once(rt, svc), EK_OK);
        assert_int_equal(ek_service_call(svc, req_int(1), &r1), EK_OK);
        assert_int_equal(poll_ready_once(rt, svc), EK_OK);
        assert_int_equal(ek_service_call(svc, req_int(2), &r2), EK_OK);
        assert_int_equal(ek_service_pending(svc), 2);
        if (order == 0) {
            ek_service_free(svc);
            /* A stale handle is refused, not used. */
            assert_int_equal(ek_service_status(svc), EK_EINVAL);
            assert_int_equal(t.drops, 0);
            ek_future_drop(r1);
            assert_int_equal(t.drops, 0);
            t.release = true;
            void *out = NULL;
            assert_int_equal(await(rt, r2, &out), EK_OK);
            ek_msg_free(out);
            assert_int_equal(t.drops, 1); /* the last response went: state dropped */
            ek_future_drop(r2);
        } else {
            ek_future_drop(r2);
            ek_future_drop(r1);
            assert_int_equal(ek_service_pending(svc), 0);
            assert_int_equal(t.drops, 0);
            ek_service_free(svc);
        }
        assert_int_equal(t.drops, 1);
        assert_int_equal(t.resp_drops, 2);
        assert_int_equal(t.reserved, 0);
    }
    ekt_rt_free_checked(rt);
}

static void test_clone_of_plain_service_is_enotsup(void **s)
{
    (void)s;
    tsvc t = {0};
    ek_service *svc = tsvc_new(&t), *c = NULL;
    assert_int_equal(ek_service_is_shareable(svc), 0);
    assert_int_equal(ek_service_clone(svc, &c), EK_ENOTSUP);
    assert_null(c);
    assert_int_equal(ek_service_clone(svc, NULL), EK_EINVAL);
    ek_service_free(svc);
}

/* Close: done waits for the in-flight response, which is dropped meanwhile. */
typedef struct close_st {
    ek_future *done, *resp;
    int polls;
} close_st;
static int close_wait_poll(void *p, ek_cx *cx, void **out)
{
    close_st *c = p;
    c->polls++;
    int rc = ek_future_poll(c->done, cx, out);
    if (rc == EK_PENDING && c->resp) {
        ek_future_drop(c->resp); /* completes the last response: wakes us */
        c->resp = NULL;
    }
    return rc;
}

static void test_close_refuses_work_and_drains(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    tsvc t = {.hold = true};
    ek_service *svc = tsvc_new(&t);
    close_st c = {0};
    assert_int_equal(poll_ready_once(rt, svc), EK_OK);
    assert_int_equal(ek_service_call(svc, req_int(1), &c.resp), EK_OK);
    assert_int_equal(poll_ready_once(rt, svc), EK_OK); /* a reservation held at close */
    assert_int_equal(ek_service_close(svc, UINT64_MAX, &c.done), EK_OK);
    assert_int_equal(t.disarms, 1);
    assert_int_equal(ek_service_status(svc), EK_SERVICE_CLOSED);
    assert_int_equal(poll_ready_once(rt, svc), EK_ECLOSED);
    ek_future *r;
    assert_int_equal(ek_service_call(svc, req_int(2), &r), EK_ECLOSED);
    assert_int_equal(ek_service_close(svc, 0, NULL), EK_OK); /* idempotent */
    assert_int_equal(ekt_block_on_fn(rt, close_wait_poll, &c, NULL), EK_OK);
    assert_int_equal(c.polls, 2);
    ek_future_drop(c.done);
    /* A close with nothing in flight completes at once. */
    assert_int_equal(ek_service_close(svc, 10, &c.done), EK_OK);
    c.resp = NULL;
    c.polls = 0;
    assert_int_equal(ekt_block_on_fn(rt, close_wait_poll, &c, NULL), EK_OK);
    assert_int_equal(c.polls, 1);
    ek_future_drop(c.done);
    ek_service_free(svc);
    assert_int_equal(t.drops, 1);
    ekt_rt_free_checked(rt);
}

static void test_close_deadline_cancels_stragglers(void **s)
{
    (void)s;
    ek_builder *b = ekt_builder(EK_FLAVOR_CURRENT_THREAD, 0, -1, 0);
    assert_int_equal(ek_builder_set_start_paused(b, 1), EK_OK);
    ek_runtime *rt = NULL;
    assert_int_equal(ek_runtime_new(b, &rt), EK_OK);
    ek_builder_free(b);
    tsvc t = {.hold = true};
    ek_service *svc = tsvc_new(&t);
    ek_future *resp, *done;
    assert_int_equal(poll_ready_once(rt, svc), EK_OK);
    assert_int_equal(ek_service_call(svc, req_int(1), &resp), EK_OK);
    assert_int_equal(ek_service_close(svc, 250, &done), EK_OK);
    uint64_t t0 = ek_now_ms(rt);
    /* The paused clock jumps to the deadline (nothing else to run). */
    assert_int_equal(await(rt, done, NULL), EK_ETIMEDOUT);
    assert_true(ek_now_ms(rt) - t0 >= 250);
    ek_future_drop(done);
    /* The straggler is cancelled at its next poll: inner dropped. */
    assert_int_equal(t.resp_drops, 0);
    void *out = NULL;
    assert_int_equal(await(rt, resp, &out), EK_ECANCELED);
    assert_int_equal(t.resp_drops, 1);
    ek_future_drop(resp);
    ek_service_free(svc);
    assert_int_equal(t.drops, 1);
    ekt_rt_free_checked(rt);
}

static void test_oneshot_and_its_cancellation(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    tsvc t = {.pend_first = 3};
    ek_service *svc = tsvc_new(&t);
    ek_future *f;
    assert_int_equal(ek_service_oneshot(svc, req_int(5), &f), EK_OK);
    void *out = NULL;
    assert_int_equal(ek_block_on(rt, f, &out), EK_OK);
    int64_t v;
    assert_int_equal(ek_msg_resp_get_integer(out, &v), EK_OK);
    assert_int_equal(v, 5);
    ek_msg_free(out);
    assert_int_equal(t.polls, 4);
    assert_int_equal(t.reserved, 0);
    /* Dropped while waiting for readiness: the queue place is given back. */
    t.pend_first = 1 << 30; /* pends (busily) until the timeout */
    assert_int_equal(ek_service_oneshot(svc, req_int(6), &f), EK_OK);
    await_st a = {f};
    ek_future *wrap;
    assert_int_equal(ek_future_new(await_poll, ekt_noop_drop, &a, &wrap), EK_OK);
    ek_future *to;
    assert_int_equal(ek_timeout(rt, wrap, 5, &to), EK_OK);
    assert_int_equal(ek_block_on(rt, to, NULL), EK_ETIMEDOUT);
    int disarms = t.disarms;
    ek_future_drop(f);
    assert_int_equal(t.disarms, disarms + 1);
    /* The oneshot keeps the state alive past the handle's free. */
    t.pend_first = 1;
    assert_int_equal(ek_service_oneshot(svc, req_int(9), &f), EK_OK);
    ek_service_free(svc);
    assert_int_equal(t.drops, 0);
    assert_int_equal(ek_block_on(rt, f, &out), EK_OK);
    ek_msg_free(out);
    assert_int_equal(t.drops, 1);
    assert_int_equal(ek_service_oneshot(NULL, req_int(1), &f), EK_EINVAL);
    ekt_rt_free_checked(rt);
}

static int bad_ready_positive(void *self, ek_cx *cx)
{
    (void)self;
    (void)cx;
    return 7;
}
static int bad_call_no_future(void *self, ek_msg *req, ek_future **resp)
{
    (void)self;
    ek_msg_free(req);
    (void)resp;
    return EK_OK;
}
static int good_ready(void *self, ek_cx *cx)
{
    (void)self;
    (void)cx;
    return EK_OK;
}

static void test_broken_vtables_and_bad_arguments(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    tsvc t = {0};
    ek_service *svc = NULL;
    ek_service_vtable vt = tvt;
    vt.call = NULL;
    assert_int_equal(ek_service_new(&vt, &t, &svc), EK_EINVAL);
    assert_int_equal(t.drops, 1); /* consumed */
    assert_int_equal(ek_service_new(NULL, &t, &svc), EK_EINVAL);
    assert_int_equal(ek_service_new(&tvt, &t, NULL), EK_EINVAL);
    assert_int_equal(t.drops, 2);
    ekt_alloc_fail_after(0);
    assert_int_equal(ek_service_new(&tvt, &t, &svc), EK_ENOMEM);
    ekt_alloc_fail_after(-1);
    assert_int_equal(t.drops, 3);

    /* poll_ready answering something that is no status: EK_EINVAL, final. */
    ek_service_vtable bad = {bad_ready_positive, t_call, NULL, NULL, NULL};
    assert_int_equal(ek_service_new(&bad, &t, &svc), EK_OK);
    assert_int_equal(poll_ready_once(rt, svc), EK_EINVAL);
    assert_int_equal(ek_service_status(svc), EK_SERVICE_CLOSED);
    ek_service_free(svc);
    /* call "succeeding" without a future: EK_EINVAL. */
    ek_service_vtable bad2 = {good_ready, bad_call_no_future, NULL, NULL, NULL};
    assert_int_equal(ek_service_new(&bad2, &t, &svc), EK_OK);
    assert_int_equal(poll_ready_once(rt, svc), EK_OK);
    ek_future *r = NULL;
    assert_int_equal(ek_service_call(svc, req_int(1), &r), EK_EINVAL);
    /* Bad arguments to a good handle. */
    assert_int_equal(poll_ready_once(rt, svc), EK_OK);
    assert_int_equal(ek_service_call(svc, req_int(1), NULL), EK_EINVAL);
    assert_int_equal(ek_service_call(svc, NULL, &r), EK_EINVAL);
    assert_int_equal(ek_service_call(svc, req_int(1), &r), EK_ENOTREADY); /* disarmed */
    ek_service_free(svc);

    int junk[32] = {0};
    ek_service *j = (ek_service *)junk;
    assert_int_equal(ek_service_poll_ready(j, NULL), EK_EINVAL);
    assert_int_equal(ek_service_call(j, req_int(1), &r), EK_EINVAL);
    assert_int_equal(ek_service_disarm(j), EK_EINVAL);
    assert_int_equal(ek_service_status(NULL), EK_EINVAL);
    assert_int_equal(ek_service_pending(j), EK_EINVAL);
    assert_int_equal(ek_service_close(j, 0, NULL), EK_EINVAL);
    assert_int_equal(ek_service_is_shareable(j), EK_EINVAL);
    ek_service_free(j);
    ek_service_free(NULL);
    ekt_rt_free_checked(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_call_without_poll_ready_is_enotready, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_ready_then_call_returns_response, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_disarm_gives_back_the_reservation, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_poll_ready_error_is_final, ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_response_outlives_handle_in_any_order, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_clone_of_plain_service_is_enotsup, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_close_refuses_work_and_drains, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_close_deadline_cancels_stragglers, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_oneshot_and_its_cancellation, ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_broken_vtables_and_bad_arguments, ekt_setup,
                                        ekt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
