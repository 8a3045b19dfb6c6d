/*
 * buf.h - internals of ek_buf and ek_bytes shared with the codecs and messages.
 *
 * Memory lives in chunks: {refs, cap, data}. The ek_buf that allocated a chunk
 * holds one reference; each ek_bytes handle into it holds one more. A chunk with
 * one reference held by its buffer is the buffer's alone: it may be moved and
 * grown in place. Otherwise the bytes before the buffer's read position belong
 * to slices (immutable) and only the tail past the held bytes may be written.
 */
#ifndef EK_CORE_BUF_BUF_H
#define EK_CORE_BUF_BUF_H

#include "../common.h"

#define EK__TAG_BUF   0x454b4246u /* "EKBF" */
#define EK__TAG_BYTES 0x454b4259u /* "EKBY" */

typedef struct ek__chunk {
    atomic_size_t refs;
    size_t cap;
    uint8_t *data; /* inline bytes below, or memory a host owns */
    ek_drop_fn drop;
    void *owner;
    _Alignas(16) uint8_t bytes[];
} ek__chunk;

struct ek_bytes {
    uint32_t tag; /* EK__TAG_BYTES */
    atomic_uint refs;
    ek__chunk *chunk; /* NULL for an empty slice */
    const uint8_t *ptr;
    size_t len;
};

struct ek_buf {
    uint32_t tag; /* EK__TAG_BUF */
    ek__chunk *chunk;
    size_t start; /* read position in chunk->data */
    size_t len;   /* held bytes from start */
};

#endif
