/*
 * udp.c - ek_udp_socket: bind, connect, datagram send/receive, and the
 * broadcast, TTL and multicast options.
 */
#include "sock.h"

#include <netinet/in.h>

#define EK__UDP(u)         ((ek__sock *)(u))
#define EK__UDP_BIND_FLAGS (EK_UDP_REUSEADDR | EK_UDP_REUSEPORT | EK_UDP_V6ONLY)

int ek_udp_bind(ek_runtime *rt, const ek_sockaddr *addr, unsigned flags, ek_udp_socket **out)
{
    if (out == NULL || ek__sockaddr_check_ip(addr) != EK_OK || (flags & ~EK__UDP_BIND_FLAGS))
        return EK_EINVAL;
    ek__sock *s;
    int rc = ek__sock_open(rt, addr->ss.ss_family, SOCK_DGRAM, EK__TAG_UDP, &s);
    if (rc != EK_OK) return rc;
    if (flags & EK_UDP_REUSEADDR) rc = ek__sock_setopt_int(s, SOL_SOCKET, SO_REUSEADDR, 1);
    if (rc == EK_OK && (flags & EK_UDP_REUSEPORT))
        rc = ek__sock_setopt_int(s, SOL_SOCKET, SO_REUSEPORT, 1);
    if (rc == EK_OK && addr->ss.ss_family == AF_INET6)
        rc = ek__sock_setopt_int(s, IPPROTO_IPV6, IPV6_V6ONLY, (flags & EK_UDP_V6ONLY) ? 1 : 0);
    if (rc == EK_OK) rc = ek__sock_bind(s, (const struct sockaddr *)&addr->ss, addr->len, -1);
    /* Registered only once bound: see ek__sock_open. */
    if (rc == EK_OK) rc = ek__sock_register(s);
    if (rc != EK_OK) {
        ek__sock_free(s);
        return rc;
    }
    *out = (ek_udp_socket *)s;
    return EK_OK;
}

int ek_udp_connect(ek_udp_socket *u, const ek_sockaddr *addr)
{
    int rc = ek__sock_check(u, EK__TAG_UDP);
    if (rc != EK_OK) return rc;
    if (ek__sockaddr_check_ip(addr) != EK_OK) return EK_EINVAL;
    /* UDP connect only records the peer; it never waits. */
    if (connect(EK__UDP(u)->fd, (const struct sockaddr *)&addr->ss, addr->len) != 0)
        return ek__err(errno);
    return EK_OK;
}

int ek_udp_send_to(ek_udp_socket *u, ek_cx *cx, const void *buf, size_t len,
                   const ek_sockaddr *addr, size_t *nsent)
{
    if (!EK__CHECK_TAG(u, EK__TAG_UDP) || nsent == NULL || (buf == NULL && len > 0) ||
        ek__sockaddr_check_ip(addr) != EK_OK)
        return EK_EINVAL;
    return ek__sock_send(EK__UDP(u), cx, buf, len, (const struct sockaddr *)&addr->ss, addr->len,
                         nsent);
}

int ek_udp_recv_from(ek_udp_socket *u, ek_cx *cx, void *buf, size_t len, size_t *nrecv,
                     ek_sockaddr *from)
{
    if (!EK__CHECK_TAG(u, EK__TAG_UDP) || nrecv == NULL || (buf == NULL && len > 0) ||
        (from != NULL && !EK__CHECK_TAG(from, EK__TAG_SOCKADDR)))
        return EK_EINVAL;
    return ek__sock_recv(EK__UDP(u), cx, buf, len, from, nrecv);
}

int ek_udp_send(ek_udp_socket *u, ek_cx *cx, const void *buf, size_t len, size_t *nsent)
{
    if (!EK__CHECK_TAG(u, EK__TAG_UDP) || nsent == NULL || (buf == NULL && len > 0))
        return EK_EINVAL;
    return ek__sock_send(EK__UDP(u), cx, buf, len, NULL, 0, nsent);
}

int ek_udp_recv(ek_udp_socket *u, ek_cx *cx, void *buf, size_t len, size_t *nrecv)
{
    if (!EK__CHECK_TAG(u, EK__TAG_UDP) || nrecv == NULL || (buf == NULL && len > 0))
        return EK_EINVAL;
    return ek__sock_recv(EK__UDP(u), cx, buf, len, NULL, nrecv);
}

int ek_udp_local_addr(ek_udp_socket *u, ek_sockaddr *out)
{
    int rc = ek__sock_check(u, EK__TAG_UDP);
    if (rc != EK_OK) return rc;
    if (!EK__CHECK_TAG(out, EK__TAG_SOCKADDR)) return EK_EINVAL;
    return ek__sock_local_addr(EK__UDP(u), out);
}

