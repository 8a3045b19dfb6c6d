/*
 * test_resp.c - the RESP scanners of core/service/resp.c: every RESP3 type,
 * every error, the redis request grammar (multibulk and inline, as redis-server
 * splits them), and a differential test against Debian's hiredis reader on the
 * same inputs (random values, every prefix of them, and random mutations).
 */
#include "support.h"

#include "common.h"
#include "service/resp.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a canonical text of a scanned value, to compare trees ---- */

typedef struct t_out {
    char *s;
    size_t len, cap;
} t_out;

static void t_put(t_out *o, const char *p, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->s = realloc(o->s, o->cap);
        assert_non_null(o->s);
    }
    memcpy(o->s + o->len, p, n);
    o->len += n;
    o->s[o->len] = '\0';
}

static void t_putf(t_out *o, const char *fmt, long long v)
{
    char b[64];
    int n = snprintf(b, sizeof b, fmt, v);
    t_put(o, b, (size_t)n);
}

static void t_put_hex(t_out *o, const char *p, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        char b[2] = {hx[(unsigned char)p[i] >> 4], hx[(unsigned char)p[i] & 15]};
        t_put(o, b, 2);
    }
}

/* Render token *i (and its subtree) in hiredis's terms: S status, E error, I int,
 * B bulk, N nil, A array. */
static void t_render(const ek__resp_toks *t, size_t *i, const char *buf, t_out *o)
{
    const ek__resp_tok *k = &t->v[(*i)++];
    switch (k->type) {
    case '+':
        t_put(o, "S", 1);
        t_put_hex(o, buf + k->off, k->len);
        break;
    case '-':
        t_put(o, "E", 1);
        t_put_hex(o, buf + k->off, k->len);
        break;
    case ':':
        t_putf(o, "I%lld", (long long)k->n);
        break;
    case '$':
        if (k->null) {
            t_put(o, "N", 1);
        } else {
            t_put(o, "B", 1);
            t_put_hex(o, buf + k->off, k->len);
        }
        break;
    case '*':
        if (k->null) {
            t_put(o, "N", 1);
            break;
        }
        t_putf(o, "A%lld[", (long long)k->n);
        for (int64_t j = 0; j < k->n; j++) t_render(t, i, buf, o);
        t_put(o, "]", 1);
        break;
    default:
        fail_msg("type %c in a RESP2 test", k->type);
    }
    t_put(o, ";", 1);
}

static void t_render_hiredis(const redisReply *r, t_out *o)
{
    switch (r->type) {
    case REDIS_REPLY_STATUS:
        t_put(o, "S", 1);
        t_put_hex(o, r->str, r->len);
        break;
    case REDIS_REPLY_ERROR:
        t_put(o, "E", 1);
        t_put_hex(o, r->str, r->len);
        break;
    case REDIS_REPLY_INTEGER:
        t_putf(o, "I%lld", r->integer);
        break;
    case REDIS_REPLY_STRING:
        t_put(o, "B", 1);
        t_put_hex(o, r->str, r->len);
        break;
    case REDIS_REPLY_NIL:
        t_put(o, "N", 1);
        break;
    case REDIS_REPLY_ARRAY:
        t_putf(o, "A%lld[", (long long)r->elements);
        for (size_t j = 0; j < r->elements; j++) t_render_hiredis(r->element[j], o);
        t_put(o, "]", 1);
        break;
    default:
        fail_msg("hiredis type %d", r->type);
    }
    t_put(o, ";", 1);
}

/* What each parser makes of buf: 'F' (a frame; *text its rendering), 'M' (more),
 * 'C' (corrupt). */
static const char *t_last_err;

static char t_ours(const char *buf, size_t len, t_out *text, size_t *flen)
{
    ek__resp_toks t = {0};
    const char *err = NULL;
    t_last_err = NULL;
    ek__resp_limits lim = ek__resp_default_limits;
    lim.resp2_only = 1;
    int rc = ek__resp_scan(buf, len, &lim, &t, flen, &err);
    char k = rc == EK__RESP_FRAME ? 'F' : rc == EK__RESP_MORE ? 'M' : 'C';
    assert_true(rc == EK__RESP_FRAME || rc == EK__RESP_MORE || rc == EK__RESP_CORRUPT);
    if (rc == EK__RESP_CORRUPT) assert_non_null(t_last_err = err);
    if (k == 'F') {
        size_t i = 0;
        t_render(&t, &i, buf, text);
        assert_int_equal(i, t.len);
    }
    ek__resp_toks_free(&t);
    return k;
}

