/* test_registry.c - named services per runtime: register, look up (a clone),
 * unregister, exact errors, a non-shareable service buffered on registration,
 * runtimes kept apart, shutdown emptying the registry (clones outliving it),
 * and concurrent use from several threads. */
#include "svc_util.h"

#include <stdio.h>
#include <string.h>

static void test_register_lookup_unregister(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    be b = {.rt = rt};
    ek_service *c;
    assert_int_equal(ek_registry_lookup(rt, "echo", &c), EK_ENOENT);
    assert_int_equal(ek_registry_register(rt, "echo", be_service(&b)), EK_OK);
    assert_int_equal(ek_registry_lookup(rt, "echo", &c), EK_OK);
    /* Not shareable: it was buffered, so its clones are. */
    assert_int_equal(ek_service_is_shareable(c), 1);
    int64_t v = 0;
    assert_int_equal(request(rt, c, 41, &v), EK_OK);
    assert_int_equal(v, 41);
    ek_service *c2;
    assert_int_equal(ek_registry_lookup(rt, "echo", &c2), EK_OK);
    assert_ptr_not_equal(c, c2);
    assert_int_equal(request(rt, c2, 42, &v), EK_OK);
    assert_int_equal(v, 42);
    /* A taken name: consumed, EK_EEXIST. */
    be other = {.rt = rt};
    assert_int_equal(ek_registry_register(rt, "echo", be_service(&other)), EK_EEXIST);
    assert_int_equal(atomic_load(&other.handle_drops), 1);
    /* Unregister: later lookups fail, clones keep working. */
    assert_int_equal(ek_registry_unregister(rt, "echo"), EK_OK);
    assert_int_equal(ek_registry_unregister(rt, "echo"), EK_ENOENT);
    assert_int_equal(ek_registry_lookup(rt, "echo", &c), EK_ENOENT);
    assert_int_equal(request(rt, c2, 43, &v), EK_OK);
    assert_int_equal(v, 43);
    ek_service_free(c);
    ek_service_free(c2);
    /* The name is free again. */
    assert_int_equal(ek_registry_register(rt, "echo", be_shareable(&other)), EK_OK);
    assert_int_equal(ek_registry_lookup(rt, "echo", &c), EK_OK);
    assert_int_equal(request(rt, c, 44, &v), EK_OK);
    ek_service_free(c);
    ekt_rt_free_checked(rt);
    /* Shutdown emptied the registry: every handle it held is gone. */
    assert_int_equal(atomic_load(&b.handle_drops), 1);
    assert_int_equal(atomic_load(&other.handle_drops), 3);
}

static void test_bad_arguments_give_exact_errors(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    be b = {.rt = rt};
    ek_service *c;
    char longname[EK_REGISTRY_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(ek_registry_register(rt, NULL, be_service(&b)), EK_EINVAL);
    assert_int_equal(ek_registry_register(rt, "", be_service(&b)), EK_EINVAL);
    assert_int_equal(ek_registry_register(rt, longname, be_service(&b)), EK_EINVAL);
    assert_int_equal(ek_registry_register(NULL, "x", be_service(&b)), EK_EINVAL);
    assert_int_equal(atomic_load(&b.handle_drops), 4); /* each consumed */
    assert_int_equal(ek_registry_register(rt, "x", NULL), EK_EINVAL);
    longname[EK_REGISTRY_NAME_MAX] = '\0'; /* exactly the maximum: fine */
    assert_int_equal(ek_registry_register(rt, longname, be_service(&b)), EK_OK);
    assert_int_equal(ek_registry_lookup(rt, longname, &c), EK_OK);
    ek_service_free(c);
    assert_int_equal(ek_registry_lookup(rt, NULL, &c), EK_EINVAL);
    assert_int_equal(ek_registry_lookup(rt, "x", NULL), EK_EINVAL);
    assert_int_equal(ek_registry_lookup(NULL, "x", &c), EK_EINVAL);
    assert_int_equal(ek_registry_unregister(rt, ""), EK_EINVAL);
    assert_int_equal(ek_registry_unregister(NULL, "x"), EK_EINVAL);
    /* Allocation failure: consumed, EK_ENOMEM, then it works. */
    for (long n = 0;; n++) {
        ek_service *svc = be_shareable(&b);
        ekt_alloc_fail_here_after(n);
        int rc = ek_registry_register(rt, "oom", svc);
        ekt_alloc_fail_here_after(-1);
        if (rc == EK_OK) break;
        assert_int_equal(rc, EK_ENOMEM);
    }
    assert_int_equal(ek_registry_lookup(rt, "oom", &c), EK_OK);
    ek_service_free(c);
    assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
    /* After shutdown: closed, and the registry's handles are gone. */
    assert_int_equal(ek_registry_lookup(rt, "oom", &c), EK_ECLOSED);
    assert_int_equal(ek_registry_register(rt, "late", be_service(&b)), EK_ECLOSED);
    assert_int_equal(ek_registry_unregister(rt, "oom"), EK_ECLOSED);
    ek_runtime_free(rt);
    assert_int_equal(ekt_alloc_live(), 0);
}

static void test_runtimes_have_separate_registries(void **s)
{
    (void)s;
    ek_runtime *r1 = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0), *r2 = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    be b1 = {.rt = r1}, b2 = {.rt = r2};
    assert_int_equal(ek_registry_register(r1, "svc", be_shareable(&b1)), EK_OK);
    ek_service *c;
    assert_int_equal(ek_registry_lookup(r2, "svc", &c), EK_ENOENT);
    assert_int_equal(ek_registry_register(r2, "svc", be_shareable(&b2)), EK_OK);
    assert_int_equal(ek_registry_lookup(r2, "svc", &c), EK_OK);
    assert_int_equal(request(r2, c, 1, NULL), EK_OK);
    assert_int_equal(atomic_load(&b2.calls), 1);
    assert_int_equal(atomic_load(&b1.calls), 0);
    ek_runtime_free(r1);
    assert_int_equal(atomic_load(&b1.handle_drops), 1);
    /* r2's registry is untouched by r1's shutdown. */
    ek_service *c2;
    assert_int_equal(ek_registry_lookup(r2, "svc", &c2), EK_OK);
    ek_service_free(c2);
    ek_runtime_free(r2);
    /* A clone outlives the runtime it came from: still a handle to free. */
    ek_service_free(c);
    assert_int_equal(atomic_load(&b2.handle_drops), 3);
    assert_int_equal(ekt_alloc_live(), 0);
}

