/*
 * serve.c - ek.serve and ek.connect: the C framed server and pipelined client
 * (ekiden/server.h, ekiden/client.h) with a codec, for services of any language.
 *
 * ek.serve{addr = "ip:port" | path = "/unix/path", codec = "lines" | "length" |
 * "resp" | "http", service = svc, ...} binds, and hands a clone of svc to
 * ek_server_serve: the connection tasks run on the worker threads (C reads,
 * decodes, pipelines and writes); a Lua service still runs on this thread
 * behind its local buffer and sees decoded messages (msg.c).
 *
 * server:shutdown(grace) waits (yields) while another thread runs
 * ek_server_shutdown, which blocks: this thread must go on running the Lua
 * handlers of the requests being drained. That thread holds a reference on the
 * server record (lsrv), so the Lua handle may be collected meanwhile; the last
 * reference frees the server.
 */
#include "ekl.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A server, shared by its Lua handle and a running shutdown thread. */
typedef struct lsrv {
    ek_server *s;
    atomic_int refs;
} lsrv;

static void lsrv_unref(lsrv *r)
{
    /* acq_rel: the last owner sees every use of the server by the others. */
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1) return;
    ek_server_free(r->s);
    free(r);
}

typedef struct server_ud {
    lsrv *srv;
    ekl_rt *h;
    const char *codec;
    bool shut;   /* shutdown() started */
    bool direct; /* a local server calling a Lua function service directly */
} server_ud;

static server_ud *check_server(lua_State *L)
{
    return ekl_check_self(L, EKL_SERVER_MT);
}

/* ------------------------------------------------------------- codecs -- */

static const char *const codec_names[] = {"lines", "length", "resp", "http", NULL};
#define CODEC_HTTP 3

typedef struct codec_opts {
    size_t max_frame;  /* lines, length: the largest frame; http: the largest body */
    size_t max_header; /* http: the largest head */
    bool date;         /* http server: a Date header */
} codec_opts;

/* A new codec by name for a server or a client; 0 sizes: the defaults. */
static int codec_new(int which, bool server, const codec_opts *o, ek_codec **out)
{
    switch (which) {
    case 0:
        return ek_codec_lines(o->max_frame, out);
    case 1:
        return ek_codec_length_delimited(0, EK_LENGTH_DEFAULT_FIELD_LEN, 0, EK_LENGTH_SKIP_DEFAULT,
                                         0, o->max_frame, out);
    case 2:
        return server ? ek_codec_resp_server(out) : ek_codec_resp_client(2, out);
    default:
        return server ? ek_codec_http_server(o->max_header, o->max_frame,
                                             o->date ? EK_HTTP_DATE : 0, out)
                      : ek_codec_http_client(o->max_header, o->max_frame, 0, out);
    }
}

/* What Lua values become as requests of a client with that codec. */
static int request_kind(int which)
{
    switch (which) {
    case 2:
        return EKL_MSG_RESP_REQUEST;
    case CODEC_HTTP:
        return EK_MSG_HTTP_REQUEST;
    default:
        return EK_MSG_BYTES;
    }
}

/* ------------------------------------------------------------ options -- */

/* Field `name` of the options table at 1 as an integer in [lo, hi], or def. */
static lua_Integer opt_range(lua_State *L, const char *name, lua_Integer def, lua_Integer lo,
                             lua_Integer hi)
{
    lua_getfield(L, 1, name);
    lua_Integer v = def;
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1))
            return luaL_error(L, "bad option '%s' (number expected, got %s)", name,
                              luaL_typename(L, -1));
        v = lua_tointeger(L, -1);
        if (v < lo || v > hi)
            return luaL_error(L, "bad option '%s' (must be %d..%d)", name, (int)lo, (int)hi);
    }
    lua_pop(L, 1);
    return v;
}

/* Field `name` as seconds -> whole milliseconds (0 when absent). */
static uint64_t opt_ms(lua_State *L, const char *name)
{
    lua_getfield(L, 1, name);
    uint64_t ms = lua_isnil(L, -1) ? 0 : ekl_check_ms(L, -1);
    lua_pop(L, 1);
    return ms;
}

