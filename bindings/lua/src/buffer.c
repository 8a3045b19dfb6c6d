/*
 * buffer.c - ek.buffer(size): a byte buffer of fixed capacity that streams read
 * into and write from (stream:read_into(buf), stream:write(buf)), so that a
 * server loop makes no Lua string, and no garbage, per read.
 *
 * A buffer holds #buf bytes (0 <= #buf <= capacity) at the start of a block of
 * `capacity` bytes allocated with malloc when it is made; the block never moves
 * or grows, so a suspended read or write of a stream can find it again at every
 * poll through the buffer's handle (the handle is an argument of the suspended
 * call, so it stays alive). close() frees the block at once: later methods answer
 * nil, "ECLOSED: ...", "ECLOSED" and a read or write waiting on it ends with the
 * same. Positions follow string.sub and string.byte (1-based, negative counts
 * from the end).
 */
#include "ekl.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char buffer_magic = 0;

ekl_buffer *ekl_to_buffer(lua_State *L, int idx)
{
    /* (As net.c's check_stream: NULL unless a userdata, and a light userdata
     * has no length, so only a full userdata of a buffer's size is read.) */
    ekl_buffer *b = lua_touserdata(L, idx);
    if (b && ekl_rawlen(L, idx) == sizeof(ekl_buffer) && b->magic == &buffer_magic) return b;
    return NULL;
}

/* Argument 1 as a buffer (open or closed); raises otherwise. */
static ekl_buffer *check_buffer(lua_State *L)
{
    ekl_buffer *b = ekl_to_buffer(L, 1);
    return b ? b : luaL_checkudata(L, 1, EKL_BUFFER_MT);
}

/* Argument 1 as an open buffer, or NULL after pushing the ECLOSED failure. */
static ekl_buffer *open_buffer(lua_State *L, int *n)
{
    ekl_buffer *b = check_buffer(L);
    if (b->data) return b;
    *n = ekl_push_error(L, EK_ECLOSED);
    return NULL;
}

size_t ekl_pos_start(lua_Integer pos, size_t len)
{
    if (pos > 0) return (size_t)pos;
    if (pos == 0 || (size_t) - (pos + 1) >= len) return 1;
    return len - (size_t) - (pos + 1);
}

size_t ekl_pos_end(lua_Integer pos, size_t len)
{
    if (pos >= 0) return (size_t)pos > len ? len : (size_t)pos;
    if ((size_t) - (pos + 1) >= len) return 0;
    return len - (size_t) - (pos + 1);
}

/* ek.buffer(size) -> an empty buffer of capacity size (1 .. 2^31 - 1) | nil,
 * "ENOMEM: ...", "ENOMEM". */
static int l_buffer(lua_State *L)
{
    lua_Integer size = luaL_checkinteger(L, 1);
    if (size < 1 || size > INT_MAX) return luaL_argerror(L, 1, "size must be 1 .. 2^31 - 1");
    ekl_buffer *b = ekl_newudata(L, sizeof *b, EKL_BUFFER_MT);
    b->magic = &buffer_magic;
    b->data = malloc((size_t)size);
    if (!b->data) return ekl_push_error(L, EK_ENOMEM);
    b->cap = (size_t)size;
    return 1;
}

static int l_buffer_close(lua_State *L)
{
    ekl_buffer *b = check_buffer(L);
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    return 0;
}

/* #buf: the bytes held (0 once closed: a closed buffer holds nothing). */
static int l_buffer_len_meta(lua_State *L)
{
    ekl_buffer *b = check_buffer(L);
    lua_pushinteger(L, (lua_Integer)b->len);
    return 1;
}

static int l_buffer_len(lua_State *L)
{
    int n = 0;
    ekl_buffer *b = open_buffer(L, &n);
    if (!b) return n;
    lua_pushinteger(L, (lua_Integer)b->len);
    return 1;
}

static int l_buffer_capacity(lua_State *L)
{
    int n = 0;
    ekl_buffer *b = open_buffer(L, &n);
    if (!b) return n;
    lua_pushinteger(L, (lua_Integer)b->cap);
    return 1;
}

/* buf:tostring([i [, j]]): bytes i..j as a string (string.sub's positions). */
static int l_buffer_tostring(lua_State *L)
{
    lua_Integer i = luaL_optinteger(L, 2, 1), j = luaL_optinteger(L, 3, -1);
    int n = 0;
    ekl_buffer *b = open_buffer(L, &n);
    if (!b) return n;
    size_t s = ekl_pos_start(i, b->len), e = ekl_pos_end(j, b->len);
    if (s > e)
        lua_pushliteral(L, "");
    else
        lua_pushlstring(L, b->data + s - 1, e - s + 1);
    return 1;
}

/* buf:byte([i [, j]]): the byte values i..j (string.byte's positions; i
 * defaults to 1, j to i). */
