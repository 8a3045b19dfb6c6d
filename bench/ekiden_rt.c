/*
 * ekiden_rt.c - the ekiden side of the scheduler, timer and memory workloads.
 *
 * Each workload mirrors the Tokio peer (bench/peers/tokio/src/bin/rt_bench.rs),
 * which follows the parameters of Tokio's benches/rt_multi_threaded.rs: 4 worker
 * threads, NUM_SPAWN = 10,000, a 10 µs stall that yields the CPU between checks,
 * and so on (docs/benchmarks.md describes each one). Only the public header is used:
 * a task is a poll function plus a state, exactly as a C user would write it.
 * Where Tokio's task holds its future in its own allocation (an `async move`
 * block with captured state: busy1's yielders, ping_pong's tasks, yield_many's),
 * the state is spawned inline too (ek_spawn_inline), the fair comparison; where
 * the state fits a pointer it travels in the pointer (chained_spawn).
 *
 * Output, one line per workload: BENCH <name> <median_ns> <iterations>
 * (bench/bench_util.h); arguments filter workloads, BENCH_ITERS sets iterations.
 * BENCH_EACH=1 also prints each million_timers run's figures to stderr (the
 * first run carves fresh slab memory, the later ones reuse freed cells).
 *
 * Where Tokio's bench blocks on a std::sync::mpsc channel, this file blocks on a
 * `signal` (mutex + condition variable + count): the same blocking primitive.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <ekiden.h>

#include "bench_util.h"

#define WORKERS   4
#define NUM_SPAWN 10000
#define STALL_NS  10000

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        int check_rc_ = (expr);                                                                    \
        if (check_rc_ < 0) {                                                                       \
            fprintf(stderr, "ekiden_rt: %s:%d: %s: %s\n", __FILE__, __LINE__, #expr,               \
                    ek_strerror(check_rc_));                                                       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* ---- helpers: a blocking signal (Tokio's bench uses a std channel) ---------- */

struct signal {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned count;
};

static void signal_init(struct signal *s)
{
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->count = 0;
}

static void signal_post(struct signal *s)
{
    pthread_mutex_lock(&s->mu);
    s->count++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void signal_wait(struct signal *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->count == 0) pthread_cond_wait(&s->cv, &s->mu);
    s->count--;
    pthread_mutex_unlock(&s->mu);
}

