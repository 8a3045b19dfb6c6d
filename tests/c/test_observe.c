/*
 * test_observe.c - ekiden/observe.h: task names, task hooks (spawn, terminate,
 * before and after poll) on the threads they report, slow-poll detection, and
 * ek_runtime_dump (contents, truncation, concurrency with spawns and ends).
 */
#include "support.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------ recording -- */

#define MAX_EVENTS 8192
enum { E_SPAWN, E_TERMINATE, E_BEFORE, E_AFTER, E_SLOW };

typedef struct event {
    int which;
    uint64_t id;
    pthread_t thread;
    bool named;
    char name[EK_TASK_NAME_MAX + 1];
    uint64_t poll_ns;
} event;

static struct {
    pthread_mutex_t lock;
    event ev[MAX_EVENTS];
    int n;
} rec;

static int which_of[5] = {E_SPAWN, E_TERMINATE, E_BEFORE, E_AFTER, E_SLOW};

static void record(int which, uint64_t id, const char *name, uint64_t poll_ns)
{
    pthread_mutex_lock(&rec.lock);
    if (rec.n < MAX_EVENTS) {
        event *e = &rec.ev[rec.n++];
        e->which = which;
        e->id = id;
        e->thread = pthread_self();
        e->named = name != NULL;
        snprintf(e->name, sizeof e->name, "%s", name ? name : "");
        e->poll_ns = poll_ns;
    }
    pthread_mutex_unlock(&rec.lock);
}

static void on_task(void *data, uint64_t id, const char *name)
{
    record(*(int *)data, id, name, 0);
}

static void on_slow(void *data, uint64_t id, const char *name, uint64_t poll_ns)
{
    record(*(int *)data, id, name, poll_ns);
}

static void rec_reset(void)
{
    pthread_mutex_lock(&rec.lock);
    rec.n = 0;
    pthread_mutex_unlock(&rec.lock);
}

/* Events of one kind for one task id. */
static int count_of(int which, uint64_t id)
{
    pthread_mutex_lock(&rec.lock);
    int c = 0;
    for (int i = 0; i < rec.n; i++) c += rec.ev[i].which == which && rec.ev[i].id == id;
    pthread_mutex_unlock(&rec.lock);
    return c;
}

static ek_builder *hooked_builder(int flavor, unsigned workers)
{
    ek_builder *b = ekt_builder(flavor, workers, -1, 0);
    assert_int_equal(ek_builder_on_task_spawn(b, on_task, &which_of[E_SPAWN]), EK_OK);
    assert_int_equal(ek_builder_on_task_terminate(b, on_task, &which_of[E_TERMINATE]), EK_OK);
    assert_int_equal(ek_builder_on_before_task_poll(b, on_task, &which_of[E_BEFORE]), EK_OK);
    assert_int_equal(ek_builder_on_after_task_poll(b, on_task, &which_of[E_AFTER]), EK_OK);
    return b;
}

static ek_runtime *build(ek_builder *b)
{
    ek_runtime *rt = NULL;
    assert_int_equal(ek_runtime_new(b, &rt), EK_OK);
    ek_builder_free(b);
    return rt;
}

/* ------------------------------------------------------------ futures -- */

/* Pends `left` times (waking itself), then completes with *out = NULL. */
typedef struct yielder {
    int left;
} yielder;

static int yield_poll(void *s, ek_cx *cx, void **out)
{
    yielder *y = s;
    if (y->left-- > 0) return ek_yield_now(cx);
    *out = NULL;
    return EK_OK;
}

static void free_drop(void *s)
{
    free(s);
}

static yielder *new_yielder(int left)
{
    yielder *y = malloc(sizeof *y);
    assert_non_null(y);
    y->left = left;
    return y;
}

/* A poll that sleeps (blocks its thread) `ms` once, then completes. */
static int sleepy_poll(void *s, ek_cx *cx, void **out)
{
    (void)cx;
    usleep((useconds_t)(*(int *)s) * 1000u);
    *out = NULL;
    return EK_OK;
}

/* A blocking job that says it runs, then waits until the gate opens. */
typedef struct gate {
    atomic_int started, open;
} gate;

static int gated_job(void *arg, void **out)
{
    gate *g = arg;
    atomic_store(&g->started, 1);
    while (!atomic_load(&g->open)) usleep(1000);
    *out = NULL;
    return EK_OK;
}

static int run_job(void *arg, void **out)
{
    (void)arg;
    *out = NULL;
    return EK_OK;
}

/* -------------------------------------------------------------- hooks -- */

/* Async, local and blocking tasks: every event carries the task's id and name;
 * spawn comes first and on the spawning thread, terminate last and before the
 * join sees the task finished; before/after pair up on one thread per poll;
 * local tasks are polled and end on their own thread; jobs are not polled. */
