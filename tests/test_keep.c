/*
 * test_keep: shmbus_leave_keep(), leaving a bus while keeping the mailbox for the next client
 * of the same id (what `shmbus recv | head -1` relies on to lose nothing it did not print).
 *
 * What a user relies on: the kept messages reach the next client of that id exactly once, in
 * order and by priority, a peeked message included; meanwhile the id is free (senders get
 * -EHOSTUNREACH) and shmbus_list() shows the kept mailbox; an ACK sender waiting for a kept
 * message is released by the next client; a plain shmbus_leave() and a crash still discard
 * the mailbox; a join under another name does not inherit someone else's messages; and a
 * scribbled kept_gen makes nothing crash or deliver what was not sent to the id.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "shmbus.h"
#include "../src/internal.h" /* to scribble over the registry like a hostile peer */

/* Client id as shmbus_list() reports it; 0 if it is not listed. */
static int listed(shmbus_bus *b, uint32_t id, struct shmbus_client_info *out)
{
    struct shmbus_client_info ci[16];
    int n = shmbus_list(b, ci, 16);
    assert_true(n >= 0 && n <= 16);
    for (int i = 0; i < n; i++)
        if (ci[i].id == id) {
            *out = ci[i];
            return 1;
        }
    return 0;
}

static void send_str(shmbus_client *c, uint32_t dst, const char *s, unsigned prio)
{
    assert_int_equal(shmbus_send(c, dst, s, strlen(s), SHMBUS_PRIO(prio), 0), 0);
}

/* Receive the next message without waiting and check it is `want`. */
static void expect_msg(shmbus_client *c, const char *want)
{
    char buf[64];
    struct shmbus_msg m;
    int n = shmbus_recv(c, &m, buf, sizeof(buf), 0);
    if (n < 0)
        fail_msg("expected '%s', got %s", want, shmbus_strerror(n));
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

static void expect_empty(shmbus_client *c)
{
    char buf[64];
    assert_int_equal(shmbus_recv(c, NULL, buf, sizeof(buf), 0), -EAGAIN);
}

/* Kept messages reach the next client of the id once each, by priority then in order; a
 * second hand-over (keep, take over, keep again) loses nothing either. */
static void test_keep_hands_over(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("keep", 4, 16, 64);
    shmbus_client *a, *r;
    struct shmbus_client_info ci;
    struct shmbus_msg m;
    char buf[64];
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, "reader", &r), 0);

    send_str(a, 2, "m1", 0);
    send_str(a, 2, "m2", 0);
    send_str(a, 2, "m3", 0);
    expect_msg(r, "m1");
    send_str(a, 2, "m4", 0);
    send_str(a, 2, "hi", 2);
    send_str(a, 2, "m5", 0);
    /* Peeked, not consumed: it is kept like the others. */
    assert_int_equal(shmbus_peek(r, &m, buf, sizeof(buf), 0), 2);
    assert_memory_equal(buf, "hi", 2);
    assert_int_equal(shmbus_leave_keep(r), 0);

    /* The id is free meanwhile, and listed as kept with its messages. */
    assert_int_equal(shmbus_send(a, 2, "x", 1, 0, 0), -EHOSTUNREACH);
    assert_int_equal(shmbus_lookup(b, "reader"), -EHOSTUNREACH);
    assert_true(listed(b, 2, &ci));
    assert_int_equal(ci.state, SHMBUS_CLIENT_KEPT);
    assert_int_equal(ci.depth, 5);
    assert_int_equal(ci.pid, 0);
    assert_int_equal(ci.counters.received, 1);
    assert_int_equal(ci.counters.dropped, 0);

    /* The next client of id 2: the priority message first, then the rest in order. */
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_true(listed(b, 2, &ci));
    assert_int_equal(ci.state, SHMBUS_CLIENT_LIVE);
    assert_int_equal(ci.depth, 5);
    expect_msg(r, "hi");
    expect_msg(r, "m2");
    /* New messages come after the kept ones. */
    send_str(a, 2, "m6", 0);
    expect_msg(r, "m3");

    /* Keep again after taking over: the next one gets the rest of both generations. */
    assert_int_equal(shmbus_leave_keep(r), 0);
    assert_true(listed(b, 2, &ci));
    assert_int_equal(ci.state, SHMBUS_CLIENT_KEPT);
    /* depth is tail - head: "hi", taken ahead of m4, still counts until head passes it. */
    assert_true(ci.depth >= 3);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    expect_msg(r, "m4");
    expect_msg(r, "m5");
    expect_msg(r, "m6");
    expect_empty(r);
    assert_true(listed(b, 2, &ci));
    assert_int_equal(ci.counters.dropped, 0);
    assert_int_equal(ci.counters.received, 3);

    /* And it is an ordinary client from then on. */
    send_str(a, 2, "m7", 0);
    expect_msg(r, "m7");
    assert_int_equal(shmbus_leave_keep(NULL), -EINVAL);
    shmbus_leave(a);
    shmbus_leave(r);
    th_close_bus(b);
}

