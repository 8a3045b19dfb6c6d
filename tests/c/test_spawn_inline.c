/*
 * test_spawn_inline.c - ek_spawn_inline and ek_spawn_local_inline: the state
 * copied into the task's cell (ekiden.h). Each task's state points at a probe
 * outside it, which counts its polls and drops, the thread of each, the
 * state's address and alignment, and whether its bytes are the copy of the
 * caller's; after the task is gone the probe says what happened.
 *
 * Every case runs twice in the test command: with the counting allocator's one
 * allocation per task, and with the cell slab forced on (test_spawn_inline_slab,
 * EKIDEN_CELL_SLAB=1), both leak-checked at teardown.
 */
#include "support.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct probe {
    atomic_int polls, drops, bad;
    atomic_uintptr_t state; /* the address the first poll saw */
    atomic_int wrong_thread;
    pthread_t owner; /* with check_owner: every poll and drop runs here */
    atomic_bool check_owner;
} probe;

/* The state: a header, then `size - sizeof(head)` bytes of a pattern. */
typedef struct head {
    probe *p;
    uint32_t size;  /* the state's whole size, as spawned */
    uint32_t yield; /* polls that yield before the task completes; UINT32_MAX: pend forever */
} head;

#define PATTERN(i, size) ((unsigned char)((i)*31u + (size)))

static void probe_init(probe *p)
{
    memset(p, 0, sizeof *p);
    atomic_init(&p->polls, 0);
    atomic_init(&p->drops, 0);
    atomic_init(&p->bad, 0);
    atomic_init(&p->state, 0);
    atomic_init(&p->wrong_thread, 0);
    atomic_init(&p->check_owner, false);
}

static void probe_own(probe *p, pthread_t owner)
{
    p->owner = owner;
    atomic_store(&p->check_owner, true);
}

static void check_thread(probe *p)
{
    if (atomic_load(&p->check_owner) && !pthread_equal(p->owner, pthread_self()))
        atomic_fetch_add(&p->wrong_thread, 1);
}

/* The state is 16-byte aligned, where the first poll saw it, and still holds
 * the caller's bytes (each poll bumps the last one: so it is the task's own). */
static void check_state(head *h, int polls_before)
{
    probe *p = h->p;
    if ((uintptr_t)h % 16 != 0) atomic_fetch_add(&p->bad, 1);
    uintptr_t seen = 0;
    if (!atomic_compare_exchange_strong(&p->state, &seen, (uintptr_t)h) && seen != (uintptr_t)h)
        atomic_fetch_add(&p->bad, 1);
    unsigned char *b = (unsigned char *)(h + 1);
    size_t n = h->size - sizeof *h;
    for (size_t i = 0; i < n; i++) {
        unsigned char want = PATTERN(i, h->size);
        if (i == n - 1) want = (unsigned char)(want + polls_before);
        if (b[i] != want) {
            atomic_fetch_add(&p->bad, 1);
            break;
        }
    }
}

static int probe_poll(void *s, ek_cx *cx, void **out)
{
    head *h = s;
    probe *p = h->p;
    check_thread(p);
    int n = atomic_fetch_add(&p->polls, 1);
    check_state(h, n);
    if (h->size > sizeof *h) ((unsigned char *)(h + 1))[h->size - sizeof *h - 1]++;
    if (h->yield == UINT32_MAX) return EK_PENDING; /* no waker: only cancellation ends it */
    if ((uint32_t)n < h->yield) return ek_yield_now(cx);
    *out = (void *)(uintptr_t)h->size;
    return EK_OK;
}

static void probe_drop(void *s)
{
    head *h = s;
    probe *p = h->p;
    check_thread(p);
    /* Dropped in the cell, after the polls (or none: cancelled first). */
    if (atomic_load(&p->polls) > 0) check_state(h, atomic_load(&p->polls));
    atomic_fetch_add(&p->drops, 1);
}

/* The caller's bytes of a state of `size` (>= sizeof(head)). */
static void fill(unsigned char *buf, size_t size, probe *p, uint32_t yield)
{
    head h = {.p = p, .size = (uint32_t)size, .yield = yield};
    memcpy(buf, &h, sizeof h);
    for (size_t i = 0; i < size - sizeof h; i++) buf[sizeof h + i] = PATTERN(i, size);
}

static const size_t sizes[] = {sizeof(head), 17, 33, 64, 80, 81, 128, EK_SPAWN_INLINE_MAX};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void run_both_flavors(void (*fn)(int flavor))
{
    fn(EK_FLAVOR_MULTI_THREAD);
    fn(EK_FLAVOR_CURRENT_THREAD);
}

