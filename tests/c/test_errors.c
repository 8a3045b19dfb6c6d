/*
 * test_errors.c - the error paths of every core public function (ekiden.h minus
 * time, net and sync): NULL, wrong-type handles (another object cast through
 * void *), closed runtimes, calls from the wrong thread; the error table; the
 * version; the allocator hook's argument check. Every call must return the
 * documented code and never crash; consumed state is dropped exactly once.
 */
#include "support.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ---- */

static int ready_job(void *arg, void **out)
{
    *out = arg;
    return EK_OK;
}

/* A wrong-type handle: a builder passed where something else is expected. */
static ek_builder *a_builder(void)
{
    ek_builder *b = NULL;
    assert_int_equal(ek_builder_new(&b), EK_OK);
    return b;
}

/* Run fn(arg, cx) inside a task of rt, wait for it from this thread, return
 * what fn returned. */
typedef int (*in_task_fn)(void *arg, ek_cx *cx);
typedef struct {
    in_task_fn fn;
    void *arg;
    int rc;
} in_task;

static int in_task_poll(void *s, ek_cx *cx, void **out)
{
    in_task *it = s;
    it->rc = it->fn(it->arg, cx);
    *out = NULL;
    return EK_OK;
}

static int run_in_task(ek_runtime *rt, in_task_fn fn, void *arg)
{
    in_task it = {fn, arg, 12345};
    void *out = (void *)1;
    assert_int_equal(ekt_spawn_join(rt, in_task_poll, &it, &out), EK_OK);
    assert_null(out);
    return it.rc;
}

/* The same, inside a blocking job. */
typedef int (*in_job_fn)(void *arg);
typedef struct {
    in_job_fn fn;
    void *arg;
    int rc;
} in_job;

static int in_job_run(void *a, void **out)
{
    in_job *ij = a;
    ij->rc = ij->fn(ij->arg);
    *out = NULL;
    return EK_OK;
}

static int run_in_blocking_job(ek_runtime *rt, in_job_fn fn, void *arg)
{
    in_job ij = {fn, arg, 12345};
    ek_join *j = NULL;
    assert_int_equal(ek_spawn_blocking(rt, in_job_run, NULL, &ij, NULL, &j), EK_OK);
    assert_int_equal(ek_join_wait(j, NULL), EK_OK);
    ek_join_detach(j);
    return ij.rc;
}

static const int flavors[2] = {EK_FLAVOR_MULTI_THREAD, EK_FLAVOR_CURRENT_THREAD};

/* ---- version and error table ---- */

static void test_version_matches_header_macros(void **state)
{
    (void)state;
    assert_int_equal(ek_version(), EK_VERSION_HEX);
    assert_int_equal(EK_VERSION_HEX,
                     (EK_VERSION_MAJOR << 16) | (EK_VERSION_MINOR << 8) | EK_VERSION_PATCH);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", EK_VERSION_MAJOR, EK_VERSION_MINOR, EK_VERSION_PATCH);
    assert_non_null(ek_version_string());
    assert_string_equal(ek_version_string(), want);
    assert_ptr_equal(ek_version_string(), ek_version_string()); /* static storage */
}

