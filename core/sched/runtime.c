/*
 * runtime.c - builder, runtime creation, shutdown, references, metrics, and
 * what the runtime offers the other core modules (rt.h).
 *
 * Shutdown order: close (spawns now fail), stop the workers (each drops the
 * local tasks pinned to it, on its own thread, before it exits), wait for the
 * threads inside ek_block_on / ek_join_wait to leave (each drops its own local
 * tasks as it goes), drop the calling thread's own local tasks, cancel every
 * other task (idle ones are dropped on this thread), drop the notifications
 * still queued, stop the blocking pool. Local tasks of other threads are handed
 * back: their owner drops them (runtime.h, ek__local).
 *
 * Memory: the driver, the clock and the queues go with the last reference
 * (rt.h), not at ek_runtime_free, so that sockets, timers and join handles may
 * be freed in any order; they see EK_ECLOSED meanwhile.
 */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* --------------------------------------------------------------- builder -- */

static void config_defaults(ek__config *c)
{
    memset(c, 0, sizeof *c);
    c->flavor = EK_FLAVOR_MULTI_THREAD;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c->workers = n > 0 ? (unsigned)n : 1;
    /* As TOKIO_WORKER_THREADS: the deployment can size the default pool. */
    const char *env = getenv("EKIDEN_WORKER_THREADS");
    if (env && *env) {
        char *end;
        unsigned long v = strtoul(env, &end, 10);
        if (*end == '\0' && v >= 1 && v <= 1024) c->workers = (unsigned)v;
    }
    c->max_blocking = 512;
    c->blocking_keep_alive_ms = 10000;
    snprintf(c->thread_name, sizeof c->thread_name, "ekiden");
    c->lifo = true;
    c->global_queue_interval = 61;
    c->event_interval = 61;
    c->budget = 128;
}

int ek_builder_new(ek_builder **out)
{
    if (!out) return EK_EINVAL;
    ek_builder *b = ek__malloc(sizeof *b);
    if (!b) return EK_ENOMEM;
    b->tag = EK__TAG_BUILDER;
    config_defaults(&b->cfg);
    b->cfg.global_queue_interval = 0; /* 0: flavour default, fixed at build time */
    *out = b;
    return EK_OK;
}

void ek_builder_free(ek_builder *b)
{
    if (!EK__CHECK_TAG(b, EK__TAG_BUILDER)) return;
    b->tag = EK__TAG_DEAD;
    ek__free(b);
}

#define BUILDER_CHECK(b)                                                                           \
    do {                                                                                           \
        if (!EK__CHECK_TAG(b, EK__TAG_BUILDER)) return EK_EINVAL;                                  \
    } while (0)

int ek_builder_set_flavor(ek_builder *b, int flavor)
{
    BUILDER_CHECK(b);
    if (flavor != EK_FLAVOR_MULTI_THREAD && flavor != EK_FLAVOR_CURRENT_THREAD) return EK_EINVAL;
    b->cfg.flavor = flavor;
    return EK_OK;
}

int ek_builder_set_io_backend(ek_builder *b, int backend)
{
    BUILDER_CHECK(b);
    if (backend != EK_IO_BACKEND_DEFAULT && backend != EK_IO_BACKEND_EPOLL &&
        backend != EK_IO_BACKEND_URING)
        return EK_EINVAL;
    b->cfg.io_backend = backend;
    return EK_OK;
}

int ek_builder_set_worker_threads(ek_builder *b, unsigned n)
{
    BUILDER_CHECK(b);
    if (n < 1 || n > 1024) return EK_EINVAL;
    b->cfg.workers = n;
    return EK_OK;
}

int ek_builder_set_max_blocking_threads(ek_builder *b, unsigned n)
{
    BUILDER_CHECK(b);
    if (n < 1 || n > 65536) return EK_EINVAL;
    b->cfg.max_blocking = n;
    return EK_OK;
}

