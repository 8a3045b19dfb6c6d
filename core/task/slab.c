/*
 * slab.c - the runtime's cell allocator (interface in slab.h).
 *
 * Why. A timer is a task cell plus a sleep future, allocated by the thread
 * that spawns it and freed by the worker that completes it. glibc's per-thread
 * caches hold 7 blocks per size, so such frees fall through to the allocating
 * arena under its lock, and the allocating thread consolidates and locks too
 * (bench/ekiden_rt's time.million_timers spent a third of its instructions in
 * malloc and free). Here a cell goes back to the heap that carved it without a
 * lock, and is carved again without one.
 *
 * Layout. Memory comes from ek__malloc in segments of EK__SEG_CHUNKS chunks of
 * EK__SLAB_CHUNK bytes, each chunk aligned to its size, so that a cell's chunk
 * is its address rounded down. A chunk starts with a header {heap, class} and
 * holds cells of one size class (16-byte steps up to EK__SLAB_MAX_CELL; the
 * classes of whole cache lines, 64, 128, 192 and 256 bytes, start on a line,
 * 128 and 256 on a pair of lines: first_cell_offset). Each
 * heap keeps, per class: `free` (a list through the cells' first word), the
 * uncarved rest of its current chunk (`bump` .. `end`), and `remote` (an atomic
 * stack that other threads push freed cells onto).
 *
 * Invariants.
 *   1. A chunk's header is written once, by the heap's owner, before the first
 *      cell of the chunk leaves ek__slab_alloc, and never again until the slab
 *      is destroyed. A thread that frees a cell got it through whatever
 *      synchronisation handed the cell over (a run queue, a lock, a release
 *      store), which orders that write before its read of the header.
 *   2. A free cell is in exactly one of: its heap's `free` list, its heap's
 *      `remote` stack, or the uncarved range; a cell in use is in none.
 *   3. `free`, `nfree`, `bump` and `end` of a heap are touched only by its
 *      owner: the one thread that passes the heap as `mine` (the shared heap:
 *      whoever holds the slab's lock). A free by a thread without a heap of
 *      the cell's slab pushes onto the carving heap's `remote` (the shared
 *      heap is never `mine` for a free: its cells go back through `remote`).
 *   4. `remote` is a multi-producer stack whose single consumer (the owner)
 *      takes it whole with an exchange: nothing is ever popped from the middle,
 *      so a push cannot suffer ABA. Pushes are release CASes; the exchange is
 *      an acquire; every push after the first is a read-modify-write in the
 *      release sequence of the first, so the owner sees the link words of
 *      every cell it takes (and every write made to the cells before their
 *      free).
 *   5. Chunks, heaps and the slab are freed only by ek__slab_destroy, when no
 *      cell is in use (the runtime's last reference; each cell holds one, and
 *      is freed before that reference is dropped).
 *   6. A heap's `free` list may hold cells another heap of the same slab
 *      carved (a cell's chunk header names its carver, whatever list it is
 *      on): its owner keeps a freed cell of another heap while `nfree` is
 *      below EK__SLAB_KEEP, so that a cell made on one worker and completed on
 *      another is reused, still in the cache, by the thread that touched it
 *      last (chained spawns hopping between workers missed the cache on every
 *      cell that came back through `remote`). Memory stays bounded: `nfree`
 *      counts every push and is lowered only by pops, so the cells of other
 *      heaps a list holds beyond its pops never exceed EK__SLAB_KEEP per
 *      class; a thread that frees much and allocates little sends the rest
 *      home. Cells of another slab are never kept (that slab may go first).
 *
 * Under AddressSanitizer a free cell is poisoned except its link word, so a use
 * after free of a cell is reported as it would be for malloc'd memory.
 */
#include "slab.h"

#ifdef EK__SLAB_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

__attribute__((tls_model("initial-exec"))) _Thread_local ek__slab_heap *ek__slab_mine;

#define EK__SEG_CHUNKS 16u
#define EK__CHUNK_HDR  16u
#define EK__SLAB_LINE  64u

typedef ek__slab_chunk_hdr chunk_hdr;
_Static_assert(sizeof(chunk_hdr) <= EK__CHUNK_HDR, "chunk header fits its slot");

struct ek__slab {
    ek__mutex lock;       /* the shared heap, the chunk supply, the lists */
    ek__slab_heap shared; /* for threads without a heap of their own */
    void *segments;       /* raw ek__malloc blocks, linked through their first word */
    char *next_chunk;     /* the newest segment's chunks not handed out */
    unsigned chunks_left;
    size_t chunks;
    ek__slab_heap *heaps; /* made by ek__slab_heap_new */
};

static void **link_of(void *cell)
{
    return (void **)cell;
}

static void heap_init(ek__slab_heap *h, ek__slab *s)
{
    memset(h, 0, sizeof *h);
    h->slab = s;
    for (unsigned c = 0; c < EK__SLAB_CLASSES; c++) atomic_init(&h->remote[c], NULL);
}

int ek__slab_new(ek__slab **out)
{
    ek__slab *s = ek__malloc(sizeof *s);
    if (s == NULL) return EK_ENOMEM;
    memset(s, 0, sizeof *s);
    int rc = ek__mutex_init(&s->lock);
    if (rc != 0) {
        ek__free(s);
        return rc;
    }
    heap_init(&s->shared, s);
    *out = s;
    return EK_OK;
}

void ek__slab_destroy(ek__slab *s)
{
    if (s == NULL) return;
    ek__slab_heap *h = s->heaps;
    while (h != NULL) {
        ek__slab_heap *next = h->next;
        ek__free(h);
        h = next;
    }
    void *seg = s->segments;
    while (seg != NULL) {
        void *next = *link_of(seg);
        /* Cells freed under ASan were poisoned; the allocator's own free
         * re-poisons the block, but unpoison first so that it may read it. */
        UNPOISON(seg, (EK__SEG_CHUNKS + 1) * EK__SLAB_CHUNK);
        ek__free(seg);
        seg = next;
    }
    ek__mutex_destroy(&s->lock);
    ek__free(s);
}

