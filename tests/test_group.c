/*
 * test_group: named groups. The table (names, limits, membership that belongs to one join),
 * topics (every subscriber gets every message once, in publisher order, across processes;
 * subscribe/unsubscribe while publishing; a full subscriber makes the publisher wait and
 * the miss is counted; a lossy subscriber loses its oldest unread messages instead, each
 * counted, never a direct message; leaving or dying ends a subscription), leader election (epochs,
 * resign, a killed leader replaced, many kills, fencing) and work queues (load spread,
 * round robin, no member, dead members skipped).
 *
 * Children inherit the bus handle across fork (the segment stays attached) and join their
 * own clients. Every wait polls a state with a deadline; every child is waited for with a
 * timeout and killed by pid if it overstays.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
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

/* Poll fn(arg) until it is true or timeout_ms passes (1 ms between looks). */
static bool poll_until(bool (*fn)(void *), void *arg, int timeout_ms)
{
    uint64_t until = th_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (!fn(arg)) {
        if (th_now_ns() > until)
            return false;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return true;
}

/* The group called name in the list (or zeros). */
static struct shmbus_group_info group_of(shmbus_bus *b, const char *name)
{
    struct shmbus_group_info gi[SHMBUS_GROUPS], none;
    memset(&none, 0, sizeof(none));
    int n = shmbus_group_list(b, gi, SHMBUS_GROUPS);
    for (int i = 0; i < n && i < SHMBUS_GROUPS; i++)
        if (strcmp(gi[i].name, name) == 0)
            return gi[i];
    return none;
}

struct members_want {
    shmbus_bus *b;
    const char *name;
    uint32_t n;
};

static bool members_are(void *arg)
{
    struct members_want *w = arg;
    return group_of(w->b, w->name).members == w->n;
}

static void wait_members(shmbus_bus *b, const char *name, uint32_t n)
{
    struct members_want w = {b, name, n};
    assert_true(poll_until(members_are, &w, 10000));
}

/* ---- the table --------------------------------------------------------------------- */

static void test_group_names_and_limits(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("gnames", 4, 8, 64);
    shmbus_client *c;
    assert_int_equal(shmbus_join(b, 0, NULL, &c), 0);
    assert_int_equal(shmbus_subscribe(c, "bad/name", 0), -EINVAL);
    assert_int_equal(shmbus_subscribe(c, "", 0), -EINVAL);
    assert_int_equal(shmbus_subscribe(c, NULL, 0), -EINVAL);
    assert_int_equal(shmbus_subscribe(c, "ok", 0x4u), -EINVAL); /* unknown flag */
    assert_int_equal(shmbus_subscribe(NULL, "ok", 0), -EINVAL);
    assert_int_equal(shmbus_unsubscribe(c, "never"), -ENOENT);
    assert_int_equal(shmbus_group_list(b, NULL, 0), 0);
    assert_int_equal(shmbus_group_list(NULL, NULL, 0), -EINVAL);

    assert_int_equal(shmbus_subscribe(c, "news", 0), 0);
    assert_int_equal(shmbus_subscribe(c, "news", 0), 0); /* twice is fine */
    struct shmbus_group_info gi = group_of(b, "news");
    assert_string_equal(gi.name, "news");
    assert_int_equal(gi.members, 1);
    assert_int_equal(shmbus_unsubscribe(c, "news"), 0);
    assert_int_equal(shmbus_unsubscribe(c, "news"), -ENOENT);
    assert_int_equal(group_of(b, "news").members, 0);

    /* The table holds SHMBUS_GROUPS names, each found again, then -ENOSPC. */
    char nm[32];
    for (int i = 1; i < SHMBUS_GROUPS; i++) {
        snprintf(nm, sizeof(nm), "g%d", i);
        assert_int_equal(shmbus_subscribe(c, nm, 0), 0);
    }
    assert_int_equal(shmbus_group_list(b, NULL, 0), SHMBUS_GROUPS);
    assert_int_equal(shmbus_subscribe(c, "one-too-many", 0), -ENOSPC);
    for (int i = 1; i < SHMBUS_GROUPS; i++) {
        snprintf(nm, sizeof(nm), "g%d", i);
        assert_int_equal(group_of(b, nm).members, 1);
        assert_int_equal(shmbus_unsubscribe(c, nm), 0);
    }
    shmbus_leave(c);
    th_close_bus(b);
}

struct race_arg {
    shmbus_bus *b;
    int k;
};

static int subscribe_same(void *p)
{
    struct race_arg *a = p;
    shmbus_client *c;
    if (shmbus_join(a->b, 0, NULL, &c) != 0)
        return 1;
    if (shmbus_subscribe(c, "same", 0) != 0)
        return 2;
    shmbus_client_set_spin(c, 0);
    struct shmbus_msg h;
    char buf[64];
    /* Stay a member until told to go. */
    int r = shmbus_recv(c, &h, buf, sizeof(buf), 20000);
    shmbus_leave(c);
    return r == 4 ? 0 : 3;
}

/* Processes creating the same name at once end up in one group. */
static void test_group_create_race(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("grace", 8, 8, 64);
    struct race_arg a = {b, 0};
    pid_t pid[4];
    for (int i = 0; i < 4; i++)
        pid[i] = th_fork(subscribe_same, &a);
    wait_members(b, "same", 4);
    assert_int_equal(shmbus_group_list(b, NULL, 0), 1);
    shmbus_client *c;
    assert_int_equal(shmbus_join(b, 0, NULL, &c), 0);
    assert_int_equal(shmbus_publish(c, "same", "stop", 4, 0, 5000), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(th_wait(pid[i], 10000), 0);
    shmbus_leave(c);
    th_close_bus(b);
}

/* Membership belongs to one join of an id: the next client with that id is not a member. */
static void test_membership_is_per_join(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("gjoin", 4, 8, 64);
    shmbus_client *pub, *s;
    assert_int_equal(shmbus_join(b, 1, NULL, &pub), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &s), 0);
    assert_int_equal(shmbus_subscribe(s, "t", 0), 0);
    assert_int_equal(shmbus_publish(pub, "t", "a", 1, 0, 0), 1);
    shmbus_leave(s); /* leaving ends the subscription */
    assert_int_equal(group_of(b, "t").members, 0);
    assert_int_equal(shmbus_publish(pub, "t", "b", 1, 0, 0), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &s), 0);
    assert_int_equal(group_of(b, "t").members, 0);
    assert_int_equal(shmbus_publish(pub, "t", "c", 1, 0, 0), 0);
    char buf[8];
    assert_int_equal(shmbus_recv(s, NULL, buf, sizeof(buf), 0), -EAGAIN);
    shmbus_leave(s);
    shmbus_leave(pub);
    th_close_bus(b);
}

