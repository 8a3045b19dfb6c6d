/* test_buf.c - ek_buf and ek_bytes: zero-copy splitting (a 1 MiB frame read in
 * pieces is never copied), slices outliving their buffer, growth with and without
 * shared memory, host-owned memory, exact errors, allocation failure, and
 * concurrent retain/release. */
#include "support.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Simulated socket read: write `n` bytes of `c` at the tail, then commit. */
/* Another reference to b, asserting success. */
static ek_bytes *bref(ek_bytes *b)
{
    ek_bytes *o = NULL;
    assert_int_equal(ek_bytes_clone(b, &o), EK_OK);
    assert_ptr_equal(o, b);
    return o;
}

static void fake_read(ek_buf *buf, size_t n, uint8_t c)
{
    uint8_t *tail = NULL;
    size_t avail = 0;
    assert_int_equal(ek_buf_reserve(buf, n, &tail, &avail), EK_OK);
    assert_true(avail >= n);
    memset(tail, c, n);
    assert_int_equal(ek_buf_advance(buf, n), EK_OK);
}

static void test_split_to_shares_the_read_memory(void **s)
{
    (void)s;
    ek_buf *buf;
    assert_int_equal(ek_buf_new(64, &buf), EK_OK);
    uint8_t *tail;
    size_t avail;
    assert_int_equal(ek_buf_reserve(buf, 10, &tail, &avail), EK_OK);
    assert_true(avail >= 64);
    memcpy(tail, "PING\r\nECHO", 10);
    assert_int_equal(ek_buf_advance(buf, 10), EK_OK);
    assert_int_equal(ek_buf_len(buf), 10);
    ek_bytes *frame;
    assert_int_equal(ek_buf_split_to(buf, 6, &frame), EK_OK);
    /* The frame is the buffer's memory, not a copy. */
    assert_ptr_equal(ek_bytes_data(frame), tail);
    assert_int_equal(ek_bytes_len(frame), 6);
    assert_memory_equal(ek_bytes_data(frame), "PING\r\n", 6);
    assert_int_equal(ek_buf_len(buf), 4);
    assert_ptr_equal(ek_buf_data(buf), tail + 6);
    /* A slice of the frame shares it too. */
    ek_bytes *word;
    assert_int_equal(ek_bytes_slice(frame, 0, 4, &word), EK_OK);
    assert_ptr_equal(ek_bytes_data(word), tail);
    /* Slices outlive the buffer. */
    ek_buf_free(buf);
    assert_memory_equal(ek_bytes_data(word), "PING", 4);
    ek_bytes_release(frame);
    assert_memory_equal(ek_bytes_data(word), "PING", 4);
    ek_bytes_release(word);
}

static void test_one_mib_frame_read_in_pieces_is_not_copied(void **s)
{
    (void)s;
    const size_t mib = 1u << 20;
    ek_buf *buf;
    assert_int_equal(ek_buf_new(0, &buf), EK_OK);
    /* A length-delimited decoder knows the frame size from its header and
     * reserves it; the socket then fills it in pieces of 64 KiB. */
    uint8_t *start;
    assert_int_equal(ek_buf_reserve(buf, mib, &start, NULL), EK_OK);
    for (size_t done = 0; done < mib; done += 65536) {
        uint8_t *tail;
        assert_int_equal(ek_buf_reserve(buf, 65536, &tail, NULL), EK_OK);
        assert_ptr_equal(tail, start + done); /* no move while reading */
        fake_read(buf, 65536, (uint8_t)(done >> 16));
    }
    ek_bytes *frame;
    assert_int_equal(ek_buf_split_to(buf, mib, &frame), EK_OK);
    assert_ptr_equal(ek_bytes_data(frame), start);
    assert_int_equal(ek_bytes_len(frame), mib);
    assert_int_equal(ek_bytes_data(frame)[mib - 1], 15);
    ek_msg *m;
    assert_int_equal(ek_msg_bytes_new(bref(frame), &m), EK_OK);
    const uint8_t *d;
    size_t n;
    assert_int_equal(ek_msg_data(m, &d, &n), EK_OK);
    assert_ptr_equal(d, start);
    assert_int_equal(n, mib);
    ek_msg_free(m);
    ek_bytes_release(frame);
    ek_buf_free(buf);
}

