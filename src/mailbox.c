/*
 * mailbox.c - sending into and taking from mailboxes: the hot path.
 *
 * Design notes
 * ------------
 * The protocol is described in internal.h. What this file adds:
 *
 * Sleeping and waking (no system call on the fast path). The consumer announces it is about
 * to sleep by storing sleeping = 1, then looks once more for a message, then sleeps on
 * data_sem. A producer commits, then looks at `sleeping`; only if it is set does it take it
 * (exchange to 0) and post. Both sides put a seq_cst fence between their store and their
 * load (a Dekker pair), so either the consumer sees the message or the producer sees the
 * flag: a wake-up is never lost. A post that races with a timed-out sleeper leaves the
 * semaphore at 1; the next sleep then returns at once and looks again: harmless.
 *
 * Room for blocked producers, the same way in the other direction: a producer that finds
 * the mailbox full adds itself to space_waiters, looks again, and sleeps on space_sem. The
 * consumer wakes them only once the mailbox has drained to half its capacity (or it is
 * about to sleep), so a woken producer finds room for many messages: wake-ups are batched.
 *
 * Dead producers. A blocked consumer wakes every SB_SLICE_MS; if the message at `head` was
 * reserved but never committed, it asks sb__mbox_skip_dead() whether the writer is proven
 * dead (never on a timeout alone). Each wait slice also runs the bus's periodic reap.
 *
 * Hostile memory: every length, priority and id read from a slot is checked before use; a
 * slot that fails the check is dropped (counted in `dropped`) rather than delivered.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "relax.h"

static inline bool seq_taken(uint64_t s, uint64_t pos, uint32_t slots)
{
    return (int64_t)(s - (pos + slots)) >= 0;
}

/* Is a message stamped for generation g ours? Our own, or the one kept generation we took
 * over at join (client-local copies: nothing re-read from the segment). */
