/*
 * bench_util.h - the measurement harness shared by the C benchmark programs.
 *
 * Same method and output as the Tokio peer (bench/peers/tokio/src/common.rs):
 * a few untimed warm-up iterations, then `iters` timed ones; the median time per
 * iteration is printed as one line
 *
 *     BENCH <name> <median_ns> <iterations>
 *
 * Workload selection by command-line arguments (none: everything): an argument
 * selects a workload when it is the exact name, a group prefix ending at a dot
 * ("rt_multi" selects "rt_multi.ping_pong"), or, when it has no dot, a substring.
 * BENCH_ITERS in the environment overrides the iteration counts; BENCH_MAX_SECONDS
 * bounds the time one workload may take (see bench_measure).
 *
 * Header-only (static functions), C11, POSIX; no ekiden dependency.
 */
#ifndef EK_BENCH_UTIL_H
#define EK_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Iterations after warm-up: BENCH_ITERS if set and positive, else `dflt`. */
/* CPU time of the calling thread / of the whole process, in ns: on a loaded
 * machine these move far less than wall time does. */
static inline uint64_t bench_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t bench_process_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int bench_iters(int dflt)
{
    const char *s = getenv("BENCH_ITERS");
    if (s) {
        long v = strtol(s, NULL, 10);
        if (v > 0 && v < 1000000) return (int)v;
    }
    return dflt;
}

/* An unsigned integer from the environment, or `dflt`. */
static inline uint64_t bench_env_u64(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);
    if (s && *s) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (*end == '\0') return (uint64_t)v;
    }
    return dflt;
}

static int bench_argc;
static char **bench_argv;

static inline void bench_init(int argc, char **argv)
{
    bench_argc = argc;
    bench_argv = argv;
}

static inline int bench_selected(const char *name)
{
    if (bench_argc <= 1) return 1;
    size_t nlen = strlen(name);
    for (int i = 1; i < bench_argc; i++) {
        const char *a = bench_argv[i];
        size_t alen = strlen(a);
        if (strcmp(name, a) == 0) return 1;
        if (alen < nlen && strncmp(name, a, alen) == 0 && name[alen] == '.') return 1;
        if (!strchr(a, '.') && strstr(name, a)) return 1;
    }
    return 0;
}

static int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Median of n samples (sorts them in place). */
static inline uint64_t bench_median(uint64_t *s, int n)
{
    qsort(s, (size_t)n, sizeof *s, bench_cmp_u64);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* One iteration of a workload; returns 0 on success, nonzero to abort. */
typedef int (*bench_iter_fn)(void *arg);

/* Run `fn` warmup times untimed and n times timed; print the median.
 * A time budget keeps a very slow workload from eating the run: BENCH_MAX_SECONDS
 * (default 10) bounds the timed part once at least 5 iterations are done, and a
 * fifth of it bounds the warm-up; the line gives the iterations actually timed.
 * Returns 0, or the first nonzero iteration result (and prints nothing). */
static inline int bench_measure(const char *name, int warmup, int n, bench_iter_fn fn, void *arg)
{
    uint64_t budget = bench_env_u64("BENCH_MAX_SECONDS", 10) * 1000000000u;
    uint64_t start = bench_now_ns();
    for (int i = 0; i < warmup && bench_now_ns() - start < budget / 5; i++) {
        int rc = fn(arg);
        if (rc) return rc;
    }
    uint64_t *samples = malloc(sizeof *samples * (size_t)n);
    if (!samples) return -1;
    int done = 0;
    start = bench_now_ns();
    while (done < n && (done < 5 || bench_now_ns() - start < budget)) {
        uint64_t t0 = bench_now_ns();
        int rc = fn(arg);
        if (rc) {
            free(samples);
            return rc;
        }
        samples[done++] = bench_now_ns() - t0;
    }
    printf("BENCH %s %llu %d\n", name, (unsigned long long)bench_median(samples, done), done);
    fflush(stdout);
    free(samples);
    return 0;
}

/* Resident set size of this process in bytes (VmRSS of /proc/self/status). */
static inline uint64_t bench_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtoull(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb * 1024;
}

#endif /* EK_BENCH_UTIL_H */
