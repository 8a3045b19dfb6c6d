/*
 * backend.h - the private contract a reactor backend implements (epoll.c and
 * uring.c on Linux; kqueue.c would be one more file). Like redis's aeApi*:
 * create, register, deregister, poll with timeout, wake, name, free, as a table
 * of functions so that the backend is chosen when the runtime is built
 * (ek_builder_set_io_backend, EKIDEN_IO_BACKEND; backend.c).
 *
 * Every fd is registered once for read and write readiness, edge-triggered, with
 * an opaque token (the ek__io pointer); registration hands back an opaque
 * handle (the backend's record of the fd, NULL on epoll) that the stream-read
 * hooks below take. The backend also owns the cross-thread
 * wake-up channel (an eventfd on Linux): ek__backend_wake may be called from any
 * thread; its wake-ups are delivered as an event with token EK__WAKE_TOKEN.
 *
 * Short reads (what sock.c's stream reads rely on to skip the read after a
 * short one, Tokio's rule): after a stream read that returned fewer bytes
 * than asked (not 0), the caller may clear READABLE (with the tick it observed
 * before the read, io.h) and wait for an event instead of reading again, once
 * ek__backend_stream_wait returned EK_OK. That call is the backend's promise
 * that every byte arriving from then on brings a READABLE event:
 *   - epoll: always (EPOLLET posts an event per arrival, not per empty-to-
 *     non-empty change); stream_wait is a no-op;
 *   - io_uring, readiness streams: the same (multishot poll is edge-triggered
 *     like EPOLLET);
 *   - io_uring, ring reads: only while the stream's multishot recv (or its
 *     one-shot read poll) is armed. It is armed by stream_wait, which a read
 *     that got EAGAIN used to reach; a direct recv(2) that was short never got
 *     there, and a caller that skipped the next read then waited forever (the
 *     hang two session-3 helpers saw). So stream_wait arms it (a syscall only
 *     if none is armed), or answers EK__RECV_AGAIN when bytes, the end or an
 *     error are already queued (the caller must not clear then).
 *
 * Memory rule (what io.c relies on): after ek__backend_deregister(fd, token)
 * returns, no poll that STARTS later reports `token` again. A poll that was
 * already running may still report it; io.c frees the token only at the start of
 * the next driver turn.
 */
#ifndef EK_CORE_DRIVER_BACKEND_H
#define EK_CORE_DRIVER_BACKEND_H

#include "../common.h"

typedef struct ek__backend ek__backend;

/* Events taken from the backend per driver turn (Tokio's and mio's default). */
#define EK__DRIVER_EVENTS 1024

typedef struct ek__event {
    void *token;
    uint32_t ready; /* EK__READABLE | EK__WRITABLE | EK__READ_CLOSED | ... (io.h) */
} ek__event;

#define EK__WAKE_TOKEN ((void *)0)

/* Registration flags. EK__REG_STREAM: a connected stream socket whose reads all
 * go through ek__backend_stream_recv (sock.c's ek__sock_read): a completion
 * backend may then take its bytes itself (io_uring: multishot recv into
 * provided buffers) instead of reporting read readiness. */
#define EK__REG_STREAM 1u

/* What register may return besides EK_OK and errors: the fd is a stream
 * whose reads the backend serves, and nothing will report it readable until a
 * read has tried (its EAGAIN arms the backend's receive): the caller starts it
 * out readable. */
#define EK__REG_TRY_READ 1

/* ek__backend_stream_recv / _wait results besides EK_OK and errors. */
#define EK__RECV_WOULD_BLOCK EK_PENDING /* nothing yet: a READABLE event will come */
#define EK__RECV_DIRECT      2          /* read the fd yourself (recv(2)) */
#define EK__RECV_AGAIN       3          /* bytes (or the end) came meanwhile: recv again */

typedef struct ek__backend_ops {
    const char *name;
    int kind; /* EK_IO_BACKEND_EPOLL, EK_IO_BACKEND_URING */
    int (*create)(ek__backend **out);
    void (*destroy)(ek__backend *b);
    int (*reg)(ek__backend *b, int fd, void *token, unsigned flags, void **handle);
    int (*dereg)(ek__backend *b, int fd, void *token, void *handle);
    int (*poll)(ek__backend *b, ek__event *events, int n, int timeout_ms);
    void (*wake)(ek__backend *b);
    void (*clear_wake)(ek__backend *b);
    /* Optional (NULL: every read is direct). */
    int (*stream_recv)(ek__backend *b, void *handle, void *buf, size_t len, size_t *n);
    int (*stream_wait)(ek__backend *b, void *handle);
} ek__backend_ops;

/* Every backend's state starts with this. */
struct ek__backend {
    const ek__backend_ops *ops;
};

extern const ek__backend_ops ek__epoll_ops;
#ifdef EK_HAVE_LIBURING
extern const ek__backend_ops ek__uring_ops;
#endif

