/*
 * rt.h - what the runtime offers the other core modules (time, net, sync):
 * references on it, access to its driver and timer wheel, closed checks.
 *
 * Lifetime (DESIGN section 7a). The ek_runtime object is the runtime's internal
 * handle: reference-counted, holding the driver, the time source, the
 * scheduler's queues and the closed flag. The pointer ek_runtime_new returns is
 * the owner's handle: one reference, plus the threads and shutdown.
 * ek_runtime_free ends the threads and drops the owner's reference; every
 * resource (socket, timer future, interval, connect future, task and so join
 * handle, blocking thread) holds a reference of its own, so the memory goes
 * with the last of them, whatever the order of frees. A resource used after
 * shutdown gets EK_ECLOSED from ek__rt_check.
 */
#ifndef EK_CORE_RT_H
#define EK_CORE_RT_H

#include "common.h"

typedef struct ek__driver ek__driver;
typedef struct ek__time ek__time;

/* EK_OK if rt is a live runtime handle, EK_EINVAL if not a runtime, EK_ECLOSED if
 * it has been shut down. */
int ek__rt_check(ek_runtime *rt);
/* ek__rt_check, and on EK_OK a new reference on rt (release it with
 * ek__rt_unref). */
int ek__rt_acquire(ek_runtime *rt);
/* Add a reference from an existing one (rt is known alive). Any thread. */
void ek__rt_ref(ek_runtime *rt);
/* Drop a reference; the last one frees the runtime's memory (its threads ended
 * at shutdown). NULL is ignored. Any thread except, for the last reference, a
 * thread inside one of rt's polls (impossible: a poll holds a reference). */
void ek__rt_unref(ek_runtime *rt);
/* A task was freed: drop the reference the scheduler took for it at spawn (the
 * task layer calls this; the last reference frees the runtime). Any thread. */
void ek__rt_task_unref(ek_runtime *rt);
/*
 * Cells (sched/cells.c): the memory of an object that holds a reference on rt
 * (a task, a sleep or timeout future), `size` at most EK__SLAB_MAX_CELL (256)
 * bytes, not zeroed; NULL when out of memory. From the runtime's slab, or from
 * ek__malloc when the slab is off (a user allocator is installed: see
 * cells.c). Free a cell with ek__rt_cell_free on the same rt before that
 * reference is dropped. Any thread.
 */
void *ek__rt_cell_alloc(ek_runtime *rt, size_t size);
void ek__rt_cell_free(ek_runtime *rt, void *cell);
/* The runtime's driver (I/O) and time source. Valid while a reference is held. */
ek__driver *ek__rt_driver(ek_runtime *rt);
ek__time *ek__rt_time(ek_runtime *rt);
/* Wake the thread parked in the driver (if any) so it recomputes its timeout or
 * handles new work; coalesced and cheap when nobody is parked. Any thread. */
void ek__rt_unpark_driver(ek_runtime *rt);
/* Inhibit test-clock auto-advance while > 0 (blocking jobs in flight). */
void ek__rt_inhibit_auto_advance(ek_runtime *rt, int delta);

#endif
