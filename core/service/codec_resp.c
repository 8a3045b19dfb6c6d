/*
 * codec_resp.c - the RESP codecs (server and client sides) over the scanners of
 * resp.c. Bulk strings become slices of the frame, which is split off the read
 * buffer: the payload bytes are never copied.
 */
#include "buf/buf.h"
#include "codec.h"
#include "resp.h"
#include "service/svc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

typedef struct ek__hello {
    uint64_t seq; /* the request's number */
    int proto;    /* 2 or 3 */
} ek__hello;

typedef struct ek__resp {
    int server; /* 1: request grammar in, responses out */
    int proto;  /* what encode writes: 2 or 3 */
    ek__resp_toks toks;
    char *scratch;
    size_t scratch_cap;
    uint64_t decoded, encoded; /* requests decoded, responses encoded */
    ek__hello *hellos;         /* HELLO requests whose responses are not encoded yet */
    size_t nhello, hello_cap;
    /* The framed client's side (client_request/client_frame): what answers each
     * request written and not yet answered (EK__ANS_*, a ring), and the protocol
     * the connection speaks (2 until a HELLO 3 is answered without an error). */
    uint8_t *ans;
    size_t ans_head, ans_len, ans_cap;
    int negotiated;
} ek__resp;

/* What answers a request (the framed client's notes): the next frame that is not
 * a push; that frame, switching the connection's protocol when it is not an
 * error (HELLO 2, HELLO 3); or the first push frame whose kind is the command's
 * name (the (P|S)(UN)SUBSCRIBE commands in RESP3, each confirmed by pushes). */
enum { EK__ANS_FRAME, EK__ANS_HELLO2, EK__ANS_HELLO3, EK__ANS_SUB };
static const char *const ek__sub_names[] = {"subscribe",   "psubscribe",   "ssubscribe",
                                            "unsubscribe", "punsubscribe", "sunsubscribe"};
#define EK__NSUB (sizeof ek__sub_names / sizeof *ek__sub_names)

static void ek__resp_drop(void *self)
{
    ek__resp *r = self;
    ek__resp_toks_free(&r->toks);
    ek__free(r->scratch);
    ek__free(r->hellos);
    ek__free(r->ans);
    ek__free(r);
}

/* ---- decode: tokens to messages ---- */

static int ek__resp_slice(ek_bytes *frame, const ek__resp_tok *t, ek_bytes **out)
{
    return ek_bytes_slice(frame, t->off, t->len, out);
}

static int ek__resp_string(ek_bytes *frame, const ek__resp_tok *t, int type, ek_msg **out)
{
    ek_bytes *b;
    int rc = ek__resp_slice(frame, t, &b);
    if (rc != EK_OK) return rc;
    return ek_msg_resp_string_bytes(type, b, out);
}

