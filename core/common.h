/*
 * common.h - internal helpers shared by every core module: allocation through
 * the user's allocator, type tags, intrusive lists, locks, time, thread-locals.
 * Nothing here is exported (internal non-static names use the ek__ prefix).
 */
#ifndef EK_CORE_COMMON_H
#define EK_CORE_COMMON_H

#include "ekiden.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* ---- allocation (core/alloc.c) ---- */
void *ek__malloc(size_t size);
void *ek__calloc(size_t count, size_t size);
void *ek__realloc(void *ptr, size_t size);
void ek__free(void *ptr);
/* True while the C library's allocator is the one in use (ek_set_allocator). */
bool ek__alloc_is_default(void);

/*
 * Per-thread caches of freed blocks (core/alloc.c) for objects the hot path
 * makes and frees once per request: a block of class EK__CACHE_SMALL holds
 * EK__CACHE_SMALL_SIZE bytes (a future and a small inline state, an ek_bytes
 * handle), one of EK__CACHE_MSG EK__CACHE_MSG_SIZE (a message: a flat RESP
 * request and its argument vector, a reply; a chunk of a small payload).
 * Any block of the allocator of that size may join a cache (a realloc'd one
 * too): what a block held before does not matter. ek__cache_alloc gives a block of the class's size
 * (not zeroed) from the calling thread's cache, or from the allocator; NULL when out of memory.
 * ek__cache_free takes a block of that class back (NULL ignored; any thread:
 * the block joins the freeing thread's cache, up to EK__CACHE_DEPTH blocks per
 * class, the rest are freed). A thread's cache is freed when it exits. The
 * caches are used only while the C library's allocator is in use (a user's
 * allocator sees every allocation: the calls are then ek__malloc and
 * ek__free) and not under AddressSanitizer (a cached block would hide a use
 * after free). Glibc's own thread cache holds 7 blocks per size: a pipelined
 * batch of 800 requests (16 on each of 50 connections) overflowed it into
 * malloc's slow paths.
 */
#define EK__CACHE_SMALL      0
#define EK__CACHE_MSG        1
#define EK__CACHE_SMALL_SIZE 64u
#define EK__CACHE_MSG_SIZE   192u
#define EK__CACHE_DEPTH      1024u
void *ek__cache_alloc(unsigned cls);
void ek__cache_free(unsigned cls, void *p);

/* Grow a ring buffer of *cap elements of `size` bytes whose len elements start at
 * *head: a new array of twice the room (`first` when empty) holding them in order
 * from index 0 (*ring, *cap and *head updated). EK_OK or EK_ENOMEM (unchanged). */
int ek__ring_grow(void **ring, size_t size, size_t *head, size_t len, size_t *cap, size_t first);

/* ---- misc ---- */
#define EK__CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define EK__UNUSED(x)                       ((void)(x))
#define EK__UNLIKELY(x)                     __builtin_expect(!!(x), 0)

/* Aborts with a message: only for broken invariants (bugs), never for bad input. */
_Noreturn void ek__panic(const char *what, const char *file, int line);
#define EK__ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (EK__UNLIKELY(!(cond))) ek__panic(#cond, __FILE__, __LINE__);                           \
    } while (0)

/* Map errno (positive) to an ekiden code; on Linux simply -errno. */
static inline int ek__err(int errnum)
{
    return -errnum;
}

/*
 * Type tags. Every public object starts with `uint32_t tag`; the ABI boundary
 * checks it, so a NULL or wrong-type handle gives EK_EINVAL instead of a crash.
 * A freed object's tag is overwritten with EK__TAG_DEAD first.
 */
enum {
    EK__TAG_DEAD = 0xdeadbeefu,
    EK__TAG_RUNTIME = 0x454b5254u, /* "EKRT" */
    EK__TAG_BUILDER = 0x454b4255u,
    EK__TAG_JOIN = 0x454b4a4eu,
    EK__TAG_FUTURE = 0x454b4655u,
    EK__TAG_INTERVAL = 0x454b4956u,
    EK__TAG_TCP_LISTENER = 0x454b544cu,
    EK__TAG_TCP_STREAM = 0x454b5453u,
    EK__TAG_UDP = 0x454b5544u,
    EK__TAG_UNIX_LISTENER = 0x454b554cu,
    EK__TAG_UNIX_STREAM = 0x454b5553u,
    EK__TAG_UNIX_DGRAM = 0x454b5547u,
};
#define EK__CHECK_TAG(obj, t) ((obj) != NULL && *(const uint32_t *)(const void *)(obj) == (t))

/* ---- intrusive doubly linked list (circular, with a sentinel head) ---- */
typedef struct ek__list {
    struct ek__list *prev, *next;
} ek__list;

