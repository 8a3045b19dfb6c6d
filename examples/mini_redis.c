/*
 * mini_redis.c - a small redis server on ekiden's service layer: the RESP codec,
 * the framed server and a service, with redis 7's replies byte for byte.
 *
 *   mini_redis [address]     (default 127.0.0.1:6379; port 0 picks a free one,
 *                             printed on the first line)
 *
 * Commands: PING, ECHO, HELLO, GET, SET (EX/PX/EXAT/PXAT/KEEPTTL, NX/XX, GET),
 * DEL, EXISTS, INCR/DECR/INCRBY/DECRBY, MGET/MSET, EXPIRE/PEXPIRE/TTL/PTTL/PERSIST,
 * PUBLISH/SUBSCRIBE/UNSUBSCRIBE, FLUSHALL/FLUSHDB, DBSIZE, SELECT 0, QUIT, and the
 * CLIENT/COMMAND/CONFIG GET replies redis-cli, redis-benchmark and redis-py send
 * on connect. The key space is split into shards, each with its own lock, so the
 * runtime's workers do not fight over one lock.
 *
 * The service is shareable: the server clones it per connection, and the clone
 * is the connection's session (protocol version, name, subscriptions). A
 * SUBSCRIBE answers with a streaming response (EK_MSG_STREAM): its first frames
 * are the confirmations, then every published message arrives on it, while the
 * connection goes on answering other commands (see ekiden/server.h).
 */
#include <ekiden.h>

#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SHARDS 64

/* ---- the key space ---- */

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    ek_bytes *key, *val;
    int64_t expire_ms; /* unix ms; 0: none */
} entry;

typedef struct shard {
    pthread_mutex_t mu;
    entry **tab;
    size_t cap, n;
} shard;

static shard shards[SHARDS];

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static shard *shard_of(uint64_t h)
{
    return &shards[h % SHARDS];
}

static void entry_free(entry *e)
{
    ek_bytes_release(e->key);
    ek_bytes_release(e->val);
    free(e);
}

/* Find a live entry (expired ones are removed). Under the shard's lock. */
static entry **find(shard *s, uint64_t h, const uint8_t *k, size_t n)
{
    if (s->cap == 0) return NULL;
    entry **pp = &s->tab[(h / SHARDS) & (s->cap - 1)];
    for (; *pp != NULL; pp = &(*pp)->next) {
        entry *e = *pp;
        if (e->hash != h || (size_t)ek_bytes_len(e->key) != n ||
            memcmp(ek_bytes_data(e->key), k, n) != 0)
            continue;
        if (e->expire_ms != 0 && e->expire_ms <= now_ms()) {
            *pp = e->next;
            entry_free(e);
            s->n--;
            return NULL;
        }
        return pp;
    }
    return NULL;
}

static int grow(shard *s)
{
    size_t cap = s->cap ? s->cap * 2 : 64;
    entry **tab = calloc(cap, sizeof *tab);
    if (tab == NULL) return EK_ENOMEM;
    for (size_t i = 0; i < s->cap; i++) {
        for (entry *e = s->tab[i], *next; e != NULL; e = next) {
            next = e->next;
            entry **b = &tab[(e->hash / SHARDS) & (cap - 1)];
            e->next = *b;
            *b = e;
        }
    }
    free(s->tab);
    s->tab = tab;
    s->cap = cap;
    return EK_OK;
}

/* Insert or replace key k[0..n) (copied only when new): takes the reference to
 * val. Under the lock. */
static int store(shard *s, uint64_t h, const uint8_t *k, size_t n, ek_bytes *val, int64_t expire_ms,
                 int keep_ttl)
{
    entry **pp = find(s, h, k, n);
    if (pp != NULL) {
        entry *e = *pp;
        ek_bytes_release(e->val);
        e->val = val;
        if (!keep_ttl) e->expire_ms = expire_ms;
        return EK_OK;
    }
    ek_bytes *key = NULL;
    /* A fresh copy of the key, not pinning the connection's read buffer. */
    if (val == NULL || ek_bytes_copy(n ? (const void *)k : "", n, &key) != EK_OK ||
        (s->n + 1 > s->cap * 2 && grow(s) != EK_OK) || (s->cap == 0 && grow(s) != EK_OK)) {
        ek_bytes_release(key);
        ek_bytes_release(val);
        return EK_ENOMEM;
    }
    entry *e = malloc(sizeof *e);
    if (e == NULL) {
        ek_bytes_release(key);
        ek_bytes_release(val);
        return EK_ENOMEM;
    }
    e->hash = h;
    e->key = key;
    e->val = val;
    e->expire_ms = expire_ms;
    entry **b = &s->tab[(h / SHARDS) & (s->cap - 1)];
    e->next = *b;
    *b = e;
    s->n++;
    return EK_OK;
}

static void flush_all(void)
{
    for (int i = 0; i < SHARDS; i++) {
        shard *s = &shards[i];
        pthread_mutex_lock(&s->mu);
        for (size_t j = 0; j < s->cap; j++) {
            for (entry *e = s->tab[j], *next; e != NULL; e = next) {
                next = e->next;
                entry_free(e);
            }
            s->tab[j] = NULL;
        }
        s->n = 0;
        pthread_mutex_unlock(&s->mu);
    }
}

/* ---- a request's arguments ---- */

typedef struct args {
    ek_msg *req;
    size_t argc;
    const uint8_t *p[64]; /* the first 64, and their lengths */
    size_t n[64];
} args;

static const uint8_t *arg(const args *a, size_t i, size_t *n)
{
    if (i < 64) {
        *n = a->n[i];
        return a->p[i];
    }
    const uint8_t *d = NULL;
    *n = 0;
    ek_msg_resp_arg(a->req, i, &d, n);
    return d;
}

/* Argument i as bytes of the caller's: a slice of the request, no copy. */
static ek_bytes *arg_bytes(const args *a, size_t i)
{
    ek_bytes *out = NULL;
    ek_msg_resp_arg_bytes(a->req, i, &out);
    return out;
}

/* A fresh copy of argument i, not pinning the connection's read buffer. */
static ek_bytes *arg_copy(const args *a, size_t i)
{
    size_t n;
    const uint8_t *d = arg(a, i, &n);
    ek_bytes *b = NULL;
    ek_bytes_copy(d, n, &b);
    return b;
}

/* ASCII case-insensitive equality of p[0..n) and the lower-case word w[0..n)
 * (strncasecmp goes through the locale: a tenth of a pipelined PING). */
static bool same_word(const uint8_t *p, const char *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= 'A' && c <= 'Z') c = (uint8_t)(c + ('a' - 'A'));
        if (c != (uint8_t)w[i]) return false;
    }
    return true;
}

static bool arg_is(const args *a, size_t i, const char *word)
{
    size_t n;
    const uint8_t *d = arg(a, i, &n);
    return n == strlen(word) && strncasecmp((const char *)d, word, n) == 0;
}

/* redis's string2ll: strict decimal (the codec's own parser). */
static bool parse_ll(const uint8_t *p, size_t n, int64_t *out)
{
    return ek_resp_parse_int(p, n, out) == EK_OK;
}

static bool arg_ll(const args *a, size_t i, int64_t *v)
{
    size_t n;
    const uint8_t *d = arg(a, i, &n);
    return parse_ll(d, n, v);
}

/* ---- replies ---- */

