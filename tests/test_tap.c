/*
 * test_tap: the passive view (shmbus_tap_*). What a user relies on: a tap sees every
 * message sent, with its header and the start of its payload, without taking anything from
 * anyone; one that falls behind is told how much it missed; a blocked tap wakes for the
 * next message; a tap of a killed process does not hold its place forever.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "shmbus.h"

static void expect_seen(shmbus_tap *t, uint32_t src, uint32_t dst, uint64_t seq, unsigned prio,
                        const char *text)
{
    struct shmbus_tap_msg tm;
    char buf[SHMBUS_TAP_CAPTURE];
    int n = shmbus_tap_next(t, &tm, buf, sizeof(buf), 1000);
    const struct shmbus_msg m = tm.msg;
    assert_int_equal(n, (int)strlen(text));
    assert_int_equal(tm.missed, 0);
    assert_int_equal(tm.captured, strlen(text));
    assert_int_equal(m.src, src);
    assert_int_equal(m.dst, dst);
    assert_int_equal(m.seq, seq);
    assert_int_equal(m.prio, prio);
    assert_int_equal(m.len, strlen(text));
    assert_memory_equal(buf, text, strlen(text));
}

/* Sends of every kind are seen, in order, and the receivers still get every message. */
static void test_tap_sees_without_taking(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("tapsee", 4, 16, 1024);
    shmbus_client *a, *r, *q;
    assert_int_equal(shmbus_join(b, 1, "ann", &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_int_equal(shmbus_join(b, 3, "quinn", &q), 0);
    assert_int_equal(shmbus_send(a, 2, "before", 6, 0, 0), 0); /* before the tap: unseen */
    shmbus_tap *t;
    assert_int_equal(shmbus_tap_open(b, &t), 0);
    assert_int_equal(shmbus_send(a, 2, "one", 3, SHMBUS_PRIO(5), 0), 0);
    struct shmbus_iov iov[2] = {{"b1", 2}, {"b2", 2}};
    assert_int_equal(shmbus_send_batch(a, 3, iov, 2, 0, 0), 2);
    assert_int_equal(shmbus_broadcast(r, "all", 3, 0, 0), 2);
    struct shmbus_loan l;
    assert_int_equal(shmbus_loan(a, 2, 64, 0, 0, &l), 0);
    memcpy(l.data, "lent", 4);
    assert_int_equal(shmbus_loan_commit(a, &l, 4), 0);
    char big[1000];
    memset(big, 'x', sizeof(big));
    assert_int_equal(shmbus_send(q, 1, big, sizeof(big), 0, 0), 0);

    expect_seen(t, 1, 2, 2, 5, "one");
    expect_seen(t, 1, 3, 3, 0, "b1");
    expect_seen(t, 1, 3, 4, 0, "b2");
    struct shmbus_tap_msg tm;
    struct shmbus_msg m;
    char buf[SHMBUS_TAP_CAPTURE];
    for (int k = 0; k < 2; k++) { /* the broadcast's two copies, to 1 and 3 */
        assert_int_equal(shmbus_tap_next(t, &tm, buf, sizeof(buf), 1000), 3);
        assert_int_equal(tm.msg.src, 2);
        assert_true(tm.msg.dst == 1 || tm.msg.dst == 3);
        assert_true(tm.msg.flags & SHMBUS_MSG_BROADCAST);
    }
    expect_seen(t, 1, 2, 5, 0, "lent");
    /* A large message: the whole length in the header, the first 400 bytes kept, and the
     * names the two clients had. */
    assert_int_equal(shmbus_tap_next(t, &tm, buf, sizeof(buf), 1000), SHMBUS_TAP_CAPTURE);
    assert_int_equal(tm.msg.len, sizeof(big));
    assert_int_equal(tm.captured, SHMBUS_TAP_CAPTURE);
    assert_string_equal(tm.src_name, "quinn");
    assert_string_equal(tm.dst_name, "ann");
    assert_memory_equal(buf, big, SHMBUS_TAP_CAPTURE);
    /* A smaller buffer gets what fits. */
    assert_int_equal(shmbus_send(a, 2, "abcdef", 6, 0, 0), 0);
    assert_int_equal(shmbus_tap_next(t, &tm, buf, 2, 1000), 2);
    assert_int_equal(tm.msg.len, 6);
    assert_memory_equal(buf, "ab", 2);
    assert_int_equal(shmbus_tap_next(t, &tm, buf, sizeof(buf), 0), -EAGAIN);
    assert_int_equal(tm.missed, 0);

    /* Nothing was taken: every receiver gets all its messages. */
    char got[1024];
    assert_int_equal(shmbus_recv(r, &m, got, sizeof(got), 0), 3); /* prio 5 first */
    assert_int_equal(shmbus_recv(r, &m, got, sizeof(got), 0), 6);
    assert_memory_equal(got, "before", 6);
    assert_int_equal(shmbus_recv(r, &m, got, sizeof(got), 0), 4);
    assert_int_equal(shmbus_recv(r, &m, got, sizeof(got), 0), 6);
    assert_int_equal(shmbus_recv(r, &m, got, sizeof(got), 0), -EAGAIN);
    assert_int_equal(shmbus_recv(q, &m, got, sizeof(got), 0), 2);
    assert_int_equal(shmbus_recv(q, &m, got, sizeof(got), 0), 2);
    assert_int_equal(shmbus_recv(q, &m, got, sizeof(got), 0), 3);
    assert_int_equal(shmbus_recv(a, &m, got, sizeof(got), 0), 3);
    assert_int_equal(shmbus_recv(a, &m, got, sizeof(got), 0), 1000);
    shmbus_tap_close(t);
    shmbus_leave(a);
    shmbus_leave(r);
    shmbus_leave(q);
    th_close_bus(b);
}

/* Message i of the whole-payload tests: len bytes, byte k = (i * 31 + k * 7) & 0xff. */
static void fill(uint8_t *p, size_t len, int i)
{
    for (size_t k = 0; k < len; k++)
        p[k] = (uint8_t)((size_t)i * 31 + k * 7);
}

/* A whole tap gets every byte of long messages; a plain tap open at the same time still
 * gets the first 400; short ones are unchanged. */
static void test_tap_whole_payloads(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("tapwhole", 4, 4, 65536);
    shmbus_client *a, *r;
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    shmbus_tap *whole, *plain;
    assert_int_equal(shmbus_tap_open_flags(b, 0x2, &whole), -EINVAL);
    assert_null(whole);
    assert_int_equal(shmbus_tap_open_flags(NULL, SHMBUS_TAP_WHOLE, &whole), -EINVAL);
    assert_int_equal(shmbus_tap_open_flags(b, SHMBUS_TAP_WHOLE, &whole), 0);
    assert_int_equal(shmbus_tap_open(b, &plain), 0);
    static uint8_t msg[65536], got[65536];
    const size_t sizes[] = {1, 400, 401, 4096, 65536};
    struct shmbus_msg m;
    for (int i = 0; i < 5; i++) {
        fill(msg, sizes[i], i);
        assert_int_equal(shmbus_send(a, 2, msg, sizes[i], 0, 0), 0);
        assert_int_equal(shmbus_recv(r, &m, got, sizeof(got), 0), (int)sizes[i]);
    }
    struct shmbus_tap_msg tm;
    for (int i = 0; i < 5; i++) {
        fill(msg, sizes[i], i);
        memset(got, 0, sizeof(got));
        assert_int_equal(shmbus_tap_next(whole, &tm, got, sizeof(got), 1000), (int)sizes[i]);
        assert_int_equal(tm.captured, sizes[i]);
        assert_int_equal(tm.msg.len, sizes[i]);
        assert_int_equal(tm.missed, 0);
        assert_memory_equal(got, msg, sizes[i]);
        size_t kept = sizes[i] < SHMBUS_TAP_CAPTURE ? sizes[i] : SHMBUS_TAP_CAPTURE;
        memset(got, 0, sizeof(got));
        assert_int_equal(shmbus_tap_next(plain, &tm, got, sizeof(got), 1000), (int)kept);
        assert_int_equal(tm.captured, kept);
        assert_memory_equal(got, msg, kept);
    }
    /* A buffer smaller than the message gets what fits, and the call succeeds. */
    fill(msg, 5000, 9);
    assert_int_equal(shmbus_send(a, 2, msg, 5000, 0, 0), 0);
    assert_int_equal(shmbus_tap_next(whole, &tm, got, 1000, 1000), 1000);
    assert_int_equal(tm.captured, 5000);
    assert_memory_equal(got, msg, 1000);
    shmbus_tap_close(plain);
    shmbus_tap_close(whole);
    /* With the whole tap closed, long messages are kept as before: 400 bytes. */
    assert_int_equal(shmbus_tap_open(b, &plain), 0);
    assert_int_equal(shmbus_send(a, 2, msg, 5000, 0, 0), 0);
    assert_int_equal(shmbus_tap_next(plain, &tm, got, sizeof(got), 1000), SHMBUS_TAP_CAPTURE);
    assert_memory_equal(got, msg, SHMBUS_TAP_CAPTURE);
    shmbus_tap_close(plain);
    shmbus_leave(a);
    shmbus_leave(r);
    th_close_bus(b);
}

/* A whole tap that falls more than the bulk ring (8 MiB) behind: the messages whose copy
 * was written over come with the first 392 bytes and say so (captured); the later ones are
 * whole. None is lost, none is wrong. */
static void test_tap_whole_lapped(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("taplap", 4, 4, 65536);
    shmbus_client *a, *r;
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    shmbus_tap *t;
    assert_int_equal(shmbus_tap_open_flags(b, SHMBUS_TAP_WHOLE, &t), 0);
    static uint8_t msg[65536], got[65536];
    struct shmbus_msg m;
    const int total = 200; /* 12.5 MiB of payload: the first ~72 are written over */
    for (int i = 0; i < total; i++) {
        fill(msg, sizeof(msg), i);
        assert_int_equal(shmbus_send(a, 2, msg, sizeof(msg), 0, 0), 0);
        assert_int_equal(shmbus_recv(r, &m, got, sizeof(got), 0), (int)sizeof(msg));
    }
    struct shmbus_tap_msg tm;
    int whole = 0, cut = 0;
    for (int i = 0; i < total; i++) {
        fill(msg, sizeof(msg), i);
        int n = shmbus_tap_next(t, &tm, got, sizeof(got), 1000);
        assert_int_equal(tm.missed, 0);
        assert_int_equal(tm.msg.seq, (uint64_t)i + 1);
        if (tm.captured == sizeof(msg)) {
            assert_int_equal(n, (int)sizeof(msg));
            assert_int_equal(cut + whole, i); /* the written-over ones come first */
            whole++;
        } else {
            assert_int_equal(tm.captured, SHMBUS_TAP_CAPTURE - 8);
            assert_int_equal(n, SHMBUS_TAP_CAPTURE - 8);
            assert_int_equal(whole, 0);
            cut++;
        }
        assert_memory_equal(got, msg, (size_t)n);
    }
    printf("# %d whole, %d cut to their first bytes\n", whole, cut);
    assert_true(cut > 0 && whole >= 100);
    shmbus_tap_close(t);
    shmbus_leave(a);
    shmbus_leave(r);
    th_close_bus(b);
}

/* A tap that falls more than its ring behind loses the oldest and is told how many; what
 * it then reads is the most recent, in order. Two taps do not disturb each other. */
static void test_tap_missed_is_counted(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("tapmiss", 4, 16, 64);
    shmbus_client *a, *r;
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    shmbus_tap *slow, *fast;
    assert_int_equal(shmbus_tap_open(b, &slow), 0);
    assert_int_equal(shmbus_tap_open(b, &fast), 0);
    const int total = 3000;
    struct shmbus_msg m;
    struct shmbus_tap_msg tm;
    char buf[64];
    uint64_t fast_seen = 0;
    for (int i = 0; i < total; i++) {
        assert_int_equal(shmbus_send(a, 2, &i, sizeof(i), 0, 0), 0);
        assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), (int)sizeof(i));
        if (i % 100 == 99) { /* the fast tap keeps up */
            int n;
            while ((n = shmbus_tap_next(fast, &tm, buf, sizeof(buf), 0)) >= 0) {
                assert_int_equal(tm.missed, 0);
                assert_int_equal(tm.msg.seq, fast_seen + 1);
                fast_seen++;
            }
            assert_int_equal(n, -EAGAIN);
        }
    }
    assert_int_equal(fast_seen, total);
    /* The slow one: 3000 - 1024 lost, then the last 1024 in order. */
    assert_int_equal(shmbus_tap_next(slow, &tm, buf, sizeof(buf), 0), (int)sizeof(int));
    assert_int_equal(tm.missed, total - 1024);
    assert_int_equal(tm.msg.seq, total - 1024 + 1);
    for (uint64_t s = total - 1024 + 2; s <= (uint64_t)total; s++) {
        assert_int_equal(shmbus_tap_next(slow, &tm, buf, sizeof(buf), 0), (int)sizeof(int));
        assert_int_equal(tm.missed, 0);
        assert_int_equal(tm.msg.seq, s);
    }
    assert_int_equal(shmbus_tap_next(slow, &tm, buf, sizeof(buf), 0), -EAGAIN);
    shmbus_tap_close(slow);
    shmbus_tap_close(fast);
    shmbus_leave(a);
    shmbus_leave(r);
    th_close_bus(b);
}

