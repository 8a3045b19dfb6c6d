/*
 * test_pipeline.c - the pipelined RESP path: flat request messages read through
 * the public accessors, shared replies, ready response futures, and the framed
 * server answering a pipeline in order however the bytes are split across reads.
 */
#include "net_helpers.h"
#include "support.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Decode one request of `text` with a RESP server codec. */
static ek_msg *t_decode(ek_codec *c, const char *text, size_t len, ek_buf **keep)
{
    ek_buf *in;
    assert_int_equal(ek_buf_new(0, &in), EK_OK);
    assert_int_equal(ek_buf_append(in, text, len), EK_OK);
    ek_msg *m = NULL;
    const char *reason = NULL;
    assert_int_equal(ek_codec_decode(c, in, &m, &reason), EK_OK);
    *keep = in;
    return m;
}

static void t_arg_is(const ek_msg *m, size_t i, const char *want)
{
    const uint8_t *d = NULL;
    size_t n = 99;
    assert_int_equal(ek_msg_resp_arg(m, i, &d, &n), EK_OK);
    assert_int_equal(n, strlen(want));
    if (n) assert_memory_equal(d, want, n);
}

static void test_flat_request_accessors(void **state)
{
    ek_codec *c;
    assert_int_equal(ek_codec_resp_server(&c), EK_OK);
    ek_buf *in;
    const char *text = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n";
    ek_msg *m = t_decode(c, text, strlen(text), &in);
    assert_int_equal(ek_msg_kind(m), EK_MSG_RESP);
    assert_int_equal(ek_msg_resp_type(m), EK_RESP_ARRAY);
    assert_int_equal(ek_msg_resp_len(m), 3);
    assert_int_equal(ek_msg_resp_is_null(m), 0);
    assert_int_equal(ek_msg_is_shared(m), 0);
    t_arg_is(m, 0, "SET");
    t_arg_is(m, 1, "k");
    t_arg_is(m, 2, "");
    /* the arguments are slices of the read buffer, not copies */
    const uint8_t *d;
    assert_int_equal(ek_msg_resp_arg(m, 1, &d, NULL), EK_OK);
    assert_memory_equal(d - 4, "$1\r\nk", 5);
    assert_int_equal(ek_msg_resp_arg(m, 3, &d, NULL), EK_ERANGE);
    assert_int_equal(ek_msg_resp_arg(NULL, 0, &d, NULL), EK_EINVAL);
    /* element types without child messages: a flat request's are bulk strings */
    assert_int_equal(ek_msg_resp_arg_type(m, 0), EK_RESP_BULK);
    assert_int_equal(ek_msg_resp_arg_type(m, 2), EK_RESP_BULK);
    assert_int_equal(ek_msg_resp_arg_type(m, 3), EK_ERANGE);
    assert_int_equal(ek_msg_resp_arg_type(NULL, 0), EK_EINVAL);
    ek_bytes *b;
    assert_int_equal(ek_msg_resp_arg_bytes(m, 0, &b), EK_OK);
    assert_int_equal(ek_bytes_len(b), 3);
    assert_memory_equal(ek_bytes_data(b), "SET", 3);
    assert_int_equal(ek_msg_resp_arg_bytes(m, 0, NULL), EK_EINVAL);
    assert_int_equal(ek_msg_resp_arg_bytes(m, 7, &b), EK_ERANGE);
    /* a clone is flat too, and outlives the original and the buffer */
    ek_msg *copy;
    assert_int_equal(ek_msg_clone(m, &copy), EK_OK);
    ek_buf_free(in);
    ek_msg_free(m);
    t_arg_is(copy, 0, "SET");
    assert_memory_equal(ek_bytes_data(b), "SET", 3); /* the slice keeps its bytes */
    ek_bytes_release(b);
    /* the child accessors still work (the message becomes an ordinary array) */
    ek_msg *child;
    assert_int_equal(ek_msg_resp_child(copy, 3, &child), EK_ERANGE);
    assert_int_equal(ek_msg_resp_child(copy, 1, &child), EK_OK);
    assert_int_equal(ek_msg_resp_type(child), EK_RESP_BULK);
    const uint8_t *cd;
    size_t cn;
    assert_int_equal(ek_msg_data(child, &cd, &cn), EK_OK);
    assert_int_equal(cn, 1);
    assert_memory_equal(cd, "k", 1);
    t_arg_is(copy, 1, "k"); /* the same bytes either way */
    ek_msg *taken;
    assert_int_equal(ek_msg_resp_take(copy, 0, &taken), EK_OK);
    assert_int_equal(ek_msg_resp_len(copy), 2);
    ek_msg_free(taken);
    ek_msg *x;
    assert_int_equal(ek_msg_resp_integer(7, &x), EK_OK);
    assert_int_equal(ek_msg_resp_append(copy, x), EK_OK);
    assert_int_equal(ek_msg_resp_arg(copy, 2, &d, NULL), EK_EKIND); /* an integer */
    assert_int_equal(ek_msg_resp_arg_type(copy, 2), EK_RESP_INTEGER);
    assert_int_equal(ek_msg_resp_arg_type(copy, 1), EK_RESP_BULK);
    assert_int_equal(ek_msg_resp_arg_type(x, 0), EK_EKIND); /* not an aggregate */
    ek_msg *simple, *nul, *empty;
    assert_int_equal(ek_msg_resp_string(EK_RESP_SIMPLE, "OK", 2, &simple), EK_OK);
    assert_int_equal(ek_msg_resp_append(copy, simple), EK_OK);
    assert_int_equal(ek_msg_resp_arg_type(copy, 3), EK_RESP_SIMPLE);
    assert_int_equal(ek_msg_resp_null(EK_RESP_ARRAY, &nul), EK_OK);
    assert_int_equal(ek_msg_resp_arg_type(nul, 0), EK_EEMPTY);
    ek_msg_free(nul);
    assert_int_equal(ek_msg_resp_aggregate(EK_RESP_ARRAY, 0, &empty), EK_OK);
    assert_int_equal(ek_msg_resp_arg_type(empty, 0), EK_ERANGE);
    ek_msg_free(empty);
    ek_msg_free(copy);

    /* an inline command: arguments decoded (escapes) into the message itself */
    const char *line = "set k \"a\\x41\"\r\n";
    m = t_decode(c, line, strlen(line), &in);
    ek_buf_free(in);
    assert_int_equal(ek_msg_resp_len(m), 3);
    t_arg_is(m, 0, "set");
    t_arg_is(m, 2, "aA");
    assert_int_equal(ek_msg_clone(m, &copy), EK_OK);
    ek_msg_free(m);
    t_arg_is(copy, 2, "aA");
    assert_int_equal(ek_msg_resp_arg_bytes(copy, 2, &b), EK_OK);
    assert_memory_equal(ek_bytes_data(b), "aA", 2);
    ek_bytes_release(b);
    assert_int_equal(ek_msg_resp_child(copy, 2, &child), EK_OK);
    assert_int_equal(ek_msg_data(child, &cd, &cn), EK_OK);
    assert_memory_equal(cd, "aA", 2);
    ek_msg_free(copy);

    /* the arg accessors on arrays built by hand, and on other values */
    ek_msg *arr, *s;
    assert_int_equal(ek_msg_resp_aggregate(EK_RESP_ARRAY, 2, &arr), EK_OK);
    assert_int_equal(ek_msg_resp_string(EK_RESP_BULK, "GET", 3, &s), EK_OK);
    assert_int_equal(ek_msg_resp_append(arr, s), EK_OK);
    assert_int_equal(ek_msg_resp_null(EK_RESP_BULK, &s), EK_OK);
    assert_int_equal(ek_msg_resp_append(arr, s), EK_OK);
    t_arg_is(arr, 0, "GET");
    assert_int_equal(ek_msg_resp_arg(arr, 1, &d, NULL), EK_EEMPTY);
    assert_int_equal(ek_msg_resp_arg_bytes(arr, 0, &b), EK_OK);
    assert_memory_equal(ek_bytes_data(b), "GET", 3);
    ek_bytes_release(b);
    assert_int_equal(ek_msg_resp_arg(s, 0, &d, NULL), EK_EKIND);
    ek_msg_free(arr);
    ek_codec_free(c);
}

