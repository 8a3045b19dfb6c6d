/*
 * test_hooks.c - builder thread hooks (start, stop, park, unpark) fire on the
 * right threads the right number of times; per-runtime user data.
 */
#include "support.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_EVENTS 4096

typedef struct event {
    int which;
    pthread_t thread;
    int tid;        /* unique per thread (pthread_t values are reused) */
    ek_runtime *rt; /* ek_runtime_current() inside the hook */
    char name[16];
} event;

typedef struct recorder {
    pthread_mutex_t lock;
    event ev[MAX_EVENTS];
    int n;
} recorder;

static recorder rec;

typedef struct hook_arg {
    int which;
} hook_arg;

static hook_arg args[4] = {{0}, {1}, {2}, {3}};
enum { H_START, H_STOP, H_PARK, H_UNPARK };

static _Thread_local int my_tid;
static atomic_int next_tid;

static void on_hook(void *data)
{
    hook_arg *a = data;
    if (!my_tid) my_tid = atomic_fetch_add(&next_tid, 1) + 1;
    pthread_mutex_lock(&rec.lock);
    if (rec.n < MAX_EVENTS) {
        event *e = &rec.ev[rec.n++];
        e->which = a->which;
        e->thread = pthread_self();
        e->tid = my_tid;
        e->rt = ek_runtime_current();
        pthread_getname_np(pthread_self(), e->name, sizeof e->name);
    }
    pthread_mutex_unlock(&rec.lock);
}

static void rec_reset(void)
{
    pthread_mutex_lock(&rec.lock);
    rec.n = 0;
    pthread_mutex_unlock(&rec.lock);
}

static int count(int which)
{
    int c = 0;
    for (int i = 0; i < rec.n; i++) c += rec.ev[i].which == which;
    return c;
}

static ek_builder *hooked_builder(int flavor, unsigned workers)
{
    ek_builder *b = ekt_builder(flavor, workers, -1, 0);
    assert_int_equal(ek_builder_on_thread_start(b, on_hook, &args[H_START]), EK_OK);
    assert_int_equal(ek_builder_on_thread_stop(b, on_hook, &args[H_STOP]), EK_OK);
    assert_int_equal(ek_builder_on_thread_park(b, on_hook, &args[H_PARK]), EK_OK);
    assert_int_equal(ek_builder_on_thread_unpark(b, on_hook, &args[H_UNPARK]), EK_OK);
    return b;
}

/* A blocking job that waits until `n` jobs run at once, so that n threads exist. */
typedef struct gate {
    atomic_int in;
    int n;
} gate;

static int gate_job(void *arg, void **out)
{
    gate *g = arg;
    atomic_fetch_add(&g->in, 1);
    while (atomic_load(&g->in) < g->n) usleep(500);
    *out = NULL;
    return EK_OK;
}

/* A task that sleeps a little, so that workers have a reason to park. */
static int sleep_a_bit(void *s, ek_cx *cx, void **out)
{
    ek_future **f = s;
    if (!*f) assert_int_equal(ek_sleep(ek_cx_runtime(cx), 20, f), EK_OK);
    int rc = ek_future_poll(*f, cx, out);
    if (rc != EK_PENDING) {
        ek_future_drop(*f);
        *f = NULL;
    }
    return rc;
}

static bool is_worker_name(const char *name)
{
    return strncmp(name, "ekiden-", 7) == 0 && strcmp(name, "ekiden-blk") != 0;
}

/* Per thread: start first, stop last, exactly one of each, and park/unpark
 * alternate in between. */
static void check_sequences(ek_runtime *rt, int *threads, int *workers)
{
    *threads = 0;
    *workers = 0;
    for (int i = 0; i < rec.n; i++) {
        if (rec.ev[i].which != H_START) continue;
        int tid = rec.ev[i].tid;
        (*threads)++;
        if (is_worker_name(rec.ev[i].name)) (*workers)++;
        assert_ptr_equal(rec.ev[i].rt, rt);
        int starts = 0, stops = 0, depth = 0;
        bool stopped = false;
        for (int k = 0; k < rec.n; k++) {
            if (rec.ev[k].tid != tid) continue;
            assert_false(stopped); /* nothing after stop */
            switch (rec.ev[k].which) {
            case H_START:
                assert_int_equal(starts++, 0);
                assert_int_equal(stops, 0);
                break;
            case H_STOP:
                stops++;
                stopped = true;
                assert_int_equal(depth, 0);
                break;
            case H_PARK:
                assert_true(is_worker_name(rec.ev[k].name));
                assert_int_equal(depth++, 0);
                break;
            case H_UNPARK:
                assert_int_equal(--depth, 0);
                break;
            }
        }
        assert_int_equal(starts, 1);
        assert_int_equal(stops, 1);
    }
}

