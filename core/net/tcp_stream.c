/*
 * tcp_stream.c - ek_tcp_stream: connect (direct or by host name), read, write,
 * writev, write_all, half-close, addresses and options. The I/O loops live in
 * sock.c; this file checks handles and arguments at the ABI boundary.
 */
#include "sock.h"

#include "task/future.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#define EK__STREAM(s) ((ek__sock *)(s))

int ek_tcp_connect(ek_runtime *rt, const ek_sockaddr *addr, ek_future **out)
{
    if (out == NULL || ek__sockaddr_check_ip(addr) != EK_OK) return EK_EINVAL;
    int rc = ek__rt_check(rt);
    if (rc != EK_OK) return rc;
    return ek__sock_connect(rt, (const struct sockaddr *)&addr->ss, addr->len, EK__TAG_TCP_STREAM,
                            out);
}

/* ---- connect by host name: resolve, then try each address in turn ---- */

typedef struct ek__connect_host {
    ek_runtime *rt;
    ek_future *resolve; /* until resolved */
    ek_addr_list *addrs;
    size_t next;        /* the next address to try */
    ek_future *connect; /* the attempt in flight */
    int last_err;
} ek__connect_host;

static int ek__connect_host_poll(void *state, ek_cx *cx, void **out)
{
    ek__connect_host *c = state;
    if (c->resolve != NULL) {
        void *list = NULL;
        int rc = ek_future_poll(c->resolve, cx, &list);
        if (rc == EK_PENDING) return EK_PENDING;
        ek_future_drop(c->resolve);
        c->resolve = NULL;
        if (rc != EK_OK) return rc;
        c->addrs = list;
    }
    for (;;) {
        if (c->connect != NULL) {
            void *stream = NULL;
            int rc = ek_future_poll(c->connect, cx, &stream);
            if (rc == EK_PENDING) return EK_PENDING;
            ek_future_drop(c->connect);
            c->connect = NULL;
            if (rc == EK_OK) {
                *out = stream;
                return EK_OK;
            }
            c->last_err = rc;
        }
        const ek_sockaddr *a = ek_addr_list_get(c->addrs, c->next);
        if (a == NULL) return c->last_err;
        c->next++;
        int rc = ek__sock_connect(c->rt, (const struct sockaddr *)&a->ss, a->len,
                                  EK__TAG_TCP_STREAM, &c->connect);
        if (rc != EK_OK) return rc;
    }
}

static void ek__connect_host_drop(void *state)
{
    ek__connect_host *c = state;
    ek_future_drop(c->resolve);
    ek_future_drop(c->connect);
    ek_addr_list_free(c->addrs);
    ek__rt_unref(c->rt);
}

int ek_tcp_connect_host(ek_runtime *rt, const char *host, uint16_t port, ek_future **out)
{
    if (host == NULL || out == NULL) return EK_EINVAL;
    ek_future *resolve;
    int rc = ek_resolve(rt, host, port, 0, &resolve);
    if (rc != EK_OK) return rc;
    ek__connect_host *c;
    rc = ek__future_new_inline(ek__connect_host_poll, ek__connect_host_drop, sizeof *c, out,
                               (void **)&c);
    if (rc != EK_OK) {
        ek_future_drop(resolve);
        return rc;
    }
    c->rt = rt;
    ek__rt_ref(rt); /* ek_resolve checked rt */
    c->resolve = resolve;
    c->last_err = EK_EAI_NONAME; /* only if the resolver returned no address */
    return EK_OK;
}

/* ---- I/O ---- */

int ek_tcp_read(ek_tcp_stream *s, ek_cx *cx, void *buf, size_t len, size_t *nread)
{
    if (!EK__CHECK_TAG(s, EK__TAG_TCP_STREAM) || nread == NULL || (buf == NULL && len > 0))
        return EK_EINVAL;
    return ek__sock_read(EK__STREAM(s), cx, buf, len, nread);
}

int ek_tcp_write(ek_tcp_stream *s, ek_cx *cx, const void *buf, size_t len, size_t *nwritten)
{
    if (!EK__CHECK_TAG(s, EK__TAG_TCP_STREAM) || nwritten == NULL || (buf == NULL && len > 0))
        return EK_EINVAL;
    return ek__sock_send(EK__STREAM(s), cx, buf, len, NULL, 0, nwritten);
}

