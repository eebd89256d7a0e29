/*
 * test_perm: another user cannot open, attach to or join a bus; objects are owner-only
 * whatever the umask.
 *
 * The other-uid tests need root: a forked child drops to nobody:nogroup (setgroups,
 * setresgid, setresuid) and tries every way in: shmbus_bus_open() (with and without
 * SHMBUS_OPEN_CREATE), shmat() and IPC_STAT on its shmid, both with
 * the key directory private (the default) and with the directory and key file opened up to
 * everyone by mistake. Without root the binary exits 77 (skip) and says why.
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../src/internal.h" /* sb__proc_alive(): the liveness rule */
#include "helpers.h"
#include "shmbus.h"

#define NOBODY  65534u
#define NOGROUP 65534u

struct probe {
    const char *name;
    int shmid;
};

/* Become nobody:nogroup with no supplementary groups. */
static int drop_to_nobody(void)
{
    if (setgroups(0, NULL) != 0 || setresgid(NOGROUP, NOGROUP, NOGROUP) != 0 ||
        setresuid(NOBODY, NOBODY, NOBODY) != 0)
        return -1;
    /* Changing credentials clears the parent-death signal: set it again. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    return geteuid() == NOBODY && getegid() == NOGROUP ? 0 : -1;
}

/* In the child, as nobody. Exit 0 if every way in was refused, else the number of the step
 * that got in (or failed the wrong way). */
static int intruder(void *arg)
{
    const struct probe *p = arg;
    if (drop_to_nobody() != 0)
        return 1;
    shmbus_bus *b = NULL;
    int r = shmbus_bus_open(p->name, NULL, 0, &b);
    if (r != -EACCES) {
        fprintf(stderr, "nobody: shmbus_bus_open: %s\n", shmbus_strerror(r));
        return 2;
    }
    r = shmbus_bus_open(p->name, NULL, SHMBUS_OPEN_RDONLY, &b);
    if (r != -EACCES)
        return 3;
    r = shmbus_bus_open(p->name, NULL, SHMBUS_OPEN_CREATE, &b);
    if (r != -EACCES) {
        fprintf(stderr, "nobody: shmbus_bus_open(CREATE): %s\n", shmbus_strerror(r));
        return 4;
    }
    if (shmat(p->shmid, NULL, 0) != (void *)-1 || errno != EACCES)
        return 6;
    if (shmat(p->shmid, NULL, SHM_RDONLY) != (void *)-1 || errno != EACCES)
        return 7;
    struct shmid_ds ds;
    if (shmctl(p->shmid, IPC_STAT, &ds) != -1 || errno != EACCES)
        return 8;
    if (shmctl(p->shmid, IPC_RMID, NULL) != -1 || errno != EPERM)
        return 9;
    return 0;
}

static void bus_paths(const char *name, char *dir, size_t dsz, char *path, size_t psz)
{
    assert_true(shmbus_runtime_dir(dir, dsz) > 0);
    snprintf(path, psz, "%s/%s.bus", dir, name);
}

static void check_owner_only(shmbus_bus *b, const char *name)
{
    struct shmbus_bus_info info;
    assert_int_equal(shmbus_bus_info(b, &info), 0);
    struct shmid_ds ds;
    assert_int_equal(shmctl(info.shmid, IPC_STAT, &ds), 0);
    assert_int_equal(ds.shm_perm.mode & 0777, 0600);
    assert_int_equal(ds.shm_perm.uid, geteuid());
    char dir[512], path[600];
    bus_paths(name, dir, sizeof(dir), path, sizeof(path));
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

/* A bus made under this umask; a nobody child cannot get in. */
static void nobody_kept_out(mode_t mask, bool open_up_dir)
{
    mode_t old = umask(mask);
    const char *name = th_name(open_up_dir ? "perm-open" : "perm");
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    shmbus_client *c;
    assert_int_equal(shmbus_join(b, 1, "owner", &c), 0);
    check_owner_only(b, name);

    char dir[512], path[600];
    bus_paths(name, dir, sizeof(dir), path, sizeof(path));
    struct shmbus_bus_info info;
    assert_int_equal(shmbus_bus_info(b, &info), 0);
    struct probe p = {.name = name, .shmid = info.shmid};
    struct shmid_ds ds;
    assert_int_equal(shmctl(info.shmid, IPC_STAT, &ds), 0);
    assert_int_equal(ds.shm_perm.__key, IPC_PRIVATE); /* no key to find it by, or to squat */

    /* The test directory (TEST_TMPDIR) is private too: open it and the key directory and
     * key file to everyone, as a careless admin might, so that only the library's own
     * checks and the segment's mode stand in the way. */
    const char *tmp = getenv("TEST_TMPDIR");
    if (open_up_dir) {
        if (tmp != NULL)
            assert_int_equal(chmod(tmp, 0755), 0);
        assert_int_equal(chmod(dir, 0755), 0);
        assert_int_equal(chmod(path, 0644), 0);
    }
    pid_t pid = th_fork(intruder, &p);
    int st = th_wait(pid, 10000);
    if (open_up_dir) {
        if (tmp != NULL)
            chmod(tmp, 0700);
        chmod(dir, 0700);
        chmod(path, 0600);
    }
    if (st != 0)
        fail_msg("nobody got in (umask %03o, %s): step %d", (unsigned)mask,
                 open_up_dir ? "directory opened up" : "private directory", st);

    /* The owner's client is untouched. */
    assert_int_equal(shmbus_lookup(b, "owner"), 1);
    assert_int_equal(shmbus_send(c, 1, "x", 1, SHMBUS_SEND_NONBLOCK, 0), 0);
    char buf[8];
    assert_int_equal(shmbus_recv(c, NULL, buf, sizeof(buf), 0), 1);
    shmbus_leave(c);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    umask(old);
}

static void test_nobody_private_dir(void **state)
{
    (void)state;
    nobody_kept_out(0000, false);
    nobody_kept_out(0077, false);
}

static void test_nobody_open_dir(void **state)
{
    (void)state;
    nobody_kept_out(0000, true);
    nobody_kept_out(0022, true);
}

/* A bus shared with a group (mode 0660) is still closed to a user outside that group. */
static int outsider(void *arg)
{
    const struct probe *p = arg;
    if (drop_to_nobody() != 0)
        return 1;
    if (shmat(p->shmid, NULL, 0) != (void *)-1 || errno != EACCES)
        return 2;
    if (shmat(p->shmid, NULL, SHM_RDONLY) != (void *)-1 || errno != EACCES)
        return 3;
    return 0;
}

static void test_group_mode_outsider(void **state)
{
    (void)state;
    umask(0);
    const char *name = th_name("perm-group");
    struct shmbus_bus_opts o = {.mode = 0660};
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE, &b), 0);
    struct shmbus_bus_info info;
    assert_int_equal(shmbus_bus_info(b, &info), 0);
    struct shmid_ds ds;
    assert_int_equal(shmctl(info.shmid, IPC_STAT, &ds), 0);
    assert_int_equal(ds.shm_perm.mode & 0777, 0660);
    assert_true(ds.shm_perm.gid != NOGROUP);
    struct probe p = {.name = name, .shmid = info.shmid};
    assert_int_equal(th_wait(th_fork(outsider, &p), 10000), 0);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    umask(022);
}

