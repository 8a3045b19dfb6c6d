/*
 * test_http.c - the HTTP/1.x codecs (on llhttp) on buffers: requests split at
 * every byte boundary decode the same, pipelining, Content-Length and chunked
 * bodies (a Content-Length body is a slice of the read buffer), keep-alive by
 * version and Connection header, oversized heads and bodies, bad chunk sizes,
 * response encoding, the client side; then the framed server over TCP:
 * keep-alive reuse, HTTP/1.0, 100-continue, 400/431 and close, a streaming
 * (chunked) response, and the framed client.
 */
#include "net_helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>

#include <stdbool.h>
#include <stdlib.h>

static ek_buf *t_buf(const char *s, size_t n)
{
    ek_buf *b;
    assert_int_equal(ek_buf_new(0, &b), EK_OK);
    if (n) assert_int_equal(ek_buf_append(b, s, n), EK_OK);
    return b;
}

static ek_codec *t_server_codec(size_t max_header, size_t max_body)
{
    ek_codec *c;
    assert_int_equal(ek_codec_http_server(max_header, max_body, 0, &c), EK_OK);
    return c;
}

/* One decoded request, flattened to text for comparison:
 * "METHOD TARGET vVERSION ka=K [name=value]... body=<body>". */
static void t_flatten(ek_msg *m, char *out, size_t cap)
{
    const char *s, *t;
    size_t n, tn;
    size_t used = 0;
    if (ek_msg_kind(m) == EK_MSG_HTTP_REQUEST) {
        assert_int_equal(ek_msg_http_method(m, &s, &n), EK_OK);
        assert_int_equal(ek_msg_http_target(m, &t, &tn), EK_OK);
        used += (size_t)snprintf(out + used, cap - used, "%.*s %.*s", (int)n, s, (int)tn, t);
    } else {
        assert_int_equal(ek_msg_http_reason(m, &s, &n), EK_OK);
        used +=
            (size_t)snprintf(out + used, cap - used, "%d %.*s", ek_msg_http_status(m), (int)n, s);
    }
    used += (size_t)snprintf(out + used, cap - used, " v%d ka=%d", ek_msg_http_version(m),
                             ek_msg_http_keep_alive(m));
    int64_t k = ek_msg_http_header_count(m);
    for (int64_t i = 0; i < k; i++) {
        const char *hn, *hv;
        size_t hnl, hvl;
        assert_int_equal(ek_msg_http_header(m, (size_t)i, &hn, &hnl, &hv, &hvl), EK_OK);
        used +=
            (size_t)snprintf(out + used, cap - used, " [%.*s=%.*s]", (int)hnl, hn, (int)hvl, hv);
    }
    const uint8_t *d;
    size_t dn;
    assert_int_equal(ek_msg_data(m, &d, &dn), EK_OK);
    snprintf(out + used, cap - used, " body=%.*s", (int)dn, (const char *)d);
}

/* Decode everything in input, fed in pieces of `step` bytes (0: all at once),
 * then the end of the stream; the flattened messages joined by "\n" go into out.
 * Returns the last result (EK_ECLOSED when all went well). */
static int t_decode_all(ek_codec *c, const char *input, size_t len, size_t step, char *out,
                        size_t cap, const char **why)
{
    ek_buf *b = t_buf(NULL, 0);
    size_t fed = 0, used = 0;
    out[0] = '\0';
    int rc;
    for (;;) {
        if (fed < len) {
            size_t k = step == 0 || len - fed < step ? len - fed : step;
            assert_int_equal(ek_buf_append(b, input + fed, k), EK_OK);
            fed += k;
        }
        ek_msg *m = NULL;
        rc = fed < len ? ek_codec_decode(c, b, &m, why) : ek_codec_decode_eof(c, b, &m, why);
        if (rc == EK_OK) {
            char one[1024];
            t_flatten(m, one, sizeof one);
            used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? "\n" : "", one);
            ek_msg_free(m);
            continue;
        }
        if (rc == EK_PENDING && fed < len) continue;
        break;
    }
    ek_buf_free(b);
    return rc;
}

static const char t_pipelined[] =
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    "POST /upload?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-Empty:\r\n\r\nhello"
    "\r\n" /* an empty line between requests is allowed */
    "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    "4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: t\r\n\r\n"
    "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    "GET /last HTTP/1.0\r\n\r\n"
    "GET /never HTTP/1.1\r\n\r\n";

static const char t_pipelined_want[] =
    "GET / v11 ka=1 [Host=a] body=\n"
    "POST /upload?x=1 v11 ka=1 [Host=a] [Content-Length=5] [X-Empty=] body=hello\n"
    "PUT /c v11 ka=1 [Transfer-Encoding=chunked] body=Wikipedia\n"
    "GET /ka v10 ka=1 [Connection=keep-alive] body=\n"
    "GET /last v10 ka=0 body=";

static void test_http_decode_pipelined(void **state)
{
    ek_codec *c = t_server_codec(0, 0);
    char out[4096];
    const char *why = NULL;
    /* After the HTTP/1.0 request without keep-alive nothing more is decoded. */
    assert_int_equal(t_decode_all(c, t_pipelined, sizeof t_pipelined - 1, 0, out, sizeof out, &why),
                     EK_ECLOSED);
    assert_string_equal(out, t_pipelined_want);
    ek_codec_free(c);
}

static void test_http_decode_split_at_every_byte(void **state)
{
    char whole[4096], split[4096];
    const char *why = NULL;
    size_t len = sizeof t_pipelined - 1;
    /* One byte at a time, then two pieces split at every boundary. */
    ek_codec *c = t_server_codec(0, 0);
    assert_int_equal(t_decode_all(c, t_pipelined, len, 1, split, sizeof split, &why), EK_ECLOSED);
    assert_string_equal(split, t_pipelined_want);
    ek_codec_free(c);
    for (size_t at = 1; at < len; at++) {
        c = t_server_codec(0, 0);
        ek_buf *b = t_buf(t_pipelined, at);
        size_t used = 0;
        split[0] = '\0';
        int rc;
        bool rest = false;
        for (;;) {
            ek_msg *m = NULL;
            rc = ek_codec_decode(c, b, &m, &why);
            if (rc == EK_OK) {
                char one[1024];
                t_flatten(m, one, sizeof one);
                used += (size_t)snprintf(split + used, sizeof split - used, "%s%s",
                                         used ? "\n" : "", one);
                ek_msg_free(m);
                continue;
            }
            if (rc == EK_PENDING && !rest) {
                assert_int_equal(ek_buf_append(b, t_pipelined + at, len - at), EK_OK);
                rest = true;
                continue;
            }
            break;
        }
        assert_int_equal(rc, EK_ECLOSED);
        snprintf(whole, sizeof whole, "%s", t_pipelined_want);
        if (strcmp(split, whole) != 0) fail_msg("split at %zu: %s", at, split);
        ek_buf_free(b);
        ek_codec_free(c);
    }
}

