/*
 * ekiden/net.h - networking: TCP, UDP, Unix sockets, name resolution.
 * Included by ekiden.h; uses its types (ek_runtime, ek_cx, ek_future).
 *
 * Model (docs/networking.md, "The model"): every operation that can wait takes the ek_cx of the
 * poll it runs in and returns EK_OK (done), EK_PENDING (not yet: the task will be
 * woken when the socket may be ready) or a negative error. There is no separate
 * "register interest" call. Each such operation first spends one unit of the
 * task's cooperative budget, so it may return EK_PENDING even when data is there
 * (the task is then rescheduled after others had a turn).
 *
 * Sockets are non-blocking, close-on-exec, registered edge-triggered with the
 * runtime's reactor when created. Sends never raise SIGPIPE: a write to a
 * connection the peer reset returns EK_EPIPE or EK_ECONNRESET.
 *
 * Waiters: at most one task waits to read and one to write on a socket at a time
 * (a second task waiting in the same direction replaces the first, as in Tokio).
 *
 * Closing and freeing. Every socket type has a `close` and a `free`:
 * - `close` shuts the socket down: tasks waiting on it are woken and see
 *   EK_ECLOSED, and every later operation returns EK_ECLOSED. The handle stays
 *   valid, so close may be called from any thread while other tasks still use it.
 * - `free` closes (if needed), releases the file descriptor and the handle. After
 *   it no task may touch the handle; call it from the one owner (e.g. the drop
 *   function of the task that owns the socket, so that aborting the task releases
 *   the socket). NULL is ignored. Free every socket before ek_runtime_free of
 *   its runtime (tasks that own sockets are dropped by shutdown, so their drop
 *   functions do this).
 *
 * Addresses are opaque ek_sockaddr objects (no struct layout), built from text
 * such as "127.0.0.1:8080", "[::1]:80", "/run/app.sock" or "@abstract". Functions
 * that report an address fill an ek_sockaddr the caller owns, so a loop of
 * recv_from allocates nothing.
 */
#ifndef EKIDEN_NET_H
#define EKIDEN_NET_H

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------- */
/* Addresses                                                                 */
/* ------------------------------------------------------------------------- */

typedef struct ek_sockaddr ek_sockaddr;

#define EK_AF_UNSPEC 0 /* an empty ek_sockaddr */
#define EK_AF_INET   4
#define EK_AF_INET6  6
#define EK_AF_UNIX   1

/* Longest text ek_sockaddr_format produces, including the terminating NUL. */
#define EK_SOCKADDR_STRLEN 128

/* A new, empty address (family EK_AF_UNSPEC), to be filled by functions that
 * report addresses. Any thread. Errors: EK_EINVAL (NULL out), EK_ENOMEM. */
EK_EXTERN int ek_sockaddr_new(ek_sockaddr **out);
/*
 * Parse text into a new address:
 *   "1.2.3.4:80"             IPv4 and port
 *   "[::1]:80", "[fe80::1%lo]:80"   IPv6 (brackets required), optional scope
 *   "/path/to.sock", "unix:relative.sock"  Unix socket path
 *   "@name"                  Linux abstract Unix socket name
 * A scope is an interface name or a decimal index 1..4294967295 (digits only).
 * No name resolution happens here (see ek_resolve). Any thread.
 * Errors: EK_EINVAL (NULL, malformed text, port > 65535, unknown interface, scope
 * index 0 or out of range), EK_ENAMETOOLONG (Unix path longer than the kernel
 * allows), EK_ENOMEM.
 */
EK_EXTERN int ek_sockaddr_parse(const char *text, ek_sockaddr **out);
/* As ek_sockaddr_parse, into an existing address (replacing what it held). */
EK_EXTERN int ek_sockaddr_set(ek_sockaddr *a, const char *text);
/* An IP address from its text without port ("10.0.0.1", "::1") and a port.
 * Errors: EK_EINVAL, EK_ENOMEM. */
EK_EXTERN int ek_sockaddr_from_ip(const char *ip, uint16_t port, ek_sockaddr **out);
/* A copy of a. Errors: EK_EINVAL, EK_ENOMEM. */
EK_EXTERN int ek_sockaddr_copy(const ek_sockaddr *a, ek_sockaddr **out);
/* Release an address. NULL is ignored. */
EK_EXTERN void ek_sockaddr_free(ek_sockaddr *a);
/*
 * Write a's text form (as accepted by ek_sockaddr_parse; "" for an empty or
 * unnamed address) into buf of `len` bytes, NUL-terminated. Returns the length
 * without the NUL (>= 0). Any thread, no allocation.
 * Errors: EK_EINVAL (NULL a or buf), EK_ERANGE (buf too small; EK_SOCKADDR_STRLEN
 * always suffices).
 */
