/*
 * epoll_echo.c - a hand-written, single-purpose epoll echo server: the bare-metal
 * limit the runtimes are measured against.
 *
 *   epoll_echo HOST:PORT [threads]
 *
 * One thread per core by default (or `threads`), each with its own SO_REUSEPORT
 * listener and its own edge-triggered epoll set, so the kernel spreads the
 * connections and no state is shared. TCP_NODELAY on every connection. A
 * connection reads into a 64 KiB buffer and writes it back; when the socket will
 * not take it all, the rest waits for EPOLLOUT and reading pauses (back-pressure).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE   65536
#define MAX_EVENTS 256

struct conn {
    int fd;
    size_t pending_off, pending_len; /* unwritten echo bytes in buf */
    unsigned char buf[BUF_SIZE];
};

struct server {
    pthread_t thread;
    int lfd;
    int epfd;
};

static struct addrinfo *g_addr;

static void conn_close(struct server *s, struct conn *c)
{
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Write what is pending. 1: all written; 0: would block; -1: error. */
static int flush_pending(struct conn *c)
{
    while (c->pending_len > 0) {
        ssize_t n = send(c->fd, c->buf + c->pending_off, c->pending_len, MSG_NOSIGNAL);
        if (n > 0) {
            c->pending_off += (size_t)n;
            c->pending_len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            return -1;
        }
    }
    return 1;
}

/* Edge-triggered: read until EAGAIN, echoing each chunk, unless a write blocks. */
static void conn_ready(struct server *s, struct conn *c)
{
    int r = flush_pending(c);
    if (r < 0) {
        conn_close(s, c);
        return;
    }
    if (r == 0) return; /* wait for EPOLLOUT; the next edge resumes reading */
    for (;;) {
        ssize_t n = recv(c->fd, c->buf, BUF_SIZE, 0);
        if (n > 0) {
            c->pending_off = 0;
            c->pending_len = (size_t)n;
            r = flush_pending(c);
            if (r < 0) {
                conn_close(s, c);
                return;
            }
            if (r == 0) return;
        } else if (n == 0) {
            conn_close(s, c);
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            conn_close(s, c);
            return;
        }
    }
}

static void accept_all(struct server *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) perror("epoll_echo: accept");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->pending_off = c->pending_len = 0;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = c};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(c);
        }
    }
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(s->epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_echo: epoll_wait");
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL)
                accept_all(s);
            else
                conn_ready(s, events[i].data.ptr);
        }
    }
}

/* Every server in bench/ listens with the same backlog (docs/benchmarks.md). */
#define BACKLOG 1024

static int make_listener(void)
{
    int fd = socket(g_addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, g_addr->ai_addr, g_addr->ai_addrlen) != 0 || listen(fd, BACKLOG) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:8080";
    long threads = argc > 2 ? strtol(argv[2], NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1 || threads > 1024) threads = 1;

    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host) {
        fprintf(stderr, "usage: epoll_echo HOST:PORT [threads]\n");
        return 2;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    int gai = getaddrinfo(host, colon + 1, &hints, &g_addr);
    if (gai != 0) {
        fprintf(stderr, "epoll_echo: %s: %s\n", addr, gai_strerror(gai));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct server *servers = calloc((size_t)threads, sizeof *servers);
    if (!servers) return 1;
    for (long i = 0; i < threads; i++) {
        struct server *s = &servers[i];
        s->lfd = make_listener();
        s->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (s->lfd < 0 || s->epfd < 0) {
            perror("epoll_echo: listen");
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = NULL};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev) != 0) {
            perror("epoll_echo: epoll_ctl");
            return 1;
        }
    }
    for (long i = 1; i < threads; i++)
        if (pthread_create(&servers[i].thread, NULL, server_main, &servers[i]) != 0) {
            perror("epoll_echo: pthread_create");
            return 1;
        }
    server_main(&servers[0]);
    return 0;
}
