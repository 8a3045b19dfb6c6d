/*
 * ektest.c - a small C extension for the interop tests (compiled by
 * test_service.py with cffi against the package's libekiden.so.0):
 * - ektest_upper_service: a C service (shareable, stateless) that upper-cases
 *   byte requests, for Python to call and wrap in middleware;
 * - ektest_call_on_worker: a C task on a worker thread that calls a service
 *   (a Python one, through its buffer) and records the thread it ran on.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>

#include "ekiden.h"

typedef struct {
    ek_msg *resp;
} up_future;

static int up_ready(void *self, ek_cx *cx)
{
    (void)self;
    (void)cx;
    return EK_OK;
}

static int up_poll(void *state, ek_cx *cx, void **out)
{
    up_future *f = state;
    (void)cx;
    *out = f->resp;
    f->resp = NULL;
    return EK_OK;
}

static void up_drop(void *state)
{
    up_future *f = state;
    ek_msg_free(f->resp);
    free(f);
}

static int up_call(void *self, ek_msg *req, ek_future **resp)
{
    const uint8_t *data;
    size_t len;
    int rc = ek_msg_data(req, &data, &len);
    (void)self;
    if (rc < 0) {
        ek_msg_free(req);
        return rc;
    }
    char *buf = malloc(len ? len : 1);
    up_future *f = calloc(1, sizeof *f);
    if (!buf || !f) {
        free(buf);
        free(f);
        ek_msg_free(req);
        return EK_ENOMEM;
    }
    for (size_t i = 0; i < len; i++) buf[i] = (char)toupper(data[i]);
    rc = ek_msg_bytes_copy(buf, len, &f->resp);
    free(buf);
    ek_msg_free(req);
    if (rc < 0) {
        free(f);
        return rc;
    }
    return ek_future_new(up_poll, up_drop, f, resp);
}

static int up_clone(void *self, void **out)
{
    *out = self;
    return EK_OK;
}

static const ek_service_vtable up_vt = {up_ready, up_call, NULL, NULL, NULL};

int ektest_upper_service(ek_service **out)
{
    return ek_service_new_shareable(&up_vt, NULL, up_clone, out);
}

typedef struct {
    ek_service *svc;
    ek_msg *req;
    ek_future *fut;
    unsigned long *thread;
} caller;

static int caller_poll(void *state, ek_cx *cx, void **out)
{
    caller *c = state;
    *c->thread = (unsigned long)pthread_self();
    if (!c->fut) {
        int rc = ek_service_oneshot(c->svc, c->req, &c->fut);
        c->req = NULL;
        if (rc < 0) return rc;
    }
    void *r = NULL;
    int rc = ek_future_poll(c->fut, cx, &r);
    if (rc == EK_PENDING) return rc;
    ek_future_drop(c->fut);
    c->fut = NULL;
    if (rc < 0) return rc;
    *out = r;
    return EK_OK;
}

static void caller_drop(void *state)
{
    caller *c = state;
    ek_future_drop(c->fut);
    ek_msg_free(c->req);
    ek_service_free(c->svc);
    free(c);
}

static void msg_drop(void *m)
{
    ek_msg_free(m);
}

/* Consumes svc. The join's result is the response ek_msg (the awaiter's). */
int ektest_call_on_worker(ek_runtime *rt, ek_service *svc, const char *data, size_t len,
                          unsigned long *thread, ek_join **join)
{
    caller *c = calloc(1, sizeof *c);
    if (!c) {
        ek_service_free(svc);
        return EK_ENOMEM;
    }
    c->svc = svc;
    c->thread = thread;
    int rc = ek_msg_bytes_copy(data, len, &c->req);
    if (rc < 0) {
        caller_drop(c);
        return rc;
    }
    return ek_spawn(rt, caller_poll, caller_drop, c, msg_drop, join);
}
