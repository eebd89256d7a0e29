/*
 * shmbus as rows of the benchmark (three receiver modes) and the ring scale test.
 *
 * Design notes
 * - Each measurement gets its own bus, created by the parent (SHMBUS_OPEN_CREATE |
 * SHMBUS_OPEN_EXCL, key file in the bench's private directory through SHMBUS_DIR) and destroyed by
 * it after the children are gone. The parent only creates and destroys; every child opens the bus
 * by name and joins with a fixed id (consumer or pong 1, ping 2, producer k 2 + k), so the liveness
 * the library records is the child's own pid.
 * - Modes are the client's spin budget: shmbus-spin spins without a bound in practice (10 s),
 *   shmbus-sleep sleeps at once (the library's default, spin 0), shmbus-default spins up to
 *   DEFAULT_SPIN_US and then sleeps (bounded spin, then sleep). A fourth row, shmbus-poll, is
 *   a diagnostic: the caller polls shmbus_recv() with timeout 0 itself, which shows how much
 *   of shmbus-spin's round trip is the library's spin loop rather than its data path.
 * - Streams use shmbus_send_batch() and shmbus_recv_batch(): one reservation and at most one
 *   wake-up per batch, which is what the throughput targets ask the library to show. One row,
 *   shmbus-percall, streams with one shmbus_send() and one shmbus_recv() per message instead:
 *   what a program that never batches gets (issue 11's "one message per call").
 * - The bus options are the library's defaults (256-slot mailboxes) except msg_size, which is
 *   the message size, and for 64 KiB round trips 8 slots, to keep the segment small.
 * - The ring scale test runs the seed's exchange on the library directly (no tool needed);
 *   ring.c forks the clients, this file has their body (ring_client()). A hop is the time
 *   from the send (the header's sent_ns, CLOCK_MONOTONIC) to the receive returning.
 */
#include "results.h"
#include "../src/relax.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef BENCH_HAVE_SHMBUS
#include <shmbus.h>
#endif

#define DEFAULT_SPIN_US 50

#define SPIN_FOREVER_US 10000000
#define BATCH_MAX       256

int bench_disk_dir(char *dir, size_t len, const char *tag, char *why, size_t whylen)
{
    const char *base = getenv("SHMBUS_BENCH_JOURNAL");
    snprintf(dir, len, "%s/disk-%s", base && *base ? base : bench_tmpdir, tag);
    if (mkdir(dir, 0700) != 0) {
        int e = errno;
        snprintf(why, whylen, "mkdir %s: %s", dir, strerror(e));
        return -e;
    }
    return 0;
}

void bench_disk_dir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            unlinkat(dirfd(d), de->d_name, 0);
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

#ifdef BENCH_HAVE_SHMBUS

const char *bench_shmbus_unavailable(void)
{
    return NULL;
}

const char *bench_shmbus_version(void)
{
    return shmbus_version();
}

struct bench_chan {
    char name[SHMBUS_NAME_MAX + 1];
    size_t size;
    char jdir[400]; /* a durable row's journal directory, else "" */
    pid_t tap_pid;  /* shmbus-tapped: the tap reader, else 0 */
};

struct sb_ep {
    shmbus_bus *bus;
    shmbus_client *c;
    uint32_t peer; /* where send() goes */
    size_t size;
    struct shmbus_iov iov[BATCH_MAX];
    struct shmbus_msg hdrs[BATCH_MAX];
    char *batch; /* BATCH_MAX * size bytes for recv_batch */
};

/* SHMBUS_DIR for this process: the bench's private directory, so key files never meet a real
 * bus's. Children inherit it. */
static void use_private_dir(void)
{
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/run", bench_tmpdir);
    setenv("SHMBUS_DIR", dir, 1);
}

/* Create a fresh bus with options o in the private directory, named for this process and a
 * serial number (into name), and leave it open in *bus. 0, or -errno with why filled in. */
static int bus_new(char *name, size_t namelen, const struct shmbus_bus_opts *o, shmbus_bus **bus,
                   char *why, size_t whylen)
{
    static unsigned serial;
    use_private_dir();
    snprintf(name, namelen, "bench-%d-%u", (int)getpid(), serial++);
    *bus = NULL;
    int rc = shmbus_bus_open(name, o, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, bus);
    if (rc < 0)
        snprintf(why, whylen, "shmbus_bus_open %s: %s", name, shmbus_strerror(rc));
    return rc;
}

