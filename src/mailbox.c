/*
 * mailbox.c - sending into and taking from mailboxes: the hot path (mailbox v2).
 *
 * Design notes
 * ------------
 * docs/mailbox-v2.md is the design, tests/model/ring_v2.pml its model; the section numbers
 * below are the design's. Each mailbox is a byte ring of 64-byte units holding records
 * that start on a unit and never cross the ring's end (padding fills the rest of a lap).
 *
 * Producer (4): claim by CAS on `tail`, which holds the end of the claimed units and the
 * last claim's length, after the chain rule (never claim after a claim whose header is
 * missing) and a room check against a cached `head`; store the CLAIMED header; fill; commit
 * with a seq_cst CAS CLAIMED -> READY, which is also the producer's half of the sleep/wake
 * Dekker pair (8). The intent record names the claim from before the CAS until after the
 * commit, so a claim nobody alive names is a dead writer's.
 *
 * Consumer (5): one receiving thread keeps a private position h. It takes READY records from
 * the committed prefix (the highest priority first, replies by correlation), marking them
 * DONE in place, and passes DONE records at h, zeroing the first word of each of their units
 * (the header of the unit's next lap must read 0 until written). It publishes `head` once
 * per batch: when caught up, every quarter ring, when a producer waits, before sleeping.
 *
 * Dead writers: a blocked consumer looks at h every slice; a CLAIMED header (or, for the
 * last claim, a missing one whose length `tail` holds) that no live intent names is turned
 * DONE by CAS (skip_one()), never on a timeout alone. Cleaners never write ring words: they
 * end a dead client's intents and wake the consumers named.
 *
 * A dead consumer: its private h is lost. The units between the published head and where it
 * got to read 0 (zeroed) or DONE; whoever consumes next (a cleaner's drain, the next client
 * of the id) steps over a zero unit below the last claim one unit at a time (zero_step()).
 * A record's units are zeroed last to first, so such a run always ends at a real header.
 *
 * Lossy subscribers (16): a publisher that finds a SHMBUS_SUB_LOSSY member's mailbox full
 * drops its oldest unread lossy-topic messages itself (shed()), passing records from head as
 * the consumer would. The two never work at once: they take turns with the mailbox's pass
 * lock, which the consumer of a lossy client holds inside each receive call and publishes
 * head before letting go of, and a publisher only try-locks (tests/model/ring_lossy.pml).
 * A walker that dies holding it is replaced (registry liveness); its zeroed, unpublished
 * units are stepped over as a dead consumer's are.
 *
 * Hostile memory (10): every header word is checked (state, lap, units within the ring)
 * before its length is used; a record whose fields fail the checks is dropped (counted), a
 * header that fails them fails the receive with -EBADMSG. Every loop visits at most the
 * ring's units.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "internal.h"
#include "relax.h"

#define MSG_FLAGS                                                                                  \
    (SHMBUS_MSG_ACK | SHMBUS_MSG_REQUEST | SHMBUS_MSG_REPLY | SHMBUS_MSG_BROADCAST |               \
     SHMBUS_MSG_TOPIC | SHMBUS_MSG_GROUP | SHMBUS_MSG_FENCED | SHMBUS_MSG_REPLAYED)
/* What the fast receive paths leave to the general one: an ACK to send, and a group message,
 * which must read DONE before its units are zeroed (a dead member's READY records are
 * redelivered, redeliver.c, so a half-zeroed READY one must never be left behind) and may
 * have to be recorded in flight first (consume_at()). */
#define SLOW_FLAGS  (SHMBUS_MSG_ACK | SHMBUS_MSG_GROUP)
#define BATCH_MAX   256u /* messages one shmbus_send_batch() claim carries at most */
#define CHAIN_SPINS 64   /* yields while a previous claim's header is missing, before sleeping */

/* a - b on 48-bit positions. */
static inline uint64_t pdiff(uint64_t a, uint64_t b)
{
    return (a - b) & SB_POS_MASK;
}

static inline uint64_t padd(uint64_t a, uint64_t n)
{
    return (a + n) & SB_POS_MASK;
}

static inline uint64_t lap_of(const shmbus_bus *b, uint64_t p)
{
    return (p >> b->lay.ring_shift) & SB_LAP_MASK;
}

static inline uint64_t idx_of(const shmbus_bus *b, uint64_t p)
{
    return p & (uint64_t)(b->lay.ring_units - 1);
}

static inline _Atomic uint64_t *hw_at(const shmbus_bus *b, struct sb_mbox *mb, uint64_t p)
{
    return &sb__unit(b, mb, p)->hw;
}

/*
 * A mailbox's ring as the hot loops use it: its geometry copied into locals once. Every
 * store to the segment could, for all the compiler knows, alias the bus's fields, so code
 * that reads b->lay after each store reloads it each time; a struct rv on the stack stays
 * in registers.
 */
struct rv {
    uint8_t *ring;
    uint64_t mask; /* units - 1 */
    uint64_t units;
    unsigned shift; /* units == 1 << shift */
};

static inline __attribute__((always_inline)) struct rv rv_of(const shmbus_bus *b,
                                                             struct sb_mbox *mb)
{
    return (struct rv){mb->ring, (uint64_t)b->lay.ring_units - 1, b->lay.ring_units,
                       b->lay.ring_shift};
}

static inline __attribute__((always_inline)) struct sb_rec *rv_rec(const struct rv *r, uint64_t p)
{
    return (struct sb_rec *)(r->ring + (p & r->mask) * SB_UNIT);
}

/* memcpy for payloads: up to 64 bytes (the common small message) as two overlapping
 * fixed-size moves the compiler inlines, without a call that spills the caller's
 * registers; larger ones through memcpy. */
static inline __attribute__((always_inline)) void copy_payload(void *dst, const void *src,
                                                               size_t len)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (len >= 32 && len <= 64) {
        memcpy(d, s, 32);
        memcpy(d + len - 32, s + len - 32, 32);
    } else if (len >= 16 && len < 32) {
        memcpy(d, s, 16);
        memcpy(d + len - 16, s + len - 16, 16);
    } else if (len >= 8 && len < 16) {
        memcpy(d, s, 8);
        memcpy(d + len - 8, s + len - 8, 8);
    } else if (len < 8) {
        for (size_t i = 0; i < len; i++)
            d[i] = s[i];
    } else {
        memcpy(d, s, len);
    }
}

static inline __attribute__((always_inline)) uint64_t rv_lap(const struct rv *r, uint64_t p)
{
    return (p >> r->shift) & SB_LAP_MASK;
}

/* Is v a real header for position p: a state, this lap, units inside the ring? The one
 * check of a header word (hw_valid() is this with the bus's geometry). */
static inline __attribute__((always_inline)) bool rv_units_ok(const struct rv *r, uint64_t v,
                                                              uint64_t p)
{
    uint32_t u = SB_HW_UNITS(v);
    return u >= 1 && (p & r->mask) + u <= r->units;
}

static inline __attribute__((always_inline)) bool rv_valid(const struct rv *r, uint64_t v,
                                                           uint64_t p)
{
    if (SB_HW_STATE(v) == SB_HW_ZERO || SB_HW_PAD(v) != 0 || SB_HW_LAP(v) != rv_lap(r, p))
        return false;
    return rv_units_ok(r, v, p);
}

/* rv_valid() and READY at priority 0, the fast receive's record: every bit but the units
 * and SB_HW_INNER is known, so one compare checks state, priority, padding and lap. */
static inline __attribute__((always_inline)) bool rv_ready0(const struct rv *r, uint64_t v,
                                                            uint64_t p)
{
    const uint64_t free_bits = SB_HW(0, SB_MAX_UNITS, 0, 0) | SB_HW_INNER;
    if ((v & ~free_bits) != SB_HW(SB_HW_READY, 0, 0, rv_lap(r, p)))
        return false;
    return rv_units_ok(r, v, p);
}

static inline __attribute__((always_inline)) bool hw_valid(const shmbus_bus *b, uint64_t v,
                                                           uint64_t p)
{
    struct rv r = {NULL, (uint64_t)b->lay.ring_units - 1, b->lay.ring_units, b->lay.ring_shift};
    return rv_valid(&r, v, p);
}

static uint32_t mbox_id_of(const shmbus_bus *b, const struct sb_mbox *mb)
{
    return (uint32_t)(((const uint8_t *)mb - b->base - b->lay.mbox_off) / b->lay.mbox_size) + 1;
}

/* Is a message stamped for generation g ours? Our own, or the one kept generation we took
 * over at join (client-local copies: nothing re-read from the segment). */
static inline bool our_gen(const shmbus_client *c, uint32_t g)
{
    return g == c->gen || (c->kept_gen != 0 && g == c->kept_gen);
}

/* rv_zero()'s walk for a long record (a loan's 64 KiB one has 1025 units): four units a
 * round, still last to first, one store each. Out of line: most records have two units. */
static __attribute__((noinline)) void zero_run(uint8_t *first, uint32_t u)
{
    uint8_t *q = first + (uint64_t)u * SB_UNIT;
    for (uint32_t k = u / 4; k > 0; k--) {
        atomic_store_explicit(&((struct sb_rec *)(q - 1 * SB_UNIT))->hw, 0, memory_order_relaxed);
        atomic_store_explicit(&((struct sb_rec *)(q - 2 * SB_UNIT))->hw, 0, memory_order_relaxed);
        atomic_store_explicit(&((struct sb_rec *)(q - 3 * SB_UNIT))->hw, 0, memory_order_relaxed);
        atomic_store_explicit(&((struct sb_rec *)(q - 4 * SB_UNIT))->hw, 0, memory_order_relaxed);
        q -= 4 * SB_UNIT;
    }
    while (q != first) {
        q -= SB_UNIT;
        atomic_store_explicit(&((struct sb_rec *)q)->hw, 0, memory_order_relaxed);
    }
}

/* Zero the first word of units [first, first + n) of the ring, last to first. */
static inline __attribute__((always_inline)) void zero_walk(uint8_t *first, uint64_t n)
{
    if (n > 8) {
        zero_run(first, (uint32_t)n);
        return;
    }
    if (n == 2) { /* a record of up to 80 payload bytes, the common small message */
        atomic_store_explicit(&((struct sb_rec *)(first + SB_UNIT))->hw, 0, memory_order_relaxed);
        atomic_store_explicit(&((struct sb_rec *)first)->hw, 0, memory_order_relaxed);
        return;
    }
    for (uint8_t *q = first + n * SB_UNIT; q != first;) {
        q -= SB_UNIT;
        atomic_store_explicit(&((struct sb_rec *)q)->hw, 0, memory_order_relaxed);
    }
}

/* Zero the first word of each unit of [from, to), one record, last to first, so its header
 * last: a consumer that dies half-way leaves a run of zero units that ends at a real header
 * (or the end of what was claimed). Never a span of several records: zeroed from its end,
 * it would leave intact headers below a zero run, which a successor does not step over
 * (advance_from()'s `inherited`). The stores are published by the release half of the
 * head store in publish(). */
static inline __attribute__((always_inline)) void rv_zero_span(const struct rv *r, uint64_t from,
                                                               uint64_t to)
{
    uint64_t n = pdiff(to, from), i = from & r->mask;
    if (i + n > r->units) { /* across the ring's end: the part after it first */
        zero_walk(r->ring, i + n - r->units);
        n = r->units - i;
    }
    zero_walk(r->ring + i * SB_UNIT, n);
}

/* Zero the units of the record [p, p + u), the header last (rv_zero_span()). */
static inline __attribute__((always_inline)) void rv_zero(const struct rv *r, uint64_t p,
                                                          uint32_t u)
{
    rv_zero_span(r, p, padd(p, u));
}

static void zero_units(const shmbus_bus *b, struct sb_mbox *mb, uint64_t p, uint32_t u)
{
    struct rv r = rv_of(b, mb);
    rv_zero(&r, p, u);
}

/*
 * A consumer at position h reads a zero word. Returns 1 when h is a unit an earlier consumer
 * zeroed and did not publish (it died): step over it; 0 when it is the end of what was
 * claimed (or the last claim, whose header is not written yet); 2 when the header has been
 * written meanwhile: read it again.
 */
static int zero_step(const shmbus_bus *b, struct sb_mbox *mb, uint64_t h)
{
    /* Acquire pairs with the release CAS on tail in claim(): by the chain rule every claim
     * but the last had its header written before the next claim's CAS (I3). */
    uint64_t tw = atomic_load_explicit(&mb->tail, memory_order_acquire);
    uint64_t t = SB_TAIL_POS(tw);
    uint32_t l = SB_TAIL_LAST(tw);
    if (t == h || pdiff(t, h) > b->lay.ring_units || pdiff(t, l) == h ||
        (l != 0 && pdiff(t, h) < l))
        return 0;
    /* Acquire pairs with the release store of the header in claim(). */
    if (atomic_load_explicit(hw_at(b, mb, h), memory_order_acquire) != 0)
        return 2;
    return 1;
}

/* ---- intents ---------------------------------------------------------------------------- */

/* Each sending thread holds one of its client's intent records while it sends. */
static unsigned intent_get(shmbus_client *c)
{
    for (;;) {
        uint32_t busy = atomic_load_explicit(&c->intent_busy, memory_order_relaxed);
        for (unsigned i = 0; i < SB_INTENTS; i++) {
            if (busy & (1u << i))
                continue;
            /* Acquire pairs with the release in intent_put(): the previous holder's use of the
             * record is over before ours starts. */
            if (atomic_compare_exchange_weak_explicit(&c->intent_busy, &busy, busy | (1u << i),
                                                      memory_order_acquire, memory_order_relaxed))
                return i;
            break; /* busy changed: rescan */
        }
        if (busy == (1u << SB_INTENTS) - 1)
            sched_yield(); /* more threads sending than records: take turns */
    }
}

/* As intent_get(), but -EBUSY rather than wait when every record is held. */
static int intent_try_get(shmbus_client *c, unsigned *out)
{
    uint32_t busy = atomic_load_explicit(&c->intent_busy, memory_order_relaxed);
    for (;;) {
        unsigned i = 0;
        while (i < SB_INTENTS && (busy & (1u << i)))
            i++;
        if (i == SB_INTENTS)
            return -EBUSY;
        /* Acquire pairs with the release in intent_put(), as in intent_get(). */
        if (atomic_compare_exchange_weak_explicit(&c->intent_busy, &busy, busy | (1u << i),
                                                  memory_order_acquire, memory_order_relaxed)) {
            *out = i;
            return 0;
        }
    }
}

static void intent_put(shmbus_client *c, unsigned i)
{
    /* Release pairs with the acquire CAS in intent_get() of the next thread to take it. */
    atomic_fetch_and_explicit(&c->intent_busy, ~(1u << i), memory_order_release);
}

/* ---- a mailbox's pages ------------------------------------------------------------------ */

/*
 * Each process pays a page fault the first time it touches a page of the segment, whoever
 * touched it before. A ring of small records is written one new page at a time, and with
 * many producers nearly every message lands on a page its producer has not touched yet (64
 * clients passing one message around: 1.3 faults per hop, each several microseconds on a
 * virtual machine; bench/README.md, "Scale"), and the fault falls between the claim and
 * the commit, where it holds up the mailbox. So a producer maps a mailbox whole before its
 * first claim there, and a receiver its own at join, with one madvise(MADV_POPULATE_WRITE)
 * (the kernel fills this process's page tables in one call, allocating the pages nobody
 * has used yet). Memory: what one lap of the ring uses anyway, at once; rings over
 * SB_WARM_MAX are left to fault as they go. Best effort: a kernel without it (before 5.14)
 * or a failure changes the speed only. The flags are per bus handle, not per process: a
 * child that inherits a handle across fork() inherits them, and faults as before.
 */
#define SB_WARM_MAX (1u << 20) /* bytes of ring mapped at once, at most */

static __attribute__((noinline, cold)) void mbox_warm_slow(shmbus_bus *b, uint32_t id)
{
    /* Relaxed: the flag only says the kernel was asked; two threads may both ask. */
    atomic_store_explicit(&b->warm[id], 1, memory_order_relaxed);
#ifdef MADV_POPULATE_WRITE
    if ((uint64_t)b->lay.ring_units * SB_UNIT <= SB_WARM_MAX)
        (void)madvise(sb__mbox(b, id), b->lay.mbox_size, MADV_POPULATE_WRITE);
#endif
}

