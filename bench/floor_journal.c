/*
 * The journal floor: the least work any journal of a durable bus must do per message, in one
 * thread, so that the durable target (issue 13: sync none >= 0.5x the in-memory bus) can be
 * read against what this machine allows.
 *
 * Design notes
 * - Both rows do, for every message, what src/journal.c must do at the least: fill a 56-byte
 *   record header laid out like struct sb_jrec (src/journal.h), CRC32C it and the payload
 *   (shmbus_crc32c(), the library's exported CRC: the same code and cost as the journal's),
 *   and put header, payload and zero padding to 8 bytes in a file's page cache. One
 *   CLOCK_REALTIME read per batch, as the journal stamps a batch. No ring, no receiver, no
 *   other process, no lock, no taken markers, no fsync: one process pinned like a producer.
 * - floor-journal-writev: one writev(2) of the whole batch (STREAM_CHUNK = 256 records, two
 *   iovecs each: header, payload) to an O_APPEND file. Today's journal write minus its flock
 *   pair, its ring and its markers.
 * - floor-journal-mapped: the records are copied into a MAP_SHARED mapping of the file. The
 *   file is made ready a chunk (4 MiB) ahead of the writer: fallocate() extends it and
 *   MADV_POPULATE_WRITE maps the chunk's pages (where the kernel has it), so no system call
 *   is made per batch, one pair per 4 MiB. This is the design "Not built yet" in
 *   docs/design.md asks about.
 * - Both files start again from empty (ftruncate to 0) every 64 MiB, the default
 *   compact_bytes (SHMBUS_COMPACT_DEFAULT): a running journal does not keep writing into the
 *   same warm pages, it frees them at compaction and takes fresh ones, and on a virtual
 *   machine a fresh page can cost far more than the bytes written to it.
 * - The files live in the durable rows' directory (bench_disk_dir(): $SHMBUS_BENCH_JOURNAL
 *   or the bench's temporary directory), so the floor is measured on the same disk.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifdef BENCH_HAVE_SHMBUS
#include <shmbus.h>
#endif

#define JF_BATCH   256         /* records per call: the harness's STREAM_CHUNK */
#define JF_RESTART (64u << 20) /* the file starts again from empty every this many bytes */
#define JF_CHUNK   (4u << 20)  /* the mapped file is made ready this far ahead */
#define JF_MAGIC   0x52424a53u /* SB_JREC_MAGIC */
#define JF_MSG     1           /* SB_JREC_MSG */

/* The journal's record header (struct sb_jrec in src/journal.h, an internal header the bench
 * does not include); the same 56 bytes, the CRC over bytes 12..size. */
struct jf_rec {
    uint32_t magic;
    uint32_t size;
    uint32_t crc;
    uint8_t type, prio, flags, pad;
    uint32_t src, src_gen, dst, rest;
    uint64_t seq, corr, time_ns;
};
_Static_assert(sizeof(struct jf_rec) == 56, "a journal record header is 56 bytes");

struct bench_chan {
    char dir[400];
    int mapped;
};

struct jf_ep {
    int fd;
    int mapped;
    char path[420];
    char *map;      /* mapped: JF_RESTART bytes of the file */
    uint64_t off;   /* bytes written since the file last started from empty */
    uint64_t ready; /* mapped: bytes of the file allocated and populated */
    uint64_t seq;
    struct jf_rec rec[JF_BATCH];
    struct iovec iov[2 * JF_BATCH + 1];
};

static const char *jf_probe(size_t size, char *why, size_t whylen)
{
    (void)why;
    (void)whylen;
#ifdef BENCH_HAVE_SHMBUS
    return size * JF_BATCH * 2 > JF_RESTART ? "a batch of this size does not fit the file" : NULL;
#else
    (void)size;
    return "library not built (the CRC is the library's shmbus_crc32c())";
#endif
}

static int jf_setup(struct bench_chan **chp, size_t size, int mapped, char *why, size_t whylen)
{
    (void)size;
    static unsigned serial;
    struct bench_chan *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return bench_fail(why, whylen, "calloc");
    char tag[64];
    snprintf(tag, sizeof(tag), "floor-journal-%d-%u", (int)getpid(), serial++);
    int rc = bench_disk_dir(ch->dir, sizeof(ch->dir), tag, why, whylen);
    if (rc < 0) {
        free(ch);
        return rc;
    }
    ch->mapped = mapped;
    *chp = ch;
    return 0;
}

