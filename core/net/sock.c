/*
 * sock.c - the socket core shared by TCP, UDP and Unix sockets.
 *
 * Every operation that can wait has the same shape (DESIGN section 2, 4):
 *   1. spend one unit of the task's budget (ek_coop_proceed);
 *   2. ask the reactor whether the socket is ready in that direction
 *      (ek__io_poll_ready); if not, it has stored the task's waker: EK_PENDING;
 *   3. try the syscall; on EAGAIN clear the readiness *with the tick observed in
 *      step 2* and go back to 2. If an event arrived after that tick the clear
 *      is skipped and the syscall is simply retried, so no edge is ever lost;
 *      if none arrived, step 2 registers the waker and reports EK_PENDING.
 * Because epoll is edge-triggered, readiness is only ever cleared by an op that
 * saw EAGAIN, never by the driver.
 */
#include "sock.h"
#include "sys.h"

#include "task/future.h"
#include "task/task.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/uio.h>
#include <unistd.h>

/* Readiness bits that EAGAIN proves stale, per direction: every bit that lets
 * poll_ready report the direction ready. Closed and error bits are included:
 * after EAGAIN there is nothing (left) to report, and a bit left set would make
 * step 2 report ready forever (a spin). Example: a socket registered while in
 * state CLOSE gets EPOLLOUT|EPOLLHUP, a stale WRITE_CLOSED that also satisfies
 * the read direction. */
#define EK__STALE_ON_READ  (EK__READABLE | EK__READ_CLOSED | EK__WRITE_CLOSED | EK__IO_ERROR)
#define EK__STALE_ON_WRITE (EK__WRITABLE | EK__WRITE_CLOSED | EK__IO_ERROR)

/* Belt and braces: if readiness ever fails to clear (a bug), an op retries at
 * most this many times in one poll, then yields instead of monopolising the
 * worker. */
#define EK__MAX_RETRIES 64

/* The longest the listener waits before retrying accept when out of fds. */
#define EK__ACCEPT_BACKOFF_MIN_MS 10
#define EK__ACCEPT_BACKOFF_MAX_MS 1000

static bool ek__would_block(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK;
}

int ek__sock_register(ek__sock *s)
{
    /* Connected streams read only through ek__sock_read: the backend may take
     * their bytes itself (io_uring's ring reads, backend.h). */
    bool stream = s->tag == EK__TAG_TCP_STREAM || s->tag == EK__TAG_UNIX_STREAM;
    return ek__io_new(s->rt, s->fd, stream ? EK__REG_STREAM : 0u, &s->io);
}

int ek__sock_adopt(ek_runtime *rt, int fd, uint32_t tag, ek__sock **out)
{
    ek__sock *s = ek__calloc(1, sizeof *s);
    if (s == NULL) {
        close(fd);
        return EK_ENOMEM;
    }
    s->tag = tag;
    s->fd = fd;
    s->rt = rt;
    ek__rt_ref(rt); /* the socket's reference on its runtime (rt.h) */
    atomic_init(&s->closed, 0);
    *out = s;
    return EK_OK;
}

int ek__sock_open(ek_runtime *rt, int domain, int type, uint32_t tag, ek__sock **out)
{
    int rc = ek__rt_check(rt);
    if (rc != EK_OK) return rc;
    int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return ek__err(errno);
    return ek__sock_adopt(rt, fd, tag, out);
}

int ek__sock_adopt_registered(ek_runtime *rt, int fd, uint32_t tag, ek__sock **out)
{
    int rc = ek__sock_adopt(rt, fd, tag, out);
    if (rc != EK_OK) return rc;
    rc = ek__sock_register(*out);
    if (rc != EK_OK) {
        ek__sock_free(*out);
        *out = NULL;
    }
    return rc;
}

int ek__sock_bind(ek__sock *s, const struct sockaddr *sa, socklen_t len, int backlog)
{
    if (bind(s->fd, sa, len) != 0) return ek__err(errno);
    if (backlog >= 0 && listen(s->fd, backlog == 0 ? EK__DEFAULT_BACKLOG : backlog) != 0)
        return ek__err(errno);
    return EK_OK;
}