static void test_shared_replies(void **state)
{
    ek_codec *c;
    assert_int_equal(ek_codec_resp_server(&c), EK_OK);
    ek_buf *out;
    assert_int_equal(ek_buf_new(0, &out), EK_OK);
    static const char *const wire[] = {"+OK\r\n", "+PONG\r\n", "$-1\r\n",    "*-1\r\n", "$-1\r\n",
                                       ":0\r\n",  ":1\r\n",    "$0\r\n\r\n", "*0\r\n"};
    for (int i = 0; i < 9; i++) {
        ek_msg *m = NULL, *again = NULL;
        assert_int_equal(ek_msg_resp_shared(i, &m), EK_OK);
        assert_int_equal(ek_msg_resp_shared(i, &again), EK_OK);
        assert_ptr_equal(m, again);
        assert_int_equal(ek_msg_is_shared(m), 1);
        assert_int_equal(ek_msg_clone(m, &again), EK_OK);
        assert_ptr_equal(m, again);
        assert_int_equal(ek_codec_encode(c, m, EK_CODEC_RESPONSE, out), EK_OK);
        assert_int_equal(ek_buf_len(out), strlen(wire[i]));
        assert_memory_equal(ek_buf_data(out), wire[i], strlen(wire[i]));
        assert_int_equal(ek_buf_clear(out), EK_OK);
        /* no change is possible; freeing does nothing */
        ek_msg *attr, *x;
        assert_int_equal(ek_msg_resp_aggregate(EK_RESP_ATTRIBUTE, 0, &attr), EK_OK);
        assert_int_equal(ek_msg_resp_set_attribute(m, attr), EK_EPERM);
        assert_int_equal(ek_msg_resp_integer(1, &x), EK_OK);
        int rc = ek_msg_resp_append(m, x);
        assert_true(rc == EK_EPERM || rc == EK_EKIND);
        ek_msg_free(m);
        ek_msg_free(m);
    }
    ek_msg *m;
    assert_int_equal(ek_msg_resp_shared(EK_RESP_SHARED_OK, &m), EK_OK);
    ek_bytes *b;
    assert_int_equal(ek_msg_payload(m, &b), EK_OK);
    ek_bytes *keep;
    assert_int_equal(ek_bytes_clone(b, &keep), EK_OK);
    ek_bytes_release(keep);
    assert_int_equal(ek_bytes_len(b), 2);
    assert_int_equal(ek_msg_resp_shared(9, &m), EK_EINVAL);
    assert_int_equal(ek_msg_resp_shared(-1, &m), EK_EINVAL);
    assert_int_equal(ek_msg_resp_shared(0, NULL), EK_EINVAL);
    assert_int_equal(ek_msg_is_shared(NULL), EK_EINVAL);
    /* RESP3 writes the nulls as _ */
    ek_codec *c3;
    assert_int_equal(ek_codec_resp_client(3, &c3), EK_OK);
    assert_int_equal(ek_msg_resp_shared(EK_RESP_SHARED_NULL_BULK, &m), EK_OK);
    assert_int_equal(ek_codec_encode(c3, m, EK_CODEC_RESPONSE, out), EK_OK);
    assert_memory_equal(ek_buf_data(out), "_\r\n", 3);
    ek_codec_free(c3);
    ek_buf_free(out);
    ek_codec_free(c);
}

