/*
 * msg.c - ek_msg: owned, typed messages (rules in ekiden/msg.h).
 *
 * One struct for every kind: the byte payload (BYTES, RESP strings, HTTP body)
 * is an ek_bytes shared on clone; RESP aggregates own a vector of children; HTTP
 * fields live in one arena per message (strings appended, referred to by offset),
 * so a header costs no allocation of its own.
 */
#include "buf/buf.h"
#include "service/svc.h"

typedef struct ek__hdr {
    size_t name_off, name_len, value_off, value_len;
} ek__hdr;

typedef struct ek__http {
    char *arena;
    size_t arena_len, arena_cap;
    size_t a_off, a_len; /* method (request) or reason (response) */
    size_t target_off, target_len;
    ek__hdr *hdr;
    size_t nhdr, hcap;
    int status, version, keep_alive;
} ek__http;

/* An argument of a flat request: bytes of the frame's chunk, or of the
 * message's own allocation (an inline command's decoded argument). */
typedef struct ek__arg {
    const uint8_t *p;
    size_t len;
} ek__arg;

struct ek_msg {
    uint32_t tag; /* EK__TAG_MSG */
    uint8_t kind;
    uint8_t rtype;   /* RESP type */
    uint8_t is_null; /* RESP null */
    uint8_t flat;    /* a flat request (u.flat): an ARRAY of bulk strings */
    uint8_t shared;  /* a static shared reply: never freed, never changed */
    uint8_t cached;  /* its memory is a block of EK__CACHE_MSG (common.h) */
    char vfmt[4];    /* verbatim format */
    ek_bytes *payload;
    ek_msg *attr; /* RESP attribute */
    union {
        int64_t i;
        double d;
        int b;
        struct {
            ek_msg **v;
            size_t n, cap;
        } agg;
        /* A request as the RESP server codec decodes it: one allocation (this
         * message, the argument vector after it, then the bytes of inline
         * arguments), the frame's chunk held by one reference. A function that
         * needs child messages (ek_msg_resp_child, take, append) turns it into
         * an ordinary aggregate first (flat_expand). */
        struct {
            ek__chunk *chunk; /* NULL when every argument is inline */
            ek__arg *a;
            size_t n;
        } flat;
        ek__http *http;
        struct {
            void *obj;
            ek_clone_fn clone;
            ek_drop_fn drop;
        } host;
        ek_mpsc_receiver *stream;
    } u;
};

/* A message's memory: `size` bytes (the struct and what follows it), from the
 * thread's cache of EK__CACHE_MSG blocks when it fits (a request, a reply:
 * made and freed once per request), with the header zeroed. */
static ek_msg *msg_block(size_t size)
{
    bool cached = size <= EK__CACHE_MSG_SIZE;
    ek_msg *m = cached ? ek__cache_alloc(EK__CACHE_MSG) : ek__malloc(size);
    if (m == NULL) return NULL;
    memset(m, 0, sizeof *m); /* not calloc: see task/future.c */
    m->cached = cached;
    return m;
}

static void msg_block_free(ek_msg *m)
{
    if (m->cached)
        ek__cache_free(EK__CACHE_MSG, m);
    else
        ek__free(m);
}

static ek_msg *msg_new(int kind)
{
    ek_msg *m = msg_block(sizeof *m);
    if (m == NULL) return NULL;
    m->tag = EK__TAG_MSG;
    m->kind = (uint8_t)kind;
    return m;
}

#define IS_MSG(m) EK__CHECK_TAG(m, EK__TAG_MSG)

static bool is_resp_string(int t)
{
    return t == EK_RESP_SIMPLE || t == EK_RESP_ERROR || t == EK_RESP_BULK ||
           t == EK_RESP_BULK_ERROR || t == EK_RESP_BIG_NUMBER;
}
static bool is_resp_aggregate(int t)
{
    return t == EK_RESP_ARRAY || t == EK_RESP_SET || t == EK_RESP_PUSH || t == EK_RESP_MAP ||
           t == EK_RESP_ATTRIBUTE;
}
static bool is_http(const ek_msg *m)
{
    return m->kind == EK_MSG_HTTP_REQUEST || m->kind == EK_MSG_HTTP_RESPONSE;
}

int ek_msg_kind(const ek_msg *m)
{
    return IS_MSG(m) ? m->kind : EK_EINVAL;
}

void ek_msg_free(ek_msg *m)
{
    if (!IS_MSG(m) || m->shared) return;
    ek_bytes_release(m->payload);
    ek_msg_free(m->attr);
    switch (m->kind) {
    case EK_MSG_RESP:
        if (m->flat) {
            ek__chunk_release(m->u.flat.chunk);
        } else if (is_resp_aggregate(m->rtype)) {
            for (size_t i = 0; i < m->u.agg.n; i++) ek_msg_free(m->u.agg.v[i]);
            ek__free(m->u.agg.v);
        }
        break;
    case EK_MSG_HTTP_REQUEST:
    case EK_MSG_HTTP_RESPONSE:
        ek__free(m->u.http->arena);
        ek__free(m->u.http->hdr);
        ek__free(m->u.http);
        break;
    case EK_MSG_HOST:
        if (m->u.host.drop) m->u.host.drop(m->u.host.obj);
        break;
    case EK_MSG_STREAM:
        ek_mpsc_receiver_drop(m->u.stream);
        break;
    default:
        break;
    }
    m->tag = EK__TAG_DEAD;
    msg_block_free(m);
}

