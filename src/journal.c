/*
 * journal.c - durable buses: the journal that keeps accepted messages until they are taken,
 * and the rebuild of a bus from it after every process and the segment are gone.
 *
 * Design notes
 * ------------
 * One journal file per bus incarnation, <dir>/<bus>.<epoch, 16 hex digits>.jnl, opened
 * O_APPEND by every process attached to the bus. A sender writes each message's record
 * (with one writev(2) for a batch) after it claimed room in the destination's ring and
 * before it commits there, or, for a send batch that found no room, before it claims
 * (send_batch_ahead() in mailbox.c: the write overlaps the receiver's work, and what is
 * not placed gets a CANCEL run); either way a message is never visible before its record
 * is written. A receiver appends a taken marker (src, generation, seq) before its receive
 * call returns.
 * A receive batch writes one marker per run of consecutive seqs of one sender generation
 * (format 2: the marker's `rest` counts the seqs after the first), all in one writev,
 * before it passes any of them in the ring (take_run() in mailbox.c): the write costs are
 * per batch, not per message. Readers merge the runs (gone_sort()) and ask gone_has().
 * The kernel serialises O_APPEND writes to a regular file, so concurrent records never
 * interleave; a write cut short (a full disk) leaves a torn fragment that the reader skips.
 * docs/design.md has the picture and the reasons for one file rather than one per mailbox.
 *
 *   file header (128 bytes): magic "SBJOURNL", format version, header size, journal id,
 *                            epoch, creation time, bus name, CRC32C of the bytes before it
 *   records, back to back:   magic "SJBR", size (56 + payload), CRC32C of bytes 12..size,
 *                            type, prio, flags, src, src_gen, dst, seq, corr, time, payload,
 *                            zero padding to a multiple of 8 (not counted in size)
 *
 * Group commit (SHMBUS_SYNC_BATCH): after its write a writer takes a ticket (appended += 1).
 * A flusher reads appended = T, calls fdatasync(), and raises synced to T: every write that
 * took a ticket <= T had returned before the flusher read T, so fdatasync() covered it.
 * sync_owner (a pid) lets one process flush at a time; a dead owner is replaced.
 *
 * Rebuild (at creation, before the segment is published): read the newest journal file,
 * drop messages that have a taken or cancel marker, write the rest into a new file
 * (epoch + 1, made under a temporary name, flushed, renamed, then the old one removed), and
 * put them into the rings as kept mailboxes. A crash during the rebuild leaves either the
 * old file alone (the rebuild starts again) or the new one complete beside the old one
 * (the new one wins; the old one is removed). Survivors keep src, seq and priority; their
 * sender generations are renumbered 1..m per src in order of appearance, and the src id's
 * registry entry starts above them, so (src, generation, seq) stays unique in the new file.
 *
 * Compaction (while the bus runs): when the file in use grows past compact_bytes, the writer
 * that notices (and wins compact_owner) reads it up to its current end X, writes the
 * messages not yet taken to <bus>.<epoch+1>.tmp.<pid>, then takes the file's flock
 * exclusively. Every journal write holds the flock shared and checks the epoch under it,
 * so once the compactor holds it nobody is in the middle of a write and nobody will write
 * to the old file again: it copies the records after X, flushes, renames the new file in,
 * publishes epoch + 1, unlocks (writers then reopen) and removes the old file. A compactor
 * killed in the middle loses its lock with its life; compact_target, set only under the
 * exclusive lock before the rename and cleared after the epoch is published, tells the
 * next writer (which sees it under its shared lock, so its owner must be dead) to remove a
 * half-published new file before it writes to the old one. So at any moment the newest
 * <bus>.*.jnl holds every record: that is the file a rebuild reads.
 *
 * What a compaction costs: it reads the file once, in windows of a few MiB into one buffer
 * (snap_scan(); not the whole file into a buffer as large as it, whose page faults cost as
 * much as the copy), and checks every record's CRC once. Without retention it drops each
 * message at its marker as it reads (drop_covered()), so what it holds in memory is what
 * is live, not every record of the file; then it reads back only the survivors' bytes
 * (snap_rec()). In a 1:1 stream that is about one copy and one CRC per byte written,
 * whatever the file's size, paid by the writer that crossed compact_bytes.
 *
 * Journal files are hostile: every length is checked against the bytes read, every record
 * against its CRC; a bad record is skipped and counted, never delivered.
 *
 * Why every write still takes the shared flock (two system calls beside its writev): the
 * lock is what tells a compactor, in a way a kill -9 cannot leave stale, that no write to
 * the old file is in progress. Skipping it "while no compaction is in progress" (a flag in
 * the segment) is not safe: a writer can read the flag clear, be preempted, and append
 * after the compactor has copied the tail and switched files, and that record is lost. A
 * counter of writers in flight would be left raised by a writer killed mid-write; holding
 * the shared lock from open to close would let one idle process block every compaction.
 * So the costs are cut per write instead: one write per send batch and one per receive
 * batch (markers by runs), one clock read per write, no getpid() per write.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "journal.h"

struct sb_journal {
    /* One journal write (or flush, or compaction) at a time in this process: the shared
     * flock of a write belongs to the open file, which all our threads share, so one
     * thread's unlock must not end another's write (see "Compaction" above). */
    pthread_mutex_t mu;
    int fd;
    uint64_t epoch; /* of the file fd is open on */
    pid_t pid;      /* that opened fd: a forked child opens its own */
    uint32_t sync;
    uint64_t compact_bytes;
    uint64_t retain_bytes, retain_ns;
    struct sb_jctl *ctl; /* in the segment */
    char dir[SHMBUS_JOURNAL_DIR_MAX + 1];
    /* CANCEL runs whose marker could not be written (a full disk): what a send reported
     * as not sent must never be delivered, and a rebuild would deliver it without its
     * marker. Written before this handle's next record, and at its close. Under mu. */
    struct sb_taken_run *pend;
    uint32_t npend, pend_cap;
    uint64_t compact_retry_ns; /* no compaction by this handle before (a failed one). Under mu */
};

/* ---- CRC32C (Castagnoli, reflected polynomial 0x82F63B78) ------------------------------
 * The SSE4.2 crc32 instruction computes exactly this CRC, 8 bytes per instruction; where the
 * CPU has it (cpuid, once), it is used, else a slice-by-8 table. Both give the same results
 * (test_durable checks them against each other and the standard check value). */

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static bool crc_hw;

static bool cpu_has_sse42(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2) != 0;
#else
    return false;
#endif
}

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
    crc_hw = cpu_has_sse42() && getenv("SHMBUS_CRC32C_TABLE") == NULL;
}

