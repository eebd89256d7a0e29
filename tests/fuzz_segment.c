/*
 * fuzz_segment: libFuzzer target. A peer that scribbles over the segment can make calls fail;
 * it must never make them crash, hang, or touch memory outside the segment (issue 4).
 *
 * Once, at start: a small real bus (4 clients, 4 slots, 64-byte messages) in a private
 * SHMBUS_DIR, two clients joined (ids 1 and 2, named "a" and "b") and a few messages in
 * their mailboxes; a copy of the segment's bytes is kept as the pristine image.
 *
 * Each input: the segment is reset to the pristine image, then patched by the input, a list
 * of records
 *     byte   region (low 2 bits: 0 header, 1 registry, 2 mailboxes, 3 anywhere; with bit 2
 *            set, the named-group table instead; with bit 3, the tap area)
 *     u16le  offset within that region (taken modulo its size)
 *     byte   length n, then n bytes to write there
 * and then the readers' paths run on it: shmbus_list, shmbus_lookup, shmbus_bus_info, and as
 * the joined clients shmbus_recv with timeout 0, shmbus_recv_batch, shmbus_reply to a
 * request, shmbus_send / shmbus_send_batch / shmbus_broadcast with SHMBUS_SEND_NONBLOCK,
 * shmbus_reap; then a fresh shmbus_bus_open of the patched segment (header checks), read-only
 * and read-write, with list, lookup, info, join, send, recv and leave on that handle. Named
 * groups (issue 12): client a subscribes to "t" and b leads "L" with a lease at setup; each
 * input then publishes, sends to the work queue, campaigns (with and without a lease),
 * renews, asks who leads, fences, lists the groups, unsubscribes and resigns on the patched
 * table. Taps (issue 13): a whole tap (SHMBUS_TAP_WHOLE) is opened on the patched tap area
 * before the sends and reads what it saw after them (a scribbled slot may claim a payload in
 * the bulk ring at any offset).
 *
 * Time (issue 9): then the waits run with a small timeout T (TIMED_MS): a receive on an
 * empty mailbox, a send into a full one, an ACK send nobody takes, a request nobody answers.
 * Each must return within T + WALL_SLACK_MS and use at most CPU_MAX_MS of CPU, whatever the
 * patch wrote (a semaphore word of 10^8 used to cost seconds); an overrun aborts, which
 * libFuzzer reports as a crash with the input kept.
 *
 * Out-of-bounds: every shmat() the library (or this file) makes is wrapped (the link uses
 * -Wl,--wrap=shmat,--wrap=shmdt) to place the segment between two PROT_NONE guard pages, so
 * a read or write just outside it faults instead of landing in a neighbouring mapping.
 *
 * Clean-up: an atexit() handler destroys the bus; a small guardian child, forked at start,
 * removes the segment and key directory if this process dies any other way (a crash found
 * by the fuzzer ends in _exit, which skips atexit).
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <time.h>
#include <unistd.h>

#include "../src/internal.h" /* the layout, to aim patches at its regions */
#include "shmbus.h"

#define MSG 64u

#define TIMED_MS      2    /* timeout of each timed call */
#define WALL_SLACK_MS 1000 /* it may return this much later (sanitizers, a loaded machine) */
#define CPU_MAX_MS    50   /* and use at most this much CPU */

static shmbus_bus *bus;
static shmbus_client *ca, *cb;
static uint8_t *seg;      /* our own mapping of the segment, to patch it */
static uint8_t *pristine; /* its bytes after setup */
static size_t seg_size, reg_off, reg_size, mbox_off, grp_off, tap_off, restore_size;
static int shmid = -1;
static char dir[256], name[64];
static int guard_fd = -1;

/* ---- guarded attach ---------------------------------------------------------------------- */

void *__real_shmat(int id, const void *addr, int flags);
int __real_shmdt(const void *addr);
void *__wrap_shmat(int id, const void *addr, int flags);
int __wrap_shmdt(const void *addr);

static struct {
    void *addr;
    size_t len;
} maps[32];

