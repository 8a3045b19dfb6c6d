/*
 * semaphore.c - the fair (FIFO) counting semaphore, and ek__sem, the locked
 * permit queue that ek_mutex is built on too.
 *
 * A permit object embeds its waiter: acquiring never allocates and dropping the
 * object gives back its place and every permit assigned to it. Permits freed by
 * a release go to the waiters in queue order (the front one may collect them a
 * few at a time); a try_acquire never overtakes a waiter. Without waiters an
 * acquire or a release is one CAS on the state word (see ek__sem in sync.h);
 * with waiters everything goes through the lock.
 */
#include "sync.h"

#define SEM_CLOSED  ((size_t)1)
#define SEM_WAITERS ((size_t)2)
#define SEM_SHIFT   2

static size_t sem_avail(size_t state)
{
    return state >> SEM_SHIFT;
}

void ek__sem_init(ek__sem *s, size_t permits)
{
    ek__lock_init(&s->lock);
    atomic_init(&s->state, permits << SEM_SHIFT);
    ek__list_init(&s->waiters);
}

void ek__sem_destroy(ek__sem *s)
{
    EK__ASSERT(ek__list_empty(&s->waiters));
}

int ek__sem_try_acquire(ek__sem *s, size_t n)
{
    size_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        if (st & SEM_CLOSED) return EK_ECLOSED;
        if (n == 0) return EK_OK;
        if ((st & SEM_WAITERS) || sem_avail(st) < n) return EK_EFULL;
        /* acquire: pairs with the release of whoever gave these permits back,
         * so what they wrote while holding them (a mutex's value) is visible. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &st, st - (n << SEM_SHIFT),
                                                  memory_order_acquire, memory_order_relaxed))
            return EK_OK;
    }
}

/*
 * Hand n permits to the waiters in order (lock held); when the list runs empty
 * the rest go back to the atomic count and SEM_WAITERS is cleared.
 */
static void release_locked(ek__sem *s, size_t n, ek__wake_list *wl)
{
    n = ek__permit_queue_assign(&s->waiters, n, wl);
    if (!ek__list_empty(&s->waiters)) return; /* n is 0: the front keeps its share */
    size_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    size_t nst;
    do {
        nst = ((sem_avail(st) + n) << SEM_SHIFT) | (st & SEM_CLOSED);
        /* release: publishes the permits (and the holder's writes) to lock-free
         * acquirers. */
    } while (!atomic_compare_exchange_weak_explicit(&s->state, &st, nst, memory_order_release,
                                                    memory_order_relaxed));
}

/* Take n permits or queue w (lock held). true: taken; false: queued. */
static bool acquire_locked(ek__sem *s, ek__waiter *w, size_t n)
{
    size_t part = 0;
    if (ek__list_empty(&s->waiters)) {
        size_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
        for (;;) {
            size_t avail = sem_avail(st);
            bool enough = avail >= n;
            size_t nst = enough ? st - (n << SEM_SHIFT) : (st & SEM_CLOSED) | SEM_WAITERS;
            /* acq_rel: take permits (acquire) / publish SEM_WAITERS so that
             * fast-path releasers divert to the lock (release). */
            if (atomic_compare_exchange_weak_explicit(&s->state, &st, nst, memory_order_acq_rel,
                                                      memory_order_relaxed)) {
                if (enough) return true;
                part = avail; /* whatever was free is ours already */
                break;
            }
        }
    }
    ek__permit_queue_push(&s->waiters, w, n, part);
    w->armed = true;
    return false;
}

/* Unlink a queued waiter or undo a hand-off (lock held); returns the permits
 * that were assigned to it, which the caller gives back. */
static size_t unassign_locked(ek__waiter *w)
{
    w->armed = false;
    return ek__permit_queue_unassign(w);
}

/* ek__sem_poll_acquire under the lock: out of line, so that the lock-free path
 * sets up no frame for it. */
static __attribute__((noinline)) int poll_acquire_locked(ek__sem *s, ek__waiter *w, ek_cx *cx,
                                                         ek__sync_parker *pk, size_t n)
{
    ek_waker *old = NULL;
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    int rc;
    ek__lock_acquire_nospin(&s->lock);
    switch (w->state) {
    case EK__W_READY:
        if (w->want != n) {
            rc = EK_EINVAL;
            break;
        }
        w->state = EK__W_IDLE;
        w->armed = false;
        rc = EK_OK;
        break;
    case EK__W_CLOSED:
        w->state = EK__W_IDLE;
        w->armed = false;
        rc = EK_ECLOSED;
        break;
    case EK__W_QUEUED:
        rc = w->want != n ? EK_EINVAL : EK_PENDING;
        break;
    default:
        if (atomic_load_explicit(&s->state, memory_order_relaxed) & SEM_CLOSED)
            rc = EK_ECLOSED;
        else
            rc = acquire_locked(s, w, n) ? EK_OK : EK_PENDING;
        break;
    }
    if (rc == EK_PENDING) {
        rc = ek__waiter_register(w, cx, pk, &old);
        if (rc == EK_OK)
            rc = EK_PENDING;
        else
            release_locked(s, unassign_locked(w), &wl);
    }
    ek__lock_release(&s->lock);
    ek_waker_drop(old);
    ek__wake_list_wake(&wl);
    return rc;
}

int ek__sem_poll_acquire(ek__sem *s, ek__waiter *w, ek_cx *cx, ek__sync_parker *pk, size_t n)
{
    if (!w->armed) {
        /* Not waiting: nobody else touches w, so no lock is needed to know. */
        int rc = ek__sem_try_acquire(s, n);
        if (rc != EK_EFULL) return rc;
    }
    return poll_acquire_locked(s, w, cx, pk, n);
}

typedef struct blocking_acquire {
    ek__sem *s;
    ek__waiter *w;
    size_t n;
} blocking_acquire;

static int blocking_acquire_attempt(void *arg, ek__sync_parker *pk)
{
    blocking_acquire *b = arg;
    return ek__sem_poll_acquire(b->s, b->w, NULL, pk, b->n);
}

int ek__sem_blocking_acquire(ek__sem *s, ek__waiter *w, size_t n)
{
    blocking_acquire b = {s, w, n};
    return ek__sync_blocking_wait(&s->lock, w, blocking_acquire_attempt, &b);
}

/* ek__sem_release with waiters: out of line, as poll_acquire_locked. */
static __attribute__((noinline)) void release_to_waiters(ek__sem *s, size_t n)
{
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek__lock_acquire_nospin(&s->lock);
    release_locked(s, n, &wl);
    ek__lock_release(&s->lock);
    ek__wake_list_wake(&wl);
}

void ek__sem_release(ek__sem *s, size_t n)
{
    if (n == 0) return;
    size_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    while (!(st & SEM_WAITERS)) {
        /* release: the permits and the holder's writes go to the next acquirer. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &st, st + (n << SEM_SHIFT),
                                                  memory_order_release, memory_order_relaxed))
            return;
    }
    release_to_waiters(s, n);
}

void ek__sem_cancel(ek__sem *s, ek__waiter *w)
{
    if (!w->armed) return; /* not waiting: nothing to give back */
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek__lock_acquire_nospin(&s->lock);
    release_locked(s, unassign_locked(w), &wl);
    ek__lock_release(&s->lock);
    ek__wake_list_wake(&wl);
}

void ek__sem_close(ek__sem *s)
{
    ek__wake_list wl;
    ek__wake_list_init(&wl);
    ek__lock_acquire_nospin(&s->lock);
    size_t back = ek__permit_queue_close(&s->waiters, &wl);
    size_t st = atomic_load_explicit(&s->state, memory_order_relaxed), nst;
    do {
        nst = ((sem_avail(st) + back) << SEM_SHIFT) | SEM_CLOSED;
    } while (!atomic_compare_exchange_weak_explicit(&s->state, &st, nst, memory_order_acq_rel,
                                                    memory_order_relaxed));
    ek__lock_release(&s->lock);
    ek__wake_list_wake(&wl);
}

size_t ek__sem_available(ek__sem *s)
{
    return sem_avail(atomic_load_explicit(&s->state, memory_order_relaxed));
}

bool ek__sem_is_closed(ek__sem *s)
{
    return (atomic_load_explicit(&s->state, memory_order_relaxed) & SEM_CLOSED) != 0;
}

/* ---- ek_semaphore ---- */

struct ek_semaphore {
    uint32_t tag;
    ek__refcount refs; /* handles + permit objects */
    ek__sem sem;
};

struct ek_semaphore_permit {
    uint32_t tag;
    ek_semaphore *s;
    ek__waiter w;
    size_t held;
};

int ek_semaphore_new(size_t permits, ek_semaphore **out)
{
    if (out == NULL || permits > EK_SEMAPHORE_MAX_PERMITS) return EK_EINVAL;
    ek_semaphore *s = ek__malloc(sizeof *s);
    if (s == NULL) return EK_ENOMEM;
    ek__sem_init(&s->sem, permits);
    s->tag = EK__TAG_SEMAPHORE;
    ek__ref_init(&s->refs);
    *out = s;
    return EK_OK;
}

/* A new reference; the caller holds one already. */
static ek_semaphore *semaphore_ref(ek_semaphore *s)
{
    ek__ref_get(&s->refs);
    return s;
}

int ek_semaphore_clone(ek_semaphore *s, ek_semaphore **out)
{
    if (!EK__CHECK_TAG(s, EK__TAG_SEMAPHORE) || out == NULL) return EK_EINVAL;
    *out = semaphore_ref(s);
    return EK_OK;
}

void ek_semaphore_drop(ek_semaphore *s)
{
    if (!EK__CHECK_TAG(s, EK__TAG_SEMAPHORE)) return;
    if (!ek__ref_put(&s->refs)) return;
    s->tag = EK__TAG_DEAD;
    ek__sem_destroy(&s->sem);
    ek__free(s);
}

int ek_semaphore_try_acquire(ek_semaphore *s, size_t n)
{
    if (!EK__CHECK_TAG(s, EK__TAG_SEMAPHORE) || n > EK_SEMAPHORE_MAX_PERMITS) return EK_EINVAL;
    return ek__sem_try_acquire(&s->sem, n);
}

int ek_semaphore_release(ek_semaphore *s, size_t n)
{
    if (!EK__CHECK_TAG(s, EK__TAG_SEMAPHORE)) return EK_EINVAL;
    /* Everything not free is held or owed, so only avail can overflow. */
    if (n > EK_SEMAPHORE_MAX_PERMITS - ek__sem_available(&s->sem)) return EK_ERANGE;
    ek__sem_release(&s->sem, n);
    return EK_OK;
}

int64_t ek_semaphore_available_permits(ek_semaphore *s)
{
    if (!EK__CHECK_TAG(s, EK__TAG_SEMAPHORE)) return EK_EINVAL;
    /* At most EK_SEMAPHORE_MAX_PERMITS (SIZE_MAX >> 3), which int64_t holds. */
    return (int64_t)ek__sem_available(&s->sem);
}

int ek_semaphore_close(ek_semaphore *s)
{
    if (!EK__CHECK_TAG(s, EK__TAG_SEMAPHORE)) return EK_EINVAL;
    ek__sem_close(&s->sem);
    return EK_OK;
}

int ek_semaphore_is_closed(ek_semaphore *s)
{
    if (!EK__CHECK_TAG(s, EK__TAG_SEMAPHORE)) return EK_EINVAL;
    return ek__sem_is_closed(&s->sem);
}

int ek_semaphore_permit_new(ek_semaphore *s, ek_semaphore_permit **out)
{
    if (!EK__CHECK_TAG(s, EK__TAG_SEMAPHORE) || out == NULL) return EK_EINVAL;
    ek_semaphore_permit *p = ek__malloc(sizeof *p);
    if (p == NULL) return EK_ENOMEM;
    p->tag = EK__TAG_SEM_PERMIT;
    p->s = semaphore_ref(s);
    ek__waiter_init(&p->w);
    p->held = 0;
    *out = p;
    return EK_OK;
}

int ek_semaphore_acquire(ek_semaphore_permit *p, ek_cx *cx, size_t n)
{
    if (!EK__CHECK_TAG(p, EK__TAG_SEM_PERMIT) || cx == NULL || n > EK_SEMAPHORE_MAX_PERMITS)
        return EK_EINVAL;
    int rc = ek_coop_proceed(cx);
    if (rc != EK_OK) return rc;
    rc = ek__sem_poll_acquire(&p->s->sem, &p->w, cx, NULL, n);
    if (rc == EK_OK) p->held += n;
    return ek__cx_pended(cx, rc, EK__SITE_SEMAPHORE);
}

int ek_semaphore_blocking_acquire(ek_semaphore_permit *p, size_t n)
{
    if (!EK__CHECK_TAG(p, EK__TAG_SEM_PERMIT) || n > EK_SEMAPHORE_MAX_PERMITS) return EK_EINVAL;
    int rc = ek__sem_blocking_acquire(&p->s->sem, &p->w, n);
    if (rc == EK_OK) p->held += n;
    return rc;
}

int64_t ek_semaphore_permit_count(ek_semaphore_permit *p)
{
    return EK__CHECK_TAG(p, EK__TAG_SEM_PERMIT) ? (int64_t)p->held : EK_EINVAL;
}

int ek_semaphore_permit_release(ek_semaphore_permit *p)
{
    if (!EK__CHECK_TAG(p, EK__TAG_SEM_PERMIT)) return EK_EINVAL;
    ek__sem_cancel(&p->s->sem, &p->w);
    if (p->held > 0) ek__sem_release(&p->s->sem, p->held);
    p->held = 0;
    return EK_OK;
}

int ek_semaphore_permit_forget(ek_semaphore_permit *p)
{
    if (!EK__CHECK_TAG(p, EK__TAG_SEM_PERMIT)) return EK_EINVAL;
    p->held = 0;
    return EK_OK;
}

void ek_semaphore_permit_drop(ek_semaphore_permit *p)
{
    if (!EK__CHECK_TAG(p, EK__TAG_SEM_PERMIT)) return;
    ek_semaphore_permit_release(p);
    ek_waker_drop(p->w.waker);
    p->tag = EK__TAG_DEAD;
    ek_semaphore *s = p->s;
    ek__free(p);
    ek_semaphore_drop(s);
}
