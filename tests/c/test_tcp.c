/* test_tcp.c - TCP listener and stream over loopback: every op and error path. */
#include "net_helpers.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <sys/wait.h>

/* ---- addresses ---- */

static void t_roundtrip(const char *text, int family, int port)
{
    ek_sockaddr *a;
    char buf[EK_SOCKADDR_STRLEN];
    assert_int_equal(ek_sockaddr_parse(text, &a), EK_OK);
    assert_int_equal(ek_sockaddr_family(a), family);
    if (port >= 0) assert_int_equal(ek_sockaddr_port(a), port);
    assert_int_equal(ek_sockaddr_format(a, buf, sizeof buf), (int)strlen(text));
    assert_string_equal(buf, text);
    ek_sockaddr_free(a);
}

static void test_sockaddr_parse_and_format(void **state)
{
    t_roundtrip("127.0.0.1:8080", EK_AF_INET, 8080);
    t_roundtrip("0.0.0.0:0", EK_AF_INET, 0);
    t_roundtrip("[::1]:80", EK_AF_INET6, 80);
    t_roundtrip("[fe80::1%lo]:443", EK_AF_INET6, 443);
    t_roundtrip("/tmp/ekiden.sock", EK_AF_UNIX, -1);
    t_roundtrip("@ekiden-abstract", EK_AF_UNIX, -1);
    t_roundtrip("unix:relative.sock", EK_AF_UNIX, -1);

    const char *bad[] = {
        "",       "127.0.0.1",      "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:8o",
        "::1:80", "[127.0.0.1]:80", "[::1]80",    "localhost:80",    "1.2.3:4",
        "@"};
    ek_sockaddr *a = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ek_sockaddr_parse(bad[i], &a), EK_EINVAL);
    assert_int_equal(ek_sockaddr_parse(NULL, &a), EK_EINVAL);
    char longpath[200];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    assert_int_equal(ek_sockaddr_parse(longpath, &a), EK_ENAMETOOLONG);

    /* from_ip, set_port, equal, copy, native, small buffers */
    ek_sockaddr *b, *c, *e;
    assert_int_equal(ek_sockaddr_from_ip("10.1.2.3", 9, &b), EK_OK);
    assert_int_equal(ek_sockaddr_parse("10.1.2.3:10", &c), EK_OK);
    assert_int_equal(ek_sockaddr_equal(b, c), 0);
    assert_int_equal(ek_sockaddr_set_port(b, 10), EK_OK);
    assert_int_equal(ek_sockaddr_equal(b, c), 1);
    assert_int_equal(ek_sockaddr_copy(c, &a), EK_OK);
    assert_int_equal(ek_sockaddr_equal(a, c), 1);
    char tiny[4];
    assert_int_equal(ek_sockaddr_format(a, tiny, sizeof tiny), EK_ERANGE);
    struct sockaddr_in sin;
    size_t len = sizeof sin;
    assert_int_equal(ek_sockaddr_to_native(a, &sin, &len), EK_OK);
    assert_int_equal(len, sizeof sin);
    assert_int_equal(ntohs(sin.sin_port), 10);
    assert_int_equal(ek_sockaddr_from_native(&sin, len, &e), EK_OK);
    assert_int_equal(ek_sockaddr_equal(e, c), 1);
    ek_sockaddr_free(b);
    assert_int_equal(ek_sockaddr_new(&b), EK_OK);
    assert_int_equal(ek_sockaddr_family(b), EK_AF_UNSPEC);
    assert_int_equal(ek_sockaddr_port(b), EK_EINVAL);
    assert_int_equal(ek_sockaddr_set(b, "[::1]:7"), EK_OK);
    assert_int_equal(ek_sockaddr_set(b, "junk"), EK_EINVAL);
    assert_int_equal(ek_sockaddr_port(b), 7); /* unchanged by the failed set */
    assert_int_equal(ek_sockaddr_family(NULL), EK_EINVAL);
    assert_int_equal(ek_sockaddr_family((ek_sockaddr *)&sin), EK_EINVAL);
    ek_sockaddr_free(a);
    ek_sockaddr_free(b);
    ek_sockaddr_free(c);
    ek_sockaddr_free(e);
    ek_sockaddr_free(NULL);

    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_sockaddr_parse("1.2.3.4:5", &a), EK_ENOMEM);
    ekt_alloc_fail_here_after(-1);
}

static void test_sockaddr_scope_ids_out_of_range_are_einval(void **state)
{
    /* The whole uint32 range and nothing beyond it: no wrap to "no scope" or to
     * 4294967295, no sign. */
    const char *bad[] = {"[fe80::1%4294967296]:80",
                         "[fe80::1%-1]:80",
                         "[fe80::1%+1]:80",
                         "[fe80::1%0]:80",
                         "[fe80::1%]:80",
                         "[fe80::1%1x]:80",
                         "[fe80::1%99999999999999999999]:80"};
    ek_sockaddr *a = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ek_sockaddr_parse(bad[i], &a), EK_EINVAL);
    assert_null(a);
    t_roundtrip("[fe80::1%4294967295]:80", EK_AF_INET6, 80);
    assert_int_equal(ek_sockaddr_parse("[fe80::1%1]:80", &a), EK_OK);
    struct sockaddr_in6 sin6;
    size_t len = sizeof sin6;
    assert_int_equal(ek_sockaddr_to_native(a, &sin6, &len), EK_OK);
    assert_int_equal(sin6.sin6_scope_id, 1);
    ek_sockaddr_free(a);
}

static void test_sockaddr_from_native_unix_longer_than_sockaddr_un_is_einval(void **state)
{
    struct sockaddr_storage ss;
    memset(&ss, 'x', sizeof ss);
    ss.ss_family = AF_UNIX;
    ek_sockaddr *a = NULL;
    assert_int_equal(ek_sockaddr_from_native(&ss, sizeof(struct sockaddr_un) + 1, &a), EK_EINVAL);
    assert_int_equal(ek_sockaddr_from_native(&ss, sizeof ss, &a), EK_EINVAL);
    assert_null(a);
    /* The longest one accepted formats into EK_SOCKADDR_STRLEN, as promised. */
    assert_int_equal(ek_sockaddr_from_native(&ss, sizeof(struct sockaddr_un), &a), EK_OK);
    char buf[EK_SOCKADDR_STRLEN];
    int n = ek_sockaddr_format(a, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(buf));
    ek_sockaddr_free(a);
}