static char t_theirs(const char *buf, size_t len, t_out *text)
{
    redisReader *r = redisReaderCreate();
    assert_non_null(r);
    void *reply = NULL;
    char k;
    if (redisReaderFeed(r, buf, len) != REDIS_OK || redisReaderGetReply(r, &reply) != REDIS_OK)
        k = 'C';
    else if (reply == NULL)
        k = 'M';
    else {
        k = 'F';
        t_render_hiredis(reply, text);
        freeReplyObject(reply);
    }
    redisReaderFree(r);
    return k;
}

/* ---- random RESP2 values ---- */

static uint64_t t_rng = 0x9e3779b97f4a7c15u;
static uint64_t t_rand(void)
{
    t_rng ^= t_rng << 13;
    t_rng ^= t_rng >> 7;
    t_rng ^= t_rng << 17;
    return t_rng;
}

/* depth <= 7: hiredis 0.14 refuses deeper nesting. */
static void t_gen(t_out *o, int depth)
{
    int kind = (int)(t_rand() % (depth >= 6 ? 6 : 8));
    char line[64];
    size_t n;
    switch (kind) {
    case 0:
    case 1: { /* status / error without CR or LF */
        t_put(o, kind == 0 ? "+" : "-", 1);
        n = t_rand() % 12;
        for (size_t i = 0; i < n; i++) {
            char c = (char)(' ' + t_rand() % 95);
            t_put(o, &c, 1);
        }
        t_put(o, "\r\n", 2);
        break;
    }
    case 2: {
        int64_t v = (int64_t)t_rand();
        if (t_rand() % 2) v %= 1000;
        snprintf(line, sizeof line, ":%lld\r\n", (long long)v);
        t_put(o, line, strlen(line));
        break;
    }
    case 3:
    case 4: { /* bulk, binary, maybe null */
        if (t_rand() % 8 == 0) {
            t_put(o, "$-1\r\n", 5);
            break;
        }
        n = t_rand() % 40;
        snprintf(line, sizeof line, "$%zu\r\n", n);
        t_put(o, line, strlen(line));
        for (size_t i = 0; i < n; i++) {
            char c = (char)t_rand();
            t_put(o, &c, 1);
        }
        t_put(o, "\r\n", 2);
        break;
    }
    case 5:
        t_put(o, "*-1\r\n", 5);
        break;
    default: { /* array */
        n = t_rand() % 5;
        snprintf(line, sizeof line, "*%zu\r\n", n);
        t_put(o, line, strlen(line));
        for (size_t i = 0; i < n; i++) t_gen(o, depth + 1);
        break;
    }
    }
}

