/*
 * test_loan: zero-copy loans. A sender writes a message in place in the receiver's mailbox
 * (shmbus_loan, then commit or cancel); a receiver reads one in place (shmbus_recv_ref, then
 * shmbus_recv_release). What a user relies on: the bytes are not copied, nothing is lost or
 * duplicated, a held message keeps its bytes, and a process killed holding a loan, on
 * either side, does not wedge the mailbox.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "shmbus.h"

/* The payload of a loan is the very memory the receiver reads: same process, same mapping,
 * so the two pointers are equal. */
static void test_loan_in_place(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("loan", 4, 8, 4096);
    shmbus_client *a, *r;
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    struct shmbus_loan l;
    assert_int_equal(shmbus_loan(a, 2, 4096, SHMBUS_PRIO(3), 1000, &l), 0);
    assert_non_null(l.data);
    assert_int_equal(l.cap, 4096);
    memset(l.data, 'z', 4096);
    memcpy(l.data, "hello", 5);
    /* Not delivered before the commit. */
    struct shmbus_msg m;
    const void *p;
    assert_int_equal(shmbus_recv_ref(r, &m, &p, 0), -EAGAIN);
    assert_int_equal(shmbus_loan_commit(a, &l, 3000), 0);
    assert_int_equal(shmbus_loan_commit(a, &l, 10), -EINVAL); /* a loan is over once used */
    assert_int_equal(shmbus_recv_ref(r, &m, &p, 1000), 3000);
    assert_int_equal(m.src, 1);
    assert_int_equal(m.prio, 3);
    assert_int_equal(m.seq, 1);
    assert_memory_equal(p, "hellozzz", 8);
    struct shmbus_client_info ci[2];
    assert_int_equal(shmbus_list(b, ci, 2), 2);
    assert_int_equal(ci[0].counters.sent, 1);
    assert_int_equal(ci[1].counters.received, 1);
    assert_int_equal(shmbus_recv_release(r, p), 0);
    assert_int_equal(shmbus_recv_release(r, p), -EINVAL);

    /* Zero copy, both ways: the address loan gave is the one recv_ref gives. */
    assert_int_equal(shmbus_loan(a, 2, 100, 0, 1000, &l), 0);
    void *at = l.data;
    memcpy(at, "in place", 8);
    assert_int_equal(shmbus_loan_commit(a, &l, 8), 0);
    assert_int_equal(shmbus_recv_ref(r, &m, &p, 1000), 8);
    assert_ptr_equal(p, at);
    assert_int_equal(shmbus_recv_release(r, p), 0);

    /* A plain recv gets a loaned message as any other. */
    assert_int_equal(shmbus_loan(a, 2, 10, 0, 1000, &l), 0);
    memcpy(l.data, "copy", 4);
    assert_int_equal(shmbus_loan_commit(a, &l, 4), 0);
    char buf[16];
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 1000), 4);
    assert_memory_equal(buf, "copy", 4);

    /* At most 16 held at once; each release makes room for one more. */
    const void *held[16];
    for (int i = 0; i < 17; i++)
        assert_int_equal(shmbus_send(a, 2, "s", 1, 0, 0), 0);
    for (int i = 0; i < 16; i++)
        assert_int_equal(shmbus_recv_ref(r, &m, &held[i], 0), 1);
    assert_int_equal(shmbus_recv_ref(r, &m, &p, 0), -EBUSY);
    assert_int_equal(shmbus_recv_release(r, held[7]), 0);
    assert_int_equal(shmbus_recv_ref(r, &m, &p, 0), 1);
    assert_int_equal(m.seq, 20);
    shmbus_leave(a);
    shmbus_leave(r);
    th_close_bus(b);
}

