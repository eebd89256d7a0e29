/*
 * bus.c - finding, creating, checking, attaching and destroying a bus.
 *
 * Design notes
 * ------------
 * Name -> key file <dir>/<name>.bus -> ftok(key file, 'S') -> System V segment. The key
 * directory is private (0700, ours); the key file and segment are 0600 (or 0660 when asked)
 * whatever the umask. ftok() promises no uniqueness, so the header stores the bus name:
 * a segment under our key that is not a shmbus bus, or is another bus, is refused and left
 * untouched.
 *
 * Creation is IPC_CREAT|IPC_EXCL, so exactly one process creates; it fills the header and
 * publishes state READY last (release). An opener that finds the segment before READY waits
 * up to a second, then asks the kernel who created it (shm_cpid): if that process is dead,
 * the half-made segment is stale and is replaced; otherwise the opener reports -EBUSY.
 * Nothing here ever removes a READY bus except shmbus_bus_destroy().
 *
 * If the creator dies in the middle: before shmget, nothing exists; after shmget and before
 * READY, the next opener replaces the segment as above; after READY, the bus is complete.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/random.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define KEY_PROJ   'S'
#define KEY_SUFFIX ".bus"

int shmbus_runtime_dir(char *buf, size_t size)
{
    const char *env = getenv("SHMBUS_DIR");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;
    if (buf == NULL)
        return -EINVAL;
    if (env != NULL && env[0] != '\0')
        n = snprintf(buf, size, "%s", env);
    else if (xdg != NULL && xdg[0] == '/')
        n = snprintf(buf, size, "%s/shmbus", xdg);
    else
        n = snprintf(buf, size, "/tmp/shmbus-%u", (unsigned)geteuid());
    if (n < 0 || (size_t)n >= size)
        return -ENAMETOOLONG;
    return n;
}

/* Make sure the key directory exists, is a directory, is ours and is not open to others. */
static int ensure_dir(const char *dir, bool create)
{
    if (create && mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    struct stat st;
    if (lstat(dir, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    if (st.st_uid != geteuid())
        return -EACCES;
    if ((st.st_mode & 0022) != 0 && chmod(dir, st.st_mode & 07755 & ~0022u) != 0)
        return -errno;
    return 0;
}

static int key_path(const char *name, char *path, size_t size)
{
    char dir[512];
    int r = shmbus_runtime_dir(dir, sizeof(dir));
    if (r < 0)
        return r;
    r = snprintf(path, size, "%s/%s%s", dir, name, KEY_SUFFIX);
    if (r < 0 || (size_t)r >= size)
        return -ENAMETOOLONG;
    return 0;
}

/* The key of bus `name`; creates its key file (mode `mode`) when create is set. */
static int bus_key(const char *name, bool create, uint32_t mode, key_t *key)
{
    char dir[512], path[600];
    int r = shmbus_runtime_dir(dir, sizeof(dir));
    if (r < 0)
        return r;
    r = ensure_dir(dir, create);
    if (r < 0)
        return (r == -ENOENT && !create) ? -ENOENT : r;
    r = key_path(name, path, sizeof(path));
    if (r < 0)
        return r;
    bool made = false;
    int fd = -1;
    if (create) {
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_CREAT | O_EXCL, mode);
        made = fd >= 0;
        if (fd < 0 && errno != EEXIST)
            return -errno;
    }
    if (fd < 0)
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        r = -errno;
        close(fd);
        return r;
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        close(fd);
        return -EACCES;
    }
    /* open()'s mode is filtered by the umask: set the mode we promised. */
    if (made && (st.st_mode & 0777) != mode && fchmod(fd, mode) != 0) {
        r = -errno;
        close(fd);
        return r;
    }
    close(fd);
    key_t k = ftok(path, KEY_PROJ);
    if (k == (key_t)-1)
        return -errno;
    *key = k;
    return 0;
}

static uint64_t make_nonce(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
        v = sb__realtime_ns() ^ ((uint64_t)getpid() << 32);
    return v;
}

/* Fill a freshly created, zeroed segment and publish it. */
static int init_segment(uint8_t *base, const struct sb_layout *lay, const char *name, uint32_t mode)
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
    h->slot_size = lay->slot_size;
    h->entry_size = lay->entry_size;
    h->mbox_size = lay->mbox_size;
    h->registry_off = lay->registry_off;
    h->mbox_off = lay->mbox_off;
    h->total_size = lay->total_size;
    h->nonce = make_nonce();
    h->created_ns = sb__realtime_ns();
    snprintf(h->name, sizeof(h->name), "%s", name);
    if (key_path(name, h->key_path, sizeof(h->key_path)) != 0)
        h->key_path[0] = '\0';

    shmbus_bus tmp = {.hdr = h, .base = base, .lay = *lay};
    for (uint32_t id = 1; id <= lay->max_clients; id++) {
        struct sb_entry *e = sb__entry(&tmp, id);
        sb__sem_init(&e->ack_sem);
        struct sb_mbox *mb = sb__mbox(&tmp, id);
        sb__sem_init(&mb->data_sem);
        sb__sem_init(&mb->space_sem);
        /* Slot i starts free for position i (see internal.h). */
        for (uint64_t pos = 0; pos < lay->slots; pos++)
            atomic_store_explicit(&sb__slot(&tmp, mb, pos)->seq, pos, memory_order_relaxed);
    }
    /* Publish: everything above is visible to whoever sees READY.
     * Pairs with the acquire load of state in check_header(). */
    atomic_store_explicit(&h->state, SB_BUS_READY, memory_order_release);
    return 0;
}

