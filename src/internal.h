/*
 * internal.h - the segment layout and the library's internal interfaces.
 *
 * Design notes
 * ------------
 * A bus is one System V segment laid out as:
 *
 *   offset 0             struct sb_header       (one page: identity, sizes, bus state)
 *   registry_off         struct sb_entry[max]   (one per client id, id k at index k-1)
 *   mbox_off             mailbox[max]           (one per client id), each mbox_size bytes:
 *                          struct sb_mbox        (one page: tail, head, flags, semaphores)
 *                          ring                  (ring_units units of 64 bytes)
 *   flows_off            flow row[max]          (one per client id, stats.c), each:
 *                          struct sb_flow_row    (the id's bus-wide counters)
 *                          uint64_t from[max]    (messages this id took from each sender id)
 *   tap_off              tap area               (tap.c): struct sb_tap_ctl, then 1024
 *                                                 slots of 512 bytes (copies for taps)
 *   group_off            struct sb_group[SB_GROUPS]  (named groups, group.c), each
 *                          group_size bytes: name, leader word, counters, then one
 *                          membership word per client id
 *   inflight_off         in-flight table[max]   (one per client id, redeliver.c), each
 *                          inflight_size bytes: SB_INFLIGHT slots of inflight_slot bytes,
 *                          struct sb_inflight then the payload (a taken group message
 *                          not confirmed yet)
 *   tap_bulk_off         bulk ring              (tap.c, layout 4): SB_TAP_BULK bytes of whole
 *                                                 payloads, for taps opened SHMBUS_TAP_WHOLE
 *
 * Every size and offset is computed from (max_clients, slots, msg_size, ring bytes) by
 * sb__layout(); a process that attaches recomputes them itself and only checks that the
 * header agrees, so nothing it later dereferences depends on a value a peer could have
 * scribbled over. Everything after the header page is valid when all zero: creating a bus
 * writes the header page only, and the rest stays untouched zero pages until used.
 *
 * Mailbox protocol (layout 3, "mailbox v2"; docs/mailbox-v2.md is the full design and
 * tests/model/ring_v2.pml its model): a byte ring of 64-byte units per mailbox, holding
 * variable-length records that start on a unit. Producers claim runs of units by CAS on
 * `tail` (position and the last claim's length in one word), store a CLAIMED header word,
 * fill, and commit with a CAS CLAIMED -> READY. The consumer takes READY records from the
 * committed prefix (highest priority first; out of order ones are marked DONE in place),
 * zeroes the first word of each unit it passes, and publishes `head` once per batch. A dead
 * writer's claim is skipped (CAS to DONE) by the consumer once no live intent names it.
 *
 * Registry entries carry a 64-bit state word: kind (FREE, JOINING, LIVE, CLEANING), a
 * generation that grows at every join, and the pid that owns the current kind. All changes
 * are CASes on that word, so exactly one process joins, leaves or cleans an entry; a
 * cleaner that dies leaves CLEANING with a dead pid, which the next cleaner takes over.
 * Liveness is "the pid exists, is not a zombie, and has the start time recorded at join":
 * the kernel ends it when the process dies, slowness or SIGSTOP never do.
 *
 * A client that leaves with shmbus_leave_keep() leaves its mailbox as it is and records its
 * generation in the entry's kept_gen (layout version 2; the word sits in the identity line's
 * padding, so the entry size did not change). The next join of the id accepts messages
 * stamped with that one generation as its own. See registry.c.
 *
 * Named groups (layout 3; group.c and election.c): SB_GROUPS slots found by name, by linear
 * probing from a hash of the name. A slot goes FREE -> CLAIMING(pid) -> USED and never back,
 * so a probe that meets a FREE slot knows the name is not further on. Membership is one word
 * per client id holding the member's generation (0: none): a member is current only while
 * the registry entry is LIVE with that same generation, so a client that left or died is
 * never a member again even before anyone clears its word. The leader word packs
 * (epoch, generation, id) so that one CAS both names the new leader and raises the epoch.
 */
#ifndef SHMBUS_INTERNAL_H
#define SHMBUS_INTERNAL_H

#include <semaphore.h>
#include <stddef.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "shmbus.h"

#define SB_MAGIC 0x3130535542484d53ull /* "SHMBUS01" little-endian */
/* 2: sb_entry.kept_gen; 3: mailbox v2 (the byte ring), sb_mbox.fd_armed (evfd.c), flow rows
 * (stats.c: bus-wide counters, per-pair counts), the tap area (tap.c), the group table
 * (group.c); 4: the tap bulk ring (tap.c), the in-flight tables (redeliver.c); 5: the journal
 * control of durable buses (journal.c) in the header; 6: the pass lock and lossy members;
 * 7: SB_HW_INNER in the header word of a batch's records after its first; 8: an entry's
 * bytes sent and received counts are its flow row's less a base taken at join */
#define SB_LAYOUT_VERSION 8u
#define SB_LINE           64u
#define SB_HEADER_SIZE    4096u
#define SB_INTENTS        4u  /* concurrent sending threads per client that can each be tracked */
#define SB_HELD           16u /* receive loans (shmbus_recv_ref) a client may hold at once */
#define SB_SLICE_MS       250 /* how often a blocked call wakes to check for dead peers */
#define SB_REAP_NS        1000000000ull /* at most one automatic reap per bus per second */

/* Bus states (sb_header.state). */
enum { SB_BUS_INIT = 0, SB_BUS_READY = 1, SB_BUS_DESTROYED = 2 };

/*
 * A durable bus's journal, as the segment records it (journal.c), in the header page where
 * layout version 3 had 512 reserved bytes. `magic` is SB_JMAGIC only on a durable bus;
 * everything above `appended` is written once, before READY, and copied (and checked) by
 * every process when it attaches; the rest are shared counters of the group commit.
 */