int ek__sock_close(ek__sock *s)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&s->closed, &expected, 1, memory_order_relaxed,
                                                 memory_order_relaxed))
        return EK_OK;
    /* The reactor resource carries the real synchronisation: once shut down,
     * every poll_ready (including a concurrent one) reports EK_ECLOSED and both
     * waiters are woken. shutdown(2) tells the peer now; the descriptor itself
     * stays open until free (see sock.h). Errors (ENOTCONN for an unconnected
     * socket) do not matter here. */
    ek__io_shutdown(s->io);
    shutdown(s->fd, SHUT_RDWR);
    return EK_OK;
}

void ek__sock_free(ek__sock *s)
{
    if (s == NULL) return;
    if (s->backoff != NULL) ek_future_drop(s->backoff);
    /* Release (deregister, wake waiters) before close: the fd number must not be
     * reused while it is still registered. */
    ek__io_release(s->io);
    close(s->fd);
    s->tag = EK__TAG_DEAD;
    ek_runtime *rt = s->rt;
    ek__free(s);
    ek__rt_unref(rt); /* may be the last: the driver goes after the socket */
}

/* Step 1 of every op. */
static int ek__sock_begin(ek__sock *s, ek_cx *cx)
{
    if (atomic_load_explicit(&s->closed, memory_order_relaxed)) return EK_ECLOSED;
    return ek__coop_proceed(cx);
}

/* One non-blocking attempt of an operation, for ek__sock_poll_io. Returns
 * EK_OK (done), EK__OP_WOULD_BLOCK (EAGAIN: wait for readiness), EK__OP_RETRY
 * (EINTR or a skipped error: try again at once) or a final status. */
typedef int (*ek__sock_op)(ek__sock *s, void *arg);
#define EK__OP_WOULD_BLOCK EK_PENDING
#define EK__OP_RETRY       EK_EINTR
/* Done, and the read drained what the socket had (a short read whose backend
 * will report the next byte: backend.h, "Short reads"): READABLE is stale, so
 * the next read waits for an event instead of a recv(2) that would find
 * nothing. */
#define EK__OP_DRAINED 4

/* Where an op that waits for readiness waits (task.h): `site`, except that a
 * send on a stream is a write. Only on the way to EK_PENDING. */
static uint8_t ek__sock_site(const ek__sock *s, uint8_t site)
{
    bool stream = s->tag == EK__TAG_TCP_STREAM || s->tag == EK__TAG_UNIX_STREAM;
    return site == EK__SITE_SEND && stream ? EK__SITE_WRITE : site;
}

/* Steps 2 and 3 of every op (see the top of this file), as Tokio's
 * Registration::poll_io: wait for readiness in `dir`, run `op`; when it would
 * block, clear exactly the readiness it proved stale, with the tick observed
 * before it ran, and look again. */
static int ek__sock_poll_io(ek__sock *s, ek_cx *cx, int dir, ek__sock_op op, void *arg,
                            uint8_t site)
{
    uint32_t stale = dir == EK__DIR_READ ? EK__STALE_ON_READ : EK__STALE_ON_WRITE;
    for (int tries = 0;; tries++) {
        if (tries == EK__MAX_RETRIES) return ek_yield_now(cx);
        uint32_t ready;
        uint64_t tick;
        int rc = ek__io_poll_ready(s->io, cx, dir, &ready, &tick);
        if (rc != EK_OK) {
            if (rc == EK_PENDING) ek__cx_pend(cx, ek__sock_site(s, site)); /* task.h */
            return rc;
        }
        rc = op(s, arg);
        if (rc == EK__OP_WOULD_BLOCK) {
            ek__io_clear_ready(s->io, ready & stale, tick);
        } else if (rc == EK__OP_DRAINED) {
            /* Only READABLE: the closed and error bits are final (the next
             * read must see the end or the error), as Tokio's
             * clear_readiness keeps them. */
            ek__io_clear_ready(s->io, EK__READABLE, tick);
            return EK_OK;
        } else if (rc != EK__OP_RETRY) {
            return rc;
        }
    }
}

/* errno after a failed syscall, in the op protocol above. */
static int ek__op_errno(int e)
{
    if (ek__would_block(e)) return EK__OP_WOULD_BLOCK;
    return e == EINTR ? EK__OP_RETRY : ek__err(e);
}

typedef struct ek__recv_op {
    void *buf;
    size_t len;
    ek_sockaddr *from;
    size_t *nread;
} ek__recv_op;

