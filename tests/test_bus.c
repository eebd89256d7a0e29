/*
 * test_bus: opening, creating, checking and destroying buses; names; permissions; segments
 * that are not ours.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "shmbus.h"

static void test_create_open_close(void **state)
{
    (void)state;
    const char *name = th_name("basic");
    shmbus_bus *b = NULL, *b2 = NULL;
    assert_int_equal(shmbus_bus_open(name, NULL, 0, &b), -ENOENT);
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    assert_non_null(b);
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &b2),
                     -EEXIST);
    assert_int_equal(shmbus_bus_open(name, NULL, 0, &b2), 0);

    struct shmbus_bus_info info;
    assert_int_equal(shmbus_bus_info(b2, &info), 0);
    assert_string_equal(info.name, name);
    assert_int_equal(info.max_clients, SHMBUS_DEFAULT_MAX_CLIENTS);
    assert_int_equal(info.slots, SHMBUS_DEFAULT_SLOTS);
    assert_int_equal(info.msg_size, SHMBUS_DEFAULT_MSG_SIZE);
    assert_int_equal(info.mode, 0600);
    assert_int_equal(info.creator_uid, geteuid());
    assert_int_equal(info.attached, 2);
    assert_int_equal((ssize_t)info.segment_size, shmbus_bus_size(NULL));

    char names[4][SHMBUS_NAME_MAX + 1];
    assert_int_equal(shmbus_bus_names(names, 4), 1);
    assert_string_equal(names[0], name);

    shmbus_bus_close(b2);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    assert_int_equal(shmbus_bus_destroy(name), -ENOENT);
    assert_int_equal(shmbus_bus_open(name, NULL, 0, &b), -ENOENT);
    assert_int_equal(shmbus_bus_names(names, 4), 0);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(NULL, NULL, SHMBUS_OPEN_CREATE, &b), -EINVAL);
    assert_int_equal(shmbus_bus_open("x", NULL, SHMBUS_OPEN_CREATE, NULL), -EINVAL);
    assert_int_equal(shmbus_bus_open("", NULL, SHMBUS_OPEN_CREATE, &b), -EINVAL);
    assert_int_equal(shmbus_bus_open("a/b", NULL, SHMBUS_OPEN_CREATE, &b), -EINVAL);
    assert_int_equal(shmbus_bus_open("..", NULL, SHMBUS_OPEN_CREATE, &b), -EINVAL);
    assert_int_equal(shmbus_bus_open(".", NULL, SHMBUS_OPEN_CREATE, &b), -EINVAL);
    assert_int_equal(shmbus_bus_open("sp ace", NULL, SHMBUS_OPEN_CREATE, &b), -EINVAL);
    char longname[64];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[63] = '\0';
    assert_int_equal(shmbus_bus_open(longname, NULL, SHMBUS_OPEN_CREATE, &b), -EINVAL);
    assert_int_equal(shmbus_bus_open("x", NULL, 0x100, &b), -EINVAL);
    assert_int_equal(shmbus_bus_open("x", NULL, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_RDONLY, &b),
                     -EINVAL);

    struct shmbus_bus_opts o = {.slots = 3};
    assert_int_equal(shmbus_bus_open("x", &o, SHMBUS_OPEN_CREATE, &b), -EINVAL);
    o = (struct shmbus_bus_opts){.max_clients = SHMBUS_MAX_CLIENTS + 1};
    assert_int_equal(shmbus_bus_open("x", &o, SHMBUS_OPEN_CREATE, &b), -EINVAL);
    o = (struct shmbus_bus_opts){.msg_size = SHMBUS_MAX_MSG_SIZE + 1};
    assert_int_equal(shmbus_bus_open("x", &o, SHMBUS_OPEN_CREATE, &b), -EINVAL);
    o = (struct shmbus_bus_opts){.mode = 0666};
    assert_int_equal(shmbus_bus_open("x", &o, SHMBUS_OPEN_CREATE, &b), -EINVAL);
    assert_int_equal(shmbus_bus_destroy("a/b"), -EINVAL);
    assert_int_equal(shmbus_bus_info(NULL, NULL), -EINVAL);
    shmbus_bus_close(NULL);
    assert_true(strlen(shmbus_strerror(-EPROTO)) > 0);
    assert_true(strlen(shmbus_strerror(-12345)) > 0);
    assert_string_equal(shmbus_version(), SHMBUS_VERSION_STRING);
}

static void test_sizes(void **state)
{
    (void)state;
    struct shmbus_bus_opts o = {.max_clients = 1024, .slots = 16, .msg_size = 64};
    const char *name = th_name("big");
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE, &b), 0);
    shmbus_client *c;
    assert_int_equal(shmbus_join(b, 1024, NULL, &c), 0);
    assert_int_equal(shmbus_client_id(c), 1024);
    shmbus_leave(c);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);

    o = (struct shmbus_bus_opts){.max_clients = 2, .slots = 4, .msg_size = 65536};
    name = th_name("large-msg");
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE, &b), 0);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

/* Mode is 0600 (or 0660 when asked) whatever the umask; the key directory 0700; the key
 * file 0600 (0640 for a group bus: the group reads it, never rewrites it). */
