/*
 * test_codec.c - the built-in codecs (lines, length-delimited, RESP) on buffers,
 * and the framed server over TCP: pipelining, corrupt input closing only its
 * connection (with the reason logged), metrics, graceful shutdown, and a 1 MiB
 * frame reaching the service without a copy; a local server (its tasks and
 * service calls on the serving thread).
 */
#include "net_helpers.h"

#include <pthread.h>
#include <stdlib.h>

static ek_buf *t_buf(const char *s, size_t n)
{
    ek_buf *b;
    assert_int_equal(ek_buf_new(0, &b), EK_OK);
    assert_int_equal(ek_buf_append(b, s, n), EK_OK);
    return b;
}

static void t_expect_bytes_n(ek_msg *m, const char *want, size_t len)
{
    const uint8_t *d;
    size_t n;
    assert_int_equal(ek_msg_kind(m), EK_MSG_BYTES);
    assert_int_equal(ek_msg_data(m, &d, &n), EK_OK);
    assert_int_equal(n, len);
    assert_memory_equal(d, want, n);
}

static void t_expect_bytes(ek_msg *m, const char *want)
{
    t_expect_bytes_n(m, want, strlen(want));
}

static void test_lines_codec(void **state)
{
    ek_codec *c;
    assert_int_equal(ek_codec_lines(8, &c), EK_OK);
    ek_buf *b = t_buf("one\r\ntwo\nthr", 12);
    ek_msg *m = NULL;
    const char *why = NULL;
    assert_int_equal(ek_codec_decode(c, b, &m, &why), EK_OK);
    t_expect_bytes(m, "one");
    ek_msg_free(m);
    assert_int_equal(ek_codec_decode(c, b, &m, &why), EK_OK);
    t_expect_bytes(m, "two");
    ek_msg_free(m);
    assert_int_equal(ek_codec_decode(c, b, &m, &why), EK_PENDING);
    assert_int_equal(ek_codec_decode_eof(c, b, &m, &why), EK_OK); /* the last line */
    t_expect_bytes(m, "thr");
    ek_msg_free(m);
    assert_int_equal(ek_codec_decode_eof(c, b, &m, &why), EK_ECLOSED);
    /* over the maximum: a clear error */
    assert_int_equal(ek_buf_append(b, "123456789", 9), EK_OK);
    assert_int_equal(ek_codec_decode(c, b, &m, &why), EK_EMSGSIZE);
    assert_string_equal(why, "line longer than the maximum");
    /* a line of exactly the maximum is fine */
    ek_codec *c2;
    assert_int_equal(ek_codec_clone(c, &c2), EK_OK);
    ek_buf *b2 = t_buf("12345678\n", 9);
    assert_int_equal(ek_codec_decode(c2, b2, &m, &why), EK_OK);
    t_expect_bytes(m, "12345678");
    /* encode */
    ek_buf *out;
    assert_int_equal(ek_buf_new(0, &out), EK_OK);
    assert_int_equal(ek_codec_encode(c, m, EK_CODEC_RESPONSE, out), EK_OK);
    assert_int_equal(ek_buf_len(out), 9);
    assert_memory_equal(ek_buf_data(out), "12345678\n", 9);
    ek_msg_free(m);
    assert_int_equal(ek_msg_bytes_copy("a\nb", 3, &m), EK_OK);
    assert_int_equal(ek_codec_encode(c, m, EK_CODEC_RESPONSE, out), EK_EINVAL);
    ek_msg_free(m);
    assert_int_equal(ek_msg_resp_integer(1, &m), EK_OK);
    assert_int_equal(ek_codec_encode(c, m, EK_CODEC_RESPONSE, out), EK_EKIND);
    ek_msg_free(m);
    /* bad handles */
    assert_int_equal(ek_codec_decode(NULL, b, &m, &why), EK_EINVAL);
    assert_int_equal(ek_codec_decode(c, NULL, &m, &why), EK_EINVAL);
    assert_int_equal(ek_codec_lines(0, NULL), EK_EINVAL);
    ek_buf_free(out);
    ek_buf_free(b);
    ek_buf_free(b2);
    ek_codec_free(c);
    ek_codec_free(c2);
    ek_codec_free(NULL);
}

