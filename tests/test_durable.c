/*
 * test_durable: durable buses (src/journal.c). What a user relies on:
 *   - accepted means kept: messages sent and not taken come back after a simulated reboot
 *     (every process gone, the segment and the runtime directory removed), once, in order,
 *     with their src, seq and priority, to the next client of their id; taken ones do not;
 *   - peek without consume takes nothing; consume takes;
 *   - each sync level works (always and batch flush the journal; a SYNC send returns);
 *   - damage: a torn tail is cut, a record with a bad CRC is skipped and counted and never
 *     delivered, random flipped bytes never crash and never deliver what was not sent, a
 *     journal of another bus or format is refused with a clear error;
 *   - a full disk (a file-size limit) fails the send with -ENOSPC, loses nothing accepted,
 *     and the bus works again once there is room;
 *   - a receive batch writes one taken marker per run of a sender's messages, and takes
 *     nothing when it cannot write them;
 *   - a send batch that waits for room (its records written ahead) delivers everything once
 *     and in order, and what it could not place before its deadline never comes back; if
 *     its sender is killed before placing it, the rebuild delivers it once, in order;
 *   - what a send batch reported as not sent stays undelivered when its CANCEL marker met a
 *     full disk: the marker is written once there is room (next write, or the close);
 *   - a journal directory that is another user's or that others can write to is refused;
 *   - a receiver's mailbox outlives it: killed or gone, its next client gets the rest.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "shmbus.h"
#include "../src/journal.h"

static char jdir[512];

/* A fresh journal directory for each test, inside the runner's temporary directory. */
static const char *new_jdir(const char *tag)
{
    const char *t = getenv("TEST_TMPDIR");
    char base[256];
    if (t == NULL || t[0] != '/') {
        snprintf(base, sizeof(base), "/tmp");
        t = base;
    }
    snprintf(jdir, sizeof(jdir), "%s/jnl-%s-%d", t, tag, (int)getpid());
    return jdir;
}

static shmbus_bus *open_durable(const char *name, unsigned sync, int *err)
{
    struct shmbus_bus_opts o = {.max_clients = 8, .msg_size = 256, .ring_bytes = 64 * 1024};
    struct shmbus_durable d = {.dir = jdir, .sync = sync};
    shmbus_bus *b = NULL;
    int r = shmbus_bus_open_durable(name, &o, &d, SHMBUS_OPEN_CREATE, &b);
    if (err != NULL)
        *err = r;
    else if (r < 0)
        fail_msg("open durable %s: %s", name, shmbus_strerror(r));
    return r < 0 ? NULL : b;
}

static void send_n(shmbus_client *c, uint32_t dst, int from, int to)
{
    for (int i = from; i < to; i++) {
        char m[32];
        int n = snprintf(m, sizeof(m), "msg-%d", i);
        assert_int_equal(shmbus_send(c, dst, m, (size_t)n, 0, 1000), 0);
    }
}

/* Receive everything waiting; returns how many, checking they are msg-from.. in order. */
static int drain_expect(shmbus_client *c, int from, uint32_t src)
{
    int k = 0;
    for (;;) {
        char buf[300];
        struct shmbus_msg m;
        int n = shmbus_recv(c, &m, buf, sizeof(buf) - 1, 0);
        if (n == -EAGAIN)
            return k;
        assert_true(n >= 0);
        buf[n] = '\0';
        char want[32];
        snprintf(want, sizeof(want), "msg-%d", from + k);
        assert_string_equal(buf, want);
        if (src != 0)
            assert_int_equal(m.src, src);
        k++;
    }
}

/* A message whose taken marker lies more than a thousand kept messages after it in the
 * journal: the reader's early drop (drop_covered(), which looks back only so far) misses it,
 * and the sorted pass over every marker must still drop it. After a reboot the receiver
 * gets nothing again, and the kept messages all come back. */
static void test_rebuild_marker_far_behind(void **state)
{
    (void)state;
    const char *name = th_name("far");
    new_jdir("far");
    shmbus_bus *b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    shmbus_client *s, *r, *k3, *k4;
    assert_int_equal(shmbus_join(b, 1, NULL, &s), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_int_equal(shmbus_join(b, 3, NULL, &k3), 0);
    assert_int_equal(shmbus_join(b, 4, NULL, &k4), 0);
    assert_int_equal(shmbus_send(s, 2, "first", 5, 0, 0), 0);
    send_n(s, 3, 0, 600); /* 1200 kept messages, in two mailboxes */
    send_n(s, 4, 0, 600);
    char buf[64];
    struct shmbus_msg m;
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), 5);
    shmbus_leave(k4);
    shmbus_leave(k3);
    shmbus_leave(r);
    shmbus_leave(s);
    shmbus_bus_close(b);
    th_reboot_sim(name);

    b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    struct shmbus_journal_stats js;
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_int_equal(js.rebuilt, 1200);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), -EAGAIN);
    assert_int_equal(shmbus_join(b, 3, NULL, &k3), 0);
    assert_int_equal(shmbus_join(b, 4, NULL, &k4), 0);
    assert_int_equal(drain_expect(k3, 0, 1), 600);
    assert_int_equal(drain_expect(k4, 0, 1), 600);
    shmbus_leave(k4);
    shmbus_leave(k3);
    shmbus_leave(r);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    th_rm_rf(jdir);
}

static void test_rebuild_delivers_untaken_once(void **state)
{
    (void)state;
    const char *name = th_name("dur");
    new_jdir("basic");
    shmbus_bus *b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    shmbus_client *s, *r;
    assert_int_equal(shmbus_join(b, 1, "s", &s), 0);
    assert_int_equal(shmbus_join(b, 2, "r", &r), 0);
    send_n(s, 2, 0, 10);
    assert_int_equal(shmbus_send(s, 2, "hi", 2, SHMBUS_PRIO(3), 0), 0);
    char buf[64];
    struct shmbus_msg m;
    /* The priority one first, then msg-0, msg-1: three taken. */
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), 2);
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), 5);
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), 5);
    /* Peeked, not consumed: not taken. */
    assert_int_equal(shmbus_peek(r, &m, buf, sizeof(buf), 0), 5);
    assert_memory_equal(buf, "msg-2", 5);
    shmbus_leave(r);
    shmbus_leave(s);
    shmbus_bus_close(b);
    th_reboot_sim(name);

    b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    struct shmbus_journal_stats js;
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_int_equal(js.durable, 1);
    assert_int_equal(js.rebuilt, 8);
    assert_int_equal(js.deferred, 0);
    assert_int_equal(js.damaged, 0);
    assert_int_equal(js.epoch, 2);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    /* A new sender of id 1 after the rebuild: its messages come after the old ones. */
    assert_int_equal(shmbus_join(b, 1, NULL, &s), 0);
    send_n(s, 2, 10, 12);
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), 5);
    assert_int_equal(m.seq, 3); /* the original seq: msg-i was sent as seq i + 1 */
    assert_memory_equal(buf, "msg-2", 5);
    assert_int_equal(drain_expect(r, 3, 1), 9); /* msg-3..msg-11 */
    shmbus_leave(r);
    shmbus_leave(s);
    shmbus_bus_close(b);
    th_reboot_sim(name);

    /* Everything was taken: nothing comes back. */
    b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_int_equal(js.rebuilt, 0);
    assert_int_equal(js.epoch, 3);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), -EAGAIN);
    shmbus_leave(r);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    th_rm_rf(jdir);
}