static int opt_codec(lua_State *L)
{
    lua_getfield(L, 1, "codec");
    int which = lua_isnil(L, -1) ? 0 : -1;
    if (which < 0) {
        const char *name = lua_tostring(L, -1);
        for (int i = 0; name && codec_names[i]; i++)
            if (strcmp(name, codec_names[i]) == 0) which = i;
        if (which < 0)
            return luaL_error(L, "bad option 'codec' (\"lines\", \"length\", \"resp\" or "
                                 "\"http\" expected)");
    }
    lua_pop(L, 1);
    return which;
}

/* ------------------------------------------------------------ ek.serve -- */

/* ek.serve{addr = | path =, service =, codec = "lines", max_frame =,
 * max_in_flight =, idle_timeout =, nodelay = true, backlog = 1024,
 * reuseport = false} -> server | nil, msg, name */
static int l_serve(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    ekl_rt *h = ekl_need_rt(L, c);
    int which = opt_codec(L);
    codec_opts co = {0};
    co.max_frame = (size_t)opt_range(L, "max_frame", 0, 0, (lua_Integer)INT32_MAX);
    co.max_header = (size_t)opt_range(L, "max_header", 0, 0, (lua_Integer)INT32_MAX);
    lua_getfield(L, 1, "date");
    co.date = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_Integer in_flight = opt_range(L, "max_in_flight", 128, 1, 65536);
    lua_Integer backlog = opt_range(L, "backlog", 1024, 1, 65535);
    uint64_t idle_ms = opt_ms(L, "idle_timeout");
    lua_getfield(L, 1, "nodelay");
    int nodelay = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
    lua_getfield(L, 1, "reuseport");
    unsigned flags = lua_toboolean(L, -1) ? EK_TCP_REUSEPORT : 0;
    lua_getfield(L, 1, "addr");
    lua_getfield(L, 1, "path");
    const char *addr = lua_tostring(L, -2), *path = lua_tostring(L, -1);
    if (!addr == !path) return luaL_error(L, "ek.serve: give one of 'addr' or 'path'");
    lua_getfield(L, 1, "service");
    if (!luaL_testudata(L, -1, EKL_SERVICE_MT))
        return luaL_error(L, "bad option 'service' (an ekiden.service expected)");
    int svc_idx = lua_gettop(L);
    /* direct (default: true for an ek.service function): local server, see
     * ekl_service_direct_at. */
    lua_getfield(L, 1, "direct");
    int direct = lua_isnil(L, -1) ? -1 : lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (h->closed) return ekl_push_error(L, EK_ECLOSED);

    ek_server_options *o = NULL;
    ek_service *direct_svc = NULL;
    int rc = ek_server_options_new(&o);
    if (rc == EK_OK) rc = ek_server_options_set_max_in_flight(o, (size_t)in_flight);
    if (rc == EK_OK) rc = ek_server_options_set_idle_timeout_ms(o, idle_ms);
    if (rc == EK_OK) rc = ek_server_options_set_nodelay(o, nodelay);
    if (rc == EK_OK && direct != 0) {
        int n = 0;
        direct_svc = ekl_service_direct_at(L, svc_idx, &n);
        if (!direct_svc && n) {
            ek_server_options_free(o);
            return n;
        }
        if (direct_svc) rc = ek_server_options_set_local(o, 1);
    }
    if (rc) {
        ek_service_free(direct_svc);
        ek_server_options_free(o);
        return ekl_push_error(L, rc);
    }
    ek_tcp_listener *tl = NULL;
    ek_unix_listener *ul = NULL;
    if (addr) {
        ek_sockaddr *a = NULL;
        rc = ek_sockaddr_parse(addr, &a);
        if (rc == EK_OK) rc = ek_tcp_bind(h->rt, a, (int)backlog, flags, &tl);
        ek_sockaddr_free(a);
    } else {
        rc = ek_unix_bind(h->rt, path, (int)backlog, &ul);
    }
    ek_codec *codec = NULL;
    if (rc == EK_OK) rc = codec_new(which, true, &co, &codec);
    ek_service *svc = direct_svc;
    if (rc == EK_OK && !svc) {
        int n = 0;
        ekl_rt *sh;
        int kind;
        svc = ekl_service_clone_at(L, svc_idx, &sh, &kind, &n);
        if (!svc) {
            ek_codec_free(codec);
            ek_tcp_listener_free(tl);
            ek_unix_listener_free(ul);
            ek_server_options_free(o);
            return n;
        }
    }
    if (rc) {
        ek_service_free(svc);
        ek_tcp_listener_free(tl);
        ek_unix_listener_free(ul);
        ek_server_options_free(o);
        return ekl_push_error(L, rc);
    }
    lsrv *r = malloc(sizeof *r);
    if (!r) {
        ek_codec_free(codec);
        ek_service_free(svc);
        ek_tcp_listener_free(tl);
        ek_unix_listener_free(ul);
        ek_server_options_free(o);
        return ekl_push_error(L, EK_ENOMEM);
    }
    atomic_init(&r->refs, 1);
    /* Consumes the listener, the codec and the service, also on error. */
    if (tl)
        rc = ek_server_serve(h->rt, tl, codec, svc, o, &r->s);
    else
        rc = ek_server_serve_unix(h->rt, ul, codec, svc, o, &r->s);
    ek_server_options_free(o);
    if (rc) {
        free(r);
        return ekl_push_error(L, rc);
    }
    server_ud *u = ekl_newudata(L, sizeof *u, EKL_SERVER_MT);
    u->srv = r;
    u->h = ekl_rt_ref(h);
    u->codec = codec_names[which];
    u->shut = false;
    u->direct = direct_svc != NULL;
    return 1;
}

