/*
 * ekl.h - internals of the Lua binding, shared by its source files. Nothing here
 * is public: the binding's public header is ekiden_lua.h.
 *
 * The model (DESIGN section 8):
 * - A Lua task is a coroutine driven by a local C task (ek_spawn_local) pinned to
 *   the thread that owns the lua_State. The task's poll resumes the coroutine with
 *   the poll's ek_cx stored in the binding's context (ekl_ctx.cx), so that C
 *   functions called by Lua code see the cx of the poll that runs them.
 * - An operation that must wait is a C function that calls the C operation with
 *   that cx and returns ekl_PENDING (a unique light userdata) when it reports
 *   EK_PENDING; the Lua wrapper around it (ekiden.lua) then yields the coroutine
 *   and calls the C function again when the runtime resumes it. C never yields, so
 *   there is no C-call boundary to yield across and nothing needs lua_yieldk: the
 *   same code runs on Lua 5.4 and on LuaJIT.
 * - Everything that runs Lua code runs on the state's own thread: local tasks are
 *   polled and dropped only there. Wakers, fired from any thread, only schedule the
 *   local task.
 * - Lifetime: the binding keeps a reference count on each runtime it uses
 *   (ekl_rt); every handle holds one, so a runtime outlives its sockets however
 *   the garbage collector orders their finalizers. The context (ekl_ctx) is
 *   reference-counted by the module and by every task record, and its `L` becomes
 *   NULL when the state closes, so a task dropped later never touches a closed
 *   state.
 */
#ifndef EKIDEN_LUA_EKL_H
#define EKIDEN_LUA_EKL_H

#include <ekiden.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- Lua 5.1 / LuaJIT compatibility ---- */
#if LUA_VERSION_NUM >= 502
#define ekl_rawlen(L, i) lua_rawlen(L, i)
#else
#define ekl_rawlen(L, i) lua_objlen(L, i)
#endif
#if LUA_VERSION_NUM >= 504
#define ekl_newuserdata(L, sz) lua_newuserdatauv(L, sz, 1)
#else
#define ekl_newuserdata(L, sz) lua_newuserdata(L, sz)
#endif
#if LUA_VERSION_NUM < 502
#define lua_absindex(L, i) ((i) > 0 || (i) <= LUA_REGISTRYINDEX ? (i) : lua_gettop(L) + (i) + 1)
#endif

/* Metatable names. */
#define EKL_CTX_MT      "ekiden.ctx"
#define EKL_TASK_MT     "ekiden.task"
#define EKL_FUTURE_MT   "ekiden.future"
#define EKL_STREAM_MT   "ekiden.stream"
#define EKL_LISTENER_MT "ekiden.listener"
#define EKL_UDP_MT      "ekiden.udp"
#define EKL_UDGRAM_MT   "ekiden.unix_dgram"
#define EKL_INTERVAL_MT "ekiden.interval"
#define EKL_CHANNEL_MT  "ekiden.channel"
#define EKL_SEM_MT      "ekiden.semaphore"
#define EKL_PERMIT_MT   "ekiden.permit"
#define EKL_NOTIFY_MT   "ekiden.notify"
#define EKL_WAITER_MT   "ekiden.waiter"
#define EKL_SERVICE_MT  "ekiden.service"
#define EKL_SERVER_MT   "ekiden.server"
#define EKL_PUSHES_MT   "ekiden.pushes"
#define EKL_BUFFER_MT   "ekiden.buffer"

/* The value C functions return (alone) when the operation must wait. */
extern char ekl_pending_key;
#define ekl_push_pending(L) lua_pushlightuserdata(L, &ekl_pending_key)

/* A runtime as the binding uses it: reference-counted by handles and runs. */
typedef struct ekl_rt {
    ek_runtime *rt;
    int refs;
    bool owned;  /* created by ek.run: shut down at its end, freed at the last ref */
    bool closed; /* shut down: operations on its handles answer EK_ECLOSED */
} ekl_rt;

ekl_rt *ekl_rt_ref(ekl_rt *h);
void ekl_rt_unref(ekl_rt *h);

