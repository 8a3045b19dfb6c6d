/* test_unix.c - Unix stream and datagram sockets: paths, abstract names, errors. */
#include "net_helpers.h"

#include <sys/stat.h>

static char t_dir[64];

static int t_unix_setup(void **state)
{
    snprintf(t_dir, sizeof t_dir, "/tmp/ekiden-unix-XXXXXX");
    assert_non_null(mkdtemp(t_dir));
    return ekt_setup(state);
}

static int t_unix_teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", t_dir);
    if (system(cmd) != 0) return -1;
    return ekt_teardown(state);
}

static const char *t_path(const char *name)
{
    static char buf[128];
    snprintf(buf, sizeof buf, "%s/%s", t_dir, name);
    return buf;
}

typedef struct t_uaccept {
    ek_unix_listener *l;
    ek_unix_stream *s;
    ek_sockaddr *peer;
} t_uaccept;

static int t_unix_accept_op(void *arg, ek_cx *cx)
{
    t_uaccept *a = arg;
    return ek_unix_accept(a->l, cx, &a->s, a->peer);
}

static int t_unix_read_op(void *arg, ek_cx *cx)
{
    t_io *io = arg;
    return ek_unix_read(io->h, cx, io->buf, io->len, &io->n);
}

static int t_unix_write_op(void *arg, ek_cx *cx)
{
    t_io *io = arg;
    return ek_unix_write(io->h, cx, io->buf, io->len, &io->n);
}

typedef struct t_uwritev {
    ek_unix_stream *s;
    size_t n;
} t_uwritev;

static int t_unix_writev_op(void *arg, ek_cx *cx)
{
    t_uwritev *v = arg;
    const void *bufs[2] = {"ab", "cd"};
    size_t lens[2] = {2, 2};
    return ek_unix_writev(v->s, cx, bufs, lens, 2, &v->n);
}

static ek_unix_stream *t_unix_connect(ek_runtime *rt, const char *path)
{
    ek_future *f;
    void *s = NULL;
    assert_int_equal(ek_unix_connect(rt, path, &f), EK_OK);
    assert_int_equal(t_await(rt, f, &s), EK_OK);
    return s;
}

/* Read exactly len bytes from a Unix stream. */
static void t_unix_read_exact(ek_runtime *rt, ek_unix_stream *s, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        t_io io = {.h = s, .buf = (char *)buf + got, .len = len - got};
        assert_int_equal(t_run(rt, t_unix_read_op, &io), EK_OK);
        assert_true(io.n > 0);
        got += io.n;
    }
}

