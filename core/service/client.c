/*
 * client.c - the framed client (ekiden/client.h). Handles send requests through
 * an unbounded mpsc channel to one connection task, each with a oneshot for its
 * response; the task writes them in order and answers them in the order the
 * responses are decoded.
 */
#include "codec.h"

#define EK__TAG_CLIOPTS 0x454b434fu /* "EKCO" */

struct ek_client_options {
    uint32_t tag;
    int reconnect;
    uint64_t backoff_ms;
    size_t max_in_flight;
    ek_mpsc_sender *push; /* where push frames go (each client gets a clone), or NULL */
};

typedef struct ek__client {
    atomic_size_t refs; /* the connection task and each handle's state */
    atomic_int closed_err;
    ek_sockaddr *addr;
} ek__client;

typedef struct ek__item {
    ek_msg *req;
    ek_oneshot_sender *reply;
} ek__item;

typedef struct ek__reply {
    int rc;
    ek_msg *m;
} ek__reply;

static void ek__client_release(ek__client *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1) return;
    ek_sockaddr_free(c->addr);
    ek__free(c);
}

static void ek__reply_drop(void *v)
{
    ek__reply *r = v;
    ek_msg_free(r->m);
    ek__free(r);
}

/* Answer a request (consumes tx; a receiver gone meanwhile frees the reply). */
static void ek__answer(ek_oneshot_sender *tx, int rc, ek_msg *m)
{
    ek__reply *r = ek__malloc(sizeof *r);
    if (r == NULL) {
        ek_msg_free(m);
        ek_oneshot_sender_drop(tx); /* the caller sees EK_ECLOSED */
        return;
    }
    r->rc = rc;
    r->m = m;
    if (ek_oneshot_send(tx, r) != EK_OK) ek__reply_drop(r);
}

static void ek__item_drop(void *v)
{
    ek__item *it = v;
    ek_msg_free(it->req);
    ek_oneshot_sender_drop(it->reply);
    ek__free(it);
}

/* ---- the connection task ---- */

typedef struct ek__conn_task {
    ek__client *c;
    ek_runtime *rt;
    ek_codec *proto; /* cloned per connection */
    ek_codec *codec;
    const ek__codec_ext *ext; /* the codec's client hooks (codec.h), or NULL */
    void *cself;
    ek_mpsc_sender *push; /* push frames go here (NULL: they are dropped) */
    ek_msg *push_pending; /* a push frame waiting for room in that channel */
    ek_mpsc_receiver *rx;
    ek_future *connect, *backoff;
    ek_stream *io;
    ek_buf *in, *out;
    ek_oneshot_sender **fifo; /* requests written, awaiting their response */
    size_t head, len, cap;
    ek__item *sending;    /* a streaming request being written (its frames as they come) */
    bool sending_started; /* its head is written and its reply in the FIFO */
    bool rx_closed;
    int dead; /* a failure without reconnect: every request gets it */
    int reconnect;
    uint64_t backoff_ms;
    size_t max_in_flight;
} ek__conn_task;

static void ek__task_fail_pending(ek__conn_task *t, int err)
{
    for (; t->len > 0; t->len--, t->head = (t->head + 1) % t->cap)
        ek__answer(t->fifo[t->head], err, NULL);
}

static void ek__task_connection_failed(ek__conn_task *t, int err)
{
    ek__task_fail_pending(t, err);
    if (t->sending != NULL) { /* a streaming request ends with the connection */
        if (!t->sending_started) ek__answer(t->sending->reply, err, NULL);
        t->sending->reply = NULL;
        ek__item_drop(t->sending);
        t->sending = NULL;
    }
    ek_stream_free(t->io);
    t->io = NULL;
    ek_codec_free(t->codec);
    t->codec = NULL;
    t->ext = NULL;
    t->cself = NULL;
    ek_buf_clear(t->in);
    ek_buf_clear(t->out);
    if (t->reconnect) {
        if (ek_sleep(t->rt, t->backoff_ms, &t->backoff) == EK_OK) return;
    }
    t->dead = err;
    atomic_store_explicit(&t->c->closed_err, err, memory_order_release);
}

