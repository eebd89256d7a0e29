/*
 * shmbus.h - a local message bus for Linux processes over System V shared memory.
 *
 * A *bus* is one System V shared memory segment, found by name through a key file in a
 * runtime directory. Processes attach to it with shmbus_bus_open() and *join* it as
 * clients with shmbus_join(). Every client owns a mailbox: a circular buffer in the
 * segment that many senders write into and its owner reads from. There is no daemon.
 *
 * Conventions (the same for every function below):
 *   - Calls return 0 or a count on success and a negative errno value on failure; they never
 *     set errno for the caller and never return -1 with errno. shmbus_strerror() gives text.
 *   - Timeouts are in milliseconds: -1 waits forever, 0 never waits.
 *   - The library installs no signal handler, never exits the process and never prints.
 *   - Handles are opaque. A shmbus_bus may be used from several threads at once. A
 *     shmbus_client may send from several threads at once; it must receive from one thread
 *     at a time (a mailbox has one consumer).
 *   - Anything read from the segment is treated as hostile: a peer that scribbles over the
 *     segment can make calls fail (-EBADMSG), never crash or hang the caller.
 *
 * Client ids are plain integers 1..max_clients, as in the classic clients ("client 3"),
 * because users type them on command lines; 0 means "choose for me" where it is accepted.
 */
#ifndef SHMBUS_H
#define SHMBUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMBUS_VERSION_MAJOR  0
#define SHMBUS_VERSION_MINOR  4
#define SHMBUS_VERSION_PATCH  0
#define SHMBUS_VERSION_STRING "0.4.0"

/* Limits. */
#define SHMBUS_NAME_MAX     31      /* bus and client names: [A-Za-z0-9._-], not "." or ".." */
#define SHMBUS_MAX_CLIENTS  4096    /* upper bound of shmbus_bus_opts.max_clients */
#define SHMBUS_MAX_MSG_SIZE 1048576 /* upper bound of shmbus_bus_opts.msg_size */
#define SHMBUS_MAX_SLOTS    1048576 /* upper bound of shmbus_bus_opts.slots */
#define SHMBUS_MAX_BUS_SIZE (64ull << 30) /* a bus's segment is at most 64 GiB (-EFBIG) */
#define SHMBUS_PRIO_LEVELS  8             /* priorities 0 (normal, lowest) .. 7 (highest) */
#define SHMBUS_LAT_BUCKETS  128           /* latency histogram buckets, see shmbus_hist_value() */

/* Defaults applied where shmbus_bus_opts holds 0. */
#define SHMBUS_DEFAULT_MAX_CLIENTS 64
#define SHMBUS_DEFAULT_SLOTS       256
#define SHMBUS_DEFAULT_MSG_SIZE    1024
#define SHMBUS_DEFAULT_MODE        0600

typedef struct shmbus_bus shmbus_bus;
typedef struct shmbus_client shmbus_client;

/* ------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------
 * Each function below lists every code it can return. What they mean:
 *   -EINVAL        a bad argument: NULL where a handle or buffer is needed, a bad name, an
 *                  option or id out of range, or a flag the call does not take (an unknown
 *                  bit, a flag of another call family, a priority above 7)
 *   -ENOMEM        out of memory (a handle could not be allocated)
 *   -EACCES/-EPERM permission: the runtime directory, key file or segment is not the
 *                  caller's (or its group bus's), or only the bus's owner may do this
 *   -ENOENT        no bus of that name (shmbus_bus_open without SHMBUS_OPEN_CREATE); also
 *                  a key file whose segment is gone (it is replaced, or removed by destroy)
 *   -EEXIST        the bus exists (SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL), or the client id
 *                  or name is taken
 *   -EPROTO        the segment the key file names is not a shmbus bus; left untouched
 *   -EPROTONOSUPPORT  a shmbus bus of an incompatible layout version
 *   -EUCLEAN       the key file is not a shmbus key file (not a regular file, or garbage);
 *                  left untouched (shmbus_bus_destroy_force() removes it)
 *   -ENOTDIR       the runtime directory is not a directory (or is a symbolic link)
 *   -ENAMETOOLONG  the runtime directory's path is too long
 *   -EFBIG         the options ask for a segment over SHMBUS_MAX_BUS_SIZE
 *   -ENOSPC        the system's shared memory limits (shmmni, shmall) are reached
 *   -EBUSY         another process holds the key directory's lock for seconds (stopped?)
 *   -EROFS         the bus was opened SHMBUS_OPEN_RDONLY and the call would write to it
 *   -EINTR         a signal handler ran while a blocking call waited (see "Signals" below)
 *   -EBADMSG       the segment's contents are corrupt (a peer wrote garbage); for a
 *                  durable bus also: the journal file its segment names is not there
 *   -EIDRM         the bus was destroyed while attached
 *   -EHOSTUNREACH  no client with that id or name is on the bus (or it left meanwhile)
 *   -ECONNRESET    the destination client died (it is cleaned up shortly after)
 *   -EMSGSIZE      message larger than the bus's msg_size (send), or buffer too small (recv)
 *   -EAGAIN        would block (mailbox full / empty, or SHMBUS_SEND_NONBLOCK)
 *   -ETIMEDOUT     the timeout passed
 *   -EUSERS        the bus has no free client slot
 *   -ENOMSG        shmbus_consume() has no peeked message to take
 * Calls that create or read files and segments (shmbus_bus_open, _destroy, _destroy_force,
 * _shmid, _names, shmbus_runtime_dir, shmbus_clean) can also pass on the errno of a failed
 * system call as it is (e.g. -EROFS, -EDQUOT or -EIO writing the key file, -ENOENT from a
 * removed working directory); their lists below say "-errno of the file system" for these.
 * -ESTALE is returned only by shmbus_send_fenced() and shmbus_fence_check() (an epoch older
 * than the name's current one): a key file naming a segment that is gone reads as -ENOENT.
 *   -ENOSPC        also: the bus's table of named groups (SHMBUS_GROUPS) is full
 *
 * Signals. Every call that can block (send, send_batch, broadcast, request, reply, recv,
 * recv_batch: their waits for room, for an acknowledgement, for data) returns -EINTR when a
 * signal handler runs while it sleeps, whatever SA_RESTART says. An interrupted wait for
 * room sends nothing and an interrupted receive takes nothing; a broadcast returns the
 * count it delivered before, if any; but an ACK send or a request interrupted while waiting
 * for the acknowledgement or the reply has already delivered its message. A signal that arrives
 * while the call is busy rather than asleep is seen at its next sleep only if another one
 * comes: a program that must not miss one sets a flag in its handler and uses finite
 * timeouts (say 250 ms) in a loop that checks the flag.
 *
 * Hostile segments. Every wait honours its timeout whatever a peer wrote into the segment
 * (a scribbled semaphore or index costs at most the timeout plus a few milliseconds, and a
 * bounded amount of CPU), and -1 ("forever") waits sleep rather than spin.
 */

/* Text for a negative (or positive) errno value as returned by this library. Never NULL;
 * the string is static. Thread-safe. */
const char *shmbus_strerror(int err);

/* Library version as "MAJOR.MINOR.PATCH". Static string. */
const char *shmbus_version(void);

/* CRC-32C (Castagnoli) of len bytes, continuing from crc (0 to start; the result of one call
 * continues in the next). The checksum of journal records (durable buses) and of recordings
 * (`shmbus record`), for programs that read them. Thread-safe. */
uint32_t shmbus_crc32c(uint32_t crc, const void *data, size_t len);

/* ------------------------------------------------------------------------------------------
 * Buses
 * ------------------------------------------------------------------------------------------ */

/* Options fixed when a bus is created. A zero field takes its default. */
struct shmbus_bus_opts {
    uint32_t max_clients; /* client ids are 1..max_clients; default 64, at most 4096 */
    uint32_t slots;       /* sizes the default ring: room for about this many messages of
                           * msg_size bytes; a power of two >= 2; default 256 */
    uint32_t msg_size;    /* largest payload in bytes; default 1024 (the seed's BUF_LEN) */
    uint32_t mode;        /* permission bits of the segment and key file: 0600 (default) or
                           * 0660 for group access; other bits are refused (-EINVAL) */
    uint64_t ring_bytes;  /* each mailbox's ring in bytes: a power of two, a multiple of 64,
                           * room for at least two messages of msg_size (each takes
                           * 48 + len bytes rounded up to 64), else -EINVAL. 0: the default,
                           * slots x that record size rounded down to a power of two (256 KiB
                           * for the defaults). A message of any length up to msg_size fits
                           * as long as there is room: small ones take little. */
};

/* Flags of shmbus_bus_open(). Each call family has its own prefix and its own bits, so a
 * flag of another family (SHMBUS_SEND_*, SHMBUS_PRIO()) is refused with -EINVAL. */
#define SHMBUS_OPEN_CREATE 0x1u /* create the bus if it does not exist */
#define SHMBUS_OPEN_EXCL   0x2u /* with SHMBUS_OPEN_CREATE: fail with -EEXIST if it exists */
#define SHMBUS_OPEN_RDONLY 0x4u /* attach read-only (monitors): join and send are refused */