static int ek__recv_once(ek__sock *s, void *arg)
{
    ek__recv_op *o = arg;
    ssize_t r;
    if (o->from != NULL) {
        socklen_t alen = sizeof o->from->ss;
        r = ek__sys_recvfrom(s->fd, o->buf, o->len, 0, (struct sockaddr *)&o->from->ss, &alen);
        if (r >= 0) o->from->len = alen;
    } else {
        r = ek__sys_recvfrom(s->fd, o->buf, o->len, 0, NULL, NULL);
    }
    if (r < 0) return ek__op_errno(errno);
    *o->nread = (size_t)r;
    return EK_OK;
}

int ek__sock_recv(ek__sock *s, ek_cx *cx, void *buf, size_t len, ek_sockaddr *from, size_t *nread)
{
    int rc = ek__sock_begin(s, cx);
    if (rc != EK_OK) return rc;
    ek__recv_op o = {buf, len, from, nread};
    return ek__sock_poll_io(s, cx, EK__DIR_READ, ek__recv_once, &o, EK__SITE_RECV);
}

/* A stream read: the bytes the backend received itself first (io_uring's ring
 * reads), else recv(2); when that finds nothing the backend arranges the
 * READABLE event to wait for (arms its receive, or a poll).
 *
 * A short read (fewer bytes than asked, not the end) drained the socket
 * (Tokio's rule for epoll and kqueue): the read after it would find nothing
 * and cost a recv(2) that fails with EAGAIN. It is skipped where the backend
 * promises an event for the next byte (backend.h, "Short reads"): on epoll
 * always; on io_uring once ek__io_stream_wait has armed the stream's receive
 * (a syscall only when none is armed, as the EAGAIN would have cost). */
static int ek__stream_recv_once(ek__sock *s, void *arg)
{
    ek__recv_op *o = arg;
    int rc = ek__io_stream_recv(s->io, o->buf, o->len, o->nread);
    if (rc == EK__RECV_DIRECT) {
        rc = ek__recv_once(s, arg);
        if (rc == EK__OP_WOULD_BLOCK) {
            rc = ek__io_stream_wait(s->io);
            /* EK__RECV_AGAIN (bytes came meanwhile) or no SQE to be had:
             * look again (at most EK__MAX_RETRIES times in one poll, then
             * the task yields). */
            return rc == EK_OK ? EK__OP_WOULD_BLOCK : EK__OP_RETRY;
        }
    }
    if (rc != EK_OK) return rc; /* an error, or EK__RECV_WOULD_BLOCK */
    if (*o->nread > 0 && *o->nread < o->len && ek__io_stream_wait(s->io) == EK_OK)
        return EK__OP_DRAINED;
    return EK_OK;
}

/* ek__sock_read where the backend has no stream hooks (epoll: io->direct):
 * ek__sock_poll_io with ek__stream_recv_once, less the two calls that would
 * answer EK__RECV_DIRECT and EK_OK. The same steps and the same clears: on
 * EAGAIN the readiness EAGAIN proved stale, after a short read READABLE alone
 * (the backend posts an event for every arrival, backend.h). */
static int ek__sock_read_direct(ek__sock *s, ek_cx *cx, void *buf, size_t len, size_t *nread)
{
    ek__io *io = s->io;
    for (int tries = 0;; tries++) {
        if (EK__UNLIKELY(tries == EK__MAX_RETRIES)) return ek_yield_now(cx);
        uint32_t ready;
        uint64_t tick;
        int rc = ek__io_poll_ready(io, cx, EK__DIR_READ, &ready, &tick);
        if (rc != EK_OK) {
            if (rc == EK_PENDING) ek__cx_pend(cx, EK__SITE_READ); /* task.h */
            return rc;
        }
        ssize_t r = ek__sys_recvfrom(s->fd, buf, len, 0, NULL, NULL);
        if (r >= 0) {
            *nread = (size_t)r;
            if (r > 0 && (size_t)r < len) ek__io_clear_ready(io, EK__READABLE, tick);
            return EK_OK;
        }
        rc = ek__op_errno(errno);
        if (rc == EK__OP_WOULD_BLOCK) {
            ek__io_clear_ready(io, ready & EK__STALE_ON_READ, tick);
        } else if (rc != EK__OP_RETRY) {
            return rc;
        }
    }
}

