/*
 * time.h - the runtime's time source and timer wheel, as the driver sees it.
 *
 * Time is milliseconds since the runtime started (monotonic), or the paused test
 * clock. The wheel (wheel.h) holds entries; this layer adds the lock, the clock,
 * firing (wakers are woken after the lock is released) and driver wake-ups.
 */
#ifndef EK_CORE_TIME_TIME_H
#define EK_CORE_TIME_TIME_H

#include "../common.h"

typedef struct ek__time ek__time;

int ek__time_new(ek_runtime *rt, bool start_paused, ek__time **out);
void ek__time_free(ek__time *t);
/* Current time in ms on this clock. Any thread. */
uint64_t ek__time_now(ek__time *t);
/* Earliest deadline in the wheel (absolute ms) or UINT64_MAX. Records it as the
 * deadline the driver sleeps until, so that inserting an earlier timer unparks the
 * driver (ek__rt_unpark_driver). Called by the thread about to park. */
uint64_t ek__time_next_expiration(ek__time *t);
/* Fire every entry whose deadline <= now; returns how many fired. */
size_t ek__time_process(ek__time *t);
/* Paused clock that may auto-advance: if paused and nothing inhibits it, set the
 * clock to the next expiration and return true (the caller then processes
 * instead of sleeping). */
bool ek__time_try_auto_advance(ek__time *t);
bool ek__time_is_paused(ek__time *t);
int ek__time_pause(ek__time *t);
int ek__time_resume(ek__time *t);
int ek__time_advance(ek__time *t, uint64_t ms);
void ek__time_inhibit(ek__time *t, int delta);
/* Number of timers currently in the wheel (metric). */
uint64_t ek__time_count(ek__time *t);

#endif