static void test_length_delimited_codec(void **state)
{
    ek_codec *c;
    assert_int_equal(ek_codec_length_delimited(0, EK_LENGTH_DEFAULT_FIELD_LEN, 0,
                                               EK_LENGTH_SKIP_DEFAULT, 0, 0, &c),
                     EK_OK);
    ek_buf *b = t_buf("\0\0\0\3abc\0\0\0\5he", 13);
    ek_msg *m = NULL;
    const char *why;
    assert_int_equal(ek_codec_decode(c, b, &m, &why), EK_OK);
    t_expect_bytes(m, "abc");
    ek_msg_free(m);
    assert_int_equal(ek_codec_decode(c, b, &m, &why), EK_PENDING);
    assert_int_equal(ek_codec_decode_eof(c, b, &m, &why), EK_EPROTO);
    assert_string_equal(why, "bytes remaining on stream");
    assert_int_equal(ek_buf_append(b, "llo", 3), EK_OK);
    assert_int_equal(ek_codec_decode(c, b, &m, &why), EK_OK);
    t_expect_bytes(m, "hello");
    /* encode: the 4-byte big-endian header */
    ek_buf *out;
    assert_int_equal(ek_buf_new(0, &out), EK_OK);
    assert_int_equal(ek_codec_encode(c, m, EK_CODEC_REQUEST, out), EK_OK);
    assert_int_equal(ek_buf_len(out), 9);
    assert_memory_equal(ek_buf_data(out), "\0\0\0\5hello", 9);
    ek_msg_free(m);
    /* over 8 MiB: EK_EMSGSIZE, without waiting for the bytes */
    ek_buf_clear(b);
    assert_int_equal(ek_buf_append(b, "\0\x80\0\1", 4), EK_OK);
    assert_int_equal(ek_codec_decode(c, b, &m, &why), EK_EMSGSIZE);
    assert_string_equal(why, "frame size too big");
    ek_codec_free(c);

    /* tokio-util's example: 2-byte little-endian length after a 1-byte tag,
     * adjustment -3 (the length counts the header), keep the whole header */
    assert_int_equal(ek_codec_length_delimited(1, 2, -3, 0, 1, 0, &c), EK_OK);
    ek_buf_clear(b);
    assert_int_equal(ek_buf_append(b, "T\x05\0xy", 5), EK_OK);
    assert_int_equal(ek_codec_decode(c, b, &m, &why), EK_OK);
    t_expect_bytes_n(m, "T\x05\0xy", 5);
    ek_msg_free(m);
    /* a length smaller than the adjustment: corrupt */
    assert_int_equal(ek_buf_append(b, "T\x01\0", 3), EK_OK);
    assert_int_equal(ek_codec_decode(c, b, &m, &why), EK_EMSGSIZE);
    ek_codec_free(c);
    assert_int_equal(ek_codec_length_delimited(0, 5, 0, EK_LENGTH_SKIP_DEFAULT, 0, 0, &c),
                     EK_EINVAL);
    /* a 1-byte field cannot hold 256 */
    assert_int_equal(ek_codec_length_delimited(0, 1, 0, EK_LENGTH_SKIP_DEFAULT, 0, 0, &c), EK_OK);
    static char big[256];
    assert_int_equal(ek_msg_bytes_copy(big, sizeof big, &m), EK_OK);
    ek_buf_clear(out);
    assert_int_equal(ek_codec_encode(c, m, EK_CODEC_REQUEST, out), EK_EMSGSIZE);
    ek_msg_free(m);
    ek_codec_free(c);
    ek_buf_free(out);
    ek_buf_free(b);
}

static void t_encode_expect(ek_codec *c, ek_msg *m, int what, const char *want)
{
    ek_buf *out;
    assert_int_equal(ek_buf_new(0, &out), EK_OK);
    assert_int_equal(ek_codec_encode(c, m, what, out), EK_OK);
    assert_int_equal(ek_buf_len(out), strlen(want));
    assert_memory_equal(ek_buf_data(out), want, strlen(want));
    ek_buf_free(out);
    ek_msg_free(m);
}

static ek_msg *t_map_reply(void)
{
    ek_msg *m, *k, *v, *n;
    assert_int_equal(ek_msg_resp_aggregate(EK_RESP_MAP, 2, &m), EK_OK);
    assert_int_equal(ek_msg_resp_string(EK_RESP_BULK, "a", 1, &k), EK_OK);
    assert_int_equal(ek_msg_resp_double(1.5, &v), EK_OK);
    assert_int_equal(ek_msg_resp_append(m, k), EK_OK);
    assert_int_equal(ek_msg_resp_append(m, v), EK_OK);
    assert_int_equal(ek_msg_resp_null(EK_RESP_BULK, &n), EK_OK);
    assert_int_equal(ek_msg_resp_string(EK_RESP_BULK, "b", 1, &k), EK_OK);
    assert_int_equal(ek_msg_resp_append(m, k), EK_OK);
    assert_int_equal(ek_msg_resp_append(m, n), EK_OK);
    return m;
}

