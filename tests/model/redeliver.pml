/*
 * redeliver.pml - work-queue redelivery (src/redeliver.c, the salvage in cleanup_entry() and
 * leave(), the in-flight hook in consume_at()), checked with spin
 * (tests/test_model_redeliver.sh runs it in `make check`).
 *
 * Counts stand for records: ring[w*M+m] copies of message m READY in worker w's mailbox,
 * fl[w*M+m] copies in w's in-flight table, pend[w] = m+1 while a producer holds a claim in
 * w's mailbox for m. Each atomic step is one store or CAS of the library:
 *   producer   picks a member that is LIVE and alive, claims in its mailbox (its state was
 *              checked before the claim, as send_rec() does), later commits.
 *   worker     (SHMBUS_SUB_CONFIRM) records m in flight, then marks the record DONE, then
 *              does the work, then shmbus_done() frees the slot. Dies at any step.
 *   reaper     CASes a dead worker's entry (LIVE with a dead process, CLEANING held by a dead
 *              reaper, or parked) to CLEANING(me); copies each in-flight message to a
 *              current member then frees the slot; copies each READY record then marks it
 *              DONE; parks (CLEANING, pid 0) when no member is current or when a live
 *              producer's claim is still in the ring; else FREE. Dies at any step.
 * At most MAXKILL workers die (one always lives) and at most MAXREAP reapers.
 *
 * Safety (-DSAFETY): no message is lost (ltl [] NO_LOSS: each message is done, or has a
 * copy in a ring, an in-flight table or a claim, or is not sent yet; and once everything
 * stops, each was done), and one live reaper at a time per entry. A leaver salvages its own
 * entry as a reaper does (leave()); it is not modelled apart. M is 2, W is 3 (NO_LOSS and
 * the worker's choice are written out for them). Liveness (weak fairness): every message is
 * done.
 *
 * Broken variants, to show the model has teeth: -DBROKEN_ORDER marks DONE before recording
 * in flight; -DBROKEN_CLEAR frees the slot before the copy; -DBROKEN_CLAIM goes FREE with a
 * producer's claim (or what it committed after the walk) still in the ring.
 */
#ifndef W
#define W 3
#endif
#ifndef M
#define M 2
#endif
#ifndef MAXKILL
#define MAXKILL 1
#endif
#ifndef MAXREAP
#define MAXREAP 1
#endif
#define R 2 /* reapers */

#define LIVE 0
#define CLEANING 1
#define PARKED 2
#define FREE 3

byte ring[W * M];
byte fl[W * M];
byte pend[W];
byte st[W];
byte owner[W]; /* reaper holding a CLEANING entry (1..R) */
bool alive[W];
bool ralive[R + 1];
byte done[M];
byte sent = 0; /* messages the producer has finished sending */
byte kills = 0, rkills = 0, nalive = W;

/* Message m is done, or has a copy in the ring of an entry that is not FREE (nobody would
 * ever take one from a FREE entry's ring), an in-flight table or a claim, or is not sent
 * yet (written out for W = 3). */
#define INRING(k, m) (ring[k * M + m] > 0 && st[k] != FREE)
#define HOLD(m)                                                                            \
    (done[m] > 0 || sent <= m || INRING(0, m) || INRING(1, m) || INRING(2, m) ||           \
     fl[m] > 0 || fl[M + m] > 0 || fl[2 * M + m] > 0 || pend[0] == m + 1 ||                \
     pend[1] == m + 1 || pend[2] == m + 1)
#define NO_LOSS (HOLD(0) && HOLD(1))

proctype producer()
{
    byte m = 0, w;
    do
    :: m < M ->
#define MEMBER(x) (st[x] == LIVE && alive[x])
        atomic {
            if
            :: MEMBER(0) -> w = 0
            :: MEMBER(1) -> w = 1
            :: MEMBER(2) -> w = 2
            fi;
            pend[w] = m + 1
        };
        atomic { ring[w * M + m]++; pend[w] = 0; sent++ };
        m++
    :: else -> break
    od
}

proctype worker(byte w)
{
    byte m;
end:
    do
    :: atomic { alive[w] && ring[w * M + 0] + ring[w * M + 1] > 0 ->
            if
            :: ring[w * M + 0] > 0 -> m = 0
            :: ring[w * M + 1] > 0 -> m = 1
            fi;
#ifdef BROKEN_ORDER
            ring[w * M + m]--
#else
            fl[w * M + m]++
#endif
        };
#ifdef BROKEN_ORDER
        atomic { alive[w] -> fl[w * M + m]++ };
#else
        atomic { alive[w] -> ring[w * M + m]-- };
#endif
        atomic { alive[w] -> done[m]++ };
        atomic { alive[w] -> fl[w * M + m]-- }
    od
}