/* Double the room of the FIFO of requests awaiting their answer. */
static int ek__task_grow(ek__conn_task *t)
{
    void *f = t->fifo;
    int rc = ek__ring_grow(&f, sizeof *t->fifo, &t->head, t->len, &t->cap, 16);
    t->fifo = f;
    return rc;
}

/* Connect (or wait for the back-off). EK_OK when connected. */
static int ek__task_connect(ek__conn_task *t, ek_cx *cx)
{
    if (t->backoff != NULL) {
        int rc = ek_future_poll(t->backoff, cx, NULL);
        if (rc == EK_PENDING) return rc;
        ek_future_drop(t->backoff);
        t->backoff = NULL;
    }
    if (t->connect == NULL) {
        int fam = ek_sockaddr_family(t->c->addr), rc;
        if (fam == EK_AF_UNIX) {
            char path[EK_SOCKADDR_STRLEN];
            rc = ek_sockaddr_format(t->c->addr, path, sizeof path);
            if (rc >= 0) rc = ek_unix_connect(t->rt, path, &t->connect);
        } else {
            rc = ek_tcp_connect(t->rt, t->c->addr, &t->connect);
        }
        if (rc < 0) return rc;
    }
    void *sock = NULL;
    int rc = ek_future_poll(t->connect, cx, &sock);
    if (rc == EK_PENDING) return rc;
    ek_future_drop(t->connect);
    t->connect = NULL;
    if (rc != EK_OK) return rc;
    if (ek_sockaddr_family(t->c->addr) == EK_AF_UNIX) {
        rc = ek_stream_from_unix(sock, &t->io);
    } else {
        (void)ek_tcp_set_nodelay(sock, 1);
        rc = ek_stream_from_tcp(sock, &t->io);
    }
    if (rc == EK_OK) rc = ek_codec_clone(t->proto, &t->codec);
    if (rc == EK_OK) t->ext = ek__codec_ext_of(t->codec, &t->cself);
    return rc;
}

static void ek__msg_drop(void *m)
{
    ek_msg_free(m);
}

/* Hand push frame m to the push channel (or drop it without one). EK_PENDING when
 * the channel is full: m waits in push_pending and reading stops meanwhile. */
static int ek__task_push_frame(ek__conn_task *t, ek_cx *cx, ek_msg *m)
{
    if (t->push == NULL) {
        ek_msg_free(m);
        return EK_OK;
    }
    int rc = ek_mpsc_send(t->push, cx, m);
    if (rc == EK_PENDING) {
        t->push_pending = m;
        return EK_PENDING;
    }
    if (rc != EK_OK) { /* the receiver is gone: push frames are dropped from now on */
        ek_msg_free(m);
        ek_mpsc_sender_drop(t->push);
        t->push = NULL;
    }
    return EK_OK;
}

/* Decode what was read: answers in order, push frames to their channel. EK_OK
 * when it needs more bytes, EK_PENDING when the push channel is full, or the
 * connection's error. At the end of the stream (eof) the codec's decode_eof
 * gives what is left (an HTTP response delimited by the end of the stream); then
 * the connection has ended: EK_ECONNRESET while requests still wait for their
 * answer, EK_ECLOSED otherwise. */
