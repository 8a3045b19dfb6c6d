/*
 * test_blocking.c - the blocking pool (ek_spawn_blocking): results through
 * ek_join_wait and ek_join_poll, growth up to the cap with a queue behind it,
 * reuse of idle threads and their exit after the keep-alive, abort before and
 * during a job, shutdown with a timeout while a job still runs, and out_drop
 * for results nobody takes.
 */
#include "support.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---- */

static ek_runtime *blocking_rt(int flavor, unsigned max_threads, uint64_t keep_alive_ms)
{
    ek_builder *b = ekt_builder(flavor, flavor == EK_FLAVOR_MULTI_THREAD ? 2 : 0, -1, 0);
    if (max_threads) assert_int_equal(ek_builder_set_max_blocking_threads(b, max_threads), EK_OK);
    if (keep_alive_ms)
        assert_int_equal(ek_builder_set_blocking_keep_alive_ms(b, keep_alive_ms), EK_OK);
    ek_runtime *rt = NULL;
    assert_int_equal(ek_runtime_new(b, &rt), EK_OK);
    ek_builder_free(b);
    return rt;
}

/* A gate jobs wait at until the test opens it; counts who arrived. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    int entered;
} gate;

static void gate_init(gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = 0;
    g->entered = 0;
}
static void gate_destroy(gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}
static void gate_pass(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->entered++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}
static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}
/* Wait (bounded: 10 s) until n jobs arrived; returns how many did. */
static int gate_wait_entered(gate *g, int n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&g->mu);
    while (g->entered < n)
        if (pthread_cond_timedwait(&g->cv, &g->mu, &ts) != 0) break;
    int e = g->entered;
    pthread_mutex_unlock(&g->mu);
    return e;
}
static int gate_entered(gate *g)
{
    pthread_mutex_lock(&g->mu);
    int e = g->entered;
    pthread_mutex_unlock(&g->mu);
    return e;
}

/* A job: optionally waits at a gate, records that it ran, returns (rc, out). */
typedef struct {
    gate *g;
    int rc;
    void *out;
    atomic_int ran;
    atomic_int finished;
    ek_runtime *current;
    pthread_t thread;
} job;

static int job_fn(void *arg, void **out)
{
    job *j = arg;
    atomic_fetch_add(&j->ran, 1);
    j->current = ek_runtime_current();
    j->thread = pthread_self();
    if (j->g) gate_pass(j->g);
    *out = j->out;
    atomic_store(&j->finished, 1);
    return j->rc;
}

typedef struct {
    gate *g;
    unsigned delay_ms;
    atomic_int opened;
} opener;

static void *opener_main(void *arg)
{
    opener *o = arg;
    usleep(o->delay_ms * 1000u);
    atomic_store(&o->opened, 1);
    gate_open(o->g);
    return NULL;
}

static const int flavors[2] = {EK_FLAVOR_MULTI_THREAD, EK_FLAVOR_CURRENT_THREAD};

/* ---- results ---- */

static void test_blocking_result_and_error_through_join_wait(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = blocking_rt(flavors[fl], 0, 0);
        ekt_reset_drops();
        job a = {.rc = EK_OK, .out = (void *)0xa1};
        ek_join *j = NULL;
        assert_int_equal(ek_spawn_blocking(rt, job_fn, ekt_count_drop, &a, ekt_count_out_drop, &j),
                         EK_OK);
        void *out = NULL;
        assert_int_equal(ek_join_wait(j, &out), EK_OK);
        assert_ptr_equal(out, (void *)0xa1);
        assert_int_equal(ek_join_is_finished(j), 1);
        ek_join_detach(j);
        assert_int_equal(atomic_load(&a.ran), 1);
        assert_ptr_equal(a.current, rt); /* a pool thread of this runtime... */
        assert_false(pthread_equal(a.thread, pthread_self())); /* ...not the caller */

        /* A job's own error is the join result; its *out is not handed out. */
        job e = {.rc = EK_EIO, .out = (void *)0xa2};
        assert_int_equal(ek_spawn_blocking(rt, job_fn, ekt_count_drop, &e, ekt_count_out_drop, &j),
                         EK_OK);
        out = (void *)0x1;
        assert_int_equal(ek_join_wait(j, &out), EK_EIO);
        ek_join_detach(j);

        /* drop may be NULL. */
        job n = {.rc = EK_OK, .out = (void *)0xa3};
        assert_int_equal(ek_spawn_blocking(rt, job_fn, NULL, &n, NULL, &j), EK_OK);
        assert_int_equal(ek_join_wait(j, &out), EK_OK);
        assert_ptr_equal(out, (void *)0xa3);
        ek_join_detach(j);

        assert_int_equal(atomic_load(&ekt_drops), 2);
        assert_int_equal(atomic_load(&ekt_out_drops), 0);
        ekt_rt_free_checked(rt);
    }
}