static int bus_create(char *name, size_t namelen, uint32_t clients, uint32_t slots, size_t msg_size,
                      uint64_t *segment, char *why, size_t whylen)
{
    struct shmbus_bus_opts o = {
        .max_clients = clients, .slots = slots, .msg_size = (uint32_t)msg_size};
    shmbus_bus *bus = NULL;
    int rc = bus_new(name, namelen, &o, &bus, why, whylen);
    if (rc < 0)
        return rc;
    if (segment) {
        struct shmbus_bus_info info;
        *segment = shmbus_bus_info(bus, &info) == 0 ? info.segment_size : 0;
    }
    shmbus_bus_close(bus);
    return 0;
}

int bench_sb_bus_create(char *name, size_t namelen, uint32_t clients, char *why, size_t whylen)
{
    return bus_create(name, namelen, clients, SHMBUS_DEFAULT_SLOTS, 64, NULL, why, whylen);
}

static int sb_setup(struct bench_chan **chp, size_t size, int nprod, int streaming, char *why,
                    size_t whylen)
{
    struct bench_chan *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return bench_fail(why, whylen, "calloc");
    ch->size = size;
    uint32_t slots = !streaming && size > 1024 ? 8 : SHMBUS_DEFAULT_SLOTS;
    int rc =
        bus_create(ch->name, sizeof(ch->name), (uint32_t)nprod + 1, slots, size, NULL, why, whylen);
    if (rc < 0) {
        free(ch);
        return rc;
    }
    *chp = ch;
    return 0;
}

static void sb_teardown(struct bench_chan *ch)
{
    if (ch->tap_pid > 0) { /* shmbus-tapped: stop the reader before the bus goes */
        kill(ch->tap_pid, SIGKILL);
        waitpid(ch->tap_pid, NULL, 0);
        bench_forget_pid(ch->tap_pid);
    }
    shmbus_bus_destroy(ch->name);
    if (ch->jdir[0] != '\0') /* a durable row: its journal files, then the directory */
        bench_disk_dir_remove(ch->jdir);
    free(ch);
}

/* Durable rows: the same calls on a durable bus (src/journal.c) whose journal lives in
 * $SHMBUS_BENCH_JOURNAL if set, else in the bench's temporary directory (often a tmpfs,
 * where fdatasync costs nothing: set SHMBUS_BENCH_JOURNAL to a directory on the disk to
 * measure the disk). The receiver uses the default mode (bounded spin, then sleep). */
static int durable_setup(struct bench_chan **chp, size_t size, int nprod, int streaming,
                         unsigned sync, char *why, size_t whylen)
{
    struct bench_chan *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return bench_fail(why, whylen, "calloc");
    static unsigned serial;
    use_private_dir();
    ch->size = size;
    snprintf(ch->name, sizeof(ch->name), "bench-d%d-%u", (int)getpid(), serial++);
    int rc = bench_disk_dir(ch->jdir, sizeof(ch->jdir), ch->name, why, whylen);
    if (rc < 0) {
        free(ch);
        return rc;
    }
    struct shmbus_bus_opts o = {.max_clients = (uint32_t)nprod + 1,
                                .slots = !streaming && size > 1024 ? 8 : SHMBUS_DEFAULT_SLOTS,
                                .msg_size = (uint32_t)size};
    struct shmbus_durable d = {.dir = ch->jdir, .sync = sync};
    shmbus_bus *bus = NULL;
    rc = shmbus_bus_open_durable(ch->name, &o, &d, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &bus);
    if (rc < 0) {
        snprintf(why, whylen, "shmbus_bus_open_durable %s in %s: %s", ch->name, ch->jdir,
                 shmbus_strerror(rc));
        bench_disk_dir_remove(ch->jdir);
        free(ch);
        return rc;
    }
    shmbus_bus_close(bus);
    *chp = ch;
    return 0;
}

static int setup_none(struct bench_chan **chp, size_t size, int nprod, int streaming, char *why,
                      size_t whylen)
{
    return durable_setup(chp, size, nprod, streaming, SHMBUS_SYNC_NONE, why, whylen);
}

