/*
 * service.c - services from Lua (ekiden/service.h): a Lua function as a service,
 * calls to services of any language, the registry, middleware.
 *
 * ek.service(fn) makes a C service whose call spawns fn(request) as a Lua task
 * and whose response future waits for that task. That service is only ever used
 * on the state's thread: it is wrapped at once in ek_svc_buffer_local, whose
 * worker is a local task on this thread, so that callers on any thread (C tasks
 * on the workers, other languages through the registry) reach it through the
 * buffer and the Lua code runs here. Every Lua service handle is shareable; a
 * call uses a clone of it (ek_service_oneshot), so any number of Lua tasks may
 * call one handle at once.
 *
 * Messages: a Lua string is a bytes message (ek_msg_bytes); a bytes response
 * comes back as a string. A Lua error in a service function fails the response
 * with EK_EHOST (the error is printed on stderr, as no caller in another
 * language could read it).
 */
#include "ekl.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -------------------------------------------------------------- values -- */

/* Push the message's Lua value; consumes m. Returns the count pushed (1, or 3
 * for nil, msg, name). */
static int msg_to_lua(lua_State *L, ek_msg *m)
{
    int rc = ekl_msg_push(L, m);
    ek_msg_free(m);
    return rc < 0 ? ekl_push_error(L, rc) : 1;
}

/* The kind of a Lua service's response to a request of kind `req`. */
static int response_kind(int req)
{
    switch (req) {
    case EK_MSG_BYTES:
    case EK_MSG_RESP:
        return req;
    case EK_MSG_HTTP_REQUEST:
        return EK_MSG_HTTP_RESPONSE;
    default:
        return EKL_MSG_AUTO;
    }
}

/* ------------------------------------------------ a Lua function service -- */

typedef struct lsvc_anchor lsvc_anchor;

typedef struct lcall lcall;

typedef struct lsvc {
    ekl_ctx *c;
    ekl_rt *h;
    int fn_ref;
    bool args;            /* ek.service(fn, {args = true}): a command's elements as arguments */
    lsvc_anchor *anchor;  /* how direct handles find it (NULL: none made yet) */
    int refs;             /* the service (until dropped) + each call */
    lcall *qhead, *qtail; /* calls not yet taken by a runner */
    lcall *spare;         /* released calls for reuse (linked by next) */
    int nspare;
    ekl_task *parked; /* a runner record that finished, kept with its coroutine */
} lsvc;

/* A call of a function service: its response future's state. */
struct lcall {
    lsvc *s;     /* a reference */
    ek_msg *req; /* the request, until its function is called */
    ek_msg *out; /* the response, once done */
    int rc;      /* the call's result, once done */
    int kind;    /* what the response becomes (response_kind) */
    bool queued; /* in s's queue */
    bool started, single, done;
    ekl_task *t;        /* the task record whose coroutine runs it, while it does */
    lcall *prev, *next; /* s's queue (next: s's spare list) */
};

#define LCALL_SPARE 64

/* What direct handles (below) hold to reach their lsvc: `s` is set and cleared
 * only on the state's thread (the lsvc is dropped there, by its buffer's local
 * worker), and read only there (direct handles are called only by local
 * tasks); the anchor itself is freed by whichever holder goes last, on any
 * thread. */
struct lsvc_anchor {
    atomic_int refs;
    lsvc *s;
};

static void anchor_unref(lsvc_anchor *a)
{
    /* acq_rel: the last holder sees the others' last uses before it frees. */
    if (a && atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) == 1) free(a);
}

/* Calls run in batches. A call queues its request on the lsvc (an lcall,
 * holding a reference on the lsvc) and returns its response future; the
 * first poll of a queued call starts a runner: a task record (ekl_coro_record)
 * with a pooled coroutine that runs that call and then every call still
 * queued on the lsvc, in order, within one resume: a C loop of lua_callk on
 * Lua 5.4 (batch_loop), a Lua loop on LuaJIT. The record is ctx->cur for the
 * whole resume (what a wait registers on and ekl_need_cx checks); taking a
 * call (batch_take) points the record at it (t->call, and the call's t) and
 * pushes the function and its arguments; what the call returned becomes its
 * response (call_result). So a server's read of 16 pipelined commands costs
 * one resume and one task record, not 16; a handler that waits keeps the
 * runner (its call's future resumes it), and the calls after it start a
 * runner of their own when polled; an error fails only its call. A queued
 * call's future is never polled before it is taken (that poll would take it),
 * so completing it from another poll needs no wake-up: its own first poll
 * reads the response. */

