/* queue.c - the work-stealing ring (protocol in queue.h). */
#include "queue.h"
#include "inject.h"

static inline uint32_t hi(uint64_t v)
{
    return (uint32_t)(v >> 32);
}
static inline uint32_t lo(uint64_t v)
{
    return (uint32_t)v;
}
static inline uint64_t pack(uint32_t steal, uint32_t real)
{
    return ((uint64_t)steal << 32) | real;
}

void ek__queue_init(ek__local_queue *q)
{
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    for (uint32_t i = 0; i < EK__QUEUE_CAP; i++) atomic_init(&q->buf[i], NULL);
}

uint32_t ek__queue_len(ek__local_queue *q)
{
    uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
    return t - hi(h);
}

uint32_t ek__queue_free_slots(ek__local_queue *q)
{
    uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    return EK__QUEUE_CAP - (t - hi(h));
}

/* Claim half the queue with one CAS and move it, plus t, to the global queue.
 * Fails (false) if a thief or the owner's pop moved head meanwhile. */
static bool push_overflow(ek__local_queue *q, ek__task *t, uint32_t real, uint32_t tail,
                          ek__inject *inject)
{
    const uint32_t half = EK__QUEUE_CAP / 2;
    EK__ASSERT(tail - real == EK__QUEUE_CAP);
    uint64_t prev = pack(real, real);
    /* release: nothing to publish, but the slots we read below must not be
     * reordered before the claim; acquire on success orders them after. */
    if (!atomic_compare_exchange_strong_explicit(&q->head, &prev, pack(real + half, real + half),
                                                 memory_order_acq_rel, memory_order_relaxed))
        return false;
    ek__task *first = NULL, *last = NULL;
    for (uint32_t i = 0; i < half; i++) {
        ek__task *x =
            atomic_load_explicit(&q->buf[(real + i) & EK__QUEUE_MASK], memory_order_relaxed);
        x->next = NULL;
        if (last)
            last->next = x;
        else
            first = x;
        last = x;
    }
    t->next = NULL;
    last->next = t;
    ek__inject_push_batch(inject, first, t, half + 1);
    return true;
}

bool ek__queue_push_back(ek__local_queue *q, ek__task *t, ek__inject *inject)
{
    for (;;) {
        uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t steal = hi(h), real = lo(h);
        uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (tail - steal < EK__QUEUE_CAP) {
            atomic_store_explicit(&q->buf[tail & EK__QUEUE_MASK], t, memory_order_relaxed);
            /* release: publishes the slot to thieves that acquire tail. */
            atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
            return false;
        }
        if (steal != real) {
            /* A thief is working; it will free room soon, but we cannot wait. */
            ek__inject_push(inject, t);
            return true;
        }
        if (push_overflow(q, t, real, tail, inject)) return true;
    }
}

ek__task *ek__queue_pop(ek__local_queue *q)
{
    uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    for (;;) {
        uint32_t steal = hi(h), real = lo(h);
        uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (real == tail) return NULL;
        uint32_t nreal = real + 1;
        uint64_t next = steal == real ? pack(nreal, nreal) : pack(steal, nreal);
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, next, memory_order_acq_rel,
                                                  memory_order_acquire))
            return atomic_load_explicit(&q->buf[real & EK__QUEUE_MASK], memory_order_relaxed);
    }
}

/* Move half of src into dst's ring starting at dst_tail; returns the count. */
static uint32_t steal_half(ek__local_queue *src, ek__local_queue *dst, uint32_t dst_tail)
{
    uint64_t prev = atomic_load_explicit(&src->head, memory_order_acquire);
    uint32_t n, src_real;
    for (;;) {
        uint32_t src_steal = hi(prev);
        src_real = lo(prev);
        if (src_steal != src_real) return 0; /* another thief is at work */
        /* acquire: the slots up to tail were published by the owner's release. */
        uint32_t src_tail = atomic_load_explicit(&src->tail, memory_order_acquire);
        n = src_tail - src_real;
        n -= n / 2;
        if (n == 0) return 0;
        uint64_t next = pack(src_steal, src_real + n);
        if (atomic_compare_exchange_weak_explicit(&src->head, &prev, next, memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    EK__ASSERT(n <= EK__QUEUE_CAP / 2);
    for (uint32_t i = 0; i < n; i++) {
        ek__task *t =
            atomic_load_explicit(&src->buf[(src_real + i) & EK__QUEUE_MASK], memory_order_relaxed);
        atomic_store_explicit(&dst->buf[(dst_tail + i) & EK__QUEUE_MASK], t, memory_order_relaxed);
    }
    /* Done copying: let the owner reuse the slots (steal catches up with real). */
    prev = atomic_load_explicit(&src->head, memory_order_acquire);
    for (;;) {
        uint32_t real = lo(prev);
        if (atomic_compare_exchange_weak_explicit(&src->head, &prev, pack(real, real),
                                                  memory_order_acq_rel, memory_order_acquire))
            break;
    }
    return n;
}

ek__task *ek__queue_steal_into(ek__local_queue *src, ek__local_queue *dst, uint32_t *nout)
{
    *nout = 0;
    uint32_t dst_tail = atomic_load_explicit(&dst->tail, memory_order_relaxed);
    uint64_t dh = atomic_load_explicit(&dst->head, memory_order_acquire);
    if (dst_tail - hi(dh) > EK__QUEUE_CAP / 2) return NULL; /* our own queue is busy */
    uint32_t n = steal_half(src, dst, dst_tail);
    if (n == 0) return NULL;
    *nout = n;
    n--;
    ek__task *ret =
        atomic_load_explicit(&dst->buf[(dst_tail + n) & EK__QUEUE_MASK], memory_order_relaxed);
    if (n) atomic_store_explicit(&dst->tail, dst_tail + n, memory_order_release);
    return ret;
}