struct busy {
    const char *bus;
    uint32_t id;
    int n;
};

static int busy_sender(void *arg)
{
    struct busy *w = arg;
    shmbus_bus *b;
    shmbus_client *c;
    if (shmbus_bus_open(w->bus, NULL, 0, &b) != 0 || shmbus_join(b, w->id, NULL, &c) != 0)
        return 10;
    for (int i = 0; i < w->n; i++)
        if (shmbus_send(c, 3, &i, sizeof(i), 0, 10000) != 0)
            return 11;
    shmbus_leave(c);
    shmbus_bus_close(b);
    return 0;
}

static int busy_receiver(void *arg)
{
    struct busy *w = arg;
    shmbus_bus *b;
    shmbus_client *c;
    if (shmbus_bus_open(w->bus, NULL, 0, &b) != 0)
        return 10;
    if (shmbus_join(b, 3, NULL, &c) != 0)
        return 11;
    char buf[64];
    for (int i = 0; i < w->n; i++)
        if (shmbus_recv(c, NULL, buf, sizeof(buf), 10000) < 0)
            return 12;
    shmbus_leave(c);
    shmbus_bus_close(b);
    return 0;
}

/* Two senders and a receiver in other processes, flat out, and a tap reading slowly: what
 * it shows plus what it says it missed is every message sent, each sender's in order. */
