/*
 * buffer.c - ek_svc_buffer and ek_svc_buffer_local: a bounded mpsc channel in
 * front of one worker task that owns the inner service (Tower's Buffer).
 *
 * A handle reserves a slot in poll_ready (ek_mpsc_reserve: no allocation, the
 * FIFO place is the sender's) and sends {request, oneshot reply sender} through
 * it at call. The worker takes requests in order, polls the inner ready, calls
 * it (wrapped, so the inner's state lives as long as the response) and replies
 * with the response future itself: the caller awaits it in its own task, so
 * responses run concurrently while the worker only serialises readiness and
 * call. The local variant must keep the inner on its thread, responses
 * included: it drives each response in a local task on that thread and replies
 * with the finished result.
 *
 * Batches. Each wake-up of the worker takes every request queued by then (one
 * blocking receive, then non-blocking ones until the queue is empty), so
 * requests that a connection queued together (a pipeline) cross to the worker's
 * thread in one wake-up; the shared state counts wake-ups and requests
 * (ek_svc_buffer_stats). The local variant calls the inner for every request
 * of the wake-up first, then polls each response once and replies at once when
 * it is ready: a local task to drive it is spawned only for a response that
 * waits. (An inner that runs what it was called with as one batch, a Python
 * service, has then seen all of them at the first poll: its responses are
 * ready, with no task per request.)
 *
 * A final poll_ready error of the inner is stored in the shared state; the
 * worker then closes the channel and fails what is queued, and every handle's
 * poll_ready (whose reserve now fails) reports the stored error.
 */
#include "rt.h"
#include "service/svc.h"
#include "task/future.h"

typedef struct buf_shared {
    atomic_size_t refs;
    atomic_int err; /* the inner's final error, or 0 */
    /* Statistics, written by the worker only (relaxed: counters). */
    atomic_uint_fast64_t wakeups;  /* worker polls that took at least one request */
    atomic_uint_fast64_t requests; /* requests the worker took */
    atomic_uint_fast64_t driven;   /* local: responses that needed a driver task */
} buf_shared;

static void shared_release(buf_shared *sh)
{
    if (atomic_fetch_sub_explicit(&sh->refs, 1, memory_order_acq_rel) == 1) ek__free(sh);
}

typedef struct buf_req {
    ek_msg *req;
    ek_oneshot_sender *reply; /* carries an ek_future * (the response) */
} buf_req;

static void buf_req_free(void *p)
{
    buf_req *r = p;
    ek_msg_free(r->req);
    ek_oneshot_sender_drop(r->reply);
    ek__free(r);
}

static void reply_drop(void *fut)
{
    ek_future_drop(fut);
}

/* ---- the worker ---- */

/* The local variant: a response called in this poll, to be polled once when
 * the wake-up's calls are done (worker_settle). */
typedef struct buf_called {
    ek_future *resp;
    ek_oneshot_sender *reply;
} buf_called;

typedef struct buf_worker {
    ek_runtime *rt;
    ek_mpsc_receiver *rx;
    ek_service *inner;
    buf_shared *sh;
    buf_req *cur;
    bool local;
    buf_called *called; /* local: this poll's calls, in order */
    size_t ncalled, calledcap;
} buf_worker;

/* The local variant: a task on the worker's thread drives one response. */
typedef struct local_drive {
    ek_future *resp;
    ek_oneshot_sender *reply;
} local_drive;

static int local_drive_poll(void *state, ek_cx *cx, void **out)
{
    local_drive *d = state;
    *out = NULL;
    /* The caller dropped its response: cancel the inner one here, on this thread. */
    if (ek_oneshot_sender_poll_closed(d->reply, cx) == EK_OK) return EK_OK;
    void *msg = NULL;
    int rc = ek_future_poll(d->resp, cx, &msg);
    if (rc == EK_PENDING) return rc;
    ek_future_drop(d->resp);
    d->resp = NULL;
    ek_future *done;
    if (ek__future_ready(rc, rc == EK_OK ? msg : NULL, &done) != EK_OK) return EK_OK;
    ek_oneshot_sender *reply = d->reply;
    d->reply = NULL;
    if (ek_oneshot_send(reply, done) != EK_OK) ek_future_drop(done);
    return EK_OK;
}

static void local_drive_drop(void *state)
{
    local_drive *d = state;
    ek_future_drop(d->resp);
    ek_oneshot_sender_drop(d->reply);
    ek__free(d);
}