EK_EXTERN int ek_sockaddr_format(const ek_sockaddr *a, char *buf, size_t len);
/* EK_AF_INET, EK_AF_INET6, EK_AF_UNIX or EK_AF_UNSPEC; EK_EINVAL for NULL. */
EK_EXTERN int ek_sockaddr_family(const ek_sockaddr *a);
/* The port (0..65535) of an IP address. Errors: EK_EINVAL (NULL, not IP). */
EK_EXTERN int ek_sockaddr_port(const ek_sockaddr *a);
/* Change the port of an IP address. Errors: EK_EINVAL. */
EK_EXTERN int ek_sockaddr_set_port(ek_sockaddr *a, uint16_t port);
/* 1 if a and b are the same address, 0 if not, EK_EINVAL for NULL. */
EK_EXTERN int ek_sockaddr_equal(const ek_sockaddr *a, const ek_sockaddr *b);
/*
 * For C callers that hold a native `struct sockaddr`: copy to / from one.
 * to_native writes at most *len bytes and sets *len to the address length.
 * from_native takes AF_INET, AF_INET6 (len at least their struct's size) and
 * AF_UNIX (len at most sizeof(struct sockaddr_un)).
 * Errors: EK_EINVAL (NULL, unknown family, bad length), EK_ERANGE (too small).
 */
EK_EXTERN int ek_sockaddr_to_native(const ek_sockaddr *a, void *sa, size_t *len);
EK_EXTERN int ek_sockaddr_from_native(const void *sa, size_t len, ek_sockaddr **out);

/* ------------------------------------------------------------------------- */
/* Name resolution                                                           */
/* ------------------------------------------------------------------------- */

typedef struct ek_addr_list ek_addr_list;

/* Hints for ek_resolve: restrict the families (neither: both) and/or ask for
 * addresses to bind (a NULL host then means the wildcard address). */
#define EK_RESOLVE_INET    0x1u
#define EK_RESOLVE_INET6   0x2u
#define EK_RESOLVE_PASSIVE 0x4u

/*
 * A future resolving `host` (a name or numeric address; NULL only with
 * EK_RESOLVE_PASSIVE) with getaddrinfo on rt's blocking pool. It completes with
 * EK_OK and *out = an ek_addr_list (owned by the awaiter, freed with
 * ek_addr_list_free), in the order the resolver prefers, each address carrying
 * `port`. Dropping the future before it completes is allowed (the lookup still
 * finishes on its thread and its result is freed).
 * Any thread creates it (host is copied); poll it from task context.
 * Errors now: EK_EINVAL (NULL out, NULL host without PASSIVE, unknown hint bits),
 * EK_ECLOSED (runtime shut down), EK_ENOMEM. Errors of the future: EK_EAI_NONAME,
 * EK_EAI_AGAIN, EK_EAI_FAIL, EK_EAI_FAMILY, EK_EAI_OTHER, EK_ENOMEM,
 * EK_ECANCELED (runtime shut down meanwhile).
 */
EK_EXTERN int ek_resolve(ek_runtime *rt, const char *host, uint16_t port, unsigned hints,
                         ek_future **out);
/* Number of addresses in the list (>= 1 for a list ek_resolve produced);
 * EK_EINVAL for NULL. */
EK_EXTERN int ek_addr_list_count(const ek_addr_list *list);
/* The i-th address, borrowed from the list (valid until the list is freed);
 * NULL if list is NULL or i is out of range. */
EK_EXTERN const ek_sockaddr *ek_addr_list_get(const ek_addr_list *list, size_t i);
/* Release a list and its addresses. NULL is ignored. */
EK_EXTERN void ek_addr_list_free(ek_addr_list *list);

/* ------------------------------------------------------------------------- */
/* TCP                                                                       */
/* ------------------------------------------------------------------------- */

typedef struct ek_tcp_listener ek_tcp_listener;
typedef struct ek_tcp_stream ek_tcp_stream;

/* Flags for ek_tcp_bind. SO_REUSEADDR is always set. */
#define EK_TCP_REUSEPORT 0x1u /* SO_REUSEPORT: several listeners share the port */
#define EK_TCP_V6ONLY    0x2u /* IPv6 listener does not accept IPv4-mapped peers */