static ek__http *http_clone(const ek__http *h)
{
    ek__http *c = ek__malloc(sizeof *c);
    if (c == NULL) return NULL;
    *c = *h;
    c->arena = NULL;
    c->hdr = NULL;
    if (h->arena_cap) {
        c->arena = ek__malloc(h->arena_cap);
        if (c->arena == NULL) goto fail;
        memcpy(c->arena, h->arena, h->arena_len);
    }
    if (h->hcap) {
        c->hdr = ek__malloc(h->hcap * sizeof *c->hdr);
        if (c->hdr == NULL) goto fail;
        memcpy(c->hdr, h->hdr, h->nhdr * sizeof *c->hdr);
    }
    return c;
fail:
    ek__free(c->arena);
    ek__free(c);
    return NULL;
}

static int flat_clone(const ek_msg *m, ek_msg **out);

int ek_msg_clone(const ek_msg *m, ek_msg **out)
{
    if (!IS_MSG(m) || out == NULL) return EK_EINVAL;
    if (m->shared) { /* immutable and never freed: the same message will do */
        *out = (ek_msg *)m;
        return EK_OK;
    }
    if (m->flat) return flat_clone(m, out);
    if (m->kind == EK_MSG_STREAM) return EK_ENOTSUP;
    if (m->kind == EK_MSG_HOST && m->u.host.clone == NULL) return EK_ENOTSUP;
    ek_msg *c = msg_new(m->kind);
    if (c == NULL) return EK_ENOMEM;
    int rc = EK_OK;
    c->rtype = m->rtype;
    c->is_null = m->is_null;
    memcpy(c->vfmt, m->vfmt, sizeof c->vfmt);
    if (m->payload) ek_bytes_clone(m->payload, &c->payload);
    switch (m->kind) {
    case EK_MSG_RESP:
        if (is_resp_aggregate(m->rtype)) {
            if (m->u.agg.n) {
                c->u.agg.v = ek__malloc(m->u.agg.n * sizeof *c->u.agg.v);
                if (c->u.agg.v == NULL) {
                    rc = EK_ENOMEM;
                    break;
                }
                c->u.agg.cap = m->u.agg.n;
            }
            for (size_t i = 0; i < m->u.agg.n && rc == EK_OK; i++) {
                rc = ek_msg_clone(m->u.agg.v[i], &c->u.agg.v[i]);
                if (rc == EK_OK) c->u.agg.n++;
            }
        } else {
            c->u = m->u;
        }
        if (rc == EK_OK && m->attr) rc = ek_msg_clone(m->attr, &c->attr);
        break;
    case EK_MSG_HTTP_REQUEST:
    case EK_MSG_HTTP_RESPONSE:
        c->u.http = http_clone(m->u.http);
        if (c->u.http == NULL) {
            c->kind = EK_MSG_BYTES; /* nothing HTTP to free */
            rc = EK_ENOMEM;
        }
        break;
    case EK_MSG_HOST:
        c->u.host = m->u.host;
        c->u.host.obj = NULL;
        rc = m->u.host.clone(m->u.host.obj, &c->u.host.obj);
        if (rc != EK_OK) c->u.host.drop = NULL;
        break;
    default:
        break;
    }
    if (rc != EK_OK) {
        ek_msg_free(c);
        return rc;
    }
    *out = c;
    return EK_OK;
}

int ek_msg_payload(const ek_msg *m, ek_bytes **out)
{
    if (!IS_MSG(m) || out == NULL) return EK_EINVAL;
    switch (m->kind) {
    case EK_MSG_BYTES:
    case EK_MSG_HTTP_REQUEST:
    case EK_MSG_HTTP_RESPONSE:
        break;
    case EK_MSG_RESP:
        if (!is_resp_string(m->rtype) && m->rtype != EK_RESP_VERBATIM) return EK_EKIND;
        if (m->is_null) return EK_EEMPTY;
        break;
    default:
        return EK_EKIND;
    }
    if (m->payload == NULL) {
        /* An HTTP message without a body: give an empty slice, made once. */
        int rc = ek_bytes_copy(NULL, 0, &((ek_msg *)m)->payload);
        if (rc != EK_OK) return rc;
    }
    *out = m->payload;
    return EK_OK;
}

int ek_msg_data(const ek_msg *m, const uint8_t **data, size_t *len)
{
    ek_bytes *b;
    int rc = ek_msg_payload(m, &b);
    if (rc != EK_OK) return rc;
    if (data) *data = b->ptr;
    if (len) *len = b->len;
    return EK_OK;
}