typedef struct ekl_task ekl_task;
typedef struct ekl_ctx ekl_ctx;

/* An operation that waits without a Lua wrapper (net.c's stream and listener
 * operations): fn pushes the results onto L and returns their count, or returns
 * EKL_RETRY_PENDING (the resource registered cx's waker). obj, p, a, b are the
 * operation's state (the object, a pointer, sizes); the objects they point to
 * are arguments of the suspended call, so they stay alive while it waits. */
typedef struct ekl_retry ekl_retry;
typedef int (*ekl_retry_fn)(lua_State *L, ekl_ctx *c, ek_cx *cx, ekl_retry *r);
struct ekl_retry {
    ekl_retry_fn fn;
    void *obj;
    const void *p;
    size_t a, b, c;
};
#define EKL_RETRY_PENDING (-1)
/* The most values an ekl_retry_fn pushes without a lua_checkstack of its own
 * (push_eof's four; task.c's step relies on it: see there). */
#define EKL_RETRY_RESULTS 4
#define EKL_CORO_POOL     64
#define EKL_TASK_POOL     64

/* Something a waiting task holds that must be given back at once if the task is
 * cancelled (a queue place, a timer): registered by a poll that returns PENDING,
 * forgotten when the task is resumed. */
typedef void (*ekl_cancel_fn)(void *obj, ekl_task *t);
#define EKL_MAX_WAITS 4

/* A command name as Lua string, kept for the next request (msg.c, push_args):
 * registry ref `ref` holds the string of the len bytes b (len 0: none yet). */
#define EKL_TAGS     8 /* msg.c's tags[] */
#define EKL_NAMES    8
#define EKL_NAME_MAX 15
typedef struct ekl_name {
    uint8_t len;
    char b[EKL_NAME_MAX];
    int ref;
} ekl_name;

struct ekl_ctx {
    lua_State *L; /* the main thread of the state; NULL once the state closed */
    int refs;
    ekl_rt *rt;     /* the runtime of the current run, or the host's; may be NULL */
    bool host_rt;   /* rt was handed over by ekiden_lua_open */
    int run_depth;  /* > 0 while inside ek.run */
    ek_cx *cx;      /* the cx of the poll running now, NULL outside polls */
    ekl_task *cur;  /* the task being polled */
    ekl_task *head; /* live task records (not yet dropped by the runtime) */
    char *scratch;  /* read buffer for stream:read */
    size_t scratch_cap;
    size_t ntasks;                     /* live tasks, for ek.stats */
    int pool[EKL_CORO_POOL];           /* registry refs of idle coroutines (coro_bind) */
    lua_State *pool_co[EKL_CORO_POOL]; /* and the coroutines (kept alive by the refs) */
    int npool;
    ekl_task *free_tasks; /* released task records for reuse (linked by next) */
    int nfree;
    ekl_name names[EKL_NAMES]; /* recent command names (ekl_msg_push_args) */
    /* The RESP reply tags' strings ("ok", "err", ...) and "OK", "PONG", kept
     * in the registry for the state's life: a reply's key or value is one of
     * them exactly when it is that object (short strings are interned), so
     * a compare of lua_topointer finds it (ekl_msg_open). */
    const void *tag_str[EKL_TAGS];
    const void *reply_str[2];
    int batch_ref; /* the batch runner of function services (service.c) */
};

#define EKL_TASK_RUNNING   0
#define EKL_TASK_DONE      1 /* returned; results in res_ref */
#define EKL_TASK_FAILED    2 /* raised; error value in res_ref */
#define EKL_TASK_CANCELLED 3

