/*
 * test_abi.c - the C ABI driven through libffi, as a generic FFI host would.
 *
 * JNA, Ruby-FFI, Deno or LuaJIT never see ekiden.h's prototypes: they open the
 * shared library, look symbols up by name, describe each signature at run time
 * and make the call through a generic trampoline; callbacks are closures made at
 * run time. This test does exactly that with libffi. It is not linked against
 * libekiden: every call below goes through dlopen/dlsym and ffi_call, every
 * callback the runtime makes lands in an ffi_closure. The header is included
 * only for its constants (codes, flavours, the error table), which a binding
 * would copy.
 *
 * Usage: test_abi /path/to/libekiden.so (ctest passes the build's copy).
 */
#include <dlfcn.h>
#include <ffi.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "ekiden.h"

static const char *lib_path;
static void *lib;

/*
 * The call and closure helpers also run inside callbacks, on runtime threads,
 * where cmocka's assertions (a longjmp to the test thread) must not be used: a
 * broken helper invariant aborts instead, and a callback that sees something
 * wrong counts it in callback_errors, which the tests check.
 */
static atomic_int callback_errors;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "test_abi: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

/* ---- calls: a signature string, as a binding's declaration would be ---- */

/*
 * One character per type: 'v' void, 'i' int, 'u' unsigned, 'U' uint64_t,
 * 'z' size_t, 'p' pointer. The first character is the return type, the rest the
 * arguments: "i:pp" is int f(void *, void *).
 */
static ffi_type *type_of(char c)
{
    switch (c) {
    case 'v':
        return &ffi_type_void;
    case 'i':
        return &ffi_type_sint;
    case 'u':
        return &ffi_type_uint;
    case 'U':
        return &ffi_type_uint64;
    case 'z':
        return sizeof(size_t) == 8 ? &ffi_type_uint64 : &ffi_type_uint32;
    case 'p':
        return &ffi_type_pointer;
    }
    die("bad signature character", NULL);
    return NULL;
}

/* Parse "r:abc" into a cif. */
static void prep_cif(ffi_cif *cif, ffi_type **args, const char *sig)
{
    if (strlen(sig) < 2 || sig[1] != ':' || strlen(sig + 2) > 8) die("bad signature", sig);
    unsigned n = (unsigned)strlen(sig + 2);
    for (unsigned i = 0; i < n; i++) args[i] = type_of(sig[2 + i]);
    if (ffi_prep_cif(cif, FFI_DEFAULT_ABI, n, type_of(sig[0]), args) != FFI_OK)
        die("ffi_prep_cif failed", sig);
}

static void *sym(const char *name)
{
    void *fn = dlsym(lib, name);
    if (fn == NULL) die("symbol not exported by the library", name);
    return fn;
}

/* The result of a call, widened as libffi returns it. */
typedef union ret {
    ffi_arg u;  /* int, unsigned (integer returns fill a whole ffi_arg) */
    ffi_sarg s; /* int */
    uint64_t u64;
    void *p;
} ret;

/* Call `name` with signature `sig`; the variadic arguments are pointers to each
 * argument value (libffi's avalues), as in every generic FFI. */
static ret call(const char *name, const char *sig, ...)
{
    ffi_cif cif;
    ffi_type *args[8];
    void *values[8];
    prep_cif(&cif, args, sig);
    va_list ap;
    va_start(ap, sig);
    for (unsigned i = 0; i < cif.nargs; i++) values[i] = va_arg(ap, void *);
    va_end(ap);
    ret r;
    memset(&r, 0, sizeof r);
    ffi_call(&cif, FFI_FN(sym(name)), &r, values);
    return r;
}

/* Shorthands for the two common return kinds. */
#define CALL_INT(...) ((int)call(__VA_ARGS__).s)
#define CALL_PTR(...) (call(__VA_ARGS__).p)

/* ---- callbacks: closures made at run time ---- */

typedef struct closure {
    ffi_closure *cl;
    void *code; /* the executable address handed to C as a function pointer */
    ffi_cif cif;
    ffi_type *args[8];
} closure;

typedef void (*handler_fn)(ffi_cif *cif, void *ret, void **args, void *user);

static closure *closure_new(const char *sig, handler_fn handler, void *user)
{
    closure *c = calloc(1, sizeof *c);
    if (c == NULL) die("out of memory", NULL);
    c->cl = ffi_closure_alloc(sizeof(ffi_closure), &c->code);
    if (c->cl == NULL) die("ffi_closure_alloc failed", sig);
    prep_cif(&c->cif, c->args, sig);
    if (ffi_prep_closure_loc(c->cl, &c->cif, handler, user, c->code) != FFI_OK)
        die("ffi_prep_closure_loc failed", sig);
    return c;
}

static void closure_free(closure *c)
{
    ffi_closure_free(c->cl);
    free(c);
}

/* ---- a task written in the "host language" ---- */

/*
 * The task's state, seen by its closures. Polls and drops come from worker
 * threads while the test thread reads the counters, hence atomics.
 */
typedef struct host_task {
    atomic_int polls;
    atomic_int drops;
    atomic_int out_drops;
    int pend_first;    /* first poll: clone the waker, wake it, return EK_PENDING */
    int pend_forever;  /* every poll returns EK_PENDING without a wake */
    int pend_for_host; /* first poll: hand a waker to a host thread, EK_PENDING */
    _Atomic(void *) host_waker;
    int status; /* the final status: EK_OK or an error */
    void *result;
} host_task;

