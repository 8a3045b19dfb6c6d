/*
 * test_cache.c - the per-thread block caches (ek__cache_alloc / ek__cache_free,
 * core/alloc.c): a freed block is the next one given on its thread, the caches
 * are bypassed under a user's allocator (which then sees every block), blocks
 * freed on another thread join that thread's cache and go with its exit, and the
 * objects made from them (futures, messages, byte payloads at the size limits)
 * keep their contents.
 *
 * The caches are off under AddressSanitizer (a cached block would hide a use
 * after free): the reuse checks then only check that nothing breaks.
 */
#include <pthread.h>
#include <string.h>

#include "support.h"

#include "common.h"

static bool cache_on(void)
{
    return ekt_sanitizer() != 1;
}

static void test_a_freed_block_is_the_next_one_given(void **s)
{
    (void)s;
    unsigned classes[] = {EK__CACHE_SMALL, EK__CACHE_MSG};
    for (size_t k = 0; k < 2; k++) {
        void *a = ek__cache_alloc(classes[k]);
        void *b = ek__cache_alloc(classes[k]);
        assert_non_null(a);
        assert_non_null(b);
        size_t size = classes[k] == EK__CACHE_SMALL ? EK__CACHE_SMALL_SIZE : EK__CACHE_MSG_SIZE;
        memset(a, 0xa5, size); /* the whole block is the caller's */
        memset(b, 0x5a, size);
        ek__cache_free(classes[k], a);
        ek__cache_free(classes[k], b);
        void *c = ek__cache_alloc(classes[k]);
        void *d = ek__cache_alloc(classes[k]);
        if (cache_on()) {
            assert_ptr_equal(c, b); /* last in, first out */
            assert_ptr_equal(d, a);
        }
        ek__cache_free(classes[k], c);
        ek__cache_free(classes[k], d);
    }
    ek__cache_free(EK__CACHE_SMALL, NULL); /* ignored */
}

static void test_a_user_allocator_sees_every_block(void **s)
{
    (void)s;
    /* A cached block from the C library's allocator first. */
    void *pre = ek__cache_alloc(EK__CACHE_MSG);
    ek__cache_free(EK__CACHE_MSG, pre);
    ekt_alloc_install();
    long total = ekt_alloc_total(), live = ekt_alloc_live();
    void *a = ek__cache_alloc(EK__CACHE_MSG);
    assert_non_null(a);
    assert_ptr_not_equal(a, pre); /* not the cached one: the user's allocator made it */
    assert_int_equal(ekt_alloc_total(), total + 1);
    assert_int_equal(ekt_alloc_live(), live + 1);
    ek__cache_free(EK__CACHE_MSG, a);
    assert_int_equal(ekt_alloc_live(), live); /* freed, not kept */
    /* Failure injection reaches it too. */
    ekt_alloc_fail_after(0);
    assert_null(ek__cache_alloc(EK__CACHE_SMALL));
    ekt_alloc_fail_after(-1);
    ek_msg *m = NULL;
    assert_int_equal(ek_msg_resp_string(EK_RESP_BULK, "x", 1, &m), EK_OK);
    assert_true(ekt_alloc_live() > live);
    ek_msg_free(m);
    assert_int_equal(ekt_alloc_live(), live);
    assert_int_equal(ek_set_allocator(NULL, NULL, NULL, NULL), EK_OK); /* back to libc's */
}

#define BLOCKS 3000 /* more than EK__CACHE_DEPTH: the rest are freed */

typedef struct {
    void **blocks;
    size_t n;
} frees;

static void *free_them(void *arg)
{
    frees *f = arg;
    for (size_t i = 0; i < f->n; i++) ek__cache_free(EK__CACHE_SMALL, f->blocks[i]);
    /* This thread's cache now holds EK__CACHE_DEPTH of them: its exit frees
     * them (a leak checker would see them otherwise). One of them again: */
    void *again = ek__cache_alloc(EK__CACHE_SMALL);
    memset(again, 1, EK__CACHE_SMALL_SIZE);
    ek__cache_free(EK__CACHE_SMALL, again);
    return NULL;
}

static void test_blocks_freed_on_another_thread_join_its_cache(void **s)
{
    (void)s;
    static void *blocks[BLOCKS];
    for (size_t i = 0; i < BLOCKS; i++) {
        blocks[i] = ek__cache_alloc(EK__CACHE_SMALL);
        assert_non_null(blocks[i]);
        memset(blocks[i], (int)i, EK__CACHE_SMALL_SIZE);
    }
    frees f = {blocks, BLOCKS};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_them, &f), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    /* This thread's cache did not get them: its blocks are its own frees'. */
    void *mine = ek__cache_alloc(EK__CACHE_SMALL);
    void *mine2 = ek__cache_alloc(EK__CACHE_SMALL);
    ek__cache_free(EK__CACHE_SMALL, mine2);
    void *again = ek__cache_alloc(EK__CACHE_SMALL);
    if (cache_on()) assert_ptr_equal(again, mine2);
    ek__cache_free(EK__CACHE_SMALL, again);
    ek__cache_free(EK__CACHE_SMALL, mine);
}

/* Futures, messages and payload copies made from cached blocks, over and over,
 * at the sizes where a block stops fitting. */
static int ready_poll(void *state, ek_cx *cx, void **out)
{
    (void)cx;
    *out = state;
    return EK_OK;
}

static void test_objects_from_cached_blocks_keep_their_contents(void **s)
{
    (void)s;
    uint8_t data[400];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7 + 1);
    for (int round = 0; round < 3; round++) {
        for (size_t len = 0; len < sizeof data; len++) {
            ek_msg *m = NULL;
            assert_int_equal(ek_msg_resp_string(EK_RESP_BULK, data, len, &m), EK_OK);
            ek_bytes *b = NULL;
            assert_int_equal(ek_bytes_copy(data, len, &b), EK_OK);
            ek_future *f = NULL;
            assert_int_equal(ek_future_new(ready_poll, NULL, m, &f), EK_OK);
            ek_future *r = NULL;
            ek_msg *reply = NULL;
            assert_int_equal(ek_msg_resp_string(EK_RESP_SIMPLE, "OK", 2, &reply), EK_OK);
            assert_int_equal(ek_service_ready(EK_OK, reply, &r), EK_OK);
            const uint8_t *p;
            size_t n;
            assert_int_equal(ek_msg_data(m, &p, &n), EK_OK);
            assert_int_equal(n, len);
            if (len) assert_memory_equal(p, data, len);
            assert_int_equal(ek_bytes_len(b), (int64_t)len);
            if (len) assert_memory_equal(ek_bytes_data(b), data, len);
            ek_future_drop(r); /* frees reply */
            ek_future_drop(f);
            ek_bytes_release(b);
            ek_msg_free(m);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_freed_block_is_the_next_one_given),
        cmocka_unit_test(test_a_user_allocator_sees_every_block),
        cmocka_unit_test(test_blocks_freed_on_another_thread_join_its_cache),
        cmocka_unit_test(test_objects_from_cached_blocks_keep_their_contents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
