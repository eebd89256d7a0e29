/*
 * ring_v2.pml - the mailbox v2 protocol (docs/mailbox-v2.md), checked with spin
 * (tests/test_model_ring.sh and, for -DBATCH, tests/test_model_ring_batch.sh run it in
 * `make check`).
 *
 * The model: two producers send messages of different sizes (1 or 2 units) and
 * priorities into one consumer's byte ring of C units (a unit is the design's 64-byte line;
 * the configurations are below), so records wrap (a padding record fills the end of the
 * ring), fill the ring (backpressure), and are taken out of order. Positions are absolute
 * units (the design's 48-bit counters, which cannot wrap here); lap = pos / C. Each step is
 * one memory operation of the design, in the design's order; an `atomic` or `d_step`
 * block is one load, store or CAS of one word (the payload, one step: see below).
 *
 *   tail      one word: (tpos, tlen) = end of the last claim and that claim's length
 *   hw[x]     the header word of unit x: (st, ln, lp, pr) = state, length in units, lap,
 *             priority. st: 0 FREE (zero: never written since it was zeroed), CLAIMED,
 *             READY, DONE (taken, skipped, or padding). JUNK marks a unit word that lies
 *             inside a record (payload bytes): nobody may read it as a header.
 *   producer  claim(): (t, l) = tail;
 *               chain rule: if l > 0 and hw[t - l] == 0 and head <= t - l: the previous
 *               claim has no header yet: wait (it is written, or the consumer skips it);
 *               head past the claim's start says its header was written and consumed
 *               (the library's batches, one claim of several records, need that: their
 *               first record is zeroed while head stops inside the claim; here every
 *               claim is one record, where it is the same as head < t);
 *               room: t + need - cached_head <= C, else refresh the cache, else wait;
 *               wrap: a record never crosses the ring's end: claim a padding record of
 *               C - t % C units first (written DONE at once);
 *               intent (pos = t, active), then CAS tail (t, l) -> (t + need, need);
 *               a lost CAS clears the intent and starts again;
 *             header: store hw[t] = CLAIMED(need, lap, prio) (Agrona's negative length);
 *             payload: one step (a record read before its commit shows as uncommitted);
 *             the unit words inside a 2-unit record become JUNK;
 *             commit: CAS hw[t] CLAIMED -> READY (Agrona's positive length);
 *             intent cleared.
 *             A batch (-DBATCH, shmbus_send_batch()): one claim of two records of 1 unit:
 *             CAS tail (t, l) -> (t + 2, 2); hw[t] = CLAIMED(2); both payloads (one step);
 *             hw[t + 1] = READY|INNER(1) (a plain store inside the claim, before the
 *             commit); commit CAS hw[t] CLAIMED(2) -> READY(1), which commits both.
 *   killer    SIGKILLs any producer between any two of its steps, up to MAXKILL of them.
 *   consumer  one receive: advance h over DONE records, zeroing every unit word of each;
 *             publish head = h now or later (once per batch; always before waiting); scan
 *             the committed prefix from h (stop at a CLAIMED header, a zero word, or C
 *             units), take the first record of the highest priority, mark it DONE.
 *             stuck at h: hw[h] CLAIMED, or hw[h] == 0 with tail = (h + l, l) (a claim
 *             with no header yet, its length in tail): skip_one(h). A batch's dead claim
 *             is skipped whole: DONE(2) from CLAIMED(2) or from 0 with tail = (h + 2, 2),
 *             and both unit words (the INNER header too, if written) are zeroed.
 *             -DIDLE (batches only): maybe_publish() after a take must publish when hw[h]
 *             is 0 (caught up) or an INNER header (stopped inside a batch's claim), and may
 *             otherwise; then the receiver may return and never be called again.
 *   skip_one  the design's rule: no live process's intent is (this mailbox, h); then CAS
 *             hw[h] from the value read (CLAIMED(...) or 0) to DONE(length). Only the
 *             consumer writes ring words it does not own; a cleaner never does.
 *   cleaner   reaps a dead producer's entry: CAS LIVE -> CLEANING, clear its intent, FREE.
 *             It never touches the ring, so it can clear an intent at any moment.
 *
 * What it proves, for every interleaving and kill point of the configurations of
 * tests/test_model_ring.sh and tests/test_model_ring_batch.sh, with sequentially consistent
 * memory:
 *   - no message is delivered twice;
 *   - no torn record is delivered: both ends of the payload are the message claimed at that
 *     position, and it was committed;
 *   - per-producer FIFO within a priority level;
 *   - only dead writers' records are skipped (a live writer's commit CAS never fails);
 *   - every header the consumer reads is a real header of the current lap (never a JUNK
 *     word inside a record, never a stale lap), and a zero word below the last claim is
 *     never left there (the chain rule: only the last claim can lack its header);
 *   - nothing committed is lost: at the end every committed message was delivered, and
 *     every producer not killed had all its messages delivered;
 *   - no deadlock (no invalid end state), and with weak fairness the consumer always
 *     finishes (<> cons_done): it is never stuck for ever behind a dead writer.
 * With batches (-DBATCH), the same list for a batch claim among single claims, a kill at
 * every step of it (before its header, after it, after the payloads, after the INNER
 * header) and its skip; and the chain rule `head <= t - l` at a batch whose first record
 * was taken and zeroed (the layout 7 bug). In the runs without -DIDLE the consumer's publish
 * stays optional at every receive (a superset of maybe_publish()'s). With -DIDLE: whenever
 * the receiver stops being called (after its mandatory publishes), every producer still
 * waiting waits for room, never on the chain rule (no kills there: behind a dead writer's
 * claim an idle receiver does hold producers back, as it must, until it skips). Waiting for
 * room is then a valid end: the publish a waiting producer asks for (space_waiters) is not
 * modelled.
 *
 * Deliberately broken variants (each must fail):
 *   -DOLD_SKIP_RULE   skip only if some dead intent covers h (the rule mailbox.pml found
 *                     wrong): the cleaner clears the dead intent first, the consumer waits
 *                     for ever (liveness fails);
 *   -DSKIP_IF_DEAD    skip when a dead intent covers h even if a live one does too: a lost
 *                     CAS's stale intent makes a live writer's claim look dead (safety fails);
 *   -DNO_CHAIN_WAIT   producers claim after a claim whose header is not written yet: the
 *                     consumer meets a zero word that is not the last claim and cannot know
 *                     its length (safety fails);
 *   -DLOANS           every message is a loan its owner may cancel instead of committing
 *                     (shmbus_loan_cancel(): CAS CLAIMED -> DONE, passed like padding,
 *                     its unit words zeroed); a cancelled loan is never delivered;
 *   -DCANCEL_SHORT    with LOANS: the cancel's DONE header covers one unit, not the whole
 *                     claim: the consumer reads a payload word as a header (safety fails);
 *   -DCHAIN_NO_HEAD   the chain rule waits on any zero word, forgetting that the consumer
 *                     zeroes a header once it has taken the record: producers wait for a
 *                     header that will never come (deadlock).
 *   -DBATCH_OLD_CHAIN with BATCH and IDLE: the chain rule before layout 7 (wait while the
 *                     header reads 0 and head < t): the receiver took a batch's first record
 *                     and went idle, a producer waits for ever with room in the ring
 *                     (invalid end state). Without IDLE it passes: a receiver that keeps
 *                     receiving takes the rest of the batch, and the producer only waits.
 *   -DBATCH_NO_INNER_PUBLISH  with BATCH and IDLE: maybe_publish() does not publish at an
 *                     INNER record: head stays at or below the claim's start (the same).
 *   -DBATCH_SKIP_SHORT  with BATCH: a skip's DONE covers the batch's first record, not the
 *                     claim: the consumer lands inside the dead claim (safety fails).
 *
 * The consumer's own death (-DCONSUMER_DIES): a consumer killer may SIGKILL the consumer
 * between any two of its steps, once. Its private h dies with it; a successor (the next
 * client of the id; a cleaner's drain steps by the same zero_step() rule) starts at the
 * published head, which may be far behind where the dead one got to. A message is taken when its
 * header turns DONE (the copy the dead consumer made died with it), so the ghost delivery
 * is that store. A record's unit words are zeroed one store at a time, last to first, as
 * rv_zero() does. The successor's walk steps over a zero word only where zero_step() says
 * it is a unit its predecessor zeroed: below the last claim and not inside it; a zero word
 * at the last claim's start is skip_one()'s case (a claim with no header yet, or one the
 * dead consumer took and zeroed: skipping that one is harmless). It proves, besides the
 * list above: a successor never reads a payload word as a header, never delivers a message
 * its predecessor took, loses nothing committed and not taken, and always finishes. The
 * successor is the consumer process itself started again with every local reset (a second
 * process would keep the dead one's locals in every later state: the first version of this
 * variant did, ran out of memory with the kill explored only near the start, and so missed
 * -DZERO_FIRST_TO_LAST while seeming to pass). The kill is a global flag set by `ckiller`
 * that the consumer's body escapes on (`unless`).
 *   -DZERO_FIRST_TO_LAST   zero a record's units first to last: a successor that meets the
 *                          zeroed first unit steps onto a payload word (safety fails);
 *   -DSTEP_ANY_ZERO        step over every zero word below the tail, even the last claim's
 *                          missing header: the successor walks into a live writer's claim
 *                          and reads its payload as a header (safety fails).
 *
 * What it does not prove: weak memory (the design names each acquire/release pair; this
 * model is sequentially consistent); 48-bit position wrap and lap aliasing; the producer's
 * cached head (modelled as a fresh read: a cached head is an older, smaller value, so it
 * only makes room look smaller), nor claim()'s shortcut past the chain rule after its own
 * claim (a load it leaves out); more than two
 * producers; batches of more than two records, of records longer than a unit, two batches
 * in one run, and batches together with loans or the consumer's death (the INNER record
 * is taken after its batch's first, as in the library where both share a priority; a take
 * of it first, by a filtered receive, is not modelled); an idle receiver with kills;
 * loans (the same steps with the user writing between header and commit), request/reply (a
 * take from the middle of the prefix: covered by the priority take); sleeping and waking (a
 * blocked step here just waits for a change); more than one consumer death, and on the 3-message
 * ring its death together with a writer kill (more than MEMLIM: the 2-message ring checks
 * that, MODEL_FULL); a hostile segment (tests/fuzz_segment.c).
 */

