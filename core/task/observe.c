/*
 * observe.c - the task harness's slow path when its runtime observes tasks
 * (ekiden/observe.h): the task hooks and slow-poll detection. The harness
 * (task.c) comes here only when t->sched->obs is set, so a runtime without
 * hooks never reads a clock or calls out.
 *
 * Every hook runs on the thread that does what it reports, with no lock of
 * the runtime held; the task is alive during the call (its poll, its finish,
 * or the spawn that still holds it), so its name (kept in the task's own
 * allocation) may be handed out as is.
 *
 * Pend sites (task.h). The core's own are a fixed table; a host's are
 * interned by ek_task_set_pend_site into a process-wide table of at most
 * HOST_SITES names that only grows (a task stores one byte,
 * never a pointer to the caller's memory, so the task stays 112 bytes and the
 * dump never reads a string the host may have freed). Readers scan it without
 * a lock: an entry is written whole before the count that publishes it
 * (release), and never changes after.
 */
#include "task.h"

#include <string.h>

static const char *const core_sites[EK__SITE_CORE_COUNT] = {
    [EK__SITE_SLEEP] = "sleep",
    [EK__SITE_TIMEOUT] = "timeout",
    [EK__SITE_INTERVAL] = "interval tick",
    [EK__SITE_READ] = "read",
    [EK__SITE_WRITE] = "write",
    [EK__SITE_RECV] = "recv",
    [EK__SITE_SEND] = "send",
    [EK__SITE_ACCEPT] = "accept",
    [EK__SITE_CONNECT] = "connect",
    [EK__SITE_MUTEX] = "mutex lock",
    [EK__SITE_SEMAPHORE] = "semaphore acquire",
    [EK__SITE_NOTIFY] = "notified",
    [EK__SITE_ONESHOT] = "oneshot",
    [EK__SITE_MPSC_RECV] = "mpsc recv",
    [EK__SITE_MPSC_SEND] = "mpsc send",
    [EK__SITE_BROADCAST] = "broadcast recv",
    [EK__SITE_WATCH] = "watch changed",
    [EK__SITE_JOIN] = "join",
    [EK__SITE_SELECT] = "select",
    [EK__SITE_JOIN_ALL] = "join all",
    [EK__SITE_GROUP] = "group wait",
};

#define HOST_SITES 200u /* ekiden/observe.h promises this many */
_Static_assert(EK__SITE_CORE_COUNT + HOST_SITES <= 256, "a site is one byte");

static struct {
    ek__mutex lock; /* writers only */
    _Atomic unsigned count;
    char name[HOST_SITES][EK_TASK_NAME_MAX + 1];
} host_sites = {.lock = PTHREAD_MUTEX_INITIALIZER};

const char *ek__site_name(uint8_t site)
{
    if (site < EK__SITE_CORE_COUNT) return core_sites[site];
    unsigned i = site - EK__SITE_CORE_COUNT;
    return i < atomic_load_explicit(&host_sites.count, memory_order_acquire) ? host_sites.name[i]
                                                                             : NULL;
}

/* The interned site of `name` (its first EK_TASK_NAME_MAX bytes) among the
 * first n host names, or 0. */
static uint8_t find_host_site(const char *name, size_t len, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (strncmp(host_sites.name[i], name, len) == 0 && host_sites.name[i][len] == '\0')
            return (uint8_t)(EK__SITE_CORE_COUNT + i);
    return 0;
}

int ek_task_set_pend_site(ek_cx *cx, const char *site)
{
    if (cx == NULL) return EK_EINVAL;
    if (site == NULL || site[0] == '\0') {
        cx->site = EK__SITE_NONE;
        return EK_OK;
    }
    size_t len = strnlen(site, EK_TASK_NAME_MAX);
    unsigned n = atomic_load_explicit(&host_sites.count, memory_order_acquire);
    uint8_t id = find_host_site(site, len, n);
    if (id == 0) {
        ek__mutex_lock(&host_sites.lock);
        n = atomic_load_explicit(&host_sites.count, memory_order_relaxed);
        id = find_host_site(site, len, n);
        if (id == 0 && n < HOST_SITES) {
            memcpy(host_sites.name[n], site, len);
            host_sites.name[n][len] = '\0';
            atomic_store_explicit(&host_sites.count, n + 1, memory_order_release);
            id = (uint8_t)(EK__SITE_CORE_COUNT + n);
        }
        ek__mutex_unlock(&host_sites.lock);
        if (id == 0) return EK_ENOMEM;
    }
    cx->site = id;
    return EK_OK;
}

void ek__observe_event(ek__observer *obs, ek__task *t, int which)
{
    ek_task_hook_fn fn = obs->hook[which].fn;
    if (fn) fn(obs->hook[which].data, t->id, ek__task_name(t));
}

int ek__observe_poll(ek__observer *obs, ek__task *t, ek_cx *cx, void **out)
{
    ek__observe_event(obs, t, EK__TASK_HOOK_BEFORE_POLL);
    uint64_t start = obs->slow_poll_ns ? ek__mono_ns() : 0;
    int rc = t->poll(t->fstate, cx, out);
    if (obs->slow_poll_ns) {
        uint64_t took = ek__mono_ns() - start;
        if (took > obs->slow_poll_ns) {
            atomic_fetch_add_explicit(&obs->slow_polls, 1, memory_order_relaxed);
            if (obs->slow_fn) obs->slow_fn(obs->slow_data, t->id, ek__task_name(t), took);
        }
    }
    ek__observe_event(obs, t, EK__TASK_HOOK_AFTER_POLL);
    return rc;
}
