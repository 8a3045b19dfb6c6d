/*
 * msg.c - messages (ek_msg) as Lua values and back: what services, servers and
 * clients exchange with Lua code.
 *
 *   BYTES (lines, length-delimited)  <->  a string
 *   RESP                             <->  the values below (RESP2 and RESP3)
 *   HTTP request / response          <->  a table (see push_http / http_from_lua)
 *
 * RESP -> Lua: bulk string -> string; integer -> integer; double -> number
 * (float); boolean -> boolean; null (RESP3 `_`, RESP2 `$-1` and `*-1`) ->
 * ek.null; array -> { ..., n = count } (a null element is ek.null, so ipairs
 * sees all of them); simple string -> { ok = s }; error and bulk error ->
 * { err = s } (redis's own Lua convention for status and error replies); map ->
 * { map = { [key] = value } }; set -> { set = { ..., n = } }; push ->
 * { push = { ..., n = } }; big number -> { big_number = "digits" }; verbatim ->
 * { verbatim = text, format = "txt" }. Attributes are dropped.
 * Lua -> RESP: the same backwards, and: nil -> null; a Lua float -> double, an
 * integer -> integer (LuaJIT, which has one number type: an integral number in
 * the int64 range -> integer, any other -> double; { double = x } forces a
 * double); { err = s } with CR or LF in s -> bulk error; a table with neither
 * elements, `n` nor one of the tags -> EK_EKIND. In a request to a RESP server
 * (ek.connect{codec = "resp"}) numbers become bulk strings, as redis clients
 * send them.
 *
 * Nothing here raises a Lua error for bad values (they give EK_EKIND /
 * EK_EINVAL / EK_ERANGE): the conversions of a service's response run outside
 * any protected call (in the poll of a C future on the state's thread), so they
 * use raw accesses only (no metamethods) and lua_checkstack (no stack error).
 */
#include "ekl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EKL_RESP_MAX_DEPTH 128

/* -------------------------------------------------------------- ek.null -- */

static char null_key;

static int null_tostring(lua_State *L)
{
    lua_pushliteral(L, "ekiden.null");
    return 1;
}

void ekl_push_null(lua_State *L)
{
    lua_pushlightuserdata(L, &null_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
}

bool ekl_is_null(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TUSERDATA) return false;
    idx = lua_absindex(L, idx);
    ekl_push_null(L);
    bool eq = lua_rawequal(L, idx, -1);
    lua_pop(L, 1);
    return eq;
}

/* ------------------------------------------------------------ RESP -> Lua -- */

static int push_resp(lua_State *L, const ek_msg *m, int depth);

/* { tag = <string payload of m> } */
static int push_tagged_string(lua_State *L, const ek_msg *m, const char *tag)
{
    const uint8_t *d = NULL;
    size_t n = 0;
    int rc = ek_msg_data(m, &d, &n);
    if (rc < 0) return rc;
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, (const char *)d, n);
    lua_setfield(L, -2, tag);
    return EK_OK;
}

/* Element i of aggregate m (pushed). */
static int push_element(lua_State *L, const ek_msg *m, int64_t i, int depth)
{
    if (ek_msg_resp_arg_type(m, (size_t)i) == EK_RESP_BULK) {
        /* A bulk string (every argument of a request) read in place: a flat
         * request makes no child messages. */
        const uint8_t *d = NULL;
        size_t len = 0;
        int rc = ek_msg_resp_arg(m, (size_t)i, &d, &len);
        if (rc == EK_OK)
            lua_pushlstring(L, (const char *)d, len);
        else if (rc == EK_EEMPTY) {
            ekl_push_null(L);
            rc = EK_OK;
        }
        return rc;
    }
    ek_msg *ch = NULL;
    int rc = ek_msg_resp_child(m, (size_t)i, &ch);
    if (rc == EK_OK) rc = push_resp(L, ch, depth + 1);
    return rc;
}

