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

/* The bytes buf holds: ek_buf_len without its call and tag check, for a buffer
 * its caller made and knows to be valid (the framed server's connection reads
 * its own buffers' lengths 12 times per request). */
static inline size_t ek__buf_len(const ek_buf *buf)
{
    return buf->len;
}

/* A reference on c (held already through a buffer or slice). */
void ek__chunk_retain(ek__chunk *c);
/* Drop a reference (NULL ignored); the last one frees the chunk. */
void ek__chunk_release(ek__chunk *c);
/* Whether p points into c's bytes. */
bool ek__chunk_contains(const ek__chunk *c, const uint8_t *p);
/* A new handle over p[0..len) of c (taking a reference; c may be NULL when len
 * is 0). Errors: EK_ENOMEM. */
int ek__chunk_slice(ek__chunk *c, const uint8_t *p, size_t len, ek_bytes **out);
/* As ek_buf_split_to without a handle: the first n (> 0, <= held) bytes leave
 * the buffer and *chunk gets a new reference on the chunk that holds them (at
 * *data): what a decoder keeps when its message points into the frame. */
void ek__buf_split_chunk(ek_buf *buf, size_t n, ek__chunk **chunk, const uint8_t **data);

#endif