static ek_msg *r_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static ek_msg *r_error(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    for (int i = 0; i < n; i++)
        if (buf[i] == '\r' || buf[i] == '\n') buf[i] = ' '; /* as addReplyErrorFormat */
    ek_msg *m = NULL;
    ek_msg_resp_string(EK_RESP_ERROR, buf, (size_t)n, &m);
    return m;
}

/* A shared reply (no allocation): +OK, +PONG, $-1, :0, :1 ... */
static ek_msg *r_shared(int which)
{
    ek_msg *m = NULL;
    ek_msg_resp_shared(which, &m);
    return m;
}

static ek_msg *r_int(int64_t v)
{
    if (v == 0 || v == 1) return r_shared(v ? EK_RESP_SHARED_ONE : EK_RESP_SHARED_ZERO);
    ek_msg *m = NULL;
    ek_msg_resp_integer(v, &m);
    return m;
}

static ek_msg *r_bulk_bytes(ek_bytes *b) /* consumes b */
{
    ek_msg *m = NULL;
    ek_msg_resp_string_bytes(EK_RESP_BULK, b, &m);
    return m;
}

static ek_msg *r_bulk(const void *p, size_t n)
{
    ek_msg *m = NULL;
    ek_msg_resp_string(EK_RESP_BULK, p, n, &m);
    return m;
}

static ek_msg *r_null(void)
{
    return r_shared(EK_RESP_SHARED_NULL_BULK);
}

static ek_msg *r_agg(int type, size_t n)
{
    ek_msg *m = NULL;
    ek_msg_resp_aggregate(type, n, &m);
    return m;
}

static void add(ek_msg *agg, ek_msg *child)
{
    if (agg != NULL && child != NULL)
        ek_msg_resp_append(agg, child);
    else
        ek_msg_free(child);
}

static ek_msg *r_ok(void)
{
    return r_shared(EK_RESP_SHARED_OK);
}

static ek_msg *r_wrong_args(const char *cmd)
{
    return r_error("ERR wrong number of arguments for '%s' command", cmd);
}

static ek_msg *r_not_int(void)
{
    return r_error("ERR value is not an integer or out of range");
}

/* ---- sessions and pub/sub ---- */

typedef struct session session;

typedef struct channel {
    struct channel *next;
    ek_bytes *name;
    session **subs;
    size_t n, cap;
} channel;

static pthread_mutex_t pubsub_mu = PTHREAD_MUTEX_INITIALIZER;
static channel *channels; /* a list: pub/sub is not the hot path here */
static atomic_long next_client_id = 1;

struct session {
    int proto; /* 2 or 3, after HELLO */
    long id;
    char name[64];
    pthread_mutex_t mu; /* guards tx (PUBLISH sends from other threads) */
    ek_mpsc_sender *tx; /* the open SUBSCRIBE stream, or NULL */
    ek_bytes **subs;    /* channels subscribed, under pubsub_mu */
    size_t nsubs, capsubs;
};

static channel *channel_find(const uint8_t *p, size_t n)
{
    for (channel *c = channels; c != NULL; c = c->next)
        if ((size_t)ek_bytes_len(c->name) == n && memcmp(ek_bytes_data(c->name), p, n) == 0)
            return c;
    return NULL;
}

/* A push frame ["<kind>", <channel or null>, <count or payload>]. */
static ek_msg *push3(const char *kind, const uint8_t *ch, size_t chn, bool null_ch, ek_msg *third)
{
    ek_msg *m = r_agg(EK_RESP_PUSH, 3);
    add(m, r_bulk(kind, strlen(kind)));
    add(m, null_ch ? r_null() : r_bulk(ch, chn));
    add(m, third);
    return m;
}

/* Subscribe to channel i-th argument; under pubsub_mu. Returns the count. */
static size_t subscribe_one(session *s, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < s->nsubs; i++)
        if ((size_t)ek_bytes_len(s->subs[i]) == n && memcmp(ek_bytes_data(s->subs[i]), p, n) == 0)
            return s->nsubs;
    channel *c = channel_find(p, n);
    if (c == NULL) {
        c = calloc(1, sizeof *c);
        if (c == NULL || ek_bytes_copy(p, n, &c->name) != EK_OK) {
            free(c);
            return s->nsubs;
        }
        c->next = channels;
        channels = c;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4;
        session **v = realloc(c->subs, cap * sizeof *v);
        if (v == NULL) return s->nsubs;
        c->subs = v;
        c->cap = cap;
    }
    if (s->nsubs == s->capsubs) {
        size_t cap = s->capsubs ? s->capsubs * 2 : 4;
        ek_bytes **v = realloc(s->subs, cap * sizeof *v);
        if (v == NULL) return s->nsubs;
        s->subs = v;
        s->capsubs = cap;
    }
    c->subs[c->n++] = s;
    ek_bytes_clone(c->name, &s->subs[s->nsubs++]);
    return s->nsubs;
}

/* Unsubscribe from subscription index i; under pubsub_mu. */
static void unsubscribe_at(session *s, size_t i)
{
    ek_bytes *name = s->subs[i];
    channel **pp = &channels;
    for (; *pp != NULL; pp = &(*pp)->next) {
        channel *c = *pp;
        if (!ek_bytes_equal(c->name, name)) continue;
        for (size_t k = 0; k < c->n; k++) {
            if (c->subs[k] == s) {
                c->subs[k] = c->subs[--c->n];
                break;
            }
        }
        if (c->n == 0) {
            *pp = c->next;
            ek_bytes_release(c->name);
            free(c->subs);
            free(c);
        }
        break;
    }
    ek_bytes_release(name);
    s->subs[i] = s->subs[--s->nsubs];
}

static void session_end_stream(session *s)
{
    pthread_mutex_lock(&s->mu);
    ek_mpsc_sender *tx = s->tx;
    s->tx = NULL;
    pthread_mutex_unlock(&s->mu);
    ek_mpsc_sender_drop(tx);
}

/* Send a frame into the session's stream (dropped if the client does not read:
 * the stream's bound is the limit, as redis's output buffer limit). */
static void session_send(session *s, ek_msg *frame)
{
    pthread_mutex_lock(&s->mu);
    int rc = s->tx != NULL ? ek_mpsc_try_send(s->tx, frame) : EK_ECLOSED;
    pthread_mutex_unlock(&s->mu);
    if (rc != EK_OK) ek_msg_free(frame);
}

static ek_msg *cmd_subscribe(session *s, const args *a)
{
    /* The first SUBSCRIBE opens the session's stream and answers with it; later
     * ones answer with a short stream of their confirmations. */
    ek_mpsc_sender *tx = NULL;
    ek_msg *resp = NULL;
    bool opens = false;
    pthread_mutex_lock(&s->mu);
    opens = s->tx == NULL;
    pthread_mutex_unlock(&s->mu);
    if (ek_msg_stream(opens ? 1024 : a->argc, &tx, &resp) != EK_OK)
        return r_error("ERR out of memory");
    for (size_t i = 1; i < a->argc; i++) {
        size_t n;
        const uint8_t *p = arg(a, i, &n);
        pthread_mutex_lock(&pubsub_mu);
        size_t count = subscribe_one(s, p, n);
        pthread_mutex_unlock(&pubsub_mu);
        ek_msg *f = push3("subscribe", p, n, false, r_int((int64_t)count));
        if (ek_mpsc_try_send(tx, f) != EK_OK) ek_msg_free(f);
    }
    if (opens) {
        pthread_mutex_lock(&s->mu);
        s->tx = tx; /* kept: messages go here */
        pthread_mutex_unlock(&s->mu);
    } else {
        ek_mpsc_sender_drop(tx);
    }
    return resp;
}

