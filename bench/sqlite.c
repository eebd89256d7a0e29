/*
 * SQLite as a peer of the durable rows (issue 13): the same messages, with the same header
 * fields, kept in a table of a database in WAL mode on the same disk as the journals
 * (bench_disk_dir(): $SHMBUS_BENCH_JOURNAL, else the bench's temporary directory).
 *
 * Design notes
 * - The producer inserts one row per message (src, dst, seq, corr, prio, flags, time,
 *   payload) with journal_mode=WAL and synchronous=NORMAL. Its transactions are grouped
 *   like the batch level's group commit: a transaction opens at the first insert and is
 *   committed once it is SHMBUS_SYNC_BATCH_MS (5 ms) old, checked after every send call of
 *   256 messages (the granularity at which the shmbus rows hand a batch to the library),
 *   and at the end of the stream. WAL with synchronous=NORMAL does not fsync a commit (it
 *   syncs the WAL at checkpoints), so a commit is like a journal write(2) and the 5 ms are
 *   like the group commit's interval: the comparison is "same messages, same disk", with
 *   SQLite promising a little less than the batch level (no bound on what a power cut loses).
 * - The consumer reads the oldest rows (at most 256, one receive batch) and deletes them in
 *   one transaction (BEGIN IMMEDIATE: it needs the write lock to delete). SQLite has no
 *   wake-up, so when the table is empty the consumer looks again after 50 us.
 * - One writer at a time is SQLite's rule: a side that finds the database locked retries
 *   every 20 us (a busy handler of our own; SQLite's default one sleeps whole milliseconds,
 *   which would measure its back-off rather than its work), for up to 10 s.
 * - Only children touch a database handle; the parent makes the file and the table in
 *   setup() and removes the directory in teardown().
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef BENCH_HAVE_SQLITE
#include <sqlite3.h>

#define SQ_BATCH_NS   5000000ull /* SHMBUS_SYNC_BATCH_MS: the group commit's interval */
#define SQ_MAX_ROWS   256        /* rows a receive takes at most (one receive batch) */
#define SQ_POLL_US    50
#define SQ_BUSY_SPINS 500000 /* 20 us each: 10 s */

struct bench_chan {
    char dir[400];
    char path[450];
    size_t size;
};

struct sq_ep {
    sqlite3 *db;
    sqlite3_stmt *ins, *sel, *del, *begin, *commit;
    uint32_t src, dst;
    uint64_t seq;
    int in_txn;
    uint64_t txn_start;
};