static void test_resp_codec_hello_switches_protocol(void **state)
{
    ek_codec *c;
    assert_int_equal(ek_codec_resp_server(&c), EK_OK);
    assert_int_equal(ek_codec_resp_protocol(c), 2);
    /* pipelined: GET, HELLO 3, GET: the HELLO's response switches */
    const char *in = "GET a\r\n*2\r\n$5\r\nhello\r\n$1\r\n3\r\nGET b\r\n";
    ek_buf *b = t_buf(in, strlen(in));
    ek_msg *r1, *r2, *r3, *m;
    const char *why;
    assert_int_equal(ek_codec_decode(c, b, &r1, &why), EK_OK);
    assert_int_equal(ek_codec_decode(c, b, &r2, &why), EK_OK);
    assert_int_equal(ek_codec_decode(c, b, &r3, &why), EK_OK);
    assert_int_equal(ek_msg_resp_len(r2), 2);
    ek_msg_free(r1);
    ek_msg_free(r2);
    ek_msg_free(r3);
    assert_int_equal(ek_msg_resp_null(EK_RESP_BULK, &m), EK_OK);
    t_encode_expect(c, m, EK_CODEC_RESPONSE, "$-1\r\n");
    t_encode_expect(c, t_map_reply(), EK_CODEC_RESPONSE,
                    "%2\r\n$1\r\na\r\n,1.5\r\n$1\r\nb\r\n_\r\n");
    assert_int_equal(ek_codec_resp_protocol(c), 3);
    assert_int_equal(ek_msg_resp_null(EK_RESP_BULK, &m), EK_OK);
    t_encode_expect(c, m, EK_CODEC_RESPONSE, "_\r\n");
    /* RESP2 writes the same map as redis does */
    ek_codec *c2;
    assert_int_equal(ek_codec_clone(c, &c2), EK_OK);
    assert_int_equal(ek_codec_resp_protocol(c2), 2); /* a fresh connection */
    t_encode_expect(c2, t_map_reply(), EK_CODEC_RESPONSE,
                    "*4\r\n$1\r\na\r\n$3\r\n1.5\r\n$1\r\nb\r\n$-1\r\n");
    /* a HELLO answered with an error does not switch */
    ek_buf_clear(b);
    assert_int_equal(ek_buf_append(b, "HELLO 3\r\n", 9), EK_OK);
    assert_int_equal(ek_codec_decode(c2, b, &r1, &why), EK_OK);
    ek_msg_free(r1);
    assert_int_equal(ek_msg_resp_string(EK_RESP_ERROR, "ERR no", 6, &m), EK_OK);
    t_encode_expect(c2, m, EK_CODEC_RESPONSE, "-ERR no\r\n");
    assert_int_equal(ek_codec_resp_protocol(c2), 2);
    /* a simple string with CR cannot be written */
    ek_buf *out;
    assert_int_equal(ek_buf_new(0, &out), EK_OK);
    assert_int_equal(ek_msg_resp_string(EK_RESP_SIMPLE, "a\rb", 3, &m), EK_OK);
    assert_int_equal(ek_codec_encode(c2, m, EK_CODEC_RESPONSE, out), EK_EINVAL);
    ek_msg_free(m);
    /* corrupt input: redis's text, and its reply */
    ek_buf_clear(b);
    assert_int_equal(ek_buf_append(b, "*1\r\n:1\r\n", 8), EK_OK);
    assert_int_equal(ek_codec_decode(c2, b, &r1, &why), EK_EPROTO);
    assert_string_equal(why, "Protocol error: expected '$', got ':'");
    ek_buf_clear(out);
    assert_int_equal(ek_codec_encode_error(c2, EK_EPROTO, why, out), EK_OK);
    const char *reply = "-ERR Protocol error: expected '$', got ':'\r\n";
    assert_int_equal(ek_buf_len(out), strlen(reply));
    assert_memory_equal(ek_buf_data(out), reply, strlen(reply));
    ek_buf_free(out);
    ek_buf_free(b);
    ek_codec_free(c);
    ek_codec_free(c2);
}

