/*
 * task.c - Lua tasks (coroutines driven by local C tasks), ek.run, heap futures.
 *
 * A task record (ekl_task) is shared by the C task, which polls and finally
 * drops it, and by the Lua handle returned by ek.spawn. The C task's poll resumes
 * the coroutine; its drop (after the last poll, or instead of the next poll when
 * the task is cancelled) releases the coroutine. Results stay in the record, so a
 * handle can be joined after the C task is gone. Joiners register their wakers in
 * the record and are woken when it finishes; all of this happens on the state's
 * thread, since every Lua task is local to it.
 */
#include "ekl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- records -- */

static void task_unref(ekl_task *t)
{
    if (--t->refs > 0) return;
    ekl_ctx *c = t->ctx;
    if (c->L && t->res_ref != LUA_NOREF) luaL_unref(c->L, LUA_REGISTRYINDEX, t->res_ref);
    for (size_t i = 0; i < t->nwaiters; i++) ek_waker_drop(t->waiters[i]);
    free(t->waiters);
    if (t->join) ek_join_detach(t->join);
    ekl_rt_unref(t->h);
    /* Kept for the next task or call while the state lives (a record per
     * service call was a calloc and a free). The context frees the pool. */
    if (c->L && c->nfree < EKL_TASK_POOL) {
        t->next = c->free_tasks;
        c->free_tasks = t;
        c->nfree++;
    } else {
        free(t);
    }
    ekl_ctx_unref(c);
}

static void wake_waiters(ekl_task *t)
{
    for (size_t i = 0; i < t->nwaiters; i++) ek_waker_wake(t->waiters[i]);
    t->nwaiters = 0;
}

static void kid_unlink(ekl_task *k)
{
    ekl_task *p = k->parent;
    if (!p) return;
    if (k->kprev)
        k->kprev->knext = k->knext;
    else
        p->kids = k->knext;
    if (k->knext) k->knext->kprev = k->kprev;
    k->parent = k->kprev = k->knext = NULL;
}

static void kid_link(ekl_task *p, ekl_task *k)
{
    k->parent = p;
    k->kprev = NULL;
    k->knext = p->kids;
    if (p->kids) p->kids->kprev = k;
    p->kids = k;
}

/* Print an error that nobody can observe any more. */
static void report_error(ekl_task *t)
{
    lua_State *L = t->ctx->L;
    if (!L || t->observed || !t->report || t->state != EKL_TASK_FAILED) return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->res_ref);
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "ekiden: error in a task nobody joined: %s\n", msg ? msg : "(error object)");
    lua_pop(L, 1);
}

/* The task finished (state set): release the coroutine, wake joiners. */
static void task_finish(ekl_task *t)
{
    ekl_ctx *c = t->ctx;
    if (c->L && t->co_ref != LUA_NOREF) {
#if LUA_VERSION_NUM >= 504
        /* Runs the pending to-be-closed variables of a cancelled coroutine. */
        if (t->state == EKL_TASK_CANCELLED) lua_resetthread(t->co);
#endif
        luaL_unref(c->L, LUA_REGISTRYINDEX, t->co_ref);
    }
    t->co_ref = LUA_NOREF;
    t->co = NULL;
    wake_waiters(t);
}

/* ------------------------------------------------------------ the poll -- */

static int resume(lua_State *co, int nargs, int *nres)
{
#if LUA_VERSION_NUM >= 504
    return lua_resume(co, NULL, nargs, nres);
#else
    int st = lua_resume(co, nargs);
    *nres = lua_gettop(co);
    return st;
#endif
}

/* One step of t under cx: runs a pending operation again (ekl_yield_retry) and
 * resumes the coroutine. Returns EK_PENDING while it waits; else the resume's
 * status: LUA_OK with *nres results on t->co, or an error status with the
 * error value on top of t->co. */