/* ---- basic data path ---- */

static void t_echo_pair(ek_runtime *rt, const char *listen_at)
{
    ek_sockaddr *addr, *peer, *local;
    ek_tcp_listener *l = t_tcp_listen(rt, listen_at, &addr);
    ek_tcp_stream *c = t_tcp_connect(rt, addr);
    assert_int_equal(ek_sockaddr_new(&peer), EK_OK);
    t_accept a = {.l = l, .peer = peer};
    assert_int_equal(t_run(rt, t_tcp_accept_op, &a), EK_OK);
    ek_tcp_stream *s = a.s;

    /* the peer address reported by accept is the client's local address */
    assert_int_equal(ek_sockaddr_new(&local), EK_OK);
    assert_int_equal(ek_tcp_local_addr(c, local), EK_OK);
    assert_int_equal(ek_sockaddr_equal(peer, local), 1);
    assert_int_equal(ek_tcp_peer_addr(c, local), EK_OK);
    assert_int_equal(ek_sockaddr_equal(addr, local), 1);

    char buf[64];
    t_tcp_write_all(rt, c, "hello", 5);
    assert_int_equal(t_tcp_read_exact(rt, s, buf, 5), 5);
    assert_memory_equal(buf, "hello", 5);
    t_tcp_write_all(rt, s, "world!", 6);
    assert_int_equal(t_tcp_read_exact(rt, c, buf, 6), 6);
    assert_memory_equal(buf, "world!", 6);

    /* a write of zero bytes completes at once */
    t_io io = {.h = c, .buf = buf, .len = 0, .n = 99};
    assert_int_equal(t_run(rt, t_tcp_write_op, &io), EK_OK);
    assert_int_equal(io.n, 0);

    ek_tcp_free(c);
    ek_tcp_free(s);
    ek_tcp_listener_free(l);
    ek_sockaddr_free(addr);
    ek_sockaddr_free(peer);
    ek_sockaddr_free(local);
}

static void test_connect_accept_read_write_ipv4(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    t_echo_pair(rt, "127.0.0.1:0");
    ekt_rt_free_checked(rt);
}

static void test_connect_accept_read_write_current_thread(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    t_echo_pair(rt, "127.0.0.1:0");
    ekt_rt_free_checked(rt);
}

static void test_connect_accept_ipv6(void **state)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sin6, sizeof sin6) == 0;
    if (fd >= 0) close(fd);
    if (!ok) skip(); /* no IPv6 loopback here */
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    t_echo_pair(rt, "[::1]:0");
    ekt_rt_free_checked(rt);
}

typedef struct t_writev_args {
    ek_tcp_stream *s;
    const void *const *bufs;
    const size_t *lens;
    size_t count, n;
} t_writev_args;

static int t_writev_op(void *arg, ek_cx *cx)
{
    t_writev_args *w = arg;
    return ek_tcp_writev(w->s, cx, w->bufs, w->lens, w->count, &w->n);
}

static void test_writev_gathers_in_order(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_tcp_stream *c, *s;
    t_tcp_pair(rt, &c, &s);
    const void *bufs[3] = {"abc", "", "defgh"};
    size_t lens[3] = {3, 0, 5};
    t_writev_args w = {c, bufs, lens, 3, 0};
    assert_int_equal(t_run(rt, t_writev_op, &w), EK_OK);
    assert_int_equal(w.n, 8);
    char buf[8];
    assert_int_equal(t_tcp_read_exact(rt, s, buf, 8), 8);
    assert_memory_equal(buf, "abcdefgh", 8);
    w.count = 1025; /* more than IOV_MAX */
    assert_int_equal(t_run(rt, t_writev_op, &w), EK_EINVAL);
    w.count = 2;
    w.bufs = NULL;
    assert_int_equal(t_run(rt, t_writev_op, &w), EK_EINVAL);
    ek_tcp_free(c);
    ek_tcp_free(s);
    ekt_rt_free_checked(rt);
}

/* ---- end of stream, half-close ---- */

static void test_half_close_then_eof(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_tcp_stream *c, *s;
    t_tcp_pair(rt, &c, &s);
    char buf[16];
    size_t n = 99;

    t_tcp_write_all(rt, c, "last", 4);
    assert_int_equal(ek_tcp_shutdown(c), EK_OK);
    /* the server reads the data, then end of stream (0) */
    assert_int_equal(t_tcp_read_exact(rt, s, buf, 4), 4);
    assert_int_equal(t_tcp_read(rt, s, buf, sizeof buf, &n), EK_OK);
    assert_int_equal(n, 0);
    /* and again: end of stream is sticky */
    assert_int_equal(t_tcp_read(rt, s, buf, sizeof buf, &n), EK_OK);
    assert_int_equal(n, 0);
    /* the half-closed side can still read what the server writes */
    t_tcp_write_all(rt, s, "reply", 5);
    assert_int_equal(t_tcp_read_exact(rt, c, buf, 5), 5);
    assert_memory_equal(buf, "reply", 5);
    /* writing on the shut-down side fails with EPIPE (and no SIGPIPE) */
    t_io io = {.h = c, .buf = buf, .len = 1};
    assert_int_equal(t_run(rt, t_tcp_write_op, &io), EK_EPIPE);
    /* the server closes: the client sees end of stream */
    ek_tcp_free(s);
    assert_int_equal(t_tcp_read(rt, c, buf, sizeof buf, &n), EK_OK);
    assert_int_equal(n, 0);
    ek_tcp_free(c);
    ekt_rt_free_checked(rt);
}

