/*
 * rt.h - what the runtime offers the other core modules (time, net, sync):
 * access to its driver and timer wheel, closed checks, thread context.
 */
#ifndef EK_CORE_RT_H
#define EK_CORE_RT_H

#include "common.h"

typedef struct ek__driver ek__driver;
typedef struct ek__time ek__time;

/* EK_OK if rt is a live runtime handle, EK_EINVAL if not a runtime, EK_ECLOSED if
 * it has been shut down. */
int ek__rt_check(ek_runtime *rt);
/* The runtime's driver (I/O) and time source. Valid until ek_runtime_free. */
ek__driver *ek__rt_driver(ek_runtime *rt);
ek__time *ek__rt_time(ek_runtime *rt);
/* Wake the thread parked in the driver (if any) so it recomputes its timeout or
 * handles new work; coalesced and cheap when nobody is parked. Any thread. */
void ek__rt_unpark_driver(ek_runtime *rt);
/* Inhibit test-clock auto-advance while > 0 (blocking jobs in flight). */
void ek__rt_inhibit_auto_advance(ek_runtime *rt, int delta);

#endif
