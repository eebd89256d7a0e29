/*
 * session.c: one client's part in a run of the classic exchange: the key, the lock file, the
 * seed's segment, the control segment and the four semaphores; joining a run, leaving it,
 * and recognising what a dead earlier run left behind.
 *
 * Design notes
 * - Keys (session_init()): by default the seed's own rule, ftok("MemDispatch", 65) in the
 *   working directory, the file never created (-1 when missing), so our clients meet the
 *   seed's wherever the seed's README runs them. CLASSIC_DIR gives an isolated run.
 * - Every decision about the run's objects (create, join, refuse, replace, remove) is taken
 *   under flock(LOCK_EX) on the lock file (the key file of an isolated run; otherwise
 *   /dev/shm/classic-<key>.lock). The kernel drops that lock when its holder dies, so a
 *   client killed at any point leaves at worst half-made or half-removed objects, never a
 *   held lock; the next client to take the lock judges what it finds.
 * - A run is live while one of its registered clients is alive (src/proc.c's rule: /proc
 *   says so, not a zombie, not a recycled pid). A run with no live client is stale and is
 *   replaced, unless it is our own run (same parent: the same start.sh; or CLASSIC_RUN),
 *   begun moments ago, and one of its clients died: then we stop instead of starting again.
 * - A live run takes a client on any free seat; a taken seat is refused (a second start.sh,
 *   a second client N), touching nothing.
 * - The seed's segment may also be held by a seed client, which does not register but is
 *   attached (shm_nattch), or has just created the segment and not attached yet (shm_lpid ==
 *   0, creator alive). Such a segment and semName are kept, never replaced, and left for
 *   that client to remove (the seed removes them at its end).
 * - The last registered client out removes everything: both segments, semName, the turn
 *   semaphores, the default lock file, the control segment last. One that leaves before the
 *   others waits (bounded) until they have left or died, and removes what is still there:
 *   the last out may be killed before or during its clean-up (wait_peers_out()). A stopped run
 * keeps the lock file for a short-lived note to its latecomers (note_write()).
 */
#include "classic.h"
#include "../src/internal.h" /* sb__proc_alive(), sb__proc_start_time(): src/proc.c */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- messages ---------------------------------------------------------------------------- */

int classic_fail(const struct session *s, const char *call, int err)
{
    fprintf(stderr, "%s: %s: %s\n", s->tag, call, strerror(err));
    return CLASSIC_EXIT_ERROR;
}

void classic_say(const struct session *s, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", s->tag, line);
}

