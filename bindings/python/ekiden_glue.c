/*
 * ekiden_glue.c - the C half of the Python binding, compiled into the cffi
 * extension (the same translation unit as cffi's generated code, so it can call
 * the static `extern "Python"` functions declared in ekiden_build.py).
 *
 * A Python task is a local C task (ek_spawn_local) whose state is a _CTask
 * object (below) holding its Python Task and coroutine. Its poll, in C, steps
 * the coroutine (PyIter_Send) or calls the Task's _step; the coroutine's
 * awaitables call C operations with the poll's ek_cx and, on EK_PENDING, make
 * the poll return EK_PENDING, so the C scheduler alone decides when it runs
 * again. The result stays on the Python side. Both callbacks run on the
 * thread that spawned the task (it is local); they take the GIL themselves.
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <structmember.h> /* PyMemberDef's T_INT (cffi's code has included Python.h) */

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

static void ekpy_handle_drop(void *handle);
static int ekpy_handle_clone(void *handle, void **out);
typedef struct ekpy_batch ekpy_batch;
static int ekpy_svc_batch(void *self, ekpy_batch *batch);
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
    void *sock;  /* ek_tcp_stream * or ek_unix_stream *; NULL once closed */
    int unix_;   /* 0: TCP, 1: Unix */
    char *buf;   /* where reads go (the runtime's scratch buffer) */
    size_t len;  /* how much a read asks for (at most the buffer's size) */
    int busy;    /* tasks suspended in an operation of the stream (close waits for them) */
    int closing; /* close() was called: the last of them releases the stream */
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

/* Drop function for host objects handed to C (channel messages and the like):
 * releases the keep-alive reference of the handle. Any thread (cffi takes the
 * GIL). */
ek_drop_fn ekpy_handle_drop_fn = ekpy_handle_drop;

ek_clone_fn ekpy_handle_clone_fn = ekpy_handle_clone;

/*
 * A Python service (ekiden.Service) as a C service, in batches.
 *
 * ekiden.Service wraps it in ek_svc_buffer_local, so every function here runs
 * on the thread of ekiden.run, whoever the caller is. `call` does not enter
 * Python: it queues the request in a slot and returns the slot's response
 * future. The first poll of any queued slot (the buffer's drive of the first
 * response, after the buffer's worker has called in every request it had)
 * flushes the queue: one call into Python (ekpy_svc_batch) with every queued
 * request. Python gets them as Python values in one call (ekpy__py_requests:
 * RESP arrays of bulk strings as lists of bytes, byte messages as bytes, read
 * in place), runs each handler up to its first suspension (or a batch handler
 * once) and gives every result back in one call (ekpy__py_reply, which reads
 * the Python values itself): the slots of handlers that completed hold their
 * response, so their polls give it without entering Python. (A poll of the
 * last queued slot that comes first yields once instead: the caller may be
 * polling each response right after its call, with more calls to come.)
 *
 * A handler that suspended did so inside the poll of the flushing slot: what
 * it waits for registered that poll's waker, not its own caller's. So the
 * first poll of its own slot steps it again (ekpy_resp_poll, with that poll's
 * context): its awaitable polls its operation again and registers the right
 * waker (a spurious wake-up, which every awaitable allows); from then on the
 * slot is the handler's driver, as a response future of the one-call path was.
 * The flushing slot's stale registrations are spurious wake-ups of its task.
 *
 * A slot is freed when its future is gone and no queue or batch holds it; a
 * queued slot whose future was dropped is not given to Python (its caller is
 * gone: the handler is not called, as the buffer does for a request whose
 * caller left before the worker reached it).
 */
#define EKPY_SLOT_QUEUED 0 /* queued, or in the batch Python is running */
#define EKPY_SLOT_DONE   1 /* resp / rc hold the result */
#define EKPY_SLOT_TASK   2 /* the handler suspended: task is its Task's handle */
#define EKPY_SLOT_TAKEN  3 /* the result was given (or the task released) */

/* Python's answers that are no value (_service._Pre's kinds). */
#define EKPY_R_SKIP 0 /* a request whose caller is gone: nothing */
#define EKPY_R_MSG  7 /* a message Python made (its address; consumed) */
#define EKPY_R_FAIL 8 /* the response fails with the EK_E* code */
#define EKPY_R_TASK 9 /* the handler suspended: the address of its Task's handle */

/* A request's form in a batch (ekpy_batch.counts). */
#define EKPY_REQ_BYTES (-1) /* a byte message: bytes */
#define EKPY_REQ_OTHER (-2) /* anything else: Python converts reqs[i] itself */
#define EKPY_REQ_GONE  (-3) /* its caller is gone: skip it */

struct ekpy__svc;

typedef struct ekpy__slot {
    struct ekpy__svc *svc;
    ek_msg *req;  /* until its batch is done */
    ek_msg *resp; /* EKPY_SLOT_DONE with rc == EK_OK */
    void *task;   /* EKPY_SLOT_TASK */
    int rc;
    int state;
    int held;                /* in the queue or a batch */
    int dropped;             /* the response future is gone */
    int polled;              /* polled while queued */
    struct ekpy__slot *next; /* in the service's free list */
} ekpy__slot;

typedef struct ekpy_batch {
    size_t n;      /* requests */
    ek_msg **reqs; /* each request (borrowed) */
    long *counts;  /* per request: >= 0 a RESP array of that many bulk strings, or EKPY_REQ_* */
    ekpy__slot **slots;
    size_t cap;
    int replied;
} ekpy_batch;

typedef struct ekpy__svc {
    void *handle; /* the Python _Impl's handle */
    ekpy__slot **queue;
    size_t queued, queue_cap;
    ekpy_batch batch; /* reused by each flush (a nested flush gets its own) */
    int flushing;
    ekpy__slot *spare; /* freed slots, for the next calls (the service outlives them) */
    size_t nspare;
    atomic_int refs; /* see ekpy__svc_unref (atomic: a Service may be collected anywhere) */
} ekpy__svc;

#define EKPY_SPARE_MAX 1024

static void ekpy__slot_free(ekpy__slot *s)
{
    ek_msg_free(s->req);
    ek_msg_free(s->resp);
    if (s->state == EKPY_SLOT_TASK) ekpy_resp_drop(s->task); /* the handler is cancelled */
    ekpy__svc *svc = s->svc;
    if (svc->nspare < EKPY_SPARE_MAX) {
        s->next = svc->spare;
        svc->spare = s;
        svc->nspare++;
    } else {
        free(s);
    }
}

static int ekpy__grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * size);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* msg as an array of bulk strings: its length, with their total size in
 * *bytes; -1 for anything else (not RESP, not such an array, a null element).
 * Read in place (ek_msg_resp_arg): a flat request of the RESP server codec
 * stays flat, with no child message made per argument. */
static long ekpy__bulks_size(const ek_msg *msg, size_t *bytes)
{
    if (ek_msg_kind(msg) != EK_MSG_RESP || ek_msg_resp_type(msg) != EK_RESP_ARRAY) return -1;
    int64_t n = ek_msg_resp_len(msg); /* EK_EEMPTY (< 0) for a null array */
    if (n < 0 || n > LONG_MAX) return -1;
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *data;
        size_t len;
        if (ek_msg_resp_arg_type(msg, (size_t)i) != EK_RESP_BULK ||
            ek_msg_resp_arg(msg, (size_t)i, &data, &len) != EK_OK) /* EK_EEMPTY: a null */
            return -1;
        total += len;
    }
    *bytes = total;
    return (long)n;
}

/* Copies the n bulk strings of msg (checked by ekpy__bulks_size). */
static void ekpy__bulks_copy(const ek_msg *msg, long n, size_t *lens, char *buf)
{
    size_t off = 0;
    for (long i = 0; i < n; i++) {
        const uint8_t *data;
        size_t len;
        ek_msg_resp_arg(msg, (size_t)i, &data, &len);
        memcpy(buf + off, data, len);
        lens[i] = len;
        off += len;
    }
}

/* Adds slot s's request to b, with its form. -1: out of memory. */
static int ekpy__batch_add(ekpy_batch *b, ekpy__slot *s)
{
    size_t i = b->n;
    if (i == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        void *r = realloc(b->reqs, cap * sizeof *b->reqs);
        if (r) b->reqs = r;
        void *c = realloc(b->counts, cap * sizeof *b->counts);
        if (c) b->counts = c;
        void *l = realloc(b->slots, cap * sizeof *b->slots);
        if (l) b->slots = l;
        if (!r || !c || !l) return -1;
        b->cap = cap;
    }
    b->reqs[i] = s->req;
    b->slots[i] = s;
    b->n = i + 1;
    long count = EKPY_REQ_OTHER;
    if (s->dropped) {
        count = EKPY_REQ_GONE;
    } else if (ek_msg_kind(s->req) == EK_MSG_BYTES) {
        count = EKPY_REQ_BYTES;
    } else if (ek_msg_kind(s->req) == EK_MSG_RESP && ek_msg_resp_type(s->req) == EK_RESP_ARRAY) {
        /* Its arguments are checked as they are read (ekpy__py_request). */
        int64_t n = ek_msg_resp_len(s->req); /* EK_EEMPTY (< 0) for a null array */
        if (n >= 0 && n <= LONG_MAX) count = (long)n;
    }
    b->counts[i] = count;
    return 0;
}

