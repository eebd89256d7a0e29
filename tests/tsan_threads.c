/*
 * tsan_threads: a threaded harness for ThreadSanitizer (`make tsan`).
 *
 * One bus, one process, many threads: four clients each receive on their own thread while
 * eight sender threads (two per client, sharing the client handle) send to every client,
 * singly, in batches, with priorities, and with ACK; plus a thread that lists and reaps
 * the whole time. Every message is checked for order per (sender thread) and counted.
 * TSan reports any data race in the library's use of memory; the test itself checks that
 * nothing was lost or duplicated. Then the same on a durable bus (sync level batch, the
 * journal compacted every 64 KiB), where the threads also share the bus handle's journal:
 * its mutex, the flock taken around each write, group commit and compactions run by
 * whichever thread crosses the limit. The journal goes to $TSAN_JOURNAL (made by `make
 * tsan`), or a fresh directory under /tmp. Exits 0 on success.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmbus.h"

#define CLIENTS            4
#define SENDERS_PER_CLIENT 2
#define PER_SENDER         20000
#define PER_SENDER_DURABLE 4000 /* each message also a journal write: slower under TSan */

static uint64_t per_sender;
static shmbus_client *clients[CLIENTS];
static atomic_int done_senders;

struct msg {
    uint32_t thread; /* sender thread index */
    uint32_t dst;
    uint64_t n;
    uint32_t prio; /* what the sender asked for, checked against the header */
    uint32_t ack;  /* 1 if sent with SHMBUS_SEND_ACK */
};

static atomic_ullong acks_sent, acks_seen, prio_seen;

/* Sender thread t's priority: fixed per thread (0..6), so its own order stays FIFO while
 * the receivers see every level but 7 mixed (7 is the end marker's). */
static unsigned prio_of(uint32_t t)
{
    return t % 7;
}

/* Only the first sender thread of each client sends with ACK: ACK sends of one client must
 * not run in several threads at once (shmbus.h). */
static bool acks(uint32_t t)
{
    return t % SENDERS_PER_CLIENT == 0;
}

static void die(const char *what, int err)
{
    fprintf(stderr, "tsan_threads: %s: %s\n", what, shmbus_strerror(err));
    exit(1);
}

static void *sender(void *p)
{
    uint32_t t = (uint32_t)(uintptr_t)p;
    shmbus_client *c = clients[t / SENDERS_PER_CLIENT];
    uint64_t n[CLIENTS + 1] = {0};
    for (uint64_t i = 0; i < per_sender; i++) {
        uint32_t dst = 1 + (uint32_t)(i % CLIENTS);
        unsigned prio = prio_of(t);
        struct msg m = {t, dst, n[dst], prio, 0};
        int r;
        if (i % 7 == 0) {
            struct msg ms[4];
            struct shmbus_iov iov[4];
            for (int k = 0; k < 4; k++) {
                ms[k] = (struct msg){t, dst, n[dst] + (uint64_t)k, prio, 0};
                iov[k] = (struct shmbus_iov){&ms[k], sizeof(ms[k])};
            }
            r = shmbus_send_batch(c, dst, iov, 4, SHMBUS_PRIO(prio), 20000);
            if (r > 0) {
                n[dst] += (uint64_t)r;
                continue;
            }
        } else if (acks(t) && i % 13 == 1) {
            m.ack = 1;
            r = shmbus_send(c, dst, &m, sizeof(m), SHMBUS_PRIO(prio) | SHMBUS_SEND_ACK, 20000);
            if (r == 0)
                atomic_fetch_add(&acks_sent, 1);
        } else {
            r = shmbus_send(c, dst, &m, sizeof(m), SHMBUS_PRIO(prio), 20000);
        }
        if (r < 0)
            die("send", r);
        n[dst]++;
    }
    /* Tell every receiver how many to expect from this thread. */
    for (uint32_t d = 1; d <= CLIENTS; d++) {
        struct msg end = {t | 0x80000000u, d, n[d], 7, 0};
        int r = shmbus_send(c, d, &end, sizeof(end), SHMBUS_PRIO(7), 20000);
        if (r < 0)
            die("send end", r);
    }
    atomic_fetch_add(&done_senders, 1);
    return NULL;
}

static void *receiver(void *p)
{
    uint32_t idx = (uint32_t)(uintptr_t)p;
    shmbus_client *c = clients[idx];
    enum { T = CLIENTS * SENDERS_PER_CLIENT };
    uint64_t next[T] = {0}, expect[T];
    int ended = 0;
    for (int i = 0; i < T; i++)
        expect[i] = UINT64_MAX;
    for (;;) {
        bool all = ended == T;
        for (int i = 0; all && i < T; i++)
            all = next[i] == expect[i];
        if (all)
            break;
        struct msg m;
        struct shmbus_msg h;
        int r = shmbus_recv(c, &h, &m, sizeof(m), 20000);
        if (r < 0)
            die("recv", r);
        uint32_t t = m.thread & 0x7fffffffu;
        if (t >= T || m.dst != idx + 1) {
            fprintf(stderr, "tsan_threads: bad message\n");
            exit(1);
        }
        if (h.prio != m.prio || !!(h.flags & SHMBUS_MSG_ACK) != m.ack) {
            fprintf(stderr,
                    "tsan_threads: client %u: thread %u's message %llu came with "
                    "prio %u flags %#x, sent with prio %u ack %u\n",
                    idx + 1, t, (unsigned long long)m.n, h.prio, h.flags, m.prio, m.ack);
            exit(1);
        }
        if (m.ack)
            atomic_fetch_add(&acks_seen, 1);
        if (h.prio != 0)
            atomic_fetch_add(&prio_seen, 1);
        if (m.thread & 0x80000000u) {
            expect[t] = m.n;
            ended++;
            continue;
        }
        if (m.n != next[t]) {
            fprintf(stderr, "tsan_threads: client %u: thread %u sent %llu, expected %llu\n",
                    idx + 1, t, (unsigned long long)m.n, (unsigned long long)next[t]);
            exit(1);
        }
        next[t]++;
    }
    return NULL;
}