static void test_sync_levels(void **state)
{
    (void)state;
    static const unsigned levels[] = {SHMBUS_SYNC_NONE, SHMBUS_SYNC_BATCH, SHMBUS_SYNC_ALWAYS};
    for (unsigned l = 0; l < 3; l++) {
        const char *name = th_name(l == 0 ? "sn" : l == 1 ? "sb" : "sa");
        char tag[16];
        snprintf(tag, sizeof(tag), "sync%u", l);
        new_jdir(tag);
        shmbus_bus *b = open_durable(name, levels[l], NULL);
        shmbus_client *s, *r;
        assert_int_equal(shmbus_join(b, 1, NULL, &s), 0);
        assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
        send_n(s, 2, 0, 5);
        assert_int_equal(shmbus_send(s, 2, "msg-5", 5, SHMBUS_SEND_SYNC, 2000), 0);
        struct shmbus_journal_stats js;
        assert_int_equal(shmbus_journal_stats(b, &js), 0);
        assert_int_equal(js.sync, levels[l]);
        if (levels[l] == SHMBUS_SYNC_NONE)
            assert_int_equal(js.syncs, 0);
        else if (levels[l] == SHMBUS_SYNC_ALWAYS)
            assert_true(js.syncs >= 6);
        else
            assert_true(js.syncs >= 1 && js.syncs <= 6);
        /* A second opener uses the recorded level whatever it asks for. */
        shmbus_bus *b2 = open_durable(name, SHMBUS_SYNC_NONE, NULL);
        struct shmbus_journal_stats js2;
        assert_int_equal(shmbus_journal_stats(b2, &js2), 0);
        assert_int_equal(js2.sync, levels[l]);
        assert_string_equal(js2.dir, jdir);
        shmbus_client *s2;
        assert_int_equal(shmbus_join(b2, 3, NULL, &s2), 0);
        assert_int_equal(shmbus_send(s2, 2, "msg-6", 5, 0, 0), 0);
        shmbus_leave(s2);
        shmbus_bus_close(b2);
        assert_int_equal(drain_expect(r, 0, 0), 7); /* msg-6 from client 3 */
        shmbus_leave(r);
        shmbus_leave(s);
        shmbus_bus_close(b);
        th_reboot_sim(name);
        b = open_durable(name, levels[l], NULL);
        assert_int_equal(shmbus_journal_stats(b, &js), 0);
        assert_int_equal(js.rebuilt, 0);
        shmbus_bus_close(b);
        assert_int_equal(shmbus_bus_destroy(name), 0);
        th_rm_rf(jdir);
    }
}

/* The journal file of bus `name` (the newest); fails if there is none. */
static void jfile(const char *name, char *out, size_t size)
{
    DIR *d = opendir(jdir);
    assert_non_null(d);
    struct dirent *de;
    out[0] = '\0';
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(name);
        if (strncmp(de->d_name, name, l) == 0 && de->d_name[l] == '.' &&
            strstr(de->d_name, ".jnl") != NULL) {
            char p[1024];
            snprintf(p, sizeof(p), "%s/%s", jdir, de->d_name);
            if (strcmp(p, out) > 0)
                snprintf(out, size, "%s", p);
        }
    }
    closedir(d);
    assert_true(out[0] != '\0');
}

static off_t fsize(const char *p)
{
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return st.st_size;
}

/* Make a journal of n untaken messages msg-0.. from 1 to 2, and leave it as a reboot
 * would. Returns the size of each record (all the same length). */
static void make_journal(const char *name, int n)
{
    shmbus_bus *b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    shmbus_client *s, *r;
    assert_int_equal(shmbus_join(b, 1, NULL, &s), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    send_n(s, 2, 0, n);
    shmbus_leave(r);
    shmbus_leave(s);
    shmbus_bus_close(b);
    th_reboot_sim(name);
}

#define HDR 128
#define REC 64 /* 56 + "msg-N" (5 bytes) padded to 8 */

static void test_torn_tail_and_bad_crc(void **state)
{
    (void)state;
    const char *name = th_name("torn");
    new_jdir("torn");
    make_journal(name, 8); /* msg-0..msg-7 */
    char p[1024];
    jfile(name, p, sizeof(p));
    assert_int_equal(fsize(p), HDR + 8 * REC);
    /* A power cut in the middle of the last record; a flipped payload byte in the 4th. */
    assert_int_equal(truncate(p, HDR + 7 * REC + 20), 0);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    char c = 'X';
    assert_int_equal(pwrite(fd, &c, 1, HDR + 3 * REC + 56 + 2), 1);
    close(fd);

    shmbus_bus *b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    struct shmbus_journal_stats js;
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_int_equal(js.torn, 1);
    assert_int_equal(js.damaged, 1);
    assert_int_equal(js.rebuilt, 6);
    shmbus_client *r;
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    /* msg-0..2, msg-4..6: not msg-3 (damaged), not msg-7 (torn), and nothing else. */
    static const int want[] = {0, 1, 2, 4, 5, 6};
    char buf[64];
    struct shmbus_msg m;
    for (int i = 0; i < 6; i++) {
        int n = shmbus_recv(r, &m, buf, sizeof(buf) - 1, 0);
        assert_true(n > 0);
        buf[n] = '\0';
        char w[16];
        snprintf(w, sizeof(w), "msg-%d", want[i]);
        assert_string_equal(buf, w);
        assert_int_equal(m.seq, (uint64_t)want[i] + 1);
    }
    assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), -EAGAIN);
    shmbus_leave(r);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    th_rm_rf(jdir);
}

static void test_random_flips(void **state)
{
    (void)state;
    const char *name = th_name("flip");
    new_jdir("flip");
    srand((unsigned)getpid());
    int refused = 0, rounds = 60;
    for (int round = 0; round < rounds; round++) {
        make_journal(name, 12);
        char p[1024];
        jfile(name, p, sizeof(p));
        off_t size = fsize(p);
        int fd = open(p, O_RDWR);
        assert_true(fd >= 0);
        int flips = 1 + rand() % 4;
        for (int k = 0; k < flips; k++) {
            unsigned char c;
            off_t at = rand() % size;
            assert_int_equal(pread(fd, &c, 1, at), 1);
            c ^= (unsigned char)(1u << (rand() % 8));
            assert_int_equal(pwrite(fd, &c, 1, at), 1);
        }
        if (rand() % 4 == 0)
            assert_int_equal(ftruncate(fd, rand() % size), 0);
        close(fd);
        int err;
        shmbus_bus *b = open_durable(name, SHMBUS_SYNC_NONE, &err);
        if (b == NULL) {
            /* Only a damaged file header refuses the journal, with a clear error. */
            assert_true(err == -EPROTO || err == -EPROTONOSUPPORT);
            refused++;
            th_rm_rf(jdir);
            continue;
        }
        shmbus_client *r;
        assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
        int last = -1;
        for (;;) {
            char buf[300];
            struct shmbus_msg m;
            int n = shmbus_recv(r, &m, buf, sizeof(buf) - 1, 0);
            if (n == -EAGAIN)
                break;
            assert_true(n >= 0);
            buf[n] = '\0';
            /* Only what was sent, each once, in order: msg-i with seq i + 1. */
            int i;
            char extra;
            assert_int_equal(sscanf(buf, "msg-%d%c", &i, &extra), 1);
            assert_true(i > last && i < 12);
            assert_int_equal(m.seq, (uint64_t)i + 1);
            assert_int_equal(m.src, 1);
            last = i;
        }
        shmbus_leave(r);
        shmbus_bus_close(b);
        th_reboot_sim(name);
        th_rm_rf(jdir);
    }
    print_message("%d of %d damaged journals refused (header hit)\n", refused, rounds);
}

