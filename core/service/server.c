/*
 * server.c - the framed server (ekiden/server.h): an accept task and one task
 * per connection.
 *
 * A connection task is one state machine over its stream, its read buffer, its
 * codec clone, its service clone, a queue of in-flight responses (in request
 * order) and its output buffer. Each poll runs rounds until nothing moves:
 *   1. poll every in-flight response future (all of them, so that work a future
 *      does when polled proceeds concurrently; each registers the task's waker);
 *   2. write the completed head of the queue into the output buffer, in order;
 *      a stream response gives its first frame there, then joins the push list;
 *   3. write whatever frames the push streams have;
 *   4. decode every whole request the read buffer holds and call the service,
 *      while the queue and the output buffer have room (back-pressure: otherwise
 *      the task does not read); then each new response is polled once, in
 *      order, so the ones answered at once are written (2 again) in this round
 *      (and a service sees a read's requests before the first poll: the Lua
 *      binding runs them in one resume);
 *   5. write the output buffer to the stream: every response that is ready goes
 *      out in one write per round, not one per response;
 *   6. read more bytes if the decoder wants them, unless a read of this poll
 *      already found none (the stream's waker is registered then: reading again
 *      before the task is woken would only return EAGAIN once more).
 * A round after which something polled yielded (ek_yield_now) is the poll's
 * last: the task is polled again after the other runnable tasks.
 * Responses are called through ek__service_call_counted: the connection holds
 * its service handle past every response, so no wrapping future is made per
 * request (svc.h).
 * The server's shared state (ek__srv) is reference-counted by the handle, the
 * accept task and each connection, so the tasks and the handle may go in any
 * order (runtime shutdown drops the tasks; ek_server_free drops the handle).
 */
#include "codec.h"
#include "buf/buf.h"
#include "service/svc.h"
#include "task/task.h"

#include <stdio.h>

#define EK__TAG_SERVER   0x454b5352u /* "EKSR" */
#define EK__TAG_SRVOPTS  0x454b534fu /* "EKSO" */
#define EK__READ_CHUNK   (16 * 1024)
#define EK__BUFFER_BOUND 1024 /* callers of a buffered service that may wait at once */

struct ek_server_options {
    uint32_t tag;
    size_t max_in_flight, max_write;
    uint64_t idle_ms;
    int nodelay;
    int local; /* tasks pinned to the serving thread (ek_server_options_set_local) */
    ek_server_log_fn log;
    void *log_ud;
};

typedef struct ek__srv {
    atomic_size_t refs;
    ek_runtime *rt;
    void *listener; /* owned by the accept task */
    int unix_listener;
    ek_codec *codec; /* prototypes, cloned per connection */
    ek_service *svc;
    struct ek_server_options opt;
    ek_sockaddr *local;
    ek__mutex mu;
    ek__cond cv;
    ek__list conns; /* under mu */
    size_t open;    /* connection tasks alive, under mu */
    bool accept_alive;
    atomic_bool closing, force;
    pthread_t owner; /* a local server's serving thread */
    atomic_uint_fast64_t m[EK_SERVER_METRIC_COUNT];
} ek__srv;

struct ek_server {
    uint32_t tag; /* EK__TAG_SERVER */
    ek__srv *srv;
    bool shut;
};

static void ek__srv_count(ek__srv *s, int key, uint64_t n)
{
    atomic_fetch_add_explicit(&s->m[key], n, memory_order_relaxed);
}

static void ek__srv_release(ek__srv *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
    ek_codec_free(s->codec);
    ek_service_free(s->svc);
    ek_sockaddr_free(s->local);
    ek__cond_destroy(&s->cv);
    ek__mutex_destroy(&s->mu);
    ek__free(s);
}

/* ---- options ---- */

int ek_server_options_new(ek_server_options **out)
{
    if (out == NULL) return EK_EINVAL;
    ek_server_options *o = ek__calloc(1, sizeof *o);
    if (o == NULL) return EK_ENOMEM;
    o->tag = EK__TAG_SRVOPTS;
    o->max_in_flight = 128;
    o->max_write = 4u * 1024 * 1024;
    o->nodelay = 1;
    *out = o;
    return EK_OK;
}

void ek_server_options_free(ek_server_options *o)
{
    if (!EK__CHECK_TAG(o, EK__TAG_SRVOPTS)) return;
    o->tag = EK__TAG_DEAD;
    ek__free(o);
}

int ek_server_options_set_max_in_flight(ek_server_options *o, size_t n)
{
    if (!EK__CHECK_TAG(o, EK__TAG_SRVOPTS) || n < 1 || n > 65536) return EK_EINVAL;
    o->max_in_flight = n;
    return EK_OK;
}

int ek_server_options_set_max_write_buffer(ek_server_options *o, size_t bytes)
{
    if (!EK__CHECK_TAG(o, EK__TAG_SRVOPTS) || bytes < 1) return EK_EINVAL;
    o->max_write = bytes;
    return EK_OK;
}

int ek_server_options_set_idle_timeout_ms(ek_server_options *o, uint64_t ms)
{
    if (!EK__CHECK_TAG(o, EK__TAG_SRVOPTS)) return EK_EINVAL;
    o->idle_ms = ms;
    return EK_OK;
}