static ek_msg *cmd_unsubscribe(session *s, const args *a)
{
    ek_mpsc_sender *tx = NULL;
    ek_msg *resp = NULL;
    pthread_mutex_lock(&pubsub_mu);
    size_t frames = a->argc > 1 ? a->argc - 1 : (s->nsubs ? s->nsubs : 1);
    if (ek_msg_stream(frames, &tx, &resp) != EK_OK) {
        pthread_mutex_unlock(&pubsub_mu);
        return r_error("ERR out of memory");
    }
    if (a->argc == 1) {
        if (s->nsubs == 0) {
            ek_msg *f = push3("unsubscribe", NULL, 0, true, r_int(0));
            if (ek_mpsc_try_send(tx, f) != EK_OK) ek_msg_free(f);
        }
        while (s->nsubs > 0) {
            ek_bytes *name;
            ek_bytes_clone(s->subs[s->nsubs - 1], &name);
            unsubscribe_at(s, s->nsubs - 1);
            ek_msg *f = push3("unsubscribe", ek_bytes_data(name), (size_t)ek_bytes_len(name), false,
                              r_int((int64_t)s->nsubs));
            ek_bytes_release(name);
            if (ek_mpsc_try_send(tx, f) != EK_OK) ek_msg_free(f);
        }
    }
    for (size_t i = 1; i < a->argc; i++) {
        size_t n;
        const uint8_t *p = arg(a, i, &n);
        for (size_t k = 0; k < s->nsubs; k++) {
            if ((size_t)ek_bytes_len(s->subs[k]) == n &&
                memcmp(ek_bytes_data(s->subs[k]), p, n) == 0) {
                unsubscribe_at(s, k);
                break;
            }
        }
        ek_msg *f = push3("unsubscribe", p, n, false, r_int((int64_t)s->nsubs));
        if (ek_mpsc_try_send(tx, f) != EK_OK) ek_msg_free(f);
    }
    size_t left = s->nsubs;
    pthread_mutex_unlock(&pubsub_mu);
    ek_mpsc_sender_drop(tx);
    if (left == 0) session_end_stream(s); /* the long stream ends after its frames */
    return resp;
}

static ek_msg *cmd_publish(const args *a)
{
    size_t chn;
    const uint8_t *ch = arg(a, 1, &chn);
    ek_bytes *payload = arg_copy(a, 2);
    int64_t receivers = 0;
    pthread_mutex_lock(&pubsub_mu);
    channel *c = channel_find(ch, chn);
    for (size_t i = 0; c != NULL && i < c->n; i++) {
        ek_bytes *p = NULL;
        ek_bytes_clone(payload, &p);
        session_send(c->subs[i], push3("message", ch, chn, false, r_bulk_bytes(p)));
        receivers++;
    }
    pthread_mutex_unlock(&pubsub_mu);
    ek_bytes_release(payload);
    return r_int(receivers);
}

/* ---- commands ---- */

static ek_msg *cmd_get(const args *a)
{
    size_t n;
    const uint8_t *k = arg(a, 1, &n);
    uint64_t h = hash_bytes(k, n);
    shard *s = shard_of(h);
    ek_bytes *v = NULL;
    pthread_mutex_lock(&s->mu);
    entry **pp = find(s, h, k, n);
    if (pp != NULL) ek_bytes_clone((*pp)->val, &v);
    pthread_mutex_unlock(&s->mu);
    return v != NULL ? r_bulk_bytes(v) : r_null();
}

static ek_msg *cmd_set(const args *a)
{
    enum { NX = 1, XX = 2, GET = 4, KEEPTTL = 8, EX = 16, PX = 32, EXAT = 64, PXAT = 128 };
    unsigned flags = 0;
    int64_t when = 0, expire = 0;
    for (size_t i = 3; i < a->argc; i++) {
        bool has_next = i + 1 < a->argc;
        if (arg_is(a, i, "nx") && !(flags & XX)) {
            flags |= NX;
        } else if (arg_is(a, i, "xx") && !(flags & NX)) {
            flags |= XX;
        } else if (arg_is(a, i, "get")) {
            flags |= GET;
        } else if (arg_is(a, i, "keepttl") && !(flags & (EX | PX | EXAT | PXAT))) {
            flags |= KEEPTTL;
        } else if (has_next && !(flags & (KEEPTTL | EX | PX | EXAT | PXAT)) &&
                   (arg_is(a, i, "ex") || arg_is(a, i, "px") || arg_is(a, i, "exat") ||
                    arg_is(a, i, "pxat"))) {
            flags |= arg_is(a, i, "ex")     ? EX
                     : arg_is(a, i, "px")   ? PX
                     : arg_is(a, i, "exat") ? EXAT
                                            : PXAT;
            if (!arg_ll(a, ++i, &when)) return r_not_int();
        } else {
            return r_error("ERR syntax error");
        }
    }
    if (flags & (EX | PX | EXAT | PXAT)) {
        bool secs = flags & (EX | EXAT);
        if (when <= 0 || (secs && when > INT64_MAX / 1000))
            return r_error("ERR invalid expire time in 'set' command");
        if (secs) when *= 1000;
        if (flags & (EX | PX)) {
            if (when > INT64_MAX - now_ms())
                return r_error("ERR invalid expire time in 'set' command");
            when += now_ms();
        }
        expire = when;
    }
    size_t n;
    const uint8_t *k = arg(a, 1, &n);
    uint64_t h = hash_bytes(k, n);
    shard *s = shard_of(h);
    ek_bytes *old = NULL;
    pthread_mutex_lock(&s->mu);
    entry **pp = find(s, h, k, n);
    if (pp != NULL && (flags & GET)) ek_bytes_clone((*pp)->val, &old);
    bool do_set = !((flags & NX) && pp != NULL) && !((flags & XX) && pp == NULL);
    int rc = EK_OK;
    if (do_set) rc = store(s, h, k, n, arg_copy(a, 2), expire, (flags & KEEPTTL) != 0);
    pthread_mutex_unlock(&s->mu);
    if (rc != EK_OK) {
        ek_bytes_release(old);
        return r_error("ERR out of memory");
    }
    if (flags & GET) return old != NULL ? r_bulk_bytes(old) : r_null();
    return do_set ? r_ok() : r_null();
}

static ek_msg *cmd_del_exists(const args *a, bool del)
{
    int64_t count = 0;
    for (size_t i = 1; i < a->argc; i++) {
        size_t n;
        const uint8_t *k = arg(a, i, &n);
        uint64_t h = hash_bytes(k, n);
        shard *s = shard_of(h);
        pthread_mutex_lock(&s->mu);
        entry **pp = find(s, h, k, n);
        if (pp != NULL) {
            count++;
            if (del) {
                entry *e = *pp;
                *pp = e->next;
                entry_free(e);
                s->n--;
            }
        }
        pthread_mutex_unlock(&s->mu);
    }
    return r_int(count);
}