static void test_foreign_and_old_journal(void **state)
{
    (void)state;
    const char *a = th_name("ja");
    char bname[64];
    snprintf(bname, sizeof(bname), "%s-b", a);
    new_jdir("foreign");
    make_journal(a, 2);
    char p[1024], q[1200];
    jfile(a, p, sizeof(p));
    /* Bus A's journal under bus B's name: refused. */
    snprintf(q, sizeof(q), "%s/%s.0000000000000001.jnl", jdir, bname);
    assert_int_equal(link(p, q), 0);
    int err;
    assert_null(open_durable(bname, SHMBUS_SYNC_NONE, &err));
    assert_int_equal(err, -EPROTO);
    unlink(q);
    /* An older format version (with a correct header CRC): refused as such. */
    int fd = open(p, O_RDWR);
    struct sb_jfile_hdr h;
    assert_int_equal(pread(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
    h.version = SB_JFILE_VERSION - 1; /* format 1: taken markers without runs */
    h.crc = sb__crc32c(0, &h, offsetof(struct sb_jfile_hdr, crc));
    assert_int_equal(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
    close(fd);
    assert_null(open_durable(a, SHMBUS_SYNC_NONE, &err));
    assert_int_equal(err, -EPROTONOSUPPORT);
    /* Nothing was removed: the journal is still there for a library that reads it. */
    assert_int_equal(fsize(p), HDR + 2 * REC);
    /* Not a journal at all. */
    fd = open(p, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "hello, world", 12), 12);
    close(fd);
    assert_null(open_durable(a, SHMBUS_SYNC_NONE, &err));
    assert_int_equal(err, -EPROTO);
    /* Bad arguments. */
    struct shmbus_durable d = {.dir = "relative/dir", .sync = 0};
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open_durable(a, NULL, &d, SHMBUS_OPEN_CREATE, &b), -EINVAL);
    d.dir = jdir;
    d.sync = 3;
    assert_int_equal(shmbus_bus_open_durable(a, NULL, &d, SHMBUS_OPEN_CREATE, &b), -EINVAL);
    th_rm_rf(jdir);
}

/* CRC32C against the standard check value, by the instruction (where the CPU has it) and
 * by the table, which must agree on every length, alignment and chaining. */
static void test_crc32c(void **state)
{
    (void)state;
    print_message("crc32c: %s\n", sb__crc32c_hw() ? "SSE4.2 instruction" : "table");
    assert_int_equal(sb__crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(sb__crc32c_table(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(sb__crc32c(0, "", 0), 0);
    char big[1000];
    memset(big, 0xA5, sizeof(big));
    uint32_t whole = sb__crc32c(0, big, sizeof(big));
    assert_int_equal(sb__crc32c(sb__crc32c(0, big, 333), big + 333, 667), whole);
    assert_int_equal(sb__crc32c_table(0, big, sizeof(big)), whole);
    unsigned seed = 13;
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)rand_r(&seed);
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len + off <= 200; len++)
            assert_int_equal(sb__crc32c(7u * (uint32_t)len, big + off, len),
                             sb__crc32c_table(7u * (uint32_t)len, big + off, len));
}

/* A file-size limit stands in for a full disk (EFBIG, reported as -ENOSPC). In a child,
 * so the limit and the ignored SIGXFSZ stay there. */
static int enospc_child(void *arg)
{
    const char *name = arg;
    signal(SIGXFSZ, SIG_IGN);
    shmbus_bus *b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    shmbus_client *s, *r;
    if (shmbus_join(b, 1, NULL, &s) || shmbus_join(b, 2, NULL, &r))
        return 10;
    char p[1024];
    jfile(name, p, sizeof(p));
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    struct rlimit lim = {.rlim_cur = (rlim_t)fsize(p) + 10 * REC + 30, .rlim_max = rl.rlim_max};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        return 11;
    int accepted = 0, r0;
    for (;;) {
        char m[16];
        int n = snprintf(m, sizeof(m), "msg-%d", accepted);
        r0 = shmbus_send(s, 2, m, (size_t)n, 0, 0);
        if (r0 != 0)
            break;
        accepted++;
    }
    if (r0 != -ENOSPC || accepted != 10)
        return 12;
    /* Room for two taken markers only. */
    lim.rlim_cur = (rlim_t)fsize(p) + 2 * 56 + 20;
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        return 11;
    /* Nothing half-sent became visible. */
    char buf[64];
    struct shmbus_msg hm;
    for (int i = 0; i < 2; i++)
        if (shmbus_recv(r, &hm, buf, sizeof(buf), 0) != 5)
            return 13;
    /* Full: the taken marker cannot be written either; the message stays. */
    if (shmbus_recv(r, &hm, buf, sizeof(buf), 0) != -ENOSPC)
        return 14;
    /* Room again: sends and receives work; nothing was lost. */
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        return 15;
    if (shmbus_send(s, 2, "msg-10", 6, 0, 0) != 0)
        return 16;
    int n = shmbus_recv(r, &hm, buf, sizeof(buf) - 1, 0);
    if (n != 5 || memcmp(buf, "msg-2", 5) != 0)
        return 17;
    shmbus_leave(r);
    shmbus_leave(s);
    shmbus_bus_close(b);
    return 0;
}

/* Run child(name) (name: th_name(tag), in a new journal directory named tag) in a child
 * process, which must exit 0: its file-size limit stays there. Then reboot, rebuild, put
 * what the rebuild found in *js, and drain client 2's mailbox, which must hold exactly
 * msg-<first>.. from client 1, n of them, once each, in order. Removes the bus and the
 * directory. */
static void child_then_rebuild(const char *tag, int (*child)(void *), int first, int n,
                               struct shmbus_journal_stats *js)
{
    const char *name = th_name(tag);
    new_jdir(tag);
    pid_t pid = th_fork(child, (void *)name);
    assert_int_equal(th_wait(pid, 20000), 0);
    th_reboot_sim(name);
    shmbus_bus *b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    assert_int_equal(shmbus_journal_stats(b, js), 0);
    shmbus_client *r;
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_int_equal(drain_expect(r, first, 1), n);
    shmbus_leave(r);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    th_rm_rf(jdir);
}

static void test_enospc(void **state)
{
    (void)state;
    /* After the reboot: msg-3..msg-10 (0..2 were taken), once each, in order. */
    struct shmbus_journal_stats js;
    child_then_rebuild("full", enospc_child, 3, 8, &js);
    assert_int_equal(js.damaged, 0);
}

static void test_loans_refused(void **state)
{
    (void)state;
    char name[64];
    snprintf(name, sizeof(name), "%s", th_name("loan"));
    new_jdir("loan");
    shmbus_bus *b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    shmbus_client *s;
    assert_int_equal(shmbus_join(b, 1, NULL, &s), 0);
    struct shmbus_loan l;
    assert_int_equal(shmbus_loan(s, 1, 8, 0, 0, &l), -EOPNOTSUPP);
    /* A non-durable bus says so. */
    struct shmbus_journal_stats js;
    shmbus_bus *plain = th_open_bus("plain", 0, 0, 0);
    assert_int_equal(shmbus_journal_stats(plain, &js), 0);
    assert_int_equal(js.durable, 0);
    th_close_bus(plain);
    shmbus_leave(s);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    th_rm_rf(jdir);
}

/* Compaction while the bus runs: taken messages leave the journal, the file stays small,
 * and what was not taken is still delivered once, in order, after a reboot. */
static void test_compaction(void **state)
{
    (void)state;
    const char *name = th_name("cmp");
    new_jdir("cmp");
    struct shmbus_bus_opts o = {.max_clients = 8, .msg_size = 256, .ring_bytes = 64 * 1024};
    struct shmbus_durable d = {.dir = jdir, .sync = SHMBUS_SYNC_NONE, .compact_bytes = 4096};
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open_durable(name, &o, &d, SHMBUS_OPEN_CREATE, &b), 0);
    shmbus_client *s, *r, *keep;
    assert_int_equal(shmbus_join(b, 1, NULL, &s), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_int_equal(shmbus_join(b, 3, NULL, &keep), 0);
    /* 20 messages to client 3, never taken, among 2000 to client 2, all taken. */
    char buf[64];
    for (int i = 0; i < 2000; i++) {
        if (i % 100 == 0) {
            int n = snprintf(buf, sizeof(buf), "msg-%d", i / 100);
            assert_int_equal(shmbus_send(s, 3, buf, (size_t)n, 0, 0), 0);
        }
        assert_int_equal(shmbus_send(s, 2, "xxxxxxxx", 8, 0, 0), 0);
        assert_int_equal(shmbus_recv(r, NULL, buf, sizeof(buf), 0), 8);
    }
    struct shmbus_journal_stats js;
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_true(js.compactions >= 10);
    assert_true(js.epoch > 10);
    char p[1024];
    jfile(name, p, sizeof(p));
    /* 2000 x (message + marker) would be 240 KB; the live file holds the 20 and a little. */
    assert_true(fsize(p) < 4096 + 2 * 64 + 2 * 20 * 64);
    shmbus_leave(keep);
    shmbus_leave(r);
    shmbus_leave(s);
    shmbus_bus_close(b);
    th_reboot_sim(name);
    b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_int_equal(js.rebuilt, 20);
    assert_int_equal(shmbus_join(b, 3, NULL, &keep), 0);
    assert_int_equal(drain_expect(keep, 0, 1), 20);
    shmbus_leave(keep);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    th_rm_rf(jdir);
}

/* One receive batch takes two messages of a sender, and between them in the journal lies a
 * message of another sender that nobody takes: compaction drops the two (one marker run)
 * and keeps the one between. */
static void test_compaction_interleaved(void **state)
{
    (void)state;
    const char *name = th_name("cmpi");
    new_jdir("cmpi");
    struct shmbus_bus_opts o = {.max_clients = 8, .msg_size = 256, .ring_bytes = 64 * 1024};
    struct shmbus_durable d = {.dir = jdir, .sync = SHMBUS_SYNC_NONE, .compact_bytes = 4096};
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open_durable(name, &o, &d, SHMBUS_OPEN_CREATE, &b), 0);
    shmbus_client *a, *r, *keep, *other;
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_int_equal(shmbus_join(b, 3, NULL, &keep), 0);
    assert_int_equal(shmbus_join(b, 4, NULL, &other), 0);
    char buf[2][64];
    struct shmbus_msg hd[2];
    for (int i = 0; i < 200; i++) {
        char m[32];
        int n = snprintf(m, sizeof(m), "msg-%d", i);
        assert_int_equal(shmbus_send(a, 2, "a1", 2, 0, 0), 0);
        assert_int_equal(shmbus_send(other, 3, m, (size_t)n, 0, 0), 0);
        assert_int_equal(shmbus_send(a, 2, "a2", 2, 0, 0), 0);
        assert_int_equal(shmbus_recv_batch(r, hd, buf, sizeof(buf[0]), 2, 0), 2);
    }
    struct shmbus_journal_stats js;
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_true(js.compactions >= 5);
    shmbus_leave(other);
    shmbus_leave(keep);
    shmbus_leave(r);
    shmbus_leave(a);
    shmbus_bus_close(b);
    th_reboot_sim(name);
    b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_int_equal(js.rebuilt, 200);
    assert_int_equal(shmbus_join(b, 3, NULL, &keep), 0);
    assert_int_equal(drain_expect(keep, 0, 4), 200);
    shmbus_leave(keep);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    th_rm_rf(jdir);
}

/* Compaction reads the file in windows (a few MiB), not whole: a file many windows long, with
 * messages kept for client 3 spread over it (large ones, so records cross the windows'
 * edges), a damaged record and a stretch of garbage longer than a window in the middle.
 * The compaction still keeps every message not taken, byte for byte, and nothing taken
 * comes back. */
#define BIG_LEN  (48 * 1024 + 13)
#define BIG_KEEP 11
static void fill_big(char *m, int k, size_t len)
{
    for (size_t i = 0; i < len; i++)
        m[i] = (char)('a' + (k * 7 + (int)i) % 26);
    snprintf(m, 16, "keep-%d", k);
}

/* The record of the file at p that holds byte off (all records whole and good so far). */
static off_t rec_at(int fd, off_t off, struct sb_jrec *out)
{
    off_t pos = sizeof(struct sb_jfile_hdr);
    for (;;) {
        assert_int_equal(pread(fd, out, sizeof(*out), pos), (ssize_t)sizeof(*out));
        assert_int_equal(out->magic, SB_JREC_MAGIC);
        off_t next = pos + (off_t)((out->size + 7u) & ~7u);
        if (off < next)
            return pos;
        pos = next;
    }
}

static void test_compaction_windows(void **state)
{
    (void)state;
    const char *name = th_name("cmpw");
    new_jdir("cmpw");
    struct shmbus_bus_opts o = {.max_clients = 8, .msg_size = 64 * 1024, .ring_bytes = 1 << 20};
    struct shmbus_durable d = {.dir = jdir, .sync = SHMBUS_SYNC_NONE, .compact_bytes = 14u << 20};
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open_durable(name, &o, &d, SHMBUS_OPEN_CREATE, &b), 0);
    shmbus_client *s, *r, *keep;
    assert_int_equal(shmbus_join(b, 1, NULL, &s), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_int_equal(shmbus_join(b, 3, NULL, &keep), 0);
    static char m[64 * 1024], got[64 * 1024];
    /* ~12 MiB: sent to 2 and taken, and 11 kept for 3. */
    int sent = 0;
    for (int i = 0; i < 250; i++) {
        size_t len = BIG_LEN - 200 - (size_t)(i % 5) * 1001;
        memset(m, 'x', len);
        if (i % 10 == 5 && (i < 60 || i >= 200)) { /* none from 2.9 to 9.6 MiB */
            fill_big(m, sent, BIG_LEN);
            assert_int_equal(shmbus_send(s, 3, m, BIG_LEN, 0, 0), 0);
            sent++;
        }
        assert_int_equal(shmbus_send(s, 2, m, len, 0, 0), 0);
        assert_int_equal(shmbus_recv(r, NULL, got, sizeof(got), 0), (int)len);
    }
    struct shmbus_journal_stats js;
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_int_equal(js.compactions, 0);
    char p[1024];
    jfile(name, p, sizeof(p));
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    /* A flipped byte in a taken message at about 3 MiB, and 4 MiB of garbage over whole
     * message-and-marker pairs to 2 (no marker of a message outside it is lost, no message
     * for 3 is in it). */
    struct sb_jrec h;
    off_t at = rec_at(fd, 3 << 20, &h);
    if (h.dst != 2 || h.type != SB_JREC_MSG)
        at = rec_at(fd, at + (off_t)((h.size + 7u) & ~7u), &h);
    assert_int_equal(h.dst, 2);
    char c = 0;
    assert_int_equal(pread(fd, &c, 1, at + 200), 1);
    c ^= 0x40;
    assert_int_equal(pwrite(fd, &c, 1, at + 200), 1);
    /* The garbage ends where a message for 3 starts, and that message crosses the point four
     * windows' halves (SNAP_REC in journal.c) after the garbage's start: a scan that skipped
     * a whole window of garbage instead of half of one would miss it. */
    const off_t half = (off_t)(sizeof(struct sb_jrec) + SHMBUS_MAX_MSG_SIZE + 8);
    off_t g1 = rec_at(fd, 9 << 20, &h);
    while (h.type != SB_JREC_MSG || h.dst != 3)
        g1 = rec_at(fd, g1 + (off_t)((h.size + 7u) & ~7u), &h);
    off_t ksize = (off_t)((h.size + 7u) & ~7u);
    off_t g0 = rec_at(fd, g1 - 4 * half + 1, &h);
    while (h.type != SB_JREC_TAKEN || g0 + (off_t)sizeof(h) <= g1 - 4 * half)
        g0 = rec_at(fd, g0 + (off_t)((h.size + 7u) & ~7u), &h);
    g0 += (off_t)sizeof(h);
    assert_true(g0 > 4 << 20 && g0 + 4 * half > g1 && g0 + 4 * half < g1 + ksize);
    for (off_t q = g0; q < g1; q += sizeof(m)) {
        size_t n = g1 - q < (off_t)sizeof(m) ? (size_t)(g1 - q) : sizeof(m);
        memset(got, 0xab, n);
        assert_int_equal(pwrite(fd, got, n, q), (ssize_t)n);
    }
    close(fd);
    for (int i = 0; i < 100; i++) {
        memset(m, 'y', 40000);
        assert_int_equal(shmbus_send(s, 2, m, 40000, 0, 0), 0);
        assert_int_equal(shmbus_recv(r, NULL, got, sizeof(got), 0), 40000);
    }
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_true(js.compactions >= 1);
    shmbus_leave(keep);
    shmbus_leave(r);
    shmbus_leave(s);
    shmbus_bus_close(b);
    th_reboot_sim(name);
    assert_int_equal(shmbus_bus_open_durable(name, &o, &d, SHMBUS_OPEN_CREATE, &b), 0);
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_int_equal(js.rebuilt, BIG_KEEP);
    assert_int_equal(shmbus_join(b, 3, NULL, &keep), 0);
    int k = 0;
    for (;; k++) {
        struct shmbus_msg hd;
        int n = shmbus_recv(keep, &hd, got, sizeof(got), 0);
        if (n == -EAGAIN)
            break;
        assert_int_equal(n, BIG_LEN);
        assert_true(k < BIG_KEEP);
        fill_big(m, k, BIG_LEN);
        assert_memory_equal(got, m, BIG_LEN);
    }
    assert_int_equal(k, BIG_KEEP);
    shmbus_leave(keep);
    shmbus_client *r2;
    assert_int_equal(shmbus_join(b, 2, NULL, &r2), 0);
    assert_int_equal(shmbus_recv(r2, NULL, got, sizeof(got), 0), -EAGAIN);
    shmbus_leave(r2);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    th_rm_rf(jdir);
}

struct scan_count {
    int taken, waiting, replayed_flag;
    uint64_t first_taken_seq;
};

static int count_entry(const struct shmbus_journal_entry *e, const void *data, void *arg)
{
    struct scan_count *sc = arg;
    if (e->taken) {
        if (sc->taken++ == 0)
            sc->first_taken_seq = e->msg.seq;
    } else {
        sc->waiting++;
    }
    assert_true(e->msg.len < 64);
    assert_true(e->msg.len == 0 || data != NULL);
    assert_true(e->time_ns > 0);
    return 0;
}

/* Retention: taken messages stay in the journal (through compaction and a rebuild) for
 * shmbus_journal_scan() and replay, and a rebuild never delivers them again. Without
 * retention, compaction removes them. */
static void test_retention_and_replay(void **state)
{
    (void)state;
    for (int mode = 0; mode < 3; mode++) { /* 0: none, 1: by time, 2: by size */
        char name[64];
        snprintf(name, sizeof(name), "%s%d", th_name("ret"), mode);
        char tag[16];
        snprintf(tag, sizeof(tag), "ret%d", mode);
        new_jdir(tag);
        struct shmbus_bus_opts o = {.max_clients = 8, .msg_size = 256, .ring_bytes = 64 * 1024};
        struct shmbus_durable d = {.dir = jdir, .sync = SHMBUS_SYNC_NONE, .compact_bytes = 4096};
        if (mode == 1)
            d.retain_ns = 3600ull * 1000000000u;
        if (mode == 2)
            d.retain_bytes = 10 * 64; /* the newest 10 of "msg-NNN" (56 + 7 bytes each) */
        shmbus_bus *b;
        assert_int_equal(shmbus_bus_open_durable(name, &o, &d, SHMBUS_OPEN_CREATE, &b), 0);
        shmbus_client *s, *r;
        assert_int_equal(shmbus_join(b, 1, NULL, &s), 0);
        assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
        send_n(s, 2, 100, 200); /* msg-100..msg-199: 100 x 64 bytes, compacted more than once */
        char buf[64];
        for (int i = 0; i < 95; i++)
            assert_int_equal(shmbus_recv(r, NULL, buf, sizeof(buf), 0), 7);
        send_n(s, 2, 200, 260); /* more writes: compactions after the takes */
        struct shmbus_journal_stats js;
        assert_int_equal(shmbus_journal_stats(b, &js), 0);
        assert_true(js.compactions >= 1);
        struct scan_count sc = {0};
        assert_int_equal(shmbus_journal_scan(b, count_entry, &sc), 0);
        assert_int_equal(sc.waiting, 65);
        if (mode == 0)
            assert_int_equal(sc.taken, 0);
        else if (mode == 1)
            assert_int_equal(sc.taken, 95);
        else
            assert_true(sc.taken >= 10 && sc.taken <= 20); /* the newest, within the size */
        shmbus_leave(r);
        shmbus_leave(s);
        shmbus_bus_close(b);
        th_reboot_sim(name);
        /* The rebuild delivers the 65 waiting ones only, and keeps what retention keeps. */
        assert_int_equal(shmbus_bus_open_durable(name, &o, &d, SHMBUS_OPEN_CREATE, &b), 0);
        assert_int_equal(shmbus_journal_stats(b, &js), 0);
        assert_int_equal(js.rebuilt, 65);
        struct scan_count sc2 = {0};
        assert_int_equal(shmbus_journal_scan(b, count_entry, &sc2), 0);
        assert_int_equal(sc2.waiting, 65);
        if (mode == 1)
            assert_int_equal(sc2.taken, 95);
        if (mode == 2)
            assert_int_equal(sc2.taken, 10);
        assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
        assert_int_equal(drain_expect(r, 195, 1), 65);
        /* Replay: a message sent again is flagged as such. */
        assert_int_equal(shmbus_join(b, 3, NULL, &s), 0);
        assert_int_equal(shmbus_send(s, 2, "again", 5, SHMBUS_SEND_REPLAY, 0), 0);
        struct shmbus_msg m;
        assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), 5);
        assert_int_equal(m.flags, SHMBUS_MSG_REPLAYED);
        shmbus_leave(s);
        shmbus_leave(r);
        shmbus_bus_close(b);
        assert_int_equal(shmbus_bus_destroy(name), 0);
        th_rm_rf(jdir);
    }
}

