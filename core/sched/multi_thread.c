/*
 * multi_thread.c - the work-stealing scheduler (Tokio's design, DESIGN §3).
 *
 * A worker's loop: take the next task (LIFO slot, own queue, every
 * global_queue_interval ticks the global queue first, then a batch from the
 * global queue), otherwise search (steal half of a random victim's queue,
 * bounded so at most about half the workers search at once), otherwise park
 * (in the driver if it is free, else on the worker's condvar).
 *
 * Idle bookkeeping: `idle.state` packs the number of searching workers (low 16
 * bits) and of unparked workers (high 16). A worker is woken (targeted unpark)
 * only when nobody is searching and someone sleeps; the woken worker counts as
 * searching, and the last searcher to find work wakes one more, so work spreads
 * without a thundering herd.
 *
 * I/O work spreads only when it is worth a thread (issue 11). Tokio wakes a
 * parked worker after every driver turn that left more than one task, and lets
 * an idle worker wait in epoll while another runs, so the kernel wakes it for
 * every batch of events the busy worker would have collected itself at its next
 * turn. Each wake costs a futex or an epoll wake-up and, where the cores are
 * already busy (a load generator beside the server, other processes), takes a
 * core from someone else for a scheduler slice: on 2 cores with the client on
 * the same machine, 2 workers gave 8x the p99 of 1 worker. So:
 *   - after a driver turn, another worker is woken only if the batch is worth it:
 *     at least SPREAD_NS of work at this worker's CPU time per poll
 *     (tasks that long spread as before; a batch of short reads and writes stays
 *     here, where the sockets' cache lines already are);
 *   - a worker that parks while another one runs does not wait in the driver:
 *     the running worker turns it (every event_interval polls and when it parks).
 *     One parked worker stands by instead, on its futex with a timeout, and
 *     takes the driver if no worker turned it meanwhile (a poll that runs long),
 *     and the last worker to park always waits in the driver as before. The
 *     timeout starts at STANDBY_MS and doubles, up to STANDBY_MAX_MS, with each
 *     check that finds nothing to do: a fixed 1 ms cost ~1,200 futex calls and
 *     context switches per second at pump x1, where every check found the driver
 *     turned. So I/O waits behind a long poll at most about two STANDBY_MAX_MS
 *     (one check sees turns made before the poll began, the next none).
 *
 * Bounded turns (issue 11). A worker's driver turn takes at most as many events
 * as its run queue can hold (the free slots, plus the LIFO slot if empty): the
 * rest stay in the kernel's ready list, which keeps them in the order they
 * became ready, until the worker's next turn. With 1,024 events a turn, one
 * worker at 4 KiB x 1,000 connections took several hundred at once: past 256
 * the queue overflowed, moving its oldest half to the global queue, and each
 * later turn's overflow put more of the oldest tasks behind them, so the first
 * connections to be ready ran last (p99 1.89x, p99.9 2-5x the epoll server's,
 * which takes 256 a call and runs them in order). Bounded, a connection waits
 * behind at most a queue of others plus the kernel's FIFO. So that a queue full
 * of other work (tasks that yield or wake each other) does not starve I/O, a
 * turn takes at least as many events as the worker ran polls since its last
 * turn, less the tasks it took from the global queue or stole meanwhile
 * (turn_bound): I/O keeps the share it had. Those tasks filled slots that no
 * turn had, and counting their polls too let a worker with a non-empty global
 * queue overflow at every turn (the overflow refilling the global queue, which
 * refilled the local one): 1,400 overflows a second at 4 KiB x 1,000.
 */
#include "fifo.h"
#include "runtime.h"

#include <stdio.h>
#include <time.h>

#define SEARCH_ONE 1u
#define UNPARK_ONE (1u << 16)
static inline unsigned num_searching(uint32_t s)
{
    return s & 0xffffu;
}
static inline unsigned num_unparked(uint32_t s)
{
    return s >> 16;
}