static int setup_batch(struct bench_chan **chp, size_t size, int nprod, int streaming, char *why,
                       size_t whylen)
{
    return durable_setup(chp, size, nprod, streaming, SHMBUS_SYNC_BATCH, why, whylen);
}

static int setup_always(struct bench_chan **chp, size_t size, int nprod, int streaming, char *why,
                        size_t whylen)
{
    return durable_setup(chp, size, nprod, streaming, SHMBUS_SYNC_ALWAYS, why, whylen);
}

/* The tap reader of shmbus-tapped: what `shmbus tail` does, without printing. Opens a tap,
 * says so on `ready`, then reads every message until it is killed (teardown) or its
 * parent dies. Never returns. */
static void tap_reader(const char *name, int ready)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    shmbus_bus *bus = NULL;
    shmbus_tap *tap = NULL;
    int rc = shmbus_bus_open(name, NULL, 0, &bus);
    if (rc == 0)
        rc = shmbus_tap_open(bus, &tap);
    if (write(ready, &rc, sizeof(rc)) != (ssize_t)sizeof(rc) || rc < 0)
        _exit(1);
    close(ready);
    struct shmbus_tap_msg m;
    char buf[SHMBUS_TAP_CAPTURE];
    for (;;) {
        rc = shmbus_tap_next(tap, &m, buf, sizeof(buf), 100);
        if (rc < 0 && rc != -ETIMEDOUT && rc != -EINTR)
            _exit(rc == -EIDRM ? 0 : 1);
    }
}

/* shmbus-tapped: the bus of shmbus-default, and a tap reader attached and reading before
 * the measurement starts (it runs on whichever CPU the scheduler gives it). */
static int tapped_setup(struct bench_chan **chp, size_t size, int nprod, int streaming, char *why,
                        size_t whylen)
{
    int rc = sb_setup(chp, size, nprod, streaming, why, whylen);
    if (rc < 0)
        return rc;
    struct bench_chan *ch = *chp;
    int p[2];
    if (pipe(p) != 0) {
        rc = bench_fail(why, whylen, "pipe");
        sb_teardown(ch);
        return rc;
    }
    fflush(stdout);
    fflush(stderr);
    ch->tap_pid = fork();
    if (ch->tap_pid == 0) {
        close(p[0]);
        tap_reader(ch->name, p[1]);
    }
    close(p[1]);
    int got = -EIO;
    if (ch->tap_pid < 0) {
        rc = bench_fail(why, whylen, "fork");
    } else {
        bench_track_pid(ch->tap_pid);
        rc = read(p[0], &got, sizeof(got)) == (ssize_t)sizeof(got) ? got : -EIO;
        if (rc < 0)
            snprintf(why, whylen, "tap reader: %s", shmbus_strerror(rc));
    }
    close(p[0]);
    if (rc < 0) {
        sb_teardown(ch);
        return rc;
    }
    return 0;
}

static void sb_close(void *ep)
{
    struct sb_ep *e = ep;
    shmbus_leave(e->c);
    shmbus_bus_close(e->bus);
    free(e->batch);
    free(e);
}

static int sb_open(struct bench_chan *ch, enum bench_role role, int index, unsigned spin_us,
                   void **ep, char *why, size_t whylen)
{
    struct sb_ep *e = calloc(1, sizeof(*e));
    if (!e)
        return bench_fail(why, whylen, "calloc");
    e->size = ch->size;
    uint32_t id = role == BENCH_PONG || role == BENCH_CONSUMER ? 1
                  : role == BENCH_PING                         ? 2
                                                               : 2 + (uint32_t)index;
    e->peer = id == 1 ? 2 : 1;
    int rc = shmbus_bus_open(ch->name, NULL, 0, &e->bus);
    if (rc == 0)
        rc = shmbus_join(e->bus, id, NULL, &e->c);
    if (rc == 0 && role == BENCH_CONSUMER && !(e->batch = malloc(BATCH_MAX * ch->size)))
        rc = -ENOMEM;
    if (rc < 0) {
        snprintf(why, whylen, "shmbus open/join %s as %u: %s", ch->name, id, shmbus_strerror(rc));
        if (e->bus)
            shmbus_bus_close(e->bus);
        free(e);
        return rc;
    }
    shmbus_client_set_spin(e->c, spin_us);
    *ep = e;
    return 0;
}

