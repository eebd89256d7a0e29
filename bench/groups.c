/*
 * shmbus bench: named groups (issue 12). Three measurements on the library directly:
 *
 * - Topic fan-out to 1, 4 and 16 subscribers: a publisher (pinned to CPU A) calls
 *   shmbus_publish() with 64 B messages for the stream duration; the subscribers (all on
 *   CPU B) take them with shmbus_recv_batch(). Deliveries per second (copies taken by all
 *   subscribers, counted by them) against the same sender making the same copies itself, one
 *   shmbus_send() per subscriber, to the same receivers: "vs direct".
 * - Work queue: a producer calls shmbus_send_group() to a group of two workers, against the
 *   same producer alternating shmbus_send() between the two.
 * - Failover: leaders killed with SIGKILL one after another while the next candidate
 *   campaigns; the time from kill() to the successor's shmbus_elect() returning.
 *
 * The rate of a run is what the receivers counted, over the time from the start signal to the
 * last receiver seeing the end marker (a message whose first 8 bytes are BENCH_STOP, sent to
 * each receiver directly after the timed part). Each figure is the best of the run's rounds,
 * topic and direct rounds alternating, as for the other streams. Each run gets its own bus.
 */
#include "results.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef BENCH_HAVE_SHMBUS
#include <shmbus.h>

#define MAX_RECV  16
#define MSG_BYTES 64
#define BATCH     64
#define MAX_KILLS 1000

enum grp_mode { TOPIC, TOPIC_DIRECT, QUEUE, QUEUE_DIRECT };

struct grp_shared {
    _Atomic int ready; /* receivers joined (and subscribed) */
    _Atomic int go;
    _Atomic int done; /* receivers that took their end marker */
    _Atomic int failed;
    char why[BENCH_WHY_LEN];
    _Atomic uint64_t got;                   /* messages taken by all receivers, markers excluded */
    _Atomic uint64_t t_go, t_end;           /* ns */
    _Atomic uint32_t ids[MAX_RECV];         /* the receivers' client ids */
    _Atomic uint64_t won_ns[MAX_KILLS + 2]; /* failover: when candidate i won */
    _Atomic int campaigning[MAX_KILLS + 2];
};

static void fail(struct grp_shared *sh, const char *what, int rc)
{
    int expect = 0;
    if (atomic_compare_exchange_strong(&sh->failed, &expect, 1))
        snprintf(sh->why, sizeof(sh->why), "%s: %s", what, shmbus_strerror(rc));
}

static int wait_flag(_Atomic int *v, int want, struct grp_shared *sh)
{
    uint64_t until = bench_now_ns() + 30000000000ull;
    while (atomic_load(v) < want) {
        if (atomic_load(&sh->failed) || bench_now_ns() > until)
            return -1;
        bench_sleep_us(200);
    }
    return 0;
}

/* A receive failed (a timeout: nothing came for 10 s). Say what the mailbox held then, so
 * that "the sender stalled" (depth 0) and "a message was there but not taken" read apart. */
static void receive_failed(struct grp_shared *sh, shmbus_bus *bus, shmbus_client *c, uint64_t got,
                           int rc)
{
    struct shmbus_client_info info[MAX_RECV + 2];
    int n = shmbus_list(bus, info, MAX_RECV + 2);
    long depth = -1;
    for (int i = 0; i < n && i < MAX_RECV + 2; i++)
        if (info[i].id == shmbus_client_id(c))
            depth = info[i].depth;
    char what[96];
    snprintf(what, sizeof(what), "receive (after %llu messages, %ld waiting in its mailbox)",
             (unsigned long long)got, depth);
    fail(sh, what, rc);
}