static int task_step(ekl_task *t, ek_cx *cx, int *nres)
{
    ekl_ctx *c = t->ctx;
    ek_cx *saved_cx = c->cx;
    ekl_task *saved_cur = c->cur;
    c->cx = cx;
    c->cur = t;
    int nargs = t->nargs;
    t->nargs = 0;
    if (t->retry.fn) {
        /* Suspended in an operation from C: run it again; the coroutine is
         * resumed only once it completes, with its results. They go on the
         * stack of the C call that yielded, whose room no lua_checkstack
         * needs to grow (one per step was 20 instructions of an echo round
         * trip): the VM gives every C call LUA_MINSTACK (20) free slots, the
         * call yields (ekl_yield_retry) before it pushed anything, and an op
         * pushes at most EKL_RETRY_RESULTS values; ops that push more (msg.c's
         * messages) check the stack themselves. */
        nargs = t->retry.fn(t->co, c, cx, &t->retry);
        if (nargs == EKL_RETRY_PENDING) {
            c->cx = saved_cx;
            c->cur = saved_cur;
            return EK_PENDING;
        }
        t->retry.fn = NULL;
    }
    t->nwaits = 0; /* what it waited on is its own business again */
    *nres = 0;
    lua_State *co = t->co;
    int st = resume(co, nargs, nres);
    c->cx = saved_cx;
    c->cur = saved_cur;
    if (st == LUA_YIELD) {
        bool pending =
            t->retry.fn != NULL || (*nres >= 1 && lua_touserdata(co, -*nres) == &ekl_pending_key);
        if (*nres > 0) lua_pop(co, *nres);
        /* A plain coroutine.yield() is a yield to the scheduler. */
        if (!pending) ek_yield_now(cx);
        return EK_PENDING;
    }
    return st;
}

static int task_poll(void *state, ek_cx *cx, void **out)
{
    ekl_task *t = state;
    ekl_ctx *c = t->ctx;
    *out = NULL;
    if (!c->L || t->state != EKL_TASK_RUNNING) return EK_ECANCELED;
    int nres = 0;
    int st = task_step(t, cx, &nres);
    if (st == EK_PENDING) return EK_PENDING;
    lua_State *L = c->L;
    if (st == LUA_OK) {
        lua_createtable(L, nres, 1);
        lua_xmove(t->co, L, nres);
        for (int i = nres; i >= 1; i--) lua_rawseti(L, -(i + 1), i);
        lua_pushinteger(L, nres);
        lua_setfield(L, -2, "n");
        t->res_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        t->state = EKL_TASK_DONE;
    } else {
        lua_xmove(t->co, L, 1);
        t->res_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        t->state = EKL_TASK_FAILED;
    }
    task_finish(t);
    return EK_OK;
}

/* Take t out of its context's list of live records. */
static void record_unlink(ekl_task *t)
{
    ekl_ctx *c = t->ctx;
    if (t->prev)
        t->prev->next = t->next;
    else if (c->head == t)
        c->head = t->next;
    if (t->next) t->next->prev = t->prev;
    t->prev = t->next = NULL;
    c->ntasks--;
}

static void task_drop(void *state)
{
    ekl_task *t = state;
    ekl_ctx *c = t->ctx;
    t->c_alive = false;
    if (c->L) {
        if (t->state == EKL_TASK_RUNNING) {
            t->state = EKL_TASK_CANCELLED;
            /* Give back queue places and timers held by what it waited on. */
            int n = t->nwaits;
            t->nwaits = 0;
            for (int i = 0; i < n; i++) t->waits[i].cancel(t->waits[i].obj, t);
            task_finish(t);
        }
        /* Scoped children go with their parent. */
        while (t->kids) {
            ekl_task *k = t->kids;
            kid_unlink(k);
            if (k->join && k->c_alive) ek_join_abort(k->join);
        }
        report_error(t);
    } else if (t->state == EKL_TASK_RUNNING) {
        t->state = EKL_TASK_CANCELLED;
    }
    kid_unlink(t);
    record_unlink(t);
    task_unref(t);
}

void ekl_tasks_abort_all(ekl_ctx *c)
{
    for (ekl_task *t = c->head; t; t = t->next) {
        /* The objects they wait on are being finalized with the state. */
        t->nwaits = 0;
        if (t->join && t->c_alive) ek_join_abort(t->join);
    }
}

/* ---------------------------------------------------------- spawning -- */

typedef struct task_ud {
    ekl_task *t;
} task_ud;

/* A new running task record on h with `refs` references, linked into c's list:
 * the function and nargs arguments on top of L are moved to its coroutine (a
 * pooled one when `pooled` and the pool has one, else a new one). NULL with *rc
 * (and the function and arguments popped) on failure. */
