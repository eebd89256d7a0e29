/*
 * redeliver.c - work queues at least once: the in-flight table, shmbus_done(), and the
 * salvage of a dead (or leaving) member's group messages.
 *
 * Design notes
 * ------------
 * Two places hold group messages a member has not finished: its mailbox (waiting, READY
 * records flagged SHMBUS_MSG_GROUP with corr = the group's slot) and, for a member that
 * subscribed with SHMBUS_SUB_CONFIRM, its in-flight table (taken, not yet confirmed). The
 * receive records a message in the table before it marks the record DONE (consume_at() in
 * mailbox.c), and shmbus_done() frees the slot, so at every moment each such message is in
 * one of the two places, or in both for an instant: a death in that instant gives a
 * duplicate, never a loss.
 *
 * Who salvages: whoever holds the member's registry entry CLEANING, i.e. the one process
 * whose CAS LIVE -> CLEANING won (a reaper that found it dead, or the member itself in
 * shmbus_leave()). It puts a copy of each message into another current member's mailbox
 * (sb__mbox_resend(): never waits for room), flagged SHMBUS_MSG_REDELIVERED, then frees the
 * slot or marks the record DONE. Copies are written under the dead member's id, with the
 * dead entry's intent records naming the claims (sb__mbox_skip_intents() ended the dead
 * client's own ones first). The dead-writer rule counts only LIVE entries' intents, so a
 * consumer that looks at its stuck head just while a copy is being filled may skip it: the
 * copy's commit then fails (-ECONNRESET) and the salvager picks again. A rare retry, and
 * consumers never wait longer for a salvager than for a dead writer.
 *
 * A salvager that dies half-way leaves CLEANING with its dead pid: the next reaper takes
 * the entry over and starts again from the published head and the slots still held, so
 * what was copied and not yet marked is copied again (a duplicate after a death). When a
 * message finds no member that can take it now (none current, or every pick full), the
 * salvager stops there and parks the entry: CLEANING with pid 0, which no liveness check
 * calls alive, so the next reap (blocked calls run one about once a second) continues. The
 * id stays taken until then: the messages are worth more than the id. The same parking
 * happens when the walk ends at a claim whose writer lives (a sender that chose the member
 * just before it died): what it commits is salvaged by the next reap, not left in the ring
 * of an id nobody may join again.
 *
 * Hostile segment: every slot word is loaded once; a slot whose length, sender or flags
 * fail the checks is freed and counted as dropped; a group slot index outside the table,
 * or a group slot not in use, drops the message (counted). Loops are bounded by the slot
 * count and the ring (sb__mbox_drain_each()).
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

/* The slot a message of c was recorded in: matched on the fields done() is given. */
static bool slot_matches(const struct sb_inflight *s, const struct shmbus_msg *m)
{
    return s->seq == m->seq && s->src == m->src && s->corr == m->corr;
}

int sb__inflight_put(shmbus_client *c, const struct shmbus_msg *m, uint32_t src_gen,
                     const void *data)
{
    shmbus_bus *b = c->bus;
    for (uint32_t i = 0; i < SB_INFLIGHT; i++) {
        struct sb_inflight *s = sb__inflight(b, c->id, i);
        /* Relaxed: only this client's receiving thread writes a slot it holds; a word that
         * is not our generation (0, or a stale or scribbled one) is a free slot to us. */
        if (atomic_load_explicit(&s->state, memory_order_relaxed) == c->gen)
            continue;
        s->seq = m->seq;
        s->corr = m->corr;
        s->sent_ns = m->sent_ns;
        s->len = m->len;
        s->src = m->src;
        s->src_gen = (src_gen & 0xffffffu) | ((uint32_t)m->flags << 24);
        s->prio = m->prio;
        if (m->len != 0)
            memcpy((uint8_t *)s + sizeof(*s), data, m->len);
        /* Release: the copy is complete before the slot says so. Pairs with the acquire load
         * of state in salvage_inflight() (a salvager acquires our entry's state first; this
         * orders the slot for one that reads it after we died mid-way). */
        atomic_store_explicit(&s->state, c->gen, memory_order_release);
        return 0;
    }
    return -ENOBUFS;
}

int shmbus_done(shmbus_client *c, const struct shmbus_msg *m)
{
    if (c == NULL || m == NULL)
        return -EINVAL;
    if (sb__destroyed(c->bus))
        return -EIDRM;
    for (uint32_t i = 0; i < SB_INFLIGHT; i++) {
        struct sb_inflight *s = sb__inflight(c->bus, c->id, i);
        if (atomic_load_explicit(&s->state, memory_order_relaxed) != c->gen || !slot_matches(s, m))
            continue;
        /* Release: our reads of the slot come before it is reused. Pairs with the acquire
         * load of state in salvage_inflight(). */
        atomic_store_explicit(&s->state, 0, memory_order_release);
        return 0;
    }
    return -ENOENT;
}

struct salvage {
    shmbus_bus *b;
    shmbus_client sc; /* the dead member as the sender of the copies */
    uint32_t gen, kept;
    bool may_park;
    uint64_t dropped;
};

/* Put a copy of group message m into another current member's mailbox. 0 when done with
 * it (copied, or dropped and counted), -EAGAIN when no member can take it now and the
 * salvage may park. */
