/*
 * uring.c - the io_uring backend (liburing), behind the same contract as
 * epoll.c (backend.h): readiness through multishot poll, and completion-based
 * reads for connected streams (multishot recv into a ring of provided
 * buffers), with the driver's submissions batched into its wait.
 *
 * Readiness. Each registered fd gets one IORING_OP_POLL_ADD with
 * IORING_POLL_ADD_MULTI: POLLIN | POLLOUT | POLLRDHUP | POLLPRI, or only POLLOUT
 * for a stream whose reads the ring serves (below). Multishot poll is
 * edge-triggered unless IORING_POLL_ADD_LEVEL is asked for (the kernel adds
 * EPOLLET): one CQE per wake-up of the socket, carrying the mask at that moment,
 * as EPOLLET does; and arming it reports the current state at once, as
 * EPOLL_CTL_ADD does. That is all io.c needs (sock.c clears readiness only on
 * EAGAIN). The kernel ends a multishot request (a CQE without
 * IORING_CQE_F_MORE) when it cannot post a CQE, when the task that armed it
 * exits (-ECANCELED), or on an error: the driver re-arms the poll (arming
 * reports the current state, so no edge is lost in between), up to MAX_ERRORS
 * failed arms in a row, after which the fd gets EK__IO_ERROR and is left alone.
 *
 * Ring reads (EK__REG_STREAM, when create() found that multishot recv with a
 * provided-buffer ring works). A stream's first read is a plain recv(2); when
 * that finds nothing (EAGAIN), stream_wait arms a multishot IORING_OP_RECV with
 * IOSQE_BUFFER_SELECT: from then on the kernel copies what arrives into
 * buffers of one ring (RX_BUFS of RX_BUF_SIZE, one per backend) and posts a CQE
 * per buffer; the driver queues the buffer on the fd's record (rx_lock) BEFORE
 * it reports READABLE, and stream_recv copies from the queue into the caller's
 * buffer and gives the buffer back to the ring. So a read that finds data
 * costs no syscall, and neither does a read that finds none (the recv stays
 * armed). The recv ends by itself at the end of the stream (res 0: sticky
 * EOF), on an error (reported once, after the queued bytes), when the ring ran
 * out of buffers (-ENOBUFS) or when it was cancelled: the next read after the
 * queue is drained is then a plain recv(2) again, and its EAGAIN arms the recv
 * again. Two guards keep buffers from running out: a fd with RX_MAX_QUEUED
 * buffers queued gets its recv cancelled (the kernel's socket buffer and
 * TCP's window then push back on the peer, as they do with epoll, instead of
 * the ring soaking up what the program does not read), and with fewer than
 * RX_LOW free buffers stream_wait arms a one-shot POLLIN poll instead of the
 * recv (the read after it is a plain recv(2)). The order of bytes holds
 * because at any time at most one thing takes bytes from the socket: the armed
 * recv, or the reader's recv(2) while none is armed.
 *
 * Submission. The kernel runs a request's completions as task work on the
 * thread that submitted it: that thread is interrupted (or, asleep on its
 * futex, woken) for each of them, and the CQE is posted only then. So every
 * stream's request is submitted by the thread that turns the driver
 * (defer_arms): its poll at registration and its receive, queued by
 * whichever thread, stay in the ring (hand_over), the first thread to queue
 * since the driver's last flush wakes the driver with a message from a second,
 * sender-only ring (wring; ur_wake uses it too, for the same reason), and the
 * driver's next io_uring_enter submits them. Before, two cases cost a wake-up
 * per completion: with two workers the arming worker was often asleep on its
 * futex while the other waited in the ring (perf: futex_wait_restart, 1.7
 * context switches per echo round trip at 1 connection), and a registration by
 * the thread that accepts (the main thread in block_on) submitted the
 * receives other threads had queued, which then completed on it for the life of
 * their connections (0.3 futex restarts and 0.5 context switches per round
 * trip at 100 connections with one worker: tracepoint io_uring_complete on the
 * main thread for 40% of the receives). EKIDEN_URING_DEFER_ARMS=0 submits at
 * once instead, for comparison. A deregistration's cancels are submitted at
 * once (by the caller: the socket must close now, not at the next turn), and
 * so are other fds' polls (a listener's: the kernel drops a cancelled
 * request's file reference on its submitter's thread, so only a request the
 * caller submitted itself is gone, and its socket closed, when the cancel
 * returns; ur_register). SQEs queued by the driver
 * while it reads completions (re-arms, cancels) are left in the ring and go with the next turn's
 * io_uring_enter, the one that waits (submit-and-wait: one syscall per turn); nothing is lost by
 * the delay, as their completions can only be seen in a turn. The submission queue is large
 * (SQ_ENTRIES) so that a burst of registrations seldom fills it (get_sqe then submits from the
 * caller's thread). No SQPOLL (a kernel thread spinning per runtime on a shared 2-core machine
 * costs more than the syscalls it saves).
 *
 * Task work. The ring is set up with IORING_SETUP_COOP_TASKRUN (where the
 * kernel has it, 5.19): a completion's task work no longer interrupts its
 * submitter with an IPI when that thread is running; it runs at the thread's
 * next entry into the kernel (any syscall, or an interrupt such as the timer
 * tick: so at worst a tick later for a thread busy in user space), and a
 * sleeping submitter is still woken (as before). IORING_SETUP_TASKRUN_FLAG
 * makes the pending work visible in the SQ ring's flags, so that a driver
 * turn that finds no CQE enters the kernel to run it (liburing's peek does).
 * Without it every multishot recv CQE cost an IPI from the sending thread
 * (on loopback the client's send runs our socket's receive path): measured
 * at 100 connections with one worker, 0.64-0.94 IPIs per round trip raised by
 * the load generator, and 12.2-13.3 CPU µs per round trip on each side instead
 * of 8.0-8.8 (perf stat, tracepoint ipi:ipi_send_cpu; in a VM an IPI is a VM
 * exit). EKIDEN_URING_COOP=0 leaves it off, for comparison.
 *
 * Records. The user_data of every request names a registration record (ureg)
 * and the request (OP_* << 1, | CANCEL for its cancel), not the io token,
 * because a request's last CQE may come several turns after the cancel: the
 * record lives until the kernel says every request on it is over, while the
 * token stops being reported the moment ek__backend_deregister returns
 * (ureg.token is cleared under the submission lock). So the memory rule of
 * backend.h holds: no poll that starts after deregister reports the token.
 *
 * Threads: the submission queue is shared by every thread that registers,
 * deregisters or arms (sq_lock, held only to fill and submit SQEs, never while
 * waiting); the completion queue is read only by the thread turning the driver
 * (its turn lock); a record's read queue is under its rx_lock (the driver adds,
 * readers take; lock order rx_lock, then sq_lock); the buffer ring's tail
 * under buf_lock. The cross-thread wake-up is a CQE sent to the ring itself
 * (IORING_OP_MSG_RING, tag MSG_TAG, where create() found it works), else a
 * write(2) to an eventfd watched by a multishot poll (tag WAKE_TAG); see
 * ur_wake for why the message is cheaper.
 *
 * The ring is refused (the runtime falls back to epoll) when the kernel lacks
 * IORING_FEAT_EXT_ARG (5.11: a wait with a timeout that needs no SQE, so the
 * waiting thread never touches the submission queue) or multishot poll (5.13):
 * create() arms the wake-up poll, writes the eventfd and checks that the CQE
 * comes back with F_MORE. Ring reads are left off (streams use readiness, as
 * every other fd) when the buffer ring cannot be registered (5.19) or a
 * multishot recv does not work (6.0): create() tries one on a socketpair.
 */