int ek_server_options_set_nodelay(ek_server_options *o, int on)
{
    if (!EK__CHECK_TAG(o, EK__TAG_SRVOPTS) || (on != 0 && on != 1)) return EK_EINVAL;
    o->nodelay = on;
    return EK_OK;
}

int ek_server_options_set_local(ek_server_options *o, int on)
{
    if (!EK__CHECK_TAG(o, EK__TAG_SRVOPTS) || (on != 0 && on != 1)) return EK_EINVAL;
    o->local = on;
    return EK_OK;
}

int ek_server_options_set_log(ek_server_options *o, ek_server_log_fn fn, void *ud)
{
    if (!EK__CHECK_TAG(o, EK__TAG_SRVOPTS)) return EK_EINVAL;
    o->log = fn;
    o->log_ud = ud;
    return EK_OK;
}

/* ---- a connection ---- */

typedef struct ek__slot {
    ek_future *fut; /* NULL once complete; pending on the service until then */
    ek_msg *resp;
    int rc;
    bool started; /* an ordered stream: its first frame is written */
} ek__slot;

typedef struct ek__conn {
    ek__list node; /* in srv->conns */
    ek__srv *srv;
    ek_waker *waker; /* for shutdown; set at the first poll, under srv->mu */
    ek_stream *io;
    ek_codec *codec;
    const ek__codec_ext *ext; /* the codec's server hooks (codec.h), or NULL */
    void *cself;              /* the codec's state, for ext */
    ek_service *svc;
    ek_buf *in, *out;
    ek__slot *q; /* ring of in-flight responses */
    size_t qhead, qlen, qcap;
    ek_msg **push; /* streams past their first frame */
    size_t npush, pushcap;
    ek_msg *held; /* decoded, waiting for the service to be ready */
    bool eof, stop, error_written, dead;
    bool read_blocked; /* a read of this poll returned EK_PENDING */
    bool codec_closed; /* the codec ended the conversation (HTTP's Connection: close) */
    bool lingering;    /* closing: write side shut, reading what the peer still sends */
    size_t lingered;   /* bytes discarded while lingering */
    int err;           /* why the connection closes (0: it did not fail) */
    const char *reason;
    char reason_buf[96];
    ek_future *idle;
    uint64_t last_active;
    char peer[EK_SOCKADDR_STRLEN];
} ek__conn;

static void ek__conn_fail(ek__conn *c, int err, const char *reason)
{
    if (c->err != 0) return;
    c->err = err;
    snprintf(c->reason_buf, sizeof c->reason_buf, "%s", reason ? reason : ek_strerror(err));
    c->reason = c->reason_buf;
    c->stop = true;
}

static void ek__conn_drop(void *state)
{
    ek__conn *c = state;
    ek__srv *s = c->srv;
    if (c->err != 0 && s->opt.log != NULL) s->opt.log(s->opt.log_ud, c->err, c->reason, c->peer);
    for (size_t i = 0; i < c->qlen; i++) {
        ek__slot *sl = &c->q[(c->qhead + i) % c->qcap];
        if (sl->fut != NULL) {
            ek_future_drop(sl->fut);
            ek__service_end(c->svc);
        }
        ek_msg_free(sl->resp);
    }
    ek__free(c->q);
    for (size_t i = 0; i < c->npush; i++) ek_msg_free(c->push[i]);
    ek__free(c->push);
    ek_msg_free(c->held);
    ek_future_drop(c->idle);
    ek_stream_free(c->io);
    ek_codec_free(c->codec);
    ek_service_free(c->svc);
    ek_buf_free(c->in);
    ek_buf_free(c->out);
    ek__mutex_lock(&s->mu);
    ek__list_remove(&c->node);
    s->open--;
    /* Before the broadcast: a shutdown that sees no connection open reads 0. */
    ek__srv_count(s, EK_SERVER_METRIC_CONNECTIONS_OPEN, (uint64_t)-1);
    ek__cond_broadcast(&s->cv);
    ek__mutex_unlock(&s->mu);
    ek_waker_drop(c->waker);
    ek__free(c);
    ek__srv_release(s);
}

static int ek__conn_push_slot(ek__conn *c, ek_future *fut, int rc)
{
    if (c->qlen == c->qcap) {
        void *q = c->q;
        int rc2 = ek__ring_grow(&q, sizeof *c->q, &c->qhead, c->qlen, &c->qcap, 16);
        c->q = q;
        if (rc2 != EK_OK) return rc2;
    }
    c->q[(c->qhead + c->qlen++) % c->qcap] = (ek__slot){.fut = fut, .rc = rc};
    return EK_OK;
}

static int ek__conn_encode(ek__conn *c, ek_msg *m, int what)
{
    int rc = ek_codec_encode(c->codec, m, what, c->out);
    if (rc != EK_OK) ek__conn_fail(c, rc, "the codec could not encode a response");
    return rc;
}

/* Poll one in-flight response: true when it completed (or was cancelled by a
 * close deadline of the service, as the wrapping future of ek_service_call does). */
