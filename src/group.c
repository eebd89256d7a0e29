/*
 * group.c - named groups: the table, membership (subscribe), topics (publish) and work
 * queues (send to one member).
 *
 * Design notes
 * ------------
 * The table is SB_GROUPS fixed slots at the end of the segment (internal.h). A name lives
 * in the first slot, probing linearly from its hash, that is FREE or holds it. A slot goes
 * FREE -> CLAIMING(pid) -> USED by CAS and release store and never goes back, so:
 *   - two processes creating the same name race for the same first FREE slot: one CAS
 *     wins, the other waits for USED and then reads the name there;
 *   - a lookup that meets a FREE slot (or a CLAIMING one whose claimer is dead) stops:
 *     nobody could have put the name further on without passing that slot while it was
 *     USED, and a slot that is USED stays USED;
 *   - a claimer that dies while CLAIMING leaves the slot to the next creator that probes it,
 *     which claims it over with its own pid.
 * The name is written only while CLAIMING and read only after an acquire load saw USED.
 *
 * Membership is a word per client id: the generation of the join that subscribed, or 0.
 * sb__client_current() decides if it still counts (registry entry LIVE with the same
 * generation, process alive), so a member that left or died is skipped at once, and its
 * word is cleared by leave() or the cleaner (sb__groups_forget()). Nothing here trusts the
 * segment: every word is loaded once, names are copied out bounded, ids come from the loop
 * index, and a slot whose state kind is garbage is treated as holding some other name.
 *
 * A process that dies in the middle of a publish leaves some subscribers with the copy and
 * some without, as a broadcast does; one that dies in a work-queue send has either put the
 * message in one member's mailbox or not (the mailbox's own rules).
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define CLAIM_WAIT_NS (1000000000ull) /* a live claimer that takes longer than this: -EBUSY */

static uint32_t name_hash(const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}

enum { SLOT_MATCH = 1, SLOT_OTHER = 2, SLOT_END = 3 };

/* Write our name into a slot we hold CLAIMING, then publish it. */
static void name_slot(struct sb_group *g, const char *name)
{
    memset(g->name, 0, sizeof(g->name));
    memcpy(g->name, name, strlen(name));
    /* Release: the name is visible before USED. Pairs with the acquire load of state in
     * probe_slot() and shmbus_group_list(). */
    atomic_store_explicit(&g->state, SB_GRP_ST(SB_GRP_USED, 0), memory_order_release);
}

/* One slot of a probe: does it hold name, another name, or end the probe? */
static int probe_slot(struct sb_group *g, const char *name, bool create)
{
    uint64_t until = sb__now_ns() + CLAIM_WAIT_NS;
    for (;;) {
        /* Acquire pairs with the release store of USED in name_slot(): the name we compare
         * was written before. */
        uint64_t s = atomic_load_explicit(&g->state, memory_order_acquire);
        unsigned kind = SB_GRP_KIND(s);
        if (kind == SB_GRP_USED) {
            char nm[SHMBUS_NAME_MAX + 1];
            memcpy(nm, g->name, SHMBUS_NAME_MAX);
            nm[SHMBUS_NAME_MAX] = '\0';
            return strcmp(nm, name) == 0 ? SLOT_MATCH : SLOT_OTHER;
        }
        if (kind > SB_GRP_USED || (s & 0x00ffffff00000000ull) != 0)
            return SLOT_OTHER; /* garbage: not ours, and nothing to wait for */
        bool dead_claimer = kind == SB_GRP_CLAIMING && !sb__proc_alive(SB_GRP_PID(s), 0);
        if (kind == SB_GRP_FREE || dead_claimer) {
            if (!create)
                return SLOT_END;
            /* Acquire (on success) pairs with nothing older than us that matters: the slot
             * was FREE or abandoned; release is given by name_slot(). */
            if (atomic_compare_exchange_strong_explicit(
                    &g->state, &s, SB_GRP_ST(SB_GRP_CLAIMING, getpid()), memory_order_acquire,
                    memory_order_relaxed)) {
                name_slot(g, name);
                return SLOT_MATCH;
            }
            continue;
        }
        /* CLAIMING by a live process: its name is about to appear. */
        if (sb__now_ns() >= until)
            return -EBUSY;
        sleep_ns(100000);
    }
}