/* A send_batch whose journal write is cut short (full disk) accepted nothing: none of its
 * messages, not even the ones whose records were written whole, come back after a reboot. */
static int batch_enospc_child(void *arg)
{
    const char *name = arg;
    signal(SIGXFSZ, SIG_IGN);
    shmbus_bus *b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    shmbus_client *s, *r;
    if (shmbus_join(b, 1, NULL, &s) || shmbus_join(b, 2, NULL, &r))
        return 10;
    char p[1024];
    jfile(name, p, sizeof(p));
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    struct rlimit lim = {.rlim_cur = (rlim_t)fsize(p) + 2 * REC + 30, .rlim_max = rl.rlim_max};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        return 11;
    struct shmbus_iov v[5] = {{"bad-0", 5}, {"bad-1", 5}, {"bad-2", 5}, {"bad-3", 5}, {"bad-4", 5}};
    if (shmbus_send_batch(s, 2, v, 5, 0, 0) != -ENOSPC)
        return 12;
    char buf[64];
    if (shmbus_recv(r, NULL, buf, sizeof(buf), 0) != -EAGAIN)
        return 13; /* nothing of the batch became visible */
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        return 14;
    struct shmbus_iov w[3] = {{"msg-0", 5}, {"msg-1", 5}, {"msg-2", 5}};
    if (shmbus_send_batch(s, 2, w, 3, 0, 0) != 3)
        return 15;
    shmbus_leave(r);
    shmbus_leave(s);
    shmbus_bus_close(b);
    return 0;
}

