/*
 * codec_http.c - the HTTP/1.x codecs (server and client sides) on llhttp
 * (rules in ekiden/codec.h).
 *
 * Decoding feeds llhttp the bytes of the read buffer it has not seen yet
 * (`fed` counts them). Callbacks record offsets from the buffer's front, not
 * pointers: the buffer may move its bytes when it grows, but nothing is taken
 * off its front while a message is parsed, so the offsets stay right. When the
 * head is complete the message is built (method, target, headers copied into
 * the message); a Content-Length body stays in the buffer and becomes a slice
 * of it (no copy) when the message is complete; a chunked body is copied out
 * chunk by chunk and its bytes discarded from the buffer as they are parsed (so
 * that chunk headers do not pile up). on_message_complete pauses llhttp, so one
 * decode gives one message and the bytes after it stay for the next.
 *
 * Encoding answers the oldest decoded request (a FIFO of what the response needs
 * to know: the version, keep-alive, HEAD), since responses are encoded in request
 * order. The client side keeps the same FIFO of the requests it wrote, to know
 * which response has no body (HEAD).
 */
#include "codec.h"

#include <llhttp.h>
#include <stdio.h>
#include <time.h>

typedef struct ek__hspan {
    size_t name_off, name_len, value_off, value_len;
} ek__hspan;

typedef struct ek__hreq {
    uint8_t version;    /* 10 or 11 */
    uint8_t keep_alive; /* what the request asked */
    uint8_t head;       /* HEAD: no body in the response */
} ek__hreq;

/* Stream states of a streaming response (server side). */
enum { EK__HS_NONE, EK__HS_CHUNKED, EK__HS_RAW, EK__HS_DISCARD };

typedef struct ek__http {
    llhttp_t p;
    int server;
    size_t max_header, max_body;
    int flags;
    /* the message being parsed */
    const char *base; /* the buffer's front during an execute */
    size_t fed;       /* bytes of the buffer llhttp has seen */
    size_t msg_start; /* offset of the message's first byte */
    bool in_msg, headers_done, complete, chunked;
    bool in_field, in_value;
    size_t url_off, url_len, status_off, status_len, proto_off, proto_len;
    ek__hspan *hdr;
    size_t nhdr, hcap;
    ek_msg *msg;  /* built at the end of the head */
    ek_buf *body; /* a chunked body, joined */
    size_t body_off, body_len;
    int cb_err; /* an error found in a callback (EK_EMSGSIZE, EK_ENOMEM, ...) */
    const char *cb_reason;
    int err_status; /* the status encode_error writes */
    bool continue_owed, continue_sent, skip_message;
    /* the conversation */
    ek__hreq *q; /* requests decoded (server) or written (client), not answered */
    size_t qhead, qlen, qcap;
    bool done;   /* decode gives EK_ECLOSED from now on */
    bool closed; /* a response closed the connection: later ones are not written */
    int stream;  /* EK__HS_*: the streaming response being written */
    time_t date_sec;
    char date[40]; /* "Date: ...\r\n" for date_sec */
} ek__http;

/* ---- the FIFO of requests ---- */

static int ek__http_q_push(ek__http *h, ek__hreq r)
{
    if (h->qlen == h->qcap) {
        void *q = h->q;
        int rc = ek__ring_grow(&q, sizeof *h->q, &h->qhead, h->qlen, &h->qcap, 8);
        if (rc != EK_OK) return rc;
        h->q = q;
    }
    h->q[(h->qhead + h->qlen++) % h->qcap] = r;
    return EK_OK;
}

static bool ek__http_q_pop(ek__http *h, ek__hreq *r)
{
    if (h->qlen == 0) return false;
    *r = h->q[h->qhead];
    h->qhead = (h->qhead + 1) % h->qcap;
    h->qlen--;
    return true;
}

/* ---- llhttp callbacks ---- */

static ek__http *ek__http_of(llhttp_t *p)
{
    return p->data;
}

static size_t ek__http_off(ek__http *h, const char *at)
{
    return (size_t)(at - h->base);
}

/* A callback's error: the code to return, the reason, the status to answer. */
static int ek__http_cb_fail(ek__http *h, int err, const char *reason, int status)
{
    h->cb_err = err;
    h->cb_reason = reason;
    h->err_status = status;
    return -1;
}

/* The head is over its limit once a byte of it lies beyond max_header. */
static int ek__http_check_head(ek__http *h, const char *at, size_t len)
{
    if (ek__http_off(h, at) + len - h->msg_start > h->max_header)
        return ek__http_cb_fail(
            h, EK_EMSGSIZE, h->server ? "request header too large" : "response header too large",
            431);
    return 0;
}