#define SB_JMAGIC 0x4c4e524a53554253ull /* "SBUSJRNL" */
struct sb_jctl {
    uint64_t magic;
    uint64_t jid;           /* the journal's identity: random, chosen at first creation */
    _Atomic uint64_t epoch; /* the file in use: <dir>/<bus>.<epoch as 16 hex>.jnl */
    uint32_t sync;          /* SHMBUS_SYNC_* */
    uint32_t pad;
    uint64_t compact_bytes; /* compact the file when it grows past this */
    uint64_t retain_bytes;  /* taken messages kept: the newest this many bytes, */
    uint64_t retain_ns;     /* and those written this recently (0: none) */
    uint64_t rebuilt, deferred, damaged, torn; /* what the rebuild found */
    char dir[SHMBUS_JOURNAL_DIR_MAX + 1];
    _Alignas(SB_LINE) _Atomic uint64_t appended; /* records written (tickets, see journal.c) */
    _Atomic uint64_t synced;                     /* every ticket <= this is on disk */
    _Atomic uint64_t sync_owner;                 /* pid flushing now (batch), or 0 */
    _Atomic uint64_t last_sync_ns;               /* CLOCK_MONOTONIC of the last flush */
    _Atomic uint64_t syncs;                      /* fdatasync() calls */
    _Alignas(SB_LINE) _Atomic uint64_t bytes;    /* bytes written to the file in use (about) */
    _Atomic uint64_t compact_owner;              /* pid compacting now, or 0 */
    _Atomic uint64_t compact_target;             /* epoch a compaction renamed in, not yet
                                                  * published (nonzero only under its lock) */
    _Atomic uint64_t compactions;
};
_Static_assert(sizeof(struct sb_jctl) <= 512, "the journal control fits the old reserved bytes");

struct sb_header {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t header_size;
    _Atomic uint32_t state;
    uint32_t mode;
    uint32_t creator_uid;
    int32_t creator_pid;
    uint32_t max_clients;
    uint32_t slots;
    uint32_t msg_size;
    uint32_t ring_units; /* units of 64 bytes in each mailbox's ring (a power of two) */
    uint64_t entry_size;
    uint64_t mbox_size;
    uint64_t registry_off;
    uint64_t mbox_off;
    uint64_t total_size;
    uint64_t nonce;
    uint64_t created_ns;
    char name[SHMBUS_NAME_MAX + 1];
    _Atomic uint64_t reap_ns; /* CLOCK_MONOTONIC of the last automatic reap */
    _Atomic uint64_t leader;  /* reserved: leader election */
    char key_path[512];       /* the key file this bus was created under (for clean) */
    struct sb_jctl journal;   /* durable buses (journal.c); all zero on other buses */
};

/* Named groups (group.c, election.c). */
#define SB_GROUPS 64u
enum { SB_GRP_FREE = 0, SB_GRP_CLAIMING = 1, SB_GRP_USED = 2 };
#define SB_GRP_ST(kind, pid) (((uint64_t)(kind) << 56) | (uint32_t)(pid))
#define SB_GRP_KIND(s)       ((unsigned)((s) >> 56))
#define SB_GRP_PID(s)        ((pid_t)(uint32_t)(s))
/* Leader word: epoch 27 bits | generation 24 | id 13 (0: nobody leads). */
#define SB_LEAD(ep, gen, id)                                                                       \
    (((uint64_t)(ep) << 37) | (((uint64_t)(gen)&0xffffffu) << 13) | ((uint64_t)(id)&0x1fffu))
#define SB_LEAD_EPOCH(l) ((l) >> 37)
#define SB_LEAD_GEN(l)   ((uint32_t)(((l) >> 13) & 0xffffffu))
#define SB_LEAD_ID(l)    ((uint32_t)((l)&0x1fffu))
#define SB_EPOCH_MAX     ((1ull << 27) - 1)
/* Lease word (election.c): the epoch it belongs to 27 bits | the lease's end in ms of
 * CLOCK_MONOTONIC, modulo 2^36, 36 bits | deposing 1 bit. A word whose epoch is not the
 * leader word's means "no lease" (0 at creation: no epoch 0 ever leads). */
#define SB_LEASE_MS_MASK ((1ull << 36) - 1)
#define SB_LEASE(ep, end_ms, dep)                                                                  \
    (((uint64_t)(ep) << 37) | (((uint64_t)(end_ms)&SB_LEASE_MS_MASK) << 1) | (uint64_t) !!(dep))
#define SB_LEASE_EPOCH(w)    ((w) >> 37)
#define SB_LEASE_END(w)      (((w) >> 1) & SB_LEASE_MS_MASK)
#define SB_LEASE_DEPOSING(w) ((w)&1u)
#define SB_MEMBER_GEN(m)     ((m)&0xffffffu)
/* In a membership word: the member subscribed with SHMBUS_SUB_LOSSY (layout 6): a publisher
 * that finds its mailbox full may drop the oldest unread messages of the group there. */
#define SB_MEMBER_LOSSY         0x1000000u
#define SB_STICKY               64u
#define SB_STICKY_WORD(gen, id) ((((uint64_t)(gen)&0xffffffu) << 32) | (uint32_t)(id))
#define SB_STICKY_GEN(w)        ((uint32_t)(((w) >> 32) & 0xffffffu))
#define SB_STICKY_ID(w)         ((uint32_t)(w))

struct sb_group {
    _Alignas(SB_LINE) _Atomic uint64_t state; /* SB_GRP_ST(kind, claimer's pid) */
    char name[SHMBUS_NAME_MAX + 1];           /* written only while CLAIMING */
    _Atomic uint32_t rr;                      /* work queue: where the next pick starts */
    _Alignas(SB_LINE) _Atomic uint64_t lead;  /* SB_LEAD(epoch, gen, id) */
    _Atomic uint64_t published;               /* topic copies delivered */
    _Atomic uint64_t missed;                  /* topic copies not delivered (full mailbox) */
    _Atomic uint64_t queued;                  /* work-queue messages delivered */
    _Atomic uint64_t elections;               /* leaders elected */
    _Atomic uint64_t lease;                   /* SB_LEASE(epoch, end, deposing), election.c */
    _Atomic uint64_t redelivered;             /* work-queue messages redelivered */
    _Atomic uint64_t lost; /* topic copies dropped unread from lossy subscribers' mailboxes */
    /* Work queue with keys: bucket (key hash % SB_STICKY) -> SB_STICKY_WORD(gen, id) of the
     * member its keys go to while that member is current; 0: none yet. */
    _Alignas(SB_LINE) _Atomic uint64_t sticky[SB_STICKY];
    /* Then one word per client id (index id - 1): its generation while a member, else 0. */
    _Alignas(SB_LINE) _Atomic uint32_t member[];
};