/* Build the value at toks[*i] (and its subtree); frame holds the bytes. */
static int ek__resp_build(const ek__resp_toks *toks, size_t *i, ek_bytes *frame, ek_msg **out)
{
    const ek__resp_tok *t = &toks->v[(*i)++];
    const char *base = (const char *)ek_bytes_data(frame);
    int rc;
    switch (t->type) {
    case '+':
        return ek__resp_string(frame, t, EK_RESP_SIMPLE, out);
    case '-':
        return ek__resp_string(frame, t, EK_RESP_ERROR, out);
    case '!':
        return ek__resp_string(frame, t, EK_RESP_BULK_ERROR, out);
    case '(':
        return ek__resp_string(frame, t, EK_RESP_BIG_NUMBER, out);
    case '$':
        if (t->null) return ek_msg_resp_null(EK_RESP_BULK, out);
        return ek__resp_string(frame, t, EK_RESP_BULK, out);
    case '=': {
        char fmt[4] = {base[t->off], base[t->off + 1], base[t->off + 2], 0};
        return ek_msg_resp_verbatim(fmt, base + t->off + 4, t->len - 4, out);
    }
    case ':':
        return ek_msg_resp_integer(t->n, out);
    case '#':
        return ek_msg_resp_boolean((int)t->n, out);
    case '_':
        return ek_msg_resp_null(EK_RESP_NULL, out);
    case ',': {
        char num[400];
        size_t n = t->len < sizeof num - 1 ? t->len : sizeof num - 1;
        memcpy(num, base + t->off, n);
        num[n] = '\0';
        double d = strcmp(num, "inf") == 0    ? INFINITY
                   : strcmp(num, "-inf") == 0 ? -INFINITY
                   : strcmp(num, "nan") == 0  ? NAN
                                              : strtod(num, NULL);
        return ek_msg_resp_double(d, out);
    }
    case '|': {
        /* An attribute, then the value it annotates. */
        ek_msg *attr;
        rc = ek_msg_resp_aggregate(EK_RESP_ATTRIBUTE, (size_t)t->n * 2, &attr);
        if (rc != EK_OK) return rc;
        for (int64_t k = 0; k < 2 * t->n; k++) {
            ek_msg *child;
            rc = ek__resp_build(toks, i, frame, &child);
            if (rc == EK_OK) rc = ek_msg_resp_append(attr, child);
            if (rc != EK_OK) {
                ek_msg_free(attr);
                return rc;
            }
        }
        rc = ek__resp_build(toks, i, frame, out);
        if (rc != EK_OK) {
            ek_msg_free(attr);
            return rc;
        }
        rc = ek_msg_resp_set_attribute(*out, attr);
        if (rc != EK_OK) {
            ek_msg_free(*out);
            *out = NULL;
        }
        return rc;
    }
    default: { /* aggregates */
        if (t->null) return ek_msg_resp_null(EK_RESP_ARRAY, out);
        int64_t n = t->type == '%' ? 2 * t->n : t->n;
        ek_msg *agg;
        rc = ek_msg_resp_aggregate(t->type, (size_t)n, &agg);
        if (rc != EK_OK) return rc;
        for (int64_t k = 0; k < n; k++) {
            ek_msg *child;
            rc = ek__resp_build(toks, i, frame, &child);
            if (rc == EK_OK) rc = ek_msg_resp_append(agg, child);
            if (rc != EK_OK) {
                ek_msg_free(agg);
                return rc;
            }
        }
        *out = agg;
        return EK_OK;
    }
    }
}

/* A request as one flat message (svc.h): multibulk arguments point into the
 * frame, whose chunk the message holds; inline ones are copies of the scratch
 * buffer in the message's own allocation. Consumes the frame's bytes of in. */
static int ek__resp_build_request(ek__resp *r, ek_buf *in, size_t flen, ek_msg **out)
{
    size_t argc = r->toks.len - 1, extra = 0;
    bool framed = false;
    for (size_t k = 1; k <= argc; k++) {
        if (r->toks.v[k].inl)
            extra += r->toks.v[k].len;
        else
            framed = true;
    }
    ek_msg *m;
    uint8_t *space;
    int rc = ek__msg_request_new(argc, extra, &m, &space);
    if (rc != EK_OK) return rc;
    const uint8_t *base = ek_buf_data(in);
    for (size_t k = 1; k <= argc; k++) {
        const ek__resp_tok *t = &r->toks.v[k];
        if (t->inl) {
            if (t->len) memcpy(space, r->scratch + t->off, t->len);
            ek__msg_request_set(m, k - 1, space, t->len);
            space += t->len;
        } else {
            ek__msg_request_set(m, k - 1, base + t->off, t->len);
        }
    }
    if (framed) {
        ek__chunk *chunk;
        const uint8_t *data;
        ek__buf_split_chunk(in, flen, &chunk, &data);
        ek__msg_request_hold(m, chunk);
    } else {
        (void)ek_buf_discard(in, flen);
    }
    *out = m;
    return EK_OK;
}

/* Note a HELLO 2|3 request: its successful response switches the protocol. */
static int ek__resp_note_hello(ek__resp *r, const char *base)
{
    if (r->toks.len < 3) return EK_OK;
    const ek__resp_tok *cmd = &r->toks.v[1], *ver = &r->toks.v[2];
    if (cmd->len != 5 || ver->len != 1) return EK_OK; /* (and no pointer into an empty scratch) */
    const char *c = cmd->inl ? r->scratch + cmd->off : base + cmd->off;
    const char *v = ver->inl ? r->scratch + ver->off : base + ver->off;
    if (cmd->len != 5 || strncasecmp(c, "hello", 5) != 0) return EK_OK;
    if (ver->len != 1 || (v[0] != '2' && v[0] != '3')) return EK_OK;
    if (r->nhello == r->hello_cap) {
        size_t cap = r->hello_cap ? 2 * r->hello_cap : 4;
        ek__hello *h = ek__realloc(r->hellos, cap * sizeof *h);
        if (h == NULL) return EK_ENOMEM;
        r->hellos = h;
        r->hello_cap = cap;
    }
    r->hellos[r->nhello++] = (ek__hello){.seq = r->decoded, .proto = v[0] - '0'};
    return EK_OK;
}

