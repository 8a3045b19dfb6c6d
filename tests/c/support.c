#include "support.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static atomic_long live, total, fail_at = -1, failures;
/* Allocations alive when the current test started (see ekt_setup). */
static atomic_long baseline;

/* Injection counting the calling thread's allocations only: a failure armed
 * inside a task on a worker cannot be consumed by another thread's allocation
 * (say a concurrent ek_join_wait's parker on the test thread). */
static _Thread_local long here_count, here_fail_at = -1;

static int should_fail(void)
{
    long n = atomic_fetch_add_explicit(&total, 1, memory_order_relaxed);
    long f = atomic_load_explicit(&fail_at, memory_order_relaxed);
    long h = here_count++;
    if ((f >= 0 && n == f) || (here_fail_at >= 0 && h == here_fail_at)) {
        if (h == here_fail_at) here_fail_at = -1;
        atomic_fetch_add_explicit(&failures, 1, memory_order_relaxed);
        return 1;
    }
    return 0;
}

static void *t_malloc(size_t n)
{
    if (should_fail()) return NULL;
    void *p = malloc(n);
    if (p) atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return p;
}
static void *t_calloc(size_t c, size_t n)
{
    if (should_fail()) return NULL;
    void *p = calloc(c, n);
    if (p) atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return p;
}
static void *t_realloc(void *p, size_t n)
{
    if (p == NULL) return t_malloc(n);
    if (should_fail()) return NULL;
    return realloc(p, n);
}
static void t_free(void *p)
{
    if (p) atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
    free(p);
}

void ekt_alloc_install(void)
{
    assert_int_equal(ek_set_allocator(t_malloc, t_realloc, t_calloc, t_free), EK_OK);
}
long ekt_alloc_live(void)
{
    return atomic_load(&live);
}
long ekt_alloc_leaked(void)
{
    return atomic_load(&live) - atomic_load(&baseline);
}
long ekt_alloc_total(void)
{
    return atomic_load(&total);
}
long ekt_alloc_failures(void)
{
    return atomic_load(&failures);
}
void ekt_alloc_fail_here_after(long n)
{
    here_fail_at = n < 0 ? -1 : here_count + n;
}

void ekt_alloc_fail_after(long n)
{
    atomic_store(&fail_at, n < 0 ? -1 : atomic_load(&total) + n);
}

int ekt_sanitizer(void)
{
#if defined(EK_SANITIZER)
    return EK_SANITIZER;
#else
    return 0;
#endif
}

long ekt_scale(long n)
{
    long d = ekt_sanitizer() == 0 ? 1 : ekt_sanitizer() == 1 ? 10 : 20;
    long r = n / d;
    return r > 0 ? r : 1;
}

ek_builder *ekt_builder(int flavor, unsigned workers, int lifo, unsigned budget)
{
    ek_builder *b = NULL;
    assert_int_equal(ek_builder_new(&b), EK_OK);
    assert_int_equal(ek_builder_set_flavor(b, flavor), EK_OK);
    if (workers) assert_int_equal(ek_builder_set_worker_threads(b, workers), EK_OK);
    if (lifo >= 0) assert_int_equal(ek_builder_set_lifo_slot(b, lifo), EK_OK);
    if (budget) assert_int_equal(ek_builder_set_budget(b, budget), EK_OK);
    return b;
}

ek_runtime *ekt_rt_with(int flavor, unsigned workers, int lifo, unsigned budget)
{
    ek_builder *b = ekt_builder(flavor, workers, lifo, budget);
    ek_runtime *rt = NULL;
    assert_int_equal(ek_runtime_new(b, &rt), EK_OK);
    ek_builder_free(b);
    return rt;
}

ek_runtime *ekt_rt(int flavor, unsigned workers)
{
    return ekt_rt_with(flavor, workers, -1, 0);
}

void ekt_rt_free_checked(ek_runtime *rt)
{
    ek_runtime_free(rt);
    assert_int_equal(ekt_alloc_leaked(), 0);
}

int ekt_block_on_fn(ek_runtime *rt, ek_poll_fn poll, void *state, void **out)
{
    ek_future *f = NULL;
    int rc = ek_future_new(poll, ekt_noop_drop, state, &f);
    if (rc != EK_OK) return rc;
    return ek_block_on(rt, f, out);
}

uint64_t ekt_metric(ek_runtime *rt, int key)
{
    uint64_t v[EK_METRIC_COUNT];
    assert_int_equal(ek_runtime_metrics(rt, v, EK_METRIC_COUNT), EK_METRIC_COUNT);
    return v[key];
}

uint64_t ekt_metric_wait(ek_runtime *rt, int key, uint64_t want)
{
    uint64_t v = 0;
    for (int i = 0; i < 5000; i++) {
        v = ekt_metric(rt, key);
        if (v == want) break;
        usleep(2000);
    }
    return v;
}

uint64_t ekt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

atomic_int ekt_drops, ekt_out_drops;
atomic_uintptr_t ekt_last_out_drop;

void ekt_noop_drop(void *s)
{
    (void)s;
}
void ekt_count_drop(void *s)
{
    (void)s;
    atomic_fetch_add(&ekt_drops, 1);
}
void ekt_count_out_drop(void *s)
{
    atomic_store(&ekt_last_out_drop, (uintptr_t)s);
    atomic_fetch_add(&ekt_out_drops, 1);
}
void ekt_reset_drops(void)
{
    atomic_store(&ekt_drops, 0);
    atomic_store(&ekt_out_drops, 0);
    atomic_store(&ekt_last_out_drop, 0);
}

int ekt_ret_state(void *s, ek_cx *cx, void **out)
{
    (void)cx;
    *out = s;
    return EK_OK;
}
int ekt_pend_forever(void *s, ek_cx *cx, void **out)
{
    (void)s;
    (void)cx;
    (void)out;
    return EK_PENDING;
}

ek_join *ekt_spawn(ek_runtime *rt, ek_poll_fn poll, ek_drop_fn drop, void *state)
{
    ek_join *j = NULL;
    assert_int_equal(ek_spawn(rt, poll, drop, state, NULL, &j), EK_OK);
    return j;
}
int ekt_join(ek_join *j, void **out)
{
    int rc = ek_join_wait(j, out);
    ek_join_detach(j);
    return rc;
}
int ekt_spawn_join(ek_runtime *rt, ek_poll_fn poll, void *state, void **out)
{
    return ekt_join(ekt_spawn(rt, poll, ekt_noop_drop, state), out);
}

int ekt_setup(void **state)
{
    (void)state;
    ekt_alloc_install();
    ekt_alloc_fail_after(-1);
    /* A test that failed earlier (an assertion longjmps out of it) may have left
     * allocations behind; they are its failure, not every later test's. */
    atomic_store(&baseline, atomic_load(&live));
    return 0;
}

int ekt_teardown(void **state)
{
    (void)state;
    ekt_alloc_fail_after(-1);
    if (ekt_alloc_leaked() != 0) {
        fprintf(stderr, "leak: %ld allocations alive after test\n", ekt_alloc_leaked());
        return -1;
    }
    return 0;
}
