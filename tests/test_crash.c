/*
 * test_crash: clients killed with SIGKILL at random moments and at every test point inside the
 * library's critical sections, and clients stopped with SIGSTOP for longer than any timeout.
 *
 * What every test checks (issue 4):
 *   - survivors keep working within 1 s: a receiver blocked behind a dead writer's reserved
 *     slot gets the messages queued behind it within 1 s, senders to a dead receiver get an
 *     error within 1 s;
 *   - no committed message to a live receiver is lost or duplicated: every sender numbers its
 *     messages 1, 2, ... and the receiver checks each sender's numbers arrive exactly in order;
 *     the killed sender's stream may only end early (between what its send calls returned and
 *     what it had started), never have a hole;
 *   - no torn message: every payload byte is a function of (sender, number), checked;
 *   - the dead are reaped: after shmbus_reap() shmbus_list() shows no dead client;
 *   - nothing leaks: each round destroys its bus, th_cleanup() and tests/run.sh check the rest.
 *
 * The deterministic kills use the library's test-only hook sb__test_point() (src/internal.h):
 * a child sets which point it wants, the hook SIGSTOPs it there, the parent sees it stopped
 * (waitpid WUNTRACED) and SIGKILLs it: a kill at exactly that instruction range, every time.
 *
 * SHMBUS_KILL_ROUNDS sets the number of random rounds (default 500; `make soak` runs 10000),
 * SHMBUS_KILL_SEED the random seed (printed, so a failing round can be replayed).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../src/internal.h" /* SB_TP_* test points */
#include "helpers.h"
#include "shmbus.h"

#define MSG_SIZE   128u
#define SLOTS      8u
#define MAXC       8u
#define NSEND      3 /* senders in a random round: ids 2..4 */
#define RECV_ID    1u
#define CHURN_ID   5u
#define CTL_ID     8u           /* the parent, to tell a receiver to stop */
#define RECOVER_NS recover_ns() /* issue 4: survivors keep working within 1 s */

/* 1 s; 2 s in a sanitizer build (make check SAN=... exports SAN), whose processes run several
 * times slower: the plain build holds the requirement, the sanitized one looks for memory
 * errors on the same paths without failing on a loaded machine's time. */
static uint64_t recover_ns(void)
{
    const char *san = getenv("SAN");
    return san && *san ? 2000000000ull : 1000000000ull;
}

/* ---- state shared between the parent and its children ----------------------------------- */

struct shared {
    _Atomic uint32_t attempted[8]; /* per sender: highest number handed to a send call */
    _Atomic uint32_t acked[8];     /* per sender: highest number a send call returned for */
    _Atomic uint32_t got[8];       /* receiver: highest number received from each sender */
    _Atomic uint64_t max_gap_ns;   /* receiver: longest wait between two data messages */
    _Atomic uint64_t dropped;      /* receiver: its `dropped` counter when it stopped */
    _Atomic uint64_t fin_ns;       /* senders: when the last one finished */
    _Atomic int stop;              /* churn: time to go */
    _Atomic int err_set;
    char err[256]; /* the first error a child hit, for the parent's failure message */
};

static struct shared *sh;
static uint64_t max_recovery_ns; /* over the deterministic tests, reported at the end */

static void child_err(const char *fmt, int a, int b, int c)
{
    int zero = 0;
    if (atomic_compare_exchange_strong(&sh->err_set, &zero, 1))
        snprintf(sh->err, sizeof(sh->err), fmt, a, b, c);
}

static void reset_shared(void)
{
    memset(sh, 0, sizeof(*sh));
}

/* ---- the test-only hook ------------------------------------------------------------------ */

static int tp_point; /* SB_TP_* this process stops at, 0 for none */
static int tp_left;  /* ... at its tp_left-th passage */

void sb__test_point(int where);
void sb__test_point(int where)
{
    if (where == tp_point && --tp_left == 0)
        raise(SIGSTOP);
}

/* Wait until child pid is stopped. 0, or -1 if it exited or the time ran out. */
static int wait_stopped(pid_t pid, int timeout_ms)
{
    uint64_t deadline = th_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WUNTRACED | WNOHANG);
        if (r == pid)
            return WIFSTOPPED(st) ? 0 : -1;
        if (r < 0 && errno != EINTR)
            return -1;
        if (th_now_ns() > deadline)
            return -1;
        /* Polling a child's state: waitpid has no timeout (as in th_wait). */
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void kill_and_wait(pid_t pid)
{
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(th_wait(pid, 5000), 128 + SIGKILL);
}

/* ---- payloads: every byte a function of (sender, number) --------------------------------- */

struct pl {
    uint32_t sender, n, len, sum;
};

static uint8_t body_byte(uint32_t s, uint32_t n, uint32_t i)
{
    uint32_t x = s * 2654435761u ^ n * 40503u ^ (i + 1) * 2246822519u;
    x ^= x >> 15;
    x *= 2246822519u;
    return (uint8_t)(x >> 24);
}

static size_t make_msg(uint8_t *buf, uint32_t s, uint32_t n)
{
    struct pl p = {.sender = s, .n = n, .len = (s * 7 + n * 13) % (MSG_SIZE - sizeof(p) + 1)};
    uint32_t sum = 2166136261u ^ s ^ (n << 8) ^ (p.len << 20);
    for (uint32_t i = 0; i < p.len; i++) {
        uint8_t v = body_byte(s, n, i);
        buf[sizeof(p) + i] = v;
        sum = (sum ^ v) * 16777619u;
    }
    p.sum = sum;
    memcpy(buf, &p, sizeof(p));
    return sizeof(p) + p.len;
}

/* 0 if buf (len bytes, from client src) is whole; -EBADMSG if torn or forged. */
static int check_msg(const uint8_t *buf, int len, uint32_t src, struct pl *out)
{
    struct pl p;
    if (len < (int)sizeof(p))
        return -EBADMSG;
    memcpy(&p, buf, sizeof(p));
    if (p.sender != src || (size_t)len != sizeof(p) + p.len || p.len > MSG_SIZE - sizeof(p))
        return -EBADMSG;
    uint32_t sum = 2166136261u ^ p.sender ^ (p.n << 8) ^ (p.len << 20);
    for (uint32_t i = 0; i < p.len; i++) {
        uint8_t v = buf[sizeof(p) + i];
        if (v != body_byte(p.sender, p.n, i))
            return -EBADMSG;
        sum = (sum ^ v) * 16777619u;
    }
    if (sum != p.sum)
        return -EBADMSG;
    *out = p;
    return 0;
}

