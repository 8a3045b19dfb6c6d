/*
 * ekiden/sync.h - channels and synchronisation primitives. Included by ekiden.h
 * (after the core declarations it uses: ek_cx, ek_drop_fn, EK_EXTERN, codes).
 *
 * Common rules for everything in this file:
 *
 * - Threads. Every function may be called from any thread. Functions taking an
 *   `ek_cx *` are task context (inside a poll). Functions named `*_blocking_*`
 *   block the calling thread: call them only from threads that do not run tasks
 *   (your own threads, or jobs of ek_spawn_blocking); from a thread that runs
 *   tasks (a worker, or a thread inside ek_block_on) they return EK_EDEADLK at
 *   once instead of deadlocking it.
 * - One handle, one user at a time. A handle (sender, receiver, permit object,
 *   guard, notified waiter) may move between threads but is used by one task or
 *   thread at a time; clone senders/receivers to share. Shared objects
 *   (semaphore, mutex, notify) are reference-counted: *_clone takes a reference,
 *   *_drop releases one; the object lives until the last reference and the last
 *   waiter object made from it are dropped, in any order.
 * - Messages are `void *` (NULL allowed). A message is consumed (its ownership
 *   passes to the channel and then to the receiver) only when the send returns
 *   EK_OK; on EK_PENDING or any error the caller still owns it. Every channel takes
 *   a drop function (may be NULL: messages need no release): each message still
 *   queued when the channel is freed, closed by its receiver's drop, or evicted
 *   (broadcast overwrite, watch replace) goes through it exactly once, on the
 *   thread that caused the release, never under an internal lock.
 * - Pending. An operation that can wait first spends one unit of the task's
 *   cooperative budget (ek_coop_proceed), so it may return EK_PENDING even when
 *   ready; the task is then rescheduled. On EK_PENDING the current task has been
 *   registered and will be woken; poll the same operation again with the same
 *   handle. Wake-ups happen after internal locks are released.
 * - Cancellation. Waits that hold a place in a queue (bounded send/reserve,
 *   semaphore acquire, mutex lock, notify) are direct polls on a waiter object the
 *   caller owns: the sender handle for mpsc, an ek_semaphore_permit, an
 *   ek_mutex_guard, an ek_notified. Dropping that object (which is what a task's
 *   drop function does when the task is aborted) gives back its place and any
 *   permits or slots assigned to it; no allocation happens on these paths after
 *   the waiter object exists. Each operation's "Cancel:" line says what is lost
 *   when the waiting task is dropped instead of polled again (nothing, always).
 * - Stale handles: NULL or a handle of another type gives EK_EINVAL; void
 *   functions ignore NULL.
 */
#ifndef EKIDEN_SYNC_H
#define EKIDEN_SYNC_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Makes a receiver's copy of a message for channels with several receivers
 * (broadcast, watch): *out = a copy of msg that the receiver will own. Return
 * EK_OK or a negative code (e.g. EK_ENOMEM), which the receive returns.
 * Called under the channel's internal lock: it must not call back into the
 * channel and should be cheap (typically a reference-count increment).
 * A NULL clone function copies the pointer (for values encoded in the pointer or
 * immutable data that outlives the channel).
 */
typedef int (*ek_clone_fn)(void *msg, void **out);

/* ========================================================================= */
/* oneshot: one value from one sender to one receiver                        */
/* ========================================================================= */

typedef struct ek_oneshot_sender ek_oneshot_sender;
typedef struct ek_oneshot_receiver ek_oneshot_receiver;

/*
 * A new oneshot channel (one allocation). `drop` (may be NULL) releases a value
 * sent but never received. Errors: EK_EINVAL (NULL tx or rx), EK_ENOMEM.
 */
EK_EXTERN int ek_oneshot_new(ek_drop_fn drop, ek_oneshot_sender **tx, ek_oneshot_receiver **rx);

/*
 * Send the value. Consumes tx in every case (the sender is used up and must not
 * be dropped afterwards). Never waits. EK_OK: msg is now the channel's.
 * EK_ECLOSED: the receiver was closed or dropped; the caller still owns msg.
 * Errors: EK_EINVAL (tx not a oneshot sender; nothing consumed).
 */
EK_EXTERN int ek_oneshot_send(ek_oneshot_sender *tx, void *msg);

/* 1 if the receiver has been closed or dropped (a send would fail), 0 if not,
 * EK_EINVAL. */
