/*
 * demo.c - `make demo`: the echo server under load, measured.
 *
 *   demo [--conns N] [--secs S] [--size BYTES] [--server-threads N]
 *        [--client-threads N]
 *
 * Starts the echo server (examples/echo.c, plus a connection count) on an
 * ephemeral loopback port in one ekiden runtime, and a load generator in a
 * second runtime: N connections, each sending a message of BYTES, waiting for
 * the whole echo and checking it, then sending the next, for S seconds. Then
 * prints requests/s, MiB/s, latency percentiles and errors, and shuts the server
 * down gracefully: it stops accepting, lets every connection finish (each client
 * half-closes, the server sees end of stream), then frees the runtime.
 */
#include <ekiden.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- latency histogram: log-linear buckets, 32 per power of two (~3%) ---- */

#define SUB_BITS 5
#define SUB      (1u << SUB_BITS)
#define BUCKETS  ((64 - SUB_BITS) * SUB + SUB)

static _Atomic uint64_t hist[BUCKETS];

static unsigned bucket_of(uint64_t v)
{
    if (v < SUB) return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - SUB_BITS;
    return (shift + 1) * SUB + (unsigned)((v >> shift) - SUB);
}

/* The upper bound of a bucket's values. */
static uint64_t bucket_top(unsigned b)
{
    if (b < SUB) return b;
    unsigned shift = b / SUB - 1;
    return ((uint64_t)(b % SUB + SUB + 1) << shift) - 1;
}

static uint64_t percentile(uint64_t total, double p)
{
    uint64_t want = (uint64_t)((double)total * p), seen = 0;
    for (unsigned b = 0; b < BUCKETS; b++) {
        seen += atomic_load_explicit(&hist[b], memory_order_relaxed);
        if (seen > want) return bucket_top(b);
    }
    return 0;
}

/* ---- the echo server (examples/echo.c) ---- */

static atomic_long server_conns; /* connection tasks alive */

typedef struct conn {
    ek_tcp_stream *socket;
    char buf[4096];
    size_t len, off;
} conn;

static int conn_poll(void *state, ek_cx *cx, void **out)
{
    conn *c = state;
    for (;;) {
        while (c->off < c->len) {
            size_t n;
            int rc = ek_tcp_write(c->socket, cx, c->buf + c->off, c->len - c->off, &n);
            if (rc != EK_OK) return rc;
            c->off += n;
        }
        int rc = ek_tcp_read(c->socket, cx, c->buf, sizeof c->buf, &c->len);
        if (rc != EK_OK) return rc;
        if (c->len == 0) return EK_OK;
        c->off = 0;
    }
}

static void conn_drop(void *state)
{
    conn *c = state;
    ek_tcp_free(c->socket);
    free(c);
    atomic_fetch_sub(&server_conns, 1);
}

/* Ends with EK_ECLOSED when main closes the listener: that stops accepting. */
static int accept_loop(void *listener, ek_cx *cx, void **out)
{
    for (;;) {
        ek_tcp_stream *socket;
        int rc = ek_tcp_accept(listener, cx, &socket, NULL);
        if (rc != EK_OK) return rc;
        ek_tcp_set_nodelay(socket, 1);
        conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            ek_tcp_free(socket);
            continue;
        }
        c->socket = socket;
        atomic_fetch_add(&server_conns, 1);
        ek_spawn(ek_cx_runtime(cx), conn_poll, conn_drop, c, NULL, NULL);
    }
}

static void no_drop(void *state)
{
    (void)state;
}

/* ---- the load generator ---- */

static atomic_ullong requests, errors;
static uint64_t deadline_ns;

enum phase { CONNECTING, WRITING, READING, DRAINING, DONE };

typedef struct client {
    ek_runtime *rt;
    const ek_sockaddr *addr;
    ek_future *connect;
    ek_tcp_stream *s;
    enum phase phase;
    size_t size, off;
    uint64_t seq, t0;
    char *tx, *rx;
} client;

/* Message `seq`: the sequence number, then bytes derived from it, so a wrong,
 * stale or torn echo is caught. */
