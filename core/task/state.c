/*
 * state.c - transitions of the task state word (see task.h for the bits).
 *
 * Every transition is a CAS loop over the whole word. Orders: transitions that
 * hand the future (or the result) from one thread to another use acq_rel so the
 * writes made under the previous owner are visible to the next; pure reference
 * increments are relaxed (a new reference is made from an existing one, which
 * already guarantees the object is alive), decrements are acq_rel so the thread that frees sees
 * every other owner's writes.
 */
#include "task.h"

static inline uint64_t st_load(ek__task *t)
{
    return atomic_load_explicit(&t->state, memory_order_acquire);
}
static inline bool st_cas(ek__task *t, uint64_t *cur, uint64_t next)
{
    return atomic_compare_exchange_weak_explicit(&t->state, cur, next, memory_order_acq_rel,
                                                 memory_order_acquire);
}

ek__run_result ek__state_to_running(ek__task *t)
{
    uint64_t cur = st_load(t);
    for (;;) {
        EK__ASSERT(cur & EK__ST_NOTIFIED);
        uint64_t next = cur;
        ek__run_result res;
        if (cur & (EK__ST_RUNNING | EK__ST_COMPLETE)) {
            /* Someone else runs it (or it is done): drop our notification ref. */
            EK__ASSERT((cur & EK__REF_MASK) >= EK__REF_ONE);
            /* NOTIFIED stays: a running poller must still resubmit. */
            next -= EK__REF_ONE;
            res = EK__RUN_FAILED;
            if (st_cas(t, &cur, next)) {
                if ((next & EK__REF_MASK) == 0) ek__task_dealloc(t);
                return res;
            }
            continue;
        }
        next |= EK__ST_RUNNING;
        next &= ~(uint64_t)EK__ST_NOTIFIED;
        res = (cur & EK__ST_CANCELLED) ? EK__RUN_CANCELLED : EK__RUN_OK;
        if (st_cas(t, &cur, next)) return res;
    }
}

ek__idle_result ek__state_to_idle(ek__task *t)
{
    uint64_t cur = st_load(t);
    for (;;) {
        EK__ASSERT(cur & EK__ST_RUNNING);
        if (cur & EK__ST_CANCELLED) return EK__IDLE_CANCELLED;
        uint64_t next = cur & ~(uint64_t)EK__ST_RUNNING;
        ek__idle_result res;
        if (next & EK__ST_NOTIFIED) {
            /* Woken while running: our notification ref becomes the new one. */
            res = EK__IDLE_NOTIFIED;
        } else {
            next -= EK__REF_ONE;
            res = (next & EK__REF_MASK) == 0 ? EK__IDLE_DEALLOC : EK__IDLE_OK;
        }
        if (st_cas(t, &cur, next)) return res;
    }
}

uint64_t ek__state_to_complete(ek__task *t)
{
    /* RUNNING -> COMPLETE in one step; release publishes the result stage. */
    uint64_t prev = atomic_fetch_xor_explicit(&t->state, EK__ST_RUNNING | EK__ST_COMPLETE,
                                              memory_order_acq_rel);
    EK__ASSERT(prev & EK__ST_RUNNING);
    EK__ASSERT(!(prev & EK__ST_COMPLETE));
    return prev ^ (EK__ST_RUNNING | EK__ST_COMPLETE);
}

bool ek__state_to_notified_by_ref(ek__task *t)
{
    uint64_t cur = st_load(t);
    for (;;) {
        if (cur & (EK__ST_COMPLETE | EK__ST_NOTIFIED)) return false;
        uint64_t next = cur | EK__ST_NOTIFIED;
        bool submit = !(cur & EK__ST_RUNNING);
        if (submit) next += EK__REF_ONE;
        if (st_cas(t, &cur, next)) return submit;
    }
}

bool ek__state_to_notified_by_val(ek__task *t, bool *dealloc)
{
    uint64_t cur = st_load(t);
    *dealloc = false;
    for (;;) {
        uint64_t next = cur;
        bool submit = false;
        if (cur & EK__ST_RUNNING) {
            /* The poller resubmits; our ref is no longer needed. */
            next |= EK__ST_NOTIFIED;
            next -= EK__REF_ONE;
        } else if (cur & (EK__ST_COMPLETE | EK__ST_NOTIFIED)) {
            next -= EK__REF_ONE;
        } else {
            next |= EK__ST_NOTIFIED; /* our ref becomes the notification's */
            submit = true;
        }
        if (st_cas(t, &cur, next)) {
            *dealloc = !submit && (next & EK__REF_MASK) == 0;
            return submit;
        }
    }
}

bool ek__state_to_notified_and_cancel(ek__task *t)
{
    uint64_t cur = st_load(t);
    for (;;) {
        if (cur & (EK__ST_CANCELLED | EK__ST_COMPLETE)) return false;
        uint64_t next = cur | EK__ST_CANCELLED;
        bool submit = false;
        if (cur & EK__ST_RUNNING) {
            next |= EK__ST_NOTIFIED;
        } else if (!(cur & EK__ST_NOTIFIED)) {
            next |= EK__ST_NOTIFIED;
            next += EK__REF_ONE;
            submit = true;
        }
        if (st_cas(t, &cur, next)) return submit;
    }
}

bool ek__state_to_shutdown(ek__task *t)
{
    uint64_t cur = st_load(t);
    for (;;) {
        uint64_t next = cur | EK__ST_CANCELLED;
        bool own = !(cur & (EK__ST_RUNNING | EK__ST_COMPLETE));
        if (own) next |= EK__ST_RUNNING;
        if (st_cas(t, &cur, next)) return own;
    }
}

void ek__task_ref_inc(ek__task *t)
{
    atomic_fetch_add_explicit(&t->state, EK__REF_ONE, memory_order_relaxed);
}

bool ek__task_ref_dec(ek__task *t, unsigned n)
{
    /* acq_rel rather than release + an acquire fence: the same guarantee for the
     * thread that frees, and TSan understands it. */
    uint64_t prev =
        atomic_fetch_sub_explicit(&t->state, (uint64_t)n * EK__REF_ONE, memory_order_acq_rel);
    EK__ASSERT((prev & EK__REF_MASK) >= (uint64_t)n * EK__REF_ONE);
    return (prev & EK__REF_MASK) == (uint64_t)n * EK__REF_ONE;
}