EK_EXTERN int ek_oneshot_sender_is_closed(ek_oneshot_sender *tx);

/*
 * Wait until the receiver is closed or dropped (Tokio's Sender::closed): EK_OK
 * then, else EK_PENDING. Task context. Cancel: nothing to give back.
 * Errors: EK_EINVAL.
 */
EK_EXTERN int ek_oneshot_sender_poll_closed(ek_oneshot_sender *tx, ek_cx *cx);

/* Drop the sender without sending: the receiver gets EK_ECLOSED. NULL ignored. */
EK_EXTERN void ek_oneshot_sender_drop(ek_oneshot_sender *tx);

/*
 * Receive: EK_OK with *out = the value (now the caller's); EK_PENDING;
 * EK_ECLOSED if the sender was dropped without sending, the receiver was closed
 * before a value arrived, or the value was already received. The receiver must
 * still be dropped afterwards. Task context. out may be NULL: the value is then
 * received and passed to the channel's drop function at once (so it is never
 * silently lost); the same holds for try_recv and blocking_recv.
 * Cancel: safe; a value that arrives after the task is dropped goes to the drop
 * function when the receiver is dropped. Errors: EK_EINVAL.
 */
EK_EXTERN int ek_oneshot_recv(ek_oneshot_receiver *rx, ek_cx *cx, void **out);

/* As ek_oneshot_recv without waiting: EK_EEMPTY if no value has arrived yet. */
EK_EXTERN int ek_oneshot_try_recv(ek_oneshot_receiver *rx, void **out);

/* As ek_oneshot_recv, blocking the calling thread (not a worker: EK_EDEADLK). */
EK_EXTERN int ek_oneshot_blocking_recv(ek_oneshot_receiver *rx, void **out);

/*
 * Close the receiving side: a later send fails with EK_ECLOSED (and the sender's
 * poll_closed completes). A value sent before the close can still be received.
 * Idempotent. Errors: EK_EINVAL.
 */
EK_EXTERN int ek_oneshot_close(ek_oneshot_receiver *rx);

/* Drop the receiver (closing it); a value sent and not received goes to the drop
 * function now. NULL ignored. */
EK_EXTERN void ek_oneshot_receiver_drop(ek_oneshot_receiver *rx);

/* ========================================================================= */
/* mpsc: many senders, one receiver, bounded (back-pressure) or unbounded    */
/* ========================================================================= */

typedef struct ek_mpsc_sender ek_mpsc_sender;
typedef struct ek_mpsc_receiver ek_mpsc_receiver;
typedef struct ek_mpsc_permit ek_mpsc_permit;

/*
 * A bounded channel: at most `cap` (>= 1) messages are queued or reserved at
 * once; senders beyond that wait in FIFO order (fair). Queue memory grows on
 * demand up to cap. `drop` (may be NULL) releases messages never received.
 * Returns the first sender and the receiver.
 * Errors: EK_EINVAL (cap 0, NULL outputs), EK_ENOMEM.
 */
EK_EXTERN int ek_mpsc_bounded(size_t cap, ek_drop_fn drop, ek_mpsc_sender **tx,
                              ek_mpsc_receiver **rx);

/* An unbounded channel: sends never wait (they may fail with EK_ENOMEM when the
 * queue cannot grow). Otherwise as ek_mpsc_bounded. */
EK_EXTERN int ek_mpsc_unbounded(ek_drop_fn drop, ek_mpsc_sender **tx, ek_mpsc_receiver **rx);

/* Another sender on the same channel (one allocation), for another task or
 * thread. Works after the channel closed (its sends fail with EK_ECLOSED).
 * Errors: EK_EINVAL, EK_ENOMEM. */
EK_EXTERN int ek_mpsc_sender_clone(ek_mpsc_sender *tx, ek_mpsc_sender **out);

/*
 * Release a sender: leaves the wait queue, gives back a slot assigned to it.
 * When the last sender is gone the receiver gets EK_ECLOSED after draining the
 * queue. If a permit reserved through this sender is outstanding, the sender
 * stays alive (and counted) until the permit is used or dropped. NULL ignored.
 */
EK_EXTERN void ek_mpsc_sender_drop(ek_mpsc_sender *tx);