static void check_modes(mode_t mask)
{
    mode_t old = umask(mask);
    const char *name = th_name("mode");
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    struct shmbus_bus_info info;
    assert_int_equal(shmbus_bus_info(b, &info), 0);
    struct shmid_ds ds;
    assert_int_equal(shmctl(info.shmid, IPC_STAT, &ds), 0);
    assert_int_equal(ds.shm_perm.mode & 0777, 0600);
    char dir[512], path[600];
    assert_true(shmbus_runtime_dir(dir, sizeof(dir)) > 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/%s.bus", dir, name);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);

    struct shmbus_bus_opts o = {.mode = 0660};
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE, &b), 0);
    assert_int_equal(shmbus_bus_info(b, &info), 0);
    assert_int_equal(shmctl(info.shmid, IPC_STAT, &ds), 0);
    assert_int_equal(ds.shm_perm.mode & 0777, 0660);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    umask(old);
}

static void test_modes_umask(void **state)
{
    (void)state;
    check_modes(0000);
    check_modes(0077);
    check_modes(0022);
}

/* Point bus `name`'s key file at segment shmid (as a stale or scribbled key file would). */
static void point_key_at(const char *name, int shmid, uint64_t nonce)
{
    char dir[512], path[600];
    assert_true(shmbus_runtime_dir(dir, sizeof(dir)) > 0);
    snprintf(path, sizeof(path), "%s/%s.bus", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "shmbus-bus 1 %d %016llx\n", shmid, (unsigned long long)nonce);
    fclose(f);
}