/* Check a READY header against what we can verify on our own. */
static int check_header(const struct sb_header *h, size_t segsz, const char *name,
                        struct sb_layout *lay)
{
    if (h->magic != SB_MAGIC)
        return -EPROTO;
    if (h->layout_version != SB_LAYOUT_VERSION || h->header_size != SB_HEADER_SIZE)
        return -EPROTONOSUPPORT;
    if (strncmp(h->name, name, sizeof(h->name)) != 0)
        return -EADDRINUSE;
    int r = sb__layout(lay, h->max_clients, h->slots, h->msg_size);
    if (r < 0)
        return -EBADMSG;
    if (h->slot_size != lay->slot_size || h->entry_size != lay->entry_size ||
        h->mbox_size != lay->mbox_size || h->registry_off != lay->registry_off ||
        h->mbox_off != lay->mbox_off || h->total_size != lay->total_size)
        return -EBADMSG;
    if (lay->total_size > segsz)
        return -EBADMSG;
    return 0;
}

/* Our segment: created by us (or shared with our group by its owner), not open to others. */
static int check_perm(const struct shmid_ds *ds)
{
    if (ds->shm_perm.uid != geteuid() && ds->shm_perm.cuid != geteuid()) {
        /* Someone else's bus shared with a group we are in is acceptable (mode 0660). */
        if ((ds->shm_perm.mode & 0060) == 0)
            return -EACCES;
    }
    if ((ds->shm_perm.mode & 0007) != 0)
        return -EACCES; /* open to every local user: not a bus we would trust */
    return 0;
}

static int attach(int shmid, bool rdonly, uint8_t **base, struct shmid_ds *ds)
{
    if (shmctl(shmid, IPC_STAT, ds) != 0)
        return -errno;
    int r = check_perm(ds);
    if (r < 0)
        return r;
    if (ds->shm_segsz < SB_HEADER_SIZE)
        return -EPROTO;
    void *p = shmat(shmid, NULL, rdonly ? SHM_RDONLY : 0);
    if (p == (void *)-1)
        return -errno;
    *base = p;
    return 0;
}