void *__wrap_shmat(int id, const void *addr, int flags)
{
    struct shmid_ds ds;
    long page = sysconf(_SC_PAGESIZE);
    if (addr != NULL || shmctl(id, IPC_STAT, &ds) != 0)
        return __real_shmat(id, addr, flags);
    size_t len = (ds.shm_segsz + (size_t)page - 1) / (size_t)page * (size_t)page;
    uint8_t *area = mmap(NULL, len + 2 * (size_t)page, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (area == MAP_FAILED)
        return __real_shmat(id, addr, flags);
    void *p = __real_shmat(id, area + page, flags | SHM_REMAP);
    if (p == (void *)-1) {
        int e = errno;
        munmap(area, len + 2 * (size_t)page);
        errno = e;
        return p;
    }
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
        if (maps[i].addr == NULL) {
            maps[i].addr = p;
            maps[i].len = len;
            break;
        }
    }
    return p;
}

int __wrap_shmdt(const void *addr)
{
    int r = __real_shmdt(addr);
    long page = sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
        if (maps[i].addr == addr) {
            munmap((uint8_t *)maps[i].addr - page, (size_t)page);
            munmap((uint8_t *)maps[i].addr + maps[i].len, (size_t)page);
            maps[i].addr = NULL;
            break;
        }
    }
    return r;
}

/* ---- setup and clean-up ------------------------------------------------------------------ */

static void remove_all(void)
{
    if (shmid >= 0)
        shmctl(shmid, IPC_RMID, NULL);
    char path[400];
    snprintf(path, sizeof(path), "%s/%s.bus", dir, name);
    unlink(path);
    rmdir(dir);
}

static void at_exit(void)
{
    shmbus_bus_close(bus); /* the clients are left joined: the segment goes anyway */
    remove_all();
    if (seg != NULL)
        shmdt(seg);
}

/* A child that outlives us only to remove the segment if we die without atexit. */
static void start_guardian(void)
{
    int fds[2];
    if (pipe(fds) != 0)
        return;
    pid_t pid = fork();
    if (pid < 0)
        return;
    if (pid == 0) {
        close(fds[1]);
        char c;
        while (read(fds[0], &c, 1) < 0 && errno == EINTR)
            ;
        remove_all();
        _exit(0);
    }
    close(fds[0]);
    guard_fd = fds[1]; /* closed by the kernel when we die, however we die */
}

static void die(const char *what, int r)
{
    fprintf(stderr, "fuzz_segment: %s: %s\n", what, shmbus_strerror(r));
    exit(1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *env = getenv("SHMBUS_DIR");
    if (env != NULL && env[0] != '\0') {
        snprintf(dir, sizeof(dir), "%s", env);
    } else {
        snprintf(dir, sizeof(dir), "/tmp/shmbus-fuzz.XXXXXX");
        if (mkdtemp(dir) == NULL)
            die("mkdtemp", -errno);
        setenv("SHMBUS_DIR", dir, 1);
    }
    snprintf(name, sizeof(name), "fuzz-%d", (int)getpid());
    struct shmbus_bus_opts o = {.max_clients = 4, .slots = 4, .msg_size = MSG};
    int r = shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &bus);
    if (r < 0)
        die("create bus", r);
    struct shmbus_bus_info info;
    shmbus_bus_info(bus, &info);
    shmid = info.shmid;
    start_guardian();
    atexit(at_exit);
    if ((r = shmbus_join(bus, 1, "a", &ca)) < 0 || (r = shmbus_join(bus, 2, "b", &cb)) < 0)
        die("join", r);
    shmbus_send(cb, 1, "hello", 5, SHMBUS_SEND_NONBLOCK, 0);
    shmbus_send(cb, 1, "urgent", 6, SHMBUS_PRIO(5) | SHMBUS_SEND_NONBLOCK, 0);
    shmbus_send(ca, 2, "x", 1, SHMBUS_SEND_NONBLOCK, 0);
    if ((r = shmbus_subscribe(ca, "t", 0)) < 0 || (r = shmbus_elect_lease(cb, "L", 600000, 0)) != 1)
        die("groups", r < 0 ? r : -EPROTO);

    seg_size = info.segment_size;
    seg = shmat(shmid, NULL, 0);
    if (seg == (void *)-1)
        die("shmat", -errno);
    /* Where the regions are, to aim patches: computed as the library does. */
    struct sb_layout lay;
    if ((r = sb__layout(&lay, o.max_clients, o.slots, o.msg_size, o.ring_bytes)) < 0)
        die("layout", r);
    reg_off = lay.registry_off;
    mbox_off = lay.mbox_off;
    reg_size = mbox_off - reg_off;
    grp_off = lay.group_off;
    tap_off = lay.tap_off;
    /* Everything but the tap bulk ring (8 MiB of payload bytes, trusted by nobody: a reader
     * checks bulk_head, which is in the tap control block) is restored before each input. */
    restore_size = lay.tap_bulk_off;
    pristine = malloc(restore_size);
    memcpy(pristine, seg, restore_size);
    return 0;
}

