/*
 * bench.c - shmbus-bridge --bench: the round trip across two bridges against the C NATS
 * client's own request/reply, same server, same payload.
 *
 * Direct: two connections of this process, one answering requests on a subject (echo), the
 * other making them with natsConnection_Request(). Across: two buses in two temporary
 * runtime directories (two "hosts"), a bridge on each (this program, run as children), an
 * echo client on bus B answering with shmbus_reply(), and a client on bus A making
 * shmbus_request()s to "benchB/echo" through its bridge. Each side makes `count` round trips
 * after a warm-up; the medians and 99th percentiles are printed with their ratio.
 * One run, nothing asserted.
 */
#include "bench.h"

#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmbus.h"

#define PAYLOAD 64

static uint64_t ns_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void echo_nats(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
    (void)sub, (void)arg;
    natsConnection_Publish(nc, natsMsg_GetReply(m), natsMsg_GetData(m), natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
}

/* count round trips straight through NATS into t[]; 0 or -1. */
static int direct(const char *url, int count, uint64_t *t)
{
    natsConnection *a = NULL, *b = NULL;
    natsSubscription *sub = NULL;
    natsOptions *o = NULL;
    char data[PAYLOAD];
    int i, rc = -1;

    memset(data, 'x', sizeof(data));
    /* The same option the bridge uses (send at once): the direct figure is NATS at its
     * best, not NATS waiting for its flusher thread. */
    if (natsOptions_Create(&o) != NATS_OK || natsOptions_SetURL(o, url) != NATS_OK ||
        natsOptions_SetSendAsap(o, true) != NATS_OK || natsConnection_Connect(&a, o) != NATS_OK ||
        natsConnection_Connect(&b, o) != NATS_OK ||
        natsConnection_Subscribe(&sub, b, "shmbus-bench.echo", echo_nats, NULL) != NATS_OK ||
        natsConnection_Flush(b) != NATS_OK) {
        fprintf(stderr, "shmbus: bridge: bench: %s: %s\n", url, nats_GetLastError(NULL));
        goto out;
    }
    for (i = -100; i < count; i++) {
        natsMsg *r = NULL;
        uint64_t t0 = ns_now();

        if (natsConnection_Request(&r, a, "shmbus-bench.echo", data, sizeof(data), 5000) !=
            NATS_OK) {
            fprintf(stderr, "shmbus: bridge: bench: direct request: %s\n", nats_GetLastError(NULL));
            goto out;
        }
        if (i >= 0)
            t[i] = ns_now() - t0;
        natsMsg_Destroy(r);
    }
    rc = 0;
out:
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(a);
    natsConnection_Destroy(b);
    natsOptions_Destroy(o);
    return rc;
}

static volatile int echo_stop;

static void *echo_bus(void *arg)
{
    shmbus_client *c = arg;
    struct shmbus_msg h;
    char buf[1024];
    int n;

    while (!echo_stop) {
        n = shmbus_recv(c, &h, buf, sizeof(buf), 100);
        if (n >= 0 && (h.flags & SHMBUS_MSG_REQUEST))
            shmbus_reply(c, &h, buf, (size_t)n, 0, 1000);
    }
    return NULL;
}

/* Open (create) bus `name` in runtime directory dir. */
static int open_in(const char *dir, const char *name, shmbus_bus **bus)
{
    setenv("SHMBUS_DIR", dir, 1);
    return shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, bus);
}

