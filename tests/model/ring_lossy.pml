/*
 * ring_lossy.pml - lossy subscriptions on the mailbox v2 ring (docs/mailbox-v2.md, 16),
 * checked with spin (tests/test_model_lossy.sh runs it in `make check`).
 *
 * ring_v2.pml checks the ring itself; this model adds the one new actor: a publisher of a
 * topic the mailbox's owner subscribed to with SHMBUS_SUB_LOSSY that finds no room, and
 * frees room itself by dropping the oldest unread messages of that topic. Only the consumer
 * ever moved `head`; here a producer does too, so the two must not both be "the consumer"
 * at once. The rule (the "pass lock", one word in the mailbox):
 *
 *   consumer  every receive call: take the lock (wait while a walker holds it, or take it
 *             over from a dead walker); re-read head (a walker may have moved it: h = head
 *             if head is ahead); then the receive of ring_v2.pml (advance over DONE records
 *             zeroing them, stepping over a unit a dead walker zeroed and did not publish;
 *             scan; take by CAS READY -> DONE; skip a dead claim); publish head = h; release
 *             the lock.
 *   walker    a lossy publisher (producer 0) that finds no room: try-lock (held: the
 *             consumer is consuming, wait for room as today); w = head; walk: a DONE record
 *             is passed (its unit words zeroed, as the consumer would); a READY record of a
 *             lossy topic is turned DONE by CAS and counted lost; anything else (a direct
 *             message, a CLAIMED or unwritten claim) stops the walk; publish head = w;
 *             release; claim again as usual (still no room: wait as today).
 *
 * Messages: producer 0 publishes three (-DSMALL: two) 1-unit messages of a lossy topic; producer 1 sends
 * one 2-unit direct message (never droppable; it also makes the ring wrap and pad). Ring of
 * C = 3 units. The killer may SIGKILL producer 0 at any step (mid-walk included, holding the
 * lock: its zeroed, unpublished units and its lock are what the consumer must survive).
 *
 * What it proves, for every interleaving (sequentially consistent memory):
 *   - no message is delivered twice, none both delivered and dropped, none dropped twice;
 *   - only READY messages of the lossy topic are dropped (never a direct message, never a
 *     claim being written), and each drop is of that publisher's oldest pending message;
 *   - every delivered record is whole and committed, per-producer FIFO;
 *   - every header the consumer reads is a real header of its lap (never a payload word, a
 *     stale lap, or a unit a walker zeroed);
 *   - at the end: every committed message was delivered or counted dropped, the direct one
 *     delivered; every producer not killed committed all its messages;
 *   - no deadlock; with weak fairness the consumer always finishes.
 *
 * Broken variants (each must fail):
 *   -DNO_PASS_LOCK    the walker does not take the lock: it moves head under a consumer
 *                     that is inside a receive (safety fails);
 *   -DNO_REREAD_HEAD  the consumer keeps its private h after taking the lock: it walks
 *                     units a walker passed and a later lap reused (safety fails);
 *   -DDROP_DIRECT     the walker drops any READY record, a direct message too (fails).
 * And one that passes, to say what the lock buys: -DDROP_STORE, the walker's READY -> DONE
 * is a plain store, not a CAS: safe, since the consumer's take and the walker's drop never
 * run at the same time. The code keeps the CAS anyway (it costs nothing on this slow path
 * and keeps "exactly one of take and drop" true without the lock).
 */
#define C    3
#define NMSG 4
#define NP   2
#ifndef MAXKILL
#define MAXKILL 1
#endif
#define NPOS 16

#define FREE_ST 0
#define CLAIMED 1
#define READY   2
#define DONE    3
#define JUNK    4
#define NONE    255
#define PADMSG  0

#define LK_FREE 0
#define LK_CONS 1
#define LK_P0   2

mtype = { LIVE, CLEANING, GONE };

byte tpos, tlen;
byte head;
byte lk;                         /* the pass lock: LK_FREE, LK_CONS, or LK_P0 (producer 0) */
byte st[C], ln[C], lp[C];
byte d1[C], d2[C];
mtype kind[NP];
bool alive[NP];
byte ipos[NP];
bool iact[NP];

