/*
 * election.c - leaders of named groups: campaigning, resigning, epochs and fencing.
 *
 * Design notes
 * ------------
 * Each group's leader word (struct sb_group.lead) packs the epoch, the leader's generation
 * and its client id: SB_LEAD(epoch, gen, id), id 0 when nobody leads. Every change is one
 * CAS on that word, so:
 *   - taking over is "the word names nobody, or a client that is not current (left, died,
 *     a later join of the id)": CAS it to (epoch + 1, our gen, our id). Two campaigners that
 *     read the same word both try the same CAS and exactly one wins; the loser reads the
 *     winner. So one epoch has one leader, and epochs only grow.
 *   - resigning, leaving, and the cleaner of a dead leader CAS (e, gen, id) to (e, 0, 0):
 *     the epoch stays, so the next leader's is higher still.
 * "Current" is the registry's rule (sb__client_current() with the process check): the
 * kernel ends it when the process dies; a stopped or slow process keeps its leadership.
 * There is no sleeping primitive for "some other process died", so a campaigner polls the
 * word every POLL_NS, sleeping in between: a new leader is in place within that much (plus
 * a /proc read) of the old one's death, with no busy spin.
 *
 * Fencing: shmbus_send_fenced() refuses an epoch older than the word's. The word is loaded
 * once and checked; a garbage id (above max_clients) makes the calls fail with -EBADMSG. A
 * campaigner that dies between its winning CAS and returning leaves a leader word naming a
 * dead client: the next campaigner takes over with a higher epoch, as for any dead leader.
 *
 * Leases (shmbus_elect_lease(), shmbus_renew()): a leader that is alive but stuck must be
 * replaceable too, and liveness cannot see "stuck". A leased leader stores, in the group's
 * lease word, its epoch and the time its lease ends (CLOCK_MONOTONIC, the same clock in
 * every process of the host). A campaigner that finds the current epoch's lease over marks
 * the word "deposing" with a CAS, then takes the leader word as for a dead leader. A renewal
 * is a CAS on the same word that refuses a deposing mark, so a renewal and a deposition
 * never both succeed: the leader either renewed in time (and the campaigner's CAS fails) or
 * learns it was deposed (-ESTALE), never both. A campaigner that dies after marking leaves
 * the mark; the next one sees it and finishes the takeover. Fencing treats a marked epoch
 * as stale already.
 */
#include <errno.h>
#include <time.h>

#include "internal.h"

#define POLL_NS      5000000ull /* a campaigner's look at the leader word: every 5 ms */
#define LEASE_MAX_MS 86400000u  /* the longest lease: one day */

static uint64_t now_ms(void)
{
    return sb__now_ns() / 1000000ull;
}

/* Has lease word w's end passed? Ends are kept modulo 2^36 ms (2.2 years): a difference
 * below half of that is "past", above it "still to come". */
static bool lease_ended(uint64_t w)
{
    uint64_t d = (now_ms() - SB_LEASE_END(w)) & SB_LEASE_MS_MASK;
    return d < (SB_LEASE_MS_MASK >> 1);
}

/* Is the leadership of epoch ep over by its lease? true when its lease word is marked
 * deposing, or its lease ended and we marked it (one CAS: the partner of the renewal's CAS
 * in shmbus_renew(), so only one of the two succeeds). false when ep has no lease, or it
 * was renewed in time. */
static bool lease_over(struct sb_group *g, uint64_t ep)
{
    /* Acquire pairs with the release CAS in shmbus_renew() and the release store in
     * campaign(): a lease word of epoch ep is seen with the leadership it belongs to. */
    uint64_t w = atomic_load_explicit(&g->lease, memory_order_acquire);
    if (w == 0 || SB_LEASE_EPOCH(w) != ep)
        return false;
    if (SB_LEASE_DEPOSING(w))
        return true; /* marked by a campaigner that may have died since: finish its work */
    if (!lease_ended(w))
        return false;
    /* Acq_rel: the renewal's release CAS (its partner) either happened before (we fail and
     * reload) or fails against our mark. */
    if (atomic_compare_exchange_strong_explicit(&g->lease, &w, w | 1u, memory_order_acq_rel,
                                                memory_order_acquire))
        return true;
    return SB_LEASE_EPOCH(w) == ep && SB_LEASE_DEPOSING(w); /* someone else marked it */
}