static ekl_task *record_new(ekl_ctx *c, ekl_rt *h, int refs)
{
    ekl_task *t = c->free_tasks;
    if (t) {
        c->free_tasks = t->next;
        c->nfree--;
        memset(t, 0, sizeof *t);
    } else if (!(t = calloc(1, sizeof *t))) {
        return NULL;
    }
    t->co_ref = LUA_NOREF;
    t->ctx = c;
    c->refs++;
    t->h = ekl_rt_ref(h);
    t->refs = refs;
    t->res_ref = LUA_NOREF;
    t->c_alive = true;
    t->next = c->head;
    if (c->head) c->head->prev = t;
    c->head = t;
    c->ntasks++;
    return t;
}

/* Give t a coroutine (a pooled one when `pooled` and the pool has one) with
 * room for `room` values on its stack (EK_ENOMEM: none given). */
static int coro_bind(ekl_task *t, int room, bool pooled)
{
    ekl_ctx *c = t->ctx;
    if (pooled && c->npool > 0) {
        /* (The pointer is kept beside the ref: no registry read.) */
        c->npool--;
        t->co_ref = c->pool[c->npool];
        t->co = c->pool_co[c->npool];
    } else {
        t->co = lua_newthread(c->L);
        t->co_ref = luaL_ref(c->L, LUA_REGISTRYINDEX);
    }
    if (!lua_checkstack(t->co, room)) {
        luaL_unref(c->L, LUA_REGISTRYINDEX, t->co_ref);
        t->co_ref = LUA_NOREF;
        t->co = NULL;
        return EK_ENOMEM;
    }
    return EK_OK;
}

/* Give t a coroutine (see coro_bind) with the function and nargs arguments on
 * top of L (popped also on failure). */
static int coro_attach(ekl_task *t, lua_State *L, int nargs, bool pooled)
{
    /* lua_xmove does not grow the coroutine's stack (a service call hands a
     * whole command as arguments; ek.spawn takes any number). */
    int rc = coro_bind(t, nargs + 1, pooled);
    if (rc != EK_OK) {
        lua_pop(L, nargs + 1);
        return rc;
    }
    lua_xmove(L, t->co, nargs + 1);
    t->nargs = nargs;
    return EK_OK;
}

/* Unlink a record that never ran and release it. */
static void record_discard(ekl_task *t)
{
    record_unlink(t);
    t->refs = 1;
    task_unref(t);
}

static ekl_task *ekl_task_init(ekl_ctx *c, ekl_rt *h, lua_State *L, int nargs, int refs,
                               bool pooled, int *rc)
{
    ekl_task *t = record_new(c, h, refs);
    if (!t) {
        lua_pop(L, nargs + 1);
        *rc = EK_ENOMEM;
        return NULL;
    }
    *rc = coro_attach(t, L, nargs, pooled);
    if (*rc != EK_OK) {
        record_discard(t);
        return NULL;
    }
    return t;
}

/* Spawn the function and nargs arguments on top of L as a Lua task on h (see
 * ekl.h). */
ekl_task *ekl_spawn_raw(ekl_ctx *c, ekl_rt *h, lua_State *L, int nargs, int *rc)
{
    ekl_task *t = ekl_task_init(c, h, L, nargs, 2 /* the C task and the caller */, false, rc);
    if (!t) return NULL;
    *rc = ek_spawn_local(h->rt, task_poll, task_drop, t, NULL, &t->join);
    if (*rc < 0) {
        /* task_drop has run (the C task's reference); the caller's is left. */
        t->join = NULL;
        task_unref(t);
        return NULL;
    }
    return t;
}

/* ------------------------------------- coroutines driven by a future -- */

/* A task record without a C task of its own: a service call's response future
 * resumes it from its poll (ekl_coro_step) and drops it (ekl_coro_drop), so a
 * call costs no spawn, no join handle and no results table. Coroutines that
 * returned normally go back to a small pool of the context for the next call. */
ekl_task *ekl_coro_record(ekl_ctx *c, ekl_rt *h, int *rc)
{
    ekl_task *t = record_new(c, h, 1 /* the future */);
    if (!t) *rc = EK_ENOMEM;
    return t;
}

int ekl_coro_bind(ekl_task *t, int room)
{
    return coro_bind(t, room, true);
}

