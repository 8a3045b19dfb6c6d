/*
 * test_slab.c - the cell slab (core/task/slab.c) on its own and under the
 * runtime: reuse, classes, alignment, frees from other threads (the remote
 * lists), the shared heap, heaps of another slab, runtime teardown with cells
 * outstanding in every order of frees, and the memory of an idle task.
 *
 * Every test forces the slab on (EKIDEN_CELL_SLAB=1) under the counting
 * allocator, so the teardown's leak check also checks that a runtime's last
 * reference returns every chunk.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

#include "sched/runtime.h"
#include "task/slab.h"

/* cmocka's asserts must stay on the test's thread; helper threads abort. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond);                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int setup(void **state)
{
    setenv("EKIDEN_CELL_SLAB", "1", 1);
    return ekt_setup(state);
}

/* ---- the slab alone ---- */

static void test_a_freed_cell_is_reused_by_its_heap(void **state)
{
    (void)state;
    ek__slab *s;
    assert_int_equal(ek__slab_new(&s), EK_OK);
    ek__slab_heap *h = ek__slab_heap_new(s);
    assert_non_null(h);
    assert_ptr_equal(ek__slab_of(h), s);
    void *a = ek__slab_alloc(s, h, 112);
    assert_non_null(a);
    assert_int_equal((uintptr_t)a % 16, 0);
    ek__slab_free(h, a);
    assert_ptr_equal(ek__slab_alloc(s, h, 100), a); /* same class (97..112) */
    void *b = ek__slab_alloc(s, h, 112);
    assert_ptr_equal((char *)b, (char *)a + 112); /* carved next to it */
    void *c = ek__slab_alloc(s, h, 113);          /* next class: another chunk */
    assert_true((uintptr_t)c / EK__SLAB_CHUNK != (uintptr_t)a / EK__SLAB_CHUNK);
    assert_int_equal(ek__slab_chunks(s), 2);
    ek__slab_free(h, a);
    ek__slab_free(h, b);
    ek__slab_free(NULL, c); /* remote free of an owned cell: still returns */
    assert_ptr_equal(ek__slab_alloc(s, h, 120), c);
    ek__slab_free(h, c);
    ek__slab_free(h, NULL);
    ek__slab_destroy(s);
    ek__slab_destroy(NULL);
}

static void test_cells_of_every_class_are_disjoint_and_aligned(void **state)
{
    (void)state;
    ek__slab *s;
    assert_int_equal(ek__slab_new(&s), EK_OK);
    ek__slab_heap *h = ek__slab_heap_new(s);
    enum { PER = 700 }; /* more than one chunk of the smallest class */
    static unsigned char *cells[EK__SLAB_MAX_CELL / 16][PER];
    for (unsigned c = 0; c < EK__SLAB_MAX_CELL / 16; c++) {
        size_t size = (c + 1) * 16;
        for (int i = 0; i < PER; i++) {
            cells[c][i] = ek__slab_alloc(s, c % 2 ? h : NULL, size);
            assert_non_null(cells[c][i]);
            assert_int_equal((uintptr_t)cells[c][i] % 16, 0);
            memset(cells[c][i], (int)(c * 7 + i) & 0xff, size);
        }
    }
    for (unsigned c = 0; c < EK__SLAB_MAX_CELL / 16; c++)
        for (int i = 0; i < PER; i++) {
            size_t size = (c + 1) * 16;
            for (size_t k = 0; k < size; k++) assert_int_equal(cells[c][i][k], (c * 7 + i) & 0xff);
            ek__slab_free(h, cells[c][i]);
        }
    ek__slab_destroy(s);
}

static void test_a_heap_of_another_slab_counts_as_none(void **state)
{
    (void)state;
    ek__slab *a, *b;
    assert_int_equal(ek__slab_new(&a), EK_OK);
    assert_int_equal(ek__slab_new(&b), EK_OK);
    ek__slab_heap *hb = ek__slab_heap_new(b);
    void *p = ek__slab_alloc(a, hb, 64); /* a's shared heap */
    assert_non_null(p);
    assert_int_equal(ek__slab_chunks(a), 1);
    assert_int_equal(ek__slab_chunks(b), 0);
    ek__slab_free(hb, p); /* not hb's cell: pushed back to a's shared heap */
    assert_ptr_equal(ek__slab_alloc(a, NULL, 64), p);
    ek__slab_free(NULL, p);
    ek__slab_destroy(b);
    ek__slab_destroy(a);
}