/* The local variant: poll resp once here; a response ready at once is sent back
 * finished, with no driver task (what a host's quick handler gives), one that
 * waits gets a local task. Consumes resp and reply. */
static void local_settle(buf_worker *w, ek_future *resp, ek_oneshot_sender *reply, ek_cx *cx)
{
    void *msg = NULL;
    int prc = ek_future_poll(resp, cx, &msg);
    if (prc != EK_PENDING) {
        ek_future_drop(resp);
        ek_future *done = NULL;
        if (ek__future_ready(prc, prc == EK_OK ? msg : NULL, &done) != EK_OK) {
            ek_oneshot_sender_drop(reply); /* the message was freed: EK_ECLOSED */
            return;
        }
        if (ek_oneshot_send(reply, done) != EK_OK) ek_future_drop(done);
        return;
    }
    atomic_fetch_add_explicit(&w->sh->driven, 1, memory_order_relaxed);
    local_drive *d = ek__malloc(sizeof *d);
    if (d == NULL) {
        ek_future_drop(resp);
        ek_future *err = NULL;
        if (ek__future_error(EK_ENOMEM, &err) != EK_OK) {
            ek_oneshot_sender_drop(reply);
            return;
        }
        if (ek_oneshot_send(reply, err) != EK_OK) ek_future_drop(err);
        return;
    }
    d->resp = resp;
    d->reply = reply;
    ek_spawn_local(w->rt, local_drive_poll, local_drive_drop, d, NULL, NULL);
    /* (on failure the drop ran: the caller sees EK_ECLOSED) */
}

/* The local variant: the first poll of every response this poll called, in
 * order, once its calls are done. */
static void worker_settle(buf_worker *w, ek_cx *cx)
{
    for (size_t i = 0; i < w->ncalled; i++)
        local_settle(w, w->called[i].resp, w->called[i].reply, cx);
    w->ncalled = 0;
}

/* Reply to the current request with the response to `req`. Consumes req. */
static void worker_dispatch(buf_worker *w, buf_req *cur, ek_cx *cx)
{
    ek_msg *req = cur->req;
    cur->req = NULL;
    ek_future *resp = NULL;
    int rc = ek__service_call(w->inner, req, &resp);
    if (rc == EK_OK && w->local) {
        ek_oneshot_sender *reply = cur->reply;
        cur->reply = NULL;
        if (w->ncalled == w->calledcap) {
            size_t cap = w->calledcap ? 2 * w->calledcap : 16;
            buf_called *c = ek__realloc(w->called, cap * sizeof *c);
            if (c == NULL) { /* no room to wait: polled now */
                local_settle(w, resp, reply, cx);
                return;
            }
            w->called = c;
            w->calledcap = cap;
        }
        w->called[w->ncalled++] = (buf_called){.resp = resp, .reply = reply};
        return;
    }
    if (rc != EK_OK && ek__future_error(rc, &resp) != EK_OK) return;
    ek_oneshot_sender *reply = cur->reply;
    cur->reply = NULL;
    if (ek_oneshot_send(reply, resp) != EK_OK) ek_future_drop(resp);
}

static void worker_fail_all(buf_worker *w, int err)
{
    atomic_store(&w->sh->err, err);
    ek_mpsc_close(w->rx);
    if (w->cur) buf_req_free(w->cur);
    w->cur = NULL;
    void *p;
    while (ek_mpsc_try_recv(w->rx, &p) == EK_OK) buf_req_free(p);
}

static int worker_take(buf_worker *w, ek_cx *cx);

static int worker_poll(void *state, ek_cx *cx, void **out)
{
    buf_worker *w = state;
    *out = NULL;
    int rc = worker_take(w, cx);
    worker_settle(w, cx); /* (the local variant's calls of this poll) */
    return rc;
}

/* Take and call every request queued (see the top); EK_PENDING, or EK_OK when
 * the worker is done. */