/* ---- group mode: a member of the shared folder's group uses the bus ------------------- */

#define TEAM 4242u /* the group of the shared folder; needs no entry in /etc/group */

static int member(void *arg)
{
    const char *name = arg;
    gid_t team = TEAM;
    if (setgroups(1, &team) != 0 || setresgid(NOGROUP, NOGROUP, NOGROUP) != 0 ||
        setresuid(NOBODY, NOBODY, NOBODY) != 0)
        return 1;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    shmbus_bus *b;
    int r = shmbus_bus_open(name, NULL, 0, &b);
    if (r != 0) {
        fprintf(stderr, "member: open: %s\n", shmbus_strerror(r));
        return 2;
    }
    shmbus_client *c;
    if (shmbus_join(b, 2, "member", &c) != 0)
        return 3;
    if (shmbus_send(c, 1, "hi", 2, 0, 5000) != 0)
        return 4;
    shmbus_leave(c);
    shmbus_bus_close(b);
    if (shmbus_bus_destroy(name) != -EPERM) /* the owner's to remove */
        return 5;
    return 0;
}

static int not_member(void *arg)
{
    if (drop_to_nobody() != 0)
        return 1;
    shmbus_bus *b;
    return shmbus_bus_open(arg, NULL, 0, &b) == -EACCES ? 0 : 2;
}

