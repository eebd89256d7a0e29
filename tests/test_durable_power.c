/*
 * test_durable_power: what a durable bus promises after a power cut, per sync level (issue 13).
 *
 * test_durable_crash kills processes; their writes stay in the page cache, so everything
 * written survives. A power cut loses what was written but not yet flushed, and what it
 * leaves of that is not a clean prefix: pages never written read as zeros, the last record
 * may be cut short, a page in the middle of the unflushed tail may be missing while later
 * ones made it, and a disk may return garbage for sectors it was writing.
 *
 * The model. Clients 1 and 2 send (shmbus_send(), or shmbus_send_batch() of up to 4) to
 * client 3, which takes with shmbus_recv(), all in this process, one call at a time. The
 * test defines fdatasync() (the library's calls bind to it) and keeps, per file, its size when a
 * flush began: that prefix, D, is what a power cut keeps, whatever the library thinks it flushed.
 * A call that promises its records are on disk when it returns (a send or receive at level
 * always, a send with SHMBUS_SEND_SYNC at level batch) must find them within D. Each round
 * runs random calls, then cuts the power at a random moment: sometimes during the last call
 * (its write done, its flush not: D is what it was before that call). The disk image is the
 * file's bytes up to a random P >= D, damaged beyond D in the ways above; then
 * th_reboot_sim() and a rebuild from the image in the same directory, and the receiver
 * drains its mailbox.
 *
 * Checks, each what the docs promise (docs/design.md "Sync levels and group commit"):
 *   - every message whose record lies within D is delivered (so every message a call
 *     acknowledged as flushed), in per-sender order, unless its taken marker reached the
 *     disk whole (within D, or in the unflushed part by luck);
 *   - nothing is delivered that was not sent (payloads carry their own check);
 *   - a message whose taken marker lies within D is not delivered again; one whose marker
 *     does not may be (the documented duplicate after a power cut at levels none and batch);
 *   - at level always only the receive in progress at the cut can be delivered again;
 *   - a batch cut short at the file's end is delivered whole or not at all (a hole in the
 *     unflushed part, zeros or garbage with records after it, can take any of its records);
 *   - damage is counted in shmbus_journal_stats (torn + damaged), never delivered: the
 *     counts are non-zero exactly when a byte of a record (not of its padding) was changed
 *     or the file does not end at a record's end (a missing pad is not damage).
 *
 * SHMBUS_POWER_ROUNDS sets the rounds (default 300; `make soak` runs 20,000),
 * SHMBUS_POWER_SEED the seed (printed, so a failing run can be replayed).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "helpers.h"
#include "shmbus.h"

#define MAXOPS 60  /* calls per round */
#define MAXMSG 100 /* messages per round, both senders: fewer than the ring's 128 slots */
#define RECV   3   /* the receiver's id; senders are 1 and 2 */
#define PAGE   4096

static uint64_t rng;
static unsigned long long n_kept, n_again, n_lost, n_damaged; /* what the rounds saw */

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return n ? (uint32_t)(rng % n) : 0;
}

/* A payload that checks itself: header, then len - 24 bytes derived from (s, n). */
struct pmsg {
    uint32_t s, len;
    uint64_t n;
    uint64_t sum;
};

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static size_t make_msg(uint8_t *buf, uint32_t s, uint64_t n, uint32_t len)
{
    struct pmsg h = {.s = s, .len = len, .n = n, .sum = mix((uint64_t)s << 40 ^ n ^ len)};
    memcpy(buf, &h, sizeof(h));
    for (uint32_t i = sizeof(h); i < len; i++)
        buf[i] = (uint8_t)(h.sum >> (i % 8 * 8)) ^ (uint8_t)i;
    return len;
}

static bool msg_ok(const uint8_t *buf, size_t got, struct pmsg *out)
{
    uint8_t want[512];
    if (got < sizeof(*out))
        return false;
    memcpy(out, buf, sizeof(*out));
    if (out->len != got || got > sizeof(want) || (out->s != 1 && out->s != 2))
        return false;
    make_msg(want, out->s, out->n, out->len);
    return memcmp(want, buf, got) == 0;
}

/* What the test knows of each message it sent. */
struct sent {
    uint64_t rec_end;  /* file size after its send's write: its record ends by then */
    int batch;         /* the send_batch call it came with (0: a single send) */
    uint64_t mark_end; /* file size after the receive that took it; 0: not taken */
};