static int ek__resp_decode(void *self, ek_buf *in, ek_msg **out, const char **reason)
{
    ek__resp *r = self;
    for (;;) {
        const char *buf = (const char *)ek_buf_data(in);
        size_t len = (size_t)ek_buf_len(in), flen = 0;
        if (len == 0) return EK_PENDING;
        int rc = r->server ? ek__resp_scan_request(buf, len, NULL, &r->toks, &r->scratch,
                                                   &r->scratch_cap, &flen, reason)
                           : ek__resp_scan(buf, len, NULL, &r->toks, &flen, reason);
        switch (rc) {
        case EK__RESP_MORE:
            return EK_PENDING;
        case EK__RESP_NOMEM:
            return EK_ENOMEM;
        case EK__RESP_CORRUPT:
            return EK_EPROTO;
        case EK__RESP_EMPTY:
            rc = ek_buf_discard(in, flen);
            if (rc != EK_OK) return rc;
            continue;
        default:
            break;
        }
        if (r->server) {
            rc = ek__resp_note_hello(r, buf);
            if (rc != EK_OK) return rc;
        }
        if (r->server) {
            rc = ek__resp_build_request(r, in, flen, out);
            if (rc == EK_OK) r->decoded++;
            return rc;
        }
        ek_bytes *frame;
        rc = ek_buf_split_to(in, flen, &frame);
        if (rc != EK_OK) return rc;
        size_t i = 0;
        rc = ek__resp_build(&r->toks, &i, frame, out);
        ek_bytes_release(frame);
        return rc;
    }
}

/* ---- encode ---- */

static int ek__put(ek_buf *out, const void *p, size_t n)
{
    return ek_buf_append(out, p, n);
}

