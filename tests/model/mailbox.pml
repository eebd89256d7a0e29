/*
 * mailbox.pml - the shmbus mailbox protocol, as src/mailbox.c and src/registry.c run it,
 * checked with spin (tests/test_model.sh runs it in `make check`).
 *
 * The model: NP producers send M messages each into one consumer's mailbox, a ring of S
 * slots. Positions are absolute (as the 64-bit counters in the code) and bounded by NP * M,
 * so nothing wraps. Each step below is one atomic memory operation of the code, in the
 * code's order; an `atomic` block is one CAS or one store the code does at once.
 *
 *   producer  reserve(): t = tail; s = seq[t % S];
 *                        s == t: write intent (pos, n = 1), then CAS tail t -> t + 1
 *                        s <  t: full: intent n = 0, wait and look again
 *                        s >  t: someone took t: look again
 *             fill_slot(): payload in two halves (so a reader of a half-written slot shows),
 *                        then commit: seq = t + 1
 *             finish_send(): intent n = 0
 *   killer    SIGKILLs any producer at any moment between two of its steps (`unless`), up to
 *             MAXKILL of them; a killed process is dead for everyone from then on (the
 *             kernel's view: /proc, pid + start time).
 *   consumer  take: seq[h % S] == h + 1: copy the payload out, free (seq = h + S), head++
 *             advance: seq[h % S] >= h + S (taken or skipped): head++
 *             check_stuck(): seq[h % S] == h and tail > h: skip_one(h)
 *   cleaner   cleanup_entry(): CAS a dead LIVE entry to CLEANING, then
 *             sb__mbox_skip_intents(): skip_one() over the dead producer's intent, intent
 *             n = 0, then FREE.
 *   skip_one(p), exactly the guard of src/mailbox.c: seq[p % S] == p (one load), then
 *             tail > p (one load), then claimants(): for each entry, its kind, whether its
 *             process lives, its intent n, its intent pos (separate loads); skip only if
 *             no live claimant and a dead one, by CAS seq p -> p + S.
 *
 * What it proves, for every interleaving and every kill point of the configurations that
 * tests/test_model.sh runs (two producers, a ring of S = 2; M = 2 messages each with up to
 * two kills and the consumer as the only skipper; M = 1 with up to two kills and the
 * cleaner too; liveness with one kill; `make model` adds larger runs), with sequentially
 * consistent memory:
 *   - no message is delivered twice;
 *   - no torn message is delivered: what the consumer copies out is whole, committed, and
 *     the message reserved at that position;
 *   - per-producer FIFO: each producer's messages arrive in the order it sent them;
 *   - no committed message is lost (the consumer never dies here): at the end every
 *     committed message was delivered, and a producer that was not killed had all of its
 *     messages delivered;
 *   - no deadlock: every process reaches its end (no invalid end state);
 *   - with weak fairness, the consumer always finishes (LTL <> cons_done): it is never
 *     stuck forever behind a dead writer's reserved slot.
 *
 * What it found: with the rule skip_one() had before (skip only if there is a dead
 * claimant and no live one; -DOLD_SKIP_RULE), the liveness check fails: a cleaner reaps the
 * dead winner of p while a live producer's stale intent (it lost the CAS for p and has not
 * rewritten its intent yet) covers p; the cleaner cannot skip, clears the dead intent and
 * frees the entry; the live producer moves on; nobody claims p any more and the consumer
 * waits behind it for ever. The fix (commit "skip_one: skip a reserved slot no live writer
 * claims"): no live claimant is enough, since a live winner claims p until it commits.
 * tests/test_model.sh checks that the old rule still fails, so the model keeps its teeth.
 *
 * What it does not prove:
 *   - weak memory: the code's acquire/release pairs are assumed right (the comments in
 *     src/mailbox.c name each pair); the model is sequentially consistent;
 *   - larger rings, more producers, batches (intent n > 1), priorities (out-of-order takes),
 *     replies, 64-bit wrap-around;
 *   - sleeping and waking (semaphores, the sleeping / space_waiters flags): a blocked step
 *     here just waits until it can go;
 *   - the timing bound (skip within about 1 s): that is tests/test_crash.c's job;
 *   - liveness judgement itself (pid + start time): the model trusts it, and takes each
 *     entry's (state word, is its process alive) as one step, and an intent's (n, pos) as
 *     one write and one read (the code writes pos then n and reads n then pos; a torn
 *     read could only matter while the intent is being rewritten after a lost CAS, when it
 *     does not cover a reservation of its own);
 *   - a consumer or a cleaner that dies, and several cleaners (the code's CASes make each
 *     step happen once; tests/test_crash.c kills a cleaner half-way);
 *   - join, leave, generations, and messages to a dead receiver.
 */

