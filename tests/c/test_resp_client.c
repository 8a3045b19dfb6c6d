/* test_resp_client.c - the framed client over the RESP client codec against real
 * servers: examples/mini_redis and, where it is installed, redis-server 7 (over a
 * Unix socket). RESP3 push frames: SUBSCRIBE answered by its first confirmation,
 * every confirmation and message delivered to the push channel, other commands
 * answered in order meanwhile, EK_ENOTSUP for pub/sub before HELLO 3, a bounded
 * push channel (back-pressure) losing nothing, the channel closed when the client
 * is gone. The same scenario is run on both servers and the transcripts (every
 * answer and push frame, encoded as RESP3) must be identical byte for byte. */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- servers ---- */

typedef struct server {
    pid_t pid;
    ek_sockaddr *addr;
    char sock[64]; /* redis-server's Unix socket */
} server;

static int start_mini_redis(server *s)
{
    const char *bin = getenv("EK_BINARY_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/mini_redis", bin ? bin : ".");
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a test that failed */
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(path, path, "127.0.0.1:0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[128] = {0};
    size_t n = 0;
    while (n < sizeof line - 1) { /* the chosen address, on the first line */
        ssize_t k = read(fds[0], line + n, 1);
        if (k <= 0 || line[n] == '\n') break;
        n++;
    }
    close(fds[0]);
    line[n] = 0;
    const char *at = strstr(line, "listening on "); /* "mini_redis: listening on <addr>" */
    assert_non_null(at);
    assert_int_equal(ek_sockaddr_parse(at + strlen("listening on "), &s->addr), EK_OK);
    return 0;
}

/* 0, or -1 where redis-server is not installed. */
static int start_redis_server(server *s)
{
    if (system("command -v redis-server >/dev/null 2>&1") != 0) return -1;
    snprintf(s->sock, sizeof s->sock, "/tmp/ekt-redis-%d.sock", (int)getpid());
    unlink(s->sock);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", s->sock, "--save", "",
               "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    /* Ready once a connection is accepted (the socket file exists a little
     * before redis listens on it). */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->sock);
    int ok = 0;
    for (int i = 0; i < 10000 && !ok; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(fd);
        if (!ok) usleep(1000);
    }
    assert_true(ok);
    assert_int_equal(ek_sockaddr_parse(s->sock, &s->addr), EK_OK);
    return 0;
}

static void stop(server *s)
{
    kill(s->pid, SIGTERM);
    int status;
    waitpid(s->pid, &status, 0);
    if (s->sock[0]) unlink(s->sock);
    ek_sockaddr_free(s->addr);
}

/* ---- requests and frames ---- */

/* A request from its arguments (a NULL ends them). */
static ek_msg *req(const char *first, ...)
{
    ek_msg *m;
    assert_int_equal(ek_msg_resp_aggregate(EK_RESP_ARRAY, 4, &m), EK_OK);
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL; a = va_arg(ap, const char *)) {
        ek_msg *s;
        assert_int_equal(ek_msg_resp_string(EK_RESP_BULK, a, strlen(a), &s), EK_OK);
        assert_int_equal(ek_msg_resp_append(m, s), EK_OK);
    }
    va_end(ap);
    return m;
}

/* Call svc with m; the answer (the caller's) or NULL, *rc the result. */
static ek_msg *call(ek_runtime *rt, ek_service *svc, ek_msg *m, int *rc)
{
    ek_future *f = NULL;
    assert_int_equal(ek_service_oneshot(svc, m, &f), EK_OK);
    void *out = NULL;
    *rc = ek_block_on(rt, f, &out);
    return out;
}

/* The next push frame, waiting up to 10 s (NULL, *rc the error, otherwise). */
static ek_msg *next_push(ek_mpsc_receiver *rx, int *rc)
{
    void *v = NULL;
    for (int i = 0; i < 10000; i++) {
        *rc = ek_mpsc_try_recv(rx, &v);
        if (*rc != EK_EEMPTY) break;
        usleep(1000);
    }
    return *rc == EK_OK ? v : NULL;
}

/* A transcript: what each step gave, encoded in RESP3 (as a server writes it). */
typedef struct transcript {
    ek_codec *enc;
    ek_buf *text;
} transcript;

