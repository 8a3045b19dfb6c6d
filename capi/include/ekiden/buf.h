/*
 * ekiden/buf.h - byte buffers: ek_buf (growable, one owner) and ek_bytes
 * (immutable, reference-counted slices), as Rust's `bytes` crate. Included by
 * ekiden.h.
 *
 * The read side of a connection: a codec reserves space at the tail of an ek_buf,
 * the socket reads into it, ek_buf_advance commits what was read, and a decoded
 * frame is split off the front as an ek_bytes with ek_buf_split_to. The frame
 * points into the buffer's own memory: nothing is copied between the socket and
 * whoever reads the frame. Slices of a frame (ek_bytes_slice) share the same
 * memory too. The memory is freed when the buffer and the last slice into it are
 * gone, in any order.
 *
 * Hosts read bytes without a copy through ek_bytes_data and ek_bytes_len (a
 * pointer and a length, valid while the caller holds a reference).
 * Every function that consumes an ek_bytes (ek_msg_bytes_new, ...) takes that
 * reference in every case; clone first to keep one.
 *
 * Threads: an ek_buf is used by one thread at a time (it may move). An ek_bytes is
 * immutable and may be read, cloned and released from any thread at once; only
 * ek_bytes_split_to mutates a handle and needs the only reference.
 * Handles: NULL or a handle of another type gives EK_EINVAL; void functions ignore
 * NULL.
 */
#ifndef EKIDEN_BUF_H
#define EKIDEN_BUF_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ek_buf ek_buf;
typedef struct ek_bytes ek_bytes;

/* The largest buffer or slice length (so that lengths fit every host's size). */
#define EK_BUF_MAX ((size_t)1 << 40)

/* ---- ek_bytes: immutable reference-counted slices ---- */

/* A new slice holding a copy of data[0..len) (data may be NULL when len is 0).
 * Errors: EK_EINVAL (NULL out, NULL data with len > 0), EK_ERANGE (len >
 * EK_BUF_MAX), EK_ENOMEM. */
EK_EXTERN int ek_bytes_copy(const void *data, size_t len, ek_bytes **out);

/*
 * A slice over memory the caller owns, without a copy (for host objects: a
 * Python bytes object, a Lua string kept referenced). `drop(owner)` (may be NULL)
 * runs exactly once when the last slice into the memory is released, on the
 * thread that releases it; the memory must stay valid and unchanged until then.
 * On error drop(owner) has run. Errors: EK_EINVAL, EK_ERANGE, EK_ENOMEM.
 */
EK_EXTERN int ek_bytes_wrap(const void *data, size_t len, ek_drop_fn drop, void *owner,
                            ek_bytes **out);

/* The first byte (never NULL for a valid handle, even when the length is 0);
 * NULL for a bad handle. Valid while the caller holds a reference. */
EK_EXTERN const uint8_t *ek_bytes_data(const ek_bytes *b);
/* The length, or EK_EINVAL for a bad handle. */
EK_EXTERN int64_t ek_bytes_len(const ek_bytes *b);

/* Another reference to the same slice: *out = b (an atomic increment, no
 * allocation; release each reference with ek_bytes_release).
 * Errors: EK_EINVAL. */
EK_EXTERN int ek_bytes_clone(ek_bytes *b, ek_bytes **out);
/* Release one reference. NULL ignored. */
EK_EXTERN void ek_bytes_release(ek_bytes *b);

/* A new slice b[off..off+len) sharing b's memory (no copy). b is unchanged.
 * Errors: EK_EINVAL, EK_ERANGE (off + len beyond b), EK_ENOMEM. */
EK_EXTERN int ek_bytes_slice(ek_bytes *b, size_t off, size_t len, ek_bytes **out);

/*
 * Split b at `at`: *front gets b[0..at) (a new slice, no copy) and b becomes
 * b[at..). b must be the only reference to its handle (others see it immutable).
 * Errors: EK_EINVAL, EK_ERANGE (at > length), EK_EBUSY (b is cloned
 * elsewhere: use ek_bytes_slice), EK_ENOMEM (b unchanged).
 */
EK_EXTERN int ek_bytes_split_to(ek_bytes *b, size_t at, ek_bytes **front);

/* 1 if a and b hold the same bytes, 0 if not, EK_EINVAL. */
EK_EXTERN int ek_bytes_equal(const ek_bytes *a, const ek_bytes *b);

/* ---- ek_buf: a growable buffer with a read side and a write side ---- */

/* A new empty buffer with room for `capacity` bytes (0: allocate on first use).
 * Errors: EK_EINVAL, EK_ERANGE (capacity > EK_BUF_MAX), EK_ENOMEM. */
EK_EXTERN int ek_buf_new(size_t capacity, ek_buf **out);
/* Free the buffer; slices split from it stay valid. NULL ignored. */
EK_EXTERN void ek_buf_free(ek_buf *buf);

/* The bytes held (written and not yet split off or discarded), and their number.
 * The pointer is valid until the next call that changes the buffer; NULL for a bad
 * handle (and possibly for an empty buffer that never allocated). */
EK_EXTERN const uint8_t *ek_buf_data(const ek_buf *buf);
EK_EXTERN int64_t ek_buf_len(const ek_buf *buf);
/* Bytes writable at the tail without growing, or EK_EINVAL. */
EK_EXTERN int64_t ek_buf_spare(const ek_buf *buf);

/*
 * Make room for at least `additional` bytes at the tail and return it: *tail (may
 * be NULL) gets the first writable byte, *avail (may be NULL) how many bytes may
 * be written there (>= additional). Write into it (a socket read), then commit
 * with ek_buf_advance. Growing reuses the memory when no slice shares it (moving
 * the held bytes to the front); when slices do, the held bytes move to new memory
 * and the slices keep the old. The pointer is valid until the next call that
 * changes the buffer. Errors: EK_EINVAL, EK_ERANGE (would exceed EK_BUF_MAX),
 * EK_ENOMEM (buffer unchanged).
 */
EK_EXTERN int ek_buf_reserve(ek_buf *buf, size_t additional, uint8_t **tail, size_t *avail);

/* Commit n bytes written at the tail (after ek_buf_reserve): they join the held
 * bytes. Errors: EK_EINVAL, EK_ERANGE (n > ek_buf_spare). */
EK_EXTERN int ek_buf_advance(ek_buf *buf, size_t n);

/* Append a copy of data[0..len) (what encoders do). Errors: EK_EINVAL,
 * EK_ERANGE, EK_ENOMEM (buffer unchanged). */
EK_EXTERN int ek_buf_append(ek_buf *buf, const void *data, size_t len);

/*
 * Split the first n held bytes off as a frozen slice (no copy): *out gets them,
 * the buffer keeps the rest. Errors: EK_EINVAL, EK_ERANGE (n > ek_buf_len),
 * EK_ENOMEM (buffer unchanged).
 */
EK_EXTERN int ek_buf_split_to(ek_buf *buf, size_t n, ek_bytes **out);
/* Freeze every held byte into *out (no copy); the buffer is then empty and stays
 * usable. As ek_buf_split_to(buf, ek_buf_len(buf), out). */
EK_EXTERN int ek_buf_freeze(ek_buf *buf, ek_bytes **out);
/* Discard the first n held bytes. Errors: EK_EINVAL, EK_ERANGE (n > length). */
EK_EXTERN int ek_buf_discard(ek_buf *buf, size_t n);
/* Discard every held byte (memory is kept for reuse). Errors: EK_EINVAL. */
EK_EXTERN int ek_buf_clear(ek_buf *buf);

#ifdef __cplusplus
}
#endif

#endif