/* The children of aggregate m as { ..., n = count } (pushed). */
static int push_children(lua_State *L, const ek_msg *m, int depth)
{
    int64_t n = ek_msg_resp_len(m);
    if (n < 0) return (int)n;
    if (n > INT32_MAX) return EK_ERANGE;
    lua_createtable(L, (int)n, 1);
    for (int64_t i = 0; i < n; i++) {
        int rc = push_element(L, m, i, depth);
        if (rc < 0) {
            lua_pop(L, 1);
            return rc;
        }
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_pushinteger(L, (lua_Integer)n);
    lua_setfield(L, -2, "n");
    return EK_OK;
}

static int push_map(lua_State *L, const ek_msg *m, int depth)
{
    int64_t n = ek_msg_resp_len(m);
    if (n < 0) return (int)n;
    if (n > INT32_MAX) return EK_ERANGE;
    lua_createtable(L, 0, (int)(n / 2));
    for (int64_t i = 0; i + 1 < n; i += 2) {
        ek_msg *k = NULL, *v = NULL;
        int rc = ek_msg_resp_child(m, (size_t)i, &k);
        if (rc == EK_OK) rc = ek_msg_resp_child(m, (size_t)i + 1, &v);
        if (rc == EK_OK) rc = push_resp(L, k, depth + 1);
        if (rc == EK_OK) {
            /* A NaN key cannot index a table: it becomes the string "nan". */
            if (lua_type(L, -1) == LUA_TNUMBER && isnan(lua_tonumber(L, -1))) {
                lua_pop(L, 1);
                lua_pushliteral(L, "nan");
            }
            rc = push_resp(L, v, depth + 1);
            if (rc < 0) lua_pop(L, 1);
        }
        if (rc < 0) {
            lua_pop(L, 1);
            return rc;
        }
        lua_rawset(L, -3);
    }
    return EK_OK;
}

/* Wrap the table on top as { tag = table }. */
static void wrap_tag(lua_State *L, const char *tag)
{
    lua_createtable(L, 0, 1);
    lua_insert(L, -2);
    lua_setfield(L, -2, tag);
}

static int push_resp(lua_State *L, const ek_msg *m, int depth)
{
    if (depth > EKL_RESP_MAX_DEPTH) return EK_ERANGE;
    if (!lua_checkstack(L, 4)) return EK_ENOMEM;
    int type = ek_msg_resp_type(m);
    if (type < 0) return type;
    int rc;
    switch (type) {
    case EK_RESP_BULK: {
        const uint8_t *d = NULL;
        size_t n = 0;
        rc = ek_msg_data(m, &d, &n);
        if (rc == EK_EEMPTY) {
            ekl_push_null(L);
            return EK_OK;
        }
        if (rc < 0) return rc;
        lua_pushlstring(L, (const char *)d, n);
        return EK_OK;
    }
    case EK_RESP_INTEGER: {
        int64_t v = 0;
        rc = ek_msg_resp_get_integer(m, &v);
        if (rc < 0) return rc;
        lua_pushinteger(L, (lua_Integer)v);
        return EK_OK;
    }
    case EK_RESP_DOUBLE: {
        double v = 0;
        rc = ek_msg_resp_get_double(m, &v);
        if (rc < 0) return rc;
        lua_pushnumber(L, (lua_Number)v);
        return EK_OK;
    }
    case EK_RESP_BOOLEAN: {
        int v = 0;
        rc = ek_msg_resp_get_boolean(m, &v);
        if (rc < 0) return rc;
        lua_pushboolean(L, v);
        return EK_OK;
    }
    case EK_RESP_NULL:
        ekl_push_null(L);
        return EK_OK;
    case EK_RESP_SIMPLE:
        return push_tagged_string(L, m, "ok");
    case EK_RESP_ERROR:
    case EK_RESP_BULK_ERROR:
        return push_tagged_string(L, m, "err");
    case EK_RESP_BIG_NUMBER:
        return push_tagged_string(L, m, "big_number");
    case EK_RESP_VERBATIM: {
        char fmt[4];
        rc = ek_msg_resp_verbatim_format(m, fmt);
        if (rc == EK_OK) rc = push_tagged_string(L, m, "verbatim");
        if (rc < 0) return rc;
        lua_pushstring(L, fmt);
        lua_setfield(L, -2, "format");
        return EK_OK;
    }
    case EK_RESP_ARRAY:
        if (ek_msg_resp_is_null(m) == 1) {
            ekl_push_null(L);
            return EK_OK;
        }
        return push_children(L, m, depth);
    case EK_RESP_SET:
    case EK_RESP_PUSH:
        rc = push_children(L, m, depth);
        if (rc == EK_OK) wrap_tag(L, type == EK_RESP_SET ? "set" : "push");
        return rc;
    case EK_RESP_MAP:
    case EK_RESP_ATTRIBUTE:
        rc = push_map(L, m, depth);
        if (rc == EK_OK) wrap_tag(L, "map");
        return rc;
    default:
        return EK_EKIND;
    }
}

/* ------------------------------------------------------------ HTTP -> Lua -- */

static void set_lstring(lua_State *L, const char *field, const char *s, size_t n)
{
    lua_pushlstring(L, s, n);
    lua_setfield(L, -2, field);
}

/* headers = { [lower-case name] = value, ... }; a name given more than once maps
 * to a table of its values in order (as OpenResty's ngx.req.get_headers). */
static int push_http_headers(lua_State *L, const ek_msg *m)
{
    int64_t count = ek_msg_http_header_count(m);
    if (count < 0) return (int)count;
    lua_createtable(L, 0, count > 64 ? 64 : (int)count);
    char small[64];
    for (int64_t i = 0; i < count; i++) {
        const char *name = NULL, *value = NULL;
        size_t nl = 0, vl = 0;
        int rc = ek_msg_http_header(m, (size_t)i, &name, &nl, &value, &vl);
        if (rc < 0) {
            lua_pop(L, 1);
            return rc;
        }
        char *low = nl <= sizeof small ? small : malloc(nl);
        if (!low) {
            lua_pop(L, 1);
            return EK_ENOMEM;
        }
        for (size_t j = 0; j < nl; j++) {
            char ch = name[j];
            low[j] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
        }
        lua_pushlstring(L, low, nl);
        if (low != small) free(low);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushlstring(L, value, vl);
            lua_rawset(L, -3);
        } else if (lua_istable(L, -1)) {
            lua_pushlstring(L, value, vl);
            lua_rawseti(L, -2, (int)ekl_rawlen(L, -2) + 1);
            lua_pop(L, 2);
        } else {
            /* the second value: { first, second } */
            lua_createtable(L, 2, 0);
            lua_insert(L, -2);
            lua_rawseti(L, -2, 1);
            lua_pushlstring(L, value, vl);
            lua_rawseti(L, -2, 2);
            lua_rawset(L, -3);
        }
    }
    lua_setfield(L, -2, "headers");
    return EK_OK;
}