static int l_server_local_addr(lua_State *L)
{
    server_ud *u = check_server(L);
    if (!u->srv || u->shut || u->h->closed) return ekl_push_error(L, EK_ECLOSED);
    ek_sockaddr *a = NULL;
    int rc = ek_sockaddr_new(&a);
    if (rc == EK_OK) rc = ek_server_local_addr(u->srv->s, a);
    char buf[EK_SOCKADDR_STRLEN];
    int n = rc < 0 ? rc : ek_sockaddr_format(a, buf, sizeof buf);
    ek_sockaddr_free(a);
    if (n < 0) return ekl_push_error(L, n);
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

static int l_server_metrics(lua_State *L)
{
    server_ud *u = check_server(L);
    if (!u->srv) return ekl_push_error(L, EK_ECLOSED);
    uint64_t v[EK_SERVER_METRIC_COUNT];
    int n = ek_server_metrics(u->srv->s, v, EK_SERVER_METRIC_COUNT);
    if (n < 0) return ekl_push_error(L, n);
    lua_createtable(L, 0, EK_SERVER_METRIC_COUNT);
    for (int i = 0; i < n && i < EK_SERVER_METRIC_COUNT; i++) {
        const char *name = ek_server_metric_name(i);
        if (!name) continue;
        lua_pushinteger(L, (lua_Integer)v[i]);
        lua_setfield(L, -2, name);
    }
    return 1;
}

/* close(): stop at once (what is in flight is dropped); also __gc, __close. */
static int l_server_close(lua_State *L)
{
    server_ud *u = check_server(L);
    if (u->srv) lsrv_unref(u->srv);
    u->srv = NULL;
    if (u->h) ekl_rt_unref(u->h);
    u->h = NULL;
    return 0;
}

static int l_server_tostring(lua_State *L)
{
    server_ud *u = check_server(L);
    lua_pushfstring(L, "ekiden.server (%s, %s%s): %p", u->codec ? u->codec : "?",
                    u->srv && !u->shut ? "serving" : "closed", u->direct ? ", direct" : "",
                    (void *)u);
    return 1;
}

/* --------------------------------------------------------- shutdown -- */

typedef struct shutdown_job {
    lsrv *srv;
    uint64_t grace_ms;
    ek_oneshot_sender *tx;
} shutdown_job;

static void *shutdown_run(void *arg)
{
    shutdown_job *j = arg;
    int rc = ek_server_shutdown(j->srv->s, j->grace_ms);
    /* The value is never NULL: 1 for EK_OK, else the (negative) code. */
    (void)ek_oneshot_send(j->tx, (void *)(intptr_t)(rc == EK_OK ? 1 : rc));
    lsrv_unref(j->srv);
    free(j);
    return NULL;
}

static int shutdown_poll(void *state, ek_cx *cx, void **out)
{
    void *v = NULL;
    int rc = ek_oneshot_recv(state, cx, &v);
    if (rc != EK_OK) return rc;
    *out = v;
    return EK_OK;
}

static void shutdown_drop(void *state)
{
    ek_oneshot_receiver_drop(state);
}

/* true if every connection closed within the grace period; false, "ETIMEDOUT:
 * ...", "ETIMEDOUT" if some were closed by force. */
static int convert_shutdown(lua_State *L, ekl_ctx *c, ekl_rt *h, void *out)
{
    (void)c;
    (void)h;
    int rc = (int)(intptr_t)out;
    if (rc == 1) {
        lua_pushboolean(L, 1);
        return 1;
    }
    int n = ekl_push_error(L, rc);
    lua_pushboolean(L, 0);
    lua_replace(L, -n - 1);
    return n;
}

/* core server:shutdown([grace = 5]) -> a future (ekiden.lua awaits it). */
static int l_server_shutdown(lua_State *L)
{
    server_ud *u = check_server(L);
    uint64_t grace = lua_isnoneornil(L, 2) ? 5000 : ekl_check_ms(L, 2);
    if (!u->srv || u->h->closed) return ekl_push_error(L, EK_ECLOSED);
    u->shut = true;
    ek_oneshot_sender *tx = NULL;
    ek_oneshot_receiver *rx = NULL;
    int rc = ek_oneshot_new(NULL, &tx, &rx);
    if (rc) return ekl_push_error(L, rc);
    shutdown_job *j = malloc(sizeof *j);
    if (!j) {
        ek_oneshot_sender_drop(tx);
        ek_oneshot_receiver_drop(rx);
        return ekl_push_error(L, EK_ENOMEM);
    }
    j->srv = u->srv;
    atomic_fetch_add_explicit(&u->srv->refs, 1, memory_order_relaxed);
    j->grace_ms = grace;
    j->tx = tx;
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int err = pthread_create(&thread, &attr, shutdown_run, j);
    pthread_attr_destroy(&attr);
    if (err) {
        lsrv_unref(j->srv);
        free(j);
        ek_oneshot_sender_drop(tx);
        ek_oneshot_receiver_drop(rx);
        return ekl_push_error(L, EK_ENOMEM);
    }
    ek_future *f = NULL;
    rc = ek_future_new(shutdown_poll, shutdown_drop, rx, &f);
    if (rc) return ekl_push_error(L, rc);
    ekl_push_future(L, u->h, f, convert_shutdown);
    return 1;
}

/* ------------------------------------------------------------- pushes -- */

/* A client's push frames (ek_client_options_set_push): the receiver of the
 * channel the client sends them to, as ek.connect{pushes = n} makes it.
 * client:pushes() returns it; recv() waits for the next frame (its Lua value:
 * the push's elements, { "message", "news", "hi", n = 3 }). One task receives
 * at a time (the channel has one waker): a second one waiting at once gets
 * EBUSY. */
typedef struct pushes_ud {
    ek_mpsc_receiver *rx;
    ekl_rt *h;
    ekl_task *waiter; /* the task waiting in recv, if any */
    ek_waker *wk;     /* its waker, for close() */
} pushes_ud;

static pushes_ud *check_pushes(lua_State *L)
{
    return ekl_check_self(L, EKL_PUSHES_MT);
}

static void pushes_forget_waiter(pushes_ud *u)
{
    u->waiter = NULL;
    if (u->wk) ek_waker_drop(u->wk);
    u->wk = NULL;
}

/* The waiting task was cancelled: another may receive now. */
static void pushes_cancel(void *obj, ekl_task *t)
{
    pushes_ud *u = obj;
    if (u->waiter == t) pushes_forget_waiter(u);
}

/* Push the Lua value of push frame m (consumed): its elements' table. */
static int push_frame(lua_State *L, ek_msg *m)
{
    int rc = ekl_msg_push(L, m);
    ek_msg_free(m);
    if (rc < 0) return ekl_push_error(L, rc);
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "push");
        if (lua_istable(L, -1))
            lua_remove(L, -2);
        else
            lua_pop(L, 1);
    }
    return 1;
}