static void test_growth_with_live_slices_moves_held_bytes_only(void **s)
{
    (void)s;
    ek_buf *buf;
    assert_int_equal(ek_buf_new(16, &buf), EK_OK);
    assert_int_equal(ek_buf_append(buf, "abcdefghijklmnop", 16), EK_OK);
    ek_bytes *front;
    assert_int_equal(ek_buf_split_to(buf, 10, &front), EK_OK);
    const uint8_t *old = ek_bytes_data(front);
    /* Growing while `front` shares the memory: the 6 held bytes move. */
    uint8_t *tail;
    assert_int_equal(ek_buf_reserve(buf, 100, &tail, NULL), EK_OK);
    assert_int_equal(ek_buf_len(buf), 6);
    assert_memory_equal(ek_buf_data(buf), "klmnop", 6);
    assert_ptr_equal(tail, ek_buf_data(buf) + 6);
    assert_ptr_equal(ek_bytes_data(front), old);
    assert_memory_equal(ek_bytes_data(front), "abcdefghij", 10);
    ek_bytes_release(front);
    ek_buf_free(buf);
}

static void test_unique_buffer_reclaims_space_in_place(void **s)
{
    (void)s;
    ek_buf *buf;
    assert_int_equal(ek_buf_new(64, &buf), EK_OK);
    const uint8_t *base;
    uint8_t *tail;
    assert_int_equal(ek_buf_reserve(buf, 1, &tail, NULL), EK_OK);
    base = tail;
    fake_read(buf, 60, 'x');
    ek_bytes *b;
    assert_int_equal(ek_buf_split_to(buf, 58, &b), EK_OK);
    ek_bytes_release(b); /* the buffer is the memory's only user again */
    /* 2 held bytes, 4 spare: asking for 50 moves them to the front in place. */
    assert_int_equal(ek_buf_reserve(buf, 50, &tail, NULL), EK_OK);
    assert_ptr_equal(ek_buf_data(buf), base);
    assert_ptr_equal(tail, base + 2);
    /* A split of everything on a unique buffer rewinds it. */
    assert_int_equal(ek_buf_clear(buf), EK_OK);
    assert_int_equal(ek_buf_reserve(buf, 1, &tail, NULL), EK_OK);
    assert_ptr_equal(tail, base);
    ek_buf_free(buf);
}