int ek__sock_read(ek__sock *s, ek_cx *cx, void *buf, size_t len, size_t *nread)
{
    if (len == 0) {
        /* Nothing to wait for: a stream read of 0 bytes is 0 at once (as
         * read(2) and Tokio's AsyncRead with an empty buffer), whether or not
         * data is pending. */
        if (atomic_load_explicit(&s->closed, memory_order_relaxed)) return EK_ECLOSED;
        *nread = 0;
        return EK_OK;
    }
    int rc = ek__sock_begin(s, cx);
    if (rc != EK_OK) return rc;
    if (s->io->direct) return ek__sock_read_direct(s, cx, buf, len, nread);
    ek__recv_op o = {buf, len, NULL, nread};
    return ek__sock_poll_io(s, cx, EK__DIR_READ, ek__stream_recv_once, &o, EK__SITE_READ);
}

/* Unconnected Unix datagram sends that find the receiver's queue full get
 * EAGAIN, and the kernel never signals the sender when that queue drains (it
 * only tracks a connected peer), so waiting could hang: report EK_EAGAIN. */
static bool ek__send_cannot_wait(const ek__sock *s, const struct sockaddr *to)
{
    return to != NULL && s->tag == EK__TAG_UNIX_DGRAM;
}

typedef struct ek__send_op {
    struct msghdr msg;
    size_t *nsent;
} ek__send_op;

/* MSG_NOSIGNAL: a reset peer gives EPIPE, never SIGPIPE. */
static int ek__send_result(ek__sock *s, ssize_t r, const void *to, size_t *nsent)
{
    if (r >= 0) {
        *nsent = (size_t)r;
        return EK_OK;
    }
    if (ek__would_block(errno) && ek__send_cannot_wait(s, to)) return EK_EAGAIN;
    return ek__op_errno(errno);
}

static int ek__send_once(ek__sock *s, void *arg)
{
    ek__send_op *o = arg;
    return ek__send_result(s, ek__sys_sendmsg(s->fd, &o->msg, MSG_NOSIGNAL), o->msg.msg_name,
                           o->nsent);
}

/* One buffer: sendto(2), which (unlike sendmsg) neither builds a msghdr here
 * nor makes the kernel copy one and an iovec in. */
typedef struct ek__sendto_op {
    const void *buf;
    size_t len;
    const struct sockaddr *to;
    socklen_t tolen;
    size_t *nsent;
} ek__sendto_op;

static int ek__sendto_once(ek__sock *s, void *arg)
{
    ek__sendto_op *o = arg;
    return ek__send_result(s, ek__sys_sendto(s->fd, o->buf, o->len, MSG_NOSIGNAL, o->to, o->tolen),
                           o->to, o->nsent);
}

int ek__sock_send(ek__sock *s, ek_cx *cx, const void *buf, size_t len, const struct sockaddr *to,
                  socklen_t tolen, size_t *nsent)
{
    int rc = ek__sock_begin(s, cx);
    if (rc != EK_OK) return rc;
    ek__sendto_op o = {buf, len, to, to ? tolen : 0, nsent};
    return ek__sock_poll_io(s, cx, EK__DIR_WRITE, ek__sendto_once, &o, EK__SITE_SEND);
}

#define EK__IOV_MAX 1024

int ek__sock_sendv(ek__sock *s, ek_cx *cx, const void *const *bufs, const size_t *lens,
                   size_t count, size_t *nsent)
{
    if (count > EK__IOV_MAX) return EK_EINVAL;
    int rc = ek__sock_begin(s, cx);
    if (rc != EK_OK) return rc;
    /* The iovec array lives on the stack (16 KiB at most) so that this path
     * never allocates; counts above IOV_MAX are rejected above. */
    struct iovec iov[EK__IOV_MAX];
    for (size_t i = 0; i < count; i++) {
        iov[i].iov_base = (void *)bufs[i];
        iov[i].iov_len = lens[i];
    }
    ek__send_op o = {.msg = {.msg_iov = iov, .msg_iovlen = count}, .nsent = nsent};
    return ek__sock_poll_io(s, cx, EK__DIR_WRITE, ek__send_once, &o, EK__SITE_WRITE);
}