static int subscribe_and_wait(void *p)
{
    struct race_arg *a = p;
    shmbus_client *c;
    if (shmbus_join(a->b, 0, NULL, &c) != 0)
        return 1;
    if (shmbus_subscribe(c, "t", 0) != 0)
        return 2;
    for (;;)
        pause();
}

/* A subscriber killed with SIGKILL is no member any more, at once: nothing is sent to it. */
static void test_dead_subscriber_ignored(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("gdead", 4, 8, 64);
    struct race_arg a = {b, 0};
    pid_t pid = th_fork(subscribe_and_wait, &a);
    wait_members(b, "t", 1);
    shmbus_client *pub;
    assert_int_equal(shmbus_join(b, 0, NULL, &pub), 0);
    kill(pid, SIGKILL);
    assert_int_equal(th_wait(pid, 5000), 128 + SIGKILL);
    assert_int_equal(group_of(b, "t").members, 0);
    assert_int_equal(shmbus_publish(pub, "t", "x", 1, 0, 1000), 0);
    shmbus_leave(pub);
    th_close_bus(b);
}

/* ---- topics ------------------------------------------------------------------------ */

#define FAN_MSGS 300
#define FAN_SUBS 3
#define FAN_PUBS 2

struct fan_arg {
    shmbus_bus *b;
    int pub; /* publisher number */
};

/* A subscriber: every message of each publisher once, numbered 0.. in order. */
static int fan_sub(void *p)
{
    struct fan_arg *a = p;
    shmbus_client *c;
    if (shmbus_join(a->b, 0, NULL, &c) != 0)
        return 1;
    if (shmbus_subscribe(c, "fan", 0) != 0)
        return 2;
    int next[FAN_PUBS + 1] = {0};
    uint32_t srcs[FAN_PUBS + 1] = {0};
    for (int got = 0; got < FAN_MSGS * FAN_PUBS; got++) {
        struct shmbus_msg h;
        int v[2];
        int r = shmbus_recv(c, &h, v, sizeof(v), 20000);
        if (r != (int)sizeof(v))
            return 3;
        if (!(h.flags & SHMBUS_MSG_TOPIC))
            return 4;
        if (v[0] < 0 || v[0] >= FAN_PUBS)
            return 5;
        if (v[1] != next[v[0]]) /* each publisher's messages once, in order */
            return 6;
        if (srcs[v[0]] == 0)
            srcs[v[0]] = h.src;
        else if (srcs[v[0]] != h.src)
            return 7;
        next[v[0]]++;
    }
    struct shmbus_msg h;
    int v[2];
    int r = shmbus_recv(c, &h, v, sizeof(v), 200); /* nothing more: no duplicates */
    shmbus_leave(c);
    return r == -ETIMEDOUT ? 0 : 8;
}

static int fan_pub(void *p)
{
    struct fan_arg *a = p;
    shmbus_client *c;
    if (shmbus_join(a->b, 0, NULL, &c) != 0)
        return 1;
    for (int i = 0; i < FAN_MSGS; i++) {
        int v[2] = {a->pub, i};
        if (shmbus_publish(c, "fan", v, sizeof(v), 0, 20000) != FAN_SUBS)
            return 2;
    }
    shmbus_leave(c);
    return 0;
}

/* Every subscriber gets every message once, in each publisher's order, across processes;
 * small mailboxes make publishers wait for room (the default: nothing is dropped). */
static void test_publish_fanout_order(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("gfan", 8, 4, 64);
    struct fan_arg sa = {b, 0};
    pid_t subs[FAN_SUBS], pubs[FAN_PUBS];
    for (int i = 0; i < FAN_SUBS; i++)
        subs[i] = th_fork(fan_sub, &sa);
    wait_members(b, "fan", FAN_SUBS);
    struct fan_arg pa[FAN_PUBS];
    for (int i = 0; i < FAN_PUBS; i++) {
        pa[i] = (struct fan_arg){b, i};
        pubs[i] = th_fork(fan_pub, &pa[i]);
    }
    for (int i = 0; i < FAN_PUBS; i++)
        assert_int_equal(th_wait(pubs[i], 30000), 0);
    for (int i = 0; i < FAN_SUBS; i++)
        assert_int_equal(th_wait(subs[i], 30000), 0);
    struct shmbus_group_info gi = group_of(b, "fan");
    assert_int_equal(gi.published, (uint64_t)FAN_MSGS * FAN_PUBS * FAN_SUBS);
    assert_int_equal(gi.missed, 0);
    th_close_bus(b);
}

/* A full subscriber mailbox: the publisher waits within its timeout, the other subscriber
 * still gets its copy, and the miss is counted (never silent). */
