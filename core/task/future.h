/*
 * future.h - heap futures (ek_future), the composable form of a future.
 *
 * Layout: a header {tag, flags, poll, drop, state}. User futures made with
 * ek_future_new point `state` at the user's object. Internal futures (sleep,
 * timeout, join) are made with ek__future_new_inline: their state lives in the
 * same allocation right after the header, and their drop function releases what
 * the state holds but must not free the state itself (ek_future_drop frees the
 * whole block).
 */
#ifndef EK_CORE_TASK_FUTURE_H
#define EK_CORE_TASK_FUTURE_H

#include "../common.h"

#define EK__FUTURE_DONE   0x1u /* returned non-pending once: polling again is EK_ECLOSED */
#define EK__FUTURE_INLINE 0x2u /* state is inline; drop must not free it */
#define EK__FUTURE_CELL   0x4u /* inline, in a runtime cell (ek__future_new_cell) */
#define EK__FUTURE_CACHED 0x8u /* a block of EK__CACHE_SMALL (common.h) */

struct ek_future {
    uint32_t tag; /* EK__TAG_FUTURE */
    uint32_t flags;
    ek_poll_fn poll;
    ek_drop_fn drop; /* may be NULL for inline futures with nothing to release */
    void *state;
};

/* One allocation holding the header and `state_size` zeroed bytes of state
 * (aligned to max_align_t); *state_out points at the state. Errors: EK_ENOMEM. */
int ek__future_new_inline(ek_poll_fn poll, ek_drop_fn drop, size_t state_size, ek_future **out,
                          void **state_out);
/* As ek__future_new_inline, in a cell of rt (rt.h: header + state at most
 * EK__SLAB_MAX_CELL bytes) and holding a reference on rt, whose pointer is the
 * state's first member (the state's type starts with `ek_runtime *rt`; set
 * here). ek_future_drop runs the drop (which must not release that
 * reference), frees the cell, then drops the reference: the cell goes before
 * the reference that keeps its slab. rt must be alive (checked by the caller).
 * Errors: EK_ENOMEM. */
int ek__future_new_cell(ek_runtime *rt, ek_poll_fn poll, ek_drop_fn drop, size_t state_size,
                        ek_future **out, void **state_out);
/* As ek__future_new_cell, but the state after its rt member is not zeroed:
 * the caller writes every field before the future is used (sleep and timeout,
 * whose creation is on a spawn burst's path: the memset was ~20 of a timer's
 * ~570 instructions on the creating thread). */
int ek__future_new_cell_uninit(ek_runtime *rt, ek_poll_fn poll, ek_drop_fn drop, size_t state_size,
                               ek_future **out, void **state_out);

#endif