int ek_builder_set_blocking_keep_alive_ms(ek_builder *b, uint64_t ms)
{
    BUILDER_CHECK(b);
    if (ms > UINT64_MAX / 1000000u) return EK_EINVAL;
    b->cfg.blocking_keep_alive_ms = ms;
    return EK_OK;
}

int ek_builder_set_thread_name(ek_builder *b, const char *name)
{
    BUILDER_CHECK(b);
    if (!name) return EK_EINVAL;
    snprintf(b->cfg.thread_name, sizeof b->cfg.thread_name, "%s", name);
    return EK_OK;
}

int ek_builder_set_lifo_slot(ek_builder *b, int enabled)
{
    BUILDER_CHECK(b);
    if (enabled != 0 && enabled != 1) return EK_EINVAL;
    b->cfg.lifo = enabled == 1;
    return EK_OK;
}

/* The tag is checked before any member of b is touched: computing &b->cfg.x of
 * a wrong-type (possibly misaligned) handle is already undefined behaviour. */
enum { TICKS_GLOBAL_QUEUE, TICKS_EVENT, TICKS_BUDGET };

static int set_ticks(ek_builder *b, int which, unsigned v)
{
    BUILDER_CHECK(b);
    if (v < 1 || v > 1000000) return EK_EINVAL;
    switch (which) {
    case TICKS_GLOBAL_QUEUE:
        b->cfg.global_queue_interval = v;
        b->cfg.global_interval_fixed = true;
        break;
    case TICKS_EVENT:
        b->cfg.event_interval = v;
        break;
    default:
        b->cfg.budget = v;
        break;
    }
    return EK_OK;
}

int ek_builder_set_global_queue_interval(ek_builder *b, unsigned ticks)
{
    return set_ticks(b, TICKS_GLOBAL_QUEUE, ticks);
}
int ek_builder_set_event_interval(ek_builder *b, unsigned ticks)
{
    return set_ticks(b, TICKS_EVENT, ticks);
}
int ek_builder_set_budget(ek_builder *b, unsigned ops)
{
    return set_ticks(b, TICKS_BUDGET, ops);
}

static int set_hook(ek_builder *b, int which, ek_thread_hook_fn fn, void *data)
{
    BUILDER_CHECK(b);
    b->cfg.hooks[which] = (ek__hook){.fn = fn, .data = fn ? data : NULL};
    return EK_OK;
}

int ek_builder_on_thread_start(ek_builder *b, ek_thread_hook_fn fn, void *data)
{
    return set_hook(b, EK__HOOK_START, fn, data);
}
int ek_builder_on_thread_stop(ek_builder *b, ek_thread_hook_fn fn, void *data)
{
    return set_hook(b, EK__HOOK_STOP, fn, data);
}
int ek_builder_on_thread_park(ek_builder *b, ek_thread_hook_fn fn, void *data)
{
    return set_hook(b, EK__HOOK_PARK, fn, data);
}
int ek_builder_on_thread_unpark(ek_builder *b, ek_thread_hook_fn fn, void *data)
{
    return set_hook(b, EK__HOOK_UNPARK, fn, data);
}

int ek_builder_set_start_paused(ek_builder *b, int paused)
{
    BUILDER_CHECK(b);
    if (paused != 0 && paused != 1) return EK_EINVAL;
    b->cfg.start_paused = paused == 1;
    return EK_OK;
}

/* --------------------------------------------------------------- runtime -- */

static int rt_init_locks(ek_runtime *rt)
{
    int rc = ek__mutex_init(&rt->shutdown_lock);
    if (rc) return rc;
    ek__lock_init(&rt->locals_lock);
    rc = ek__mutex_init(&rt->bo_lock);
    if (!rc) {
        rc = ek__cond_init(&rt->bo_cond);
        if (!rc) {
            ek__owned_init(&rt->owned);
            rc = ek__inject_init(&rt->inject);
            if (!rc) return EK_OK;
            ek__cond_destroy(&rt->bo_cond);
        }
        ek__mutex_destroy(&rt->bo_lock);
    }
    ek__mutex_destroy(&rt->shutdown_lock);
    return rc;
}

