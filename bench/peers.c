/*
 * The peers that come with the kernel or a common library: pipe, Unix domain socket, POSIX
 * message queue, System V message queue, ZeroMQ ipc://. Each moves the same messages as
 * shmbus, measured the same way, with its receiver blocked in the kernel (their ordinary use).
 *
 * Design notes
 * - Everything a pair of children shares is made in the parent before the fork and inherited:
 *   pipes, a socketpair, message-queue descriptors. POSIX queues are unlinked the moment they
 *   are open; a System V queue is removed by teardown(), which runs even when the run is
 *   interrupted (bench.c), so nothing is left in /dev/mqueue or `ipcs -q`.
 * - Fan-in shares one sending end among the eight producers: a pipe write of 64 bytes is atomic
 *   (under PIPE_BUF), a SOCK_SEQPACKET send is one record, a queue message is one message.
 * - Sizes a peer cannot carry with the system's own limits (kernel.msgmax for System V queues,
 *   fs.mqueue.msgsize_max for POSIX queues when not privileged) are skipped with the limit named,
 *   not worked around by changing the machine.
 * - ZeroMQ is only touched in the children (its context starts threads), after pinning, so its
 *   I/O thread runs on the same CPU as the socket's owner.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mqueue.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef BENCH_HAVE_ZMQ
#include <zmq.h>
#endif

struct bench_chan {
    int fd[4]; /* pipe: a2b read/write, b2a read/write; socketpair: fd[0], fd[1] */
    mqd_t mq[2];
    int msq;
    size_t size;
    int streaming;
    char path[256];
};

struct fd_ep {
    int in, out;
};

static struct bench_chan *chan_new(size_t size, int streaming)
{
    struct bench_chan *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    for (int i = 0; i < 4; i++)
        ch->fd[i] = -1;
    ch->mq[0] = ch->mq[1] = (mqd_t)-1;
    ch->msq = -1;
    ch->size = size;
    ch->streaming = streaming;
    return ch;
}

static void fds_teardown(struct bench_chan *ch)
{
    for (int i = 0; i < 4; i++)
        if (ch->fd[i] >= 0)
            close(ch->fd[i]);
    free(ch);
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fd_open(struct bench_chan *ch, enum bench_role role, int in, int out, void **ep,
                   char *why, size_t whylen)
{
    (void)ch;
    (void)role;
    struct fd_ep *e = malloc(sizeof(*e));
    if (!e)
        return bench_fail(why, whylen, "malloc");
    e->in = in;
    e->out = out;
    *ep = e;
    return 0;
}

static void fd_close(void *ep)
{
    free(ep);
}

/* ---- pipe ---- */

static int pipe_setup(struct bench_chan **chp, size_t size, int nprod, int streaming, char *why,
                      size_t whylen)
{
    (void)nprod;
    struct bench_chan *ch = chan_new(size, streaming);
    if (!ch)
        return bench_fail(why, whylen, "calloc");
    if (pipe(ch->fd) != 0 || (!streaming && pipe(ch->fd + 2) != 0)) {
        int rc = bench_fail(why, whylen, "pipe");
        fds_teardown(ch);
        return rc;
    }
    *chp = ch;
    return 0;
}

static int pipe_open(struct bench_chan *ch, enum bench_role role, int index, void **ep, char *why,
                     size_t whylen)
{
    (void)index;
    /* fd[0]/fd[1]: ping or producer to pong or consumer; fd[2]/fd[3]: the way back. */
    if (role == BENCH_PING || role == BENCH_PRODUCER)
        return fd_open(ch, role, ch->fd[2], ch->fd[1], ep, why, whylen);
    return fd_open(ch, role, ch->fd[0], ch->fd[3], ep, why, whylen);
}

static int pipe_send(void *ep, const void *buf, size_t len)
{
    return write_all(((struct fd_ep *)ep)->out, buf, len);
}

static int pipe_recv(void *ep, void *buf, size_t len)
{
    return read_all(((struct fd_ep *)ep)->in, buf, len);
}

const struct bench_transport bench_peer_pipe = {
    .name = "pipe",
    .about = "pipe(2), blocking read/write",
    .kind = BENCH_PEER,
    .wait = BENCH_SLEEP,
    .caps = BENCH_CAP_LATENCY | BENCH_CAP_STREAM | BENCH_CAP_FANIN,
    .setup = pipe_setup,
    .open = pipe_open,
    .send = pipe_send,
    .recv = pipe_recv,
    .close = fd_close,
    .teardown = fds_teardown,
};

/* ---- Unix domain socket ---- */

static int uds_setup(struct bench_chan **chp, size_t size, int nprod, int streaming, char *why,
                     size_t whylen)
{
    (void)nprod;
    struct bench_chan *ch = chan_new(size, streaming);
    if (!ch)
        return bench_fail(why, whylen, "calloc");
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, ch->fd) != 0) {
        int rc = bench_fail(why, whylen, "socketpair");
        fds_teardown(ch);
        return rc;
    }
    *chp = ch;
    return 0;
}