static void test_strerror_and_err_name_match_the_table_for_every_code(void **state)
{
    (void)state;
    int n = 0;
#define CHECK(name, value, msg)                                                                    \
    assert_string_equal(ek_strerror(EK_##name), msg);                                              \
    assert_string_equal(ek_err_name(EK_##name), #name);                                            \
    n++;
    EK_ERRNO_MAP(CHECK)
#undef CHECK
    assert_true(n >= 50);
}

/* The OS codes, written out by hand against <errno.h> (not generated from the
 * table, so a wrong number in EK_ERRNO_MAP fails here): each is -errno, and the
 * table has exactly these below -4000's boundary. */
static void test_os_error_codes_are_the_negated_errno_values(void **state)
{
    (void)state;
    static const struct {
        int ek, os;
        const char *name;
    } os_codes[] = {
        {EK_EPERM, EPERM, "EPERM"},
        {EK_ENOENT, ENOENT, "ENOENT"},
        {EK_EINTR, EINTR, "EINTR"},
        {EK_EIO, EIO, "EIO"},
        {EK_EBADF, EBADF, "EBADF"},
        {EK_EAGAIN, EAGAIN, "EAGAIN"},
        {EK_ENOMEM, ENOMEM, "ENOMEM"},
        {EK_EACCES, EACCES, "EACCES"},
        {EK_EFAULT, EFAULT, "EFAULT"},
        {EK_EBUSY, EBUSY, "EBUSY"},
        {EK_EEXIST, EEXIST, "EEXIST"},
        {EK_EINVAL, EINVAL, "EINVAL"},
        {EK_ENFILE, ENFILE, "ENFILE"},
        {EK_EMFILE, EMFILE, "EMFILE"},
        {EK_EPIPE, EPIPE, "EPIPE"},
        {EK_ERANGE, ERANGE, "ERANGE"},
        {EK_EDEADLK, EDEADLK, "EDEADLK"},
        {EK_ENAMETOOLONG, ENAMETOOLONG, "ENAMETOOLONG"},
        {EK_ENOSYS, ENOSYS, "ENOSYS"},
        {EK_ENOTSOCK, ENOTSOCK, "ENOTSOCK"},
        {EK_EDESTADDRREQ, EDESTADDRREQ, "EDESTADDRREQ"},
        {EK_EMSGSIZE, EMSGSIZE, "EMSGSIZE"},
        {EK_EPROTOTYPE, EPROTOTYPE, "EPROTOTYPE"},
        {EK_ENOPROTOOPT, ENOPROTOOPT, "ENOPROTOOPT"},
        {EK_EPROTO, EPROTO, "EPROTO"},
        {EK_EPROTONOSUPPORT, EPROTONOSUPPORT, "EPROTONOSUPPORT"},
        {EK_ENOTSUP, ENOTSUP, "ENOTSUP"},
        {EK_EAFNOSUPPORT, EAFNOSUPPORT, "EAFNOSUPPORT"},
        {EK_EADDRINUSE, EADDRINUSE, "EADDRINUSE"},
        {EK_EADDRNOTAVAIL, EADDRNOTAVAIL, "EADDRNOTAVAIL"},
        {EK_ENETDOWN, ENETDOWN, "ENETDOWN"},
        {EK_ENETUNREACH, ENETUNREACH, "ENETUNREACH"},
        {EK_ECONNABORTED, ECONNABORTED, "ECONNABORTED"},
        {EK_ECONNRESET, ECONNRESET, "ECONNRESET"},
        {EK_ENOBUFS, ENOBUFS, "ENOBUFS"},
        {EK_EISCONN, EISCONN, "EISCONN"},
        {EK_ENOTCONN, ENOTCONN, "ENOTCONN"},
        {EK_ETIMEDOUT, ETIMEDOUT, "ETIMEDOUT"},
        {EK_ECONNREFUSED, ECONNREFUSED, "ECONNREFUSED"},
        {EK_EHOSTUNREACH, EHOSTUNREACH, "EHOSTUNREACH"},
        {EK_EALREADY, EALREADY, "EALREADY"},
        {EK_EINPROGRESS, EINPROGRESS, "EINPROGRESS"},
        {EK_ECANCELED, ECANCELED, "ECANCELED"},
    };
    size_t n = sizeof os_codes / sizeof os_codes[0];
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(os_codes[i].ek, -os_codes[i].os);
        assert_string_equal(ek_err_name(os_codes[i].ek), os_codes[i].name);
    }
    size_t in_table = 0;
#define COUNT_OS(name, value, msg) in_table += (value) > -4000;
    EK_ERRNO_MAP(COUNT_OS)
#undef COUNT_OS
    assert_int_equal(in_table, n);
}

static void test_error_codes_are_negative_distinct_and_runtime_ones_below_4000(void **state)
{
    (void)state;
    static const int codes[] = {
#define CODE(name, value, msg) value,
        EK_ERRNO_MAP(CODE)
#undef CODE
    };
    static const char *names[] = {
#define NAME(name, value, msg) #name,
        EK_ERRNO_MAP(NAME)
#undef NAME
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] < 0);
        assert_true(codes[i] > EK__ERRNO_END);
        for (size_t k = i + 1; k < n; k++) assert_int_not_equal(codes[i], codes[k]);
    }
    assert_true(EK_ECLOSED < -4000);
    assert_true(EK_EWRONGTHREAD < -4000);
    /* OS errors keep Linux's numbers, so -errno is the code. */
    assert_int_equal(EK_EAGAIN, -11);
    assert_int_equal(EK_ECANCELED, -125);
    (void)names;
}

static void test_strerror_and_err_name_for_ok_pending_and_unknown_codes(void **state)
{
    (void)state;
    assert_string_equal(ek_err_name(EK_OK), "OK");
    assert_string_equal(ek_err_name(EK_PENDING), "PENDING");
    assert_non_null(ek_strerror(EK_OK));
    assert_non_null(ek_strerror(EK_PENDING));
    assert_string_not_equal(ek_strerror(EK_OK), "unknown error");
    assert_string_not_equal(ek_strerror(EK_PENDING), "unknown error");
    assert_string_not_equal(ek_strerror(EK_OK), ek_strerror(EK_PENDING));

    static const int unknown[] = {-123456, 77, 2, -3, -4000, -4999, -5000, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_string_equal(ek_strerror(unknown[i]), "unknown error");
        assert_string_equal(ek_err_name(unknown[i]), "UNKNOWN");
    }
}

/* A host builds its constants from ek_err_count/ek_err_code/ek_err_name of the
 * library it loaded: every code of the header's table is there once, under its
 * name, after EK_OK and EK_PENDING; nothing else is, and the index range is
 * checked. */
static void test_err_count_and_code_enumerate_every_code_once(void **state)
{
    (void)state;
    int n = ek_err_count();
    size_t table = 0;
#define COUNT(name, value, msg) table++;
    EK_ERRNO_MAP(COUNT)
#undef COUNT
    assert_int_equal(n, (int)table + 2);
    assert_int_equal(ek_err_code(0), EK_OK);
    assert_int_equal(ek_err_code(1), EK_PENDING);
    for (int i = 0; i < n; i++) {
        int c = ek_err_code(i);
        assert_string_not_equal(ek_err_name(c), "UNKNOWN");
        assert_string_not_equal(ek_strerror(c), "unknown error");
        if (i >= 2) assert_true(c < 0);
        for (int k = i + 1; k < n; k++) assert_int_not_equal(c, ek_err_code(k));
    }
    /* Looked up by name as a host does, each header constant has its value. */
    int found = 0;
#define LOOKUP(name, value, msg)                                                                   \
    for (int i = 0; i < n; i++)                                                                    \
        if (strcmp(ek_err_name(ek_err_code(i)), #name) == 0) {                                     \
            assert_int_equal(ek_err_code(i), value);                                               \
            assert_int_equal(i, 2 + found);                                                        \
            found++;                                                                               \
        }
    EK_ERRNO_MAP(LOOKUP)
#undef LOOKUP
    assert_int_equal(found, (int)table);
    static const int out_of_range[] = {-1, INT_MIN};
    for (size_t i = 0; i < sizeof out_of_range / sizeof out_of_range[0]; i++)
        assert_int_equal(ek_err_code(out_of_range[i]), EK_EINVAL);
    assert_int_equal(ek_err_code(n), EK_EINVAL);
    assert_int_equal(ek_err_code(INT_MAX), EK_EINVAL);
}

static void *strerror_thread(void *arg)
{
    long bad = 0;
    for (int i = 0; i < 20000; i++) {
        if (strcmp(ek_err_name(EK_ECLOSED), "ECLOSED") != 0) bad++;
        if (strcmp(ek_strerror(EK_EINVAL), "invalid argument") != 0) bad++;
        if (strcmp(ek_err_name(-123456), "UNKNOWN") != 0) bad++;
    }
    *(long *)arg = bad;
    return NULL;
}

static void test_strerror_is_thread_safe_and_allocation_free(void **state)
{
    (void)state;
    long before = ekt_alloc_total();
    pthread_t th[4];
    long bad[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, strerror_thread, &bad[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(bad[i], 0);
    }
    assert_int_equal(ekt_alloc_total(), before);
}

/* ---- allocator hook ---- */

static void *x_malloc(size_t n)
{
    return malloc(n);
}
static void *x_realloc(void *p, size_t n)
{
    return realloc(p, n);
}
static void *x_calloc(size_t c, size_t n)
{
    return calloc(c, n);
}
static void x_free(void *p)
{
    free(p);
}

static void test_set_allocator_with_only_some_null_is_einval_and_keeps_the_old_one(void **state)
{
    (void)state;
    for (unsigned mask = 1; mask < 15; mask++) { /* every mix of given and NULL */
        assert_int_equal(ek_set_allocator(mask & 1 ? x_malloc : NULL, mask & 2 ? x_realloc : NULL,
                                          mask & 4 ? x_calloc : NULL, mask & 8 ? x_free : NULL),
                         EK_EINVAL);
    }
    /* The counting allocator is still the one in use. */
    long before = ekt_alloc_total();
    ek_builder *b = a_builder();
    assert_int_equal(ekt_alloc_total(), before + 1);
    assert_int_equal(ekt_alloc_leaked(), 1);
    ek_builder_free(b);
    assert_int_equal(ekt_alloc_leaked(), 0);

    /* All NULL restores the C library's; all four given installs them. */
    assert_int_equal(ek_set_allocator(NULL, NULL, NULL, NULL), EK_OK);
    before = ekt_alloc_total();
    b = a_builder();
    ek_builder_free(b);
    assert_int_equal(ekt_alloc_total(), before);
    assert_int_equal(ek_set_allocator(x_malloc, x_realloc, x_calloc, x_free), EK_OK);
    ekt_alloc_install();
}

/* ---- builder ---- */

static void test_builder_new_with_null_out_is_einval(void **state)
{
    (void)state;
    assert_int_equal(ek_builder_new(NULL), EK_EINVAL);
    assert_int_equal(ekt_alloc_leaked(), 0);
}

static void test_builder_setters_accept_bounds_and_reject_out_of_range(void **state)
{
    (void)state;
    ek_builder *b = a_builder();
    assert_int_equal(ek_builder_set_flavor(b, EK_FLAVOR_MULTI_THREAD), EK_OK);
    assert_int_equal(ek_builder_set_flavor(b, EK_FLAVOR_CURRENT_THREAD), EK_OK);
    assert_int_equal(ek_builder_set_flavor(b, 2), EK_EINVAL);
    assert_int_equal(ek_builder_set_flavor(b, -1), EK_EINVAL);

    assert_int_equal(ek_builder_set_worker_threads(b, 0), EK_EINVAL);
    assert_int_equal(ek_builder_set_worker_threads(b, 1025), EK_EINVAL);
    assert_int_equal(ek_builder_set_worker_threads(b, UINT_MAX), EK_EINVAL);
    assert_int_equal(ek_builder_set_worker_threads(b, 1), EK_OK);
    assert_int_equal(ek_builder_set_worker_threads(b, 1024), EK_OK);

    assert_int_equal(ek_builder_set_max_blocking_threads(b, 0), EK_EINVAL);
    assert_int_equal(ek_builder_set_max_blocking_threads(b, 65537), EK_EINVAL);
    assert_int_equal(ek_builder_set_max_blocking_threads(b, UINT_MAX), EK_EINVAL);
    assert_int_equal(ek_builder_set_max_blocking_threads(b, 1), EK_OK);
    assert_int_equal(ek_builder_set_max_blocking_threads(b, 65536), EK_OK);

    /* The header gives no range; a value whose nanoseconds overflow is refused. */
    assert_int_equal(ek_builder_set_blocking_keep_alive_ms(b, UINT64_MAX), EK_EINVAL);
    assert_int_equal(ek_builder_set_blocking_keep_alive_ms(b, 50), EK_OK);

    assert_int_equal(ek_builder_set_thread_name(b, NULL), EK_EINVAL);
    assert_int_equal(ek_builder_set_thread_name(b, "a-name-much-longer-than-fifteen-bytes"), EK_OK);
    assert_int_equal(ek_builder_set_thread_name(b, ""), EK_OK);
    assert_int_equal(ek_builder_set_thread_name(b, "ekt"), EK_OK);

    assert_int_equal(ek_builder_set_lifo_slot(b, 0), EK_OK);
    assert_int_equal(ek_builder_set_lifo_slot(b, 1), EK_OK);
    assert_int_equal(ek_builder_set_lifo_slot(b, 2), EK_EINVAL);
    assert_int_equal(ek_builder_set_lifo_slot(b, -1), EK_EINVAL);

    int (*ticks[3])(ek_builder *, unsigned) = {
        ek_builder_set_global_queue_interval, ek_builder_set_event_interval, ek_builder_set_budget};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ticks[i](b, 0), EK_EINVAL);
        assert_int_equal(ticks[i](b, 1000001), EK_EINVAL);
        assert_int_equal(ticks[i](b, UINT_MAX), EK_EINVAL);
        assert_int_equal(ticks[i](b, 1), EK_OK);
        assert_int_equal(ticks[i](b, 1000000), EK_OK);
    }

    assert_int_equal(ek_builder_set_start_paused(b, 2), EK_EINVAL);
    assert_int_equal(ek_builder_set_start_paused(b, -1), EK_EINVAL);
    assert_int_equal(ek_builder_set_start_paused(b, 0), EK_OK);
    ek_builder_free(b);
}

static void test_builder_setters_reject_null_and_wrong_handles(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    ek_builder *wrong = (ek_builder *)(void *)rt;
    ek_builder *bs[2] = {NULL, wrong};
    for (int i = 0; i < 2; i++) {
        ek_builder *b = bs[i];
        assert_int_equal(ek_builder_set_flavor(b, EK_FLAVOR_MULTI_THREAD), EK_EINVAL);
        assert_int_equal(ek_builder_set_worker_threads(b, 2), EK_EINVAL);
        assert_int_equal(ek_builder_set_max_blocking_threads(b, 2), EK_EINVAL);
        assert_int_equal(ek_builder_set_blocking_keep_alive_ms(b, 10), EK_EINVAL);
        assert_int_equal(ek_builder_set_thread_name(b, "x"), EK_EINVAL);
        assert_int_equal(ek_builder_set_lifo_slot(b, 1), EK_EINVAL);
        assert_int_equal(ek_builder_set_global_queue_interval(b, 10), EK_EINVAL);
        assert_int_equal(ek_builder_set_event_interval(b, 10), EK_EINVAL);
        assert_int_equal(ek_builder_set_budget(b, 10), EK_EINVAL);
        assert_int_equal(ek_builder_set_start_paused(b, 1), EK_EINVAL);
        ek_builder_free(b); /* ignored */
    }
    /* The runtime was not touched by any of that. */
    assert_int_equal(ek_runtime_worker_count(rt), 1);
    ekt_rt_free_checked(rt);
}

static void test_free_functions_ignore_null_and_wrong_handles(void **state)
{
    (void)state;
    ek_builder *b = a_builder();
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    ek_builder_free(NULL);
    ek_builder_free((ek_builder *)(void *)rt);
    ek_runtime_free(NULL);
    ek_runtime_free((ek_runtime *)(void *)b);
    ek_join_detach(NULL);
    ek_join_detach((ek_join *)(void *)b);
    ek_future_drop(NULL);
    ek_future_drop((ek_future *)(void *)b);
    /* Both objects are still alive and usable. */
    assert_int_equal(ek_builder_set_worker_threads(b, 2), EK_OK);
    assert_int_equal(ek_runtime_worker_count(rt), 1);
    assert_int_equal(ekt_alloc_leaked() > 0, 1);
    ek_builder_free(b);
    ekt_rt_free_checked(rt);
}

/* ---- runtime ---- */

static void test_runtime_new_rejects_null_out_and_wrong_builder(void **state)
{
    (void)state;
    ek_builder *b = a_builder();
    assert_int_equal(ek_runtime_new(b, NULL), EK_EINVAL);
    assert_int_equal(ek_runtime_new(NULL, NULL), EK_EINVAL);

    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    ek_runtime *out = (ek_runtime *)(void *)0x1;
    assert_int_equal(ek_runtime_new((const ek_builder *)(void *)rt, &out), EK_EINVAL);
    assert_ptr_equal(out, (void *)0x1); /* untouched on error */
    ek_builder_free(b);
    ekt_rt_free_checked(rt);
}

static void test_runtime_new_with_null_builder_uses_defaults(void **state)
{
    (void)state;
    ek_runtime *rt = NULL;
    assert_int_equal(ek_runtime_new(NULL, &rt), EK_OK);
    assert_non_null(rt);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(ek_runtime_worker_count(rt), n > 0 ? n : 1);
    ekt_rt_free_checked(rt);
}

static void test_start_paused_on_multi_thread_is_enotsup_at_runtime_new(void **state)
{
    (void)state;
    ek_builder *b = a_builder();
    assert_int_equal(ek_builder_set_flavor(b, EK_FLAVOR_MULTI_THREAD), EK_OK);
    assert_int_equal(ek_builder_set_worker_threads(b, 1), EK_OK);
    assert_int_equal(ek_builder_set_start_paused(b, 1), EK_OK); /* refused at build time */
    ek_runtime *rt = NULL;
    assert_int_equal(ek_runtime_new(b, &rt), EK_ENOTSUP);
    assert_null(rt);
    assert_int_equal(ekt_alloc_leaked(), 1); /* just the builder */

    assert_int_equal(ek_builder_set_flavor(b, EK_FLAVOR_CURRENT_THREAD), EK_OK);
    assert_int_equal(ek_runtime_new(b, &rt), EK_OK);
    uint64_t t0 = ek_now_ms(rt);
    usleep(20000);
    assert_int_equal(ek_now_ms(rt), t0); /* paused: time does not move by itself */
    ek_builder_free(b);
    ekt_rt_free_checked(rt);
}

static void test_runtime_shutdown_rejects_bad_handles_and_is_idempotent(void **state)
{
    (void)state;
    ek_builder *b = a_builder();
    assert_int_equal(ek_runtime_shutdown(NULL, 0), EK_EINVAL);
    assert_int_equal(ek_runtime_shutdown((ek_runtime *)(void *)b, 0), EK_EINVAL);
    for (int f = 0; f < 2; f++) {
        ek_runtime *rt = ekt_rt(flavors[f], 2);
        assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
        assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
        assert_int_equal(ek_runtime_shutdown(rt, 0), EK_OK);
        ek_runtime_free(rt);
    }
    ek_builder_free(b);
}

static void test_runtime_worker_count_validates_and_reports(void **state)
{
    (void)state;
    ek_builder *b = a_builder();
    assert_int_equal(ek_runtime_worker_count(NULL), EK_EINVAL);
    assert_int_equal(ek_runtime_worker_count((ek_runtime *)(void *)b), EK_EINVAL);
    ek_runtime *mt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 3);
    ek_runtime *ct = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    assert_int_equal(ek_runtime_worker_count(mt), 3);
    assert_int_equal(ek_runtime_worker_count(ct), 1);
    /* Still answers once shut down (the object is alive until freed). */
    assert_int_equal(ek_runtime_shutdown(mt, UINT64_MAX), EK_OK);
    assert_int_equal(ek_runtime_worker_count(mt), 3);
    ek_runtime_free(mt);
    ek_runtime_free(ct);
    ek_builder_free(b);
}

