/*
 * shed.c - ek_svc_load_shed: always ready; a request that arrives while the
 * inner is not ready fails at once with EK_EOVERLOADED instead of queueing
 * (Tower's LoadShed). The inner's pending poll_ready is disarmed at once, so a
 * shed request holds no place in the inner's queue.
 */
#include "service/svc.h"

typedef struct shed {
    ek_service *inner;
    bool shed; /* the inner was not ready: the next call is refused */
} shed;

static int shed_poll_ready(void *self, ek_cx *cx)
{
    shed *s = self;
    int rc = ek__service_poll_ready(s->inner, cx);
    if (rc == EK_PENDING) {
        ek__service_disarm(s->inner);
        s->shed = true;
        return EK_OK;
    }
    s->shed = false;
    return rc;
}

static int shed_call(void *self, ek_msg *req, ek_future **resp)
{
    shed *s = self;
    if (s->shed) {
        s->shed = false;
        ek_msg_free(req);
        return ek__future_error(EK_EOVERLOADED, resp);
    }
    return ek__service_call_raw(s->inner, req, resp);
}

static void shed_disarm(void *self)
{
    shed *s = self;
    s->shed = false;
    ek__service_disarm(s->inner);
}

static int shed_status(void *self)
{
    return ek__service_status(((shed *)self)->inner);
}

static void shed_drop(void *self)
{
    shed *s = self;
    ek_service_free(s->inner);
    ek__free(s);
}

static int shed_clone(void *self, void **out)
{
    shed *c = ek__calloc(1, sizeof *c);
    if (c == NULL) return EK_ENOMEM;
    int rc = ek__service_clone(((shed *)self)->inner, &c->inner);
    if (rc != EK_OK) {
        ek__free(c);
        return rc;
    }
    *out = c;
    return EK_OK;
}

static const ek_service_vtable shed_vt = {shed_poll_ready, shed_call, shed_disarm, shed_status,
                                          shed_drop};

int ek_svc_load_shed(ek_service *inner, ek_service **out)
{
    int rc = ek__svc_check_inner(inner, out);
    if (rc != EK_OK) return rc;
    shed *s = ek__calloc(1, sizeof *s);
    if (s == NULL) {
        ek_service_free(inner);
        return EK_ENOMEM;
    }
    s->inner = inner;
    return ek__service_new(&shed_vt, ek__service_shareable(inner) ? shed_clone : NULL, s, out);
}