static bool ek__conn_poll_slot(ek__conn *c, ek__slot *sl, ek_cx *cx)
{
    void *out = NULL;
    int rc = ek__service_forced(c->svc) ? EK_ECANCELED : ek_future_poll(sl->fut, cx, &out);
    if (rc == EK_PENDING) return false;
    ek_future_drop(sl->fut);
    sl->fut = NULL;
    ek__service_end(c->svc);
    sl->rc = rc;
    sl->resp = rc == EK_OK ? out : NULL;
    if (rc == EK_OK && out == NULL) sl->rc = EK_EINVAL; /* a response must be a message */
    return true;
}

/* 1: in-flight futures. */
static bool ek__conn_poll_responses(ek__conn *c, ek_cx *cx)
{
    bool moved = false;
    for (size_t i = 0; i < c->qlen; i++) {
        ek__slot *sl = &c->q[(c->qhead + i) % c->qcap];
        if (sl->fut != NULL && ek__conn_poll_slot(c, sl, cx)) moved = true;
    }
    return moved;
}

/* Drop every response still queued (after a failure nothing more is owed). */
static void ek__conn_abandon_queue(ek__conn *c)
{
    for (; c->qlen > 0; c->qlen--, c->qhead = (c->qhead + 1) % c->qcap) {
        ek__slot *sl = &c->q[c->qhead];
        if (sl->fut != NULL) {
            ek_future_drop(sl->fut);
            ek__service_end(c->svc);
        }
        ek_msg_free(sl->resp);
        sl->fut = NULL;
        sl->resp = NULL;
    }
}

/* Frames a stream has ready now, as pushes; EK_ECLOSED when it ended. */
static int ek__conn_drain_stream(ek__conn *c, ek_msg *stream, ek_cx *cx)
{
    for (;;) {
        ek_msg *frame = NULL;
        int rc = ek_msg_stream_next(stream, cx, &frame);
        if (rc != EK_OK) return rc;
        rc = ek__conn_encode(c, frame, EK_CODEC_PUSH);
        ek_msg_free(frame);
        if (rc != EK_OK) return rc;
    }
}

/* An ordered stream at the head of the queue (a codec with stream_end): write
 * what it has. EK_OK when it ended, EK_PENDING while it goes on, or an error. */
static int ek__conn_ordered_stream(ek__conn *c, ek__slot *sl, ek_cx *cx)
{
    for (;;) {
        /* Back-pressure: the flush makes room and the task comes back here. */
        if (ek__buf_len(c->out) >= c->srv->opt.max_write) return EK_PENDING;
        ek_msg *frame = NULL;
        int rc = ek_msg_stream_next(sl->resp, cx, &frame);
        if (rc == EK_ECLOSED) {
            if (!sl->started) return EK_EINVAL; /* a stream without a head */
            rc = c->ext->stream_end(c->cself, c->out);
            if (rc != EK_OK) ek__conn_fail(c, rc, "the codec could not end a stream");
            return rc;
        }
        if (rc != EK_OK) return rc;
        if (!sl->started) {
            sl->started = true;
            rc = c->ext->stream_begin(c->cself, frame, c->out);
            if (rc != EK_OK) ek__conn_fail(c, rc, "the codec could not encode a response");
        } else {
            rc = ek__conn_encode(c, frame, EK_CODEC_PUSH);
        }
        ek_msg_free(frame);
        if (rc != EK_OK) return rc;
    }
}

/* 2: the completed head of the queue, in order. A decode failure still lets the
 * responses owed before it through; a failed response or encoding ends it. */