static void test_http_body_is_a_slice_of_the_read_buffer(void **state)
{
    ek_codec *c = t_server_codec(0, 0);
    const char req[] = "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n";
    ek_buf *b = t_buf(req, sizeof req - 1);
    const uint8_t *front = ek_buf_data(b);
    ek_msg *m;
    const char *why;
    assert_int_equal(ek_codec_decode(c, b, &m, &why), EK_OK);
    const uint8_t *d;
    size_t n;
    assert_int_equal(ek_msg_data(m, &d, &n), EK_OK);
    assert_int_equal(n, 3);
    assert_ptr_equal(d, front + (sizeof req - 1) - 3 - strlen("GET / HTTP/1.1\r\n\r\n"));
    /* what is left is the next request */
    assert_int_equal(ek_buf_len(b), strlen("GET / HTTP/1.1\r\n\r\n"));
    ek_msg_free(m);
    assert_int_equal(ek_codec_decode(c, b, &m, &why), EK_OK);
    assert_int_equal(ek_buf_len(b), 0);
    ek_msg_free(m);
    assert_int_equal(ek_codec_decode(c, b, &m, &why), EK_PENDING);
    assert_int_equal(ek_codec_decode_eof(c, b, &m, &why), EK_ECLOSED);
    ek_buf_free(b);
    ek_codec_free(c);
}

/* Decode input whole and byte by byte; both must fail with err, and the error
 * reply must start with `reply`. */
static void t_expect_error(size_t max_header, size_t max_body, const char *input, int err,
                           const char *reply)
{
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        ek_codec *c = t_server_codec(max_header, max_body);
        char out[4096];
        const char *why = NULL;
        int rc = t_decode_all(c, input, strlen(input), bytewise ? 1 : 0, out, sizeof out, &why);
        if (rc != err) fail_msg("%s: got %d (%s), want %d", input, rc, why ? why : "", err);
        assert_non_null(why);
        ek_buf *o = t_buf(NULL, 0);
        assert_int_equal(ek_codec_encode_error(c, rc, why, o), EK_OK);
        const char *w = (const char *)ek_buf_data(o);
        if ((size_t)ek_buf_len(o) < strlen(reply) || memcmp(w, reply, strlen(reply)) != 0)
            fail_msg("%s: reply %.*s", input, (int)ek_buf_len(o), w);
        assert_non_null(strstr(w, "Connection: close\r\n"));
        /* after an error the codec decodes nothing more */
        ek_msg *m = NULL;
        assert_int_equal(ek_buf_clear(o), EK_OK);
        assert_int_equal(ek_codec_decode(c, o, &m, &why), EK_ECLOSED);
        ek_buf_free(o);
        ek_codec_free(c);
    }
}

