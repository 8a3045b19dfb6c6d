/* test_stream.c - ek_stream over TCP, Unix and a user vtable: every op, ownership
 * on every error path, close waking a reader, the optional operations. */
#include "net_helpers.h"

/* ---- ops on an ek_stream, run from the test thread ---- */

typedef struct t_sio {
    ek_stream *s;
    void *buf;
    size_t len, n;
} t_sio;

static int t_stream_read_op(void *arg, ek_cx *cx)
{
    t_sio *io = arg;
    return ek_stream_read(io->s, cx, io->buf, io->len, &io->n);
}

/* Read until len bytes or end of stream. */
static int t_stream_read_exact_op(void *arg, ek_cx *cx)
{
    t_sio *io = arg;
    while (io->n < io->len) {
        size_t n;
        int rc = ek_stream_read(io->s, cx, (char *)io->buf + io->n, io->len - io->n, &n);
        if (rc != EK_OK) return rc;
        if (n == 0) return EK_OK;
        io->n += n;
    }
    return EK_OK;
}

static int t_stream_write_all_op(void *arg, ek_cx *cx)
{
    t_sio *io = arg;
    while (io->n < io->len) {
        size_t n;
        int rc = ek_stream_write(io->s, cx, (char *)io->buf + io->n, io->len - io->n, &n);
        if (rc != EK_OK) return rc;
        io->n += n;
    }
    return EK_OK;
}

typedef struct t_sv {
    ek_stream *s;
    size_t n;
} t_sv;

static int t_stream_writev_op(void *arg, ek_cx *cx)
{
    t_sv *v = arg;
    const void *bufs[3] = {"ab", "", "cde"};
    size_t lens[3] = {2, 0, 3};
    return ek_stream_writev(v->s, cx, bufs, lens, 3, &v->n);
}

/* Write, writev, read back through the peer, half-close, end of stream. */
static void t_exercise_pair(ek_runtime *rt, ek_stream *a, ek_stream *b)
{
    char msg[] = "hello stream";
    t_sio w = {.s = a, .buf = msg, .len = sizeof msg - 1};
    assert_int_equal(t_run(rt, t_stream_write_all_op, &w), EK_OK);
    t_sv v = {.s = a};
    assert_int_equal(t_run(rt, t_stream_writev_op, &v), EK_OK);
    assert_int_equal(v.n, 5);
    assert_int_equal(ek_stream_shutdown(a), EK_OK);

    char buf[64] = {0};
    t_sio r = {.s = b, .buf = buf, .len = sizeof buf};
    assert_int_equal(t_run(rt, t_stream_read_exact_op, &r), EK_OK);
    assert_int_equal(r.n, sizeof msg - 1 + 5); /* then end of stream */
    assert_memory_equal(buf, "hello streamabcde", r.n);
    /* len 0 reads 0 */
    t_sio z = {.s = b, .buf = buf, .len = 0};
    assert_int_equal(t_run(rt, t_stream_read_op, &z), EK_OK);
    assert_int_equal(z.n, 0);
}

static void test_tcp_stream_roundtrip_and_addresses(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_tcp_stream *c, *s;
    t_tcp_pair(rt, &c, &s);
    ek_stream *a, *b;
    assert_int_equal(ek_stream_from_tcp(c, &a), EK_OK);
    assert_int_equal(ek_stream_from_tcp(s, &b), EK_OK);
    assert_ptr_equal(ek_stream_tcp(a), c);
    assert_null(ek_stream_unix(a));
    assert_int_equal(ek_tcp_set_nodelay(ek_stream_tcp(a), 1), EK_OK);

    ek_sockaddr *al, *bp;
    assert_int_equal(ek_sockaddr_new(&al), EK_OK);
    assert_int_equal(ek_sockaddr_new(&bp), EK_OK);
    assert_int_equal(ek_stream_local_addr(a, al), EK_OK);
    assert_int_equal(ek_stream_peer_addr(b, bp), EK_OK);
    assert_int_equal(ek_sockaddr_equal(al, bp), 1);
    assert_int_equal(ek_stream_peer_addr(b, NULL), EK_EINVAL);

    t_exercise_pair(rt, a, b);

    assert_int_equal(ek_stream_close(a), EK_OK);
    assert_int_equal(ek_stream_close(a), EK_OK); /* idempotent */
    assert_int_equal(ek_stream_shutdown(a), EK_ECLOSED);
    assert_int_equal(ek_stream_local_addr(a, al), EK_ECLOSED);
    char buf[4];
    t_sio r = {.s = a, .buf = buf, .len = sizeof buf};
    assert_int_equal(t_run(rt, t_stream_read_op, &r), EK_ECLOSED);
    ek_sockaddr_free(al);
    ek_sockaddr_free(bp);
    ek_stream_free(a);
    ek_stream_free(b);
    ekt_rt_free_checked(rt);
}

