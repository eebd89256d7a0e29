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

static uint64_t my_start_time(void)
{
    return sb__proc_start_time(getpid());
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
    uint64_t mine = SB_ST(SB_CLEANING, SB_ST_GEN(s), getpid());
    if (!atomic_compare_exchange_strong_explicit(&e->state, &s, mine, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return 0; /* someone else is on it, or it changed */

    sb__mbox_skip_intents(b, e);
    sb__tp(SB_TP_CLEANING); /* test-only: a cleaner half-way */
    struct sb_mbox *mb = sb__mbox(b, id);
    uint64_t n = sb__mbox_drain(b, mb);
    sb__note_dropped(e, n);
    atomic_store_explicit(&mb->sleeping, 0, memory_order_relaxed);

    /* Release: the drained mailbox is visible before the id can be joined again. Pairs
     * with the acquire load in try_claim(). */
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

int sb__dest_state(shmbus_bus *b, uint32_t id, uint32_t *gen)
{
    if (id < 1 || id > b->lay.max_clients)
        return -EINVAL;
    /* Acquire pairs with the release store of LIVE in shmbus_join(). */
    uint64_t s = atomic_load_explicit(&sb__entry(b, id)->state, memory_order_acquire);
    switch (SB_ST_KIND(s)) {
    case SB_LIVE:
        *gen = SB_ST_GEN(s);
        return 0;
    case SB_CLEANING:
        return -ECONNRESET;
    default:
        return -EHOSTUNREACH;
    }
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

/* Take entry `id` for this process: FREE -> JOINING. */
static int try_claim(shmbus_bus *b, uint32_t id, uint32_t *gen)
{
    struct sb_entry *e = sb__entry(b, id);
    for (int attempt = 0; attempt < 8; attempt++) {
        uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        if (SB_ST_KIND(s) != SB_FREE) {
            if (sb__entry_alive(e, s))
                return -EEXIST;
            cleanup_entry(b, id);
            continue;
        }
        uint32_t g = (SB_ST_GEN(s) + 1) & 0xffffffu;
        if (g == 0)
            g = 1;
        uint64_t mine = SB_ST(SB_JOINING, g, getpid());
        if (atomic_compare_exchange_strong_explicit(&e->state, &s, mine, memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            *gen = g;
            return 0;
        }
    }
    return -EEXIST;
}

static void reset_entry(struct sb_entry *e, const char *name)
{
    atomic_store_explicit(&e->start_time, my_start_time(), memory_order_relaxed);
    e->joined_ns = sb__realtime_ns();
    memset(e->name, 0, sizeof(e->name));
    if (name != NULL)
        snprintf(e->name, sizeof(e->name), "%s", name);
    atomic_store_explicit(&e->sent, 0, memory_order_relaxed);
    atomic_store_explicit(&e->bytes_sent, 0, memory_order_relaxed);
    atomic_store_explicit(&e->full_waits, 0, memory_order_relaxed);
    for (unsigned i = 0; i < SB_INTENTS; i++)
        atomic_store_explicit(&e->intent[i].n, 0, memory_order_relaxed);
    atomic_store_explicit(&e->received, 0, memory_order_relaxed);
    atomic_store_explicit(&e->bytes_received, 0, memory_order_relaxed);
    atomic_store_explicit(&e->wakeups, 0, memory_order_relaxed);
    atomic_store_explicit(&e->spins, 0, memory_order_relaxed);
    atomic_store_explicit(&e->dropped, 0, memory_order_relaxed);
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
    uint32_t gen = 0;
    int r = -EUSERS;
    if (id != 0) {
        r = try_claim(b, id, &gen);
    } else {
        for (uint32_t k = 1; k <= b->lay.max_clients; k++) {
            r = try_claim(b, k, &gen);
            if (r == 0) {
                id = k;
                break;
            }
        }
        if (r != 0)
            r = -EUSERS;
    }
    if (r < 0) {
        free(c);
        return r;
    }

    struct sb_entry *e = sb__entry(b, id);
    struct sb_mbox *mb = sb__mbox(b, id);
    sb__tp(SB_TP_JOINING); /* test-only: claimed, not yet LIVE */
    reset_entry(e, name);
    atomic_store_explicit(&mb->sleeping, 0, memory_order_relaxed);
    /* Release: the reset entry is visible to whoever sees LIVE. Pairs with the acquire in
     * sb__dest_state() and cleanup_entry(). */
    atomic_store_explicit(&e->state, SB_ST(SB_LIVE, gen, getpid()), memory_order_release);

    c->bus = b;
    c->e = e;
    c->mb = mb;
    c->id = id;
    c->gen = gen;

    /* Two processes may have joined with the same name at once: the lower id keeps it. */
    if (name != NULL) {
        int other = find_live_name(b, name, id);
        if (other > 0 && (uint32_t)other < id) {
            shmbus_leave(c);
            return -EEXIST;
        }
    }
    *out = c;
    return 0;
}

void shmbus_leave(shmbus_client *c)
{
    if (c == NULL)
        return;
    shmbus_bus *b = c->bus;
    struct sb_entry *e = c->e;
    uint64_t s = SB_ST(SB_LIVE, c->gen, getpid());
    uint64_t mine = SB_ST(SB_CLEANING, c->gen, getpid());
    if (atomic_compare_exchange_strong_explicit(&e->state, &s, mine, memory_order_acq_rel,
                                                memory_order_relaxed)) {
        sb__tp(SB_TP_LEAVING); /* test-only: leaving, entry CLEANING */
        sb__mbox_skip_intents(b, e);
        sb__mbox_drain(b, c->mb);
        atomic_store_explicit(&c->mb->sleeping, 0, memory_order_relaxed);
        /* Pairs with the acquire in try_claim() and sb__dest_state(). */
        atomic_store_explicit(&e->state, SB_ST(SB_FREE, c->gen, 0), memory_order_release);
        uint32_t w = atomic_exchange_explicit(&c->mb->space_waiters, 0, memory_order_acq_rel);
        sb__post_waiters(b, &c->mb->space_sem, w);
    }
    free(c);
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

static void read_counters(const struct sb_entry *e, struct shmbus_counters *k)
{
    k->sent = atomic_load_explicit(&e->sent, memory_order_relaxed);
    k->received = atomic_load_explicit(&e->received, memory_order_relaxed);
    k->bytes_sent = atomic_load_explicit(&e->bytes_sent, memory_order_relaxed);
    k->bytes_received = atomic_load_explicit(&e->bytes_received, memory_order_relaxed);
    k->full_waits = atomic_load_explicit(&e->full_waits, memory_order_relaxed);
    k->wakeups = atomic_load_explicit(&e->wakeups, memory_order_relaxed);
    k->spins = atomic_load_explicit(&e->spins, memory_order_relaxed);
    k->dropped = atomic_load_explicit(&e->dropped, memory_order_relaxed);
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
        uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        unsigned kind = SB_ST_KIND(s);
        if (kind == SB_FREE || kind > SB_CLEANING)
            continue;
        if (count < n) {
            struct shmbus_client_info *ci = &out[count];
            memset(ci, 0, sizeof(*ci));
            ci->id = id;
            ci->pid = SB_ST_PID(s);
            bool alive = sb__entry_alive(e, s);
            if (kind == SB_LIVE)
                ci->state = alive ? SHMBUS_CLIENT_LIVE : SHMBUS_CLIENT_DEAD;
            else if (kind == SB_JOINING)
                ci->state = alive ? SHMBUS_CLIENT_JOINING : SHMBUS_CLIENT_DEAD;
            else
                ci->state = SHMBUS_CLIENT_DEAD;
            copy_name(ci->name, e->name);
            ci->joined_ns = e->joined_ns;
            struct sb_mbox *mb = sb__mbox(b, id);
            uint64_t tail = atomic_load_explicit(&mb->tail, memory_order_relaxed);
            uint64_t head = atomic_load_explicit(&mb->head, memory_order_relaxed);
            uint64_t depth = tail - head;
            ci->depth = depth > b->lay.slots ? b->lay.slots : (uint32_t)depth;
            ci->capacity = b->lay.slots;
            read_counters(e, &ci->counters);
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
    r = shmbus_bus_open(name, NULL, dry_run ? SHMBUS_RDONLY : 0, &b);
    if (r < 0)
        return 0;

    struct shmbus_bus_info info;
    shmbus_bus_info(b, &info);
    uint32_t others = info.attached > 0 ? info.attached - 1 : 0;
    int found = 0, live = 0, dead = 0;
    for (uint32_t id = 1; id <= b->lay.max_clients; id++) {
        struct sb_entry *e = sb__entry(b, id);
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