/*
 * Attach to the bus called `name`, creating it if flags has SHMBUS_OPEN_CREATE.
 *
 * The key file is <dir>/<name>.bus where dir is $SHMBUS_DIR (made absolute against the
 * working directory if relative), else $XDG_RUNTIME_DIR/shmbus, else /tmp/shmbus-<uid>; the
 * directory is created 0700 (whatever the umask) and must belong to the caller. The key
 * file records the segment's id and the bus's nonce; segments are created with IPC_PRIVATE,
 * so no other user can prepare one under a key in advance. On every attach the segment must
 * be owned and created by the directory's owner and be 0600/0660 (-EACCES otherwise).
 *
 * Group buses (mode 0660): the owner points $SHMBUS_DIR at a folder of theirs that the
 * group may read but nobody else may write (e.g. 0750, group G) and creates the bus there;
 * the segment is given the folder's group. A member of G sets the same $SHMBUS_DIR and
 * opens, joins, sends and receives; only the owner can create or destroy. A folder of
 * another user is trusted only when named by $SHMBUS_DIR, never as the default directory.
 *
 * `opts` (may be NULL for defaults) is used only when the bus is created. An existing bus is
 * never deleted or reset by this call; a key file whose segment is gone is replaced.
 *
 * On success *out is a handle the caller frees with shmbus_bus_close(). Blocks only while
 * another process is creating the same bus (at most 5 s, then -EBUSY). Thread-safe.
 * Errors: -EINVAL (bad name, opts out of range, out NULL, a flag other than
 * SHMBUS_OPEN_*, or SHMBUS_OPEN_CREATE with SHMBUS_OPEN_RDONLY), -EFBIG (over
 * SHMBUS_MAX_BUS_SIZE), -ENOENT (no such bus, or no runtime directory, without
 * SHMBUS_OPEN_CREATE), -EEXIST (SHMBUS_OPEN_EXCL), -EPROTO, -EPROTONOSUPPORT, -EUCLEAN,
 * -EBADMSG, -EACCES, -EBUSY, -ENOTDIR, -ENAMETOOLONG, -ENOMEM, -ENOSPC (segment too large
 * for the system, or no segment id left), and -errno of the file system.
 */
int shmbus_bus_open(const char *name, const struct shmbus_bus_opts *opts, unsigned flags,
                    shmbus_bus **out);

/* ---- durable buses (src/journal.c; docs/design.md, "Durable buses") -------------------
 *
 * A durable bus keeps every message it accepts in a journal under a directory until its
 * receiver has taken it, so that the messages outlive every process and a reboot.
 *
 * Accepted: a send to a durable bus returns 0 (or a count) only after its record was
 * written to the journal (write(2), and fdatasync() as the sync level says), and the record
 * is written before the message becomes visible to its receiver. A send that fails accepted
 * nothing.
 *
 * Taken: a message is taken when shmbus_recv(), shmbus_recv_batch(), shmbus_recv_ref(),
 * shmbus_consume() or the reply wait of shmbus_request() has written its taken marker to the
 * journal; they write it before they return the message, and a message once taken is never
 * delivered again (after a power cut: unless its marker had not reached the disk, see the
 * sync levels below). A process killed after the marker and before it used the message has
 * lost it (acknowledge-on-receive). To take only what was handled, use shmbus_peek(),
 * handle, then shmbus_consume(): a crash before the consume delivers the message again.
 * shmbus_peek() writes nothing.
 *
 * Rebuild: when every process and the segment are gone (a reboot, or kill -9 of everything
 * and `shmbus clean`), shmbus_bus_open_durable() with SHMBUS_OPEN_CREATE and the same
 * directory rebuilds the bus: every accepted message not taken waits, in its original
 * per-sender order, with its original src, seq and priority, in the mailbox of its
 * destination id, kept for the next client that joins with that id (as shmbus_leave_keep()
 * keeps one; join by id, not with id 0). Messages are delivered once: the rebuild writes a
 * fresh journal holding only them (flushed) and removes the old one. A torn or damaged
 * record is skipped and counted (shmbus_journal_stats()), never delivered.
 *
 * A client that leaves (shmbus_leave() too) or dies leaves its mailbox kept for the id's
 * next client, as shmbus_leave_keep() keeps one: what was not taken waits, in order. Except
 * a mailbox holding group messages (shmbus_send_group()): it is drained as on any bus, its
 * group messages going to the group's other members, and its other messages come back at
 * the next rebuild, after whatever the id's next client took meanwhile.
 *
 * Limits, stated rather than hidden: a rebuilt mailbox holds what fits in its ring; messages beyond it stay in the journal
 * for the next rebuild (counted in shmbus_journal_stats.deferred). Loans
 * (shmbus_loan()) are refused on a durable bus (-EOPNOTSUPP). Messages a send was still
 * writing when its process died may or may not be delivered after a rebuild (never twice).
 * The journal is compacted inline by the send or receive whose record makes it grow past
 * compact_bytes: that call takes as long as reading and rewriting the file. A process
 * stopped (SIGSTOP, a debugger) inside a journal write or a compaction holds the journal's
 * lock: other calls wait for it until their timeout, and at least a second, then fail with
 * -ETIMEDOUT (-EAGAIN for a call that does not wait), having accepted or taken nothing. The directory
 * is made 0700: a durable bus is for its owner's processes (group members of a 0660 bus
 * cannot open its journal: -EACCES). A directory that exists must be the caller's own and
 * not writable by group or others (else -EACCES, whoever opens the bus): anyone who can
 * create a file there could plant a journal that a rebuild or a replay would deliver.
 */
/* Sync levels (shmbus_durable.sync), and what a rebuild after a power cut or kernel crash
 * finds (docs/design.md, "What a power cut leaves"; in every case per-sender order holds,
 * with gaps where unflushed records were lost, and nothing unsent or damaged is delivered).
 * NONE: write(2) only; survives the death of every process, not a power cut or a kernel
 * crash: after one, only what the bus's last rebuild wrote is certain; messages sent since
 * may be lost and messages taken since delivered again. BATCH: group commit; whichever
 * sender or receiver writes to the journal more than SHMBUS_SYNC_BATCH_MS after the last
 * flush flushes it (fdatasync) for everyone; a send with SHMBUS_SEND_SYNC returns once the
 * batch holding its record is on disk; without it, a record reaches the disk within that
 * time if the bus keeps being used, else at the next journal write or shmbus_bus_close().
 * Taken markers are not waited for: after a power cut, a message sent without the flag
 * since the last flush may be lost, and one received since may be delivered again.
 * ALWAYS: every record (messages and taken markers) is on disk (fdatasync) before the call
 * that wrote it returns: after a power cut every message a send returned for is delivered
 * unless a receive returned it, and none a receive returned is delivered again (a call in
 * progress at the cut may or may not have counted). */
#define SHMBUS_SYNC_NONE       0
#define SHMBUS_SYNC_BATCH      1
#define SHMBUS_SYNC_ALWAYS     2
#define SHMBUS_SYNC_BATCH_MS   5
#define SHMBUS_JOURNAL_DIR_MAX 255 /* longest journal directory path */

struct shmbus_durable {
    const char *dir;        /* journal directory: an absolute path (created 0700 if missing) */
    unsigned sync;          /* SHMBUS_SYNC_* */
    uint64_t compact_bytes; /* compact the journal (drop what was taken) when it grows past
                             * this many bytes; 0: SHMBUS_COMPACT_DEFAULT; at least 4096 */
    uint64_t retain_bytes;  /* retention: compaction and rebuild keep taken messages, the */
    uint64_t retain_ns;     /* newest retain_bytes of them (records of 56 + len bytes) and
                             * those journaled in the last retain_ns nanoseconds (CLOCK_
                             * REALTIME), for shmbus_journal_scan() and `shmbus replay`;
                             * they are never delivered again by a rebuild. 0, 0: none */
};
#define SHMBUS_COMPACT_DEFAULT (64ull << 20)

/*
 * As shmbus_bus_open(), and if the bus is created here it is durable: its journal lives in
 * dur->dir, and every process that opens the bus later uses that directory and sync level
 * (the segment records them; dur is ignored when the bus exists already). If dir holds the
 * journal of an earlier incarnation of this bus, the new bus is rebuilt from it (see above)
 * before anyone can attach. Blocks while it reads and rewrites the journal (about the time
 * to read it and write what was not taken). Thread-safe.
 * Errors: those of shmbus_bus_open(), and -EINVAL (dur NULL, dir not absolute or longer
 * than SHMBUS_JOURNAL_DIR_MAX, bad sync level), -EPROTO (the journal in dir belongs to
 * another bus, or its header is not a journal header), -EPROTONOSUPPORT (a journal of
 * another format version), -EACCES (dir is another user's, or writable by group or
 * others), -ENOTDIR, -ENOSPC, and -errno of the file system for the journal.
 */
int shmbus_bus_open_durable(const char *name, const struct shmbus_bus_opts *opts,
                            const struct shmbus_durable *dur, unsigned flags, shmbus_bus **out);

/* What a durable bus's journal looks like, for tools and tests. */
struct shmbus_journal_stats {
    int durable;          /* 0: the bus keeps no journal (everything below is 0) */
    unsigned sync;        /* SHMBUS_SYNC_* */
    uint64_t epoch;       /* journal file number: grows at each rebuild and compaction */
    uint64_t rebuilt;     /* messages put back in mailboxes by the last rebuild */
    uint64_t deferred;    /* messages the last rebuild left in the journal (mailbox full) */
    uint64_t damaged;     /* records the last rebuild skipped: a bad CRC, never delivered */
    uint64_t torn;        /* torn records the last rebuild cut or skipped (a write cut short) */
    uint64_t syncs;       /* fdatasync() calls on the journal since the bus was created */
    uint64_t compactions; /* times the journal was compacted while the bus ran */
    uint64_t bytes;       /* size of the journal file in use (about) */
    char dir[SHMBUS_JOURNAL_DIR_MAX + 1];
};