/* The handle's unpark (rt.h): the driver is made after the time source, which
 * may ask for it first. */
static void rt_unpark_driver(void *arg)
{
    ek_runtime *rt = arg;
    if (rt->h.driver) ek__driver_unpark(rt->h.driver);
}

/* The last reference went: every thread has ended and no task, resource or
 * local task is left. */
static void rt_release(ek__rt_handle *h)
{
    ek_runtime *rt = EK__CONTAINER_OF(h, ek_runtime, h);
    ek__mt_destroy(rt);
    if (rt->h.driver) ek__driver_free(rt->h.driver);
    if (rt->h.time) ek__time_free(rt->h.time);
    ek__local_free_all(rt);
    ek__blocking_destroy(rt);
    ek__ct_destroy(rt);
    ek__inject_destroy(&rt->inject);
    ek__mutex_destroy(&rt->shutdown_lock);
    ek__mutex_destroy(&rt->bo_lock);
    ek__cond_destroy(&rt->bo_cond);
    /* Last: every cell went before the reference it held (cells.c). */
    ek__slab_destroy(rt->h.slab);
    rt->h.tag = EK__TAG_DEAD;
    ek__free(rt);
}

bool ek__rt_unref_unless_last(ek_runtime *rt)
{
    uint64_t cur = atomic_load_explicit(&rt->h.refs, memory_order_relaxed);
    while (cur > EK__RT_REF_HANDLE) {
        if (atomic_compare_exchange_weak_explicit(&rt->h.refs, &cur, cur - EK__RT_REF_HANDLE,
                                                  memory_order_acq_rel, memory_order_relaxed))
            return true;
    }
    return false;
}

int ek__rt_bind(ek__sched *s, ek__task *t)
{
    return ek__owned_insert(&s->rt->owned, t);
}

bool ek__rt_release(ek__sched *s, ek__task *t)
{
    return ek__owned_remove(&s->rt->owned, t);
}

static void rt_stop_and_drain(ek_runtime *rt)
{
    atomic_store_explicit(&rt->h.closed, true, memory_order_release);
    ek__owned_close(&rt->owned);
    if (rt->h.driver) ek__driver_close(rt->h.driver);
    ek__mt_stop(rt);
    /* Wake threads inside ek_block_on so they see the runtime closed. */
    ek__lock_acquire(&rt->locals_lock);
    for (ek__list *n = rt->locals.next; n != &rt->locals; n = n->next) {
        ek__local *l = EK__CONTAINER_OF(n, ek__local, link);
        ek__lock_acquire(&l->lock);
        ek__parker *p = atomic_load_explicit(&l->parker, memory_order_relaxed);
        if (p) ek__parker_unpark(p);
        ek__lock_release(&l->lock);
    }
    ek__lock_release(&rt->locals_lock);
    /* From here on no ek_block_on enters, and each that leaves does so under
     * bo_lock, so that the wait below sees it (block_on.c: bo_enter, bo_leave). */
    ek__mutex_lock(&rt->bo_lock);
    atomic_fetch_or_explicit(&rt->bo_active, EK__BO_WAITING, memory_order_acq_rel);
    while (atomic_load_explicit(&rt->bo_active, memory_order_acquire) != EK__BO_WAITING)
        ek__cond_wait(&rt->bo_cond, &rt->bo_lock);
    ek__mutex_unlock(&rt->bo_lock);
    /* Our own local tasks are ours to drop; other threads' are handed back. */
    ek__local_shutdown_if_closed(rt);
    ek__owned_shutdown_all(&rt->owned);
    ek__mt_drain(rt);
    ek__ct_drain(rt);
    /* Whatever is queued, and every later push (a spawn that raced this
     * shutdown submitting its task), is released there. */
    ek__inject_close(&rt->inject);
}