/*
 * Three configurations. -DSMALL: C = 2; producer 0 sends one 2-unit message (prio 0),
 * producer 1 one 1-unit message (prio 1): it wraps, pads and fills, but never holds both.
 * Default: C = 3 units; producer 0 sends one 2-unit message of
 * priority 0, producer 1 two 1-unit messages of priority 1 (4 units through a ring of 3:
 * it wraps, pads, fills, and takes priority 1 before an earlier priority 0). -DBIG: C = 4;
 * producer 0 sends 2 units (prio 0) then 1 unit (prio 1), producer 1 sends 1 unit then
 * 2 units (both prio 0).
 * -DBATCH: C = 3; producer 0 sends one batch of messages 1 and 2 (1 unit each, prio 0),
 * producer 1 two 1-unit messages of priority 1 (taken first; 4 units through 3: wraps, pads
 * before the batch, fills). -DBATCH -DSMALL: C = 2; the batch, and one 1-unit message of
 * producer 1 (prio 1): the batch fills the ring, pads or follows it.
 */
#if defined(BATCH) && (defined(BIG) || defined(LOANS) || defined(CONSUMER_DIES))
#error "BATCH has its own configurations; it is not combined with BIG, LOANS or CONSUMER_DIES"
#endif
#if defined(IDLE) && !defined(BATCH)
#error "IDLE is a BATCH variant"
#endif
#if defined(IDLE) && !defined(NOCLEANER)
#error "IDLE runs without the cleaner (and without kills): see the IDLE comment"
#endif
#if defined(BATCH) && defined(SMALL)
#define C    2
#define NMSG 3
#elif defined(BATCH)
#define C    3
#define NMSG 4
#elif defined(BIG)
#define C    4
#define NMSG 4
#elif defined(SMALL)
#define C    2
#define NMSG 2
#else
#define C    3
#define NMSG 3
#endif
#define NP 2
#ifndef MAXKILL
#define MAXKILL 2
#endif
#define NPOS 16 /* positions the ghost tables cover (claims end well before) */