static void test_service_ready_future(void **state)
{
    ek_future *f = NULL;
    ek_msg *m;
    assert_int_equal(ek_msg_resp_integer(42, &m), EK_OK);
    assert_int_equal(ek_service_ready(EK_OK, m, &f), EK_OK);
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 1);
    void *out = NULL;
    assert_int_equal(ek_block_on(rt, f, &out), EK_OK);
    int64_t v = 0;
    assert_int_equal(ek_msg_resp_get_integer(out, &v), EK_OK);
    assert_int_equal(v, 42);
    ek_msg_free(out);
    assert_int_equal(ek_service_ready(EK_ETIMEDOUT, NULL, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, &out), EK_ETIMEDOUT);
    /* a dropped ready future frees its message (the leak check says so) */
    assert_int_equal(ek_msg_resp_integer(1, &m), EK_OK);
    assert_int_equal(ek_service_ready(EK_OK, m, &f), EK_OK);
    ek_future_drop(f);
    assert_int_equal(ek_service_ready(EK_OK, NULL, &f), EK_EINVAL);
    assert_int_equal(ek_service_ready(EK_PENDING, NULL, &f), EK_EINVAL);
    assert_int_equal(ek_msg_resp_integer(1, &m), EK_OK);
    assert_int_equal(ek_service_ready(EK_OK, m, NULL), EK_EINVAL); /* m freed */
    ekt_rt_free_checked(rt);
}

