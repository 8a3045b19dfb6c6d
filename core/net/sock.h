/*
 * sock.h - what the socket types (TCP, UDP, Unix) share: one socket object, the
 * readiness loop of every operation, accept with back-off, the connect and
 * write_all futures, and the internals of ek_sockaddr.
 *
 * Every public socket handle (ek_tcp_stream, ek_udp_socket, ...) is an ek__sock;
 * the tag tells the types apart, so the public structs are never defined and a
 * handle of the wrong type is caught by its tag.
 *
 * Lifetime invariant: `fd` and `io` stay valid from creation until
 * ek__sock_free, which only the owner calls when no other task can touch the
 * handle. ek__sock_close may race with operations on other threads, so it never
 * closes the fd (a concurrent op could then hit a reused descriptor): it marks
 * the reactor resource shut down (waiters wake with EK_ECLOSED) and shuts the
 * connection down with shutdown(2).
 */
#ifndef EK_CORE_NET_SOCK_H
#define EK_CORE_NET_SOCK_H

#include "../common.h"
#include "../driver/io.h"
#include "../rt.h"

#include <sys/socket.h>
#include <sys/un.h>

/* Our own tags for the two non-socket net objects (the sync module does the
 * same): "EKSA" and "EKAL". */
#define EK__TAG_SOCKADDR  0x454b5341u
#define EK__TAG_ADDR_LIST 0x454b414cu

/* listen(2)'s backlog when the caller passes 0 or less. */
#define EK__DEFAULT_BACKLOG 1024

struct ek_sockaddr {
    uint32_t tag;  /* EK__TAG_SOCKADDR */
    socklen_t len; /* 0: empty (EK_AF_UNSPEC) */
    struct sockaddr_storage ss;
};

typedef struct ek__sock {
    uint32_t tag; /* EK__TAG_TCP_STREAM, EK__TAG_UDP, ... */
    int fd;
    ek_runtime *rt;
    ek__io *io;
    atomic_int closed; /* 0 open, 1 closed; only goes 0 -> 1 */
    /* Listeners only: the accept back-off timer while the process is out of
     * descriptors, and its current length (0: not backing off). Touched only by
     * the one task that accepts. */
    ek_future *backoff;
    uint64_t backoff_ms;
} ek__sock;

/* Check a handle: EK_OK, EK_EINVAL (NULL or another type), EK_ECLOSED. */
static inline int ek__sock_check(const void *h, uint32_t tag)
{
    if (!EK__CHECK_TAG(h, tag)) return EK_EINVAL;
    const ek__sock *s = h;
    return atomic_load_explicit(&s->closed, memory_order_relaxed) ? EK_ECLOSED : EK_OK;
}

/* A new socket(domain, type), non-blocking and close-on-exec, tagged, NOT yet
 * registered with the reactor: configure and bind it first, then call
 * ek__sock_register. (Registered while still in state CLOSE, a TCP socket
 * would report EPOLLOUT|EPOLLHUP; see sock.c.) ek__sock_free accepts it in
 * either state. Errors: EK_EINVAL, EK_ECLOSED, EK_ENOMEM, -errno. */
int ek__sock_open(ek_runtime *rt, int domain, int type, uint32_t tag, ek__sock **out);
/* Register s with its runtime's reactor. Errors: EK_ECLOSED, EK_ENOMEM, -errno. */
int ek__sock_register(ek__sock *s);
/* Wrap an fd that is already non-blocking, unregistered / registered (accept4,
 * socketpair, connect); on error the fd is closed. */
int ek__sock_adopt(ek_runtime *rt, int fd, uint32_t tag, ek__sock **out);
int ek__sock_adopt_registered(ek_runtime *rt, int fd, uint32_t tag, ek__sock **out);
/* Bind (and for stream sockets listen when backlog >= 0). Errors: -errno. */
int ek__sock_bind(ek__sock *s, const struct sockaddr *sa, socklen_t len, int backlog);
int ek__sock_close(ek__sock *s);
void ek__sock_free(ek__sock *s);

/* The readiness loop around one syscall; see sock.c. `from` may be NULL. */
int ek__sock_recv(ek__sock *s, ek_cx *cx, void *buf, size_t len, ek_sockaddr *from, size_t *nread);
/* A stream read: as ek__sock_recv, but len 0 gives EK_OK with 0 at once. */
int ek__sock_read(ek__sock *s, ek_cx *cx, void *buf, size_t len, size_t *nread);
int ek__sock_send(ek__sock *s, ek_cx *cx, const void *buf, size_t len, const struct sockaddr *to,
                  socklen_t tolen, size_t *nsent);
int ek__sock_sendv(ek__sock *s, ek_cx *cx, const void *const *bufs, const size_t *lens,
                   size_t count, size_t *nsent);
/* Accept with back-off; *out is a new socket tagged `tag`. */
int ek__sock_accept(ek__sock *l, ek_cx *cx, uint32_t tag, ek__sock **out, ek_sockaddr *peer);
/* shutdown(SHUT_WR). */
int ek__sock_shutdown_write(ek__sock *s);
/* getsockname / getpeername into an ek_sockaddr. */
int ek__sock_local_addr(ek__sock *s, ek_sockaddr *out);
int ek__sock_peer_addr(ek__sock *s, ek_sockaddr *out);
int ek__sock_setopt_int(ek__sock *s, int level, int name, int value);

/* A future connecting a new stream socket (tagged `tag`) to sa; its result is
 * the ek__sock. */
int ek__sock_connect(ek_runtime *rt, const struct sockaddr *sa, socklen_t len, uint32_t tag,
                     ek_future **out);
/* A future writing all of buf to a stream socket (see ek_tcp_write_all). */
int ek__sock_write_all(ek__sock *s, const void *buf, size_t len, size_t *progress, ek_future **out);

/* Fill a with a native address; EK_EINVAL if len is too large. */
int ek__sockaddr_assign(ek_sockaddr *a, const void *sa, socklen_t len);
/* Build a Unix address from a path ("@name": abstract). EK_EINVAL for NULL or
 * empty, EK_ENAMETOOLONG. */
int ek__sockaddr_unix(struct sockaddr_un *sun, socklen_t *len, const char *path);
/* EK_OK if a is a live ek_sockaddr holding an IPv4 or IPv6 address. */
int ek__sockaddr_check_ip(const ek_sockaddr *a);
/* EK_OK if a is a live ek_sockaddr holding a named Unix address (a path or an
 * abstract name; not the unnamed address of an unbound socket). */
int ek__sockaddr_check_unix(const ek_sockaddr *a);

#endif