/* A request: { method =, target =, version = 10 | 11, headers =, body =,
 * keep_alive = }. A response: { status =, reason =, version =, headers =,
 * body =, keep_alive = }. */
static int push_http(lua_State *L, const ek_msg *m, int kind)
{
    if (!lua_checkstack(L, 6)) return EK_ENOMEM;
    lua_createtable(L, 0, 6);
    const char *s = NULL;
    size_t n = 0;
    int rc;
    if (kind == EK_MSG_HTTP_REQUEST) {
        rc = ek_msg_http_method(m, &s, &n);
        if (rc == EK_OK) set_lstring(L, "method", s, n);
        if (rc == EK_OK) rc = ek_msg_http_target(m, &s, &n);
        if (rc == EK_OK) set_lstring(L, "target", s, n);
    } else {
        rc = ek_msg_http_status(m);
        if (rc >= 0) {
            lua_pushinteger(L, rc);
            lua_setfield(L, -2, "status");
            rc = ek_msg_http_reason(m, &s, &n);
        }
        if (rc == EK_OK) set_lstring(L, "reason", s, n);
    }
    int v = rc < 0 ? rc : ek_msg_http_version(m);
    if (v >= 0) {
        lua_pushinteger(L, v);
        lua_setfield(L, -2, "version");
        rc = EK_OK;
    } else {
        rc = v;
    }
    if (rc == EK_OK) rc = push_http_headers(L, m);
    const uint8_t *d = NULL;
    if (rc == EK_OK) rc = ek_msg_data(m, &d, &n);
    if (rc == EK_OK) set_lstring(L, "body", (const char *)d, n);
    int ka = rc < 0 ? rc : ek_msg_http_keep_alive(m);
    if (ka >= 0) {
        lua_pushboolean(L, ka);
        lua_setfield(L, -2, "keep_alive");
        rc = EK_OK;
    } else {
        rc = ka;
    }
    if (rc < 0) lua_pop(L, 1);
    return rc;
}

int ekl_msg_push(lua_State *L, const ek_msg *m)
{
    int kind = ek_msg_kind(m);
    switch (kind) {
    case EK_MSG_BYTES: {
        const uint8_t *d = NULL;
        size_t n = 0;
        int rc = ek_msg_data(m, &d, &n);
        if (rc < 0) return rc;
        if (!lua_checkstack(L, 1)) return EK_ENOMEM;
        lua_pushlstring(L, (const char *)d, n);
        return EK_OK;
    }
    case EK_MSG_RESP:
        return push_resp(L, m, 0);
    case EK_MSG_HTTP_REQUEST:
    case EK_MSG_HTTP_RESPONSE:
        return push_http(L, m, kind);
    default:
        return kind < 0 ? kind : EK_EKIND;
    }
}

/* Whether the n (<= EKL_NAME_MAX) bytes at a and b are the same: a loop, as
 * names are a few bytes (a memcmp call cost more than the compare). */
static bool same_bytes(const char *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)a[i] != b[i]) return false;
    return true;
}

/* Push element 0 of request m, a command's name, from c's cache of recent
 * names where it is a bulk string of 1..EKL_NAME_MAX bytes: a compare and a
 * registry read instead of lua_pushlstring's hashing and interning (about 0.15k
 * instructions per request). A name that misses replaces its slot's entry. */