static void test_clock_functions_validate_and_are_enotsup_on_multi_thread(void **state)
{
    (void)state;
    ek_builder *b = a_builder();
    ek_runtime *wrong = (ek_runtime *)(void *)b;
    assert_int_equal(ek_runtime_clock_pause(NULL), EK_EINVAL);
    assert_int_equal(ek_runtime_clock_resume(NULL), EK_EINVAL);
    assert_int_equal(ek_runtime_clock_advance(NULL, 1), EK_EINVAL);
    assert_int_equal(ek_runtime_clock_pause(wrong), EK_EINVAL);
    assert_int_equal(ek_runtime_clock_resume(wrong), EK_EINVAL);
    assert_int_equal(ek_runtime_clock_advance(wrong, 1), EK_EINVAL);
    /* Not a time: the clock saturates at EK__TIME_MAX_MS (about 292 years). */
    assert_true(ek_now_ms(NULL) == UINT64_MAX);
    assert_true(ek_now_ms(wrong) == UINT64_MAX);

    ek_runtime *mt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 1);
    assert_int_equal(ek_runtime_clock_pause(mt), EK_ENOTSUP);
    assert_int_equal(ek_runtime_clock_resume(mt), EK_ENOTSUP);
    assert_int_equal(ek_runtime_clock_advance(mt, 5), EK_ENOTSUP);
    uint64_t t0 = ek_now_ms(mt);
    assert_true(ek_now_ms(mt) >= t0); /* the real clock keeps running */
    ek_builder_free(b);
    ekt_rt_free_checked(mt);

    ek_runtime *ct = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    assert_int_equal(ek_runtime_clock_pause(ct), EK_OK);
    uint64_t p = ek_now_ms(ct);
    assert_int_equal(ek_runtime_clock_advance(ct, 5), EK_OK);
    assert_int_equal(ek_now_ms(ct), p + 5);
    assert_int_equal(ek_runtime_clock_resume(ct), EK_OK);
    ekt_rt_free_checked(ct);
}