int ek_runtime_new(const ek_builder *b, ek_runtime **out)
{
    if (!out) return EK_EINVAL;
    if (b && !EK__CHECK_TAG(b, EK__TAG_BUILDER)) return EK_EINVAL;
    ek__config cfg;
    if (b)
        cfg = b->cfg;
    else {
        config_defaults(&cfg);
        cfg.global_queue_interval = 0;
    }
    if (cfg.global_queue_interval == 0)
        cfg.global_queue_interval = cfg.flavor == EK_FLAVOR_CURRENT_THREAD ? 31 : 61;
    if (cfg.start_paused && cfg.flavor != EK_FLAVOR_CURRENT_THREAD) return EK_ENOTSUP;

    ek_runtime *rt = ek__calloc(1, sizeof *rt);
    if (!rt) return EK_ENOMEM;
    rt->h.tag = EK__TAG_RUNTIME;
    rt->cfg = cfg;
    atomic_init(&rt->h.refs, EK__RT_REF_HANDLE); /* the owner's */
    rt->h.release = rt_release;
    rt->h.unpark = rt_unpark_driver;
    rt->h.unpark_arg = rt;
    rt->nworkers = cfg.flavor == EK_FLAVOR_CURRENT_THREAD ? 1 : cfg.workers;
    rt->sched.rt = rt;
    rt->sched.schedule = cfg.flavor == EK_FLAVOR_CURRENT_THREAD ? ek__ct_schedule : ek__mt_schedule;
    rt->sched.bind = ek__rt_bind;
    rt->sched.release = ek__rt_release;
    atomic_init(&rt->cfg.obs.slow_polls, 0);
    rt->sched.obs = ek__rt_observer(rt);
    ek__list_init(&rt->locals);
    ek__list_init(&rt->orphans);
    int rc = rt_init_locks(rt);
    if (rc) {
        ek__free(rt);
        return rc;
    }
    rc = ek__rt_cells_init(rt);
    if (!rc) rc = ek__ct_init(rt);
    if (!rc) rc = ek__blocking_init(rt);
    rt->blocking.sched.obs = rt->sched.obs;
    if (!rc) rc = ek__time_new(rt, cfg.start_paused, &rt->h.time);
    if (!rc) rc = ek__driver_new(rt->h.time, cfg.io_backend, &rt->h.driver);
    if (!rc && cfg.flavor == EK_FLAVOR_MULTI_THREAD) rc = ek__mt_start(rt);
    if (rc) {
        rt_stop_and_drain(rt);
        ek__blocking_shutdown(rt, UINT64_MAX);
        rt->shut_down = true;
        atomic_store_explicit(&rt->owner_gone, true, memory_order_relaxed);
        ek__rt_unref(rt);
        return rc;
    }
    *out = rt;
    return EK_OK;
}

int ek_runtime_shutdown(ek_runtime *rt, uint64_t timeout_ms)
{
    if (!EK__CHECK_TAG(rt, EK__TAG_RUNTIME)) return EK_EINVAL;
    if (ek__cur.rt == rt) return EK_EDEADLK;
    ek__mutex_lock(&rt->shutdown_lock);
    int rc = EK_OK;
    if (!rt->shut_down) {
        rt_stop_and_drain(rt);
        rt->shut_down = true;
        rc = ek__blocking_shutdown(rt, timeout_ms);
    } else {
        rc = ek__blocking_shutdown(rt, timeout_ms);
    }
    ek__mutex_unlock(&rt->shutdown_lock);
    return rc;
}

void ek_runtime_free(ek_runtime *rt)
{
    if (!EK__CHECK_TAG(rt, EK__TAG_RUNTIME)) return;
    if (ek__cur.rt == rt) return;
    /* Once: a second free of a runtime kept alive by its resources must not
     * drop a reference that is not the owner's. */
    if (atomic_exchange_explicit(&rt->owner_gone, true, memory_order_acq_rel)) return;
    ek_runtime_shutdown(rt, UINT64_MAX);
    /* The user's data goes with the owner's handle, here, on the owner's
     * thread: the runtime's threads have ended (resources outliving it never
     * call back into the binding). */
    ek__mutex_lock(&rt->shutdown_lock);
    void *data = atomic_exchange_explicit(&rt->data, NULL, memory_order_acq_rel);
    ek_drop_fn drop = rt->data_drop;
    rt->data_drop = NULL;
    ek__mutex_unlock(&rt->shutdown_lock);
    if (drop && data) drop(data);
    ek__rt_unref(rt);
}