static void test_multi_thread_hooks_pair_up_on_every_thread(void **state)
{
    (void)state;
    rec_reset();
    ek_builder *b = hooked_builder(EK_FLAVOR_MULTI_THREAD, 3);
    ek_runtime *rt;
    assert_int_equal(ek_runtime_new(b, &rt), EK_OK);
    ek_builder_free(b);
    gate g = {.n = 2};
    ek_join *j1, *j2;
    assert_int_equal(ek_spawn_blocking(rt, gate_job, NULL, &g, NULL, &j1), EK_OK);
    assert_int_equal(ek_spawn_blocking(rt, gate_job, NULL, &g, NULL, &j2), EK_OK);
    assert_int_equal(ekt_join(j1, NULL), EK_OK);
    assert_int_equal(ekt_join(j2, NULL), EK_OK);
    for (int i = 0; i < 3; i++) {
        ek_future *f = NULL;
        assert_int_equal(ekt_spawn_join(rt, sleep_a_bit, &f, NULL), EK_OK);
    }
    ek_runtime_free(rt);
    /* Every hook has returned (free waited for the threads): no lock needed. */
    int threads, workers;
    check_sequences(rt, &threads, &workers);
    assert_int_equal(workers, 3);
    assert_int_equal(threads, 3 + 2); /* two blocking threads were needed at once */
    assert_int_equal(count(H_START), threads);
    assert_int_equal(count(H_STOP), threads);
    assert_true(count(H_PARK) >= 3);
    assert_int_equal(count(H_PARK), count(H_UNPARK));
}

/* Current-thread: no worker threads; the thread in ek_block_on parks. */
static void test_current_thread_parks_the_driving_thread(void **state)
{
    (void)state;
    rec_reset();
    ek_builder *b = hooked_builder(EK_FLAVOR_CURRENT_THREAD, 0);
    ek_runtime *rt;
    assert_int_equal(ek_runtime_new(b, &rt), EK_OK);
    ek_builder_free(b);
    ek_future *f = NULL;
    assert_int_equal(ekt_block_on_fn(rt, sleep_a_bit, &f, NULL), EK_OK);
    /* Only this thread runs hooks here: no lock needed. */
    assert_int_equal(count(H_START), 0);
    assert_true(count(H_PARK) >= 1);
    assert_int_equal(count(H_PARK), count(H_UNPARK));
    for (int i = 0; i < rec.n; i++) {
        assert_true(pthread_equal(rec.ev[i].thread, pthread_self()));
        assert_ptr_equal(rec.ev[i].rt, rt);
    }
    ek_runtime_free(rt);
}

/* A blocking thread whose keep-alive expires stops (and a new one starts for
 * the next job), before shutdown. */
static int quick_job(void *arg, void **out)
{
    (void)arg;
    *out = NULL;
    return EK_OK;
}

static int locked_count(int which)
{
    pthread_mutex_lock(&rec.lock);
    int c = count(which);
    pthread_mutex_unlock(&rec.lock);
    return c;
}

static void test_blocking_threads_stop_when_their_keep_alive_expires(void **state)
{
    (void)state;
    rec_reset();
    ek_builder *b = hooked_builder(EK_FLAVOR_CURRENT_THREAD, 0);
    assert_int_equal(ek_builder_set_blocking_keep_alive_ms(b, 1), EK_OK);
    assert_int_equal(ek_builder_set_max_blocking_threads(b, 1), EK_OK);
    ek_runtime *rt;
    assert_int_equal(ek_runtime_new(b, &rt), EK_OK);
    ek_builder_free(b);
    for (int i = 0; i < 3; i++) {
        ek_join *j;
        assert_int_equal(ek_spawn_blocking(rt, quick_job, NULL, NULL, NULL, &j), EK_OK);
        assert_int_equal(ekt_join(j, NULL), EK_OK);
        /* The keep-alive expires after each job: the thread stops, before
         * any shutdown. */
        for (int k = 0; k < 5000 && locked_count(H_STOP) < i + 1; k++) usleep(2000);
        assert_int_equal(locked_count(H_STOP), i + 1);
        assert_int_equal(locked_count(H_START), i + 1);
    }
    ek_runtime_free(rt);
    int threads, workers;
    check_sequences(rt, &threads, &workers);
    assert_int_equal(threads, 3);
    assert_int_equal(workers, 0);
}