static void test_read_of_zero_bytes_gives_zero_at_once(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_tcp_stream *c, *s;
    t_tcp_pair(rt, &c, &s);
    /* Idle: nothing to read, the peer is open. */
    t_read_zero z = {.s = s};
    assert_int_equal(t_run(rt, t_read_zero_once, &z), EK_OK);
    assert_int_equal(z.rc, EK_OK);
    assert_int_equal(z.n, 0);
    /* With data pending, still 0, and the data stays for the next read. */
    t_tcp_write_all(rt, c, "xy", 2);
    char buf[2];
    assert_int_equal(t_tcp_read_exact(rt, s, buf, 1), 1);
    z.n = 99;
    assert_int_equal(t_run(rt, t_read_zero_once, &z), EK_OK);
    assert_int_equal(z.rc, EK_OK);
    assert_int_equal(z.n, 0);
    assert_int_equal(t_tcp_read_exact(rt, s, buf, 1), 1);
    assert_int_equal(buf[0], 'y');
    /* NULL buf is allowed with len 0; a closed stream is EK_ECLOSED. */
    t_io io = {.h = s, .buf = NULL, .len = 0};
    assert_int_equal(t_run(rt, t_tcp_read_op, &io), EK_OK);
    assert_int_equal(io.n, 0);
    assert_int_equal(ek_tcp_close(s), EK_OK);
    assert_int_equal(t_run(rt, t_read_zero_once, &z), EK_OK);
    assert_int_equal(z.rc, EK_ECLOSED);
    ek_tcp_free(c);
    ek_tcp_free(s);
    ekt_rt_free_checked(rt);
}

/* ---- errors ---- */

