/* test_msg.c - ek_msg: every kind and RESP type built and read through
 * functions, exact errors for accessors of another kind, deep clones that share
 * payloads, host objects, streams, and allocation failure at every step. */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Another reference to b, asserting success. */
static ek_bytes *bref(ek_bytes *b)
{
    ek_bytes *o = NULL;
    assert_int_equal(ek_bytes_clone(b, &o), EK_OK);
    assert_ptr_equal(o, b);
    return o;
}

static void assert_data(const ek_msg *m, const char *want)
{
    const uint8_t *d = NULL;
    size_t n = 0;
    assert_int_equal(ek_msg_data(m, &d, &n), EK_OK);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(d, want, n);
}

static void test_bytes_message_shares_its_payload(void **s)
{
    (void)s;
    ek_bytes *b;
    assert_int_equal(ek_bytes_copy("frame", 5, &b), EK_OK);
    ek_msg *m;
    assert_int_equal(ek_msg_bytes_new(bref(b), &m), EK_OK);
    assert_int_equal(ek_msg_kind(m), EK_MSG_BYTES);
    ek_bytes *p;
    assert_int_equal(ek_msg_payload(m, &p), EK_OK);
    assert_ptr_equal(p, b);
    assert_data(m, "frame");
    ek_msg *c;
    assert_int_equal(ek_msg_clone(m, &c), EK_OK);
    const uint8_t *d;
    assert_int_equal(ek_msg_data(c, &d, NULL), EK_OK);
    assert_ptr_equal(d, ek_bytes_data(b)); /* shared, not copied */
    ek_msg_free(m);
    ek_msg_free(c);
    ek_bytes_release(b);
    assert_int_equal(ek_msg_bytes_copy("x", 1, &m), EK_OK);
    assert_data(m, "x");
    /* Wrong-kind accessors. */
    int64_t i;
    assert_int_equal(ek_msg_resp_type(m), EK_EKIND);
    assert_int_equal(ek_msg_resp_get_integer(m, &i), EK_EKIND);
    assert_int_equal(ek_msg_http_status(m), EK_EKIND);
    assert_int_equal(ek_msg_http_add_header(m, "a", 1, "b", 1), EK_EKIND);
    void *obj;
    assert_int_equal(ek_msg_host_get(m, &obj), EK_EKIND);
    ek_msg_free(m);
    /* Consumes its payload even on error. */
    assert_int_equal(ek_bytes_copy("y", 1, &b), EK_OK);
    assert_int_equal(ek_msg_bytes_new(b, NULL), EK_EINVAL);
    assert_int_equal(ek_msg_bytes_new(NULL, &m), EK_EINVAL);
}

