/*
 * resp.c - the RESP scanners (see resp.h). No recursion: an explicit stack of
 * "elements still to come" per open aggregate, so hostile nesting costs a
 * bounded stack and a clear error.
 */
#include "resp.h"

#include "../common.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define EK__RESP_DEPTH_CAP 1024

const ek__resp_limits ek__resp_default_limits = {
    .max_bulk = 512u * 1024 * 1024,
    .max_count = INT_MAX,
    .max_depth = 128,
    .max_inline = 64 * 1024,
};

void ek__resp_toks_free(ek__resp_toks *t)
{
    ek__free(t->v);
    t->v = NULL;
    t->len = t->cap = 0;
}

static ek__resp_tok *ek__resp_push(ek__resp_toks *t)
{
    if (t->len == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        ek__resp_tok *v = ek__realloc(t->v, cap * sizeof *v);
        if (v == NULL) return NULL;
        t->v = v;
        t->cap = cap;
    }
    ek__resp_tok *k = &t->v[t->len++];
    memset(k, 0, sizeof *k);
    return k;
}

/* redis's string2ll: optional '-', no '+', no leading zeros ("0" alone is fine),
 * no "-0", no spaces, fits in int64. */
static bool ek__resp_ll(const char *p, size_t n, int64_t *out)
{
    if (n == 0 || n > 20) return false;
    size_t i = 0;
    bool neg = false;
    if (p[0] == '-') {
        neg = true;
        if (++i == n) return false;
    }
    if (p[i] == '0') {
        if (n == 1) {
            *out = 0;
            return true;
        }
        return false;
    }
    uint64_t v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) return false;
        *out = (int64_t)(0 - v);
    } else {
        if (v > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)v;
    }
    return true;
}

int ek_resp_parse_int(const void *data, size_t len, int64_t *out)
{
    if (out == NULL || (data == NULL && len > 0)) return EK_EINVAL;
    return ek__resp_ll(data, len, out) ? EK_OK : EK_EINVAL;
}

/* A RESP3 double: "inf", "-inf", "nan", or [-]digits[.digits][(e|E)[+-]digits]. */
static bool ek__resp_double_ok(const char *p, size_t n)
{
    if ((n == 3 && memcmp(p, "inf", 3) == 0) || (n == 4 && memcmp(p, "-inf", 4) == 0) ||
        (n == 3 && memcmp(p, "nan", 3) == 0))
        return true;
    size_t i = 0, d = 0;
    if (i < n && p[i] == '-') i++;
    while (i < n && isdigit((unsigned char)p[i])) i++, d++;
    if (d == 0) return false;
    if (i < n && p[i] == '.') {
        i++;
        size_t f = 0;
        while (i < n && isdigit((unsigned char)p[i])) i++, f++;
        if (f == 0) return false;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-')) i++;
        size_t e = 0;
        while (i < n && isdigit((unsigned char)p[i])) i++, e++;
        if (e == 0) return false;
    }
    return i == n;
}

static bool ek__resp_bignum_ok(const char *p, size_t n)
{
    size_t i = (n > 0 && p[0] == '-') ? 1 : 0;
    if (i == n) return false;
    for (; i < n; i++)
        if (!isdigit((unsigned char)p[i])) return false;
    return true;
}

