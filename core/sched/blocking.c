/*
 * blocking.c - the blocking pool: threads for jobs that block. A job is a task
 * (flag EK__TASK_BLOCKING) whose notification is queued here instead of on a
 * worker; so join handles, abort-before-start and shutdown work as for any
 * task. A thread is started only when no thread is idle and the cap allows;
 * idle threads exit after the keep-alive.
 */
#include "runtime.h"

#include <stdio.h>

static void *blocking_main(void *arg);

static void blocking_schedule(ek__sched *s, ek__task *t, int how)
{
    EK__UNUSED(how);
    ek__blocking *b = EK__CONTAINER_OF(s, ek__blocking, sched);
    ek_runtime *rt = s->rt;
    t->next = NULL;
    ek__mutex_lock(&b->lock);
    if (b->shutdown) {
        ek__mutex_unlock(&b->lock);
        /* Shutdown cancels every owned task; this notification just goes. */
        ek__task_drop_notification(t);
        return;
    }
    if (b->tail)
        b->tail->next = t;
    else
        b->head = t;
    b->tail = t;
    b->queued++;
    ek__rt_inhibit_auto_advance(rt, 1);
    if (b->idle > b->pending_wakeups) {
        b->pending_wakeups++;
        ek__cond_signal(&b->cond);
    } else if (b->threads < b->max) {
        pthread_t th;
        char name[32];
        snprintf(name, sizeof name, "%.9s-blk", rt->cfg.thread_name);
        /* The thread's own reference: it may outlive a shutdown that timed out
         * and ek_runtime_free; the runtime's memory goes after it. */
        ek__rt_ref(rt);
        if (ek__thread_start(&th, blocking_main, rt, name) == 0) {
            pthread_detach(th);
            b->threads++;
        } else {
            ek__rt_unref(rt); /* not the last: the job's task holds one */
        }
        /* If no thread could start, the job waits for a running one. */
    }
    ek__mutex_unlock(&b->lock);
}

static void *blocking_main(void *arg)
{
    ek_runtime *rt = arg;
    ek__blocking *b = &rt->blocking;
    ek__cur_set((ek__tls){.rt = rt, .blocking = true});
    char name[32];
    snprintf(name, sizeof name, "%.9s-blk", rt->cfg.thread_name);
    ek__thread_name_self(name);
    ek__rt_hook(rt, EK__HOOK_START);
    ek__mutex_lock(&b->lock);
    for (;;) {
        if (b->head) {
            ek__task *t = b->head;
            b->head = t->next;
            if (!b->head) b->tail = NULL;
            b->queued--;
            ek__mutex_unlock(&b->lock);
            ek__rt_run_task(rt, t);
            ek__rt_inhibit_auto_advance(rt, -1);
            ek__mutex_lock(&b->lock);
            continue;
        }
        if (b->shutdown) break;
        b->idle++;
        uint64_t deadline = ek__deadline_ns(b->keep_alive_ms);
        bool woke = true;
        while (!b->head && !b->shutdown && woke)
            woke = ek__cond_timedwait(&b->cond, &b->lock, deadline);
        b->idle--;
        if (b->pending_wakeups) b->pending_wakeups--;
        if (!b->head && !woke) break; /* keep-alive expired */
    }
    /* No longer a pool thread (a new job starts a new one), but shutdown
     * still waits for us while the stop hook runs. */
    b->threads--;
    b->exiting++;
    ek__mutex_unlock(&b->lock);
    ek__rt_hook(rt, EK__HOOK_STOP);
    ek__mutex_lock(&b->lock);
    b->exiting--;
    /* Drop our reference before shutdown (waiting on exit_cond, holding the
     * owner's) can return, so that its caller sees nothing of us left; only the
     * last reference waits until we are off the lock. */
    bool last = !ek__rt_unref_unless_last(rt);
    ek__cond_broadcast(&b->exit_cond);
    ek__mutex_unlock(&b->lock);
    ek__cur_set((ek__tls){0});
    if (last) ek__rt_unref(rt); /* frees the runtime, lock included */
    return NULL;
}

int ek__blocking_init(ek_runtime *rt)
{
    ek__blocking *b = &rt->blocking;
    memset(b, 0, sizeof *b);
    b->sched.schedule = blocking_schedule;
    b->sched.bind = ek__rt_bind;
    b->sched.release = ek__rt_release;
    b->sched.rt = rt;
    b->max = rt->cfg.max_blocking;
    b->keep_alive_ms = rt->cfg.blocking_keep_alive_ms;
    int rc = ek__mutex_init(&b->lock);
    if (!rc) rc = ek__cond_init(&b->cond);
    if (!rc) rc = ek__cond_init(&b->exit_cond);
    return rc;
}

int ek__blocking_shutdown(ek_runtime *rt, uint64_t timeout_ms)
{
    ek__blocking *b = &rt->blocking;
    ek__mutex_lock(&b->lock);
    b->shutdown = true;
    /* Queued jobs are cancelled by the owned-list shutdown; drop their
     * notifications here so no thread starts them. */
    ek__task *t = b->head;
    size_t n = b->queued;
    b->head = b->tail = NULL;
    b->queued = 0;
    ek__cond_broadcast(&b->cond);
    ek__mutex_unlock(&b->lock);
    while (t) {
        ek__task *next = t->next;
        ek__task_drop_notification(t);
        t = next;
    }
    if (n) ek__rt_inhibit_auto_advance(rt, -(int)n);

    uint64_t deadline = ek__deadline_ns(timeout_ms);
    int rc = EK_OK;
    ek__mutex_lock(&b->lock);
    while (b->threads > 0 || b->exiting > 0) {
        if (deadline == UINT64_MAX) {
            ek__cond_wait(&b->exit_cond, &b->lock);
        } else if (!ek__cond_timedwait(&b->exit_cond, &b->lock, deadline) &&
                   (b->threads > 0 || b->exiting > 0)) {
            rc = EK_ETIMEDOUT;
            break;
        }
    }
    ek__mutex_unlock(&b->lock);
    return rc;
}

void ek__blocking_destroy(ek_runtime *rt)
{
    ek__blocking *b = &rt->blocking;
    ek__cond_destroy(&b->cond);
    ek__cond_destroy(&b->exit_cond);
    ek__mutex_destroy(&b->lock);
}
