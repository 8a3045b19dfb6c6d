/*
 * ekiden_glue.c - the C half of the Python binding, compiled into the cffi
 * extension (the same translation unit as cffi's generated code, so it can call
 * the static `extern "Python"` functions declared in ekiden_build.py).
 *
 * A Python task is a local C task (ek_spawn_local) whose state is the cffi handle
 * of its Python Task object. Its poll steps the coroutine through
 * ekpy_task_poll; the coroutine's awaitables call C operations with the poll's
 * ek_cx and, on EK_PENDING, make the poll return EK_PENDING, so the C scheduler
 * alone decides when it runs again. The result stays on the Python side.
 * Both callbacks run on the thread that spawned the task (it is local), with the
 * GIL taken by cffi around the call.
 */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * The GIL around C calls. cffi releases it around every call into C (its
 * wrappers use Py_BEGIN/END_ALLOW_THREADS), which costs a drop and a take of
 * the GIL (two mutex round trips and a condition signal) per call. The
 * functions named ekpy_io_* below are the binding's hot path (socket reads and
 * writes, accept, yield, the task's own poll context): they never block (an
 * operation that cannot complete returns pending and registers the task's
 * waker) and take no lock that a thread calling into Python can hold, so
 * releasing the GIL around them buys nothing; their wrappers keep it. Every
 * other function still releases it (ek_join_wait parks there). The check is on
 * the wrapper's name (cffi names it _cffi_f_<function>); if a cffi version
 * named them otherwise, the GIL would simply be released as before.
 */
#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define EKPY__KEEPS_GIL(fn) (strncmp((fn), "_cffi_f_ekpy_io_", 16) == 0)
#define Py_BEGIN_ALLOW_THREADS                                                                     \
    {                                                                                              \
        PyThreadState *_save = EKPY__KEEPS_GIL(__func__) ? NULL : PyEval_SaveThread();
#define Py_END_ALLOW_THREADS                                                                       \
    if (_save) PyEval_RestoreThread(_save);                                                        \
    }

static int ekpy_task_poll(void *handle);
static void ekpy_task_drop(void *handle);
static void ekpy_handle_drop(void *handle);
static int ekpy_handle_clone(void *handle, void **out);
static int ekpy_svc_call(void *self, ek_msg *req, ek_future **resp);
static void ekpy_svc_drop(void *self);
static int ekpy_resp_poll(void *handle, void **out);
static void ekpy_resp_drop(void *handle);

/* The Python task being stepped on this thread and the context of its poll:
 * set around each step (saved and restored: a step may poll another future
 * that steps nothing, but nesting costs nothing to allow), read by the
 * awaitables through ekpy_cx / ekpy_io_* so that no call carries the context
 * and no Python object is made for it. NULL outside a step. */
static _Thread_local ek_cx *ekpy__cx;
static _Thread_local void *ekpy__task;

static int ekpy__poll(void *state, ek_cx *cx, void **out)
{
    *out = NULL;
    ek_cx *prev_cx = ekpy__cx;
    void *prev_task = ekpy__task;
    ekpy__cx = cx;
    ekpy__task = state;
    int rc = ekpy_task_poll(state);
    ekpy__cx = prev_cx;
    ekpy__task = prev_task;
    return rc;
}

ek_cx *ekpy_cx(void)
{
    return ekpy__cx;
}

void *ekpy_current_task(void)
{
    return ekpy__task;
}

/*
 * The hot path of a stream (TcpStream, UnixStream): one call per read or write
 * with the context of the current step, the result in the return value (bytes
 * done, EKPY_PENDING, EKPY_NO_TASK or a negative EK_E* code), so that a read
 * that finds data costs one call with one argument.
 */
#define EKPY_PENDING (-(1L << 30))
#define EKPY_NO_TASK (-(1L << 30) - 1)

typedef struct ekpy_stream {
    void *sock; /* ek_tcp_stream * or ek_unix_stream *; NULL once closed */
    int unix_;  /* 0: TCP, 1: Unix */
    char *buf;  /* where reads go (the runtime's scratch buffer) */
    size_t len; /* how much a read asks for (at most the buffer's size) */
} ekpy_stream;

static long ekpy__result(int rc, size_t n)
{
    if (rc == EK_OK) return n > (size_t)LONG_MAX ? LONG_MAX : (long)n;
    return rc == EK_PENDING ? EKPY_PENDING : rc;
}

long ekpy_io_read(ekpy_stream *s)
{
    if (!ekpy__cx) return EKPY_NO_TASK;
    if (!s->sock) return EK_ECLOSED;
    size_t n = 0;
    int rc = s->unix_ ? ek_unix_read(s->sock, ekpy__cx, s->buf, s->len, &n)
                      : ek_tcp_read(s->sock, ekpy__cx, s->buf, s->len, &n);
    return ekpy__result(rc, n);
}

