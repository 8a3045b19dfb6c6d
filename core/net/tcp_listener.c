/*
 * tcp_listener.c - ek_tcp_listener: bind, listen, accept (with the back-off on
 * descriptor exhaustion implemented in sock.c), close.
 */
#include "sock.h"

#include <netinet/in.h>

#define EK__TCP_BIND_FLAGS (EK_TCP_REUSEPORT | EK_TCP_V6ONLY)

int ek_tcp_bind(ek_runtime *rt, const ek_sockaddr *addr, int backlog, unsigned flags,
                ek_tcp_listener **out)
{
    if (out == NULL || ek__sockaddr_check_ip(addr) != EK_OK || (flags & ~EK__TCP_BIND_FLAGS))
        return EK_EINVAL;
    ek__sock *s;
    int rc = ek__sock_open(rt, addr->ss.ss_family, SOCK_STREAM, EK__TAG_TCP_LISTENER, &s);
    if (rc != EK_OK) return rc;
    /* SO_REUSEADDR always: a restarted server must not wait out TIME_WAIT. */
    rc = ek__sock_setopt_int(s, SOL_SOCKET, SO_REUSEADDR, 1);
    if (rc == EK_OK && (flags & EK_TCP_REUSEPORT))
        rc = ek__sock_setopt_int(s, SOL_SOCKET, SO_REUSEPORT, 1);
    if (rc == EK_OK && addr->ss.ss_family == AF_INET6)
        rc = ek__sock_setopt_int(s, IPPROTO_IPV6, IPV6_V6ONLY, (flags & EK_TCP_V6ONLY) ? 1 : 0);
    if (rc == EK_OK)
        rc = ek__sock_bind(s, (const struct sockaddr *)&addr->ss, addr->len,
                           backlog <= 0 ? EK__DEFAULT_BACKLOG : backlog);
    /* Registered only once bound: see ek__sock_open. */
    if (rc == EK_OK) rc = ek__sock_register(s);
    if (rc != EK_OK) {
        ek__sock_free(s);
        return rc;
    }
    *out = (ek_tcp_listener *)s;
    return EK_OK;
}

int ek_tcp_listen(ek_runtime *rt, const char *addr, ek_tcp_listener **out)
{
    ek_sockaddr a = {.tag = EK__TAG_SOCKADDR}; /* on the stack: nothing to free */
    int rc = ek_sockaddr_set(&a, addr);
    if (rc != EK_OK) return rc;
    return ek_tcp_bind(rt, &a, 0, 0, out);
}

int ek_tcp_accept(ek_tcp_listener *l, ek_cx *cx, ek_tcp_stream **out, ek_sockaddr *peer)
{
    int rc = ek__sock_check(l, EK__TAG_TCP_LISTENER);
    if (rc != EK_OK) return rc;
    if (out == NULL || (peer != NULL && !EK__CHECK_TAG(peer, EK__TAG_SOCKADDR))) return EK_EINVAL;
    return ek__sock_accept((ek__sock *)l, cx, EK__TAG_TCP_STREAM, (ek__sock **)out, peer);
}

int ek_tcp_listener_local_addr(ek_tcp_listener *l, ek_sockaddr *out)
{
    int rc = ek__sock_check(l, EK__TAG_TCP_LISTENER);
    if (rc != EK_OK) return rc;
    if (!EK__CHECK_TAG(out, EK__TAG_SOCKADDR)) return EK_EINVAL;
    return ek__sock_local_addr((ek__sock *)l, out);
}

int ek_tcp_listener_close(ek_tcp_listener *l)
{
    if (!EK__CHECK_TAG(l, EK__TAG_TCP_LISTENER)) return EK_EINVAL;
    return ek__sock_close((ek__sock *)l);
}

void ek_tcp_listener_free(ek_tcp_listener *l)
{
    if (EK__CHECK_TAG(l, EK__TAG_TCP_LISTENER)) ek__sock_free((ek__sock *)l);
}