static void test_metrics_validate_arguments_and_fill_at_most_n(void **state)
{
    (void)state;
    ek_builder *b = a_builder();
    uint64_t v[EK_METRIC_COUNT + 4];
    assert_int_equal(ek_runtime_metrics(NULL, v, EK_METRIC_COUNT), EK_EINVAL);
    assert_int_equal(ek_runtime_metrics((ek_runtime *)(void *)b, v, EK_METRIC_COUNT), EK_EINVAL);
    assert_int_equal(ek_runtime_worker_queue_depth(NULL, 0), EK_EINVAL);
    assert_int_equal(ek_runtime_worker_queue_depth((ek_runtime *)(void *)b, 0), EK_EINVAL);

    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    assert_int_equal(ek_runtime_metrics(rt, NULL, 3), EK_EINVAL);
    assert_int_equal(ek_runtime_metrics(rt, NULL, 0), EK_METRIC_COUNT);
    /* n smaller than the count: only v[0..n) written. */
    for (size_t i = 0; i < EK_METRIC_COUNT + 4; i++) v[i] = 0xabababab;
    assert_int_equal(ek_runtime_metrics(rt, v, 1), EK_METRIC_COUNT);
    assert_int_equal(v[EK_METRIC_WORKERS], 2);
    assert_int_equal(v[1], 0xabababab);
    /* n larger: the tail is untouched. */
    assert_int_equal(ek_runtime_metrics(rt, v, EK_METRIC_COUNT + 4), EK_METRIC_COUNT);
    assert_int_equal(v[EK_METRIC_WORKERS], 2);
    assert_int_equal(v[EK_METRIC_TASKS_ALIVE], 0);
    assert_int_equal(v[EK_METRIC_TASKS_SPAWNED], 0);
    for (size_t i = EK_METRIC_COUNT; i < EK_METRIC_COUNT + 4; i++)
        assert_int_equal(v[i], 0xabababab);

    assert_true(ek_runtime_worker_queue_depth(rt, 0) >= 0);
    assert_true(ek_runtime_worker_queue_depth(rt, 1) >= 0);
    assert_int_equal(ek_runtime_worker_queue_depth(rt, 2), EK_EINVAL);
    assert_int_equal(ek_runtime_worker_queue_depth(rt, UINT_MAX), EK_EINVAL);
    ek_builder_free(b);
    ekt_rt_free_checked(rt);

    rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    assert_int_equal(ek_runtime_worker_queue_depth(rt, 0), 0);
    assert_int_equal(ek_runtime_worker_queue_depth(rt, 1), EK_EINVAL);
    ekt_rt_free_checked(rt);
}

static void test_metric_names_for_every_key_and_null_for_unknown(void **state)
{
    (void)state;
#define NAME(name, doc) assert_string_equal(ek_metric_name(EK_METRIC_##name), #name);
    EK_METRICS_MAP(NAME)
#undef NAME
    assert_null(ek_metric_name(-1));
    assert_null(ek_metric_name(EK_METRIC_COUNT));
    assert_null(ek_metric_name(INT_MAX));
}

/* ---- wakers, coop, cx ---- */

static void test_waker_and_cx_functions_tolerate_null(void **state)
{
    (void)state;
    assert_null(ek_cx_runtime(NULL));
    assert_null(ek_cx_waker(NULL));
    ek_waker_wake(NULL);
    ek_waker_wake_by_ref(NULL);
    ek_waker_drop(NULL);
    assert_null(ek_waker_clone(NULL));
    assert_int_equal(ek_waker_will_wake(NULL, NULL), 0);
    assert_int_equal(ek_coop_proceed(NULL), EK_EINVAL);
    assert_int_equal(ek_yield_now(NULL), EK_EINVAL);
    assert_int_equal(ekt_alloc_leaked(), 0);
}

typedef struct {
    int will_wake_null, will_wake_own, coop;
    ek_runtime *cx_rt;
} cx_probe;

static int cx_probe_fn(void *arg, ek_cx *cx)
{
    cx_probe *p = arg;
    p->cx_rt = ek_cx_runtime(cx);
    p->will_wake_null = ek_waker_will_wake(NULL, cx);
    ek_waker *w = ek_cx_waker(cx);
    p->will_wake_own = ek_waker_will_wake(w, cx);
    ek_waker_drop(w);
    p->coop = ek_coop_proceed(cx);
    return EK_OK;
}

static void test_waker_will_wake_null_is_zero_inside_a_task(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    cx_probe p = {-1, -1, -1, NULL};
    assert_int_equal(run_in_task(rt, cx_probe_fn, &p), EK_OK);
    assert_ptr_equal(p.cx_rt, rt);
    assert_int_equal(p.will_wake_null, 0);
    assert_int_equal(p.will_wake_own, 1);
    assert_int_equal(p.coop, EK_OK);
    ekt_rt_free_checked(rt);
}

/* ---- spawn ---- */

static void test_spawn_rejects_null_and_wrong_handles_and_runs_drop_once(void **state)
{
    (void)state;
    ek_builder *b = a_builder();
    ek_runtime *wrong = (ek_runtime *)(void *)b;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_join *j = (ek_join *)(void *)0x1;
    int s;

    typedef int (*spawn_fn)(ek_runtime *, ek_poll_fn, ek_drop_fn, void *, ek_drop_fn, ek_join **);
    spawn_fn fns[2] = {ek_spawn, ek_spawn_local};
    for (int i = 0; i < 2; i++) {
        ekt_reset_drops();
        assert_int_equal(fns[i](NULL, ekt_ret_state, ekt_count_drop, &s, ekt_count_out_drop, &j),
                         EK_EINVAL);
        assert_int_equal(atomic_load(&ekt_drops), 1);
        assert_int_equal(fns[i](wrong, ekt_ret_state, ekt_count_drop, &s, ekt_count_out_drop, &j),
                         EK_EINVAL);
        assert_int_equal(atomic_load(&ekt_drops), 2);
        assert_int_equal(fns[i](rt, NULL, ekt_count_drop, &s, ekt_count_out_drop, &j), EK_EINVAL);
        assert_int_equal(atomic_load(&ekt_drops), 3);
        assert_int_equal(fns[i](rt, ekt_ret_state, NULL, &s, ekt_count_out_drop, &j), EK_EINVAL);
        assert_int_equal(fns[i](NULL, NULL, NULL, &s, NULL, NULL), EK_EINVAL);
        assert_int_equal(atomic_load(&ekt_drops), 3);
        assert_int_equal(atomic_load(&ekt_out_drops), 0);
        assert_null(j); /* a failed spawn leaves NULL */
    }

    ekt_reset_drops();
    assert_int_equal(ek_spawn_blocking(NULL, ready_job, ekt_count_drop, &s, NULL, &j), EK_EINVAL);
    assert_int_equal(ek_spawn_blocking(wrong, ready_job, ekt_count_drop, &s, NULL, &j), EK_EINVAL);
    assert_int_equal(ek_spawn_blocking(rt, NULL, ekt_count_drop, &s, NULL, &j), EK_EINVAL);
    assert_int_equal(atomic_load(&ekt_drops), 3);
    assert_int_equal(ek_spawn_blocking(NULL, NULL, NULL, &s, NULL, NULL), EK_EINVAL);
    assert_null(j); /* a failed spawn leaves NULL */

    /* ek_spawn_future: a bad future is refused; a good one is consumed. */
    ekt_reset_drops();
    assert_int_equal(ek_spawn_future(rt, NULL, NULL, &j), EK_EINVAL);
    assert_int_equal(ek_spawn_future(rt, (ek_future *)(void *)b, NULL, &j), EK_EINVAL);
    ek_future *f = NULL;
    assert_int_equal(ek_future_new(ekt_ret_state, ekt_count_drop, &s, &f), EK_OK);
    assert_int_equal(ek_spawn_future(NULL, f, NULL, &j), EK_EINVAL);
    assert_int_equal(atomic_load(&ekt_drops), 1);
    assert_int_equal(ek_future_new(ekt_ret_state, ekt_count_drop, &s, &f), EK_OK);
    assert_int_equal(ek_spawn_future(wrong, f, NULL, &j), EK_EINVAL);
    assert_int_equal(atomic_load(&ekt_drops), 2);
    assert_null(j); /* a failed spawn leaves NULL */

    /* Nothing was spawned. */
    uint64_t v[EK_METRIC_COUNT];
    assert_int_equal(ek_runtime_metrics(rt, v, EK_METRIC_COUNT), EK_METRIC_COUNT);
    assert_int_equal(v[EK_METRIC_TASKS_SPAWNED], 0);
    assert_int_equal(v[EK_METRIC_TASKS_ALIVE], 0);
    ek_builder_free(b);
    ekt_rt_free_checked(rt);
}