int ek__resp_scan(const char *buf, size_t len, const ek__resp_limits *lim, ek__resp_toks *toks,
                  size_t *frame_len, const char **err)
{
    if (lim == NULL) lim = &ek__resp_default_limits;
    unsigned max_depth = lim->max_depth < EK__RESP_DEPTH_CAP ? lim->max_depth : EK__RESP_DEPTH_CAP;
    int64_t left[EK__RESP_DEPTH_CAP + 1]; /* elements still to come per level */
    unsigned depth = 0;
    left[0] = 1;
    size_t pos = 0;
    toks->len = 0;
    for (;;) {
        if (pos >= len) return EK__RESP_MORE;
        char type = buf[pos];
        if (type == '\0' || strchr(lim->resp2_only ? "+-:$*" : "+-:$*_,#!=(%~>|", type) == NULL) {
            *err = "unknown type byte";
            return EK__RESP_CORRUPT;
        }
        /* The header line: type byte, text, CRLF. */
        size_t lstart = pos + 1, avail = len - lstart;
        size_t scan = avail < lim->max_inline + 1 ? avail : lim->max_inline + 1;
        const char *cr = memchr(buf + lstart, '\r', scan);
        if (cr == NULL) {
            if (avail > lim->max_inline) {
                *err = "line too long";
                return EK__RESP_CORRUPT;
            }
            return EK__RESP_MORE;
        }
        size_t llen = (size_t)(cr - (buf + lstart));
        if (lstart + llen + 1 >= len) return EK__RESP_MORE; /* the LF is not here yet */
        if (cr[1] != '\n') {
            *err = "expected LF after CR";
            return EK__RESP_CORRUPT;
        }
        const char *line = buf + lstart;
        size_t next = lstart + llen + 2;
        ek__resp_tok *t = ek__resp_push(toks);
        if (t == NULL) return EK__RESP_NOMEM;
        t->type = (uint8_t)type;
        int64_t n = 0, children = 0;
        switch (type) {
        case '+':
        case '-':
            if (memchr(line, '\n', llen) != NULL) {
                *err = "LF inside a simple string";
                return EK__RESP_CORRUPT;
            }
            t->off = lstart;
            t->len = llen;
            break;
        case ':':
            if (!ek__resp_ll(line, llen, &t->n)) {
                *err = "invalid integer";
                return EK__RESP_CORRUPT;
            }
            break;
        case '(':
            if (!ek__resp_bignum_ok(line, llen)) {
                *err = "invalid big number";
                return EK__RESP_CORRUPT;
            }
            t->off = lstart;
            t->len = llen;
            break;
        case ',':
            if (!ek__resp_double_ok(line, llen)) {
                *err = "invalid double";
                return EK__RESP_CORRUPT;
            }
            t->off = lstart;
            t->len = llen;
            break;
        case '#':
            if (llen != 1 || (line[0] != 't' && line[0] != 'f')) {
                *err = "invalid boolean";
                return EK__RESP_CORRUPT;
            }
            t->n = line[0] == 't';
            break;
        case '_':
            if (llen != 0) {
                *err = "invalid null";
                return EK__RESP_CORRUPT;
            }
            break;
        case '$':
        case '!':
        case '=':
            if (!ek__resp_ll(line, llen, &n) || n < -1 || (n == -1 && type != '$')) {
                *err = "invalid bulk length";
                return EK__RESP_CORRUPT;
            }
            if (n == -1) {
                t->null = 1;
                break;
            }
            if ((uint64_t)n > lim->max_bulk) {
                *err = "bulk length over the limit";
                return EK__RESP_CORRUPT;
            }
            if (len - next < (size_t)n + 2) return EK__RESP_MORE;
            if (buf[next + (size_t)n] != '\r' || buf[next + (size_t)n + 1] != '\n') {
                *err = "bulk payload not followed by CRLF";
                return EK__RESP_CORRUPT;
            }
            if (type == '=' && (n < 4 || buf[next + 3] != ':')) {
                *err = "invalid verbatim string";
                return EK__RESP_CORRUPT;
            }
            t->off = next;
            t->len = (size_t)n;
            next += (size_t)n + 2;
            break;
        case '*':
        case '%':
        case '~':
        case '>':
        case '|':
            if (!ek__resp_ll(line, llen, &n) || n < -1 || (n == -1 && type != '*')) {
                *err = "invalid aggregate length";
                return EK__RESP_CORRUPT;
            }
            if (n == -1) {
                t->null = 1;
                break;
            }
            if (n > lim->max_count) {
                *err = "aggregate length over the limit";
                return EK__RESP_CORRUPT;
            }
            t->n = n;
            children = (type == '%' || type == '|') ? 2 * n : n;
            break;
        default:
            *err = "unknown type byte";
            return EK__RESP_CORRUPT;
        }
        pos = next;
        /* An attribute annotates the value after it: it does not take that
         * value's place in its parent. */
        if (type == '|') left[depth]++;
        if (children > 0) {
            if (depth + 1 > max_depth) {
                *err = "nesting too deep";
                return EK__RESP_CORRUPT;
            }
            left[++depth] = children;
            continue;
        }
        /* A leaf (or an empty aggregate) completes; so may its parents. */
        left[depth]--;
        while (left[depth] == 0) {
            if (depth == 0) {
                *frame_len = pos;
                return EK__RESP_FRAME;
            }
            depth--;
            left[depth]--;
        }
    }
}