static int open_spin(struct bench_chan *ch, enum bench_role role, int index, void **ep, char *why,
                     size_t whylen)
{
    return sb_open(ch, role, index, SPIN_FOREVER_US, ep, why, whylen);
}

static int open_sleep(struct bench_chan *ch, enum bench_role role, int index, void **ep, char *why,
                      size_t whylen)
{
    return sb_open(ch, role, index, 0, ep, why, whylen);
}

static int open_default(struct bench_chan *ch, enum bench_role role, int index, void **ep,
                        char *why, size_t whylen)
{
    return sb_open(ch, role, index, DEFAULT_SPIN_US, ep, why, whylen);
}

static int sb_send(void *ep, const void *buf, size_t len)
{
    struct sb_ep *e = ep;
    int rc = shmbus_send(e->c, e->peer, buf, len, 0, -1);
    return rc < 0 ? rc : 0;
}

static int sb_recv(void *ep, void *buf, size_t len)
{
    struct sb_ep *e = ep;
    int rc = shmbus_recv(e->c, NULL, buf, len, -1);
    if (rc < 0)
        return rc;
    return (size_t)rc == len ? 0 : -EPROTO;
}

/* The caller's own busy-poll: shmbus_recv() with timeout 0 in a loop, one pause between
 * tries. Not one of the library's modes; it shows what the data path costs without the
 * library's spin loop around it. */
static int sb_recv_poll(void *ep, void *buf, size_t len)
{
    struct sb_ep *e = ep;
    int rc;
    while ((rc = shmbus_recv(e->c, NULL, buf, len, 0)) == -EAGAIN)
        sb__cpu_relax();
    if (rc < 0)
        return rc;
    return (size_t)rc == len ? 0 : -EPROTO;
}

static int sb_stream_send(void *ep, const void *buf, size_t len, int n)
{
    struct sb_ep *e = ep;
    if (n > BATCH_MAX)
        n = BATCH_MAX;
    for (int i = 0; i < n; i++)
        e->iov[i] = (struct shmbus_iov){.data = buf, .len = len};
    int done = 0;
    while (done < n) {
        int rc = shmbus_send_batch(e->c, e->peer, e->iov + done, (size_t)(n - done), 0, -1);
        if (rc < 0)
            return rc;
        done += rc;
    }
    return 0;
}

static int sb_stream_recv(void *ep, void *buf, size_t len, int max)
{
    struct sb_ep *e = ep;
    if (max > BATCH_MAX)
        max = BATCH_MAX;
    int rc = shmbus_recv_batch(e->c, e->hdrs, e->batch, e->size, (size_t)max, -1);
    if (rc > 0)
        memcpy(buf, e->batch + (size_t)(rc - 1) * e->size, len);
    return rc;
}

/* Zero-copy: the sender borrows room in the receiver's mailbox and writes in place, the
 * receiver reads in place. A real producer makes its data there; the bench writes (and
 * reads back) only the first line, where the harness keeps its stamp, so the row shows
 * the data path without the copies the other rows pay. */
static int sb_loan_send(void *ep, const void *buf, size_t len)
{
    struct sb_ep *e = ep;
    struct shmbus_loan l;
    int rc = shmbus_loan(e->c, e->peer, len, 0, -1, &l);
    if (rc < 0)
        return rc;
    memcpy(l.data, buf, len < 64 ? len : 64);
    rc = shmbus_loan_commit(e->c, &l, len);
    return rc < 0 ? rc : 0;
}

static int sb_loan_recv(void *ep, void *buf, size_t len)
{
    struct sb_ep *e = ep;
    struct shmbus_msg m;
    const void *p;
    int rc = shmbus_recv_ref(e->c, &m, &p, -1);
    if (rc < 0)
        return rc;
    memcpy(buf, p, len < 64 ? len : 64);
    shmbus_recv_release(e->c, p);
    return (size_t)rc == len ? 0 : -EPROTO;
}

#else /* !BENCH_HAVE_SHMBUS */

const char *bench_shmbus_unavailable(void)
{
    return "library not ready (libshmbus was not built when the bench was)";
}

const char *bench_shmbus_version(void)
{
    return "not built";
}

static const char *not_ready(size_t size, char *why, size_t whylen)
{
    (void)size;
    (void)why;
    (void)whylen;
    return bench_shmbus_unavailable();
}

