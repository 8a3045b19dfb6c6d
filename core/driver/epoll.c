/*
 * epoll.c - the Linux backend: edge-triggered epoll plus an eventfd for
 * cross-thread wake-ups. The eventfd is registered level-triggered with a NULL
 * token, so a wake that races with a poll is never lost: the counter stays
 * non-zero until ek__backend_clear_wake reads it.
 */
#include "backend.h"
#include "io.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct ek__backend {
    int epfd;
    int wakefd;
    struct epoll_event buf[EK__DRIVER_EVENTS];
};

int ek__backend_new(ek__backend **out)
{
    ek__backend *b = ek__malloc(sizeof *b);
    if (!b) return EK_ENOMEM;
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
    *out = b;
    return EK_OK;
}

void ek__backend_free(ek__backend *b)
{
    if (!b) return;
    close(b->wakefd);
    close(b->epfd);
    ek__free(b);
}

int ek__backend_register(ek__backend *b, int fd, void *token)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.ptr = token};
    return epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? ek__err(errno) : EK_OK;
}

int ek__backend_deregister(ek__backend *b, int fd)
{
    /* A non-NULL event keeps pre-2.6.9 kernels happy; cheap. */
    struct epoll_event ev = {0};
    return epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, &ev) < 0 ? ek__err(errno) : EK_OK;
}

int ek__backend_poll(ek__backend *b, ek__event *events, int n, int timeout_ms)
{
    if (n > EK__DRIVER_EVENTS) n = EK__DRIVER_EVENTS;
    int got = epoll_wait(b->epfd, b->buf, n, timeout_ms);
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

void ek__backend_wake(ek__backend *b)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: a wake is pending anyway. */
    while (write(b->wakefd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

void ek__backend_clear_wake(ek__backend *b)
{
    uint64_t v;
    while (read(b->wakefd, &v, sizeof v) < 0 && errno == EINTR) {
    }
}

const char *ek__backend_name(void)
{
    return "epoll";
}