/* Segments are IPC_PRIVATE: no key for anyone to squat. */
static void test_private_key(void **state)
{
    (void)state;
    const char *name = th_name("private");
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    struct shmbus_bus_info info;
    assert_int_equal(shmbus_bus_info(b, &info), 0);
    struct shmid_ds ds;
    assert_int_equal(shmctl(info.shmid, IPC_STAT, &ds), 0);
    assert_int_equal(ds.shm_perm.__key, IPC_PRIVATE);
    assert_int_equal(shmbus_bus_shmid(name), info.shmid);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

static void test_foreign_segment(void **state)
{
    (void)state;
    const char *name = th_name("foreign");
    shmbus_bus *b;
    /* A key file that names a segment that is not a bus. */
    int id = shmget(IPC_PRIVATE, 65536, IPC_CREAT | 0600);
    assert_true(id >= 0);
    th_track_shmid(id);
    char *p = shmat(id, NULL, 0);
    assert_true(p != (void *)-1);
    memset(p, 0x5a, 65536);
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, &b), 0); /* makes the dir */
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    point_key_at(name, id, 1);

    /* Garbage: refused, and left exactly as it was. */
    assert_int_equal(shmbus_bus_open(name, NULL, 0, &b), -EPROTO);
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, &b), -EPROTO);
    assert_int_equal(shmbus_bus_destroy(name), -EPROTO);
    assert_int_equal((unsigned char)p[100], 0x5a);

    /* Our magic but a future layout version. */
    memset(p, 0, 65536);
    uint64_t magic = 0x3130535542484d53ull;
    memcpy(p, &magic, 8);
    uint32_t version = 99, one = 1;
    memcpy(p + 8, &version, 4);
    memcpy(p + 16, &one, 4); /* state READY */
    assert_int_equal(shmbus_bus_open(name, NULL, 0, &b), -EPROTONOSUPPORT);

    /* A segment open to every user is not trusted. */
    struct shmid_ds ds;
    assert_int_equal(shmctl(id, IPC_STAT, &ds), 0);
    ds.shm_perm.mode = 0666;
    assert_int_equal(shmctl(id, IPC_SET, &ds), 0);
    assert_int_equal(shmbus_bus_open(name, NULL, 0, &b), -EACCES);

    /* A key file naming a segment that is gone: no such bus; create replaces it. */
    shmdt(p);
    assert_int_equal(shmctl(id, IPC_RMID, NULL), 0);
    assert_int_equal(shmbus_bus_open(name, NULL, 0, &b), -ENOENT);
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    point_key_at(name, id, 1);
    assert_int_equal(shmbus_bus_destroy(name), -ENOENT); /* removes the key file */
    assert_int_equal(shmbus_bus_shmid(name), -ENOENT);
}

static void test_corrupt_header(void **state)
{
    (void)state;
    const char *name = th_name("corrupt");
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    struct shmbus_bus_info info;
    assert_int_equal(shmbus_bus_info(b, &info), 0);
    uint32_t *hdr = shmat(info.shmid, NULL, 0);
    assert_true(hdr != (void *)-1);
    /* max_clients (offset 32) grows beyond what the segment holds. */
    uint32_t saved = hdr[8];
    hdr[8] = 4000;
    shmbus_bus *b2;
    assert_int_equal(shmbus_bus_open(name, NULL, 0, &b2), -EBADMSG);
    hdr[8] = saved;
    assert_int_equal(shmbus_bus_open(name, NULL, 0, &b2), 0);
    shmbus_bus_close(b2);
    shmdt(hdr);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

static void test_readonly(void **state)
{
    (void)state;
    const char *name = th_name("ro");
    shmbus_bus *b, *ro;
    shmbus_client *c;
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    assert_int_equal(shmbus_join(b, 3, "three", &c), 0);
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_RDONLY, &ro), 0);
    shmbus_client *x;
    assert_int_equal(shmbus_join(ro, 0, NULL, &x), -EROFS);
    struct shmbus_client_info ci[4];
    assert_int_equal(shmbus_list(ro, ci, 4), 1);
    assert_int_equal(ci[0].id, 3);
    assert_string_equal(ci[0].name, "three");
    assert_int_equal(ci[0].state, SHMBUS_CLIENT_LIVE);
    assert_int_equal(shmbus_lookup(ro, "three"), 3);
    assert_int_equal(shmbus_reap(ro), -EROFS);
    shmbus_bus_close(ro);
    shmbus_leave(c);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

static void test_destroy_while_attached(void **state)
{
    (void)state;
    const char *name = th_name("gone");
    shmbus_bus *b;
    shmbus_client *c;
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    assert_int_equal(shmbus_join(b, 1, NULL, &c), 0);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    char buf[8];
    assert_int_equal(shmbus_send(c, 1, "x", 1, 0, 0), -EIDRM);
    assert_int_equal(shmbus_recv(c, NULL, buf, sizeof(buf), 1000), -EIDRM);
    shmbus_client *d;
    assert_int_equal(shmbus_join(b, 2, NULL, &d), -EIDRM);
    shmbus_leave(c);
    shmbus_bus_close(b);
}

