/* common.c - locks, time, threads, panic, ring buffers. */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Noreturn void ek__panic(const char *what, const char *file, int line)
{
    fprintf(stderr, "ekiden: invariant broken: %s (%s:%d)\n", what, file, line);
    abort();
}

int ek__mutex_init(ek__mutex *m)
{
    return -pthread_mutex_init(m, NULL);
}
void ek__mutex_destroy(ek__mutex *m)
{
    pthread_mutex_destroy(m);
}
void ek__mutex_lock(ek__mutex *m)
{
    if (pthread_mutex_lock(m) != 0) ek__panic("pthread_mutex_lock", __FILE__, __LINE__);
}
/* ek__lock's slow paths. A short spin first, when asked (the holders' sections
 * are a few pointer writes), then sleep on the word marked 2 ("sleepers"), so that the
 * release knows to wake one. */
void ek__lock_wait(ek__lock *l, int spins)
{
    for (int i = 0; i < spins; i++) {
        int free_ = 0;
        if (atomic_load_explicit(&l->word, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->word, &free_, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    /* acquire: the exchange that finds 0 takes the lock (marked 2: a sleeper
     * may remain, so its release wakes one, at worst spuriously). */
    while (atomic_exchange_explicit(&l->word, 2, memory_order_acquire) != 0)
        syscall(SYS_futex, (int *)&l->word, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 2, NULL, NULL, 0);
}
void ek__lock_wake(ek__lock *l)
{
    syscall(SYS_futex, (int *)&l->word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, NULL, NULL, 0);
}

bool ek__mutex_trylock(ek__mutex *m)
{
    return pthread_mutex_trylock(m) == 0;
}
void ek__mutex_unlock(ek__mutex *m)
{
    if (pthread_mutex_unlock(m) != 0) ek__panic("pthread_mutex_unlock", __FILE__, __LINE__);
}

int ek__cond_init(ek__cond *c)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc) return -rc;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    rc = pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
    return -rc;
}
void ek__cond_destroy(ek__cond *c)
{
    pthread_cond_destroy(c);
}
void ek__cond_wait(ek__cond *c, ek__mutex *m)
{
    pthread_cond_wait(c, m);
}
bool ek__cond_timedwait(ek__cond *c, ek__mutex *m, uint64_t deadline_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                          .tv_nsec = (long)(deadline_ns % 1000000000u)};
    return pthread_cond_timedwait(c, m, &ts) != ETIMEDOUT;
}
void ek__cond_signal(ek__cond *c)
{
    pthread_cond_signal(c);
}
void ek__cond_broadcast(ek__cond *c)
{
    pthread_cond_broadcast(c);
}

uint64_t ek__deadline_ns(uint64_t ms)
{
    const uint64_t ns_per_ms = 1000000u;
    if (ms >= UINT64_MAX / ns_per_ms) return UINT64_MAX;
    uint64_t now = ek__mono_ns(), delta = ms * ns_per_ms;
    return now > UINT64_MAX - delta ? UINT64_MAX : now + delta;
}

void ek__thread_name_self(const char *name)
{
    char buf[16];
    snprintf(buf, sizeof buf, "%s", name);
    pthread_setname_np(pthread_self(), buf);
}

int ek__thread_start(pthread_t *t, void *(*fn)(void *), void *arg, const char *name)
{
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc) return -rc;
    pthread_attr_setstacksize(&attr, 2u << 20);
    rc = pthread_create(t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (rc) return -rc;
    if (name) {
        char buf[16];
        snprintf(buf, sizeof buf, "%s", name);
        pthread_setname_np(*t, buf);
    }
    return 0;
}

int ek__ring_grow(void **ring, size_t size, size_t *head, size_t len, size_t *cap, size_t first)
{
    size_t n = *cap ? *cap * 2 : first;
    uint8_t *fresh = ek__malloc(n * size), *old = *ring;
    if (fresh == NULL) return EK_ENOMEM;
    for (size_t i = 0; i < len; i++)
        memcpy(fresh + i * size, old + ((*head + i) % *cap) * size, size);
    ek__free(old);
    *ring = fresh;
    *cap = n;
    *head = 0;
    return EK_OK;
}