/*
 * The batch through the Python C API (the glue is compiled into the cffi
 * extension, so Python.h is here; limited API). cffi converts a list into a C
 * array item by item and makes a Python object of each C value, which is
 * what a batch's requests and answers cost most; these two functions read and
 * make the Python values themselves. ekpy_io_install puts them in a module
 * (_service) as _c_requests and _c_reply; the batch travels as its address.
 * Both run inside ekpy_svc_batch (the thread of ekiden.run, with the GIL).
 */
static PyObject *ekpy__simple_type; /* ekiden.resp.Simple */
static PyObject *ekpy__error_type;  /* ekiden.resp.Error */
static PyObject *ekpy__coro_type;   /* types.CoroutineType */
static PyObject *ekpy__pre_type;    /* _service._Pre */
static PyObject *ekpy__skip;        /* _service._SKIP: a request whose caller is gone */
static PyObject *ekpy__other;       /* _service._OTHER: one that Python converts */

/* _c_setup(Simple, Error, CoroutineType, _Pre, _SKIP, _OTHER): the types and
 * markers the batch functions need. */
static PyObject *ekpy__py_setup(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *simple, *error, *coro, *pre, *skip, *other;
    if (!PyArg_ParseTuple(args, "OOOOOO", &simple, &error, &coro, &pre, &skip, &other)) return NULL;
    PyObject **slots[] = {&ekpy__simple_type, &ekpy__error_type, &ekpy__coro_type,
                          &ekpy__pre_type,    &ekpy__skip,       &ekpy__other};
    PyObject *values[] = {simple, error, coro, pre, skip, other};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        Py_INCREF(values[i]);
        Py_XDECREF(*slots[i]);
        *slots[i] = values[i];
    }
    Py_RETURN_NONE;
}

/* The batch Python is running on this thread (set by ekpy__flush around its
 * call; a nested flush saves and restores it), so that the two functions take
 * no address. */
static _Thread_local ekpy_batch *ekpy__batch;

static ekpy_batch *ekpy__current_batch(void)
{
    if (!ekpy__batch) PyErr_SetString(PyExc_RuntimeError, "no batch is running on this thread");
    return ekpy__batch;
}

/* The Python value of request i (a new reference; NULL with an exception). */
static PyObject *ekpy__py_request(ekpy_batch *b, size_t i)
{
    long c = b->counts[i];
    const uint8_t *data;
    size_t len;
    if (c == EKPY_REQ_BYTES) {
        if (ek_msg_data(b->reqs[i], &data, &len) != EK_OK) len = 0, data = NULL;
        return PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)len);
    }
    if (c < 0) {
        PyObject *marker = c == EKPY_REQ_GONE ? ekpy__skip : ekpy__other;
        Py_INCREF(marker);
        return marker;
    }
    PyObject *list = PyList_New((Py_ssize_t)c);
    if (!list) return NULL;
    for (long k = 0; k < c; k++) {
        if (ek_msg_resp_arg_type(b->reqs[i], (size_t)k) != EK_RESP_BULK ||
            ek_msg_resp_arg(b->reqs[i], (size_t)k, &data, &len) != EK_OK) {
            /* Not an array of bulk strings (another type, a null): Python
             * converts it the general way. */
            Py_DECREF(list);
            b->counts[i] = EKPY_REQ_OTHER;
            Py_INCREF(ekpy__other);
            return ekpy__other;
        }
        PyObject *arg = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)len);
        if (!arg) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SetItem(list, (Py_ssize_t)k, arg); /* steals arg */
    }
    return list;
}

/* _c_requests() -> (list of one value per request of the current batch, markers):
 * the requests as Python values (see _service._Impl._run_batch), _OTHER where
 * Python converts the message itself and _SKIP where the caller is gone;
 * markers is how many of those there are. */
static PyObject *ekpy__py_requests(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    ekpy_batch *b = ekpy__current_batch();
    if (!b) return NULL;
    PyObject *list = PyList_New((Py_ssize_t)b->n);
    if (!list) return NULL;
    long markers = 0;
    for (size_t i = 0; i < b->n; i++) {
        PyObject *v = ekpy__py_request(b, i);
        if (!v) {
            Py_DECREF(list);
            return NULL;
        }
        if (b->counts[i] < 0 && b->counts[i] != EKPY_REQ_BYTES) markers++;
        PyList_SetItem(list, (Py_ssize_t)i, v);
    }
    PyObject *count = PyLong_FromLong(markers), *out = count ? PyTuple_New(2) : NULL;
    if (!out) {
        Py_XDECREF(count);
        Py_DECREF(list);
        return NULL;
    }
    PyTuple_SetItem(out, 0, list); /* steals both */
    PyTuple_SetItem(out, 1, count);
    return out;
}

/* A _Pre's fields; -1 with an exception when v is not one. */
static int ekpy__pre_fields(PyObject *v, long *kind, PyObject **val)
{
    PyObject *k = PyObject_GetAttrString(v, "kind");
    if (!k) return -1;
    *kind = PyLong_AsLong(k);
    Py_DECREF(k);
    if (*kind == -1 && PyErr_Occurred()) return -1;
    *val = PyObject_GetAttrString(v, "val");
    return *val ? 0 : -1;
}

/* One answer, a Python value, as slot s's result: the common RESP and byte
 * values here (the common replies as the shared messages: no allocation), a
 * _Pre as what it says, anything else through slow(value) -> _Pre. */
static void ekpy__py_answer(ekpy__slot *s, PyObject *v, int resp, int bytes_ok, PyObject *slow)
{
    ek_msg *m = NULL;
    int rc = EK_OK;
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyBytes_Type && (resp || bytes_ok)) {
        char *data = PyBytes_AsString(v);
        size_t len = (size_t)PyBytes_Size(v);
        rc = resp ? ek_msg_resp_string(EK_RESP_BULK, data, len, &m)
                  : ek_msg_bytes_copy(data, len, &m);
        goto done;
    }
    if (resp && v == Py_None) {
        rc = ek_msg_resp_shared(EK_RESP_SHARED_NULL, &m);
        goto done;
    }
    if (resp && (PyObject *)t == ekpy__simple_type) {
        PyObject *ascii = PyUnicode_AsASCIIString(v);
        if (ascii) {
            char *data = PyBytes_AsString(ascii);
            size_t len = (size_t)PyBytes_Size(ascii);
            if (len == 2 && memcmp(data, "OK", 2) == 0)
                rc = ek_msg_resp_shared(EK_RESP_SHARED_OK, &m);
            else if (len == 4 && memcmp(data, "PONG", 4) == 0)
                rc = ek_msg_resp_shared(EK_RESP_SHARED_PONG, &m);
            else
                rc = ek_msg_resp_string(EK_RESP_SIMPLE, data, len, &m);
            Py_DECREF(ascii);
            goto done;
        }
        PyErr_Clear(); /* not ASCII: the general way */
    }
    if (resp && t == &PyLong_Type) {
        int overflow = 0;
        long long i = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (!overflow && !(i == -1 && PyErr_Occurred())) {
            rc = i == 0 || i == 1
                     ? ek_msg_resp_shared(i ? EK_RESP_SHARED_ONE : EK_RESP_SHARED_ZERO, &m)
                     : ek_msg_resp_integer((int64_t)i, &m);
            goto done;
        }
        PyErr_Clear(); /* a big number: the general way */
    }
    PyObject *pre = NULL;
    if ((PyObject *)t != ekpy__pre_type) {
        pre = PyObject_CallFunctionObjArgs(slow, v, NULL);
        if (!pre) {
            PyErr_Clear(); /* (slow catches everything: a bug) */
            rc = EK_EIO;
            goto done;
        }
        v = pre;
    }
    long kind = EKPY_R_FAIL;
    PyObject *val = NULL;
    if (ekpy__pre_fields(v, &kind, &val) != 0) {
        kind = EKPY_R_FAIL;
        rc = EK_EIO;
    } else if (kind == EKPY_R_FAIL) {
        rc = (int)PyLong_AsLong(val);
        if (rc >= 0) rc = EK_EIO;
    } else if (kind == EKPY_R_MSG) {
        m = PyLong_AsVoidPtr(val);
        if (!m) rc = EK_EIO;
    } else if (kind == EKPY_R_TASK) {
        s->task = PyLong_AsVoidPtr(val);
        s->state = EKPY_SLOT_TASK;
    }
    if (PyErr_Occurred()) PyErr_Clear();
    Py_XDECREF(val);
    Py_XDECREF(pre);
    /* A task's slot steps it from now on; a skipped one (its caller is gone)
     * stays queued: the flush frees it. */
    if (kind == EKPY_R_TASK || kind == EKPY_R_SKIP) return;