/* Reads into the caller's buffer (read_into). */
long ekpy_io_read_into(ekpy_stream *s, char *buf, size_t len)
{
    if (!ekpy__cx) return EKPY_NO_TASK;
    if (!s->sock) return EK_ECLOSED;
    size_t n = 0;
    int rc = s->unix_ ? ek_unix_read(s->sock, ekpy__cx, buf, len, &n)
                      : ek_tcp_read(s->sock, ekpy__cx, buf, len, &n);
    return ekpy__result(rc, n);
}

long ekpy_io_write(ekpy_stream *s, const char *data, size_t len)
{
    if (!ekpy__cx) return EKPY_NO_TASK;
    if (!s->sock) return EK_ECLOSED;
    size_t n = 0;
    int rc = s->unix_ ? ek_unix_write(s->sock, ekpy__cx, data, len, &n)
                      : ek_tcp_write(s->sock, ekpy__cx, data, len, &n);
    return ekpy__result(rc, n);
}

/* ek_yield_now for the current step: EK_OK, EK_PENDING or EKPY_NO_TASK. */
long ekpy_io_yield(void)
{
    if (!ekpy__cx) return EKPY_NO_TASK;
    return ek_yield_now(ekpy__cx);
}

/* ek_future_poll with the current step's context, for the runtime's own timer
 * futures only (sleep, deadlines): the GIL stays held. */
long ekpy_io_future_poll(ek_future *f, void **out)
{
    if (!ekpy__cx) return EKPY_NO_TASK;
    return ek_future_poll(f, ekpy__cx, out);
}

/* ek_future_poll with the current step's context, for any future (connect,
 * resolve, channels...): these may take locks that a worker holds while it
 * calls into Python (a message's drop), so this one releases the GIL. */
long ekpy_future_poll(ek_future *f, void **out)
{
    if (!ekpy__cx) return EKPY_NO_TASK;
    return ek_future_poll(f, ekpy__cx, out);
}

/* A waker of the current step's task (ek_cx_waker), NULL outside a step. */
ek_waker *ekpy_io_waker(void)
{
    return ekpy__cx ? ek_cx_waker(ekpy__cx) : NULL;
}

static void ekpy__drop(void *state)
{
    ekpy_task_drop(state);
}

int ekpy_spawn_task(ek_runtime *rt, void *handle, ek_join **join)
{
    return ek_spawn_local(rt, ekpy__poll, ekpy__drop, handle, NULL, join);
}

/* Drop function for host objects handed to C (channel messages and the like):
 * releases the keep-alive reference of the handle. Any thread (cffi takes the
 * GIL). */
ek_drop_fn ekpy_handle_drop_fn = ekpy_handle_drop;

ek_clone_fn ekpy_handle_clone_fn = ekpy_handle_clone;

/*
 * A Python service (ekiden.Service) as a C service: always ready (the buffer in
 * front of it carries back-pressure), call makes the handler coroutine and a
 * response future that steps it (ekpy__resp_poll, ekpy_resp_drop).
 * ekiden.Service wraps it in ek_svc_buffer_local, so every one of these
 * functions runs on the thread of ekiden.run, whoever the caller is.
 */
static int ekpy__svc_ready(void *self, ek_cx *cx)
{
    (void)self;
    (void)cx;
    return EK_OK;
}

static const ek_service_vtable ekpy__svc_vt = {
    ekpy__svc_ready, ekpy_svc_call, NULL, NULL, ekpy_svc_drop,
};

int ekpy_service_new(void *handle, ek_service **out)
{
    return ek_service_new(&ekpy__svc_vt, handle, out);
}

/* The response future of a Python service call: the handler's Task handle (a
 * task with no C task of its own); polling it steps the handler with this
 * poll's context, as ekpy__poll does for a task. Once a poll has given the
 * result, Python has released the handle itself, so dropping the future then
 * costs no call into Python; before that, the drop tells Python (the handler
 * goes on as a cancelled task: ekpy_resp_drop). */
typedef struct {
    void *handle;
    int done;
} ekpy__resp;

static int ekpy__resp_poll(void *state, ek_cx *cx, void **out)
{
    ekpy__resp *r = state;
    ek_cx *prev_cx = ekpy__cx;
    void *prev_task = ekpy__task;
    ekpy__cx = cx;
    ekpy__task = r->handle;
    int rc = ekpy_resp_poll(r->handle, out);
    ekpy__cx = prev_cx;
    ekpy__task = prev_task;
    if (rc != EK_PENDING) r->done = 1;
    return rc;
}