/* ---- the server: a pipeline split at every byte, answered in order ---- */

/* A service answering "ECHO x" with x, at once or (for "LATER x") after one
 * yield, so that responses complete out of order; PING with a shared +PONG. */
typedef struct t_later {
    ek_msg *m;
    int polls;
} t_later;

static int t_later_poll(void *state, ek_cx *cx, void **out)
{
    t_later *l = state;
    if (l->polls++ == 0) {
        ek_waker_wake(ek_cx_waker(cx)); /* a new reference, consumed */
        return EK_PENDING;
    }
    *out = l->m;
    l->m = NULL;
    return EK_OK;
}

static void t_later_drop(void *state)
{
    t_later *l = state;
    ek_msg_free(l->m);
    free(l);
}

static int t_ready_ok(void *self, ek_cx *cx)
{
    return EK_OK;
}

static int t_pipe_call(void *self, ek_msg *req, ek_future **resp)
{
    const uint8_t *d;
    size_t n;
    ek_msg *reply = NULL;
    int rc = ek_msg_resp_arg(req, 0, &d, &n);
    bool later = rc == EK_OK && n == 5 && memcmp(d, "LATER", 5) == 0;
    if (rc == EK_OK && n == 4 && memcmp(d, "PING", 4) == 0) {
        rc = ek_msg_resp_shared(EK_RESP_SHARED_PONG, &reply);
    } else {
        ek_bytes *b = NULL;
        if (rc == EK_OK) rc = ek_msg_resp_arg_bytes(req, 1, &b);
        if (rc == EK_OK) rc = ek_msg_resp_string_bytes(EK_RESP_BULK, b, &reply);
    }
    ek_msg_free(req);
    if (rc != EK_OK) return rc;
    if (!later) return ek_service_ready(EK_OK, reply, resp);
    t_later *l = calloc(1, sizeof *l);
    if (l == NULL) {
        ek_msg_free(reply);
        return EK_ENOMEM;
    }
    l->m = reply;
    return ek_future_new(t_later_poll, t_later_drop, l, resp);
}

static int t_pipe_clone(void *self, void **out)
{
    *out = NULL;
    return EK_OK;
}

static const ek_service_vtable t_pipe_vt = {.poll_ready = t_ready_ok, .call = t_pipe_call};

static uint64_t t_metric(ek_server *s, int key)
{
    uint64_t v[EK_SERVER_METRIC_COUNT];
    assert_int_equal(ek_server_metrics(s, v, EK_SERVER_METRIC_COUNT), EK_SERVER_METRIC_COUNT);
    return v[key];
}