/* Cancel gives the room back and delivers nothing; messages behind it flow; bad calls fail. */
static void test_loan_cancel_and_errors(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("loanc", 4, 4, 64);
    shmbus_client *a, *r;
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    struct shmbus_loan l, more[4];
    assert_int_equal(shmbus_loan(a, 2, 65, 0, 0, &l), -EMSGSIZE);
    assert_int_equal(shmbus_loan(a, 2, 8, SHMBUS_PRIO(8), 0, &l), -EINVAL);
    assert_int_equal(shmbus_loan(a, 2, 8, SHMBUS_SEND_ACK, 0, &l), -EINVAL);
    assert_int_equal(shmbus_loan(a, 3, 8, 0, 0, &l), -EHOSTUNREACH);
    assert_int_equal(shmbus_loan(a, 2, 8, 0, 0, &l), 0);
    /* A message sent after the loan waits behind it. */
    assert_int_equal(shmbus_send(a, 2, "after", 5, 0, 0), 0);
    char buf[64];
    struct shmbus_msg m;
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), -EAGAIN);
    assert_int_equal(shmbus_loan_commit(r, &l, 1), -EINVAL); /* not r's loan */
    assert_int_equal(shmbus_loan_cancel(a, &l), 0);
    assert_int_equal(shmbus_loan_cancel(a, &l), -EINVAL);
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 1000), 5);
    assert_memory_equal(buf, "after", 5);
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), -EAGAIN);

    /* At most SHMBUS_INTENTS loans at once per client: the next fails, never waits. */
    for (int i = 0; i < SHMBUS_INTENTS; i++)
        assert_int_equal(shmbus_loan(a, 1, 1, 0, 0, &more[i]), 0);
    assert_int_equal(shmbus_loan(a, 1, 1, 0, 0, &l), -EBUSY);
    for (int i = 0; i < SHMBUS_INTENTS; i++)
        assert_int_equal(shmbus_loan_cancel(a, &more[i]), 0);
    /* A full mailbox: -EAGAIN with NONBLOCK, -ETIMEDOUT after the timeout. */
    assert_int_equal(shmbus_send(a, 2, buf, 64, 0, 0), 0);
    assert_int_equal(shmbus_send(a, 2, buf, 64, 0, 0), 0);
    assert_int_equal(shmbus_send(a, 2, buf, 64, 0, 0), 0);
    assert_int_equal(shmbus_send(a, 2, buf, 64, 0, 0), 0);
    assert_int_equal(shmbus_loan(a, 2, 64, SHMBUS_SEND_NONBLOCK, 1000, &l), -EAGAIN);
    assert_int_equal(shmbus_loan(a, 2, 64, 0, 20, &l), -ETIMEDOUT);
    shmbus_leave(a);
    shmbus_leave(r);
    th_close_bus(b);
}

/* A held message keeps its bytes while the ring goes round behind it; releasing it gives
 * its room back. At most 16 held. */
static void test_ref_holds_bytes(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("loanh", 4, 4, 64); /* 8 units: four 64-byte messages */
    shmbus_client *a, *r;
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    char big[64], buf[64];
    memset(big, 'A', sizeof(big));
    assert_int_equal(shmbus_send(a, 2, big, sizeof(big), 0, 0), 0);
    struct shmbus_msg m;
    const void *p;
    assert_int_equal(shmbus_recv_ref(r, &m, &p, 0), 64);
    /* Three more fit behind it; taking them does not free the held one's room. */
    memset(big, 'B', sizeof(big));
    for (int i = 0; i < 3; i++)
        assert_int_equal(shmbus_send(a, 2, big, sizeof(big), 0, 0), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), 64);
    assert_int_equal(shmbus_send(a, 2, big, sizeof(big), SHMBUS_SEND_NONBLOCK, 0), -EAGAIN);
    memset(buf, 'A', sizeof(buf));
    assert_memory_equal(p, buf, 64);
    assert_int_equal(shmbus_recv_release(r, p), 0);
    assert_int_equal(shmbus_send(a, 2, big, sizeof(big), SHMBUS_SEND_NONBLOCK, 0), 0);
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), 64);
    shmbus_leave(a);
    shmbus_leave(r);
    th_close_bus(b);
}

/* ---- kill -9 of a loan holder ------------------------------------------------------------ */

struct holder {
    const char *bus;
    int fd;    /* tells the parent it holds its loan */
    bool recv; /* hold a receive loan (as client 2) rather than a send loan (as client 3) */
};

static int holder_main(void *arg)
{
    const struct holder *h = arg;
    shmbus_bus *b;
    shmbus_client *c;
    if (shmbus_bus_open(h->bus, NULL, 0, &b) != 0 || shmbus_join(b, h->recv ? 2 : 3, NULL, &c) != 0)
        return 10;
    if (h->recv) {
        struct shmbus_msg m;
        const void *p;
        if (shmbus_recv_ref(c, &m, &p, 5000) < 0)
            return 11;
    } else {
        struct shmbus_loan l;
        if (shmbus_loan(c, 2, 1000, 0, 5000, &l) != 0)
            return 11;
        memset(l.data, 'x', 500); /* half-written when it dies */
    }
    if (write(h->fd, "h", 1) != 1)
        return 12;
    for (;;)
        pause(); /* killed here */
}