static bool ek__conn_write_head(ek__conn *c, ek_cx *cx)
{
    bool moved = false;
    while (c->qlen > 0 && !c->dead) {
        ek__slot *sl = &c->q[c->qhead];
        if (sl->fut != NULL) break;
        if (sl->rc == EK_OK && c->ext != NULL && c->ext->stream_end != NULL &&
            ek_msg_kind(sl->resp) == EK_MSG_STREAM) {
            size_t before = ek__buf_len(c->out);
            int rc = ek__conn_ordered_stream(c, sl, cx);
            if (ek__buf_len(c->out) != before) moved = true;
            if (rc == EK_PENDING) return moved;
            ek_msg_free(sl->resp);
            sl->resp = NULL;
            c->qhead = (c->qhead + 1) % c->qcap;
            c->qlen--;
            if (rc != EK_OK) {
                ek__srv_count(c->srv, EK_SERVER_METRIC_ERRORS, 1);
                ek__conn_fail(c, rc, NULL);
                ek__conn_abandon_queue(c);
                return true;
            }
            ek__srv_count(c->srv, EK_SERVER_METRIC_RESPONSES, 1);
            moved = true;
            continue;
        }
        ek_msg *resp = sl->resp;
        int result = sl->rc;
        sl->resp = NULL;
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
        moved = true;
        if (result != EK_OK) {
            ek__srv_count(c->srv, EK_SERVER_METRIC_ERRORS, 1);
            ek__conn_fail(c, result, NULL);
            ek__conn_abandon_queue(c);
            return true;
        }
        int rc = EK_OK;
        if (ek_msg_kind(resp) == EK_MSG_STREAM) {
            /* The first frame answers in order; then the stream pushes. */
            ek_msg *frame = NULL;
            rc = ek_msg_stream_next(resp, cx, &frame);
            if (rc == EK_PENDING) { /* not started yet: it stays at the head */
                c->qhead = (c->qhead + c->qcap - 1) % c->qcap;
                c->qlen++;
                sl->resp = resp;
                return moved;
            }
            if (rc == EK_OK) {
                rc = ek__conn_encode(c, frame, EK_CODEC_RESPONSE);
                ek_msg_free(frame);
                if (rc == EK_OK) rc = ek__conn_drain_stream(c, resp, cx);
                if (rc == EK_PENDING) {
                    if (c->npush == c->pushcap) {
                        size_t cap = c->pushcap ? c->pushcap * 2 : 4;
                        ek_msg **p = ek__realloc(c->push, cap * sizeof *p);
                        if (p == NULL) {
                            ek_msg_free(resp);
                            ek__conn_fail(c, EK_ENOMEM, NULL);
                            ek__conn_abandon_queue(c);
                            return true;
                        }
                        c->push = p;
                        c->pushcap = cap;
                    }
                    c->push[c->npush++] = resp;
                    resp = NULL;
                    rc = EK_OK;
                }
            }
            if (rc == EK_ECLOSED) rc = EK_OK; /* a finite stream, all written */
        } else {
            rc = ek__conn_encode(c, resp, EK_CODEC_RESPONSE);
        }
        ek_msg_free(resp);
        if (rc != EK_OK) {
            ek__conn_fail(c, rc, NULL);
            ek__conn_abandon_queue(c);
            return true;
        }
        ek__srv_count(c->srv, EK_SERVER_METRIC_RESPONSES, 1);
    }
    return moved;
}

/* 3: frames of the push streams. */
static bool ek__conn_write_push(ek__conn *c, ek_cx *cx)
{
    bool moved = false;
    for (size_t i = 0; i < c->npush && c->err == 0;) {
        size_t before = ek__buf_len(c->out);
        int rc = ek__conn_drain_stream(c, c->push[i], cx);
        if (ek__buf_len(c->out) != before) moved = true;
        if (rc == EK_PENDING) {
            i++;
            continue;
        }
        moved = true;
        ek_msg_free(c->push[i]); /* ended (or failed to encode: the error is set) */
        c->push[i] = c->push[--c->npush];
    }
    return moved;
}

static bool ek__conn_has_room(ek__conn *c)
{
    return c->qlen < c->srv->opt.max_in_flight && ek__buf_len(c->out) < c->srv->opt.max_write;
}

/* 4: decode and call. *want_read: the decoder needs more bytes. */
static bool ek__conn_decode_and_call(ek__conn *c, ek_cx *cx, bool *want_read)
{
    bool moved = false;
    *want_read = false;
    size_t first = c->qlen; /* the slots this call adds start here */
    while (!c->stop && ek__conn_has_room(c)) {
        if (c->held == NULL) {
            const char *reason = NULL;
            int rc = c->eof ? ek_codec_decode_eof(c->codec, c->in, &c->held, &reason)
                            : ek_codec_decode(c->codec, c->in, &c->held, &reason);
            if (rc == EK_PENDING) {
                *want_read = true;
                break;
            }
            if (rc == EK_ECLOSED) { /* end of stream, nothing left */
                c->stop = true;
                if (!c->eof) c->codec_closed = true;
                break;
            }
            if (rc != EK_OK) {
                if (rc == EK_EPROTO || rc == EK_EMSGSIZE)
                    ek__srv_count(c->srv, EK_SERVER_METRIC_DECODE_FAILURES, 1);
                ek__conn_fail(c, rc, reason);
                return true;
            }
        }
        int rc = ek_service_poll_ready(c->svc, cx);
        if (rc == EK_PENDING) break;
        if (rc != EK_OK) {
            ek__conn_fail(c, rc, "the service failed");
            return true;
        }
        ek_future *fut = NULL;
        ek_msg *req = c->held;
        c->held = NULL;
        rc = ek__service_call_counted(c->svc, req, &fut);
        if (rc != EK_OK) fut = NULL;
        ek__srv_count(c->srv, EK_SERVER_METRIC_REQUESTS, 1);
        if (ek__conn_push_slot(c, fut, rc) != EK_OK) {
            if (fut != NULL) {
                ek_future_drop(fut);
                ek__service_end(c->svc);
            }
            ek__conn_fail(c, EK_ENOMEM, NULL);
            return true;
        }
        moved = true;
    }
    /* Poll each new response once now, in order, after every call: a response
     * answered at once is written this round, and a service that runs the
     * requests it was handed as one batch (the Lua binding's function
     * services) sees all of this read's requests at its first poll. */
    for (size_t i = first; i < c->qlen; i++) {
        ek__slot *sl = &c->q[(c->qhead + i) % c->qcap];
        if (sl->fut != NULL) (void)ek__conn_poll_slot(c, sl, cx);
    }
    return moved;
}