/* ---- BYTES ---- */

int ek_msg_bytes_new(ek_bytes *payload, ek_msg **out)
{
    if (!EK__CHECK_TAG(payload, EK__TAG_BYTES) || out == NULL) {
        ek_bytes_release(payload);
        return EK_EINVAL;
    }
    ek_msg *m = msg_new(EK_MSG_BYTES);
    if (m == NULL) {
        ek_bytes_release(payload);
        return EK_ENOMEM;
    }
    m->payload = payload;
    *out = m;
    return EK_OK;
}

int ek_msg_bytes_copy(const void *data, size_t len, ek_msg **out)
{
    if (out == NULL) return EK_EINVAL;
    ek_bytes *b;
    int rc = ek_bytes_copy(data, len, &b);
    if (rc != EK_OK) return rc;
    return ek_msg_bytes_new(b, out);
}

/* ---- RESP ---- */

static ek_msg *resp_new(int type)
{
    ek_msg *m = msg_new(EK_MSG_RESP);
    if (m) m->rtype = (uint8_t)type;
    return m;
}

int ek_msg_resp_type(const ek_msg *m)
{
    if (!IS_MSG(m)) return EK_EINVAL;
    return m->kind == EK_MSG_RESP ? m->rtype : EK_EKIND;
}

int ek_msg_resp_string_bytes(int type, ek_bytes *payload, ek_msg **out)
{
    if (!is_resp_string(type) || !EK__CHECK_TAG(payload, EK__TAG_BYTES) || out == NULL) {
        ek_bytes_release(payload);
        return EK_EINVAL;
    }
    ek_msg *m = resp_new(type);
    if (m == NULL) {
        ek_bytes_release(payload);
        return EK_ENOMEM;
    }
    m->payload = payload;
    *out = m;
    return EK_OK;
}

int ek_msg_resp_string(int type, const void *data, size_t len, ek_msg **out)
{
    if (!is_resp_string(type) || out == NULL) return EK_EINVAL;
    ek_bytes *b;
    int rc = ek_bytes_copy(data, len, &b);
    if (rc != EK_OK) return rc;
    return ek_msg_resp_string_bytes(type, b, out);
}

int ek_msg_resp_verbatim(const char *format, const void *data, size_t len, ek_msg **out)
{
    if (format == NULL || out == NULL) return EK_EINVAL;
    ek_bytes *b;
    int rc = ek_bytes_copy(data, len, &b);
    if (rc != EK_OK) return rc;
    ek_msg *m = resp_new(EK_RESP_VERBATIM);
    if (m == NULL) {
        ek_bytes_release(b);
        return EK_ENOMEM;
    }
    memcpy(m->vfmt, format, 3);
    m->payload = b;
    *out = m;
    return EK_OK;
}

int ek_msg_resp_verbatim_format(const ek_msg *m, char fmt[4])
{
    if (!IS_MSG(m) || fmt == NULL) return EK_EINVAL;
    if (m->kind != EK_MSG_RESP || m->rtype != EK_RESP_VERBATIM) return EK_EKIND;
    memcpy(fmt, m->vfmt, 3);
    fmt[3] = '\0';
    return EK_OK;
}

static int resp_scalar(int type, ek_msg **out, ek_msg **m)
{
    if (out == NULL) return EK_EINVAL;
    *m = resp_new(type);
    if (*m == NULL) return EK_ENOMEM;
    *out = *m;
    return EK_OK;
}

int ek_msg_resp_integer(int64_t value, ek_msg **out)
{
    ek_msg *m;
    int rc = resp_scalar(EK_RESP_INTEGER, out, &m);
    if (rc == EK_OK) m->u.i = value;
    return rc;
}

int ek_msg_resp_double(double value, ek_msg **out)
{
    ek_msg *m;
    int rc = resp_scalar(EK_RESP_DOUBLE, out, &m);
    if (rc == EK_OK) m->u.d = value;
    return rc;
}

int ek_msg_resp_boolean(int value, ek_msg **out)
{
    ek_msg *m;
    int rc = resp_scalar(EK_RESP_BOOLEAN, out, &m);
    if (rc == EK_OK) m->u.b = value != 0;
    return rc;
}

static int resp_typed(const ek_msg *m, int type)
{
    if (!IS_MSG(m)) return EK_EINVAL;
    if (m->kind != EK_MSG_RESP || m->rtype != type) return EK_EKIND;
    return EK_OK;
}

int ek_msg_resp_get_integer(const ek_msg *m, int64_t *value)
{
    int rc = value ? resp_typed(m, EK_RESP_INTEGER) : EK_EINVAL;
    if (rc == EK_OK) *value = m->u.i;
    return rc;
}

