/*
 * net.c - TCP and Unix streams (one Lua type over ek_stream), listeners, UDP and
 * Unix datagram sockets, name resolution.
 *
 * Every operation that can wait is a C function returning ekl_PENDING, wrapped in
 * ekiden.lua. A stream keeps its own read buffer for read_exactly and read_line,
 * which read ahead; read(max) serves that buffer first. close() closes and frees
 * the socket at once (tasks waiting on it wake and see ECLOSED); the handle then
 * answers ECLOSED to everything. The finalizer does the same for a handle that
 * was never closed.
 */
#include "ekl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ helpers -- */

/* Push the text form of a (or nil, err, name on error); returns the count. */
static int push_addr(lua_State *L, int rc, ek_sockaddr *a)
{
    if (rc < 0) return ekl_push_error(L, rc);
    char buf[EK_SOCKADDR_STRLEN];
    int n = ek_sockaddr_format(a, buf, sizeof buf);
    if (n < 0) return ekl_push_error(L, n);
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

/* Run get(obj, addr) into a temporary address and push its text. */
static int push_addr_of(lua_State *L, void *obj, int (*get)(void *, ek_sockaddr *))
{
    ek_sockaddr *a = NULL;
    int rc = ek_sockaddr_new(&a);
    if (rc) return ekl_push_error(L, rc);
    int n = push_addr(L, get(obj, a), a);
    ek_sockaddr_free(a);
    return n;
}

static bool opt_bool(lua_State *L, int idx, const char *name)
{
    if (!lua_istable(L, idx)) return false;
    lua_getfield(L, idx, name);
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static lua_Integer opt_int(lua_State *L, int idx, const char *name, lua_Integer def)
{
    if (!lua_istable(L, idx)) return def;
    lua_getfield(L, idx, name);
    lua_Integer v = lua_isnil(L, -1) ? def : luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    return v;
}

static void check_opts(lua_State *L, int idx)
{
    if (!lua_isnoneornil(L, idx) && !lua_istable(L, idx))
        luaL_argerror(L, idx, "table of options expected");
}

/* ------------------------------------------------------------ streams -- */

typedef struct stream_ud {
    const void *magic; /* &stream_magic: check_stream's fast test */
    ek_stream *s;
    ekl_rt *h;
    /* The state's context (one per state, alive while any method can run):
     * the methods read it here instead of from their upvalue (lua_touserdata
     * of an upvalue index, two per echo round trip). */
    ekl_ctx *c;
    /* The socket inside s, read and written directly (ek_tcp_read, ...)
     * instead of through ek_stream_read's check and vtable call (two calls
     * and two checks less per operation: the same socket call in the end).
     * Set with s, NULL with it (stream_release). */
    ek_tcp_stream *tcp;
    ek_unix_stream *unx;
    bool is_tcp;
    char *rbuf; /* read-ahead: bytes [rpos, rend) not yet returned */
    size_t rcap, rpos, rend;
    /* The task suspended in a read (a write) of this stream, or NULL: the
     * socket keeps one waker per direction, so a second task waiting at once
     * would take the first one's wake-up. It gets EK_EBUSY instead. */
    ekl_task *reader, *writer;
} stream_ud;

#define EKL_READ_CHUNK 65536

static const char stream_magic = 0;

/* Argument 1 as a stream: a full userdata of a stream's size that starts with
 * the stream's magic is one (only this file makes such a block; Lua code cannot
 * write into a userdata). Two API calls instead of ekl_check_self's five
 * (its metatable comparison was 5% of an echo round trip); anything else takes
 * luaL_checkudata's way and its error message. */
static stream_ud *check_stream(lua_State *L)
{
    /* (lua_touserdata is NULL for anything but a userdata; a light one has
     * no length, so only a full userdata of our size is read.) */
    stream_ud *u = lua_touserdata(L, 1);
    if (u && ekl_rawlen(L, 1) == sizeof(stream_ud) && u->magic == &stream_magic) return u;
    return luaL_checkudata(L, 1, EKL_STREAM_MT);
}

/* The stream, or NULL after pushing the ECLOSED failure (*n = its count). */
static ek_stream *open_stream(lua_State *L, stream_ud *u, int *n)
{
    if (!u->s || u->h->closed) {
        *n = ekl_push_error(L, EK_ECLOSED);
        return NULL;
    }
    return u->s;
}

/* Wrap s (consumed) in a new stream userdata on the stack. */
static int push_stream(lua_State *L, ekl_ctx *c, ekl_rt *h, ek_stream *s, bool is_tcp)
{
    stream_ud *u = ekl_newudata(L, sizeof *u, EKL_STREAM_MT);
    u->magic = &stream_magic;
    u->s = s;
    u->h = ekl_rt_ref(h);
    u->c = c;
    u->is_tcp = is_tcp;
    if (is_tcp)
        u->tcp = ek_stream_tcp(s);
    else
        u->unx = ek_stream_unix(s);
    return 1;
}

/* One read or write of u's open stream (u->s set), straight to its socket. */
static inline int sock_read(stream_ud *u, ek_cx *cx, void *buf, size_t len, size_t *n)
{
    if (u->tcp) return ek_tcp_read(u->tcp, cx, buf, len, n);
    if (u->unx) return ek_unix_read(u->unx, cx, buf, len, n);
    return ek_stream_read(u->s, cx, buf, len, n);
}

static inline int sock_write(stream_ud *u, ek_cx *cx, const void *buf, size_t len, size_t *n)
{
    if (u->tcp) return ek_tcp_write(u->tcp, cx, buf, len, n);
    if (u->unx) return ek_unix_write(u->unx, cx, buf, len, n);
    return ek_stream_write(u->s, cx, buf, len, n);
}

static int push_tcp(lua_State *L, ekl_ctx *c, ekl_rt *h, ek_tcp_stream *t)
{
    ek_stream *s = NULL;
    int rc = ek_stream_from_tcp(t, &s);
    if (rc) return ekl_push_error(L, rc);
    return push_stream(L, c, h, s, true);
}

static int push_unix(lua_State *L, ekl_ctx *c, ekl_rt *h, ek_unix_stream *t)
{
    ek_stream *s = NULL;
    int rc = ek_stream_from_unix(t, &s);
    if (rc) return ekl_push_error(L, rc);
    return push_stream(L, c, h, s, false);
}

static void stream_release(stream_ud *u)
{
    if (u->s) {
        ek_stream_close(u->s);
        ek_stream_free(u->s);
        u->s = NULL;
    }
    u->tcp = NULL;
    u->unx = NULL;
    free(u->rbuf);
    u->rbuf = NULL;
    u->rcap = u->rpos = u->rend = 0;
    u->reader = u->writer = NULL;
    if (u->h) ekl_rt_unref(u->h);
    u->h = NULL;
}

static int l_stream_close(lua_State *L)
{
    stream_ud *u = check_stream(L);
    if (u->h) stream_release(u);
    return 0;
}

/* Make room for `more` bytes after rend (compacting first). */
static int rbuf_reserve(stream_ud *u, size_t more)
{
    if (u->rpos > 0 && u->rpos == u->rend) u->rpos = u->rend = 0;
    if (u->rcap - u->rend >= more) return EK_OK;
    if (u->rpos > 0) {
        memmove(u->rbuf, u->rbuf + u->rpos, u->rend - u->rpos);
        u->rend -= u->rpos;
        u->rpos = 0;
        if (u->rcap - u->rend >= more) return EK_OK;
    }
    size_t cap = u->rcap ? u->rcap : EKL_READ_CHUNK;
    while (cap - u->rend < more) cap *= 2;
    char *p = realloc(u->rbuf, cap);
    if (!p) return EK_ENOMEM;
    u->rbuf = p;
    u->rcap = cap;
    return EK_OK;
}

/* Read once more into the read-ahead buffer: EK_OK with *n bytes (0 at end of
 * stream), EK_PENDING, or an error. */
static int fill(stream_ud *u, ek_cx *cx, size_t *n)
{
    int rc = rbuf_reserve(u, EKL_READ_CHUNK);
    if (rc) return rc;
    rc = sock_read(u, cx, u->rbuf + u->rend, u->rcap - u->rend, n);
    if (rc == EK_OK) u->rend += *n;
    return rc;
}

/* The operations that wait (read, read_exactly, read_line, write, accept) are
 * each a function `op(L, c, cx, u, a, b)` that pushes its results and returns
 * their count, or returns EKL_RETRY_PENDING after the socket registered cx's
 * waker. The Lua-facing function checks the arguments and runs it once; on
 * PENDING it yields from C (ekl_yield_retry) and the task's poll runs the same
 * op again, without resuming the coroutine until it completes; its results are
 * then the results of the call. No Lua wrapper, no second call from Lua: the
 * hot path of a Lua server (half of an echo round trip went to the wrappers). */

/* read(max): data ("" at end of stream) | nil, msg, name */
static int read_op(lua_State *L, ekl_ctx *c, ek_cx *cx, ekl_retry *r)
{
    stream_ud *u = r->obj;
    size_t max = r->a;
    int n = 0;
    if (!open_stream(L, u, &n)) return n;
    if (u->rend > u->rpos) {
        size_t k = u->rend - u->rpos;
        if (k > max) k = max;
        lua_pushlstring(L, u->rbuf + u->rpos, k);
        u->rpos += k;
        return 1;
    }
    char *buf = ekl_scratch(c, max);
    if (!buf) return ekl_push_error(L, EK_ENOMEM);
    size_t got = 0;
    int rc = sock_read(u, cx, buf, max, &got);
    if (rc == EK_PENDING) return EKL_RETRY_PENDING;
    if (rc < 0) return ekl_push_error(L, rc);
    lua_pushlstring(L, buf, got);
    return 1;
}

/* End of stream before a whole frame: nil, "EOF: ...", "EOF", partial data. */
static int push_eof(lua_State *L, stream_ud *u)
{
    lua_pushnil(L);
    lua_pushstring(L, "EOF: end of stream");
    lua_pushstring(L, "EOF");
    lua_pushlstring(L, u->rbuf ? u->rbuf + u->rpos : "", u->rend - u->rpos);
    u->rpos = u->rend = 0;
    return 4;
}

/* read_exactly(n): n bytes | nil, msg, name [, partial] */
static int read_exactly_op(lua_State *L, ekl_ctx *c, ek_cx *cx, ekl_retry *r)
{
    (void)c;
    stream_ud *u = r->obj;
    size_t want = r->a;
    int n = 0;
    if (!open_stream(L, u, &n)) return n;
    while (u->rend - u->rpos < want) {
        int rc = rbuf_reserve(u, want - (u->rend - u->rpos));
        size_t got = 0;
        if (rc == EK_OK) rc = fill(u, cx, &got);
        if (rc == EK_PENDING) return EKL_RETRY_PENDING;
        if (rc < 0) return ekl_push_error(L, rc);
        if (got == 0) return push_eof(L, u);
    }
    lua_pushlstring(L, u->rbuf ? u->rbuf + u->rpos : "", want);
    u->rpos += want;
    return 1;
}

static int push_too_long(lua_State *L)
{
    lua_pushnil(L);
    lua_pushstring(L, "EMSGSIZE: line too long");
    lua_pushstring(L, "EMSGSIZE");
    return 3;
}

/* read_line(max): the line without "\n" (nor "\r\n") | nil, msg, name
 * [, partial]. A line longer than max gives EMSGSIZE; the bytes stay buffered. */
static int read_line_op(lua_State *L, ekl_ctx *c, ek_cx *cx, ekl_retry *r)
{
    (void)c;
    stream_ud *u = r->obj;
    size_t max = r->a;
    int n = 0;
    if (!open_stream(L, u, &n)) return n;
    size_t scanned = 0;
    for (;;) {
        char *start = u->rbuf ? u->rbuf + u->rpos : NULL;
        size_t avail = u->rend - u->rpos;
        char *nl = avail > scanned ? memchr(start + scanned, '\n', avail - scanned) : NULL;
        if (nl && (size_t)(nl - start) > max) return push_too_long(L);
        if (nl) {
            size_t len = (size_t)(nl - start);
            size_t text = len > 0 && start[len - 1] == '\r' ? len - 1 : len;
            lua_pushlstring(L, start, text);
            u->rpos += len + 1;
            return 1;
        }
        scanned = avail;
        if (avail > max) return push_too_long(L);
        size_t got = 0;
        int rc = fill(u, cx, &got);
        if (rc == EK_PENDING) return EKL_RETRY_PENDING;
        if (rc < 0) return ekl_push_error(L, rc);
        if (got == 0) return push_eof(L, u);
    }
}

/* read_into(buf [, max]): appends up to max bytes (at most the buffer's free
 * space) to buf; the count (0 at end of stream) | nil, msg, name. r: p the
 * buffer (an argument of the suspended call, looked at again at every poll:
 * it may have been closed meanwhile), a max. */
static int read_into_op(lua_State *L, ekl_ctx *c, ek_cx *cx, ekl_retry *r)
{
    (void)c;
    stream_ud *u = r->obj;
    ekl_buffer *b = (ekl_buffer *)r->p;
    int n = 0;
    if (!open_stream(L, u, &n)) return n;
    if (!b->data) return ekl_push_error(L, EK_ECLOSED);
    size_t max = b->cap - b->len;
    if (max == 0) return ekl_push_error(L, EK_EFULL);
    if (max > r->a) max = r->a;
    size_t got = 0;
    if (u->rend > u->rpos) {
        got = u->rend - u->rpos;
        if (got > max) got = max;
        memcpy(b->data + b->len, u->rbuf + u->rpos, got);
        u->rpos += got;
    } else {
        int rc = sock_read(u, cx, b->data + b->len, max, &got);
        if (rc == EK_PENDING) return EKL_RETRY_PENDING;
        if (rc < 0) return ekl_push_error(L, rc);
    }
    b->len += got;
    lua_pushinteger(L, (lua_Integer)got);
    return 1;
}

/* write(data [, i [, j]]): the count written | nil, msg, name (what was
 * written before an error stays written). r: obj the stream, a the end offset
 * of the bytes to write, b the offset written up to, c the start offset; p
 * the string (an argument of the suspended call, so it stays alive), or the
 * buffer for write_buf_op (whose bytes are looked up again at every poll). */
static int write_bytes(lua_State *L, stream_ud *u, ek_cx *cx, ekl_retry *r, const char *data)
{
    while (r->b < r->a) {
        size_t w = 0;
        int rc = sock_write(u, cx, data + r->b, r->a - r->b, &w);
        if (rc == EK_PENDING) return EKL_RETRY_PENDING;
        if (rc < 0) return ekl_push_error(L, rc);
        r->b += w;
    }
    lua_pushinteger(L, (lua_Integer)(r->a - r->c));
    return 1;
}

static int write_op(lua_State *L, ekl_ctx *c, ek_cx *cx, ekl_retry *r)
{
    (void)c;
    stream_ud *u = r->obj;
    int n = 0;
    if (!open_stream(L, u, &n)) return n;
    return write_bytes(L, u, cx, r, r->p);
}

static int write_buf_op(lua_State *L, ekl_ctx *c, ek_cx *cx, ekl_retry *r)
{
    (void)c;
    stream_ud *u = r->obj;
    const ekl_buffer *b = r->p;
    int n = 0;
    if (!open_stream(L, u, &n)) return n;
    if (!b->data) return ekl_push_error(L, EK_ECLOSED);
    return write_bytes(L, u, cx, r, b->data);
}

/* A task suspended in a read or write of the stream is dropped (cancelled):
 * the direction is free again. obj: &u->reader or &u->writer. */
static void direction_cancel(void *obj, ekl_task *t)
{
    ekl_task **slot = obj;
    if (*slot == t) *slot = NULL;
}

/* The stream's direction (slot) after an operation of the current task ended
 * with n: taken while it waits (released if the task is dropped), free once
 * it completed. */
static int direction_after(ekl_ctx *c, ekl_task **slot, int n)
{
    if (n != EKL_RETRY_PENDING) {
        if (*slot == c->cur) *slot = NULL;
    } else if (*slot != c->cur) {
        *slot = c->cur;
        ekl_wait_register(c, slot, direction_cancel);
    }
    return n;
}

/* The read operations by number (the retry's b): they share the reader. */
static const ekl_retry_fn read_ops[] = {read_op, read_exactly_op, read_line_op, read_into_op};

static int guarded_read_op(lua_State *L, ekl_ctx *c, ek_cx *cx, ekl_retry *r)
{
    stream_ud *u = r->obj;
    return direction_after(c, &u->reader, read_ops[r->b](L, c, cx, r));
}

static int guarded_write_op(lua_State *L, ekl_ctx *c, ek_cx *cx, ekl_retry *r)
{
    stream_ud *u = r->obj;
    return direction_after(c, &u->writer, write_op(L, c, cx, r));
}

static int guarded_write_buf_op(lua_State *L, ekl_ctx *c, ek_cx *cx, ekl_retry *r)
{
    stream_ud *u = r->obj;
    return direction_after(c, &u->writer, write_buf_op(L, c, cx, r));
}

/* The first try of an operation found the direction free (*slot NULL) and
 * answered n: done, or waiting (the direction is the task's while it waits;
 * the guarded ops run the retries). */
static int first_try_after(lua_State *L, ekl_ctx *c, ekl_task **slot, const ekl_retry *r, int n)
{
    if (n != EKL_RETRY_PENDING) return n;
    *slot = c->cur;
    ekl_wait_register(c, slot, direction_cancel);
    return ekl_yield_retry(L, c, r);
}

/* Run read operation op (r->b's index into read_ops) for the stream u. */
static int stream_read_start(lua_State *L, stream_ud *u, ekl_retry *r)
{
    ekl_ctx *c = u->c;
    int n = 0;
    if (!open_stream(L, u, &n)) return n;
    ek_cx *cx = ekl_need_cx(L, c);
    if (u->reader) return ekl_push_error(L, EK_EBUSY);
    return first_try_after(L, c, &u->reader, r, read_ops[r->b](L, c, cx, r));
}

static int stream_read_common(lua_State *L, size_t op, lua_Integer dflt, bool need_arg)
{
    stream_ud *u = check_stream(L);
    /* (An integer argument in one API call; anything else, and its error,
     * the auxiliary library's way.) */
    int isnum = 0;
    lua_Integer a = lua_tointegerx(L, 2, &isnum);
    if (!isnum) a = need_arg ? luaL_checkinteger(L, 2) : luaL_optinteger(L, 2, dflt);
    if (a < (need_arg ? 0 : 1))
        return luaL_argerror(L, 2, need_arg ? "n must be >= 0" : "max must be >= 1");
    ekl_retry r = {.fn = guarded_read_op, .obj = u, .a = (size_t)a, .b = op};
    return stream_read_start(L, u, &r);
}

/* stream:read_into(buf [, max]) -> count (0 at end of stream) | nil, msg, name:
 * appends what one read gives (at most max bytes, at most the free space) to
 * buf; EFULL if buf has no free space. */
static int l_stream_read_into(lua_State *L)
{
    stream_ud *u = check_stream(L);
    ekl_buffer *b = ekl_to_buffer(L, 2);
    if (!b) return luaL_argerror(L, 2, "ekiden.buffer expected");
    size_t max = SIZE_MAX;
    if (lua_gettop(L) >= 3 && !lua_isnil(L, 3)) {
        lua_Integer m = luaL_checkinteger(L, 3);
        if (m < 1) return luaL_argerror(L, 3, "max must be >= 1");
        max = (size_t)m;
    }
    ekl_retry r = {.fn = guarded_read_op, .obj = u, .p = b, .a = max, .b = 3};
    return stream_read_start(L, u, &r);
}

static int l_stream_read(lua_State *L)
{
    return stream_read_common(L, 0, EKL_READ_CHUNK, false);
}

static int l_stream_read_exactly(lua_State *L)
{
    return stream_read_common(L, 1, 0, true);
}

static int l_stream_read_line(lua_State *L)
{
    return stream_read_common(L, 2, 1 << 20, false);
}

/* stream:write(data [, i [, j]]) -> count | nil, msg, name: writes bytes i..j
 * (string.sub's positions; all by default) of data, a string or an
 * ekiden.buffer, waiting as often as the socket needs. */
static int l_stream_write(lua_State *L)
{
    stream_ud *u = check_stream(L);
    ekl_ctx *c = u->c;
    size_t len;
    const char *data = NULL;
    ekl_buffer *b = NULL;
    int t = lua_type(L, 2);
    if (t == LUA_TUSERDATA && (b = ekl_to_buffer(L, 2)) != NULL)
        len = b->len;
    else if (t == LUA_TSTRING || t == LUA_TNUMBER)
        data = lua_tolstring(L, 2, &len);
    else
        return luaL_argerror(L, 2, "string or ekiden.buffer expected");
    size_t start = 0, end = len;
    if (lua_gettop(L) > 2) {
        start = ekl_pos_start(luaL_optinteger(L, 3, 1), len) - 1;
        end = ekl_pos_end(luaL_optinteger(L, 4, -1), len);
        if (start > end) start = end;
    }
    int n = 0;
    if (!open_stream(L, u, &n)) return n;
    if (b && !b->data) return ekl_push_error(L, EK_ECLOSED);
    ek_cx *cx = ekl_need_cx(L, c);
    if (u->writer) return ekl_push_error(L, EK_EBUSY);
    if (start == end) {
        lua_pushinteger(L, 0);
        return 1;
    }
    ekl_retry r = {.fn = b ? guarded_write_buf_op : guarded_write_op,
                   .obj = u,
                   .p = b ? (const void *)b : data,
                   .a = end,
                   .b = start,
                   .c = start};
    /* (The checks of write_op and write_buf_op are the ones made above.) */
    return first_try_after(L, c, &u->writer, &r, write_bytes(L, u, cx, &r, b ? b->data : data));
}

static int l_stream_shutdown(lua_State *L)
{
    stream_ud *u = check_stream(L);
    int n = 0;
    if (!open_stream(L, u, &n)) return n;
    int rc = ek_stream_shutdown(u->s);
    if (rc < 0) return ekl_push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int get_peer(void *s, ek_sockaddr *a)
{
    return ek_stream_peer_addr(s, a);
}

static int get_local(void *s, ek_sockaddr *a)
{
    return ek_stream_local_addr(s, a);
}

static int l_stream_peer_addr(lua_State *L)
{
    stream_ud *u = check_stream(L);
    int n = 0;
    if (!open_stream(L, u, &n)) return n;
    return push_addr_of(L, u->s, get_peer);
}

static int l_stream_local_addr(lua_State *L)
{
    stream_ud *u = check_stream(L);
    int n = 0;
    if (!open_stream(L, u, &n)) return n;
    return push_addr_of(L, u->s, get_local);
}

/* TCP options: the socket inside the stream, or nil, ENOTSUP for Unix streams. */
static ek_tcp_stream *tcp_of(lua_State *L, stream_ud *u, int *n)
{
    if (!open_stream(L, u, n)) return NULL;
    ek_tcp_stream *t = ek_stream_tcp(u->s);
    if (!t) *n = ekl_push_error(L, EK_ENOTSUP);
    return t;
}

static int push_status(lua_State *L, int rc)
{
    if (rc < 0) return ekl_push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_stream_set_nodelay(lua_State *L)
{
    stream_ud *u = check_stream(L);
    int on = lua_isnone(L, 2) ? 1 : lua_toboolean(L, 2);
    int n = 0;
    ek_tcp_stream *t = tcp_of(L, u, &n);
    return t ? push_status(L, ek_tcp_set_nodelay(t, on)) : n;
}

static int l_stream_set_keepalive(lua_State *L)
{
    stream_ud *u = check_stream(L);
    lua_Integer secs = luaL_checkinteger(L, 2);
    if (secs < 0 || secs > 32767) return luaL_argerror(L, 2, "seconds must be 0..32767");
    int n = 0;
    ek_tcp_stream *t = tcp_of(L, u, &n);
    return t ? push_status(L, ek_tcp_set_keepalive(t, (unsigned)secs)) : n;
}

static int l_stream_tostring(lua_State *L)
{
    stream_ud *u = check_stream(L);
    lua_pushfstring(L, "ekiden.stream (%s, %s): %p", u->is_tcp ? "tcp" : "unix",
                    u->s ? "open" : "closed", (void *)u);
    return 1;
}

/* ----------------------------------------------------------- listeners -- */

typedef struct listener_ud {
    ek_tcp_listener *tcp;
    ek_unix_listener *unx;
    ekl_rt *h;
} listener_ud;

static listener_ud *check_listener(lua_State *L)
{
    return ekl_check_self(L, EKL_LISTENER_MT);
}

static bool listener_open(listener_ud *u)
{
    return (u->tcp || u->unx) && !u->h->closed;
}

static int accept_op(lua_State *L, ekl_ctx *c, ek_cx *cx, ekl_retry *r)
{
    listener_ud *u = r->obj;
    if (!listener_open(u)) return ekl_push_error(L, EK_ECLOSED);
    int rc;
    if (u->tcp) {
        ek_tcp_stream *s = NULL;
        rc = ek_tcp_accept(u->tcp, cx, &s, NULL);
        if (rc == EK_OK) return push_tcp(L, c, u->h, s);
    } else {
        ek_unix_stream *s = NULL;
        rc = ek_unix_accept(u->unx, cx, &s, NULL);
        if (rc == EK_OK) return push_unix(L, c, u->h, s);
    }
    if (rc == EK_PENDING) return EKL_RETRY_PENDING;
    return ekl_push_error(L, rc);
}

static int l_listener_accept(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    listener_ud *u = check_listener(L);
    if (!listener_open(u)) return ekl_push_error(L, EK_ECLOSED);
    ekl_retry r = {.fn = accept_op, .obj = u};
    int n = accept_op(L, c, ekl_need_cx(L, c), &r);
    return n == EKL_RETRY_PENDING ? ekl_yield_retry(L, c, &r) : n;
}

static int get_tcp_listener_addr(void *l, ek_sockaddr *a)
{
    return ek_tcp_listener_local_addr(l, a);
}

static int get_unix_listener_addr(void *l, ek_sockaddr *a)
{
    return ek_unix_listener_local_addr(l, a);
}

static int l_listener_local_addr(lua_State *L)
{
    listener_ud *u = check_listener(L);
    if (!listener_open(u)) return ekl_push_error(L, EK_ECLOSED);
    if (u->tcp) return push_addr_of(L, u->tcp, get_tcp_listener_addr);
    return push_addr_of(L, u->unx, get_unix_listener_addr);
}

static int l_listener_close(lua_State *L)
{
    listener_ud *u = check_listener(L);
    if (u->tcp) {
        ek_tcp_listener_close(u->tcp);
        ek_tcp_listener_free(u->tcp);
    }
    if (u->unx) {
        ek_unix_listener_close(u->unx);
        ek_unix_listener_free(u->unx);
    }
    u->tcp = NULL;
    u->unx = NULL;
    if (u->h) ekl_rt_unref(u->h);
    u->h = NULL;
    return 0;
}

static int l_listener_tostring(lua_State *L)
{
    listener_ud *u = check_listener(L);
    lua_pushfstring(L, "ekiden.listener (%s, %s): %p", u->unx ? "unix" : "tcp",
                    (u->tcp || u->unx) ? "open" : "closed", (void *)u);
    return 1;
}

/* ek.tcp.listen(addr [, {backlog=, reuseport=, v6only=}]) */
static int l_tcp_listen(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    const char *text = luaL_checkstring(L, 1);
    check_opts(L, 2);
    ekl_rt *h = ekl_need_rt(L, c);
    if (h->closed) return ekl_push_error(L, EK_ECLOSED);
    unsigned flags = (opt_bool(L, 2, "reuseport") ? EK_TCP_REUSEPORT : 0) |
                     (opt_bool(L, 2, "v6only") ? EK_TCP_V6ONLY : 0);
    lua_Integer backlog = opt_int(L, 2, "backlog", 1024);
    if (backlog < 1 || backlog > 65535) return luaL_argerror(L, 2, "backlog must be 1..65535");
    ek_sockaddr *a = NULL;
    int rc = ek_sockaddr_parse(text, &a);
    if (rc) return ekl_push_error(L, rc);
    listener_ud *u = ekl_newudata(L, sizeof *u, EKL_LISTENER_MT);
    rc = ek_tcp_bind(h->rt, a, (int)backlog, flags, &u->tcp);
    ek_sockaddr_free(a);
    if (rc) {
        u->tcp = NULL;
        lua_pop(L, 1);
        return ekl_push_error(L, rc);
    }
    u->h = ekl_rt_ref(h);
    return 1;
}

/* ek.unix.listen(path [, {backlog=}]) */
static int l_unix_listen(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    const char *path = luaL_checkstring(L, 1);
    check_opts(L, 2);
    ekl_rt *h = ekl_need_rt(L, c);
    if (h->closed) return ekl_push_error(L, EK_ECLOSED);
    lua_Integer backlog = opt_int(L, 2, "backlog", 1024);
    if (backlog < 1 || backlog > 65535) return luaL_argerror(L, 2, "backlog must be 1..65535");
    listener_ud *u = ekl_newudata(L, sizeof *u, EKL_LISTENER_MT);
    int rc = ek_unix_bind(h->rt, path, (int)backlog, &u->unx);
    if (rc) {
        u->unx = NULL;
        lua_pop(L, 1);
        return ekl_push_error(L, rc);
    }
    u->h = ekl_rt_ref(h);
    return 1;
}

/* ------------------------------------------------------------ connect -- */

static int convert_tcp(lua_State *L, ekl_ctx *c, ekl_rt *h, void *out)
{
    return push_tcp(L, c, h, out);
}

static int convert_unix(lua_State *L, ekl_ctx *c, ekl_rt *h, void *out)
{
    return push_unix(L, c, h, out);
}

/* Wrap f in ek_timeout when opts.timeout (seconds) is given. */
static int with_timeout(lua_State *L, int opts, ekl_rt *h, ek_future **f)
{
    if (!lua_istable(L, opts)) return EK_OK;
    lua_getfield(L, opts, "timeout");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return EK_OK;
    }
    uint64_t ms = ekl_check_ms(L, -1);
    lua_pop(L, 1);
    ek_future *t = NULL;
    int rc = ek_timeout(h->rt, *f, ms, &t);
    *f = t; /* consumed in every case */
    return rc;
}

/* core.tcp_connect(addr | host, port [, opts]) -> future of a stream.
 * "ip:port" connects directly; a host name (with ":port" or a port argument)
 * is resolved first and each address is tried in turn. */
static int l_tcp_connect(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    const char *text = luaL_checkstring(L, 1);
    int opts = 2;
    lua_Integer port = -1;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        port = luaL_checkinteger(L, 2);
        if (port < 0 || port > 65535) return luaL_argerror(L, 2, "port must be 0..65535");
        opts = 3;
    }
    check_opts(L, opts);
    ekl_rt *h = ekl_need_rt(L, c);
    if (h->closed) return ekl_push_error(L, EK_ECLOSED);
    ek_future *f = NULL;
    int rc;
    ek_sockaddr *a = NULL;
    if (port < 0 && ek_sockaddr_parse(text, &a) == EK_OK) {
        rc = ek_tcp_connect(h->rt, a, &f);
        ek_sockaddr_free(a);
    } else {
        char host[256];
        const char *hp = text;
        if (port < 0) {
            const char *colon = strrchr(text, ':');
            char *end = NULL;
            long p = colon ? strtol(colon + 1, &end, 10) : -1;
            if (!colon || colon == text || !end || *end || p < 0 || p > 65535 ||
                (size_t)(colon - text) >= sizeof host)
                return ekl_push_error(L, EK_EINVAL);
            memcpy(host, text, (size_t)(colon - text));
            host[colon - text] = '\0';
            /* "[::1]"-style brackets around a literal are not a host name. */
            hp = host;
            port = p;
        }
        rc = ek_tcp_connect_host(h->rt, hp, (uint16_t)port, &f);
    }
    if (rc == EK_OK) rc = with_timeout(L, opts, h, &f);
    if (rc) return ekl_push_error(L, rc);
    ekl_push_future(L, h, f, convert_tcp);
    return 1;
}

/* core.unix_connect(path [, opts]) -> future of a stream */
static int l_unix_connect(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    const char *path = luaL_checkstring(L, 1);
    check_opts(L, 2);
    ekl_rt *h = ekl_need_rt(L, c);
    if (h->closed) return ekl_push_error(L, EK_ECLOSED);
    ek_future *f = NULL;
    int rc = ek_unix_connect(h->rt, path, &f);
    if (rc == EK_OK) rc = with_timeout(L, 2, h, &f);
    if (rc) return ekl_push_error(L, rc);
    ekl_push_future(L, h, f, convert_unix);
    return 1;
}

/* ek.unix.pair() -> a, b */
static int l_unix_pair(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    ekl_rt *h = ekl_need_rt(L, c);
    if (h->closed) return ekl_push_error(L, EK_ECLOSED);
    ek_unix_stream *a = NULL, *b = NULL;
    int rc = ek_unix_pair(h->rt, &a, &b);
    if (rc) return ekl_push_error(L, rc);
    if (push_unix(L, c, h, a) != 1) {
        ek_unix_free(b);
        return 3;
    }
    if (push_unix(L, c, h, b) != 1) return 3;
    return 2;
}

/* ------------------------------------------------------------ resolve -- */

static int convert_addrs(lua_State *L, ekl_ctx *c, ekl_rt *h, void *out)
{
    (void)c;
    (void)h;
    ek_addr_list *list = out;
    int n = ek_addr_list_count(list);
    lua_createtable(L, n > 0 ? n : 0, 0);
    char buf[EK_SOCKADDR_STRLEN];
    for (int i = 0; i < n; i++) {
        int k = ek_sockaddr_format(ek_addr_list_get(list, (size_t)i), buf, sizeof buf);
        if (k < 0) continue;
        lua_pushlstring(L, buf, (size_t)k);
        lua_rawseti(L, -2, i + 1);
    }
    ek_addr_list_free(list);
    return 1;
}

/* core.resolve(host [, port [, {family = "inet"|"inet6", passive = bool}]]) */
static int l_resolve(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    const char *host = luaL_optstring(L, 1, NULL);
    lua_Integer port = luaL_optinteger(L, 2, 0);
    if (port < 0 || port > 65535) return luaL_argerror(L, 2, "port must be 0..65535");
    check_opts(L, 3);
    unsigned hints = opt_bool(L, 3, "passive") ? EK_RESOLVE_PASSIVE : 0;
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "family");
        if (!lua_isnil(L, -1)) {
            const char *fam = luaL_checkstring(L, -1);
            if (strcmp(fam, "inet") == 0)
                hints |= EK_RESOLVE_INET;
            else if (strcmp(fam, "inet6") == 0)
                hints |= EK_RESOLVE_INET6;
            else
                return luaL_argerror(L, 3, "family must be 'inet' or 'inet6'");
        }
        lua_pop(L, 1);
    }
    if (!host && !(hints & EK_RESOLVE_PASSIVE)) return luaL_argerror(L, 1, "host expected");
    ekl_rt *h = ekl_need_rt(L, c);
    if (h->closed) return ekl_push_error(L, EK_ECLOSED);
    ek_future *f = NULL;
    int rc = ek_resolve(h->rt, host, (uint16_t)port, hints, &f);
    if (rc) return ekl_push_error(L, rc);
    ekl_push_future(L, h, f, convert_addrs);
    return 1;
}