static void test_freeze_discard_and_split_bytes(void **s)
{
    (void)s;
    ek_buf *buf;
    assert_int_equal(ek_buf_new(0, &buf), EK_OK);
    assert_int_equal(ek_buf_len(buf), 0);
    assert_int_equal(ek_buf_spare(buf), 0);
    assert_int_equal(ek_buf_append(buf, "hello world", 11), EK_OK);
    assert_int_equal(ek_buf_discard(buf, 6), EK_OK);
    ek_bytes *all;
    assert_int_equal(ek_buf_freeze(buf, &all), EK_OK);
    assert_int_equal(ek_buf_len(buf), 0);
    assert_int_equal(ek_bytes_len(all), 5);
    assert_memory_equal(ek_bytes_data(all), "world", 5);
    ek_bytes *wo;
    assert_int_equal(ek_bytes_split_to(all, 2, &wo), EK_OK);
    assert_memory_equal(ek_bytes_data(wo), "wo", 2);
    assert_memory_equal(ek_bytes_data(all), "rld", 3);
    assert_ptr_equal(ek_bytes_data(wo) + 2, ek_bytes_data(all));
    /* A retained handle cannot be split (others see it immutable). */
    ek_bytes *again = bref(all);
    assert_ptr_equal(again, all);
    ek_bytes *x;
    assert_int_equal(ek_bytes_split_to(all, 1, &x), EK_EBUSY);
    ek_bytes_release(again);
    assert_int_equal(ek_bytes_split_to(all, 4, &x), EK_ERANGE);
    assert_int_equal(ek_bytes_split_to(all, 3, &x), EK_OK);
    assert_int_equal(ek_bytes_len(all), 0);
    assert_non_null(ek_bytes_data(all));
    ek_bytes *cp;
    assert_int_equal(ek_bytes_copy("rld", 3, &cp), EK_OK);
    assert_int_equal(ek_bytes_equal(x, cp), 1);
    assert_int_equal(ek_bytes_equal(x, wo), 0);
    assert_int_equal(ek_bytes_equal(x, NULL), EK_EINVAL);
    ek_bytes_release(cp);
    ek_bytes_release(x);
    ek_bytes_release(all);
    ek_bytes_release(wo);
    /* An empty split gives an empty, valid slice. */
    ek_bytes *e;
    assert_int_equal(ek_buf_split_to(buf, 0, &e), EK_OK);
    assert_int_equal(ek_bytes_len(e), 0);
    assert_non_null(ek_bytes_data(e));
    ek_bytes_release(e);
    ek_buf_free(buf);
}

static atomic_int host_drops;
static void host_drop(void *p)
{
    assert_ptr_equal(p, &host_drops);
    atomic_fetch_add(&host_drops, 1);
}

static void test_wrap_drops_host_memory_after_last_slice(void **s)
{
    (void)s;
    static const char text[] = "host owned bytes";
    atomic_store(&host_drops, 0);
    ek_bytes *b, *part;
    assert_int_equal(ek_bytes_wrap(text, 16, host_drop, &host_drops, &b), EK_OK);
    assert_ptr_equal(ek_bytes_data(b), (const uint8_t *)text);
    assert_int_equal(ek_bytes_slice(b, 5, 5, &part), EK_OK);
    assert_ptr_equal(ek_bytes_data(part), (const uint8_t *)text + 5);
    ek_bytes_release(b);
    assert_int_equal(atomic_load(&host_drops), 0);
    ek_bytes_release(part);
    assert_int_equal(atomic_load(&host_drops), 1);
    /* Empty wrap still drops its owner, once. */
    assert_int_equal(ek_bytes_wrap(text, 0, host_drop, &host_drops, &b), EK_OK);
    ek_bytes_release(b);
    assert_int_equal(atomic_load(&host_drops), 2);
    /* Errors run the drop too. */
    assert_int_equal(ek_bytes_wrap(NULL, 3, host_drop, &host_drops, &b), EK_EINVAL);
    assert_int_equal(atomic_load(&host_drops), 3);
    assert_int_equal(ek_bytes_wrap(text, 3, host_drop, &host_drops, NULL), EK_EINVAL);
    assert_int_equal(atomic_load(&host_drops), 4);
    ekt_alloc_fail_after(0);
    assert_int_equal(ek_bytes_wrap(text, 3, host_drop, &host_drops, &b), EK_ENOMEM);
    assert_int_equal(atomic_load(&host_drops), 5);
    ekt_alloc_fail_after(1);
    assert_int_equal(ek_bytes_wrap(text, 3, host_drop, &host_drops, &b), EK_ENOMEM);
    assert_int_equal(atomic_load(&host_drops), 6);
}