/* A plain leave still discards the mailbox, and a kept one that is empty is not listed. */
static void test_plain_leave_drains(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("keepplain", 4, 16, 64);
    shmbus_client *a, *r;
    struct shmbus_client_info ci;
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    send_str(a, 2, "lost1", 0);
    send_str(a, 2, "lost2", 3);
    shmbus_leave(r);
    assert_false(listed(b, 2, &ci));
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    expect_empty(r);

    /* Kept with nothing in it: not listed; what arrives later is the next client's. */
    assert_int_equal(shmbus_leave_keep(r), 0);
    assert_false(listed(b, 2, &ci));
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    expect_empty(r);
    shmbus_leave(a);
    shmbus_leave(r);
    th_close_bus(b);
}

/* Joins with id 0: the same name takes its kept mailbox back; another name gets another id
 * while one is free, and takes a kept id (dropping what it kept) only when none is. */
static void test_keep_by_name(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("keepname", 3, 16, 64);
    shmbus_client *a, *w, *x, *y;
    struct shmbus_client_info ci;
    assert_int_equal(shmbus_join(b, 3, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 0, "worker", &w), 0);
    assert_int_equal(shmbus_client_id(w), 1);
    send_str(a, 1, "for-worker", 0);
    assert_int_equal(shmbus_leave_keep(w), 0);

    assert_int_equal(shmbus_join(b, 0, "other", &x), 0);
    assert_int_equal(shmbus_client_id(x), 2); /* not the kept id 1 */
    expect_empty(x);
    assert_int_equal(shmbus_join(b, 0, "worker", &w), 0);
    assert_int_equal(shmbus_client_id(w), 1);
    expect_msg(w, "for-worker");

    /* Only a kept id left: a stranger takes it, and the kept message is dropped, counted. */
    send_str(a, 1, "stale", 0);
    assert_int_equal(shmbus_leave_keep(w), 0);
    assert_int_equal(shmbus_join(b, 0, "stranger", &y), 0);
    assert_int_equal(shmbus_client_id(y), 1);
    expect_empty(y);
    assert_true(listed(b, 1, &ci));
    assert_int_equal(ci.counters.dropped, 1);
    shmbus_leave(a);
    shmbus_leave(x);
    shmbus_leave(y);
    th_close_bus(b);
}

/* Read one int from fd within ms; 1 if one came. */
static int result_within(int fd, int ms, int *r)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return 0;
    return read(fd, r, sizeof(*r)) == (ssize_t)sizeof(*r);
}

struct child {
    const char *bus;
    int fd;
};

/* Sends one message with SHMBUS_SEND_ACK to client 2 and reports the result. */
static int ack_sender_main(void *arg)
{
    struct child *k = arg;
    shmbus_bus *b;
    shmbus_client *c;
    if (shmbus_bus_open(k->bus, NULL, 0, &b) != 0 || shmbus_join(b, 3, NULL, &c) != 0)
        return 10;
    int r = shmbus_send(c, 2, "acked", 5, SHMBUS_SEND_ACK, 20000);
    if (write(k->fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
        return 11;
    shmbus_leave(c);
    shmbus_bus_close(b);
    return 0;
}

/* An ACK sender waiting for a kept message keeps waiting (across several of the library's
 * 250 ms checks) and is released when the next client of the id takes it. */
static void test_keep_ack_released_by_next(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("keepack", 4, 8, 64);
    shmbus_client *r;
    struct shmbus_msg m;
    char buf[64];
    int fds[2], res;
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    struct child k = {.bus = th_name("keepack"), .fd = fds[1]};
    pid_t pid = th_fork(ack_sender_main, &k);
    close(fds[1]);

    assert_int_equal(shmbus_peek(r, &m, buf, sizeof(buf), 10000), 5);
    assert_int_equal(shmbus_leave_keep(r), 0);
    assert_false(result_within(fds[0], 800, &res)); /* still waiting, not failed */

    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 5000), 5);
    assert_memory_equal(buf, "acked", 5);
    assert_true(result_within(fds[0], 10000, &res));
    assert_int_equal(res, 0);
    assert_int_equal(th_wait(pid, 15000), 0);
    close(fds[0]);
    shmbus_leave(r);
    th_close_bus(b);
}

