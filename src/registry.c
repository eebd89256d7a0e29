/*
 * registry.c - clients joining, leaving, being looked up, listed, and cleaned up after.
 *
 * Design notes
 * ------------
 * The registry is an array of struct sb_entry, one per client id. Each entry's state word
 * (see internal.h) moves FREE -> JOINING -> LIVE -> CLEANING -> FREE, always by CAS, so
 * one process wins every transition. The generation grows at each join: a message carries
 * its destination's generation, and a new owner of an id drops what was meant for the old.
 *
 * Who cleans: any process that notices a dead owner (a LIVE entry whose process is gone, a
 * JOINING entry whose joiner died, a CLEANING entry whose cleaner died) CASes the word to
 * CLEANING with its own pid, then (1) skips the positions the dead client reserved but
 * never committed in other mailboxes, (2) drains its mailbox, (3) stores FREE. Each step is
 * idempotent, so a cleaner that dies half-way leaves work the next cleaner simply redoes.
 *
 * Blocked calls run shmbus_reap() on their own about once a second per bus (the first one
 * to CAS reap_ns does it), so dead clients are cleaned up even if no one calls it.
 *
 * Kept mailboxes. shmbus_leave_keep() goes LIVE -> CLEANING -> FREE like shmbus_leave(),
 * skipping its own intents, but does not drain: it stores kept_gen = its generation before
 * the release store of FREE, so an entry is "kept" when it is FREE and kept_gen equals the
 * generation in its state word (sb__kept_gen(), the one place this rule lives). A plain
 * leave or a cleaner stores FREE with the leaver's generation too, which a stale kept_gen
 * never equals (kept_gen only ever holds the generation of an earlier owner), so neither
 * needs to touch the word: a crashed client is drained as ever. The next join of the id
 * (explicitly by id, or by the name the keeper had) claims FREE(K) -> JOINING(K + 1) and
 * leaves kept_gen = K in place; a joined entry whose kept_gen is its generation's
 * predecessor took over generation K, and the client accepts messages stamped K as its own
 * (client->kept_gen, read once at join). Any other join clears kept_gen, and the kept
 * messages are then a previous owner's: dropped and counted as usual. Senders see a kept
 * id as free (-EHOSTUNREACH); a sender already waiting for the ACK of a kept message keeps
 * waiting (to its deadline) for the next client to take it. A client that took over and
 * leaves with keep again first restamps the older generation's committed messages with its
 * own (it is their consumer), so one kept generation is always enough. A scribbled kept_gen
 * can make a join accept messages stamped with the previous owner's generation, no more:
 * what a scribbled dst_gen can do already.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <unistd.h>

#include "internal.h"

bool sb__entry_alive(const struct sb_entry *e, uint64_t s)
{
    uint64_t start = 0;
    if (SB_ST_KIND(s) == SB_LIVE)
        start = atomic_load_explicit(&e->start_time, memory_order_relaxed);
    return sb__proc_alive(SB_ST_PID(s), start);
}

bool sb__client_current(shmbus_bus *b, uint32_t id, uint32_t gen, bool check_process)
{
    if (id < 1 || id > b->lay.max_clients || gen == 0)
        return false;
    struct sb_entry *e = sb__entry(b, id);
    /* Acquire pairs with the release store of LIVE in shmbus_join(): the start time we
     * judge the process by belongs to this state. */
    uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
    if (SB_ST_KIND(s) != SB_LIVE || SB_ST_GEN(s) != gen)
        return false;
    return !check_process || sb__entry_alive(e, s);
}

/* A liveness cache word: the generation found alive (24 bits) and when, in units of 2^20
 * ns (40 bits). */
#define LIVE_WORD(gen, t) (((uint64_t)((gen)&0xffffffu) << 40) | (((t) >> 20) & 0xffffffffffull))
#define LIVE_GEN(w)       ((uint32_t)((w) >> 40))
#define LIVE_AT(w)        (((w)&0xffffffffffull) << 20)
#define LIVE_AT_MASK      (0xffffffffffull << 20)

