/*
 * local.c - thread-pinned (local) tasks. Each worker has a local context; any
 * other thread gets one per runtime on first ek_spawn_local, kept in rt->locals
 * until the runtime is freed. Only the owner thread polls and drops the tasks,
 * shutdown included (see runtime.h): other threads' wakes go to the remote
 * queue under the lock and unpark the owner's current parker.
 *
 * Threads that exit. A thread outside the runtime may exit with tasks still
 * pinned to it, never to drive the runtime again. Its sets are on a list in
 * its thread-local storage, and a pthread key's destructor runs as it exits:
 * for each set it drops the tasks there, on their own thread, then moves the
 * set from rt->locals to rt->orphans. An orphan is looked up by nobody (a new
 * thread whose pthread_t is the old one's gets a set of its own) but stays
 * until the runtime's memory goes, for the completed tasks that still point at
 * its scheduler (a join handle held elsewhere).
 *
 * The runtime may go first: its last reference frees its sets
 * (ek__local_free_all), taking them off their threads' lists under the
 * process-wide exits.lock. The destructor pops a set under that lock and takes
 * a reference on the set's runtime there unless the count is already zero (the
 * runtime is being freed, and frees the set itself). Lock order:
 * rt->locals_lock, then exits.lock.
 */
#include "fifo.h"
#include "runtime.h"

static struct {
    pthread_once_t once;
    atomic_bool made; /* the key exists (set once, by the once) */
    int key_rc;       /* pthread_key_create's result */
    pthread_key_t key;
    ek__mutex lock; /* every thread's thread_sets */
} exits = {.once = PTHREAD_ONCE_INIT, .lock = PTHREAD_MUTEX_INITIALIZER};

/* This thread's foreign sets (their thread_link); zero until the first. */
static __attribute__((tls_model("initial-exec"))) _Thread_local ek__list thread_sets;

static void local_schedule(ek__sched *s, ek__task *t, int how)
{
    EK__UNUSED(how);
    ek__local *l = EK__CONTAINER_OF(s, ek__local, sched);
    if (ek__cur.local == l) {
        ek__fifo_push(&l->head, &l->tail, t);
        return;
    }
    ek__lock_acquire(&l->lock);
    ek__fifo_push(&l->rhead, &l->rtail, t);
    atomic_fetch_add_explicit(&l->rlen, 1, memory_order_release);
    /* Under the lock: the parker cannot be released while we use it. */
    ek__parker *p = atomic_load_explicit(&l->parker, memory_order_relaxed);
    if (p) ek__parker_unpark(p);
    ek__lock_release(&l->lock);
}

/* Spawns pin to the calling thread and completions run on it, so only the
 * owner changes the owned list; it does so under the lock, which ek_runtime_dump
 * takes to read the list from any thread. */
static int local_bind(ek__sched *s, ek__task *t)
{
    ek__local *l = EK__CONTAINER_OF(s, ek__local, sched);
    EK__ASSERT(pthread_equal(l->owner, pthread_self()));
    if (l->closed) return EK_ECLOSED;
    ek__lock_acquire(&l->lock);
    ek__list_push_back(&l->owned, &t->owned);
    ek__lock_release(&l->lock);
    return EK_OK;
}

static bool local_release(ek__sched *s, ek__task *t)
{
    ek__local *l = EK__CONTAINER_OF(s, ek__local, sched);
    ek__lock_acquire(&l->lock);
    bool linked = ek__list_linked(&t->owned);
    if (linked) ek__list_remove(&t->owned);
    ek__lock_release(&l->lock);
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
    l->refs.rt = rt;
    atomic_init(&l->refs.held, 0);
    ek__list_init(&l->link);
    ek__list_init(&l->thread_link);
    /* Its cells' heap (cells.c); none when the slab is off. */
    if (rt->h.slab) {
        l->heap = ek__slab_heap_new(rt->h.slab);
        if (!l->heap) return EK_ENOMEM;
    }
    ek__lock_init(&l->lock);
    return EK_OK;
}

bool ek__local_has_work(ek__local *l)
{
    return l->head || atomic_load_explicit(&l->rlen, memory_order_acquire) > 0;
}

ek__task *ek__local_pop(ek__local *l)
{
    if (!l->head && atomic_load_explicit(&l->rlen, memory_order_acquire) > 0) {
        ek__lock_acquire(&l->lock);
        ek__fifo_append(&l->head, &l->tail, &l->rhead, &l->rtail);
        atomic_store_explicit(&l->rlen, 0, memory_order_relaxed);
        ek__lock_release(&l->lock);
    }
    return ek__fifo_pop(&l->head, &l->tail);
}

void ek__local_drain(ek__local *l)
{
    ek__lock_acquire(&l->lock);
    ek__task *r = ek__fifo_take(&l->rhead, &l->rtail);
    atomic_store_explicit(&l->rlen, 0, memory_order_relaxed);
    ek__lock_release(&l->lock);
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
        ek__lock_acquire(&l->lock);
        n = ek__list_pop_front(&l->owned);
        ek__lock_release(&l->lock);
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
    ek__lock_acquire(&rt->locals_lock);
    ek__local *found = find_locked(rt, pthread_self());
    ek__lock_release(&rt->locals_lock);
    return found;
}

