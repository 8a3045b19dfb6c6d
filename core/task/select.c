/*
 * select.c - ek_select (the first of N heap futures) and ek_join_all (all of
 * them), futures over futures.
 *
 * Both own their inner futures and poll every one not yet finished, in index
 * order, with the caller's ek_cx: each inner poll arranges its own wake-up of
 * the one task, so whichever inner future becomes ready wakes the task and the
 * next poll finds it. A wake-up re-polls all of them (spurious polls are
 * allowed; a lost one is not). No allocation happens after creation, so
 * polling and dropping cannot fail.
 *
 * Ownership: the constructors consume the futures of the array in every case
 * (the one ownership rule of ekiden.h). On an argument error each distinct valid
 * future of the array is dropped once; a pointer given twice is dropped once.
 */
#include "future.h"
#include "task.h"

#include <limits.h>
#include <stdlib.h>

/* ---- shared: checking and taking the array ---- */

static int ptr_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

/* Drop each distinct valid future of futs[0..n) once. An n above INT_MAX is
 * not a real array: nothing is touched. */
static void drop_all_distinct(ek_future **futs, size_t n)
{
    if (futs == NULL || n > (size_t)INT_MAX) return;
    ek_future **copy = n > 0 ? ek__malloc(n * sizeof *copy) : NULL;
    if (copy != NULL) {
        memcpy(copy, futs, n * sizeof *copy);
        qsort(copy, n, sizeof *copy, ptr_cmp);
        for (size_t i = 0; i < n; i++)
            if ((i == 0 || copy[i] != copy[i - 1]) && EK__CHECK_TAG(copy[i], EK__TAG_FUTURE))
                ek_future_drop(copy[i]);
        ek__free(copy);
        return;
    }
    /* No memory for the copy: find duplicates the slow way (no allocation). */
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++) seen = futs[k] == futs[i];
        if (!seen && EK__CHECK_TAG(futs[i], EK__TAG_FUTURE)) ek_future_drop(futs[i]);
    }
}

/* EK_OK if futs[0..n) are n live heap futures, n in 1..INT_MAX. */
static int check_array(ek_future **futs, size_t n)
{
    if (futs == NULL || n == 0 || n > (size_t)INT_MAX) return EK_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!EK__CHECK_TAG(futs[i], EK__TAG_FUTURE)) return EK_EINVAL;
    return EK_OK;
}

/* EK_OK if no pointer occurs twice in futs[0..n); `scratch` has room for n. */
static int check_distinct(ek_future **futs, size_t n, ek_future **scratch)
{
    memcpy(scratch, futs, n * sizeof *scratch);
    qsort(scratch, n, sizeof *scratch, ptr_cmp);
    for (size_t i = 1; i < n; i++)
        if (scratch[i] == scratch[i - 1]) return EK_EINVAL;
    return EK_OK;
}

/* ---- select ---- */

typedef struct ek__select {
    size_t n;
    int *index;     /* borrowed, may be NULL: which future completed */
    ek_future *f[]; /* NULL once dropped */
} ek__select;

static void select_drop_inner(ek__select *s)
{
    for (size_t i = 0; i < s->n; i++) {
        ek_future_drop(s->f[i]);
        s->f[i] = NULL;
    }
}

static int select_poll(void *state, ek_cx *cx, void **out)
{
    ek__select *s = state;
    for (size_t i = 0; i < s->n; i++) {
        void *res = NULL;
        int rc = ek_future_poll(s->f[i], cx, &res);
        if (rc == EK_PENDING) continue;
        /* The first to finish (with a result or an error) decides; the others
         * are cancelled now, before the result is handed over. */
        ek_future *won = s->f[i];
        s->f[i] = NULL;
        select_drop_inner(s);
        ek_future_drop(won);
        if (s->index) *s->index = (int)i;
        *out = rc == EK_OK ? res : NULL;
        return rc;
    }
    /* A branch's own wait names the site, if it named one (task.h). */
    return ek__cx_pended(cx, EK_PENDING, EK__SITE_SELECT);
}

static void select_drop(void *state)
{
    select_drop_inner(state);
}

