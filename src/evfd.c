/*
 * evfd.c - the event-loop file descriptor of a client (shmbus_client_fd, shmbus_client_arm).
 *
 * Design notes
 * ------------
 * What it is. A Unix datagram socket bound at <runtime dir>/<bus>.<id>.sock, created by the
 * receiver on its first shmbus_client_fd() and owned by its handle. It is readable when a
 * datagram is queued. Senders never keep it open: they send one empty-ish datagram (one
 * byte) to the path, and only when the receiver has *armed* it.
 *
 * Why a socket and not a FIFO or an eventfd. An eventfd cannot reach another process
 * without fd passing. A FIFO can, but a sender writing into a FIFO whose reader has just
 * closed it gets SIGPIPE, and the library installs no handler; a datagram sent to a socket
 * nobody holds any more fails with ECONNREFUSED, sends never raise a signal (MSG_NOSIGNAL),
 * never block (MSG_DONTWAIT: a full queue means "already readable"), and a path that is not
 * a socket at all is refused by the kernel. So a receiver killed with SIGKILL leaves at
 * worst a stale socket file: senders get an error they ignore, never a wedge. The next
 * receiver of the id replaces the file.
 *
 * The armed flag. sb_mbox.fd_armed, on the line of `sleeping` (read by every send anyway,
 * so the check costs no extra cache miss). The receiver drains the socket, stores 1, fences,
 * and looks for a message (a Dekker pair with the sender's commit + fence + load in
 * wake_consumer()): either the receiver sees the message or a sender sees the flag. The
 * sender that sees 1 exchanges it to 0, so one armed period costs at most one datagram
 * (plus, rarely, one more from a sender that read 1 just before a receiver re-armed: a
 * spurious wake-up, never a lost one). Unarmed, senders make no system call.
 *
 * Hostile segment. fd_armed is the only word read from the segment here; any value other
 * than 0 means "armed" and costs the sender one datagram at most, the receiving id is
 * computed from the mailbox's address (a trusted local), never read from the segment.
 *
 * Process death. Nothing is held across calls by senders. A receiver that dies leaves
 * fd_armed possibly 1 (the next sender clears it and gets ECONNREFUSED) and the socket file
 * (replaced by the next receiver of the id; shmbus_leave() removes it, and
 * shmbus_bus_destroy() removes those of the bus through sb__evfd_remove_all()).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

struct sb_evfd {
    int fd;
    dev_t dev; /* the socket file we bound, to remove only our own at close */
    ino_t ino;
    struct sockaddr_un addr;
};

/* The socket's address for client `id` of bus b: -ENAMETOOLONG if it does not fit. */
static int evfd_addr(const shmbus_bus *b, uint32_t id, struct sockaddr_un *sa)
{
    char dir[sizeof(sa->sun_path)];
    int n = shmbus_runtime_dir(dir, sizeof(dir));
    if (n < 0)
        return n;
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s.%u.sock", dir, b->name, id);
    if (n < 0 || (size_t)n >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    return 0;
}

void sb__evfd_notify(shmbus_bus *b, struct sb_mbox *mb)
{
    /* The id from the mailbox's place in our own mapping: nothing read from the segment. */
    uint64_t off = (uint64_t)((uint8_t *)mb - (b->base + b->lay.mbox_off));
    uint32_t id = (uint32_t)(off / b->lay.mbox_size) + 1;
    struct sockaddr_un sa;
    if (evfd_addr(b, id, &sa) < 0)
        return;
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0)
        return;
    /* Errors are ignored on purpose: EAGAIN (queue full: already readable), ECONNREFUSED
     * or ENOENT (receiver gone: nobody to wake). */
    char one = 1;
    (void)sendto(s, &one, 1, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa, sizeof(sa));
    close(s);
}