uint32_t sb__crc32c_table(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^ crc_tab[5][(lo >> 16) & 0xff] ^
              crc_tab[4][lo >> 24] ^ crc_tab[3][p[4]] ^ crc_tab[2][p[5]] ^ crc_tab[1][p[6]] ^
              crc_tab[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t crc, const void *data,
                                                            size_t len)
{
    const uint8_t *p = data;
    uint64_t c = ~crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, sizeof(v)); /* any alignment; little-endian like the table's order */
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
#endif

bool sb__crc32c_hw(void)
{
    pthread_once(&crc_once, crc_init);
    return crc_hw;
}

uint32_t sb__crc32c(uint32_t crc, const void *data, size_t len)
{
#if defined(__x86_64__)
    if (sb__crc32c_hw())
        return crc_sse42(crc, data, len);
#endif
    return sb__crc32c_table(crc, data, len);
}

uint32_t shmbus_crc32c(uint32_t crc, const void *data, size_t len)
{
    return sb__crc32c(crc, data, len);
}

/* ---- this process's id ------------------------------------------------------------------
 * Every journal write asks whether this process opened the journal's file or is a forked
 * child (which must open its own: the open file, and with it its flock, is shared). getpid()
 * is a system call; the answer changes only in fork(), whose child handler refreshes it.
 * (A child made by a raw clone() system call runs no handlers: such a child must not use a
 * bus handle of its parent, as with any library state.) */

static pid_t my_pid;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

static void pid_refresh(void)
{
    my_pid = getpid();
}

static void pid_init(void)
{
    pid_refresh();
    pthread_atfork(NULL, NULL, pid_refresh);
}

static pid_t self_pid(void)
{
    pthread_once(&pid_once, pid_init);
    return my_pid;
}

/* ---- file names and headers ------------------------------------------------------------- */

static void fill_fhdr(struct sb_jfile_hdr *h, uint64_t jid, uint64_t epoch, const char *bus)
{
    memset(h, 0, sizeof(*h));
    memcpy(h->magic, SB_JFILE_MAGIC, sizeof(h->magic));
    h->version = SB_JFILE_VERSION;
    h->header_size = sizeof(*h);
    h->jid = jid;
    h->epoch = epoch;
    h->created_ns = sb__realtime_ns();
    snprintf(h->bus, sizeof(h->bus), "%s", bus);
    h->crc = sb__crc32c(0, h, offsetof(struct sb_jfile_hdr, crc));
}

int sb__jfile_check(const void *buf, size_t len, const char *bus, struct sb_jfile_hdr *out)
{
    struct sb_jfile_hdr h;
    if (len < sizeof(h))
        return -EPROTO;
    memcpy(&h, buf, sizeof(h));
    if (memcmp(h.magic, SB_JFILE_MAGIC, sizeof(h.magic)) != 0)
        return -EPROTO;
    if (h.crc != sb__crc32c(0, &h, offsetof(struct sb_jfile_hdr, crc)))
        return -EPROTO;
    if (h.version != SB_JFILE_VERSION || h.header_size != sizeof(h))
        return -EPROTONOSUPPORT;
    h.bus[sizeof(h.bus) - 1] = '\0';
    if (bus != NULL && strcmp(h.bus, bus) != 0)
        return -EPROTO;
    if (out != NULL)
        *out = h;
    return 0;
}

/* ---- reading a journal ------------------------------------------------------------------ */

/* Is there a whole, good record at buf[pos..len)? Its size (with padding) or 0. */
static size_t rec_ok(const uint8_t *buf, size_t len, size_t pos, struct sb_jrec *out)
{
    if (len - pos < sizeof(struct sb_jrec))
        return 0;
    struct sb_jrec r;
    memcpy(&r, buf + pos, sizeof(r));
    if (r.magic != SB_JREC_MAGIC || r.size < sizeof(r) ||
        r.size > sizeof(r) + (uint64_t)SHMBUS_MAX_MSG_SIZE || r.size > len - pos)
        return 0;
    if (r.type < SB_JREC_MSG || r.type > SB_JREC_CANCEL)
        return 0;
    if (r.type != SB_JREC_MSG && r.size != sizeof(r))
        return 0;
    if (r.crc != sb__crc32c(0, buf + pos + 12, r.size - 12))
        return 0;
    *out = r;
    size_t padded = (r.size + 7u) & ~(size_t)7u;
    return padded <= len - pos ? padded : r.size; /* a missing pad at the very end is fine */
}

/* A record whose magic and size look right but whose bytes fail: damaged if it is all
 * there (a bad CRC), torn if the next good record starts inside it. */
static bool claims_whole(const uint8_t *buf, size_t pos, size_t next)
{
    struct sb_jrec r;
    if (next - pos < sizeof(r))
        return false;
    memcpy(&r, buf + pos, sizeof(r));
    return r.magic == SB_JREC_MAGIC && r.size >= sizeof(r) && r.size <= next - pos;
}

int sb__journal_parse(const uint8_t *buf, size_t len, sb__jrec_fn fn, void *arg,
                      struct sb_jscan *st)
{
    memset(st, 0, sizeof(*st));
    size_t pos = sizeof(struct sb_jfile_hdr);
    st->good_end = pos;
    while (pos < len) {
        struct sb_jrec r;
        size_t n = rec_ok(buf, len, pos, &r);
        if (n != 0) {
            if (fn != NULL)
                fn(&r, buf + pos + sizeof(r), pos, arg);
            st->records++;
            pos += n;
            st->good_end = pos;
            continue;
        }
        /* Look for the next good record (byte by byte: a torn fragment has any length). */
        size_t next = pos + 1;
        while (next < len) {
            const uint8_t *m = memchr(buf + next, SB_JREC_MAGIC & 0xff, len - next);
            if (m == NULL) {
                next = len;
                break;
            }
            next = (size_t)(m - buf);
            if (rec_ok(buf, len, next, &r) != 0)
                break;
            next++;
        }
        if (next >= len) { /* nothing good after it: a torn tail */
            st->tail_cut = len - pos;
            st->torn++;
            break;
        }
        if (claims_whole(buf, pos, next))
            st->damaged++;
        else
            st->torn++;
        st->skipped_bytes += next - pos;
        pos = next;
    }
    return 0;
}

int sb__journal_read(int dirfd, const char *file, uint8_t **out, size_t *len)
{
    int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EPROTO;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t k = read(fd, buf + got, size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    *out = buf;
    *len = got;
    return 0;
}

/* ---- rebuild ---------------------------------------------------------------------------- */

struct survivor {
    size_t off; /* of the record in the old file's buffer */
    struct sb_jrec r;
    uint32_t new_gen;
    bool deferred;
};

/* A taken or cancelled run: seq..last of one (src, src_gen). */
struct ident {
    uint64_t key; /* src << 32 | src_gen */
    uint64_t seq;
    uint64_t last;
};

struct rebuild {
    struct survivor *msg;
    size_t nmsg, capmsg;
    /* A batch being collected (rest): its first message's index and offset, how many
     * records are still to come, and what the next one must be. */
    size_t pend_first, pend_left, pend_off, pend_next;
    uint32_t pend_src, pend_gen;
    uint64_t pend_seq;
    bool cut;             /* collect_end() dropped an unfinished batch at the end */
    size_t cut_off;       /* where it started */
    struct survivor *ret; /* taken, kept by retention (split_taken()) */
    size_t nret;
    struct ident *gone; /* taken or cancelled */
    size_t ngone, capgone;
    bool drop_taken; /* drop a message at its marker (no retention: nobody keeps it) */
};

static int ident_cmp(const void *a, const void *b)
{
    const struct ident *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Does run g cover (key, seq)? The one test of "taken" under gone_has() and
 * drop_covered(). */
static bool run_covers(const struct ident *g, uint64_t key, uint64_t seq)
{
    return g->key == key && seq >= g->seq && seq <= g->last;
}

/* Sort the taken runs and merge those that overlap or touch (a message taken twice: a
 * receiver killed between its marker and the DONE in its ring takes it again), so that
 * the runs of one key are disjoint and gone_has() can search them. */
static void gone_sort(struct ident *g, size_t *n)
{
    if (*n < 2)
        return;
    qsort(g, *n, sizeof(*g), ident_cmp);
    size_t k = 0;
    for (size_t i = 1; i < *n; i++) {
        if (g[i].key == g[k].key && (g[k].last == UINT64_MAX || g[i].seq <= g[k].last + 1)) {
            if (g[i].last > g[k].last)
                g[k].last = g[i].last;
        } else {
            g[++k] = g[i];
        }
    }
    *n = k + 1;
}

/* Is (key, seq) in one of the runs g[0..n) (sorted and merged by gone_sort())? The one rule
 * for "taken" that the rebuild, compaction and shmbus_journal_scan() share. */
static bool gone_has(const struct ident *g, size_t n, uint64_t key, uint64_t seq)
{
    size_t lo = 0, hi = n; /* the first run after (key, seq) is at hi */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g[mid].key < key || (g[mid].key == key && g[mid].seq <= seq))
            lo = mid + 1;
        else
            hi = mid;
    }
    return hi > 0 && run_covers(&g[hi - 1], key, seq);
}

static uint64_t ident_key(const struct sb_jrec *r)
{
    return (uint64_t)r->src << 32 | (r->src_gen & 0xffffffu);
}

static bool grow(void **p, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 256;
    void *q = realloc(*p, c * elem);
    if (q == NULL)
        return false;
    *p = q;
    *cap = c;
    return true;
}

/*
 * A marker's run g is being collected: drop the messages it covers from the newest
 * DROP_WINDOW survivors now (rb->drop_taken only), rather than keep every message of the
 * file until split_taken() sorts the markers. In a stream nearly every message is taken
 * by the time a compaction reads it, and its marker follows it closely in the file (a
 * record is written just before its sender claims room in the ring or between the claim
 * and the commit, so about the rings' capacity of messages, and a send batch of each
 * sender, lie between a message and its marker): the
 * survivor array stays as small as what is live, instead of growing to every record of
 * the file (page faults, copies, a large sort-and-filter afterwards). The scan runs from
 * the newest survivor back and stops once the whole run is found, so a stream pays about
 * two comparisons per message; a run it does not find within the window (a receiver far
 * behind, many busy mailboxes) costs at most DROP_WINDOW comparisons and is left to
 * split_taken(), which still applies every marker: this is only a shortcut, never the
 * rule (run_covers() is the rule, for both).
 */
#define DROP_WINDOW 1024

static void drop_covered(struct rebuild *rb, const struct ident *g)
{
    size_t n = rb->nmsg, lo = n > DROP_WINDOW ? n - DROP_WINDOW : 0;
    uint64_t want = g->last - g->seq < DROP_WINDOW ? g->last - g->seq + 1 : DROP_WINDOW;
    uint64_t found = 0;
    size_t first = n; /* the oldest survivor found */
    for (size_t i = n; i-- > lo && found < want;) {
        const struct sb_jrec *r = &rb->msg[i].r;
        if (run_covers(g, ident_key(r), r->seq)) {
            found++;
            first = i;
        }
    }
    if (found == 0)
        return;
    size_t w = first; /* close the gaps, keeping file order */
    for (size_t i = first; i < n; i++) {
        const struct sb_jrec *r = &rb->msg[i].r;
        if (found > 0 && run_covers(g, ident_key(r), r->seq)) {
            found--;
            continue;
        }
        rb->msg[w++] = rb->msg[i];
    }
    rb->nmsg = w;
}

static void collect(const struct sb_jrec *r, const uint8_t *payload, size_t off, void *arg)
{
    (void)payload;
    struct rebuild *rb = arg;
    size_t padded = (r->size + 7u) & ~(size_t)7u;
    if (rb->pend_left > 0) {
        if (r->type == SB_JREC_MSG && off == rb->pend_next && r->src == rb->pend_src &&
            r->src_gen == rb->pend_gen && r->seq == rb->pend_seq + 1 &&
            r->rest == rb->pend_left - 1) {
            if (!grow((void **)&rb->msg, &rb->capmsg, rb->nmsg, sizeof(*rb->msg)))
                return;
            rb->msg[rb->nmsg++] = (struct survivor){.off = off, .r = *r};
            rb->pend_left--;
            rb->pend_seq++;
            rb->pend_next = off + padded;
            return;
        }
        rb->nmsg = rb->pend_first; /* a batch cut short: none of it was accepted */
        rb->pend_left = 0;
    }
    if (r->type == SB_JREC_MSG) {
        if (!grow((void **)&rb->msg, &rb->capmsg, rb->nmsg, sizeof(*rb->msg)))
            return;
        rb->msg[rb->nmsg++] = (struct survivor){.off = off, .r = *r};
        if (r->rest > 0) {
            rb->pend_first = rb->nmsg - 1;
            rb->pend_left = r->rest;
            rb->pend_off = off;
            rb->pend_next = off + padded;
            rb->pend_src = r->src;
            rb->pend_gen = r->src_gen;
            rb->pend_seq = r->seq;
        }
    } else {
        if (!grow((void **)&rb->gone, &rb->capgone, rb->ngone, sizeof(*rb->gone)))
            return;
        /* A TAKEN run covers seq..seq + rest (a hostile rest is cut at the top). */
        uint64_t last = r->seq + r->rest < r->seq ? UINT64_MAX : r->seq + r->rest;
        rb->gone[rb->ngone++] = (struct ident){ident_key(r), r->seq, last};
        if (rb->drop_taken)
            drop_covered(rb, &rb->gone[rb->ngone - 1]);
    }
}

/* After the parse: a batch still unfinished at the end was cut short (or is being written:
 * compact() copies it later from its start). */
static void collect_end(struct rebuild *rb)
{
    if (rb->pend_left > 0) {
        rb->nmsg = rb->pend_first;
        rb->pend_left = 0;
        rb->cut = true;
        rb->cut_off = rb->pend_off;
    }
}

/* Generation map: (src, old generation) -> new generation, 1.. per src in order of first
 * appearance. An open-addressing table sized for every survivor. */
struct genmap {
    uint64_t *key; /* src << 32 | old gen, +1 so that 0 is empty */
    uint32_t *val;
    size_t cap;
};

static uint32_t genmap_get(struct genmap *g, uint64_t key, uint32_t *next_of_src)
{
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (g->cap - 1);
    while (g->key[i] != 0) {
        if (g->key[i] == key + 1)
            return g->val[i];
        i = (i + 1) & (g->cap - 1);
    }
    g->key[i] = key + 1;
    g->val[i] = ++*next_of_src;
    return g->val[i];
}

/* Write the record of survivor s (restamped) into the ring of its destination at *p. */
static void ring_put(shmbus_bus *b, const struct survivor *s, const uint8_t *payload, uint64_t p,
                     uint32_t units, uint32_t dst_gen)
{
    struct sb_mbox *mb = sb__mbox(b, s->r.dst);
    struct sb_rec *rec = sb__unit(b, mb, p);
    uint32_t len = s->r.size - (uint32_t)sizeof(struct sb_jrec);
    rec->seq = s->r.seq;
    rec->corr = s->r.corr;
    rec->sent_ns = sb__now_ns();
    rec->len = len;
    rec->src = s->r.src;
    /* The sender that waited for an ACK is gone: the flag would only confuse. */
    rec->src_gen = (s->new_gen & 0xffffffu) | ((uint32_t)(s->r.flags & ~SHMBUS_MSG_ACK) << 24);
    rec->dst_gen = dst_gen;
    memcpy((uint8_t *)rec + SB_REC_HDR, payload, len);
    /* Relaxed: nobody is attached yet; the release store of READY in init_segment()
     * publishes the whole segment. */
    atomic_store_explicit(&rec->hw, SB_HW(SB_HW_READY, units, s->r.prio & 7u, 0),
                          memory_order_relaxed);
}

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t k = write(fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return errno == EFBIG || errno == EDQUOT ? -ENOSPC : -errno;
        if (k == 0)
            return -ENOSPC;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

/* One record, restamped, appended to buffer-less fd. */
static int put_rec(int fd, const struct sb_jrec *r0, const uint8_t *payload)
{
    struct sb_jrec r = *r0;
    uint32_t len = r.size - (uint32_t)sizeof(r);
    uint32_t crc = sb__crc32c(0, (const uint8_t *)&r + 12, sizeof(r) - 12);
    r.crc = sb__crc32c(crc, payload, len);
    static const uint8_t zero[8];
    int e = write_all(fd, &r, sizeof(r));
    if (e == 0 && len != 0)
        e = write_all(fd, payload, len);
    if (e == 0 && (r.size & 7u) != 0)
        e = write_all(fd, zero, 8u - (r.size & 7u));
    return e;
}

/* Find the newest journal of `bus` in dir; remove superseded and temporary files. */
static int newest_epoch(int dirfd, const char *bus, uint64_t *epoch)
{
    DIR *d = fdopendir(dup(dirfd));
    if (d == NULL)
        return -errno;
    size_t bl = strlen(bus);
    uint64_t best = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (strncmp(n, bus, bl) != 0 || n[bl] != '.')
            continue;
        const char *num = n + bl + 1;
        if (strlen(num) >= 16 + 4 && strncmp(num + 16, ".tmp", 4) == 0) {
            unlinkat(dirfd, n, 0); /* an interrupted rebuild's or compaction's unfinished file */
            continue;
        }
        if (strlen(num) != 16 + 4 || strcmp(num + 16, ".jnl") != 0)
            continue;
        char hex[17];
        memcpy(hex, num, 16);
        hex[16] = '\0';
        char *end;
        uint64_t e = strtoull(hex, &end, 16);
        if (*end != '\0')
            continue;
        if (e > best)
            best = e;
    }
    closedir(d);
    *epoch = best;
    return 0;
}

static void remove_older(int dirfd, const char *bus, uint64_t keep)
{
    char file[128];
    for (uint64_t e = keep; e-- > 0 && keep - e <= 64;) {
        snprintf(file, sizeof(file), "%s.%016" PRIx64 ".jnl", bus, e);
        unlinkat(dirfd, file, 0);
    }
}

/* Split rb->msg: the messages not taken stay (in file order); the taken ones that
 * retention keeps (the newest retain_bytes of them, and those written in the last
 * retain_ns) go to rb->ret (in file order); the other taken ones are dropped. */
static int split_taken(struct rebuild *rb, uint64_t retain_bytes, uint64_t retain_ns)
{
    gone_sort(rb->gone, &rb->ngone);
    bool *taken = calloc(rb->nmsg + 1, sizeof(*taken));
    bool *kept = calloc(rb->nmsg + 1, sizeof(*kept));
    size_t nret = 0;
    if (taken == NULL || kept == NULL) {
        free(taken);
        free(kept);
        return -ENOMEM;
    }
    uint64_t now = sb__realtime_ns(), bytes = 0;
    for (size_t i = rb->nmsg; i-- > 0;) {
        const struct sb_jrec *r = &rb->msg[i].r;
        taken[i] = gone_has(rb->gone, rb->ngone, ident_key(r), r->seq);
        if (!taken[i])
            continue;
        bool by_time = retain_ns != 0 && r->time_ns + retain_ns >= now;
        bool by_size = retain_bytes != 0 && bytes + r->size <= retain_bytes;
        if (by_size)
            bytes += r->size;
        kept[i] = by_time || by_size;
        nret += kept[i];
    }
    free(rb->ret);
    rb->ret = malloc((nret + 1) * sizeof(*rb->ret));
    if (rb->ret == NULL) {
        free(taken);
        free(kept);
        return -ENOMEM;
    }
    size_t keep = 0;
    rb->nret = 0;
    for (size_t i = 0; i < rb->nmsg; i++) {
        if (kept[i])
            rb->ret[rb->nret++] = rb->msg[i];
        else if (!taken[i])
            rb->msg[keep++] = rb->msg[i];
    }
    rb->nmsg = keep;
    free(taken);
    free(kept);
    return 0;
}

/* A retained message and its marker, as they go into a new file: restamped with sender
 * generation `gen` (0 in a rebuild: no client ever has it, and all of them are taken). */
static int put_retained(int fd, const struct survivor *s, const uint8_t *payload, uint32_t gen)
{
    struct sb_jrec r = s->r;
    r.src_gen = gen;
    r.rest = 0;
    int e = put_rec(fd, &r, payload);
    if (e != 0)
        return e;
    struct sb_jrec m = r;
    m.type = SB_JREC_TAKEN;
    m.size = sizeof(m);
    m.corr = 0;
    return put_rec(fd, &m, NULL);
}

/* Make <bus>.<epoch>.jnl from the survivors in rb (or none), atomically: a temporary file,
 * flushed, renamed, the directory flushed. */
static int write_new(int dirfd, const char *bus, uint64_t jid, uint64_t epoch,
                     const struct rebuild *rb, const uint8_t *old)
{
    char tmp[128], fin[128];
    snprintf(tmp, sizeof(tmp), "%s.%016" PRIx64 ".tmp", bus, epoch);
    snprintf(fin, sizeof(fin), "%s.%016" PRIx64 ".jnl", bus, epoch);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    struct sb_jfile_hdr h;
    fill_fhdr(&h, jid, epoch, bus);
    int e = write_all(fd, &h, sizeof(h));
    for (size_t i = 0; e == 0 && rb != NULL && i < rb->nret; i++)
        e = put_retained(fd, &rb->ret[i], old + rb->ret[i].off + sizeof(struct sb_jrec), 0);
    for (size_t i = 0; e == 0 && rb != NULL && i < rb->nmsg; i++) {
        const struct survivor *s = &rb->msg[i];
        struct sb_jrec r = s->r;
        r.src_gen = s->new_gen;
        r.rest = 0; /* checked whole: each record stands alone from now on */
        e = put_rec(fd, &r, old + s->off + sizeof(struct sb_jrec));
    }
    if (e == 0 && fdatasync(fd) != 0)
        e = -errno;
    close(fd);
    if (e == 0 && renameat(dirfd, tmp, dirfd, fin) != 0)
        e = -errno;
    if (e == 0 && fsync(dirfd) != 0)
        e = -errno;
    if (e != 0)
        unlinkat(dirfd, tmp, 0);
    return e;
}

/* Keep the survivors of rb that have no marker, renumber their generations, place them in
 * the rings (deferring what does not fit, and everything after it for that destination). */
static int place(shmbus_bus *b, struct rebuild *rb, const uint8_t *old, struct sb_jctl *jc,
                 const struct shmbus_durable *dur)
{
    int err = split_taken(rb, dur->retain_bytes, dur->retain_ns);
    if (err != 0)
        return err;
    size_t keep = rb->nmsg;

    uint32_t maxc = b->lay.max_clients;
    uint32_t *top = calloc((size_t)SHMBUS_MAX_CLIENTS + 1, sizeof(*top)); /* gens per src */
    uint64_t *pos = calloc((size_t)maxc + 1, sizeof(*pos));               /* ring fill */
    uint32_t *last = calloc((size_t)maxc + 1, sizeof(*last));
    uint64_t *count = calloc((size_t)maxc + 1, sizeof(*count));
    bool *full = calloc((size_t)maxc + 1, sizeof(*full));
    int32_t *hi = calloc((size_t)maxc + 1, sizeof(*hi)); /* priority > 0 placed */
    struct genmap g = {0};
    g.cap = 64;
    while (g.cap < keep * 2 + 2)
        g.cap *= 2;
    g.key = calloc(g.cap, sizeof(*g.key));
    g.val = calloc(g.cap, sizeof(*g.val));
    if (!top || !pos || !last || !count || !full || !hi || !g.key || !g.val) {
        err = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < keep; i++) {
        struct survivor *s = &rb->msg[i];
        uint32_t src = s->r.src;
        if (src < 1 || src > SHMBUS_MAX_CLIENTS)
            src = 0; /* never placed; kept in the journal as it is */
        s->new_gen = genmap_get(&g, (uint64_t)src << 32 | (s->r.src_gen & 0xffffffu), &top[src]);
        if (s->new_gen > 0xfffff0u) {
            err = -EOVERFLOW;
            goto out;
        }
    }
    /* Every id's registry generation starts above the generations its messages carry; the
     * kept generation of a destination with messages is that same value. */
    for (size_t i = 0; i < keep; i++) {
        struct survivor *s = &rb->msg[i];
        uint32_t dst = s->r.dst, src = s->r.src;
        uint32_t len = s->r.size - (uint32_t)sizeof(struct sb_jrec);
        if (dst < 1 || dst > maxc || src < 1 || src > maxc || len > b->lay.msg_size || full[dst]) {
            s->deferred = true;
            continue;
        }
        uint32_t units = sb__rec_units(len);
        if (pos[dst] + units > b->lay.ring_units) {
            full[dst] = true; /* later messages to dst wait too: their order is kept */
            s->deferred = true;
            continue;
        }
        uint32_t k = top[dst] ? top[dst] : 1;
        ring_put(b, s, old + s->off + sizeof(struct sb_jrec), pos[dst], units, k);
        pos[dst] += units;
        last[dst] = units;
        count[dst]++;
        hi[dst] += (s->r.prio & 7u) != 0;
        jc->rebuilt++;
    }
    for (size_t i = 0; i < keep; i++)
        jc->deferred += rb->msg[i].deferred;
    for (uint32_t id = 1; id <= maxc; id++) {
        struct sb_entry *e = sb__entry(b, id);
        uint32_t k = top[id] ? top[id] : (count[id] ? 1 : 0);
        if (k == 0)
            continue;
        if (count[id] != 0) {
            struct sb_mbox *mb = sb__mbox(b, id);
            /* Relaxed, all of them: published by the release store of READY. */
            atomic_store_explicit(&mb->tail, SB_TAIL(pos[id], last[id]), memory_order_relaxed);
            atomic_store_explicit(&mb->claimed, count[id], memory_order_relaxed);
            atomic_store_explicit(&e->kept_gen, k, memory_order_relaxed);
        }
        atomic_store_explicit(&sb__mbox(b, id)->pending_hi, hi[id], memory_order_relaxed);
        atomic_store_explicit(&e->state, SB_ST(SB_FREE, k, 0), memory_order_relaxed);
    }
out:
    free(top);
    free(pos);
    free(last);
    free(count);
    free(full);
    free(hi);
    free(g.key);
    free(g.val);
    return err;
}

/*
 * Open the journal directory (creating it 0700 if asked). It must be a directory of the
 * caller's own that nobody else can write to: whoever can create a file there can plant a
 * journal of this bus's name that the next rebuild, or a replay, would deliver (-EACCES).
 */
static int open_jdir(const char *dir, bool create)
{
    if (create && mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int r = fstat(fd, &st) != 0 ? -errno : 0;
    if (r == 0 && (st.st_uid != geteuid() || (st.st_mode & 0022) != 0))
        r = -EACCES;
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

static int open_file(const char *bus, const char *dir, uint64_t epoch, uint64_t jid)
{
    int dfd = open_jdir(dir, false);
    if (dfd < 0)
        return dfd;
    char file[128];
    snprintf(file, sizeof(file), "%s.%016" PRIx64 ".jnl", bus, epoch);
    int fd = openat(dfd, file, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    close(dfd);
    if (fd < 0)
        return -errno;
    uint8_t buf[sizeof(struct sb_jfile_hdr)];
    struct sb_jfile_hdr h;
    int r = pread(fd, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf) ? 0 : -EPROTO;
    if (r == 0)
        r = sb__jfile_check(buf, sizeof(buf), bus, &h);
    if (r == 0 && (h.jid != jid || h.epoch != epoch))
        r = -EPROTO;
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

/* b->j for the journal the segment describes; dir, sync and compact_bytes are the caller's
 * checked copies. */
static int make_handle(shmbus_bus *b, const char *dir, uint32_t sync, uint64_t compact_bytes)
{
    struct sb_jctl *jc = &b->hdr->journal;
    struct sb_journal *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    snprintf(j->dir, sizeof(j->dir), "%s", dir);
    int fd = -ENOENT;
    for (int tries = 0; tries < 1000 && fd == -ENOENT; tries++) {
        /* Acquire pairs with the release store of epoch in compact(); a compaction may
         * remove that file before we open it: then there is a newer one. */
        j->epoch = atomic_load_explicit(&jc->epoch, memory_order_acquire);
        fd = open_file(b->name, j->dir, j->epoch, jc->jid);
    }
    if (fd < 0) {
        free(j);
        /* Still no file of the epoch the segment names: the word is garbage, or the file
         * was removed behind the bus's back. Either way the bus exists: not -ENOENT. */
        return fd == -ENOENT ? -EBADMSG : fd;
    }
    pthread_mutex_init(&j->mu, NULL);
    j->fd = fd;
    j->pid = self_pid();
    j->sync = sync;
    j->compact_bytes = compact_bytes;
    /* Any value is safe: retention only decides what compaction keeps. */
    j->retain_bytes = jc->retain_bytes;
    j->retain_ns = jc->retain_ns;
    j->ctl = jc;
    b->j = j;
    return 0;
}

int sb__journal_create(shmbus_bus *b, const struct shmbus_durable *dur)
{
    if (dur == NULL)
        return 0;
    struct sb_jctl *jc = &b->hdr->journal;
    int dirfd = open_jdir(dur->dir, true);
    if (dirfd < 0)
        return dirfd;
    uint64_t epoch = 0, jid = 0;
    uint8_t *old = NULL;
    size_t oldlen = 0;
    struct rebuild rb = {0};
    int r = newest_epoch(dirfd, b->name, &epoch);
    if (r == 0 && epoch != 0) {
        char file[128];
        snprintf(file, sizeof(file), "%s.%016" PRIx64 ".jnl", b->name, epoch);
        r = sb__journal_read(dirfd, file, &old, &oldlen);
        struct sb_jfile_hdr h;
        if (r == 0)
            r = sb__jfile_check(old, oldlen, b->name, &h);
        if (r == 0 && h.epoch != epoch)
            r = -EPROTO; /* renamed from another file */
        if (r == 0) {
            jid = h.jid;
            struct sb_jscan st;
            rb.drop_taken = dur->retain_bytes == 0 && dur->retain_ns == 0;
            sb__journal_parse(old, oldlen, collect, &rb, &st);
            collect_end(&rb);
            jc->damaged = st.damaged;
            jc->torn = st.torn;
            r = place(b, &rb, old, jc, dur);
        }
    }
    if (r == 0 && jid == 0) {
        if (getrandom(&jid, sizeof(jid), GRND_NONBLOCK) != (ssize_t)sizeof(jid))
            jid = sb__realtime_ns() ^ ((uint64_t)getpid() << 40);
        jid |= 1;
    }
    if (r == 0)
        r = write_new(dirfd, b->name, jid, epoch + 1, &rb, old);
    if (r == 0) {
        remove_older(dirfd, b->name, epoch + 1);
        uint64_t cb = dur->compact_bytes ? dur->compact_bytes : SHMBUS_COMPACT_DEFAULT;
        /* Plain and relaxed stores: nobody is attached yet; the release store of READY in
         * init_segment() publishes them. */
        jc->magic = SB_JMAGIC;
        jc->jid = jid;
        atomic_store_explicit(&jc->epoch, epoch + 1, memory_order_relaxed);
        jc->sync = dur->sync;
        jc->compact_bytes = cb;
        jc->retain_bytes = dur->retain_bytes;
        jc->retain_ns = dur->retain_ns;
        snprintf(jc->dir, sizeof(jc->dir), "%s", dur->dir);
        uint64_t n = sizeof(struct sb_jfile_hdr); /* the new file's size: its records */
        for (size_t i = 0; i < rb.nmsg; i++)
            n += (rb.msg[i].r.size + 7u) & ~7u;
        for (size_t i = 0; i < rb.nret; i++)
            n += ((rb.ret[i].r.size + 7u) & ~7u) + sizeof(struct sb_jrec);
        atomic_store_explicit(&jc->bytes, n, memory_order_relaxed);
        r = make_handle(b, dur->dir, dur->sync, cb);
    }
    free(old);
    free(rb.msg);
    free(rb.ret);
    free(rb.gone);
    close(dirfd);
    return r;
}

int sb__journal_attach(shmbus_bus *b)
{
    const struct sb_jctl *jc = &b->hdr->journal;
    uint64_t magic = jc->magic;
    if (magic == 0)
        return 0;
    if (magic != SB_JMAGIC)
        return -EBADMSG;
    char dir[sizeof(jc->dir)];
    memcpy(dir, jc->dir, sizeof(dir));
    uint32_t sync = jc->sync;
    uint64_t cb = jc->compact_bytes;
    if (memchr(dir, '\0', sizeof(dir)) == NULL || dir[0] != '/' || sync > SHMBUS_SYNC_ALWAYS ||
        cb < 4096)
        return -EBADMSG;
    if (b->rdonly)
        return 0;
    return make_handle(b, dir, sync, cb);
}

/* ---- the file in use: the shared flock, the epoch, compaction ------------------------- */

/*
 * How long a journal write waits for the file's lock beyond its call's own deadline (at
 * least this long, also for a call that does not wait, such as a non-blocking send or
 * shmbus_consume()). Holders are brief: a write holds the shared lock for one writev, a
 * compaction the exclusive one while it copies what came after its scan and renames. Only
 * a process stopped (SIGSTOP, a debugger) while it holds the lock holds it longer, and that
 * must not hold up everyone else's calls past their timeouts.
 */
#define JLOCK_GRACE_NS (1000 * 1000000ull)

/* One wait between two tries of a lock that was busy, by the rule above: deadline is the
 * call's (0: none of its own); the clock is read only once a lock was found busy. 0 to try
 * again, -ETIMEDOUT once the wait is over. */
struct lock_wait {
    uint64_t until, pause;
};

static int lock_wait(struct lock_wait *w, uint64_t deadline)
{
    uint64_t now = sb__now_ns();
    if (w->until == 0) {
        w->until = deadline > now + JLOCK_GRACE_NS ? deadline : now + JLOCK_GRACE_NS;
        w->pause = 20000;
    }
    if (now >= w->until)
        return -ETIMEDOUT;
    uint64_t d = w->until - now < w->pause ? w->until - now : w->pause;
    struct timespec ts = {0, (long)d};
    nanosleep(&ts, NULL);
    if (w->pause < 1000000)
        w->pause *= 2;
    return 0;
}

/* flock(fd, how), waiting by lock_wait() (deadline UINT64_MAX: as long as it takes).
 * 0, -ETIMEDOUT, or -errno. */
static int lock_file(int fd, int how, uint64_t deadline)
{
    if (deadline == UINT64_MAX) {
        while (flock(fd, how) != 0)
            if (errno != EINTR)
                return -errno;
        return 0;
    }
    struct lock_wait w = {0, 0};
    while (flock(fd, how | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR)
            return -errno;
        if (lock_wait(&w, deadline) != 0)
            return -ETIMEDOUT;
    }
    return 0;
}

/* Our process's journal mutex, the same way: another thread of ours may be the one
 * waiting for a stopped process's lock. */
static int lock_mu(struct sb_journal *j, uint64_t deadline)
{
    if (deadline == UINT64_MAX) {
        pthread_mutex_lock(&j->mu);
        return 0;
    }
    struct lock_wait w = {0, 0};
    while (pthread_mutex_trylock(&j->mu) != 0)
        if (lock_wait(&w, deadline) != 0)
            return -ETIMEDOUT;
    return 0;
}

/* Reopen j on the file of epoch e (after a compaction, or in a forked child). */
static int reopen(shmbus_bus *b, struct sb_journal *j, uint64_t e)
{
    int fd = open_file(b->name, j->dir, e, j->ctl->jid);
    if (fd < 0)
        return fd;
    close(j->fd);
    j->fd = fd;
    j->epoch = e;
    j->pid = self_pid();
    return 0;
}

/* A compactor died after renaming its new file in and before finishing (compact_target
 * set, seen under our shared lock, so its exclusive lock is gone with it): under the
 * exclusive lock, make the old file the newest again, or finish publishing. */
static int repair(shmbus_bus *b, struct sb_journal *j, uint64_t deadline)
{
    struct sb_jctl *jc = j->ctl;
    int r = lock_file(j->fd, LOCK_EX, deadline);
    if (r < 0)
        return r;
    /* Acquire pairs with the release stores of compact_target and epoch in compact(). */
    uint64_t t = atomic_load_explicit(&jc->compact_target, memory_order_acquire);
    uint64_t e = atomic_load_explicit(&jc->epoch, memory_order_acquire);
    if (e != j->epoch) { /* someone repaired or compacted meanwhile: enter() looks again */
        flock(j->fd, LOCK_UN);
        return 0;
    }
    if (t != 0 && t == e + 1) {
        char path[SHMBUS_JOURNAL_DIR_MAX + 128];
        snprintf(path, sizeof(path), "%s/%s.%016" PRIx64 ".jnl", j->dir, b->name, t);
        unlink(path);
    }
    /* Release pairs with the acquire loads in enter() and repair(). */
    atomic_store_explicit(&jc->compact_target, 0, memory_order_release);
    atomic_store_explicit(&jc->compact_owner, 0, memory_order_release);
    flock(j->fd, LOCK_UN);
    return 0;
}

/* Hold the current file's flock shared, reopening first if it was compacted away or we
 * are a forked child. With j->mu held; waits for the lock as lock_file() says. */
static int enter(shmbus_bus *b, struct sb_journal *j, uint64_t deadline)
{
    struct sb_jctl *jc = j->ctl;
    for (int tries = 0; tries < 1000; tries++) {
        int r;
        if (j->pid != self_pid()) {
            /* A forked child shares our open file, and with it our flock: its own. */
            r = reopen(b, j, atomic_load_explicit(&jc->epoch, memory_order_acquire));
            if (r == -ENOENT)
                continue; /* compacted meanwhile: look again */
            if (r < 0)
                return r;
        }
        r = lock_file(j->fd, LOCK_SH, deadline);
        if (r < 0)
            return r;
        /* First: is fd the file in use? Only the compactor of that file changes the epoch,
         * under its exclusive lock, which our shared one excludes. Acquire pairs with the
         * release store of epoch in compact(). */
        uint64_t e = atomic_load_explicit(&jc->epoch, memory_order_acquire);
        if (e != j->epoch) {
            flock(j->fd, LOCK_UN);
            r = reopen(b, j, e);
            if (r < 0 && r != -ENOENT) /* ENOENT: compacted again meanwhile; look again */
                return r;
            continue;
        }
        /* Then: a compaction target seen under our shared lock on the file in use was left
         * by a compactor that no longer holds its exclusive lock: a dead one. Acquire pairs
         * with the release stores in compact() and repair(). */
        if (atomic_load_explicit(&jc->compact_target, memory_order_acquire) != 0) {
            flock(j->fd, LOCK_UN);
            r = repair(b, j, deadline);
            if (r < 0)
                return r;
            continue;
        }
        return 0;
    }
    return -EBADMSG; /* the segment's words keep changing under us: garbage */
}

static bool owner_dead(uint64_t pid)
{
    return pid > 0 && pid < INT32_MAX && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Take an owner word (sync_owner, compact_owner): free, or its owner is dead. */
static bool own(_Atomic uint64_t *w)
{
    uint64_t cur = 0;
    uint64_t me = (uint64_t)self_pid();
    /* The owner word only excludes: acq_rel pairs with the release store in disown(). */
    if (atomic_compare_exchange_strong_explicit(w, &cur, me, memory_order_acq_rel,
                                                memory_order_relaxed))
        return true;
    if (owner_dead(cur))
        return atomic_compare_exchange_strong_explicit(w, &cur, me, memory_order_acq_rel,
                                                       memory_order_relaxed);
    return false;
}

static void disown(_Atomic uint64_t *w)
{
    /* Release pairs with the acquire CAS in own(). */
    atomic_store_explicit(w, 0, memory_order_release);
}

/*
 * The compactor reads the file in windows of SNAP_WIN bytes into one buffer, not the whole
 * file into a buffer as large as it (64 MiB by default): the copy lands in memory that is
 * already mapped and in the cache, where the CRC checks read it, instead of in fresh pages
 * made one page fault at a time (the faults cost as much as the copy, more in a virtual
 * machine). Its pages are made at once (MAP_POPULATE). Not a map of the file itself: a
 * file truncated under a map raises SIGBUS, a pread() just returns less.
 *
 * A window holds at least two records of the largest size a record can have, so a record
 * that starts in its first half is whole in it: the next window starts at the end of the
 * last good record (damage after it is looked at again with the bytes that follow), or,
 * when a whole window held no good record, SNAP_REC bytes before its end. The records
 * found, their order, and the damage skipped are those of one parse of the whole file.
 * Survivors are named by file offset; their bytes are read back for the new file
 * (snap_rec()), and must be what the scan saw.
 */
#define SNAP_REC (sizeof(struct sb_jrec) + (size_t)SHMBUS_MAX_MSG_SIZE + 8u)
#define SNAP_WIN (2u * SNAP_REC)
#define SNAP_HL  sizeof(struct sb_jfile_hdr) /* room before the window: the parse skips it */

struct snap {
    int fd;
    uint8_t *buf; /* SNAP_HL bytes, then the window */
    size_t base;  /* file offset of the window's first byte */
    size_t len;   /* bytes in the window */
};

static int snap_open(struct snap *sn, int fd)
{
    void *p = mmap(NULL, SNAP_HL + SNAP_WIN, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    *sn = (struct snap){.fd = fd, .buf = p};
    return 0;
}

static void snap_close(struct snap *sn)
{
    if (sn->buf != NULL)
        munmap(sn->buf, SNAP_HL + SNAP_WIN);
    sn->buf = NULL;
}

/* Window = the n <= SNAP_WIN bytes of the file at off. */
static int snap_read(struct snap *sn, size_t off, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(sn->fd, sn->buf + SNAP_HL + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -EIO; /* the file is shorter than it was: not ours to compact */
        got += (size_t)k;
    }
    sn->base = off;
    sn->len = n;
    return 0;
}

struct live {
    struct rebuild *rb;
    size_t base; /* file offset = offset in the parsed buffer + base */
};

static void keep_live(const struct sb_jrec *r, const uint8_t *payload, size_t off, void *arg)
{
    const struct live *l = arg;
    collect(r, payload, off + l->base, l->rb);
}

/* Collect the records of the file's bytes [SNAP_HL, x) into rb; *good_end: the end of the
 * last good record. */
static int snap_scan(struct snap *sn, size_t x, struct rebuild *rb, size_t *good_end)
{
    size_t pos = SNAP_HL;
    *good_end = pos;
    while (pos < x) {
        size_t n = x - pos < SNAP_WIN ? x - pos : SNAP_WIN;
        int e = snap_read(sn, pos, n);
        if (e < 0)
            return e;
        struct live l = {rb, pos - SNAP_HL};
        struct sb_jscan sc;
        sb__journal_parse(sn->buf, SNAP_HL + n, keep_live, &l, &sc);
        size_t used = sc.good_end - SNAP_HL;
        if (used > 0)
            *good_end = pos + used;
        if (pos + n == x)
            break;
        pos += used > 0 ? used : n - SNAP_REC; /* no record starts before: it would be whole */
    }
    return 0;
}

/* The payload of survivor sv, read back into the window: NULL if its record is not what the
 * scan saw (a file changed under us: the compaction fails, nothing is lost). */
static const uint8_t *snap_rec(struct snap *sn, size_t x, const struct survivor *sv)
{
    size_t off = sv->off, size = sv->r.size;
    if (off < sn->base || off - sn->base > sn->len || size > sn->len - (off - sn->base)) {
        if (off > x || size > x - off)
            return NULL;
        if (snap_read(sn, off, x - off < SNAP_WIN ? x - off : SNAP_WIN) < 0)
            return NULL;
    }
    const uint8_t *w = sn->buf + SNAP_HL;
    struct sb_jrec r;
    if (rec_ok(w, sn->len, off - sn->base, &r) == 0 || memcmp(&r, &sv->r, sizeof(r)) != 0)
        return NULL;
    return w + (off - sn->base) + sizeof(r);
}

/* Copy every good record of buf[start..len) to fd as it is. */
struct copier {
    int fd;
    int err;
    uint64_t bytes;
};
static void copy_rec(const struct sb_jrec *r, const uint8_t *payload, size_t off, void *arg)
{
    (void)off;
    struct copier *cp = arg;
    if (cp->err == 0)
        cp->err = put_rec(cp->fd, r, payload);
    cp->bytes += (r->size + 7u) & ~7u;
}

/*
 * Compact the file in use (design notes above). With j->mu held and no flock. Any failure
 * leaves the old file in use, whole; the next writer past the size tries again.
 */
#define COMPACT_RETRY_NS (1000 * 1000000ull) /* after a compaction that failed */

static void compact(shmbus_bus *b, struct sb_journal *j)
{
    struct sb_jctl *jc = j->ctl;
    if (!own(&jc->compact_owner))
        return;
    uint64_t e = j->epoch;
    char tmp[SHMBUS_JOURNAL_DIR_MAX + 160], fin[SHMBUS_JOURNAL_DIR_MAX + 128],
        old[SHMBUS_JOURNAL_DIR_MAX + 128];
    snprintf(tmp, sizeof(tmp), "%s/%s.%016" PRIx64 ".tmp.%d", j->dir, b->name, e + 1,
             (int)getpid());
    snprintf(fin, sizeof(fin), "%s/%s.%016" PRIx64 ".jnl", j->dir, b->name, e + 1);
    snprintf(old, sizeof(old), "%s/%s.%016" PRIx64 ".jnl", j->dir, b->name, e);
    struct rebuild rb = {0};
    struct snap sn = {.buf = NULL};
    uint8_t *tail = NULL;
    int tfd = -1, err = 0;
    bool locked = false;
    struct stat st;
    struct sb_jfile_hdr h;
    if (fstat(j->fd, &st) != 0 || st.st_size < (off_t)sizeof(h) ||
        pread(j->fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
        sb__jfile_check(&h, sizeof(h), b->name, NULL) != 0) {
        err = -EIO;
        goto out;
    }
    /* 1. Unlocked: what was not taken up to X, into the new file. */
    size_t x = (size_t)st.st_size, good_end;
    err = snap_open(&sn, j->fd);
    if (err != 0)
        goto out;
    rb.drop_taken = j->retain_bytes == 0 && j->retain_ns == 0;
    err = snap_scan(&sn, x, &rb, &good_end);
    if (err != 0)
        goto out;
    collect_end(&rb);
    /* A write may be in progress at the end: phase 2 copies from the last whole record, or
     * from the start of a batch not whole yet. */
    x = rb.cut && rb.cut_off < good_end ? rb.cut_off : good_end;
    err = split_taken(&rb, j->retain_bytes, j->retain_ns);
    if (err != 0)
        goto out;
    tfd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (tfd < 0) {
        err = -errno;
        goto out;
    }
    fill_fhdr(&h, jc->jid, e + 1, b->name);
    err = write_all(tfd, &h, sizeof(h));
    uint64_t bytes = sizeof(h);
    for (size_t i = 0; err == 0 && i < rb.nret; i++) { /* identities unchanged: a live bus */
        const uint8_t *payload = snap_rec(&sn, x, &rb.ret[i]);
        err = payload == NULL ? -EIO : put_retained(tfd, &rb.ret[i], payload, rb.ret[i].r.src_gen);
        bytes += ((rb.ret[i].r.size + 7u) & ~7u) + sizeof(struct sb_jrec);
    }
    for (size_t i = 0; err == 0 && i < rb.nmsg; i++) {
        const struct survivor *sv = &rb.msg[i];
        struct sb_jrec r = sv->r;
        r.rest = 0; /* checked whole: each record stands alone from now on */
        const uint8_t *payload = snap_rec(&sn, x, sv);
        err = payload == NULL ? -EIO : put_rec(tfd, &r, payload);
        bytes += (sv->r.size + 7u) & ~7u;
    }
    /* The bulk on disk before the exclusive phase, which then flushes only the tail. */
    if (err == 0 && fdatasync(tfd) != 0)
        err = errno == ENOSPC || errno == EDQUOT ? -ENOSPC : -errno;
    if (err != 0)
        goto out;
    /* 2. Exclusive: nobody is writing; copy what came after X, switch files. A writer
     * stopped inside its write holds us off: give up after the grace (lock_file()) and
     * let a later write try again. */
    err = lock_file(j->fd, LOCK_EX, 0);
    if (err != 0)
        goto out;
    locked = true;
    sb__tp(SB_TP_COMPACT_EXCL); /* test-only: holding the exclusive lock */
    /* Acquire pairs with the release stores in compact() and repair(). */
    if (atomic_load_explicit(&jc->epoch, memory_order_acquire) != e ||
        atomic_load_explicit(&jc->compact_target, memory_order_acquire) != 0) {
        err = -EAGAIN; /* someone else compacted meanwhile (a dead owner's successor) */
        goto out;
    }
    if (fstat(j->fd, &st) != 0) {
        err = -errno;
        goto out;
    }
    size_t end = (size_t)st.st_size, hl = sizeof(struct sb_jfile_hdr);
    if (end > x) {
        tail = malloc(hl + (end - x));
        if (tail == NULL || pread(j->fd, tail + hl, end - x, (off_t)x) != (ssize_t)(end - x)) {
            err = -EIO;
            goto out;
        }
        struct copier cp = {tfd, 0, 0};
        struct sb_jscan sc;
        sb__journal_parse(tail, hl + (end - x), copy_rec, &cp, &sc);
        err = cp.err;
        bytes += cp.bytes;
        if (err != 0)
            goto out;
    }
    if (fdatasync(tfd) != 0) {
        err = errno == ENOSPC || errno == EDQUOT ? -ENOSPC : -errno;
        goto out;
    }
    /* Release pairs with the acquire load in enter(): set before the rename, so that if we
     * die from here on, the next writer repairs before it writes to the old file. */
    atomic_store_explicit(&jc->compact_target, e + 1, memory_order_release);
    if (rename(tmp, fin) != 0) {
        err = -errno;
        atomic_store_explicit(&jc->compact_target, 0, memory_order_release);
        goto out;
    }
    int dfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    /* Everything written before our lock is in the new file, on disk. Acquire pairs with
     * the acq_rel fetch_add in take_ticket(). */
    uint64_t t = atomic_load_explicit(&jc->appended, memory_order_acquire);
    atomic_store_explicit(&jc->bytes, bytes, memory_order_relaxed);
    /* Release pairs with the acquire loads of epoch in enter() and make_handle(). */
    atomic_store_explicit(&jc->epoch, e + 1, memory_order_release);
    uint64_t sy = atomic_load_explicit(&jc->synced, memory_order_relaxed);
    /* Release pairs with the acquire load of synced in batch_sync(). */
    while (sy < t && !atomic_compare_exchange_weak_explicit(
                         &jc->synced, &sy, t, memory_order_release, memory_order_relaxed))
        ;
    /* Release pairs with the acquire loads in enter() and repair(). */
    atomic_store_explicit(&jc->compact_target, 0, memory_order_release);
    atomic_fetch_add_explicit(&jc->compactions, 1, memory_order_relaxed);
    flock(j->fd, LOCK_UN);
    locked = false;
    unlink(old);
    reopen(b, j, e + 1); /* on failure the next enter() tries again */
out:
    if (locked)
        flock(j->fd, LOCK_UN);
    if (tfd >= 0)
        close(tfd);
    if (err != 0) {
        unlink(tmp);
        /* Not at every write from now on: each try reads the whole file again. */
        j->compact_retry_ns = sb__now_ns() + COMPACT_RETRY_NS;
    }
    snap_close(&sn);
    free(tail);
    free(rb.msg);
    free(rb.ret);
    free(rb.gone);
    disown(&jc->compact_owner);
}

static int writev_all(int fd, struct iovec *iov, int n, size_t total)
{
    ssize_t k;
    do
        k = writev(fd, iov, n);
    while (k < 0 && errno == EINTR);
    if (k < 0)
        return errno == EFBIG || errno == EDQUOT ? -ENOSPC : -errno;
    return (size_t)k == total ? 0 : -ENOSPC; /* cut short: a torn fragment, skipped later */
}

static int write_pending(struct sb_journal *j, size_t *bytes);

/* Write one record or a batch's records: under our mutex and the file's shared flock, to
 * the file in use, after any CANCEL markers left pending by a full disk (if those still
 * cannot be written, neither is this: nothing is accepted while the disk is full). Then
 * compact if the file grew past its limit. */
static int jwrite(shmbus_bus *b, struct iovec *iov, int n, size_t total, uint64_t deadline)
{
    struct sb_journal *j = b->j;
    struct sb_jctl *jc = j->ctl;
    int r = lock_mu(j, deadline);
    if (r < 0)
        return deadline == 0 ? -EAGAIN : r;
    size_t extra = 0;
    r = enter(b, j, deadline);
    if (r == 0) {
        sb__tp(SB_TP_JOURNAL_WRITE); /* test-only: holding the shared lock */
        if (j->npend != 0)
            r = write_pending(j, &extra);
        if (r == 0)
            r = writev_all(j->fd, iov, n, total);
        flock(j->fd, LOCK_UN);
    }
    total += extra;
    if (r == 0 &&
        atomic_fetch_add_explicit(&jc->bytes, total, memory_order_relaxed) + total >
            j->compact_bytes &&
        (j->compact_retry_ns == 0 || sb__now_ns() >= j->compact_retry_ns))
        compact(b, j);
    pthread_mutex_unlock(&j->mu);
    /* The lock still held by a stopped process: -ETIMEDOUT for a call that had a deadline
     * of its own, -EAGAIN ("not now") for one that does not wait. */
    return r == -ETIMEDOUT && deadline == 0 ? -EAGAIN : r;
}

/* ---- flushing --------------------------------------------------------------------------- */

static int flush(shmbus_bus *b)
{
    struct sb_journal *j = b->j;
    struct sb_jctl *jc = j->ctl;
    /* The mutex without a bound: it is held by our own threads, each of which waits for
     * the file's lock only as long as its call allows. */
    pthread_mutex_lock(&j->mu);
    /* Under the shared flock, on the file in use: a compaction cannot switch files between
     * our load of appended and the fdatasync() (what it moved, it flushed itself). */
    int r = enter(b, j, 0);
    if (r == -ETIMEDOUT) {
        /* A process stopped holding the lock (a compactor): flush our own records anyway.
         * They are in the file fd is open on (written there under the shared lock), and a
         * compaction that copies them flushes its new file before it publishes it. Others'
         * tickets are not ours to vouch for: synced stays. Failing instead would fail a
         * call whose record is written: a taken marker then names a message the receive
         * did not return. */
        r = fdatasync(j->fd) == 0 ? 0 : errno == ENOSPC || errno == EDQUOT ? -ENOSPC : -errno;
        pthread_mutex_unlock(&j->mu);
        return r;
    }
    if (r < 0) {
        pthread_mutex_unlock(&j->mu);
        return r;
    }
    /* Acquire pairs with the acq_rel fetch_add of appended in take_ticket(): every write
     * whose ticket we see returned before our fdatasync() starts. */
    uint64_t t = atomic_load_explicit(&jc->appended, memory_order_acquire);
    if (fdatasync(j->fd) != 0)
        r = errno == ENOSPC || errno == EDQUOT ? -ENOSPC : -errno;
    flock(j->fd, LOCK_UN);
    pthread_mutex_unlock(&j->mu);
    if (r < 0)
        return r;
    atomic_fetch_add_explicit(&jc->syncs, 1, memory_order_relaxed);
    atomic_store_explicit(&jc->last_sync_ns, sb__now_ns(), memory_order_relaxed);
    uint64_t s = atomic_load_explicit(&jc->synced, memory_order_relaxed);
    /* Release pairs with the acquire load of synced in batch_sync(). */
    while (s < t && !atomic_compare_exchange_weak_explicit(&jc->synced, &s, t, memory_order_release,
                                                           memory_order_relaxed))
        ;
    return 0;
}

#define SYNC_GIVE_UP_NS (100 * 1000000ull) /* 20 batch intervals */

/* Batch level: flush if the last flush is older than the batch interval and we can be the
 * flusher; with `wait`, return only once ticket t is on disk (flushing ourselves, after
 * the rest of the interval has let others join the batch). */
static int batch_sync(shmbus_bus *b, uint64_t t, bool wait)
{
    struct sb_jctl *jc = b->j->ctl;
    const uint64_t ival = (uint64_t)SHMBUS_SYNC_BATCH_MS * 1000000u;
    /* A flusher that has not raised synced by then is slow or stuck (stopped, or a pid
     * scribbled into sync_owner): flush ourselves. Flushes of one file overlap in the
     * kernel, so a second one costs at most its own time, never correctness. */
    uint64_t give_up = sb__now_ns() + SYNC_GIVE_UP_NS;
    for (;;) {
        /* Acquire pairs with the release CAS of synced in flush() and compact(). */
        if (atomic_load_explicit(&jc->synced, memory_order_acquire) >= t)
            return 0;
        uint64_t now = sb__now_ns();
        uint64_t last = atomic_load_explicit(&jc->last_sync_ns, memory_order_relaxed);
        bool due = now >= last + ival || last > now;
        if ((due || wait) && own(&jc->sync_owner)) {
            if (!due) {
                struct timespec ts = {0, (long)(last + ival - now)};
                nanosleep(&ts, NULL); /* the batch fills meanwhile */
            }
            int r = 0;
            if (atomic_load_explicit(&jc->synced, memory_order_acquire) < t)
                r = flush(b);
            disown(&jc->sync_owner);
            return r;
        }
        if (!wait)
            return 0;
        if (now > give_up)
            return flush(b); /* a stuck flusher: do it ourselves */
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

static uint64_t take_ticket(struct sb_journal *j)
{
    /* acq_rel: pairs with the acquire loads in flush() and compact(). */
    return atomic_fetch_add_explicit(&j->ctl->appended, 1, memory_order_acq_rel) + 1;
}

static int after_write(shmbus_bus *b, bool want_sync)
{
    struct sb_journal *j = b->j;
    if (j->sync == SHMBUS_SYNC_NONE)
        return 0;
    uint64_t t = take_ticket(j);
    if (j->sync == SHMBUS_SYNC_ALWAYS)
        return flush(b);
    return batch_sync(b, t, want_sync);
}

/* ---- writing ---------------------------------------------------------------------------- */

/* One record; time_ns is the write's (one clock read per write, not per record). */
static void fill_rec(struct sb_jrec *r, unsigned type, uint32_t src, uint32_t src_gen, uint32_t dst,
                     uint64_t seq, uint64_t corr, unsigned prio, unsigned mflags, const void *data,
                     size_t len, uint32_t rest, uint64_t time_ns)
{
    memset(r, 0, sizeof(*r));
    r->magic = SB_JREC_MAGIC;
    r->size = (uint32_t)(sizeof(*r) + len);
    r->type = (uint8_t)type;
    r->prio = (uint8_t)prio;
    r->flags = (uint8_t)mflags;
    r->src = src;
    r->src_gen = src_gen;
    r->dst = dst;
    r->seq = seq;
    r->corr = corr;
    r->time_ns = time_ns;
    r->rest = rest;
    uint32_t crc = sb__crc32c(0, (const uint8_t *)r + 12, sizeof(*r) - 12);
    r->crc = len ? sb__crc32c(crc, data, len) : crc;
}

#define JBATCH 256 /* records per writev: a whole send_batch claim (BATCH_MAX in mailbox.c) */

int sb__journal_msgs(shmbus_client *c, uint32_t dst, const struct shmbus_iov *msgs, size_t n,
                     unsigned prio, unsigned mflags, uint64_t seq0, uint64_t corr, unsigned flags,
                     uint64_t deadline)
{
    static const uint8_t zero[8];
    struct sb_jrec recs[JBATCH];
    struct iovec iov[JBATCH * 3];
    const uint64_t now = sb__realtime_ns();
    for (size_t done = 0; done < n;) {
        int ni = 0;
        size_t total = 0, k = 0;
        for (; k < JBATCH && done + k < n; k++) {
            const struct shmbus_iov *m = &msgs[done + k];
            size_t chunk = n - done < JBATCH ? n - done : JBATCH;
            fill_rec(&recs[k], SB_JREC_MSG, c->id, c->gen, dst, seq0 + done + k, corr, prio, mflags,
                     m->data, m->len, (uint32_t)(chunk - 1 - k), now);
            iov[ni++] = (struct iovec){&recs[k], sizeof(recs[k])};
            if (m->len)
                iov[ni++] = (struct iovec){(void *)m->data, m->len};
            size_t pad = (8u - (m->len & 7u)) & 7u;
            if (pad)
                iov[ni++] = (struct iovec){(void *)zero, pad};
            total += sizeof(recs[k]) + m->len + pad;
        }
        int r = jwrite(c->bus, iov, ni, total, deadline);
        if (r < 0) {
            if (done > 0) /* earlier parts are written: the send fails, so not sent */
                sb__journal_cancel(c, seq0, (uint32_t)done);
            return r;
        }
        done += k;
    }
    int r = after_write(c->bus, flags & SHMBUS_SEND_SYNC);
    if (r < 0) /* written, not flushed as asked (or not at all): the send fails */
        sb__journal_cancel(c, seq0, (uint32_t)n);
    return r;
}

/* Markers of type for n runs (n <= SB_TAKEN_RUNS), written with one writev. */
static int markers(shmbus_client *c, unsigned type, const struct sb_taken_run *runs, size_t n)
{
    struct sb_jrec r[SB_TAKEN_RUNS];
    struct iovec iov[SB_TAKEN_RUNS];
    if (n == 0 || n > SB_TAKEN_RUNS)
        return -EINVAL;
    const uint64_t now = sb__realtime_ns();
    for (size_t i = 0; i < n; i++) {
        fill_rec(&r[i], type, runs[i].src, runs[i].src_gen, c->id, runs[i].seq, 0, 0, 0, NULL, 0,
                 runs[i].count - 1, now);
        iov[i] = (struct iovec){&r[i], sizeof(r[i])};
    }
    /* A receive's own deadline (c->jdl, set by the receive call: only one thread receives
     * per client). */
    int e = jwrite(c->bus, iov, (int)n, n * sizeof(r[0]), c->jdl);
    return e < 0 ? e : after_write(c->bus, false);
}

int sb__journal_taken_runs(shmbus_client *c, const struct sb_taken_run *runs, size_t n)
{
    return markers(c, SB_JREC_TAKEN, runs, n);
}

int sb__journal_taken(shmbus_client *c, const struct shmbus_msg *m, uint32_t src_gen)
{
    struct sb_taken_run run = {.src = m->src, .src_gen = src_gen, .seq = m->seq, .count = 1};
    return sb__journal_taken_runs(c, &run, 1);
}

/* CANCEL markers left pending: runs named by their sender, who is also the marker's dst
 * (as markers() writes them). Up to SB_TAKEN_RUNS per writev. Under mu and the shared
 * flock; on success the list is empty and *bytes grew by what was written. A write cut
 * short keeps the whole list: a marker written twice is harmless (readers merge runs). */
static int write_pending(struct sb_journal *j, size_t *bytes)
{
    struct sb_jrec r[SB_TAKEN_RUNS];
    struct iovec iov[SB_TAKEN_RUNS];
    const uint64_t now = sb__realtime_ns();
    for (uint32_t done = 0; done < j->npend;) {
        uint32_t n = j->npend - done < SB_TAKEN_RUNS ? j->npend - done : SB_TAKEN_RUNS;
        for (uint32_t i = 0; i < n; i++) {
            const struct sb_taken_run *p = &j->pend[done + i];
            fill_rec(&r[i], SB_JREC_CANCEL, p->src, p->src_gen, p->src, p->seq, 0, 0, 0, NULL, 0,
                     p->count - 1, now);
            iov[i] = (struct iovec){&r[i], sizeof(r[i])};
        }
        int e = writev_all(j->fd, iov, (int)n, n * sizeof(r[0]));
        if (e < 0)
            return e;
        *bytes += n * sizeof(r[0]);
        done += n;
    }
    j->npend = 0;
    return 0;
}

void sb__journal_cancel(shmbus_client *c, uint64_t seq, uint32_t count)
{
    struct sb_taken_run run = {.src = c->id, .src_gen = c->gen, .seq = seq, .count = count};
    struct sb_jrec rec;
    fill_rec(&rec, SB_JREC_CANCEL, run.src, run.src_gen, c->id, seq, 0, 0, 0, NULL, 0, count - 1,
             sb__realtime_ns());
    struct iovec iov = {&rec, sizeof(rec)};
    if (jwrite(c->bus, &iov, 1, sizeof(rec), 0) == 0) {
        after_write(c->bus, false);
        return;
    }
    /* Not written (a full disk): keep it for this handle's next write or its close. */
    struct sb_journal *j = c->bus->j;
    pthread_mutex_lock(&j->mu);
    if (j->npend == j->pend_cap) {
        uint32_t cap = j->pend_cap ? 2 * j->pend_cap : 8;
        struct sb_taken_run *p = realloc(j->pend, cap * sizeof(*p));
        if (p != NULL) {
            j->pend = p;
            j->pend_cap = cap;
        }
    }
    if (j->npend < j->pend_cap) /* else out of memory too: the run is lost (docs/design.md) */
        j->pend[j->npend++] = run;
    pthread_mutex_unlock(&j->mu);
}

void sb__journal_close(shmbus_bus *b)
{
    struct sb_journal *j = b->j;
    if (j == NULL)
        return;
    struct sb_jctl *jc = j->ctl;
    if (j->sync == SHMBUS_SYNC_BATCH && !sb__destroyed(b) &&
        atomic_load_explicit(&jc->synced, memory_order_acquire) <
            atomic_load_explicit(&jc->appended, memory_order_acquire))
        flush(b); /* acquires pair with the releases in flush() and take_ticket() */
    if (j->npend != 0 && !sb__destroyed(b) && lock_mu(j, 0) == 0) { /* pending CANCELs */
        size_t bytes = 0;
        if (enter(b, j, 0) == 0) {
            write_pending(j, &bytes);
            flock(j->fd, LOCK_UN);
        }
        pthread_mutex_unlock(&j->mu);
    }
    free(j->pend);
    close(j->fd);
    pthread_mutex_destroy(&j->mu);
    free(j);
    b->j = NULL;
}

/* ---- public ----------------------------------------------------------------------------- */

int shmbus_bus_open_durable(const char *name, const struct shmbus_bus_opts *opts,
                            const struct shmbus_durable *dur, unsigned flags, shmbus_bus **out)
{
    if (dur == NULL || dur->dir == NULL || dur->dir[0] != '/' ||
        strlen(dur->dir) > SHMBUS_JOURNAL_DIR_MAX || dur->sync > SHMBUS_SYNC_ALWAYS ||
        (dur->compact_bytes != 0 && dur->compact_bytes < 4096))
        return -EINVAL;
    return sb__bus_open(name, opts, dur, flags, out);
}

int shmbus_journal_stats(shmbus_bus *b, struct shmbus_journal_stats *out)
{
    if (b == NULL || out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    struct sb_jctl *jc = &b->hdr->journal;
    if (jc->magic == SB_JMAGIC) {
        out->durable = 1;
        out->sync = jc->sync;
        out->epoch = atomic_load_explicit(&jc->epoch, memory_order_relaxed);
        out->rebuilt = jc->rebuilt;
        out->deferred = jc->deferred;
        out->damaged = jc->damaged;
        out->torn = jc->torn;
        out->syncs = atomic_load_explicit(&jc->syncs, memory_order_relaxed);
        out->compactions = atomic_load_explicit(&jc->compactions, memory_order_relaxed);
        out->bytes = atomic_load_explicit(&jc->bytes, memory_order_relaxed);
        memcpy(out->dir, jc->dir, sizeof(out->dir));
        out->dir[sizeof(out->dir) - 1] = '\0';
    }
    return sb__destroyed(b) ? -EIDRM : 0;
}

/* ---- reading it back: shmbus_journal_scan() ---------------------------------------------- */

int shmbus_journal_scan(shmbus_bus *b, shmbus_journal_fn fn, void *arg)
{
    if (b == NULL || fn == NULL)
        return -EINVAL;
    const struct sb_jctl *jc = &b->hdr->journal;
    if (jc->magic != SB_JMAGIC)
        return -ENOTSUP;
    char dir[sizeof(jc->dir)];
    memcpy(dir, jc->dir, sizeof(dir));
    dir[sizeof(dir) - 1] = '\0';
    uint64_t jid = jc->jid;
    int fd = -ENOENT;
    for (int tries = 0; tries < 1000 && fd == -ENOENT; tries++)
        /* Acquire pairs with the release store of epoch in compact(). */
        fd = open_file(b->name, dir, atomic_load_explicit(&jc->epoch, memory_order_acquire), jid);
    if (fd < 0)
        return fd;
    struct stat st;
    uint8_t *buf = NULL;
    size_t len = 0;
    int r = fstat(fd, &st) == 0 ? 0 : -errno;
    if (r == 0) {
        len = (size_t)st.st_size;
        buf = malloc(len ? len : 1);
        r = buf == NULL ? -ENOMEM : pread(fd, buf, len, 0) == (ssize_t)len ? 0 : -EIO;
    }
    close(fd);
    struct rebuild rb = {0};
    if (r == 0) {
        struct sb_jscan sc;
        sb__journal_parse(buf, len, collect, &rb, &sc);
        collect_end(&rb);
        gone_sort(rb.gone, &rb.ngone);
    }
    for (size_t i = 0; r == 0 && i < rb.nmsg; i++) {
        const struct sb_jrec *m = &rb.msg[i].r;
        struct shmbus_journal_entry e = {
            .msg = {.src = m->src,
                    .dst = m->dst,
                    .seq = m->seq,
                    .corr = m->corr,
                    .len = m->size - (uint32_t)sizeof(*m),
                    .prio = (uint8_t)(m->prio & 7u),
                    .flags = m->flags},
            .time_ns = m->time_ns,
            .taken = gone_has(rb.gone, rb.ngone, ident_key(m), m->seq),
        };
        r = fn(&e, buf + rb.msg[i].off + sizeof(*m), arg);
    }
    free(buf);
    free(rb.msg);
    free(rb.gone);
    return r;
}