/* ek_poll_fn: int poll(void *state, ek_cx *cx, void **out) */
static void on_poll(ffi_cif *cif, void *r, void **args, void *user)
{
    (void)cif;
    (void)user;
    host_task *t = *(host_task **)args[0];
    void *cx = *(void **)args[1];
    void **out = *(void ***)args[2];
    int n = atomic_fetch_add(&t->polls, 1) + 1;
    int status;
    if (t->pend_forever) {
        status = EK_PENDING;
    } else if (t->pend_for_host && n == 1) {
        void *w = CALL_PTR("ek_cx_waker", "p:p", &cx);
        if (w == NULL) atomic_fetch_add(&callback_errors, 1);
        atomic_store(&t->host_waker, w);
        status = EK_PENDING;
    } else if (t->pend_first && n == 1) {
        /* As a host awaitable does: take a waker, hand it on, wake it later
         * (here at once, from inside the poll: the wake must not be lost). */
        void *w = CALL_PTR("ek_cx_waker", "p:p", &cx);
        void *w2 = CALL_PTR("ek_waker_clone", "p:p", &w);
        if (w == NULL || w2 == NULL) atomic_fetch_add(&callback_errors, 1);
        call("ek_waker_drop", "v:p", &w2);
        call("ek_waker_wake", "v:p", &w);
        status = EK_PENDING;
    } else {
        if (t->status == EK_OK) *out = t->result;
        status = t->status;
    }
    *(ffi_sarg *)r = status;
}

/* ek_drop_fn for the state: void drop(void *state) */
static void on_drop(ffi_cif *cif, void *r, void **args, void *user)
{
    (void)cif;
    (void)r;
    (void)user;
    host_task *t = *(host_task **)args[0];
    atomic_fetch_add(&t->drops, 1);
}

/* ek_drop_fn for a result nobody took: the result points at its task. */
static void on_out_drop(ffi_cif *cif, void *r, void **args, void *user)
{
    (void)cif;
    (void)r;
    (void)user;
    host_task *t = *(host_task **)args[0];
    atomic_fetch_add(&t->out_drops, 1);
}

static closure *poll_cl, *drop_cl, *out_drop_cl;

static void *rt_new_default(void)
{
    void *rt = NULL;
    void *builder = NULL;
    void **out = &rt;
    assert_int_equal(CALL_INT("ek_runtime_new", "i:pp", &builder, &out), EK_OK);
    assert_non_null(rt);
    return rt;
}

static void *rt_new_current_thread(void)
{
    void *b = NULL;
    void **bp = &b;
    assert_int_equal(CALL_INT("ek_builder_new", "i:p", &bp), EK_OK);
    int flavor = EK_FLAVOR_CURRENT_THREAD;
    assert_int_equal(CALL_INT("ek_builder_set_flavor", "i:pi", &b, &flavor), EK_OK);
    void *rt = NULL;
    void **out = &rt;
    assert_int_equal(CALL_INT("ek_runtime_new", "i:pp", &b, &out), EK_OK);
    call("ek_builder_free", "v:p", &b);
    return rt;
}

static void rt_free(void *rt)
{
    call("ek_runtime_free", "v:p", &rt);
}

/* ek_spawn(rt, poll, drop, state, out_drop, &join) with the closures above. */
static int spawn(void *rt, host_task *t, void **join)
{
    void *out_drop = out_drop_cl->code;
    return CALL_INT("ek_spawn", "i:pppppp", &rt, &poll_cl->code, &drop_cl->code, &t, &out_drop,
                    &join);
}

static int join_wait(void *join, void **out)
{
    return CALL_INT("ek_join_wait", "i:pp", &join, &out);
}

static void join_detach(void *join)
{
    call("ek_join_detach", "v:p", &join);
}

/* Wait (up to 10 s) until the task has finished. */
static void wait_finished(void *join)
{
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 10000; i++) {
        int r = CALL_INT("ek_join_is_finished", "i:p", &join);
        assert_true(r == 0 || r == 1);
        if (r == 1) return;
        nanosleep(&ms, NULL);
    }
    fail_msg("task did not finish within 10 s");
}

/* ---- tests ---- */

static void test_internal_symbols_are_not_exported(void **state)
{
    (void)state;
    /* The version script exports ek_* only and the core is built hidden: the
     * dynamic loader must not see internal ek__ names. */
    assert_null(dlsym(lib, "ek__malloc"));
    assert_null(dlsym(lib, "ek__free"));
    assert_null(dlsym(lib, "ek__panic"));
    assert_non_null(dlsym(lib, "ek_version"));
}

static void test_version_matches_header(void **state)
{
    (void)state;
    unsigned v = (unsigned)call("ek_version", "u:").u;
    assert_int_equal(v, EK_VERSION_HEX);
    const char *s = CALL_PTR("ek_version_string", "p:");
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", EK_VERSION_MAJOR, EK_VERSION_MINOR, EK_VERSION_PATCH);
    assert_string_equal(s, want);
}

static void test_error_table_names_and_messages(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *name, *msg;
    } table[] = {
#define ROW(name, value, msg) {value, #name, msg},
        EK_ERRNO_MAP(ROW)
#undef ROW
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        int code = table[i].code;
        assert_string_equal(CALL_PTR("ek_err_name", "p:i", &code), table[i].name);
        assert_string_equal(CALL_PTR("ek_strerror", "p:i", &code), table[i].msg);
    }
    /* Codes that are in no table: gaps, the runtime's range, positive, extremes. */
    int unknown[] = {-3, -4000, -4006, -4999, -99999, 2, 4001, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_string_equal(CALL_PTR("ek_strerror", "p:i", &unknown[i]), "unknown error");
        assert_string_equal(CALL_PTR("ek_err_name", "p:i", &unknown[i]), "UNKNOWN");
    }
    /* EK_OK and EK_PENDING have messages of their own. */
    int ok = EK_OK, pending = EK_PENDING;
    const char *m_ok = CALL_PTR("ek_strerror", "p:i", &ok);
    const char *m_pending = CALL_PTR("ek_strerror", "p:i", &pending);
    assert_non_null(m_ok);
    assert_non_null(m_pending);
    assert_string_not_equal(m_ok, "unknown error");
    assert_string_not_equal(m_pending, "unknown error");
    assert_non_null(CALL_PTR("ek_err_name", "p:i", &ok));
}