/* ---- the request grammar: redis-server's ---- */

/* strchr on redis's NUL-terminated query buffer: the first `c` before a NUL. */
static const char *ek__resp_strchr(const char *p, const char *end, char c)
{
    for (; p < end; p++) {
        if (*p == c) return p;
        if (*p == '\0') return NULL;
    }
    return NULL;
}

static _Thread_local char ek__resp_errbuf[64];

static int ek__scratch_put(char **scratch, size_t *cap, size_t *used, const char *p, size_t n)
{
    if (*used + n > *cap) {
        size_t ncap = *cap ? *cap : 256;
        while (ncap < *used + n) ncap *= 2;
        char *s = ek__realloc(*scratch, ncap);
        if (s == NULL) return -1;
        *scratch = s;
        *cap = ncap;
    }
    memcpy(*scratch + *used, p, n);
    *used += n;
    return 0;
}

static int ek__resp_hex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* sdssplitargs over line[0..n) (which holds no NUL): tokens into toks (after
 * the ARRAY token at index 0), bytes into scratch. 0, -1 (unbalanced quotes), -2
 * (no memory). */
static int ek__resp_splitargs(const char *line, size_t n, ek__resp_toks *toks, char **scratch,
                              size_t *cap)
{
    const char *p = line, *end = line + n;
    size_t used = 0;
#define EK__AT(q) ((q) < end ? *(q) : '\0')
    for (;;) {
        while (p < end && isspace((unsigned char)*p)) p++;
        if (p >= end) return 0;
        ek__resp_tok *t = ek__resp_push(toks);
        if (t == NULL) return -2;
        t->type = EK__RESP_BULK;
        t->inl = 1;
        t->off = used;
        bool inq = false, insq = false, done = false;
        while (!done) {
            char c = EK__AT(p), out;
            if (inq) {
                if (c == '\\' && EK__AT(p + 1) == 'x' && ek__resp_hex(EK__AT(p + 2)) >= 0 &&
                    ek__resp_hex(EK__AT(p + 3)) >= 0) {
                    out = (char)(ek__resp_hex(p[2]) * 16 + ek__resp_hex(p[3]));
                    if (ek__scratch_put(scratch, cap, &used, &out, 1)) return -2;
                    p += 3;
                } else if (c == '\\' && EK__AT(p + 1) != '\0') {
                    p++;
                    switch (*p) {
                    case 'n':
                        out = '\n';
                        break;
                    case 'r':
                        out = '\r';
                        break;
                    case 't':
                        out = '\t';
                        break;
                    case 'b':
                        out = '\b';
                        break;
                    case 'a':
                        out = '\a';
                        break;
                    default:
                        out = *p;
                        break;
                    }
                    if (ek__scratch_put(scratch, cap, &used, &out, 1)) return -2;
                } else if (c == '"') {
                    /* a closing quote must be followed by a space or the end */
                    char a = EK__AT(p + 1);
                    if (a != '\0' && !isspace((unsigned char)a)) return -1;
                    done = true;
                } else if (c == '\0') {
                    return -1; /* unterminated quotes */
                } else if (ek__scratch_put(scratch, cap, &used, p, 1)) {
                    return -2;
                }
            } else if (insq) {
                if (c == '\\' && EK__AT(p + 1) == '\'') {
                    p++;
                    if (ek__scratch_put(scratch, cap, &used, "'", 1)) return -2;
                } else if (c == '\'') {
                    char a = EK__AT(p + 1);
                    if (a != '\0' && !isspace((unsigned char)a)) return -1;
                    done = true;
                } else if (c == '\0') {
                    return -1;
                } else if (ek__scratch_put(scratch, cap, &used, p, 1)) {
                    return -2;
                }
            } else {
                switch (c) {
                case ' ':
                case '\n':
                case '\r':
                case '\t':
                case '\0':
                    done = true;
                    break;
                case '"':
                    inq = true;
                    break;
                case '\'':
                    insq = true;
                    break;
                default:
                    if (ek__scratch_put(scratch, cap, &used, p, 1)) return -2;
                    break;
                }
            }
            if (p < end) p++;
        }
        t = &toks->v[toks->len - 1]; /* the vector may have moved */
        t->len = used - t->off;
    }
#undef EK__AT
}

