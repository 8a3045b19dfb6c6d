/*
 * buf.c - ek_buf and ek_bytes (rules in ekiden/buf.h, layout in buf.h).
 *
 * Reference counts: chunk and handle counts are incremented relaxed (a new
 * reference is made from one already held, which orders it) and decremented
 * with acq_rel: release publishes this holder's accesses, acquire (in the one
 * that drops the last) orders them all before the free. (A release decrement
 * plus an acquire fence would do, but TSan does not model fences.)
 */
#include "buf.h"

/* What an empty slice points at: a valid address that is never written. */
static const uint8_t empty_byte;

/* A chunk of a small payload's copy (a reply's bytes) is a block of the
 * thread's cache (common.h) with all of its room as cap: the free side knows
 * one by its size (chunk_cached; a buffer's chunk realloc'd to that size is as
 * good a block). */
#define EK__CHUNK_CACHED_CAP (EK__CACHE_MSG_SIZE - sizeof(ek__chunk))

static bool chunk_cached(const ek__chunk *c)
{
    return c->cap == EK__CHUNK_CACHED_CAP && c->data == c->bytes;
}

/* A chunk of cap bytes; `cache`: a small one (a payload's copy) comes from the
 * thread's cache with all of the block's room (a buffer's chunk keeps the
 * capacity asked for). */
static ek__chunk *chunk_make(size_t cap, bool cache)
{
    bool cached = cache && cap > 0 && cap <= EK__CHUNK_CACHED_CAP;
    if (cached) cap = EK__CHUNK_CACHED_CAP;
    ek__chunk *c = cached ? ek__cache_alloc(EK__CACHE_MSG) : ek__malloc(sizeof *c + cap);
    if (c == NULL) return NULL;
    atomic_init(&c->refs, 1);
    c->cap = cap;
    c->data = c->bytes;
    c->drop = NULL;
    c->owner = NULL;
    return c;
}

static ek__chunk *chunk_new(size_t cap)
{
    return chunk_make(cap, false);
}

static void chunk_retain(ek__chunk *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

static void chunk_release(ek__chunk *c)
{
    if (c == NULL) return;
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1) return;
    if (c->drop) c->drop(c->owner);
    if (chunk_cached(c))
        ek__cache_free(EK__CACHE_MSG, c); /* (a realloc to this size is as good) */
    else
        ek__free(c);
}

void ek__chunk_retain(ek__chunk *c)
{
    chunk_retain(c);
}

void ek__chunk_release(ek__chunk *c)
{
    chunk_release(c);
}

bool ek__chunk_contains(const ek__chunk *c, const uint8_t *p)
{
    return (uintptr_t)p >= (uintptr_t)c->data && (uintptr_t)p - (uintptr_t)c->data < c->cap;
}

static bool chunk_unique(ek__chunk *c)
{
    /* Acquire pairs with the release of the slice that dropped its reference last:
     * its reads of the memory happen before we move or overwrite it. */
    return atomic_load_explicit(&c->refs, memory_order_acquire) == 1;
}

/* A handle over c[ptr..ptr+len), taking a new reference on c (may be NULL). */
static ek_bytes *bytes_new(ek__chunk *c, const uint8_t *ptr, size_t len)
{
    _Static_assert(sizeof(ek_bytes) <= EK__CACHE_SMALL_SIZE, "a handle fits a cached block");
    ek_bytes *b = ek__cache_alloc(EK__CACHE_SMALL);
    if (b == NULL) return NULL;
    b->tag = EK__TAG_BYTES;
    atomic_init(&b->refs, 1);
    b->chunk = len > 0 ? c : NULL;
    b->ptr = len > 0 ? ptr : &empty_byte;
    b->len = len;
    if (b->chunk) chunk_retain(b->chunk);
    return b;
}

int ek__chunk_slice(ek__chunk *c, const uint8_t *p, size_t len, ek_bytes **out)
{
    ek_bytes *b = bytes_new(c, p, len);
    if (b == NULL) return EK_ENOMEM;
    *out = b;
    return EK_OK;
}

/* ---- ek_bytes ---- */

int ek_bytes_copy(const void *data, size_t len, ek_bytes **out)
{
    if (out == NULL || (data == NULL && len > 0)) return EK_EINVAL;
    if (len > EK_BUF_MAX) return EK_ERANGE;
    if (len == 0) {
        *out = bytes_new(NULL, NULL, 0);
        return *out ? EK_OK : EK_ENOMEM;
    }
    ek__chunk *c = chunk_make(len, true);
    if (c == NULL) return EK_ENOMEM;
    memcpy(c->data, data, len);
    ek_bytes *b = bytes_new(c, c->data, len);
    chunk_release(c); /* the handle holds the only reference now (or none on failure) */
    if (b == NULL) return EK_ENOMEM;
    *out = b;
    return EK_OK;
}

