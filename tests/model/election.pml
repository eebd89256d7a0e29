/*
 * election.pml - leader election with epochs and fencing (src/election.c), checked with spin
 * (tests/test_model_election.sh runs it in `make check`).
 *
 * The leader word is one word: (lead_ep, lead_id), lead_id 0 = nobody. Each step below is one
 * load or CAS of that word, or one liveness look, as in the library:
 *   candidate   load (id, ep); if id == 0 or id is dead: CAS (id, ep) -> (me, ep + 1);
 *               a lost CAS looks again; a live leader: poll again (sleep, then look).
 *   leader      does fenced work: a send with its epoch is accepted only if the word's
 *               epoch is still its own (shmbus_send_fenced() loads the word once);
 *               then resigns (CAS (me, e) -> (0, e)) or dies (at most MAXKILL deaths).
 *   cleaner     a dead leader's word: CAS (id, e) -> (0, e) (sb__groups_forget()).
 * Death is permanent and seen by everyone (the kernel ends a process; a stopped one is
 * alive). Each candidate campaigns at most ROUNDS times, so epochs are bounded.
 *
 * Safety (assertions): one leader per epoch; epochs only grow; a fenced send is accepted
 * only while no newer leader exists. Liveness (ltl, weak fairness): a dead leader is
 * replaced while someone still campaigns.
 *
 * Broken variants, to show the model has teeth: -DBROKEN_CHECK takes over with a plain
 * store instead of the CAS (two leaders in one epoch); -DNO_DEATH_CHECK -DNOCLEANER lets
 * nobody notice a dead leader (a campaigner waits for ever).
 */
#ifndef N
#define N 3
#endif
#ifndef ROUNDS
#define ROUNDS 2
#endif
#ifndef MAXKILL
#define MAXKILL 1
#endif
#define EMAX (N * ROUNDS + 1)

byte lead_id = 0;
byte lead_ep = 0;
bool alive[N + 1];
byte leader_of[EMAX + 1]; /* ghost: who took epoch e (0: nobody yet) */
byte kills = 0;
byte campaigning = 0;     /* ghost: candidates inside a campaign */

#define dead_leader (lead_id != 0 && !alive[lead_id])

proctype candidate(byte me)
{
    byte sid, sep, round = 0, myep;
    bool won;
again:
    if
    :: round >= ROUNDS -> goto done
    :: else -> round++
    fi;
    campaigning++;
look:
    atomic { sid = lead_id; sep = lead_ep };
    if
#ifdef NO_DEATH_CHECK
    :: sid == 0 ->
#else
    :: sid == 0 || !alive[sid] ->
#endif
#ifdef BROKEN_CHECK
        atomic { lead_id = me; lead_ep = sep + 1; won = true };
#else
        atomic {
            if
            :: lead_id == sid && lead_ep == sep ->
                assert(sep + 1 > lead_ep); /* epochs only grow */
                lead_id = me; lead_ep = sep + 1; won = true
            :: else -> won = false
            fi
        };
#endif
        if
        :: won -> goto lead
        :: else -> goto look
        fi
    :: else -> goto look /* a live leader (or, broken, an unnoticed dead one): poll again */
    fi;
lead:
    myep = sep + 1;
    atomic {
        campaigning--;
        assert(leader_of[myep] == 0); /* one leader per epoch */
        leader_of[myep] = me
    };
    /* Fenced work: accepted only while the word still holds our epoch, and then no newer
     * leader may exist. */
    atomic {
        if
        :: lead_ep == myep -> assert(myep == EMAX || leader_of[myep + 1] == 0)
        :: else -> assert(lead_ep > myep) /* refused: -ESTALE */
        fi
    };
    if
    :: atomic { kills < MAXKILL -> kills++; alive[me] = false }; goto dead
    :: atomic { if :: lead_id == me && lead_ep == myep -> lead_id = 0 :: else fi }; goto again
    fi;
dead:
    skip;
done:
    skip
}

proctype cleaner()
{
    byte sid, sep;
end_clean:
    do
    :: atomic { sid = lead_id; sep = lead_ep };
       if
       :: sid != 0 && !alive[sid] ->
          atomic { if :: lead_id == sid && lead_ep == sep -> lead_id = 0 :: else fi }
       :: else -> skip
       fi
    od
}

init
{
    byte i;
    atomic {
        for (i : 1 .. N) { alive[i] = true };
        for (i : 1 .. N) { run candidate(i) };
#ifndef NOCLEANER
        run cleaner()
#endif
    }
}

ltl replaced { [] ((dead_leader && campaigning > 0) -> <> (!dead_leader || campaigning == 0)) }