static int receiver(const char *bus_name, int idx, enum grp_mode mode, struct grp_shared *sh)
{
    shmbus_bus *bus = NULL;
    shmbus_client *c = NULL;
    int rc = shmbus_bus_open(bus_name, NULL, 0, &bus);
    if (rc == 0)
        rc = shmbus_join(bus, 0, NULL, &c);
    if (rc == 0 && (mode == TOPIC || mode == QUEUE))
        rc = shmbus_subscribe(c, mode == TOPIC ? "bench-topic" : "bench-jobs", 0);
    if (rc < 0) {
        fail(sh, "receiver", rc);
        shmbus_bus_close(bus);
        return 1;
    }
    atomic_store(&sh->ids[idx], shmbus_client_id(c));
    atomic_fetch_add(&sh->ready, 1);
    static struct shmbus_msg hdrs[BATCH];
    static char bufs[BATCH][MSG_BYTES];
    uint64_t got = 0;
    for (int end = 0; !end;) {
        rc = shmbus_recv_batch(c, hdrs, bufs, MSG_BYTES, BATCH, 10000);
        if (rc < 0) {
            receive_failed(sh, bus, c, got, rc);
            break;
        }
        for (int k = 0; k < rc; k++) {
            uint64_t seq;
            memcpy(&seq, bufs[k], sizeof(seq));
            if (seq == BENCH_STOP)
                end = 1;
            else
                got++;
        }
    }
    atomic_fetch_add(&sh->got, got);
    if (atomic_fetch_add(&sh->done, 1) + 1 == atomic_load(&sh->ready))
        atomic_store(&sh->t_end, bench_now_ns());
    shmbus_leave(c);
    shmbus_bus_close(bus);
    return rc < 0 ? 1 : 0;
}

static int sender(const char *bus_name, int n, enum grp_mode mode, double seconds,
                  struct grp_shared *sh)
{
    shmbus_bus *bus = NULL;
    shmbus_client *c = NULL;
    int rc = shmbus_bus_open(bus_name, NULL, 0, &bus);
    if (rc == 0)
        rc = shmbus_join(bus, 0, NULL, &c);
    if (rc < 0 || wait_flag(&sh->ready, n, sh) < 0) {
        fail(sh, "sender", rc < 0 ? rc : -ETIMEDOUT);
        shmbus_bus_close(bus);
        return 1;
    }
    uint32_t ids[MAX_RECV];
    for (int i = 0; i < n; i++)
        ids[i] = atomic_load(&sh->ids[i]);
    char buf[MSG_BYTES] = {0};
    uint64_t seq = 0, t0 = bench_now_ns(), until = t0 + (uint64_t)(seconds * 1e9);
    atomic_store(&sh->t_go, t0);
    unsigned next = 0;
    while (rc >= 0) {
        if ((seq & 63) == 0 && bench_now_ns() >= until)
            break;
        memcpy(buf, &seq, sizeof(seq));
        seq++;
        switch (mode) {
        case TOPIC:
            rc = shmbus_publish(c, "bench-topic", buf, sizeof(buf), 0, 10000);
            break;
        case TOPIC_DIRECT:
            for (int i = 0; i < n && rc >= 0; i++)
                rc = shmbus_send(c, ids[i], buf, sizeof(buf), 0, 10000);
            break;
        case QUEUE:
            rc = shmbus_send_group(c, "bench-jobs", buf, sizeof(buf), 0, 10000);
            break;
        case QUEUE_DIRECT:
            rc = shmbus_send(c, ids[next++ % (unsigned)n], buf, sizeof(buf), 0, 10000);
            break;
        }
    }
    uint64_t stop = BENCH_STOP;
    memcpy(buf, &stop, sizeof(stop));
    for (int i = 0; i < n && rc >= 0; i++)
        rc = shmbus_send(c, ids[i], buf, sizeof(buf), 0, 10000);
    if (rc < 0)
        fail(sh, "send", rc);
    shmbus_leave(c);
    shmbus_bus_close(bus);
    return rc < 0 ? 1 : 0;
}

/* Fork fn-like children: receivers on CPU B, the sender on CPU A; wait for all of them
 * (killing them all past the deadline). Returns the rate, or -1 with why. */