static void queue_unlink(lsvc *s, lcall *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        s->qhead = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        s->qtail = k->prev;
    k->prev = k->next = NULL;
    k->queued = false;
}

static void lsvc_unref(lsvc *s);

/* The response of call k, from what its function returned: ok (else the
 * error value at idx), the results from idx to the top. */
static void call_result(lua_State *L, ekl_ctx *c, lcall *k, bool ok, int idx)
{
    int n = lua_gettop(L) - idx + 1, rc;
    ek_msg *m = NULL;
    if (!ok) {
        const char *msg = lua_tostring(L, idx);
        fprintf(stderr, "ekiden: error in a Lua service: %s\n", msg ? msg : "(error object)");
        rc = EK_EHOST;
    } else if (n >= 3 && lua_isnil(L, idx) && lua_type(L, idx + 2) == LUA_TSTRING) {
        /* A service returning nil, msg, name fails with the code of that name. */
        rc = EK_EHOST;
        const char *name = lua_tostring(L, idx + 2);
        int count = ek_err_count();
        for (int i = 0; i < count; i++)
            if (strcmp(ek_err_name(ek_err_code(i)), name) == 0) rc = ek_err_code(i);
    } else {
        /* The first result (none: nil) as a message of the response's kind. */
        if (n <= 0) lua_pushnil(L);
        rc = ekl_msg_from_lua(L, c, idx, k->kind, &m);
    }
    k->rc = rc;
    k->out = rc == EK_OK ? m : NULL;
    k->done = true;
}

/* k failed before its function ran. */
static void call_fail(lcall *k, int rc)
{
    k->rc = rc;
    k->done = true;
}

#define TAKE_FAILED (-1) /* the call failed before it ran (its result is set) */
#define TAKE_NONE   (-2) /* nothing queued */

/* Push k's function (a copy of index fn; 0: from the registry) and its
 * arguments (k is taken: started); the count of arguments, or TAKE_FAILED
 * (nothing pushed; k's result is set). */
static int push_call(lua_State *L, lsvc *s, lcall *k, int fn)
{
    k->started = true;
    ek_msg *req = k->req;
    k->req = NULL;
    if (fn)
        lua_pushvalue(L, fn);
    else
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->fn_ref);
    int rc, nargs = 1;
    if (s->args) {
        /* No request table: nothing is allocated for a command whose
         * arguments are short strings (interned), so no GC step either. */
        rc = ekl_msg_push_args(L, s->c, req, &nargs);
        if (rc < 0) rc = rc == EK_ENOMEM || rc == EK_ERANGE ? rc : EK_EKIND;
    } else {
        rc = ekl_msg_push(L, req);
        if (rc < 0) rc = EK_EKIND;
    }
    ek_msg_free(req);
    if (rc < 0) {
        lua_pop(L, 1); /* (the arguments' push left nothing) */
        call_fail(k, rc);
        return TAKE_FAILED;
    }
    return nargs;
}

/* Take the next call of s for the running runner (ctx->cur, its coroutine at
 * the top of L): the record's own call first, then the head of s's queue,
 * which the record runs from now on. Pushes the function (a copy of index
 * fn; 0: from the registry) and its arguments; returns the count of
 * arguments, TAKE_FAILED or TAKE_NONE. */
static int batch_take(lua_State *L, ekl_ctx *c, lsvc *s, int fn)
{
    ekl_task *t = c->cur;
    lcall *k = t->call;
    if (k->started) {
        lcall *n = s->qhead;
        if (!n) return TAKE_NONE;
        queue_unlink(s, n);
        k->t = NULL; /* (done) */
        n->t = t;
        t->call = k = n;
    }
    return push_call(L, s, k, fn);
}

#if LUA_VERSION_NUM >= 504
/* The runner (Lua 5.4): batch_run(s) calls each call's function (kept at
 * index 2) with lua_callk, whose continuation goes on with the batch after a
 * handler that yielded (the C loop costs less than a Lua loop over three C
 * calls). No lua_pcallk (its setjmp per call): a handler that raises ends the
 * resume, and lresp_poll fails the call that was running (t->call); the calls
 * still queued start a runner of their own when polled, as behind a handler
 * that waits. */
static int batch_loop(lua_State *L, int status, lua_KContext kc)
{
    (void)status; /* (LUA_YIELD: an error does not come back here) */
    ekl_ctx *c = ekl_ctx_of(L);
    lsvc *s = lua_touserdata(L, 1);
    if (kc) { /* back from a call that yielded: its results are above fn */
        call_result(L, c, c->cur->call, true, 3);
        lua_settop(L, 2);
    }
    for (;;) {
        int n = batch_take(L, c, s, 2);
        if (n == TAKE_NONE) return 0;
        if (n == TAKE_FAILED) continue;
        lua_callk(L, n, LUA_MULTRET, 1, batch_loop);
        call_result(L, c, c->cur->call, true, 3);
        lua_settop(L, 2);
    }
}

