/*
 * The measuring harness: two (or nine) processes, pinned, lined up, timed.
 *
 * Design notes
 * - Every measurement forks fresh children from the parent: a ping and a pong for round trips,
 *   producers and one consumer for streams. The child re-runs code of this same binary (no
 *   exec), pins itself with sched_setaffinity() before it opens anything (so threads a library
 *   starts inherit the pin), and reports through a shared anonymous mapping.
 * - Ping and producers run on CPU A, pong and the consumer on CPU B (the first two CPUs this
 *   process may use). On a one-CPU machine nothing is pinned, and the report says so.
 * - Round trips are timed one by one with CLOCK_MONOTONIC; the clock is read once per round trip
 *   (the end of one is the start of the next), so every figure carries one clock read, the same
 *   for every transport; the report prints what a read costs.
 * - Open loop: the ping side sends at fixed intended times t0 + i * period and measures each
 *   round trip from its intended send time, not from when it actually got to send. A stall then
 *   shows up in every round trip it delayed instead of once (coordinated omission).
 * - Streams: producers send in chunks of STREAM_CHUNK messages until the duration is over.
 *   Before its last chunk a producer adds its final count to `expected` and then bumps `done`;
 *   the consumer stops once every producer is done and it has received `expected` messages.
 *   Because the count is published before the last chunk is sent, the consumer can never be
 *   left blocked waiting for a message that will not come.
 * - Alone (BENCH_CAP_ALONE, the journal floor): one child on CPU A, no receiver; one chunk
 *   before the clock starts (first touches), then chunks until the duration is over.
 * - A child that fails writes why into the shared area and exits 1; the parent then kills the
 *   others at once. A child still running at the deadline is killed. Either way teardown runs.
 */
#include "harness.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STREAM_CHUNK 256

struct bench_shared {
    _Atomic int ready;
    _Atomic int go;
    _Atomic int failed;
    _Atomic int done;
    _Atomic int finished; /* the consumer has received everything */
    _Atomic uint64_t expected;
    _Atomic uint64_t go_ns;
    char why[BENCH_WHY_LEN];
    struct bench_outcome out;
};

struct child_ctx {
    const struct bench_transport *t;
    struct bench_chan *ch;
    struct bench_shared *sh;
    const struct bench_params *p;
    size_t size;
    int nprod;
    int index;
    int open_loop;
};

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bench_sleep_us(unsigned us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int bench_fail(char *why, size_t whylen, const char *what)
{
    int e = errno ? errno : EIO;
    snprintf(why, whylen, "%s: %s", what, strerror(e));
    return -e;
}

void bench_why(char *dst, size_t n, const char *prefix, const char *msg)
{
    char tmp[BENCH_WHY_LEN];
    snprintf(tmp, sizeof(tmp), "%s", msg); /* msg may be dst itself */
    snprintf(dst, n, "%s%.*s", prefix, (int)(sizeof(tmp) - strlen(prefix) - 1), tmp);
}

/* Record the first failure only: it is the cause, later ones are consequences. */
static int child_fail(struct bench_shared *sh, const char *fmt, const char *what, int err)
{
    int expect = 0;
    if (atomic_compare_exchange_strong(&sh->failed, &expect, 1))
        snprintf(sh->why, sizeof(sh->why), fmt, what, err ? strerror(-err) : "");
    return -1;
}

/* Everyone opened: wait until `ready` reaches n, unless someone failed. */
static int wait_ready(struct bench_shared *sh, int n)
{
    /* Pairs with the release increments of ready in each side: what a side set up before it
     * said "ready" is visible once the count is reached. */
    while (atomic_load_explicit(&sh->ready, memory_order_acquire) < n) {
        if (atomic_load_explicit(&sh->failed, memory_order_relaxed))
            return -1;
        bench_sleep_us(50);
    }
    return 0;
}

static void *alloc_buf(size_t size)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, size < 64 ? 64 : size) != 0)
        return NULL;
    memset(p, 0xa5, size);
    return p;
}

/* One round trip carrying sequence number seq; 0 or -errno. */
static int round_trip(const struct bench_transport *t, void *ep, void *buf, void *rbuf, size_t size,
                      uint64_t seq)
{
    memcpy(buf, &seq, sizeof(seq));
    int rc = t->send(ep, buf, size);
    if (rc < 0)
        return rc;
    rc = t->recv(ep, rbuf, size);
    if (rc < 0)
        return rc;
    uint64_t got;
    memcpy(&got, rbuf, sizeof(got));
    return got == seq ? 0 : -EPROTO;
}