static ek_msg *cmd_incrby(const args *a, int64_t by)
{
    size_t n;
    const uint8_t *k = arg(a, 1, &n);
    uint64_t h = hash_bytes(k, n);
    shard *s = shard_of(h);
    pthread_mutex_lock(&s->mu);
    entry **pp = find(s, h, k, n);
    int64_t v = 0;
    if (pp != NULL && !parse_ll(ek_bytes_data((*pp)->val), (size_t)ek_bytes_len((*pp)->val), &v)) {
        pthread_mutex_unlock(&s->mu);
        return r_not_int();
    }
    if ((by < 0 && v < INT64_MIN - by) || (by > 0 && v > INT64_MAX - by)) {
        pthread_mutex_unlock(&s->mu);
        return r_error("ERR increment or decrement would overflow");
    }
    v += by;
    char num[32];
    int len = snprintf(num, sizeof num, "%lld", (long long)v);
    ek_bytes *val = NULL;
    int rc = ek_bytes_copy(num, (size_t)len, &val);
    if (rc == EK_OK) {
        if (pp != NULL) {
            ek_bytes_release((*pp)->val);
            (*pp)->val = val;
        } else {
            rc = store(s, h, k, n, val, 0, 0);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc == EK_OK ? r_int(v) : r_error("ERR out of memory");
}

static ek_msg *cmd_mget(const args *a)
{
    ek_msg *m = r_agg(EK_RESP_ARRAY, a->argc - 1);
    for (size_t i = 1; i < a->argc; i++) {
        size_t n;
        const uint8_t *k = arg(a, i, &n);
        uint64_t h = hash_bytes(k, n);
        shard *s = shard_of(h);
        ek_bytes *v = NULL;
        pthread_mutex_lock(&s->mu);
        entry **pp = find(s, h, k, n);
        if (pp != NULL) ek_bytes_clone((*pp)->val, &v);
        pthread_mutex_unlock(&s->mu);
        add(m, v != NULL ? r_bulk_bytes(v) : r_null());
    }
    return m;
}

static ek_msg *cmd_mset(const args *a)
{
    if (a->argc % 2 == 0) return r_wrong_args("mset");
    for (size_t i = 1; i + 1 < a->argc; i += 2) {
        size_t n;
        const uint8_t *k = arg(a, i, &n);
        uint64_t h = hash_bytes(k, n);
        shard *s = shard_of(h);
        pthread_mutex_lock(&s->mu);
        int rc = store(s, h, k, n, arg_copy(a, i + 1), 0, 0);
        pthread_mutex_unlock(&s->mu);
        if (rc != EK_OK) return r_error("ERR out of memory");
    }
    return r_ok();
}

static ek_msg *cmd_expire(const args *a, const char *name, int64_t unit)
{
    int64_t t;
    if (!arg_ll(a, 2, &t)) return r_not_int();
    enum { NX = 1, XX = 2, GT = 4, LT = 8 };
    unsigned flags = 0;
    for (size_t i = 3; i < a->argc; i++) {
        if (arg_is(a, i, "nx"))
            flags |= NX;
        else if (arg_is(a, i, "xx"))
            flags |= XX;
        else if (arg_is(a, i, "gt"))
            flags |= GT;
        else if (arg_is(a, i, "lt"))
            flags |= LT;
        else {
            size_t n;
            const uint8_t *o = arg(a, i, &n);
            return r_error("ERR Unsupported option %.*s", (int)n, (const char *)o);
        }
    }
    if ((flags & NX) && (flags & (XX | GT | LT)))
        return r_error("ERR NX and XX, GT or LT options at the same time are not compatible");
    if ((flags & GT) && (flags & LT))
        return r_error("ERR GT and LT options at the same time are not compatible");
    int64_t now = now_ms();
    if ((unit > 1 && (t > INT64_MAX / unit || t < INT64_MIN / unit)) ||
        (t * unit > 0 && t * unit > INT64_MAX - now))
        return r_error("ERR invalid expire time in '%s' command", name);
    int64_t when = t * unit + now;
    size_t n;
    const uint8_t *k = arg(a, 1, &n);
    uint64_t h = hash_bytes(k, n);
    shard *s = shard_of(h);
    pthread_mutex_lock(&s->mu);
    entry **pp = find(s, h, k, n);
    int64_t r = 0;
    if (pp != NULL) {
        entry *e = *pp;
        int64_t cur = e->expire_ms; /* 0: persistent, an infinite TTL for GT/LT */
        bool skip = ((flags & NX) && cur != 0) || ((flags & XX) && cur == 0) ||
                    ((flags & GT) && (cur == 0 || when <= cur)) ||
                    ((flags & LT) && cur != 0 && when >= cur);
        if (!skip) {
            r = 1;
            if (when <= now) {
                *pp = e->next;
                entry_free(e);
                s->n--;
            } else {
                e->expire_ms = when;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    return r_int(r);
}

static ek_msg *cmd_ttl(const args *a, bool ms, bool persist)
{
    size_t n;
    const uint8_t *k = arg(a, 1, &n);
    uint64_t h = hash_bytes(k, n);
    shard *s = shard_of(h);
    pthread_mutex_lock(&s->mu);
    entry **pp = find(s, h, k, n);
    int64_t r;
    if (persist) {
        r = pp != NULL && (*pp)->expire_ms != 0;
        if (r) (*pp)->expire_ms = 0;
    } else if (pp == NULL) {
        r = -2;
    } else if ((*pp)->expire_ms == 0) {
        r = -1;
    } else {
        int64_t left = (*pp)->expire_ms - now_ms();
        if (left < 0) left = 0;
        r = ms ? left : (left + 500) / 1000;
    }
    pthread_mutex_unlock(&s->mu);
    return r_int(r);
}

static ek_msg *cmd_dbsize(void)
{
    int64_t n = 0;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&shards[i].mu);
        n += (int64_t)shards[i].n;
        pthread_mutex_unlock(&shards[i].mu);
    }
    return r_int(n);
}

static ek_msg *hello_reply(session *s)
{
    ek_msg *m = r_agg(EK_RESP_MAP, 14);
    static const char *const keys[] = {"server", "version", "proto",  "id",
                                       "mode",   "role",    "modules"};
    add(m, r_bulk(keys[0], 6));
    add(m, r_bulk("redis", 5));
    add(m, r_bulk(keys[1], 7));
    add(m, r_bulk("7.0.15", 6));
    add(m, r_bulk(keys[2], 5));
    add(m, r_int(s->proto));
    add(m, r_bulk(keys[3], 2));
    add(m, r_int(s->id));
    add(m, r_bulk(keys[4], 4));
    add(m, r_bulk("standalone", 10));
    add(m, r_bulk(keys[5], 4));
    add(m, r_bulk("master", 6));
    add(m, r_bulk(keys[6], 7));
    add(m, r_agg(EK_RESP_ARRAY, 0));
    return m;
}

static bool valid_client_name(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '!' || p[i] > '~') return false;
    return true;
}

static ek_msg *cmd_hello(session *s, const args *a)
{
    int64_t ver = s->proto;
    size_t i = 1;
    if (a->argc > 1) {
        if (!arg_ll(a, 1, &ver) || ver < 2 || ver > 3) {
            if (arg_ll(a, 1, &ver)) return r_error("NOPROTO unsupported protocol version");
            return r_error("ERR Protocol version is not an integer or out of range");
        }
        i = 2;
    }
    const uint8_t *name = NULL;
    size_t namelen = 0;
    for (; i < a->argc; i++) {
        if (arg_is(a, i, "setname") && i + 1 < a->argc) {
            name = arg(a, ++i, &namelen);
            if (!valid_client_name(name, namelen))
                return r_error(
                    "ERR Client names cannot contain spaces, newlines or special characters.");
        } else {
            size_t n;
            const uint8_t *o = arg(a, i, &n);
            return r_error("ERR Syntax error in HELLO option '%.*s'", (int)n, (const char *)o);
        }
    }
    if (name != NULL) snprintf(s->name, sizeof s->name, "%.*s", (int)namelen, (const char *)name);
    s->proto = (int)ver;
    return hello_reply(s);
}

static ek_msg *cmd_client(session *s, const args *a)
{
    if (arg_is(a, 1, "id")) return a->argc == 2 ? r_int(s->id) : r_wrong_args("client|id");
    if (arg_is(a, 1, "getname")) {
        if (a->argc != 2) return r_wrong_args("client|getname");
        return s->name[0] ? r_bulk(s->name, strlen(s->name)) : r_null();
    }
    if (arg_is(a, 1, "setname")) {
        if (a->argc != 3) return r_wrong_args("client|setname");
        size_t n;
        const uint8_t *p = arg(a, 2, &n);
        if (!valid_client_name(p, n))
            return r_error(
                "ERR Client names cannot contain spaces, newlines or special characters.");
        snprintf(s->name, sizeof s->name, "%.*s", (int)n, (const char *)p);
        return r_ok();
    }
    size_t n;
    const uint8_t *p = arg(a, 1, &n);
    return r_error("ERR unknown subcommand '%.*s'. Try CLIENT HELP.", (int)(n > 128 ? 128 : n),
                   (const char *)p);
}

static ek_msg *cmd_config(session *s, const args *a)
{
    if (!arg_is(a, 1, "get") || a->argc < 3) {
        if (arg_is(a, 1, "get")) return r_wrong_args("config|get");
        size_t n;
        const uint8_t *p = arg(a, 1, &n);
        return r_error("ERR unknown subcommand '%.*s'. Try CONFIG HELP.", (int)(n > 128 ? 128 : n),
                       (const char *)p);
    }
    ek_msg *m = r_agg(s->proto == 3 ? EK_RESP_MAP : EK_RESP_ARRAY, 4);
    for (size_t i = 2; i < a->argc; i++) {
        if (arg_is(a, i, "save")) {
            add(m, r_bulk("save", 4));
            add(m, r_bulk("", 0));
        } else if (arg_is(a, i, "appendonly")) {
            add(m, r_bulk("appendonly", 10));
            add(m, r_bulk("no", 2));
        }
    }
    return m;
}

/* ---- COMMAND: redis 7.0's command table, for the commands mini_redis has ---- */

/* One command (or subcommand, "container|sub", listed after its container) as
 * redis-server 7.0.15 describes it (COMMAND INFO and the plain fields of COMMAND
 * DOCS); the words are space-separated. Every key spec of these commands begins
 * at argument 1 and is a range: only its flags, last key, step and notes vary. */
typedef struct cmdinfo {
    const char *name;
    int arity;
    const char *flags;
    int first, last, step;
    const char *acl, *tips;
    const char *ks_flags; /* NULL: no key spec */
    int ks_last, ks_step;
    const char *ks_notes;
    const char *summary, *since, *group, *complexity;
} cmdinfo;

static const cmdinfo cmdinfos[] = {
    {"ping", -1, "fast", 0, 0, 0, "@fast @connection",
     "request_policy:all_shards response_policy:all_succeeded", NULL, 0, 0, NULL, "Ping the server",
     "1.0.0", "connection", "O(1)"},
    {"echo", 2, "loading stale fast", 0, 0, 0, "@fast @connection", "", NULL, 0, 0, NULL,
     "Echo the given string", "1.0.0", "connection", "O(1)"},
    {"hello", -1, "noscript loading stale fast no_auth allow_busy", 0, 0, 0, "@fast @connection",
     "", NULL, 0, 0, NULL, "Handshake with Redis", "6.0.0", "connection", "O(1)"},
    {"get", 2, "readonly fast", 1, 1, 1, "@read @string @fast", "", "RO access", 0, 1, NULL,
     "Get the value of a key", "1.0.0", "string", "O(1)"},
    {"set", -3, "write denyoom", 1, 1, 1, "@write @string @slow", "",
     "RW access update variable_flags", 0, 1, "RW and ACCESS due to the optional `GET` argument",
     "Set the string value of a key", "1.0.0", "string", "O(1)"},
    {"del", -2, "write", 1, -1, 1, "@keyspace @write @slow",
     "request_policy:multi_shard response_policy:agg_sum", "RM delete", -1, 1, NULL, "Delete a key",
     "1.0.0", "generic",
     "O(N) where N is the number of keys that will be removed. When a key to remove holds a value "
     "other than a string, the individual complexity for this key is O(M) where M is the number of "
     "elements in the list, set, sorted set or hash. Removing a single key that holds a string "
     "value is O(1)."},
    {"exists", -2, "readonly fast", 1, -1, 1, "@keyspace @read @fast",
     "request_policy:multi_shard response_policy:agg_sum", "RO", -1, 1, NULL,
     "Determine if a key exists", "1.0.0", "generic",
     "O(N) where N is the number of keys to check."},
    {"incr", 2, "write denyoom fast", 1, 1, 1, "@write @string @fast", "", "RW access update", 0, 1,
     NULL, "Increment the integer value of a key by one", "1.0.0", "string", "O(1)"},
    {"decr", 2, "write denyoom fast", 1, 1, 1, "@write @string @fast", "", "RW access update", 0, 1,
     NULL, "Decrement the integer value of a key by one", "1.0.0", "string", "O(1)"},
    {"incrby", 3, "write denyoom fast", 1, 1, 1, "@write @string @fast", "", "RW access update", 0,
     1, NULL, "Increment the integer value of a key by the given amount", "1.0.0", "string",
     "O(1)"},
    {"decrby", 3, "write denyoom fast", 1, 1, 1, "@write @string @fast", "", "RW access update", 0,
     1, NULL, "Decrement the integer value of a key by the given number", "1.0.0", "string",
     "O(1)"},
    {"mget", -2, "readonly fast", 1, -1, 1, "@read @string @fast", "request_policy:multi_shard",
     "RO access", -1, 1, NULL, "Get the values of all the given keys", "1.0.0", "string",
     "O(N) where N is the number of keys to retrieve."},
    {"mset", -3, "write denyoom", 1, -1, 2, "@write @string @slow",
     "request_policy:multi_shard response_policy:all_succeeded", "OW update", -1, 2, NULL,
     "Set multiple keys to multiple values", "1.0.1", "string",
     "O(N) where N is the number of keys to set."},
    {"expire", -3, "write fast", 1, 1, 1, "@keyspace @write @fast", "", "RW update", 0, 1, NULL,
     "Set a key's time to live in seconds", "1.0.0", "generic", "O(1)"},
    {"pexpire", -3, "write fast", 1, 1, 1, "@keyspace @write @fast", "", "RW update", 0, 1, NULL,
     "Set a key's time to live in milliseconds", "2.6.0", "generic", "O(1)"},
    {"ttl", 2, "readonly fast", 1, 1, 1, "@keyspace @read @fast", "nondeterministic_output",
     "RO access", 0, 1, NULL, "Get the time to live for a key in seconds", "1.0.0", "generic",
     "O(1)"},
    {"pttl", 2, "readonly fast", 1, 1, 1, "@keyspace @read @fast", "nondeterministic_output",
     "RO access", 0, 1, NULL, "Get the time to live for a key in milliseconds", "2.6.0", "generic",
     "O(1)"},
    {"persist", 2, "write fast", 1, 1, 1, "@keyspace @write @fast", "", "RW update", 0, 1, NULL,
     "Remove the expiration from a key", "2.2.0", "generic", "O(1)"},
    {"publish", 3, "pubsub loading stale fast", 0, 0, 0, "@pubsub @fast", "", NULL, 0, 0, NULL,
     "Post a message to a channel", "2.0.0", "pubsub",
     "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the "
     "total number of subscribed patterns (by any client)."},
    {"subscribe", -2, "pubsub noscript loading stale", 0, 0, 0, "@pubsub @slow", "", NULL, 0, 0,
     NULL, "Listen for messages published to the given channels", "2.0.0", "pubsub",
     "O(N) where N is the number of channels to subscribe to."},
    {"unsubscribe", -1, "pubsub noscript loading stale", 0, 0, 0, "@pubsub @slow", "", NULL, 0, 0,
     NULL, "Stop listening for messages posted to the given channels", "2.0.0", "pubsub",
     "O(N) where N is the number of clients already subscribed to a channel."},
    {"flushall", -1, "write", 0, 0, 0, "@keyspace @write @slow @dangerous",
     "request_policy:all_shards response_policy:all_succeeded", NULL, 0, 0, NULL,
     "Remove all keys from all databases", "1.0.0", "server",
     "O(N) where N is the total number of keys in all databases"},
    {"flushdb", -1, "write", 0, 0, 0, "@keyspace @write @slow @dangerous",
     "request_policy:all_shards response_policy:all_succeeded", NULL, 0, 0, NULL,
     "Remove all keys from the current database", "1.0.0", "server",
     "O(N) where N is the number of keys in the selected database"},
    {"dbsize", 1, "readonly fast", 0, 0, 0, "@keyspace @read @fast",
     "request_policy:all_shards response_policy:agg_sum", NULL, 0, 0, NULL,
     "Return the number of keys in the selected database", "1.0.0", "server", "O(1)"},
    {"select", 2, "loading stale fast", 0, 0, 0, "@fast @connection", "", NULL, 0, 0, NULL,
     "Change the selected database for the current connection", "1.0.0", "connection", "O(1)"},
    {"client", -2, "", 0, 0, 0, "@slow", "", NULL, 0, 0, NULL,
     "A container for client connection commands", "2.4.0", "connection", "Depends on subcommand."},
    {"client|id", 2, "noscript loading stale", 0, 0, 0, "@slow @connection", "", NULL, 0, 0, NULL,
     "Returns the client ID for the current connection", "5.0.0", "connection", "O(1)"},
    {"client|getname", 2, "noscript loading stale", 0, 0, 0, "@slow @connection", "", NULL, 0, 0,
     NULL, "Get the current connection name", "2.6.9", "connection", "O(1)"},
    {"client|setname", 3, "noscript loading stale", 0, 0, 0, "@slow @connection", "", NULL, 0, 0,
     NULL, "Set the current connection name", "2.6.9", "connection", "O(1)"},
    {"command", -1, "loading stale", 0, 0, 0, "@slow @connection", "nondeterministic_output_order",
     NULL, 0, 0, NULL, "Get array of Redis command details", "2.8.13", "server",
     "O(N) where N is the total number of Redis commands"},
    {"command|count", 2, "loading stale", 0, 0, 0, "@slow @connection", "", NULL, 0, 0, NULL,
     "Get total number of Redis commands", "2.8.13", "server", "O(1)"},
    {"command|docs", -2, "loading stale", 0, 0, 0, "@slow @connection",
     "nondeterministic_output_order", NULL, 0, 0, NULL,
     "Get array of specific Redis command documentation", "7.0.0", "server",
     "O(N) where N is the number of commands to look up"},
    {"command|info", -2, "loading stale", 0, 0, 0, "@slow @connection",
     "nondeterministic_output_order", NULL, 0, 0, NULL,
     "Get array of specific Redis command details, or all when no argument is given.", "2.8.13",
     "server", "O(N) where N is the number of commands to look up"},
    {"config", -2, "", 0, 0, 0, "@slow", "", NULL, 0, 0, NULL,
     "A container for server configuration commands", "2.0.0", "server", "Depends on subcommand."},
    {"config|get", -3, "admin noscript loading stale", 0, 0, 0, "@admin @slow @dangerous", "", NULL,
     0, 0, NULL, "Get the values of configuration parameters", "2.0.0", "server",
     "O(N) when N is the number of configuration parameters provided"},
    {"quit", -1, "noscript loading stale fast no_auth allow_busy", 0, 0, 0, "@fast @connection", "",
     NULL, 0, 0, NULL, "Close the connection", "1.0.0", "connection", "O(1)"},
};
#define NCMDINFO (sizeof cmdinfos / sizeof *cmdinfos)

/* The words of s as a set of simple strings (bulk: bulk strings). */
static ek_msg *r_words(const char *s, bool bulk)
{
    size_t count = 0;
    for (const char *p = s; *p;) {
        while (*p == ' ') p++;
        if (*p) count++;
        while (*p && *p != ' ') p++;
    }
    ek_msg *set = r_agg(EK_RESP_SET, count);
    for (const char *p = s; *p;) {
        while (*p == ' ') p++;
        const char *w = p;
        while (*p && *p != ' ') p++;
        if (p == w) break;
        ek_msg *m = NULL;
        ek_msg_resp_string(bulk ? EK_RESP_BULK : EK_RESP_SIMPLE, w, (size_t)(p - w), &m);
        add(set, m);
    }
    return set;
}

static ek_msg *r_cstr(const char *s)
{
    return r_bulk(s, strlen(s));
}

/* A map of n key/value pairs: keys are C strings, values messages (consumed). */
static ek_msg *r_pairs(size_t n, ...)
{
    ek_msg *m = r_agg(EK_RESP_MAP, 2 * n);
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        add(m, r_cstr(va_arg(ap, const char *)));
        add(m, va_arg(ap, ek_msg *));
    }
    va_end(ap);
    return m;
}

/* The entries after container i that are its subcommands ("name|..."). */
static size_t cmd_subs(size_t i)
{
    size_t n = strlen(cmdinfos[i].name), k = i + 1;
    while (k < NCMDINFO && strncmp(cmdinfos[k].name, cmdinfos[i].name, n) == 0 &&
           cmdinfos[k].name[n] == '|')
        k++;
    return k - i - 1;
}

/* COMMAND INFO's entry for cmdinfos[i]. */
static ek_msg *cmd_info_entry(size_t i)
{
    const cmdinfo *c = &cmdinfos[i];
    ek_msg *e = r_agg(EK_RESP_ARRAY, 10);
    add(e, r_cstr(c->name));
    add(e, r_int(c->arity));
    add(e, r_words(c->flags, false));
    add(e, r_int(c->first));
    add(e, r_int(c->last));
    add(e, r_int(c->step));
    add(e, r_words(c->acl, false));
    add(e, r_words(c->tips, true));
    ek_msg *specs = r_agg(EK_RESP_SET, 1);
    if (c->ks_flags != NULL) {
        ek_msg *begin = r_pairs(2, "type", r_cstr("index"), "spec", r_pairs(1, "index", r_int(1)));
        ek_msg *find = r_pairs(2, "type", r_cstr("range"), "spec",
                               r_pairs(3, "lastkey", r_int(c->ks_last), "keystep",
                                       r_int(c->ks_step), "limit", r_int(0)));
        ek_msg *spec = c->ks_notes != NULL ? r_pairs(4, "notes", r_cstr(c->ks_notes), "flags",
                                                     r_words(c->ks_flags, false), "begin_search",
                                                     begin, "find_keys", find)
                                           : r_pairs(3, "flags", r_words(c->ks_flags, false),
                                                     "begin_search", begin, "find_keys", find);
        add(specs, spec);
    }
    add(e, specs);
    size_t nsub = strchr(c->name, '|') == NULL ? cmd_subs(i) : 0;
    ek_msg *subs = r_agg(EK_RESP_SET, nsub);
    for (size_t k = 1; k <= nsub; k++) add(subs, cmd_info_entry(i + k));
    add(e, subs);
    return e;
}

/* COMMAND DOCS's entry for cmdinfos[i] (without the arguments redis also lists). */
static ek_msg *cmd_docs_entry(size_t i)
{
    const cmdinfo *c = &cmdinfos[i];
    size_t nsub = strchr(c->name, '|') == NULL ? cmd_subs(i) : 0;
    ek_msg *m = r_pairs(4, "summary", r_cstr(c->summary), "since", r_cstr(c->since), "group",
                        r_cstr(c->group), "complexity", r_cstr(c->complexity));
    if (nsub > 0) {
        ek_msg *subs = r_agg(EK_RESP_MAP, 2 * nsub);
        for (size_t k = 1; k <= nsub; k++) {
            add(subs, r_cstr(cmdinfos[i + k].name));
            add(subs, cmd_docs_entry(i + k));
        }
        add(m, r_cstr("subcommands"));
        add(m, subs);
    }
    return m;
}

/* The entry named p[0..n) (case-insensitive; "container|sub" too), or -1. */
static int cmd_find(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < NCMDINFO; i++)
        if (strlen(cmdinfos[i].name) == n && strncasecmp(cmdinfos[i].name, (const char *)p, n) == 0)
            return (int)i;
    return -1;
}