static double run_once(const struct bench_run *r, int n, enum grp_mode mode, char *why,
                       size_t whylen)
{
    char name[SHMBUS_NAME_MAX + 1];
    if (bench_sb_bus_create(name, sizeof(name), (uint32_t)n + 1, why, whylen) < 0)
        return -1;
    struct grp_shared *sh =
        mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        snprintf(why, whylen, "failed: mmap");
        shmbus_bus_destroy(name);
        return -1;
    }
    memset(sh, 0, sizeof(*sh));
    pid_t pids[MAX_RECV + 1];
    int np = 0;
    fflush(stdout);
    fflush(stderr);
    for (int i = 0; i <= n; i++) {
        pid_t p = fork();
        if (p == 0) {
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            signal(SIGHUP, SIG_DFL);
            if (i < n) {
                bench_pin(r->m.cpu_b);
                _exit(receiver(name, i, mode, sh));
            }
            bench_pin(r->m.cpu_a);
            _exit(sender(name, n, mode, r->stream_seconds, sh));
        }
        if (p < 0) {
            atomic_store(&sh->failed, 1);
            snprintf(sh->why, sizeof(sh->why), "fork: %s", strerror(errno));
            break;
        }
        bench_track_pid(p);
        pids[np++] = p;
    }
    int bad = 0;
    uint64_t deadline = bench_now_ns() + (uint64_t)(r->stream_seconds * 1e9) + 30000000000ull;
    for (int i = 0; i < np; i++) {
        int st = 0;
        while (waitpid(pids[i], &st, WNOHANG) == 0) {
            if (bench_now_ns() > deadline || atomic_load(&sh->failed)) {
                for (int j = 0; j < np; j++)
                    kill(pids[j], SIGKILL);
                bad = 1;
            }
            bench_sleep_us(2000);
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad = 1;
        bench_forget_pid(pids[i]);
    }
    shmbus_bus_destroy(name);
    double rate = -1;
    uint64_t t0 = atomic_load(&sh->t_go), t1 = atomic_load(&sh->t_end);
    if (bad || np != n + 1 || t1 <= t0)
        bench_why(why, whylen, "failed: ", sh->why[0] ? sh->why : "a process died or hung");
    else
        rate = (double)atomic_load(&sh->got) / ((double)(t1 - t0) / 1e9);
    munmap(sh, sizeof(*sh));
    return rate;
}

/* Best of the run's rounds for a mode and its direct counterpart, alternating. */
static void measure_pair(const struct bench_run *r, int n, enum grp_mode mode, enum grp_mode direct,
                         struct bench_group_rate *out)
{
    out->receivers = n;
    for (int round = 0; round < r->rounds; round++) {
        char why[BENCH_WHY_LEN];
        double a = run_once(r, n, mode, why, sizeof(why));
        if (a < 0) {
            snprintf(out->why, sizeof(out->why), "%s", why);
            out->ok = 0;
            return;
        }
        double b = run_once(r, n, direct, why, sizeof(why));
        if (b < 0) {
            snprintf(out->why, sizeof(out->why), "%s", why);
            out->ok = 0;
            return;
        }
        if (a > out->group_rate)
            out->group_rate = a;
        if (b > out->direct_rate)
            out->direct_rate = b;
        out->ok = 1;
    }
}

/* ---- failover ---- */