static void test_spawn_after_shutdown_runs_drop_once(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = ekt_rt(flavors[fl], 2);
        assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
        ek_join *j = (ek_join *)(void *)0x1;
        int s;

        ekt_reset_drops();
        assert_int_equal(ek_spawn(rt, ekt_ret_state, ekt_count_drop, &s, ekt_count_out_drop, &j),
                         EK_ECLOSED);
        assert_int_equal(atomic_load(&ekt_drops), 1);
        assert_int_equal(ek_spawn(rt, ekt_ret_state, ekt_count_drop, &s, ekt_count_out_drop, NULL),
                         EK_ECLOSED);
        assert_int_equal(atomic_load(&ekt_drops), 2);
        assert_int_equal(
            ek_spawn_local(rt, ekt_ret_state, ekt_count_drop, &s, ekt_count_out_drop, &j),
            EK_ECLOSED);
        assert_int_equal(atomic_load(&ekt_drops), 3);
        assert_int_equal(
            ek_spawn_blocking(rt, ready_job, ekt_count_drop, &s, ekt_count_out_drop, &j),
            EK_ECLOSED);
        assert_int_equal(atomic_load(&ekt_drops), 4);
        assert_int_equal(ek_spawn_blocking(rt, ready_job, NULL, &s, ekt_count_out_drop, &j),
                         EK_ECLOSED);
        ek_future *f = NULL;
        assert_int_equal(ek_future_new(ekt_ret_state, ekt_count_drop, &s, &f), EK_OK);
        assert_int_equal(ek_spawn_future(rt, f, ekt_count_out_drop, &j), EK_ECLOSED);
        assert_int_equal(atomic_load(&ekt_drops), 5);
        assert_int_equal(atomic_load(&ekt_out_drops), 0); /* no result was ever made */
        assert_null(j);                                   /* a failed spawn leaves NULL */

        uint64_t v[EK_METRIC_COUNT];
        assert_int_equal(ek_runtime_metrics(rt, v, EK_METRIC_COUNT), EK_METRIC_COUNT);
        assert_int_equal(v[EK_METRIC_TASKS_SPAWNED], 0);
        assert_int_equal(v[EK_METRIC_TASKS_ALIVE], 0);
        ekt_rt_free_checked(rt);
        assert_int_equal(atomic_load(&ekt_drops), 5);
    }
}

typedef struct {
    ek_runtime *other;
    int rc;
} local_probe;

static int spawn_local_other_rt_fn(void *arg, ek_cx *cx)
{
    (void)cx;
    local_probe *p = arg;
    return ek_spawn_local(p->other, ekt_ret_state, ekt_count_drop, NULL, NULL, NULL);
}

static int spawn_local_job_fn(void *arg)
{
    return ek_spawn_local((ek_runtime *)arg, ekt_ret_state, ekt_count_drop, NULL, NULL, NULL);
}

static void test_spawn_local_from_blocking_thread_or_other_runtime_is_ewrongthread(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_runtime *other = ekt_rt(EK_FLAVOR_MULTI_THREAD, 1);
    ekt_reset_drops();
    assert_int_equal(run_in_blocking_job(rt, spawn_local_job_fn, rt), EK_EWRONGTHREAD);
    assert_int_equal(atomic_load(&ekt_drops), 1);
    local_probe p = {other, 0};
    assert_int_equal(run_in_task(rt, spawn_local_other_rt_fn, &p), EK_EWRONGTHREAD);
    assert_int_equal(atomic_load(&ekt_drops), 2);
    ek_runtime_free(other);
    ekt_rt_free_checked(rt);
}

/* ---- join handles ---- */

typedef struct {
    ek_join *j;
    ek_future *f;
    int poll_null_cx, poll_null, poll_wrong_future, poll_wrong_rt;
    int fpoll_null, fpoll_null_cx, fpoll_first, fpoll_second;
    void *fout;
} handle_probe;

static int handle_probe_poll(void *s, ek_cx *cx, void **out)
{
    handle_probe *p = s;
    void *o = (void *)0x1;
    p->poll_null_cx = ek_join_poll(p->j, NULL, &o);
    p->poll_null = ek_join_poll(NULL, cx, &o);
    p->poll_wrong_future = ek_join_poll((ek_join *)(void *)p->f, cx, &o);
    p->poll_wrong_rt = ek_join_poll((ek_join *)(void *)ek_cx_runtime(cx), cx, &o);
    assert_ptr_equal(o, (void *)0x1);
    p->fpoll_null = ek_future_poll(NULL, cx, &o);
    p->fpoll_null_cx = ek_future_poll(p->f, NULL, &o);
    p->fpoll_first = ek_future_poll(p->f, cx, &p->fout);
    p->fpoll_second = ek_future_poll(p->f, cx, &o);
    assert_ptr_equal(o, (void *)0x1);
    *out = NULL;
    return EK_OK;
}

static void test_join_and_future_functions_reject_null_and_wrong_handles(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = ekt_rt(flavors[fl], 2);
        ek_builder *b = a_builder();
        ek_join *wrong = (ek_join *)(void *)b;
        assert_int_equal(ek_join_abort(NULL), EK_EINVAL);
        assert_int_equal(ek_join_abort(wrong), EK_EINVAL);
        assert_int_equal(ek_join_is_finished(NULL), EK_EINVAL);
        assert_int_equal(ek_join_is_finished(wrong), EK_EINVAL);
        assert_int_equal(ek_join_wait(NULL, NULL), EK_EINVAL);
        assert_int_equal(ek_join_wait(wrong, NULL), EK_EINVAL);
        assert_int_equal(ek_join_wait((ek_join *)(void *)rt, NULL), EK_EINVAL);
        ek_future *f = (ek_future *)(void *)0x1;
        assert_int_equal(ek_join_into_future(NULL, &f), EK_EINVAL);
        assert_int_equal(ek_join_into_future(wrong, &f), EK_EINVAL);
        assert_ptr_equal(f, (void *)0x1);

        ekt_reset_drops();
        assert_int_equal(ek_future_new(NULL, ekt_count_drop, NULL, &f), EK_EINVAL);
        assert_int_equal(atomic_load(&ekt_drops), 1);
        assert_int_equal(ek_future_new(ekt_ret_state, ekt_count_drop, NULL, NULL), EK_EINVAL);
        assert_int_equal(atomic_load(&ekt_drops), 2);
        assert_int_equal(ek_future_new(NULL, NULL, NULL, NULL), EK_EINVAL);
        assert_ptr_equal(f, (void *)0x1);

        /* join_poll / future_poll need a poll context: ek_block_on's future. */
        handle_probe p = {0};
        assert_int_equal(ek_spawn(rt, ekt_ret_state, ekt_noop_drop, NULL, NULL, &p.j), EK_OK);
        assert_int_equal(ek_future_new(ekt_ret_state, ekt_count_drop, (void *)0x77, &p.f), EK_OK);
        void *out = (void *)0x1;
        assert_int_equal(ekt_block_on_fn(rt, handle_probe_poll, &p, &out), EK_OK);
        assert_int_equal(p.poll_null_cx, EK_EINVAL);
        assert_int_equal(p.poll_null, EK_EINVAL);
        assert_int_equal(p.poll_wrong_future, EK_EINVAL);
        assert_int_equal(p.poll_wrong_rt, EK_EINVAL);
        assert_int_equal(p.fpoll_null, EK_EINVAL);
        assert_int_equal(p.fpoll_null_cx, EK_EINVAL);
        assert_int_equal(p.fpoll_first, EK_OK);
        assert_ptr_equal(p.fout, (void *)0x77);
        assert_int_equal(p.fpoll_second, EK_ECLOSED); /* completed future polled again */
        assert_int_equal(atomic_load(&ekt_drops), 2);
        ek_future_drop(p.f);
        assert_int_equal(atomic_load(&ekt_drops), 3);
        /* The handle survived the bad calls. */
        assert_int_equal(ek_join_wait(p.j, &out), EK_OK);
        assert_null(out);
        ek_join_detach(p.j);
        ek_builder_free(b);
        ekt_rt_free_checked(rt);
    }
}

