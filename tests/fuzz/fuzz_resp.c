/* fuzz_resp.c - the RESP codecs. Client side: every value decoded is encoded
 * (RESP3), decoded again and encoded again: the second encoding must equal the
 * first (a round trip to a canonical form). Server side: every request decoded is
 * an array of bulk strings, and encodes back into a multibulk that decodes to the
 * same arguments. */
#include "fuzz_common.h"

static ek_buf *encode(ek_codec *c, ek_msg *m, int what)
{
    ek_buf *out;
    FUZZ_CHECK(ek_buf_new(0, &out) == EK_OK);
    int rc = ek_codec_encode(c, m, what, out);
    /* a simple string or error holding CR/LF cannot be written; nothing else fails */
    FUZZ_CHECK(rc == EK_OK || rc == EK_EINVAL);
    if (rc != EK_OK) {
        ek_buf_free(out);
        return NULL;
    }
    return out;
}

static void client_frame(ek_codec *c, ek_msg *m)
{
    ek_buf *a = encode(c, m, EK_CODEC_RESPONSE);
    if (a == NULL) return;
    ek_codec *c2;
    FUZZ_CHECK(ek_codec_resp_client(3, &c2) == EK_OK);
    ek_buf *copy;
    FUZZ_CHECK(ek_buf_new(0, &copy) == EK_OK);
    FUZZ_CHECK(ek_buf_append(copy, ek_buf_data(a), (size_t)ek_buf_len(a)) == EK_OK);
    ek_msg *m2 = NULL;
    int rc = ek_codec_decode(c2, copy, &m2, NULL);
    FUZZ_CHECK(rc == EK_OK);
    FUZZ_CHECK(ek_buf_len(copy) == 0);
    ek_buf *b = encode(c2, m2, EK_CODEC_RESPONSE);
    FUZZ_CHECK(b != NULL);
    FUZZ_CHECK(ek_buf_len(a) == ek_buf_len(b));
    FUZZ_CHECK(memcmp(ek_buf_data(a), ek_buf_data(b), (size_t)ek_buf_len(a)) == 0);
    ek_msg_free(m2);
    ek_buf_free(a);
    ek_buf_free(b);
    ek_buf_free(copy);
    ek_codec_free(c2);
}

static void server_frame(ek_codec *c, ek_msg *m)
{
    FUZZ_CHECK(ek_msg_resp_type(m) == EK_RESP_ARRAY);
    int64_t n = ek_msg_resp_len(m);
    FUZZ_CHECK(n >= 1);
    ek_codec *cl;
    FUZZ_CHECK(ek_codec_resp_client(2, &cl) == EK_OK);
    ek_buf *out = encode(cl, m, EK_CODEC_REQUEST);
    FUZZ_CHECK(out != NULL);
    ek_codec *sv;
    FUZZ_CHECK(ek_codec_resp_server(&sv) == EK_OK);
    ek_msg *back = NULL;
    FUZZ_CHECK(ek_codec_decode(sv, out, &back, NULL) == EK_OK);
    FUZZ_CHECK(ek_msg_resp_len(back) == n);
    for (int64_t i = 0; i < n; i++) {
        ek_msg *x, *y;
        const uint8_t *dx, *dy;
        size_t nx, ny;
        FUZZ_CHECK(ek_msg_resp_child(m, (size_t)i, &x) == EK_OK);
        FUZZ_CHECK(ek_msg_resp_child(back, (size_t)i, &y) == EK_OK);
        FUZZ_CHECK(ek_msg_data(x, &dx, &nx) == EK_OK && ek_msg_data(y, &dy, &ny) == EK_OK);
        FUZZ_CHECK(nx == ny && memcmp(dx, dy, nx) == 0);
    }
    ek_msg_free(back);
    ek_buf_free(out);
    ek_codec_free(sv);
    ek_codec_free(cl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ek_codec *c;
    FUZZ_CHECK(ek_codec_resp_client(3, &c) == EK_OK);
    fuzz_decode_all(c, data, size, client_frame);
    ek_codec_free(c);
    FUZZ_CHECK(ek_codec_resp_server(&c) == EK_OK);
    fuzz_decode_all(c, data, size, server_frame);
    ek_codec_free(c);
    return 0;
}
