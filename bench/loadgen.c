/*
 * loadgen.c - the one neutral load generator used against every echo server in
 * bench/ (ekiden, Tokio, libuv, the hand-written epoll server). Plain C, pthreads
 * and epoll; it does not use ekiden, so it favours nobody. Loopback use only.
 *
 *   loadgen echo     HOST:PORT [-c conns] [-s bytes] [-d secs] [-w secs] [-t threads]
 *   loadgen pingpong HOST:PORT [-d secs] [-w secs]
 *   loadgen pump     HOST:PORT [-c conns] [-d secs] [-w secs] [-t threads]
 *   loadgen resp-set|resp-get HOST:PORT [-c conns] [-P pipeline] [-d secs] [-w secs] [-t threads]
 *
 * echo (vmbench's method): each connection sends one message and waits for the
 *   whole echo before sending the next; every byte is checked. Reports requests
 *   per second, MiB/s of payload (one direction), latency p50/p99/p999 in µs,
 *   errors.
 * pingpong (libuv's ping_pongs): one connection, "PING\n" echoed back, round trips
 *   per second.
 * pump (libuv's tcp_pump, against an echo server): each connection writes 8 KiB
 *   buffers nonstop and reads back whatever the server echoes; Gbit/s received
 *   (and sent).
 * resp-set, resp-get (against a RESP key-value server, as redis-benchmark -t
 *   set,get -P N with its default key and value): each connection sends -P
 *   commands (default 1) in one write, SET key:__rand_int__ xxx or GET of that
 *   key (set once before the run), and waits for all -P replies (+OK, or the
 *   bulk string xxx), checked byte for byte, before sending the next -P;
 *   requests per second counts commands. Its cost per command is one send and
 *   one recv per -P commands, so that it can load a server past the rate
 *   redis-benchmark itself reaches on one core.
 *
 * The first -w seconds (default 0.5) warm up and are not counted; then -d seconds
 * (default 3) are measured and the run stops by itself. Output: one
 * machine-readable line `LOAD <mode> key=value ...` and one human-readable line.
 * Exit status 0 when the run completed (errors are reported, not fatal), 1 when
 * no connection could be made, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_ECHO, MODE_PINGPONG, MODE_PUMP, MODE_RESP };
enum phase { PHASE_WARMUP, PHASE_MEASURE, PHASE_STOP };

#define PUMP_BUF      8192
#define HIST_STEP_NS  100u     /* latency histogram resolution */
#define HIST_BUCKETS  1000000u /* 100 ns x 1,000,000 = 100 ms; beyond goes to overflow */
#define MAX_EVENTS    256
#define MAX_MSG_BYTES (64u << 20)

static _Atomic int g_phase = PHASE_WARMUP;

struct conn {
    int fd;
    int dead;
    size_t sent;     /* bytes of the current message written */
    size_t received; /* bytes of the current echo read */
    uint64_t t_send; /* when the current message started */
    int want_out;    /* EPOLLOUT registered */
};

struct worker {
    pthread_t thread;
    int epfd;
    struct conn *conns;
    size_t nconns;
    enum mode mode;
    const unsigned char *msg;
    size_t msg_len;
    const unsigned char *expect; /* the reply to msg (msg itself for echo) */
    size_t expect_len;
    uint64_t per_msg; /* requests per message (resp: the pipeline) */
    unsigned char *rbuf;
    size_t rbuf_len;
    /* counted in the measurement window only */
    uint64_t requests;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t errors;
    uint32_t *hist;
    uint64_t hist_overflow;
    uint64_t max_ns;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: loadgen echo|pingpong|pump|resp-set|resp-get HOST:PORT [-c conns] "
                    "[-s bytes] [-P pipeline] [-d secs] [-w secs] [-t threads]\n");
    exit(2);
}

static void record_latency(struct worker *w, uint64_t ns)
{
    uint64_t b = ns / HIST_STEP_NS;
    if (b < HIST_BUCKETS)
        w->hist[b]++;
    else
        w->hist_overflow++;
    if (ns > w->max_ns) w->max_ns = ns;
}