static void ek__http_reset_message(ek__http *h)
{
    h->in_msg = h->headers_done = h->complete = h->chunked = false;
    h->in_field = h->in_value = false;
    h->url_off = h->url_len = h->status_off = h->status_len = h->proto_off = h->proto_len = 0;
    h->nhdr = 0;
    ek_msg_free(h->msg);
    h->msg = NULL;
    if (h->body != NULL) (void)ek_buf_clear(h->body);
    h->body_off = h->body_len = 0;
    h->continue_owed = h->continue_sent = h->skip_message = false;
}

static int ek__http_on_message_begin(llhttp_t *p)
{
    ek__http *h = ek__http_of(p);
    ek__http_reset_message(h);
    h->in_msg = true;
    h->msg_start = h->fed; /* where this execute began (leading CRLFs count) */
    return 0;
}

/* The span [off, off+len) grows to cover at[0..n) (a field split over calls). */
static void ek__http_extend(ek__http *h, size_t *off, size_t *len, bool *started, const char *at,
                            size_t n)
{
    size_t o = ek__http_off(h, at);
    if (!*started) {
        *off = o;
        *started = true;
    }
    *len = o + n - *off;
}

/* A head field's span grows over the calls llhttp splits it into (an empty
 * span has not started), and the head's size is checked. */
static int ek__http_grow(ek__http *h, size_t *off, size_t *len, const char *at, size_t n)
{
    bool started = *len > 0;
    ek__http_extend(h, off, len, &started, at, n);
    return ek__http_check_head(h, at, n);
}

static int ek__http_on_url(llhttp_t *p, const char *at, size_t n)
{
    ek__http *h = ek__http_of(p);
    return ek__http_grow(h, &h->url_off, &h->url_len, at, n);
}

static int ek__http_on_protocol(llhttp_t *p, const char *at, size_t n)
{
    ek__http *h = ek__http_of(p);
    return ek__http_grow(h, &h->proto_off, &h->proto_len, at, n);
}

/* Only HTTP: llhttp also knows RTSP and ICE, which are not this codec's. */
static int ek__http_on_protocol_complete(llhttp_t *p)
{
    ek__http *h = ek__http_of(p);
    if (h->proto_len != 4 || memcmp(h->base + h->proto_off, "HTTP", 4) != 0)
        return ek__http_cb_fail(h, EK_EPROTO, "not an HTTP message", 400);
    return 0;
}

static int ek__http_on_status(llhttp_t *p, const char *at, size_t n)
{
    ek__http *h = ek__http_of(p);
    return ek__http_grow(h, &h->status_off, &h->status_len, at, n);
}

static int ek__http_on_header_field(llhttp_t *p, const char *at, size_t n)
{
    ek__http *h = ek__http_of(p);
    if (!h->in_field) {
        if (h->nhdr == h->hcap) {
            size_t cap = h->hcap ? h->hcap * 2 : 16;
            ek__hspan *v = ek__realloc(h->hdr, cap * sizeof *v);
            if (v == NULL) return ek__http_cb_fail(h, EK_ENOMEM, NULL, 500);
            h->hdr = v;
            h->hcap = cap;
        }
        h->hdr[h->nhdr++] = (ek__hspan){0};
    }
    ek__hspan *s = &h->hdr[h->nhdr - 1];
    ek__http_extend(h, &s->name_off, &s->name_len, &h->in_field, at, n);
    return ek__http_check_head(h, at, n);
}

static int ek__http_on_header_field_complete(llhttp_t *p)
{
    ek__http_of(p)->in_field = false;
    return 0;
}

static int ek__http_on_header_value(llhttp_t *p, const char *at, size_t n)
{
    ek__http *h = ek__http_of(p);
    ek__hspan *s = &h->hdr[h->nhdr - 1];
    ek__http_extend(h, &s->value_off, &s->value_len, &h->in_value, at, n);
    return ek__http_check_head(h, at, n);
}

static int ek__http_on_header_value_complete(llhttp_t *p)
{
    ek__http_of(p)->in_value = false;
    return 0;
}

static bool ek__http_ieq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen != blen) return false;
    for (size_t i = 0; i < alen; i++) {
        int x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x += 32;
        if (y >= 'A' && y <= 'Z') y += 32;
        if (x != y) return false;
    }
    return true;
}

/* Whether the comma-separated list s[0..len) holds the token tok (ASCII case
 * insensitive), as Connection: keep-alive, close. */