static void test_publish_full_subscriber(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("gfull", 4, 4, 64);
    shmbus_client *pub, *slow, *fast;
    assert_int_equal(shmbus_join(b, 0, NULL, &pub), 0);
    assert_int_equal(shmbus_join(b, 0, NULL, &slow), 0);
    assert_int_equal(shmbus_join(b, 0, NULL, &fast), 0);
    assert_int_equal(shmbus_subscribe(slow, "t", 0), 0);
    assert_int_equal(shmbus_subscribe(fast, "t", 0), 0);
    char buf[64];
    int sent = 0;
    for (;;) {
        int r = shmbus_publish(pub, "t", "m", 1, SHMBUS_SEND_NONBLOCK, 0);
        assert_true(r == 2 || r == -EAGAIN);
        if (r == -EAGAIN)
            break;
        assert_int_equal(shmbus_recv(fast, NULL, buf, sizeof(buf), 0), 1);
        sent++;
        assert_true(sent < 10000);
    }
    assert_int_equal(shmbus_recv(fast, NULL, buf, sizeof(buf), 0), 1); /* fast got it */
    assert_int_equal(group_of(b, "t").missed, 1);
    uint64_t t0 = th_now_ns();
    assert_int_equal(shmbus_publish(pub, "t", "m", 1, 0, 200), -ETIMEDOUT);
    uint64_t took = th_now_ns() - t0;
    assert_true(took >= 190000000u && took < 1200000000u);
    assert_int_equal(shmbus_recv(fast, NULL, buf, sizeof(buf), 0), 1);
    assert_int_equal(group_of(b, "t").missed, 2);
    /* Room again: the publisher gets through to both. */
    assert_int_equal(shmbus_recv(slow, NULL, buf, sizeof(buf), 0), 1);
    assert_int_equal(shmbus_publish(pub, "t", "m", 1, 0, 1000), 2);
    /* Bad arguments. */
    assert_int_equal(shmbus_publish(pub, "t", "m", 1, SHMBUS_SEND_ACK, 0), -EINVAL);
    assert_int_equal(shmbus_publish(pub, "t", "m", 1, SHMBUS_PRIO(8), 0), -EINVAL);
    assert_int_equal(shmbus_publish(pub, "t", NULL, 1, 0, 0), -EINVAL);
    assert_int_equal(shmbus_publish(pub, "t/x", "m", 1, 0, 0), -EINVAL);
    assert_int_equal(shmbus_publish(pub, "t", buf, 65, 0, 0), -EMSGSIZE);
    assert_int_equal(shmbus_publish(pub, "nobody", "m", 1, 0, 0), 0);
    shmbus_leave(pub);
    shmbus_leave(slow);
    shmbus_leave(fast);
    th_close_bus(b);
}

/* ---- lossy subscribers ----------------------------------------------------------------- */

#define LOSSY_MSGS 5000 /* many rings' worth: the lossy mailbox fills and is shed */
#define LOSSY_PRE  10   /* phase 2: topic messages before the direct one */
#define LOSSY_STOP (-1) /* the last message: the non-lossy subscriber stops at it */

/* Shared between the test and its children (MAP_SHARED): who is who, and the phases. */
struct lossy_sh {
    shmbus_bus *b;             /* inherited across fork: the children join it */
    _Atomic uint32_t ready;    /* subscribers subscribed */
    _Atomic int64_t sent2_all; /* phase 2 publishes (the non-lossy subscriber gets each) */
    _Atomic int go;            /* 1: phase 1 published, drain; 2: phase 2 published, drain */
    _Atomic int drained;       /* the lossy subscriber finished phase 1 (1), phase 2 (2) */
    _Atomic int err;           /* the lossy subscriber failed: its exit status */
    _Atomic int64_t got1, got2, first1, last1, last2, directs, topics2;
};

