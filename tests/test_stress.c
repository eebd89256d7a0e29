/*
 * test_stress: many producer processes into one mailbox. Nothing lost, nothing duplicated,
 * each producer's order kept; also a 64-client bus where everyone sends to everyone.
 *
 * STRESS_MSGS sets the messages per producer (default 1,000,000; 200,000 under sanitizers,
 * which the Makefile signals with STRESS_MSGS).
 */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "shmbus.h"

#define PRODUCERS 8

struct rec {
    uint32_t producer;
    uint32_t check;
    uint64_t n;
};

static uint64_t per_producer(void)
{
    const char *e = getenv("STRESS_MSGS");
    return e ? strtoull(e, NULL, 10) : 1000000;
}

struct prod_arg {
    const char *bus;
    uint32_t id;
    uint64_t count;
    uint64_t *calls; /* shared with the test: send calls made (single sends and batches) */
};

static int producer(void *p)
{
    struct prod_arg *a = p;
    shmbus_bus *b;
    shmbus_client *c;
    if (shmbus_bus_open(a->bus, NULL, 0, &b) != 0 || shmbus_join(b, a->id, NULL, &c) != 0)
        return 10;
    /* Half the producers send one by one, half in batches of 32: both paths get hammered. */
    bool batch = a->id % 2 == 0;
    uint64_t n = 0;
    while (n < a->count) {
        if (!batch) {
            struct rec r = {a->id, a->id * 2654435761u ^ (uint32_t)n, n};
            int e = shmbus_send(c, 1, &r, sizeof(r), 0, 30000);
            if (e != 0)
                return 11;
            (*a->calls)++;
            n++;
            continue;
        }
        struct rec rs[32];
        struct shmbus_iov iov[32];
        size_t k = 0;
        for (; k < 32 && n + k < a->count; k++) {
            rs[k] = (struct rec){a->id, a->id * 2654435761u ^ (uint32_t)(n + k), n + k};
            iov[k] = (struct shmbus_iov){&rs[k], sizeof(rs[k])};
        }
        int sent = shmbus_send_batch(c, 1, iov, k, 0, 30000);
        if (sent <= 0)
            return 12;
        (*a->calls)++;
        n += (uint64_t)sent;
    }
    shmbus_leave(c);
    shmbus_bus_close(b);
    return 0;
}

static void test_fan_in(void **state)
{
    (void)state;
    const char *name = th_name("fanin");
    char bus[64];
    snprintf(bus, sizeof(bus), "%s", name);
    struct shmbus_bus_opts o = {.max_clients = PRODUCERS + 1, .slots = 1024, .msg_size = 64};
    shmbus_bus *b;
    shmbus_client *c;
    assert_int_equal(shmbus_bus_open(bus, &o, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &b), 0);
    assert_int_equal(shmbus_join(b, 1, NULL, &c), 0);

    uint64_t count = per_producer();
    uint64_t *calls = mmap(NULL, PRODUCERS * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(calls != MAP_FAILED);
    pid_t pids[PRODUCERS];
    struct prod_arg args[PRODUCERS];
    uint64_t t0 = th_now_ns();
    for (int i = 0; i < PRODUCERS; i++) {
        calls[i] = 0;
        args[i] = (struct prod_arg){bus, (uint32_t)i + 2, count, &calls[i]};
        pids[i] = th_fork(producer, &args[i]);
    }
    uint64_t next[PRODUCERS + 2] = {0};
    uint64_t total = 0, want = count * PRODUCERS;
    struct shmbus_msg hdrs[64];
    static struct rec bufs[64];
    while (total < want) {
        int n = shmbus_recv_batch(c, hdrs, bufs, sizeof(struct rec), 64, 30000);
        assert_true(n > 0);
        for (int k = 0; k < n; k++) {
            struct rec *r = &bufs[k];
            assert_int_equal(hdrs[k].len, sizeof(*r));
            assert_true(r->producer >= 2 && r->producer < PRODUCERS + 2);
            assert_int_equal(hdrs[k].src, r->producer);
            /* In order, no gap, no duplicate. */
            assert_int_equal(r->n, next[r->producer]);
            assert_int_equal(r->check, r->producer * 2654435761u ^ (uint32_t)r->n);
            assert_int_equal(hdrs[k].seq, r->n + 1);
            next[r->producer]++;
        }
        total += (uint64_t)n;
    }
    double secs = (double)(th_now_ns() - t0) / 1e9;
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(th_wait(pids[i], 60000), 0);
    assert_int_equal(shmbus_recv(c, NULL, NULL, 0, 0), -EAGAIN);
    struct shmbus_client_info ci;
    assert_int_equal(shmbus_list(b, &ci, 1), 1);
    uint64_t ncalls = 0;
    for (int i = 0; i < PRODUCERS; i++)
        ncalls += calls[i];
    munmap(calls, PRODUCERS * sizeof(uint64_t));
    print_message("fan-in: %d producers x %llu messages in %.2f s (%.1f M msg/s), "
                  "%llu send calls, consumer woken %llu times\n",
                  PRODUCERS, (unsigned long long)count, secs, (double)want / secs / 1e6,
                  (unsigned long long)ncalls, (unsigned long long)ci.counters.wakeups);
    /* At most one wake-up per send call (a batch is one call): a wake-up is a post by a
     * producer that found the consumer asleep, and each call commits once. */
    assert_true(ci.counters.wakeups <= ncalls);
    shmbus_leave(c);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(bus), 0);
}

