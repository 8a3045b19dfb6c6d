/* fuzz_length.c - the length-delimited codec with options taken from the input's
 * first bytes: every frame re-encodes (with the default header) and decodes back
 * to the same payload. */
#include "fuzz_common.h"

static void frame(ek_codec *c, ek_msg *m)
{
    const uint8_t *d;
    size_t n;
    FUZZ_CHECK(ek_msg_data(m, &d, &n) == EK_OK);
    FUZZ_CHECK(n <= 4096);
    ek_codec *std;
    FUZZ_CHECK(ek_codec_length_delimited(0, 4, 0, EK_LENGTH_SKIP_DEFAULT, 0, 4096, &std) == EK_OK);
    ek_buf *out;
    FUZZ_CHECK(ek_buf_new(0, &out) == EK_OK);
    FUZZ_CHECK(ek_codec_encode(std, m, EK_CODEC_REQUEST, out) == EK_OK);
    ek_msg *back = NULL;
    FUZZ_CHECK(ek_codec_decode(std, out, &back, NULL) == EK_OK);
    const uint8_t *d2;
    size_t n2;
    FUZZ_CHECK(ek_msg_data(back, &d2, &n2) == EK_OK && n2 == n && memcmp(d, d2, n) == 0);
    ek_msg_free(back);
    ek_buf_free(out);
    ek_codec_free(std);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    static const size_t fields[] = {1, 2, 3, 4, 8};
    size_t offset = data[0] % 3, field = fields[data[1] % 5];
    int64_t adjust = (int8_t)data[2] % 8;
    int little = data[1] & 0x80;
    size_t skip = (data[0] & 0x80) ? EK_LENGTH_SKIP_DEFAULT : offset;
    ek_codec *c;
    if (ek_codec_length_delimited(offset, field, adjust, skip, little, 4096, &c) != EK_OK) return 0;
    fuzz_decode_all(c, data + 3, size - 3, frame);
    ek_codec_free(c);
    return 0;
}