static bool lossy_go_is(struct lossy_sh *sh, int v, int timeout_ms)
{
    uint64_t until = th_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (atomic_load(&sh->go) < v) {
        if (th_now_ns() > until)
            return false;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return true;
}

/* Receive everything there is (all of it was committed before `go`), checking publisher
 * order; counts topic messages and direct ones. */
static int lossy_drain(shmbus_client *c, _Atomic int64_t *got, _Atomic int64_t *first,
                       _Atomic int64_t *last, _Atomic int64_t *directs)
{
    int64_t prev = -1, n = 0, d = 0;
    for (;;) {
        struct shmbus_msg h;
        int v = 0;
        int r = shmbus_recv(c, &h, &v, sizeof(v), 0);
        if (r == -EAGAIN)
            break;
        if (r != (int)sizeof(v))
            return r < 0 && r > -100 ? 100 - r : 10; /* 100 + errno: which error */
        if (!(h.flags & SHMBUS_MSG_TOPIC)) {
            if (v != 4242)
                return 11;
            d++;
            continue;
        }
        if (v <= prev) /* the newest, in publisher order: never older than what came before */
            return 12;
        if (n == 0 && first != NULL)
            atomic_store(first, v);
        prev = v;
        n++;
    }
    atomic_store(got, n);
    atomic_store(last, prev);
    if (directs != NULL)
        atomic_store(directs, d);
    return 0;
}

static int lossy_sub_run(struct lossy_sh *sh);

/* The lossy subscriber: reads nothing while the publisher runs, then drains. A failure is
 * also put in sh->err, so that the test stops waiting at once. */
static int lossy_sub(void *p)
{
    struct lossy_sh *sh = p;
    int r = lossy_sub_run(sh);
    if (r != 0)
        atomic_store(&sh->err, r);
    return r;
}

static int lossy_sub_run(struct lossy_sh *sh)
{
    shmbus_client *c;
    if (shmbus_join(sh->b, 2, NULL, &c) != 0)
        return 1;
    if (shmbus_subscribe(c, "lossy", SHMBUS_SUB_LOSSY) != 0)
        return 2;
    atomic_fetch_add(&sh->ready, 1);
    if (!lossy_go_is(sh, 1, 60000))
        return 3;
    int r = lossy_drain(c, &sh->got1, &sh->first1, &sh->last1, NULL);
    if (r != 0)
        return r;
    atomic_store(&sh->drained, 1);
    if (!lossy_go_is(sh, 2, 60000))
        return 4;
    r = lossy_drain(c, &sh->topics2, NULL, &sh->last2, &sh->directs);
    if (r != 0)
        return r;
    atomic_store(&sh->drained, 2);
    if (!lossy_go_is(sh, 3, 60000)) /* the test has read our counters */
        return 5;
    shmbus_leave(c);
    return 0;
}

/* The subscriber that did not ask to be lossy: every message, in order, up to the stop. */
static int lossy_full_sub(void *p)
{
    struct lossy_sh *sh = p;
    shmbus_client *c;
    if (shmbus_join(sh->b, 3, NULL, &c) != 0)
        return 1;
    if (shmbus_subscribe(c, "lossy", 0) != 0)
        return 2;
    atomic_fetch_add(&sh->ready, 1);
    int next = 0;
    for (;;) {
        struct shmbus_msg h;
        int v;
        if (shmbus_recv(c, &h, &v, sizeof(v), 60000) != (int)sizeof(v))
            return 3;
        if (v == LOSSY_STOP)
            break;
        if (v != next) /* everything, once, in order */
            return 4;
        next++;
    }
    shmbus_leave(c);
    return next == LOSSY_MSGS + (int)atomic_load(&sh->sent2_all) ? 0 : 5;
}

static bool lossy_ready(void *p)
{
    return atomic_load(&((struct lossy_sh *)p)->ready) == 2;
}

static bool lossy_drained1(void *p)
{
    struct lossy_sh *sh = p;
    return atomic_load(&sh->drained) >= 1 || atomic_load(&sh->err) != 0;
}

static bool lossy_drained2(void *p)
{
    struct lossy_sh *sh = p;
    return atomic_load(&sh->drained) >= 2 || atomic_load(&sh->err) != 0;
}

/* Client id's `lost` counter as shmbus_list() shows it. */
static uint64_t lost_of(shmbus_bus *b, uint32_t id)
{
    struct shmbus_client_info ci[8];
    int n = shmbus_list(b, ci, 8);
    for (int i = 0; i < n && i < 8; i++)
        if (ci[i].id == id)
            return ci[i].counters.lost;
    return UINT64_MAX;
}

/*
 * A lossy subscriber that does not read while a publisher sends many rings' worth: the
 * publisher never waits out its timeout, the subscriber then gets the newest messages in
 * publisher order, and received + counted lost == published; a non-lossy subscriber of the
 * same topic gets everything; a direct message in the lossy mailbox is never dropped (it
 * stops the shedding: the publisher then waits for room, as without the flag).
 */
static void test_publish_lossy_subscriber(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("glossy", 8, 4, 64);
    struct lossy_sh *sh =
        mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    memset(sh, 0, sizeof(*sh));
    sh->b = b;
    shmbus_client *pub;
    assert_int_equal(shmbus_join(b, 1, NULL, &pub), 0);
    pid_t lossy = th_fork(lossy_sub, sh), full = th_fork(lossy_full_sub, sh);
    assert_true(poll_until(lossy_ready, sh, 10000));
    /* Phase 1: the lossy subscriber reads nothing. */
    for (int i = 0; i < LOSSY_MSGS; i++)
        assert_int_equal(shmbus_publish(pub, "lossy", &i, sizeof(i), 0, 2000), 2);
    uint64_t lost1 = group_of(b, "lossy").lost;
    assert_true(lost1 > 0);
    assert_int_equal(lost_of(b, 2), lost1); /* where `shmbus ls` shows it */
    assert_int_equal(group_of(b, "lossy").missed, 0);
    atomic_store(&sh->go, 1);
    assert_true(poll_until(lossy_drained1, sh, 30000));
    assert_int_equal(atomic_load(&sh->err), 0); /* 100 + errno: a receive failed */
    assert_int_equal((uint64_t)atomic_load(&sh->got1) + lost1, LOSSY_MSGS);
    assert_int_equal(atomic_load(&sh->last1), LOSSY_MSGS - 1); /* the newest are kept */
    assert_true(atomic_load(&sh->first1) >= (int64_t)lost1);
    /* Phase 2: topic messages, a direct message, then more until the shedding reaches the
     * direct one and the publisher has to wait. */
    int v = LOSSY_MSGS;
    int64_t sent_l = 0, sent_all = 0;
    for (int i = 0; i < LOSSY_PRE; i++, v++, sent_l++, sent_all++)
        assert_int_equal(shmbus_publish(pub, "lossy", &v, sizeof(v), 0, 2000), 2);
    int direct = 4242;
    assert_int_equal(shmbus_send(pub, 2, &direct, sizeof(direct), 0, 1000), 0);
    for (;; v++) {
        int r = shmbus_publish(pub, "lossy", &v, sizeof(v), 0, 300);
        sent_all++;
        if (r == -ETIMEDOUT)
            break; /* the non-lossy subscriber got its copy, the lossy one could not */
        assert_int_equal(r, 2);
        sent_l++;
        assert_true(sent_l < 100000);
    }
    assert_true(sent_l > LOSSY_PRE); /* it shed the topic messages before the direct one */
    uint64_t lost2 = group_of(b, "lossy").lost - lost1;
    assert_int_equal(lost2, LOSSY_PRE); /* exactly those: never the direct one */
    assert_int_equal(group_of(b, "lossy").missed, 1);
    atomic_store(&sh->sent2_all, sent_all);
    int stop = LOSSY_STOP;
    assert_int_equal(shmbus_publish(pub, "lossy", &stop, sizeof(stop), 0, 300), -ETIMEDOUT);
    atomic_store(&sh->go, 2);
    assert_true(poll_until(lossy_drained2, sh, 30000));
    assert_int_equal(atomic_load(&sh->err), 0);
    assert_int_equal(atomic_load(&sh->directs), 1);
    assert_int_equal((uint64_t)atomic_load(&sh->topics2) + lost2, (uint64_t)sent_l);
    assert_int_equal(lost_of(b, 2), lost1 + lost2);
    atomic_store(&sh->go, 3);
    assert_int_equal(th_wait(full, 60000), 0);
    assert_int_equal(th_wait(lossy, 60000), 0);
    shmbus_leave(pub);
    munmap(sh, sizeof(*sh));
    th_close_bus(b);
}

static int publish_forever(void *p)
{
    struct fan_arg *a = p;
    shmbus_client *c;
    if (shmbus_join(a->b, 0, NULL, &c) != 0)
        return 1;
    for (int i = 0;; i++) {
        int r = shmbus_publish(c, "live", &i, sizeof(i), 0, 20000);
        if (r < 0)
            return 2;
    }
}

/* Subscribing while a publisher runs: from the first message on, nothing is skipped; after
 * unsubscribe, at most the copy in flight arrives, then nothing. */
static void test_subscribe_while_publishing(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("glive", 4, 8, 64);
    struct fan_arg a = {b, 0};
    pid_t pid = th_fork(publish_forever, &a);
    shmbus_client *s;
    assert_int_equal(shmbus_join(b, 0, NULL, &s), 0);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(shmbus_subscribe(s, "live", 0), 0);
        int prev = -1;
        for (int k = 0; k < 200; k++) {
            int v;
            assert_int_equal(shmbus_recv(s, NULL, &v, sizeof(v), 10000), (int)sizeof(v));
            if (prev >= 0)
                assert_int_equal(v, prev + 1);
            prev = v;
        }
        assert_int_equal(shmbus_unsubscribe(s, "live"), 0);
        /* What was already queued (a ring of 16 units holds 16 of these) plus the copy in
         * flight when we unsubscribed, then nothing (a 200 ms look). */
        int extra = 0, v;
        while (shmbus_recv(s, NULL, &v, sizeof(v), 200) == (int)sizeof(v)) {
            assert_int_equal(v, prev + 1);
            prev = v;
            extra++;
            assert_true(extra <= 17);
        }
    }
    kill(pid, SIGKILL);
    assert_int_equal(th_wait(pid, 5000), 128 + SIGKILL);
    shmbus_leave(s);
    th_close_bus(b);
}