static void test_resp_client_decodes_every_type(void **state)
{
    ek_codec *c;
    assert_int_equal(ek_codec_resp_client(4, &c), EK_EINVAL);
    assert_int_equal(ek_codec_resp_client(3, &c), EK_OK);
    const char *in = "*9\r\n+ok\r\n-ERR x\r\n:-7\r\n$3\r\nbin\r\n$-1\r\n_\r\n#f\r\n,-inf\r\n"
                     "|1\r\n+k\r\n+v\r\n=7\r\ntxt:abc\r\n>2\r\n~1\r\n(12\r\n%0\r\n";
    ek_buf *b = t_buf(in, strlen(in));
    ek_msg *m, *ch, *attr;
    const char *why;
    assert_int_equal(ek_codec_decode(c, b, &m, &why), EK_OK);
    assert_int_equal(ek_msg_resp_type(m), EK_RESP_ARRAY);
    assert_int_equal(ek_msg_resp_len(m), 9);
    int types[] = {'+', '-', ':', '$', '$', '_', '#', ',', '='};
    for (size_t i = 0; i < 9; i++) {
        assert_int_equal(ek_msg_resp_child(m, i, &ch), EK_OK);
        assert_int_equal(ek_msg_resp_type(ch), types[i]);
    }
    assert_int_equal(ek_msg_resp_child(m, 4, &ch), EK_OK);
    assert_int_equal(ek_msg_resp_is_null(ch), 1);
    assert_int_equal(ek_msg_resp_child(m, 8, &ch), EK_OK);
    assert_int_equal(ek_msg_resp_attribute(ch, &attr), EK_OK);
    assert_non_null(attr);
    char fmt[4];
    assert_int_equal(ek_msg_resp_verbatim_format(ch, fmt), EK_OK);
    assert_string_equal(fmt, "txt");
    ek_msg_free(m);
    assert_int_equal(ek_codec_decode(c, b, &m, &why), EK_OK);
    assert_int_equal(ek_msg_resp_type(m), EK_RESP_PUSH);
    ek_msg_free(m);
    assert_int_equal(ek_buf_len(b), 0);
    /* requests are written as multibulks of bulks */
    assert_int_equal(ek_msg_resp_aggregate(EK_RESP_ARRAY, 2, &m), EK_OK);
    assert_int_equal(ek_msg_resp_string(EK_RESP_BULK, "GET", 3, &ch), EK_OK);
    assert_int_equal(ek_msg_resp_append(m, ch), EK_OK);
    assert_int_equal(ek_msg_resp_integer(42, &ch), EK_OK);
    assert_int_equal(ek_msg_resp_append(m, ch), EK_OK);
    t_encode_expect(c, m, EK_CODEC_REQUEST, "*2\r\n$3\r\nGET\r\n$2\r\n42\r\n");
    ek_buf_free(b);
    ek_codec_free(c);
}

/* ---- the server ---- */

/* An echo service: the response is the request. Shareable (no state). */
typedef struct t_ready {
    ek_msg *m;
} t_ready;

static atomic_long t_calls, t_big_allocs, t_big_at_call;
/* What the service should see (1 MiB test). Atomics: the test thread and the
 * workers meet only through a socket, which TSan does not see as a sync. */
static _Atomic(const char *) t_expect;
static atomic_size_t t_seen_len;
static atomic_int t_seen_ok;

static int t_ready_poll(void *state, ek_cx *cx, void **out)
{
    t_ready *r = state;
    *out = r->m;
    r->m = NULL;
    return EK_OK;
}

static void t_ready_drop(void *state)
{
    t_ready *r = state;
    ek_msg_free(r->m);
    free(r);
}

static int t_echo_ready(void *self, ek_cx *cx)
{
    return EK_OK;
}

static int t_echo_call(void *self, ek_msg *req, ek_future **resp)
{
    atomic_store(&t_big_at_call, atomic_load(&t_big_allocs));
    const uint8_t *d;
    size_t n;
    const char *want = atomic_load(&t_expect);
    if (want != NULL && ek_msg_kind(req) == EK_MSG_BYTES && ek_msg_data(req, &d, &n) == EK_OK) {
        atomic_store(&t_seen_len, n);
        atomic_store(&t_seen_ok, memcmp(d, want, n) == 0);
    }
    atomic_fetch_add(&t_calls, 1); /* last: the test reads the others after it */
    t_ready *r = malloc(sizeof *r);
    if (r == NULL) {
        ek_msg_free(req);
        return EK_ENOMEM;
    }
    r->m = req;
    return ek_future_new(t_ready_poll, t_ready_drop, r, resp);
}

static int t_echo_clone(void *self, void **out)
{
    *out = NULL;
    return EK_OK;
}

static const ek_service_vtable t_echo_vt = {.poll_ready = t_echo_ready, .call = t_echo_call};

static ek_service *t_echo(void)
{
    ek_service *s;
    assert_int_equal(ek_service_new_shareable(&t_echo_vt, NULL, t_echo_clone, &s), EK_OK);
    return s;
}

static atomic_long t_logs;
static char t_last_log[128];
static int t_last_log_err;

static void t_log(void *ud, int err, const char *reason, const char *peer)
{
    snprintf(t_last_log, sizeof t_last_log, "%s", reason);
    t_last_log_err = err;
    atomic_fetch_add(&t_logs, 1);
}

/* A blocking client: write all, read exactly n bytes (or until close). */
static size_t t_rw(int fd, const char *req, size_t len, char *buf, size_t n)
{
    assert_int_equal(write(fd, req, len), (ssize_t)len);
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    return got;
}