/*
 * An in-flight slot (redeliver.c): a group message its client took from a group it
 * subscribed to with SHMBUS_SUB_CONFIRM and has not confirmed (shmbus_done()). Written only
 * by the client's receiving thread while alive, then only by whoever holds its entry
 * CLEANING. The payload follows the 64-byte header.
 */
#define SB_INFLIGHT SHMBUS_INFLIGHT
struct sb_inflight {
    _Alignas(SB_LINE) _Atomic uint64_t state; /* generation of its holder; 0: free */
    uint64_t seq, corr, sent_ns;
    uint32_t len, src;
    uint32_t src_gen; /* as in a record: generation 0..23, SHMBUS_MSG_* 24..31 */
    uint32_t prio;
};
_Static_assert(sizeof(struct sb_inflight) == SB_LINE, "an in-flight header is one line");

/* Registry entry state word. */
enum { SB_FREE = 0, SB_JOINING = 1, SB_LIVE = 2, SB_CLEANING = 3 };
#define SB_ST(kind, gen, pid)                                                                      \
    (((uint64_t)(kind) << 56) | (((uint64_t)(gen)&0xffffffu) << 32) | (uint32_t)(pid))
#define SB_ST_KIND(s) ((unsigned)((s) >> 56))
#define SB_ST_GEN(s)  ((uint32_t)(((s) >> 32) & 0xffffffu))
#define SB_ST_PID(s)  ((pid_t)(uint32_t)(s))

/* A producer's record of the positions it reserved and has not committed yet. */
struct sb_intent {
    _Atomic uint64_t pos;
    _Atomic uint32_t mbox; /* destination id */
    _Atomic uint32_t n;    /* 0: no reservation outstanding */
};

/*
 * A counting semaphore in the segment, only to sleep and wake (sem.c). Not glibc's sem_t,
 * which aborts the process when a peer has scribbled over it. The size of a sem_t, with the
 * value then the waiters as glibc keeps them, so the layout is the same.
 */
struct sb_sem {
    _Atomic uint32_t value;   /* posts not yet taken */
    _Atomic uint32_t waiters; /* threads asleep (or about to be) */
    uint8_t pad[sizeof(sem_t) - 8];
};

struct sb_entry {
    /* Identity: written by the owner while JOINING, read by everyone. */
    _Alignas(SB_LINE) _Atomic uint64_t state;
    _Atomic uint64_t start_time; /* owner's process start time (clock ticks since boot) */
    uint64_t joined_ns;
    char name[SHMBUS_NAME_MAX + 1];
    /* Mailbox kept by shmbus_leave_keep(): in a FREE entry, the generation whose messages
     * wait for the next client; in a joined one, the generation it took them over from.
     * Meaningful only as sb__kept_gen() checks it against the state word. */
    _Atomic uint32_t kept_gen;

    /* Sender side: written by the owner's sending threads. */
    _Alignas(SB_LINE) _Atomic uint64_t sent; /* doubles as the per-sender sequence number */
    /* The id's flow row's bytes_sent when the owner joined: the client's bytes sent are the
     * row's count less this one (read_counters() in registry.c), so that a send adds to the
     * row alone. Likewise received_base and bytes_received_base. Written at join only. */
    _Atomic uint64_t bytes_sent_base;
    _Atomic uint64_t full_waits;
    struct sb_intent intent[SB_INTENTS];

    /* Receiver side: written by the owner's receiving thread (the two bases: at join). */
    _Alignas(SB_LINE) _Atomic uint64_t received_base;
    _Atomic uint64_t bytes_received_base;
    _Atomic uint64_t wakeups;
    _Atomic uint64_t spins;
    _Atomic uint64_t dropped;
    /* Topic messages dropped unread from this mailbox by publishers (SHMBUS_SUB_LOSSY,
     * mailbox.c shed()): written by them, under the mailbox's pass lock. */
    _Atomic uint64_t lost;

    /* Acknowledgements: written by receivers of this client's ACK messages. */
    _Alignas(SB_LINE) _Atomic uint64_t ack_seq;
    _Atomic uint32_t ack_waiting;
    struct sb_sem ack_sem;

    _Alignas(SB_LINE) _Atomic uint64_t lat_hist[SHMBUS_LAT_BUCKETS];
};

struct sb_mbox {
    /* Each word on its own line (docs/mailbox-v2.md, 1): tail is CASed by every claim, head
     * stored by the consumer once per batch, sleeping and pending_hi read on every send or
     * receive but rarely written. The ring starts at the next page. */
    _Alignas(SB_LINE) _Atomic uint64_t tail; /* (pos 48 bits, last claim's units 16) */
    _Atomic uint64_t claimed; /* messages claimed, added after each claim (the line is ours) */
    _Alignas(SB_LINE) _Atomic uint64_t head;     /* consumer's published position */
    _Alignas(SB_LINE) _Atomic uint64_t passed;   /* messages taken, dropped or skipped */
    _Alignas(SB_LINE) _Atomic uint32_t sleeping; /* the consumer is (about to be) asleep */
    _Atomic uint32_t fd_armed; /* the consumer waits on its event-loop socket (evfd.c) */
    _Alignas(SB_LINE) _Atomic int32_t pending_hi; /* prio > 0 committed (or about to be) */
    /* The pass lock (layout 6, docs/mailbox-v2.md 16): SB_PASS(id, gen) of who may move head
     * now, 0: nobody. Only a mailbox whose client subscribed with SHMBUS_SUB_LOSSY uses it:
     * its consumer holds it inside each receive call, a publisher that sheds holds it while
     * it walks. */
    _Alignas(SB_LINE) _Atomic uint64_t pass;
    /* Blocked producers. */
    _Alignas(SB_LINE) _Atomic uint32_t space_waiters;
    struct sb_sem data_sem;  /* posted by a producer that finds the consumer asleep */
    struct sb_sem space_sem; /* posted by the consumer for producers waiting for room */
    _Alignas(4096) uint8_t ring[];
};