static int ek__task_decode(ek__conn_task *t, ek_cx *cx, bool eof)
{
    for (;;) {
        ek_msg *m = NULL;
        int rc = eof ? ek_codec_decode_eof(t->codec, t->in, &m, NULL)
                     : ek_codec_decode(t->codec, t->in, &m, NULL);
        if (rc == EK_PENDING) return EK_OK;
        if (eof && rc == EK_ECLOSED) return t->len > 0 ? EK_ECONNRESET : EK_ECLOSED;
        if (rc != EK_OK) return rc;
        int cls = t->ext != NULL && t->ext->client_frame != NULL ? t->ext->client_frame(t->cself, m)
                                                                 : EK__FRAME_REPLY;
        if (cls != EK__FRAME_PUSH && t->len == 0) { /* a frame nobody asked for */
            ek_msg_free(m);
            return EK_EPROTO;
        }
        if (cls == EK__FRAME_PUSH_REPLY) { /* the answer, and a push frame too */
            ek_msg *copy = NULL;
            rc = ek_msg_clone(m, &copy);
            ek__answer(t->fifo[t->head], rc, copy);
            t->head = (t->head + 1) % t->cap;
            t->len--;
        }
        if (cls != EK__FRAME_REPLY) {
            if (ek__task_push_frame(t, cx, m) == EK_PENDING) return EK_PENDING;
            continue;
        }
        ek__answer(t->fifo[t->head], EK_OK, m);
        t->head = (t->head + 1) % t->cap;
        t->len--;
    }
}

/* Above this much unwritten output a streaming request's frames wait. */
#define EK__STREAM_OUT_MAX (64 * 1024)

/* Write what the streaming request t->sending has ready: its head (with the
 * codec's stream_begin; its reply joins the FIFO then), its later frames
 * (encode EK_CODEC_PUSH), its end (stream_end). Requests after it wait until it
 * ends. Returns whether anything moved. */
static bool ek__task_send_stream(ek__conn_task *t, ek_cx *cx)
{
    bool moved = false;
    while (t->sending != NULL && ek_buf_len(t->out) < EK__STREAM_OUT_MAX) {
        ek__item *it = t->sending;
        ek_msg *frame = NULL;
        int rc = ek_msg_stream_next(it->req, cx, &frame);
        if (rc == EK_PENDING) break;
        moved = true;
        if (rc == EK_OK && !t->sending_started) {
            rc = t->len == t->cap ? ek__task_grow(t) : EK_OK;
            if (rc == EK_OK) rc = t->ext->stream_begin(t->cself, frame, t->out);
            ek_msg_free(frame);
            if (rc != EK_OK) { /* nothing noted: that request alone fails */
                ek__answer(it->reply, rc, NULL);
                it->reply = NULL;
                ek__item_drop(it);
                t->sending = NULL;
                break;
            }
            t->fifo[(t->head + t->len++) % t->cap] = it->reply;
            it->reply = NULL;
            t->sending_started = true;
            continue;
        }
        if (rc == EK_OK) {
            rc = ek_codec_encode(t->codec, frame, EK_CODEC_PUSH, t->out);
            ek_msg_free(frame);
            if (rc == EK_OK) continue;
            ek__task_connection_failed(t, rc); /* half a body written */
            break;
        }
        /* the end of the stream */
        if (!t->sending_started) { /* no head: nothing to write */
            ek__answer(it->reply, EK_EINVAL, NULL);
            it->reply = NULL;
        } else if ((rc = t->ext->stream_end(t->cself, t->out)) != EK_OK) {
            ek__task_connection_failed(t, rc);
            break;
        }
        ek__item_drop(it);
        t->sending = NULL;
    }
    return moved;
}

