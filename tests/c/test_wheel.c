/*
 * test_wheel.c - the timing wheel alone (core/time/wheel.c): no runtime, no
 * clock; the tests drive time by hand, either tick by tick or as a driver
 * does (jump to the next expiration, poll).
 */
#include "support.h"

#include "time/wheel.h"

#include <stdlib.h>

/* ---- helpers ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void)
{
    /* xorshift64*: deterministic, so failures reproduce. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

/* The level an entry due at `when` belongs to, recomputed independently of
 * wheel.c: the highest differing bit in groups of six, clamped to the top. */
static unsigned expected_level(uint64_t elapsed, uint64_t when)
{
    uint64_t diff = (elapsed ^ when) | 63u;
    unsigned bit = 0;
    while (bit < 63 && (diff >> (bit + 1)) != 0) bit++;
    unsigned level = bit / 6;
    return level >= EK__WHEEL_LEVELS ? EK__WHEEL_LEVELS - 1 : level;
}

/* Walk the whole wheel and check the invariants stated in wheel.c. */
static void assert_invariants(const ek__wheel *w)
{
    size_t count = 0;
    for (unsigned l = 0; l < EK__WHEEL_LEVELS; l++) {
        const ek__wheel_level *lv = &w->levels[l];
        for (unsigned s = 0; s < EK__WHEEL_SLOTS; s++) {
            const ek__list *head = &lv->slots[s];
            bool bit = (lv->occupied >> s) & 1u;
            assert_int_equal(bit, !ek__list_empty(head)); /* W2 */
            for (const ek__list *n = head->next; n != head; n = n->next) {
                const ek__wheel_entry *e = EK__CONTAINER_OF(n, ek__wheel_entry, link);
                assert_true(e->when > w->elapsed); /* W1 */
                assert_int_equal(e->level, l);
                assert_int_equal(e->slot, s);
                assert_int_equal(expected_level(w->elapsed, e->when), l);
                assert_int_equal((e->when >> (6 * l)) & 63u, s);
                count++;
            }
        }
    }
    for (const ek__list *n = w->pending.next; n != &w->pending; n = n->next) {
        const ek__wheel_entry *e = EK__CONTAINER_OF(n, ek__wheel_entry, link);
        assert_true(e->when <= w->elapsed); /* W3 */
        assert_int_equal(e->level, EK__WHEEL_IN_PENDING);
        count++;
    }
    assert_int_equal(count, w->count); /* W4 */
}

static ek__wheel *wheel_new(uint64_t start)
{
    ek__wheel *w = malloc(sizeof *w);
    assert_non_null(w);
    ek__wheel_init(w, start);
    return w;
}

static ek__wheel_entry *entries_new(size_t n)
{
    ek__wheel_entry *e = malloc(n * sizeof *e);
    assert_non_null(e);
    for (size_t i = 0; i < n; i++) ek__wheel_entry_init(&e[i]);
    return e;
}

/*
 * Drive the wheel as the runtime's driver does: jump to the next expiration,
 * hand out everything due. Checks every entry comes out exactly at its deadline
 * and in non-decreasing order; returns how many came out. Stops after `limit`
 * ticks of wheel time.
 */
static size_t drive_exactly(ek__wheel *w, uint64_t limit)
{
    size_t fired = 0;
    uint64_t last = 0;
    for (;;) {
        uint64_t next = ek__wheel_next_expiration(w);
        if (next == UINT64_MAX || next > limit) break;
        assert_true(next >= ek__wheel_elapsed(w));
        ek__wheel_entry *e;
        while ((e = ek__wheel_poll(w, next)) != NULL) {
            assert_int_equal(e->when, next); /* exactly at its deadline */
            assert_true(e->when >= last);
            assert_false(ek__wheel_entry_filed(e));
            last = e->when;
            fired++;
        }
        assert_int_equal(ek__wheel_elapsed(w), next);
    }
    return fired;
}

/* ---- tests ---- */

static void test_empty_wheel_has_no_expiration_and_advances_on_poll(void **state)
{
    (void)state;
    ek__wheel *w = wheel_new(0);
    assert_int_equal(ek__wheel_next_expiration(w), UINT64_MAX);
    assert_null(ek__wheel_poll(w, 12345));
    assert_int_equal(ek__wheel_elapsed(w), 12345);
    /* Polling with an older time never moves the wheel backwards. */
    assert_null(ek__wheel_poll(w, 100));
    assert_int_equal(ek__wheel_elapsed(w), 12345);
    assert_int_equal(ek__wheel_count(w), 0);
    assert_invariants(w);
    free(w);
}

