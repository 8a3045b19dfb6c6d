/*
 * cells.c - where a runtime's task cells and timer futures come from.
 *
 * With the C library's allocator, from the runtime's slab (task/slab.h): each
 * thread that runs the runtime's tasks owns a heap there (a worker, a thread
 * inside ek_block_on: the heap of its local set, ek__cur.local, which
 * ek__cur_set makes ek__slab_mine), and every other thread uses the slab's
 * shared heap under its lock. A thread with a heap frees into it (its own
 * cells, and a bounded number carved elsewhere: slab.c's invariant 6); every
 * other free sends the cell back to the heap that made it. ek__rt_cell_alloc and ek__rt_cell_free
 * (inline in task/slab.h) choose between the two ways; this file makes the choice.
 *
 * With a user allocator (ek_set_allocator before the runtime was made), every
 * cell is its own ek__malloc, so that the allocator sees (and may fail) each
 * task and timer, as the API promises. EKIDEN_CELL_SLAB=0 turns the slab off,
 * =1 on even with a user allocator (tests run both ways); read when the runtime
 * is made. The choice is fixed for the runtime's life, so a cell is always
 * freed the way it was allocated.
 */
#include "runtime.h"

#include <stdlib.h>

static bool slab_wanted(void)
{
    const char *env = getenv("EKIDEN_CELL_SLAB");
    if (env != NULL && strcmp(env, "0") == 0) return false;
    if (env != NULL && strcmp(env, "1") == 0) return true;
    return ek__alloc_is_default();
}

int ek__rt_cells_init(ek_runtime *rt)
{
    rt->h.slab = NULL;
    if (!slab_wanted()) return EK_OK;
    return ek__slab_new(&rt->h.slab);
}