/* Fill *out. Does not block. Thread-safe. Errors: -EINVAL (NULL), -EIDRM. */
int shmbus_journal_stats(shmbus_bus *bus, struct shmbus_journal_stats *out);

/* Detach from the bus and free the handle. Clients joined through this handle must have
 * left first (otherwise they are made to leave). The bus itself stays. NULL is a no-op. */
void shmbus_bus_close(shmbus_bus *bus);

/* Remove the bus called `name`: its segment and key file. Processes still attached keep
 * their mapping until they close it; their calls then fail with -EIDRM. Does not block
 * (beyond the directory lock, see shmbus_bus_open). Only the owner can (-EPERM).
 * Errors: -EINVAL (bad name), -ENOENT (no such bus; a key file whose segment is gone is
 * removed and also reported as -ENOENT), -EPROTO/-EPROTONOSUPPORT/-EBADMSG/-EUCLEAN (what is
 * there is not this bus, or is corrupt: left alone), -EACCES, -EPERM, -EBUSY, -ENOTDIR,
 * -ENAMETOOLONG, -ENOMEM, and -errno of the file system. */
int shmbus_bus_destroy(const char *name);

/* What a bus is, for tools. Filled by shmbus_bus_info(). */
struct shmbus_bus_info {
    char name[SHMBUS_NAME_MAX + 1];
    uint32_t max_clients, slots, msg_size, mode;
    uint32_t layout_version;
    uid_t creator_uid;
    pid_t creator_pid;
    int shmid;
    size_t segment_size; /* bytes */
    uint32_t attached;   /* processes attached now (the kernel's shm_nattch) */
    uint32_t live_clients;
    uint64_t created_ns; /* CLOCK_REALTIME at creation */
    uint64_t nonce;      /* random, chosen at creation: tells two incarnations apart */
    uint64_t ring_bytes; /* each mailbox's ring (see shmbus_bus_opts) */
};

/* Fill *info. Does not block. Thread-safe. Errors: -EINVAL (NULL), -EIDRM (the bus was
 * destroyed; *info is filled all the same). */
int shmbus_bus_info(shmbus_bus *bus, struct shmbus_bus_info *info);

/* The directory holding the key files (see shmbus_bus_open), written into buf: always an
 * absolute path (a relative $SHMBUS_DIR is taken against the working directory, so that
 * every later use means the same folder). Returns the length, -EINVAL (buf NULL),
 * -ENAMETOOLONG (longer than size - 1), or the -errno of getcwd() for a relative
 * $SHMBUS_DIR. Does not create it. */
int shmbus_runtime_dir(char *buf, size_t size);

/* Size in bytes of a bus created with these options, without creating it (-EINVAL if an
 * option is out of range, -EFBIG if the bus would exceed SHMBUS_MAX_BUS_SIZE). */
ssize_t shmbus_bus_size(const struct shmbus_bus_opts *opts);

/*
 * The names of the buses that have a key file in the runtime directory, written to
 * names[0..n-1] (sorted). Returns how many there are (may exceed n). Does not attach to them:
 * a name may belong to a bus whose segment is gone (shmbus_clean() removes such files).
 * No runtime directory means no bus: 0. Errors: -EINVAL (names NULL with n > 0), those of
 * shmbus_runtime_dir(), -EACCES, -ENOTDIR, -ENOMEM, and -errno of the file system.
 */
int shmbus_bus_names(char (*names)[SHMBUS_NAME_MAX + 1], size_t n);

/* Called by shmbus_clean() once for each stale object: `kind` is "segment", "key file" or
 * "client", `what` names it (bus name, path, shmid) and `why` says why it is stale. */
typedef void (*shmbus_clean_fn)(const char *kind, const char *what, const char *why, void *arg);

/*
 * Remove the current user's stale shmbus objects: buses no process is attached to that
 * still list clients, all of them dead (a crashed application); segments whose creator died
 * while creating them, and shmbus segments of ours that no key file names and no process
 * uses (their directory was wiped); key files whose segment is gone; and dead clients of
 * buses in use. A key file or segment it cannot recognise is left alone (see
 * shmbus_bus_destroy_force()). An idle bus (nobody attached, no client listed) is not stale: it was
 * made to last. With dry_run nothing is changed. Never touches a segment that is not a shmbus bus
 * or that belongs to another user. Returns the number of objects found stale (removed unless
 * dry_run). cb may be NULL. Thread-safe; may take a few ms per bus. Errors: those of
 * shmbus_bus_names(), and -ENOMEM; a bus that cannot be examined is skipped, not an error.
 */
int shmbus_clean(int dry_run, shmbus_clean_fn cb, void *arg);

/* Remove whatever the caller owns under bus name `name`, recognisable or not: the segment
 * its key file names (if the caller owns it: a bus, a corrupt bus, or any other segment),
 * the key file itself (whatever kind of file it is), and shmbus segments made for this
 * name that no key file names. cb (may be NULL) is told about each object, with what it
 * is, before it is removed (kind "segment" or "key file"). Returns the number of objects
 * removed, or -EINVAL (bad name), -ENOENT (there was none, or no runtime directory),
 * -EPERM (the runtime directory is not the caller's), -EACCES, -EBUSY, -ENOTDIR,
 * -ENAMETOOLONG, -errno of the file system. Thread-safe. */
int shmbus_bus_destroy_force(const char *name, shmbus_clean_fn cb, void *arg);

/* The shmid that bus `name`'s key file records, without attaching or checking the segment
 * (for tools that show what a broken bus is). Errors: -EINVAL (bad name), -ENOENT without
 * a key file (or runtime directory), -EUCLEAN if it is not a shmbus key file, -EACCES,
 * -ENOTDIR, -ENAMETOOLONG, -errno of the file system. */
int shmbus_bus_shmid(const char *name);

/* ------------------------------------------------------------------------------------------
 * Clients
 * ------------------------------------------------------------------------------------------ */

/*
 * Join the bus as client `id` (1..max_clients), or as the lowest free id if id is 0, with an
 * optional `name` (NULL for none; unique on the bus). The new client's mailbox starts empty.
 * A slot held by a client whose process died is reclaimed first. The mailbox's pages are
 * mapped into the process at once (madvise(2), rings up to 1 MiB), not one fault at a time.
 *
 * On success *out is a handle freed by shmbus_leave(). Does not block. Thread-safe.
 * Errors: -EINVAL (bus or out NULL, id out of range, bad name), -EEXIST (id or name taken by
 * a live client), -EUSERS (no free id), -EROFS (bus opened SHMBUS_OPEN_RDONLY), -EIDRM,
 * -ENOMEM.
 */
int shmbus_join(shmbus_bus *bus, uint32_t id, const char *name, shmbus_client **out);

/* Leave the bus: the id becomes free, messages still in the mailbox are discarded (on a
 * durable bus: kept, as shmbus_leave_keep() does, see shmbus_bus_open_durable()), senders
 * get -EHOSTUNREACH from then on. Frees the handle. NULL is a no-op. Must not race with
 * other calls on the same client. */
void shmbus_leave(shmbus_client *c);

/*
 * Leave the bus and keep the mailbox for the next client of this id: as shmbus_leave(), but
 * the messages still in the mailbox (including one peeked and not consumed) stay there, in
 * order, uncounted as dropped. The id is free meanwhile: sends to it fail with -EHOSTUNREACH
 * as for any free id, and senders blocked on its full mailbox get that error too; a sender
 * already waiting for the ACK of a kept message keeps waiting (up to its timeout) until the
 * next client takes it.
 *
 * The next shmbus_join() of that id (by that id, or with id 0 under the name this client
 * had) takes the kept messages over: it receives them before newer ones of the same
 * priority, with priorities as usual, and ACKs their senders when it takes them. A join with
 * id 0 and another name prefers ids with no kept mailbox; if only kept ones are free it
 * takes one and drops what was kept (counted in `dropped`). shmbus_list() shows a kept
 * mailbox that holds messages as SHMBUS_CLIENT_KEPT. Keeping is only ever asked for (but on
 * a durable bus, which keeps every mailbox): a client whose process dies (even inside this
 * call) is cleaned up and its mailbox drained as before. A kept mailbox goes with its bus when the bus is destroyed.
 *
 * Limits: a message whose sender was still writing it while the mailbox changed hands twice
 * (keep, take over, keep again) may be dropped; replies to this client's requests that
 * arrive later are received by the next client as ordinary messages.
 *
 * Frees the handle in every case (the handle is invalid afterwards, as after
 * shmbus_leave()). Never blocks. Must not race with other calls on the same client; other
 * clients and processes may use the bus meanwhile. Returns 0, -EINVAL (c NULL), or
 * -EHOSTUNREACH / -ECONNRESET when the client was no longer on the bus (a cleaner decided it
 * had died): then nothing was kept.
 */
int shmbus_leave_keep(shmbus_client *c);

/* The client's id (1..max_clients). */
uint32_t shmbus_client_id(const shmbus_client *c);

/* The bus a client belongs to. */
shmbus_bus *shmbus_client_bus(const shmbus_client *c);

/* Spin for up to `usec` microseconds before sleeping: in shmbus_recv() while the mailbox is
 * empty, and in a send that finds the destination's mailbox full (default 0: sleep at once).
 * Spinning trades a core for latency and throughput; useful only with a core to spare. */
void shmbus_client_set_spin(shmbus_client *c, unsigned usec);