byte msize[NMSG + 1];
bool mlossy[NMSG + 1];
byte mfirst[NP];
byte mcount[NP];

byte owner[NPOS];
byte ownerp[NPOS];
bool committed[NMSG + 1];
bool delivered[NMSG + 1];
bool dropped[NMSG + 1];
byte lastm[NP];
byte ndeliv[NP];
byte ndrop[NP];
bool killed[NP];
bool pdone[NP];
byte nkilled;
bool cons_done;

#define ALLDONE ((pdone[0] || killed[0]) && (pdone[1] || killed[1]))

/* The walk of a lossy publisher holding the lock (or, -DNO_PASS_LOCK, not). */
inline walk()
{
    w = head;
    do
    :: d_step { vs = st[w % C]; vl = ln[w % C]; vp = lp[w % C] };
       assert(vs == FREE_ST || (vs != JUNK && vp == w / C && vl >= 1 && w % C + vl <= C));
       if
       :: vs == DONE && vp == w / C -> /* passed, zeroed as the consumer would */
           d_step {
               x = 0;
               do
               :: x < vl -> st[(w + x) % C] = 0; ln[(w + x) % C] = 0; lp[(w + x) % C] = 0;
                            d1[(w + x) % C] = 0; d2[(w + x) % C] = 0; x++
               :: else -> break
               od;
               w = w + vl; x = 0
           }
#ifdef DROP_DIRECT
       :: vs == READY && vp == w / C ->
#else
       :: vs == READY && vp == w / C && mlossy[owner[w]] ->
#endif
           atomic { /* CAS READY -> DONE: counted lost */
#ifndef DROP_STORE
               st[w % C] == READY ->
#endif
               m = owner[w];
               assert(committed[m] && !delivered[m] && !dropped[m]);
               assert(mlossy[m]);                      /* never a direct message */
               assert(m > lastm[ownerp[w]]);           /* the oldest pending one */
               lastm[ownerp[w]] = m;
               dropped[m] = true;
               ndrop[ownerp[w]]++;
               st[w % C] = DONE;
               m = 0
           }
       :: else -> break /* a direct message, a claim being written, nothing: stop */
       fi
    od;
    skip;
    d_step { vs = 0; vl = 0; vp = 0 };
    if
    :: w != head -> head = w
    :: else -> skip
    fi;
    w = 0
}

proctype producer(byte i)
{
    byte k, t, l, u, need, hd, msg, sv, w, vs, vl, vp, x, m;
    bool pad;
    {
        do
        :: k < mcount[i] ->
            msg = mfirst[i] + k;
            u = msize[msg];
            do /* claim(), as in ring_v2.pml */
            :: d_step { t = tpos; l = tlen };
               if
               :: l > 0 ->
                   sv = st[(t - l) % C];
                   if
                   :: sv == FREE_ST ->
                       if
                       :: head <= t - l ->
                           (st[(t - l) % C] != FREE_ST || head > t - l || tpos != t);
                           sv = 0;
                           goto again
                       :: else -> skip
                       fi
                   :: else -> skip
                   fi;
                   sv = 0
               :: else -> skip
               fi;
               pad = (t % C + u > C);
               if
               :: pad -> need = C - t % C
               :: else -> need = u
               fi;
               hd = head;
               if
               :: t + need > hd + C ->
                   if
                   :: mlossy[msg] -> /* full, and a lossy topic: free room under the lock */
#ifdef NO_PASS_LOCK
                       walk();
                       (head != hd || tpos != t || lk == LK_FREE)
#else
                       if
                       :: atomic { lk == LK_FREE -> lk = LK_P0 };
                           walk();
                           lk = LK_FREE;
                           /* freed nothing: wait as today (a walk frees nothing again
                            * until the consumer or a producer changes something) */
                           (head != hd || tpos != t)
                       :: atomic { lk != LK_FREE -> skip };
                           /* the consumer is consuming: wait as today */
                           (head != hd || tpos != t || lk == LK_FREE)
                       fi
#endif
                   :: else -> (head != hd || tpos != t) /* full: wait */
                   fi;
                   hd = 0
               :: else ->
                   hd = 0;
                   d_step { ipos[i] = t; iact[i] = true };
                   if
                   :: atomic { tpos == t && tlen == l ->
                           tpos = t + need; tlen = need;
                           if
                           :: pad -> owner[t] = PADMSG
                           :: else -> owner[t] = msg
                           fi;
                           ownerp[t] = i }
                       -> if
                          :: pad -> d_step { st[t % C] = DONE; ln[t % C] = need; lp[t % C] = t / C };
                                    iact[i] = false
                          :: else -> d_step { st[t % C] = CLAIMED; ln[t % C] = need; lp[t % C] = t / C };
                                     break
                          fi
                   :: atomic { !(tpos == t && tlen == l) -> skip };
                       iact[i] = false
                   fi
               fi;
again:         skip
            od;
            skip;
            d_step {
                d1[t % C] = msg;
                if
                :: u > 1 -> st[(t + 1) % C] = JUNK; d2[(t + 1) % C] = msg
                :: else -> d2[t % C] = msg
                fi
            };
            atomic {
                assert(st[t % C] == CLAIMED && lp[t % C] == t / C);
                st[t % C] = READY;
                committed[msg] = true
            };
            iact[i] = false;
            d_step { k++; t = 0; l = 0; u = 0; need = 0; msg = 0; pad = false }
        :: else -> break
        od;
        pdone[i] = true
    } unless { killed[i] -> d_step { k = 0; t = 0; l = 0; u = 0; need = 0; hd = 0; msg = 0; sv = 0;
                                      pad = false; w = 0; vs = 0; vl = 0; vp = 0; x = 0; m = 0 } }
}