static void test_connect_refused(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_sockaddr *addr;
    ek_tcp_listener_free(t_tcp_listen(rt, "127.0.0.1:0", &addr)); /* a port nobody uses */
    ek_future *f;
    void *out = NULL;
    assert_int_equal(ek_tcp_connect(rt, addr, &f), EK_OK);
    assert_int_equal(t_await(rt, f, &out), EK_ECONNREFUSED);
    assert_null(out);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

/* A connect future seen through a wrapper that records how its last poll
 * ended, so the test can tell that it was still pending when the timeout
 * dropped it (the kernel's own ETIMEDOUT would complete it first). */
typedef struct {
    ek_future *inner;
    int last;
} watched;

static int watched_poll(void *s, ek_cx *cx, void **out)
{
    watched *w = s;
    return w->last = ek_future_poll(w->inner, cx, out);
}

static void watched_drop(void *s)
{
    ek_future_drop(((watched *)s)->inner);
}

static void test_connect_timeout_on_full_backlog(void **state)
{
    /* A listener that never accepts, with its queue full: Linux drops further
     * SYNs, so a connect hangs until ek_timeout ends it (and closes its fd). */
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_sockaddr *addr;
    ek_tcp_listener *l;
    assert_int_equal(ek_sockaddr_parse("127.0.0.1:0", &addr), EK_OK);
    assert_int_equal(ek_tcp_bind(rt, addr, 1, 0, &l), EK_OK);
    assert_int_equal(ek_tcp_listener_local_addr(l, addr), EK_OK);
    char sa[64];
    size_t salen = sizeof sa;
    assert_int_equal(ek_sockaddr_to_native(addr, sa, &salen), EK_OK);
    int fillers[8];
    for (int i = 0; i < 8; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(fillers[i], (struct sockaddr *)sa, (socklen_t)salen);
    }
    usleep(50000); /* let the handshakes that can complete complete */
    int before = t_fd_count();
    ek_future *c, *f;
    watched w = {NULL, 99};
    assert_int_equal(ek_tcp_connect(rt, addr, &w.inner), EK_OK);
    assert_int_equal(ek_future_new(watched_poll, watched_drop, &w, &c), EK_OK);
    assert_int_equal(ek_timeout(rt, c, 100, &f), EK_OK);
    uint64_t t0 = ek_now_ms(rt);
    assert_int_equal(t_await(rt, f, NULL), EK_ETIMEDOUT);
    /* The timeout's ETIMEDOUT, not the kernel's (a SYN gives up after about two
     * minutes with the same code): not before 100 ms, and the connect was still
     * pending when the timeout dropped it. */
    assert_true(ek_now_ms(rt) - t0 >= 100);
    assert_int_equal(w.last, EK_PENDING);
    assert_int_equal(t_fd_count(), before); /* the half-open socket was closed */
    for (int i = 0; i < 8; i++) close(fillers[i]);
    ek_tcp_listener_free(l);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

typedef struct t_rst_peer {
    int fd;
    size_t read_before_reset;
} t_rst_peer;

/* Reads a little, then closes with SO_LINGER 0: the kernel sends RST. */
static void *t_rst_peer_main(void *arg)
{
    t_rst_peer *p = arg;
    char buf[4096];
    size_t got = 0;
    while (got < p->read_before_reset) {
        ssize_t r = recv(p->fd, buf, sizeof buf, 0);
        if (r <= 0) break;
        got += (size_t)r;
    }
    struct linger lg = {1, 0};
    setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(p->fd);
    return NULL;
}

static void test_reset_by_peer_mid_write(void **state)
{
    /* SIGPIPE keeps its default action (terminate): if any send raised it, this
     * test process would die. */
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_sockaddr *addr;
    ek_tcp_listener *l = t_tcp_listen(rt, "127.0.0.1:0", &addr);
    t_rst_peer peer = {.fd = t_raw_connect(addr), .read_before_reset = 256 * 1024};
    ek_tcp_stream *s = t_tcp_accept(rt, l);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, t_rst_peer_main, &peer), 0);

    size_t total = 64u << 20, done = 0;
    char *big = calloc(1, total);
    ek_future *f;
    assert_int_equal(ek_tcp_write_all(s, big, total, &done, &f), EK_OK);
    int rc = t_await(rt, f, NULL);
    assert_true(rc == EK_ECONNRESET || rc == EK_EPIPE);
    assert_true(done >= peer.read_before_reset && done < total);
    pthread_join(th, NULL);
    /* further writes keep failing with a code, never a signal */
    t_io io = {.h = s, .buf = big, .len = 1};
    rc = t_run(rt, t_tcp_write_op, &io);
    assert_true(rc == EK_EPIPE || rc == EK_ECONNRESET);
    free(big);
    ek_tcp_free(s);
    ek_tcp_listener_free(l);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

static void test_read_after_reset_gives_econnreset(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_sockaddr *addr;
    ek_tcp_listener *l = t_tcp_listen(rt, "127.0.0.1:0", &addr);
    int fd = t_raw_connect(addr);
    ek_tcp_stream *s = t_tcp_accept(rt, l);
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    char buf[16];
    size_t n;
    assert_int_equal(t_tcp_read(rt, s, buf, sizeof buf, &n), EK_ECONNRESET);
    ek_tcp_free(s);
    ek_tcp_listener_free(l);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

static void test_bind_errors(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    ek_sockaddr *addr, *unix_addr;
    ek_tcp_listener *l = t_tcp_listen(rt, "127.0.0.1:0", &addr), *l2 = NULL;
    assert_int_equal(ek_tcp_bind(rt, addr, 0, 0, &l2), EK_EADDRINUSE);
    assert_null(l2);
    assert_int_equal(ek_tcp_bind(rt, addr, 0, 0x80, &l2), EK_EINVAL);
    assert_int_equal(ek_tcp_bind(NULL, addr, 0, 0, &l2), EK_EINVAL);
    assert_int_equal(ek_tcp_bind(rt, NULL, 0, 0, &l2), EK_EINVAL);
    assert_int_equal(ek_sockaddr_parse("/tmp/x.sock", &unix_addr), EK_OK);
    assert_int_equal(ek_tcp_bind(rt, unix_addr, 0, 0, &l2), EK_EINVAL);
    assert_int_equal(ek_tcp_listen(rt, "nonsense", &l2), EK_EINVAL);
    assert_int_equal(ek_tcp_listen(rt, "192.0.2.1:0", &l2), EK_EADDRNOTAVAIL);

    /* two listeners share a port with EK_TCP_REUSEPORT */
    ek_sockaddr *any;
    ek_tcp_listener *r1, *r2;
    assert_int_equal(ek_sockaddr_parse("127.0.0.1:0", &any), EK_OK);
    assert_int_equal(ek_tcp_bind(rt, any, 16, EK_TCP_REUSEPORT, &r1), EK_OK);
    assert_int_equal(ek_tcp_listener_local_addr(r1, any), EK_OK);
    assert_int_equal(ek_tcp_bind(rt, any, 16, EK_TCP_REUSEPORT, &r2), EK_OK);
    ek_tcp_listener_free(r1);
    ek_tcp_listener_free(r2);

    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_tcp_listen(rt, "127.0.0.1:0", &l2), EK_ENOMEM);
    ekt_alloc_fail_here_after(-1);

    ek_tcp_listener_free(l);
    ek_sockaddr_free(any);
    ek_sockaddr_free(addr);
    ek_sockaddr_free(unix_addr);
    ekt_rt_free_checked(rt);
}

static void test_invalid_and_closed_handles(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_tcp_stream *c, *s;
    t_tcp_pair(rt, &c, &s);
    ek_sockaddr *a;
    assert_int_equal(ek_sockaddr_new(&a), EK_OK);
    char buf[4];
    size_t n;
    ek_future *f;

    /* NULL and wrong-type handles: EK_EINVAL, no crash */
    t_io io = {.h = NULL, .buf = buf, .len = 1};
    assert_int_equal(t_run(rt, t_tcp_read_op, &io), EK_EINVAL);
    io.h = a; /* an ek_sockaddr is not a stream */
    assert_int_equal(t_run(rt, t_tcp_read_op, &io), EK_EINVAL);
    assert_int_equal(t_run(rt, t_tcp_write_op, &io), EK_EINVAL);
    io.h = rt;
    assert_int_equal(t_run(rt, t_tcp_read_op, &io), EK_EINVAL);
    assert_int_equal(ek_tcp_shutdown(NULL), EK_EINVAL);
    assert_int_equal(ek_tcp_set_nodelay((ek_tcp_stream *)a, 1), EK_EINVAL);
    assert_int_equal(ek_tcp_peer_addr(c, NULL), EK_EINVAL);
    assert_int_equal(ek_tcp_peer_addr(c, (ek_sockaddr *)c), EK_EINVAL);
    assert_int_equal(ek_tcp_write_all(NULL, buf, 1, NULL, &f), EK_EINVAL);
    assert_int_equal(ek_tcp_connect(rt, NULL, &f), EK_EINVAL);
    assert_int_equal(ek_tcp_connect(rt, a, &f), EK_EINVAL); /* empty address */
    assert_int_equal(ek_tcp_close(NULL), EK_EINVAL);
    ek_tcp_free(NULL);
    ek_tcp_listener_free(NULL);
    assert_int_equal(ek_tcp_accept(NULL, NULL, NULL, NULL), EK_EINVAL);

    /* options */
    assert_int_equal(ek_tcp_set_nodelay(c, 1), EK_OK);
    assert_int_equal(ek_tcp_nodelay(c), 1);
    assert_int_equal(ek_tcp_set_nodelay(c, 0), EK_OK);
    assert_int_equal(ek_tcp_nodelay(c), 0);
    assert_int_equal(ek_tcp_set_keepalive(c, 30), EK_OK);
    int v = 0;
    socklen_t vl = sizeof v;
    assert_int_equal(getsockopt(ek_tcp_fd(c), IPPROTO_TCP, TCP_KEEPIDLE, &v, &vl), 0);
    assert_int_equal(v, 30);
    assert_int_equal(ek_tcp_set_keepalive(c, 0), EK_OK);
    assert_int_equal(ek_tcp_set_keepalive(c, 1u << 20), EK_EINVAL);
    assert_int_equal(ek_tcp_set_linger(c, 0), EK_OK);
    struct linger lg;
    vl = sizeof lg;
    assert_int_equal(getsockopt(ek_tcp_fd(c), SOL_SOCKET, SO_LINGER, &lg, &vl), 0);
    assert_int_equal(lg.l_onoff, 1);
    assert_int_equal(ek_tcp_set_linger(c, -1), EK_OK);

    /* closed: every op gives EK_ECLOSED, close is idempotent */
    assert_int_equal(ek_tcp_close(c), EK_OK);
    assert_int_equal(ek_tcp_close(c), EK_OK);
    io.h = c;
    assert_int_equal(t_run(rt, t_tcp_read_op, &io), EK_ECLOSED);
    assert_int_equal(t_run(rt, t_tcp_write_op, &io), EK_ECLOSED);
    assert_int_equal(ek_tcp_shutdown(c), EK_ECLOSED);
    assert_int_equal(ek_tcp_set_nodelay(c, 1), EK_ECLOSED);
    assert_int_equal(ek_tcp_peer_addr(c, a), EK_ECLOSED);
    assert_int_equal(ek_tcp_fd(c), EK_ECLOSED);
    assert_int_equal(ek_tcp_write_all(c, buf, 1, NULL, &f), EK_OK);
    assert_int_equal(t_await(rt, f, NULL), EK_ECLOSED);
    /* the peer saw the close */
    assert_int_equal(t_tcp_read(rt, s, buf, sizeof buf, &n), EK_OK);
    assert_int_equal(n, 0);

    ek_tcp_free(c);
    ek_tcp_free(s);
    ek_sockaddr_free(a);
    ekt_rt_free_checked(rt);
}

/* ---- close while waiting, abort while waiting ---- */

static void test_close_while_reading_wakes_with_eclosed(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_tcp_stream *c, *s;
    t_tcp_pair(rt, &c, &s);
    char buf[8];
    t_io io = {.h = s, .buf = buf, .len = sizeof buf};
    t_waiter w = {.fn = t_tcp_read_op, .arg = &io};
    ek_join *j;
    assert_int_equal(ek_spawn(rt, t_waiter_poll, t_waiter_drop, &w, NULL, &j), EK_OK);
    assert_true(t_wait_at_least(&w.polls, 1, 2000) >= 1);
    usleep(20000); /* the task is parked in the read */
    assert_int_equal(atomic_load(&w.polls), 1);
    assert_int_equal(ek_tcp_close(s), EK_OK); /* from another thread */
    assert_int_equal(ek_join_wait(j, NULL), EK_ECLOSED);
    ek_join_detach(j);
    ek_tcp_free(s);
    ek_tcp_free(c);
    ekt_rt_free_checked(rt);
}

static void test_close_listener_while_accepting(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_sockaddr *addr;
    t_accept a = {.l = t_tcp_listen(rt, "127.0.0.1:0", &addr)};
    t_waiter w = {.fn = t_tcp_accept_op, .arg = &a};
    ek_join *j;
    assert_int_equal(ek_spawn(rt, t_waiter_poll, t_waiter_drop, &w, NULL, &j), EK_OK);
    assert_true(t_wait_at_least(&w.polls, 1, 2000) >= 1);
    usleep(20000);
    assert_int_equal(ek_tcp_listener_close(a.l), EK_OK);
    assert_int_equal(ek_join_wait(j, NULL), EK_ECLOSED);
    ek_join_detach(j);
    assert_int_equal(t_run(rt, t_tcp_accept_op, &a), EK_ECLOSED);
    assert_int_equal(ek_tcp_listener_local_addr(a.l, addr), EK_ECLOSED);
    ek_tcp_listener_free(a.l);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

static void t_free_stream_arg(void *arg)
{
    ek_tcp_free(((t_io *)arg)->h);
}

static void test_abort_mid_read_releases_fd(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_tcp_stream *c, *s;
    t_tcp_pair(rt, &c, &s);
    int before = t_fd_count();
    char buf[8];
    t_io io = {.h = s, .buf = buf, .len = sizeof buf};
    /* the task owns s: its drop frees it */
    t_waiter w = {.fn = t_tcp_read_op, .arg = &io, .drop = t_free_stream_arg};
    ek_join *j;
    assert_int_equal(ek_spawn(rt, t_waiter_poll, t_waiter_drop, &w, NULL, &j), EK_OK);
    assert_true(t_wait_at_least(&w.polls, 1, 2000) >= 1);
    usleep(20000);
    assert_int_equal(ek_join_abort(j), EK_OK);
    assert_int_equal(ek_join_wait(j, NULL), EK_ECANCELED);
    ek_join_detach(j);
    uint64_t end = ekt_now_ms() + 2000;
    while (t_fd_count() != before - 1 && ekt_now_ms() < end) usleep(1000);
    assert_int_equal(t_fd_count(), before - 1);
    assert_int_equal(atomic_load(&w.polls), 1); /* dropped, not polled again */
    /* the peer sees the connection closed */
    size_t n = 99;
    assert_int_equal(t_tcp_read(rt, c, buf, sizeof buf, &n), EK_OK);
    assert_int_equal(n, 0);
    ek_tcp_free(c);
    ekt_rt_free_checked(rt);
}

/* ---- accept under a lowered descriptor limit ---- */

typedef struct t_acceptor {
    ek_tcp_listener *l;
    atomic_long accepted;
    long want;
} t_acceptor;

static int t_acceptor_op(void *arg, ek_cx *cx)
{
    t_acceptor *a = arg;
    while (atomic_load(&a->accepted) < a->want) {
        ek_tcp_stream *s;
        int rc = ek_tcp_accept(a->l, cx, &s, NULL);
        if (rc != EK_OK) return rc;
        ek_tcp_free(s);
        atomic_fetch_add(&a->accepted, 1);
    }
    return EK_OK;
}

static void test_accept_backs_off_on_emfile_and_recovers(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_sockaddr *addr;
    t_acceptor acc = {.l = t_tcp_listen(rt, "127.0.0.1:0", &addr), .want = 3};
    int clients[3];
    for (int i = 0; i < 3; i++) clients[i] = t_raw_connect(addr); /* queued in the kernel */

    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)t_fd_count() + 8;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int hogs[64], nh = 0;
    while (nh < 64 && (hogs[nh] = dup(0)) >= 0) nh++;
    assert_true(nh < 64); /* we ran out */

    t_waiter w = {.fn = t_acceptor_op, .arg = &acc};
    ek_join *j;
    assert_int_equal(ek_spawn(rt, t_waiter_poll, t_waiter_drop, &w, NULL, &j), EK_OK);
    usleep(300000);
    assert_int_equal(atomic_load(&acc.accepted), 0);
    /* backing off on a timer (10, 20, 40, 80, 160 ms), not spinning */
    long polls = atomic_load(&w.polls);
    assert_true(polls >= 1 && polls <= 12);

    for (int i = 0; i < nh; i++) close(hogs[i]);
    assert_int_equal(ek_join_wait(j, NULL), EK_OK);
    ek_join_detach(j);
    assert_int_equal(atomic_load(&acc.accepted), 3);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);

    for (int i = 0; i < 3; i++) close(clients[i]);
    ek_tcp_listener_free(acc.l);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

/* ---- 64 MiB through a slow reader ---- */

static uint64_t t_fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

typedef struct t_slow_reader {
    int fd;
    size_t got;
    uint64_t sum;
} t_slow_reader;

static void *t_slow_reader_main(void *arg)
{
    t_slow_reader *r = arg;
    static __thread unsigned char buf[65536];
    size_t since_nap = 0;
    usleep(50000); /* start late: the buffers fill and the writer pends */
    for (;;) {
        ssize_t n = recv(r->fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        r->sum = t_fnv(r->sum, buf, (size_t)n);
        r->got += (size_t)n;
        since_nap += (size_t)n;
        if (since_nap >= (1u << 20)) { /* slow: a nap per MiB */
            since_nap = 0;
            usleep(2000);
        }
    }
    return NULL;
}

typedef struct t_counted {
    ek_future *inner;
    long polls;
} t_counted;

static int t_counted_poll(void *state, ek_cx *cx, void **out)
{
    t_counted *c = state;
    c->polls++;
    return ek_future_poll(c->inner, cx, out);
}

static void test_64mib_through_slow_reader(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_sockaddr *addr;
    ek_tcp_listener *l = t_tcp_listen(rt, "127.0.0.1:0", &addr);
    t_slow_reader r = {.fd = t_raw_connect(addr), .sum = 0xcbf29ce484222325ull};
    ek_tcp_stream *s = t_tcp_accept(rt, l);

    /* At least 16 MiB even under sanitizers: more than the loopback socket
     * buffers hold, so the writer must wait for the reader. */
    size_t total = (size_t)(ekt_scale(64) > 16 ? ekt_scale(64) : 16) << 20;
    unsigned char *data = malloc(total);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < total; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        data[i] = (unsigned char)x;
    }
    uint64_t want = t_fnv(0xcbf29ce484222325ull, data, total);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, t_slow_reader_main, &r), 0);

    size_t done = 0;
    t_counted c = {0};
    assert_int_equal(ek_tcp_write_all(s, data, total, &done, &c.inner), EK_OK);
    assert_int_equal(ekt_block_on_fn(rt, t_counted_poll, &c, NULL), EK_OK);
    ek_future_drop(c.inner);
    assert_int_equal(done, total);
    assert_true(c.polls > 1); /* the writer had to wait for the reader */
    ek_tcp_free(s);           /* end of stream for the reader */
    pthread_join(th, NULL);
    assert_int_equal(r.got, total);
    assert_true(r.sum == want);
    close(r.fd);
    free(data);
    ek_tcp_listener_free(l);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