/* A task that spawns a blocking job and awaits it with ek_join_poll. */
typedef struct {
    job jb;
    ek_join *j;
    atomic_int pendings;
    int rc;
    void *out;
} awaiter;

static int awaiter_poll(void *s, ek_cx *cx, void **out)
{
    awaiter *a = s;
    if (!a->j) {
        int rc = ek_spawn_blocking(ek_cx_runtime(cx), job_fn, ekt_count_drop, &a->jb,
                                   ekt_count_out_drop, &a->j);
        if (rc) return rc;
    }
    int rc = ek_join_poll(a->j, cx, &a->out);
    if (rc == EK_PENDING) {
        atomic_fetch_add(&a->pendings, 1);
        return EK_PENDING;
    }
    a->rc = rc;
    ek_join_detach(a->j);
    *out = a->out;
    return EK_OK;
}

static void test_blocking_result_through_join_poll_in_a_task(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = blocking_rt(flavors[fl], 0, 0);
        ekt_reset_drops();
        gate g;
        gate_init(&g);
        awaiter a = {.jb = {.g = &g, .rc = EK_OK, .out = (void *)0xb1}};
        ek_join *t = NULL;
        assert_int_equal(ek_spawn(rt, awaiter_poll, ekt_noop_drop, &a, NULL, &t), EK_OK);
        opener o = {.g = &g, .delay_ms = 50};
        pthread_t th;
        if (flavors[fl] == EK_FLAVOR_MULTI_THREAD) {
            /* Open only once the task pends on the handle: the job's completion
             * must wake it. */
            assert_int_equal(gate_wait_entered(&g, 1), 1);
            for (int i = 0; i < 10000 && atomic_load(&a.pendings) == 0; i++) usleep(1000);
            assert_true(atomic_load(&a.pendings) >= 1);
            gate_open(&g);
        } else {
            /* Current-thread: the task runs only inside ek_join_wait below;
             * another thread opens the gate meanwhile (a cross-thread wake of
             * the thread that drives the runtime). */
            assert_int_equal(pthread_create(&th, NULL, opener_main, &o), 0);
        }
        void *out = NULL;
        assert_int_equal(ek_join_wait(t, &out), EK_OK);
        ek_join_detach(t);
        assert_int_equal(a.rc, EK_OK);
        assert_ptr_equal(a.out, (void *)0xb1);
        assert_ptr_equal(out, (void *)0xb1);
        if (flavors[fl] == EK_FLAVOR_CURRENT_THREAD) pthread_join(th, NULL);
        assert_int_equal(atomic_load(&a.jb.ran), 1);
        assert_int_equal(atomic_load(&ekt_drops), 1);
        assert_int_equal(atomic_load(&ekt_out_drops), 0);
        gate_destroy(&g);
        ekt_rt_free_checked(rt);
    }
}

/* ---- growth, cap, queue, reuse, keep-alive ---- */

