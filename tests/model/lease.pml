/*
 * lease.pml - leader leases (shmbus_elect_lease(), shmbus_renew(), src/election.c), checked
 * with spin (tests/test_model_election.sh runs it in `make check`).
 *
 * One leader holds epoch 1 with a lease and renews it a few times, then stops (stuck).
 * Campaigners take over once the lease is over. Each step below is one load or CAS of a
 * shared word, as in the library:
 *   lease word  (lease_ep, lease_gen, dep): the epoch the lease belongs to, which renewal
 *               set it (its end), and the deposing mark.
 *   clock       time passing: at any moment the lease of the current renewal may end
 *               (ended_gen = lease_gen). A later renewal ends later, so every lease up to
 *               ended_gen is over.
 *   leader      renew: load the leader word (a newer epoch: -ESTALE, stop), load the lease
 *               word (marked: -ESTALE, stop), CAS it to the next renewal (lost: reload).
 *               Fenced work in between: accepted only while the leader word holds its
 *               epoch and the lease word is not marked for it.
 *   campaigner  load the leader word, load the lease word, read the clock; if the lease of
 *               the current epoch is marked, or over and our CAS marks it, CAS the leader
 *               word to the next epoch. A campaigner may die right after marking; the next
 *               one must finish the takeover.
 *
 * Safety (assertions): a takeover happens only after the lease of the last successful
 * renewal ended (a renewal that succeeded is never cut short); no fenced work is accepted
 * once the epoch is marked or replaced; one leader per epoch. Liveness (ltl, weak fairness):
 * the stuck leader is replaced.
 *
 * Broken variants, to show the model has teeth: -DBROKEN_RENEW renews with a plain store
 * that ignores the mark (a renewal succeeds and is then cut short); -DNO_MARK_FINISH makes a
 * campaigner ignore a mark it did not make itself (a dead marker's takeover is never
 * finished: the leader is never replaced).
 */
#ifndef RENEWALS
#define RENEWALS 2
#endif
#ifndef CAMPAIGNERS
#define CAMPAIGNERS 2
#endif

byte lead_ep = 1;      /* the leader word's epoch; the stuck leader holds 1 */
byte lead_id = 1;      /* 1: the leader; 2.. campaigners */
byte lease_ep = 1;     /* the lease word */
byte lease_gen = 1;
bool dep = false;
byte ended_gen = 0;    /* every lease up to this renewal is over */
byte last_ok_gen = 1;  /* ghost: the renewal the leader last saw succeed */
byte kills = 0;
bool replaced = false; /* ghost: the leader word left epoch 1 */

proctype leader()
{
    byte e, lep, lgen;
    bool ldep;
    byte n = 0;
    do
    :: n >= RENEWALS -> break /* stuck: stops renewing, stays alive */
    :: n < RENEWALS ->
        n++;
        /* Fenced work: accepted only while epoch 1 is current and not marked. */
        atomic {
            if
            :: lead_ep == 1 && !(lease_ep == 1 && dep) -> assert(!replaced)
            :: else -> skip /* -ESTALE */
            fi
        };
        e = lead_ep; /* shmbus_renew(): the leader word first */
        if
        :: e != 1 -> break /* -ESTALE */
        :: else -> skip
        fi;
reload:
        atomic { lep = lease_ep; lgen = lease_gen; ldep = dep };
#ifdef BROKEN_RENEW
        atomic { lease_ep = 1; lease_gen = lease_gen + 1; dep = false; last_ok_gen = lease_gen };
#else
        if
        :: lep == 1 && ldep -> break /* -ESTALE: deposed */
        :: else -> skip
        fi;
        atomic {
            if
            :: lease_ep == lep && lease_gen == lgen && dep == ldep ->
                lease_ep = 1; lease_gen = lgen + 1; dep = false; last_ok_gen = lease_gen
            :: else -> goto reload
            fi
        }
#endif
    od
}

proctype clock()
{
end_clock:
    do
    :: atomic { ended_gen < lease_gen -> ended_gen = lease_gen }
    od
}

proctype campaigner(byte me)
{
    byte e, lep, lgen;
    bool ldep, over, marked_by_me;
look:
    if
    :: replaced -> goto done
    :: else -> skip
    fi;
    e = lead_ep;
    atomic { lep = lease_ep; lgen = lease_gen; ldep = dep };
    over = (lgen <= ended_gen); /* the clock, read after the word */
    marked_by_me = false;
    if
    :: lep != e -> goto look /* no lease for this epoch: a live leader, poll again */
#ifdef NO_MARK_FINISH
    :: lep == e && ldep -> goto look
#else
    :: lep == e && ldep -> skip /* marked by someone who may have died: finish it */
#endif
    :: lep == e && !ldep && !over -> goto look /* in force: poll again */
    :: lep == e && !ldep && over ->
        atomic {
            if
            :: lease_ep == lep && lease_gen == lgen && dep == ldep -> dep = true; marked_by_me = true
            :: else -> skip
            fi
        };
        if
        :: marked_by_me -> skip
        :: else -> goto look /* renewed (or marked by another) meanwhile: look again */
        fi;
        /* The worst moment to die: the mark is made, the takeover is not. */
        if
        :: atomic { kills < 1 -> kills++ }; goto done
        :: skip
        fi
    fi;
    atomic {
        if
        :: lead_ep == e ->
            assert(last_ok_gen <= ended_gen); /* the last renewal's lease is over */
            assert(e == 1);                    /* one takeover of epoch 1: one leader of 2 */
            lead_ep = e + 1; lead_id = me; replaced = true
        :: else -> skip
        fi
    };
    goto look;
done:
    skip
}

init
{
    byte i;
    atomic {
        run leader();
        run clock();
        for (i : 1 .. CAMPAIGNERS) { run campaigner(i + 1) }
    }
}

ltl stuck_leader_replaced { <> replaced }
