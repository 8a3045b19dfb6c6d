/*
 * time.c - the runtime's clock and its timer wheel behind one lock.
 *
 * Clock. Real time is (ek__mono_ns() - base_ns) / 1e6: milliseconds since the
 * runtime started. The paused test clock stores its value in `frozen` (as
 * value + 1, so that 0 means "running"). Every write of the clock (pause,
 * resume, advance, auto-advance) happens under the lock, so writers never race;
 * readers (ek__time_now, any thread) are lock-free. Resume re-bases the real
 * clock so that time continues from the paused value instead of jumping.
 *
 * Firing. ek__time_process pops due entries from the wheel under the lock,
 * takes each timer's waker and marks it FIRED, and wakes the collected wakers
 * after releasing the lock, EK__TIME_BATCH at a time: a woken task may run on
 * another thread at once and drop or re-arm its timer, which takes this lock.
 *
 * Driver wake-ups. `sleep_until` is the deadline the driver last said it would
 * sleep until (ek__time_next_expiration). Filing an earlier timer lowers it and
 * unparks the driver so it recomputes its timeout; later timers need nothing.
 * Unparking is coalesced by the driver, so a stale `sleep_until` only costs a
 * spurious wake-up, never a missed one.
 *
 * No timer, no work. `sleep_until` is UINT64_MAX only while no timer has been
 * filed since ek__time_next_expiration last found the wheel empty (every filing
 * lowers it; only that call raises it back, and only to what the wheel says).
 * ek__time_process peeks at it without the lock and returns at once when it
 * reads UINT64_MAX: a driver turn with no timer armed costs one load instead of
 * the lock, the clock read and the wheel's poll (about 170 instructions per echo
 * round trip). A stale read only delays a timer filed concurrently by one
 * turn: the next turn's ek__time_next_expiration reads it under the lock (its
 * timeout is 0 when it is due) and stores what this thread's next peek sees.
 */
#include "time/time.h"

#include "rt.h"

#define EK__TIME_BATCH 32
#define EK__NS_PER_MS  UINT64_C(1000000)

struct ek__time {
    /* A futex word (common.h): every timer's first poll takes it once on the
     * polling worker, and pthread's pair through the wrappers was ~70
     * instructions of the ~90 the lock cost (callgrind, million_timers). */
    ek__lock lock;
    ek__wheel wheel; /* guarded by lock */
    /* Written under lock (relaxed, but the lowering store of timer_file:
     * seq_cst); ek__time_process and ek__time_next_expiration read it without
     * the lock (above and there). */
    _Atomic uint64_t sleep_until;
    ek_runtime *rt;
    /* Real-clock origin. Read relaxed: a reader orders it after `frozen`. */
    _Atomic uint64_t base_ns;
    /* 0 while the clock runs, else the paused value + 1. Stored with release
     * after base_ns and loaded with acquire, so a reader that sees the clock
     * running also sees the base that resume set. */
    _Atomic uint64_t frozen;
    /* > 0: auto-advance inhibited (blocking jobs in flight). */
    atomic_int inhibit;
};

int ek__time_new(ek_runtime *rt, bool start_paused, ek__time **out)
{
    ek__time *t = ek__calloc(1, sizeof *t);
    if (t == NULL) return EK_ENOMEM;
    ek__lock_init(&t->lock);
    ek__wheel_init(&t->wheel, 0);
    atomic_init(&t->sleep_until, UINT64_MAX);
    t->rt = rt;
    atomic_init(&t->base_ns, ek__mono_ns());
    atomic_init(&t->frozen, start_paused ? 1 : 0); /* paused at 0 ms */
    atomic_init(&t->inhibit, 0);
    *out = t;
    return EK_OK;
}

void ek__time_free(ek__time *t)
{
    if (t == NULL) return;
    /* Timers still filed belong to futures that outlive the runtime (a user
     * error, or a sleep awaited on another runtime). Unfile them and mark them
     * FIRED so that dropping them later does not touch this memory. */
    ek__wheel_entry *e;
    while ((e = ek__wheel_pop_any(&t->wheel)) != NULL) {
        ek__timer *tm = EK__CONTAINER_OF(e, ek__timer, entry);
        ek_waker *w = tm->waker;
        tm->waker = NULL;
        atomic_store_explicit(&tm->state, EK__TIMER_FIRED, memory_order_release);
        ek_waker_drop(w);
    }
    ek__free(t);
}