static int candidate(const char *bus_name, int i, struct grp_shared *sh)
{
    shmbus_bus *bus = NULL;
    shmbus_client *c = NULL;
    int rc = shmbus_bus_open(bus_name, NULL, 0, &bus);
    if (rc == 0)
        rc = shmbus_join(bus, 0, NULL, &c);
    if (rc < 0) {
        fail(sh, "candidate", rc);
        return 1;
    }
    atomic_store(&sh->campaigning[i], 1);
    rc = shmbus_elect(c, "bench-chief", 30000);
    if (rc <= 0) {
        fail(sh, "elect", rc < 0 ? rc : -EPROTO);
        return 1;
    }
    atomic_store(&sh->won_ns[i], bench_now_ns());
    for (;;)
        pause();
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static pid_t spawn_candidate(const char *name, int i, struct grp_shared *sh, int cpu)
{
    pid_t p = fork();
    if (p == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        bench_pin(cpu);
        _exit(candidate(name, i, sh));
    }
    if (p > 0)
        bench_track_pid(p);
    return p;
}

/* Wait for v[i] to become non-zero (30 s at most). */
static int wait_u64(_Atomic uint64_t *v, struct grp_shared *sh)
{
    uint64_t until = bench_now_ns() + 30000000000ull;
    while (atomic_load(v) == 0) {
        if (atomic_load(&sh->failed) || bench_now_ns() > until)
            return -1;
        bench_sleep_us(100);
    }
    return 0;
}

static void failover(const struct bench_run *r, struct bench_failover *out)
{
    int kills = r->quick ? 50 : 300;
    out->kills = kills;
    char name[SHMBUS_NAME_MAX + 1];
    char why[BENCH_WHY_LEN];
    if (bench_sb_bus_create(name, sizeof(name), 8, why, sizeof(why)) < 0) {
        snprintf(out->why, sizeof(out->why), "%s", why);
        return;
    }
    struct grp_shared *sh =
        mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint64_t *gap = calloc((size_t)kills, sizeof(*gap));
    pid_t *pid = calloc((size_t)kills + 2, sizeof(*pid));
    if (sh == MAP_FAILED || !gap || !pid) {
        snprintf(out->why, sizeof(out->why), "failed: out of memory");
        goto out;
    }
    memset(sh, 0, sizeof(*sh));
    fflush(stdout);
    fflush(stderr);
    /* Candidate i on CPU B when i is even, A when odd: a successor never shares its core
     * with the leader it replaces. */
    int ok = 1;
    for (int i = 0; i < 2 && ok; i++) {
        pid[i] = spawn_candidate(name, i, sh, i % 2 ? r->m.cpu_a : r->m.cpu_b);
        ok = pid[i] > 0 &&
             (i == 0 ? wait_u64(&sh->won_ns[0], sh) : wait_flag(&sh->campaigning[1], 1, sh)) == 0;
    }
    for (int i = 0; i < kills && ok; i++) {
        uint64_t t0 = bench_now_ns();
        kill(pid[i], SIGKILL);
        ok = wait_u64(&sh->won_ns[i + 1], sh) == 0;
        gap[i] = atomic_load(&sh->won_ns[i + 1]) - t0;
        waitpid(pid[i], NULL, 0);
        bench_forget_pid(pid[i]);
        pid[i] = 0;
        if (ok) {
            pid[i + 2] = spawn_candidate(name, i + 2, sh, i % 2 ? r->m.cpu_a : r->m.cpu_b);
            ok = pid[i + 2] > 0 && wait_flag(&sh->campaigning[i + 2], 1, sh) == 0;
        }
    }
    for (int i = 0; i < kills + 2; i++)
        if (pid[i] > 0) {
            kill(pid[i], SIGKILL);
            waitpid(pid[i], NULL, 0);
            bench_forget_pid(pid[i]);
        }
    if (!ok) {
        bench_why(out->why, sizeof(out->why), "failed: ",
                  sh->why[0] ? sh->why : "a candidate did not take over within 30 s");
        goto out;
    }
    qsort(gap, (size_t)kills, sizeof(*gap), cmp_u64);
    out->p50 = gap[kills / 2];
    out->p99 = gap[kills * 99 / 100];
    out->max = gap[kills - 1];
    out->ok = 1;
out:
    shmbus_bus_destroy(name);
    if (sh != MAP_FAILED)
        munmap(sh, sizeof(*sh));
    free(gap);
    free(pid);
}
#endif

void bench_measure_groups(struct bench_run *r, void (*progress)(const char *))
{
    static const int fan[BENCH_FANOUTS] = {1, 4, 16};
    struct bench_groups *g = &r->groups;
    memset(g, 0, sizeof(*g));
    g->ran = 1;
#ifdef BENCH_HAVE_SHMBUS
    for (int i = 0; i < BENCH_FANOUTS; i++) {
        char line[64];
        snprintf(line, sizeof(line), "topic fan-out to %d", fan[i]);
        progress(line);
        measure_pair(r, fan[i], TOPIC, TOPIC_DIRECT, &g->fanout[i]);
    }
    progress("work queue, 2 workers");
    measure_pair(r, 2, QUEUE, QUEUE_DIRECT, &g->queue);
    progress("leader failover");
    failover(r, &g->failover);
#else
    for (int i = 0; i < BENCH_FANOUTS; i++) {
        g->fanout[i].receivers = fan[i];
        bench_why(g->fanout[i].why, BENCH_WHY_LEN, "skipped: ", bench_shmbus_unavailable());
    }
    bench_why(g->queue.why, BENCH_WHY_LEN, "skipped: ", bench_shmbus_unavailable());
    bench_why(g->failover.why, BENCH_WHY_LEN, "skipped: ", bench_shmbus_unavailable());
#endif
}