static int ek__task_poll(void *state, ek_cx *cx, void **out)
{
    ek__conn_task *t = state;
    *out = NULL;
    for (;;) {
        if (t->rx_closed && t->len == 0 && t->sending == NULL &&
            (t->io == NULL || ek_buf_len(t->out) == 0))
            return EK_OK;
        if (t->dead) {
            /* Closed for good: every request that still comes gets the error. */
            void *v;
            int rc;
            while ((rc = ek_mpsc_recv(t->rx, cx, &v)) == EK_OK) {
                ek__item *it = v;
                ek__answer(it->reply, t->dead, NULL);
                it->reply = NULL;
                ek__item_drop(it);
            }
            return rc == EK_PENDING ? EK_PENDING : EK_OK;
        }
        if (t->io == NULL) {
            int rc = ek__task_connect(t, cx);
            if (rc == EK_PENDING) return EK_PENDING;
            if (rc != EK_OK) {
                ek__task_connection_failed(t, rc);
                continue;
            }
        }
        bool moved = false;
        /* requests in */
        if (t->sending != NULL) {
            moved |= ek__task_send_stream(t, cx);
            if (t->io == NULL) continue; /* it failed the connection */
        }
        while (t->io != NULL && !t->rx_closed && t->sending == NULL && t->len < t->max_in_flight) {
            void *v;
            int rc = ek_mpsc_recv(t->rx, cx, &v);
            if (rc == EK_PENDING) break;
            if (rc != EK_OK) {
                t->rx_closed = true;
                moved = true; /* back to the top: the task may be done */
                break;
            }
            ek__item *it = v;
            if (ek_msg_kind(it->req) == EK_MSG_STREAM && t->ext != NULL &&
                t->ext->stream_begin != NULL && t->ext->stream_end != NULL) {
                /* a streaming request: written as its frames come */
                t->sending = it;
                t->sending_started = false;
                moved |= ek__task_send_stream(t, cx);
                moved = true;
                continue;
            }
            /* Room to note it first: a request written is always noted. */
            rc = t->len == t->cap ? ek__task_grow(t) : EK_OK;
            if (rc == EK_OK)
                rc = t->ext != NULL && t->ext->client_request != NULL
                         ? t->ext->client_request(t->cself, it->req, t->out)
                         : ek_codec_encode(t->codec, it->req, EK_CODEC_REQUEST, t->out);
            if (rc == EK_OK) t->fifo[(t->head + t->len++) % t->cap] = it->reply;
            if (rc != EK_OK) ek__answer(it->reply, rc, NULL);
            it->reply = NULL;
            ek__item_drop(it);
            moved = true;
        }
        /* bytes out */
        while (ek_buf_len(t->out) > 0) {
            size_t n = 0;
            int rc =
                ek_stream_write(t->io, cx, ek_buf_data(t->out), (size_t)ek_buf_len(t->out), &n);
            if (rc == EK_PENDING) break;
            if (rc != EK_OK) {
                ek__task_connection_failed(t, rc);
                moved = true;
                break;
            }
            (void)ek_buf_discard(t->out, n);
            moved = true;
        }
        if (t->io == NULL) continue;
        /* responses (and push frames) in; a full push channel stops reading */
        if (t->push_pending != NULL) {
            ek_msg *m = t->push_pending;
            t->push_pending = NULL;
            if (ek__task_push_frame(t, cx, m) == EK_PENDING) return EK_PENDING;
            moved = true;
            int rc = ek__task_decode(t, cx, false);
            if (rc == EK_PENDING) return EK_PENDING;
            if (rc != EK_OK) {
                ek__task_connection_failed(t, rc);
                continue;
            }
        }
        if (t->len > 0 || t->push != NULL) {
            uint8_t *tail;
            size_t avail, n = 0;
            int rc = ek_buf_reserve(t->in, 16 * 1024, &tail, &avail);
            if (rc == EK_OK) rc = ek_stream_read(t->io, cx, tail, avail, &n);
            if (rc == EK_OK) {
                (void)ek_buf_advance(t->in, n);
                moved = true;
                rc = ek__task_decode(t, cx, n == 0);
                if (rc == EK_PENDING) return EK_PENDING;
                if (rc == EK_OK && n == 0) rc = EK_ECONNRESET;
            }
            if (rc != EK_OK && rc != EK_PENDING) {
                ek__task_connection_failed(t, rc);
                moved = true;
            }
        }
        if (!moved) return EK_PENDING;
    }
}

static void ek__task_drop(void *state)
{
    ek__conn_task *t = state;
    ek__task_fail_pending(t, EK_ECLOSED);
    if (t->sending != NULL) ek__item_drop(t->sending); /* its caller sees EK_ECLOSED */
    ek__free(t->fifo);
    ek_msg_free(t->push_pending);
    ek_mpsc_sender_drop(t->push); /* the push channel's receiver then sees EK_ECLOSED */
    ek_mpsc_receiver_drop(t->rx); /* queued requests: their callers see EK_ECLOSED */
    ek_future_drop(t->connect);
    ek_future_drop(t->backoff);
    ek_stream_free(t->io);
    ek_codec_free(t->codec);
    ek_codec_free(t->proto);
    ek_buf_free(t->in);
    ek_buf_free(t->out);
    atomic_store_explicit(&t->c->closed_err, EK_ECLOSED, memory_order_release);
    ek__client_release(t->c);
    ek__free(t);
}