static int jf_setup_writev(struct bench_chan **ch, size_t size, int nprod, int streaming, char *why,
                           size_t whylen)
{
    (void)nprod;
    (void)streaming;
    return jf_setup(ch, size, 0, why, whylen);
}

static int jf_setup_mapped(struct bench_chan **ch, size_t size, int nprod, int streaming, char *why,
                           size_t whylen)
{
    (void)nprod;
    (void)streaming;
    return jf_setup(ch, size, 1, why, whylen);
}

static void jf_teardown(struct bench_chan *ch)
{
    bench_disk_dir_remove(ch->dir);
    free(ch);
}

static int jf_open(struct bench_chan *ch, enum bench_role role, int index, void **ep, char *why,
                   size_t whylen)
{
    (void)role;
    (void)index;
    struct jf_ep *e = calloc(1, sizeof(*e));
    if (!e)
        return bench_fail(why, whylen, "calloc");
    e->mapped = ch->mapped;
    snprintf(e->path, sizeof(e->path), "%s/journal", ch->dir);
    e->fd =
        open(e->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | (e->mapped ? 0 : O_APPEND), 0600);
    if (e->fd < 0) {
        int rc = bench_fail(why, whylen, "open");
        free(e);
        return rc;
    }
    if (e->mapped) {
        e->map = mmap(NULL, JF_RESTART, PROT_READ | PROT_WRITE, MAP_SHARED, e->fd, 0);
        if (e->map == MAP_FAILED) {
            int rc = bench_fail(why, whylen, "mmap");
            close(e->fd);
            unlink(e->path);
            free(e);
            return rc;
        }
    }
    *ep = e;
    return 0;
}

static void jf_close(void *ep)
{
    struct jf_ep *e = ep;
    if (e->map)
        munmap(e->map, JF_RESTART);
    close(e->fd);
    unlink(e->path);
    free(e);
}