/* 5: read. */
static bool ek__conn_read(ek__conn *c, ek_cx *cx)
{
    uint8_t *tail;
    size_t avail;
    /* Read into the room there is (a codec may have reserved exactly the rest of
     * a large frame: growing past it would move the frame's bytes); only a full
     * buffer grows. */
    int64_t spare = ek_buf_spare(c->in);
    int rc = ek_buf_reserve(c->in, spare > 0 ? (size_t)spare : EK__READ_CHUNK, &tail, &avail);
    if (rc != EK_OK) {
        ek__conn_fail(c, rc, NULL);
        return true;
    }
    size_t n = 0;
    rc = ek_stream_read(c->io, cx, tail, avail, &n);
    if (rc == EK_PENDING) {
        c->read_blocked = true;
        return false;
    }
    if (rc != EK_OK) {
        c->dead = true; /* the socket failed: nothing more can be written */
        ek__conn_fail(c, rc, NULL);
        return true;
    }
    if (n == 0) {
        c->eof = true;
        return true;
    }
    (void)ek_buf_advance(c->in, n);
    ek__srv_count(c->srv, EK_SERVER_METRIC_BYTES_IN, n);
    c->last_active = ek_now_ms(c->srv->rt);
    return true;
}

/* 6: write. */
static bool ek__conn_flush(ek__conn *c, ek_cx *cx)
{
    bool moved = false;
    while (ek__buf_len(c->out) > 0 && !c->dead) {
        size_t n = 0;
        int rc = ek_stream_write(c->io, cx, ek_buf_data(c->out), ek__buf_len(c->out), &n);
        if (rc == EK_PENDING) break;
        if (rc != EK_OK) {
            c->dead = true;
            ek__conn_fail(c, rc, NULL);
            return true;
        }
        (void)ek_buf_discard(c->out, n);
        ek__srv_count(c->srv, EK_SERVER_METRIC_BYTES_OUT, n);
        c->last_active = ek_now_ms(c->srv->rt);
        moved = true;
    }
    return moved;
}

/* The idle timer: EK_OK when the connection has been idle too long. */
static int ek__conn_idle(ek__conn *c, ek_cx *cx)
{
    uint64_t ms = c->srv->opt.idle_ms;
    if (ms == 0 || c->qlen > 0 || c->npush > 0 || c->held != NULL) {
        ek_future_drop(c->idle);
        c->idle = NULL;
        return EK_PENDING;
    }
    for (;;) {
        uint64_t deadline = c->last_active + ms;
        if (ek_now_ms(c->srv->rt) >= deadline) return EK_OK;
        if (c->idle == NULL && ek_sleep_until(c->srv->rt, deadline, &c->idle) != EK_OK)
            return EK_PENDING;
        int rc = ek_future_poll(c->idle, cx, NULL);
        if (rc == EK_PENDING) return EK_PENDING;
        ek_future_drop(c->idle); /* fired (or failed): check the deadline again */
        c->idle = NULL;
        if (rc != EK_OK) return EK_PENDING;
    }
}

/* How long and how much a closing connection reads and discards (a lingering
 * close, as nginx's lingering_close): bytes the peer sent after what the server
 * answered would otherwise make close() send a RST, which can destroy the last
 * response (the 400 or 431, a Connection: close reply) before the peer reads it. */
#define EK__LINGER_MS    1000
#define EK__LINGER_BYTES (256 * 1024)

/* Whether the connection closes while the peer may still be sending: after a
 * decode failure, or when the codec ended the conversation. */
static bool ek__conn_should_linger(const ek__conn *c)
{
    if (c->dead || c->eof || atomic_load(&c->srv->closing)) return false;
    return c->err == EK_EPROTO || c->err == EK_EMSGSIZE || (c->err == 0 && c->codec_closed);
}

/* Linger: shut the write side (the peer reads the end of the responses), then
 * read and discard until the peer closes, EK__LINGER_BYTES were read, or
 * EK__LINGER_MS passed. EK_OK when done, EK_PENDING while waiting. */
static int ek__conn_linger(ek__conn *c, ek_cx *cx)
{
    ek_runtime *rt = c->srv->rt;
    if (!c->lingering) {
        c->lingering = true;
        (void)ek_stream_shutdown(c->io);
        ek_future_drop(c->idle);
        c->idle = NULL;
        if (ek_sleep_until(rt, ek_now_ms(rt) + EK__LINGER_MS, &c->idle) != EK_OK) return EK_OK;
    }
    uint8_t buf[4096];
    while (c->lingered < EK__LINGER_BYTES) {
        size_t n = 0;
        int rc = ek_stream_read(c->io, cx, buf, sizeof buf, &n);
        if (rc == EK_PENDING) break;
        if (rc != EK_OK || n == 0) return EK_OK;
        c->lingered += n;
    }
    if (c->lingered >= EK__LINGER_BYTES) return EK_OK;
    return ek_future_poll(c->idle, cx, NULL) == EK_PENDING ? EK_PENDING : EK_OK;
}