/* ---- the state is a copy in the cell, aligned, dropped once ---- */

enum { PER_SIZE = 24 };

static void copied_and_dropped(int flavor)
{
    ek_runtime *rt = ekt_rt(flavor, 2);
    static probe probes[NSIZES][PER_SIZE];
    ek_join *joins[NSIZES][PER_SIZE];
    unsigned char buf[EK_SPAWN_INLINE_MAX] __attribute__((aligned(16)));
    for (size_t k = 0; k < NSIZES; k++)
        for (int i = 0; i < PER_SIZE; i++) {
            probe_init(&probes[k][i]);
            fill(buf, sizes[k], &probes[k][i], (uint32_t)(i % 5));
            assert_int_equal(
                ek_spawn_inline(rt, probe_poll, probe_drop, buf, sizes[k], NULL, &joins[k][i]),
                EK_OK);
            /* Copied: the caller's bytes are its own again at once. */
            memset(buf, 0xee, sizeof buf);
        }
    for (size_t k = 0; k < NSIZES; k++)
        for (int i = 0; i < PER_SIZE; i++) {
            void *out = NULL;
            assert_int_equal(ek_join_wait(joins[k][i], &out), EK_OK);
            assert_int_equal((uintptr_t)out, sizes[k]);
            ek_join_detach(joins[k][i]);
            probe *p = &probes[k][i];
            assert_int_equal(atomic_load(&p->polls), i % 5 + 1);
            assert_int_equal(atomic_load(&p->drops), 1);
            assert_int_equal(atomic_load(&p->bad), 0);
            /* In the task's own cell: never the caller's buffer. */
            assert_true(atomic_load(&p->state) != (uintptr_t)buf);
        }
    ekt_rt_free_checked(rt);
}
static void test_inline_state_is_an_aligned_copy_dropped_once(void **s)
{
    (void)s;
    run_both_flavors(copied_and_dropped);
}

/* Size 0: a valid pointer to no bytes; drop may be NULL for any size. */
static atomic_uintptr_t empty_seen;
static int empty_poll(void *s, ek_cx *cx, void **out)
{
    (void)cx;
    atomic_store(&empty_seen, (uintptr_t)s);
    *out = (void *)(uintptr_t)7;
    return EK_OK;
}
static int read_int_poll(void *s, ek_cx *cx, void **out)
{
    (void)cx;
    *out = (void *)(intptr_t) * (int *)s;
    return EK_OK;
}
static void test_inline_state_of_zero_bytes_and_without_drop(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_join *j = NULL;
    void *out = NULL;
    assert_int_equal(ek_spawn_inline(rt, empty_poll, NULL, NULL, 0, NULL, &j), EK_OK);
    assert_int_equal(ek_join_wait(j, &out), EK_OK);
    ek_join_detach(j);
    assert_int_equal((uintptr_t)out, 7);
    assert_true(atomic_load(&empty_seen) != 0);
    assert_int_equal(atomic_load(&empty_seen) % 16, 0);
    int v = 41;
    assert_int_equal(ek_spawn_inline(rt, read_int_poll, NULL, &v, sizeof v, NULL, &j), EK_OK);
    v = 0;
    assert_int_equal(ek_join_wait(j, &out), EK_OK);
    ek_join_detach(j);
    assert_int_equal((intptr_t)out, 41);
    ekt_rt_free_checked(rt);
}

/* ---- cancellation and shutdown drop the state and free the cell ---- */

static void cancelled_and_shut_down(int flavor)
{
    ek_runtime *rt = ekt_rt(flavor, 2);
    enum { N = 64 };
    static probe probes[N];
    ek_join *joins[N];
    unsigned char buf[EK_SPAWN_INLINE_MAX];
    for (int i = 0; i < N; i++) {
        probe_init(&probes[i]);
        size_t size = sizes[(size_t)i % NSIZES];
        fill(buf, size, &probes[i], UINT32_MAX);
        assert_int_equal(
            ek_spawn_inline(rt, probe_poll, probe_drop, buf, size, NULL, i % 2 ? &joins[i] : NULL),
            EK_OK);
    }
    /* Abort the odd ones: their drop runs, their joins see the cancellation. */
    for (int i = 1; i < N; i += 2) {
        assert_int_equal(ek_join_abort(joins[i]), EK_OK);
        assert_int_equal(ek_join_wait(joins[i], NULL), EK_ECANCELED);
        ek_join_detach(joins[i]);
        assert_int_equal(atomic_load(&probes[i].drops), 1);
    }
    /* Shutdown drops the rest (idle, or never polled yet). */
    assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&probes[i].drops), 1);
        assert_int_equal(atomic_load(&probes[i].bad), 0);
    }
    ekt_rt_free_checked(rt); /* every cell went back: nothing leaked */
}
static void test_inline_state_is_dropped_by_abort_and_shutdown(void **s)
{
    (void)s;
    run_both_flavors(cancelled_and_shut_down);
}

