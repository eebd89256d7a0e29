/*
 * test_lease: leader leases (shmbus_elect_lease(), shmbus_renew()). A leader that renews
 * keeps leading; one that stops renewing while alive (busy, or stopped with SIGSTOP) is
 * replaced with a higher epoch, and from then on its renewals, fenced sends and fence
 * checks are refused. A renewal that succeeded is never cut short by a takeover.
 *
 * Every wait polls a state with a deadline; every child is waited for with a timeout and
 * killed by pid if it overstays. Each test uses its own bus, removed even when it fails.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "shmbus.h"

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A leader that renews keeps leading; one that stops is replaced once the lease ends, and
 * is then fenced off everywhere. */
static void test_lease_renew_then_lapse(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("lease1", 4, 8, 64);
    shmbus_client *a, *c;
    assert_int_equal(shmbus_join(b, 0, "a", &a), 0);
    assert_int_equal(shmbus_join(b, 0, "c", &c), 0);

    assert_int_equal(shmbus_elect_lease(a, "chief", 0, 0), -EINVAL);
    assert_int_equal(shmbus_elect_lease(a, "chief", 86400001u, 0), -EINVAL);
    assert_int_equal(shmbus_elect_lease(a, "chief", 300, 0), 1);
    assert_int_equal(shmbus_elect_lease(a, "chief", 300, 0), 1); /* leads already */

    /* For three lease lengths, renew every 10 ms: c never gets in. */
    uint64_t until = th_now_ns() + 900000000ull;
    int looks = 0;
    while (th_now_ns() < until) {
        assert_int_equal(shmbus_renew(a, "chief", 1, 300), 0);
        assert_int_equal(shmbus_elect(c, "chief", 0), -EAGAIN);
        looks++;
        sleep_ms(10);
    }
    assert_true(looks > 10);
    uint32_t who;
    uint64_t ep;
    assert_int_equal(shmbus_leader(b, "chief", &who, &ep), 0);
    assert_int_equal(who, shmbus_client_id(a));
    assert_int_equal(ep, 1);

    /* a stops renewing: c takes over once the lease has ended, not before. */
    uint64_t t0 = th_now_ns();
    assert_int_equal(shmbus_renew(a, "chief", 1, 300), 0);
    assert_int_equal(shmbus_elect(c, "chief", 10000), 2);
    assert_true(th_now_ns() - t0 >= 299000000ull);
    assert_int_equal(shmbus_leader(b, "chief", &who, &ep), 0);
    assert_int_equal(who, shmbus_client_id(c));
    assert_int_equal(ep, 2);

    /* The deposed leader is refused everywhere. */
    assert_int_equal(shmbus_renew(a, "chief", 1, 300), -ESTALE);
    assert_int_equal(shmbus_fence_check(b, "chief", 1), -ESTALE);
    assert_int_equal(shmbus_send_fenced(a, shmbus_client_id(c), "chief", 1, "x", 1, 0, 0), -ESTALE);
    assert_int_equal(shmbus_elect(a, "chief", 0), -EAGAIN); /* c leads without a lease */

    /* The new leader had no lease: it keeps leading however long it waits. */
    sleep_ms(350);
    assert_int_equal(shmbus_elect(a, "chief", 0), -EAGAIN);
    /* ... until it takes one and lets it end. Renewing can also start a lease. */
    assert_int_equal(shmbus_renew(c, "chief", 2, 1), 0);
    assert_int_equal(shmbus_elect(a, "chief", 5000), 3);
    assert_int_equal(shmbus_renew(c, "chief", 2, 100), -ESTALE);

    /* lease_ms 0 ends the lease: the leader then leads until it resigns. */
    assert_int_equal(shmbus_elect_lease(a, "chief", 1, 0), 3);
    assert_int_equal(shmbus_renew(a, "chief", 3, 0), 0);
    sleep_ms(20);
    assert_int_equal(shmbus_elect(c, "chief", 0), -EAGAIN);

    /* Bad calls. */
    assert_int_equal(shmbus_renew(c, "chief", 3, 100), -EPERM);  /* not c's epoch */
    assert_int_equal(shmbus_renew(a, "chief", 4, 100), -EINVAL); /* never handed out */
    assert_int_equal(shmbus_renew(a, "chief", 0, 100), -EINVAL);
    assert_int_equal(shmbus_renew(a, "chief", 3, 86400001u), -EINVAL);
    assert_int_equal(shmbus_renew(NULL, "chief", 3, 100), -EINVAL);
    assert_int_equal(shmbus_renew(a, "no/such", 3, 100), -EINVAL);
    assert_int_equal(shmbus_renew(a, "nosuch", 1, 100), -ENOENT);
    assert_int_equal(shmbus_resign(a, "chief"), 0);
    assert_int_equal(shmbus_renew(a, "chief", 3, 100), -EPERM); /* resigned */

    shmbus_leave(a);
    shmbus_leave(c);
    th_close_bus(b);
}

