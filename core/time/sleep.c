/*
 * sleep.c - the public time API: sleep, sleep_until, timeout, interval.
 *
 * Each is a thin owner of one ek__timer (time.h): the timer is filed in the
 * wheel on the first poll that finds its deadline ahead (so a sleep created
 * and never awaited costs no lock), and unfiled in O(1) when its owner is
 * dropped. Sleep and timeout are inline heap futures in a runtime cell (rt.h:
 * from the runtime's slab, no lock on the hot path); one allocation each;
 * an interval is one allocation too.
 */
#include "rt.h"
#include "task/future.h"
#include "task/task.h"
#include "time/time.h"

/* ---- sleep ---- */

/* No pointer to the clock of its own (ek__rt_time(rt) finds it): with the
 * 32-byte future header the cell is 96 bytes, where it was 112 (a sleeping
 * task and its sleep take 208 bytes, not 224), and it spans two cache lines
 * at every 16-byte offset instead of two or three. */
typedef struct ek__sleep {
    ek_runtime *rt; /* first: the cell's reference (ek__future_new_cell) */
    ek__timer timer;
} ek__sleep;
_Static_assert(offsetof(ek__sleep, rt) == 0, "ek__future_new_cell finds rt first");
_Static_assert(sizeof(ek__sleep) <= 64, "a sleep's cell is 96 bytes with the future's header");

static int sleep_poll(void *state, ek_cx *cx, void **out)
{
    ek__sleep *s = state;
    int rc = ek_coop_proceed(cx);
    if (rc != EK_OK) return rc;
    rc = ek__timer_poll(ek__rt_time(s->rt), s->rt, &s->timer, cx);
    if (rc == EK_OK && out != NULL) *out = NULL;
    if (rc == EK_PENDING) ek__cx_pend(cx, EK__SITE_SLEEP);
    return rc;
}

/* The reference on rt goes with the cell (ek__future_new_cell). */
static void sleep_drop(void *state)
{
    ek__sleep *s = state;
    /* The cell's reference keeps rt's handle, and so the pointer, readable. */
    ek__timer_cancel(ek__rt_time(s->rt), &s->timer);
}

/* A sleep of the checked runtime rt. */
static int sleep_new(ek_runtime *rt, uint64_t deadline_ms, ek_future **out)
{
    ek__sleep *s;
    ek_future *f;
    /* A cell of rt holding a reference on it (rt.h); every field is written
     * below (no memset). */
    int rc = ek__future_new_cell_uninit(rt, sleep_poll, sleep_drop, sizeof *s, &f, (void **)&s);
    if (rc != EK_OK) return rc;
    ek__timer_init(&s->timer, deadline_ms);
    *out = f;
    return EK_OK;
}

int ek_sleep_until(ek_runtime *rt, uint64_t deadline_ms, ek_future **out)
{
    if (out == NULL) return EK_EINVAL;
    int rc = ek__rt_check(rt);
    if (rc != EK_OK) return rc;
    return sleep_new(rt, deadline_ms, out);
}

int ek_sleep(ek_runtime *rt, uint64_t ms, ek_future **out)
{
    if (out == NULL) return EK_EINVAL;
    int rc = ek__rt_check(rt);
    if (rc != EK_OK) return rc;
    ek__time *t = ek__rt_time(rt);
    /* The deadline counts from now, not from the first poll (as Tokio). */
    return sleep_new(rt, ek__time_deadline_after(t, ms), out);
}

/* ---- timeout ---- */

typedef struct ek__timeout {
    ek_runtime *rt; /* first: the cell's reference (ek__future_new_cell) */
    ek__time *time;
    ek_future *inner; /* NULL once completed or cancelled */
    ek__timer timer;
} ek__timeout;
_Static_assert(offsetof(ek__timeout, rt) == 0, "ek__future_new_cell finds rt first");

/*
 * The inner future first, so that a result ready at the deadline wins. The
 * deadline is then checked without spending cooperative budget: the inner
 * future spent it, and if an inner future that keeps its task busy could use
 * up the budget before the deadline is looked at, the timeout would never fire
 * (Tokio polls its delay with an unconstrained budget for the same reason).
 * This poll pends only when the inner one did, so it cannot spin on its own.
 */
static int timeout_poll(void *state, ek_cx *cx, void **out)
{
    ek__timeout *s = state;
    int rc = ek_future_poll(s->inner, cx, out);
    if (rc != EK_PENDING) {
        ek_future_drop(s->inner);
        s->inner = NULL;
        ek__timer_cancel(s->time, &s->timer);
        return rc;
    }
    rc = ek__timer_poll(s->time, s->rt, &s->timer, cx);
    if (rc == EK_PENDING) {
        ek__cx_pend(cx, EK__SITE_TIMEOUT); /* the inner future's wait first */
        return rc;
    }
    /* Elapsed (or the timer failed): cancel the inner future now, so its
     * resources go before the caller sees the result. */
    ek_future_drop(s->inner);
    s->inner = NULL;
    return rc == EK_OK ? EK_ETIMEDOUT : rc;
}