/* ---- errors: what is refused, and that the state is consumed ---- */

static atomic_uintptr_t dropped_arg;
static atomic_int error_drops;
static void record_drop(void *s)
{
    atomic_store(&dropped_arg, (uintptr_t)s);
    atomic_fetch_add(&error_drops, 1);
}
static void expect_dropped(const void *init)
{
    assert_int_equal(atomic_load(&error_drops), 1);
    assert_int_equal(atomic_load(&dropped_arg), (uintptr_t)init);
    atomic_store(&error_drops, 0);
    atomic_store(&dropped_arg, 0);
}

static void test_inline_spawn_errors_consume_the_callers_state(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    unsigned char buf[EK_SPAWN_INLINE_MAX + 16] = {0};
    ek_join *j = (ek_join *)(uintptr_t)1;
    atomic_store(&error_drops, 0);

    /* Too large: EK_EINVAL, the caller's bytes dropped, *join NULL. */
    assert_int_equal(
        ek_spawn_inline(rt, ekt_ret_state, record_drop, buf, EK_SPAWN_INLINE_MAX + 1, NULL, &j),
        EK_EINVAL);
    assert_null(j);
    expect_dropped(buf);
    assert_int_equal(ek_spawn_inline(rt, ekt_ret_state, record_drop, buf, SIZE_MAX, NULL, NULL),
                     EK_EINVAL);
    expect_dropped(buf);
    /* No poll, no runtime, a handle of another type: dropped too. */
    assert_int_equal(ek_spawn_inline(rt, NULL, record_drop, buf, 8, NULL, NULL), EK_EINVAL);
    expect_dropped(buf);
    assert_int_equal(ek_spawn_inline(NULL, ekt_ret_state, record_drop, buf, 8, NULL, NULL),
                     EK_EINVAL);
    expect_dropped(buf);
    ek_builder *b = ekt_builder(EK_FLAVOR_MULTI_THREAD, 1, -1, 0);
    assert_int_equal(
        ek_spawn_inline((ek_runtime *)b, ekt_ret_state, record_drop, buf, 8, NULL, NULL),
        EK_EINVAL);
    expect_dropped(buf);
    assert_int_equal(
        ek_spawn_local_inline((ek_runtime *)b, ekt_ret_state, record_drop, buf, 8, NULL, NULL),
        EK_EINVAL);
    expect_dropped(buf);
    ek_builder_free(b);
    /* No state given (init NULL with a size): nothing to drop. */
    j = (ek_join *)(uintptr_t)1;
    assert_int_equal(ek_spawn_inline(rt, ekt_ret_state, record_drop, NULL, 8, NULL, &j), EK_EINVAL);
    assert_null(j);
    j = (ek_join *)(uintptr_t)1;
    assert_int_equal(ek_spawn_local_inline(rt, ekt_ret_state, record_drop, NULL, 8, NULL, &j),
                     EK_EINVAL);
    assert_null(j);
    assert_int_equal(atomic_load(&error_drops), 0);
    /* The largest size is accepted. */
    assert_int_equal(
        ek_spawn_inline(rt, ekt_ret_state, record_drop, buf, EK_SPAWN_INLINE_MAX, NULL, &j), EK_OK);
    assert_int_equal(ek_join_wait(j, NULL), EK_OK);
    ek_join_detach(j);
    assert_int_equal(atomic_load(&error_drops), 1);
    assert_true(atomic_load(&dropped_arg) != (uintptr_t)buf); /* the task's copy */
    atomic_store(&error_drops, 0);

    /* Out of memory (one allocation per task without the slab): dropped. */
    if (!getenv("EKIDEN_CELL_SLAB")) {
        j = (ek_join *)(uintptr_t)1;
        ekt_alloc_fail_here_after(0);
        assert_int_equal(ek_spawn_inline(rt, ekt_ret_state, record_drop, buf, 8, NULL, &j),
                         EK_ENOMEM);
        ekt_alloc_fail_here_after(-1);
        assert_null(j);
        expect_dropped(buf);
    }

    /* Shut down: EK_ECLOSED, dropped on this thread. */
    assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
    j = (ek_join *)(uintptr_t)1;
    assert_int_equal(ek_spawn_inline(rt, ekt_ret_state, record_drop, buf, 8, NULL, &j), EK_ECLOSED);
    assert_null(j);
    expect_dropped(buf);
    assert_int_equal(ek_spawn_local_inline(rt, ekt_ret_state, record_drop, buf, 8, NULL, NULL),
                     EK_ECLOSED);
    expect_dropped(buf);
    ekt_rt_free_checked(rt);
}

