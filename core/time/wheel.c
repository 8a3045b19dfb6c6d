/*
 * wheel.c - the hierarchical timing wheel (see wheel.h for the interface).
 *
 * Geometry. Level L has 64 slots of 64^L ticks each, so it spans 64^(L+1)
 * ticks: level 0 has 1 ms slots (spanning 64 ms), level 1 64 ms slots (~4 s),
 * then ~4 min, ~4.7 h, ~12.4 days, ~2.2 years for the top level (5).
 *
 * Filing. An entry with deadline `when > elapsed` goes to the level of the
 * highest bit in which `when` and `elapsed` differ, counted in groups of six
 * bits: level = ilog2((elapsed ^ when) | 63) / 6, and to the slot named by that
 * level's six bits of `when`: slot = (when >> 6L) & 63. The `| 63` puts every
 * deadline in the same 64 ms block as `elapsed` in level 0. Deadlines 2^36 or
 * more ticks away have no level of their own; they are clamped into the top
 * level, whose slots then act as a ring: the slot is visited once per rotation
 * and an entry found there too early is simply filed again.
 *
 * Invariants (hold between calls):
 *  W1. A filed entry e in a slot has e.when > elapsed, e.level is the level
 *      computed from (elapsed, e.when) as above, e.slot = (e.when >> 6L) & 63,
 *      and e is linked into levels[e.level].slots[e.slot].
 *  W2. Bit s of levels[L].occupied is set iff levels[L].slots[s] is non-empty.
 *  W3. Entries in `pending` have e.when <= elapsed and e.level == IN_PENDING.
 *  W4. `count` is the number of filed entries (slots and pending).
 *  W5. Below the top level, an occupied slot lies strictly after the slot that
 *      contains `elapsed` (e.when agrees with elapsed on the bits above the
 *      level and is larger, so its six level bits are larger). Therefore every
 *      entry of level L is due before any entry of level L+1, and a slot's
 *      start tick is never behind `elapsed`. At the top level, a slot at or
 *      before elapsed's slot means the next rotation.
 *
 * Why W1 survives advancing `elapsed`: poll only moves `elapsed` to `now` when
 * `now` is before the start of every occupied slot, or to the start of the
 * earliest occupied slot, which it then cascades. For an entry of level L not
 * cascaded, elapsed <= new elapsed < start of its slot <= when; numbers between
 * elapsed and when share their bits above level L (the set of numbers with
 * given high bits is an interval), and the new elapsed still differs from when
 * in level L's bits (it is below the slot start). So its level and slot stay
 * the same and nothing needs to move. Cascading a slot of level L re-files its
 * entries from the slot's start tick: they then agree with elapsed on level L's
 * bits too, so they land strictly lower, or in `pending` when due.
 *
 * Removal uses the stored level and slot, so it never recomputes anything and
 * is O(1) for entries in any state.
 */
#include "time/wheel.h"

static unsigned level_for(uint64_t elapsed, uint64_t when)
{
    uint64_t masked = (elapsed ^ when) | (EK__WHEEL_SLOTS - 1);
    /* Beyond the wheel's range: clamp into the top level (see the header). */
    if (masked >= EK__WHEEL_RANGE) masked = EK__WHEEL_RANGE - 1;
    unsigned significant = 63u - (unsigned)__builtin_clzll(masked);
    return significant / EK__WHEEL_SLOT_BITS;
}

static unsigned slot_for(uint64_t when, unsigned level)
{
    return (unsigned)(when >> (level * EK__WHEEL_SLOT_BITS)) & (EK__WHEEL_SLOTS - 1);
}

static uint64_t rotate_right(uint64_t x, unsigned n)
{
    n &= 63u;
    return n == 0 ? x : (x >> n) | (x << (64u - n));
}

void ek__wheel_init(ek__wheel *w, uint64_t start)
{
    w->elapsed = start;
    w->count = 0;
    ek__list_init(&w->pending);
    for (unsigned l = 0; l < EK__WHEEL_LEVELS; l++) {
        w->levels[l].occupied = 0;
        for (unsigned s = 0; s < EK__WHEEL_SLOTS; s++) ek__list_init(&w->levels[l].slots[s]);
    }
}

/* File e in the slot its deadline maps to; requires e->when > elapsed. */
static void file_in_slot(ek__wheel *w, ek__wheel_entry *e)
{
    unsigned level = level_for(w->elapsed, e->when);
    unsigned slot = slot_for(e->when, level);
    e->level = (uint8_t)level;
    e->slot = (uint8_t)slot;
    ek__list_push_back(&w->levels[level].slots[slot], &e->link);
    w->levels[level].occupied |= UINT64_C(1) << slot;
}

bool ek__wheel_insert(ek__wheel *w, ek__wheel_entry *e, uint64_t when)
{
    EK__ASSERT(e->level == EK__WHEEL_NOT_FILED);
    if (when <= w->elapsed) return false;
    e->when = when;
    file_in_slot(w, e);
    w->count++;
    return true;
}