static void test_batch_cut_short(void **state)
{
    (void)state;
    struct shmbus_journal_stats js;
    child_then_rebuild("bcut", batch_enospc_child, 0, 3, &js); /* msg-0..2 only: no bad-* */
    assert_int_equal(js.rebuilt, 3);
}

/* A receive batch: one taken marker per run of a sender's consecutive messages, written
 * before anything is taken; a full disk takes nothing. In a child (the file-size limit). */
static int batch_recv_child(void *arg)
{
    const char *name = arg;
    signal(SIGXFSZ, SIG_IGN);
    shmbus_bus *b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    shmbus_client *s1, *s3, *r;
    if (shmbus_join(b, 1, NULL, &s1) || shmbus_join(b, 3, NULL, &s3) || shmbus_join(b, 2, NULL, &r))
        return 10;
    /* msg-0..5 from 1, x-0..2 from 3, msg-6..9 from 1. */
    send_n(s1, 2, 0, 6);
    for (int i = 0; i < 3; i++) {
        char m[8];
        int n = snprintf(m, sizeof(m), "x-%d", i);
        if (shmbus_send(s3, 2, m, (size_t)n, 0, 0) != 0)
            return 11;
    }
    send_n(s1, 2, 6, 10);
    char p[1024];
    jfile(name, p, sizeof(p));
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    struct rlimit lim = {.rlim_cur = (rlim_t)fsize(p) + 20, .rlim_max = rl.rlim_max};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        return 12;
    struct shmbus_msg h[13];
    char bufs[13][32];
    /* Full: no marker fits, nothing is taken. */
    if (shmbus_recv_batch(r, h, bufs, sizeof(bufs[0]), 13, 0) != -ENOSPC)
        return 13;
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        return 14;
    off_t before = fsize(p);
    if (shmbus_recv_batch(r, h, bufs, sizeof(bufs[0]), 10, 0) != 10)
        return 15;
    const char *want[10] = {"msg-0", "msg-1", "msg-2", "msg-3", "msg-4",
                            "msg-5", "x-0",   "x-1",   "x-2",   "msg-6"};
    for (int i = 0; i < 10; i++)
        if (h[i].len != strlen(want[i]) || memcmp(bufs[i], want[i], h[i].len) != 0)
            return 16;
    /* Three runs (msg-0..5, x-0..2, msg-6): three markers, not ten. */
    if (fsize(p) - before != 3 * 56)
        return 17;
    shmbus_leave(r);
    shmbus_leave(s3);
    shmbus_leave(s1);
    shmbus_bus_close(b);
    return 0;
}

