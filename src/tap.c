/*
 * The passive view of a bus (shmbus_tap_*): a copy of every message sent, for `shmbus tail`
 * and `shmbus record`, taken from no one's mailbox.
 *
 * The tap area follows the flow rows: a control block and SB_TAP_SLOTS slots of 512 bytes,
 * a lossy ring in the style of a broadcast buffer. While no tap is open (`mask` is 0)
 * senders pay one relaxed load of a line nobody writes. While one is, every send also
 * claims the next tap position n with a fetch-add on `head`, and writes slot n % SLOTS
 * under a sequence word: 2n + 1 while writing, 2n + 2 once written. A reader follows
 * positions one by one; a slot whose sequence is past its own was overwritten (the reader
 * was too slow) and counts as missed, as do positions that fell more than a ring behind
 * `head`. Nothing a reader does can slow a sender down, and nothing a sender does can make
 * a reader wait for more than its timeout.
 *
 * The area is all zero at creation and stays untouched pages until a tap opens.
 *
 * Whole payloads (SHMBUS_TAP_WHOLE, for `shmbus record`): while any tap asks for them
 * (`whole` != 0), a sender of a payload longer than a slot holds also claims a run of the
 * bulk ring (a byte ring of SB_TAP_BULK at the end of the segment) with a fetch-add on
 * `bulk_head`, copies the payload there, and puts the run's start in the slot (first 8 data
 * bytes; the slot then keeps 392 bytes of the payload). A reader copies the run, then
 * re-reads `bulk_head`: if no claim has reached a lap past the run's start, nobody can have
 * written over it while it copied; else it falls back to the slot's 392 bytes and says so
 * in `captured`. Positions stay one per message, so `missed` stays exact.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct sb_tap_slot {
    _Atomic uint64_t seq; /* 2n + 1 while position n is written, 2n + 2 once it is */
    uint32_t src, dst;
    uint64_t mseq, corr, sent_ns;
    uint32_t len; /* the message's whole length; SHMBUS_TAP_CAPTURE bytes at most are kept */
    uint8_t prio, flags;
    uint8_t bulk; /* 1: data[0..8) is the payload's start in the bulk ring, data[8..) its
                   * first bytes */
    uint8_t pad;
    char src_name[SHMBUS_NAME_MAX + 1], dst_name[SHMBUS_NAME_MAX + 1];
    uint8_t data[SHMBUS_TAP_CAPTURE];
};
_Static_assert(sizeof(struct sb_tap_slot) == 512, "a tap slot is eight lines");

struct shmbus_tap {
    shmbus_bus *bus;
    unsigned slot;     /* our watcher slot */
    bool whole;        /* opened SHMBUS_TAP_WHOLE */
    uint64_t next;     /* the next position to read */
    uint64_t stuck_ns; /* since when position `next` has been claimed but not written */
};

static struct sb_tap_ctl *tap_ctl(const shmbus_bus *b)
{
    return (struct sb_tap_ctl *)(b->base + b->lay.tap_off);
}

static struct sb_tap_slot *tap_slot(const shmbus_bus *b, uint64_t n)
{
    return (struct sb_tap_slot *)(b->base + b->lay.tap_off + sizeof(struct sb_tap_ctl)) +
           (n & (SB_TAP_SLOTS - 1));
}

static uint8_t *bulk(const shmbus_bus *b)
{
    return b->base + b->lay.tap_bulk_off;
}

/* Copy len bytes into the bulk ring at byte position pos (wrapping). */
static void bulk_put(shmbus_bus *b, uint64_t pos, const void *data, size_t len)
{
    size_t at = (size_t)(pos & (SB_TAP_BULK - 1)), first = SB_TAP_BULK - at;
    if (first > len)
        first = len;
    memcpy(bulk(b) + at, data, first);
    memcpy(bulk(b), (const uint8_t *)data + first, len - first);
}

/* ... and out of it. */
static void bulk_get(const shmbus_bus *b, uint64_t pos, void *out, size_t len)
{
    size_t at = (size_t)(pos & (SB_TAP_BULK - 1)), first = SB_TAP_BULK - at;
    if (first > len)
        first = len;
    memcpy(out, bulk(b) + at, first);
    memcpy((uint8_t *)out + first, bulk(b), len - first);
}

uint64_t sb__tap_size(void)
{
    return sizeof(struct sb_tap_ctl) + (uint64_t)SB_TAP_SLOTS * sizeof(struct sb_tap_slot);
}