proctype killer()
{
    byte w;
end:
    do
    :: atomic {
            kills < MAXKILL && nalive > 1 ->
            if
            :: alive[0] -> w = 0
            :: alive[1] -> w = 1
            :: alive[2] -> w = 2
            fi;
            alive[w] = false; nalive--; kills++
        }
    :: atomic {
            rkills < MAXREAP ->
            if
            :: ralive[1] -> ralive[1] = false
            :: ralive[2] -> ralive[2] = false
            fi;
            rkills++
        }
    od
}

/* A current member other than w, into t (W if none). */
inline pick(w, t)
{
    t = 0;
    do
    :: t < W && t != w && st[t] == LIVE && alive[t] -> break
    :: t < W && !(t != w && st[t] == LIVE && alive[t]) -> t++
    :: t == W -> break
    od
}

proctype reaper(byte me)
{
    byte w, t, m;
    bool ok;
end:
    do
#define REAPABLE(x) ((st[x] == LIVE && !alive[x]) || (st[x] == CLEANING && !ralive[owner[x]]) || \
                     st[x] == PARKED)
    :: atomic {
            ralive[me] ->
            if
            :: REAPABLE(0) -> w = 0
            :: REAPABLE(1) -> w = 1
            :: REAPABLE(2) -> w = 2
            fi;
            st[w] = CLEANING; owner[w] = me
        };
        m = 0;
        /* in-flight slots */
        do
        :: m < M && fl[w * M + m] == 0 -> m++
        :: m < M && fl[w * M + m] > 0 ->
            atomic { ralive[me] -> assert(owner[w] == me && st[w] == CLEANING); pick(w, t) };
            if
            :: t == W -> atomic { ralive[me] -> st[w] = PARKED }; goto next
            :: else
            fi;
#ifdef BROKEN_CLEAR
            atomic { ralive[me] -> fl[w * M + m]-- };
            atomic {
                ralive[me] ->
                if
                :: st[t] == LIVE -> ring[t * M + m]++; ok = true
                :: else -> ok = false /* it left meanwhile: sb__mbox_resend() fails */
                fi
            };
            if
            :: !ok -> atomic { ralive[me] -> st[w] = PARKED }; goto next
            :: else
            fi;
#else
            atomic {
                ralive[me] ->
                if
                :: st[t] == LIVE -> ring[t * M + m]++; ok = true
                :: else -> ok = false /* it left meanwhile: sb__mbox_resend() fails */
                fi
            };
            if
            :: !ok -> atomic { ralive[me] -> st[w] = PARKED }; goto next
            :: else
            fi;
            atomic { ralive[me] -> fl[w * M + m]-- };
#endif
        :: m == M -> break
        od;
        m = 0;
        /* waiting records */
        do
        :: m < M && ring[w * M + m] == 0 -> m++
        :: m < M && ring[w * M + m] > 0 ->
            atomic { ralive[me] -> assert(owner[w] == me && st[w] == CLEANING); pick(w, t) };
            if
            :: t == W -> atomic { ralive[me] -> st[w] = PARKED }; goto next
            :: else
            fi;
            atomic {
                ralive[me] ->
                if
                :: st[t] == LIVE -> ring[t * M + m]++; ok = true
                :: else -> ok = false /* it left meanwhile: sb__mbox_resend() fails */
                fi
            };
            if
            :: !ok -> atomic { ralive[me] -> st[w] = PARKED }; goto next
            :: else
            fi;
            atomic { ralive[me] -> ring[w * M + m]-- }
        :: m == M -> break
        od;
#ifdef BROKEN_CLAIM
        atomic { ralive[me] -> st[w] = FREE };
#else
        /* The walk ended short of tail (a claim, or a record committed after the walk
         * passed): park, as sb__mbox_drain_each() says stopped. */
        atomic {
            ralive[me] ->
            if
            :: pend[w] != 0 || ring[w * M + 0] + ring[w * M + 1] > 0 -> st[w] = PARKED
            :: else -> st[w] = FREE
            fi
        };
#endif
next:
        skip
    od
}

init {
    byte i;
    atomic {
        i = 0;
        do
        :: i < W -> alive[i] = true; i++
        :: else -> break
        od;
        ralive[1] = true;
        ralive[2] = true;
        run producer();
        i = 0;
        do
        :: i < W -> run worker(i); i++
        :: else -> break
        od;
        run killer();
        run reaper(1);
        run reaper(2)
    }
    /* Everything stopped: every message was done. */
    timeout -> assert(done[0] > 0 && done[1] > 0)
}

#ifdef SAFETY
ltl no_loss { [] NO_LOSS }
#else
ltl all_done { <> (done[0] > 0 && done[1] > 0) }
#endif
