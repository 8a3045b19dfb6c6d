/* test_resolve.c - ek_resolve on the blocking pool and ek_tcp_connect_host.
 *
 * Cases that need the name "localhost" are skipped, with a message, on a system
 * that cannot resolve it (a minimal root without /etc/hosts): that is the
 * machine's configuration, not a failure of the resolver. */
#include "net_helpers.h"

#include <netdb.h>

/* Whether the C library resolves "localhost" here (asked once, directly). */
static int localhost_resolves(void)
{
    static int known = -1;
    if (known < 0) {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
        known = getaddrinfo("localhost", "80", &hints, &res) == 0;
        if (res != NULL) freeaddrinfo(res);
    }
    return known;
}

/* Skip the calling test unless "localhost" resolves. */
#define NEEDS_LOCALHOST()                                                                          \
    do {                                                                                           \
        if (!localhost_resolves()) {                                                               \
            fprintf(stderr, "skipped: this system cannot resolve \"localhost\" (no /etc/hosts "    \
                            "entry?); the case needs it\n");                                       \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static ek_addr_list *t_resolve(ek_runtime *rt, const char *host, uint16_t port, unsigned hints,
                               int want_rc)
{
    ek_future *f;
    void *out = NULL;
    assert_int_equal(ek_resolve(rt, host, port, hints, &f), EK_OK);
    assert_int_equal(t_await(rt, f, &out), want_rc);
    return out;
}

static void test_resolve_localhost(void **state)
{
    NEEDS_LOCALHOST();
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    char text[EK_SOCKADDR_STRLEN];
    ek_addr_list *l = t_resolve(rt, "localhost", 99, 0, EK_OK);
    int n = ek_addr_list_count(l);
    assert_true(n >= 1);
    for (int i = 0; i < n; i++) {
        const ek_sockaddr *a = ek_addr_list_get(l, (size_t)i);
        assert_int_equal(ek_sockaddr_port(a), 99);
        ek_sockaddr_format(a, text, sizeof text);
        assert_true(strncmp(text, "127.", 4) == 0 || strcmp(text, "[::1]:99") == 0);
    }
    ek_addr_list_free(l);

    /* family hints */
    l = t_resolve(rt, "localhost", 1, EK_RESOLVE_INET, EK_OK);
    for (int i = 0; i < ek_addr_list_count(l); i++)
        assert_int_equal(ek_sockaddr_family(ek_addr_list_get(l, (size_t)i)), EK_AF_INET);
    ek_addr_list_free(l);
    ekt_rt_free_checked(rt);
}

static void test_resolve_numeric(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    char text[EK_SOCKADDR_STRLEN];

    ek_addr_list *l = t_resolve(rt, "127.0.0.1", 8080, 0, EK_OK);
    assert_int_equal(ek_addr_list_count(l), 1);
    assert_int_equal(ek_sockaddr_format(ek_addr_list_get(l, 0), text, sizeof text), 14);
    assert_string_equal(text, "127.0.0.1:8080");
    assert_null(ek_addr_list_get(l, 1));
    ek_addr_list_free(l);

    l = t_resolve(rt, "::1", 2, EK_RESOLVE_INET6, EK_OK);
    assert_int_equal(ek_sockaddr_family(ek_addr_list_get(l, 0)), EK_AF_INET6);
    ek_addr_list_free(l);
    /* an IPv4 literal with an IPv6-only hint: glibc says NONAME or FAMILY */
    ek_future *f;
    assert_int_equal(ek_resolve(rt, "127.0.0.1", 2, EK_RESOLVE_INET6, &f), EK_OK);
    int rc = t_await(rt, f, NULL);
    assert_true(rc == EK_EAI_NONAME || rc == EK_EAI_FAMILY);

    /* passive with no host: the wildcard address, to bind */
    l = t_resolve(rt, NULL, 7000, EK_RESOLVE_PASSIVE | EK_RESOLVE_INET, EK_OK);
    ek_sockaddr_format(ek_addr_list_get(l, 0), text, sizeof text);
    assert_string_equal(text, "0.0.0.0:7000");
    ek_addr_list_free(l);

    ekt_rt_free_checked(rt);
}

static void test_resolve_errors(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_CURRENT_THREAD, 0);
    ek_future *f;
    void *out = NULL;
    /* .invalid never resolves (RFC 6761); without DNS it may be a temporary
     * failure instead */
    assert_int_equal(ek_resolve(rt, "no-such-host.invalid", 80, 0, &f), EK_OK);
    int rc = t_await(rt, f, &out);
    assert_true(rc == EK_EAI_NONAME || rc == EK_EAI_AGAIN || rc == EK_EAI_FAIL);
    assert_null(out);

    assert_int_equal(ek_resolve(rt, NULL, 80, 0, &f), EK_EINVAL);
    assert_int_equal(ek_resolve(rt, "x", 80, 0x80, &f), EK_EINVAL);
    assert_int_equal(ek_resolve(rt, "x", 80, 0, NULL), EK_EINVAL);
    assert_int_equal(ek_resolve(NULL, "x", 80, 0, &f), EK_EINVAL);
    assert_int_equal(ek_addr_list_count(NULL), EK_EINVAL);
    assert_null(ek_addr_list_get(NULL, 0));
    ek_addr_list_free(NULL);

    /* allocation failure is reported, nothing leaks */
    ekt_alloc_fail_here_after(0);
    assert_int_equal(ek_resolve(rt, "localhost", 80, 0, &f), EK_ENOMEM);
    ekt_alloc_fail_here_after(1);
    assert_int_equal(ek_resolve(rt, "localhost", 80, 0, &f), EK_ENOMEM);
    ekt_alloc_fail_here_after(-1);
    ekt_rt_free_checked(rt);
}

static void test_drop_resolve_before_it_completes(void **state)
{
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    for (int i = 0; i < 20; i++) {
        ek_future *f;
        assert_int_equal(ek_resolve(rt, "localhost", 80, 0, &f), EK_OK);
        ek_future_drop(f); /* never polled: the job's list goes to out_drop */
    }
    ekt_rt_free_checked(rt); /* checks that every list and job was freed */
}

static void test_connect_host_tries_each_address(void **state)
{
    NEEDS_LOCALHOST();
    /* The listener is on 127.0.0.1 only; "localhost" may resolve to ::1 first,
     * which refuses, so the next address must be tried. */
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);
    ek_sockaddr *addr;
    ek_tcp_listener *l = t_tcp_listen(rt, "127.0.0.1:0", &addr);
    uint16_t port = (uint16_t)ek_sockaddr_port(addr);
    ek_future *f;
    void *s = NULL;
    assert_int_equal(ek_tcp_connect_host(rt, "localhost", port, &f), EK_OK);
    assert_int_equal(t_await(rt, f, &s), EK_OK);
    ek_tcp_stream *server = t_tcp_accept(rt, l);
    t_tcp_write_all(rt, s, "hi", 2);
    char buf[2];
    assert_int_equal(t_tcp_read_exact(rt, server, buf, 2), 2);
    assert_memory_equal(buf, "hi", 2);
    ek_tcp_free(s);
    ek_tcp_free(server);

    /* nobody listens any more: the last address's error */
    ek_tcp_listener_free(l);
    assert_int_equal(ek_tcp_connect_host(rt, "localhost", port, &f), EK_OK);
    assert_int_equal(t_await(rt, f, NULL), EK_ECONNREFUSED);
    /* an unknown name: the resolver's error */
    assert_int_equal(ek_tcp_connect_host(rt, "no-such-host.invalid", port, &f), EK_OK);
    int rc = t_await(rt, f, NULL);
    assert_true(rc == EK_EAI_NONAME || rc == EK_EAI_AGAIN || rc == EK_EAI_FAIL);
    assert_int_equal(ek_tcp_connect_host(rt, NULL, port, &f), EK_EINVAL);
    /* dropped before completion: nothing leaks */
    assert_int_equal(ek_tcp_connect_host(rt, "localhost", port, &f), EK_OK);
    ek_future_drop(f);

    ek_sockaddr_free(addr);
    ekt_rt_free_checked(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, ekt_setup, ekt_teardown)
        T(test_resolve_numeric),
        T(test_resolve_localhost),
        T(test_resolve_errors),
        T(test_drop_resolve_before_it_completes),
        T(test_connect_host_tries_each_address),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
