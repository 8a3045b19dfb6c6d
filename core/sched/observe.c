/*
 * observe.c - the scheduler's side of ekiden/observe.h: the builder's task
 * hooks and slow-poll threshold, and ek_runtime_dump. The hooks themselves run
 * in the task harness (task/observe.c) and in spawn.c.
 *
 * The dump reads every task list under that list's own lock (the owned
 * shards, each local set's owned list, rt->locals under locals_lock, in that
 * order of nesting), so a task it prints cannot be freed meanwhile: a listed
 * task holds the list's reference. Its id, name and flags are written before
 * it is listed and never after; its state word is read atomically.
 */
#include "runtime.h"

#include <stdarg.h>
#include <stdio.h>

/* ------------------------------------------------------- builder setters -- */

static int set_task_hook(ek_builder *b, int which, ek_task_hook_fn fn, void *data)
{
    if (!EK__CHECK_TAG(b, EK__TAG_BUILDER)) return EK_EINVAL;
    b->cfg.obs.hook[which].fn = fn;
    b->cfg.obs.hook[which].data = fn ? data : NULL;
    return EK_OK;
}

int ek_builder_on_task_spawn(ek_builder *b, ek_task_hook_fn fn, void *data)
{
    return set_task_hook(b, EK__TASK_HOOK_SPAWN, fn, data);
}
int ek_builder_on_task_terminate(ek_builder *b, ek_task_hook_fn fn, void *data)
{
    return set_task_hook(b, EK__TASK_HOOK_TERMINATE, fn, data);
}
int ek_builder_on_before_task_poll(ek_builder *b, ek_task_hook_fn fn, void *data)
{
    return set_task_hook(b, EK__TASK_HOOK_BEFORE_POLL, fn, data);
}
int ek_builder_on_after_task_poll(ek_builder *b, ek_task_hook_fn fn, void *data)
{
    return set_task_hook(b, EK__TASK_HOOK_AFTER_POLL, fn, data);
}

int ek_builder_set_slow_poll(ek_builder *b, uint64_t threshold_us, ek_slow_poll_fn fn, void *data)
{
    if (!EK__CHECK_TAG(b, EK__TAG_BUILDER)) return EK_EINVAL;
    if (threshold_us > UINT64_MAX / 1000u) return EK_EINVAL;
    b->cfg.obs.slow_poll_ns = threshold_us * 1000u;
    b->cfg.obs.slow_fn = fn;
    b->cfg.obs.slow_data = fn ? data : NULL;
    return EK_OK;
}

ek__observer *ek__rt_observer(ek_runtime *rt)
{
    const ek__observer *o = &rt->cfg.obs;
    bool any = o->slow_poll_ns != 0;
    for (int i = 0; i < EK__TASK_HOOK_COUNT; i++) any = any || o->hook[i].fn != NULL;
    return any ? &rt->cfg.obs : NULL;
}

/* ------------------------------------------------------------------ dump -- */

/* snprintf into the caller's buffer, counting what did not fit. */
typedef struct dump_out {
    char *buf;
    size_t cap, len;
} dump_out;

static void put(dump_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(dump_out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *at = o->len < o->cap ? o->buf + o->len : NULL;
    size_t room = o->len < o->cap ? o->cap - o->len : 0;
    int n = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (n > 0) o->len += (size_t)n;
}

/* A task name in quotes, escaped so that one task is one line. */
static void put_name(dump_out *o, const char *name)
{
    if (!name) {
        put(o, "-");
        return;
    }
    put(o, "\"");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p == '"' || *p == '\\')
            put(o, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            put(o, "\\x%02x", *p);
        else
            put(o, "%c", *p);
    }
    put(o, "\"");
}

static const char *state_name(uint64_t st)
{
    if (st & EK__ST_COMPLETE) return "complete";
    if (st & EK__ST_RUNNING) return "running";
    if (st & EK__ST_NOTIFIED) return "scheduled";
    return "idle";
}