/* A heap's owner keeps the cells of other heaps (of its slab) that it frees,
 * up to EK__SLAB_KEEP per class, and reuses them first; past that they go home
 * to the carving heap's remote list. */
static void test_a_heap_keeps_a_bounded_number_of_other_heaps_cells(void **state)
{
    (void)state;
    ek__slab *s;
    assert_int_equal(ek__slab_new(&s), EK_OK);
    ek__slab_heap *a = ek__slab_heap_new(s), *b = ek__slab_heap_new(s);
    assert_non_null(a);
    assert_non_null(b);
    enum { N = EK__SLAB_KEEP + 10 };
    void *cells[N];
    for (int i = 0; i < N; i++) assert_non_null(cells[i] = ek__slab_alloc(s, a, 112));
    for (int i = 0; i < N; i++) ek__slab_free(b, cells[i]); /* b's owner frees a's cells */
    /* b reuses the last EK__SLAB_KEEP it kept, newest first, without a new chunk. */
    size_t chunks = ek__slab_chunks(s);
    for (int i = (int)EK__SLAB_KEEP - 1; i >= 0; i--)
        assert_ptr_equal(ek__slab_alloc(s, b, 112), cells[i]);
    assert_int_equal(ek__slab_chunks(s), chunks);
    /* The ten past the bound went back to a (its remote list, taken whole). */
    for (int i = (int)EK__SLAB_KEEP; i < N; i++) {
        void *p = ek__slab_alloc(s, a, 112);
        bool found = false;
        for (int k = (int)EK__SLAB_KEEP; k < N; k++) found |= p == cells[k];
        assert_true(found);
    }
    /* b's list is empty again: its next cell is carved from a chunk of its own. */
    void *fresh = ek__slab_alloc(s, b, 112);
    assert_int_equal(ek__slab_chunks(s), chunks + 1);
    ek__slab_free(b, fresh);
    for (int i = 0; i < N; i++) ek__slab_free(i % 2 ? a : b, cells[i]);
    ek__slab_destroy(s);
}

static void test_slab_out_of_memory_is_null_and_recovers(void **state)
{
    (void)state;
    ek__slab *s;
    ekt_alloc_fail_after(0);
    assert_int_equal(ek__slab_new(&s), EK_ENOMEM);
    ekt_alloc_fail_after(-1);
    assert_int_equal(ek__slab_new(&s), EK_OK);
    ekt_alloc_fail_after(0);
    assert_null(ek__slab_heap_new(s));
    ekt_alloc_fail_after(0);
    assert_null(ek__slab_alloc(s, NULL, 32)); /* the first chunk */
    ekt_alloc_fail_after(-1);
    void *p = ek__slab_alloc(s, NULL, 32);
    assert_non_null(p);
    ek__slab_free(NULL, p);
    ek__slab_destroy(s);
}

/* One producer allocates from its own heap and hands cells (stamped with a
 * sequence number) to consumers through a mutex-guarded ring; the consumers
 * check the stamp and free them from their threads (remote frees). The
 * producer also frees some cells itself, and allocates from the shared heap
 * (NULL) now and then, which the consumers free remotely too. */
#define RING 256
typedef struct {
    ek__slab *s;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t *ring[RING];
    unsigned head, tail;
    bool done;
    long total;
    atomic_long freed;
} xfer;

static void xfer_put(xfer *x, uint64_t *cell)
{
    pthread_mutex_lock(&x->lock);
    while (x->tail - x->head == RING) pthread_cond_wait(&x->cond, &x->lock);
    x->ring[x->tail++ % RING] = cell;
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
}

static uint64_t *xfer_get(xfer *x)
{
    pthread_mutex_lock(&x->lock);
    while (x->tail == x->head && !x->done) pthread_cond_wait(&x->cond, &x->lock);
    uint64_t *cell = x->tail == x->head ? NULL : x->ring[x->head++ % RING];
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
    return cell;
}