int ek_msg_resp_get_double(const ek_msg *m, double *value)
{
    int rc = value ? resp_typed(m, EK_RESP_DOUBLE) : EK_EINVAL;
    if (rc == EK_OK) *value = m->u.d;
    return rc;
}

int ek_msg_resp_get_boolean(const ek_msg *m, int *value)
{
    int rc = value ? resp_typed(m, EK_RESP_BOOLEAN) : EK_EINVAL;
    if (rc == EK_OK) *value = m->u.b;
    return rc;
}

int ek_msg_resp_null(int type, ek_msg **out)
{
    if (out == NULL || (type != EK_RESP_NULL && type != EK_RESP_BULK && type != EK_RESP_ARRAY))
        return EK_EINVAL;
    ek_msg *m = resp_new(type);
    if (m == NULL) return EK_ENOMEM;
    m->is_null = 1;
    *out = m;
    return EK_OK;
}

int ek_msg_resp_is_null(const ek_msg *m)
{
    if (!IS_MSG(m)) return EK_EINVAL;
    if (m->kind != EK_MSG_RESP) return EK_EKIND;
    return m->is_null || m->rtype == EK_RESP_NULL;
}

int ek_msg_resp_aggregate(int type, size_t capacity, ek_msg **out)
{
    if (out == NULL || !is_resp_aggregate(type)) return EK_EINVAL;
    ek_msg *m = resp_new(type);
    if (m == NULL) return EK_ENOMEM;
    if (capacity > 0) {
        if (capacity > SIZE_MAX / sizeof(ek_msg *)) capacity = 16;
        m->u.agg.v = ek__malloc(capacity * sizeof *m->u.agg.v);
        if (m->u.agg.v == NULL) {
            msg_block_free(m);
            return EK_ENOMEM;
        }
        m->u.agg.cap = capacity;
    }
    *out = m;
    return EK_OK;
}

/* EK_OK if m is a non-null RESP aggregate. */
static int resp_agg(const ek_msg *m)
{
    if (!IS_MSG(m)) return EK_EINVAL;
    if (m->kind != EK_MSG_RESP || !is_resp_aggregate(m->rtype)) return EK_EKIND;
    return m->is_null ? EK_EEMPTY : EK_OK;
}

/* ---- flat requests ---- */

int ek__msg_request_new(size_t argc, size_t inline_bytes, ek_msg **out, uint8_t **space)
{
    if (argc > (SIZE_MAX - sizeof(ek_msg) - inline_bytes) / sizeof(ek__arg)) return EK_ENOMEM;
    ek_msg *m = msg_block(sizeof *m + argc * sizeof(ek__arg) + inline_bytes);
    if (m == NULL) return EK_ENOMEM;
    m->tag = EK__TAG_MSG;
    m->kind = EK_MSG_RESP;
    m->rtype = EK_RESP_ARRAY;
    m->flat = 1;
    m->u.flat.a = (ek__arg *)(m + 1);
    m->u.flat.n = argc;
    *space = (uint8_t *)(m->u.flat.a + argc);
    *out = m;
    return EK_OK;
}

void ek__msg_request_set(ek_msg *m, size_t i, const uint8_t *p, size_t len)
{
    m->u.flat.a[i] = (ek__arg){p, len};
}

void ek__msg_request_hold(ek_msg *m, ek__chunk *chunk)
{
    m->u.flat.chunk = chunk;
}

/* Whether argument a of flat m lives in m's own allocation (inline). */
static bool flat_inline(const ek_msg *m, const ek__arg *a)
{
    return a->len > 0 && (m->u.flat.chunk == NULL || !ek__chunk_contains(m->u.flat.chunk, a->p));
}

/* Argument i as a new ek_bytes: a slice of the chunk, or a copy of an inline one. */
static int flat_arg_bytes(const ek_msg *m, size_t i, ek_bytes **out)
{
    const ek__arg *a = &m->u.flat.a[i];
    if (flat_inline(m, a)) return ek_bytes_copy(a->p, a->len, out);
    return ek__chunk_slice(m->u.flat.chunk, a->p, a->len, out);
}

static int flat_clone(const ek_msg *m, ek_msg **out)
{
    size_t n = m->u.flat.n, extra = 0;
    for (size_t i = 0; i < n; i++)
        if (flat_inline(m, &m->u.flat.a[i])) extra += m->u.flat.a[i].len;
    ek_msg *c;
    uint8_t *space;
    int rc = ek__msg_request_new(n, extra, &c, &space);
    if (rc == EK_OK && m->attr) {
        rc = ek_msg_clone(m->attr, &c->attr);
        if (rc != EK_OK) msg_block_free(c);
    }
    if (rc != EK_OK) return rc;
    for (size_t i = 0; i < n; i++) {
        ek__arg a = m->u.flat.a[i];
        if (flat_inline(m, &m->u.flat.a[i])) {
            memcpy(space, a.p, a.len);
            a.p = space;
            space += a.len;
        }
        c->u.flat.a[i] = a;
    }
    if (m->u.flat.chunk) ek__chunk_retain(m->u.flat.chunk);
    c->u.flat.chunk = m->u.flat.chunk;
    *out = c;
    return EK_OK;
}