static int ek__conn_poll(void *state, ek_cx *cx, void **out)
{
    ek__conn *c = state;
    ek__srv *s = c->srv;
    *out = NULL;
    if (c->waker == NULL) {
        ek_waker *w = ek_cx_waker(cx);
        ek__mutex_lock(&s->mu);
        c->waker = w;
        ek__mutex_unlock(&s->mu);
    }
    if (atomic_load_explicit(&s->force, memory_order_acquire)) return EK_OK;
    if (c->lingering) return ek__conn_linger(c, cx);
    c->read_blocked = false;
    for (;;) {
        if (atomic_load_explicit(&s->closing, memory_order_acquire)) c->stop = true;
        bool moved = ek__conn_poll_responses(c, cx);
        moved |= ek__conn_write_head(c, cx);
        if (!c->stop || c->err != 0) moved |= ek__conn_write_push(c, cx);
        bool want_read = false;
        if (ek__conn_decode_and_call(c, cx, &want_read)) {
            moved = true;
            (void)ek__conn_write_head(c, cx); /* the responses answered at once */
        }
        if (want_read && c->qlen == 0 && c->ext != NULL && c->ext->interim != NULL && c->err == 0) {
            /* Everything before the request being read is written: the codec
             * may owe the client something meanwhile (100 Continue). */
            size_t before = ek__buf_len(c->out);
            int rc = c->ext->interim(c->cself, c->out);
            if (rc != EK_OK) ek__conn_fail(c, rc, NULL);
            if (ek__buf_len(c->out) != before) moved = true;
        }
        if (c->err != 0 && c->qlen == 0 && !c->error_written && !c->dead) {
            /* Everything owed is encoded: the error reply, then close. */
            (void)ek_codec_encode_error(c->codec, c->err, c->reason, c->out);
            c->error_written = true;
            moved = true;
        }
        /* The replies first (one write for all that are ready), then the read:
         * a pipelining client sends its next requests only once it has them. */
        moved |= ek__conn_flush(c, cx);
        /* (Not after a yield: the task is polled again soon, and a read now
         * would find nothing and register its waker for it.) */
        bool yielded = ek__cx_yielded(cx);
        if (want_read && !c->eof && !c->stop && !c->read_blocked && !yielded)
            moved |= ek__conn_read(c, cx);
        bool drained = c->qlen == 0 && c->held == NULL && ek__buf_len(c->out) == 0;
        if (c->dead || (drained && (c->err != 0 || (c->stop && (c->npush == 0 || c->eof ||
                                                                atomic_load(&s->closing))))))
            return ek__conn_should_linger(c) ? ek__conn_linger(c, cx) : EK_OK;
        /* A response that yielded (a Python service's first poll, so that one
         * flush takes the requests of every connection of this wake-up) is
         * polled again after the other tasks: another round would poll it now. */
        if (!moved || yielded) break;
    }
    if (ek__conn_idle(c, cx) == EK_OK) {
        ek__srv_count(s, EK_SERVER_METRIC_IDLE_CLOSES, 1);
        ek__conn_fail(c, EK_ETIMEDOUT, "idle timeout");
        return EK_OK;
    }
    return EK_PENDING;
}

static int ek__conn_start(ek__srv *s, ek_stream *io)
{
    ek__conn *c = ek__calloc(1, sizeof *c);
    if (c == NULL) {
        ek_stream_free(io);
        return EK_ENOMEM;
    }
    c->io = io;
    c->srv = s;
    ek__list_init(&c->node);
    ek_sockaddr *peer = NULL;
    if (ek_sockaddr_new(&peer) == EK_OK && ek_stream_peer_addr(io, peer) == EK_OK)
        (void)ek_sockaddr_format(peer, c->peer, sizeof c->peer);
    ek_sockaddr_free(peer);
    int rc = ek_codec_clone(s->codec, &c->codec);
    if (rc == EK_OK) c->ext = ek__codec_ext_of(c->codec, &c->cself);
    if (rc == EK_OK) rc = ek_service_clone(s->svc, &c->svc);
    if (rc == EK_OK) rc = ek_buf_new(EK__READ_CHUNK, &c->in);
    if (rc == EK_OK) rc = ek_buf_new(EK__READ_CHUNK, &c->out);
    c->last_active = ek_now_ms(s->rt);
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    ek__mutex_lock(&s->mu);
    ek__list_push_back(&s->conns, &c->node);
    s->open++;
    ek__mutex_unlock(&s->mu);
    ek__srv_count(s, EK_SERVER_METRIC_CONNECTIONS_OPEN, 1);
    ek__srv_count(s, EK_SERVER_METRIC_CONNECTIONS_TOTAL, 1);
    if (rc != EK_OK) {
        ek__conn_fail(c, rc, "could not set up the connection");
        ek__conn_drop(c);
        return rc;
    }
    /* ek_spawn runs the drop on failure: nothing else to release. A local
     * server's accept task runs on the serving thread: so do its connections. */
    return (s->opt.local ? ek_spawn_local : ek_spawn)(s->rt, ek__conn_poll, ek__conn_drop, c, NULL,
                                                      NULL);
}

/* ---- the accept task ---- */