static void test_spawn_closure_task_then_join_wait(void **state)
{
    (void)state;
    void *rt = rt_new_default();
    int workers = CALL_INT("ek_runtime_worker_count", "i:p", &rt);
    assert_true(workers >= 1);

    static int answer = 42;
    host_task t = {.pend_first = 1, .status = EK_OK, .result = &answer};
    void *join = NULL;
    assert_int_equal(spawn(rt, &t, &join), EK_OK);
    assert_non_null(join);
    void *out = NULL;
    assert_int_equal(join_wait(join, &out), EK_OK);
    assert_ptr_equal(out, &answer);
    assert_int_equal(atomic_load(&t.polls), 2); /* pended once, woke itself */
    /* The result was handed over: waiting again reports the handle as spent. */
    assert_int_equal(join_wait(join, &out), EK_ECLOSED);
    assert_int_equal(CALL_INT("ek_join_is_finished", "i:p", &join), 1);
    join_detach(join);
    rt_free(rt);
    assert_int_equal(atomic_load(&t.drops), 1);
    assert_int_equal(atomic_load(&t.out_drops), 0); /* the result was taken */
}

static void test_task_error_reaches_join_wait(void **state)
{
    (void)state;
    void *rt = rt_new_default();
    host_task t = {.status = EK_ECONNRESET};
    void *join = NULL;
    assert_int_equal(spawn(rt, &t, &join), EK_OK);
    void *out = NULL;
    assert_int_equal(join_wait(join, &out), EK_ECONNRESET);
    join_detach(join);
    rt_free(rt);
    assert_int_equal(atomic_load(&t.polls), 1);
    assert_int_equal(atomic_load(&t.drops), 1);
    assert_int_equal(atomic_load(&t.out_drops), 0);
}

static void test_detached_result_goes_to_out_drop(void **state)
{
    (void)state;
    void *rt = rt_new_default();
    host_task t = {.status = EK_OK};
    t.result = &t;
    void *join = NULL;
    assert_int_equal(spawn(rt, &t, &join), EK_OK);
    wait_finished(join);
    join_detach(join); /* nobody took the result: out_drop gets it */
    rt_free(rt);
    assert_int_equal(atomic_load(&t.drops), 1);
    assert_int_equal(atomic_load(&t.out_drops), 1);
}

static void test_abort_pending_task_gives_ecanceled(void **state)
{
    (void)state;
    void *rt = rt_new_default();
    host_task t = {.pend_forever = 1};
    void *join = NULL;
    assert_int_equal(spawn(rt, &t, &join), EK_OK);
    assert_int_equal(CALL_INT("ek_join_abort", "i:p", &join), EK_OK);
    void *out = NULL;
    assert_int_equal(join_wait(join, &out), EK_ECANCELED);
    join_detach(join);
    rt_free(rt);
    assert_int_equal(atomic_load(&t.drops), 1);
    assert_int_equal(atomic_load(&t.out_drops), 0);
}

/* A thread of the host's own (a GUI loop, an interpreter thread), not the
 * runtime's, wakes the task through the ABI. */
static void *host_thread_wakes(void *arg)
{
    host_task *t = arg;
    struct timespec ms = {0, 1000000};
    void *w;
    while ((w = atomic_load(&t->host_waker)) == NULL) nanosleep(&ms, NULL);
    nanosleep(&ms, NULL);
    call("ek_waker_wake", "v:p", &w);
    return NULL;
}

static void test_waker_woken_from_host_thread(void **state)
{
    (void)state;
    void *rt = rt_new_default();
    static int answer = 5;
    host_task t = {.pend_for_host = 1, .status = EK_OK, .result = &answer};
    pthread_t host;
    assert_int_equal(pthread_create(&host, NULL, host_thread_wakes, &t), 0);
    void *join = NULL;
    assert_int_equal(spawn(rt, &t, &join), EK_OK);
    void *out = NULL;
    assert_int_equal(join_wait(join, &out), EK_OK);
    assert_ptr_equal(out, &answer);
    assert_int_equal(pthread_join(host, NULL), 0);
    assert_int_equal(atomic_load(&t.polls), 2);
    join_detach(join);
    rt_free(rt);
    assert_int_equal(atomic_load(&t.drops), 1);
}

/* ek_blocking_fn: int fn(void *arg, void **out), on a blocking-pool thread. */
static void on_blocking(ffi_cif *cif, void *r, void **args, void *user)
{
    (void)cif;
    (void)user;
    host_task *t = *(host_task **)args[0];
    void **out = *(void ***)args[1];
    atomic_fetch_add(&t->polls, 1);
    *out = t->result;
    *(ffi_sarg *)r = t->status;
}

