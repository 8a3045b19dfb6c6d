/*
 * uring.c - the io_uring backend (liburing): readiness through multishot poll,
 * behind the same contract as epoll.c (backend.h).
 *
 * Each registered fd gets one IORING_OP_POLL_ADD with IORING_POLL_ADD_MULTI for
 * POLLIN | POLLOUT | POLLRDHUP | POLLPRI. Multishot poll is edge-triggered unless
 * IORING_POLL_ADD_LEVEL is asked for (the kernel adds EPOLLET): one CQE per
 * wake-up of the socket, carrying the mask at that moment, as EPOLLET does; and
 * arming it reports the current state at once, as EPOLL_CTL_ADD does. That is
 * all io.c needs (sock.c clears readiness only on EAGAIN).
 *
 * The kernel ends a multishot poll (a CQE without IORING_CQE_F_MORE) when it
 * cannot post a CQE, when the task that armed it exits (-ECANCELED from the
 * task-work path), or on an error: the driver re-arms it (arming reports the
 * current state, so no edge is lost in between), up to MAX_ERRORS failed arms
 * in a row, after which the fd gets EK__IO_ERROR and is left alone.
 *
 * The user_data of a poll is a registration record (ureg), not the io token,
 * because a poll's last CQE may come several turns after the cancel: the record
 * lives until the kernel says the poll is over (its CQE without F_MORE), while
 * the token stops being reported the moment ek__backend_deregister returns
 * (ureg.token is cleared under the submission lock). So the memory rule of
 * backend.h holds: no poll that starts after deregister reports the token.
 *
 * Threads: the submission queue is shared by every thread that registers or
 * deregisters (sq_lock, held only to fill and submit SQEs, never while waiting);
 * the completion queue is read only by the thread turning the driver (its turn
 * lock). The cross-thread wake-up is an eventfd watched by a multishot poll
 * (tag WAKE_TAG): ek__backend_wake is one write(2), without the lock.
 *
 * The ring is refused (the runtime falls back to epoll) when the kernel lacks
 * IORING_FEAT_EXT_ARG (5.11: a wait with a timeout that needs no SQE, so the
 * waiting thread never touches the submission queue) or multishot poll (5.13):
 * create() arms the wake-up poll, writes the eventfd and checks that the CQE
 * comes back with F_MORE.
 */
#ifdef EK_HAVE_LIBURING

#include "backend.h"
#include "io.h"

#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define WAKE_TAG   ((uint64_t)1) /* the eventfd's poll */
#define CANCEL_BIT ((uint64_t)2) /* ureg | CANCEL_BIT: a poll-remove for it */
#define POLL_MASK  (POLLIN | POLLOUT | POLLRDHUP | POLLPRI)
#define SQ_ENTRIES 256
#define CQ_ENTRIES 8192
#define MAX_ERRORS 8

typedef struct ureg {
    _Atomic(void *) token; /* the io; NULL once deregistered */
    int fd;
    /* under sq_lock: */
    bool armed;               /* a poll for it is in flight (its last CQE not seen yet) */
    bool dead;                /* deregistered: free once no CQE can name it */
    int cancels;              /* poll-removes in flight */
    int errors;               /* failed arms in a row */
    struct ureg *prev, *next; /* b->regs: every record not yet freed */
} ureg;

typedef struct uring_backend {
    ek__backend base;
    struct io_uring ring;
    ek__mutex sq_lock;
    int wakefd;
    bool wake_armed;     /* under sq_lock */
    atomic_bool sq_left; /* a submit left SQEs in the ring (the kernel said EAGAIN/EBUSY) */
    ureg *regs;          /* under sq_lock */
    ureg **byfd;         /* fd -> live record, under sq_lock */
    size_t nbyfd;
} uring_backend;

#define UB(b) ((uring_backend *)(b))

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

/* sq_lock held. Queue a multishot poll for r (not submitted). */
static int arm(uring_backend *b, ureg *r)
{
    struct io_uring_sqe *sqe = get_sqe(b);
    if (!sqe) return EK_EAGAIN;
    io_uring_prep_poll_multishot(sqe, r->fd, POLL_MASK);
    io_uring_sqe_set_data(sqe, r);
    r->armed = true;
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
    atomic_store_explicit(&b->sq_left, io_uring_sq_ready(&b->ring) != 0, memory_order_relaxed);
    return rc < 0 && rc != -EAGAIN && rc != -EBUSY && rc != -EINTR ? rc : EK_OK;
}

