/* fuzz_resp.c - the RESP codecs. Client side: every value decoded is encoded
 * (RESP3), decoded again and encoded again: the second encoding must equal the
 * first (a round trip to a canonical form). Server side: every request decoded is
 * an array of bulk strings, and encodes back into a multibulk that decodes to the
 * same arguments. The codecs of the second pass are made once per input: each
 * one must come back to its initial state after a whole frame. */
#include "fuzz_common.h"

typedef struct {
    ek_codec *again; /* client side, RESP3: decodes the first encoding */
    ek_codec *req;   /* client side, RESP2: encodes a request */
    ek_codec *sv;    /* server side: decodes that request */
    ek_buf *a, *b, *copy;
} ctx_t;

/* Encode m into out (cleared first): 1, or 0 for what cannot be written. */
static int encode(ek_codec *c, ek_msg *m, int what, ek_buf *out)
{
    FUZZ_CHECK(ek_buf_clear(out) == EK_OK);
    int rc = ek_codec_encode(c, m, what, out);
    /* a simple string or error holding CR/LF cannot be written; nothing else fails */
    FUZZ_CHECK(rc == EK_OK || rc == EK_EINVAL);
    return rc == EK_OK;
}

static void client_frame(void *ctx, ek_codec *c, ek_msg *m)
{
    ctx_t *x = ctx;
    if (!encode(c, m, EK_CODEC_RESPONSE, x->a)) return;
    FUZZ_CHECK(ek_buf_clear(x->copy) == EK_OK);
    FUZZ_CHECK(ek_buf_append(x->copy, ek_buf_data(x->a), (size_t)ek_buf_len(x->a)) == EK_OK);
    ek_msg *m2 = NULL;
    FUZZ_CHECK(ek_codec_decode(x->again, x->copy, &m2, NULL) == EK_OK);
    FUZZ_CHECK(ek_buf_len(x->copy) == 0);
    FUZZ_CHECK(encode(x->again, m2, EK_CODEC_RESPONSE, x->b));
    FUZZ_CHECK(fuzz_same(x->b, ek_buf_data(x->a), (size_t)ek_buf_len(x->a)));
    ek_msg_free(m2);
}

static void server_frame(void *ctx, ek_codec *c, ek_msg *m)
{
    ctx_t *x = ctx;
    (void)c;
    FUZZ_CHECK(ek_msg_resp_type(m) == EK_RESP_ARRAY);
    int64_t n = ek_msg_resp_len(m);
    FUZZ_CHECK(n >= 1);
    FUZZ_CHECK(encode(x->req, m, EK_CODEC_REQUEST, x->a));
    ek_msg *back = NULL;
    FUZZ_CHECK(ek_codec_decode(x->sv, x->a, &back, NULL) == EK_OK);
    FUZZ_CHECK(ek_buf_len(x->a) == 0);
    FUZZ_CHECK(ek_msg_resp_len(back) == n);
    for (int64_t i = 0; i < n; i++) {
        ek_msg *e, *f;
        const uint8_t *de, *df;
        size_t ne, nf;
        FUZZ_CHECK(ek_msg_resp_child(m, (size_t)i, &e) == EK_OK);
        FUZZ_CHECK(ek_msg_resp_child(back, (size_t)i, &f) == EK_OK);
        FUZZ_CHECK(ek_msg_data(e, &de, &ne) == EK_OK && ek_msg_data(f, &df, &nf) == EK_OK);
        FUZZ_CHECK(ne == nf && (ne == 0 || memcmp(de, df, ne) == 0));
    }
    ek_msg_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ctx_t x;
    FUZZ_CHECK(ek_codec_resp_client(3, &x.again) == EK_OK);
    FUZZ_CHECK(ek_codec_resp_client(2, &x.req) == EK_OK);
    FUZZ_CHECK(ek_codec_resp_server(&x.sv) == EK_OK);
    FUZZ_CHECK(ek_buf_new(0, &x.a) == EK_OK && ek_buf_new(0, &x.b) == EK_OK &&
               ek_buf_new(0, &x.copy) == EK_OK);
    ek_codec *c;
    FUZZ_CHECK(ek_codec_resp_client(3, &c) == EK_OK);
    fuzz_decode_all(c, data, size, &x, client_frame);
    ek_codec_free(c);
    FUZZ_CHECK(ek_codec_resp_server(&c) == EK_OK);
    fuzz_decode_all(c, data, size, &x, server_frame);
    ek_codec_free(c);
    ek_buf_free(x.a);
    ek_buf_free(x.b);
    ek_buf_free(x.copy);
    ek_codec_free(x.sv);
    ek_codec_free(x.req);
    ek_codec_free(x.again);
    return 0;
}