static void test_tap_busy_accounts_for_all(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("tapbusy", 4, 256, 64);
    const int per = 20000;
    shmbus_tap *t;
    assert_int_equal(shmbus_tap_open(b, &t), 0);
    struct busy r = {th_name("tapbusy"), 3, 2 * per}, s1 = {r.bus, 1, per}, s2 = {r.bus, 2, per};
    pid_t pr = th_fork(busy_receiver, &r);
    /* The senders start once the receiver is there (polled, with a deadline). */
    struct shmbus_client_info ci[4];
    bool joined = false;
    for (uint64_t end = th_now_ns() + 10000000000ull; !joined && th_now_ns() < end;) {
        int n = shmbus_list(b, ci, 4);
        for (int k = 0; k < n; k++)
            joined |= ci[k].id == 3 && ci[k].state == SHMBUS_CLIENT_LIVE;
        if (!joined)
            usleep(1000);
    }
    assert_true(joined);
    pid_t p1 = th_fork(busy_sender, &s1), p2 = th_fork(busy_sender, &s2);
    uint64_t seen = 0, missed = 0, last[3] = {0, 0, 0};
    struct shmbus_tap_msg tm;
    char buf[64];
    uint64_t deadline = th_now_ns() + 60000000000ull;
    while (seen + missed < 2ull * per && th_now_ns() < deadline) {
        int n = shmbus_tap_next(t, &tm, buf, sizeof(buf), 100);
        missed += tm.missed;
        if (n < 0)
            continue;
        assert_int_equal(n, sizeof(int));
        assert_true(tm.msg.src == 1 || tm.msg.src == 2);
        assert_int_equal(tm.msg.dst, 3);
        assert_true(tm.msg.seq > last[tm.msg.src]); /* per sender, in order */
        last[tm.msg.src] = tm.msg.seq;
        seen++;
        if (seen % 64 == 0) /* a slow reader: let the ring lap it now and then */
            usleep(200);
    }
    assert_int_equal(th_wait(p1, 60000), 0);
    assert_int_equal(th_wait(p2, 60000), 0);
    assert_int_equal(th_wait(pr, 60000), 0);
    assert_int_equal(seen + missed, 2ull * per);
    assert_int_equal(shmbus_tap_next(t, &tm, buf, sizeof(buf), 0), -EAGAIN);
    assert_int_equal(tm.missed, 0);
    print_message("tap under load: %llu shown, %llu missed of %d\n", (unsigned long long)seen,
                  (unsigned long long)missed, 2 * per);
    shmbus_tap_close(t);
    th_close_bus(b);
}