/* "shmget(key 0x41001234)": the call and the object it was about, for classic_fail(). */
static const char *what(const char *call, const char *fmt, ...)
{
    static char buf[192];
    char obj[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(obj, sizeof(obj), fmt, ap);
    va_end(ap);
    snprintf(buf, sizeof(buf), "%s(%s)", call, obj);
    return buf;
}

/* ---- liveness ----------------------------------------------------------------------------
 * One rule for the whole project: src/proc.c (linked in alone; classic needs nothing else of
 * libshmbus). A pid is alive while /proc says so, not a zombie, with the recorded start time;
 * an entry we cannot read counts as alive, never as dead on a guess. start 0: any process
 * with that pid (a seed client's creator pid). */

struct slot_view {
    int state;
    pid_t pid;
    unsigned long long start;
};

static struct slot_view slot_load(const struct control *c, int n)
{
    struct slot_view v;
    /* Pairs with the release in slot_store(): pid and start are complete once state is. */
    v.state = atomic_load_explicit(&c->slot[n].state, memory_order_acquire);
    v.pid = atomic_load_explicit(&c->slot[n].pid, memory_order_relaxed);
    v.start = atomic_load_explicit(&c->slot[n].start, memory_order_relaxed);
    return v;
}

static void slot_store(struct control *c, int n, int state, pid_t pid, unsigned long long start)
{
    atomic_store_explicit(&c->slot[n].pid, pid, memory_order_relaxed);
    atomic_store_explicit(&c->slot[n].start, start, memory_order_relaxed);
    atomic_store_explicit(&c->slot[n].state, state, memory_order_release);
}

/* A client registered as taking part that is no longer alive: its number, 0 if none. */
int session_dead_peer(const struct session *s, pid_t *pid)
{
    for (int n = 1; n <= 3; n++) {
        if (n == s->me)
            continue;
        struct slot_view v = slot_load(s->ctl, n);
        if (v.state != SLOT_ACTIVE || sb__proc_alive(v.pid, v.start))
            continue;
        /* Look again: a peer that left (DONE) and exited between our two looks is not dead.
         * It stores DONE before it exits, so a second ACTIVE means it died registered. */
        if (slot_load(s->ctl, n).state == SLOT_ACTIVE) {
            *pid = v.pid;
            return n;
        }
    }
    return 0;
}

/* Another registered client is alive (s->me excluded; me == 0 counts everyone). */
static bool others_alive(const struct session *s)
{
    for (int n = 1; n <= 3; n++) {
        struct slot_view v = slot_load(s->ctl, n);
        if (n != s->me && v.state == SLOT_ACTIVE && sb__proc_alive(v.pid, v.start))
            return true;
    }
    return false;
}

/* Seed clients attached to the seed's segment: attachments beyond our active clients.
 * -1 if the segment cannot be looked at. */
int session_seed_clients(const struct session *s)
{
    struct shmid_ds ds;
    if (s->mem_id < 0 || shmctl(s->mem_id, IPC_STAT, &ds) != 0)
        return -1;
    int ours = 0;
    for (int n = 1; n <= 3; n++)
        ours += slot_load(s->ctl, n).state == SLOT_ACTIVE;
    long seeds = (long)ds.shm_nattch - ours;
    return seeds > 0 ? (int)seeds : 0;
}

/* Seat n (hostile: any value) is held by a live client of ours. */
bool session_seat_live(const struct session *s, int n)
{
    if (n < 1 || n > 3)
        return false;
    struct slot_view v = slot_load(s->ctl, n);
    return v.state == SLOT_ACTIVE && sb__proc_alive(v.pid, v.start);
}

/* Another client of ours has registered in this run, whatever became of it. */
bool session_had_peer(const struct session *s)
{
    for (int n = 1; n <= 3; n++) {
        if (n != s->me && slot_load(s->ctl, n).state != SLOT_EMPTY)
            return true;
    }
    return false;
}

/* ---- the stop flag ----------------------------------------------------------------------- */

void session_wake_all(struct session *s)
{
    for (int n = 1; n <= 3; n++) {
        if (n != s->me && s->sem[n] && sem_post(s->sem[n]) != 0)
            classic_fail(s, "sem_post", errno);
    }
}

/* First caller wins: its reason is the one everybody prints, and its status (3, or 128 +
 * signal when the run was interrupted, so that Ctrl-C ends every client with 130) the one
 * everybody exits with. */
void session_set_abort(struct session *s, int status, const char *fmt, ...)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&s->ctl->aborted, &expected, 1))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->ctl->reason, sizeof(s->ctl->reason), fmt, ap);
    va_end(ap);
    s->ctl->abort_status = status;
    /* Pairs with the acquire in session_aborted(): reason and status are complete at 2. */
    atomic_store_explicit(&s->ctl->aborted, 2, memory_order_release);
    session_wake_all(s);
}

/* 0 if the run goes on; else the exit status to take, with the reason in `reason`. */
int session_aborted(const struct session *s, char *reason, size_t len)
{
    int a = atomic_load_explicit(&s->ctl->aborted, memory_order_acquire);
    if (a == 0)
        return 0;
    if (a != 2) {
        snprintf(reason, len, "another client is stopping the exchange");
        return CLASSIC_EXIT_PEER;
    }
    size_t n = strnlen(s->ctl->reason, sizeof(s->ctl->reason) - 1);
    if (n >= len)
        n = len - 1;
    memcpy(reason, s->ctl->reason, n);
    reason[n] = '\0';
    int status = s->ctl->abort_status; /* hostile memory: only the statuses we write */
    return status == 128 + SIGINT || status == 128 + SIGTERM || status == 128 + SIGHUP
               ? status
               : CLASSIC_EXIT_PEER;
}

/* ---- names ------------------------------------------------------------------------------- */

static int make_dir(struct session *s)
{
    if (mkdir(s->dir, 0700) == 0 || errno == EEXIST)
        return 0;
    return classic_fail(s, what("mkdir", "%s", s->dir), errno);
}

/* Open (making it if needed) the lock file of the seed's default names, a file in /dev/shm
 * beside the semaphores, named after the key; fall back to read-only (flock works on it) if
 * another user made it. */
static int open_default_lock(struct session *s)
{
    mode_t old = umask(0);
    s->lock_fd = shm_open(s->lockname, O_RDWR | O_CREAT | O_NOFOLLOW, 0644);
    umask(old);
    if (s->lock_fd < 0 && errno == EACCES) {
        s->lock_fd = shm_open(s->lockname, O_RDONLY | O_NOFOLLOW, 0);
        s->note_ro = true;
    }
    if (s->lock_fd < 0)
        return classic_fail(s, what("shm_open", "%s", s->lockfile), errno);
    return 0;
}