static void test_buffered_clone_after_runtime_shutdown_is_closed(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    be b = {.rt = rt};
    assert_int_equal(ek_registry_register(rt, "buffered", be_service(&b)), EK_OK);
    ek_service *c;
    assert_int_equal(ek_registry_lookup(rt, "buffered", &c), EK_OK);
    assert_int_equal(request(rt, c, 5, NULL), EK_OK);
    assert_int_equal(ek_runtime_shutdown(rt, UINT64_MAX), EK_OK);
    assert_int_equal(atomic_load(&b.handle_drops), 1); /* the worker went */
    assert_int_equal(ek_service_status(c), EK_SERVICE_CLOSED);
    ek_runtime_free(rt);
    ek_service_free(c);
    assert_int_equal(ekt_alloc_live(), 0);
}

/* Threads register, look up, call and unregister at once (TSan checks it). */
typedef struct th_arg {
    ek_runtime *rt;
    be *b;
    int id, rounds, ok;
} th_arg;

static void *registry_thread(void *p)
{
    th_arg *a = p;
    char mine[32];
    snprintf(mine, sizeof mine, "svc-%d", a->id);
    for (int i = 0; i < a->rounds; i++) {
        ek_service *s = NULL;
        if (ek_service_new_shareable(&be_vt, a->b, be_clone, &s) != EK_OK) abort();
        if (ek_registry_register(a->rt, mine, s) != EK_OK) abort();
        ek_service *c = NULL;
        int rc = ek_registry_lookup(a->rt, "shared", &c);
        if (rc == EK_OK) {
            ek_future *f = NULL;
            ek_msg *m = NULL;
            if (ek_msg_resp_integer(i, &m) != EK_OK) abort();
            if (ek_service_oneshot(c, m, &f) != EK_OK) abort();
            void *out = NULL;
            if (ek_block_on(a->rt, f, &out) == EK_OK) {
                a->ok++;
                ek_msg_free(out);
            }
            ek_service_free(c);
        } else if (rc != EK_ENOENT) {
            abort();
        }
        if (ek_registry_lookup(a->rt, mine, &c) != EK_OK) abort();
        ek_service_free(c);
        if (ek_registry_unregister(a->rt, mine) != EK_OK) abort();
    }
    return NULL;
}

static void test_concurrent_use_from_threads(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    be b = {.rt = rt};
    assert_int_equal(ek_registry_register(rt, "shared", be_service(&b)), EK_OK);
    enum { N = 4 };
    pthread_t t[N];
    th_arg a[N];
    for (int i = 0; i < N; i++) {
        a[i] = (th_arg){rt, &b, i, (int)ekt_scale(200), 0};
        assert_int_equal(pthread_create(&t[i], NULL, registry_thread, &a[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ok += a[i].ok;
    }
    assert_int_equal(ok, N * (int)ekt_scale(200));
    assert_int_equal(atomic_load(&b.calls), ok);
    /* Every per-thread registration and its looked-up clone were freed. */
    assert_int_equal(atomic_load(&b.handle_drops), 2 * N * (int)ekt_scale(200));
    ekt_rt_free_checked(rt);
    assert_int_equal(atomic_load(&b.handle_drops), 2 * N * (int)ekt_scale(200) + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_lookup_unregister, ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments_give_exact_errors, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_runtimes_have_separate_registries, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_buffered_clone_after_runtime_shutdown_is_closed,
                                        ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_use_from_threads, ekt_setup, ekt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