static int ping_side(struct child_ctx *c, void *ep)
{
    const struct bench_transport *t = c->t;
    struct bench_shared *sh = c->sh;
    const struct bench_params *p = c->p;
    void *buf = alloc_buf(c->size), *rbuf = alloc_buf(c->size);
    int rc = 0;
    if (!buf || !rbuf) {
        free(buf);
        free(rbuf);
        return child_fail(sh, "%s%s", "out of memory", 0);
    }
    atomic_fetch_add_explicit(&sh->ready, 1, memory_order_release); /* pairs: wait_ready() */
    if (wait_ready(sh, 2) < 0)
        goto out;

    uint64_t seq = 0;
    for (uint64_t i = 0; i < p->warmup && rc == 0; i++)
        rc = round_trip(t, ep, buf, rbuf, c->size, seq++);

    struct bench_hist *h = &sh->out.hist;
    bench_hist_init(h);
    uint64_t start = bench_now_ns(), end = start + p->duration_ns;
    if (!c->open_loop) {
        uint64_t prev = start;
        for (uint64_t i = 0; i < p->max_iters && rc == 0; i++) {
            rc = round_trip(t, ep, buf, rbuf, c->size, seq++);
            uint64_t now = bench_now_ns();
            bench_hist_add(h, now - prev);
            prev = now;
            if (now >= end)
                break;
        }
    } else {
        uint64_t t0 = start + p->period_ns;
        for (uint64_t i = 0; rc == 0; i++) {
            uint64_t intended = t0 + i * p->period_ns;
            if (intended >= end)
                break;
            /* A transport that fell a whole duration behind schedule has shown what it does
             * under this load; stop, so that a collapsed spinner cannot stretch the run. */
            if (bench_now_ns() > end + p->duration_ns)
                break;
            /* No pause instruction here: under KVM a long pause loop is taken for a lock
             * spinner and the vCPU is descheduled (pause-loop exiting), which would charge
             * the transport with the hypervisor's stall. */
            while (bench_now_ns() < intended)
                ;
            rc = round_trip(t, ep, buf, rbuf, c->size, seq++);
            bench_hist_add(h, bench_now_ns() - intended);
        }
    }
    sh->out.seconds = (double)(bench_now_ns() - start) / 1e9;
    sh->out.messages = h->count;
    if (rc == 0)
        rc = round_trip(t, ep, buf, rbuf, c->size, BENCH_STOP);
    if (rc < 0)
        child_fail(sh, "%s: %s", rc == -EPROTO ? "reply out of order" : "round trip", rc);
out:
    free(buf);
    free(rbuf);
    return rc;
}

static int pong_side(struct child_ctx *c, void *ep)
{
    const struct bench_transport *t = c->t;
    void *buf = alloc_buf(c->size);
    if (!buf)
        return child_fail(c->sh, "%s%s", "out of memory", 0);
    atomic_fetch_add_explicit(&c->sh->ready, 1, memory_order_release); /* pairs: wait_ready() */
    int rc = wait_ready(c->sh, 2);
    while (rc == 0) {
        rc = t->recv(ep, buf, c->size);
        if (rc < 0)
            break;
        rc = t->send(ep, buf, c->size);
        uint64_t seq;
        memcpy(&seq, buf, sizeof(seq));
        if (seq == BENCH_STOP)
            break;
    }
    if (rc < 0)
        child_fail(c->sh, "%s: %s", "echo", rc);
    free(buf);
    return rc;
}

