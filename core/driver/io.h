/*
 * io.h - I/O resources registered with the reactor (DESIGN section 4).
 *
 * A resource wraps one non-blocking fd registered edge-triggered for read and
 * write at once. Its 64-bit readiness word packs:
 *   bits 0..15  readiness (EK__READABLE ...), set by the driver, cleared by ops;
 *   bits 16..62 the driver tick of the event that last set readiness (47 bits:
 *               io.c says why a wrap cannot erase a newer event);
 *   bit 63      shutdown (the resource was released: ops get EK_ECLOSED).
 * An op that hits EAGAIN calls ek__io_clear_ready with the tick it observed; the
 * clear is skipped if a newer event arrived in between, so no edge is lost.
 * One reader waker and one writer waker per resource; a second task waiting in
 * the same direction replaces the first (as Tokio's one reader/one writer rule).
 */
#ifndef EK_CORE_DRIVER_IO_H
#define EK_CORE_DRIVER_IO_H

#include "../common.h"
#include "backend.h"
#include "driver.h"

#define EK__READABLE     0x1u
#define EK__WRITABLE     0x2u
#define EK__READ_CLOSED  0x4u  /* peer shut down its write side (EPOLLRDHUP) */
#define EK__WRITE_CLOSED 0x8u  /* EPOLLHUP */
#define EK__IO_ERROR     0x10u /* EPOLLERR */

/* Interest directions for ek__io_poll_ready. READ is satisfied by READABLE,
 * READ_CLOSED, WRITE_CLOSED or IO_ERROR; WRITE by WRITABLE, WRITE_CLOSED or
 * IO_ERROR. */
#define EK__DIR_READ  0
#define EK__DIR_WRITE 1

typedef struct ek__io ek__io;

/* The driver's tick wraps at 47 bits (the width of the word's tick field). */
#define EK__IO_TICK_MASK ((UINT64_C(1) << 47) - 1)

/* The word's fields (see the top of this file). */
#define EK__IO_RD_MASK    UINT64_C(0xffff)
#define EK__IO_TICK_SHIFT 16
#define EK__IO_SHUTDOWN   (UINT64_C(1) << 63)

/* Defined here only so that the readiness fast paths below inline into the
 * socket ops; every field belongs to io.c (the socket layer reads `direct` and
 * `fd`, and touches the rest only through the functions of this header). */
struct ek__io {
    struct ek__io *release_next; /* first field: the driver's release list */
    _Atomic uint64_t word;
    /* Guards reader and writer. A futex word (common.h): it is taken at each
     * dispatch and each waker store, and pthread's pair cost ~70 instructions
     * of an echo round trip's each time. */
    ek__lock lock;
    ek_waker *reader, *writer;
    ek__driver *drv;
    void *breg; /* the backend's handle for fd */
    int fd;
    /* The backend has no stream hooks (epoll): ek__io_stream_recv always
     * answers EK__RECV_DIRECT and ek__io_stream_wait always EK_OK, so a stream
     * read may call recv(2) itself and skip both (sock.c's read fast path). */
    bool direct;
};

/* Register fd (already non-blocking) with rt's reactor; flags EK__REG_*
 * (backend.h: EK__REG_STREAM for a connected stream whose reads all go through
 * ek__io_stream_recv). The fd stays owned by the caller. Errors: EK_EINVAL,
 * EK_ECLOSED, EK_ENOMEM, -errno from epoll_ctl. */
int ek__io_new(ek_runtime *rt, int fd, unsigned flags, ek__io **out);
/* The backend's stream hooks for io's fd (backend.h, ek__backend_stream_recv
 * and ek__backend_stream_wait): same results. Any thread. */
int ek__io_stream_recv(ek__io *io, void *buf, size_t len, size_t *n);
int ek__io_stream_wait(ek__io *io);
/*
 * EK_OK if the resource is ready in direction `dir` (*ready gets the readiness
 * bits, *tick the tick to hand to ek__io_clear_ready); EK_PENDING after arranging
 * that cx's task is woken on the next event in that direction; EK_ECLOSED after
 * ek__io_shutdown. Does not spend budget (callers call ek_coop_proceed first).
 */
static inline int ek__io_poll_ready(ek__io *io, ek_cx *cx, int dir, uint32_t *ready,
                                    uint64_t *tick);