static int l_batch_run(lua_State *L)
{
    lsvc *s = lua_touserdata(L, 1);
    lua_settop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->fn_ref); /* 2: the function */
    return batch_loop(L, LUA_OK, 0);
}
#else
static int batch_noop(lua_State *L)
{
    (void)L;
    return 0;
}

/* The runner (LuaJIT: no continuations for C functions; its pcall yields):
 *     while done(s, pcall(take(s))) do end
 * take(s) -> fn, args...: the next call (batch_take). */
static int l_batch_take(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    int n = batch_take(L, c, lua_touserdata(L, 1), 0);
    if (n >= 0) return n + 1;
    lua_pushcfunction(L, batch_noop); /* done() keeps the result set */
    return 1;
}

/* done(s, ok, results...) -> whether s has another call queued */
static int l_batch_done(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    lsvc *s = lua_touserdata(L, 1);
    lcall *k = c->cur->call;
    if (!k->done) call_result(L, c, k, lua_toboolean(L, 2), 3);
    lua_pushboolean(L, s->qhead != NULL);
    return 1;
}
#endif

/* Release t, a runner record that no call runs on any more (its coroutine
 * finished or failed: ekl_coro_finish has run, or it is cancelled here). */
static void runner_release(ekl_task *t)
{
    if (t->call) ((lcall *)t->call)->t = NULL;
    t->call = NULL;
    ekl_coro_drop(t);
}

/* A runner record with an empty coroutine that has room for 2 values: the
 * one s kept (ekl_coro_park), else a new one (NULL with *rc on failure). */
static ekl_task *runner_get(ekl_ctx *c, lsvc *s, int *rc)
{
    ekl_task *t = s->parked;
    if (t) {
        s->parked = NULL;
        if (lua_checkstack(t->co, 2)) return t;
        ekl_coro_finish(t);
        ekl_coro_drop(t);
        *rc = EK_ENOMEM;
        return NULL;
    }
    t = ekl_coro_record(c, s->h, rc);
    if (!t) return NULL;
    *rc = ekl_coro_bind(t, 2);
    if (*rc == EK_OK) return t;
    ekl_coro_drop(t);
    return NULL;
}

/* Start k, the first call of a batch: a runner record whose coroutine runs it
 * and what is queued behind it. */
static int batch_start(ekl_ctx *c, lsvc *s, lcall *k)
{
    int rc;
    ekl_task *t = runner_get(c, s, &rc);
    if (!t) return rc;
    lua_rawgeti(t->co, LUA_REGISTRYINDEX, c->batch_ref);
    lua_pushlightuserdata(t->co, s);
    t->nargs = 1;
    t->call = k;
    k->t = t;
    return EK_OK;
}

/* Start k, a call alone in its batch (a server's read that held one
 * request): no runner, its function is the coroutine's own, pushed with its
 * arguments straight onto a pooled coroutine (no lua_xmove from the main
 * thread). */
static int lone_start(ekl_ctx *c, lsvc *s, lcall *k)
{
    int rc;
    ekl_task *t = runner_get(c, s, &rc);
    if (!t) return rc;
    k->single = true;
    int n = push_call(t->co, s, k, 0);
    if (n == TAKE_FAILED) {
        if (!s->parked && ekl_coro_park(t)) { /* (k's result is set) */
            s->parked = t;
        } else {
            ekl_coro_finish(t);
            ekl_coro_drop(t);
        }
        return EK_OK;
    }
    t->nargs = n;
    t->call = k;
    k->t = t;
    return EK_OK;
}