static int uds_open(struct bench_chan *ch, enum bench_role role, int index, void **ep, char *why,
                    size_t whylen)
{
    (void)index;
    int fd = role == BENCH_PING || role == BENCH_PRODUCER ? ch->fd[0] : ch->fd[1];
    return fd_open(ch, role, fd, fd, ep, why, whylen);
}

static int uds_send(void *ep, const void *buf, size_t len)
{
    for (;;) {
        ssize_t n = send(((struct fd_ep *)ep)->out, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return (size_t)n == len ? 0 : -EMSGSIZE;
        if (errno != EINTR)
            return -errno;
    }
}

static int uds_recv(void *ep, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(((struct fd_ep *)ep)->in, buf, len, 0);
        if (n > 0)
            return (size_t)n == len ? 0 : -EPROTO;
        if (n == 0)
            return -EPIPE;
        if (errno != EINTR)
            return -errno;
    }
}

const struct bench_transport bench_peer_uds = {
    .name = "uds",
    .about = "Unix domain socketpair, SOCK_SEQPACKET, blocking",
    .kind = BENCH_PEER,
    .wait = BENCH_SLEEP,
    .caps = BENCH_CAP_LATENCY | BENCH_CAP_STREAM | BENCH_CAP_FANIN,
    .setup = uds_setup,
    .open = uds_open,
    .send = uds_send,
    .recv = uds_recv,
    .close = fd_close,
    .teardown = fds_teardown,
};

/* ---- POSIX message queue ---- */

static mqd_t mq_make(size_t size, char *why, size_t whylen)
{
    static unsigned serial;
    char name[64];
    struct mq_attr a = {.mq_maxmsg = 10, .mq_msgsize = (long)size};
    for (;;) {
        snprintf(name, sizeof(name), "/shmbus-bench.%d.%u", (int)getpid(), serial++);
        mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &a);
        if (q != (mqd_t)-1) {
            mq_unlink(name); /* the descriptors live on; nothing is left in /dev/mqueue */
            return q;
        }
        /* RLIMIT_MSGQUEUE counts maxmsg * msgsize per user: take fewer slots for big ones. */
        if ((errno == EMFILE || errno == ENOMEM) && a.mq_maxmsg > 1) {
            a.mq_maxmsg /= 2;
            continue;
        }
        if (errno == EINVAL)
            snprintf(why, whylen, "mq_open: %zu-byte messages exceed fs.mqueue.msgsize_max", size);
        else
            bench_fail(why, whylen, "mq_open");
        return (mqd_t)-1;
    }
}

static void mq_teardown(struct bench_chan *ch)
{
    for (int i = 0; i < 2; i++)
        if (ch->mq[i] != (mqd_t)-1)
            mq_close(ch->mq[i]);
    free(ch);
}

static int mq_setup(struct bench_chan **chp, size_t size, int nprod, int streaming, char *why,
                    size_t whylen)
{
    (void)nprod;
    struct bench_chan *ch = chan_new(size, streaming);
    if (!ch)
        return bench_fail(why, whylen, "calloc");
    for (int i = 0; i < (streaming ? 1 : 2); i++) {
        ch->mq[i] = mq_make(size, why, whylen);
        if (ch->mq[i] == (mqd_t)-1) {
            mq_teardown(ch);
            return -EINVAL;
        }
    }
    *chp = ch;
    return 0;
}

static int mq_open_ep(struct bench_chan *ch, enum bench_role role, int index, void **ep, char *why,
                      size_t whylen)
{
    (void)index;
    if (role == BENCH_PING || role == BENCH_PRODUCER)
        return fd_open(ch, role, ch->mq[1], ch->mq[0], ep, why, whylen);
    return fd_open(ch, role, ch->mq[0], ch->mq[1], ep, why, whylen);
}