/*
 * Bind a listener to `addr` (IPv4 or IPv6; port 0 picks a free port, see
 * ek_tcp_listener_local_addr) and listen with `backlog` (<= 0: 1024). The
 * address is only read. Any thread.
 * Errors: EK_EINVAL (NULL, non-IP address, unknown flags), EK_ECLOSED (runtime
 * shut down), EK_EADDRINUSE, EK_EACCES, EK_EADDRNOTAVAIL, EK_EMFILE, EK_ENOMEM,
 * other -errno from socket/bind/listen.
 */
EK_EXTERN int ek_tcp_bind(ek_runtime *rt, const ek_sockaddr *addr, int backlog, unsigned flags,
                          ek_tcp_listener **out);
/* Parse `addr` text ("127.0.0.1:8080") and bind with defaults (backlog 1024, no
 * flags). Same errors as ek_sockaddr_parse and ek_tcp_bind. */
EK_EXTERN int ek_tcp_listen(ek_runtime *rt, const char *addr, ek_tcp_listener **out);
/*
 * Accept a connection: EK_OK with *out = the new stream (owned by the caller)
 * and, if peer is not NULL, the peer's address written into it; EK_PENDING.
 * Task context. When the process or system runs out of descriptors or buffers
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM) the listener does not fail and does not spin:
 * it waits on a timer (10 ms doubling to 1 s) and retries, returning EK_PENDING
 * meanwhile; the pending connections stay queued in the kernel. A connection the
 * peer aborted before it was accepted is skipped.
 * Errors: EK_EINVAL (NULL/wrong handle, NULL out), EK_ECLOSED, other -errno.
 */
EK_EXTERN int ek_tcp_accept(ek_tcp_listener *l, ek_cx *cx, ek_tcp_stream **out, ek_sockaddr *peer);
/* Write the address the listener is bound to into out (port 0 resolved).
 * Errors: EK_EINVAL, EK_ECLOSED. */
EK_EXTERN int ek_tcp_listener_local_addr(ek_tcp_listener *l, ek_sockaddr *out);
/* See "Closing and freeing" above. close: EK_OK, EK_EINVAL; idempotent. */
EK_EXTERN int ek_tcp_listener_close(ek_tcp_listener *l);
EK_EXTERN void ek_tcp_listener_free(ek_tcp_listener *l);

/*
 * A future connecting to `addr` (read at once, not kept). It completes with
 * EK_OK and *out = an ek_tcp_stream (owned by the awaiter; a result nobody takes
 * should be released with ek_tcp_free, e.g. as out_drop), or an error:
 * EK_ECONNREFUSED, EK_ENETUNREACH, EK_EHOSTUNREACH, EK_ETIMEDOUT (kernel timeout),
 * EK_EADDRNOTAVAIL, EK_ECLOSED (runtime shut down), other -errno. For a shorter
 * timeout wrap it: ek_timeout(rt, connect_future, ms, &f) gives EK_ETIMEDOUT and
 * drops (closes) the half-open socket.
 * Any thread creates it; poll from task context.
 * Errors now: EK_EINVAL (NULL, non-IP address), EK_ECLOSED, EK_ENOMEM.
 */
EK_EXTERN int ek_tcp_connect(ek_runtime *rt, const ek_sockaddr *addr, ek_future **out);
/*
 * A future resolving `host` (ek_resolve) and connecting to each address in turn
 * until one succeeds; completes as ek_tcp_connect, with the last address's error
 * if none accepts (or the resolver's error). host is copied.
 * Errors now: EK_EINVAL, EK_ECLOSED, EK_ENOMEM.
 */
EK_EXTERN int ek_tcp_connect_host(ek_runtime *rt, const char *host, uint16_t port, ek_future **out);

/*
 * Read up to len bytes: EK_OK with *nread > 0 (data) or *nread == 0 (end of
 * stream: the peer shut down its write side; len == 0 also gives 0);
 * EK_PENDING; or an error: EK_ECONNRESET, EK_ETIMEDOUT (keepalive), EK_ECLOSED,
 * EK_EINVAL (NULL/wrong handle, NULL nread, NULL buf with len > 0).
 * Task context.
 */
EK_EXTERN int ek_tcp_read(ek_tcp_stream *s, ek_cx *cx, void *buf, size_t len, size_t *nread);
/*
 * Write up to len bytes: EK_OK with *nwritten = bytes accepted by the kernel
 * (1..len; may be fewer: write the rest later, nothing is lost or duplicated);
 * EK_PENDING (nothing written; the send buffer is full); or an error: EK_EPIPE
 * (this side or the peer closed), EK_ECONNRESET, EK_ECLOSED, EK_EINVAL. Never
 * raises SIGPIPE. Task context.
 */