static void test_task_hooks_pair_up_on_the_threads_they_report(void **state)
{
    (void)state;
    for (int flavor = 0; flavor < 2; flavor++) {
        rec_reset();
        ek_runtime *rt = build(hooked_builder(flavor, 2));
        enum { N = 8 };
        ek_join *j[N + 2];
        char name[32];
        for (int i = 0; i < N; i++) {
            snprintf(name, sizeof name, "worker-task-%d", i);
            assert_int_equal(
                ek_spawn_named(rt, name, yield_poll, free_drop, new_yielder(2), NULL, &j[i]),
                EK_OK);
        }
        assert_int_equal(
            ek_spawn_local_named(rt, "pinned", yield_poll, free_drop, new_yielder(1), NULL, &j[N]),
            EK_OK);
        assert_int_equal(ek_spawn_blocking(rt, run_job, NULL, NULL, NULL, &j[N + 1]), EK_OK);
        for (int i = 0; i < N + 2; i++) {
            assert_int_equal(ek_join_wait(j[i], NULL), EK_OK);
            /* Ids are 1.. in spawn order; terminate has returned. */
            assert_int_equal(count_of(E_TERMINATE, (uint64_t)i + 1), 1);
            ek_join_detach(j[i]);
        }
        ek_runtime_free(rt);

        pthread_mutex_lock(&rec.lock);
        for (uint64_t id = 1; id <= N + 2; id++) {
            int first = -1, last = -1, polls = 0, open = -1;
            for (int i = 0; i < rec.n; i++) {
                event *e = &rec.ev[i];
                if (e->id != id) continue;
                if (first < 0) first = i;
                last = i;
                if (id <= N) {
                    snprintf(name, sizeof name, "worker-task-%d", (int)id - 1);
                    assert_true(e->named);
                    assert_string_equal(e->name, name);
                } else if (id == N + 1) {
                    assert_string_equal(e->name, "pinned");
                    /* A local task: everything on this thread. */
                    assert_true(pthread_equal(e->thread, pthread_self()));
                } else {
                    assert_false(e->named);
                }
                if (e->which == E_BEFORE) {
                    assert_int_equal(open, -1);
                    open = i;
                    polls++;
                } else if (e->which == E_AFTER) {
                    assert_true(open >= 0);
                    assert_true(pthread_equal(rec.ev[open].thread, e->thread));
                    open = -1;
                }
            }
            assert_int_equal(open, -1);
            assert_true(first >= 0);
            assert_int_equal(rec.ev[first].which, E_SPAWN);
            assert_true(pthread_equal(rec.ev[first].thread, pthread_self()));
            assert_int_equal(rec.ev[last].which, E_TERMINATE);
            if (id <= N)
                assert_int_equal(polls, 3); /* two yields, then done */
            else if (id == N + 1)
                assert_int_equal(polls, 2);
            else
                assert_int_equal(polls, 0); /* a blocking job is run, not polled */
        }
        pthread_mutex_unlock(&rec.lock);
    }
}

/* Shutdown cancels idle tasks: each still gets exactly one terminate. A spawn
 * refused after shutdown reports nothing and takes no id; one that shutdown
 * overtakes between its spawn hook and its listing reports spawn, then
 * terminate, and is not counted in TASKS_SPAWNED. */
static struct {
    atomic_int in_hook, shut;
} late;

static void late_spawn_hook(void *data, uint64_t id, const char *name)
{
    if (name && strcmp(name, "late") == 0) {
        atomic_store(&late.in_hook, 1);
        while (!atomic_load(&late.shut)) usleep(1000);
    }
    on_task(data, id, name);
}

static void *late_spawner(void *arg)
{
    ek_runtime *rt = arg;
    ek_join *j = (ek_join *)&late;
    int rc = ek_spawn_named(rt, "late", ekt_ret_state, ekt_count_drop, NULL, NULL, &j);
    return (void *)(intptr_t)(rc == EK_ECLOSED && j == NULL);
}

static void test_cancelled_and_refused_tasks_terminate_once(void **state)
{
    (void)state;
    rec_reset();
    ekt_reset_drops();
    ek_builder *b = hooked_builder(EK_FLAVOR_MULTI_THREAD, 2);
    assert_int_equal(ek_builder_on_task_spawn(b, late_spawn_hook, &which_of[E_SPAWN]), EK_OK);
    ek_runtime *rt = build(b);
    enum { N = 5 };
    for (int i = 0; i < N; i++)
        assert_int_equal(
            ek_spawn_named(rt, "forever", ekt_pend_forever, ekt_noop_drop, NULL, NULL, NULL),
            EK_OK);
    assert_int_equal(ekt_metric_wait(rt, EK_METRIC_POLLS, N), N);
    assert_int_equal(ekt_metric(rt, EK_METRIC_TASKS_SPAWNED), N);
    /* Overtaken: the spawn hook of task N + 1 waits until shutdown is done. */
    atomic_store(&late.in_hook, 0);
    atomic_store(&late.shut, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, late_spawner, rt), 0);
    while (!atomic_load(&late.in_hook)) usleep(1000);
    assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
    atomic_store(&late.shut, 1);
    void *ok = NULL;
    pthread_join(th, &ok);
    assert_true(ok != NULL);
    assert_int_equal(atomic_load(&ekt_drops), 1);
    for (uint64_t id = 1; id <= N + 1; id++) {
        assert_int_equal(count_of(E_SPAWN, id), 1);
        assert_int_equal(count_of(E_TERMINATE, id), 1);
    }
    assert_int_equal(count_of(E_BEFORE, N + 1), 0);
    assert_int_equal(ekt_metric(rt, EK_METRIC_TASKS_SPAWNED), N);
    /* Refused at once: no hook, no id. */
    ek_join *j = (ek_join *)&rec;
    assert_int_equal(ek_spawn_named(rt, "later", ekt_ret_state, ekt_count_drop, NULL, NULL, &j),
                     EK_ECLOSED);
    assert_null(j);
    assert_int_equal(atomic_load(&ekt_drops), 2);
    assert_int_equal(count_of(E_SPAWN, N + 2), 0);
    assert_int_equal(ekt_metric(rt, EK_METRIC_TASKS_SPAWNED), N);
    ek_runtime_free(rt);
}