static void t_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        assert_true(k > 0);
        p += k;
        n -= (size_t)k;
    }
}

static void test_pipeline_split_at_every_byte_answered_in_order(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_sockaddr *addr;
    ek_tcp_listener *l = t_tcp_listen(rt, "127.0.0.1:0", &addr);
    ek_codec *codec;
    assert_int_equal(ek_codec_resp_server(&codec), EK_OK);
    ek_service *svc;
    assert_int_equal(ek_service_new_shareable(&t_pipe_vt, NULL, t_pipe_clone, &svc), EK_OK);
    ek_server_options *o;
    assert_int_equal(ek_server_options_new(&o), EK_OK);
    assert_int_equal(ek_server_options_set_max_in_flight(o, 3), EK_OK); /* < the pipeline */
    ek_server *s;
    assert_int_equal(ek_server_serve(rt, l, codec, svc, o, &s), EK_OK);
    ek_server_options_free(o);
    /* multibulk and inline requests, some answered later than the ones after them */
    const char *req = "*2\r\n$4\r\nECHO\r\n$1\r\na\r\n"
                      "*2\r\n$5\r\nLATER\r\n$2\r\nbb\r\n"
                      "PING\r\n"
                      "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"
                      "LATER ccc\r\n"
                      "*1\r\n$4\r\nPING\r\n"
                      "ECHO dddd\n";
    const char *want = "$1\r\na\r\n$2\r\nbb\r\n+PONG\r\n$0\r\n\r\n$3\r\nccc\r\n+PONG\r\n"
                       "$4\r\ndddd\r\n";
    size_t len = strlen(req), wlen = strlen(want);
    int fd = t_raw_connect(addr);
    uint64_t in = 0;
    for (size_t cut = 1; cut < len; cut++) {
        /* the first part, read by the server before the rest is sent */
        t_write_all(fd, req, cut);
        for (int i = 0; i < 3000 && t_metric(s, EK_SERVER_METRIC_BYTES_IN) < in + cut; i++)
            usleep(1000);
        assert_int_equal(t_metric(s, EK_SERVER_METRIC_BYTES_IN), in + cut);
        t_write_all(fd, req + cut, len - cut);
        in += len;
        char buf[256];
        size_t got = 0;
        while (got < wlen) {
            ssize_t k = read(fd, buf + got, sizeof buf - got);
            assert_true(k > 0);
            got += (size_t)k;
        }
        assert_int_equal(got, wlen);
        assert_memory_equal(buf, want, wlen);
    }
    close(fd);
    assert_int_equal(t_metric(s, EK_SERVER_METRIC_REQUESTS), 7 * (len - 1));
    assert_int_equal(t_metric(s, EK_SERVER_METRIC_RESPONSES), 7 * (len - 1));
    assert_int_equal(ek_server_shutdown(s, 5000), EK_OK);
    ek_server_free(s);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

/* ---- a response that yields ---- */

/* A task that is always runnable: it counts its polls and yields. */
static atomic_long t_ticks;
static atomic_bool t_spin_stop;

static int t_spin_poll(void *state, ek_cx *cx, void **out)
{
    (void)state;
    *out = NULL;
    if (atomic_load(&t_spin_stop)) return EK_OK;
    atomic_fetch_add(&t_ticks, 1);
    return ek_yield_now(cx);
}

/* A response whose first poll yields (as a Python service's does, so that one
 * flush takes every request queued meanwhile): its second poll must come after
 * the other runnable tasks had their turn, not in the same poll of the
 * connection (whose rounds would poll it again at once). */
static atomic_int t_early_polls;

typedef struct t_yielder {
    bool yielded;
    long epoch;
    ek_msg *reply;
} t_yielder;

static int t_yielder_poll(void *state, ek_cx *cx, void **out)
{
    t_yielder *y = state;
    if (!y->yielded) {
        y->yielded = true;
        y->epoch = atomic_load(&t_ticks);
        return ek_yield_now(cx);
    }
    if (atomic_load(&t_ticks) == y->epoch) atomic_fetch_add(&t_early_polls, 1);
    *out = y->reply;
    y->reply = NULL;
    return EK_OK;
}

static void t_yielder_drop(void *state)
{
    t_yielder *y = state;
    ek_msg_free(y->reply);
    free(y);
}

static int t_yield_call(void *self, ek_msg *req, ek_future **resp)
{
    (void)self;
    ek_msg_free(req);
    t_yielder *y = calloc(1, sizeof *y);
    if (y == NULL) return EK_ENOMEM;
    int rc = ek_msg_resp_shared(EK_RESP_SHARED_PONG, &y->reply);
    if (rc != EK_OK) {
        free(y);
        return rc;
    }
    return ek_future_new(t_yielder_poll, t_yielder_drop, y, resp);
}

static const ek_service_vtable t_yield_vt = {.poll_ready = t_ready_ok, .call = t_yield_call};

static void test_a_yielding_response_is_polled_after_the_other_tasks(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 1); /* one worker: one run queue */
    atomic_store(&t_ticks, 0);
    atomic_store(&t_spin_stop, false);
    atomic_store(&t_early_polls, 0);
    ek_join *spinner;
    assert_int_equal(ek_spawn(rt, t_spin_poll, ekt_noop_drop, NULL, NULL, &spinner), EK_OK);
    ek_sockaddr *addr;
    ek_tcp_listener *l = t_tcp_listen(rt, "127.0.0.1:0", &addr);
    ek_codec *codec;
    assert_int_equal(ek_codec_resp_server(&codec), EK_OK);
    ek_service *svc;
    assert_int_equal(ek_service_new_shareable(&t_yield_vt, NULL, t_pipe_clone, &svc), EK_OK);
    ek_server *s;
    assert_int_equal(ek_server_serve(rt, l, codec, svc, NULL, &s), EK_OK);
    int fd = t_raw_connect(addr);
    const char *want = "+PONG\r\n+PONG\r\n+PONG\r\n";
    for (int round = 0; round < 20; round++) {
        /* one request, then a pipeline of two */
        t_write_all(fd, round % 2 ? "PING\r\nPING\r\nPING\r\n" : "PING\r\n", round % 2 ? 18 : 6);
        size_t wlen = round % 2 ? 21 : 7, got = 0;
        char buf[64];
        while (got < wlen) {
            ssize_t k = read(fd, buf + got, sizeof buf - got);
            assert_true(k > 0);
            got += (size_t)k;
        }
        assert_int_equal(got, wlen);
        assert_memory_equal(buf, want, wlen);
    }
    close(fd);
    assert_int_equal(atomic_load(&t_early_polls), 0);
    assert_int_equal(t_metric(s, EK_SERVER_METRIC_RESPONSES), 40);
    atomic_store(&t_spin_stop, true);
    assert_int_equal(ek_join_wait(spinner, NULL), EK_OK);
    ek_join_detach(spinner);
    assert_int_equal(ek_server_shutdown(s, 5000), EK_OK);
    ek_server_free(s);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

/* ---- the buffer: a batch per wake-up ---- */

/* A task that calls the buffer `n` times back to back (as a connection calls for
 * a pipeline), then awaits every response in order. */
typedef struct t_batch {
    ek_service *svc;
    int n, called, done;
    ek_future *resp[32];
    bool later; /* the requests are LATER ones: their responses wait a poll */
} t_batch;

static int t_batch_poll(void *state, ek_cx *cx, void **out)
{
    t_batch *b = state;
    while (b->called < b->n) {
        int rc = ek_service_poll_ready(b->svc, cx);
        if (rc != EK_OK) return rc == EK_PENDING ? EK_PENDING : rc;
        ek_msg *req, *x;
        assert_int_equal(ek_msg_resp_aggregate(EK_RESP_ARRAY, 2, &req), EK_OK);
        assert_int_equal(
            ek_msg_resp_string(EK_RESP_BULK, b->later ? "LATER" : "ECHO", b->later ? 5 : 4, &x),
            EK_OK);
        assert_int_equal(ek_msg_resp_append(req, x), EK_OK);
        char v[8];
        int k = snprintf(v, sizeof v, "%d", b->called);
        assert_int_equal(ek_msg_resp_string(EK_RESP_BULK, v, (size_t)k, &x), EK_OK);
        assert_int_equal(ek_msg_resp_append(req, x), EK_OK);
        assert_int_equal(ek_service_call(b->svc, req, &b->resp[b->called]), EK_OK);
        b->called++;
    }
    for (; b->done < b->n; b->done++) {
        void *m = NULL;
        int rc = ek_future_poll(b->resp[b->done], cx, &m);
        if (rc == EK_PENDING) return rc;
        assert_int_equal(rc, EK_OK);
        const uint8_t *d;
        size_t len;
        assert_int_equal(ek_msg_data(m, &d, &len), EK_OK);
        char v[8];
        int k = snprintf(v, sizeof v, "%d", b->done);
        assert_int_equal(len, (size_t)k);
        assert_memory_equal(d, v, len);
        ek_msg_free(m);
        ek_future_drop(b->resp[b->done]);
    }
    *out = NULL;
    return EK_OK;
}

static void t_batch_run(bool local, bool later, uint64_t *stats)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 1);
    ek_service *inner, *buf;
    assert_int_equal(ek_service_new(&t_pipe_vt, NULL, &inner), EK_OK);
    int rc = local ? ek_svc_buffer_local(rt, inner, 16, &buf) : ek_svc_buffer(rt, inner, 16, &buf);
    assert_int_equal(rc, EK_OK);
    t_batch b = {.svc = buf, .n = 16, .later = later};
    assert_int_equal(ekt_block_on_fn(rt, t_batch_poll, &b, NULL), EK_OK);
    assert_int_equal(b.done, 16);
    assert_int_equal(ek_svc_buffer_stats(buf, stats, EK_SVC_BUFFER_STAT_COUNT),
                     EK_SVC_BUFFER_STAT_COUNT);
    ek_service_free(buf);
    ekt_rt_free_checked(rt);
}