/* ---- leader election --------------------------------------------------------------- */

static void test_elect_resign_fence(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("gelect", 4, 8, 64);
    shmbus_client *a, *c;
    assert_int_equal(shmbus_join(b, 0, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 0, NULL, &c), 0);
    uint32_t who;
    uint64_t ep;
    assert_int_equal(shmbus_leader(b, "lead", &who, &ep), 0); /* no such group: nobody */
    assert_int_equal(who, 0);
    assert_int_equal(ep, 0);
    assert_int_equal(shmbus_elect(a, "lead", 0), 1);
    assert_int_equal(shmbus_elect(a, "lead", 0), 1); /* already leads */
    assert_int_equal(shmbus_elect(c, "lead", 0), -EAGAIN);
    uint64_t t0 = th_now_ns();
    assert_int_equal(shmbus_elect(c, "lead", 50), -ETIMEDOUT);
    assert_true(th_now_ns() - t0 < 1050000000u);
    assert_int_equal(shmbus_leader(b, "lead", &who, &ep), 0);
    assert_int_equal(who, shmbus_client_id(a));
    assert_int_equal(ep, 1);
    assert_int_equal(group_of(b, "lead").leader, shmbus_client_id(a));

    assert_int_equal(shmbus_resign(c, "lead"), -EPERM);
    assert_int_equal(shmbus_resign(a, "lead"), 0);
    assert_int_equal(shmbus_resign(a, "lead"), -EPERM);
    assert_int_equal(shmbus_leader(b, "lead", &who, &ep), 0);
    assert_int_equal(who, 0);
    assert_int_equal(ep, 1); /* the epoch stays */
    assert_int_equal(shmbus_elect(c, "lead", 0), 2);
    assert_int_equal(shmbus_elect(a, "lead", 0), -EAGAIN);

    /* Fencing: the deposed leader's epoch is refused, the current one goes through. */
    assert_int_equal(shmbus_send_fenced(a, shmbus_client_id(c), "lead", 1, "old", 3, 0, 0),
                     -ESTALE);
    assert_int_equal(shmbus_send_fenced(c, shmbus_client_id(a), "lead", 3, "new", 3, 0, 0),
                     -EINVAL);
    assert_int_equal(shmbus_send_fenced(c, shmbus_client_id(a), "nope", 2, "x", 1, 0, 0), -ENOENT);
    assert_int_equal(shmbus_send_fenced(c, shmbus_client_id(a), "lead", 2, "cur", 3, 0, 0), 0);
    struct shmbus_msg h;
    char buf[64];
    assert_int_equal(shmbus_recv(a, &h, buf, sizeof(buf), 0), 3);
    assert_true(h.flags & SHMBUS_MSG_FENCED);
    assert_int_equal(h.corr, 2);
    assert_int_equal(shmbus_recv(c, &h, buf, sizeof(buf), 0), -EAGAIN); /* nothing stale */
    assert_int_equal(shmbus_fence_check(b, "lead", 1), -ESTALE);
    assert_int_equal(shmbus_fence_check(b, "lead", 2), 0);
    assert_int_equal(shmbus_fence_check(b, "lead", 3), -EINVAL);

    /* Leaving ends leadership; the next leader's epoch is higher. */
    uint32_t cid = shmbus_client_id(c);
    shmbus_leave(c);
    assert_int_equal(shmbus_leader(b, "lead", &who, &ep), 0);
    assert_int_equal(who, 0);
    assert_int_equal(shmbus_elect(a, "lead", 0), 3);
    assert_int_equal(shmbus_join(b, cid, NULL, &c), 0); /* same id, new join: no leader */
    assert_int_equal(shmbus_elect(c, "lead", 0), -EAGAIN);
    assert_int_equal(group_of(b, "lead").elections, 3);
    assert_int_equal(shmbus_elect(NULL, "lead", 0), -EINVAL);
    assert_int_equal(shmbus_elect(a, "le/ad", 0), -EINVAL);
    assert_int_equal(shmbus_leader(NULL, "lead", &who, &ep), -EINVAL);
    shmbus_leave(c);
    shmbus_leave(a);
    th_close_bus(b);
}

