/*
 * sys.h - the system calls on the per-message path, without glibc's
 * cancellation wrappers (private).
 *
 * glibc makes recv(2), recvfrom(2), sendto(2), sendmsg(2) and epoll_wait(2) cancellation
 * points: in a multi-threaded process each call switches the thread to
 * asynchronous cancellation and back (two atomic read-modify-writes on the
 * thread's cancel word, about 20 instructions a call; three calls per echo
 * round trip). Ekiden never cancels a thread, and its sockets are non-blocking,
 * so recv and sendmsg are no wait a cancel could interrupt; a thread cancelled
 * inside the driver's epoll_wait would leave the driver locked, which no
 * caller may do anyway. So these go to the kernel through the syscall
 * instruction (x86-64; syscall(2) elsewhere), which is no cancellation point. Under a sanitizer the
 * libc calls stay: ASan checks the buffers through its recv/sendmsg interceptors and TSan takes its
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
static inline ssize_t ek__sys_sendto(int fd, const void *buf, size_t len, int flags,
                                     const struct sockaddr *to, socklen_t tolen)
{
    return sendto(fd, buf, len, flags, to, tolen);
}
static inline int ek__sys_epoll_wait(int epfd, struct epoll_event *ev, int n, int timeout_ms)
{
    return epoll_wait(epfd, ev, n, timeout_ms);
}
#else
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
/* The syscall instruction itself, as musl's __syscall6: glibc's syscall(2) is
 * a variadic call that moves every argument once more and reads errno's TLS
 * slot on each call (~15 instructions of an echo round trip's three calls).
 * Returns the kernel's result: a negative errno on failure. */
static inline long ek__sys6(long n, long a1, long a2, long a3, long a4, long a5, long a6)
{
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    long ret;
    __asm__ __volatile__("syscall"
                         : "=a"(ret)
                         : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                         : "rcx", "r11", "memory");
    return ret;
}
/* The libc convention: -1 with errno set. */
static inline long ek__sys_ret(long r)
{
    if (r < 0 && r > -4096) {
        errno = (int)-r;
        return -1;
    }
    return r;
}
#define EK__SYS6(n, a, b, c, d, e, f)                                                              \
    ek__sys_ret(ek__sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f)))
#else
#define EK__SYS6(n, a, b, c, d, e, f) syscall((n), (a), (b), (c), (d), (e), (f))
#endif

/* Same results and errno as the libc calls. */
static inline ssize_t ek__sys_recvfrom(int fd, void *buf, size_t len, int flags,
                                       struct sockaddr *from, socklen_t *alen)
{
    return EK__SYS6(SYS_recvfrom, fd, buf, len, flags, from, alen);
}
static inline ssize_t ek__sys_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    return EK__SYS6(SYS_sendmsg, fd, msg, flags, 0, 0, 0);
}
static inline ssize_t ek__sys_sendto(int fd, const void *buf, size_t len, int flags,
                                     const struct sockaddr *to, socklen_t tolen)
{
    return EK__SYS6(SYS_sendto, fd, buf, len, flags, to, tolen);
}
/* epoll_pwait with no signal mask is epoll_wait (the only form on arm64). */
static inline int ek__sys_epoll_wait(int epfd, struct epoll_event *ev, int n, int timeout_ms)
{
    return (int)EK__SYS6(SYS_epoll_pwait, epfd, ev, n, timeout_ms, (void *)0, (size_t)8);
}
#endif

#endif