/* The response future of a call (state: the lcall). */
static int lresp_poll(void *state, ek_cx *cx, void **out)
{
    lcall *k = state;
    lsvc *s = k->s;
    ekl_ctx *c = s->c;
    if (!c->L) return EK_ECLOSED;
    if (!k->done) {
        if (!k->t) {
            if (!k->queued) return EK_ECANCELED; /* (its runner went without it) */
            queue_unlink(s, k);
            int rc = s->qhead ? batch_start(c, s, k) : lone_start(c, s, k);
            if (rc != EK_OK) return rc; /* this call fails; the queue stays */
        }
        if (!k->done) {
            ekl_task *t = k->t;
            int n = 0;
            int rc = ekl_coro_step(t, cx, &n);
            if (rc == EK_ECLOSED || rc == EK_ECANCELED) return rc;
            if (rc == EK_PENDING) {
                if (!k->done) return EK_PENDING;
            } else {
                /* The call the coroutine ran last (the one that raised). */
                lcall *last = t->call;
                lua_State *co = t->co;
                if (last && !last->done) {
                    if (rc == EK_OK) /* (only alone: a runner's calls are done) */
                        call_result(co, c, last, true, lua_gettop(co) - n + 1);
                    else
                        call_result(co, c, last, false, lua_gettop(co));
                }
                /* The record is kept for the next runner of s (no record
                 * to make, no coroutine to take from the pool then), or
                 * its coroutine goes back to the pool (or, failed, away). */
                if (last) last->t = NULL;
                t->call = NULL;
                if (rc == EK_OK && !s->parked && ekl_coro_park(t)) {
                    s->parked = t;
                } else {
                    ekl_coro_finish(t);
                    ekl_coro_drop(t);
                }
            }
        }
    }
    *out = k->out;
    k->out = NULL;
    return k->rc;
}

static void lresp_drop(void *state)
{
    lcall *k = state;
    lsvc *s = k->s;
    if (k->queued) queue_unlink(s, k);
    if (k->t) runner_release(k->t); /* cancels a handler that waits */
    if (k->req) ek_msg_free(k->req);
    if (k->out) ek_msg_free(k->out);
    if (s->nspare < LCALL_SPARE) {
        k->next = s->spare;
        s->spare = k;
        s->nspare++;
    } else {
        free(k);
    }
    lsvc_unref(s);
}

static int lsvc_ready(void *self, ek_cx *cx)
{
    (void)cx;
    lsvc *s = self;
    return s->c->L && !s->h->closed ? EK_OK : EK_ECLOSED;
}

static int lsvc_call(void *self, ek_msg *req, ek_future **resp)
{
    lsvc *s = self;
    if (!s->c->L || !s->c->batch_ref) {
        ek_msg_free(req);
        return EK_ECLOSED;
    }
    lcall *k = s->spare;
    if (k) {
        s->spare = k->next;
        s->nspare--;
    } else if (!(k = malloc(sizeof *k))) {
        ek_msg_free(req);
        return EK_ENOMEM;
    }
    *k = (lcall){.s = s, .req = req, .kind = response_kind(ek_msg_kind(req)), .queued = true};
    s->refs++;
    k->prev = s->qtail;
    if (s->qtail)
        s->qtail->next = k;
    else
        s->qhead = k;
    s->qtail = k;
    return ek_future_new(lresp_poll, lresp_drop, k, resp);
}

/* The service's last holder (its buffer's worker, or a call) frees it; all
 * of them are on the state's thread. */
static void lsvc_unref(lsvc *s)
{
    if (--s->refs > 0) return;
    if (s->parked) {
        ekl_coro_finish(s->parked);
        ekl_coro_drop(s->parked);
    }
    if (s->c->L) luaL_unref(s->c->L, LUA_REGISTRYINDEX, s->fn_ref);
    while (s->spare) {
        lcall *k = s->spare;
        s->spare = k->next;
        free(k);
    }
    ekl_rt_unref(s->h);
    ekl_ctx_unref(s->c);
    free(s);
}

static void lsvc_drop(void *self)
{
    lsvc *s = self;
    if (s->anchor) {
        s->anchor->s = NULL;
        anchor_unref(s->anchor);
        s->anchor = NULL;
    }
    lsvc_unref(s);
}

static const ek_service_vtable lsvc_vt = {
    .poll_ready = lsvc_ready,
    .call = lsvc_call,
    .drop = lsvc_drop,
};

/* ----------------------------------------------------- direct handles -- */

/* A direct handle calls the Lua function service itself, without its buffer:
 * for ek.serve's local server, whose connection tasks run on this thread
 * (ek_server_options_set_local), so that a request is called, and a handler
 * that does not wait is answered, within the connection task's poll. Only
 * local tasks of the state's thread use it. It holds a clone of the buffer in
 * front of the lsvc, which keeps the buffer's worker, the lsvc's owner, alive;
 * the anchor tells it when the worker ended anyway (the state closed, the
 * runtime shut down) and the lsvc is gone. Shareable: the server clones it per
 * connection; dropping it is safe on any thread (the server's prototype may go
 * on a shutdown thread). */
typedef struct direct {
    lsvc_anchor *a;
    ek_service *keep; /* a clone of the buffer handle */
} direct;