#endif

const struct bench_transport bench_shmbus_spin = {
    .name = "shmbus-spin",
    .about = "libshmbus, receiver spins (spin budget 10 s)",
    .kind = BENCH_SHMBUS,
    .wait = BENCH_SPIN,
    .caps = BENCH_CAP_LATENCY | BENCH_CAP_STREAM,
#ifdef BENCH_HAVE_SHMBUS
    .setup = sb_setup,
    .open = open_spin,
    .send = sb_send,
    .recv = sb_recv,
    .stream_send = sb_stream_send,
    .stream_recv = sb_stream_recv,
    .close = sb_close,
    .teardown = sb_teardown,
#else
    .probe = not_ready,
#endif
};

const struct bench_transport bench_shmbus_sleep = {
    .name = "shmbus-sleep",
    .about = "libshmbus, receiver sleeps on its semaphore at once (spin budget 0)",
    .kind = BENCH_SHMBUS,
    .wait = BENCH_SLEEP,
    .caps = BENCH_CAP_LATENCY | BENCH_CAP_STREAM,
#ifdef BENCH_HAVE_SHMBUS
    .setup = sb_setup,
    .open = open_sleep,
    .send = sb_send,
    .recv = sb_recv,
    .stream_send = sb_stream_send,
    .stream_recv = sb_stream_recv,
    .close = sb_close,
    .teardown = sb_teardown,
#else
    .probe = not_ready,
#endif
};

const struct bench_transport bench_shmbus_poll = {
    .name = "shmbus-poll",
    .about = "libshmbus, the caller busy-polls shmbus_recv(timeout 0) (diagnostic, not a mode)",
    .kind = BENCH_SHMBUS,
    .wait = BENCH_SPIN,
    .caps = BENCH_CAP_LATENCY,
#ifdef BENCH_HAVE_SHMBUS
    .setup = sb_setup,
    .open = open_sleep,
    .send = sb_send,
    .recv = sb_recv_poll,
    .close = sb_close,
    .teardown = sb_teardown,
#else
    .probe = not_ready,
#endif
};

const struct bench_transport bench_shmbus_default = {
    .name = "shmbus-default",
    .about = "libshmbus, bounded spin (50 us) then sleep",
    .kind = BENCH_SHMBUS,
    .wait = BENCH_HYBRID,
    .caps = BENCH_CAP_LATENCY | BENCH_CAP_STREAM | BENCH_CAP_FANIN,
#ifdef BENCH_HAVE_SHMBUS
    .setup = sb_setup,
    .open = open_default,
    .send = sb_send,
    .recv = sb_recv,
    .stream_send = sb_stream_send,
    .stream_recv = sb_stream_recv,
    .close = sb_close,
    .teardown = sb_teardown,
#else
    .probe = not_ready,
#endif
};

/* The 64 B stream issue 11's "one message per call" target is about: shmbus-default's bus and
 * receiver, but no batch calls, so the harness sends and receives each message with its own
 * shmbus_send() and shmbus_recv() (a row without stream_send/stream_recv). */
const struct bench_transport bench_shmbus_percall = {
    .name = "shmbus-percall",
    .about = "shmbus-default's stream with one shmbus_send() and one shmbus_recv() per message "
             "(no batch calls); bounded spin (50 us) then sleep",
    .kind = BENCH_SHMBUS,
    .wait = BENCH_HYBRID,
    .caps = BENCH_CAP_STREAM,
#ifdef BENCH_HAVE_SHMBUS
    .setup = sb_setup,
    .open = open_default,
    .send = sb_send,
    .recv = sb_recv,
    .close = sb_close,
    .teardown = sb_teardown,
#else
    .probe = not_ready,
#endif
};

const struct bench_transport bench_shmbus_loan = {
    .name = "shmbus-loan",
    .about = "libshmbus zero-copy loans, receiver spins: shmbus_loan/commit, shmbus_recv_ref/"
             "release; the bench touches only the first 64 bytes of the payload",
    .kind = BENCH_SHMBUS,
    .wait = BENCH_SPIN,
    .caps = BENCH_CAP_LATENCY,
#ifdef BENCH_HAVE_SHMBUS
    .setup = sb_setup,
    .open = open_spin,
    .send = sb_loan_send,
    .recv = sb_loan_recv,
    .close = sb_close,
    .teardown = sb_teardown,
#else
    .probe = not_ready,
#endif
};