static ek_msg *cmd_command(session *s, const args *a)
{
    size_t top = 0;
    for (size_t i = 0; i < NCMDINFO; i++) top += strchr(cmdinfos[i].name, '|') == NULL;
    if (a->argc == 1 || (arg_is(a, 1, "info") && a->argc == 2)) {
        ek_msg *all = r_agg(EK_RESP_ARRAY, top);
        for (size_t i = 0; i < NCMDINFO; i++)
            if (strchr(cmdinfos[i].name, '|') == NULL) add(all, cmd_info_entry(i));
        return all;
    }
    if (arg_is(a, 1, "count")) {
        if (a->argc != 2) return r_wrong_args("command|count");
        return r_int((int64_t)top);
    }
    if (arg_is(a, 1, "info")) {
        ek_msg *list = r_agg(EK_RESP_ARRAY, a->argc - 2);
        for (size_t k = 2; k < a->argc; k++) {
            size_t n;
            const uint8_t *p = arg(a, k, &n);
            int i = cmd_find(p, n);
            add(list, i >= 0 ? cmd_info_entry((size_t)i) : r_null());
        }
        return list;
    }
    if (arg_is(a, 1, "docs")) {
        ek_msg *map = r_agg(EK_RESP_MAP, 2 * (a->argc > 2 ? a->argc - 2 : top));
        for (size_t i = 0; a->argc == 2 && i < NCMDINFO; i++) {
            if (strchr(cmdinfos[i].name, '|') != NULL) continue;
            add(map, r_cstr(cmdinfos[i].name));
            add(map, cmd_docs_entry(i));
        }
        for (size_t k = 2; k < a->argc; k++) {
            size_t n;
            const uint8_t *p = arg(a, k, &n);
            int i = cmd_find(p, n);
            if (i < 0) continue; /* redis leaves unknown names out */
            add(map, r_cstr(cmdinfos[i].name));
            add(map, cmd_docs_entry((size_t)i));
        }
        return map;
    }
    size_t n;
    const uint8_t *p = arg(a, 1, &n);
    (void)s;
    return r_error("ERR unknown subcommand '%.*s'. Try COMMAND HELP.", (int)(n > 128 ? 128 : n),
                   (const char *)p);
}