static void test_spawn_blocking_closure(void **state)
{
    (void)state;
    void *rt = rt_new_default();
    closure *fn = closure_new("i:pp", on_blocking, NULL);
    static int answer = 11;
    host_task t = {.status = EK_OK, .result = &answer};
    void *tp = &t;
    void *join = NULL;
    void **joinp = &join;
    assert_int_equal(CALL_INT("ek_spawn_blocking", "i:pppppp", &rt, &fn->code, &drop_cl->code, &tp,
                              &out_drop_cl->code, &joinp),
                     EK_OK);
    void *out = NULL;
    assert_int_equal(join_wait(join, &out), EK_OK);
    assert_ptr_equal(out, &answer);
    join_detach(join);
    rt_free(rt);
    closure_free(fn);
    assert_int_equal(atomic_load(&t.polls), 1);
    assert_int_equal(atomic_load(&t.drops), 1);
    assert_int_equal(atomic_load(&t.out_drops), 0);
}

/* A host task that awaits a runtime future (a 5 ms sleep), as a binding's
 * awaitable does: poll it with the task's cx until it is ready. */
typedef struct sleeper {
    void *sleep; /* ek_future * */
    atomic_int polls, drops;
} sleeper;

static void on_sleeper_poll(ffi_cif *cif, void *r, void **args, void *user)
{
    (void)cif;
    (void)user;
    sleeper *s = *(sleeper **)args[0];
    void *cx = *(void **)args[1];
    void **out = *(void ***)args[2];
    atomic_fetch_add(&s->polls, 1);
    void *ignored = NULL;
    void **ip = &ignored;
    int rc = CALL_INT("ek_future_poll", "i:ppp", &s->sleep, &cx, &ip);
    if (rc == EK_OK) *out = s;
    *(ffi_sarg *)r = rc;
}

static void on_sleeper_drop(ffi_cif *cif, void *r, void **args, void *user)
{
    (void)cif;
    (void)r;
    (void)user;
    sleeper *s = *(sleeper **)args[0];
    call("ek_future_drop", "v:p", &s->sleep);
    atomic_fetch_add(&s->drops, 1);
}

static void test_host_task_awaits_runtime_sleep(void **state)
{
    (void)state;
    void *rt = rt_new_default();
    closure *poll = closure_new("i:ppp", on_sleeper_poll, NULL);
    closure *drop = closure_new("v:p", on_sleeper_drop, NULL);
    sleeper s = {0};
    uint64_t ms = 5;
    void **sp = &s.sleep;
    /* Read before the sleep is made: its deadline counts from its creation,
     * so a clock read after it may already be a millisecond or more later
     * (ASan on a loaded machine) and the sleep then seems 4 ms long. */
    uint64_t t0 = call("ek_now_ms", "U:p", &rt).u64;
    assert_int_equal(CALL_INT("ek_sleep", "i:pUp", &rt, &ms, &sp), EK_OK);

    void *f = NULL;
    void **fp = &f;
    void *state_p = &s;
    assert_int_equal(CALL_INT("ek_future_new", "i:pppp", &poll->code, &drop->code, &state_p, &fp),
                     EK_OK);
    void *out = NULL;
    void **outp = &out;
    assert_int_equal(CALL_INT("ek_block_on", "i:ppp", &rt, &f, &outp), EK_OK);
    assert_ptr_equal(out, &s);
    assert_true(call("ek_now_ms", "U:p", &rt).u64 - t0 >= 5);
    assert_true(atomic_load(&s.polls) >= 2); /* pended at least once */
    assert_int_equal(atomic_load(&s.drops), 1);
    rt_free(rt);
    closure_free(poll);
    closure_free(drop);
}

static void test_current_thread_runtime_driven_by_join_wait(void **state)
{
    (void)state;
    void *rt = rt_new_current_thread();
    assert_int_equal(CALL_INT("ek_runtime_worker_count", "i:p", &rt), 1);
    static int answer = 7;
    host_task t = {.pend_first = 1, .status = EK_OK, .result = &answer};
    void *join = NULL;
    assert_int_equal(spawn(rt, &t, &join), EK_OK);
    void *out = NULL;
    assert_int_equal(join_wait(join, &out), EK_OK);
    assert_ptr_equal(out, &answer);
    join_detach(join);
    rt_free(rt);
    assert_int_equal(atomic_load(&t.drops), 1);
}

static void test_block_on_closure_future(void **state)
{
    (void)state;
    void *rt = rt_new_default();
    static int answer = 9;
    host_task t = {.pend_first = 1, .status = EK_OK, .result = &answer};
    void *f = NULL;
    void **fp = &f;
    void *tp = &t;
    assert_int_equal(CALL_INT("ek_future_new", "i:pppp", &poll_cl->code, &drop_cl->code, &tp, &fp),
                     EK_OK);
    void *out = NULL;
    void **outp = &out;
    assert_int_equal(CALL_INT("ek_block_on", "i:ppp", &rt, &f, &outp), EK_OK);
    assert_ptr_equal(out, &answer);
    rt_free(rt);
    assert_int_equal(atomic_load(&t.polls), 2);
    assert_int_equal(atomic_load(&t.drops), 1);
}

static void test_spawn_after_shutdown_is_eclosed_and_drops(void **state)
{
    (void)state;
    void *rt = rt_new_default();
    uint64_t forever = UINT64_MAX;
    assert_int_equal(CALL_INT("ek_runtime_shutdown", "i:pU", &rt, &forever), EK_OK);
    host_task t = {.status = EK_OK};
    void *join = NULL;
    assert_int_equal(spawn(rt, &t, &join), EK_ECLOSED);
    assert_int_equal(atomic_load(&t.polls), 0);
    assert_int_equal(atomic_load(&t.drops), 1); /* spawn consumes state, even failing */
    rt_free(rt);
}

/* ---- a host state kept in the task's cell (ek_spawn_inline) ---- */

/* What the host copies into the cell: a pointer to its counters, a check word
 * and a step count the polls advance in place. */
