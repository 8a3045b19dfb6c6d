/*
 * lua_host.c - a C program that embeds Lua on its own Ekiden runtime.
 *
 * It creates the runtime, registers a C service ("c.upper": upper-cases a
 * line), opens Lua with ekiden_lua_open(L, rt), and runs a Lua script that
 * registers a Lua service ("lua.shout") wrapping the C one, then serves it on a
 * socket with ek.serve (the C framed server, lines codec): one request per line,
 * one response line per request, pipelined.
 *
 *   lua_host [ADDR [CONNECTIONS]]   ADDR default 127.0.0.1:0; with CONNECTIONS,
 *                                   exits after serving that many connections
 *   printf 'hello\n' | socat - TCP:127.0.0.1:PORT      ->  [HELLO]
 *
 * The C service is called from the Lua task through the registry's buffer
 * (on the runtime's workers); the Lua service runs on this thread, behind its
 * local buffer. Both languages share one runtime, one registry, one reactor.
 */
#include <ctype.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

#include "ekiden.h"
#include "ekiden_lua.h"

/* ---- the C service: responses complete at once ---- */

typedef struct ready {
    ek_msg *m;
} ready;

static int ready_poll(void *state, ek_cx *cx, void **out)
{
    (void)cx;
    ready *r = state;
    *out = r->m; /* the response message, now the awaiter's */
    r->m = NULL;
    return EK_OK;
}

static void ready_drop(void *state)
{
    ready *r = state;
    ek_msg_free(r->m); /* a response nobody awaited */
    free(r);
}

static int upper_ready(void *self, ek_cx *cx)
{
    (void)self;
    (void)cx;
    return EK_OK;
}

static int upper_call(void *self, ek_msg *req, ek_future **resp)
{
    (void)self;
    const uint8_t *data = NULL;
    size_t len = 0;
    int rc = ek_msg_data(req, &data, &len);
    char *up = rc == EK_OK ? malloc(len ? len : 1) : NULL;
    if (rc == EK_OK && !up) rc = EK_ENOMEM;
    ek_msg *m = NULL;
    if (rc == EK_OK) {
        for (size_t i = 0; i < len; i++) up[i] = (char)toupper(data[i]);
        rc = ek_msg_bytes_copy(up, len, &m);
    }
    free(up);
    ek_msg_free(req);
    ready *r = rc == EK_OK ? malloc(sizeof *r) : NULL;
    if (rc == EK_OK && !r) rc = EK_ENOMEM;
    if (rc) {
        ek_msg_free(m);
        return rc;
    }
    r->m = m;
    return ek_future_new(ready_poll, ready_drop, r, resp);
}

static const ek_service_vtable upper_vt = {.poll_ready = upper_ready, .call = upper_call};

/* ---- the Lua side ---- */

static const char *script =
    "local addr, max = ...\n"
    "local upper = assert(ek.lookup('c.upper'))\n"
    "-- A Lua service wrapping the C one.\n"
    "assert(ek.register('lua.shout', ek.service(function(line)\n"
    "  local up, err = upper:call(line)\n"
    "  if not up then return nil, err, 'EHOST' end\n"
    "  return '[' .. up .. ']'\n"
    "end)))\n"
    "ek.run(function()\n"
    "  -- The C framed server: a line in, the service's answer out.\n"
    "  local server = assert(ek.serve { addr = addr, codec = 'lines',\n"
    "                                   service = assert(ek.lookup('lua.shout')) })\n"
    "  print('listening on ' .. server:local_addr())\n"
    "  io.stdout:flush()\n"
    "  while true do\n"
    "    ek.sleep(0.01)\n"
    "    local m = server:metrics()\n"
    "    if max and m.CONNECTIONS_TOTAL >= max and m.CONNECTIONS_OPEN == 0 then break end\n"
    "  end\n"
    "  assert(server:shutdown(5))\n"
    "end)\n";

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:0";
    int max = argc > 2 ? atoi(argv[2]) : 0;

    ek_runtime *rt = NULL;
    int rc = ek_runtime_new(NULL, &rt);
    if (rc) {
        fprintf(stderr, "lua_host: runtime: %s\n", ek_strerror(rc));
        return 1;
    }
    ek_service *upper = NULL;
    rc = ek_service_new(&upper_vt, NULL, &upper);
    if (rc == EK_OK) rc = ek_registry_register(rt, "c.upper", upper);
    if (rc) {
        fprintf(stderr, "lua_host: register: %s\n", ek_strerror(rc));
        ek_runtime_free(rt);
        return 1;
    }

    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (ekiden_lua_open(L, rt) != 1) {
        fprintf(stderr, "lua_host: ekiden_lua_open failed\n");
        return 1;
    }
    lua_setglobal(L, "ek");
    int status = 0;
    if (luaL_loadstring(L, script) != 0) {
        status = 1;
    } else {
        lua_pushstring(L, addr);
        if (max > 0)
            lua_pushinteger(L, max);
        else
            lua_pushnil(L);
        status = lua_pcall(L, 2, 0, 0) != 0;
    }
    if (status) fprintf(stderr, "lua_host: %s\n", lua_tostring(L, -1));
    lua_close(L); /* before the runtime: the state's tasks are cancelled */
    ek_runtime_free(rt);
    return status;
}