/* A hook may call ek_runtime_dump and spawn: no lock of the runtime is held. */
static ek_runtime *dump_rt;
static atomic_int dumps_in_hooks;
static void dump_hook(void *data, uint64_t id, const char *name)
{
    (void)data;
    (void)id;
    (void)name;
    char buf[256];
    size_t len = 0;
    int rc = ek_runtime_dump(dump_rt, buf, sizeof buf, &len);
    if ((rc == EK_OK || rc == EK_ERANGE) && len > 0) atomic_fetch_add(&dumps_in_hooks, 1);
}

static void test_hooks_may_dump_the_runtime(void **state)
{
    (void)state;
    atomic_store(&dumps_in_hooks, 0);
    ek_builder *b = ekt_builder(EK_FLAVOR_MULTI_THREAD, 2, -1, 0);
    assert_int_equal(ek_builder_on_task_spawn(b, dump_hook, NULL), EK_OK);
    assert_int_equal(ek_builder_on_task_terminate(b, dump_hook, NULL), EK_OK);
    assert_int_equal(ek_builder_on_after_task_poll(b, dump_hook, NULL), EK_OK);
    dump_rt = build(b);
    ek_join *j;
    assert_int_equal(ek_spawn_named(dump_rt, "a", yield_poll, free_drop, new_yielder(1), NULL, &j),
                     EK_OK);
    assert_int_equal(ekt_join(j, NULL), EK_OK);
    assert_int_equal(ek_spawn(dump_rt, ekt_pend_forever, ekt_noop_drop, NULL, NULL, NULL), EK_OK);
    assert_int_equal(ekt_metric_wait(dump_rt, EK_METRIC_POLLS, 3), 3);
    ek_runtime_free(dump_rt); /* the pending task terminates in shutdown */
    /* spawn + 2 polls + terminate, spawn + 1 poll + terminate */
    assert_int_equal(atomic_load(&dumps_in_hooks), 7);
}

static void test_task_hook_setters_check_the_builder(void **state)
{
    (void)state;
    int x;
    ek_builder *b = (ek_builder *)(void *)&x;
    assert_int_equal(ek_builder_on_task_spawn(NULL, on_task, NULL), EK_EINVAL);
    assert_int_equal(ek_builder_on_task_terminate(b, on_task, NULL), EK_EINVAL);
    assert_int_equal(ek_builder_on_before_task_poll(NULL, on_task, NULL), EK_EINVAL);
    assert_int_equal(ek_builder_on_after_task_poll(b, on_task, NULL), EK_EINVAL);
    assert_int_equal(ek_builder_set_slow_poll(NULL, 1, on_slow, NULL), EK_EINVAL);
    b = ekt_builder(EK_FLAVOR_CURRENT_THREAD, 0, -1, 0);
    assert_int_equal(ek_builder_set_slow_poll(b, UINT64_MAX / 1000 + 1, on_slow, NULL), EK_EINVAL);
    assert_int_equal(ek_builder_set_slow_poll(b, UINT64_MAX / 1000, on_slow, NULL), EK_OK);
    /* Cleared with NULL: nothing is reported any more. */
    assert_int_equal(ek_builder_on_task_spawn(b, on_task, &which_of[E_SPAWN]), EK_OK);
    assert_int_equal(ek_builder_on_task_spawn(b, NULL, &which_of[E_SPAWN]), EK_OK);
    assert_int_equal(ek_builder_set_slow_poll(b, 0, NULL, NULL), EK_OK);
    rec_reset();
    ek_runtime *rt = build(b);
    assert_int_equal(ekt_spawn_join(rt, ekt_ret_state, NULL, NULL), EK_OK);
    assert_int_equal(count_of(E_SPAWN, 1), 0);
    ek_runtime_free(rt);
}

/* --------------------------------------------------------------- names -- */

