/*
 * alloc.c - the replaceable allocator. Every allocation of the library goes
 * through these four pointers, so tests can count allocations and inject
 * failure. They are read on every allocation from any thread and replaced only
 * while no object is alive (documented contract), so relaxed loads suffice; the
 * atomics only keep the compiler and TSan honest about the occasional swap.
 */
#include "common.h"

#include <pthread.h>
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

/* ---- per-thread block caches (common.h) ---- */

#if defined(__SANITIZE_ADDRESS__)
#define EK__CACHE_ON 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EK__CACHE_ON 0
#endif
#endif
#ifndef EK__CACHE_ON
#define EK__CACHE_ON 1
#endif

#define EK__CACHE_CLASSES 2

typedef struct ek__cache_block {
    struct ek__cache_block *next;
} ek__cache_block;

typedef struct ek__cache {
    ek__cache_block *head[EK__CACHE_CLASSES];
    unsigned n[EK__CACHE_CLASSES];
    bool keyed; /* the exit hook is set (or could not be: then nothing is cached) */
    bool off;
} ek__cache;

static const size_t cache_size[EK__CACHE_CLASSES] = {EK__CACHE_SMALL_SIZE, EK__CACHE_MSG_SIZE};

static __attribute__((tls_model("initial-exec"))) _Thread_local ek__cache cache_mine;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static pthread_key_t cache_key;
static int cache_key_rc = -1;
static atomic_bool cache_key_made;

/* Blocks in a cache came from the C library's malloc: they go back to its free. */
static void cache_exit(void *arg)
{
    ek__cache *c = arg;
    for (unsigned k = 0; k < EK__CACHE_CLASSES; k++) {
        while (c->head[k]) {
            ek__cache_block *b = c->head[k];
            c->head[k] = b->next;
            free(b);
        }
        c->n[k] = 0;
    }
    c->off = true; /* a free after this (a later destructor) is not cached */
}

static void cache_key_create(void)
{
    cache_key_rc = pthread_key_create(&cache_key, cache_exit);
    atomic_store_explicit(&cache_key_made, cache_key_rc == 0, memory_order_release);
}

/* A library unloaded (dlclose: Lua closes its C modules with the state) while
 * threads with a cache still run must not leave them a destructor in unmapped
 * code (their cached blocks are then lost, as the library's other memory). */
__attribute__((destructor)) static void cache_key_delete(void)
{
    if (atomic_load_explicit(&cache_key_made, memory_order_acquire)) pthread_key_delete(cache_key);
}

void *ek__cache_alloc(unsigned cls)
{
    ek__cache *c = &cache_mine;
    if (EK__CACHE_ON && c->head[cls] != NULL && ek__alloc_is_default()) {
        ek__cache_block *b = c->head[cls];
        c->head[cls] = b->next;
        c->n[cls]--;
        return b;
    }
    return ek__malloc(cache_size[cls]);
}

void ek__cache_free(unsigned cls, void *p)
{
    if (p == NULL) return;
    ek__cache *c = &cache_mine;
    if (!EK__CACHE_ON || c->n[cls] >= EK__CACHE_DEPTH || c->off || !ek__alloc_is_default()) {
        ek__free(p);
        return;
    }
    if (EK__UNLIKELY(!c->keyed)) {
        c->keyed = true;
        pthread_once(&cache_once, cache_key_create);
        if (cache_key_rc != 0 || pthread_setspecific(cache_key, c) != 0) c->off = true;
        if (c->off) {
            ek__free(p);
            return;
        }
    }
    ek__cache_block *b = p;
    b->next = c->head[cls];
    c->head[cls] = b;
    c->n[cls]++;
}