/* ---- children ---------------------------------------------------------------------------- */

struct job {
    const char *bus;
    uint32_t id;    /* client id to join as */
    uint32_t dst;   /* where to send */
    uint32_t count; /* messages to send */
    uint32_t batch; /* > 1: shmbus_send_batch() in batches of this size */
    unsigned prio;
    int timeout_ms; /* per send */
    int stop_point; /* SB_TP_* to SIGSTOP at, and at which passage */
    int stop_hit;
    int pace_ms;    /* pause between sends: a slow sender (chooses timing, not sync) */
    int stop_first; /* receiver: SIGSTOP itself right after joining */
    int wfd;        /* receiver: pipe to say it has joined */
    int loans;      /* send every other message through a zero-copy loan */
};

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Sends job->count numbered messages. 0 done, 3 destination gone, else an error. */
static int sender_main(void *arg)
{
    const struct job *j = arg;
    tp_point = j->stop_point;
    tp_left = j->stop_hit;
    shmbus_bus *b;
    shmbus_client *c;
    int r = shmbus_bus_open(j->bus, NULL, 0, &b);
    if (r < 0) {
        child_err("sender %d: open: %d", (int)j->id, r, 0);
        return 10;
    }
    r = shmbus_join(b, j->id, NULL, &c);
    if (r < 0) {
        child_err("sender %d: join: %d", (int)j->id, r, 0);
        return 11;
    }
    uint8_t bufs[8][MSG_SIZE];
    struct shmbus_iov iov[8];
    uint32_t n = 0;
    while (n < j->count) {
        uint32_t k = j->batch > 1 ? j->batch : 1;
        if (k > j->count - n)
            k = j->count - n;
        for (uint32_t i = 0; i < k; i++) {
            iov[i].data = bufs[i];
            iov[i].len = make_msg(bufs[i], j->id, n + 1 + i);
        }
        atomic_store(&sh->attempted[j->id], n + k);
        if (k == 1 && j->loans && (n & 1)) {
            struct shmbus_loan l;
            r = shmbus_loan(c, j->dst, iov[0].len, SHMBUS_PRIO(j->prio), j->timeout_ms, &l);
            if (r == 0) {
                memcpy(l.data, bufs[0], iov[0].len);
                r = shmbus_loan_commit(c, &l, iov[0].len);
            }
            if (r == 0)
                r = 1;
        } else if (k == 1) {
            r = shmbus_send(c, j->dst, bufs[0], iov[0].len, SHMBUS_PRIO(j->prio), j->timeout_ms);
            if (r == 0)
                r = 1;
        } else {
            r = shmbus_send_batch(c, j->dst, iov, k, SHMBUS_PRIO(j->prio), j->timeout_ms);
        }
        if (r == -ECONNRESET || r == -EHOSTUNREACH) {
            shmbus_leave(c);
            shmbus_bus_close(b);
            return 3;
        }
        if (r <= 0) {
            child_err("sender %d: send of %d: %d", (int)j->id, (int)n + 1, r);
            return 12;
        }
        n += (uint32_t)r;
        atomic_store(&sh->acked[j->id], n);
        if (j->pace_ms)
            pause_ms(j->pace_ms);
    }
    uint64_t now = th_now_ns(), fin = atomic_load(&sh->fin_ns);
    while (now > fin && !atomic_compare_exchange_weak(&sh->fin_ns, &fin, now))
        ;
    shmbus_leave(c);
    shmbus_bus_close(b);
    return 0;
}

/* Receives and checks until a message from CTL_ID. 0 if everything arrived whole, in order. */
static int receiver_main(void *arg)
{
    const struct job *j = arg;
    shmbus_bus *b;
    shmbus_client *c;
    if (shmbus_bus_open(j->bus, NULL, 0, &b) < 0 || shmbus_join(b, j->id, NULL, &c) < 0) {
        child_err("receiver: cannot join", 0, 0, 0);
        return 10;
    }
    if (write(j->wfd, "r", 1) != 1)
        return 13;
    if (j->stop_first)
        raise(SIGSTOP);
    uint8_t buf[MSG_SIZE];
    uint64_t last = 0;
    for (;;) {
        struct shmbus_msg h;
        int r = shmbus_recv(c, &h, buf, sizeof(buf), 5000);
        if (r < 0) {
            child_err("receiver: recv: %d", r, 0, 0);
            return 11;
        }
        uint64_t now = th_now_ns();
        if (h.src == CTL_ID)
            break;
        if (last != 0 && now - last > atomic_load(&sh->max_gap_ns))
            atomic_store(&sh->max_gap_ns, now - last);
        last = now;
        struct pl p;
        if (h.src < 1 || h.src >= 8 || check_msg(buf, r, h.src, &p) != 0) {
            child_err("receiver: torn or forged message from %d (len %d)", (int)h.src, r, 0);
            return 12;
        }
        uint32_t want = atomic_load(&sh->got[h.src]) + 1;
        if (p.n != want) {
            child_err("receiver: from %d got #%d, expected #%d", (int)h.src, (int)p.n, (int)want);
            return 14;
        }
        atomic_store(&sh->got[h.src], p.n);
    }
    struct shmbus_client_info info[MAXC];
    int n = shmbus_list(b, info, MAXC);
    for (int i = 0; i < n && i < (int)MAXC; i++)
        if (info[i].id == j->id)
            atomic_store(&sh->dropped, info[i].counters.dropped);
    shmbus_leave(c);
    shmbus_bus_close(b);
    return 0;
}

/* Joins and leaves as CHURN_ID, lists and reaps, over and over, until told to stop. */
static int churn_main(void *arg)
{
    const struct job *j = arg;
    shmbus_bus *b;
    if (shmbus_bus_open(j->bus, NULL, 0, &b) < 0)
        return 10;
    struct shmbus_client_info info[MAXC];
    while (!atomic_load(&sh->stop)) {
        shmbus_client *c;
        if (shmbus_join(b, j->id, "churn", &c) == 0) {
            shmbus_list(b, info, MAXC);
            shmbus_leave(c);
        }
        shmbus_reap(b);
    }
    shmbus_bus_close(b);
    return 0;
}