#ifndef S
#define S       2 /* slots (a power of two, as in the code) */
#endif
#define NP      2 /* producers (the model's inlines spell out two) */
#ifndef M
#define M       2 /* messages per producer */
#endif
#define NPOS    (NP * M)
#ifndef MAXKILL
#define MAXKILL 2 /* producers the killer may kill */
#endif

mtype = { LIVE, CLEANING, FREE };

/* The segment. */
byte seq[S];
byte tail;
byte head;
byte data1[S];
byte data2[S];
mtype kind[NP];
bool alive[NP];
byte ipos[NP];
byte in_n[NP];

/* Ghost state: what the assertions look at. */
byte owner[NPOS];       /* the message reserved at each position */
bool committed[NPOS + 1];
bool delivered[NPOS + 1];
byte nextk[NP];         /* next message number the consumer may get from each producer */
bool killed[NP];
bool pdone[NP];
byte nkilled;
bool cons_done;

#define ALLDONE ((pdone[0] || killed[0]) && (pdone[1] || killed[1]))

proctype producer(byte i)
{
    byte k, t, s, msg;
    {
        do
        :: k < M ->
            msg = i * M + k + 1;
            do /* reserve() */
            :: t = tail;
               s = seq[t % S];
               if
               :: s == t ->
                   d_step { ipos[i] = t; in_n[i] = 1 } /* the intent */
                   if
                   :: atomic { tail == t -> tail = t + 1; owner[t] = msg }; break
                   :: atomic { tail != t -> skip } /* CAS lost: look again */
                   fi
               :: s < t -> in_n[i] = 0; (seq[t % S] != s || tail != t) /* full: wait */
               :: s > t -> skip /* another producer took t */
               fi
            od;
            s = 0;
            data1[t % S] = msg; /* fill_slot(): two halves */
            data2[t % S] = msg;
            atomic { seq[t % S] = t + 1; committed[msg] = true } /* commit */
            in_n[i] = 0; /* finish_send() */
            d_step { k++; t = 0; msg = 0 }
        :: else -> break
        od;
        pdone[i] = true
    } unless { killed[i] -> d_step { k = 0; t = 0; s = 0; msg = 0 } } /* dead: its locals are gone */
}

proctype killer()
{
    do
    :: atomic { nkilled < MAXKILL && !killed[0] -> killed[0] = true; alive[0] = false; nkilled++ }
    :: atomic { nkilled < MAXKILL && !killed[1] -> killed[1] = true; alive[1] = false; nkilled++ }
    :: break
    od
}

/*
 * claimants(): who claims position pos? For each entry, as the code: its state word and
 * whether its process lives (one step: the /proc check is taken as instantaneous), then its
 * intent (one step: see "does not prove").
 */
inline claim_one(x, pos, live, dead)
{
    d_step { kd = kind[x]; al = (kd == LIVE && alive[x]) };
    if
    :: kd == FREE -> skip
    :: else ->
        d_step {
            n = in_n[x];
            p0 = ipos[x];
            if
            :: n > 0 && pos >= p0 && pos < p0 + n ->
                if
                :: al -> live = true
                :: else -> dead = true
                fi
            :: else -> skip
            fi;
            n = 0;
            p0 = 0
        }
    fi
}

inline claimants(pos, live, dead)
{
    d_step { live = false; dead = false };
    claim_one(0, pos, live, dead);
    claim_one(1, pos, live, dead)
}