static void *consumer_main(void *arg)
{
    xfer *x = arg;
    /* A heap of its own, so that its frees are remote but its own allocations
     * (a few, freed at once) are local. */
    ek__slab_heap *mine = ek__slab_heap_new(x->s);
    uint64_t *cell;
    while ((cell = xfer_get(x)) != NULL) {
        uint64_t seq = cell[1];
        for (int k = 2; k < 14; k++) CHECK(cell[k] == seq * 31 + (uint64_t)k);
        ek__slab_free(mine, cell);
        atomic_fetch_add(&x->freed, 1);
        void *own = ek__slab_alloc(x->s, mine, 48);
        CHECK(own != NULL);
        ek__slab_free(mine, own);
    }
    return NULL;
}

static void test_cross_thread_frees_return_to_the_carving_heap(void **state)
{
    (void)state;
    xfer x = {.total = ekt_scale(400000)};
    assert_int_equal(ek__slab_new(&x.s), EK_OK);
    pthread_mutex_init(&x.lock, NULL);
    pthread_cond_init(&x.cond, NULL);
    atomic_init(&x.freed, 0);
    enum { CONSUMERS = 3 };
    pthread_t th[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, consumer_main, &x), 0);
    ek__slab_heap *h = ek__slab_heap_new(x.s);
    long kept = 0;
    for (long i = 0; i < x.total; i++) {
        uint64_t *cell = ek__slab_alloc(x.s, i % 17 == 0 ? NULL : h, 112);
        assert_non_null(cell);
        cell[1] = (uint64_t)i;
        for (int k = 2; k < 14; k++) cell[k] = (uint64_t)i * 31 + (uint64_t)k;
        if (i % 5 == 0) {
            ek__slab_free(h, cell); /* a local free (or remote, if shared) */
            kept++;
        } else {
            xfer_put(&x, cell);
        }
    }
    pthread_mutex_lock(&x.lock);
    x.done = true;
    pthread_cond_broadcast(&x.cond);
    pthread_mutex_unlock(&x.lock);
    for (int i = 0; i < CONSUMERS; i++) pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&x.freed) + kept, x.total);
    /* Reuse: at most RING cells are in flight at once (plus the consumers'
     * own), so the chunks stay few however many cells went through. Without
     * the remote lists feeding the producer's heap this would be
     * total * 112 / 64 KiB (~700 chunks at the full count). */
    size_t chunks = ek__slab_chunks(x.s);
    assert_true(chunks <= 8);
    ek__slab_destroy(x.s);
    pthread_mutex_destroy(&x.lock);
    pthread_cond_destroy(&x.cond);
}

/* Several threads allocate from the shared heap at once and free each other's
 * cells. */
typedef struct {
    ek__slab *s;
    _Atomic(void *) slots[64];
    long rounds;
} shared_ctx;

static void *shared_main(void *arg)
{
    shared_ctx *c = arg;
    for (long i = 0; i < c->rounds; i++) {
        void *p = ek__slab_alloc(c->s, NULL, 16 + (size_t)(i % 4) * 16);
        CHECK(p != NULL);
        memset(p, 0x5a, 16);
        void *old = atomic_exchange(&c->slots[(size_t)i % 64], p);
        ek__slab_free(NULL, old);
    }
    return NULL;
}

static void test_shared_heap_under_concurrent_use(void **state)
{
    (void)state;
    shared_ctx c = {.rounds = ekt_scale(200000)};
    assert_int_equal(ek__slab_new(&c.s), EK_OK);
    for (int i = 0; i < 64; i++) atomic_init(&c.slots[i], NULL);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, shared_main, &c), 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 64; i++) ek__slab_free(NULL, atomic_load(&c.slots[i]));
    assert_true(ek__slab_chunks(c.s) <= 8);
    ek__slab_destroy(c.s);
}

/* ---- under the runtime ---- */

static const int flavors[2] = {EK_FLAVOR_MULTI_THREAD, EK_FLAVOR_CURRENT_THREAD};

typedef struct {
    ek_future *sleep;
    atomic_int *left;
} sleeper;

