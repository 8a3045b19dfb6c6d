/* driver.c - turning the driver: I/O readiness, then timers. */
#include "driver.h"
#include "io.h"

#include <stdio.h>

struct ek__io_release_link {
    struct ek__io *next;
};

int ek__driver_new(ek__time *time, int io_backend, ek__driver **out)
{
    ek__driver *d = ek__calloc(1, sizeof *d);
    if (!d) return EK_ENOMEM;
    int rc = ek__backend_new(io_backend, &d->be);
    if (rc) {
        ek__free(d);
        return rc;
    }
    ek__lock_init(&d->turn_lock);
    ek__lock_init(&d->release_lock);
    atomic_init(&d->release_list, NULL);
    d->time = time;
    *out = d;
    return EK_OK;
}

/* Free every resource released before now. Turn lock held: no turn can still
 * hold an event that points at them (events of earlier turns were all
 * dispatched before that turn ended). */
static void free_released(ek__driver *d)
{
    /* The peek: most turns have nothing to free (driver.h). */
    if (atomic_load_explicit(&d->release_list, memory_order_relaxed) == NULL) return;
    ek__lock_acquire(&d->release_lock);
    struct ek__io *list = atomic_load_explicit(&d->release_list, memory_order_relaxed);
    atomic_store_explicit(&d->release_list, NULL, memory_order_relaxed);
    ek__lock_release(&d->release_lock);
    while (list) {
        struct ek__io *next = *(struct ek__io **)list; /* first field: release link */
        ek__io_free_released(list);
        list = next;
    }
}

void ek__driver_free(ek__driver *d)
{
    if (!d) return;
    free_released(d);
    ek__backend_free(d->be);
    ek__free(d);
}

bool ek__driver_try_lock(ek__driver *d)
{
    return ek__lock_try(&d->turn_lock);
}
void ek__driver_unlock(ek__driver *d)
{
    ek__lock_release(&d->turn_lock);
}

void ek__driver_close(ek__driver *d)
{
    atomic_store_explicit(&d->closed, true, memory_order_release);
}

void ek__driver_unpark(ek__driver *d)
{
    /* Coalesce: only the first waker since the last turn writes the eventfd.
     * seq_cst: pairs with the turn's store so a wake after it is not dropped,
     * and with ek__time_next_expiration's lock-free load (time.c says why). */
    if (!atomic_exchange_explicit(&d->signalled, true, memory_order_seq_cst))
        ek__backend_wake(d->be);
}

static int timeout_for(ek__driver *d, int timeout_ms)
{
    if (timeout_ms == 0 || !d->time) return timeout_ms;
    uint64_t next = ek__time_next_expiration(d->time);
    if (next == UINT64_MAX) return timeout_ms;
    if (ek__time_is_paused(d->time)) {
        /* Paused clock: time does not pass by itself; jump when idle. */
        return ek__time_try_auto_advance(d->time) ? 0 : timeout_ms;
    }
    uint64_t now = ek__time_now(d->time);
    if (next <= now) return 0;
    uint64_t wait = next - now;
    if (wait > INT32_MAX) wait = INT32_MAX;
    if (timeout_ms >= 0 && (uint64_t)timeout_ms < wait) return timeout_ms;
    return (int)wait;
}

/* The backend's poll failed with something other than EINTR (which it reports
 * as 0 events): its own descriptor is bad (EBADF) or its arguments are
 * (EINVAL, EFAULT). No later turn can succeed, and returning would have the
 * worker turn again at once, at 100% CPU, while no I/O or timer is ever
 * delivered. So abort with the reason, as libuv (uv__io_poll), redis
 * (aeApiPoll) and Tokio (the I/O driver's turn) do. */
_Noreturn static void backend_failed(const ek__backend *b, int rc)
{
    char what[96];
    snprintf(what, sizeof what, "%s backend poll failed: %s", ek__backend_name(b), ek_strerror(rc));
    ek__panic(what, __FILE__, __LINE__);
}

void ek__driver_turn(ek__driver *d, int timeout_ms, int max_events)
{
    free_released(d);
    if (max_events < 1) max_events = 1;
    if (max_events > EK__DRIVER_EVENTS) max_events = EK__DRIVER_EVENTS;
    int n = ek__backend_poll(d->be, d->events, max_events, timeout_for(d, timeout_ms));
    if (n < 0) backend_failed(d->be, n);
    uint64_t io = 0;
    for (int i = 0; i < n; i++) {
        if (d->events[i].token == EK__WAKE_TOKEN) {
            ek__backend_clear_wake(d->be);
            /* seq_cst: before the next turn's load of the timer deadline
             * (ek__time_next_expiration: a timer filed meanwhile is seen there,
             * or its filer sees false here and wakes the backend again). */
            atomic_store_explicit(&d->signalled, false, memory_order_seq_cst);
            continue;
        }
        /* A tick per event, not per turn: io.c says why. */
        d->tick = (d->tick + 1) & EK__IO_TICK_MASK;
        ek__io_dispatch(d->events[i].token, d->events[i].ready, d->tick);
        io++;
    }
    if (io) atomic_fetch_add_explicit(&d->io_events, io, memory_order_relaxed);
    if (d->time) ek__time_process(d->time);
}