struct ekl_task {
    ekl_ctx *ctx;
    ekl_rt *h;     /* the runtime the C task runs on (the join handle is its memory) */
    int refs;      /* the C task (until dropped) + the Lua handle (until collected) */
    lua_State *co; /* the coroutine, while co_ref holds it */
    int co_ref;
    int nargs; /* arguments waiting for the first resume */
    int state;
    bool c_alive;  /* the C task has not been dropped yet */
    bool observed; /* the result was taken (joined): an error is not reported */
    bool report;   /* print an error nobody will see (detached tasks) */
    int res_ref;   /* table {n = ..., ...} of results, or the error value */
    ek_join *join;
    ek_waker **waiters; /* tasks joining this one */
    size_t nwaiters, capwaiters;
    ekl_task *prev, *next; /* ctx->head list */
    ekl_task *parent;      /* scoped parent: cancelled with it (ek.timeout, groups) */
    ekl_task *kids;        /* scoped children */
    ekl_task *kprev, *knext;
    struct {
        void *obj;
        ekl_cancel_fn cancel;
    } waits[EKL_MAX_WAITS];
    int nwaits;
    ekl_retry retry; /* retry.fn set: suspended in that operation (from C) */
    void *call;      /* a function service's runner: the call it runs now (service.c) */
};

/* ---- module.c ---- */
ekl_ctx *ekl_ctx_of(lua_State *L); /* upvalue 1 of every binding function */
/* Drop a reference; the last one frees the context and its pooled records. */
void ekl_ctx_unref(ekl_ctx *c);
/* The runtime for new handles: the current run's or the host's. Raises if none. */
ekl_rt *ekl_need_rt(lua_State *L, ekl_ctx *c);
/* The cx of the running poll, checking that L is the running task's coroutine;
 * raises a clear error otherwise (outside a task, or from a coroutine of the
 * user's own that the runtime does not resume). */
ek_cx *ekl_need_cx_slow(lua_State *L, ekl_ctx *c);
static inline ek_cx *ekl_need_cx(lua_State *L, ekl_ctx *c)
{
    if (c->cx && c->cur && c->cur->co == L) return c->cx;
    return ekl_need_cx_slow(L, c);
}
/* Push nil, "NAME: message", "NAME"; returns 3. */
int ekl_push_error(lua_State *L, int code);
/* Register obj to be cancelled with cancel() if the current task is dropped while
 * waiting. */
void ekl_wait_register(ekl_ctx *c, void *obj, ekl_cancel_fn cancel);
/* Create a new userdata of size sz with metatable mt and a uservalue slot. */
void *ekl_newudata(lua_State *L, size_t sz, const char *mt);
/* Define metatable `name` with methods (index table) and metamethods. Their C
 * closures hold the ctx (upvalue 1) and the metatable (upvalue 2), which
 * ekl_check_self compares with. */
void ekl_newclass(lua_State *L, ekl_ctx *c, const char *name, const luaL_Reg *methods,
                  const luaL_Reg *meta);
/* luaL_checkudata(L, 1, mt) for the methods of class mt, without its registry
 * lookup by name (a string hash per call: 14% of an echo round trip): the
 * metatable of argument 1 is compared with the method's upvalue 2. Anything
 * else takes luaL_checkudata's way (and its error message). */
static inline void *ekl_check_self(lua_State *L, const char *mt)
{
    if (lua_type(L, 1) == LUA_TUSERDATA && lua_getmetatable(L, 1)) {
        int same = lua_rawequal(L, -1, lua_upvalueindex(2));
        lua_pop(L, 1);
        if (same) return lua_touserdata(L, 1);
    }
    return luaL_checkudata(L, 1, mt);
}
/* Grow ctx->scratch to at least n bytes; NULL on allocation failure. */
char *ekl_scratch(ekl_ctx *c, size_t n);
/* Seconds (Lua number) to whole milliseconds, rounding up; raises if negative or
 * not a number. */
uint64_t ekl_check_ms(lua_State *L, int idx);
void ekl_set_funcs(lua_State *L, ekl_ctx *c, const luaL_Reg *l);

/* ---- task.c ---- */
void ekl_task_open(lua_State *L, ekl_ctx *c);
/* Spawn the function and nargs arguments on top of L's stack (popped) as a Lua
 * task on h without a Lua handle: returns the record with a reference for the
 * caller (ekl_task_unref), or NULL with *rc set. */
