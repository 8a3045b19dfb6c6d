/* future.c - heap futures (layout and rules in future.h). */
#include "future.h"
#include "slab.h"
#include "../rt.h"

#define EK__FUTURE_HDR ((sizeof(struct ek_future) + 15u) & ~(size_t)15u)

int ek_future_new(ek_poll_fn poll, ek_drop_fn drop, void *state, ek_future **out)
{
    if (!poll || !out) {
        if (drop) drop(state);
        return EK_EINVAL;
    }
    _Static_assert(sizeof(ek_future) <= EK__CACHE_SMALL_SIZE, "a future fits a cached block");
    ek_future *f = ek__cache_alloc(EK__CACHE_SMALL);
    if (!f) {
        if (drop) drop(state);
        return EK_ENOMEM;
    }
    f->tag = EK__TAG_FUTURE;
    f->flags = EK__FUTURE_CACHED;
    f->poll = poll;
    f->drop = drop;
    f->state = state;
    *out = f;
    return EK_OK;
}

int ek__future_new_inline(ek_poll_fn poll, ek_drop_fn drop, size_t state_size, ek_future **out,
                          void **state_out)
{
    /* Small ones (a ready response: ek_service_ready) from the thread's cache
     * (common.h); not calloc's: glibc's calloc bypasses its thread cache, so
     * futures made and dropped in a loop (a service's responses) went to the
     * heap's top and every free consolidated it (a third of the time of a
     * middleware call in bench/ekiden_svc). */
    size_t size = EK__FUTURE_HDR + state_size;
    bool cached = size <= EK__CACHE_SMALL_SIZE;
    ek_future *f = cached ? ek__cache_alloc(EK__CACHE_SMALL) : ek__malloc(size);
    if (!f) return EK_ENOMEM;
    memset(f, 0, size);
    f->tag = EK__TAG_FUTURE;
    f->flags = EK__FUTURE_INLINE | (cached ? EK__FUTURE_CACHED : 0);
    f->poll = poll;
    f->drop = drop;
    f->state = (char *)f + EK__FUTURE_HDR;
    *out = f;
    if (state_out) *state_out = f->state;
    return EK_OK;
}

int ek__future_new_cell_uninit(ek_runtime *rt, ek_poll_fn poll, ek_drop_fn drop, size_t state_size,
                               ek_future **out, void **state_out)
{
    EK__ASSERT(state_size >= sizeof(ek_runtime *) &&
               EK__FUTURE_HDR + state_size <= EK__SLAB_MAX_CELL);
    ek_future *f = ek__rt_cell_alloc(rt, EK__FUTURE_HDR + state_size);
    if (!f) return EK_ENOMEM;
    f->tag = EK__TAG_FUTURE;
    f->flags = EK__FUTURE_INLINE | EK__FUTURE_CELL;
    f->poll = poll;
    f->drop = drop;
    f->state = (char *)f + EK__FUTURE_HDR;
    ek__rt_cell_ref(rt);
    *(ek_runtime **)f->state = rt;
    *out = f;
    if (state_out) *state_out = f->state;
    return EK_OK;
}

int ek__future_new_cell(ek_runtime *rt, ek_poll_fn poll, ek_drop_fn drop, size_t state_size,
                        ek_future **out, void **state_out)
{
    void *state;
    int rc = ek__future_new_cell_uninit(rt, poll, drop, state_size, out, &state);
    if (rc != EK_OK) return rc;
    memset((char *)state + sizeof(ek_runtime *), 0, state_size - sizeof(ek_runtime *));
    if (state_out) *state_out = state;
    return EK_OK;
}

int ek_future_poll(ek_future *f, ek_cx *cx, void **out)
{
    if (!EK__CHECK_TAG(f, EK__TAG_FUTURE) || !cx) return EK_EINVAL;
    if (f->flags & EK__FUTURE_DONE) return EK_ECLOSED;
    void *dummy = NULL;
    int rc = f->poll(f->state, cx, out ? out : &dummy);
    if (rc > EK_PENDING) rc = EK_EINVAL; /* a poll returns OK, PENDING or an error */
    if (rc != EK_PENDING) f->flags |= EK__FUTURE_DONE;
    return rc;
}

void ek_future_drop(ek_future *f)
{
    if (!EK__CHECK_TAG(f, EK__TAG_FUTURE)) return;
    if (f->drop) f->drop(f->state);
    f->tag = EK__TAG_DEAD;
    if (f->flags & EK__FUTURE_CELL) {
        ek_runtime *rt = *(ek_runtime **)f->state;
        ek__rt_cell_free(rt, f);
        ek__rt_cell_unref(rt);
        return;
    }
    if (f->flags & EK__FUTURE_CACHED)
        ek__cache_free(EK__CACHE_SMALL, f);
    else
        ek__free(f);
}