static void test_parse_int_is_redis_string2ll(void **state)
{
    (void)state;
    int64_t v = 7;
    assert_int_equal(ek_resp_parse_int("0", 1, &v), EK_OK);
    assert_int_equal(v, 0);
    assert_int_equal(ek_resp_parse_int("-42", 3, &v), EK_OK);
    assert_int_equal(v, -42);
    assert_int_equal(ek_resp_parse_int("9223372036854775807", 19, &v), EK_OK);
    assert_true(v == INT64_MAX);
    assert_int_equal(ek_resp_parse_int("-9223372036854775808", 20, &v), EK_OK);
    assert_true(v == INT64_MIN);
    v = 7;
    const char *bad[] = {"",
                         "-",
                         "+1",
                         "01",
                         "-0",
                         " 1",
                         "1 ",
                         "1x",
                         "9223372036854775808",
                         "-9223372036854775809",
                         "123456789012345678901"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        assert_int_equal(ek_resp_parse_int(bad[k], strlen(bad[k]), &v), EK_EINVAL);
    assert_int_equal(v, 7); /* untouched on error */
    assert_int_equal(ek_resp_parse_int(NULL, 1, &v), EK_EINVAL);
    assert_int_equal(ek_resp_parse_int("1", 1, NULL), EK_EINVAL);
}

static void test_differential_valid_values_and_prefixes(void **state)
{
    long rounds = ekt_scale(3000);
    for (long r = 0; r < rounds; r++) {
        t_out in = {0}, a = {0}, b = {0};
        t_gen(&in, 0);
        size_t flen = 0;
        assert_int_equal(t_ours(in.s, in.len, &a, &flen), 'F');
        assert_int_equal(flen, in.len);
        assert_int_equal(t_theirs(in.s, in.len, &b), 'F');
        assert_string_equal(a.s, b.s);
        /* every proper prefix (a sample of them for long inputs) is incomplete */
        size_t step = in.len > 200 ? in.len / 50 : 1;
        for (size_t p = 0; p < in.len; p += step) {
            t_out x = {0}, y = {0};
            assert_int_equal(t_ours(in.s, p, &x, &flen), 'M');
            assert_int_equal(t_theirs(in.s, p, &y), 'M');
            free(x.s);
            free(y.s);
        }
        free(in.s);
        free(a.s);
        free(b.s);
    }
}

/* hiredis 0.14 is lenient where RESP is not: its integer reader skips a '+',
 * accepts leading zeros, overflows silently and maps a non-digit to -1 (so
 * "$x" is a nil); it does not check the CRLF after a bulk payload, and reads a
 * line up to CR whatever follows, and it has no size limits. So the two may differ only where we
 * reject a frame for one of these reasons and hiredis takes it (or waits for more). */
static bool t_hiredis_leniency(char ours, char theirs)
{
    static const char *const lenient[] = {
        "invalid integer",
        "invalid bulk length",
        "invalid aggregate length",
        "bulk payload not followed by CRLF",
        "expected LF after CR",
        "LF inside a simple string",
        "bulk length over the limit",
        "aggregate length over the limit", /* hiredis: none */
    };
    if (ours != 'C' || theirs == 'C') return false;
    for (size_t i = 0; i < sizeof lenient / sizeof *lenient; i++)
        if (strcmp(t_last_err, lenient[i]) == 0) return true;
    return false;
}

static void test_differential_mutations(void **state)
{
    long rounds = ekt_scale(20000), agree = 0, lenient = 0;
    for (long r = 0; r < rounds; r++) {
        t_out in = {0}, a = {0}, b = {0};
        t_gen(&in, 0);
        int muts = 1 + (int)(t_rand() % 3);
        for (int m = 0; m < muts && in.len > 0; m++) {
            size_t at = t_rand() % in.len;
            static const char pool[] = "+-:$*\r\n0123456789-x";
            in.s[at] = t_rand() % 2 ? pool[t_rand() % (sizeof pool - 1)] : (char)t_rand();
        }
        size_t flen = 0;
        char ko = t_ours(in.s, in.len, &a, &flen);
        char kt = t_theirs(in.s, in.len, &b);
        bool same = ko == kt && (ko != 'F' || strcmp(a.s, b.s) == 0);
        if (same) {
            agree++;
        } else {
            if (!t_hiredis_leniency(ko, kt)) {
                t_out hex = {0};
                t_put_hex(&hex, in.s, in.len);
                fail_msg("ours %c (%s), hiredis %c on %s (%s / %s)", ko,
                         t_last_err ? t_last_err : "", kt, hex.s, a.s ? a.s : "", b.s ? b.s : "");
            }
            lenient++;
        }
        free(in.s);
        free(a.s);
        free(b.s);
    }
    print_message("mutations: %ld agree, %ld differ by hiredis's leniency\n", agree, lenient);
    assert_true(agree > rounds / 4);
}

/* ---- RESP3 and the errors, exactly ---- */

static int t_scan(const char *s, size_t *flen, const char **err, ek__resp_toks *t)
{
    return ek__resp_scan(s, strlen(s), NULL, t, flen, err);
}

static void test_resp3_types(void **state)
{
    ek__resp_toks t = {0};
    size_t flen;
    const char *err;
    const char *in =
        "%2\r\n+a\r\n,1.5e3\r\n$1\r\nb\r\n~3\r\n_\r\n#t\r\n(-123456789012345678901234\r\n";
    assert_int_equal(t_scan(in, &flen, &err, &t), EK__RESP_FRAME);
    assert_int_equal(flen, strlen(in));
    assert_int_equal(t.len, 8);
    assert_int_equal(t.v[0].type, '%');
    assert_int_equal(t.v[0].n, 2);
    assert_int_equal(t.v[2].type, ',');
    assert_memory_equal(in + t.v[2].off, "1.5e3", 5);
    assert_int_equal(t.v[4].type, '~');
    assert_int_equal(t.v[5].type, '_');
    assert_int_equal(t.v[6].type, '#');
    assert_int_equal(t.v[6].n, 1);
    assert_int_equal(t.v[7].type, '(');
    assert_int_equal(t.v[7].len, 25);

    /* an attribute before a value, a push, a verbatim string, a blob error */
    in = "|1\r\n+ttl\r\n:3\r\n>2\r\n=8\r\ntxt:some\r\n!3\r\nERR\r\n";
    assert_int_equal(t_scan(in, &flen, &err, &t), EK__RESP_FRAME);
    assert_int_equal(flen, strlen(in));
    assert_int_equal(t.len, 6);
    assert_int_equal(t.v[0].type, '|');
    assert_int_equal(t.v[3].type, '>');
    assert_int_equal(t.v[4].type, '=');
    assert_int_equal(t.v[4].len, 8);
    assert_int_equal(t.v[5].type, '!');
    /* doubles */
    const char *dbl_ok[] = {",inf\r\n", ",-inf\r\n",  ",nan\r\n",
                            ",0\r\n",   ",-1.25\r\n", ",1E-7\r\n"};
    for (size_t i = 0; i < sizeof dbl_ok / sizeof *dbl_ok; i++)
        assert_int_equal(t_scan(dbl_ok[i], &flen, &err, &t), EK__RESP_FRAME);
    /* two frames back to back: only the first is taken */
    assert_int_equal(t_scan(":1\r\n:2\r\n", &flen, &err, &t), EK__RESP_FRAME);
    assert_int_equal(flen, 4);
    ek__resp_toks_free(&t);
}

static void test_corrupt_frames_say_why(void **state)
{
    struct {
        const char *in, *err;
    } cases[] = {
        {"?x\r\n", "unknown type byte"},
        {":12a\r\n", "invalid integer"},
        {":+1\r\n", "invalid integer"},
        {":01\r\n", "invalid integer"},
        {":-0\r\n", "invalid integer"},
        {":99999999999999999999\r\n", "invalid integer"},
        {"$-2\r\n", "invalid bulk length"},
        {"!-1\r\n", "invalid bulk length"},
        {"$3\r\nabcde\r\n", "bulk payload not followed by CRLF"},
        {"=3\r\ntxt\r\n", "invalid verbatim string"},
        {"*-2\r\n", "invalid aggregate length"},
        {"%-1\r\n", "invalid aggregate length"},
        {"#x\r\n", "invalid boolean"},
        {"_x\r\n", "invalid null"},
        {",1.\r\n", "invalid double"},
        {",e5\r\n", "invalid double"},
        {"(12-3\r\n", "invalid big number"},
        {"+a\rb\r\n", "expected LF after CR"},
        {"+a\nb\r\n", "LF inside a simple string"},
    };
    ek__resp_toks t = {0};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t flen;
        const char *err = NULL;
        assert_int_equal(t_scan(cases[i].in, &flen, &err, &t), EK__RESP_CORRUPT);
        assert_string_equal(err, cases[i].err);
    }
    /* limits: nesting, bulk size, count, line length */
    ek__resp_limits lim = ek__resp_default_limits;
    lim.max_depth = 2;
    size_t flen;
    const char *err;
    assert_int_equal(ek__resp_scan("*1\r\n*1\r\n:1\r\n", 12, &lim, &t, &flen, &err),
                     EK__RESP_FRAME);
    assert_int_equal(ek__resp_scan("*1\r\n*1\r\n*1\r\n", 12, &lim, &t, &flen, &err),
                     EK__RESP_CORRUPT);
    assert_string_equal(err, "nesting too deep");
    lim.max_bulk = 3;
    assert_int_equal(ek__resp_scan("$4\r\n", 4, &lim, &t, &flen, &err), EK__RESP_CORRUPT);
    assert_string_equal(err, "bulk length over the limit");
    lim.max_count = 3;
    assert_int_equal(ek__resp_scan("*4\r\n", 4, &lim, &t, &flen, &err), EK__RESP_CORRUPT);
    assert_string_equal(err, "aggregate length over the limit");
    lim.max_inline = 8;
    assert_int_equal(ek__resp_scan("+123456789", 10, &lim, &t, &flen, &err), EK__RESP_CORRUPT);
    assert_string_equal(err, "line too long");
    assert_int_equal(ek__resp_scan("+1234567", 8, &lim, &t, &flen, &err), EK__RESP_MORE);
    /* a deep but legal value: no recursion, a bounded stack */
    t_out deep = {0};
    for (int i = 0; i < 128; i++) t_put(&deep, "*1\r\n", 4);
    t_put(&deep, ":7\r\n", 4);
    assert_int_equal(ek__resp_scan(deep.s, deep.len, NULL, &t, &flen, &err), EK__RESP_FRAME);
    t_put(&deep, ":7\r\n", 4);
    memmove(deep.s + 4, deep.s, deep.len - 4);
    memcpy(deep.s, "*1\r\n", 4);
    assert_int_equal(ek__resp_scan(deep.s, deep.len, NULL, &t, &flen, &err), EK__RESP_CORRUPT);
    free(deep.s);
    /* out of memory growing the tokens */
    ek__resp_toks_free(&t);
    ekt_alloc_fail_after(0);
    assert_int_equal(ek__resp_scan(":1\r\n", 4, NULL, &t, &flen, &err), EK__RESP_NOMEM);
    ekt_alloc_fail_after(-1);
    ek__resp_toks_free(&t);
}

