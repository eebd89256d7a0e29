/*
 * The floors: what the hardware and the kernel allow at best, measured in the same run as
 * everything else so that every other figure can be read as a ratio to them.
 *
 * Design notes
 * - floor-spin: two processes spin on shared memory. A message of up to 64 bytes is one cache
 *   line whose first 8 bytes (the harness's sequence number, different for every message in a
 *   direction) are also the flag; a larger message puts its first 64 bytes in that line and the
 *   rest in a buffer written before the flag. This is the physical floor of a message between
 *   two cores: one line's ownership moving there and back.
 * - floor-sem: the same copies, but the receiver sleeps in sem_wait() on a process-shared
 *   semaphore (sem_t in shared memory, pshared = 1) and the sender sem_post()s: one futex wake
 *   per message, the floor for a receiver that sleeps.
 * - floor-ring: a one-producer one-consumer ring of fixed-size records. Each side keeps its
 *   index in a local variable and publishes it (one release store) only every RING_BATCH
 *   records or when it would otherwise wait, and reads the other side's index only when its
 *   cached copy says it must. The throughput floor: what copying records through shared memory
 *   costs when almost no cache line bounces.
 * - Bytes beyond the first line go to one of TAIL_BUFS buffers in turn, as a mailbox's slots
 *   would: rewriting the very buffer the other core has just read makes every line of a 64 KiB
 *   message an invalidation on that core, which a real transport need not pay (one buffer made
 *   this "floor" three times slower than shmbus and iceoryx at 64 KiB).
 * - The lines each side writes are 128 bytes apart so that the adjacent-line prefetcher does
 *   not make them share.
 */
#include "internal.h"
#include "../src/relax.h"

#include <errno.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define LINE       64
#define RING_BATCH 32
#define RING_BYTES (256 * 1024)
#define TAIL_BUFS  8 /* buffers per direction for the bytes beyond the first line */

/* ---- floor-spin and floor-sem: one mailbox per direction ---- */

struct box {
    _Alignas(128) _Atomic uint64_t seq; /* the message's first 8 bytes */
    char head[LINE - 8];                /* the rest of its first line */
    _Alignas(128) sem_t sem;            /* floor-sem only */
};

struct bench_chan {
    void *map;
    size_t maplen;
    size_t size;
    struct box *box[2]; /* [0]: ping to pong, [1]: pong to ping */
    char *tail[2];      /* bytes beyond the first 64: TAIL_BUFS buffers of tail_len */
    size_t tail_len;
    int sem;
};

struct box_ep {
    struct bench_chan *ch;
    struct box *out, *in;
    char *out_tail, *in_tail;
    size_t tail_len;
    uint64_t sent, received; /* which tail buffer is next */
    uint64_t last_in;
};

static int boxes_setup(struct bench_chan **chp, size_t size, int with_sem, char *why, size_t whylen)
{
    struct bench_chan *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return bench_fail(why, whylen, "calloc");
    size_t tail = size > LINE ? (size - LINE + 127) & ~(size_t)127 : 0;
    ch->tail_len = tail;
    ch->maplen = 2 * sizeof(struct box) + 2 * TAIL_BUFS * tail;
    ch->map = mmap(NULL, ch->maplen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ch->map == MAP_FAILED) {
        int rc = bench_fail(why, whylen, "mmap");
        free(ch);
        return rc;
    }
    ch->size = size;
    ch->sem = with_sem;
    for (int i = 0; i < 2; i++) {
        ch->box[i] = (struct box *)((char *)ch->map + i * sizeof(struct box));
        ch->tail[i] = (char *)ch->map + 2 * sizeof(struct box) + i * TAIL_BUFS * tail;
        atomic_init(&ch->box[i]->seq, BENCH_STOP - 1); /* a value no message carries */
        if (with_sem && sem_init(&ch->box[i]->sem, 1, 0) != 0) {
            int rc = bench_fail(why, whylen, "sem_init");
            if (i == 1)
                sem_destroy(&ch->box[0]->sem);
            munmap(ch->map, ch->maplen);
            free(ch);
            return rc;
        }
    }
    *chp = ch;
    return 0;
}

static int spin_setup(struct bench_chan **ch, size_t size, int nprod, int streaming, char *why,
                      size_t whylen)
{
    (void)nprod;
    (void)streaming;
    return boxes_setup(ch, size, 0, why, whylen);
}

static int sem_setup(struct bench_chan **ch, size_t size, int nprod, int streaming, char *why,
                     size_t whylen)
{
    (void)nprod;
    (void)streaming;
    return boxes_setup(ch, size, 1, why, whylen);
}

static void boxes_teardown(struct bench_chan *ch)
{
    if (ch->sem) {
        sem_destroy(&ch->box[0]->sem);
        sem_destroy(&ch->box[1]->sem);
    }
    munmap(ch->map, ch->maplen);
    free(ch);
}