/* Joins id 2, says so, and waits to be killed. */
static int joiner_main(void *arg)
{
    struct child *k = arg;
    shmbus_bus *b;
    shmbus_client *c;
    if (shmbus_bus_open(k->bus, NULL, 0, &b) != 0 || shmbus_join(b, 2, NULL, &c) != 0)
        return 10;
    int ok = 1;
    if (write(k->fd, &ok, sizeof(ok)) != (ssize_t)sizeof(ok))
        return 11;
    for (;;)
        pause();
}

/* Keeping is opt-in: a client killed with messages in its mailbox, even one that took over
 * a kept mailbox, is cleaned up and its mailbox drained (counted as dropped). */
static void test_crash_still_drains(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("keepcrash", 4, 16, 64);
    shmbus_client *a, *r;
    struct shmbus_client_info ci;
    int fds[2], ok;
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    send_str(a, 2, "kept1", 0);
    assert_int_equal(shmbus_leave_keep(r), 0);

    assert_int_equal(pipe(fds), 0);
    struct child k = {.bus = th_name("keepcrash"), .fd = fds[1]};
    pid_t pid = th_fork(joiner_main, &k);
    close(fds[1]);
    assert_true(result_within(fds[0], 10000, &ok));
    send_str(a, 2, "own1", 0);
    assert_true(listed(b, 2, &ci));
    assert_int_equal(ci.state, SHMBUS_CLIENT_LIVE);
    assert_int_equal(ci.depth, 2);
    kill(pid, SIGKILL);
    assert_int_equal(th_wait(pid, 10000), 128 + SIGKILL);
    close(fds[0]);

    assert_int_equal(shmbus_reap(b), 1);
    assert_false(listed(b, 2, &ci)); /* drained, not kept */
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    expect_empty(r);
    shmbus_leave(a);
    shmbus_leave(r);
    th_close_bus(b);
}

/* A hostile peer scribbles over kept_gen (and a kept slot's dst_gen): nothing crashes, no
 * message reaches a client that was not sent to the id, the rest still arrive in order. */
static void test_scribbled_kept_gen(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("keepbad", 4, 16, 64);
    shmbus_client *a, *r;
    struct shmbus_client_info ci;
    struct sb_entry *e = sb__entry(b, 2);
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);

    /* After a plain leave: whatever kept_gen says, the drained mailbox stays empty. */
    static const uint32_t junk[] = {0xffffffffu, 0x1000000u, 12345u, 0u, 1u};
    for (unsigned i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
        send_str(a, 2, "gone", 0);
        shmbus_leave(r);
        uint64_t s = atomic_load(&e->state);
        atomic_store(&e->kept_gen, junk[i] == 1u ? SB_ST_GEN(s) : junk[i]);
        (void)listed(b, 2, &ci); /* lists or not, never crashes */
        assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
        expect_empty(r);
        shmbus_leave(r);
    }

    /* Kept, then kept_gen scribbled: the next client does not take over; the messages are a
     * previous owner's, dropped and counted. */
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    send_str(a, 2, "k1", 0);
    send_str(a, 2, "k2", 1);
    assert_int_equal(shmbus_leave_keep(r), 0);
    atomic_store(&e->kept_gen, 0xdeadbeefu);
    assert_false(listed(b, 2, &ci));
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    expect_empty(r);
    assert_true(listed(b, 2, &ci));
    assert_int_equal(ci.counters.dropped, 2);

    /* Kept, and one kept record's dst_gen scribbled: that one is dropped, the others
     * arrive. Each takes one unit of the ring, from the head the leaver published. */
    send_str(a, 2, "s1", 0);
    send_str(a, 2, "s2", 0);
    send_str(a, 2, "s3", 0);
    struct sb_mbox *mb = sb__mbox(b, 2);
    assert_int_equal(shmbus_leave_keep(r), 0);
    uint64_t h = atomic_load(&mb->head);
    sb__unit(b, mb, h + 1)->dst_gen ^= 0x5a5a5au;
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    expect_msg(r, "s1");
    expect_msg(r, "s3");
    expect_empty(r);
    shmbus_leave(a);
    shmbus_leave(r);
    th_close_bus(b);
}

int main(void)
{
    th_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_hands_over),    cmocka_unit_test(test_plain_leave_drains),
        cmocka_unit_test(test_keep_by_name),       cmocka_unit_test(test_keep_ack_released_by_next),
        cmocka_unit_test(test_crash_still_drains), cmocka_unit_test(test_scribbled_kept_gen),
    };
    return cmocka_run_group_tests(tests, NULL, th_cleanup);
}