/* An inner that runs what it was called with as one batch, as a Python service
 * does: a response is ready once a flush took its request; polling any but the
 * last one called flushes every call so far, and the last one's first poll
 * yields instead (more calls may come). Counts its flushes. */
typedef struct t_batcher {
    int called, flushed, flushes;
} t_batcher;

typedef struct t_batched {
    t_batcher *b;
    int idx;
    bool yielded;
    ek_msg *reply;
} t_batched;

static int t_batched_poll(void *state, ek_cx *cx, void **out)
{
    t_batched *r = state;
    t_batcher *b = r->b;
    if (r->idx >= b->flushed) {
        if (r->idx == b->called - 1 && !r->yielded) {
            r->yielded = true;
            return ek_yield_now(cx);
        }
        b->flushed = b->called;
        b->flushes++;
    }
    *out = r->reply;
    r->reply = NULL;
    return EK_OK;
}

static void t_batched_drop(void *state)
{
    t_batched *r = state;
    ek_msg_free(r->reply);
    free(r);
}

static int t_batcher_call(void *self, ek_msg *req, ek_future **resp)
{
    t_batcher *b = self;
    ek_bytes *x = NULL;
    ek_msg *reply = NULL;
    int rc = ek_msg_resp_arg_bytes(req, 1, &x);
    if (rc == EK_OK) rc = ek_msg_resp_string_bytes(EK_RESP_BULK, x, &reply);
    ek_msg_free(req);
    if (rc != EK_OK) return rc;
    t_batched *r = calloc(1, sizeof *r);
    if (r == NULL) {
        ek_msg_free(reply);
        return EK_ENOMEM;
    }
    *r = (t_batched){.b = b, .idx = b->called++, .reply = reply};
    return ek_future_new(t_batched_poll, t_batched_drop, r, resp);
}

