/* test_queue.c - the work-stealing ring and the global queue, tested alone:
 * every task pushed comes out exactly once, whoever takes it. */
#include "support.h"

#include "sched/inject.h"
#include "sched/queue.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Fake tasks: only their identity matters; the id lives in `status`. */
static ek__task *make_tasks(int n)
{
    ek__task *t = calloc((size_t)n, sizeof *t);
    for (int i = 0; i < n; i++) t[i].status = i;
    return t;
}

static void test_push_pop_is_fifo(void **s)
{
    (void)s;
    ek__local_queue *q = aligned_alloc(64, sizeof *q);
    ek__inject inj;
    ek__queue_init(q);
    ek__inject_init(&inj);
    ek__task *t = make_tasks(100);
    for (int i = 0; i < 100; i++) assert_false(ek__queue_push_back(q, &t[i], &inj));
    assert_int_equal(ek__queue_len(q), 100);
    for (int i = 0; i < 100; i++) assert_ptr_equal(ek__queue_pop(q), &t[i]);
    assert_null(ek__queue_pop(q));
    assert_int_equal(ek__inject_len(&inj), 0);
    ek__inject_destroy(&inj);
    free(t);
    free(q);
}

static void test_overflow_moves_half_plus_one_to_inject(void **s)
{
    (void)s;
    ek__local_queue *q = aligned_alloc(64, sizeof *q);
    ek__inject inj;
    ek__queue_init(q);
    ek__inject_init(&inj);
    ek__task *t = make_tasks(EK__QUEUE_CAP + 1);
    for (unsigned i = 0; i < EK__QUEUE_CAP; i++) assert_false(ek__queue_push_back(q, &t[i], &inj));
    assert_true(ek__queue_push_back(q, &t[EK__QUEUE_CAP], &inj));
    assert_int_equal(ek__queue_len(q), EK__QUEUE_CAP / 2);
    assert_int_equal(ek__inject_len(&inj), EK__QUEUE_CAP / 2 + 1);
    /* The oldest half went to the global queue, in order, then the new task. */
    for (unsigned i = 0; i < EK__QUEUE_CAP / 2; i++) assert_ptr_equal(ek__inject_pop(&inj), &t[i]);
    assert_ptr_equal(ek__inject_pop(&inj), &t[EK__QUEUE_CAP]);
    for (unsigned i = EK__QUEUE_CAP / 2; i < EK__QUEUE_CAP; i++)
        assert_ptr_equal(ek__queue_pop(q), &t[i]);
    ek__inject_destroy(&inj);
    free(t);
    free(q);
}

static void test_steal_takes_half_rounded_up(void **s)
{
    (void)s;
    ek__local_queue *a = aligned_alloc(64, sizeof *a), *b = aligned_alloc(64, sizeof *b);
    ek__inject inj;
    ek__queue_init(a);
    ek__queue_init(b);
    ek__inject_init(&inj);
    ek__task *t = make_tasks(7);
    for (int i = 0; i < 7; i++) ek__queue_push_back(a, &t[i], &inj);
    uint32_t n = 0;
    ek__task *got = ek__queue_steal_into(a, b, &n);
    assert_int_equal(n, 4);
    assert_ptr_equal(got, &t[3]); /* the last stolen is returned to run now */
    assert_int_equal(ek__queue_len(b), 3);
    assert_int_equal(ek__queue_len(a), 3);
    for (int i = 0; i < 3; i++) assert_ptr_equal(ek__queue_pop(b), &t[i]);
    for (int i = 4; i < 7; i++) assert_ptr_equal(ek__queue_pop(a), &t[i]);
    /* Nothing to steal from an empty queue. */
    assert_null(ek__queue_steal_into(a, b, &n));
    assert_int_equal(n, 0);
    ek__inject_destroy(&inj);
    free(t);
    free(a);
    free(b);
}

/* Stress: the owner pushes and pops while thieves steal into their own queues
 * and drain them; the global queue collects overflow. Every task must be seen
 * exactly once. */
#define THIEVES 3
typedef struct {
    ek__local_queue *victim;
    ek__local_queue *own;
    atomic_uchar *seen;
    atomic_int *stop;
    long got;
} thief;