/*
 * Event loops (poll, epoll, select, asyncio, libuv): a descriptor that becomes readable
 * when messages may be waiting.
 *
 * shmbus_client_fd() returns the client's descriptor, creating it on the first call (a Unix
 * datagram socket bound at <runtime dir>/<bus>.<id>.sock, mode 0600, or 0660 on a group
 * bus). The handle owns it: do not close or read it; shmbus_leave() / shmbus_leave_keep()
 * close it and remove the file. Later calls return the same descriptor. It is non-blocking
 * and close-on-exec. Errors: -EINVAL (c NULL), -EIDRM, -ENAMETOOLONG (the path does not fit
 * a socket address: use a shorter $SHMBUS_DIR), -EACCES (the runtime directory is not
 * writable, e.g. a group member on a group bus), -EEXIST (something other than a socket
 * has that name), -EMFILE/-ENOMEM.
 *
 * Senders touch the descriptor only while it is *armed*, so an unarmed client costs its
 * senders nothing. The protocol, one turn of the loop:
 *
 *     int fd = shmbus_client_fd(c);              once
 *     for (;;) {
 *         shmbus_client_arm(c);                  drain fd, arm, look at the mailbox
 *         poll/epoll_wait on fd (POLLIN)         readable: messages may be waiting
 *         while ((n = shmbus_recv(c, &m, buf, cap, 0)) >= 0)   take them, timeout 0
 *             handle(...);                       until -EAGAIN
 *     }
 *
 * shmbus_client_arm() empties the descriptor, arms it, then looks at the mailbox. It returns
 * 0 when the mailbox was empty (a later message makes fd readable), or 1 when a message was
 * already waiting: then it has disarmed and made fd readable itself, so a caller may as well
 * receive at once. Either way, a message that arrives at any moment before, during or after
 * the call is never missed: after arm, fd becomes readable once for whatever is waiting.
 * Readiness may be spurious (a message taken meanwhile, a notification from an earlier
 * turn): receive with timeout 0 and treat -EAGAIN as "nothing yet". Arming is edge-like:
 * one notification per arm, so call it again after draining.
 *
 * Receive side: shmbus_client_fd() and shmbus_client_arm() follow the one-receiving-thread
 * rule (not concurrently with shmbus_recv() etc. on the same client). Arming keeps a
 * message shmbus_peek() returned for shmbus_consume(). Neither call blocks; arm makes one
 * to three system calls. A message held back by a sender that died in the middle of its
 * send is released by the periodic reap (see shmbus_reap()), which an event-loop program
 * should call every second or so when it never blocks in shmbus_recv().
 * arm's errors: -EINVAL (c NULL), -EBADF (no shmbus_client_fd() yet), -EIDRM.
 */
int shmbus_client_fd(shmbus_client *c);
int shmbus_client_arm(shmbus_client *c);

/* The id of the live client called `name`, -EHOSTUNREACH if there is none, or -EINVAL (bus
 * NULL, bad name). Does not block. Thread-safe. */
int shmbus_lookup(shmbus_bus *bus, const char *name);

/* Per-client counters, kept in the segment. Updated with relaxed atomics: each is exact,
 * but a snapshot of several is not taken at one instant. */
struct shmbus_counters {
    uint64_t sent;     /* messages this client sent (broadcast counts each copy) */
    uint64_t received; /* messages this client took from its mailbox */
    uint64_t bytes_sent;
    uint64_t bytes_received;
    uint64_t full_waits; /* times a send found the destination mailbox full and waited */
    uint64_t wakeups;    /* times this client's recv slept and was woken */
    uint64_t spins;      /* recv calls that found a message while spinning */
    uint64_t dropped;    /* messages discarded: torn by a dead sender, or meant for a
                          * previous owner of this id */
    uint64_t lat_hist[SHMBUS_LAT_BUCKETS]; /* send-to-receive latency of sampled messages:
                                            * every one shmbus_recv() waited for, one in 16
                                            * of those found at once, one per batch */
    uint64_t lost; /* topic messages publishers dropped unread from this client's mailbox
                    * because it subscribed with SHMBUS_SUB_LOSSY and it was full */
};

/* Client states reported by shmbus_list(). */
enum shmbus_client_state {
    SHMBUS_CLIENT_LIVE = 1,    /* joined, its process is alive */
    SHMBUS_CLIENT_DEAD = 2,    /* joined, its process is gone; not yet cleaned up */
    SHMBUS_CLIENT_JOINING = 3, /* in the middle of shmbus_join() */
    SHMBUS_CLIENT_KEPT = 4,    /* free id whose mailbox was kept (shmbus_leave_keep()) and
                                * holds messages for its next client; pid 0, name and
                                * counters those of the client that left */
};

struct shmbus_client_info {
    uint32_t id;
    enum shmbus_client_state state;
    char name[SHMBUS_NAME_MAX + 1];
    pid_t pid;
    uint32_t depth;     /* messages in its mailbox now */
    uint32_t capacity;  /* mailbox capacity */
    uint64_t joined_ns; /* CLOCK_REALTIME when it joined */
    struct shmbus_counters counters;
};

/*
 * List the clients of the bus (live, dead not yet cleaned, joining, and free ids with a kept
 * mailbox that holds messages) into out[0..n-1] in id
 * order. Returns how many there are, which may exceed n (then only n were written); pass
 * n = 0 to count. Checks each client's process (one /proc read each) and reports dead ones
 * as SHMBUS_CLIENT_DEAD without cleaning them. Does not block. Thread-safe.
 * Errors: -EINVAL (bus NULL, or out NULL with n > 0).
 */
int shmbus_list(shmbus_bus *bus, struct shmbus_client_info *out, size_t n);

/* Clean up every client whose process has died: reclaim its id, discard its mailbox, skip
 * slots it reserved but never filled. Returns how many were cleaned. Exactly one process
 * cleans a given client; one that dies while cleaning leaves it for the next. The library
 * also does this by itself about once a second from blocked calls. Thread-safe.
 * Errors: -EINVAL (bus NULL), -EROFS (bus opened SHMBUS_OPEN_RDONLY). */
int shmbus_reap(shmbus_bus *bus);

/* ------------------------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------------------------ */

/*
 * Flags of the send calls (shmbus_send, shmbus_send_batch, shmbus_broadcast, shmbus_request,
 * shmbus_reply). The priority travels in the same word: SHMBUS_PRIO(n), n = 0 (normal, the
 * lowest; also what no SHMBUS_PRIO() means) .. 7 (highest, taken first). These bits overlap
 * neither each other nor the SHMBUS_OPEN_* flags: a send given an open flag, an unknown
 * bit or a priority above 7 fails with -EINVAL and sends nothing.
 */
#define SHMBUS_SEND_NONBLOCK 0x100u /* fail with -EAGAIN at once if the mailbox is full */
#define SHMBUS_SEND_ACK      0x200u /* return only once the receiver has taken the message */
/* SHMBUS_SEND_SYNC: on a durable bus of sync level batch, return only once the journal
 * record is on disk (see SHMBUS_SYNC_BATCH); on other buses and levels it changes nothing.
 * SHMBUS_SEND_REPLAY: flag the message SHMBUS_MSG_REPLAYED (what `shmbus replay` sends). */
#define SHMBUS_SEND_SYNC   0x400u
#define SHMBUS_SEND_REPLAY 0x800u
#define SHMBUS_PRIO_SHIFT  12
#define SHMBUS_PRIO_MASK   0xf000u /* 4 bits, so that 8..15 are seen (and refused) */
/* Priority n as send flags. Not masked: n = 8..15 lands in SHMBUS_PRIO_MASK and n >= 16 on
 * unknown bits, so any n above 7 is refused (-EINVAL) rather than silently cut. */
#define SHMBUS_PRIO(n) ((unsigned)(n) << SHMBUS_PRIO_SHIFT)

/* The priority a send-flags word asks for (0..15; above 7 a send refuses it). */
static inline unsigned shmbus_flags_prio(unsigned flags)
{
    return (flags & SHMBUS_PRIO_MASK) >> SHMBUS_PRIO_SHIFT;
}

/* Flags carried by a received message (shmbus_msg.flags). */
#define SHMBUS_MSG_ACK       0x1u  /* the sender waits for this message to be taken */
#define SHMBUS_MSG_REQUEST   0x2u  /* a request: answer it with shmbus_reply() */
#define SHMBUS_MSG_REPLY     0x4u  /* a reply; corr is the request's seq */
#define SHMBUS_MSG_BROADCAST 0x8u  /* sent with shmbus_broadcast() */
#define SHMBUS_MSG_TOPIC     0x10u /* sent with shmbus_publish(); corr is the group's index */
#define SHMBUS_MSG_GROUP     0x20u /* sent with shmbus_send_group(); corr is the group's index */
#define SHMBUS_MSG_FENCED    0x40u /* sent with shmbus_send_fenced(); corr is the epoch */
#define SHMBUS_MSG_REPLAYED  0x80u /* sent again from a journal (SHMBUS_SEND_REPLAY) */
/* A work-queue message (SHMBUS_MSG_GROUP too) given again to another member because the
 * member it first went to died (or left) before taking it, or took it and never confirmed
 * it with shmbus_done(). Its src, seq, corr and sent_ns are the original send's. The same bit
 * as SHMBUS_MSG_REPLAYED (the eight flag bits are all taken): both say "this message was
 * sent before and may have been handled already"; SHMBUS_MSG_GROUP tells a redelivery from
 * the replay of a direct message. */
#define SHMBUS_MSG_REDELIVERED SHMBUS_MSG_REPLAYED

