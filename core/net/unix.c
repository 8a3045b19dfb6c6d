/*
 * unix.c - Unix domain sockets: stream listener, stream, datagram. Paths
 * beginning with '@' are Linux abstract names (see ek__sockaddr_unix). The I/O
 * is the same as TCP's (sock.c).
 */
#include "sock.h"

#include <unistd.h>

#define EK__SOCK(h) ((ek__sock *)(h))

/* socket + bind (+ listen when backlog >= 0). path NULL: unbound. */
static int ek__unix_bind(ek_runtime *rt, const char *path, int type, int backlog, uint32_t tag,
                         ek__sock **out)
{
    struct sockaddr_un sun;
    socklen_t len = 0;
    if (path != NULL) {
        int rc = ek__sockaddr_unix(&sun, &len, path);
        if (rc != EK_OK) return rc;
    }
    ek__sock *s;
    int rc = ek__sock_open(rt, AF_UNIX, type, tag, &s);
    if (rc != EK_OK) return rc;
    if (path != NULL) rc = ek__sock_bind(s, (const struct sockaddr *)&sun, len, backlog);
    /* Registered only once bound: see ek__sock_open. */
    if (rc == EK_OK) rc = ek__sock_register(s);
    if (rc != EK_OK) {
        ek__sock_free(s);
        return rc;
    }
    *out = s;
    return EK_OK;
}

/* ---- listener ---- */

int ek_unix_bind(ek_runtime *rt, const char *path, int backlog, ek_unix_listener **out)
{
    if (path == NULL || out == NULL) return EK_EINVAL;
    return ek__unix_bind(rt, path, SOCK_STREAM, backlog <= 0 ? EK__DEFAULT_BACKLOG : backlog,
                         EK__TAG_UNIX_LISTENER, (ek__sock **)out);
}

int ek_unix_accept(ek_unix_listener *l, ek_cx *cx, ek_unix_stream **out, ek_sockaddr *peer)
{
    int rc = ek__sock_check(l, EK__TAG_UNIX_LISTENER);
    if (rc != EK_OK) return rc;
    if (out == NULL || (peer != NULL && !EK__CHECK_TAG(peer, EK__TAG_SOCKADDR))) return EK_EINVAL;
    return ek__sock_accept(EK__SOCK(l), cx, EK__TAG_UNIX_STREAM, (ek__sock **)out, peer);
}

int ek_unix_listener_local_addr(ek_unix_listener *l, ek_sockaddr *out)
{
    int rc = ek__sock_check(l, EK__TAG_UNIX_LISTENER);
    if (rc != EK_OK) return rc;
    if (!EK__CHECK_TAG(out, EK__TAG_SOCKADDR)) return EK_EINVAL;
    return ek__sock_local_addr(EK__SOCK(l), out);
}

int ek_unix_listener_close(ek_unix_listener *l)
{
    if (!EK__CHECK_TAG(l, EK__TAG_UNIX_LISTENER)) return EK_EINVAL;
    return ek__sock_close(EK__SOCK(l));
}

void ek_unix_listener_free(ek_unix_listener *l)
{
    if (EK__CHECK_TAG(l, EK__TAG_UNIX_LISTENER)) ek__sock_free(EK__SOCK(l));
}

/* ---- stream ---- */

int ek_unix_connect(ek_runtime *rt, const char *path, ek_future **out)
{
    if (out == NULL) return EK_EINVAL;
    struct sockaddr_un sun;
    socklen_t len;
    int rc = ek__sockaddr_unix(&sun, &len, path);
    if (rc != EK_OK) return rc;
    rc = ek__rt_check(rt);
    if (rc != EK_OK) return rc;
    return ek__sock_connect(rt, (const struct sockaddr *)&sun, len, EK__TAG_UNIX_STREAM, out);
}

