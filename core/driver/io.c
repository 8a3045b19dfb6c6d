/*
 * io.c - reactor resources: readiness word, one reader and one writer waker.
 *
 * Lost-wake-up freedom: the driver publishes readiness (CAS on the word) BEFORE
 * it takes the waker lock; a task stores its waker under the lock and re-reads
 * the word AFTER. Either the task sees the new readiness, or the driver finds
 * the waker. Clearing uses the tick so that an edge that arrived after the op
 * observed readiness (and before it hit EAGAIN) is not erased.
 * tests/model/readiness.pml checks this protocol exhaustively with spin, and
 * test_driver injects a dispatch at each of the two windows (ek__io_test_hook).
 *
 * The tick counts events, not turns (driver.c gives every dispatch its own):
 * io_uring can deliver several events for one resource in one turn (a poll and
 * a recv completion, or a completion posted while the turn reads the queue),
 * and an op that observed the first and found nothing must not clear the
 * readiness a later one of the same turn set.
 *
 * Why the tick is 47 bits wide. The clear compares the tick the op observed
 * with the word's: equal means "no event since". It would be fooled if the
 * driver dispatched exactly a multiple of 2^bits events between the op's
 * readiness load and its clear, the last dispatch for this resource landing on
 * the same tick value: the clear would then erase a newer event (a lost
 * wake-up). With 15 bits (Tokio's) that is 32,768 events, which a thread
 * preempted for some tens of milliseconds on a busy machine can sleep through.
 * At 47 bits the driver would have to dispatch 1.4e14 events (tens of ns each
 * at least): more than a month for one thread between two adjacent
 * statements, which no scheduler does. A 64-bit word costs the same CAS on
 * every 64-bit target.
 */
#include "io.h"
#include "driver.h"
#include "../rt.h"
#include "../task/task.h"

#define RD_MASK    EK__IO_RD_MASK
#define TICK_SHIFT EK__IO_TICK_SHIFT
#define TICK_MASK  EK__IO_TICK_MASK
#define SHUTDOWN   EK__IO_SHUTDOWN

/* struct ek__io is in io.h (for the inline fast paths there). */

void (*_Atomic ek__io_test_hook)(ek__io *io, int point);

void ek__io_test_point(ek__io *io, int point)
{
    void (*hook)(ek__io *, int) = atomic_load_explicit(&ek__io_test_hook, memory_order_relaxed);
    if (EK__UNLIKELY(hook != NULL)) hook(io, point);
}

static uint32_t dir_mask(int dir)
{
    return (uint32_t)ek__io_dir_mask(dir);
}

int ek__io_new(ek_runtime *rt, int fd, unsigned flags, ek__io **out)
{
    if (!out || fd < 0) return EK_EINVAL;
    int rc = ek__rt_check(rt);
    if (rc) return rc;
    ek__io *io = ek__calloc(1, sizeof *io);
    if (!io) return EK_ENOMEM;
    ek__lock_init(&io->lock);
    io->drv = ek__rt_driver(rt);
    io->fd = fd;
    const ek__backend_ops *ops = io->drv->be->ops;
    io->direct = ops->stream_recv == NULL && ops->stream_wait == NULL;
    rc = ek__backend_register(io->drv->be, fd, io, flags, &io->breg);
    if (rc == EK__REG_TRY_READ) {
        /* An OR: the driver may have dispatched an event for io already
         * (the registration is live); its tick stays. */
        atomic_fetch_or_explicit(&io->word, EK__READABLE, memory_order_relaxed);
        rc = EK_OK;
    }
    if (rc) {
        ek__free(io);
        return rc;
    }
    *out = io;
    return EK_OK;
}