static void t_stream_roundtrip(ek_runtime *rt, const char *path)
{
    ek_unix_listener *l = NULL;
    ek_sockaddr *local, *peer;
    char text[EK_SOCKADDR_STRLEN];
    assert_int_equal(ek_unix_bind(rt, path, 0, &l), EK_OK);
    assert_int_equal(ek_sockaddr_new(&local), EK_OK);
    assert_int_equal(ek_sockaddr_new(&peer), EK_OK);
    assert_int_equal(ek_unix_listener_local_addr(l, local), EK_OK);
    assert_int_equal(ek_sockaddr_family(local), EK_AF_UNIX);
    assert_int_equal(ek_sockaddr_format(local, text, sizeof text), (int)strlen(path));
    assert_string_equal(text, path);

    ek_unix_stream *c = t_unix_connect(rt, path);
    t_uaccept a = {.l = l, .peer = peer};
    assert_int_equal(t_run(rt, t_unix_accept_op, &a), EK_OK);
    /* a connecting client is unnamed */
    assert_int_equal(ek_sockaddr_format(peer, text, sizeof text), 0);
    assert_int_equal(ek_unix_peer_addr(c, peer), EK_OK);
    assert_int_equal(ek_sockaddr_equal(peer, local), 1);
    assert_int_equal(ek_unix_local_addr(a.s, peer), EK_OK);
    assert_int_equal(ek_sockaddr_equal(peer, local), 1);

    ek_future *f;
    size_t done;
    assert_int_equal(ek_unix_write_all(c, "over unix", 9, &done, &f), EK_OK);
    assert_int_equal(t_await(rt, f, NULL), EK_OK);
    char buf[16];
    t_unix_read_exact(rt, a.s, buf, 9);
    assert_memory_equal(buf, "over unix", 9);
    t_io w = {.h = a.s, .buf = "back", .len = 4};
    assert_int_equal(t_run(rt, t_unix_write_op, &w), EK_OK);
    assert_int_equal(w.n, 4);
    t_unix_read_exact(rt, c, buf, 4);
    assert_memory_equal(buf, "back", 4);
    t_uwritev v = {.s = c};
    assert_int_equal(t_run(rt, t_unix_writev_op, &v), EK_OK);
    assert_int_equal(v.n, 4);
    t_unix_read_exact(rt, a.s, buf, 4);
    assert_memory_equal(buf, "abcd", 4);

    /* half-close: the server reads end of stream */
    assert_int_equal(ek_unix_shutdown(c), EK_OK);
    t_io r = {.h = a.s, .buf = buf, .len = sizeof buf, .n = 99};
    assert_int_equal(t_run(rt, t_unix_read_op, &r), EK_OK);
    assert_int_equal(r.n, 0);

    ek_unix_free(c);
    ek_unix_free(a.s);
    ek_unix_listener_free(l);
    ek_sockaddr_free(local);
    ek_sockaddr_free(peer);
}

static void test_stream_over_path(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    t_stream_roundtrip(rt, t_path("s.sock"));
    /* the file stays until removed; binding again fails with its own code */
    struct stat st;
    assert_int_equal(stat(t_path("s.sock"), &st), 0);
    ek_unix_listener *l = NULL;
    assert_int_equal(ek_unix_bind(rt, t_path("s.sock"), 0, &l), EK_EADDRINUSE);
    assert_null(l);
    ekt_rt_free_checked(rt);
}

static void test_stream_over_abstract_name(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    char name[64];
    snprintf(name, sizeof name, "@ekiden-test-%d", (int)getpid());
    t_stream_roundtrip(rt, name);
    /* the name is gone with its socket: it can be bound again at once */
    ek_unix_listener *l = NULL;
    assert_int_equal(ek_unix_bind(rt, name, 0, &l), EK_OK);
    ek_unix_listener_free(l);
    ekt_rt_free_checked(rt);
}

static void test_connect_errors(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_future *f;
    assert_int_equal(ek_unix_connect(rt, t_path("missing.sock"), &f), EK_OK);
    assert_int_equal(t_await(rt, f, NULL), EK_ENOENT);
    /* a socket file whose listener is gone: refused */
    ek_unix_listener *l = NULL;
    assert_int_equal(ek_unix_bind(rt, t_path("dead.sock"), 0, &l), EK_OK);
    ek_unix_listener_free(l);
    assert_int_equal(ek_unix_connect(rt, t_path("dead.sock"), &f), EK_OK);
    assert_int_equal(t_await(rt, f, NULL), EK_ECONNREFUSED);

    char longpath[200];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    assert_int_equal(ek_unix_connect(rt, longpath, &f), EK_ENAMETOOLONG);
    assert_int_equal(ek_unix_bind(rt, longpath, 0, &l), EK_ENAMETOOLONG);
    assert_int_equal(ek_unix_bind(rt, "/nonexistent-dir/x.sock", 0, &l), EK_ENOENT);
    assert_int_equal(ek_unix_connect(rt, NULL, &f), EK_EINVAL);
    assert_int_equal(ek_unix_connect(rt, "", &f), EK_EINVAL);
    assert_int_equal(ek_unix_bind(NULL, t_path("x"), 0, &l), EK_EINVAL);
    assert_int_equal(ek_unix_accept(NULL, NULL, NULL, NULL), EK_EINVAL);
    ekt_rt_free_checked(rt);
}

