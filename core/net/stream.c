/*
 * stream.c - ek_stream: a byte stream over a vtable, with the TCP and Unix
 * stream sockets as built-in implementations. The handle checks arguments and
 * the closed flag once, here, so an implementation only does the I/O.
 */
#include "../common.h"

#include <stdatomic.h>

#define EK__TAG_STREAM 0x454b5354u /* "EKST" */
#define EK__IOV_MAX    1024

struct ek_stream {
    uint32_t tag; /* EK__TAG_STREAM */
    atomic_int closed;
    ek_stream_vtable vt;
    void *self;
};

static int ek__stream_check(const ek_stream *s)
{
    if (!EK__CHECK_TAG(s, EK__TAG_STREAM)) return EK_EINVAL;
    return atomic_load_explicit(&s->closed, memory_order_acquire) ? EK_ECLOSED : EK_OK;
}

int ek_stream_new(const ek_stream_vtable *vt, void *self, ek_stream **out)
{
    if (vt == NULL || vt->read == NULL || vt->write == NULL || vt->drop == NULL || out == NULL) {
        if (vt != NULL && vt->drop != NULL) vt->drop(self);
        return EK_EINVAL;
    }
    ek_stream *s = ek__malloc(sizeof *s);
    if (s == NULL) {
        vt->drop(self);
        return EK_ENOMEM;
    }
    s->tag = EK__TAG_STREAM;
    atomic_init(&s->closed, 0);
    s->vt = *vt;
    s->self = self;
    *out = s;
    return EK_OK;
}

/* ---- the socket streams: TCP and Unix have the same operations ---- */

/* Adapters from the vtable's `void *self` to one socket type's functions, and
 * that type's vtable, ek__<kind>_vtable. */
#define EK__SOCKET_STREAM(kind, type)                                                              \
    static int ek__##kind##_read(void *self, ek_cx *cx, void *buf, size_t len, size_t *n)          \
    {                                                                                              \
        return ek_##kind##_read((type *)self, cx, buf, len, n);                                    \
    }                                                                                              \
    static int ek__##kind##_write(void *self, ek_cx *cx, const void *buf, size_t len, size_t *n)   \
    {                                                                                              \
        return ek_##kind##_write((type *)self, cx, buf, len, n);                                   \
    }                                                                                              \
    static int ek__##kind##_writev(void *self, ek_cx *cx, const void *const *bufs,                 \
                                   const size_t *lens, size_t count, size_t *n)                    \
    {                                                                                              \
        return ek_##kind##_writev((type *)self, cx, bufs, lens, count, n);                         \
    }                                                                                              \
    static int ek__##kind##_shutdown(void *self)                                                   \
    {                                                                                              \
        return ek_##kind##_shutdown((type *)self);                                                 \
    }                                                                                              \
    static int ek__##kind##_close(void *self)                                                      \
    {                                                                                              \
        return ek_##kind##_close((type *)self);                                                    \
    }                                                                                              \
    static int ek__##kind##_peer(void *self, ek_sockaddr *out)                                     \
    {                                                                                              \
        return ek_##kind##_peer_addr((type *)self, out);                                           \
    }                                                                                              \
    static int ek__##kind##_local(void *self, ek_sockaddr *out)                                    \
    {                                                                                              \
        return ek_##kind##_local_addr((type *)self, out);                                          \
    }                                                                                              \
    static void ek__##kind##_drop(void *self)                                                      \
    {                                                                                              \
        ek_##kind##_free((type *)self);                                                            \
    }                                                                                              \
    static const ek_stream_vtable ek__##kind##_vtable = {                                          \
        .read = ek__##kind##_read,                                                                 \
        .write = ek__##kind##_write,                                                               \
        .writev = ek__##kind##_writev,                                                             \
        .shutdown = ek__##kind##_shutdown,                                                         \
        .close = ek__##kind##_close,                                                               \
        .peer_addr = ek__##kind##_peer,                                                            \
        .local_addr = ek__##kind##_local,                                                          \
        .drop = ek__##kind##_drop,                                                                 \
    };

EK__SOCKET_STREAM(tcp, ek_tcp_stream)
EK__SOCKET_STREAM(unix, ek_unix_stream)

/* Wrap a socket: a wrong-type handle is not touched; with a NULL out the socket
 * is freed (the constructors consume it). */