#define LIFO_CAP            3u
#define MAX_INJECT_BATCH    128u
#define SPREAD_NS           100000.0 /* work that is worth waking another worker for */
#define STANDBY_MS          1        /* a standby worker's first check, after taking the role */
#define STANDBY_MAX_MS      8        /* its checks back off to this while they find nothing */
#define COST_SAMPLE_POLLS   64u      /* polls between two samples of the poll cost */
#define STANDBY_IDLE_CHECKS 16       /* checks with no worker running before it sleeps */

/* initial-exec: one TLS access without __tls_get_addr, also when the library is
 * dlopen'd by Python or Lua (glibc reserves static TLS room for that). */
__attribute__((tls_model("initial-exec"))) _Thread_local ek__tls ek__cur;

/* ------------------------------------------------------------------ idle -- */

static int idle_init(ek_runtime *rt)
{
    ek__idle *idle = &rt->idle;
    atomic_init(&idle->state, rt->nworkers * UNPARK_ONE);
    atomic_init(&idle->standby, false);
    idle->standby_ms = STANDBY_MS;
    idle->sleepers = ek__calloc(rt->nworkers, sizeof(unsigned));
    if (!idle->sleepers) return EK_ENOMEM;
    idle->nsleepers = 0;
    ek__lock_init(&idle->lock);
    return EK_OK;
}

/* Take a sleeper off the stack (idle lock held): the last to park, unless it
 * waits in the driver and another sleeps on its futex. The last to park is the
 * one in the driver (park_inner), so plain LIFO woke it for every remote spawn:
 * an eventfd write, the woken worker's read and its return from epoll, where a
 * futex wake is one syscall; and the one left in the driver still watches the
 * I/O. */
static unsigned pop_sleeper(ek_runtime *rt)
{
    ek__idle *idle = &rt->idle;
    unsigned top = idle->nsleepers - 1;
    for (unsigned i = top + 1; i-- > 0;) {
        unsigned idx = idle->sleepers[i];
        /* relaxed: a hint; whichever is woken, the unpark is exact. */
        if (atomic_load_explicit(&rt->workers[idx].parker.state, memory_order_relaxed) !=
            EK__PARK_DRIVER) {
            idle->sleepers[i] = idle->sleepers[top];
            idle->nsleepers = top;
            return idx;
        }
    }
    idle->nsleepers = top;
    return idle->sleepers[top];
}

/* A sleeping worker to wake, already counted as unparked and searching. */
static ek__worker *worker_to_notify(ek_runtime *rt)
{
    ek__idle *idle = &rt->idle;
    /* Fast path without the lock: someone is searching (they will find the work
     * and wake another if needed) or nobody sleeps. seq_cst pairs with the
     * searcher's decrement-then-check so a task pushed concurrently with the
     * last searcher going to sleep is seen by one side. */
    /* The RMW orders the caller's queue push (a release store) before this
     * load: a Dekker pair with the parking worker, whose seq_cst decrement of
     * the state precedes its re-check of the queues. Without it x86 may let the
     * load pass the store and both sides miss each other. */
    uint32_t s = atomic_fetch_add(&idle->state, 0); /* a full barrier, TSan-friendly */
    if (num_searching(s) > 0 || num_unparked(s) >= rt->nworkers) return NULL;
    ek__lock_acquire(&idle->lock);
    s = atomic_load(&idle->state);
    ek__worker *w = NULL;
    if (num_searching(s) == 0 && idle->nsleepers > 0) {
        unsigned idx = pop_sleeper(rt);
        atomic_fetch_add(&idle->state, SEARCH_ONE | UNPARK_ONE);
        w = &rt->workers[idx];
    }
    ek__lock_release(&idle->lock);
    return w;
}

void ek__mt_notify_parked(ek_runtime *rt)
{
    ek__worker *w = worker_to_notify(rt);
    if (w) {
        atomic_fetch_add_explicit(&rt->unparks, 1, memory_order_relaxed);
        ek__parker_unpark(&w->parker);
    }
}