static void test_pool_grows_to_the_cap_and_queues_the_rest(void **state)
{
    (void)state;
    ek_runtime *rt = blocking_rt(EK_FLAVOR_MULTI_THREAD, 3, 0);
    ekt_reset_drops();
    gate g;
    gate_init(&g);
    job jobs[6];
    ek_join *js[6];
    for (int i = 0; i < 6; i++) {
        jobs[i] = (job){.g = &g, .rc = EK_OK, .out = (void *)(uintptr_t)(0xc0 + i)};
        assert_int_equal(
            ek_spawn_blocking(rt, job_fn, ekt_count_drop, &jobs[i], ekt_count_out_drop, &js[i]),
            EK_OK);
    }
    assert_int_equal(gate_wait_entered(&g, 3), 3);
    usleep(50000); /* give a (wrong) fourth thread the chance to show up */
    assert_int_equal(gate_entered(&g), 3);
    assert_int_equal(ekt_metric(rt, EK_METRIC_BLOCKING_THREADS), 3);
    assert_int_equal(ekt_metric(rt, EK_METRIC_BLOCKING_QUEUE_DEPTH), 3);
    assert_int_equal(ekt_metric(rt, EK_METRIC_BLOCKING_IDLE), 0);
    int ran = 0;
    for (int i = 0; i < 6; i++) ran += atomic_load(&jobs[i].ran);
    assert_int_equal(ran, 3);

    gate_open(&g);
    for (int i = 0; i < 6; i++) {
        void *out = NULL;
        assert_int_equal(ek_join_wait(js[i], &out), EK_OK);
        assert_ptr_equal(out, (void *)(uintptr_t)(0xc0 + i));
        ek_join_detach(js[i]);
        assert_int_equal(atomic_load(&jobs[i].ran), 1);
    }
    assert_int_equal(gate_entered(&g), 6);
    assert_int_equal(ekt_metric(rt, EK_METRIC_BLOCKING_QUEUE_DEPTH), 0);
    assert_true(ekt_metric(rt, EK_METRIC_BLOCKING_THREADS) <= 3);
    assert_int_equal(atomic_load(&ekt_drops), 6);
    assert_int_equal(atomic_load(&ekt_out_drops), 0);
    gate_destroy(&g);
    ekt_rt_free_checked(rt);
}

static void test_idle_thread_is_reused_and_kept_within_keep_alive(void **state)
{
    (void)state;
    ek_runtime *rt = blocking_rt(EK_FLAVOR_MULTI_THREAD, 0, 0); /* keep-alive 10 s */
    ekt_reset_drops();
    pthread_t first;
    for (int i = 0; i < 5; i++) {
        /* Once the thread is idle, the next job goes to it. */
        if (i > 0) assert_int_equal(ekt_metric_wait(rt, EK_METRIC_BLOCKING_IDLE, 1), 1);
        job jb = {.rc = EK_OK, .out = (void *)0xd1};
        ek_join *j = NULL;
        assert_int_equal(ek_spawn_blocking(rt, job_fn, ekt_count_drop, &jb, NULL, &j), EK_OK);
        void *out = NULL;
        assert_int_equal(ek_join_wait(j, &out), EK_OK);
        assert_ptr_equal(out, (void *)0xd1);
        ek_join_detach(j);
        if (i == 0)
            first = jb.thread;
        else
            assert_true(pthread_equal(first, jb.thread));
        assert_int_equal(ekt_metric(rt, EK_METRIC_BLOCKING_THREADS), 1);
    }
    /* Well within the 10 s keep-alive the idle thread stays. */
    usleep(100000);
    assert_int_equal(ekt_metric(rt, EK_METRIC_BLOCKING_THREADS), 1);
    assert_int_equal(ekt_metric(rt, EK_METRIC_BLOCKING_IDLE), 1);
    assert_int_equal(atomic_load(&ekt_drops), 5);
    ekt_rt_free_checked(rt); /* wakes and joins the idle thread at once */
}

