/*
 * map.c - ek_svc_map: request and response mapping callbacks with user data
 * (what a host uses to adapt messages, e.g. a Python object to a RESP reply).
 * The user data is shared by clones and dropped with the last of them.
 */
#include "service/svc.h"
#include "task/future.h"

typedef struct map {
    ek_service *inner;
    ek_svc_map_fn req_fn, resp_fn;
    ek__svc_ud *ud;
} map;

static int map_poll_ready(void *self, ek_cx *cx)
{
    return ek__service_poll_ready(((map *)self)->inner, cx);
}

typedef struct map_resp {
    map *m; /* outlives its responses (svc.h) */
    ek_future *inner;
} map_resp;

static int map_resp_poll(void *state, ek_cx *cx, void **out)
{
    map_resp *r = state;
    void *got = NULL;
    int rc = ek_future_poll(r->inner, cx, &got);
    if (rc == EK_PENDING) return rc;
    ek_future_drop(r->inner);
    r->inner = NULL;
    if (rc != EK_OK) return rc;
    ek_msg *mapped = NULL;
    rc = r->m->resp_fn(r->m->ud->ud, got, &mapped);
    if (rc == EK_OK) *out = mapped;
    return rc;
}

static void map_resp_drop(void *state)
{
    ek_future_drop(((map_resp *)state)->inner);
}

static int map_call(void *self, ek_msg *req, ek_future **resp)
{
    map *m = self;
    if (m->req_fn) {
        ek_msg *mapped = NULL;
        int rc = m->req_fn(m->ud->ud, req, &mapped);
        if (rc == EK_OK && mapped == NULL) rc = EK_EINVAL;
        if (rc != EK_OK) {
            ek__service_disarm(m->inner);
            return rc;
        }
        req = mapped;
    }
    ek_future *f;
    int rc = ek__service_call_raw(m->inner, req, &f);
    if (rc != EK_OK || m->resp_fn == NULL) {
        if (rc == EK_OK) *resp = f;
        return rc;
    }
    map_resp *r;
    rc = ek__future_new_inline(map_resp_poll, map_resp_drop, sizeof *r, resp, (void **)&r);
    if (rc != EK_OK) {
        ek_future_drop(f);
        return rc;
    }
    r->m = m;
    r->inner = f;
    return EK_OK;
}

static void map_disarm(void *self)
{
    ek__service_disarm(((map *)self)->inner);
}

static int map_status(void *self)
{
    return ek__service_status(((map *)self)->inner);
}

static void map_drop(void *self)
{
    map *m = self;
    ek_service_free(m->inner);
    ek__svc_ud_release(m->ud);
    ek__free(m);
}

static int map_clone(void *self, void **out)
{
    map *m = self;
    map *c = ek__calloc(1, sizeof *c);
    if (c == NULL) return EK_ENOMEM;
    int rc = ek__service_clone(m->inner, &c->inner);
    if (rc != EK_OK) {
        ek__free(c);
        return rc;
    }
    c->req_fn = m->req_fn;
    c->resp_fn = m->resp_fn;
    c->ud = m->ud;
    ek__svc_ud_retain(c->ud);
    *out = c;
    return EK_OK;
}

static const ek_service_vtable map_vt = {map_poll_ready, map_call, map_disarm, map_status,
                                         map_drop};

int ek_svc_map(ek_service *inner, ek_svc_map_fn map_request, ek_svc_map_fn map_response, void *ud,
               ek_drop_fn ud_drop, ek_service **out)
{
    int rc = ek__svc_check_inner(inner, out);
    if (rc != EK_OK) {
        if (ud_drop) ud_drop(ud);
        return rc;
    }
    map *m = ek__calloc(1, sizeof *m);
    ek__svc_ud *u = m ? ek__svc_ud_new(ud, ud_drop) : NULL;
    if (u == NULL) {
        ek__free(m);
        ek_service_free(inner);
        if (ud_drop) ud_drop(ud);
        return EK_ENOMEM;
    }
    m->inner = inner;
    m->req_fn = map_request;
    m->resp_fn = map_response;
    m->ud = u;
    return ek__service_new(&map_vt, ek__service_shareable(inner) ? map_clone : NULL, m, out);
}