/* The header of a received message. */
struct shmbus_msg {
    uint32_t src;     /* sender's client id */
    uint32_t dst;     /* receiver's client id */
    uint64_t seq;     /* sender's sequence number: 1, 2, ... per sending client */
    uint64_t corr;    /* for a reply, the seq of the request it answers; else 0 */
    uint64_t sent_ns; /* CLOCK_MONOTONIC time of the send */
    uint32_t len;     /* payload length in bytes */
    uint8_t prio;     /* 0..7 */
    uint8_t flags;    /* SHMBUS_MSG_* */
};

/*
 * Send len bytes to client `dst`. flags: SHMBUS_PRIO(n) (0..7; higher is taken first; none
 * means 0), SHMBUS_SEND_NONBLOCK, SHMBUS_SEND_ACK, or-ed together.
 *
 * The payload is copied into the destination's mailbox. If the mailbox is full the call
 * waits up to timeout_ms for room (never drops): with SHMBUS_SEND_NONBLOCK it fails at once
 * with -EAGAIN. With SHMBUS_SEND_ACK it then also waits, within the same timeout, until the
 * receiver has taken the message (-ETIMEDOUT if it did not; the message may still be taken
 * later). ACK sends from one client must not run in several threads at once.
 *
 * Sending to yourself is allowed. The fast path (room in the mailbox, receiver not asleep)
 * makes no system call, except that the first send through a bus handle to a destination
 * maps its mailbox's pages at once (one madvise(2), tens of microseconds) so that later
 * sends take no page faults. Thread-safe for several senders on one client.
 * Errors: -EINVAL (c NULL, data NULL with len > 0, dst 0 or above max_clients, a flag this
 * call does not take, a priority above 7), -EMSGSIZE (len over the bus's msg_size),
 * -EHOSTUNREACH (no client dst, or it left while we waited), -ECONNRESET (dst died),
 * -EAGAIN (full, with SHMBUS_SEND_NONBLOCK or timeout_ms 0), -ETIMEDOUT, -EINTR, -EIDRM,
 * -EBADMSG (dst's mailbox is corrupt). With SHMBUS_SEND_ACK, -ETIMEDOUT, -EINTR,
 * -EHOSTUNREACH and -ECONNRESET can also come after the message was delivered, while
 * waiting for its acknowledgement.
 */
int shmbus_send(shmbus_client *c, uint32_t dst, const void *data, size_t len, unsigned flags,
                int timeout_ms);

/* One message of a batch. */
struct shmbus_iov {
    const void *data;
    size_t len;
};

/*
 * Send n messages to `dst` at one priority (flags: SHMBUS_PRIO(n), SHMBUS_SEND_NONBLOCK),
 * reserving mailbox room for as many as fit at once: one atomic operation and at most one
 * wake-up per batch instead of per message. Returns how many were sent (1..n), in order;
 * waits as shmbus_send() only when none fit. On a durable bus a batch that has to wait
 * writes its journal records first (at most 256 messages) and then places all of them,
 * waiting for room as often as needed until timeout_ms; those it could not place are
 * cancelled in the journal and not counted (a cancel that meets a full disk is written by
 * this bus handle's next journal write or its close; a process that dies before that has
 * them delivered after the next rebuild). Errors as shmbus_send() without an ACK's, and
 * -EINVAL also for msgs NULL, n 0, a msgs[k].data NULL with len > 0, or SHMBUS_SEND_ACK;
 * -EMSGSIZE if any message is too large (then none is sent).
 */
int shmbus_send_batch(shmbus_client *c, uint32_t dst, const struct shmbus_iov *msgs, size_t n,
                      unsigned flags, int timeout_ms);

/*
 * Send one copy to every live client except the sender (flags: SHMBUS_PRIO(n),
 * SHMBUS_SEND_NONBLOCK). Returns how many got it. A receiver whose mailbox stays full for
 * timeout_ms (or at once with SHMBUS_SEND_NONBLOCK), that leaves or dies meanwhile, or whose
 * mailbox is corrupt, is skipped and not counted: compare with the number of live clients
 * to see who missed it. Errors: -EINVAL (as shmbus_send(); SHMBUS_SEND_ACK too), -EMSGSIZE,
 * -EIDRM, and -EINTR when a signal came before any copy was delivered (after one, the count
 * so far is returned and the rest are not sent).
 */
int shmbus_broadcast(shmbus_client *c, const void *data, size_t len, unsigned flags,
                     int timeout_ms);

/*
 * Take the next message from the client's own mailbox: the highest priority pending, first
 * in first out within a priority (and per sender). Copies the payload into buf and the header
 * into *hdr (hdr may be NULL). Returns the payload length.
 *
 * Waits up to timeout_ms for a message (-1 forever, 0 not at all: -EAGAIN). While waiting it
 * spins for the client's spin budget, then sleeps on a semaphore: a blocked receiver costs
 * no CPU (it wakes a few times a second to check for dead senders).
 * If cap is smaller than the message, fails with -EMSGSIZE and leaves the message in place
 * (hdr->len says how much room it needs); a buffer of the bus's msg_size always suffices.
 * One thread at a time per client. Errors: -EINVAL (c NULL, buf NULL with cap > 0), -EAGAIN
 * (timeout_ms 0 and nothing there), -ETIMEDOUT, -EMSGSIZE, -EINTR, -EIDRM, -ENOBUFS (the
 * message is of a group c subscribed to with SHMBUS_SUB_CONFIRM and c's in-flight table is
 * full: it stays in the mailbox until shmbus_done() makes room; every receive and
 * shmbus_consume() can say this).
 */
int shmbus_recv(shmbus_client *c, struct shmbus_msg *hdr, void *buf, size_t cap, int timeout_ms);

/*
 * Look at the next message without taking it: the one shmbus_recv() would take now (highest
 * priority first). Copies the payload into buf and the header into *hdr (may be NULL) exactly
 * as shmbus_recv() does, waits for a message the same way (timeout_ms: -1 forever, 0 not at
 * all), and returns the payload length; but the message stays in the mailbox: its slot is
 * not freed, its sender is not acknowledged (SHMBUS_SEND_ACK), and `received` does not count it.
 * shmbus_consume() then takes it; until then nothing is lost if the process dies or leaves.
 *
 * This is how a program that hands messages on (to a pipe, a file, a socket) takes only
 * what it handed on: peek, write, and consume once the write succeeded. Peeking again
 * without consuming returns the same message, unless one of a higher priority arrived
 * meanwhile (then that one, and the peek before is forgotten).
 *
 * The caller owns buf and hdr; the library keeps only the message's position, in the
 * client handle. Receive side: one thread at a time per client, not concurrently with
 * shmbus_recv() or shmbus_consume(). Errors as shmbus_recv(): -EINVAL, -EAGAIN, -ETIMEDOUT,
 * -EMSGSIZE (hdr->len says the room needed; nothing is remembered), -EIDRM, and -EINTR when a
 * signal handler ran while it waited (nothing remembered either).
 */
int shmbus_peek(shmbus_client *c, struct shmbus_msg *hdr, void *buf, size_t cap, int timeout_ms);

/*
 * Take the message the last successful shmbus_peek() returned: free its slot, acknowledge
 * its sender if it asked for an ACK, count it as received. Returns 0. Never blocks.
 * Any later peek or consume needs a new shmbus_peek(). Receive side: one thread at a time.
 * Errors: -EINVAL (c NULL), -ENOMSG (nothing peeked since the last consume, or the message is
 * no longer there: a shmbus_recv() took it, or the segment was scribbled over), -EIDRM.
 */
int shmbus_consume(shmbus_client *c);

/*
 * Take up to n messages at once: message k's payload goes to bufs + k * stride (stride
 * bytes of room each) and its header to hdrs[k]. Returns how many (>= 1); waits as
 * shmbus_recv() only while there are none. Errors as shmbus_recv() (-EMSGSIZE when the
 * first message needs more than stride bytes), and -EINVAL for hdrs or bufs NULL or n 0.
 */
int shmbus_recv_batch(shmbus_client *c, struct shmbus_msg *hdrs, void *bufs, size_t stride,
                      size_t n, int timeout_ms);

/* ---- zero-copy loans ---------------------------------------------------------------- */

/*
 * A send loan: room for one message inside the destination's mailbox, written in place.
 * The caller owns the struct (on its stack is fine); data and cap are for it to use, the
 * rest is the library's.
 */
struct shmbus_loan {
    void *data; /* where to write the payload: cap bytes in the destination's ring */
    size_t cap; /* the len asked for */
    uint64_t priv_[4];
};

/*
 * Borrow room for a message of up to len bytes to `dst` (flags: SHMBUS_SEND_NONBLOCK and a
 * priority, SHMBUS_PRIO(n)): on success
 * loan->data points into dst's mailbox (shared memory), where the caller writes the payload
 * in place; then shmbus_loan_commit() delivers it, or shmbus_loan_cancel() gives the room
 * back. Waits for room as shmbus_send() does (SHMBUS_SEND_NONBLOCK: -EAGAIN at once).
 *
 * A loan holds up the receiver: messages sent after it (by anyone) are taken only after it
 * is committed or cancelled (per-sender order needs that), as a slow sender does. Commit
 * soon; loans are for writing in place, not for keeping. A process killed holding a loan
 * holds nothing up for long: its claim is skipped like any dead writer's (issue 4's rules).
 * Each loan holds one of the client's SHMBUS_INTENTS (4) send records: a fifth loan or send
 * in flight on the client waits, a fifth loan fails with -EBUSY instead. The bytes at data
 * are shared memory: a hostile peer with write access can change them, never make the call
 * crash. Thread-safe as shmbus_send(); a loan is used by one thread at a time.
 * Errors: -EINVAL (NULL, a priority above 7, flags other than SHMBUS_SEND_NONBLOCK and
 * SHMBUS_PRIO()), -EMSGSIZE (len over
 * msg_size), -EBUSY (the client's send records are all held), -EHOSTUNREACH, -ECONNRESET,
 * -EAGAIN, -ETIMEDOUT, -EINTR, -EIDRM, -EBADMSG (the mailbox's words are garbage).
 */