static void test_idle_threads_exit_after_the_keep_alive(void **state)
{
    (void)state;
    ek_runtime *rt = blocking_rt(EK_FLAVOR_MULTI_THREAD, 0, 50);
    ekt_reset_drops();
    gate g;
    gate_init(&g);
    job jobs[3];
    ek_join *js[3];
    for (int i = 0; i < 3; i++) {
        jobs[i] = (job){.g = &g, .rc = EK_OK};
        assert_int_equal(ek_spawn_blocking(rt, job_fn, ekt_count_drop, &jobs[i], NULL, &js[i]),
                         EK_OK);
    }
    assert_int_equal(gate_wait_entered(&g, 3), 3);
    assert_int_equal(ekt_metric(rt, EK_METRIC_BLOCKING_THREADS), 3);
    gate_open(&g);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ek_join_wait(js[i], NULL), EK_OK);
        ek_join_detach(js[i]);
    }
    /* The idle threads exit after the keep-alive (how soon is the machine's
     * business; ekt_metric_wait gives up after ~10 s, which only a pool that
     * never lets them go would reach). */
    assert_int_equal(ekt_metric_wait(rt, EK_METRIC_BLOCKING_THREADS, 0), 0);
    assert_int_equal(ekt_metric(rt, EK_METRIC_BLOCKING_IDLE), 0);

    /* The pool starts threads again when needed. */
    job again = {.rc = EK_OK, .out = (void *)0xe1};
    ek_join *j = NULL;
    assert_int_equal(ek_spawn_blocking(rt, job_fn, ekt_count_drop, &again, NULL, &j), EK_OK);
    void *out = NULL;
    assert_int_equal(ek_join_wait(j, &out), EK_OK);
    assert_ptr_equal(out, (void *)0xe1);
    ek_join_detach(j);
    assert_int_equal(ekt_metric_wait(rt, EK_METRIC_BLOCKING_THREADS, 0), 0);
    assert_int_equal(atomic_load(&ekt_drops), 4);
    gate_destroy(&g);
    ekt_rt_free_checked(rt);
}

/* ---- abort ---- */

static void test_abort_before_start_cancels_the_job_and_drops_its_arg_once(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = blocking_rt(flavors[fl], 1, 0);
        ekt_reset_drops();
        gate g;
        gate_init(&g);
        job busy = {.g = &g, .rc = EK_OK, .out = (void *)0xf1};
        job queued = {.rc = EK_OK, .out = (void *)0xf2};
        ek_join *jb = NULL, *jq = NULL;
        assert_int_equal(
            ek_spawn_blocking(rt, job_fn, ekt_count_drop, &busy, ekt_count_out_drop, &jb), EK_OK);
        assert_int_equal(gate_wait_entered(&g, 1), 1); /* the only thread is taken */
        assert_int_equal(
            ek_spawn_blocking(rt, job_fn, ekt_count_drop, &queued, ekt_count_out_drop, &jq), EK_OK);
        assert_int_equal(ekt_metric(rt, EK_METRIC_BLOCKING_QUEUE_DEPTH), 1);
        assert_int_equal(ek_join_abort(jq), EK_OK);
        assert_int_equal(ek_join_abort(jq), EK_OK); /* twice is fine */
        gate_open(&g);
        void *out = (void *)0x1;
        assert_int_equal(ek_join_wait(jq, &out), EK_ECANCELED);
        assert_int_equal(ek_join_is_finished(jq), 1);
        assert_int_equal(atomic_load(&queued.ran), 0); /* never started */
        assert_int_equal(ek_join_wait(jb, &out), EK_OK);
        assert_ptr_equal(out, (void *)0xf1);
        ek_join_detach(jq);
        ek_join_detach(jb);
        assert_int_equal(atomic_load(&ekt_drops), 2); /* each arg once */
        assert_int_equal(atomic_load(&ekt_out_drops), 0);
        gate_destroy(&g);
        ekt_rt_free_checked(rt);
        assert_int_equal(atomic_load(&queued.ran), 0);
        assert_int_equal(atomic_load(&ekt_drops), 2);
    }
}