/* ---- the request grammar ---- */

typedef struct t_req {
    int rc;
    size_t flen;
    const char *err;
    int argc;
    char argv[8][64];
    size_t argl[8];
} t_req;

static t_req t_request(const char *buf, size_t len)
{
    t_req r = {0};
    ek__resp_toks t = {0};
    char *scratch = NULL;
    size_t cap = 0;
    r.rc = ek__resp_scan_request(buf, len, NULL, &t, &scratch, &cap, &r.flen, &r.err);
    if (r.rc == EK__RESP_FRAME) {
        assert_int_equal(t.v[0].type, '*');
        r.argc = (int)t.v[0].n;
        assert_int_equal((size_t)r.argc + 1, t.len);
        for (int i = 0; i < r.argc && i < 8; i++) {
            const ek__resp_tok *k = &t.v[i + 1];
            const char *base = k->inl ? scratch : buf;
            assert_true(k->len < 64);
            memcpy(r.argv[i], base + k->off, k->len);
            r.argl[i] = k->len;
        }
    }
    ek__resp_toks_free(&t);
    ek__free(scratch);
    return r;
}

static void test_request_multibulk(void **state)
{
    const char *in = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*1\r\n";
    t_req r = t_request(in, strlen(in));
    assert_int_equal(r.rc, EK__RESP_FRAME);
    assert_int_equal(r.flen, strlen(in) - 4);
    assert_int_equal(r.argc, 3);
    assert_string_equal(r.argv[0], "SET");
    assert_int_equal(r.argl[2], 0);
    /* incomplete at every prefix */
    for (size_t p = 0; p < r.flen; p++) assert_int_equal(t_request(in, p).rc, EK__RESP_MORE);
    /* empty multibulks are consumed without a command */
    r = t_request("*0\r\n", 4);
    assert_int_equal(r.rc, EK__RESP_EMPTY);
    assert_int_equal(r.flen, 4);
    r = t_request("*-1\r\n", 5);
    assert_int_equal(r.rc, EK__RESP_EMPTY);

    struct {
        const char *in, *err;
    } bad[] = {
        {"*x\r\n", "Protocol error: invalid multibulk length"},
        {"*\r\n", "Protocol error: invalid multibulk length"},
        {"*2147483648\r\n", "Protocol error: invalid multibulk length"},
        {"*1\r\n:1\r\n", "Protocol error: expected '$', got ':'"},
        {"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"},
        {"*1\r\n$x\r\n", "Protocol error: invalid bulk length"},
        {"*1\r\n$536870913\r\n", "Protocol error: invalid bulk length"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = t_request(bad[i].in, strlen(bad[i].in));
        assert_int_equal(r.rc, EK__RESP_CORRUPT);
        assert_string_equal(r.err, bad[i].err);
    }
    /* a count line with no CR in 64 KiB */
    static char big[70000];
    memset(big, '1', sizeof big);
    big[0] = '*';
    r = t_request(big, sizeof big);
    assert_int_equal(r.rc, EK__RESP_CORRUPT);
    assert_string_equal(r.err, "Protocol error: too big mbulk count string");
    memcpy(big, "*1\r\n$", 5);
    r = t_request(big, sizeof big);
    assert_string_equal(r.err, "Protocol error: too big bulk count string");
    /* as redis, the two bytes after a payload are skipped unchecked */
    r = t_request("*1\r\n$1\r\naXY", 11);
    assert_int_equal(r.rc, EK__RESP_FRAME);
    assert_string_equal(r.argv[0], "a");
}

static void test_request_inline_as_sdssplitargs(void **state)
{
    t_req r = t_request("PING\r\n", 6);
    assert_int_equal(r.rc, EK__RESP_FRAME);
    assert_int_equal(r.argc, 1);
    assert_string_equal(r.argv[0], "PING");
    const char *line = "set  k \"a\\x41\\n\\\"b\" 'it\\'s'\n";
    r = t_request(line, strlen(line));
    assert_int_equal(r.rc, EK__RESP_FRAME);
    assert_int_equal(r.flen, strlen(line));
    assert_int_equal(r.argc, 4);
    assert_string_equal(r.argv[0], "set");
    assert_string_equal(r.argv[1], "k");
    assert_string_equal(r.argv[2], "aA\n\"b");
    assert_string_equal(r.argv[3], "it's");
    r = t_request("ECHO \"\"\r\n", 9);
    assert_int_equal(r.argc, 2);
    assert_int_equal(r.argl[1], 0);
    r = t_request("   \r\n", 5);
    assert_int_equal(r.rc, EK__RESP_EMPTY);
    assert_int_equal(r.flen, 5);
    r = t_request("\n", 1);
    assert_int_equal(r.rc, EK__RESP_EMPTY);
    r = t_request("GET k", 5);
    assert_int_equal(r.rc, EK__RESP_MORE);
    const char *unbalanced[] = {"GET \"k\n", "GET 'k\n", "GET \"k\"x\n", "GET 'k'x\n"};
    for (size_t i = 0; i < 4; i++) {
        r = t_request(unbalanced[i], strlen(unbalanced[i]));
        assert_int_equal(r.rc, EK__RESP_CORRUPT);
        assert_string_equal(r.err, "Protocol error: unbalanced quotes in request");
    }
    static char big[70000];
    memset(big, 'a', sizeof big);
    r = t_request(big, sizeof big);
    assert_string_equal(r.err, "Protocol error: too big inline request");
    r = t_request(big, 65536);
    assert_int_equal(r.rc, EK__RESP_MORE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)
        T(test_parse_int_is_redis_string2ll),   T(test_differential_valid_values_and_prefixes),
        T(test_differential_mutations),         T(test_resp3_types),
        T(test_corrupt_frames_say_why),         T(test_request_multibulk),
        T(test_request_inline_as_sdssplitargs),
#undef T
    };
    if (getenv("EKT_FILTER")) cmocka_set_test_filter(getenv("EKT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
