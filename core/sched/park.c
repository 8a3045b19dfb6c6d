/* park.c - the parker state machine (see park.h). */
#include "park.h"

int ek__parker_init(ek__parker *p, ek__driver *driver)
{
    atomic_init(&p->state, EK__PARK_EMPTY);
    p->driver = driver;
    int rc = ek__mutex_init(&p->lock);
    if (rc) return rc;
    rc = ek__cond_init(&p->cond);
    if (rc) ek__mutex_destroy(&p->lock);
    return rc;
}

void ek__parker_destroy(ek__parker *p)
{
    ek__cond_destroy(&p->cond);
    ek__mutex_destroy(&p->lock);
}

static bool consume_notification(ek__parker *p)
{
    int exp = EK__PARK_NOTIFIED;
    /* acquire: see what the unparker published before notifying. */
    return atomic_compare_exchange_strong_explicit(&p->state, &exp, EK__PARK_EMPTY,
                                                   memory_order_acquire, memory_order_relaxed);
}

void ek__parker_park(ek__parker *p, bool may_drive, int timeout_ms)
{
    if (consume_notification(p)) return;
    if (may_drive && p->driver && ek__driver_try_lock(p->driver)) {
        int exp = EK__PARK_EMPTY;
        if (atomic_compare_exchange_strong_explicit(&p->state, &exp, EK__PARK_DRIVER,
                                                    memory_order_acq_rel, memory_order_acquire)) {
            ek__driver_turn(p->driver, timeout_ms);
            atomic_exchange_explicit(&p->state, EK__PARK_EMPTY, memory_order_acquire);
        } else {
            /* Notified meanwhile. */
            atomic_store_explicit(&p->state, EK__PARK_EMPTY, memory_order_relaxed);
        }
        ek__driver_unlock(p->driver);
        return;
    }
    if (timeout_ms == 0) return;
    ek__mutex_lock(&p->lock);
    int exp = EK__PARK_EMPTY;
    if (!atomic_compare_exchange_strong_explicit(&p->state, &exp, EK__PARK_CONDVAR,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        atomic_store_explicit(&p->state, EK__PARK_EMPTY, memory_order_relaxed);
        ek__mutex_unlock(&p->lock);
        return;
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
}

void ek__parker_unpark(ek__parker *p)
{
    /* release: what we did before unparking is visible to the parked thread. */
    int prev = atomic_exchange_explicit(&p->state, EK__PARK_NOTIFIED, memory_order_acq_rel);
    switch (prev) {
    case EK__PARK_CONDVAR:
        /* Lock/unlock so the signal cannot fall between its check and its wait. */
        ek__mutex_lock(&p->lock);
        ek__mutex_unlock(&p->lock);
        ek__cond_signal(&p->cond);
        break;
    case EK__PARK_DRIVER:
        ek__driver_unpark(p->driver);
        break;
    default:
        break;
    }
}