/* accept4 errors that concern one aborted connection, not the listener: skip
 * it and take the next (accept(2): Linux passes pending network errors). */
static bool ek__accept_skippable(int e)
{
    switch (e) {
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case EPERM: /* firewall rules */
        return true;
    default:
        return false;
    }
}

/* Out of descriptors or kernel memory: the pending connection stays queued,
 * retrying at once would spin, so the listener waits on a timer. */
static bool ek__accept_exhausted(int e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

/* Poll the back-off timer: EK_OK when it has fired (or there is none). The
 * listener's readiness is deliberately left set while backing off, so the
 * retry needs no new edge from the kernel. */
static int ek__accept_wait_backoff(ek__sock *l, ek_cx *cx)
{
    if (l->backoff == NULL) return EK_OK;
    int rc = ek_future_poll(l->backoff, cx, NULL);
    if (rc == EK_PENDING) return EK_PENDING;
    ek_future_drop(l->backoff);
    l->backoff = NULL;
    return EK_OK;
}

static int ek__accept_start_backoff(ek__sock *l, ek_cx *cx)
{
    uint64_t ms = l->backoff_ms == 0 ? EK__ACCEPT_BACKOFF_MIN_MS : l->backoff_ms * 2;
    if (ms > EK__ACCEPT_BACKOFF_MAX_MS) ms = EK__ACCEPT_BACKOFF_MAX_MS;
    l->backoff_ms = ms;
    int rc = ek_sleep(l->rt, ms, &l->backoff);
    if (rc != EK_OK) return rc;
    return ek__accept_wait_backoff(l, cx);
}

typedef struct ek__accept_op {
    uint32_t tag;
    ek__sock **out;
    ek_sockaddr *peer;
    bool exhausted; /* accept4 failed for lack of descriptors or memory */
} ek__accept_op;

static int ek__accept_once(ek__sock *l, void *arg)
{
    ek__accept_op *o = arg;
    struct sockaddr_storage ss;
    socklen_t alen = sizeof ss;
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (ek__accept_skippable(e)) return EK__OP_RETRY;
        o->exhausted = ek__accept_exhausted(e);
        return ek__op_errno(e);
    }
    l->backoff_ms = 0;
    int rc = ek__sock_adopt_registered(l->rt, fd, o->tag, o->out);
    if (rc == EK_OK && o->peer != NULL) ek__sockaddr_assign(o->peer, &ss, alen);
    return rc;
}

int ek__sock_accept(ek__sock *l, ek_cx *cx, uint32_t tag, ek__sock **out, ek_sockaddr *peer)
{
    int rc = ek__sock_begin(l, cx);
    if (rc != EK_OK) return rc;
    ek__accept_op o = {tag, out, peer, false};
    for (;;) {
        rc = ek__accept_wait_backoff(l, cx);
        if (rc != EK_OK) return rc;
        rc = ek__sock_poll_io(l, cx, EK__DIR_READ, ek__accept_once, &o, EK__SITE_ACCEPT);
        if (!o.exhausted) return rc;
        o.exhausted = false;
        rc = ek__accept_start_backoff(l, cx);
        if (rc != EK_OK) return rc;
    }
}

int ek__sock_shutdown_write(ek__sock *s)
{
    return shutdown(s->fd, SHUT_WR) == 0 ? EK_OK : ek__err(errno);
}

int ek__sock_local_addr(ek__sock *s, ek_sockaddr *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(s->fd, (struct sockaddr *)&ss, &len) != 0) return ek__err(errno);
    return ek__sockaddr_assign(out, &ss, len);
}

int ek__sock_peer_addr(ek__sock *s, ek_sockaddr *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(s->fd, (struct sockaddr *)&ss, &len) != 0) return ek__err(errno);
    return ek__sockaddr_assign(out, &ss, len);
}

int ek__sock_setopt_int(ek__sock *s, int level, int name, int value)
{
    return setsockopt(s->fd, level, name, &value, sizeof value) == 0 ? EK_OK : ek__err(errno);
}

/* ---- connect ---- */

typedef struct ek__connect {
    ek_runtime *rt;
    uint32_t tag;
    socklen_t len;
    struct sockaddr_storage addr;
    ek__sock *sock; /* NULL until the first poll, and again once handed out */
} ek__connect;