/* Fill in the key file, keys and semaphore names, and open the lock file.
 *
 * The key rules (README: "Where the seed's clients meet ours"):
 * - Default: the seed's own. key = ftok("MemDispatch", 65) relative to the working directory,
 *   the file never created, so when it is missing the key is -1, as the seed's clients use
 *   it; semaphores "semName" and "semName.turnN". Run from the same folder as the seed's
 *   clients (or anywhere, when no MemDispatch exists), in any order, they meet. The lock
 *   that serialises joining and leaving is /dev/shm/classic-<key>.lock, removed by the
 *   last client out.
 * - CLASSIC_DIR set (isolated runs, the tests): key file $CLASSIC_DIR/MemDispatch, created,
 *   also the lock; semaphore names prefixed "classic-<key>.", so runs never meet.
 * Our control segment's key is the seed's key with ftok's project byte 66 instead of 65.
 * create = false (--names of the default names): the lock file is not made. */
int session_init(struct session *s, bool create)
{
    const char *env = getenv("CLASSIC_DIR");
    bool isolated = env && *env;
    s->isolated = isolated;
    if (!isolated && !getcwd(s->dir, sizeof(s->dir)))
        return classic_fail(s, "getcwd", errno);
    if ((isolated && snprintf(s->dir, sizeof(s->dir), "%s", env) >= (int)sizeof(s->dir)) ||
        snprintf(s->keyfile, sizeof(s->keyfile), "%s/%s", s->dir, MEMNAME) >=
            (int)sizeof(s->keyfile)) {
        classic_say(s, "the key file's path is too long");
        return CLASSIC_EXIT_USAGE;
    }
    if (isolated) {
        if (create && make_dir(s) != 0)
            return CLASSIC_EXIT_ERROR;
        snprintf(s->lockfile, sizeof(s->lockfile), "%s", s->keyfile);
        /* O_NOFOLLOW: a symlink planted at the key file's name is refused, not followed. */
        int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0);
        s->lock_fd = open(s->keyfile, flags, s->mode);
        if (s->lock_fd < 0 && errno == EACCES) {
            /* Read-only (a group member's key file, say): fine, we just cannot leave a note. */
            s->lock_fd = open(s->keyfile, (flags & ~O_RDWR) | O_RDONLY, s->mode);
            s->note_ro = true;
        }
        if (s->lock_fd < 0) {
            if (!create && errno == ENOENT)
                return 0;
            return classic_fail(s, what("open", "%s", s->keyfile), errno);
        }
        s->mem_key = ftok(s->keyfile, 65);
        if (s->mem_key == (key_t)-1)
            return classic_fail(s, what("ftok", "%s", s->keyfile), errno);
    } else {
        s->mem_key = ftok(MEMNAME, 65); /* -1 when missing: the seed's key, kept on purpose */
    }
    s->ctl_key = (key_t)(((unsigned)s->mem_key & 0x00ffffffu) | (66u << 24));
    char prefix[32] = "";
    if (isolated)
        snprintf(prefix, sizeof(prefix), "classic-%08x.", (unsigned)s->mem_key);
    snprintf(s->sem_name[0], sizeof(s->sem_name[0]), "%s%s", prefix, semName);
    for (int n = 1; n <= 3; n++)
        snprintf(s->sem_name[n], sizeof(s->sem_name[n]), "%s%s.turn%d", prefix, semName, n);
    if (isolated)
        return 0;
    snprintf(s->lockname, sizeof(s->lockname), "/classic-%08x.lock", (unsigned)s->mem_key);
    snprintf(s->lockfile, sizeof(s->lockfile), "/dev/shm%s", s->lockname);
    return create ? open_default_lock(s) : 0;
    return 0;
}

void session_print_names(const struct session *s)
{
    printf("keyfile %s\nlockfile %s\nmemkey 0x%08x\nctlkey 0x%08x\n", s->keyfile, s->lockfile,
           (unsigned)s->mem_key, (unsigned)s->ctl_key);
    for (int n = 0; n <= 3; n++)
        printf("sem %s\n", s->sem_name[n]);
}

/* ---- objects ----------------------------------------------------------------------------- */

static bool owned(const struct session *s, const struct shmid_ds *ds)
{
    if (ds->shm_perm.uid == geteuid())
        return true;
    return (s->mode & S_IRWXG) && ds->shm_perm.gid == getegid();
}