static void test_bad_arguments_give_exact_errors(void **s)
{
    (void)s;
    ek_buf *buf;
    ek_bytes *b;
    int not_a_handle[8] = {0};
    assert_int_equal(ek_buf_new(0, NULL), EK_EINVAL);
    assert_int_equal(ek_buf_new(EK_BUF_MAX + 1, &buf), EK_ERANGE);
    assert_int_equal(ek_bytes_copy(NULL, 1, &b), EK_EINVAL);
    assert_int_equal(ek_bytes_copy("x", 1, NULL), EK_EINVAL);
    assert_int_equal(ek_bytes_copy("x", EK_BUF_MAX + 1, &b), EK_ERANGE);
    assert_null(ek_bytes_data((ek_bytes *)not_a_handle));
    assert_int_equal(ek_bytes_clone((ek_bytes *)not_a_handle, &b), EK_EINVAL);
    assert_int_equal(ek_bytes_len(NULL), EK_EINVAL);
    assert_int_equal(ek_buf_len(NULL), EK_EINVAL);
    assert_int_equal(ek_buf_spare(NULL), EK_EINVAL);
    ek_bytes_release(NULL);
    ek_bytes_release((ek_bytes *)not_a_handle);
    assert_int_equal(ek_buf_reserve((ek_buf *)not_a_handle, 1, NULL, NULL), EK_EINVAL);
    assert_int_equal(ek_buf_advance(NULL, 0), EK_EINVAL);
    assert_int_equal(ek_buf_append(NULL, "x", 1), EK_EINVAL);
    assert_int_equal(ek_buf_split_to(NULL, 0, &b), EK_EINVAL);
    assert_int_equal(ek_buf_freeze(NULL, &b), EK_EINVAL);
    assert_int_equal(ek_buf_discard(NULL, 0), EK_EINVAL);
    assert_int_equal(ek_buf_clear(NULL), EK_EINVAL);
    assert_null(ek_buf_data(NULL));
    ek_buf_free(NULL);
    ek_buf_free((ek_buf *)not_a_handle);

    assert_int_equal(ek_buf_new(8, &buf), EK_OK);
    assert_int_equal(ek_buf_advance(buf, 9), EK_ERANGE);
    assert_int_equal(ek_buf_append(buf, NULL, 1), EK_EINVAL);
    assert_int_equal(ek_buf_append(buf, NULL, 0), EK_OK);
    assert_int_equal(ek_buf_append(buf, "abc", 3), EK_OK);
    assert_int_equal(ek_buf_split_to(buf, 4, &b), EK_ERANGE);
    assert_int_equal(ek_buf_split_to(buf, 1, NULL), EK_EINVAL);
    assert_int_equal(ek_buf_discard(buf, 4), EK_ERANGE);
    assert_int_equal(ek_buf_reserve(buf, EK_BUF_MAX, NULL, NULL), EK_ERANGE);
    assert_int_equal(ek_buf_len(buf), 3);
    assert_int_equal(ek_buf_split_to(buf, 3, &b), EK_OK);
    ek_bytes *sl;
    assert_int_equal(ek_bytes_slice(b, 2, 2, &sl), EK_ERANGE);
    assert_int_equal(ek_bytes_slice(b, 4, 0, &sl), EK_ERANGE);
    assert_int_equal(ek_bytes_slice(b, 3, 0, &sl), EK_OK);
    assert_int_equal(ek_bytes_len(sl), 0);
    ek_bytes_release(sl);
    assert_int_equal(ek_bytes_slice(b, 0, 1, NULL), EK_EINVAL);
    assert_int_equal(ek_bytes_split_to(b, 1, NULL), EK_EINVAL);
    ek_bytes_release(b);
    ek_buf_free(buf);
}