static void conn_fail(struct worker *w, struct conn *c)
{
    if (c->dead) return;
    c->dead = 1;
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    w->errors++;
}

static void set_out_interest(struct worker *w, struct conn *c, int want)
{
    if (c->want_out == want) return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->want_out = want;
}

/* echo / pingpong: write the rest of the current message. */
static void echo_write(struct worker *w, struct conn *c)
{
    while (c->sent < w->msg_len) {
        ssize_t n = send(c->fd, w->msg + c->sent, w->msg_len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out_interest(w, c, 1);
            return;
        } else {
            conn_fail(w, c);
            return;
        }
    }
    set_out_interest(w, c, 0);
}

static void echo_start(struct worker *w, struct conn *c)
{
    c->sent = 0;
    c->received = 0;
    c->t_send = now_ns();
    echo_write(w, c);
}

/* echo / pingpong / resp: read what is there, check it, and start the next
 * message when the whole reply (the echo) has arrived. */
static void echo_read(struct worker *w, struct conn *c, int measuring)
{
    for (;;) {
        size_t want = w->expect_len - c->received;
        if (want > w->rbuf_len) want = w->rbuf_len;
        ssize_t n = recv(c->fd, w->rbuf, want, 0);
        if (n > 0) {
            if ((w->mode != MODE_RESP && c->received + (size_t)n > c->sent) ||
                memcmp(w->rbuf, w->expect + c->received, (size_t)n) != 0) {
                conn_fail(w, c); /* more than was sent, or wrong bytes */
                return;
            }
            c->received += (size_t)n;
            if (c->received == w->expect_len) {
                if (measuring) {
                    w->requests += w->per_msg;
                    w->bytes_in += w->expect_len;
                    w->bytes_out += w->msg_len;
                    record_latency(w, now_ns() - c->t_send);
                }
                echo_start(w, c);
                if (c->dead) return;
            }
        } else if (n == 0) {
            conn_fail(w, c); /* server closed */
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            conn_fail(w, c);
            return;
        }
    }
}

static void pump_write(struct worker *w, struct conn *c, int measuring)
{
    for (int i = 0; i < 64; i++) { /* bounded, so reads get their turn */
        ssize_t n = send(c->fd, w->msg, PUMP_BUF, MSG_NOSIGNAL);
        if (n > 0) {
            if (measuring) w->bytes_out += (uint64_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            conn_fail(w, c);
            return;
        }
    }
}

static void pump_read(struct worker *w, struct conn *c, int measuring)
{
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(c->fd, w->rbuf, w->rbuf_len, 0);
        if (n > 0) {
            if (measuring) w->bytes_in += (uint64_t)n;
        } else if (n == 0) {
            conn_fail(w, c);
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            conn_fail(w, c);
            return;
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event events[MAX_EVENTS];
    int measuring = 0;

    for (size_t i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        /* pump: level-triggered read and write interest for the whole run */
        uint32_t evs = w->mode == MODE_PUMP ? EPOLLIN | EPOLLOUT : EPOLLIN;
        struct epoll_event ev = {.events = evs, .data.ptr = c};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
            c->dead = 1;
            close(c->fd);
            w->errors++;
            continue;
        }
        c->want_out = w->mode == MODE_PUMP;
    }
    if (w->mode != MODE_PUMP)
        for (size_t i = 0; i < w->nconns; i++)
            if (!w->conns[i].dead) echo_start(w, &w->conns[i]);

    for (;;) {
        int phase = atomic_load_explicit(&g_phase, memory_order_acquire);
        if (phase == PHASE_STOP) break;
        if (phase == PHASE_MEASURE && !measuring) {
            measuring = 1;
            w->errors = 0; /* count only errors inside the window */
        }
        int n = epoll_wait(w->epfd, events, MAX_EVENTS, 5);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("loadgen: epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c->dead) continue;
            uint32_t e = events[i].events;
            if (w->mode == MODE_PUMP) {
                if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) pump_read(w, c, measuring);
                if (!c->dead && (e & EPOLLOUT)) pump_write(w, c, measuring);
            } else {
                if (e & EPOLLOUT) echo_write(w, c);
                if (!c->dead && (e & (EPOLLIN | EPOLLERR | EPOLLHUP))) echo_read(w, c, measuring);
            }
        }
    }
    for (size_t i = 0; i < w->nconns; i++)
        if (!w->conns[i].dead) close(w->conns[i].fd);
    return NULL;
}