void sb__tap_copy(shmbus_bus *b, uint32_t src, uint32_t dst, uint64_t seq, uint64_t corr,
                  uint64_t sent_ns, const void *data, size_t len, unsigned prio, unsigned mflags)
{
    struct sb_tap_ctl *ctl = tap_ctl(b);
    /* seq_cst: see the load of sleepers at the end. */
    uint64_t n = atomic_fetch_add_explicit(&ctl->head, 1, memory_order_seq_cst);
    struct sb_tap_slot *s = tap_slot(b, n);
    atomic_store_explicit(&s->seq, 2 * n + 1, memory_order_relaxed);
    /* Release fence: the odd sequence is visible before any field below. Pairs with the
     * acquire fence in read_slot() before its second load of seq: a reader that copied a
     * field we wrote then sees 2n + 1 (or later) and drops its copy. */
    sb__fence_release();
    s->src = src;
    s->dst = dst;
    s->mseq = seq;
    s->corr = corr;
    s->sent_ns = sent_ns;
    s->len = (uint32_t)len;
    s->prio = (uint8_t)prio;
    s->flags = (uint8_t)mflags;
    /* seq_cst: the sender's half of the Dekker pair with the seq_cst fetch-or of `whole`
     * then load of head in shmbus_tap_open_flags(): a whole tap that will read position n
     * set its bit before we claimed n, so we see it. */
    bool whole = len > SHMBUS_TAP_CAPTURE && len <= SB_TAP_BULK / 8 && data != NULL &&
                 atomic_load_explicit(&ctl->whole, memory_order_seq_cst) != 0;
    s->bulk = whole;
    /* The names as they are now: a sender that leaves at once is still named. Ids come
     * from the sender's own checks (its id, a destination in range). */
    memcpy(s->src_name, sb__entry(b, src)->name, sizeof(s->src_name));
    memcpy(s->dst_name, sb__entry(b, dst)->name, sizeof(s->dst_name));
    if (whole) {
        uint64_t need = (len + 63) & ~(uint64_t)63;
        uint64_t at = atomic_fetch_add_explicit(&ctl->bulk_head, need, memory_order_relaxed);
        /* Release fence: our claim is visible before any byte we write in the run. Pairs
         * with the acquire fence in bulk_read() before it re-reads bulk_head: a reader that
         * copied a byte we wrote sees our claim, and drops its copy if we lapped it. */
        sb__fence_release();
        bulk_put(b, at, data, len);
        memcpy(s->data, &at, sizeof(at));
        memcpy(s->data + sizeof(at), data, SHMBUS_TAP_CAPTURE - sizeof(at));
    } else if (data != NULL) {
        memcpy(s->data, data, len < SHMBUS_TAP_CAPTURE ? len : SHMBUS_TAP_CAPTURE);
    }
    /* Release: the fields before the even sequence. Pairs with the acquire load of seq in
     * read_slot(). */
    atomic_store_explicit(&s->seq, 2 * n + 2, memory_order_release);
    /* seq_cst: with the fetch-add on head, the writer's half of the Dekker pair with the
     * reader's seq_cst add to sleepers then load of head in shmbus_tap_next(): either we
     * see it asleep, or it sees our position. */
    if (atomic_load_explicit(&ctl->sleepers, memory_order_seq_cst) != 0) {
        uint32_t w = atomic_exchange_explicit(&ctl->sleepers, 0, memory_order_relaxed);
        for (uint32_t k = 0; k < w && k < SB_TAP_MAX; k++)
            sb__sem_post(&ctl->sem);
    }
}

/* Free watcher slots whose process died (a tail killed with kill -9). */
void sb__tap_reap(shmbus_bus *b)
{
    struct sb_tap_ctl *ctl = tap_ctl(b);
    uint64_t mask = atomic_load_explicit(&ctl->mask, memory_order_relaxed);
    for (unsigned i = 0; i < SB_TAP_MAX; i++) {
        if (!(mask & (1ull << i)))
            continue;
        uint64_t w = atomic_load_explicit(&ctl->watcher[i].pid, memory_order_relaxed);
        uint64_t st = atomic_load_explicit(&ctl->watcher[i].start_time, memory_order_relaxed);
        if (w == 0 || sb__proc_alive((pid_t)w, st))
            continue;
        if (atomic_compare_exchange_strong_explicit(&ctl->watcher[i].pid, &w, 0,
                                                    memory_order_relaxed, memory_order_relaxed)) {
            atomic_fetch_and_explicit(&ctl->whole, ~(1ull << i), memory_order_relaxed);
            atomic_fetch_and_explicit(&ctl->mask, ~(1ull << i), memory_order_relaxed);
        }
    }
}

int shmbus_tap_open(shmbus_bus *b, shmbus_tap **out)
{
    return shmbus_tap_open_flags(b, 0, out);
}

