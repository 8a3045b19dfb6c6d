/*
 * time.c - ek.sleep (a heap future), ek.interval (for-loop iterator over
 * ek_interval), ek.now. Times are seconds as Lua numbers, rounded up to whole
 * milliseconds (the timer wheel's resolution).
 */
#include "ekl.h"

#include <time.h>

/* core.sleep(s): a future completing after s seconds (its value: true). */
static int l_sleep(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    uint64_t ms = ekl_check_ms(L, 1);
    ekl_rt *h = ekl_need_rt(L, c);
    if (h->closed) return ekl_push_error(L, EK_ECLOSED);
    ek_future *f = NULL;
    int rc = ek_sleep(h->rt, ms, &f);
    if (rc) return ekl_push_error(L, rc);
    ekl_push_future(L, h, f, NULL);
    return 1;
}

static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

typedef struct interval_ud {
    ek_interval *iv;
    ekl_rt *h;
    uint64_t start_ms; /* ek_now_ms when created, so ticks count from 0 */
} interval_ud;

static int l_interval(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    uint64_t ms = ekl_check_ms(L, 1);
    if (ms == 0) return luaL_argerror(L, 1, "period must be at least 0.001 s");
    static const char *const policies[] = {"burst", "delay", "skip", NULL};
    int policy = luaL_checkoption(L, 2, "burst", policies);
    ekl_rt *h = ekl_need_rt(L, c);
    if (h->closed) return ekl_push_error(L, EK_ECLOSED);
    interval_ud *u = ekl_newudata(L, sizeof *u, EKL_INTERVAL_MT);
    int rc = ek_interval_new(h->rt, ms, policy, &u->iv);
    if (rc) {
        lua_pop(L, 1);
        return ekl_push_error(L, rc);
    }
    u->h = ekl_rt_ref(h);
    u->start_ms = ek_now_ms(h->rt);
    return 1;
}

static interval_ud *check_interval(lua_State *L)
{
    return ekl_check_self(L, EKL_INTERVAL_MT);
}

/* core interval:tick_poll(): seconds since the interval started of this tick's
 * scheduled time, PENDING, or nil, msg, name. */
static int l_interval_tick(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    interval_ud *u = check_interval(L);
    if (!u->iv || u->h->closed) return ekl_push_error(L, EK_ECLOSED);
    ek_cx *cx = ekl_need_cx(L, c);
    uint64_t tick = 0;
    int rc = ek_interval_tick(u->iv, cx, &tick);
    if (rc == EK_PENDING) {
        ekl_push_pending(L);
        return 1;
    }
    if (rc < 0) return ekl_push_error(L, rc);
    lua_pushnumber(L, (lua_Number)(tick - u->start_ms) / 1000.0);
    return 1;
}

static int l_interval_close(lua_State *L)
{
    interval_ud *u = check_interval(L);
    if (u->iv) ek_interval_free(u->iv);
    u->iv = NULL;
    if (u->h) ekl_rt_unref(u->h);
    u->h = NULL;
    return 0;
}

static int l_interval_tostring(lua_State *L)
{
    interval_ud *u = check_interval(L);
    lua_pushfstring(L, "ekiden.interval (%s): %p", u->iv ? "open" : "closed", (void *)u);
    return 1;
}

void ekl_time_open(lua_State *L, ekl_ctx *c)
{
    static const luaL_Reg methods[] = {
        {"tick", l_interval_tick},
        {"close", l_interval_close},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", l_interval_close},
        {"__close", l_interval_close},
        {"__tostring", l_interval_tostring},
        {NULL, NULL},
    };
    ekl_newclass(L, c, EKL_INTERVAL_MT, methods, meta);
    static const luaL_Reg funcs[] = {
        {"sleep", l_sleep},
        {"now", l_now},
        {"interval", l_interval},
        {NULL, NULL},
    };
    lua_getfield(L, LUA_REGISTRYINDEX, "ekiden.core");
    ekl_set_funcs(L, c, funcs);
    lua_pop(L, 1);
}