static void test_insert_at_or_before_elapsed_is_refused(void **state)
{
    (void)state;
    ek__wheel *w = wheel_new(1000);
    ek__wheel_entry e;
    ek__wheel_entry_init(&e);
    assert_false(ek__wheel_insert(w, &e, 1000));
    assert_false(ek__wheel_insert(w, &e, 3));
    assert_false(ek__wheel_entry_filed(&e));
    assert_int_equal(ek__wheel_count(w), 0);
    assert_true(ek__wheel_insert(w, &e, 1001));
    assert_true(ek__wheel_entry_filed(&e));
    assert_int_equal(ek__wheel_count(w), 1);
    assert_ptr_equal(ek__wheel_poll(w, 1001), &e);
    free(w);
}

static void test_entries_fire_in_deadline_order_tick_by_tick(void **state)
{
    (void)state;
    enum { N = 4000, SPAN = 20000 };
    ek__wheel *w = wheel_new(0);
    ek__wheel_entry *e = entries_new(N);
    for (size_t i = 0; i < N; i++) assert_true(ek__wheel_insert(w, &e[i], 1 + rng() % SPAN));
    assert_invariants(w);
    size_t fired = 0;
    for (uint64_t now = 1; now <= SPAN; now++) {
        ek__wheel_entry *x;
        while ((x = ek__wheel_poll(w, now)) != NULL) {
            assert_int_equal(x->when, now); /* neither early nor late */
            fired++;
        }
        if (now % 997 == 0) assert_invariants(w);
    }
    assert_int_equal(fired, N);
    assert_int_equal(ek__wheel_count(w), 0);
    free(e);
    free(w);
}

static void test_same_deadline_entries_all_fire_together(void **state)
{
    (void)state;
    ek__wheel *w = wheel_new(0);
    ek__wheel_entry e[3];
    for (int i = 0; i < 3; i++) {
        ek__wheel_entry_init(&e[i]);
        assert_true(ek__wheel_insert(w, &e[i], 5000));
    }
    assert_null(ek__wheel_poll(w, 4999));
    int seen = 0;
    ek__wheel_entry *x;
    while ((x = ek__wheel_poll(w, 5000)) != NULL) {
        assert_true(x >= &e[0] && x <= &e[2]);
        seen++;
    }
    assert_int_equal(seen, 3);
    free(w);
}

static void test_cancel_removes_entry_and_clears_slot_bit(void **state)
{
    (void)state;
    ek__wheel *w = wheel_new(0);
    ek__wheel_entry a, b;
    ek__wheel_entry_init(&a);
    ek__wheel_entry_init(&b);
    assert_true(ek__wheel_insert(w, &a, 10));
    assert_true(ek__wheel_insert(w, &b, 10));
    assert_int_equal(w->levels[0].occupied, UINT64_C(1) << 10);
    ek__wheel_remove(w, &a);
    assert_false(ek__wheel_entry_filed(&a));
    /* b still occupies the slot. */
    assert_int_equal(w->levels[0].occupied, UINT64_C(1) << 10);
    assert_int_equal(ek__wheel_count(w), 1);
    ek__wheel_remove(w, &b);
    assert_int_equal(w->levels[0].occupied, 0);
    assert_int_equal(ek__wheel_count(w), 0);
    assert_int_equal(ek__wheel_next_expiration(w), UINT64_MAX);
    assert_null(ek__wheel_poll(w, 100));
    /* A cancelled entry can be filed again. */
    assert_true(ek__wheel_insert(w, &a, 5000));
    assert_int_equal(ek__wheel_next_expiration(w), 5000 & ~UINT64_C(4095));
    assert_invariants(w);
    ek__wheel_remove(w, &a);
    assert_invariants(w);
    free(w);
}