done:
    if (rc != EK_OK && m) {
        ek_msg_free(m);
        m = NULL;
    }
    s->resp = m;
    s->rc = rc;
    s->state = EKPY_SLOT_DONE;
}

/* _c_reply(answers, flags, slow): one answer per request of the current batch
 * (a list), flags 1 for RESP values, 2 for bytes as byte messages; slow(value)
 * gives the _Pre of any other value. (The arguments are read by hand:
 * PyArg_ParseTuple costs more than the rest of a one-request batch.) */
static PyObject *ekpy__py_reply(PyObject *self, PyObject *args)
{
    (void)self;
    if (PyTuple_Size(args) != 3) {
        PyErr_SetString(PyExc_TypeError, "_c_reply(answers, flags, slow)");
        return NULL;
    }
    PyObject *answers = PyTuple_GetItem(args, 0), *slow = PyTuple_GetItem(args, 2);
    long flags = PyLong_AsLong(PyTuple_GetItem(args, 1));
    if (flags == -1 && PyErr_Occurred()) return NULL;
    if (!PyList_Check(answers)) {
        PyErr_SetString(PyExc_TypeError, "_c_reply: answers must be a list");
        return NULL;
    }
    ekpy_batch *b = ekpy__current_batch();
    if (!b) return NULL;
    if (b->replied || (size_t)PyList_Size(answers) != b->n) {
        PyErr_SetString(PyExc_ValueError, "a batch is answered once, with one answer per request");
        return NULL;
    }
    b->replied = 1;
    for (size_t i = 0; i < b->n; i++)
        ekpy__py_answer(b->slots[i], PyList_GetItem(answers, (Py_ssize_t)i), flags & 1, flags & 2,
                        slow);
    Py_RETURN_NONE;
}

/*
 * `await _PENDING` (_runtime._Pending, whose __await__ is _c_wait): suspends
 * the task once. A Python __await__ is a generator function, so every park
 * made a generator and its frame; _c_wait makes one of these instead, an
 * iterator that yields None once and then stops (no exception object: a NULL
 * from tp_iternext with no error set). A throw() or close() into it (cancel)
 * is raised at the await itself: it has neither method.
 */
typedef struct {
    PyObject_HEAD int yielded;
} ekpy__wait;

static PyObject *ekpy__wait_type;

static PyObject *ekpy__wait_next(PyObject *self)
{
    ekpy__wait *w = (ekpy__wait *)self;
    if (w->yielded) return NULL;
    w->yielded = 1;
    Py_INCREF(Py_None);
    return Py_None;
}

static PyObject *ekpy__wait_iter(PyObject *self)
{
    Py_INCREF(self);
    return self;
}

static void ekpy__wait_dealloc(PyObject *self)
{
    PyObject *type = (PyObject *)Py_TYPE(self);
    PyObject_Free(self);
    Py_DECREF(type); /* a heap type's instances hold a reference to it */
}

static PyType_Slot ekpy__wait_slots[] = {
    {Py_tp_iter, (void *)ekpy__wait_iter},
    {Py_tp_iternext, (void *)ekpy__wait_next},
    {Py_tp_dealloc, (void *)ekpy__wait_dealloc},
    {0, NULL},
};

static PyType_Spec ekpy__wait_spec = {
    "ekiden._runtime._Wait", sizeof(ekpy__wait), 0, Py_TPFLAGS_DEFAULT, ekpy__wait_slots,
};

/* _c_wait() -> a new one-yield iterator (see above). */
static PyObject *ekpy__py_wait(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    ekpy__wait *w = PyObject_New(ekpy__wait, (PyTypeObject *)ekpy__wait_type);
    if (!w) return NULL;
    w->yielded = 0;
    return (PyObject *)w;
}

/*
 * The Python API of 3.10 that the limited API cffi compiles against (3.2's)
 * does not show: PyIter_Send and the am_send slot (both in the stable ABI
 * since 3.10). Before 3.10 a task's step goes through Task._step and the
 * awaitables below through tp_iternext.
 */
#if PY_VERSION_HEX >= 0x030A0000
#define EKPY_HAVE_SEND 1
#ifndef Py_am_send
typedef enum { PYGEN_RETURN = 0, PYGEN_ERROR = -1, PYGEN_NEXT = 1 } PySendResult;
PyAPI_FUNC(PySendResult) PyIter_Send(PyObject *, PyObject *, PyObject **);
#define Py_am_send 81
#endif
#ifndef METH_FASTCALL
#define METH_FASTCALL 0x0080
#endif
#else
#define EKPY_HAVE_SEND 0
typedef enum { PYGEN_RETURN = 0, PYGEN_ERROR = -1, PYGEN_NEXT = 1 } PySendResult;
#endif

/* Names and functions of _runtime and _net the C side calls (set up once). */
static PyObject *ekpy__s_step, *ekpy__s_ended, *ekpy__s_on_drop, *ekpy__s_release;
static PyObject *ekpy__on_error; /* _runtime._on_callback_error(type, value, tb) */
static PyObject *ekpy__io_error; /* _net._io_error(code): raises */

/* An exception that must not cross into C (a bug of the package): reported
 * through _on_callback_error, as cffi's onerror does for a callback. */
static void ekpy__report(void)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (ekpy__on_error && t) {
        PyObject *r = PyObject_CallFunctionObjArgs(ekpy__on_error, t, v ? v : Py_None,
                                                   tb ? tb : Py_None, NULL);
        if (r) {
            Py_DECREF(r);
        } else {
            PyErr_Print();
        }
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
    } else if (t) {
        PyErr_Restore(t, v, tb);
        PyErr_Print();
    }
}

/*
 * A Python task (Task, _runtime.py) as a local C task: its state is a _CTask
 * object, which holds the Task, its coroutine and its cffi handle (what
 * current_task() reads). The poll is C: with the GIL, it steps the coroutine
 * itself (PyIter_Send) while `fast` is set, which Task keeps true while
 * nothing but a send is to be done (no cancellation asked, no deadline, a
 * waker taken); otherwise, and for whatever the step ends with (a return, an
 * exception, a suspension after which `fast` was cleared), it calls the
 * Task's _step or _ended. A step that suspends with `fast` set enters no
 * Python frame of the package and makes no Python object.
 */
typedef struct {
    PyObject_HEAD PyObject *task; /* the Task; NULL once dropped */
    PyObject *coro;               /* its coroutine; NULL once it ended or was dropped */
    void *handle;                 /* the Task's cffi handle (borrowed: the Task keeps it) */
    int fast;                     /* see above (Task writes it) */
} ekpy__ctask;

static PyObject *ekpy__ctask_type;

static int ekpy__int_result(PyObject *r)
{
    if (!r) {
        ekpy__report();
        return EK_EINVAL;
    }
    long rc = PyLong_AsLong(r);
    Py_DECREF(r);
    if (rc == -1 && PyErr_Occurred()) {
        ekpy__report();
        return EK_EINVAL;
    }
    return (int)rc;
}

/* The exception being raised, normalized, with its traceback (a new reference). */
static PyObject *ekpy__fetch(void)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (v && tb) PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    if (!v) {
        Py_INCREF(Py_None);
        v = Py_None;
    }
    return v;
}

/*
 * _c_call_each(reqs, handler, impl): every request of a (non-batch) handler's
 * batch through the handler, each answer in place of its request in reqs (a
 * _Pre stays as it is), for _c_reply. What _Impl would do per request in
 * Python, in C for the common cases: the call; a coroutine's first step
 * (PyIter_Send: a handler that completes in it raises no StopIteration and
 * enters no frame of the package); a plain value as it is. The rest goes to
 * impl's methods: _stepped(coro, kind, value) for a step that suspended
 * (kind 1), raised (2) or completed after current_task() made the handler's
 * Task (0); _failure(exc) for a call that raised; _value(v) for any other
 * result (an awaitable that is no coroutine, a value of another type).
 * current_task() during the step makes the handler's Task from _c_stepping().
 */
