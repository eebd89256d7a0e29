/*
 * test_evfd: the event-loop descriptor (shmbus_client_fd, shmbus_client_arm).
 *
 * What a user relies on: poll on the descriptor wakes when another process sends; senders
 * write nothing while it is not armed (and one datagram per armed period); a message that
 * arrives between the last empty receive and the arm is not lost; a receiver killed with
 * SIGKILL while armed leaves no sender stuck, and the next client of its id gets a working
 * descriptor; leaving removes the socket file.
 */
#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "shmbus.h"
#include "../src/internal.h" /* to scribble over the armed flag like a hostile peer */

/* Datagrams queued on the descriptor now (read out: the test plays the kernel's count). */
static int queued(int fd)
{
    char b[16];
    int n = 0;
    while (recv(fd, b, sizeof(b), MSG_DONTWAIT) >= 0)
        n++;
    return n;
}

static bool readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    assert_true(r >= 0);
    return r == 1 && (p.revents & POLLIN);
}

static int drain(shmbus_client *c)
{
    char buf[64];
    int n = 0;
    while (shmbus_recv(c, NULL, buf, sizeof(buf), 0) >= 0)
        n++;
    return n;
}

static const char *bus_name;

static int sender_main(void *arg)
{
    int count = *(int *)arg;
    shmbus_bus *b;
    shmbus_client *c;
    if (shmbus_bus_open(bus_name, NULL, 0, &b) < 0 || shmbus_join(b, 1, NULL, &c) < 0)
        return 10;
    for (int k = 0; k < count; k++) {
        if (shmbus_send(c, 2, &k, sizeof(k), 0, 5000) < 0)
            return 11;
        if (k % 7 == 0)
            sched_yield(); /* let the receiver drain and re-arm in between */
    }
    shmbus_leave(c);
    shmbus_bus_close(b);
    return 0;
}

static void test_poll_wakes_on_other_process(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("evwake", 4, 16, 64);
    bus_name = th_name("evwake");
    shmbus_client *r;
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_int_equal(shmbus_client_arm(r), -EBADF); /* no descriptor yet */
    int fd = shmbus_client_fd(r);
    assert_true(fd >= 0);
    assert_int_equal(shmbus_client_fd(r), fd); /* the same one every time */
    assert_int_equal(shmbus_client_arm(r), 0);
    assert_false(readable(fd, 0));

    int one = 1;
    pid_t pid = th_fork(sender_main, &one);
    assert_true(readable(fd, 5000));
    int k = -1;
    assert_int_equal(shmbus_recv(r, NULL, &k, sizeof(k), 0), (int)sizeof(k));
    assert_int_equal(k, 0);
    assert_int_equal(th_wait(pid, 5000), 0);

    /* Leaving removes the socket file. */
    char path[512], dir[400];
    assert_true(shmbus_runtime_dir(dir, sizeof(dir)) > 0);
    snprintf(path, sizeof(path), "%s/%s.2.sock", dir, bus_name);
    assert_int_equal(access(path, F_OK), 0);
    shmbus_leave(r);
    assert_int_equal(access(path, F_OK), -1);
    th_close_bus(b);
}