int ekl_coro_step(ekl_task *t, ek_cx *cx, int *nres)
{
    if (!t->ctx->L) return EK_ECLOSED;
    if (t->state != EKL_TASK_RUNNING) return EK_ECANCELED;
    int st = task_step(t, cx, nres);
    if (st == EK_PENDING) return EK_PENDING;
    if (st == LUA_OK) return EK_OK;
    t->state = EKL_TASK_FAILED;
    return EK_EHOST;
}

void ekl_coro_finish(ekl_task *t)
{
    ekl_ctx *c = t->ctx;
    if (t->state == EKL_TASK_FAILED) {
#if LUA_VERSION_NUM >= 504
        /* Its coroutine is dead: released, not pooled, once the to-be-closed
         * variables still pending on it are closed (a raising handler's, or
         * a batch runner's that was not under a pcall). */
        if (c->L && t->co) lua_resetthread(t->co);
#endif
        task_finish(t);
        return;
    }
    t->state = EKL_TASK_DONE;
    if (c->L && t->co_ref != LUA_NOREF) {
        lua_settop(t->co, 0);
        if (c->npool < EKL_CORO_POOL && lua_status(t->co) == LUA_OK) {
            c->pool_co[c->npool] = t->co;
            c->pool[c->npool++] = t->co_ref;
        } else
            luaL_unref(c->L, LUA_REGISTRYINDEX, t->co_ref);
    }
    t->co_ref = LUA_NOREF;
    t->co = NULL;
}

bool ekl_coro_park(ekl_task *t)
{
    ekl_ctx *c = t->ctx;
    /* Only a record that nothing else refers to any more: no scoped children
     * (they go with their parent's drop), no joiners, its coroutine alive. */
    if (!c->L || t->state != EKL_TASK_RUNNING || t->kids || t->nwaiters || t->co_ref == LUA_NOREF ||
        lua_status(t->co) != LUA_OK)
        return false;
    lua_settop(t->co, 0);
    return true;
}

void ekl_coro_drop(ekl_task *t)
{
    task_drop(t);
}

int ekl_yield_retry(lua_State *L, ekl_ctx *c, const ekl_retry *r)
{
    /* ekl_need_cx has checked that L is the running task's coroutine. */
    c->cur->retry = *r;
    return lua_yield(L, 0);
}

void ekl_task_unref(ekl_task *t)
{
    task_unref(t);
}

void ekl_task_cancel(ekl_task *t)
{
    if (t->state == EKL_TASK_RUNNING && t->join && t->c_alive) ek_join_abort(t->join);
}

int ekl_task_add_waiter(ekl_task *t, ek_cx *cx)
{
    for (size_t i = 0; i < t->nwaiters; i++)
        if (ek_waker_will_wake(t->waiters[i], cx)) return EK_OK;
    if (t->nwaiters == t->capwaiters) {
        size_t cap = t->capwaiters ? t->capwaiters * 2 : 2;
        ek_waker **w = realloc(t->waiters, cap * sizeof *w);
        if (!w) return EK_ENOMEM;
        t->waiters = w;
        t->capwaiters = cap;
    }
    ek_waker *w = ek_cx_waker(cx);
    if (!w) return EK_ENOMEM;
    t->waiters[t->nwaiters++] = w;
    return EK_OK;
}

/* Start fn (at index fi) with the nargs values after it as a new task on the
 * current runtime; pushes the handle. Raises on errors of the arguments,
 * returns nil, msg, name if spawning fails. */
static int spawn_at(lua_State *L, ekl_ctx *c, int fi, int nargs, ekl_task **outp)
{
    luaL_checktype(L, fi, LUA_TFUNCTION);
    ekl_rt *h = ekl_need_rt(L, c);
    if (h->closed) return ekl_push_error(L, EK_ECLOSED);
    task_ud *u = ekl_newudata(L, sizeof *u, EKL_TASK_MT);
    for (int i = 0; i <= nargs; i++) lua_pushvalue(L, fi + i);
    int rc;
    ekl_task *t = ekl_spawn_raw(c, h, L, nargs, &rc);
    if (!t) {
        lua_pop(L, 1);
        return ekl_push_error(L, rc);
    }
    u->t = t;
    if (outp) *outp = t;
    return 1;
}

static int l_spawn(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    int n = spawn_at(L, c, 1, lua_gettop(L) - 1, NULL);
    return n;
}

/* core.spawn_scoped(fn, ...): a task cancelled together with the current task
 * (for ek.timeout and groups). */