/* ---- a stopped leader --------------------------------------------------------------- */

struct shared {
    _Atomic int phase;  /* child: 1 leads; parent: 2 continue; child: 3 told it was deposed */
    _Atomic int result; /* the child's last shmbus_renew() result */
};

struct child_arg {
    shmbus_bus *b;
    struct shared *sh;
    unsigned lease_ms;
};

static bool wait_phase(struct shared *sh, int want, int timeout_ms)
{
    uint64_t until = th_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (atomic_load(&sh->phase) < want) {
        if (th_now_ns() > until)
            return false;
        sleep_ms(1);
    }
    return true;
}

/* Lead with a lease, renew it until told to continue, then renew once more. */
static int leased_leader(void *p)
{
    struct child_arg *a = p;
    shmbus_client *c;
    if (shmbus_join(a->b, 0, "leader", &c) != 0)
        return 10;
    int ep = shmbus_elect_lease(c, "chief", a->lease_ms, 5000);
    if (ep != 1)
        return 11;
    atomic_store(&a->sh->phase, 1);
    int r = 0;
    /* Renew until told to continue. A SIGSTOP may land between the look at phase and the
     * renewal: that renewal then runs after SIGCONT, once deposed, and is the answer. */
    while (r == 0 && atomic_load(&a->sh->phase) < 2) {
        r = shmbus_renew(c, "chief", 1, a->lease_ms);
        if (r == 0)
            sleep_ms(5);
    }
    if (r == 0)
        r = shmbus_renew(c, "chief", 1, a->lease_ms);
    atomic_store(&a->sh->result, r);
    atomic_store(&a->sh->phase, 3);
    shmbus_leave(c);
    return 0;
}

/* Without a lease a stopped leader keeps leading (test_group); with one, it is replaced
 * once the lease ends, and when it runs again its renewal says it was deposed. */
static void test_stopped_leader_is_deposed(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("lease2", 4, 8, 64);
    struct shared *sh =
        mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    memset(sh, 0, sizeof(*sh));
    struct child_arg arg = {b, sh, 200};
    pid_t pid = th_fork(leased_leader, &arg);
    assert_true(wait_phase(sh, 1, 10000));
    assert_int_equal(kill(pid, SIGSTOP), 0);

    shmbus_client *c;
    assert_int_equal(shmbus_join(b, 0, "c", &c), 0);
    assert_int_equal(shmbus_elect(c, "chief", 10000), 2);
    uint32_t who;
    uint64_t ep;
    assert_int_equal(shmbus_leader(b, "chief", &who, &ep), 0);
    assert_int_equal(who, shmbus_client_id(c));

    int one = 1; /* 1 -> 2; a child deposed before we stopped it has set 3 already */
    atomic_compare_exchange_strong(&sh->phase, &one, 2);
    assert_int_equal(kill(pid, SIGCONT), 0);
    assert_int_equal(th_wait(pid, 10000), 0);
    assert_int_equal(atomic_load(&sh->phase), 3);
    assert_int_equal(atomic_load(&sh->result), -ESTALE);
    assert_int_equal(shmbus_fence_check(b, "chief", 1), -ESTALE);
    shmbus_leave(c);
    munmap(sh, sizeof(*sh));
    th_close_bus(b);
}

/* ---- renewal against takeover ----------------------------------------------------------- */

#define ROUNDS   150
#define LEASE_MS 3