/* One call's records in the file: [start, start + size) the record(s), end the padded end. */
struct span {
    uint64_t start, size, end;
};

struct round {
    char dir[400], bus[SHMBUS_NAME_MAX + 1], file[700];
    unsigned sync;
    struct sent sent[3][MAXMSG];
    uint64_t next[3];                 /* the next message number per sender */
    struct span span[MAXMSG * 2 + 1]; /* one per record */
    int nspan;
    uint64_t d;    /* the durable prefix */
    uint8_t *orig; /* the file at the cut (the page cache) */
    uint8_t *img;  /* and what the disk held of it: p bytes */
    uint64_t p;
    bool hole; /* the image has a hole (zeros or garbage) with records after it */
    ino_t ino; /* the journal file's */
};

/* The flushes the library makes, seen by defining fdatasync() here: a definition in the
 * executable is the one the static library's calls bind to; it makes the system call itself.
 * Per file, how many bytes it had when a flush that succeeded began. That, not what the
 * library's counters say, is what a power cut keeps. */
static struct {
    dev_t dev;
    ino_t ino;
    uint64_t size;
} flushed[16];
static int nflushed;

int fdatasync(int fd)
{
    struct stat st;
    bool known = fstat(fd, &st) == 0;
    int r = (int)syscall(SYS_fdatasync, fd);
    if (r != 0 || !known)
        return r;
    int i = 0;
    while (i < nflushed && !(flushed[i].dev == st.st_dev && flushed[i].ino == st.st_ino))
        i++;
    if (i == nflushed) {
        if (nflushed == 16)
            return r; /* older files of earlier rounds are not looked at again */
        nflushed++;
        flushed[i].dev = st.st_dev;
        flushed[i].ino = st.st_ino;
        flushed[i].size = 0;
    }
    if ((uint64_t)st.st_size > flushed[i].size)
        flushed[i].size = (uint64_t)st.st_size;
    return r;
}

static struct round the_round; /* this round's: its directory is removed even when a check fails */

static shmbus_bus *open_bus(struct round *rd)
{
    struct shmbus_bus_opts o = {.max_clients = 4, .slots = 128, .msg_size = 512};
    struct shmbus_durable du = {.dir = rd->dir, .sync = rd->sync};
    shmbus_bus *b = NULL;
    int r = shmbus_bus_open_durable(rd->bus, &o, &du, SHMBUS_OPEN_CREATE, &b);
    if (r < 0)
        fail_msg("open %s in %s: %s", rd->bus, rd->dir, shmbus_strerror(r));
    return b;
}

/* The one journal file in the directory (no compaction or rebuild runs meanwhile). */
static void find_file(struct round *rd)
{
    DIR *d = opendir(rd->dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".jnl") == 0) {
            snprintf(rd->file, sizeof(rd->file), "%s/%s", rd->dir, e->d_name);
            n++;
        }
    }
    closedir(d);
    assert_int_equal(n, 1);
}

static uint64_t fsize(const struct round *rd)
{
    struct stat st;
    assert_int_equal(stat(rd->file, &st), 0);
    return (uint64_t)st.st_size;
}

/* Did a byte of a record (not of its padding) change, or does the image end inside one?
 * Then the rebuild must count damage; else it must count none. */
static bool damage_expected(const struct round *rd, const uint8_t *orig, const uint8_t *img,
                            uint64_t p, uint64_t extra)
{
    if (extra > 0)
        return true; /* zeros where a record would start */
    bool at_end = p == rd->d;
    for (int i = 0; i < rd->nspan; i++) {
        const struct span *sp = &rd->span[i];
        if (sp->end == p || sp->start + sp->size == p) /* a missing pad is no damage */
            at_end = true;
        for (uint64_t k = sp->start; k < sp->start + sp->size && k < p; k++)
            if (k >= rd->d && orig[k] != img[k])
                return true;
    }
    return !at_end;
}

/* Cut the power: the disk holds [0, d) as written and [d, p) damaged; write that image
 * over the journal file. Returns whether the rebuild must report damage. */