int ek_select(ek_future **futs, size_t n, int *index, ek_future **out)
{
    int rc = check_array(futs, n);
    if (rc == EK_OK && out == NULL) rc = EK_EINVAL;
    ek_future *f = NULL;
    ek__select *s = NULL;
    if (rc == EK_OK) {
        rc = ek__future_new_inline(select_poll, select_drop, sizeof *s + n * sizeof s->f[0], &f,
                                   (void **)&s);
        if (rc == EK_OK && check_distinct(futs, n, s->f) != EK_OK) {
            ek_future_drop(f); /* its state holds no future yet (n is 0) */
            rc = EK_EINVAL;
        }
    }
    if (rc != EK_OK) {
        drop_all_distinct(futs, n);
        return rc;
    }
    s->n = n;
    s->index = index;
    memcpy(s->f, futs, n * sizeof s->f[0]);
    if (index) *index = -1;
    *out = f;
    return EK_OK;
}

/* ---- join_all ---- */

typedef struct ek__join_all {
    size_t n, left;
    void **results; /* borrowed: results[i] once f[i] completed */
    ek_drop_fn result_drop;
    int *index;     /* borrowed, may be NULL: which future failed */
    ek_future *f[]; /* NULL once completed or dropped */
} ek__join_all;

/* Drop the futures still running and the results gathered so far: the results
 * are the caller's only when the whole join_all succeeds. */
static void join_all_abandon(ek__join_all *j)
{
    for (size_t i = 0; i < j->n; i++) {
        if (j->f[i] != NULL) {
            ek_future_drop(j->f[i]);
            j->f[i] = NULL;
        } else if (j->results != NULL) {
            if (j->result_drop && j->results[i]) j->result_drop(j->results[i]);
            j->results[i] = NULL;
        }
    }
    j->left = 0;
}

static int join_all_poll(void *state, ek_cx *cx, void **out)
{
    ek__join_all *j = state;
    for (size_t i = 0; i < j->n; i++) {
        if (j->f[i] == NULL) continue;
        void *res = NULL;
        int rc = ek_future_poll(j->f[i], cx, &res);
        if (rc == EK_PENDING) continue;
        ek_future_drop(j->f[i]); /* finished: release it now */
        j->f[i] = NULL;
        if (rc != EK_OK) {
            /* The first failure ends it: the others are cancelled and the
             * results gathered so far released. */
            if (j->index) *j->index = (int)i;
            j->results[i] = NULL;
            join_all_abandon(j);
            j->n = 0; /* done: the borrowed arrays are not touched again */
            return rc;
        }
        j->results[i] = res;
        j->left--;
    }
    if (j->left > 0) return ek__cx_pended(cx, EK_PENDING, EK__SITE_JOIN_ALL);
    j->n = 0; /* the results are the awaiter's now: the drop must not touch them */
    *out = NULL;
    return EK_OK;
}

static void join_all_drop(void *state)
{
    join_all_abandon(state);
}

int ek_join_all(ek_future **futs, size_t n, void **results, ek_drop_fn result_drop, int *index,
                ek_future **out)
{
    int rc = check_array(futs, n);
    if (rc == EK_OK && (out == NULL || results == NULL)) rc = EK_EINVAL;
    ek_future *f = NULL;
    ek__join_all *j = NULL;
    if (rc == EK_OK) {
        rc = ek__future_new_inline(join_all_poll, join_all_drop, sizeof *j + n * sizeof j->f[0], &f,
                                   (void **)&j);
        if (rc == EK_OK && check_distinct(futs, n, j->f) != EK_OK) {
            ek_future_drop(f); /* its state holds no future yet (n is 0) */
            rc = EK_EINVAL;
        }
    }
    if (rc != EK_OK) {
        drop_all_distinct(futs, n);
        return rc;
    }
    j->n = n;
    j->left = n;
    j->results = results;
    j->result_drop = result_drop;
    j->index = index;
    memcpy(j->f, futs, n * sizeof j->f[0]);
    for (size_t i = 0; i < n; i++) results[i] = NULL;
    if (index) *index = -1;
    *out = f;
    return EK_OK;
}