static PyObject *ekpy__s_stepped, *ekpy__s_failure, *ekpy__s_value;

/* Whether a handler's value of type t is taken as it is (never awaitable). */
static int ekpy__plain(PyObject *v)
{
    PyObject *t = (PyObject *)Py_TYPE(v);
    return v == Py_None || PyBytes_CheckExact(v) || t == ekpy__simple_type ||
           t == ekpy__error_type || PyLong_CheckExact(v) || PyUnicode_CheckExact(v) ||
           PyList_CheckExact(v) || PyTuple_CheckExact(v) || PyDict_CheckExact(v) ||
           PyFloat_CheckExact(v) || PyBool_Check(v) || PyByteArray_CheckExact(v);
}

/* The coroutine _c_call_each is stepping on this thread (borrowed; NULL
 * outside a step), and whether current_task() asked for it (_c_stepping) during
 * the step: then the handler's Task was made, and _stepped finishes the step. */
static _Thread_local PyObject *ekpy__stepping;
static _Thread_local int ekpy__stepping_taken;

/* _c_stepping() -> the coroutine being stepped, or None (see above). */
static PyObject *ekpy__py_stepping(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyObject *c = ekpy__stepping ? ekpy__stepping : Py_None;
    if (ekpy__stepping) ekpy__stepping_taken = 1;
    Py_INCREF(c);
    return c;
}

/* A coroutine's first step (consumes coro): its answer, a new reference (NULL
 * with an exception only for a failure of the package itself). */
static PyObject *ekpy__first_step(PyObject *impl, PyObject *coro)
{
    PyObject *res = NULL, *kind = NULL, *out = NULL;
    PyObject *prev = ekpy__stepping;
    int prev_taken = ekpy__stepping_taken;
    ekpy__stepping = coro;
    ekpy__stepping_taken = 0;
#if EKPY_HAVE_SEND
    PySendResult r = PyIter_Send(coro, Py_None, &res);
#else
    PySendResult r = PYGEN_NEXT;
    res = PyObject_CallMethod(coro, "send", "O", Py_None);
    if (!res) {
        if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
            PyObject *stop = ekpy__fetch();
            res = PyObject_GetAttrString(stop, "value");
            Py_DECREF(stop);
            r = PYGEN_RETURN;
        } else {
            r = PYGEN_ERROR;
        }
    }
    if (!res && r == PYGEN_RETURN) r = PYGEN_ERROR;
#endif
    if (r == PYGEN_ERROR) res = ekpy__fetch();
    int taken = ekpy__stepping_taken;
    ekpy__stepping = prev;
    ekpy__stepping_taken = prev_taken;
    if (r == PYGEN_RETURN && !taken) { /* the common case: done */
        Py_DECREF(coro);
        return res;
    }
    kind = PyLong_FromLong(r == PYGEN_RETURN ? 0 : r == PYGEN_NEXT ? 1 : 2);
    if (kind) out = PyObject_CallMethodObjArgs(impl, ekpy__s_stepped, coro, kind, res, NULL);
    Py_XDECREF(kind);
    Py_XDECREF(res);
    Py_DECREF(coro);
    return out;
}

static PyObject *ekpy__py_call_each(PyObject *self, PyObject *args)
{
    (void)self;
    if (PyTuple_Size(args) != 3) {
        PyErr_SetString(PyExc_TypeError, "_c_call_each(reqs, handler, impl)");
        return NULL;
    }
    PyObject *reqs = PyTuple_GetItem(args, 0), *handler = PyTuple_GetItem(args, 1),
             *impl = PyTuple_GetItem(args, 2);
    if (!PyList_Check(reqs)) {
        PyErr_SetString(PyExc_TypeError, "_c_call_each: reqs must be a list");
        return NULL;
    }
    Py_ssize_t n = PyList_Size(reqs);
    for (Py_ssize_t i = 0; i < n && i < PyList_Size(reqs); i++) {
        PyObject *req = PyList_GetItem(reqs, i);
        if ((PyObject *)Py_TYPE(req) == ekpy__pre_type) continue;
        Py_INCREF(req);
        PyObject *v = PyObject_CallFunctionObjArgs(handler, req, NULL);
        Py_DECREF(req);
        if (!v) {
            PyObject *exc = ekpy__fetch();
            v = PyObject_CallMethodObjArgs(impl, ekpy__s_failure, exc, NULL);
            Py_DECREF(exc);
        } else if ((PyObject *)Py_TYPE(v) == ekpy__coro_type) {
            v = ekpy__first_step(impl, v);
        } else if (!ekpy__plain(v)) {
            PyObject *w = PyObject_CallMethodObjArgs(impl, ekpy__s_value, v, NULL);
            Py_DECREF(v);
            v = w;
        }
        if (!v) return NULL; /* a failure of the package's own methods */
        if (PyList_SetItem(reqs, i, v) != 0) return NULL; /* steals v */
    }
    Py_RETURN_NONE;
}

static int ekpy__ctask_step(ekpy__ctask *ct)
{
    PyObject *task = ct->task;
    if (!task) return EK_OK;
#if EKPY_HAVE_SEND
    if (ct->fast && ct->coro) {
        PyObject *res = NULL;
        PySendResult r = PyIter_Send(ct->coro, Py_None, &res);
        if (r == PYGEN_NEXT) {
            Py_DECREF(res);
            if (ct->fast) return EK_PENDING;
            /* Cancelled, or given a deadline, during the step: Task's checks. */
            return ekpy__int_result(PyObject_CallMethodObjArgs(task, ekpy__s_step, Py_True, NULL));
        }
        PyObject *exc = r == PYGEN_ERROR ? ekpy__fetch() : NULL;
        Py_CLEAR(ct->coro);
        PyObject *out = PyObject_CallMethodObjArgs(task, ekpy__s_ended, res ? res : Py_None,
                                                   exc ? exc : Py_None, NULL);
        Py_XDECREF(res);
        Py_XDECREF(exc);
        return ekpy__int_result(out);
    }
#endif
    int rc = ekpy__int_result(PyObject_CallMethodObjArgs(task, ekpy__s_step, Py_False, NULL));
    if (rc != EK_PENDING) Py_CLEAR(ct->coro);
    return rc;
}

/*
 * The GIL of a current-thread runtime's thread is leased: inside
 * ekpy_join_wait with a lease (run() on a current-thread runtime), the first
 * task poll takes it and keeps it after the poll, for the next ones; the
 * runtime's park hook (ekpy_builder_lease) gives it back before the thread
 * sleeps, and ekpy_join_wait before it returns. So the polls that one wake-up
 * runs (one per connection with data, at 100 connections) take the GIL once,
 * not once each. Between them the thread runs the runtime's C side with the
 * GIL (timers, the driver's turn without waiting, C tasks): nothing there
 * waits on a thread that calls into Python (a current-thread runtime has no
 * workers), and a thread waiting for the GIL gets it at the next park, or
 * from the eval loop's switch interval while a poll runs Python. A worker
 * runtime's thread parks without the hook: its polls take the GIL each.
 */
static _Thread_local int ekpy__lease_ok; /* inside ekpy_join_wait with a lease */
static _Thread_local int ekpy__leased;   /* the lease holds the GIL now */

static void ekpy__lease_end(void)
{
    if (ekpy__leased) {
        ekpy__leased = 0;
        PyEval_SaveThread();
    }
}

static void ekpy__park_hook(void *data)
{
    (void)data;
    ekpy__lease_end();
}

/* The park hook that ends the lease, on a builder of a current-thread runtime. */
int ekpy_builder_lease(ek_builder *b)
{
    return ek_builder_on_thread_park(b, ekpy__park_hook, NULL);
}

/* ek_join_wait, the thread's GIL leased to its task polls if `lease` (a
 * runtime built through ekpy_builder_lease); called with the GIL released
 * (cffi releases it around this call), and returns so. */
int ekpy_join_wait(ek_join *j, void **out, int lease)
{
    int prev = ekpy__lease_ok;
    ekpy__lease_ok = lease;
    int rc = ek_join_wait(j, out);
    ekpy__lease_end();
    ekpy__lease_ok = prev;
    return rc;
}

static int ekpy__ctask_poll(void *state, ek_cx *cx, void **out)
{
    ekpy__ctask *ct = state;
    *out = NULL;
    int gil = !ekpy__lease_ok;
    PyGILState_STATE g = PyGILState_UNLOCKED;
    if (gil) {
        g = PyGILState_Ensure();
    } else if (!ekpy__leased) {
        PyEval_RestoreThread(PyGILState_GetThisThreadState());
        ekpy__leased = 1;
    }
    ek_cx *prev_cx = ekpy__cx;
    void *prev_task = ekpy__task;
    ekpy__cx = cx;
    ekpy__task = ct->handle;
    int rc = ekpy__ctask_step(ct);
    ekpy__cx = prev_cx;
    ekpy__task = prev_task;
    if (gil) PyGILState_Release(g);
    return rc;
}

