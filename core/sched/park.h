/*
 * park.h - parking a thread: in the driver if it is free (epoll_wait with the
 * next timer as timeout), else on the parker's own condvar. Unpark is targeted:
 * it swaps the state to NOTIFIED and then signals the condvar or wakes the
 * driver, depending on where the thread sleeps. A notification that arrives
 * before park is kept, so park returns at once (no lost wake-up).
 */
#ifndef EK_CORE_SCHED_PARK_H
#define EK_CORE_SCHED_PARK_H

#include "../common.h"
#include "../driver/driver.h"

enum { EK__PARK_EMPTY, EK__PARK_CONDVAR, EK__PARK_DRIVER, EK__PARK_NOTIFIED };

typedef struct ek__parker {
    _Atomic int state;
#ifndef __linux__
    ek__mutex lock; /* elsewhere a condvar; on Linux a futex on `state` */
    ek__cond cond;
#endif
    ek__driver *driver; /* may be NULL: condvar only */
} ek__parker;

int ek__parker_init(ek__parker *p, ek__driver *driver);
void ek__parker_destroy(ek__parker *p);
/* Sleep until unparked (or, in the driver, until I/O or a timer fires).
 * timeout_ms: -1 forever, 0 just poll the driver. may_drive: try the driver;
 * max_events: how many events that turn may take (ek__driver_turn; unused when
 * the driver is not turned). Returns true if this call turned the driver. */
bool ek__parker_park(ek__parker *p, bool may_drive, int timeout_ms, int max_events);
void ek__parker_unpark(ek__parker *p);

#endif