struct race {
    _Atomic int round;                 /* the parent starts round r by storing r */
    _Atomic int led;                   /* the child leads round `led` */
    _Atomic uint64_t ok_start[ROUNDS]; /* start of the child's last successful renewal */
    _Atomic int stale[ROUNDS];         /* the child was told -ESTALE */
    _Atomic int bad[ROUNDS];           /* a renewal failed with anything else */
};

struct race_arg {
    shmbus_bus *b;
    struct race *r;
};

/* Each round: campaign (the parent resigned), then renew just about when the lease ends,
 * so renewals and the parent's takeovers meet, until told it was deposed. */
static int racing_leader(void *p)
{
    struct race_arg *a = p;
    shmbus_client *c;
    if (shmbus_join(a->b, 0, "racer", &c) != 0)
        return 10;
    for (int i = 0; i < ROUNDS; i++) {
        uint64_t until = th_now_ns() + 20000000000ull;
        while (atomic_load(&a->r->round) < i)
            if (th_now_ns() > until)
                return 11;
        int ep = shmbus_elect_lease(c, "chief", LEASE_MS, 10000);
        if (ep < 1)
            return 12;
        atomic_store(&a->r->led, i + 1);
        for (unsigned k = 0;; k++) {
            /* Sleep about one lease, sometimes a little less, sometimes a little more. */
            struct timespec ts = {0, (long)(LEASE_MS * 1000000 - 400000 + (k * 7919 % 800) * 1000)};
            nanosleep(&ts, NULL);
            uint64_t s = th_now_ns();
            int r = shmbus_renew(c, "chief", (uint64_t)ep, LEASE_MS);
            if (r == 0) {
                atomic_store(&a->r->ok_start[i], s);
                continue;
            }
            if (r == -ESTALE)
                atomic_store(&a->r->stale[i], 1);
            else
                atomic_store(&a->r->bad[i], r);
            break;
        }
    }
    shmbus_leave(c);
    return 0;
}

/* Never both: when a campaigner takes over, every renewal that succeeded had its lease end
 * by then (the takeover is no earlier than the start of the last successful renewal plus
 * the lease, less the millisecond the lease's end is rounded to). */
static void test_renewal_never_cut_short(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("lease3", 4, 8, 64);
    struct race *r =
        mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(r != MAP_FAILED);
    memset(r, 0, sizeof(*r));
    struct race_arg arg = {b, r};
    pid_t pid = th_fork(racing_leader, &arg);
    shmbus_client *c;
    assert_int_equal(shmbus_join(b, 0, "taker", &c), 0);
    uint64_t won_at[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        atomic_store(&r->round, i);
        uint64_t until = th_now_ns() + 20000000000ull;
        while (atomic_load(&r->led) < i + 1)
            assert_true(th_now_ns() < until);
        int ep;
        /* Look as often as we can: the takeover follows the lease's end closely. */
        while ((ep = shmbus_elect(c, "chief", 0)) == -EAGAIN)
            assert_true(th_now_ns() < until);
        assert_true(ep > 0);
        won_at[i] = th_now_ns();
        until = th_now_ns() + 20000000000ull;
        while (!atomic_load(&r->stale[i]) && !atomic_load(&r->bad[i]))
            assert_true(th_now_ns() < until);
        assert_int_equal(shmbus_resign(c, "chief"), 0);
    }
    atomic_store(&r->round, ROUNDS);
    assert_int_equal(th_wait(pid, 20000), 0);
    int renewed = 0;
    for (int i = 0; i < ROUNDS; i++) {
        assert_int_equal(r->bad[i], 0);
        assert_int_equal(r->stale[i], 1);
        uint64_t s = atomic_load(&r->ok_start[i]);
        if (s == 0)
            continue;
        renewed++;
        assert_true(won_at[i] + 1000000ull >= s + LEASE_MS * 1000000ull);
    }
    printf("# %d takeovers, %d after at least one renewal\n", ROUNDS, renewed);
    assert_true(renewed > 0);
    shmbus_leave(c);
    munmap(r, sizeof(*r));
    th_close_bus(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lease_renew_then_lapse),
        cmocka_unit_test(test_stopped_leader_is_deposed),
        cmocka_unit_test(test_renewal_never_cut_short),
    };
    th_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, th_cleanup);
}