#define SHMBUS_INTENTS 4
int shmbus_loan(shmbus_client *c, uint32_t dst, size_t len, unsigned flags, int timeout_ms,
                struct shmbus_loan *loan);

/*
 * Deliver the loan's first `used` bytes (used <= loan->cap) as one message, and wake the
 * receiver if it sleeps. Never blocks. The loan is over either way (data must not be used
 * again). Errors: -EINVAL (NULL, used > cap, not a loan of this client: nothing is done),
 * -ECONNRESET (the claim was skipped: its writer looked dead; nothing delivered).
 */
int shmbus_loan_commit(shmbus_client *c, struct shmbus_loan *loan, size_t used);

/* Give a loan's room back without sending anything. Never blocks. Errors: -EINVAL (NULL, or
 * not an open loan of this client), -ECONNRESET (it was skipped meanwhile: gone anyway). */
int shmbus_loan_cancel(shmbus_client *c, struct shmbus_loan *loan);

/*
 * Receive in place: like shmbus_recv(), but instead of copying, *data points at the payload
 * inside our own mailbox (hdr->len bytes; hdr must not be NULL). The message is taken (it is
 * counted and its sender ACKed, and no later receive returns it) but its bytes stay ours,
 * neither moved nor reused, until shmbus_recv_release(). At most 16 held at once (-EBUSY).
 * Holding one holds back reuse of the ring behind it (senders wait for room as for a full
 * mailbox), never delivery. If the process dies holding some, its mailbox is drained as
 * usual. The bytes are shared memory (see shmbus_loan()). Receive side: one thread at a time.
 * Errors as shmbus_recv(), and -EBUSY.
 */
int shmbus_recv_ref(shmbus_client *c, struct shmbus_msg *hdr, const void **data, int timeout_ms);

/* Give back a message shmbus_recv_ref() lent (its data pointer). Never blocks. Receive side:
 * one thread at a time. Errors: -EINVAL (NULL, or not a held message of this client). */
int shmbus_recv_release(shmbus_client *c, const void *data);

/*
 * Send a request to `dst` and wait up to timeout_ms for its reply, matched by sequence
 * number. flags: SHMBUS_PRIO(n) (the request's priority, which the reply keeps),
 * SHMBUS_SEND_NONBLOCK (fail with -EAGAIN if dst's mailbox is full; the wait for the reply
 * still takes up to timeout_ms). Other messages that arrive meanwhile stay in the mailbox,
 * in order, for shmbus_recv(). Returns the reply's payload length; the reply's header goes
 * to *rhdr (may be NULL). Uses the receive side: not concurrently with shmbus_recv() on the
 * same client.
 * Errors: those of shmbus_send() for the request (SHMBUS_SEND_ACK is -EINVAL: the reply is
 * the acknowledgement), -EINVAL also for rbuf NULL with cap > 0; then, with the request
 * delivered: -ETIMEDOUT (-EAGAIN with timeout_ms 0), -EINTR, -EMSGSIZE (the reply is larger
 * than cap; it stays in the mailbox), -EHOSTUNREACH/-ECONNRESET (dst left or died without
 * answering), -EIDRM.
 */
int shmbus_request(shmbus_client *c, uint32_t dst, const void *req, size_t len,
                   struct shmbus_msg *rhdr, void *rbuf, size_t cap, unsigned flags, int timeout_ms);

/* Answer the request `req` (as received) with len bytes, at the request's priority: flags
 * may hold SHMBUS_SEND_NONBLOCK only (a SHMBUS_PRIO() here is -EINVAL, so that nobody
 * believes it changed the reply's priority). Does not wait for room longer than timeout_ms.
 * Errors as shmbus_send() without an ACK's, and -EINVAL if req is NULL or not a request. */
int shmbus_reply(shmbus_client *c, const struct shmbus_msg *req, const void *data, size_t len,
                 unsigned flags, int timeout_ms);

/* ------------------------------------------------------------------------------------------
 * Bus-wide counters
 * ------------------------------------------------------------------------------------------
 * Kept in the segment per client id and never reset when a client leaves or joins, so that
 * they only grow for as long as the bus exists (the per-client counters of shmbus_list()
 * start at 0 with each client). Relaxed atomics: each counter is exact, a set of them is not
 * read at one instant. */

struct shmbus_bus_stats {
    uint64_t sent;     /* messages sent (a broadcast counts each copy) */
    uint64_t received; /* messages taken from mailboxes */
    uint64_t bytes_sent;
    uint64_t bytes_received;
    uint64_t lat_count;  /* latency samples (the messages shmbus_counters.lat_hist samples) */
    uint64_t lat_sum_ns; /* their sum in nanoseconds */
    uint64_t lat_hist[SHMBUS_LAT_BUCKETS];
};

/* Fill *out with the bus's counters since it was created. Does not block. Thread-safe.
 * Errors: -EINVAL, -EIDRM. */
int shmbus_bus_stats(shmbus_bus *bus, struct shmbus_bus_stats *out);

/* Messages taken by clients of id `dst` from clients of id `src`, since the bus was made. */
struct shmbus_flow {
    uint32_t src, dst;
    uint64_t messages;
};

/* The pairs with at least one message, by src then dst, into out[0..n-1]. Returns how many
 * there are (may exceed n; n = 0 counts). Reads max_clients^2 words: about a millisecond
 * for 64 clients. Does not block. Thread-safe. Errors: -EINVAL, -EIDRM. */
int shmbus_bus_flows(shmbus_bus *bus, struct shmbus_flow *out, size_t n);

/* ---- durable buses: reading the journal back (see shmbus_bus_open_durable()) ------------ */

/* One message in a durable bus's journal, as shmbus_journal_scan() reports it. */
struct shmbus_journal_entry {
    struct shmbus_msg msg; /* src, dst, seq, corr, len, prio, flags as sent; sent_ns 0 */
    uint64_t time_ns;      /* CLOCK_REALTIME when it was journaled */
    int taken;             /* 1: its receiver took it (kept by retention), 0: waiting */
};
/* Called once per message with its payload (msg.len bytes, valid during the call); a
 * nonzero return stops the scan and is returned. */
typedef int (*shmbus_journal_fn)(const struct shmbus_journal_entry *e, const void *data, void *arg);

/*
 * Read the journal of a durable bus: fn for every message it holds, oldest first: those not
 * taken yet, and the taken ones that retention keeps (shmbus_durable.retain_*). Reads the
 * whole file into memory; takes no lock, so messages written meanwhile may be missed.
 * Returns fn's nonzero return, or 0 when every message was reported. Thread-safe. Errors:
 * -EINVAL (NULL), -ENOTSUP (the bus is not durable), -ENOMEM, -EPROTO (the file is not
 * this bus's journal), -errno of the file system.
 */
int shmbus_journal_scan(shmbus_bus *bus, shmbus_journal_fn fn, void *arg);

/* ------------------------------------------------------------------------------------------
 * Passive view: watch what is sent without taking it
 * ------------------------------------------------------------------------------------------
 * A tap sees a copy of every message sent on the bus from the moment it opens (every send,
 * batch, broadcast copy, request, reply and loan), with its header, the names its sender
 * and receiver had when it was sent, and the first SHMBUS_TAP_CAPTURE bytes of its payload.
 * It takes nothing from anyone's mailbox and never slows a sender down: the copies go to a
 * ring of the 1024 most recent messages, shared by all taps; a tap that falls further
 * behind loses the oldest, and is told how many. While no tap is open senders pay one load
 * of a read-mostly word; while one is, each message costs its sender a copy of at most
 * 512 bytes.
 *
 * At most 8 taps are open on a bus at once (a tap of a process that died is freed by the
 * next shmbus_tap_open() or reap). Taps need a writable attachment. `shmbus tail` is built
 * on these calls. */
#define SHMBUS_TAP_CAPTURE 400 /* payload bytes a tap keeps of each message */
typedef struct shmbus_tap shmbus_tap;

/* What a tap saw of one message. */
struct shmbus_tap_msg {
    struct shmbus_msg msg;              /* its header; msg.len is its whole length */
    char src_name[SHMBUS_NAME_MAX + 1]; /* the sender's name when it sent ("": none) */
    char dst_name[SHMBUS_NAME_MAX + 1]; /* the receiver's name then ("": none) */
    uint32_t captured; /* payload bytes kept: min(len, CAPTURE), or len for a whole tap
                        * (less if its copy was overwritten before the tap read it) */
    uint64_t missed;   /* messages lost to this tap just before this one (or before the
                        * error): overwritten before it read them, or claimed by a sender
                        * that died mid-copy */
};

/* Start watching: *out is a new tap that sees every message sent from now on. The caller
 * owns it (shmbus_tap_close()); it must not outlive the bus handle. Does not block.
 * Thread-safe; one tap is used by one thread at a time. Errors: -EINVAL (NULL), -EROFS
 * (the bus is attached read-only), -EIDRM (destroyed), -EUSERS (8 taps are open already),
 * -ENOMEM. */
