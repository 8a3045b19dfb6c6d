/* fuzz_http.c - the HTTP/1.x server codec (on llhttp; a 512-byte head and a
 * 1 KiB body limit, so the limits are hit). For every decoded request:
 * - its fields hold what the codec promises (a method, version 10 or 11, named
 *   headers, a body within the limit);
 * - round trip: the client codec encodes it again, a second server codec
 *   decodes that (both made once per input), and the two requests agree (method, target, version,
 * keep-alive, body, the headers other than Content-Length, Transfer-Encoding and Connection, which
 *   the encoder writes itself);
 * - the server codec encodes a response to it (the request's headers copied, its
 *   body echoed) and the client codec decodes that response back: status and
 *   body agree (a HEAD response has no body). */
#include "fuzz_common.h"

#define MAX_HEAD 512
#define MAX_BODY 1024

static int framing_header(const char *name, size_t n)
{
    static const char *const names[] = {"content-length", "transfer-encoding", "connection"};
    for (size_t k = 0; k < 3; k++) {
        if (strlen(names[k]) != n) continue;
        size_t i = 0;
        while (i < n && (name[i] | 0x20) == names[k][i]) i++;
        if (i == n) return 1;
    }
    return 0;
}

/* Header i of m, skipping the framing ones: 1 if there is one. */
static int nth_header(const ek_msg *m, size_t nth, const char **name, size_t *nlen,
                      const char **value, size_t *vlen)
{
    int64_t count = ek_msg_http_header_count(m);
    for (int64_t i = 0; i < count; i++) {
        FUZZ_CHECK(ek_msg_http_header(m, (size_t)i, name, nlen, value, vlen) == EK_OK);
        if (framing_header(*name, *nlen)) continue;
        if (nth-- == 0) return 1;
    }
    return 0;
}

static void same_request(const ek_msg *a, const ek_msg *b)
{
    const char *s, *t;
    size_t n, k;
    FUZZ_CHECK(ek_msg_http_method(a, &s, &n) == EK_OK && ek_msg_http_method(b, &t, &k) == EK_OK);
    FUZZ_CHECK(n == k && memcmp(s, t, n) == 0);
    FUZZ_CHECK(ek_msg_http_target(a, &s, &n) == EK_OK && ek_msg_http_target(b, &t, &k) == EK_OK);
    FUZZ_CHECK(n == k && memcmp(s, t, n) == 0);
    FUZZ_CHECK(ek_msg_http_version(a) == ek_msg_http_version(b));
    FUZZ_CHECK(ek_msg_http_keep_alive(a) == ek_msg_http_keep_alive(b));
    const uint8_t *x, *y;
    FUZZ_CHECK(ek_msg_data(a, &x, &n) == EK_OK && ek_msg_data(b, &y, &k) == EK_OK);
    FUZZ_CHECK(n == k && (n == 0 || memcmp(x, y, n) == 0));
    for (size_t i = 0;; i++) {
        const char *an, *av, *bn, *bv;
        size_t anl, avl, bnl, bvl;
        int ha = nth_header(a, i, &an, &anl, &av, &avl),
            hb = nth_header(b, i, &bn, &bnl, &bv, &bvl);
        FUZZ_CHECK(ha == hb);
        if (!ha) break;
        FUZZ_CHECK(anl == bnl && memcmp(an, bn, anl) == 0);
        FUZZ_CHECK(avl == bvl && (avl == 0 || memcmp(av, bv, avl) == 0));
    }
}

/* Decode exactly one message from bytes with codec c. */
static ek_msg *decode_one(ek_codec *c, ek_buf *bytes)
{
    ek_msg *m = NULL;
    const char *why = NULL;
    int rc = ek_codec_decode(c, bytes, &m, &why);
    if (rc == EK_PENDING) rc = ek_codec_decode_eof(c, bytes, &m, &why);
    if (rc != EK_OK) fprintf(stderr, "round trip: %d %s\n", rc, why ? why : "");
    FUZZ_CHECK(rc == EK_OK && m != NULL);
    return m;
}

typedef struct ctx {
    ek_codec *client, *server; /* the round trip's codecs, made once per input */
    ek_buf *wire, *out;
} ctx;