int ek_bytes_wrap(const void *data, size_t len, ek_drop_fn drop, void *owner, ek_bytes **out)
{
    int rc = EK_OK;
    if (out == NULL || (data == NULL && len > 0))
        rc = EK_EINVAL;
    else if (len > EK_BUF_MAX)
        rc = EK_ERANGE;
    ek__chunk *c = rc == EK_OK ? chunk_new(0) : NULL;
    if (rc == EK_OK && c == NULL) rc = EK_ENOMEM;
    if (rc != EK_OK) {
        if (drop) drop(owner);
        return rc;
    }
    c->cap = len;
    c->data = (uint8_t *)(uintptr_t)data;
    c->drop = drop;
    c->owner = owner;
    /* An empty wrap still owns the host object: keep the chunk on the handle. */
    ek_bytes *b = bytes_new(c, c->data, len);
    if (b && len == 0) {
        b->chunk = c;
        chunk_retain(c);
    }
    chunk_release(c); /* on failure this runs drop(owner) */
    if (b == NULL) return EK_ENOMEM;
    *out = b;
    return EK_OK;
}

const uint8_t *ek_bytes_data(const ek_bytes *b)
{
    return EK__CHECK_TAG(b, EK__TAG_BYTES) ? b->ptr : NULL;
}

int64_t ek_bytes_len(const ek_bytes *b)
{
    return EK__CHECK_TAG(b, EK__TAG_BYTES) ? (int64_t)b->len : EK_EINVAL;
}

int ek_bytes_clone(ek_bytes *b, ek_bytes **out)
{
    if (!EK__CHECK_TAG(b, EK__TAG_BYTES) || out == NULL) return EK_EINVAL;
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    *out = b;
    return EK_OK;
}

void ek_bytes_release(ek_bytes *b)
{
    if (!EK__CHECK_TAG(b, EK__TAG_BYTES)) return;
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return;
    chunk_release(b->chunk);
    b->tag = EK__TAG_DEAD;
    ek__cache_free(EK__CACHE_SMALL, b);
}

int ek_bytes_slice(ek_bytes *b, size_t off, size_t len, ek_bytes **out)
{
    if (!EK__CHECK_TAG(b, EK__TAG_BYTES) || out == NULL) return EK_EINVAL;
    if (off > b->len || len > b->len - off) return EK_ERANGE;
    ek_bytes *s = bytes_new(b->chunk, b->ptr + off, len);
    if (s == NULL) return EK_ENOMEM;
    *out = s;
    return EK_OK;
}

int ek_bytes_split_to(ek_bytes *b, size_t at, ek_bytes **front)
{
    if (!EK__CHECK_TAG(b, EK__TAG_BYTES) || front == NULL) return EK_EINVAL;
    if (at > b->len) return EK_ERANGE;
    if (atomic_load_explicit(&b->refs, memory_order_acquire) != 1) return EK_EBUSY;
    ek_bytes *f = bytes_new(b->chunk, b->ptr, at);
    if (f == NULL) return EK_ENOMEM;
    b->ptr += at;
    b->len -= at;
    if (b->len == 0) {
        /* Keep a host-owned chunk referenced by nothing but slices of bytes. */
        chunk_release(b->chunk);
        b->chunk = NULL;
        b->ptr = &empty_byte;
    }
    *front = f;
    return EK_OK;
}