/* Is epoch ep marked deposing? (Fencing and shmbus_leader() treat it as over.) */
static bool deposing(struct sb_group *g, uint64_t ep)
{
    /* Acquire pairs with the acq_rel CAS that marks the word in lease_over(). */
    uint64_t w = atomic_load_explicit(&g->lease, memory_order_acquire);
    return ep != 0 && SB_LEASE_EPOCH(w) == ep && SB_LEASE_DEPOSING(w);
}

/* The leader word of group k, loaded once; -EBADMSG if its id cannot be a client. */
static int load_lead(shmbus_bus *b, uint32_t k, uint64_t *out)
{
    /* Acquire pairs with the release CASes in shmbus_elect(), shmbus_resign() and
     * sb__groups_forget(): a word naming a leader is seen with what it did before. */
    uint64_t l = atomic_load_explicit(&sb__group(b, k)->lead, memory_order_acquire);
    if (SB_LEAD_ID(l) > b->lay.max_clients)
        return -EBADMSG;
    *out = l;
    return 0;
}

/* Sleep one poll (or less, up to deadline); -EINTR if a signal handler ran. */
static int poll_sleep(uint64_t deadline)
{
    uint64_t now = sb__now_ns(), wait = POLL_NS;
    if (deadline != UINT64_MAX && deadline - now < wait)
        wait = deadline - now;
    struct timespec ts = {0, (long)wait};
    if (nanosleep(&ts, NULL) != 0 && errno == EINTR)
        return -EINTR;
    return 0;
}

/* Campaign for `name`; lease_ms 0: no lease. Returns the epoch won, or -errno. */
static int campaign(shmbus_client *c, const char *name, unsigned lease_ms, int timeout_ms)
{
    if (c == NULL || !sb__valid_name(name) || lease_ms > LEASE_MAX_MS)
        return -EINVAL;
    shmbus_bus *b = c->bus;
    int k = sb__group_find(b, name, true);
    if (k < 0)
        return k;
    struct sb_group *g = sb__group(b, (uint32_t)k);
    uint64_t deadline = sb__deadline(timeout_ms);
    for (;;) {
        if (sb__destroyed(b))
            return -EIDRM;
        if (!sb__client_current(b, c->id, c->gen, false))
            return -EHOSTUNREACH; /* we were cleaned up: not a client any more */
        uint64_t l;
        int r = load_lead(b, (uint32_t)k, &l);
        if (r < 0)
            return r;
        uint32_t id = SB_LEAD_ID(l), gen = SB_LEAD_GEN(l);
        uint64_t ep = SB_LEAD_EPOCH(l);
        if (id == c->id && gen == c->gen && !deposing(g, ep)) {
            /* We lead already; a lease asked for now starts now. */
            r = lease_ms != 0 ? shmbus_renew(c, name, ep, lease_ms) : 0;
            return r < 0 ? r : (int)ep;
        }
        if (id == 0 || !sb__client_current(b, id, gen, true) || lease_over(g, ep)) {
            if (ep >= SB_EPOCH_MAX)
                return -EOVERFLOW;
            /* Release pairs with the acquire in load_lead(): whoever sees us lead sees
             * what we did before campaigning. Acquire (on failure too, relaxed is enough:
             * we reload) orders what we do as leader after the win. */
            if (atomic_compare_exchange_strong_explicit(
                    &g->lead, &l, SB_LEAD(ep + 1, c->gen, c->id), memory_order_acq_rel,
                    memory_order_relaxed)) {
                atomic_fetch_add_explicit(&g->elections, 1, memory_order_relaxed);
                /* Release pairs with the acquire in lease_over() and deposing(). Until
                 * this store the word holds an older epoch, which means "no lease". */
                if (lease_ms != 0)
                    atomic_store_explicit(&g->lease, SB_LEASE(ep + 1, now_ms() + lease_ms, 0),
                                          memory_order_release);
                return (int)(ep + 1);
            }
            continue; /* someone else changed it: look again */
        }
        if (deadline == 0)
            return -EAGAIN;
        if (sb__now_ns() >= deadline)
            return -ETIMEDOUT;
        r = poll_sleep(deadline);
        if (r < 0)
            return r;
        sb__maybe_reap(b);
    }
}