static void note(transcript *t, const char *what, ek_msg *m)
{
    assert_int_equal(ek_buf_append(t->text, what, strlen(what)), EK_OK);
    assert_int_equal(ek_buf_append(t->text, " ", 1), EK_OK);
    assert_int_equal(ek_codec_encode(t->enc, m, EK_CODEC_RESPONSE, t->text), EK_OK);
}

/* The push frame [kind, name, third] with its third a bulk (or integer n). */
static void assert_push(ek_msg *m, const char *kind, const char *name, const char *bulk, int64_t n)
{
    assert_non_null(m);
    assert_int_equal(ek_msg_resp_type(m), EK_RESP_PUSH);
    assert_int_equal(ek_msg_resp_len(m), 3);
    ek_msg *e[3];
    for (size_t i = 0; i < 3; i++) assert_int_equal(ek_msg_resp_child(m, i, &e[i]), EK_OK);
    const uint8_t *d;
    size_t len;
    assert_int_equal(ek_msg_data(e[0], &d, &len), EK_OK);
    assert_true(len == strlen(kind) && memcmp(d, kind, len) == 0);
    assert_int_equal(ek_msg_data(e[1], &d, &len), EK_OK);
    assert_true(len == strlen(name) && memcmp(d, name, len) == 0);
    if (bulk != NULL) {
        assert_int_equal(ek_msg_data(e[2], &d, &len), EK_OK);
        assert_true(len == strlen(bulk) && memcmp(d, bulk, len) == 0);
    } else {
        int64_t v;
        assert_int_equal(ek_msg_resp_get_integer(e[2], &v), EK_OK);
        assert_int_equal(v, n);
    }
}

static void expect_push(transcript *t, ek_mpsc_receiver *rx, const char *kind, const char *name,
                        const char *bulk, int64_t n)
{
    int rc;
    ek_msg *m = next_push(rx, &rc);
    assert_int_equal(rc, EK_OK);
    assert_push(m, kind, name, bulk, n);
    note(t, "push", m);
    ek_msg_free(m);
}

static ek_msg *expect_answer(ek_runtime *rt, ek_service *svc, ek_msg *m, int want_type)
{
    int rc;
    ek_msg *a = call(rt, svc, m, &rc);
    assert_int_equal(rc, EK_OK);
    assert_non_null(a);
    assert_int_equal(ek_msg_resp_type(a), want_type);
    return a;
}

static ek_service *connect_to(ek_runtime *rt, const ek_sockaddr *addr, const ek_client_options *o)
{
    ek_codec *codec;
    assert_int_equal(ek_codec_resp_client(3, &codec), EK_OK);
    ek_service *svc;
    assert_int_equal(ek_client_connect(rt, addr, codec, o, &svc), EK_OK);
    return svc;
}