/* Look up the segment under key: *id = -1 if there is none; otherwise it must be ours and of
 * the expected size, and *ds holds its state. Anything else is someone else's: not touched. */
static int shm_inspect(struct session *s, key_t key, size_t size, int *id, struct shmid_ds *ds)
{
    *id = shmget(key, 0, 0);
    if (*id < 0 && errno == ENOENT)
        return 0;
    if (*id >= 0 && shmctl(*id, IPC_STAT, ds) != 0)
        *id = -1; /* errno from shmctl */
    if (*id < 0) {
        if (errno == EACCES) {
            classic_say(s,
                        "shmget(key 0x%08x): %s: the segment under our key belongs to another "
                        "user",
                        (unsigned)key, strerror(errno));
            return CLASSIC_EXIT_ERROR;
        }
        return classic_fail(s, what("shmget", "key 0x%08x", (unsigned)key), errno);
    }
    if (!owned(s, ds)) {
        classic_say(s,
                    "shmget(key 0x%08x): segment %d belongs to uid %u, not to us: not ours, "
                    "not touched",
                    (unsigned)key, *id, (unsigned)ds->shm_perm.uid);
        return CLASSIC_EXIT_ERROR;
    }
    if (ds->shm_segsz != size) {
        classic_say(s,
                    "shmget(key 0x%08x): segment %d is %zu bytes, not %zu: a foreign segment "
                    "holds our key; remove it (ipcrm -m %d) if it is a leftover",
                    (unsigned)key, *id, (size_t)ds->shm_segsz, size, *id);
        return CLASSIC_EXIT_ERROR;
    }
    return 0;
}

static int shm_remove(struct session *s, int id)
{
    if (id < 0 || shmctl(id, IPC_RMID, NULL) == 0 || errno == EINVAL || errno == EIDRM)
        return 0; /* EINVAL/EIDRM: already removed, e.g. by a seed client at its exit */
    return classic_fail(s, what("shmctl", "%d, IPC_RMID", id), errno);
}

static int sem_remove(struct session *s, int n)
{
    if (sem_unlink(s->sem_name[n]) == 0 || errno == ENOENT)
        return 0;
    return classic_fail(s, what("sem_unlink", "%s", s->sem_name[n]), errno);
}

/* sem_open's mode is filtered by the umask; clear it around the call so the semaphore gets
 * exactly s->mode (0600 by default) whatever the caller's umask says. */
static int sem_make(struct session *s, int n, bool exclusive)
{
    mode_t old = umask(0);
    s->sem[n] = sem_open(s->sem_name[n], O_CREAT | (exclusive ? O_EXCL : 0), s->mode, 0);
    int err = errno;
    umask(old);
    if (s->sem[n] == SEM_FAILED) {
        s->sem[n] = NULL;
        if (exclusive && n == 0 && err == EEXIST)
            return -EEXIST; /* create_run() decides */
        return classic_fail(s, what("sem_open", "%s", s->sem_name[n]), err);
    }
    return 0;
}

static int sem_attach(struct session *s, int n)
{
    s->sem[n] = sem_open(s->sem_name[n], 0);
    if (s->sem[n] != SEM_FAILED)
        return 0;
    s->sem[n] = NULL;
    return classic_fail(s, what("sem_open", "%s", s->sem_name[n]), errno);
}

static int attach(struct session *s, int id, void **at)
{
    void *p = shmat(id, NULL, 0);
    if (p == (void *)-1)
        return classic_fail(s, what("shmat", "%d", id), errno);
    *at = p;
    return 0;
}

static int detach(struct session *s, void **at)
{
    if (!*at)
        return 0;
    int rc = shmdt(*at) == 0 ? 0 : classic_fail(s, "shmdt", errno);
    *at = NULL;
    return rc;
}

/* The seed's segment can be left in place only while a seed-protocol client uses it. */
static bool seed_client_uses(const struct shmid_ds *ds)
{
    return ds->shm_nattch > 0 || (ds->shm_lpid == 0 && sb__proc_alive(ds->shm_cpid, 0));
}

/* ---- the note in the lock file -----------------------------------------------------------
 * A run that stopped (a client died or was interrupted) leaves four lines in the lock file:
 * its run id, the exit status, the time, the reason. A client of that same run (same parent,
 * i.e. the same start.sh; or the same CLASSIC_RUN) that arrives within CLASSIC_NOTE_S seconds,
 * after everything was removed (start.sh launched it a second later, not knowing), reads it
 * and stops at once, instead of beginning the exchange again alone and giving up after
 * NUM_MESSAGES seconds. The bound keeps a user who starts clients by hand from one shell
 * from being turned away by an old note. A fresh run clears it. With the seed's names the
 * lock file, /dev/shm/classic-<key>.lock, stays for that note; the next run removes it. */