static void test_cancel_of_a_pending_entry_skips_it(void **state)
{
    (void)state;
    ek__wheel *w = wheel_new(0);
    ek__wheel_entry e[3];
    for (int i = 0; i < 3; i++) {
        ek__wheel_entry_init(&e[i]);
        assert_true(ek__wheel_insert(w, &e[i], 200)); /* level 1: cascades to pending */
    }
    ek__wheel_entry *first = ek__wheel_poll(w, 200);
    assert_non_null(first);
    /* The other two are in the pending list now; cancel one. */
    ek__wheel_entry *victim = first == &e[0] ? &e[1] : &e[0];
    assert_int_equal(victim->level, EK__WHEEL_IN_PENDING);
    assert_int_equal(ek__wheel_next_expiration(w), 200);
    ek__wheel_remove(w, victim);
    assert_invariants(w);
    ek__wheel_entry *second = ek__wheel_poll(w, 200);
    assert_non_null(second);
    assert_true(second != victim && second != first);
    assert_null(ek__wheel_poll(w, 200));
    assert_int_equal(ek__wheel_count(w), 0);
    free(w);
}

static void test_cascade_visits_every_level_down_to_exact_deadline(void **state)
{
    (void)state;
    for (unsigned top = 0; top < EK__WHEEL_LEVELS; top++) {
        /* A deadline with a non-zero six-bit group at every level up to `top`,
         * so that each cascade moves it exactly one level down. */
        uint64_t when = 0;
        for (unsigned l = 0; l <= top; l++) when |= (uint64_t)(l + 1) << (6 * l);
        ek__wheel *w = wheel_new(0);
        ek__wheel_entry e;
        ek__wheel_entry_init(&e);
        assert_true(ek__wheel_insert(w, &e, when));
        assert_int_equal(e.level, top);
        unsigned expected = top;
        for (;;) {
            uint64_t next = ek__wheel_next_expiration(w);
            assert_true(next <= when);
            /* Slot start of the level it is in: its deadline with the lower
             * groups cleared. */
            uint64_t start = when & ~((UINT64_C(1) << (6 * expected)) - 1);
            assert_int_equal(next, start);
            ek__wheel_entry *x = ek__wheel_poll(w, next);
            if (x != NULL) {
                assert_ptr_equal(x, &e);
                assert_int_equal(expected, 0);
                assert_int_equal(next, when);
                break;
            }
            assert_invariants(w);
            assert_int_equal(e.level, expected - 1);
            expected--;
        }
        assert_int_equal(ek__wheel_count(w), 0);
        free(w);
    }
}

static void test_cascade_across_every_level_fires_all_exactly(void **state)
{
    (void)state;
    /* Many entries per level, with random low bits, driven as a driver does. */
    enum { PER_LEVEL = 200 };
    ek__wheel *w = wheel_new(7);
    ek__wheel_entry *e = entries_new(PER_LEVEL * EK__WHEEL_LEVELS);
    size_t n = 0;
    for (unsigned l = 0; l < EK__WHEEL_LEVELS; l++) {
        uint64_t span = UINT64_C(1) << (6 * (l + 1));
        for (int i = 0; i < PER_LEVEL; i++) {
            uint64_t when;
            do when = (span >> 6) + rng() % (span - (span >> 6));
            while (when <= 7);
            assert_true(ek__wheel_insert(w, &e[n++], when));
        }
    }
    assert_invariants(w);
    for (unsigned l = 0; l < EK__WHEEL_LEVELS; l++) assert_true(w->levels[l].occupied != 0);
    assert_int_equal(drive_exactly(w, UINT64_MAX - 1), n);
    assert_int_equal(ek__wheel_count(w), 0);
    free(e);
    free(w);
}

static void test_deadline_beyond_range_is_clamped_to_top_level_and_fires_exactly(void **state)
{
    (void)state;
    const uint64_t whens[] = {EK__WHEEL_RANGE, EK__WHEEL_RANGE + 1, 3 * EK__WHEEL_RANGE + 12345,
                              (UINT64_C(1) << 40) + 977};
    for (size_t i = 0; i < sizeof whens / sizeof whens[0]; i++) {
        ek__wheel *w = wheel_new(0);
        ek__wheel_entry e;
        ek__wheel_entry_init(&e);
        assert_true(ek__wheel_insert(w, &e, whens[i]));
        assert_int_equal(e.level, EK__WHEEL_LEVELS - 1);
        assert_invariants(w);
        size_t steps = 0;
        for (;;) {
            uint64_t next = ek__wheel_next_expiration(w);
            assert_true(next <= whens[i]); /* never late */
            ek__wheel_entry *x = ek__wheel_poll(w, next);
            steps++;
            assert_invariants(w);
            if (x != NULL) {
                assert_int_equal(next, whens[i]);
                break;
            }
        }
        /* One visit per top-level rotation at most, plus one per level. */
        assert_true(steps <= (whens[i] >> 36) + 1 + EK__WHEEL_LEVELS + 1);
        free(w);
    }
}

