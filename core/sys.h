/*
 * sys.h - the system calls on the per-message path, without glibc's
 * cancellation wrappers (private).
 *
 * glibc makes recv(2), recvfrom(2), sendmsg(2) and epoll_wait(2) cancellation
 * points: in a multi-threaded process each call switches the thread to
 * asynchronous cancellation and back (two atomic read-modify-writes on the
 * thread's cancel word, about 20 instructions a call; three calls per echo
 * round trip). Ekiden never cancels a thread, and its sockets are non-blocking,
 * so recv and sendmsg are no wait a cancel could interrupt; a thread cancelled
 * inside the driver's epoll_wait would leave the driver locked, which no
 * caller may do anyway. So these go to the kernel through syscall(2), which
 * is not a cancellation point. Under a sanitizer the libc calls stay: ASan
 * checks the buffers through its recv/sendmsg interceptors and TSan takes its
 * happens-before edges from epoll_ctl/epoll_wait.
 */
#ifndef EK_SYS_H
#define EK_SYS_H

#include <sys/epoll.h>
#include <sys/socket.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define EK__SYS_LIBC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define EK__SYS_LIBC 1
#endif
#endif

#if defined(EK__SYS_LIBC) || !defined(__linux__)
static inline ssize_t ek__sys_recvfrom(int fd, void *buf, size_t len, int flags,
                                       struct sockaddr *from, socklen_t *alen)
{
    return recvfrom(fd, buf, len, flags, from, alen);
}
static inline ssize_t ek__sys_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    return sendmsg(fd, msg, flags);
}
static inline int ek__sys_epoll_wait(int epfd, struct epoll_event *ev, int n, int timeout_ms)
{
    return epoll_wait(epfd, ev, n, timeout_ms);
}
#else
#include <sys/syscall.h>
#include <unistd.h>
/* Same results and errno as the libc calls. */
static inline ssize_t ek__sys_recvfrom(int fd, void *buf, size_t len, int flags,
                                       struct sockaddr *from, socklen_t *alen)
{
    return syscall(SYS_recvfrom, fd, buf, len, flags, from, alen);
}
static inline ssize_t ek__sys_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    return syscall(SYS_sendmsg, fd, msg, flags);
}
/* epoll_pwait with no signal mask is epoll_wait (the only form on arm64). */
static inline int ek__sys_epoll_wait(int epfd, struct epoll_event *ev, int n, int timeout_ms)
{
    return (int)syscall(SYS_epoll_pwait, epfd, ev, n, timeout_ms, (void *)0, (size_t)8);
}
#endif

#endif