#ifdef BENCH_HAVE_SHMBUS
#define DURABLE_ROW(nm, about_, setup_)                                                            \
    {                                                                                              \
        .name = nm, .about = about_, .kind = BENCH_SHMBUS, .wait = BENCH_HYBRID,                   \
        .caps = BENCH_CAP_LATENCY | BENCH_CAP_STREAM, .setup = setup_, .open = open_default,       \
        .send = sb_send, .recv = sb_recv, .stream_send = sb_stream_send,                           \
        .stream_recv = sb_stream_recv, .close = sb_close, .teardown = sb_teardown,                 \
    }
#else
#define DURABLE_ROW(nm, about_, setup_)                                                            \
    {                                                                                              \
        .name = nm, .about = about_, .kind = BENCH_SHMBUS, .wait = BENCH_HYBRID,                   \
        .caps = BENCH_CAP_LATENCY | BENCH_CAP_STREAM, .probe = not_ready,                          \
    }
#endif

const struct bench_transport bench_shmbus_durable_none =
    DURABLE_ROW("shmbus-durable-none",
                "durable bus, sync none (one writev(2) per send batch and per receive batch, "
                "compacted every 64 MiB; journal in $SHMBUS_BENCH_JOURNAL or the bench's "
                "temporary directory)",
                setup_none);
const struct bench_transport bench_shmbus_durable_batch = DURABLE_ROW(
    "shmbus-durable-batch",
    "durable bus, sync batch (as sync none, and a group commit, fdatasync(2), every 5 ms)",
    setup_batch);
const struct bench_transport bench_shmbus_durable_always = DURABLE_ROW(
    "shmbus-durable-always",
    "durable bus, sync always (fdatasync before each send and receive returns)", setup_always);

/* The cost of `shmbus tail` on a 1:1 stream: shmbus-default's stream with a tap attached. */
const struct bench_transport bench_shmbus_tapped = {
    .name = "shmbus-tapped",
    .about = "shmbus-default's stream with a tap (shmbus_tap_open, what `shmbus tail` uses) "
             "attached and reading every message in a third process (not pinned)",
    .kind = BENCH_SHMBUS,
    .wait = BENCH_HYBRID,
    .caps = BENCH_CAP_STREAM,
#ifdef BENCH_HAVE_SHMBUS
    .setup = tapped_setup,
    .open = open_default,
    .send = sb_send,
    .recv = sb_recv,
    .stream_send = sb_stream_send,
    .stream_recv = sb_stream_recv,
    .close = sb_close,
    .teardown = sb_teardown,
#else
    .probe = not_ready,
#endif
};

/* ---- shmbus ring: hop latency against the number of clients (ring.c runs it) ---- */

#ifdef BENCH_HAVE_SHMBUS

/* Client k (1..n) of the ring on bus arg: join, wait for everyone, then receive and forward
 * until told to stop. */
static int ring_client(struct bench_ring *rg, int k, void *arg)
{
    const char *bus_name = arg;
    int n = rg->n;
    shmbus_bus *bus = NULL;
    shmbus_client *c = NULL;
    int rc = shmbus_bus_open(bus_name, NULL, 0, &bus);
    if (rc == 0)
        rc = shmbus_join(bus, (uint32_t)k, NULL, &c);
    if (rc < 0) {
        bench_ring_fail(rg, k, shmbus_strerror(rc));
        shmbus_bus_close(bus);
        return rc;
    }
    struct bench_hist *h = &rg->hist[k - 1];
    bench_hist_init(h);
    bench_ring_wait_all(rg);
    uint64_t i = 0; /* this client's forwards so far */
    char buf[64] = {0};
    uint64_t hop = 0;
    if (k == n) {
        memcpy(buf, &hop, sizeof(hop));
        rc = shmbus_send(c, 1, buf, sizeof(buf), 0, 10000);
    }
    while (rc >= 0 && !atomic_load(&rg->failed)) {
        struct shmbus_msg m;
        rc = shmbus_recv(c, &m, buf, sizeof(buf), 10000);
        if (rc < 0)
            break;
        uint64_t now = bench_now_ns();
        memcpy(&hop, buf, sizeof(hop));
        if (hop == BENCH_RING_STOP)
            break;
        bench_hist_add(h, now - m.sent_ns);
        if (hop + 1 >= rg->hops) { /* the last hop: tell everyone else to stop */
            hop = BENCH_RING_STOP;
            memcpy(buf, &hop, sizeof(hop));
            for (int d = 1; d <= n && rc >= 0; d++)
                if (d != k)
                    rc = shmbus_send(c, (uint32_t)d, buf, sizeof(buf), 0, 10000);
            break;
        }
        int d = bench_ring_next(n, k, i++);
        hop++;
        memcpy(buf, &hop, sizeof(hop));
        rc = shmbus_send(c, (uint32_t)d, buf, sizeof(buf), 0, 10000);
    }
    if (rc < 0)
        bench_ring_fail(rg, k, shmbus_strerror(rc));
    shmbus_leave(c);
    shmbus_bus_close(bus);
    return rc < 0 ? rc : 0;
}