/* Make a flat request an ordinary aggregate of bulk strings (children that
 * slice the frame). Its own allocation stays (the vector's memory goes unused).
 * A message is used by one thread at a time, so a const accessor may do this. */
static int flat_expand(const ek_msg *cm)
{
    ek_msg *m = (ek_msg *)cm;
    if (!m->flat) return EK_OK;
    size_t n = m->u.flat.n;
    ek_msg **v = n ? ek__malloc(n * sizeof *v) : NULL;
    if (n && v == NULL) return EK_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        ek_bytes *b;
        int rc = flat_arg_bytes(m, i, &b);
        if (rc == EK_OK) rc = ek_msg_resp_string_bytes(EK_RESP_BULK, b, &v[i]);
        if (rc != EK_OK) {
            while (i > 0) ek_msg_free(v[--i]);
            ek__free(v);
            return rc;
        }
    }
    ek__chunk_release(m->u.flat.chunk);
    m->flat = 0;
    m->u.agg.v = v;
    m->u.agg.n = m->u.agg.cap = n;
    return EK_OK;
}

/* The string value of child m, for ek_msg_resp_arg: EK_EKIND if not a string. */
static int arg_child(const ek_msg *m, size_t i, const ek_msg **child)
{
    int rc = resp_agg(m);
    if (rc != EK_OK) return rc;
    if (i >= (m->flat ? m->u.flat.n : m->u.agg.n)) return EK_ERANGE;
    if (m->flat) return EK_OK;
    const ek_msg *c = m->u.agg.v[i];
    if (c->kind != EK_MSG_RESP || (!is_resp_string(c->rtype) && c->rtype != EK_RESP_VERBATIM))
        return EK_EKIND;
    if (c->is_null) return EK_EEMPTY;
    *child = c;
    return EK_OK;
}

int ek_msg_resp_arg(const ek_msg *m, size_t i, const uint8_t **data, size_t *len)
{
    const ek_msg *c = NULL;
    int rc = arg_child(m, i, &c);
    if (rc != EK_OK) return rc;
    const uint8_t *p = c ? c->payload->ptr : m->u.flat.a[i].p;
    size_t n = c ? c->payload->len : m->u.flat.a[i].len;
    if (data) *data = p;
    if (len) *len = n;
    return EK_OK;
}

int ek_msg_resp_arg_type(const ek_msg *m, size_t i)
{
    int rc = resp_agg(m);
    if (rc != EK_OK) return rc;
    if (i >= (m->flat ? m->u.flat.n : m->u.agg.n)) return EK_ERANGE;
    if (m->flat) return EK_RESP_BULK;
    const ek_msg *c = m->u.agg.v[i];
    return c->kind == EK_MSG_RESP ? c->rtype : EK_EKIND;
}

int ek_msg_resp_arg_bytes(const ek_msg *m, size_t i, ek_bytes **out)
{
    const ek_msg *c = NULL;
    int rc = out ? arg_child(m, i, &c) : EK_EINVAL;
    if (rc != EK_OK) return rc;
    return c ? ek_bytes_clone(c->payload, out) : flat_arg_bytes(m, i, out);
}

/* ---- shared replies ---- */

#define EK__SHARED_BYTES(s)                                                                        \
    {                                                                                              \
        .tag = EK__TAG_BYTES, .refs = 1u << 30, .ptr = (const uint8_t *)(s), .len = sizeof(s) - 1  \
    }
static ek_bytes shared_ok = EK__SHARED_BYTES("OK"), shared_pong = EK__SHARED_BYTES("PONG"),
                shared_empty = EK__SHARED_BYTES("");
#define EK__SHARED(type, ...)                                                                      \
    {                                                                                              \
        .tag = EK__TAG_MSG, .kind = EK_MSG_RESP, .rtype = (type), .shared = 1, __VA_ARGS__         \
    }
static ek_msg shared_msgs[] = {
    [EK_RESP_SHARED_OK] = EK__SHARED(EK_RESP_SIMPLE, .payload = &shared_ok),
    [EK_RESP_SHARED_PONG] = EK__SHARED(EK_RESP_SIMPLE, .payload = &shared_pong),
    [EK_RESP_SHARED_NULL_BULK] = EK__SHARED(EK_RESP_BULK, .is_null = 1),
    [EK_RESP_SHARED_NULL_ARRAY] = EK__SHARED(EK_RESP_ARRAY, .is_null = 1),
    [EK_RESP_SHARED_NULL] = EK__SHARED(EK_RESP_NULL),
    [EK_RESP_SHARED_ZERO] = EK__SHARED(EK_RESP_INTEGER, .u.i = 0),
    [EK_RESP_SHARED_ONE] = EK__SHARED(EK_RESP_INTEGER, .u.i = 1),
    [EK_RESP_SHARED_EMPTY_BULK] = EK__SHARED(EK_RESP_BULK, .payload = &shared_empty),
    [EK_RESP_SHARED_EMPTY_ARRAY] = EK__SHARED(EK_RESP_ARRAY),
};

