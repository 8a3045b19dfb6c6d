/*
 * ekiden-lua.c - a Lua 5.4 interpreter with the ekiden module built in:
 *   ekiden-lua SCRIPT [ARGS...]
 * runs SCRIPT with `arg` set as lua5.4 does and `require "ekiden"` answered by
 * the statically linked binding (package.preload). The test suite runs through
 * it in sanitizer builds, where the module must be instrumented with the rest.
 * Exit status: 0 when the script ran to its end, 1 on an error (printed with a
 * traceback), 2 on a usage error.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>

#include "ekiden_lua.h"

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
        return 2;
    }
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "ekiden-lua: cannot create a Lua state\n");
        return 1;
    }
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_ekiden);
    lua_setfield(L, -2, "ekiden");
    lua_pop(L, 1);
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");

    int status = 1;
    lua_pushcfunction(L, traceback);
    if (luaL_loadfile(L, argv[1]) == LUA_OK) {
        for (int i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
        if (lua_pcall(L, argc - 2, 0, 1) == LUA_OK) status = 0;
    }
    if (status) fprintf(stderr, "ekiden-lua: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return status;
}
