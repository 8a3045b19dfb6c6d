/* fuzz_lines.c - the lines codec (max 64 bytes, so the limit is hit): every line
 * holds no LF, is at most 64 bytes, and encodes back to itself plus LF. */
#include "fuzz_common.h"

static void frame(ek_codec *c, ek_msg *m)
{
    const uint8_t *d;
    size_t n;
    FUZZ_CHECK(ek_msg_data(m, &d, &n) == EK_OK);
    FUZZ_CHECK(n <= 64 && memchr(d, '\n', n) == NULL);
    ek_buf *out;
    FUZZ_CHECK(ek_buf_new(0, &out) == EK_OK);
    FUZZ_CHECK(ek_codec_encode(c, m, EK_CODEC_RESPONSE, out) == EK_OK);
    FUZZ_CHECK((size_t)ek_buf_len(out) == n + 1 && memcmp(ek_buf_data(out), d, n) == 0);
    ek_buf_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ek_codec *c;
    FUZZ_CHECK(ek_codec_lines(64, &c) == EK_OK);
    fuzz_decode_all(c, data, size, frame);
    ek_codec_free(c);
    return 0;
}