/* From a blocking-pool thread a local spawn is refused with EK_EWRONGTHREAD,
 * the state dropped there. */
typedef struct wrong_thread_job {
    ek_runtime *rt;
    int rc;
    int drops_after;
} wrong_thread_job;
static int spawn_local_from_pool(void *arg, void **out)
{
    wrong_thread_job *w = arg;
    unsigned char bytes[16] = {0};
    w->rc =
        ek_spawn_local_inline(w->rt, ekt_ret_state, record_drop, bytes, sizeof bytes, NULL, NULL);
    w->drops_after = atomic_load(&error_drops);
    *out = NULL;
    return EK_OK;
}
static void test_inline_local_spawn_from_the_pool_is_refused(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    atomic_store(&error_drops, 0);
    wrong_thread_job w = {.rt = rt};
    ek_join *j = NULL;
    assert_int_equal(ek_spawn_blocking(rt, spawn_local_from_pool, NULL, &w, NULL, &j), EK_OK);
    assert_int_equal(ek_join_wait(j, NULL), EK_OK);
    ek_join_detach(j);
    assert_int_equal(w.rc, EK_EWRONGTHREAD);
    assert_int_equal(w.drops_after, 1);
    atomic_store(&error_drops, 0);
    ekt_rt_free_checked(rt);
}

/* Spawns racing a shutdown: every state is dropped exactly once, whichever
 * of the spawn's paths (refused at the check, refused by the scheduler's list
 * after the task was made, run, cancelled) it took, and the runtime's memory
 * goes with its free (a spawn listed before the shutdown and submitted after
 * its drain leaked its cell and the runtime: test_sched's late submit). */
enum { RACERS = 2 };
typedef struct racer {
    ek_runtime *rt;
    probe probes[256];
    int spawned, refused;
} racer;
static void *race_spawns(void *arg)
{
    racer *r = arg;
    unsigned char buf[48];
    for (int i = 0; i < 256; i++) {
        probe_init(&r->probes[i]);
        fill(buf, sizeof buf, &r->probes[i], i % 3 == 0 ? UINT32_MAX : 2);
        int rc = ek_spawn_inline(r->rt, probe_poll, probe_drop, buf, sizeof buf, NULL, NULL);
        if (rc == EK_OK)
            r->spawned++;
        else if (rc == EK_ECLOSED)
            r->refused++;
        else
            abort();
    }
    return NULL;
}
static void test_inline_spawns_racing_shutdown_drop_every_state_once(void **s)
{
    (void)s;
    for (int round = 0; round < (int)ekt_scale(20); round++) {
        ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
        static racer racers[RACERS];
        pthread_t th[RACERS];
        for (int k = 0; k < RACERS; k++) {
            racers[k].rt = rt;
            racers[k].spawned = racers[k].refused = 0;
            assert_int_equal(pthread_create(&th[k], NULL, race_spawns, &racers[k]), 0);
        }
        usleep((useconds_t)(round * 50));
        assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
        for (int k = 0; k < RACERS; k++) pthread_join(th[k], NULL);
        ekt_rt_free_checked(rt);
        for (int k = 0; k < RACERS; k++) {
            assert_int_equal(racers[k].spawned + racers[k].refused, 256);
            for (int i = 0; i < 256; i++) {
                assert_int_equal(atomic_load(&racers[k].probes[i].drops), 1);
                assert_int_equal(atomic_load(&racers[k].probes[i].bad), 0);
            }
        }
    }
}

/* ---- local inline tasks: polled and dropped on their own thread ---- */

