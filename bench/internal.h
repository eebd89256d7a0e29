/*
 * shmbus bench: what the parts of the benchmark share.
 *
 * Design notes
 * - Every way of moving a message (a floor, a peer, a shmbus mode) is one row of a table of
 *   transports (struct bench_transport). The harness (harness.c) knows nothing about any of
 *   them: it forks the two (or nine) processes, pins them, lines them up on a barrier, and
 *   calls the row's send/recv or stream_send/stream_recv. A new transport is a new row.
 * - A transport's setup() runs in the parent before the fork and creates whatever the
 *   children share (a pipe, a queue, a shared mapping, a path name). open() runs in each
 *   child after the fork and returns that child's endpoint. teardown() runs in the parent
 *   after the children are gone, always, even when a child failed or was killed, and removes
 *   every IPC object setup() made.
 * - Results travel from the children to the parent in a shared anonymous mapping
 *   (struct bench_shared); the parent never links any transport state itself, so a library
 *   that starts threads (ZeroMQ, iceoryx) only ever runs in a child.
 * - Internal names start with bench_, not sb__: this code is linked beside libshmbus, whose
 *   internals own sb__.
 */
#ifndef SHMBUS_BENCH_INTERNAL_H
#define SHMBUS_BENCH_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BENCH_MAX_PRODUCERS 8
#define BENCH_WHY_LEN       200
#define BENCH_STOP          UINT64_MAX /* sequence number that ends a ping-pong */
/* What a 64 B message is in a shmbus mailbox: its payload after the 48-byte record header
 * (docs/mailbox-v2.md, section 1), two cache lines. floor-spin is also measured at this
 * size, so that the spinning target can be read against the floor of two lines too. */
#define BENCH_SB_RECORD_64 (48 + 64)

/* ---- time ---- */

/* CLOCK_MONOTONIC in nanoseconds (vDSO, no system call). */
uint64_t bench_now_ns(void);
void bench_sleep_us(unsigned us);

/* ---- log-linear histogram (hist.c) ----
 * Values below 64 ns are exact; above, each power of two is cut into 64 equal buckets, so a
 * reported percentile is within 1/128 of the true value (the bucket midpoint is reported). */
#define BENCH_HIST_SUB     64
#define BENCH_HIST_EXP     42 /* up to 2^42 ns, about 73 minutes */
#define BENCH_HIST_BUCKETS (BENCH_HIST_SUB + (BENCH_HIST_EXP - 6) * BENCH_HIST_SUB)

struct bench_hist {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    double sum;
    uint64_t bucket[BENCH_HIST_BUCKETS];
};

void bench_hist_init(struct bench_hist *h);
void bench_hist_add(struct bench_hist *h, uint64_t ns);
/* The value at quantile q (0 < q <= 1), in ns; 0 for an empty histogram. */
uint64_t bench_hist_quantile(const struct bench_hist *h, double q);
/* Checks the histogram against known distributions; 0, or -1 after printing what is wrong. */
int bench_hist_selftest(FILE *out);

/* ---- transports ---- */

enum bench_kind { BENCH_FLOOR, BENCH_PEER, BENCH_SHMBUS };
enum bench_wait { BENCH_SPIN, BENCH_SLEEP, BENCH_HYBRID, BENCH_NONE /* no receiver at all */ };
enum bench_role { BENCH_PING, BENCH_PONG, BENCH_PRODUCER, BENCH_CONSUMER, BENCH_ALONE };

/* What a transport can be measured for. */
#define BENCH_CAP_LATENCY 1u /* ping-pong round trips */
#define BENCH_CAP_STREAM  2u /* one producer to one consumer */
#define BENCH_CAP_FANIN   4u /* eight producers to one consumer */
/* One process alone, pinned like a producer, calling stream_send() for the duration; no
 * receiver. Its rate is a 64 B stream figure (the journal floor, floor_journal.c). */
#define BENCH_CAP_ALONE 8u

struct bench_chan; /* one transport's shared objects, made by setup() */

struct bench_transport {
    const char *name;  /* short, for the table and the JSON ("pipe", "shmbus-spin") */
    const char *group; /* --only also selects the row by this name; NULL: none */
    const char *about; /* one line: what exactly is measured */
    enum bench_kind kind;
    enum bench_wait wait;
    unsigned caps;
    /* NULL when the transport can carry messages of this size, else why not (static text or
     * written into why). Runs in the parent. May be NULL. */
    const char *(*probe)(size_t size, char *why, size_t whylen);
    /* In the parent before the fork: create what the children share. nprod is the number of
     * producers (1 for latency and 1:1 streams). 0 or -errno with why filled in. */
    int (*setup)(struct bench_chan **ch, size_t size, int nprod, int streaming, char *why,
                 size_t whylen);
    /* In a child: this process's endpoint for role (index = producer number). */
    int (*open)(struct bench_chan *ch, enum bench_role role, int index, void **ep, char *why,
                size_t whylen);
    /* Send or receive exactly one message of len bytes; 0 or -errno. */
    int (*send)(void *ep, const void *buf, size_t len);
    int (*recv)(void *ep, void *buf, size_t len);
    /* Optional batch forms: send n messages (all copies of buf) and make them visible before
     * returning; receive at least one and at most max messages into buf (each overwrites the
     * last), returning how many. NULL means a loop of send / one recv. */
    int (*stream_send)(void *ep, const void *buf, size_t len, int n);
    int (*stream_recv)(void *ep, void *buf, size_t len, int max);
    /* Optional: a producer calls it after its last chunk, so that whatever stream_send left
     * pending (an open transaction) becomes visible to the consumer. 0 or -errno. */
    int (*stream_flush)(void *ep);
    void (*close)(void *ep);
    /* In the parent, after every child has exited (or been killed): remove everything. */
    void (*teardown)(struct bench_chan *ch);
};