#define FREE_ST 0
#define CLAIMED 1
#define READY   2
#define DONE    3
#define JUNK    4
#define NONE    255
#define PADMSG  0

mtype = { LIVE, CLEANING, GONE };

/* The segment. */
byte tpos, tlen;                  /* tail: one word */
byte head;                        /* published by the consumer */
byte st[C], ln[C], lp[C], pr[C];  /* header word of each unit */
byte d1[C], d2[C];                /* payload: first and last unit of a record */
#ifdef BATCH
bit inr[C];                       /* the header's SB_HW_INNER bit: a batch's later record */
#endif
mtype kind[NP];
bool alive[NP];
byte ipos[NP];
bool iact[NP];

/* The messages: size in units and priority (message m = i * M + k + 1). */
byte msize[NMSG + 1];
byte mprio[NMSG + 1];
byte mfirst[NP];  /* producer i sends messages mfirst[i] .. mfirst[i] + mcount[i] - 1 */
byte mcount[NP];
#ifdef BATCH
bool mbat[NMSG + 1]; /* msg and msg + 1 are one batch: one claim of msize[msg] = 2 units,
                      * two records of 1 unit each */
#endif

/* Ghost state. */
byte owner[NPOS];       /* message claimed at each position (PADMSG: padding) */
byte ownerp[NPOS];      /* producer that claimed it */
bool committed[NMSG + 1];
bool delivered[NMSG + 1];
#ifdef LOANS
byte ncancel[NP];        /* loans their owner cancelled (never delivered) */
#endif
byte lastm[NP * 2];     /* last message delivered per (producer, priority) */
byte ndeliv[NP];
bool killed[NP];
bool pdone[NP];
byte nkilled;
bool cons_done;
#ifdef CONSUMER_DIES
bool cdead;             /* the first consumer was killed; its successor runs */
#endif
#ifdef IDLE
bool cidle;             /* the consumer returned and is not called again */
#endif