bool sb__client_current_cached(shmbus_client *c, uint32_t id, uint32_t gen)
{
    shmbus_bus *b = c->bus;
    if (!sb__client_current(b, id, gen, false))
        return false; /* left, rejoined or being cleaned: no /proc read needed */
    /* Acquire pairs with the release CAS below: the array's zeroes are seen. */
    _Atomic uint64_t *live = atomic_load_explicit(&c->live, memory_order_acquire);
    if (live == NULL) {
        _Atomic uint64_t *fresh = calloc(b->lay.max_clients, sizeof(*fresh));
        if (fresh == NULL)
            return sb__client_current(b, id, gen, true); /* no cache: ask every time */
        /* Release pairs with the acquire load above, in other threads of this process. */
        if (atomic_compare_exchange_strong_explicit(&c->live, &live, fresh, memory_order_acq_rel,
                                                    memory_order_acquire))
            live = fresh;
        else
            free(fresh); /* another thread's array won; live holds it */
    }
    uint64_t now = sb__now_ns();
    /* Relaxed: a hint private to this process; a torn race between threads only costs one
     * more /proc read. */
    uint64_t w = atomic_load_explicit(&live[id - 1], memory_order_relaxed);
    if (w != 0 && LIVE_GEN(w) == (gen & 0xffffffu) &&
        (((now & LIVE_AT_MASK) - LIVE_AT(w)) & LIVE_AT_MASK) < SB_LIVE_RECHECK_NS)
        return true;
    if (!sb__client_current(b, id, gen, true))
        return false;
    atomic_store_explicit(&live[id - 1], LIVE_WORD(gen, now), memory_order_relaxed);
    return true;
}

static uint64_t my_start_time(void)
{
    return sb__proc_start_time(getpid());
}

/* A salvage (redeliver.c) that could not place every group message now: CLEANING(mine) ->
 * CLEANING with pid 0, which no liveness check calls alive, so the next reap takes the
 * entry over and goes on. Senders waiting on its full mailbox look again. */
static void park_entry(shmbus_bus *b, uint32_t id, uint64_t mine)
{
    struct sb_entry *e = sb__entry(b, id);
    /* Release pairs with the acquire load of state in cleanup_entry() of the next reaper:
     * what we redelivered and marked is visible to it. */
    atomic_compare_exchange_strong_explicit(&e->state, &mine,
                                            SB_ST(SB_CLEANING, SB_ST_GEN(mine), 0),
                                            memory_order_release, memory_order_relaxed);
    struct sb_mbox *mb = sb__mbox(b, id);
    uint32_t w = atomic_exchange_explicit(&mb->space_waiters, 0, memory_order_acq_rel);
    sb__post_waiters(b, &mb->space_sem, w);
}

/*
 * On a durable bus the messages waiting in a mailbox were accepted and not taken: whether
 * its owner leaves or dies, the mailbox is kept for the id's next client (as
 * shmbus_leave_keep() keeps one) rather than drained, which would leave them to come back
 * only at the next rebuild, after what the next client received meanwhile. Not when it
 * holds group messages: those go to the group's other members, as on any bus (the drain).
 * The caller is the mailbox's consumer now (a leaver, or the cleaner of its dead owner).
 */
static bool keeps_mailbox(shmbus_bus *b, struct sb_mbox *mb)
{
    return b->j != NULL && !sb__mbox_holds_group(b, mb);
}