/*
 * Send: EK_OK (msg consumed); EK_PENDING (bounded and full: the caller still owns
 * msg; the sender now holds a place in the FIFO wait queue; poll again, with the
 * same or another message, to complete); EK_ECLOSED (receiver closed or dropped;
 * msg not consumed). Task context. cx may be NULL for an unbounded channel (such
 * a send never waits and spends no budget).
 * Cancel: safe; the message is still the caller's and dropping the sender (or
 * ek_mpsc_cancel) gives back the place and any slot already assigned.
 * Errors: EK_EINVAL, EK_EBUSY (a permit from this sender is outstanding),
 * EK_ENOMEM (queue growth failed; msg not consumed).
 */
EK_EXTERN int ek_mpsc_send(ek_mpsc_sender *tx, ek_cx *cx, void *msg);

/* Send without waiting: EK_OK, EK_EFULL (no free slot, or earlier senders are
 * waiting: fairness), EK_ECLOSED, EK_EBUSY, EK_EINVAL, EK_ENOMEM. msg is consumed
 * only on EK_OK. */
EK_EXTERN int ek_mpsc_try_send(ek_mpsc_sender *tx, void *msg);

/* Send, blocking the calling thread while the channel is full. Not from a thread
 * that runs tasks (EK_EDEADLK). Same codes as ek_mpsc_try_send except EK_EFULL. */
EK_EXTERN int ek_mpsc_blocking_send(ek_mpsc_sender *tx, void *msg);

/*
 * Wait for a free slot before producing the message (Tokio's reserve): EK_OK
 * with *permit = a permit that guarantees the next ek_mpsc_permit_send succeeds
 * without waiting; EK_PENDING (place kept in the queue, as ek_mpsc_send);
 * EK_ECLOSED. The permit borrows the sender: one outstanding permit per sender
 * (another reserve or send gives EK_EBUSY). Never allocates. On an unbounded
 * channel it completes at once. Task context.
 * Cancel: safe; dropping the sender or ek_mpsc_cancel gives back the place.
 * Errors: EK_EINVAL, EK_EBUSY.
 */
EK_EXTERN int ek_mpsc_reserve(ek_mpsc_sender *tx, ek_cx *cx, ek_mpsc_permit **permit);

/* As ek_mpsc_reserve without waiting: EK_EFULL when it would wait. */
EK_EXTERN int ek_mpsc_try_reserve(ek_mpsc_sender *tx, ek_mpsc_permit **permit);

/*
 * Send through a permit. Consumes the permit and msg in every case: EK_OK, or
 * EK_ECLOSED when the receiver was dropped meanwhile (msg then went through the
 * channel's drop function). A receiver that only closed still gets the message.
 * Errors: EK_EINVAL (not an outstanding permit; nothing consumed), EK_ENOMEM
 * (unbounded queue growth failed; msg not consumed, permit consumed).
 */
EK_EXTERN int ek_mpsc_permit_send(ek_mpsc_permit *permit, void *msg);

/* Give the reserved slot back unused (to the next waiting sender). NULL ignored. */
EK_EXTERN void ek_mpsc_permit_drop(ek_mpsc_permit *permit);

/*
 * Abandon a pending send or reserve without dropping the sender (for example
 * when a select took another branch): leaves the wait queue and gives back a
 * slot already assigned. A no-op when not waiting. Errors: EK_EINVAL.
 */
EK_EXTERN int ek_mpsc_cancel(ek_mpsc_sender *tx);

/* 1 if the receiver is closed or dropped, 0 if not, EK_EINVAL. */
EK_EXTERN int ek_mpsc_sender_is_closed(ek_mpsc_sender *tx);

/*
 * Receive the next message: EK_OK with *out = the message (now the caller's);
 * EK_PENDING; EK_ECLOSED once the queue is empty and either every sender is gone
 * or the receiver was closed (and no permit is outstanding). Task context.
 * out may be NULL: the message is then taken and passed to the channel's drop
 * function at once, on this thread (never silently lost); the same holds for
 * try_recv and blocking_recv.
 * Cancel: safe; nothing is taken from the queue unless EK_OK is returned.
 * Errors: EK_EINVAL.
 */
EK_EXTERN int ek_mpsc_recv(ek_mpsc_receiver *rx, ek_cx *cx, void **out);

/* As ek_mpsc_recv without waiting: EK_EEMPTY when nothing is queued yet. */
EK_EXTERN int ek_mpsc_try_recv(ek_mpsc_receiver *rx, void **out);

/* As ek_mpsc_recv, blocking the calling thread (not a worker: EK_EDEADLK). */
EK_EXTERN int ek_mpsc_blocking_recv(ek_mpsc_receiver *rx, void **out);