EK_EXTERN int ek_tcp_write(ek_tcp_stream *s, ek_cx *cx, const void *buf, size_t len,
                           size_t *nwritten);
/* Gathered write of count buffers (bufs[i], lens[i]; count <= 1024), as
 * ek_tcp_write. No struct layout: two parallel arrays. */
EK_EXTERN int ek_tcp_writev(ek_tcp_stream *s, ek_cx *cx, const void *const *bufs,
                            const size_t *lens, size_t count, size_t *nwritten);
/*
 * A future writing all len bytes of buf (borrowed: it must stay valid and
 * unchanged until the future completes or is dropped), completing with EK_OK
 * (*out = NULL) or the first write error. If progress is not NULL, *progress is
 * kept equal to the number of bytes written so far (exact, also after an error
 * or a drop). The stream must outlive the future.
 * Errors now: EK_EINVAL, EK_ENOMEM.
 */
EK_EXTERN int ek_tcp_write_all(ek_tcp_stream *s, const void *buf, size_t len, size_t *progress,
                               ek_future **out);
/* Shut down the write side (half-close: the peer reads end of stream; this side
 * can still read). Any thread. Errors: EK_EINVAL, EK_ECLOSED, EK_ENOTCONN. */
EK_EXTERN int ek_tcp_shutdown(ek_tcp_stream *s);
/* Write the peer's / the local address into out. Errors: EK_EINVAL, EK_ECLOSED,
 * EK_ENOTCONN. */
EK_EXTERN int ek_tcp_peer_addr(ek_tcp_stream *s, ek_sockaddr *out);
EK_EXTERN int ek_tcp_local_addr(ek_tcp_stream *s, ek_sockaddr *out);
/* TCP_NODELAY on (1) or off (0). Errors: EK_EINVAL, EK_ECLOSED, -errno. */
EK_EXTERN int ek_tcp_set_nodelay(ek_tcp_stream *s, int on);
/* 1 or 0, or an error. */
EK_EXTERN int ek_tcp_nodelay(ek_tcp_stream *s);
/* SO_KEEPALIVE: idle_secs == 0 turns it off; otherwise on, with the first probe
 * after idle_secs and later probes every idle_secs. Errors as set_nodelay. */
EK_EXTERN int ek_tcp_set_keepalive(ek_tcp_stream *s, unsigned idle_secs);
/* SO_LINGER: secs < 0 turns it off (the default: free returns at once and the
 * kernel sends what is queued); 0 makes ek_tcp_free reset the connection (RST)
 * and drop unsent data; secs > 0 makes ek_tcp_free block the calling thread up
 * to secs while data goes out (avoid that on runtime threads).
 * Errors as set_nodelay. */
EK_EXTERN int ek_tcp_set_linger(ek_tcp_stream *s, int secs);
/* The descriptor, for setsockopt and the like (still owned by the stream; do
 * not close or read it). EK_EINVAL, EK_ECLOSED. */
EK_EXTERN int ek_tcp_fd(ek_tcp_stream *s);
/* See "Closing and freeing" above. close: EK_OK, EK_EINVAL; idempotent. */
EK_EXTERN int ek_tcp_close(ek_tcp_stream *s);
EK_EXTERN void ek_tcp_free(ek_tcp_stream *s);

/* ------------------------------------------------------------------------- */
/* UDP                                                                       */
/* ------------------------------------------------------------------------- */

typedef struct ek_udp_socket ek_udp_socket;

#define EK_UDP_REUSEADDR 0x1u
#define EK_UDP_REUSEPORT 0x2u
#define EK_UDP_V6ONLY    0x4u

/* Bind a UDP socket to addr (IP; port 0 picks one). Any thread.
 * Errors: EK_EINVAL, EK_ECLOSED, EK_EADDRINUSE, EK_EACCES, EK_ENOMEM, -errno. */
EK_EXTERN int ek_udp_bind(ek_runtime *rt, const ek_sockaddr *addr, unsigned flags,
                          ek_udp_socket **out);
/* Set the default peer (send/recv then use it and other senders are filtered
 * out by the kernel). Does not wait. Errors: EK_EINVAL, EK_ECLOSED, -errno. */
