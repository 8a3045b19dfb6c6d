/*
 * http_hello.c - an HTTP/1.1 hello-world server on ekiden's service layer: the
 * HTTP codec (on llhttp), the framed server and a service of a few lines.
 *
 *   http_hello [address]     (default 127.0.0.1:8080; port 0 picks a free one,
 *                             printed on the first line)
 *
 *   GET /        200 "Hello, World!"
 *   POST any     200 with the request's body as the response's (Content-Length
 *                or chunked request bodies; "Expect: 100-continue" is answered)
 *   GET /stream  a chunked response of three frames (a streaming response)
 *   other        404
 *
 * Keep-alive (HTTP/1.1 by default, HTTP/1.0 with "Connection: keep-alive") and
 * pipelining are the codec's and the server's: the service sees one request at a
 * time and answers it. SIGINT or SIGTERM shut the server down gracefully.
 */
#include <ekiden.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The body every GET / answers: one immutable slice, shared by reference. */
static ek_bytes *hello_body;

/* A response future that is ready at once. */
static int ready_poll(void *state, ek_cx *cx, void **out)
{
    ek_msg **slot = state;
    *out = *slot;
    *slot = NULL;
    return EK_OK;
}

static void ready_drop(void *state)
{
    ek_msg **slot = state;
    ek_msg_free(*slot);
    free(slot);
}

static int hello_ready(void *self, ek_cx *cx)
{
    return EK_OK;
}

static int is(const char *s, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(s, want, n) == 0;
}

/* The response to req (consumed). */
static int answer(ek_msg *req, ek_msg **out)
{
    const char *method, *target;
    size_t mlen, tlen;
    ek_msg_http_method(req, &method, &mlen);
    ek_msg_http_target(req, &target, &tlen);
    ek_msg *resp = NULL;
    int rc;
    if (is(method, mlen, "POST")) {
        ek_bytes *body = NULL;
        rc = ek_msg_http_response(200, NULL, 0, 11, &resp);
        if (rc == EK_OK) rc = ek_msg_payload(req, &body);
        if (rc == EK_OK) rc = ek_bytes_clone(body, &body); /* the request's bytes, no copy */
        if (rc == EK_OK) rc = ek_msg_http_set_body(resp, body);
    } else if ((is(method, mlen, "GET") || is(method, mlen, "HEAD")) && is(target, tlen, "/")) {
        ek_bytes *body = NULL;
        rc = ek_msg_http_response(200, NULL, 0, 11, &resp);
        if (rc == EK_OK) rc = ek_msg_http_add_header(resp, "Content-Type", 12, "text/plain", 10);
        if (rc == EK_OK) rc = ek_bytes_clone(hello_body, &body);
        if (rc == EK_OK) rc = ek_msg_http_set_body(resp, body);
    } else if (is(method, mlen, "GET") && is(target, tlen, "/stream")) {
        /* A streaming response: the head, then chunks; dropping the sender ends
         * it. A real producer would be another task sending as data comes. */
        ek_mpsc_sender *tx = NULL;
        ek_msg *head = NULL, *chunk = NULL;
        rc = ek_msg_stream(4, &tx, &resp);
        if (rc == EK_OK) rc = ek_msg_http_response(200, NULL, 0, 11, &head);
        if (rc == EK_OK) rc = ek_mpsc_try_send(tx, head);
        for (int i = 0; i < 3 && rc == EK_OK; i++) {
            char text[32];
            int n = snprintf(text, sizeof text, "chunk %d\n", i);
            rc = ek_msg_bytes_copy(text, (size_t)n, &chunk);
            if (rc == EK_OK) rc = ek_mpsc_try_send(tx, chunk);
        }
        ek_mpsc_sender_drop(tx);
    } else {
        rc = ek_msg_http_response(404, NULL, 0, 11, &resp);
        if (rc == EK_OK) rc = ek_msg_http_set_body_copy(resp, "Not Found\n", 10);
    }
    ek_msg_free(req);
    if (rc != EK_OK) {
        ek_msg_free(resp);
        return rc;
    }
    *out = resp;
    return EK_OK;
}

static int hello_call(void *self, ek_msg *req, ek_future **resp)
{
    ek_msg **slot = malloc(sizeof *slot);
    if (slot == NULL) {
        ek_msg_free(req);
        return EK_ENOMEM;
    }
    int rc = answer(req, slot);
    if (rc != EK_OK) {
        free(slot);
        return rc;
    }
    return ek_future_new(ready_poll, ready_drop, slot, resp);
}

static int hello_clone(void *self, void **out)
{
    *out = NULL;
    return EK_OK;
}

static const ek_service_vtable hello_vtable = {.poll_ready = hello_ready, .call = hello_call};

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:8080";
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
    int rc = ek_bytes_copy("Hello, World!", 13, &hello_body);
    if (rc == EK_OK) rc = ek_runtime_new(NULL, &rt);
    if (rc == EK_OK) rc = ek_tcp_listen(rt, addr, &listener);
    if (rc == EK_OK) rc = ek_codec_http_server(0, 0, EK_HTTP_DATE, &codec);
    if (rc == EK_OK) rc = ek_service_new_shareable(&hello_vtable, NULL, hello_clone, &svc);
    if (rc == EK_OK) {
        rc = ek_server_serve(rt, listener, codec, svc, NULL, &server);
        listener = NULL;
        codec = NULL;
        svc = NULL;
    }
    if (rc != EK_OK) {
        fprintf(stderr, "http_hello: %s: %s\n", addr, ek_strerror(rc));
        ek_codec_free(codec);
        ek_tcp_listener_free(listener);
        ek_runtime_free(rt);
        ek_bytes_release(hello_body);
        return 1;
    }
    ek_sockaddr *local = NULL;
    char text[EK_SOCKADDR_STRLEN] = "";
    if (ek_sockaddr_new(&local) == EK_OK && ek_server_local_addr(server, local) == EK_OK)
        ek_sockaddr_format(local, text, sizeof text);
    ek_sockaddr_free(local);
    printf("http_hello: listening on %s\n", text);
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    rc = ek_server_shutdown(server, 1000);
    ek_server_free(server);
    ek_runtime_free(rt);
    ek_bytes_release(hello_body);
    return rc == EK_OK ? 0 : 1;
}
