/*
 * ekiden_lua.h - the public C interface of Ekiden's Lua binding, for C programs
 * that embed Lua (a Lua 5.4 or LuaJIT lua_State) and want its scripts to use the
 * runtime the program already runs.
 *
 * A script gets the module with `local ek = require "ekiden"`. Two ways in:
 * - a standalone interpreter (`lua5.4`, `luajit`) loads the C module ekiden.so
 *   from package.cpath (luaopen_ekiden); `ek.run(fn, opts)` then creates a
 *   runtime for the duration of the run;
 * - a host program calls ekiden_lua_open(L, rt) (linking this binding in, see
 *   bindings/lua/CMakeLists.txt: target ekiden_lua_embed) before running scripts;
 *   every `ek.*` function then uses `rt`, and `ek.run(fn)` drives `fn` on it.
 *
 * Threads: a lua_State is only ever entered by one thread. The binding runs Lua
 * code (tasks, services) only on the thread that called ekiden_lua_open (or
 * luaopen_ekiden): Lua tasks are local tasks pinned to that thread, and they run
 * while that thread is inside ek.run, ek_block_on or ek_join_wait of the runtime.
 */
#ifndef EKIDEN_LUA_H
#define EKIDEN_LUA_H

#include <ekiden.h>
#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define EKIDEN_LUA_EXTERN __attribute__((visibility("default")))
#else
#define EKIDEN_LUA_EXTERN
#endif

/*
 * The module's entry point, as `require "ekiden"` calls it: pushes the module
 * table (one per lua_State; a second call returns the same table). Without a
 * runtime handed over, ek.run creates one per run.
 * Thread: the one thread that enters L.
 */
EKIDEN_LUA_EXTERN int luaopen_ekiden(lua_State *L);

/*
 * Open the module in L on the host's runtime `rt` (borrowed: the binding never
 * shuts it down or frees it) and make `require "ekiden"` return it (it sets
 * package.loaded.ekiden). Pushes the module table and returns 1; on error pushes
 * nothing and returns a negative EK_E* code: EK_EINVAL (NULL L or rt), EK_EBUSY
 * (the module was already opened in L with another runtime), EK_ENOMEM.
 *
 * Lifetime: close the state (lua_close) before freeing rt. Closing the state with
 * Lua tasks still pending cancels them: their C tasks are aborted and, when the
 * runtime drops them (on this thread, the next time it runs local tasks, or at
 * ek_runtime_shutdown / ek_runtime_free), release only C memory. Handles
 * (sockets, channels) are closed by their finalizers during lua_close.
 * Thread: the one thread that enters L; Lua tasks of L are pinned to it.
 */
EKIDEN_LUA_EXTERN int ekiden_lua_open(lua_State *L, ek_runtime *rt);

#ifdef __cplusplus
}
#endif

#endif
