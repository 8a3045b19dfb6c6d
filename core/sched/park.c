/* park.c - the parker state machine (see park.h).
 *
 * On Linux a thread parked on its condvar sleeps in a futex on `state` itself
 * (EK__PARK_CONDVAR) and unpark is one exchange plus, only if the thread
 * sleeps, one FUTEX_WAKE. A mutex + condvar pair costs three futex calls per
 * park/unpark cycle (wait, signal, and the wake glibc's condvar always does when
 * the woken thread releases the re-acquired mutex); the mpsc contention
 * workloads park and unpark hundreds of times per iteration. Elsewhere the
 * mutex + condvar path is used. */
#include "park.h"

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleep while *addr == val, until deadline_ns (CLOCK_MONOTONIC; 0: forever).
 * May return early (signal, spurious wake): the caller re-checks. */
static void futex_wait(_Atomic int *addr, int val, uint64_t deadline_ns)
{
    struct timespec ts, *tsp = NULL;
    if (deadline_ns) {
        ts.tv_sec = (time_t)(deadline_ns / 1000000000u);
        ts.tv_nsec = (long)(deadline_ns % 1000000000u);
        tsp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
    syscall(SYS_futex, (int *)addr, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, val, tsp, NULL,
            FUTEX_BITSET_MATCH_ANY);
}

static void futex_wake_one(_Atomic int *addr)
{
    syscall(SYS_futex, (int *)addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, NULL, NULL, 0);
}
#endif

int ek__parker_init(ek__parker *p, ek__driver *driver)
{
    atomic_init(&p->state, EK__PARK_EMPTY);
    p->driver = driver;
#ifdef __linux__
    return EK_OK;
#else
    int rc = ek__mutex_init(&p->lock);
    if (rc) return rc;
    rc = ek__cond_init(&p->cond);
    if (rc) ek__mutex_destroy(&p->lock);
    return rc;
#endif
}

void ek__parker_destroy(ek__parker *p)
{
#ifdef __linux__
    EK__UNUSED(p);
#else
    ek__cond_destroy(&p->cond);
    ek__mutex_destroy(&p->lock);
#endif
}

static bool consume_notification(ek__parker *p)
{
    int exp = EK__PARK_NOTIFIED;
    /* acquire: see what the unparker published before notifying. */
    return atomic_compare_exchange_strong_explicit(&p->state, &exp, EK__PARK_EMPTY,
                                                   memory_order_acquire, memory_order_relaxed);
}

bool ek__parker_park(ek__parker *p, bool may_drive, int timeout_ms, int max_events)
{
    if (consume_notification(p)) return false;
    if (may_drive && p->driver && ek__driver_try_lock(p->driver)) {
        int exp = EK__PARK_EMPTY;
        bool turned = false;
        if (atomic_compare_exchange_strong_explicit(&p->state, &exp, EK__PARK_DRIVER,
                                                    memory_order_acq_rel, memory_order_acquire)) {
            ek__driver_turn(p->driver, timeout_ms, max_events);
            atomic_exchange_explicit(&p->state, EK__PARK_EMPTY, memory_order_acquire);
            turned = true;
        } else {
            /* Notified meanwhile. */
            atomic_store_explicit(&p->state, EK__PARK_EMPTY, memory_order_relaxed);
        }
        ek__driver_unlock(p->driver);
        return turned;
    }
    if (timeout_ms == 0) return false;
#ifdef __linux__
    int exp = EK__PARK_EMPTY;
    if (!atomic_compare_exchange_strong_explicit(&p->state, &exp, EK__PARK_CONDVAR,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        /* Notified meanwhile. */
        atomic_store_explicit(&p->state, EK__PARK_EMPTY, memory_order_relaxed);
        return false;
    }
    uint64_t deadline = timeout_ms > 0 ? ek__mono_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    for (;;) {
        futex_wait(&p->state, EK__PARK_CONDVAR, deadline);
        if (consume_notification(p)) return false;
        if (timeout_ms > 0 && ek__mono_ns() >= deadline) {
            /* Timed out: leave (consuming a notification that raced in). */
            atomic_exchange_explicit(&p->state, EK__PARK_EMPTY, memory_order_acquire);
            return false;
        }
    }
#else
    ek__mutex_lock(&p->lock);
    int exp = EK__PARK_EMPTY;
    if (!atomic_compare_exchange_strong_explicit(&p->state, &exp, EK__PARK_CONDVAR,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        atomic_store_explicit(&p->state, EK__PARK_EMPTY, memory_order_relaxed);
        ek__mutex_unlock(&p->lock);
        return false;
    }
    uint64_t deadline = timeout_ms > 0 ? ek__mono_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    for (;;) {
        if (timeout_ms > 0) {
            if (!ek__cond_timedwait(&p->cond, &p->lock, deadline)) {
                /* Timed out: leave unless a notification raced in. */
                atomic_exchange_explicit(&p->state, EK__PARK_EMPTY, memory_order_acquire);
                break;
            }
        } else {
            ek__cond_wait(&p->cond, &p->lock);
        }
        if (consume_notification(p)) break;
    }
    ek__mutex_unlock(&p->lock);
#endif
    return false;
}

void ek__parker_unpark(ek__parker *p)
{
    /* release: what we did before unparking is visible to the parked thread. */
    int prev = atomic_exchange_explicit(&p->state, EK__PARK_NOTIFIED, memory_order_acq_rel);
    switch (prev) {
    case EK__PARK_CONDVAR:
#ifdef __linux__
        futex_wake_one(&p->state);
#else
        /* Lock/unlock so the signal cannot fall between its check and its wait. */
        ek__mutex_lock(&p->lock);
        ek__mutex_unlock(&p->lock);
        ek__cond_signal(&p->cond);
#endif
        break;
    case EK__PARK_DRIVER:
        ek__driver_unpark(p->driver);
        break;
    default:
        break;
    }
}