ek__slab_heap *ek__slab_heap_new(ek__slab *s)
{
    ek__slab_heap *h = ek__malloc(sizeof *h);
    if (h == NULL) return NULL;
    heap_init(h, s);
    ek__mutex_lock(&s->lock);
    h->next = s->heaps;
    s->heaps = h;
    ek__mutex_unlock(&s->lock);
    return h;
}

ek__slab *ek__slab_of(const ek__slab_heap *h)
{
    return h->slab;
}

size_t ek__slab_chunks(ek__slab *s)
{
    ek__mutex_lock(&s->lock);
    size_t n = s->chunks;
    ek__mutex_unlock(&s->lock);
    return n;
}

/* A fresh chunk (under s->lock), or NULL if ek__malloc failed. */
static char *chunk_take_locked(ek__slab *s)
{
    if (s->chunks_left == 0) {
        /* One chunk more than the segment holds, so that EK__SEG_CHUNKS aligned
         * chunks fit after the link word wherever the block starts (malloc
         * gives 16-byte alignment, so the aligned start is at most one chunk
         * in). Pages never touched are not resident. */
        char *raw = ek__malloc((EK__SEG_CHUNKS + 1) * EK__SLAB_CHUNK);
        if (raw == NULL) return NULL;
        *link_of(raw) = s->segments;
        s->segments = raw;
        uintptr_t first = ((uintptr_t)raw + sizeof(void *) + EK__SLAB_CHUNK - 1) &
                          ~(uintptr_t)(EK__SLAB_CHUNK - 1);
        s->next_chunk = (char *)first;
        s->chunks_left = EK__SEG_CHUNKS;
    }
    char *c = s->next_chunk;
    s->next_chunk += EK__SLAB_CHUNK;
    s->chunks_left--;
    s->chunks++;
    return c;
}

/* Where the first cell of a class-c chunk starts. Cells whose size is a
 * multiple of a cache line start on a line (64 bytes in: the header's line is
 * given up, 48 bytes of the chunk), so that each of them holds whole lines and
 * no two cells share one: an inline task's state (EK_SPAWN_INLINE_MAX), written
 * by every poll, then never sits on the line of the next cell's hot window
 * (core/task/task.c). Multiples of 128 bytes start on a pair of lines (128 in,
 * 112 bytes given up): x86's adjacent-line prefetcher fetches lines in aligned
 * pairs, which is why Tokio aligns its task cells (and crossbeam its padding)
 * to 128 bytes there; a 128-byte inline task then shares no pair either. Other
 * sizes start right after the header. */
static size_t first_cell_offset(unsigned c)
{
    size_t size = (size_t)(c + 1) * EK__SLAB_GRAIN;
    if (size % (2 * EK__SLAB_LINE) == 0) return 2 * EK__SLAB_LINE;
    return size % EK__SLAB_LINE == 0 ? EK__SLAB_LINE : EK__CHUNK_HDR;
}

/* The slow path of heap_alloc: a new chunk for class c of h. */
static bool heap_refill(ek__slab_heap *h, unsigned c, bool locked)
{
    ek__slab *s = h->slab;
    if (!locked) ek__mutex_lock(&s->lock);
    char *chunk = chunk_take_locked(s);
    if (!locked) ek__mutex_unlock(&s->lock);
    if (chunk == NULL) return false;
    /* Invariant 1: written before any cell of it is handed out. */
    chunk_hdr *hdr = (chunk_hdr *)(void *)chunk;
    hdr->heap = h;
    hdr->cls = c;
    h->bump[c] = chunk + first_cell_offset(c);
    h->end[c] = chunk + EK__SLAB_CHUNK;
    return true;
}

static void *heap_alloc(ek__slab_heap *h, unsigned c, bool locked)
{
    size_t size = (size_t)(c + 1) * EK__SLAB_GRAIN;
    if (h->free[c] == NULL && atomic_load_explicit(&h->remote[c], memory_order_relaxed) != NULL) {
        /* Invariant 4: acquire pairs with the pushes' release. */
        h->free[c] = atomic_exchange_explicit(&h->remote[c], NULL, memory_order_acquire);
    }
    if (h->free[c] != NULL) {
        UNPOISON(h->free[c], size);
        return ek__slab_pop(h, c);
    }
    if ((size_t)(h->end[c] - h->bump[c]) < size && !heap_refill(h, c, locked)) return NULL;
    void *p = h->bump[c];
    h->bump[c] += size;
    return p;
}

void *ek__slab_alloc(ek__slab *s, ek__slab_heap *mine, size_t size)
{
    EK__ASSERT(size > 0 && size <= EK__SLAB_MAX_CELL);
    unsigned c = (unsigned)((size - 1) / EK__SLAB_GRAIN);
    if (mine != NULL && mine->slab == s) return heap_alloc(mine, c, false);
    ek__mutex_lock(&s->lock);
    void *p = heap_alloc(&s->shared, c, true);
    ek__mutex_unlock(&s->lock);
    return p;
}

void ek__slab_free(ek__slab_heap *mine, void *cell)
{
    if (cell == NULL) return;
    const chunk_hdr *hdr = ek__slab_hdr(cell);
    /* Before the push: once pushed, the owner may carve it again at once. */
    POISON((char *)cell + sizeof(void *), (size_t)(hdr->cls + 1) * EK__SLAB_GRAIN - sizeof(void *));
    ek__slab_push(mine, hdr->heap, hdr->cls, cell);
}