/*
 * Close the channel from the receiving side: further sends fail with
 * EK_ECLOSED, waiting senders are woken (and fail), outstanding permits may
 * still send; queued messages can still be received. Idempotent. Errors:
 * EK_EINVAL.
 */
EK_EXTERN int ek_mpsc_close(ek_mpsc_receiver *rx);

/* Number of messages queued now (a snapshot), or EK_EINVAL. */
EK_EXTERN int64_t ek_mpsc_len(ek_mpsc_receiver *rx);

/* Drop the receiver: closes the channel and passes every queued message through
 * the drop function (now, on this thread). NULL ignored. */
EK_EXTERN void ek_mpsc_receiver_drop(ek_mpsc_receiver *rx);

/* ========================================================================= */
/* broadcast: every receiver sees every message (bounded ring, lagging)      */
/* ========================================================================= */

typedef struct ek_broadcast_sender ek_broadcast_sender;
typedef struct ek_broadcast_receiver ek_broadcast_receiver;

/*
 * A broadcast channel keeping the last `cap` (>= 1) messages. Each receiver
 * gets its own copy of each message made by `clone` (NULL: the pointer itself).
 * The channel's copy goes through `drop` (may be NULL) when the last receiver
 * that existed when it was sent receives it; if receivers went away instead,
 * when it is overwritten or the channel is freed. Without a clone, every receiver
 * gets the same pointer, whose lifetime the caller manages: `drop` must then be
 * NULL too. Sends never wait: a receiver that falls more than cap messages behind
 * loses the oldest ones (EK_ELAGGED). Errors: EK_EINVAL (cap 0, NULL outputs, a
 * drop without a clone), EK_ENOMEM.
 */
EK_EXTERN int ek_broadcast_new(size_t cap, ek_clone_fn clone, ek_drop_fn drop,
                               ek_broadcast_sender **tx, ek_broadcast_receiver **rx);

/* Another sender. Errors: EK_EINVAL, EK_ENOMEM. */
EK_EXTERN int ek_broadcast_sender_clone(ek_broadcast_sender *tx, ek_broadcast_sender **out);

/* A new receiver that sees messages sent from now on. Works after every receiver
 * has been dropped. Errors: EK_EINVAL, EK_ENOMEM. */
EK_EXTERN int ek_broadcast_subscribe(ek_broadcast_sender *tx, ek_broadcast_receiver **out);

/* Release a sender; after the last one receivers get EK_ECLOSED once they have
 * caught up. NULL ignored. */
EK_EXTERN void ek_broadcast_sender_drop(ek_broadcast_sender *tx);

/*
 * Send to every current receiver. Never waits. EK_OK (msg consumed; if
 * `receivers` is not NULL it gets how many receivers will see it); EK_ECLOSED
 * if there are no receivers (msg not consumed). An overwritten message goes
 * through the drop function on this thread. Errors: EK_EINVAL.
 */
EK_EXTERN int ek_broadcast_send(ek_broadcast_sender *tx, void *msg, size_t *receivers);

/*
 * Receive the next message: EK_OK with *out = this receiver's copy; EK_PENDING;
 * EK_ELAGGED when messages were overwritten before this receiver saw them:
 * *missed (if not NULL) gets how many, and the next call returns the oldest
 * message still kept; EK_ECLOSED after every sender is gone and everything was
 * received; or the clone function's error (the message is skipped and counted
 * as received). Task context. out may be NULL: the message is then skipped
 * (counted as received by this receiver) and no copy is made, so nothing leaks;
 * the same holds for try_recv and blocking_recv.
 * Cancel: safe; nothing is consumed unless EK_OK.
 * Errors: EK_EINVAL.
 */
EK_EXTERN int ek_broadcast_recv(ek_broadcast_receiver *rx, ek_cx *cx, void **out, uint64_t *missed);

/* As ek_broadcast_recv without waiting: EK_EEMPTY when nothing new. */
EK_EXTERN int ek_broadcast_try_recv(ek_broadcast_receiver *rx, void **out, uint64_t *missed);

/* As ek_broadcast_recv, blocking the calling thread (not a worker: EK_EDEADLK). */
EK_EXTERN int ek_broadcast_blocking_recv(ek_broadcast_receiver *rx, void **out, uint64_t *missed);