static int worker_take(buf_worker *w, ek_cx *cx)
{
    bool took = false; /* this poll took a request: one wake-up counted */
    for (;;) {
        if (w->cur == NULL) {
            void *p = NULL;
            int rc = took ? ek_mpsc_try_recv(w->rx, &p) : ek_mpsc_recv(w->rx, cx, &p);
            if (rc == EK_EEMPTY) rc = ek_mpsc_recv(w->rx, cx, &p); /* re-arm the waker */
            if (rc == EK_PENDING) return rc;
            if (rc != EK_OK) return EK_OK; /* every handle is gone: done */
            w->cur = p;
            if (!took) atomic_fetch_add_explicit(&w->sh->wakeups, 1, memory_order_relaxed);
            took = true;
            atomic_fetch_add_explicit(&w->sh->requests, 1, memory_order_relaxed);
        }
        if (ek_oneshot_sender_is_closed(w->cur->reply) == 1) {
            /* Its caller dropped the response: do not send the request. */
            buf_req_free(w->cur);
            w->cur = NULL;
            continue;
        }
        int rc = ek__service_poll_ready(w->inner, cx);
        if (rc == EK_PENDING) return rc;
        if (rc != EK_OK) {
            worker_fail_all(w, rc);
            return EK_OK;
        }
        buf_req *cur = w->cur;
        w->cur = NULL;
        worker_dispatch(w, cur, cx);
        buf_req_free(cur);
    }
}

static void worker_drop(void *state)
{
    buf_worker *w = state;
    for (size_t i = 0; i < w->ncalled; i++) { /* (none: every poll settles its calls) */
        ek_future_drop(w->called[i].resp);
        ek_oneshot_sender_drop(w->called[i].reply);
    }
    ek__free(w->called);
    if (w->cur) buf_req_free(w->cur);
    ek_mpsc_receiver_drop(w->rx);
    ek_service_free(w->inner);
    shared_release(w->sh);
    ek__free(w);
}

/* ---- a handle ---- */

typedef struct bufh {
    ek_mpsc_sender *tx;
    ek_mpsc_permit *permit; /* the slot poll_ready reserved */
    buf_shared *sh;
} bufh;

static int bufh_poll_ready(void *self, ek_cx *cx)
{
    bufh *h = self;
    int err = atomic_load(&h->sh->err);
    if (err) return err;
    int rc = ek_mpsc_reserve(h->tx, cx, &h->permit);
    if (rc == EK_ECLOSED) {
        err = atomic_load(&h->sh->err);
        return err ? err : EK_ECLOSED;
    }
    return rc;
}

typedef struct bufh_resp {
    buf_shared *sh; /* the handle's: it outlives its responses (svc.h) */
    ek_oneshot_receiver *rx;
    ek_future *inner;
} bufh_resp;

static int bufh_resp_poll(void *state, ek_cx *cx, void **out)
{
    bufh_resp *r = state;
    if (r->inner == NULL) {
        void *f = NULL;
        int rc = ek_oneshot_recv(r->rx, cx, &f);
        if (rc == EK_PENDING) return rc;
        if (rc != EK_OK) {
            int err = atomic_load(&r->sh->err);
            return err ? err : EK_ECLOSED;
        }
        r->inner = f;
    }
    return ek_future_poll(r->inner, cx, out);
}

static void bufh_resp_drop(void *state)
{
    bufh_resp *r = state;
    ek_future_drop(r->inner);
    ek_oneshot_receiver_drop(r->rx);
}

static int bufh_call(void *self, ek_msg *req, ek_future **resp)
{
    bufh *h = self;
    ek_mpsc_permit *permit = h->permit;
    h->permit = NULL;
    buf_req *br = ek__malloc(sizeof *br);
    ek_oneshot_receiver *rx = NULL;
    int rc = br ? ek_oneshot_new(reply_drop, &br->reply, &rx) : EK_ENOMEM;
    bufh_resp *r = NULL;
    if (rc == EK_OK)
        rc = ek__future_new_inline(bufh_resp_poll, bufh_resp_drop, sizeof *r, resp, (void **)&r);
    if (rc != EK_OK) {
        if (rx) {
            ek_oneshot_sender_drop(br->reply);
            ek_oneshot_receiver_drop(rx);
        }
        ek__free(br);
        ek_msg_free(req);
        ek_mpsc_permit_drop(permit);
        return rc;
    }
    br->req = req;
    r->sh = h->sh;
    r->rx = rx;
    /* Consumes the permit and br in every case (a closed channel drops br: the
     * response then reports the shared error or EK_ECLOSED). */
    ek_mpsc_permit_send(permit, br);
    return EK_OK;
}

static void bufh_disarm(void *self)
{
    bufh *h = self;
    if (h->permit) {
        ek_mpsc_permit_drop(h->permit);
        h->permit = NULL;
    } else {
        ek_mpsc_cancel(h->tx);
    }
}