int shmbus_tap_open(shmbus_bus *bus, shmbus_tap **out);

/* Flags of shmbus_tap_open_flags(). */
#define SHMBUS_TAP_WHOLE 0x1u /* keep whole payloads, not only the first SHMBUS_TAP_CAPTURE */

/*
 * As shmbus_tap_open(), with flags. SHMBUS_TAP_WHOLE: while this tap is open, senders also
 * copy each payload longer than SHMBUS_TAP_CAPTURE whole into the bus's bulk ring (8 MiB,
 * shared by all such taps; pages are touched only once a whole tap opens), so that
 * shmbus_tap_next() can give the whole message: `shmbus record` is built on it. A payload
 * overwritten in the bulk ring before the tap read it (the tap fell 8 MiB behind) comes
 * with only its first SHMBUS_TAP_CAPTURE - 8 bytes, captured saying so; nothing is silent.
 * Costs each sender one more copy of its payload while such a tap is open.
 * Errors: as shmbus_tap_open(), and -EINVAL for an unknown flag.
 */
int shmbus_tap_open_flags(shmbus_bus *bus, unsigned flags, shmbus_tap **out);

/* The next message seen, oldest first: what the tap saw into *out (may be NULL) and up to
 * min(captured, cap) payload bytes into buf (cap below captured: the rest is not copied,
 * and the call still succeeds). Returns how many payload bytes it copied.
 * Waits up to timeout_ms (-1: forever, 0: not at all). Errors: -EINVAL (t NULL, or buf
 * NULL with cap > 0), -EAGAIN (nothing, with timeout 0), -ETIMEDOUT, -EINTR (a signal
 * handler ran while it slept), -EIDRM. On an error, out->missed still counts what was
 * lost meanwhile. */
int shmbus_tap_next(shmbus_tap *t, struct shmbus_tap_msg *out, void *buf, size_t cap,
                    int timeout_ms);

/* Stop watching and free t (NULL: nothing). Does not block. */
void shmbus_tap_close(shmbus_tap *t);

/* ------------------------------------------------------------------------------------------
 * Named groups: topics, work queues, leader election
 * ------------------------------------------------------------------------------------------
 * A bus holds up to SHMBUS_GROUPS named groups (names as client names). A group is created
 * by the first call that needs it and lasts as long as the bus. A client *subscribes* to a
 * group to become one of its members: it then gets one copy of everything published to the
 * group (a topic), and may be chosen for messages sent to the group (a work queue). Leaving
 * the bus or dying ends every membership and leadership of the client; membership belongs
 * to one join of an id (its generation), so a later client with the same id is not a member.
 * A message that came through a group has corr = the group's index (shmbus_group_list()).
 *
 * Every call below that looks a name up ("does not block" included) can wait up to 1 s and
 * fail with -EBUSY when another process stalls in the middle of creating a group on the
 * name's probe path (a live creator fills the slot within microseconds; a dead one's slot
 * is taken over at once). A scribbled table makes the calls fail (-EBADMSG) or skip what
 * they cannot read, never crash or hang (tests/fuzz_segment.c patches it).
 */
#define SHMBUS_GROUPS 64

/*
 * Subscribe client c to group `name` (created if it does not exist). flags: 0 or
 * SHMBUS_SUB_CONFIRM. Subscribing twice is not an error (the flags of the last call count).
 * Does not block. Thread-safe.
 *
 * SHMBUS_SUB_CONFIRM (work queues): every message of this group that c takes stays recorded
 * in c's in-flight table (in the segment) until c confirms it with shmbus_done(). If c dies
 * or leaves first, the recorded messages go to another member, flagged
 * SHMBUS_MSG_REDELIVERED: at least once. The table holds SHMBUS_INFLIGHT messages; while it
 * is full, a receive that meets the next such message fails with -ENOBUFS and leaves it in
 * the mailbox (confirm some, then receive again). Without the flag, a message c has taken
 * is c's alone; only what still waits in its mailbox is redelivered when it dies.
 *
 * SHMBUS_SUB_LOSSY (topics): c would rather lose messages than slow publishers down. A
 * publisher that finds c's mailbox full drops the oldest unread messages there of groups c
 * subscribed to with this flag, as many as it needs room for, instead of waiting; c then
 * receives the newest ones, in publisher order. Every message lost is counted: c's `lost`
 * (shmbus_list(), `shmbus ls`, `stat`, the monitor) and the group's (shmbus_group_list()).
 * Never dropped: direct messages, work-queue messages, replies, messages of groups c did not
 * subscribe to lossy; dropping stops at the oldest of those, and the publisher then waits
 * for room as without the flag. Nothing is dropped while c is inside a receive call (it is
 * consuming: room is coming), while it holds records from shmbus_recv_ref(), or between a
 * shmbus_peek() and its shmbus_consume(). The flag stays for c's life (unsubscribing ends
 * the membership, not the receive side's locking, which costs a lossy client one atomic
 * exchange per receive call). Subscribe lossy from the receiving thread, or while no receive
 * of c is in progress. A receive of c waits for a publisher's drop (microseconds) within
 * its timeout. The design: docs/mailbox-v2.md, 16.
 * Errors: -EINVAL (c NULL, bad name, unknown flags), -ENOSPC (SHMBUS_GROUPS groups exist),
 * -EBUSY (another process stalls in the middle of creating a group), -EHOSTUNREACH /
 * -ECONNRESET (c is no longer on the bus), -EIDRM.
 */
int shmbus_subscribe(shmbus_client *c, const char *name, unsigned flags);
#define SHMBUS_SUB_CONFIRM 0x1u /* shmbus_subscribe(): c confirms each message (shmbus_done) */
#define SHMBUS_SUB_LOSSY                                                                           \
    0x2u                  /* shmbus_subscribe(): lose the oldest unread, never slow publishers */
#define SHMBUS_INFLIGHT 8 /* messages one client may hold taken and not confirmed */

/*
 * Confirm that c has finished the group message whose header is *m (as a receive filled
 * it in; matched by src, seq and corr): it leaves c's in-flight table and will not be
 * redelivered. Only messages of groups c subscribed to with SHMBUS_SUB_CONFIRM are
 * recorded. Call it from c's receiving thread (or serialized with it). Does not block.
 * Errors: -EINVAL (c or m NULL), -ENOENT (no such unconfirmed message: not a recorded group
 * message, or confirmed already), -EIDRM.
 */
int shmbus_done(shmbus_client *c, const struct shmbus_msg *m);

/* End c's membership of group `name`. Messages already in c's mailbox stay there. Does not
 * block. Thread-safe. Errors: -EINVAL (c NULL, bad name), -ENOENT (c is not a member),
 * -EIDRM. */
int shmbus_unsubscribe(shmbus_client *c, const char *name);

/*
 * Publish: one copy of len bytes to every current member of group `name` (the caller too,
 * if it subscribed), flagged SHMBUS_MSG_TOPIC. flags: SHMBUS_PRIO(n), SHMBUS_SEND_NONBLOCK.
 * Copies from one publishing thread reach each subscriber in publishing order. A member's
 * full mailbox makes the call wait for room, all copies sharing one timeout_ms; members
 * that leave or die meanwhile are skipped. Returns how many members got a copy (0 when
 * there are none). If a live member's mailbox stayed full until the deadline (or at once
 * with SHMBUS_SEND_NONBLOCK), the others still get theirs, the miss is counted in the
 * group's `missed` (shmbus_group_list()) and the call returns -ETIMEDOUT (-EAGAIN): never
 * a silent drop. A member that subscribed with SHMBUS_SUB_LOSSY does not make the call wait:
 * its oldest unread messages of lossy topics are dropped and counted (`lost`) instead, unless
 * a message that may not be dropped is oldest there. A subscriber's process is looked at in /proc
 * at most once a millisecond per publishing client: a copy to a subscriber killed within that
 * millisecond goes with its mailbox. Thread-safe. Errors: -EINVAL (as shmbus_send(),
 * SHMBUS_SEND_ACK too, bad name), -EMSGSIZE, -ETIMEDOUT, -EAGAIN, -EBADMSG (a member's mailbox is
 * corrupt: counted as missed too), -EINTR (a signal came while waiting: the remaining members are
 * not sent to), -EBUSY, -EIDRM.
 */
int shmbus_publish(shmbus_client *c, const char *name, const void *data, size_t len, unsigned flags,
                   int timeout_ms);

