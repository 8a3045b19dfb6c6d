/* fuzz_length.c - the length-delimited codec with options taken from the input's
 * first bytes (the maximum frame too, 16 bytes to 2 KiB, so that it is hit by
 * short inputs): every frame re-encodes (with the default header) and decodes back
 * to the same payload. */
#include "fuzz_common.h"

typedef struct {
    ek_codec *std; /* 4-byte big-endian header, the same maximum */
    ek_buf *out;
    size_t max;
} ctx_t;

static void frame(void *ctx, ek_codec *c, ek_msg *m)
{
    ctx_t *x = ctx;
    (void)c;
    const uint8_t *d;
    size_t n;
    FUZZ_CHECK(ek_msg_data(m, &d, &n) == EK_OK);
    FUZZ_CHECK(n <= x->max);
    FUZZ_CHECK(ek_buf_clear(x->out) == EK_OK);
    FUZZ_CHECK(ek_codec_encode(x->std, m, EK_CODEC_REQUEST, x->out) == EK_OK);
    FUZZ_CHECK((size_t)ek_buf_len(x->out) == n + 4);
    ek_msg *back = NULL;
    FUZZ_CHECK(ek_codec_decode(x->std, x->out, &back, NULL) == EK_OK);
    FUZZ_CHECK(ek_buf_len(x->out) == 0);
    const uint8_t *d2;
    size_t n2;
    FUZZ_CHECK(ek_msg_data(back, &d2, &n2) == EK_OK && n2 == n && memcmp(d, d2, n) == 0);
    ek_msg_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    static const size_t fields[] = {1, 2, 3, 4, 8};
    size_t offset = data[0] % 3, field = fields[data[1] % 5];
    int64_t adjust = (int8_t)data[2] % 8;
    int little = data[1] & 0x80;
    size_t skip = (data[0] & 0x80) ? EK_LENGTH_SKIP_DEFAULT : offset;
    ctx_t x = {.max = (size_t)16 << ((data[0] >> 4) & 7)};
    ek_codec *c;
    if (ek_codec_length_delimited(offset, field, adjust, skip, little, x.max, &c) != EK_OK)
        return 0;
    FUZZ_CHECK(ek_codec_length_delimited(0, 4, 0, EK_LENGTH_SKIP_DEFAULT, 0, x.max, &x.std) ==
               EK_OK);
    FUZZ_CHECK(ek_buf_new(0, &x.out) == EK_OK);
    fuzz_decode_all(c, data + 3, size - 3, &x, frame);
    ek_buf_free(x.out);
    ek_codec_free(x.std);
    ek_codec_free(c);
    return 0;
}