static int l_spawn_scoped(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    ekl_task *t = NULL;
    int n = spawn_at(L, c, 1, lua_gettop(L) - 1, &t);
    if (t && c->cur && c->cur->state == EKL_TASK_RUNNING) kid_link(c->cur, t);
    return n;
}

static ekl_task *check_task(lua_State *L, int idx)
{
    task_ud *u = luaL_checkudata(L, idx, EKL_TASK_MT);
    return u->t;
}

void ekl_task_push_results(lua_State *L, ekl_task *t, int *n)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->res_ref);
    if (t->state == EKL_TASK_FAILED) {
        lua_pushnil(L);
        lua_insert(L, -2);
        lua_pushstring(L, "ERROR");
        *n = 3;
        return;
    }
    int idx = lua_gettop(L);
    lua_getfield(L, idx, "n");
    int cnt = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, cnt, "too many results");
    for (int i = 1; i <= cnt; i++) lua_rawgeti(L, idx, i);
    lua_remove(L, idx);
    *n = cnt;
}

/* core.join_poll(task): the results / nil, err, name, or PENDING. */
static int l_join_poll(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    ekl_task *t = check_task(L, 1);
    int n = 0;
    switch (t->state) {
    case EKL_TASK_DONE:
    case EKL_TASK_FAILED:
        t->observed = true;
        ekl_task_push_results(L, t, &n);
        return n;
    case EKL_TASK_CANCELLED:
        t->observed = true;
        return ekl_push_error(L, EK_ECANCELED);
    }
    ek_cx *cx = ekl_need_cx(L, c);
    if (c->cur == t) return luaL_error(L, "ekiden: a task cannot join itself");
    int rc = ekl_task_add_waiter(t, cx);
    if (rc) return ekl_push_error(L, rc);
    ekl_push_pending(L);
    return 1;
}

static int l_task_cancel(lua_State *L)
{
    ekl_task *t = check_task(L, 1);
    if (t->state == EKL_TASK_RUNNING && t->join && t->c_alive) ek_join_abort(t->join);
    return 0;
}

static int l_task_done(lua_State *L)
{
    ekl_task *t = check_task(L, 1);
    lua_pushboolean(L, t->state != EKL_TASK_RUNNING);
    return 1;
}

static int l_task_status(lua_State *L)
{
    static const char *const names[] = {"running", "done", "failed", "cancelled"};
    ekl_task *t = check_task(L, 1);
    lua_pushstring(L, names[t->state]);
    return 1;
}

static int l_task_gc(lua_State *L)
{
    task_ud *u = ekl_check_self(L, EKL_TASK_MT);
    ekl_task *t = u->t;
    if (!t) return 0;
    u->t = NULL;
    /* Nobody can join it any more: an error it raises (or raised) is printed. */
    t->report = true;
    if (t->state == EKL_TASK_FAILED && !t->c_alive) report_error(t);
    task_unref(t);
    return 0;
}

static int l_task_tostring(lua_State *L)
{
    ekl_task *t = check_task(L, 1);
    static const char *const names[] = {"running", "done", "failed", "cancelled"};
    lua_pushfstring(L, "ekiden.task (%s): %p", names[t->state], (void *)t);
    return 1;
}

/* --------------------------------------------------------------- run -- */

static int builder_from_opts(lua_State *L, int idx, ek_builder **out)
{
    ek_builder *b = NULL;
    int rc = ek_builder_new(&b);
    if (rc) return rc;
    if (lua_istable(L, idx)) {
        lua_getfield(L, idx, "workers");
        if (!lua_isnil(L, -1)) {
            lua_Integer n = luaL_checkinteger(L, -1);
            if (n < 1 || n > 1024) {
                ek_builder_free(b);
                return luaL_error(L, "ek.run: opts.workers must be 1..1024");
            }
            rc = ek_builder_set_worker_threads(b, (unsigned)n);
        }
        lua_pop(L, 1);
        lua_getfield(L, idx, "flavor");
        if (!lua_isnil(L, -1)) {
            const char *f = luaL_checkstring(L, -1);
            if (strcmp(f, "current_thread") == 0)
                rc = ek_builder_set_flavor(b, EK_FLAVOR_CURRENT_THREAD);
            else if (strcmp(f, "multi_thread") == 0)
                rc = ek_builder_set_flavor(b, EK_FLAVOR_MULTI_THREAD);
            else {
                ek_builder_free(b);
                return luaL_error(L, "ek.run: opts.flavor must be 'multi_thread' or "
                                     "'current_thread'");
            }
        }
        lua_pop(L, 1);
    } else if (!lua_isnoneornil(L, idx)) {
        ek_builder_free(b);
        return luaL_argerror(L, idx, "table of options expected");
    }
    if (rc) {
        ek_builder_free(b);
        return rc;
    }
    *out = b;
    return EK_OK;
}