struct waiter {
    const char *bus;
};

static int tap_waiter(void *arg)
{
    struct waiter *w = arg;
    shmbus_bus *b;
    if (shmbus_bus_open(w->bus, NULL, 0, &b) != 0)
        return 10;
    shmbus_tap *t;
    if (shmbus_tap_open(b, &t) != 0)
        return 11;
    /* Tell the parent we watch: a message it waits for. */
    shmbus_client *c;
    if (shmbus_join(b, 3, NULL, &c) != 0)
        return 12;
    if (shmbus_send(c, 1, "ready", 5, 0, 1000) != 0)
        return 13;
    /* Skip our own "ready", then block until the parent's message. */
    struct shmbus_tap_msg tm;
    char buf[64];
    if (shmbus_tap_next(t, &tm, buf, sizeof(buf), 5000) != 5)
        return 14;
    int n = shmbus_tap_next(t, &tm, buf, sizeof(buf), 5000);
    if (n != 4 || memcmp(buf, "wake", 4) != 0 || tm.msg.src != 1 || tm.msg.dst != 2)
        return 15;
    shmbus_tap_close(t);
    shmbus_leave(c);
    shmbus_bus_close(b);
    return 0;
}

/* A tap blocked in shmbus_tap_next() in another process wakes for the next message. */
static void test_tap_wakes(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("tapwake", 4, 16, 64);
    shmbus_client *a, *r;
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    struct waiter w = {th_name("tapwake")};
    pid_t pid = th_fork(tap_waiter, &w);
    char buf[64];
    assert_int_equal(shmbus_recv(a, NULL, buf, sizeof(buf), 5000), 5);
    assert_int_equal(shmbus_send(a, 2, "wake", 4, 0, 1000), 0);
    assert_int_equal(th_wait(pid, 10000), 0);
    shmbus_leave(a);
    shmbus_leave(r);
    th_close_bus(b);
}

