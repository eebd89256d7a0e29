/*
 * shmbus bench: the Scale section. N processes pass one 64 B message around a ring, and every
 * hop (send to receive) is timed: through shmbus (the client body is in shmbus.c) and through
 * nothing but a process-shared semaphore per process (the floor, here), for 3, 16 and 64.
 *
 * Design notes
 * - The exchange is the seed's: one message circulating; client k's i-th forward goes to the
 *   (i mod (N-1))-th of the other clients in ascending order (bench_ring_next()); client N
 *   starts; whoever receives the last hop tells every other client to stop. Both rings follow
 *   this one rule, so they visit the processes in the same order.
 * - One harness runs both (bench_ring_run()): N forked children, none of them pinned (the
 *   scheduler places them on the usable CPUs, as it would a bus's clients; the report says
 *   so), lined up on a counter in an anonymous shared mapping, each filling its own histogram
 *   there, which the parent merges. A client that fails sets `failed`, which stops the
 *   others; the parent kills them all after 60 s or once one has failed.
 * - The floor: per process a sem_t (pshared) on one cache line and a 64 B box on the next,
 *   in one shared mapping. A hop reads the clock, writes the message (hop number, send time)
 *   into the receiver's box and posts its semaphore; the receiver sleeps in sem_clockwait()
 *   on its own semaphore (with the same 10 s timeout as the shmbus ring's receive), reads the
 *   clock when it returns and copies the message out. That is all a sleeping receiver needs:
 *   what the floor's hop costs, and how it grows with N, is the machine's (a futex wake-up,
 *   a switch to another address space, that process's cold caches and TLB), not shmbus's.
 * - Each N runs the shmbus ring and then the floor, back to back, so the two see the same
 *   moment of a shared machine.
 */
#include "results.h"

#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the harness ---- */

void bench_ring_fail(struct bench_ring *rg, int k, const char *what)
{
    int expect = 0;
    if (atomic_compare_exchange_strong(&rg->failed, &expect, 1))
        snprintf(rg->why, sizeof(rg->why), "client %d: %s", k, what);
}

/* This process's page faults and context switches so far. */
static void usage_now(uint64_t *faults, uint64_t *switches)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    *faults = (uint64_t)(u.ru_minflt + u.ru_majflt);
    *switches = (uint64_t)(u.ru_nvcsw + u.ru_nivcsw);
}

/* Counted from the line-up (bench_ring_wait_all()) to the client's return. */
static uint64_t faults0, switches0;

void bench_ring_wait_all(struct bench_ring *rg)
{
    atomic_fetch_add(&rg->ready, 1);
    while (atomic_load(&rg->ready) < rg->n && !atomic_load(&rg->failed))
        bench_sleep_us(200);
    usage_now(&faults0, &switches0);
}

/* In client k's process: run it, then add what it cost the machine to the run's counts. */
static int ring_child(struct bench_ring *rg, int k, bench_ring_client *client, void *arg)
{
    int rc = client(rg, k, arg);
    uint64_t faults, switches;
    usage_now(&faults, &switches);
    atomic_fetch_add(&rg->faults, faults - faults0);
    atomic_fetch_add(&rg->switches, switches - switches0);
    return rc;
}

int bench_ring_next(int n, int k, uint64_t i)
{
    int d = (int)(i % (uint64_t)(n - 1)) + 1;
    return d >= k ? d + 1 : d;
}

/* Merge the clients' histograms into out. */
static void ring_merge(const struct bench_ring *rg, struct bench_hops *out)
{
    static struct bench_hist all; /* 20 KiB: not on the stack */
    bench_hist_init(&all);
    for (int k = 0; k < rg->n; k++) {
        const struct bench_hist *h = &rg->hist[k];
        for (int b = 0; b < BENCH_HIST_BUCKETS; b++)
            all.bucket[b] += h->bucket[b];
        all.count += h->count;
        all.sum += h->sum;
        if (h->count && h->min < all.min)
            all.min = h->min;
        if (h->max > all.max)
            all.max = h->max;
    }
    out->messages = all.count;
    out->hop_median = bench_hist_quantile(&all, 0.5);
    out->hop_p99 = bench_hist_quantile(&all, 0.99);
    if (all.count) {
        out->faults = (double)atomic_load(&rg->faults) / (double)all.count;
        out->switches = (double)atomic_load(&rg->switches) / (double)all.count;
    }
    out->ok = all.count > 0;
    if (!out->ok)
        snprintf(out->why, sizeof(out->why), "failed: no hop recorded");
}