#define CLASSIC_NOTE_S 10

static int note_write(struct session *s, int status, const char *reason)
{
    if (!s->run[0] || s->note_ro)
        return 0;
    char buf[CLASSIC_RUN_LEN + CLASSIC_REASON_LEN + 48];
    int n = snprintf(buf, sizeof(buf), "%s\n%d\n%lld\n%s\n", s->run, status, (long long)time(NULL),
                     reason);
    if (n >= (int)sizeof(buf))
        n = (int)sizeof(buf) - 1;
    if (ftruncate(s->lock_fd, 0) != 0 || pwrite(s->lock_fd, buf, (size_t)n, 0) != n)
        return classic_fail(s, what("write", "%s", s->lockfile), errno);
    return 0;
}

static int note_clear(struct session *s)
{
    if (s->note_ro || ftruncate(s->lock_fd, 0) == 0)
        return 0;
    return classic_fail(s, what("ftruncate", "%s", s->lockfile), errno);
}

/* The exit status our run's note gives, and its reason; 0 if there is none for our run. The
 * file is anybody's who can write it: parsed bounded, numbers checked. */
static int note_read(struct session *s, char *reason, size_t len)
{
    char buf[CLASSIC_RUN_LEN + CLASSIC_REASON_LEN + 48];
    if (!s->run[0])
        return 0;
    ssize_t n = pread(s->lock_fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return 0; /* empty, or unreadable: no note */
    buf[n] = '\0';
    char *line[4] = {buf, NULL, NULL, NULL};
    for (int i = 1; i < 4; i++) {
        line[i] = strchr(line[i - 1], '\n');
        if (!line[i])
            return 0;
        *line[i]++ = '\0';
    }
    if (strcmp(line[0], s->run) != 0)
        return 0;
    long long when = atoll(line[2]), now = (long long)time(NULL);
    if (when > now || now - when > CLASSIC_NOTE_S)
        return 0; /* an old note (or a clock step): not for us */
    line[3][strcspn(line[3], "\n")] = '\0';
    snprintf(reason, len, "%s", line[3]);
    int st = atoi(line[1]);
    return st > 0 && st < 256 ? st : CLASSIC_EXIT_PEER;
}

/* Remove the run's objects (we hold the flock and no registered client is alive); if the
 * run was stopped, leave the note that tells its latecomers. */
static int remove_all(struct session *s)
{
    int rc = 0;
    char why[CLASSIC_REASON_LEN];
    int stopped = s->ctl ? session_aborted(s, why, sizeof(why)) : 0;
    if (stopped)
        rc |= note_write(s, stopped, why);
    struct shmid_ds ds;
    int id = shmget(s->mem_key, 0, 0);
    bool seed_held = id >= 0 && shmctl(id, IPC_STAT, &ds) == 0 && seed_client_uses(&ds);
    if (!seed_held) {
        rc |= shm_remove(s, id);
        rc |= sem_remove(s, 0);
    }
    for (int n = 1; n <= 3; n++)
        rc |= sem_remove(s, n);
    /* The default lock file goes too (lock() copes with a waiter on the removed file), unless
     * it carries a note for a stopped run's latecomers. */
    if (!s->isolated && !(stopped && s->run[0]) && shm_unlink(s->lockname) != 0 && errno != ENOENT)
        rc |= classic_fail(s, what("shm_unlink", "%s", s->lockfile), errno);
    /* The control segment goes last: while it exists the clean-up is not complete, so a
     * client killed in here leaves a run that its waiting peers (wait_peers_out()) or the
     * next client (judge_run(): no live client, stale) finish removing. */
    rc |= shm_remove(s, s->ctl_id);
    s->ctl_id = -1;
    return rc ? CLASSIC_EXIT_ERROR : 0;
}

static void ctl_init(struct session *s)
{
    struct control *c = s->ctl;
    memset(c, 0, sizeof(*c));
    c->messages = s->messages;
    c->created = (int64_t)time(NULL);
    snprintf(c->run, sizeof(c->run), "%s", s->run);
    c->version = CTL_VERSION;
    c->magic = CTL_MAGIC; /* last: a creator killed before this leaves magic 0, i.e. stale */
}

static int enter(struct session *s)
{
    /* Registered before attaching, detached before leaving (session_leave()): so the active
     * slots never fall short of our clients attached, and session_seed_clients() never
     * mistakes one of ours for a seed client. */
    s->start = sb__proc_start_time(s->pid);
    slot_store(s->ctl, s->me, SLOT_ACTIVE, s->pid, s->start);
    s->registered = true;
    return attach(s, s->mem_id, (void **)&s->mem);
}

/* A fresh run: our control segment and turn semaphores; the seed's segment and semName fresh
 * too, unless a seed client is using them. */
static int create_run(struct session *s)
{
    char why[CLASSIC_REASON_LEN];
    int rc = note_read(s, why, sizeof(why));
    if (rc) {
        classic_say(s, "stopping: %s", why);
        return rc;
    }
    rc = note_clear(s);
    struct shmid_ds ds;
    if (!rc)
        rc = shm_inspect(s, s->mem_key, sizeof(struct Memory), &s->mem_id, &ds);
    if (rc)
        return rc;
    bool keep = s->mem_id >= 0 && seed_client_uses(&ds);
    if (s->mem_id >= 0 && !keep) {
        rc = shm_remove(s, s->mem_id);
        s->mem_id = -1;
    }
    for (int n = keep ? 1 : 0; n <= 3 && !rc; n++)
        rc = sem_remove(s, n); /* leftovers of a dead run */
    if (rc)
        return rc;
    s->ctl_id = shmget(s->ctl_key, sizeof(struct control), IPC_CREAT | IPC_EXCL | s->mode);
    if (s->ctl_id < 0)
        return classic_fail(s, what("shmget", "key 0x%08x", (unsigned)s->ctl_key), errno);
    rc = attach(s, s->ctl_id, (void **)&s->ctl);
    if (rc)
        return rc;
    ctl_init(s);
    if (!keep) {
        s->mem_id = shmget(s->mem_key, sizeof(struct Memory), IPC_CREAT | IPC_EXCL | (int)s->mode);
        if (s->mem_id < 0 && errno != EEXIST)
            return classic_fail(s, what("shmget", "key 0x%08x", (unsigned)s->mem_key), errno);
        /* EEXIST: a seed client (it takes no lock) has made it since we looked: share it. */
        keep = s->mem_id < 0;
        if (keep && (rc = shm_inspect(s, s->mem_key, sizeof(struct Memory), &s->mem_id, &ds)))
            return rc;
    }
    if (keep && s->mem_id >= 0) {
        /* A seed client made it 0666; we own it, so close it to other users. */
        ds.shm_perm.mode = (ds.shm_perm.mode & ~0777u) | s->mode;
        if (shmctl(s->mem_id, IPC_SET, &ds) != 0)
            return classic_fail(s, what("shmctl", "%d, IPC_SET", s->mem_id), errno);
    }
    for (int n = 1; n <= 3 && !rc; n++)
        rc = sem_make(s, n, true);
    /* semName is created at 0 (exchange.c says why): fresh, unless a seed client is at work.
     * One that has created it since we removed the stale one wins (EEXIST): it makes it at 0
     * too. Left open: a seed client that opened a stale semName in the instant between our
     * look at the segment and the sem_unlink above would keep an orphan; that takes a dead
     * run's leftovers and a seed client starting at that very moment. */
    if (!rc)
        rc = sem_make(s, 0, !keep);
    if (rc == -EEXIST)
        rc = sem_make(s, 0, false);
    return rc ? rc : enter(s);
}

static int join_run(struct session *s)
{
    struct shmid_ds ds;
    int rc = shm_inspect(s, s->mem_key, sizeof(struct Memory), &s->mem_id, &ds);
    if (rc)
        return rc;
    if (s->mem_id < 0) {
        classic_say(s, "the running exchange's segment (key 0x%08x) is gone", (unsigned)s->mem_key);
        return CLASSIC_EXIT_PEER;
    }
    for (int n = 0; n <= 3 && !rc; n++)
        rc = sem_attach(s, n);
    return rc ? rc : enter(s);
}

enum verdict { JOIN, STALE, STOP };

/* What to do with the run described by the control segment we found. */
static enum verdict judge_run(struct session *s, int *rc)
{
    struct control *c = s->ctl;
    if (c->magic == 0)
        return STALE; /* its creator died while making it */
    if (c->magic != CTL_MAGIC || c->version != CTL_VERSION) {
        classic_say(s,
                    "segment %d under key 0x%08x is not a classic control segment: not ours, "
                    "not touched",
                    s->ctl_id, (unsigned)s->ctl_key);
        *rc = CLASSIC_EXIT_ERROR;
        return STOP;
    }
    char run[CLASSIC_RUN_LEN];
    memcpy(run, c->run, sizeof(run));
    run[sizeof(run) - 1] = '\0';
    bool same = strcmp(run, s->run) == 0;
    int live = 0, dead = 0;
    pid_t dead_pid = 0;
    for (int n = 1; n <= 3; n++) {
        struct slot_view v = slot_load(c, n);
        if (v.state != SLOT_ACTIVE)
            continue;
        if (sb__proc_alive(v.pid, v.start))
            live = n;
        else
            dead = n, dead_pid = v.pid;
    }
    char why[CLASSIC_REASON_LEN];
    /* Our own run (same start.sh), begun moments ago, and a client of it already dead: a
     * start.sh latecomer. Stop, as the note would say. An older dead run is just stale. */
    long long age = (long long)time(NULL) - (long long)c->created;
    if (!live && same && s->run[0] && dead && age >= 0 && age <= CLASSIC_NOTE_S) {
        classic_say(s, "client %d (pid %d) of this exchange died before we joined; cleaning up",
                    dead, (int)dead_pid);
        session_set_abort(s, CLASSIC_EXIT_PEER, "client %d (pid %d) died", dead, (int)dead_pid);
        *rc = remove_all(s) ? CLASSIC_EXIT_ERROR : CLASSIC_EXIT_PEER;
        return STOP;
    }
    if (!live)
        return STALE;
    /* A live run is joined by whoever takes a free seat (a seed user may start the three
     * clients from three terminals); a taken seat is refused, so a second start.sh (or a
     * second client N) changes nothing. */
    *rc = CLASSIC_EXIT_REFUSED;
    struct slot_view mine = slot_load(c, s->me);
    if (mine.state != SLOT_EMPTY) {
        /* A second start.sh (or a second client N by hand): the seat is taken. */
        classic_say(s,
                    "another exchange is running in %s (its client %d %s, pid %d): refusing to "
                    "disturb it",
                    s->dir, s->me, mine.state == SLOT_ACTIVE ? "is running" : "has already run",
                    (int)mine.pid);
        return STOP;
    }
    if ((*rc = session_aborted(s, why, sizeof(why))) != 0) {
        classic_say(s, "stopping: %s", why);
        return STOP;
    }
    *rc = CLASSIC_EXIT_PEER;
    if (dead) {
        session_set_abort(s, CLASSIC_EXIT_PEER, "client %d (pid %d) died", dead, (int)dead_pid);
        classic_say(s, "client %d (pid %d) died; stopping", dead, (int)dead_pid);
        return STOP;
    }
    int messages = c->messages;
    if (messages != s->messages) {
        classic_say(s, "the running exchange carries %d messages, not %d", messages, s->messages);
        *rc = CLASSIC_EXIT_USAGE;
        return STOP;
    }
    return JOIN;
}

static int join_locked(struct session *s)
{
    struct shmid_ds ds;
    int rc = shm_inspect(s, s->ctl_key, sizeof(struct control), &s->ctl_id, &ds);
    if (rc)
        return rc;
    if (s->ctl_id >= 0) {
        rc = attach(s, s->ctl_id, (void **)&s->ctl);
        if (rc)
            return rc;
        switch (judge_run(s, &rc)) {
        case JOIN:
            return join_run(s);
        case STOP:
            return rc;
        case STALE:
            rc = detach(s, (void **)&s->ctl);
            rc |= shm_remove(s, s->ctl_id);
            s->ctl_id = -1;
            if (rc)
                return CLASSIC_EXIT_ERROR;
            break;
        }
    }
    rc = create_run(s);
    if (rc && s->ctl && !s->registered)
        remove_all(s); /* we made a fresh run alone, under the lock: undo it */
    return rc;
}

static int lock(struct session *s, int op)
{
    for (;;) {
        if (flock(s->lock_fd, op) != 0)
            return classic_fail(s, what("flock", "%s", s->lockfile), errno);
        if (op != LOCK_EX || s->isolated)
            return 0;
        /* The default lock file is removed by the last client out, under the lock: if that
         * happened while we waited, our descriptor is for a file nobody else will lock.
         * Take the lock again on the file now under the name. */
        struct stat held, named;
        if (fstat(s->lock_fd, &held) != 0)
            return classic_fail(s, what("fstat", "%s", s->lockfile), errno);
        if (stat(s->lockfile, &named) == 0 && named.st_ino == held.st_ino &&
            named.st_dev == held.st_dev)
            return 0;
        (void)close(s->lock_fd); /* only a lock rides on it */
        s->lock_fd = -1;
        int rc = open_default_lock(s);
        if (rc)
            return rc;
    }
}

int session_join(struct session *s)
{
    int rc = lock(s, LOCK_EX);
    if (rc)
        return rc;
    rc = join_locked(s);
    int rc2 = lock(s, LOCK_UN);
    return rc ? rc : rc2;
}

/* Our control segment has been removed (by us, the last client out, or the next run). We
 * are still attached, so its id cannot name another segment: SHM_DEST marks the removal. */
static bool ctl_removed(const struct session *s)
{
    struct shmid_ds ds;
    if (s->ctl_id < 0 || shmctl(s->ctl_id, IPC_STAT, &ds) != 0)
        return true; /* EINVAL/EIDRM: gone */
    return (ds.shm_perm.mode & SHM_DEST) != 0;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail with a valid clock and pointer */
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* We have left (DONE) while other clients were still active, so one of them is to be the
 * last out and remove everything. It may be killed before it gets there, or while it is at
 * it, and then nobody would: a kill -9 at the end of the exchange, just after we looked.
 * (A client being killed looks alive until it is a zombie: in that window even the lock it
 * held is already free, so a peer taking that lock cannot tell it will never leave.)
 * So wait until each of them has left or died, polling, for at most CLASSIC_LEAVE_WAIT_MS
 * (they notice the end or a stop within CLASSIC_WAIT_MS); if the control segment is then
 * still there (remove_all() removes it last), finish the clean-up under the lock. A peer
 * still alive after the wait (stopped, say) stays the last out and cleans up itself. */
static int wait_peers_out(struct session *s)
{
    long long end = mono_ms() + CLASSIC_LEAVE_WAIT_MS;
    const struct timespec nap = {0, 5 * 1000000L};
    while (others_alive(s)) {
        if (ctl_removed(s) || mono_ms() >= end)
            return 0;
        (void)nanosleep(&nap, NULL); /* EINTR: a signal, look again */
    }
    if (ctl_removed(s))
        return 0;
    int rc = lock(s, LOCK_EX);
    if (rc)
        return rc;
    struct stat st;
    if (!ctl_removed(s) && !others_alive(s))
        rc = remove_all(s);
    else if (!s->isolated && shmget(s->ctl_key, 0, 0) < 0 && errno == ENOENT &&
             fstat(s->lock_fd, &st) == 0 && st.st_size == 0 && shm_unlink(s->lockname) != 0 &&
             errno != ENOENT)
        /* Someone finished in the meantime, and lock() had to make the default lock file
         * anew: no run uses it (none exists, and we hold it), no note is in it: remove it. */
        rc = classic_fail(s, what("shm_unlink", "%s", s->lockfile), errno);
    return rc | lock(s, LOCK_UN);
}

/* Leave the run; the last registered client out removes everything, and one that was not the
 * last makes sure the others did (wait_peers_out()). Safe to call after a failed init or
 * join: it undoes what was done. */
int session_leave(struct session *s)
{
    int rc = 0;
    if (s->holding) {
        atomic_store_explicit(&s->ctl->holder, 0, memory_order_relaxed);
        s->holding = false;
        if (sem_post(s->sem[0]) != 0)
            rc = classic_fail(s, "sem_post(semName)", errno);
    }
    if (s->lock_fd < 0)
        return rc;
    bool locked = lock(s, LOCK_EX) == 0;
    if (!locked)
        rc = CLASSIC_EXIT_ERROR;
    rc |= detach(s, (void **)&s->mem);
    if (s->registered)
        slot_store(s->ctl, s->me, SLOT_DONE, s->pid, s->start);
    bool last = s->registered && locked && !others_alive(s);
    if (last)
        rc |= remove_all(s);
    for (int n = 0; n <= 3; n++) {
        if (s->sem[n] && sem_close(s->sem[n]) != 0)
            rc = classic_fail(s, "sem_close", errno);
        s->sem[n] = NULL;
    }
    if (locked)
        rc |= lock(s, LOCK_UN);
    if (s->registered && locked && !last)
        rc |= wait_peers_out(s); /* still attached to the control segment: it needs it */
    rc |= detach(s, (void **)&s->ctl);
    if (close(s->lock_fd) != 0)
        rc = classic_fail(s, "close", errno);
    s->lock_fd = -1;
    return rc ? CLASSIC_EXIT_ERROR : 0;
}