/* A record: the header word, the fields, then the payload (docs/mailbox-v2.md, 1). */
struct sb_rec {
    _Atomic uint64_t hw; /* lap 40 | 00 | inner 1 | units 16 | prio 3 | state 2 */
    uint64_t seq;
    uint64_t corr;
    uint64_t sent_ns;
    uint32_t len;
    uint32_t src;
    uint32_t src_gen; /* sender generation in bits 0..23, SHMBUS_MSG_* flags in 24..31 */
    uint32_t dst_gen;
    /* payload follows */
};

#define SB_UNIT      64u
#define SB_REC_HDR   48u
#define SB_POS_MASK  ((1ull << 48) - 1)
#define SB_LAP_MASK  ((1ull << 40) - 1)
#define SB_MAX_UNITS 65535u
#define SB_MAX_RING  (1u << 26) /* units per ring */
enum { SB_HW_ZERO = 0, SB_HW_CLAIMED = 1, SB_HW_READY = 2, SB_HW_DONE = 3 };
#define SB_HW(state, units, prio, lap)                                                             \
    ((((uint64_t)(lap)&SB_LAP_MASK) << 24) | ((uint64_t)(units) << 5) |                            \
     ((uint64_t)((prio)&7u) << 2) | (uint64_t)(state))
#define SB_HW_STATE(v)     ((unsigned)((v)&3u))
#define SB_HW_PRIO(v)      ((unsigned)(((v) >> 2) & 7u))
#define SB_HW_UNITS(v)     ((uint32_t)(((v) >> 5) & 0xffffu))
#define SB_HW_LAP(v)       ((v) >> 24)
/* A record of a batch after the first: the claim (and tail.last) began before it. A
 * consumer that stops at one has passed the start of a claim that may be the last one, whose
 * header the chain rule in claim() looks at: it publishes head (maybe_publish()). */
#define SB_HW_INNER        (1ull << 21)
#define SB_HW_PAD(v)       (((v) >> 22) & 3u) /* always 0 in a real header */
#define SB_TAIL(pos, last) (((uint64_t)(last) << 48) | ((pos)&SB_POS_MASK))
/* The pass lock's word: walker bit 63 | holder's generation 24 bits | client id 32 bits; 0
 * is free. The mailbox's own side holds it without the walker bit (its consumer as (id,
 * gen), a drain as (id, 0)); a shedding publisher with it, so that even a client shedding
 * its own mailbox is told apart from its consumer. */
#define SB_PASS(id, gen) ((((uint64_t)(gen)&0xffffffu) << 32) | (uint32_t)(id))
#define SB_PASS_WALKER   (1ull << 63)
#define SB_PASS_ID(w)    ((uint32_t)(w))
#define SB_PASS_GEN(w)   ((uint32_t)(((w) >> 32) & 0xffffffu))
/* Internal send flag (never accepted from a caller): this copy is a topic message to a
 * member that subscribed with SHMBUS_SUB_LOSSY, so a full mailbox may be shed. */
#define SB_SEND_SHED    0x80000000u
#define SB_TAIL_POS(t)  ((t)&SB_POS_MASK)
#define SB_TAIL_LAST(t) ((uint32_t)((t) >> 48))

/* Units a record of len payload bytes occupies. */
static inline uint32_t sb__rec_units(uint64_t len)
{
    return (uint32_t)((SB_REC_HDR + len + SB_UNIT - 1) / SB_UNIT);
}

_Static_assert(sizeof(struct sb_header) <= SB_HEADER_SIZE, "header fits its page");
_Static_assert(offsetof(struct sb_group, member) == 640,
               "a group's words keep their layout 3 places (the lease word took a spare one)");
_Static_assert(sizeof(struct sb_rec) == SB_REC_HDR, "record header is 48 bytes");
_Static_assert(sizeof(struct sb_mbox) == 4096, "mailbox header is one page");
_Static_assert(offsetof(struct sb_entry, sent) == SB_LINE,
               "identity (with kept_gen) fits its line: the entry size is as in version 1");

/*
 * Counters of one client id that outlive its clients (stats.c): never reset at a join, so
 * their sums over all ids are bus-wide counters that only grow while clients come and go.
 * The send line is added to by the id's sending threads (atomic adds); the receive part and
 * the from[] cells that follow the row are written only by the id's receiving thread (one
 * at a time per client, as for the entry's counters).
 */
struct sb_flow_row {
    _Alignas(SB_LINE) _Atomic uint64_t sent; /* messages sent by clients of this id */
    _Atomic uint64_t bytes_sent;
    _Alignas(SB_LINE) _Atomic uint64_t received; /* messages taken by clients of this id */
    _Atomic uint64_t bytes_received;
    _Atomic uint64_t lat_count;  /* latency samples, as in the entry's lat_hist */
    _Atomic uint64_t lat_sum_ns; /* their sum */
    _Alignas(SB_LINE) _Atomic uint64_t lat_hist[SHMBUS_LAT_BUCKETS];
    /* _Atomic uint64_t from[max_clients] follows: from[k] = messages taken from id k + 1 */
};

/* Sizes and offsets, computed locally from the four parameters. */
struct sb_layout {
    uint32_t max_clients, slots, msg_size;
    uint32_t ring_units, ring_shift; /* ring_units == 1 << ring_shift */
    uint64_t entry_size, mbox_size, registry_off, mbox_off, total_size;
    uint64_t flow_row_size, flows_off;
    uint64_t tap_off; /* the tap area (tap.c), after the flow rows */
    uint64_t group_size, group_off;
    uint64_t inflight_slot, inflight_size, inflight_off; /* redeliver.c */
    uint64_t tap_bulk_off; /* whole payloads for SHMBUS_TAP_WHOLE taps (tap.c), at the end */
};

struct shmbus_bus {
    struct sb_header *hdr;
    uint8_t *base;
    struct sb_layout lay; /* trusted copy: never re-read from the segment */
    int shmid;
    bool rdonly;
    char name[SHMBUS_NAME_MAX + 1];
    uid_t uid;
    struct sb_journal *j; /* durable bus: this process's journal (journal.c); else NULL */
    /* warm[id]: this mapping asked the kernel to map mailbox id's pages already (mbox_warm()
     * in mailbox.c). A byte each, so that the check on every claim is one load. Process-local;
     * relaxed, as threads may share the handle. */
    _Atomic uint8_t warm[SHMBUS_MAX_CLIENTS + 1];
};