int ek_msg_resp_shared(int which, ek_msg **out)
{
    if (out == NULL || which < 0 || (size_t)which >= sizeof shared_msgs / sizeof *shared_msgs)
        return EK_EINVAL;
    *out = &shared_msgs[which];
    return EK_OK;
}

int ek_msg_is_shared(const ek_msg *m)
{
    return IS_MSG(m) ? m->shared : EK_EINVAL;
}

int ek_msg_resp_append(ek_msg *agg, ek_msg *child)
{
    int rc = resp_agg(agg);
    if (rc == EK_EEMPTY) rc = EK_EKIND;
    if (rc == EK_OK && agg->shared) rc = EK_EPERM;
    if (rc == EK_OK && child == agg) rc = EK_EINVAL;
    if (rc == EK_OK) rc = flat_expand(agg);
    if (rc == EK_OK && (!IS_MSG(child) || child->kind != EK_MSG_RESP || child == agg))
        rc = EK_EINVAL;
    if (rc == EK_OK && agg->u.agg.n == agg->u.agg.cap) {
        size_t cap = agg->u.agg.cap ? agg->u.agg.cap * 2 : 4;
        ek_msg **v = ek__realloc(agg->u.agg.v, cap * sizeof *v);
        if (v == NULL)
            rc = EK_ENOMEM;
        else {
            agg->u.agg.v = v;
            agg->u.agg.cap = cap;
        }
    }
    if (rc != EK_OK) {
        if (child != agg) ek_msg_free(child);
        return rc;
    }
    agg->u.agg.v[agg->u.agg.n++] = child;
    return EK_OK;
}

int64_t ek_msg_resp_len(const ek_msg *m)
{
    int rc = resp_agg(m);
    if (rc != EK_OK) return rc;
    return (int64_t)(m->flat ? m->u.flat.n : m->u.agg.n);
}

int ek_msg_resp_child(const ek_msg *m, size_t i, ek_msg **out)
{
    int rc = out ? resp_agg(m) : EK_EINVAL;
    if (rc == EK_OK && m->flat && i >= m->u.flat.n) rc = EK_ERANGE;
    if (rc == EK_OK) rc = flat_expand(m);
    if (rc != EK_OK) return rc;
    if (i >= m->u.agg.n) return EK_ERANGE;
    *out = m->u.agg.v[i];
    return EK_OK;
}

int ek_msg_resp_take(ek_msg *m, size_t i, ek_msg **out)
{
    int rc = IS_MSG(m) && m->shared ? EK_EPERM : ek_msg_resp_child(m, i, out);
    if (rc != EK_OK) return rc;
    memmove(&m->u.agg.v[i], &m->u.agg.v[i + 1], (m->u.agg.n - i - 1) * sizeof *m->u.agg.v);
    m->u.agg.n--;
    return EK_OK;
}

int ek_msg_resp_set_attribute(ek_msg *m, ek_msg *attr)
{
    int rc = EK_OK;
    if (!IS_MSG(m) || !IS_MSG(attr) || attr == m || attr->kind != EK_MSG_RESP ||
        attr->rtype != EK_RESP_ATTRIBUTE)
        rc = EK_EINVAL;
    else if (m->kind != EK_MSG_RESP)
        rc = EK_EKIND;
    else if (m->shared)
        rc = EK_EPERM;
    if (rc != EK_OK) {
        if (attr != m) ek_msg_free(attr);
        return rc;
    }
    ek_msg_free(m->attr);
    m->attr = attr;
    return EK_OK;
}

int ek_msg_resp_attribute(const ek_msg *m, ek_msg **out)
{
    if (!IS_MSG(m) || out == NULL) return EK_EINVAL;
    if (m->kind != EK_MSG_RESP) return EK_EKIND;
    *out = m->attr;
    return EK_OK;
}

/* ---- HTTP ---- */

/* Append s[0..len) to the arena; *off gets its offset. */
static int arena_add(ek__http *h, const char *s, size_t len, size_t *off)
{
    if (len > EK_BUF_MAX) return EK_ERANGE;
    if (h->arena_cap - h->arena_len < len) {
        size_t cap = h->arena_cap ? h->arena_cap * 2 : 128;
        while (cap - h->arena_len < len) cap *= 2;
        char *a = ek__realloc(h->arena, cap);
        if (a == NULL) return EK_ENOMEM;
        h->arena = a;
        h->arena_cap = cap;
    }
    if (len) memcpy(h->arena + h->arena_len, s, len);
    *off = h->arena_len;
    h->arena_len += len;
    return EK_OK;
}