static pid_t spawn_bridge(const char *self, const char *dir, const char *url, const char *node,
                          const char *spin)
{
    pid_t pid = fork();

    if (pid == 0) {
        setenv("SHMBUS_DIR", dir, 1);
        execl(self, "shmbus-bridge", "bench", "--nats", url, "--node", node, "--quiet", "--spin",
              spin, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* count round trips across two bridges into t[]; 0 or -1. */
static int across(const char *self, const char *url, int count, int spin_us, uint64_t *t)
{
    char root[] = "/tmp/shmbus-bridge-bench.XXXXXX", da[64], db[64], req[PAYLOAD + 16];
    char rbuf[1024], spin[16];
    shmbus_bus *ba = NULL, *bb = NULL;
    shmbus_client *echo = NULL, *me = NULL;
    pid_t pa = -1, pb = -1;
    pthread_t th;
    int i, rc = -1, started = 0, bid = -1, n = 0;
    uint64_t deadline;

    if (mkdtemp(root) == NULL)
        return -1;
    snprintf(da, sizeof(da), "%s/a", root);
    snprintf(db, sizeof(db), "%s/b", root);
    if (open_in(da, "bench", &ba) < 0 || open_in(db, "bench", &bb) < 0 ||
        shmbus_join(bb, 0, "echo", &echo) < 0 || shmbus_join(ba, 0, "me", &me) < 0) {
        fprintf(stderr, "shmbus: bridge: bench: cannot make the two buses\n");
        goto out;
    }
    snprintf(spin, sizeof(spin), "%d", spin_us);
    shmbus_client_set_spin(echo, (unsigned)spin_us);
    shmbus_client_set_spin(me, (unsigned)spin_us);
    if (pthread_create(&th, NULL, echo_bus, echo) != 0)
        goto out;
    started = 1;
    pa = spawn_bridge(self, da, url, "benchA", spin);
    pb = spawn_bridge(self, db, url, "benchB", spin);
    snprintf(req, sizeof(req), "benchB/echo ");
    memset(req + strlen(req), 'x', PAYLOAD);
    /* Warm-up: until the first request crosses (both bridges up and subscribed). */
    deadline = ns_now() + 20000000000u;
    while (ns_now() < deadline) {
        bid = shmbus_lookup(ba, "bridge");
        if (bid > 0 && shmbus_lookup(bb, "bridge") > 0 &&
            shmbus_request(me, (uint32_t)bid, req, strlen(req), NULL, rbuf, sizeof(rbuf), 0,
                           1000) >= 0)
            break;
        usleep(50000); /* polling for the bridges to come up, with a deadline */
    }
    for (i = -100; i < count; i++) {
        uint64_t t0 = ns_now();

        n = shmbus_request(me, (uint32_t)bid, req, strlen(req), NULL, rbuf, sizeof(rbuf), 0, 5000);
        if (n < 0) {
            fprintf(stderr, "shmbus: bridge: bench: request across: %s\n", shmbus_strerror(n));
            goto out;
        }
        if (i >= 0)
            t[i] = ns_now() - t0;
    }
    rc = 0;
out:
    if (pa > 0)
        kill(pa, SIGTERM), waitpid(pa, NULL, 0);
    if (pb > 0)
        kill(pb, SIGTERM), waitpid(pb, NULL, 0);
    echo_stop = 1;
    if (started)
        pthread_join(th, NULL);
    shmbus_leave(echo);
    shmbus_leave(me);
    shmbus_bus_close(ba);
    shmbus_bus_close(bb);
    setenv("SHMBUS_DIR", da, 1);
    shmbus_bus_destroy("bench");
    setenv("SHMBUS_DIR", db, 1);
    shmbus_bus_destroy("bench");
    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        if (system(cmd) != 0)
            fprintf(stderr, "shmbus: bridge: bench: could not remove %s\n", root);
    }
    return rc;
}

int bridge_bench(const char *self, const char *url, int count, int spin_us)
{
    uint64_t *d = calloc((size_t)count, sizeof(*d)), *b = calloc((size_t)count, sizeof(*b));
    int rc = 1;

    if (d == NULL || b == NULL || nats_Open(-1) != NATS_OK)
        goto out;
    if (direct(url, count, d) != 0 || across(self, url, count, spin_us, b) != 0)
        goto out;
    qsort(d, (size_t)count, sizeof(*d), cmp_u64);
    qsort(b, (size_t)count, sizeof(*b), cmp_u64);
    printf("round trip, %d-byte payload, %d requests each, NATS at %s, spin %d us\n", PAYLOAD,
           count, url, spin_us);
    printf("  NATS C client direct  median %8.1f us  p99 %8.1f us\n", d[count / 2] / 1e3,
           d[count * 99 / 100] / 1e3);
    printf("  across two bridges    median %8.1f us  p99 %8.1f us\n", b[count / 2] / 1e3,
           b[count * 99 / 100] / 1e3);
    printf("  ratio (median)        %.2fx (target: at most 1.5x)\n",
           (double)b[count / 2] / (double)d[count / 2]);
    rc = 0;
out:
    free(d);
    free(b);
    return rc;
}