/* Fork a receiver and wait until it has joined. */
static pid_t fork_receiver(struct job *j)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    j->wfd = fds[1];
    pid_t pid = th_fork(receiver_main, j);
    close(fds[1]);
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    char ch;
    assert_int_equal(poll(&pfd, 1, 5000), 1);
    assert_int_equal(read(fds[0], &ch, 1), 1);
    close(fds[0]);
    return pid;
}

/* ---- checks in the parent ---------------------------------------------------------------- */

static shmbus_bus *make_bus(const char *name)
{
    struct shmbus_bus_opts o = {.max_clients = MAXC, .slots = SLOTS, .msg_size = MSG_SIZE};
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &b), 0);
    return b;
}

/* After a reap, no client is listed dead; returns how many are listed. */
static int reap_and_count(shmbus_bus *b)
{
    shmbus_reap(b);
    struct shmbus_client_info info[MAXC];
    int n = shmbus_list(b, info, MAXC);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
        if (info[i].state == SHMBUS_CLIENT_DEAD)
            fail_msg("client %u (pid %d) still listed dead after shmbus_reap", (unsigned)info[i].id,
                     (int)info[i].pid);
    }
    return n;
}

static enum shmbus_client_state state_of(shmbus_bus *b, uint32_t id)
{
    struct shmbus_client_info info[MAXC];
    int n = shmbus_list(b, info, MAXC);
    for (int i = 0; i < n && i < (int)MAXC; i++)
        if (info[i].id == id)
            return info[i].state;
    return 0;
}

/* The parent as receiver: take one message, check it whole and next in its sender's order. */
static int take_checked(shmbus_client *c, int timeout_ms, uint32_t *src, uint32_t *n)
{
    uint8_t buf[MSG_SIZE];
    struct shmbus_msg h;
    int r = shmbus_recv(c, &h, buf, sizeof(buf), timeout_ms);
    if (r < 0)
        return r;
    struct pl p;
    if (h.src >= 8)
        fail_msg("message from id %u", (unsigned)h.src);
    if (check_msg(buf, r, h.src, &p) != 0)
        fail_msg("torn message from %u", (unsigned)h.src);
    uint32_t want = atomic_load(&sh->got[h.src]) + 1;
    if (p.n != want)
        fail_msg("from %u got #%u, expected #%u", (unsigned)h.src, p.n, want);
    atomic_store(&sh->got[h.src], p.n);
    *src = h.src;
    *n = p.n;
    return r;
}

static void note_recovery(uint64_t ns)
{
    if (ns > max_recovery_ns)
        max_recovery_ns = ns;
    if (ns > RECOVER_NS)
        fail_msg("survivors waited %.3f s after the kill (limit 1 s)", (double)ns / 1e9);
}

/* ---- deterministic kills at each test point ---------------------------------------------- */

/*
 * A sender is killed between reserving a slot and committing it, with another sender's
 * messages queued behind the dead slot; `pace_ms` makes the other sender slow, so the
 * receiver keeps being woken while it is blocked (it must still skip within 1 s).
 */
static void kill_reserved(int point, uint32_t batch, int pace_ms, unsigned prio)
{
    reset_shared();
    const char *name = th_name(point == SB_TP_RESERVED ? "kres" : "kbatch");
    /* 128 units of 64 bytes: room for everything sent before the kill (messages of up to
     * MSG_SIZE take up to 3 units each). */
    struct shmbus_bus_opts o = {
        .max_clients = MAXC, .slots = 16, .msg_size = MSG_SIZE, .ring_bytes = 128 * 64};
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &b), 0);
    shmbus_client *me;
    assert_int_equal(shmbus_join(b, RECV_ID, NULL, &me), 0);

    struct job victim = {.bus = name,
                         .id = 2,
                         .dst = RECV_ID,
                         .count = 8,
                         .batch = batch,
                         .prio = prio,
                         .timeout_ms = 5000,
                         .stop_point = point,
                         .stop_hit = 2};
    pid_t v = th_fork(sender_main, &victim);
    assert_int_equal(wait_stopped(v, 5000), 0);
    /* Room for all of them behind the victim's claim: no receive needed. */
    struct job other = {.bus = name,
                        .id = 3,
                        .dst = RECV_ID,
                        .count = pace_ms ? 14 : 6,
                        .timeout_ms = 5000,
                        .pace_ms = pace_ms};
    pid_t o2 = th_fork(sender_main, &other);
    if (pace_ms == 0)
        assert_int_equal(th_wait(o2, 5000), 0); /* all committed behind the dead slot */

    kill_and_wait(v);
    uint64_t killed = th_now_ns();
    uint32_t victim_acked = atomic_load(&sh->acked[2]);
    uint32_t victim_attempted = atomic_load(&sh->attempted[2]);
    uint64_t first_other = 0;
    while (atomic_load(&sh->got[3]) < other.count) {
        uint32_t src, n;
        int r = take_checked(me, 3000, &src, &n);
        if (r < 0)
            fail_msg("recv after the kill: %s (from 2: %u, from 3: %u)", shmbus_strerror(r),
                     atomic_load(&sh->got[2]), atomic_load(&sh->got[3]));
        if (src == 3 && first_other == 0)
            first_other = th_now_ns();
    }
    if (pace_ms != 0)
        assert_int_equal(th_wait(o2, 10000), 0);
    note_recovery(first_other - killed);
    uint32_t g = atomic_load(&sh->got[2]);
    assert_true(g >= victim_acked && g <= victim_attempted);
    assert_true(g < victim_attempted); /* its reserved message was skipped, not delivered */
    uint32_t src, n;
    assert_int_equal(take_checked(me, 0, &src, &n), -EAGAIN);
    /* A prio > 0 batch killed after counting itself in pending_hi (the hint that makes
     * every receive scan the ring for priorities): with everything taken, the receive
     * above repaired it (docs/mailbox-v2.md, 6). */
    assert_int_equal(atomic_load(&sb__mbox(b, RECV_ID)->pending_hi), 0);
    assert_int_equal(reap_and_count(b), 1); /* only the receiver is left */
    shmbus_leave(me);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

static void test_kill_after_reserve(void **state)
{
    (void)state;
    kill_reserved(SB_TP_RESERVED, 1, 0, 0);
}

static void test_kill_mid_batch(void **state)
{
    (void)state;
    kill_reserved(SB_TP_BATCH_PART, 4, 0, 0);
}