/* sq_lock held. Queue a poll-remove for r's poll (not submitted). If no SQE
 * can be had, the next CQE of the poll tries again (on_cqe). */
static int cancel(uring_backend *b, ureg *r)
{
    struct io_uring_sqe *sqe = get_sqe(b);
    if (!sqe) return EK_EAGAIN;
    io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)r);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)r | CANCEL_BIT);
    r->cancels++;
    return EK_OK;
}

static void unlink_free(uring_backend *b, ureg *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        b->regs = r->next;
    if (r->next) r->next->prev = r->prev;
    ek__free(r);
}

static int ur_register(ek__backend *be, int fd, void *token)
{
    uring_backend *b = UB(be);
    if (fd < 0) return EK_EBADF;
    ureg *r = ek__calloc(1, sizeof *r);
    if (!r) return EK_ENOMEM;
    r->fd = fd;
    atomic_store_explicit(&r->token, token, memory_order_release);
    int rc = EK_OK;
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
    rc = arm(b, r);
    if (!rc) rc = submit(b);
    if (rc) {
        /* Not submitted: take the SQE back is impossible once queued, but
         * arm() only fails before queueing, and submit errors other than
         * "try later" mean the ring is unusable. */
        goto out;
    }
    b->byfd[fd] = r;
    r->next = b->regs;
    if (b->regs) b->regs->prev = r;
    b->regs = r;
    r = NULL;
out:
    ek__mutex_unlock(&b->sq_lock);
    ek__free(r);
    return rc;
}

