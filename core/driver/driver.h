/*
 * driver.h - the driver: one reactor backend plus the timer wheel, turned by
 * whichever thread parks in it. At most one thread turns it at a time (a
 * try-lock: the worker that gets it sleeps in epoll_wait with the next timer as
 * timeout; the others sleep on their own condvar, see sched/park.h).
 */
#ifndef EK_CORE_DRIVER_DRIVER_H
#define EK_CORE_DRIVER_DRIVER_H

#include "../common.h"
#include "../time/time.h"
#include "backend.h"

struct ek__io;
typedef struct ek__driver ek__driver;

struct ek__driver {
    ek__backend *be;
    ek__lock turn_lock; /* held by the thread turning the driver (only tried) */
    ek__time *time;
    uint64_t tick;         /* event counter (EK__IO_TICK_MASK bits), under turn_lock */
    atomic_bool signalled; /* a wake-up is pending on the backend */
    atomic_bool closed;    /* the runtime shut down: I/O ops get EK_ECLOSED */
    ek__lock release_lock; /* guards release_list's pushes and takes */
    /* Resources to free at the next turn. Stored under release_lock; a turn
     * peeks at it without the lock (relaxed) and takes the lock only when it
     * is not empty: a push it misses is freed by the next turn. */
    struct ek__io *_Atomic release_list;
    _Atomic uint64_t io_events; /* metric */
    ek__event events[EK__DRIVER_EVENTS];
};

/* io_backend: EK_IO_BACKEND_* (backend.h says how it is chosen). */
int ek__driver_new(ek__time *time, int io_backend, ek__driver **out);
/* Frees pending resources too. No thread may be turning it. */
void ek__driver_free(ek__driver *d);
bool ek__driver_try_lock(ek__driver *d);
void ek__driver_unlock(ek__driver *d);
/* One turn (caller holds the turn lock): free released resources, wait for I/O
 * up to timeout_ms (-1: until the next timer or a wake-up; 0: just look),
 * dispatch readiness, fire due timers. max_events: at most this many events
 * are taken from the backend (clamped to 1..EK__DRIVER_EVENTS); the rest stay
 * in the kernel's ready list, in the order they became ready, for the next
 * turn (a worker takes no more than its run queue can hold: multi_thread.c,
 * "Bounded turns"). The wake-up event counts as one. */
void ek__driver_turn(ek__driver *d, int timeout_ms, int max_events);
/* Wake the thread turning the driver (coalesced). Any thread. */
void ek__driver_unpark(ek__driver *d);
/* The runtime shut down: from now on every I/O readiness poll answers
 * EK_ECLOSED. The memory stays until ek__driver_free (the last reference on the
 * runtime), so that resources deregister and free in any order. */
void ek__driver_close(ek__driver *d);

/* io.c: deliver one readiness event (turn lock held). */
void ek__io_dispatch(struct ek__io *io, uint32_t ready, uint64_t tick);
/* io.c: free a released resource. */
void ek__io_free_released(struct ek__io *io);

#endif
