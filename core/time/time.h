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
#include "wheel.h"

typedef struct ek__time ek__time;

/* The clock's cap (about 292 years), so that ms * 1e6 (resume's re-basing)
 * cannot overflow. Every time value and deadline saturates here: the paused
 * clock stops at it, and a timer asked for later fires when it is reached. */
#define EK__TIME_MAX_MS (UINT64_MAX / 2 / UINT64_C(1000000))

/* t + ms, saturating at EK__TIME_MAX_MS. */
uint64_t ek__time_add(uint64_t t, uint64_t ms);

int ek__time_new(ek_runtime *rt, bool start_paused, ek__time **out);
void ek__time_free(ek__time *t);
/* Current time in ms on this clock. Any thread. */
uint64_t ek__time_now(ek__time *t);
/* Earliest deadline in the wheel (absolute ms) or UINT64_MAX. Records it as the
 * deadline the driver sleeps until, so that inserting an earlier timer unparks the
 * driver (ek__rt_unpark_driver). Called by the thread about to park. Exact for
 * timers less than 64 ms away; for later ones it may be the start of their
 * coarse wheel slot (earlier, never later): processing then re-files them and
 * the next call is closer. */
uint64_t ek__time_next_expiration(ek__time *t);
/* Fire every entry whose deadline <= now; returns how many fired. */
size_t ek__time_process(ek__time *t);
/* Paused clock that may auto-advance: if paused and nothing inhibits it, set the
 * clock to the next expiration and return true (the caller then processes
 * instead of sleeping). */
bool ek__time_try_auto_advance(ek__time *t);
bool ek__time_is_paused(ek__time *t);
/* Freeze the clock at its current value (no-op if paused). EK_OK. */
int ek__time_pause(ek__time *t);
/* Unfreeze: real time continues from the paused value, no jump (no-op if
 * running); unparks the driver. EK_OK. */
int ek__time_resume(ek__time *t);
/* Move a paused clock forward by ms in one jump (capped at ~292 years), fire
 * what is due, unpark the driver. EK_EINVAL if the clock is running. */
int ek__time_advance(ek__time *t, uint64_t ms);
/* Add delta to the auto-advance inhibit count; reaching 0 unparks the driver. */
void ek__time_inhibit(ek__time *t, int delta);
/* Number of timers currently in the wheel (metric). */
uint64_t ek__time_count(ek__time *t);

/* The deadline `ms` from now: the first tick at which at least `ms` whole
 * milliseconds have passed (rounded up on the real clock; now + ms when paused).
 * Saturates at EK__TIME_MAX_MS. Any thread. */
uint64_t ek__time_deadline_after(ek__time *t, uint64_t ms);

/*
 * A timer, embedded in the future that owns it (sleep, timeout, interval). It is
 * filed in the wheel lazily, by the first ek__timer_poll that finds its deadline
 * still ahead, and fires at most once per arming.
 *
 * `state` is EK__TIMER_IDLE (not filed), EK__TIMER_FILED (in the wheel, `waker`
 * set) or EK__TIMER_FIRED. Transitions IDLE -> FILED (owner) and FILED -> IDLE
 * (owner cancels) and FILED -> FIRED (whoever fires it) happen under the time
 * lock; `waker` is only touched under the lock while FILED. The owner may read
 * `state` without the lock: FIRED is stored with release after the waker has
 * been taken, so an acquire load that sees FIRED may treat the timer as inert.
 */
#define EK__TIMER_IDLE  0
#define EK__TIMER_FILED 1
#define EK__TIMER_FIRED 2
typedef struct ek__timer {
    ek__wheel_entry entry;
    ek_waker *waker;
    uint64_t deadline;
    atomic_int state;
} ek__timer;

/* Arm tm for `deadline` (absolute ms; later than EK__TIME_MAX_MS means
 * EK__TIME_MAX_MS), not filed. Inline: every sleep's creation runs it.
 *
 * Every deadline is at most the clock's cap, which the clock can reach: a
 * deadline beyond it could never be reached, and a paused clock sitting at its
 * cap would then wait for it forever (auto-advance cannot move past the cap). */
static inline void ek__timer_init(ek__timer *tm, uint64_t deadline)
{
    ek__wheel_entry_init(&tm->entry);
    tm->waker = NULL;
    tm->deadline = deadline > EK__TIME_MAX_MS ? EK__TIME_MAX_MS : deadline;
    atomic_init(&tm->state, EK__TIMER_IDLE);
}
/*
 * Poll tm from task context: EK_OK once the deadline has passed (it is then
 * unfiled and holds no waker), else EK_PENDING with the task's waker stored (a
 * waker that still fits is kept, per ek_waker_will_wake) and tm filed.
 * Does not spend cooperative budget (callers do). Errors: EK_ENOMEM (no waker
 * could be cloned; tm is left unfiled), EK_ECLOSED (the runtime is shut down).
 */
int ek__timer_poll(ek__time *t, ek_runtime *rt, ek__timer *tm, ek_cx *cx);
/* Unfile tm if filed and drop its waker; it can be re-armed with
 * ek__timer_reset. Owner only; O(1). */
void ek__timer_cancel(ek__time *t, ek__timer *tm);
/* Cancel, then arm again for `deadline` (clamped as by ek__timer_init). Owner
 * only. */
void ek__timer_reset(ek__time *t, ek__timer *tm, uint64_t deadline);

#endif