/* The C task is gone (after its last poll, or dropped unpolled): Task._on_drop,
 * then the C task's reference goes. Runs on the task's thread. */
static void ekpy__ctask_drop(void *state)
{
    ekpy__ctask *ct = state;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *task = ct->task;
    if (task) {
        PyObject *r = PyObject_CallMethodObjArgs(task, ekpy__s_on_drop, NULL);
        if (r) {
            Py_DECREF(r);
        } else {
            ekpy__report();
        }
    }
    Py_CLEAR(ct->coro);
    Py_CLEAR(ct->task);
    Py_DECREF((PyObject *)ct);
    PyGILState_Release(g);
}

static void ekpy__ctask_dealloc(PyObject *self)
{
    ekpy__ctask *ct = (ekpy__ctask *)self;
    PyObject *type = (PyObject *)Py_TYPE(self);
    Py_XDECREF(ct->coro);
    Py_XDECREF(ct->task);
    PyObject_Free(self);
    Py_DECREF(type);
}

static PyMemberDef ekpy__ctask_members[] = {
    {"fast", T_INT, offsetof(ekpy__ctask, fast), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot ekpy__ctask_slots[] = {
    {Py_tp_dealloc, (void *)ekpy__ctask_dealloc},
    {Py_tp_members, (void *)ekpy__ctask_members},
    {0, NULL},
};

static PyType_Spec ekpy__ctask_spec = {
    "ekiden._runtime._CTask", sizeof(ekpy__ctask), 0, Py_TPFLAGS_DEFAULT, ekpy__ctask_slots,
};

/* _c_spawn(task, coro, handle, runtime, join) -> _CTask, or the EK_E* code (an
 * int) if the runtime refused (its drop has run: Task._on_drop). handle,
 * runtime and join are addresses (join may be 0). */
static PyObject *ekpy__py_spawn(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *task, *coro, *handle, *rt, *join;
    if (!PyArg_UnpackTuple(args, "_c_spawn", 5, 5, &task, &coro, &handle, &rt, &join)) return NULL;
    void *h = PyLong_AsVoidPtr(handle), *r = PyLong_AsVoidPtr(rt), *j = PyLong_AsVoidPtr(join);
    if (PyErr_Occurred()) return NULL;
    ekpy__ctask *ct = PyObject_New(ekpy__ctask, (PyTypeObject *)ekpy__ctask_type);
    if (!ct) return NULL;
    Py_INCREF(task);
    Py_INCREF(coro);
    ct->task = task;
    ct->coro = coro;
    ct->handle = h;
    ct->fast = 0;
    Py_INCREF((PyObject *)ct); /* the C task's reference (ekpy__ctask_drop) */
    PyThreadState *ts = PyEval_SaveThread();
    int rc = ek_spawn_local(r, ekpy__ctask_poll, ekpy__ctask_drop, ct, NULL, j);
    PyEval_RestoreThread(ts);
    if (rc < 0) {
        Py_DECREF((PyObject *)ct);
        return PyLong_FromLong(rc);
    }
    return (PyObject *)ct;
}

/*
 * `await stream.read()` and `await stream.write_all(bytes)` (_net._Stream) as C
 * awaitables: the object is its own iterator; its send (am_send, tp_iternext,
 * and a send/throw/close trio, so that it is also a coroutine to whoever steps
 * it by hand) does the operation with the current step's context. When the
 * data is there (or the write goes through) it returns at once, without
 * suspending and without a Python frame; on pending it counts itself in the
 * stream's `busy` (close() waits for it) and yields; the next send tries again.
 * The Python side it replaces was a coroutine whose loop made a cffi call per
 * try and a memoryview slice per read.
 */
typedef struct {
    PyObject_HEAD PyObject *stream; /* the _Stream (keeps io alive) */
    ekpy_stream *io;
    PyObject *data; /* write_all: the bytes; NULL for a read */
    Py_ssize_t off;
    int waiting; /* suspended, counted in io->busy */
    int done;
} ekpy__op;

static PyObject *ekpy__op_type;

/* Freed operations, kept for the next ones (a read and a write per round trip:
 * no allocator call for either). Linked through `stream`; only touched with
 * the GIL held. */
#define EKPY_OP_FREE_MAX 64
static ekpy__op *ekpy__op_free;
static int ekpy__op_nfree;

/* Back from a suspension: no longer counted; the last one out of a closing
 * stream releases it (_Stream._release). */
static int ekpy__op_leave(ekpy__op *op)
{
    if (!op->waiting) return 0;
    op->waiting = 0;
    ekpy_stream *io = op->io;
    if (--io->busy == 0 && io->closing) {
        PyObject *r = PyObject_CallMethodObjArgs(op->stream, ekpy__s_release, NULL);
        if (!r) return -1;
        Py_DECREF(r);
    }
    return 0;
}

static PySendResult ekpy__op_send(PyObject *self, PyObject *arg, PyObject **result)
{
    (void)arg;
    ekpy__op *op = (ekpy__op *)self;
    *result = NULL;
    if (op->done) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse an already awaited stream operation");
        return PYGEN_ERROR;
    }
    if (ekpy__op_leave(op) != 0) {
        op->done = 1;
        return PYGEN_ERROR;
    }
    long r;
    if (!op->data) {
        r = ekpy_io_read(op->io);
        if (r >= 0) {
            op->done = 1;
            *result = PyBytes_FromStringAndSize(op->io->buf, (Py_ssize_t)r);
            return *result ? PYGEN_RETURN : PYGEN_ERROR;
        }
    } else {
        char *p = PyBytes_AsString(op->data);
        Py_ssize_t size = PyBytes_Size(op->data);
        for (;;) {
            if (op->off >= size) {
                op->done = 1;
                Py_INCREF(Py_None);
                *result = Py_None;
                return PYGEN_RETURN;
            }
            r = ekpy_io_write(op->io, p + op->off, (size_t)(size - op->off));
            if (r < 0) break;
            op->off += r;
        }
    }
    if (r == EKPY_PENDING) {
        op->waiting = 1;
        op->io->busy++;
        Py_INCREF(Py_None);
        *result = Py_None;
        return PYGEN_NEXT;
    }
    op->done = 1;
    PyObject *x = PyObject_CallFunction(ekpy__io_error, "l", r);
    if (x) { /* (it raises) */
        Py_DECREF(x);
        PyErr_SetString(PyExc_RuntimeError, "ekiden: _io_error returned");
    }
    return PYGEN_ERROR;
}

/* A return value as StopIteration (NULL with no exception for None). */
static PyObject *ekpy__stop(PyObject *value)
{
    if (value != Py_None) {
        PyObject *t = PyTuple_Pack(1, value); /* a tuple value must not be unpacked */
        if (t) {
            PyErr_SetObject(PyExc_StopIteration, t);
            Py_DECREF(t);
        }
    }
    Py_DECREF(value);
    return NULL;
}

static PyObject *ekpy__op_next(PyObject *self)
{
    PyObject *res;
    PySendResult r = ekpy__op_send(self, Py_None, &res);
    if (r == PYGEN_NEXT) return res;
    if (r == PYGEN_ERROR) return NULL;
    return ekpy__stop(res);
}

/* send(value): as a coroutine's, a return is always a StopIteration. */
static PyObject *ekpy__op_send_m(PyObject *self, PyObject *value)
{
    (void)value;
    PyObject *res = ekpy__op_next(self);
    if (!res && !PyErr_Occurred()) PyErr_SetNone(PyExc_StopIteration);
    return res;
}

static PyObject *ekpy__op_throw(PyObject *self, PyObject *args)
{
    ekpy__op *op = (ekpy__op *)self;
    PyObject *typ, *val = NULL, *tb = NULL;
    if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb)) return NULL;
    op->done = 1;
    if (ekpy__op_leave(op) != 0) return NULL;
    if (PyExceptionInstance_Check(typ)) {
        if (tb && tb != Py_None) PyException_SetTraceback(typ, tb);
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    } else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, val ? val : Py_None);
    } else {
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
    }
    return NULL;
}