static const ek_service_vtable t_batcher_vt = {.poll_ready = t_ready_ok, .call = t_batcher_call};

static void test_a_local_buffer_calls_a_wakeup_before_polling(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 1);
    t_batcher batcher = {0};
    ek_service *inner, *buf;
    assert_int_equal(ek_service_new(&t_batcher_vt, &batcher, &inner), EK_OK);
    assert_int_equal(ek_svc_buffer_local(rt, inner, 16, &buf), EK_OK);
    t_batch b = {.svc = buf, .n = 16};
    assert_int_equal(ekt_block_on_fn(rt, t_batch_poll, &b, NULL), EK_OK);
    assert_int_equal(b.done, 16); /* every answer in order */
    uint64_t st[EK_SVC_BUFFER_STAT_COUNT];
    assert_int_equal(ek_svc_buffer_stats(buf, st, EK_SVC_BUFFER_STAT_COUNT),
                     EK_SVC_BUFFER_STAT_COUNT);
    /* One wake-up: 16 calls, then the first poll flushes them all; no
     * response needed a driver task (polled as each call returned, each
     * would have been the last one called and yielded). */
    assert_int_equal(st[EK_SVC_BUFFER_WAKEUPS], 1);
    assert_int_equal(st[EK_SVC_BUFFER_REQUESTS], 16);
    assert_int_equal(st[EK_SVC_BUFFER_DRIVEN], 0);
    assert_int_equal(batcher.flushes, 1);
    ek_service_free(buf);
    ekt_rt_free_checked(rt);
}

