/*
 * iceoryx (Eclipse, through its C binding) as a peer, and the daemon it needs.
 *
 * Design notes
 * - iceoryx needs its daemon, iox-roudi. The bench starts one itself (output to a log in the
 *   bench's private directory), waits for its "RouDi is ready for clients" line, runs the
 *   iceoryx rows, and stops it with SIGTERM (on which it removes its shared memory and lock
 *   files), SIGKILL after 5 s. Then it removes what a killed RouDi leaves behind
 *   (/dev/shm/iceoryx_mgmt, /dev/shm/<user>, /tmp/roudi, /tmp/roudi.lock,
 *   /tmp/iox-unique-roudi.lock), but only those that did not exist before it started, so an
 *   iceoryx installation in use on the machine is never touched. If a RouDi is already
 *   running, the rows are skipped rather than sharing someone else's daemon.
 * - Each child registers its own runtime after it is pinned (the runtime starts threads), and
 *   shuts it down before it exits. Runtime names are made from the parent's pid, a serial and
 *   the role, so the parent can remove the socket and lock file a killed child leaves in /tmp.
 * - Round trips use two publish/subscribe services, one per direction; streams use one with a
 *   blocking policy on both sides (publisher waits for a slow subscriber, no message dropped).
 * - Messages are copied into a loaned chunk and out of the received one, exactly as every other
 *   transport copies from and into the caller's buffer: the same method for everyone. (True zero
 *   copy would skip two memcpy calls of the message size: nothing at 64 B, more at 64 KiB.)
 * - Two rows: iceoryx-poll busy-polls iox_sub_take_chunk(); iceoryx-wait sleeps in a WaitSet
 *   until the subscriber has data (iceoryx's blocking wait).
 */
#include "internal.h"
#include "../src/relax.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef BENCH_HAVE_ICEORYX
#include <iceoryx_binding_c/api.h>
#endif

#define ROUDI "iox-roudi"

static pid_t roudi_pid = -1;
static int roudi_owned; /* our RouDi got ready: the files it made are ours to remove */
static char roudi_log[512];
static char leftover[5][128];
static int existed[5];

static const char *find_roudi(void)
{
    static char path[512];
    const char *env = getenv("PATH");
    char dirs[2048];
    snprintf(dirs, sizeof(dirs), "%s:/usr/bin:/usr/local/bin", env ? env : "");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(path, sizeof(path), "%s/" ROUDI, d);
        if (access(path, X_OK) == 0)
            return path;
    }
    return NULL;
}

/* 1 when some other RouDi holds its lock file. */
static int roudi_running_elsewhere(void)
{
    int fd = open("/tmp/roudi.lock", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int busy = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd); /* drops the lock if we got it */
    return busy;
}

static void last_line(const char *path, char *out, size_t outlen)
{
    FILE *f = fopen(path, "r");
    char line[256];
    out[0] = 0;
    if (!f)
        return;
    while (fgets(line, sizeof(line), f))
        if (line[0] != '\n')
            snprintf(out, outlen, "%.*s", (int)outlen - 1, line);
    fclose(f);
    out[strcspn(out, "\n")] = 0;
}

static int log_says_ready(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[256];
    int ready = 0;
    if (!f)
        return 0;
    while (!ready && fgets(line, sizeof(line), f))
        ready = strstr(line, "RouDi is ready for clients") != NULL;
    fclose(f);
    return ready;
}