static int send_chunk(const struct bench_transport *t, void *ep, const void *buf, size_t size,
                      int n)
{
    if (t->stream_send)
        return t->stream_send(ep, buf, size, n);
    for (int i = 0; i < n; i++) {
        int rc = t->send(ep, buf, size);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int producer_side(struct child_ctx *c, void *ep)
{
    struct bench_shared *sh = c->sh;
    void *buf = alloc_buf(c->size);
    if (!buf)
        return child_fail(sh, "%s%s", "out of memory", 0);
    atomic_fetch_add_explicit(&sh->ready, 1, memory_order_release); /* pairs: wait_ready() */
    /* Pairs with the release store of go in consumer_side(). */
    while (!atomic_load_explicit(&sh->go, memory_order_acquire)) {
        if (atomic_load_explicit(&sh->failed, memory_order_relaxed)) {
            free(buf);
            return -1;
        }
        sched_yield();
    }
    uint64_t end = atomic_load_explicit(&sh->go_ns, memory_order_relaxed) + c->p->duration_ns;
    uint64_t sent = 0, seq = (uint64_t)c->index << 56;
    int rc = 0;
    for (;;) {
        int last = bench_now_ns() >= end;
        if (last) {
            atomic_fetch_add_explicit(&sh->expected, sent + STREAM_CHUNK, memory_order_relaxed);
            /* Pairs with the acquire load of done in consumer_side(): expected is complete
             * once done counts every producer. */
            atomic_fetch_add_explicit(&sh->done, 1, memory_order_release);
        }
        memcpy(buf, &seq, sizeof(seq));
        seq++;
        rc = send_chunk(c->t, ep, buf, c->size, STREAM_CHUNK);
        if (rc < 0)
            break;
        sent += STREAM_CHUNK;
        if (last)
            break;
    }
    if (rc == 0 && c->t->stream_flush)
        rc = c->t->stream_flush(ep);
    if (rc < 0)
        child_fail(sh, "%s: %s", "send", rc);
    /* Keep the endpoint open until the consumer has everything: a ZeroMQ PUSH socket closed
     * (and its process gone) while its last messages were still on the way was seen to lose
     * them now and then, and the consumer then waited for messages that would never come. */
    /* Pairs with the release store of finished in consumer_side(). */
    while (rc == 0 && !atomic_load_explicit(&sh->finished, memory_order_acquire) &&
           !atomic_load_explicit(&sh->failed, memory_order_relaxed))
        bench_sleep_us(100);
    free(buf);
    return rc;
}

static int consumer_side(struct child_ctx *c, void *ep)
{
    struct bench_shared *sh = c->sh;
    const struct bench_transport *t = c->t;
    void *buf = alloc_buf(c->size);
    if (!buf)
        return child_fail(sh, "%s%s", "out of memory", 0);
    if (wait_ready(sh, c->nprod) < 0) {
        free(buf);
        return -1;
    }
    uint64_t start = bench_now_ns();
    atomic_store_explicit(&sh->go_ns, start, memory_order_relaxed);
    atomic_store_explicit(&sh->go, 1, memory_order_release); /* pairs with producer_side() */
    uint64_t received = 0;
    int rc = 0;
    for (;;) {
        rc = t->stream_recv ? t->stream_recv(ep, buf, c->size, STREAM_CHUNK)
                            : t->recv(ep, buf, c->size);
        if (rc < 0)
            break;
        received += t->stream_recv ? (uint64_t)rc : 1;
        /* Pairs with the release increment of done in producer_side(): expected is final. */
        if (atomic_load_explicit(&sh->done, memory_order_acquire) == c->nprod &&
            received >= atomic_load_explicit(&sh->expected, memory_order_relaxed))
            break;
    }
    sh->out.seconds = (double)(bench_now_ns() - start) / 1e9;
    sh->out.messages = received;
    atomic_store_explicit(&sh->finished, 1, memory_order_release); /* producers may close */
    if (rc < 0)
        child_fail(sh, "%s: %s", "receive", rc);
    free(buf);
    return rc < 0 ? rc : 0;
}

static int alone_side(struct child_ctx *c, void *ep)
{
    struct bench_shared *sh = c->sh;
    void *buf = alloc_buf(c->size);
    if (!buf)
        return child_fail(sh, "%s%s", "out of memory", 0);
    uint64_t seq = 0, sent = 0;
    memcpy(buf, &seq, sizeof(seq));
    int rc = send_chunk(c->t, ep, buf, c->size, STREAM_CHUNK);
    uint64_t start = bench_now_ns(), end = start + c->p->duration_ns, now = start;
    while (rc == 0 && now < end) {
        seq++;
        memcpy(buf, &seq, sizeof(seq));
        rc = send_chunk(c->t, ep, buf, c->size, STREAM_CHUNK);
        sent += STREAM_CHUNK;
        now = bench_now_ns();
    }
    if (rc == 0 && c->t->stream_flush)
        rc = c->t->stream_flush(ep);
    sh->out.seconds = (double)(now - start) / 1e9;
    sh->out.messages = sent;
    if (rc < 0)
        child_fail(sh, "%s: %s", "send", rc);
    free(buf);
    return rc;
}

void bench_pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof(set), &set); /* best effort: the report says what was asked */
}

static int child_main(struct child_ctx *c, enum bench_role role)
{
    void *ep = NULL;
    char why[BENCH_WHY_LEN] = "";
    int rc = c->t->open(c->ch, role, c->index, &ep, why, sizeof(why));
    if (rc < 0)
        return child_fail(c->sh, "%s%s", why[0] ? why : "open failed", 0);
    switch (role) {
    case BENCH_PING:
        rc = ping_side(c, ep);
        break;
    case BENCH_PONG:
        rc = pong_side(c, ep);
        break;
    case BENCH_PRODUCER:
        rc = producer_side(c, ep);
        break;
    case BENCH_CONSUMER:
        rc = consumer_side(c, ep);
        break;
    case BENCH_ALONE:
        rc = alone_side(c, ep);
        break;
    }
    c->t->close(ep);
    return rc;
}

static pid_t spawn(struct child_ctx *c, enum bench_role role, int cpu)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    bench_pin(cpu);
    _exit(child_main(c, role) < 0 ? 1 : 0);
}