static int hold_all_taps(void *arg)
{
    struct waiter *w = arg;
    shmbus_bus *b;
    if (shmbus_bus_open(w->bus, NULL, 0, &b) != 0)
        return 10;
    shmbus_tap *t;
    for (int i = 0; i < 8; i++)
        if (shmbus_tap_open(b, &t) != 0)
            return 11;
    if (shmbus_tap_open(b, &t) != -EUSERS)
        return 12;
    raise(SIGKILL); /* die holding all eight */
    return 13;
}

/* At most 8 taps; those of a killed process are freed for the next one. */
static void test_dead_tap_is_freed(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("tapdead", 4, 16, 64);
    struct waiter w = {th_name("tapdead")};
    assert_int_equal(th_wait(th_fork(hold_all_taps, &w), 10000), 128 + SIGKILL);
    shmbus_tap *t;
    assert_int_equal(shmbus_tap_open(b, &t), 0);
    shmbus_tap_close(t);
    th_close_bus(b);
}

static void test_tap_errors(void **state)
{
    (void)state;
    shmbus_tap *t = (shmbus_tap *)&t;
    assert_int_equal(shmbus_tap_open(NULL, &t), -EINVAL);
    shmbus_bus *b = th_open_bus("taperr", 4, 16, 64);
    assert_int_equal(shmbus_tap_open(b, NULL), -EINVAL);
    shmbus_bus *ro;
    assert_int_equal(shmbus_bus_open(th_name("taperr"), NULL, SHMBUS_OPEN_RDONLY, &ro), 0);
    assert_int_equal(shmbus_tap_open(ro, &t), -EROFS);
    assert_null(t);
    shmbus_bus_close(ro);
    assert_int_equal(shmbus_tap_open(b, &t), 0);
    char buf[8];
    assert_int_equal(shmbus_tap_next(NULL, NULL, buf, sizeof(buf), 0), -EINVAL);
    assert_int_equal(shmbus_tap_next(t, NULL, NULL, 8, 0), -EINVAL);
    uint64_t t0 = th_now_ns();
    assert_int_equal(shmbus_tap_next(t, NULL, buf, sizeof(buf), 100), -ETIMEDOUT);
    assert_true(th_now_ns() - t0 >= 90000000ull);
    shmbus_tap_close(NULL);
    assert_int_equal(shmbus_bus_destroy(th_name("taperr")), 0);
    assert_int_equal(shmbus_tap_next(t, NULL, buf, sizeof(buf), 1000), -EIDRM);
    shmbus_tap_close(t);
    shmbus_bus_close(b);
}

int main(void)
{
    th_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tap_sees_without_taking),
        cmocka_unit_test(test_tap_missed_is_counted),
        cmocka_unit_test(test_tap_whole_payloads),
        cmocka_unit_test(test_tap_whole_lapped),
        cmocka_unit_test(test_tap_busy_accounts_for_all),
        cmocka_unit_test(test_tap_wakes),
        cmocka_unit_test(test_dead_tap_is_freed),
        cmocka_unit_test(test_tap_errors),
    };
    return cmocka_run_group_tests(tests, NULL, th_cleanup);
}