static int ur_deregister(ek__backend *be, int fd, void *token)
{
    uring_backend *b = UB(be);
    int rc = EK_OK;
    ek__mutex_lock(&b->sq_lock);
    ureg *r = fd >= 0 && (size_t)fd < b->nbyfd ? b->byfd[fd] : NULL;
    if (!r || atomic_load_explicit(&r->token, memory_order_relaxed) != token) {
        rc = EK_ENOENT;
        goto out;
    }
    b->byfd[fd] = NULL;
    r->dead = true;
    atomic_store_explicit(&r->token, NULL, memory_order_release);
    if (!r->armed) {
        unlink_free(b, r); /* no CQE can name it any more */
        goto out;
    }
    /* The poll holds a reference on the file: until it is removed, closing
     * the fd does not close the socket. */
    rc = cancel(b, r);
    if (!rc) rc = submit(b);
out:
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

/* One registration CQE. Returns the readiness to report for its token (0:
 * none) and sets *token. *need_submit when an SQE was queued. */
static uint32_t on_cqe(uring_backend *b, ureg *r, int res, unsigned flags, void **token,
                       bool *need_submit)
{
    uint32_t ready = res > 0 ? ready_bits(res) : 0;
    if (flags & IORING_CQE_F_MORE) {
        *token = atomic_load_explicit(&r->token, memory_order_acquire);
        if (*token) return ready;
        /* Deregistered, and the poll lives on: its remove came while an
         * event was being delivered (-EALREADY) or could not be queued. */
        ek__mutex_lock(&b->sq_lock);
        if (r->cancels == 0 && cancel(b, r) == EK_OK) *need_submit = true;
        ek__mutex_unlock(&b->sq_lock);
        return 0;
    }
    /* The poll is over. */
    ek__mutex_lock(&b->sq_lock);
    r->armed = false;
    *token = NULL;
    if (r->dead) {
        if (r->cancels == 0) unlink_free(b, r); /* else at the last remove's CQE */
    } else {
        *token = atomic_load_explicit(&r->token, memory_order_relaxed);
        if (res < 0 && res != -ECANCELED)
            r->errors++;
        else
            r->errors = 0;
        if (r->errors >= MAX_ERRORS) {
            ready = EK__IO_ERROR; /* ops try the syscall and see the error */
        } else if (arm(b, r) == EK_OK) {
            *need_submit = true;
        } else {
            ready = EK__IO_ERROR;
        }
    }
    ek__mutex_unlock(&b->sq_lock);
    return ready;
}

/* The CQE of a poll-remove for r. -EALREADY: the poll was delivering an event
 * and could not be removed; ask again. -ENOENT: it had ended already. */
static void on_cancel_cqe(uring_backend *b, ureg *r, int res, bool *need_submit)
{
    ek__mutex_lock(&b->sq_lock);
    r->cancels--;
    if (r->armed && r->cancels == 0 && res == -EALREADY && cancel(b, r) == EK_OK)
        *need_submit = true;
    if (r->dead && !r->armed && r->cancels == 0) unlink_free(b, r);
    ek__mutex_unlock(&b->sq_lock);
}

static int ur_poll(ek__backend *be, ek__event *events, int n, int timeout_ms)
{
    uring_backend *b = UB(be);
    if (n <= 0) return EK_EINVAL; /* as epoll_wait */
    /* SQEs a submit could not pass on (EAGAIN/EBUSY) go now. */
    if (atomic_load_explicit(&b->sq_left, memory_order_relaxed)) {
        ek__mutex_lock(&b->sq_lock);
        (void)submit(b);
        ek__mutex_unlock(&b->sq_lock);
    }
    struct io_uring_cqe *cqe;
    int rc;
    if (timeout_ms == 0) {
        rc = io_uring_peek_cqe(&b->ring, &cqe);
    } else if (timeout_ms < 0) {
        rc = io_uring_wait_cqe(&b->ring, &cqe);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                       .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
        rc = io_uring_wait_cqe_timeout(&b->ring, &cqe, &ts);
    }
    if (rc == -EAGAIN || rc == -ETIME || rc == -EINTR) return 0;
    if (rc < 0) return rc;

    int got = 0;
    unsigned seen = 0, head;
    bool need_submit = false, woke = false;
    io_uring_for_each_cqe(&b->ring, head, cqe)
    {
        if (got == n) break;
        seen++;
        uint64_t tag = io_uring_cqe_get_data64(cqe);
        if (tag & CANCEL_BIT) {
            on_cancel_cqe(b, (ureg *)(uintptr_t)(tag & ~CANCEL_BIT), cqe->res, &need_submit);
            continue;
        }
        if (tag == WAKE_TAG) {
            if (!(cqe->flags & IORING_CQE_F_MORE)) {
                ek__mutex_lock(&b->sq_lock);
                b->wake_armed = false;
                if (arm_wake(b) == EK_OK) need_submit = true;
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
        void *token;
        uint32_t ready =
            on_cqe(b, (ureg *)(uintptr_t)tag, cqe->res, cqe->flags, &token, &need_submit);
        if (ready && token) {
            events[got].token = token;
            events[got].ready = ready;
            got++;
        }
    }
    io_uring_cq_advance(&b->ring, seen);
    if (need_submit) {
        ek__mutex_lock(&b->sq_lock);
        rc = submit(b);
        ek__mutex_unlock(&b->sq_lock);
        if (rc) return rc;
    }
    return got;
}

static void ur_wake(ek__backend *b)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: a wake is pending anyway. */
    while (write(UB(b)->wakefd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

static void ur_clear_wake(ek__backend *b)
{
    uint64_t v;
    while (read(UB(b)->wakefd, &v, sizeof v) < 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------ lifecycle -- */

static void ur_destroy(ek__backend *be)
{
    uring_backend *b = UB(be);
    io_uring_queue_exit(&b->ring); /* the kernel cancels what is in flight */
    while (b->regs) unlink_free(b, b->regs);
    ek__free(b->byfd);
    close(b->wakefd);
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
    ur_wake(&b->base);
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {.tv_sec = 1};
    rc = io_uring_wait_cqe_timeout(&b->ring, &cqe, &ts);
    if (rc < 0) return rc;
    bool ok = io_uring_cqe_get_data64(cqe) == WAKE_TAG && cqe->res > 0 &&
              (cqe->flags & IORING_CQE_F_MORE);
    io_uring_cqe_seen(&b->ring, cqe);
    ur_clear_wake(&b->base);
    return ok ? EK_OK : EK_ENOTSUP;
}

static int ur_create(ek__backend **out)
{
    uring_backend *b = ek__calloc(1, sizeof *b);
    if (!b) return EK_ENOMEM;
    b->base.ops = &ek__uring_ops;
    struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP,
                                .cq_entries = CQ_ENTRIES};
    int rc = io_uring_queue_init_params(SQ_ENTRIES, &b->ring, &p);
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
    b->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (b->wakefd < 0) {
        rc = ek__err(errno);
        goto fail_lock;
    }
    rc = probe_wake(b);
    if (rc) goto fail_fd;
    *out = &b->base;
    return EK_OK;
fail_fd:
    close(b->wakefd);
fail_lock:
    ek__mutex_destroy(&b->sq_lock);
fail_ring:
    io_uring_queue_exit(&b->ring);
    ek__free(b);
    return rc;
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
};

#else
typedef int ek__uring_unused; /* ISO C: a translation unit is not empty */
#endif