static int push_name(lua_State *L, ekl_ctx *c, const ek_msg *m)
{
    const uint8_t *d = NULL;
    size_t n = 0;
    if (ek_msg_resp_arg_type(m, 0) != EK_RESP_BULK || ek_msg_resp_arg(m, 0, &d, &n) != EK_OK ||
        n == 0 || n > EKL_NAME_MAX)
        return push_element(L, m, 0, 0);
    ekl_name *e = &c->names[(n ^ d[0] ^ d[n - 1]) & (EKL_NAMES - 1)];
    if (e->len == n && same_bytes(e->b, d, n)) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, e->ref);
        return EK_OK;
    }
    lua_pushlstring(L, (const char *)d, n);
    /* (The ref exists since ekl_msg_open: this store allocates nothing.) */
    lua_pushvalue(L, -1);
    lua_rawseti(L, LUA_REGISTRYINDEX, e->ref);
    memcpy(e->b, d, n);
    e->len = (uint8_t)n;
    return EK_OK;
}

int ekl_msg_push_args(lua_State *L, ekl_ctx *c, const ek_msg *m, int *n)
{
    *n = 0;
    /* (A length is there only for a RESP aggregate that is not null: one
     * call answers what ek_msg_kind and ek_msg_resp_is_null would.) */
    int64_t len = ek_msg_resp_len(m);
    if (len < 0 || ek_msg_resp_type(m) != EK_RESP_ARRAY) {
        int rc = ekl_msg_push(L, m);
        if (rc == EK_OK) *n = 1;
        return rc;
    }
    if (len > EKL_MAX_ARGS) return EK_ERANGE;
    /* (Room for all of them and for what a nested element's push uses.) */
    if (!lua_checkstack(L, (int)len + 4)) return EK_ENOMEM;
    for (int64_t i = 0; i < len; i++) {
        int rc = i == 0 ? push_name(L, c, m) : push_element(L, m, i, 0);
        if (rc < 0) {
            lua_pop(L, (int)i);
            return rc;
        }
    }
    *n = (int)len;
    return EK_OK;
}

/* ------------------------------------------------------------ Lua -> RESP -- */

/* Lua's value at idx as a RESP integer if it is one (5.4: the integer
 * subtype; LuaJIT: an integral number in range). */
static bool as_integer(lua_State *L, int idx, int64_t *out)
{
#if LUA_VERSION_NUM >= 503
    if (!lua_isinteger(L, idx)) return false;
    *out = (int64_t)lua_tointeger(L, idx);
    return true;
#else
    lua_Number v = lua_tonumber(L, idx);
    if (v != floor(v) || v < -9223372036854775808.0 || v >= 9223372036854775808.0) return false;
    *out = (int64_t)v;
    return true;
#endif
}

static int resp_from_lua(lua_State *L, const ekl_ctx *c, int idx, int depth, bool request,
                         ek_msg **out);

/* A string field's RESP string value: type (CR/LF in an error's text make it a
 * bulk error, which may hold them). */
static int tagged_string(lua_State *L, const ekl_ctx *c, int idx, int type, ek_msg **out)
{
    if (type == EK_RESP_SIMPLE && c) {
        /* "OK" and "PONG" by identity (see ekl_ctx): no lua_type, no lua_tolstring. */
        const void *p = lua_topointer(L, idx);
        if (p == c->reply_str[0]) return ek_msg_resp_shared(EK_RESP_SHARED_OK, out);
        if (p == c->reply_str[1]) return ek_msg_resp_shared(EK_RESP_SHARED_PONG, out);
    }
    if (lua_type(L, idx) != LUA_TSTRING) return EK_EKIND;
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    /* The replies a server sends most cost no allocation (shared replies). */
    if (type == EK_RESP_SIMPLE && n == 2 && memcmp(s, "OK", 2) == 0)
        return ek_msg_resp_shared(EK_RESP_SHARED_OK, out);
    if (type == EK_RESP_SIMPLE && n == 4 && memcmp(s, "PONG", 4) == 0)
        return ek_msg_resp_shared(EK_RESP_SHARED_PONG, out);
    if (type == EK_RESP_ERROR && (memchr(s, '\r', n) || memchr(s, '\n', n)))
        type = EK_RESP_BULK_ERROR;
    return ek_msg_resp_string(type, s, n, out);
}

/* The elements 1..n of the table at idx (n: its `n` field, or its length) as
 * the children of a new aggregate of type. */
