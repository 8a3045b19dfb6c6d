/* support.h - shared helpers for the cmocka tests. */
#ifndef EK_TEST_SUPPORT_H
#define EK_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ekiden.h"

/* A counting allocator installed through ek_set_allocator: every test checks
 * that nothing is left alive at its end, and fault injection makes the n-th
 * allocation from now fail. */
void ekt_alloc_install(void);
long ekt_alloc_live(void); /* allocations not yet freed */
/* Allocations not yet freed that were made since this test's ekt_setup: what
 * tests compare with an expected count (never ekt_alloc_live against an
 * absolute number, which one earlier failed test would throw off). */
long ekt_alloc_leaked(void);
long ekt_alloc_total(void);        /* allocations since install */
void ekt_alloc_fail_after(long n); /* n-th next allocation fails (0 = the next); -1 never */
/* The same, counting only allocations made by the calling thread. */
void ekt_alloc_fail_here_after(long n);
long ekt_alloc_failures(void); /* injected failures so far */

/* 0 plain, 1 ASan+UBSan, 2 TSan. */
int ekt_sanitizer(void);
/* Scale a stress count down under sanitizers (never to zero). */
long ekt_scale(long n);

/* A builder with the given flavour, workers (0 = default), LIFO slot (-1 =
 * default) and budget (0 = default); asserts every setter succeeds. The caller
 * sets anything else and frees it. */
ek_builder *ekt_builder(int flavor, unsigned workers, int lifo, unsigned budget);
/* A runtime built from ekt_builder(flavor, workers, lifo, budget); asserts success. */
ek_runtime *ekt_rt_with(int flavor, unsigned workers, int lifo, unsigned budget);
/* A runtime with the given flavour and workers (0 = default); asserts success. */
ek_runtime *ekt_rt(int flavor, unsigned workers);
/* Free the runtime and assert nothing allocated since setup is alive any more. */
void ekt_rt_free_checked(ek_runtime *rt);

/* Run `poll` as a heap future on rt via ek_block_on; returns its status. */
int ekt_block_on_fn(ek_runtime *rt, ek_poll_fn poll, void *state, void **out);

/* One runtime metric (EK_METRIC_*), read through ek_runtime_metrics. */
uint64_t ekt_metric(ek_runtime *rt, int key);
/* Poll a metric until it equals want, for at most ~10 s; returns the last value
 * read (the caller asserts it). */
uint64_t ekt_metric_wait(ek_runtime *rt, int key, uint64_t want);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t ekt_now_ms(void);

/* Drop functions: ekt_noop_drop does nothing (for borrowed state);
 * ekt_count_drop adds one to ekt_drops; ekt_count_out_drop adds one to
 * ekt_out_drops and records its argument in ekt_last_out_drop.
 * ekt_reset_drops zeroes the three. */
extern atomic_int ekt_drops, ekt_out_drops;
extern atomic_uintptr_t ekt_last_out_drop;
void ekt_noop_drop(void *s);
void ekt_count_drop(void *s);
void ekt_count_out_drop(void *s);
void ekt_reset_drops(void);

/* Poll functions: ekt_ret_state completes at once with *out = state;
 * ekt_pend_forever never completes and arranges no wake-up (only cancellation
 * or shutdown ends it). */
int ekt_ret_state(void *s, ek_cx *cx, void **out);
int ekt_pend_forever(void *s, ek_cx *cx, void **out);

/* Spawn poll(state) on rt, asserting ek_spawn succeeds; `drop` releases the
 * state (also on abort). Returns the join handle. */
ek_join *ekt_spawn(ek_runtime *rt, ek_poll_fn poll, ek_drop_fn drop, void *state);
/* ek_join_wait, then ek_join_detach; returns the task's status. */
int ekt_join(ek_join *j, void **out);
/* ekt_join(ekt_spawn(rt, poll, ekt_noop_drop, state), out): run a task whose
 * state the caller owns to completion. */
int ekt_spawn_join(ek_runtime *rt, ek_poll_fn poll, void *state, void **out);

/* Setup/teardown for each cmocka test: install the allocator and record the
 * live count; check that the test left nothing more alive. */
int ekt_setup(void **state);
int ekt_teardown(void **state);

#endif