/* 64 clients in one process each send to every other; every mailbox gets all 63. */
static void test_all_to_all(void **state)
{
    (void)state;
    const char *name = th_name("a2a");
    struct shmbus_bus_opts o = {.max_clients = 64, .slots = 64, .msg_size = 16};
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &b), 0);
    shmbus_client *cl[64];
    for (int i = 0; i < 64; i++)
        assert_int_equal(shmbus_join(b, 0, NULL, &cl[i]), 0);
    for (int i = 0; i < 64; i++)
        for (uint32_t d = 1; d <= 64; d++)
            if (d != (uint32_t)i + 1)
                assert_int_equal(shmbus_send(cl[i], d, &i, sizeof(i), 0, 0), 0);
    for (int i = 0; i < 64; i++) {
        uint64_t seen = 0;
        for (int k = 0; k < 63; k++) {
            int v;
            struct shmbus_msg m;
            assert_int_equal(shmbus_recv(cl[i], &m, &v, sizeof(v), 0), sizeof(v));
            assert_int_equal(m.src, (uint32_t)v + 1);
            seen |= 1ull << v;
        }
        assert_int_equal(seen, ~0ull & ~(1ull << i));
        assert_int_equal(shmbus_recv(cl[i], NULL, NULL, 0, 0), -EAGAIN);
    }
    for (int i = 0; i < 64; i++)
        shmbus_leave(cl[i]);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

/* Is process pid asleep (state S) right now? */
static int proc_sleeping(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *q = strrchr(buf, ')');
    return q && q[1] == ' ' && q[2] == 'S';
}

enum { ROUNDS = 10, PER_BATCH = 16 };

/* Receive ROUNDS batches of PER_BATCH, each with one recv_batch call. Exit 0, or 20+. */
static int batch_consumer(void *p)
{
    const char *bus = p;
    shmbus_bus *b;
    shmbus_client *c;
    if (shmbus_bus_open(bus, NULL, 0, &b) != 0 || shmbus_join(b, 1, NULL, &c) != 0)
        return 20;
    struct shmbus_msg hdrs[PER_BATCH];
    int bufs[PER_BATCH];
    for (int r = 0; r < ROUNDS; r++)
        if (shmbus_recv_batch(c, hdrs, bufs, sizeof(int), PER_BATCH, 10000) != PER_BATCH)
            return 21;
    return 0; /* stays joined (dead once it exits): the test reads its counters */
}

/*
 * At most one wake-up per batch, exactly: a consumer asleep in recv_batch is woken once by a
 * batch of 16 and takes all 16 in that one call. The test waits until the consumer sleeps
 * (state S, polled with a deadline) before each batch.
 */
static void test_batch_one_wakeup(void **state)
{
    (void)state;
    const char *name = th_name("bwake");
    struct shmbus_bus_opts o = {.max_clients = 4, .slots = 64, .msg_size = 16};
    shmbus_bus *b;
    shmbus_client *c;
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &b), 0);
    pid_t pid = th_fork(batch_consumer, (void *)name);
    uint64_t deadline = th_now_ns() + 5000000000ull;
    while (shmbus_list(b, NULL, 0) < 1) { /* the consumer has joined */
        assert_true(th_now_ns() < deadline);
        sched_yield();
    }
    assert_int_equal(shmbus_join(b, 2, NULL, &c), 0);
    int vals[PER_BATCH];
    struct shmbus_iov iov[PER_BATCH];
    for (int k = 0; k < PER_BATCH; k++) {
        vals[k] = k;
        iov[k] = (struct shmbus_iov){&vals[k], sizeof(int)};
    }
    for (int r = 0; r < ROUNDS; r++) {
        deadline = th_now_ns() + 5000000000ull;
        while (!proc_sleeping(pid)) {
            assert_true(th_now_ns() < deadline);
            sched_yield();
        }
        struct timespec ts = {0, 10000000}; /* past its first look, onto the semaphore */
        nanosleep(&ts, NULL);
        assert_int_equal(shmbus_send_batch(c, 1, iov, PER_BATCH, 0, 5000), PER_BATCH);
    }
    assert_int_equal(th_wait(pid, 10000), 0);
    struct shmbus_client_info ci[2];
    assert_int_equal(shmbus_list(b, ci, 2), 2);
    assert_int_equal(ci[0].id, 1);
    print_message("batches of %d to a sleeping consumer: %llu wake-ups for %d batches, %llu "
                  "messages\n",
                  PER_BATCH, (unsigned long long)ci[0].counters.wakeups, ROUNDS,
                  (unsigned long long)ci[0].counters.received);
    assert_int_equal(ci[0].counters.received, ROUNDS * PER_BATCH);
    assert_int_equal(ci[0].counters.wakeups, ROUNDS);
    shmbus_leave(c);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_to_all),
        cmocka_unit_test(test_batch_one_wakeup),
        cmocka_unit_test(test_fan_in),
    };
    th_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, th_cleanup);
}