static bool ek__http_has_token(const char *s, size_t len, const char *tok)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) i++;
        size_t j = i;
        while (j < len && s[j] != ',') j++;
        size_t k = j;
        while (k > i && (s[k - 1] == ' ' || s[k - 1] == '\t')) k--;
        if (k > i && ek__http_ieq(s + i, k - i, tok)) return true;
        i = j;
    }
    return false;
}

static int ek__http_on_headers_complete(llhttp_t *p)
{
    ek__http *h = ek__http_of(p);
    h->headers_done = true;
    if (p->http_major != 1 || p->http_minor > 1)
        return ek__http_cb_fail(h, EK_EPROTO, "HTTP version not supported", 505);
    int version = p->http_minor == 0 ? 10 : 11;
    int rc;
    if (h->server) {
        /* A tunnel would hand the connection over, which the framed server
         * does not do: 501, and the connection closes. */
        if (p->method == HTTP_CONNECT)
            return ek__http_cb_fail(h, EK_EPROTO, "CONNECT is not supported", 501);
        const char *method = llhttp_method_name((llhttp_method_t)p->method);
        rc = ek_msg_http_request(method, strlen(method), h->base + h->url_off, h->url_len, version,
                                 &h->msg);
    } else {
        int status = p->status_code;
        if (status >= 100 && status < 200 && status != 101) {
            /* An interim response (100 Continue): skipped, no body. */
            h->skip_message = true;
            return 1;
        }
        rc = ek_msg_http_response(status, h->base + h->status_off, h->status_len, version, &h->msg);
    }
    if (rc == EK_EINVAL) return ek__http_cb_fail(h, EK_EPROTO, "invalid request line", 400);
    if (rc != EK_OK) return ek__http_cb_fail(h, rc, NULL, 500);
    bool expect_continue = false;
    for (size_t i = 0; i < h->nhdr; i++) {
        const ek__hspan *s = &h->hdr[i];
        const char *v = h->base + s->value_off;
        size_t vlen = s->value_len;
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) vlen--;
        rc = ek_msg_http_add_header(h->msg, h->base + s->name_off, s->name_len, v, vlen);
        if (rc != EK_OK) return ek__http_cb_fail(h, rc, NULL, 500);
        if (h->server && ek__http_ieq(h->base + s->name_off, s->name_len, "expect"))
            expect_continue = ek__http_ieq(v, vlen, "100-continue");
    }
    h->chunked = (p->flags & F_CHUNKED) != 0;
    if (!h->chunked && (p->flags & F_CONTENT_LENGTH) && p->content_length > h->max_body)
        return ek__http_cb_fail(
            h, EK_EMSGSIZE, h->server ? "request body too large" : "response body too large", 413);
    bool has_body = h->chunked || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
    if (h->server && expect_continue && version == 11 && has_body) h->continue_owed = true;
    if (!h->server) {
        /* The response to the oldest request written. */
        if (h->qlen == 0) return ek__http_cb_fail(h, EK_EPROTO, "unexpected response", 400);
        if (h->q[h->qhead].head) return 1; /* a response to HEAD has no body */
    }
    return 0;
}

static int ek__http_on_body(llhttp_t *p, const char *at, size_t n)
{
    ek__http *h = ek__http_of(p);
    if (h->body_len + n > h->max_body)
        return ek__http_cb_fail(
            h, EK_EMSGSIZE, h->server ? "request body too large" : "response body too large", 413);
    h->continue_owed = false; /* the client did not wait */
    if (h->chunked) {
        if (h->body == NULL && ek_buf_new(n, &h->body) != EK_OK)
            return ek__http_cb_fail(h, EK_ENOMEM, NULL, 500);
        if (ek_buf_append(h->body, at, n) != EK_OK)
            return ek__http_cb_fail(h, EK_ENOMEM, NULL, 500);
    } else if (h->body_len == 0) {
        h->body_off = ek__http_off(h, at);
    }
    h->body_len += n;
    return 0;
}