/* A key directory that is not ours, or a file where it should be, is refused. */
static void test_bad_runtime_dir(void **state)
{
    (void)state;
    char dir[512], file[600];
    assert_true(shmbus_runtime_dir(dir, sizeof(dir)) > 0);
    snprintf(file, sizeof(file), "%s.notadir", dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    char *old = strdup(dir);
    setenv("SHMBUS_DIR", file, 1);
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open("x", NULL, SHMBUS_OPEN_CREATE, &b), -ENOTDIR);
    setenv("SHMBUS_DIR", "/proc/no/such/dir", 1);
    assert_true(shmbus_bus_open("x", NULL, SHMBUS_OPEN_CREATE, &b) < 0);
    setenv("SHMBUS_DIR", old, 1);
    unlink(file);
    free(old);
}

static void test_hist(void **state)
{
    (void)state;
    for (uint64_t ns = 0; ns < 5000000; ns = ns * 3 / 2 + 1) {
        unsigned b = shmbus_hist_bucket(ns);
        assert_true(shmbus_hist_value(b) <= ns);
        assert_true(b + 1 >= SHMBUS_LAT_BUCKETS || shmbus_hist_value(b + 1) > ns);
    }
    uint64_t h[SHMBUS_LAT_BUCKETS] = {0};
    assert_int_equal(shmbus_hist_percentile(h, 50), 0);
    h[shmbus_hist_bucket(1000)] = 99;
    h[shmbus_hist_bucket(100000)] = 1;
    uint64_t p50 = shmbus_hist_percentile(h, 50), p100 = shmbus_hist_percentile(h, 100);
    assert_true(p50 >= 896 && p50 <= 1152);
    assert_true(p100 >= 90000 && p100 <= 115000);
}

static int join_and_exit(void *p)
{
    shmbus_bus *b;
    shmbus_client *c;
    if (shmbus_bus_open(p, NULL, 0, &b) != 0 || shmbus_join(b, 1, NULL, &c) != 0)
        return 10;
    return 0; /* exits without leaving: a crashed application */
}

struct seen {
    int segments, keyfiles, clients;
};

static void count_stale(const char *kind, const char *what, const char *why, void *arg)
{
    struct seen *s = arg;
    (void)what;
    assert_non_null(why);
    if (strcmp(kind, "segment") == 0)
        s->segments++;
    else if (strcmp(kind, "key file") == 0)
        s->keyfiles++;
    else if (strcmp(kind, "client") == 0)
        s->clients++;
}

