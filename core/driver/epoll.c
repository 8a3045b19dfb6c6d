/*
 * epoll.c - the Linux backend: edge-triggered epoll plus an eventfd for
 * cross-thread wake-ups. The eventfd is registered level-triggered with a NULL
 * token, so a wake that races with a poll is never lost: the counter stays
 * non-zero until ek__backend_clear_wake reads it.
 */
#include "backend.h"
#include "io.h"
#include "sys.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct epoll_backend {
    ek__backend base;
    int epfd;
    int wakefd;
    struct epoll_event buf[EK__DRIVER_EVENTS];
} epoll_backend;

#define EB(b) ((epoll_backend *)(b))

static int ep_create(ek__backend **out)
{
    epoll_backend *b = ek__malloc(sizeof *b);
    if (!b) return EK_ENOMEM;
    b->base.ops = &ek__epoll_ops;
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd < 0) {
        int rc = ek__err(errno);
        ek__free(b);
        return rc;
    }
    b->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (b->wakefd < 0) {
        int rc = ek__err(errno);
        close(b->epfd);
        ek__free(b);
        return rc;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = EK__WAKE_TOKEN};
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->wakefd, &ev) < 0) {
        int rc = ek__err(errno);
        close(b->wakefd);
        close(b->epfd);
        ek__free(b);
        return rc;
    }
    *out = &b->base;
    return EK_OK;
}

static void ep_destroy(ek__backend *be)
{
    epoll_backend *b = EB(be);
    close(b->wakefd);
    close(b->epfd);
    ek__free(b);
}

static int ep_register(ek__backend *b, int fd, void *token, unsigned flags, void **handle)
{
    EK__UNUSED(flags); /* every fd reports readiness; reads are the caller's */
    EK__UNUSED(handle);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.ptr = token};
    return epoll_ctl(EB(b)->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? ek__err(errno) : EK_OK;
}

static int ep_deregister(ek__backend *b, int fd, void *token, void *handle)
{
    EK__UNUSED(token);
    EK__UNUSED(handle);
    /* A non-NULL event keeps pre-2.6.9 kernels happy; cheap. */
    struct epoll_event ev = {0};
    return epoll_ctl(EB(b)->epfd, EPOLL_CTL_DEL, fd, &ev) < 0 ? ek__err(errno) : EK_OK;
}

static int ep_poll(ek__backend *be, ek__event *events, int n, int timeout_ms)
{
    epoll_backend *b = EB(be);
    if (n > EK__DRIVER_EVENTS) n = EK__DRIVER_EVENTS;
    int got = ek__sys_epoll_wait(b->epfd, b->buf, n, timeout_ms);
    if (got < 0) return errno == EINTR ? 0 : ek__err(errno);
    for (int i = 0; i < got; i++) {
        uint32_t e = b->buf[i].events, r = 0;
        if (e & (EPOLLIN | EPOLLPRI)) r |= EK__READABLE;
        if (e & EPOLLOUT) r |= EK__WRITABLE;
        if (e & EPOLLRDHUP) r |= EK__READ_CLOSED;
        if (e & EPOLLHUP) r |= EK__READ_CLOSED | EK__WRITE_CLOSED;
        if (e & EPOLLERR) r |= EK__IO_ERROR;
        events[i].token = b->buf[i].data.ptr;
        events[i].ready = r;
    }
    return got;
}

static void ep_wake(ek__backend *b)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: a wake is pending anyway. */
    while (write(EB(b)->wakefd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

static void ep_clear_wake(ek__backend *b)
{
    uint64_t v;
    while (read(EB(b)->wakefd, &v, sizeof v) < 0 && errno == EINTR) {
    }
}

const ek__backend_ops ek__epoll_ops = {
    .name = "epoll",
    .kind = EK_IO_BACKEND_EPOLL,
    .create = ep_create,
    .destroy = ep_destroy,
    .reg = ep_register,
    .dereg = ep_deregister,
    .poll = ep_poll,
    .wake = ep_wake,
    .clear_wake = ep_clear_wake,
};