#define ALLDONE ((pdone[0] || killed[0]) && (pdone[1] || killed[1]))

proctype producer(byte i)
{
    byte k, t, l, u, need, hd, msg, sv;
    bool pad;
    {
        do
        :: k < mcount[i] ->
            msg = mfirst[i] + k;
            u = msize[msg];
            do /* claim() */
            :: d_step { t = tpos; l = tlen };
#ifndef NO_CHAIN_WAIT
               if
               :: l > 0 ->
                   sv = st[(t - l) % C];
                   if
                   :: sv == FREE_ST ->
                       if
#if defined(CHAIN_NO_HEAD)
                       :: true -> /* broken: a consumed, zeroed header also reads 0 */
                           (st[(t - l) % C] != FREE_ST || tpos != t);
#elif defined(BATCH_OLD_CHAIN)
                       :: head < t -> /* broken (the rule before layout 7): head != tail */
                           (st[(t - l) % C] != FREE_ST || head >= t || tpos != t);
#else
                       :: head <= t - l -> /* no header yet: wait for it, for head, or for tail */
                           (st[(t - l) % C] != FREE_ST || head > t - l || tpos != t);
#endif
                           sv = 0;
                           goto again
#ifndef CHAIN_NO_HEAD
                       :: else -> skip /* consumed and zeroed already */
#endif
                       fi
                   :: else -> skip
                   fi;
                   sv = 0
               :: else -> skip
               fi;
#endif
               pad = (t % C + u > C);
               if
               :: pad -> need = C - t % C
               :: else -> need = u
               fi;
               hd = head; /* the code caches it: a cached head is an older, smaller one */
               if
               :: t + need > hd + C -> /* full: wait */
#ifdef IDLE
end_room:          /* (an idle consumer: waiting for room is a valid end; see IDLE) */
#endif
                   (head != hd || tpos != t); hd = 0
               :: else ->
                   hd = 0;
                   d_step { ipos[i] = t; iact[i] = true }; /* the intent */
                   if
                   :: atomic { tpos == t && tlen == l ->
                           tpos = t + need; tlen = need;
                           if
                           :: pad -> owner[t] = PADMSG
                           :: else -> owner[t] = msg
                           fi;
#ifdef BATCH
                           if
                           :: !pad && mbat[msg] -> owner[t + 1] = msg + 1; ownerp[t + 1] = i
                           :: else -> skip
                           fi;
#endif
                           ownerp[t] = i }
                       -> if /* the header */
                          :: pad -> d_step { st[t % C] = DONE; ln[t % C] = need; lp[t % C] = t / C; pr[t % C] = 0 };
                                    iact[i] = false
                          :: else -> d_step { st[t % C] = CLAIMED; ln[t % C] = need; lp[t % C] = t / C;
                                              pr[t % C] = mprio[msg] };
                                     break
                          fi
                   :: atomic { !(tpos == t && tlen == l) -> skip }; /* lost: look again */
                       iact[i] = false
                   fi
               fi;
again:         skip
            od;
            skip; /* the break above must not land on a d_step */
            /* The payload, in one step: a record read before its commit shows as not
             * committed (and one read after its zeroing as torn). The unit words inside a
             * longer record become payload bytes: JUNK as headers. */
#ifdef BATCH
            if
            :: mbat[msg] ->
                /* send_batch(): both records' fields and payloads, then the second one's
                 * header READY|INNER(1 unit), a relaxed store inside the claim, before the
                 * commit (nobody reads inside a CLAIMED claim) */
                d_step { d1[t % C] = msg; d2[t % C] = msg; d1[(t + 1) % C] = msg + 1; d2[(t + 1) % C] = msg + 1 };
                d_step { st[(t + 1) % C] = READY; ln[(t + 1) % C] = 1; lp[(t + 1) % C] = (t + 1) / C;
                         pr[(t + 1) % C] = mprio[msg]; inr[(t + 1) % C] = 1 }
            :: else ->
#endif
            d_step {
                d1[t % C] = msg;
                if
                :: u > 1 -> st[(t + 1) % C] = JUNK; d2[(t + 1) % C] = msg
                :: else -> d2[t % C] = msg
                fi
            };
#ifdef BATCH
            fi;
#endif
#ifdef LOANS
            /* A loan: the user wrote (some of) it in place, then commits or cancels it.
             * shmbus_loan_cancel(): CAS CLAIMED -> DONE by the owner, passed like padding;
             * its unit words (JUNK inside) must be zeroed like any other record's. */
            if
            :: atomic { /* commit: CAS CLAIMED -> READY */
                   assert(st[t % C] == CLAIMED && lp[t % C] == t / C); /* never skipped alive */
                   st[t % C] = READY;
                   committed[msg] = true
               }
            :: atomic { /* cancel */
                   assert(st[t % C] == CLAIMED && lp[t % C] == t / C);
                   st[t % C] = DONE;
                   pr[t % C] = 0;
#ifdef CANCEL_SHORT
                   ln[t % C] = 1; /* broken: the DONE header covers less than the claim */
#endif
                   ncancel[i]++
               }
            fi;
#else
            atomic { /* commit: CAS CLAIMED -> READY */
                assert(st[t % C] == CLAIMED && lp[t % C] == t / C); /* never skipped alive */
                st[t % C] = READY;
#ifdef BATCH
                if
                :: mbat[msg] -> ln[t % C] = 1; committed[msg + 1] = true /* CLAIMED(2) -> READY(1) */
                :: else -> skip
                fi;
#endif
                committed[msg] = true
            };
#endif
            iact[i] = false;
            d_step {
#ifdef BATCH
                if :: mbat[msg] -> k++ :: else -> skip fi; /* a batch: two messages */
#endif
                k++; t = 0; l = 0; u = 0; need = 0; msg = 0; pad = false }
        :: else -> break
        od;
        pdone[i] = true
    } unless { killed[i] -> d_step { k = 0; t = 0; l = 0; u = 0; need = 0; hd = 0; msg = 0; sv = 0; pad = false } }
}

