/*
 * bus.c - finding, creating, checking, attaching and destroying a bus.
 *
 * Design notes
 * ------------
 * Name -> key file <dir>/<name>.bus -> "shmbus-bus 1 <shmid> <nonce>" -> System V segment.
 * Segments are created with IPC_PRIVATE: they have no key, so nobody can create one in
 * advance under a key we would later use (planting). The only way from a name to a segment
 * is the key file, which lives in a directory that belongs to the bus's owner and that no
 * one else can write to. On every attach the segment must belong to that owner *and* have
 * been created by that owner (shm_perm.uid and .cuid), with mode 0600 or 0660 and nothing
 * for others; the header must carry the name and the nonce the key file records.
 *
 * The owner is the caller (the default directory, and any $SHMBUS_DIR of theirs). A
 * $SHMBUS_DIR that belongs to another user is the shared-folder setup for group buses: it
 * is trusted as that user's only if nobody but its owner can write to it, and only 0660
 * buses of that owner are accepted there. The default directory is never trusted unless it
 * is the caller's own.
 *
 * Creating, replacing and removing key files happens under flock() on the directory, so
 * two processes creating one bus agree: the first creates it (segment filled and READY,
 * key file written to a temporary name, then renamed into place), the second finds the
 * key file and opens that bus. Openers take no lock: rename() makes the key file appear
 * whole or not at all. Nothing here removes a READY bus except destroy.
 *
 * If the creator dies in the middle: before rename() no key file names the new segment
 * (a bus nobody can reach, with nobody attached: sb__segment_orphan() says so, and
 * shmbus_clean() removes it); the lock dies with the process; the next creator starts over.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ipc.h>
#include <sys/random.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define KEY_SUFFIX   ".bus"
#define KEY_FORMAT   "shmbus-bus 1 %d %016llx\n"
#define LOCK_WAIT_NS 5000000000ull /* a creator holds the lock for milliseconds */

/* The runtime directory, opened: every key file is reached through fd (openat), so a
 * directory renamed or replaced under us is never half-used. */
struct busdir {
    char path[512];
    int fd;
    uid_t owner; /* whose buses live here: only segments of this uid are accepted */
    gid_t gid;
};

/* What a key file records. */
struct keyrec {
    int shmid;
    uint64_t nonce;
};

/* The one place the directory's name is decided; always absolute, so that a relative
 * $SHMBUS_DIR means the same folder whatever the working directory of a later command.
 * *explicit says whether the user chose it ($SHMBUS_DIR). */
static int runtime_dir(char *buf, size_t size, bool *explicit)
{
    const char *env = getenv("SHMBUS_DIR");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;
    if (buf == NULL)
        return -EINVAL;
    *explicit = env != NULL && env[0] != '\0';
    if (*explicit && env[0] == '/') {
        n = snprintf(buf, size, "%s", env);
    } else if (*explicit) {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) == NULL)
            return -errno;
        n = snprintf(buf, size, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, env);
    } else if (xdg != NULL && xdg[0] == '/') {
        n = snprintf(buf, size, "%s/shmbus", xdg);
    } else {
        n = snprintf(buf, size, "/tmp/shmbus-%u", (unsigned)geteuid());
    }
    if (n < 0 || (size_t)n >= size)
        return -ENAMETOOLONG;
    return n;
}

int shmbus_runtime_dir(char *buf, size_t size)
{
    bool explicit;
    return runtime_dir(buf, size, &explicit);
}

/*
 * Open the key directory (creating it if asked) and decide whose buses it holds. Ours: it
 * is made 0700 whatever the umask (a umask of 0277 would leave mkdir's 0500, unusable), and
 * group or other write bits are taken away. Another user's: only a $SHMBUS_DIR the caller
 * chose, that nobody but its owner can write to (the shared folder of a group bus).
 */