ekl_task *ekl_spawn_raw(ekl_ctx *c, ekl_rt *h, lua_State *L, int nargs, int *rc);
void ekl_task_unref(ekl_task *t);
void ekl_task_cancel(ekl_task *t);
/* Wake cx's task when t finishes. EK_OK or EK_ENOMEM. */
int ekl_task_add_waiter(ekl_task *t, ek_cx *cx);
/* Push a finished task's results (or nil, err, "ERROR"); *n = how many. */
void ekl_task_push_results(lua_State *L, ekl_task *t, int *n);
/* A task record driven by a future's poll instead of a C task of its own (a
 * function service's runner), without a coroutine yet (NULL with *rc on
 * failure); ekl_coro_bind gives it one. */
ekl_task *ekl_coro_record(ekl_ctx *c, ekl_rt *h, int *rc);
/* Give t a coroutine (a pooled one if there is one) with room for `room`
 * values, for the caller to push the function and its arguments onto t->co
 * itself and set t->nargs (no lua_xmove); EK_ENOMEM: none given. */
int ekl_coro_bind(ekl_task *t, int room);
/* Resume t's coroutine under cx: EK_PENDING; EK_OK with *nres results on it;
 * EK_EHOST (it raised: the error value on top of it; t is marked failed);
 * EK_ECLOSED (state closed), EK_ECANCELED (not running). */
int ekl_coro_step(ekl_task *t, ek_cx *cx, int *nres);
/* After EK_OK or EK_EHOST, once the results are read: release the coroutine
 * (back to the pool after a normal return). */
void ekl_coro_finish(ekl_task *t);
/* After EK_OK, instead of ekl_coro_finish: keep t and its coroutine (its
 * stack emptied) for the next function to run on it (push the function and
 * its arguments onto t->co after lua_checkstack, set t->nargs); false if t
 * cannot be kept (children, joiners, a dead coroutine): finish it then. */
bool ekl_coro_park(ekl_task *t);
/* Drop the record (the future's drop): cancels it if it still runs. */
void ekl_coro_drop(ekl_task *t);
/* Suspend the running task (L is its coroutine) in the operation r (copied),
 * from a C function that has pushed nothing yet beyond its arguments:
 * its poll runs r->fn again until it completes, then resumes the coroutine with
 * its results as the results of the call. Returns lua_yield's value: a C
 * function ends with `return ekl_yield_retry(L, c, &r);`. */
int ekl_yield_retry(lua_State *L, ekl_ctx *c, const ekl_retry *r);
/* Abort every live task (state closing). */
void ekl_tasks_abort_all(ekl_ctx *c);
/* ---- time.c, net.c, sync.c ---- */
void ekl_time_open(lua_State *L, ekl_ctx *c);
void ekl_net_open(lua_State *L, ekl_ctx *c);
void ekl_sync_open(lua_State *L, ekl_ctx *c);
void ekl_service_open(lua_State *L, ekl_ctx *c);
void ekl_serve_open(lua_State *L, ekl_ctx *c);

/* ---- gc.c: ek.run's gc option ---- */
typedef struct ekl_gc_opts {
    bool given;         /* opts.gc was there */
    bool generational;  /* mode "generational" (else incremental) */
    int pause, stepmul; /* -1: unchanged */
} ekl_gc_opts;
typedef struct ekl_gc_saved {
    bool set; /* the settings below are to be put back */
    bool generational;
    int pause, stepmul;
} ekl_gc_saved;
/* Read opts.gc of the options table at idx (none: o->given false); raises on a
 * bad option, before anything is changed. */
void ekl_gc_parse(lua_State *L, int idx, ekl_gc_opts *o);
/* Apply o to the state, keeping its previous settings in *saved; never raises. */
void ekl_gc_apply(lua_State *L, const ekl_gc_opts *o, ekl_gc_saved *saved);
/* Put back what ekl_gc_apply changed (nothing if it changed nothing). */
void ekl_gc_restore(lua_State *L, const ekl_gc_saved *saved);

/* ---- buffer.c: ek.buffer ---- */
/* A byte buffer: len bytes held at the start of data (cap bytes, malloc'd when
 * the buffer is made, never moved); data is NULL once closed. */