/* id: a valid client id (1..max_clients). */
static inline void mbox_warm(shmbus_bus *b, uint32_t id)
{
    if (!atomic_load_explicit(&b->warm[id], memory_order_relaxed))
        mbox_warm_slow(b, id);
}

/* ---- producer side ---------------------------------------------------------------------- */

/* The published head of mailbox mb, into our cache for it. */
static uint64_t refresh_head(shmbus_client *c, struct sb_mbox *mb, uint32_t dst)
{
    /* Acquire pairs with the consumer's seq_cst store of head in publish() and
     * sb__mbox_drain(): its reads of the records below head, and its zeroing of their units,
     * happen before we write there again. */
    uint64_t h = atomic_load_explicit(&mb->head, memory_order_acquire) & SB_POS_MASK;
    /* Release: another thread sending on this client that claims by this cached head
     * (acquire load in claim()) writes there after the consumer's reads too. */
    if (c->hcache != NULL)
        atomic_store_explicit(&c->hcache[dst - 1], h, memory_order_release);
    return h;
}

/* What claim() saw when it could not claim, for wait_space() to notice a change. */
struct seen {
    uint64_t tail, head;
    bool chain; /* waiting for the header at tail.pos - tail.last, not for room */
};

/*
 * Claim room in dst's mailbox for the records of units[0..nrec) (docs/mailbox-v2.md, 4,
 * steps 1..6): as many of them as fit in one claim, at least the first. Returns how many
 * (the claim is *pos, its first record *rec, *cw the CLAIMED header word stored there,
 * which holds the claim's units),
 * -EAGAIN (no room, or the chain rule says wait: *seen says which), or -EBADMSG (tail or
 * head are garbage).
 */
#define HOT static inline __attribute__((always_inline))

HOT int claim(shmbus_client *c, uint32_t dst, struct sb_mbox *mb, unsigned ii,
              const uint32_t *units, uint32_t nrec, unsigned prio, uint64_t *pos, uint64_t *cw,
              struct sb_rec **rec, struct seen *seen)
{
    shmbus_bus *b = c->bus;
    struct sb_intent *in = &c->e->intent[ii];
    const struct rv r = rv_of(b, mb); /* geometry in registers across our stores */
    uint64_t cap = r.units;
    /* fresh: head was loaded from the mailbox before tail in this round, so head <= tail
     * unless the words are garbage; a cached head is older still. A head loaded after tail
     * could be past it (consumers move on meanwhile): every refresh starts a new round. */
    bool fresh = c->hcache == NULL;
    uint32_t bad = 0;
    for (;;) {
        /* Acquire pairs with the release store in refresh_head(), maybe by another thread
         * of this client: the consumer's reads below that head happen before our writes. */
        uint64_t head = fresh ? refresh_head(c, mb, dst)
                              : atomic_load_explicit(&c->hcache[dst - 1], memory_order_acquire);
        /* Relaxed: the CAS below validates the value. */
        uint64_t tw = atomic_load_explicit(&mb->tail, memory_order_relaxed);
        uint64_t t = SB_TAIL_POS(tw);
        uint32_t l = SB_TAIL_LAST(tw);
        if (pdiff(t, head) > cap || l > cap) {
            /* A stale cache; or head moved a whole ring between our two loads; or garbage:
             * which one, a bounded number of rounds tells. */
            if (fresh && ++bad > 1000)
                return -EBADMSG;
            fresh = true;
            continue;
        }
        /* The chain rule (step 2). Our own previous claim has its header: no load. */
        if (l != 0 && !(c->last_mbox[ii] == dst && c->last_end[ii] == t)) {
            /* Relaxed: the CAS succeeds only if tail is still (t, l); a consumer that later
             * acquires tail reads this word after us, and by read-read coherence sees the
             * header we saw (docs/mailbox-v2.md, 4). */
            uint64_t v = atomic_load_explicit(&rv_rec(&r, pdiff(t, l))->hw, memory_order_relaxed);
            /* A zero there is a header not written yet, or one the consumer took and zeroed:
             * head past the claim's start (t - l) says the latter (positions never repeat,
             * and nobody passes a claim's start before its header is written, or skips it
             * whole: skip_one()). Not `head != t`: in a batch's claim, the first record can
             * be taken and zeroed long before the rest, and head stops inside the claim
             * (maybe_publish() publishes it there). */
            if (v == 0 && pdiff(t, head) >= l) {
                if (!fresh) {
                    fresh = true; /* consumed and zeroed already? Only head can say */
                    continue;
                }
                *seen = (struct seen){tw, head, true};
                return -EAGAIN;
            }
        }
        /* Wrap and room (step 3). */
        uint64_t idx = (t & r.mask);
        bool pad = idx + units[0] > cap;
        uint64_t n = pad ? cap - idx : units[0];
        if (pdiff(t, head) + n > cap) {
            if (!fresh) {
                fresh = true;
                continue;
            }
            *seen = (struct seen){tw, head, false};
            return -EAGAIN;
        }
        uint32_t k = pad ? 0 : 1;
        if (!pad) {
            uint64_t lim = cap - pdiff(t, head);
            if (lim > cap - idx)
                lim = cap - idx;
            if (lim > SB_MAX_UNITS)
                lim = SB_MAX_UNITS;
            while (k < nrec && n + units[k] <= lim)
                n += units[k++];
        }
        /* The intent names the claim from before it exists (step 4). */
        atomic_store_explicit(&in->mbox, dst, memory_order_relaxed);
        atomic_store_explicit(&in->pos, t, memory_order_relaxed);
        atomic_store_explicit(&in->n, (uint32_t)n, memory_order_relaxed);
        /* Step 5. Release: the intent above is visible to whoever sees this tail; pairs with
         * the acquire loads of tail in skip_one() and zero_step(). The acquire half pairs
         * with this same CAS by the producer before us. */
        if (!atomic_compare_exchange_weak_explicit(&mb->tail, &tw, SB_TAIL(t + n, n),
                                                   memory_order_acq_rel, memory_order_relaxed)) {
            atomic_store_explicit(&in->n, 0, memory_order_relaxed);
            fresh = c->hcache == NULL;
            continue;
        }
        c->last_mbox[ii] = dst;
        c->last_end[ii] = padd(t, n);
        if (k != 0) /* for the depth shmbus_list() shows: the line is in our cache now */
            atomic_fetch_add_explicit(&mb->claimed, k, memory_order_relaxed);
        if (pad) {
            /* Padding to the ring's end: a record nobody takes. Release pairs with the
             * acquire loads of hw in advance(), find() and skip_one(). */
            atomic_store_explicit(&rv_rec(&r, t)->hw, SB_HW(SB_HW_DONE, n, 0, rv_lap(&r, t)),
                                  memory_order_release);
            /* Release pairs with the acquire load of n in claimant_live(). */
            atomic_store_explicit(&in->n, 0, memory_order_release);
            fresh = c->hcache == NULL;
            continue;
        }
        /* Step 6. Release pairs with the acquire loads of hw in find(), skip_one(). */
        struct sb_rec *rc = rv_rec(&r, t);
        uint64_t w = SB_HW(SB_HW_CLAIMED, n, prio, rv_lap(&r, t));
        atomic_store_explicit(&rc->hw, w, memory_order_release);
        *pos = t;
        *cw = w;
        *rec = rc;
        return (int)k;
    }
}

/* The id of the mailbox record r lies in (r is a record of ours: in range). The division in
 * mbox_id_of() rounds down, so any address inside a mailbox gives its id. */
static uint32_t rec_mbox_id(const shmbus_bus *b, const struct sb_rec *r)
{
    return mbox_id_of(b, (const struct sb_mbox *)(const void *)r);
}

/* Fill the record at pos (fields and payload; the header word is the caller's). data NULL:
 * nothing to copy (a loan's payload is in place); every send call has refused a NULL data
 * with a nonzero len already, so a non-NULL data is copied without asking len. */
HOT void write_rec_as(struct sb_rec *r, const shmbus_client *c, uint32_t dst_gen,
                      const void *data, size_t len, unsigned mflags, unsigned prio, uint64_t seq,
                      uint64_t corr, uint64_t now, bool inline_copy)
{
    r->seq = seq;
    r->corr = corr;
    r->sent_ns = now;
    r->len = (uint32_t)len;
    r->src = c->id;
    r->src_gen = (c->gen & 0xffffffu) | ((uint32_t)mflags << 24);
    r->dst_gen = dst_gen;
    if (data != NULL) {
        /* memcpy, not copy_payload(): with the copy inlined here, the bench's spinning
         * 64 B round trip was 140 ns slower (measured A/B, 1.51 vs 1.37 us), although it
         * ran fewer instructions. Likely cause, not proven: the order of the stores to the
         * record's first line, which a spinning receiver polls, changed. Inline for the
         * records of a batch after its first, which nobody polls. */
        if (inline_copy)
            copy_payload((uint8_t *)r + SB_REC_HDR, data, len);
        else
            memcpy((uint8_t *)r + SB_REC_HDR, data, len);
    }
    if (sb__tap_on(c->bus)) /* the passive view (tap.c): one branch while nobody watches */
        sb__tap_copy(c->bus, c->id, rec_mbox_id(c->bus, r), seq, corr, now,
                     (uint8_t *)r + SB_REC_HDR, len, prio, mflags);
}

HOT void write_rec(struct sb_rec *r, const shmbus_client *c, uint32_t dst_gen, const void *data,
                   size_t len, unsigned mflags, unsigned prio, uint64_t seq, uint64_t corr,
                   uint64_t now)
{
    write_rec_as(r, c, dst_gen, data, len, mflags, prio, seq, corr, now, false);
}

/* After committing: wake the consumer if (and only if) it sleeps. */
HOT void wake_consumer(shmbus_bus *b, struct sb_mbox *mb)
{
    /* seq_cst: with the commit CAS before it, the producer's half of the Dekker pair with
     * the consumer's store of sleeping + fence in recv_common() (docs/mailbox-v2.md, 8). */
    if (atomic_load_explicit(&mb->sleeping, memory_order_seq_cst) &&
        atomic_exchange_explicit(&mb->sleeping, 0, memory_order_relaxed))
        sb__sem_post(&mb->data_sem);
    sb__evfd_wake(b, mb); /* its event-loop descriptor, if armed (evfd.c) */
}

/*
 * Commit the claim whose first record is rec (steps 8..10): its header cw (CLAIMED, as
 * claim() stored it) -> READY(first units), same priority and lap; end the intent, wake the
 * consumer. -ECONNRESET if the claim was skipped (nothing delivered).
 */
HOT int commit(shmbus_client *c, struct sb_mbox *mb, struct sb_rec *rec, unsigned ii, uint64_t cw,
               uint32_t first)
{
    shmbus_bus *b = c->bus;
    uint64_t expect = cw;
    uint64_t ready = (cw & ~SB_HW(3u, 0xffffu, 0, 0)) | SB_HW(SB_HW_READY, first, 0, 0);
    /* seq_cst: its release half pairs with the acquire loads of hw in find() (the fields
     * and payload are visible to whoever sees READY); the rest is the Dekker pair with the
     * sleeping consumer (wake_consumer()). */
    bool ok = atomic_compare_exchange_strong_explicit(&rec->hw, &expect, ready,
                                                      memory_order_seq_cst, memory_order_relaxed);
    /* Release: the commit precedes the intent's end. Pairs with the acquire load of n in
     * claimant_live() and sb__mbox_skip_intents(). */
    atomic_store_explicit(&c->e->intent[ii].n, 0, memory_order_release);
    intent_put(c, ii);
    if (!ok)
        return -ECONNRESET;
    wake_consumer(b, mb);
    return 0;
}