static void test_far_entry_in_current_top_slot_does_not_hide_earlier_slots(void **state)
{
    (void)state;
    ek__wheel *w = wheel_new(0);
    ek__wheel_entry far, near;
    ek__wheel_entry_init(&far);
    ek__wheel_entry_init(&near);
    /* Top-level slot 0 (the current one) taken by an entry a rotation away. */
    assert_true(ek__wheel_insert(w, &far, EK__WHEEL_RANGE + 5));
    assert_int_equal(far.level, 5);
    assert_int_equal(far.slot, 0);
    assert_int_equal(ek__wheel_next_expiration(w), EK__WHEEL_RANGE);
    uint64_t three = UINT64_C(3) << 30;
    assert_true(ek__wheel_insert(w, &near, three + 1));
    assert_int_equal(near.level, 5);
    assert_int_equal(ek__wheel_next_expiration(w), three);
    assert_int_equal(drive_exactly(w, UINT64_MAX - 1), 2);
    free(w);
}

static void test_next_expiration_is_exact_in_level0_and_slot_start_above(void **state)
{
    (void)state;
    ek__wheel *w = wheel_new(0);
    ek__wheel_entry a, b, c;
    ek__wheel_entry_init(&a);
    ek__wheel_entry_init(&b);
    ek__wheel_entry_init(&c);
    assert_true(ek__wheel_insert(w, &b, 1000)); /* level 1, slot 15: [960, 1024) */
    assert_int_equal(ek__wheel_next_expiration(w), 960);
    assert_true(ek__wheel_insert(w, &a, 10)); /* level 0 */
    assert_int_equal(ek__wheel_next_expiration(w), 10);
    assert_true(ek__wheel_insert(w, &c, 63)); /* the last tick of level 0 */
    assert_int_equal(ek__wheel_next_expiration(w), 10);
    assert_ptr_equal(ek__wheel_poll(w, 10), &a);
    assert_int_equal(ek__wheel_next_expiration(w), 63);
    assert_ptr_equal(ek__wheel_poll(w, 63), &c);
    assert_int_equal(ek__wheel_next_expiration(w), 960);
    /* Reaching the slot start cascades b into level 0; now exact. */
    assert_null(ek__wheel_poll(w, 960));
    assert_int_equal(b.level, 0);
    assert_int_equal(ek__wheel_next_expiration(w), 1000);
    /* Advancing part way does not move it either. */
    assert_null(ek__wheel_poll(w, 999));
    assert_int_equal(ek__wheel_next_expiration(w), 1000);
    assert_ptr_equal(ek__wheel_poll(w, 1000), &b);
    assert_int_equal(ek__wheel_next_expiration(w), UINT64_MAX);
    free(w);
}

static void test_poll_after_large_jump_hands_out_everything_in_order(void **state)
{
    (void)state;
    enum { N = 5000 };
    ek__wheel *w = wheel_new(0);
    ek__wheel_entry *e = entries_new(N);
    for (size_t i = 0; i < N; i++) {
        unsigned level = (unsigned)(rng() % EK__WHEEL_LEVELS);
        uint64_t span = UINT64_C(1) << (6 * (level + 1));
        assert_true(ek__wheel_insert(w, &e[i], 1 + rng() % span));
    }
    uint64_t now = EK__WHEEL_RANGE; /* every deadline is below */
    uint64_t last = 0;
    size_t fired = 0;
    ek__wheel_entry *x;
    while ((x = ek__wheel_poll(w, now)) != NULL) {
        assert_true(x->when >= last);
        last = x->when;
        fired++;
    }
    assert_int_equal(fired, N);
    assert_int_equal(ek__wheel_elapsed(w), now);
    assert_int_equal(ek__wheel_next_expiration(w), UINT64_MAX);
    free(e);
    free(w);
}

