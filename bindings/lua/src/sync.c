/*
 * sync.c - ek.channel (mpsc), ek.semaphore, ek.notify on the C primitives.
 *
 * Waits that hold a place in a queue (a send on a full channel, an acquire, a
 * notify wait) poll a waiter object of their own, as sync.h asks: a userdata
 * made by the first attempt (a cloned sender, a permit, an ek_notified) that the
 * Lua wrapper polls until it completes. It is registered with the waiting task
 * so that cancelling the task gives its place back at once (not when the
 * collector finds it).
 *
 * A channel carries any Lua value except nil: each message is a small box with a
 * registry reference, released by the channel's drop function if nobody receives
 * it. The C receiver has one waiter slot; when several Lua tasks receive from one
 * channel, the one registered in the C receiver is remembered (rx_task) and the
 * others wait in a list, all woken when it gets its message or is cancelled, so
 * that one of them takes its place.
 */
#include "ekl.h"

#include <stdlib.h>

/* ------------------------------------------------------------ messages -- */

typedef struct box {
    ekl_ctx *c;
    int ref;
} box;

static void box_drop(void *msg)
{
    box *b = msg;
    if (!b) return;
    if (b->c->L) luaL_unref(b->c->L, LUA_REGISTRYINDEX, b->ref);
    ekl_ctx_unref(b->c);
    free(b);
}

/* Box the value at idx; NULL on allocation failure. */
static box *box_new(lua_State *L, ekl_ctx *c, int idx)
{
    box *b = malloc(sizeof *b);
    if (!b) return NULL;
    lua_pushvalue(L, idx);
    b->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    b->c = c;
    c->refs++;
    return b;
}

/* Push the boxed value and free the box. */
static void box_push(lua_State *L, box *b)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->ref);
    luaL_unref(L, LUA_REGISTRYINDEX, b->ref);
    ekl_ctx_unref(b->c);
    free(b);
}

/* ------------------------------------------------------------- waiters -- */

#define W_SEND   1 /* a cloned sender holding a boxed message */
#define W_PERMIT 2
#define W_NOTIFY 3

typedef struct waiter_ud {
    int kind;
    ek_mpsc_sender *tx;
    box *msg;
    ek_semaphore_permit *permit;
    size_t n; /* permits asked for */
    ek_notified *notified;
} waiter_ud;

static void waiter_release(waiter_ud *w)
{
    if (w->tx) ek_mpsc_sender_drop(w->tx);
    w->tx = NULL;
    box_drop(w->msg);
    w->msg = NULL;
    if (w->permit) ek_semaphore_permit_drop(w->permit);
    w->permit = NULL;
    if (w->notified) ek_notified_drop(w->notified);
    w->notified = NULL;
}

static void waiter_cancel(void *obj, ekl_task *t)
{
    (void)t;
    waiter_release(obj);
}

static int l_waiter_gc(lua_State *L)
{
    waiter_release(ekl_check_self(L, EKL_WAITER_MT));
    return 0;
}

static waiter_ud *new_waiter(lua_State *L, int kind)
{
    waiter_ud *w = ekl_newudata(L, sizeof *w, EKL_WAITER_MT);
    w->kind = kind;
    return w;
}

static waiter_ud *check_waiter(lua_State *L, int idx, int kind)
{
    waiter_ud *w = luaL_checkudata(L, idx, EKL_WAITER_MT);
    if (w->kind != kind) luaL_argerror(L, idx, "waiter of another operation");
    return w;
}

/* Push PENDING and the waiter (at index widx) after registering it. */
static int pend_with(lua_State *L, ekl_ctx *c, waiter_ud *w, int widx)
{
    ekl_wait_register(c, w, waiter_cancel);
    ekl_push_pending(L);
    lua_pushvalue(L, widx);
    return 2;
}

/* ------------------------------------------------------------ channels -- */