static int direct_ready(void *self, ek_cx *cx)
{
    direct *d = self;
    return d->a->s ? lsvc_ready(d->a->s, cx) : EK_ECLOSED;
}

static int direct_call(void *self, ek_msg *req, ek_future **resp)
{
    direct *d = self;
    if (!d->a->s) {
        ek_msg_free(req);
        return EK_ECLOSED;
    }
    return lsvc_call(d->a->s, req, resp);
}

static void direct_drop(void *self)
{
    direct *d = self;
    ek_service_free(d->keep);
    anchor_unref(d->a);
    free(d);
}

static direct *direct_new(lsvc_anchor *a, ek_service *buffer)
{
    direct *d = malloc(sizeof *d);
    if (!d) return NULL;
    if (ek_service_clone(buffer, &d->keep) != EK_OK) {
        free(d);
        return NULL;
    }
    d->a = a;
    atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
    return d;
}

static int direct_clone(void *self, void **out)
{
    direct *d = self;
    direct *n = direct_new(d->a, d->keep);
    if (!n) return EK_ENOMEM;
    *out = n;
    return EK_OK;
}

static const ek_service_vtable direct_vt = {
    .poll_ready = direct_ready,
    .call = direct_call,
    .drop = direct_drop,
};

/* ------------------------------------------------------------ handles -- */

typedef struct svc_ud {
    ek_service *s;
    ekl_rt *h;
    int kind;        /* what requests from Lua become (EKL_MSG_AUTO, or a client's codec) */
    lsvc_anchor *fn; /* ek.service's handle: its function service, for direct handles */
    int pushes_ref;  /* a client's push frames (ekiden.pushes), or LUA_NOREF */
} svc_ud;

static svc_ud *check_svc(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, EKL_SERVICE_MT);
}

/* Push a handle over s (consumed); a service that is not shareable is put
 * behind a local buffer first. */
int ekl_push_service(lua_State *L, ekl_rt *h, ek_service *s, int kind)
{
    int rc = EK_OK;
    if (ek_service_is_shareable(s) != 1) rc = ek_svc_buffer_local(h->rt, s, 256, &s);
    if (rc) return ekl_push_error(L, rc);
    svc_ud *u = ekl_newudata(L, sizeof *u, EKL_SERVICE_MT);
    u->s = s;
    u->h = ekl_rt_ref(h);
    u->kind = kind;
    u->fn = NULL;
    u->pushes_ref = LUA_NOREF;
    return 1;
}

void ekl_service_set_pushes(lua_State *L, int idx)
{
    svc_ud *u = check_svc(L, idx);
    if (u->pushes_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, u->pushes_ref);
    u->pushes_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* client:pushes() -> the client's push frames (ek.connect{pushes = ...});
 * raises for a handle that has none. */
static int l_svc_pushes(lua_State *L)
{
    svc_ud *u = check_svc(L, 1);
    if (u->pushes_ref == LUA_NOREF)
        return luaL_error(L, "this service has no push frames (ek.connect{pushes = true})");
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->pushes_ref);
    return 1;
}

static int push_service(lua_State *L, ekl_rt *h, ek_service *s)
{
    return ekl_push_service(L, h, s, EKL_MSG_AUTO);
}

/* A clone of an open handle's service, or NULL after pushing the failure. */
static ek_service *clone_of(lua_State *L, svc_ud *u, int *n)
{
    if (!u->s || u->h->closed) {
        *n = ekl_push_error(L, EK_ECLOSED);
        return NULL;
    }
    ek_service *c = NULL;
    int rc = ek_service_clone(u->s, &c);
    if (rc) {
        *n = ekl_push_error(L, rc);
        return NULL;
    }
    return c;
}

ek_service *ekl_service_direct_at(lua_State *L, int idx, int *n)
{
    svc_ud *u = check_svc(L, idx);
    *n = 0;
    if (!u->fn) return NULL;
    if (!u->s || u->h->closed || !u->fn->s) {
        *n = ekl_push_error(L, EK_ECLOSED);
        return NULL;
    }
    direct *d = direct_new(u->fn, u->s);
    ek_service *out = NULL;
    int rc = d ? ek_service_new_shareable(&direct_vt, d, direct_clone, &out) : EK_ENOMEM;
    if (rc) {
        *n = ekl_push_error(L, rc);
        return NULL;
    }
    return out;
}

ek_service *ekl_service_clone_at(lua_State *L, int idx, ekl_rt **h, int *kind, int *n)
{
    svc_ud *u = check_svc(L, idx);
    *h = u->h;
    *kind = u->kind;
    return clone_of(L, u, n);
}