static int l_buffer_byte(lua_State *L)
{
    lua_Integer i = luaL_optinteger(L, 2, 1), j = luaL_optinteger(L, 3, i);
    int n = 0;
    ekl_buffer *b = open_buffer(L, &n);
    if (!b) return n;
    size_t s = ekl_pos_start(i, b->len), e = ekl_pos_end(j, b->len);
    if (s > e) return 0;
    if (e - s >= (size_t)INT_MAX || !lua_checkstack(L, (int)(e - s + 1)))
        return luaL_error(L, "buffer:byte: too many results");
    for (size_t k = s; k <= e; k++) lua_pushinteger(L, (unsigned char)b->data[k - 1]);
    return (int)(e - s + 1);
}

/* buf:find(s [, init]): the first and last position of the plain string s at or
 * after init (string.find's position; no patterns), or nil. */
static int l_buffer_find(lua_State *L)
{
    size_t sl;
    const char *s = luaL_checklstring(L, 2, &sl);
    lua_Integer init = luaL_optinteger(L, 3, 1);
    int n = 0;
    ekl_buffer *b = open_buffer(L, &n);
    if (!b) return n;
    size_t from = ekl_pos_start(init, b->len);
    if (from > b->len + 1 || sl > b->len - (from - 1)) {
        lua_pushnil(L);
        return 1;
    }
    const char *hay = b->data + from - 1;
    size_t left = b->len - (from - 1);
    const char *hit = sl == 0 ? hay : memmem(hay, left, s, sl);
    if (!hit) {
        lua_pushnil(L);
        return 1;
    }
    size_t at = (size_t)(hit - b->data) + 1;
    lua_pushinteger(L, (lua_Integer)at);
    lua_pushinteger(L, (lua_Integer)(at + sl - 1));
    return 2;
}

/* buf:append(s | buffer) -> buf | nil, "EFULL: ...", "EFULL" (nothing is
 * appended unless all of it fits). */
static int l_buffer_append(lua_State *L)
{
    size_t sl = 0;
    const char *s = NULL;
    ekl_buffer *src = ekl_to_buffer(L, 2);
    if (src) {
        if (!src->data) return ekl_push_error(L, EK_ECLOSED);
        s = src->data;
        sl = src->len;
    } else {
        if (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER)
            return luaL_argerror(L, 2, "string or ekiden.buffer expected");
        s = lua_tolstring(L, 2, &sl);
    }
    int n = 0;
    ekl_buffer *b = open_buffer(L, &n);
    if (!b) return n;
    if (sl > b->cap - b->len) return ekl_push_error(L, EK_EFULL);
    memmove(b->data + b->len, s, sl);
    b->len += sl;
    lua_settop(L, 1);
    return 1;
}

/* buf:consume(n) -> buf: drops the first n bytes (all of them if n >= #buf);
 * the rest moves to the start. */
static int l_buffer_consume(lua_State *L)
{
    lua_Integer k = luaL_checkinteger(L, 2);
    if (k < 0) return luaL_argerror(L, 2, "n must be >= 0");
    int n = 0;
    ekl_buffer *b = open_buffer(L, &n);
    if (!b) return n;
    if ((size_t)k >= b->len) {
        b->len = 0;
    } else if (k > 0) {
        memmove(b->data, b->data + k, b->len - (size_t)k);
        b->len -= (size_t)k;
    }
    lua_settop(L, 1);
    return 1;
}

/* buf:reset() -> buf: empty again (the capacity stays). */
static int l_buffer_reset(lua_State *L)
{
    int n = 0;
    ekl_buffer *b = open_buffer(L, &n);
    if (!b) return n;
    b->len = 0;
    lua_settop(L, 1);
    return 1;
}

static int l_buffer_tostring_meta(lua_State *L)
{
    ekl_buffer *b = check_buffer(L);
    if (b->data)
        lua_pushfstring(L, "ekiden.buffer (%d of %d bytes): %p", (int)b->len, (int)b->cap,
                        (void *)b);
    else
        lua_pushfstring(L, "ekiden.buffer (closed): %p", (void *)b);
    return 1;
}

void ekl_buffer_open(lua_State *L, ekl_ctx *c)
{
    static const luaL_Reg methods[] = {
        {"len", l_buffer_len},           {"capacity", l_buffer_capacity},
        {"tostring", l_buffer_tostring}, {"byte", l_buffer_byte},
        {"find", l_buffer_find},         {"append", l_buffer_append},
        {"consume", l_buffer_consume},   {"reset", l_buffer_reset},
        {"close", l_buffer_close},       {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", l_buffer_close},
        {"__close", l_buffer_close},
        {"__len", l_buffer_len_meta},
        {"__tostring", l_buffer_tostring_meta},
        {NULL, NULL},
    };
    ekl_newclass(L, c, EKL_BUFFER_MT, methods, meta);
    static const luaL_Reg funcs[] = {
        {"buffer", l_buffer},
        {NULL, NULL},
    };
    lua_getfield(L, LUA_REGISTRYINDEX, "ekiden.core");
    ekl_set_funcs(L, c, funcs);
    lua_pop(L, 1);
}