static int pushes_recv_op(lua_State *L, ekl_ctx *c, ek_cx *cx, ekl_retry *r)
{
    pushes_ud *u = r->obj;
    if (!u->rx || u->h->closed) {
        if (u->waiter == c->cur) pushes_forget_waiter(u);
        return ekl_push_error(L, EK_ECLOSED);
    }
    void *m = NULL;
    int rc = ek_mpsc_recv(u->rx, cx, &m);
    if (rc == EK_PENDING) {
        if (!u->wk || ek_waker_will_wake(u->wk, cx) != 1) {
            ek_waker *w = ek_cx_waker(cx);
            if (!w) return ekl_push_error(L, EK_ENOMEM);
            if (u->wk) ek_waker_drop(u->wk);
            u->wk = w;
        }
        u->waiter = c->cur;
        ekl_wait_register(c, u, pushes_cancel);
        return EKL_RETRY_PENDING;
    }
    pushes_forget_waiter(u);
    if (rc < 0) return ekl_push_error(L, rc);
    return push_frame(L, m);
}

/* pushes:recv() -> frame | nil, msg, name (ECLOSED: the client and its
 * connections are gone, or close() was called; EBUSY: another task waits) */
static int l_pushes_recv(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    pushes_ud *u = check_pushes(L);
    if (!u->rx || u->h->closed) return ekl_push_error(L, EK_ECLOSED);
    ek_cx *cx = ekl_need_cx(L, c);
    if (u->waiter && u->waiter != c->cur) return ekl_push_error(L, EK_EBUSY);
    ekl_retry r = {.fn = pushes_recv_op, .obj = u};
    int n = pushes_recv_op(L, c, cx, &r);
    return n == EKL_RETRY_PENDING ? ekl_yield_retry(L, c, &r) : n;
}