void ek__wheel_remove(ek__wheel *w, ek__wheel_entry *e)
{
    EK__ASSERT(e->level != EK__WHEEL_NOT_FILED);
    ek__list_remove(&e->link);
    if (e->level != EK__WHEEL_IN_PENDING) {
        ek__wheel_level *lv = &w->levels[e->level];
        if (ek__list_empty(&lv->slots[e->slot])) lv->occupied &= ~(UINT64_C(1) << e->slot);
    }
    e->level = EK__WHEEL_NOT_FILED;
    w->count--;
}

/*
 * The start tick of level l's next occupied slot after elapsed's own slot
 * (UINT64_MAX if the level is empty); *slot_out gets the slot. Scanning starts
 * one past elapsed's slot so that, at the top level, slots that wrapped around
 * (including elapsed's own) count as the next rotation, after the others.
 */
static uint64_t level_next_slot(const ek__wheel *w, unsigned l, unsigned *slot_out)
{
    uint64_t occupied = w->levels[l].occupied;
    if (occupied == 0) return UINT64_MAX;
    unsigned shift = l * EK__WHEEL_SLOT_BITS;
    uint64_t slot_range = UINT64_C(1) << shift;
    uint64_t level_range = slot_range << EK__WHEEL_SLOT_BITS;
    unsigned current = slot_for(w->elapsed, l);
    unsigned from = (current + 1u) & (EK__WHEEL_SLOTS - 1);
    unsigned slot =
        (from + (unsigned)__builtin_ctzll(rotate_right(occupied, from))) & (EK__WHEEL_SLOTS - 1);
    uint64_t start = (w->elapsed & ~(level_range - 1)) + (uint64_t)slot * slot_range;
    if (slot <= current) {
        /* W5: only the top level wraps around. */
        EK__ASSERT(l == EK__WHEEL_LEVELS - 1);
        start += level_range;
    }
    *slot_out = slot;
    return start;
}

/* The earliest occupied slot over all levels (W5 makes the lowest non-empty
 * level the earliest, but taking the minimum does not depend on it). */
static uint64_t next_slot(const ek__wheel *w, unsigned *level_out, unsigned *slot_out)
{
    uint64_t best = UINT64_MAX;
    for (unsigned l = 0; l < EK__WHEEL_LEVELS; l++) {
        unsigned slot;
        uint64_t start = level_next_slot(w, l, &slot);
        if (start < best) {
            best = start;
            *level_out = l;
            *slot_out = slot;
        }
    }
    return best;
}

uint64_t ek__wheel_next_expiration(const ek__wheel *w)
{
    if (!ek__list_empty(&w->pending)) return w->elapsed;
    unsigned level, slot;
    return next_slot(w, &level, &slot);
}

/* elapsed has just moved to the start of (level, slot): empty the slot and
 * move each entry to pending (due now) or to a lower level (W1, W3). */
static void cascade(ek__wheel *w, unsigned level, unsigned slot)
{
    ek__wheel_level *lv = &w->levels[level];
    /* Take the slot's whole list first, so re-filing into this very slot (far
     * deadlines at the top level) does not loop. */
    ek__list taken;
    ek__list_init(&taken);
    ek__list_splice(&taken, &lv->slots[slot]);
    lv->occupied &= ~(UINT64_C(1) << slot);

    ek__list *n;
    while ((n = ek__list_pop_front(&taken)) != NULL) {
        ek__wheel_entry *e = EK__CONTAINER_OF(n, ek__wheel_entry, link);
        if (e->when <= w->elapsed) {
            e->level = EK__WHEEL_IN_PENDING;
            ek__list_push_back(&w->pending, &e->link);
        } else {
            file_in_slot(w, e);
        }
    }
}

ek__wheel_entry *ek__wheel_poll(ek__wheel *w, uint64_t now)
{
    for (;;) {
        ek__list *n = ek__list_pop_front(&w->pending);
        if (n != NULL) {
            ek__wheel_entry *e = EK__CONTAINER_OF(n, ek__wheel_entry, link);
            e->level = EK__WHEEL_NOT_FILED;
            w->count--;
            return e;
        }
        unsigned level = 0, slot = 0;
        uint64_t start = next_slot(w, &level, &slot);
        if (start > now) {
            /* Nothing due: W1 holds for now too (see the top of the file). */
            if (now > w->elapsed) w->elapsed = now;
            return NULL;
        }
        EK__ASSERT(start > w->elapsed); /* W5 */
        w->elapsed = start;
        cascade(w, level, slot);
    }
}

ek__wheel_entry *ek__wheel_pop_any(ek__wheel *w)
{
    ek__list *n = ek__list_pop_front(&w->pending);
    for (unsigned l = 0; n == NULL && l < EK__WHEEL_LEVELS; l++) {
        ek__wheel_level *lv = &w->levels[l];
        if (lv->occupied == 0) continue;
        unsigned slot = (unsigned)__builtin_ctzll(lv->occupied);
        n = ek__list_pop_front(&lv->slots[slot]);
        if (ek__list_empty(&lv->slots[slot])) lv->occupied &= ~(UINT64_C(1) << slot);
    }
    if (n == NULL) return NULL;
    ek__wheel_entry *e = EK__CONTAINER_OF(n, ek__wheel_entry, link);
    e->level = EK__WHEEL_NOT_FILED;
    w->count--;
    return e;
}
