/*
 * uv_million_timers.c - libuv's million_timers workload on libuv: N timers whose
 * timeouts step up by 1 ms every 1,000 timers (1 .. N/1000 ms), run until all
 * have fired. libuv's own benchmark uses N = 10,000,000; here N comes from
 * BENCH_TIMERS (default 1,000,000, the count the ekiden and Tokio sides use).
 *
 * Prints, as medians over BENCH_TIMER_RUNS runs (default 3), each run on a fresh
 * loop:
 *   BENCH time.million_timers <total_ns> <runs>          init + dispatch + cleanup
 *   BENCH time.million_timers.init <ns> <runs>           starting the timers
 *   BENCH time.million_timers.dispatch <ns> <runs>       uv_run until all fired
 *   BENCH time.million_timers.cleanup <ns> <runs>        closing the handles
 *   BENCH time.million_timers.init_cpu <ns> <runs>       CPU time of starting them
 *   BENCH time.million_timers.cpu <ns> <runs>            process CPU time, whole run
 *
 * Built twice (bench/CMakeLists.txt): uv_million_timers is libuv's own
 * workload, where every uv_timer_start counts from the loop's cached time
 * (read once before the loop); uv_million_timers_now (UV_UPDATE_EACH) calls
 * uv_update_time before each uv_timer_start, so that each deadline counts from
 * the moment its timer starts, as ekiden's ek_sleep and Tokio's sleep do (one
 * clock read per timer). The difference between the two is what the cached
 * time is worth (docs/benchmarks.md, "Timers").
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "../../bench_util.h"

static uint64_t fired;

static void on_timer(uv_timer_t *t)
{
    (void)t;
    fired++;
}

static int run_once(uint64_t n, uint64_t out[6])
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) return -1;
    uv_timer_t *timers = malloc(sizeof *timers * n);
    if (!timers) return -1;
    fired = 0;

    uint64_t c0 = bench_process_cpu_ns(), tc0 = bench_thread_cpu_ns();
    uint64_t t0 = bench_now_ns();
    uint64_t timeout = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (i % 1000 == 0) timeout++;
        uv_timer_init(&loop, &timers[i]);
#ifdef UV_UPDATE_EACH
        uv_update_time(&loop);
#endif
        uv_timer_start(&timers[i], on_timer, timeout, 0);
    }
    uint64_t t1 = bench_now_ns();
    uint64_t tc1 = bench_thread_cpu_ns();
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t t2 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) uv_close((uv_handle_t *)&timers[i], NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t t3 = bench_now_ns();
    uint64_t c3 = bench_process_cpu_ns();

    if (fired != n) {
        fprintf(stderr, "uv_million_timers: %llu of %llu timers fired\n", (unsigned long long)fired,
                (unsigned long long)n);
        return -1;
    }
    uv_loop_close(&loop);
    free(timers);
    out[0] = t3 - t0;
    out[1] = t1 - t0;
    out[2] = t2 - t1;
    out[3] = t3 - t2;
    out[4] = tc1 - tc0;
    out[5] = c3 - c0;
    return 0;
}

int main(int argc, char **argv)
{
    bench_init(argc, argv);
    if (!bench_selected("time.million_timers")) return 0;
    uint64_t n = bench_env_u64("BENCH_TIMERS", 1000000);
    int runs = (int)bench_env_u64("BENCH_TIMER_RUNS", 3);
    if (n == 0 || runs < 1) return 2;
    uint64_t *s[6];
    for (int k = 0; k < 6; k++) {
        s[k] = malloc(sizeof(uint64_t) * (size_t)runs);
        if (!s[k]) return 1;
    }
    for (int r = 0; r < runs; r++) {
        uint64_t out[6];
        if (run_once(n, out) != 0) return 1;
        for (int k = 0; k < 6; k++) s[k][r] = out[k];
    }
    static const char *names[6] = {"time.million_timers",          "time.million_timers.init",
                                   "time.million_timers.dispatch", "time.million_timers.cleanup",
                                   "time.million_timers.init_cpu", "time.million_timers.cpu"};
    for (int k = 0; k < 6; k++) {
        printf("BENCH %s %llu %d\n", names[k], (unsigned long long)bench_median(s[k], runs), runs);
        free(s[k]);
    }
    return 0;
}
