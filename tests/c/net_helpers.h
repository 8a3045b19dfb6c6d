/*
 * net_helpers.h - shared by the networking tests (test_tcp, test_udp, test_unix,
 * test_resolve): run one socket op to completion from the test thread, loopback
 * listeners and peers, descriptor counting. Header-only (static functions) so
 * that the build's one-source-per-test rule holds.
 */
#ifndef EK_TEST_NET_HELPERS_H
#define EK_TEST_NET_HELPERS_H

#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Open descriptors of this process. */
static inline int t_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* Wait (up to ms) until *v == want; returns the last value seen. */
static inline long t_wait_for(atomic_long *v, long want, unsigned ms)
{
    uint64_t end = ekt_now_ms() + ms;
    long cur;
    while ((cur = atomic_load(v)) != want && ekt_now_ms() < end) usleep(1000);
    return cur;
}

/* Wait until *v >= want (or ms pass); returns the last value seen. For poll
 * counters: a spurious wake-up is allowed (DESIGN.md §2), so "the task is parked"
 * means polled at least once, not exactly once. */
static inline long t_wait_at_least(atomic_long *v, long want, unsigned ms)
{
    uint64_t end = ekt_now_ms() + ms;
    long cur;
    while ((cur = atomic_load(v)) < want && ekt_now_ms() < end) usleep(1000);
    return cur;
}

/* ---- run a poll function on the runtime from the test thread ---- */

typedef int (*t_op_fn)(void *arg, ek_cx *cx);
typedef struct t_op {
    t_op_fn fn;
    void *arg;
} t_op;

static inline int t_op_poll(void *state, ek_cx *cx, void **out)
{
    t_op *op = state;
    *out = NULL;
    return op->fn(op->arg, cx);
}

static inline int t_run(ek_runtime *rt, t_op_fn fn, void *arg)
{
    t_op op = {fn, arg};
    return ekt_block_on_fn(rt, t_op_poll, &op, NULL);
}

/* Block on a heap future; returns its status, *out its result. */
static inline int t_await(ek_runtime *rt, ek_future *f, void **out)
{
    return ek_block_on(rt, f, out);
}

/* Arguments of the stream ops below. */
typedef struct t_io {
    void *h; /* ek_tcp_stream or ek_unix_stream */
    void *buf;
    size_t len, n;
    ek_sockaddr *addr;
} t_io;

static inline int t_tcp_read_op(void *arg, ek_cx *cx)
{
    t_io *io = arg;
    return ek_tcp_read(io->h, cx, io->buf, io->len, &io->n);
}

/* Read exactly len bytes (io->n counts them); EK_OK at len or at end of stream. */
static inline int t_tcp_read_exact_op(void *arg, ek_cx *cx)
{
    t_io *io = arg;
    while (io->n < io->len) {
        size_t n;
        int rc = ek_tcp_read(io->h, cx, (char *)io->buf + io->n, io->len - io->n, &n);
        if (rc != EK_OK) return rc;
        if (n == 0) return EK_OK;
        io->n += n;
    }
    return EK_OK;
}

static inline int t_tcp_write_op(void *arg, ek_cx *cx)
{
    t_io *io = arg;
    return ek_tcp_write(io->h, cx, io->buf, io->len, &io->n);
}

static inline int t_tcp_read(ek_runtime *rt, ek_tcp_stream *s, void *buf, size_t len, size_t *n)
{
    t_io io = {.h = s, .buf = buf, .len = len};
    int rc = t_run(rt, t_tcp_read_op, &io);
    *n = io.n;
    return rc;
}

static inline size_t t_tcp_read_exact(ek_runtime *rt, ek_tcp_stream *s, void *buf, size_t len)
{
    t_io io = {.h = s, .buf = buf, .len = len};
    assert_int_equal(t_run(rt, t_tcp_read_exact_op, &io), EK_OK);
    return io.n;
}