/* ---- one input --------------------------------------------------------------------------- */

static void patch(const uint8_t *data, size_t size)
{
    size_t i = 0;
    while (i + 4 <= size) {
        unsigned region = data[i] & 3, groups = data[i] & 4, taps = data[i] & 8;
        size_t off = (size_t)data[i + 1] | (size_t)data[i + 2] << 8;
        size_t n = data[i + 3];
        i += 4;
        if (n > size - i)
            n = size - i;
        size_t base = 0, len = seg_size;
        if (region == 0) {
            len = reg_off;
        } else if (region == 1) {
            base = reg_off;
            len = reg_size;
        } else if (region == 2) {
            base = mbox_off;
            len = grp_off - mbox_off;
        }
        if (groups) {
            base = grp_off;
            len = seg_size - grp_off;
        }
        if (taps) {
            base = tap_off;
            len = grp_off - tap_off;
        }
        off %= len;
        if (n > len - off)
            n = len - off;
        memcpy(seg + base + off, data + i, n);
        i += n;
    }
}

static void drain(shmbus_client *c)
{
    uint8_t buf[MSG];
    struct shmbus_msg h;
    for (int k = 0; k < 6; k++) {
        int r = shmbus_recv(c, &h, buf, sizeof(buf), 0);
        if (r == -EMSGSIZE)
            r = shmbus_recv(c, &h, NULL, 0, 0);
        if (r < 0)
            break;
        if (h.flags & SHMBUS_MSG_REQUEST)
            shmbus_reply(c, &h, "r", 1, 0, 0);
    }
    struct shmbus_msg hs[4];
    uint8_t bufs[4][MSG];
    shmbus_recv_batch(c, hs, bufs, MSG, 4, 0);
    const void *p;
    if (shmbus_recv_ref(c, &h, &p, 0) >= 0) {
        volatile uint8_t sink = h.len ? *(const uint8_t *)p : 0; /* the bytes lent are ours */
        (void)sink;
        shmbus_recv_release(c, p);
    }
}

static void send_all(shmbus_client *from, uint32_t to)
{
    struct shmbus_iov iov[3] = {{"1", 1}, {"22", 2}, {"333", 3}};
    shmbus_send(from, to, "m", 1, SHMBUS_SEND_NONBLOCK, 0);
    shmbus_send(from, to, "p", 1, SHMBUS_PRIO(6) | SHMBUS_SEND_NONBLOCK, 0);
    shmbus_send_batch(from, to, iov, 3, SHMBUS_SEND_NONBLOCK, 0);
    shmbus_broadcast(from, "all", 3, SHMBUS_SEND_NONBLOCK, 0);
    struct shmbus_loan l;
    if (shmbus_loan(from, to, MSG, SHMBUS_SEND_NONBLOCK, 0, &l) == 0) {
        memset(l.data, 'L', MSG);
        shmbus_loan_commit(from, &l, MSG);
    }
    if (shmbus_loan(from, to, 1, SHMBUS_PRIO(2) | SHMBUS_SEND_NONBLOCK, 0, &l) == 0)
        shmbus_loan_cancel(from, &l);
}

/* A whole tap on the (patched) tap area: every read fails or succeeds, never crashes. */
static void tap_reads(shmbus_tap *t)
{
    static uint8_t buf[4096];
    struct shmbus_tap_msg tm;
    for (int k = 0; t != NULL && k < 40; k++)
        if (shmbus_tap_next(t, &tm, buf, sizeof(buf), 0) == -EAGAIN)
            break;
    shmbus_tap_close(t);
}

/* Every group call on the (patched) table: they fail or succeed, never crash or hang. */
static void group_calls(void)
{
    struct shmbus_group_info gi[SHMBUS_GROUPS];
    uint32_t who;
    uint64_t ep;
    shmbus_group_list(bus, gi, SHMBUS_GROUPS);
    shmbus_publish(cb, "t", "pub", 3, SHMBUS_SEND_NONBLOCK, 0);
    shmbus_send_group(cb, "t", "job", 3, SHMBUS_SEND_NONBLOCK, 0);
    shmbus_send_group(cb, "none", "job", 3, 0, 0);
    shmbus_leader(bus, "L", &who, &ep);
    shmbus_fence_check(bus, "L", 1);
    shmbus_send_fenced(cb, 1, "L", 1, "f", 1, SHMBUS_SEND_NONBLOCK, 0);
    shmbus_renew(cb, "L", 1, 600000);
    shmbus_elect(ca, "L", 0);
    shmbus_elect_lease(ca, "L", 1000, 0);
    shmbus_elect(ca, "new", 0);
    shmbus_resign(cb, "L");
    shmbus_unsubscribe(ca, "t");
    shmbus_subscribe(cb, "u", 0);
}