static void signal_destroy(struct signal *s)
{
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

/* Busy for 10 µs, giving the CPU away between checks (Tokio's stall()). */
static void stall(void)
{
    uint64_t start = bench_now_ns();
    while (bench_now_ns() - start < STALL_NS) sched_yield();
}

static ek_runtime *runtime_new(unsigned workers)
{
    ek_builder *b;
    ek_runtime *rt;
    CHECK(ek_builder_new(&b));
    CHECK(ek_builder_set_worker_threads(b, workers));
    CHECK(ek_runtime_new(b, &rt));
    ek_builder_free(b);
    return rt;
}

static void drop_nothing(void *state)
{
    (void)state;
}

/* Drive `poll(state)` to completion on this thread with ek_block_on. */
static void block_on(ek_runtime *rt, ek_poll_fn poll, void *state)
{
    ek_future *f;
    CHECK(ek_future_new(poll, drop_nothing, state, &f));
    CHECK(ek_block_on(rt, f, NULL));
}

/* A task that completes at once (Tokio: `async {}`). */
static int empty_poll(void *state, ek_cx *cx, void **out)
{
    (void)state;
    (void)cx;
    *out = NULL;
    return EK_OK;
}

/* ---- rt_multi.spawn_many_local --------------------------------------------- */

struct countdown {
    atomic_size_t left;
    struct signal done;
    ek_runtime *rt;
};

static int countdown_task_poll(void *state, ek_cx *cx, void **out)
{
    struct countdown *cd = state;
    (void)cx;
    *out = NULL;
    if (atomic_fetch_sub_explicit(&cd->left, 1, memory_order_relaxed) == 1) signal_post(&cd->done);
    return EK_OK;
}

/* Inside block_on: spawn NUM_SPAWN tasks, then block until the last one signals. */
static int spawn_many_local_root(void *state, ek_cx *cx, void **out)
{
    struct countdown *cd = state;
    ek_runtime *rt = ek_cx_runtime(cx);
    for (int i = 0; i < NUM_SPAWN; i++)
        CHECK(ek_spawn(rt, countdown_task_poll, drop_nothing, cd, NULL, NULL));
    signal_wait(&cd->done);
    *out = NULL;
    return EK_OK;
}

static int spawn_many_local_iter(void *arg)
{
    struct countdown *cd = arg;
    atomic_store_explicit(&cd->left, NUM_SPAWN, memory_order_relaxed);
    block_on(cd->rt, spawn_many_local_root, cd);
    return 0;
}

static void spawn_many_local(int n)
{
    struct countdown cd = {.rt = runtime_new(WORKERS)};
    signal_init(&cd.done);
    bench_measure("rt_multi.spawn_many_local", 3, n, spawn_many_local_iter, &cd);
    ek_runtime_free(cd.rt);
    signal_destroy(&cd.done);
}

/* ---- rt_multi.spawn_many_remote_{idle,busy1,busy2} ------------------------- */

struct remote {
    ek_runtime *rt;
    int count;
    ek_join **joins;
    int next; /* first join handle not yet awaited */
};

/* block_on: await every join handle in order. */
static int await_all_poll(void *state, ek_cx *cx, void **out)
{
    struct remote *r = state;
    while (r->next < r->count) {
        void *res;
        int rc = ek_join_poll(r->joins[r->next], cx, &res);
        if (rc == EK_PENDING) return EK_PENDING;
        CHECK(rc);
        ek_join_detach(r->joins[r->next]);
        r->next++;
    }
    *out = NULL;
    return EK_OK;
}

/* From the bench thread: spawn `count` empty tasks, then block_on their joins. */
static int remote_iter(void *arg)
{
    struct remote *r = arg;
    for (int i = 0; i < r->count; i++)
        CHECK(ek_spawn(r->rt, empty_poll, drop_nothing, NULL, NULL, &r->joins[i]));
    r->next = 0;
    block_on(r->rt, await_all_poll, r);
    return 0;
}

static atomic_bool busy_running;
/* Background tasks alive: the workload waits for them to end before freeing the
 * runtime, so that the runtime's shutdown is neither measured nor relied upon. */
static atomic_int busy_alive;

static void busy_drop(void *state)
{
    free(state);
    atomic_fetch_sub(&busy_alive, 1);
}

/* The drop of an inline state: the runtime frees the memory. */
static void busy_inline_drop(void *state)
{
    (void)state;
    atomic_fetch_sub(&busy_alive, 1);
}

/* busy1 background task: `while running { yield_now().await; stall(); }` */
static int busy_yield_poll(void *state, ek_cx *cx, void **out)
{
    bool *yielded = state;
    if (*yielded) stall();
    if (!atomic_load_explicit(&busy_running, memory_order_relaxed)) {
        *out = NULL;
        return EK_OK;
    }
    *yielded = true;
    return ek_yield_now(cx);
}

/* busy2 chain link: if running, stall and spawn the successor. */
static int busy_chain_poll(void *state, ek_cx *cx, void **out)
{
    (void)state;
    *out = NULL;
    if (atomic_load_explicit(&busy_running, memory_order_relaxed)) {
        stall();
        atomic_fetch_add(&busy_alive, 1);
        CHECK(ek_spawn(ek_cx_runtime(cx), busy_chain_poll, busy_drop, NULL, NULL, NULL));
    }
    return EK_OK;
}

/* busy2 starter (Tokio: `rt.spawn(async { iter(flag) })`). */
static int busy_chain_start_poll(void *state, ek_cx *cx, void **out)
{
    (void)state;
    *out = NULL;
    atomic_fetch_add(&busy_alive, 1);
    CHECK(ek_spawn(ek_cx_runtime(cx), busy_chain_poll, busy_drop, NULL, NULL, NULL));
    return EK_OK;
}

enum busy { IDLE, BUSY1, BUSY2 };

static void spawn_many_remote(const char *name, enum busy busy, int count, int n)
{
    struct remote r = {.rt = runtime_new(WORKERS), .count = count};
    r.joins = calloc((size_t)count, sizeof *r.joins);
    if (!r.joins) exit(1);
    atomic_store(&busy_running, true);
    if (busy == BUSY1) {
        for (int i = 0; i < 2 * WORKERS; i++) {
            bool yielded = false;
            atomic_fetch_add(&busy_alive, 1);
            CHECK(ek_spawn_inline(r.rt, busy_yield_poll, busy_inline_drop, &yielded, sizeof yielded,
                                  NULL, NULL));
        }
    } else if (busy == BUSY2) {
        for (int i = 0; i < WORKERS; i++)
            CHECK(ek_spawn(r.rt, busy_chain_start_poll, drop_nothing, NULL, NULL, NULL));
        /* the starters have run once a chain link exists for each */
        while (atomic_load(&busy_alive) < WORKERS) sched_yield();
    }
    bench_measure(name, 3, n, remote_iter, &r);
    atomic_store(&busy_running, false);
    while (atomic_load(&busy_alive) > 0) usleep(1000);
    ek_runtime_free(r.rt);
    free(r.joins);
}

/* ---- rt_multi.ping_pong ------------------------------------------------------ */

/*
 * The oneshot channel. With the library's ek_oneshot_* (ekiden/sync.h; CMake
 * defines EK_BENCH_HAVE_ONESHOT when core/sync implements it) that is what runs.
 * Before it existed, a one-shot cell built here from a mutex and a waker stood
 * in; it is kept as the fallback. Both carry no value (Tokio's bench sends `()`).
 */
#if EK_BENCH_HAVE_ONESHOT
#define ONESHOT_KIND "ek_oneshot"
typedef ek_oneshot_sender *os_tx;
typedef ek_oneshot_receiver *os_rx;

static void os_new(os_tx *tx, os_rx *rx)
{
    CHECK(ek_oneshot_new(NULL, tx, rx));
}

static void os_send(os_tx tx)
{
    CHECK(ek_oneshot_send(tx, NULL));
}

/* EK_OK once sent (the receiver is then released), else EK_PENDING. */
static int os_recv(os_rx rx, ek_cx *cx)
{
    void *v;
    int rc = ek_oneshot_recv(rx, cx, &v);
    if (rc == EK_PENDING) return EK_PENDING;
    CHECK(rc);
    ek_oneshot_receiver_drop(rx);
    return EK_OK;
}
#else
#define ONESHOT_KIND "bench mutex+waker cell"
/* Shared by sender and receiver, freed by whichever releases last. */
struct oneshot {
    pthread_mutex_t mu;
    bool sent;
    ek_waker *waker;
    atomic_int refs;
};
typedef struct oneshot *os_tx;
typedef struct oneshot *os_rx;

static void os_new(os_tx *tx, os_rx *rx)
{
    struct oneshot *o = malloc(sizeof *o);
    if (!o) exit(1);
    pthread_mutex_init(&o->mu, NULL);
    o->sent = false;
    o->waker = NULL;
    atomic_init(&o->refs, 2);
    *tx = *rx = o;
}

static void os_release(struct oneshot *o)
{
    if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1) {
        ek_waker_drop(o->waker);
        pthread_mutex_destroy(&o->mu);
        free(o);
    }
}