void bench_ring_run(int n, uint64_t hops, bench_ring_client *client, void *arg,
                    struct bench_hops *out)
{
    size_t maplen = sizeof(struct bench_ring) + (size_t)n * sizeof(struct bench_hist);
    struct bench_ring *rg =
        mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (rg == MAP_FAILED) {
        bench_fail(out->why, sizeof(out->why), "failed: mmap");
        return;
    }
    rg->n = n;
    rg->hops = hops;
    pid_t *pids = calloc((size_t)n, sizeof(*pids));
    uint64_t t0 = bench_now_ns();
    fflush(stdout);
    fflush(stderr);
    for (int k = 1; pids && k <= n; k++) {
        pids[k - 1] = fork();
        if (pids[k - 1] == 0) {
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            signal(SIGHUP, SIG_DFL);
            _exit(ring_child(rg, k, client, arg) < 0 ? 1 : 0);
        }
        if (pids[k - 1] > 0)
            bench_track_pid(pids[k - 1]);
        else
            atomic_store(&rg->failed, 1);
    }
    int bad = !pids;
    uint64_t deadline = bench_now_ns() + 60000000000ull;
    for (int k = 0; pids && k < n; k++) {
        if (pids[k] <= 0)
            continue;
        int st;
        while (waitpid(pids[k], &st, WNOHANG) == 0) {
            if (bench_now_ns() > deadline || atomic_load(&rg->failed)) {
                for (int j = 0; j < n; j++)
                    if (pids[j] > 0)
                        kill(pids[j], SIGKILL);
                bad = 1;
            }
            bench_sleep_us(2000);
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad = 1;
        bench_forget_pid(pids[k]);
    }
    out->seconds = (double)(bench_now_ns() - t0) / 1e9;
    if (bad)
        bench_why(out->why, sizeof(out->why),
                  "failed: ", rg->why[0] ? rg->why : "a client died or hung");
    else
        ring_merge(rg, out);
    free(pids);
    munmap(rg, maplen);
}

/* ---- the floor: a semaphore and a 64 B box per process ---- */

struct floor_slot {
    _Alignas(64) sem_t sem;
    _Alignas(64) unsigned char msg[64]; /* the hop number, then the send time */
};

/* A hop to slot: stamp, write the message, wake its owner. sem_post() makes the writes
 * visible to whoever returns from sem_clockwait() on it (POSIX memory synchronisation): it
 * pairs with the sem_clockwait() in floor_client(). */
static void floor_send(struct floor_slot *slot, unsigned char *buf, uint64_t hop)
{
    uint64_t now = bench_now_ns();
    memcpy(buf, &hop, sizeof(hop));
    memcpy(buf + 8, &now, sizeof(now));
    memcpy(slot->msg, buf, sizeof(slot->msg));
    sem_post(&slot->sem);
}

static int floor_client(struct bench_ring *rg, int k, void *arg)
{
    struct floor_slot *slot = arg;
    int n = rg->n;
    struct bench_hist *h = &rg->hist[k - 1];
    bench_hist_init(h);
    bench_ring_wait_all(rg);
    unsigned char buf[64] = {0};
    uint64_t i = 0; /* this client's forwards so far */
    if (k == n)
        floor_send(&slot[0], buf, 0);
    while (!atomic_load(&rg->failed)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 10;
        int rc;
        while ((rc = sem_clockwait(&slot[k - 1].sem, CLOCK_MONOTONIC, &ts)) != 0 && errno == EINTR)
            ;
        if (rc != 0) {
            bench_ring_fail(rg, k, strerror(errno));
            return -1;
        }
        uint64_t now = bench_now_ns();
        memcpy(buf, slot[k - 1].msg, sizeof(buf));
        uint64_t hop, sent;
        memcpy(&hop, buf, sizeof(hop));
        memcpy(&sent, buf + 8, sizeof(sent));
        if (hop == BENCH_RING_STOP)
            break;
        bench_hist_add(h, now - sent);
        if (hop + 1 >= rg->hops) { /* the last hop: tell everyone else to stop */
            for (int d = 1; d <= n; d++)
                if (d != k)
                    floor_send(&slot[d - 1], buf, BENCH_RING_STOP);
            break;
        }
        floor_send(&slot[bench_ring_next(n, k, i++) - 1], buf, hop + 1);
    }
    return 0;
}

static void floor_ring(struct bench_scale *s, uint64_t hops)
{
    int n = s->clients;
    size_t maplen = (size_t)n * sizeof(struct floor_slot);
    struct floor_slot *slot =
        mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (slot == MAP_FAILED) {
        bench_fail(s->floor.why, sizeof(s->floor.why), "failed: mmap");
        return;
    }
    for (int k = 0; k < n; k++)
        sem_init(&slot[k].sem, 1, 0);
    bench_ring_run(n, hops, floor_client, slot, &s->floor);
    for (int k = 0; k < n; k++)
        sem_destroy(&slot[k].sem);
    munmap(slot, maplen);
}

void bench_measure_scale(struct bench_run *r, const int *clients, int n,
                         void (*progress)(const char *))
{
    uint64_t hops = r->quick ? 3000 : 30000;
    r->nscale = 0;
    for (int i = 0; i < n && i < BENCH_MAX_SCALE; i++) {
        struct bench_scale *s = &r->scale[r->nscale++];
        char line[64];
        memset(s, 0, sizeof(*s));
        s->clients = clients[i];
        snprintf(line, sizeof(line), "shmbus ring, %d clients", clients[i]);
        progress(line);
        bench_sb_ring(s, hops);
        snprintf(line, sizeof(line), "floor ring (semaphores), %d clients", clients[i]);
        progress(line);
        floor_ring(s, hops);
    }
}
