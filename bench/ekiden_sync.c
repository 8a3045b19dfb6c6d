/*
 * ekiden_sync.c - the ekiden side of the sync.* workloads: Tokio's
 * benches/sync_mpsc.rs and benches/sync_semaphore.rs with the same parameters
 * (6 workers; the Tokio side is bench/peers/tokio/src/bin/sync_bench.rs, same
 * names, same warm-up and iteration counts). Public header only.
 *
 * Messages are void *. Where Tokio moves a 512 B / 32 KiB value through the
 * channel, a C program sends a pointer to a heap buffer: each iteration
 * allocates and zeroes the buffer (as T::default() builds the value), sends the
 * pointer, receives it and frees it.
 *
 * Output: one line per workload, `BENCH <name> <median_ns_per_iter> <iterations>`.
 */
#include "bench_util.h"
#include "ekiden.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKERS 6

static ek_runtime *rt;

static void no_drop(void *s)
{
    (void)s;
}
static void free_msg(void *m)
{
    free(m);
}

/* Drive poll(state) to completion on the bench thread. */
static int block_on(ek_poll_fn poll, void *state, void **out)
{
    ek_future *f = NULL;
    int rc = ek_future_new(poll, no_drop, state, &f);
    if (rc != EK_OK) return rc;
    return ek_block_on(rt, f, out);
}

/* ---- send_data: one message through a fresh channel of capacity 1,000 ---- */

typedef struct send_one {
    ek_mpsc_sender *tx;
    void *msg;
} send_one;

static int send_one_poll(void *s, ek_cx *cx, void **out)
{
    send_one *st = s;
    (void)out;
    return ek_mpsc_send(st->tx, cx, st->msg);
}

static int recv_one_poll(void *s, ek_cx *cx, void **out)
{
    return ek_mpsc_recv(s, cx, out);
}

static size_t data_size;

static int send_data_iter(void *arg)
{
    (void)arg;
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    if (ek_mpsc_bounded(1000, free_msg, &tx, &rx) != EK_OK) return 1;
    void *msg = calloc(1, data_size);
    send_one st = {tx, msg};
    void *got = NULL;
    int rc = block_on(send_one_poll, &st, NULL);
    if (rc == EK_OK) rc = block_on(recv_one_poll, rx, &got);
    if (rc == EK_OK && got != msg) rc = 1;
    free(msg);
    ek_mpsc_sender_drop(tx);
    ek_mpsc_receiver_drop(rx);
    return rc;
}

/* ---- contention: 5 producer tasks x 1,000 sends, receiver takes 5,000 ---- */

typedef struct producer {
    ek_mpsc_sender *tx;
    uintptr_t i;
} producer;

static int producer_poll(void *s, ek_cx *cx, void **out)
{
    producer *p = s;
    (void)out;
    while (p->i < 1000) {
        int rc = ek_mpsc_send(p->tx, cx, (void *)p->i);
        if (rc != EK_OK) return rc;
        p->i++;
    }
    return EK_OK;
}
static void producer_drop(void *s)
{
    producer *p = s;
    ek_mpsc_sender_drop(p->tx);
    free(p);
}

typedef struct contention {
    size_t cap; /* 0: unbounded */
    ek_mpsc_receiver *rx;
    int received;
    int started;
} contention;

static int contention_poll(void *s, ek_cx *cx, void **out)
{
    contention *c = s;
    (void)out;
    if (!c->started) {
        c->started = 1;
        ek_mpsc_sender *tx;
        int rc = c->cap ? ek_mpsc_bounded(c->cap, NULL, &tx, &c->rx)
                        : ek_mpsc_unbounded(NULL, &tx, &c->rx);
        if (rc != EK_OK) return rc;
        for (int i = 0; i < 5; i++) {
            producer *p = calloc(1, sizeof *p);
            if (p == NULL || ek_mpsc_sender_clone(tx, &p->tx) != EK_OK) return EK_ENOMEM;
            rc = ek_spawn(ek_cx_runtime(cx), producer_poll, producer_drop, p, NULL, NULL);
            if (rc != EK_OK) return rc;
        }
        ek_mpsc_sender_drop(tx);
    }
    while (c->received < 5000) {
        void *m;
        int rc = ek_mpsc_recv(c->rx, cx, &m);
        if (rc != EK_OK) return rc;
        c->received++;
    }
    ek_mpsc_receiver_drop(c->rx);
    return EK_OK;
}

static int contention_iter(void *arg)
{
    contention c = {*(size_t *)arg, NULL, 0, 0};
    return block_on(contention_poll, &c, NULL);
}

/* ---- uncontended: one task sends 5,000 then receives 5,000 ---- */

typedef struct uncontended {
    size_t cap; /* 0: unbounded */
    ek_mpsc_sender *tx;
    ek_mpsc_receiver *rx;
    uintptr_t sent;
    int received;
} uncontended;

static int uncontended_poll(void *s, ek_cx *cx, void **out)
{
    uncontended *u = s;
    (void)out;
    if (u->tx == NULL) {
        int rc = u->cap ? ek_mpsc_bounded(u->cap, NULL, &u->tx, &u->rx)
                        : ek_mpsc_unbounded(NULL, &u->tx, &u->rx);
        if (rc != EK_OK) return rc;
    }
    while (u->sent < 5000) {
        int rc = ek_mpsc_send(u->tx, cx, (void *)u->sent);
        if (rc != EK_OK) return rc; /* EK_PENDING when the budget runs out */
        u->sent++;
    }
    while (u->received < 5000) {
        void *m;
        int rc = ek_mpsc_recv(u->rx, cx, &m);
        if (rc != EK_OK) return rc;
        u->received++;
    }
    ek_mpsc_sender_drop(u->tx);
    ek_mpsc_receiver_drop(u->rx);
    return EK_OK;
}