/* Send and release the sending side. */
static void os_send(os_tx o)
{
    pthread_mutex_lock(&o->mu);
    o->sent = true;
    ek_waker *w = o->waker;
    o->waker = NULL;
    pthread_mutex_unlock(&o->mu);
    ek_waker_wake(w);
    os_release(o);
}

/* EK_OK once sent (the receiving side is then released), else EK_PENDING. */
static int os_recv(os_rx o, ek_cx *cx)
{
    pthread_mutex_lock(&o->mu);
    if (o->sent) {
        pthread_mutex_unlock(&o->mu);
        os_release(o);
        return EK_OK;
    }
    if (!o->waker || !ek_waker_will_wake(o->waker, cx)) {
        ek_waker_drop(o->waker);
        o->waker = ek_cx_waker(cx);
    }
    pthread_mutex_unlock(&o->mu);
    return EK_PENDING;
}
#endif

#define PINGS 1000

struct ping_ctx {
    ek_runtime *rt;
    atomic_size_t left;
    struct signal done;
};

struct pong_task {
    os_rx rx1;
    os_tx tx2;
};

/* helper: `rx1.await; tx2.send(())` */
static int pong_poll(void *state, ek_cx *cx, void **out)
{
    struct pong_task *p = state;
    if (os_recv(p->rx1, cx) == EK_PENDING) return EK_PENDING;
    os_send(p->tx2);
    *out = NULL;
    return EK_OK;
}

struct ping_task {
    struct ping_ctx *ctx;
    os_rx rx2;
};

/* each ping: make two oneshots, spawn the helper, send on the first, await the
 * second, count down. */