static int resp_sequence(lua_State *L, const ekl_ctx *c, int idx, int type, int depth, bool request,
                         ek_msg **out)
{
    lua_pushliteral(L, "n");
    lua_rawget(L, idx);
    lua_Integer n;
    if (lua_type(L, -1) == LUA_TNUMBER)
        n = lua_tointeger(L, -1);
    else
        n = (lua_Integer)ekl_rawlen(L, idx);
    lua_pop(L, 1);
    if (n < 0 || n > INT32_MAX) return EK_ERANGE;
    ek_msg *agg = NULL;
    int rc = ek_msg_resp_aggregate(type, (size_t)n, &agg);
    for (lua_Integer i = 1; rc == EK_OK && i <= n; i++) {
        lua_rawgeti(L, idx, (int)i);
        ek_msg *ch = NULL;
        rc = resp_from_lua(L, c, -1, depth + 1, request, &ch);
        lua_pop(L, 1);
        if (rc == EK_OK) rc = ek_msg_resp_append(agg, ch);
    }
    if (rc < 0) {
        ek_msg_free(agg);
        return rc;
    }
    *out = agg;
    return EK_OK;
}

static int resp_map(lua_State *L, const ekl_ctx *c, int idx, int depth, bool request, ek_msg **out)
{
    if (lua_type(L, idx) != LUA_TTABLE) return EK_EKIND;
    ek_msg *agg = NULL;
    int rc = ek_msg_resp_aggregate(EK_RESP_MAP, 8, &agg);
    if (rc < 0) return rc;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        ek_msg *k = NULL, *v = NULL;
        rc = resp_from_lua(L, c, -2, depth + 1, request, &k);
        if (rc == EK_OK) rc = ek_msg_resp_append(agg, k);
        if (rc == EK_OK) rc = resp_from_lua(L, c, -1, depth + 1, request, &v);
        if (rc == EK_OK) rc = ek_msg_resp_append(agg, v);
        lua_pop(L, 1);
        if (rc < 0) {
            lua_pop(L, 1);
            ek_msg_free(agg);
            return rc;
        }
    }
    *out = agg;
    return EK_OK;
}

/* The tags of tagged tables, in the order a table with several is read. */
static const char *const tags[] = {"ok",     "err",        "map",      "set", "push",
                                   "double", "big_number", "verbatim", NULL};
#define TAG_VERBATIM 7
_Static_assert(sizeof tags / sizeof tags[0] == EKL_TAGS + 1, "EKL_TAGS is the count of tags[]");

/* The tag named by the n bytes at k, or -1. */
static int tag_index(const char *k, size_t n)
{
    for (int i = 0; tags[i]; i++)
        if (strlen(tags[i]) == n && memcmp(tags[i], k, n) == 0) return i;
    return -1;
}

/* The tag that the key at i is, or -1: by identity with c's tag strings
 * (see ekl_ctx), else by its bytes. */
static int key_tag(lua_State *L, const ekl_ctx *c, int i)
{
    if (c) {
        const void *p = lua_topointer(L, i);
        for (int k = 0; k < EKL_TAGS; k++)
            if (c->tag_str[k] == p) return k;
        return -1;
    }
    if (lua_type(L, i) != LUA_TSTRING) return -1;
    size_t kl;
    const char *k = lua_tolstring(L, i, &kl);
    return tag_index(k, kl);
}

/* The tagged value of tag i (not verbatim) whose value is at v. */
static int resp_tagged(lua_State *L, const ekl_ctx *c, int i, int v, int depth, bool request,
                       ek_msg **out)
{
    switch (i) {
    case 0:
        return tagged_string(L, c, v, EK_RESP_SIMPLE, out);
    case 1:
        return tagged_string(L, c, v, EK_RESP_ERROR, out);
    case 2:
        return resp_map(L, c, v, depth, request, out);
    case 3:
    case 4:
        return lua_type(L, v) == LUA_TTABLE
                   ? resp_sequence(L, c, v, i == 3 ? EK_RESP_SET : EK_RESP_PUSH, depth, request,
                                   out)
                   : EK_EKIND;
    case 5:
        return lua_type(L, v) == LUA_TNUMBER ? ek_msg_resp_double(lua_tonumber(L, v), out)
                                             : EK_EKIND;
    default:
        return tagged_string(L, c, v, EK_RESP_BIG_NUMBER, out);
    }
}

/* { verbatim = text [, format = "txt"] } at idx; its text at v. */
static int resp_verbatim(lua_State *L, int idx, int v, ek_msg **out)
{
    size_t n = 0, fl = 3;
    const char *s = lua_type(L, v) == LUA_TSTRING ? lua_tolstring(L, v, &n) : NULL;
    lua_pushliteral(L, "format");
    lua_rawget(L, idx);
    const char *fmt = "txt";
    if (lua_type(L, -1) == LUA_TSTRING)
        fmt = lua_tolstring(L, -1, &fl);
    else if (!lua_isnil(L, -1))
        fl = 0;
    int rc = s && fl == 3 ? ek_msg_resp_verbatim(fmt, s, n, out) : EK_EKIND;
    lua_pop(L, 1);
    return rc;
}

