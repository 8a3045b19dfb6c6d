/*
 * readiness.pml - the reactor's readiness protocol (core/driver/io.c, and the
 * loop of core/net/sock.c that uses it), checked exhaustively by spin: one
 * socket, one task reading it, the driver, and a peer that writes N times.
 * Each step of the real code that reads or writes shared state is one atomic
 * step here; spin tries every interleaving of them.
 *
 * Claim: the task never waits for ever while bytes it has not read are in the
 * socket. The task ends only once it has received all N writes; a task blocked
 * while the peer and the driver have nothing left to do is an "invalid end
 * state", which spin reports (a lost wake-up).
 *
 * Mutations (each must make spin find a counterexample; tests/model/run.sh
 * checks that it does, so the model itself can fail):
 *   -DNO_TICK_CHECK  ek__io_clear_ready ignores the tick: an edge newer than
 *                    the op's readiness snapshot is erased;
 *   -DNO_RELOAD      ek__io_poll_ready does not re-load the word after storing
 *                    the waker: a dispatch between the check and the store is
 *                    missed;
 *   -DTICKS=2        a tick that wraps after two driver turns: the ABA case the
 *                    tick's width (47 bits in io.c) rules out.
 */
#ifndef N
#define N 2
#endif
#ifndef TICKS
#define TICKS 64 /* more than the turns the model can make: no wrap */
#endif
#define IDLE_TURNS 3 /* driver turns with no event for this socket */

byte data = 0;      /* unread bytes in the kernel's receive queue */
bool edge = false;  /* an EPOLLIN edge queued in epoll, not yet harvested */
bool ready = false; /* the readiness word: the READABLE bit ... */
byte tick = 0;      /* ... and the tick of the event that set it */
byte turn = 0;      /* the driver's tick counter */
bool locked = false;
bool waker = false; /* the reader slot holds the task's waker */
bool woken = false; /* the task has been woken (it is scheduled) */
byte received = 0;

inline lock()
{
    atomic { !locked -> locked = true }
}
inline unlock()
{
    locked = false
}

active proctype peer()
{
    byte i;
    for (i : 1 .. N) {
        atomic { data++; edge = true } /* write(2): bytes in, an edge queued */
    }
}

active proctype driver()
{
    byte idle = 0;
    bool w;
end:
    do
    :: atomic { edge -> edge = false; turn = (turn + 1) % TICKS }
        /* ek__io_dispatch: publish readiness (CAS), then take the waker */
        atomic { ready = true; tick = turn }
        lock();
        w = waker;
        waker = false;
        unlock();
        if
        :: w -> woken = true
        :: else
        fi
    :: atomic { idle < IDLE_TURNS -> idle++; turn = (turn + 1) % TICKS }
    od
}

active proctype task()
{
    bool r;
    byte t;
    do
    :: received == N -> break
    :: else ->
        /* ek__io_poll_ready: load the word */
        atomic { r = ready; t = tick }
        if
        :: !r ->
            lock();
            waker = true;
#ifndef NO_RELOAD
            atomic { r = ready; t = tick }
#endif
            unlock();
            if
            :: !r ->
                /* EK_PENDING: the task sleeps until its waker is woken */
                atomic { woken -> woken = false }
                goto again
            :: else
            fi
        :: else
        fi;
        /* the op: recv(2), then on EAGAIN ek__io_clear_ready(READABLE, t) */
        if
        :: atomic { data > 0 -> data--; received++ }
        :: data == 0 -> /* EAGAIN; the driver may run before the clear */
            atomic {
#ifdef NO_TICK_CHECK
                ready = false
#else
                if
                :: tick == t -> ready = false
                :: else
                fi
#endif
            }
        fi;
again:
        skip
    od
}