/* The reference on rt goes with the cell (ek__future_new_cell). */
static void timeout_drop(void *state)
{
    ek__timeout *s = state;
    ek_future_drop(s->inner);
    ek__timer_cancel(s->time, &s->timer);
}

int ek_timeout(ek_runtime *rt, ek_future *inner, uint64_t ms, ek_future **out)
{
    /* Consumes inner in every case (a valid future is dropped on error). */
    if (!EK__CHECK_TAG(inner, EK__TAG_FUTURE)) return EK_EINVAL;
    int rc = out == NULL ? EK_EINVAL : ek__rt_check(rt);
    ek__timeout *s;
    ek_future *f;
    if (rc == EK_OK)
        rc = ek__future_new_cell_uninit(rt, timeout_poll, timeout_drop, sizeof *s, &f, (void **)&s);
    if (rc != EK_OK) {
        ek_future_drop(inner);
        return rc;
    }
    s->time = ek__rt_time(rt);
    s->inner = inner;
    ek__timer_init(&s->timer, ek__time_deadline_after(s->time, ms));
    *out = f;
    return EK_OK;
}

/* ---- interval ---- */

/* A tick observed more than this late counts as missed, and the missed-tick
 * policy applies; smaller lateness is ordinary timer jitter and keeps the
 * schedule (Tokio uses the same 5 ms tolerance). */
#define EK__INTERVAL_LATE_MS 5

struct ek_interval {
    uint32_t tag; /* EK__TAG_INTERVAL */
    int policy;
    ek_runtime *rt;
    ek__time *time;
    uint64_t period;
    ek__timer timer; /* armed for the scheduled time of the next tick */
};

/* The scheduled time of the tick after `tick`, observed at `now`; saturates at
 * the clock's cap (where an interval then ticks at every poll). */
static uint64_t interval_next(const ek_interval *iv, uint64_t tick, uint64_t now)
{
    if (now <= ek__time_add(tick, EK__INTERVAL_LATE_MS)) return ek__time_add(tick, iv->period);
    switch (iv->policy) {
    case EK_MISSED_TICK_DELAY:
        /* Restart the schedule from now. */
        return ek__time_add(now, iv->period);
    case EK_MISSED_TICK_SKIP: {
        /* The first multiple of the period after now, on the original grid. */
        uint64_t periods = (now - tick) / iv->period + 1;
        if (periods > (EK__TIME_MAX_MS - tick) / iv->period) return EK__TIME_MAX_MS;
        return tick + periods * iv->period;
    }
    default: /* EK_MISSED_TICK_BURST: the missed ticks fire one after another. */
        return ek__time_add(tick, iv->period);
    }
}

int ek_interval_new(ek_runtime *rt, uint64_t period_ms, int missed_tick_policy, ek_interval **out)
{
    if (out == NULL || period_ms == 0) return EK_EINVAL;
    if (missed_tick_policy != EK_MISSED_TICK_BURST && missed_tick_policy != EK_MISSED_TICK_DELAY &&
        missed_tick_policy != EK_MISSED_TICK_SKIP)
        return EK_EINVAL;
    int rc = ek__rt_check(rt);
    if (rc != EK_OK) return rc;
    ek_interval *iv = ek__calloc(1, sizeof *iv);
    if (iv == NULL) return EK_ENOMEM;
    iv->tag = EK__TAG_INTERVAL;
    iv->policy = missed_tick_policy;
    iv->rt = rt;
    ek__rt_ref(rt); /* rt was checked */
    iv->time = ek__rt_time(rt);
    iv->period = period_ms;
    /* The first tick is due at once. */
    ek__timer_init(&iv->timer, ek__time_now(iv->time));
    *out = iv;
    return EK_OK;
}

int ek_interval_tick(ek_interval *iv, ek_cx *cx, uint64_t *tick_ms)
{
    if (!EK__CHECK_TAG(iv, EK__TAG_INTERVAL) || cx == NULL) return EK_EINVAL;
    int rc = ek_coop_proceed(cx);
    if (rc != EK_OK) return rc;
    rc = ek__timer_poll(iv->time, iv->rt, &iv->timer, cx);
    if (rc == EK_PENDING) ek__cx_pend(cx, EK__SITE_INTERVAL);
    if (rc != EK_OK) return rc;
    uint64_t tick = iv->timer.deadline;
    ek__timer_reset(iv->time, &iv->timer, interval_next(iv, tick, ek__time_now(iv->time)));
    if (tick_ms != NULL) *tick_ms = tick;
    return EK_OK;
}

void ek_interval_free(ek_interval *iv)
{
    if (!EK__CHECK_TAG(iv, EK__TAG_INTERVAL)) return;
    ek__timer_cancel(iv->time, &iv->timer);
    iv->tag = EK__TAG_DEAD;
    ek_runtime *rt = iv->rt;
    ek__free(iv);
    ek__rt_unref(rt);
}