static void test_resp_strings_and_scalars(void **s)
{
    (void)s;
    const int types[] = {EK_RESP_SIMPLE, EK_RESP_ERROR, EK_RESP_BULK, EK_RESP_BULK_ERROR,
                         EK_RESP_BIG_NUMBER};
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        ek_msg *m;
        assert_int_equal(ek_msg_resp_string(types[k], "OK 12", 5, &m), EK_OK);
        assert_int_equal(ek_msg_kind(m), EK_MSG_RESP);
        assert_int_equal(ek_msg_resp_type(m), types[k]);
        assert_int_equal(ek_msg_resp_is_null(m), 0);
        assert_data(m, "OK 12");
        int64_t i;
        assert_int_equal(ek_msg_resp_get_integer(m, &i), EK_EKIND);
        assert_int_equal(ek_msg_resp_len(m), EK_EKIND);
        ek_msg_free(m);
    }
    ek_msg *m;
    assert_int_equal(ek_msg_resp_string(EK_RESP_INTEGER, "1", 1, &m), EK_EINVAL);
    assert_int_equal(ek_msg_resp_string(EK_RESP_BULK, NULL, 0, &m), EK_OK);
    assert_data(m, "");
    ek_msg_free(m);

    assert_int_equal(ek_msg_resp_integer(-42, &m), EK_OK);
    int64_t i = 0;
    assert_int_equal(ek_msg_resp_get_integer(m, &i), EK_OK);
    assert_int_equal(i, -42);
    double d;
    assert_int_equal(ek_msg_resp_get_double(m, &d), EK_EKIND);
    assert_int_equal(ek_msg_data(m, NULL, NULL), EK_EKIND);
    assert_int_equal(ek_msg_resp_get_integer(m, NULL), EK_EINVAL);
    ek_msg_free(m);

    assert_int_equal(ek_msg_resp_double(INFINITY, &m), EK_OK);
    assert_int_equal(ek_msg_resp_get_double(m, &d), EK_OK);
    assert_true(isinf(d));
    ek_msg *c;
    assert_int_equal(ek_msg_clone(m, &c), EK_OK);
    assert_int_equal(ek_msg_resp_get_double(c, &d), EK_OK);
    assert_true(isinf(d));
    ek_msg_free(c);
    ek_msg_free(m);

    int b = 0;
    assert_int_equal(ek_msg_resp_boolean(7, &m), EK_OK);
    assert_int_equal(ek_msg_resp_get_boolean(m, &b), EK_OK);
    assert_int_equal(b, 1);
    ek_msg_free(m);

    assert_int_equal(ek_msg_resp_verbatim("txt", "Some string", 11, &m), EK_OK);
    assert_int_equal(ek_msg_resp_type(m), EK_RESP_VERBATIM);
    char fmt[4];
    assert_int_equal(ek_msg_resp_verbatim_format(m, fmt), EK_OK);
    assert_string_equal(fmt, "txt");
    assert_data(m, "Some string");
    assert_int_equal(ek_msg_clone(m, &c), EK_OK);
    assert_int_equal(ek_msg_resp_verbatim_format(c, fmt), EK_OK);
    assert_string_equal(fmt, "txt");
    ek_msg_free(c);
    ek_msg_free(m);
    assert_int_equal(ek_msg_resp_integer(1, &m), EK_OK);
    assert_int_equal(ek_msg_resp_verbatim_format(m, fmt), EK_EKIND);
    ek_msg_free(m);
}

static void test_resp_nulls(void **s)
{
    (void)s;
    const int types[] = {EK_RESP_NULL, EK_RESP_BULK, EK_RESP_ARRAY};
    for (size_t k = 0; k < 3; k++) {
        ek_msg *m;
        assert_int_equal(ek_msg_resp_null(types[k], &m), EK_OK);
        assert_int_equal(ek_msg_resp_type(m), types[k]);
        assert_int_equal(ek_msg_resp_is_null(m), 1);
        ek_msg *c;
        assert_int_equal(ek_msg_clone(m, &c), EK_OK);
        assert_int_equal(ek_msg_resp_is_null(c), 1);
        ek_msg_free(c);
        if (types[k] == EK_RESP_BULK) assert_int_equal(ek_msg_data(m, NULL, NULL), EK_EEMPTY);
        if (types[k] == EK_RESP_ARRAY) {
            assert_int_equal(ek_msg_resp_len(m), EK_EEMPTY);
            ek_msg *child;
            assert_int_equal(ek_msg_resp_child(m, 0, &child), EK_EEMPTY);
            assert_int_equal(ek_msg_resp_integer(1, &child), EK_OK);
            assert_int_equal(ek_msg_resp_append(m, child), EK_EKIND); /* child freed */
        }
        ek_msg_free(m);
    }
    ek_msg *m;
    assert_int_equal(ek_msg_resp_null(EK_RESP_MAP, &m), EK_EINVAL);
    assert_int_equal(ek_msg_resp_null(EK_RESP_NULL, NULL), EK_EINVAL);
}

/* A command as a decoder builds it: *2 $3 GET $3 key. */
static ek_msg *command(const char *a, const char *b)
{
    ek_msg *cmd, *x;
    assert_int_equal(ek_msg_resp_aggregate(EK_RESP_ARRAY, 2, &cmd), EK_OK);
    assert_int_equal(ek_msg_resp_string(EK_RESP_BULK, a, strlen(a), &x), EK_OK);
    assert_int_equal(ek_msg_resp_append(cmd, x), EK_OK);
    assert_int_equal(ek_msg_resp_string(EK_RESP_BULK, b, strlen(b), &x), EK_OK);
    assert_int_equal(ek_msg_resp_append(cmd, x), EK_OK);
    return cmd;
}