static int sq_fail(sqlite3 *db, int rc, char *why, size_t whylen, const char *what)
{
    snprintf(why, whylen, "%s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    return -EIO;
}

static int busy(void *arg, int tries)
{
    (void)arg;
    if (tries >= SQ_BUSY_SPINS)
        return 0;
    bench_sleep_us(20);
    return 1;
}

static int sq_exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int sq_setup(struct bench_chan **chp, size_t size, int nprod, int streaming, char *why,
                    size_t whylen)
{
    (void)nprod;
    (void)streaming;
    static unsigned serial;
    struct bench_chan *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return bench_fail(why, whylen, "calloc");
    ch->size = size;
    char tag[64];
    snprintf(tag, sizeof(tag), "sqlite-%d-%u", (int)getpid(), serial++);
    int rc = bench_disk_dir(ch->dir, sizeof(ch->dir), tag, why, whylen);
    if (rc < 0) {
        free(ch);
        return rc;
    }
    snprintf(ch->path, sizeof(ch->path), "%s/bus.db", ch->dir);
    sqlite3 *db = NULL;
    rc = sqlite3_open_v2(ch->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK)
        rc = sq_exec(db, "PRAGMA journal_mode=WAL");
    if (rc == SQLITE_OK)
        rc = sq_exec(db, "CREATE TABLE msg (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, "
                         "seq INTEGER, corr INTEGER, prio INTEGER, flags INTEGER, "
                         "time_ns INTEGER, payload BLOB)");
    if (rc != SQLITE_OK) {
        sq_fail(db, rc, why, whylen, "sqlite setup");
        sqlite3_close(db);
        bench_disk_dir_remove(ch->dir);
        free(ch);
        return -EIO;
    }
    sqlite3_close(db);
    *chp = ch;
    return 0;
}

static void sq_teardown(struct bench_chan *ch)
{
    bench_disk_dir_remove(ch->dir); /* bus.db, and -wal and -shm if a child was killed */
    free(ch);
}

static void sq_close(void *ep)
{
    struct sq_ep *e = ep;
    if (e->in_txn)
        sq_exec(e->db, "COMMIT");
    sqlite3_finalize(e->ins);
    sqlite3_finalize(e->sel);
    sqlite3_finalize(e->del);
    sqlite3_finalize(e->begin);
    sqlite3_finalize(e->commit);
    sqlite3_close(e->db);
    free(e);
}

static int sq_open(struct bench_chan *ch, enum bench_role role, int index, void **ep, char *why,
                   size_t whylen)
{
    struct sq_ep *e = calloc(1, sizeof(*e));
    if (!e)
        return bench_fail(why, whylen, "calloc");
    e->dst = 1;
    e->src = role == BENCH_CONSUMER ? 1 : 2 + (uint32_t)index;
    e->seq = 1;
    int rc = sqlite3_open_v2(ch->path, &e->db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_handler(e->db, busy, NULL);
    if (rc == SQLITE_OK)
        rc = sq_exec(e->db, "PRAGMA journal_mode=WAL");
    if (rc == SQLITE_OK)
        rc = sq_exec(e->db, "PRAGMA synchronous=NORMAL");
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(e->db,
                                "INSERT INTO msg (src, dst, seq, corr, prio, flags, time_ns, "
                                "payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                -1, &e->ins, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(e->db,
                                "SELECT id, src, dst, seq, corr, prio, flags, time_ns, payload "
                                "FROM msg ORDER BY id LIMIT ?",
                                -1, &e->sel, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(e->db, "DELETE FROM msg WHERE id <= ?", -1, &e->del, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(e->db, "BEGIN IMMEDIATE", -1, &e->begin, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(e->db, "COMMIT", -1, &e->commit, NULL);
    if (rc != SQLITE_OK) {
        sq_fail(e->db, rc, why, whylen, "sqlite open");
        sq_close(e);
        return -EIO;
    }
    *ep = e;
    return 0;
}

/* Run a statement without results (BEGIN, COMMIT, DELETE); 0 or -EIO. */
static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int sq_commit(struct sq_ep *e)
{
    if (!e->in_txn)
        return 0;
    e->in_txn = 0;
    return step_done(e->commit);
}

static int sq_stream_send(void *ep, const void *buf, size_t len, int n)
{
    struct sq_ep *e = ep;
    if (!e->in_txn) {
        if (step_done(e->begin) < 0)
            return -EIO;
        e->in_txn = 1;
        e->txn_start = bench_now_ns();
    }
    for (int i = 0; i < n; i++) {
        sqlite3_stmt *st = e->ins;
        sqlite3_bind_int64(st, 1, e->src);
        sqlite3_bind_int64(st, 2, e->dst);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)e->seq++);
        sqlite3_bind_int64(st, 4, 0);
        sqlite3_bind_int(st, 5, 0);
        sqlite3_bind_int(st, 6, 0);
        sqlite3_bind_int64(st, 7, (sqlite3_int64)realtime_ns());
        sqlite3_bind_blob(st, 8, buf, (int)len, SQLITE_TRANSIENT);
        if (step_done(st) < 0)
            return -EIO;
    }
    if (bench_now_ns() - e->txn_start >= SQ_BATCH_NS)
        return sq_commit(e);
    return 0;
}

static int sq_stream_flush(void *ep)
{
    return sq_commit(ep);
}

static int sq_send(void *ep, const void *buf, size_t len)
{
    int rc = sq_stream_send(ep, buf, len, 1);
    return rc < 0 ? rc : sq_commit(ep);
}

/* The oldest rows, at most max, copied out as a receiver would (header fields and payload),
 * then deleted, in one transaction. Waits (polling) until there is at least one. */
static int sq_stream_recv(void *ep, void *buf, size_t len, int max)
{
    struct sq_ep *e = ep;
    if (max > SQ_MAX_ROWS)
        max = SQ_MAX_ROWS;
    for (;;) {
        if (step_done(e->begin) < 0)
            return -EIO;
        sqlite3_bind_int(e->sel, 1, max);
        int got = 0, rc;
        sqlite3_int64 last = 0;
        volatile uint64_t sink = 0; /* the header fields a receiver reads */
        while ((rc = sqlite3_step(e->sel)) == SQLITE_ROW) {
            last = sqlite3_column_int64(e->sel, 0);
            for (int c = 1; c <= 7; c++)
                sink += (uint64_t)sqlite3_column_int64(e->sel, c);
            const void *p = sqlite3_column_blob(e->sel, 8);
            size_t n = (size_t)sqlite3_column_bytes(e->sel, 8);
            memcpy(buf, p, n < len ? n : len);
            got++;
        }
        sqlite3_reset(e->sel);
        (void)sink;
        if (rc != SQLITE_DONE) {
            sq_exec(e->db, "ROLLBACK");
            return -EIO;
        }
        if (got > 0) {
            sqlite3_bind_int64(e->del, 1, last);
            if (step_done(e->del) < 0) {
                sq_exec(e->db, "ROLLBACK");
                return -EIO;
            }
        }
        if (step_done(e->commit) < 0)
            return -EIO;
        if (got > 0)
            return got;
        bench_sleep_us(SQ_POLL_US);
    }
}

static int sq_recv(void *ep, void *buf, size_t len)
{
    int rc = sq_stream_recv(ep, buf, len, 1);
    return rc < 0 ? rc : 0;
}

#else

static const char *sq_missing(size_t size, char *why, size_t whylen)
{
    (void)size;
    (void)why;
    (void)whylen;
    return "SQLite (libsqlite3-dev) was not found when the bench was built";
}

#endif

const struct bench_transport bench_peer_sqlite = {
    .name = "sqlite-wal",
    .about = "SQLite 3, journal_mode=WAL, synchronous=NORMAL, on the journals' disk: one INSERT "
             "per message (src, dst, seq, corr, prio, flags, time, payload), transactions "
             "committed once 5 ms old (checked every 256 messages) and at the stream's end, "
             "like the batch level's group commit; the consumer SELECTs the oldest 256 at most "
             "and DELETEs them in one transaction, polling every 50 us when empty",
    .kind = BENCH_PEER,
    .wait = BENCH_SLEEP,
    .caps = BENCH_CAP_STREAM,
#ifdef BENCH_HAVE_SQLITE
    .setup = sq_setup,
    .open = sq_open,
    .send = sq_send,
    .recv = sq_recv,
    .stream_send = sq_stream_send,
    .stream_recv = sq_stream_recv,
    .stream_flush = sq_stream_flush,
    .close = sq_close,
    .teardown = sq_teardown,
#else
    .probe = sq_missing,
#endif
};