/* Wait for a segment someone is creating to become READY; replace it if its creator died. */
static int wait_ready(int shmid, uint8_t *base, const struct shmid_ds *ds)
{
    struct sb_header *h = (struct sb_header *)base;
    uint64_t deadline = sb__now_ns() + 1000000000ull;
    for (;;) {
        /* Pairs with the release store of READY in init_segment(). */
        uint32_t st = atomic_load_explicit(&h->state, memory_order_acquire);
        if (st == SB_BUS_READY)
            return 0;
        if (st == SB_BUS_DESTROYED)
            return -ENOENT;
        if (h->magic != 0 && h->magic != SB_MAGIC)
            return -EPROTO;
        if (st != SB_BUS_INIT)
            return -EBADMSG; /* no creator writes this: do not wait a second for it */
        if (!sb__proc_alive(ds->shm_cpid, 0))
            return -ESTALE;
        if (sb__now_ns() > deadline)
            return -EBUSY;
        /* The creator is alive and filling the header: a bounded, rare wait. There is no
         * object to sleep on before the header exists, so yield the CPU briefly. */
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    (void)shmid;
}

/*
 * Another bus under our key: ftok() gave our key file the key its own key file had. If
 * that bus can no longer be reached by its name (its key file is gone or now leads
 * elsewhere) and no process is attached but us, it is a leftover nobody can use: stale.
 */
static bool is_orphan(const struct sb_header *h, int shmid)
{
    struct shmid_ds ds;
    if (shmctl(shmid, IPC_STAT, &ds) != 0 || ds.shm_nattch > 1)
        return false;
    char kp[sizeof(h->key_path)];
    memcpy(kp, h->key_path, sizeof(kp));
    kp[sizeof(kp) - 1] = '\0';
    if (kp[0] != '/')
        return false;
    return ftok(kp, KEY_PROJ) != ds.shm_perm.__key;
}

static int open_existing(const char *name, key_t key, unsigned flags, shmbus_bus *b)
{
    int shmid = shmget(key, 0, 0);
    if (shmid < 0)
        return -errno;
    struct shmid_ds ds;
    uint8_t *base;
    int r = attach(shmid, flags & SHMBUS_RDONLY, &base, &ds);
    if (r < 0)
        return r;
    r = wait_ready(shmid, base, &ds);
    if (r == 0)
        r = check_header((struct sb_header *)base, ds.shm_segsz, name, &b->lay);
    if (r == -EADDRINUSE && is_orphan((struct sb_header *)base, shmid))
        r = -ESTALE;
    if (r < 0) {
        shmdt(base);
        if (r == -ESTALE && !(flags & SHMBUS_RDONLY)) {
            /* Its creator died before finishing: nobody can be using it. */
            shmctl(shmid, IPC_RMID, NULL);
            return -EAGAIN;
        }
        return r;
    }
    b->shmid = shmid;
    b->base = base;
    b->hdr = (struct sb_header *)base;
    return 0;
}

static int create_new(const char *name, key_t key, const struct sb_layout *lay, uint32_t mode,
                      shmbus_bus *b)
{
    int shmid = shmget(key, lay->total_size, IPC_CREAT | IPC_EXCL | (int)mode);
    if (shmid < 0)
        return -errno;
    struct shmid_ds ds;
    uint8_t *base;
    int r = attach(shmid, false, &base, &ds);
    if (r == 0)
        r = init_segment(base, lay, name, mode);
    if (r < 0) {
        if (r != -EACCES)
            shmdt(base);
        shmctl(shmid, IPC_RMID, NULL);
        return r;
    }
    b->shmid = shmid;
    b->base = base;
    b->hdr = (struct sb_header *)base;
    b->lay = *lay;
    return 0;
}

int shmbus_bus_open(const char *name, const struct shmbus_bus_opts *opts, unsigned flags,
                    shmbus_bus **out)
{
    if (out == NULL || !sb__valid_name(name))
        return -EINVAL;
    *out = NULL;
    if (flags & ~(SHMBUS_CREATE | SHMBUS_EXCL | SHMBUS_RDONLY))
        return -EINVAL;
    bool create = flags & SHMBUS_CREATE;
    if (create && (flags & SHMBUS_RDONLY))
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
                       o.msg_size ? o.msg_size : SHMBUS_DEFAULT_MSG_SIZE);
    if (r < 0)
        return r;

    key_t key;
    r = bus_key(name, create, mode, &key);
    if (r < 0)
        return r;

    shmbus_bus *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    snprintf(b->name, sizeof(b->name), "%s", name);
    b->rdonly = flags & SHMBUS_RDONLY;
    b->uid = geteuid();

    /* A few rounds: each either opens, creates, or removes a stale half-made segment. */
    for (int round = 0; round < 4; round++) {
        r = open_existing(name, key, flags, b);
        if (r == 0 && create && (flags & SHMBUS_EXCL)) {
            shmdt(b->base);
            r = -EEXIST;
            break;
        }
        if (r != -ENOENT && r != -EAGAIN)
            break;
        if (r == -ENOENT && !create)
            break;
        if (r == -EAGAIN)
            continue;
        r = create_new(name, key, &lay, mode, b);
        if (r != -EEXIST)
            break; /* created, or failed; -EEXIST: lost a race, open the winner's */
    }
    if (r < 0) {
        free(b);
        return r;
    }
    *out = b;
    return 0;
}

void shmbus_bus_close(shmbus_bus *bus)
{
    if (bus == NULL)
        return;
    shmdt(bus->base);
    free(bus);
}

int shmbus_bus_destroy(const char *name)
{
    if (!sb__valid_name(name))
        return -EINVAL;
    char path[600];
    if (key_path(name, path, sizeof(path)) != 0)
        return -ENAMETOOLONG;
    key_t key;
    int r = bus_key(name, false, 0600, &key);
    if (r < 0)
        return r;
    shmbus_bus b = {0};
    r = open_existing(name, key, 0, &b);
    if (r == -ENOENT || r == -EAGAIN) {
        /* No segment (or a stale half-made one, now removed): just the key file. */
        unlink(path);
        return r == -EAGAIN ? 0 : -ENOENT;
    }
    if (r < 0)
        return r;
    /* Tell attached processes first, then remove; they keep their mapping until detach. */
    atomic_store_explicit(&b.hdr->state, SB_BUS_DESTROYED, memory_order_release);
    shmbus_bus tmp = b;
    for (uint32_t id = 1; id <= b.lay.max_clients; id++) {
        /* Wake every sleeper so it sees DESTROYED now rather than at its next slice. */
        struct sb_mbox *mb = sb__mbox(&tmp, id);
        if (atomic_load_explicit(&mb->sleeping, memory_order_relaxed))
            sb__sem_post(&mb->data_sem);
        if (atomic_load_explicit(&mb->space_waiters, memory_order_relaxed))
            sb__sem_post(&mb->space_sem);
    }
    shmdt(b.base);
    if (shmctl(b.shmid, IPC_RMID, NULL) != 0)
        return -errno;
    unlink(path);
    return 0;
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
                       o.msg_size ? o.msg_size : SHMBUS_DEFAULT_MSG_SIZE);
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

/* Used by shmbus_clean(): the key file path of a bus, and whether its segment exists. */
int sb__bus_key_status(const char *name, char *path, size_t size, int *shmid)
{
    int r = key_path(name, path, size);
    if (r < 0)
        return r;
    key_t key;
    r = bus_key(name, false, 0600, &key);
    if (r < 0)
        return r;
    *shmid = shmget(key, 0, 0);
    return *shmid < 0 ? -errno : 0;
}
