/*
 * slab.h - fixed-size cells for the runtime's hot objects (task cells, sleep and
 * timeout futures): one slab per runtime, one heap per thread that drives it,
 * frees from any thread. The rules and invariants are at the top of slab.c.
 *
 * A cell is 16 .. EK__SLAB_MAX_CELL bytes, 16-byte aligned (64-byte aligned
 * when its size is a multiple of 64, 128-byte when of 128: such cells share no
 * cache line, nor a pair of lines), with no
 * header of its own (so a 112-byte task costs 112 bytes). A thread that owns a
 * heap of the slab frees into that heap's plain list: every cell of its own,
 * and up to EK__SLAB_KEEP cells per class carved by other heaps (the cells it
 * just touched, still in its cache, for its next allocation, as glibc's
 * per-thread cache keeps them). Every other free pushes the cell back onto the
 * lock-free remote list of the heap that carved it, which the owner takes
 * whole when its own list runs dry. Memory goes back to the allocator
 * (ek__malloc / ek__free) only when the slab is destroyed: a runtime keeps
 * the cells of its peak load until its last reference goes.
 */
#ifndef EK_CORE_TASK_SLAB_H
#define EK_CORE_TASK_SLAB_H

#include "../rt.h"

#define EK__SLAB_MAX_CELL 256u
#define EK__SLAB_GRAIN    16u
#define EK__SLAB_CLASSES  (EK__SLAB_MAX_CELL / EK__SLAB_GRAIN)
/* Cells of other heaps a heap keeps per class (slab.c's invariant 6). */
#define EK__SLAB_KEEP 64u

#if defined(__SANITIZE_ADDRESS__)
#define EK__SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EK__SLAB_ASAN 1
#endif
#endif

typedef struct ek__slab ek__slab;
typedef struct ek__slab_heap ek__slab_heap;

/* A heap (slab.c's invariants). Here only for the inline fast paths below,
 * which touch the owner's `free` lists; everything else is slab.c's. */
struct ek__slab_heap {
    ek__slab *slab;
    ek__slab_heap *next; /* the slab's heaps (under its lock) */
    /* owner only (invariant 3) */
    void *free[EK__SLAB_CLASSES];
    char *bump[EK__SLAB_CLASSES];
    char *end[EK__SLAB_CLASSES];
    /* A lower bound on the length of free[c]: +1 per push, -1 per pop (not
     * below 0); a remote list taken whole adds nothing (invariant 6). */
    unsigned nfree[EK__SLAB_CLASSES];
    /* Apart from the owner's fields: other threads write these. */
    char pad[64];
    _Atomic(void *) remote[EK__SLAB_CLASSES];
};

/* The header at the start of each chunk (its address rounded down to
 * EK__SLAB_CHUNK): written once, before any of its cells is handed out. */
typedef struct ek__slab_chunk_hdr {
    ek__slab_heap *heap;
    unsigned cls;
} ek__slab_chunk_hdr;

/* A new slab. EK_OK, EK_ENOMEM, or a negative errno (mutex). */
int ek__slab_new(ek__slab **out);
/* Free every chunk and heap. No cell may be in use, no thread inside the slab
 * (the runtime calls it when its last reference goes: every cell holds one).
 * NULL is ignored. */
void ek__slab_destroy(ek__slab *s);
/* A heap of s for one thread at a time: the thread that will pass it to
 * ek__slab_alloc and ek__slab_free as its own. It lives until the slab is
 * destroyed; it may change owner when the old one is done with it and
 * synchronised with the new one (thread exit and start, a lock). NULL on
 * allocation failure (the caller then uses the shared heap: h = NULL). */
ek__slab_heap *ek__slab_heap_new(ek__slab *s);
/* The slab a heap belongs to. */
ek__slab *ek__slab_of(const ek__slab_heap *h);
/*
 * A cell of at least `size` bytes (1 .. EK__SLAB_MAX_CELL), not zeroed. `mine`
 * is a heap the calling thread owns, or NULL; a heap of another slab counts as
 * NULL. Without one the cell comes from the slab's shared heap, under its lock.
 * NULL when a new chunk was needed and ek__malloc failed.
 */
void *ek__slab_alloc(ek__slab *s, ek__slab_heap *mine, size_t size);
/* Return a cell (NULL is ignored). Any thread; `mine` as for ek__slab_alloc
 * (the cell's own slab need not be named: the cell's chunk knows it). */
void ek__slab_free(ek__slab_heap *mine, void *cell);
/* Chunks carved so far (each EK__SLAB_CHUNK bytes): for tests and metrics. */
size_t ek__slab_chunks(ek__slab *s);