int shmbus_tap_open_flags(shmbus_bus *b, unsigned flags, shmbus_tap **out)
{
    if (out != NULL)
        *out = NULL;
    if (b == NULL || out == NULL || (flags & ~SHMBUS_TAP_WHOLE) != 0)
        return -EINVAL;
    *out = NULL;
    if (b->rdonly)
        return -EROFS;
    if (sb__destroyed(b))
        return -EIDRM;
    shmbus_tap *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    sb__tap_reap(b);
    struct sb_tap_ctl *ctl = tap_ctl(b);
    uint64_t pid = (uint64_t)getpid();
    for (unsigned i = 0; i < SB_TAP_MAX; i++) {
        uint64_t expect = 0;
        if (!atomic_compare_exchange_strong_explicit(&ctl->watcher[i].pid, &expect, pid,
                                                     memory_order_relaxed, memory_order_relaxed))
            continue;
        atomic_store_explicit(&ctl->watcher[i].start_time, sb__proc_start_time((pid_t)pid),
                              memory_order_relaxed);
        /* seq_cst: with the load of head below, our half of the Dekker pair with the
         * sender's fetch-add on head then load of whole in sb__tap_copy(). Before the mask
         * bit: a sender that copies for us at all copies whole. */
        if (flags & SHMBUS_TAP_WHOLE)
            atomic_fetch_or_explicit(&ctl->whole, 1ull << i, memory_order_seq_cst);
        /* seq_cst: senders that load mask after this copy what they send. The first
         * position we read is taken after it, so we never wait for a send that began
         * before it and did not see the bit (it claims no tap position at all). */
        atomic_fetch_or_explicit(&ctl->mask, 1ull << i, memory_order_seq_cst);
        t->bus = b;
        t->slot = i;
        t->whole = (flags & SHMBUS_TAP_WHOLE) != 0;
        /* seq_cst: see the fetch-or of whole above (what we read there is ordered by seq). */
        t->next = atomic_load_explicit(&ctl->head, memory_order_seq_cst);
        *out = t;
        return 0;
    }
    free(t);
    return -EUSERS;
}

void shmbus_tap_close(shmbus_tap *t)
{
    if (t == NULL)
        return;
    struct sb_tap_ctl *ctl = tap_ctl(t->bus);
    if (!sb__destroyed(t->bus)) {
        uint64_t pid = (uint64_t)getpid();
        if (atomic_compare_exchange_strong_explicit(&ctl->watcher[t->slot].pid, &pid, 0,
                                                    memory_order_relaxed, memory_order_relaxed)) {
            atomic_fetch_and_explicit(&ctl->whole, ~(1ull << t->slot), memory_order_relaxed);
            atomic_fetch_and_explicit(&ctl->mask, ~(1ull << t->slot), memory_order_relaxed);
        }
    }
    free(t);
}

/* The whole payload of a bulk slot (run start `at`, length len) into buf, at most cap bytes
 * (want bytes wanted): the number copied, or -1 if the run may have been written over while
 * we copied (the caller then falls back to the slot's own bytes). */
static long bulk_read(const shmbus_bus *b, uint64_t at, size_t len, size_t want, void *buf,
                      size_t cap)
{
    size_t n = want < cap ? want : cap;
    if (buf != NULL && n != 0)
        bulk_get(b, at, buf, n);
    /* Acquire fence: our copy happens before the load below. Pairs with the release fence
     * in sb__tap_copy() after a later sender's claim: if we copied a byte it wrote, we see
     * its claim here, a lap past `at`. */
    sb__fence_acquire();
    uint64_t h = atomic_load_explicit(&tap_ctl(b)->bulk_head, memory_order_relaxed);
    uint64_t need = (len + 63) & ~(uint64_t)63;
    if (h - at < need || h - at > SB_TAP_BULK)
        return -1; /* lapped (or a scribbled start that nobody claimed) */
    return (long)n;
}