static int sleeper_poll(void *st, ek_cx *cx, void **out)
{
    sleeper *s = st;
    int rc = ek_future_poll(s->sleep, cx, out);
    if (rc == EK_PENDING) return rc;
    atomic_fetch_sub(s->left, 1);
    return rc;
}

static void sleeper_drop(void *st)
{
    sleeper *s = st;
    ek_future_drop(s->sleep);
    free(s);
}

/* Spawn N sleepers from inside block_on (the block_on thread's heap), they
 * complete on the workers (remote frees), then again: the second round reuses
 * the first round's cells. */
typedef struct {
    int n;
    atomic_int left;
} timers_ctx;

static int timers_root(void *st, ek_cx *cx, void **out)
{
    timers_ctx *c = st;
    ek_runtime *rt = ek_cx_runtime(cx);
    for (int i = 0; i < c->n; i++) {
        sleeper *s = malloc(sizeof *s);
        CHECK(s != NULL);
        s->left = &c->left;
        CHECK(ek_sleep(rt, (uint64_t)(i % 3), &s->sleep) == EK_OK);
        CHECK(ek_spawn(rt, sleeper_poll, sleeper_drop, s, NULL, NULL) == EK_OK);
    }
    *out = NULL;
    return EK_OK;
}

static void test_timer_tasks_cells_are_reused_across_rounds(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = ekt_rt(flavors[fl], 2);
        assert_non_null(rt->h.slab);
        timers_ctx c = {.n = (int)ekt_scale(20000)};
        for (int round = 0; round < 3; round++) {
            atomic_store(&c.left, c.n);
            assert_int_equal(ekt_block_on_fn(rt, timers_root, &c, NULL), EK_OK);
            /* Drive a current-thread runtime until they are done. */
            while (atomic_load(&c.left) > 0) {
                ek_future *f;
                assert_int_equal(ek_sleep(rt, 1, &f), EK_OK);
                assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
            }
            assert_int_equal(ekt_metric_wait(rt, EK_METRIC_TASKS_ALIVE, 0), 0);
        }
        /* However the rounds interleaved with the workers, at most every cell
         * of one round was alive at once (a task and a sleep per timer, 585 of
         * either per chunk; a few more chunks for the shared heap and the
         * workers' heaps). Three rounds without reuse would take three times
         * that. */
        size_t per_chunk = (EK__SLAB_CHUNK - 16) / 112;
        size_t bound = (2 * (size_t)c.n + per_chunk - 1) / per_chunk + 4;
        assert_true(ek__slab_chunks(rt->h.slab) <= bound);
        ekt_rt_free_checked(rt);
    }
}

/* Teardown with cells outstanding: join handles and sleep futures outlive the
 * runtime; they are dropped afterwards, in both orders, from this thread and
 * from another one. The teardown's leak check sees every chunk returned. */
typedef struct {
    ek_join *joins[64];
    ek_future *sleeps[64];
    int n;
} leftovers;

/* Poll a sleep once and leave it filed. */
static int poll_once(void *st, ek_cx *cx, void **out)
{
    void *res;
    assert_int_equal(ek_future_poll(st, cx, &res), EK_PENDING);
    *out = NULL;
    return EK_OK;
}

static int poll_sleep(void *st, ek_cx *cx, void **out)
{
    return ek_future_poll(st, cx, out);
}

static void drop_sleep(void *st)
{
    ek_future_drop(st);
}

static void drop_leftovers(leftovers *l, bool joins_first)
{
    for (int pass = 0; pass < 2; pass++) {
        bool joins = (pass == 0) == joins_first;
        for (int i = 0; i < l->n; i++) {
            if (joins)
                ek_join_detach(l->joins[i]);
            else
                ek_future_drop(l->sleeps[i]);
        }
    }
}

static void *drop_leftovers_main(void *arg)
{
    drop_leftovers(arg, false);
    return NULL;
}