EK_EXTERN int ek_udp_connect(ek_udp_socket *u, const ek_sockaddr *addr);
/* Send one datagram to addr: EK_OK with *nsent == len; EK_PENDING; errors:
 * EK_EMSGSIZE, EK_ECONNREFUSED (an earlier datagram was refused), EK_ECLOSED,
 * EK_EINVAL, -errno. Task context. */
EK_EXTERN int ek_udp_send_to(ek_udp_socket *u, ek_cx *cx, const void *buf, size_t len,
                             const ek_sockaddr *addr, size_t *nsent);
/* Receive one datagram: EK_OK with *nrecv = its length (truncated to len) and,
 * if from is not NULL, the sender's address in it; EK_PENDING; errors as
 * send_to. Task context. */
EK_EXTERN int ek_udp_recv_from(ek_udp_socket *u, ek_cx *cx, void *buf, size_t len, size_t *nrecv,
                               ek_sockaddr *from);
/* As send_to / recv_from with the connected peer (EK_EDESTADDRREQ if none). */
EK_EXTERN int ek_udp_send(ek_udp_socket *u, ek_cx *cx, const void *buf, size_t len, size_t *nsent);
EK_EXTERN int ek_udp_recv(ek_udp_socket *u, ek_cx *cx, void *buf, size_t len, size_t *nrecv);
/* Addresses. Errors: EK_EINVAL, EK_ECLOSED, EK_ENOTCONN (peer of unconnected). */
EK_EXTERN int ek_udp_local_addr(ek_udp_socket *u, ek_sockaddr *out);
EK_EXTERN int ek_udp_peer_addr(ek_udp_socket *u, ek_sockaddr *out);
/* Options; each returns EK_OK, EK_EINVAL, EK_ECLOSED or -errno.
 * broadcast: SO_BROADCAST (IPv4). ttl: unicast hop limit (1..255).
 * multicast_ttl: hop limit of multicast datagrams. multicast_loop: whether this
 * host receives its own multicast datagrams. */
EK_EXTERN int ek_udp_set_broadcast(ek_udp_socket *u, int on);
EK_EXTERN int ek_udp_set_ttl(ek_udp_socket *u, unsigned ttl);
EK_EXTERN int ek_udp_set_multicast_ttl(ek_udp_socket *u, unsigned ttl);
EK_EXTERN int ek_udp_set_multicast_loop(ek_udp_socket *u, int on);
/* Join / leave the multicast `group` (IPv4 or IPv6; its port is ignored) on the
 * interface with index ifindex (0: the system's choice).
 * Errors: EK_EINVAL (not a multicast address, family differs from socket),
 * EK_ECLOSED, EK_EADDRINUSE (already joined), EK_EADDRNOTAVAIL, -errno. */
EK_EXTERN int ek_udp_join_multicast(ek_udp_socket *u, const ek_sockaddr *group, unsigned ifindex);
EK_EXTERN int ek_udp_leave_multicast(ek_udp_socket *u, const ek_sockaddr *group, unsigned ifindex);
/* See "Closing and freeing" above. */
EK_EXTERN int ek_udp_close(ek_udp_socket *u);
EK_EXTERN void ek_udp_free(ek_udp_socket *u);

/* ------------------------------------------------------------------------- */
/* Unix domain sockets                                                       */
/* ------------------------------------------------------------------------- */

/* Paths: a filesystem path, or "@name" for a Linux abstract name (no file; gone
 * when the last socket closes). Longer than the kernel allows: EK_ENAMETOOLONG. */

typedef struct ek_unix_listener ek_unix_listener;
typedef struct ek_unix_stream ek_unix_stream;
typedef struct ek_unix_dgram ek_unix_dgram;

/* Bind a stream listener at path (an existing file gives EK_EADDRINUSE; the
 * file is not removed on free: unlink it yourself) with backlog (<= 0: 1024).
 * Errors: EK_EINVAL, EK_ECLOSED, EK_ENAMETOOLONG, EK_EADDRINUSE, EK_EACCES,
 * EK_ENOENT, EK_ENOMEM, -errno. */
EK_EXTERN int ek_unix_bind(ek_runtime *rt, const char *path, int backlog, ek_unix_listener **out);
/* As ek_tcp_accept (with the same back-off on EMFILE); peer is usually unnamed. */
EK_EXTERN int ek_unix_accept(ek_unix_listener *l, ek_cx *cx, ek_unix_stream **out,
                             ek_sockaddr *peer);