static int bufh_status(void *self)
{
    bufh *h = self;
    if (atomic_load(&h->sh->err) || ek_mpsc_sender_is_closed(h->tx) == 1) return EK_SERVICE_CLOSED;
    return EK_SERVICE_OPEN;
}

static void bufh_drop(void *self)
{
    bufh *h = self;
    ek_mpsc_permit_drop(h->permit);
    ek_mpsc_sender_drop(h->tx);
    shared_release(h->sh);
    ek__free(h);
}

static int bufh_clone(void *self, void **out)
{
    bufh *h = self;
    bufh *c = ek__calloc(1, sizeof *c);
    if (c == NULL) return EK_ENOMEM;
    int rc = ek_mpsc_sender_clone(h->tx, &c->tx);
    if (rc != EK_OK) {
        ek__free(c);
        return rc;
    }
    c->sh = h->sh;
    atomic_fetch_add_explicit(&c->sh->refs, 1, memory_order_relaxed);
    *out = c;
    return EK_OK;
}

static const ek_service_vtable bufh_vt = {bufh_poll_ready, bufh_call, bufh_disarm, bufh_status,
                                          bufh_drop};

static int buffer_new(ek_runtime *rt, ek_service *inner, size_t bound, bool local, ek_service **out)
{
    int rc = ek__svc_check_inner(inner, out);
    if (rc != EK_OK) return rc;
    rc = bound == 0 ? EK_EINVAL : ek__rt_check(rt);
    buf_worker *w = rc == EK_OK ? ek__calloc(1, sizeof *w) : NULL;
    bufh *h = w ? ek__calloc(1, sizeof *h) : NULL;
    buf_shared *sh = h ? ek__malloc(sizeof *sh) : NULL;
    if (rc == EK_OK && sh == NULL) rc = EK_ENOMEM;
    if (rc == EK_OK) rc = ek_mpsc_bounded(bound, buf_req_free, &h->tx, &w->rx);
    if (rc != EK_OK) {
        ek__free(sh);
        ek__free(h);
        ek__free(w);
        ek_service_free(inner);
        return rc;
    }
    atomic_init(&sh->refs, 2);
    atomic_init(&sh->err, 0);
    atomic_init(&sh->wakeups, 0);
    atomic_init(&sh->requests, 0);
    atomic_init(&sh->driven, 0);
    h->sh = sh;
    w->sh = sh;
    w->rt = rt;
    w->inner = inner;
    w->local = local;
    /* The worker first, so that a failed spawn (which drops it: inner freed)
     * leaves only the handle to release. */
    rc = local ? ek_spawn_local(rt, worker_poll, worker_drop, w, NULL, NULL)
               : ek_spawn(rt, worker_poll, worker_drop, w, NULL, NULL);
    if (rc != EK_OK) {
        bufh_drop(h);
        return rc;
    }
    return ek__service_new(&bufh_vt, bufh_clone, h, out);
}

int ek_svc_buffer(ek_runtime *rt, ek_service *inner, size_t bound, ek_service **out)
{
    return buffer_new(rt, inner, bound, false, out);
}

int ek_svc_buffer_local(ek_runtime *rt, ek_service *inner, size_t bound, ek_service **out)
{
    return buffer_new(rt, inner, bound, true, out);
}

int ek_svc_buffer_stats(ek_service *buffer, uint64_t *values, size_t n)
{
    if (ek_service_is_shareable(buffer) != 1 || buffer->vt.call != bufh_call ||
        (values == NULL && n > 0))
        return EK_EINVAL;
    buf_shared *sh = ((bufh *)buffer->self)->sh;
    uint64_t v[EK_SVC_BUFFER_STAT_COUNT] = {
        [EK_SVC_BUFFER_WAKEUPS] = atomic_load_explicit(&sh->wakeups, memory_order_relaxed),
        [EK_SVC_BUFFER_REQUESTS] = atomic_load_explicit(&sh->requests, memory_order_relaxed),
        [EK_SVC_BUFFER_DRIVEN] = atomic_load_explicit(&sh->driven, memory_order_relaxed),
    };
    for (size_t i = 0; i < n && i < EK_SVC_BUFFER_STAT_COUNT; i++) values[i] = v[i];
    return EK_SVC_BUFFER_STAT_COUNT;
}
