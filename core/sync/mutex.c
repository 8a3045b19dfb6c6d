/*
 * mutex.c - the asynchronous mutex: an ek__sem with one permit (as Tokio's
 * Mutex is a one-permit semaphore), so it is FIFO-fair and a guard that is
 * dropped while queued gives its place back, or the lock if it had already been
 * handed the lock. The guarded value is only touched by the lock holder; the
 * semaphore's internal lock orders one holder's writes before the next holder.
 */
#include "sync.h"

struct ek_mutex {
    uint32_t tag;
    ek__refcount refs; /* handles + guards */
    ek__sem sem;
    void *value;
    ek_drop_fn drop;
};

struct ek_mutex_guard {
    uint32_t tag;
    ek_mutex *m;
    ek__waiter w;
    bool locked;
};

int ek_mutex_new(void *value, ek_drop_fn drop, ek_mutex **out)
{
    /* Consumes value in every case: on error it goes through drop now. */
    if (out == NULL) {
        if (drop) drop(value);
        return EK_EINVAL;
    }
    ek_mutex *m = ek__malloc(sizeof *m);
    if (m == NULL) {
        if (drop) drop(value);
        return EK_ENOMEM;
    }
    ek__sem_init(&m->sem, 1);
    m->tag = EK__TAG_MUTEX;
    ek__ref_init(&m->refs);
    m->value = value;
    m->drop = drop;
    *out = m;
    return EK_OK;
}

/* A new reference; the caller holds one already. */
static ek_mutex *mutex_ref(ek_mutex *m)
{
    ek__ref_get(&m->refs);
    return m;
}

int ek_mutex_clone(ek_mutex *m, ek_mutex **out)
{
    if (!EK__CHECK_TAG(m, EK__TAG_MUTEX) || out == NULL) return EK_EINVAL;
    *out = mutex_ref(m);
    return EK_OK;
}

void ek_mutex_drop(ek_mutex *m)
{
    if (!EK__CHECK_TAG(m, EK__TAG_MUTEX)) return;
    if (!ek__ref_put(&m->refs)) return;
    m->tag = EK__TAG_DEAD;
    ek__sem_destroy(&m->sem);
    if (m->drop != NULL) m->drop(m->value);
    ek__free(m);
}

int ek_mutex_guard_new(ek_mutex *m, ek_mutex_guard **out)
{
    if (!EK__CHECK_TAG(m, EK__TAG_MUTEX) || out == NULL) return EK_EINVAL;
    ek_mutex_guard *g = ek__malloc(sizeof *g);
    if (g == NULL) return EK_ENOMEM;
    g->tag = EK__TAG_MUTEX_GUARD;
    g->m = mutex_ref(m);
    ek__waiter_init(&g->w);
    g->locked = false;
    *out = g;
    return EK_OK;
}

int ek_mutex_lock(ek_mutex_guard *g, ek_cx *cx)
{
    if (!EK__CHECK_TAG(g, EK__TAG_MUTEX_GUARD) || cx == NULL) return EK_EINVAL;
    if (g->locked) return EK_EDEADLK;
    int rc = ek_coop_proceed(cx);
    if (rc != EK_OK) return rc;
    rc = ek__sem_poll_acquire(&g->m->sem, &g->w, cx, NULL, 1);
    if (rc == EK_OK) g->locked = true;
    return ek__cx_pended(cx, rc, EK__SITE_MUTEX);
}

int ek_mutex_try_lock(ek_mutex_guard *g)
{
    if (!EK__CHECK_TAG(g, EK__TAG_MUTEX_GUARD)) return EK_EINVAL;
    if (g->locked) return EK_EDEADLK;
    if (g->w.armed) return EK_EBUSY; /* queued: its turn has not come */
    int rc = ek__sem_try_acquire(&g->m->sem, 1);
    if (rc != EK_OK) return EK_EBUSY;
    g->locked = true;
    return EK_OK;
}

int ek_mutex_blocking_lock(ek_mutex_guard *g)
{
    if (!EK__CHECK_TAG(g, EK__TAG_MUTEX_GUARD)) return EK_EINVAL;
    if (g->locked) return EK_EDEADLK;
    int rc = ek__sem_blocking_acquire(&g->m->sem, &g->w, 1);
    if (rc == EK_OK) g->locked = true;
    return rc;
}

void *ek_mutex_guard_get(ek_mutex_guard *g)
{
    if (!EK__CHECK_TAG(g, EK__TAG_MUTEX_GUARD) || !g->locked) return NULL;
    return g->m->value;
}

int ek_mutex_guard_set(ek_mutex_guard *g, void *value, void **old)
{
    if (!EK__CHECK_TAG(g, EK__TAG_MUTEX_GUARD) || !g->locked) return EK_EINVAL;
    if (old != NULL) *old = g->m->value;
    g->m->value = value;
    return EK_OK;
}

int ek_mutex_unlock(ek_mutex_guard *g)
{
    if (!EK__CHECK_TAG(g, EK__TAG_MUTEX_GUARD)) return EK_EINVAL;
    ek__sem_cancel(&g->m->sem, &g->w);
    if (g->locked) {
        g->locked = false;
        ek__sem_release(&g->m->sem, 1);
    }
    return EK_OK;
}

void ek_mutex_guard_drop(ek_mutex_guard *g)
{
    if (!EK__CHECK_TAG(g, EK__TAG_MUTEX_GUARD)) return;
    ek_mutex_unlock(g);
    ek_waker_drop(g->w.waker);
    g->tag = EK__TAG_DEAD;
    ek_mutex *m = g->m;
    ek__free(g);
    ek_mutex_drop(m);
}