struct shmbus_client {
    shmbus_bus *bus;
    struct sb_entry *e;
    struct sb_mbox *mb;
    struct sb_flow_row *row; /* its id's counters (stats.c), as sb__flow_row() gives them */
    uint32_t id;
    uint32_t gen;
    uint32_t kept_gen; /* taken over at join from a kept mailbox (0: none); accepted as gen */
    uint64_t spin_ns;
    uint64_t recv_count;          /* for latency sampling */
    uint64_t stuck_pos, stuck_ns; /* receiver: h uncommitted since stuck_ns (0: not) */
    /* Receiver (one thread at a time): the private position (next unit to look at) and the
     * last head published (docs/mailbox-v2.md, 5). */
    uint64_t h, hpub;
    bool inherited; /* h came from a published head and no header has been read since */
    /* Receiver, on a durable bus: the deadline of the receive call in progress, for its
     * taken markers' wait for the journal's lock (journal.c lock_wait(); 0: none of its
     * own, UINT64_MAX: as long as it takes). */
    uint64_t jdl;
    /* Sender: per intent record, the mailbox and end of its last claim, for the chain
     * rule's fast path (our own claim's header is known to be there). */
    uint32_t last_mbox[SB_INTENTS];
    uint64_t last_end[SB_INTENTS];
    /* Receiver: positions of the records shmbus_recv_ref() lent and not released yet; h
     * never passes the oldest, so their bytes are neither zeroed nor reused. */
    uint32_t nheld;
    uint64_t held[SB_HELD];
    /* Sender: cached head per destination (index id - 1), a lower bound of the real one;
     * NULL until the first send. Several sending threads share it: stored with release and
     * loaded with acquire (mailbox.c refresh_head() and claim()). */
    _Atomic uint64_t *hcache;
    _Atomic uint32_t intent_busy; /* which of the entry's intent records a thread holds */
    /* Receiver: the message shmbus_peek() copied out and left in place, for
     * shmbus_consume(). Process-local; the checked copies read_at() made of the slot. */
    bool peek_valid;
    uint32_t peek_src_gen;
    uint64_t peek_pos;
    uint64_t peek_hw; /* its header word: still READY at the same lap for consume */
    struct shmbus_msg peek_msg;
    struct sb_evfd *evfd; /* shmbus_client_fd()'s socket, NULL until asked for (evfd.c) */
    /* Bit k: c subscribed to group k with SHMBUS_SUB_CONFIRM, so the receive records its
     * messages in c's in-flight table (redeliver.c). Relaxed: subscribe may run on another
     * thread; a receive that misses a fresh bit just does not record that message. */
    _Atomic uint64_t confirm;
    /* Receiver: c subscribed to some group with SHMBUS_SUB_LOSSY, so every receive call
     * holds the mailbox's pass lock (pass_held: it does now). Set once, never cleared. */
    _Atomic bool lossy;
    bool pass_held;
    /* Sender: per id (index id - 1), SB_LIVE_WORD(gen, when) of the last /proc look that
     * found it alive (sb__client_current_cached()); NULL until the first group send. */
    _Atomic uint64_t *_Atomic live;
};

/* A full barrier for the Dekker pairs (store flag; barrier; load the other side's word).
 * GCC's ThreadSanitizer rejects atomic_thread_fence; under it a seq_cst read-modify-write,
 * which x86 executes as a full barrier too, stands in. */