/* ---- socket ops spend the cooperative budget ---- */

/* A stream that always has data: reading 1 byte at a time in one poll must stop
 * after the budget (16 here) with EK_PENDING, and the task is polled again. */
typedef struct {
    ek_tcp_stream *s;
    int polls;
    long total;
    int max_reads_in_a_poll;
} t_budget_reader;

static int t_budget_read_poll(void *state, ek_cx *cx, void **out)
{
    t_budget_reader *b = state;
    b->polls++;
    int reads = 0;
    for (;;) {
        char c;
        size_t n;
        int rc = ek_tcp_read(b->s, cx, &c, 1, &n);
        if (rc == EK_PENDING) break;
        if (rc != EK_OK) return rc;
        reads++;
        b->total += (long)n;
        if (b->total == 4096) break;
    }
    if (reads > b->max_reads_in_a_poll) b->max_reads_in_a_poll = reads;
    if (b->total < 4096) return EK_PENDING;
    *out = NULL;
    return EK_OK;
}

static void test_socket_reads_spend_the_budget(void **state)
{
    ek_builder *bld = ekt_builder(EK_FLAVOR_MULTI_THREAD, 2, -1, 16);
    ek_runtime *rt = NULL;
    assert_int_equal(ek_runtime_new(bld, &rt), EK_OK);
    ek_builder_free(bld);
    ek_tcp_stream *client, *server;
    t_tcp_pair(rt, &client, &server);
    static char data[4096];
    t_tcp_write_all(rt, client, data, sizeof data);
    t_budget_reader b = {.s = server};
    ek_join *j;
    assert_int_equal(ek_spawn(rt, t_budget_read_poll, ekt_noop_drop, &b, NULL, &j), EK_OK);
    assert_int_equal(ekt_join(j, NULL), EK_OK);
    assert_int_equal(b.total, 4096);
    assert_true(b.max_reads_in_a_poll <= 16); /* never more than the budget */
    assert_true(b.polls >= 4096 / 16);        /* so it was polled again and again */
    ek_tcp_free(client);
    ek_tcp_free(server);
    ekt_rt_free_checked(rt);
}

