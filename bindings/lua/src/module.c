/*
 * module.c - the module's entry points, the per-state context, and helpers the
 * other files share (errors, classes, the current cx).
 *
 * luaopen_ekiden builds a table `core` of C functions and runs the Lua part of
 * the module (ekiden.lua, compiled into the library) with it; that chunk wraps
 * every operation that can wait in a function that yields, and returns the
 * module table. The context is a full userdata kept in the registry under
 * EKL_CTX_MT; its finalizer runs when the state closes (it was created before
 * any handle, so it is finalized after all of them) and cancels what is left.
 */
#include "ekl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ekiden_lua.h"
#include "ekiden_lua_src.h" /* generated: ekl_lua_src[], from ekiden.lua */

char ekl_pending_key;

/* ------------------------------------------------------------ runtimes -- */

ekl_rt *ekl_rt_ref(ekl_rt *h)
{
    h->refs++;
    return h;
}

void ekl_rt_unref(ekl_rt *h)
{
    if (!h || --h->refs > 0) return;
    if (h->owned) ek_runtime_free(h->rt);
    free(h);
}

/* ------------------------------------------------------------- context -- */

void ekl_ctx_unref(ekl_ctx *c)
{
    if (--c->refs > 0) return;
    while (c->free_tasks) {
        ekl_task *t = c->free_tasks;
        c->free_tasks = t->next;
        free(t);
    }
    free(c->scratch);
    free(c);
}

ekl_ctx *ekl_ctx_of(lua_State *L)
{
    return *(ekl_ctx **)lua_touserdata(L, lua_upvalueindex(1));
}

static int ctx_gc(lua_State *L)
{
    ekl_ctx **pc = lua_touserdata(L, 1);
    ekl_ctx *c = *pc;
    if (!c) return 0;
    *pc = NULL;
    ekl_tasks_abort_all(c);
    c->L = NULL;
    if (c->rt) {
        ekl_rt *h = c->rt;
        c->rt = NULL;
        ekl_rt_unref(h);
    }
    ekl_ctx_unref(c);
    return 0;
}

ekl_rt *ekl_need_rt(lua_State *L, ekl_ctx *c)
{
    if (!c->rt) luaL_error(L, "ekiden: no runtime (call this inside ek.run)");
    return c->rt;
}

/* ekl_need_cx's way when the fast test failed: raises, or (cannot happen
 * after that test) returns the cx. */
ek_cx *ekl_need_cx_slow(lua_State *L, ekl_ctx *c)
{
    if (!c->cx || !c->cur)
        luaL_error(L, "ekiden: this operation waits, so it must run inside a task "
                      "(a function run by ek.run or ek.spawn)");
    if (c->cur->co != L)
        luaL_error(L, "ekiden: this operation waits, so it must run in the task's own "
                      "coroutine, not in a coroutine created by coroutine.create/wrap");
    return c->cx;
}

int ekl_push_error(lua_State *L, int code)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", ek_err_name(code), ek_strerror(code));
    lua_pushstring(L, ek_err_name(code));
    return 3;
}

void ekl_wait_register(ekl_ctx *c, void *obj, ekl_cancel_fn cancel)
{
    ekl_task *t = c->cur;
    if (!t) return;
    for (int i = 0; i < t->nwaits; i++)
        if (t->waits[i].obj == obj) return;
    /* More than EKL_MAX_WAITS at once: the rest is released by the collector. */
    if (t->nwaits == EKL_MAX_WAITS) return;
    t->waits[t->nwaits].obj = obj;
    t->waits[t->nwaits].cancel = cancel;
    t->nwaits++;
}

void *ekl_newudata(lua_State *L, size_t sz, const char *mt)
{
    void *p = ekl_newuserdata(L, sz);
    memset(p, 0, sz);
    luaL_setmetatable(L, mt);
    return p;
}

void ekl_set_funcs(lua_State *L, ekl_ctx *c, const luaL_Reg *l)
{
    for (; l->name; l++) {
        lua_getfield(L, LUA_REGISTRYINDEX, EKL_CTX_MT);
        lua_pushcclosure(L, l->func, 1);
        lua_setfield(L, -2, l->name);
    }
}

/* Metatable `name`: __index = methods, plus meta; both get the ctx upvalue. The
 * method table is also stored as core.methods[name] so that ekiden.lua can wrap
 * the waiting methods, and the metatable as core.metatables[name]. */
/* Set the functions of l in the table at -2 (the metatable at -1 beside it)
 * as closures over (ctx, metatable). */
static void set_class_funcs(lua_State *L, const luaL_Reg *l)
{
    for (; l->name; l++) {
        lua_getfield(L, LUA_REGISTRYINDEX, EKL_CTX_MT);
        lua_pushvalue(L, -2);
        lua_pushcclosure(L, l->func, 2);
        lua_setfield(L, -3, l->name);
    }
}

void ekl_newclass(lua_State *L, ekl_ctx *c, const char *name, const luaL_Reg *methods,
                  const luaL_Reg *meta)
{
    (void)c;
    luaL_newmetatable(L, name);
    lua_pushvalue(L, -1);
    set_class_funcs(L, meta);
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -2);
    set_class_funcs(L, methods);
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
    lua_getfield(L, LUA_REGISTRYINDEX, "ekiden.methods");
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, name);
    lua_pop(L, 2);
    lua_getfield(L, LUA_REGISTRYINDEX, "ekiden.metatables");
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, name);
    lua_pop(L, 2);
}