/* The same at priority 3: the dead batch had added 4 to pending_hi before it died. */
static void test_kill_mid_batch_prio(void **state)
{
    (void)state;
    kill_reserved(SB_TP_BATCH_PART, 4, 0, 3);
}

/* The receiver is woken by a slow live sender every 100 ms while the dead slot blocks it. */
static void test_kill_after_reserve_slow_peer(void **state)
{
    (void)state;
    kill_reserved(SB_TP_RESERVED, 1, 100, 0);
}

static int joiner_main(void *arg)
{
    const struct job *j = arg;
    tp_point = j->stop_point;
    tp_left = j->stop_hit;
    shmbus_bus *b;
    shmbus_client *c;
    if (shmbus_bus_open(j->bus, NULL, 0, &b) < 0 || shmbus_join(b, j->id, "joiner", &c) < 0)
        return 10;
    shmbus_leave(c); /* SB_TP_LEAVING stops here */
    shmbus_bus_close(b);
    return 0;
}

/* Killed while joining (JOINING) or while leaving (CLEANING): the id is reclaimed. */
static void kill_in_registry(int point)
{
    reset_shared();
    const char *name = th_name(point == SB_TP_JOINING ? "kjoin" : "kleave");
    shmbus_bus *b = make_bus(name);
    struct job j = {.bus = name, .id = 3, .stop_point = point, .stop_hit = 1};
    pid_t pid = th_fork(joiner_main, &j);
    assert_int_equal(wait_stopped(pid, 5000), 0);
    shmbus_client *c;
    assert_int_equal(shmbus_join(b, 3, NULL, &c), -EEXIST); /* stopped is not dead */
    assert_int_equal(shmbus_reap(b), 0);
    kill_and_wait(pid);
    assert_int_equal(state_of(b, 3), SHMBUS_CLIENT_DEAD);
    assert_int_equal(shmbus_lookup(b, "joiner"), -EHOSTUNREACH);
    assert_int_equal(reap_and_count(b), 0);
    assert_int_equal(shmbus_join(b, 3, "joiner", &c), 0);
    assert_int_equal(shmbus_lookup(b, "joiner"), 3);
    shmbus_leave(c);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

static void test_kill_joining(void **state)
{
    (void)state;
    kill_in_registry(SB_TP_JOINING);
}

static void test_kill_leaving(void **state)
{
    (void)state;
    kill_in_registry(SB_TP_LEAVING);
}

static int reaper_main(void *arg)
{
    const struct job *j = arg;
    tp_point = SB_TP_CLEANING;
    tp_left = 1;
    shmbus_bus *b;
    if (shmbus_bus_open(j->bus, NULL, 0, &b) < 0)
        return 10;
    shmbus_reap(b);
    shmbus_bus_close(b);
    return 0;
}

/*
 * A cleaner dies half-way through cleaning a dead sender (it has skipped the dead sender's
 * reserved slot, not yet drained its mailbox): the next reap finishes the job, the receiver
 * gets what was committed and the id can be joined again.
 */
static void test_kill_cleaner(void **state)
{
    (void)state;
    reset_shared();
    const char *name = th_name("kclean");
    shmbus_bus *b = make_bus(name);
    shmbus_client *me;
    assert_int_equal(shmbus_join(b, RECV_ID, NULL, &me), 0);
    struct job victim = {.bus = name,
                         .id = 2,
                         .dst = RECV_ID,
                         .count = 4,
                         .timeout_ms = 5000,
                         .stop_point = SB_TP_RESERVED,
                         .stop_hit = 3};
    pid_t v = th_fork(sender_main, &victim);
    assert_int_equal(wait_stopped(v, 5000), 0);
    kill_and_wait(v);

    struct job rj = {.bus = name};
    pid_t r = th_fork(reaper_main, &rj);
    assert_int_equal(wait_stopped(r, 5000), 0);
    kill_and_wait(r);
    assert_int_equal(state_of(b, 2), SHMBUS_CLIENT_DEAD); /* CLEANING, cleaner dead */
    assert_int_equal(reap_and_count(b), 1);
    uint32_t src, n;
    assert_true(take_checked(me, 1000, &src, &n) >= 0);
    assert_true(take_checked(me, 1000, &src, &n) >= 0);
    assert_true(src == 2 && n == 2);
    assert_int_equal(take_checked(me, 0, &src, &n), -EAGAIN); /* #3 skipped, never torn */
    shmbus_client *c;
    assert_int_equal(shmbus_join(b, 2, NULL, &c), 0);
    shmbus_leave(c);
    shmbus_leave(me);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

/*
 * Found by the spin model (tests/model/mailbox.pml): a dead writer's reserved slot is cleaned
 * up at a moment when a live sender still holds a stale intent over the same position (it
 * wrote its intent, then lost the CAS on tail to the writer that died). The cleaner cannot
 * skip the slot then (a live claimant), clears the dead writer's intent and frees its entry;
 * the live sender moves on. The slot must still be skipped: nobody live claims it.
 * The stale intent is written by hand into our own registry entry, exactly as reserve()
 * leaves it after a lost CAS.
 */
static void test_reap_during_stale_intent(void **state)
{
    (void)state;
    reset_shared();
    const char *name = th_name("kstale");
    shmbus_bus *b = make_bus(name);
    shmbus_client *me, *loser;
    assert_int_equal(shmbus_join(b, RECV_ID, NULL, &me), 0);
    assert_int_equal(shmbus_join(b, 3, NULL, &loser), 0);
    struct job victim = {.bus = name,
                         .id = 2,
                         .dst = RECV_ID,
                         .count = 2,
                         .timeout_ms = 5000,
                         .stop_point = SB_TP_RESERVED,
                         .stop_hit = 2};
    pid_t v = th_fork(sender_main, &victim);
    assert_int_equal(wait_stopped(v, 5000), 0); /* #1 committed at 0, #2 reserved at 1 */
    struct sb_intent *in = &loser->e->intent[0];
    atomic_store(&in->mbox, RECV_ID);
    atomic_store(&in->pos, 1);
    atomic_store(&in->n, 1);
    kill_and_wait(v);
    assert_int_equal(shmbus_reap(b), 1); /* cleans client 2 while our intent covers 1 */
    atomic_store(&in->n, 0);             /* the loser moves on and sends */
    assert_int_equal(shmbus_send(loser, RECV_ID, "late", 4, 0, 1000), 0);

    uint32_t src, n;
    assert_true(take_checked(me, 1000, &src, &n) >= 0);
    assert_true(src == 2 && n == 1);
    uint64_t t0 = th_now_ns();
    char buf[MSG_SIZE];
    struct shmbus_msg h;
    int r = shmbus_recv(me, &h, buf, sizeof(buf), 3000);
    if (r < 0)
        fail_msg("receiver stuck behind the orphaned slot: %s", shmbus_strerror(r));
    assert_int_equal(h.src, 3);
    note_recovery(th_now_ns() - t0);
    shmbus_leave(loser);
    shmbus_leave(me);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

/* ---- SIGSTOP: slow is not dead ------------------------------------------------------------ */

/* The bus's periodic reap has run: its timestamp in the header moved (blocked calls run it
 * at most once a second, sb__maybe_reap()). Each run could wrongly declare a stopped
 * process dead, so the SIGSTOP tests wait for REAPS of them, not for a fixed time. */
#define REAPS 2

static uint64_t reap_stamp(shmbus_bus *b)
{
    return atomic_load_explicit(&b->hdr->reap_ns, memory_order_relaxed);
}

/*
 * A sender stopped between reserve and commit: the receiver waits behind it (its slot is not
 * skipped) through several wait slices and REAPS periodic reaps, it stays listed LIVE,
 * reaping leaves it alone; after SIGCONT everything arrives, in order.
 */
static void test_sigstop_sender(void **state)
{
    (void)state;
    reset_shared();
    const char *name = th_name("stops");
    shmbus_bus *b = make_bus(name);
    shmbus_client *me;
    assert_int_equal(shmbus_join(b, RECV_ID, NULL, &me), 0);
    struct job slow = {.bus = name,
                       .id = 2,
                       .dst = RECV_ID,
                       .count = 3,
                       .timeout_ms = 10000,
                       .stop_point = SB_TP_RESERVED,
                       .stop_hit = 2};
    pid_t s = th_fork(sender_main, &slow);
    assert_int_equal(wait_stopped(s, 5000), 0);
    struct job other = {.bus = name, .id = 3, .dst = RECV_ID, .count = 3, .timeout_ms = 10000};
    pid_t o2 = th_fork(sender_main, &other);
    assert_int_equal(th_wait(o2, 5000), 0);

    uint32_t src, n;
    assert_true(take_checked(me, 1000, &src, &n) > 0);
    assert_true(src == 2 && n == 1);
    /* Blocked receives (each spans a wait slice) until the periodic reap has run REAPS
     * times in them: each time the stopped sender's slot must stay put. */
    uint64_t deadline = th_now_ns() + 10000000000ull;
    uint64_t stamp = reap_stamp(b);
    for (int reaps = 0; reaps < REAPS;) {
        assert_true(th_now_ns() < deadline);
        assert_int_equal(take_checked(me, 300, &src, &n), -ETIMEDOUT);
        assert_int_equal(state_of(b, 2), SHMBUS_CLIENT_LIVE);
        if (reap_stamp(b) != stamp) {
            stamp = reap_stamp(b);
            reaps++;
        }
    }
    assert_int_equal(shmbus_reap(b), 0);
    assert_int_equal(state_of(b, 2), SHMBUS_CLIENT_LIVE);

    assert_int_equal(kill(s, SIGCONT), 0);
    assert_int_equal(th_wait(s, 5000), 0);
    for (int i = 0; i < 5; i++)
        assert_true(take_checked(me, 1000, &src, &n) > 0);
    assert_int_equal(atomic_load(&sh->got[2]), 3);
    assert_int_equal(atomic_load(&sh->got[3]), 3);
    assert_int_equal(take_checked(me, 0, &src, &n), -EAGAIN);
    assert_int_equal(reap_and_count(b), 1);
    shmbus_leave(me);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

/*
 * A receiver stopped while a sender fills its mailbox and waits for room: through REAPS
 * periodic reaps (run by the blocked sender) the sender does not get -ECONNRESET, the
 * receiver stays LIVE with its mailbox intact, and after SIGCONT it gets all the messages
 * in order.
 */
static void test_sigstop_receiver(void **state)
{
    (void)state;
    reset_shared();
    const char *name = th_name("stopr");
    shmbus_bus *b = make_bus(name);
    struct job rj = {.bus = name, .id = RECV_ID, .stop_first = 1};
    pid_t r = fork_receiver(&rj);
    assert_int_equal(wait_stopped(r, 5000), 0);
    struct job sj = {.bus = name, .id = 2, .dst = RECV_ID, .count = 3 * SLOTS, .timeout_ms = -1};
    pid_t s = th_fork(sender_main, &sj);

    /* Poll for the state: the mailbox full (the sender counted a wait for room), then REAPS
     * runs of the periodic reap by the blocked sender, the receiver LIVE at every look. The
     * ring holds as many of the sender's messages as their lengths allow (bytes, not slots):
     * what was sent before the wait is what the mailbox holds. */
    uint64_t deadline = th_now_ns() + 10000000000ull;
    struct shmbus_client_info info[MAXC];
    for (;;) {
        assert_true(th_now_ns() < deadline);
        int n = shmbus_list(b, info, MAXC);
        if (n == 2 && info[1].id == 2 && info[1].counters.full_waits > 0)
            break;
        pause_ms(1); /* polling a state */
    }
    uint32_t held = atomic_load(&sh->acked[2]);
    assert_true(held >= 2 && held < 3 * SLOTS);
    uint64_t stamp = reap_stamp(b);
    for (int reaps = 0; reaps < REAPS;) {
        assert_true(th_now_ns() < deadline);
        assert_int_equal(state_of(b, RECV_ID), SHMBUS_CLIENT_LIVE);
        if (reap_stamp(b) != stamp) {
            stamp = reap_stamp(b);
            reaps++;
            assert_int_equal(shmbus_reap(b), 0);
        }
        pause_ms(10); /* polling a state */
    }
    assert_int_equal(state_of(b, RECV_ID), SHMBUS_CLIENT_LIVE);
    assert_int_equal(atomic_load(&sh->acked[2]), held); /* full, the sender waits */
    assert_int_equal(shmbus_list(b, info, MAXC), 2);
    assert_int_equal(info[0].depth, held);

    assert_int_equal(kill(r, SIGCONT), 0);
    assert_int_equal(th_wait(s, 10000), 0);
    shmbus_client *ctl;
    assert_int_equal(shmbus_join(b, CTL_ID, NULL, &ctl), 0);
    assert_int_equal(shmbus_send(ctl, RECV_ID, "", 0, 0, 5000), 0);
    assert_int_equal(th_wait(r, 10000), 0);
    if (atomic_load(&sh->err_set))
        fail_msg("%s", sh->err);
    assert_int_equal(atomic_load(&sh->got[2]), 3 * SLOTS);
    shmbus_leave(ctl);
    assert_int_equal(reap_and_count(b), 0);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

/* ---- randomized kills -------------------------------------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

struct tally {
    int kills[3];     /* sender, receiver, churn: killed while still running */
    int missed;       /* the victim had already finished */
    int skipped;      /* rounds where the receiver skipped a dead writer's slot(s) */
    int in_send;      /* rounds where the killed sender had a message in flight */
    int at_point;     /* senders killed at a test point (between reserve and commit) */
    uint64_t busy_ns; /* how long the senders' work lasts: kills are spread over it */
    uint64_t max_gap_ns, max_sender_exit_ns;
};

enum { V_SENDER, V_RECEIVER, V_CHURN };

/* The latest moment a kill is aimed at, whatever busy_ns says: 2 s is many times the
 * senders' work even under a sanitizer, and bounds a round's length. */
#define MAX_SPAN_US 2000000u

static void kill_round(int round, struct tally *t)
{
    reset_shared();
    char name[64];
    snprintf(name, sizeof(name), "t-kill-%d-%d", (int)getpid(), round);
    shmbus_bus *b = make_bus(name);
    uint32_t pick = rnd(100);
    int kind = pick < 60 ? V_SENDER : pick < 80 ? V_RECEIVER : V_CHURN;
    int vs = (int)rnd(NSEND);
    /* One killed sender in three stops itself at a test point first: at a random message,
     * between reserving its slot and committing it (or half-way through a batch), a window
     * too narrow for a random signal to hit often. The rest die at a random moment. */
    bool at_point = kind == V_SENDER && rnd(3) == 0;

    /* Taken before the first fork: a sender can finish before the parent runs again, and
     * busy_ns below must never come out negative (it would wrap to a delay of hours). */
    uint64_t started = th_now_ns();
    struct job rj = {.bus = name, .id = RECV_ID};
    pid_t recv_pid = fork_receiver(&rj);
    struct job sj[NSEND];
    pid_t send_pid[NSEND];
    for (int i = 0; i < NSEND; i++) {
        /* Sender 2 sends at priority 0, every other message through a loan; 3 at priority 5
         * (it overtakes), 4 in batches. */
        sj[i] = (struct job){.bus = name,
                             .id = 2 + (uint32_t)i,
                             .dst = RECV_ID,
                             .count = 300,
                             .batch = i == 2 ? 3 : 1,
                             .prio = i == 1 ? 5 : 0,
                             .timeout_ms = 5000,
                             .loans = i == 0};
        if (at_point && i == vs) {
            /* A batch may come back short when the mailbox is nearly full: a third of
             * the batches are sure to be whole ones (the batch point needs two or more). */
            bool batch = sj[i].batch > 1;
            sj[i].stop_point = batch ? SB_TP_BATCH_PART : SB_TP_RESERVED;
            sj[i].stop_hit = 1 + (int)rnd(batch ? sj[i].count / sj[i].batch / 3 : sj[i].count);
        }
        send_pid[i] = th_fork(sender_main, &sj[i]);
    }
    struct job cj = {.bus = name, .id = CHURN_ID};
    pid_t churn_pid = th_fork(churn_main, &cj);
    pid_t victim = kind == V_SENDER ? send_pid[vs] : kind == V_RECEIVER ? recv_pid : churn_pid;
    /* The moment: anywhere from before the victim has joined to a little after the senders
     * are usually done (busy_ns is measured in the rounds without a dead receiver). */
    uint64_t span_us = t->busy_ns / 1000 * 5 / 4 + 100;
    if (span_us > MAX_SPAN_US)
        span_us = MAX_SPAN_US;
    uint64_t delay_ns = (uint64_t)rnd((uint32_t)span_us) * 1000;
    struct timespec ts = {(time_t)(delay_ns / 1000000000u), (long)(delay_ns % 1000000000u)};
    if (at_point) {
        if (wait_stopped(victim, 5000) != 0)
            fail_msg("round %d: sender %d did not stop at its test point", round, 2 + vs);
        t->at_point++;
    } else {
        nanosleep(&ts, NULL);
    }
    kill(victim, SIGKILL);
    uint64_t killed = th_now_ns();
    int vst = th_wait(victim, 5000);
    if (vst == 128 + SIGKILL)
        t->kills[kind]++;
    else if (vst == 0)
        t->missed++;
    else
        fail_msg("round %d: victim exit %d: %s", round, vst, sh->err);

    for (int i = 0; i < NSEND; i++) {
        if (kind == V_SENDER && i == vs)
            continue;
        int st = th_wait(send_pid[i], 10000);
        if (st != 0 && !(kind == V_RECEIVER && st == 3))
            fail_msg("round %d (victim %d): sender %d exit %d: %s", round, kind, 2 + i, st,
                     sh->err);
    }
    if (kind == V_RECEIVER && vst == 128 + SIGKILL) {
        uint64_t ns = th_now_ns() - killed;
        if (ns > t->max_sender_exit_ns)
            t->max_sender_exit_ns = ns;
        if (ns > RECOVER_NS)
            fail_msg("round %d: senders took %.3f s to notice the dead receiver", round,
                     (double)ns / 1e9);
    }
    if (kind != V_RECEIVER && !at_point) {
        uint64_t fin = atomic_load(&sh->fin_ns);
        uint64_t busy = fin > started ? fin - started : 0;
        t->busy_ns = t->busy_ns == 0 ? busy : (t->busy_ns * 7 + busy) / 8;
    }
    atomic_store(&sh->stop, 1);
    if (kind != V_CHURN)
        assert_int_equal(th_wait(churn_pid, 5000), 0);

    if (kind != V_RECEIVER) {
        shmbus_client *ctl;
        assert_int_equal(shmbus_join(b, CTL_ID, NULL, &ctl), 0);
        assert_int_equal(shmbus_send(ctl, RECV_ID, "", 0, 0, 5000), 0);
        int st = th_wait(recv_pid, 10000);
        if (st != 0)
            fail_msg("round %d (victim %d): receiver exit %d: %s", round, kind, st, sh->err);
        shmbus_leave(ctl);
        for (int i = 0; i < NSEND; i++) {
            uint32_t id = 2 + (uint32_t)i, g = atomic_load(&sh->got[id]);
            if (kind == V_SENDER && i == vs) {
                uint32_t lo = atomic_load(&sh->acked[id]), hi = atomic_load(&sh->attempted[id]);
                if (g < lo || g > hi)
                    fail_msg("round %d: killed sender %u: received %u, acked %u, tried %u", round,
                             id, g, lo, hi);
                t->in_send += g < hi;
            } else if (g != sj[i].count) {
                fail_msg("round %d: sender %u: received %u of %u", round, id, g, sj[i].count);
            }
        }
        t->skipped += atomic_load(&sh->dropped) > 0;
        uint64_t gap = atomic_load(&sh->max_gap_ns);
        if (gap > t->max_gap_ns)
            t->max_gap_ns = gap;
        if (gap > RECOVER_NS)
            fail_msg("round %d: receiver waited %.3f s between messages", round, (double)gap / 1e9);
    }
    int left = reap_and_count(b);
    if (left != 0)
        fail_msg("round %d: %d clients still listed after everyone left or was reaped", round,
                 left);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

static void test_kill_random(void **state)
{
    (void)state;
    const char *e = getenv("SHMBUS_KILL_ROUNDS");
    int rounds = e ? atoi(e) : 500;
    e = getenv("SHMBUS_KILL_SEED");
    uint64_t seed = e ? strtoull(e, NULL, 0) : (th_now_ns() ^ (uint64_t)getpid() << 20);
    rng_state = seed | 1;
    printf("# kill test: %d rounds, seed %llu\n", rounds, (unsigned long long)seed);
    struct tally t = {0};
    uint64_t t0 = th_now_ns();
    for (int i = 0; i < rounds; i++) {
        kill_round(i, &t);
        if (rounds >= 1000 && (i + 1) % 1000 == 0)
            printf("# %d rounds, %.1f s\n", i + 1, (double)(th_now_ns() - t0) / 1e9);
    }
    printf("# kill test: %d rounds in %.1f s; killed %d senders, %d receivers, %d churners, "
           "%d victims already done (%d senders killed at a test point); %d killed senders had a "
           "message in flight, %d rounds "
           "skipped a dead writer's slot; longest receiver wait %.1f ms, longest time for "
           "senders to see a dead receiver %.1f ms\n",
           rounds, (double)(th_now_ns() - t0) / 1e9, t.kills[V_SENDER], t.kills[V_RECEIVER],
           t.kills[V_CHURN], t.missed, t.at_point, t.in_send, t.skipped, (double)t.max_gap_ns / 1e6,
           (double)t.max_sender_exit_ns / 1e6);
    /* The kills must have landed: a run where every kill missed (the victims all done
     * first) proves nothing. Each kind is picked in 20-60% of the rounds; the bounds are a
     * fraction of what is expected, so only a broken test fails them. */
    if (rounds >= 100) {
        int landed = t.kills[V_SENDER] + t.kills[V_RECEIVER] + t.kills[V_CHURN];
        assert_true(landed >= rounds / 2);
        assert_true(t.kills[V_SENDER] >= rounds / 20);
        assert_true(t.kills[V_RECEIVER] >= rounds / 50);
        assert_true(t.kills[V_CHURN] >= rounds / 50);
        assert_true(t.at_point >= rounds / 50);
        assert_true(t.in_send >= rounds / 50);
        assert_true(t.skipped >= rounds / 50);
    }
}

static int setup(void **state)
{
    (void)state;
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return sh == MAP_FAILED ? -1 : 0;
}

static int teardown(void **state)
{
    printf("# deterministic kills: longest recovery %.1f ms\n", (double)max_recovery_ns / 1e6);
    return th_cleanup(state);
}

/* ---- a process stopped while it holds the journal's lock ---------------------------------- */

/* A durable bus compacted every 4 KiB (so a few dozen messages make a compaction), its
 * journal in the runner's temporary directory. */
static char jdir_stop[512];

static shmbus_bus *open_durable_stop(const char *name)
{
    const char *t = getenv("TEST_TMPDIR");
    snprintf(jdir_stop, sizeof(jdir_stop), "%s/jstop-%d", t && t[0] == '/' ? t : "/tmp",
             (int)getpid());
    struct shmbus_bus_opts o = {.max_clients = MAXC, .msg_size = 64, .ring_bytes = 64 * 1024};
    struct shmbus_durable d = {.dir = jdir_stop, .sync = SHMBUS_SYNC_NONE, .compact_bytes = 4096};
    shmbus_bus *b = NULL;
    return shmbus_bus_open_durable(name, &o, &d, SHMBUS_OPEN_CREATE, &b) < 0 ? NULL : b;
}

struct jstop {
    const char *name;
    int point, hit; /* stop at the hit-th passage of SB_TP_* point */
    int count;      /* messages m0.. to send to RECV_ID, then exit 0 */
};

static int jstop_sender(void *arg)
{
    const struct jstop *js = arg;
    shmbus_bus *b;
    shmbus_client *c;
    if (shmbus_bus_open(js->name, NULL, 0, &b) < 0 || shmbus_join(b, 2, NULL, &c) < 0)
        return 10;
    tp_point = js->point;
    tp_left = js->hit;
    for (int i = 0; i < js->count; i++) {
        char m[16];
        int n = snprintf(m, sizeof(m), "m%d", i);
        if (shmbus_send(c, RECV_ID, m, (size_t)n, 0, -1) != 0)
            return 11;
    }
    shmbus_leave(c);
    shmbus_bus_close(b);
    return 0;
}

/* Receive m<first>.. from client 2 until none is waiting: how many, checked in order. */
static int jstop_drain(shmbus_client *me, int first)
{
    int k = 0;
    char buf[64];
    struct shmbus_msg m;
    int r;
    while ((r = shmbus_recv(me, &m, buf, sizeof(buf) - 1, 0)) >= 0) {
        buf[r] = '\0';
        char want[16];
        snprintf(want, sizeof(want), "m%d", first + k);
        assert_string_equal(buf, want);
        assert_int_equal(m.src, 2);
        k++;
    }
    assert_int_equal(r, -EAGAIN);
    return k;
}

/* Both tests below: a durable bus with RECV_ID (*me) and 3 (*other) joined here, and a
 * sender child (id 2) stopped at its hit-th passage of test point `point`. */
static pid_t jstop_start(const char *name, int point, int hit, int count, shmbus_bus **b,
                         shmbus_client **me, shmbus_client **other, struct jstop *js)
{
    *b = open_durable_stop(name);
    assert_non_null(*b);
    assert_int_equal(shmbus_join(*b, RECV_ID, NULL, me), 0);
    assert_int_equal(shmbus_join(*b, 3, NULL, other), 0);
    *js = (struct jstop){.name = name, .point = point, .hit = hit, .count = count};
    pid_t s = th_fork(jstop_sender, js);
    assert_int_equal(wait_stopped(s, 10000), 0);
    return s;
}

static void jstop_end(const char *name, shmbus_bus *b, shmbus_client *me, shmbus_client *other)
{
    shmbus_leave(other);
    shmbus_leave(me);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    th_rm_rf(jdir_stop);
}

/* A compactor stopped while it holds the journal's exclusive lock holds up every other
 * write to the journal, but no call past its timeout (at least the journal's 1 s grace):
 * a receive that must write its taken marker, a non-blocking send. Nothing is taken or
 * accepted by them; once the compactor goes on, everything arrives, once, in order. */
static void test_sigstop_compactor(void **state)
{
    (void)state;
    const char *name = th_name("jstopc");
    shmbus_bus *b;
    shmbus_client *me, *other;
    struct jstop js;
    pid_t s = jstop_start(name, SB_TP_COMPACT_EXCL, 1, 200, &b, &me, &other, &js);
    struct shmbus_journal_stats st0, st1;
    assert_int_equal(shmbus_journal_stats(b, &st0), 0);

    uint64_t t0 = th_now_ns();
    char buf[64];
    struct shmbus_msg m;
    assert_int_equal(shmbus_recv(me, &m, buf, sizeof(buf), 200), -ETIMEDOUT);
    uint64_t took = th_now_ns() - t0;
    assert_true(took >= 900000000ull && took < 3000000000ull); /* the grace, not forever */
    t0 = th_now_ns();
    assert_int_equal(shmbus_send(other, RECV_ID, "x", 1, SHMBUS_SEND_NONBLOCK, 0), -EAGAIN);
    assert_true(th_now_ns() - t0 < 3000000000ull);

    assert_int_equal(kill(s, SIGCONT), 0);
    assert_int_equal(th_wait(s, 20000), 0);
    assert_int_equal(shmbus_journal_stats(b, &st1), 0);
    assert_true(st1.compactions > st0.compactions);
    assert_int_equal(jstop_drain(me, 0), 200); /* and no "x" */
    jstop_end(name, b, me, other);
}

/* A writer stopped while it holds the shared lock holds off compaction: the write that
 * crossed the limit still returns, after at most the grace, with its message accepted,
 * and the compaction happens later, once the writer goes on. */
static void test_sigstop_journal_writer(void **state)
{
    (void)state;
    const char *name = th_name("jstopw");
    shmbus_bus *b;
    shmbus_client *me, *other;
    struct jstop js;
    pid_t s = jstop_start(name, SB_TP_JOURNAL_WRITE, 3, 10, &b, &me, &other, &js);
    assert_int_equal(jstop_drain(me, 0), 2); /* the two before the stop */
    struct shmbus_journal_stats st0, st1;
    struct shmbus_msg m_unused;
    char buf_unused[64];
    assert_int_equal(shmbus_journal_stats(b, &st0), 0);
    /* The journal passes its 4 KiB limit after about 60 of these, and every write past it
     * would compact: the first try gives up after the 1 s grace, and the handle does not
     * try again for 1 s (not at each of the next 140 writes, a second each). */
    uint64_t t0 = th_now_ns();
    for (int i = 0; i < 200; i++)
        assert_int_equal(shmbus_send(other, RECV_ID, "y", 1, 0, 1000), 0);
    assert_true(th_now_ns() - t0 < 10000000000ull);
    assert_int_equal(shmbus_journal_stats(b, &st1), 0);
    assert_int_equal(st1.compactions, st0.compactions); /* held off */
    assert_int_equal(kill(s, SIGCONT), 0);
    assert_int_equal(th_wait(s, 20000), 0);
    /* Everything, once, each sender in order: m2..m9 from 2 (the stopped writer's claim
     * came first), 200 of "y" from 3. */
    int next2 = 2, ys = 0, r;
    while ((r = shmbus_recv(me, &m_unused, buf_unused, sizeof(buf_unused) - 1, 0)) >= 0) {
        buf_unused[r] = '\0';
        if (m_unused.src == 3) {
            assert_string_equal(buf_unused, "y");
            ys++;
            continue;
        }
        char want[16];
        snprintf(want, sizeof(want), "m%d", next2++);
        assert_string_equal(buf_unused, want);
    }
    assert_int_equal(r, -EAGAIN);
    assert_int_equal(next2, 10);
    assert_int_equal(ys, 200);
    /* And compaction works again, once the failed one's retry pause is over. */
    uint64_t deadline = th_now_ns() + 10000000000ull;
    while (shmbus_journal_stats(b, &st1) == 0 && st1.compactions == st0.compactions) {
        assert_true(th_now_ns() < deadline);
        assert_int_equal(shmbus_send(other, RECV_ID, "z", 1, 0, 1000), 0);
        assert_int_equal(shmbus_recv(me, &m_unused, buf_unused, sizeof(buf_unused), 1000), 1);
        pause_ms(10); /* polling a state, with a deadline */
    }
    jstop_end(name, b, me, other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_after_reserve),
        cmocka_unit_test(test_kill_mid_batch),
        cmocka_unit_test(test_kill_mid_batch_prio),
        cmocka_unit_test(test_kill_after_reserve_slow_peer),
        cmocka_unit_test(test_kill_joining),
        cmocka_unit_test(test_kill_leaving),
        cmocka_unit_test(test_kill_cleaner),
        cmocka_unit_test(test_reap_during_stale_intent),
        cmocka_unit_test(test_sigstop_sender),
        cmocka_unit_test(test_sigstop_receiver),
        cmocka_unit_test(test_sigstop_compactor),
        cmocka_unit_test(test_sigstop_journal_writer),
        cmocka_unit_test(test_kill_random),
    };
    th_filter_from_env();
    return cmocka_run_group_tests(tests, setup, teardown);
}