static int redeliver_one(struct salvage *sv, const struct shmbus_msg *m, uint32_t src_gen,
                         const void *data)
{
    shmbus_bus *b = sv->b;
    if (m->corr >= SB_GROUPS) {
        sv->dropped++;
        return 0;
    }
    struct sb_group *g = sb__group(b, (uint32_t)m->corr);
    /* Acquire pairs with the release store of USED in name_slot() (group.c). */
    if (SB_GRP_KIND(atomic_load_explicit(&g->state, memory_order_acquire)) != SB_GRP_USED) {
        sv->dropped++;
        return 0;
    }
    /* A member that leaves or dies between the pick and the copy: pick again, a few times. */
    for (uint32_t tries = 0; tries < 4; tries++) {
        uint32_t gen, id = sb__group_pick(b, (uint32_t)m->corr, &gen);
        if (id == 0)
            break;
        int r = sb__mbox_resend(&sv->sc, id, gen, m, src_gen, data);
        if (r == 0) {
            atomic_fetch_add_explicit(&g->redelivered, 1, memory_order_relaxed);
            return 0;
        }
        if (r != -EHOSTUNREACH && r != -ECONNRESET)
            break; /* full (-EAGAIN), or its mailbox is garbage */
    }
    if (sv->may_park)
        return -EAGAIN;
    sv->dropped++;
    return 0;
}

/* The dead member's in-flight slots. false if it must park. */
static bool salvage_inflight(struct salvage *sv, uint32_t id)
{
    shmbus_bus *b = sv->b;
    for (uint32_t i = 0; i < SB_INFLIGHT; i++) {
        struct sb_inflight *s = sb__inflight(b, id, i);
        /* Acquire pairs with the release stores of state in sb__inflight_put() and
         * shmbus_done(): a held slot's copy is complete. */
        uint64_t st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (st == 0)
            continue;
        bool ours = st == sv->gen || (sv->kept != 0 && st == sv->kept);
        uint32_t len = s->len, src = s->src, sg = s->src_gen;
        struct shmbus_msg m = {
            .src = src,
            .dst = id,
            .seq = s->seq,
            .corr = s->corr,
            .sent_ns = s->sent_ns,
            .len = len,
            .prio = (uint8_t)(s->prio & 7u),
            .flags = (uint8_t)(sg >> 24),
        };
        if (ours && (len > b->lay.msg_size || src < 1 || src > b->lay.max_clients ||
                     !(m.flags & SHMBUS_MSG_GROUP)))
            sv->dropped++;
        else if (ours && redeliver_one(sv, &m, sg & 0xffffffu, (const uint8_t *)s + sizeof(*s)) < 0)
            return false;
        /* Relaxed: the slot is ours (the entry is CLEANING by us); the id's next client
         * acquires the entry's state (FREE, released after us) before it uses the table. */
        atomic_store_explicit(&s->state, 0, memory_order_relaxed);
    }
    return true;
}

/* sb__mbox_drain_each()'s question for each waiting record: redeliver group messages, drop
 * the rest. A group message stamped for an earlier client of the id (committed after that
 * one's salvage walked past) is redelivered too: it was never anyone's. */
static int salvage_record(void *arg, const struct shmbus_msg *m, uint32_t src_gen, uint32_t dst_gen,
                          const void *data)
{
    struct salvage *sv = arg;
    (void)dst_gen;
    if (!(m->flags & SHMBUS_MSG_GROUP))
        return 1;
    uint64_t before = sv->dropped;
    int r = redeliver_one(sv, m, src_gen, data);
    if (r < 0)
        return r;
    if (sv->dropped != before) {
        sv->dropped = before; /* counted by the drain's return */
        return 1;
    }
    return 0;
}

int sb__stray(void *arg, const struct shmbus_msg *m, uint32_t src_gen, uint32_t dst_gen,
              const void *data)
{
    shmbus_client *c = arg;
    (void)dst_gen;
    if (!(m->flags & SHMBUS_MSG_GROUP))
        return 1;
    /* The receiver sends the copy under its own id; it never parks (it is not cleaning). */
    struct salvage sv = {.b = c->bus, .may_park = false};
    sv.sc.bus = c->bus;
    sv.sc.e = c->e;
    sv.sc.mb = c->mb;
    sv.sc.id = c->id;
    sv.sc.gen = c->gen;
    redeliver_one(&sv, m, src_gen, data);
    return sv.dropped != 0 ? 1 : 0;
}

bool sb__salvage(shmbus_bus *b, uint32_t id, uint32_t gen, uint32_t kept, bool ring, bool may_park,
                 uint64_t *dropped)
{
    struct salvage sv = {.b = b, .gen = gen, .kept = kept, .may_park = may_park};
    sv.sc.bus = b;
    sv.sc.e = sb__entry(b, id);
    sv.sc.mb = sb__mbox(b, id);
    sv.sc.id = id;
    sv.sc.gen = gen;
    *dropped = 0;
    if (!salvage_inflight(&sv, id)) {
        *dropped = sv.dropped;
        return false;
    }
    bool stopped = false;
    if (ring)
        sv.dropped += sb__mbox_drain_each(b, sv.sc.mb, salvage_record, &sv, &stopped);
    *dropped = sv.dropped;
    return !stopped;
}