/* Clean up entry `id` if its owner is dead. Returns 1 if this call cleaned it. */
static int cleanup_entry(shmbus_bus *b, uint32_t id)
{
    struct sb_entry *e = sb__entry(b, id);
    /* Pairs with the release stores of state in join/leave/cleanup: we see the owner's
     * start_time and intents as they were when it published its state. */
    uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
    unsigned kind = SB_ST_KIND(s);
    if (kind == SB_FREE || kind > SB_CLEANING)
        return 0;
    if (sb__entry_alive(e, s))
        return 0;
    /* Acquire: as the load above. Release pairs with the acquire loads of state in
     * claimants() and sb__dest_state(): CLEANING is seen with this cleaner's pid. */
    uint64_t mine = SB_ST(SB_CLEANING, SB_ST_GEN(s), getpid());
    if (!atomic_compare_exchange_strong_explicit(&e->state, &s, mine, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return 0; /* someone else is on it, or it changed */

    sb__mbox_skip_intents(b, e);
    sb__groups_forget(b, id, SB_ST_GEN(s)); /* a dead client is nobody's member or leader */
    sb__tp(SB_TP_CLEANING);                 /* test-only: a cleaner half-way */
    struct sb_mbox *mb = sb__mbox(b, id);
    uint32_t gen = SB_ST_GEN(s), kept = sb__kept_gen(e, mine);
    uint64_t n;
    bool done;
    if (keeps_mailbox(b, mb)) {
        /* As leave() with keep: one kept generation (we are the consumer now), its
         * unconfirmed group messages to other members; the kept_gen store is published by
         * the release store of FREE below. */
        if (kept != 0)
            sb__mbox_restamp(b, mb, kept, gen);
        done = sb__salvage(b, id, gen, kept, false, true, &n);
        if (done)
            atomic_store_explicit(&e->kept_gen, gen, memory_order_relaxed);
    } else {
        /* Its group messages go to other members (redeliver.c), the rest is drained. */
        done = sb__salvage(b, id, gen, kept, true, true, &n);
    }
    sb__note_dropped(e, n);
    if (!done) {
        park_entry(b, id, mine);
        return 1;
    }
    atomic_store_explicit(&mb->sleeping, 0, memory_order_relaxed);

    /* Release: the drained mailbox (or the kept one, restamped, and kept_gen) is visible
     * before the id can be joined again. Pairs with the acquire load in try_claim(). */
    atomic_store_explicit(&e->state, SB_ST(SB_FREE, SB_ST_GEN(s), 0), memory_order_release);
    /* Senders blocked on the full mailbox re-check the state when woken. */
    uint32_t w = atomic_exchange_explicit(&mb->space_waiters, 0, memory_order_acq_rel);
    sb__post_waiters(b, &mb->space_sem, w);
    if (atomic_load_explicit(&e->ack_waiting, memory_order_relaxed))
        sb__sem_post(&e->ack_sem);
    return 1;
}

int shmbus_reap(shmbus_bus *b)
{
    if (b == NULL)
        return -EINVAL;
    if (b->rdonly)
        return -EROFS;
    int n = 0;
    for (uint32_t id = 1; id <= b->lay.max_clients; id++)
        n += cleanup_entry(b, id);
    sb__tap_reap(b); /* a dead tail's copies cost every sender until then */
    return n;
}

int sb__maybe_reap(shmbus_bus *b)
{
    if (b->rdonly)
        return 0;
    uint64_t now = sb__now_ns();
    uint64_t last = atomic_load_explicit(&b->hdr->reap_ns, memory_order_relaxed);
    if (now - last < SB_REAP_NS && last <= now)
        return 0;
    if (!atomic_compare_exchange_strong_explicit(&b->hdr->reap_ns, &last, now, memory_order_relaxed,
                                                 memory_order_relaxed))
        return 0;
    return shmbus_reap(b);
}

void sb__note_dropped(struct sb_entry *e, uint64_t n)
{
    if (n != 0)
        atomic_fetch_add_explicit(&e->dropped, n, memory_order_relaxed);
}

/* The generation after g (24 bits, never 0). */
static uint32_t next_gen(uint32_t g)
{
    g = (g + 1) & 0xffffffu;
    return g == 0 ? 1 : g;
}

uint32_t sb__kept_gen(const struct sb_entry *e, uint64_t s)
{
    /* Read after the state word s: the acquire that loaded s pairs with the release store
     * of FREE in shmbus_leave_keep(), which follows its store of kept_gen. */
    uint32_t k = atomic_load_explicit(&e->kept_gen, memory_order_relaxed);
    unsigned kind = SB_ST_KIND(s);
    if (k == 0 || k > 0xffffffu || kind > SB_CLEANING)
        return 0;
    if (kind == SB_FREE)
        return k == SB_ST_GEN(s) ? k : 0;
    return next_gen(k) == SB_ST_GEN(s) ? k : 0;
}

/* Copy a name out of the segment: bounded, and terminated whatever the peer wrote. */
static void copy_name(char *dst, const char *src)
{
    memcpy(dst, src, SHMBUS_NAME_MAX);
    dst[SHMBUS_NAME_MAX] = '\0';
}

static int find_live_name(shmbus_bus *b, const char *name, uint32_t except)
{
    for (uint32_t id = 1; id <= b->lay.max_clients; id++) {
        if (id == except)
            continue;
        struct sb_entry *e = sb__entry(b, id);
        /* Acquire pairs with the release store of LIVE in shmbus_join(): the name we compare
         * was written before the entry went LIVE. */
        uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        if (SB_ST_KIND(s) != SB_LIVE)
            continue;
        char nm[SHMBUS_NAME_MAX + 1];
        copy_name(nm, e->name);
        if (strcmp(nm, name) == 0)
            return (int)id;
    }
    return -EHOSTUNREACH;
}

int shmbus_lookup(shmbus_bus *b, const char *name)
{
    if (b == NULL || !sb__valid_name(name))
        return -EINVAL;
    return find_live_name(b, name, 0);
}

/* Which free entries a join may claim (see shmbus_join()). */
enum claim_mode {
    CLAIM_ANY,       /* an id the caller named: take over a kept mailbox */
    CLAIM_SAME_NAME, /* only a kept mailbox whose keeper had this name: take it over */
    CLAIM_UNKEPT,    /* only an entry with no kept mailbox */
    CLAIM_DROP_KEPT, /* any: a kept mailbox is not taken over (its messages are dropped) */
};

/* Take entry `id` for this process: FREE -> JOINING. *kept gets the generation taken over
 * from a kept mailbox, or 0. */
static int try_claim(shmbus_bus *b, uint32_t id, enum claim_mode mode, const char *name,
                     uint32_t *gen, uint32_t *kept)
{
    struct sb_entry *e = sb__entry(b, id);
    for (int attempt = 0; attempt < 8; attempt++) {
        /* Acquire pairs with the release stores of FREE in leave/cleanup: a drained or
         * kept mailbox (and kept_gen) is visible before we claim the id. */
        uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        if (SB_ST_KIND(s) != SB_FREE) {
            if (sb__entry_alive(e, s))
                return -EEXIST;
            cleanup_entry(b, id);
            continue;
        }
        uint32_t k = sb__kept_gen(e, s);
        if (mode == CLAIM_UNKEPT && k != 0)
            return -EEXIST;
        if (mode == CLAIM_SAME_NAME) {
            char nm[SHMBUS_NAME_MAX + 1];
            copy_name(nm, e->name);
            if (k == 0 || name == NULL || strcmp(nm, name) != 0)
                return -EEXIST;
        }
        if (mode == CLAIM_DROP_KEPT)
            k = 0;
        uint32_t g = next_gen(SB_ST_GEN(s));
        uint64_t mine = SB_ST(SB_JOINING, g, getpid());
        /* Acquire (on success) as the load above; pairs with the same release stores. */
        if (atomic_compare_exchange_strong_explicit(&e->state, &s, mine, memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            /* Not taking over: forget the kept generation, so that it can never match
             * later (kept_gen is read only with a state word, after its acquire). */
            if (k == 0)
                atomic_store_explicit(&e->kept_gen, 0, memory_order_relaxed);
            *gen = g;
            *kept = k;
            return 0;
        }
    }
    return -EEXIST;
}

/* id 0: a kept mailbox left under this name, else the lowest id with no kept mailbox, else
 * the lowest free id (dropping what it kept). */
static int claim_any_id(shmbus_bus *b, const char *name, uint32_t *id, uint32_t *gen,
                        uint32_t *kept)
{
    static const enum claim_mode modes[] = {CLAIM_SAME_NAME, CLAIM_UNKEPT, CLAIM_DROP_KEPT};
    for (unsigned m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        if (modes[m] == CLAIM_SAME_NAME && name == NULL)
            continue;
        for (uint32_t k = 1; k <= b->lay.max_clients; k++) {
            if (try_claim(b, k, modes[m], name, gen, kept) == 0) {
                *id = k;
                return 0;
            }
        }
    }
    return -EUSERS;
}

static void reset_entry(struct sb_entry *e, const struct sb_flow_row *row, const char *name)
{
    atomic_store_explicit(&e->start_time, my_start_time(), memory_order_relaxed);
    e->joined_ns = sb__realtime_ns();
    memset(e->name, 0, sizeof(e->name));
    if (name != NULL)
        snprintf(e->name, sizeof(e->name), "%s", name);
    atomic_store_explicit(&e->sent, 0, memory_order_relaxed);
    /* The row's counts now: nobody else adds to them, the id being ours. */
    atomic_store_explicit(&e->bytes_sent_base,
                          atomic_load_explicit(&row->bytes_sent, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&e->full_waits, 0, memory_order_relaxed);
    for (unsigned i = 0; i < SB_INTENTS; i++)
        atomic_store_explicit(&e->intent[i].n, 0, memory_order_relaxed);
    atomic_store_explicit(&e->received_base,
                          atomic_load_explicit(&row->received, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&e->bytes_received_base,
                          atomic_load_explicit(&row->bytes_received, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&e->wakeups, 0, memory_order_relaxed);
    atomic_store_explicit(&e->spins, 0, memory_order_relaxed);
    atomic_store_explicit(&e->dropped, 0, memory_order_relaxed);
    atomic_store_explicit(&e->lost, 0, memory_order_relaxed);
    atomic_store_explicit(&e->ack_seq, 0, memory_order_relaxed);
    atomic_store_explicit(&e->ack_waiting, 0, memory_order_relaxed);
    for (unsigned i = 0; i < SHMBUS_LAT_BUCKETS; i++)
        atomic_store_explicit(&e->lat_hist[i], 0, memory_order_relaxed);
}

int shmbus_join(shmbus_bus *b, uint32_t id, const char *name, shmbus_client **out)
{
    if (b == NULL || out == NULL)
        return -EINVAL;
    *out = NULL;
    if (name != NULL && !sb__valid_name(name))
        return -EINVAL;
    if (id > b->lay.max_clients)
        return -EINVAL;
    if (b->rdonly)
        return -EROFS;
    if (sb__destroyed(b))
        return -EIDRM;
    if (name != NULL && find_live_name(b, name, 0) > 0)
        return -EEXIST;

    shmbus_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    uint32_t gen = 0, kept = 0;
    int r;
    if (id != 0)
        r = try_claim(b, id, CLAIM_ANY, name, &gen, &kept);
    else
        r = claim_any_id(b, name, &id, &gen, &kept);
    if (r < 0) {
        free(c);
        return r;
    }

    struct sb_entry *e = sb__entry(b, id);
    struct sb_mbox *mb = sb__mbox(b, id);
    sb__tp(SB_TP_JOINING); /* test-only: claimed, not yet LIVE */
    reset_entry(e, sb__flow_row(b, id), name);
    atomic_store_explicit(&mb->sleeping, 0, memory_order_relaxed);
    /* Release: the reset entry is visible to whoever sees LIVE. Pairs with the acquire in
     * sb__dest_state() and cleanup_entry(). */
    atomic_store_explicit(&e->state, SB_ST(SB_LIVE, gen, getpid()), memory_order_release);

    c->bus = b;
    c->e = e;
    c->mb = mb;
    c->row = sb__flow_row(b, id);
    c->id = id;
    c->gen = gen;
    c->kept_gen = kept;
    sb__mbox_attach(c);

    /* Two processes may have joined with the same name at once: the lower id keeps it. */
    if (name != NULL) {
        int other = find_live_name(b, name, id);
        if (other > 0 && (uint32_t)other < id) {
            /* What we took over stays for the next client of this id. */
            if (kept != 0)
                shmbus_leave_keep(c);
            else
                shmbus_leave(c);
            return -EEXIST;
        }
    }
    *out = c;
    return 0;
}

/* LIVE -> CLEANING -> FREE for the handle's owner; drain the mailbox, or keep it. */
static int leave(shmbus_client *c, bool keep)
{
    shmbus_bus *b = c->bus;
    struct sb_entry *e = c->e;
    uint64_t s = SB_ST(SB_LIVE, c->gen, getpid());
    uint64_t mine = SB_ST(SB_CLEANING, c->gen, getpid());
    /* Release: a cleaner that takes over from a leaver dying here sees our last receives
     * and intents; pairs with the acquire load of state in cleanup_entry(). */
    if (!atomic_compare_exchange_strong_explicit(&e->state, &s, mine, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return SB_ST_KIND(s) == SB_CLEANING ? -ECONNRESET : -EHOSTUNREACH;
    sb__tp(SB_TP_LEAVING);               /* test-only: leaving, entry CLEANING */
    sb__groups_forget(b, c->id, c->gen); /* leaving ends subscriptions and leaderships */
    sb__mbox_publish(c);                 /* the drain or the next client starts where we stopped */
    sb__mbox_skip_intents(b, e);
    uint64_t dropped;
    if (keep || keeps_mailbox(b, c->mb)) {
        /* One kept generation only: ours. Messages still stamped with the one we took
         * over get ours (we are their consumer, nobody else writes a committed slot). */
        if (c->kept_gen != 0)
            sb__mbox_restamp(b, c->mb, c->kept_gen, c->gen);
        /* Our unconfirmed group messages go to other members now (dropped if none can
         * take them at once): the kept mailbox has no room for what we took. */
        sb__salvage(b, c->id, c->gen, c->kept_gen, false, false, &dropped);
        sb__note_dropped(e, dropped);
        atomic_store_explicit(&e->kept_gen, c->gen, memory_order_relaxed);
    } else if (!sb__salvage(b, c->id, c->gen, c->kept_gen, true, true, &dropped)) {
        /* Group messages no member can take yet: the next reap goes on (as for a death). */
        sb__note_dropped(e, dropped);
        atomic_store_explicit(&c->mb->sleeping, 0, memory_order_relaxed);
        park_entry(b, c->id, mine);
        return 0;
    }
    atomic_store_explicit(&c->mb->sleeping, 0, memory_order_relaxed);
    /* Release: the drained mailbox, or the restamped one and kept_gen, are visible to whoever
     * sees FREE. Pairs with the acquire in try_claim(), sb__dest_state(), shmbus_list() and
     * check_ack_dest(). */
    atomic_store_explicit(&e->state, SB_ST(SB_FREE, c->gen, 0), memory_order_release);
    /* Senders blocked on a full mailbox look at the state again: the id is free. The
     * exchange (after the release of FREE) pairs with their add + fence in wait_space(): a
     * sender that counted itself later sees FREE when it re-checks the state. */
    uint32_t w = atomic_exchange_explicit(&c->mb->space_waiters, 0, memory_order_acq_rel);
    sb__post_waiters(b, &c->mb->space_sem, w);
    return 0;
}

void shmbus_leave(shmbus_client *c)
{
    if (c == NULL)
        return;
    sb__evfd_close(c); /* while still LIVE: the id's next client may arm its own */
    leave(c, false);
    free(c->hcache);
    free((void *)c->live);
    free(c);
}

int shmbus_leave_keep(shmbus_client *c)
{
    if (c == NULL)
        return -EINVAL;
    sb__evfd_close(c);
    int r = leave(c, true);
    free(c->hcache);
    free((void *)c->live);
    free(c);
    return r;
}

uint32_t shmbus_client_id(const shmbus_client *c)
{
    return c ? c->id : 0;
}

shmbus_bus *shmbus_client_bus(const shmbus_client *c)
{
    return c ? c->bus : NULL;
}

void shmbus_client_set_spin(shmbus_client *c, unsigned usec)
{
    if (c != NULL)
        c->spin_ns = (uint64_t)usec * 1000u;
}

/* A client's count kept as its id's row count less the base stored at join (sb_entry). The
 * base is loaded first: a join between the two loads can only make the base older, never
 * the row's count smaller; a scribbled base gives 0 or a wrong count. */
static uint64_t since_join(const _Atomic uint64_t *base, const _Atomic uint64_t *row)
{
    uint64_t b0 = atomic_load_explicit(base, memory_order_relaxed);
    uint64_t now = atomic_load_explicit(row, memory_order_relaxed);
    return now >= b0 ? now - b0 : 0;
}

static void read_counters(const struct sb_entry *e, const struct sb_flow_row *row,
                          struct shmbus_counters *k)
{
    k->sent = atomic_load_explicit(&e->sent, memory_order_relaxed);
    k->received = since_join(&e->received_base, &row->received);
    k->bytes_sent = since_join(&e->bytes_sent_base, &row->bytes_sent);
    k->bytes_received = since_join(&e->bytes_received_base, &row->bytes_received);
    k->full_waits = atomic_load_explicit(&e->full_waits, memory_order_relaxed);
    k->wakeups = atomic_load_explicit(&e->wakeups, memory_order_relaxed);
    k->spins = atomic_load_explicit(&e->spins, memory_order_relaxed);
    k->dropped = atomic_load_explicit(&e->dropped, memory_order_relaxed);
    k->lost = atomic_load_explicit(&e->lost, memory_order_relaxed);
    for (unsigned i = 0; i < SHMBUS_LAT_BUCKETS; i++)
        k->lat_hist[i] = atomic_load_explicit(&e->lat_hist[i], memory_order_relaxed);
}

int shmbus_list(shmbus_bus *b, struct shmbus_client_info *out, size_t n)
{
    if (b == NULL || (out == NULL && n != 0))
        return -EINVAL;
    size_t count = 0;
    for (uint32_t id = 1; id <= b->lay.max_clients; id++) {
        struct sb_entry *e = sb__entry(b, id);
        /* Acquire pairs with the release stores of state in shmbus_join(), shmbus_leave()
         * and cleanup_entry(): the name, counters and start time we copy are the
         * state's. */
        uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        unsigned kind = SB_ST_KIND(s);
        if (kind > SB_CLEANING)
            continue;
        /* A free id is listed only while its kept mailbox holds something. */
        if (kind == SB_FREE && sb__kept_gen(e, s) == 0)
            continue;
        uint32_t depth = sb__mbox_depth(b, id);
        if (kind == SB_FREE && depth == 0)
            continue;
        if (count < n) {
            struct shmbus_client_info *ci = &out[count];
            memset(ci, 0, sizeof(*ci));
            ci->id = id;
            ci->pid = SB_ST_PID(s);
            bool alive = kind != SB_FREE && sb__entry_alive(e, s);
            if (kind == SB_FREE)
                ci->state = SHMBUS_CLIENT_KEPT;
            else if (kind == SB_LIVE)
                ci->state = alive ? SHMBUS_CLIENT_LIVE : SHMBUS_CLIENT_DEAD;
            else if (kind == SB_JOINING)
                ci->state = alive ? SHMBUS_CLIENT_JOINING : SHMBUS_CLIENT_DEAD;
            else
                ci->state = SHMBUS_CLIENT_DEAD;
            copy_name(ci->name, e->name);
            ci->joined_ns = e->joined_ns;
            ci->depth = depth;
            ci->capacity = sb__mbox_capacity(b);
            read_counters(e, sb__flow_row(b, id), &ci->counters);
        }
        count++;
    }
    return (int)count;
}

/* ---- shmbus_clean ---------------------------------------------------------------------- */

static void report(shmbus_clean_fn cb, void *arg, const char *kind, const char *what,
                   const char *why)
{
    if (cb != NULL)
        cb(kind, what, why, arg);
}

/* One bus that has a key file. Returns the number of stale objects found. */
static int clean_bus(const char *name, int dry_run, shmbus_clean_fn cb, void *arg)
{
    char path[600], what[128], why[160];
    int r = sb__clean_key(name, dry_run, path, sizeof(path));
    if (r == 1) {
        report(cb, arg, "key file", path, "its segment is gone");
        return 1;
    }
    if (r < 0)
        return 0;

    /* Anything else that cannot be opened (not a bus, scribbled, another user's) is left
     * as it is: `shmbus ls` shows it, `shmbus destroy --force` removes it. */
    shmbus_bus *b;
    r = shmbus_bus_open(name, NULL, dry_run ? SHMBUS_OPEN_RDONLY : 0, &b);
    if (r < 0)
        return 0;

    struct shmbus_bus_info info;
    shmbus_bus_info(b, &info);
    uint32_t others = info.attached > 0 ? info.attached - 1 : 0;
    int found = 0, live = 0, dead = 0;
    for (uint32_t id = 1; id <= b->lay.max_clients; id++) {
        struct sb_entry *e = sb__entry(b, id);
        /* Acquire pairs with the release store of LIVE in shmbus_join(): pid and start
         * time agree when we judge liveness. */
        uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        if (SB_ST_KIND(s) == SB_FREE)
            continue;
        if (sb__entry_alive(e, s))
            live++;
        else
            dead++;
    }
    if (others == 0 && live == 0 && dead > 0) {
        snprintf(what, sizeof(what), "%s (shmid %d)", name, info.shmid);
        snprintf(why, sizeof(why), "no process attached, all %d clients dead", dead);
        report(cb, arg, "segment", what, why);
        shmbus_bus_close(b);
        if (!dry_run)
            shmbus_bus_destroy(name);
        return 1;
    }
    for (uint32_t id = 1; id <= b->lay.max_clients && dead > 0; id++) {
        struct sb_entry *e = sb__entry(b, id);
        /* Acquire: as in the count above (pairs with shmbus_join()'s release of LIVE). */
        uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        if (SB_ST_KIND(s) == SB_FREE || sb__entry_alive(e, s))
            continue;
        snprintf(what, sizeof(what), "%s client %u", name, id);
        snprintf(why, sizeof(why), "process %d died", (int)SB_ST_PID(s));
        report(cb, arg, "client", what, why);
        found++;
        if (!dry_run)
            cleanup_entry(b, id);
    }
    shmbus_bus_close(b);
    return found;
}

struct orphans {
    int dry_run;
    shmbus_clean_fn cb;
    void *arg;
};

/* Segments of ours with a shmbus header that no key file names and nobody uses: their key
 * file was removed (the directory wiped), or their creator died before writing it. */
static int clean_orphan(int shmid, const struct shmid_ds *ds, const struct sb_header *h, void *arg)
{
    const struct orphans *o = arg;
    if (!sb__segment_orphan(shmid, ds, h))
        return 0;
    char name[SHMBUS_NAME_MAX + 1], what[128];
    copy_name(name, h->name);
    snprintf(what, sizeof(what), "%s (shmid %d)", sb__valid_name(name) ? name : "?", shmid);
    /* Pairs with the release store of READY in init_segment() (bus.c); read from our copy. */
    bool ready = atomic_load_explicit(&h->state, memory_order_acquire) == SB_BUS_READY;
    report(o->cb, o->arg, "segment", what,
           ready ? "no key file names it and no process is attached"
                 : "its creator died while creating it");
    if (!o->dry_run)
        shmctl(shmid, IPC_RMID, NULL);
    return 1;
}

int shmbus_clean(int dry_run, shmbus_clean_fn cb, void *arg)
{
    int n = shmbus_bus_names(NULL, 0);
    if (n < 0)
        return n;
    char(*names)[SHMBUS_NAME_MAX + 1] = NULL;
    size_t cap = (size_t)n;
    if (n > 0) {
        names = calloc(cap, sizeof(*names));
        if (names == NULL)
            return -ENOMEM;
        n = shmbus_bus_names(names, cap);
        if (n < 0) {
            free(names);
            return n;
        }
    }
    /* Buses made since the count are not in the array (only the first cap were written);
     * the next clean sees them. */
    size_t filled = (size_t)n < cap ? (size_t)n : cap;
    int found = 0;
    for (size_t i = 0; i < filled; i++)
        found += clean_bus(names[i], dry_run, cb, arg);
    free(names);
    struct orphans o = {dry_run, cb, arg};
    int r = sb__each_segment(clean_orphan, &o);
    if (r > 0)
        found += r;
    return found;
}