static int l_svc_close(lua_State *L)
{
    svc_ud *u = check_svc(L, 1);
    if (u->s) ek_service_free(u->s);
    u->s = NULL;
    anchor_unref(u->fn);
    u->fn = NULL;
    if (u->pushes_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, u->pushes_ref);
    u->pushes_ref = LUA_NOREF;
    if (u->h) ekl_rt_unref(u->h);
    u->h = NULL;
    return 0;
}

static int l_svc_tostring(lua_State *L)
{
    svc_ud *u = check_svc(L, 1);
    static const char *const st[] = {"open", "busy", "closed"};
    int s = u->s ? ek_service_status(u->s) : EK_SERVICE_CLOSED;
    lua_pushfstring(L, "ekiden.service (%s): %p", s >= 0 && s <= 2 ? st[s] : "?", (void *)u);
    return 1;
}

/* ek.service(fn [, {bound = n}]) */
static int l_service(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    ekl_rt *h = ekl_need_rt(L, c);
    if (h->closed) return ekl_push_error(L, EK_ECLOSED);
    lua_Integer bound = 256;
    bool args = false;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "bound");
        if (!lua_isnil(L, -1)) bound = luaL_checkinteger(L, -1);
        lua_pop(L, 1);
        if (bound < 1) return luaL_argerror(L, 2, "bound must be >= 1");
        lua_getfield(L, 2, "args");
        args = lua_toboolean(L, -1);
        lua_pop(L, 1);
    } else if (!lua_isnoneornil(L, 2)) {
        return luaL_argerror(L, 2, "table of options expected");
    }
    lsvc *s = calloc(1, sizeof *s);
    if (!s) return ekl_push_error(L, EK_ENOMEM);
    s->c = c;
    c->refs++;
    s->refs = 1;
    s->h = ekl_rt_ref(h);
    lua_pushvalue(L, 1);
    s->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    s->args = args;
    lsvc_anchor *a = malloc(sizeof *a);
    if (!a) {
        lsvc_drop(s);
        return ekl_push_error(L, EK_ENOMEM);
    }
    atomic_init(&a->refs, 2); /* the lsvc and the handle */
    a->s = s;
    s->anchor = a;
    ek_service *inner = NULL, *buf = NULL;
    int rc = ek_service_new(&lsvc_vt, s, &inner);
    if (rc == EK_OK) rc = ek_svc_buffer_local(h->rt, inner, (size_t)bound, &buf);
    if (rc) {
        anchor_unref(a);
        return ekl_push_error(L, rc);
    }
    int n = push_service(L, h, buf);
    svc_ud *u = luaL_testudata(L, -1, EKL_SERVICE_MT);
    if (u)
        u->fn = a;
    else
        anchor_unref(a);
    return n;
}

static int convert_msg(lua_State *L, ekl_ctx *c, ekl_rt *h, void *out)
{
    (void)c;
    (void)h;
    return msg_to_lua(L, out);
}

/* core svc:call(req) -> a future of the response */
static int l_svc_call(lua_State *L)
{
    svc_ud *u = check_svc(L, 1);
    luaL_checkany(L, 2);
    ek_msg *m = NULL;
    int rc = ekl_msg_from_lua(L, ekl_ctx_of(L), 2, u->kind, &m);
    if (rc == EK_EKIND)
        return luaL_argerror(L, 2,
                             u->kind == EK_MSG_BYTES ? "string expected as a message"
                                                     : "no message for this value");
    if (rc) return ekl_push_error(L, rc);
    int n = 0;
    ek_service *c = clone_of(L, u, &n);
    if (!c) {
        ek_msg_free(m);
        return n;
    }
    ek_future *f = NULL;
    rc = ek_service_oneshot(c, m, &f);
    ek_service_free(c); /* the oneshot holds its own reference */
    if (rc) return ekl_push_error(L, rc);
    ekl_push_future(L, u->h, f, convert_msg);
    return 1;
}

static int l_svc_status(lua_State *L)
{
    svc_ud *u = check_svc(L, 1);
    static const char *const st[] = {"open", "busy", "closed"};
    int s = u->s ? ek_service_status(u->s) : EK_SERVICE_CLOSED;
    lua_pushstring(L, s >= 0 && s <= 2 ? st[s] : "closed");
    return 1;
}