static void read_paths(shmbus_bus *b)
{
    struct shmbus_client_info ci[4];
    struct shmbus_bus_info bi;
    shmbus_list(b, ci, 4);
    shmbus_list(b, NULL, 0);
    shmbus_lookup(b, "a");
    shmbus_lookup(b, "b");
    shmbus_bus_info(b, &bi);
}

/* Open the patched segment afresh (through its key file: bus_open never waits for it). */
static void fresh_open(void)
{
    shmbus_bus *b;
    if (shmbus_bus_open(name, NULL, SHMBUS_OPEN_RDONLY, &b) == 0) {
        read_paths(b);
        shmbus_bus_close(b);
    }
    if (shmbus_bus_open(name, NULL, 0, &b) == 0) {
        read_paths(b);
        shmbus_client *c;
        if (shmbus_join(b, 0, NULL, &c) == 0) {
            shmbus_send(c, shmbus_client_id(c), "s", 1, SHMBUS_SEND_NONBLOCK, 0);
            shmbus_send(c, 1, "t", 1, SHMBUS_SEND_NONBLOCK, 0);
            drain(c);
            shmbus_leave(c);
        }
        shmbus_reap(b);
        shmbus_bus_close(b);
    }
}

/* ---- timed calls ------------------------------------------------------------------------- */

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct timing {
    uint64_t wall, cpu;
};

static struct timing timing_start(void)
{
    return (struct timing){clock_ns(CLOCK_MONOTONIC), clock_ns(CLOCK_THREAD_CPUTIME_ID)};
}

static void timing_check(struct timing t, const char *what, int r)
{
    uint64_t wall = clock_ns(CLOCK_MONOTONIC) - t.wall;
    uint64_t cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - t.cpu;
    if (wall <= (uint64_t)(TIMED_MS + WALL_SLACK_MS) * 1000000ull &&
        cpu <= (uint64_t)CPU_MAX_MS * 1000000ull)
        return;
    fprintf(stderr, "fuzz_segment: %s (timeout %d ms) returned %s after %llu ms, %llu ms CPU\n",
            what, TIMED_MS, shmbus_strerror(r), (unsigned long long)(wall / 1000000),
            (unsigned long long)(cpu / 1000000));
    abort();
}

static void timed_calls(void)
{
    uint8_t buf[MSG];
    struct shmbus_msg h;
    struct timing t = timing_start();
    int r = shmbus_recv(ca, &h, buf, sizeof(buf), TIMED_MS);
    timing_check(t, "recv", r);

    for (int k = 0; k < 8 && shmbus_send(ca, 2, "f", 1, SHMBUS_SEND_NONBLOCK, 0) == 0; k++)
        ;
    t = timing_start();
    r = shmbus_send(ca, 2, "w", 1, 0, TIMED_MS);
    timing_check(t, "send to a full mailbox", r);

    t = timing_start();
    r = shmbus_send(cb, 1, "k", 1, SHMBUS_SEND_ACK, TIMED_MS);
    timing_check(t, "ACK send", r);

    t = timing_start();
    r = shmbus_request(ca, 2, "q", 1, &h, buf, sizeof(buf), 0, TIMED_MS);
    timing_check(t, "request", r);

    t = timing_start();
    r = shmbus_elect(ca, "L", TIMED_MS);
    timing_check(t, "elect", r);

    t = timing_start();
    r = shmbus_send_group(cb, "empty", "j", 1, 0, TIMED_MS);
    timing_check(t, "send to a group with no member", r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memcpy(seg, pristine, restore_size);
    patch(data, size);
    read_paths(bus);
    drain(ca);
    shmbus_tap *tap = NULL;
    shmbus_tap_open_flags(bus, SHMBUS_TAP_WHOLE, &tap);
    send_all(cb, 1);
    send_all(ca, 2);
    send_all(ca, 1);
    tap_reads(tap);
    drain(cb);
    drain(ca);
    group_calls();
    drain(ca);
    shmbus_reap(bus);
    read_paths(bus);
    timed_calls();
    fresh_open();
    return 0;
}