/* shmbus_clean: removes what crashes left, never an idle bus made to last. */
static void test_clean(void **state)
{
    (void)state;
    char idle[64], orphan[64], crashed[64], keyonly[64];
    snprintf(idle, sizeof(idle), "%s", th_name("idle"));
    snprintf(orphan, sizeof(orphan), "%s", th_name("orphan"));
    snprintf(crashed, sizeof(crashed), "%s", th_name("crashed"));
    snprintf(keyonly, sizeof(keyonly), "%s", th_name("keyonly"));
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(idle, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    shmbus_bus_close(b);

    /* A bus whose only client's process died without leaving. */
    assert_int_equal(shmbus_bus_open(crashed, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    shmbus_bus_close(b);
    pid_t pid = th_fork(join_and_exit, crashed);
    assert_int_equal(th_wait(pid, 10000), 0);

    /* A key file without a segment. */
    assert_int_equal(shmbus_bus_open(keyonly, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    struct shmbus_bus_info kinfo;
    assert_int_equal(shmbus_bus_info(b, &kinfo), 0);
    shmbus_bus_close(b);
    assert_int_equal(shmctl(kinfo.shmid, IPC_RMID, NULL), 0);

    /* A bus whose key file vanished (its runtime directory was wiped). */
    assert_int_equal(shmbus_bus_open(orphan, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    struct shmbus_bus_info oinfo;
    assert_int_equal(shmbus_bus_info(b, &oinfo), 0);
    th_track_shmid(oinfo.shmid);
    int orphan_id = oinfo.shmid;
    shmbus_bus_close(b);
    char dir[512], path[700];
    assert_true(shmbus_runtime_dir(dir, sizeof(dir)) > 0);
    snprintf(path, sizeof(path), "%s/%s.bus", dir, orphan);
    assert_int_equal(unlink(path), 0);

    struct seen dry = {0}, real = {0}, again = {0};
    assert_int_equal(shmbus_clean(1, count_stale, &dry), 3);
    assert_int_equal(dry.segments, 2);
    assert_int_equal(dry.keyfiles, 1);
    assert_int_equal(shmbus_clean(0, count_stale, &real), 3);
    assert_int_equal(shmbus_clean(0, count_stale, &again), 0);
    assert_int_equal(shmbus_bus_open(crashed, NULL, 0, &b), -ENOENT);
    assert_int_equal(shmbus_bus_open(keyonly, NULL, 0, &b), -ENOENT);
    assert_int_equal(shmctl(orphan_id, IPC_STAT, &(struct shmid_ds){0}), -1);
    /* The idle bus is still there. */
    assert_int_equal(shmbus_bus_open(idle, NULL, 0, &b), 0);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(idle), 0);
}

/* Resident bytes of segment shmid, from the kernel's /proc/sysvipc/shm (its rss column);
 * -1 if not found. */
static long long segment_rss(int shmid)
{
    FILE *f = fopen("/proc/sysvipc/shm", "r");
    if (f == NULL)
        return -1;
    char line[512];
    long long rss = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        long long key, id, size, v;
        if (sscanf(line, "%lld %lld %*s %lld %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %lld", &key,
                   &id, &size, &v) == 4 &&
            id == shmid)
            rss = v;
    }
    fclose(f);
    return rss;
}

/*
 * Memory grows with use: creating a bus writes its header page only (every other byte of
 * the segment is valid all zero); joining and a message to oneself touch the registry and
 * the few pages of one mailbox, not the 1024 mailboxes the segment reserves (layout 2 wrote
 * every slot of every mailbox at creation: 287 MB resident for this bus).
 */
static void test_memory_grows_with_use(void **state)
{
    (void)state;
    const char *name = th_name("mem");
    struct shmbus_bus_opts o = {.max_clients = 1024};
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &b), 0);
    int shmid = shmbus_bus_shmid(name);
    assert_true(shmid >= 0);
    long long rss = segment_rss(shmid);
    if (rss < 0) {
        shmbus_bus_close(b);
        assert_int_equal(shmbus_bus_destroy(name), 0);
        skip(); /* no /proc/sysvipc/shm */
    }
    assert_true(rss <= 4096);

    struct shmbus_bus_info bi;
    assert_int_equal(shmbus_bus_info(b, &bi), 0);
    assert_true(bi.segment_size > 250u * 1000 * 1000); /* reserved, not resident */
    shmbus_client *c;
    assert_int_equal(shmbus_join(b, 0, NULL, &c), 0);
    char buf[1024] = "x";
    struct shmbus_msg m;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(shmbus_send(c, shmbus_client_id(c), buf, sizeof(buf), 0, 0), 0);
        assert_int_equal(shmbus_recv(c, &m, buf, sizeof(buf), 0), (int)sizeof(buf));
    }
    /* The registry (1024 entries, read by every scan of it), one mailbox's header page and
     * the ring pages four 1 KiB messages reached. */
    rss = segment_rss(shmid);
    printf("# 1024-client bus: %zu bytes reserved, %lld resident after a join and 4 messages\n",
           bi.segment_size, rss);
    assert_true(rss > 4096 && rss < 2 * 1024 * 1024);
    shmbus_leave(c);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

int main(void)
{
    th_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_open_close),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_modes_umask),
        cmocka_unit_test(test_private_key),
        cmocka_unit_test(test_foreign_segment),
        cmocka_unit_test(test_corrupt_header),
        cmocka_unit_test(test_readonly),
        cmocka_unit_test(test_destroy_while_attached),
        cmocka_unit_test(test_bad_runtime_dir),
        cmocka_unit_test(test_hist),
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_memory_grows_with_use),
    };
    return cmocka_run_group_tests(tests, NULL, th_cleanup);
}