proctype killer()
{
    do
    :: atomic { nkilled < MAXKILL && !killed[0] -> killed[0] = true; alive[0] = false; nkilled++ }
    :: atomic { nkilled < MAXKILL && !killed[1] -> killed[1] = true; alive[1] = false; nkilled++ }
    :: break
    od
}

/* claimants(): is (this mailbox, pos) in a live or a dead entry's intent? One step per
 * entry's state word (with the /proc check), one per intent. */
inline claim_one(x, pos)
{
    d_step { kd = kind[x]; al = (kd == LIVE && alive[x]) };
    if
    :: kd == GONE -> skip
    :: else ->
        d_step {
            if
            :: iact[x] && ipos[x] == pos ->
                if
                :: al -> live = true
                :: else -> dead = true
                fi
            :: else -> skip
            fi
        }
    fi
}

/* skip_one(h): the record at h is claimed (header CLAIMED, or no header yet with its length
 * in tail); skip it if no live process claims it. ev/el: the header value read (0 or the
 * CLAIMED word) and the length. */
inline skip_one(pos, ev, el)
{
    d_step { live = false; dead = false };
    claim_one(0, pos);
    claim_one(1, pos);
    if
#if defined(OLD_SKIP_RULE)
    :: !live && dead ->
#elif defined(SKIP_IF_DEAD)
    :: dead || !live ->
#else
    :: !live ->
#endif
        atomic {
            if
            :: st[pos % C] == ev && (ev == FREE_ST || lp[pos % C] == pos / C) ->
#ifdef CONSUMER_DIES
                /* only a dead writer's record, or (at the last claim's start) one the dead
                 * consumer took and zeroed */
                assert(killed[ownerp[pos]] ||
                       (cdead && ev == FREE_ST && (owner[pos] == PADMSG || delivered[owner[pos]])));
#else
                assert(killed[ownerp[pos]]);  /* only a dead writer's record is skipped */
#endif
                st[pos % C] = DONE; ln[pos % C] = el; lp[pos % C] = pos / C; pr[pos % C] = 0;
#ifdef BATCH
#ifdef BATCH_SKIP_SHORT
                ln[pos % C] = 1; /* broken: the DONE covers the first record, not the claim */
#endif
                inr[pos % C] = 0;
#endif
            :: else -> skip /* committed (or written) meanwhile: the CAS fails */
            fi
        }
    :: else -> skip
    fi;
    d_step { kd = 0; al = false; live = false; dead = false }
}