static void test_spawn_named_copies_cuts_and_checks(void **state)
{
    (void)state;
    rec_reset();
    ek_runtime *rt = build(hooked_builder(EK_FLAVOR_CURRENT_THREAD, 0));
    /* The name is copied: changing the caller's buffer changes nothing. */
    char buf[EK_TASK_NAME_MAX + 40];
    memset(buf, 'n', sizeof buf - 1);
    buf[sizeof buf - 1] = '\0';
    ek_join *j;
    assert_int_equal(ek_spawn_named(rt, buf, ekt_ret_state, ekt_noop_drop, NULL, NULL, &j), EK_OK);
    memset(buf, 'x', sizeof buf - 1);
    assert_int_equal(ekt_join(j, NULL), EK_OK);
    char want[EK_TASK_NAME_MAX + 1];
    memset(want, 'n', EK_TASK_NAME_MAX);
    want[EK_TASK_NAME_MAX] = '\0';
    pthread_mutex_lock(&rec.lock);
    assert_true(rec.n > 0);
    for (int i = 0; i < rec.n; i++) assert_string_equal(rec.ev[i].name, want);
    pthread_mutex_unlock(&rec.lock);
    /* NULL and "" are no name. */
    rec_reset();
    assert_int_equal(ekt_join(ekt_spawn(rt, ekt_ret_state, ekt_noop_drop, NULL), NULL), EK_OK);
    assert_int_equal(ek_spawn_named(rt, "", ekt_ret_state, ekt_noop_drop, NULL, NULL, &j), EK_OK);
    assert_int_equal(ekt_join(j, NULL), EK_OK);
    assert_int_equal(ek_spawn_named(rt, NULL, ekt_ret_state, ekt_noop_drop, NULL, NULL, &j), EK_OK);
    assert_int_equal(ekt_join(j, NULL), EK_OK);
    pthread_mutex_lock(&rec.lock);
    assert_true(rec.n >= 9);
    for (int i = 0; i < rec.n; i++) assert_false(rec.ev[i].named);
    pthread_mutex_unlock(&rec.lock);

    /* Errors consume the state and leave *join NULL. */
    ekt_reset_drops();
    j = (ek_join *)&rec;
    assert_int_equal(ek_spawn_named(NULL, "x", ekt_ret_state, ekt_count_drop, NULL, NULL, &j),
                     EK_EINVAL);
    assert_null(j);
    assert_int_equal(ek_spawn_named(rt, "x", NULL, ekt_count_drop, NULL, NULL, &j), EK_EINVAL);
    assert_int_equal(ek_spawn_local_named(rt, "x", ekt_ret_state, NULL, NULL, NULL, &j), EK_EINVAL);
    assert_int_equal(atomic_load(&ekt_drops), 2);
    /* The allocation fails (the name is kept in the task's own). Without the
     * cell slab only (a user allocator): with it forced on (the _slab run) a
     * task allocates only when a chunk runs out (test_slab tests that path). */
    const char *slab = getenv("EKIDEN_CELL_SLAB");
    if (slab != NULL && strcmp(slab, "1") == 0) {
        ek_runtime_free(rt);
        return;
    }
    long live = ekt_alloc_live();
    ekt_alloc_fail_after(0);
    j = (ek_join *)&rec;
    assert_int_equal(ek_spawn_named(rt, "x", ekt_ret_state, ekt_count_drop, NULL, NULL, &j),
                     EK_ENOMEM);
    ekt_alloc_fail_after(-1);
    assert_null(j);
    assert_int_equal(atomic_load(&ekt_drops), 3);
    assert_int_equal(ekt_alloc_live(), live);
    ekt_alloc_fail_after(0);
    assert_int_equal(ek_spawn_local_named(rt, "x", ekt_ret_state, ekt_count_drop, NULL, NULL, &j),
                     EK_ENOMEM);
    ekt_alloc_fail_after(-1);
    assert_int_equal(atomic_load(&ekt_drops), 4);
    assert_int_equal(ekt_alloc_live(), live);
    ek_runtime_free(rt);
}

/* ---------------------------------------------------------- slow polls -- */

/* A poll that sleeps 100 ms is longer than a 20 ms threshold on any machine (a
 * loaded one only makes it longer): counted, and reported with its name and
 * length. A poll is never reported under a threshold it cannot reach. */
static void test_slow_poll_is_counted_and_reported_with_the_name(void **state)
{
    (void)state;
    for (int flavor = 0; flavor < 2; flavor++) {
        rec_reset();
        ek_builder *b = ekt_builder(flavor, 2, -1, 0);
        assert_int_equal(ek_builder_set_slow_poll(b, 20000, on_slow, &which_of[E_SLOW]), EK_OK);
        ek_runtime *rt = build(b);
        int ms = 100;
        ek_join *j;
        assert_int_equal(ek_spawn_named(rt, "sleeper", sleepy_poll, ekt_noop_drop, &ms, NULL, &j),
                         EK_OK);
        assert_int_equal(ekt_join(j, NULL), EK_OK);
        assert_int_equal(count_of(E_SLOW, 1), 1);
        pthread_mutex_lock(&rec.lock);
        assert_string_equal(rec.ev[0].name, "sleeper");
        assert_true(rec.ev[0].poll_ns >= 100u * 1000000u);
        pthread_mutex_unlock(&rec.lock);
        assert_true(ekt_metric(rt, EK_METRIC_SLOW_POLLS) >= 1);
        /* A local task too, polled here. */
        assert_int_equal(ek_spawn_local(rt, sleepy_poll, ekt_noop_drop, &ms, NULL, &j), EK_OK);
        assert_int_equal(ekt_join(j, NULL), EK_OK);
        assert_int_equal(count_of(E_SLOW, 2), 1);
        pthread_mutex_lock(&rec.lock);
        for (int i = 0; i < rec.n; i++)
            if (rec.ev[i].id == 2) assert_true(pthread_equal(rec.ev[i].thread, pthread_self()));
        pthread_mutex_unlock(&rec.lock);
        ek_runtime_free(rt);
    }
    /* Counted without a callback; nothing under an hour's threshold; nothing
     * when detection is off. */
    uint64_t thresholds[2] = {3600u * 1000000u, 0};
    for (int k = 0; k < 3; k++) {
        ek_builder *b = ekt_builder(EK_FLAVOR_CURRENT_THREAD, 0, -1, 0);
        if (k == 0)
            assert_int_equal(ek_builder_set_slow_poll(b, 1000, NULL, NULL), EK_OK);
        else
            assert_int_equal(ek_builder_set_slow_poll(b, thresholds[k - 1], on_slow, NULL), EK_OK);
        rec_reset();
        ek_runtime *rt = build(b);
        int ms = 30;
        assert_int_equal(ekt_spawn_join(rt, sleepy_poll, &ms, NULL), EK_OK);
        assert_int_equal(ekt_metric(rt, EK_METRIC_SLOW_POLLS), k == 0 ? 1 : 0);
        assert_int_equal(rec.n, 0);
        ek_runtime_free(rt);
    }
}

