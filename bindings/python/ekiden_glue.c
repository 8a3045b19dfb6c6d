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
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

static int ekpy_task_poll(void *handle, ek_cx *cx);
static void ekpy_task_drop(void *handle);
static void ekpy_handle_drop(void *handle);
static int ekpy_handle_clone(void *handle, void **out);
static int ekpy_svc_call(void *self, ek_msg *req, ek_future **resp);
static void ekpy_svc_drop(void *self);
static int ekpy_resp_poll(void *handle, ek_cx *cx, void **out);
static void ekpy_resp_drop(void *handle);

static int ekpy__poll(void *state, ek_cx *cx, void **out)
{
    *out = NULL;
    return ekpy_task_poll(state, cx);
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
 * front of it carries back-pressure), call starts the handler coroutine as a
 * Python task and returns a response future over it (ekpy_resp_poll/drop).
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

int ekpy_response_new(void *handle, ek_future **out)
{
    return ek_future_new(ekpy_resp_poll, ekpy_resp_drop, handle, out);
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