static bool cut(struct round *rd, uint64_t cur, char *what, size_t wlen)
{
    const uint8_t *orig = rd->orig;
    uint64_t p = rd->d + rnd((uint32_t)(cur - rd->d + 1));
    uint32_t kind = rnd(6);
    if (kind == 1 && rd->nspan > 0) { /* a torn last record: p inside a call's write */
        const struct span *sp = &rd->span[rnd((uint32_t)rd->nspan)];
        if (sp->start >= rd->d && sp->end - sp->start > 1)
            p = sp->start + 1 + rnd((uint32_t)(sp->end - sp->start - 1));
    }
    uint8_t *img = malloc(p + PAGE + 1);
    assert_non_null(img);
    memcpy(img, orig, p);
    uint64_t extra = 0;
    size_t w = (size_t)snprintf(what, wlen, "d %llu p %llu of %llu:", (unsigned long long)rd->d,
                                (unsigned long long)p, (unsigned long long)cur);
    if (p > rd->d && (kind == 2 || kind == 5)) { /* pages never written: zeros to the end */
        uint64_t z = (rd->d + rnd((uint32_t)(p - rd->d))) & ~(uint64_t)(PAGE - 1);
        z = z < rd->d ? rd->d : z;
        memset(img + z, 0, p - z);
        w += (size_t)snprintf(what + w, wlen - w, " zeros from %llu", (unsigned long long)z);
    }
    if (p > rd->d && (kind == 3 || kind == 5)) { /* one page in the middle zeroed */
        uint64_t pg = (rd->d + rnd((uint32_t)(p - rd->d))) & ~(uint64_t)(PAGE - 1);
        uint64_t a = pg < rd->d ? rd->d : pg, e = pg + PAGE < p ? pg + PAGE : p;
        memset(img + a, 0, e - a);
        w += (size_t)snprintf(what + w, wlen - w, " page %llu..%llu zeroed", (unsigned long long)a,
                              (unsigned long long)e);
    }
    if (p > rd->d && kind == 4) { /* garbage where the disk was writing */
        uint64_t a = rd->d + rnd((uint32_t)(p - rd->d));
        uint64_t n = 1 + rnd((uint32_t)(p - a < 700 ? p - a : 700));
        for (uint64_t k = a; k < a + n && k < p; k++)
            img[k] = (uint8_t)rnd(256);
        w += (size_t)snprintf(what + w, wlen - w, " garbage %llu+%llu", (unsigned long long)a,
                              (unsigned long long)n);
    }
    if (kind == 2 && rnd(2)) { /* the size was written, the last page's data not */
        extra = 1 + rnd(PAGE);
        memset(img + p, 0, extra);
        snprintf(what + w, wlen - w, " +%llu zeros", (unsigned long long)extra);
    }
    bool expect = damage_expected(rd, orig, img, p, extra);
    rd->hole = kind >= 3;
    int fd = open(rd->file, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, img, p + extra), (ssize_t)(p + extra));
    close(fd);
    rd->img = img;
    rd->p = p;
    return expect;
}

/* Did the taken marker of a message reach the disk whole? (Flushed, or lucky.) A receive
 * writes one marker, the last 56 bytes the call wrote. */
static bool marker_on_disk(const struct round *rd, const struct sent *se)
{
    if (se->mark_end == 0 || se->mark_end > rd->p)
        return false;
    return memcmp(rd->orig + se->mark_end - 56, rd->img + se->mark_end - 56, 56) == 0;
}

/* The journal's flushed prefix (its inode's: renamed or not). */
static uint64_t flushed_of(const struct round *rd)
{
    for (int i = 0; i < nflushed; i++)
        if (flushed[i].ino == rd->ino)
            return flushed[i].size;
    return 0;
}