static int ek__accept_poll(void *state, ek_cx *cx, void **out)
{
    ek__srv *s = state;
    *out = NULL;
    while (!atomic_load_explicit(&s->closing, memory_order_acquire)) {
        ek_stream *io = NULL;
        int rc;
        if (s->unix_listener) {
            ek_unix_stream *u = NULL;
            rc = ek_unix_accept(s->listener, cx, &u, NULL);
            if (rc == EK_OK) rc = ek_stream_from_unix(u, &io);
        } else {
            ek_tcp_stream *t = NULL;
            rc = ek_tcp_accept(s->listener, cx, &t, NULL);
            if (rc == EK_OK && s->opt.nodelay) (void)ek_tcp_set_nodelay(t, 1);
            if (rc == EK_OK) rc = ek_stream_from_tcp(t, &io);
        }
        if (rc == EK_PENDING) return EK_PENDING;
        if (rc == EK_ECLOSED) return EK_OK;
        if (rc != EK_OK) {
            if (s->opt.log != NULL) s->opt.log(s->opt.log_ud, rc, "accept failed", "");
            continue;
        }
        (void)ek__conn_start(s, io);
    }
    return EK_OK;
}

static void ek__accept_drop(void *state)
{
    ek__srv *s = state;
    /* Marked gone under the lock first, so that ek__srv_begin_close never
     * closes a listener being freed. */
    ek__mutex_lock(&s->mu);
    s->accept_alive = false;
    ek__mutex_unlock(&s->mu);
    if (s->unix_listener)
        ek_unix_listener_free(s->listener);
    else
        ek_tcp_listener_free(s->listener);
    ek__mutex_lock(&s->mu);
    ek__cond_broadcast(&s->cv);
    ek__mutex_unlock(&s->mu);
    ek__srv_release(s);
}

static int ek__serve(ek_runtime *rt, void *listener, int unix_listener, ek_codec *codec,
                     ek_service *svc, const ek_server_options *opt, ek_server **out)
{
    int rc = EK_OK;
    ek__srv *s = NULL;
    ek_server *h = NULL;
    if (out == NULL || (opt != NULL && !EK__CHECK_TAG(opt, EK__TAG_SRVOPTS))) rc = EK_EINVAL;
    if (rc == EK_OK) rc = ek__codec_check(codec);
    if (rc == EK_OK && ek_service_is_shareable(svc) < 0) rc = EK_EINVAL;
    if (rc == EK_OK && ek_service_is_shareable(svc) == 0) {
        /* One worker task owns a service that is not shareable; every
         * connection gets a handle of the buffer in front of it (a local
         * server's worker is on the serving thread too). */
        ek_service *buffered = NULL;
        rc = opt != NULL && opt->local ? ek_svc_buffer_local(rt, svc, EK__BUFFER_BOUND, &buffered)
                                       : ek_svc_buffer(rt, svc, EK__BUFFER_BOUND, &buffered);
        svc = buffered; /* consumed either way */
    }
    if (rc == EK_OK && (s = ek__calloc(1, sizeof *s)) == NULL) rc = EK_ENOMEM;
    if (rc == EK_OK && (h = ek__malloc(sizeof *h)) == NULL) rc = EK_ENOMEM;
    if (rc == EK_OK && ek_sockaddr_new(&s->local) != EK_OK) rc = EK_ENOMEM;
    if (rc == EK_OK) {
        rc = unix_listener ? ek_unix_listener_local_addr(listener, s->local)
                           : ek_tcp_listener_local_addr(listener, s->local);
    }
    if (rc == EK_OK && ek__mutex_init(&s->mu) != 0) rc = EK_ENOMEM;
    if (rc == EK_OK && ek__cond_init(&s->cv) != 0) {
        ek__mutex_destroy(&s->mu);
        rc = EK_ENOMEM;
    }
    if (rc != EK_OK) {
        if (s != NULL) ek_sockaddr_free(s->local);
        ek__free(s);
        ek__free(h);
        if (unix_listener)
            ek_unix_listener_free(listener);
        else
            ek_tcp_listener_free(listener);
        ek_codec_free(codec);
        ek_service_free(svc);
        return rc;
    }
    atomic_init(&s->refs, 2); /* the handle and the accept task */
    s->rt = rt;
    s->listener = listener;
    s->unix_listener = unix_listener;
    s->codec = codec;
    s->svc = svc;
    if (opt != NULL) {
        s->opt = *opt;
    } else {
        ek_server_options *d;
        if (ek_server_options_new(&d) == EK_OK) {
            s->opt = *d;
            ek_server_options_free(d);
        } else {
            s->opt.max_in_flight = 128;
            s->opt.max_write = 4u * 1024 * 1024;
            s->opt.nodelay = 1;
        }
    }
    ek__list_init(&s->conns);
    s->owner = pthread_self();
    s->accept_alive = true;
    h->tag = EK__TAG_SERVER;
    h->srv = s;
    h->shut = false;
    rc = (s->opt.local ? ek_spawn_local : ek_spawn)(rt, ek__accept_poll, ek__accept_drop, s, NULL,
                                                    NULL);
    if (rc != EK_OK) { /* the accept drop ran: the listener is freed */
        h->shut = true;
        ek_server_free(h);
        return rc;
    }
    *out = h;
    return EK_OK;
}