/* Wait for all children until the deadline; kill the rest as soon as one fails. */
static int reap(pid_t *pids, int n, uint64_t deadline, struct bench_shared *sh)
{
    int left = 0, bad = 0, timed_out = 0;
    for (int i = 0; i < n; i++)
        left += pids[i] > 0;
    while (left > 0) {
        for (int i = 0; i < n; i++) {
            if (pids[i] <= 0)
                continue;
            int st;
            pid_t r = waitpid(pids[i], &st, WNOHANG);
            if (r == 0)
                continue;
            if (r == pids[i] && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
                bad = 1;
            bench_forget_pid(pids[i]);
            pids[i] = 0;
            left--;
        }
        if (left == 0)
            break;
        if (!timed_out && bench_now_ns() > deadline) {
            timed_out = 1;
            bad = 1;
            int expect = 0;
            if (atomic_compare_exchange_strong(&sh->failed, &expect, 1))
                snprintf(sh->why, sizeof(sh->why), "timed out (a side hung)");
        }
        if (bad || atomic_load(&sh->failed)) {
            bad = 1;
            for (int i = 0; i < n; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGKILL);
        }
        bench_sleep_us(1000);
    }
    return bad ? -1 : 0;
}

static struct bench_shared *map_shared(void)
{
    void *m = mmap(NULL, sizeof(struct bench_shared), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    memset(m, 0, sizeof(struct bench_shared));
    return m;
}

static int run(const struct bench_transport *t, size_t size, int nprod, int streaming,
               int open_loop, const struct bench_params *p, struct bench_outcome *out)
{
    memset(out, 0, sizeof(*out));
    if (t->probe) {
        const char *why = t->probe(size, out->why, sizeof(out->why));
        if (why) {
            bench_why(out->why, sizeof(out->why), "skipped: ", why);
            return -1;
        }
    }
    struct bench_shared *sh = map_shared();
    if (!sh) {
        bench_fail(out->why, sizeof(out->why), "mmap");
        return -1;
    }
    struct bench_chan *ch = NULL;
    int rc = t->setup(&ch, size, nprod, streaming, out->why, sizeof(out->why));
    if (rc < 0) {
        bench_why(out->why, sizeof(out->why), "skipped: ", out->why);
        munmap(sh, sizeof(*sh));
        return -1;
    }
    struct child_ctx c = {
        .t = t, .ch = ch, .sh = sh, .p = p, .size = size, .nprod = nprod, .open_loop = open_loop};
    pid_t pids[BENCH_MAX_PRODUCERS + 1];
    int n = 0;
    if (t->caps & BENCH_CAP_ALONE) {
        pids[n++] = spawn(&c, BENCH_ALONE, p->cpu_a);
    } else if (!streaming) {
        pids[n++] = spawn(&c, BENCH_PONG, p->cpu_b);
        pids[n++] = spawn(&c, BENCH_PING, p->cpu_a);
    } else {
        pids[n++] = spawn(&c, BENCH_CONSUMER, p->cpu_b);
        for (int i = 0; i < nprod; i++) {
            c.index = i;
            pids[n++] = spawn(&c, BENCH_PRODUCER, p->cpu_a);
        }
    }
    for (int i = 0; i < n; i++)
        if (pids[i] > 0)
            bench_track_pid(pids[i]);
    int forked_all = 1;
    for (int i = 0; i < n; i++)
        if (pids[i] < 0)
            forked_all = 0;
    if (!forked_all) {
        atomic_store(&sh->failed, 1);
        snprintf(sh->why, sizeof(sh->why), "fork: %s", strerror(errno));
    }
    uint64_t deadline = bench_now_ns() + p->duration_ns + p->timeout_ns;
    rc = reap(pids, n, deadline, sh);
    t->teardown(ch);
    if (rc == 0 && forked_all) {
        struct bench_hist keep = sh->out.hist;
        *out = sh->out;
        out->hist = keep;
        out->ok = 1;
    } else {
        bench_why(out->why, sizeof(out->why), "failed: ", sh->why[0] ? sh->why : "a side died");
    }
    munmap(sh, sizeof(*sh));
    return out->ok ? 0 : -1;
}

int bench_run_latency(const struct bench_transport *t, size_t size, int open_loop,
                      const struct bench_params *p, struct bench_outcome *out)
{
    return run(t, size, 1, 0, open_loop, p, out);
}

int bench_run_stream(const struct bench_transport *t, size_t size, int nprod,
                     const struct bench_params *p, struct bench_outcome *out)
{
    return run(t, size, nprod, 1, 0, p, out);
}

int bench_run_alone(const struct bench_transport *t, size_t size, const struct bench_params *p,
                    struct bench_outcome *out)
{
    return run(t, size, 1, 1, 0, p, out);
}