EK_EXTERN int ek_unix_listener_local_addr(ek_unix_listener *l, ek_sockaddr *out);
EK_EXTERN int ek_unix_listener_close(ek_unix_listener *l);
EK_EXTERN void ek_unix_listener_free(ek_unix_listener *l);

/* A future connecting to the listener at path; completes with *out = an
 * ek_unix_stream (free with ek_unix_free) or EK_ENOENT, EK_ECONNREFUSED,
 * EK_EACCES, EK_EAGAIN (the listener's backlog is full: Linux gives no event to
 * wait for, so retry later), -errno. Errors now: EK_EINVAL, EK_ECLOSED,
 * EK_ENAMETOOLONG, EK_ENOMEM. */
EK_EXTERN int ek_unix_connect(ek_runtime *rt, const char *path, ek_future **out);
/* A connected pair (socketpair), both registered with rt. Errors: EK_EINVAL,
 * EK_ECLOSED, EK_EMFILE, EK_ENOMEM. */
EK_EXTERN int ek_unix_pair(ek_runtime *rt, ek_unix_stream **a, ek_unix_stream **b);
/* As the ek_tcp_ functions of the same name. */
EK_EXTERN int ek_unix_read(ek_unix_stream *s, ek_cx *cx, void *buf, size_t len, size_t *nread);
EK_EXTERN int ek_unix_write(ek_unix_stream *s, ek_cx *cx, const void *buf, size_t len,
                            size_t *nwritten);
EK_EXTERN int ek_unix_writev(ek_unix_stream *s, ek_cx *cx, const void *const *bufs,
                             const size_t *lens, size_t count, size_t *nwritten);
EK_EXTERN int ek_unix_write_all(ek_unix_stream *s, const void *buf, size_t len, size_t *progress,
                                ek_future **out);
EK_EXTERN int ek_unix_shutdown(ek_unix_stream *s);
EK_EXTERN int ek_unix_peer_addr(ek_unix_stream *s, ek_sockaddr *out);
EK_EXTERN int ek_unix_local_addr(ek_unix_stream *s, ek_sockaddr *out);
EK_EXTERN int ek_unix_close(ek_unix_stream *s);
EK_EXTERN void ek_unix_free(ek_unix_stream *s);

/* A datagram socket bound to path, or unbound if path is NULL (it can send, and
 * receive replies only on a connected pair). Errors as ek_unix_bind. */
EK_EXTERN int ek_unix_dgram_bind(ek_runtime *rt, const char *path, ek_unix_dgram **out);
/* Set the default peer: a Unix address (ek_sockaddr_parse of a path or
 * "@name"; only read). Errors: EK_EINVAL (NULL, not a named Unix address),
 * EK_ECLOSED, EK_ENOENT, EK_ECONNREFUSED, -errno. */
EK_EXTERN int ek_unix_dgram_connect(ek_unix_dgram *d, const ek_sockaddr *addr);
/* As the ek_udp_ functions; the destination is a Unix address (only read; the
 * `from` address of recv_from can be passed back to reply). When the receiver's
 * queue is full, send on a connected socket pends (EK_PENDING) until the
 * receiver drains it; send_to returns EK_EAGAIN instead, because the kernel
 * only signals the sender for its connected peer. Other errors: EK_ENOENT,
 * EK_ECONNREFUSED (nobody bound there), EK_ENOTCONN (send unconnected),
 * EK_EINVAL (addr NULL or not a named Unix address). */
EK_EXTERN int ek_unix_dgram_send_to(ek_unix_dgram *d, ek_cx *cx, const void *buf, size_t len,
                                    const ek_sockaddr *addr, size_t *nsent);
EK_EXTERN int ek_unix_dgram_recv_from(ek_unix_dgram *d, ek_cx *cx, void *buf, size_t len,
                                      size_t *nrecv, ek_sockaddr *from);
EK_EXTERN int ek_unix_dgram_send(ek_unix_dgram *d, ek_cx *cx, const void *buf, size_t len,
                                 size_t *nsent);
EK_EXTERN int ek_unix_dgram_recv(ek_unix_dgram *d, ek_cx *cx, void *buf, size_t len, size_t *nrecv);
EK_EXTERN int ek_unix_dgram_local_addr(ek_unix_dgram *d, ek_sockaddr *out);
EK_EXTERN int ek_unix_dgram_close(ek_unix_dgram *d);
EK_EXTERN void ek_unix_dgram_free(ek_unix_dgram *d);

#ifdef __cplusplus
}
#endif

#endif /* EKIDEN_NET_H */
