/*
 * test_peek: shmbus_peek() and shmbus_consume(), the pair a program uses to take a message
 * only after it handed it on (shmbus recv writes, then consumes).
 *
 * What a user relies on: a peeked message is still in the mailbox (depth, `received`, a
 * second peek and a later shmbus_recv() all see it); consume takes exactly the peeked
 * message, even when one of higher priority arrived in between; an ACK sender is released
 * by the consume, not by the peek; and a scribbled slot or seq word makes the pair fail,
 * never crash.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <unistd.h>

#include "helpers.h"
#include "shmbus.h"
#include "../src/internal.h" /* to scribble over a slot like a hostile peer */

/* Depth and `received` of client id, as shmbus stat shows them. */
static void client_counts(shmbus_bus *b, uint32_t id, uint32_t *depth, uint64_t *received)
{
    struct shmbus_client_info ci[8];
    int n = shmbus_list(b, ci, 8);
    assert_true(n > 0 && n <= 8);
    for (int i = 0; i < n; i++)
        if (ci[i].id == id) {
            *depth = ci[i].depth;
            *received = ci[i].counters.received;
            return;
        }
    fail_msg("client %u not listed", id);
}

static void test_peek_leaves_message(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("peek", 4, 8, 64);
    shmbus_client *a, *r;
    struct shmbus_msg m;
    char buf[64];
    uint32_t depth;
    uint64_t received;
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);

    assert_int_equal(shmbus_consume(r), -ENOMSG); /* nothing peeked yet */
    assert_int_equal(shmbus_peek(r, &m, buf, sizeof(buf), 0), -EAGAIN);
    assert_int_equal(shmbus_send(a, 2, "one", 3, 0, 0), 0);
    assert_int_equal(shmbus_send(a, 2, "two", 3, 0, 0), 0);

    /* Peeked twice: the same message both times, and still in the mailbox. */
    for (int k = 0; k < 2; k++) {
        memset(buf, 0, sizeof(buf));
        assert_int_equal(shmbus_peek(r, &m, buf, sizeof(buf), 0), 3);
        assert_memory_equal(buf, "one", 3);
        assert_int_equal(m.seq, 1);
        assert_int_equal(m.src, 1);
    }
    client_counts(b, 2, &depth, &received);
    assert_int_equal(depth, 2);
    assert_int_equal(received, 0);

    /* Consume takes exactly it; the next peek sees the second. */
    assert_int_equal(shmbus_consume(r), 0);
    assert_int_equal(shmbus_consume(r), -ENOMSG); /* once per peek */
    client_counts(b, 2, &depth, &received);
    assert_int_equal(depth, 1);
    assert_int_equal(received, 1);
    assert_int_equal(shmbus_peek(r, &m, buf, sizeof(buf), 0), 3);
    assert_memory_equal(buf, "two", 3);

    /* A recv after a peek takes the peeked message; the stale peek cannot take another. */
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), 3);
    assert_int_equal(m.seq, 2);
    assert_int_equal(shmbus_send(a, 2, "three", 5, 0, 0), 0);
    assert_int_equal(shmbus_consume(r), -ENOMSG);
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), 5);
    assert_int_equal(m.seq, 3);

    /* Too small a buffer: -EMSGSIZE with the length, and nothing to consume. */
    assert_int_equal(shmbus_send(a, 2, "four!", 5, 0, 0), 0);
    assert_int_equal(shmbus_peek(r, &m, buf, 2, 0), -EMSGSIZE);
    assert_int_equal(m.len, 5);
    assert_int_equal(shmbus_consume(r), -ENOMSG);
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), 5);

    assert_int_equal(shmbus_peek(NULL, &m, buf, sizeof(buf), 0), -EINVAL);
    assert_int_equal(shmbus_peek(r, &m, NULL, 4, 0), -EINVAL);
    assert_int_equal(shmbus_consume(NULL), -EINVAL);
    shmbus_leave(a);
    shmbus_leave(r);
    th_close_bus(b);
}