int sb__group_find(shmbus_bus *b, const char *name, bool create)
{
    if (!sb__valid_name(name))
        return -EINVAL;
    if (sb__destroyed(b))
        return -EIDRM;
    if (create && b->rdonly)
        return -EROFS;
    uint32_t h = name_hash(name) % SB_GROUPS;
    for (uint32_t i = 0; i < SB_GROUPS; i++) {
        uint32_t k = (h + i) % SB_GROUPS;
        int r = probe_slot(sb__group(b, k), name, create);
        if (r == SLOT_MATCH)
            return (int)k;
        if (r == SLOT_END)
            return -ENOENT;
        if (r < 0)
            return r;
    }
    return create ? -ENOSPC : -ENOENT;
}

/* Is client id a current member of g, its process alive? *gen gets the generation it joined
 * with. With a sender c, the process is looked at through c's cache (at most one /proc read
 * per member per SB_LIVE_RECHECK_NS); without, every time. */
static bool member_word(shmbus_bus *b, struct sb_group *g, uint32_t id, uint32_t *gen,
                        shmbus_client *c, uint32_t *word)
{
    uint32_t m = atomic_load_explicit(&g->member[id - 1], memory_order_relaxed);
    *word = m;
    uint32_t mg = SB_MEMBER_GEN(m);
    if (mg == 0 ||
        !(c != NULL ? sb__client_current_cached(c, id, mg) : sb__client_current(b, id, mg, true)))
        return false;
    *gen = mg;
    return true;
}

static bool member_current(shmbus_bus *b, struct sb_group *g, uint32_t id, uint32_t *gen,
                           shmbus_client *c)
{
    uint32_t word;
    return member_word(b, g, id, gen, c, &word);
}

/* End the membership of client id if its word names generation gen (flags aside). */
static bool member_clear(struct sb_group *g, uint32_t id, uint32_t gen)
{
    uint32_t m = atomic_load_explicit(&g->member[id - 1], memory_order_relaxed);
    if (SB_MEMBER_GEN(m) != gen)
        return false;
    return atomic_compare_exchange_strong_explicit(&g->member[id - 1], &m, 0, memory_order_relaxed,
                                                   memory_order_relaxed);
}

void sb__groups_forget(shmbus_bus *b, uint32_t id, uint32_t gen)
{
    if (id < 1 || id > b->lay.max_clients || gen == 0)
        return;
    for (uint32_t k = 0; k < SB_GROUPS; k++) {
        struct sb_group *g = sb__group(b, k);
        if (SB_GRP_KIND(atomic_load_explicit(&g->state, memory_order_relaxed)) != SB_GRP_USED)
            continue;
        member_clear(g, id, gen);
        uint64_t l = atomic_load_explicit(&g->lead, memory_order_relaxed);
        if (SB_LEAD_ID(l) == id && SB_LEAD_GEN(l) == gen) {
            /* Release: pairs with the acquire load of lead in shmbus_elect(); the epoch
             * stays, so the next leader's is higher. */
            atomic_compare_exchange_strong_explicit(&g->lead, &l, SB_LEAD(SB_LEAD_EPOCH(l), 0, 0),
                                                    memory_order_release, memory_order_relaxed);
        }
    }
}

/* The client's own generation must still be the registry's (it did not get cleaned up). */
static int check_self(shmbus_client *c)
{
    if (sb__destroyed(c->bus))
        return -EIDRM;
    uint32_t g;
    int r = sb__dest_state(c->bus, c->id, &g);
    if (r < 0)
        return r;
    return g == c->gen ? 0 : -EHOSTUNREACH;
}