static int boxes_open(struct bench_chan *ch, enum bench_role role, int index, void **ep, char *why,
                      size_t whylen)
{
    (void)index;
    struct box_ep *e = calloc(1, sizeof(*e));
    if (!e)
        return bench_fail(why, whylen, "calloc");
    int o = role == BENCH_PING ? 0 : 1;
    e->ch = ch;
    e->out = ch->box[o];
    e->in = ch->box[1 - o];
    e->out_tail = ch->tail[o];
    e->in_tail = ch->tail[1 - o];
    e->tail_len = ch->tail_len;
    e->last_in = BENCH_STOP - 1;
    *ep = e;
    return 0;
}

static void boxes_close(void *ep)
{
    free(ep);
}

static void box_write(struct box_ep *e, const void *buf, size_t len)
{
    const char *b = buf;
    size_t first = len < LINE ? len : LINE;
    if (first > 8)
        memcpy(e->out->head, b + 8, first - 8);
    if (len > LINE)
        memcpy(e->out_tail + (e->sent % TAIL_BUFS) * e->tail_len, b + LINE, len - LINE);
    e->sent++;
}

static void box_read(struct box_ep *e, void *buf, size_t len, uint64_t seq)
{
    char *b = buf;
    memcpy(b, &seq, 8);
    size_t first = len < LINE ? len : LINE;
    if (first > 8)
        memcpy(b + 8, e->in->head, first - 8);
    if (len > LINE)
        memcpy(b + LINE, e->in_tail + (e->received % TAIL_BUFS) * e->tail_len, len - LINE);
    e->received++;
}

static int spin_send(void *ep, const void *buf, size_t len)
{
    struct box_ep *e = ep;
    uint64_t seq;
    memcpy(&seq, buf, 8);
    box_write(e, buf, len);
    /* Publishes the bytes written above; pairs with the acquire load in spin_recv(). */
    atomic_store_explicit(&e->out->seq, seq, memory_order_release);
    return 0;
}

static int spin_recv(void *ep, void *buf, size_t len)
{
    struct box_ep *e = ep;
    uint64_t seq;
    /* Pairs with the release store in spin_send(): the payload is complete once seq moved. */
    while ((seq = atomic_load_explicit(&e->in->seq, memory_order_acquire)) == e->last_in)
        sb__cpu_relax();
    e->last_in = seq;
    box_read(e, buf, len, seq);
    return 0;
}

static int sem_send(void *ep, const void *buf, size_t len)
{
    struct box_ep *e = ep;
    uint64_t seq;
    memcpy(&seq, buf, 8);
    box_write(e, buf, len);
    /* sem_post() is a release; the relaxed store is ordered before it. */
    atomic_store_explicit(&e->out->seq, seq, memory_order_relaxed);
    return sem_post(&e->out->sem) == 0 ? 0 : -errno;
}

static int sem_recv(void *ep, void *buf, size_t len)
{
    struct box_ep *e = ep;
    while (sem_wait(&e->in->sem) != 0)
        if (errno != EINTR)
            return -errno;
    /* sem_wait() is an acquire pairing with sem_post() in sem_send(). */
    uint64_t seq = atomic_load_explicit(&e->in->seq, memory_order_relaxed);
    box_read(e, buf, len, seq);
    return 0;
}

const struct bench_transport bench_floor_spin = {
    .name = "floor-spin",
    .about = "cache-line ping-pong: both sides spin on shared memory",
    .kind = BENCH_FLOOR,
    .wait = BENCH_SPIN,
    .caps = BENCH_CAP_LATENCY,
    .setup = spin_setup,
    .open = boxes_open,
    .send = spin_send,
    .recv = spin_recv,
    .close = boxes_close,
    .teardown = boxes_teardown,
};

const struct bench_transport bench_floor_sem = {
    .name = "floor-sem",
    .about = "process-shared semaphore pair (sem_t, pshared=1): receiver sleeps",
    .kind = BENCH_FLOOR,
    .wait = BENCH_SLEEP,
    .caps = BENCH_CAP_LATENCY,
    .setup = sem_setup,
    .open = boxes_open,
    .send = sem_send,
    .recv = sem_recv,
    .close = boxes_close,
    .teardown = boxes_teardown,
};

/* ---- floor-ring: batched one-producer one-consumer ring ---- */

struct ring {
    _Alignas(128) _Atomic uint64_t head; /* written by the producer only */
    _Alignas(128) _Atomic uint64_t tail; /* written by the consumer only */
    _Alignas(128) char slots[];
};

struct ring_ep {
    struct ring *r;
    size_t size;  /* record size */
    uint64_t cap; /* records, a power of two */
    uint64_t mine, published, theirs;
};