static void one_round(struct round *rd, int round)
{
    shmbus_bus *b = open_bus(rd);
    shmbus_client *c[4];
    for (uint32_t id = 1; id <= RECV; id++)
        assert_int_equal(shmbus_join(b, id, NULL, &c[id]), 0);
    find_file(rd);
    struct stat st;
    assert_int_equal(stat(rd->file, &st), 0);
    rd->ino = st.st_ino;
    rd->d = flushed_of(rd); /* what the creation (a rebuild) wrote, flushed, renamed */
    assert_int_equal(rd->d, (uint64_t)st.st_size);
    uint64_t last = rd->d, d_before = rd->d;
    int ops = 1 + (int)rnd(MAXOPS);
    bool in_flight = rnd(2); /* the cut comes during the last call */
    uint8_t buf[512];
    for (int i = 0; i < ops; i++) {
        bool flushed;
        uint64_t pending = (rd->next[1] + rd->next[2]);
        for (uint32_t s = 1; s <= 2; s++)
            for (uint64_t n = 0; n < rd->next[s]; n++)
                pending -= rd->sent[s][n].mark_end != 0;
        if (rd->next[1] + rd->next[2] + 4 > MAXMSG && pending == 0)
            break;
        if (pending > 0 && (rnd(3) == 0 || rd->next[1] + rd->next[2] + 4 > MAXMSG)) {
            struct shmbus_msg h;
            int k = shmbus_recv(c[RECV], &h, buf, sizeof(buf), 0);
            struct pmsg pm;
            assert_true(k > 0 && msg_ok(buf, (size_t)k, &pm));
            rd->sent[pm.s][pm.n].mark_end = fsize(rd);
            rd->span[rd->nspan++] = (struct span){last, 56, last + 56};
            flushed = rd->sync == SHMBUS_SYNC_ALWAYS;
        } else {
            /* One send, or a send_batch of up to 4 (one write: all of it or none survives). */
            uint32_t s = 1 + rnd(2), k = rnd(3) == 0 ? 1 + rnd(4) : 0;
            /* Either sender, even right after the other's batch was partly taken
             * (test_msg's test_batch_partly_taken: that once failed with -EAGAIN). */
            unsigned fl = rd->sync == SHMBUS_SYNC_BATCH && rnd(2) ? SHMBUS_SEND_SYNC : 0;
            uint8_t bb[4][512];
            struct shmbus_iov iov[4];
            uint64_t pos = last;
            for (uint32_t m = 0; m < (k ? k : 1); m++) {
                uint64_t n = rd->next[s]++;
                iov[m] = (struct shmbus_iov){bb[m], make_msg(bb[m], s, n, 24 + rnd(400))};
                rd->sent[s][n].batch = k ? i + 1 : 0;
                rd->span[rd->nspan++] =
                    (struct span){pos, 56 + iov[m].len, pos + ((56 + iov[m].len + 7) & ~7u)};
                pos = rd->span[rd->nspan - 1].end;
            }
            if (k == 0)
                assert_int_equal(shmbus_send(c[s], RECV, bb[0], iov[0].len, fl, 0), 0);
            else
                assert_int_equal(shmbus_send_batch(c[s], RECV, iov, k, fl, 0), (int)k);
            for (uint64_t n = rd->next[s] - (k ? k : 1); n < rd->next[s]; n++)
                rd->sent[s][n].rec_end = fsize(rd);
            flushed = rd->sync == SHMBUS_SYNC_ALWAYS || fl != 0;
        }
        uint64_t now = fsize(rd);
        assert_int_equal(now, rd->span[rd->nspan - 1].end); /* the model's records are the file's */
        last = now;
        d_before = rd->d;
        rd->d = flushed_of(rd);
        if (flushed && rd->d < now)
            fail_msg("round %d: level %u: a call (op %d) returned as flushed, but only %llu of "
                     "%llu bytes were flushed",
                     round, rd->sync, i, (unsigned long long)rd->d, (unsigned long long)now);
    }
    if (in_flight)
        rd->d = d_before;
    /* The cut: what the page cache holds now, then the disk's image of it. */
    uint64_t cur = fsize(rd);
    rd->orig = malloc(cur ? cur : 1);
    assert_non_null(rd->orig);
    int fd = open(rd->file, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, rd->orig, cur), (ssize_t)cur);
    close(fd);
    for (uint32_t id = 1; id <= RECV; id++)
        shmbus_leave(c[id]);
    shmbus_bus_close(b);
    th_reboot_sim(rd->bus);
    char what[300];
    bool expect = cut(rd, cur, what, sizeof(what));

    /* The reboot: rebuild, drain, check. */
    b = open_bus(rd);
    struct shmbus_journal_stats js;
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    if ((js.torn + js.damaged != 0) != expect)
        fail_msg("round %d (%s): torn %llu damaged %llu, damage %sexpected", round, what,
                 (unsigned long long)js.torn, (unsigned long long)js.damaged, expect ? "" : "not ");
    assert_int_equal(js.deferred, 0);
    n_damaged += expect;
    assert_int_equal(shmbus_join(b, RECV, NULL, &c[RECV]), 0);
    bool got[3][MAXMSG] = {{false}};
    int64_t prev[3] = {-1, -1, -1};
    struct shmbus_msg h;
    int k;
    while ((k = shmbus_recv(c[RECV], &h, buf, sizeof(buf), 0)) >= 0) {
        struct pmsg pm;
        if (!msg_ok(buf, (size_t)k, &pm) || pm.n >= rd->next[pm.s] || h.src != pm.s)
            fail_msg("round %d (%s): delivered a message never sent (%d bytes)", round, what, k);
        const struct sent *se = &rd->sent[pm.s][pm.n];
        if ((int64_t)pm.n <= prev[pm.s])
            fail_msg("round %d (%s): sender %u: %llu after %lld", round, what, pm.s,
                     (unsigned long long)pm.n, (long long)prev[pm.s]);
        prev[pm.s] = (int64_t)pm.n;
        if (se->mark_end != 0 && se->mark_end <= rd->d)
            fail_msg("round %d (%s): sender %u message %llu delivered again, its marker was "
                     "flushed",
                     round, what, pm.s, (unsigned long long)pm.n);
        got[pm.s][pm.n] = true;
    }
    assert_int_equal(k, -EAGAIN);
    int again = 0;
    for (uint32_t s = 1; s <= 2; s++)
        for (uint64_t n = 0; n < rd->next[s]; n++) {
            const struct sent *se = &rd->sent[s][n];
            again += got[s][n] && se->mark_end != 0;
            /* A batch cut short at the end of the file is kept whole or not at all: a
             * delivered message of it means every one of it not taken (marker on disk) was
             * delivered. (A hole in the unflushed part can take any records, of a batch too:
             * a record does not say whether it came after others of its batch.) */
            for (uint64_t o = 0; !rd->hole && se->batch != 0 && got[s][n] && o < rd->next[s]; o++)
                if (rd->sent[s][o].batch == se->batch && !got[s][o] &&
                    !marker_on_disk(rd, &rd->sent[s][o]))
                    fail_msg("round %d (%s): sender %u message %llu of a batch delivered, "
                             "%llu of it not",
                             round, what, s, (unsigned long long)n, (unsigned long long)o);
            n_kept += se->rec_end <= rd->d && !marker_on_disk(rd, se);
            n_again += got[s][n] && se->mark_end != 0;
            n_lost += !got[s][n] && se->mark_end == 0;
            if (se->rec_end <= rd->d && !marker_on_disk(rd, se) && !got[s][n])
                fail_msg("round %d (%s): sender %u message %llu was flushed and is lost", round,
                         what, s, (unsigned long long)n);
        }
    /* At level always every receive that returned had its marker flushed: only the one in
     * progress at the cut can come again. */
    if (rd->sync == SHMBUS_SYNC_ALWAYS && again > 1)
        fail_msg("round %d (%s): level always delivered %d taken messages again", round, what,
                 again);
    shmbus_leave(c[RECV]);
    shmbus_bus_close(b);
    free(rd->orig);
    free(rd->img);
}