#ifdef EK_HAVE_LIBURING

#include "backend.h"
#include "io.h"

#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* user_data: a record (8-byte aligned) | op << 1 | CANCEL, or one of the tags
 * below (no record). */
enum { OP_POLL, OP_RECV, OP_RDPOLL, NOPS };
#define CANCEL    UINT64_C(1)
#define KIND_MASK UINT64_C(7)
#define MSG_TAG   UINT64_C(5) /* a wake-up sent with IORING_OP_MSG_RING */
#define WAKE_TAG  UINT64_C(6) /* the eventfd's poll */
#define PROBE_TAG UINT64_C(7) /* create()'s trial recv */
_Static_assert(alignof(max_align_t) >= 8, "records carry 3 tag bits");

#define POLL_MASK        (POLLIN | POLLOUT | POLLRDHUP | POLLPRI)
#define STREAM_POLL_MASK POLLOUT /* a ring-read stream: reads come as recv CQEs */
#define SQ_ENTRIES       4096
#define CQ_ENTRIES       8192
#define MAX_ERRORS       8

/* Ring reads: RX_BUFS buffers of RX_BUF_SIZE (8 MiB of address space, pages
 * touched only as buffers get used), buffer group RX_BGID. */
#define RX_BGID       0
#define RX_BUFS       2048 /* a power of two */
#define RX_BUF_SIZE   4096
#define RX_LOW        (RX_BUFS / 8)
#define RX_MAX_QUEUED 16
#define RX_NONE       (-1)

typedef struct ureg {
    _Atomic(void *) token; /* the io; NULL once deregistered */
    int fd;
    bool stream; /* ring reads (fixed at register) */
    /* under sq_lock: */
    bool dead;  /* deregistered: free once no CQE can name it */
    int errors; /* failed poll arms in a row */
    struct {
        bool armed;  /* in flight: its last CQE not seen yet */
        int cancels; /* its cancels in flight */
    } op[NOPS];
    struct ureg *prev, *next; /* b->regs: every record not yet freed */
    /* ring reads, under rx_lock (streams only): */
    ek__mutex rx_lock;
    bool rx_armed;           /* a multishot recv is in flight */
    bool rx_paused;          /* its cancel was asked (queue long) */
    bool rx_dead;            /* deregistered: buffers that come go straight back */
    bool rx_eof;             /* the recv saw the end of the stream */
    int rx_err;              /* an error it saw, to report once */
    int32_t q_head, q_tail;  /* queued buffers (ids), oldest first */
    uint32_t q_count, q_off; /* how many; bytes of the head already read */
} ureg;

typedef struct uring_backend {
    ek__backend base;
    struct io_uring ring;
    ek__mutex sq_lock;
    int wakefd;
    bool wake_armed;       /* under sq_lock */
    bool wake_ring;        /* wake-ups are IORING_OP_MSG_RING CQEs (else eventfd writes) */
    bool defer_arms;       /* a stream's receive is submitted by the driver's thread (wring) */
    struct io_uring wring; /* the sender of wake-ups when defer_arms (under wring_lock) */
    ek__mutex wring_lock;
    bool efd_woke;        /* this turn saw the eventfd's poll (turn lock) */
    atomic_bool sq_dirty; /* SQEs in the ring that no io_uring_enter has taken yet */
    ureg *regs;           /* under sq_lock */
    ureg **byfd;          /* fd -> live record, under sq_lock */
    size_t nbyfd;
    /* ring reads */
    bool rx_ok;
    struct io_uring_buf_ring *br; /* RX_BUFS entries */
    unsigned char *bufs;          /* RX_BUFS * RX_BUF_SIZE */
    ek__mutex buf_lock;           /* the buffer ring's tail */
    atomic_int rx_free;           /* buffers in the kernel's hands */
    _Atomic uint64_t rx_starved;  /* recvs ended for want of buffers, read polls armed instead */
    int32_t bnext[RX_BUFS];       /* per queued buffer: the next one of its fd */
    uint32_t blen[RX_BUFS];       /* per queued buffer: bytes received */
    struct io_uring_cqe *cqes[EK__DRIVER_EVENTS];
} uring_backend;

#define UB(b) ((uring_backend *)(b))

static uint64_t tag_of(ureg *r, int op, uint64_t cancel)
{
    return (uint64_t)(uintptr_t)r | ((uint64_t)op << 1) | cancel;
}

/* ------------------------------------------------------ submission side -- */

/* sq_lock held. An SQE, submitting what is queued if the ring is full. */
static struct io_uring_sqe *get_sqe(uring_backend *b)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
    if (!sqe) {
        (void)io_uring_submit(&b->ring);
        sqe = io_uring_get_sqe(&b->ring);
    }
    return sqe;
}

/* sq_lock held. Queue a request on r (not submitted): its multishot poll, its
 * multishot recv into the buffer ring, or a one-shot poll for read readiness. */