/* pushes:try_recv() -> frame | nil, msg, name (EEMPTY: none yet) */
static int l_pushes_try_recv(lua_State *L)
{
    pushes_ud *u = check_pushes(L);
    if (!u->rx || u->h->closed) return ekl_push_error(L, EK_ECLOSED);
    void *m = NULL;
    int rc = ek_mpsc_try_recv(u->rx, &m);
    if (rc < 0) return ekl_push_error(L, rc);
    return push_frame(L, m);
}

/* close(): drop the channel (frames queued and later ones are dropped; the
 * client no longer waits for room); a task waiting in recv gets ECLOSED. Also
 * __gc, __close. */
static int l_pushes_close(lua_State *L)
{
    pushes_ud *u = check_pushes(L);
    if (u->rx) ek_mpsc_receiver_drop(u->rx);
    u->rx = NULL;
    if (u->wk) ek_waker_wake_by_ref(u->wk);
    if (u->h) ekl_rt_unref(u->h);
    u->h = NULL;
    /* the waiter (if any) sees rx gone at its next poll and forgets itself */
    if (!u->waiter) pushes_forget_waiter(u);
    return 0;
}

static int l_pushes_gc(lua_State *L)
{
    pushes_ud *u = check_pushes(L);
    l_pushes_close(L);
    pushes_forget_waiter(u);
    return 0;
}

static int l_pushes_tostring(lua_State *L)
{
    pushes_ud *u = check_pushes(L);
    lua_pushfstring(L, "ekiden.pushes (%s): %p", u->rx ? "open" : "closed", (void *)u);
    return 1;
}

static int l_pushes_len(lua_State *L)
{
    pushes_ud *u = check_pushes(L);
    int64_t n = u->rx ? ek_mpsc_len(u->rx) : 0;
    lua_pushinteger(L, n < 0 ? 0 : (lua_Integer)n);
    return 1;
}

/* ---------------------------------------------------------- ek.connect -- */

/* ek.connect{addr = | path =, codec = "lines", max_frame =, max_in_flight =,
 * reconnect = false | seconds of back-off, pushes = false | true | capacity}
 * -> a client service | nil, msg, name */