static void test_abort_of_a_running_job_does_not_interrupt_it(void **state)
{
    (void)state;
    /* "A running job is never interrupted"; abort acts "after its current poll
     * returns", and a job's only run is its completion: it finishes and its
     * real result is delivered (as Tokio's spawn_blocking). */
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = blocking_rt(flavors[fl], 0, 0);
        ekt_reset_drops();
        gate g;
        gate_init(&g);
        job jb = {.g = &g, .rc = EK_OK, .out = (void *)0x101};
        ek_join *j = NULL;
        assert_int_equal(ek_spawn_blocking(rt, job_fn, ekt_count_drop, &jb, ekt_count_out_drop, &j),
                         EK_OK);
        assert_int_equal(gate_wait_entered(&g, 1), 1);
        assert_int_equal(ek_join_abort(j), EK_OK);
        usleep(20000);
        assert_int_equal(ek_join_is_finished(j), 0);  /* still running */
        assert_int_equal(atomic_load(&ekt_drops), 0); /* arg not dropped under it */
        gate_open(&g);
        void *out = NULL;
        assert_int_equal(ek_join_wait(j, &out), EK_OK);
        assert_ptr_equal(out, (void *)0x101);
        assert_int_equal(atomic_load(&jb.finished), 1);
        ek_join_detach(j);
        assert_int_equal(atomic_load(&ekt_drops), 1);
        assert_int_equal(atomic_load(&ekt_out_drops), 0);

        /* Same, but the handle is detached unread: the result goes to out_drop. */
        gate g2;
        gate_init(&g2);
        job jb2 = {.g = &g2, .rc = EK_OK, .out = (void *)0x102};
        assert_int_equal(
            ek_spawn_blocking(rt, job_fn, ekt_count_drop, &jb2, ekt_count_out_drop, &j), EK_OK);
        assert_int_equal(gate_wait_entered(&g2, 1), 1);
        assert_int_equal(ek_join_abort(j), EK_OK);
        ek_join_detach(j);
        gate_open(&g2);
        ekt_rt_free_checked(rt); /* waits for the job */
        assert_int_equal(atomic_load(&jb2.finished), 1);
        assert_int_equal(atomic_load(&ekt_drops), 2);
        assert_int_equal(atomic_load(&ekt_out_drops), 1);
        assert_int_equal(atomic_load(&ekt_last_out_drop), 0x102);
        gate_destroy(&g);
        gate_destroy(&g2);
    }
}

/* ---- shutdown ---- */

static void test_shutdown_timeout_with_running_job_then_free_waits_for_it(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = blocking_rt(flavors[fl], 1, 0);
        ekt_reset_drops();
        gate g;
        gate_init(&g);
        job running = {.g = &g, .rc = EK_OK, .out = (void *)0x111};
        job queued = {.rc = EK_OK, .out = (void *)0x112};
        ek_join *j = NULL;
        assert_int_equal(
            ek_spawn_blocking(rt, job_fn, ekt_count_drop, &running, ekt_count_out_drop, &j), EK_OK);
        assert_int_equal(gate_wait_entered(&g, 1), 1);
        /* A second job waits for the only thread: shutdown cancels it. */
        assert_int_equal(
            ek_spawn_blocking(rt, job_fn, ekt_count_drop, &queued, ekt_count_out_drop, NULL),
            EK_OK);

        uint64_t t0 = ekt_now_ms();
        assert_int_equal(ek_runtime_shutdown(rt, 50), EK_ETIMEDOUT);
        uint64_t took = ekt_now_ms() - t0;
        assert_true(took >= 45);
        assert_int_equal(atomic_load(&running.finished), 0);
        assert_int_equal(atomic_load(&queued.ran), 0);
        assert_int_equal(atomic_load(&ekt_drops), 1); /* the queued job's arg */
        assert_int_equal(ek_join_is_finished(j), 0);
        /* Still timing out; spawning is refused (and drops its arg). */
        assert_int_equal(ek_runtime_shutdown(rt, 0), EK_ETIMEDOUT);
        job late = {.rc = EK_OK};
        assert_int_equal(ek_spawn_blocking(rt, job_fn, ekt_count_drop, &late, NULL, NULL),
                         EK_ECLOSED);
        assert_int_equal(atomic_load(&ekt_drops), 2);
        assert_int_equal(atomic_load(&late.ran), 0);

        /* Free waits for the running job (released 100 ms from now). */
        ek_join_detach(j);
        opener o = {.g = &g, .delay_ms = 100};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, opener_main, &o), 0);
        ekt_rt_free_checked(rt);
        assert_int_equal(atomic_load(&o.opened), 1);
        assert_int_equal(atomic_load(&running.finished), 1);
        assert_int_equal(atomic_load(&ekt_drops), 3);
        assert_int_equal(atomic_load(&ekt_out_drops), 1); /* detached job's result */
        assert_int_equal(atomic_load(&ekt_last_out_drop), 0x111);
        pthread_join(th, NULL);
        gate_destroy(&g);
    }
}