/* ---------------------------------------------------------------- dump -- */

static bool has_line(const char *dump, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = dump; (p = strstr(p, line)) != NULL; p++)
        if ((p == dump || p[-1] == '\n') && p[n] == '\n') return true;
    return false;
}

static int lines_starting(const char *dump, const char *prefix)
{
    int c = 0;
    size_t n = strlen(prefix);
    for (const char *p = dump; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        c += strncmp(p, prefix, n) == 0;
    return c;
}

/* No line starts with prefix, or each that does says the task is complete. */
static bool gone_or_complete(const char *dump, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = dump; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, n) == 0 && strncmp(p + n, "complete", 8) != 0) return false;
    return true;
}

static char *dump_of(ek_runtime *rt)
{
    size_t len = 0;
    assert_int_equal(ek_runtime_dump(rt, NULL, 0, &len), EK_ERANGE);
    size_t cap = len + 4096; /* it may grow meanwhile */
    char *buf = malloc(cap);
    assert_non_null(buf);
    assert_int_equal(ek_runtime_dump(rt, buf, cap, &len), EK_OK);
    assert_int_equal(strlen(buf), len);
    return buf;
}

static int ready_now(void *s, ek_cx *cx, void **out)
{
    (void)s;
    (void)cx;
    (void)out;
    return EK_OK;
}

static void test_dump_shows_workers_queues_and_every_live_task(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_join *a, *q, *loc, *job;
    assert_int_equal(ek_spawn_named(rt, "accept", ekt_pend_forever, ekt_noop_drop, NULL, NULL, &a),
                     EK_OK);
    assert_int_equal(ek_spawn_named(rt, "q\"\\\n", ekt_pend_forever, ekt_noop_drop, NULL, NULL, &q),
                     EK_OK);
    assert_int_equal(ek_spawn(rt, ekt_pend_forever, ekt_noop_drop, NULL, NULL, NULL), EK_OK);
    assert_int_equal(ekt_metric_wait(rt, EK_METRIC_POLLS, 3), 3);
    /* Not polled until this thread drives it: scheduled. */
    assert_int_equal(
        ek_spawn_local_named(rt, "lua", ekt_pend_forever, ekt_noop_drop, NULL, NULL, &loc), EK_OK);
    gate g = {0, 0};
    assert_int_equal(ek_spawn_blocking(rt, gated_job, NULL, &g, NULL, &job), EK_OK);
    while (!atomic_load(&g.started)) usleep(1000);

    char *d = dump_of(rt);
    assert_true(has_line(d, "runtime: multi_thread, 2 workers, running, io epoll") ||
                has_line(d, "runtime: multi_thread, 2 workers, running, io uring"));
    assert_true(has_line(d, "tasks: 5 alive, 5 spawned, 3 polls, 0 slow polls"));
    assert_int_equal(lines_starting(d, "worker 0: queue 0, polls "), 1);
    assert_int_equal(lines_starting(d, "worker 1: queue 0, polls "), 1);
    assert_true(has_line(d, "global queue: 0"));
    assert_true(has_line(d, "blocking: 1 threads, 0 idle, 0 queued"));
    assert_true(has_line(d, "task 1 \"accept\" idle"));
    assert_true(has_line(d, "task 2 \"q\\\"\\\\\\x0a\" idle"));
    assert_true(has_line(d, "task 3 - idle"));
    assert_true(has_line(d, "local task 4 \"lua\" scheduled"));
    assert_true(has_line(d, "blocking task 5 - running"));
    assert_int_equal(lines_starting(d, "task "), 3);
    free(d);

    /* Truncated as snprintf: NUL-terminated, the whole length told. */
    char small[16];
    size_t len = 0, full = 0;
    assert_int_equal(ek_runtime_dump(rt, NULL, 0, &full), EK_ERANGE);
    assert_int_equal(ek_runtime_dump(rt, small, sizeof small, &len), EK_ERANGE);
    assert_int_equal(len, full);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, "runtime: multi_", sizeof small - 1);
    assert_int_equal(ek_runtime_dump(rt, small, 1, NULL), EK_ERANGE);
    assert_string_equal(small, "");
    assert_int_equal(ek_runtime_dump(rt, NULL, 1, &len), EK_EINVAL);
    assert_int_equal(ek_runtime_dump(NULL, small, sizeof small, &len), EK_EINVAL);
    assert_int_equal(ek_runtime_dump((ek_runtime *)(void *)&g, small, sizeof small, &len),
                     EK_EINVAL);

    /* An aborted task leaves the dump; a cancel pending shows. */
    assert_int_equal(ek_join_abort(a), EK_OK);
    assert_int_equal(ekt_join(a, NULL), EK_ECANCELED);
    atomic_store(&g.open, 1);
    assert_int_equal(ekt_join(job, NULL), EK_OK);
    /* The joins above may find their tasks complete without driving this
     * thread's local set; drive it until a later local task has run: the
     * queue is FIFO, so "lua", scheduled first, has been polled by then. */
    ek_join *mark;
    assert_int_equal(ek_spawn_local(rt, ready_now, ekt_noop_drop, NULL, NULL, &mark), EK_OK);
    assert_int_equal(ekt_join(mark, NULL), EK_OK);
    /* (A join sees the task complete before it leaves its list: it may still
     * show, as complete.) */
    d = dump_of(rt);
    assert_true(gone_or_complete(d, "task 1 \"accept\" "));
    assert_true(gone_or_complete(d, "blocking task 5 - "));
    /* ek_join_wait ran it on this thread meanwhile: polled, pending. */
    assert_true(has_line(d, "local task 4 \"lua\" idle"));
    free(d);

    /* After shutdown: said so; what is left is this thread's local task,
     * dropped by the shutdown called from its own thread. */
    assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
    d = dump_of(rt);
    assert_int_equal(lines_starting(d, "runtime: multi_thread, 2 workers, shut down"), 1);
    assert_int_equal(lines_starting(d, "task "), 0);
    assert_int_equal(lines_starting(d, "local task "), 0);
    free(d);
    assert_int_equal(ekt_join(q, NULL), EK_ECANCELED);
    assert_int_equal(ekt_join(loc, NULL), EK_ECANCELED);
    ekt_rt_free_checked(rt);
}