typedef struct {
    ek_join *j;
    int first, second;
    void *out1, *out2;
} poll_twice;

static int poll_twice_poll(void *s, ek_cx *cx, void **out)
{
    poll_twice *p = s;
    int rc = ek_join_poll(p->j, cx, &p->out1);
    if (rc == EK_PENDING) return EK_PENDING;
    p->first = rc;
    p->out2 = (void *)0x1;
    p->second = ek_join_poll(p->j, cx, &p->out2);
    *out = NULL;
    return EK_OK;
}

static void test_join_poll_after_result_taken_is_eclosed(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = ekt_rt(flavors[fl], 2);
        ekt_reset_drops();
        /* In a spawned task. */
        poll_twice p = {0};
        assert_int_equal(
            ek_spawn(rt, ekt_ret_state, ekt_count_drop, (void *)0x42, ekt_count_out_drop, &p.j),
            EK_OK);
        ek_join *outer = NULL;
        assert_int_equal(ek_spawn(rt, poll_twice_poll, ekt_noop_drop, &p, NULL, &outer), EK_OK);
        assert_int_equal(ek_join_wait(outer, NULL), EK_OK);
        ek_join_detach(outer);
        assert_int_equal(p.first, EK_OK);
        assert_ptr_equal(p.out1, (void *)0x42);
        assert_int_equal(p.second, EK_ECLOSED);
        assert_ptr_equal(p.out2, (void *)0x1);
        /* ek_join_wait on the same handle: taken, so closed too. */
        void *out = (void *)0x1;
        assert_int_equal(ek_join_wait(p.j, &out), EK_ECLOSED);
        assert_ptr_equal(out, (void *)0x1);
        assert_int_equal(ek_join_is_finished(p.j), 1);
        assert_int_equal(ek_join_abort(p.j), EK_OK); /* finished: unaffected */
        ek_join_detach(p.j);
        assert_int_equal(atomic_load(&ekt_out_drops), 0); /* the result was taken */

        /* In ek_block_on's future, and ek_join_wait twice from outside. */
        poll_twice q = {0};
        assert_int_equal(
            ek_spawn(rt, ekt_ret_state, ekt_count_drop, (void *)0x43, ekt_count_out_drop, &q.j),
            EK_OK);
        assert_int_equal(ekt_block_on_fn(rt, poll_twice_poll, &q, NULL), EK_OK);
        assert_int_equal(q.first, EK_OK);
        assert_ptr_equal(q.out1, (void *)0x43);
        assert_int_equal(q.second, EK_ECLOSED);
        ek_join_detach(q.j);

        ek_join *j = NULL;
        assert_int_equal(
            ek_spawn(rt, ekt_ret_state, ekt_count_drop, (void *)0x44, ekt_count_out_drop, &j),
            EK_OK);
        assert_int_equal(ek_join_wait(j, &out), EK_OK);
        assert_ptr_equal(out, (void *)0x44);
        assert_int_equal(ek_join_wait(j, &out), EK_ECLOSED);
        ek_join_detach(j);
        assert_int_equal(atomic_load(&ekt_drops), 3);
        assert_int_equal(atomic_load(&ekt_out_drops), 0);
        ekt_rt_free_checked(rt);
    }
}

/* Let a runtime make progress: a current-thread one needs a thread to drive it. */
static void drive(ek_runtime *rt, int flavor)
{
    if (flavor == EK_FLAVOR_CURRENT_THREAD) {
        assert_int_equal(ekt_spawn_join(rt, ekt_ret_state, NULL, NULL), EK_OK);
    } else {
        usleep(100);
    }
}

static void test_join_wait_after_shutdown_gives_ecanceled_or_the_result(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = ekt_rt(flavors[fl], 2);
        ekt_reset_drops();
        ek_join *done = NULL, *idle = NULL;
        assert_int_equal(
            ek_spawn(rt, ekt_ret_state, ekt_count_drop, (void *)0x51, ekt_count_out_drop, &done),
            EK_OK);
        while (ek_join_is_finished(done) == 0) drive(rt, flavors[fl]);
        ek_join_detach(done); /* finished, unread: its result goes to out_drop */
        assert_int_equal(
            ek_spawn(rt, ekt_ret_state, ekt_count_drop, (void *)0x52, ekt_count_out_drop, &done),
            EK_OK);
        /* ...and wait for this one without taking the result. */
        while (ek_join_is_finished(done) == 0) drive(rt, flavors[fl]);
        assert_int_equal(
            ek_spawn(rt, ekt_pend_forever, ekt_count_drop, NULL, ekt_count_out_drop, &idle), EK_OK);
        assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
        assert_int_equal(atomic_load(&ekt_drops), 3);
        assert_int_equal(ek_join_is_finished(idle), 1);
        void *out = (void *)0x1;
        /* Header: "EK_ECANCELED if it was aborted or the runtime shut down first";
         * ek_join_wait has "same results as ek_join_poll". */
        assert_int_equal(ek_join_wait(idle, &out), EK_ECANCELED);
        assert_int_equal(ek_join_wait(done, &out), EK_OK);
        assert_ptr_equal(out, (void *)0x52);
        ek_join_detach(idle);
        ek_join_detach(done);
        ekt_rt_free_checked(rt);
        assert_int_equal(atomic_load(&ekt_out_drops), 1); /* only the one detached unread (0x51) */
    }
}

/* ---- EK_EDEADLK: blocking calls from runtime threads ---- */

typedef struct {
    ek_runtime *rt, *other;
    int join_wait, block_on, block_on_other, shutdown;
    atomic_int block_on_drops; /* drops of the future given to ek_block_on(rt) */
    int block_on_drops_at_return;
    ek_runtime *current;
} deadlock_probe;

static void count_into(void *counter)
{
    atomic_fetch_add((atomic_int *)counter, 1);
}

static void deadlock_calls(deadlock_probe *p)
{
    p->current = ek_runtime_current();
    ek_join *j = NULL;
    int rc = ek_spawn(p->rt, ekt_ret_state, ekt_count_drop, NULL, NULL, &j);
    assert_int_equal(rc, EK_OK);
    void *out = (void *)0x1;
    p->join_wait = ek_join_wait(j, &out);
    assert_ptr_equal(out, (void *)0x1);
    ek_join_detach(j);

    /* Its own counter: the task spawned above may be dropped by a worker at
     * any moment, so the global ekt_drops cannot tell whose drop it saw. */
    ek_future *f = NULL;
    assert_int_equal(ek_future_new(ekt_ret_state, count_into, &p->block_on_drops, &f), EK_OK);
    p->block_on = ek_block_on(p->rt, f, &out);
    /* Refused, yet consumed: dropped before it returns. */
    p->block_on_drops_at_return = atomic_load(&p->block_on_drops);
    assert_int_equal(ek_future_new(ekt_ret_state, ekt_count_drop, NULL, &f), EK_OK);
    p->block_on_other = ek_block_on(p->other, f, &out);
    p->shutdown = ek_runtime_shutdown(p->rt, 0);
}