static void test_peek_waits(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("peekwait", 4, 8, 64);
    shmbus_client *r;
    char buf[64];
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    uint64_t t0 = th_now_ns();
    assert_int_equal(shmbus_peek(r, NULL, buf, sizeof(buf), 100), -ETIMEDOUT);
    uint64_t waited = th_now_ns() - t0;
    assert_true(waited >= 90000000ull && waited < 1100000000ull);
    shmbus_leave(r);
    th_close_bus(b);
}

/* Consume takes the message that was peeked, not the best one at the time of the consume. */
static void test_consume_is_the_peeked_one(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("peekprio", 4, 8, 64);
    shmbus_client *a, *r;
    struct shmbus_msg m;
    char buf[64];
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_int_equal(shmbus_send(a, 2, "low", 3, 0, 0), 0);
    assert_int_equal(shmbus_peek(r, &m, buf, sizeof(buf), 0), 3);
    assert_int_equal(m.prio, 0);
    assert_int_equal(shmbus_send(a, 2, "HIGH", 4, SHMBUS_PRIO(5), 0), 0);
    assert_int_equal(shmbus_consume(r), 0); /* takes "low" */
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), 4);
    assert_memory_equal(buf, "HIGH", 4);
    assert_int_equal(m.prio, 5);
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), -EAGAIN);

    /* A peek sees the highest priority first, like recv; a later peek of a higher one
     * replaces it. */
    assert_int_equal(shmbus_send(a, 2, "a", 1, 0, 0), 0);
    assert_int_equal(shmbus_send(a, 2, "b", 1, SHMBUS_PRIO(3), 0), 0);
    assert_int_equal(shmbus_peek(r, &m, buf, sizeof(buf), 0), 1);
    assert_int_equal(buf[0], 'b');
    assert_int_equal(shmbus_send(a, 2, "c", 1, SHMBUS_PRIO(7), 0), 0);
    assert_int_equal(shmbus_peek(r, &m, buf, sizeof(buf), 0), 1);
    assert_int_equal(buf[0], 'c');
    assert_int_equal(shmbus_consume(r), 0);
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), 1);
    assert_int_equal(buf[0], 'b');
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), 1);
    assert_int_equal(buf[0], 'a');
    shmbus_leave(a);
    shmbus_leave(r);
    th_close_bus(b);
}

/* A full mailbox stays full while its head is only peeked; the consume makes room. */
static void test_peek_keeps_backpressure(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("peekfull", 4, 2, 64);
    shmbus_client *a, *r;
    char buf[64], big[64];
    memset(big, 'x', sizeof(big));
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    /* The ring holds two messages of the bus's largest size. */
    assert_int_equal(shmbus_send(a, 2, big, sizeof(big), 0, 0), 0);
    assert_int_equal(shmbus_send(a, 2, big, sizeof(big), 0, 0), 0);
    assert_int_equal(shmbus_peek(r, NULL, buf, sizeof(buf), 0), 64);
    assert_int_equal(shmbus_send(a, 2, big, sizeof(big), SHMBUS_SEND_NONBLOCK, 0), -EAGAIN);
    assert_int_equal(shmbus_consume(r), 0);
    assert_int_equal(shmbus_send(a, 2, big, sizeof(big), SHMBUS_SEND_NONBLOCK, 0), 0);
    shmbus_leave(a);
    shmbus_leave(r);
    th_close_bus(b);
}

/* The ACK sender is released by the consume, never by the peek. The child reports each
 * send's result through a pipe. */
struct acker {
    const char *bus;
    int fd;
};