/* The pub/sub scenario on the server at addr; returns its transcript. */
static ek_buf *scenario(ek_runtime *rt, const ek_sockaddr *addr)
{
    transcript t;
    assert_int_equal(ek_codec_resp_client(3, &t.enc), EK_OK);
    assert_int_equal(ek_buf_new(0, &t.text), EK_OK);
    ek_client_options *o;
    assert_int_equal(ek_client_options_new(&o), EK_OK);
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_client_options_set_push(o, 0, &rx), EK_OK);
    ek_service *sub = connect_to(rt, addr, o);
    ek_service *pub = connect_to(rt, addr, NULL);
    int rc;

    /* Before HELLO 3: refused, nothing written (the next request still pairs). */
    assert_null(call(rt, sub, req("SUBSCRIBE", "a", NULL), &rc));
    assert_int_equal(rc, EK_ENOTSUP);
    ek_msg *a = expect_answer(rt, sub, req("PING", NULL), EK_RESP_SIMPLE);
    note(&t, "ping", a);
    ek_msg_free(a);
    ek_msg_free(expect_answer(rt, sub, req("HELLO", "3", NULL), EK_RESP_MAP));

    /* SUBSCRIBE a b: answered by [subscribe a 1]; both confirmations pushed. */
    a = expect_answer(rt, sub, req("SUBSCRIBE", "a", "b", NULL), EK_RESP_PUSH);
    assert_push(a, "subscribe", "a", NULL, 1);
    note(&t, "subscribe", a);
    ek_msg_free(a);
    expect_push(&t, rx, "subscribe", "a", NULL, 1);
    expect_push(&t, rx, "subscribe", "b", NULL, 2);

    /* Messages arrive as pushes; other commands are answered meanwhile. */
    for (int i = 0; i < 3; i++) {
        char payload[16];
        snprintf(payload, sizeof payload, "hello %d", i);
        a = expect_answer(rt, pub, req("PUBLISH", i == 1 ? "b" : "a", payload, NULL),
                          EK_RESP_INTEGER);
        note(&t, "publish", a);
        ek_msg_free(a);
        expect_push(&t, rx, "message", i == 1 ? "b" : "a", payload, 0);
    }
    a = expect_answer(rt, sub, req("PING", NULL), EK_RESP_SIMPLE);
    note(&t, "ping", a);
    ek_msg_free(a);
    a = expect_answer(rt, pub, req("PUBLISH", "nobody", "x", NULL), EK_RESP_INTEGER);
    note(&t, "publish", a);
    ek_msg_free(a);

    /* UNSUBSCRIBE a b: answered by its first confirmation; both pushed. */
    a = expect_answer(rt, sub, req("UNSUBSCRIBE", "a", "b", NULL), EK_RESP_PUSH);
    assert_push(a, "unsubscribe", "a", NULL, 1);
    note(&t, "unsubscribe", a);
    ek_msg_free(a);
    expect_push(&t, rx, "unsubscribe", "a", NULL, 1);
    expect_push(&t, rx, "unsubscribe", "b", NULL, 0);
    a = expect_answer(rt, sub, req("PING", NULL), EK_RESP_SIMPLE);
    note(&t, "ping", a);
    ek_msg_free(a);

    /* The push channel closes once the client and the options are gone. */
    ek_service_free(sub);
    ek_service_free(pub);
    ek_client_options_free(o);
    assert_null(next_push(rx, &rc));
    assert_int_equal(rc, EK_ECLOSED);
    ek_mpsc_receiver_drop(rx);
    ek_codec_free(t.enc);
    return t.text;
}

/* A push channel of capacity 1: the client stops reading while it is full, and
 * every message still arrives, in order. */
static void backpressure(ek_runtime *rt, const ek_sockaddr *addr)
{
    ek_client_options *o;
    assert_int_equal(ek_client_options_new(&o), EK_OK);
    ek_mpsc_receiver *rx;
    assert_int_equal(ek_client_options_set_push(o, 1, &rx), EK_OK);
    ek_service *sub = connect_to(rt, addr, o);
    ek_service *pub = connect_to(rt, addr, NULL);
    ek_client_options_free(o);
    ek_msg_free(expect_answer(rt, sub, req("HELLO", "3", NULL), EK_RESP_MAP));
    ek_msg_free(expect_answer(rt, sub, req("SUBSCRIBE", "c", NULL), EK_RESP_PUSH));
    int rc;
    ek_msg *m = next_push(rx, &rc);
    assert_push(m, "subscribe", "c", NULL, 1);
    ek_msg_free(m);
    enum { N = 50 };
    for (int i = 0; i < N; i++) {
        char payload[16];
        snprintf(payload, sizeof payload, "m%d", i);
        ek_msg_free(expect_answer(rt, pub, req("PUBLISH", "c", payload, NULL), EK_RESP_INTEGER));
    }
    usleep(50 * 1000); /* let the client fill the channel and stop */
    for (int i = 0; i < N; i++) {
        char payload[16];
        snprintf(payload, sizeof payload, "m%d", i);
        m = next_push(rx, &rc);
        assert_int_equal(rc, EK_OK);
        assert_push(m, "message", "c", payload, 0);
        ek_msg_free(m);
    }
    ek_msg_free(expect_answer(rt, sub, req("PING", NULL), EK_RESP_SIMPLE));
    /* A dropped receiver: push frames are dropped, the connection goes on. */
    ek_mpsc_receiver_drop(rx);
    ek_msg_free(expect_answer(rt, pub, req("PUBLISH", "c", "late", NULL), EK_RESP_INTEGER));
    ek_msg_free(expect_answer(rt, sub, req("PING", NULL), EK_RESP_SIMPLE));
    ek_service_free(sub);
    ek_service_free(pub);
}