int ek_tcp_writev(ek_tcp_stream *s, ek_cx *cx, const void *const *bufs, const size_t *lens,
                  size_t count, size_t *nwritten)
{
    if (!EK__CHECK_TAG(s, EK__TAG_TCP_STREAM) || nwritten == NULL ||
        (count > 0 && (bufs == NULL || lens == NULL)))
        return EK_EINVAL;
    return ek__sock_sendv(EK__STREAM(s), cx, bufs, lens, count, nwritten);
}

int ek_tcp_write_all(ek_tcp_stream *s, const void *buf, size_t len, size_t *progress,
                     ek_future **out)
{
    if (!EK__CHECK_TAG(s, EK__TAG_TCP_STREAM) || out == NULL || (buf == NULL && len > 0))
        return EK_EINVAL;
    return ek__sock_write_all(EK__STREAM(s), buf, len, progress, out);
}

int ek_tcp_shutdown(ek_tcp_stream *s)
{
    int rc = ek__sock_check(s, EK__TAG_TCP_STREAM);
    return rc != EK_OK ? rc : ek__sock_shutdown_write(EK__STREAM(s));
}

/* ---- addresses and options ---- */

int ek_tcp_peer_addr(ek_tcp_stream *s, ek_sockaddr *out)
{
    int rc = ek__sock_check(s, EK__TAG_TCP_STREAM);
    if (rc != EK_OK) return rc;
    if (!EK__CHECK_TAG(out, EK__TAG_SOCKADDR)) return EK_EINVAL;
    return ek__sock_peer_addr(EK__STREAM(s), out);
}

int ek_tcp_local_addr(ek_tcp_stream *s, ek_sockaddr *out)
{
    int rc = ek__sock_check(s, EK__TAG_TCP_STREAM);
    if (rc != EK_OK) return rc;
    if (!EK__CHECK_TAG(out, EK__TAG_SOCKADDR)) return EK_EINVAL;
    return ek__sock_local_addr(EK__STREAM(s), out);
}

int ek_tcp_set_nodelay(ek_tcp_stream *s, int on)
{
    int rc = ek__sock_check(s, EK__TAG_TCP_STREAM);
    if (rc != EK_OK) return rc;
    return ek__sock_setopt_int(EK__STREAM(s), IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

int ek_tcp_nodelay(ek_tcp_stream *s)
{
    int rc = ek__sock_check(s, EK__TAG_TCP_STREAM);
    if (rc != EK_OK) return rc;
    int v = 0;
    socklen_t len = sizeof v;
    if (getsockopt(EK__STREAM(s)->fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) != 0)
        return ek__err(errno);
    return v ? 1 : 0;
}

int ek_tcp_set_keepalive(ek_tcp_stream *s, unsigned idle_secs)
{
    int rc = ek__sock_check(s, EK__TAG_TCP_STREAM);
    if (rc != EK_OK) return rc;
    if (idle_secs > 32767) return EK_EINVAL; /* the kernel's MAX_TCP_KEEPIDLE */
    ek__sock *k = EK__STREAM(s);
    if (idle_secs == 0) return ek__sock_setopt_int(k, SOL_SOCKET, SO_KEEPALIVE, 0);
    rc = ek__sock_setopt_int(k, IPPROTO_TCP, TCP_KEEPIDLE, (int)idle_secs);
    if (rc == EK_OK) rc = ek__sock_setopt_int(k, IPPROTO_TCP, TCP_KEEPINTVL, (int)idle_secs);
    if (rc == EK_OK) rc = ek__sock_setopt_int(k, SOL_SOCKET, SO_KEEPALIVE, 1);
    return rc;
}

int ek_tcp_set_linger(ek_tcp_stream *s, int secs)
{
    int rc = ek__sock_check(s, EK__TAG_TCP_STREAM);
    if (rc != EK_OK) return rc;
    struct linger lg = {.l_onoff = secs >= 0, .l_linger = secs >= 0 ? secs : 0};
    if (setsockopt(EK__STREAM(s)->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) != 0)
        return ek__err(errno);
    return EK_OK;
}

int ek_tcp_fd(ek_tcp_stream *s)
{
    int rc = ek__sock_check(s, EK__TAG_TCP_STREAM);
    return rc != EK_OK ? rc : EK__STREAM(s)->fd;
}

int ek_tcp_close(ek_tcp_stream *s)
{
    if (!EK__CHECK_TAG(s, EK__TAG_TCP_STREAM)) return EK_EINVAL;
    return ek__sock_close(EK__STREAM(s));
}

void ek_tcp_free(ek_tcp_stream *s)
{
    if (EK__CHECK_TAG(s, EK__TAG_TCP_STREAM)) ek__sock_free(EK__STREAM(s));
}