int ek__resp_scan_request(const char *buf, size_t len, const ek__resp_limits *lim,
                          ek__resp_toks *toks, char **scratch, size_t *scratch_cap,
                          size_t *frame_len, const char **err)
{
    if (lim == NULL) lim = &ek__resp_default_limits;
    toks->len = 0;
    if (len == 0) return EK__RESP_MORE;
    const char *end = buf + len;
    ek__resp_tok *arr = ek__resp_push(toks);
    if (arr == NULL) return EK__RESP_NOMEM;
    arr->type = EK__RESP_ARRAY;

    if (buf[0] != '*') {
        /* Inline: one line up to LF (CRLF or LF), split as sdssplitargs does. */
        const char *nl = ek__resp_strchr(buf, end, '\n');
        if (nl == NULL) {
            if (len > lim->max_inline) {
                *err = "Protocol error: too big inline request";
                return EK__RESP_CORRUPT;
            }
            return EK__RESP_MORE;
        }
        size_t consumed = (size_t)(nl - buf) + 1;
        if (nl != buf && nl[-1] == '\r') nl--;
        int rc = ek__resp_splitargs(buf, (size_t)(nl - buf), toks, scratch, scratch_cap);
        if (rc == -2) return EK__RESP_NOMEM;
        if (rc == -1) {
            *err = "Protocol error: unbalanced quotes in request";
            return EK__RESP_CORRUPT;
        }
        *frame_len = consumed;
        toks->v[0].n = (int64_t)(toks->len - 1);
        return toks->len == 1 ? EK__RESP_EMPTY : EK__RESP_FRAME;
    }

    /* Multibulk: "*<count>\r\n" then count times "$<len>\r\n<bytes>\r\n". As in
     * redis, a line ends at the first CR (the byte after it is skipped unread)
     * and a payload's trailing two bytes are skipped unchecked. */
    const char *cr = ek__resp_strchr(buf, end, '\r');
    if (cr == NULL) {
        if (len > lim->max_inline) {
            *err = "Protocol error: too big mbulk count string";
            return EK__RESP_CORRUPT;
        }
        return EK__RESP_MORE;
    }
    if ((size_t)(cr - buf) + 2 > len) return EK__RESP_MORE;
    int64_t count;
    if (!ek__resp_ll(buf + 1, (size_t)(cr - buf - 1), &count) || count > INT_MAX) {
        *err = "Protocol error: invalid multibulk length";
        return EK__RESP_CORRUPT;
    }
    size_t pos = (size_t)(cr - buf) + 2;
    if (count <= 0) {
        *frame_len = pos;
        return EK__RESP_EMPTY;
    }
    toks->v[0].n = count;
    for (int64_t i = 0; i < count; i++) {
        const char *p = buf + pos;
        cr = ek__resp_strchr(p, end, '\r');
        if (cr == NULL) {
            if (len - pos > lim->max_inline) {
                *err = "Protocol error: too big bulk count string";
                return EK__RESP_CORRUPT;
            }
            return EK__RESP_MORE;
        }
        if ((size_t)(cr - p) + 2 > len - pos) return EK__RESP_MORE;
        if (*p != '$') {
            snprintf(ek__resp_errbuf, sizeof ek__resp_errbuf,
                     "Protocol error: expected '$', got '%c'", *p);
            *err = ek__resp_errbuf;
            return EK__RESP_CORRUPT;
        }
        int64_t n;
        if (!ek__resp_ll(p + 1, (size_t)(cr - p - 1), &n) || n < 0 || (uint64_t)n > lim->max_bulk) {
            *err = "Protocol error: invalid bulk length";
            return EK__RESP_CORRUPT;
        }
        pos = (size_t)(cr - buf) + 2;
        if (len - pos < (size_t)n + 2) return EK__RESP_MORE;
        ek__resp_tok *t = ek__resp_push(toks);
        if (t == NULL) return EK__RESP_NOMEM;
        t->type = EK__RESP_BULK;
        t->off = pos;
        t->len = (size_t)n;
        pos += (size_t)n + 2;
    }
    *frame_len = pos;
    return EK__RESP_FRAME;
}