uint64_t ek__time_now(ek__time *t)
{
    uint64_t frozen = atomic_load_explicit(&t->frozen, memory_order_acquire);
    if (frozen != 0) return frozen - 1;
    uint64_t base = atomic_load_explicit(&t->base_ns, memory_order_relaxed);
    /* Unsigned wrap-around is intended: after a resume, base may be "before"
     * the monotonic clock's zero; the difference is still right. */
    return (ek__mono_ns() - base) / EK__NS_PER_MS;
}

uint64_t ek__time_add(uint64_t t, uint64_t ms)
{
    return t >= EK__TIME_MAX_MS || ms >= EK__TIME_MAX_MS - t ? EK__TIME_MAX_MS : t + ms;
}

/* As ek__timer_init clamps (time.h). */
static uint64_t clamp_deadline(uint64_t deadline)
{
    return deadline > EK__TIME_MAX_MS ? EK__TIME_MAX_MS : deadline;
}

uint64_t ek__time_deadline_after(ek__time *t, uint64_t ms)
{
    uint64_t frozen = atomic_load_explicit(&t->frozen, memory_order_acquire);
    if (frozen != 0 || ms == 0) return ek__time_add(ek__time_now(t), ms);
    uint64_t base = atomic_load_explicit(&t->base_ns, memory_order_relaxed);
    uint64_t ns = ek__mono_ns() - base;
    /* Round the start up: the tick at which `ms` whole milliseconds have passed
     * since this very nanosecond (ns is below 2^63: no overflow). */
    uint64_t start = (ns + (EK__NS_PER_MS - 1)) / EK__NS_PER_MS;
    return ek__time_add(start, ms);
}

uint64_t ek__time_next_expiration(ek__time *t)
{
    /* No timer filed since the wheel was last seen empty: answer without the
     * lock (one load where the lock, the wheel's scan and the store were ~35
     * instructions per echo round trip). The invariant that makes it safe
     * against a timer filed concurrently by another thread (timer_file):
     *   filer:  store sleep_until = deadline (seq_cst), then
     *           ek__driver_unpark: exchange signalled = true (seq_cst);
     *   driver: store signalled = false (seq_cst, when it consumed the last
     *           wake), then this load of sleep_until (seq_cst), then sleeps.
     * In the single total order of seq_cst operations either the filer's
     * exchange comes after the driver's store, so it sees false and writes the
     * backend's wake (the driver's sleep returns at once and it recomputes), or
     * it comes before, and then so does the filer's store of sleep_until, which
     * this load therefore sees: never both missed (a Dekker pair). */
    if (atomic_load_explicit(&t->sleep_until, memory_order_seq_cst) == UINT64_MAX)
        return UINT64_MAX;
    ek__lock_acquire(&t->lock);
    uint64_t next = ek__wheel_next_expiration(&t->wheel);
    atomic_store_explicit(&t->sleep_until, next, memory_order_relaxed);
    ek__lock_release(&t->lock);
    return next;
}

static void wake_all(ek_waker **batch, size_t n)
{
    for (size_t i = 0; i < n; i++) ek_waker_wake(batch[i]);
}

size_t ek__time_process(ek__time *t)
{
    /* Nothing filed since the wheel was last seen empty (top of the file). */
    if (atomic_load_explicit(&t->sleep_until, memory_order_relaxed) == UINT64_MAX) return 0;
    ek_waker *batch[EK__TIME_BATCH];
    size_t fired = 0;
    uint64_t now = ek__time_now(t);
    ek__lock_acquire(&t->lock);
    for (;;) {
        size_t n = 0;
        ek__wheel_entry *e = NULL;
        while (n < EK__TIME_BATCH && (e = ek__wheel_poll(&t->wheel, now)) != NULL) {
            ek__timer *tm = EK__CONTAINER_OF(e, ek__timer, entry);
            batch[n++] = tm->waker;
            tm->waker = NULL;
            /* Release: the owner's acquire load of FIRED may then skip the lock
             * and rely on the waker having been taken. */
            atomic_store_explicit(&tm->state, EK__TIMER_FIRED, memory_order_release);
        }
        fired += n;
        ek__lock_release(&t->lock);
        wake_all(batch, n);
        if (n < EK__TIME_BATCH) break;
        ek__lock_acquire(&t->lock);
    }
    return fired;
}