int ek_unix_pair(ek_runtime *rt, ek_unix_stream **a, ek_unix_stream **b)
{
    if (a == NULL || b == NULL) return EK_EINVAL;
    int rc = ek__rt_check(rt);
    if (rc != EK_OK) return rc;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
        return ek__err(errno);
    ek__sock *sa, *sb;
    rc = ek__sock_adopt_registered(rt, fds[0], EK__TAG_UNIX_STREAM, &sa);
    if (rc != EK_OK) {
        close(fds[1]);
        return rc;
    }
    rc = ek__sock_adopt_registered(rt, fds[1], EK__TAG_UNIX_STREAM, &sb);
    if (rc != EK_OK) {
        ek__sock_free(sa);
        return rc;
    }
    *a = (ek_unix_stream *)sa;
    *b = (ek_unix_stream *)sb;
    return EK_OK;
}

int ek_unix_read(ek_unix_stream *s, ek_cx *cx, void *buf, size_t len, size_t *nread)
{
    if (!EK__CHECK_TAG(s, EK__TAG_UNIX_STREAM) || nread == NULL || (buf == NULL && len > 0))
        return EK_EINVAL;
    return ek__sock_read(EK__SOCK(s), cx, buf, len, nread);
}

int ek_unix_write(ek_unix_stream *s, ek_cx *cx, const void *buf, size_t len, size_t *nwritten)
{
    if (!EK__CHECK_TAG(s, EK__TAG_UNIX_STREAM) || nwritten == NULL || (buf == NULL && len > 0))
        return EK_EINVAL;
    return ek__sock_send(EK__SOCK(s), cx, buf, len, NULL, 0, nwritten);
}

int ek_unix_writev(ek_unix_stream *s, ek_cx *cx, const void *const *bufs, const size_t *lens,
                   size_t count, size_t *nwritten)
{
    if (!EK__CHECK_TAG(s, EK__TAG_UNIX_STREAM) || nwritten == NULL ||
        (count > 0 && (bufs == NULL || lens == NULL)))
        return EK_EINVAL;
    return ek__sock_sendv(EK__SOCK(s), cx, bufs, lens, count, nwritten);
}

int ek_unix_write_all(ek_unix_stream *s, const void *buf, size_t len, size_t *progress,
                      ek_future **out)
{
    if (!EK__CHECK_TAG(s, EK__TAG_UNIX_STREAM) || out == NULL || (buf == NULL && len > 0))
        return EK_EINVAL;
    return ek__sock_write_all(EK__SOCK(s), buf, len, progress, out);
}

int ek_unix_shutdown(ek_unix_stream *s)
{
    int rc = ek__sock_check(s, EK__TAG_UNIX_STREAM);
    return rc != EK_OK ? rc : ek__sock_shutdown_write(EK__SOCK(s));
}

int ek_unix_peer_addr(ek_unix_stream *s, ek_sockaddr *out)
{
    int rc = ek__sock_check(s, EK__TAG_UNIX_STREAM);
    if (rc != EK_OK) return rc;
    if (!EK__CHECK_TAG(out, EK__TAG_SOCKADDR)) return EK_EINVAL;
    return ek__sock_peer_addr(EK__SOCK(s), out);
}

int ek_unix_local_addr(ek_unix_stream *s, ek_sockaddr *out)
{
    int rc = ek__sock_check(s, EK__TAG_UNIX_STREAM);
    if (rc != EK_OK) return rc;
    if (!EK__CHECK_TAG(out, EK__TAG_SOCKADDR)) return EK_EINVAL;
    return ek__sock_local_addr(EK__SOCK(s), out);
}

int ek_unix_close(ek_unix_stream *s)
{
    if (!EK__CHECK_TAG(s, EK__TAG_UNIX_STREAM)) return EK_EINVAL;
    return ek__sock_close(EK__SOCK(s));
}

void ek_unix_free(ek_unix_stream *s)
{
    if (EK__CHECK_TAG(s, EK__TAG_UNIX_STREAM)) ek__sock_free(EK__SOCK(s));
}