static void test_random_inserts_cancels_and_polls_keep_invariants(void **state)
{
    (void)state;
    enum { N = 512, OPS = 20000 };
    ek__wheel *w = wheel_new(0);
    ek__wheel_entry *e = entries_new(N);
    uint64_t now = 0;
    size_t filed = 0;
    for (int op = 0; op < OPS; op++) {
        ek__wheel_entry *x = &e[rng() % N];
        switch (rng() % 4) {
        case 0:
        case 1:
            if (!ek__wheel_entry_filed(x)) {
                unsigned level = (unsigned)(rng() % EK__WHEEL_LEVELS);
                uint64_t when = now + 1 + rng() % (UINT64_C(1) << (6 * level + 6));
                assert_true(ek__wheel_insert(w, x, when));
                filed++;
            }
            break;
        case 2:
            if (ek__wheel_entry_filed(x)) {
                ek__wheel_remove(w, x);
                filed--;
            }
            break;
        default: {
            uint64_t next = ek__wheel_next_expiration(w);
            uint64_t step = rng() % 3 == 0 && next != UINT64_MAX ? next : now + rng() % 5000;
            /* Hand out only some of what is due, to exercise pending entries. */
            int take = (int)(rng() % 4);
            for (int i = 0; i < take; i++) {
                ek__wheel_entry *y = ek__wheel_poll(w, step);
                if (y == NULL) break;
                assert_true(y->when <= step);
                filed--;
            }
            if (step > now) now = step;
            break;
        }
        }
        assert_int_equal(ek__wheel_count(w), filed);
        if (op % 64 == 0) assert_invariants(w);
    }
    assert_invariants(w);
    ek__wheel_entry *y;
    while ((y = ek__wheel_pop_any(w)) != NULL) filed--;
    assert_int_equal(filed, 0);
    assert_invariants(w);
    free(e);
    free(w);
}

static void test_million_entries_inserted_cancelled_and_expired(void **state)
{
    (void)state;
    const size_t n = (size_t)ekt_scale(1000000);
    ek__wheel *w = wheel_new(0);
    ek__wheel_entry *e = entries_new(n);
    /* Deadlines over ~4.6 hours: levels 0 to 4 all get entries. */
    for (size_t i = 0; i < n; i++)
        assert_true(ek__wheel_insert(w, &e[i], 1 + rng() % (UINT64_C(1) << 24)));
    assert_int_equal(ek__wheel_count(w), n);
    /* Cancel every third one. */
    size_t cancelled = 0;
    for (size_t i = 0; i < n; i += 3) {
        ek__wheel_remove(w, &e[i]);
        cancelled++;
    }
    assert_int_equal(ek__wheel_count(w), n - cancelled);
    assert_int_equal(drive_exactly(w, UINT64_MAX - 1), n - cancelled);
    assert_int_equal(ek__wheel_count(w), 0);
    for (size_t i = 0; i < n; i++) assert_false(ek__wheel_entry_filed(&e[i]));
    free(e);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_wheel_has_no_expiration_and_advances_on_poll),
        cmocka_unit_test(test_insert_at_or_before_elapsed_is_refused),
        cmocka_unit_test(test_entries_fire_in_deadline_order_tick_by_tick),
        cmocka_unit_test(test_same_deadline_entries_all_fire_together),
        cmocka_unit_test(test_cancel_removes_entry_and_clears_slot_bit),
        cmocka_unit_test(test_cancel_of_a_pending_entry_skips_it),
        cmocka_unit_test(test_cascade_visits_every_level_down_to_exact_deadline),
        cmocka_unit_test(test_cascade_across_every_level_fires_all_exactly),
        cmocka_unit_test(test_deadline_beyond_range_is_clamped_to_top_level_and_fires_exactly),
        cmocka_unit_test(test_far_entry_in_current_top_slot_does_not_hide_earlier_slots),
        cmocka_unit_test(test_next_expiration_is_exact_in_level0_and_slot_start_above),
        cmocka_unit_test(test_poll_after_large_jump_hands_out_everything_in_order),
        cmocka_unit_test(test_random_inserts_cancels_and_polls_keep_invariants),
        cmocka_unit_test(test_million_entries_inserted_cancelled_and_expired),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