/* A table: an array (elements or `n`), or a tagged value { tag = ... }. */
static int resp_table(lua_State *L, const ekl_ctx *c, int idx, int depth, bool request,
                      ek_msg **out)
{
    /* The first key, and whether it is the only one: a table whose one key is
     * a tag (the { ok = "OK" } a server answers most requests with) is that
     * tagged value, as the general way below finds (no element 1, no n), with
     * one traversal and no lookup by name (that way was 0.3k instructions per
     * reply). */
    lua_pushnil(L);
    if (lua_next(L, idx) == 0) return ek_msg_resp_aggregate(EK_RESP_ARRAY, 0, out); /* {} */
    int tag = key_tag(L, c, -2);
    if (tag >= 0 && tag != TAG_VERBATIM) {
        lua_pushvalue(L, -2);
        if (lua_next(L, idx) == 0) {
            int rc = resp_tagged(L, c, tag, lua_gettop(L), depth, request, out);
            lua_pop(L, 2);
            return rc;
        }
        lua_pop(L, 2);
    }
    lua_pop(L, 2);
    lua_rawgeti(L, idx, 1);
    bool seq = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!seq) {
        lua_pushliteral(L, "n");
        lua_rawget(L, idx);
        seq = !lua_isnil(L, -1);
        lua_pop(L, 1);
    }
    if (seq) return resp_sequence(L, c, idx, EK_RESP_ARRAY, depth, request, out);
    /* A tagged table has one key (verbatim two); of several tags the first
     * in tags[] counts. */
    for (int i = 0; tags[i]; i++) {
        lua_pushstring(L, tags[i]);
        lua_rawget(L, idx);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            continue;
        }
        int v = lua_gettop(L);
        int rc = i == TAG_VERBATIM ? resp_verbatim(L, idx, v, out)
                                   : resp_tagged(L, c, i, v, depth, request, out);
        lua_pop(L, 1);
        return rc;
    }
    return EK_EKIND;
}

static int resp_from_lua(lua_State *L, const ekl_ctx *c, int idx, int depth, bool request,
                         ek_msg **out)
{
    if (depth > EKL_RESP_MAX_DEPTH) return EK_ERANGE;
    if (!lua_checkstack(L, 6)) return EK_ENOMEM;
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return ek_msg_resp_shared(EK_RESP_SHARED_NULL, out);
    case LUA_TBOOLEAN:
        return ek_msg_resp_boolean(lua_toboolean(L, idx), out);
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return ek_msg_resp_string(EK_RESP_BULK, s, n, out);
    }
    case LUA_TNUMBER: {
        int64_t i;
        bool integral = as_integer(L, idx, &i);
        if (request) {
            /* A request argument: its text, as redis clients send numbers. */
            char buf[64];
            int n;
            if (integral)
                n = snprintf(buf, sizeof buf, "%lld", (long long)i);
            else
                n = snprintf(buf, sizeof buf, "%.17g", (double)lua_tonumber(L, idx));
            return ek_msg_resp_string(EK_RESP_BULK, buf, (size_t)n, out);
        }
        if (integral && (i == 0 || i == 1))
            return ek_msg_resp_shared(i ? EK_RESP_SHARED_ONE : EK_RESP_SHARED_ZERO, out);
        if (integral) return ek_msg_resp_integer(i, out);
        return ek_msg_resp_double((double)lua_tonumber(L, idx), out);
    }
    case LUA_TTABLE:
        return resp_table(L, c, idx, depth, request, out);
    case LUA_TUSERDATA:
        if (ekl_is_null(L, idx)) return ek_msg_resp_shared(EK_RESP_SHARED_NULL, out);
        return EK_EKIND;
    default:
        return EK_EKIND;
    }
}

/* ------------------------------------------------------------ Lua -> HTTP -- */

/* Integer field of the table at idx (raw), or def if absent; false if present
 * but not a number. */
static bool int_field(lua_State *L, int idx, const char *name, lua_Integer def, lua_Integer *out)
{
    lua_pushstring(L, name);
    lua_rawget(L, idx);
    bool ok = true;
    if (lua_isnil(L, -1))
        *out = def;
    else if (lua_type(L, -1) == LUA_TNUMBER)
        *out = lua_tointeger(L, -1);
    else
        ok = false;
    lua_pop(L, 1);
    return ok;
}

/* A string field (raw), or NULL (absent, or not a string: *bad set). */
static const char *str_field(lua_State *L, int idx, const char *name, size_t *len, bool *bad)
{
    lua_pushstring(L, name);
    lua_rawget(L, idx);
    const char *s = NULL;
    if (lua_type(L, -1) == LUA_TSTRING)
        s = lua_tolstring(L, -1, len); /* stays valid: the table holds the string */
    else if (!lua_isnil(L, -1))
        *bad = true;
    lua_pop(L, 1);
    return s;
}