static void *watcher(void *p)
{
    shmbus_bus *b = p;
    struct shmbus_client_info ci[CLIENTS];
    while (atomic_load(&done_senders) < CLIENTS * SENDERS_PER_CLIENT) {
        int n = shmbus_list(b, ci, CLIENTS);
        if (n != CLIENTS)
            die("list", n < 0 ? n : -EBADMSG);
        shmbus_reap(b);
        sched_yield();
    }
    return NULL;
}

/* One run of the harness on a fresh bus, durable (journal in jdir) or not. */
static void run(const char *jdir)
{
    char name[64];
    snprintf(name, sizeof(name), "tsan-%s%d", jdir ? "dur-" : "", (int)getpid());
    struct shmbus_bus_opts o = {.max_clients = CLIENTS, .slots = 64, .msg_size = 32};
    struct shmbus_durable d = {.dir = jdir, .sync = SHMBUS_SYNC_BATCH, .compact_bytes = 65536};
    shmbus_bus *b;
    int r = jdir ? shmbus_bus_open_durable(name, &o, &d, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &b)
                 : shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &b);
    if (r < 0)
        die("open", r);
    per_sender = jdir ? PER_SENDER_DURABLE : PER_SENDER;
    atomic_store(&done_senders, 0);
    atomic_store(&acks_sent, 0);
    atomic_store(&acks_seen, 0);
    atomic_store(&prio_seen, 0);
    for (uint32_t i = 0; i < CLIENTS; i++) {
        r = shmbus_join(b, i + 1, NULL, &clients[i]);
        if (r < 0)
            die("join", r);
    }
    pthread_t recv_t[CLIENTS], send_t[CLIENTS * SENDERS_PER_CLIENT], watch_t;
    for (uintptr_t i = 0; i < CLIENTS; i++)
        pthread_create(&recv_t[i], NULL, receiver, (void *)i);
    for (uintptr_t i = 0; i < CLIENTS * SENDERS_PER_CLIENT; i++)
        pthread_create(&send_t[i], NULL, sender, (void *)i);
    pthread_create(&watch_t, NULL, watcher, b);
    for (int i = 0; i < CLIENTS * SENDERS_PER_CLIENT; i++)
        pthread_join(send_t[i], NULL);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(recv_t[i], NULL);
    pthread_join(watch_t, NULL);
    struct shmbus_journal_stats js = {0};
    if (jdir && (r = shmbus_journal_stats(b, &js)) < 0)
        die("journal stats", r);
    for (int i = 0; i < CLIENTS; i++)
        shmbus_leave(clients[i]);
    shmbus_bus_close(b);
    r = shmbus_bus_destroy(name);
    if (r < 0)
        die("destroy", r);
    printf("tsan_threads: %s bus: %d sender threads x %llu messages to %d receiver threads: "
           "all delivered in order; %llu ACK sends acknowledged, %llu messages above priority "
           "0",
           jdir ? "durable" : "in-memory", CLIENTS * SENDERS_PER_CLIENT,
           (unsigned long long)per_sender, CLIENTS, (unsigned long long)atomic_load(&acks_sent),
           (unsigned long long)atomic_load(&prio_seen));
    if (jdir)
        printf("; %llu compactions, %llu flushes", (unsigned long long)js.compactions,
               (unsigned long long)js.syncs);
    printf("\n");
    /* The harness must really have used what it claims to exercise. */
    if (atomic_load(&acks_sent) == 0 || atomic_load(&acks_seen) != atomic_load(&acks_sent) ||
        atomic_load(&prio_seen) == 0 || (jdir && (js.compactions == 0 || js.syncs == 0))) {
        fprintf(stderr, "tsan_threads: ACKs sent %llu, seen %llu; prioritised %llu\n",
                (unsigned long long)atomic_load(&acks_sent),
                (unsigned long long)atomic_load(&acks_seen),
                (unsigned long long)atomic_load(&prio_seen));
        exit(1);
    }
}

int main(void)
{
    run(NULL);
    char tmp[] = "/tmp/tsan-journal-XXXXXX", jdir[600];
    const char *j = getenv("TSAN_JOURNAL");
    bool made = j == NULL || j[0] != '/';
    if (made && mkdtemp(tmp) == NULL) {
        perror("tsan_threads: mkdtemp");
        return 1;
    }
    snprintf(jdir, sizeof(jdir), "%s/jnl", made ? tmp : j);
    run(jdir);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", made ? tmp : jdir);
    if (system(cmd) != 0)
        fprintf(stderr, "tsan_threads: could not remove %s\n", made ? tmp : jdir);
    printf("1 passed, 0 failed\n");
    return 0;
}