/* Leader kills in test_leader_kills: 100 in make check, SHMBUS_LEADER_KILLS (up to
 * MAX_KILLS) in make soak. */
#define MAX_KILLS 2000

static int leader_kills(void)
{
    const char *s = getenv("SHMBUS_LEADER_KILLS");
    long n = s != NULL ? strtol(s, NULL, 10) : 100;
    return n < 1 ? 1 : n > MAX_KILLS ? MAX_KILLS : (int)n;
}

/* Written by the candidates (a shared anonymous mapping). */
struct rounds {
    _Atomic uint32_t campaigning[MAX_KILLS + 2]; /* joined, about to call shmbus_elect() */
    _Atomic uint64_t won_ns[MAX_KILLS + 2];
    _Atomic uint64_t epoch[MAX_KILLS + 2];
};

struct cand_arg {
    shmbus_bus *b;
    struct rounds *r;
    int i;
};

static int candidate(void *p)
{
    struct cand_arg *a = p;
    shmbus_client *c;
    if (shmbus_join(a->b, 0, NULL, &c) != 0)
        return 1;
    atomic_store(&a->r->campaigning[a->i], 1);
    int ep = shmbus_elect(c, "chief", 30000);
    if (ep <= 0)
        return 2;
    atomic_store(&a->r->epoch[a->i], (uint64_t)ep);
    atomic_store(&a->r->won_ns[a->i], th_now_ns());
    for (;;)
        pause();
}

struct won_want {
    struct rounds *r;
    int i;
};

static bool has_won(void *p)
{
    struct won_want *w = p;
    return atomic_load(&w->r->won_ns[w->i]) != 0;
}