/* First poll: create the socket and start connecting. EK_OK: connected at once;
 * EK_PENDING: in progress; else the error. */
static int ek__connect_start(ek__connect *c)
{
    int fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return ek__err(errno);
    int r;
    do {
        r = connect(fd, (struct sockaddr *)&c->addr, c->len);
    } while (r != 0 && errno == EINTR);
    int e = r == 0 ? 0 : errno;
    if (e != 0 && e != EINPROGRESS) {
        /* Includes EAGAIN from a Unix listener with a full backlog: the kernel
         * gives no event to wait for, so it is reported. */
        close(fd);
        return ek__err(e);
    }
    /* Registered only now: a socket registered before connect(2) reports
     * EPOLLOUT|EPOLLHUP at once (state CLOSE), which would look like a finished
     * connect. */
    int rc = ek__sock_adopt_registered(c->rt, fd, c->tag, &c->sock);
    if (rc != EK_OK) return rc;
    return e == 0 ? EK_OK : EK_PENDING;
}

static int ek__connect_poll(void *state, ek_cx *cx, void **out)
{
    ek__connect *c = state;
    if (c->sock == NULL) {
        int rc = ek__connect_start(c);
        if (rc < 0) return rc;
        if (rc == EK_OK) goto connected;
    }
    for (;;) {
        uint32_t ready;
        uint64_t tick;
        int rc = ek__io_poll_ready(c->sock->io, cx, EK__DIR_WRITE, &ready, &tick);
        if (rc != EK_OK) return ek__cx_pended(cx, rc, EK__SITE_CONNECT);
        int err = 0;
        socklen_t elen = sizeof err;
        if (getsockopt(c->sock->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) err = errno;
        if (err != 0) return ek__err(err);
        /* Writable and no error. Guard against a readiness that predates the
         * handshake: only a socket with a peer is connected. */
        struct sockaddr_storage ss;
        socklen_t slen = sizeof ss;
        if (getpeername(c->sock->fd, (struct sockaddr *)&ss, &slen) == 0) break;
        if (errno != ENOTCONN) return ek__err(errno);
        ek__io_clear_ready(c->sock->io, ready & EK__STALE_ON_WRITE, tick);
    }
connected:
    *out = c->sock;
    c->sock = NULL;
    return EK_OK;
}

static void ek__connect_drop(void *state)
{
    ek__connect *c = state;
    ek__sock_free(c->sock);
    ek__rt_unref(c->rt);
}

int ek__sock_connect(ek_runtime *rt, const struct sockaddr *sa, socklen_t len, uint32_t tag,
                     ek_future **out)
{
    if (len > sizeof(struct sockaddr_storage)) return EK_EINVAL;
    ek__connect *c;
    int rc = ek__future_new_inline(ek__connect_poll, ek__connect_drop, sizeof *c, out, (void **)&c);
    if (rc != EK_OK) return rc;
    c->rt = rt;
    ek__rt_ref(rt); /* the caller checked rt */
    c->tag = tag;
    c->len = len;
    memcpy(&c->addr, sa, len);
    c->sock = NULL;
    return EK_OK;
}

/* ---- write_all ---- */

typedef struct ek__write_all {
    ek__sock *s;
    const char *buf;
    size_t len, off;
    size_t *progress; /* may be NULL; always equal to off when not NULL */
} ek__write_all;

static int ek__write_all_poll(void *state, ek_cx *cx, void **out)
{
    ek__write_all *w = state;
    while (w->off < w->len) {
        size_t n = 0;
        int rc = ek__sock_send(w->s, cx, w->buf + w->off, w->len - w->off, NULL, 0, &n);
        if (rc != EK_OK) return rc;
        w->off += n;
        if (w->progress != NULL) *w->progress = w->off;
    }
    *out = NULL;
    return EK_OK;
}

int ek__sock_write_all(ek__sock *s, const void *buf, size_t len, size_t *progress, ek_future **out)
{
    ek__write_all *w;
    int rc = ek__future_new_inline(ek__write_all_poll, NULL, sizeof *w, out, (void **)&w);
    if (rc != EK_OK) return rc;
    w->s = s;
    w->buf = buf;
    w->len = len;
    w->off = 0;
    w->progress = progress;
    if (progress != NULL) *progress = 0;
    return EK_OK;
}
