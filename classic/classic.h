/*
 * classic.h: what the three clients share beyond the seed's client.h.
 *
 * Design notes
 * - A "run" is one exchange. Its objects, all named from one key (session_init(): the seed's
 *   ftok("MemDispatch", 65) in the working directory, -1 when the file is missing; or the
 *   key file $CLASSIC_DIR/MemDispatch for an isolated run):
 *     the seed's segment   the key, struct Memory, guarded by semName;
 *     the control segment  the key with ftok's project byte 66, struct control below (ours);
 *     semName              the seed's mutex, created at 0 (see exchange.c);
 *     semName.turnN        one per client, posted by whoever addresses a message to N: the
 *                          client sleeps on it instead of polling destClientNo.
 *   With CLASSIC_DIR set, the semaphore names get the prefix "classic-<key>." so two runs in
 *   two directories never meet; without it they are the seed's plain names.
 * - Joining, leaving and replacing leftovers happen under flock() on the lock file (the key
 *   file, or /dev/shm/classic-<key>.lock; session.c), which the kernel drops if the holder
 *   dies, so a kill -9 at any moment cannot wedge them.
 * - The control segment is written under that flock, except what is read and written while
 *   a run is live: a slot's state (atomics, below), `holder`, `aborted`, `finished` and
 *   `seed_seen`. Everything read from it is treated as hostile: loaded once, checked, bounded.
 */
#ifndef CLASSIC_CLASSIC_H
#define CLASSIC_CLASSIC_H

#include <limits.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "client.h"

#define CLASSIC_MIN_MESSAGES 4 /* fewer would leave a client without any message to receive */
#define CLASSIC_MAX_MESSAGES 1000000
#define CLASSIC_RUN_LEN      64
#define CLASSIC_REASON_LEN   128
#define CLASSIC_SEM_NAME_LEN 64
#define CLASSIC_WAIT_MS      50 /* longest sleep between checks for signals, dead peers, seed peers */
#define CLASSIC_LEAVE_WAIT_MS                                                                      \
    2000 /* longest wait for the others to leave, after we left (session.c) */

/* Exit codes (README). 128 + signal number when a client is interrupted. */
enum {
    CLASSIC_EXIT_ERROR = 1,    /* a system call failed, or a foreign object is in the way */
    CLASSIC_EXIT_USAGE = 2,    /* bad option or environment variable */
    CLASSIC_EXIT_PEER = 3,     /* the exchange stopped because of another client */
    CLASSIC_EXIT_REFUSED = 4,  /* another exchange is live here: not touched */
    CLASSIC_EXIT_GAVE_UP = 5,  /* nothing moved in the segment for the give-up time */
    CLASSIC_EXIT_OUTPUT = 141, /* stdout closed (EPIPE): stopped and cleaned up, 128 + SIGPIPE */
};

enum slot_state { SLOT_EMPTY = 0, SLOT_ACTIVE = 1, SLOT_DONE = 2 };

/* One client's registration. pid and start (its /proc start time, so a recycled pid does not
 * pass for the client) are written before state becomes ACTIVE (release; the acquire is in
 * session.c's slot_load()). */
struct ctl_slot {
    _Atomic int state;
    _Atomic int pid;
    _Atomic unsigned long long start;
};

#define CTL_MAGIC   0x636c6173u /* "clas" */
#define CTL_VERSION 2u

struct control {
    uint32_t magic;
    uint32_t version;
    int32_t messages;          /* the exchange's length: joiners must agree */
    int64_t created;           /* time(NULL) when the run began */
    char run[CLASSIC_RUN_LEN]; /* its first client's run: CLASSIC_RUN, or "parent PID START" */
    struct ctl_slot slot[4];   /* index = client number; slot[0] unused */
    _Atomic int holder;        /* pid holding semName, 0 if none (ours only; seed peers don't) */
    _Atomic int aborted;       /* 0; 1 while reason is being written; 2 when reason is set */
    _Atomic int finished;      /* 1: the exchange is over (last message taken, or seeds gone) */
    _Atomic int seed_seen;     /* 1: a seed client took part (more attached than registered) */
    int32_t abort_status;      /* the exit status the others take: 3, or 128 + signal */
    char reason[CLASSIC_REASON_LEN];
};

struct session {
    int me;       /* 1, 2 or 3 */
    char tag[16]; /* "client1": the prefix of every message we print */
    mode_t mode;  /* 0600, or SEM_PERMS with group access */
    int messages;
    char run[CLASSIC_RUN_LEN];
    char dir[PATH_MAX];
    char keyfile[PATH_MAX];
    char lockfile[PATH_MAX]; /* the flock's file: the key file, or /dev/shm/<lockname> */
    char lockname[64];       /* the default lock's shm_open name */
    bool isolated;           /* CLASSIC_DIR given */
    int give_up_ms;          /* stop when nothing moved for this long (NUM_MESSAGES s) */
    int sent;                /* messages sent: the routing table's i */
    pid_t ppid;              /* the parent at start: its end stops us (PR_SET_PDEATHSIG) */
    char sem_name[4][CLASSIC_SEM_NAME_LEN]; /* [0] semName, [1..3] turn semaphores */
    key_t mem_key, ctl_key;
    int lock_fd;
    int mem_id, ctl_id;
    struct Memory *mem;
    struct control *ctl;
    sem_t *sem[4];
    bool registered;
    bool holding; /* we hold semName */
    bool note_ro; /* the key file opened read-only: no note (session.c) */
    pid_t pid;
    unsigned long long start;
};

/* The whole client; client1.c, client2.c and client3.c only choose the number. Returns the
 * exit code. */
int client_main(int me, int argc, char **argv);

/* Messages: "clientN: <call>: <reason>" for a failed call; these return CLASSIC_EXIT_ERROR. */
int classic_fail(const struct session *s, const char *call, int err);
void classic_say(const struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* session.c: the run's objects. All return 0 or an exit code, having said why. */
int session_init(struct session *s, bool create_keyfile);
int session_join(struct session *s);
int session_leave(struct session *s);
void session_print_names(const struct session *s);

/* Peers: dead ones, seed clients, live seats; and the stop flag other clients raise. */
int session_seed_clients(const struct session *s);
bool session_seat_live(const struct session *s, int n);
bool session_had_peer(const struct session *s);
int session_dead_peer(const struct session *s, pid_t *pid);
void session_set_abort(struct session *s, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int session_aborted(const struct session *s, char *reason, size_t len);
void session_wake_all(struct session *s);

#endif