static int deadlock_task_fn(void *arg, ek_cx *cx)
{
    (void)cx;
    deadlock_calls(arg);
    return EK_OK;
}

static int deadlock_job_fn(void *arg)
{
    deadlock_calls(arg);
    return EK_OK;
}

static int deadlock_poll(void *s, ek_cx *cx, void **out)
{
    (void)cx;
    deadlock_calls(s);
    *out = NULL;
    return EK_OK;
}

static void check_deadlock_probe(deadlock_probe *p)
{
    assert_ptr_equal(p->current, p->rt);
    assert_int_equal(p->join_wait, EK_EDEADLK);
    assert_int_equal(p->block_on, EK_EDEADLK);
    assert_int_equal(p->block_on_drops_at_return, 1);
    assert_int_equal(atomic_load(&p->block_on_drops), 1);
    assert_int_equal(p->block_on_other, EK_EDEADLK);
    assert_int_equal(p->shutdown, EK_EDEADLK);
}

/* After the probe, the runtime must still work (shutdown was refused). */
static void check_runtime_still_runs(ek_runtime *rt)
{
    void *out = NULL;
    assert_int_equal(ekt_spawn_join(rt, ekt_ret_state, (void *)0x5, &out), EK_OK);
    assert_ptr_equal(out, (void *)0x5);
}

static void test_join_wait_block_on_and_shutdown_in_a_task_are_edeadlk(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = ekt_rt(flavors[fl], 2);
        ek_runtime *other = ekt_rt(EK_FLAVOR_MULTI_THREAD, 1);
        ekt_reset_drops();
        deadlock_probe p = {.rt = rt, .other = other};
        assert_int_equal(run_in_task(rt, deadlock_task_fn, &p), EK_OK);
        check_deadlock_probe(&p);
        check_runtime_still_runs(rt);
        /* The inner task ran (or was dropped) and the future refused by the other
         * runtime was dropped (ekt_drops); the first future counts apart. */
        ek_runtime_free(other);
        ekt_rt_free_checked(rt);
        assert_int_equal(atomic_load(&ekt_drops), 2);
    }
}

static void test_join_wait_block_on_and_shutdown_in_a_blocking_job_are_edeadlk(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = ekt_rt(flavors[fl], 2);
        ek_runtime *other = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
        ekt_reset_drops();
        deadlock_probe p = {.rt = rt, .other = other};
        assert_int_equal(run_in_blocking_job(rt, deadlock_job_fn, &p), EK_OK);
        check_deadlock_probe(&p);
        check_runtime_still_runs(rt);
        ek_runtime_free(other);
        ekt_rt_free_checked(rt);
        assert_int_equal(atomic_load(&ekt_drops), 2);
    }
}

static void test_join_wait_block_on_and_shutdown_inside_block_on_are_edeadlk(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = ekt_rt(flavors[fl], 2);
        ek_runtime *other = ekt_rt(EK_FLAVOR_MULTI_THREAD, 1);
        ekt_reset_drops();
        deadlock_probe p = {.rt = rt, .other = other};
        assert_int_equal(ekt_block_on_fn(rt, deadlock_poll, &p, NULL), EK_OK);
        check_deadlock_probe(&p);
        check_runtime_still_runs(rt);
        ek_runtime_free(other);
        ekt_rt_free_checked(rt);
        assert_int_equal(atomic_load(&ekt_drops), 2);
    }
}

/* ---- ek_block_on ---- */

static void test_block_on_rejects_bad_arguments_and_consumes_the_future(void **state)
{
    (void)state;
    ek_builder *b = a_builder();
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ekt_reset_drops();
    ek_future *f = NULL;
    void *out = (void *)0x1;
    assert_int_equal(ek_block_on(rt, NULL, &out), EK_EINVAL);
    assert_int_equal(ek_block_on(rt, (ek_future *)(void *)b, &out), EK_EINVAL);
    assert_int_equal(ek_block_on(NULL, NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_future_new(ekt_ret_state, ekt_count_drop, NULL, &f), EK_OK);
    assert_int_equal(ek_block_on(NULL, f, &out), EK_EINVAL);
    assert_int_equal(atomic_load(&ekt_drops), 1);
    assert_int_equal(ek_future_new(ekt_ret_state, ekt_count_drop, NULL, &f), EK_OK);
    assert_int_equal(ek_block_on((ek_runtime *)(void *)b, f, &out), EK_EINVAL);
    assert_int_equal(atomic_load(&ekt_drops), 2);
    assert_ptr_equal(out, (void *)0x1);
    /* out may be NULL. */
    assert_int_equal(ek_future_new(ekt_ret_state, ekt_count_drop, (void *)0x9, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, NULL), EK_OK);
    assert_int_equal(atomic_load(&ekt_drops), 3);
    /* Closed runtime. */
    assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
    assert_int_equal(ek_future_new(ekt_ret_state, ekt_count_drop, NULL, &f), EK_OK);
    assert_int_equal(ek_block_on(rt, f, &out), EK_ECLOSED);
    assert_int_equal(atomic_load(&ekt_drops), 4);
    assert_ptr_equal(out, (void *)0x1);
    ek_builder_free(b);
    ekt_rt_free_checked(rt);
}

/* A task that yields forever: keeps the scheduler busy. */
static int spin_poll(void *s, ek_cx *cx, void **out)
{
    (void)s;
    (void)out;
    return ek_yield_now(cx);
}

typedef struct {
    ek_runtime *rt;
    atomic_int entered;
    int rc;
} block_on_thread_arg;

static int forever_main_poll(void *s, ek_cx *cx, void **out)
{
    (void)cx;
    (void)out;
    atomic_store(&((block_on_thread_arg *)s)->entered, 1);
    return EK_PENDING;
}

static void *block_on_thread(void *arg)
{
    block_on_thread_arg *a = arg;
    ek_future *f = NULL;
    if (ek_future_new(forever_main_poll, ekt_count_drop, a, &f) != EK_OK) return NULL;
    a->rc = ek_block_on(a->rt, f, NULL);
    return NULL;
}

static void test_shutdown_while_block_on_waits_returns_eclosed_and_drops_future(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        for (int busy = 0; busy < 2; busy++) {
            ek_runtime *rt = ekt_rt(flavors[fl], 2);
            ekt_reset_drops();
            /* With busy tasks, the block_on thread may be running them when
             * shutdown comes (on a current-thread runtime it holds the core). */
            for (int i = 0; busy && i < 4; i++)
                assert_int_equal(ek_spawn(rt, spin_poll, ekt_count_drop, NULL, NULL, NULL), EK_OK);
            block_on_thread_arg a = {.rt = rt, .rc = 12345};
            pthread_t th;
            assert_int_equal(pthread_create(&th, NULL, block_on_thread, &a), 0);
            while (!atomic_load(&a.entered)) usleep(1000);
            usleep(10000);
            assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
            pthread_join(th, NULL);
            assert_int_equal(a.rc, EK_ECLOSED);
            assert_int_equal(atomic_load(&ekt_drops), 1 + (busy ? 4 : 0));
            ekt_rt_free_checked(rt);
        }
    }
}

#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)

/* ---- header promises that had no test ---- */

static int job_ok(void *arg, void **out)
{
    *out = arg;
    return EK_OK;
}