static int ek__http_on_message_complete(llhttp_t *p)
{
    ek__http *h = ek__http_of(p);
    h->complete = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t ek__http_settings = {
    .on_message_begin = ek__http_on_message_begin,
    .on_protocol = ek__http_on_protocol,
    .on_protocol_complete = ek__http_on_protocol_complete,
    .on_url = ek__http_on_url,
    .on_status = ek__http_on_status,
    .on_header_field = ek__http_on_header_field,
    .on_header_value = ek__http_on_header_value,
    .on_header_field_complete = ek__http_on_header_field_complete,
    .on_header_value_complete = ek__http_on_header_value_complete,
    .on_headers_complete = ek__http_on_headers_complete,
    .on_body = ek__http_on_body,
    .on_message_complete = ek__http_on_message_complete,
};

/* ---- decode ---- */

static int ek__http_error(ek__http *h, int err, const char *reason, int status,
                          const char **out_reason)
{
    h->done = true; /* the stream cannot be resynchronised */
    h->err_status = status;
    *out_reason = reason;
    return err;
}

/* The message is complete and ends at offset `end` of `in`: hand it out. */
static int ek__http_finish_message(ek__http *h, ek_buf *in, size_t end, ek_msg **out,
                                   const char **reason)
{
    int rc = EK_OK;
    ek_msg *m = h->msg;
    h->msg = NULL;
    if (h->chunked) {
        if (h->body_len > 0) {
            ek_bytes *b;
            rc = ek_buf_freeze(h->body, &b);
            if (rc == EK_OK) rc = ek_msg_http_set_body(m, b);
        }
        if (rc == EK_OK) rc = ek_buf_discard(in, end);
    } else if (h->body_len > 0) {
        ek_bytes *frame = NULL, *b = NULL;
        rc = ek_buf_split_to(in, end, &frame);
        if (rc == EK_OK) rc = ek_bytes_slice(frame, h->body_off, h->body_len, &b);
        ek_bytes_release(frame);
        if (rc == EK_OK) rc = ek_msg_http_set_body(m, b);
    } else {
        rc = ek_buf_discard(in, end);
    }
    h->fed = 0;
    /* The server ignores Upgrade (RFC 9110 7.8 allows it: the answer is an
     * HTTP/1.1 one and the connection stays HTTP/1.1); a client's 101 ends
     * the HTTP conversation. */
    int keep_alive = llhttp_should_keep_alive(&h->p) && (h->server || !h->p.upgrade);
    ek__hreq r = {0};
    if (h->server) {
        if (rc == EK_OK) {
            r = (ek__hreq){.version = (uint8_t)ek_msg_http_version(m),
                           .keep_alive = (uint8_t)keep_alive,
                           .head = h->p.method == HTTP_HEAD};
            rc = ek__http_q_push(h, r);
        }
    } else {
        (void)ek__http_q_pop(h, &r);
        keep_alive = keep_alive && r.keep_alive;
    }
    if (rc == EK_OK) rc = ek_msg_http_set_keep_alive(m, keep_alive);
    ek__http_reset_message(h);
    if (rc != EK_OK) {
        ek_msg_free(m);
        return ek__http_error(h, rc, NULL, 500, reason);
    }
    llhttp_resume(&h->p);
    if (!keep_alive) h->done = true;
    *out = m;
    return EK_OK;
}

static int ek__http_decode(void *self, ek_buf *in, ek_msg **out, const char **reason)
{
    ek__http *h = self;
    if (h->done) return EK_ECLOSED;
    for (;;) {
        size_t len = (size_t)ek_buf_len(in);
        h->base = (const char *)ek_buf_data(in);
        if (h->fed >= len) return EK_PENDING;
        llhttp_errno_t e = llhttp_execute(&h->p, h->base + h->fed, len - h->fed);
        if (e == HPE_PAUSED_UPGRADE && h->server) {
            /* after a request with Upgrade (ignored): HTTP/1.1 goes on */
            h->fed = (size_t)(llhttp_get_error_pos(&h->p) - h->base);
            llhttp_resume_after_upgrade(&h->p);
            continue;
        }
        if (e == HPE_PAUSED) {
            h->fed = (size_t)(llhttp_get_error_pos(&h->p) - h->base);
        } else if (e == HPE_OK) {
            h->fed = len;
        } else {
            if (h->cb_err != 0)
                return ek__http_error(h, h->cb_err, h->cb_reason, h->err_status, reason);
            const char *r = llhttp_get_error_reason(&h->p);
            return ek__http_error(h, EK_EPROTO, r ? r : llhttp_errno_name(e), 400, reason);
        }
        if (h->complete) {
            if (h->skip_message) { /* an interim response: drop it, go on */
                (void)ek_buf_discard(in, h->fed);
                h->fed = 0;
                ek__http_reset_message(h);
                llhttp_resume(&h->p);
                continue;
            }
            return ek__http_finish_message(h, in, h->fed, out, reason);
        }
        if (!h->in_msg || (h->headers_done && h->chunked)) {
            /* Nothing of these bytes is needed again: empty lines between
             * messages, or parsed chunks of a chunked body. */
            (void)ek_buf_discard(in, h->fed);
            h->fed = 0;
        } else if (!h->headers_done && h->fed - h->msg_start > h->max_header) {
            return ek__http_error(
                h, EK_EMSGSIZE,
                h->server ? "request header too large" : "response header too large", 431, reason);
        }
        return EK_PENDING;
    }
}

static int ek__http_decode_eof(void *self, ek_buf *in, ek_msg **out, const char **reason)
{
    ek__http *h = self;
    int rc = ek__http_decode(self, in, out, reason);
    if (rc != EK_PENDING) return rc;
    if (!h->in_msg) return EK_ECLOSED;
    /* A response delimited by the end of the stream ends here. */
    h->base = (const char *)ek_buf_data(in);
    llhttp_errno_t e = llhttp_finish(&h->p);
    if ((e == HPE_OK || e == HPE_PAUSED) && h->complete && !h->skip_message)
        return ek__http_finish_message(h, in, h->fed, out, reason);
    return ek__http_error(h, EK_EPROTO, h->server ? "truncated request" : "truncated response", 400,
                          reason);
}

/* ---- encode ---- */

static int ek__put(ek_buf *out, const void *s, size_t n)
{
    return ek_buf_append(out, s, n);
}

static int ek__puts(ek_buf *out, const char *s)
{
    return ek_buf_append(out, s, strlen(s));
}

static int ek__put_u64(ek_buf *out, uint64_t v, int base)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[sizeof tmp - ++n] = "0123456789abcdef"[v % (unsigned)base];
        v /= (unsigned)base;
    } while (v > 0);
    return ek__put(out, tmp + sizeof tmp - n, n);
}