typedef struct host_inline {
    host_task *t;
    uint64_t magic;
    int64_t steps;
} host_inline;
#define HOST_MAGIC 0x6b6964656eull

static void on_inline_poll(ffi_cif *cif, void *r, void **args, void *user)
{
    (void)cif;
    (void)user;
    host_inline *h = *(host_inline **)args[0];
    void *cx = *(void **)args[1];
    void **out = *(void ***)args[2];
    if ((uintptr_t)h % 16 != 0 || h->magic != HOST_MAGIC) atomic_fetch_add(&callback_errors, 1);
    atomic_fetch_add(&h->t->polls, 1);
    if (h->steps++ < 2) {
        *(ffi_sarg *)r = CALL_INT("ek_yield_now", "i:p", &cx);
        return;
    }
    *out = (void *)(intptr_t)h->steps;
    *(ffi_sarg *)r = EK_OK;
}

static void on_inline_drop(ffi_cif *cif, void *r, void **args, void *user)
{
    (void)cif;
    (void)r;
    host_inline *h = *(host_inline **)args[0];
    if (h->magic != HOST_MAGIC) atomic_fetch_add(&callback_errors, 1);
    /* user: where the drop records the address it got */
    atomic_store((_Atomic(void *) *)user, (void *)h);
    atomic_fetch_add(&h->t->drops, 1);
}

static void test_inline_state_through_ffi(void **state)
{
    (void)state;
    static _Atomic(void *) dropped_at;
    closure *ipoll = closure_new("i:ppp", on_inline_poll, NULL);
    closure *idrop = closure_new("v:p", on_inline_drop, (void *)&dropped_at);
    void *rt = rt_new_default();
    host_task t = {0};
    host_inline init = {.t = &t, .magic = HOST_MAGIC};
    size_t size = sizeof init;
    void *null = NULL;
    void *join = NULL;
    void **jp = &join;
    void *initp = &init;
    assert_int_equal(CALL_INT("ek_spawn_inline", "i:ppppzpp", &rt, &ipoll->code, &idrop->code,
                              &initp, &size, &null, &jp),
                     EK_OK);
    init.steps = 100; /* the task has its own copy */
    void *out = NULL;
    assert_int_equal(join_wait(join, &out), EK_OK);
    assert_int_equal((intptr_t)out, 3);
    join_detach(join);
    assert_int_equal(atomic_load(&t.polls), 3);
    assert_int_equal(atomic_load(&t.drops), 1);
    assert_true(atomic_load(&dropped_at) != (void *)&init); /* dropped in the cell */
    /* Too large: EK_EINVAL, and the drop ran on the host's own bytes. */
    size_t too_big = EK_SPAWN_INLINE_MAX + 1;
    unsigned char big[EK_SPAWN_INLINE_MAX + 1];
    memcpy(big, &init, sizeof init);
    void *bigp = big;
    join = (void *)&t;
    assert_int_equal(CALL_INT("ek_spawn_inline", "i:ppppzpp", &rt, &ipoll->code, &idrop->code,
                              &bigp, &too_big, &null, &jp),
                     EK_EINVAL);
    assert_null(join);
    assert_int_equal(atomic_load(&t.drops), 2);
    assert_ptr_equal(atomic_load(&dropped_at), big);
    rt_free(rt);
    closure_free(ipoll);
    closure_free(idrop);
}

static void test_null_and_wrong_handles_give_einval(void **state)
{
    (void)state;
    void *null = NULL;
    void **rtp = NULL;
    int zero = 0;
    uint64_t forever = UINT64_MAX;

    assert_int_equal(CALL_INT("ek_runtime_new", "i:pp", &null, &rtp), EK_EINVAL);
    assert_int_equal(CALL_INT("ek_runtime_shutdown", "i:pU", &null, &forever), EK_EINVAL);
    assert_int_equal(CALL_INT("ek_runtime_worker_count", "i:p", &null), EK_EINVAL);
    call("ek_runtime_free", "v:p", &null); /* ignored */

    assert_int_equal(CALL_INT("ek_builder_new", "i:p", &null), EK_EINVAL);
    assert_int_equal(CALL_INT("ek_builder_set_flavor", "i:pi", &null, &zero), EK_EINVAL);
    call("ek_builder_free", "v:p", &null); /* ignored */

    void *b = NULL;
    void **bp = &b;
    assert_int_equal(CALL_INT("ek_builder_new", "i:p", &bp), EK_OK);
    int bad_flavor = 7;
    unsigned no_workers = 0;
    assert_int_equal(CALL_INT("ek_builder_set_flavor", "i:pi", &b, &bad_flavor), EK_EINVAL);
    assert_int_equal(CALL_INT("ek_builder_set_worker_threads", "i:pu", &b, &no_workers), EK_EINVAL);
    /* A builder handed where a runtime is expected: the type tag catches it. */
    assert_int_equal(CALL_INT("ek_runtime_worker_count", "i:p", &b), EK_EINVAL);

    /* Spawning on a NULL or wrong handle fails, and still consumes the state. */
    host_task t = {.status = EK_OK};
    void *join = NULL;
    assert_int_equal(spawn(NULL, &t, &join), EK_EINVAL);
    assert_int_equal(atomic_load(&t.drops), 1);
    assert_int_equal(spawn(b, &t, &join), EK_EINVAL);
    assert_int_equal(atomic_load(&t.drops), 2);
    assert_int_equal(atomic_load(&t.polls), 0);
    assert_int_equal(atomic_load(&t.out_drops), 0);
    call("ek_builder_free", "v:p", &b);

    void *out = NULL;
    assert_int_equal(join_wait(NULL, &out), EK_EINVAL);
    assert_int_equal(CALL_INT("ek_join_abort", "i:p", &null), EK_EINVAL);
    assert_int_equal(CALL_INT("ek_join_is_finished", "i:p", &null), EK_EINVAL);
    call("ek_join_detach", "v:p", &null); /* ignored */

    /* A future without a poll function: refused, and its state is dropped. */
    void *f = NULL;
    void **fp = &f;
    void *tp = &t;
    assert_int_equal(CALL_INT("ek_future_new", "i:pppp", &null, &drop_cl->code, &tp, &fp),
                     EK_EINVAL);
    assert_int_equal(atomic_load(&t.drops), 3);
    void **outp = &out;
    assert_int_equal(CALL_INT("ek_block_on", "i:ppp", &null, &null, &outp), EK_EINVAL);

    /* Waker functions ignore NULL; ek_cx_waker(NULL) is NULL. */
    assert_null(CALL_PTR("ek_cx_waker", "p:p", &null));
    call("ek_waker_wake", "v:p", &null);
    call("ek_waker_drop", "v:p", &null);

    /* The allocator must be given whole or not at all (the pointer given is
     * never called: the call fails first). */
    assert_int_equal(CALL_INT("ek_set_allocator", "i:pppp", &poll_cl->code, &null, &null, &null),
                     EK_EINVAL);
}