#if LUA_VERSION_NUM < 502
static int noop(lua_State *L)
{
    (void)L;
    return 0;
}
#endif

/* LuaJIT's lua_resume leaves the VM's "current thread" (global_State.cur_L) on
 * the coroutine it resumed; the coroutine library restores it, the C API does
 * not. JIT-compiled code of the thread that called ek.run would then run with
 * the wrong current thread (and crash). Entering the VM on L sets it back. */
static void restore_current_thread(lua_State *L)
{
#if LUA_VERSION_NUM < 502
    lua_pushcfunction(L, noop);
    lua_call(L, 0, 0);
#else
    (void)L;
#endif
}

static int run_main(lua_State *L);

/* ek.run(fn, opts): runs fn as the main task on this thread; returns its
 * results, raises its error. */
static int l_run(lua_State *L)
{
    int n = run_main(L);
    restore_current_thread(L);
    if (n < 0) return lua_error(L);
    return n;
}

static int run_main(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (c->run_depth > 0 || c->cx)
        return luaL_error(L, "ek.run: already running (use ek.spawn inside a task)");
    ekl_gc_opts gco;
    ekl_gc_parse(L, 2, &gco);
    bool own = !c->host_rt;
    if (own) {
        ek_builder *b = NULL;
        int rc = builder_from_opts(L, 2, &b);
        if (rc) return luaL_error(L, "ek.run: %s", ek_strerror(rc));
        ekl_rt *h = calloc(1, sizeof *h);
        if (!h) {
            ek_builder_free(b);
            return luaL_error(L, "ek.run: out of memory");
        }
        rc = ek_runtime_new(b, &h->rt);
        ek_builder_free(b);
        if (rc) {
            free(h);
            return luaL_error(L, "ek.run: cannot create the runtime: %s", ek_strerror(rc));
        }
        h->refs = 1;
        h->owned = true;
        c->rt = h;
    }
    lua_settop(L, 1);
    ekl_gc_saved gcs;
    ekl_gc_apply(L, &gco, &gcs);
    ekl_task *t = NULL;
    int n = spawn_at(L, c, 1, 0, &t);
    int rc = EK_OK;
    if (n != 1) {
        rc = EK_ENOMEM;
    } else {
        /* The handle stays on the stack (index 2) so the record lives. */
        c->run_depth++;
        rc = ek_join_wait(t->join, NULL);
        c->run_depth--;
    }
    if (own) {
        /* Cancel what is left; local tasks are dropped on this thread. */
        ekl_rt *h = c->rt;
        ek_runtime_shutdown(h->rt, UINT64_MAX);
        h->closed = true;
        c->rt = NULL;
        ekl_rt_unref(h);
    }
    ekl_gc_restore(L, &gcs);
    /* From here on errors are returned (-1, the value on top) so that l_run
     * restores the current thread before raising them. */
    if (n != 1) {
        lua_pushfstring(L, "ek.run: %s", lua_tostring(L, -2));
        return -1;
    }
    if (rc < 0 && t->state == EKL_TASK_RUNNING) return luaL_error(L, "ek.run: %s", ek_strerror(rc));
    int nres = 0;
    switch (t->state) {
    case EKL_TASK_DONE:
        t->observed = true;
        ekl_task_push_results(L, t, &nres);
        return nres;
    case EKL_TASK_FAILED:
        t->observed = true;
        lua_rawgeti(L, LUA_REGISTRYINDEX, t->res_ref);
        return -1;
    default:
        lua_pushstring(L, "ek.run: the main task was cancelled");
        return -1;
    }
}

/* core.yield_now(): PENDING after arranging to be polled again. */
static int l_yield_now(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    ek_cx *cx = ekl_need_cx(L, c);
    ek_yield_now(cx);
    ekl_push_pending(L);
    return 1;
}

static int l_current(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    lua_pushboolean(L, c->cur != NULL && c->cur->co == L);
    return 1;
}