static void test_resp_aggregates_children_take_and_clone(void **s)
{
    (void)s;
    ek_msg *cmd = command("GET", "key");
    assert_int_equal(ek_msg_resp_len(cmd), 2);
    ek_msg *c0;
    assert_int_equal(ek_msg_resp_child(cmd, 0, &c0), EK_OK);
    assert_data(c0, "GET");
    assert_int_equal(ek_msg_resp_child(cmd, 2, &c0), EK_ERANGE);
    /* Deep clone; payloads shared. */
    ek_msg *cl;
    assert_int_equal(ek_msg_clone(cmd, &cl), EK_OK);
    ek_msg *k1, *k2;
    assert_int_equal(ek_msg_resp_child(cmd, 1, &k1), EK_OK);
    assert_int_equal(ek_msg_resp_child(cl, 1, &k2), EK_OK);
    assert_ptr_not_equal(k1, k2);
    const uint8_t *d1, *d2;
    assert_int_equal(ek_msg_data(k1, &d1, NULL), EK_OK);
    assert_int_equal(ek_msg_data(k2, &d2, NULL), EK_OK);
    assert_ptr_equal(d1, d2);
    /* Take moves a child out. */
    ek_msg *taken;
    assert_int_equal(ek_msg_resp_take(cmd, 0, &taken), EK_OK);
    assert_data(taken, "GET");
    assert_int_equal(ek_msg_resp_len(cmd), 1);
    assert_int_equal(ek_msg_resp_child(cmd, 0, &c0), EK_OK);
    assert_data(c0, "key");
    ek_msg_free(taken);
    ek_msg_free(cmd);
    assert_int_equal(ek_msg_resp_len(cl), 2);
    ek_msg_free(cl);

    /* Every aggregate type, a map of key/value pairs, nesting, an attribute. */
    const int aggs[] = {EK_RESP_ARRAY, EK_RESP_SET, EK_RESP_PUSH, EK_RESP_MAP, EK_RESP_ATTRIBUTE};
    for (size_t k = 0; k < 5; k++) {
        ek_msg *a;
        assert_int_equal(ek_msg_resp_aggregate(aggs[k], 0, &a), EK_OK);
        assert_int_equal(ek_msg_resp_type(a), aggs[k]);
        assert_int_equal(ek_msg_resp_len(a), 0);
        for (int i = 0; i < 9; i++) {
            ek_msg *x;
            assert_int_equal(ek_msg_resp_integer(i, &x), EK_OK);
            assert_int_equal(ek_msg_resp_append(a, x), EK_OK);
        }
        assert_int_equal(ek_msg_resp_append(a, command("a", "b")), EK_OK);
        assert_int_equal(ek_msg_resp_len(a), 10);
        ek_msg *last;
        assert_int_equal(ek_msg_resp_child(a, 9, &last), EK_OK);
        assert_int_equal(ek_msg_resp_len(last), 2);
        ek_msg_free(a);
    }
    ek_msg *v, *attr, *got;
    assert_int_equal(ek_msg_resp_string(EK_RESP_SIMPLE, "OK", 2, &v), EK_OK);
    assert_int_equal(ek_msg_resp_attribute(v, &got), EK_OK);
    assert_null(got);
    assert_int_equal(ek_msg_resp_aggregate(EK_RESP_ATTRIBUTE, 2, &attr), EK_OK);
    ek_msg *key, *val;
    assert_int_equal(ek_msg_resp_string(EK_RESP_SIMPLE, "ttl", 3, &key), EK_OK);
    assert_int_equal(ek_msg_resp_integer(3600, &val), EK_OK);
    assert_int_equal(ek_msg_resp_append(attr, key), EK_OK);
    assert_int_equal(ek_msg_resp_append(attr, val), EK_OK);
    assert_int_equal(ek_msg_resp_set_attribute(v, attr), EK_OK);
    assert_int_equal(ek_msg_resp_attribute(v, &got), EK_OK);
    assert_ptr_equal(got, attr);
    assert_int_equal(ek_msg_clone(v, &cl), EK_OK);
    assert_int_equal(ek_msg_resp_attribute(cl, &got), EK_OK);
    assert_int_equal(ek_msg_resp_len(got), 2);
    ek_msg_free(cl);
    /* Only an ATTRIBUTE can be attached (consumed either way). */
    assert_int_equal(ek_msg_resp_integer(1, &val), EK_OK);
    assert_int_equal(ek_msg_resp_set_attribute(v, val), EK_EINVAL);
    ek_msg_free(v);

    /* Bad children: not RESP, or itself; both consumed except self. */
    ek_msg *arr, *bytes;
    assert_int_equal(ek_msg_resp_aggregate(EK_RESP_ARRAY, 0, &arr), EK_OK);
    assert_int_equal(ek_msg_bytes_copy("x", 1, &bytes), EK_OK);
    assert_int_equal(ek_msg_resp_append(arr, bytes), EK_EINVAL);
    assert_int_equal(ek_msg_resp_append(arr, arr), EK_EINVAL);
    assert_int_equal(ek_msg_resp_append(arr, NULL), EK_EINVAL);
    assert_int_equal(ek_msg_resp_len(arr), 0);
    ek_msg_free(arr);
    assert_int_equal(ek_msg_resp_aggregate(EK_RESP_BULK, 0, &arr), EK_EINVAL);
    ek_msg *sc;
    assert_int_equal(ek_msg_resp_integer(1, &sc), EK_OK);
    assert_int_equal(ek_msg_resp_integer(2, &val), EK_OK);
    assert_int_equal(ek_msg_resp_append(sc, val), EK_EKIND);
    ek_msg_free(sc);
}

