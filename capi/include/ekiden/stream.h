/*
 * ekiden/stream.h - ek_stream: one byte-stream interface over TCP and Unix stream
 * sockets (and later TLS, or a stream a host language implements), so that framed
 * I/O (codecs, the server and client of ekiden/server.h) is written once.
 * Included by ekiden.h; uses its types (ek_cx) and those of ekiden/net.h.
 *
 * An ek_stream is an opaque handle over a vtable of operations and the object
 * they act on (`self`). The built-in streams wrap an ek_tcp_stream or an
 * ek_unix_stream and take ownership of it; ek_stream_new builds one from any
 * vtable (a test double, a TLS session, a host-language object).
 *
 * The operations have exactly the semantics of the ek_tcp_ functions of the same
 * name (ekiden/net.h): read gives EK_OK with *nread > 0, or 0 at end of stream;
 * write and writev may accept fewer bytes than offered; EK_PENDING means the task
 * will be woken; each spends one unit of the task's cooperative budget. At most
 * one task reads and one task writes at a time.
 *
 * Closing and freeing follow net.h: ek_stream_close may be called from any thread
 * while tasks use the stream (they wake and see EK_ECLOSED; later operations give
 * EK_ECLOSED); ek_stream_free is called by the one owner when nobody else touches
 * the handle, and releases the inner object (the socket) with it.
 */
#ifndef EKIDEN_STREAM_H
#define EKIDEN_STREAM_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ek_stream ek_stream;

/*
 * The operations of a stream. `self` is the pointer given to ek_stream_new.
 * read, write and drop are required; the others may be NULL:
 * - writev NULL: ek_stream_writev writes the first non-empty buffer with write;
 * - shutdown, peer_addr, local_addr NULL: those calls give EK_ENOTSUP;
 * - close NULL: ek_stream_close only marks the handle closed (later operations
 *   give EK_ECLOSED; a task already waiting in read is not woken).
 * close is called at most once (by ek_stream_close or, if it never ran, not at
 * all: drop must release everything); drop exactly once, by ek_stream_free.
 * The vtable is copied: the caller need not keep it.
 */
typedef struct ek_stream_vtable {
    int (*read)(void *self, ek_cx *cx, void *buf, size_t len, size_t *nread);
    int (*write)(void *self, ek_cx *cx, const void *buf, size_t len, size_t *nwritten);
    int (*writev)(void *self, ek_cx *cx, const void *const *bufs, const size_t *lens, size_t count,
                  size_t *nwritten);
    int (*shutdown)(void *self);
    int (*close)(void *self);
    int (*peer_addr)(void *self, ek_sockaddr *out);
    int (*local_addr)(void *self, ek_sockaddr *out);
    void (*drop)(void *self);
} ek_stream_vtable;

/*
 * A stream over (vt, self). Consumes self: on error vt->drop(self) has run
 * (when vt and vt->drop are not NULL). Any thread.
 * Errors: EK_EINVAL (NULL vt, out, or a required operation missing), EK_ENOMEM.
 */
EK_EXTERN int ek_stream_new(const ek_stream_vtable *vt, void *self, ek_stream **out);
/*
 * A stream over a TCP / Unix stream socket. Consumes the socket, also on error
 * (it is then freed; a NULL or wrong-type handle is not touched). Any thread.
 * Errors: EK_EINVAL (NULL out, NULL or wrong-type socket), EK_ENOMEM.
 */
EK_EXTERN int ek_stream_from_tcp(ek_tcp_stream *s, ek_stream **out);
EK_EXTERN int ek_stream_from_unix(ek_unix_stream *s, ek_stream **out);
/* The socket inside a stream made by ek_stream_from_tcp / _from_unix, borrowed
 * (for options such as ek_tcp_set_nodelay; do not free or read it); NULL for
 * other streams or a bad handle. */
EK_EXTERN ek_tcp_stream *ek_stream_tcp(ek_stream *s);
EK_EXTERN ek_unix_stream *ek_stream_unix(ek_stream *s);

/* As ek_tcp_read / ek_tcp_write / ek_tcp_writev (net.h). Task context.
 * Errors: those of the inner stream, EK_ECLOSED (after ek_stream_close),
 * EK_EINVAL (bad handle or arguments, count > 1024 for writev). */
EK_EXTERN int ek_stream_read(ek_stream *s, ek_cx *cx, void *buf, size_t len, size_t *nread);
EK_EXTERN int ek_stream_write(ek_stream *s, ek_cx *cx, const void *buf, size_t len,
                              size_t *nwritten);
EK_EXTERN int ek_stream_writev(ek_stream *s, ek_cx *cx, const void *const *bufs, const size_t *lens,
                               size_t count, size_t *nwritten);
/* Half-close the write side (the peer reads end of stream). Any thread.
 * Errors: EK_EINVAL, EK_ECLOSED, EK_ENOTCONN, EK_ENOTSUP. */
EK_EXTERN int ek_stream_shutdown(ek_stream *s);
/* The peer's / local address into out (an ek_sockaddr the caller owns).
 * Errors: EK_EINVAL, EK_ECLOSED, EK_ENOTCONN, EK_ENOTSUP. */
EK_EXTERN int ek_stream_peer_addr(ek_stream *s, ek_sockaddr *out);
EK_EXTERN int ek_stream_local_addr(ek_stream *s, ek_sockaddr *out);
/* Close (see the top of this file). Idempotent; any thread.
 * Errors: EK_EINVAL (bad handle). */
EK_EXTERN int ek_stream_close(ek_stream *s);
/* Release the stream and its inner object (the socket). NULL is ignored. Only the
 * owner, when no task uses the stream. */
EK_EXTERN void ek_stream_free(ek_stream *s);

#ifdef __cplusplus
}
#endif

#endif /* EKIDEN_STREAM_H */