static int arm(uring_backend *b, ureg *r, int op)
{
    struct io_uring_sqe *sqe = get_sqe(b);
    if (!sqe) return EK_EAGAIN;
    if (op == OP_POLL) {
        io_uring_prep_poll_multishot(sqe, r->fd, r->stream ? STREAM_POLL_MASK : POLL_MASK);
    } else if (op == OP_RECV) {
        io_uring_prep_recv_multishot(sqe, r->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = RX_BGID;
    } else {
        io_uring_prep_poll_add(sqe, r->fd, POLLIN | POLLRDHUP);
    }
    io_uring_sqe_set_data64(sqe, tag_of(r, op, 0));
    r->op[op].armed = true;
    return EK_OK;
}

static int arm_wake(uring_backend *b)
{
    struct io_uring_sqe *sqe = get_sqe(b);
    if (!sqe) return EK_EAGAIN;
    io_uring_prep_poll_multishot(sqe, b->wakefd, POLLIN);
    io_uring_sqe_set_data64(sqe, WAKE_TAG);
    b->wake_armed = true;
    return EK_OK;
}

/* sq_lock held. Submit what is queued; SQEs the kernel did not take stay in
 * the ring and go with the next submit (every poll tries again). */
static int submit(uring_backend *b)
{
    int rc = io_uring_submit(&b->ring);
    atomic_store_explicit(&b->sq_dirty, io_uring_sq_ready(&b->ring) != 0, memory_order_relaxed);
    return rc < 0 && rc != -EAGAIN && rc != -EBUSY && rc != -EINTR ? rc : EK_OK;
}

/* sq_lock held. What a thread that queued SQEs outside a driver turn does with
 * them (a registration's poll, a stream's receive). With
 * defer_arms they stay in the ring for the driver's next io_uring_enter, so
 * that every request is submitted by a thread that waits in the ring: the
 * kernel runs a request's completions (a multishot recv's, for the life of the
 * connection) as task work on its submitter, which, were it the thread that
 * accepted the connection (asleep in block_on), woke it for every CQE ("Submission"
 * above). *wake: the caller must wake the driver once sq_lock is released (the
 * first to dirty the queue since the driver's last flush; later ones find that
 * wake on its way, or the driver's own re-arms, which its next turn takes).
 * Without defer_arms: submit now. */
static int hand_over(uring_backend *b, bool *wake)
{
    if (!b->defer_arms) return submit(b);
    *wake = !atomic_exchange_explicit(&b->sq_dirty, true, memory_order_relaxed);
    return EK_OK;
}

/* sq_lock held. Hand the queued SQEs to the kernel's ring without entering it
 * (what io_uring_submit does before its syscall: liburing 2.3's
 * __io_uring_flush_sq, which is not exported); returns how many the kernel has
 * not consumed yet, for the io_uring_enter that follows. */
static unsigned flush_sq(uring_backend *b)
{
    struct io_uring_sq *sq = &b->ring.sq;
    unsigned ktail = *sq->ktail;
    while (sq->sqe_head != sq->sqe_tail) {
        sq->array[ktail & sq->ring_mask] = sq->sqe_head & sq->ring_mask;
        ktail++;
        sq->sqe_head++;
    }
    io_uring_smp_store_release(sq->ktail, ktail);
    return ktail - io_uring_smp_load_acquire(sq->khead);
}

/* sq_lock held. Queue a cancel of r's request `op` (not submitted). If no SQE
 * can be had, the request's next CQE tries again (on_cqe). */
static int cancel(uring_backend *b, ureg *r, int op)
{
    struct io_uring_sqe *sqe = get_sqe(b);
    if (!sqe) return EK_EAGAIN;
    if (op == OP_RECV)
        io_uring_prep_cancel64(sqe, tag_of(r, op, 0), 0);
    else
        io_uring_prep_poll_remove(sqe, tag_of(r, op, 0));
    io_uring_sqe_set_data64(sqe, tag_of(r, op, CANCEL));
    r->op[op].cancels++;
    return EK_OK;
}

static bool in_flight(const ureg *r)
{
    for (int op = 0; op < NOPS; op++)
        if (r->op[op].armed || r->op[op].cancels) return true;
    return false;
}

static void unlink_free(uring_backend *b, ureg *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        b->regs = r->next;
    if (r->next) r->next->prev = r->prev;
    if (r->stream) ek__mutex_destroy(&r->rx_lock);
    ek__free(r);
}

/* ------------------------------------------------------- buffer ring -- */

/* Give buffers back to the kernel. Any thread. */
static void rx_put(uring_backend *b, const int32_t *bids, int n)
{
    if (n <= 0) return;
    int mask = io_uring_buf_ring_mask(RX_BUFS);
    ek__mutex_lock(&b->buf_lock);
    for (int i = 0; i < n; i++)
        io_uring_buf_ring_add(b->br, b->bufs + (size_t)bids[i] * RX_BUF_SIZE, RX_BUF_SIZE,
                              (unsigned short)bids[i], mask, i);
    io_uring_buf_ring_advance(b->br, n);
    ek__mutex_unlock(&b->buf_lock);
    atomic_fetch_add_explicit(&b->rx_free, n, memory_order_relaxed);
}

/* rx_lock held. Give r's queued buffers back to the ring. */
static void rx_drain(uring_backend *b, ureg *r)
{
    int32_t ids[64];
    int n = 0;
    for (int32_t id = r->q_head; id != RX_NONE; id = b->bnext[id]) {
        ids[n++] = id;
        if (n == 64) {
            rx_put(b, ids, n);
            n = 0;
        }
    }
    rx_put(b, ids, n);
    r->q_head = r->q_tail = RX_NONE;
    r->q_count = r->q_off = 0;
}

static void rx_free_ring(uring_backend *b)
{
    if (b->br) munmap(b->br, RX_BUFS * sizeof(struct io_uring_buf));
    if (b->bufs) munmap(b->bufs, (size_t)RX_BUFS * RX_BUF_SIZE);
    b->br = NULL;
    b->bufs = NULL;
}

/* ------------------------------------------------- register/deregister -- */

static void ur_wake(ek__backend *be);

static int ur_register(ek__backend *be, int fd, void *token, unsigned flags, void **handle)
{
    uring_backend *b = UB(be);
    if (fd < 0) return EK_EBADF;
    ureg *r = ek__calloc(1, sizeof *r);
    if (!r) return EK_ENOMEM;
    r->fd = fd;
    r->stream = b->rx_ok && (flags & EK__REG_STREAM);
    if (r->stream) {
        int rc = ek__mutex_init(&r->rx_lock);
        if (rc) {
            ek__free(r);
            return rc;
        }
        r->q_head = r->q_tail = RX_NONE;
    }
    atomic_store_explicit(&r->token, token, memory_order_release);
    int rc = EK_OK;
    bool wake = false;
    ek__mutex_lock(&b->sq_lock);
    if ((size_t)fd >= b->nbyfd) {
        size_t n = b->nbyfd ? b->nbyfd : 64;
        while (n <= (size_t)fd) n *= 2;
        ureg **p = ek__realloc(b->byfd, n * sizeof *p);
        if (!p) {
            rc = EK_ENOMEM;
            goto out;
        }
        memset(p + b->nbyfd, 0, (n - b->nbyfd) * sizeof *p);
        b->byfd = p;
        b->nbyfd = n;
    }
    if (b->byfd[fd]) { /* as EPOLL_CTL_ADD of an fd already there */
        rc = EK_EEXIST;
        goto out;
    }
    /* arm() only fails before queueing; a submit error other than "try
     * later" means the ring is unusable. */
    /* A stream's poll goes with the driver's next turn; any other fd's (a
     * listener's, a datagram socket's) now: its cancel at deregister is
     * then run by the caller's own thread, so that the socket is closed
     * when ek__backend_deregister returns (a connect then finds it refused,
     * its name free), not when the thread that submitted the poll runs its
     * task work. */
    rc = arm(b, r, OP_POLL);
    if (!rc) rc = (flags & EK__REG_STREAM) ? hand_over(b, &wake) : submit(b);
    if (rc) goto out;
    b->byfd[fd] = r;
    r->next = b->regs;
    if (b->regs) b->regs->prev = r;
    b->regs = r;
    *handle = r;
    if (r->stream) rc = EK__REG_TRY_READ;
    r = NULL;
out:
    ek__mutex_unlock(&b->sq_lock);
    if (wake) ur_wake(be);
    if (r) {
        if (r->stream) ek__mutex_destroy(&r->rx_lock);
        ek__free(r);
    }
    return rc;
}

static int ur_deregister(ek__backend *be, int fd, void *token, void *handle)
{
    uring_backend *b = UB(be);
    EK__UNUSED(handle); /* looked up by fd: the record must be the live one */
    int rc = EK_OK;
    ek__mutex_lock(&b->sq_lock);
    ureg *r = fd >= 0 && (size_t)fd < b->nbyfd ? b->byfd[fd] : NULL;
    if (!r || atomic_load_explicit(&r->token, memory_order_relaxed) != token) {
        ek__mutex_unlock(&b->sq_lock);
        return EK_ENOENT;
    }
    ek__mutex_unlock(&b->sq_lock);

    /* Queued buffers go back; those still to come go back as they come. This
     * comes BEFORE r is marked dead: once it is, the driver frees r at its
     * last CQE (op_over), so r may be touched only under sq_lock from then. */
    if (r->stream) {
        ek__mutex_lock(&r->rx_lock);
        r->rx_dead = true;
        rx_drain(b, r);
        ek__mutex_unlock(&r->rx_lock);
    }

    ek__mutex_lock(&b->sq_lock);
    b->byfd[fd] = NULL;
    r->dead = true;
    atomic_store_explicit(&r->token, NULL, memory_order_release);
    if (!in_flight(r)) {
        unlink_free(b, r); /* no CQE can name it any more */
    } else {
        /* A request holds a reference on the file: until it is removed,
         * closing the fd does not close the socket. */
        bool queued = false;
        for (int op = 0; op < NOPS; op++)
            if (r->op[op].armed && r->op[op].cancels == 0 && cancel(b, r, op) == EK_OK)
                queued = true;
        /* Submitted now, not handed over: until the kernel drops the
         * requests the socket stays open (a peer would not see it closed, a
         * bound name would stay taken) however long no thread turns the
         * driver. */
        if (queued) rc = submit(b);
    }
    ek__mutex_unlock(&b->sq_lock);
    return rc;
}

/* ------------------------------------------------------ completion side -- */

static uint32_t ready_bits(int mask)
{
    uint32_t r = 0;
    if (mask & (POLLIN | POLLPRI)) r |= EK__READABLE;
    if (mask & POLLOUT) r |= EK__WRITABLE;
    if (mask & POLLRDHUP) r |= EK__READ_CLOSED;
    if (mask & POLLHUP) r |= EK__READ_CLOSED | EK__WRITE_CLOSED;
    if (mask & POLLERR) r |= EK__IO_ERROR;
    return r;
}

/* sq_lock held. A live request of a dead record: cancel it (again: its cancel
 * came while it was delivering, -EALREADY, or could not be queued). */
static void recancel(uring_backend *b, ureg *r, int op, bool *queued)
{
    if (r->op[op].cancels == 0 && cancel(b, r, op) == EK_OK) *queued = true;
}

/* sq_lock held. r's request `op` is over (its CQE without F_MORE). */
static void op_over(uring_backend *b, ureg *r, int op)
{
    r->op[op].armed = false;
    if (r->dead && !in_flight(r)) unlink_free(b, r);
}

/* A poll CQE (the multishot poll, or the one-shot read poll). Returns the
 * readiness to report and sets *token; *queued when an SQE was queued. */
static uint32_t on_poll_cqe(uring_backend *b, ureg *r, int op, int res, unsigned flags,
                            void **token, bool *queued)
{
    uint32_t ready = res > 0 ? ready_bits(res) : 0;
    bool more = op == OP_POLL && (flags & IORING_CQE_F_MORE);
    ek__mutex_lock(&b->sq_lock);
    *token = atomic_load_explicit(&r->token, memory_order_relaxed);
    if (more) {
        if (r->dead) recancel(b, r, op, queued);
    } else if (r->dead) {
        op_over(b, r, op); /* may free r */
        r = NULL;
    } else if (op == OP_RDPOLL) {
        r->op[op].armed = false;
        /* An error instead of a mask: let the reader's recv(2) see it. */
        if (res < 0) ready = EK__READABLE;
    } else {
        r->op[op].armed = false;
        if (res < 0 && res != -ECANCELED)
            r->errors++;
        else
            r->errors = 0;
        if (r->errors >= MAX_ERRORS || arm(b, r, OP_POLL) != EK_OK)
            ready = EK__IO_ERROR; /* ops try the syscall and see the error */
        else
            *queued = true;
    }
    ek__mutex_unlock(&b->sq_lock);
    if (!*token) ready = 0;
    return ready;
}

/* A recv CQE: queue its buffer, note the end, an error or that the recv is
 * over. Same contract as on_poll_cqe. */
static uint32_t on_recv_cqe(uring_backend *b, ureg *r, int res, unsigned flags, void **token,
                            bool *queued)
{
    bool more = flags & IORING_CQE_F_MORE;
    int32_t bid =
        (flags & IORING_CQE_F_BUFFER) ? (int32_t)(flags >> IORING_CQE_BUFFER_SHIFT) : RX_NONE;
    if (bid != RX_NONE) atomic_fetch_sub_explicit(&b->rx_free, 1, memory_order_relaxed);
    uint32_t ready = 0;
    bool pause = false;
    ek__mutex_lock(&r->rx_lock);
    if (!r->rx_dead) {
        if (bid != RX_NONE && res > 0) {
            b->bnext[bid] = RX_NONE;
            b->blen[bid] = (uint32_t)res;
            if (r->q_tail == RX_NONE)
                r->q_head = bid;
            else
                b->bnext[r->q_tail] = bid;
            r->q_tail = bid;
            r->q_count++;
            bid = RX_NONE; /* queued: not to be given back */
            ready = EK__READABLE;
        } else if (res == 0) {
            r->rx_eof = true;
            ready = EK__READABLE | EK__READ_CLOSED;
        } else if (res == -ENOBUFS) {
            atomic_fetch_add_explicit(&b->rx_starved, 1, memory_order_relaxed);
        } else if (res < 0 && res != -ECANCELED) {
            r->rx_err = ek__err(-res);
            ready = EK__READABLE;
        }
        if (!more) {
            /* Over: the next read after the queue is a plain recv(2). */
            r->rx_armed = false;
            r->rx_paused = false;
            ready |= EK__READABLE;
        } else if (r->q_count >= RX_MAX_QUEUED && !r->rx_paused) {
            r->rx_paused = pause = true;
        }
    }
    ek__mutex_unlock(&r->rx_lock);
    if (bid != RX_NONE) rx_put(b, &bid, 1);

    ek__mutex_lock(&b->sq_lock);
    *token = atomic_load_explicit(&r->token, memory_order_relaxed);
    if (!more) {
        op_over(b, r, OP_RECV); /* may free r */
    } else if (r->dead) {
        recancel(b, r, OP_RECV, queued);
    } else if (pause && cancel(b, r, OP_RECV) == EK_OK) {
        *queued = true;
    }
    ek__mutex_unlock(&b->sq_lock);
    if (!*token) ready = 0;
    return ready;
}

/* The CQE of a cancel of r's request `op`. -EALREADY: the request was
 * delivering and could not be removed; ask again. -ENOENT: it had ended. */
static void on_cancel_cqe(uring_backend *b, ureg *r, int op, int res, bool *queued)
{
    ek__mutex_lock(&b->sq_lock);
    r->op[op].cancels--;
    if (r->op[op].armed && r->op[op].cancels == 0 && res == -EALREADY && cancel(b, r, op) == EK_OK)
        *queued = true;
    if (r->dead && !in_flight(r)) unlink_free(b, r);
    ek__mutex_unlock(&b->sq_lock);
}

static int ur_poll(ek__backend *be, ek__event *events, int n, int timeout_ms)
{
    uring_backend *b = UB(be);
    if (n <= 0) return EK_EINVAL; /* as epoll_wait */
    if (n > EK__DRIVER_EVENTS) n = EK__DRIVER_EVENTS;
    /* SQEs queued by the last turn (or left by a submit the kernel refused
     * in part) go with this turn's io_uring_enter. */
    unsigned to_submit = 0;
    if (atomic_load_explicit(&b->sq_dirty, memory_order_relaxed)) {
        ek__mutex_lock(&b->sq_lock);
        to_submit = flush_sq(b);
        atomic_store_explicit(&b->sq_dirty, false, memory_order_relaxed);
        ek__mutex_unlock(&b->sq_lock);
    }
    int rc = 0;
    if (timeout_ms == 0 || io_uring_cq_ready(&b->ring)) {
        if (to_submit) rc = io_uring_enter(b->ring.ring_fd, to_submit, 0, 0, NULL);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                       .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
        struct io_uring_getevents_arg arg = {.sigmask_sz = _NSIG / 8,
                                             .ts = timeout_ms > 0 ? (uint64_t)(uintptr_t)&ts : 0};
        rc = io_uring_enter2(b->ring.ring_fd, to_submit, 1,
                             IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, (sigset_t *)&arg,
                             sizeof arg);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) return rc;
    /* What the kernel did not take (EAGAIN/EBUSY, or a part): the next turn. */
    if (to_submit) {
        /* The ring's tail is written under sq_lock (get_sqe): read it there. */
        ek__mutex_lock(&b->sq_lock);
        if (io_uring_sq_ready(&b->ring))
            atomic_store_explicit(&b->sq_dirty, true, memory_order_relaxed);
        ek__mutex_unlock(&b->sq_lock);
    }

    /* One batch: the CQEs there now, not those posted while it is read (a
     * turn's events are a snapshot, as epoll_wait's). */
    unsigned count = io_uring_peek_batch_cqe(&b->ring, b->cqes, (unsigned)n);
    int got = 0;
    bool queued = false, woke = false;
    for (unsigned i = 0; i < count; i++) {
        struct io_uring_cqe *cqe = b->cqes[i];
        uint64_t tag = io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        unsigned flags = cqe->flags;
        if (tag == WAKE_TAG || tag == MSG_TAG) {
            if (tag == WAKE_TAG) b->efd_woke = true;
            if (tag == WAKE_TAG && !(flags & IORING_CQE_F_MORE)) {
                ek__mutex_lock(&b->sq_lock);
                b->wake_armed = false;
                if (arm_wake(b) == EK_OK) queued = true;
                ek__mutex_unlock(&b->sq_lock);
            }
            /* Report a wake for a re-arm too: a write may have come between. */
            if (!woke) {
                woke = true;
                events[got].token = EK__WAKE_TOKEN;
                events[got].ready = EK__READABLE;
                got++;
            }
            continue;
        }
        if (tag == PROBE_TAG) continue; /* create()'s, should one still come */
        ureg *r = (ureg *)(uintptr_t)(tag & ~KIND_MASK);
        int op = (int)((tag & KIND_MASK) >> 1);
        if (tag & CANCEL) {
            on_cancel_cqe(b, r, op, res, &queued);
            continue;
        }
        void *token;
        uint32_t ready = op == OP_RECV ? on_recv_cqe(b, r, res, flags, &token, &queued)
                                       : on_poll_cqe(b, r, op, res, flags, &token, &queued);
        if (ready) {
            events[got].token = token;
            events[got].ready = ready;
            got++;
        }
    }
    io_uring_cq_advance(&b->ring, count);
    if (queued) atomic_store_explicit(&b->sq_dirty, true, memory_order_relaxed);
    return got;
}

/* --------------------------------------------------------- ring reads -- */

static int ur_stream_recv(ek__backend *be, void *handle, void *buf, size_t len, size_t *n)
{
    uring_backend *b = UB(be);
    ureg *r = handle;
    if (!r || !r->stream) return EK__RECV_DIRECT;
    int32_t done[RX_MAX_QUEUED + 1];
    int ndone = 0;
    ek__mutex_lock(&r->rx_lock);
    if (r->q_count) {
        size_t got = 0;
        while (got < len && r->q_count && ndone < (int)(sizeof done / sizeof done[0])) {
            int32_t id = r->q_head;
            size_t avail = b->blen[id] - r->q_off, take = len - got < avail ? len - got : avail;
            memcpy((unsigned char *)buf + got, b->bufs + (size_t)id * RX_BUF_SIZE + r->q_off, take);
            got += take;
            r->q_off += (uint32_t)take;
            if (r->q_off == b->blen[id]) {
                r->q_head = b->bnext[id];
                if (r->q_head == RX_NONE) r->q_tail = RX_NONE;
                r->q_count--;
                r->q_off = 0;
                done[ndone++] = id;
            }
        }
        ek__mutex_unlock(&r->rx_lock);
        rx_put(b, done, ndone);
        *n = got;
        return EK_OK;
    }
    int rc;
    if (r->rx_err) {
        rc = r->rx_err;
        r->rx_err = 0;
    } else if (r->rx_eof) {
        *n = 0;
        rc = EK_OK;
    } else {
        rc = r->rx_armed ? EK__RECV_WOULD_BLOCK : EK__RECV_DIRECT;
    }
    ek__mutex_unlock(&r->rx_lock);
    return rc;
}

static int ur_stream_wait(ek__backend *be, void *handle)
{
    uring_backend *b = UB(be);
    ureg *r = handle;
    if (!r || !r->stream) return EK_OK; /* the multishot poll reports POLLIN */
    int rc = EK_OK;
    bool queued = false, wake = false;
    ek__mutex_lock(&r->rx_lock);
    if (r->q_count || r->rx_eof || r->rx_err) {
        rc = EK__RECV_AGAIN; /* another reader's recv armed and got some */
    } else if (!r->rx_armed && !r->rx_dead) {
        ek__mutex_lock(&b->sq_lock);
        if (r->dead) {
            /* Deregistering (its rx_dead comes next): arm nothing that
             * would keep the socket open. */
        } else if (atomic_load_explicit(&b->rx_free, memory_order_relaxed) >= RX_LOW) {
            rc = arm(b, r, OP_RECV);
            if (!rc) r->rx_armed = true;
            queued = !rc;
        } else if (!r->op[OP_RDPOLL].armed) {
            rc = arm(b, r, OP_RDPOLL);
            atomic_fetch_add_explicit(&b->rx_starved, 1, memory_order_relaxed);
            queued = !rc;
        }
        if (queued) rc = hand_over(b, &wake);
        ek__mutex_unlock(&b->sq_lock);
    }
    ek__mutex_unlock(&r->rx_lock);
    /* The driver's next turn submits it: wake the thread waiting in the ring
     * (a message from the sender ring, which submits nothing of ours). */
    if (wake) ur_wake(be);
    return rc;
}

/* The eventfd: one write(2). The kernel posts its poll's CQE by task work
 * on the thread that armed the poll (the one that built the runtime, often
 * parked in a futex), which costs that thread a wake-up per wake. */
static void wake_efd(uring_backend *b)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: a wake is pending anyway. */
    while (write(b->wakefd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

/* A CQE sent to our own ring (IORING_OP_MSG_RING, Linux 5.18): posted at once
 * by the sender's io_uring_enter, no task work, and nothing to read back; the
 * sender's own CQE is skipped (IOSQE_CQE_SKIP_SUCCESS). The eventfd is the
 * fallback when no SQE can be had. */
static void ur_wake(ek__backend *be)
{
    uring_backend *b = UB(be);
    if (b->defer_arms) {
        /* From the sender ring: the main ring's SQEs stay for the driver. A
         * failed send's CQE (the success's is skipped) is read back here. */
        ek__mutex_lock(&b->wring_lock);
        struct io_uring_sqe *sqe = io_uring_get_sqe(&b->wring);
        int rc = EK_EAGAIN;
        if (sqe) {
            io_uring_prep_msg_ring(sqe, b->ring.ring_fd, 0, MSG_TAG, 0);
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            io_uring_sqe_set_data64(sqe, MSG_TAG);
            rc = io_uring_submit(&b->wring);
            struct io_uring_cqe *cqe;
            while (io_uring_peek_cqe(&b->wring, &cqe) == 0) {
                if (cqe->res < 0) rc = cqe->res;
                io_uring_cqe_seen(&b->wring, cqe);
            }
        }
        ek__mutex_unlock(&b->wring_lock);
        if (rc > 0) return;
        wake_efd(b);
        return;
    }
    if (b->wake_ring) {
        ek__mutex_lock(&b->sq_lock);
        struct io_uring_sqe *sqe = get_sqe(b);
        int rc = EK_EAGAIN;
        if (sqe) {
            io_uring_prep_msg_ring(sqe, b->ring.ring_fd, 0, MSG_TAG, 0);
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            io_uring_sqe_set_data64(sqe, MSG_TAG); /* a failed send is a wake too */
            rc = io_uring_submit(&b->ring);
            atomic_store_explicit(&b->sq_dirty, io_uring_sq_ready(&b->ring) != 0,
                                  memory_order_relaxed);
        }
        ek__mutex_unlock(&b->sq_lock);
        if (rc > 0) return;
    }
    wake_efd(b);
}

static void ur_clear_wake(ek__backend *be)
{
    uring_backend *b = UB(be);
    if (!b->efd_woke) return; /* only MSG_RING wake-ups: nothing to read */
    b->efd_woke = false;
    uint64_t v;
    while (read(b->wakefd, &v, sizeof v) < 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------ lifecycle -- */

static void ur_destroy(ek__backend *be)
{
    uring_backend *b = UB(be);
    /* Records left are deregistered ones whose cancels are in flight (every
     * socket holds a reference on the runtime, so none is live here): let the
     * kernel finish them (up to ~100 ms), so that no recv of theirs can still
     * be copying into the buffers unmapped below. The ring's own teardown
     * cancels the rest, asynchronously. */
    for (int i = 0; b->regs && i < 100; i++) {
        ek__event ev[64];
        if (ur_poll(be, ev, 64, 1) < 0) break;
    }
    io_uring_queue_exit(&b->ring); /* the kernel cancels what is in flight */
    if (b->defer_arms) {
        io_uring_queue_exit(&b->wring);
        ek__mutex_destroy(&b->wring_lock);
    }
    while (b->regs) unlink_free(b, b->regs);
    ek__free(b->byfd);
    close(b->wakefd);
    ek__mutex_destroy(&b->buf_lock);
    rx_free_ring(b);
    ek__mutex_destroy(&b->sq_lock);
    ek__free(b);
}

/* Arm the wake-up poll and check that multishot poll works on this kernel: a
 * write to the eventfd must come back as a CQE that says F_MORE. */
static int probe_wake(uring_backend *b)
{
    int rc = arm_wake(b);
    if (!rc) rc = io_uring_submit(&b->ring) == 1 ? EK_OK : EK_ENOTSUP;
    if (rc) return rc;
    wake_efd(b);
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {.tv_sec = 1};
    rc = io_uring_wait_cqe_timeout(&b->ring, &cqe, &ts);
    if (rc < 0) return rc;
    bool ok = io_uring_cqe_get_data64(cqe) == WAKE_TAG && cqe->res > 0 &&
              (cqe->flags & IORING_CQE_F_MORE);
    io_uring_cqe_seen(&b->ring, cqe);
    b->efd_woke = true;
    ur_clear_wake(&b->base);
    return ok ? EK_OK : EK_ENOTSUP;
}

/* Send one MSG_RING wake-up to ourselves: exactly its CQE must come back (the
 * sender's is skipped). Otherwise wake-ups stay eventfd writes. */
static void probe_msg_ring(uring_backend *b)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
    if (!sqe) return;
    io_uring_prep_msg_ring(sqe, b->ring.ring_fd, 0, MSG_TAG, 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, MSG_TAG);
    if (io_uring_submit(&b->ring) != 1) return;
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {.tv_sec = 1};
    if (io_uring_wait_cqe_timeout(&b->ring, &cqe, &ts) < 0) return;
    bool ok = io_uring_cqe_get_data64(cqe) == MSG_TAG && cqe->res == 0;
    io_uring_cqe_seen(&b->ring, cqe);
    /* A second CQE (the sender's, not skipped) would say it is not right. */
    while (io_uring_peek_cqe(&b->ring, &cqe) == 0) {
        ok = false;
        io_uring_cqe_seen(&b->ring, cqe);
    }
    b->wake_ring = ok;
}

/* Whether the environment variable `name` is "0" (an A/B switch for
 * measurements). */
static bool env_is_zero(const char *name)
{
    const char *v = getenv(name);
    return v && strcmp(v, "0") == 0;
}

/* The sender ring (defer_arms): a small second ring whose only requests are
 * MSG_RING wake-ups to the main one. One message must arrive as exactly one
 * CQE on the main ring, and none on the sender's. Otherwise receives are
 * submitted by the thread that arms them, as before. */
static void probe_sender_ring(uring_backend *b)
{
    if (!b->wake_ring) return;
    if (io_uring_queue_init(8, &b->wring, 0) != 0) return;
    if (ek__mutex_init(&b->wring_lock) != 0) {
        io_uring_queue_exit(&b->wring);
        return;
    }
    bool ok = false;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&b->wring);
    if (sqe) {
        io_uring_prep_msg_ring(sqe, b->ring.ring_fd, 0, MSG_TAG, 0);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, MSG_TAG);
        if (io_uring_submit(&b->wring) == 1) {
            struct io_uring_cqe *cqe;
            struct __kernel_timespec ts = {.tv_sec = 1};
            if (io_uring_wait_cqe_timeout(&b->ring, &cqe, &ts) == 0) {
                ok = io_uring_cqe_get_data64(cqe) == MSG_TAG && cqe->res == 0;
                io_uring_cqe_seen(&b->ring, cqe);
            }
            while (io_uring_peek_cqe(&b->ring, &cqe) == 0) {
                ok = false;
                io_uring_cqe_seen(&b->ring, cqe);
            }
            while (io_uring_peek_cqe(&b->wring, &cqe) == 0) {
                ok = false;
                io_uring_cqe_seen(&b->wring, cqe);
            }
        }
    }
    if (!ok) {
        io_uring_queue_exit(&b->wring);
        ek__mutex_destroy(&b->wring_lock);
        return;
    }
    b->defer_arms = true;
}

/* Wait (up to 1 s) for the next CQE, which must be tagged `tag` (nothing else
 * is in flight during create() but the wake-up poll, and nothing writes its
 * eventfd). Returns it (to be marked seen) or NULL. */
static struct io_uring_cqe *probe_cqe(uring_backend *b, uint64_t tag)
{
    struct __kernel_timespec ts = {.tv_sec = 1};
    struct io_uring_cqe *cqe;
    if (io_uring_wait_cqe_timeout(&b->ring, &cqe, &ts) < 0) return NULL;
    if (io_uring_cqe_get_data64(cqe) == tag) return cqe;
    return NULL;
}

/* Set up the buffer ring and try one multishot recv on a socketpair: one byte
 * must come back in a provided buffer, with F_MORE. Any failure leaves ring
 * reads off (b->rx_ok false); only the wake-up's CQEs may stay queued. */
static void probe_rx(uring_backend *b)
{
    b->br = mmap(NULL, RX_BUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    b->bufs = mmap(NULL, (size_t)RX_BUFS * RX_BUF_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b->br == MAP_FAILED) b->br = NULL;
    if (b->bufs == MAP_FAILED) b->bufs = NULL;
    if (!b->br || !b->bufs) goto off;
    io_uring_buf_ring_init(b->br);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)b->br, .ring_entries = RX_BUFS, .bgid = RX_BGID};
    if (io_uring_register_buf_ring(&b->ring, &reg, 0) != 0) goto off;
    int32_t ids[64];
    for (int32_t i = 0; i < RX_BUFS; i += 64) {
        for (int j = 0; j < 64; j++) ids[j] = i + j;
        rx_put(b, ids, 64);
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) goto off_unreg;
    bool ok = false;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
    if (sqe) {
        io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = RX_BGID;
        io_uring_sqe_set_data64(sqe, PROBE_TAG);
        if (io_uring_submit(&b->ring) == 1 && write(sv[1], "x", 1) == 1) {
            struct io_uring_cqe *cqe = probe_cqe(b, PROBE_TAG);
            if (cqe) {
                ok = cqe->res == 1 && (cqe->flags & IORING_CQE_F_BUFFER) &&
                     (cqe->flags & IORING_CQE_F_MORE);
                unsigned flags = cqe->flags;
                io_uring_cqe_seen(&b->ring, cqe);
                if (flags & IORING_CQE_F_BUFFER) {
                    int32_t bid = (int32_t)(flags >> IORING_CQE_BUFFER_SHIFT);
                    atomic_fetch_sub_explicit(&b->rx_free, 1, memory_order_relaxed);
                    rx_put(b, &bid, 1);
                }
                /* Closing the pair ends the recv (res 0, no F_MORE). */
                if (ok && (flags & IORING_CQE_F_MORE)) {
                    close(sv[1]);
                    sv[1] = -1;
                    cqe = probe_cqe(b, PROBE_TAG);
                    ok = cqe && cqe->res == 0 && !(cqe->flags & IORING_CQE_F_MORE);
                    if (cqe) io_uring_cqe_seen(&b->ring, cqe);
                }
            }
        }
    }
    close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    if (ok) {
        b->rx_ok = true;
        return;
    }
    /* A recv may still be in flight on the closed pair: it ends with the
     * ring, and a late CQE is skipped by its tag. The buffers stay
     * registered but unused. */
    return;
off_unreg:
    (void)io_uring_unregister_buf_ring(&b->ring, RX_BGID);
off:
    rx_free_ring(b);
}

static int ur_create(ek__backend **out)
{
    uring_backend *b = ek__calloc(1, sizeof *b);
    if (!b) return EK_ENOMEM;
    b->base.ops = &ek__uring_ops;
    struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP,
                                .cq_entries = CQ_ENTRIES};
    /* Task work without an IPI ("Task work" above); 5.19 (EINVAL before). */
    if (!env_is_zero("EKIDEN_URING_COOP"))
        p.flags |= IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    int rc = io_uring_queue_init_params(SQ_ENTRIES, &b->ring, &p);
    if (rc == -EINVAL && (p.flags & IORING_SETUP_COOP_TASKRUN)) {
        p = (struct io_uring_params){.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP,
                                     .cq_entries = CQ_ENTRIES};
        rc = io_uring_queue_init_params(SQ_ENTRIES, &b->ring, &p);
    }
    if (rc < 0) {
        ek__free(b);
        /* The kernel's ENOMEM (locked-memory limit) is a refusal, not our
         * allocator's: the caller falls back to epoll on any error but ours. */
        return rc == -ENOMEM ? EK_ENOTSUP : rc;
    }
    if (!(p.features & IORING_FEAT_EXT_ARG) || !(p.features & IORING_FEAT_NODROP)) {
        rc = EK_ENOTSUP;
        goto fail_ring;
    }
    rc = ek__mutex_init(&b->sq_lock);
    if (rc) goto fail_ring;
    rc = ek__mutex_init(&b->buf_lock);
    if (rc) goto fail_sq_lock;
    b->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (b->wakefd < 0) {
        rc = ek__err(errno);
        goto fail_lock;
    }
    rc = probe_wake(b);
    if (rc) goto fail_fd;
    probe_msg_ring(b);
    if (!env_is_zero("EKIDEN_URING_DEFER_ARMS")) probe_sender_ring(b);
    probe_rx(b);
    *out = &b->base;
    return EK_OK;
fail_fd:
    close(b->wakefd);
fail_lock:
    ek__mutex_destroy(&b->buf_lock);
fail_sq_lock:
    ek__mutex_destroy(&b->sq_lock);
fail_ring:
    io_uring_queue_exit(&b->ring);
    ek__free(b);
    return rc;
}