static const char *ek__http_reason_phrase(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "";
    }
}

/* No CR, LF or NUL in a field (response splitting). */
static bool ek__http_field_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return false;
    return true;
}

static int ek__http_put_date(ek__http *h, ek_buf *out)
{
    time_t now = time(NULL);
    if (now != h->date_sec || h->date[0] == '\0') {
        struct tm tm;
        if (gmtime_r(&now, &tm) == NULL) return EK_OK;
        if (strftime(h->date, sizeof h->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm) == 0)
            return EK_OK;
        h->date_sec = now;
    }
    return ek__puts(out, h->date);
}

/* Whether m's headers can be written as they are: no CR, LF or NUL anywhere, no
 * colon or space in a name, no empty name. */
static bool ek__http_headers_ok(const ek_msg *m)
{
    int64_t n = ek_msg_http_header_count(m);
    for (int64_t i = 0; i < n; i++) {
        const char *name, *value;
        size_t nlen, vlen;
        (void)ek_msg_http_header(m, (size_t)i, &name, &nlen, &value, &vlen);
        if (nlen == 0 || !ek__http_field_ok(name, nlen) || !ek__http_field_ok(value, vlen) ||
            memchr(name, ':', nlen) != NULL || memchr(name, ' ', nlen) != NULL)
            return false;
    }
    return true;
}

/*
 * The headers of m (checked with ek__http_headers_ok), except those the codec
 * writes itself. *ka becomes 0 if m says "Connection: close"; *cl gets a
 * Content-Length header's value if m has one.
 */
static int ek__http_put_headers(const ek_msg *m, ek_buf *out, int *ka, const char **cl,
                                size_t *cl_len)
{
    int64_t n = ek_msg_http_header_count(m);
    for (int64_t i = 0; i < n; i++) {
        const char *name, *value;
        size_t nlen, vlen;
        (void)ek_msg_http_header(m, (size_t)i, &name, &nlen, &value, &vlen);
        if (ek__http_ieq(name, nlen, "connection")) {
            if (ek__http_has_token(value, vlen, "close")) *ka = 0;
            continue;
        }
        if (ek__http_ieq(name, nlen, "content-length")) {
            *cl = value;
            *cl_len = vlen;
            continue;
        }
        if (ek__http_ieq(name, nlen, "transfer-encoding")) continue;
        int rc = ek__put(out, name, nlen);
        if (rc == EK_OK) rc = ek__put(out, ": ", 2);
        if (rc == EK_OK) rc = ek__put(out, value, vlen);
        if (rc == EK_OK) rc = ek__put(out, "\r\n", 2);
        if (rc != EK_OK) return rc;
    }
    return EK_OK;
}

/* A response head and (unless streaming) body. stream: write the head of a
 * streaming response (chunked, or raw to a 1.0 request). */