static void deadline_of(int timeout_ms, uint64_t *deadline)
{
    *deadline = timeout_ms < 0 ? UINT64_MAX : sb__now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

/* A send's deadline: 0 for a send that must not wait, read without the clock. */
static inline uint64_t send_deadline(int timeout_ms)
{
    uint64_t deadline = 0;
    if (timeout_ms != 0)
        deadline_of(timeout_ms, &deadline);
    return deadline;
}

/*
 * Sleep on sem until it is posted, the deadline, or one slice: 0 if posted, -ETIMEDOUT, or
 * -EINTR if a signal handler ran. A post says only "look again": every caller re-reads the
 * state and the clock after it, whatever the word said. No semaphore can legitimately hold
 * more posts than there are waiters to wake (a sleeping consumer, or a bus's sending
 * threads, each of which takes its post or times out); more means a scribbled word.
 */
static int sem_wait_slice(const shmbus_bus *b, struct sb_sem *sem, uint64_t deadline)
{
    uint32_t most = 2 * b->lay.max_clients * SB_INTENTS + 2;
    uint64_t now = sb__now_ns();
    uint64_t slice = (uint64_t)SB_SLICE_MS * 1000000ull;
    uint64_t wait = deadline > now ? deadline - now : 0;
    if (wait > slice)
        wait = slice;
    struct timespec ts;
    sb__abs_deadline(&ts, wait);
    return sb__sem_wait_until(sem, &ts, most);
}

/* Is destination dst (generation gen) still the client we are sending to? */
static int check_dest(shmbus_bus *b, uint32_t dst, uint32_t gen, bool check_process)
{
    if (sb__destroyed(b))
        return -EIDRM;
    uint32_t g;
    int r = sb__dest_state(b, dst, &g);
    if (r < 0)
        return r;
    if (g != gen)
        return -EHOSTUNREACH; /* it left, and someone else has the id now */
    if (check_process) {
        struct sb_entry *e = sb__entry(b, dst);
        /* Acquire pairs with the release store of LIVE in shmbus_join(): we read the
         * start_time that belongs to this state. */
        uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        if (!sb__entry_alive(e, s))
            return -ECONNRESET;
    }
    return 0;
}

/* The checks every send-family call starts with. `allowed` is the SHMBUS_SEND_* flags the
 * call accepts; SHMBUS_PRIO() bits are accepted where `prio_ok`. Anything else (an unknown
 * bit, a flag of another family, a priority above 7) is -EINVAL. */
static int check_send_args(shmbus_client *c, size_t len, unsigned flags, unsigned allowed,
                           bool prio_ok)
{
    unsigned known = allowed | (prio_ok ? SHMBUS_PRIO_MASK : 0u);
    if (c == NULL || (flags & ~known) != 0 || shmbus_flags_prio(flags) >= SHMBUS_PRIO_LEVELS)
        return -EINVAL;
    if (len > c->bus->lay.msg_size)
        return -EMSGSIZE;
    if (sb__destroyed(c->bus))
        return -EIDRM;
    return 0;
}

/*
 * Waiting for the ACK of a message to dst (generation gen): can it still be taken? By dst
 * itself, from dst's mailbox kept for its next client (free, so nobody to check yet), or by
 * the client that took that mailbox over. One load of the state word decides.
 */
static int check_ack_dest(shmbus_bus *b, uint32_t dst, uint32_t gen)
{
    if (sb__destroyed(b))
        return -EIDRM;
    struct sb_entry *e = sb__entry(b, dst);
    /* Acquire pairs with the release stores of state in shmbus_join() and leave(): kept_gen
     * as it was when the state was published. */
    uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
    unsigned kind = SB_ST_KIND(s);
    bool ours = (kind != SB_FREE && SB_ST_GEN(s) == gen) || sb__kept_gen(e, s) == gen;
    if (!ours)
        return kind == SB_CLEANING ? -ECONNRESET : -EHOSTUNREACH;
    if (kind == SB_FREE)
        return 0; /* kept: the next client of the id will take it */
    /* LIVE or JOINING: its process must be alive; CLEANING: a leaver (about to store FREE,
     * kept or not) if alive, else a dead client being cleaned. */
    return sb__entry_alive(e, s) ? 0 : -ECONNRESET;
}

/* Wait until our message `seq` has been taken (ack_seq >= seq). */
static int wait_ack(shmbus_client *c, uint32_t dst, uint32_t gen, uint64_t seq, uint64_t deadline)
{
    struct sb_entry *e = c->e;
    for (;;) {
        /* Acquire pairs with the release CAS in ack_sender(). */
        if (atomic_load_explicit(&e->ack_seq, memory_order_acquire) >= seq)
            return 0;
        atomic_store_explicit(&e->ack_waiting, 1, memory_order_relaxed);
        /* Dekker pair with the receiver's CAS + fence in ack_sender(). */
        sb__full_fence();
        if (atomic_load_explicit(&e->ack_seq, memory_order_acquire) >= seq)
            return 0;
        if (sb__now_ns() >= deadline)
            return -ETIMEDOUT;
        int r = sem_wait_slice(c->bus, &e->ack_sem, deadline);
        if (r == -EINTR)
            return r;
        if (r < 0) {
            r = check_ack_dest(c->bus, dst, gen);
            if (r < 0)
                return r;
            sb__maybe_reap(c->bus);
        }
    }
}

/*
 * No room (or the chain rule): wait for the consumer, the deadline, or the destination's
 * end. 0 to try again.
 */
static int wait_space(shmbus_bus *b, struct sb_mbox *mb, uint32_t dst, uint32_t gen,
                      uint64_t deadline, const struct seen *seen)
{
    /* seq_cst add then seq_cst loads: the Dekker pair with the consumer's seq_cst store of
     * head then load of space_waiters in publish() (docs/mailbox-v2.md, 7). */
    atomic_fetch_add_explicit(&mb->space_waiters, 1, memory_order_seq_cst);
    if ((atomic_load_explicit(&mb->head, memory_order_seq_cst) & SB_POS_MASK) != seen->head ||
        atomic_load_explicit(&mb->tail, memory_order_seq_cst) != seen->tail)
        return 0; /* room (or a new tail) appeared meanwhile */
    if (seen->chain) {
        uint64_t t = SB_TAIL_POS(seen->tail);
        /* Acquire pairs with the release store of the header in claim(). */
        if (atomic_load_explicit(hw_at(b, mb, pdiff(t, SB_TAIL_LAST(seen->tail))),
                                 memory_order_acquire) != 0)
            return 0;
    }
    int r = sem_wait_slice(b, &mb->space_sem, deadline);
    if (r == -EINTR)
        return r;
    if (r == 0)
        return check_dest(b, dst, gen, false); /* claim_wait() looks at the clock */
    r = check_dest(b, dst, gen, true);
    if (r < 0)
        return r;
    sb__maybe_reap(b);
    if (sb__now_ns() >= deadline)
        return -ETIMEDOUT;
    return 0;
}

static uint64_t shed(shmbus_client *c, uint32_t dst, uint32_t gen, struct sb_mbox *mb);
static uint64_t start_pos(shmbus_bus *b, struct sb_mbox *mb);

/*
 * claim_wait()'s waiting: claim() said -EAGAIN (or an error) on its first try, k and seen
 * are what it said. Loops until a claim succeeds, the deadline, or an error; gives the
 * intent record back on failure.
 */
static __attribute__((noinline)) int claim_wait_slow(shmbus_client *c, uint32_t dst, uint32_t gen,
                                                     struct sb_mbox *mb, const uint32_t *units,
                                                     uint32_t nrec, unsigned prio, unsigned flags,
                                                     uint64_t deadline, unsigned i, int k,
                                                     struct seen seen, unsigned *ii, uint64_t *pos,
                                                     uint64_t *cw, struct sb_rec **rec)
{
    shmbus_bus *b = c->bus;
    bool counted = false;
    uint64_t spin_until = 0;
    uint32_t spins = 0, chain_spins = 0;
    for (bool first = true;; first = false) {
        if (!first)
            k = claim(c, dst, mb, i, units, nrec, prio, pos, cw, rec, &seen);
        if (k > 0) {
            *ii = i;
            return k;
        }
        if (k != -EAGAIN) {
            intent_put(c, i);
            return k;
        }
        if (seen.chain && chain_spins < CHAIN_SPINS) {
            /* The previous claimer stores its header within instructions unless it was
             * preempted (or died: then the consumer skips its claim and wakes us). */
            chain_spins++;
            sched_yield();
            continue;
        }
        /* No room in a lossy subscriber's mailbox: drop its oldest unread topic messages
         * rather than wait (docs/mailbox-v2.md, 16), then claim again. */
        if (!seen.chain && (flags & SB_SEND_SHED) && shed(c, dst, gen, mb) > 0)
            continue;
        if ((flags & SHMBUS_SEND_NONBLOCK) || deadline == 0) {
            intent_put(c, i);
            return -EAGAIN;
        }
        if (!counted) {
            atomic_fetch_add_explicit(&c->e->full_waits, 1, memory_order_relaxed);
            counted = true;
            spin_until = c->spin_ns ? sb__now_ns() + c->spin_ns : 0;
        }
        /* A client with a spin budget spins for room too: a streaming receiver frees
         * room within microseconds, far sooner than a sleep and a wake-up take. */
        if (spin_until != 0) {
            sb__cpu_relax();
            if ((++spins & 31) != 0 || sb__now_ns() < spin_until)
                continue;
            spin_until = 0;
        }
        /* After every wake-up, whatever woke us: a scribbled semaphore must not buy time. */
        if (deadline != UINT64_MAX && sb__now_ns() >= deadline) {
            intent_put(c, i);
            return -ETIMEDOUT;
        }
        int r = wait_space(b, mb, dst, gen, deadline, &seen);
        if (r < 0) {
            intent_put(c, i);
            return r;
        }
        chain_spins = 0;
    }
}

/*
 * Claim room for units[0..nrec) in dst's mailbox, waiting for room as the flags and the
 * deadline allow. On success (how many records) the caller holds intent record *ii and
 * must commit. The first try is inline (the common case: room by the cached head); the
 * waiting, out of line.
 */
HOT int claim_wait(shmbus_client *c, uint32_t dst, uint32_t gen, struct sb_mbox *mb,
                   const uint32_t *units, uint32_t nrec, unsigned prio, unsigned flags,
                   uint64_t deadline, bool loan, unsigned *ii, uint64_t *pos, uint64_t *cw,
                   struct sb_rec **rec)
{
    mbox_warm(c->bus, dst); /* before the claim: no page fault between claim and commit */
    unsigned i;
    if (!loan)
        i = intent_get(c);
    else if (intent_try_get(c, &i) < 0)
        return -EBUSY; /* a thread holding loans must not wait for itself */
    struct seen seen;
    int k = claim(c, dst, mb, i, units, nrec, prio, pos, cw, rec, &seen);
    if (k > 0) {
        *ii = i;
        return k;
    }
    return claim_wait_slow(c, dst, gen, mb, units, nrec, prio, flags, deadline, i, k, seen, ii, pos,
                           cw, rec);
}

/* Give a claim back unfilled (a cancelled loan, a send whose journal write failed): the
 * owner ends it as padding, nrec messages fewer in `claimed`. -ECONNRESET if it had been
 * skipped meanwhile (gone anyway). */
static int cancel_claim(shmbus_client *c, struct sb_mbox *mb, unsigned i, uint64_t pos,
                        uint32_t total, unsigned prio, uint32_t nrec)
{
    shmbus_bus *b = c->bus;
    uint64_t lap = lap_of(b, pos);
    uint64_t expect = SB_HW(SB_HW_CLAIMED, total, prio, lap);
    /* The owner ends its claim as padding. Release pairs with the acquire loads of hw in
     * advance_from() and find_msg(); fails only if the claim was skipped. */
    bool ok = atomic_compare_exchange_strong_explicit(hw_at(b, mb, pos), &expect,
                                                      SB_HW(SB_HW_DONE, total, 0, lap),
                                                      memory_order_release, memory_order_relaxed);
    /* Release pairs with the acquire load of n in claimant_live(). */
    atomic_store_explicit(&c->e->intent[i].n, 0, memory_order_release);
    intent_put(c, i);
    atomic_fetch_sub_explicit(&mb->claimed, nrec, memory_order_relaxed); /* never messages */
    if (!ok)
        return -ECONNRESET;
    wake_consumer(b, mb); /* it may wait behind the claim */
    return 0;
}

/* A durable bus (journal.c): write the records of the n messages just claimed at pos
 * before they are committed; if that fails, give the claim back and fail the send. */
static __attribute__((noinline)) int journal_claim(shmbus_client *c, uint32_t dst,
                                                   struct sb_mbox *mb, unsigned i, uint64_t pos,
                                                   uint32_t total, const struct shmbus_iov *msgs,
                                                   size_t n, unsigned prio, unsigned mflags,
                                                   uint64_t seq0, uint64_t corr, unsigned flags,
                                                   uint64_t deadline)
{
    int r = sb__journal_msgs(c, dst, msgs, n, prio, mflags, seq0, corr, flags, deadline);
    if (r < 0)
        cancel_claim(c, mb, i, pos, total, prio, (uint32_t)n);
    return r;
}

/* One message to one destination. *seq_out gets its sequence number. Inline, so that
 * shmbus_send()'s common case (priority 0, no ACK) is compiled with those constants. */
HOT int send_rec(shmbus_client *c, uint32_t dst, const void *data, size_t len, unsigned prio,
                 unsigned flags, unsigned mflags, uint64_t corr, uint64_t deadline,
                 uint64_t *seq_out)
{
    shmbus_bus *b = c->bus;
    uint32_t gen;
    int r = sb__dest_state(b, dst, &gen);
    if (r < 0)
        return r;
    struct sb_mbox *mb = sb__mbox(b, dst);
    uint32_t units = sb__rec_units(len);
    unsigned i;
    uint64_t pos, cw;
    struct sb_rec *rec;
    r = claim_wait(c, dst, gen, mb, &units, 1, prio, flags, deadline, false, &i, &pos, &cw, &rec);
    if (r < 0)
        return r;
    sb__tp(SB_TP_RESERVED); /* test-only: claimed, not yet filled */
    uint64_t seq = atomic_fetch_add_explicit(&c->e->sent, 1, memory_order_relaxed) + 1;
    if (b->j != NULL) { /* a durable bus: the record before the commit */
        struct shmbus_iov m = {data, len};
        r = journal_claim(c, dst, mb, i, pos, SB_HW_UNITS(cw), &m, 1, prio, mflags, seq, corr,
                          flags, deadline);
        if (r < 0)
            return r;
    }
    sb__stats_sent(c->row, 1, len);
    /* Before the commit (docs/mailbox-v2.md, 6). Release pairs with the acquire load of
     * pending_hi in find_msg(): our claim comes first. */
    if (prio > 0)
        atomic_fetch_add_explicit(&mb->pending_hi, 1, memory_order_release);
    write_rec(rec, c, gen, data, len, mflags, prio, seq, corr, sb__now_ns());
    r = commit(c, mb, rec, i, cw, SB_HW_UNITS(cw));
    if (r < 0) {
        if (b->j != NULL)
            sb__journal_cancel(c, seq, 1); /* journaled, but never delivered */
        return r;
    }
    if (seq_out != NULL)
        *seq_out = seq;
    if (flags & SHMBUS_SEND_ACK)
        return wait_ack(c, dst, gen, seq, deadline);
    return 0;
}

static int send_one(shmbus_client *c, uint32_t dst, const void *data, size_t len, unsigned prio,
                    unsigned flags, unsigned mflags, uint64_t corr, uint64_t deadline,
                    uint64_t *seq_out)
{
    return send_rec(c, dst, data, len, prio, flags, mflags, corr, deadline, seq_out);
}

int shmbus_send(shmbus_client *c, uint32_t dst, const void *data, size_t len, unsigned flags,
                int timeout_ms)
{
    int r = check_send_args(
        c, len, flags,
        SHMBUS_SEND_NONBLOCK | SHMBUS_SEND_ACK | SHMBUS_SEND_SYNC | SHMBUS_SEND_REPLAY, true);
    if (r < 0)
        return r;
    if (data == NULL && len != 0)
        return -EINVAL;
    unsigned prio = shmbus_flags_prio(flags);
    uint64_t deadline = send_deadline(timeout_ms);
    if ((flags & ~SHMBUS_SEND_NONBLOCK) == 0) /* the common case, with its constants */
        return send_rec(c, dst, data, len, 0, flags, 0, 0, deadline, NULL);
    unsigned mflags = (flags & SHMBUS_SEND_ACK) ? SHMBUS_MSG_ACK : 0;
    if (flags & SHMBUS_SEND_REPLAY)
        mflags |= SHMBUS_MSG_REPLAYED;
    return send_one(c, dst, data, len, prio, flags, mflags, 0, deadline, NULL);
}

/*
 * Fill the k records of a claim at pos (msgs[0..k), seqs seq1..) and commit them with one
 * CAS (docs/mailbox-v2.md, 4, "Batches"): the first header stays CLAIMED(whole claim) while
 * records 2..k get READY headers. The commit's result (-ECONNRESET: the claim was skipped).
 */
HOT int fill_commit(shmbus_client *c, struct sb_mbox *mb, uint32_t gen,
                    const struct shmbus_iov *msgs, const uint32_t *units, int k, unsigned prio,
                    uint64_t seq1, unsigned i, uint64_t pos, uint64_t cw, struct sb_rec *rec0)
{
    shmbus_bus *b = c->bus;
    uint64_t bytes = msgs[0].len;
    uint64_t now = sb__now_ns();
    if (prio > 0) /* release pairs with the acquire load in find_msg(), as in send_rec() */
        atomic_fetch_add_explicit(&mb->pending_hi, k, memory_order_release);
    const struct rv rg = rv_of(b, mb); /* geometry in registers across our stores */
    write_rec(rec0, c, gen, msgs[0].data, msgs[0].len, 0, prio, seq1, 0, now);
    if (k > 1)
        sb__tp(SB_TP_BATCH_PART); /* test-only: part of a batch written */
    uint64_t p = padd(pos, units[0]);
    /* A claim never crosses the ring's end: its records share pos's lap. */
    const uint64_t ready = SB_HW(SB_HW_READY, 0, prio, rv_lap(&rg, pos)) | SB_HW_INNER;
    for (int j = 1; j < k; j++) {
        struct sb_rec *rec = rv_rec(&rg, p);
        write_rec_as(rec, c, gen, msgs[j].data, msgs[j].len, 0, prio, seq1 + (uint64_t)j, 0, now,
                     true);
        /* Relaxed: nobody reads inside a CLAIMED claim; the commit CAS's release publishes
         * this header with the rest. */
        atomic_store_explicit(&rec->hw, ready | SB_HW(0, units[j], 0, 0), memory_order_relaxed);
        bytes += msgs[j].len;
        p = padd(p, units[j]);
    }
    sb__stats_sent(c->row, (uint64_t)k, bytes);
    return commit(c, mb, rec0, i, cw, units[0]);
}

/*
 * A durable bus whose destination had no room for the first message: write the records of
 * all `want` messages now, while the receiver frees room (the two sides overlap: the
 * journal write is most of a durable send's cost, and a stream's send batch fills the
 * default ring, so writing it only after the claim makes each side wait for the other's
 * whole batch), then place them in as many claims as room allows, waiting for room as
 * claim_wait() does, until the deadline. What is not placed (the deadline, the destination
 * gone, a claim skipped) gets one CANCEL marker for the run: journaled, never delivered.
 * The records are written before any of them is visible, as on the other path.
 */
static __attribute__((noinline)) int send_batch_ahead(shmbus_client *c, uint32_t dst, uint32_t gen,
                                                      const struct shmbus_iov *msgs,
                                                      const uint32_t *units, uint32_t want,
                                                      unsigned prio, unsigned flags,
                                                      uint64_t deadline)
{
    struct sb_mbox *mb = sb__mbox(c->bus, dst);
    uint64_t seq = atomic_fetch_add_explicit(&c->e->sent, want, memory_order_relaxed);
    int r = sb__journal_msgs(c, dst, msgs, want, prio, 0, seq + 1, 0, flags, deadline);
    if (r < 0)
        return r; /* nothing accepted, nothing claimed */
    sb__tp(SB_TP_AHEAD); /* test-only: written ahead, nothing placed */
    uint32_t done = 0;
    while (done < want) {
        unsigned i;
        uint64_t pos, cw;
        struct sb_rec *rec0;
        int k = claim_wait(c, dst, gen, mb, units + done, want - done, prio, flags, deadline, false,
                           &i, &pos, &cw, &rec0);
        if (k < 0) {
            r = k;
            break;
        }
        r = fill_commit(c, mb, gen, msgs + done, units + done, k, prio, seq + 1 + done, i, pos, cw,
                        rec0);
        if (r < 0)
            break;
        done += (uint32_t)k;
    }
    if (done < want)
        sb__journal_cancel(c, seq + 1 + done, want - done); /* journaled, never delivered */
    return done > 0 ? (int)done : r;
}

/*
 * One claim for as many of the messages as fit (docs/mailbox-v2.md, 4, "Batches"), filled
 * and committed at once; on a durable bus the records are written between the claim and
 * the commit, or, when there was no room at first, before the claims (send_batch_ahead()).
 */
int shmbus_send_batch(shmbus_client *c, uint32_t dst, const struct shmbus_iov *msgs, size_t n,
                      unsigned flags, int timeout_ms)
{
    if (c == NULL || msgs == NULL || n == 0)
        return -EINVAL;
    int r = check_send_args(c, 0, flags, SHMBUS_SEND_NONBLOCK | SHMBUS_SEND_SYNC, true);
    if (r < 0)
        return r;
    unsigned prio = shmbus_flags_prio(flags);
    uint32_t want = n > BATCH_MAX ? BATCH_MAX : (uint32_t)n;
    uint32_t units[BATCH_MAX];
    const size_t msg_size = c->bus->lay.msg_size;
    for (size_t k = 0; k < n; k++) {
        size_t len = msgs[k].len;
        if (len > msg_size)
            return -EMSGSIZE;
        if (msgs[k].data == NULL && len != 0)
            return -EINVAL;
        if (k < want)
            units[k] = sb__rec_units(len);
    }
    shmbus_bus *b = c->bus;
    uint32_t gen;
    r = sb__dest_state(b, dst, &gen);
    if (r < 0)
        return r;
    uint64_t deadline = send_deadline(timeout_ms);
    struct sb_mbox *mb = sb__mbox(b, dst);
    unsigned i;
    uint64_t pos, cw;
    struct sb_rec *rec0;
    /* A durable bus tries once without waiting: no room means write the journal first. */
    bool ahead = b->j != NULL && !(flags & SHMBUS_SEND_NONBLOCK) && deadline != 0;
    unsigned first = ahead ? flags | SHMBUS_SEND_NONBLOCK : flags;
    int k = claim_wait(c, dst, gen, mb, units, want, prio, first, deadline, false, &i, &pos, &cw,
                       &rec0);
    if (k == -EAGAIN && ahead)
        return send_batch_ahead(c, dst, gen, msgs, units, want, prio, flags, deadline);
    if (k < 0)
        return k;
    uint64_t seq = atomic_fetch_add_explicit(&c->e->sent, (uint64_t)k, memory_order_relaxed);
    if (b->j != NULL) { /* a durable bus: the records before the commit */
        r = journal_claim(c, dst, mb, i, pos, SB_HW_UNITS(cw), msgs, (size_t)k, prio, 0, seq + 1, 0,
                          flags, deadline);
        if (r < 0)
            return r;
    }
    r = fill_commit(c, mb, gen, msgs, units, k, prio, seq + 1, i, pos, cw, rec0);
    if (r < 0 && b->j != NULL)
        sb__journal_cancel(c, seq + 1, (uint32_t)k); /* journaled, never delivered */
    return r < 0 ? r : k;
}

int shmbus_broadcast(shmbus_client *c, const void *data, size_t len, unsigned flags, int timeout_ms)
{
    int r = check_send_args(c, len, flags, SHMBUS_SEND_NONBLOCK, true);
    if (r < 0)
        return r;
    if (data == NULL && len != 0)
        return -EINVAL;
    unsigned prio = shmbus_flags_prio(flags);
    uint64_t deadline = send_deadline(timeout_ms);
    int count = 0;
    for (uint32_t id = 1; id <= c->bus->lay.max_clients; id++) {
        if (id == c->id)
            continue;
        uint32_t gen;
        if (sb__dest_state(c->bus, id, &gen) != 0)
            continue;
        r = send_one(c, id, data, len, prio, flags, SHMBUS_MSG_BROADCAST, 0, deadline, NULL);
        if (r == 0)
            count++;
        else if (r == -EIDRM)
            return r;
        else if (r == -EINTR)
            return count > 0 ? count : r; /* asked to stop: the rest are not sent */
    }
    return count;
}

int sb__send_check(shmbus_client *c, size_t len, unsigned flags, unsigned allowed, bool prio_ok)
{
    return check_send_args(c, len, flags, allowed, prio_ok);
}

int sb__send_member(shmbus_client *c, uint32_t dst, uint32_t gen, const void *data, size_t len,
                    unsigned flags, unsigned mflags, uint64_t corr, uint64_t deadline)
{
    uint32_t g;
    int r = sb__dest_state(c->bus, dst, &g);
    if (r < 0)
        return r;
    if (g != gen)
        return -EHOSTUNREACH; /* the member left; someone else has the id now */
    /* send_one() reads the state again: a member that leaves and whose id is joined again
     * in the microseconds between the two reads gets the message sent to the new client of
     * the id (stamped with its generation). Closing that window means passing gen down
     * into send_one(), the hot path the v2perf work is changing: left for the merge. */
    if (flags & SHMBUS_SEND_ACK)
        mflags |= SHMBUS_MSG_ACK;
    return send_one(c, dst, data, len, shmbus_flags_prio(flags), flags, mflags, corr, deadline,
                    NULL);
}

int sb__mbox_resend(shmbus_client *c, uint32_t dst, uint32_t gen, const struct shmbus_msg *m,
                    uint32_t src_gen, const void *data)
{
    shmbus_bus *b = c->bus;
    uint32_t g;
    int r = sb__dest_state(b, dst, &g);
    if (r < 0)
        return r;
    if (g != gen)
        return -EHOSTUNREACH;
    struct sb_mbox *mb = sb__mbox(b, dst);
    unsigned prio = m->prio & 7u, i;
    uint32_t units = sb__rec_units(m->len);
    uint64_t pos, cw;
    struct sb_rec *rec;
    r = claim_wait(c, dst, gen, mb, &units, 1, prio, SHMBUS_SEND_NONBLOCK, 0, false, &i, &pos, &cw,
                   &rec);
    if (r < 0)
        return r;
    /* Release pairs with the acquire load of pending_hi in find_msg(), as in send_rec(). */
    if (prio > 0)
        atomic_fetch_add_explicit(&mb->pending_hi, 1, memory_order_release);
    write_rec(rec, c, gen, data, m->len, (m->flags & MSG_FLAGS) | SHMBUS_MSG_REDELIVERED, prio,
              m->seq, m->corr, m->sent_ns);
    /* The original sender, not c: a reply or an ACK goes to it. Plain stores: the claim is
     * ours until the commit CAS publishes it. */
    rec->src = m->src;
    rec->src_gen =
        (src_gen & 0xffffffu) | ((uint32_t)((m->flags & MSG_FLAGS) | SHMBUS_MSG_REDELIVERED) << 24);
    return commit(c, mb, rec, i, cw, SB_HW_UNITS(cw));
}

/* The receiver took an ACK message: tell its sender. */
static void ack_sender(shmbus_bus *b, uint32_t src, uint32_t src_gen, uint64_t seq)
{
    if (src < 1 || src > b->lay.max_clients)
        return;
    struct sb_entry *e = sb__entry(b, src);
    /* Acquire pairs with the release store of LIVE in shmbus_join(): the generation we
     * compare belongs to the entry we are about to post. */
    uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
    if (SB_ST_KIND(s) != SB_LIVE || SB_ST_GEN(s) != src_gen)
        return;
    uint64_t cur = atomic_load_explicit(&e->ack_seq, memory_order_relaxed);
    /* Release pairs with the sender's acquire load in wait_ack(). */
    while (cur < seq && !atomic_compare_exchange_weak_explicit(
                            &e->ack_seq, &cur, seq, memory_order_release, memory_order_relaxed))
        ;
    /* Dekker pair with the sender's store of ack_waiting + fence in wait_ack(). */
    sb__full_fence();
    if (atomic_load_explicit(&e->ack_waiting, memory_order_relaxed) &&
        atomic_exchange_explicit(&e->ack_waiting, 0, memory_order_relaxed))
        sb__sem_post(&e->ack_sem);
}

/* ---- consumer side ---------------------------------------------------------------------- */

/* What a receive is looking for: any message, or the reply to one request. */
struct want {
    bool peek;        /* copy the message out but leave it in place (shmbus_peek) */
    bool look;        /* with peek: do not remember it for shmbus_consume() either */
    const void **ref; /* lend it in place (shmbus_recv_ref): the payload's address here */
    bool reply_only;
    uint32_t from;
    uint64_t corr;
};

static inline void add_counter(_Atomic uint64_t *ctr, uint64_t n)
{
    /* Only the receiving thread writes these: a load and a store, not a locked add. */
    sb__bump(ctr, n);
}

/* A message sent at sent_ns, taken now: one latency sample, in the client's histogram and
 * its id's row. Out of line: one message in 16 found at once is a sample. */
static __attribute__((noinline)) void sample_latency(shmbus_client *c, uint64_t sent_ns)
{
    uint64_t now = sb__now_ns();
    if (now > sent_ns) {
        add_counter(&c->e->lat_hist[shmbus_hist_bucket(now - sent_ns)], 1);
        sb__stats_latency(c->row, now - sent_ns);
    }
}

/* The counters of n messages, `bytes` in all, taken from src: its id's (stats.c), from which
 * the client's own are read (less their base at join, registry.c). sent_ns nonzero: one of them is
 * a latency sample. Every receive path counts through here, per message or per run of one sender's
 * messages. */
static inline __attribute__((always_inline)) void count_taken(shmbus_client *c, uint32_t src,
                                                              uint64_t n, uint64_t bytes,
                                                              uint64_t sent_ns)
{
    sb__stats_taken(c->row, src, n, bytes); /* the entry's received counts derive from these */
    if (sent_ns != 0)
        sample_latency(c, sent_ns);
}

/*
 * Pass DONE records (taken, skipped, padding) and zeroed units at *hp, zeroing them. The
 * walk of every consumer: the owner's (its private h), a drain's, and steps at most a ring.
 * 0, or -EBADMSG at a header that fails the checks (*hp stops there).
 */
static int advance_from(const shmbus_bus *b, struct sb_mbox *mb, uint64_t *hp, const uint64_t *stop,
                        bool *inherited)
{
    uint64_t h = *hp, cap = b->lay.ring_units;
    int r = 0;
    for (uint64_t steps = 0; steps < cap;) {
        if (stop != NULL && h == *stop)
            break; /* a record shmbus_recv_ref() lent: its bytes stay until released */
        /* Acquire pairs with the release store of the header in claim(), the commit CAS in
         * commit() and the skip CAS in skip_one(). */
        uint64_t v = atomic_load_explicit(hw_at(b, mb, h), memory_order_acquire);
        if (v == 0) {
            /* A zero word is the end of what is committed, except in a run an earlier
             * consumer zeroed and did not publish: only a walk that started at a published
             * head can meet one (inherited, or a drain's walk: NULL), and only before its
             * first real header. The owner's walk then costs no look at tail. */
            if (inherited != NULL && !*inherited)
                break;
            int z = zero_step(b, mb, h);
            if (z == 0)
                break;
            if (z == 1) {
                h = padd(h, 1);
                steps++;
            }
            continue;
        }
        if (!hw_valid(b, v, h)) {
            r = -EBADMSG;
            break;
        }
        if (inherited != NULL)
            *inherited = false;
        if (SB_HW_STATE(v) != SB_HW_DONE)
            break;
        uint32_t u = SB_HW_UNITS(v);
        zero_units(b, mb, h, u);
        h = padd(h, u);
        steps += u;
    }
    *hp = h;
    return r;
}

/* The oldest record the consumer has lent and not had back (only when nheld > 0). */
static uint64_t oldest_held(const shmbus_client *c)
{
    uint64_t best = c->held[0];
    for (uint32_t i = 1; i < c->nheld; i++)
        if (pdiff(c->held[i], c->h) < pdiff(best, c->h))
            best = c->held[i];
    return best;
}

/* The owner's advance: from its private h, never past a lent record. */
static int advance(shmbus_client *c)
{
    if (c->nheld == 0)
        return advance_from(c->bus, c->mb, &c->h, NULL, &c->inherited);
    uint64_t stop = oldest_held(c);
    return advance_from(c->bus, c->mb, &c->h, &stop, &c->inherited);
}

/*
 * Publish the consumer's position, and wake producers waiting for room: when the mailbox
 * has drained to half (a woken producer then finds room for many messages), or always when
 * `all` (the consumer is about to sleep, or skipped a dead claim producers may wait behind).
 */
static __attribute__((noinline)) void wake_space(const shmbus_bus *b, struct sb_mbox *mb,
                                                 uint64_t h, bool all);

HOT void publish_at(const shmbus_bus *b, struct sb_mbox *mb, uint64_t h, bool all)
{
    /* seq_cst: the release half pairs with the producers' acquire loads of head in
     * refresh_head() (zeroing and reads below h come first); the rest is the Dekker pair
     * with a producer's seq_cst add to space_waiters then load of head in wait_space(). */
    atomic_store_explicit(&mb->head, h, memory_order_seq_cst);
    if (all) {
        /* Caught up: every claim is passed, so passed = claimed, but for a claimer between
         * its tail CAS and its add (mended at the next catch-up) and a dead batch skipped
         * as one record. Only shmbus_list()'s depth reads these. Not on every publish:
         * tail is the producers' hottest line. */
        uint64_t t = SB_TAIL_POS(atomic_load_explicit(&mb->tail, memory_order_relaxed));
        uint64_t k = atomic_load_explicit(&mb->claimed, memory_order_relaxed);
        if (t == h && atomic_load_explicit(&mb->passed, memory_order_relaxed) != k)
            atomic_store_explicit(&mb->passed, k, memory_order_relaxed);
    }
    if (atomic_load_explicit(&mb->space_waiters, memory_order_seq_cst) != 0)
        wake_space(b, mb, h, all);
}

/* publish_at()'s wake-up, out of line: producers wait for room only when the ring is full. */
static void wake_space(const shmbus_bus *b, struct sb_mbox *mb, uint64_t h, bool all)
{
    uint64_t t = SB_TAIL_POS(atomic_load_explicit(&mb->tail, memory_order_relaxed));
    if (!all && pdiff(t, h) > b->lay.ring_units / 2)
        return;
    uint32_t w = atomic_exchange_explicit(&mb->space_waiters, 0, memory_order_relaxed);
    sb__post_waiters(b, &mb->space_sem, w);
}

static void publish(shmbus_client *c, bool all)
{
    c->hpub = c->h;
    publish_at(c->bus, c->mb, c->h, all);
}

/* After a take: publish once per batch (docs/mailbox-v2.md, 5): when caught up, every
 * quarter ring, when a producer waits, or when we stopped inside a batch's claim. The last
 * two are not optional: we may just have zeroed the last claim's header (caught up: a
 * claim of one record; stopped at an SB_HW_INNER record: a batch's first record), and the
 * chain rule lets producers past a zero there only once head says it was consumed. */
HOT void maybe_publish_at(shmbus_client *c, const struct rv *r, uint64_t h)
{
    if (h == c->hpub)
        return;
    uint64_t v;
    /* Caught up (a zero word at h) first: a ping-pong's every receive publishes there. */
    if ((v = atomic_load_explicit(&rv_rec(r, h)->hw, memory_order_relaxed)) == 0 ||
        (v & SB_HW_INNER) || pdiff(h, c->hpub) >= r->units / 4 ||
        atomic_load_explicit(&c->mb->space_waiters, memory_order_relaxed) != 0) {
        c->hpub = h;
        publish_at(c->bus, c->mb, h, false);
    }
}

/* maybe_publish_at() at c->h, for the general paths. */
static void maybe_publish(shmbus_client *c)
{
    const struct rv r = rv_of(c->bus, c->mb);
    maybe_publish_at(c, &r, c->h);
}

/*
 * pending_hi counts prio > 0 messages committed and not taken; a producer that died between
 * its add and its commit leaves it too high for ever (its claim is skipped, never taken),
 * and every receive would then scan (docs/mailbox-v2.md, 6). find_msg() calls this when a
 * scan from h, begun after loading `seen` from pending_hi, met no READY prio > 0 record and
 * ended at a zero word at `end`: if end is tail.pos, no claim is outstanding, so every add
 * that `seen` counts belongs to a record already taken (and subtracted) or skipped, and the
 * true count is 0. The CAS fails if a producer added meanwhile (only the consumer
 * subtracts, so the word cannot come back to `seen`: no ABA).
 */
static void repair_pending_hi(struct sb_mbox *mb, int32_t seen, uint64_t end)
{
    /* Acquire pairs with the release CAS on tail in claim(). */
    if (SB_TAIL_POS(atomic_load_explicit(&mb->tail, memory_order_acquire)) != end)
        return;
    /* Relaxed: a hint; the release adds of producers are ordered by their own claims. */
    atomic_compare_exchange_strong_explicit(&mb->pending_hi, &seen, 0, memory_order_relaxed,
                                            memory_order_relaxed);
}

/*
 * Find the message to take next: among the committed prefix from h, the first of the
 * highest priority (or the first reply matching `w`). 0 with *found and *v (its header
 * word) set, -EAGAIN, or -EBADMSG.
 */
static int find_msg(shmbus_client *c, const struct want *w, uint64_t *found, uint64_t *vout)
{
    shmbus_bus *b = c->bus;
    struct sb_mbox *mb = c->mb;
    /* Acquire pairs with the release adds to pending_hi in send_rec(), shmbus_send_batch()
     * and shmbus_loan_commit(): a producer's add comes after its claim (the tail CAS), so
     * whoever sees the add sees the claim; repair_pending_hi() relies on it. */
    int32_t hi = atomic_load_explicit(&mb->pending_hi, memory_order_acquire);
    bool scan = w->reply_only || c->nheld != 0 || hi > 0;
    if (!scan) {
        /* The common case first: a READY record at h (nothing at h to pass). Acquire pairs
         * with the commit CAS in commit(): its fields and payload are visible. */
        uint64_t v = atomic_load_explicit(hw_at(b, mb, c->h), memory_order_acquire);
        if (SB_HW_STATE(v) == SB_HW_READY && hw_valid(b, v, c->h)) {
            *found = c->h;
            *vout = v;
            return 0;
        }
    }
    int r = advance(c);
    if (r < 0)
        return r;
    uint64_t h = c->h, cap = b->lay.ring_units;
    /* A lent record at h (DONE, not passed until released) makes us look past it. */
    if (!scan) {
        /* Acquire pairs with the commit CAS in commit(): a READY record's fields and
         * payload are visible. */
        uint64_t v = atomic_load_explicit(hw_at(b, mb, h), memory_order_acquire);
        if (SB_HW_STATE(v) != SB_HW_READY)
            return -EAGAIN;
        if (!hw_valid(b, v, h))
            return -EBADMSG;
        *found = h;
        *vout = v;
        return 0;
    }
    int best = -1;
    bool hi_seen = false;
    uint64_t p = h;
    for (uint64_t steps = 0; steps < cap;) {
        /* Acquire pairs with the commit CAS in commit(), as above. */
        uint64_t v = atomic_load_explicit(hw_at(b, mb, p), memory_order_acquire);
        if (v == 0) {
            if (hi > 0 && !hi_seen)
                repair_pending_hi(mb, hi, p);
            break; /* the committed prefix ends here */
        }
        if (SB_HW_STATE(v) == SB_HW_CLAIMED)
            break; /* the committed prefix ends here */
        if (!hw_valid(b, v, p)) {
            if (best >= 0)
                break;
            return -EBADMSG;
        }
        if (SB_HW_STATE(v) == SB_HW_READY) {
            hi_seen |= SB_HW_PRIO(v) > 0;
            if (w->reply_only) {
                const struct sb_rec *rc = sb__unit(b, mb, p);
                if (((rc->src_gen >> 24) & SHMBUS_MSG_REPLY) && rc->src == w->from &&
                    rc->corr == w->corr) {
                    *found = p;
                    *vout = v;
                    return 0;
                }
            } else if ((int)SB_HW_PRIO(v) > best) {
                best = (int)SB_HW_PRIO(v);
                *found = p;
                *vout = v;
                if (best == SHMBUS_PRIO_LEVELS - 1)
                    break;
            }
        }
        p = padd(p, SB_HW_UNITS(v));
        steps += SB_HW_UNITS(v);
    }
    return best >= 0 ? 0 : -EAGAIN;
}

/* n more records are taken, dropped or skipped (only the consumer, or a drain standing in
 * for it, writes this). */
static void note_passed(struct sb_mbox *mb, uint64_t n)
{
    atomic_store_explicit(&mb->passed, atomic_load_explicit(&mb->passed, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* The record at pos (header word v) is taken or dropped: DONE in place; h passes it. */
static void mark_done(shmbus_client *c, uint64_t pos, uint64_t v)
{
    /* Relaxed: only consumers read it again (this one, or a drain after it died, which
     * acquires the entry's state first). */
    atomic_store_explicit(hw_at(c->bus, c->mb, pos), (v & ~(uint64_t)3) | SB_HW_DONE,
                          memory_order_relaxed);
    if (SB_HW_PRIO(v) > 0)
        atomic_fetch_sub_explicit(&c->mb->pending_hi, 1, memory_order_relaxed);
    note_passed(c->mb, 1);
}

static int drain_ask(shmbus_bus *b, struct sb_mbox *mb, uint64_t h, uint64_t v, sb__drain_fn fn,
                     void *arg);

/*
 * Copy the message at `pos` (header word v) into *m and buf without taking it. Returns its
 * length, -EMSGSIZE (*m filled, so m->len says the room needed), or -ENOMSG when the record
 * failed the checks (stale generation or corrupt): it is then dropped, and the caller
 * should look again. The record's fields are read once each here; consume_at() uses only
 * these checked copies.
 */
static int read_at(shmbus_client *c, uint64_t pos, uint64_t v, struct shmbus_msg *m,
                   uint32_t *src_gen, void *buf, size_t cap)
{
    shmbus_bus *b = c->bus;
    const struct sb_rec *rc = sb__unit(b, c->mb, pos);
    uint32_t len = rc->len;
    uint32_t src = rc->src;
    uint32_t sg = rc->src_gen;
    uint32_t dst_gen = rc->dst_gen;
    uint64_t room = (uint64_t)SB_HW_UNITS(v) * SB_UNIT - SB_REC_HDR;
    if (len > b->lay.msg_size || len > room || src < 1 || src > b->lay.max_clients ||
        !our_gen(c, dst_gen)) {
        /* A group message for an earlier client of the id, committed after that client's
         * salvage: another member gets it (redeliver.c), rather than the drop. */
        if (!((sg >> 24) & SHMBUS_MSG_GROUP) || drain_ask(b, c->mb, pos, v, sb__stray, c) != 0)
            add_counter(&c->e->dropped, 1);
        mark_done(c, pos, v);
        return -ENOMSG;
    }
    *m = (struct shmbus_msg){
        .src = src,
        .dst = c->id,
        .seq = rc->seq,
        .corr = rc->corr,
        .sent_ns = rc->sent_ns,
        .len = len,
        .prio = (uint8_t)SB_HW_PRIO(v),
        .flags = (uint8_t)((sg >> 24) & MSG_FLAGS),
    };
    *src_gen = sg & 0xffffffu;
    if (len > cap)
        return -EMSGSIZE;
    if (len != 0)
        memcpy(buf, (const uint8_t *)rc + SB_REC_HDR, len);
    return (int)len;
}

/* Take the message at `pos`, already copied out by read_at() into *m: record it in flight
 * if c confirms its group (redeliver.c), write the journal's taken marker on a durable bus,
 * mark it DONE, ACK its sender, count it. 0, or an error (-ENOBUFS: the in-flight table is
 * full; or the journal's): nothing done, the message stays READY. */
static int consume_at(shmbus_client *c, uint64_t pos, uint64_t v, const struct shmbus_msg *m,
                      uint32_t src_gen, bool sample)
{
    bool held = sb__confirms(c, m);
    if (held) {
        /* Recorded before it is DONE: a death in between gives it twice, never zero times.
         * First, as it may fail without side effects. */
        int r = sb__inflight_put(c, m, src_gen,
                                 (const uint8_t *)sb__unit(c->bus, c->mb, pos) + SB_REC_HDR);
        if (r < 0)
            return r;
    }
    if (c->bus->j != NULL) { /* a durable bus: the taken marker first (shmbus.h) */
        int r = sb__journal_taken(c, m, src_gen);
        if (r < 0) {
            if (held)
                shmbus_done(c, m); /* not taken after all: not in flight either */
            return r;              /* not taken: the message stays where it is */
        }
    }
    mark_done(c, pos, v);
    if (m->flags & SHMBUS_MSG_ACK)
        ack_sender(c->bus, m->src, src_gen, m->seq);
    count_taken(c, m->src, 1, m->len, sample ? m->sent_ns : 0);
    return 0;
}

/*
 * Take the message at `pos` into hdr/buf. Returns its length, -EMSGSIZE (left in place), or
 * -ENOMSG when the record was dropped and the caller should look again.
 */
static int take_at(shmbus_client *c, uint64_t pos, uint64_t v, struct shmbus_msg *hdr, void *buf,
                   size_t cap, bool sample)
{
    struct shmbus_msg m;
    uint32_t src_gen;
    int r = read_at(c, pos, v, &m, &src_gen, buf, cap);
    if (r == -ENOMSG)
        return r;
    if (hdr != NULL)
        *hdr = m;
    if (r < 0)
        return r;
    int e = consume_at(c, pos, v, &m, src_gen, sample);
    return e < 0 ? e : r;
}

/* Copy the message at `pos` and, unless `look`, remember it for shmbus_consume(); it stays
 * READY. Returns as take_at(). */
static int peek_at(shmbus_client *c, uint64_t pos, uint64_t v, struct shmbus_msg *hdr, void *buf,
                   size_t cap, bool look)
{
    struct shmbus_msg m;
    uint32_t src_gen;
    if (!look)
        c->peek_valid = false;
    int r = read_at(c, pos, v, &m, &src_gen, buf, cap);
    if (r == -ENOMSG)
        return r;
    if (hdr != NULL)
        *hdr = m;
    if (r < 0 || look)
        return r;
    c->peek_msg = m;
    c->peek_pos = pos;
    c->peek_hw = v;
    c->peek_src_gen = src_gen;
    c->peek_valid = true;
    return r;
}

/* Take the message at pos in place: counted, ACKed and DONE, but its bytes held for the
 * caller until shmbus_recv_release(). Returns its length or -ENOMSG (dropped). */
static int lend_at(shmbus_client *c, uint64_t pos, uint64_t v, struct shmbus_msg *hdr,
                   const void **ref, bool sample)
{
    struct shmbus_msg m;
    uint32_t src_gen;
    int r = read_at(c, pos, v, &m, &src_gen, NULL, 0); /* checks only: no room to copy to */
    if (r == -ENOMSG)
        return r;
    int e = consume_at(c, pos, v, &m, src_gen, sample);
    if (e < 0)
        return e;
    c->held[c->nheld++] = pos;
    *hdr = m;
    *ref = (const uint8_t *)sb__unit(c->bus, c->mb, pos) + SB_REC_HDR;
    return (int)m.len;
}

/* Take one matching message if there is one: length, -EAGAIN, -EMSGSIZE or -EBADMSG. */
static int try_take(shmbus_client *c, const struct want *w, struct shmbus_msg *hdr, void *buf,
                    size_t cap, bool sample)
{
    for (uint32_t tries = 0; tries <= c->bus->lay.ring_units; tries++) {
        uint64_t pos, v;
        int r = find_msg(c, w, &pos, &v);
        if (r < 0)
            return r;
        if (w->peek)
            r = peek_at(c, pos, v, hdr, buf, cap, w->look);
        else if (w->ref != NULL)
            r = lend_at(c, pos, v, hdr, w->ref, sample);
        else
            r = take_at(c, pos, v, hdr, buf, cap, sample);
        if (r == -ENOMSG)
            continue;
        if (r >= 0 && !w->peek) {
            if (pos == c->h && c->nheld == 0) {
                /* Taken at h: pass it at once (a DONE record behind it waits for the next
                 * walk). */
                zero_units(c->bus, c->mb, pos, SB_HW_UNITS(v));
                c->h = padd(pos, SB_HW_UNITS(v));
            } else {
                advance(c);
            }
            maybe_publish(c);
        }
        return r;
    }
    return -EAGAIN;
}

/* ---- dead writers ----------------------------------------------------------------------- */

/* Does a live client's intent name the claim at pos of mailbox mbox_id? */
static bool claimant_live(shmbus_bus *b, uint32_t mbox_id, uint64_t pos)
{
    for (uint32_t id = 1; id <= b->lay.max_clients; id++) {
        struct sb_entry *e = sb__entry(b, id);
        /* Acquire pairs with the release stores of state in shmbus_join() and the CAS to
         * CLEANING in cleanup_entry()/leave(): kind, pid and start_time agree. */
        uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        if (SB_ST_KIND(s) != SB_LIVE)
            continue; /* a CLEANING entry's intents are a dead writer's (or a leaver's, ended) */
        bool named = false;
        for (unsigned i = 0; i < SB_INTENTS; i++) {
            struct sb_intent *in = &e->intent[i];
            /* Acquire pairs with the release store n = 0 in commit() (the commit came
             * first); mbox and pos were published before the release CAS on tail in
             * claim(), which the caller acquired (or the header store after it). */
            uint32_t n = atomic_load_explicit(&in->n, memory_order_acquire);
            if (n == 0)
                continue;
            if (atomic_load_explicit(&in->mbox, memory_order_relaxed) == mbox_id &&
                (atomic_load_explicit(&in->pos, memory_order_relaxed) & SB_POS_MASK) == pos)
                named = true;
        }
        if (named && sb__entry_alive(e, s))
            return true;
    }
    return false;
}

/*
 * Skip the claim at h of mailbox mb if no live writer holds it (docs/mailbox-v2.md, 5,
 * "Stuck at h"): the consumer's (or a drain's) only write to a claim it does not own.
 * Returns 1 if skipped.
 */
static int skip_one(shmbus_bus *b, struct sb_mbox *mb, uint64_t h)
{
    uint64_t cap = b->lay.ring_units;
    /* Acquire pairs with the release store of the header in claim(): the intent stored
     * before the claim's CAS is visible. */
    uint64_t v = atomic_load_explicit(hw_at(b, mb, h), memory_order_acquire);
    uint64_t expect;
    uint32_t n;
    if (v != 0) {
        if (!hw_valid(b, v, h) || SB_HW_STATE(v) != SB_HW_CLAIMED)
            return 0;
        expect = v;
        n = SB_HW_UNITS(v);
    } else {
        /* Acquire pairs with the release CAS on tail in claim(): the claimer's intent. */
        uint64_t tw = atomic_load_explicit(&mb->tail, memory_order_acquire);
        uint64_t t = SB_TAIL_POS(tw);
        uint32_t l = SB_TAIL_LAST(tw);
        if (t == h || l == 0 || pdiff(t, h) > cap || pdiff(t, l) != h || idx_of(b, h) + l > cap)
            return 0; /* nothing claimed there, or garbage */
        expect = 0;
        n = l;
    }
    uint32_t mbox_id = mbox_id_of(b, mb);
    if (claimant_live(b, mbox_id, h))
        return 0; /* a live writer is waited for, however slow */
    /* The CAS fails if the writer stored its header or committed meanwhile; its lap makes it
     * exact. acq_rel: pairs with the acquire loads of hw in advance_from() and find_msg(),
     * and with the owner's failed commit CAS. */
    if (!atomic_compare_exchange_strong_explicit(hw_at(b, mb, h), &expect,
                                                 SB_HW(SB_HW_DONE, n, 0, lap_of(b, h)),
                                                 memory_order_acq_rel, memory_order_relaxed))
        return 0;
    sb__note_dropped(sb__entry(b, mbox_id), 1);
    note_passed(mb, 1); /* a dead batch counted k: resync() mends that when caught up */
    return 1;
}

/*
 * A blocked receiver's check: is the claim at h held by a dead writer? Asked when a wait
 * slice times out, and also when woken (woken = true) once h has been stuck for a whole
 * slice: a slow live sender whose commits keep waking us before the slice ends must not
 * hide a dead writer in front of them for longer than a slice.
 */
static void check_stuck(shmbus_client *c, bool woken)
{
    shmbus_bus *b = c->bus;
    struct sb_mbox *mb = c->mb;
    advance(c);
    uint64_t h = c->h;
    /* Acquire pairs with the release store of the header in claim() and the commit. */
    uint64_t v = atomic_load_explicit(hw_at(b, mb, h), memory_order_acquire);
    /* Acquire pairs with the release CAS on tail in claim(). */
    uint64_t t = SB_TAIL_POS(atomic_load_explicit(&mb->tail, memory_order_acquire));
    bool stuck = v != 0 ? SB_HW_STATE(v) == SB_HW_CLAIMED : t != h;
    if (!stuck) {
        c->stuck_ns = 0;
        return;
    }
    uint64_t now = sb__now_ns();
    if (c->stuck_ns == 0 || c->stuck_pos != h) {
        c->stuck_pos = h;
        c->stuck_ns = now;
        if (woken)
            return; /* most likely a live writer about to commit: look again later */
    } else if (woken && now - c->stuck_ns < (uint64_t)SB_SLICE_MS * 1000000ull) {
        return;
    }
    if (skip_one(b, mb, h)) {
        advance(c);
        publish(c, true); /* producers may wait on the chain rule behind the skipped claim */
    }
}

/* ---- lossy subscriptions: the pass lock (docs/mailbox-v2.md, 16) ------------------------ */

/*
 * May a taker of the pass lock replace its holder `cur`? A shedding publisher (walker bit)
 * that is no longer a current client (dead, left): anybody. The mailbox's own side (no
 * walker bit: a consumer, or a drain standing in for a dead or leaving one): only that side
 * (owner), which takes over from whatever its id left behind (a drain after the owner died,
 * the next owner of the id after a kept mailbox); a publisher never does. The one rule for
 * the three takers (consumer, drain, shedding publisher).
 */
static bool pass_replaceable(shmbus_bus *b, uint64_t cur, bool owner)
{
    if (!(cur & SB_PASS_WALKER))
        return owner;
    uint32_t id = SB_PASS_ID(cur);
    if (id < 1 || id > b->lay.max_clients)
        return true; /* garbage: nobody holds it */
    return !sb__client_current(b, id, SB_PASS_GEN(cur), true);
}

/*
 * Take mb's pass lock as `mine`. owner: the consumer side, which waits for a shedding
 * publisher to finish its walk (at most one ring), until `deadline` (a walker stopped by a
 * signal, or a scribbled word naming a live client, must not hold a receive past its
 * timeout); otherwise a publisher's try: false at once if anyone live holds it. Acquire (on
 * success) pairs with the release store of 0 in pass_unlock() by the previous holder: its
 * walk's zeroing, counters and head come first.
 */
static bool pass_lock(shmbus_bus *b, struct sb_mbox *mb, uint64_t mine, bool owner,
                      uint64_t deadline)
{
    for (uint32_t spins = 0;; spins++) {
        uint64_t cur = 0;
        /* Both CASes acquire: they pair with the release store in pass_unlock() of the
         * previous holder, so its passes, zeroed units and published head are seen. A
         * holder replaced as dead published nothing after its death: the ring's own
         * header checks cover what it left half done (docs/mailbox-v2.md, 16). */
        if (atomic_compare_exchange_strong_explicit(&mb->pass, &cur, mine, memory_order_acquire,
                                                    memory_order_relaxed))
            return true;
        /* The /proc look costs a system call: a live walker is done within microseconds,
         * so the owner looks only every 64 yields. */
        if ((!owner || (spins & 63) == 63 || !(cur & SB_PASS_WALKER)) &&
            pass_replaceable(b, cur, owner) &&
            atomic_compare_exchange_strong_explicit(&mb->pass, &cur, mine, memory_order_acquire,
                                                    memory_order_relaxed))
            return true;
        if (!owner || ((spins & 63) == 63 && sb__now_ns() >= deadline))
            return false;
        sched_yield();
    }
}

/* The consumer's wait for the pass lock: its receive's deadline, but at least a millisecond
 * (a walk takes microseconds: a receive with timeout 0 is not failed for one). */
static uint64_t pass_deadline(int timeout_ms)
{
    if (timeout_ms < 0)
        return UINT64_MAX;
    return sb__now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1) * 1000000ull;
}

static void pass_unlock(struct sb_mbox *mb)
{
    /* Release pairs with the acquire CAS in pass_lock() of the next holder. */
    atomic_store_explicit(&mb->pass, 0, memory_order_release);
}

/* Is c's mailbox lossy (its receive calls hold the pass lock)? One relaxed load of a
 * client-local word: what every receive of a client that never subscribed lossy pays. */
static inline bool pass_on(shmbus_client *c)
{
    return atomic_load_explicit(&c->lossy, memory_order_relaxed);
}

/* The consumer enters a receive call: take the pass lock (unless it kept it, holding lent
 * records), and start from head if a shedding publisher moved it meanwhile. 0, or
 * -ETIMEDOUT when a walker held it until the deadline (the receive fails with that). */
static int pass_enter(shmbus_client *c, uint64_t deadline)
{
    if (c->pass_held)
        return 0;
    shmbus_bus *b = c->bus;
    if (!pass_lock(b, c->mb, SB_PASS(c->id, c->gen), true, deadline))
        return -ETIMEDOUT;
    c->pass_held = true;
    /* We published head = h when we let go, and only walkers moved it since, forward, any
     * distance: start from it (start_pos() checks it against tail, the acquire in it pairs
     * with the walker's store in publish_at(): the units it passed are zeroed). The model's
     * -DNO_REREAD_HEAD shows why this is needed. */
    uint64_t h = start_pos(b, c->mb);
    if (h != c->h) {
        c->h = c->hpub = h;
        c->inherited = true; /* a walker that died may have left zeroed units above head */
    }
    return 0;
}

/* pass_enter() at the start of a receive call with timeout_ms: -EAGAIN for a receive that
 * must not wait, as if nothing were there (the walker is about to make room). */
static int pass_enter_call(shmbus_client *c, int timeout_ms)
{
    int r = pass_enter(c, pass_deadline(timeout_ms));
    return r == -ETIMEDOUT && timeout_ms == 0 ? -EAGAIN : r;
}

/* The consumer leaves a receive call (or is about to sleep): publish head = h, then let
 * shedding publishers in. Kept while records are lent (shmbus_recv_ref()): a walker would
 * pass them; and while a message peeked at waits for shmbus_consume(): what `shmbus recv`
 * printed is then always taken, never lost after all. */
static void pass_leave(shmbus_client *c)
{
    if (!c->pass_held || c->nheld != 0 || c->peek_valid)
        return;
    if (c->h != c->hpub)
        publish(c, false);
    c->pass_held = false;
    pass_unlock(c->mb);
}

/* May the READY record at p (header v) of dst's mailbox (generation gen) be shed: a topic
 * message of a group dst is a lossy member of? Its topic is in corr (SHMBUS_MSG_TOPIC). */
static bool sheddable(shmbus_bus *b, struct sb_mbox *mb, uint64_t p, uint32_t dst, uint32_t gen,
                      uint32_t *topic)
{
    const struct sb_rec *rc = sb__unit(b, mb, p);
    uint32_t sg = rc->src_gen;
    uint64_t k = rc->corr;
    if (!((sg >> 24) & SHMBUS_MSG_TOPIC) || k >= SB_GROUPS)
        return false;
    /* Relaxed: the membership word is the whole message, as in member_current(). */
    uint32_t m =
        atomic_load_explicit(&sb__group(b, (uint32_t)k)->member[dst - 1], memory_order_relaxed);
    *topic = (uint32_t)k;
    return (m & SB_MEMBER_LOSSY) && SB_MEMBER_GEN(m) == gen;
}

/*
 * A publisher of a lossy subscriber's topic found dst's mailbox full (docs/mailbox-v2.md,
 * 16): if nobody is consuming, walk from head as the consumer would, dropping the oldest
 * READY messages of dst's lossy topics (each counted lost) and passing DONE records, up to
 * the first record that may not be dropped (a direct message, a claim being written, a
 * topic dst did not subscribe to lossy); publish head there. Returns how many were dropped
 * (0: nothing freed, wait as before). Never called for a mailbox whose client did not
 * subscribe lossy, so only those pay.
 */
static uint64_t shed(shmbus_client *c, uint32_t dst, uint32_t gen, struct sb_mbox *mb)
{
    shmbus_bus *b = c->bus;
    if (!pass_lock(b, mb, SB_PASS(c->id, c->gen) | SB_PASS_WALKER, false, 0))
        return 0; /* its consumer is consuming (or another publisher sheds): room is coming */
    uint64_t h0 = start_pos(b, mb), w = h0, cap = b->lay.ring_units, lost = 0;
    struct sb_entry *e = sb__entry(b, dst);
    for (uint64_t steps = 0; steps < cap;) {
        /* Acquire pairs with the commit CAS in commit() (the fields we read are there) and
         * the header stores in claim(). */
        uint64_t v = atomic_load_explicit(hw_at(b, mb, w), memory_order_acquire);
        if (v == 0 || !hw_valid(b, v, w))
            break; /* the end, an unwritten claim, or a unit a dead walker zeroed: stop */
        uint32_t u = SB_HW_UNITS(v), topic;
        if (SB_HW_STATE(v) == SB_HW_READY) {
            if (!sheddable(b, mb, w, dst, gen, &topic))
                break;
            /* READY -> DONE by CAS: exactly one of this drop and a take (the lock already
             * keeps the consumer out; the CAS keeps it so without). acq_rel: pairs with
             * the acquire loads of hw in advance_from() and find_msg(). */
            uint64_t expect = v;
            if (!atomic_compare_exchange_strong_explicit(
                    hw_at(b, mb, w), &expect, (v & ~(uint64_t)3) | SB_HW_DONE, memory_order_acq_rel,
                    memory_order_relaxed))
                break;
            if (SB_HW_PRIO(v) > 0)
                atomic_fetch_sub_explicit(&mb->pending_hi, 1, memory_order_relaxed);
            note_passed(mb, 1);
            atomic_fetch_add_explicit(&e->lost, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&sb__group(b, topic)->lost, 1, memory_order_relaxed);
            lost++;
        } else if (SB_HW_STATE(v) != SB_HW_DONE) {
            break; /* CLAIMED: a writer (or a dead one, the consumer's to skip) */
        }
        zero_units(b, mb, w, u);
        w = padd(w, u);
        steps += u;
    }
    if (w != h0)
        publish_at(b, mb, w, true); /* also wakes other publishers waiting for room */
    pass_unlock(mb);
    return lost;
}

/* Sleep until a message may be there. 0 to look again, or an error. */
static int wait_data(shmbus_client *c, const struct want *w, uint64_t deadline)
{
    shmbus_bus *b = c->bus;
    struct sb_mbox *mb = c->mb;
    int r = sem_wait_slice(b, &mb->data_sem, deadline);
    atomic_store_explicit(&mb->sleeping, 0, memory_order_relaxed);
    /* Released before sleeping (a no-op when kept for a lent record). */
    if (pass_on(c) && pass_enter(c, deadline) < 0)
        return -ETIMEDOUT;
    if (sb__destroyed(b))
        return -EIDRM;
    if (r == -EINTR)
        return r;
    if (r == 0) {
        add_counter(&c->e->wakeups, 1);
        check_stuck(c, true);
        return 0;
    }
    check_stuck(c, false);
    sb__maybe_reap(b);
    if (w->reply_only) {
        struct sb_entry *e = sb__entry(b, w->from);
        /* Acquire pairs with the release stores of state in shmbus_join() and
         * cleanup_entry(): the start_time we check is the replier's. */
        uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        if (SB_ST_KIND(s) != SB_LIVE)
            return SB_ST_KIND(s) == SB_CLEANING ? -ECONNRESET : -EHOSTUNREACH;
        if (!sb__entry_alive(e, s))
            return -ECONNRESET;
    }
    if (sb__now_ns() >= deadline)
        return -ETIMEDOUT;
    return 0;
}

/*
 * The common receive, inline (docs/mailbox-v2.md, 5, "Fast path"): a READY record at h of
 * priority 0, no ACK, that fits in buf, with no record lent and no priority pending. The
 * same steps as find_msg() + read_at() + consume_at() + the pass at h in try_take(), with
 * the cases they handle for the general path left out; with ref, lend_at()'s instead of
 * the copy (shmbus_recv_ref()). Returns its length, or -EAGAIN for
 * "take the general path", having written nothing to the segment (*empty, if asked: because
 * nothing is there). `waited`: recv_common()'s spin, whose every message is a sample. Every field is read once
 * and checked before use; the general path reads them again and checks them again.
 */
HOT int recv_fast(shmbus_client *c, struct shmbus_msg *hdr, void *buf, size_t cap, const void **ref,
              bool waited, bool *empty)
{
    shmbus_bus *b = c->bus;
    struct sb_mbox *mb = c->mb;
    if (c->nheld != 0 || atomic_load_explicit(&mb->pending_hi, memory_order_relaxed) != 0 ||
        b->j != NULL) /* a durable bus takes the general path: consume_at()'s marker */
        return -EAGAIN;
    uint64_t h = c->h;
    const struct rv r = rv_of(b, mb);
    const struct sb_rec *rc = rv_rec(&r, h);
    /* Acquire pairs with the commit CAS in commit(): the fields and payload are visible. */
    uint64_t v = atomic_load_explicit(&rc->hw, memory_order_acquire);
    if (!rv_ready0(&r, v, h)) {
        if (empty != NULL)
            /* Nothing at h: unless a dead consumer before us left zeroed units here
             * (advance() steps over those), nothing to take. */
            *empty = v == 0 && !c->inherited;
        return -EAGAIN;
    }
    uint32_t u = SB_HW_UNITS(v);
    uint32_t len = rc->len, src = rc->src, sg = rc->src_gen;
    unsigned flags = (sg >> 24) & MSG_FLAGS;
    if ((flags & SLOW_FLAGS) || (ref == NULL && len > cap) || len > b->lay.msg_size ||
        len > u * SB_UNIT - SB_REC_HDR || src < 1 || src > b->lay.max_clients ||
        !our_gen(c, rc->dst_gen))
        return -EAGAIN; /* an ACK, a group message, too large, or to be dropped: general path */
    uint64_t sent_ns = rc->sent_ns;
    if (hdr != NULL)
        *hdr = (struct shmbus_msg){.src = src,
                                   .dst = c->id,
                                   .seq = rc->seq,
                                   .corr = rc->corr,
                                   .sent_ns = sent_ns,
                                   .len = len,
                                   .prio = 0,
                                   .flags = (uint8_t)flags};
    if (ref != NULL) {
        /* Lent in place (lend_at()): DONE, held, not passed until shmbus_recv_release().
         * Relaxed, as in mark_done(). */
        atomic_store_explicit(&rv_rec(&r, h)->hw, (v & ~(uint64_t)3) | SB_HW_DONE,
                              memory_order_relaxed);
        c->held[c->nheld++] = h;
        *ref = (const uint8_t *)rc + SB_REC_HDR;
    } else if (len != 0) {
        copy_payload(buf, (const uint8_t *)rc + SB_REC_HDR, len);
    }
    /* Taken at h: passed at once, as take_run() does, with no DONE store first. A consumer
     * that dies half-way through the zeroing leaves a READY header over zeroed words, but
     * only a drain ever consumes after a dead consumer, and it drops READY records. */
    if (ref == NULL) {
        rv_zero(&r, h, u);
        h = padd(h, u);
        c->h = h;
    }
    note_passed(mb, 1);
    /* The histogram's sample, as recv_common(): every message waited for, else one in 16. */
    bool sample = waited || (c->recv_count++ & 15) == 0;
    count_taken(c, src, 1, len, sample ? sent_ns : 0);
    maybe_publish_at(c, &r, h);
    return (int)len;
}

static int recv_common(shmbus_client *c, const struct want *w, struct shmbus_msg *hdr, void *buf,
                       size_t cap, int timeout_ms)
{
    shmbus_bus *b = c->bus;
    struct sb_mbox *mb = c->mb;
    /* The latency histogram samples one message in 16 found at once (a clock read costs
     * about as much as the rest of a receive), and every message that was waited for. */
    bool sample = (c->recv_count++ & 15) == 0;
    c->jdl = timeout_ms < 0 ? UINT64_MAX : 0; /* until the clock is read, below */
    int r = try_take(c, w, hdr, buf, cap, sample);
    if (r != -EAGAIN)
        return r;
    /* Nothing there: publish what we passed (senders may wait on it), and only now read
     * the clock for the deadline and the spin budget. */
    if (c->h != c->hpub)
        publish(c, false);
    uint64_t deadline;
    deadline_of(timeout_ms, &deadline);
    if (timeout_ms > 0)
        c->jdl = deadline; /* the taken markers' wait for the journal's lock (journal.c) */
    uint64_t spin_until = c->spin_ns ? sb__now_ns() + c->spin_ns : 0;
    bool spinning = false;
    uint32_t spins = 0;
    const bool plain = !w->peek && !w->reply_only; /* what recv_fast() can take */
    for (;;) {
        /* A spinning receiver's look: recv_fast() while the message at h is a common one,
         * the general path only when something is there that it leaves alone. */
        bool empty = false;
        r = plain ? recv_fast(c, hdr, buf, cap, w->ref, true, &empty) : -EAGAIN;
        if (r == -EAGAIN && !empty)
            r = try_take(c, w, hdr, buf, cap, true);
        if (r != -EAGAIN) {
            if (spinning && r >= 0)
                add_counter(&c->e->spins, 1);
            return r;
        }
        if (sb__destroyed(b))
            return -EIDRM;
        if (timeout_ms == 0)
            return -EAGAIN;
        /* After every wake-up, whatever woke us: a scribbled semaphore must not buy time. */
        if (timeout_ms > 0 && spin_until == 0 && sb__now_ns() >= deadline)
            return -ETIMEDOUT;
        if (spin_until != 0) {
            /* One pause per look: a pause costs up to ~60 cycles on recent cores, so a run
             * of them would add that much to every message found while spinning. The clock
             * is read only every 32 looks. */
            spinning = true;
            sb__cpu_relax();
            if ((++spins & 31) != 0 || sb__now_ns() < spin_until)
                continue;
            spin_until = 0;
            spinning = false;
        }
        atomic_store_explicit(&mb->sleeping, 1, memory_order_relaxed);
        /* Dekker pair with the producer's seq_cst commit CAS then load of sleeping in
         * commit()/wake_consumer(): either we see the commit below or it sees the flag. */
        sb__full_fence();
        r = try_take(c, w, hdr, buf, cap, true);
        if (r != -EAGAIN) {
            atomic_store_explicit(&mb->sleeping, 0, memory_order_relaxed);
            return r;
        }
        /* About to sleep: publish, and let every blocked producer in (and shedding ones:
         * pass_leave(); wait_data() takes the lock again). */
        publish(c, true);
        pass_leave(c);
        r = wait_data(c, w, deadline);
        if (r < 0)
            return r;
    }
}

/* recv_common(), holding the pass lock if c subscribed lossy: the general receive of
 * shmbus_peek() and shmbus_request(). */
static int recv_common_pass(shmbus_client *c, const struct want *w, struct shmbus_msg *hdr,
                            void *buf, size_t cap, int timeout_ms)
{
    if (!pass_on(c))
        return recv_common(c, w, hdr, buf, cap, timeout_ms);
    int r = pass_enter_call(c, timeout_ms);
    if (r < 0)
        return r;
    r = recv_common(c, w, hdr, buf, cap, timeout_ms);
    pass_leave(c);
    return r;
}

/* shmbus_recv() of a client that subscribed lossy: the same, holding the pass lock. */
static __attribute__((noinline)) int recv_lossy(shmbus_client *c, struct shmbus_msg *hdr, void *buf,
                                                size_t cap, int timeout_ms)
{
    int r = pass_enter_call(c, timeout_ms);
    if (r < 0)
        return r;
    r = recv_fast(c, hdr, buf, cap, NULL, false, NULL);
    if (r == -EAGAIN) {
        struct want w = {0};
        r = recv_common(c, &w, hdr, buf, cap, timeout_ms);
    }
    pass_leave(c);
    return r;
}

int shmbus_recv(shmbus_client *c, struct shmbus_msg *hdr, void *buf, size_t cap, int timeout_ms)
{
    if (c == NULL || (buf == NULL && cap != 0))
        return -EINVAL;
    if (pass_on(c))
        return recv_lossy(c, hdr, buf, cap, timeout_ms);
    int r = recv_fast(c, hdr, buf, cap, NULL, false, NULL);
    if (r != -EAGAIN)
        return r;
    struct want w = {0};
    return recv_common(c, &w, hdr, buf, cap, timeout_ms);
}

int shmbus_peek(shmbus_client *c, struct shmbus_msg *hdr, void *buf, size_t cap, int timeout_ms)
{
    if (c == NULL || (buf == NULL && cap != 0))
        return -EINVAL;
    struct want w = {.peek = true};
    c->peek_valid = false;
    return recv_common_pass(c, &w, hdr, buf, cap, timeout_ms);
}

static int consume_peeked(shmbus_client *c);

int shmbus_consume(shmbus_client *c)
{
    if (c == NULL)
        return -EINVAL;
    if (!pass_on(c))
        return consume_peeked(c);
    /* The lock was kept since the peek (pass_leave()): nothing was shed meanwhile. */
    int r = pass_enter(c, UINT64_MAX);
    if (r < 0)
        return r;
    r = consume_peeked(c);
    pass_leave(c);
    return r;
}

static int consume_peeked(shmbus_client *c)
{
    if (!c->peek_valid)
        return -ENOMSG;
    c->jdl = 0; /* does not wait: the journal's lock only for its grace (journal.c) */
    c->peek_valid = false;
    shmbus_bus *b = c->bus;
    if (sb__destroyed(b))
        return -EIDRM;
    uint64_t pos = c->peek_pos;
    const struct sb_rec *rc = sb__unit(b, c->mb, pos);
    /* Still the READY record peek_at() copied: only this thread takes from the mailbox, and
     * a drain or a recv in between would have marked it DONE or zeroed it. Acquire pairs
     * with the commit CAS in commit(). The record's own fields guard against a scribbled
     * header word. */
    uint64_t v = atomic_load_explicit(hw_at(b, c->mb, pos), memory_order_acquire);
    if (v != c->peek_hw || rc->seq != c->peek_msg.seq || rc->src != c->peek_msg.src)
        return -ENOMSG;
    int r = consume_at(c, pos, v, &c->peek_msg, c->peek_src_gen, (c->recv_count++ & 15) == 0);
    if (r < 0) {
        c->peek_valid = true; /* still there: consume may be tried again (after shmbus_done()
                               * when the in-flight table was full) */
        return r;
    }
    advance(c);
    maybe_publish(c);
    return 0;
}

/* A durable batch: add (src, src_gen, seq) to the taken runs, extending the last run when
 * it is the next seq of the same sender. false when a new run does not fit. */
static bool run_add(struct sb_taken_run *runs, size_t *n, uint32_t src, uint32_t src_gen,
                    uint64_t seq)
{
    struct sb_taken_run *l = *n ? &runs[*n - 1] : NULL;
    if (l != NULL && l->src == src && l->src_gen == src_gen && l->seq + l->count == seq &&
        l->count < UINT32_MAX) {
        l->count++;
        return true;
    }
    if (*n == SB_TAKEN_RUNS)
        return false;
    runs[(*n)++] = (struct sb_taken_run){.src = src, .src_gen = src_gen, .seq = seq, .count = 1};
    return true;
}

/* A batch's counting: the messages taken from one sender in a row, counted as one run. */
struct tally {
    uint32_t src;
    uint64_t n, bytes;
};

static inline __attribute__((always_inline)) void tally_flush(shmbus_client *c, struct tally *t)
{
    if (t->n != 0)
        count_taken(c, t->src, t->n, t->bytes, 0);
    t->n = t->bytes = 0;
}

static inline __attribute__((always_inline)) void tally_add(shmbus_client *c, struct tally *t,
                                                            uint32_t src, uint32_t len)
{
    if (t->n != 0 && src != t->src)
        tally_flush(c, t);
    t->src = src;
    t->n++;
    t->bytes += len;
}

/*
 * The fast path of a batch: take the run of committed messages at h, in order, while no
 * message of a higher priority is pending. One update of each counter per run instead of
 * per message, and head is published once by the caller. Stops (leaving the rest to the
 * general path) at anything unusual: a priority, an ACK, a message larger than `stride`.
 *
 * On a durable bus the run is taken in two passes: the first copies the messages out and
 * changes nothing in the ring; then one write of taken markers covers them all (one per
 * run of consecutive seqs of a sender, sb__journal_taken_runs()); only then the second
 * pass passes them. The order is consume_at()'s (marker, then DONE), for a whole batch:
 * if the marker write fails, nothing was taken and the general path reports the error.
 * Between the passes the records in [h0, h) cannot change: READY and DONE records at and
 * after h are changed only by their consumer, which is us.
 */
HOT size_t take_run_as(shmbus_client *c, struct shmbus_msg *hdrs, uint8_t *bufs, size_t stride,
                      size_t n, const bool durable)
{
    shmbus_bus *b = c->bus;
    struct sb_mbox *mb = c->mb;
    struct sb_taken_run runs[SB_TAKEN_RUNS]; /* durable: the markers of the batch */
    size_t nruns = 0;
    if (atomic_load_explicit(&mb->pending_hi, memory_order_relaxed) > 0)
        return 0;
    if (advance(c) < 0)
        return 0;
    bool held = c->nheld != 0;
    uint64_t stop = held ? oldest_held(c) : 0;
    uint64_t h = c->h, h0 = h, dropped = 0;
    struct tally tl = {0};
    const struct rv r = rv_of(b, mb);
    const uint32_t msg_size = b->lay.msg_size, max_clients = b->lay.max_clients;
    const uint32_t id = c->id, gen = c->gen, kept_gen = c->kept_gen;
    size_t got = 0;
    while (got < n && pdiff(h, h0) < r.units && !(held && h == stop)) {
        struct sb_rec *rc = rv_rec(&r, h);
        /* Acquire pairs with the commit CAS in commit(). */
        uint64_t v = atomic_load_explicit(&rc->hw, memory_order_acquire);
        uint32_t u = SB_HW_UNITS(v);
        if (!rv_ready0(&r, v, h)) { /* not the common record: passed if DONE, else we stop */
            if (!rv_valid(&r, v, h) || SB_HW_STATE(v) != SB_HW_DONE)
                break;
            if (!durable)
                rv_zero(&r, h, u);
            h = padd(h, u);
            continue;
        }
        uint32_t len = rc->len, src = rc->src, sg = rc->src_gen;
        unsigned flags = (sg >> 24) & MSG_FLAGS;
        if ((flags & SLOW_FLAGS) || len > stride)
            break;
        uint32_t dg = rc->dst_gen;
        if (len > msg_size || len > u * SB_UNIT - SB_REC_HDR || src < 1 || src > max_clients ||
            !(dg == gen || (kept_gen != 0 && dg == kept_gen))) { /* our_gen(), on copies */
            dropped++;
        } else if (durable && !run_add(runs, &nruns, src, sg & 0xffffffu, rc->seq)) {
            break; /* the batch's markers are full: the rest waits for the next call */
        } else {
            struct shmbus_msg *m = &hdrs[got];
            m->src = src;
            m->dst = id;
            m->seq = rc->seq;
            m->corr = rc->corr;
            m->sent_ns = rc->sent_ns;
            m->len = len;
            m->prio = 0;
            m->flags = (uint8_t)flags;
            copy_payload(bufs + got * stride, (uint8_t *)rc + SB_REC_HDR, len);
            if (!durable)
                tally_add(c, &tl, src, len);
            got++;
        }
        /* Zeroed as it is passed, record by record (each last to first): a consumer that
         * dies here leaves zeroed records below intact ones, never the other way round, so
         * its successor's steps over zero units (zero_step(), only before its first real
         * header) reach every record after them. */
        if (!durable)
            rv_zero(&r, h, u);
        h = padd(h, u);
    }
    if (durable) {
        if (got != 0 && sb__journal_taken_runs(c, runs, nruns) < 0)
            return 0; /* nothing taken: the ring is as it was */
        for (uint64_t p = h0; p != h;) {
            /* Relaxed: the first pass acquired these very values, unchanged since. */
            uint32_t u =
                SB_HW_UNITS(atomic_load_explicit(&rv_rec(&r, p)->hw, memory_order_relaxed));
            rv_zero(&r, p, u);
            p = padd(p, u);
        }
        for (size_t i = 0; i < got; i++)
            tally_add(c, &tl, hdrs[i].src, hdrs[i].len);
    }
    tally_flush(c, &tl);
    c->h = h;
    if (got + dropped != 0)
        note_passed(mb, got + dropped);
    if (dropped != 0)
        add_counter(&c->e->dropped, dropped);
    return got;
}

/* take_run_as(), compiled once for each kind of bus: the walk of an in-memory bus carries no
 * test of durability per message. */
static size_t take_run(shmbus_client *c, struct shmbus_msg *hdrs, uint8_t *bufs, size_t stride,
                       size_t n)
{
    if (c->bus->j != NULL)
        return take_run_as(c, hdrs, bufs, stride, n, true);
    return take_run_as(c, hdrs, bufs, stride, n, false);
}

static int recv_batch(shmbus_client *c, struct shmbus_msg *hdrs, void *bufs, size_t stride,
                      size_t n, int timeout_ms);

/* Wait until a message can be taken, as shmbus_peek() does, leaving the caller's own peek
 * (for shmbus_consume()) as it was. Its length, or the error a receive would return. */
static int wait_ready_msg(shmbus_client *c, struct shmbus_msg *hdr, void *buf, size_t cap,
                          int timeout_ms)
{
    const struct want w = {.peek = true, .look = true};
    return recv_common(c, &w, hdr, buf, cap, timeout_ms);
}

int shmbus_recv_batch(shmbus_client *c, struct shmbus_msg *hdrs, void *bufs, size_t stride,
                      size_t n, int timeout_ms)
{
    if (c == NULL || hdrs == NULL || bufs == NULL || n == 0)
        return -EINVAL;
    if (!pass_on(c))
        return recv_batch(c, hdrs, bufs, stride, n, timeout_ms);
    int r = pass_enter_call(c, timeout_ms);
    if (r < 0)
        return r;
    r = recv_batch(c, hdrs, bufs, stride, n, timeout_ms);
    pass_leave(c);
    return r;
}

static int recv_batch(shmbus_client *c, struct shmbus_msg *hdrs, void *bufs, size_t stride,
                      size_t n, int timeout_ms)
{
    struct want w = {0};
    uint8_t *out = bufs;
    c->jdl = timeout_ms < 0 ? UINT64_MAX : 0; /* journal.c's lock wait: at least its grace */
    size_t got = take_run(c, hdrs, out, stride, n);
    if (got == 0 && c->bus->j != NULL) {
        /* A durable bus: wait for a message without taking it (a peek writes nothing),
         * then take the run that starts with it under one marker write, rather than the
         * first message alone under a marker of its own and the rest under another. */
        int r = wait_ready_msg(c, &hdrs[0], out, stride, timeout_ms);
        if (r < 0)
            return r;
        got = take_run(c, hdrs, out, stride, n);
        timeout_ms = 0; /* there is one: if the run did not take it, the general path will */
    }
    if (got == 0) {
        /* Nothing ready (or something unusual first): wait for one the general way. */
        int r = recv_common(c, &w, &hdrs[0], out, stride, timeout_ms);
        if (r < 0)
            return r;
        got = 1;
        got += take_run(c, hdrs + 1, out + stride, stride, n - 1);
    }
    while (got < n) {
        uint64_t pos, v;
        if (find_msg(c, &w, &pos, &v) != 0)
            break;
        int r = take_at(c, pos, v, &hdrs[got], out + got * stride, stride, false);
        if (r == -ENOMSG)
            continue;
        if (r < 0)
            break;
        got++;
    }
    advance(c);
    if (c->h != c->hpub)
        publish(c, false);
    return (int)got;
}

int shmbus_request(shmbus_client *c, uint32_t dst, const void *req, size_t len,
                   struct shmbus_msg *rhdr, void *rbuf, size_t cap, unsigned flags, int timeout_ms)
{
    int r = check_send_args(c, len, flags, SHMBUS_SEND_NONBLOCK, true);
    if (r < 0)
        return r;
    if ((req == NULL && len != 0) || (rbuf == NULL && cap != 0))
        return -EINVAL;
    uint64_t deadline, seq;
    deadline_of(timeout_ms, &deadline);
    r = send_one(c, dst, req, len, shmbus_flags_prio(flags), flags, SHMBUS_MSG_REQUEST, 0, deadline,
                 &seq);
    if (r < 0)
        return r;
    struct want w = {.reply_only = true, .from = dst, .corr = seq};
    uint64_t now = sb__now_ns();
    int left;
    if (timeout_ms < 0)
        left = -1;
    else
        left = deadline > now ? (int)((deadline - now + 999999) / 1000000) : 0;
    return recv_common_pass(c, &w, rhdr, rbuf, cap, left);
}

int shmbus_reply(shmbus_client *c, const struct shmbus_msg *req, const void *data, size_t len,
                 unsigned flags, int timeout_ms)
{
    if (req == NULL || !(req->flags & SHMBUS_MSG_REQUEST))
        return -EINVAL;
    /* No SHMBUS_PRIO(): a reply travels at its request's priority. */
    int r = check_send_args(c, len, flags, SHMBUS_SEND_NONBLOCK, false);
    if (r < 0)
        return r;
    if (data == NULL && len != 0)
        return -EINVAL;
    uint64_t deadline = send_deadline(timeout_ms);
    return send_one(c, req->src, data, len, req->prio & 7, flags, SHMBUS_MSG_REPLY, req->seq,
                    deadline, NULL);
}

/* ---- zero-copy loans ------------------------------------------------------------------ */

_Static_assert(SHMBUS_INTENTS == SB_INTENTS, "the header states the library's count");

#define LOAN_MAGIC 0x4c4f414e00000000ull /* "LOAN": an open loan's priv_[3] with the client */

/* The library's part of a loan: where, how big, which intent record, to whom. */
static uint64_t loan_tag(const shmbus_client *c)
{
    return LOAN_MAGIC ^ (uint64_t)(uintptr_t)c;
}

int shmbus_loan(shmbus_client *c, uint32_t dst, size_t len, unsigned flags, int timeout_ms,
                struct shmbus_loan *loan)
{
    if (loan == NULL)
        return -EINVAL;
    memset(loan, 0, sizeof(*loan));
    int r = check_send_args(c, len, flags, SHMBUS_SEND_NONBLOCK, true);
    if (r < 0)
        return r;
    unsigned prio = shmbus_flags_prio(flags);
    shmbus_bus *b = c->bus;
    if (b->j != NULL)
        return -EOPNOTSUPP; /* a durable bus journals a copy; a loan writes in place */
    uint32_t gen;
    r = sb__dest_state(b, dst, &gen);
    if (r < 0)
        return r;
    uint64_t deadline = send_deadline(timeout_ms);
    uint32_t units = sb__rec_units(len);
    unsigned i;
    uint64_t pos, cw;
    struct sb_mbox *mb = sb__mbox(b, dst);
    struct sb_rec *rec;
    r = claim_wait(c, dst, gen, mb, &units, 1, prio, flags, deadline, true, &i, &pos, &cw, &rec);
    if (r < 0)
        return r;
    sb__tp(SB_TP_RESERVED); /* test-only: claimed, not yet filled */
    loan->data = (uint8_t *)rec + SB_REC_HDR;
    loan->cap = len;
    loan->priv_[0] = pos;
    loan->priv_[1] = (uint64_t)dst | (uint64_t)gen << 32;
    loan->priv_[2] = (uint64_t)SB_HW_UNITS(cw) | (uint64_t)i << 32 | (uint64_t)prio << 40;
    loan->priv_[3] = loan_tag(c);
    return 0;
}

/* Check and close an open loan of c: its fields, or -EINVAL. */
static int loan_take(shmbus_client *c, struct shmbus_loan *loan, uint64_t *pos, uint32_t *dst,
                     uint32_t *gen, uint32_t *total, unsigned *ii, unsigned *prio)
{
    if (c == NULL || loan == NULL || loan->priv_[3] != loan_tag(c))
        return -EINVAL;
    *pos = loan->priv_[0];
    *dst = (uint32_t)loan->priv_[1];
    *gen = (uint32_t)(loan->priv_[1] >> 32);
    *total = (uint32_t)loan->priv_[2];
    *ii = (unsigned)(loan->priv_[2] >> 32) & 0xffu;
    *prio = (unsigned)(loan->priv_[2] >> 40) & 7u;
    if (*dst < 1 || *dst > c->bus->lay.max_clients || *ii >= SB_INTENTS ||
        !(atomic_load_explicit(&c->intent_busy, memory_order_relaxed) & (1u << *ii)))
        return -EINVAL;
    loan->priv_[3] = 0;
    return 0;
}

int shmbus_loan_commit(shmbus_client *c, struct shmbus_loan *loan, size_t used)
{
    if (loan == NULL || used > loan->cap)
        return -EINVAL;
    uint64_t pos;
    uint32_t dst, gen, total;
    unsigned i, prio;
    int r = loan_take(c, loan, &pos, &dst, &gen, &total, &i, &prio);
    if (r < 0)
        return r;
    shmbus_bus *b = c->bus;
    struct sb_mbox *mb = sb__mbox(b, dst);
    uint64_t seq = atomic_fetch_add_explicit(&c->e->sent, 1, memory_order_relaxed) + 1;
    sb__stats_sent(c->row, 1, used);
    if (prio > 0) /* release pairs with the acquire load in find_msg(), as in send_rec() */
        atomic_fetch_add_explicit(&mb->pending_hi, 1, memory_order_release);
    struct sb_rec *rec = sb__unit(b, mb, pos);
    write_rec(rec, c, gen, NULL, used, 0, prio, seq, 0, sb__now_ns());
    loan->data = NULL;
    return commit(c, mb, rec, i, SB_HW(SB_HW_CLAIMED, total, prio, lap_of(b, pos)), total);
}

int shmbus_loan_cancel(shmbus_client *c, struct shmbus_loan *loan)
{
    uint64_t pos;
    uint32_t dst, gen, total;
    unsigned i, prio;
    int r = loan_take(c, loan, &pos, &dst, &gen, &total, &i, &prio);
    if (r < 0)
        return r;
    loan->data = NULL;
    return cancel_claim(c, sb__mbox(c->bus, dst), i, pos, total, prio, 1);
}

int shmbus_recv_ref(shmbus_client *c, struct shmbus_msg *hdr, const void **data, int timeout_ms)
{
    if (c == NULL || hdr == NULL || data == NULL)
        return -EINVAL;
    if (c->nheld >= SB_HELD)
        return -EBUSY;
    bool lossy = pass_on(c);
    int r = lossy ? pass_enter_call(c, timeout_ms) : 0; /* kept while the record is lent */
    if (r < 0)
        return r;
    r = recv_fast(c, hdr, NULL, 0, data, false, NULL);
    if (r == -EAGAIN) {
        struct want w = {.ref = data};
        r = recv_common(c, &w, hdr, NULL, 0, timeout_ms);
    }
    if (lossy)
        pass_leave(c);
    return r;
}

int shmbus_recv_release(shmbus_client *c, const void *data)
{
    if (c == NULL || data == NULL)
        return -EINVAL;
    for (uint32_t i = 0; i < c->nheld; i++) {
        if ((const uint8_t *)sb__unit(c->bus, c->mb, c->held[i]) + SB_REC_HDR != data)
            continue;
        c->held[i] = c->held[--c->nheld];
        advance(c);
        maybe_publish(c);
        pass_leave(c); /* the last lent record back: shedding publishers may walk again */
        return 0;
    }
    return -EINVAL;
}

/* ---- owners, leavers and cleaners ------------------------------------------------------- */

void sb__mbox_skip_intents(shmbus_bus *b, struct sb_entry *dead)
{
    for (unsigned i = 0; i < SB_INTENTS; i++) {
        struct sb_intent *in = &dead->intent[i];
        /* Acquire pairs with the release store n = 0 in commit(). */
        uint32_t n = atomic_load_explicit(&in->n, memory_order_acquire);
        if (n == 0)
            continue;
        uint32_t m = atomic_load_explicit(&in->mbox, memory_order_relaxed);
        /* Release pairs with the acquire load of n in claimant_live(). The claim itself is
         * skipped by its mailbox's consumer (cleaners never write ring words): wake it. */
        atomic_store_explicit(&in->n, 0, memory_order_release);
        if (m >= 1 && m <= b->lay.max_clients)
            sb__sem_post(&sb__mbox(b, m)->data_sem);
    }
}

/* The ring is garbage (head or tail fail their checks): start it again, empty, at tail.
 * Only a hostile peer gets here; messages in flight may be lost, nothing worse. */
static uint64_t reset_ring(shmbus_bus *b, struct sb_mbox *mb)
{
    /* Acquire pairs with the release CAS on tail in claim(). */
    uint64_t t = SB_TAIL_POS(atomic_load_explicit(&mb->tail, memory_order_acquire));
    for (uint64_t p = 0; p < b->lay.ring_units; p++)
        atomic_store_explicit(hw_at(b, mb, p), 0, memory_order_relaxed);
    publish_at(b, mb, t, true);
    return t;
}

/* The published head of mb, checked against tail; a bad one resets the ring. */
static uint64_t start_pos(shmbus_bus *b, struct sb_mbox *mb)
{
    /* Acquire pairs with the seq_cst store of head in publish_at() by the previous
     * consumer; tail's with the release CAS in claim(). */
    uint64_t h = atomic_load_explicit(&mb->head, memory_order_acquire);
    uint64_t t = SB_TAIL_POS(atomic_load_explicit(&mb->tail, memory_order_acquire));
    if (h > SB_POS_MASK || pdiff(t, h) > b->lay.ring_units)
        return reset_ring(b, mb);
    return h;
}

void sb__mbox_attach(shmbus_client *c)
{
    mbox_warm(c->bus, c->id);
    c->hcache = calloc(c->bus->lay.max_clients, sizeof(*c->hcache)); /* NULL: no cache */
    c->h = c->hpub = start_pos(c->bus, c->mb);
    c->inherited = true; /* a dead predecessor may have left zeroed units above head */
}

void sb__mbox_publish(shmbus_client *c)
{
    /* Kept: the drain or the next owner of the id takes it over. A walker that holds it
     * for a whole second (stopped by a signal mid-walk) is not waited for: leaving must
     * end; the ring's checks make what it then finds fail cleanly. */
    if (pass_on(c))
        pass_enter(c, sb__now_ns() + 1000000000ull);
    c->nheld = 0; /* leaving gives back what recv_ref lent */
    advance(c);
    publish(c, true);
}

/* A READY record at h that a drain asks fn about: its fields loaded once and checked, as in
 * read_at(). 1 (drop), 0 (fn took care of it) or < 0 (stop), as fn says; 1 if it fails the
 * checks. */
static int drain_ask(shmbus_bus *b, struct sb_mbox *mb, uint64_t h, uint64_t v, sb__drain_fn fn,
                     void *arg)
{
    const struct sb_rec *rc = sb__unit(b, mb, h);
    uint32_t len = rc->len, src = rc->src, sg = rc->src_gen, dst_gen = rc->dst_gen;
    uint64_t room = (uint64_t)SB_HW_UNITS(v) * SB_UNIT - SB_REC_HDR;
    if (len > b->lay.msg_size || len > room || src < 1 || src > b->lay.max_clients)
        return 1;
    struct shmbus_msg m = {
        .src = src,
        .dst = mbox_id_of(b, mb),
        .seq = rc->seq,
        .corr = rc->corr,
        .sent_ns = rc->sent_ns,
        .len = len,
        .prio = (uint8_t)SB_HW_PRIO(v),
        .flags = (uint8_t)((sg >> 24) & MSG_FLAGS),
    };
    return fn(arg, &m, sg & 0xffffffu, dst_gen, (const uint8_t *)rc + SB_REC_HDR);
}

uint64_t sb__mbox_drain(shmbus_bus *b, struct sb_mbox *mb)
{
    return sb__mbox_drain_each(b, mb, NULL, NULL, NULL);
}

uint64_t sb__mbox_drain_each(shmbus_bus *b, struct sb_mbox *mb, sb__drain_fn fn, void *arg,
                             bool *stopped)
{
    /* The consumer's side of the pass lock, as the dead or leaving owner's stand-in: no
     * shedding publisher walks the ring while we do. */
    bool locked = pass_lock(b, mb, SB_PASS(mbox_id_of(b, mb), 0), true,
                            sb__now_ns() + 1000000000ull); /* as in sb__mbox_publish() */
    uint64_t h = start_pos(b, mb), n = 0, cap = b->lay.ring_units;
    for (uint64_t steps = 0; steps < 2 * cap; steps++) {
        if (advance_from(b, mb, &h, NULL, NULL) < 0) {
            h = reset_ring(b, mb);
            break;
        }
        /* Acquire pairs with the commit CAS in commit() and the header store in claim(). */
        uint64_t v = atomic_load_explicit(hw_at(b, mb, h), memory_order_acquire);
        if (SB_HW_STATE(v) == SB_HW_READY) {
            int k = fn != NULL ? drain_ask(b, mb, h, v, fn, arg) : 1;
            if (k < 0) {
                *stopped = true;
                break; /* left READY at h: the next drain starts with it */
            }
            /* Relaxed: we are the consumer now (the caller owns the entry). A salvager that
             * dies after fn redelivered the record and before this store has it
             * redelivered again by the next one: a duplicate, never a loss. */
            atomic_store_explicit(hw_at(b, mb, h), (v & ~(uint64_t)3) | SB_HW_DONE,
                                  memory_order_relaxed);
            note_passed(mb, 1);
            n += (uint64_t)k;
            continue;
        }
        if (!skip_one(b, mb, h))
            break; /* the end, or a live writer's claim: the next consumer gets the rest */
    }
    publish_at(b, mb, h, true);
    /* Acquire pairs with the release CAS on tail in claim(). */
    if (SB_TAIL_POS(atomic_load_explicit(&mb->tail, memory_order_acquire)) == h)
        atomic_store_explicit(&mb->pending_hi, 0, memory_order_relaxed);
    else if (fn != NULL)
        *stopped = true; /* a live writer's claim: what it commits must be asked about too */
    if (locked)
        pass_unlock(mb);
    return n;
}

/*
 * Walk the committed records of mailbox mb from its published head as a consumer would,
 * stepping over a dead consumer's zeroed units, up to the first record not committed yet
 * (or the first invalid header): fn(rec, state, arg) for each, until it returns true. Only
 * for whoever is the mailbox's consumer now: a leaver, or a cleaner of its dead owner (the
 * entry CLEANING). Returns whether fn stopped the walk.
 */
static bool walk_committed(shmbus_bus *b, struct sb_mbox *mb,
                           bool (*fn)(struct sb_rec *rc, unsigned state, void *arg), void *arg)
{
    uint64_t p = start_pos(b, mb), cap = b->lay.ring_units;
    for (uint64_t steps = 0; steps < cap;) {
        /* Acquire pairs with the commit CAS in commit(): the record's fields are written. */
        uint64_t v = atomic_load_explicit(hw_at(b, mb, p), memory_order_acquire);
        if (v == 0) {
            int z = zero_step(b, mb, p);
            if (z == 0)
                break;
            if (z == 1) {
                p = padd(p, 1);
                steps++;
            }
            continue;
        }
        if (!hw_valid(b, v, p) || SB_HW_STATE(v) == SB_HW_CLAIMED)
            break;
        if (fn(sb__unit(b, mb, p), SB_HW_STATE(v), arg))
            return true;
        p = padd(p, SB_HW_UNITS(v));
        steps += SB_HW_UNITS(v);
    }
    return false;
}

struct restamp {
    uint32_t from, to;
};

static bool restamp_one(struct sb_rec *rc, unsigned state, void *arg)
{
    const struct restamp *g = arg;
    /* A READY record belongs to the consumer (the caller) until it takes it; the release
     * store of FREE in leave() or cleanup_entry() publishes the new stamp. */
    if (state == SB_HW_READY && rc->dst_gen == g->from)
        rc->dst_gen = g->to;
    return false;
}

void sb__mbox_restamp(shmbus_bus *b, struct sb_mbox *mb, uint32_t from_gen, uint32_t to_gen)
{
    struct restamp g = {from_gen, to_gen};
    walk_committed(b, mb, restamp_one, &g);
}

static bool is_group(struct sb_rec *rc, unsigned state, void *arg)
{
    (void)arg;
    return state == SB_HW_READY && ((rc->src_gen >> 24) & SHMBUS_MSG_GROUP) != 0;
}

bool sb__mbox_holds_group(shmbus_bus *b, struct sb_mbox *mb)
{
    return walk_committed(b, mb, is_group, NULL);
}

uint32_t sb__mbox_depth(shmbus_bus *b, uint32_t id)
{
    struct sb_mbox *mb = sb__mbox(b, id);
    /* Counters, not a walk of the ring: a reader that is not the consumer must not read
     * ring words, which producers of a later lap may be writing. */
    int64_t d = (int64_t)(atomic_load_explicit(&mb->claimed, memory_order_relaxed) -
                          atomic_load_explicit(&mb->passed, memory_order_relaxed));
    if (d < 0)
        return 0;
    return d > (int64_t)b->lay.ring_units ? b->lay.ring_units : (uint32_t)d;
}

uint32_t sb__mbox_capacity(const shmbus_bus *b)
{
    return b->lay.ring_units / sb__rec_units(b->lay.msg_size);
}