static void test_local_inline_tasks_run_and_drop_on_their_thread(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    enum { N = 16 };
    static probe done[N], idle[N];
    ek_join *joins[N];
    unsigned char buf[EK_SPAWN_INLINE_MAX];
    for (int i = 0; i < N; i++) {
        size_t size = sizes[(size_t)i % NSIZES];
        probe_init(&done[i]);
        probe_own(&done[i], pthread_self());
        fill(buf, size, &done[i], 3);
        assert_int_equal(
            ek_spawn_local_inline(rt, probe_poll, probe_drop, buf, size, NULL, &joins[i]), EK_OK);
        probe_init(&idle[i]);
        probe_own(&idle[i], pthread_self());
        fill(buf, size, &idle[i], UINT32_MAX);
        assert_int_equal(ek_spawn_local_inline(rt, probe_poll, probe_drop, buf, size, NULL, NULL),
                         EK_OK);
    }
    /* Waiting here runs them here. */
    for (int i = 0; i < N; i++) {
        void *out = NULL;
        assert_int_equal(ek_join_wait(joins[i], &out), EK_OK);
        assert_int_equal((uintptr_t)out, sizes[(size_t)i % NSIZES]);
        ek_join_detach(joins[i]);
        assert_int_equal(atomic_load(&done[i].polls), 4);
        assert_int_equal(atomic_load(&done[i].drops), 1);
    }
    /* Shut down by this thread: the idle ones are dropped here, once. */
    ekt_rt_free_checked(rt);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&idle[i].drops), 1);
        assert_int_equal(atomic_load(&done[i].wrong_thread) + atomic_load(&idle[i].wrong_thread),
                         0);
        assert_int_equal(atomic_load(&done[i].bad) + atomic_load(&idle[i].bad), 0);
    }
}

/* Shut down by another thread: nothing is dropped there; the owner drops its
 * local inline tasks at its next spawn (EK_ECLOSED). */
static void *shut_down(void *arg)
{
    ek_runtime_shutdown(arg, UINT64_MAX);
    return NULL;
}
static void test_local_inline_tasks_shut_down_elsewhere_drop_on_their_thread(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    enum { N = 8 };
    static probe idle[N];
    unsigned char buf[64];
    for (int i = 0; i < N; i++) {
        probe_init(&idle[i]);
        probe_own(&idle[i], pthread_self());
        fill(buf, sizeof buf, &idle[i], UINT32_MAX);
        assert_int_equal(
            ek_spawn_local_inline(rt, probe_poll, probe_drop, buf, sizeof buf, NULL, NULL), EK_OK);
    }
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, shut_down, rt), 0);
    pthread_join(th, NULL);
    for (int i = 0; i < N; i++) assert_int_equal(atomic_load(&idle[i].drops), 0);
    atomic_store(&error_drops, 0);
    assert_int_equal(ek_spawn_local_inline(rt, ekt_ret_state, record_drop, buf, 8, NULL, NULL),
                     EK_ECLOSED);
    expect_dropped(buf);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&idle[i].drops), 1);
        assert_int_equal(atomic_load(&idle[i].wrong_thread), 0);
    }
    ekt_rt_free_checked(rt);
}

/* Spawned inside a task, a local inline task stays on that worker, dropped
 * there by the runtime's shutdown. */
typedef struct pin {
    probe p;
    atomic_int ready;
} pin;
static int spawn_pinned(void *s, ek_cx *cx, void **out)
{
    pin *pn = s;
    probe_init(&pn->p);
    probe_own(&pn->p, pthread_self());
    unsigned char buf[32];
    fill(buf, sizeof buf, &pn->p, UINT32_MAX);
    int rc = ek_spawn_local_inline(ek_cx_runtime(cx), probe_poll, probe_drop, buf, sizeof buf, NULL,
                                   NULL);
    atomic_store(&pn->ready, 1);
    *out = NULL;
    return rc;
}
static void test_worker_local_inline_tasks_drop_on_their_worker(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    enum { N = 8 };
    static pin pins[N];
    for (int i = 0; i < N; i++) {
        atomic_store(&pins[i].ready, 0);
        assert_int_equal(ekt_spawn_join(rt, spawn_pinned, &pins[i], NULL), EK_OK);
    }
    for (int i = 0; i < N; i++)
        while (atomic_load(&pins[i].p.polls) == 0) usleep(1000);
    ek_runtime_free(rt);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&pins[i].p.drops), 1);
        assert_int_equal(atomic_load(&pins[i].p.wrong_thread), 0);
        assert_int_equal(atomic_load(&pins[i].p.bad), 0);
    }
}

#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_inline_state_is_an_aligned_copy_dropped_once),
        T(test_inline_state_of_zero_bytes_and_without_drop),
        T(test_inline_state_is_dropped_by_abort_and_shutdown),
        T(test_inline_spawn_errors_consume_the_callers_state),
        T(test_inline_local_spawn_from_the_pool_is_refused),
        T(test_inline_spawns_racing_shutdown_drop_every_state_once),
        T(test_local_inline_tasks_run_and_drop_on_their_thread),
        T(test_local_inline_tasks_shut_down_elsewhere_drop_on_their_thread),
        T(test_worker_local_inline_tasks_drop_on_their_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