static ek_msg *cmd_ping(session *s, const args *a, bool subscribed)
{
    if (a->argc > 2) return r_wrong_args("ping");
    if (subscribed && s->proto == 2) {
        ek_msg *m = r_agg(EK_RESP_ARRAY, 2);
        add(m, r_bulk("pong", 4));
        if (a->argc == 2) {
            add(m, r_bulk_bytes(arg_bytes(a, 1)));
        } else {
            add(m, r_bulk("", 0));
        }
        return m;
    }
    return a->argc == 2 ? r_bulk_bytes(arg_bytes(a, 1)) : r_shared(EK_RESP_SHARED_PONG);
}

typedef struct command {
    const char *name;
    size_t len;
    int arity; /* redis's: n exact, -n at least n */
} command;

/* In the order of the table below. */
enum {
    C_GET,
    C_SET,
    C_DEL,
    C_EXISTS,
    C_INCR,
    C_DECR,
    C_INCRBY,
    C_DECRBY,
    C_MGET,
    C_MSET,
    C_EXPIRE,
    C_PEXPIRE,
    C_TTL,
    C_PTTL,
    C_PERSIST,
    C_PING,
    C_ECHO,
    C_HELLO,
    C_PUBLISH,
    C_SUBSCRIBE,
    C_UNSUBSCRIBE,
    C_FLUSHALL,
    C_FLUSHDB,
    C_DBSIZE,
    C_SELECT,
    C_CLIENT,
    C_COMMAND,
    C_CONFIG,
    C_QUIT,
};
#define CMD(name, arity)                                                                           \
    {                                                                                              \
        name, sizeof name - 1, arity                                                               \
    }