static void mark(atomic_uchar *seen, ek__task *t)
{
    unsigned char prev = atomic_fetch_add(&seen[t->status], 1);
    if (prev != 0) abort(); /* seen twice */
}

static void *thief_main(void *arg)
{
    thief *th = arg;
    for (;;) {
        uint32_t n = 0;
        ek__task *t = ek__queue_steal_into(th->victim, th->own, &n);
        if (t) {
            mark(th->seen, t);
            th->got++;
        }
        ek__task *x;
        while ((x = ek__queue_pop(th->own))) {
            mark(th->seen, x);
            th->got++;
        }
        if (!t && atomic_load(th->stop)) break;
    }
    return NULL;
}

static void test_concurrent_steal_push_pop_loses_and_duplicates_nothing(void **s)
{
    (void)s;
    int n = (int)ekt_scale(2000000);
    ek__task *t = make_tasks(n);
    atomic_uchar *seen = calloc((size_t)n, 1);
    ek__local_queue *owner = aligned_alloc(64, sizeof *owner);
    ek__queue_init(owner);
    ek__inject inj;
    ek__inject_init(&inj);
    atomic_int stop = 0;
    thief th[THIEVES];
    pthread_t tid[THIEVES];
    for (int i = 0; i < THIEVES; i++) {
        th[i] = (thief){owner, aligned_alloc(64, sizeof(ek__local_queue)), seen, &stop, 0};
        ek__queue_init(th[i].own);
        pthread_create(&tid[i], NULL, thief_main, &th[i]);
    }
    long owner_got = 0;
    for (int i = 0; i < n; i++) {
        ek__queue_push_back(owner, &t[i], &inj);
        if (i % 3 == 0) {
            ek__task *x = ek__queue_pop(owner);
            if (x) {
                mark(seen, x);
                owner_got++;
            }
        }
    }
    ek__task *x;
    while ((x = ek__queue_pop(owner))) {
        mark(seen, x);
        owner_got++;
    }
    atomic_store(&stop, 1);
    long total = owner_got;
    for (int i = 0; i < THIEVES; i++) {
        pthread_join(tid[i], NULL);
        total += th[i].got;
        free(th[i].own);
    }
    while ((x = ek__inject_pop(&inj))) {
        mark(seen, x);
        total++;
    }
    assert_int_equal(total, n);
    for (int i = 0; i < n; i++) assert_int_equal(atomic_load(&seen[i]), 1);
    ek__inject_destroy(&inj);
    free(owner);
    free(seen);
    free(t);
}

/* The global queue stays FIFO across single and batch pushes, and its length
 * counts every queued task. */
static void test_inject_singles_and_batches_keep_fifo_order(void **s)
{
    (void)s;
    ek__inject inj;
    ek__inject_init(&inj);
    ek__task *t = make_tasks(6);
    ek__inject_push(&inj, &t[0]);
    ek__inject_push(&inj, &t[1]);
    assert_int_equal(ek__inject_len(&inj), 2);
    ek__inject_push(&inj, &t[2]);
    t[3].next = &t[4];
    ek__inject_push_batch(&inj, &t[3], &t[4], 2);
    ek__inject_push(&inj, &t[5]);
    ek__task *first = NULL;
    assert_int_equal(ek__inject_pop_n(&inj, 4, &first), 4);
    for (int i = 0; i < 4; i++) {
        assert_ptr_equal(first, &t[i]);
        first = first->next;
    }
    assert_null(first);
    assert_ptr_equal(ek__inject_pop(&inj), &t[4]);
    assert_ptr_equal(ek__inject_pop(&inj), &t[5]);
    assert_null(ek__inject_pop(&inj));
    assert_int_equal(ek__inject_len(&inj), 0);
    ek__inject_destroy(&inj);
    free(t);
}

/* Producers push single tasks (and every 64th pair as a batch) while the main
 * thread pops batches: each task comes out once, and each producer's tasks in
 * the order it pushed them. */
#define PRODUCERS 3
typedef struct producer {
    ek__inject *inj;
    ek__task *t; /* this producer's tasks, pushed in index order */
    int n;
} producer;

