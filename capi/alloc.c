/*
 * alloc.c - the replaceable allocator. Every allocation of the library goes
 * through these four pointers, so tests can count allocations and inject
 * failure. They are read on every allocation from any thread and replaced only
 * while no object is alive (documented contract), so relaxed loads suffice; the
 * atomics only keep the compiler and TSan honest about the occasional swap.
 */
#include "common.h"

#include <stdlib.h>

static _Atomic(ek_malloc_fn) a_malloc = malloc;
static _Atomic(ek_realloc_fn) a_realloc = realloc;
static _Atomic(ek_calloc_fn) a_calloc = calloc;
static _Atomic(ek_free_fn) a_free = free;

int ek_set_allocator(ek_malloc_fn malloc_fn, ek_realloc_fn realloc_fn, ek_calloc_fn calloc_fn,
                     ek_free_fn free_fn)
{
    int given =
        (malloc_fn != NULL) + (realloc_fn != NULL) + (calloc_fn != NULL) + (free_fn != NULL);
    if (given == 0) {
        malloc_fn = malloc;
        realloc_fn = realloc;
        calloc_fn = calloc;
        free_fn = free;
    } else if (given != 4) {
        return EK_EINVAL;
    }
    atomic_store(&a_malloc, malloc_fn);
    atomic_store(&a_realloc, realloc_fn);
    atomic_store(&a_calloc, calloc_fn);
    atomic_store(&a_free, free_fn);
    return EK_OK;
}

void *ek__malloc(size_t size)
{
    return atomic_load_explicit(&a_malloc, memory_order_relaxed)(size ? size : 1);
}
void *ek__calloc(size_t count, size_t size)
{
    return atomic_load_explicit(&a_calloc, memory_order_relaxed)(count ? count : 1,
                                                                 size ? size : 1);
}
void *ek__realloc(void *ptr, size_t size)
{
    return atomic_load_explicit(&a_realloc, memory_order_relaxed)(ptr, size ? size : 1);
}
bool ek__alloc_is_default(void)
{
    return atomic_load_explicit(&a_malloc, memory_order_relaxed) == malloc;
}

void ek__free(void *ptr)
{
    if (ptr) atomic_load_explicit(&a_free, memory_order_relaxed)(ptr);
}