static void test_push_frames_mini_redis(void **st)
{
    (void)st;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    server s = {0};
    start_mini_redis(&s);
    ek_buf_free(scenario(rt, s.addr));
    backpressure(rt, s.addr);
    stop(&s);
    ekt_rt_free_checked(rt);
}

static void test_push_frames_redis_server_same_bytes(void **st)
{
    (void)st;
    server r = {0};
    if (start_redis_server(&r) != 0) {
        fprintf(stderr, "redis-server is not installed: skipped\n");
        skip();
    }
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_buf *theirs = scenario(rt, r.addr);
    backpressure(rt, r.addr);
    server s = {0};
    start_mini_redis(&s);
    ek_buf *ours = scenario(rt, s.addr);
    if (ek_buf_len(ours) != ek_buf_len(theirs) ||
        memcmp(ek_buf_data(ours), ek_buf_data(theirs), (size_t)ek_buf_len(ours)) != 0) {
        fprintf(stderr, "redis-server: %.*s\nmini_redis:   %.*s\n", (int)ek_buf_len(theirs),
                (const char *)ek_buf_data(theirs), (int)ek_buf_len(ours),
                (const char *)ek_buf_data(ours));
        fail();
    }
    ek_buf_free(ours);
    ek_buf_free(theirs);
    stop(&s);
    stop(&r);
    ekt_rt_free_checked(rt);
}

/* The request encoding is all or nothing: a request the codec cannot write fails
 * alone and leaves no bytes behind, so the next request on the connection pairs. */
static void test_bad_request_writes_nothing(void **st)
{
    (void)st;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    server s = {0};
    start_mini_redis(&s);
    ek_service *c = connect_to(rt, s.addr, NULL);
    ek_msg *bad = req("ECHO", NULL), *nested;
    assert_int_equal(ek_msg_resp_aggregate(EK_RESP_ARRAY, 0, &nested), EK_OK);
    assert_int_equal(ek_msg_resp_append(bad, nested), EK_OK); /* not a string */
    int rc;
    assert_null(call(rt, c, bad, &rc));
    assert_int_equal(rc, EK_EKIND);
    ek_msg *a = expect_answer(rt, c, req("ECHO", "after", NULL), EK_RESP_BULK);
    const uint8_t *d;
    size_t n;
    assert_int_equal(ek_msg_data(a, &d, &n), EK_OK);
    assert_true(n == 5 && memcmp(d, "after", 5) == 0);
    ek_msg_free(a);
    ek_service_free(c);
    stop(&s);
    ekt_rt_free_checked(rt);
}

/* Options: exact errors; a second channel replaces the first (whose receiver
 * then sees EK_ECLOSED). */
static void test_push_option_errors(void **st)
{
    (void)st;
    ek_mpsc_receiver *rx = NULL, *rx2 = NULL;
    assert_int_equal(ek_client_options_set_push(NULL, 0, &rx), EK_EINVAL);
    ek_client_options *o;
    assert_int_equal(ek_client_options_new(&o), EK_OK);
    assert_int_equal(ek_client_options_set_push(o, 0, NULL), EK_EINVAL);
    assert_int_equal(ek_client_options_set_push(o, 4, &rx), EK_OK);
    assert_int_equal(ek_client_options_set_push(o, 0, &rx2), EK_OK);
    void *v;
    assert_int_equal(ek_mpsc_try_recv(rx, &v), EK_ECLOSED);
    assert_int_equal(ek_mpsc_try_recv(rx2, &v), EK_EEMPTY);
    ek_client_options_free(o);
    assert_int_equal(ek_mpsc_try_recv(rx2, &v), EK_ECLOSED);
    ek_mpsc_receiver_drop(rx);
    ek_mpsc_receiver_drop(rx2);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_push_option_errors, ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_push_frames_mini_redis, ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_push_frames_redis_server_same_bytes, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_bad_request_writes_nothing, ekt_setup, ekt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
