/*
 * fifo.h - the intrusive task FIFO (tasks linked through ek__task.next, a head
 * and a tail pointer) that every non-stealing queue of the scheduler is: the
 * inject queue, the current-thread core, local sets (own and remote lists),
 * a worker's deferred list, the blocking pool. Written once here instead of by
 * hand at each. Not synchronised: the queue's lock or owning thread guards it.
 * The queues keep their own head/tail fields; these take pointers to them.
 */
#ifndef EK_CORE_SCHED_FIFO_H
#define EK_CORE_SCHED_FIFO_H

#include "../task/task.h"

/* Append the chain first..last (already linked; last->next is overwritten). */
static inline void ek__fifo_push_chain(ek__task **head, ek__task **tail, ek__task *first,
                                       ek__task *last)
{
    last->next = NULL;
    if (*tail)
        (*tail)->next = first;
    else
        *head = first;
    *tail = last;
}

static inline void ek__fifo_push(ek__task **head, ek__task **tail, ek__task *t)
{
    ek__fifo_push_chain(head, tail, t, t);
}

/* The first task, or NULL when empty. */
static inline ek__task *ek__fifo_pop(ek__task **head, ek__task **tail)
{
    ek__task *t = *head;
    if (t) {
        *head = t->next;
        if (!*head) *tail = NULL;
    }
    return t;
}

/* Move every task of src to the back of dst, in order; src is left empty. */
static inline void ek__fifo_append(ek__task **head, ek__task **tail, ek__task **src_head,
                                   ek__task **src_tail)
{
    if (*src_head) ek__fifo_push_chain(head, tail, *src_head, *src_tail);
    *src_head = *src_tail = NULL;
}

/* Take every task as one NULL-terminated chain, leaving the queue empty. */
static inline ek__task *ek__fifo_take(ek__task **head, ek__task **tail)
{
    ek__task *t = *head;
    *head = *tail = NULL;
    return t;
}

#endif