int bench_roudi_start(char *why, size_t whylen)
{
    const char *bin = find_roudi();
    if (!bin) {
        snprintf(why, whylen, ROUDI " not found (scripts/deps.sh bench installs iceoryx)");
        return -1;
    }
    if (roudi_running_elsewhere()) {
        snprintf(why, whylen, "another iox-roudi is already running; not sharing it");
        return -1;
    }
    struct passwd *pw = getpwuid(geteuid());
    snprintf(leftover[0], sizeof(leftover[0]), "/dev/shm/iceoryx_mgmt");
    snprintf(leftover[1], sizeof(leftover[1]), "/dev/shm/%s", pw ? pw->pw_name : "root");
    snprintf(leftover[2], sizeof(leftover[2]), "/tmp/roudi");
    snprintf(leftover[3], sizeof(leftover[3]), "/tmp/roudi.lock");
    snprintf(leftover[4], sizeof(leftover[4]), "/tmp/iox-unique-roudi.lock");
    for (int i = 0; i < 5; i++)
        existed[i] = access(leftover[i], F_OK) == 0;
    snprintf(roudi_log, sizeof(roudi_log), "%s/roudi.log", bench_tmpdir);

    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return bench_fail(why, whylen, "fork");
    if (pid == 0) {
        int fd = open(roudi_log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int null = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (null >= 0)
            dup2(null, 0);
        signal(SIGINT, SIG_IGN); /* the bench stops it; a ^C reaches the bench's handler */
        execl(bin, ROUDI, "-l", "warning", (char *)NULL);
        _exit(127);
    }
    roudi_pid = pid;
    bench_track_pid(pid);
    uint64_t deadline = bench_now_ns() + 15000000000ull;
    while (bench_now_ns() < deadline) {
        if (log_says_ready(roudi_log)) {
            roudi_owned = 1;
            return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            char line[160];
            last_line(roudi_log, line, sizeof(line));
            snprintf(why, whylen, ROUDI " exited before it was ready: %s",
                     line[0] ? line : "no output");
            bench_forget_pid(pid);
            roudi_pid = -1;
            bench_roudi_stop();
            return -1;
        }
        bench_sleep_us(20000);
    }
    snprintf(why, whylen, ROUDI " not ready after 15 s");
    bench_roudi_stop();
    return -1;
}

void bench_roudi_stop(void)
{
    if (roudi_pid > 0) {
        kill(roudi_pid, SIGTERM);
        uint64_t deadline = bench_now_ns() + 5000000000ull;
        int st;
        while (waitpid(roudi_pid, &st, WNOHANG) == 0) {
            if (bench_now_ns() > deadline) {
                kill(roudi_pid, SIGKILL);
                waitpid(roudi_pid, &st, 0);
                break;
            }
            bench_sleep_us(10000);
        }
        bench_forget_pid(roudi_pid);
        roudi_pid = -1;
    }
    /* Only a RouDi that got ready made these files. One that gave up (say, another bench's
     * RouDi won the race for the lock) made none, and what is there belongs to the winner. */
    for (int i = 0; i < 5 && roudi_owned; i++)
        if (leftover[i][0] && !existed[i])
            unlink(leftover[i]);
    roudi_owned = 0;
    if (roudi_log[0])
        unlink(roudi_log);
}

const char *bench_iox_unavailable(void)
{
#ifdef BENCH_HAVE_ICEORYX
    return NULL;
#else
    return "the iceoryx C binding was not found at build time (scripts/deps.sh bench installs "
           "libiceoryx-binding-c-dev)";
#endif
}

#ifdef BENCH_HAVE_ICEORYX

struct bench_chan {
    char instance[64];
    size_t size;
    int streaming;
};

struct iox_ep {
    iox_pub_storage_t pub_storage;
    iox_sub_storage_t sub_storage;
    iox_ws_storage_t ws_storage;
    iox_pub_t pub;
    iox_sub_t sub;
    iox_ws_t ws;
};

static int iox_setup(struct bench_chan **chp, size_t size, int nprod, int streaming, char *why,
                     size_t whylen)
{
    (void)nprod;
    static unsigned serial;
    struct bench_chan *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return bench_fail(why, whylen, "calloc");
    snprintf(ch->instance, sizeof(ch->instance), "%d-%u", (int)getpid(), serial++);
    ch->size = size;
    ch->streaming = streaming;
    *chp = ch;
    return 0;
}

/* The runtime name of a child: unique, and known to the parent, which removes the socket and
 * lock file iceoryx makes for it in /tmp when the child could not (it was killed). */
static void runtime_name(const struct bench_chan *ch, enum bench_role role, int index, char *buf,
                         size_t len)
{
    snprintf(buf, len, "shmbus-bench-%s-%d-%d", ch->instance, (int)role, index);
}

static void remove_runtime_files(const char *name)
{
    char path[160];
    snprintf(path, sizeof(path), "/tmp/%s", name);
    unlink(path);
    snprintf(path, sizeof(path), "/tmp/%s.lock", name);
    unlink(path);
}

static void iox_teardown(struct bench_chan *ch)
{
    const enum bench_role roles[] = {BENCH_PING, BENCH_PONG, BENCH_PRODUCER, BENCH_CONSUMER};
    for (int i = 0; i < 4; i++) {
        char name[100];
        runtime_name(ch, roles[i], 0, name, sizeof(name));
        remove_runtime_files(name);
    }
    free(ch);
}

static void iox_close(void *ep)
{
    struct iox_ep *e = ep;
    if (e->ws)
        iox_ws_deinit(e->ws);
    if (e->sub)
        iox_sub_deinit(e->sub);
    if (e->pub)
        iox_pub_deinit(e->pub);
    free(e);
    iox_runtime_shutdown();
}

static int iox_open_common(struct bench_chan *ch, enum bench_role role, int wait, void **ep,
                           char *why, size_t whylen)
{
    struct iox_ep *e = calloc(1, sizeof(*e));
    if (!e)
        return bench_fail(why, whylen, "calloc");
    char name[100];
    runtime_name(ch, role, 0, name, sizeof(name));
    iox_set_loglevel(Iceoryx_LogLevel_Warn);
    iox_runtime_init(name);

    const char *out = role == BENCH_PONG ? "pong" : "ping";
    const char *in = role == BENCH_PONG ? "ping" : "pong";
    if (ch->streaming)
        in = "ping";
    int has_pub = role != BENCH_CONSUMER, has_sub = role != BENCH_PRODUCER;
    if (has_pub) {
        iox_pub_options_t o;
        iox_pub_options_init(&o);
        o.historyCapacity = 0;
        o.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
        e->pub = iox_pub_init(&e->pub_storage, "shmbus-bench", ch->instance, out, &o);
    }
    if (has_sub) {
        iox_sub_options_t o;
        iox_sub_options_init(&o);
        o.queueCapacity = 256;
        o.historyRequest = 0;
        o.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
        e->sub = iox_sub_init(&e->sub_storage, "shmbus-bench", ch->instance, in, &o);
        if (wait) {
            e->ws = iox_ws_init(&e->ws_storage);
            if (iox_ws_attach_subscriber_state(e->ws, e->sub, SubscriberState_HAS_DATA, 0, NULL) !=
                WaitSetResult_SUCCESS) {
                snprintf(why, whylen, "iox_ws_attach_subscriber_state failed");
                iox_close(e);
                return -EIO;
            }
        }
    }
    /* Discovery goes through RouDi and takes a few of its cycles. */
    uint64_t deadline = bench_now_ns() + 10000000000ull;
    for (;;) {
        int ok = (!has_pub || iox_pub_has_subscribers(e->pub)) &&
                 (!has_sub || iox_sub_get_subscription_state(e->sub) == SubscribeState_SUBSCRIBED);
        if (ok)
            break;
        if (bench_now_ns() > deadline) {
            snprintf(why, whylen, "iceoryx publisher and subscriber did not connect within 10 s");
            iox_close(e);
            return -ETIMEDOUT;
        }
        bench_sleep_us(1000);
    }
    *ep = e;
    return 0;
}

static int iox_open_poll(struct bench_chan *ch, enum bench_role role, int index, void **ep,
                         char *why, size_t whylen)
{
    (void)index;
    return iox_open_common(ch, role, 0, ep, why, whylen);
}

static int iox_open_wait(struct bench_chan *ch, enum bench_role role, int index, void **ep,
                         char *why, size_t whylen)
{
    (void)index;
    return iox_open_common(ch, role, 1, ep, why, whylen);
}

static int iox_send(void *ep, const void *buf, size_t len)
{
    struct iox_ep *e = ep;
    void *chunk = NULL;
    if (iox_pub_loan_chunk(e->pub, &chunk, (uint32_t)len) != AllocationResult_SUCCESS)
        return -ENOMEM;
    memcpy(chunk, buf, len);
    iox_pub_publish_chunk(e->pub, chunk);
    return 0;
}

static int iox_take(struct iox_ep *e, void *buf, size_t len, int wait)
{
    for (;;) {
        const void *chunk = NULL;
        enum iox_ChunkReceiveResult r = iox_sub_take_chunk(e->sub, &chunk);
        if (r == ChunkReceiveResult_SUCCESS) {
            memcpy(buf, chunk, len);
            iox_sub_release_chunk(e->sub, chunk);
            return 0;
        }
        if (r != ChunkReceiveResult_NO_CHUNK_AVAILABLE)
            return -EIO;
        if (wait) {
            iox_notification_info_t info[4];
            uint64_t missed = 0;
            iox_ws_wait(e->ws, info, 4, &missed);
        } else {
            sb__cpu_relax();
        }
    }
}

static int iox_recv_poll(void *ep, void *buf, size_t len)
{
    return iox_take(ep, buf, len, 0);
}

static int iox_recv_wait(void *ep, void *buf, size_t len)
{
    return iox_take(ep, buf, len, 1);
}

#else
static const char *iox_probe(size_t size, char *why, size_t whylen)
{
    (void)size;
    (void)why;
    (void)whylen;
    return bench_iox_unavailable();
}
#endif

const struct bench_transport bench_peer_iox_poll = {
    .name = "iceoryx-poll",
    .about = "iceoryx 2.0 C binding, publish/subscribe, receiver busy-polls take_chunk",
    .kind = BENCH_PEER,
    .wait = BENCH_SPIN,
    .caps = BENCH_CAP_LATENCY | BENCH_CAP_STREAM,
#ifdef BENCH_HAVE_ICEORYX
    .setup = iox_setup,
    .open = iox_open_poll,
    .send = iox_send,
    .recv = iox_recv_poll,
    .close = iox_close,
    .teardown = iox_teardown,
#else
    .probe = iox_probe,
#endif
};

const struct bench_transport bench_peer_iox_wait = {
    .name = "iceoryx-wait",
    .about = "iceoryx 2.0 C binding, publish/subscribe, receiver sleeps in a WaitSet",
    .kind = BENCH_PEER,
    .wait = BENCH_SLEEP,
    .caps = BENCH_CAP_LATENCY | BENCH_CAP_STREAM,
#ifdef BENCH_HAVE_ICEORYX
    .setup = iox_setup,
    .open = iox_open_wait,
    .send = iox_send,
    .recv = iox_recv_wait,
    .close = iox_close,
    .teardown = iox_teardown,
#else
    .probe = iox_probe,
#endif
};