static void test_failed_spawns_leave_null_in_join(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 1);
    ek_join *j = (ek_join *)(uintptr_t)0x1;
    assert_int_equal(ek_spawn(rt, NULL, ekt_noop_drop, NULL, NULL, &j), EK_EINVAL);
    assert_null(j);
    j = (ek_join *)(uintptr_t)0x1;
    assert_int_equal(ek_spawn(NULL, ekt_ret_state, ekt_noop_drop, NULL, NULL, &j), EK_EINVAL);
    assert_null(j);
    j = (ek_join *)(uintptr_t)0x1;
    assert_int_equal(ek_spawn_local(rt, ekt_ret_state, NULL, NULL, NULL, &j), EK_EINVAL);
    assert_null(j);
    j = (ek_join *)(uintptr_t)0x1;
    assert_int_equal(ek_spawn_blocking(rt, NULL, NULL, NULL, NULL, &j), EK_EINVAL);
    assert_null(j);
    j = (ek_join *)(uintptr_t)0x1;
    assert_int_equal(ek_spawn_future(rt, (ek_future *)(void *)rt, NULL, &j), EK_EINVAL);
    assert_null(j);
    assert_int_equal(ek_runtime_shutdown(rt, 1000), EK_OK);
    j = (ek_join *)(uintptr_t)0x1;
    assert_int_equal(ek_spawn(rt, ekt_ret_state, ekt_noop_drop, NULL, NULL, &j), EK_ECLOSED);
    assert_null(j);
    j = (ek_join *)(uintptr_t)0x1;
    assert_int_equal(ek_spawn_blocking(rt, job_ok, NULL, NULL, NULL, &j), EK_ECLOSED);
    assert_null(j);
    ekt_rt_free_checked(rt);
}

static int returns_two(void *s, ek_cx *cx, void **out)
{
    (void)cx;
    *out = s;
    return 2;
}

typedef struct {
    ek_future *inner;
    int first, second;
} inner_polled_twice;

static int poll_inner_two_times(void *state, ek_cx *cx, void **out)
{
    inner_polled_twice *p = state;
    p->first = ek_future_poll(p->inner, cx, NULL);
    p->second = ek_future_poll(p->inner, cx, NULL);
    *out = NULL;
    return EK_OK;
}

static void test_a_poll_returning_another_positive_value_counts_as_einval(void **state)
{
    (void)state;
    for (int fl = 0; fl < 2; fl++) {
        ek_runtime *rt = ekt_rt(flavors[fl], 1);
        ekt_reset_drops();
        /* A task: completes with EK_EINVAL, its state dropped, no result. */
        ek_join *j = NULL;
        assert_int_equal(
            ek_spawn(rt, returns_two, ekt_count_drop, (void *)0x7, ekt_count_out_drop, &j), EK_OK);
        void *out = NULL;
        assert_int_equal(ekt_join(j, &out), EK_EINVAL);
        assert_null(out);
        assert_int_equal(atomic_load(&ekt_drops), 1);
        assert_int_equal(atomic_load(&ekt_out_drops), 0);
        /* ek_block_on. */
        assert_int_equal(ekt_block_on_fn(rt, returns_two, (void *)0x7, &out), EK_EINVAL);
        /* ek_future_poll: EK_EINVAL, and the future is done. */
        inner_polled_twice p = {NULL, 99, 99};
        assert_int_equal(ek_future_new(returns_two, ekt_count_drop, NULL, &p.inner), EK_OK);
        assert_int_equal(ekt_block_on_fn(rt, poll_inner_two_times, &p, NULL), EK_OK);
        assert_int_equal(p.first, EK_EINVAL);
        assert_int_equal(p.second, EK_ECLOSED);
        ek_future_drop(p.inner);
        assert_int_equal(atomic_load(&ekt_drops), 2);
        ekt_rt_free_checked(rt);
    }
}

static void test_join_wait_with_null_out_releases_the_result_through_out_drop(void **state)
{
    (void)state;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 1);
    ekt_reset_drops();
    ek_join *j = NULL;
    assert_int_equal(
        ek_spawn(rt, ekt_ret_state, ekt_noop_drop, (void *)0x42, ekt_count_out_drop, &j), EK_OK);
    assert_int_equal(ek_join_wait(j, NULL), EK_OK);
    assert_int_equal(atomic_load(&ekt_out_drops), 1);
    assert_ptr_equal((void *)atomic_load(&ekt_last_out_drop), (void *)0x42);
    assert_int_equal(ek_join_wait(j, NULL), EK_ECLOSED); /* handed over once */
    ek_join_detach(j);
    assert_int_equal(atomic_load(&ekt_out_drops), 1);
    ekt_rt_free_checked(rt);
}

static void test_mutex_unlock_of_a_guard_not_holding_the_lock_changes_nothing(void **state)
{
    (void)state;
    ek_mutex *m = NULL;
    ek_mutex_guard *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(ek_mutex_new(NULL, NULL, &m), EK_OK);
    assert_int_equal(ek_mutex_guard_new(m, &a), EK_OK);
    assert_int_equal(ek_mutex_guard_new(m, &b), EK_OK);
    assert_int_equal(ek_mutex_guard_new(m, &c), EK_OK);
    assert_int_equal(ek_mutex_unlock(a), EK_OK); /* never locked */
    assert_int_equal(ek_mutex_try_lock(b), EK_OK);
    assert_int_equal(ek_mutex_unlock(a), EK_OK); /* b's lock is not a's to give */
    assert_int_equal(ek_mutex_try_lock(c), EK_EBUSY);
    assert_int_equal(ek_mutex_unlock(b), EK_OK);
    assert_int_equal(ek_mutex_unlock(b), EK_OK); /* twice: the second is a no-op */
    assert_int_equal(ek_mutex_try_lock(c), EK_OK);
    assert_int_equal(ek_mutex_try_lock(a), EK_EBUSY); /* one lock, not two */
    ek_mutex_guard_drop(a);
    ek_mutex_guard_drop(b);
    ek_mutex_guard_drop(c);
    ek_mutex_drop(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_version_matches_header_macros),
        T(test_strerror_and_err_name_match_the_table_for_every_code),
        T(test_os_error_codes_are_the_negated_errno_values),
        T(test_error_codes_are_negative_distinct_and_runtime_ones_below_4000),
        T(test_strerror_and_err_name_for_ok_pending_and_unknown_codes),
        T(test_err_count_and_code_enumerate_every_code_once),
        T(test_strerror_is_thread_safe_and_allocation_free),
        T(test_set_allocator_with_only_some_null_is_einval_and_keeps_the_old_one),
        T(test_builder_new_with_null_out_is_einval),
        T(test_builder_setters_accept_bounds_and_reject_out_of_range),
        T(test_builder_setters_reject_null_and_wrong_handles),
        T(test_free_functions_ignore_null_and_wrong_handles),
        T(test_runtime_new_rejects_null_out_and_wrong_builder),
        T(test_runtime_new_with_null_builder_uses_defaults),
        T(test_start_paused_on_multi_thread_is_enotsup_at_runtime_new),
        T(test_runtime_shutdown_rejects_bad_handles_and_is_idempotent),
        T(test_runtime_worker_count_validates_and_reports),
        T(test_clock_functions_validate_and_are_enotsup_on_multi_thread),
        T(test_metrics_validate_arguments_and_fill_at_most_n),
        T(test_metric_names_for_every_key_and_null_for_unknown),
        T(test_waker_and_cx_functions_tolerate_null),
        T(test_waker_will_wake_null_is_zero_inside_a_task),
        T(test_spawn_rejects_null_and_wrong_handles_and_runs_drop_once),
        T(test_spawn_after_shutdown_runs_drop_once),
        T(test_spawn_local_from_blocking_thread_or_other_runtime_is_ewrongthread),
        T(test_join_and_future_functions_reject_null_and_wrong_handles),
        T(test_join_poll_after_result_taken_is_eclosed),
        T(test_join_wait_after_shutdown_gives_ecanceled_or_the_result),
        T(test_join_wait_block_on_and_shutdown_in_a_task_are_edeadlk),
        T(test_join_wait_block_on_and_shutdown_in_a_blocking_job_are_edeadlk),
        T(test_join_wait_block_on_and_shutdown_inside_block_on_are_edeadlk),
        T(test_block_on_rejects_bad_arguments_and_consumes_the_future),
        T(test_shutdown_while_block_on_waits_returns_eclosed_and_drops_future),
        T(test_failed_spawns_leave_null_in_join),
        T(test_a_poll_returning_another_positive_value_counts_as_einval),
        T(test_join_wait_with_null_out_releases_the_result_through_out_drop),
        T(test_mutex_unlock_of_a_guard_not_holding_the_lock_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
