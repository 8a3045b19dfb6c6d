/*
 * backend.c - which reactor backend a runtime gets (backend.h): the builder's
 * choice, else EKIDEN_IO_BACKEND, else epoll; io_uring falls back to epoll
 * where this build or the kernel cannot give it.
 */
#include "backend.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Atomic int ek__uring_test_init_error;

bool ek__backend_uring_built(void)
{
#ifdef EK_HAVE_LIBURING
    return true;
#else
    return false;
#endif
}

/* EKIDEN_IO_BACKEND: "uring" (or "io_uring") or "epoll"; anything else (or
 * unset) is the default, epoll, as EKIDEN_WORKER_THREADS ignores bad values. */
static int env_kind(void)
{
    const char *env = getenv("EKIDEN_IO_BACKEND");
    if (env && (strcmp(env, "uring") == 0 || strcmp(env, "io_uring") == 0))
        return EK_IO_BACKEND_URING;
    return EK_IO_BACKEND_EPOLL;
}

#ifdef EK_HAVE_LIBURING
/* /proc/sys/kernel/io_uring_disabled (Linux 6.6): 0 all, 1 only the
 * io_uring_group (the kernel answers EPERM to others: that is a failed init),
 * 2 nobody. */
static bool uring_disabled(void)
{
    int fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char c = '0';
    ssize_t got = read(fd, &c, 1);
    close(fd);
    return got == 1 && c == '2';
}
#endif

int ek__backend_new(int kind, ek__backend **out)
{
    if (kind == EK_IO_BACKEND_DEFAULT) kind = env_kind();
    if (kind != EK_IO_BACKEND_EPOLL && kind != EK_IO_BACKEND_URING) return EK_EINVAL;
#ifdef EK_HAVE_LIBURING
    if (kind == EK_IO_BACKEND_URING && !uring_disabled()) {
        int rc = atomic_load_explicit(&ek__uring_test_init_error, memory_order_relaxed);
        if (rc == EK_OK) rc = ek__uring_ops.create(out);
        /* Our allocator's failure is the caller's (as for every other part of
         * the runtime); anything else is the kernel refusing (ENOSYS, EPERM,
         * the locked-memory limit, no multishot poll): epoll it is. */
        if (rc == EK_OK || rc == EK_ENOMEM) return rc;
    }
#endif
    return ek__epoll_ops.create(out);
}