/* ---------------------------------------------------------- datagrams -- */

/* One Lua type for UDP and Unix datagram sockets. */
typedef struct dgram_ud {
    ek_udp_socket *udp;
    ek_unix_dgram *unx;
    ekl_rt *h;
    ek_sockaddr *from; /* reused by recv_from */
} dgram_ud;

static dgram_ud *check_dgram(lua_State *L)
{
    return ekl_check_self(L, EKL_UDP_MT);
}

static bool dgram_open(dgram_ud *u)
{
    return (u->udp || u->unx) && !u->h->closed;
}

static int l_dgram_close(lua_State *L)
{
    dgram_ud *u = check_dgram(L);
    if (u->udp) {
        ek_udp_close(u->udp);
        ek_udp_free(u->udp);
    }
    if (u->unx) {
        ek_unix_dgram_close(u->unx);
        ek_unix_dgram_free(u->unx);
    }
    u->udp = NULL;
    u->unx = NULL;
    ek_sockaddr_free(u->from);
    u->from = NULL;
    if (u->h) ekl_rt_unref(u->h);
    u->h = NULL;
    return 0;
}

static dgram_ud *new_dgram(lua_State *L, ekl_rt *h)
{
    dgram_ud *u = ekl_newudata(L, sizeof *u, EKL_UDP_MT);
    if (ek_sockaddr_new(&u->from)) return NULL;
    u->h = ekl_rt_ref(h);
    return u;
}