static void test_read_of_zero_bytes_gives_zero_at_once(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    ek_unix_stream *a, *b;
    assert_int_equal(ek_unix_pair(rt, &a, &b), EK_OK);
    t_read_zero z = {.s = a, .is_unix = 1};
    assert_int_equal(t_run(rt, t_read_zero_once, &z), EK_OK);
    assert_int_equal(z.rc, EK_OK); /* idle: not EK_PENDING */
    assert_int_equal(z.n, 0);
    assert_int_equal(ek_unix_close(a), EK_OK);
    assert_int_equal(t_run(rt, t_read_zero_once, &z), EK_OK);
    assert_int_equal(z.rc, EK_ECLOSED);
    ek_unix_free(a);
    ek_unix_free(b);
    ekt_rt_free_checked(rt);
}

static void test_pair_close_while_reading(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_unix_stream *a, *b;
    assert_int_equal(ek_unix_pair(rt, &a, &b), EK_OK);
    char buf[8];
    t_io io = {.h = a, .buf = buf, .len = sizeof buf};
    t_waiter w = {.fn = t_unix_read_op, .arg = &io};
    ek_join *j;
    assert_int_equal(ek_spawn(rt, t_waiter_poll, t_waiter_drop, &w, NULL, &j), EK_OK);
    assert_true(t_wait_at_least(&w.polls, 1, 2000) >= 1);
    usleep(20000);
    assert_int_equal(ek_unix_close(a), EK_OK);
    assert_int_equal(ek_join_wait(j, NULL), EK_ECLOSED);
    ek_join_detach(j);
    /* the other end sees end of stream, and EPIPE when writing (no SIGPIPE) */
    t_io r = {.h = b, .buf = buf, .len = sizeof buf, .n = 99};
    assert_int_equal(t_run(rt, t_unix_read_op, &r), EK_OK);
    assert_int_equal(r.n, 0);
    r.len = 1;
    assert_int_equal(t_run(rt, t_unix_write_op, &r), EK_EPIPE);
    /* wrong types */
    r.h = rt;
    assert_int_equal(t_run(rt, t_unix_read_op, &r), EK_EINVAL);
    assert_int_equal(ek_unix_shutdown((ek_unix_stream *)rt), EK_EINVAL);
    ek_unix_free(a);
    ek_unix_free(b);
    ekt_rt_free_checked(rt);
}

/* ---- datagram ---- */

typedef struct t_ud {
    ek_unix_dgram *d;
    void *buf;
    size_t len, n;
    const ek_sockaddr *to;
    ek_sockaddr *from;
} t_ud;

static int t_ud_send_to_op(void *arg, ek_cx *cx)
{
    t_ud *u = arg;
    return ek_unix_dgram_send_to(u->d, cx, u->buf, u->len, u->to, &u->n);
}

static int t_ud_recv_from_op(void *arg, ek_cx *cx)
{
    t_ud *u = arg;
    return ek_unix_dgram_recv_from(u->d, cx, u->buf, u->len, &u->n, u->from);
}

static int t_ud_send_op(void *arg, ek_cx *cx)
{
    t_ud *u = arg;
    return ek_unix_dgram_send(u->d, cx, u->buf, u->len, &u->n);
}

static int t_ud_recv_op(void *arg, ek_cx *cx)
{
    t_ud *u = arg;
    return ek_unix_dgram_recv(u->d, cx, u->buf, u->len, &u->n);
}

