/*
 * ekiden/task.h - composing futures (select, join_all) and task groups
 * (structured concurrency). Included by ekiden.h; uses its types (ek_future,
 * ek_runtime, ek_cx, ek_poll_fn, ek_drop_fn) and conventions.
 *
 * Inner futures are heap futures (ek_future): anything ek_future_new wraps, a
 * join handle (ek_join_into_future), ek_sleep, ek_timeout, ek_tcp_connect, and
 * the wait futures of ekiden/sync.h (ek_semaphore_acquire_future,
 * ek_mutex_lock_future, ek_notified_future, ek_*_recv_future,
 * ek_watch_changed_future). A select or join_all is itself a heap future, so
 * they nest: ek_timeout over ek_select, ek_select over ek_join_all, ...
 */
#ifndef EKIDEN_TASK_H
#define EKIDEN_TASK_H

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------- */
/* select and join_all                                                       */
/* ------------------------------------------------------------------------- */

/*
 * A future that completes as soon as the first of futs[0..n) completes, with
 * that future's status and result (EK_OK and its *out, or its negative error:
 * an error counts as completing). The others are dropped (cancelled) at that
 * moment, before the result is handed over; so, for example, a select over a
 * channel receive and a sleep is a receive with a deadline. If `index` is not
 * NULL, *index is set to -1 now and to the index of the future that completed
 * when the select completes (the int must stay valid until then, or until the
 * select is dropped).
 * Order: every poll polls the futures not yet finished in index order, so when
 * several are ready the lowest index wins (Tokio's `biased` select). Dropping
 * the select before it completes drops every inner future.
 * Consumes every future of the array, on error too (the array itself is only
 * read). Any thread creates it; poll it from task context.
 * Errors: EK_EINVAL (futs NULL, n 0, an element that is not a live heap future,
 * the same future twice, out NULL: each distinct valid future has been dropped;
 * n above INT_MAX: the array is not read), EK_ENOMEM (every future dropped).
 */
EK_EXTERN int ek_select(ek_future **futs, size_t n, int *index, ek_future **out);

/*
 * A future that completes when every one of futs[0..n) has completed: EK_OK
 * with *out = NULL and results[i] = the result of futs[i] (each now the
 * caller's). Each inner future is dropped as soon as it completes. `results`
 * (n entries, set to NULL now) must stay valid until the join_all completes or
 * is dropped; it is the caller's to read once the join_all returned EK_OK.
 * First error: the first inner future to fail (in completion order; among
 * several failing in the same poll, the lowest index) ends the join_all with
 * its error at once (Tokio's try_join_all): the others are dropped (cancelled),
 * results gathered so far go through result_drop (may be NULL: results need no
 * release) and every results[i] is NULL again, and *index (if not NULL; -1 until
 * then and on success) gets the failing index. Dropping the join_all before it
 * completes does the same. So the results are the caller's only on EK_OK, and
 * nothing is lost.
 * Consumes every future of the array, on error too. Any thread creates it; poll
 * it from task context.
 * Errors: EK_EINVAL (as ek_select, or results NULL), EK_ENOMEM.
 */
EK_EXTERN int ek_join_all(ek_future **futs, size_t n, void **results, ek_drop_fn result_drop,
                          int *index, ek_future **out);

#ifdef __cplusplus
}
#endif

#endif /* EKIDEN_TASK_H */