static PyObject *ekpy__op_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    ekpy__op *op = (ekpy__op *)self;
    op->done = 1;
    if (ekpy__op_leave(op) != 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *ekpy__op_self(PyObject *self)
{
    Py_INCREF(self);
    return self;
}

static void ekpy__op_dealloc(PyObject *self)
{
    ekpy__op *op = (ekpy__op *)self;
    PyObject *type = (PyObject *)Py_TYPE(self);
    if (op->waiting) { /* dropped while suspended (never closed) */
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        if (ekpy__op_leave(op) != 0) ekpy__report();
        PyErr_Restore(t, v, tb);
    }
    Py_XDECREF(op->stream);
    Py_XDECREF(op->data);
    if (ekpy__op_nfree < EKPY_OP_FREE_MAX) { /* kept for the next operation */
        op->stream = (PyObject *)ekpy__op_free;
        ekpy__op_free = op;
        ekpy__op_nfree++;
    } else {
        PyObject_Free(self);
    }
    Py_DECREF(type);
}

static PyMethodDef ekpy__op_methods[] = {
    {"send", ekpy__op_send_m, METH_O, NULL},
    {"throw", ekpy__op_throw, METH_VARARGS, NULL},
    {"close", ekpy__op_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot ekpy__op_slots[] = {
    {Py_tp_dealloc, (void *)ekpy__op_dealloc}, {Py_tp_iter, (void *)ekpy__op_self},
    {Py_tp_iternext, (void *)ekpy__op_next},   {Py_am_await, (void *)ekpy__op_self},
#if EKPY_HAVE_SEND
    {Py_am_send, (void *)ekpy__op_send},
#endif
    {Py_tp_methods, (void *)ekpy__op_methods}, {0, NULL},
};

static PyType_Spec ekpy__op_spec = {
    "ekiden._net._StreamOp", sizeof(ekpy__op), 0, Py_TPFLAGS_DEFAULT, ekpy__op_slots,
};

/* A new operation of stream over io (data: the bytes of a write_all, NULL for
 * a read); NULL with an exception. */
static PyObject *ekpy__op_make(PyObject *stream, ekpy_stream *io, PyObject *data)
{
    ekpy__op *op = ekpy__op_free;
    if (op) {
        ekpy__op_free = (ekpy__op *)op->stream;
        ekpy__op_nfree--;
        PyObject_Init((PyObject *)op, (PyTypeObject *)ekpy__op_type);
    } else if (!(op = PyObject_New(ekpy__op, (PyTypeObject *)ekpy__op_type))) {
        return NULL;
    }
    Py_INCREF(stream);
    Py_XINCREF(data);
    op->stream = stream;
    op->io = io;
    op->data = data;
    op->off = 0;
    op->waiting = 0;
    op->done = 0;
    return (PyObject *)op;
}

static PyObject *ekpy__op_new(PyObject *stream, PyObject *addr, PyObject *data)
{
    ekpy_stream *io = PyLong_AsVoidPtr(addr);
    if (!io) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "no stream");
        return NULL;
    }
    return ekpy__op_make(stream, io, data);
}

#if EKPY_HAVE_SEND
/* _c_read(stream, io_address) -> a read of up to io->len bytes, awaitable. */
static PyObject *ekpy__py_read(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
    (void)self;
    if (n != 2) {
        PyErr_SetString(PyExc_TypeError, "_c_read(stream, io)");
        return NULL;
    }
    return ekpy__op_new(args[0], args[1], NULL);
}

/* _c_write_all(stream, io_address, data: bytes) -> awaitable. */
static PyObject *ekpy__py_write_all(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
    (void)self;
    if (n != 3 || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "_c_write_all(stream, io, data: bytes)");
        return NULL;
    }
    return ekpy__op_new(args[0], args[1], args[2]);
}
#define EKPY_OP_CALL METH_FASTCALL
#else
static PyObject *ekpy__py_read(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *stream, *addr;
    if (!PyArg_UnpackTuple(args, "_c_read", 2, 2, &stream, &addr)) return NULL;
    return ekpy__op_new(stream, addr, NULL);
}

static PyObject *ekpy__py_write_all(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *stream, *addr, *data;
    if (!PyArg_UnpackTuple(args, "_c_write_all", 3, 3, &stream, &addr, &data)) return NULL;
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "_c_write_all(stream, io, data: bytes)");
        return NULL;
    }
    return ekpy__op_new(stream, addr, data);
}
#define EKPY_OP_CALL METH_VARARGS
#endif

/*
 * The C base of every resource of _net (_Resource): for a stream it holds the
 * address of its ekpy_stream and its read-ahead bytearray (_rbuf, a member),
 * so that `stream.read()` and `stream.write_all(bytes)` are C methods
 * (_c_read_m, _c_write_all_m, which _Stream names read and write_all): the
 * common case, a read of the stream's read size with nothing read ahead and a
 * write_all of bytes, makes the C awaitable above with no Python frame of the
 * package (the call is a method descriptor's, so no bound method is made
 * either); anything else (another size, bytes read ahead, another buffer
 * type, keywords) calls the Python method (_read_py, _write_all_py), which
 * has every case. Other resources leave io NULL and never call these.
 * Invariants: io is set once (_c_attach) and stays valid while the object
 * lives (the stream's _io owns the memory); rbuf is a bytearray, which holds
 * no references, so the base needs no GC support of its own (the Python
 * subclasses have it, for their slots).
 */
typedef struct {
    PyObject_HEAD ekpy_stream *io;
    PyObject *rbuf;
} ekpy__res;

static PyObject *ekpy__res_type;
static PyObject *ekpy__s_read_py, *ekpy__s_write_all_py;
#define EKPY_READ_CHUNK 65536 /* _net._READ_CHUNK: read()'s default size */

static void ekpy__res_dealloc(PyObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    Py_CLEAR(((ekpy__res *)self)->rbuf);
    if (PyType_IS_GC(type)) {
        PyObject_GC_Del(self);
    } else {
        PyObject_Free(self);
    }
    Py_DECREF(type);
}

/* _c_attach(io_address): the stream's ekpy_stream, once. */
static PyObject *ekpy__res_attach(PyObject *self, PyObject *addr)
{
    ekpy__res *r = (ekpy__res *)self;
    void *io = PyLong_AsVoidPtr(addr);
    if (!io && PyErr_Occurred()) return NULL;
    if (r->io) {
        PyErr_SetString(PyExc_RuntimeError, "ekiden: a stream's io is set once");
        return NULL;
    }
    r->io = io;
    Py_RETURN_NONE;
}

/* Whether nothing is read ahead (an empty bytearray). */
static int ekpy__res_nothing_ahead(ekpy__res *r)
{
    return r->rbuf && PyByteArray_Check(r->rbuf) && PyByteArray_Size(r->rbuf) == 0;
}

/* Whether n (a read's size argument) is the io's read size. */
static int ekpy__res_is_len(PyObject *n, ekpy_stream *io)
{
    if (!PyLong_CheckExact(n)) return 0; /* a bool, an int subclass: Python decides */
    Py_ssize_t v = PyLong_AsSsize_t(n);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear(); /* out of range: Python raises what it raises */
        return 0;
    }
    return v >= 0 && (size_t)v == io->len;
}

/* The Python method `name` of self with these arguments (the general case). */
static PyObject *ekpy__res_slow(PyObject *self, PyObject *name, PyObject *args, PyObject *kw)
{
    PyObject *m = PyObject_GetAttr(self, name);
    if (!m) return NULL;
    PyObject *res = PyObject_Call(m, args, kw);
    Py_DECREF(m);
    return res;
}

#if EKPY_HAVE_SEND
#ifndef METH_KEYWORDS
#define METH_KEYWORDS 0x0002
#endif
/* The general case from a vectorcall's arguments. */
static PyObject *ekpy__res_slow_v(PyObject *self, PyObject *name, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *tuple = PyTuple_New(nargs), *kw = NULL, *res = NULL;
    if (!tuple) return NULL;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SetItem(tuple, i, args[i]); /* steals */
    }
    Py_ssize_t nkw = kwnames ? PyTuple_Size(kwnames) : 0;
    if (nkw > 0) {
        if (!(kw = PyDict_New())) goto out;
        for (Py_ssize_t i = 0; i < nkw; i++)
            if (PyDict_SetItem(kw, PyTuple_GetItem(kwnames, i), args[nargs + i]) != 0) goto out;
    }
    res = ekpy__res_slow(self, name, tuple, kw);
out:
    Py_DECREF(tuple);
    Py_XDECREF(kw);
    return res;
}

/* read(n=65536) (see above). */
static PyObject *ekpy__res_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
    ekpy__res *r = (ekpy__res *)self;
    ekpy_stream *io = r->io;
    if (io && !kwnames && nargs <= 1 && ekpy__res_nothing_ahead(r) &&
        (nargs == 0 ? io->len == EKPY_READ_CHUNK : ekpy__res_is_len(args[0], io)))
        return ekpy__op_make(self, io, NULL);
    return ekpy__res_slow_v(self, ekpy__s_read_py, args, nargs, kwnames);
}