static void test_shutdown_without_limit_waits_for_running_jobs(void **state)
{
    (void)state;
    ek_runtime *rt = blocking_rt(EK_FLAVOR_MULTI_THREAD, 0, 0);
    ekt_reset_drops();
    gate g;
    gate_init(&g);
    job jobs[2] = {{.g = &g, .out = (void *)0x121}, {.g = &g, .out = (void *)0x122}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(
            ek_spawn_blocking(rt, job_fn, ekt_count_drop, &jobs[i], ekt_count_out_drop, NULL),
            EK_OK);
    assert_int_equal(gate_wait_entered(&g, 2), 2);
    opener o = {.g = &g, .delay_ms = 50};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, opener_main, &o), 0);
    assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
    assert_int_equal(atomic_load(&o.opened), 1);
    assert_int_equal(atomic_load(&jobs[0].finished) + atomic_load(&jobs[1].finished), 2);
    assert_int_equal(ekt_metric(rt, EK_METRIC_BLOCKING_THREADS), 0);
    assert_int_equal(atomic_load(&ekt_drops), 2);
    assert_int_equal(atomic_load(&ekt_out_drops), 2);
    pthread_join(th, NULL);
    gate_destroy(&g);
    ekt_rt_free_checked(rt);
}

/* Regression: after a shutdown that timed out, ek_join_wait gave EK_ECLOSED at
 * once although the job still ran; it must wait and give the real result (and
 * after ek_runtime_free too, which waits for the job itself). */
static void test_join_wait_after_shutdown_timeout_gives_the_real_result(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = blocking_rt(flavors[fl], 0, 0);
        gate g;
        gate_init(&g);
        job running = {.g = &g, .rc = -4242, .out = (void *)0x131};
        ek_join *j = NULL;
        assert_int_equal(ek_spawn_blocking(rt, job_fn, NULL, &running, NULL, &j), EK_OK);
        assert_int_equal(gate_wait_entered(&g, 1), 1);
        assert_int_equal(ek_runtime_shutdown(rt, 50), EK_ETIMEDOUT);
        opener o = {.g = &g, .delay_ms = 100};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, opener_main, &o), 0);
        assert_int_equal(ek_join_wait(j, NULL), -4242); /* the job's own status */
        assert_int_equal(atomic_load(&o.opened), 1);
        assert_int_equal(atomic_load(&running.finished), 1);
        ek_join_detach(j);
        pthread_join(th, NULL);

        /* A successful job's result, waited for after the runtime was freed. */
        gate_destroy(&g);
        gate_init(&g);
        ekt_rt_free_checked(rt);
        rt = blocking_rt(flavors[fl], 0, 0);
        job ok = {.g = &g, .rc = EK_OK, .out = (void *)0x132};
        assert_int_equal(ek_spawn_blocking(rt, job_fn, NULL, &ok, NULL, &j), EK_OK);
        assert_int_equal(gate_wait_entered(&g, 1), 1);
        assert_int_equal(ek_runtime_shutdown(rt, 20), EK_ETIMEDOUT);
        o = (opener){.g = &g, .delay_ms = 50};
        assert_int_equal(pthread_create(&th, NULL, opener_main, &o), 0);
        void *out = NULL;
        assert_int_equal(ek_join_wait(j, &out), EK_OK);
        assert_ptr_equal(out, (void *)0x132);
        ek_join_detach(j);
        pthread_join(th, NULL);
        gate_destroy(&g);
        ekt_rt_free_checked(rt);
    }
}

/* Regression: a timeout whose nanoseconds overflow (UINT64_MAX / 2 ms) made
 * shutdown return EK_ETIMEDOUT at once; it means "no limit". */