static bool transition_to_searching(ek__worker *w)
{
    if (w->is_searching) return true;
    ek_runtime *rt = w->rt;
    uint32_t s = atomic_load(&rt->idle.state);
    if (2 * num_searching(s) >= rt->nworkers) return false;
    atomic_fetch_add(&rt->idle.state, SEARCH_ONE);
    w->is_searching = true;
    return true;
}

/* Leave the searching state; the last searcher wakes another worker. */
static void transition_from_searching(ek__worker *w)
{
    w->is_searching = false;
    uint32_t prev = atomic_fetch_sub(&w->rt->idle.state, SEARCH_ONE);
    if (num_searching(prev) == 1) ek__mt_notify_parked(w->rt);
}

/* Workers unparked and not searching: they run tasks, so they turn the
 * driver (at maintenance, and when they park). A searching worker may be one
 * notified that the kernel has not run yet: it does not count. */
static unsigned num_running(uint32_t s)
{
    return num_unparked(s) - num_searching(s);
}

/* Returns true if this was the last searching worker; *others_running tells
 * whether another worker was still running tasks (the last to stop sees none,
 * so one of the parking workers always goes to the driver). */
static bool transition_to_parked(ek__worker *w, bool *others_running)
{
    ek__idle *idle = &w->rt->idle;
    ek__lock_acquire(&idle->lock);
    uint32_t dec = UNPARK_ONE | (w->is_searching ? SEARCH_ONE : 0);
    uint32_t prev = atomic_fetch_sub(&idle->state, dec);
    idle->sleepers[idle->nsleepers++] = w->index;
    ek__lock_release(&idle->lock);
    /* prev counts this worker: unparked, and searching if it was. */
    *others_running = num_running(prev) > (w->is_searching ? 0u : 1u);
    bool last = w->is_searching && num_searching(prev) == 1;
    w->is_searching = false;
    return last;
}

/* Remove w from the sleepers if it is still there (woken by I/O, not by a
 * notify). Returns true if it was. */
static bool unpark_self(ek__worker *w)
{
    ek__idle *idle = &w->rt->idle;
    bool found = false;
    ek__lock_acquire(&idle->lock);
    for (unsigned i = 0; i < idle->nsleepers; i++) {
        if (idle->sleepers[i] == w->index) {
            idle->sleepers[i] = idle->sleepers[--idle->nsleepers];
            atomic_fetch_add(&idle->state, UNPARK_ONE);
            found = true;
            break;
        }
    }
    ek__lock_release(&idle->lock);
    return found;
}

static bool is_sleeping(ek__worker *w)
{
    ek__idle *idle = &w->rt->idle;
    bool found = false;
    ek__lock_acquire(&idle->lock);
    for (unsigned i = 0; i < idle->nsleepers && !found; i++) found = idle->sleepers[i] == w->index;
    ek__lock_release(&idle->lock);
    return found;
}

/* -------------------------------------------------------------- schedule -- */

static void push_local(ek__worker *w, ek__task *t)
{
    if (ek__queue_push_back(&w->q, t, &w->rt->inject))
        atomic_fetch_add_explicit(&w->overflows, 1, memory_order_relaxed);
}

void ek__mt_schedule(ek__sched *s, ek__task *t, int how)
{
    ek_runtime *rt = s->rt;
    ek__worker *w = ek__cur.worker;
    if (w && w->rt == rt) {
        if (how == EK__SCHED_DEFER) {
            /* Re-polled once the worker ran out of other work, or at the next
             * maintenance: a yielding task lets the global queue and I/O in. */
            ek__fifo_push(&w->deferred_head, &w->deferred_tail, t);
            return;
        }
        if (how == EK__SCHED_WAKE && rt->cfg.lifo) {
            ek__task *prev = w->lifo;
            w->lifo = t;
            if (!prev) return; /* the worker runs it next; nobody else needed */
            t = prev;
        }
        push_local(w, t);
        /* Wakes from a driver turn come in batches: the worker notifies once
         * after the turn instead (as Tokio does). */
        if (!w->in_driver) ek__mt_notify_parked(rt);
        return;
    }
    ek__inject_push(&rt->inject, t);
    ek__mt_notify_parked(rt);
}