/* ---- the allocator hook, itself made of closures ---- */

static atomic_long alloc_live, alloc_calls;

static void on_malloc(ffi_cif *cif, void *r, void **args, void *user)
{
    (void)cif;
    (void)user;
    void *p = malloc(*(size_t *)args[0]);
    if (p) atomic_fetch_add(&alloc_live, 1);
    atomic_fetch_add(&alloc_calls, 1);
    *(void **)r = p;
}

static void on_calloc(ffi_cif *cif, void *r, void **args, void *user)
{
    (void)cif;
    (void)user;
    void *p = calloc(*(size_t *)args[0], *(size_t *)args[1]);
    if (p) atomic_fetch_add(&alloc_live, 1);
    atomic_fetch_add(&alloc_calls, 1);
    *(void **)r = p;
}

static void on_realloc(ffi_cif *cif, void *r, void **args, void *user)
{
    (void)cif;
    (void)user;
    void *old = *(void **)args[0];
    void *p = realloc(old, *(size_t *)args[1]);
    if (p && old == NULL) atomic_fetch_add(&alloc_live, 1);
    atomic_fetch_add(&alloc_calls, 1);
    *(void **)r = p;
}

static void on_free(ffi_cif *cif, void *r, void **args, void *user)
{
    (void)cif;
    (void)r;
    (void)user;
    void *p = *(void **)args[0];
    if (p) atomic_fetch_sub(&alloc_live, 1);
    free(p);
}

static void test_allocator_hook_sees_every_allocation(void **state)
{
    (void)state;
    closure *m = closure_new("p:z", on_malloc, NULL);
    closure *re = closure_new("p:pz", on_realloc, NULL);
    closure *c = closure_new("p:zz", on_calloc, NULL);
    closure *fr = closure_new("v:p", on_free, NULL);
    assert_int_equal(
        CALL_INT("ek_set_allocator", "i:pppp", &m->code, &re->code, &c->code, &fr->code), EK_OK);

    void *rt = rt_new_default();
    host_task t = {.pend_first = 1, .status = EK_OK, .result = &t};
    void *join = NULL;
    assert_int_equal(spawn(rt, &t, &join), EK_OK);
    void *out = NULL;
    assert_int_equal(join_wait(join, &out), EK_OK);
    join_detach(join);
    rt_free(rt);
    assert_true(atomic_load(&alloc_calls) > 0);
    assert_int_equal(atomic_load(&alloc_live), 0); /* all of it returned */

    void *null = NULL;
    assert_int_equal(CALL_INT("ek_set_allocator", "i:pppp", &null, &null, &null, &null), EK_OK);
    closure_free(m);
    closure_free(re);
    closure_free(c);
    closure_free(fr);
}

/* ---- lifetime: every resource freed in every order against the runtime ---- */

enum { A_TCP_LISTENER, A_UDP, A_UNIX_PAIR, A_SLEEP, A_INTERVAL, A_JOIN, A_COUNT };
enum { AO_FREE_FIRST, AO_SHUTDOWN_FREE, AO_SHUTDOWN_RTFREE_FREE, AO_RTFREE_FREE, AO_COUNT };

typedef struct abi_res {
    void *h, *h2;
    host_task t;
} abi_res;

static void abi_make(void *rt, int kind, abi_res *r)
{
    void **out = &r->h;
    switch (kind) {
    case A_TCP_LISTENER: {
        const char *addr = "127.0.0.1:0";
        assert_int_equal(CALL_INT("ek_tcp_listen", "i:ppp", &rt, &addr, &out), EK_OK);
        break;
    }
    case A_UDP: {
        void *a = NULL;
        void **ap = &a;
        const char *text = "127.0.0.1:0";
        unsigned flags = 0;
        assert_int_equal(CALL_INT("ek_sockaddr_parse", "i:pp", &text, &ap), EK_OK);
        assert_int_equal(CALL_INT("ek_udp_bind", "i:ppup", &rt, &a, &flags, &out), EK_OK);
        call("ek_sockaddr_free", "v:p", &a);
        break;
    }
    case A_UNIX_PAIR: {
        void **out2 = &r->h2;
        assert_int_equal(CALL_INT("ek_unix_pair", "i:ppp", &rt, &out, &out2), EK_OK);
        break;
    }
    case A_SLEEP: {
        uint64_t ms = 100000;
        assert_int_equal(CALL_INT("ek_sleep", "i:pUp", &rt, &ms, &out), EK_OK);
        break;
    }
    case A_INTERVAL: {
        uint64_t ms = 100000;
        int policy = EK_MISSED_TICK_BURST;
        assert_int_equal(CALL_INT("ek_interval_new", "i:pUip", &rt, &ms, &policy, &out), EK_OK);
        break;
    }
    case A_JOIN:
        r->t.pend_forever = 1;
        assert_int_equal(spawn(rt, &r->t, &r->h), EK_OK);
        break;
    }
    assert_non_null(r->h);
}