/* A new receiver at the same position as rx. Errors: EK_EINVAL, EK_ENOMEM. */
EK_EXTERN int ek_broadcast_receiver_clone(ek_broadcast_receiver *rx, ek_broadcast_receiver **out);

/* Release a receiver; messages it had not received no longer wait for it. NULL
 * ignored. */
EK_EXTERN void ek_broadcast_receiver_drop(ek_broadcast_receiver *rx);

/* ========================================================================= */
/* watch: the latest value, with change notification                         */
/* ========================================================================= */

typedef struct ek_watch_sender ek_watch_sender;
typedef struct ek_watch_receiver ek_watch_receiver;

/*
 * A watch channel holding `initial` (consumed). Receivers read copies made by
 * `clone` (NULL: the pointer itself); a replaced value goes through `drop` (may
 * be NULL), as does the last value when the channel is freed. One sender.
 * Consumes initial, on error too (it has then gone through drop, if not NULL).
 * Errors: EK_EINVAL (NULL outputs), EK_ENOMEM.
 */
EK_EXTERN int ek_watch_new(void *initial, ek_clone_fn clone, ek_drop_fn drop, ek_watch_sender **tx,
                           ek_watch_receiver **rx);

/*
 * Replace the value and notify receivers. EK_OK (value consumed; the old one went
 * through the drop function); EK_ECLOSED if there are no receivers (value not
 * consumed, nothing changes), as Tokio's send. Errors: EK_EINVAL.
 */
EK_EXTERN int ek_watch_send(ek_watch_sender *tx, void *value);

/* Replace the value even without receivers (value consumed). Errors: EK_EINVAL. */
EK_EXTERN int ek_watch_send_replace(ek_watch_sender *tx, void *value);

/* A receiver that has seen the current value. Errors: EK_EINVAL, EK_ENOMEM. */
EK_EXTERN int ek_watch_subscribe(ek_watch_sender *tx, ek_watch_receiver **out);

/* Number of live receivers, or EK_EINVAL. */
EK_EXTERN int64_t ek_watch_receiver_count(ek_watch_sender *tx);

/* Drop the sender: waiting receivers' ek_watch_changed return EK_ECLOSED (after
 * any change they have not seen). The value stays readable. NULL ignored. */
EK_EXTERN void ek_watch_sender_drop(ek_watch_sender *tx);

/* *out = a copy of the current value (caller owns it). Does not mark it seen.
 * Errors: EK_EINVAL, or the clone function's error. */
EK_EXTERN int ek_watch_borrow(ek_watch_receiver *rx, void **out);

/* As ek_watch_borrow, and marks the value seen. */
EK_EXTERN int ek_watch_borrow_and_update(ek_watch_receiver *rx, void **out);

/* 1 if a value this receiver has not seen was sent, 0 if not, EK_ECLOSED if the
 * sender is gone (and nothing unseen), EK_EINVAL. */
EK_EXTERN int ek_watch_has_changed(ek_watch_receiver *rx);

/*
 * Wait for a value this receiver has not seen, and mark it seen (read it with
 * ek_watch_borrow): EK_OK; EK_PENDING; EK_ECLOSED if the sender was dropped and
 * nothing unseen is left. Task context. Cancel: safe; nothing is consumed.
 * Errors: EK_EINVAL.
 */
EK_EXTERN int ek_watch_changed(ek_watch_receiver *rx, ek_cx *cx);

/* As ek_watch_changed, blocking the calling thread (not a worker: EK_EDEADLK). */
EK_EXTERN int ek_watch_blocking_changed(ek_watch_receiver *rx);

/* Another receiver with the same seen version. Errors: EK_EINVAL, EK_ENOMEM. */
EK_EXTERN int ek_watch_receiver_clone(ek_watch_receiver *rx, ek_watch_receiver **out);

/* Release a receiver. NULL ignored. */
EK_EXTERN void ek_watch_receiver_drop(ek_watch_receiver *rx);

/* ========================================================================= */
/* notify: wake one waiting task or all of them                              */
/* ========================================================================= */

typedef struct ek_notify ek_notify;
typedef struct ek_notified ek_notified;

/* A new notify (reference count 1). Errors: EK_EINVAL, EK_ENOMEM. */
EK_EXTERN int ek_notify_new(ek_notify **out);
/* Another reference to n in *out (the same object). Never allocates.
 * Errors: EK_EINVAL (bad handle, NULL out). */