/* ek.udp.bind(addr [, {reuseaddr=, reuseport=, v6only=}]) */
static int l_udp_bind(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    const char *text = luaL_checkstring(L, 1);
    check_opts(L, 2);
    ekl_rt *h = ekl_need_rt(L, c);
    if (h->closed) return ekl_push_error(L, EK_ECLOSED);
    unsigned flags = (opt_bool(L, 2, "reuseaddr") ? EK_UDP_REUSEADDR : 0) |
                     (opt_bool(L, 2, "reuseport") ? EK_UDP_REUSEPORT : 0) |
                     (opt_bool(L, 2, "v6only") ? EK_UDP_V6ONLY : 0);
    ek_sockaddr *a = NULL;
    int rc = ek_sockaddr_parse(text, &a);
    if (rc) return ekl_push_error(L, rc);
    dgram_ud *u = new_dgram(L, h);
    rc = u ? ek_udp_bind(h->rt, a, flags, &u->udp) : EK_ENOMEM;
    ek_sockaddr_free(a);
    if (rc) {
        if (u) u->udp = NULL;
        lua_pop(L, 1);
        return ekl_push_error(L, rc);
    }
    return 1;
}

/* ek.unix.dgram([path]) : bound to path, or unbound */
static int l_unix_dgram(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    const char *path = luaL_optstring(L, 1, NULL);
    ekl_rt *h = ekl_need_rt(L, c);
    if (h->closed) return ekl_push_error(L, EK_ECLOSED);
    dgram_ud *u = new_dgram(L, h);
    int rc = u ? ek_unix_dgram_bind(h->rt, path, &u->unx) : EK_ENOMEM;
    if (rc) {
        if (u) u->unx = NULL;
        lua_pop(L, 1);
        return ekl_push_error(L, rc);
    }
    return 1;
}