/* ---- 10,000 concurrent connections on one runtime ---- */

typedef struct t_swarm {
    ek_runtime *rt;
    const ek_sockaddr *addr;
    ek_tcp_listener *l;
    atomic_long server_live, echoed, errors;
} t_swarm;

typedef struct t_swarm_conn {
    t_swarm *sw;
    ek_tcp_stream *s;
    ek_future *connect;
    char buf[8];
    size_t off;
    int phase;
} t_swarm_conn;

/* Server side: echo 8 bytes, then wait for end of stream. */
static int t_swarm_server_poll(void *state, ek_cx *cx, void **out)
{
    t_swarm_conn *c = state;
    size_t n;
    int rc;
    for (;;) {
        if (c->phase == 0) {
            rc = ek_tcp_read(c->s, cx, c->buf + c->off, sizeof c->buf - c->off, &n);
            if (rc != EK_OK) return rc;
            if (n == 0) return EK_OK;
            c->off += n;
            if (c->off == sizeof c->buf) c->phase = 1, c->off = 0;
        } else if (c->phase == 1) {
            rc = ek_tcp_write(c->s, cx, c->buf + c->off, sizeof c->buf - c->off, &n);
            if (rc != EK_OK) return rc;
            c->off += n;
            if (c->off == sizeof c->buf) c->phase = 2;
        } else {
            rc = ek_tcp_read(c->s, cx, c->buf, sizeof c->buf, &n);
            if (rc != EK_OK) return rc;
            if (n == 0) return EK_OK;
        }
    }
}