/* Copy position t->next out of its slot. 1: copied; 0: not written yet; -1: overwritten. */
static int read_slot(shmbus_tap *t, struct shmbus_tap_msg *out, void *buf, size_t cap, size_t *kept)
{
    struct sb_tap_slot *s = tap_slot(t->bus, t->next);
    uint64_t want = 2 * t->next + 2;
    /* Acquire pairs with the release store of 2n + 2 in sb__tap_copy(). */
    uint64_t s1 = atomic_load_explicit(&s->seq, memory_order_acquire);
    if (s1 < want)
        return 0;
    if (s1 != want)
        return -1;
    struct shmbus_tap_msg m = {
        .msg = {.src = s->src,
                .dst = s->dst,
                .seq = s->mseq,
                .corr = s->corr,
                .sent_ns = s->sent_ns,
                .len = s->len,
                .prio = s->prio,
                .flags = s->flags},
    };
    memcpy(m.src_name, s->src_name, SHMBUS_NAME_MAX);
    memcpy(m.dst_name, s->dst_name, SHMBUS_NAME_MAX); /* the last byte stays NUL */
    bool in_bulk = s->bulk == 1;
    uint8_t tmp[SHMBUS_TAP_CAPTURE];
    memcpy(tmp, s->data, sizeof(tmp));
    /* Acquire fence: our copies above happen before the load below. Pairs with the release
     * fence in sb__tap_copy(): a writer of a later lap that changed any of it has made the
     * sequence odd (or later) by then. */
    sb__fence_acquire();
    if (atomic_load_explicit(&s->seq, memory_order_relaxed) != s1)
        return -1;
    size_t len = m.msg.len;
    if (in_bulk && len > SHMBUS_TAP_CAPTURE && len <= SB_TAP_BULK / 8) {
        uint64_t at;
        memcpy(&at, tmp, sizeof(at));
        size_t wanted = t->whole ? len : SHMBUS_TAP_CAPTURE;
        long n = bulk_read(t->bus, at, len, wanted, buf, cap);
        if (n >= 0) {
            m.captured = (uint32_t)wanted;
            *kept = (size_t)n;
        } else { /* overwritten: the slot's own first bytes */
            m.captured = SHMBUS_TAP_CAPTURE - sizeof(at);
            *kept = m.captured < cap ? m.captured : cap;
            if (buf != NULL && *kept != 0)
                memcpy(buf, tmp + sizeof(at), *kept);
        }
    } else {
        m.captured = len < SHMBUS_TAP_CAPTURE ? (uint32_t)len : SHMBUS_TAP_CAPTURE;
        *kept = m.captured < cap ? m.captured : cap;
        if (buf != NULL && *kept != 0)
            memcpy(buf, tmp, *kept);
    }
    if (out != NULL)
        *out = m;
    return 1;
}

int shmbus_tap_next(shmbus_tap *t, struct shmbus_tap_msg *out, void *buf, size_t cap,
                    int timeout_ms)
{
    if (t == NULL || (buf == NULL && cap != 0))
        return -EINVAL;
    shmbus_bus *b = t->bus;
    struct sb_tap_ctl *ctl = tap_ctl(b);
    uint64_t lost = 0, deadline = 0;
    if (timeout_ms > 0)
        deadline = sb__now_ns() + (uint64_t)timeout_ms * 1000000ull;
    int r;
    for (;;) {
        if (sb__destroyed(b)) {
            r = -EIDRM;
            break;
        }
        uint64_t head = atomic_load_explicit(&ctl->head, memory_order_relaxed);
        if (head - t->next > SB_TAP_SLOTS && head > t->next) {
            lost += head - SB_TAP_SLOTS - t->next; /* lapped: those slots hold later ones */
            t->next = head - SB_TAP_SLOTS;
        }
        if (t->next < head) {
            size_t kept = 0;
            int k = read_slot(t, out, buf, cap, &kept);
            if (k > 0) {
                t->next++;
                t->stuck_ns = 0;
                r = (int)kept;
                break;
            }
            if (k < 0 || (t->stuck_ns != 0 && sb__now_ns() - t->stuck_ns > SB_TAP_STUCK_NS)) {
                /* Overwritten, or claimed by a sender that never finished (it died, or
                 * stopped for longer than a sender ever should between two stores). */
                lost++;
                t->next++;
                t->stuck_ns = 0;
                continue;
            }
            if (t->stuck_ns == 0)
                t->stuck_ns = sb__now_ns();
        } else if (head < t->next) {
            t->next = head; /* a scribbled head went back: follow it */
        }
        if (timeout_ms == 0) {
            r = -EAGAIN;
            break;
        }
        uint64_t now = sb__now_ns();
        if (timeout_ms > 0 && now >= deadline) {
            r = -ETIMEDOUT;
            break;
        }
        /* Sleep until a sender wakes us, a slice ends (to notice a stuck slot or a
         * destroyed bus) or the deadline. */
        uint64_t wait = t->next < head ? 1000000ull : (uint64_t)SB_SLICE_MS * 1000000ull;
        if (timeout_ms > 0 && deadline - now < wait)
            wait = deadline - now;
        /* seq_cst add, then seq_cst load of head: the Dekker pair with the sender's
         * fetch-add on head then load of sleepers in sb__tap_copy(). */
        atomic_fetch_add_explicit(&ctl->sleepers, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&ctl->head, memory_order_seq_cst) != head)
            continue;
        struct timespec ts;
        sb__abs_deadline(&ts, wait);
        int w = sb__sem_wait_until(&ctl->sem, &ts, 2 * SB_TAP_MAX + 2);
        if (w == -EINTR) {
            r = -EINTR;
            break;
        }
    }
    if (out != NULL) {
        if (r < 0)
            memset(out, 0, sizeof(*out));
        out->missed = lost;
    }
    return r;
}