static void test_cells_outlive_the_runtime_in_any_order(void **state)
{
    (void)state;
    for (int variant = 0; variant < 4; variant++) {
        ek_runtime *rt = ekt_rt(flavors[variant % 2], 2);
        leftovers l = {.n = 64};
        for (int i = 0; i < l.n; i++) {
            assert_int_equal(ek_spawn(rt, i % 2 ? ekt_ret_state : ekt_pend_forever, ekt_noop_drop,
                                      NULL, NULL, &l.joins[i]),
                             EK_OK);
            assert_int_equal(ek_sleep(rt, 1000000, &l.sleeps[i]), EK_OK);
        }
        /* Some tasks completed (their results wait in the handles), some
         * sleeps are filed in the wheel (polled once), some tasks own a filed
         * sleep (dropped by the shutdown). */
        for (int i = 0; i < 4; i++) {
            void *out;
            assert_int_equal(ek_join_wait(l.joins[2 * i + 1], &out), EK_OK);
            assert_int_equal(ekt_block_on_fn(rt, poll_once, l.sleeps[i], NULL), EK_OK);
            ek_future *owned;
            assert_int_equal(ek_sleep(rt, 1000000, &owned), EK_OK);
            ek_join *j = ekt_spawn(rt, poll_sleep, drop_sleep, owned);
            ek_join_detach(j);
        }
        ek_runtime_free(rt);
        if (variant < 2) {
            drop_leftovers(&l, variant == 0);
        } else {
            pthread_t th;
            assert_int_equal(pthread_create(&th, NULL, drop_leftovers_main, &l), 0);
            pthread_join(th, NULL);
        }
        /* The last cell took the runtime, its slab and its chunks with it. */
        assert_int_equal(ekt_alloc_leaked(), 0);
    }
}

/* An idle task costs its cell: 112 bytes, no allocator header (DESIGN: at most
 * 128 bytes of runtime overhead per idle task; issue 11's goal: 112). */
static void test_idle_task_costs_one_112_byte_cell(void **state)
{
    (void)state;
    assert_int_equal(sizeof(ek__task), 112);
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    long n = ekt_scale(20000);
    size_t before = ek__slab_chunks(rt->h.slab);
    for (long i = 0; i < n; i++)
        assert_int_equal(ek_spawn(rt, ekt_pend_forever, ekt_noop_drop, NULL, NULL, NULL), EK_OK);
    size_t chunks = ek__slab_chunks(rt->h.slab) - before;
    /* Chunks hold (64 KiB - 16) / 112 = 585 cells each. */
    size_t per_chunk = (EK__SLAB_CHUNK - 16) / 112;
    assert_true(chunks <= ((size_t)n + per_chunk - 1) / per_chunk + 2);
    double bytes = (double)chunks * EK__SLAB_CHUNK / (double)n;
    print_message("idle task: %.1f bytes (%zu chunks for %ld tasks)\n", bytes, chunks, n);
    ekt_rt_free_checked(rt); /* shutdown drops the idle tasks */
}

/* Neighbouring task cells never share a cache line between their hot windows
 * (task.h): two workers polling two tasks carved one after the other write and
 * read disjoint lines. Fails with poll and fstate outside the window (the
 * layout before it: 292 of 584 neighbours shared a line). */
static void test_neighbouring_tasks_hot_fields_share_no_line(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    enum { N = 1200 }; /* two chunks' worth */
    static uintptr_t addr[N];
    for (int i = 0; i < N; i++) {
        ek_join *j = NULL;
        assert_int_equal(ek_spawn(rt, ekt_pend_forever, ekt_noop_drop, NULL, NULL, &j), EK_OK);
        addr[i] = (uintptr_t)j;
        ek_join_detach(j);
    }
    int pairs = 0;
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < N; k++) {
            if (addr[k] != addr[i] + sizeof(ek__task)) continue;
            uintptr_t a_last = addr[i] + EK__TASK_HOT_END - 1;
            uintptr_t b_first = addr[k] + EK__TASK_HOT_BEGIN;
            assert_true(a_last / 64 != b_first / 64);
            pairs++;
        }
    }
    /* Cells are carved one after the other: most spawns have a neighbour. */
    assert_true(pairs >= N / 2);
    print_message("%d neighbouring cells checked\n", pairs);
    ekt_rt_free_checked(rt);
}

/* Cells of whole cache lines (64, 128, 192, 256 bytes) start on a line, so no
 * two of them share one, and 128 and 256 on a pair of lines (the adjacent-line
 * prefetcher's unit); the other classes keep the 16-byte start after the
 * chunk's header (a 112-byte task's hot window relies on that phase). */
