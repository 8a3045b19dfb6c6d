/* sync_util.h - small helpers shared by the sync primitive tests (test_oneshot.c,
 * test_mpsc.c, ...): waiting for a task to report that it is pending, and heap
 * messages whose drops are counted. Spawning and joining: support.h. */
#ifndef EK_TEST_SYNC_UTIL_H
#define EK_TEST_SYNC_UTIL_H

#include "support.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Sleep-poll until *v >= n (another thread or task moves it); fails the test
 * after ~20 s so a lost wake-up shows as a failure, not a hang. */
static inline void st_wait_for(atomic_int *v, int n)
{
    for (long i = 0; atomic_load(v) < n; i++) {
        if (i > 200000) fail_msg("timed out waiting for %d (at %d)", n, atomic_load(v));
        usleep(100);
    }
}

/* Let other threads run for a moment (for "still pending" checks). */
static inline void st_settle(void)
{
    usleep(20 * 1000);
}

/* Heap messages (plain malloc: not counted by the ek allocator) with a count of
 * how many went through the channel's drop function. */
static atomic_int st_msg_drops;
static inline void *st_msg(int v)
{
    int *p = malloc(sizeof *p);
    assert_non_null(p);
    *p = v;
    return p;
}
static inline int st_msg_val(void *m)
{
    return *(int *)m;
}
static inline void st_msg_drop(void *m)
{
    atomic_fetch_add(&st_msg_drops, 1);
    free(m);
}

static inline void st_free_state(void *s)
{
    free(s);
}

#endif