static int http_new(int kind, int version, ek_msg **out, ek__http **hp)
{
    ek_msg *m = msg_new(kind);
    if (m == NULL) return EK_ENOMEM;
    ek__http *h = ek__calloc(1, sizeof *h);
    if (h == NULL) {
        msg_block_free(m);
        return EK_ENOMEM;
    }
    h->version = version;
    h->keep_alive = version == 11;
    m->u.http = h;
    *out = m;
    *hp = h;
    return EK_OK;
}

int ek_msg_http_request(const char *method, size_t method_len, const char *target,
                        size_t target_len, int version, ek_msg **out)
{
    if (out == NULL || method == NULL || method_len == 0 || (target == NULL && target_len) ||
        (version != 10 && version != 11))
        return EK_EINVAL;
    ek_msg *m;
    ek__http *h;
    int rc = http_new(EK_MSG_HTTP_REQUEST, version, &m, &h);
    if (rc != EK_OK) return rc;
    rc = arena_add(h, method, method_len, &h->a_off);
    if (rc == EK_OK) rc = arena_add(h, target, target_len, &h->target_off);
    if (rc != EK_OK) {
        ek_msg_free(m);
        return rc;
    }
    h->a_len = method_len;
    h->target_len = target_len;
    *out = m;
    return EK_OK;
}

int ek_msg_http_response(int status, const char *reason, size_t reason_len, int version,
                         ek_msg **out)
{
    if (out == NULL || status < 100 || status > 999 || (reason == NULL && reason_len) ||
        (version != 10 && version != 11))
        return EK_EINVAL;
    ek_msg *m;
    ek__http *h;
    int rc = http_new(EK_MSG_HTTP_RESPONSE, version, &m, &h);
    if (rc != EK_OK) return rc;
    rc = arena_add(h, reason, reason_len, &h->a_off);
    if (rc != EK_OK) {
        ek_msg_free(m);
        return rc;
    }
    h->a_len = reason_len;
    h->status = status;
    *out = m;
    return EK_OK;
}

static int http_field(const ek_msg *m, int kind, const char **s, size_t *len, size_t off,
                      size_t flen)
{
    if (m->kind != kind) return EK_EKIND;
    if (s) *s = m->u.http->arena ? m->u.http->arena + off : "";
    if (len) *len = flen;
    return EK_OK;
}

int ek_msg_http_method(const ek_msg *m, const char **s, size_t *len)
{
    if (!IS_MSG(m)) return EK_EINVAL;
    if (m->kind != EK_MSG_HTTP_REQUEST) return EK_EKIND;
    return http_field(m, EK_MSG_HTTP_REQUEST, s, len, m->u.http->a_off, m->u.http->a_len);
}

int ek_msg_http_target(const ek_msg *m, const char **s, size_t *len)
{
    if (!IS_MSG(m)) return EK_EINVAL;
    if (m->kind != EK_MSG_HTTP_REQUEST) return EK_EKIND;
    return http_field(m, EK_MSG_HTTP_REQUEST, s, len, m->u.http->target_off, m->u.http->target_len);
}

int ek_msg_http_reason(const ek_msg *m, const char **s, size_t *len)
{
    if (!IS_MSG(m)) return EK_EINVAL;
    if (m->kind != EK_MSG_HTTP_RESPONSE) return EK_EKIND;
    return http_field(m, EK_MSG_HTTP_RESPONSE, s, len, m->u.http->a_off, m->u.http->a_len);
}

int ek_msg_http_status(const ek_msg *m)
{
    if (!IS_MSG(m)) return EK_EINVAL;
    return m->kind == EK_MSG_HTTP_RESPONSE ? m->u.http->status : EK_EKIND;
}

int ek_msg_http_version(const ek_msg *m)
{
    if (!IS_MSG(m)) return EK_EINVAL;
    return is_http(m) ? m->u.http->version : EK_EKIND;
}

int ek_msg_http_add_header(ek_msg *m, const char *name, size_t name_len, const char *value,
                           size_t value_len)
{
    if (!IS_MSG(m) || name == NULL || name_len == 0 || (value == NULL && value_len))
        return EK_EINVAL;
    if (!is_http(m)) return EK_EKIND;
    ek__http *h = m->u.http;
    if (h->nhdr == h->hcap) {
        size_t cap = h->hcap ? h->hcap * 2 : 8;
        ek__hdr *v = ek__realloc(h->hdr, cap * sizeof *v);
        if (v == NULL) return EK_ENOMEM;
        h->hdr = v;
        h->hcap = cap;
    }
    size_t before = h->arena_len;
    ek__hdr e = {0, name_len, 0, value_len};
    int rc = arena_add(h, name, name_len, &e.name_off);
    if (rc == EK_OK) rc = arena_add(h, value, value_len, &e.value_off);
    if (rc != EK_OK) {
        h->arena_len = before;
        return rc;
    }
    h->hdr[h->nhdr++] = e;
    return EK_OK;
}

int64_t ek_msg_http_header_count(const ek_msg *m)
{
    if (!IS_MSG(m)) return EK_EINVAL;
    return is_http(m) ? (int64_t)m->u.http->nhdr : EK_EKIND;
}

