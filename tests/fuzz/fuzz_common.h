/* fuzz_common.h - shared by the codec fuzz targets: feed the input to a codec in
 * pieces (split where the first byte says), decode every frame, encode it, and
 * check what must hold for every input: no crash, no leak (ASan), exact
 * results (a frame, need more, or a corrupt error with a reason).
 *
 * Speed: a target runs the codec directly on memory (no runtime, no socket). The
 * codecs and scratch buffers a target needs are made once per input, not once
 * per frame, and buffers are cleared for reuse: an input is decoded frame by
 * frame, and most of a frame's cost would otherwise be allocator calls (each one
 * costly under ASan). */
#ifndef EK_FUZZ_COMMON_H
#define EK_FUZZ_COMMON_H

#include <ekiden.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A frame's bytes equal data[0..n). */
static inline int fuzz_same(ek_buf *b, const void *data, size_t n)
{
    return (size_t)ek_buf_len(b) == n && (n == 0 || memcmp(ek_buf_data(b), data, n) == 0);
}

/* Decode data with c, fed in two pieces; call each_frame(ctx, c, m) for every
 * frame. EK_ECLOSED from decode (a codec that ends the conversation itself, as
 * HTTP after a request that does not keep the connection) ends it too.
 * Returns the number of frames. */
static inline int fuzz_decode_all(ek_codec *c, const uint8_t *data, size_t size, void *ctx,
                                  void (*each_frame)(void *ctx, ek_codec *c, ek_msg *m))
{
    size_t split = size > 0 ? data[0] % (size + 1) : 0;
    ek_buf *in;
    FUZZ_CHECK(ek_buf_new(0, &in) == EK_OK);
    int frames = 0, rc = EK_PENDING;
    for (int piece = 0; piece < 2 && rc != EK_EPROTO && rc != EK_EMSGSIZE && rc != EK_ECLOSED;
         piece++) {
        const uint8_t *p = piece == 0 ? data : data + split;
        size_t n = piece == 0 ? split : size - split;
        FUZZ_CHECK(ek_buf_append(in, p, n) == EK_OK);
        for (;;) {
            ek_msg *m = NULL;
            const char *why = NULL;
            rc = ek_codec_decode(c, in, &m, &why);
            if (rc == EK_OK) {
                FUZZ_CHECK(m != NULL);
                frames++;
                each_frame(ctx, c, m);
                ek_msg_free(m);
                continue;
            }
            FUZZ_CHECK(m == NULL);
            FUZZ_CHECK(rc == EK_PENDING || rc == EK_EPROTO || rc == EK_EMSGSIZE ||
                       rc == EK_ECLOSED);
            if (rc == EK_EPROTO || rc == EK_EMSGSIZE) FUZZ_CHECK(why != NULL && why[0] != '\0');
            break;
        }
    }
    if (rc == EK_PENDING) {
        ek_msg *m = NULL;
        rc = ek_codec_decode_eof(c, in, &m, NULL);
        FUZZ_CHECK(rc == EK_OK || rc == EK_ECLOSED || rc == EK_EPROTO || rc == EK_EMSGSIZE);
        if (rc == EK_OK) {
            frames++;
            each_frame(ctx, c, m);
            ek_msg_free(m);
        }
    }
    ek_buf_free(in);
    return frames;
}

#endif