/* Move the deferred (yielded) tasks to the back of the run queue. */
static bool flush_deferred(ek__worker *w)
{
    ek__task *t = ek__fifo_take(&w->deferred_head, &w->deferred_tail);
    if (!t) return false;
    while (t) {
        ek__task *next = t->next;
        push_local(w, t);
        t = next;
    }
    ek__mt_notify_parked(w->rt);
    return true;
}

/* ---------------------------------------------------------------- worker -- */

static uint32_t rng_next(ek__worker *w)
{
    /* xorshift64*: only for picking a victim. */
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

/* Move a batch from the global queue into our queue; return one to run. */
__attribute__((noinline)) static ek__task *take_batch_from_inject(ek__worker *w, size_t len)
{
    ek_runtime *rt = w->rt;
    size_t n = len / rt->nworkers + 1;
    uint32_t free_slots = ek__queue_free_slots(&w->q);
    if (n > free_slots) n = free_slots;
    if (n > MAX_INJECT_BATCH) n = MAX_INJECT_BATCH;
    if (n == 0) n = 1;
    ek__task *first;
    size_t got = ek__inject_pop_n(&rt->inject, n, &first);
    if (!got) return NULL;
    w->fed += (uint32_t)got; /* turn_bound */
    ek__task *ret = first, *t = first->next;
    while (t) {
        ek__task *next = t->next;
        push_local(w, t);
        t = next;
    }
    return ret;
}

/* The inline peek: a worker looks at an empty global queue about three times
 * per round trip of a one-connection echo (before its own queue, after it, and
 * searching), and the call cost more than the look. */
static inline ek__task *take_from_inject(ek__worker *w)
{
    size_t len = ek__inject_len(&w->rt->inject);
    return len == 0 ? NULL : take_batch_from_inject(w, len);
}

static ek__task *next_task(ek__worker *w)
{
    ek__task *t;
    if (w->tick % w->global_interval == 0) {
        /* Fairness for tasks from outside: take a batch, so that a worker kept
         * busy by local work still drains the global queue at a steady rate. */
        if ((t = take_from_inject(w))) return t;
    }
    if (w->lifo) {
        t = w->lifo;
        w->lifo = NULL;
        if (++w->lifo_polls <= LIFO_CAP) return t;
        /* The LIFO cap: two tasks waking each other must not starve the rest. */
        push_local(w, t);
    }
    w->lifo_polls = 0;
    if ((t = ek__queue_pop(&w->q))) return t;
    if ((t = ek__local_pop(&w->local))) return t;
    return take_from_inject(w);
}

static ek__task *steal_work(ek__worker *w)
{
    ek_runtime *rt = w->rt;
    /* One worker has no victim, and next_task just looked at the global queue:
     * no search (park_inner looks at the global queue once more after the
     * worker counted itself parked, as the last searcher would). */
    if (rt->nworkers == 1) return NULL;
    if (!transition_to_searching(w)) return NULL;
    unsigned n = rt->nworkers;
    unsigned start = rng_next(w) % n;
    for (unsigned i = 0; i < n; i++) {
        ek__worker *victim = &rt->workers[(start + i) % n];
        if (victim == w) continue;
        uint32_t got;
        ek__task *t = ek__queue_steal_into(&victim->q, &w->q, &got);
        if (t) {
            w->fed += got; /* turn_bound */
            atomic_fetch_add_explicit(&w->steals, got, memory_order_relaxed);
            atomic_fetch_add_explicit(&w->steal_ops, 1, memory_order_relaxed);
            return t;
        }
    }
    return take_from_inject(w);
}

static void run(ek__worker *w, ek__task *t)
{
    if (w->is_searching) transition_from_searching(w);
    w->tick++;
    w->maint_polls++;
    atomic_fetch_add_explicit(&w->polls, 1, memory_order_relaxed);
    ek__rt_run_task(w->rt, t);
}

static bool has_work(ek__worker *w)
{
    return w->lifo || w->deferred_head || ek__queue_len(&w->q) > 0 || ek__local_has_work(&w->local);
}

/* The events w's next driver turn may take ("Bounded turns" above): what its
 * run queue can hold without overflowing, but at least the polls it ran since
 * its last turn less the tasks fed to it from elsewhere; 0 when the queue is
 * full and that is none. Owner only. */
static int turn_bound(ek__worker *w)
{
    uint32_t room = ek__queue_free_slots(&w->q) + (w->lifo == NULL);
    uint32_t ran = w->tick - w->turn_tick;
    uint32_t share = ran > w->fed ? ran - w->fed : 0;
    if (room < share) room = share;
    return room > EK__DRIVER_EVENTS ? EK__DRIVER_EVENTS : (int)room;
}

/* Park, between the park and unpark hooks (once each per park, as Tokio). */
static void park_inner(ek__worker *w);
static void park(ek__worker *w)
{
    ek__rt_hook(w->rt, EK__HOOK_PARK);
    park_inner(w);
    ek__rt_hook(w->rt, EK__HOOK_UNPARK);
}

/* CPU time per poll, sampled where a spreading decision needs it and at most
 * every COST_SAMPLE_POLLS polls: the thread's CPU time (user and system) does
 * not count the time it slept or waited for a core, so a loaded machine does
 * not make short polls look long. (clock_gettime of a thread's CPU time is a
 * system call, about 1 us in a VM: a worker that never decides pays nothing.) */
static void sample_poll_cost(ek__worker *w)
{
    if (w->tick - w->cpu_tick < COST_SAMPLE_POLLS && w->cpu_ns > 0) return;
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return;
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    uint32_t polls = w->tick - w->cpu_tick;
    if (polls > 0 && w->cpu_ns > 0 && now > w->cpu_ns) {
        double per = (double)(now - w->cpu_ns) / polls;
        w->poll_cost_ns = w->poll_cost_ns == 0 ? per : 0.2 * per + 0.8 * w->poll_cost_ns;
    }
    w->cpu_ns = now;
    w->cpu_tick = w->tick;
}

/* No worker stands by: poke a sleeper (without taking it off the sleepers, so
 * it does not search) so that it takes the standby role. */
static void ensure_standby(ek_runtime *rt)
{
    ek__idle *idle = &rt->idle;
    if (rt->nworkers < 2 || atomic_load_explicit(&idle->standby, memory_order_relaxed)) return;
    ek__worker *v = NULL;
    ek__lock_acquire(&idle->lock);
    if (idle->nsleepers > 0) v = &rt->workers[idle->sleepers[idle->nsleepers - 1]];
    ek__lock_release(&idle->lock);
    if (!v) return;
    atomic_fetch_add_explicit(&rt->unparks, 1, memory_order_relaxed);
    ek__parker_unpark(&v->parker);
}

/* After a driver turn that queued tasks here: wake another worker only if the
 * backlog is worth one (see the top of the file). Not measured yet: as Tokio
 * (more than one task). When the backlog stays here, make sure a worker stands
 * by, in case a poll runs long: wherever Tokio would wake a worker, one watches.
 * `yielded`: the queue holds tasks that yielded (ek_yield_now, or out of
 * budget) since the last maintenance. They are compute, not a batch of short
 * I/O polls: a task that yields wants the CPU again at once, so they spread as
 * Tokio's rule says, without the cost sample or the standby poke (with them,
 * rt_multi.yield_many woke a sleeper about 28 times per iteration for nothing:
 * 1.5x the context switches of 001d9d0, and a clock_gettime every ~120 polls). */
static void notify_after_turn(ek__worker *w, bool yielded)
{
    uint32_t queued = ek__queue_len(&w->q);
    if (queued == 0) return; /* nothing another worker could steal */
    if (yielded) {
        ek__mt_notify_parked(w->rt);
        return;
    }
    unsigned backlog = queued + (w->lifo != NULL);
    if (backlog < 2) return;
    sample_poll_cost(w);
    if (w->poll_cost_ns > 0 && backlog * w->poll_cost_ns < SPREAD_NS) {
        ensure_standby(w->rt);
        return;
    }
    ek__mt_notify_parked(w->rt);
}

/* A driver turn by w. Its own counter, written by w only (a store, no
 * read-modify-write on a line the other workers write): a standby worker sums
 * them to see that turns happen. One shared counter took a contended atomic
 * every event_interval polls of every worker, beside idle.state which every
 * notify reads (rt_multi.yield_many polls in ~25 ns). The tick of the turn is
 * for turn_bound. */
static void count_turn(ek__worker *w)
{
    w->turn_tick = w->tick;
    w->fed = 0;
    atomic_store_explicit(&w->turns, atomic_load_explicit(&w->turns, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Driver turns made by the workers so far (relaxed: compared, not ordered). */
static uint64_t turns_of(ek_runtime *rt)
{
    uint64_t n = 0;
    for (unsigned k = 0; k < rt->nworkers; k++)
        n += atomic_load_explicit(&rt->workers[k].turns, memory_order_relaxed);
    return n;
}

static uint64_t polls_of(ek__worker *v)
{
    return atomic_load_explicit(&v->polls, memory_order_relaxed);
}

/* Standby, after its timeout: is another worker stuck in one poll (no poll
 * finished since the last check) with tasks queued behind it? */
static bool work_stuck_behind_a_poll(ek__worker *w)
{
    ek_runtime *rt = w->rt;
    bool stuck = false;
    for (unsigned k = 0; k < rt->nworkers; k++) {
        ek__worker *v = &rt->workers[k];
        uint64_t polls = polls_of(v);
        if (v != w && ek__queue_len(&v->q) > 0 && polls == v->standby_seen) stuck = true;
        v->standby_seen = polls;
    }
    return stuck;
}

/* What a standby check found: woken (work or a notify), nothing to do (keep
 * standing by), no driver turn since the last check (take the driver), tasks
 * stuck behind a long poll (steal them), nobody running for a while (sleep). */
typedef enum {
    STANDBY_WOKEN,
    STANDBY_KEEP,
    STANDBY_STALLED,
    STANDBY_STUCK,
    STANDBY_IDLE
} standby_result;

/* The standby role: sleep *wait_ms, then look at the running workers; a
 * check that finds nothing to do doubles *wait_ms (up to STANDBY_MAX_MS), one
 * that acts sets it back to STANDBY_MS. *wait_ms outlives the role: a notify
 * ends it (pop_sleeper prefers the standby), ~150 times a second at pump x1, and
 * starting each new role at 1 ms kept ~650 of the ~1,200 timeouts. The caller
 * holds idle.standby (which owns every standby_seen field and *wait_ms). */
static standby_result stand_by(ek__worker *w, unsigned *idle_checks, int *wait_ms)
{
    ek_runtime *rt = w->rt;
    uint64_t turns = turns_of(rt);
    ek__parker_park(&w->parker, false, *wait_ms, 0);
    if (has_work(w) || !is_sleeping(w)) return STANDBY_WOKEN;
    /* seq_cst: as the parking decrement. */
    if (num_running(atomic_load(&rt->idle.state)) == 0) {
        /* Nobody runs (the last to park waits in the driver): stand by a little
         * longer, for the next busy stretch, then sleep for good. */
        if (++*idle_checks >= STANDBY_IDLE_CHECKS) return STANDBY_IDLE;
    } else {
        *idle_checks = 0;
        bool stuck = work_stuck_behind_a_poll(w);
        if (stuck || turns_of(rt) == turns) {
            *wait_ms = STANDBY_MS;
            return stuck ? STANDBY_STUCK : STANDBY_STALLED;
        }
    }
    if (*wait_ms < STANDBY_MAX_MS) *wait_ms *= 2;
    return STANDBY_KEEP;
}

static void park_inner(ek__worker *w)
{
    ek_runtime *rt = w->rt;
    ek__idle *idle = &rt->idle;
    bool others_running;
    /* A lone worker never searches (steal_work), so it is the last searcher
     * whenever it parks: a push that saw it unparked did not notify. */
    if (transition_to_parked(w, &others_running) || rt->nworkers == 1) {
        /* We were the last searcher: if work is pending, make sure someone
         * (maybe us, after the notify) picks it up. */
        bool pending = ek__inject_len(&rt->inject) > 0;
        for (unsigned i = 0; i < rt->nworkers && !pending; i++)
            pending = ek__queue_len(&rt->workers[i].q) > 0;
        if (pending) ek__mt_notify_parked(rt);
    }
    bool standby = false, drive = false; /* drive: next sleep tries the driver */
    unsigned idle_checks = 0;
    for (;;) {
        if (atomic_load_explicit(&rt->stopping, memory_order_acquire)) break;
        atomic_fetch_add_explicit(&w->parks, 1, memory_order_relaxed);
        w->in_driver = true;
        if (!standby && others_running && !drive && rt->h.driver &&
            !atomic_exchange_explicit(&idle->standby, true, memory_order_acquire)) {
            /* acquire/release: the role owns the standby_seen fields. */
            standby = true;
            for (unsigned k = 0; k < rt->nworkers; k++)
                rt->workers[k].standby_seen = polls_of(&rt->workers[k]);
        }
        bool stuck = false;
        if (standby) {
            standby_result r = stand_by(w, &idle_checks, &idle->standby_ms);
            stuck = r == STANDBY_STUCK;
            drive = r == STANDBY_STALLED || r == STANDBY_IDLE;
            if (r != STANDBY_KEEP) {
                standby = false;
                atomic_store_explicit(&idle->standby, false, memory_order_release);
            }
        } else if (others_running && !drive && rt->h.driver) {
            /* Another worker stands by: sleep until notified. */
            ek__parker_park(&w->parker, false, -1, 0);
        } else {
            if (ek__parker_park(&w->parker, true, -1, turn_bound(w))) count_turn(w);
            drive = false;
        }
        w->in_driver = false;
        if (has_work(w)) {
            /* Woken by I/O or a timer into our own queue. */
            /* Still a sleeper: take ourselves off. Not one: a notify took us
             * off and counted us as searching, which run() will undo. */
            w->is_searching = !unpark_self(w);
            notify_after_turn(w, false);
            break;
        }
        if (!is_sleeping(w)) {
            /* A notify took us off the sleepers: we are searching. */
            w->is_searching = true;
            break;
        }
        if (stuck) {
            /* Steal what waits behind a long poll (the worker loop searches). */
            w->is_searching = !unpark_self(w);
            break;
        }
        /* Still asleep (a standby check, a poke, a spurious wake): look again
         * whether another worker runs. seq_cst: as the parking decrement. */
        others_running = num_running(atomic_load(&idle->state)) > 0;
    }
    if (standby) atomic_store_explicit(&idle->standby, false, memory_order_release);
}

/* Tokio's self-tuning: check the global queue about every 200 us of polling,
 * given the recent average poll time (EWMA), between 2 and 127 polls. */
static void tune_global_interval(ek__worker *w, uint64_t now)
{
    if (w->rt->cfg.global_interval_fixed || w->maint_polls == 0) return;
    double avg = (double)(now - w->maint_ns) / w->maint_polls;
    w->poll_ewma_ns = w->poll_ewma_ns == 0 ? avg : 0.1 * avg + 0.9 * w->poll_ewma_ns;
    double n = 200000.0 / (w->poll_ewma_ns > 1 ? w->poll_ewma_ns : 1);
    w->global_interval = n < 2 ? 2 : n > 127 ? 127 : (unsigned)n;
}

static void maintenance(ek__worker *w)
{
    uint64_t now = ek__mono_ns();
    tune_global_interval(w, now);
    w->maint_ns = now;
    w->maint_polls = 0;
    bool yielded = flush_deferred(w);
    ek__driver *d = w->rt->h.driver;
    /* 0: the queue is full and nothing ran since the last turn (the worker
     * parked, turned the driver and comes back at the same tick) but tasks fed
     * from elsewhere: the events wait in the kernel for the next maintenance. */
    int max_events = turn_bound(w);
    if (max_events > 0 && ek__driver_try_lock(d)) {
        w->in_driver = true;
        ek__driver_turn(d, 0, max_events);
        w->in_driver = false;
        ek__driver_unlock(d);
        count_turn(w);
        notify_after_turn(w, yielded);
    }
}

static void *worker_main(void *arg)
{
    ek__worker *w = arg;
    ek_runtime *rt = w->rt;
    ek__cur_set((ek__tls){.rt = rt, .worker = w, .local = &w->local});
    w->local.owner = pthread_self(); /* set up by the thread that built the runtime */
    char name[32];
    snprintf(name, sizeof name, "%.10s-%u", rt->cfg.thread_name, w->index);
    ek__thread_name_self(name);
    ek__rt_hook(rt, EK__HOOK_START);
    while (!atomic_load_explicit(&rt->stopping, memory_order_acquire)) {
        if (w->tick % rt->cfg.event_interval == 0) maintenance(w);
        ek__task *t = next_task(w);
        if (!t) t = steal_work(w);
        if (t) {
            run(w, t);
            continue;
        }
        if (flush_deferred(w)) continue; /* yielded tasks are all that is left */
        park(w);
    }
    /* The tasks pinned to this worker are dropped here, on their thread (the
     * runtime is closed: no new ones can be pinned). */
    ek__local_shutdown(&w->local);
    ek__rt_hook(rt, EK__HOOK_STOP);
    ek__cur_set((ek__tls){0});
    return NULL;
}

int ek__mt_start(ek_runtime *rt)
{
    unsigned n = rt->nworkers;
    rt->workers = ek__calloc(n, sizeof(ek__worker));
    if (!rt->workers) return EK_ENOMEM;
    int rc = idle_init(rt);
    if (rc) return rc;
    for (unsigned i = 0; i < n; i++) {
        ek__worker *w = &rt->workers[i];
        ek__queue_init(&w->q);
        w->rt = rt;
        w->index = i;
        w->rng = 0x9E3779B97F4A7C15ULL * (i + 1);
        w->global_interval = rt->cfg.global_queue_interval;
        rc = ek__parker_init(&w->parker, rt->h.driver);
        if (rc) return rc;
        rc = ek__local_init(&w->local, rt);
        if (rc) {
            ek__parker_destroy(&w->parker);
            return rc;
        }
        w->inited = true;
    }
    for (unsigned i = 0; i < n; i++) {
        ek__worker *w = &rt->workers[i];
        char name[32];
        snprintf(name, sizeof name, "%.10s-%u", rt->cfg.thread_name, i);
        rc = ek__thread_start(&w->thread, worker_main, w, name);
        if (rc) return rc;
        w->started = true;
    }
    return EK_OK;
}

void ek__mt_stop(ek_runtime *rt)
{
    if (!rt->workers) return;
    atomic_store_explicit(&rt->stopping, true, memory_order_release);
    for (unsigned i = 0; i < rt->nworkers; i++) ek__parker_unpark(&rt->workers[i].parker);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        ek__worker *w = &rt->workers[i];
        if (w->started) pthread_join(w->thread, NULL);
        w->started = false;
    }
}

void ek__mt_drain(ek_runtime *rt)
{
    if (!rt->workers) return;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        ek__worker *w = &rt->workers[i];
        if (w->lifo) ek__task_drop_notification(w->lifo);
        w->lifo = NULL;
        for (ek__task *t = w->deferred_head, *next; t; t = next) {
            next = t->next;
            ek__task_drop_notification(t);
        }
        w->deferred_head = w->deferred_tail = NULL;
        ek__task *t;
        while ((t = ek__queue_pop(&w->q))) ek__task_drop_notification(t);
        if (w->inited) ek__local_drain(&w->local);
    }
}

void ek__mt_destroy(ek_runtime *rt)
{
    if (!rt->workers) return;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        if (!rt->workers[i].inited) continue;
        ek__parker_destroy(&rt->workers[i].parker);
    }
    ek__free(rt->idle.sleepers);
    ek__free(rt->workers);
    rt->workers = NULL;
}