static int ack_sender_main(void *arg)
{
    struct acker *k = arg;
    shmbus_bus *b;
    shmbus_client *c;
    if (shmbus_bus_open(k->bus, NULL, 0, &b) != 0 || shmbus_join(b, 3, NULL, &c) != 0)
        return 10;
    int r = shmbus_send(c, 2, "first", 5, SHMBUS_SEND_ACK, 300);
    if (write(k->fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
        return 11;
    r = shmbus_send(c, 2, "second", 6, SHMBUS_SEND_ACK, 10000);
    if (write(k->fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
        return 11;
    shmbus_leave(c);
    shmbus_bus_close(b);
    return 0;
}

/* Read the child's next result within ms; 1 if one came. */
static int result_within(int fd, int ms, int *r)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return 0;
    return read(fd, r, sizeof(*r)) == (ssize_t)sizeof(*r);
}

static void test_ack_on_consume(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("peekack", 4, 8, 64);
    shmbus_client *r;
    struct shmbus_msg m;
    char buf[64];
    int fds[2], res;
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    struct acker k = {.bus = th_name("peekack"), .fd = fds[1]};
    pid_t pid = th_fork(ack_sender_main, &k);
    close(fds[1]);

    /* Peeked, not consumed: the sender's 300 ms ACK wait runs out. */
    assert_int_equal(shmbus_peek(r, &m, buf, sizeof(buf), 5000), 5);
    assert_true(m.flags & SHMBUS_MSG_ACK);
    assert_true(result_within(fds[0], 10000, &res));
    assert_int_equal(res, -ETIMEDOUT);
    assert_int_equal(shmbus_consume(r), 0);

    /* The second: still waiting while peeked, released by the consume. */
    assert_int_equal(shmbus_peek(r, &m, buf, sizeof(buf), 5000), 6);
    assert_memory_equal(buf, "second", 6);
    assert_false(result_within(fds[0], 200, &res));
    assert_int_equal(shmbus_consume(r), 0);
    assert_true(result_within(fds[0], 10000, &res));
    assert_int_equal(res, 0);
    assert_int_equal(th_wait(pid, 15000), 0);
    close(fds[0]);
    shmbus_leave(r);
    th_close_bus(b);
}

/* A hostile peer scribbles over the peeked record: consume refuses, nothing crashes. */
static void test_scribbled(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("peekbad", 4, 8, 64);
    shmbus_client *a, *r;
    struct shmbus_msg m;
    char buf[64];
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_int_equal(shmbus_send(a, 2, "one", 3, 0, 0), 0);
    assert_int_equal(shmbus_peek(r, &m, buf, sizeof(buf), 0), 3);
    struct sb_mbox *mb = sb__mbox(b, 2);
    struct sb_rec *rec = sb__unit(b, mb, 0);
    uint64_t hw = atomic_load(&rec->hw);
    atomic_store(&rec->hw, hw ^ (1ull << 24)); /* READY, but of another lap */
    assert_int_equal(shmbus_consume(r), -ENOMSG);
    atomic_store(&rec->hw, hw);
    rec->len = 1u << 30; /* a length past msg_size: dropped, never copied */
    assert_int_equal(shmbus_peek(r, &m, buf, sizeof(buf), 0), -EAGAIN);
    assert_int_equal(shmbus_consume(r), -ENOMSG);
    /* Garbage head: the consumer never reads it back (it keeps its position privately), so
     * the peek fails or finds nothing, never reads out of the mailbox. */
    atomic_store(&mb->head, 0xdeadbeefcafeull);
    int rc = shmbus_peek(r, &m, buf, sizeof(buf), 0);
    assert_true(rc == -EAGAIN || rc >= 0);
    shmbus_leave(a);
    shmbus_leave(r);
    th_close_bus(b);
}

int main(void)
{
    th_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peek_leaves_message),
        cmocka_unit_test(test_peek_waits),
        cmocka_unit_test(test_consume_is_the_peeked_one),
        cmocka_unit_test(test_peek_keeps_backpressure),
        cmocka_unit_test(test_ack_on_consume),
        cmocka_unit_test(test_scribbled),
    };
    return cmocka_run_group_tests(tests, NULL, th_cleanup);
}