int shmbus_elect(shmbus_client *c, const char *name, int timeout_ms)
{
    return campaign(c, name, 0, timeout_ms);
}

int shmbus_elect_lease(shmbus_client *c, const char *name, unsigned lease_ms, int timeout_ms)
{
    if (lease_ms == 0)
        return -EINVAL;
    return campaign(c, name, lease_ms, timeout_ms);
}

/* The group `name` led by c: its index into *k and its leader word into *l. -EPERM when c
 * does not lead it (someone else, nobody, or no such group), or an error of the lookup. */
static int my_lead(shmbus_client *c, const char *name, int *k, uint64_t *l)
{
    *k = sb__group_find(c->bus, name, false);
    if (*k == -ENOENT)
        return -EPERM;
    if (*k < 0)
        return *k;
    int r = load_lead(c->bus, (uint32_t)*k, l);
    if (r < 0)
        return r;
    if (SB_LEAD_ID(*l) != c->id || SB_LEAD_GEN(*l) != c->gen)
        return -EPERM;
    return 0;
}

static int fence(shmbus_bus *b, const char *name, uint64_t epoch);

int shmbus_renew(shmbus_client *c, const char *name, uint64_t epoch, unsigned lease_ms)
{
    if (c == NULL || !sb__valid_name(name) || lease_ms > LEASE_MAX_MS || epoch == 0)
        return -EINVAL;
    /* The fencing rule first: an older (or deposing) epoch is -ESTALE, a newer one -EINVAL,
     * no such group -ENOENT. Then it must be ours (-EPERM: we resigned). */
    int k, r = fence(c->bus, name, epoch);
    uint64_t l;
    if (r < 0 || (r = my_lead(c, name, &k, &l)) < 0)
        return r;
    if (SB_LEAD_EPOCH(l) != epoch)
        return SB_LEAD_EPOCH(l) > epoch ? -ESTALE : -EINVAL; /* changed since fence() */
    struct sb_group *g = sb__group(c->bus, (uint32_t)k);
    uint64_t w = atomic_load_explicit(&g->lease, memory_order_relaxed);
    for (;;) {
        if (SB_LEASE_EPOCH(w) == epoch && SB_LEASE_DEPOSING(w))
            return -ESTALE;
        uint64_t nw = lease_ms != 0 ? SB_LEASE(epoch, now_ms() + lease_ms, 0) : 0;
        /* Release pairs with the acquire in lease_over(); the CAS itself is the partner of
         * lease_over()'s marking CAS: only one of the two can replace this w. */
        if (atomic_compare_exchange_weak_explicit(&g->lease, &w, nw, memory_order_release,
                                                  memory_order_relaxed))
            return 0;
    }
}

int shmbus_resign(shmbus_client *c, const char *name)
{
    if (c == NULL || !sb__valid_name(name))
        return -EINVAL;
    int k;
    uint64_t l;
    int r = my_lead(c, name, &k, &l);
    if (r < 0)
        return r;
    /* Release pairs with the acquire in load_lead(): what we did as leader is seen by
     * whoever sees the word without us. */
    if (!atomic_compare_exchange_strong_explicit(&sb__group(c->bus, (uint32_t)k)->lead, &l,
                                                 SB_LEAD(SB_LEAD_EPOCH(l), 0, 0),
                                                 memory_order_release, memory_order_relaxed))
        return -EPERM; /* deposed meanwhile */
    return 0;
}