static void test_allocation_failure_leaves_buffer_unchanged(void **s)
{
    (void)s;
    ek_buf *buf;
    ekt_alloc_fail_after(0);
    assert_int_equal(ek_buf_new(0, &buf), EK_ENOMEM);
    ekt_alloc_fail_after(1);
    assert_int_equal(ek_buf_new(16, &buf), EK_ENOMEM);
    ekt_alloc_fail_after(-1);
    assert_int_equal(ek_buf_new(4, &buf), EK_OK);
    assert_int_equal(ek_buf_append(buf, "abcd", 4), EK_OK);
    /* Unique growth (realloc) fails: same bytes held. */
    ekt_alloc_fail_after(0);
    assert_int_equal(ek_buf_append(buf, "efgh", 4), EK_ENOMEM);
    assert_int_equal(ek_buf_len(buf), 4);
    assert_memory_equal(ek_buf_data(buf), "abcd", 4);
    /* Shared growth (new chunk) fails: same. */
    ek_bytes *a;
    ekt_alloc_fail_after(-1);
    assert_int_equal(ek_buf_split_to(buf, 1, &a), EK_OK);
    ekt_alloc_fail_after(0);
    assert_int_equal(ek_buf_reserve(buf, 100, NULL, NULL), EK_ENOMEM);
    assert_int_equal(ek_buf_len(buf), 3);
    assert_memory_equal(ek_buf_data(buf), "bcd", 3);
    ekt_alloc_fail_after(0);
    ek_bytes *b2;
    assert_int_equal(ek_buf_split_to(buf, 1, &b2), EK_ENOMEM);
    assert_int_equal(ek_buf_len(buf), 3);
    ekt_alloc_fail_after(0);
    assert_int_equal(ek_bytes_slice(a, 0, 1, &b2), EK_ENOMEM);
    ekt_alloc_fail_after(0);
    assert_int_equal(ek_bytes_copy("x", 1, &b2), EK_ENOMEM);
    ekt_alloc_fail_after(1);
    assert_int_equal(ek_bytes_copy("x", 1, &b2), EK_ENOMEM);
    ekt_alloc_fail_after(-1);
    ek_bytes_release(a);
    ek_buf_free(buf);
}

/* Many threads retain and release slices of one chunk while the owner frees the
 * buffer: the memory goes exactly when the last reference does (ASan/TSan). */
typedef struct share_arg {
    ek_bytes *b;
    int rounds;
} share_arg;

static void *share_thread(void *p)
{
    share_arg *a = p;
    for (int i = 0; i < a->rounds; i++) {
        ek_bytes *r = NULL;
        if (ek_bytes_clone(a->b, &r) != EK_OK) abort();
        ek_bytes *sl = NULL;
        if (ek_bytes_slice(r, 1, 2, &sl) == EK_OK) {
            if (ek_bytes_data(sl)[0] != 'b') abort();
            ek_bytes_release(sl);
        }
        ek_bytes_release(r);
    }
    ek_bytes_release(a->b);
    return NULL;
}

static void test_concurrent_retain_release_frees_once(void **s)
{
    (void)s;
    ek_buf *buf;
    assert_int_equal(ek_buf_new(0, &buf), EK_OK);
    assert_int_equal(ek_buf_append(buf, "abcdef", 6), EK_OK);
    ek_bytes *b;
    assert_int_equal(ek_buf_split_to(buf, 4, &b), EK_OK);
    enum { N = 4 };
    pthread_t t[N];
    share_arg a[N];
    for (int i = 0; i < N; i++) {
        a[i].b = bref(b);
        a[i].rounds = (int)ekt_scale(20000);
        assert_int_equal(pthread_create(&t[i], NULL, share_thread, &a[i]), 0);
    }
    ek_bytes_release(b);
    ek_buf_free(buf);
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    assert_int_equal(ekt_alloc_live(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_split_to_shares_the_read_memory, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_one_mib_frame_read_in_pieces_is_not_copied, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_growth_with_live_slices_moves_held_bytes_only,
                                        ekt_setup, ekt_teardown),
        cmocka_unit_test_setup_teardown(test_unique_buffer_reclaims_space_in_place, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_freeze_discard_and_split_bytes, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_wrap_drops_host_memory_after_last_slice, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments_give_exact_errors, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failure_leaves_buffer_unchanged, ekt_setup,
                                        ekt_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_retain_release_frees_once, ekt_setup,
                                        ekt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