static void test_dump_of_a_current_thread_runtime(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    ek_join *j;
    assert_int_equal(ek_spawn_named(rt, "t", ekt_pend_forever, ekt_noop_drop, NULL, NULL, &j),
                     EK_OK);
    char *d = dump_of(rt);
    assert_int_equal(lines_starting(d, "runtime: current_thread, 1 worker, running"), 1);
    assert_true(has_line(d, "global queue: 1"));
    assert_true(has_line(d, "core queue: 0"));
    assert_int_equal(lines_starting(d, "worker "), 0);
    assert_true(has_line(d, "task 1 \"t\" scheduled"));
    free(d);
    ek_join_detach(j);
    ekt_rt_free_checked(rt);
}

/* Dumps from another thread while tasks of every kind are spawned, polled and
 * end on the workers and this thread: nothing races (TSan), every dump is
 * well formed. */
typedef struct dumper {
    ek_runtime *rt;
    atomic_bool stop;
    atomic_int dumps;
} dumper;

static void *dumper_main(void *arg)
{
    dumper *dm = arg;
    char *buf = malloc(1 << 16);
    while (!atomic_load(&dm->stop)) {
        size_t len;
        int rc = ek_runtime_dump(dm->rt, buf, 1 << 16, &len);
        if (rc == EK_OK && strncmp(buf, "runtime: ", 9) == 0 && buf[len - 1] == '\n')
            atomic_fetch_add(&dm->dumps, 1);
    }
    free(buf);
    return NULL;
}

static void test_dump_races_nothing_while_tasks_come_and_go(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    dumper dm = {.rt = rt};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, dumper_main, &dm), 0);
    long rounds = ekt_scale(200);
    for (long r = 0; r < rounds; r++) {
        ek_join *j[3];
        assert_int_equal(
            ek_spawn_named(rt, "y", yield_poll, free_drop, new_yielder(2), NULL, &j[0]), EK_OK);
        assert_int_equal(
            ek_spawn_local_named(rt, "l", yield_poll, free_drop, new_yielder(1), NULL, &j[1]),
            EK_OK);
        assert_int_equal(ek_spawn_blocking(rt, run_job, NULL, NULL, NULL, &j[2]), EK_OK);
        for (int i = 0; i < 3; i++) assert_int_equal(ekt_join(j[i], NULL), EK_OK);
    }
    /* At least one dump completed alongside. */
    while (atomic_load(&dm.dumps) == 0) usleep(1000);
    atomic_store(&dm.stop, true);
    pthread_join(th, NULL);
    assert_true(atomic_load(&dm.dumps) > 0);
    ekt_rt_free_checked(rt);
}

/* ---------------------------------------------------------- POLLS metric -- */

/* A worker task that spawns local tasks on its worker and joins them. */
typedef struct spawner {
    bool spawned;
    ek_join *j[2]; /* NULL once joined */
} spawner;

static int spawn_locals_poll(void *state, ek_cx *cx, void **out)
{
    spawner *sp = state;
    if (!sp->spawned) {
        ek_runtime *rt = ek_cx_runtime(cx);
        for (int i = 0; i < 2; i++)
            assert_int_equal(
                ek_spawn_local(rt, yield_poll, free_drop, new_yielder(2), NULL, &sp->j[i]), EK_OK);
        sp->spawned = true;
    }
    for (int i = 0; i < 2; i++) {
        if (!sp->j[i]) continue;
        int rc = ek_join_poll(sp->j[i], cx, out);
        if (rc == EK_PENDING) return rc;
        assert_int_equal(rc, EK_OK);
        ek_join_detach(sp->j[i]);
        sp->j[i] = NULL;
    }
    *out = NULL;
    return EK_OK;
}