static int ring_setup(struct bench_chan **chp, size_t size, int nprod, int streaming, char *why,
                      size_t whylen)
{
    (void)streaming;
    if (nprod != 1) {
        snprintf(why, whylen, "one producer only");
        return -EINVAL;
    }
    struct bench_chan *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return bench_fail(why, whylen, "calloc");
    uint64_t cap = 1;
    while (cap * 2 * size <= RING_BYTES)
        cap *= 2;
    ch->size = size;
    ch->maplen = sizeof(struct ring) + cap * size;
    ch->map = mmap(NULL, ch->maplen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ch->map == MAP_FAILED) {
        int rc = bench_fail(why, whylen, "mmap");
        free(ch);
        return rc;
    }
    *chp = ch;
    return 0;
}

static void ring_teardown(struct bench_chan *ch)
{
    munmap(ch->map, ch->maplen);
    free(ch);
}

static int ring_open(struct bench_chan *ch, enum bench_role role, int index, void **ep, char *why,
                     size_t whylen)
{
    (void)role;
    (void)index;
    struct ring_ep *e = calloc(1, sizeof(*e));
    if (!e)
        return bench_fail(why, whylen, "calloc");
    e->r = ch->map;
    e->size = ch->size;
    e->cap = (ch->maplen - sizeof(struct ring)) / ch->size;
    *ep = e;
    return 0;
}

static void ring_close(void *ep)
{
    free(ep);
}

/* A 64-byte record is copied with a constant size, which the compiler inlines as two or four
 * vector moves: at tens of millions of records a second, a call to memcpy is a visible part of
 * the cost, and a floor should not pay what it need not. */
static inline void copy_record(void *dst, const void *src, size_t len)
{
    if (len == LINE)
        memcpy(dst, src, LINE);
    else
        memcpy(dst, src, len);
}

static int ring_send(void *ep, const void *buf, size_t len, int n)
{
    struct ring_ep *e = ep;
    for (int i = 0; i < n; i++) {
        while (e->mine - e->theirs >= e->cap) {
            if (e->published != e->mine) { /* publish before waiting, or both sides wait */
                atomic_store_explicit(&e->r->head, e->mine, memory_order_release); /* -> recv */
                e->published = e->mine;
            }
            /* Pairs with the release stores of tail in ring_recv(): slots before it are free. */
            e->theirs = atomic_load_explicit(&e->r->tail, memory_order_acquire);
            if (e->mine - e->theirs >= e->cap)
                sb__cpu_relax();
        }
        copy_record(e->r->slots + (e->mine & (e->cap - 1)) * e->size, buf, len);
        e->mine++;
        if (e->mine - e->published >= RING_BATCH) {
            /* Publishes the records written; pairs with the acquire load in ring_recv(). */
            atomic_store_explicit(&e->r->head, e->mine, memory_order_release);
            e->published = e->mine;
        }
    }
    if (e->published != e->mine) {
        atomic_store_explicit(&e->r->head, e->mine, memory_order_release); /* as above */
        e->published = e->mine;
    }
    return 0;
}

static int ring_recv(void *ep, void *buf, size_t len, int max)
{
    struct ring_ep *e = ep;
    while (e->mine == e->theirs) {
        if (e->published != e->mine) { /* free what was read before waiting */
            atomic_store_explicit(&e->r->tail, e->mine, memory_order_release); /* -> send */
            e->published = e->mine;
        }
        /* Pairs with the release stores of head in ring_send(). */
        e->theirs = atomic_load_explicit(&e->r->head, memory_order_acquire);
        if (e->mine == e->theirs)
            sb__cpu_relax();
    }
    uint64_t avail = e->theirs - e->mine;
    int n = avail < (uint64_t)max ? (int)avail : max;
    for (int i = 0; i < n; i++) {
        copy_record(buf, e->r->slots + (e->mine & (e->cap - 1)) * e->size, len);
        e->mine++;
        if (e->mine - e->published >= RING_BATCH) {
            /* Frees the slots read; pairs with the acquire load of tail in ring_send(). */
            atomic_store_explicit(&e->r->tail, e->mine, memory_order_release);
            e->published = e->mine;
        }
    }
    return n;
}

static int no_single(void *ep, void *buf, size_t len)
{
    (void)ep;
    (void)buf;
    (void)len;
    return -ENOTSUP;
}

static int no_single_send(void *ep, const void *buf, size_t len)
{
    (void)ep;
    (void)buf;
    (void)len;
    return -ENOTSUP;
}

const struct bench_transport bench_floor_ring = {
    .name = "floor-ring",
    .about = "1-producer 1-consumer shared-memory ring, indices published every 32 records",
    .kind = BENCH_FLOOR,
    .wait = BENCH_SPIN,
    .caps = BENCH_CAP_STREAM,
    .setup = ring_setup,
    .open = ring_open,
    .send = no_single_send,
    .recv = no_single,
    .stream_send = ring_send,
    .stream_recv = ring_recv,
    .close = ring_close,
    .teardown = ring_teardown,
};