static void test_unix_stream_roundtrip(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    ek_unix_stream *x, *y;
    assert_int_equal(ek_unix_pair(rt, &x, &y), EK_OK);
    ek_stream *a, *b;
    assert_int_equal(ek_stream_from_unix(x, &a), EK_OK);
    assert_int_equal(ek_stream_from_unix(y, &b), EK_OK);
    assert_ptr_equal(ek_stream_unix(b), y);
    assert_null(ek_stream_tcp(b));
    ek_sockaddr *p;
    assert_int_equal(ek_sockaddr_new(&p), EK_OK);
    assert_int_equal(ek_stream_peer_addr(a, p), EK_OK);
    assert_int_equal(ek_sockaddr_family(p), EK_AF_UNIX);
    ek_sockaddr_free(p);
    t_exercise_pair(rt, a, b);
    ek_stream_free(a);
    ek_stream_free(b);
    ekt_rt_free_checked(rt);
}

static void test_close_while_reading_wakes_reader(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_tcp_stream *c, *s;
    t_tcp_pair(rt, &c, &s);
    ek_stream *b;
    assert_int_equal(ek_stream_from_tcp(s, &b), EK_OK);
    char buf[8];
    t_sio io = {.s = b, .buf = buf, .len = sizeof buf};
    t_waiter w = {.fn = t_stream_read_op, .arg = &io};
    ek_join *j;
    assert_int_equal(ek_spawn(rt, t_waiter_poll, t_waiter_drop, &w, NULL, &j), EK_OK);
    assert_true(t_wait_at_least(&w.polls, 1, 5000) >= 1);
    assert_int_equal(ek_stream_close(b), EK_OK); /* from another thread */
    /* Whether the task was parked in the read or not yet polled again, it sees
     * the close. */
    assert_int_equal(ek_join_wait(j, NULL), EK_ECLOSED);
    ek_join_detach(j);
    ek_stream_free(b);
    ek_tcp_free(c);
    ekt_rt_free_checked(rt);
}

static void test_constructors_consume_the_socket_on_error(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    int fds = t_fd_count();
    ek_unix_stream *x, *y;
    assert_int_equal(ek_unix_pair(rt, &x, &y), EK_OK);
    ek_stream *a = NULL;
    assert_int_equal(ek_stream_from_unix(x, NULL), EK_EINVAL); /* x freed */
    ekt_alloc_fail_after(0);
    assert_int_equal(ek_stream_from_unix(y, &a), EK_ENOMEM); /* y freed */
    ekt_alloc_fail_after(-1);
    assert_null(a);
    assert_int_equal(t_fd_count(), fds);

    /* wrong types and NULL handles */
    assert_int_equal(ek_stream_from_tcp(NULL, &a), EK_EINVAL);
    assert_int_equal(ek_stream_from_unix(NULL, &a), EK_EINVAL);
    ek_tcp_stream *c, *s;
    t_tcp_pair(rt, &c, &s);
    assert_int_equal(ek_stream_from_unix((ek_unix_stream *)c, &a), EK_EINVAL); /* not consumed */
    assert_int_equal(ek_tcp_set_nodelay(c, 1), EK_OK);                         /* still alive */
    ek_tcp_free(c);
    ek_tcp_free(s);

    char buf[1];
    size_t n;
    assert_int_equal(ek_stream_read(NULL, NULL, buf, 1, &n), EK_EINVAL);
    assert_int_equal(ek_stream_write(NULL, NULL, buf, 1, &n), EK_EINVAL);
    assert_int_equal(ek_stream_writev(NULL, NULL, NULL, NULL, 0, &n), EK_EINVAL);
    assert_int_equal(ek_stream_shutdown(NULL), EK_EINVAL);
    assert_int_equal(ek_stream_close(NULL), EK_EINVAL);
    assert_int_equal(ek_stream_close((ek_stream *)rt), EK_EINVAL);
    assert_null(ek_stream_tcp(NULL));
    ek_stream_free(NULL);
    ekt_rt_free_checked(rt);
}

/* ---- a user stream: an in-memory pipe that records its calls ---- */

typedef struct t_mem {
    char data[64];
    size_t len;
    int writes, closes, drops;
} t_mem;

static int t_mem_read(void *self, ek_cx *cx, void *buf, size_t len, size_t *n)
{
    t_mem *m = self;
    *n = len < m->len ? len : m->len;
    memcpy(buf, m->data, *n);
    memmove(m->data, m->data + *n, m->len - *n);
    m->len -= *n;
    return EK_OK;
}