int shmbus_leader(shmbus_bus *b, const char *name, uint32_t *leader, uint64_t *epoch)
{
    if (b == NULL || !sb__valid_name(name))
        return -EINVAL;
    if (leader != NULL)
        *leader = 0;
    if (epoch != NULL)
        *epoch = 0;
    int k = sb__group_find(b, name, false);
    if (k == -ENOENT)
        return 0;
    if (k < 0)
        return k;
    uint64_t l;
    int r = load_lead(b, (uint32_t)k, &l);
    if (r < 0)
        return r;
    if (epoch != NULL)
        *epoch = SB_LEAD_EPOCH(l);
    if (leader != NULL && sb__client_current(b, SB_LEAD_ID(l), SB_LEAD_GEN(l), true) &&
        !deposing(sb__group(b, (uint32_t)k), SB_LEAD_EPOCH(l)))
        *leader = SB_LEAD_ID(l);
    return 0;
}

int shmbus_leader_wait(shmbus_bus *b, const char *name, uint32_t *leader, uint64_t *epoch,
                       int timeout_ms)
{
    if (b == NULL || leader == NULL || epoch == NULL || !sb__valid_name(name))
        return -EINVAL;
    uint64_t deadline = sb__deadline(timeout_ms);
    for (;;) {
        uint32_t id;
        uint64_t ep;
        int r = shmbus_leader(b, name, &id, &ep);
        if (r < 0)
            return r;
        if (id != *leader || ep != *epoch) {
            *leader = id;
            *epoch = ep;
            return 0;
        }
        if (sb__destroyed(b))
            return -EIDRM;
        if (deadline == 0)
            return -EAGAIN;
        if (sb__now_ns() >= deadline)
            return -ETIMEDOUT;
        r = poll_sleep(deadline);
        if (r < 0)
            return r;
    }
}

/* The one fencing rule: 0 if epoch is group k's current one, -ESTALE if older, -EINVAL if
 * newer (never handed out). */
static int fence(shmbus_bus *b, const char *name, uint64_t epoch)
{
    int k = sb__group_find(b, name, false);
    if (k < 0)
        return k;
    uint64_t l;
    int r = load_lead(b, (uint32_t)k, &l);
    if (r < 0)
        return r;
    uint64_t cur = SB_LEAD_EPOCH(l);
    if (epoch < cur || (epoch == cur && deposing(sb__group(b, (uint32_t)k), cur)))
        return -ESTALE;
    return epoch > cur ? -EINVAL : 0;
}

int shmbus_fence_check(shmbus_bus *b, const char *name, uint64_t epoch)
{
    if (b == NULL || !sb__valid_name(name))
        return -EINVAL;
    return fence(b, name, epoch);
}

int shmbus_send_fenced(shmbus_client *c, uint32_t dst, const char *name, uint64_t epoch,
                       const void *data, size_t len, unsigned flags, int timeout_ms)
{
    int r = sb__send_check(c, len, flags, SHMBUS_SEND_NONBLOCK | SHMBUS_SEND_ACK, true);
    if (r < 0)
        return r;
    if ((data == NULL && len != 0) || !sb__valid_name(name))
        return -EINVAL;
    if (dst < 1 || dst > c->bus->lay.max_clients)
        return -EINVAL;
    r = fence(c->bus, name, epoch);
    if (r < 0)
        return r;
    uint32_t gen;
    r = sb__dest_state(c->bus, dst, &gen);
    if (r < 0)
        return r;
    return sb__send_member(c, dst, gen, data, len, flags, SHMBUS_MSG_FENCED, epoch,
                           sb__deadline(timeout_ms));
}