bool ek__backend_ring_reads(const ek__backend *be, int *free_bufs, int *nbufs, int *buf_size,
                            uint64_t *starved)
{
    if (be->ops != &ek__uring_ops || !UB(be)->rx_ok) return false;
    const uring_backend *b = UB(be);
    if (free_bufs) *free_bufs = atomic_load_explicit(&b->rx_free, memory_order_relaxed);
    if (nbufs) *nbufs = RX_BUFS;
    if (buf_size) *buf_size = RX_BUF_SIZE;
    if (starved) *starved = atomic_load_explicit(&b->rx_starved, memory_order_relaxed);
    return true;
}

bool ek__backend_uring_defers_arms(const ek__backend *be)
{
    return be->ops == &ek__uring_ops && UB(be)->defer_arms;
}

const ek__backend_ops ek__uring_ops = {
    .name = "io_uring",
    .kind = EK_IO_BACKEND_URING,
    .create = ur_create,
    .destroy = ur_destroy,
    .reg = ur_register,
    .dereg = ur_deregister,
    .poll = ur_poll,
    .wake = ur_wake,
    .clear_wake = ur_clear_wake,
    .stream_recv = ur_stream_recv,
    .stream_wait = ur_stream_wait,
};

#else
#include "backend.h"
bool ek__backend_uring_defers_arms(const ek__backend *be)
{
    EK__UNUSED(be);
    return false;
}
bool ek__backend_ring_reads(const ek__backend *be, int *free_bufs, int *nbufs, int *buf_size,
                            uint64_t *starved)
{
    EK__UNUSED(be);
    EK__UNUSED(free_bufs);
    EK__UNUSED(nbufs);
    EK__UNUSED(buf_size);
    EK__UNUSED(starved);
    return false;
}
#endif
