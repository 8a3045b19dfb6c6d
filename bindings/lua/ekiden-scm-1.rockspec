-- LuaRocks: builds the ekiden module with the project's CMake (the C runtime and
-- the binding) against the headers of the Lua the rock is for (LUA_INCDIR: only
-- that module), and installs ekiden.so and libekiden.so into the tree's C module
-- directory.
--   luarocks make bindings/lua/ekiden-scm-1.rockspec     (from a checkout's root;
--   --lua-version 5.4, or 5.1 for LuaJIT; tested by tests/lua/rock.sh)
rockspec_format = "3.0"
package = "ekiden"
version = "scm-1"
source = { url = "git+https://github.com/ekiden/ekiden.git" }
description = {
  summary = "Coroutine tasks, sockets, timers, channels and services on the Ekiden async runtime",
  detailed = [[
    Lua coroutines run as tasks of Ekiden's work-stealing C scheduler: TCP, UDP
    and Unix sockets, timers, channels, semaphores and Finagle-style services,
    with waits that yield (also inside pcall and iterators). Lua 5.4 and LuaJIT.
  ]],
  license = "MIT",
}
dependencies = { "lua >= 5.1" }
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    EK_TESTS = "OFF",
    EK_LUA_INCDIR = "$(LUA_INCDIR)",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    EK_LUA_CMOD_DIR = "$(LIBDIR)",
    EK_LUAJIT_CMOD_DIR = "$(LIBDIR)",
    CMAKE_INSTALL_LIBDIR = "$(LIBDIR)",
  },
}
