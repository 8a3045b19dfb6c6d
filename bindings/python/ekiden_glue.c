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
static int ekpy_task_poll(void *handle, ek_cx *cx);
static void ekpy_task_drop(void *handle);
static void ekpy_handle_drop(void *handle);

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