static int ping_poll(void *state, ek_cx *cx, void **out)
{
    struct ping_task *p = state;
    if (!p->rx2) {
        os_tx tx1;
        struct pong_task pong;
        os_new(&tx1, &pong.rx1);
        os_new(&pong.tx2, &p->rx2);
        CHECK(ek_spawn_inline(ek_cx_runtime(cx), pong_poll, NULL, &pong, sizeof pong, NULL, NULL));
        os_send(tx1);
    }
    if (os_recv(p->rx2, cx) == EK_PENDING) return EK_PENDING;
    if (atomic_fetch_sub_explicit(&p->ctx->left, 1, memory_order_relaxed) == 1)
        signal_post(&p->ctx->done);
    *out = NULL;
    return EK_OK;
}

static int ping_spawner_poll(void *state, ek_cx *cx, void **out)
{
    struct ping_ctx *ctx = state;
    for (int i = 0; i < PINGS; i++) {
        struct ping_task p = {.ctx = ctx, .rx2 = NULL};
        CHECK(ek_spawn_inline(ek_cx_runtime(cx), ping_poll, NULL, &p, sizeof p, NULL, NULL));
    }
    *out = NULL;
    return EK_OK;
}

static int ping_pong_root(void *state, ek_cx *cx, void **out)
{
    struct ping_ctx *ctx = state;
    CHECK(ek_spawn(ek_cx_runtime(cx), ping_spawner_poll, drop_nothing, ctx, NULL, NULL));
    signal_wait(&ctx->done);
    *out = NULL;
    return EK_OK;
}

static int ping_pong_iter(void *arg)
{
    struct ping_ctx *ctx = arg;
    atomic_store_explicit(&ctx->left, PINGS, memory_order_relaxed);
    block_on(ctx->rt, ping_pong_root, ctx);
    return 0;
}

static void ping_pong(int n)
{
    struct ping_ctx ctx = {.rt = runtime_new(WORKERS)};
    signal_init(&ctx.done);
    fprintf(stderr, "ekiden_rt: ping_pong uses the %s oneshot\n", ONESHOT_KIND);
    bench_measure("rt_multi.ping_pong", 3, n, ping_pong_iter, &ctx);
    ek_runtime_free(ctx.rt);
    signal_destroy(&ctx.done);
}

/* ---- rt_multi.yield_many ----------------------------------------------------- */

#define YIELD_TASKS 200
#define YIELDS      1000

struct yield_ctx {
    ek_runtime *rt;
    struct signal done;
};

struct yield_task {
    struct yield_ctx *ctx;
    int yields;
};

static int yield_poll(void *state, ek_cx *cx, void **out)
{
    struct yield_task *y = state;
    if (y->yields < YIELDS) {
        y->yields++;
        return ek_yield_now(cx);
    }
    signal_post(&y->ctx->done);
    *out = NULL;
    return EK_OK;
}

static int yield_many_iter(void *arg)
{
    struct yield_ctx *ctx = arg;
    /* Tokio's `async move { for _ in 0..YIELDS { yield_now().await } ... }`:
     * the future (its counter and channel) lives in the task's cell. */
    for (int i = 0; i < YIELD_TASKS; i++) {
        struct yield_task y = {.ctx = ctx, .yields = 0};
        CHECK(ek_spawn_inline(ctx->rt, yield_poll, NULL, &y, sizeof y, NULL, NULL));
    }
    for (int i = 0; i < YIELD_TASKS; i++) signal_wait(&ctx->done);
    return 0;
}

static void yield_many(int n)
{
    struct yield_ctx ctx = {.rt = runtime_new(WORKERS)};
    signal_init(&ctx.done);
    bench_measure("rt_multi.yield_many", 3, n, yield_many_iter, &ctx);
    ek_runtime_free(ctx.rt);
    signal_destroy(&ctx.done);
}

/* ---- rt_multi.chained_spawn -------------------------------------------------- */

#define CHAIN 1000

struct chain_ctx {
    ek_runtime *rt;
    struct signal done;
};

/* The remaining length travels in the state pointer: no allocation per link
 * beyond the task itself, like Tokio's `async move { iter(done_tx, n - 1) }`. */
static struct chain_ctx *chain_ctx_global;

static int chain_poll(void *state, ek_cx *cx, void **out)
{
    uintptr_t left = (uintptr_t)state;
    *out = NULL;
    if (left == 0)
        signal_post(&chain_ctx_global->done);
    else
        CHECK(
            ek_spawn(ek_cx_runtime(cx), chain_poll, drop_nothing, (void *)(left - 1), NULL, NULL));
    return EK_OK;
}