/* Every poll of a local task counts in EK_METRIC_POLLS, as a worker's do:
 * on a thread outside the runtime (driven by ek_block_on / ek_join_wait), on
 * a current-thread runtime's, and on a worker (spawned from one of its tasks).
 * A yielder of 2 is polled 3 times. */
static void test_polls_metric_counts_local_tasks(void **state)
{
    (void)state;
    int flavors[] = {EK_FLAVOR_MULTI_THREAD, EK_FLAVOR_CURRENT_THREAD};
    for (int f = 0; f < 2; f++) {
        ek_runtime *rt = ekt_rt(flavors[f], 2);
        ek_join *j[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(ek_spawn_local(rt, yield_poll, free_drop, new_yielder(2), NULL, &j[i]),
                             EK_OK);
        for (int i = 0; i < 2; i++) assert_int_equal(ekt_join(j[i], NULL), EK_OK);
        assert_int_equal(ekt_metric(rt, EK_METRIC_POLLS), 6);
        if (flavors[f] == EK_FLAVOR_MULTI_THREAD) {
            /* 1 + 2 polls of the spawner (it waits for each), 6 of its locals */
            spawner sp = {0};
            ek_join *js;
            assert_int_equal(ek_spawn(rt, spawn_locals_poll, ekt_noop_drop, &sp, NULL, &js), EK_OK);
            assert_int_equal(ekt_join(js, NULL), EK_OK);
            uint64_t polls = ekt_metric(rt, EK_METRIC_POLLS) - 6;
            assert_true(polls >= 6 + 1 && polls <= 6 + 3);
        }
        ek_runtime_free(rt);
    }
}

/* ------------------------------------------------------------ pend sites -- */

/* Tasks that wait at one site each (pend_state.kind). */
enum { PEND_SLEEP, PEND_RECV, PEND_LOCK, PEND_TIMEOUT_SLEEP, PEND_HOST, PEND_HOST_OVER_RECV };
typedef struct pend_state {
    int kind;
    ek_runtime *rt;
    ek_future *f;
    ek_mpsc_receiver *rx;
    ek_mutex_guard *g;
} pend_state;

static int pend_poll(void *state, ek_cx *cx, void **out)
{
    pend_state *p = state;
    switch (p->kind) {
    case PEND_SLEEP:
        if (!p->f) assert_int_equal(ek_sleep(p->rt, 3600 * 1000, &p->f), EK_OK);
        return ek_future_poll(p->f, cx, out);
    case PEND_TIMEOUT_SLEEP:
        if (!p->f) {
            ek_future *inner;
            assert_int_equal(ek_sleep(p->rt, 7200 * 1000, &inner), EK_OK);
            assert_int_equal(ek_timeout(p->rt, inner, 3600 * 1000, &p->f), EK_OK);
        }
        return ek_future_poll(p->f, cx, out);
    case PEND_RECV: /* a message, then a sleep */
        if (!p->f) {
            int rc = ek_mpsc_recv(p->rx, cx, out);
            if (rc != EK_OK) return rc;
            assert_int_equal(ek_sleep(p->rt, 3600 * 1000, &p->f), EK_OK);
        }
        return ek_future_poll(p->f, cx, out);
    case PEND_LOCK:
        return ek_mutex_lock(p->g, cx);
    case PEND_HOST:
        assert_int_equal(ek_task_set_pend_site(cx, "await queue.get"), EK_OK);
        return EK_PENDING; /* woken by nothing: cancelled at shutdown */
    default: {
        /* A host future around a core wait: its own name replaces the core's. */
        int rc = ek_mpsc_recv(p->rx, cx, out);
        if (rc == EK_PENDING) assert_int_equal(ek_task_set_pend_site(cx, "host\"q"), EK_OK);
        return rc;
    }
    }
}

static void pend_drop(void *state)
{
    pend_state *p = state;
    ek_future_drop(p->f);
    free(p);
}

static void spawn_pending(ek_runtime *rt, const char *name, int kind, ek_mpsc_receiver *rx,
                          ek_mutex_guard *g)
{
    pend_state *p = calloc(1, sizeof *p);
    assert_non_null(p);
    *p = (pend_state){.kind = kind, .rt = rt, .rx = rx, .g = g};
    assert_int_equal(ek_spawn_named(rt, name, pend_poll, pend_drop, p, NULL, NULL), EK_OK);
}

/* The dump of rt once it has every line of want[] (tasks store their site
 * after their poll returns, so a dump right after the POLLS metric moved may
 * not show it yet); fails after a generous bound. */
static char *dump_with(ek_runtime *rt, const char *const *want, int n)
{
    for (int tries = 0;; tries++) {
        char *d = dump_of(rt);
        int found = 0;
        for (int i = 0; i < n; i++) found += has_line(d, want[i]);
        if (found == n) return d;
        if (tries == 20000) {
            print_message("%s", d);
            fail_msg("the dump lacks a line it should have");
        }
        free(d);
        usleep(1000);
    }
}

static void test_dump_says_where_each_task_last_pended(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_mpsc_sender *tx, *tx2;
    ek_mpsc_receiver *rx, *rx2;
    assert_int_equal(ek_mpsc_unbounded(NULL, &tx, &rx), EK_OK);
    assert_int_equal(ek_mpsc_unbounded(NULL, &tx2, &rx2), EK_OK);
    ek_mutex *m;
    ek_mutex_guard *held, *g;
    assert_int_equal(ek_mutex_new(NULL, NULL, &m), EK_OK);
    assert_int_equal(ek_mutex_guard_new(m, &held), EK_OK);
    assert_int_equal(ek_mutex_guard_new(m, &g), EK_OK);
    assert_int_equal(ek_mutex_blocking_lock(held), EK_OK);

    /* Before any poll: no site. */
    assert_int_equal(ek_spawn_named(rt, "fresh", ekt_pend_forever, ekt_noop_drop, NULL, NULL, NULL),
                     EK_OK);
    spawn_pending(rt, "nap", PEND_SLEEP, NULL, NULL);
    spawn_pending(rt, "inbox", PEND_RECV, rx, NULL);
    spawn_pending(rt, "lock", PEND_LOCK, NULL, g);
    spawn_pending(rt, "wrapped", PEND_TIMEOUT_SLEEP, NULL, NULL);
    spawn_pending(rt, "host", PEND_HOST, NULL, NULL);
    spawn_pending(rt, "hosted", PEND_HOST_OVER_RECV, rx2, NULL);
    const char *want[] = {
        "task 1 \"fresh\" idle",
        "task 2 \"nap\" idle, pended at sleep",
        "task 3 \"inbox\" idle, pended at mpsc recv",
        "task 4 \"lock\" idle, pended at mutex lock",
        /* the first wait of the poll names it: the inner sleep, not the timeout */
        "task 5 \"wrapped\" idle, pended at sleep",
        "task 6 \"host\" idle, pended at \"await queue.get\"",
        "task 7 \"hosted\" idle, pended at \"host\\\"q\"",
    };
    char *d = dump_with(rt, want, 7);
    assert_int_equal(lines_starting(d, "task "), 7);
    free(d);

    /* Where it pended last: the message wakes "inbox", which then sleeps. */
    assert_int_equal(ek_mpsc_send(tx, NULL, NULL), EK_OK);
    const char *then[] = {"task 3 \"inbox\" idle, pended at sleep"};
    free(dump_with(rt, then, 1));
    ek_runtime_free(rt); /* cancels the rest */
    ek_mutex_guard_drop(g);
    ek_mutex_guard_drop(held);
    ek_mutex_drop(m);
    ek_mpsc_sender_drop(tx);
    ek_mpsc_sender_drop(tx2);
    ek_mpsc_receiver_drop(rx);
    ek_mpsc_receiver_drop(rx2);
}

static int site_of_block_on(void *state, ek_cx *cx, void **out)
{
    int *rc = state;
    (void)out;
    rc[0] = ek_task_set_pend_site(NULL, "x");
    rc[1] = ek_task_set_pend_site(cx, NULL);
    rc[2] = ek_task_set_pend_site(cx, "");
    rc[3] = ek_task_set_pend_site(cx, "no task here"); /* no effect, still interned */
    /* Fill the process-wide table: at most 200 host names, then EK_ENOMEM;
     * a name already there still costs nothing. */
    int ok = 0;
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "site %d", i);
        int r = ek_task_set_pend_site(cx, name);
        if (r == EK_OK)
            ok++;
        else
            assert_int_equal(r, EK_ENOMEM);
    }
    rc[4] = ok;
    rc[5] = ek_task_set_pend_site(cx, "site 0");
    rc[6] = ek_task_set_pend_site(cx, "no task here");
    return EK_OK;
}