EK_EXTERN int ek_notify_clone(ek_notify *n, ek_notify **out);
/* Release a reference. NULL ignored. */
EK_EXTERN void ek_notify_drop(ek_notify *n);

/*
 * Wake the waiter that has waited longest (FIFO). If none is waiting, store one
 * permit (at most one) so that the next wait completes at once: a notification
 * sent before the wait is not lost. Errors: EK_EINVAL.
 */
EK_EXTERN int ek_notify_one(ek_notify *n);

/*
 * Wake every waiter whose ek_notified was created (or reset) before this call,
 * whether or not it has been polled yet. Stores no permit. Errors: EK_EINVAL.
 */
EK_EXTERN int ek_notify_waiters(ek_notify *n);

/*
 * A waiter object for one wait (Tokio's Notified); creating it takes the snapshot
 * that ek_notify_waiters compares against. Holds a reference to n.
 * Errors: EK_EINVAL, EK_ENOMEM.
 */
EK_EXTERN int ek_notified_new(ek_notify *n, ek_notified **out);

/*
 * Wait: EK_OK once notified (a notify_one aimed at this waiter, a stored permit,
 * or a notify_waiters after creation/reset); EK_PENDING (queued FIFO). After
 * EK_OK it keeps returning EK_OK until ek_notified_reset. Task context.
 * Cancel: safe; dropping a waiter that had been picked by notify_one but not yet
 * returned EK_OK passes that notification on (to the next waiter, or as the
 * permit), so none is lost. Errors: EK_EINVAL.
 */
EK_EXTERN int ek_notified_poll(ek_notified *w, ek_cx *cx);

/* As ek_notified_poll, blocking the calling thread (not a worker: EK_EDEADLK). */
EK_EXTERN int ek_notified_blocking_wait(ek_notified *w);

/* Re-arm for another wait (new snapshot; leaves the queue; an unconsumed
 * notify_one is passed on as in drop). Errors: EK_EINVAL. */
EK_EXTERN int ek_notified_reset(ek_notified *w);

/* Release the waiter (see the Cancel line of ek_notified_poll). NULL ignored. */
EK_EXTERN void ek_notified_drop(ek_notified *w);

/* ========================================================================= */
/* semaphore: fair (FIFO) counting semaphore                                 */
/* ========================================================================= */

typedef struct ek_semaphore ek_semaphore;
typedef struct ek_semaphore_permit ek_semaphore_permit;

/* The most permits a semaphore can hold (as Tokio: usize::MAX >> 3). */
#define EK_SEMAPHORE_MAX_PERMITS (SIZE_MAX >> 3)

/* A semaphore with `permits` permits (reference count 1).
 * Errors: EK_EINVAL (NULL out, permits > EK_SEMAPHORE_MAX_PERMITS), EK_ENOMEM. */
EK_EXTERN int ek_semaphore_new(size_t permits, ek_semaphore **out);
/* Another reference to s in *out (the same object). Never allocates.
 * Errors: EK_EINVAL (bad handle, NULL out). */
EK_EXTERN int ek_semaphore_clone(ek_semaphore *s, ek_semaphore **out);
/* Release a reference. Permit objects keep the semaphore alive. NULL ignored. */
EK_EXTERN void ek_semaphore_drop(ek_semaphore *s);

/*
 * Take n raw permits without waiting: EK_OK (the caller owes them back through
 * ek_semaphore_release), EK_EFULL (not enough, or others are waiting: FIFO),
 * EK_ECLOSED. n = 0 succeeds. Errors: EK_EINVAL.
 */
EK_EXTERN int ek_semaphore_try_acquire(ek_semaphore *s, size_t n);

/* Add n permits (return raw permits, or grow the semaphore); waiters are served
 * in FIFO order. Errors: EK_EINVAL, EK_ERANGE (would exceed the maximum). */
EK_EXTERN int ek_semaphore_release(ek_semaphore *s, size_t n);

/* Permits available now (a snapshot, >= 0), or EK_EINVAL for a bad handle. */
EK_EXTERN int64_t ek_semaphore_available_permits(ek_semaphore *s);

/* Close: waiting and later acquires fail with EK_ECLOSED; permits already held
 * stay valid and can be released. Idempotent. Errors: EK_EINVAL. */
EK_EXTERN int ek_semaphore_close(ek_semaphore *s);

/* 1 if closed, 0 if not, EK_EINVAL. */
EK_EXTERN int ek_semaphore_is_closed(ek_semaphore *s);