int shmbus_subscribe(shmbus_client *c, const char *name, unsigned flags)
{
    if (c == NULL || (flags & ~(SHMBUS_SUB_CONFIRM | SHMBUS_SUB_LOSSY)) != 0 ||
        !sb__valid_name(name))
        return -EINVAL;
    int r = check_self(c);
    if (r < 0)
        return r;
    int k = sb__group_find(c->bus, name, true);
    if (k < 0)
        return k;
    /* Lossy: from now on every receive of c holds its mailbox's pass lock, before any
     * publisher can see the flag below and shed (mailbox.c, docs/mailbox-v2.md 16). Set
     * once for the client's life. Relaxed: read by c's receiving thread, which must not be
     * inside a receive call now (shmbus.h). */
    if (flags & SHMBUS_SUB_LOSSY)
        atomic_store_explicit(&c->lossy, true, memory_order_relaxed);
    uint32_t word = c->gen | ((flags & SHMBUS_SUB_LOSSY) ? SB_MEMBER_LOSSY : 0u);
    /* Relaxed: the word is the whole message (who is a member); publishers that miss it for
     * a moment simply do not count us yet. */
    atomic_store_explicit(&sb__group(c->bus, (uint32_t)k)->member[c->id - 1], word,
                          memory_order_relaxed);
    /* Process-local (see shmbus_client.confirm): relaxed. */
    if (flags & SHMBUS_SUB_CONFIRM)
        atomic_fetch_or_explicit(&c->confirm, 1ull << k, memory_order_relaxed);
    else
        atomic_fetch_and_explicit(&c->confirm, ~(1ull << k), memory_order_relaxed);
    return 0;
}

int shmbus_unsubscribe(shmbus_client *c, const char *name)
{
    if (c == NULL || !sb__valid_name(name))
        return -EINVAL;
    if (sb__destroyed(c->bus))
        return -EIDRM;
    int k = sb__group_find(c->bus, name, false);
    if (k == -ENOENT)
        return -ENOENT;
    if (k < 0)
        return k;
    if (!member_clear(sb__group(c->bus, (uint32_t)k), c->id, c->gen))
        return -ENOENT;
    /* Messages of the group still in c's mailbox are taken unrecorded from now on; those
     * recorded already stay until shmbus_done(). */
    atomic_fetch_and_explicit(&c->confirm, ~(1ull << k), memory_order_relaxed);
    return 0;
}

int shmbus_publish(shmbus_client *c, const char *name, const void *data, size_t len, unsigned flags,
                   int timeout_ms)
{
    int r = sb__send_check(c, len, flags, SHMBUS_SEND_NONBLOCK, true);
    if (r < 0)
        return r;
    if ((data == NULL && len != 0) || !sb__valid_name(name))
        return -EINVAL;
    shmbus_bus *b = c->bus;
    int k = sb__group_find(b, name, false);
    if (k == -ENOENT)
        return 0; /* nobody ever subscribed */
    if (k < 0)
        return k;
    struct sb_group *g = sb__group(b, (uint32_t)k);
    uint64_t deadline = sb__deadline(timeout_ms);
    int count = 0, miss = 0;
    for (uint32_t id = 1; id <= b->lay.max_clients; id++) {
        uint32_t gen, word;
        /* The process is checked (through our cache: a /proc read per member at most every
         * millisecond): a subscriber killed before that is no member, even before a
         * cleaner has seen it. */
        if (!member_word(b, g, id, &gen, c, &word))
            continue;
        /* A lossy member's full mailbox is shed rather than waited for (mailbox.c). */
        unsigned f = (word & SB_MEMBER_LOSSY) ? flags | SB_SEND_SHED : flags;
        r = sb__send_member(c, id, gen, data, len, f, SHMBUS_MSG_TOPIC, (uint64_t)k, deadline);
        if (r == 0) {
            count++;
        } else if (r == -EIDRM) {
            return r;
        } else if (r == -EINTR) {
            atomic_fetch_add_explicit(&g->published, (uint64_t)count, memory_order_relaxed);
            return r;
        } else if (r == -ETIMEDOUT || r == -EAGAIN || r == -EBADMSG) {
            atomic_fetch_add_explicit(&g->missed, 1, memory_order_relaxed);
            if (miss == 0 || miss == -EBADMSG)
                miss = r;
        }
        /* -EHOSTUNREACH, -ECONNRESET: the member left or died meanwhile, not a miss. */
    }
    atomic_fetch_add_explicit(&g->published, (uint64_t)count, memory_order_relaxed);
    return miss != 0 ? miss : count;
}