static pid_t start_holder(struct holder *h)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    h->fd = fds[1];
    pid_t pid = th_fork(holder_main, h);
    close(fds[1]);
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    char ch;
    assert_int_equal(poll(&pfd, 1, 10000), 1);
    assert_int_equal(read(fds[0], &ch, 1), 1);
    close(fds[0]);
    return pid;
}

/* The sender dies holding a send loan: its claim is skipped, the messages behind it arrive
 * (within the receiver's 1 s recovery), and its half-written message never does. */
static void test_kill_send_loan_holder(void **state)
{
    (void)state;
    const char *name = th_name("loank");
    struct shmbus_bus_opts o = {.max_clients = 4, .slots = 8, .msg_size = 1024};
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &b), 0);
    shmbus_client *a, *r;
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    struct holder h = {.bus = name, .recv = false};
    pid_t pid = start_holder(&h);
    assert_int_equal(shmbus_send(a, 2, "behind", 6, 0, 1000), 0);
    char buf[1024];
    struct shmbus_msg m;
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), -EAGAIN); /* held up, alive */
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(th_wait(pid, 5000), 128 + SIGKILL);
    uint64_t t0 = th_now_ns();
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 3000), 6);
    assert_true(th_now_ns() - t0 < 2000000000ull);
    assert_memory_equal(buf, "behind", 6);
    assert_int_equal(m.src, 1);
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), -EAGAIN);
    struct shmbus_client_info ci[3];
    assert_true(shmbus_reap(b) >= 0); /* the blocked recv may have reaped it already */
    assert_int_equal(shmbus_list(b, ci, 3), 2);
    assert_int_equal(ci[1].counters.dropped, 1); /* the dead claim, counted */
    shmbus_leave(a);
    shmbus_leave(r);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

/* The receiver dies holding a receive loan: it is reaped, its mailbox drained, and the next
 * client of its id gets new messages; senders are never wedged. */
static void test_kill_recv_loan_holder(void **state)
{
    (void)state;
    const char *name = th_name("loanr");
    struct shmbus_bus_opts o = {.max_clients = 4, .slots = 4, .msg_size = 64};
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &b), 0);
    shmbus_client *a, *r;
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    struct holder h = {.bus = name, .recv = true};
    char big[64];
    memset(big, 'q', sizeof(big));
    /* The holder joins as 2 and waits for a message: poll until it is there to send to. */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    h.fd = fds[1];
    pid_t pid = th_fork(holder_main, &h);
    close(fds[1]);
    uint64_t deadline = th_now_ns() + 10000000000ull;
    int rc;
    while ((rc = shmbus_send(a, 2, big, sizeof(big), 0, 0)) == -EHOSTUNREACH)
        assert_true(th_now_ns() < deadline); /* polling for the join */
    assert_int_equal(rc, 0);
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    char ch;
    assert_int_equal(poll(&pfd, 1, 10000), 1);
    assert_int_equal(read(fds[0], &ch, 1), 1);
    close(fds[0]);
    /* It holds the first; the ring holds three more behind it. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(shmbus_send(a, 2, big, sizeof(big), 0, 0), 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(th_wait(pid, 5000), 128 + SIGKILL);
    assert_int_equal(shmbus_reap(b), 1);
    assert_int_equal(shmbus_send(a, 2, big, sizeof(big), 0, 0), -EHOSTUNREACH);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    /* The whole ring is free again: four messages of the largest size. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(shmbus_send(a, 2, big, sizeof(big), SHMBUS_SEND_NONBLOCK, 0), 0);
    struct shmbus_msg m;
    const void *p;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(shmbus_recv_ref(r, &m, &p, 0), 64);
        assert_memory_equal(p, big, 64);
    }
    assert_int_equal(shmbus_recv_ref(r, &m, &p, 0), -EAGAIN);
    shmbus_leave(a);
    shmbus_leave(r); /* leaving gives back what it holds */
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

int main(void)
{
    th_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loan_in_place),         cmocka_unit_test(test_loan_cancel_and_errors),
        cmocka_unit_test(test_ref_holds_bytes),       cmocka_unit_test(test_kill_send_loan_holder),
        cmocka_unit_test(test_kill_recv_loan_holder),
    };
    return cmocka_run_group_tests(tests, NULL, th_cleanup);
}