static void fill(char *buf, size_t size, uint64_t seq)
{
    for (size_t i = 0; i < size; i++) buf[i] = (char)((seq * 31 + i * 7) & 0xff);
    memcpy(buf, &seq, size < sizeof seq ? size : sizeof seq);
}

static int fail(client *c, int rc)
{
    atomic_fetch_add(&errors, 1);
    if (atomic_load(&errors) <= 3) fprintf(stderr, "demo: client: %s\n", ek_strerror(rc));
    c->phase = DONE;
    return EK_OK;
}

static int client_poll(void *state, ek_cx *cx, void **out)
{
    client *c = state;
    int rc;
    size_t n;
    for (;;) {
        switch (c->phase) {
        case CONNECTING:
            if (c->connect == NULL && (rc = ek_tcp_connect(c->rt, c->addr, &c->connect)) != EK_OK)
                return fail(c, rc);
            rc = ek_future_poll(c->connect, cx, (void **)&c->s);
            if (rc == EK_PENDING) return rc;
            ek_future_drop(c->connect);
            c->connect = NULL;
            if (rc != EK_OK) return fail(c, rc);
            ek_tcp_set_nodelay(c->s, 1);
            fill(c->tx, c->size, c->seq);
            c->t0 = now_ns();
            c->phase = WRITING;
            break;
        case WRITING:
            rc = ek_tcp_write(c->s, cx, c->tx + c->off, c->size - c->off, &n);
            if (rc == EK_PENDING) return rc;
            if (rc != EK_OK) return fail(c, rc);
            c->off += n;
            if (c->off == c->size) {
                c->off = 0;
                c->phase = READING;
            }
            break;
        case READING:
            rc = ek_tcp_read(c->s, cx, c->rx + c->off, c->size - c->off, &n);
            if (rc == EK_PENDING) return rc;
            if (rc != EK_OK) return fail(c, rc);
            if (n == 0) return fail(c, EK_ECONNRESET); /* early end of stream */
            c->off += n;
            if (c->off < c->size) break;
            uint64_t t = now_ns();
            if (memcmp(c->tx, c->rx, c->size) != 0) return fail(c, EK_EIO);
            atomic_fetch_add_explicit(&hist[bucket_of(t - c->t0)], 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&requests, 1, memory_order_relaxed);
            c->off = 0;
            if (t >= deadline_ns) {
                /* Half-close: the server sees end of stream and ends its task. */
                ek_tcp_shutdown(c->s);
                c->phase = DRAINING;
                break;
            }
            fill(c->tx, c->size, ++c->seq);
            c->t0 = t;
            c->phase = WRITING;
            break;
        case DRAINING:
            rc = ek_tcp_read(c->s, cx, c->rx, c->size, &n);
            if (rc == EK_PENDING) return rc;
            if (rc != EK_OK || n != 0) return fail(c, rc != EK_OK ? rc : EK_EIO);
            c->phase = DONE;
            break;
        case DONE:
            return EK_OK;
        }
    }
}

static void client_drop(void *state)
{
    client *c = state;
    ek_future_drop(c->connect);
    ek_tcp_free(c->s);
    free(c->tx);
    free(c->rx);
    free(c);
}

/* ---- main ---- */

static ek_runtime *runtime(unsigned workers)
{
    ek_builder *b;
    ek_runtime *rt = NULL;
    if (ek_builder_new(&b) != EK_OK) return NULL;
    ek_builder_set_worker_threads(b, workers);
    ek_runtime_new(b, &rt);
    ek_builder_free(b);
    return rt;
}