static void test_http_request_and_response(void **s)
{
    (void)s;
    ek_msg *rq;
    assert_int_equal(ek_msg_http_request("GET", 3, "/index.html", 11, 11, &rq), EK_OK);
    assert_int_equal(ek_msg_kind(rq), EK_MSG_HTTP_REQUEST);
    const char *str;
    size_t n;
    assert_int_equal(ek_msg_http_method(rq, &str, &n), EK_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(str, "GET", 3);
    assert_int_equal(ek_msg_http_target(rq, &str, &n), EK_OK);
    assert_memory_equal(str, "/index.html", n);
    assert_int_equal(ek_msg_http_version(rq), 11);
    assert_int_equal(ek_msg_http_keep_alive(rq), 1);
    assert_int_equal(ek_msg_http_status(rq), EK_EKIND);
    assert_int_equal(ek_msg_http_reason(rq, &str, &n), EK_EKIND);
    for (int i = 0; i < 40; i++) {
        char name[16], value[16];
        int nl = snprintf(name, sizeof name, "X-H%d", i);
        int vl = snprintf(value, sizeof value, "v%d", i);
        assert_int_equal(ek_msg_http_add_header(rq, name, (size_t)nl, value, (size_t)vl), EK_OK);
    }
    assert_int_equal(ek_msg_http_add_header(rq, "Host", 4, "example.com", 11), EK_OK);
    assert_int_equal(ek_msg_http_header_count(rq), 41);
    const char *nm, *val;
    size_t nlen, vlen;
    assert_int_equal(ek_msg_http_header(rq, 39, &nm, &nlen, &val, &vlen), EK_OK);
    assert_memory_equal(nm, "X-H39", nlen);
    assert_memory_equal(val, "v39", vlen);
    assert_int_equal(ek_msg_http_header(rq, 41, &nm, &nlen, &val, &vlen), EK_ERANGE);
    assert_int_equal(ek_msg_http_find_header(rq, "hOST", 4, &val, &vlen), EK_OK);
    assert_memory_equal(val, "example.com", vlen);
    assert_int_equal(ek_msg_http_find_header(rq, "Content-Length", 14, &val, &vlen), EK_ENOENT);
    assert_int_equal(ek_msg_http_add_header(rq, "", 0, "x", 1), EK_EINVAL);
    /* No body yet: an empty payload. */
    assert_data(rq, "");
    assert_int_equal(ek_msg_http_set_body_copy(rq, "a=1", 3), EK_OK);
    assert_data(rq, "a=1");
    assert_int_equal(ek_msg_http_set_keep_alive(rq, 0), EK_OK);
    assert_int_equal(ek_msg_http_keep_alive(rq), 0);
    ek_msg *cl;
    assert_int_equal(ek_msg_clone(rq, &cl), EK_OK);
    ek_msg_free(rq);
    assert_int_equal(ek_msg_http_find_header(cl, "x-h0", 4, &val, &vlen), EK_OK);
    assert_memory_equal(val, "v0", vlen);
    assert_int_equal(ek_msg_http_keep_alive(cl), 0);
    assert_data(cl, "a=1");
    ek_msg_free(cl);

    ek_msg *rs;
    assert_int_equal(ek_msg_http_response(200, "OK", 2, 10, &rs), EK_OK);
    assert_int_equal(ek_msg_kind(rs), EK_MSG_HTTP_RESPONSE);
    assert_int_equal(ek_msg_http_status(rs), 200);
    assert_int_equal(ek_msg_http_reason(rs, &str, &n), EK_OK);
    assert_memory_equal(str, "OK", n);
    assert_int_equal(ek_msg_http_keep_alive(rs), 0); /* HTTP/1.0 default */
    assert_int_equal(ek_msg_http_method(rs, &str, &n), EK_EKIND);
    ek_bytes *body;
    assert_int_equal(ek_bytes_copy("Hello, World!", 13, &body), EK_OK);
    assert_int_equal(ek_msg_http_set_body(rs, body), EK_OK);
    assert_data(rs, "Hello, World!");
    ek_msg_free(rs);
    assert_int_equal(ek_msg_http_response(99, "", 0, 11, &rs), EK_EINVAL);
    assert_int_equal(ek_msg_http_response(200, NULL, 0, 12, &rs), EK_EINVAL);
    assert_int_equal(ek_msg_http_response(204, NULL, 0, 11, &rs), EK_OK);
    assert_int_equal(ek_msg_http_reason(rs, &str, &n), EK_OK);
    assert_int_equal(n, 0);
    ek_msg_free(rs);
    assert_int_equal(ek_msg_http_request("", 0, "/", 1, 11, &rq), EK_EINVAL);
    assert_int_equal(ek_msg_http_request("GET", 3, NULL, 1, 11, &rq), EK_EINVAL);
    /* A body on a RESP message: consumed, EK_EKIND. */
    ek_msg *r;
    assert_int_equal(ek_msg_resp_integer(1, &r), EK_OK);
    assert_int_equal(ek_bytes_copy("x", 1, &body), EK_OK);
    assert_int_equal(ek_msg_http_set_body(r, body), EK_EKIND);
    assert_int_equal(ek_msg_http_keep_alive(r), EK_EKIND);
    ek_msg_free(r);
}

static atomic_int host_live, host_drops_n;
typedef struct host_obj {
    int v;
} host_obj;
static int host_clone(void *o, void **out)
{
    host_obj *c = malloc(sizeof *c);
    if (c == NULL) return EK_ENOMEM;
    c->v = ((host_obj *)o)->v + 100;
    atomic_fetch_add(&host_live, 1);
    *out = c;
    return EK_OK;
}
static int host_clone_fails(void *o, void **out)
{
    (void)o;
    (void)out;
    return EK_EPERM;
}
static void host_drop(void *o)
{
    atomic_fetch_add(&host_drops_n, 1);
    atomic_fetch_sub(&host_live, 1);
    free(o);
}
static host_obj *host_new(int v)
{
    host_obj *o = malloc(sizeof *o);
    o->v = v;
    atomic_fetch_add(&host_live, 1);
    return o;
}

static void test_host_objects_clone_and_drop_once(void **s)
{
    (void)s;
    atomic_store(&host_live, 0);
    atomic_store(&host_drops_n, 0);
    ek_msg *m, *c;
    assert_int_equal(ek_msg_host(host_new(1), host_clone, host_drop, &m), EK_OK);
    assert_int_equal(ek_msg_kind(m), EK_MSG_HOST);
    void *o;
    assert_int_equal(ek_msg_host_get(m, &o), EK_OK);
    assert_int_equal(((host_obj *)o)->v, 1);
    assert_int_equal(ek_msg_clone(m, &c), EK_OK);
    assert_int_equal(ek_msg_host_get(c, &o), EK_OK);
    assert_int_equal(((host_obj *)o)->v, 101);
    assert_int_equal(ek_msg_data(m, NULL, NULL), EK_EKIND);
    ek_msg_free(m);
    ek_msg_free(c);
    assert_int_equal(atomic_load(&host_drops_n), 2);
    assert_int_equal(atomic_load(&host_live), 0);
    /* No clone function: EK_ENOTSUP; a failing one: its error, nothing leaked. */
    assert_int_equal(ek_msg_host(host_new(2), NULL, host_drop, &m), EK_OK);
    assert_int_equal(ek_msg_clone(m, &c), EK_ENOTSUP);
    ek_msg_free(m);
    assert_int_equal(ek_msg_host(host_new(3), host_clone_fails, host_drop, &m), EK_OK);
    assert_int_equal(ek_msg_clone(m, &c), EK_EPERM);
    ek_msg_free(m);
    assert_int_equal(atomic_load(&host_drops_n), 4);
    /* Errors drop the object. */
    assert_int_equal(ek_msg_host(host_new(4), NULL, host_drop, NULL), EK_EINVAL);
    ekt_alloc_fail_after(0);
    assert_int_equal(ek_msg_host(host_new(5), NULL, host_drop, &m), EK_ENOMEM);
    assert_int_equal(atomic_load(&host_drops_n), 6);
    assert_int_equal(atomic_load(&host_live), 0);
}

/* A stream: a producer task sends three frames and ends; the consumer reads them. */
typedef struct stream_st {
    ek_msg *stream;
    ek_mpsc_sender *tx;
    int sent, got;
} stream_st;

static int stream_poll(void *p, ek_cx *cx, void **out)
{
    stream_st *st = p;
    while (st->tx && st->sent < 3) {
        ek_msg *f;
        assert_int_equal(ek_msg_resp_integer(st->sent, &f), EK_OK);
        int rc = ek_mpsc_send(st->tx, cx, f);
        if (rc == EK_PENDING) {
            ek_msg_free(f);
            break;
        }
        assert_int_equal(rc, EK_OK);
        st->sent++;
    }
    if (st->sent == 3 && st->tx) {
        ek_mpsc_sender_drop(st->tx);
        st->tx = NULL;
    }
    for (;;) {
        ek_msg *f = NULL;
        int rc = ek_msg_stream_next(st->stream, cx, &f);
        if (rc == EK_PENDING) return rc;
        if (rc == EK_ECLOSED) break;
        assert_int_equal(rc, EK_OK);
        int64_t v;
        assert_int_equal(ek_msg_resp_get_integer(f, &v), EK_OK);
        assert_int_equal(v, st->got);
        st->got++;
        ek_msg_free(f);
    }
    *out = NULL;
    return EK_OK;
}

static void test_stream_delivers_frames_then_ends(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    stream_st st = {0};
    assert_int_equal(ek_msg_stream(2, &st.tx, &st.stream), EK_OK);
    assert_int_equal(ek_msg_kind(st.stream), EK_MSG_STREAM);
    ek_msg *c;
    assert_int_equal(ek_msg_clone(st.stream, &c), EK_ENOTSUP);
    assert_int_equal(ekt_block_on_fn(rt, stream_poll, &st, NULL), EK_OK);
    assert_int_equal(st.got, 3);
    ek_msg_free(st.stream);
    /* Frames queued when the stream message goes are freed with it. */
    assert_int_equal(ek_msg_stream(4, &st.tx, &st.stream), EK_OK);
    ek_msg *f;
    assert_int_equal(ek_msg_resp_integer(1, &f), EK_OK);
    assert_int_equal(ek_mpsc_try_send(st.tx, f), EK_OK);
    ek_msg_free(st.stream);
    ek_mpsc_sender_drop(st.tx);
    assert_int_equal(ek_msg_stream(0, &st.tx, &st.stream), EK_EINVAL);
    ekt_rt_free_checked(rt);
}

static void test_bad_handles_give_einval(void **s)
{
    (void)s;
    int junk[16] = {0};
    ek_msg *bad = (ek_msg *)junk, *m;
    assert_int_equal(ek_msg_kind(NULL), EK_EINVAL);
    assert_int_equal(ek_msg_kind(bad), EK_EINVAL);
    assert_int_equal(ek_msg_clone(bad, &m), EK_EINVAL);
    assert_int_equal(ek_msg_data(bad, NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_msg_resp_type(bad), EK_EINVAL);
    assert_int_equal(ek_msg_resp_len(bad), EK_EINVAL);
    assert_int_equal(ek_msg_resp_is_null(bad), EK_EINVAL);
    assert_int_equal(ek_msg_http_status(bad), EK_EINVAL);
    assert_int_equal(ek_msg_http_header_count(bad), EK_EINVAL);
    assert_int_equal(ek_msg_http_keep_alive(bad), EK_EINVAL);
    assert_int_equal(ek_msg_stream_next(bad, NULL, &m), EK_EINVAL);
    ek_msg_free(bad);
    ek_msg_free(NULL);
    assert_int_equal(ek_msg_resp_integer(1, NULL), EK_EINVAL);
    assert_int_equal(ek_msg_resp_aggregate(EK_RESP_ARRAY, 1, NULL), EK_EINVAL);
}

/* Build a nested value and clone it with the n-th allocation failing, for every
 * n until the clone succeeds: each failure is EK_ENOMEM and leaks nothing. */
static ek_msg *nested(void)
{
    ek_msg *map;
    assert_int_equal(ek_msg_resp_aggregate(EK_RESP_MAP, 0, &map), EK_OK);
    for (int i = 0; i < 3; i++) {
        ek_msg *k, *v;
        assert_int_equal(ek_msg_resp_string(EK_RESP_BULK, "k", 1, &k), EK_OK);
        assert_int_equal(ek_msg_resp_append(map, k), EK_OK);
        v = command("SET", "v");
        assert_int_equal(ek_msg_resp_append(map, v), EK_OK);
    }
    return map;
}

static void test_clone_under_allocation_failure(void **s)
{
    (void)s;
    ek_msg *src = nested();
    long live = ekt_alloc_live();
    int failures = 0;
    for (long n = 0;; n++) {
        ek_msg *c = NULL;
        ekt_alloc_fail_after(n);
        int rc = ek_msg_clone(src, &c);
        ekt_alloc_fail_after(-1);
        if (rc == EK_OK) {
            assert_int_equal(ek_msg_resp_len(c), 6);
            ek_msg_free(c);
            break;
        }
        assert_int_equal(rc, EK_ENOMEM);
        assert_int_equal(ekt_alloc_live(), live);
        failures++;
    }
    assert_true(failures >= 10);
    ek_msg_free(src);
    /* HTTP clone too. */
    ek_msg *rq;
    assert_int_equal(ek_msg_http_request("GET", 3, "/", 1, 11, &rq), EK_OK);
    assert_int_equal(ek_msg_http_add_header(rq, "a", 1, "b", 1), EK_OK);
    live = ekt_alloc_live();
    for (long n = 0;; n++) {
        ek_msg *c = NULL;
        ekt_alloc_fail_after(n);
        int rc = ek_msg_clone(rq, &c);
        ekt_alloc_fail_after(-1);
        if (rc == EK_OK) {
            ek_msg_free(c);
            break;
        }
        assert_int_equal(rc, EK_ENOMEM);
        assert_int_equal(ekt_alloc_live(), live);
    }
    /* And building: a header that cannot be stored leaves the message as it was. */
    ekt_alloc_fail_after(0);
    int rc = EK_OK;
    for (int i = 0; i < 64 && rc == EK_OK; i++) rc = ek_msg_http_add_header(rq, "n", 1, "v", 1);
    ekt_alloc_fail_after(-1);
    ek_msg_free(rq);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bytes_message_shares_its_payload, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_resp_strings_and_scalars, ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_resp_nulls, ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_resp_aggregates_children_take_and_clone, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_http_request_and_response, ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_host_objects_clone_and_drop_once, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_stream_delivers_frames_then_ends, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_bad_handles_give_einval, ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_clone_under_allocation_failure, ekt_setup,
                                        ekt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