static int connect_one(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    return fd;
}

static double percentile_us(struct worker *ws, int nthreads, uint64_t total, double q)
{
    if (total == 0) return 0;
    uint64_t rank = (uint64_t)(q * (double)total);
    if (rank >= total) rank = total - 1;
    uint64_t seen = 0;
    for (uint32_t b = 0; b < HIST_BUCKETS; b++) {
        for (int t = 0; t < nthreads; t++) seen += ws[t].hist[b];
        if (seen > rank) return (double)(b * HIST_STEP_NS + HIST_STEP_NS / 2) / 1000.0;
    }
    uint64_t mx = 0; /* in the overflow bucket: report the maximum */
    for (int t = 0; t < nthreads; t++)
        if (ws[t].max_ns > mx) mx = ws[t].max_ns;
    return (double)mx / 1000.0;
}

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* resp-get: SET the key once on the first live connection (blocking, bounded by
 * 5 s), so that every GET is answered with its value. 0 when +OK came back. */
static int set_key(struct conn *all, long conns, const char *cmd, const char *ok)
{
    for (long i = 0; i < conns; i++) {
        if (all[i].dead) continue;
        int fd = all[i].fd;
        size_t len = strlen(cmd), off = 0, want = strlen(ok), got = 0;
        char buf[16];
        uint64_t deadline = now_ns() + 5000000000ull;
        while ((off < len || got < want) && now_ns() < deadline) {
            ssize_t n = off < len ? send(fd, cmd + off, len - off, MSG_NOSIGNAL)
                                  : recv(fd, buf + got, want - got, 0);
            if (n > 0) {
                if (off < len)
                    off += (size_t)n;
                else
                    got += (size_t)n;
            } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                return -1;
            } else {
                sleep_s(0.001);
            }
        }
        return got == want && memcmp(buf, ok, want) == 0 ? 0 : -1;
    }
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) usage();
    enum mode mode = MODE_ECHO;
    if (strcmp(argv[1], "echo") == 0)
        mode = MODE_ECHO;
    else if (strcmp(argv[1], "pingpong") == 0)
        mode = MODE_PINGPONG;
    else if (strcmp(argv[1], "pump") == 0)
        mode = MODE_PUMP;
    else if (strcmp(argv[1], "resp-set") == 0 || strcmp(argv[1], "resp-get") == 0)
        mode = MODE_RESP;
    else
        usage();
    int resp_get = strcmp(argv[1], "resp-get") == 0;

    char host[256];
    const char *addr = argv[2];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host) usage();
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    const char *port = colon + 1;
    if (host[0] == '[') { /* [v6]:port */
        size_t l = strlen(host);
        if (l < 2 || host[l - 1] != ']') usage();
        memmove(host, host + 1, l - 2);
        host[l - 2] = '\0';
    }

    long conns = mode == MODE_ECHO ? 100 : mode == MODE_RESP ? 50 : 1;
    long pipeline = 1;
    long size = mode == MODE_PUMP ? PUMP_BUF : 64;
    double duration = 3.0, warmup = 0.5;
    long threads = 1;
    for (int i = 3; i < argc; i++) {
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (strcmp(argv[i - 1], "-c") == 0)
            conns = strtol(v, NULL, 10);
        else if (strcmp(argv[i - 1], "-s") == 0)
            size = strtol(v, NULL, 10);
        else if (strcmp(argv[i - 1], "-d") == 0)
            duration = strtod(v, NULL);
        else if (strcmp(argv[i - 1], "-w") == 0)
            warmup = strtod(v, NULL);
        else if (strcmp(argv[i - 1], "-t") == 0)
            threads = strtol(v, NULL, 10);
        else if (strcmp(argv[i - 1], "-P") == 0 && mode == MODE_RESP)
            pipeline = strtol(v, NULL, 10);
        else
            usage();
    }
    if (mode == MODE_PINGPONG) {
        conns = 1;
        threads = 1;
        size = 5;
    }
    if (mode == MODE_PUMP) size = PUMP_BUF;
    if (conns < 1 || conns > 100000 || size < 1 || (unsigned long)size > MAX_MSG_BYTES ||
        duration <= 0 || warmup < 0 || threads < 1 || threads > 256 || pipeline < 1 ||
        pipeline > 4096)
        usage();
    if (threads > conns) threads = conns;

    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "loadgen: %s: %s\n", addr, gai_strerror(gai));
        return 1;
    }

    /* The message: "PING\n" for pingpong, else a byte pattern so that a misplaced
     * or corrupted byte is caught. */
    static const char set_cmd[] = "*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n";
    static const char get_cmd[] = "*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n";
    static const char ok_reply[] = "+OK\r\n", get_reply[] = "$3\r\nxxx\r\n";
    const char *cmd = resp_get ? get_cmd : set_cmd, *reply = resp_get ? get_reply : ok_reply;
    size_t cmd_len = strlen(cmd), reply_len = strlen(reply);
    if (mode == MODE_RESP) size = (long)(cmd_len * (size_t)pipeline);
    unsigned char *msg = malloc((size_t)size);
    unsigned char *expect = msg;
    size_t expect_len = (size_t)size;
    if (!msg) return 1;
    if (mode == MODE_PINGPONG) {
        memcpy(msg, "PING\n", 5);
    } else if (mode == MODE_RESP) {
        expect_len = reply_len * (size_t)pipeline;
        expect = malloc(expect_len);
        if (!expect) return 1;
        for (long i = 0; i < pipeline; i++) {
            memcpy(msg + (size_t)i * cmd_len, cmd, cmd_len);
            memcpy(expect + (size_t)i * reply_len, reply, reply_len);
        }
    } else {
        for (long i = 0; i < size; i++) msg[i] = (unsigned char)('a' + (i * 7 + i / 26) % 26);
    }

    struct conn *all = calloc((size_t)conns, sizeof *all);
    struct worker *ws = calloc((size_t)threads, sizeof *ws);
    if (!all || !ws) return 1;
    long connected = 0;
    uint64_t connect_errors = 0;
    for (long i = 0; i < conns; i++) {
        int fd = connect_one(ai);
        if (fd < 0) {
            connect_errors++;
            all[i].fd = -1;
            all[i].dead = 1;
        } else {
            all[i].fd = fd;
            connected++;
        }
    }
    freeaddrinfo(ai);
    if (connected == 0) {
        fprintf(stderr, "loadgen: could not connect to %s: %s\n", addr, strerror(errno));
        return 1;
    }
    if (resp_get && set_key(all, conns, set_cmd, ok_reply) != 0) {
        fprintf(stderr, "loadgen: %s: the SET before resp-get was not answered +OK\n", addr);
        return 1;
    }

    size_t rbuf_len = mode == MODE_PUMP ? 65536 : expect_len < 65536 ? expect_len : 65536;
    long per = conns / threads, extra = conns % threads, next = 0;
    for (long t = 0; t < threads; t++) {
        struct worker *w = &ws[t];
        w->mode = mode;
        w->msg = msg;
        w->msg_len = (size_t)size;
        w->expect = expect;
        w->expect_len = expect_len;
        w->per_msg = mode == MODE_RESP ? (uint64_t)pipeline : 1;
        w->rbuf_len = rbuf_len;
        w->rbuf = malloc(rbuf_len);
        w->hist = calloc(HIST_BUCKETS, sizeof *w->hist);
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (!w->rbuf || !w->hist || w->epfd < 0) {
            perror("loadgen");
            return 1;
        }
        w->nconns = (size_t)(per + (t < extra));
        w->conns = all + next;
        next += (long)w->nconns;
        /* connections that failed to connect are skipped by the worker */
        struct conn *live = w->conns;
        size_t k = 0;
        for (size_t i = 0; i < w->nconns; i++)
            if (!live[i].dead) live[k++] = live[i];
        w->nconns = k;
    }
    for (long t = 0; t < threads; t++) {
        if (pthread_create(&ws[t].thread, NULL, worker_main, &ws[t]) != 0) {
            perror("loadgen: pthread_create");
            return 1;
        }
    }

    sleep_s(warmup);
    atomic_store_explicit(&g_phase, PHASE_MEASURE, memory_order_release);
    uint64_t t0 = now_ns();
    sleep_s(duration);
    atomic_store_explicit(&g_phase, PHASE_STOP, memory_order_release);
    uint64_t elapsed = now_ns() - t0;
    for (long t = 0; t < threads; t++) pthread_join(ws[t].thread, NULL);

    uint64_t requests = 0, bytes_in = 0, bytes_out = 0, errors = connect_errors;
    for (long t = 0; t < threads; t++) {
        requests += ws[t].requests;
        bytes_in += ws[t].bytes_in;
        bytes_out += ws[t].bytes_out;
        errors += ws[t].errors;
    }
    double secs = (double)elapsed / 1e9;

    if (mode == MODE_PUMP) {
        double gbit_in = (double)bytes_in * 8 / secs / 1e9;
        double gbit_out = (double)bytes_out * 8 / secs / 1e9;
        printf("LOAD pump conns=%ld duration_s=%.2f bytes_in=%llu gbit_per_s=%.3f "
               "gbit_per_s_sent=%.3f errors=%llu\n",
               conns, secs, (unsigned long long)bytes_in, gbit_in, gbit_out,
               (unsigned long long)errors);
        printf("pump: %ld connections, %.2f s: %.3f Gbit/s echoed back (%.3f Gbit/s sent), "
               "%llu errors\n",
               conns, secs, gbit_in, gbit_out, (unsigned long long)errors);
    } else {
        double rps = (double)requests / secs;
        double mib = (double)bytes_in / secs / (1024.0 * 1024.0);
        int nt = (int)threads;
        /* (one latency per message: a resp message is -P requests) */
        uint64_t samples = mode == MODE_RESP ? requests / (uint64_t)pipeline : requests;
        double p50 = percentile_us(ws, nt, samples, 0.50);
        double p99 = percentile_us(ws, nt, samples, 0.99);
        double p999 = percentile_us(ws, nt, samples, 0.999);
        uint64_t mx = 0;
        for (int t = 0; t < nt; t++)
            if (ws[t].max_ns > mx) mx = ws[t].max_ns;
        const char *name = mode == MODE_ECHO       ? "echo"
                           : mode == MODE_PINGPONG ? "pingpong"
                           : resp_get              ? "resp-get"
                                                   : "resp-set";
        printf("LOAD %s conns=%ld size=%ld duration_s=%.2f requests=%llu req_per_s=%.0f "
               "mib_per_s=%.2f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f errors=%llu\n",
               name, conns, size, secs, (unsigned long long)requests, rps, mib, p50, p99, p999,
               (double)mx / 1000.0, (unsigned long long)errors);
        printf("%s: %ld connections x %ld B, %.2f s: %.0f req/s, %.2f MiB/s, latency p50 %.1f "
               "us, p99 %.1f us, p99.9 %.1f us, %llu errors\n",
               name, conns, size, secs, rps, mib, p50, p99, p999, (unsigned long long)errors);
    }
    for (long t = 0; t < threads; t++) {
        free(ws[t].rbuf);
        free(ws[t].hist);
        close(ws[t].epfd);
    }
    free(ws);
    free(all);
    if (expect != msg) free(expect);
    free(msg);
    return 0;
}