static void test_buffer_takes_a_pipeline_in_one_wakeup(void **state)
{
    uint64_t st[EK_SVC_BUFFER_STAT_COUNT];
    /* 16 requests queued before the worker runs: one wake-up takes them all */
    t_batch_run(false, false, st);
    assert_int_equal(st[EK_SVC_BUFFER_WAKEUPS], 1);
    assert_int_equal(st[EK_SVC_BUFFER_REQUESTS], 16);
    assert_int_equal(st[EK_SVC_BUFFER_DRIVEN], 0);
    /* the local variant: responses ready at once need no driver task */
    t_batch_run(true, false, st);
    assert_int_equal(st[EK_SVC_BUFFER_WAKEUPS], 1);
    assert_int_equal(st[EK_SVC_BUFFER_REQUESTS], 16);
    assert_int_equal(st[EK_SVC_BUFFER_DRIVEN], 0);
    /* ... and the ones that wait get one each, still answered in order */
    t_batch_run(true, true, st);
    assert_int_equal(st[EK_SVC_BUFFER_WAKEUPS], 1);
    assert_int_equal(st[EK_SVC_BUFFER_REQUESTS], 16);
    assert_int_equal(st[EK_SVC_BUFFER_DRIVEN], 16);
    /* not a buffer */
    ek_service *plain;
    assert_int_equal(ek_service_new(&t_pipe_vt, NULL, &plain), EK_OK);
    assert_int_equal(ek_svc_buffer_stats(plain, st, 1), EK_EINVAL);
    assert_int_equal(ek_svc_buffer_stats(NULL, st, 1), EK_EINVAL);
    ek_service_free(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)
        T(test_flat_request_accessors),
        T(test_shared_replies),
        T(test_service_ready_future),
        T(test_pipeline_split_at_every_byte_answered_in_order),
        T(test_buffer_takes_a_pipeline_in_one_wakeup),
        T(test_a_local_buffer_calls_a_wakeup_before_polling),
        T(test_a_yielding_response_is_polled_after_the_other_tasks),
#undef T
    };
    if (getenv("EKT_FILTER")) cmocka_set_test_filter(getenv("EKT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