static inline void t_tcp_write_all(ek_runtime *rt, ek_tcp_stream *s, const void *buf, size_t len)
{
    ek_future *f;
    size_t done = 0;
    assert_int_equal(ek_tcp_write_all(s, buf, len, &done, &f), EK_OK);
    assert_int_equal(t_await(rt, f, NULL), EK_OK);
    assert_int_equal(done, len);
}

/* One poll of a stream read of 0 bytes (TCP, or Unix when is_unix): its
 * status, whatever it is (a read that pends must not hang the test). */
typedef struct t_read_zero {
    void *s;
    int is_unix;
    int rc;
    size_t n;
} t_read_zero;

static inline int t_read_zero_once(void *arg, ek_cx *cx)
{
    t_read_zero *z = arg;
    char b;
    z->n = 99;
    z->rc = z->is_unix ? ek_unix_read(z->s, cx, &b, 0, &z->n) : ek_tcp_read(z->s, cx, &b, 0, &z->n);
    return EK_OK;
}

/* ---- TCP loopback ---- */

static inline ek_tcp_listener *t_tcp_listen(ek_runtime *rt, const char *text, ek_sockaddr **addr)
{
    ek_tcp_listener *l = NULL;
    assert_int_equal(ek_tcp_listen(rt, text, &l), EK_OK);
    assert_int_equal(ek_sockaddr_new(addr), EK_OK);
    assert_int_equal(ek_tcp_listener_local_addr(l, *addr), EK_OK);
    assert_true(ek_sockaddr_port(*addr) > 0);
    return l;
}

static inline ek_tcp_stream *t_tcp_connect(ek_runtime *rt, const ek_sockaddr *addr)
{
    ek_future *f;
    void *s = NULL;
    assert_int_equal(ek_tcp_connect(rt, addr, &f), EK_OK);
    assert_int_equal(t_await(rt, f, &s), EK_OK);
    assert_non_null(s);
    return s;
}

typedef struct t_accept {
    ek_tcp_listener *l;
    ek_tcp_stream *s;
    ek_sockaddr *peer;
} t_accept;

static inline int t_tcp_accept_op(void *arg, ek_cx *cx)
{
    t_accept *a = arg;
    return ek_tcp_accept(a->l, cx, &a->s, a->peer);
}

static inline ek_tcp_stream *t_tcp_accept(ek_runtime *rt, ek_tcp_listener *l)
{
    t_accept a = {.l = l};
    assert_int_equal(t_run(rt, t_tcp_accept_op, &a), EK_OK);
    return a.s;
}

/* A connected pair over a fresh listener (freed before returning). */
static inline void t_tcp_pair(ek_runtime *rt, ek_tcp_stream **client, ek_tcp_stream **server)
{
    ek_sockaddr *addr;
    ek_tcp_listener *l = t_tcp_listen(rt, "127.0.0.1:0", &addr);
    *client = t_tcp_connect(rt, addr);
    *server = t_tcp_accept(rt, l);
    ek_tcp_listener_free(l);
    ek_sockaddr_free(addr);
}

/* A plain blocking socket connected to addr (the "real peer" in some tests). */
static inline int t_raw_connect(const ek_sockaddr *addr)
{
    char sa[128];
    size_t len = sizeof sa;
    assert_int_equal(ek_sockaddr_to_native(addr, sa, &len), EK_OK);
    int fd = socket(((struct sockaddr *)sa)->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)sa, (socklen_t)len), 0);
    return fd;
}

/* ---- a spawned task that waits on one op, for close/abort tests ---- */

typedef struct t_waiter {
    t_op_fn fn;
    void *arg;
    atomic_long polls;
    void (*drop)(void *arg); /* releases what the task owns; may be NULL */
} t_waiter;

static inline int t_waiter_poll(void *state, ek_cx *cx, void **out)
{
    t_waiter *w = state;
    atomic_fetch_add(&w->polls, 1);
    *out = NULL;
    return w->fn(w->arg, cx);
}

static inline void t_waiter_drop(void *state)
{
    t_waiter *w = state;
    if (w->drop) w->drop(w->arg);
}

#endif