proctype killer()
{
    do
    :: atomic { nkilled < MAXKILL && !killed[0] -> killed[0] = true; alive[0] = false; nkilled++ }
    :: break
    od
}

inline claim_one(x, pos)
{
    d_step { kd = kind[x]; al = (kd == LIVE && alive[x]) };
    if
    :: kd == GONE -> skip
    :: else ->
        d_step {
            if
            :: iact[x] && ipos[x] == pos && al -> live = true
            :: else -> skip
            fi
        }
    fi
}

/* skip_one(h), as in ring_v2.pml. A zero word at h can also be the last claim's header
 * zeroed by a walker that died before publishing head: the skip turns it DONE again (no
 * live claimant names it); the message it held was delivered or counted dropped already. */
inline skip_one(pos, ev, el)
{
    d_step { live = false };
    claim_one(0, pos);
    claim_one(1, pos);
    if
    :: !live ->
        atomic {
            if
            :: st[pos % C] == ev && (ev == FREE_ST || lp[pos % C] == pos / C) ->
                assert(killed[ownerp[pos]] || delivered[owner[pos]] || dropped[owner[pos]] ||
                       owner[pos] == PADMSG);
                st[pos % C] = DONE; ln[pos % C] = el; lp[pos % C] = pos / C
            :: else -> skip
            fi
        }
    :: else -> skip
    fi;
    d_step { kd = 0; al = false; live = false }
}