typedef struct chan_ud {
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    ekl_ctx *c;
    ekl_task *rx_task;  /* the task registered in the C receiver, if waiting */
    ek_waker **waiting; /* other receiving tasks */
    size_t nwaiting, capwaiting;
    size_t cap; /* 0: unbounded */
} chan_ud;

static chan_ud *check_chan(lua_State *L)
{
    return ekl_check_self(L, EKL_CHANNEL_MT);
}

static void chan_wake_all(chan_ud *ch)
{
    for (size_t i = 0; i < ch->nwaiting; i++) ek_waker_wake(ch->waiting[i]);
    ch->nwaiting = 0;
}

static void chan_release(chan_ud *ch)
{
    chan_wake_all(ch);
    free(ch->waiting);
    ch->waiting = NULL;
    ch->capwaiting = 0;
    if (ch->tx) ek_mpsc_sender_drop(ch->tx);
    ch->tx = NULL;
    /* Queued messages go through box_drop. */
    if (ch->rx) ek_mpsc_receiver_drop(ch->rx);
    ch->rx = NULL;
    ch->rx_task = NULL;
}

static int l_chan_gc(lua_State *L)
{
    chan_release(check_chan(L));
    return 0;
}

/* ek.channel([capacity]): bounded with capacity >= 1, unbounded without. */
static int l_channel(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    lua_Integer cap = luaL_optinteger(L, 1, 0);
    if (!lua_isnoneornil(L, 1) && cap < 1)
        return luaL_argerror(L, 1, "capacity must be >= 1 (or nil: unbounded)");
    chan_ud *ch = ekl_newudata(L, sizeof *ch, EKL_CHANNEL_MT);
    ch->c = c;
    ch->cap = (size_t)cap;
    int rc = cap > 0 ? ek_mpsc_bounded((size_t)cap, box_drop, &ch->tx, &ch->rx)
                     : ek_mpsc_unbounded(box_drop, &ch->tx, &ch->rx);
    if (rc) {
        lua_pop(L, 1);
        return ekl_push_error(L, rc);
    }
    return 1;
}