bool ek__time_try_auto_advance(ek__time *t)
{
    if (atomic_load_explicit(&t->frozen, memory_order_acquire) == 0) return false;
    /* Acquire pairs with the release decrement in ek__time_inhibit: what a
     * blocking job did before ending its inhibition is visible here. */
    if (atomic_load_explicit(&t->inhibit, memory_order_acquire) > 0) return false;
    bool advanced = false;
    ek__lock_acquire(&t->lock);
    uint64_t frozen = atomic_load_explicit(&t->frozen, memory_order_relaxed);
    uint64_t next = ek__wheel_next_expiration(&t->wheel);
    if (frozen != 0 && next != UINT64_MAX) {
        uint64_t now = frozen - 1;
        /* Deadlines never exceed the cap (clamp_deadline), so neither does
         * the clock. Already due: the caller processes. */
        if (next > now) atomic_store_explicit(&t->frozen, next + 1, memory_order_release);
        advanced = true;
    }
    ek__lock_release(&t->lock);
    return advanced;
}

bool ek__time_is_paused(ek__time *t)
{
    return atomic_load_explicit(&t->frozen, memory_order_acquire) != 0;
}

int ek__time_pause(ek__time *t)
{
    ek__lock_acquire(&t->lock);
    if (atomic_load_explicit(&t->frozen, memory_order_relaxed) == 0) {
        uint64_t now = ek__time_now(t);
        if (now > EK__TIME_MAX_MS) now = EK__TIME_MAX_MS;
        atomic_store_explicit(&t->frozen, now + 1, memory_order_release);
    }
    ek__lock_release(&t->lock);
    return EK_OK;
}

int ek__time_resume(ek__time *t)
{
    ek__lock_acquire(&t->lock);
    uint64_t frozen = atomic_load_explicit(&t->frozen, memory_order_relaxed);
    if (frozen != 0) {
        atomic_store_explicit(&t->base_ns, ek__mono_ns() - (frozen - 1) * EK__NS_PER_MS,
                              memory_order_relaxed);
        atomic_store_explicit(&t->frozen, 0, memory_order_release);
    }
    ek__lock_release(&t->lock);
    /* A driver parked without a timeout (paused, nothing to auto-advance to)
     * must now sleep until the next real deadline. */
    if (frozen != 0) ek__rt_unpark_driver(t->rt);
    return EK_OK;
}

int ek__time_advance(ek__time *t, uint64_t ms)
{
    ek__lock_acquire(&t->lock);
    uint64_t frozen = atomic_load_explicit(&t->frozen, memory_order_relaxed);
    if (frozen == 0) {
        ek__lock_release(&t->lock);
        return EK_EINVAL;
    }
    uint64_t now = ek__time_add(frozen - 1, ms);
    atomic_store_explicit(&t->frozen, now + 1, memory_order_release);
    ek__lock_release(&t->lock);
    /* One jump: everything due by the new time fires now, in deadline order. */
    ek__time_process(t);
    ek__rt_unpark_driver(t->rt);
    return EK_OK;
}

void ek__time_inhibit(ek__time *t, int delta)
{
    /* Release on the decrement: see ek__time_try_auto_advance. */
    int before = atomic_fetch_add_explicit(&t->inhibit, delta, memory_order_acq_rel);
    EK__ASSERT(before + delta >= 0);
    /* The last inhibitor gone: a driver parked on a paused clock may now
     * auto-advance. */
    if (before + delta == 0 && delta < 0 && ek__time_is_paused(t)) ek__rt_unpark_driver(t->rt);
}

uint64_t ek__time_count(ek__time *t)
{
    ek__lock_acquire(&t->lock);
    uint64_t n = ek__wheel_count(&t->wheel);
    ek__lock_release(&t->lock);
    return n;
}

/* ---- timers ---- */

/* File an IDLE timer of the checked runtime rt (ek__timer_poll checked it);
 * EK_OK if its deadline passed as far as the wheel knows. */