/* dgram:send_to(data, addr) -> #data | PENDING | nil, msg, name.
 * dgram:send(data) (connected) likewise: addr is nil. */
static int dgram_send(lua_State *L, bool to)
{
    ekl_ctx *c = ekl_ctx_of(L);
    dgram_ud *u = check_dgram(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    const char *text = to ? luaL_checkstring(L, 3) : NULL;
    if (!dgram_open(u)) return ekl_push_error(L, EK_ECLOSED);
    ek_cx *cx = ekl_need_cx(L, c);
    ek_sockaddr *a = NULL;
    int rc = EK_OK;
    if (to) rc = ek_sockaddr_parse(text, &a);
    size_t sent = 0;
    if (rc == EK_OK) {
        if (u->udp)
            rc = to ? ek_udp_send_to(u->udp, cx, data, len, a, &sent)
                    : ek_udp_send(u->udp, cx, data, len, &sent);
        else
            rc = to ? ek_unix_dgram_send_to(u->unx, cx, data, len, a, &sent)
                    : ek_unix_dgram_send(u->unx, cx, data, len, &sent);
    }
    ek_sockaddr_free(a);
    if (rc == EK_PENDING) {
        ekl_push_pending(L);
        return 1;
    }
    if (rc < 0) return ekl_push_error(L, rc);
    lua_pushinteger(L, (lua_Integer)sent);
    return 1;
}

static int l_dgram_send_to(lua_State *L)
{
    return dgram_send(L, true);
}

static int l_dgram_send(lua_State *L)
{
    return dgram_send(L, false);
}

/* dgram:recv_from([max]) -> data, addr | PENDING | nil, msg, name.
 * dgram:recv([max]) -> data likewise. Longer datagrams are truncated to max. */
static int dgram_recv(lua_State *L, bool from)
{
    ekl_ctx *c = ekl_ctx_of(L);
    dgram_ud *u = check_dgram(L);
    lua_Integer max = luaL_optinteger(L, 2, EKL_READ_CHUNK);
    if (max < 1) return luaL_argerror(L, 2, "max must be >= 1");
    if (!dgram_open(u)) return ekl_push_error(L, EK_ECLOSED);
    ek_cx *cx = ekl_need_cx(L, c);
    char *buf = ekl_scratch(c, (size_t)max);
    if (!buf) return ekl_push_error(L, EK_ENOMEM);
    size_t got = 0;
    int rc;
    if (u->udp)
        rc = ek_udp_recv_from(u->udp, cx, buf, (size_t)max, &got, u->from);
    else
        rc = ek_unix_dgram_recv_from(u->unx, cx, buf, (size_t)max, &got, u->from);
    if (rc == EK_PENDING) {
        ekl_push_pending(L);
        return 1;
    }
    if (rc < 0) return ekl_push_error(L, rc);
    lua_pushlstring(L, buf, got);
    if (!from) return 1;
    return 1 + push_addr(L, EK_OK, u->from);
}

static int l_dgram_recv_from(lua_State *L)
{
    return dgram_recv(L, true);
}

static int l_dgram_recv(lua_State *L)
{
    return dgram_recv(L, false);
}

static int l_dgram_connect(lua_State *L)
{
    dgram_ud *u = check_dgram(L);
    const char *text = luaL_checkstring(L, 2);
    if (!dgram_open(u)) return ekl_push_error(L, EK_ECLOSED);
    ek_sockaddr *a = NULL;
    int rc = ek_sockaddr_parse(text, &a);
    if (rc == EK_OK) rc = u->udp ? ek_udp_connect(u->udp, a) : ek_unix_dgram_connect(u->unx, a);
    ek_sockaddr_free(a);
    return push_status(L, rc);
}

static int get_udp_local(void *s, ek_sockaddr *a)
{
    return ek_udp_local_addr(s, a);
}

static int get_udp_peer(void *s, ek_sockaddr *a)
{
    return ek_udp_peer_addr(s, a);
}

static int get_udgram_local(void *s, ek_sockaddr *a)
{
    return ek_unix_dgram_local_addr(s, a);
}

static int l_dgram_local_addr(lua_State *L)
{
    dgram_ud *u = check_dgram(L);
    if (!dgram_open(u)) return ekl_push_error(L, EK_ECLOSED);
    if (u->udp) return push_addr_of(L, u->udp, get_udp_local);
    return push_addr_of(L, u->unx, get_udgram_local);
}

static int l_dgram_peer_addr(lua_State *L)
{
    dgram_ud *u = check_dgram(L);
    if (!dgram_open(u)) return ekl_push_error(L, EK_ECLOSED);
    if (!u->udp) return ekl_push_error(L, EK_ENOTSUP);
    return push_addr_of(L, u->udp, get_udp_peer);
}

static int l_dgram_set_broadcast(lua_State *L)
{
    dgram_ud *u = check_dgram(L);
    int on = lua_isnone(L, 2) ? 1 : lua_toboolean(L, 2);
    if (!dgram_open(u)) return ekl_push_error(L, EK_ECLOSED);
    if (!u->udp) return ekl_push_error(L, EK_ENOTSUP);
    return push_status(L, ek_udp_set_broadcast(u->udp, on));
}

static int l_dgram_set_ttl(lua_State *L)
{
    dgram_ud *u = check_dgram(L);
    lua_Integer ttl = luaL_checkinteger(L, 2);
    if (ttl < 1 || ttl > 255) return luaL_argerror(L, 2, "ttl must be 1..255");
    if (!dgram_open(u)) return ekl_push_error(L, EK_ECLOSED);
    if (!u->udp) return ekl_push_error(L, EK_ENOTSUP);
    return push_status(L, ek_udp_set_ttl(u->udp, (unsigned)ttl));
}

static int l_dgram_tostring(lua_State *L)
{
    dgram_ud *u = check_dgram(L);
    lua_pushfstring(L, "ekiden.%s (%s): %p", u->unx ? "unix_dgram" : "udp",
                    (u->udp || u->unx) ? "open" : "closed", (void *)u);
    return 1;
}

/* --------------------------------------------------------------- open -- */

void ekl_net_open(lua_State *L, ekl_ctx *c)
{
    static const luaL_Reg stream_methods[] = {
        {"read", l_stream_read},
        {"read_exactly", l_stream_read_exactly},
        {"read_line", l_stream_read_line},
        {"read_into", l_stream_read_into},
        {"write", l_stream_write},
        {"shutdown", l_stream_shutdown},
        {"close", l_stream_close},
        {"peer_addr", l_stream_peer_addr},
        {"local_addr", l_stream_local_addr},
        {"set_nodelay", l_stream_set_nodelay},
        {"set_keepalive", l_stream_set_keepalive},
        {NULL, NULL},
    };
    static const luaL_Reg stream_meta[] = {
        {"__gc", l_stream_close},
        {"__close", l_stream_close},
        {"__tostring", l_stream_tostring},
        {NULL, NULL},
    };
    ekl_newclass(L, c, EKL_STREAM_MT, stream_methods, stream_meta);
    static const luaL_Reg listener_methods[] = {
        {"accept", l_listener_accept},
        {"local_addr", l_listener_local_addr},
        {"close", l_listener_close},
        {NULL, NULL},
    };
    static const luaL_Reg listener_meta[] = {
        {"__gc", l_listener_close},
        {"__close", l_listener_close},
        {"__tostring", l_listener_tostring},
        {NULL, NULL},
    };
    ekl_newclass(L, c, EKL_LISTENER_MT, listener_methods, listener_meta);
    static const luaL_Reg dgram_methods[] = {
        {"send_to", l_dgram_send_to},
        {"recv_from", l_dgram_recv_from},
        {"send", l_dgram_send},
        {"recv", l_dgram_recv},
        {"connect", l_dgram_connect},
        {"local_addr", l_dgram_local_addr},
        {"peer_addr", l_dgram_peer_addr},
        {"set_broadcast", l_dgram_set_broadcast},
        {"set_ttl", l_dgram_set_ttl},
        {"close", l_dgram_close},
        {NULL, NULL},
    };
    static const luaL_Reg dgram_meta[] = {
        {"__gc", l_dgram_close},
        {"__close", l_dgram_close},
        {"__tostring", l_dgram_tostring},
        {NULL, NULL},
    };
    ekl_newclass(L, c, EKL_UDP_MT, dgram_methods, dgram_meta);
    static const luaL_Reg funcs[] = {
        {"tcp_listen", l_tcp_listen},
        {"tcp_connect", l_tcp_connect},
        {"unix_listen", l_unix_listen},
        {"unix_connect", l_unix_connect},
        {"unix_pair", l_unix_pair},
        {"unix_dgram", l_unix_dgram},
        {"udp_bind", l_udp_bind},
        {"resolve", l_resolve},
        {NULL, NULL},
    };
    lua_getfield(L, LUA_REGISTRYINDEX, "ekiden.core");
    ekl_set_funcs(L, c, funcs);
    lua_pop(L, 1);
}