/*
 * Work queue: send len bytes to exactly one current member of group `name`, flagged
 * SHMBUS_MSG_GROUP: the live member with the fewest messages waiting in its mailbox, and
 * among equals the next one in turn (round robin). Returns the chosen member's client id.
 * flags: SHMBUS_PRIO(n), SHMBUS_SEND_NONBLOCK, SHMBUS_SEND_ACK (as shmbus_send()). While the
 * group has no live member the call waits (polling every 10 ms) within timeout_ms, then
 * fails with -EHOSTUNREACH; a chosen member that leaves or dies before the message is in
 * its mailbox is replaced by another (not with SHMBUS_SEND_ACK once delivered). Choosing
 * reads two counters per member, and looks at a member's process in /proc at most once a
 * millisecond per sending client (a member killed within that millisecond may still be
 * chosen, as one killed just after any look: then the redelivery below gives its message to
 * another member).
 * Redelivery: when a member dies (found by shmbus_reap(), which blocked calls run about once
 * a second) or leaves with shmbus_leave(), the group messages still waiting in its mailbox,
 * and with SHMBUS_SUB_CONFIRM those it took and did not confirm, go to another current
 * member of the same group, flagged SHMBUS_MSG_REDELIVERED. Exactly one process does it (the
 * one that cleans the entry up); one that dies half-way leaves the rest to the next, so a
 * message may come twice after a death, never not at all. Until every such message found a
 * member (none live yet, or their mailboxes full), the dead client's id stays taken and the
 * next reap goes on. Other messages in a dead mailbox are dropped and counted as ever;
 * shmbus_leave_keep() keeps its mailbox for the next client of the id (the group messages
 * too) and redelivers only its unconfirmed ones (dropped, counted, if no member can take
 * them at once). On a durable bus, taking a redelivered copy marks the original taken; one
 * not taken before a reboot comes back once, as the original, for the dead member's id.
 * Thread-safe. Errors: -EINVAL (as shmbus_send(), bad name), -EMSGSIZE, -EHOSTUNREACH (no live
 * member until the deadline), -ENOSPC, -EBUSY, -EAGAIN, -ETIMEDOUT, -EINTR, -EIDRM, -EBADMSG, and
 * with SHMBUS_SEND_ACK those of its wait for the acknowledgement.
 */
int shmbus_send_group(shmbus_client *c, const char *name, const void *data, size_t len,
                      unsigned flags, int timeout_ms);

/*
 * Work queue with sticky routing: as shmbus_send_group(), but every message with the same key
 * goes to the same member as long as that member stays current (subscribed, on the bus,
 * alive), however loaded it is; then the key moves to the least loaded member and stays
 * there. Keys share 64 buckets per group, so different keys may share a member too. Returns
 * the chosen member's client id. Errors as shmbus_send_group(). Thread-safe.
 */
int shmbus_send_group_key(shmbus_client *c, const char *name, uint64_t key, const void *data,
                          size_t len, unsigned flags, int timeout_ms);

/* A group as shmbus_group_list() reports it. */
struct shmbus_group_info {
    uint32_t index; /* 0..SHMBUS_GROUPS-1: the corr of messages sent through the group */
    char name[SHMBUS_NAME_MAX + 1];
    uint32_t members;     /* current members whose process is alive */
    uint32_t leader;      /* client id of the live leader, 0 if none */
    uint64_t epoch;       /* the latest leader's epoch (0: never had one) */
    uint64_t published;   /* topic copies delivered */
    uint64_t missed;      /* topic copies not delivered because a mailbox stayed full */
    uint64_t queued;      /* work-queue messages delivered */
    uint64_t elections;   /* leaders elected */
    uint64_t redelivered; /* work-queue messages given again after a member died or left */
    uint64_t lost;        /* topic copies dropped unread from SHMBUS_SUB_LOSSY members' mailboxes */
};

/* List the bus's groups into out[0..n-1] in index order; returns how many there are (may
 * exceed n; n = 0 counts). Reads /proc once per member. Does not block. Thread-safe; works
 * on a bus opened SHMBUS_OPEN_RDONLY. Errors: -EINVAL (bus NULL, out NULL with n > 0),
 * -EIDRM. */
int shmbus_group_list(shmbus_bus *bus, struct shmbus_group_info *out, size_t n);

/*
 * Leader election. Campaign for leadership of group `name` (created if needed): returns
 * the epoch (>= 1) once c leads, at once if it already does. Each new leader of a name gets
 * an epoch strictly greater than every earlier one, and one epoch has one leader. The
 * leader stays until it resigns, leaves the bus or dies (by the registry's liveness rule: a
 * stopped process is not dead); a campaigner notices within about 5 ms (it polls every 5 ms,
 * sleeping in between). Does not make c a member. Thread-safe.
 * Errors: -EINVAL (c NULL, bad name), -ETIMEDOUT (-EAGAIN with timeout_ms 0: someone else
 * leads), -EINTR, -ENOSPC, -EBUSY, -EOVERFLOW (the name used up 2^27 - 1 epochs),
 * -EBADMSG (the leader word names no valid client), -EIDRM, -EHOSTUNREACH (c left).
 */
int shmbus_elect(shmbus_client *c, const char *name, int timeout_ms);

/*
 * Campaign as shmbus_elect() does, for a leadership with a lease of lease_ms (1 ms to one
 * day): the leader must call shmbus_renew() before the lease ends. A leader that is alive
 * but does not renew in time (stuck, stopped, too slow) may be replaced: a campaigner that
 * finds the lease over takes the leadership with a higher epoch. From then on the old
 * leader's shmbus_renew(), shmbus_send_fenced() and shmbus_fence_check() of its epoch give
 * -ESTALE. Renewing and being deposed never both succeed: a renewal that returned 0 in time
 * keeps the leadership until the new end. Leases use CLOCK_MONOTONIC. A leader without a
 * lease (shmbus_elect()) leads until it resigns, leaves or dies. Returns the epoch (>= 1).
 * Errors: those of shmbus_elect(); -EINVAL also for lease_ms 0 or above 86400000.
 */
int shmbus_elect_lease(shmbus_client *c, const char *name, unsigned lease_ms, int timeout_ms);

/*
 * Renew the lease of leadership `epoch` of group `name`: it now ends lease_ms from now
 * (0: no lease any more; the leadership then lasts until resign, leave or death). Works for
 * a leadership won with shmbus_elect() too (it gains a lease). Does not block. Thread-safe.
 * Errors: -ESTALE (deposed: a newer epoch exists, or a campaigner is taking over because
 * the lease ended: stop acting as leader), -EPERM (c does not lead `epoch`: it resigned),
 * -EINVAL (c NULL, bad name, epoch 0 or newer than the current one, lease_ms above one day),
 * -ENOENT (no such group), -EBADMSG, -EIDRM.
 */
int shmbus_renew(shmbus_client *c, const char *name, uint64_t epoch, unsigned lease_ms);

/* Stop leading `name`. The epoch stays; the next leader gets a higher one. Does not block.
 * Errors: -EINVAL (c NULL, bad name), -EPERM (c does not lead it), -EIDRM. */
int shmbus_resign(shmbus_client *c, const char *name);

/*
 * Who leads group `name`: *leader (may be NULL) gets the live leader's client id or 0 (none,
 * or the recorded one died or resigned), *epoch (may be NULL) the latest epoch (0: never
 * led, or no such group). Returns 0. Does not block; one /proc read. Thread-safe; works on
 * a bus opened SHMBUS_OPEN_RDONLY. Errors: -EINVAL (bus NULL, bad name), -EBADMSG, -EIDRM.
 */
int shmbus_leader(shmbus_bus *bus, const char *name, uint32_t *leader, uint64_t *epoch);

/*
 * Wait for a change of leader of group `name`: *leader and *epoch hold what the caller saw
 * last (0 and 0 the first time); returns 0 with them updated as soon as shmbus_leader() says
 * otherwise (a new leader, or the leader gone), at once if it already does. Polls every
 * 5 ms, sleeping. Errors: -EINVAL (bus, leader or epoch NULL, bad name), -EAGAIN
 * (timeout_ms 0, no change), -ETIMEDOUT, -EINTR, -EBADMSG, -EIDRM. Thread-safe; works on a
 * bus opened SHMBUS_OPEN_RDONLY.
 */
int shmbus_leader_wait(shmbus_bus *bus, const char *name, uint32_t *leader, uint64_t *epoch,
                       int timeout_ms);

/*
 * Fencing: send to dst as shmbus_send() does, carrying `epoch` of group `name`, flagged
 * SHMBUS_MSG_FENCED with corr = epoch. Refused with -ESTALE, nothing sent, when epoch is older
 * than the name's current epoch: a deposed leader cannot act once its successor was
 * elected. The check is made when the call starts: a send that was already waiting for room
 * when the successor was elected is delivered; a receiver that must be strict checks
 * corr with shmbus_fence_check() when it takes the message.
 * Errors: those of shmbus_send(), -ESTALE, and -EINVAL also for a bad name or an epoch
 * newer than the current one (no such leader ever existed); -ENOENT (no such group).
 */
int shmbus_send_fenced(shmbus_client *c, uint32_t dst, const char *name, uint64_t epoch,
                       const void *data, size_t len, unsigned flags, int timeout_ms);

/* 0 if epoch is the current epoch of group `name`, -ESTALE if a newer leader has been
 * elected since. Never blocks. Thread-safe; works on a bus opened SHMBUS_OPEN_RDONLY.
 * Errors: -EINVAL (bus NULL, bad name, an epoch newer than the current one), -ENOENT (no
 * such group), -EBADMSG, -EIDRM. */
int shmbus_fence_check(shmbus_bus *bus, const char *name, uint64_t epoch);

/* ------------------------------------------------------------------------------------------
 * Latency histograms
 * ------------------------------------------------------------------------------------------
 * shmbus_counters.lat_hist is log-linear: 4 buckets per power of two of nanoseconds.
 * Bucket b covers [shmbus_hist_value(b), shmbus_hist_value(b + 1)). */

/* Lower bound in nanoseconds of bucket b. */
uint64_t shmbus_hist_value(unsigned b);

/* The bucket of a latency in nanoseconds. */
unsigned shmbus_hist_bucket(uint64_t ns);

/* The p-th percentile (0 < p <= 100) of a histogram, in nanoseconds (0 if it is empty). */
uint64_t shmbus_hist_percentile(const uint64_t *hist, double p);

#ifdef __cplusplus
}
#endif

#endif /* SHMBUS_H */