static bool is_campaigning(void *p)
{
    struct won_want *w = p;
    return atomic_load(&w->r->campaigning[w->i]) != 0;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* leader_kills() leaders killed with SIGKILL, each while the next candidate campaigns: each time
 * the campaigner takes over with a strictly higher epoch, the dead leader's epoch is fenced off,
 * and the gap from the kill to the new leader is bounded. */
static void test_leader_kills(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("gkill", 8, 8, 64);
    struct rounds *r =
        mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(r != MAP_FAILED);
    memset(r, 0, sizeof(*r));
    const int kills = leader_kills();
    static struct cand_arg args[MAX_KILLS + 2];
    static pid_t pid[MAX_KILLS + 2];
    static uint64_t gap[MAX_KILLS];
    struct won_want w = {r, 0};
    for (int i = 0; i < 2; i++) {
        args[i] = (struct cand_arg){b, r, i};
        pid[i] = th_fork(candidate, &args[i]);
        w.i = i;
        assert_true(poll_until(i == 0 ? has_won : is_campaigning, &w, 10000));
    }
    for (int i = 0; i < kills; i++) {
        /* Leader i leads, candidate i + 1 campaigns (and nobody else): kill the leader. */
        uint64_t t0 = th_now_ns();
        kill(pid[i], SIGKILL);
        w.i = i + 1;
        assert_true(poll_until(has_won, &w, 10000));
        gap[i] = atomic_load(&r->won_ns[i + 1]) - t0;
        assert_true(atomic_load(&r->epoch[i + 1]) > atomic_load(&r->epoch[i]));
        assert_int_equal(shmbus_fence_check(b, "chief", atomic_load(&r->epoch[i])), -ESTALE);
        assert_int_equal(th_wait(pid[i], 5000), 128 + SIGKILL);
        args[i + 2] = (struct cand_arg){b, r, i + 2};
        pid[i + 2] = th_fork(candidate, &args[i + 2]);
        w.i = i + 2;
        assert_true(poll_until(is_campaigning, &w, 10000));
    }
    for (int i = kills; i < kills + 2; i++) {
        kill(pid[i], SIGKILL);
        th_wait(pid[i], 5000);
    }
    qsort(gap, kills, sizeof(gap[0]), cmp_u64);
    printf("# %d leader kills: failover p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", kills,
           gap[kills / 2] / 1e6, gap[kills * 99 / 100] / 1e6, gap[kills - 1] / 1e6);
    /* The design bound is 100 ms (a 5 ms poll); a loaded CI machine may stall a process
     * longer now and then, so the test only bounds it loosely: never a second. */
    assert_true(gap[kills - 1] < 1000000000u);
    munmap(r, sizeof(*r));
    th_close_bus(b);
}

/* A stopped leader is not dead: nobody takes over while it is stopped. */
static void test_stopped_leader_keeps_leading(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("gstop", 4, 8, 64);
    struct rounds *r =
        mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(r != MAP_FAILED);
    memset(r, 0, sizeof(*r));
    struct cand_arg a = {b, r, 0};
    pid_t pid = th_fork(candidate, &a);
    struct won_want w = {r, 0};
    assert_true(poll_until(has_won, &w, 10000));
    kill(pid, SIGSTOP);
    shmbus_client *c;
    assert_int_equal(shmbus_join(b, 0, NULL, &c), 0);
    assert_int_equal(shmbus_elect(c, "chief", 300), -ETIMEDOUT);
    kill(pid, SIGKILL);
    assert_int_equal(th_wait(pid, 5000), 128 + SIGKILL);
    assert_int_equal(shmbus_elect(c, "chief", 5000), 2);
    shmbus_leave(c);
    munmap(r, sizeof(*r));
    th_close_bus(b);
}

/* ---- work queues ------------------------------------------------------------------- */

/* Least loaded first, round robin among equals; only members get work. */
static void test_queue_round_robin_least_loaded(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("gqrr", 8, 16, 64);
    shmbus_client *snd, *w[3];
    assert_int_equal(shmbus_join(b, 0, NULL, &snd), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(shmbus_join(b, 0, NULL, &w[i]), 0);
        assert_int_equal(shmbus_subscribe(w[i], "jobs", 0), 0);
    }
    int count[9] = {0}, last = 0;
    for (int j = 0; j < 30; j++) {
        int id = shmbus_send_group(snd, "jobs", &j, sizeof(j), 0, 1000);
        assert_true(id >= 2 && id <= 4);
        assert_int_not_equal(id, last); /* equals take turns */
        last = id;
        count[id]++;
    }
    assert_int_equal(count[2], 10);
    assert_int_equal(count[3], 10);
    assert_int_equal(count[4], 10);
    /* w[0] works through its queue: the next jobs go to it, the least loaded. */
    char buf[64];
    struct shmbus_msg h;
    for (int j = 0; j < 10; j++) {
        assert_int_equal(shmbus_recv(w[0], &h, buf, sizeof(buf), 0), (int)sizeof(int));
        assert_true(h.flags & SHMBUS_MSG_GROUP);
        assert_int_equal(h.corr, group_of(b, "jobs").index);
    }
    for (int j = 0; j < 5; j++)
        assert_int_equal(shmbus_send_group(snd, "jobs", &j, sizeof(j), 0, 1000),
                         (int)shmbus_client_id(w[0]));
    assert_int_equal(shmbus_recv(snd, NULL, buf, sizeof(buf), 0), -EAGAIN); /* not a member */
    assert_int_equal(group_of(b, "jobs").queued, 35);
    /* Bad arguments. */
    assert_int_equal(shmbus_send_group(snd, "jobs", NULL, 1, 0, 0), -EINVAL);
    assert_int_equal(shmbus_send_group(snd, "jo bs", "x", 1, 0, 0), -EINVAL);
    assert_int_equal(shmbus_send_group(snd, "jobs", "x", 1, SHMBUS_OPEN_CREATE, 0), -EINVAL);
    assert_int_equal(shmbus_send_group(snd, "jobs", buf, 65, 0, 0), -EMSGSIZE);
    for (int i = 0; i < 3; i++)
        shmbus_leave(w[i]);
    shmbus_leave(snd);
    th_close_bus(b);
}

static int late_worker(void *p)
{
    struct race_arg *a = p;
    shmbus_client *c;
    if (shmbus_join(a->b, 0, NULL, &c) != 0)
        return 1;
    if (shmbus_subscribe(c, "late", 0) != 0)
        return 2;
    char buf[64];
    int r = shmbus_recv(c, NULL, buf, sizeof(buf), 20000);
    shmbus_leave(c);
    return r == 3 ? 0 : 3;
}

/* No member: the sender waits within its timeout, then -EHOSTUNREACH; a member that comes
 * while it waits gets the message. */
static void test_queue_no_member(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("gqnone", 4, 8, 64);
    shmbus_client *snd;
    assert_int_equal(shmbus_join(b, 0, NULL, &snd), 0);
    assert_int_equal(shmbus_send_group(snd, "late", "job", 3, 0, 0), -EHOSTUNREACH);
    uint64_t t0 = th_now_ns();
    assert_int_equal(shmbus_send_group(snd, "late", "job", 3, 0, 100), -EHOSTUNREACH);
    uint64_t took = th_now_ns() - t0;
    assert_true(took >= 100000000u && took < 1100000000u);
    struct race_arg a = {b, 0};
    pid_t pid = th_fork(late_worker, &a);
    int id = shmbus_send_group(snd, "late", "job", 3, 0, 10000);
    assert_true(id > 0 && (uint32_t)id != shmbus_client_id(snd));
    assert_int_equal(th_wait(pid, 10000), 0);
    shmbus_leave(snd);
    th_close_bus(b);
}

#define JOBS    600
#define WORKERS 3

struct jobs_seen {
    _Atomic uint32_t seen[JOBS];
    _Atomic uint32_t per_worker[WORKERS];
};

struct worker_arg {
    shmbus_bus *b;
    struct jobs_seen *js;
    int i;
};

static int worker(void *p)
{
    struct worker_arg *a = p;
    shmbus_client *c;
    if (shmbus_join(a->b, 0, NULL, &c) != 0)
        return 1;
    if (shmbus_subscribe(c, "work", 0) != 0)
        return 2;
    for (;;) {
        struct shmbus_msg h;
        int v;
        int r = shmbus_recv(c, &h, &v, sizeof(v), 20000);
        if (r < 0)
            return 3;
        if (h.flags & SHMBUS_MSG_TOPIC)
            break; /* the end */
        if (r != (int)sizeof(v) || v < 0 || v >= JOBS || !(h.flags & SHMBUS_MSG_GROUP))
            return 4;
        atomic_fetch_add(&a->js->seen[v], 1);
        atomic_fetch_add(&a->js->per_worker[a->i], 1);
    }
    shmbus_leave(c);
    return 0;
}

/* Worker processes share the jobs: each job done exactly once, every worker gets some. */
static void test_queue_workers_share(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("gqwork", 8, 8, 64);
    struct jobs_seen *js =
        mmap(NULL, sizeof(*js), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(js != MAP_FAILED);
    memset(js, 0, sizeof(*js));
    struct worker_arg wa[WORKERS];
    pid_t pid[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        wa[i] = (struct worker_arg){b, js, i};
        pid[i] = th_fork(worker, &wa[i]);
    }
    wait_members(b, "work", WORKERS);
    shmbus_client *snd;
    assert_int_equal(shmbus_join(b, 0, NULL, &snd), 0);
    for (int j = 0; j < JOBS; j++)
        assert_true(shmbus_send_group(snd, "work", &j, sizeof(j), 0, 10000) > 0);
    assert_int_equal(shmbus_publish(snd, "work", "", 0, 0, 10000), WORKERS);
    for (int i = 0; i < WORKERS; i++)
        assert_int_equal(th_wait(pid[i], 20000), 0);
    for (int j = 0; j < JOBS; j++)
        assert_int_equal(atomic_load(&js->seen[j]), 1);
    for (int i = 0; i < WORKERS; i++)
        assert_true(atomic_load(&js->per_worker[i]) > 0);
    shmbus_leave(snd);
    munmap(js, sizeof(*js));
    th_close_bus(b);
}

static int subscribe_work_and_wait(void *p)
{
    struct race_arg *a = p;
    shmbus_client *c;
    if (shmbus_join(a->b, 0, NULL, &c) != 0)
        return 1;
    if (shmbus_subscribe(c, "work", 0) != 0)
        return 2;
    for (;;)
        pause();
}

/* A killed member gets no more work, even before anyone cleaned up after it. */
static void test_queue_dead_member_skipped(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("gqdead", 4, 16, 64);
    struct race_arg a = {b, 0};
    pid_t pid = th_fork(subscribe_work_and_wait, &a);
    wait_members(b, "work", 1);
    shmbus_client *w;
    assert_int_equal(shmbus_join(b, 0, NULL, &w), 0);
    assert_int_equal(shmbus_subscribe(w, "work", 0), 0);
    kill(pid, SIGKILL);
    assert_int_equal(th_wait(pid, 5000), 128 + SIGKILL);
    for (int j = 0; j < 10; j++)
        assert_int_equal(shmbus_send_group(w, "work", &j, sizeof(j), 0, 1000),
                         (int)shmbus_client_id(w));
    shmbus_leave(w);
    th_close_bus(b);
}

/* The same key goes to the same member while it is current, however loaded; then it moves
 * to another member and stays there. */
static void test_queue_sticky_keys(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("gqkey", 8, 32, 64);
    shmbus_client *snd, *w[3];
    assert_int_equal(shmbus_join(b, 0, NULL, &snd), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(shmbus_join(b, 0, NULL, &w[i]), 0);
        assert_int_equal(shmbus_subscribe(w[i], "keyed", 0), 0);
    }
    int first = shmbus_send_group_key(snd, "keyed", 7, "a", 1, 0, 1000);
    assert_true(first >= 2 && first <= 4);
    for (int j = 0; j < 10; j++) /* its mailbox fills up; the key stays */
        assert_int_equal(shmbus_send_group_key(snd, "keyed", 7, "a", 1, 0, 1000), first);
    /* Unkeyed sends still go to the least loaded. */
    assert_int_not_equal(shmbus_send_group(snd, "keyed", "u", 1, 0, 1000), first);
    shmbus_client *owner = w[first - 2];
    assert_int_equal(shmbus_unsubscribe(owner, "keyed"), 0);
    int second = shmbus_send_group_key(snd, "keyed", 7, "a", 1, 0, 1000);
    assert_true(second >= 2 && second <= 4 && second != first);
    for (int j = 0; j < 10; j++)
        assert_int_equal(shmbus_send_group_key(snd, "keyed", 7, "a", 1, 0, 1000), second);
    for (int i = 0; i < 3; i++)
        shmbus_leave(w[i]);
    assert_int_equal(shmbus_send_group_key(snd, "keyed", 7, "a", 1, 0, 0), -EHOSTUNREACH);
    shmbus_leave(snd);
    th_close_bus(b);
}

struct wait_arg {
    shmbus_bus *b;
};

static int elect_and_wait(void *p)
{
    struct wait_arg *a = p;
    shmbus_client *c;
    if (shmbus_join(a->b, 0, NULL, &c) != 0)
        return 1;
    if (shmbus_elect(c, "watched", 10000) != 1)
        return 2;
    for (;;)
        pause();
}

/* A watcher is told of each change: a leader arrives, then dies. */
static void test_leader_wait(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("gwatch", 4, 8, 64);
    uint32_t who = 0;
    uint64_t ep = 0;
    assert_int_equal(shmbus_leader_wait(b, "watched", &who, &ep, 0), -EAGAIN);
    struct wait_arg a = {b};
    pid_t pid = th_fork(elect_and_wait, &a);
    assert_int_equal(shmbus_leader_wait(b, "watched", &who, &ep, 10000), 0);
    assert_int_not_equal(who, 0);
    assert_int_equal(ep, 1);
    assert_int_equal(shmbus_leader_wait(b, "watched", &who, &ep, 50), -ETIMEDOUT);
    kill(pid, SIGKILL);
    assert_int_equal(shmbus_leader_wait(b, "watched", &who, &ep, 10000), 0);
    assert_int_equal(who, 0);
    assert_int_equal(ep, 1);
    assert_int_equal(th_wait(pid, 5000), 128 + SIGKILL);
    assert_int_equal(shmbus_leader_wait(b, "watched", NULL, &ep, 0), -EINVAL);
    th_close_bus(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_names_and_limits),
        cmocka_unit_test(test_group_create_race),
        cmocka_unit_test(test_membership_is_per_join),
        cmocka_unit_test(test_dead_subscriber_ignored),
        cmocka_unit_test(test_publish_fanout_order),
        cmocka_unit_test(test_publish_full_subscriber),
        cmocka_unit_test(test_publish_lossy_subscriber),
        cmocka_unit_test(test_subscribe_while_publishing),
        cmocka_unit_test(test_elect_resign_fence),
        cmocka_unit_test(test_leader_kills),
        cmocka_unit_test(test_stopped_leader_keeps_leading),
        cmocka_unit_test(test_queue_round_robin_least_loaded),
        cmocka_unit_test(test_queue_no_member),
        cmocka_unit_test(test_queue_workers_share),
        cmocka_unit_test(test_queue_dead_member_skipped),
        cmocka_unit_test(test_queue_sticky_keys),
        cmocka_unit_test(test_leader_wait),
    };
    th_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, th_cleanup);
}