typedef struct ekl_buffer {
    const void *magic; /* buffer.c's marker: ekl_to_buffer's fast test */
    char *data;
    size_t len, cap;
} ekl_buffer;
void ekl_buffer_open(lua_State *L, ekl_ctx *c);
/* The buffer at idx (open or closed), or NULL if the value is not a buffer. */
ekl_buffer *ekl_to_buffer(lua_State *L, int idx);
/* string.sub's positions over len bytes: the 1-based first byte of start
 * position pos (1 for 0 and for positions before the start), and the last byte
 * of end position pos (clamped to len; 0 before the start). */
size_t ekl_pos_start(lua_Integer pos, size_t len);
size_t ekl_pos_end(lua_Integer pos, size_t len);

/* ---- msg.c: messages as Lua values (the mapping is described there) ---- */
/* What a Lua value becomes (ekl_msg_from_lua's kind): EK_MSG_BYTES (strings),
 * EK_MSG_RESP, EK_MSG_HTTP_REQUEST, EK_MSG_HTTP_RESPONSE, or: */
#define EKL_MSG_AUTO                                                                               \
    0                            /* a string: BYTES; a table: HTTP if it has a method              \
                                    or status, else RESP */
#define EKL_MSG_RESP_REQUEST 100 /* a command for a RESP server: numbers as bulk strings */
void ekl_msg_open(lua_State *L, ekl_ctx *c);
/* The Lua value at idx as a new message of `kind` (*out the caller's); c is
 * the state's context (its tag strings: see ekl_ctx), or NULL. Never raises:
 * EK_OK, EK_EKIND (no such message for this value), EK_EINVAL, EK_ERANGE,
 * EK_ENOMEM. */
int ekl_msg_from_lua(lua_State *L, const ekl_ctx *c, int idx, int kind, ek_msg **out);
/* Push m's Lua value (m is borrowed). Never raises: EK_OK, or an error with
 * nothing pushed. */
int ekl_msg_push(lua_State *L, const ek_msg *m);
/* For ek.service{args = true}: a RESP array's elements as *n values (pushed),
 * any other message as its one value. The first element (a command's name) is
 * the string of c's name cache when it is one of the last few names (no
 * hashing and interning of it per request). Never raises: EK_OK, or an error
 * with nothing pushed (EK_ERANGE: more than EKL_MAX_ARGS elements). */
#define EKL_MAX_ARGS 7000 /* below LuaJIT's C stack limit (LUAI_MAXCSTACK, 8000) */
int ekl_msg_push_args(lua_State *L, ekl_ctx *c, const ek_msg *m, int *n);
void ekl_push_null(lua_State *L);
bool ekl_is_null(lua_State *L, int idx);

/* ---- service.c, for serve.c ---- */
/* Push a handle over s (consumed) whose calls convert requests as `kind`. */
int ekl_push_service(lua_State *L, ekl_rt *h, ek_service *s, int kind);
/* A clone of the service handle at idx (*h its runtime, *kind its request
 * kind), or NULL after pushing nil, msg, name (*n values). */
ek_service *ekl_service_clone_at(lua_State *L, int idx, ekl_rt **h, int *kind, int *n);
/* For the handle of an ek.service function at idx: a shareable service that
 * calls the function directly (no buffer), for local tasks of this thread only
 * (ek.serve's local server). NULL with *n = 0 for any other service handle, or
 * after pushing nil, msg, name (*n values). */
ek_service *ekl_service_direct_at(lua_State *L, int idx, int *n);
/* Keep the value on top (popped) as what svc:pushes() of the handle at idx
 * returns (a client's push frames). */
void ekl_service_set_pushes(lua_State *L, int idx);

/* Heap futures as Lua values (task.c). `convert` turns the future's output into
 * Lua values (pushes them, returns how many), or releases it if L is NULL. */
typedef int (*ekl_convert_fn)(lua_State *L, ekl_ctx *c, ekl_rt *h, void *out);
typedef struct ekl_future {
    ek_future *f;
    ekl_rt *h;
    ekl_convert_fn convert;
} ekl_future;
/* Wrap f (consumed) in a new future userdata on the stack. */
void ekl_push_future(lua_State *L, ekl_rt *h, ek_future *f, ekl_convert_fn convert);

#endif