/*
 * A permit object: the caller's place in the wait queue and the holder of the
 * permits it acquires (Tokio's Acquire future and SemaphorePermit in one,
 * reusable). Holds a reference to s. Errors: EK_EINVAL, EK_ENOMEM.
 */
EK_EXTERN int ek_semaphore_permit_new(ek_semaphore *s, ek_semaphore_permit **out);

/*
 * Acquire n more permits into p: EK_OK (p now holds them, added to what it
 * held); EK_PENDING (p is queued, FIFO; a waiter needing many permits blocks the
 * ones behind it, as in Tokio); EK_ECLOSED. While pending, poll again with the
 * same n (a different n gives EK_EINVAL). Task context.
 * Cancel: safe; dropping p (or ek_semaphore_permit_release) leaves the queue and
 * returns every permit assigned to it, including ones held.
 * Errors: EK_EINVAL (n > EK_SEMAPHORE_MAX_PERMITS, or n changed while pending).
 */
EK_EXTERN int ek_semaphore_acquire(ek_semaphore_permit *p, ek_cx *cx, size_t n);

/* As ek_semaphore_acquire, blocking the calling thread (not a worker:
 * EK_EDEADLK). */
EK_EXTERN int ek_semaphore_blocking_acquire(ek_semaphore_permit *p, size_t n);

/* Permits held by p (>= 0; 0 while still waiting), or EK_EINVAL for a bad
 * handle. */
EK_EXTERN int64_t ek_semaphore_permit_count(ek_semaphore_permit *p);

/* Return every permit p holds, and cancel its pending acquire if any. p stays
 * usable. Errors: EK_EINVAL. */
EK_EXTERN int ek_semaphore_permit_release(ek_semaphore_permit *p);

/* Forget the permits p holds: they are removed from the semaphore for good
 * (Tokio's forget). Errors: EK_EINVAL. */
EK_EXTERN int ek_semaphore_permit_forget(ek_semaphore_permit *p);

/* Release everything p holds or waits for, and free it. NULL ignored. */
EK_EXTERN void ek_semaphore_permit_drop(ek_semaphore_permit *p);

/* ========================================================================= */
/* mutex: fair (FIFO) asynchronous mutex guarding a value                     */
/* ========================================================================= */

typedef struct ek_mutex ek_mutex;
typedef struct ek_mutex_guard ek_mutex_guard;

/* A mutex guarding `value` (may be NULL), which goes through `drop` (may be
 * NULL) when the mutex is freed. Reference count 1. Consumes value, on error too
 * (it has then gone through drop, if not NULL). Errors: EK_EINVAL (NULL out),
 * EK_ENOMEM. */
EK_EXTERN int ek_mutex_new(void *value, ek_drop_fn drop, ek_mutex **out);
/* Another reference to m in *out (the same object). Never allocates.
 * Errors: EK_EINVAL (bad handle, NULL out). */
EK_EXTERN int ek_mutex_clone(ek_mutex *m, ek_mutex **out);
/* Release a reference. Guards keep the mutex alive. NULL ignored. */
EK_EXTERN void ek_mutex_drop(ek_mutex *m);

/* A guard object: the caller's place in the wait queue and, once locked, the
 * lock itself. Reusable; holds a reference to m. Errors: EK_EINVAL, EK_ENOMEM. */
EK_EXTERN int ek_mutex_guard_new(ek_mutex *m, ek_mutex_guard **out);

/*
 * Lock: EK_OK (g holds the lock); EK_PENDING (queued FIFO). Task context.
 * Cancel: safe; dropping g (or ek_mutex_unlock) leaves the queue, or unlocks if
 * the lock had already been handed to g.
 * Errors: EK_EINVAL, EK_EDEADLK (g already holds the lock).
 */
EK_EXTERN int ek_mutex_lock(ek_mutex_guard *g, ek_cx *cx);

/* Lock without waiting: EK_OK, EK_EBUSY (held or others are waiting), EK_EINVAL,
 * EK_EDEADLK. */
EK_EXTERN int ek_mutex_try_lock(ek_mutex_guard *g);

/* Lock, blocking the calling thread (not a worker: EK_EDEADLK). */
EK_EXTERN int ek_mutex_blocking_lock(ek_mutex_guard *g);

/* The guarded value while g holds the lock; NULL otherwise. The pointer may be
 * replaced through ek_mutex_guard_set. */
EK_EXTERN void *ek_mutex_guard_get(ek_mutex_guard *g);