/* ---- the service ---- */

typedef struct ek__client_handle {
    ek__client *c;
    ek_mpsc_sender *tx;
} ek__client_handle;

static int ek__client_ready(void *self, ek_cx *cx)
{
    ek__client_handle *h = self;
    int err = atomic_load_explicit(&h->c->closed_err, memory_order_acquire);
    return err != 0 ? err : EK_OK;
}

static int ek__resp_wait_poll(void *state, ek_cx *cx, void **out)
{
    void *v = NULL;
    int rc = ek_oneshot_recv(state, cx, &v);
    if (rc != EK_OK) return rc;
    ek__reply *r = v;
    rc = r->rc;
    *out = r->m;
    ek__free(r);
    return rc;
}

static void ek__resp_wait_drop(void *state)
{
    ek_oneshot_receiver_drop(state);
}

static int ek__client_call(void *self, ek_msg *req, ek_future **resp)
{
    ek__client_handle *h = self;
    ek__item *it = ek__malloc(sizeof *it);
    if (it == NULL) {
        ek_msg_free(req);
        return EK_ENOMEM;
    }
    it->req = req;
    ek_oneshot_receiver *rx;
    int rc = ek_oneshot_new(ek__reply_drop, &it->reply, &rx);
    if (rc != EK_OK) {
        it->reply = NULL;
        ek__item_drop(it);
        return rc;
    }
    rc = ek_mpsc_try_send(h->tx, it);
    if (rc != EK_OK) {
        ek__item_drop(it);
        ek_oneshot_receiver_drop(rx);
        return rc == EK_ECLOSED ? EK_ECLOSED : rc;
    }
    return ek_future_new(ek__resp_wait_poll, ek__resp_wait_drop, rx, resp);
}

static void ek__client_handle_drop(void *self)
{
    ek__client_handle *h = self;
    ek_mpsc_sender_drop(h->tx);
    ek__client_release(h->c);
    ek__free(h);
}

static int ek__client_status(void *self)
{
    ek__client_handle *h = self;
    return atomic_load(&h->c->closed_err) != 0 ? EK_SERVICE_CLOSED : EK_SERVICE_OPEN;
}

static int ek__client_clone(void *self, void **out)
{
    ek__client_handle *h = self, *n = ek__malloc(sizeof *n);
    if (n == NULL) return EK_ENOMEM;
    int rc = ek_mpsc_sender_clone(h->tx, &n->tx);
    if (rc != EK_OK) {
        ek__free(n);
        return rc;
    }
    n->c = h->c;
    atomic_fetch_add_explicit(&h->c->refs, 1, memory_order_relaxed);
    *out = n;
    return EK_OK;
}

static const ek_service_vtable ek__client_vtable = {
    .poll_ready = ek__client_ready,
    .call = ek__client_call,
    .status = ek__client_status,
    .drop = ek__client_handle_drop,
};

/* ---- options and connect ---- */

int ek_client_options_new(ek_client_options **out)
{
    if (out == NULL) return EK_EINVAL;
    ek_client_options *o = ek__calloc(1, sizeof *o);
    if (o == NULL) return EK_ENOMEM;
    o->tag = EK__TAG_CLIOPTS;
    o->backoff_ms = 100;
    o->max_in_flight = 1024;
    *out = o;
    return EK_OK;
}

void ek_client_options_free(ek_client_options *o)
{
    if (!EK__CHECK_TAG(o, EK__TAG_CLIOPTS)) return;
    ek_mpsc_sender_drop(o->push);
    o->tag = EK__TAG_DEAD;
    ek__free(o);
}