static int uncontended_iter(void *arg)
{
    uncontended u = {*(size_t *)arg, NULL, NULL, 0, 0};
    return block_on(uncontended_poll, &u, NULL);
}

/* ---- semaphore ---- */

static ek_semaphore *sem;

/* Six sequential acquire + release inside one block_on. The permit object is
 * the caller's reusable waiter (made once, as Tokio's Acquire lives on the
 * stack). */
typedef struct seq_acquire {
    ek_semaphore_permit *p;
    int done;
} seq_acquire;

static int seq_acquire_poll(void *s, ek_cx *cx, void **out)
{
    seq_acquire *q = s;
    (void)out;
    while (q->done < 6) {
        int rc = ek_semaphore_acquire(q->p, cx, 1);
        if (rc != EK_OK) return rc;
        ek_semaphore_permit_release(q->p);
        q->done++;
    }
    return EK_OK;
}

static int sem_uncontended_iter(void *arg)
{
    seq_acquire *q = arg;
    q->done = 0;
    return block_on(seq_acquire_poll, q, NULL);
}

/* A task: acquire one permit, release it. */
static int acquire_release_poll(void *s, ek_cx *cx, void **out)
{
    (void)out;
    int rc = ek_semaphore_acquire(s, cx, 1);
    if (rc != EK_OK) return rc;
    ek_semaphore_permit_release(s);
    return EK_OK;
}
static void acquire_release_drop(void *s)
{
    ek_semaphore_permit_drop(s);
}

typedef struct concurrent {
    ek_join *j[6];
    int spawned, joined;
} concurrent;

static int concurrent_poll(void *s, ek_cx *cx, void **out)
{
    concurrent *c = s;
    (void)out;
    if (!c->spawned) {
        c->spawned = 1;
        for (int i = 0; i < 6; i++) {
            ek_semaphore_permit *p;
            int rc = ek_semaphore_permit_new(sem, &p);
            if (rc != EK_OK) return rc;
            rc = ek_spawn(ek_cx_runtime(cx), acquire_release_poll, acquire_release_drop, p, NULL,
                          &c->j[i]);
            if (rc != EK_OK) return rc;
        }
    }
    while (c->joined < 6) {
        int rc = ek_join_poll(c->j[c->joined], cx, NULL);
        if (rc == EK_PENDING) return rc;
        ek_join_detach(c->j[c->joined]);
        if (rc != EK_OK) return rc;
        c->joined++;
    }
    return EK_OK;
}

static int sem_concurrent_iter(void *arg)
{
    (void)arg;
    concurrent c;
    memset(&c, 0, sizeof c);
    return block_on(concurrent_poll, &c, NULL);
}

/* ------------------------------------------------------------------------ */

static void run(const char *name, int warmup, int n, bench_iter_fn fn, void *arg)
{
    if (!bench_selected(name)) return;
    if (bench_measure(name, warmup, n, fn, arg) != 0) {
        fprintf(stderr, "%s failed\n", name);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    bench_init(argc, argv);
    int n = bench_iters(100);
    ek_builder *b = NULL;
    if (ek_builder_new(&b) != EK_OK || ek_builder_set_worker_threads(b, WORKERS) != EK_OK ||
        ek_runtime_new(b, &rt) != EK_OK) {
        fprintf(stderr, "runtime creation failed\n");
        return 1;
    }
    ek_builder_free(b);

    data_size = 512;
    run("sync_mpsc.send_data_512", 10, n, send_data_iter, NULL);
    data_size = 32 * 1024;
    run("sync_mpsc.send_data_32k", 10, n, send_data_iter, NULL);
    size_t cap_big = 1000000, cap_full = 100, unbounded = 0;
    run("sync_mpsc.contention_bounded", 5, n, contention_iter, &cap_big);
    run("sync_mpsc.contention_bounded_full", 5, n, contention_iter, &cap_full);
    run("sync_mpsc.contention_unbounded", 5, n, contention_iter, &unbounded);
    run("sync_mpsc.uncontended_bounded", 5, n, uncontended_iter, &cap_big);
    run("sync_mpsc.uncontended_unbounded", 5, n, uncontended_iter, &unbounded);

    if (ek_semaphore_new(10, &sem) != EK_OK) return 1;
    seq_acquire q = {NULL, 0};
    if (ek_semaphore_permit_new(sem, &q.p) != EK_OK) return 1;
    run("sync_semaphore.uncontended", 10, n, sem_uncontended_iter, &q);
    run("sync_semaphore.uncontended_concurrent_multi", 10, n, sem_concurrent_iter, NULL);
    ek_semaphore_permit_drop(q.p);
    ek_semaphore_drop(sem);
    if (ek_semaphore_new(5, &sem) != EK_OK) return 1;
    run("sync_semaphore.contended_concurrent_multi", 10, n, sem_concurrent_iter, NULL);
    ek_semaphore_drop(sem);

    ek_runtime_free(rt);
    return 0;
}