/* ---- datagram ---- */

int ek_unix_dgram_bind(ek_runtime *rt, const char *path, ek_unix_dgram **out)
{
    if (out == NULL) return EK_EINVAL;
    return ek__unix_bind(rt, path, SOCK_DGRAM, -1, EK__TAG_UNIX_DGRAM, (ek__sock **)out);
}

int ek_unix_dgram_connect(ek_unix_dgram *d, const ek_sockaddr *addr)
{
    int rc = ek__sock_check(d, EK__TAG_UNIX_DGRAM);
    if (rc != EK_OK) return rc;
    if (ek__sockaddr_check_unix(addr) != EK_OK) return EK_EINVAL;
    /* Datagram connect only records the peer; it never waits. */
    if (connect(EK__SOCK(d)->fd, (const struct sockaddr *)&addr->ss, addr->len) != 0)
        return ek__err(errno);
    return EK_OK;
}

int ek_unix_dgram_send_to(ek_unix_dgram *d, ek_cx *cx, const void *buf, size_t len,
                          const ek_sockaddr *addr, size_t *nsent)
{
    if (!EK__CHECK_TAG(d, EK__TAG_UNIX_DGRAM) || nsent == NULL || (buf == NULL && len > 0) ||
        ek__sockaddr_check_unix(addr) != EK_OK)
        return EK_EINVAL;
    return ek__sock_send(EK__SOCK(d), cx, buf, len, (const struct sockaddr *)&addr->ss, addr->len,
                         nsent);
}

int ek_unix_dgram_recv_from(ek_unix_dgram *d, ek_cx *cx, void *buf, size_t len, size_t *nrecv,
                            ek_sockaddr *from)
{
    if (!EK__CHECK_TAG(d, EK__TAG_UNIX_DGRAM) || nrecv == NULL || (buf == NULL && len > 0) ||
        (from != NULL && !EK__CHECK_TAG(from, EK__TAG_SOCKADDR)))
        return EK_EINVAL;
    return ek__sock_recv(EK__SOCK(d), cx, buf, len, from, nrecv);
}

int ek_unix_dgram_send(ek_unix_dgram *d, ek_cx *cx, const void *buf, size_t len, size_t *nsent)
{
    if (!EK__CHECK_TAG(d, EK__TAG_UNIX_DGRAM) || nsent == NULL || (buf == NULL && len > 0))
        return EK_EINVAL;
    return ek__sock_send(EK__SOCK(d), cx, buf, len, NULL, 0, nsent);
}

int ek_unix_dgram_recv(ek_unix_dgram *d, ek_cx *cx, void *buf, size_t len, size_t *nrecv)
{
    if (!EK__CHECK_TAG(d, EK__TAG_UNIX_DGRAM) || nrecv == NULL || (buf == NULL && len > 0))
        return EK_EINVAL;
    return ek__sock_recv(EK__SOCK(d), cx, buf, len, NULL, nrecv);
}

int ek_unix_dgram_local_addr(ek_unix_dgram *d, ek_sockaddr *out)
{
    int rc = ek__sock_check(d, EK__TAG_UNIX_DGRAM);
    if (rc != EK_OK) return rc;
    if (!EK__CHECK_TAG(out, EK__TAG_SOCKADDR)) return EK_EINVAL;
    return ek__sock_local_addr(EK__SOCK(d), out);
}

int ek_unix_dgram_close(ek_unix_dgram *d)
{
    if (!EK__CHECK_TAG(d, EK__TAG_UNIX_DGRAM)) return EK_EINVAL;
    return ek__sock_close(EK__SOCK(d));
}

void ek_unix_dgram_free(ek_unix_dgram *d)
{
    if (EK__CHECK_TAG(d, EK__TAG_UNIX_DGRAM)) ek__sock_free(EK__SOCK(d));
}