static inline void sb__full_fence(void)
{
#if defined(__SANITIZE_THREAD__)
    static _Atomic int tsan_fence;
    atomic_fetch_add_explicit(&tsan_fence, 0, memory_order_seq_cst);
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* The one-sided fences of the seqlock-style readers and writers (tap.c), as
 * sb__full_fence(): under GCC's ThreadSanitizer, which rejects atomic_thread_fence, a
 * seq_cst read-modify-write stands in (the threaded harness does not use taps). */
static inline void sb__fence_release(void)
{
#if defined(__SANITIZE_THREAD__)
    sb__full_fence();
#else
    atomic_thread_fence(memory_order_release);
#endif
}

static inline void sb__fence_acquire(void)
{
#if defined(__SANITIZE_THREAD__)
    sb__full_fence();
#else
    atomic_thread_fence(memory_order_acquire);
#endif
}

/* util.c */
int sb__layout(struct sb_layout *lay, uint32_t max_clients, uint32_t slots, uint32_t msg_size,
               uint64_t ring_bytes);
bool sb__valid_name(const char *name);
/* CLOCK_MONOTONIC in ns. Inline: every send stamps its message with it. */
static inline uint64_t sb__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
uint64_t sb__realtime_ns(void);
void sb__abs_deadline(struct timespec *ts, uint64_t ns_from_now);
/* CLOCK_MONOTONIC deadline of a timeout in ms: 0 for 0 (never wait), UINT64_MAX for < 0. */
uint64_t sb__deadline(int timeout_ms);

static inline struct sb_entry *sb__entry(const shmbus_bus *b, uint32_t id)
{
    return (struct sb_entry *)(b->base + b->lay.registry_off +
                               (uint64_t)(id - 1) * b->lay.entry_size);
}

static inline struct sb_mbox *sb__mbox(const shmbus_bus *b, uint32_t id)
{
    return (struct sb_mbox *)(b->base + b->lay.mbox_off + (uint64_t)(id - 1) * b->lay.mbox_size);
}

/* In-flight slot i (0..SB_INFLIGHT-1) of client id. */
static inline struct sb_inflight *sb__inflight(const shmbus_bus *b, uint32_t id, uint32_t i)
{
    return (struct sb_inflight *)(b->base + b->lay.inflight_off +
                                  (uint64_t)(id - 1) * b->lay.inflight_size +
                                  (uint64_t)i * b->lay.inflight_slot);
}

/* Group slot k (0..SB_GROUPS-1). */
static inline struct sb_group *sb__group(const shmbus_bus *b, uint32_t k)
{
    return (struct sb_group *)(b->base + b->lay.group_off + (uint64_t)k * b->lay.group_size);
}

/* The unit at position pos of mailbox mb (masked: always inside the ring). */
static inline struct sb_rec *sb__unit(const shmbus_bus *b, struct sb_mbox *mb, uint64_t pos)
{
    uint64_t idx = pos & (uint64_t)(b->lay.ring_units - 1);
    return (struct sb_rec *)(mb->ring + idx * SB_UNIT);
}

static inline bool sb__destroyed(const shmbus_bus *b)
{
    return atomic_load_explicit(&b->hdr->state, memory_order_relaxed) != SB_BUS_READY;
}

/* Is client id a live destination? 0 with *gen its generation, -EINVAL (no such id),
 * -ECONNRESET (being cleaned: it died) or -EHOSTUNREACH. Inline: every send asks. */
static inline int sb__dest_state(const shmbus_bus *b, uint32_t id, uint32_t *gen)
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

/* bus.c */
struct shmid_ds;
/* The one orphan rule (bus.c and registry.c): a shmbus segment of ours, created by us,
 * that no process is attached to (ds counted without the caller) and that the key file
 * recorded in its header does not name. Nobody can reach it by name or is using it. */
bool sb__segment_orphan(int shmid, const struct shmid_ds *ds, const struct sb_header *h);
/* Call fn for every segment of ours that starts with a shmbus header (a copy, and ds read
 * after our look was detached). Returns the sum of fn's returns, or -errno. */
typedef int (*sb__segment_fn)(int shmid, const struct shmid_ds *ds, const struct sb_header *h,
                              void *arg);
int sb__each_segment(sb__segment_fn fn, void *arg);
/* shmbus_clean(): 1 if bus name's key file names no segment any more (removed unless
 * dry_run; path gets its path), else 0 or an error. */
int sb__clean_key(const char *name, int dry_run, char *path, size_t size);

/* sem.c */
void sb__sem_init(struct sb_sem *s);
void sb__sem_post(struct sb_sem *s);
/* 0 when posted (or when the value was over `most`, a scribbled word: then reset to 0),
 * -ETIMEDOUT at abs_monotonic, -EINTR when a signal handler ran. */
int sb__sem_wait_until(struct sb_sem *s, const struct timespec *abs_monotonic, uint32_t most);

/* proc.c */
uint64_t sb__proc_start_time(pid_t pid); /* 0 if unknown or gone */
bool sb__proc_alive(pid_t pid, uint64_t start_time);

/* registry.c */
bool sb__entry_alive(const struct sb_entry *e, uint64_t state);
uint32_t sb__kept_gen(const struct sb_entry *e, uint64_t state);
int sb__maybe_reap(shmbus_bus *b);
void sb__note_dropped(struct sb_entry *e, uint64_t n);
/* Is client id (1..max_clients) joined with generation gen? With check_process, is its
 * process also alive (the registry's one liveness rule)? */
bool sb__client_current(shmbus_bus *b, uint32_t id, uint32_t gen, bool check_process);
/* As sb__client_current(b, id, gen, true), as seen by sender c: the process is re-read
 * from /proc at most every SB_LIVE_RECHECK_NS per id (group sends look at every member on
 * every call, and a /proc read costs microseconds). A member that died within that window
 * still counts, as one that dies just after any check does. */
#define SB_LIVE_RECHECK_NS 1000000ull
bool sb__client_current_cached(shmbus_client *c, uint32_t id, uint32_t gen);

/* group.c */
/* Client id (generation gen) leaves the bus or was found dead: end its memberships and its
 * leaderships. Idempotent; CAS only on words that still name (id, gen). */
void sb__groups_forget(shmbus_bus *b, uint32_t id, uint32_t gen);
/* Slot of group `name`, created if `create`: 0..SB_GROUPS-1, or -ENOENT (absent, and not
 * create), -ENOSPC (table full), -EBUSY (a live claimer stalls), -EINVAL (bad name). */
int sb__group_find(shmbus_bus *b, const char *name, bool create);
/* The current member of group slot k with the fewest messages waiting (a work queue's
 * choice); 0 if none. *gen gets its generation. */
uint32_t sb__group_pick(shmbus_bus *b, uint32_t k, uint32_t *gen);

/* redeliver.c */
/* The receive hook: c takes group message *m (payload data, still in its ring): record it
 * in c's in-flight table if c confirms that group. 0, or -ENOBUFS (table full: not taken). */
int sb__inflight_put(shmbus_client *c, const struct shmbus_msg *m, uint32_t src_gen,
                     const void *data);
static inline bool sb__confirms(shmbus_client *c, const struct shmbus_msg *m)
{
    return (m->flags & SHMBUS_MSG_GROUP) && m->corr < SB_GROUPS &&
           ((atomic_load_explicit(&c->confirm, memory_order_relaxed) >> m->corr) & 1u);
}
/* Client id (generation gen, kept: the kept generation it took over, or 0) died or leaves;
 * its entry is CLEANING by the caller. Redeliver its in-flight messages, and with `ring`
 * the group messages waiting in its mailbox (dropping the rest, as sb__mbox_drain()).
 * Returns true when done; false when some message found no member able to take it now and
 * may_park: the caller leaves the entry for the next reap. Without may_park such messages
 * are dropped. *dropped gets how many were dropped. */
bool sb__salvage(shmbus_bus *b, uint32_t id, uint32_t gen, uint32_t kept, bool ring, bool may_park,
                 uint64_t *dropped);
/* An sb__drain_fn for a receiving client (arg): a group message stamped for an earlier
 * client of its id is redelivered (0), anything else dropped (1). */
int sb__stray(void *arg, const struct shmbus_msg *m, uint32_t src_gen, uint32_t dst_gen,
              const void *data);

/*
 * Test-only hook. A test binary may define sb__test_point() to stop or kill the process at a
 * named point inside a critical section (tests/test_crash.c does). In every real program the
 * weak symbol is undefined: sb__tp() is one compare of its address with NULL, no call.
 */
enum {
    SB_TP_RESERVED = 1,
    SB_TP_BATCH_PART = 2,
    SB_TP_JOINING = 3,
    SB_TP_CLEANING = 4,
    SB_TP_LEAVING = 5,
    SB_TP_CREATING = 6,
    SB_TP_AHEAD = 7,         /* a durable send batch wrote its records ahead, placed none yet */
    SB_TP_JOURNAL_WRITE = 8, /* a journal write holding the file's shared lock */
    SB_TP_COMPACT_EXCL = 9   /* a compaction holding the file's exclusive lock */
};
void sb__test_point(int where) __attribute__((weak));
static inline void sb__tp(int where)
{
    if (sb__test_point != NULL)
        sb__test_point(where);
}

/* Post sem once for each of w waiters, w as read from the segment: a scribbled count must
 * not keep us posting for billions of rounds. A waiting sender holds one of its client's
 * intent records, so there are never more than max_clients * SB_INTENTS of them. */
static inline void sb__post_waiters(const shmbus_bus *b, struct sb_sem *sem, uint32_t w)
{
    uint64_t most = (uint64_t)b->lay.max_clients * SB_INTENTS;
    for (uint64_t k = 0; k < w && k < most; k++)
        sb__sem_post(sem);
}

/* evfd.c: the event-loop descriptor. sb__evfd_wake() is the sender's hook, called at the
 * end of wake_consumer(), after the commit: a system call only when the
 * receiver armed its descriptor. */
struct sb_evfd;
void sb__evfd_notify(shmbus_bus *b, struct sb_mbox *mb);
void sb__evfd_close(shmbus_client *c);
/* Remove the event-loop sockets of bus `bus` left in the runtime directory (dir_fd). */
void sb__evfd_remove_all(int dir_fd, const char *bus);
static inline void sb__evfd_wake(shmbus_bus *b, struct sb_mbox *mb)
{
    /* seq_cst: with the commit CAS before it (seq_cst, in commit()), the sender's half of
     * the Dekker pair with the receiver's store of fd_armed + sb__full_fence() in
     * shmbus_client_arm(), as for sleeping in wake_consumer(). The exchange makes one sender
     * (of many that saw 1) send the datagram. */
    if (atomic_load_explicit(&mb->fd_armed, memory_order_seq_cst) &&
        atomic_exchange_explicit(&mb->fd_armed, 0, memory_order_relaxed))
        sb__evfd_notify(b, mb);
}

/* stats.c: bus-wide counters and per-pair counts (see struct sb_flow_row). Counted by the
 * send and receive paths of mailbox.c, once per send call and once per run of messages
 * taken from one sender, in the client's row (shmbus_client.row). */
/* One latency sample of a message taken by a client whose row is r, `ns` from its send (as
 * the entry's lat_hist counts it). */
void sb__stats_latency(struct sb_flow_row *r, uint64_t ns);

static inline struct sb_flow_row *sb__flow_row(const shmbus_bus *b, uint32_t id)
{
    return (struct sb_flow_row *)(b->base + b->lay.flows_off +
                                  (uint64_t)(id - 1) * b->lay.flow_row_size);
}

static inline _Atomic uint64_t *sb__flow_cell(struct sb_flow_row *r, uint32_t src)
{
    return (_Atomic uint64_t *)((uint8_t *)r + sizeof(*r)) + (src - 1);
}

/* Single-writer add (the receiving thread's counters): a load and a store, no locked
 * instruction. */
static inline void sb__bump(_Atomic uint64_t *ctr, uint64_t n)
{
    atomic_store_explicit(ctr, atomic_load_explicit(ctr, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* n messages, `bytes` in all, sent by a client whose row is r. Atomic adds: every sending
 * thread of the id adds here. Inline: every send calls it. */
static inline void sb__stats_sent(struct sb_flow_row *r, uint64_t n, uint64_t bytes)
{
    atomic_fetch_add_explicit(&r->sent, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->bytes_sent, bytes, memory_order_relaxed);
}

/* n messages, `bytes` in all, taken from src by a client whose row is r. A peer wrote src:
 * every caller has checked it is an id (1..max_clients) already, with the record's other
 * fields, and drops the record otherwise (read_at(), recv_fast(), take_run()). Inline: the
 * receive path calls it for every message or run. */
static inline void sb__stats_taken(struct sb_flow_row *r, uint32_t src, uint64_t n, uint64_t bytes)
{
    sb__bump(&r->received, n);
    sb__bump(&r->bytes_received, bytes);
    sb__bump(sb__flow_cell(r, src), n);
}

/*
 * tap.c: the passive view. The control block starts the tap area; the slots follow it.
 * sb__tap_on() is the senders' one branch: one relaxed load of a line written only when a
 * tap opens or closes.
 */
#define SB_TAP_MAX      8u           /* taps open at once on one bus */
#define SB_TAP_SLOTS    1024u        /* tap ring positions (a power of two) */
#define SB_TAP_STUCK_NS 100000000ull /* a claimed tap slot not written by then is missed */
#define SB_TAP_BULK     (8u << 20)   /* the bulk ring of whole payloads (a power of two) */
struct sb_tap_ctl {
    _Alignas(SB_LINE) _Atomic uint64_t mask; /* bit i: watcher[i] is in use */
    struct {
        _Atomic uint64_t pid;
        _Atomic uint64_t start_time;
    } watcher[SB_TAP_MAX];
    _Atomic uint64_t whole; /* bit i: watcher[i] wants whole payloads (SHMBUS_TAP_WHOLE) */
    _Alignas(SB_LINE) _Atomic uint64_t head; /* the next tap position to claim */
    _Atomic uint64_t bulk_head;              /* the next byte of the bulk ring to claim */
    _Alignas(SB_LINE) _Atomic uint32_t sleepers;
    struct sb_sem sem; /* posted by a sender that finds a reader asleep */
};
uint64_t sb__tap_size(void);
void sb__tap_copy(shmbus_bus *b, uint32_t src, uint32_t dst, uint64_t seq, uint64_t corr,
                  uint64_t sent_ns, const void *data, size_t len, unsigned prio, unsigned mflags);
void sb__tap_reap(shmbus_bus *b);
static inline bool sb__tap_on(const shmbus_bus *b)
{
    const struct sb_tap_ctl *ctl = (const struct sb_tap_ctl *)(b->base + b->lay.tap_off);
    return atomic_load_explicit(&ctl->mask, memory_order_relaxed) != 0;
}

/*
 * journal.c: durable buses. Every hook is behind `bus->j != NULL`, the one branch a bus
 * without a journal pays. Records are written by one writev(2) per send (or send batch)
 * and per receive (or receive batch: one marker per run) on an O_APPEND file.
 */
struct sb_journal;
/* Creating a bus (bus.c, before READY): dur NULL makes no journal. Otherwise open or make
 * the journal in dur->dir, rebuild mailboxes and registry entries from it into the new
 * segment b (b->base and b->lay set, nothing published yet), fill the header's journal
 * control, and open b->j. */
int sb__journal_create(shmbus_bus *b, const struct shmbus_durable *dur);
/* bus.c: shmbus_bus_open(), with the durable options (NULL: none) used when creating. */
int sb__bus_open(const char *name, const struct shmbus_bus_opts *opts,
                 const struct shmbus_durable *dur, unsigned flags, shmbus_bus **out);
/* Attaching to an existing bus (bus.c): copy and check the header's journal control and,
 * if the bus is durable and not attached read-only, open the journal file into b->j. */
int sb__journal_attach(shmbus_bus *b);
void sb__journal_close(shmbus_bus *b);
/* A sender: records for n messages to dst, seqs seq0.., written before they are committed.
 * flags: the send flags (SHMBUS_SEND_SYNC); deadline: the send's (0: it does not wait),
 * for the wait for the journal's lock. 0 or -ENOSPC / -ETIMEDOUT / -EAGAIN / -errno; then
 * nothing is accepted: nothing written but possibly a torn fragment, which a rebuild skips,
 * or records written and cancelled (a failed flush). */
int sb__journal_msgs(shmbus_client *c, uint32_t dst, const struct shmbus_iov *msgs, size_t n,
                     unsigned prio, unsigned mflags, uint64_t seq0, uint64_t corr, unsigned flags,
                     uint64_t deadline);
/* A receiver takes message m (sender generation src_gen): its taken marker, waiting for the
 * journal's lock until c->jdl. */
int sb__journal_taken(shmbus_client *c, const struct shmbus_msg *m, uint32_t src_gen);
/* A receive batch takes runs of messages: for each, count consecutive seqs from seq of one
 * (src, src_gen). One marker per run, all in one write; 0 or -errno (nothing taken then). */
#define SB_TAKEN_RUNS 64 /* runs one batch marker write holds at most */
struct sb_taken_run {
    uint32_t src, src_gen;
    uint64_t seq;
    uint32_t count; /* >= 1 */
};
int sb__journal_taken_runs(shmbus_client *c, const struct sb_taken_run *runs, size_t n);
/* A sender whose journaled message was not delivered after all (its claim was skipped). */
void sb__journal_cancel(shmbus_client *c, uint64_t seq, uint32_t count);

/* mailbox.c */
/* Drain mailbox mb as its consumer (a cleaner of a dead receiver, or a leaver): drop every
 * message up to the first claim with a live writer, publish head. Returns how many. */
uint64_t sb__mbox_drain(shmbus_bus *b, struct sb_mbox *mb);
/* sb__mbox_drain() asking fn about each READY record that passes the checks (m filled as a
 * receive would, dst_gen the stamp, data the payload in place): fn returns 1 to drop it
 * (counted in the return), 0 when it took care of it, < 0 to stop the drain there
 * (*stopped set; the record and the rest stay for the next consumer). With fn, *stopped is
 * also set when the drain ends at a live writer's claim: a record committed after the walk
 * must be asked about by a later drain too. */
typedef int (*sb__drain_fn)(void *arg, const struct shmbus_msg *m, uint32_t src_gen,
                            uint32_t dst_gen, const void *data);
uint64_t sb__mbox_drain_each(shmbus_bus *b, struct sb_mbox *mb, sb__drain_fn fn, void *arg,
                             bool *stopped);
/* Put a copy of message *m (src_gen its sender's generation, data its payload) into the
 * mailbox of dst (only while joined with generation gen), flagged SHMBUS_MSG_REDELIVERED,
 * keeping its src, seq, corr, sent_ns and priority. c is the sending identity (whose intent
 * records name the claim). Never waits: -EAGAIN when there is no room. */
int sb__mbox_resend(shmbus_client *c, uint32_t dst, uint32_t gen, const struct shmbus_msg *m,
                    uint32_t src_gen, const void *data);
/* A cleaner: end a dead client's intents and wake the consumers they name. */
void sb__mbox_skip_intents(shmbus_bus *b, struct sb_entry *dead);
/* The mailbox's consumer (a leaver, or a cleaner of its dead owner): READY records stamped
 * from_gen get to_gen (a kept mailbox keeps one generation); does it hold a READY group
 * message (one that other members of its group could take)? */
void sb__mbox_restamp(shmbus_bus *b, struct sb_mbox *mb, uint32_t from_gen, uint32_t to_gen);
bool sb__mbox_holds_group(shmbus_bus *b, struct sb_mbox *mb);
/* The joining client becomes its mailbox's consumer: start at the published head. */
void sb__mbox_attach(shmbus_client *c);
/* The consumer publishes its private position (before it leaves). */
void sb__mbox_publish(shmbus_client *c);
/* Messages waiting in mailbox id (committed or claimed, not taken), by a walk of at most
 * the ring's units; a reader that is not the consumer, so only an estimate. */
uint32_t sb__mbox_depth(shmbus_bus *b, uint32_t id);
/* How many of the bus's largest messages one mailbox holds. */
uint32_t sb__mbox_capacity(const shmbus_bus *b);
/* The argument checks of the send family (shmbus_send()'s list), for group sends. */
int sb__send_check(shmbus_client *c, size_t len, unsigned flags, unsigned allowed, bool prio_ok);
/* One message to client dst, only if it is still joined with generation gen (group sends
 * address a member, not an id). mflags are SHMBUS_MSG_* flags, corr the header's corr. */
int sb__send_member(shmbus_client *c, uint32_t dst, uint32_t gen, const void *data, size_t len,
                    unsigned flags, unsigned mflags, uint64_t corr, uint64_t deadline);

#endif