static void ekpy__resp_drop(void *state)
{
    ekpy__resp *r = state;
    if (!r->done) ekpy_resp_drop(r->handle);
    free(r);
}

/* Consumes handle: on error ekpy_resp_drop has run. */
int ekpy_response_new(void *handle, ek_future **out)
{
    ekpy__resp *r = malloc(sizeof *r);
    if (!r) {
        ekpy_resp_drop(handle);
        return EK_ENOMEM;
    }
    r->handle = handle;
    r->done = 0;
    return ek_future_new(ekpy__resp_poll, ekpy__resp_drop, r, out);
}

/*
 * ek_server_shutdown blocks its thread, which must be none of the runtime's (not
 * the Python thread, which drives the runtime and may be needed by the
 * connections it waits for, nor a blocking-pool thread). So `await
 * server.shutdown()` runs it on a thread of its own, which sends the result
 * (the status, as the message pointer) through a oneshot channel the task awaits.
 */
typedef struct {
    ek_server *server;
    uint64_t grace_ms;
    ek_oneshot_sender *tx;
} ekpy__shutdown_job;

static void *ekpy__shutdown_run(void *arg)
{
    ekpy__shutdown_job *job = arg;
    int rc = ek_server_shutdown(job->server, job->grace_ms);
    ek_oneshot_send(job->tx, (void *)(intptr_t)rc);
    free(job);
    return NULL;
}

/* Consumes tx (on error it is dropped: the receiver sees EK_ECLOSED). */
int ekpy_server_shutdown_thread(ek_server *server, uint64_t grace_ms, ek_oneshot_sender *tx)
{
    ekpy__shutdown_job *job = malloc(sizeof *job);
    if (!job) {
        ek_oneshot_sender_drop(tx);
        return EK_ENOMEM;
    }
    job->server = server;
    job->grace_ms = grace_ms;
    job->tx = tx;
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int err = pthread_create(&thread, &attr, ekpy__shutdown_run, job);
    pthread_attr_destroy(&attr);
    if (err != 0) {
        ek_oneshot_sender_drop(tx);
        free(job);
        return -err;
    }
    return EK_OK;
}

/*
 * RESP fast paths (ekiden.resp): a request as clients send it, an array of
 * bulk strings, comes to Python in one call instead of one per element and
 * field; the common responses are made in one call each. Anything else takes
 * the general path (resp.from_msg / to_msg). These take no lock: they keep the
 * GIL (ekpy_io_ names).
 */
#define EKPY_FLAT_MAX 64

typedef struct ekpy_flat {
    char *buf;                  /* the elements' bytes, back to back */
    size_t cap;                 /* size of buf */
    size_t lens[EKPY_FLAT_MAX]; /* each element's length */
} ekpy_flat;

/* msg (borrowed) as an array of at most EKPY_FLAT_MAX bulk strings whose bytes
 * fit in flat->buf: the number of elements, with the bytes and lengths in
 * flat. -1 for anything else (not RESP, not such an array, a null element, too
 * big): the caller converts it the general way. */
long ekpy_io_resp_bulks(const ek_msg *msg, ekpy_flat *flat)
{
    if (ek_msg_kind(msg) != EK_MSG_RESP || ek_msg_resp_type(msg) != EK_RESP_ARRAY ||
        ek_msg_resp_is_null(msg) != 0)
        return -1;
    int64_t n = ek_msg_resp_len(msg);
    if (n < 0 || n > EKPY_FLAT_MAX) return -1;
    size_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        ek_msg *child;
        const uint8_t *data;
        size_t len;
        if (ek_msg_resp_child(msg, (size_t)i, &child) != EK_OK ||
            ek_msg_resp_type(child) != EK_RESP_BULK || ek_msg_resp_is_null(child) != 0 ||
            ek_msg_data(child, &data, &len) != EK_OK || len > flat->cap - off)
            return -1;
        memcpy(flat->buf + off, data, len);
        flat->lens[i] = len;
        off += len;
    }
    return (long)n;
}

/* A new RESP string message of `type` (EK_RESP_BULK, _SIMPLE, _ERROR) with a
 * copy of data; NULL when out of memory. */
ek_msg *ekpy_io_resp_string(int type, const char *data, size_t len)
{
    ek_msg *m = NULL;
    return ek_msg_resp_string(type, data, len, &m) == EK_OK ? m : NULL;
}

/* A new RESP null (EK_RESP_NULL); NULL when out of memory. */
ek_msg *ekpy_io_resp_null(void)
{
    ek_msg *m = NULL;
    return ek_msg_resp_null(EK_RESP_NULL, &m) == EK_OK ? m : NULL;
}