static inline void ek__list_init(ek__list *h)
{
    h->prev = h->next = h;
}
static inline bool ek__list_empty(const ek__list *h)
{
    return h->next == h;
}
static inline void ek__list_push_back(ek__list *h, ek__list *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}
static inline void ek__list_remove(ek__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
static inline ek__list *ek__list_pop_front(ek__list *h)
{
    if (ek__list_empty(h)) return NULL;
    ek__list *n = h->next;
    ek__list_remove(n);
    return n;
}
/* A node is linked if it is not self-referential (nodes are initialised to self). */
static inline bool ek__list_linked(const ek__list *n)
{
    return n->next != n;
}

/* Move every node of src to the back of dst, in order; src is left empty. O(1). */
static inline void ek__list_splice(ek__list *dst, ek__list *src)
{
    if (ek__list_empty(src)) return;
    ek__list *first = src->next, *last = src->prev;
    first->prev = dst->prev;
    dst->prev->next = first;
    last->next = dst;
    dst->prev = last;
    ek__list_init(src);
}

/* ---- reference counts of shared objects (one per handle or waiter object) ---- */
typedef atomic_size_t ek__refcount;
static inline void ek__ref_init(ek__refcount *r)
{
    atomic_init(r, 1);
}
/* Take another reference. Relaxed: the caller holds one already, so nothing can
 * free the object meanwhile, and no data is published by counting. */
static inline void ek__ref_get(ek__refcount *r)
{
    atomic_fetch_add_explicit(r, 1, memory_order_relaxed);
}
/* Drop a reference; true if it was the last (the caller then frees). acq_rel:
 * every holder's writes happen before the last dropper's free. */
static inline bool ek__ref_put(ek__refcount *r)
{
    return atomic_fetch_sub_explicit(r, 1, memory_order_acq_rel) == 1;
}

/* ---- locks ---- */
typedef pthread_mutex_t ek__mutex;
typedef pthread_cond_t ek__cond;
int ek__mutex_init(ek__mutex *m);
void ek__mutex_destroy(ek__mutex *m);
void ek__mutex_lock(ek__mutex *m);
bool ek__mutex_trylock(ek__mutex *m);
void ek__mutex_unlock(ek__mutex *m);
int ek__cond_init(ek__cond *c); /* CLOCK_MONOTONIC */
void ek__cond_destroy(ek__cond *c);
void ek__cond_wait(ek__cond *c, ek__mutex *m);
/* Returns false on timeout. deadline_ns is CLOCK_MONOTONIC. */
bool ek__cond_timedwait(ek__cond *c, ek__mutex *m, uint64_t deadline_ns);
void ek__cond_signal(ek__cond *c);
void ek__cond_broadcast(ek__cond *c);

/* A lock of one futex word for short critical sections on hot paths (the
 * injection queue): 0 free, 1 held, 2 held with sleepers (Drepper's "Futexes
 * are tricky", mutex 3). Uncontended, lock and unlock are one atomic each,
 * inline; pthread's take ~70 instructions a pair through two calls (callgrind,
 * a remote spawn). Not for condition variables (use ek__mutex there). */
typedef struct ek__lock {
    _Atomic int word;
} ek__lock;
static inline void ek__lock_init(ek__lock *l)
{
    atomic_init(&l->word, 0);
}
/* The contended path: spin up to `spins` pauses while the word reads free, then
 * sleep on the futex. */
void ek__lock_wait(ek__lock *l, int spins);
void ek__lock_wake(ek__lock *l);
/* acquire: what the last holder wrote before its release is seen. Spins a
 * little before it sleeps: for locks that a few threads take (the scheduler's),
 * whose holder is most likely running on another core. */
static inline void ek__lock_acquire(ek__lock *l)
{
    int free_ = 0;
    if (!atomic_compare_exchange_strong_explicit(&l->word, &free_, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        ek__lock_wait(l, 64);
}
/* As ek__lock_acquire, but sleeps at once when the lock is held, as a pthread
 * mutex does: for locks that tasks on every worker take (the sync primitives'),
 * where on a machine with fewer cores than threads the holder is often not
 * running and a spin only keeps it from its core. sync_mpsc.contention_bounded_full
 * (6 workers, 2 cores): 64 pauses made it 1.15-1.25x the pthread mutex's time. */
static inline void ek__lock_acquire_nospin(ek__lock *l)
{
    int free_ = 0;
    if (!atomic_compare_exchange_strong_explicit(&l->word, &free_, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        ek__lock_wait(l, 0);
}
/* Take the lock if it is free (acquire, as ek__lock_acquire); never waits. */
static inline bool ek__lock_try(ek__lock *l)
{
    int free_ = 0;
    return atomic_compare_exchange_strong_explicit(&l->word, &free_, 1, memory_order_acquire,
                                                   memory_order_relaxed);
}
/* release: publishes the critical section to the next holder. */
static inline void ek__lock_release(ek__lock *l)
{
    if (atomic_exchange_explicit(&l->word, 0, memory_order_release) == 2) ek__lock_wake(l);
}

/* ---- time ---- */
/* CLOCK_MONOTONIC in ns. Inline: every sleep's creation reads it. */
static inline uint64_t ek__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
/* The CLOCK_MONOTONIC deadline `ms` milliseconds from now, saturating at
 * UINT64_MAX (which callers treat as "no deadline"). */
uint64_t ek__deadline_ns(uint64_t ms);

/* ---- threads ---- */
/* Start a thread with a name ("prefix-N"); returns 0 or a negative errno. */
int ek__thread_start(pthread_t *t, void *(*fn)(void *), void *arg, const char *name);
/* Name the calling thread (at most 15 bytes are kept). A thread that runs hooks
 * names itself first, so that they see its name (ek__thread_start names it from
 * the outside, possibly after it started running). */
void ek__thread_name_self(const char *name);

#endif