/* The decimal digits of n (a sign included), without snprintf. */
static size_t ek__fmt_int(int64_t v, char *buf)
{
    char tmp[24];
    size_t k = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[k++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    size_t n = 0;
    if (v < 0) buf[n++] = '-';
    while (k > 0) buf[n++] = tmp[--k];
    return n;
}

/* "<type><n>\r\n" */
static int ek__put_head(ek_buf *out, char type, int64_t n)
{
    char line[32];
    line[0] = type;
    size_t k = 1 + ek__fmt_int(n, line + 1);
    line[k++] = '\r';
    line[k++] = '\n';
    return ek__put(out, line, k);
}

/* Room for n more bytes at the end of out, in one reserve (a reply is written
 * whole, not piece by piece); ek_buf_advance(out, n) once written. */
static uint8_t *ek__room(ek_buf *out, size_t n)
{
    uint8_t *tail;
    return ek_buf_reserve(out, n, &tail, NULL) == EK_OK ? tail : NULL;
}

static int ek__put_bulk(ek_buf *out, char type, const uint8_t *d, size_t n)
{
    if (n > EK_BUF_MAX - 32) return EK_ERANGE;
    uint8_t *p = ek__room(out, n + 32);
    if (p == NULL) return EK_ENOMEM;
    size_t k = 0;
    p[k++] = (uint8_t)type;
    k += ek__fmt_int((int64_t)n, (char *)p + k);
    p[k++] = '\r';
    p[k++] = '\n';
    if (n) memcpy(p + k, d, n);
    k += n;
    p[k++] = '\r';
    p[k++] = '\n';
    return ek_buf_advance(out, k);
}

static int ek__put_line(ek_buf *out, char type, const uint8_t *d, size_t n)
{
    if (memchr(d, '\r', n) != NULL || memchr(d, '\n', n) != NULL) return EK_EINVAL;
    if (n > EK_BUF_MAX - 3) return EK_ERANGE;
    uint8_t *p = ek__room(out, n + 3);
    if (p == NULL) return EK_ENOMEM;
    p[0] = (uint8_t)type;
    if (n) memcpy(p + 1, d, n);
    p[n + 1] = '\r';
    p[n + 2] = '\n';
    return ek_buf_advance(out, n + 3);
}

/* A double as redis writes it (%.17g; inf, -inf, nan). */
static int ek__fmt_double(double d, char *buf, size_t cap)
{
    if (isinf(d)) return snprintf(buf, cap, "%s", d > 0 ? "inf" : "-inf");
    if (isnan(d)) return snprintf(buf, cap, "nan");
    return snprintf(buf, cap, "%.17g", d);
}

static int ek__resp_encode_value(const ek_msg *m, int proto, ek_buf *out)
{
    int type = ek_msg_resp_type(m);
    if (type < 0) return type == EK_EKIND ? EK_EKIND : type;
    int rc;
    if (proto == 3) {
        ek_msg *attr = NULL;
        if (ek_msg_resp_attribute(m, &attr) == EK_OK && attr != NULL) {
            rc = ek__resp_encode_value(attr, proto, out);
            if (rc != EK_OK) return rc;
        }
    }
    if (ek_msg_resp_is_null(m) == 1) {
        if (proto == 3) return ek__put(out, "_\r\n", 3);
        return ek__put(out, type == EK_RESP_ARRAY ? "*-1\r\n" : "$-1\r\n", 5);
    }
    const uint8_t *d = NULL;
    size_t n = 0;
    char num[64];
    switch (type) {
    case EK_RESP_SIMPLE:
    case EK_RESP_ERROR:
        rc = ek_msg_data(m, &d, &n);
        return rc == EK_OK ? ek__put_line(out, (char)type, d, n) : rc;
    case EK_RESP_BULK:
        rc = ek_msg_data(m, &d, &n);
        return rc == EK_OK ? ek__put_bulk(out, '$', d, n) : rc;
    case EK_RESP_BULK_ERROR:
        rc = ek_msg_data(m, &d, &n);
        if (rc != EK_OK) return rc;
        return proto == 3 ? ek__put_bulk(out, '!', d, n) : ek__put_line(out, '-', d, n);
    case EK_RESP_BIG_NUMBER:
        rc = ek_msg_data(m, &d, &n);
        if (rc != EK_OK) return rc;
        return proto == 3 ? ek__put_line(out, '(', d, n) : ek__put_bulk(out, '$', d, n);
    case EK_RESP_VERBATIM: {
        rc = ek_msg_data(m, &d, &n);
        if (rc != EK_OK) return rc;
        if (proto == 2) return ek__put_bulk(out, '$', d, n);
        char fmt[4];
        rc = ek_msg_resp_verbatim_format(m, fmt);
        if (rc == EK_OK) rc = ek__put_head(out, '=', (int64_t)n + 4);
        if (rc == EK_OK) rc = ek__put(out, fmt, 3);
        if (rc == EK_OK) rc = ek__put(out, ":", 1);
        if (rc == EK_OK) rc = ek__put(out, d, n);
        return rc == EK_OK ? ek__put(out, "\r\n", 2) : rc;
    }
    case EK_RESP_INTEGER: {
        int64_t v;
        rc = ek_msg_resp_get_integer(m, &v);
        return rc == EK_OK ? ek__put_head(out, ':', v) : rc;
    }
    case EK_RESP_BOOLEAN: {
        int v;
        rc = ek_msg_resp_get_boolean(m, &v);
        if (rc != EK_OK) return rc;
        if (proto == 3) return ek__put(out, v ? "#t\r\n" : "#f\r\n", 4);
        return ek__put(out, v ? ":1\r\n" : ":0\r\n", 4);
    }
    case EK_RESP_DOUBLE: {
        double v;
        rc = ek_msg_resp_get_double(m, &v);
        if (rc != EK_OK) return rc;
        int k = ek__fmt_double(v, num, sizeof num);
        if (proto == 3) return ek__put_line(out, ',', (const uint8_t *)num, (size_t)k);
        return ek__put_bulk(out, '$', (const uint8_t *)num, (size_t)k);
    }
    case EK_RESP_NULL:
        return ek__put(out, proto == 3 ? "_\r\n" : "$-1\r\n", proto == 3 ? 3 : 5);
    case EK_RESP_ATTRIBUTE:
        if (proto == 2) return EK_OK; /* RESP2 has no attributes */
        /* fall through */
    default: { /* aggregates */
        int64_t len = ek_msg_resp_len(m);
        if (len < 0) return (int)len;
        char head = (char)type;
        int64_t count = len;
        if (type == EK_RESP_MAP || type == EK_RESP_ATTRIBUTE) count = len / 2;
        if (proto == 2) {
            head = '*';
            count = len; /* a map is a flat array of keys and values */
        }
        rc = ek__put_head(out, head, count);
        for (int64_t k = 0; k < len && rc == EK_OK; k++) {
            ek_msg *child;
            rc = ek_msg_resp_child(m, (size_t)k, &child);
            if (rc == EK_OK) rc = ek__resp_encode_value(child, proto, out);
        }
        return rc;
    }
    }
}

/* The bytes of request argument a: its data, or an integer's digits in num. */
static int ek__resp_arg(const ek_msg *a, char *num, const uint8_t **d, size_t *n)
{
    int64_t v;
    if (ek_msg_resp_get_integer(a, &v) == EK_OK) {
        *n = ek__fmt_int(v, num);
        *d = (const uint8_t *)num;
        return EK_OK;
    }
    int rc = ek_msg_data(a, d, n);
    return rc == EK_EEMPTY ? EK_EINVAL : rc;
}

/* A request: an array of strings (integers allowed) as a multibulk of bulks. All
 * or nothing: the arguments are checked and the room reserved before a byte is
 * written, so a failed request leaves nothing behind in out (a pipelined client
 * writes the next request after it). */
static int ek__resp_encode_request(const ek_msg *m, ek_buf *out)
{
    int64_t len = ek_msg_resp_len(m);
    if (ek_msg_resp_type(m) != EK_RESP_ARRAY || len < 0) return EK_EKIND;
    char num[24];
    const uint8_t *d;
    size_t n, total = 24;
    int rc = EK_OK;
    for (int64_t k = 0; k < len && rc == EK_OK; k++) {
        ek_msg *a;
        rc = ek_msg_resp_child(m, (size_t)k, &a);
        if (rc == EK_OK) rc = ek__resp_arg(a, num, &d, &n);
        if (rc == EK_OK) total += n + 26; /* "$<n>\r\n" <bytes> "\r\n" */
    }
    if (rc == EK_OK) rc = ek_buf_reserve(out, total, NULL, NULL);
    if (rc == EK_OK) rc = ek__put_head(out, '*', len);
    for (int64_t k = 0; k < len && rc == EK_OK; k++) {
        ek_msg *a;
        rc = ek_msg_resp_child(m, (size_t)k, &a);
        if (rc == EK_OK) rc = ek__resp_arg(a, num, &d, &n);
        if (rc == EK_OK) rc = ek__put_bulk(out, '$', d, n);
    }
    return rc;
}

static int ek__resp_encode(void *self, const ek_msg *m, int what, ek_buf *out)
{
    ek__resp *r = self;
    if (ek_msg_kind(m) != EK_MSG_RESP) return EK_EKIND;
    if (what == EK_CODEC_REQUEST && !r->server) return ek__resp_encode_request(m, out);
    if (what == EK_CODEC_RESPONSE && r->server) {
        /* The response to a HELLO 2|3 switches the protocol, unless it is an error. */
        uint64_t seq = r->encoded++;
        if (r->nhello > 0 && r->hellos[0].seq == seq) {
            int type = ek_msg_resp_type(m);
            if (type != EK_RESP_ERROR && type != EK_RESP_BULK_ERROR) r->proto = r->hellos[0].proto;
            memmove(r->hellos, r->hellos + 1, --r->nhello * sizeof *r->hellos);
        }
    }
    return ek__resp_encode_value(m, r->proto, out);
}

/* ---- the framed client's hooks (codec.h) ---- */

/* The index in ek__sub_names of the string value m (case-insensitive), or -1. */
static int ek__resp_sub_index(const ek_msg *m)
{
    const uint8_t *d;
    size_t n;
    if (m == NULL || ek_msg_data(m, &d, &n) != EK_OK) return -1;
    for (size_t i = 0; i < EK__NSUB; i++)
        if (strlen(ek__sub_names[i]) == n && strncasecmp(ek__sub_names[i], (const char *)d, n) == 0)
            return (int)i;
    return -1;
}

/* What will answer request m (EK__ANS_*, plus the name's index for a SUB). */
static int ek__resp_answer_of(const ek_msg *m)
{
    ek_msg *cmd = NULL, *ver = NULL;
    if (ek_msg_resp_child(m, 0, &cmd) != EK_OK) return EK__ANS_FRAME;
    int sub = ek__resp_sub_index(cmd);
    if (sub >= 0) return EK__ANS_SUB + sub;
    const uint8_t *d, *v;
    size_t n, vn;
    if (ek_msg_data(cmd, &d, &n) != EK_OK || n != 5 ||
        strncasecmp((const char *)d, "hello", 5) != 0)
        return EK__ANS_FRAME;
    if (ek_msg_resp_child(m, 1, &ver) != EK_OK || ek_msg_data(ver, &v, &vn) != EK_OK || vn != 1)
        return EK__ANS_FRAME;
    return v[0] == '2' ? EK__ANS_HELLO2 : v[0] == '3' ? EK__ANS_HELLO3 : EK__ANS_FRAME;
}

static int ek__resp_client_request(void *self, const ek_msg *m, ek_buf *out)
{
    ek__resp *r = self;
    if (ek_msg_kind(m) != EK_MSG_RESP) return EK_EKIND;
    int ans = ek__resp_answer_of(m);
    /* In RESP2 a subscribed connection's frames are not replies to requests in
     * order (a SUBSCRIBE of n channels gets n replies; messages come in between):
     * a pipelined client cannot pair them, so it refuses before writing. */
    if (ans >= EK__ANS_SUB && r->negotiated != 3) return EK_ENOTSUP;
    if (r->ans_len == r->ans_cap) {
        void *a = r->ans;
        int rc = ek__ring_grow(&a, 1, &r->ans_head, r->ans_len, &r->ans_cap, 16);
        r->ans = a;
        if (rc != EK_OK) return rc;
    }
    int rc = ek__resp_encode_request(m, out); /* all or nothing */
    if (rc != EK_OK) return rc;
    r->ans[(r->ans_head + r->ans_len++) % r->ans_cap] = (uint8_t)ans;
    return EK_OK;
}

static int ek__resp_client_frame(void *self, const ek_msg *f)
{
    ek__resp *r = self;
    int type = ek_msg_resp_type(f);
    int head = r->ans_len > 0 ? r->ans[r->ans_head] : -1;
    if (type == EK_RESP_PUSH) {
        ek_msg *kind = NULL;
        if (head < EK__ANS_SUB || ek_msg_resp_child(f, 0, &kind) != EK_OK ||
            ek__resp_sub_index(kind) != head - EK__ANS_SUB)
            return EK__FRAME_PUSH;
    } else if (head == EK__ANS_HELLO2 || head == EK__ANS_HELLO3) {
        if (type != EK_RESP_ERROR && type != EK_RESP_BULK_ERROR)
            r->negotiated = head == EK__ANS_HELLO3 ? 3 : 2;
    }
    if (r->ans_len > 0) {
        r->ans_head = (r->ans_head + 1) % r->ans_cap;
        r->ans_len--;
    }
    return type == EK_RESP_PUSH ? EK__FRAME_PUSH_REPLY : EK__FRAME_REPLY;
}

static const ek__codec_ext ek__resp_client_ext = {
    .client_request = ek__resp_client_request,
    .client_frame = ek__resp_client_frame,
};

static int ek__resp_encode_error(void *self, int err, const char *reason, ek_buf *out)
{
    int rc = ek__put(out, "-ERR ", 5);
    if (rc == EK_OK) rc = ek__put(out, reason, strlen(reason));
    return rc == EK_OK ? ek__put(out, "\r\n", 2) : rc;
}

static int ek__resp_make(int server, int proto, void **out)
{
    ek__resp *r = ek__calloc(1, sizeof *r);
    if (r == NULL) return EK_ENOMEM;
    r->server = server;
    r->proto = proto;
    r->negotiated = 2;
    *out = r;
    return EK_OK;
}

static int ek__resp_fork(void *self, void **out)
{
    ek__resp *r = self;
    return ek__resp_make(r->server, r->server ? 2 : r->proto, out);
}

static const ek_codec_vtable ek__resp_vtable = {
    .decode = ek__resp_decode,
    .encode = ek__resp_encode,
    .encode_error = ek__resp_encode_error,
    .fork = ek__resp_fork,
    .drop = ek__resp_drop,
};

static int ek__resp_codec(int server, int proto, ek_codec **out)
{
    if (out == NULL) return EK_EINVAL;
    void *self;
    int rc = ek__resp_make(server, proto, &self);
    if (rc != EK_OK) return rc;
    return ek__codec_new_ext(&ek__resp_vtable, server ? NULL : &ek__resp_client_ext, self, out);
}

int ek_codec_resp_server(ek_codec **out)
{
    return ek__resp_codec(1, 2, out);
}

int ek_codec_resp_client(int protocol, ek_codec **out)
{
    if (protocol != 2 && protocol != 3) return EK_EINVAL;
    return ek__resp_codec(0, protocol, out);
}

int ek_codec_resp_protocol(ek_codec *c)
{
    ek__resp *r = ek__codec_self(c, &ek__resp_vtable);
    return r != NULL ? r->proto : EK_EINVAL;
}