static void test_datagram_send_to_recv_from(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    char apath[128], bpath[128], text[EK_SOCKADDR_STRLEN];
    snprintf(apath, sizeof apath, "%s", t_path("a.dgram"));
    snprintf(bpath, sizeof bpath, "@ekiden-dgram-%d", (int)getpid());
    ek_unix_dgram *a, *b, *anon;
    ek_sockaddr *from;
    assert_int_equal(ek_unix_dgram_bind(rt, apath, &a), EK_OK);
    assert_int_equal(ek_unix_dgram_bind(rt, bpath, &b), EK_OK);
    assert_int_equal(ek_unix_dgram_bind(rt, NULL, &anon), EK_OK);
    assert_int_equal(ek_sockaddr_new(&from), EK_OK);
    assert_int_equal(ek_unix_dgram_local_addr(b, from), EK_OK);
    assert_int_equal(ek_sockaddr_format(from, text, sizeof text), (int)strlen(bpath));
    assert_string_equal(text, bpath);

    char buf[32];
    ek_sockaddr *baddr, *aaddr, *nobody, *ip;
    assert_int_equal(ek_sockaddr_parse(bpath, &baddr), EK_OK);
    assert_int_equal(ek_sockaddr_parse(apath, &aaddr), EK_OK);
    assert_int_equal(ek_sockaddr_parse(t_path("nobody.dgram"), &nobody), EK_OK);
    assert_int_equal(ek_sockaddr_parse("127.0.0.1:9", &ip), EK_OK);
    t_ud s = {.d = a, .buf = "to b", .len = 4, .to = baddr};
    assert_int_equal(t_run(rt, t_ud_send_to_op, &s), EK_OK);
    t_ud r = {.d = b, .buf = buf, .len = sizeof buf, .from = from};
    assert_int_equal(t_run(rt, t_ud_recv_from_op, &r), EK_OK);
    assert_int_equal(r.n, 4);
    assert_memory_equal(buf, "to b", 4);
    assert_int_equal(ek_sockaddr_format(from, text, sizeof text), (int)strlen(apath));
    assert_string_equal(text, apath);
    /* the sender's address from recv_from is where a reply goes */
    t_ud reply = {.d = b, .buf = "back", .len = 4, .to = from};
    assert_int_equal(t_run(rt, t_ud_send_to_op, &reply), EK_OK);
    t_ud rr = {.d = a, .buf = buf, .len = sizeof buf};
    assert_int_equal(t_run(rt, t_ud_recv_op, &rr), EK_OK);
    assert_int_equal(rr.n, 4);
    assert_memory_equal(buf, "back", 4);

    /* connected: send/recv; an unbound sender shows as unnamed */
    assert_int_equal(ek_unix_dgram_connect(anon, aaddr), EK_OK);
    t_ud cs = {.d = anon, .buf = "anon", .len = 4};
    assert_int_equal(t_run(rt, t_ud_send_op, &cs), EK_OK);
    r.d = a;
    assert_int_equal(t_run(rt, t_ud_recv_from_op, &r), EK_OK);
    assert_int_equal(r.n, 4);
    assert_int_equal(ek_sockaddr_format(from, text, sizeof text), 0);

    /* errors: nobody bound there; not a named Unix address (IP, the unnamed
     * address just received, NULL, a handle of another type) */
    s.to = nobody;
    assert_int_equal(t_run(rt, t_ud_send_to_op, &s), EK_ENOENT);
    assert_int_equal(ek_unix_dgram_connect(a, nobody), EK_ENOENT);
    s.to = ip;
    assert_int_equal(t_run(rt, t_ud_send_to_op, &s), EK_EINVAL);
    s.to = from; /* unnamed */
    assert_int_equal(t_run(rt, t_ud_send_to_op, &s), EK_EINVAL);
    s.to = NULL;
    assert_int_equal(t_run(rt, t_ud_send_to_op, &s), EK_EINVAL);
    s.to = (const ek_sockaddr *)a;
    assert_int_equal(t_run(rt, t_ud_send_to_op, &s), EK_EINVAL);
    assert_int_equal(ek_unix_dgram_connect(a, ip), EK_EINVAL);
    assert_int_equal(ek_unix_dgram_connect(a, from), EK_EINVAL);
    assert_int_equal(ek_unix_dgram_connect(a, NULL), EK_EINVAL);
    t_ud ns = {.d = a, .buf = "x", .len = 1};
    assert_int_equal(t_run(rt, t_ud_send_op, &ns), EK_ENOTCONN);
    ek_unix_dgram *dup = NULL;
    assert_int_equal(ek_unix_dgram_bind(rt, apath, &dup), EK_EADDRINUSE);

    /* close while receiving */
    t_ud wr = {.d = b, .buf = buf, .len = sizeof buf};
    t_waiter w = {.fn = t_ud_recv_op, .arg = &wr};
    ek_join *j;
    assert_int_equal(ek_spawn(rt, t_waiter_poll, t_waiter_drop, &w, NULL, &j), EK_OK);
    assert_true(t_wait_at_least(&w.polls, 1, 2000) >= 1);
    usleep(20000);
    assert_int_equal(ek_unix_dgram_close(b), EK_OK);
    assert_int_equal(ek_join_wait(j, NULL), EK_ECLOSED);
    ek_join_detach(j);

    ek_unix_dgram_free(a);
    ek_unix_dgram_free(b);
    ek_unix_dgram_free(anon);
    ek_sockaddr_free(from);
    ek_sockaddr_free(baddr);
    ek_sockaddr_free(aaddr);
    ek_sockaddr_free(nobody);
    ek_sockaddr_free(ip);
    ekt_rt_free_checked(rt);
}