static void usage(void)
{
    fprintf(stderr, "usage: demo [--conns N] [--secs S] [--size BYTES] [--server-threads N] "
                    "[--client-threads N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned half = ncpu > 1 ? (unsigned)(ncpu / 2) : 1;
    long conns = 100, secs = 10, size = 64, sthreads = half, cthreads = half;
    for (int i = 1; i < argc; i++) {
        long *opt = !strcmp(argv[i], "--conns")            ? &conns
                    : !strcmp(argv[i], "--secs")           ? &secs
                    : !strcmp(argv[i], "--size")           ? &size
                    : !strcmp(argv[i], "--server-threads") ? &sthreads
                    : !strcmp(argv[i], "--client-threads") ? &cthreads
                                                           : NULL;
        if (opt == NULL || i + 1 == argc) usage();
        char *end;
        *opt = strtol(argv[++i], &end, 10);
        if (*end != '\0' || *opt < 1) usage();
    }

    ek_runtime *srt = runtime((unsigned)sthreads), *crt = runtime((unsigned)cthreads);
    ek_tcp_listener *listener;
    ek_sockaddr *addr;
    int rc = srt && crt ? ek_tcp_listen(srt, "127.0.0.1:0", &listener) : EK_ENOMEM;
    if (rc != EK_OK) {
        fprintf(stderr, "demo: %s\n", ek_strerror(rc));
        return 1;
    }
    ek_sockaddr_new(&addr);
    ek_tcp_listener_local_addr(listener, addr);
    char text[EK_SOCKADDR_STRLEN];
    ek_sockaddr_format(addr, text, sizeof text);
    printf("ekiden %s echo demo: server on %s (%ld worker%s), %ld connections for %ld s, "
           "%ld-byte messages (%ld client worker%s)\n",
           ek_version_string(), text, sthreads, sthreads > 1 ? "s" : "", conns, secs, size,
           cthreads, cthreads > 1 ? "s" : "");
    fflush(stdout);

    ek_join *server;
    rc = ek_spawn(srt, accept_loop, no_drop, listener, NULL, &server);
    if (rc != EK_OK) {
        fprintf(stderr, "demo: spawn server: %s\n", ek_strerror(rc));
        return 1;
    }

    uint64_t start = now_ns();
    deadline_ns = start + (uint64_t)secs * 1000000000u;
    ek_join **joins = calloc((size_t)conns, sizeof *joins);
    for (long i = 0; i < conns; i++) {
        client *c = calloc(1, sizeof *c);
        c->rt = crt;
        c->addr = addr;
        c->size = (size_t)size;
        c->tx = malloc((size_t)size);
        c->rx = malloc((size_t)size);
        c->seq = (uint64_t)i << 40;
        if ((rc = ek_spawn(crt, client_poll, client_drop, c, NULL, &joins[i])) != EK_OK) {
            fprintf(stderr, "demo: spawn client: %s\n", ek_strerror(rc));
            atomic_fetch_add(&errors, 1);
        }
    }
    for (long i = 0; i < conns; i++) {
        if (joins[i] == NULL) continue;
        ek_join_wait(joins[i], NULL);
        ek_join_detach(joins[i]);
    }
    double elapsed = (double)(now_ns() - start) / 1e9;
    free(joins);

    /* Graceful shutdown: stop accepting, then wait for the connection tasks,
     * which end as their clients' end of stream arrives. */
    ek_tcp_listener_close(listener);
    rc = ek_join_wait(server, NULL);
    ek_join_detach(server);
    ek_tcp_listener_free(listener);
    uint64_t give_up = now_ns() + 5000000000u;
    while (atomic_load(&server_conns) > 0 && now_ns() < give_up) usleep(1000);
    long left = atomic_load(&server_conns);

    uint64_t n = atomic_load(&requests), errs = atomic_load(&errors);
    double mib = (double)n * (double)size / (1024.0 * 1024.0) / elapsed;
    printf("requests   %" PRIu64 " in %.2f s: %.0f req/s\n", n, elapsed, (double)n / elapsed);
    printf("throughput %.2f MiB/s each way\n", mib);
    printf("latency    p50 %.1f us  p99 %.1f us  p999 %.1f us\n", percentile(n, 0.50) / 1e3,
           percentile(n, 0.99) / 1e3, percentile(n, 0.999) / 1e3);
    printf("errors     %" PRIu64 "\n", errs);
    printf("shutdown   listener %s, %ld connection%s left open\n",
           rc == EK_ECLOSED ? "closed" : ek_strerror(rc), left, left == 1 ? "" : "s");

    ek_sockaddr_free(addr);
    ek_runtime_free(crt);
    ek_runtime_free(srt);
    return errs == 0 && n > 0 && left == 0 ? 0 : 1;
}