/* A reference on rt from a live holder, or false if the count is zero (the
 * runtime's memory is going: see the top of the file). */
static bool rt_ref_unless_zero(ek_runtime *rt)
{
    uint64_t cur = atomic_load_explicit(&rt->h.refs, memory_order_relaxed);
    while (cur != 0) {
        /* acquire: what the holders wrote is seen before the set is used. */
        if (atomic_compare_exchange_weak_explicit(&rt->h.refs, &cur, cur + EK__RT_REF_HANDLE,
                                                  memory_order_acquire, memory_order_relaxed))
            return true;
    }
    return false;
}

/* The key's destructor: the calling thread exits. */
static void thread_exit(void *arg)
{
    EK__UNUSED(arg);
    for (;;) {
        ek__mutex_lock(&exits.lock);
        ek__list *n = thread_sets.next ? ek__list_pop_front(&thread_sets) : NULL;
        ek__local *l = n ? EK__CONTAINER_OF(n, ek__local, thread_link) : NULL;
        ek_runtime *rt = l ? l->sched.rt : NULL;
        bool alive = rt != NULL && rt_ref_unless_zero(rt);
        ek__mutex_unlock(&exits.lock);
        if (l == NULL) return;
        if (!alive) continue; /* the runtime frees it */
        /* Outside every runtime's loop (this thread is leaving): here. */
        ek__local_shutdown(l);
        ek__lock_acquire(&rt->locals_lock);
        ek__list_remove(&l->link);
        ek__list_push_back(&rt->orphans, &l->link);
        ek__lock_release(&rt->locals_lock);
        ek__rt_unref(rt); /* may be the last: frees rt and l */
    }
}

static void exits_key_create(void)
{
    exits.key_rc = pthread_key_create(&exits.key, thread_exit);
    atomic_store_explicit(&exits.made, exits.key_rc == 0, memory_order_release);
}

/* A library unloaded (dlclose) while threads that registered sets still run
 * must not leave them a destructor in unmapped code. */
__attribute__((destructor)) static void exits_key_delete(void)
{
    if (atomic_load_explicit(&exits.made, memory_order_acquire)) pthread_key_delete(exits.key);
}

/* Put a new foreign set l on the calling thread's list (EK_OK), so that it is
 * shut down when the thread exits; EK_ENOMEM if the key cannot be made. */
static int register_thread_set(ek__local *l)
{
    pthread_once(&exits.once, exits_key_create);
    if (exits.key_rc != 0) return EK_ENOMEM;
    ek__mutex_lock(&exits.lock);
    if (thread_sets.next == NULL) ek__list_init(&thread_sets);
    ek__list_push_back(&thread_sets, &l->thread_link);
    ek__mutex_unlock(&exits.lock);
    /* Non-NULL, so that the destructor runs at exit (re-set: the value is
     * cleared before a destructor is called). */
    if (pthread_getspecific(exits.key) == NULL &&
        pthread_setspecific(exits.key, &thread_sets) != 0) {
        ek__mutex_lock(&exits.lock);
        ek__list_remove(&l->thread_link);
        ek__mutex_unlock(&exits.lock);
        return EK_ENOMEM;
    }
    return EK_OK;
}

void ek__local_free_all(ek_runtime *rt)
{
    ek__list *lists[2] = {&rt->locals, &rt->orphans};
    ek__mutex_lock(&exits.lock);
    for (int i = 0; i < 2; i++)
        for (ek__list *n = lists[i]->next; n != lists[i]; n = n->next) {
            ek__local *l = EK__CONTAINER_OF(n, ek__local, link);
            if (ek__list_linked(&l->thread_link)) ek__list_remove(&l->thread_link);
        }
    ek__mutex_unlock(&exits.lock);
    for (int i = 0; i < 2; i++)
        while (!ek__list_empty(lists[i])) {
            ek__local *l = EK__CONTAINER_OF(ek__list_pop_front(lists[i]), ek__local, link);
            ek__free(l);
        }
}

ek__local *ek__local_for_current_thread(ek_runtime *rt)
{
    if (ek__cur.worker && ek__cur.worker->rt == rt) return &ek__cur.worker->local;
    if (ek__cur.local && ek__cur.rt == rt) return ek__cur.local;
    pthread_t self = pthread_self();
    ek__lock_acquire(&rt->locals_lock);
    ek__local *found = find_locked(rt, self);
    if (!found) {
        found = ek__malloc(sizeof *found);
        if (found && ek__local_init(found, rt) != EK_OK) {
            ek__free(found);
            found = NULL;
        }
        if (found && register_thread_set(found) != EK_OK) {
            ek__free(found);
            found = NULL;
        }
        if (found) ek__list_push_back(&rt->locals, &found->link);
    }
    ek__lock_release(&rt->locals_lock);
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