static void frame(void *arg, ek_codec *c, ek_msg *m)
{
    ctx *x = arg;
    FUZZ_CHECK(ek_msg_kind(m) == EK_MSG_HTTP_REQUEST);
    const char *method;
    size_t mlen;
    FUZZ_CHECK(ek_msg_http_method(m, &method, &mlen) == EK_OK && mlen > 0);
    int version = ek_msg_http_version(m);
    FUZZ_CHECK(version == 10 || version == 11);
    const uint8_t *body;
    size_t blen;
    FUZZ_CHECK(ek_msg_data(m, &body, &blen) == EK_OK && blen <= MAX_BODY);

    /* the request again, through the client codec and a fresh server codec */
    ek_codec *client = x->client, *server = x->server;
    ek_buf *wire = x->wire;
    FUZZ_CHECK(ek_codec_encode(client, m, EK_CODEC_REQUEST, wire) == EK_OK);
    ek_msg *again = decode_one(server, wire);
    same_request(m, again);
    FUZZ_CHECK(ek_buf_len(wire) == 0);

    /* a response to it: the request's headers, its body */
    ek_msg *resp;
    FUZZ_CHECK(ek_msg_http_response(200, NULL, 0, 11, &resp) == EK_OK);
    int64_t count = ek_msg_http_header_count(m);
    for (int64_t i = 0; i < count; i++) {
        const char *n, *v;
        size_t nl, vl;
        FUZZ_CHECK(ek_msg_http_header(m, (size_t)i, &n, &nl, &v, &vl) == EK_OK);
        FUZZ_CHECK(ek_msg_http_add_header(resp, n, nl, v, vl) == EK_OK);
    }
    FUZZ_CHECK(ek_msg_http_set_body_copy(resp, body, blen) == EK_OK);
    FUZZ_CHECK(ek_codec_encode(server, resp, EK_CODEC_RESPONSE, wire) == EK_OK);
    FUZZ_CHECK(ek_buf_len(wire) > 0);
    FUZZ_CHECK(memcmp(ek_buf_data(wire),
                      version == 10 ? "HTTP/1.0 200 OK\r\n" : "HTTP/1.1 200 OK\r\n", 17) == 0);
    ek_msg *back = decode_one(client, wire);
    FUZZ_CHECK(ek_msg_http_status(back) == 200);
    const uint8_t *rb;
    size_t rlen;
    FUZZ_CHECK(ek_msg_data(back, &rb, &rlen) == EK_OK);
    int head = mlen == 4 && memcmp(method, "HEAD", 4) == 0;
    FUZZ_CHECK(rlen == (head ? 0 : blen) && (rlen == 0 || memcmp(rb, body, rlen) == 0));
    ek_msg_free(back);
    ek_msg_free(resp);
    ek_msg_free(again);
    FUZZ_CHECK(ek_buf_len(wire) == 0);

    /* the fuzzed codec answers too (its own FIFO of requests) */
    ek_msg *r2;
    FUZZ_CHECK(ek_msg_http_response(204, NULL, 0, 11, &r2) == EK_OK);
    FUZZ_CHECK(ek_buf_clear(x->out) == EK_OK);
    FUZZ_CHECK(ek_codec_encode(c, r2, EK_CODEC_RESPONSE, x->out) == EK_OK);
    ek_msg_free(r2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ek_codec *c;
    FUZZ_CHECK(ek_codec_http_server(MAX_HEAD, MAX_BODY, EK_HTTP_DATE, &c) == EK_OK);
    ctx x;
    FUZZ_CHECK(ek_codec_http_client(MAX_HEAD * 4, MAX_BODY, 0, &x.client) == EK_OK);
    FUZZ_CHECK(ek_codec_http_server(MAX_HEAD * 4, MAX_BODY, 0, &x.server) == EK_OK);
    FUZZ_CHECK(ek_buf_new(0, &x.wire) == EK_OK);
    FUZZ_CHECK(ek_buf_new(0, &x.out) == EK_OK);
    fuzz_decode_all(c, data, size, &x, frame);
    /* whatever happened, the error reply can be written */
    FUZZ_CHECK(ek_buf_clear(x.out) == EK_OK);
    FUZZ_CHECK(ek_codec_encode_error(c, EK_EPROTO, "fuzz", x.out) == EK_OK);
    ek_buf_free(x.out);
    ek_buf_free(x.wire);
    ek_codec_free(x.client);
    ek_codec_free(x.server);
    ek_codec_free(c);
    return 0;
}