static void test_shutdown_with_a_huge_timeout_waits_for_the_job(void **state)
{
    (void)state;
    const uint64_t huge[] = {UINT64_MAX / 2, UINT64_MAX / 1000000u, UINT64_MAX - 1};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        ek_runtime *rt = blocking_rt(EK_FLAVOR_MULTI_THREAD, 0, 0);
        gate g;
        gate_init(&g);
        job running = {.g = &g, .rc = EK_OK};
        assert_int_equal(ek_spawn_blocking(rt, job_fn, NULL, &running, NULL, NULL), EK_OK);
        assert_int_equal(gate_wait_entered(&g, 1), 1);
        opener o = {.g = &g, .delay_ms = 50};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, opener_main, &o), 0);
        assert_int_equal(ek_runtime_shutdown(rt, huge[i]), EK_OK);
        assert_int_equal(atomic_load(&o.opened), 1);
        assert_int_equal(atomic_load(&running.finished), 1);
        pthread_join(th, NULL);
        gate_destroy(&g);
        ekt_rt_free_checked(rt);
    }
}

/* Regression: the largest keep-alive the builder accepts overflowed to a
 * deadline in the past, so idle threads exited at once (as if 0). */
static void test_the_largest_keep_alive_keeps_the_thread(void **state)
{
    (void)state;
    ek_runtime *rt = blocking_rt(EK_FLAVOR_MULTI_THREAD, 0, UINT64_MAX / 1000000u);
    job quick = {.rc = EK_OK};
    ek_join *j;
    assert_int_equal(ek_spawn_blocking(rt, job_fn, NULL, &quick, NULL, &j), EK_OK);
    assert_int_equal(ekt_join(j, NULL), EK_OK);
    /* Idle, not gone: a thread that exited at once would be gone by now. */
    assert_int_equal(ekt_metric_wait(rt, EK_METRIC_BLOCKING_IDLE, 1), 1);
    usleep(100000);
    assert_int_equal(ekt_metric(rt, EK_METRIC_BLOCKING_THREADS), 1);
    assert_int_equal(ekt_metric(rt, EK_METRIC_BLOCKING_IDLE), 1);
    ekt_rt_free_checked(rt);
}

/* ---- out_drop ---- */

static void test_out_drop_releases_a_detached_jobs_result_exactly_once(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = blocking_rt(flavors[fl], 0, 0);
        ekt_reset_drops();

        /* No join handle at all. */
        job a = {.rc = EK_OK, .out = (void *)0x131};
        assert_int_equal(
            ek_spawn_blocking(rt, job_fn, ekt_count_drop, &a, ekt_count_out_drop, NULL), EK_OK);
        assert_int_equal(ekt_metric_wait(rt, EK_METRIC_TASKS_ALIVE, 0), 0);
        assert_int_equal(atomic_load(&ekt_out_drops), 1);
        assert_int_equal(atomic_load(&ekt_last_out_drop), 0x131);

        /* Detached after it finished, unread: released at detach. */
        job b = {.rc = EK_OK, .out = (void *)0x132};
        ek_join *j = NULL;
        assert_int_equal(ek_spawn_blocking(rt, job_fn, ekt_count_drop, &b, ekt_count_out_drop, &j),
                         EK_OK);
        while (ek_join_is_finished(j) == 0) usleep(500);
        assert_int_equal(atomic_load(&ekt_out_drops), 1);
        ek_join_detach(j);
        assert_int_equal(atomic_load(&ekt_out_drops), 2);
        assert_int_equal(atomic_load(&ekt_last_out_drop), 0x132);

        /* Detached before it finished: released at completion. */
        gate g;
        gate_init(&g);
        job c = {.g = &g, .rc = EK_OK, .out = (void *)0x133};
        assert_int_equal(ek_spawn_blocking(rt, job_fn, ekt_count_drop, &c, ekt_count_out_drop, &j),
                         EK_OK);
        assert_int_equal(gate_wait_entered(&g, 1), 1);
        ek_join_detach(j);
        gate_open(&g);
        assert_int_equal(ekt_metric_wait(rt, EK_METRIC_TASKS_ALIVE, 0), 0);
        assert_int_equal(atomic_load(&ekt_out_drops), 3);
        assert_int_equal(atomic_load(&ekt_last_out_drop), 0x133);

        /* A failed job has no result to release; a taken result is the
         * caller's. */
        job d = {.rc = EK_EIO, .out = (void *)0x134};
        assert_int_equal(
            ek_spawn_blocking(rt, job_fn, ekt_count_drop, &d, ekt_count_out_drop, NULL), EK_OK);
        job e = {.rc = EK_OK, .out = (void *)0x135};
        assert_int_equal(ek_spawn_blocking(rt, job_fn, ekt_count_drop, &e, ekt_count_out_drop, &j),
                         EK_OK);
        void *out = NULL;
        assert_int_equal(ek_join_wait(j, &out), EK_OK);
        assert_ptr_equal(out, (void *)0x135);
        ek_join_detach(j);
        assert_int_equal(ekt_metric_wait(rt, EK_METRIC_TASKS_ALIVE, 0), 0);
        assert_int_equal(atomic_load(&ekt_out_drops), 3);
        assert_int_equal(atomic_load(&ekt_drops), 5);
        gate_destroy(&g);
        ekt_rt_free_checked(rt);
    }
}