/* Rows, in the order the report shows them (floors.c, peers.c, iceoryx.c, shmbus.c). */
extern const struct bench_transport bench_floor_spin, bench_floor_sem, bench_floor_ring;
/* The journal floor (floor_journal.c): a durable bus's least work per message, one thread. */
extern const struct bench_transport bench_floor_journal_writev, bench_floor_journal_mapped;
extern const struct bench_transport bench_peer_pipe, bench_peer_uds, bench_peer_posixmq,
    bench_peer_sysvmq, bench_peer_zmq;
extern const struct bench_transport bench_peer_iox_poll, bench_peer_iox_wait;
/* SQLite in WAL mode inserting the same messages as the durable rows (sqlite.c). */
extern const struct bench_transport bench_peer_sqlite;
extern const struct bench_transport bench_shmbus_spin, bench_shmbus_sleep, bench_shmbus_default,
    bench_shmbus_percall, bench_shmbus_poll, bench_shmbus_loan;
/* Durable buses (bench/shmbus.c): the same calls with a journal at each sync level. */
extern const struct bench_transport bench_shmbus_durable_none, bench_shmbus_durable_batch,
    bench_shmbus_durable_always;
/* The 64 B stream of shmbus-default with a tap (shmbus tail) attached and reading. */
extern const struct bench_transport bench_shmbus_tapped;

/* Where the durable rows put their journals and the SQLite peer its database: a new
 * directory in $SHMBUS_BENCH_JOURNAL if set, else in the bench's temporary directory.
 * tag names the row; 0, or -errno with why filled in (shmbus.c). */
int bench_disk_dir(char *dir, size_t len, const char *tag, char *why, size_t whylen);
/* Remove such a directory and the files in it. */
void bench_disk_dir_remove(const char *dir);

/* A private directory for path names (sockets, key files); made by the driver. */
extern char bench_tmpdir[];

/* dst = prefix + msg, cut to fit (msg may be dst). */
void bench_why(char *dst, size_t n, const char *prefix, const char *msg);

/* Writes "what: strerror" into why; returns -errno (errno as it was). */
int bench_fail(char *why, size_t whylen, const char *what);

/* ---- iceoryx's daemon (iceoryx.c) ---- */

/* Start iox-roudi and wait until it serves clients. 0, or -1 with why filled in. */
int bench_roudi_start(char *why, size_t whylen);
/* Stop it and remove what it left; safe to call when it is not running. */
void bench_roudi_stop(void);
/* NULL when the iceoryx rows can run now, else why not. */
const char *bench_iox_unavailable(void);

/* ---- shmbus (shmbus.c) ---- */

/* NULL when the shmbus rows can run, else why not (for example "library not ready"). */
const char *bench_shmbus_unavailable(void);
/* The library's version string, or "not built". */
const char *bench_shmbus_version(void);
/* Create a fresh bus (64 B messages, default ring) for `clients` in the bench's private
 * SHMBUS_DIR (set for this process and its children); its name goes to name. 0, or -errno
 * with why filled in. Only with BENCH_HAVE_SHMBUS. */
int bench_sb_bus_create(char *name, size_t namelen, uint32_t clients, char *why, size_t whylen);

/* ---- the Scale section's rings (ring.c) ----
 * N forked processes pass one 64 B message around; each times the hops it receives. */

#define BENCH_RING_STOP UINT64_MAX /* the hop number that tells a client to stop */

/* Shared by the parent and the N clients of one run (an anonymous shared mapping). */
struct bench_ring {
    int n;         /* clients, numbered 1..n */
    uint64_t hops; /* in total; whoever receives the last one stops the others */
    _Atomic int ready;
    _Atomic int failed;
    _Atomic uint64_t faults;   /* page faults of all clients, from the line-up to the end */
    _Atomic uint64_t switches; /* context switches, voluntary or not, likewise */
    char why[BENCH_WHY_LEN];   /* the first failure */
    struct bench_hist hist[];  /* client k's hops in hist[k - 1] */
};

/* Client k's body, in a forked child: 0, or -errno after bench_ring_fail(). */
typedef int bench_ring_client(struct bench_ring *rg, int k, void *arg);

struct bench_hops;
/* Fork n clients that run client(rg, k, arg), wait for them (killing them all after 60 s or
 * once one has failed), and merge their histograms into out. */
void bench_ring_run(int n, uint64_t hops, bench_ring_client *client, void *arg,
                    struct bench_hops *out);
/* Every client calls it once it is ready to receive: returns when all n are (and starts
 * counting the client's page faults and context switches). */
void bench_ring_wait_all(struct bench_ring *rg);
/* Where client k's i-th forward goes: the (i mod (n-1))-th of the other clients, ascending. */
int bench_ring_next(int n, int k, uint64_t i);
/* Record the first failure ("client k: what") and make the others stop. */
void bench_ring_fail(struct bench_ring *rg, int k, const char *what);

/* Pin the calling process to cpu (nothing for -1); best effort (harness.c). */
void bench_pin(int cpu);

/* ---- cleanup on a signal (bench.c) ---- */

/* Remember a child or RouDi so that a signal can stop it (see bench.c); forget() it once it
 * has been waited for. */
void bench_track_pid(int pid);
void bench_forget_pid(int pid);

#endif