/* Run last: it fills the process-wide table of host site names. */
static void test_set_pend_site_checks_and_bounds_its_table(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    int rc[7];
    assert_int_equal(ekt_block_on_fn(rt, site_of_block_on, rc, NULL), EK_OK);
    assert_int_equal(rc[0], EK_EINVAL);
    assert_int_equal(rc[1], EK_OK);
    assert_int_equal(rc[2], EK_OK);
    assert_int_equal(rc[3], EK_OK);
    /* Earlier tests of this program interned 2 names, this one 1 more. */
    assert_true(rc[4] >= 200 - 3 && rc[4] <= 200);
    assert_int_equal(rc[5], EK_OK);
    assert_int_equal(rc[6], EK_OK);
    ek_runtime_free(rt);
}

int main(void)
{
    pthread_mutex_init(&rec.lock, NULL);
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)
        T(test_task_hooks_pair_up_on_the_threads_they_report),
        T(test_cancelled_and_refused_tasks_terminate_once),
        T(test_hooks_may_dump_the_runtime),
        T(test_task_hook_setters_check_the_builder),
        T(test_spawn_named_copies_cuts_and_checks),
        T(test_slow_poll_is_counted_and_reported_with_the_name),
        T(test_dump_shows_workers_queues_and_every_live_task),
        T(test_dump_of_a_current_thread_runtime),
        T(test_dump_races_nothing_while_tasks_come_and_go),
        T(test_polls_metric_counts_local_tasks),
        T(test_dump_says_where_each_task_last_pended),
        T(test_set_pend_site_checks_and_bounds_its_table),
#undef T
    };
    if (getenv("EKT_FILTER")) cmocka_set_test_filter(getenv("EKT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
