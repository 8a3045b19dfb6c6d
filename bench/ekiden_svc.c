/*
 * ekiden_svc.c - the cost of middleware: a trivial service (its response is the
 * request, ready at once) called bare, and through timeout + retry +
 * concurrency limit (issue 8's stack; goal: the stack costs < 150 ns per call
 * more than the bare service). Each call is the whole contract: poll_ready,
 * call, poll the response to completion, drop it. One task drives the calls
 * (a current-thread runtime), so the figure is the layer's own cost, without
 * scheduling. Time is the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so that a
 * loaded machine (other processes taking the cores) does not inflate it.
 * Public header only.
 *
 * Output: `BENCH svc.<name> <median_ns_per_call> <rounds>` per variant, then the
 * overhead line.
 */
#include "bench_util.h"
#include "ekiden.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CALLS 20000

static int echo_ready(void *self, ek_cx *cx)
{
    (void)self;
    (void)cx;
    return EK_OK;
}

static int echo_resp_poll(void *state, ek_cx *cx, void **out)
{
    (void)cx;
    *out = state;
    return EK_OK;
}

static int echo_call(void *self, ek_msg *req, ek_future **resp)
{
    (void)self;
    /* If the response is never taken its drop frees the request. */
    return ek_future_new(echo_resp_poll, NULL, req, resp);
}

static int echo_clone(void *self, void **out)
{
    *out = self;
    return EK_OK;
}

static const ek_service_vtable echo_vt = {echo_ready, echo_call, NULL, NULL, NULL};

static int never_retry(void *ud, const ek_msg *req, unsigned attempt, int rc, const ek_msg *resp)
{
    (void)ud;
    (void)req;
    (void)attempt;
    (void)resp;
    return rc != EK_OK && attempt < 3;
}

typedef struct loop_st {
    ek_service *svc;
    ek_msg *msg;
    int calls;
    int failed;
} loop_st;

static int loop_poll(void *p, ek_cx *cx, void **out)
{
    loop_st *l = p;
    *out = NULL;
    for (int i = 0; i < l->calls; i++) {
        if (ek_service_poll_ready(l->svc, cx) != EK_OK) goto fail;
        ek_future *f = NULL;
        if (ek_service_call(l->svc, l->msg, &f) != EK_OK) goto fail;
        void *r = NULL;
        int rc = ek_future_poll(f, cx, &r);
        ek_future_drop(f);
        if (rc != EK_OK) goto fail;
        l->msg = r; /* the echo: the same message comes back */
    }
    return EK_OK;
fail:
    l->failed = 1;
    l->msg = NULL;
    return EK_EIO;
}

static void no_drop(void *s)
{
    (void)s;
}

static ek_runtime *rt;

static uint64_t cpu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int run_calls(loop_st *l)
{
    ek_future *f = NULL;
    if (ek_future_new(loop_poll, no_drop, l, &f) != EK_OK) return -1;
    return ek_block_on(rt, f, NULL);
}

static uint64_t measure(const char *name, ek_service *svc, int rounds)
{
    ek_msg *m = NULL;
    if (ek_msg_bytes_copy("PING", 4, &m) != EK_OK) exit(1);
    loop_st l = {svc, m, CALLS, 0};
    if (run_calls(&l) != EK_OK) exit(1); /* warm-up */
    uint64_t *ns = malloc(sizeof *ns * (size_t)rounds);
    for (int r = 0; r < rounds; r++) {
        uint64_t t0 = cpu_now_ns();
        if (run_calls(&l) != EK_OK) {
            fprintf(stderr, "%s failed\n", name);
            exit(1);
        }
        ns[r] = (cpu_now_ns() - t0) / CALLS;
    }
    uint64_t med = bench_median(ns, rounds);
    free(ns);
    ek_msg_free(l.msg);
    printf("BENCH svc.%s %llu %d\n", name, (unsigned long long)med, rounds);
    fflush(stdout);
    return med;
}

int main(int argc, char **argv)
{
    bench_init(argc, argv);
    ek_builder *b = NULL;
    if (ek_builder_new(&b) != EK_OK ||
        ek_builder_set_flavor(b, EK_FLAVOR_CURRENT_THREAD) != EK_OK ||
        ek_runtime_new(b, &rt) != EK_OK)
        return 1;
    ek_builder_free(b);
    int rounds = bench_iters(30);

    ek_service *bare = NULL;
    if (ek_service_new_shareable(&echo_vt, NULL, echo_clone, &bare) != EK_OK) return 1;
    ek_service *inner = NULL, *lim = NULL, *rty = NULL, *stack = NULL;
    if (ek_service_new_shareable(&echo_vt, NULL, echo_clone, &inner) != EK_OK ||
        ek_svc_concurrency_limit(inner, 64, &lim) != EK_OK ||
        ek_svc_retry(rt, lim, NULL, never_retry, NULL, NULL, &rty) != EK_OK ||
        ek_svc_timeout(rt, rty, 1000, &stack) != EK_OK)
        return 1;

    /* Each layer alone, to see where the stack's cost goes. */
    ek_service *one = NULL, *t_only = NULL, *l_only = NULL, *r_only = NULL;
    if (ek_service_new_shareable(&echo_vt, NULL, echo_clone, &one) != EK_OK ||
        ek_svc_timeout(rt, one, 1000, &t_only) != EK_OK)
        return 1;
    if (ek_service_new_shareable(&echo_vt, NULL, echo_clone, &one) != EK_OK ||
        ek_svc_concurrency_limit(one, 64, &l_only) != EK_OK)
        return 1;
    if (ek_service_new_shareable(&echo_vt, NULL, echo_clone, &one) != EK_OK ||
        ek_svc_retry(rt, one, NULL, never_retry, NULL, NULL, &r_only) != EK_OK)
        return 1;

    uint64_t bare_ns = 0, stack_ns = 0;
    if (bench_selected("svc.bare")) bare_ns = measure("bare", bare, rounds);
    if (bench_selected("svc.timeout")) measure("timeout", t_only, rounds);
    if (bench_selected("svc.limit")) measure("limit", l_only, rounds);
    if (bench_selected("svc.retry")) measure("retry", r_only, rounds);
    if (bench_selected("svc.stack")) stack_ns = measure("timeout_retry_limit", stack, rounds);
    if (bare_ns && stack_ns)
        printf("svc: timeout + retry + concurrency limit cost %lld ns per call over the bare "
               "service (%llu vs %llu ns; goal < 150)\n",
               (long long)stack_ns - (long long)bare_ns, (unsigned long long)stack_ns,
               (unsigned long long)bare_ns);
    ek_service_free(bare);
    ek_service_free(stack);
    ek_service_free(t_only);
    ek_service_free(l_only);
    ek_service_free(r_only);
    ek_runtime_free(rt);
    return 0;
}