static int mq_send_one(void *ep, const void *buf, size_t len)
{
    while (mq_send(((struct fd_ep *)ep)->out, buf, len, 0) != 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

static int mq_recv_one(void *ep, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = mq_receive(((struct fd_ep *)ep)->in, buf, len, NULL);
        if (n >= 0)
            return (size_t)n == len ? 0 : -EPROTO;
        if (errno != EINTR)
            return -errno;
    }
}

const struct bench_transport bench_peer_posixmq = {
    .name = "posix-mq",
    .about = "POSIX message queue (mq_send/mq_receive), up to 10 messages queued",
    .kind = BENCH_PEER,
    .wait = BENCH_SLEEP,
    .caps = BENCH_CAP_LATENCY | BENCH_CAP_STREAM | BENCH_CAP_FANIN,
    .setup = mq_setup,
    .open = mq_open_ep,
    .send = mq_send_one,
    .recv = mq_recv_one,
    .close = fd_close,
    .teardown = mq_teardown,
};

/* ---- System V message queue ---- */

struct msq_ep {
    int id;
    long out_type, in_type;
    struct {
        long mtype;
        char mtext[];
    } * m;
};

static long read_sysctl(const char *path)
{
    FILE *f = fopen(path, "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static const char *msq_probe(size_t size, char *why, size_t whylen)
{
    long max = read_sysctl("/proc/sys/kernel/msgmax");
    if (max > 0 && (long)size > max) {
        snprintf(why, whylen, "%zu-byte messages exceed kernel.msgmax (%ld bytes)", size, max);
        return why;
    }
    return NULL;
}

static int msq_setup(struct bench_chan **chp, size_t size, int nprod, int streaming, char *why,
                     size_t whylen)
{
    (void)nprod;
    struct bench_chan *ch = chan_new(size, streaming);
    if (!ch)
        return bench_fail(why, whylen, "calloc");
    ch->msq = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    if (ch->msq < 0) {
        int rc = bench_fail(why, whylen, "msgget");
        free(ch);
        return rc;
    }
    *chp = ch;
    return 0;
}

static void msq_teardown(struct bench_chan *ch)
{
    msgctl(ch->msq, IPC_RMID, NULL);
    free(ch);
}

static int msq_open(struct bench_chan *ch, enum bench_role role, int index, void **ep, char *why,
                    size_t whylen)
{
    (void)index;
    struct msq_ep *e = calloc(1, sizeof(*e));
    if (e)
        e->m = malloc(sizeof(long) + ch->size);
    if (!e || !e->m) {
        free(e);
        return bench_fail(why, whylen, "malloc");
    }
    e->id = ch->msq;
    int forward = role == BENCH_PING || role == BENCH_PRODUCER;
    e->out_type = forward ? 1 : 2;
    e->in_type = forward ? 2 : 1;
    *ep = e;
    return 0;
}

static void msq_close(void *ep)
{
    struct msq_ep *e = ep;
    free(e->m);
    free(e);
}

static int msq_send(void *ep, const void *buf, size_t len)
{
    struct msq_ep *e = ep;
    e->m->mtype = e->out_type;
    memcpy(e->m->mtext, buf, len);
    while (msgsnd(e->id, e->m, len, 0) != 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

static int msq_recv(void *ep, void *buf, size_t len)
{
    struct msq_ep *e = ep;
    for (;;) {
        ssize_t n = msgrcv(e->id, e->m, len, e->in_type, 0);
        if (n >= 0) {
            if ((size_t)n != len)
                return -EPROTO;
            memcpy(buf, e->m->mtext, len);
            return 0;
        }
        if (errno != EINTR)
            return -errno;
    }
}

const struct bench_transport bench_peer_sysvmq = {
    .name = "sysv-mq",
    .about = "System V message queue (msgsnd/msgrcv), one queue, a type per direction",
    .kind = BENCH_PEER,
    .wait = BENCH_SLEEP,
    .caps = BENCH_CAP_LATENCY | BENCH_CAP_STREAM | BENCH_CAP_FANIN,
    .probe = msq_probe,
    .setup = msq_setup,
    .open = msq_open,
    .send = msq_send,
    .recv = msq_recv,
    .close = msq_close,
    .teardown = msq_teardown,
};

/* ---- ZeroMQ ipc:// ---- */

#ifdef BENCH_HAVE_ZMQ
struct zmq_ep {
    void *ctx, *sock;
};

static int zmq_setup(struct bench_chan **chp, size_t size, int nprod, int streaming, char *why,
                     size_t whylen)
{
    (void)nprod;
    static unsigned serial;
    struct bench_chan *ch = chan_new(size, streaming);
    if (!ch)
        return bench_fail(why, whylen, "calloc");
    snprintf(ch->path, sizeof(ch->path), "%s/zmq.%u", bench_tmpdir, serial++);
    *chp = ch;
    return 0;
}

static void zmq_teardown(struct bench_chan *ch)
{
    unlink(ch->path);
    free(ch);
}

static int zmq_open(struct bench_chan *ch, enum bench_role role, int index, void **ep, char *why,
                    size_t whylen)
{
    (void)index;
    struct zmq_ep *e = calloc(1, sizeof(*e));
    if (!e)
        return bench_fail(why, whylen, "calloc");
    char ep_name[300];
    snprintf(ep_name, sizeof(ep_name), "ipc://%s", ch->path);
    int type = !ch->streaming ? ZMQ_PAIR : role == BENCH_CONSUMER ? ZMQ_PULL : ZMQ_PUSH;
    int binds = role == BENCH_PING || role == BENCH_CONSUMER;
    /* Wait at close until every queued message is out: a bounded linger drops what a busy
     * consumer has not taken yet, and the run then waits for messages that will never come.
     * A peer that died is handled by the harness's deadline. */
    int linger = -1;
    /* Connect only once the binding side's socket file exists: a connect that comes first
     * fails and is retried by ZeroMQ only after its reconnect interval (100 ms). */
    for (int i = 0; !binds && i < 5000 && access(ch->path, F_OK) != 0; i++)
        bench_sleep_us(1000);
    e->ctx = zmq_ctx_new();
    e->sock = e->ctx ? zmq_socket(e->ctx, type) : NULL;
    if (!e->sock || zmq_setsockopt(e->sock, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
        (binds ? zmq_bind(e->sock, ep_name) : zmq_connect(e->sock, ep_name)) != 0) {
        snprintf(why, whylen, "zmq %s %s: %s", binds ? "bind" : "connect", ep_name,
                 zmq_strerror(zmq_errno()));
        if (e->sock)
            zmq_close(e->sock);
        if (e->ctx)
            zmq_ctx_term(e->ctx);
        free(e);
        return -EIO;
    }
    *ep = e;
    return 0;
}

static void zmq_close_ep(void *ep)
{
    struct zmq_ep *e = ep;
    zmq_close(e->sock);
    zmq_ctx_term(e->ctx);
    free(e);
}

static int zmq_send_one(void *ep, const void *buf, size_t len)
{
    struct zmq_ep *e = ep;
    while (zmq_send(e->sock, buf, len, 0) < 0)
        if (zmq_errno() != EINTR)
            return -zmq_errno();
    return 0;
}

static int zmq_recv_one(void *ep, void *buf, size_t len)
{
    struct zmq_ep *e = ep;
    for (;;) {
        int n = zmq_recv(e->sock, buf, len, 0);
        if (n >= 0)
            return (size_t)n == len ? 0 : -EPROTO;
        if (zmq_errno() != EINTR)
            return -zmq_errno();
    }
}
#else
static const char *zmq_probe(size_t size, char *why, size_t whylen)
{
    (void)size;
    (void)why;
    (void)whylen;
    return "libzmq was not found at build time (scripts/deps.sh bench installs libzmq3-dev)";
}
#endif

const struct bench_transport bench_peer_zmq = {
    .name = "zmq-ipc",
    .about = "ZeroMQ ipc:// (PAIR for round trips, PUSH/PULL for streams), blocking",
    .kind = BENCH_PEER,
    .wait = BENCH_SLEEP,
    .caps = BENCH_CAP_LATENCY | BENCH_CAP_STREAM | BENCH_CAP_FANIN,
#ifdef BENCH_HAVE_ZMQ
    .setup = zmq_setup,
    .open = zmq_open,
    .send = zmq_send_one,
    .recv = zmq_recv_one,
    .close = zmq_close_ep,
    .teardown = zmq_teardown,
#else
    .probe = zmq_probe,
#endif
};