static void t_swarm_conn_drop(void *state)
{
    t_swarm_conn *c = state;
    ek_future_drop(c->connect);
    ek_tcp_free(c->s);
    free(c);
}

static void t_swarm_server_drop(void *state)
{
    atomic_fetch_sub(&((t_swarm_conn *)state)->sw->server_live, 1);
    t_swarm_conn_drop(state);
}

static int t_swarm_accept_poll(void *state, ek_cx *cx, void **out)
{
    t_swarm *sw = state;
    for (;;) {
        ek_tcp_stream *s;
        int rc = ek_tcp_accept(sw->l, cx, &s, NULL);
        if (rc != EK_OK) return rc;
        t_swarm_conn *c = calloc(1, sizeof *c);
        c->sw = sw;
        c->s = s;
        atomic_fetch_add(&sw->server_live, 1);
        if (ek_spawn(sw->rt, t_swarm_server_poll, t_swarm_server_drop, c, NULL, NULL) != EK_OK)
            atomic_fetch_add(&sw->errors, 1);
    }
}

/* Client side: connect, send 8 bytes, read them back, then hold the connection
 * open (reading) until aborted. */
static int t_swarm_client_poll(void *state, ek_cx *cx, void **out)
{
    t_swarm_conn *c = state;
    size_t n;
    int rc;
    for (;;) {
        switch (c->phase) {
        case 0:
            if (c->connect == NULL) {
                rc = ek_tcp_connect(c->sw->rt, c->sw->addr, &c->connect);
                if (rc != EK_OK) return rc;
            }
            rc = ek_future_poll(c->connect, cx, (void **)&c->s);
            if (rc == EK_PENDING) return rc;
            ek_future_drop(c->connect);
            c->connect = NULL;
            if (rc != EK_OK) {
                atomic_fetch_add(&c->sw->errors, 1);
                return rc;
            }
            memcpy(c->buf, "8 bytes!", 8);
            c->phase = 1;
            break;
        case 1:
            rc = ek_tcp_write(c->s, cx, c->buf + c->off, 8 - c->off, &n);
            if (rc != EK_OK) return rc;
            c->off += n;
            if (c->off == 8) c->phase = 2, c->off = 0;
            break;
        case 2:
            rc = ek_tcp_read(c->s, cx, c->buf + c->off, 8 - c->off, &n);
            if (rc != EK_OK) return rc;
            if (n == 0) return EK_ECONNRESET;
            c->off += n;
            if (c->off < 8) break;
            if (memcmp(c->buf, "8 bytes!", 8) != 0) atomic_fetch_add(&c->sw->errors, 1);
            atomic_fetch_add(&c->sw->echoed, 1);
            c->phase = 3;
            break;
        default:
            rc = ek_tcp_read(c->s, cx, c->buf, 8, &n);
            if (rc != EK_OK) return rc;
            if (n == 0) return EK_OK;
        }
    }
}

static void test_10k_concurrent_connections(void **state)
{
    long want = ekt_scale(10000);
    struct rlimit old, high;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    /* Both ends are in this process: two descriptors per connection. Raise the
     * hard limit too when allowed (root), else use what the hard limit gives. */
    rlim_t need = (rlim_t)(2 * want + t_fd_count() + 64);
    high.rlim_cur = high.rlim_max = need > old.rlim_max ? need : old.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &high) != 0) {
        high = old;
        high.rlim_cur = old.rlim_max;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &high), 0);
    }
    long room = ((long)high.rlim_cur - t_fd_count() - 64) / 2;
    if (room < want) {
        fprintf(stderr, "note: fd hard limit %lu allows only %ld connections\n",
                (unsigned long)high.rlim_cur, room);
        want = room > 1 ? room : 1;
    }

    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_sockaddr *addr;
    t_swarm sw = {.rt = rt};
    assert_int_equal(ek_sockaddr_parse("127.0.0.1:0", &addr), EK_OK);
    assert_int_equal(ek_tcp_bind(rt, addr, 4096, 0, &sw.l), EK_OK);
    assert_int_equal(ek_tcp_listener_local_addr(sw.l, addr), EK_OK);
    sw.addr = addr;
    ek_join *server;
    assert_int_equal(ek_spawn(rt, t_swarm_accept_poll, ekt_noop_drop, &sw, NULL, &server), EK_OK);

    ek_join **joins = calloc((size_t)want, sizeof *joins);
    for (long i = 0; i < want; i++) {
        t_swarm_conn *c = calloc(1, sizeof *c);
        c->sw = &sw;
        assert_int_equal(ek_spawn(rt, t_swarm_client_poll, t_swarm_conn_drop, c, NULL, &joins[i]),
                         EK_OK);
    }
    /* every connection echoed and still open: all `want` live at once */
    if (t_wait_for(&sw.echoed, want, 60000) != want)
        fprintf(stderr, "stuck: echoed %ld of %ld, server live %ld, errors %ld\n",
                atomic_load(&sw.echoed), want, atomic_load(&sw.server_live),
                atomic_load(&sw.errors));
    assert_int_equal(atomic_load(&sw.echoed), want);
    assert_int_equal(t_wait_for(&sw.server_live, want, 5000), want);
    assert_int_equal(atomic_load(&sw.errors), 0);

    for (long i = 0; i < want; i++) ek_join_abort(joins[i]);
    for (long i = 0; i < want; i++) {
        assert_int_equal(ek_join_wait(joins[i], NULL), EK_ECANCELED);
        ek_join_detach(joins[i]);
    }
    free(joins);
    /* the clients' sockets closed with their tasks: the server tasks end */
    assert_int_equal(t_wait_for(&sw.server_live, 0, 30000), 0);
    ek_tcp_listener_close(sw.l);
    assert_int_equal(ek_join_wait(server, NULL), EK_ECLOSED);
    ek_join_detach(server);
    ek_tcp_listener_free(sw.l);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
    setrlimit(RLIMIT_NOFILE, &old);
}