static void test_hook_setters_check_the_builder_and_clear_with_null(void **state)
{
    (void)state;
    assert_int_equal(ek_builder_on_thread_start(NULL, on_hook, NULL), EK_EINVAL);
    assert_int_equal(ek_builder_on_thread_stop((ek_builder *)&args[0], on_hook, NULL), EK_EINVAL);
    assert_int_equal(ek_builder_on_thread_park(NULL, on_hook, NULL), EK_EINVAL);
    assert_int_equal(ek_builder_on_thread_unpark(NULL, on_hook, NULL), EK_EINVAL);
    rec_reset();
    ek_builder *b = hooked_builder(EK_FLAVOR_MULTI_THREAD, 2);
    for (int i = 0; i < 4; i++) {
        int (*set)(ek_builder *, ek_thread_hook_fn, void *) = i == 0   ? ek_builder_on_thread_start
                                                              : i == 1 ? ek_builder_on_thread_stop
                                                              : i == 2
                                                                  ? ek_builder_on_thread_park
                                                                  : ek_builder_on_thread_unpark;
        assert_int_equal(set(b, NULL, &args[i]), EK_OK);
    }
    ek_runtime *rt;
    assert_int_equal(ek_runtime_new(b, &rt), EK_OK);
    ek_builder_free(b);
    ek_future *f = NULL;
    assert_int_equal(ekt_spawn_join(rt, sleep_a_bit, &f, NULL), EK_OK);
    ek_runtime_free(rt);
    assert_int_equal(rec.n, 0);
}

/* ---- runtime data ---- */

static atomic_int data_drops;
static pthread_t data_drop_thread;

static void data_drop(void *p)
{
    (void)p;
    data_drop_thread = pthread_self();
    atomic_fetch_add(&data_drops, 1);
}

static int read_data(void *s, ek_cx *cx, void **out)
{
    (void)s;
    *out = ek_runtime_data(ek_cx_runtime(cx));
    return EK_OK;
}

static void test_runtime_data_set_replaced_and_dropped_by_free(void **state)
{
    (void)state;
    for (int flavor = 0; flavor < 2; flavor++) {
        atomic_store(&data_drops, 0);
        ek_runtime *rt = ekt_rt(flavor, 2);
        assert_null(ek_runtime_data(rt));
        int a, b;
        assert_int_equal(ek_runtime_set_data(rt, &a, data_drop), EK_OK);
        assert_ptr_equal(ek_runtime_data(rt), &a);
        void *seen = NULL;
        assert_int_equal(ekt_spawn_join(rt, read_data, NULL, &seen), EK_OK);
        assert_ptr_equal(seen, &a); /* from a worker (or the driving thread) */
        assert_int_equal(ek_runtime_set_data(rt, &b, data_drop), EK_OK);
        assert_int_equal(atomic_load(&data_drops), 1); /* a, replaced */
        assert_ptr_equal(ek_runtime_data(rt), &b);
        assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
        assert_ptr_equal(ek_runtime_data(rt), &b); /* kept until free */
        assert_int_equal(atomic_load(&data_drops), 1);
        ek_runtime_free(rt);
        assert_int_equal(atomic_load(&data_drops), 2); /* b, by free, here */
        assert_true(pthread_equal(data_drop_thread, pthread_self()));
    }
    /* No drop function: nothing is called; bad handles. */
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    int c;
    assert_int_equal(ek_runtime_set_data(rt, &c, NULL), EK_OK);
    assert_int_equal(ek_runtime_set_data(rt, NULL, NULL), EK_OK);
    assert_null(ek_runtime_data(rt));
    ek_runtime_free(rt);
    assert_int_equal(ek_runtime_set_data(NULL, &c, data_drop), EK_EINVAL);
    assert_int_equal(ek_runtime_set_data((ek_runtime *)&args[0], &c, data_drop), EK_EINVAL);
    assert_null(ek_runtime_data(NULL));
    assert_int_equal(atomic_load(&data_drops), 2);
}

int main(void)
{
    pthread_mutex_init(&rec.lock, NULL);
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)
        T(test_multi_thread_hooks_pair_up_on_every_thread),
        T(test_current_thread_parks_the_driving_thread),
        T(test_blocking_threads_stop_when_their_keep_alive_expires),
        T(test_hook_setters_check_the_builder_and_clear_with_null),
        T(test_runtime_data_set_replaced_and_dropped_by_free),
#undef T
    };
    if (getenv("EKT_FILTER")) cmocka_set_test_filter(getenv("EKT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
