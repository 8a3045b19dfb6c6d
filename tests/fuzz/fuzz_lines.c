/* fuzz_lines.c - the lines codec (max 64 bytes, so the limit is hit): every line
 * holds no LF, is at most 64 bytes, and encodes back to itself plus LF. */
#include "fuzz_common.h"

static void frame(void *ctx, ek_codec *c, ek_msg *m)
{
    ek_buf *out = ctx;
    const uint8_t *d;
    size_t n;
    FUZZ_CHECK(ek_msg_data(m, &d, &n) == EK_OK);
    FUZZ_CHECK(n <= 64 && memchr(d, '\n', n) == NULL);
    FUZZ_CHECK(ek_buf_clear(out) == EK_OK);
    FUZZ_CHECK(ek_codec_encode(c, m, EK_CODEC_RESPONSE, out) == EK_OK);
    FUZZ_CHECK((size_t)ek_buf_len(out) == n + 1 && memcmp(ek_buf_data(out), d, n) == 0);
    FUZZ_CHECK(ek_buf_data(out)[n] == '\n');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ek_codec *c;
    ek_buf *out;
    FUZZ_CHECK(ek_codec_lines(64, &c) == EK_OK);
    FUZZ_CHECK(ek_buf_new(0, &out) == EK_OK);
    fuzz_decode_all(c, data, size, out, frame);
    ek_buf_free(out);
    ek_codec_free(c);
    return 0;
}