int ek_server_serve(ek_runtime *rt, ek_tcp_listener *listener, ek_codec *codec, ek_service *svc,
                    const ek_server_options *options, ek_server **out)
{
    return ek__serve(rt, listener, 0, codec, svc, options, out);
}

int ek_server_serve_unix(ek_runtime *rt, ek_unix_listener *listener, ek_codec *codec,
                         ek_service *svc, const ek_server_options *options, ek_server **out)
{
    return ek__serve(rt, listener, 1, codec, svc, options, out);
}

/* Tell every task to look at the closing / force flags. Under s->mu. */
static void ek__srv_wake_all(ek__srv *s)
{
    for (ek__list *n = s->conns.next; n != &s->conns; n = n->next) {
        ek__conn *c = EK__CONTAINER_OF(n, ek__conn, node);
        ek_waker_wake_by_ref(c->waker);
    }
}

/* A local server's tasks run only on its serving thread: that thread must not
 * wait for them. */
static bool ek__srv_on_own_thread(const ek__srv *s)
{
    return s->opt.local && pthread_equal(s->owner, pthread_self());
}

static void ek__srv_begin_close(ek__srv *s)
{
    atomic_store_explicit(&s->closing, true, memory_order_release);
    /* Closing the listener wakes the accept task with EK_ECLOSED. Closing is
     * safe from any thread while the accept task owns the handle. */
    ek__mutex_lock(&s->mu);
    if (s->accept_alive) {
        if (s->unix_listener)
            (void)ek_unix_listener_close(s->listener);
        else
            (void)ek_tcp_listener_close(s->listener);
    }
    ek__srv_wake_all(s);
    ek__mutex_unlock(&s->mu);
}

int ek_server_shutdown(ek_server *h, uint64_t grace_ms)
{
    if (!EK__CHECK_TAG(h, EK__TAG_SERVER)) return EK_EINVAL;
    if (ek_runtime_current() != NULL || ek__srv_on_own_thread(h->srv)) return EK_EDEADLK;
    ek__srv *s = h->srv;
    h->shut = true;
    ek__srv_begin_close(s);
    uint64_t now = ek__mono_ns(),
             ns = grace_ms > UINT64_MAX / 1000000u ? UINT64_MAX : grace_ms * 1000000u;
    uint64_t deadline = now > UINT64_MAX - ns ? UINT64_MAX : now + ns;
    int rc = EK_OK;
    ek__mutex_lock(&s->mu);
    while (s->open > 0 || s->accept_alive) {
        if (!ek__cond_timedwait(&s->cv, &s->mu, deadline) && ek__mono_ns() >= deadline) {
            rc = EK_ETIMEDOUT;
            break;
        }
    }
    if (rc == EK_ETIMEDOUT) {
        atomic_store_explicit(&s->force, true, memory_order_release);
        ek__srv_wake_all(s);
        while (s->open > 0 || s->accept_alive) ek__cond_wait(&s->cv, &s->mu);
    }
    ek__mutex_unlock(&s->mu);
    return rc;
}

void ek_server_free(ek_server *h)
{
    if (!EK__CHECK_TAG(h, EK__TAG_SERVER)) return;
    if (!h->shut) {
        if (ek_runtime_current() == NULL && !ek__srv_on_own_thread(h->srv)) {
            (void)ek_server_shutdown(h, 0);
        } else {
            atomic_store_explicit(&h->srv->force, true, memory_order_release);
            ek__srv_begin_close(h->srv);
        }
    }
    h->tag = EK__TAG_DEAD;
    ek__srv_release(h->srv);
    ek__free(h);
}

int ek_server_local_addr(ek_server *h, ek_sockaddr *out)
{
    if (!EK__CHECK_TAG(h, EK__TAG_SERVER) || out == NULL) return EK_EINVAL;
    if (atomic_load(&h->srv->closing)) return EK_ECLOSED;
    char text[EK_SOCKADDR_STRLEN];
    int rc = ek_sockaddr_format(h->srv->local, text, sizeof text);
    return rc < 0 ? rc : ek_sockaddr_set(out, text);
}

int ek_server_metrics(ek_server *h, uint64_t *values, size_t n)
{
    if (!EK__CHECK_TAG(h, EK__TAG_SERVER) || (values == NULL && n > 0)) return EK_EINVAL;
    for (size_t i = 0; i < n && i < EK_SERVER_METRIC_COUNT; i++)
        values[i] = atomic_load_explicit(&h->srv->m[i], memory_order_relaxed);
    return EK_SERVER_METRIC_COUNT;
}

const char *ek_server_metric_name(int key)
{
    static const char *const names[] = {
#define EK__SERVER_METRIC_NAME(name, doc) #name,
        EK_SERVER_METRICS_MAP(EK__SERVER_METRIC_NAME)
#undef EK__SERVER_METRIC_NAME
    };
    return key >= 0 && key < EK_SERVER_METRIC_COUNT ? names[key] : NULL;
}
