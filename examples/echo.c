/*
 * echo.c - the echo server from Tokio's README, in C on ekiden.
 *
 *   echo [address]        (default 127.0.0.1:8080; port 0 picks a free one)
 *
 * One task accepts connections; each connection gets its own task that reads
 * into a buffer and writes the bytes back until the peer closes.
 */
#include <ekiden.h>

#include <stdio.h>
#include <stdlib.h>

#ifndef ECHO_BUF_SIZE
#define ECHO_BUF_SIZE 1024 /* as Tokio's README (bench/ also builds a 64 KiB one) */
#endif

typedef struct conn {
    ek_tcp_stream *socket;
    char buf[ECHO_BUF_SIZE];
    size_t len, off; /* buf[off..len) was read but not yet written back */
} conn;

static int conn_poll(void *state, ek_cx *cx, void **out)
{
    conn *c = state;
    for (;;) {
        /* Write the data back (write_all). */
        while (c->off < c->len) {
            size_t n;
            int rc = ek_tcp_write(c->socket, cx, c->buf + c->off, c->len - c->off, &n);
            if (rc == EK_PENDING) return rc;
            if (rc != EK_OK) {
                fprintf(stderr, "failed to write to socket; err = %s\n", ek_strerror(rc));
                return rc;
            }
            c->off += n;
        }
        /* Read more; 0 bytes means the peer closed. */
        int rc = ek_tcp_read(c->socket, cx, c->buf, sizeof c->buf, &c->len);
        if (rc == EK_PENDING) return rc;
        if (rc != EK_OK) {
            fprintf(stderr, "failed to read from socket; err = %s\n", ek_strerror(rc));
            return rc;
        }
        if (c->len == 0) return EK_OK;
        c->off = 0;
    }
}

/* Runs when the task ends or is cancelled: closes the socket. */
static void conn_drop(void *state)
{
    conn *c = state;
    ek_tcp_free(c->socket);
    free(c);
}

static int accept_loop(void *listener, ek_cx *cx, void **out)
{
    for (;;) {
        ek_tcp_stream *socket;
        int rc = ek_tcp_accept(listener, cx, &socket, NULL);
        if (rc != EK_OK) return rc;    /* EK_PENDING, or the listener failed */
        ek_tcp_set_nodelay(socket, 1); /* echo each message at once (no Nagle delay) */
        conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            ek_tcp_free(socket);
            continue;
        }
        c->socket = socket;
        ek_spawn(ek_cx_runtime(cx), conn_poll, conn_drop, c, NULL, NULL);
    }
}

static void listener_drop(void *listener)
{
    ek_tcp_listener_free(listener);
}

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:8080";
    ek_runtime *rt;
    ek_tcp_listener *listener;
    ek_future *server;
    int rc = ek_runtime_new(NULL, &rt);
    if (rc == EK_OK) rc = ek_tcp_listen(rt, addr, &listener);
    if (rc != EK_OK) {
        fprintf(stderr, "echo: %s: %s\n", addr, ek_strerror(rc));
        return 1;
    }

    ek_sockaddr *local;
    char text[EK_SOCKADDR_STRLEN];
    ek_sockaddr_new(&local);
    ek_tcp_listener_local_addr(listener, local);
    ek_sockaddr_format(local, text, sizeof text);
    ek_sockaddr_free(local);
    printf("echo: listening on %s\n", text);
    fflush(stdout);

    rc = ek_future_new(accept_loop, listener_drop, listener, &server);
    if (rc == EK_OK) rc = ek_block_on(rt, server, NULL);
    fprintf(stderr, "echo: %s\n", ek_strerror(rc));
    ek_runtime_free(rt);
    return 1;
}