static ek_server *t_serve(ek_runtime *rt, ek_codec *codec, ek_sockaddr **addr, size_t max_in_flight)
{
    ek_tcp_listener *l = t_tcp_listen(rt, "127.0.0.1:0", addr);
    ek_server_options *o;
    assert_int_equal(ek_server_options_new(&o), EK_OK);
    assert_int_equal(ek_server_options_set_log(o, t_log, NULL), EK_OK);
    assert_int_equal(ek_server_options_set_max_in_flight(o, max_in_flight), EK_OK);
    assert_int_equal(ek_server_options_set_max_in_flight(o, 0), EK_EINVAL);
    ek_server *s;
    assert_int_equal(ek_server_serve(rt, l, codec, t_echo(), o, &s), EK_OK);
    ek_server_options_free(o);
    return s;
}

static uint64_t t_srv_metric(ek_server *s, int key)
{
    uint64_t v[EK_SERVER_METRIC_COUNT];
    assert_int_equal(ek_server_metrics(s, v, EK_SERVER_METRIC_COUNT), EK_SERVER_METRIC_COUNT);
    return v[key];
}

static void test_server_lines_pipelined_and_corrupt_closes_only_that_connection(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_codec *codec;
    assert_int_equal(ek_codec_lines(16, &codec), EK_OK);
    ek_sockaddr *addr;
    ek_server *s = t_serve(rt, codec, &addr, 2);
    atomic_store(&t_logs, 0);
    int good = t_raw_connect(addr), bad = t_raw_connect(addr);
    /* pipelined: more requests than max_in_flight, answered in order */
    char buf[256];
    const char *req = "a\nbb\r\nccc\ndddd\neeeee\n";
    size_t want = strlen("a\nbb\nccc\ndddd\neeeee\n");
    assert_int_equal(t_rw(good, req, strlen(req), buf, want), want);
    assert_memory_equal(buf, "a\nbb\nccc\ndddd\neeeee\n", want);
    /* the bad client: one good line, then one over 16 bytes: answered, closed */
    const char *breq = "ok\n01234567890123456789\n";
    size_t got = t_rw(bad, breq, strlen(breq), buf, sizeof buf);
    assert_int_equal(got, 3);
    assert_memory_equal(buf, "ok\n", 3);
    close(bad);
    /* the good client goes on */
    assert_int_equal(t_rw(good, "again\n", 6, buf, 6), 6);
    assert_memory_equal(buf, "again\n", 6);
    for (int i = 0; i < 500 && atomic_load(&t_logs) == 0; i++) usleep(10000);
    assert_int_equal(atomic_load(&t_logs), 1);
    assert_int_equal(t_last_log_err, EK_EMSGSIZE);
    assert_string_equal(t_last_log, "line longer than the maximum");
    assert_int_equal(t_srv_metric(s, EK_SERVER_METRIC_DECODE_FAILURES), 1);
    assert_int_equal(t_srv_metric(s, EK_SERVER_METRIC_CONNECTIONS_TOTAL), 2);
    assert_int_equal(t_srv_metric(s, EK_SERVER_METRIC_REQUESTS), 7);
    assert_string_equal(ek_server_metric_name(EK_SERVER_METRIC_REQUESTS), "REQUESTS");
    assert_null(ek_server_metric_name(EK_SERVER_METRIC_COUNT));
    /* graceful shutdown: the idle connection is closed, the port stops accepting */
    assert_int_equal(ek_server_shutdown(s, 5000), EK_OK);
    assert_int_equal(read(good, buf, 1), 0);
    close(good);
    assert_int_equal(t_srv_metric(s, EK_SERVER_METRIC_CONNECTIONS_OPEN), 0);
    assert_int_equal(ek_server_shutdown(s, 0), EK_OK); /* idempotent */
    ek_server_free(s);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

static int t_no_decode(void *self, ek_buf *in, ek_msg **out, const char **reason)
{
    return EK_PENDING;
}

static int t_no_encode(void *self, const ek_msg *m, int what, ek_buf *out)
{
    return EK_OK;
}

static void test_server_errors_and_free_orders(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_sockaddr *addr;
    ek_tcp_listener *l = t_tcp_listen(rt, "127.0.0.1:0", &addr);
    ek_codec *codec;
    ek_service *plain;
    static const ek_service_vtable vt = {.poll_ready = t_echo_ready, .call = t_echo_call};
    assert_int_equal(ek_service_new(&vt, NULL, &plain), EK_OK);
    assert_int_equal(ek_codec_lines(0, &codec), EK_OK);
    ek_server *s = NULL;
    /* a service that is not shareable is buffered: one worker owns it */
    assert_int_equal(ek_server_serve(rt, l, codec, plain, NULL, &s), EK_OK);
    int pfd = t_raw_connect(addr), qfd = t_raw_connect(addr);
    char pbuf[8];
    assert_int_equal(t_rw(pfd, "p\n", 2, pbuf, 2), 2);
    assert_int_equal(t_rw(qfd, "q\n", 2, pbuf, 2), 2);
    assert_memory_equal(pbuf, "q\n", 2);
    close(pfd);
    close(qfd);
    assert_int_equal(ek_server_shutdown(s, 5000), EK_OK);
    ek_server_free(s);
    s = NULL;
    /* a codec that cannot be cloned: refused, everything consumed */
    static const ek_codec_vtable novt = {.decode = t_no_decode, .encode = t_no_encode};
    ek_codec *nofork;
    assert_int_equal(ek_codec_new(&novt, NULL, &nofork), EK_OK);
    ek_sockaddr *addr2;
    l = t_tcp_listen(rt, "127.0.0.1:0", &addr2);
    assert_int_equal(ek_server_serve(rt, l, nofork, t_echo(), NULL, &s), EK_ENOTSUP);
    assert_null(s);
    ek_sockaddr_free(addr2);
    assert_int_equal(ek_server_serve(rt, NULL, NULL, NULL, NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_server_shutdown(NULL, 0), EK_EINVAL);
    ek_server_free(NULL);
    /* runtime freed first, then the server handle: no crash, no leak */
    ek_sockaddr_free(addr);
    assert_int_equal(ek_codec_lines(0, &codec), EK_OK);
    s = t_serve(rt, codec, &addr, 8);
    int fd = t_raw_connect(addr);
    char buf[8];
    assert_int_equal(t_rw(fd, "x\n", 2, buf, 2), 2);
    ek_runtime_shutdown(rt, 1000);
    ek_server_free(s);
    close(fd);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

/* ---- the client ---- */

typedef struct t_cl {
    ek_service *svc;
    ek_future *f[50];
    int n, called, done;
} t_cl;

static int t_cl_poll(void *state, ek_cx *cx, void **out)
{
    t_cl *c = state;
    *out = NULL;
    while (c->called < c->n) {
        int rc = ek_service_poll_ready(c->svc, cx);
        if (rc != EK_OK) return rc;
        char text[16];
        int len = snprintf(text, sizeof text, "req%d", c->called);
        ek_msg *m;
        if (ek_msg_bytes_copy(text, (size_t)len, &m) != EK_OK) return EK_ENOMEM;
        rc = ek_service_call(c->svc, m, &c->f[c->called]);
        if (rc != EK_OK) return rc;
        c->called++;
    }
    /* all pipelined; now the responses, in order */
    while (c->done < c->n) {
        void *v = NULL;
        int rc = ek_future_poll(c->f[c->done], cx, &v);
        if (rc == EK_PENDING) return rc;
        ek_future_drop(c->f[c->done]);
        c->f[c->done] = NULL;
        if (rc != EK_OK) return rc;
        char text[16];
        int len = snprintf(text, sizeof text, "req%d", c->done);
        const uint8_t *d;
        size_t n;
        int ok = ek_msg_data(v, &d, &n) == EK_OK && n == (size_t)len && memcmp(d, text, n) == 0;
        ek_msg_free(v);
        if (!ok) return EK_EPROTO;
        c->done++;
    }
    return EK_OK;
}

static void test_client_pipelines_over_one_connection_and_fails_cleanly(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_codec *codec;
    assert_int_equal(ek_codec_lines(0, &codec), EK_OK);
    ek_sockaddr *addr;
    ek_server *s = t_serve(rt, codec, &addr, 64);
    ek_service *svc, *clone;
    assert_int_equal(ek_codec_lines(0, &codec), EK_OK);
    assert_int_equal(ek_client_connect(rt, addr, codec, NULL, &svc), EK_OK);
    assert_int_equal(ek_service_is_shareable(svc), 1);
    assert_int_equal(ek_service_clone(svc, &clone), EK_OK);
    t_cl c = {.svc = svc, .n = 50};
    assert_int_equal(ekt_block_on_fn(rt, t_cl_poll, &c, NULL), EK_OK);
    assert_int_equal(c.done, 50);
    t_cl c2 = {.svc = clone, .n = 5};
    assert_int_equal(ekt_block_on_fn(rt, t_cl_poll, &c2, NULL), EK_OK);
    /* one connection for both handles */
    assert_int_equal(t_srv_metric(s, EK_SERVER_METRIC_CONNECTIONS_TOTAL), 1);
    assert_int_equal(t_srv_metric(s, EK_SERVER_METRIC_REQUESTS), 55);
    /* the server goes away: the next request fails, then the service is closed */
    assert_int_equal(ek_server_shutdown(s, 5000), EK_OK);
    t_cl c3 = {.svc = svc, .n = 1};
    int rc = ekt_block_on_fn(rt, t_cl_poll, &c3, NULL);
    assert_true(rc == EK_ECONNRESET || rc == EK_EPIPE);
    for (int i = 0; i < c3.called; i++) ek_future_drop(c3.f[i]);
    t_cl c4 = {.svc = svc, .n = 1};
    assert_int_equal(ekt_block_on_fn(rt, t_cl_poll, &c4, NULL), rc); /* final */
    assert_int_equal(ek_service_status(svc), EK_SERVICE_CLOSED);
    /* a refused connection */
    ek_service *none;
    assert_int_equal(ek_codec_lines(0, &codec), EK_OK);
    assert_int_equal(ek_client_connect(rt, addr, codec, NULL, &none), EK_OK);
    t_cl c5 = {.svc = none, .n = 1};
    rc = ekt_block_on_fn(rt, t_cl_poll, &c5, NULL);
    for (int i = 0; i < c5.called; i++) ek_future_drop(c5.f[i]);
    assert_int_equal(rc, EK_ECONNREFUSED);
    assert_int_equal(ek_client_connect(rt, NULL, NULL, NULL, &none), EK_EINVAL);
    ek_service_free(none);
    ek_service_free(clone);
    ek_service_free(svc);
    ek_server_free(s);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

/* ---- a 1 MiB frame is not copied between the socket and the service ---- */

static void *t_big_malloc(size_t n)
{
    if (n >= 1024 * 1024) atomic_fetch_add(&t_big_allocs, 1);
    return malloc(n);
}
static void *t_big_realloc(void *p, size_t n)
{
    if (n >= 1024 * 1024) atomic_fetch_add(&t_big_allocs, 1);
    return realloc(p, n);
}
static void *t_big_calloc(size_t k, size_t n)
{
    if (k * n >= 1024 * 1024) atomic_fetch_add(&t_big_allocs, 1);
    return calloc(k, n);
}

static void test_server_one_mib_frame_is_not_copied(void **state)
{
    /* Every allocation of 1 MiB or more is counted: the read buffer that holds
     * the frame is one; a copy of the payload anywhere between the socket and
     * the service would be another. */
    assert_int_equal(ek_set_allocator(t_big_malloc, t_big_realloc, t_big_calloc, free), EK_OK);
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_codec *codec;
    assert_int_equal(ek_codec_length_delimited(0, 4, 0, EK_LENGTH_SKIP_DEFAULT, 0, 0, &codec),
                     EK_OK);
    ek_sockaddr *addr;
    ek_server *s = t_serve(rt, codec, &addr, 8);
    int fd = t_raw_connect(addr);
    size_t n = 1024 * 1024;
    char *frame = malloc(n + 4);
    frame[0] = 0, frame[1] = 0x10, frame[2] = 0, frame[3] = 0; /* 1 MiB */
    for (size_t i = 0; i < n; i++) frame[4 + i] = (char)(i * 7);
    atomic_store(&t_big_allocs, 0);
    atomic_store(&t_calls, 0);
    atomic_store(&t_expect, frame + 4);
    /* Send the frame, then read the first header bytes of the echo: by then the
     * service has seen the request. */
    assert_int_equal(write(fd, frame, n + 4), (ssize_t)(n + 4));
    for (int i = 0; i < 1000 && atomic_load(&t_calls) == 0; i++) usleep(5000);
    assert_int_equal(atomic_load(&t_calls), 1);
    long during = atomic_load(&t_big_at_call);
    assert_int_equal(atomic_load(&t_seen_len), n);
    assert_int_equal(atomic_load(&t_seen_ok), 1);
    char *echo = malloc(n + 4);
    size_t got = 0;
    while (got < n + 4) {
        ssize_t k = read(fd, echo + got, n + 4 - got);
        assert_true(k > 0);
        got += (size_t)k;
    }
    assert_memory_equal(echo, frame, n + 4);
    print_message("allocations of 1 MiB or more until the service saw the frame: %ld\n", during);
    assert_int_equal(during, 1);
    atomic_store(&t_expect, NULL);
    free(echo);
    free(frame);
    close(fd);
    assert_int_equal(ek_server_shutdown(s, 5000), EK_OK);
    ek_server_free(s);
    ek_sockaddr_free(addr);
    ek_runtime_free(rt);
    ekt_alloc_install(); /* back to the counting allocator for the teardown */
}

/* ---- a local server (ek_server_options_set_local) ---- */

/* A service that is not shareable and must stay on one thread: counts calls
 * made on any other thread than the serving one. */
static pthread_t t_local_thread;
static atomic_long t_local_calls, t_local_off_thread;

static int t_local_call(void *self, ek_msg *req, ek_future **resp)
{
    if (!pthread_equal(pthread_self(), t_local_thread)) atomic_fetch_add(&t_local_off_thread, 1);
    atomic_fetch_add(&t_local_calls, 1);
    t_ready *r = malloc(sizeof *r);
    if (r == NULL) {
        ek_msg_free(req);
        return EK_ENOMEM;
    }
    r->m = req;
    return ek_future_new(t_ready_poll, t_ready_drop, r, resp);
}

static const ek_service_vtable t_local_vt = {.poll_ready = t_echo_ready, .call = t_local_call};

typedef struct t_local_run {
    ek_runtime *rt;
    ek_sockaddr *addr;
    ek_server *srv;
    ek_oneshot_sender *tx;
    ek_oneshot_receiver *rx; /* the client thread's "finished" */
    pthread_t client;
    char got[64];
    size_t n;
} t_local_run;

static void *t_local_client_main(void *arg)
{
    t_local_run *r = arg;
    int fd = t_raw_connect(r->addr);
    const char *req = "one\ntwo\nthree\n";
    r->n = t_rw(fd, req, strlen(req), r->got, strlen(req));
    close(fd);
    (void)ek_oneshot_send(r->tx, (void *)1);
    return NULL;
}

/* What the test thread blocks on: its first poll serves (so the server's tasks
 * are this thread's local tasks) and starts a client thread; then it waits for
 * the client to finish. */
static int t_local_poll(void *state, ek_cx *cx, void **out)
{
    t_local_run *r = state;
    if (r->srv == NULL) {
        ek_tcp_listener *l = t_tcp_listen(r->rt, "127.0.0.1:0", &r->addr);
        ek_server_options *o;
        assert_int_equal(ek_server_options_new(&o), EK_OK);
        assert_int_equal(ek_server_options_set_local(o, 2), EK_EINVAL);
        assert_int_equal(ek_server_options_set_local(NULL, 1), EK_EINVAL);
        assert_int_equal(ek_server_options_set_local(o, 1), EK_OK);
        ek_service *svc;
        assert_int_equal(ek_service_new(&t_local_vt, NULL, &svc), EK_OK);
        ek_codec *codec;
        assert_int_equal(ek_codec_lines(64, &codec), EK_OK);
        assert_int_equal(ek_server_serve(r->rt, l, codec, svc, o, &r->srv), EK_OK);
        ek_server_options_free(o);
        assert_int_equal(pthread_create(&r->client, NULL, t_local_client_main, r), 0);
    }
    void *v = NULL;
    return ek_oneshot_recv(r->rx, cx, &v);
}

static int t_local_noop_poll(void *state, ek_cx *cx, void **out)
{
    return EK_OK;
}

static void test_server_local_calls_the_service_on_the_serving_thread(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    t_local_thread = pthread_self();
    atomic_store(&t_local_calls, 0);
    atomic_store(&t_local_off_thread, 0);
    t_local_run run = {.rt = rt};
    assert_int_equal(ek_oneshot_new(NULL, &run.tx, &run.rx), EK_OK);
    ek_future *f;
    assert_int_equal(ek_future_new(t_local_poll, NULL, &run, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    assert_int_equal(pthread_join(run.client, NULL), 0);
    /* pipelined requests answered in order; the service (not shareable, so
     * behind a local buffer) always called on this thread */
    assert_int_equal(run.n, strlen("one\ntwo\nthree\n"));
    assert_memory_equal(run.got, "one\ntwo\nthree\n", run.n);
    assert_int_equal(atomic_load(&t_local_calls), 3);
    assert_int_equal(atomic_load(&t_local_off_thread), 0);
    /* the serving thread cannot wait for its own tasks; freeing does not wait */
    assert_int_equal(ek_server_shutdown(run.srv, 0), EK_EDEADLK);
    ek_server_free(run.srv);
    /* driving this thread again lets the told-to-stop tasks end */
    ek_future *g;
    assert_int_equal(ek_future_new(t_local_noop_poll, NULL, NULL, &g), EK_OK);
    assert_int_equal(ek_block_on(rt, g, NULL), EK_OK);
    ek_oneshot_receiver_drop(run.rx);
    ek_sockaddr_free(run.addr);
    ek_runtime_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)
        T(test_lines_codec),
        T(test_length_delimited_codec),
        T(test_resp_codec_hello_switches_protocol),
        T(test_resp_client_decodes_every_type),
        T(test_server_lines_pipelined_and_corrupt_closes_only_that_connection),
        T(test_server_errors_and_free_orders),
        T(test_client_pipelines_over_one_connection_and_fails_cleanly),
        T(test_server_local_calls_the_service_on_the_serving_thread),
        cmocka_unit_test(test_server_one_mib_frame_is_not_copied),
#undef T
    };
    if (getenv("EKT_FILTER")) cmocka_set_test_filter(getenv("EKT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