static const command commands[] = {
    CMD("get", 2),          CMD("set", -3),      CMD("del", -2),     CMD("exists", -2),
    CMD("incr", 2),         CMD("decr", 2),      CMD("incrby", 3),   CMD("decrby", 3),
    CMD("mget", -2),        CMD("mset", -3),     CMD("expire", -3),  CMD("pexpire", -3),
    CMD("ttl", 2),          CMD("pttl", 2),      CMD("persist", 2),  CMD("ping", -1),
    CMD("echo", 2),         CMD("hello", -1),    CMD("publish", 3),  CMD("subscribe", -2),
    CMD("unsubscribe", -1), CMD("flushall", -1), CMD("flushdb", -1), CMD("dbsize", 1),
    CMD("select", 2),       CMD("client", -2),   CMD("command", -1), CMD("config", -2),
    CMD("quit", -1),
};
#undef CMD

static ek_msg *execute(session *s, const args *a)
{
    size_t n;
    const uint8_t *name = arg(a, 0, &n);
    int id = -1;
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        if (commands[i].len == n && same_word(name, commands[i].name, n)) {
            id = (int)i;
            break;
        }
    }
    if (id < 0) {
        char list[256] = "";
        size_t len = 0;
        for (size_t i = 1; i < a->argc && len < 128; i++) {
            size_t an;
            const uint8_t *ap = arg(a, i, &an);
            int room = 128 - (int)len;
            int k = snprintf(list + len, sizeof list - len, "'%.*s' ",
                             (int)an < room ? (int)an : room, (const char *)ap);
            if (k > 0) len += (size_t)k < sizeof list - len ? (size_t)k : sizeof list - len - 1;
        }
        return r_error("ERR unknown command '%.*s', with args beginning with: %s",
                       (int)(n > 128 ? 128 : n), (const char *)name, list);
    }
    const command *cmd = &commands[id];
    if ((cmd->arity > 0 && (int64_t)a->argc != cmd->arity) ||
        (cmd->arity < 0 && (int64_t)a->argc < -cmd->arity))
        return r_wrong_args(cmd->name);
    pthread_mutex_lock(&s->mu);
    bool subscribed = s->tx != NULL;
    pthread_mutex_unlock(&s->mu);
    if (subscribed && s->proto == 2 && id != C_SUBSCRIBE && id != C_UNSUBSCRIBE && id != C_PING &&
        id != C_QUIT)
        return r_error("ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
                       "QUIT / RESET are allowed in this context",
                       cmd->name);
    switch (id) {
    case C_GET:
        return cmd_get(a);
    case C_SET:
        return cmd_set(a);
    case C_DEL:
        return cmd_del_exists(a, true);
    case C_EXISTS:
        return cmd_del_exists(a, false);
    case C_INCR:
        return cmd_incrby(a, 1);
    case C_DECR:
        return cmd_incrby(a, -1);
    case C_INCRBY:
    case C_DECRBY: {
        int64_t by;
        if (!arg_ll(a, 2, &by)) return r_not_int();
        if (id == C_DECRBY) {
            if (by == INT64_MIN) return r_error("ERR decrement would overflow");
            by = -by;
        }
        return cmd_incrby(a, by);
    }
    case C_MGET:
        return cmd_mget(a);
    case C_MSET:
        return cmd_mset(a);
    case C_EXPIRE:
        return cmd_expire(a, "expire", 1000);
    case C_PEXPIRE:
        return cmd_expire(a, "pexpire", 1);
    case C_TTL:
        return cmd_ttl(a, false, false);
    case C_PTTL:
        return cmd_ttl(a, true, false);
    case C_PERSIST:
        return cmd_ttl(a, false, true);
    case C_PING:
        return cmd_ping(s, a, subscribed);
    case C_ECHO:
        return r_bulk_bytes(arg_bytes(a, 1));
    case C_HELLO:
        return cmd_hello(s, a);
    case C_PUBLISH:
        return cmd_publish(a);
    case C_SUBSCRIBE:
        return cmd_subscribe(s, a);
    case C_UNSUBSCRIBE:
        return cmd_unsubscribe(s, a);
    case C_FLUSHALL:
    case C_FLUSHDB:
        if (a->argc > 2 || (a->argc == 2 && !arg_is(a, 1, "async") && !arg_is(a, 1, "sync")))
            return r_error("ERR syntax error");
        flush_all();
        return r_ok();
    case C_DBSIZE:
        return cmd_dbsize();
    case C_SELECT: {
        int64_t db;
        if (!arg_ll(a, 1, &db)) return r_not_int();
        return db == 0 ? r_ok() : r_error("ERR DB index is out of range");
    }
    case C_CLIENT:
        return cmd_client(s, a);
    case C_CONFIG:
        return cmd_config(s, a);
    case C_COMMAND:
        return cmd_command(s, a);
    default:
        return r_ok(); /* quit */
    }
}