static void put_task(dump_out *o, ek__task *t)
{
    uint64_t st = atomic_load_explicit(&t->state, memory_order_relaxed);
    const char *kind = (t->flags & EK__TASK_LOCAL)      ? "local task"
                       : (t->flags & EK__TASK_BLOCKING) ? "blocking task"
                                                        : "task";
    put(o, "%s %llu ", kind, (unsigned long long)t->id);
    put_name(o, ek__task_name(t));
    put(o, " %s%s", state_name(st), (st & EK__ST_CANCELLED) ? " cancelled" : "");
    uint8_t site = atomic_load_explicit(&t->pend_site, memory_order_relaxed);
    const char *where = ek__site_name(site);
    if (where != NULL && site < EK__SITE_CORE_COUNT) {
        put(o, ", pended at %s", where);
    } else if (where != NULL) {
        put(o, ", pended at ");
        put_name(o, where);
    }
    put(o, "\n");
}

static void put_list(dump_out *o, ek__list *head)
{
    for (ek__list *n = head->next; n != head; n = n->next)
        put_task(o, EK__CONTAINER_OF(n, ek__task, owned));
}

static void put_local(dump_out *o, ek__local *l)
{
    ek__lock_acquire(&l->lock);
    put_list(o, &l->owned);
    ek__lock_release(&l->lock);
}

static void put_header(dump_out *o, ek_runtime *rt)
{
    uint64_t v[EK_METRIC_COUNT];
    (void)ek_runtime_metrics(rt, v, EK_METRIC_COUNT);
    bool ct = rt->cfg.flavor == EK_FLAVOR_CURRENT_THREAD;
    put(o, "runtime: %s, %u worker%s, %s, io %s\n", ct ? "current_thread" : "multi_thread",
        rt->nworkers, rt->nworkers == 1 ? "" : "s", ek__rt_closed(rt) ? "shut down" : "running",
        ek_runtime_io_backend(rt) == EK_IO_BACKEND_URING ? "uring" : "epoll");
    put(o, "tasks: %llu alive, %llu spawned, %llu polls, %llu slow polls\n",
        (unsigned long long)v[EK_METRIC_TASKS_ALIVE],
        (unsigned long long)v[EK_METRIC_TASKS_SPAWNED], (unsigned long long)v[EK_METRIC_POLLS],
        (unsigned long long)v[EK_METRIC_SLOW_POLLS]);
    put(o, "global queue: %llu\n", (unsigned long long)v[EK_METRIC_GLOBAL_QUEUE_DEPTH]);
    if (ct) {
        put(o, "core queue: %zu\n", atomic_load_explicit(&rt->core.len, memory_order_relaxed));
    } else {
        for (unsigned i = 0; rt->workers && i < rt->nworkers; i++) {
            ek__worker *w = &rt->workers[i];
            put(o, "worker %u: queue %u, polls %llu, steals %llu, parks %llu\n", i,
                ek__queue_len(&w->q),
                (unsigned long long)atomic_load_explicit(&w->polls, memory_order_relaxed),
                (unsigned long long)atomic_load_explicit(&w->steals, memory_order_relaxed),
                (unsigned long long)atomic_load_explicit(&w->parks, memory_order_relaxed));
        }
    }
    put(o, "blocking: %llu threads, %llu idle, %llu queued\n",
        (unsigned long long)v[EK_METRIC_BLOCKING_THREADS],
        (unsigned long long)v[EK_METRIC_BLOCKING_IDLE],
        (unsigned long long)v[EK_METRIC_BLOCKING_QUEUE_DEPTH]);
}

int ek_runtime_dump(ek_runtime *rt, char *buf, size_t cap, size_t *len)
{
    if (!EK__CHECK_TAG(rt, EK__TAG_RUNTIME) || (!buf && cap)) return EK_EINVAL;
    dump_out o = {.buf = buf, .cap = cap, .len = 0};
    if (cap) buf[0] = '\0';
    put_header(&o, rt);
    for (unsigned i = 0; i < EK__OWNED_SHARDS; i++) {
        ek__lock_acquire(&rt->owned.shard[i].lock);
        put_list(&o, &rt->owned.shard[i].list);
        ek__lock_release(&rt->owned.shard[i].lock);
    }
    for (unsigned i = 0; rt->workers && i < rt->nworkers; i++)
        if (rt->workers[i].inited) put_local(&o, &rt->workers[i].local);
    ek__lock_acquire(&rt->locals_lock);
    for (ek__list *n = rt->locals.next; n != &rt->locals; n = n->next)
        put_local(&o, EK__CONTAINER_OF(n, ek__local, link));
    ek__lock_release(&rt->locals_lock);
    if (len) *len = o.len;
    return o.len < cap ? EK_OK : EK_ERANGE;
}