/* The live member with the fewest messages waiting, the first found from the round-robin
 * cursor among equals; the cursor moves past it. 0 if there is none. c: the sender whose
 * liveness cache is used, or NULL (a salvager: /proc every time). */
static uint32_t pick_member(shmbus_bus *b, shmbus_client *c, struct sb_group *g, uint32_t *gen_out)
{
    uint32_t n = b->lay.max_clients;
    /* Relaxed: the cursor is a hint shared by senders; any value (even garbage) is some
     * place to start, reduced modulo n. */
    uint32_t start = atomic_load_explicit(&g->rr, memory_order_relaxed) % n;
    uint32_t best = 0, best_gen = 0, best_depth = UINT32_MAX;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = (start + i) % n + 1, gen;
        if (!member_current(b, g, id, &gen, c))
            continue;
        uint32_t d = sb__mbox_depth(b, id);
        if (d < best_depth) {
            best = id;
            best_gen = gen;
            best_depth = d;
            if (d == 0)
                break; /* nobody has less */
        }
    }
    if (best != 0)
        atomic_store_explicit(&g->rr, best % n, memory_order_relaxed); /* index of best + 1 */
    *gen_out = best_gen;
    return best;
}

uint32_t sb__group_pick(shmbus_bus *b, uint32_t k, uint32_t *gen)
{
    if (k >= SB_GROUPS)
        return 0;
    return pick_member(b, NULL, sb__group(b, k), gen);
}

/* Sleep up to 10 ms (not past deadline); -EINTR if a signal handler ran. */
static int member_poll_sleep(uint64_t deadline)
{
    uint64_t now = sb__now_ns(), wait = 10000000ull;
    if (deadline != UINT64_MAX && deadline > now && deadline - now < wait)
        wait = deadline - now;
    struct timespec ts = {0, (long)wait};
    if (nanosleep(&ts, NULL) != 0 && errno == EINTR)
        return -EINTR;
    return 0;
}

/* A keyed send: the member bucket `slot` is bound to, while it is current; else the least
 * loaded, bound to the bucket by CAS (the first binder wins, the others use its choice). */
static uint32_t pick_sticky(shmbus_client *c, struct sb_group *g, uint32_t slot, uint32_t *gen_out)
{
    shmbus_bus *b = c->bus;
    for (int attempt = 0; attempt < 4; attempt++) {
        /* Relaxed: the bucket names a member; whether it is one is checked against the
         * registry (with its own acquire), not inferred from this word. */
        uint64_t w = atomic_load_explicit(&g->sticky[slot], memory_order_relaxed);
        uint32_t id = SB_STICKY_ID(w), gen = SB_STICKY_GEN(w), mg;
        if (id >= 1 && id <= b->lay.max_clients && member_current(b, g, id, &mg, c) && mg == gen) {
            *gen_out = gen;
            return id;
        }
        uint32_t pick = pick_member(c->bus, c, g, &mg);
        if (pick == 0)
            return 0;
        if (atomic_compare_exchange_strong_explicit(&g->sticky[slot], &w, SB_STICKY_WORD(mg, pick),
                                                    memory_order_relaxed, memory_order_relaxed)) {
            *gen_out = mg;
            return pick;
        }
    }
    return pick_member(c->bus, c, g, gen_out); /* the bucket keeps changing: any member will do */
}