static int ek__http_encode_response(ek__http *h, const ek_msg *m, bool stream, ek_buf *out)
{
    if (ek_msg_kind(m) != EK_MSG_HTTP_RESPONSE) return EK_EKIND;
    if (h->closed) return EK_OK; /* the connection closes: nothing more is owed */
    if (h->qlen == 0 || !ek__http_headers_ok(m)) return EK_EINVAL;
    int status = ek_msg_http_status(m);
    /* Switching protocols would hand the connection over: not done. */
    if (status == 101) return EK_ENOTSUP;
    const char *reason;
    size_t reason_len;
    (void)ek_msg_http_reason(m, &reason, &reason_len);
    if (reason_len == 0) {
        reason = ek__http_reason_phrase(status);
        reason_len = strlen(reason);
    }
    if (!ek__http_field_ok(reason, reason_len)) return EK_EINVAL;
    /* Every refusal is above this line: a refused response leaves its request
     * queued, so the next response still answers it. */
    ek__hreq r = {0};
    (void)ek__http_q_pop(h, &r);
    int version = r.version == 10 ? 10 : ek_msg_http_version(m);
    int ka = r.keep_alive && ek_msg_http_keep_alive(m) == 1;
    const uint8_t *body;
    size_t body_len;
    (void)ek_msg_data(m, &body, &body_len);
    bool no_body = (status >= 100 && status < 200) || status == 204 || status == 304;
    int rc = ek__puts(out, version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    if (rc == EK_OK) rc = ek__put_u64(out, (uint64_t)status, 10);
    if (rc == EK_OK) rc = ek__put(out, " ", 1);
    if (rc == EK_OK) rc = ek__put(out, reason, reason_len);
    if (rc == EK_OK) rc = ek__put(out, "\r\n", 2);
    const char *cl = NULL;
    size_t cl_len = 0;
    if (rc == EK_OK) rc = ek__http_put_headers(m, out, &ka, &cl, &cl_len);
    if (rc == EK_OK && (h->flags & EK_HTTP_DATE)) rc = ek__http_put_date(h, out);
    int mode = EK__HS_NONE;
    if (stream) {
        if (no_body || r.head)
            mode = EK__HS_DISCARD;
        else if (version == 10 || r.version == 10)
            mode = EK__HS_RAW, ka = 0; /* the end of the body is the end of the stream */
        else
            mode = EK__HS_CHUNKED;
    }
    if (rc == EK_OK && !ka) rc = ek__puts(out, "Connection: close\r\n");
    if (rc == EK_OK && ka && r.version == 10) rc = ek__puts(out, "Connection: keep-alive\r\n");
    if (rc == EK_OK && mode == EK__HS_CHUNKED) rc = ek__puts(out, "Transfer-Encoding: chunked\r\n");
    if (rc == EK_OK && !no_body && !stream) {
        rc = ek__puts(out, "Content-Length: ");
        if (rc == EK_OK && r.head && body_len == 0 && cl != NULL && ek__http_field_ok(cl, cl_len))
            rc = ek__put(out, cl, cl_len);
        else if (rc == EK_OK)
            rc = ek__put_u64(out, body_len, 10);
        if (rc == EK_OK) rc = ek__put(out, "\r\n", 2);
    }
    if (rc == EK_OK) rc = ek__put(out, "\r\n", 2);
    if (rc == EK_OK && body_len > 0 && !no_body && !r.head) {
        if (mode == EK__HS_CHUNKED) {
            rc = ek__put_u64(out, body_len, 16);
            if (rc == EK_OK) rc = ek__put(out, "\r\n", 2);
            if (rc == EK_OK) rc = ek__put(out, body, body_len);
            if (rc == EK_OK) rc = ek__put(out, "\r\n", 2);
        } else {
            rc = ek__put(out, body, body_len);
        }
    }
    if (rc != EK_OK) { /* out of memory, half written: the connection fails */
        h->closed = h->done = true;
        return rc;
    }
    h->stream = mode;
    if (!ka && mode != EK__HS_RAW) {
        h->closed = true;
        h->done = true;
    } else if (!ka) {
        h->done = true; /* raw stream: closed at its end */
    }
    return EK_OK;
}

/* A chunk of a streaming response or request (a head's body is the first). */
static int ek__http_encode_chunk(ek__http *h, const ek_msg *m, ek_buf *out)
{
    int kind = ek_msg_kind(m);
    if (kind != EK_MSG_BYTES && kind != EK_MSG_HTTP_RESPONSE && kind != EK_MSG_HTTP_REQUEST)
        return EK_EKIND;
    const uint8_t *data;
    size_t len;
    (void)ek_msg_data(m, &data, &len);
    if (len == 0 || h->stream == EK__HS_DISCARD || h->stream == EK__HS_NONE) return EK_OK;
    if (h->stream == EK__HS_RAW) return ek__put(out, data, len);
    int rc = ek__put_u64(out, len, 16);
    if (rc == EK_OK) rc = ek__put(out, "\r\n", 2);
    if (rc == EK_OK) rc = ek__put(out, data, len);
    if (rc == EK_OK) rc = ek__put(out, "\r\n", 2);
    return rc;
}

/* A request head and body; stream: the head of a streaming request (its body
 * chunked: the message's body, if any, is the first chunk). */
static int ek__http_encode_request(ek__http *h, const ek_msg *m, bool stream, ek_buf *out)
{
    if (ek_msg_kind(m) != EK_MSG_HTTP_REQUEST) return EK_EKIND;
    const char *method, *target;
    size_t mlen, tlen;
    (void)ek_msg_http_method(m, &method, &mlen);
    (void)ek_msg_http_target(m, &target, &tlen);
    if (!ek__http_field_ok(method, mlen) || memchr(method, ' ', mlen) != NULL ||
        !ek__http_field_ok(target, tlen) || memchr(target, ' ', tlen) != NULL || tlen == 0 ||
        !ek__http_headers_ok(m))
        return EK_EINVAL;
    int version = ek_msg_http_version(m);
    if (stream && version == 10) return EK_ENOTSUP; /* HTTP/1.0 has no chunked body */
    int ka = ek_msg_http_keep_alive(m) == 1;
    const uint8_t *body;
    size_t body_len;
    (void)ek_msg_data(m, &body, &body_len);
    int rc = ek__put(out, method, mlen);
    if (rc == EK_OK) rc = ek__put(out, " ", 1);
    if (rc == EK_OK) rc = ek__put(out, target, tlen);
    if (rc == EK_OK) rc = ek__puts(out, version == 10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
    const char *cl = NULL;
    size_t cl_len = 0;
    if (rc == EK_OK) rc = ek__http_put_headers(m, out, &ka, &cl, &cl_len);
    if (rc == EK_OK && !ka && version == 11) rc = ek__puts(out, "Connection: close\r\n");
    if (rc == EK_OK && ka && version == 10) rc = ek__puts(out, "Connection: keep-alive\r\n");
    bool wants_length = ek__http_ieq(method, mlen, "POST") || ek__http_ieq(method, mlen, "PUT") ||
                        ek__http_ieq(method, mlen, "PATCH");
    if (rc == EK_OK && stream) {
        rc = ek__puts(out, "Transfer-Encoding: chunked\r\n\r\n");
        h->stream = EK__HS_CHUNKED;
        if (rc == EK_OK) rc = ek__http_encode_chunk(h, m, out);
    } else if (rc == EK_OK) {
        if (body_len > 0 || wants_length) {
            rc = ek__puts(out, "Content-Length: ");
            if (rc == EK_OK) rc = ek__put_u64(out, body_len, 10);
            if (rc == EK_OK) rc = ek__put(out, "\r\n", 2);
        }
        if (rc == EK_OK) rc = ek__put(out, "\r\n", 2);
        if (rc == EK_OK && body_len > 0) rc = ek__put(out, body, body_len);
    }
    if (rc == EK_OK)
        rc = ek__http_q_push(h, (ek__hreq){.version = (uint8_t)version,
                                           .keep_alive = (uint8_t)ka,
                                           .head = ek__http_ieq(method, mlen, "HEAD")});
    return rc;
}

static int ek__http_encode(void *self, const ek_msg *m, int what, ek_buf *out)
{
    ek__http *h = self;
    if (!h->server) {
        if (what == EK_CODEC_PUSH && h->stream != EK__HS_NONE)
            return ek__http_encode_chunk(h, m, out);
        return what == EK_CODEC_REQUEST ? ek__http_encode_request(h, m, false, out) : EK_EKIND;
    }
    if (what == EK_CODEC_PUSH) return ek__http_encode_chunk(h, m, out);
    if (what != EK_CODEC_RESPONSE) return EK_EKIND;
    return ek__http_encode_response(h, m, false, out);
}

static int ek__http_encode_error(void *self, int err, const char *reason, ek_buf *out)
{
    ek__http *h = self;
    if (!h->server || h->closed) return EK_OK;
    h->closed = h->done = true;
    int status = h->err_status;
    if (status == 0) /* not a decode error: the response failed */
        status = err == EK_ETIMEDOUT || err == EK_EOVERLOADED ? 503 : 500;
    const char *phrase = ek__http_reason_phrase(status);
    const char *text = reason != NULL ? reason : phrase;
    size_t tlen = strlen(text);
    int rc = ek__puts(out, "HTTP/1.1 ");
    if (rc == EK_OK) rc = ek__put_u64(out, (uint64_t)status, 10);
    if (rc == EK_OK) rc = ek__put(out, " ", 1);
    if (rc == EK_OK) rc = ek__puts(out, phrase);
    if (rc == EK_OK) rc = ek__puts(out, "\r\nConnection: close\r\nContent-Type: text/plain\r\n");
    if (rc == EK_OK && (h->flags & EK_HTTP_DATE)) rc = ek__http_put_date(h, out);
    if (rc == EK_OK) rc = ek__puts(out, "Content-Length: ");
    if (rc == EK_OK) rc = ek__put_u64(out, tlen + 1, 10);
    if (rc == EK_OK) rc = ek__put(out, "\r\n\r\n", 4);
    if (rc == EK_OK) rc = ek__put(out, text, tlen);
    if (rc == EK_OK) rc = ek__put(out, "\n", 1);
    return rc;
}

/* ---- the server's hooks (codec.h) ---- */

static int ek__http_interim(void *self, ek_buf *out)
{
    ek__http *h = self;
    if (!h->continue_owed || h->continue_sent || h->closed) return EK_OK;
    h->continue_sent = true;
    return ek__puts(out, "HTTP/1.1 100 Continue\r\n\r\n");
}

static int ek__http_stream_begin(void *self, const ek_msg *head, ek_buf *out)
{
    ek__http *h = self;
    if (!h->server) return ek__http_encode_request(h, head, true, out);
    return ek__http_encode_response(h, head, true, out);
}

static int ek__http_stream_end(void *self, ek_buf *out)
{
    ek__http *h = self;
    int mode = h->stream;
    h->stream = EK__HS_NONE;
    if (mode == EK__HS_CHUNKED && !h->closed) return ek__puts(out, "0\r\n\r\n");
    if (mode == EK__HS_RAW) h->closed = h->done = true;
    return EK_OK;
}

/* ---- construction ---- */

static void ek__http_drop(void *self)
{
    ek__http *h = self;
    ek_msg_free(h->msg);
    ek_buf_free(h->body);
    ek__free(h->hdr);
    ek__free(h->q);
    ek__free(h);
}

static int ek__http_make(int server, size_t max_header, size_t max_body, int flags, void **out)
{
    ek__http *h = ek__calloc(1, sizeof *h);
    if (h == NULL) return EK_ENOMEM;
    h->server = server;
    h->max_header = max_header ? max_header : EK_HTTP_DEFAULT_MAX_HEADER;
    h->max_body = max_body ? max_body : EK_HTTP_DEFAULT_MAX_BODY;
    h->flags = flags;
    llhttp_init(&h->p, server ? HTTP_REQUEST : HTTP_RESPONSE, &ek__http_settings);
    h->p.data = h;
    *out = h;
    return EK_OK;
}

static int ek__http_fork(void *self, void **out)
{
    ek__http *h = self;
    return ek__http_make(h->server, h->max_header, h->max_body, h->flags, out);
}

static const ek_codec_vtable ek__http_vtable = {
    .decode = ek__http_decode,
    .decode_eof = ek__http_decode_eof,
    .encode = ek__http_encode,
    .encode_error = ek__http_encode_error,
    .fork = ek__http_fork,
    .drop = ek__http_drop,
};

static const ek__codec_ext ek__http_ext = {
    .interim = ek__http_interim,
    .stream_begin = ek__http_stream_begin,
    .stream_end = ek__http_stream_end,
};

/* The client's: streaming requests (chunked bodies). */
static const ek__codec_ext ek__http_client_ext = {
    .stream_begin = ek__http_stream_begin,
    .stream_end = ek__http_stream_end,
};

static int ek__http_codec(int server, size_t max_header, size_t max_body, int flags, ek_codec **out)
{
    if (out == NULL || (flags & ~(server ? EK_HTTP_DATE : 0)) != 0) return EK_EINVAL;
    void *self;
    int rc = ek__http_make(server, max_header, max_body, flags, &self);
    if (rc != EK_OK) return rc;
    return ek__codec_new_ext(&ek__http_vtable, server ? &ek__http_ext : &ek__http_client_ext, self,
                             out);
}

int ek_codec_http_server(size_t max_header, size_t max_body, int flags, ek_codec **out)
{
    return ek__http_codec(1, max_header, max_body, flags, out);
}

int ek_codec_http_client(size_t max_header, size_t max_body, int flags, ek_codec **out)
{
    return ek__http_codec(0, max_header, max_body, flags, out);
}