/* ek.register(name, svc) -> true | nil, msg, name */
static int l_register(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    svc_ud *u = check_svc(L, 2);
    int n = 0;
    ek_service *c = clone_of(L, u, &n);
    if (!c) return n;
    int rc = ek_registry_register(u->h->rt, name, c);
    if (rc) return ekl_push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* ek.lookup(name) -> svc | nil, msg, name */
static int l_lookup(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    const char *name = luaL_checkstring(L, 1);
    ekl_rt *h = ekl_need_rt(L, c);
    if (h->closed) return ekl_push_error(L, EK_ECLOSED);
    ek_service *s = NULL;
    int rc = ek_registry_lookup(h->rt, name, &s);
    if (rc) return ekl_push_error(L, rc);
    return push_service(L, h, s);
}

static int l_unregister(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    const char *name = luaL_checkstring(L, 1);
    ekl_rt *h = ekl_need_rt(L, c);
    if (h->closed) return ekl_push_error(L, EK_ECLOSED);
    int rc = ek_registry_unregister(h->rt, name);
    if (rc) return ekl_push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---------------------------------------------------------- middleware -- */

/* The inner service of a middleware: a clone of the handle at idx (the Lua
 * handle stays usable). */
static ek_service *inner_of(lua_State *L, int idx, ekl_rt **h, int *n)
{
    svc_ud *u = check_svc(L, idx);
    *h = u->h;
    return clone_of(L, u, n);
}

/* The middleware's handle: its requests convert as the inner service's (the
 * handle at 1, or the first of balance's list). */
static int mw_result(lua_State *L, ekl_rt *h, int rc, ek_service *out)
{
    if (rc) return ekl_push_error(L, rc);
    int kind = EKL_MSG_AUTO;
    svc_ud *u = luaL_testudata(L, 1, EKL_SERVICE_MT);
    if (!u && lua_istable(L, 1)) {
        lua_rawgeti(L, 1, 1);
        u = luaL_testudata(L, -1, EKL_SERVICE_MT);
        lua_pop(L, 1);
    }
    if (u) kind = u->kind;
    return ekl_push_service(L, h, out, kind);
}

static int l_mw_timeout(lua_State *L)
{
    uint64_t ms = ekl_check_ms(L, 2);
    ekl_rt *h;
    int n = 0;
    ek_service *in = inner_of(L, 1, &h, &n), *out = NULL;
    if (!in) return n;
    int rc = ek_svc_timeout(h->rt, in, ms, &out);
    return mw_result(L, h, rc, out);
}

static int l_mw_concurrency_limit(lua_State *L)
{
    lua_Integer max = luaL_checkinteger(L, 2);
    if (max < 1) return luaL_argerror(L, 2, "limit must be >= 1");
    ekl_rt *h;
    int n = 0;
    ek_service *in = inner_of(L, 1, &h, &n), *out = NULL;
    if (!in) return n;
    int rc = ek_svc_concurrency_limit(in, (size_t)max, &out);
    return mw_result(L, h, rc, out);
}

static int l_mw_rate_limit(lua_State *L)
{
    lua_Integer count = luaL_checkinteger(L, 2);
    if (count < 1) return luaL_argerror(L, 2, "count must be >= 1");
    uint64_t ms = ekl_check_ms(L, 3);
    if (ms == 0) return luaL_argerror(L, 3, "period must be at least 0.001 s");
    ekl_rt *h;
    int n = 0;
    ek_service *in = inner_of(L, 1, &h, &n), *out = NULL;
    if (!in) return n;
    int rc = ek_svc_rate_limit(h->rt, in, (uint64_t)count, ms, &out);
    return mw_result(L, h, rc, out);
}

static int l_mw_load_shed(lua_State *L)
{
    ekl_rt *h;
    int n = 0;
    ek_service *in = inner_of(L, 1, &h, &n), *out = NULL;
    if (!in) return n;
    int rc = ek_svc_load_shed(in, &out);
    return mw_result(L, h, rc, out);
}

/* buffer(svc [, bound]): a queue in front of a worker task on the runtime's
 * workers (a Lua service behind it still runs on this thread). */
static int l_mw_buffer(lua_State *L)
{
    lua_Integer bound = luaL_optinteger(L, 2, 256);
    if (bound < 1) return luaL_argerror(L, 2, "bound must be >= 1");
    ekl_rt *h;
    int n = 0;
    ek_service *in = inner_of(L, 1, &h, &n), *out = NULL;
    if (!in) return n;
    int rc = ek_svc_buffer(h->rt, in, (size_t)bound, &out);
    return mw_result(L, h, rc, out);
}

/* balance({svc, ...}) */
static int l_mw_balance(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t count = ekl_rawlen(L, 1);
    if (count < 1) return luaL_argerror(L, 1, "at least one service expected");
    ek_service **arr = calloc(count, sizeof *arr);
    if (!arr) return ekl_push_error(L, EK_ENOMEM);
    ekl_rt *h = NULL;
    for (size_t i = 0; i < count; i++) {
        lua_rawgeti(L, 1, (int)i + 1);
        svc_ud *u = luaL_testudata(L, -1, EKL_SERVICE_MT);
        int n = 0;
        ek_service *c = u ? clone_of(L, u, &n) : NULL;
        if (!c) {
            for (size_t j = 0; j < i; j++) ek_service_free(arr[j]);
            free(arr);
            if (!u) return luaL_argerror(L, 1, "services expected");
            return n;
        }
        h = u->h;
        arr[i] = c;
        lua_pop(L, 1);
    }
    ek_service *out = NULL;
    int rc = ek_svc_balance(arr, count, &out);
    free(arr);
    return mw_result(L, h, rc, out);
}

/* Retry failed requests (not responses that are errors in the protocol). */
static int retry_on_error(void *ud, const ek_msg *req, unsigned attempt, int rc, const ek_msg *resp)
{
    (void)req;
    (void)resp;
    unsigned max = (unsigned)(uintptr_t)ud;
    return rc < 0 && attempt < max ? 1 : 0;
}

/* retry(svc [, attempts]): resend a request whose call failed, up to attempts
 * in all (default 3), within Tower's default retry budget. */
static int l_mw_retry(lua_State *L)
{
    lua_Integer attempts = luaL_optinteger(L, 2, 3);
    if (attempts < 1 || attempts > 1000) return luaL_argerror(L, 2, "attempts must be 1..1000");
    ekl_rt *h;
    int n = 0;
    ek_service *in = inner_of(L, 1, &h, &n), *out = NULL;
    if (!in) return n;
    int rc = ek_svc_retry(h->rt, in, NULL, retry_on_error, (void *)(uintptr_t)attempts, NULL, &out);
    return mw_result(L, h, rc, out);
}

static int l_thread_id(lua_State *L)
{
    /* For tests: which OS thread runs this Lua code. */
    static _Thread_local char marker;
    lua_pushfstring(L, "%p", (void *)&marker);
    return 1;
}

void ekl_service_open(lua_State *L, ekl_ctx *c)
{
    static const luaL_Reg methods[] = {
        {"call", l_svc_call},
        {"status", l_svc_status},
        {"pushes", l_svc_pushes},
        {"close", l_svc_close},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", l_svc_close},
        {"__close", l_svc_close},
        {"__tostring", l_svc_tostring},
        {NULL, NULL},
    };
    ekl_newclass(L, c, EKL_SERVICE_MT, methods, meta);
    /* The batch runner (see lresp_poll). */
#if LUA_VERSION_NUM >= 504
    lua_getfield(L, LUA_REGISTRYINDEX, EKL_CTX_MT);
    lua_pushcclosure(L, l_batch_run, 1);
    c->batch_ref = luaL_ref(L, LUA_REGISTRYINDEX);
#else
    static const char runner[] = "local take, done, pcall = ...\n"
                                 "return function(s) while done(s, pcall(take(s))) do end end\n";
    if (luaL_loadbuffer(L, runner, sizeof runner - 1, "=ekiden.batch") == LUA_OK) {
        lua_getfield(L, LUA_REGISTRYINDEX, EKL_CTX_MT);
        lua_pushcclosure(L, l_batch_take, 1);
        lua_getfield(L, LUA_REGISTRYINDEX, EKL_CTX_MT);
        lua_pushcclosure(L, l_batch_done, 1);
        lua_getglobal(L, "pcall");
        lua_call(L, 3, 1);
        c->batch_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        lua_pop(L, 1);
    }
#endif
    static const luaL_Reg funcs[] = {
        {"service", l_service},
        {"register", l_register},
        {"lookup", l_lookup},
        {"unregister", l_unregister},
        {"mw_timeout", l_mw_timeout},
        {"mw_concurrency_limit", l_mw_concurrency_limit},
        {"mw_rate_limit", l_mw_rate_limit},
        {"mw_load_shed", l_mw_load_shed},
        {"mw_buffer", l_mw_buffer},
        {"mw_balance", l_mw_balance},
        {"mw_retry", l_mw_retry},
        {"thread_id", l_thread_id},
        {NULL, NULL},
    };
    lua_getfield(L, LUA_REGISTRYINDEX, "ekiden.core");
    ekl_set_funcs(L, c, funcs);
    lua_pop(L, 1);
}
