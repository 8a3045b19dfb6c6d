/*
 * context.h - the calling thread's role in the runtimes: which runtime it runs
 * tasks of (a worker, a thread inside ek_block_on, a blocking-pool thread) and
 * what it holds there. Read by code that must know whether the thread may block
 * or must not re-enter a runtime (sync's blocking waits, ek_join_wait), without
 * the scheduler's internals (runtime.h). Each thread reads and writes only its
 * own ek__cur.
 */
#ifndef EK_CORE_SCHED_CONTEXT_H
#define EK_CORE_SCHED_CONTEXT_H

#include "../common.h"

typedef struct ek__worker ek__worker;
typedef struct ek__ct_core ek__ct_core;
typedef struct ek__local ek__local;

/* The calling thread's role. */
typedef struct ek__tls {
    ek_runtime *rt;
    ek__worker *worker; /* multi-thread worker */
    ek__ct_core *core;  /* current-thread core held by this thread */
    ek__local *local;   /* local context active on this thread */
    bool blocking;      /* blocking-pool thread */
    bool in_block_on;
} ek__tls;
extern __attribute__((tls_model("initial-exec"))) _Thread_local ek__tls ek__cur;

#endif