int shmbus_client_fd(shmbus_client *c)
{
    if (c == NULL)
        return -EINVAL;
    if (c->evfd != NULL)
        return c->evfd->fd;
    if (sb__destroyed(c->bus))
        return -EIDRM;
    struct sb_evfd *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        return -ENOMEM;
    int r = evfd_addr(c->bus, c->id, &ev->addr);
    if (r < 0)
        goto fail;
    ev->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (ev->fd < 0) {
        r = -errno;
        goto fail;
    }
    /* A file left there is a previous client's of this id (it died without leaving): the id
     * is ours now. Only a socket is replaced; anything else is not ours to remove. */
    struct stat st;
    if (lstat(ev->addr.sun_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            r = -EEXIST;
            goto fail_fd;
        }
        unlink(ev->addr.sun_path);
    }
    if (bind(ev->fd, (struct sockaddr *)&ev->addr, sizeof(ev->addr)) < 0) {
        r = -errno;
        goto fail_fd;
    }
    /* Senders need write permission on the file: the bus's own mode (0600 or 0660), whatever
     * the umask gave. The mode word is read once and masked (hostile segment). */
    uint32_t bus_mode = c->bus->hdr->mode;
    if (chmod(ev->addr.sun_path, 0600 | (bus_mode & 060)) < 0) {
        r = -errno;
        unlink(ev->addr.sun_path);
        goto fail_fd;
    }
    if (lstat(ev->addr.sun_path, &st) < 0) {
        r = -errno;
        goto fail_fd;
    }
    ev->dev = st.st_dev;
    ev->ino = st.st_ino;
    c->evfd = ev;
    return ev->fd;

fail_fd:
    close(ev->fd);
fail:
    free(ev);
    return r;
}

/* Read every queued datagram: the socket is readable again only after a new notification. */
static void evfd_drain(int fd)
{
    char buf[16];
    for (int n = 0; n < 4096; n++)
        if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0)
            return;
}

int shmbus_client_arm(shmbus_client *c)
{
    if (c == NULL)
        return -EINVAL;
    if (c->evfd == NULL)
        return -EBADF;
    if (sb__destroyed(c->bus))
        return -EIDRM;
    struct sb_mbox *mb = c->mb;
    evfd_drain(c->evfd->fd);
    atomic_store_explicit(&mb->fd_armed, 1, memory_order_relaxed);
    /* Dekker pair with the sender's seq_cst commit CAS (commit()) and seq_cst load of
     * fd_armed in sb__evfd_wake(): either it sees the flag or we see its message. */
    sb__full_fence();
    /* Look as shmbus_peek() does (timeout 0), keeping a message the caller peeked. */
    bool pv = c->peek_valid;
    uint32_t pg = c->peek_src_gen;
    uint64_t pp = c->peek_pos;
    uint64_t ph = c->peek_hw;
    struct shmbus_msg pm = c->peek_msg;
    int r = shmbus_peek(c, NULL, NULL, 0, 0);
    c->peek_valid = pv;
    c->peek_src_gen = pg;
    c->peek_pos = pp;
    c->peek_hw = ph;
    c->peek_msg = pm;
    if (r == -EAGAIN)
        return 0;
    if (r < 0 && r != -EMSGSIZE)
        return r; /* -EIDRM */
    /* A message is waiting. Disarm, and make the descriptor readable ourselves unless a
     * sender already took the flag (it then sends the datagram). */
    if (atomic_exchange_explicit(&mb->fd_armed, 0, memory_order_relaxed)) {
        char one = 1;
        (void)sendto(c->evfd->fd, &one, 1, MSG_DONTWAIT | MSG_NOSIGNAL,
                     (struct sockaddr *)&c->evfd->addr, sizeof(c->evfd->addr));
    }
    return 1;
}

void sb__evfd_close(shmbus_client *c)
{
    struct sb_evfd *ev = c->evfd;
    if (ev == NULL)
        return;
    /* Only the process that joined disarms and removes the file: a child forked with a copy
     * of the handle must not take its parent's descriptor away. */
    uint64_t state = atomic_load_explicit(&c->e->state, memory_order_relaxed);
    if (SB_ST_PID(state) == getpid()) {
        atomic_store_explicit(&c->mb->fd_armed, 0, memory_order_relaxed);
        struct stat st;
        if (lstat(ev->addr.sun_path, &st) == 0 && st.st_dev == ev->dev && st.st_ino == ev->ino)
            unlink(ev->addr.sun_path);
    }
    close(ev->fd);
    free(ev);
    c->evfd = NULL;
}

void sb__evfd_remove_all(int dir_fd, const char *bus)
{
    int fd = dup(dir_fd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    size_t bl = strlen(bus);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        /* <bus>.<digits>.sock, and a socket: nothing else is ours to remove. */
        const char *p = de->d_name;
        if (strncmp(p, bus, bl) != 0 || p[bl] != '.')
            continue;
        const char *q = p + bl + 1;
        size_t digits = strspn(q, "0123456789");
        if (digits == 0 || strcmp(q + digits, ".sock") != 0)
            continue;
        struct stat st;
        if (fstatat(dir_fd, p, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode))
            unlinkat(dir_fd, p, 0);
    }
    closedir(d);
}