/* write_all(data) (see above). */
static PyObject *ekpy__res_write_all(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                     PyObject *kwnames)
{
    ekpy__res *r = (ekpy__res *)self;
    if (r->io && !kwnames && nargs == 1 && PyBytes_CheckExact(args[0]))
        return ekpy__op_make(self, r->io, args[0]);
    return ekpy__res_slow_v(self, ekpy__s_write_all_py, args, nargs, kwnames);
}
#define EKPY_RES_CALL (METH_FASTCALL | METH_KEYWORDS)
#else
static PyObject *ekpy__res_read(PyObject *self, PyObject *args, PyObject *kw)
{
    ekpy__res *r = (ekpy__res *)self;
    Py_ssize_t nargs = PyTuple_Size(args);
    ekpy_stream *io = r->io;
    if (io && (!kw || PyDict_Size(kw) == 0) && nargs <= 1 && ekpy__res_nothing_ahead(r) &&
        (nargs == 0 ? io->len == EKPY_READ_CHUNK : ekpy__res_is_len(PyTuple_GetItem(args, 0), io)))
        return ekpy__op_make(self, io, NULL);
    return ekpy__res_slow(self, ekpy__s_read_py, args, kw);
}

static PyObject *ekpy__res_write_all(PyObject *self, PyObject *args, PyObject *kw)
{
    ekpy__res *r = (ekpy__res *)self;
    PyObject *data = PyTuple_Size(args) == 1 ? PyTuple_GetItem(args, 0) : NULL;
    if (r->io && (!kw || PyDict_Size(kw) == 0) && data && PyBytes_CheckExact(data))
        return ekpy__op_make(self, r->io, data);
    return ekpy__res_slow(self, ekpy__s_write_all_py, args, kw);
}
#define EKPY_RES_CALL (METH_VARARGS | METH_KEYWORDS)
#endif