int ek_runtime_set_data(ek_runtime *rt, void *data, ek_drop_fn drop)
{
    if (!EK__CHECK_TAG(rt, EK__TAG_RUNTIME)) return EK_EINVAL;
    ek__mutex_lock(&rt->shutdown_lock);
    /* release: a thread that loads the pointer sees what it points at. */
    void *old = atomic_exchange_explicit(&rt->data, data, memory_order_acq_rel);
    ek_drop_fn old_drop = rt->data_drop;
    rt->data_drop = drop;
    ek__mutex_unlock(&rt->shutdown_lock);
    if (old_drop && old) old_drop(old);
    return EK_OK;
}

void *ek_runtime_data(ek_runtime *rt)
{
    if (!EK__CHECK_TAG(rt, EK__TAG_RUNTIME)) return NULL;
    return atomic_load_explicit(&rt->data, memory_order_acquire);
}

ek_runtime *ek_runtime_current(void)
{
    return ek__cur.rt;
}

int ek_runtime_worker_count(ek_runtime *rt)
{
    if (!EK__CHECK_TAG(rt, EK__TAG_RUNTIME)) return EK_EINVAL;
    return (int)rt->nworkers;
}

int ek_runtime_io_backend(ek_runtime *rt)
{
    if (!EK__CHECK_TAG(rt, EK__TAG_RUNTIME)) return EK_EINVAL;
    return ek__backend_kind(rt->h.driver->be);
}

void ek__rt_inhibit_auto_advance(ek_runtime *rt, int delta)
{
    if (rt->h.time) ek__time_inhibit(rt->h.time, delta);
}

/* ------------------------------------------------------------ test clock -- */

static int clock_check(ek_runtime *rt)
{
    if (!EK__CHECK_TAG(rt, EK__TAG_RUNTIME)) return EK_EINVAL;
    if (rt->cfg.flavor != EK_FLAVOR_CURRENT_THREAD) return EK_ENOTSUP;
    return EK_OK;
}

int ek_runtime_clock_pause(ek_runtime *rt)
{
    int rc = clock_check(rt);
    return rc ? rc : ek__time_pause(rt->h.time);
}
int ek_runtime_clock_resume(ek_runtime *rt)
{
    int rc = clock_check(rt);
    return rc ? rc : ek__time_resume(rt->h.time);
}
int ek_runtime_clock_advance(ek_runtime *rt, uint64_t ms)
{
    int rc = clock_check(rt);
    if (rc) return rc;
    rc = ek__time_advance(rt->h.time, ms);
    ek__rt_unpark_driver(rt);
    return rc;
}
uint64_t ek_now_ms(ek_runtime *rt)
{
    /* Never a time: the clock saturates at EK__TIME_MAX_MS. */
    if (!EK__CHECK_TAG(rt, EK__TAG_RUNTIME)) return UINT64_MAX;
    return ek__time_now(rt->h.time);
}

/* --------------------------------------------------------------- metrics -- */

__attribute__((tls_model("initial-exec"))) _Thread_local ek__ref_cache *ek__refs_mine;

static uint64_t cached_tasks(const ek__local *l)
{
    return atomic_load_explicit(&l->refs.held, memory_order_relaxed) & (EK__RT_REF_HANDLE - 1);
}

/* The task references on rt less those the threads' caches hold (rt.h): exact
 * when nothing moves, a snapshot of each count otherwise. */