static void *producer_main(void *arg)
{
    producer *p = arg;
    for (int i = 0; i < p->n; i++) {
        if (i % 64 == 0 && i + 1 < p->n) {
            p->t[i].next = &p->t[i + 1];
            ek__inject_push_batch(p->inj, &p->t[i], &p->t[i + 1], 2);
            i++;
        } else {
            ek__inject_push(p->inj, &p->t[i]);
        }
        if (i % 97 == 0) sched_yield();
    }
    return NULL;
}

static void test_concurrent_inject_pushes_lose_nothing_and_keep_order(void **s)
{
    (void)s;
    int per = (int)ekt_scale(300000);
    ek__inject inj;
    ek__inject_init(&inj);
    producer p[PRODUCERS];
    pthread_t tid[PRODUCERS];
    for (int k = 0; k < PRODUCERS; k++) {
        p[k] = (producer){&inj, make_tasks(per), per};
        /* The id says whose and which: producer k's i-th task is k * per + i. */
        for (int i = 0; i < per; i++) p[k].t[i].status = k * per + i;
        pthread_create(&tid[k], NULL, producer_main, &p[k]);
    }
    int next[PRODUCERS] = {0};
    long got = 0, total = (long)per * PRODUCERS;
    size_t batch = 1;
    bool in_order = true;
    while (got < total) {
        ek__task *x = NULL;
        size_t n = ek__inject_pop_n(&inj, batch, &x);
        batch = batch % 37 + 1;
        if (n == 0) sched_yield();
        for (; x != NULL; x = x->next, got++) {
            int k = x->status / per, i = x->status % per;
            if (i != next[k]) in_order = false;
            next[k] = i + 1;
        }
    }
    for (int k = 0; k < PRODUCERS; k++) pthread_join(tid[k], NULL);
    assert_true(in_order);
    assert_int_equal(got, total);
    for (int k = 0; k < PRODUCERS; k++) assert_int_equal(next[k], per);
    assert_null(ek__inject_pop(&inj));
    assert_int_equal(ek__inject_len(&inj), 0);
    for (int k = 0; k < PRODUCERS; k++) free(p[k].t);
    ek__inject_destroy(&inj);
}

/* ek__lock (common.h), the injection queue's lock: 4 threads take it in turn
 * around a non-atomic counter and a check that nobody else is inside; with
 * more threads than cores, holders get preempted and the others go through
 * the spin and the futex sleep. Caught by a lost increment or two holders. */
typedef struct {
    ek__lock lock;
    long count;   /* under lock */
    int inside;   /* under lock: holders now (must be 1) */
    bool overlap; /* under lock */
    long per_thread;
} lock_ctx;

static void *lock_thread(void *arg)
{
    lock_ctx *c = arg;
    for (long i = 0; i < c->per_thread; i++) {
        ek__lock_acquire(&c->lock);
        if (++c->inside != 1) c->overlap = true;
        c->count++;
        if (i % 64 == 0) sched_yield(); /* a holder that loses its core */
        c->inside--;
        ek__lock_release(&c->lock);
    }
    return NULL;
}

static void test_lock_excludes_and_wakes_sleepers(void **s)
{
    (void)s;
    lock_ctx c = {.per_thread = ekt_scale(20000)};
    ek__lock_init(&c.lock);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, lock_thread, &c), 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    assert_false(c.overlap);
    assert_int_equal(c.count, 4 * c.per_thread);
    assert_int_equal(atomic_load(&c.lock.word), 0); /* released, nobody marked asleep */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_pop_is_fifo),
        cmocka_unit_test(test_overflow_moves_half_plus_one_to_inject),
        cmocka_unit_test(test_steal_takes_half_rounded_up),
        cmocka_unit_test(test_concurrent_steal_push_pop_loses_and_duplicates_nothing),
        cmocka_unit_test(test_inject_singles_and_batches_keep_fifo_order),
        cmocka_unit_test(test_concurrent_inject_pushes_lose_nothing_and_keep_order),
        cmocka_unit_test(test_lock_excludes_and_wakes_sleepers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