int ek_bytes_equal(const ek_bytes *a, const ek_bytes *b)
{
    if (!EK__CHECK_TAG(a, EK__TAG_BYTES) || !EK__CHECK_TAG(b, EK__TAG_BYTES)) return EK_EINVAL;
    return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

/* ---- ek_buf ---- */

int ek_buf_new(size_t capacity, ek_buf **out)
{
    if (out == NULL) return EK_EINVAL;
    if (capacity > EK_BUF_MAX) return EK_ERANGE;
    ek_buf *buf = ek__calloc(1, sizeof *buf);
    if (buf == NULL) return EK_ENOMEM;
    buf->tag = EK__TAG_BUF;
    if (capacity > 0) {
        buf->chunk = chunk_new(capacity);
        if (buf->chunk == NULL) {
            ek__free(buf);
            return EK_ENOMEM;
        }
    }
    *out = buf;
    return EK_OK;
}

void ek_buf_free(ek_buf *buf)
{
    if (!EK__CHECK_TAG(buf, EK__TAG_BUF)) return;
    chunk_release(buf->chunk);
    buf->tag = EK__TAG_DEAD;
    ek__free(buf);
}

const uint8_t *ek_buf_data(const ek_buf *buf)
{
    if (!EK__CHECK_TAG(buf, EK__TAG_BUF)) return NULL;
    return buf->chunk ? buf->chunk->data + buf->start : NULL;
}

int64_t ek_buf_len(const ek_buf *buf)
{
    return EK__CHECK_TAG(buf, EK__TAG_BUF) ? (int64_t)buf->len : EK_EINVAL;
}

static size_t buf_spare(const ek_buf *buf)
{
    return buf->chunk ? buf->chunk->cap - buf->start - buf->len : 0;
}

int64_t ek_buf_spare(const ek_buf *buf)
{
    if (!EK__CHECK_TAG(buf, EK__TAG_BUF)) return EK_EINVAL;
    return (int64_t)buf_spare(buf);
}

int ek_buf_reserve(ek_buf *buf, size_t additional, uint8_t **tail, size_t *avail)
{
    if (!EK__CHECK_TAG(buf, EK__TAG_BUF)) return EK_EINVAL;
    if (additional > EK_BUF_MAX - buf->len) return EK_ERANGE;
    size_t need = buf->len + additional;
    ek__chunk *c = buf->chunk;
    if (c == NULL || c->cap - buf->start - buf->len < additional) {
        bool unique = c != NULL && chunk_unique(c);
        if (unique && c->cap >= need && buf->len <= buf->start) {
            /* Enough room once the held bytes move to the front (cheap: they
             * are no longer than the gap, as BytesMut's reclaim rule). */
            memcpy(c->data, c->data + buf->start, buf->len);
            buf->start = 0;
        } else {
            size_t cap = c ? c->cap : 0;
            cap = cap > EK_BUF_MAX / 2 ? EK_BUF_MAX : cap * 2;
            if (cap < need) cap = need;
            if (cap < 64) cap = 64;
            if (unique) {
                memmove(c->data, c->data + buf->start, buf->len);
                buf->start = 0;
                ek__chunk *n = ek__realloc(c, sizeof *c + cap);
                if (n == NULL) return EK_ENOMEM;
                n->data = n->bytes;
                n->cap = cap;
                buf->chunk = n;
            } else {
                ek__chunk *n = chunk_new(cap);
                if (n == NULL) return EK_ENOMEM;
                if (buf->len > 0) memcpy(n->data, c->data + buf->start, buf->len);
                chunk_release(c);
                buf->chunk = n;
                buf->start = 0;
            }
        }
    }
    c = buf->chunk;
    if (tail) *tail = c->data + buf->start + buf->len;
    if (avail) *avail = c->cap - buf->start - buf->len;
    return EK_OK;
}

int ek_buf_advance(ek_buf *buf, size_t n)
{
    if (!EK__CHECK_TAG(buf, EK__TAG_BUF)) return EK_EINVAL;
    if (n > buf_spare(buf)) return EK_ERANGE;
    buf->len += n;
    return EK_OK;
}

int ek_buf_append(ek_buf *buf, const void *data, size_t len)
{
    if (!EK__CHECK_TAG(buf, EK__TAG_BUF) || (data == NULL && len > 0)) return EK_EINVAL;
    if (len == 0) return EK_OK;
    uint8_t *tail;
    int rc = ek_buf_reserve(buf, len, &tail, NULL);
    if (rc != EK_OK) return rc;
    memcpy(tail, data, len);
    buf->len += len;
    return EK_OK;
}

int ek_buf_split_to(ek_buf *buf, size_t n, ek_bytes **out)
{
    if (!EK__CHECK_TAG(buf, EK__TAG_BUF) || out == NULL) return EK_EINVAL;
    if (n > buf->len) return EK_ERANGE;
    ek_bytes *b = bytes_new(buf->chunk, buf->chunk ? buf->chunk->data + buf->start : NULL, n);
    if (b == NULL) return EK_ENOMEM;
    buf->start += n;
    buf->len -= n;
    if (buf->len == 0 && buf->chunk && chunk_unique(buf->chunk)) buf->start = 0;
    *out = b;
    return EK_OK;
}

void ek__buf_split_chunk(ek_buf *buf, size_t n, ek__chunk **chunk, const uint8_t **data)
{
    *chunk = buf->chunk;
    *data = buf->chunk->data + buf->start;
    chunk_retain(buf->chunk);
    buf->start += n;
    buf->len -= n;
    /* Not unique now (the caller holds a reference): the start stays. */
}

int ek_buf_freeze(ek_buf *buf, ek_bytes **out)
{
    if (!EK__CHECK_TAG(buf, EK__TAG_BUF)) return EK_EINVAL;
    return ek_buf_split_to(buf, buf->len, out);
}

int ek_buf_discard(ek_buf *buf, size_t n)
{
    if (!EK__CHECK_TAG(buf, EK__TAG_BUF)) return EK_EINVAL;
    if (n > buf->len) return EK_ERANGE;
    buf->start += n;
    buf->len -= n;
    if (buf->len == 0 && buf->chunk && chunk_unique(buf->chunk)) buf->start = 0;
    return EK_OK;
}

int ek_buf_clear(ek_buf *buf)
{
    if (!EK__CHECK_TAG(buf, EK__TAG_BUF)) return EK_EINVAL;
    return ek_buf_discard(buf, buf->len);
}
