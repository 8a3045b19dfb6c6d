/*
 * gc.c - ek.run's `gc` option: the collector's mode and pace for the run.
 *
 *   ek.run(fn, { gc = { mode = "incremental", pause = 1000, stepmul = 100 } })
 *
 * The option is applied when the run starts and the state's previous settings
 * (mode, pause, step multiplier) are put back when it ends, whatever its end.
 * `pause` and `stepmul` are the incremental collector's (Lua's manual, 2.5.1:
 * pause 200 and multiplier 100 by default, 1000 at most); given without a mode
 * they select the incremental mode. "generational" is Lua 5.4's other mode
 * (LuaJIT has only the incremental collector). Why a server wants this: every
 * string a read returns is garbage, and the collector's work per byte
 * allocated grows with the coroutines it re-marks (docs/lua.md, "Garbage
 * collection"). Runs only on the state's own thread, inside ek.run.
 */
#include "ekl.h"

#include <string.h>

/* The integer field `name` of the table at idx in [lo, hi], or -1 if absent;
 * raises on anything else. */
static int gc_field(lua_State *L, int idx, const char *name, int lo, int hi)
{
    lua_getfield(L, idx, name);
    int v = -1;
    if (!lua_isnil(L, -1)) {
        int isnum = 0;
        lua_Integer n = lua_tointegerx(L, -1, &isnum);
        if (!isnum || n < lo || n > hi)
            luaL_error(L, "ek.run: opts.gc.%s must be an integer %d..%d", name, lo, hi);
        v = (int)n;
    }
    lua_pop(L, 1);
    return v;
}

void ekl_gc_parse(lua_State *L, int opts, ekl_gc_opts *o)
{
    o->given = false;
    o->generational = false;
    o->pause = o->stepmul = -1;
    if (!lua_istable(L, opts)) return;
    lua_getfield(L, opts, "gc");
    int g = lua_gettop(L);
    if (lua_isnil(L, g)) {
        lua_pop(L, 1);
        return;
    }
    if (!lua_istable(L, g)) luaL_error(L, "ek.run: opts.gc must be a table");
    lua_getfield(L, g, "mode");
    if (!lua_isnil(L, -1)) {
        const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        if (strcmp(m, "generational") == 0)
            o->generational = true;
        else if (strcmp(m, "incremental") != 0)
            luaL_error(L, "ek.run: opts.gc.mode must be 'incremental' or 'generational'");
    }
    lua_pop(L, 1);
    o->pause = gc_field(L, g, "pause", 0, 1000);
    o->stepmul = gc_field(L, g, "stepmul", 1, 1000);
    lua_pop(L, 1);
    if (o->generational && (o->pause >= 0 || o->stepmul >= 0))
        luaL_error(L, "ek.run: opts.gc.pause and opts.gc.stepmul are the incremental mode's");
#if LUA_VERSION_NUM < 504
    if (o->generational) luaL_error(L, "ek.run: opts.gc.mode 'generational' needs Lua 5.4");
#endif
    o->given = true;
}

/* Set the pause (the step multiplier) to v, or leave it if v < 0; the
 * previous value. */
static int gc_param(lua_State *L, int what, int v)
{
    int old = lua_gc(L, what, v >= 0 ? v : 100);
    if (v < 0) lua_gc(L, what, old);
    return old;
}

void ekl_gc_apply(lua_State *L, const ekl_gc_opts *o, ekl_gc_saved *saved)
{
    saved->set = o->given;
    if (!o->given) return;
#if LUA_VERSION_NUM >= 504
    int was = o->generational ? lua_gc(L, LUA_GCGEN, 0, 0) : lua_gc(L, LUA_GCINC, 0, 0, 0);
    saved->generational = was == LUA_GCGEN;
#else
    saved->generational = false;
#endif
    saved->pause = gc_param(L, LUA_GCSETPAUSE, o->pause);
    saved->stepmul = gc_param(L, LUA_GCSETSTEPMUL, o->stepmul);
}

void ekl_gc_restore(lua_State *L, const ekl_gc_saved *saved)
{
    if (!saved->set) return;
#if LUA_VERSION_NUM >= 504
    if (saved->generational)
        lua_gc(L, LUA_GCGEN, 0, 0);
    else
        lua_gc(L, LUA_GCINC, 0, 0, 0);
#endif
    lua_gc(L, LUA_GCSETPAUSE, saved->pause);
    lua_gc(L, LUA_GCSETSTEPMUL, saved->stepmul);
}