static int send_group(shmbus_client *c, const char *name, bool keyed, uint64_t key,
                      const void *data, size_t len, unsigned flags, int timeout_ms)
{
    int r = sb__send_check(c, len, flags, SHMBUS_SEND_NONBLOCK | SHMBUS_SEND_ACK, true);
    if (r < 0)
        return r;
    if ((data == NULL && len != 0) || !sb__valid_name(name))
        return -EINVAL;
    shmbus_bus *b = c->bus;
    uint64_t deadline = sb__deadline(timeout_ms);
    int k = -ENOENT;
    uint32_t retries = 0;
    for (;;) {
        if (k == -ENOENT) {
            k = sb__group_find(b, name, false);
            if (k < 0 && k != -ENOENT)
                return k;
        }
        uint32_t id = 0, gen = 0;
        if (k >= 0) {
            struct sb_group *g = sb__group(b, (uint32_t)k);
            if (keyed)
                id = pick_sticky(c, g, (uint32_t)(key % SB_STICKY), &gen);
            else
                id = pick_member(c->bus, c, g, &gen);
            if (id != 0) {
                r = sb__send_member(c, id, gen, data, len, flags, SHMBUS_MSG_GROUP, (uint64_t)k,
                                    deadline);
                if (r == 0) {
                    atomic_fetch_add_explicit(&g->queued, 1, memory_order_relaxed);
                    return (int)id;
                }
                /* The member left or died before the message was in its mailbox: choose
                 * again (with an ACK, -ECONNRESET may come after delivery: no resend). */
                bool gone = r == -EHOSTUNREACH || r == -ECONNRESET;
                if (!gone || (flags & SHMBUS_SEND_ACK))
                    return r;
                if (++retries <= b->lay.max_clients)
                    continue;
            }
        }
        if (sb__destroyed(b))
            return -EIDRM;
        if (deadline == 0 || sb__now_ns() >= deadline)
            return -EHOSTUNREACH;
        r = member_poll_sleep(deadline);
        if (r < 0)
            return r;
        sb__maybe_reap(b);
        retries = 0;
    }
}

int shmbus_send_group(shmbus_client *c, const char *name, const void *data, size_t len,
                      unsigned flags, int timeout_ms)
{
    return send_group(c, name, false, 0, data, len, flags, timeout_ms);
}

int shmbus_send_group_key(shmbus_client *c, const char *name, uint64_t key, const void *data,
                          size_t len, unsigned flags, int timeout_ms)
{
    /* Mix the key so that keys that differ only in high bits use different buckets. */
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return send_group(c, name, true, key, data, len, flags, timeout_ms);
}

int shmbus_group_list(shmbus_bus *b, struct shmbus_group_info *out, size_t n)
{
    if (b == NULL || (out == NULL && n != 0))
        return -EINVAL;
    if (sb__destroyed(b))
        return -EIDRM;
    size_t count = 0;
    for (uint32_t k = 0; k < SB_GROUPS; k++) {
        struct sb_group *g = sb__group(b, k);
        /* Acquire pairs with the release store of USED in name_slot(). */
        uint64_t s = atomic_load_explicit(&g->state, memory_order_acquire);
        if (SB_GRP_KIND(s) != SB_GRP_USED)
            continue;
        if (count < n) {
            struct shmbus_group_info *gi = &out[count];
            memset(gi, 0, sizeof(*gi));
            gi->index = k;
            memcpy(gi->name, g->name, SHMBUS_NAME_MAX);
            gi->name[SHMBUS_NAME_MAX] = '\0';
            for (uint32_t id = 1; id <= b->lay.max_clients; id++) {
                uint32_t gen;
                if (member_current(b, g, id, &gen, NULL))
                    gi->members++;
            }
            uint64_t l = atomic_load_explicit(&g->lead, memory_order_relaxed);
            gi->epoch = SB_LEAD_EPOCH(l);
            if (sb__client_current(b, SB_LEAD_ID(l), SB_LEAD_GEN(l), true))
                gi->leader = SB_LEAD_ID(l);
            gi->published = atomic_load_explicit(&g->published, memory_order_relaxed);
            gi->missed = atomic_load_explicit(&g->missed, memory_order_relaxed);
            gi->queued = atomic_load_explicit(&g->queued, memory_order_relaxed);
            gi->elections = atomic_load_explicit(&g->elections, memory_order_relaxed);
            gi->redelivered = atomic_load_explicit(&g->redelivered, memory_order_relaxed);
            gi->lost = atomic_load_explicit(&g->lost, memory_order_relaxed);
        }
        count++;
    }
    return (int)count;
}