static void test_cells_of_whole_lines_start_on_a_line(void **state)
{
    (void)state;
    ek__slab *s;
    assert_int_equal(ek__slab_new(&s), EK_OK);
    ek__slab_heap *h = ek__slab_heap_new(s);
    enum { PER = 600 }; /* past the first chunk of 128-byte cells (511 of them) */
    static void *cells[EK__SLAB_MAX_CELL / 16][PER];
    for (unsigned c = 0; c < EK__SLAB_MAX_CELL / 16; c++) {
        size_t size = (c + 1) * 16;
        for (int i = 0; i < PER; i++) {
            cells[c][i] = ek__slab_alloc(s, h, size);
            assert_non_null(cells[c][i]);
            uintptr_t off = (uintptr_t)cells[c][i] % EK__SLAB_CHUNK;
            if (size % 128 == 0)
                assert_int_equal((uintptr_t)cells[c][i] % 128, 0);
            else if (size % 64 == 0)
                assert_int_equal((uintptr_t)cells[c][i] % 64, 0);
            else
                assert_int_equal((off - 16) % size, 0);
        }
    }
    for (unsigned c = 0; c < EK__SLAB_MAX_CELL / 16; c++)
        for (int i = 0; i < PER; i++) ek__slab_free(h, cells[c][i]);
    ek__slab_destroy(s);
}

/* An inline task (ek_spawn_inline) with a 16-byte state is one 128-byte cell,
 * the state right after the struct, and the lines its polls touch (the hot
 * window and the state) are shared with no other task's: with the 128-byte
 * cells at the 16-byte phase of the other classes, each state sat on the line
 * of the next cell's hot window (rt_multi.yield_many's malloc'd states 32 B
 * apart did the same two to a line). */
static void test_inline_task_cells_share_no_line_they_touch(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    enum { N = 1100 }; /* two chunks' worth */
    static uintptr_t addr[N];
    size_t before = ek__slab_chunks(rt->h.slab);
    for (int i = 0; i < N; i++) {
        ek_join *j = NULL;
        uintptr_t init[2] = {0, 0};
        assert_int_equal(ek_spawn_inline(rt, ekt_pend_forever, NULL, init, sizeof init, NULL, &j),
                         EK_OK);
        addr[i] = (uintptr_t)j;
        ek_join_detach(j);
    }
    size_t chunks = ek__slab_chunks(rt->h.slab) - before;
    /* (64 KiB - 128) / 128 = 511 cells a chunk: 128 bytes a task. */
    assert_true(chunks <= (N + 510) / 511 + 2);
    int pairs = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(addr[i] % 128, 0); /* a pair of lines of its own */
        for (int k = 0; k < N; k++) {
            if (addr[k] != addr[i] + 128) continue;
            /* i's state (after its struct) and k's hot window: other lines. */
            uintptr_t a_last = addr[i] + sizeof(ek__task) + 16 - 1;
            uintptr_t b_first = addr[k] + EK__TASK_HOT_BEGIN;
            assert_true(a_last / 64 != b_first / 64);
            pairs++;
        }
    }
    assert_true(pairs >= N / 2);
    print_message("%d neighbouring inline cells checked, %zu chunks\n", pairs, chunks);
    ekt_rt_free_checked(rt);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, ekt_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_a_freed_cell_is_reused_by_its_heap),
        T(test_cells_of_every_class_are_disjoint_and_aligned),
        T(test_a_heap_of_another_slab_counts_as_none),
        T(test_a_heap_keeps_a_bounded_number_of_other_heaps_cells),
        T(test_slab_out_of_memory_is_null_and_recovers),
        T(test_cross_thread_frees_return_to_the_carving_heap),
        T(test_shared_heap_under_concurrent_use),
        T(test_timer_tasks_cells_are_reused_across_rounds),
        T(test_cells_outlive_the_runtime_in_any_order),
        T(test_idle_task_costs_one_112_byte_cell),
        T(test_neighbouring_tasks_hot_fields_share_no_line),
        T(test_cells_of_whole_lines_start_on_a_line),
        T(test_inline_task_cells_share_no_line_they_touch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