proctype consumer()
{
    byte best = NONE;
    byte h, p, x, vs, vl, vp, T, L, m1, m2, pi;
    mtype kd;
    bool al, live;
    do
    :: /* one receive call: take the lock (or take it over from a dead walker) */
        if
        :: atomic { lk == LK_FREE -> lk = LK_CONS }
        :: atomic { lk == LK_P0 && !alive[0] -> lk = LK_CONS }
        fi;
#ifndef NO_REREAD_HEAD
        if
        :: head > h -> h = head /* a walker passed records meanwhile */
        :: else -> skip
        fi;
#endif
        /* advance over DONE records, zeroing them; step over a unit a dead walker zeroed
         * and did not publish (zero_step(): a zero word that is neither the end of the
         * claims nor the last claim's unwritten header) */
        do
        :: d_step { vs = st[h % C]; vl = ln[h % C]; vp = lp[h % C] };
           if
           :: vs == DONE && vp == h / C ->
               d_step {
                   x = 0;
                   do
                   :: x < vl -> st[(h + x) % C] = 0; ln[(h + x) % C] = 0; lp[(h + x) % C] = 0;
                                d1[(h + x) % C] = 0; d2[(h + x) % C] = 0; x++
                   :: else -> break
                   od;
                   h = h + vl; vl = 0; x = 0
               }
           :: vs == FREE_ST ->
               d_step { T = tpos; L = tlen };
               if
               :: T != h && T - L != h && T > h -> /* zeroed, unpublished: step over it */
                   if
                   :: st[h % C] == FREE_ST -> h++
                   :: else -> skip /* written meanwhile: read it again */
                   fi
               :: else -> break
               fi;
               d_step { T = 0; L = 0 }
           :: else -> break
           fi
        od;
        skip; /* a jump target must not be a d_step */
        d_step { T = 0; L = 0; vs = 0; vl = 0; vp = 0 };
        p = h;
        do
        :: p >= h + C -> break
        :: else ->
            d_step { vs = st[p % C]; vl = ln[p % C]; vp = lp[p % C] };
            if
            :: vs == FREE_ST -> break
            :: else ->
                assert(vs != JUNK && vp == p / C && vl >= 1 && p % C + vl <= C);
                if
                :: vs == CLAIMED -> break
                :: vs == READY -> best = p; break /* one priority: the first is taken */
                :: vs == DONE -> p = p + vl
                fi
            fi
        od;
        skip;
        d_step { vs = 0; vl = 0; vp = 0 };
        if
        :: best != NONE ->
            m1 = d1[best % C];
            m2 = d2[(best + ln[best % C] - 1) % C];
            atomic { /* take: CAS READY -> DONE */
                if
                :: st[best % C] == READY && lp[best % C] == best / C ->
                    assert(m1 == m2 && m1 == owner[best]);
                    assert(committed[m1]);
                    assert(!delivered[m1] && !dropped[m1]);
                    delivered[m1] = true;
                    pi = ownerp[best];
                    assert(m1 > lastm[pi]);
                    lastm[pi] = m1;
                    ndeliv[pi]++;
                    st[best % C] = DONE
                :: else -> skip /* dropped meanwhile (only without the lock) */
                fi;
                m1 = 0; m2 = 0; pi = 0
            }
        :: else ->
            head = h;
            d_step { vs = st[h % C]; vl = ln[h % C]; vp = lp[h % C] };
            if
            :: vs == CLAIMED -> skip_one(h, CLAIMED, vl)
            :: vs == FREE_ST ->
                d_step { T = tpos; L = tlen };
                if
                :: T == h ->
                    if
                    :: atomic { ALLDONE && tpos == h && st[h % C] == FREE_ST ->
                                head = h; lk = LK_FREE; cons_done = true }; break
                    :: (tpos != h || st[h % C] != FREE_ST || !ALLDONE) -> skip
                    fi
                :: T != h && T - L == h -> skip_one(h, FREE_ST, L)
                :: T != h && T - L != h -> skip /* stepped over above, or written now */
                fi;
                d_step { T = 0; L = 0 }
            :: else -> skip
            fi;
            d_step { vs = 0; vl = 0; vp = 0 }
        fi;
        d_step { p = 0; best = NONE };
        /* end of the call: publish, then release */
        head = h;
        lk = LK_FREE
    od;
    skip;
    m1 = 1;
    do
    :: m1 <= NMSG ->
        assert(!committed[m1] || delivered[m1] || dropped[m1]);
        assert(mlossy[m1] || !committed[m1] || delivered[m1]);
        m1++
    :: else -> break
    od;
    assert(killed[0] || ndeliv[0] + ndrop[0] == mcount[0]);
    assert(killed[1] || ndeliv[1] == mcount[1])
}

proctype cleaner()
{
    do
    :: atomic { kind[0] == LIVE && !alive[0] -> kind[0] = CLEANING };
       d_step { iact[0] = false; kind[0] = GONE }
    :: cons_done -> break
    od
}

init
{
    atomic {
        msize[1] = 1; mlossy[1] = true;
        msize[2] = 1; mlossy[2] = true;
        msize[3] = 1; mlossy[3] = true;
        msize[4] = 2; mlossy[4] = false;
#ifdef SMALL
        mcount[0] = 2; /* two lossy messages: 4 units through 3, still full once */
#else
        mcount[0] = 3;
#endif
        mfirst[0] = 1; mfirst[1] = 4; mcount[1] = 1;
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
