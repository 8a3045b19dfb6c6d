/*
 * uv_echo_server.c - a TCP echo server on libuv, written the way a careful libuv
 * user would: one loop, TCP_NODELAY on every connection, reads into a 64 KiB
 * buffer, uv_try_write first and a queued uv_write (owning a copy) only for what
 * the socket would not take at once.
 *
 *   uv_echo_server HOST:PORT
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define READ_BUF 65536

struct conn {
    uv_tcp_t tcp;
    char buf[READ_BUF];
};

struct pending_write {
    uv_write_t req;
    size_t len;
    char data[];
};

static void on_close(uv_handle_t *h)
{
    free(h->data);
}

static void conn_close(struct conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->buf, READ_BUF);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status)
{
    struct pending_write *pw = (struct pending_write *)req;
    struct conn *c = req->handle->data;
    free(pw);
    if (status < 0) {
        conn_close(c);
        return;
    }
    /* resume reading once the queue has drained (back-pressure) */
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0 &&
        !uv_is_closing((uv_handle_t *)&c->tcp)) {
        int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        if (rc != 0 && rc != UV_EALREADY) conn_close(c);
    }
}

static void echo(struct conn *c, const char *data, size_t len)
{
    uv_stream_t *s = (uv_stream_t *)&c->tcp;
    if (uv_stream_get_write_queue_size(s) == 0) {
        int n = uv_try_write(s, &(uv_buf_t){.base = (char *)data, .len = len}, 1);
        if (n == (int)len) return;
        if (n < 0 && n != UV_EAGAIN) {
            conn_close(c);
            return;
        }
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        }
    }
    struct pending_write *pw = malloc(sizeof *pw + len);
    if (!pw) {
        conn_close(c);
        return;
    }
    pw->len = len;
    memcpy(pw->data, data, len);
    uv_buf_t b = uv_buf_init(pw->data, (unsigned)len);
    if (uv_write(&pw->req, s, &b, 1, on_write) != 0) {
        free(pw);
        conn_close(c);
        return;
    }
    uv_read_stop(s); /* until the echo has gone out */
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    if (nread > 0)
        echo(c, buf->base, (size_t)nread);
    else if (nread < 0)
        conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) return;
    struct conn *c = malloc(sizeof *c);
    if (!c) return;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:8080";
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host) {
        fprintf(stderr, "usage: uv_echo_server HOST:PORT\n");
        return 2;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    int port = atoi(colon + 1);
    struct sockaddr_storage ss;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        fprintf(stderr, "uv_echo_server: bad address %s\n", addr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    uv_tcp_init(loop, &server);
    int rc = uv_tcp_bind(&server, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server, 1024 /* as every server in bench/ */, on_connection);
    if (rc != 0) {
        fprintf(stderr, "uv_echo_server: %s: %s\n", addr, uv_strerror(rc));
        return 1;
    }
    return uv_run(loop, UV_RUN_DEFAULT);
}