static void test_group_member(void **state)
{
    (void)state;
    const char *tmp = getenv("TEST_TMPDIR");
    if (tmp == NULL)
        skip();
    char old[512], shared[600], name[64];
    assert_true(shmbus_runtime_dir(old, sizeof(old)) > 0);
    snprintf(shared, sizeof(shared), "%s/shared", tmp);
    snprintf(name, sizeof(name), "%s", th_name("perm-team"));
    /* The documented setup: a folder of the owner's, readable by the group, setgid. */
    assert_int_equal(mkdir(shared, 0700), 0);
    assert_int_equal(chown(shared, geteuid(), TEAM), 0);
    assert_int_equal(chmod(shared, 02750), 0);
    assert_int_equal(chmod(tmp, 0711), 0); /* let others reach it */
    setenv("SHMBUS_DIR", shared, 1);

    struct shmbus_bus_opts o = {.mode = 0660};
    shmbus_bus *b;
    shmbus_client *c;
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE, &b), 0);
    struct shmbus_bus_info info;
    assert_int_equal(shmbus_bus_info(b, &info), 0);
    struct shmid_ds ds;
    assert_int_equal(shmctl(info.shmid, IPC_STAT, &ds), 0);
    assert_int_equal(ds.shm_perm.gid, TEAM);
    assert_int_equal(ds.shm_perm.mode & 0777, 0660);
    assert_int_equal(shmbus_join(b, 1, "owner", &c), 0);

    int st = th_wait(th_fork(member, name), 10000);
    int st2 = th_wait(th_fork(not_member, name), 10000);
    char buf[8];
    int r = shmbus_recv(c, NULL, buf, sizeof(buf), 1000);
    shmbus_leave(c);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    setenv("SHMBUS_DIR", old, 1);
    chmod(tmp, 0700);
    if (st != 0)
        fail_msg("a member of the folder's group could not use the bus: step %d", st);
    if (st2 != 0)
        fail_msg("someone outside the group got in: step %d", st2);
    assert_int_equal(r, 2);
    assert_memory_equal(buf, "hi", 2);
}

/* ---- liveness when /proc hides other users' processes ------------------------------------ */

/* In a child with its own mount namespace: /proc mounted with hidepid=2 (other users'
 * processes invisible), then as nobody. A live process of root's must still count as alive
 * (the one rule of src/proc.c: an entry we cannot see is not a dead process), a gone one
 * as dead. classic/session.c used to say "dead" here, and a cleaner would then have freed a
 * live client's entry. */
static int hidden_proc(void *arg)
{
    pid_t live = *(pid_t *)arg;
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return 70; /* no namespaces here: nothing to test */
    if (mount("proc", "/proc", "proc", 0, "hidepid=2") != 0)
        return 70;
    if (drop_to_nobody() != 0)
        return 1;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)live);
    if (access(path, F_OK) == 0)
        return 70; /* hidepid did not hide it: the test would prove nothing */
    if (!sb__proc_alive(live, 0))
        return 2;
    pid_t gone = fork();
    if (gone == 0)
        _exit(0);
    waitpid(gone, NULL, 0);
    if (sb__proc_alive(gone, 0))
        return 3;
    return 0;
}

static void test_hidden_proc_alive(void **state)
{
    (void)state;
    pid_t me = getpid();
    int st = th_wait(th_fork(hidden_proc, &me), 10000);
    if (st == 70)
        skip();
    if (st != 0)
        fail_msg("liveness under hidepid=2: step %d", st);
}

int main(void)
{
    if (geteuid() != 0) {
        printf("skip: the other-uid tests need root, to become nobody in a child\n");
        return 77;
    }
    th_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nobody_private_dir),  cmocka_unit_test(test_nobody_open_dir),
        cmocka_unit_test(test_group_mode_outsider), cmocka_unit_test(test_group_member),
        cmocka_unit_test(test_hidden_proc_alive),
    };
    return cmocka_run_group_tests(tests, NULL, th_cleanup);
}