static int timer_file(ek__time *t, ek_runtime *rt, ek__timer *tm, ek_cx *cx)
{
    ek_waker *w = ek_cx_waker(cx);
    if (w == NULL) return EK_ENOMEM;
    bool unpark = false;
    ek__lock_acquire(&t->lock);
    if (!ek__wheel_insert(&t->wheel, &tm->entry, tm->deadline)) {
        ek__lock_release(&t->lock);
        ek_waker_drop(w);
        atomic_store_explicit(&tm->state, EK__TIMER_FIRED, memory_order_relaxed);
        return EK_OK;
    }
    tm->waker = w;
    /* Relaxed: the owner (this thread) is the only lock-free reader of FILED;
     * everyone else reads the state under the lock. */
    atomic_store_explicit(&tm->state, EK__TIMER_FILED, memory_order_relaxed);
    if (tm->deadline < atomic_load_explicit(&t->sleep_until, memory_order_relaxed)) {
        /* seq_cst: the lock-free answer of ek__time_next_expiration relies on it. */
        atomic_store_explicit(&t->sleep_until, tm->deadline, memory_order_seq_cst);
        unpark = true;
    }
    ek__lock_release(&t->lock);
    if (unpark) ek__rt_unpark_driver(rt);
    return EK_PENDING;
}

/* Keep the stored waker if it still wakes this task, else replace it. */
static int timer_refresh_waker(ek__time *t, ek__timer *tm, ek_cx *cx)
{
    ek_waker *old = NULL;
    int rc = EK_PENDING;
    ek__lock_acquire(&t->lock);
    if (atomic_load_explicit(&tm->state, memory_order_relaxed) == EK__TIMER_FIRED) {
        rc = EK_OK;
    } else if (!ek_waker_will_wake(tm->waker, cx)) {
        ek_waker *w = ek_cx_waker(cx);
        if (w == NULL) {
            /* Without a waker the timer could never wake anyone: unfile it. */
            ek__wheel_remove(&t->wheel, &tm->entry);
            atomic_store_explicit(&tm->state, EK__TIMER_IDLE, memory_order_relaxed);
            rc = EK_ENOMEM;
        }
        old = tm->waker;
        tm->waker = w;
    }
    ek__lock_release(&t->lock);
    /* Outside the lock: the last reference to a task may free it. */
    ek_waker_drop(old);
    return rc;
}

int ek__timer_poll(ek__time *t, ek_runtime *rt, ek__timer *tm, ek_cx *cx)
{
    /* After shutdown a timer answers EK_ECLOSED (its owner holds rt alive). */
    int rc = ek__rt_check(rt);
    if (EK__UNLIKELY(rc != EK_OK)) return rc;
    int state = atomic_load_explicit(&tm->state, memory_order_acquire);
    if (state == EK__TIMER_FIRED) return EK_OK;
    if (ek__time_now(t) >= tm->deadline) {
        /* Due but not yet fired by the driver: complete now rather than wait
         * for its next turn. */
        ek__timer_cancel(t, tm);
        atomic_store_explicit(&tm->state, EK__TIMER_FIRED, memory_order_relaxed);
        return EK_OK;
    }
    if (state == EK__TIMER_IDLE) return timer_file(t, rt, tm, cx);
    return timer_refresh_waker(t, tm, cx);
}

void ek__timer_cancel(ek__time *t, ek__timer *tm)
{
    /* Acquire: if it fired, the waker was taken (see ek__time_process). IDLE
     * and FIRED timers are not in the wheel: no lock, no access to t, which
     * keeps dropping a future after ek__time_free harmless. */
    if (atomic_load_explicit(&tm->state, memory_order_acquire) != EK__TIMER_FILED) {
        atomic_store_explicit(&tm->state, EK__TIMER_IDLE, memory_order_relaxed);
        return;
    }
    ek_waker *w = NULL;
    ek__lock_acquire(&t->lock);
    if (atomic_load_explicit(&tm->state, memory_order_relaxed) == EK__TIMER_FILED) {
        ek__wheel_remove(&t->wheel, &tm->entry);
        w = tm->waker;
        tm->waker = NULL;
    }
    atomic_store_explicit(&tm->state, EK__TIMER_IDLE, memory_order_relaxed);
    ek__lock_release(&t->lock);
    ek_waker_drop(w);
}

void ek__timer_reset(ek__time *t, ek__timer *tm, uint64_t deadline)
{
    ek__timer_cancel(t, tm);
    tm->deadline = clamp_deadline(deadline);
}