static PyMethodDef ekpy__res_methods[] = {
    {"_c_attach", ekpy__res_attach, METH_O, NULL},
    {"_c_read_m", (PyCFunction)(void (*)(void))ekpy__res_read, EKPY_RES_CALL,
     "read(n=65536): up to n bytes as soon as some are there; b\"\" at the end of the stream."},
    {"_c_write_all_m", (PyCFunction)(void (*)(void))ekpy__res_write_all, EKPY_RES_CALL,
     "write_all(data): write all of data (any bytes-like object). If cancelled or failed "
     "midway, what was written is not taken back (the error says nothing about how much; use "
     "write())."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef ekpy__res_members[] = {
    {"_rbuf", T_OBJECT_EX, offsetof(ekpy__res, rbuf), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot ekpy__res_slots[] = {
    {Py_tp_dealloc, (void *)ekpy__res_dealloc},
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_methods, (void *)ekpy__res_methods},
    {Py_tp_members, (void *)ekpy__res_members},
    {0, NULL},
};

static PyType_Spec ekpy__res_spec = {
    "ekiden._net._ResourceBase",
    sizeof(ekpy__res),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    ekpy__res_slots,
};

/* _c_runtime_setup(on_callback_error) -> None (_runtime, once it is loaded). */
static PyObject *ekpy__py_runtime_setup(PyObject *self, PyObject *fn)
{
    (void)self;
    Py_INCREF(fn);
    Py_XDECREF(ekpy__on_error);
    ekpy__on_error = fn;
    Py_RETURN_NONE;
}

/* _c_net_setup(io_error) -> (the type of the stream operations, the resources'
 * C base) (_net). */
static PyObject *ekpy__py_net_setup(PyObject *self, PyObject *fn)
{
    (void)self;
    Py_INCREF(fn);
    Py_XDECREF(ekpy__io_error);
    ekpy__io_error = fn;
    return PyTuple_Pack(2, ekpy__op_type, ekpy__res_type);
}

/* The functions of each module (ekpy_io_install's `which`). */
#define EKPY_INSTALL_RUNTIME 0 /* _runtime: _c_wait, _c_spawn, _c_runtime_setup */
#define EKPY_INSTALL_SERVICE                                                                       \
    1 /* _service: _c_setup, _c_requests, _c_reply, _c_call_each, _c_stepping */
#define EKPY_INSTALL_NET 2 /* _net: _c_read, _c_write_all, _c_net_setup */

static PyMethodDef ekpy__runtime_methods[] = {
    {"_c_wait", ekpy__py_wait, METH_NOARGS, NULL},
    {"_c_spawn", ekpy__py_spawn, METH_VARARGS, NULL},
    {"_c_runtime_setup", ekpy__py_runtime_setup, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef ekpy__service_methods[] = {
    {"_c_setup", ekpy__py_setup, METH_VARARGS, NULL},
    {"_c_requests", ekpy__py_requests, METH_NOARGS, NULL},
    {"_c_reply", ekpy__py_reply, METH_VARARGS, NULL},
    {"_c_call_each", ekpy__py_call_each, METH_VARARGS, NULL},
    {"_c_stepping", ekpy__py_stepping, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef ekpy__net_methods[] = {
    {"_c_read", (PyCFunction)(void (*)(void))ekpy__py_read, EKPY_OP_CALL, NULL},
    {"_c_write_all", (PyCFunction)(void (*)(void))ekpy__py_write_all, EKPY_OP_CALL, NULL},
    {"_c_net_setup", ekpy__py_net_setup, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

/* The types and interned names `which` needs; -1 with an exception. */
static int ekpy__install_types(int which)
{
    if (which == EKPY_INSTALL_RUNTIME) {
        if (!ekpy__wait_type) ekpy__wait_type = PyType_FromSpec(&ekpy__wait_spec);
        if (!ekpy__ctask_type) ekpy__ctask_type = PyType_FromSpec(&ekpy__ctask_spec);
        if (!ekpy__s_step) ekpy__s_step = PyUnicode_InternFromString("_step");
        if (!ekpy__s_ended) ekpy__s_ended = PyUnicode_InternFromString("_ended");
        if (!ekpy__s_on_drop) ekpy__s_on_drop = PyUnicode_InternFromString("_on_drop");
        return ekpy__wait_type && ekpy__ctask_type && ekpy__s_step && ekpy__s_ended &&
                       ekpy__s_on_drop
                   ? 0
                   : -1;
    }
    if (which == EKPY_INSTALL_NET) {
        if (!ekpy__op_type) ekpy__op_type = PyType_FromSpec(&ekpy__op_spec);
        if (!ekpy__res_type) ekpy__res_type = PyType_FromSpec(&ekpy__res_spec);
        if (!ekpy__s_release) ekpy__s_release = PyUnicode_InternFromString("_release");
        if (!ekpy__s_read_py) ekpy__s_read_py = PyUnicode_InternFromString("_read_py");
        if (!ekpy__s_write_all_py)
            ekpy__s_write_all_py = PyUnicode_InternFromString("_write_all_py");
        return ekpy__op_type && ekpy__res_type && ekpy__s_release && ekpy__s_read_py &&
                       ekpy__s_write_all_py
                   ? 0
                   : -1;
    }
    if (which == EKPY_INSTALL_SERVICE) {
        struct {
            PyObject **slot;
            const char *name;
        } names[] = {{&ekpy__s_stepped, "_stepped"},
                     {&ekpy__s_failure, "_failure"},
                     {&ekpy__s_value, "_value"}};
        for (size_t i = 0; i < sizeof names / sizeof *names; i++)
            if (!*names[i].slot && !(*names[i].slot = PyUnicode_InternFromString(names[i].name)))
                return -1;
    }
    return 0;
}

/* Puts the functions of `which` (EKPY_INSTALL_*, above) into the module named
 * `module` (imported: the module calls this while it loads). 0, or -1 (an
 * unknown `which`; or an exception, then printed and cleared: the module has
 * none of the names). Keeps the GIL (ekpy_io_). */
int ekpy_io_install(const char *module, int which)
{
    PyMethodDef *defs = which == EKPY_INSTALL_RUNTIME   ? ekpy__runtime_methods
                        : which == EKPY_INSTALL_SERVICE ? ekpy__service_methods
                        : which == EKPY_INSTALL_NET     ? ekpy__net_methods
                                                        : NULL;
    if (!defs) return -1;
    int rc = ekpy__install_types(which);
    PyObject *mod = rc == 0 ? PyImport_ImportModule(module) : NULL;
    if (!mod) rc = -1;
    for (PyMethodDef *d = defs; rc == 0 && d->ml_name; d++) {
        PyObject *fn = PyCFunction_NewEx(d, NULL, NULL);
        if (!fn || PyObject_SetAttrString(mod, d->ml_name, fn) != 0) rc = -1;
        Py_XDECREF(fn);
    }
    Py_XDECREF(mod);
    if (rc != 0 && PyErr_Occurred()) PyErr_Print();
    return rc;
}

/* Runs every queued request of svc through Python (see above), in the poll
 * whose context is cx. */
static void ekpy__flush(ekpy__svc *svc, ek_cx *cx)
{
    ekpy_batch nested = {0};
    ekpy_batch *b = svc->flushing ? &nested : &svc->batch;
    size_t n = svc->queued;
    svc->queued = 0;
    b->n = 0;
    b->replied = 0;
    /* The queue is taken first: a request queued meanwhile waits for the next flush. */
    ekpy__slot **q = svc->queue;
    svc->queue = NULL;
    svc->queue_cap = 0;
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) ok = ekpy__batch_add(b, q[i]) == 0;
    if (ok && b->n > 0) {
        ek_cx *prev_cx = ekpy__cx;
        void *prev_task = ekpy__task;
        ekpy__cx = cx;
        ekpy__task = svc->handle; /* current_task() makes the handler's Task if asked */
        ekpy_batch *prev_batch = ekpy__batch;
        ekpy__batch = b;
        svc->flushing++;
        ekpy_svc_batch(svc->handle, b);
        svc->flushing--;
        ekpy__batch = prev_batch;
        ekpy__cx = prev_cx;
        ekpy__task = prev_task;
    }
    for (size_t i = 0; i < n; i++) {
        ekpy__slot *s = q[i];
        if (s->state == EKPY_SLOT_QUEUED) { /* not answered: out of memory, or Python failed */
            s->rc = ok ? EK_EIO : EK_ENOMEM;
            s->state = EKPY_SLOT_DONE;
        }
        ek_msg_free(s->req);
        s->req = NULL;
        s->held = 0;
        if (s->dropped) ekpy__slot_free(s);
    }
    free(q);
    if (b == &nested) {
        free(nested.reqs);
        free(nested.counts);
        free(nested.slots);
    }
}

static int ekpy__slot_poll(void *state, ek_cx *cx, void **out)
{
    ekpy__slot *s = state;
    if (s->state == EKPY_SLOT_QUEUED && s->held) {
        /* A caller that polls each response as soon as it called (a buffer
         * worker that drives ready responses itself) polls the last queued
         * slot before the calls still to come in its wake-up: that first poll
         * yields once, so that the flush takes them all. */
        ekpy__svc *svc = s->svc;
        if (!s->polled && svc->queued > 0 && svc->queue[svc->queued - 1] == s) {
            s->polled = 1;
            return ek_yield_now(cx);
        }
        ekpy__flush(svc, cx);
    }
    if (s->state == EKPY_SLOT_DONE) {
        s->state = EKPY_SLOT_TAKEN;
        *out = s->resp;
        s->resp = NULL;
        return s->rc;
    }
    if (s->state != EKPY_SLOT_TASK) return EK_EIO; /* a nested poll of its own flush */
    ek_cx *prev_cx = ekpy__cx;
    void *prev_task = ekpy__task;
    ekpy__cx = cx;
    ekpy__task = s->task;
    int rc = ekpy_resp_poll(s->task, out);
    ekpy__cx = prev_cx;
    ekpy__task = prev_task;
    if (rc != EK_PENDING) s->state = EKPY_SLOT_TAKEN; /* Python released the handle */
    return rc;
}

static void ekpy__svc_unref(ekpy__svc *svc);

static void ekpy__slot_drop(void *state)
{
    ekpy__slot *s = state;
    ekpy__svc *svc = s->svc;
    s->dropped = 1;
    if (!s->held) ekpy__slot_free(s);
    ekpy__svc_unref(svc); /* the future's reference */
}

static int ekpy__svc_ready(void *self, ek_cx *cx)
{
    (void)self;
    (void)cx;
    return EK_OK;
}

static int ekpy__svc_call(void *self, ek_msg *req, ek_future **resp)
{
    ekpy__svc *svc = self;
    ekpy__slot *s = svc->spare;
    if (s) {
        svc->spare = s->next;
        svc->nspare--;
        memset(s, 0, sizeof *s);
    } else if (!(s = calloc(1, sizeof *s))) {
        ek_msg_free(req);
        return EK_ENOMEM;
    }
    s->svc = svc;
    s->req = req;
    atomic_fetch_add_explicit(&svc->refs, 1, memory_order_relaxed);    /* the future's */
    int rc = ek_future_new(ekpy__slot_poll, ekpy__slot_drop, s, resp); /* on error s is freed */
    if (rc != EK_OK) return rc;
    if (ekpy__grow((void **)&svc->queue, &svc->queue_cap, svc->queued + 1, sizeof *svc->queue) !=
        0) {
        ek_future_drop(*resp); /* frees s and req */
        *resp = NULL;
        return EK_ENOMEM;
    }
    s->held = 1;
    svc->queue[svc->queued++] = s;
    return EK_OK;
}

/* The service's state goes with its last reference: the inner service, each
 * direct handle (ekpy_service_direct), each response future alive, and the
 * Python Service object (ekpy_service_release). A queued slot whose future is
 * gone holds none: it is freed here. */
static void ekpy__svc_unref(ekpy__svc *svc)
{
    if (atomic_fetch_sub_explicit(&svc->refs, 1, memory_order_acq_rel) != 1) return;
    for (size_t i = 0; i < svc->queued; i++) ekpy__slot_free(svc->queue[i]);
    free(svc->queue);
    while (svc->spare) {
        ekpy__slot *s = svc->spare;
        svc->spare = s->next;
        free(s);
    }
    free(svc->batch.reqs);
    free(svc->batch.counts);
    free(svc->batch.slots);
    void *handle = svc->handle;
    free(svc);
    ekpy_svc_drop(handle);
}

static void ekpy__svc_drop(void *self)
{
    ekpy__svc_unref(self);
}

static const ek_service_vtable ekpy__svc_vt = {
    ekpy__svc_ready, ekpy__svc_call, NULL, NULL, ekpy__svc_drop,
};

/* A new service over handle (consumed: on error ekpy_svc_drop has run), for a
 * buffer in front of it; *svc gets its state, with a reference of the caller's
 * (ekpy_service_release), for direct handles. */
int ekpy_service_new(void *handle, ek_service **out, void **svc_out)
{
    ekpy__svc *svc = calloc(1, sizeof *svc);
    if (!svc) {
        ekpy_svc_drop(handle);
        return EK_ENOMEM;
    }
    svc->handle = handle;
    atomic_init(&svc->refs, 1);
    int rc = ek_service_new(&ekpy__svc_vt, svc, out);
    if (rc != EK_OK) return rc;
    atomic_fetch_add_explicit(&svc->refs, 1, memory_order_relaxed);
    *svc_out = svc;
    return EK_OK;
}

/* Releases the caller's reference of ekpy_service_new. */
void ekpy_service_release(void *svc)
{
    ekpy__svc_unref(svc);
}

static int ekpy__direct_clone(void *self, void **out)
{
    ekpy__svc *svc = self;
    atomic_fetch_add_explicit(&svc->refs, 1, memory_order_relaxed);
    *out = svc;
    return EK_OK;
}

/*
 * A handle that calls the service directly, with no buffer: for a local server
 * (ek_server_options_set_local), whose connection tasks, calls and response
 * polls all run on the thread of ekiden.run, the only thread that may use it
 * (its clones share the state without a lock). On error nothing is taken.
 */
int ekpy_service_direct(void *svc, ek_service **out)
{
    ekpy__svc *s = svc;
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return ek_service_new_shareable(&ekpy__svc_vt, s, ekpy__direct_clone, out);
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
    size_t bytes = 0;
    long n = ekpy__bulks_size(msg, &bytes);
    if (n < 0 || n > EKPY_FLAT_MAX || bytes > flat->cap) return -1;
    ekpy__bulks_copy(msg, n, flat->lens, flat->buf);
    return n;
}

/* A new RESP string message of `type` (EK_RESP_BULK, _SIMPLE, _ERROR) with a
 * copy of data; NULL when out of memory. */
ek_msg *ekpy_io_resp_string(int type, const char *data, size_t len)
{
    ek_msg *m = NULL;
    return ek_msg_resp_string(type, data, len, &m) == EK_OK ? m : NULL;
}

/* A RESP null (EK_RESP_NULL): the shared one (ek_msg_free does nothing to it). */
ek_msg *ekpy_io_resp_null(void)
{
    ek_msg *m = NULL;
    return ek_msg_resp_shared(EK_RESP_SHARED_NULL, &m) == EK_OK ? m : NULL;
}