proctype consumer()
{
    byte best = NONE;
    byte h, p, x, bp, vs, vl, vp, vr, T, L, m1, m2, pi;
    mtype kd;
    bool al, live, dead;
#ifdef IDLE
    bool must; /* maybe_publish() must publish */
#endif
#ifdef CONSUMER_DIES
    bool succ; /* this is the successor: the first consumer was killed */
    bool inh;  /* a successor: before its first real header, a zero word may be a unit its
                * predecessor zeroed (advance_from()'s `inherited`) */
    /* The successor is this process started again, every local reset (the dead one's h
     * died with it): a separate process would keep the dead one's locals in every state
     * after the kill and multiply the state space by them. */
restart:
    h = head;
    {
#endif
    do
    :: /* one receive call: advance h over DONE records, zeroing every unit word of
        * each; publish head now or later (once per batch; always before waiting) */
#ifdef CONSUMER_DIES
        do
        :: skip; /* a jump target must not be a d_step */
           d_step { vs = st[h % C]; vl = ln[h % C]; vp = lp[h % C] };
           if
           :: vs == FREE_ST && !inh -> break /* the end of what is committed */
           :: vs == FREE_ST && inh -> /* zero_step() */
               d_step { T = tpos; L = tlen };
               if
#ifdef STEP_ANY_ZERO
               :: T == h -> d_step { T = 0; L = 0 }; break /* broken: only the tail stops it */
#else
               :: T == h || T - L == h || (L != 0 && T - h < L) -> d_step { T = 0; L = 0 }; break
#endif
               :: else ->
                   if
                   :: atomic { st[h % C] == FREE_ST -> h = h + 1 } /* re-read: still zero */
                   :: st[h % C] != FREE_ST -> skip /* written meanwhile: read it again */
                   fi
               fi;
               d_step { T = 0; L = 0 }
           :: vs != FREE_ST ->
               assert(vs != JUNK && vp == h / C && vl >= 1 && h % C + vl <= C); /* a real header */
               inh = false;
               if
               :: vs == DONE -> /* pass it, zeroing its unit words last to first */
#ifdef ZERO_FIRST_TO_LAST
                   x = 0;
                   do
                   :: x < vl -> d_step { st[(h + x) % C] = 0; ln[(h + x) % C] = 0; lp[(h + x) % C] = 0;
                                         pr[(h + x) % C] = 0; d1[(h + x) % C] = 0; d2[(h + x) % C] = 0 };
                                x++
                   :: else -> break
                   od;
#else
                   x = vl;
                   do
                   :: x > 0 -> x--;
                       d_step { st[(h + x) % C] = 0; ln[(h + x) % C] = 0; lp[(h + x) % C] = 0;
                                pr[(h + x) % C] = 0; d1[(h + x) % C] = 0; d2[(h + x) % C] = 0 }
                   :: else -> break
                   od;
#endif
                   skip; /* a jump target must not be a d_step */
                   d_step { h = h + vl; x = 0 }
               :: else -> break
               fi
           fi;
           d_step { vs = 0; vl = 0; vp = 0 }
        od;
        skip; /* a jump target must not be a d_step */
        d_step { vs = 0; vl = 0; vp = 0 };
#else
        do
        :: st[h % C] == DONE && lp[h % C] == h / C ->
            d_step {
                vl = ln[h % C];
                x = 0;
                do
                :: x < vl -> st[(h + x) % C] = 0; ln[(h + x) % C] = 0; lp[(h + x) % C] = 0;
                             pr[(h + x) % C] = 0; d1[(h + x) % C] = 0; d2[(h + x) % C] = 0;
#ifdef BATCH
                             inr[(h + x) % C] = 0;
#endif
                             x++
                :: else -> break
                od;
                h = h + vl; vl = 0; x = 0
            }
        :: else -> break
        od;
#endif
#ifdef IDLE
        /* maybe_publish() at the end of the previous take: it must publish when caught up
         * (hw[h] == 0) and when stopped at a batch's later record (SB_HW_INNER); else it
         * may. Then the receiver may return and never be called again (idle). */
        skip; /* a jump target must not be a d_step */
#ifdef BATCH_NO_INNER_PUBLISH
        d_step { must = (st[h % C] == FREE_ST) }; /* broken: no publish at an INNER record */
#else
        d_step { must = (st[h % C] == FREE_ST || inr[h % C]) };
#endif
        if
        :: head = h
        :: !must -> skip
        fi;
        must = false;
        if
        :: cidle = true; goto idle
        :: skip
        fi;
#else
        if
        :: head = h
        :: skip
        fi;
#endif
        /* scan the committed prefix */
        p = h;
        do
        :: p >= h + C -> break
        :: else ->
            d_step { vs = st[p % C]; vl = ln[p % C]; vp = lp[p % C]; vr = pr[p % C] };
            if
            :: vs == FREE_ST -> break
            :: else ->
                assert(vs != JUNK && vp == p / C && vl >= 1 && p % C + vl <= C); /* a real header */
                if
                :: vs == CLAIMED -> break
                :: vs == READY ->
                    if
                    :: best == NONE || vr > bp -> best = p; bp = vr
                    :: else -> skip
                    fi;
                    p = p + vl
                :: vs == DONE -> p = p + vl
                fi
            fi
        od;
        skip; /* a jump target must not be a d_step */
        d_step { vs = 0; vl = 0; vp = 0; vr = 0 };
        if
        :: best != NONE -> /* take it: read in place, then mark it DONE */
            m1 = d1[best % C];
            m2 = d2[(best + ln[best % C] - 1) % C];
#ifdef CONSUMER_DIES
            d_step { /* the take is the DONE store: the copy dies with a killed consumer */
                st[best % C] = DONE;
#else
            d_step {
#endif
                assert(m1 == m2 && m1 == owner[best]); /* whole, and the message claimed here */
                assert(committed[m1]);
                assert(!delivered[m1]);                /* never twice */
                delivered[m1] = true;
                pi = ownerp[best];
                assert(m1 > lastm[pi * 2 + mprio[m1]]); /* per-producer FIFO within a priority */
                lastm[pi * 2 + mprio[m1]] = m1;
                ndeliv[pi]++;
                m1 = 0; m2 = 0; pi = 0
            }
#ifndef CONSUMER_DIES
            ;
            st[best % C] = DONE /* (at h, the code zeroes it at once: the same thing) */
#endif
        :: else -> /* nothing to take: publish head, then see why */
            head = h;
            d_step { vs = st[h % C]; vl = ln[h % C]; vp = lp[h % C] };
            if
            :: vs == CLAIMED -> skip_one(h, CLAIMED, vl)
            :: vs == FREE_ST ->
                d_step { T = tpos; L = tlen };
                if
                :: T == h -> /* empty: finish, or wait for a change */
                    if
                    :: atomic { ALLDONE && tpos == h && st[h % C] == FREE_ST -> cons_done = true }; break
                    :: (tpos != h || st[h % C] != FREE_ST) -> skip
                    fi
                :: T != h && T - L == h -> skip_one(h, FREE_ST, L) /* the last claim, no header yet */
                :: T != h && T - L != h -> /* a later claim exists: the header must be there now */
#ifdef CONSUMER_DIES
                    /* (or h is a unit a dead predecessor zeroed: the next advance steps) */
                    assert(inh || st[h % C] != FREE_ST)
#else
                    assert(st[h % C] != FREE_ST)
#endif
                fi;
                d_step { T = 0; L = 0 }
            :: else -> skip /* committed since the scan: look again */
            fi;
            d_step { vs = 0; vl = 0; vp = 0 }
        fi;
        d_step { p = 0; best = NONE; bp = 0 }
    od;
#ifdef CONSUMER_DIES
    } unless {
        d_step { cdead && !succ -> /* killed: its successor starts at the published head */
            succ = true; inh = true;
            best = NONE; h = 0; p = 0; x = 0; bp = 0; vs = 0; vl = 0; vp = 0; vr = 0;
            T = 0; L = 0; m1 = 0; m2 = 0; pi = 0; kd = 0; al = false; live = false; dead = false
        };
        goto restart
    }
#endif
    skip;
    /* Nothing committed was lost, and every producer that lived sent everything. */
    m1 = 1;
    do
    :: m1 <= NMSG -> assert(!committed[m1] || delivered[m1]); m1++
    :: else -> break
    od;
#ifdef LOANS
    assert(killed[0] || ndeliv[0] + ncancel[0] == mcount[0]);
    assert(killed[1] || ndeliv[1] + ncancel[1] == mcount[1])
#else
    assert(killed[0] || ndeliv[0] == mcount[0]);
    assert(killed[1] || ndeliv[1] == mcount[1])
#endif
#ifdef IDLE
    ;
idle: skip /* an idle consumer ends here: the end-state check is what it checks */
#endif
}

#ifdef CONSUMER_DIES
/* SIGKILLs the consumer between any two of its steps, once; the consumer's escape then
 * starts its successor. Never firing is a valid end (no `skip` branch: a terminated
 * ckiller would double every state where it has not fired yet). */
proctype ckiller()
{
end:
    atomic { !cons_done -> cdead = true }
}
#endif

proctype cleaner()
{
    do
    :: atomic { kind[0] == LIVE && !alive[0] -> kind[0] = CLEANING };
       /* clear the intents (never write the ring), then free the entry: one step here,
        * since claimants() counts a CLEANING entry's intent and no intent alike (dead) */
       d_step { iact[0] = false; kind[0] = GONE }
    :: atomic { kind[1] == LIVE && !alive[1] -> kind[1] = CLEANING };
       d_step { iact[1] = false; kind[1] = GONE }
    :: cons_done -> break
    od
}

init
{
    atomic {
#if defined(BATCH) && defined(SMALL)
        /* producer 0: one batch of messages 1 and 2 (1 unit each, prio 0); producer 1:
         * message 3 (1 unit, prio 1) */
        msize[1] = 2; mprio[1] = 0; mbat[1] = true; msize[2] = 1; mprio[2] = 0;
        msize[3] = 1; mprio[3] = 1;
        mfirst[0] = 1; mcount[0] = 2; mfirst[1] = 3; mcount[1] = 1;
#elif defined(BATCH)
        /* producer 0: one batch of messages 1 and 2 (1 unit each, prio 0); producer 1:
         * messages 3 and 4 (1 unit each, prio 1) */
        msize[1] = 2; mprio[1] = 0; mbat[1] = true; msize[2] = 1; mprio[2] = 0;
        msize[3] = 1; mprio[3] = 1; msize[4] = 1; mprio[4] = 1;
        mfirst[0] = 1; mcount[0] = 2; mfirst[1] = 3; mcount[1] = 2;
#elif defined(BIG)
        msize[1] = 2; mprio[1] = 0; msize[2] = 1; mprio[2] = 1;
        msize[3] = 1; mprio[3] = 0; msize[4] = 2; mprio[4] = 0;
        mfirst[0] = 1; mcount[0] = 2; mfirst[1] = 3; mcount[1] = 2;
#elif defined(SMALL)
        msize[1] = 2; mprio[1] = 0; msize[2] = 1; mprio[2] = 1;
        mfirst[0] = 1; mcount[0] = 1; mfirst[1] = 2; mcount[1] = 1;
#else
        msize[1] = 2; mprio[1] = 0;
        msize[2] = 1; mprio[2] = 1; msize[3] = 1; mprio[3] = 1;
        mfirst[0] = 1; mcount[0] = 1; mfirst[1] = 2; mcount[1] = 2;
#endif
        kind[0] = LIVE; kind[1] = LIVE;
        alive[0] = true; alive[1] = true;
        run producer(0);
        run producer(1);
        run consumer();
#ifdef CONSUMER_DIES
        run ckiller();
#endif
#ifndef NOCLEANER
        run cleaner();
#endif
        run killer()
    }
}

ltl consumer_finishes { <> cons_done }
