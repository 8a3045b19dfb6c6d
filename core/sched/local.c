/*
 * local.c - thread-pinned (local) tasks. Each worker has a local context; any
 * other thread gets one per runtime on first ek_spawn_local, kept in rt->locals
 * until the runtime is freed. Only the owner thread polls and drops the tasks,
 * shutdown included (see runtime.h): other threads' wakes go to the remote
 * queue under the lock and unpark the owner's current parker.
 */
#include "fifo.h"
#include "runtime.h"

static void local_schedule(ek__sched *s, ek__task *t, int how)
{
    EK__UNUSED(how);
    ek__local *l = EK__CONTAINER_OF(s, ek__local, sched);
    if (ek__cur.local == l) {
        ek__fifo_push(&l->head, &l->tail, t);
        return;
    }
    ek__mutex_lock(&l->lock);
    ek__fifo_push(&l->rhead, &l->rtail, t);
    atomic_fetch_add_explicit(&l->rlen, 1, memory_order_release);
    /* Under the lock: the parker cannot be released while we use it. */
    ek__parker *p = atomic_load_explicit(&l->parker, memory_order_relaxed);
    if (p) ek__parker_unpark(p);
    ek__mutex_unlock(&l->lock);
}

/* Spawns pin to the calling thread and completions run on it, so only the
 * owner changes the owned list; it does so under the lock, which ek_runtime_dump
 * takes to read the list from any thread. */
static int local_bind(ek__sched *s, ek__task *t)
{
    ek__local *l = EK__CONTAINER_OF(s, ek__local, sched);
    EK__ASSERT(pthread_equal(l->owner, pthread_self()));
    if (l->closed) return EK_ECLOSED;
    ek__mutex_lock(&l->lock);
    ek__list_push_back(&l->owned, &t->owned);
    ek__mutex_unlock(&l->lock);
    return EK_OK;
}

static bool local_release(ek__sched *s, ek__task *t)
{
    ek__local *l = EK__CONTAINER_OF(s, ek__local, sched);
    ek__mutex_lock(&l->lock);
    bool linked = ek__list_linked(&t->owned);
    if (linked) ek__list_remove(&t->owned);
    ek__mutex_unlock(&l->lock);
    return linked;
}

int ek__local_init(ek__local *l, ek_runtime *rt)
{
    memset(l, 0, sizeof *l);
    l->sched.schedule = local_schedule;
    l->sched.bind = local_bind;
    l->sched.release = local_release;
    l->sched.rt = rt;
    l->sched.obs = rt->sched.obs;
    l->owner = pthread_self();
    ek__list_init(&l->owned);
    atomic_init(&l->rlen, 0);
    atomic_init(&l->parker, NULL);
    ek__list_init(&l->link);
    /* Its cells' heap (cells.c); none when the slab is off. */
    if (rt->h.slab) {
        l->heap = ek__slab_heap_new(rt->h.slab);
        if (!l->heap) return EK_ENOMEM;
    }
    return ek__mutex_init(&l->lock);
}

void ek__local_destroy(ek__local *l)
{
    ek__mutex_destroy(&l->lock);
}

bool ek__local_has_work(ek__local *l)
{
    return l->head || atomic_load_explicit(&l->rlen, memory_order_acquire) > 0;
}

ek__task *ek__local_pop(ek__local *l)
{
    if (!l->head && atomic_load_explicit(&l->rlen, memory_order_acquire) > 0) {
        ek__mutex_lock(&l->lock);
        ek__fifo_append(&l->head, &l->tail, &l->rhead, &l->rtail);
        atomic_store_explicit(&l->rlen, 0, memory_order_relaxed);
        ek__mutex_unlock(&l->lock);
    }
    return ek__fifo_pop(&l->head, &l->tail);
}

void ek__local_drain(ek__local *l)
{
    ek__mutex_lock(&l->lock);
    ek__task *r = ek__fifo_take(&l->rhead, &l->rtail);
    atomic_store_explicit(&l->rlen, 0, memory_order_relaxed);
    ek__mutex_unlock(&l->lock);
    ek__task *lists[2] = {ek__fifo_take(&l->head, &l->tail), r};
    for (int i = 0; i < 2; i++) {
        ek__task *t = lists[i];
        while (t) {
            ek__task *next = t->next;
            ek__task_drop_notification(t);
            t = next;
        }
    }
}

void ek__local_shutdown(ek__local *l)
{
    EK__ASSERT(pthread_equal(l->owner, pthread_self()));
    l->closed = true;
    ek__list *n;
    /* A task's drop may wake or spawn others: take one at a time (its drop
     * runs without the lock). */
    for (;;) {
        ek__mutex_lock(&l->lock);
        n = ek__list_pop_front(&l->owned);
        ek__mutex_unlock(&l->lock);
        if (!n) break;
        ek__task *t = EK__CONTAINER_OF(n, ek__task, owned);
        ek__owned_shutdown_one(t);
    }
    ek__local_drain(l);
}

static ek__local *find_locked(ek_runtime *rt, pthread_t self)
{
    for (ek__list *n = rt->locals.next; n != &rt->locals; n = n->next) {
        ek__local *l = EK__CONTAINER_OF(n, ek__local, link);
        if (pthread_equal(l->owner, self)) return l;
    }
    return NULL;
}

ek__local *ek__local_find_current(ek_runtime *rt)
{
    if (ek__cur.worker && ek__cur.worker->rt == rt) return &ek__cur.worker->local;
    if (ek__cur.local && ek__cur.rt == rt) return ek__cur.local;
    ek__mutex_lock(&rt->locals_lock);
    ek__local *found = find_locked(rt, pthread_self());
    ek__mutex_unlock(&rt->locals_lock);
    return found;
}

ek__local *ek__local_for_current_thread(ek_runtime *rt)
{
    if (ek__cur.worker && ek__cur.worker->rt == rt) return &ek__cur.worker->local;
    if (ek__cur.local && ek__cur.rt == rt) return ek__cur.local;
    pthread_t self = pthread_self();
    ek__mutex_lock(&rt->locals_lock);
    ek__local *found = find_locked(rt, self);
    if (!found) {
        found = ek__malloc(sizeof *found);
        if (found && ek__local_init(found, rt) != EK_OK) {
            ek__free(found);
            found = NULL;
        }
        if (found) ek__list_push_back(&rt->locals, &found->link);
    }
    ek__mutex_unlock(&rt->locals_lock);
    return found;
}

void ek__local_shutdown_if_closed(ek_runtime *rt)
{
    /* Inside one of rt's polls the thread drops its set when it leaves the
     * runtime (worker exit, end of ek_block_on), not under a running task. */
    if (ek__cur.rt == rt) return;
    if (!atomic_load_explicit(&rt->h.closed, memory_order_acquire)) return;
    ek__local *l = ek__local_find_current(rt);
    if (l) ek__local_shutdown(l);
}