/* ---- many jobs ---- */

static atomic_int running_now, running_max, many_done;

static int many_fn(void *arg, void **out)
{
    int r = atomic_fetch_add(&running_now, 1) + 1;
    int m = atomic_load(&running_max);
    while (r > m && !atomic_compare_exchange_weak(&running_max, &m, r)) {
    }
    if (((uintptr_t)arg & 7) == 0) usleep(200);
    atomic_fetch_sub(&running_now, 1);
    atomic_fetch_add(&many_done, 1);
    *out = arg;
    return EK_OK;
}

static void test_many_jobs_all_complete_and_never_exceed_the_cap(void **state)
{
    (void)state;
    ek_runtime *rt = blocking_rt(EK_FLAVOR_MULTI_THREAD, 4, 20);
    ekt_reset_drops();
    atomic_store(&running_now, 0);
    atomic_store(&running_max, 0);
    atomic_store(&many_done, 0);
    long n = ekt_scale(4000);
    for (long i = 1; i <= n; i++)
        assert_int_equal(ek_spawn_blocking(rt, many_fn, ekt_count_drop, (void *)(uintptr_t)i,
                                           ekt_count_out_drop, NULL),
                         EK_OK);
    for (int i = 0; i < 10000 && atomic_load(&many_done) < n; i++) usleep(1000);
    assert_int_equal(atomic_load(&many_done), n);
    assert_true(atomic_load(&running_max) <= 4);
    assert_true(atomic_load(&running_max) >= 1);
    assert_int_equal(ekt_metric_wait(rt, EK_METRIC_TASKS_ALIVE, 0), 0);
    assert_int_equal(atomic_load(&ekt_drops), n);
    assert_int_equal(atomic_load(&ekt_out_drops), n);
    assert_true(ekt_metric(rt, EK_METRIC_BLOCKING_THREADS) <= 4);
    assert_int_equal(ekt_metric(rt, EK_METRIC_TASKS_SPAWNED), (uint64_t)n);
    ekt_rt_free_checked(rt);
}

#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_blocking_result_and_error_through_join_wait),
        T(test_blocking_result_through_join_poll_in_a_task),
        T(test_pool_grows_to_the_cap_and_queues_the_rest),
        T(test_idle_thread_is_reused_and_kept_within_keep_alive),
        T(test_idle_threads_exit_after_the_keep_alive),
        T(test_abort_before_start_cancels_the_job_and_drops_its_arg_once),
        T(test_abort_of_a_running_job_does_not_interrupt_it),
        T(test_shutdown_timeout_with_running_job_then_free_waits_for_it),
        T(test_shutdown_without_limit_waits_for_running_jobs),
        T(test_join_wait_after_shutdown_timeout_gives_the_real_result),
        T(test_shutdown_with_a_huge_timeout_waits_for_the_job),
        T(test_the_largest_keep_alive_keeps_the_thread),
        T(test_out_drop_releases_a_detached_jobs_result_exactly_once),
        T(test_many_jobs_all_complete_and_never_exceed_the_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