/*
 * Create the backend `kind` asks for: EK_IO_BACKEND_DEFAULT (the
 * EKIDEN_IO_BACKEND environment variable, "epoll" or "uring", else epoll),
 * EK_IO_BACKEND_EPOLL or EK_IO_BACKEND_URING. io_uring falls back to epoll when
 * this build has no liburing, /proc/sys/kernel/io_uring_disabled is 2, or the
 * kernel refuses the ring (io_uring_queue_init fails). Errors: EK_EINVAL (bad
 * kind), EK_ENOMEM, -errno of epoll_create1/eventfd.
 */
int ek__backend_new(int kind, ek__backend **out);
static inline void ek__backend_free(ek__backend *b)
{
    if (b) b->ops->destroy(b);
}
/* Register fd with token; flags EK__REG_*; *handle gets the backend's handle
 * for the stream hooks and deregister (may be NULL). EK_OK,
 * EK__REG_TRY_READ (registered: see above), or an error. Any thread. */
static inline int ek__backend_register(ek__backend *b, int fd, void *token, unsigned flags,
                                       void **handle)
{
    *handle = NULL;
    return b->ops->reg(b, fd, token, flags, handle);
}
/* Stop reporting fd (registered with token, handle). Any thread. */
static inline int ek__backend_deregister(ek__backend *b, int fd, void *token, void *handle)
{
    return b->ops->dereg(b, fd, token, handle);
}
/*
 * A stream read that the backend may serve from bytes it received itself:
 * EK_OK with *n bytes (0: end of stream), a negative error (once; the next
 * reads go direct), EK__RECV_WOULD_BLOCK (no bytes yet: the backend will report
 * READABLE for the token when some come), or EK__RECV_DIRECT (the caller reads
 * the fd itself and, if that finds nothing (EAGAIN), calls
 * ek__backend_stream_wait before waiting for READABLE). Any thread; one reader
 * at a time per fd gives bytes in order.
 */
static inline int ek__backend_stream_recv(ek__backend *b, void *handle, void *buf, size_t len,
                                          size_t *n)
{
    if (!b->ops->stream_recv) return EK__RECV_DIRECT;
    return b->ops->stream_recv(b, handle, buf, len, n);
}
/* A direct read found nothing, or a read was short ("Short reads" above):
 * arrange a READABLE event for the next byte that comes (io_uring: arm the
 * multishot recv, or a one-shot poll for read readiness when its buffers run
 * low; nothing if one is armed). EK_OK (the event will come), EK__RECV_AGAIN
 * (bytes, the end or an error are there already: read again), or an error (the
 * SQE could not be had: the caller retries later). */
static inline int ek__backend_stream_wait(ek__backend *b, void *handle)
{
    if (!b->ops->stream_wait) return EK_OK;
    return b->ops->stream_wait(b, handle);
}
/* Wait up to timeout_ms (-1: forever) and fill at most n events (n is at most
 * EK__DRIVER_EVENTS: a backend may size its buffer by it); returns the count (0
 * on timeout or EINTR) or a negative errno. A negative return means the backend
 * is broken (its own descriptor or the arguments are bad), not that the caller
 * should retry: the driver aborts with the reason (see driver.c). One thread at
 * a time (the driver's turn lock). */
static inline int ek__backend_poll(ek__backend *b, ek__event *events, int n, int timeout_ms)
{
    return b->ops->poll(b, events, n, timeout_ms);
}
/* Make a concurrent or the next ek__backend_poll return. Any thread. */
static inline void ek__backend_wake(ek__backend *b)
{
    b->ops->wake(b);
}
/* Consume wake-ups after EK__WAKE_TOKEN was seen. */
static inline void ek__backend_clear_wake(ek__backend *b)
{
    b->ops->clear_wake(b);
}
static inline const char *ek__backend_name(const ek__backend *b)
{
    return b->ops->name;
}
static inline int ek__backend_kind(const ek__backend *b)
{
    return b->ops->kind;
}

/* Test hook: when non-zero, the next io_uring creations fail with this code
 * (as if io_uring_queue_init had), so that the fallback to epoll can be shown on
 * a kernel that has io_uring. */
extern _Atomic int ek__uring_test_init_error;
/* Whether this build has the io_uring backend (liburing found at build time). */
bool ek__backend_uring_built(void);
/* Test only: whether b serves stream reads from io_uring's buffer ring
 * (uring.c says when it does not); if so, the free buffers now, how many
 * buffers of what size the ring has, and how often a stream found it short of buffers (each may
 * be NULL). */
bool ek__backend_ring_reads(const ek__backend *b, int *free_bufs, int *nbufs, int *buf_size,
                            uint64_t *starved);
/* Test only: whether b is io_uring and has its streams' receives submitted by
 * the driver's thread (uring.c, "Submission"). */
bool ek__backend_uring_defers_arms(const ek__backend *b);

#endif