static void test_batch_receive_markers(void **state)
{
    (void)state;
    /* Only msg-7..9 were not taken: they, once each, in order. */
    struct shmbus_journal_stats js;
    child_then_rebuild("brecv", batch_recv_child, 7, 3, &js);
    assert_int_equal(js.rebuilt, 3);
}

/* Fill client 2's mailbox with msg-0.. from s by non-blocking send_batch calls; how many
 * were accepted. */
static int fill_ring(shmbus_client *s)
{
    char m[64][16];
    struct shmbus_iov v[64];
    int sent = 0;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            int n = snprintf(m[i], sizeof(m[i]), "msg-%d", sent + i);
            v[i] = (struct shmbus_iov){m[i], (size_t)n};
        }
        int k = shmbus_send_batch(s, 2, v, 64, SHMBUS_SEND_NONBLOCK, 0);
        if (k == -EAGAIN)
            return sent;
        assert_true(k > 0);
        sent += k;
    }
}

struct ahead_send {
    shmbus_client *s;
    int first, n, result;
};

/* A sending thread: msg-first .. msg-(first + n - 1) in one blocking send_batch. */
static void *ahead_send_thread(void *arg)
{
    struct ahead_send *a = arg;
    char m[16][16];
    struct shmbus_iov v[16];
    for (int i = 0; i < a->n; i++) {
        int len = snprintf(m[i], sizeof(m[i]), "msg-%d", a->first + i);
        v[i] = (struct shmbus_iov){m[i], (size_t)len};
    }
    a->result = shmbus_send_batch(a->s, 2, v, (size_t)a->n, 0, 10000);
    return NULL;
}

/* A blocking send_batch that finds no room writes its records first and places them as
 * room comes (send_batch_ahead()). What it could not place before its deadline is
 * cancelled; what it placed after waiting is kept like any message. After a reboot exactly
 * the messages that were accepted and not taken come back, once, in order. */
static void test_batch_ahead_cancelled(void **state)
{
    (void)state;
    const char *name = th_name("ahead");
    new_jdir("ahead");
    shmbus_bus *b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    shmbus_client *s, *r;
    assert_int_equal(shmbus_join(b, 1, NULL, &s), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    int full = fill_ring(s);
    assert_true(full > 100);
    char p[1024];
    jfile(name, p, sizeof(p));
    off_t before = fsize(p);
    struct shmbus_iov late[5] = {
        {"late0", 5}, {"late1", 5}, {"late2", 5}, {"late3", 5}, {"late4", 5}};
    assert_int_equal(shmbus_send_batch(s, 2, late, 5, 0, 30), -ETIMEDOUT);
    /* Written ahead (five records), then one CANCEL marker for the five. */
    before += 5 * REC + 56;
    assert_int_equal(fsize(p), before);
    /* Another one waits in a thread: once its records are written, make room. */
    struct ahead_send a = {.s = s, .first = full, .n = 8};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, ahead_send_thread, &a), 0);
    uint64_t give_up = th_now_ns() + 10000000000ull;
    while (fsize(p) < before + 8 * REC && th_now_ns() < give_up)
        usleep(1000); /* polling the condition, with a deadline */
    assert_int_equal(fsize(p), before + 8 * REC);
    struct shmbus_msg h[20];
    char bufs[20][32];
    assert_int_equal(shmbus_recv_batch(r, h, bufs, sizeof(bufs[0]), 20, 0), 20);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.result, 8);
    shmbus_leave(r);
    shmbus_leave(s);
    shmbus_bus_close(b);
    th_reboot_sim(name);

    /* msg-20 .. msg-(full + 7): the first 20 were taken, late* cancelled. */
    b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    struct shmbus_journal_stats js;
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_int_equal(js.rebuilt, full - 20 + 8);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_int_equal(drain_expect(r, 20, 1), full - 20 + 8);
    shmbus_leave(r);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    th_rm_rf(jdir);
}

/* A journal directory others can write to would let them plant a journal that the next
 * rebuild delivers: such a directory is refused at creation, and an attached process
 * refuses it too once someone loosened it; so is another user's, and a file. Nothing is
 * written into a refused directory. */
static void test_journal_dir_refused(void **state)
{
    (void)state;
    const char *name = th_name("jdir");
    new_jdir("jdir");
    int err;
    assert_int_equal(mkdir(jdir, 0700), 0);
    const mode_t loose[] = {0777, 0770, 0702, 01777};
    for (size_t i = 0; i < sizeof(loose) / sizeof(loose[0]); i++) {
        assert_int_equal(chmod(jdir, loose[i]), 0);
        assert_null(open_durable(name, SHMBUS_SYNC_NONE, &err));
        assert_int_equal(err, -EACCES);
    }
    assert_int_equal(chmod(jdir, 0700), 0);
    if (geteuid() == 0) { /* another user's directory, however private */
        assert_int_equal(chown(jdir, 65534, 65534), 0);
        assert_null(open_durable(name, SHMBUS_SYNC_NONE, &err));
        assert_int_equal(err, -EACCES);
        assert_int_equal(chown(jdir, 0, 0), 0);
    }
    DIR *d = opendir(jdir);
    assert_non_null(d);
    int files = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        files += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 0);
    /* A file where the directory should be. */
    char file[600];
    snprintf(file, sizeof(file), "%s/plain", jdir);
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    struct shmbus_bus_opts o = {.max_clients = 8, .msg_size = 256, .ring_bytes = 64 * 1024};
    struct shmbus_durable dd = {.dir = file, .sync = SHMBUS_SYNC_NONE};
    shmbus_bus *b = NULL;
    assert_int_equal(shmbus_bus_open_durable(name, &o, &dd, SHMBUS_OPEN_CREATE, &b), -ENOTDIR);
    assert_int_equal(unlink(file), 0);
    /* Private again: it works; loosened while the bus runs, a new process refuses it. */
    b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    assert_int_equal(chmod(jdir, 0777), 0);
    shmbus_bus *b2 = NULL;
    assert_int_equal(shmbus_bus_open(name, NULL, 0, &b2), -EACCES);
    assert_int_equal(chmod(jdir, 0700), 0);
    assert_int_equal(shmbus_bus_open(name, NULL, 0, &b2), 0);
    shmbus_bus_close(b2);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    th_rm_rf(jdir);
}