static void abi_release(int kind, abi_res *r, int after_shutdown)
{
    switch (kind) {
    case A_TCP_LISTENER:
        call("ek_tcp_listener_free", "v:p", &r->h);
        break;
    case A_UDP:
        call("ek_udp_free", "v:p", &r->h);
        break;
    case A_UNIX_PAIR:
        call("ek_unix_free", "v:p", &r->h2);
        call("ek_unix_free", "v:p", &r->h);
        break;
    case A_SLEEP:
        call("ek_future_drop", "v:p", &r->h);
        break;
    case A_INTERVAL:
        call("ek_interval_free", "v:p", &r->h);
        break;
    case A_JOIN:
        /* The join handle still gives the task's final result. */
        if (after_shutdown) assert_int_equal(join_wait(r->h, NULL), EK_ECANCELED);
        join_detach(r->h);
        /* Dropped once by shutdown (detached first: by the free that follows). */
        assert_int_equal(atomic_load(&r->t.drops), after_shutdown ? 1 : 0);
        break;
    }
}

static void test_every_resource_freed_in_every_order(void **state)
{
    (void)state;
    closure *m = closure_new("p:z", on_malloc, NULL);
    closure *re = closure_new("p:pz", on_realloc, NULL);
    closure *c = closure_new("p:zz", on_calloc, NULL);
    closure *fr = closure_new("v:p", on_free, NULL);
    assert_int_equal(
        CALL_INT("ek_set_allocator", "i:pppp", &m->code, &re->code, &c->code, &fr->code), EK_OK);
    uint64_t forever = UINT64_MAX;
    for (int flavor = 0; flavor < 2; flavor++)
        for (int kind = 0; kind < A_COUNT; kind++)
            for (int order = 0; order < AO_COUNT; order++) {
                void *rt = flavor ? rt_new_current_thread() : rt_new_default();
                abi_res r;
                memset(&r, 0, sizeof r);
                abi_make(rt, kind, &r);
                switch (order) {
                case AO_FREE_FIRST:
                    abi_release(kind, &r, 0);
                    rt_free(rt);
                    break;
                case AO_SHUTDOWN_FREE:
                    assert_int_equal(CALL_INT("ek_runtime_shutdown", "i:pU", &rt, &forever), EK_OK);
                    abi_release(kind, &r, 1);
                    rt_free(rt);
                    break;
                case AO_SHUTDOWN_RTFREE_FREE:
                    assert_int_equal(CALL_INT("ek_runtime_shutdown", "i:pU", &rt, &forever), EK_OK);
                    rt_free(rt);
                    abi_release(kind, &r, 1);
                    break;
                case AO_RTFREE_FREE:
                    rt_free(rt);
                    abi_release(kind, &r, 1);
                    break;
                }
                if (atomic_load(&alloc_live) != 0)
                    fail_msg("flavor %d, resource %d, order %d: %ld allocations left", flavor, kind,
                             order, atomic_load(&alloc_live));
            }
    void *null = NULL;
    assert_int_equal(CALL_INT("ek_set_allocator", "i:pppp", &null, &null, &null, &null), EK_OK);
    closure_free(m);
    closure_free(re);
    closure_free(c);
    closure_free(fr);
}

static void test_metrics_through_ffi(void **state)
{
    (void)state;
    void *rt = rt_new_default();
    host_task t = {.status = EK_OK};
    void *join = NULL;
    assert_int_equal(spawn(rt, &t, &join), EK_OK);
    void *out = NULL;
    assert_int_equal(join_wait(join, &out), EK_OK);
    join_detach(join);

    uint64_t values[EK_METRIC_COUNT + 4];
    memset(values, 0xff, sizeof values);
    void *vp = values;
    size_t n = EK_METRIC_COUNT;
    assert_int_equal(CALL_INT("ek_runtime_metrics", "i:ppz", &rt, &vp, &n), EK_METRIC_COUNT);
    assert_true(values[EK_METRIC_TASKS_SPAWNED] >= 1);
    assert_true(values[EK_METRIC_WORKERS] >= 1);
    int key = EK_METRIC_POLLS;
    assert_string_equal(CALL_PTR("ek_metric_name", "p:i", &key), "POLLS");
    key = EK_METRIC_COUNT + 100;
    assert_null(CALL_PTR("ek_metric_name", "p:i", &key));
    rt_free(rt);
}

/* After each test: no callback saw anything wrong. */
static int check_callbacks(void **state)
{
    (void)state;
    int n = atomic_exchange(&callback_errors, 0);
    if (n != 0) fprintf(stderr, "%d errors seen inside callbacks\n", n);
    return n == 0 ? 0 : -1;
}

static int group_setup(void **state)
{
    (void)state;
    lib = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "dlopen %s: %s\n", lib_path, dlerror());
        return -1;
    }
    poll_cl = closure_new("i:ppp", on_poll, NULL);
    drop_cl = closure_new("v:p", on_drop, NULL);
    out_drop_cl = closure_new("v:p", on_out_drop, NULL);
    return 0;
}