#ifdef BENCH_HAVE_SHMBUS

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Record k of a batch of n: the header the journal writes for a message of len bytes, with
 * its CRC (two calls, header then payload, as src/journal.c's fill_rec()). */
static void jf_fill(struct jf_ep *e, struct jf_rec *r, int k, int n, const void *buf, size_t len,
                    uint64_t now)
{
    memset(r, 0, sizeof(*r));
    r->magic = JF_MAGIC;
    r->size = (uint32_t)(sizeof(*r) + len);
    r->type = JF_MSG;
    r->src = 1;
    r->src_gen = 1;
    r->dst = 2;
    r->rest = (uint32_t)(n - 1 - k);
    r->seq = e->seq++;
    r->time_ns = now;
    uint32_t crc = shmbus_crc32c(0, (const uint8_t *)r + 12, sizeof(*r) - 12);
    r->crc = shmbus_crc32c(crc, buf, len);
}

/* Start the file again from empty once the next batch would cross JF_RESTART, as a
 * compaction does (the pages written so far are freed). */
static int jf_restart(struct jf_ep *e, size_t batch)
{
    if (e->off + batch <= JF_RESTART)
        return 0;
    if (ftruncate(e->fd, 0) != 0)
        return -errno;
    e->off = 0;
    e->ready = 0;
    return 0;
}

static int jf_send_writev(void *ep, const void *buf, size_t len, int n)
{
    static const char zero[8];
    struct jf_ep *e = ep;
    size_t pad = (8u - (len & 7u)) & 7u, total = 0;
    uint64_t now = realtime_ns();
    int ni = 0;
    if (n > JF_BATCH)
        n = JF_BATCH;
    for (int k = 0; k < n; k++) {
        jf_fill(e, &e->rec[k], k, n, buf, len, now);
        e->iov[ni++] = (struct iovec){&e->rec[k], sizeof(e->rec[k])};
        e->iov[ni++] = (struct iovec){(void *)buf, len};
        if (pad)
            e->iov[ni++] = (struct iovec){(void *)zero, pad};
        total += sizeof(e->rec[k]) + len + pad;
    }
    int rc = jf_restart(e, total);
    if (rc < 0)
        return rc;
    ssize_t w;
    do
        w = writev(e->fd, e->iov, ni);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        return -errno;
    if ((size_t)w != total)
        return -ENOSPC;
    e->off += total;
    return 0;
}

/* Keep the mapped file a chunk ahead of the writer: extend it (fallocate, so no write
 * through the mapping can hit a hole or the end of the file) and map its pages. */
static int jf_ahead(struct jf_ep *e, size_t batch)
{
    while (e->ready < e->off + batch + JF_CHUNK && e->ready < JF_RESTART) {
        if (fallocate(e->fd, 0, (off_t)e->ready, JF_CHUNK) != 0)
            return -errno;
#ifdef MADV_POPULATE_WRITE
        /* Best effort: without it (before Linux 5.14) the pages fault in on first touch. */
        (void)madvise(e->map + e->ready, JF_CHUNK, MADV_POPULATE_WRITE);
#endif
        e->ready += JF_CHUNK;
    }
    return 0;
}

static int jf_send_mapped(void *ep, const void *buf, size_t len, int n)
{
    struct jf_ep *e = ep;
    size_t pad = (8u - (len & 7u)) & 7u, one = sizeof(struct jf_rec) + len + pad;
    if (n > JF_BATCH)
        n = JF_BATCH;
    int rc = jf_restart(e, one * (size_t)n);
    if (rc == 0)
        rc = jf_ahead(e, one * (size_t)n);
    if (rc < 0)
        return rc;
    uint64_t now = realtime_ns();
    char *p = e->map + e->off;
    for (int k = 0; k < n; k++) {
        struct jf_rec r;
        jf_fill(e, &r, k, n, buf, len, now);
        memcpy(p, &r, sizeof(r));
        memcpy(p + sizeof(r), buf, len);
        if (pad)
            memset(p + sizeof(r) + len, 0, pad);
        p += one;
    }
    e->off += one * (size_t)n;
    return 0;
}

#else

static int jf_send_writev(void *ep, const void *buf, size_t len, int n)
{
    (void)ep;
    (void)buf;
    (void)len;
    (void)n;
    return -ENOTSUP;
}
#define jf_send_mapped jf_send_writev

#endif

static int jf_single(void *ep, const void *buf, size_t len)
{
    (void)ep;
    (void)buf;
    (void)len;
    return -ENOTSUP;
}

static int jf_no_recv(void *ep, void *buf, size_t len)
{
    (void)ep;
    (void)buf;
    (void)len;
    return -ENOTSUP;
}

const struct bench_transport bench_floor_journal_writev = {
    .name = "floor-journal-writev",
    .group = "floor-journal",
    .about = "one thread, no receiver: 56 B journal record header + CRC32C per message, one "
             "writev of 256 records to an O_APPEND file (no flock), file restarted every 64 MiB",
    .kind = BENCH_FLOOR,
    .wait = BENCH_NONE,
    .caps = BENCH_CAP_ALONE,
    .probe = jf_probe,
    .setup = jf_setup_writev,
    .open = jf_open,
    .send = jf_single,
    .recv = jf_no_recv,
    .stream_send = jf_send_writev,
    .close = jf_close,
    .teardown = jf_teardown,
};

const struct bench_transport bench_floor_journal_mapped = {
    .name = "floor-journal-mapped",
    .group = "floor-journal",
    .about = "one thread, no receiver: 56 B journal record header + CRC32C per message, copied "
             "into a MAP_SHARED file made ready 4 MiB ahead (fallocate, MADV_POPULATE_WRITE), no "
             "system call per batch, file restarted every 64 MiB",
    .kind = BENCH_FLOOR,
    .wait = BENCH_NONE,
    .caps = BENCH_CAP_ALONE,
    .probe = jf_probe,
    .setup = jf_setup_mapped,
    .open = jf_open,
    .send = jf_single,
    .recv = jf_no_recv,
    .stream_send = jf_send_mapped,
    .close = jf_close,
    .teardown = jf_teardown,
};