static int t_mem_write(void *self, ek_cx *cx, const void *buf, size_t len, size_t *n)
{
    t_mem *m = self;
    m->writes++;
    *n = len < sizeof m->data - m->len ? len : sizeof m->data - m->len;
    memcpy(m->data + m->len, buf, *n);
    m->len += *n;
    return EK_OK;
}

static int t_mem_close(void *self)
{
    ((t_mem *)self)->closes++;
    return EK_OK;
}

static void t_mem_drop(void *self)
{
    ((t_mem *)self)->drops++;
}

static void test_user_vtable_optional_ops(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    t_mem m = {0};
    ek_stream_vtable vt = {.read = t_mem_read, .write = t_mem_write, .drop = t_mem_drop};
    ek_stream *s;
    assert_int_equal(ek_stream_new(&vt, &m, &s), EK_OK);
    vt.read = NULL; /* the vtable was copied */
    /* writev without a writev op writes the first non-empty buffer */
    t_sv v = {.s = s};
    assert_int_equal(t_run(rt, t_stream_writev_op, &v), EK_OK);
    assert_int_equal(v.n, 2);
    assert_int_equal(m.writes, 1);
    char buf[8] = {0};
    t_sio r = {.s = s, .buf = buf, .len = sizeof buf};
    assert_int_equal(t_run(rt, t_stream_read_op, &r), EK_OK);
    assert_int_equal(r.n, 2);
    assert_memory_equal(buf, "ab", 2);
    ek_sockaddr *a;
    assert_int_equal(ek_sockaddr_new(&a), EK_OK);
    assert_int_equal(ek_stream_peer_addr(s, a), EK_ENOTSUP);
    assert_int_equal(ek_stream_local_addr(s, a), EK_ENOTSUP);
    assert_int_equal(ek_stream_shutdown(s), EK_ENOTSUP);
    ek_sockaddr_free(a);
    /* close without a close op: later ops see EK_ECLOSED */
    assert_int_equal(ek_stream_close(s), EK_OK);
    assert_int_equal(t_run(rt, t_stream_read_op, &r), EK_ECLOSED);
    ek_stream_free(s);
    assert_int_equal(m.drops, 1);

    /* with a close op: called once however often ek_stream_close is */
    t_mem m2 = {0};
    ek_stream_vtable vt2 = {
        .read = t_mem_read, .write = t_mem_write, .close = t_mem_close, .drop = t_mem_drop};
    assert_int_equal(ek_stream_new(&vt2, &m2, &s), EK_OK);
    assert_int_equal(ek_stream_close(s), EK_OK);
    assert_int_equal(ek_stream_close(s), EK_OK);
    ek_stream_free(s);
    assert_int_equal(m2.closes, 1);
    assert_int_equal(m2.drops, 1);

    /* a vtable missing a required op: EK_EINVAL, self dropped */
    t_mem m3 = {0};
    ek_stream_vtable bad = {.read = t_mem_read, .drop = t_mem_drop};
    assert_int_equal(ek_stream_new(&bad, &m3, &s), EK_EINVAL);
    assert_int_equal(m3.drops, 1);
    assert_int_equal(ek_stream_new(NULL, &m3, &s), EK_EINVAL);
    ekt_alloc_fail_after(0);
    assert_int_equal(ek_stream_new(&vt2, &m3, &s), EK_ENOMEM);
    ekt_alloc_fail_after(-1);
    assert_int_equal(m3.drops, 2);
    /* writev argument checks */
    assert_int_equal(ek_stream_new(&vt2, &m3, &s), EK_OK);
    size_t n;
    ek_cx *fake_cx = (ek_cx *)&n; /* never dereferenced: the checks come first */
    assert_int_equal(ek_stream_writev(s, fake_cx, NULL, NULL, 2, &n), EK_EINVAL);
    const void *bufs[1] = {NULL};
    size_t lens[1] = {1};
    assert_int_equal(ek_stream_writev(s, fake_cx, bufs, lens, 1, &n), EK_EINVAL);
    assert_int_equal(ek_stream_writev(s, fake_cx, bufs, lens, 1025, &n), EK_EINVAL);
    assert_int_equal(ek_stream_read(s, fake_cx, NULL, 1, &n), EK_EINVAL);
    assert_int_equal(ek_stream_write(s, fake_cx, "x", 1, NULL), EK_EINVAL);
    ek_stream_free(s);
    assert_int_equal(m3.drops, 3);
    ekt_rt_free_checked(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)
        T(test_tcp_stream_roundtrip_and_addresses),
        T(test_unix_stream_roundtrip),
        T(test_close_while_reading_wakes_reader),
        T(test_constructors_consume_the_socket_on_error),
        T(test_user_vtable_optional_ops),
#undef T
    };
    if (getenv("EKT_FILTER")) cmocka_set_test_filter(getenv("EKT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