void ek__io_dispatch(ek__io *io, uint32_t ready, uint64_t tick)
{
    uint64_t cur = atomic_load_explicit(&io->word, memory_order_relaxed);
    for (;;) {
        uint64_t next = (cur & (RD_MASK | SHUTDOWN)) | ready | ((tick & TICK_MASK) << TICK_SHIFT);
        /* release: an op that sees the bits also sees what caused them. */
        if (atomic_compare_exchange_weak_explicit(&io->word, &cur, next, memory_order_acq_rel,
                                                  memory_order_relaxed))
            break;
    }
    ek_waker *r = NULL, *w = NULL;
    ek__lock_acquire(&io->lock);
    if (ready & dir_mask(EK__DIR_READ)) {
        r = io->reader;
        io->reader = NULL;
    }
    if (ready & dir_mask(EK__DIR_WRITE)) {
        w = io->writer;
        io->writer = NULL;
    }
    ek__lock_release(&io->lock);
    if (r) ek_waker_wake(r);
    if (w) ek_waker_wake(w);
}

/* The inline half (io.h) found the word not ready in dir. */
int ek__io_poll_ready_slow(ek__io *io, ek_cx *cx, int dir, uint32_t *ready, uint64_t *tick)
{
    uint64_t mask = dir_mask(dir);
    ek__io_point(io, EK__IO_POINT_BEFORE_WAKER_STORE);
    ek__lock_acquire(&io->lock);
    ek_waker **slot = dir == EK__DIR_READ ? &io->reader : &io->writer;
    if (!*slot || !ek_waker_will_wake(*slot, cx)) {
        ek_waker *old = *slot;
        *slot = ek_cx_waker(cx);
        if (old) ek_waker_drop(old);
    }
    /* The re-load: a dispatch that ran since the check in io.h either left its
     * readiness here or found the waker just stored. */
    uint64_t cur = atomic_load_explicit(&io->word, memory_order_acquire);
    ek__lock_release(&io->lock);
    if (cur & SHUTDOWN) return EK_ECLOSED;
    if (!(cur & mask)) return EK_PENDING;
    if (ready) *ready = (uint32_t)(cur & RD_MASK);
    if (tick) *tick = (cur >> TICK_SHIFT) & TICK_MASK;
    return EK_OK;
}

void ek__io_shutdown(ek__io *io)
{
    atomic_fetch_or_explicit(&io->word, SHUTDOWN, memory_order_acq_rel);
    ek__lock_acquire(&io->lock);
    ek_waker *r = io->reader, *w = io->writer;
    io->reader = io->writer = NULL;
    ek__lock_release(&io->lock);
    if (r) ek_waker_wake(r);
    if (w) ek_waker_wake(w);
}

void ek__io_release(ek__io *io)
{
    if (!io) return;
    ek__io_shutdown(io);
    (void)ek__backend_deregister(io->drv->be, io->fd, io, io->breg);
    ek__driver *d = io->drv;
    ek__lock_acquire(&d->release_lock);
    io->release_next = atomic_load_explicit(&d->release_list, memory_order_relaxed);
    atomic_store_explicit(&d->release_list, io, memory_order_relaxed);
    ek__lock_release(&d->release_lock);
}

void ek__io_free_released(ek__io *io)
{
    /* Wakers were taken by shutdown; a racing poll may have stored one after. */
    if (io->reader) ek_waker_drop(io->reader);
    if (io->writer) ek_waker_drop(io->writer);
    ek__free(io);
}

int ek__io_stream_recv(ek__io *io, void *buf, size_t len, size_t *n)
{
    return ek__backend_stream_recv(io->drv->be, io->breg, buf, len, n);
}

int ek__io_stream_wait(ek__io *io)
{
    return ek__backend_stream_wait(io->drv->be, io->breg);
}

uint64_t ek__io_tick(ek__io *io)
{
    return (atomic_load_explicit(&io->word, memory_order_acquire) >> TICK_SHIFT) & TICK_MASK;
}

uint32_t ek__io_readiness(ek__io *io)
{
    return (uint32_t)(atomic_load_explicit(&io->word, memory_order_acquire) & RD_MASK);
}