static uint64_t tasks_alive(ek_runtime *rt)
{
    uint64_t cached = 0;
    for (unsigned i = 0; rt->workers && i < rt->nworkers; i++)
        if (rt->workers[i].inited) cached += cached_tasks(&rt->workers[i].local);
    ek__lock_acquire(&rt->locals_lock);
    for (ek__list *n = rt->locals.next; n != &rt->locals; n = n->next)
        cached += cached_tasks(EK__CONTAINER_OF(n, ek__local, link));
    ek__lock_release(&rt->locals_lock);
    uint64_t all =
        atomic_load_explicit(&rt->h.refs, memory_order_relaxed) & (EK__RT_REF_HANDLE - 1);
    return all > cached ? all - cached : 0;
}

int ek_runtime_metrics(ek_runtime *rt, uint64_t *values, size_t n)
{
    if (!EK__CHECK_TAG(rt, EK__TAG_RUNTIME) || (!values && n)) return EK_EINVAL;
    uint64_t v[EK_METRIC_COUNT] = {0};
    v[EK_METRIC_WORKERS] = rt->nworkers;
    v[EK_METRIC_TASKS_ALIVE] = tasks_alive(rt);
    /* Refused first: tasks_spawned counts a refused spawn before it is refused,
     * so the difference read in this order never underflows. */
    uint64_t refused = atomic_load_explicit(&rt->spawns_refused, memory_order_relaxed);
    v[EK_METRIC_TASKS_SPAWNED] =
        atomic_load_explicit(&rt->tasks_spawned, memory_order_relaxed) - refused;
    v[EK_METRIC_SLOW_POLLS] = atomic_load_explicit(&rt->cfg.obs.slow_polls, memory_order_relaxed);
    v[EK_METRIC_POLLS] = atomic_load_explicit(&rt->polls_external, memory_order_relaxed);
    for (unsigned i = 0; rt->workers && i < rt->nworkers; i++) {
        ek__worker *w = &rt->workers[i];
        v[EK_METRIC_POLLS] += atomic_load_explicit(&w->polls, memory_order_relaxed);
        v[EK_METRIC_STEALS] += atomic_load_explicit(&w->steals, memory_order_relaxed);
        v[EK_METRIC_STEAL_OPS] += atomic_load_explicit(&w->steal_ops, memory_order_relaxed);
        v[EK_METRIC_PARKS] += atomic_load_explicit(&w->parks, memory_order_relaxed);
        v[EK_METRIC_OVERFLOWS] += atomic_load_explicit(&w->overflows, memory_order_relaxed);
        v[EK_METRIC_LOCAL_QUEUE_DEPTH] += ek__queue_len(&w->q);
    }
    v[EK_METRIC_UNPARKS] = atomic_load_explicit(&rt->unparks, memory_order_relaxed);
    v[EK_METRIC_GLOBAL_QUEUE_DEPTH] = ek__inject_len(&rt->inject);
    v[EK_METRIC_IO_EVENTS] =
        rt->h.driver ? atomic_load_explicit(&rt->h.driver->io_events, memory_order_relaxed) : 0;
    v[EK_METRIC_TIMERS] = rt->h.time ? ek__time_count(rt->h.time) : 0;
    ek__mutex_lock(&rt->blocking.lock);
    v[EK_METRIC_BLOCKING_THREADS] = rt->blocking.threads;
    v[EK_METRIC_BLOCKING_IDLE] = rt->blocking.idle;
    v[EK_METRIC_BLOCKING_QUEUE_DEPTH] = rt->blocking.queued;
    ek__mutex_unlock(&rt->blocking.lock);
    for (size_t i = 0; i < n && i < EK_METRIC_COUNT; i++) values[i] = v[i];
    return EK_METRIC_COUNT;
}

int64_t ek_runtime_worker_queue_depth(ek_runtime *rt, unsigned worker)
{
    if (!EK__CHECK_TAG(rt, EK__TAG_RUNTIME) || worker >= rt->nworkers) return EK_EINVAL;
    if (!rt->workers) return (int64_t)atomic_load_explicit(&rt->core.len, memory_order_relaxed);
    return ek__queue_len(&rt->workers[worker].q);
}