/* skip_one(): skip position pos if reserved, uncommitted, and claimed only by the dead. */
inline skip_one(pos)
{
    pp = pos;
    sv = seq[pp % S];
    if
    :: sv == pp ->
        tv = tail;
        if
        :: tv > pp ->
            claimants(pp, live, dead);
            if
#ifdef OLD_SKIP_RULE
            :: !live && dead -> /* the rule before the fix: orphans a slot (see above) */
#else
            :: !live ->
#endif
                atomic {
                    if
                    :: seq[pp % S] == pp -> seq[pp % S] = pp + S
                    :: else -> skip
                    fi
                }
            :: else -> skip
            fi
        :: else -> skip
        fi
    :: else -> skip
    fi;
    /* forget the temporaries: they are dead from here on */
    d_step { pp = 0; sv = 0; tv = 0; kd = 0; al = false; live = false; dead = false }
}

proctype consumer()
{
    byte h, s, m1, m2, pr, k;
    byte pp, sv, tv, n, p0;
    mtype kd;
    bool al, live, dead;
    do
    :: h = head;
       s = seq[h % S];
       if
       :: s == h + 1 -> /* take */
           m1 = data1[h % S];
           m2 = data2[h % S];
           d_step {
               assert(m1 == m2 && m1 == owner[h]); /* whole, and the message reserved here */
               assert(committed[m1]);
               assert(!delivered[m1]);            /* never twice */
               delivered[m1] = true;
               pr = (m1 - 1) / M;
               k = (m1 - 1) % M;
               assert(k >= nextk[pr]);            /* per-producer FIFO */
               nextk[pr] = k + 1
           };
           seq[h % S] = h + S;                  /* free_slot() */
           d_step { head = h + 1; m1 = 0; m2 = 0; pr = 0; k = 0 }
       :: s >= h + S -> head = h + 1            /* advance_head() past a skipped slot */
       :: s == h ->
           if
           :: tail > h -> skip_one(h)           /* check_stuck() */
           :: else ->                           /* empty: sleep until something changes */
               if
               :: atomic { ALLDONE && tail == h -> cons_done = true }; break
               :: (tail > h || seq[h % S] != h) -> skip
               fi
           fi
       fi;
       d_step { h = 0; s = 0 }
    od;
    /* Nothing committed was lost, and every producer that lived sent everything. */
    m1 = 1;
    do
    :: m1 <= NPOS -> assert(!committed[m1] || delivered[m1]); m1++
    :: else -> break
    od;
    assert(killed[0] || nextk[0] == M);
    assert(killed[1] || nextk[1] == M)
}

proctype cleaner()
{
    byte i, c, pp, sv, tv, n, p0, q, cn;
    mtype kd;
    bool al, live, dead;
    do
    :: atomic { kind[0] == LIVE && !alive[0] -> kind[0] = CLEANING; i = 0 } -> goto clean
    :: atomic { kind[1] == LIVE && !alive[1] -> kind[1] = CLEANING; i = 1 } -> goto clean
    :: cons_done -> break
    od;
    goto out;
clean:
    /* sb__mbox_skip_intents() */
    cn = in_n[i];
    q = ipos[i];
    c = 0;
    do
    :: c < cn -> skip_one(q + c); c++
    :: else -> break
    od;
    in_n[i] = 0;
    d_step { kind[i] = FREE; i = 0; c = 0; cn = 0; q = 0 }
    do
    :: atomic { kind[0] == LIVE && !alive[0] -> kind[0] = CLEANING; i = 0 } -> goto clean
    :: atomic { kind[1] == LIVE && !alive[1] -> kind[1] = CLEANING; i = 1 } -> goto clean
    :: cons_done -> break
    od;
out:
    skip
}

init
{
    atomic {
        byte x = 0;
        do
        :: x < S -> seq[x] = x; x++
        :: else -> break
        od;
        kind[0] = LIVE; kind[1] = LIVE;
        alive[0] = true; alive[1] = true;
        run producer(0);
        run producer(1);
        run consumer();
#ifndef NOCLEANER
        run cleaner();
#endif
        run killer()
    }
}

ltl consumer_finishes { <> cons_done }