static int l_connect(lua_State *L)
{
    ekl_ctx *c = ekl_ctx_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    ekl_rt *h = ekl_need_rt(L, c);
    int which = opt_codec(L);
    codec_opts co = {0};
    co.max_frame = (size_t)opt_range(L, "max_frame", 0, 0, (lua_Integer)INT32_MAX);
    co.max_header = (size_t)opt_range(L, "max_header", 0, 0, (lua_Integer)INT32_MAX);
    lua_Integer in_flight = opt_range(L, "max_in_flight", 1024, 1, 65536);
    lua_getfield(L, 1, "reconnect");
    uint64_t backoff = 0;
    if (lua_isboolean(L, -1))
        backoff = lua_toboolean(L, -1) ? 100 : 0;
    else if (!lua_isnil(L, -1)) {
        backoff = ekl_check_ms(L, -1);
        if (backoff == 0) backoff = 1;
    }
    /* pushes: true (a channel of 1024 frames), a capacity (0: unbounded) */
    lua_getfield(L, 1, "pushes");
    lua_Integer push_cap = -1;
    if (lua_isboolean(L, -1))
        push_cap = lua_toboolean(L, -1) ? 1024 : -1;
    else if (!lua_isnil(L, -1))
        push_cap = opt_range(L, "pushes", 1024, 0, INT32_MAX);
    lua_pop(L, 1);
    lua_getfield(L, 1, "addr");
    lua_getfield(L, 1, "path");
    const char *addr = lua_tostring(L, -2), *path = lua_tostring(L, -1);
    if (!addr == !path) return luaL_error(L, "ek.connect: give one of 'addr' or 'path'");
    if (h->closed) return ekl_push_error(L, EK_ECLOSED);
    ek_client_options *o = NULL;
    ek_mpsc_receiver *push_rx = NULL;
    int rc = ek_client_options_new(&o);
    if (rc == EK_OK) rc = ek_client_options_set_max_in_flight(o, (size_t)in_flight);
    if (rc == EK_OK && backoff) rc = ek_client_options_set_reconnect(o, 1, backoff);
    if (rc == EK_OK && push_cap >= 0)
        rc = ek_client_options_set_push(o, (size_t)push_cap, &push_rx);
    ek_sockaddr *a = NULL;
    if (path && path[0] != '/' && path[0] != '@') path = lua_pushfstring(L, "unix:%s", path);
    if (rc == EK_OK) rc = ek_sockaddr_parse(addr ? addr : path, &a);
    ek_codec *codec = NULL;
    if (rc == EK_OK) rc = codec_new(which, false, &co, &codec);
    ek_service *svc = NULL;
    if (rc == EK_OK) rc = ek_client_connect(h->rt, a, codec, o, &svc); /* consumes codec */
    ek_sockaddr_free(a);
    ek_client_options_free(o);
    if (rc) {
        ek_mpsc_receiver_drop(push_rx);
        return ekl_push_error(L, rc);
    }
    int n = ekl_push_service(L, h, svc, request_kind(which));
    if (push_rx) {
        if (n != 1) {
            ek_mpsc_receiver_drop(push_rx);
            return n;
        }
        pushes_ud *pu = ekl_newudata(L, sizeof *pu, EKL_PUSHES_MT);
        pu->rx = push_rx;
        pu->h = ekl_rt_ref(h);
        ekl_service_set_pushes(L, -2); /* pops it */
    }
    return n;
}

void ekl_serve_open(lua_State *L, ekl_ctx *c)
{
    static const luaL_Reg methods[] = {
        {"local_addr", l_server_local_addr},
        {"shutdown", l_server_shutdown},
        {"metrics", l_server_metrics},
        {"close", l_server_close},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", l_server_close},
        {"__close", l_server_close},
        {"__tostring", l_server_tostring},
        {NULL, NULL},
    };
    ekl_newclass(L, c, EKL_SERVER_MT, methods, meta);
    static const luaL_Reg pmethods[] = {
        {"recv", l_pushes_recv},
        {"try_recv", l_pushes_try_recv},
        {"len", l_pushes_len},
        {"close", l_pushes_close},
        {NULL, NULL},
    };
    static const luaL_Reg pmeta[] = {
        {"__gc", l_pushes_gc},
        {"__close", l_pushes_close},
        {"__tostring", l_pushes_tostring},
        {NULL, NULL},
    };
    ekl_newclass(L, c, EKL_PUSHES_MT, pmethods, pmeta);
    static const luaL_Reg funcs[] = {
        {"serve", l_serve},
        {"connect", l_connect},
        {NULL, NULL},
    };
    lua_getfield(L, LUA_REGISTRYINDEX, "ekiden.core");
    ekl_set_funcs(L, c, funcs);
    lua_pop(L, 1);
}