/* A host builds its error constants from the library it loaded, never from
 * copied numbers: ek_err_count, ek_err_code(i), ek_err_name(code). They must
 * agree with the header this test was compiled with. */
static void test_error_codes_enumerated_by_the_library(void **state)
{
    (void)state;
    int n = CALL_INT("ek_err_count", "i:");
    static const struct {
        int code;
        const char *name;
    } table[] = {
#define ROW(name, value, msg) {value, #name},
        EK_ERRNO_MAP(ROW)
#undef ROW
    };
    size_t rows = sizeof table / sizeof table[0];
    assert_int_equal(n, (int)rows + 2);
    for (int i = 0; i < n; i++) {
        int code = CALL_INT("ek_err_code", "i:i", &i);
        const char *name = CALL_PTR("ek_err_name", "p:i", &code);
        if (i == 0) assert_string_equal(name, "OK");
        if (i == 1) assert_string_equal(name, "PENDING");
        if (i >= 2) {
            assert_string_equal(name, table[i - 2].name);
            assert_int_equal(code, table[i - 2].code);
        }
    }
    int bad[] = {-1, n, INT_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(CALL_INT("ek_err_code", "i:i", &bad[i]), EK_EINVAL);
}

/* A task group of host tasks: the first failure cancels the others (which only
 * cancellation ends), the blocking wait reports it; the group is freed before
 * the runtime, after its shutdown, and after ek_runtime_free. */
static void test_group_of_host_tasks_through_ffi(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        void *rt = rt_new_default();
        void *g = NULL, **gp = &g;
        unsigned flags = EK_GROUP_CANCEL_ON_ERROR;
        assert_int_equal(CALL_INT("ek_group_new", "i:pup", &rt, &flags, &gp), EK_OK);
        host_task sleepers[3] = {{.pend_forever = 1}, {.pend_forever = 1}, {.pend_forever = 1}};
        host_task bad = {.status = EK_EPIPE};
        void *no_join = NULL;
        for (int i = 0; i < 3; i++) {
            host_task *t = &sleepers[i];
            void *out_drop = out_drop_cl->code;
            assert_int_equal(CALL_INT("ek_group_spawn", "i:pppppp", &g, &poll_cl->code,
                                      &drop_cl->code, &t, &out_drop, &no_join),
                             EK_OK);
        }
        host_task *bp = &bad;
        void *out_drop = out_drop_cl->code;
        if (round == 0) {
            assert_int_equal(CALL_INT("ek_group_spawn", "i:pppppp", &g, &poll_cl->code,
                                      &drop_cl->code, &bp, &out_drop, &no_join),
                             EK_OK);
            assert_int_equal(CALL_INT("ek_group_blocking_wait", "i:p", &g), EK_EPIPE);
            assert_int_equal((int64_t)call("ek_group_len", "U:p", &g).u64, 0);
            call("ek_group_free", "v:p", &g);
            rt_free(rt);
        } else {
            if (round == 1)
                assert_int_equal(
                    CALL_INT("ek_runtime_shutdown", "i:pU", &rt, &(uint64_t){UINT64_MAX}), EK_OK);
            else
                rt_free(rt); /* the group keeps what it needs of the runtime */
            assert_int_equal(CALL_INT("ek_group_blocking_wait", "i:p", &g), EK_ECANCELED);
            /* closed: the spawn is refused and the state dropped */
            assert_int_equal(CALL_INT("ek_group_spawn", "i:pppppp", &g, &poll_cl->code,
                                      &drop_cl->code, &bp, &out_drop, &no_join),
                             EK_ECLOSED);
            call("ek_group_free", "v:p", &g);
            if (round == 1) rt_free(rt);
        }
        for (int i = 0; i < 3; i++) assert_int_equal(atomic_load(&sleepers[i].drops), 1);
        assert_int_equal(atomic_load(&bad.drops), 1);
        assert_int_equal(atomic_load(&bad.polls), round == 0 ? 1 : 0);
    }
}

static int group_teardown(void **state)
{
    (void)state;
    closure_free(poll_cl);
    closure_free(drop_cl);
    closure_free(out_drop_cl);
    return dlclose(lib) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    lib_path = argc > 1 ? argv[1] : getenv("EK_LIBEKIDEN");
    if (lib_path == NULL) {
        fprintf(stderr, "usage: %s /path/to/libekiden.so\n", argv[0]);
        return 2;
    }
#define T(f) cmocka_unit_test_teardown(f, check_callbacks)
    const struct CMUnitTest tests[] = {
        T(test_internal_symbols_are_not_exported),
        T(test_version_matches_header),
        T(test_error_table_names_and_messages),
        T(test_null_and_wrong_handles_give_einval),
        T(test_spawn_closure_task_then_join_wait),
        T(test_task_error_reaches_join_wait),
        T(test_detached_result_goes_to_out_drop),
        T(test_abort_pending_task_gives_ecanceled),
        T(test_waker_woken_from_host_thread),
        T(test_spawn_blocking_closure),
        T(test_host_task_awaits_runtime_sleep),
        T(test_current_thread_runtime_driven_by_join_wait),
        T(test_block_on_closure_future),
        T(test_spawn_after_shutdown_is_eclosed_and_drops),
        T(test_inline_state_through_ffi),
        T(test_allocator_hook_sees_every_allocation),
        T(test_every_resource_freed_in_every_order),
        T(test_metrics_through_ffi),
        T(test_error_codes_enumerated_by_the_library),
        T(test_group_of_host_tasks_through_ffi),
    };
#undef T
    return cmocka_run_group_tests_name("abi_through_libffi", tests, group_setup, group_teardown);
}