int ek_client_options_set_reconnect(ek_client_options *o, int on, uint64_t backoff_ms)
{
    if (!EK__CHECK_TAG(o, EK__TAG_CLIOPTS) || (on != 0 && on != 1) || (on && backoff_ms == 0))
        return EK_EINVAL;
    o->reconnect = on;
    o->backoff_ms = backoff_ms ? backoff_ms : o->backoff_ms;
    return EK_OK;
}

int ek_client_options_set_max_in_flight(ek_client_options *o, size_t n)
{
    if (!EK__CHECK_TAG(o, EK__TAG_CLIOPTS) || n < 1 || n > 65536) return EK_EINVAL;
    o->max_in_flight = n;
    return EK_OK;
}

int ek_client_options_set_push(ek_client_options *o, size_t cap, ek_mpsc_receiver **rx)
{
    if (!EK__CHECK_TAG(o, EK__TAG_CLIOPTS) || rx == NULL) return EK_EINVAL;
    ek_mpsc_sender *tx = NULL;
    int rc = cap == 0 ? ek_mpsc_unbounded(ek__msg_drop, &tx, rx)
                      : ek_mpsc_bounded(cap, ek__msg_drop, &tx, rx);
    if (rc != EK_OK) return rc;
    ek_mpsc_sender_drop(o->push);
    o->push = tx;
    return EK_OK;
}

int ek_client_connect(ek_runtime *rt, const ek_sockaddr *addr, ek_codec *codec,
                      const ek_client_options *options, ek_service **out)
{
    int rc = ek__codec_check(codec);
    if (rc == EK_OK && (out == NULL || ek_sockaddr_family(addr) <= EK_AF_UNSPEC ||
                        (options != NULL && !EK__CHECK_TAG(options, EK__TAG_CLIOPTS))))
        rc = EK_EINVAL;
    ek__client *c = NULL;
    ek__conn_task *t = NULL;
    ek__client_handle *h = NULL;
    if (rc == EK_OK &&
        ((c = ek__calloc(1, sizeof *c)) == NULL || (t = ek__calloc(1, sizeof *t)) == NULL ||
         (h = ek__calloc(1, sizeof *h)) == NULL))
        rc = EK_ENOMEM;
    if (rc == EK_OK) rc = ek_sockaddr_copy(addr, &c->addr);
    if (rc == EK_OK) rc = ek_mpsc_unbounded(ek__item_drop, &h->tx, &t->rx);
    if (rc == EK_OK) rc = ek_buf_new(16 * 1024, &t->in);
    if (rc == EK_OK) rc = ek_buf_new(16 * 1024, &t->out);
    if (rc == EK_OK && options != NULL && options->push != NULL)
        rc = ek_mpsc_sender_clone(options->push, &t->push);
    if (rc != EK_OK) {
        if (h != NULL) ek_mpsc_sender_drop(h->tx);
        if (t != NULL) {
            ek_mpsc_receiver_drop(t->rx);
            ek_buf_free(t->in);
            ek_buf_free(t->out);
            ek_mpsc_sender_drop(t->push);
        }
        if (c != NULL) ek_sockaddr_free(c->addr);
        ek__free(c);
        ek__free(t);
        ek__free(h);
        ek_codec_free(codec); /* consumed (a bad handle is ignored) */
        return rc;
    }
    atomic_init(&c->refs, 2);
    atomic_init(&c->closed_err, 0);
    t->c = c;
    t->rt = rt;
    t->proto = codec;
    t->reconnect = options != NULL ? options->reconnect : 0;
    t->backoff_ms = options != NULL ? options->backoff_ms : 100;
    t->max_in_flight = options != NULL ? options->max_in_flight : 1024;
    h->c = c;
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed); /* held while spawning */
    rc = ek_spawn(rt, ek__task_poll, ek__task_drop, t, NULL, NULL);
    if (rc != EK_OK) { /* the task's drop ran */
        ek__client_handle_drop(h);
        ek__client_release(c);
        return rc;
    }
    ek__client_release(c);
    return ek_service_new_shareable(&ek__client_vtable, h, ek__client_clone, out);
}