/* The receiver of test_dead_receiver_kept: joins id 2, says so, waits for the word, takes
 * three messages (one by one, or as one batch) and dies at once with SIGKILL, its private
 * position unpublished (three of ten taken: not caught up). */
struct kept_child {
    const char *name;
    int fd[2], batch;
};

static int kept_receiver(void *arg)
{
    struct kept_child *k = arg;
    shmbus_bus *b;
    shmbus_client *r;
    if (shmbus_bus_open(k->name, NULL, 0, &b) < 0 || shmbus_join(b, 2, NULL, &r) < 0)
        return 10;
    char go = 1;
    if (write(k->fd[1], &go, 1) != 1 || read(k->fd[0], &go, 1) != 1)
        return 11;
    struct shmbus_msg h[3];
    char bufs[3][32];
    if (k->batch) {
        if (shmbus_recv_batch(r, h, bufs, sizeof(bufs[0]), 3, 1000) != 3)
            return 12;
    } else {
        for (int i = 0; i < 3; i++)
            if (shmbus_recv(r, &h[i], bufs[i], sizeof(bufs[i]), 1000) < 0)
                return 12;
    }
    raise(SIGKILL);
    return 13;
}

/* Run kept_receiver (batch or not) until it has died after its three messages; the ten
 * messages from..from + 9 are sent to id 2 once it has joined (n of them, 0 for none). */
static void kill_after_three(const char *name, int batch, shmbus_client *s, int from, int n)
{
    struct kept_child k = {.name = name, .batch = batch};
    int up[2], down[2];
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(down), 0);
    k.fd[0] = down[0];
    k.fd[1] = up[1];
    pid_t pid = th_fork(kept_receiver, &k);
    char c = 0;
    assert_int_equal(read(up[0], &c, 1), 1); /* joined */
    if (n > 0)
        send_n(s, 2, from, from + n);
    assert_int_equal(write(down[1], &c, 1), 1);
    assert_int_equal(th_wait(pid, 20000), 128 + SIGKILL);
    for (int i = 0; i < 2; i++) {
        close(up[i]);
        close(down[i]);
    }
}

/* On a durable bus a receiver's mailbox outlives the receiver: killed after taking three
 * of ten messages (by recv, then by recv_batch), it is cleaned up and its mailbox kept, and
 * the next client of its id gets the other seven, once, in order; a client that leaves
 * keeps its mailbox too. Nothing comes back after a reboot: everything was taken. */
static void test_dead_receiver_kept(void **state)
{
    (void)state;
    const char *name = th_name("kept");
    new_jdir("kept");
    shmbus_bus *b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    shmbus_client *s, *r;
    assert_int_equal(shmbus_join(b, 1, NULL, &s), 0);
    int next = 0;
    for (int batch = 0; batch < 2; batch++) {
        kill_after_three(name, batch, s, next, 10);
        assert_int_equal(shmbus_reap(b), 1);
        struct shmbus_client_info info[8];
        int n = shmbus_list(b, info, 8);
        assert_int_equal(n, 2);
        assert_int_equal(info[1].id, 2);
        assert_int_equal(info[1].state, SHMBUS_CLIENT_KEPT);
        assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
        assert_int_equal(drain_expect(r, next + 3, 1), 7);
        next += 10;
        /* A plain leave keeps what is left, for the next client of the id. */
        send_n(s, 2, next, next + 4);
        char buf[32];
        struct shmbus_msg m;
        assert_int_equal(shmbus_recv(r, &m, buf, sizeof(buf), 0), 5 + (next >= 10));
        shmbus_leave(r);
        assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
        assert_int_equal(drain_expect(r, next + 1, 1), 3);
        shmbus_leave(r);
        next += 4;
    }
    /* Ten more left in the mailbox at a reboot: the rebuilt mailbox is kept (stamped with
     * a generation of the rebuild's). Its first client dies after three: the next gets the
     * other seven (a mailbox kept twice keeps one generation: the cleaner restamps). */
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    send_n(s, 2, next, next + 10);
    shmbus_leave(r);
    shmbus_leave(s);
    shmbus_bus_close(b);
    th_reboot_sim(name);
    b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    struct shmbus_journal_stats js;
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_int_equal(js.rebuilt, 10);
    kill_after_three(name, 0, NULL, 0, 0);
    assert_int_equal(shmbus_reap(b), 1);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_int_equal(drain_expect(r, next + 3, 1), 7);
    shmbus_leave(r);
    shmbus_bus_close(b);
    th_reboot_sim(name);
    b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_int_equal(js.rebuilt, 0); /* everything was taken */
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    th_rm_rf(jdir);
}

/* The child of test_cancel_pending: a batch written ahead whose CANCEL marker finds the
 * disk full (a file-size limit with room for the records only), twice. The first marker
 * goes out before the handle's next record (a receive's taken marker), the second at the
 * handle's close. Returns 0, or the step that failed. */