static int ek__stream_from_socket(void *sock, uint32_t tag, const ek_stream_vtable *vt,
                                  ek_stream **out)
{
    if (!EK__CHECK_TAG(sock, tag)) return EK_EINVAL;
    if (out == NULL) {
        vt->drop(sock);
        return EK_EINVAL;
    }
    return ek_stream_new(vt, sock, out);
}

int ek_stream_from_tcp(ek_tcp_stream *t, ek_stream **out)
{
    return ek__stream_from_socket(t, EK__TAG_TCP_STREAM, &ek__tcp_vtable, out);
}

int ek_stream_from_unix(ek_unix_stream *u, ek_stream **out)
{
    return ek__stream_from_socket(u, EK__TAG_UNIX_STREAM, &ek__unix_vtable, out);
}

ek_tcp_stream *ek_stream_tcp(ek_stream *s)
{
    if (!EK__CHECK_TAG(s, EK__TAG_STREAM) || s->vt.read != ek__tcp_read) return NULL;
    return s->self;
}

ek_unix_stream *ek_stream_unix(ek_stream *s)
{
    if (!EK__CHECK_TAG(s, EK__TAG_STREAM) || s->vt.read != ek__unix_read) return NULL;
    return s->self;
}

/* ---- operations ---- */

int ek_stream_read(ek_stream *s, ek_cx *cx, void *buf, size_t len, size_t *nread)
{
    int rc = ek__stream_check(s);
    if (rc != EK_OK) return rc;
    if (cx == NULL || nread == NULL || (buf == NULL && len > 0)) return EK_EINVAL;
    return s->vt.read(s->self, cx, buf, len, nread);
}

int ek_stream_write(ek_stream *s, ek_cx *cx, const void *buf, size_t len, size_t *nwritten)
{
    int rc = ek__stream_check(s);
    if (rc != EK_OK) return rc;
    if (cx == NULL || nwritten == NULL || (buf == NULL && len > 0)) return EK_EINVAL;
    return s->vt.write(s->self, cx, buf, len, nwritten);
}

int ek_stream_writev(ek_stream *s, ek_cx *cx, const void *const *bufs, const size_t *lens,
                     size_t count, size_t *nwritten)
{
    int rc = ek__stream_check(s);
    if (rc != EK_OK) return rc;
    if (cx == NULL || nwritten == NULL || count > EK__IOV_MAX ||
        (count > 0 && (bufs == NULL || lens == NULL)))
        return EK_EINVAL;
    for (size_t i = 0; i < count; i++)
        if (bufs[i] == NULL && lens[i] > 0) return EK_EINVAL;
    if (s->vt.writev != NULL) return s->vt.writev(s->self, cx, bufs, lens, count, nwritten);
    for (size_t i = 0; i < count; i++)
        if (lens[i] > 0) return s->vt.write(s->self, cx, bufs[i], lens[i], nwritten);
    *nwritten = 0;
    return EK_OK;
}

int ek_stream_shutdown(ek_stream *s)
{
    int rc = ek__stream_check(s);
    if (rc != EK_OK) return rc;
    return s->vt.shutdown != NULL ? s->vt.shutdown(s->self) : EK_ENOTSUP;
}

int ek_stream_peer_addr(ek_stream *s, ek_sockaddr *out)
{
    int rc = ek__stream_check(s);
    if (rc != EK_OK) return rc;
    if (out == NULL) return EK_EINVAL;
    return s->vt.peer_addr != NULL ? s->vt.peer_addr(s->self, out) : EK_ENOTSUP;
}

int ek_stream_local_addr(ek_stream *s, ek_sockaddr *out)
{
    int rc = ek__stream_check(s);
    if (rc != EK_OK) return rc;
    if (out == NULL) return EK_EINVAL;
    return s->vt.local_addr != NULL ? s->vt.local_addr(s->self, out) : EK_ENOTSUP;
}

int ek_stream_close(ek_stream *s)
{
    if (!EK__CHECK_TAG(s, EK__TAG_STREAM)) return EK_EINVAL;
    /* acq_rel: the first closer runs vt.close; operations that see the flag
     * (acquire) return before touching the inner object's later state. */
    if (atomic_exchange_explicit(&s->closed, 1, memory_order_acq_rel) == 0 && s->vt.close != NULL)
        (void)s->vt.close(s->self);
    return EK_OK;
}

void ek_stream_free(ek_stream *s)
{
    if (!EK__CHECK_TAG(s, EK__TAG_STREAM)) return;
    s->tag = EK__TAG_DEAD;
    s->vt.drop(s->self);
    ek__free(s);
}