#define EK__SLAB_CHUNK ((size_t)64 * 1024)

/* The header of the chunk holding `cell`. */
static inline const ek__slab_chunk_hdr *ek__slab_hdr(const void *cell)
{
    return (const ek__slab_chunk_hdr *)(const void *)((uintptr_t)cell &
                                                      ~(uintptr_t)(EK__SLAB_CHUNK - 1));
}

/* Pop the head of `mine`'s class-c list (owner only), or NULL; the caller has
 * checked mine belongs to the cell's slab. Prefetches the next cell's lines:
 * it was most likely freed by another thread (a worker completing a task or
 * dropping a sleep), so that the next allocation's read of its link word and
 * the caller's writes (a task's 112 bytes span two or three lines) do not wait
 * for them. Hints: no fault whatever the address. */
static inline void *ek__slab_pop(ek__slab_heap *mine, unsigned c)
{
    void *p = mine->free[c];
    if (p == NULL) return NULL;
    void *next = *(void **)p;
    mine->free[c] = next;
    if (mine->nfree[c] > 0) mine->nfree[c]--;
    __builtin_prefetch(next, 1);
    __builtin_prefetch((char *)next + 64, 1);
    if ((size_t)(c + 1) * EK__SLAB_GRAIN > 64)
        __builtin_prefetch((char *)next + (size_t)(c + 1) * EK__SLAB_GRAIN - 1, 1);
    return p;
}

/* Free `cell` of class c, carved by heap `h`, from a thread owning `mine`
 * (or NULL): onto mine's list when the cell is its own, or when it is of the
 * same slab and mine keeps fewer than EK__SLAB_KEEP (invariant 6); otherwise
 * onto h's remote stack (invariant 4: a release CAS). */
static inline void ek__slab_push(ek__slab_heap *mine, ek__slab_heap *h, unsigned c, void *cell)
{
    if (mine == h || (mine != NULL && mine->slab == h->slab && mine->nfree[c] < EK__SLAB_KEEP)) {
        *(void **)cell = mine->free[c];
        mine->free[c] = cell;
        mine->nfree[c]++;
        return;
    }
    void *head = atomic_load_explicit(&h->remote[c], memory_order_relaxed);
    do {
        *(void **)cell = head;
    } while (!atomic_compare_exchange_weak_explicit(&h->remote[c], &head, cell,
                                                    memory_order_release, memory_order_relaxed));
}

/* The heap the calling thread owns, or NULL: set by the scheduler together
 * with the thread's local set (sched/runtime.h, ek__cur_set), so that only the
 * thread running a local set uses its heap. A heap of another runtime's slab
 * is harmless (ek__slab_alloc treats it as NULL). */
extern __attribute__((tls_model("initial-exec"))) _Thread_local ek__slab_heap *ek__slab_mine;

/*
 * Cells of a runtime: the memory of an object that holds a reference on rt (a
 * task, a sleep or timeout future), `size` at most EK__SLAB_MAX_CELL bytes, not
 * zeroed; NULL when out of memory. From rt's slab (the handle's, rt.h), or
 * from ek__malloc when the slab is off (a user allocator is installed: see
 * sched/cells.c). Free a cell with ek__rt_cell_free on the same rt before that
 * reference is dropped. Any thread.
 */
static inline void *ek__rt_cell_alloc(ek_runtime *rt, size_t size)
{
    ek__slab *s = ek__rt_slab(rt);
    if (s == NULL) return ek__malloc(size);
#ifndef EK__SLAB_ASAN
    /* The fast path inline (a cell on the own heap's free list), as
     * ek__slab_alloc's first case without its call: ~16 of the ~40
     * instructions a cell cost on a spawn burst (time.million_timers). Under
     * ASan the call unpoisons the cell. */
    ek__slab_heap *h = ek__slab_mine;
    if (h != NULL && h->slab == s) {
        void *p = ek__slab_pop(h, (unsigned)((size - 1) / EK__SLAB_GRAIN));
        if (p != NULL) return p;
    }
#endif
    return ek__slab_alloc(s, ek__slab_mine, size);
}
static inline void ek__rt_cell_free(ek_runtime *rt, void *cell)
{
    if (ek__rt_slab(rt) == NULL) {
        ek__free(cell);
        return;
    }
#ifndef EK__SLAB_ASAN
    /* ek__slab_free inline (under ASan the call poisons the cell). */
    if (cell == NULL) return;
    const ek__slab_chunk_hdr *hdr = ek__slab_hdr(cell);
    ek__slab_push(ek__slab_mine, hdr->heap, hdr->cls, cell);
#else
    ek__slab_free(ek__slab_mine, cell);
#endif
}

#endif
