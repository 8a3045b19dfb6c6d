/* support.h - shared helpers for the cmocka tests. */
#ifndef EK_TEST_SUPPORT_H
#define EK_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ekiden.h"

/* A counting allocator installed through ek_set_allocator: every test checks
 * that nothing is left alive at its end, and fault injection makes the n-th
 * allocation from now fail. */
void ekt_alloc_install(void);
long ekt_alloc_live(void);         /* allocations not yet freed */
long ekt_alloc_total(void);        /* allocations since install */
void ekt_alloc_fail_after(long n); /* n-th next allocation fails (0 = the next); -1 never */
long ekt_alloc_failures(void);     /* injected failures so far */

/* 0 plain, 1 ASan+UBSan, 2 TSan. */
int ekt_sanitizer(void);
/* Scale a stress count down under sanitizers (never to zero). */
long ekt_scale(long n);

/* A runtime with the given flavour and workers (0 = default); asserts success. */
ek_runtime *ekt_rt(int flavor, unsigned workers);
/* Free the runtime and assert the allocator holds nothing any more. */
void ekt_rt_free_checked(ek_runtime *rt);

/* Run `poll` as a heap future on rt via ek_block_on; returns its status. */
int ekt_block_on_fn(ek_runtime *rt, ek_poll_fn poll, void *state, void **out);

/* Setup/teardown for cmocka groups: install the allocator; check no leaks. */
int ekt_setup(void **state);
int ekt_teardown(void **state);

#endif