/* core channel:send(v) -> true | nil, msg, name | PENDING, waiter */
static int l_chan_send(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    chan_ud *ch = check_chan(L);
    luaL_checkany(L, 2);
    if (lua_isnil(L, 2)) return luaL_argerror(L, 2, "nil cannot be sent (it marks the end)");
    if (!ch->tx) return ekl_push_error(L, EK_ECLOSED);
    box *b = box_new(L, c, 2);
    if (!b) return ekl_push_error(L, EK_ENOMEM);
    int rc = ek_mpsc_try_send(ch->tx, b);
    if (rc == EK_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (rc != EK_EFULL) {
        box_drop(b);
        return ekl_push_error(L, rc);
    }
    /* Full: wait in the queue with a sender of our own. */
    ek_cx *cx = ekl_need_cx(L, c);
    waiter_ud *w = new_waiter(L, W_SEND);
    w->msg = b;
    rc = ek_mpsc_sender_clone(ch->tx, &w->tx);
    if (rc) {
        waiter_release(w);
        return ekl_push_error(L, rc);
    }
    rc = ek_mpsc_send(w->tx, cx, w->msg);
    if (rc == EK_PENDING) return pend_with(L, c, w, lua_gettop(L));
    if (rc == EK_OK) w->msg = NULL;
    waiter_release(w);
    if (rc < 0) return ekl_push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* core channel:send_poll(waiter) -> true | nil, msg, name | PENDING, waiter */
static int l_chan_send_poll(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    check_chan(L);
    waiter_ud *w = check_waiter(L, 2, W_SEND);
    if (!w->tx) return ekl_push_error(L, EK_ECANCELED);
    ek_cx *cx = ekl_need_cx(L, c);
    int rc = ek_mpsc_send(w->tx, cx, w->msg);
    if (rc == EK_PENDING) return pend_with(L, c, w, 2);
    if (rc == EK_OK) w->msg = NULL;
    waiter_release(w);
    if (rc < 0) return ekl_push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_chan_try_send(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    chan_ud *ch = check_chan(L);
    luaL_checkany(L, 2);
    if (lua_isnil(L, 2)) return luaL_argerror(L, 2, "nil cannot be sent (it marks the end)");
    if (!ch->tx) return ekl_push_error(L, EK_ECLOSED);
    box *b = box_new(L, c, 2);
    if (!b) return ekl_push_error(L, EK_ENOMEM);
    int rc = ek_mpsc_try_send(ch->tx, b);
    if (rc) {
        box_drop(b);
        return ekl_push_error(L, rc);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static void rx_task_cancel(void *obj, ekl_task *t)
{
    chan_ud *ch = obj;
    if (ch->rx_task == t) {
        ch->rx_task = NULL;
        chan_wake_all(ch);
    }
}

/* A value was received (or the channel ended): hand the receiver over. */
static void rx_done(chan_ud *ch, ekl_task *t)
{
    if (ch->rx_task == t || ch->rx_task == NULL) {
        ch->rx_task = NULL;
        chan_wake_all(ch);
    }
}

static int queue_waiter(lua_State *L, chan_ud *ch, ek_cx *cx)
{
    for (size_t i = 0; i < ch->nwaiting; i++)
        if (ek_waker_will_wake(ch->waiting[i], cx)) goto pending;
    if (ch->nwaiting == ch->capwaiting) {
        size_t cap = ch->capwaiting ? ch->capwaiting * 2 : 4;
        ek_waker **w = realloc(ch->waiting, cap * sizeof *w);
        if (!w) return ekl_push_error(L, EK_ENOMEM);
        ch->waiting = w;
        ch->capwaiting = cap;
    }
    ek_waker *w = ek_cx_waker(cx);
    if (!w) return ekl_push_error(L, EK_ENOMEM);
    ch->waiting[ch->nwaiting++] = w;
pending:
    ekl_push_pending(L);
    return 1;
}

/* core channel:recv() -> value | nil, msg, name (ECLOSED once closed and
 * drained) | PENDING */
static int l_chan_recv(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    chan_ud *ch = check_chan(L);
    if (!ch->rx) return ekl_push_error(L, EK_ECLOSED);
    void *m = NULL;
    int rc = ek_mpsc_try_recv(ch->rx, &m);
    if (rc == EK_EEMPTY) {
        ek_cx *cx = ekl_need_cx(L, c);
        ekl_task *me = c->cur;
        if (ch->rx_task && ch->rx_task != me) return queue_waiter(L, ch, cx);
        rc = ek_mpsc_recv(ch->rx, cx, &m);
        if (rc == EK_PENDING) {
            ch->rx_task = me;
            ekl_wait_register(c, ch, rx_task_cancel);
            ekl_push_pending(L);
            return 1;
        }
    }
    rx_done(ch, c->cur);
    if (rc < 0) return ekl_push_error(L, rc);
    box_push(L, m);
    return 1;
}

static int l_chan_try_recv(lua_State *L)
{
    chan_ud *ch = check_chan(L);
    if (!ch->rx) return ekl_push_error(L, EK_ECLOSED);
    void *m = NULL;
    int rc = ek_mpsc_try_recv(ch->rx, &m);
    if (rc < 0) return ekl_push_error(L, rc);
    box_push(L, m);
    return 1;
}

/* close(): no more sends; what is queued can still be received. */
static int l_chan_close(lua_State *L)
{
    chan_ud *ch = check_chan(L);
    if (ch->rx) ek_mpsc_close(ch->rx);
    if (ch->tx) ek_mpsc_sender_drop(ch->tx);
    ch->tx = NULL;
    chan_wake_all(ch);
    return 0;
}

static int l_chan_len(lua_State *L)
{
    chan_ud *ch = check_chan(L);
    lua_pushinteger(L, ch->rx ? (lua_Integer)ek_mpsc_len(ch->rx) : 0);
    return 1;
}

static int l_chan_is_closed(lua_State *L)
{
    chan_ud *ch = check_chan(L);
    lua_pushboolean(L, ch->tx == NULL);
    return 1;
}

static int l_chan_tostring(lua_State *L)
{
    chan_ud *ch = check_chan(L);
    lua_pushfstring(L, "ekiden.channel (%s, %d queued): %p", ch->tx ? "open" : "closed",
                    ch->rx ? (int)ek_mpsc_len(ch->rx) : 0, (void *)ch);
    return 1;
}

/* ---------------------------------------------------------- semaphores -- */

typedef struct sem_ud {
    ek_semaphore *s;
} sem_ud;

typedef struct permit_ud {
    ek_semaphore_permit *p; /* from acquire */
    ek_semaphore *raw_sem;  /* from try_acquire: `raw` permits of raw_sem */
    size_t raw;
} permit_ud;

static sem_ud *check_sem(lua_State *L)
{
    return ekl_check_self(L, EKL_SEM_MT);
}

static int l_semaphore(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 0) return luaL_argerror(L, 1, "permits must be >= 0");
    sem_ud *u = ekl_newudata(L, sizeof *u, EKL_SEM_MT);
    int rc = ek_semaphore_new((size_t)n, &u->s);
    if (rc) {
        u->s = NULL;
        lua_pop(L, 1);
        return ekl_push_error(L, rc);
    }
    return 1;
}

static int l_sem_gc(lua_State *L)
{
    sem_ud *u = check_sem(L);
    if (u->s) ek_semaphore_drop(u->s);
    u->s = NULL;
    return 0;
}

static size_t check_count(lua_State *L, int idx)
{
    lua_Integer n = luaL_optinteger(L, idx, 1);
    if (n < 0) luaL_argerror(L, idx, "count must be >= 0");
    return (size_t)n;
}

/* A waiter's permit moves into a permit userdata, which is pushed. */
static int push_permit(lua_State *L, waiter_ud *w)
{
    permit_ud *p = ekl_newudata(L, sizeof *p, EKL_PERMIT_MT);
    p->p = w->permit;
    w->permit = NULL;
    return 1;
}

static int acquire_poll(lua_State *L, ekl_ctx *c, waiter_ud *w, int widx)
{
    if (!w->permit) return ekl_push_error(L, EK_ECANCELED);
    ek_cx *cx = ekl_need_cx(L, c);
    int rc = ek_semaphore_acquire(w->permit, cx, w->n);
    if (rc == EK_PENDING) return pend_with(L, c, w, widx);
    if (rc < 0) {
        waiter_release(w);
        return ekl_push_error(L, rc);
    }
    return push_permit(L, w);
}

/* core sem:acquire([n]) -> permit | nil, msg, name | PENDING, waiter */
static int l_sem_acquire(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    sem_ud *u = check_sem(L);
    size_t n = check_count(L, 2);
    waiter_ud *w = new_waiter(L, W_PERMIT);
    w->n = n;
    int rc = ek_semaphore_permit_new(u->s, &w->permit);
    if (rc) {
        w->permit = NULL;
        return ekl_push_error(L, rc);
    }
    return acquire_poll(L, c, w, lua_gettop(L));
}

static int l_sem_acquire_poll(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    check_sem(L);
    return acquire_poll(L, c, check_waiter(L, 2, W_PERMIT), 2);
}

/* sem:try_acquire([n]) -> permit | nil, "EFULL: ...", "EFULL". The permit holds
 * n raw permits (and a reference to the semaphore) and releases them. */
static int l_sem_try_acquire(lua_State *L)
{
    sem_ud *u = check_sem(L);
    size_t n = check_count(L, 2);
    permit_ud *p = ekl_newudata(L, sizeof *p, EKL_PERMIT_MT);
    int rc = ek_semaphore_clone(u->s, &p->raw_sem);
    if (rc == EK_OK) rc = ek_semaphore_try_acquire(u->s, n);
    if (rc) return ekl_push_error(L, rc);
    p->raw = n;
    return 1;
}

/* sem:release([n]): add n permits (the semaphore grows). */
static int l_sem_release(lua_State *L)
{
    sem_ud *u = check_sem(L);
    int rc = ek_semaphore_release(u->s, check_count(L, 2));
    if (rc) return ekl_push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_sem_available(lua_State *L)
{
    sem_ud *u = check_sem(L);
    lua_pushinteger(L, (lua_Integer)ek_semaphore_available_permits(u->s));
    return 1;
}

static int l_sem_close(lua_State *L)
{
    ek_semaphore_close(check_sem(L)->s);
    return 0;
}

static int l_sem_tostring(lua_State *L)
{
    sem_ud *u = check_sem(L);
    lua_pushfstring(L, "ekiden.semaphore (%d available): %p",
                    (int)ek_semaphore_available_permits(u->s), (void *)u);
    return 1;
}

static permit_ud *check_permit(lua_State *L)
{
    return ekl_check_self(L, EKL_PERMIT_MT);
}

/* Give the permits back (forget: remove them from the semaphore for good). */
static void permit_end(permit_ud *p, bool forget)
{
    if (p->p) {
        if (forget) ek_semaphore_permit_forget(p->p);
        ek_semaphore_permit_drop(p->p);
    }
    if (p->raw_sem) {
        if (!forget) ek_semaphore_release(p->raw_sem, p->raw);
        ek_semaphore_drop(p->raw_sem);
    }
    p->p = NULL;
    p->raw_sem = NULL;
    p->raw = 0;
}

static int l_permit_release(lua_State *L)
{
    permit_end(check_permit(L), false);
    return 0;
}

static int l_permit_forget(lua_State *L)
{
    permit_end(check_permit(L), true);
    return 0;
}

static size_t permit_count(permit_ud *p)
{
    return p->p ? (size_t)ek_semaphore_permit_count(p->p) : p->raw;
}

static int l_permit_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)permit_count(check_permit(L)));
    return 1;
}

static int l_permit_tostring(lua_State *L)
{
    permit_ud *p = check_permit(L);
    lua_pushfstring(L, "ekiden.permit (%d held): %p", (int)permit_count(p), (void *)p);
    return 1;
}

/* -------------------------------------------------------------- notify -- */

typedef struct notify_ud {
    ek_notify *n;
} notify_ud;

static notify_ud *check_notify(lua_State *L)
{
    return ekl_check_self(L, EKL_NOTIFY_MT);
}

static int l_notify(lua_State *L)
{
    notify_ud *u = ekl_newudata(L, sizeof *u, EKL_NOTIFY_MT);
    int rc = ek_notify_new(&u->n);
    if (rc) {
        u->n = NULL;
        lua_pop(L, 1);
        return ekl_push_error(L, rc);
    }
    return 1;
}

static int l_notify_gc(lua_State *L)
{
    notify_ud *u = check_notify(L);
    if (u->n) ek_notify_drop(u->n);
    u->n = NULL;
    return 0;
}

static int l_notify_one(lua_State *L)
{
    ek_notify_one(check_notify(L)->n);
    return 0;
}

static int l_notify_all(lua_State *L)
{
    ek_notify_waiters(check_notify(L)->n);
    return 0;
}

static int notified_poll(lua_State *L, ekl_ctx *c, waiter_ud *w, int widx)
{
    if (!w->notified) return ekl_push_error(L, EK_ECANCELED);
    ek_cx *cx = ekl_need_cx(L, c);
    int rc = ek_notified_poll(w->notified, cx);
    if (rc == EK_PENDING) return pend_with(L, c, w, widx);
    waiter_release(w);
    if (rc < 0) return ekl_push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* core notify:wait() -> true | PENDING, waiter */
static int l_notify_wait(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    notify_ud *u = check_notify(L);
    ekl_need_cx(L, c);
    waiter_ud *w = new_waiter(L, W_NOTIFY);
    int rc = ek_notified_new(u->n, &w->notified);
    if (rc) {
        w->notified = NULL;
        return ekl_push_error(L, rc);
    }
    return notified_poll(L, c, w, lua_gettop(L));
}

static int l_notify_wait_poll(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    check_notify(L);
    return notified_poll(L, c, check_waiter(L, 2, W_NOTIFY), 2);
}

static int l_notify_tostring(lua_State *L)
{
    lua_pushfstring(L, "ekiden.notify: %p", (void *)check_notify(L));
    return 1;
}

/* ---------------------------------------------------------------- open -- */

void ekl_sync_open(lua_State *L, ekl_ctx *c)
{
    static const luaL_Reg waiter_meta[] = {
        {"__gc", l_waiter_gc},
        {"__close", l_waiter_gc},
        {NULL, NULL},
    };
    static const luaL_Reg none[] = {{NULL, NULL}};
    ekl_newclass(L, c, EKL_WAITER_MT, none, waiter_meta);

    static const luaL_Reg chan_methods[] = {
        {"send", l_chan_send}, {"send_poll", l_chan_send_poll}, {"try_send", l_chan_try_send},
        {"recv", l_chan_recv}, {"try_recv", l_chan_try_recv},   {"close", l_chan_close},
        {"len", l_chan_len},   {"is_closed", l_chan_is_closed}, {NULL, NULL},
    };
    static const luaL_Reg chan_meta[] = {
        {"__gc", l_chan_gc},
        {"__close", l_chan_close},
        {"__tostring", l_chan_tostring},
        {"__len", l_chan_len},
        {NULL, NULL},
    };
    ekl_newclass(L, c, EKL_CHANNEL_MT, chan_methods, chan_meta);

    static const luaL_Reg sem_methods[] = {
        {"acquire", l_sem_acquire},
        {"acquire_poll", l_sem_acquire_poll},
        {"try_acquire", l_sem_try_acquire},
        {"release", l_sem_release},
        {"available", l_sem_available},
        {"close", l_sem_close},
        {NULL, NULL},
    };
    static const luaL_Reg sem_meta[] = {
        {"__gc", l_sem_gc},
        {"__tostring", l_sem_tostring},
        {NULL, NULL},
    };
    ekl_newclass(L, c, EKL_SEM_MT, sem_methods, sem_meta);

    static const luaL_Reg permit_methods[] = {
        {"release", l_permit_release},
        {"forget", l_permit_forget},
        {"count", l_permit_count},
        {NULL, NULL},
    };
    static const luaL_Reg permit_meta[] = {
        {"__gc", l_permit_release},
        {"__close", l_permit_release},
        {"__tostring", l_permit_tostring},
        {NULL, NULL},
    };
    ekl_newclass(L, c, EKL_PERMIT_MT, permit_methods, permit_meta);

    static const luaL_Reg notify_methods[] = {
        {"notify_one", l_notify_one},
        {"notify_all", l_notify_all},
        {"wait", l_notify_wait},
        {"wait_poll", l_notify_wait_poll},
        {NULL, NULL},
    };
    static const luaL_Reg notify_meta[] = {
        {"__gc", l_notify_gc},
        {"__tostring", l_notify_tostring},
        {NULL, NULL},
    };
    ekl_newclass(L, c, EKL_NOTIFY_MT, notify_methods, notify_meta);

    static const luaL_Reg funcs[] = {
        {"channel", l_channel},
        {"semaphore", l_semaphore},
        {"notify", l_notify},
        {NULL, NULL},
    };
    lua_getfield(L, LUA_REGISTRYINDEX, "ekiden.core");
    ekl_set_funcs(L, c, funcs);
    lua_pop(L, 1);
}