static int add_header_value(lua_State *L, ek_msg *m, const char *name, size_t nl, int v)
{
    if (lua_type(L, v) == LUA_TSTRING || lua_type(L, v) == LUA_TNUMBER) {
        if (lua_type(L, v) == LUA_TNUMBER) {
            lua_pushvalue(L, v);
            size_t vl;
            const char *val = lua_tolstring(L, -1, &vl);
            int rc = ek_msg_http_add_header(m, name, nl, val, vl);
            lua_pop(L, 1);
            return rc;
        }
        size_t vl;
        const char *val = lua_tolstring(L, v, &vl);
        return ek_msg_http_add_header(m, name, nl, val, vl);
    }
    if (lua_type(L, v) != LUA_TTABLE) return EK_EKIND;
    size_t n = ekl_rawlen(L, v);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, v, (int)i);
        int rc = lua_type(L, -1) == LUA_TTABLE ? EK_EKIND
                                               : add_header_value(L, m, name, nl, lua_gettop(L));
        lua_pop(L, 1);
        if (rc < 0) return rc;
    }
    return EK_OK;
}

/* headers: { name = value | {values}, ... } or { {name, value}, ... }. */
static int http_headers_from_lua(lua_State *L, int idx, ek_msg *m)
{
    lua_pushliteral(L, "headers");
    lua_rawget(L, idx);
    int h = lua_gettop(L);
    int rc = EK_OK;
    if (lua_isnil(L, h)) {
        lua_pop(L, 1);
        return EK_OK;
    }
    if (lua_type(L, h) != LUA_TTABLE) {
        lua_pop(L, 1);
        return EK_EKIND;
    }
    lua_pushnil(L);
    while (rc == EK_OK && lua_next(L, h) != 0) {
        int v = lua_gettop(L);
        if (lua_type(L, v - 1) == LUA_TSTRING) {
            size_t nl;
            const char *name = lua_tolstring(L, v - 1, &nl);
            rc = add_header_value(L, m, name, nl, v);
        } else if (lua_type(L, v) == LUA_TTABLE) {
            /* { name, value } */
            lua_rawgeti(L, v, 1);
            lua_rawgeti(L, v, 2);
            if (lua_type(L, -2) != LUA_TSTRING) {
                rc = EK_EKIND;
            } else {
                size_t nl;
                const char *name = lua_tolstring(L, -2, &nl);
                rc = add_header_value(L, m, name, nl, lua_gettop(L));
            }
            lua_pop(L, 2);
        } else {
            rc = EK_EKIND;
        }
        lua_pop(L, 1);
    }
    if (rc < 0) lua_pop(L, 1); /* the key left by the interrupted traversal */
    lua_pop(L, 1);
    return rc;
}

static int http_from_lua(lua_State *L, int idx, int kind, ek_msg **out)
{
    idx = lua_absindex(L, idx);
    if (!lua_checkstack(L, 8)) return EK_ENOMEM;
    ek_msg *m = NULL;
    int rc;
    bool bad = false;
    size_t bl = 0;
    const char *body = NULL;
    if (lua_type(L, idx) == LUA_TSTRING) {
        if (kind != EK_MSG_HTTP_RESPONSE) return EK_EKIND;
        /* a bare string: 200 OK with that body */
        body = lua_tolstring(L, idx, &bl);
        rc = ek_msg_http_response(200, "OK", 2, 11, &m);
        if (rc == EK_OK) rc = ek_msg_http_set_body_copy(m, body, bl);
        if (rc < 0) {
            ek_msg_free(m);
            return rc;
        }
        *out = m;
        return EK_OK;
    }
    if (lua_type(L, idx) != LUA_TTABLE) return EK_EKIND;
    lua_Integer version;
    if (!int_field(L, idx, "version", 11, &version)) return EK_EKIND;
    if (kind == EK_MSG_HTTP_REQUEST) {
        size_t ml = 0, tl = 0;
        const char *method = str_field(L, idx, "method", &ml, &bad);
        const char *target = str_field(L, idx, "target", &tl, &bad);
        if (bad) return EK_EKIND;
        if (!method) method = "GET", ml = 3;
        if (!target) target = "/", tl = 1;
        rc = ek_msg_http_request(method, ml, target, tl, (int)version, &m);
    } else {
        lua_Integer status;
        size_t rl = 0;
        if (!int_field(L, idx, "status", 200, &status)) return EK_EKIND;
        const char *reason = str_field(L, idx, "reason", &rl, &bad);
        if (bad) return EK_EKIND;
        if (status < 100 || status > 999) return EK_EINVAL;
        rc = ek_msg_http_response((int)status, reason, reason ? rl : 0, (int)version, &m);
    }
    if (rc < 0) return rc;
    rc = http_headers_from_lua(L, idx, m);
    body = str_field(L, idx, "body", &bl, &bad);
    if (rc == EK_OK && bad) rc = EK_EKIND;
    if (rc == EK_OK && body) rc = ek_msg_http_set_body_copy(m, body, bl);
    lua_pushliteral(L, "keep_alive");
    lua_rawget(L, idx);
    if (rc == EK_OK && lua_type(L, -1) == LUA_TBOOLEAN)
        rc = ek_msg_http_set_keep_alive(m, lua_toboolean(L, -1));
    lua_pop(L, 1);
    if (rc < 0) {
        ek_msg_free(m);
        return rc;
    }
    *out = m;
    return EK_OK;
}