/* Clear `bits` if no event arrived since `tick`. */
static inline void ek__io_clear_ready(ek__io *io, uint32_t bits, uint64_t tick);
/* Mark closed and wake both waiters (they see EK_ECLOSED). Idempotent. */
void ek__io_shutdown(ek__io *io);
/* Shut down, deregister from epoll and free once no driver turn can still refer
 * to it (deferred to the start of the next turn). Close the fd after this. */
void ek__io_release(ek__io *io);

/*
 * Test only: when set, called at the two windows of the lost-wake-up protocol,
 * so that a deterministic test can run a driver dispatch (ek__io_dispatch)
 * exactly there: BEFORE_WAKER_STORE in ek__io_poll_ready, after the readiness
 * check found nothing and before the waker is stored; BEFORE_CLEAR at the start
 * of ek__io_clear_ready, after the op hit EAGAIN and before readiness is
 * cleared. NULL (the default) costs one relaxed load and a branch.
 */
#define EK__IO_POINT_BEFORE_WAKER_STORE 1
#define EK__IO_POINT_BEFORE_CLEAR       2
extern void (*_Atomic ek__io_test_hook)(ek__io *io, int point);
/* Test only: the driver's tick of the event that last set io's readiness. */
uint64_t ek__io_tick(ek__io *io);
/* Test only: io's readiness bits now (EK__READABLE ...). */
uint32_t ek__io_readiness(ek__io *io);

/* ---- the fast paths, inline (io.c has the slow halves) ---- */

/* The readiness bits that satisfy direction dir (constant when dir is). */
static inline uint64_t ek__io_dir_mask(int dir)
{
    return dir == EK__DIR_READ ? (EK__READABLE | EK__READ_CLOSED | EK__WRITE_CLOSED | EK__IO_ERROR)
                               : (EK__WRITABLE | EK__WRITE_CLOSED | EK__IO_ERROR);
}

/* io.c: ek__io_poll_ready once the word said "not ready": store cx's waker
 * under the lock, then look at the word again (the lost-wake-up protocol). */
int ek__io_poll_ready_slow(ek__io *io, ek_cx *cx, int dir, uint32_t *ready, uint64_t *tick);
/* io.c: call the test hook (ek__io_test_hook) at `point`. */
void ek__io_test_point(ek__io *io, int point);
/* The hook's check, inline: one relaxed load and a branch when unset. Relaxed:
 * the hook is set by a test before the resources it watches exist. */
static inline void ek__io_point(ek__io *io, int point)
{
    if (EK__UNLIKELY(atomic_load_explicit(&ek__io_test_hook, memory_order_relaxed) != NULL))
        ek__io_test_point(io, point);
}

static inline int ek__io_poll_ready(ek__io *io, ek_cx *cx, int dir, uint32_t *ready, uint64_t *tick)
{
    /* Relaxed: a one-way flag; the op that misses it by a hair is one that
     * raced the shutdown, and its task is being cancelled anyway. */
    if (EK__UNLIKELY(atomic_load_explicit(&io->drv->closed, memory_order_relaxed)))
        return EK_ECLOSED;
    /* acquire: an op that sees the bits also sees what caused them. */
    uint64_t cur = atomic_load_explicit(&io->word, memory_order_acquire);
    if (EK__UNLIKELY(cur & EK__IO_SHUTDOWN)) return EK_ECLOSED;
    if (EK__UNLIKELY(!(cur & ek__io_dir_mask(dir))))
        return ek__io_poll_ready_slow(io, cx, dir, ready, tick);
    if (ready) *ready = (uint32_t)(cur & EK__IO_RD_MASK);
    if (tick) *tick = (cur >> EK__IO_TICK_SHIFT) & EK__IO_TICK_MASK;
    return EK_OK;
}

static inline void ek__io_clear_ready(ek__io *io, uint32_t bits, uint64_t tick)
{
    ek__io_point(io, EK__IO_POINT_BEFORE_CLEAR);
    uint64_t cur = atomic_load_explicit(&io->word, memory_order_relaxed);
    for (;;) {
        if (((cur >> EK__IO_TICK_SHIFT) & EK__IO_TICK_MASK) != tick) return; /* a newer event */
        uint64_t next = cur & ~((uint64_t)bits & EK__IO_RD_MASK);
        if (next == cur) return;
        if (atomic_compare_exchange_weak_explicit(&io->word, &cur, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
    }
}

#endif