int ek_msg_http_header(const ek_msg *m, size_t i, const char **name, size_t *name_len,
                       const char **value, size_t *value_len)
{
    if (!IS_MSG(m)) return EK_EINVAL;
    if (!is_http(m)) return EK_EKIND;
    const ek__http *h = m->u.http;
    if (i >= h->nhdr) return EK_ERANGE;
    if (name) *name = h->arena + h->hdr[i].name_off;
    if (name_len) *name_len = h->hdr[i].name_len;
    if (value) *value = h->arena + h->hdr[i].value_off;
    if (value_len) *value_len = h->hdr[i].value_len;
    return EK_OK;
}

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

int ek_msg_http_find_header(const ek_msg *m, const char *name, size_t name_len, const char **value,
                            size_t *value_len)
{
    if (!IS_MSG(m) || (name == NULL && name_len)) return EK_EINVAL;
    if (!is_http(m)) return EK_EKIND;
    const ek__http *h = m->u.http;
    for (size_t i = 0; i < h->nhdr; i++) {
        if (h->hdr[i].name_len != name_len) continue;
        const char *n = h->arena + h->hdr[i].name_off;
        size_t k = 0;
        while (k < name_len &&
               ascii_lower((unsigned char)n[k]) == ascii_lower((unsigned char)name[k]))
            k++;
        if (k < name_len) continue;
        if (value) *value = h->arena + h->hdr[i].value_off;
        if (value_len) *value_len = h->hdr[i].value_len;
        return EK_OK;
    }
    return EK_ENOENT;
}

int ek_msg_http_set_body(ek_msg *m, ek_bytes *body)
{
    int rc = EK_OK;
    if (!IS_MSG(m) || !EK__CHECK_TAG(body, EK__TAG_BYTES))
        rc = EK_EINVAL;
    else if (!is_http(m))
        rc = EK_EKIND;
    if (rc != EK_OK) {
        ek_bytes_release(body);
        return rc;
    }
    ek_bytes_release(m->payload);
    m->payload = body;
    return EK_OK;
}

int ek_msg_http_set_body_copy(ek_msg *m, const void *data, size_t len)
{
    if (!IS_MSG(m)) return EK_EINVAL;
    if (!is_http(m)) return EK_EKIND;
    ek_bytes *b;
    int rc = ek_bytes_copy(data, len, &b);
    if (rc != EK_OK) return rc;
    return ek_msg_http_set_body(m, b);
}

int ek_msg_http_keep_alive(const ek_msg *m)
{
    if (!IS_MSG(m)) return EK_EINVAL;
    return is_http(m) ? m->u.http->keep_alive : EK_EKIND;
}

int ek_msg_http_set_keep_alive(ek_msg *m, int keep_alive)
{
    if (!IS_MSG(m)) return EK_EINVAL;
    if (!is_http(m)) return EK_EKIND;
    m->u.http->keep_alive = keep_alive != 0;
    return EK_OK;
}

/* ---- HOST ---- */

int ek_msg_host(void *obj, ek_clone_fn clone, ek_drop_fn drop, ek_msg **out)
{
    ek_msg *m = out ? msg_new(EK_MSG_HOST) : NULL;
    if (m == NULL) {
        if (drop) drop(obj);
        return out ? EK_ENOMEM : EK_EINVAL;
    }
    m->u.host.obj = obj;
    m->u.host.clone = clone;
    m->u.host.drop = drop;
    *out = m;
    return EK_OK;
}

int ek_msg_host_get(const ek_msg *m, void **obj)
{
    if (!IS_MSG(m) || obj == NULL) return EK_EINVAL;
    if (m->kind != EK_MSG_HOST) return EK_EKIND;
    *obj = m->u.host.obj;
    return EK_OK;
}

/* ---- STREAM ---- */

static void frame_drop(void *p)
{
    ek_msg_free(p);
}

int ek_msg_stream(size_t cap, ek_mpsc_sender **tx, ek_msg **out)
{
    if (cap == 0 || tx == NULL || out == NULL) return EK_EINVAL;
    ek_msg *m = msg_new(EK_MSG_STREAM);
    if (m == NULL) return EK_ENOMEM;
    int rc = ek_mpsc_bounded(cap, frame_drop, tx, &m->u.stream);
    if (rc != EK_OK) {
        msg_block_free(m);
        return rc;
    }
    *out = m;
    return EK_OK;
}

int ek_msg_stream_next(ek_msg *m, ek_cx *cx, ek_msg **frame)
{
    if (!IS_MSG(m) || cx == NULL || frame == NULL) return EK_EINVAL;
    if (m->kind != EK_MSG_STREAM) return EK_EKIND;
    void *f = NULL;
    int rc = ek_mpsc_recv(m->u.stream, cx, &f);
    if (rc == EK_OK) *frame = f;
    return rc;
}