/* ---- 10,000 connections from another process ----
 *
 * The test above keeps both ends in one process (two descriptors per
 * connection), which a 20,000-descriptor hard limit caps just under 10,000. Here
 * the clients are plain blocking sockets in a child process (this binary,
 * re-executed with --swarm-client), so the runtime holds exactly one descriptor
 * per connection: all 10,000 accepted, echoed and open at the same time. */

extern char **environ;

static int swarm_client_main(const char *host, int port, long n)
{
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) return 2;
    int *fds = calloc((size_t)n, sizeof *fds);
    long ok = 0;
    for (long i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0) break;
        if (write(fds[i], "8 bytes!", 8) != 8) break;
        ok = i + 1;
    }
    long echoed = 0;
    for (long i = 0; i < ok; i++) {
        char buf[8];
        size_t got = 0;
        while (got < 8) {
            ssize_t k = read(fds[i], buf + got, 8 - got);
            if (k <= 0) break;
            got += (size_t)k;
        }
        if (got == 8 && memcmp(buf, "8 bytes!", 8) == 0) echoed++;
    }
    printf("%ld\n", echoed);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {
    } /* hold every connection open until the parent closes our stdin */
    for (long i = 0; i < ok; i++) close(fds[i]);
    free(fds);
    return 0;
}

static void test_10k_connections_from_another_process(void **state)
{
    long want = ekt_scale(10000);
    struct rlimit old, high;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    /* One descriptor per connection here (and in the child): raise the limits,
     * the hard one too where allowed (root). */
    rlim_t need = (rlim_t)(want + t_fd_count() + 64);
    high.rlim_cur = high.rlim_max = need > old.rlim_max ? need : old.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &high) != 0) {
        high = old;
        high.rlim_cur = old.rlim_max;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &high), 0);
    }
    if ((long)high.rlim_cur < (long)need) {
        /* A machine whose hard limit cannot hold 10,000: say so, test what fits. */
        fprintf(stderr, "note: fd hard limit %lu: %ld connections instead of %ld\n",
                (unsigned long)high.rlim_cur, (long)high.rlim_cur - t_fd_count() - 64, want);
        want = (long)high.rlim_cur - t_fd_count() - 64;
    }
    assert_true(want > 0);

    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_sockaddr *addr;
    t_swarm sw = {.rt = rt};
    assert_int_equal(ek_sockaddr_parse("127.0.0.1:0", &addr), EK_OK);
    assert_int_equal(ek_tcp_bind(rt, addr, 4096, 0, &sw.l), EK_OK);
    assert_int_equal(ek_tcp_listener_local_addr(sw.l, addr), EK_OK);
    ek_join *server;
    assert_int_equal(ek_spawn(rt, t_swarm_accept_poll, ekt_noop_drop, &sw, NULL, &server), EK_OK);

    int to_child[2], from_child[2];
    assert_int_equal(pipe(to_child), 0);
    assert_int_equal(pipe(from_child), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from_child[1], 1);
    posix_spawn_file_actions_addclose(&fa, to_child[1]);
    posix_spawn_file_actions_addclose(&fa, from_child[0]);
    char port[16], count[24];
    snprintf(port, sizeof port, "%d", ek_sockaddr_port(addr));
    snprintf(count, sizeof count, "%ld", want);
    char *argv[] = {"test_tcp", "--swarm-client", "127.0.0.1", port, count, NULL};
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(to_child[0]);
    close(from_child[1]);

    /* The child reports once every connection has been echoed; all are open. */
    char line[32] = {0};
    size_t got = 0;
    while (got < sizeof line - 1) {
        ssize_t k = read(from_child[0], line + got, sizeof line - 1 - got);
        if (k <= 0 || memchr(line, '\n', got + (size_t)k)) {
            if (k > 0) got += (size_t)k;
            break;
        }
        got += (size_t)k;
    }
    assert_int_equal(atol(line), want);
    assert_int_equal(t_wait_for(&sw.server_live, want, 10000), want);
    assert_int_equal(atomic_load(&sw.errors), 0);

    close(to_child[1]); /* the child exits, closing its sockets */
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(from_child[0]);
    assert_int_equal(t_wait_for(&sw.server_live, 0, 30000), 0);
    ek_tcp_listener_close(sw.l);
    assert_int_equal(ek_join_wait(server, NULL), EK_ECLOSED);
    ek_join_detach(server);
    ek_tcp_listener_free(sw.l);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
    setrlimit(RLIMIT_NOFILE, &old);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--swarm-client") == 0)
        return swarm_client_main(argv[2], atoi(argv[3]), atol(argv[4]));
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)
        T(test_sockaddr_parse_and_format),
        T(test_sockaddr_scope_ids_out_of_range_are_einval),
        T(test_sockaddr_from_native_unix_longer_than_sockaddr_un_is_einval),
        T(test_connect_accept_read_write_ipv4),
        T(test_connect_accept_read_write_current_thread),
        T(test_connect_accept_ipv6),
        T(test_writev_gathers_in_order),
        T(test_half_close_then_eof),
        T(test_read_of_zero_bytes_gives_zero_at_once),
        T(test_connect_refused),
        T(test_connect_timeout_on_full_backlog),
        T(test_reset_by_peer_mid_write),
        T(test_read_after_reset_gives_econnreset),
        T(test_bind_errors),
        T(test_invalid_and_closed_handles),
        T(test_close_while_reading_wakes_with_eclosed),
        T(test_close_listener_while_accepting),
        T(test_abort_mid_read_releases_fd),
        T(test_accept_backs_off_on_emfile_and_recovers),
        T(test_64mib_through_slow_reader),
        T(test_socket_reads_spend_the_budget),
        T(test_10k_concurrent_connections),
        T(test_10k_connections_from_another_process),
#undef T
    };
    if (getenv("EKT_FILTER")) cmocka_set_test_filter(getenv("EKT_FILTER"));
    if (getenv("EKT_SKIP")) cmocka_set_skip_filter(getenv("EKT_SKIP"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
