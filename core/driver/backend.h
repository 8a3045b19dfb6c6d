/*
 * backend.h - the private contract a reactor backend implements (epoll.c on
 * Linux; kqueue.c and io_uring would be one file each). Like redis's aeApi*:
 * create, register, deregister, poll with timeout, wake, name, free.
 *
 * Every fd is registered once for read and write readiness, edge-triggered, with
 * an opaque token (the ek__io pointer). The backend also owns the cross-thread
 * wake-up channel (eventfd on Linux): ek__backend_wake may be called from any
 * thread; its wake-ups are delivered as an event with token EK__WAKE_TOKEN.
 */
#ifndef EK_CORE_DRIVER_BACKEND_H
#define EK_CORE_DRIVER_BACKEND_H

#include "../common.h"

typedef struct ek__backend ek__backend;

/* Events taken from the backend per driver turn (Tokio's and mio's default). */
#define EK__DRIVER_EVENTS 1024

typedef struct ek__event {
    void *token;
    uint32_t ready; /* EK__READABLE | EK__WRITABLE | EK__READ_CLOSED | ... (io.h) */
} ek__event;

#define EK__WAKE_TOKEN ((void *)0)

int ek__backend_new(ek__backend **out);
void ek__backend_free(ek__backend *b);
int ek__backend_register(ek__backend *b, int fd, void *token);
int ek__backend_deregister(ek__backend *b, int fd);
/* Wait up to timeout_ms (-1: forever) and fill at most n events (n is at most
 * EK__DRIVER_EVENTS: a backend may size its buffer by it); returns the count (0
 * on timeout or EINTR) or a negative errno. A negative return means the backend
 * is broken (its own descriptor or the arguments are bad), not that the caller
 * should retry: the driver aborts with the reason (see driver.c). */
int ek__backend_poll(ek__backend *b, ek__event *events, int n, int timeout_ms);
/* Make a concurrent or the next ek__backend_poll return. Any thread. */
void ek__backend_wake(ek__backend *b);
/* Consume wake-ups after EK__WAKE_TOKEN was seen. */
void ek__backend_clear_wake(ek__backend *b);
const char *ek__backend_name(void);

#endif