static int chained_spawn_root(void *state, ek_cx *cx, void **out)
{
    struct chain_ctx *ctx = state;
    CHECK(ek_spawn(ek_cx_runtime(cx), chain_poll, drop_nothing, (void *)(uintptr_t)CHAIN, NULL,
                   NULL));
    signal_wait(&ctx->done);
    *out = NULL;
    return EK_OK;
}

static int chained_spawn_iter(void *arg)
{
    struct chain_ctx *ctx = arg;
    block_on(ctx->rt, chained_spawn_root, ctx);
    return 0;
}

static void chained_spawn(int n)
{
    struct chain_ctx ctx = {.rt = runtime_new(WORKERS)};
    signal_init(&ctx.done);
    chain_ctx_global = &ctx;
    bench_measure("rt_multi.chained_spawn", 3, n, chained_spawn_iter, &ctx);
    ek_runtime_free(ctx.rt);
    signal_destroy(&ctx.done);
}

/* ---- time.million_timers ----------------------------------------------------- */

struct sleeper {
    struct timers_ctx *ctx;
    ek_future *sleep;
};

struct timers_ctx {
    ek_runtime *rt;
    uint64_t count;
    struct sleeper *sleepers; /* one array, as libuv's side has its handles */
    uint64_t start_ns, init_ns, init_cpu_ns;
    atomic_uint_fast64_t left;
    struct signal done;
};

/* Counts down here, after the sleep is gone, so that the next run (or the
 * final free of the array) never meets a sleeper still being dropped. */
static void sleeper_drop(void *state)
{
    struct sleeper *s = state;
    ek_future_drop(s->sleep);
    s->sleep = NULL;
    if (atomic_fetch_sub_explicit(&s->ctx->left, 1, memory_order_acq_rel) == 1)
        signal_post(&s->ctx->done);
}

static int sleeper_poll(void *state, ek_cx *cx, void **out)
{
    struct sleeper *s = state;
    void *res;
    int rc = ek_future_poll(s->sleep, cx, &res);
    if (rc == EK_PENDING) return EK_PENDING;
    CHECK(rc);
    *out = NULL;
    return EK_OK;
}

/* Inside block_on: N tasks, task i sleeps 1 + i / 1000 ms; wait for the last.
 * The deadline is fixed when the sleep is created here (as uv_timer_start does);
 * it registers with the wheel on its first poll. */
static int million_timers_root(void *state, ek_cx *cx, void **out)
{
    struct timers_ctx *ctx = state;
    ek_runtime *rt = ek_cx_runtime(cx);
    uint64_t cpu0 = bench_thread_cpu_ns();
    for (uint64_t i = 0; i < ctx->count; i++) {
        struct sleeper *s = &ctx->sleepers[i];
        s->ctx = ctx;
        CHECK(ek_sleep(rt, 1 + i / 1000, &s->sleep));
        CHECK(ek_spawn(rt, sleeper_poll, sleeper_drop, s, NULL, NULL));
    }
    ctx->init_ns = bench_now_ns() - ctx->start_ns;
    ctx->init_cpu_ns = bench_thread_cpu_ns() - cpu0;
    signal_wait(&ctx->done);
    *out = NULL;
    return EK_OK;
}

/* Prints time.million_timers (first spawn to last completion) and
 * time.million_timers.init (creating and spawning them all), medians over
 * BENCH_TIMER_RUNS runs; beside them the CPU time: .init_cpu (of the creating
 * thread while it creates) and .cpu (of the whole process, every thread, over
 * the run). The sleepers' own state is one array allocated before the timed
 * window, as libuv's side allocates its handles. */