/* -------------------------------------------------------------- entry -- */

int ekl_msg_from_lua(lua_State *L, const ekl_ctx *c, int idx, int kind, ek_msg **out)
{
    *out = NULL;
    switch (kind) {
    case EKL_MSG_AUTO:
        if (lua_type(L, idx) == LUA_TSTRING) {
            size_t n;
            const char *s = lua_tolstring(L, idx, &n);
            return ek_msg_bytes_copy(s, n, out);
        }
        if (lua_type(L, idx) == LUA_TTABLE) {
            /* a table with a method is an HTTP request, with a status a response */
            lua_pushliteral(L, "method");
            lua_rawget(L, idx < 0 ? idx - 1 : idx);
            bool method = lua_type(L, -1) == LUA_TSTRING;
            lua_pop(L, 1);
            if (method) return http_from_lua(L, idx, EK_MSG_HTTP_REQUEST, out);
            lua_pushliteral(L, "status");
            lua_rawget(L, idx < 0 ? idx - 1 : idx);
            bool status = lua_type(L, -1) == LUA_TNUMBER;
            lua_pop(L, 1);
            if (status) return http_from_lua(L, idx, EK_MSG_HTTP_RESPONSE, out);
            return resp_from_lua(L, c, idx, 0, false, out);
        }
        return EK_EKIND;
    case EK_MSG_BYTES: {
        if (lua_type(L, idx) != LUA_TSTRING) return EK_EKIND;
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return ek_msg_bytes_copy(s, n, out);
    }
    case EK_MSG_RESP:
        return resp_from_lua(L, c, idx, 0, false, out);
    case EKL_MSG_RESP_REQUEST:
        /* a command: { "GET", "k" } (a string alone is a command without arguments) */
        if (lua_type(L, idx) == LUA_TSTRING) {
            ek_msg *one = NULL;
            int rc = ek_msg_resp_aggregate(EK_RESP_ARRAY, 1, out);
            if (rc == EK_OK) rc = resp_from_lua(L, c, idx, 1, true, &one);
            if (rc == EK_OK) rc = ek_msg_resp_append(*out, one);
            if (rc < 0) {
                ek_msg_free(*out);
                *out = NULL;
            }
            return rc;
        }
        if (lua_type(L, idx) != LUA_TTABLE) return EK_EKIND;
        return resp_from_lua(L, c, idx, 0, true, out);
    case EK_MSG_HTTP_REQUEST:
    case EK_MSG_HTTP_RESPONSE:
        return http_from_lua(L, idx, kind, out);
    default:
        return EK_EINVAL;
    }
}

void ekl_msg_open(lua_State *L, ekl_ctx *c)
{
    /* The name cache's registry slots, made now (in the protected open) so
     * that filling one later allocates nothing. */
    for (int i = 0; i < EKL_NAMES; i++) {
        lua_pushboolean(L, 0);
        c->names[i].ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    /* The tag strings and "OK", "PONG" (see ekl_ctx), held by a table that
     * the registry keeps for the state's life. */
    lua_createtable(L, EKL_TAGS + 2, 0);
    for (int i = 0; i < EKL_TAGS + 2; i++) {
        lua_pushstring(L, i < EKL_TAGS ? tags[i] : i == EKL_TAGS ? "OK" : "PONG");
        if (i < EKL_TAGS)
            c->tag_str[i] = lua_topointer(L, -1);
        else
            c->reply_str[i - EKL_TAGS] = lua_topointer(L, -1);
        lua_rawseti(L, -2, i + 1);
    }
    (void)luaL_ref(L, LUA_REGISTRYINDEX);
    /* ek.null: a unique full userdata printed as "ekiden.null". */
    lua_pushlightuserdata(L, &null_key);
    ekl_newuserdata(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, null_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "ekiden.null");
    lua_setfield(L, -2, "__name");
    lua_setmetatable(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_getfield(L, LUA_REGISTRYINDEX, "ekiden.core");
    ekl_push_null(L);
    lua_setfield(L, -2, "null");
    lua_pop(L, 1);
}