void bench_sb_ring(struct bench_scale *s, uint64_t hops)
{
    char name[SHMBUS_NAME_MAX + 1];
    char why[BENCH_WHY_LEN];
    if (bus_create(name, sizeof(name), (uint32_t)s->clients, SHMBUS_DEFAULT_SLOTS,
                   SHMBUS_DEFAULT_MSG_SIZE, &s->segment_bytes, why, sizeof(why)) < 0) {
        bench_why(s->bus.why, sizeof(s->bus.why), "skipped: ", why);
        return;
    }
    bench_ring_run(s->clients, hops, ring_client, name, &s->bus);
    shmbus_bus_destroy(name);
}

#else

void bench_sb_ring(struct bench_scale *s, uint64_t hops)
{
    (void)hops;
    bench_why(s->bus.why, sizeof(s->bus.why), "skipped: ", bench_shmbus_unavailable());
}

#endif

/* ---- memory: what a bus costs (issue 11) ---- */

#ifdef BENCH_HAVE_SHMBUS

#define MEMORY_BIG_MSG 65536u
#define MEMORY_MANY    1024u

/* Resident bytes of a System V segment: the rss column of /proc/sysvipc/shm, which lists the
 * segments of the caller's IPC namespace. The segment is the one with id *shmid, or when
 * *shmid is -1 the one of this size created by this process (its id goes to *shmid). 0, or
 * -errno with why filled in. */
static int shm_resident(int *shmid, uint64_t size, uint64_t *rss, char *why, size_t whylen)
{
    FILE *f = fopen("/proc/sysvipc/shm", "r");
    if (!f)
        return bench_fail(why, whylen, "/proc/sysvipc/shm");
    char line[512];
    int want = *shmid, found = 0;
    int header = 1;
    while (fgets(line, sizeof(line), f)) {
        if (header) { /* "key shmid perms size cpid lpid nattch ... ctime rss swap" */
            header = 0;
            continue;
        }
        /* key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime rss */
        unsigned long long v[15];
        int n = 0;
        char *save = NULL;
        for (char *tok = strtok_r(line, " \t\n", &save); tok && n < 15;
             tok = strtok_r(NULL, " \t\n", &save))
            v[n++] = strtoull(tok, NULL, 10); /* perms (octal) is not used */
        if (n < 15)
            continue;
        int id = (int)v[1];
        int match = want >= 0 ? id == want : v[3] == size && (pid_t)v[4] == getpid();
        if (!match)
            continue;
        found++;
        *rss = v[14];
        *shmid = id;
    }
    fclose(f);
    if (found > 1) { /* two of our own segments of the same size: cannot tell which */
        snprintf(why, whylen, "/proc/sysvipc/shm: %d segments of %llu bytes made by this process",
                 found, (unsigned long long)size);
        return -EEXIST;
    }
    if (found == 0) {
        snprintf(why, whylen, "/proc/sysvipc/shm: no such segment (or no rss column)");
        return -ENOENT;
    }
    return 0;
}

/* The segment size of a fresh bus with options o (its ring per mailbox to *ring if not NULL).
 * The bus is destroyed before returning. 0, or -errno with why filled in. */