static void million_timers(void)
{
    struct timers_ctx ctx = {.rt = runtime_new(WORKERS),
                             .count = bench_env_u64("BENCH_TIMERS", 1000000)};
    signal_init(&ctx.done);
    int runs = (int)bench_env_u64("BENCH_TIMER_RUNS", 3);
    if (runs < 1) runs = 1;
    uint64_t *totals = malloc(sizeof *totals * (size_t)runs);
    uint64_t *inits = malloc(sizeof *inits * (size_t)runs);
    uint64_t *init_cpus = malloc(sizeof *init_cpus * (size_t)runs);
    uint64_t *cpus = malloc(sizeof *cpus * (size_t)runs);
    ctx.sleepers = malloc(sizeof *ctx.sleepers * (size_t)ctx.count);
    if (!totals || !inits || !init_cpus || !cpus || !ctx.sleepers) exit(1);
    for (int r = 0; r < runs; r++) {
        atomic_store(&ctx.left, ctx.count);
        uint64_t cpu0 = bench_process_cpu_ns();
        ctx.start_ns = bench_now_ns();
        block_on(ctx.rt, million_timers_root, &ctx);
        totals[r] = bench_now_ns() - ctx.start_ns;
        cpus[r] = bench_process_cpu_ns() - cpu0;
        inits[r] = ctx.init_ns;
        init_cpus[r] = ctx.init_cpu_ns;
        if (getenv("BENCH_EACH"))
            fprintf(stderr, "run %d total %.1f init %.1f init_cpu %.1f cpu %.1f ms\n", r,
                    totals[r] / 1e6, inits[r] / 1e6, init_cpus[r] / 1e6, cpus[r] / 1e6);
    }
    printf("BENCH time.million_timers %llu %d\n", (unsigned long long)bench_median(totals, runs),
           runs);
    printf("BENCH time.million_timers.init %llu %d\n",
           (unsigned long long)bench_median(inits, runs), runs);
    printf("BENCH time.million_timers.init_cpu %llu %d\n",
           (unsigned long long)bench_median(init_cpus, runs), runs);
    printf("BENCH time.million_timers.cpu %llu %d\n", (unsigned long long)bench_median(cpus, runs),
           runs);
    fflush(stdout);
    free(totals);
    free(inits);
    free(init_cpus);
    free(cpus);
    free(ctx.sleepers);
    ek_runtime_free(ctx.rt);
    signal_destroy(&ctx.done);
}

/* ---- mem.idle_task_bytes ----------------------------------------------------- */

#define IDLE_TASKS 1000000

static atomic_size_t idle_polls;

/* Never completes and keeps no waker (Tokio: std::future::pending). */
static int idle_poll(void *state, ek_cx *cx, void **out)
{
    (void)state;
    (void)cx;
    (void)out;
    atomic_fetch_add_explicit(&idle_polls, 1, memory_order_relaxed);
    return EK_PENDING;
}

static void idle_task_bytes(void)
{
    ek_runtime *rt = runtime_new(WORKERS);
    /* warm the runtime (threads, first allocations) before the baseline */
    ek_join *j;
    void *res;
    CHECK(ek_spawn(rt, empty_poll, drop_nothing, NULL, NULL, &j));
    CHECK(ek_join_wait(j, &res));
    ek_join_detach(j);
    uint64_t before = bench_rss_bytes();
    for (int i = 0; i < IDLE_TASKS; i++)
        CHECK(ek_spawn(rt, idle_poll, drop_nothing, NULL, NULL, NULL));
    while (atomic_load(&idle_polls) < IDLE_TASKS) usleep(5000);
    uint64_t after = bench_rss_bytes();
    printf("BENCH mem.idle_task_bytes %llu 1\n",
           (unsigned long long)((after > before ? after - before : 0) / IDLE_TASKS));
    fflush(stdout);
    ek_runtime_free(rt);
}

int main(int argc, char **argv)
{
    bench_init(argc, argv);
    int n = bench_iters(50);
    /* memory first, on a fresh heap (memory freed by earlier workloads would be
     * reused without growing the resident set) */
    if (bench_selected("mem.idle_task_bytes")) idle_task_bytes();
    if (bench_selected("rt_multi.spawn_many_local")) spawn_many_local(n);
    if (bench_selected("rt_multi.spawn_many_remote_idle"))
        spawn_many_remote("rt_multi.spawn_many_remote_idle", IDLE, NUM_SPAWN, n);
    if (bench_selected("rt_multi.spawn_many_remote_busy1"))
        spawn_many_remote("rt_multi.spawn_many_remote_busy1", BUSY1, NUM_SPAWN, n);
    if (bench_selected("rt_multi.spawn_many_remote_busy2"))
        spawn_many_remote("rt_multi.spawn_many_remote_busy2", BUSY2, 1000, n);
    if (bench_selected("rt_multi.ping_pong")) ping_pong(n);
    if (bench_selected("rt_multi.yield_many")) yield_many(bench_iters(30));
    if (bench_selected("rt_multi.chained_spawn")) chained_spawn(n);
    if (bench_selected("time.million_timers")) million_timers();
    return 0;
}