static void test_power_cut(void **state)
{
    (void)state;
    const char *e = getenv("SHMBUS_POWER_ROUNDS");
    int rounds = e ? atoi(e) : 300;
    e = getenv("SHMBUS_POWER_SEED");
    uint64_t seed = e ? strtoull(e, NULL, 0) : (th_now_ns() ^ (uint64_t)getpid() << 20);
    rng = seed | 1;
    print_message("durable power-cut test: %d rounds, seed %llu\n", rounds,
                  (unsigned long long)seed);
    const char *t = getenv("TEST_TMPDIR");
    int per_level[3] = {0};
    for (int round = 0; round < rounds; round++) {
        memset(&the_round, 0, sizeof(the_round));
        nflushed = 0;
        snprintf(the_round.dir, sizeof(the_round.dir), "%s/dpower-%d-%d",
                 t && t[0] == '/' ? t : "/tmp", (int)getpid(), round);
        snprintf(the_round.bus, sizeof(the_round.bus), "t-dpower%d-%d", round, (int)getpid());
        the_round.sync = rnd(3);
        per_level[the_round.sync]++;
        one_round(&the_round, round); /* a failure jumps out: teardown() removes the bus and dir */
        assert_int_equal(shmbus_bus_destroy(the_round.bus), 0);
        th_rm_rf(the_round.dir);
    }
    print_message("rounds per level: none %d, batch %d, always %d; %llu with damage reported\n",
                  per_level[0], per_level[1], per_level[2], n_damaged);
    print_message("%llu messages on disk and not taken, all delivered; %llu taken before the "
                  "cut delivered again (marker lost); %llu never taken lost (not flushed)\n",
                  n_kept, n_again, n_lost);
}

static int teardown(void **state)
{
    if (the_round.dir[0] != '\0')
        th_rm_rf(the_round.dir);
    return th_cleanup(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_power_cut),
    };
    th_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, teardown);
}
