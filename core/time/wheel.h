/*
 * wheel.h - a hierarchical timing wheel: 6 levels x 64 slots, 1 ms resolution.
 *
 * A pure data structure: no locking (the owner serialises every call, time.c
 * holds its lock), no allocation (entries are intrusive, embedded in whatever
 * owns the timer), no clock (the caller passes `now`). Insert and remove are
 * O(1); finding the next expiration scans one 64-bit bitmap per level.
 *
 * Time is in wheel ticks (milliseconds). The wheel keeps `elapsed`, the time up
 * to which it has been advanced; it only moves forward, and only by
 * ek__wheel_poll. See wheel.c for the invariants.
 */
#ifndef EK_CORE_TIME_WHEEL_H
#define EK_CORE_TIME_WHEEL_H

#include "../common.h"

#define EK__WHEEL_LEVELS    6
#define EK__WHEEL_SLOT_BITS 6
#define EK__WHEEL_SLOTS     (1u << EK__WHEEL_SLOT_BITS) /* 64 */
/* The span the wheel resolves exactly: 2^36 ms, about 2.2 years. Deadlines
 * further away are filed in the top level and re-filed as time approaches. */
#define EK__WHEEL_RANGE (UINT64_C(1) << (EK__WHEEL_LEVELS * EK__WHEEL_SLOT_BITS))

/* Where an entry is filed (ek__wheel_entry.level beyond the real levels). */
#define EK__WHEEL_NOT_FILED  0xffu /* in no wheel */
#define EK__WHEEL_IN_PENDING 0xfeu /* expired, waiting to be handed out by poll */

/*
 * One timer, embedded in its owner. Initialise with ek__wheel_entry_init; the
 * wheel owns `link`, `level` and `slot` while the entry is filed. `when` is the
 * absolute deadline in ticks and is only read by the wheel.
 */
typedef struct ek__wheel_entry {
    ek__list link;
    uint64_t when;
    uint8_t level; /* 0..5, EK__WHEEL_IN_PENDING or EK__WHEEL_NOT_FILED */
    uint8_t slot;  /* 0..63 when level < EK__WHEEL_LEVELS */
} ek__wheel_entry;

typedef struct ek__wheel_level {
    uint64_t occupied; /* bit s set <=> slots[s] is non-empty */
    ek__list slots[EK__WHEEL_SLOTS];
} ek__wheel_level;

typedef struct ek__wheel {
    uint64_t elapsed; /* ticks the wheel has been advanced to */
    size_t count;     /* entries filed, including pending ones */
    ek__list pending; /* expired entries (when <= elapsed) not yet handed out */
    ek__wheel_level levels[EK__WHEEL_LEVELS];
} ek__wheel;

/* An empty wheel whose clock starts at `start` ticks. */
void ek__wheel_init(ek__wheel *w, uint64_t start);
/* An entry in no wheel. Inline: every sleep's creation runs it. */
static inline void ek__wheel_entry_init(ek__wheel_entry *e)
{
    ek__list_init(&e->link);
    e->when = 0;
    e->level = EK__WHEEL_NOT_FILED;
    e->slot = 0;
}
/* True while e is filed in a wheel (in a slot or the pending list). */
static inline bool ek__wheel_entry_filed(const ek__wheel_entry *e)
{
    return e->level != EK__WHEEL_NOT_FILED;
}

/*
 * File e (not filed anywhere) with deadline `when`. O(1).
 * Returns false, leaving e unfiled, if `when <= elapsed`: the deadline has
 * already passed as far as the wheel knows, and the caller fires it itself.
 */
bool ek__wheel_insert(ek__wheel *w, ek__wheel_entry *e, uint64_t when);
/* Unfile e, which must be filed in w. O(1). */
void ek__wheel_remove(ek__wheel *w, ek__wheel_entry *e);

/*
 * The earliest tick at which poll would hand out or re-file something: exactly
 * the deadline when the earliest entry is in level 0, else the start of the
 * earliest occupied slot (never later than any deadline in it). `elapsed` when
 * expired entries are pending; UINT64_MAX when the wheel is empty.
 */
uint64_t ek__wheel_next_expiration(const ek__wheel *w);

/*
 * Advance to `now` and hand out one expired entry (deadline <= now), unfiled,
 * or NULL when none is left; then `elapsed` == max(elapsed, now). Entries come
 * out in non-decreasing deadline order (ties in no particular order). Higher
 * level slots are cascaded into lower levels on the way.
 */
ek__wheel_entry *ek__wheel_poll(ek__wheel *w, uint64_t now);

/* Unfile and return any filed entry, NULL when empty: for tearing a wheel down
 * without advancing it. O(1). */
ek__wheel_entry *ek__wheel_pop_any(ek__wheel *w);

static inline uint64_t ek__wheel_elapsed(const ek__wheel *w)
{
    return w->elapsed;
}
static inline size_t ek__wheel_count(const ek__wheel *w)
{
    return w->count;
}

#endif