/* Replace the guarded value while holding the lock (the old value is not
 * dropped: it is returned in *old if old is not NULL). Errors: EK_EINVAL (not
 * holding). */
EK_EXTERN int ek_mutex_guard_set(ek_mutex_guard *g, void *value, void **old);

/* Unlock (the next waiter, FIFO, gets the lock), or cancel a pending lock. g
 * stays usable. A guard that neither holds the lock nor waits for it (never
 * locked, or unlocked already) is left as it is: EK_OK, and the mutex is not
 * touched (a guard can only give back a lock it holds). Errors: EK_EINVAL. */
EK_EXTERN int ek_mutex_unlock(ek_mutex_guard *g);

/* Unlock or cancel as needed, and free the guard. NULL ignored. */
EK_EXTERN void ek_mutex_guard_drop(ek_mutex_guard *g);

/* ========================================================================= */
/* Wait futures: the waits above as heap futures (ek_timeout, ek_select)     */
/* ========================================================================= */

/*
 * Each returns a heap future (ek_future, see ekiden.h) over one wait above, so
 * that it composes: ek_timeout(rt, f, ms, &g) bounds it, ek_select races it
 * against others, ek_join_all gathers several. Polling it does what the direct
 * poll does (including the cooperative budget); dropping it before it
 * completes is the direct poll's "Cancel:" (nothing is lost). Any thread
 * creates one; poll it from task context. One allocation (plus the waiter
 * object of the queued waits), none while polling or dropping.
 * The receive futures borrow their receiver: it must outlive the future, and
 * is not used by anything else meanwhile.
 */

/* Completes with EK_OK and *out = an ek_semaphore_permit (the awaiter's; release
 * it with ek_semaphore_permit_drop) holding n permits, or EK_ECLOSED. The future
 * holds its own reference to s and its place in the FIFO queue from its first
 * poll. Errors now: EK_EINVAL (bad s, NULL out, n > EK_SEMAPHORE_MAX_PERMITS),
 * EK_ENOMEM. */
EK_EXTERN int ek_semaphore_acquire_future(ek_semaphore *s, size_t n, ek_future **out);

/* Completes with EK_OK and *out = an ek_mutex_guard holding the lock (the
 * awaiter's; ek_mutex_guard_drop unlocks and frees it). Holds its own reference
 * to m. Errors now: EK_EINVAL (bad m, NULL out), EK_ENOMEM. */
EK_EXTERN int ek_mutex_lock_future(ek_mutex *m, ek_future **out);

/* Completes with EK_OK (*out = NULL) once notified, as ek_notified_poll; the
 * snapshot for ek_notify_waiters is taken now, at creation. Holds its own
 * reference to n. Errors now: EK_EINVAL (bad n, NULL out), EK_ENOMEM. */
EK_EXTERN int ek_notified_future(ek_notify *n, ek_future **out);

/* Completes as ek_oneshot_recv: EK_OK with *out = the value, or EK_ECLOSED.
 * Errors now: EK_EINVAL (bad rx, NULL out), EK_ENOMEM. */
EK_EXTERN int ek_oneshot_recv_future(ek_oneshot_receiver *rx, ek_future **out);

/* Completes as ek_mpsc_recv: EK_OK with *out = the next message, or EK_ECLOSED.
 * Errors now: EK_EINVAL (bad rx, NULL out), EK_ENOMEM. */
EK_EXTERN int ek_mpsc_recv_future(ek_mpsc_receiver *rx, ek_future **out);

/* Completes as ek_broadcast_recv: EK_OK with *out = this receiver's copy,
 * EK_ELAGGED (*missed, if missed is not NULL, gets how many were lost; `missed`
 * must stay valid while the future lives), EK_ECLOSED, or the clone function's
 * error. Errors now: EK_EINVAL (bad rx, NULL out), EK_ENOMEM. */
EK_EXTERN int ek_broadcast_recv_future(ek_broadcast_receiver *rx, uint64_t *missed,
                                       ek_future **out);

/* Completes as ek_watch_changed: EK_OK (*out = NULL; the new value is marked
 * seen, read it with ek_watch_borrow) or EK_ECLOSED. Errors now: EK_EINVAL (bad
 * rx, NULL out), EK_ENOMEM. */
EK_EXTERN int ek_watch_changed_future(ek_watch_receiver *rx, ek_future **out);

#ifdef __cplusplus
}
#endif

#endif