static void test_http_malformed_and_oversized(void **state)
{
    /* bad chunk sizes */
    t_expect_error(0, 0, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", EK_EPROTO,
                   "HTTP/1.1 400 Bad Request\r\n");
    t_expect_error(0, 0,
                   "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "ffffffffffffffffff\r\n",
                   EK_EPROTO, "HTTP/1.1 400 ");
    t_expect_error(0, 0, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
                   EK_EPROTO, "HTTP/1.1 400 ");
    /* a bad request line, a bad header, two lengths, LF inside a header */
    t_expect_error(0, 0, "GET\r\n\r\n", EK_EPROTO, "HTTP/1.1 400 ");
    t_expect_error(0, 0, "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", EK_EPROTO, "HTTP/1.1 400 ");
    t_expect_error(0, 0, "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                   EK_EPROTO, "HTTP/1.1 400 ");
    t_expect_error(0, 0,
                   "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                   EK_EPROTO, "HTTP/1.1 400 ");
    t_expect_error(0, 0, "\x01\x02\x03", EK_EPROTO, "HTTP/1.1 400 ");
    /* an HTTP version other than 1.0 and 1.1 */
    t_expect_error(0, 0, "GET / HTTP/2.0\r\n\r\n", EK_EPROTO, "HTTP/1.1 505 ");
    t_expect_error(0, 0, "DESCRIBE / RTSP/1.0\r\n\r\n", EK_EPROTO, "HTTP/1.1 400 ");
    /* CONNECT (a tunnel) is not served; the requests before it are */
    t_expect_error(0, 0, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
                   EK_EPROTO, "HTTP/1.1 501 Not Implemented\r\n");
    t_expect_error(0, 0, "GET / HTTP/1.1\r\n\r\nCONNECT a:1 HTTP/1.1\r\n\r\n", EK_EPROTO,
                   "HTTP/1.1 501 ");
    /* a head over the limit (64 bytes), in the target, in a header, in many */
    char big[512];
    snprintf(big, sizeof big, "GET /%0100d HTTP/1.1\r\n\r\n", 0);
    t_expect_error(64, 0, big, EK_EMSGSIZE, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
    snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX: %0100d\r\n\r\n", 0);
    t_expect_error(64, 0, big, EK_EMSGSIZE, "HTTP/1.1 431 ");
    snprintf(big, sizeof big, "GET / HTTP/1.1\r\n%s\r\n",
             "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\nH: 8\r\nI: 9\r\nJ: 0\r\n"
             "K: 1\r\nL: 2\r\n");
    t_expect_error(64, 0, big, EK_EMSGSIZE, "HTTP/1.1 431 ");
    /* a body over the limit: by its Content-Length, or chunk by chunk */
    t_expect_error(0, 4, "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", EK_EMSGSIZE,
                   "HTTP/1.1 413 Content Too Large\r\n");
    t_expect_error(0, 4,
                   "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n",
                   EK_EMSGSIZE, "HTTP/1.1 413 ");
    /* truncated at the end of the stream */
    t_expect_error(0, 0, "GET / HTTP/1.1\r\nHost:", EK_EPROTO, "HTTP/1.1 400 ");
    t_expect_error(0, 0, "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel", EK_EPROTO,
                   "HTTP/1.1 400 ");
    /* exactly at the limit is fine */
    const char *exact = "GET / HTTP/1.1\r\nA: b\r\n\r\n";
    ek_codec *c = t_server_codec(strlen(exact), 0);
    char out[256];
    const char *why;
    assert_int_equal(t_decode_all(c, exact, strlen(exact), 1, out, sizeof out, &why), EK_ECLOSED);
    assert_string_equal(out, "GET / v11 ka=1 [A=b] body=");
    ek_codec_free(c);
    /* bad arguments */
    assert_int_equal(ek_codec_http_server(0, 0, 0, NULL), EK_EINVAL);
    assert_int_equal(ek_codec_http_server(0, 0, 2, &c), EK_EINVAL);
    assert_int_equal(ek_codec_http_client(0, 0, EK_HTTP_DATE, &c), EK_EINVAL);
}

/* Encode resp as the answer to the request `req` on a fresh codec. */
static void t_answer(const char *req, ek_msg *resp, int flags, char *out, size_t cap, int *rc)
{
    ek_codec *c;
    assert_int_equal(ek_codec_http_server(0, 0, flags, &c), EK_OK);
    ek_buf *b = t_buf(req, strlen(req));
    ek_msg *m;
    const char *why;
    assert_int_equal(ek_codec_decode(c, b, &m, &why), EK_OK);
    ek_msg_free(m);
    ek_buf *o = t_buf(NULL, 0);
    *rc = ek_codec_encode(c, resp, EK_CODEC_RESPONSE, o);
    snprintf(out, cap, "%.*s", (int)ek_buf_len(o), (const char *)ek_buf_data(o));
    ek_msg_free(resp);
    ek_buf_free(o);
    ek_buf_free(b);
    ek_codec_free(c);
}

static ek_msg *t_resp(int status, const char *body)
{
    ek_msg *m;
    assert_int_equal(ek_msg_http_response(status, NULL, 0, 11, &m), EK_OK);
    if (body) assert_int_equal(ek_msg_http_set_body_copy(m, body, strlen(body)), EK_OK);
    return m;
}

static void test_http_encode_response(void **state)
{
    char out[1024];
    int rc;
    ek_msg *m = t_resp(200, "Hello, World!");
    assert_int_equal(ek_msg_http_add_header(m, "Content-Type", 12, "text/plain", 10), EK_OK);
    assert_int_equal(ek_msg_http_add_header(m, "Content-Length", 14, "99", 2), EK_OK); /* ignored */
    t_answer("GET / HTTP/1.1\r\n\r\n", m, 0, out, sizeof out, &rc);
    assert_int_equal(rc, EK_OK);
    assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
                             "\r\nHello, World!");
    /* HTTP/1.0 with keep-alive, and without */
    t_answer("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", t_resp(200, "x"), 0, out,
             sizeof out, &rc);
    assert_string_equal(out,
                        "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx");
    t_answer("GET / HTTP/1.0\r\n\r\n", t_resp(200, "x"), 0, out, sizeof out, &rc);
    assert_string_equal(out, "HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx");
    /* the client closes; the response closes */
    t_answer("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", t_resp(404, ""), 0, out, sizeof out,
             &rc);
    assert_string_equal(out,
                        "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    m = t_resp(200, "");
    assert_int_equal(ek_msg_http_set_keep_alive(m, 0), EK_OK);
    t_answer("GET / HTTP/1.1\r\n\r\n", m, 0, out, sizeof out, &rc);
    assert_string_equal(out, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    /* HEAD: the length, no body; 204 and 304: neither */
    t_answer("HEAD / HTTP/1.1\r\n\r\n", t_resp(200, "abc"), 0, out, sizeof out, &rc);
    assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
    t_answer("GET / HTTP/1.1\r\n\r\n", t_resp(204, ""), 0, out, sizeof out, &rc);
    assert_string_equal(out, "HTTP/1.1 204 No Content\r\n\r\n");
    /* a reason of the service's own; a Date header when asked */
    assert_int_equal(ek_msg_http_response(299, "Fine", 4, 11, &m), EK_OK);
    t_answer("GET / HTTP/1.1\r\n\r\n", m, EK_HTTP_DATE, out, sizeof out, &rc);
    assert_memory_equal(out, "HTTP/1.1 299 Fine\r\nDate: ", 25);
    assert_non_null(strstr(out, " GMT\r\nContent-Length: 0\r\n\r\n"));
    /* response splitting is refused; so is a request message */
    m = t_resp(200, "");
    assert_int_equal(ek_msg_http_add_header(m, "X", 1, "a\r\nSet-Cookie: b", 16), EK_OK);
    t_answer("GET / HTTP/1.1\r\n\r\n", m, 0, out, sizeof out, &rc);
    assert_int_equal(rc, EK_EINVAL);
    assert_string_equal(out, "");
    assert_int_equal(ek_msg_http_request("GET", 3, "/", 1, 11, &m), EK_OK);
    t_answer("GET / HTTP/1.1\r\n\r\n", m, 0, out, sizeof out, &rc);
    assert_int_equal(rc, EK_EKIND);
    /* a response with no request to answer */
    ek_codec *c = t_server_codec(0, 0);
    ek_buf *o = t_buf(NULL, 0);
    m = t_resp(200, "");
    assert_int_equal(ek_codec_encode(c, m, EK_CODEC_RESPONSE, o), EK_EINVAL);
    ek_msg_free(m);
    ek_buf_free(o);
    ek_codec_free(c);
}

/* Upgrade is ignored (RFC 9110 7.8): the request is an HTTP/1.1 one like any
 * other, the connection stays HTTP/1.1 and what follows is the next request,
 * with or without a body, whole or byte by byte; a 101 response (which would
 * hand the connection over) cannot be encoded. */
static void test_http_upgrade_ignored(void **state)
{
    static const char in[] =
        "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        "POST /h2 HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        "Content-Length: 3\r\n\r\nabc"
        "GET /next HTTP/1.0\r\n\r\n";
    static const char want[] =
        "GET /ws v11 ka=1 [Connection=Upgrade] [Upgrade=websocket] body=\n"
        "POST /h2 v11 ka=1 [Connection=Upgrade, HTTP2-Settings] [Upgrade=h2c] "
        "[Content-Length=3] body=abc\n"
        "GET /next v10 ka=0 body=";
    for (size_t step = 0; step < 2; step++) {
        ek_codec *c = t_server_codec(0, 0);
        char out[1024];
        const char *why = NULL;
        assert_int_equal(t_decode_all(c, in, sizeof in - 1, step, out, sizeof out, &why),
                         EK_ECLOSED);
        assert_string_equal(out, want);
        ek_codec_free(c);
    }
    char out[256];
    int rc;
    t_answer("GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
             t_resp(101, ""), 0, out, sizeof out, &rc);
    assert_int_equal(rc, EK_ENOTSUP);
    assert_string_equal(out, "");
    t_answer("GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
             t_resp(200, "no"), 0, out, sizeof out, &rc);
    assert_int_equal(rc, EK_OK);
    assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno");
}

/* Requests decoded ahead of their answers queue up in order: 3 decoded, 2
 * answered, then 30 more (the queue, 8 entries at first, wraps and grows twice);
 * every answer fits its own request (HEAD: no body; HTTP/1.0: its version). */
static void test_http_answers_queue_in_order(void **state)
{
    ek_codec *c = t_server_codec(0, 0);
    ek_buf *in = t_buf(NULL, 0), *out = t_buf(NULL, 0);
    int answered = 0, decoded = 0;
    for (int round = 0; round < 2; round++) {
        for (int k = 0; k < (round == 0 ? 3 : 30); k++, decoded++) {
            char req[64];
            int n = snprintf(req, sizeof req, "%s /%d HTTP/1.%d\r\nConnection: keep-alive\r\n\r\n",
                             decoded % 3 == 1 ? "HEAD" : "GET", decoded, decoded % 5 == 2 ? 0 : 1);
            assert_int_equal(ek_buf_append(in, req, (size_t)n), EK_OK);
            ek_msg *m;
            const char *why;
            assert_int_equal(ek_codec_decode(c, in, &m, &why), EK_OK);
            ek_msg_free(m);
        }
        for (; answered < (round == 0 ? 2 : decoded); answered++) {
            ek_msg *m = t_resp(200, "body");
            assert_int_equal(ek_buf_clear(out), EK_OK);
            assert_int_equal(ek_codec_encode(c, m, EK_CODEC_RESPONSE, out), EK_OK);
            ek_msg_free(m);
            char want[128];
            int v10 = answered % 5 == 2;
            snprintf(want, sizeof want, "HTTP/1.%d 200 OK\r\n%sContent-Length: 4\r\n\r\n%s",
                     v10 ? 0 : 1, v10 ? "Connection: keep-alive\r\n" : "",
                     answered % 3 == 1 ? "" : "body");
            assert_int_equal(ek_buf_len(out), (int64_t)strlen(want));
            assert_memory_equal(ek_buf_data(out), want, strlen(want));
        }
    }
    /* nothing left to answer */
    ek_msg *m = t_resp(200, "");
    assert_int_equal(ek_codec_encode(c, m, EK_CODEC_RESPONSE, out), EK_EINVAL);
    ek_msg_free(m);
    ek_buf_free(out);
    ek_buf_free(in);
    ek_codec_free(c);
}

/* A response the codec refuses (a reason phrase with CR LF, bad headers, a 101)
 * leaves its request in the queue: the next response answers that request, not
 * the one after it (a refused answer must not shift every later one). */
static void test_http_refused_response_keeps_its_request(void **state)
{
    ek_codec *c = t_server_codec(0, 0);
    ek_buf *in = t_buf("GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\n\r\n", 39);
    ek_buf *out = t_buf(NULL, 0);
    for (int k = 0; k < 2; k++) {
        ek_msg *m;
        const char *why;
        assert_int_equal(ek_codec_decode(c, in, &m, &why), EK_OK);
        ek_msg_free(m);
    }
    ek_msg *bad[3];
    assert_int_equal(ek_msg_http_response(200, "Fine\r\nX: y", 11, 11, &bad[0]), EK_OK);
    bad[1] = t_resp(200, "");
    assert_int_equal(ek_msg_http_add_header(bad[1], "X", 1, "a\r\nb", 4), EK_OK);
    assert_int_equal(ek_msg_http_response(101, NULL, 0, 11, &bad[2]), EK_OK);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(ek_codec_encode(c, bad[k], EK_CODEC_RESPONSE, out),
                         k == 2 ? EK_ENOTSUP : EK_EINVAL);
        assert_int_equal(ek_buf_len(out), 0);
        ek_msg_free(bad[k]);
    }
    /* GET /a is still first: its answer has the body; HEAD /b's has none */
    static const char *const want[2] = {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
                                        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"};
    for (int k = 0; k < 2; k++) {
        ek_msg *m = t_resp(200, "abc");
        assert_int_equal(ek_buf_clear(out), EK_OK);
        assert_int_equal(ek_codec_encode(c, m, EK_CODEC_RESPONSE, out), EK_OK);
        ek_msg_free(m);
        assert_int_equal(ek_buf_len(out), (int64_t)strlen(want[k]));
        assert_memory_equal(ek_buf_data(out), want[k], strlen(want[k]));
    }
    ek_buf_free(out);
    ek_buf_free(in);
    ek_codec_free(c);
}

static void test_http_client_codec(void **state)
{
    ek_codec *c;
    assert_int_equal(ek_codec_http_client(0, 0, 0, &c), EK_OK);
    ek_buf *o = t_buf(NULL, 0);
    ek_msg *m;
    assert_int_equal(ek_msg_http_request("GET", 3, "/a", 2, 11, &m), EK_OK);
    assert_int_equal(ek_msg_http_add_header(m, "Host", 4, "h", 1), EK_OK);
    assert_int_equal(ek_codec_encode(c, m, EK_CODEC_REQUEST, o), EK_OK);
    ek_msg_free(m);
    assert_int_equal(ek_msg_http_request("HEAD", 4, "/b", 2, 11, &m), EK_OK);
    assert_int_equal(ek_codec_encode(c, m, EK_CODEC_REQUEST, o), EK_OK);
    ek_msg_free(m);
    assert_int_equal(ek_msg_http_request("POST", 4, "/c", 2, 11, &m), EK_OK);
    assert_int_equal(ek_msg_http_set_body_copy(m, "xyz", 3), EK_OK);
    assert_int_equal(ek_codec_encode(c, m, EK_CODEC_REQUEST, o), EK_OK);
    ek_msg_free(m);
    assert_int_equal(ek_msg_http_request("GET", 3, "/d", 2, 11, &m), EK_OK);
    assert_int_equal(ek_codec_encode(c, m, EK_CODEC_REQUEST, o), EK_OK);
    ek_msg_free(m);
    const char want[] = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                        "HEAD /b HTTP/1.1\r\n\r\n"
                        "POST /c HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
                        "GET /d HTTP/1.1\r\n\r\n";
    assert_int_equal(ek_buf_len(o), sizeof want - 1);
    assert_memory_equal(ek_buf_data(o), want, sizeof want - 1);
    ek_buf_free(o);
    /* the responses: a Content-Length one, HEAD's (a length, no body), an
     * interim 100 then a chunked one, then one delimited by the end of stream */
    const char in[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
        "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"
        "HTTP/1.1 200 OK\r\n\r\nuntil the end";
    char out[2048];
    const char *why;
    for (size_t step = 0; step < 3; step++) {
        ek_codec *d;
        assert_int_equal(ek_codec_clone(c, &d), EK_OK);
        /* a fresh clone has no requests written: the first response is unexpected */
        int rc = t_decode_all(d, in, sizeof in - 1, step, out, sizeof out, &why);
        assert_int_equal(rc, EK_EPROTO);
        assert_string_equal(why, "unexpected response");
        ek_codec_free(d);
    }
    for (size_t step = 0; step < 3; step++) {
        ek_codec *d;
        assert_int_equal(ek_codec_http_client(0, 0, 0, &d), EK_OK);
        o = t_buf(NULL, 0);
        const char *methods[] = {"GET", "HEAD", "POST", "GET"};
        for (int i = 0; i < 4; i++) {
            assert_int_equal(ek_msg_http_request(methods[i], strlen(methods[i]), "/", 1, 11, &m),
                             EK_OK);
            assert_int_equal(ek_codec_encode(d, m, EK_CODEC_REQUEST, o), EK_OK);
            ek_msg_free(m);
        }
        ek_buf_free(o);
        int rc = t_decode_all(d, in, sizeof in - 1, step, out, sizeof out, &why);
        assert_int_equal(rc, EK_ECLOSED);
        assert_string_equal(out, "200 OK v11 ka=1 [Content-Length=2] body=hi\n"
                                 "200 OK v11 ka=1 [Content-Length=10] body=\n"
                                 "201 Created v11 ka=1 [Transfer-Encoding=chunked] body=a\n"
                                 "200 OK v11 ka=0 body=until the end");
        ek_codec_free(d);
    }
    ek_codec_free(c);
}

/* ---- the framed server and client over TCP ---- */

typedef struct t_ready {
    ek_msg *m;
} t_ready;

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

static int t_hello_ready(void *self, ek_cx *cx)
{
    return EK_OK;
}

/* GET / -> Hello, World!; POST -> the body's length and the body; /stream -> a
 * chunked response of three frames; /fail -> an error. */
static int t_hello_call(void *self, ek_msg *req, ek_future **resp)
{
    const char *target;
    size_t tlen;
    assert_int_equal(ek_msg_http_target(req, &target, &tlen), EK_OK);
    ek_msg *m = NULL;
    if (tlen == 5 && memcmp(target, "/fail", 5) == 0) {
        ek_msg_free(req);
        return EK_EIO;
    }
    if (tlen == 7 && memcmp(target, "/stream", 7) == 0) {
        ek_mpsc_sender *tx;
        assert_int_equal(ek_msg_stream(8, &tx, &m), EK_OK);
        ek_msg *head = NULL, *chunk = NULL;
        assert_int_equal(ek_msg_http_response(200, NULL, 0, 11, &head), EK_OK);
        assert_int_equal(ek_msg_http_set_body_copy(head, "one,", 4), EK_OK);
        assert_int_equal(ek_mpsc_try_send(tx, head), EK_OK);
        assert_int_equal(ek_msg_bytes_copy("two,", 4, &chunk), EK_OK);
        assert_int_equal(ek_mpsc_try_send(tx, chunk), EK_OK);
        assert_int_equal(ek_msg_bytes_copy("three", 5, &chunk), EK_OK);
        assert_int_equal(ek_mpsc_try_send(tx, chunk), EK_OK);
        ek_mpsc_sender_drop(tx);
    } else {
        const uint8_t *body;
        size_t blen;
        assert_int_equal(ek_msg_data(req, &body, &blen), EK_OK);
        assert_int_equal(ek_msg_http_response(200, NULL, 0, 11, &m), EK_OK);
        if (blen > 0) {
            char text[64];
            int n = snprintf(text, sizeof text, "%zu:", blen);
            ek_buf *b;
            assert_int_equal(ek_buf_new(0, &b), EK_OK);
            assert_int_equal(ek_buf_append(b, text, (size_t)n), EK_OK);
            assert_int_equal(ek_buf_append(b, body, blen), EK_OK);
            ek_bytes *all;
            assert_int_equal(ek_buf_freeze(b, &all), EK_OK);
            ek_buf_free(b);
            assert_int_equal(ek_msg_http_set_body(m, all), EK_OK);
        } else {
            assert_int_equal(ek_msg_http_set_body_copy(m, "Hello, World!", 13), EK_OK);
        }
    }
    ek_msg_free(req);
    t_ready *r = malloc(sizeof *r);
    assert_non_null(r);
    r->m = m;
    return ek_future_new(t_ready_poll, t_ready_drop, r, resp);
}

static int t_hello_clone(void *self, void **out)
{
    *out = NULL;
    return EK_OK;
}

static const ek_service_vtable t_hello_vt = {.poll_ready = t_hello_ready, .call = t_hello_call};

static ek_server *t_serve_http(ek_runtime *rt, ek_sockaddr **addr, size_t max_header)
{
    ek_tcp_listener *l = t_tcp_listen(rt, "127.0.0.1:0", addr);
    ek_service *svc;
    assert_int_equal(ek_service_new_shareable(&t_hello_vt, NULL, t_hello_clone, &svc), EK_OK);
    ek_codec *codec;
    assert_int_equal(ek_codec_http_server(max_header, 0, 0, &codec), EK_OK);
    ek_server *s;
    assert_int_equal(ek_server_serve(rt, l, codec, svc, NULL, &s), EK_OK);
    return s;
}

/* Read from fd until `want` has been seen (or the peer closes); returns what was
 * read, NUL-terminated in buf. */
static size_t t_read_until(int fd, char *buf, size_t cap, const char *want)
{
    size_t got = 0;
    buf[0] = '\0';
    while (got + 1 < cap && strstr(buf, want) == NULL) {
        ssize_t k = read(fd, buf + got, cap - 1 - got);
        if (k <= 0) break;
        got += (size_t)k;
        buf[got] = '\0';
    }
    return got;
}

static void t_send(int fd, const char *s)
{
    assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* The peer closed: read gives 0 (after whatever was still to come). */
static void t_expect_close(int fd)
{
    char buf[256];
    ssize_t k;
    while ((k = read(fd, buf, sizeof buf)) > 0) {
    }
    assert_int_equal(k, 0);
}

static const char t_hello_reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";

static void test_http_server_keep_alive_pipelining_and_errors(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_sockaddr *addr;
    ek_server *s = t_serve_http(rt, &addr, 256);
    char buf[4096];
    /* keep-alive: three requests, one at a time and then pipelined, one connection */
    int fd = t_raw_connect(addr);
    t_send(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    t_read_until(fd, buf, sizeof buf, "World!");
    assert_string_equal(buf, t_hello_reply);
    t_send(fd, "GET / HTTP/1.1\r\n\r\nPOST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
               "GET /stream HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    char want[1024];
    snprintf(want, sizeof want,
             "%sHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n3:abc"
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             "4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n%s",
             t_hello_reply, t_hello_reply);
    t_read_until(fd, buf, sizeof buf,
                 "0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!");
    assert_string_equal(buf, want);
    /* 100-continue: answered before the body is sent */
    t_send(fd, "POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    t_read_until(fd, buf, sizeof buf, "\r\n\r\n");
    assert_string_equal(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    t_send(fd, "ok");
    t_read_until(fd, buf, sizeof buf, "2:ok");
    assert_string_equal(buf, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n2:ok");
    /* chunked request body */
    t_send(fd,
           "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n");
    t_read_until(fd, buf, sizeof buf, "3:abc");
    assert_string_equal(buf, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n3:abc");
    /* HTTP/1.0 without keep-alive: answered, closed */
    int fd10 = t_raw_connect(addr);
    t_send(fd10, "GET / HTTP/1.0\r\n\r\n");
    t_read_until(fd10, buf, sizeof buf, "World!");
    assert_string_equal(buf, "HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Length: 13\r\n\r\n"
                             "Hello, World!");
    t_expect_close(fd10);
    close(fd10);
    /* a 1.0 streaming response is written raw and closes the connection */
    fd10 = t_raw_connect(addr);
    t_send(fd10, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    t_read_until(fd10, buf, sizeof buf, "three");
    assert_string_equal(buf, "HTTP/1.0 200 OK\r\nConnection: close\r\n\r\none,two,three");
    t_expect_close(fd10);
    close(fd10);
    /* malformed: the responses before it, then 400 and close */
    int bad = t_raw_connect(addr);
    t_send(bad, "GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nBad Header: x\r\n\r\n");
    t_read_until(bad, buf, sizeof buf, "\r\n\r\nInvalid");
    assert_memory_equal(buf, t_hello_reply, sizeof t_hello_reply - 1);
    assert_memory_equal(buf + sizeof t_hello_reply - 1, "HTTP/1.1 400 Bad Request\r\n", 26);
    t_expect_close(bad);
    close(bad);
    /* a head over 256 bytes: 431 and close */
    bad = t_raw_connect(addr);
    char big[600];
    snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX: %0400d\r\n\r\n", 0);
    t_send(bad, big);
    t_read_until(bad, buf, sizeof buf, "\r\n\r\n");
    assert_memory_equal(buf, "HTTP/1.1 431 Request Header Fields Too Large\r\n", 46);
    t_expect_close(bad);
    close(bad);
    /* CONNECT: the responses before it, then 501 and close */
    bad = t_raw_connect(addr);
    t_send(bad, "GET / HTTP/1.1\r\n\r\nCONNECT example.com:443 HTTP/1.1\r\n\r\n");
    t_read_until(bad, buf, sizeof buf, "not supported\n");
    assert_memory_equal(buf, t_hello_reply, sizeof t_hello_reply - 1);
    assert_memory_equal(buf + sizeof t_hello_reply - 1,
                        "HTTP/1.1 501 Not Implemented\r\nConnection: close\r\n", 48);
    t_expect_close(bad);
    close(bad);
    /* Upgrade: answered as HTTP/1.1, and the connection goes on */
    bad = t_raw_connect(addr);
    t_send(bad, "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    t_read_until(bad, buf, sizeof buf, "World!");
    assert_string_equal(buf, t_hello_reply);
    t_send(bad, "GET / HTTP/1.1\r\n\r\n");
    t_read_until(bad, buf, sizeof buf, "World!");
    assert_string_equal(buf, t_hello_reply);
    close(bad);
    /* a failed response: 500 and close */
    bad = t_raw_connect(addr);
    t_send(bad, "GET /fail HTTP/1.1\r\n\r\n");
    t_read_until(bad, buf, sizeof buf, "\r\n\r\n");
    assert_memory_equal(buf, "HTTP/1.1 500 Internal Server Error\r\n", 36);
    t_expect_close(bad);
    close(bad);
    /* the first connection still works */
    t_send(fd, "GET / HTTP/1.1\r\n\r\n");
    t_read_until(fd, buf, sizeof buf, "World!");
    assert_string_equal(buf, t_hello_reply);
    close(fd);
    assert_int_equal(ek_server_shutdown(s, 5000), EK_OK);
    ek_server_free(s);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

/* The framed client: requests pipelined over one connection. */
typedef struct t_hc {
    ek_service *svc;
    int n, called, done;
    ek_future *f[16];
    char bodies[16][64];
} t_hc;

static int t_hc_poll(void *state, ek_cx *cx, void **out)
{
    t_hc *c = state;
    *out = NULL;
    while (c->called < c->n) {
        int rc = ek_service_poll_ready(c->svc, cx);
        if (rc != EK_OK) return rc;
        ek_msg *req;
        const char *target = c->called % 2 ? "/" : "/stream";
        assert_int_equal(ek_msg_http_request("GET", 3, target, strlen(target), 11, &req), EK_OK);
        rc = ek_service_call(c->svc, req, &c->f[c->called]);
        if (rc != EK_OK) return rc;
        c->called++;
    }
    while (c->done < c->n) {
        void *resp = NULL;
        int rc = ek_future_poll(c->f[c->done], cx, &resp);
        if (rc == EK_PENDING) return EK_PENDING;
        ek_future_drop(c->f[c->done]);
        if (rc != EK_OK) return rc;
        const uint8_t *d;
        size_t len;
        assert_int_equal(ek_msg_http_status(resp), 200);
        assert_int_equal(ek_msg_data(resp, &d, &len), EK_OK);
        snprintf(c->bodies[c->done], sizeof c->bodies[0], "%.*s", (int)len, (const char *)d);
        ek_msg_free(resp);
        c->done++;
    }
    return EK_OK;
}

static void test_http_client_over_the_server(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_sockaddr *addr;
    ek_server *s = t_serve_http(rt, &addr, 0);
    ek_codec *codec;
    assert_int_equal(ek_codec_http_client(0, 0, 0, &codec), EK_OK);
    ek_service *svc;
    assert_int_equal(ek_client_connect(rt, addr, codec, NULL, &svc), EK_OK);
    t_hc c = {.svc = svc, .n = 10};
    assert_int_equal(ekt_block_on_fn(rt, t_hc_poll, &c, NULL), EK_OK);
    for (int i = 0; i < 10; i++)
        assert_string_equal(c.bodies[i], i % 2 ? "Hello, World!" : "one,two,three");
    uint64_t v[EK_SERVER_METRIC_COUNT];
    assert_int_equal(ek_server_metrics(s, v, EK_SERVER_METRIC_COUNT), EK_SERVER_METRIC_COUNT);
    assert_int_equal(v[EK_SERVER_METRIC_CONNECTIONS_TOTAL], 1);
    assert_int_equal(v[EK_SERVER_METRIC_REQUESTS], 10);
    ek_service_free(svc);
    assert_int_equal(ek_server_shutdown(s, 5000), EK_OK);
    ek_server_free(s);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

/* A peer that is not ekiden's server: it reads until `until` came `count`
 * times, writes `reply` (in two writes: its last 5 bytes apart), then closes. */
typedef struct t_peer {
    int lfd;
    const char *until, *reply;
    int count;
    char got[1024];
} t_peer;

static void *t_peer_main(void *arg)
{
    t_peer *p = arg;
    int fd = accept(p->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    size_t used = 0;
    for (;;) {
        int seen = 0;
        for (const char *at = p->got; (at = strstr(at, p->until)) != NULL; at++) seen++;
        if (seen >= p->count) break;
        ssize_t n = read(fd, p->got + used, sizeof p->got - 1 - used);
        if (n <= 0) break;
        used += (size_t)n;
        p->got[used] = '\0';
    }
    size_t len = strlen(p->reply);
    for (size_t off = 0; off < len;) {
        size_t k = off == 0 && len > 5 ? len - 5 : len - off;
        ssize_t n = write(fd, p->reply + off, k);
        if (n <= 0) break;
        off += (size_t)n;
    }
    close(fd);
    return NULL;
}

/* Start a peer on 127.0.0.1 (its thread in *th; *addr its address) and return
 * an HTTP client of it. */
static ek_service *t_peer_start(ek_runtime *rt, t_peer *p, pthread_t *th, ek_sockaddr **addr)
{
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(p->lfd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof sin;
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(p->lfd, 4), 0);
    assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&sin, &slen), 0);
    assert_int_equal(pthread_create(th, NULL, t_peer_main, p), 0);
    assert_int_equal(ek_sockaddr_from_ip("127.0.0.1", ntohs(sin.sin_port), addr), EK_OK);
    ek_codec *codec;
    assert_int_equal(ek_codec_http_client(0, 0, 0, &codec), EK_OK);
    ek_service *svc;
    assert_int_equal(ek_client_connect(rt, *addr, codec, NULL, &svc), EK_OK);
    return svc;
}

/* The framed client decodes a chunked response and one ended by the end of the
 * stream (Connection: close), then the service is closed (no reconnect). */
static void test_http_client_chunked_and_eof_responses(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    t_peer peer = {.until = "\r\n\r\n",
                   .count = 2,
                   .reply = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "6\r\nhello,\r\n6\r\n world\r\n0\r\n\r\n"
                            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"};
    pthread_t th;
    ek_sockaddr *addr;
    ek_service *svc = t_peer_start(rt, &peer, &th, &addr);
    t_hc c = {.svc = svc, .n = 2};
    assert_int_equal(ekt_block_on_fn(rt, t_hc_poll, &c, NULL), EK_OK);
    assert_string_equal(c.bodies[0], "hello, world");
    assert_string_equal(c.bodies[1], "until the end");
    /* the peer has written and closed: join it before reading what it got (the
     * socket orders its read before our receive, but TSan cannot see that) */
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_non_null(strstr(peer.got, "GET /stream HTTP/1.1\r\n"));
    assert_non_null(strstr(peer.got, "GET / HTTP/1.1\r\n"));
    /* the connection ended: the next request fails, and the service is closed */
    t_hc c2 = {.svc = svc, .n = 1};
    int rc = ekt_block_on_fn(rt, t_hc_poll, &c2, NULL);
    assert_true(rc == EK_ECLOSED || rc == EK_ECONNRESET || rc == EK_EPIPE);
    /* (t_hc_poll dropped the future that failed; with n = 1 none is left) */
    assert_int_equal(ek_service_status(svc), EK_SERVICE_CLOSED);
    close(peer.lfd);
    ek_service_free(svc);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

/* A streaming request (an EK_MSG_STREAM: the head, then byte chunks) goes out
 * with a chunked body as its frames come; the requests after it wait for its
 * end. On the wire (a raw peer), then through ekiden's own server. */
typedef struct t_sreq {
    ek_service *svc;
    ek_mpsc_sender *tx;
    ek_future *f, *g;
    int step;
    char body[64], body2[64];
} t_sreq;

static void t_sreq_body(ek_msg *resp, char *out, size_t cap)
{
    const uint8_t *d;
    size_t len;
    assert_int_equal(ek_msg_http_status(resp), 200);
    assert_int_equal(ek_msg_data(resp, &d, &len), EK_OK);
    snprintf(out, cap, "%.*s", (int)len, (const char *)d);
    ek_msg_free(resp);
}

static int t_sreq_poll(void *state, ek_cx *cx, void **out)
{
    t_sreq *r = state;
    *out = NULL;
    if (r->step == 0) {
        int rc = ek_service_poll_ready(r->svc, cx);
        if (rc != EK_OK) return rc;
        ek_msg *req, *head, *chunk;
        assert_int_equal(ek_msg_stream(8, &r->tx, &req), EK_OK);
        assert_int_equal(ek_msg_http_request("POST", 4, "/up", 3, 11, &head), EK_OK);
        assert_int_equal(ek_msg_http_add_header(head, "Host", 4, "h", 1), EK_OK);
        assert_int_equal(ek_msg_http_set_body_copy(head, "ab", 2), EK_OK);
        assert_int_equal(ek_mpsc_try_send(r->tx, head), EK_OK);
        assert_int_equal(ek_service_call(r->svc, req, &r->f), EK_OK);
        /* a plain request after it waits for the stream's end */
        assert_int_equal(ek_service_poll_ready(r->svc, cx), EK_OK);
        ek_msg *get;
        assert_int_equal(ek_msg_http_request("GET", 3, "/", 1, 11, &get), EK_OK);
        assert_int_equal(ek_service_call(r->svc, get, &r->g), EK_OK);
        assert_int_equal(ek_msg_bytes_copy("cd", 2, &chunk), EK_OK);
        assert_int_equal(ek_mpsc_try_send(r->tx, chunk), EK_OK);
        assert_int_equal(ek_msg_bytes_copy("", 0, &chunk), EK_OK); /* skipped */
        assert_int_equal(ek_mpsc_try_send(r->tx, chunk), EK_OK);
        r->step = 1;
    }
    if (r->step == 1) {
        void *resp = NULL;
        int rc = ek_future_poll(r->f, cx, &resp);
        if (rc == EK_PENDING && r->tx != NULL) { /* the last chunk, then the end */
            ek_msg *chunk;
            assert_int_equal(ek_msg_bytes_copy("efg", 3, &chunk), EK_OK);
            assert_int_equal(ek_mpsc_try_send(r->tx, chunk), EK_OK);
            ek_mpsc_sender_drop(r->tx);
            r->tx = NULL;
            rc = ek_future_poll(r->f, cx, &resp);
        }
        if (rc == EK_PENDING) return EK_PENDING;
        ek_future_drop(r->f);
        if (rc != EK_OK) return rc;
        t_sreq_body(resp, r->body, sizeof r->body);
        r->step = 2;
    }
    void *resp = NULL;
    int rc = ek_future_poll(r->g, cx, &resp);
    if (rc == EK_PENDING) return EK_PENDING;
    ek_future_drop(r->g);
    if (rc != EK_OK) return rc;
    t_sreq_body(resp, r->body2, sizeof r->body2);
    return EK_OK;
}

/* Call svc with req once it is ready (the response future in f). */
typedef struct t_call {
    ek_service *svc;
    ek_msg *req;
    ek_future *f;
} t_call;

static int t_call_poll(void *state, ek_cx *cx, void **out)
{
    t_call *c = state;
    *out = NULL;
    int rc = ek_service_poll_ready(c->svc, cx);
    if (rc != EK_OK) return rc;
    return ek_service_call(c->svc, c->req, &c->f);
}

static void test_http_client_streaming_request(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    /* the wire */
    t_peer peer = {.until = "\r\n\r\n",
                   .count = 3, /* the POST's head, its last chunk, the GET */
                   .reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nget"};
    pthread_t th;
    ek_sockaddr *addr;
    ek_service *svc = t_peer_start(rt, &peer, &th, &addr);
    t_sreq r = {.svc = svc};
    assert_int_equal(ekt_block_on_fn(rt, t_sreq_poll, &r, NULL), EK_OK);
    assert_string_equal(r.body, "ok");
    assert_string_equal(r.body2, "get");
    assert_int_equal(pthread_join(th, NULL), 0); /* before reading peer.got */
    assert_string_equal(peer.got,
                        "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "2\r\nab\r\n2\r\ncd\r\n3\r\nefg\r\n0\r\n\r\n"
                        "GET / HTTP/1.1\r\n\r\n");
    close(peer.lfd);
    ek_service_free(svc);
    ek_sockaddr_free(addr);
    /* ekiden's server decodes it: the body joined */
    ek_server *s = t_serve_http(rt, &addr, 0);
    ek_codec *codec;
    assert_int_equal(ek_codec_http_client(0, 0, 0, &codec), EK_OK);
    assert_int_equal(ek_client_connect(rt, addr, codec, NULL, &svc), EK_OK);
    r = (t_sreq){.svc = svc};
    assert_int_equal(ekt_block_on_fn(rt, t_sreq_poll, &r, NULL), EK_OK);
    assert_string_equal(r.body, "7:abcdefg");
    assert_string_equal(r.body2, "Hello, World!");
    /* a stream that ends without a head is EK_EINVAL; HTTP/1.0 cannot stream */
    for (int k = 0; k < 2; k++) {
        ek_mpsc_sender *tx;
        ek_msg *req, *head;
        assert_int_equal(ek_msg_stream(2, &tx, &req), EK_OK);
        if (k == 1) {
            assert_int_equal(ek_msg_http_request("POST", 4, "/", 1, 10, &head), EK_OK);
            assert_int_equal(ek_mpsc_try_send(tx, head), EK_OK);
        }
        ek_mpsc_sender_drop(tx);
        t_call c = {.svc = svc, .req = req};
        assert_int_equal(ekt_block_on_fn(rt, t_call_poll, &c, NULL), EK_OK);
        assert_int_equal(t_await(rt, c.f, NULL), k == 0 ? EK_EINVAL : EK_ENOTSUP);
    }
    ek_service_free(svc);
    assert_int_equal(ek_server_shutdown(s, 5000), EK_OK);
    ek_server_free(s);
    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)
        T(test_http_decode_pipelined),
        T(test_http_decode_split_at_every_byte),
        T(test_http_body_is_a_slice_of_the_read_buffer),
        T(test_http_malformed_and_oversized),
        T(test_http_encode_response),
        T(test_http_answers_queue_in_order),
        T(test_http_refused_response_keeps_its_request),
        T(test_http_upgrade_ignored),
        T(test_http_client_codec),
        T(test_http_server_keep_alive_pipelining_and_errors),
        T(test_http_client_over_the_server),
        T(test_http_client_chunked_and_eof_responses),
        T(test_http_client_streaming_request),
#undef T
    };
    if (getenv("EKT_FILTER")) cmocka_set_test_filter(getenv("EKT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