/* ---- the service ---- */

static int svc_poll_ready(void *self, ek_cx *cx)
{
    return EK_OK;
}

static int svc_call(void *self, ek_msg *req, ek_future **resp)
{
    session *s = self;
    args a;
    a.req = req;
    int64_t argc = ek_msg_resp_len(req);
    ek_msg *reply;
    if (argc <= 0) {
        reply = r_error("ERR empty request");
    } else {
        a.argc = (size_t)argc;
        for (size_t i = 0; i < a.argc && i < 64; i++) {
            a.p[i] = NULL;
            a.n[i] = 0;
            ek_msg_resp_arg(req, i, &a.p[i], &a.n[i]);
        }
        reply = execute(s, &a);
    }
    ek_msg_free(req);
    if (reply == NULL) return EK_ENOMEM;
    /* Answered at once: a ready response future (consumes reply). */
    return ek_service_ready(EK_OK, reply, resp);
}

static void session_free(void *self)
{
    session *s = self;
    pthread_mutex_lock(&pubsub_mu);
    while (s->nsubs > 0) unsubscribe_at(s, s->nsubs - 1);
    pthread_mutex_unlock(&pubsub_mu);
    free(s->subs);
    session_end_stream(s);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int session_new(void *proto, void **out)
{
    session *s = calloc(1, sizeof *s);
    if (s == NULL) return EK_ENOMEM;
    s->proto = 2;
    s->id = atomic_fetch_add(&next_client_id, 1);
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return EK_OK;
}

static const ek_service_vtable svc_vtable = {
    .poll_ready = svc_poll_ready,
    .call = svc_call,
    .drop = session_free,
};

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:6379";
    for (int i = 0; i < SHARDS; i++) pthread_mutex_init(&shards[i].mu, NULL);

    /* SIGINT / SIGTERM end the server gracefully; blocked here, so that every
     * thread the runtime starts inherits the mask and sigwait gets them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    ek_runtime *rt = NULL;
    ek_tcp_listener *listener = NULL;
    ek_codec *codec = NULL;
    ek_service *svc = NULL;
    ek_server *server = NULL;
    void *root = NULL;
    int rc = ek_runtime_new(NULL, &rt);
    if (rc == EK_OK) rc = ek_tcp_listen(rt, addr, &listener);
    if (rc == EK_OK) rc = ek_codec_resp_server(&codec);
    if (rc == EK_OK) rc = session_new(NULL, &root);
    if (rc == EK_OK) rc = ek_service_new_shareable(&svc_vtable, root, session_new, &svc);
    if (rc == EK_OK) {
        rc = ek_server_serve(rt, listener, codec, svc, NULL, &server);
        listener = NULL;
    }
    if (rc != EK_OK) {
        fprintf(stderr, "mini_redis: %s: %s\n", addr, ek_strerror(rc));
        ek_tcp_listener_free(listener);
        ek_runtime_free(rt);
        return 1;
    }
    ek_sockaddr *local;
    char text[EK_SOCKADDR_STRLEN] = "";
    ek_sockaddr_new(&local);
    ek_server_local_addr(server, local);
    ek_sockaddr_format(local, text, sizeof text);
    ek_sockaddr_free(local);
    printf("mini_redis: listening on %s\n", text);
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    rc = ek_server_shutdown(server, 1000);
    ek_server_free(server);
    ek_runtime_free(rt);
    flush_all();
    return rc == EK_OK ? 0 : 1;
}