int ek_udp_peer_addr(ek_udp_socket *u, ek_sockaddr *out)
{
    int rc = ek__sock_check(u, EK__TAG_UDP);
    if (rc != EK_OK) return rc;
    if (!EK__CHECK_TAG(out, EK__TAG_SOCKADDR)) return EK_EINVAL;
    return ek__sock_peer_addr(EK__UDP(u), out);
}

/* The socket's own family, for the options that differ between v4 and v6. */
static int ek__udp_family(ek__sock *s)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(s->fd, (struct sockaddr *)&ss, &len) != 0) return -1;
    return ss.ss_family;
}

int ek_udp_set_broadcast(ek_udp_socket *u, int on)
{
    int rc = ek__sock_check(u, EK__TAG_UDP);
    if (rc != EK_OK) return rc;
    return ek__sock_setopt_int(EK__UDP(u), SOL_SOCKET, SO_BROADCAST, on ? 1 : 0);
}

int ek_udp_set_ttl(ek_udp_socket *u, unsigned ttl)
{
    int rc = ek__sock_check(u, EK__TAG_UDP);
    if (rc != EK_OK) return rc;
    if (ttl < 1 || ttl > 255) return EK_EINVAL;
    if (ek__udp_family(EK__UDP(u)) == AF_INET6)
        return ek__sock_setopt_int(EK__UDP(u), IPPROTO_IPV6, IPV6_UNICAST_HOPS, (int)ttl);
    return ek__sock_setopt_int(EK__UDP(u), IPPROTO_IP, IP_TTL, (int)ttl);
}

int ek_udp_set_multicast_ttl(ek_udp_socket *u, unsigned ttl)
{
    int rc = ek__sock_check(u, EK__TAG_UDP);
    if (rc != EK_OK) return rc;
    if (ttl > 255) return EK_EINVAL;
    if (ek__udp_family(EK__UDP(u)) == AF_INET6)
        return ek__sock_setopt_int(EK__UDP(u), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, (int)ttl);
    return ek__sock_setopt_int(EK__UDP(u), IPPROTO_IP, IP_MULTICAST_TTL, (int)ttl);
}

int ek_udp_set_multicast_loop(ek_udp_socket *u, int on)
{
    int rc = ek__sock_check(u, EK__TAG_UDP);
    if (rc != EK_OK) return rc;
    if (ek__udp_family(EK__UDP(u)) == AF_INET6)
        return ek__sock_setopt_int(EK__UDP(u), IPPROTO_IPV6, IPV6_MULTICAST_LOOP, on ? 1 : 0);
    return ek__sock_setopt_int(EK__UDP(u), IPPROTO_IP, IP_MULTICAST_LOOP, on ? 1 : 0);
}

static int ek__udp_multicast(ek_udp_socket *u, const ek_sockaddr *group, unsigned ifindex,
                             bool join)
{
    int rc = ek__sock_check(u, EK__TAG_UDP);
    if (rc != EK_OK) return rc;
    if (ek__sockaddr_check_ip(group) != EK_OK) return EK_EINVAL;
    ek__sock *s = EK__UDP(u);
    int fam = ek__udp_family(s);
    int r;
    if (group->ss.ss_family == AF_INET && fam == AF_INET) {
        const struct sockaddr_in *g = (const struct sockaddr_in *)&group->ss;
        if (!IN_MULTICAST(ntohl(g->sin_addr.s_addr))) return EK_EINVAL;
        /* ip_mreqn takes an interface index, so one signature serves both
         * families. */
        struct ip_mreqn m = {.imr_multiaddr = g->sin_addr, .imr_ifindex = (int)ifindex};
        r = setsockopt(s->fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &m,
                       sizeof m);
    } else if (group->ss.ss_family == AF_INET6 && fam == AF_INET6) {
        const struct sockaddr_in6 *g = (const struct sockaddr_in6 *)&group->ss;
        if (!IN6_IS_ADDR_MULTICAST(&g->sin6_addr)) return EK_EINVAL;
        struct ipv6_mreq m = {.ipv6mr_multiaddr = g->sin6_addr, .ipv6mr_interface = ifindex};
        r = setsockopt(s->fd, IPPROTO_IPV6, join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP, &m,
                       sizeof m);
    } else {
        return EK_EINVAL;
    }
    return r == 0 ? EK_OK : ek__err(errno);
}

int ek_udp_join_multicast(ek_udp_socket *u, const ek_sockaddr *group, unsigned ifindex)
{
    return ek__udp_multicast(u, group, ifindex, true);
}

int ek_udp_leave_multicast(ek_udp_socket *u, const ek_sockaddr *group, unsigned ifindex)
{
    return ek__udp_multicast(u, group, ifindex, false);
}

int ek_udp_close(ek_udp_socket *u)
{
    if (!EK__CHECK_TAG(u, EK__TAG_UDP)) return EK_EINVAL;
    return ek__sock_close(EK__UDP(u));
}

void ek_udp_free(ek_udp_socket *u)
{
    if (EK__CHECK_TAG(u, EK__TAG_UDP)) ek__sock_free(EK__UDP(u));
}