static int l_stats(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    lua_newtable(L);
    lua_pushinteger(L, (lua_Integer)c->ntasks);
    lua_setfield(L, -2, "tasks");
    if (c->rt && !c->rt->closed) {
        uint64_t v[EK_METRIC_COUNT];
        int n = ek_runtime_metrics(c->rt->rt, v, EK_METRIC_COUNT);
        for (int i = 0; i < n && i < EK_METRIC_COUNT; i++) {
            const char *name = ek_metric_name(i);
            if (!name) continue;
            lua_pushnumber(L, (lua_Number)v[i]);
            lua_setfield(L, -2, name);
        }
    }
    return 1;
}

/* ----------------------------------------------------------- futures -- */

void ekl_push_future(lua_State *L, ekl_rt *h, ek_future *f, ekl_convert_fn convert)
{
    ekl_future *u = ekl_newudata(L, sizeof *u, EKL_FUTURE_MT);
    u->f = f;
    u->h = ekl_rt_ref(h);
    u->convert = convert;
}

static void future_release(ekl_future *u)
{
    if (u->f) ek_future_drop(u->f);
    u->f = NULL;
    ekl_rt_unref(u->h);
    u->h = NULL;
}

static void future_cancel(void *obj, ekl_task *t)
{
    (void)t;
    ekl_future *u = obj;
    if (u->f) ek_future_drop(u->f);
    u->f = NULL;
}

/* core.await(fut): the future's values, nil, msg, name, or PENDING. */
static int l_await(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    ekl_future *u = ekl_check_self(L, EKL_FUTURE_MT);
    if (!u->f) return ekl_push_error(L, EK_ECLOSED);
    ek_cx *cx = ekl_need_cx(L, c);
    void *out = NULL;
    int rc = ek_future_poll(u->f, cx, &out);
    if (rc == EK_PENDING) {
        ekl_wait_register(c, u, future_cancel);
        ekl_push_pending(L);
        return 1;
    }
    ek_future_drop(u->f);
    u->f = NULL;
    if (rc < 0) return ekl_push_error(L, rc);
    if (u->convert) return u->convert(L, c, u->h, out);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_future_gc(lua_State *L)
{
    ekl_future *u = ekl_check_self(L, EKL_FUTURE_MT);
    if (u->h) future_release(u);
    return 0;
}

static int l_future_cancel(lua_State *L)
{
    ekl_future *u = ekl_check_self(L, EKL_FUTURE_MT);
    if (u->f) ek_future_drop(u->f);
    u->f = NULL;
    return 0;
}

static int l_future_tostring(lua_State *L)
{
    ekl_future *u = ekl_check_self(L, EKL_FUTURE_MT);
    lua_pushfstring(L, "ekiden.future (%s): %p", u->f ? "pending" : "done", (void *)u);
    return 1;
}

void ekl_task_open(lua_State *L, ekl_ctx *c)
{
    static const luaL_Reg task_methods[] = {
        {"cancel", l_task_cancel},
        {"done", l_task_done},
        {"status", l_task_status},
        {NULL, NULL},
    };
    static const luaL_Reg task_meta[] = {
        {"__gc", l_task_gc},
        {"__tostring", l_task_tostring},
        {NULL, NULL},
    };
    ekl_newclass(L, c, EKL_TASK_MT, task_methods, task_meta);
    static const luaL_Reg fut_methods[] = {
        {"cancel", l_future_cancel},
        {NULL, NULL},
    };
    static const luaL_Reg fut_meta[] = {
        {"__gc", l_future_gc},
        {"__close", l_future_cancel},
        {"__tostring", l_future_tostring},
        {NULL, NULL},
    };
    ekl_newclass(L, c, EKL_FUTURE_MT, fut_methods, fut_meta);
    static const luaL_Reg funcs[] = {
        {"run", l_run},
        {"spawn", l_spawn},
        {"spawn_scoped", l_spawn_scoped},
        {"join_poll", l_join_poll},
        {"yield_now", l_yield_now},
        {"await", l_await},
        {"in_task", l_current},
        {"stats", l_stats},
        {NULL, NULL},
    };
    lua_getfield(L, LUA_REGISTRYINDEX, "ekiden.core");
    ekl_set_funcs(L, c, funcs);
    lua_pop(L, 1);
}