static int open_dir(bool create, struct busdir *d)
{
    bool explicit, made = false;
    d->fd = -1;
    int r = runtime_dir(d->path, sizeof(d->path), &explicit);
    if (r < 0)
        return r;
    if (create) {
        made = mkdir(d->path, 0700) == 0;
        if (!made && errno != EEXIST)
            return -errno;
    }
    int fd = open(d->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ELOOP ? -ENOTDIR : -errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode)) {
        close(fd);
        return -ENOTDIR;
    }
    if (st.st_uid == geteuid()) {
        mode_t want = made ? 0700 : ((st.st_mode & 02755 & ~0022u) | 0700); /* keeps setgid */
        if ((st.st_mode & 07777) != want && fchmod(fd, want) != 0) {
            r = -errno;
            close(fd);
            return r;
        }
    } else if (!explicit || (st.st_mode & 0022) != 0) {
        close(fd);
        return -EACCES;
    }
    d->fd = fd;
    d->owner = st.st_uid;
    d->gid = st.st_gid;
    return 0;
}

static void close_dir(struct busdir *d)
{
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
}

static int key_file(const char *name, char *file, size_t size)
{
    int n = snprintf(file, size, "%s%s", name, KEY_SUFFIX);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Parse an open key file. -EUCLEAN if it is not one of ours. Never blocks: the caller
 * opened it O_NONBLOCK and checked it is a regular file. */
static int parse_key(int fd, struct keyrec *k)
{
    char buf[128];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    int shmid, used = -1;
    unsigned long long nonce;
    if (sscanf(buf, "shmbus-bus 1 %d %llx\n%n", &shmid, &nonce, &used) != 2 || used != n ||
        shmid < 0)
        return -EUCLEAN;
    k->shmid = shmid;
    k->nonce = nonce;
    return 0;
}

/* Open a key file without following links and without blocking (a FIFO would block a
 * plain open forever); refuse anything that is not a regular file. */
static int open_key(int dirfd, const char *file, struct stat *st)
{
    if (fstatat(dirfd, file, st, AT_SYMLINK_NOFOLLOW) != 0)
        return -errno;
    if (!S_ISREG(st->st_mode))
        return -EUCLEAN;
    int fd = openat(dirfd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return errno == ELOOP ? -EUCLEAN : -errno;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -EUCLEAN;
    }
    return fd;
}

/* Read bus `name`'s key file: it must be a regular file of the directory's owner that no
 * one else can write. */
static int read_key(const struct busdir *d, const char *name, struct keyrec *k)
{
    char file[64];
    int r = key_file(name, file, sizeof(file));
    if (r < 0)
        return r;
    struct stat st;
    int fd = open_key(d->fd, file, &st);
    if (fd < 0)
        return fd;
    if (st.st_uid != d->owner || (st.st_mode & 0022) != 0)
        r = -EACCES;
    else
        r = parse_key(fd, k);
    close(fd);
    return r;
}

/* Does the key file at absolute path `path` name this segment? True when it cannot be
 * read for any reason other than absence: never call a segment unreachable on a guess. */
static bool key_names(const char *path, int shmid, uint64_t nonce)
{
    if (path[0] != '/')
        return false;
    const char *slash = strrchr(path, '/');
    char dir[512];
    size_t dl = (size_t)(slash - path);
    if (dl >= sizeof(dir))
        return false;
    memcpy(dir, path, dl);
    dir[dl] = '\0';
    int dfd = open(dl == 0 ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return errno != ENOENT && errno != ENOTDIR;
    struct stat st;
    int fd = open_key(dfd, slash + 1, &st);
    close(dfd);
    if (fd < 0)
        return fd != -ENOENT && fd != -EUCLEAN;
    struct keyrec k;
    int r = parse_key(fd, &k);
    close(fd);
    if (r < 0)
        return r != -EUCLEAN;
    return k.shmid == shmid && k.nonce == nonce;
}

/* Write bus `name`'s key file whole: to a temporary name, then rename() over the old one.
 * Called with the directory locked, so the temporary name is ours alone. */
static int write_key(const struct busdir *d, const char *name, int shmid, uint64_t nonce,
                     uint32_t mode)
{
    char file[64], tmp[72], text[96];
    int r = key_file(name, file, sizeof(file));
    if (r < 0)
        return r;
    snprintf(tmp, sizeof(tmp), ".%s.new", file);
    unlinkat(d->fd, tmp, 0); /* left by a creator that died */
    int fd = openat(d->fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int n = snprintf(text, sizeof(text), KEY_FORMAT, shmid, (unsigned long long)nonce);
    /* The group may read a group bus's key file, never write it. fchmod: open()'s mode
     * went through the umask. */
    if (fchmod(fd, mode & 0640) != 0 || write(fd, text, (size_t)n) != n)
        r = errno != 0 ? -errno : -EIO;
    /* A group bus's key file belongs to the folder's group, so that its members can read
     * it (a setgid folder does this by itself; this covers the others when allowed). */
    if (r == 0 && mode == 0660 && fchown(fd, (uid_t)-1, d->gid) != 0)
        r = 0;
    close(fd);
    if (r == 0 && renameat(d->fd, tmp, d->fd, file) != 0)
        r = -errno;
    if (r < 0)
        unlinkat(d->fd, tmp, 0);
    return r;
}

/* Creators, destroyers and cleaners of key files take turns. Bounded: a process holding
 * the lock for seconds is stopped or stuck, and the caller is told (-EBUSY). */
static int lock_dir(const struct busdir *d)
{
    uint64_t deadline = sb__now_ns() + LOCK_WAIT_NS;
    for (;;) {
        if (flock(d->fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return -errno;
        if (sb__now_ns() > deadline)
            return -EBUSY;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static uint64_t make_nonce(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
        v = sb__realtime_ns() ^ ((uint64_t)getpid() << 32);
    return v | 1; /* never 0 */
}

/* Fill a freshly created, zeroed segment and publish it. */
static void init_segment(uint8_t *base, const struct sb_layout *lay, const char *name,
                         uint32_t mode, uint64_t nonce, const char *key_path)
{
    struct sb_header *h = (struct sb_header *)base;
    h->magic = SB_MAGIC;
    h->layout_version = SB_LAYOUT_VERSION;
    h->header_size = SB_HEADER_SIZE;
    h->mode = mode;
    h->creator_uid = (uint32_t)geteuid();
    h->creator_pid = (int32_t)getpid();
    h->max_clients = lay->max_clients;
    h->slots = lay->slots;
    h->msg_size = lay->msg_size;
    h->ring_units = lay->ring_units;
    h->entry_size = lay->entry_size;
    h->mbox_size = lay->mbox_size;
    h->registry_off = lay->registry_off;
    h->mbox_off = lay->mbox_off;
    h->total_size = lay->total_size;
    h->nonce = nonce;
    h->created_ns = sb__realtime_ns();
    snprintf(h->name, sizeof(h->name), "%s", name);
    size_t kl = strnlen(key_path, sizeof(h->key_path) - 1); /* create_new() checked it fits */
    memcpy(h->key_path, key_path, kl);
    h->key_path[kl] = '\0';

    /* Nothing else: registry entries, semaphores and mailboxes are valid all zero, and a new
     * segment is zero pages until touched (internal.h). Memory grows with use. */
    /* Publish: everything above is visible to whoever sees READY.
     * Pairs with the acquire load of state in check_header(). */
    atomic_store_explicit(&h->state, SB_BUS_READY, memory_order_release);
}

/* The header of the segment a key file led to, against what we know on our own. -ESTALE
 * when it is another bus (the id was reused) or a destroyed one: the key file is stale. */
static int check_header(const struct sb_header *h, size_t segsz, const char *name,
                        const struct keyrec *k, uid_t owner, struct sb_layout *lay)
{
    if (h->magic != SB_MAGIC)
        return -EPROTO;
    if (h->layout_version != SB_LAYOUT_VERSION || h->header_size != SB_HEADER_SIZE)
        return -EPROTONOSUPPORT;
    /* Pairs with the release store of READY in init_segment() (and of DESTROYED in
     * shmbus_bus_destroy()). */
    uint32_t st = atomic_load_explicit(&h->state, memory_order_acquire);
    if (h->nonce != k->nonce)
        return -ESTALE;
    if (st == SB_BUS_DESTROYED)
        return -ESTALE;
    if (st != SB_BUS_READY || strncmp(h->name, name, sizeof(h->name)) != 0 ||
        h->creator_uid != (uint32_t)owner)
        return -EBADMSG; /* key files name only READY buses: this one was scribbled on */
    int r =
        sb__layout(lay, h->max_clients, h->slots, h->msg_size, (uint64_t)h->ring_units * SB_UNIT);
    if (r < 0)
        return -EBADMSG;
    if (h->ring_units != lay->ring_units || h->entry_size != lay->entry_size ||
        h->mbox_size != lay->mbox_size || h->registry_off != lay->registry_off ||
        h->mbox_off != lay->mbox_off || h->total_size != lay->total_size)
        return -EBADMSG;
    if (lay->total_size > segsz)
        return -EBADMSG;
    return 0;
}

/* The segment must belong to the bus's owner, have been created by that owner, and be
 * 0600 or 0660 (0660 only when the owner is someone else: a group bus). */
static int check_perm(const struct shmid_ds *ds, uid_t owner)
{
    if (ds->shm_perm.uid != owner || ds->shm_perm.cuid != owner)
        return -EACCES;
    unsigned m = ds->shm_perm.mode & 0777;
    if (m != 0600 && m != 0660)
        return -EACCES;
    if (owner != geteuid() && m != 0660)
        return -EACCES;
    return 0;
}

/* IPC_STAT errors that mean "no such segment (any more)". */
static int gone_or(int err)
{
    return err == EINVAL || err == EIDRM ? -ESTALE : -err;
}

/* Attach to the bus the key file of `name` names. */
static int open_existing(const struct busdir *d, const char *name, bool rdonly, shmbus_bus *b)
{
    struct keyrec k;
    int r = read_key(d, name, &k);
    if (r < 0)
        return r;
    struct shmid_ds ds;
    if (shmctl(k.shmid, IPC_STAT, &ds) != 0)
        return gone_or(errno);
    r = check_perm(&ds, d->owner);
    if (r < 0)
        return r;
    if (ds.shm_segsz < SB_HEADER_SIZE)
        return -EPROTO;
    void *p = shmat(k.shmid, NULL, rdonly ? SHM_RDONLY : 0);
    if (p == (void *)-1)
        return gone_or(errno);
    /* The id may have been removed and reused between IPC_STAT and shmat: look again now
     * that our attachment pins what it names. */
    if (shmctl(k.shmid, IPC_STAT, &ds) != 0)
        r = gone_or(errno);
    else if ((r = check_perm(&ds, d->owner)) == 0)
        r = ds.shm_segsz < SB_HEADER_SIZE
                ? -EPROTO
                : check_header(p, ds.shm_segsz, name, &k, d->owner, &b->lay);
    if (r < 0) {
        shmdt(p);
        return r;
    }
    b->shmid = k.shmid;
    b->base = p;
    b->hdr = p;
    return 0;
}

/* Make a new bus and its key file. Called with the directory locked. */
static int create_new(const struct busdir *d, const char *name, const struct sb_layout *lay,
                      uint32_t mode, const struct shmbus_durable *dur, shmbus_bus *b)
{
    char file[64], path[600];
    int r = key_file(name, file, sizeof(file));
    if (r < 0)
        return r;
    if (snprintf(path, sizeof(path), "%s/%s", d->path, file) >=
        (int)sizeof(((struct sb_header *)0)->key_path))
        return -ENAMETOOLONG;
    /* IPC_PRIVATE: a fresh segment no one can have made in advance. */
    int shmid = shmget(IPC_PRIVATE, lay->total_size, IPC_CREAT | IPC_EXCL | (int)mode);
    if (shmid < 0)
        return -errno;
    struct shmid_ds ds;
    void *p = (void *)-1;
    r = shmctl(shmid, IPC_STAT, &ds) == 0 ? 0 : -errno;
    /* A group bus: the shared folder's group is the one let in. */
    if (r == 0 && mode == 0660 && ds.shm_perm.gid != d->gid) {
        ds.shm_perm.gid = d->gid;
        r = shmctl(shmid, IPC_SET, &ds) == 0 ? 0 : -errno;
    }
    if (r == 0) {
        p = shmat(shmid, NULL, 0);
        r = p == (void *)-1 ? -errno : 0;
    }
    uint64_t nonce = make_nonce();
    if (r == 0) {
        /* A durable bus: its journal (and a rebuild from it) before anyone can attach. */
        b->base = p;
        b->hdr = p;
        b->lay = *lay;
        r = sb__journal_create(b, dur);
    }
    if (r == 0) {
        init_segment(p, lay, name, mode, nonce, path);
        sb__tp(SB_TP_CREATING); /* test-only: made, not yet named by a key file */
        r = write_key(d, name, shmid, nonce, mode);
    }
    if (r < 0) {
        sb__journal_close(b);
        if (p != (void *)-1)
            shmdt(p);
        shmctl(shmid, IPC_RMID, NULL);
        return r;
    }
    b->shmid = shmid;
    b->base = p;
    b->hdr = p;
    b->lay = *lay;
    return 0;
}

int shmbus_bus_open(const char *name, const struct shmbus_bus_opts *opts, unsigned flags,
                    shmbus_bus **out)
{
    return sb__bus_open(name, opts, NULL, flags, out);
}

int sb__bus_open(const char *name, const struct shmbus_bus_opts *opts,
                 const struct shmbus_durable *dur, unsigned flags, shmbus_bus **out)
{
    if (out == NULL || !sb__valid_name(name))
        return -EINVAL;
    *out = NULL;
    if (flags & ~(SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL | SHMBUS_OPEN_RDONLY))
        return -EINVAL;
    bool create = flags & SHMBUS_OPEN_CREATE;
    if (create && (flags & SHMBUS_OPEN_RDONLY))
        return -EINVAL;

    struct shmbus_bus_opts o = {0};
    if (opts != NULL)
        o = *opts;
    uint32_t mode = o.mode ? o.mode : SHMBUS_DEFAULT_MODE;
    if (mode != 0600 && mode != 0660)
        return -EINVAL;
    struct sb_layout lay;
    int r = sb__layout(&lay, o.max_clients ? o.max_clients : SHMBUS_DEFAULT_MAX_CLIENTS,
                       o.slots ? o.slots : SHMBUS_DEFAULT_SLOTS,
                       o.msg_size ? o.msg_size : SHMBUS_DEFAULT_MSG_SIZE, o.ring_bytes);
    if (r < 0)
        return r;

    struct busdir d;
    r = open_dir(create, &d);
    if (r < 0)
        return r;
    shmbus_bus *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        close_dir(&d);
        return -ENOMEM;
    }
    snprintf(b->name, sizeof(b->name), "%s", name);
    b->rdonly = flags & SHMBUS_OPEN_RDONLY;
    b->uid = geteuid();

    r = open_existing(&d, name, b->rdonly, b);
    if (r == 0 && create && (flags & SHMBUS_OPEN_EXCL)) {
        shmdt(b->base);
        r = -EEXIST;
    } else if (create && (r == -ENOENT || r == -ESTALE)) {
        /* Under the lock, look again: another creator may have won meanwhile. */
        r = lock_dir(&d);
        if (r == 0)
            r = open_existing(&d, name, false, b);
        if (r == 0 && (flags & SHMBUS_OPEN_EXCL)) {
            shmdt(b->base);
            r = -EEXIST;
        } else if (r == -ENOENT || r == -ESTALE) {
            r = create_new(&d, name, &lay, mode, dur, b);
        }
    }
    close_dir(&d); /* and with it the lock */
    if (r == 0 && b->j == NULL) {
        /* An existing bus (a created one has its journal already): a durable one's. */
        r = sb__journal_attach(b);
        if (r < 0)
            shmdt(b->base);
    }
    if (r < 0) {
        free(b);
        return r == -ESTALE ? -ENOENT : r;
    }
    *out = b;
    return 0;
}

void shmbus_bus_close(shmbus_bus *bus)
{
    if (bus == NULL)
        return;
    sb__journal_close(bus);
    shmdt(bus->base);
    free(bus);
}

/* Mark a bus destroyed, wake its sleepers, remove its segment. */
static int remove_bus(shmbus_bus *b)
{
    /* Tell attached processes first, then remove; they keep their mapping until detach.
     * Release pairs with the acquire load of state in check_header(). */
    atomic_store_explicit(&b->hdr->state, SB_BUS_DESTROYED, memory_order_release);
    for (uint32_t id = 1; id <= b->lay.max_clients; id++) {
        /* Wake every sleeper so it sees DESTROYED now rather than at its next slice. */
        struct sb_mbox *mb = sb__mbox(b, id);
        if (atomic_load_explicit(&mb->sleeping, memory_order_relaxed))
            sb__sem_post(&mb->data_sem);
        if (atomic_load_explicit(&mb->space_waiters, memory_order_relaxed))
            sb__sem_post(&mb->space_sem);
    }
    sb__journal_close(b);
    shmdt(b->base);
    return shmctl(b->shmid, IPC_RMID, NULL) == 0 ? 0 : -errno;
}

int shmbus_bus_destroy(const char *name)
{
    if (!sb__valid_name(name))
        return -EINVAL;
    char file[64];
    struct busdir d;
    int r = key_file(name, file, sizeof(file));
    if (r == 0)
        r = open_dir(false, &d);
    if (r < 0)
        return r;
    if (d.owner != geteuid())
        r = -EPERM; /* a group member uses a group bus; its owner removes it */
    if (r == 0)
        r = lock_dir(&d);
    shmbus_bus b = {0};
    if (r == 0)
        r = open_existing(&d, name, false, &b);
    if (r == -ESTALE) {
        /* No segment any more (or the id now holds something else): just the key file. */
        unlinkat(d.fd, file, 0);
        r = -ENOENT;
    } else if (r == 0) {
        r = remove_bus(&b);
        if (r == 0) {
            unlinkat(d.fd, file, 0);
            sb__evfd_remove_all(d.fd, name); /* clients killed while holding one */
        }
    }
    close_dir(&d);
    return r;
}

int shmbus_bus_shmid(const char *name)
{
    if (!sb__valid_name(name))
        return -EINVAL;
    struct busdir d;
    int r = open_dir(false, &d);
    if (r < 0)
        return r;
    struct keyrec k;
    r = read_key(&d, name, &k);
    close_dir(&d);
    return r < 0 ? r : k.shmid;
}

/* ---- segments without a name ------------------------------------------------------------ */

bool sb__segment_orphan(int shmid, const struct shmid_ds *ds, const struct sb_header *h)
{
    if (h->magic != SB_MAGIC || ds->shm_perm.uid != geteuid() || ds->shm_perm.cuid != geteuid())
        return false; /* not a bus of ours: never ours to judge */
    if (ds->shm_nattch != 0)
        return false; /* someone uses it, named or not */
    char kp[sizeof(h->key_path)];
    memcpy(kp, h->key_path, sizeof(kp));
    kp[sizeof(kp) - 1] = '\0';
    return !key_names(kp, shmid, h->nonce);
}

int sb__each_segment(sb__segment_fn fn, void *arg)
{
    struct shm_info si;
    int maxidx = shmctl(0, SHM_INFO, (struct shmid_ds *)(void *)&si);
    if (maxidx < 0)
        return -errno;
    int found = 0;
    for (int i = 0; i <= maxidx; i++) {
        struct shmid_ds ds;
        int shmid = shmctl(i, SHM_STAT, &ds);
        if (shmid < 0 || ds.shm_perm.uid != geteuid() || ds.shm_segsz < SB_HEADER_SIZE)
            continue;
        void *p = shmat(shmid, NULL, SHM_RDONLY);
        if (p == (void *)-1)
            continue;
        struct sb_header h;
        memcpy(&h, p, sizeof(h));
        shmdt(p);
        if (h.magic != SB_MAGIC)
            continue;
        /* Counted without us: the attachment above is gone. */
        if (shmctl(shmid, IPC_STAT, &ds) != 0)
            continue;
        found += fn(shmid, &ds, &h, arg);
    }
    return found;
}

/* ---- destroy --force -------------------------------------------------------------------- */

struct force {
    const char *name;
    const char *path;
    shmbus_clean_fn cb;
    void *arg;
};

static void say(const struct force *f, const char *kind, const char *what, const char *why)
{
    if (f->cb != NULL)
        f->cb(kind, what, why, f->arg);
}

static void describe_segment(int shmid, const struct shmid_ds *ds, char *what, size_t size)
{
    snprintf(what, size, "shmid %d, key 0x%08x, %zu bytes, %u attached", shmid,
             (unsigned)ds->shm_perm.__key, (size_t)ds->shm_segsz, (unsigned)ds->shm_nattch);
}

/* A half-made or unreachable segment made for this bus: remove it too. */
static int force_leftover(int shmid, const struct shmid_ds *ds, const struct sb_header *h,
                          void *arg)
{
    const struct force *f = arg;
    char kp[sizeof(h->key_path)], what[160];
    memcpy(kp, h->key_path, sizeof(kp));
    kp[sizeof(kp) - 1] = '\0';
    if (strcmp(kp, f->path) != 0 || !sb__segment_orphan(shmid, ds, h))
        return 0;
    describe_segment(shmid, ds, what, sizeof(what));
    say(f, "segment", what, "a shmbus segment made for this bus that no key file names");
    return shmctl(shmid, IPC_RMID, NULL) == 0 ? 1 : 0;
}

static const char *file_kind(mode_t m)
{
    if (S_ISREG(m))
        return "a regular file";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISLNK(m))
        return "a symbolic link";
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISSOCK(m))
        return "a socket";
    return "a device";
}

int shmbus_bus_destroy_force(const char *name, shmbus_clean_fn cb, void *arg)
{
    if (!sb__valid_name(name))
        return -EINVAL;
    char file[64], path[600], what[200], why[160];
    struct busdir d;
    int r = key_file(name, file, sizeof(file));
    if (r == 0)
        r = open_dir(false, &d);
    if (r < 0)
        return r;
    if (d.owner != geteuid() || snprintf(path, sizeof(path), "%s/%s", d.path, file) >= 512) {
        close_dir(&d);
        return -EPERM;
    }
    r = lock_dir(&d);
    if (r < 0) {
        close_dir(&d);
        return r;
    }
    int found = 0;
    struct keyrec k;
    struct shmid_ds ds;
    struct stat st;
    r = read_key(&d, name, &k);
    if (r == 0 && shmctl(k.shmid, IPC_STAT, &ds) == 0 && ds.shm_perm.uid == geteuid()) {
        shmbus_bus b = {0};
        int why_r = open_existing(&d, name, false, &b);
        describe_segment(k.shmid, &ds, what, sizeof(what));
        if (why_r == 0)
            snprintf(why, sizeof(why), "the bus %s", name);
        else
            snprintf(why, sizeof(why), "named by the key file: %s", shmbus_strerror(why_r));
        say(&(struct force){name, path, cb, arg}, "segment", what, why);
        if (why_r == 0)
            remove_bus(&b);
        else
            shmctl(k.shmid, IPC_RMID, NULL);
        found++;
    }
    if (fstatat(d.fd, file, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        snprintf(why, sizeof(why), "%s%s", file_kind(st.st_mode),
                 r == 0 ? "" : (r == -EUCLEAN ? ", not a shmbus key file" : ""));
        say(&(struct force){name, path, cb, arg}, "key file", path, why);
        if (unlinkat(d.fd, file, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) == 0)
            found++;
    }
    struct force f = {name, path, cb, arg};
    r = sb__each_segment(force_leftover, &f);
    if (r > 0)
        found += r;
    close_dir(&d);
    return found > 0 ? found : -ENOENT;
}

/* ---- for shmbus_clean() ---------------------------------------------------------------- */

int sb__clean_key(const char *name, int dry_run, char *path, size_t size)
{
    char file[64];
    struct busdir d;
    int r = key_file(name, file, sizeof(file));
    if (r == 0)
        r = open_dir(false, &d);
    if (r < 0)
        return r;
    if (snprintf(path, size, "%s/%s", d.path, file) >= (int)size || d.owner != geteuid()) {
        close_dir(&d);
        return 0;
    }
    r = dry_run ? 0 : lock_dir(&d);
    shmbus_bus b = {0};
    if (r == 0)
        r = open_existing(&d, name, true, &b);
    if (r == 0)
        shmdt(b.base);
    if (r == -ESTALE && !dry_run)
        unlinkat(d.fd, file, 0);
    close_dir(&d);
    return r == -ESTALE ? 1 : 0;
}

int shmbus_bus_info(shmbus_bus *bus, struct shmbus_bus_info *info)
{
    if (bus == NULL || info == NULL)
        return -EINVAL;
    memset(info, 0, sizeof(*info));
    const struct sb_header *h = bus->hdr;
    snprintf(info->name, sizeof(info->name), "%s", bus->name);
    info->max_clients = bus->lay.max_clients;
    info->slots = bus->lay.slots;
    info->msg_size = bus->lay.msg_size;
    info->ring_bytes = (uint64_t)bus->lay.ring_units * SB_UNIT;
    info->mode = h->mode & 0777;
    info->layout_version = SB_LAYOUT_VERSION;
    info->creator_uid = (uid_t)h->creator_uid;
    info->creator_pid = (pid_t)h->creator_pid;
    info->shmid = bus->shmid;
    info->segment_size = (size_t)bus->lay.total_size;
    info->created_ns = h->created_ns;
    info->nonce = h->nonce;
    struct shmid_ds ds;
    if (shmctl(bus->shmid, IPC_STAT, &ds) == 0)
        info->attached = (uint32_t)ds.shm_nattch;
    for (uint32_t id = 1; id <= bus->lay.max_clients; id++) {
        /* Acquire pairs with the release stores of state in shmbus_join(), shmbus_leave() and
         * cleanup_entry(); only the kind is used here, to count. */
        uint64_t s = atomic_load_explicit(&sb__entry(bus, id)->state, memory_order_acquire);
        if (SB_ST_KIND(s) == SB_LIVE)
            info->live_clients++;
    }
    return sb__destroyed(bus) ? -EIDRM : 0;
}

ssize_t shmbus_bus_size(const struct shmbus_bus_opts *opts)
{
    struct shmbus_bus_opts o = {0};
    if (opts != NULL)
        o = *opts;
    struct sb_layout lay;
    int r = sb__layout(&lay, o.max_clients ? o.max_clients : SHMBUS_DEFAULT_MAX_CLIENTS,
                       o.slots ? o.slots : SHMBUS_DEFAULT_SLOTS,
                       o.msg_size ? o.msg_size : SHMBUS_DEFAULT_MSG_SIZE, o.ring_bytes);
    if (r < 0)
        return r;
    return (ssize_t)lay.total_size;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

int shmbus_bus_names(char (*names)[SHMBUS_NAME_MAX + 1], size_t n)
{
    if (names == NULL && n != 0)
        return -EINVAL;
    char dir[512];
    int r = shmbus_runtime_dir(dir, sizeof(dir));
    if (r < 0)
        return r;
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : -errno;
    size_t count = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name), sl = strlen(KEY_SUFFIX);
        if (len <= sl || strcmp(de->d_name + len - sl, KEY_SUFFIX) != 0)
            continue;
        char nm[SHMBUS_NAME_MAX + 1];
        if (len - sl > SHMBUS_NAME_MAX)
            continue;
        memcpy(nm, de->d_name, len - sl);
        nm[len - sl] = '\0';
        if (!sb__valid_name(nm))
            continue;
        if (count < n)
            memcpy(names[count], nm, sizeof(nm));
        count++;
    }
    closedir(d);
    size_t filled = count < n ? count : n;
    if (filled > 1)
        qsort(names, filled, sizeof(names[0]), cmp_names);
    return count > (size_t)INT32_MAX ? INT32_MAX : (int)count;
}