static void test_no_write_unless_armed(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("evcount", 4, 64, 64);
    shmbus_client *s, *r;
    assert_int_equal(shmbus_join(b, 1, NULL, &s), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    int fd = shmbus_client_fd(r);
    assert_true(fd >= 0);

    /* Not armed: 20 sends, nothing written. */
    for (int k = 0; k < 20; k++)
        assert_int_equal(shmbus_send(s, 2, "x", 1, 0, 0), 0);
    assert_int_equal(queued(fd), 0);
    assert_int_equal(drain(r), 20);

    /* Armed: 20 sends (and a batch), exactly one datagram. */
    assert_int_equal(shmbus_client_arm(r), 0);
    for (int k = 0; k < 20; k++)
        assert_int_equal(shmbus_send(s, 2, "x", 1, 0, 0), 0);
    struct shmbus_iov iov[3] = {{"a", 1}, {"b", 1}, {"c", 1}};
    assert_int_equal(shmbus_send_batch(s, 2, iov, 3, 0, 0), 3);
    assert_int_equal(queued(fd), 1);
    assert_int_equal(drain(r), 23);

    /* Spent: the next sends write nothing until the next arm. */
    assert_int_equal(shmbus_send(s, 2, "x", 1, 0, 0), 0);
    assert_int_equal(queued(fd), 0);

    /* A peeked message survives an arm: consume still takes it. */
    char buf[8];
    assert_int_equal(shmbus_peek(r, NULL, buf, sizeof(buf), 0), 1);
    assert_int_equal(shmbus_client_arm(r), 1);
    assert_int_equal(shmbus_consume(r), 0);
    assert_int_equal(drain(r), 0);

    shmbus_leave(s);
    shmbus_leave(r);
    th_close_bus(b);
}

/* A message sent after the receiver's last empty look and before its arm: arm sees it and
 * makes the descriptor readable itself. */
static void test_message_between_check_and_arm(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("evrace", 4, 16, 64);
    shmbus_client *s, *r;
    assert_int_equal(shmbus_join(b, 1, NULL, &s), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    int fd = shmbus_client_fd(r);
    assert_int_equal(shmbus_client_arm(r), 0);
    assert_int_equal(shmbus_send(s, 2, "a", 1, 0, 0), 0);
    assert_true(readable(fd, 0));
    assert_int_equal(drain(r), 1);                        /* empty now: the loop's last look */
    assert_int_equal(shmbus_send(s, 2, "b", 1, 0, 0), 0); /* unarmed: no datagram */
    assert_int_equal(shmbus_client_arm(r), 1);            /* but arm sees it */
    assert_true(readable(fd, 0));
    assert_int_equal(drain(r), 1);
    shmbus_leave(s);
    shmbus_leave(r);
    th_close_bus(b);
}

/* The loop of the header's protocol against a sender in another process: every poll must
 * wake (a lost wake-up shows as a 5 s timeout), and every message arrives. */
static void test_event_loop_loses_nothing(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("evloop", 4, 8, 64);
    bus_name = th_name("evloop");
    shmbus_client *r;
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    int fd = shmbus_client_fd(r);
    assert_true(fd >= 0);
    int count = 5000;
    pid_t pid = th_fork(sender_main, &count);
    int next = 0, polls = 0;
    while (next < count) {
        if (shmbus_client_arm(r) == 0) {
            if (!readable(fd, 5000)) {
                kill(pid, SIGKILL);
                th_wait(pid, 5000);
                fail_msg("lost wake-up after %d of %d messages", next, count);
            }
            polls++;
        }
        int k;
        while (shmbus_recv(r, NULL, &k, sizeof(k), 0) == (int)sizeof(k)) {
            assert_int_equal(k, next);
            next++;
        }
    }
    assert_int_equal(th_wait(pid, 10000), 0);
    assert_true(polls > 0);
    shmbus_leave(r);
    th_close_bus(b);
}

static int armed_then_wait(void *arg)
{
    int wfd = *(int *)arg;
    shmbus_bus *b;
    shmbus_client *c;
    if (shmbus_bus_open(bus_name, NULL, 0, &b) < 0 || shmbus_join(b, 2, NULL, &c) < 0)
        return 10;
    if (shmbus_client_fd(c) < 0 || shmbus_client_arm(c) != 0)
        return 11;
    if (write(wfd, "k", 1) != 1)
        return 12;
    for (;;)
        pause(); /* killed by the test */
}

static void test_killed_receiver(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("evkill", 4, 4, 64);
    bus_name = th_name("evkill");
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = th_fork(armed_then_wait, &p[1]);
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    assert_int_equal(poll(&pf, 1, 5000), 1);
    char ch;
    assert_int_equal(read(p[0], &ch, 1), 1);
    kill(pid, SIGKILL);
    assert_int_equal(th_wait(pid, 5000), 128 + SIGKILL);
    close(p[0]);
    close(p[1]);

    /* Its descriptor was armed: the sender finds nobody to wake and goes on. Sends fill the
     * mailbox (4 slots), then time out or see the dead receiver: within the timeout + 1 s. */
    shmbus_client *s;
    assert_int_equal(shmbus_join(b, 1, NULL, &s), 0);
    uint64_t t0 = th_now_ns();
    for (int k = 0; k < 6; k++) {
        int r = shmbus_send(s, 2, "x", 1, 0, 200);
        assert_true(r == 0 || r == -ETIMEDOUT || r == -ECONNRESET || r == -EHOSTUNREACH);
    }
    assert_true(th_now_ns() - t0 < 6ull * 1200000000ull);

    /* The next client of id 2 replaces the stale socket and is woken as usual. */
    shmbus_reap(b);
    shmbus_client *r;
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    int fd = shmbus_client_fd(r);
    assert_true(fd >= 0);
    assert_int_equal(shmbus_client_arm(r), 0);
    assert_int_equal(shmbus_send(s, 2, "y", 1, 0, 0), 0);
    assert_true(readable(fd, 5000));
    assert_int_equal(drain(r), 1);
    shmbus_leave(s);
    shmbus_leave(r);
    th_close_bus(b);
}

/* A client killed while holding its socket leaves the file; destroying the bus removes it,
 * and leaves alone a look-alike that is not a socket. */
static void test_destroy_removes_stale_socket(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("evstale", 4, 4, 64);
    bus_name = th_name("evstale");
    char dir[400], path[512], other[512];
    assert_true(shmbus_runtime_dir(dir, sizeof(dir)) > 0);
    snprintf(path, sizeof(path), "%s/%s.2.sock", dir, bus_name);
    snprintf(other, sizeof(other), "%s/%s.3.sock", dir, bus_name);
    FILE *f = fopen(other, "w");
    assert_non_null(f);
    fclose(f);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = th_fork(armed_then_wait, &p[1]);
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    assert_int_equal(poll(&pf, 1, 5000), 1);
    kill(pid, SIGKILL);
    assert_int_equal(th_wait(pid, 5000), 128 + SIGKILL);
    close(p[0]);
    close(p[1]);
    assert_int_equal(access(path, F_OK), 0);
    th_close_bus(b);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(access(other, F_OK), 0);
    unlink(other);
}

/* A peer scribbles the armed flag: any value is "armed", costs one datagram, and neither
 * the send nor the receiver's next arm fails. */
static void test_scribbled_flag(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("evscrib", 4, 8, 64);
    shmbus_client *s, *r;
    assert_int_equal(shmbus_join(b, 1, NULL, &s), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    int fd = shmbus_client_fd(r);
    atomic_store(&sb__mbox(b, 2)->fd_armed, 0xdeadbeefu);
    assert_int_equal(shmbus_send(s, 2, "x", 1, 0, 0), 0);
    assert_int_equal(shmbus_send(s, 2, "x", 1, 0, 0), 0);
    assert_int_equal(queued(fd), 1);
    assert_int_equal(drain(r), 2);
    atomic_store(&sb__mbox(b, 2)->fd_armed, 0xffffffffu);
    assert_int_equal(shmbus_client_arm(r), 0);
    assert_int_equal(shmbus_send(s, 2, "x", 1, 0, 0), 0);
    assert_true(readable(fd, 5000));
    shmbus_leave(s);
    shmbus_leave(r);
    th_close_bus(b);
}

int main(void)
{
    th_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poll_wakes_on_other_process),
        cmocka_unit_test(test_no_write_unless_armed),
        cmocka_unit_test(test_message_between_check_and_arm),
        cmocka_unit_test(test_event_loop_loses_nothing),
        cmocka_unit_test(test_killed_receiver),
        cmocka_unit_test(test_destroy_removes_stale_socket),
        cmocka_unit_test(test_scribbled_flag),
    };
    return cmocka_run_group_tests(tests, NULL, th_cleanup);
}