static void test_connected_datagram_backpressure(void **state)
{
    /* A connected sender whose receiver's queue is full pends, and is woken
     * when the receiver drains it. */
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    char rpath[64];
    snprintf(rpath, sizeof rpath, "@ekiden-bp-%d", (int)getpid());
    ek_unix_dgram *rx, *tx;
    assert_int_equal(ek_unix_dgram_bind(rt, rpath, &rx), EK_OK);
    assert_int_equal(ek_unix_dgram_bind(rt, NULL, &tx), EK_OK);
    ek_sockaddr *raddr;
    assert_int_equal(ek_sockaddr_parse(rpath, &raddr), EK_OK);
    assert_int_equal(ek_unix_dgram_connect(tx, raddr), EK_OK);
    ek_sockaddr_free(raddr);
    /* fill the receiver (max_dgram_qlen, 512 by default, or the buffer) */
    char msg[256] = {0};
    long sent = 0;
    t_ud s = {.d = tx, .buf = msg, .len = sizeof msg};
    t_waiter w = {.fn = t_ud_send_op, .arg = &s};
    for (;;) {
        atomic_store(&w.polls, 0);
        ek_join *j;
        assert_int_equal(ek_spawn(rt, t_waiter_poll, t_waiter_drop, &w, NULL, &j), EK_OK);
        if (ek_join_is_finished(j) != 1) {
            usleep(50000);
            /* With nothing sent yet the receiver's queue cannot be full: a send
             * still unfinished is only slow to be polled (a loaded machine
             * took more than the 50 ms), so it is waited for as any other. */
            if (sent > 0 && ek_join_is_finished(j) != 1) {
                /* blocked: drain one datagram, the send must complete */
                char buf[256];
                t_ud r = {.d = rx, .buf = buf, .len = sizeof buf};
                assert_int_equal(t_run(rt, t_ud_recv_op, &r), EK_OK);
                assert_int_equal(ek_join_wait(j, NULL), EK_OK);
                ek_join_detach(j);
                break;
            }
        }
        assert_int_equal(ek_join_wait(j, NULL), EK_OK);
        ek_join_detach(j);
        assert_true(++sent < 100000);
    }
    assert_true(sent > 0);
    ek_unix_dgram_free(rx);
    ek_unix_dgram_free(tx);
    ekt_rt_free_checked(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, t_unix_setup, t_unix_teardown)
        T(test_stream_over_path),
        T(test_stream_over_abstract_name),
        T(test_connect_errors),
        T(test_read_of_zero_bytes_gives_zero_at_once),
        T(test_pair_close_while_reading),
        T(test_datagram_send_to_recv_from),
        T(test_connected_datagram_backpressure),
#undef T
    };
    if (getenv("EKT_FILTER")) cmocka_set_test_filter(getenv("EKT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