char *ekl_scratch(ekl_ctx *c, size_t n)
{
    if (n <= c->scratch_cap) return c->scratch;
    size_t cap = c->scratch_cap ? c->scratch_cap : 4096;
    while (cap < n) cap *= 2;
    char *p = realloc(c->scratch, cap);
    if (!p) return NULL;
    c->scratch = p;
    c->scratch_cap = cap;
    return p;
}

uint64_t ekl_check_ms(lua_State *L, int idx)
{
    lua_Number s = luaL_checknumber(L, idx);
    if (!(s >= 0)) luaL_argerror(L, idx, "a number of seconds >= 0 expected");
    lua_Number ms = s * 1000.0;
    if (ms >= 1.8e19) return UINT64_MAX;
    uint64_t whole = (uint64_t)ms;
    if ((lua_Number)whole < ms) whole++;
    return whole;
}

/* -------------------------------------------------------- core functions -- */

static int l_strerror(lua_State *L)
{
    int code = (int)luaL_checkinteger(L, 1);
    lua_pushstring(L, ek_strerror(code));
    lua_pushstring(L, ek_err_name(code));
    return 2;
}

static int l_version(lua_State *L)
{
    lua_pushstring(L, ek_version_string());
    return 1;
}

static const luaL_Reg core_funcs[] = {
    {"strerror", l_strerror},
    {"version", l_version},
    {NULL, NULL},
};

/* Build the context, the classes and `core`, then run ekiden.lua(core). */
static int open_module(lua_State *L, ek_runtime *host)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "ekiden.module");
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);

    ekl_ctx *c = calloc(1, sizeof *c);
    if (!c) return luaL_error(L, "ekiden: out of memory");
    c->refs = 1;
    /* A thread of our own, anchored in the registry: it lives as long as the
     * state, whichever thread called us (5.1 has no way to find the main one). */
    c->L = lua_newthread(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "ekiden.thread");

    ekl_ctx **pc = lua_newuserdata(L, sizeof *pc);
    *pc = c;
    luaL_newmetatable(L, EKL_CTX_MT "#mt");
    lua_pushcfunction(L, ctx_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, EKL_CTX_MT);

    if (host) {
        ekl_rt *h = calloc(1, sizeof *h);
        if (!h) return luaL_error(L, "ekiden: out of memory");
        h->rt = host;
        h->refs = 1;
        c->rt = h;
        c->host_rt = true;
    }

    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "ekiden.methods");
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "ekiden.metatables");

    lua_newtable(L); /* core */
    ekl_set_funcs(L, c, core_funcs);
    ekl_push_pending(L);
    lua_setfield(L, -2, "PENDING");
    lua_pushboolean(L, host != NULL);
    lua_setfield(L, -2, "embedded");
    lua_pushstring(L, LUA_VERSION_NUM >= 504 ? "5.4" : "5.1");
    lua_setfield(L, -2, "lua_api");
    lua_setfield(L, LUA_REGISTRYINDEX, "ekiden.core");

    ekl_task_open(L, c);
    ekl_time_open(L, c);
    ekl_net_open(L, c);
    ekl_buffer_open(L, c);
    ekl_sync_open(L, c);
    ekl_service_open(L, c);
    ekl_serve_open(L, c);
    ekl_msg_open(L, c);

    lua_getfield(L, LUA_REGISTRYINDEX, "ekiden.core");
    lua_getfield(L, LUA_REGISTRYINDEX, "ekiden.methods");
    lua_setfield(L, -2, "methods");
    lua_getfield(L, LUA_REGISTRYINDEX, "ekiden.metatables");
    lua_setfield(L, -2, "metatables");
    if (luaL_loadbuffer(L, ekl_lua_src, sizeof ekl_lua_src, "=ekiden.lua") != 0)
        return lua_error(L);
    lua_insert(L, -2);
    lua_call(L, 1, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "ekiden.module");
    return 1;
}

int luaopen_ekiden(lua_State *L)
{
    return open_module(L, NULL);
}

static int open_protected(lua_State *L)
{
    ek_runtime *rt = lua_touserdata(L, 1);
    lua_settop(L, 0);
    open_module(L, rt);
    /* package.loaded.ekiden = module, so that require finds it. */
    lua_getglobal(L, "package");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "loaded");
        if (lua_istable(L, -1)) {
            lua_pushvalue(L, 1);
            lua_setfield(L, -2, "ekiden");
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 1;
}

int ekiden_lua_open(lua_State *L, ek_runtime *rt)
{
    if (!L || !rt || ek_runtime_worker_count(rt) < 0) return EK_EINVAL;
    lua_getfield(L, LUA_REGISTRYINDEX, EKL_CTX_MT);
    if (!lua_isnil(L, -1)) {
        ekl_ctx *c = *(ekl_ctx **)lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (!c || !c->rt || c->rt->rt != rt) return EK_EBUSY;
        lua_getfield(L, LUA_REGISTRYINDEX, "ekiden.module");
        return 1;
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, open_protected);
    lua_pushlightuserdata(L, rt);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        const char *msg = lua_tostring(L, -1);
        int nomem = msg && strstr(msg, "out of memory");
        lua_pop(L, 1);
        return nomem ? EK_ENOMEM : EK_EINVAL;
    }
    return 1;
}