static int cancel_pending_child(void *arg)
{
    const char *name = arg;
    signal(SIGXFSZ, SIG_IGN);
    shmbus_bus *b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    shmbus_client *s, *r;
    if (b == NULL || shmbus_join(b, 1, NULL, &s) || shmbus_join(b, 2, NULL, &r))
        return 10;
    int full = fill_ring(s);
    for (;; full++) { /* and the last bits of room a batch of 64 did not take */
        char m[16];
        int len = snprintf(m, sizeof(m), "msg-%d", full);
        if (shmbus_send(s, 2, m, (size_t)len, SHMBUS_SEND_NONBLOCK, 0) != 0)
            break;
    }
    if (full < 100)
        return 11;
    char p[1024];
    jfile(name, p, sizeof(p));
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    struct shmbus_iov late[3] = {{"late0", 5}, {"late1", 5}, {"late2", 5}};
    for (int round = 0; round < 2; round++) {
        off_t before = fsize(p);
        struct rlimit lim = {.rlim_cur = (rlim_t)before + 3 * REC, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
            return 12;
        /* No room in the ring: written ahead, not placed by the deadline, not sent. */
        if (shmbus_send_batch(s, 2, late, 3, 0, 30) != -ETIMEDOUT)
            return 13;
        if (fsize(p) != before + 3 * REC) /* the records, not their CANCEL marker */
            return 14;
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            return 15;
        if (round == 1)
            break;
        /* Room again: the next write of this handle takes msg-0 (its taken marker), and
         * the pending CANCEL marker goes first. */
        char buf[64];
        struct shmbus_msg hm;
        if (shmbus_recv(r, &hm, buf, sizeof(buf), 0) != 5 || memcmp(buf, "msg-0", 5) != 0)
            return 16;
        if (fsize(p) != before + 3 * REC + 2 * 56)
            return 17;
        char m[16]; /* the ring full again */
        int len = snprintf(m, sizeof(m), "msg-%d", full);
        if (shmbus_send(s, 2, m, (size_t)len, SHMBUS_SEND_NONBLOCK, 0) != 0)
            return 18;
    }
    off_t before = fsize(p);
    shmbus_leave(r);
    shmbus_leave(s);
    shmbus_bus_close(b); /* writes the second pending marker */
    return fsize(p) == before + 56 ? 0 : 19;
}

/* A send batch that reported messages as not sent must never have them delivered, even
 * when its CANCEL marker could not be written at once (a full disk): the marker waits in
 * the bus handle and is written first when there is room. After the reboot client 2 gets
 * msg-1 .. msg-full, once each, in order, and none of the six late ones. */
static void test_cancel_pending(void **state)
{
    (void)state;
    const char *name = th_name("cpend");
    new_jdir("cpend");
    pid_t pid = th_fork(cancel_pending_child, (void *)name);
    assert_int_equal(th_wait(pid, 20000), 0); /* else the step that failed */
    th_reboot_sim(name);
    shmbus_bus *b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    struct shmbus_journal_stats js;
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_int_equal(js.damaged, 0);
    assert_int_equal(js.deferred, 0);
    shmbus_client *r;
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    int n = drain_expect(r, 1, 1); /* a late* message would fail its check */
    assert_true(n >= 100);
    assert_int_equal((uint64_t)n, js.rebuilt);
    shmbus_leave(r);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    th_rm_rf(jdir);
}

/* The sender of test_batch_ahead_killed: fills client 2's mailbox, then waits in a blocking
 * send_batch of five more (written ahead) until it is killed. */
static int ahead_killed_child(void *arg)
{
    const char *name = arg;
    shmbus_bus *b = NULL;
    shmbus_client *s;
    if (shmbus_bus_open(name, NULL, 0, &b) < 0 || shmbus_join(b, 1, NULL, &s) < 0)
        return 10;
    int full = fill_ring(s);
    char m[5][16];
    struct shmbus_iov v[5];
    for (int i = 0; i < 5; i++) {
        int len = snprintf(m[i], sizeof(m[i]), "msg-%d", full + i);
        v[i] = (struct shmbus_iov){m[i], (size_t)len};
    }
    shmbus_send_batch(s, 2, v, 5, 0, -1); /* waits for room until killed */
    return 11;
}

/* A sender killed after writing a batch ahead and before placing it: its send never
 * returned, so the rebuild may deliver the batch, and does, once, after what it had sent
 * before, in order (as for a sender killed between its record and its commit). */
static void test_batch_ahead_killed(void **state)
{
    (void)state;
    const char *name = th_name("akill");
    new_jdir("akill");
    shmbus_bus *b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    shmbus_client *r;
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    char p[1024];
    jfile(name, p, sizeof(p));
    pid_t pid = th_fork(ahead_killed_child, (void *)name);
    /* The ring holds 1024 one-unit messages (64 KiB): wait for those and five more. */
    uint64_t give_up = th_now_ns() + 10000000000ull;
    while (fsize(p) < (off_t)sizeof(struct sb_jfile_hdr) + (1024 + 5) * REC &&
           th_now_ns() < give_up)
        usleep(1000); /* polling the condition, with a deadline */
    kill(pid, SIGKILL);
    assert_int_equal(th_wait(pid, 10000), 128 + SIGKILL);
    shmbus_leave(r);
    shmbus_bus_close(b);
    th_reboot_sim(name);

    /* The mailbox holds 1024: the five written ahead wait in the journal (deferred) and come
     * at the next rebuild, after the others were taken. */
    b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    struct shmbus_journal_stats js;
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_int_equal(js.rebuilt, 1024);
    assert_int_equal(js.deferred, 5);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_int_equal(drain_expect(r, 0, 1), 1024);
    shmbus_leave(r);
    shmbus_bus_close(b);
    th_reboot_sim(name);
    b = open_durable(name, SHMBUS_SYNC_NONE, NULL);
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_int_equal(js.rebuilt, 5);
    assert_int_equal(shmbus_join(b, 2, NULL, &r), 0);
    assert_int_equal(drain_expect(r, 1024, 1), 5);
    shmbus_leave(r);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    th_rm_rf(jdir);
}

#define AHEAD_MORE 3000

struct ahead_arg {
    const char *name;
    int ready[2], go[2]; /* pipes: the child has joined; the mailbox is full */
};

/* The receiver of test_batch_ahead_stream: joins as 2, says so, waits until the sender
 * has filled its mailbox, then takes msg-0 .. in order, by batches, until there are no
 * more for a second. Exits with 0 only if it got full + AHEAD_MORE of them (read from go). */
static int ahead_recv_child(void *arg)
{
    struct ahead_arg *a = arg;
    shmbus_bus *b = NULL;
    shmbus_client *r;
    if (shmbus_bus_open(a->name, NULL, 0, &b) < 0 || shmbus_join(b, 2, NULL, &r) < 0)
        return 10;
    char x = 1;
    int n = 0;
    if (write(a->ready[1], &x, 1) != 1 || read(a->go[0], &n, sizeof(n)) != (ssize_t)sizeof(n))
        return 11;
    struct shmbus_msg h[64];
    char bufs[64][32];
    for (int got = 0; got < n;) {
        int k = shmbus_recv_batch(r, h, bufs, sizeof(bufs[0]), 64, 10000);
        if (k <= 0)
            return 12;
        for (int i = 0; i < k; i++) {
            char want[32];
            int len = snprintf(want, sizeof(want), "msg-%d", got + i);
            if (h[i].len != (uint32_t)len || memcmp(bufs[i], want, (size_t)len) != 0)
                return 13;
        }
        got += k;
    }
    shmbus_leave(r);
    shmbus_bus_close(b);
    return 0;
}

/* A stream whose sender keeps finding the mailbox full (it was filled before the receiver
 * started), so that its batches go through send_batch_ahead(): everything arrives once, in
 * order, and after a reboot nothing comes back (everything was taken). */
static void test_batch_ahead_stream(void **state)
{
    (void)state;
    struct ahead_arg a = {.name = th_name("astream")};
    new_jdir("astream");
    shmbus_bus *b = open_durable(a.name, SHMBUS_SYNC_NONE, NULL);
    assert_int_equal(pipe(a.ready), 0);
    assert_int_equal(pipe(a.go), 0);
    pid_t pid = th_fork(ahead_recv_child, &a);
    char x;
    assert_int_equal(read(a.ready[0], &x, 1), 1);
    shmbus_client *s;
    assert_int_equal(shmbus_join(b, 1, NULL, &s), 0);
    int full = fill_ring(s), n = full + AHEAD_MORE;
    assert_int_equal(write(a.go[1], &n, sizeof(n)), (ssize_t)sizeof(n));
    char m[100][16];
    struct shmbus_iov v[100];
    for (int sent = full; sent < n;) {
        int want = n - sent < 100 ? n - sent : 100;
        for (int i = 0; i < want; i++) {
            int len = snprintf(m[i], sizeof(m[i]), "msg-%d", sent + i);
            v[i] = (struct shmbus_iov){m[i], (size_t)len};
        }
        int k = shmbus_send_batch(s, 2, v, (size_t)want, 0, 10000);
        if (k <= 0)
            fail_msg("send_batch: %s", shmbus_strerror(k));
        sent += k;
    }
    assert_int_equal(th_wait(pid, 30000), 0);
    for (int i = 0; i < 2; i++) {
        close(a.ready[i]);
        close(a.go[i]);
    }
    shmbus_leave(s);
    shmbus_bus_close(b);
    th_reboot_sim(a.name);

    b = open_durable(a.name, SHMBUS_SYNC_NONE, NULL);
    struct shmbus_journal_stats js;
    assert_int_equal(shmbus_journal_stats(b, &js), 0);
    assert_int_equal(js.rebuilt, 0);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(a.name), 0);
    th_rm_rf(jdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_rebuild_delivers_untaken_once),
        cmocka_unit_test(test_rebuild_marker_far_behind),
        cmocka_unit_test(test_sync_levels),
        cmocka_unit_test(test_torn_tail_and_bad_crc),
        cmocka_unit_test(test_random_flips),
        cmocka_unit_test(test_foreign_and_old_journal),
        cmocka_unit_test(test_enospc),
        cmocka_unit_test(test_loans_refused),
        cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_compaction_windows),
        cmocka_unit_test(test_compaction_interleaved),
        cmocka_unit_test(test_retention_and_replay),
        cmocka_unit_test(test_batch_cut_short),
        cmocka_unit_test(test_batch_receive_markers),
        cmocka_unit_test(test_batch_ahead_cancelled),
        cmocka_unit_test(test_batch_ahead_stream),
        cmocka_unit_test(test_batch_ahead_killed),
        cmocka_unit_test(test_cancel_pending),
        cmocka_unit_test(test_journal_dir_refused),
        cmocka_unit_test(test_dead_receiver_kept),
    };
    th_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, th_cleanup);
}