static inline bool our_gen(const shmbus_client *c, uint32_t g)
{
    return g == c->gen || (c->kept_gen != 0 && g == c->kept_gen);
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

static void intent_put(shmbus_client *c, unsigned i)
{
    /* Release pairs with the acquire CAS in intent_get() of the next thread to take it. */
    atomic_fetch_and_explicit(&c->intent_busy, ~(1u << i), memory_order_release);
}

/* ---- producer side ---------------------------------------------------------------------- */

/*
 * Reserve up to `want` consecutive positions in mailbox `mb` (client `dst`). Returns how many
 * (>= 1) with the first in *pos, -EAGAIN when the mailbox is full, or -EBADMSG.
 */
static int reserve(shmbus_bus *b, struct sb_mbox *mb, uint32_t dst, struct sb_intent *in,
                   uint32_t want, uint64_t *pos)
{
    uint32_t slots = b->lay.slots;
    uint64_t t = atomic_load_explicit(&mb->tail, memory_order_relaxed);
    for (;;) {
        /* Acquire pairs with the consumer's release store seq = p + slots in free_slot(): the
         * previous message in this slot has been copied out before we overwrite it. */
        uint64_t s = atomic_load_explicit(&sb__slot(b, mb, t)->seq, memory_order_acquire);
        int64_t d = (int64_t)(s - t);
        if (d < 0) {
            atomic_store_explicit(&in->n, 0, memory_order_relaxed);
            return -EAGAIN; /* the slot still holds position t - slots: full */
        }
        if (d > 0) {
            /* Another producer took t, so tail has moved past it: its CAS happens-before
             * the store of seq we just acquired. A tail still at t means a seq no producer
             * wrote: the segment is corrupt, and looping would spin for ever. */
            uint64_t t2 = atomic_load_explicit(&mb->tail, memory_order_relaxed);
            if (t2 == t) {
                atomic_store_explicit(&in->n, 0, memory_order_relaxed);
                return -EBADMSG;
            }
            t = t2;
            continue;
        }
        uint32_t k = 1;
        while (k < want && k < slots &&
               /* Acquire pairs with free_slot()'s release, as for the first slot above. */
               atomic_load_explicit(&sb__slot(b, mb, t + k)->seq, memory_order_acquire) == t + k)
            k++;
        atomic_store_explicit(&in->mbox, dst, memory_order_relaxed);
        atomic_store_explicit(&in->pos, t, memory_order_relaxed);
        atomic_store_explicit(&in->n, k, memory_order_relaxed);
        /* Release: the intent above is visible to anyone who sees tail beyond t. Pairs with
         * the acquire loads of tail in skip_one() and check_stuck(); the acquire half pairs
         * with this same CAS by the producer that moved tail before us. */
        if (atomic_compare_exchange_weak_explicit(&mb->tail, &t, t + k, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            *pos = t;
            return (int)k;
        }
    }
}

static void fill_slot(shmbus_bus *b, struct sb_mbox *mb, uint64_t pos, const shmbus_client *c,
                      uint32_t dst_gen, const void *data, size_t len, unsigned prio,
                      unsigned mflags, uint64_t seq, uint64_t corr, uint64_t now)
{
    struct sb_slot *sl = sb__slot(b, mb, pos);
    sl->msg_seq = seq;
    sl->corr = corr;
    sl->sent_ns = now;
    sl->src = c->id;
    sl->src_gen = c->gen;
    sl->dst_gen = dst_gen;
    sl->len = (uint32_t)len;
    sl->prio = (uint8_t)prio;
    sl->flags = (uint8_t)mflags;
    if (len != 0)
        memcpy((uint8_t *)sl + sizeof(*sl), data, len);
    /* Commit. Release pairs with the consumer's acquire load of seq in find_msg(). */
    atomic_store_explicit(&sl->seq, pos + 1, memory_order_release);
}

/* After committing: wake the consumer if (and only if) it sleeps. */
static void wake_consumer(struct sb_mbox *mb)
{
    /* Dekker pair with the consumer's store of sleeping + fence in wait_data(). */
    sb__full_fence();
    if (atomic_load_explicit(&mb->sleeping, memory_order_relaxed) &&
        atomic_exchange_explicit(&mb->sleeping, 0, memory_order_relaxed))
        sb__sem_post(&mb->data_sem);
}

static void deadline_of(int timeout_ms, uint64_t *deadline)
{
    *deadline = timeout_ms < 0 ? UINT64_MAX : sb__now_ns() + (uint64_t)timeout_ms * 1000000ull;
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

/* The mailbox is full: wait for room, the deadline, or the destination's end. */
static int wait_space(shmbus_bus *b, struct sb_mbox *mb, uint32_t dst, uint32_t gen,
                      uint64_t deadline)
{
    atomic_fetch_add_explicit(&mb->space_waiters, 1, memory_order_relaxed);
    /* Dekker pair with the consumer's free + fence in wake_producers(). */
    sb__full_fence();
    uint64_t t = atomic_load_explicit(&mb->tail, memory_order_relaxed);
    uint64_t s = atomic_load_explicit(&sb__slot(b, mb, t)->seq, memory_order_acquire);
    if ((int64_t)(s - t) >= 0)
        return 0; /* room appeared meanwhile */
    int r = sem_wait_slice(b, &mb->space_sem, deadline);
    if (r == -EINTR)
        return r;
    if (r == 0)
        return check_dest(b, dst, gen, false); /* reserve_wait() looks at the clock */
    r = check_dest(b, dst, gen, true);
    if (r < 0)
        return r;
    sb__maybe_reap(b);
    if (sb__now_ns() >= deadline)
        return -ETIMEDOUT;
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
 * Reserve up to `want` positions in dst's mailbox, waiting for room as the flags and the
 * deadline allow. On success the caller holds intent record *ii and must commit and put it.
 */
static int reserve_wait(shmbus_client *c, uint32_t dst, uint32_t gen, uint32_t want, unsigned flags,
                        uint64_t deadline, unsigned *ii, uint64_t *pos)
{
    shmbus_bus *b = c->bus;
    struct sb_mbox *mb = sb__mbox(b, dst);
    unsigned i = intent_get(c);
    struct sb_intent *in = &c->e->intent[i];
    bool counted = false;
    uint64_t spin_until = 0;
    uint32_t spins = 0;
    for (;;) {
        int k = reserve(b, mb, dst, in, want, pos);
        if (k > 0) {
            *ii = i;
            return k;
        }
        if (k != -EAGAIN) {
            intent_put(c, i);
            return k;
        }
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
         * slots within microseconds, far sooner than a sleep and a wake-up take. */
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
        int r = wait_space(b, mb, dst, gen, deadline);
        if (r < 0) {
            intent_put(c, i);
            return r;
        }
    }
}

static void finish_send(shmbus_client *c, struct sb_mbox *mb, unsigned i)
{
    /* Release: the commits precede the intent's end. Pairs with the acquire loads of n in
     * claimants() and sb__mbox_skip_intents(): whoever sees n == 0 also sees seq = p + 1. */
    atomic_store_explicit(&c->e->intent[i].n, 0, memory_order_release);
    intent_put(c, i);
    wake_consumer(mb);
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

/* One message to one destination. *seq_out gets its sequence number. */
static int send_one(shmbus_client *c, uint32_t dst, const void *data, size_t len, unsigned prio,
                    unsigned flags, unsigned mflags, uint64_t corr, uint64_t deadline,
                    uint64_t *seq_out)
{
    shmbus_bus *b = c->bus;
    uint32_t gen;
    int r = sb__dest_state(b, dst, &gen);
    if (r < 0)
        return r;
    struct sb_mbox *mb = sb__mbox(b, dst);
    unsigned i;
    uint64_t pos;
    r = reserve_wait(c, dst, gen, 1, flags, deadline, &i, &pos);
    if (r < 0)
        return r;
    sb__tp(SB_TP_RESERVED); /* test-only: reserved, not yet filled */
    uint64_t seq = atomic_fetch_add_explicit(&c->e->sent, 1, memory_order_relaxed) + 1;
    atomic_fetch_add_explicit(&c->e->bytes_sent, len, memory_order_relaxed);
    sb__stats_sent(b, c->id, 1, len);
    if (prio > 0)
        atomic_fetch_add_explicit(&mb->pending_hi, 1, memory_order_relaxed);
    fill_slot(b, mb, pos, c, gen, data, len, prio, mflags, seq, corr, sb__now_ns());
    finish_send(c, mb, i);
    if (seq_out != NULL)
        *seq_out = seq;
    if (flags & SHMBUS_SEND_ACK)
        return wait_ack(c, dst, gen, seq, deadline);
    return 0;
}

int shmbus_send(shmbus_client *c, uint32_t dst, const void *data, size_t len, unsigned flags,
                int timeout_ms)
{
    int r = check_send_args(c, len, flags, SHMBUS_SEND_NONBLOCK | SHMBUS_SEND_ACK, true);
    if (r < 0)
        return r;
    if (data == NULL && len != 0)
        return -EINVAL;
    unsigned prio = shmbus_flags_prio(flags);
    uint64_t deadline;
    deadline_of(timeout_ms, &deadline);
    if (timeout_ms == 0)
        deadline = 0;
    unsigned mflags = (flags & SHMBUS_SEND_ACK) ? SHMBUS_MSG_ACK : 0;
    return send_one(c, dst, data, len, prio, flags, mflags, 0, deadline, NULL);
}

int shmbus_send_batch(shmbus_client *c, uint32_t dst, const struct shmbus_iov *msgs, size_t n,
                      unsigned flags, int timeout_ms)
{
    if (c == NULL || msgs == NULL || n == 0)
        return -EINVAL;
    int r = check_send_args(c, 0, flags, SHMBUS_SEND_NONBLOCK, true);
    if (r < 0)
        return r;
    unsigned prio = shmbus_flags_prio(flags);
    for (size_t k = 0; k < n; k++) {
        if (msgs[k].len > c->bus->lay.msg_size)
            return -EMSGSIZE;
        if (msgs[k].data == NULL && msgs[k].len != 0)
            return -EINVAL;
    }
    shmbus_bus *b = c->bus;
    uint32_t gen;
    r = sb__dest_state(b, dst, &gen);
    if (r < 0)
        return r;
    uint64_t deadline;
    deadline_of(timeout_ms, &deadline);
    if (timeout_ms == 0)
        deadline = 0;
    uint32_t want = n > b->lay.slots ? b->lay.slots : (uint32_t)n;
    struct sb_mbox *mb = sb__mbox(b, dst);
    unsigned i;
    uint64_t pos;
    int k = reserve_wait(c, dst, gen, want, flags, deadline, &i, &pos);
    if (k < 0)
        return k;
    uint64_t seq = atomic_fetch_add_explicit(&c->e->sent, (uint64_t)k, memory_order_relaxed);
    uint64_t bytes = 0;
    uint64_t now = sb__now_ns();
    if (prio > 0)
        atomic_fetch_add_explicit(&mb->pending_hi, k, memory_order_relaxed);
    for (int j = 0; j < k; j++) {
        fill_slot(b, mb, pos + (uint64_t)j, c, gen, msgs[j].data, msgs[j].len, prio, 0,
                  seq + 1 + (uint64_t)j, 0, now);
        bytes += msgs[j].len;
        if (j == 0 && k > 1)
            sb__tp(SB_TP_BATCH_PART); /* test-only: part of a batch committed */
    }
    atomic_fetch_add_explicit(&c->e->bytes_sent, bytes, memory_order_relaxed);
    sb__stats_sent(b, c->id, (uint64_t)k, bytes);
    finish_send(c, mb, i);
    return k;
}

int shmbus_broadcast(shmbus_client *c, const void *data, size_t len, unsigned flags, int timeout_ms)
{
    int r = check_send_args(c, len, flags, SHMBUS_SEND_NONBLOCK, true);
    if (r < 0)
        return r;
    if (data == NULL && len != 0)
        return -EINVAL;
    unsigned prio = shmbus_flags_prio(flags);
    uint64_t deadline;
    deadline_of(timeout_ms, &deadline);
    if (timeout_ms == 0)
        deadline = 0;
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

/* ---- consumer side ---------------------------------------------------------------------- */

/* What a receive is looking for: any message, or the reply to one request. */
struct want {
    bool peek; /* copy the message out but leave it in place (shmbus_peek) */
    bool reply_only;
    uint32_t from;
    uint64_t corr;
};

/* Move head past slots taken out of order (or skipped) and publish it. */
static uint64_t advance_head(shmbus_bus *b, struct sb_mbox *mb)
{
    uint32_t slots = b->lay.slots;
    uint64_t h0 = atomic_load_explicit(&mb->head, memory_order_relaxed);
    /* Each acquire of seq below pairs with the release that set it: the commit in fill_slot(),
     * free_slot(), or the skip CAS in skip_one(). */
    uint64_t h = h0;
    for (uint32_t n = 0; n < slots; n++) {
        uint64_t s = atomic_load_explicit(&sb__slot(b, mb, h)->seq, memory_order_acquire);
        if (!seq_taken(s, h, slots))
            break;
        h++;
    }
    if (h != h0)
        atomic_store_explicit(&mb->head, h, memory_order_relaxed);
    return h;
}

/*
 * Find the message to take next: among the committed prefix from head, the first of the
 * highest priority (or the first reply matching `w`). 0 with *found set, or -EAGAIN.
 */
static int find_msg(shmbus_bus *b, struct sb_mbox *mb, const struct want *w, uint64_t *found)
{
    uint32_t slots = b->lay.slots;
    uint64_t h = advance_head(b, mb);
    bool scan = w->reply_only || atomic_load_explicit(&mb->pending_hi, memory_order_relaxed) > 0;
    if (!scan) {
        /* Acquire pairs with the producer's release store of seq in fill_slot(). */
        uint64_t s = atomic_load_explicit(&sb__slot(b, mb, h)->seq, memory_order_acquire);
        if (s != h + 1)
            return -EAGAIN;
        *found = h;
        return 0;
    }
    int best_prio = -1;
    uint64_t p = h;
    for (uint32_t n = 0; n < slots; n++, p++) {
        struct sb_slot *sl = sb__slot(b, mb, p);
        /* Acquire pairs with the commit (release store seq = p + 1) in fill_slot(): the
         * slot's header and payload are complete before we read them. */
        uint64_t s = atomic_load_explicit(&sl->seq, memory_order_acquire);
        if (seq_taken(s, p, slots))
            continue;
        if (s != p + 1)
            break; /* not committed: the prefix ends here */
        if (w->reply_only) {
            if ((sl->flags & SHMBUS_MSG_REPLY) && sl->src == w->from && sl->corr == w->corr) {
                *found = p;
                return 0;
            }
            continue;
        }
        int prio = sl->prio & (SHMBUS_PRIO_LEVELS - 1);
        if (prio > best_prio) {
            best_prio = prio;
            *found = p;
            if (prio == SHMBUS_PRIO_LEVELS - 1)
                break;
        }
    }
    return best_prio >= 0 ? 0 : -EAGAIN;
}

/* Wake producers waiting for room once the mailbox has drained to half (or is empty). */
static void wake_producers(shmbus_bus *b, struct sb_mbox *mb, uint64_t head)
{
    /* Dekker pair with the producer's add + fence in wait_space(). */
    sb__full_fence();
    if (atomic_load_explicit(&mb->space_waiters, memory_order_relaxed) == 0)
        return;
    uint64_t tail = atomic_load_explicit(&mb->tail, memory_order_relaxed);
    if (tail - head > b->lay.slots / 2)
        return;
    uint32_t w = atomic_exchange_explicit(&mb->space_waiters, 0, memory_order_relaxed);
    sb__post_waiters(b, &mb->space_sem, w);
}

/* Give slot `pos` back to the producers. */
static void free_slot(shmbus_bus *b, struct sb_mbox *mb, uint64_t pos)
{
    /* Release pairs with the producer's acquire load of seq in reserve(). */
    atomic_store_explicit(&sb__slot(b, mb, pos)->seq, pos + b->lay.slots, memory_order_release);
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

static void add_counter(_Atomic uint64_t *ctr, uint64_t n)
{
    /* Only the receiving thread writes these: a load and a store, not a locked add. */
    atomic_store_explicit(ctr, atomic_load_explicit(ctr, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/*
 * Copy the message at `pos` into *m and buf without taking it. Returns its length, -EMSGSIZE
 * (*m filled, so m->len says the room needed), or -ENOMSG when the slot failed the checks
 * (stale generation or corrupt): it is then dropped, and the caller should look again. The
 * slot's fields are read once each here; consume_at() uses only these checked copies.
 */
static int read_at(shmbus_client *c, uint64_t pos, struct shmbus_msg *m, uint32_t *src_gen,
                   void *buf, size_t cap)
{
    shmbus_bus *b = c->bus;
    struct sb_mbox *mb = c->mb;
    struct sb_slot *sl = sb__slot(b, mb, pos);
    uint32_t len = sl->len;
    uint32_t dst_gen = sl->dst_gen;
    unsigned prio = sl->prio;
    if (len > b->lay.msg_size || !our_gen(c, dst_gen) || prio >= SHMBUS_PRIO_LEVELS) {
        if (prio > 0)
            atomic_fetch_sub_explicit(&mb->pending_hi, 1, memory_order_relaxed);
        free_slot(b, mb, pos);
        add_counter(&c->e->dropped, 1);
        return -ENOMSG;
    }
    *m = (struct shmbus_msg){
        .src = sl->src,
        .dst = c->id,
        .seq = sl->msg_seq,
        .corr = sl->corr,
        .sent_ns = sl->sent_ns,
        .len = len,
        .prio = (uint8_t)prio,
        .flags = sl->flags,
    };
    *src_gen = sl->src_gen;
    if (len > cap)
        return -EMSGSIZE;
    if (len != 0)
        memcpy(buf, (uint8_t *)sl + sizeof(*sl), len);
    return (int)len;
}

/* Take the message at `pos`, already copied out by read_at() into *m: free its slot, ACK
 * its sender, count it. */
static void consume_at(shmbus_client *c, uint64_t pos, const struct shmbus_msg *m, uint32_t src_gen,
                       bool sample)
{
    shmbus_bus *b = c->bus;
    struct sb_mbox *mb = c->mb;
    if (m->prio > 0)
        atomic_fetch_sub_explicit(&mb->pending_hi, 1, memory_order_relaxed);
    free_slot(b, mb, pos);
    if (m->flags & SHMBUS_MSG_ACK)
        ack_sender(b, m->src, src_gen, m->seq);
    add_counter(&c->e->received, 1);
    add_counter(&c->e->bytes_received, m->len);
    sb__stats_taken(b, c->id, m->src, m->len, sample ? m->sent_ns : 0);
    if (sample) {
        uint64_t now = sb__now_ns();
        if (now > m->sent_ns) {
            unsigned bk = shmbus_hist_bucket(now - m->sent_ns);
            add_counter(&c->e->lat_hist[bk], 1);
        }
    }
}

/*
 * Take the message at `pos` into hdr/buf. Returns its length, -EMSGSIZE (left in place), or
 * -ENOMSG when the slot was dropped (stale generation or corrupt) and the caller should look
 * again.
 */
static int take_at(shmbus_client *c, uint64_t pos, struct shmbus_msg *hdr, void *buf, size_t cap,
                   bool sample)
{
    struct shmbus_msg m;
    uint32_t src_gen;
    int r = read_at(c, pos, &m, &src_gen, buf, cap);
    if (r == -ENOMSG)
        return r;
    if (hdr != NULL)
        *hdr = m;
    if (r < 0)
        return r;
    consume_at(c, pos, &m, src_gen, sample);
    return r;
}

/* Copy the message at `pos` and remember it for shmbus_consume(); the slot stays committed.
 * Returns as take_at(). */
static int peek_at(shmbus_client *c, uint64_t pos, struct shmbus_msg *hdr, void *buf, size_t cap)
{
    struct shmbus_msg m;
    uint32_t src_gen;
    c->peek_valid = false;
    int r = read_at(c, pos, &m, &src_gen, buf, cap);
    if (r == -ENOMSG)
        return r;
    if (hdr != NULL)
        *hdr = m;
    if (r < 0)
        return r;
    c->peek_msg = m;
    c->peek_pos = pos;
    c->peek_src_gen = src_gen;
    c->peek_valid = true;
    return r;
}

/* Take one matching message if there is one: length, -EAGAIN, or -EMSGSIZE. */
static int try_take(shmbus_client *c, const struct want *w, struct shmbus_msg *hdr, void *buf,
                    size_t cap, bool sample)
{
    for (uint32_t tries = 0; tries <= c->bus->lay.slots; tries++) {
        uint64_t pos;
        int r = find_msg(c->bus, c->mb, w, &pos);
        if (r < 0)
            return r;
        if (w->peek)
            r = peek_at(c, pos, hdr, buf, cap);
        else
            r = take_at(c, pos, hdr, buf, cap, sample);
        if (r == -ENOMSG)
            continue;
        if (r >= 0 && !w->peek) {
            uint64_t h = advance_head(c->bus, c->mb);
            wake_producers(c->bus, c->mb, h);
        }
        return r;
    }
    return -EAGAIN;
}

/*
 * A blocked receiver's check: is the message at head held by a dead writer? Asked when a
 * wait slice times out, and also when woken (woken = true) once head has been stuck for a
 * whole slice: a slow live sender whose commits keep waking us before the slice ends must
 * not hide a dead writer in front of them for longer than a slice.
 */
static void check_stuck(shmbus_client *c, bool woken)
{
    shmbus_bus *b = c->bus;
    struct sb_mbox *mb = c->mb;
    uint64_t h = atomic_load_explicit(&mb->head, memory_order_relaxed);
    /* Acquire of seq pairs with the commit in fill_slot() (and skip_one()'s CAS); acquire of
     * tail pairs with the release CAS on tail in reserve(). */
    uint64_t s = atomic_load_explicit(&sb__slot(b, mb, h)->seq, memory_order_acquire);
    uint64_t t = atomic_load_explicit(&mb->tail, memory_order_acquire);
    if (s != h || t <= h) {
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
    sb__mbox_skip_dead(b, c->id, h);
}

/* Sleep until a message may be there. 0 to look again, or an error. */
static int wait_data(shmbus_client *c, const struct want *w, uint64_t deadline)
{
    shmbus_bus *b = c->bus;
    struct sb_mbox *mb = c->mb;
    int r = sem_wait_slice(b, &mb->data_sem, deadline);
    atomic_store_explicit(&mb->sleeping, 0, memory_order_relaxed);
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

static int recv_common(shmbus_client *c, const struct want *w, struct shmbus_msg *hdr, void *buf,
                       size_t cap, int timeout_ms)
{
    shmbus_bus *b = c->bus;
    struct sb_mbox *mb = c->mb;
    /* The latency histogram samples one message in 16 found at once (a clock read costs
     * about as much as the rest of a receive), and every message that was waited for. */
    bool sample = (c->recv_count++ & 15) == 0;
    int r = try_take(c, w, hdr, buf, cap, sample);
    if (r != -EAGAIN)
        return r;
    /* Nothing there: only now read the clock for the deadline and the spin budget. */
    uint64_t deadline;
    deadline_of(timeout_ms, &deadline);
    uint64_t spin_until = c->spin_ns ? sb__now_ns() + c->spin_ns : 0;
    bool spinning = false;
    uint32_t spins = 0;
    for (;;) {
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
        /* Dekker pair with the producer's commit + fence in wake_consumer(). */
        sb__full_fence();
        r = try_take(c, w, hdr, buf, cap, true);
        if (r != -EAGAIN) {
            atomic_store_explicit(&mb->sleeping, 0, memory_order_relaxed);
            return r;
        }
        /* About to sleep on an empty mailbox: let blocked producers in. */
        wake_producers(b, mb, atomic_load_explicit(&mb->head, memory_order_relaxed));
        r = wait_data(c, w, deadline);
        if (r < 0)
            return r;
    }
}

int shmbus_recv(shmbus_client *c, struct shmbus_msg *hdr, void *buf, size_t cap, int timeout_ms)
{
    if (c == NULL || (buf == NULL && cap != 0))
        return -EINVAL;
    struct want w = {0};
    return recv_common(c, &w, hdr, buf, cap, timeout_ms);
}

int shmbus_peek(shmbus_client *c, struct shmbus_msg *hdr, void *buf, size_t cap, int timeout_ms)
{
    if (c == NULL || (buf == NULL && cap != 0))
        return -EINVAL;
    struct want w = {.peek = true};
    c->peek_valid = false;
    return recv_common(c, &w, hdr, buf, cap, timeout_ms);
}

int shmbus_consume(shmbus_client *c)
{
    if (c == NULL)
        return -EINVAL;
    if (!c->peek_valid)
        return -ENOMSG;
    c->peek_valid = false;
    shmbus_bus *b = c->bus;
    if (sb__destroyed(b))
        return -EIDRM;
    uint64_t pos = c->peek_pos;
    struct sb_slot *sl = sb__slot(b, c->mb, pos);
    /* Still committed at the same lap, so still the message peek_at() copied: only this
     * thread takes from the mailbox, and a cleaner's drain or a recv in between would have
     * stored seq = pos + slots (a new message there would be pos + slots + 1). Acquire pairs
     * with the release stores of seq in fill_slot() and free_slot(). The message's own fields
     * guard against a scribbled seq word. */
    uint64_t s = atomic_load_explicit(&sl->seq, memory_order_acquire);
    if (s != pos + 1 || sl->msg_seq != c->peek_msg.seq || sl->src != c->peek_msg.src)
        return -ENOMSG;
    consume_at(c, pos, &c->peek_msg, c->peek_src_gen, (c->recv_count++ & 15) == 0);
    uint64_t h = advance_head(b, c->mb);
    wake_producers(b, c->mb, h);
    return 0;
}

/*
 * The fast path of a batch: take the run of committed messages at head, in order, while no
 * message of a higher priority is pending. One load and one store of head and one update
 * of each counter per run instead of per message. Stops (leaving the rest to the general
 * path) at anything unusual: a priority, an ACK, a message larger than `stride`.
 */
static size_t take_run(shmbus_client *c, struct shmbus_msg *hdrs, uint8_t *bufs, size_t stride,
                       size_t n)
{
    shmbus_bus *b = c->bus;
    struct sb_mbox *mb = c->mb;
    uint32_t slots = b->lay.slots;
    if (atomic_load_explicit(&mb->pending_hi, memory_order_relaxed) > 0)
        return 0;
    uint64_t h = atomic_load_explicit(&mb->head, memory_order_relaxed);
    uint64_t h0 = h, bytes = 0, dropped = 0;
    size_t got = 0;
    while (got < n && h - h0 < slots) {
        struct sb_slot *sl = sb__slot(b, mb, h);
        /* Acquire pairs with the producer's release store of seq in fill_slot(). */
        uint64_t s = atomic_load_explicit(&sl->seq, memory_order_acquire);
        if (s != h + 1) {
            if (!seq_taken(s, h, slots))
                break;
            h++;
            continue;
        }
        uint32_t len = sl->len;
        uint8_t flags = sl->flags, prio = sl->prio;
        if (prio != 0 || (flags & SHMBUS_MSG_ACK) || len > stride)
            break;
        if (len > b->lay.msg_size || !our_gen(c, sl->dst_gen)) {
            free_slot(b, mb, h++);
            dropped++;
            continue;
        }
        struct shmbus_msg *m = &hdrs[got];
        m->src = sl->src;
        m->dst = c->id;
        m->seq = sl->msg_seq;
        m->corr = sl->corr;
        m->sent_ns = sl->sent_ns;
        m->len = len;
        m->prio = 0;
        m->flags = flags;
        sb__stats_taken(b, c->id, m->src, len, 0);
        memcpy(bufs + got * stride, (uint8_t *)sl + sizeof(*sl), len);
        free_slot(b, mb, h++);
        bytes += len;
        got++;
    }
    if (h != h0)
        atomic_store_explicit(&mb->head, h, memory_order_relaxed);
    if (got != 0) {
        add_counter(&c->e->received, got);
        add_counter(&c->e->bytes_received, bytes);
    }
    if (dropped != 0)
        add_counter(&c->e->dropped, dropped);
    return got;
}

int shmbus_recv_batch(shmbus_client *c, struct shmbus_msg *hdrs, void *bufs, size_t stride,
                      size_t n, int timeout_ms)
{
    if (c == NULL || hdrs == NULL || bufs == NULL || n == 0)
        return -EINVAL;
    struct want w = {0};
    uint8_t *out = bufs;
    size_t got = take_run(c, hdrs, out, stride, n);
    if (got == 0) {
        /* Nothing ready (or something unusual first): wait for one the general way. */
        int r = recv_common(c, &w, &hdrs[0], out, stride, timeout_ms);
        if (r < 0)
            return r;
        got = 1;
        got += take_run(c, hdrs + 1, out + stride, stride, n - 1);
    }
    while (got < n) {
        uint64_t pos;
        if (find_msg(c->bus, c->mb, &w, &pos) != 0)
            break;
        int r = take_at(c, pos, &hdrs[got], out + got * stride, stride, false);
        if (r == -ENOMSG)
            continue;
        if (r < 0)
            break;
        got++;
    }
    uint64_t head = advance_head(c->bus, c->mb);
    wake_producers(c->bus, c->mb, head);
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
    return recv_common(c, &w, rhdr, rbuf, cap, left);
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
    uint64_t deadline;
    deadline_of(timeout_ms, &deadline);
    if (timeout_ms == 0)
        deadline = 0;
    return send_one(c, req->src, data, len, req->prio & 7, flags, SHMBUS_MSG_REPLY, req->seq,
                    deadline, NULL);
}

/* ---- recovery --------------------------------------------------------------------------- */

/* Who claims position pos of mailbox mbox_id? Sets *live / *dead. */
static void claimants(shmbus_bus *b, uint32_t mbox_id, uint64_t pos, bool *live, bool *dead)
{
    *live = *dead = false;
    for (uint32_t id = 1; id <= b->lay.max_clients; id++) {
        struct sb_entry *e = sb__entry(b, id);
        /* Acquire pairs with the release stores of state in shmbus_join() and the CAS to
         * CLEANING in cleanup_entry()/shmbus_leave(): kind, pid and start_time agree. */
        uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        unsigned kind = SB_ST_KIND(s);
        if (kind != SB_LIVE && kind != SB_CLEANING)
            continue;
        /* A CLEANING entry's owner is dead (or leaving with no send in flight): its
         * intents are a dead writer's, whoever the cleaner is. */
        bool alive = kind == SB_LIVE && sb__entry_alive(e, s);
        for (unsigned i = 0; i < SB_INTENTS; i++) {
            struct sb_intent *in = &e->intent[i];
            /* Acquire pairs with the release store n = 0 in finish_send() (the commits came
             * first) and in sb__mbox_skip_intents(); mbox and pos were published before
             * the release CAS on tail in reserve(), which the caller acquired. */
            uint32_t n = atomic_load_explicit(&in->n, memory_order_acquire);
            if (n == 0)
                continue;
            uint32_t m = atomic_load_explicit(&in->mbox, memory_order_relaxed);
            uint64_t p0 = atomic_load_explicit(&in->pos, memory_order_relaxed);
            if (m != mbox_id || pos - p0 >= n)
                continue;
            if (alive)
                *live = true;
            else
                *dead = true;
        }
    }
}

/* Skip position pos if it is reserved, uncommitted, and claimed by no live writer. */
static int skip_one(shmbus_bus *b, uint32_t mbox_id, uint64_t pos)
{
    struct sb_mbox *mb = sb__mbox(b, mbox_id);
    struct sb_slot *sl = sb__slot(b, mb, pos);
    /* Acquire pairs with the commit in fill_slot() and the release in free_slot(). */
    uint64_t s = atomic_load_explicit(&sl->seq, memory_order_acquire);
    if (s != pos)
        return 0; /* committed, taken, or not this lap */
    /* Acquire pairs with the producers' release CAS on tail: their intents are visible. */
    uint64_t t = atomic_load_explicit(&mb->tail, memory_order_acquire);
    if (t <= pos)
        return 0; /* not reserved at all: a free slot, never skip it */
    /* The winner of pos wrote its intent before its CAS on tail and clears it only after
     * committing, so while seq == pos a live winner always claims pos: no live claimant
     * proves the winner dead, whether its intent is still there or a cleaner already
     * cleared it. (Also requiring a dead claimant orphaned the slot for good when the
     * cleaner came while a live sender's stale intent, left by a lost CAS, covered pos: found
     * by tests/model/mailbox.pml.) If the winner commits meanwhile, the CAS below fails. */
    bool live, dead;
    claimants(b, mbox_id, pos, &live, &dead);
    if (live)
        return 0;
    /* The CAS makes this happen once even if the consumer and a cleaner both try, and fails
     * if the writer committed after all. Its release pairs with the acquire loads of seq in
     * reserve() (the slot is free for the next lap) and advance_head()/find_msg(). */
    if (!atomic_compare_exchange_strong_explicit(&sl->seq, &s, pos + b->lay.slots,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return 0;
    sb__note_dropped(sb__entry(b, mbox_id), 1);
    return 1;
}

int sb__mbox_skip_dead(shmbus_bus *b, uint32_t mbox_id, uint64_t pos)
{
    if (b->rdonly || mbox_id < 1 || mbox_id > b->lay.max_clients)
        return 0;
    int n = 0;
    /* A dead writer may have reserved a run of positions (a batch): skip all of it. */
    for (uint32_t k = 0; k < b->lay.slots; k++) {
        int r = skip_one(b, mbox_id, pos + k);
        if (r == 0 && k > 0)
            break;
        if (r == 0)
            return 0;
        n += r;
    }
    if (n > 0)
        wake_consumer(sb__mbox(b, mbox_id));
    return n;
}

void sb__mbox_skip_intents(shmbus_bus *b, struct sb_entry *dead)
{
    for (unsigned i = 0; i < SB_INTENTS; i++) {
        struct sb_intent *in = &dead->intent[i];
        /* Acquire pairs with the release store n = 0 in finish_send(): a send that ended
         * before its owner died has its commits visible, and is not skipped. */
        uint32_t n = atomic_load_explicit(&in->n, memory_order_acquire);
        if (n == 0)
            continue;
        uint32_t m = atomic_load_explicit(&in->mbox, memory_order_relaxed);
        uint64_t p0 = atomic_load_explicit(&in->pos, memory_order_relaxed);
        if (m >= 1 && m <= b->lay.max_clients) {
            if (n > b->lay.slots)
                n = b->lay.slots;
            for (uint32_t k = 0; k < n; k++)
                skip_one(b, m, p0 + k);
            wake_consumer(sb__mbox(b, m));
        }
        /* Release pairs with the acquire load of n in claimants(): the skips above are
         * visible to whoever sees the intent gone. */
        atomic_store_explicit(&in->n, 0, memory_order_release);
    }
}

void sb__mbox_restamp(shmbus_bus *b, struct sb_mbox *mb, uint32_t from_gen, uint32_t to_gen)
{
    uint32_t slots = b->lay.slots;
    uint64_t h = atomic_load_explicit(&mb->head, memory_order_relaxed);
    for (uint32_t k = 0; k < slots; k++, h++) {
        struct sb_slot *sl = sb__slot(b, mb, h);
        /* Acquire pairs with the producer's release store of seq in fill_slot(): its
         * dst_gen is written. A committed slot belongs to the consumer (the caller) until it
         * frees it; the release store of FREE in leave() publishes the new stamp. */
        if (atomic_load_explicit(&sl->seq, memory_order_acquire) == h + 1 &&
            sl->dst_gen == from_gen)
            sl->dst_gen = to_gen;
    }
}

uint64_t sb__mbox_drain(shmbus_bus *b, struct sb_mbox *mb)
{
    uint32_t slots = b->lay.slots;
    uint64_t h = atomic_load_explicit(&mb->head, memory_order_relaxed);
    uint64_t n = 0;
    for (uint32_t k = 0; k < slots; k++) {
        /* Acquire pairs with the commit in fill_slot() and the skip CAS in skip_one(). */
        uint64_t s = atomic_load_explicit(&sb__slot(b, mb, h)->seq, memory_order_acquire);
        if (s == h + 1) {
            free_slot(b, mb, h);
            n++;
        } else if (!seq_taken(s, h, slots)) {
            break;
        }
        h++;
    }
    atomic_store_explicit(&mb->head, h, memory_order_relaxed);
    atomic_store_explicit(&mb->pending_hi, 0, memory_order_relaxed);
    return n;
}
