/* test_svc_net.c - the same middleware wraps a server's handler and a client
 * unchanged: one ek_svc_timeout around the handler of a framed server, another
 * around a client of a server, and both fire (the handler's future is dropped by
 * the server-side timeout; the client-side one answers EK_ETIMEDOUT while the
 * server still works on the request). Real sockets, the real clock. */
#include "svc_util.h"

static ek_server *serve(ek_runtime *rt, ek_service *handler, ek_sockaddr **addr)
{
    ek_tcp_listener *l = NULL;
    assert_int_equal(ek_tcp_listen(rt, "127.0.0.1:0", &l), EK_OK);
    assert_int_equal(ek_sockaddr_new(addr), EK_OK);
    assert_int_equal(ek_tcp_listener_local_addr(l, *addr), EK_OK);
    ek_codec *codec = NULL;
    assert_int_equal(ek_codec_lines(0, &codec), EK_OK);
    ek_server *s = NULL;
    assert_int_equal(ek_server_serve(rt, l, codec, handler, NULL, &s), EK_OK);
    return s;
}

static ek_service *client(ek_runtime *rt, const ek_sockaddr *addr)
{
    ek_codec *codec = NULL;
    assert_int_equal(ek_codec_lines(0, &codec), EK_OK);
    ek_service *c = NULL;
    assert_int_equal(ek_client_connect(rt, addr, codec, NULL, &c), EK_OK);
    return c;
}

static int line_request(ek_runtime *rt, ek_service *svc, const char *text)
{
    ek_msg *m = NULL;
    assert_int_equal(ek_msg_bytes_copy(text, strlen(text), &m), EK_OK);
    ek_future *f = NULL;
    assert_int_equal(ek_service_oneshot(svc, m, &f), EK_OK);
    void *out = NULL;
    int rc = ek_block_on(rt, f, &out);
    ek_msg_free(out);
    return rc;
}

static uint64_t server_metric(ek_server *s, int key)
{
    uint64_t v[EK_SERVER_METRIC_COUNT];
    assert_int_equal(ek_server_metrics(s, v, EK_SERVER_METRIC_COUNT), EK_SERVER_METRIC_COUNT);
    return v[key];
}

static void test_one_timeout_type_fires_on_server_and_client(void **s)
{
    (void)s;
    ek_runtime *rt = ekt_rt(EK_FLAVOR_MULTI_THREAD, 2);

    /* Server side: the handler takes 10 s; its timeout, 100 ms, fires first. */
    be handler = {.rt = rt, .delay_ms = 10000};
    ek_service *guarded;
    assert_int_equal(ek_svc_timeout(rt, be_service(&handler), 100, &guarded), EK_OK);
    ek_sockaddr *a1;
    ek_server *s1 = serve(rt, guarded, &a1);
    ek_service *plain = client(rt, a1);
    uint64_t t0 = ekt_now_ms();
    int rc = line_request(rt, plain, "slow");
    assert_true(rc < 0); /* the server answered the failure and closed */
    assert_true(ekt_now_ms() - t0 < 5000);
    assert_int_equal(atomic_load(&handler.calls), 1);
    assert_int_equal(atomic_load(&handler.completed), 0);
    assert_int_equal(atomic_load(&handler.resp_drops), 1); /* cancelled by the timeout */
    assert_int_equal(server_metric(s1, EK_SERVER_METRIC_ERRORS), 1);

    /* Client side: a server whose handler takes 10 s and has no timeout; the
     * client's own ek_svc_timeout answers in 100 ms. */
    be slow = {.rt = rt, .delay_ms = 10000};
    ek_sockaddr *a2;
    ek_server *s2 = serve(rt, be_service(&slow), &a2);
    ek_service *guarded_client;
    assert_int_equal(ek_svc_timeout(rt, client(rt, a2), 100, &guarded_client), EK_OK);
    t0 = ekt_now_ms();
    assert_int_equal(line_request(rt, guarded_client, "slow"), EK_ETIMEDOUT);
    assert_true(ekt_now_ms() - t0 < 5000);
    for (int i = 0; i < 5000 && atomic_load(&slow.calls) == 0; i++) usleep(1000);
    assert_int_equal(atomic_load(&slow.calls), 1);     /* the request did arrive */
    assert_int_equal(atomic_load(&slow.completed), 0); /* and is still being worked on */

    ek_service_free(plain);
    ek_service_free(guarded_client);
    (void)ek_server_shutdown(s1, 0);
    (void)ek_server_shutdown(s2, 0); /* the slow request is dropped: forced */
    ek_server_free(s1);
    ek_server_free(s2);
    ek_sockaddr_free(a1);
    ek_sockaddr_free(a2);
    ekt_rt_free_checked(rt);
    assert_int_equal(atomic_load(&slow.resp_drops), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_timeout_type_fires_on_server_and_client, ekt_setup,
                                        ekt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