static int memory_segment(const struct shmbus_bus_opts *o, uint64_t *bytes, uint64_t *ring,
                          char *why, size_t whylen)
{
    char name[SHMBUS_NAME_MAX + 1];
    shmbus_bus *bus = NULL;
    int rc = bus_new(name, sizeof(name), o, &bus, why, whylen);
    if (rc < 0)
        return rc;
    struct shmbus_bus_info info;
    rc = shmbus_bus_info(bus, &info);
    if (rc < 0) {
        snprintf(why, whylen, "shmbus_bus_info %s: %s", name, shmbus_strerror(rc));
    } else {
        *bytes = info.segment_size;
        if (ring)
            *ring = info.ring_bytes;
    }
    shmbus_bus_close(bus);
    shmbus_bus_destroy(name);
    return rc;
}

/* "Memory grows with use, not capacity": a 1024-client bus's resident pages right after
 * shmbus_bus_open() created it, and after shmbus_bus_info() (which reads every registry
 * entry's state) has run. The segment is found by its size and creator before anything
 * else of the library reads it, then checked against the id shmbus_bus_info() reports. */
static void memory_resident(struct bench_memory *m)
{
    struct shmbus_bus_opts o = {.max_clients = MEMORY_MANY};
    m->many_clients = MEMORY_MANY;
    ssize_t size = shmbus_bus_size(&o);
    if (size < 0) {
        snprintf(m->rss_why, sizeof(m->rss_why), "failed: shmbus_bus_size: %s",
                 shmbus_strerror((int)size));
        return;
    }
    char name[SHMBUS_NAME_MAX + 1], why[BENCH_WHY_LEN];
    shmbus_bus *bus = NULL;
    if (bus_new(name, sizeof(name), &o, &bus, why, sizeof(why)) < 0) {
        bench_why(m->rss_why, sizeof(m->rss_why), "skipped: ", why);
        return;
    }
    int shmid = -1;
    struct shmbus_bus_info info;
    int rc = shm_resident(&shmid, (uint64_t)size, &m->many_created, why, sizeof(why));
    if (rc == 0 && (rc = shmbus_bus_info(bus, &info)) < 0)
        snprintf(why, sizeof(why), "shmbus_bus_info: %s", shmbus_strerror(rc));
    if (rc == 0 && info.shmid != shmid) {
        snprintf(why, sizeof(why), "segment %d found, the bus's is %d", shmid, info.shmid);
        rc = -ESRCH;
    }
    if (rc == 0)
        rc = shm_resident(&shmid, 0, &m->many_scanned, why, sizeof(why));
    if (rc == 0) {
        m->many_bytes = info.segment_size;
        m->rss_ok = 1;
    } else {
        bench_why(m->rss_why, sizeof(m->rss_why), "failed: ", why);
    }
    shmbus_bus_close(bus);
    shmbus_bus_destroy(name);
}
#endif

void bench_measure_memory(struct bench_run *r)
{
    struct bench_memory *m = &r->memory;
    memset(m, 0, sizeof(*m));
#ifdef BENCH_HAVE_SHMBUS
    char why[BENCH_WHY_LEN];
    struct shmbus_bus_opts def = {0};
    m->clients = SHMBUS_DEFAULT_MAX_CLIENTS;
    m->default_msg = SHMBUS_DEFAULT_MSG_SIZE;
    int rc = memory_segment(&def, &m->default_bytes, &m->ring_bytes, why, sizeof(why));
    /* 64 KiB messages in the default bus's ring: what the byte ring makes possible. */
    struct shmbus_bus_opts big = {.msg_size = MEMORY_BIG_MSG, .ring_bytes = m->ring_bytes};
    if (rc == 0)
        rc = memory_segment(&big, &m->big_bytes, NULL, why, sizeof(why));
    if (rc == 0)
        m->ok = 1;
    else
        bench_why(m->why, sizeof(m->why), "failed: ", why);
    /* And with the ring left to its default, which is sized for `slots` such messages. */
    struct shmbus_bus_opts big_def = {.msg_size = MEMORY_BIG_MSG};
    ssize_t sz = shmbus_bus_size(&big_def);
    m->big_default_ring = sz > 0 ? (uint64_t)sz : 0;
    memory_resident(m);
#else
    bench_why(m->why, sizeof(m->why), "skipped: ", bench_shmbus_unavailable());
    bench_why(m->rss_why, sizeof(m->rss_why), "skipped: ", bench_shmbus_unavailable());
#endif
}
