/*
 * test_security: the attacks and mistakes of issue 9, each written as the attack.
 *
 *   - a semaphore word scribbled to 10^8 or 0xFFFFFFFF: recv, send on a full mailbox and an
 *     ACK send each return within their timeout plus a small bound, on little CPU; a
 *     receive without a timeout sleeps instead of spinning through the posts;
 *   - a signal handler (installed with SA_RESTART) stops a blocked recv and a blocked send
 *     with -EINTR;
 *   - a segment handed to us with IPC_SET by the user who created it, or one open to a
 *     group, named by our key file (as if its id had been reused): refused;
 *   - a FIFO, a symlink and garbage where a key file should be: every call returns at once;
 *   - a relative SHMBUS_DIR: made absolute, so a later call from another directory means
 *     the same folder;
 *   - buses created while shmbus_clean() runs (ASan checks its array bounds);
 *   - a creator killed between making the segment and writing the key file: the next create
 *     works, and clean removes the half-made segment;
 *   - a bus whose header was scribbled: destroy refuses it, destroy_force removes it;
 *   - a umask of 0277 at first use;
 *   - a record header that names another lap of the ring: never delivered.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../src/internal.h" /* the layout, to aim the scribbles */
#include "helpers.h"
#include "shmbus.h"

#define BOUND_NS (1000 * 1000000ull) /* a timed call may return this much late (a loaded CI) */
#define CPU_NS   (150 * 1000000ull)  /* and use at most this much CPU */
#define TIMED_MS 1000 /* long against CPU_NS: a wait that spins instead of sleeping shows */

static uint8_t *attach_raw(shmbus_bus *b)
{
    struct shmbus_bus_info info;
    assert_int_equal(shmbus_bus_info(b, &info), 0);
    uint8_t *p = shmat(info.shmid, NULL, 0);
    assert_true(p != (void *)-1);
    return p;
}

static struct sb_mbox *raw_mbox(uint8_t *base, uint32_t id)
{
    const struct sb_header *h = (const struct sb_header *)base;
    return (struct sb_mbox *)(base + h->mbox_off + (uint64_t)(id - 1) * h->mbox_size);
}

static struct sb_entry *raw_entry(uint8_t *base, uint32_t id)
{
    const struct sb_header *h = (const struct sb_header *)base;
    return (struct sb_entry *)(base + h->registry_off + (uint64_t)(id - 1) * h->entry_size);
}

/* Time and CPU of one call, checked against timeout + bound. */
struct span {
    uint64_t t0, cpu0;
};

static struct span span_start(void)
{
    return (struct span){th_now_ns(), th_cpu_ns()};
}

static void span_check(struct span s, int timeout_ms, const char *what)
{
    uint64_t wall = th_now_ns() - s.t0, cpu = th_cpu_ns() - s.cpu0;
    if (wall > (uint64_t)timeout_ms * 1000000ull + BOUND_NS || cpu > CPU_NS)
        fail_msg("%s: %llu ms wall, %llu ms CPU for a %d ms timeout", what,
                 (unsigned long long)(wall / 1000000), (unsigned long long)(cpu / 1000000),
                 timeout_ms);
}

/* Every semaphore word scribbled: no call pays for it beyond its timeout. */
static void test_scribbled_semaphores(void **state)
{
    (void)state;
    static const uint32_t values[] = {100000000u, 0xffffffffu};
    const char *name = th_name("sem");
    struct shmbus_bus_opts o = {.max_clients = 4, .slots = 2, .msg_size = 8};
    shmbus_bus *b;
    shmbus_client *a, *c;
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE, &b), 0);
    assert_int_equal(shmbus_join(b, 1, "a", &a), 0);
    assert_int_equal(shmbus_join(b, 2, "c", &c), 0);
    uint8_t *raw = attach_raw(b);
    char buf[8];
    for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
        /* recv on an empty mailbox whose data semaphore says 10^8 posts. */
        atomic_store(&raw_mbox(raw, 1)->data_sem.value, values[v]);
        struct span s = span_start();
        assert_int_equal(shmbus_recv(a, NULL, buf, sizeof(buf), TIMED_MS), -ETIMEDOUT);
        span_check(s, TIMED_MS, "recv, data_sem scribbled");

        /* send to a full mailbox whose space semaphore says the same. */
        while (shmbus_send(a, 2, "x", 1, SHMBUS_SEND_NONBLOCK, 0) == 0)
            ;
        atomic_store(&raw_mbox(raw, 2)->space_sem.value, values[v]);
        s = span_start();
        assert_int_equal(shmbus_send(a, 2, "x", 1, 0, TIMED_MS), -ETIMEDOUT);
        span_check(s, TIMED_MS, "send, space_sem scribbled");
        while (shmbus_recv(c, NULL, buf, sizeof(buf), 0) > 0)
            ;

        /* An ACK send that nobody takes, with the ack semaphore scribbled. */
        atomic_store(&raw_entry(raw, 1)->ack_sem.value, values[v]);
        s = span_start();
        assert_int_equal(shmbus_send(a, 2, "x", 1, SHMBUS_SEND_ACK, TIMED_MS), -ETIMEDOUT);
        span_check(s, TIMED_MS, "ACK send, ack_sem scribbled");
        while (shmbus_recv(c, NULL, buf, sizeof(buf), 0) > 0)
            ;
    }
    shmdt(raw);
    shmbus_leave(c);
    shmbus_leave(a);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

/* A receive that waits forever on a scribbled semaphore sleeps: it does not spin through
 * the 4 billion "posts". Measured over 300 ms once it is asleep; destroy then ends it. */
struct forever {
    shmbus_client *c;
    int r;
};

static void *recv_forever(void *arg)
{
    struct forever *f = arg;
    char buf[8];
    f->r = shmbus_recv(f->c, NULL, buf, sizeof(buf), -1);
    return NULL;
}

static void test_scribbled_forever_sleeps(void **state)
{
    (void)state;
    const char *name = th_name("forever");
    struct shmbus_bus_opts o = {.max_clients = 2, .slots = 2, .msg_size = 8};
    shmbus_bus *b;
    struct forever f = {NULL, 1};
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE, &b), 0);
    assert_int_equal(shmbus_join(b, 1, NULL, &f.c), 0);
    uint8_t *raw = attach_raw(b);
    struct sb_mbox *mb = raw_mbox(raw, 1);
    atomic_store(&mb->data_sem.value, 0xffffffffu);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, recv_forever, &f), 0);
    /* Wait (with a deadline) until it sleeps in the kernel. */
    uint64_t end = th_now_ns() + 5000000000ull;
    while (atomic_load(&mb->data_sem.waiters) == 0 && th_now_ns() < end)
        sched_yield();
    assert_true(atomic_load(&mb->data_sem.waiters) > 0);
    uint64_t cpu0 = th_cpu_ns();
    struct timespec window = {0, 300000000};
    nanosleep(&window, NULL); /* the measurement window, not synchronisation */
    uint64_t cpu = th_cpu_ns() - cpu0;
    assert_int_equal(shmbus_bus_destroy(name), 0); /* wakes it: -EIDRM */
    pthread_join(t, NULL);
    assert_int_equal(f.r, -EIDRM);
    if (cpu > 100000000ull)
        fail_msg("recv(-1) on a scribbled semaphore used %llu ms of CPU in 300 ms",
                 (unsigned long long)(cpu / 1000000));
    shmdt(raw);
    shmbus_leave(f.c);
    shmbus_bus_close(b);
}

/* ---- signals ----------------------------------------------------------------------------- */

static volatile sig_atomic_t got_signal;
static _Atomic int call_done;

static void on_usr1(int sig)
{
    (void)sig;
    got_signal = 1;
}

/* Signal the blocked thread until its call has returned: a signal that lands while it is
 * not asleep is simply followed by the next one. */
static void *signaller(void *arg)
{
    pthread_t target = *(pthread_t *)arg;
    uint64_t end = th_now_ns() + 10000000000ull;
    while (!atomic_load(&call_done) && th_now_ns() < end) {
        pthread_kill(target, SIGUSR1);
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void test_signal_stops_wait(void **state)
{
    (void)state;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART; /* even so: the library's waits return -EINTR */
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);

    const char *name = th_name("sig");
    struct shmbus_bus_opts o = {.max_clients = 2, .slots = 2, .msg_size = 8};
    shmbus_bus *b;
    shmbus_client *a, *c;
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE, &b), 0);
    assert_int_equal(shmbus_join(b, 1, NULL, &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &c), 0);
    pthread_t self = pthread_self(), t;
    char buf[8];

    /* A receive that would wait forever. */
    atomic_store(&call_done, 0);
    assert_int_equal(pthread_create(&t, NULL, signaller, &self), 0);
    int r = shmbus_recv(a, NULL, buf, sizeof(buf), -1);
    atomic_store(&call_done, 1);
    pthread_join(t, NULL);
    assert_int_equal(r, -EINTR);
    assert_true(got_signal);

    /* A send into a full mailbox that would wait forever. */
    while (shmbus_send(a, 2, "x", 1, SHMBUS_SEND_NONBLOCK, 0) == 0)
        ;
    atomic_store(&call_done, 0);
    assert_int_equal(pthread_create(&t, NULL, signaller, &self), 0);
    r = shmbus_send(a, 2, "y", 1, 0, -1);
    atomic_store(&call_done, 1);
    pthread_join(t, NULL);
    assert_int_equal(r, -EINTR);
    /* Nothing was sent by the interrupted call: the mailbox holds the two "x" only. */
    assert_int_equal(shmbus_recv(c, NULL, buf, sizeof(buf), 0), 1);
    assert_int_equal(buf[0], 'x');
    assert_int_equal(shmbus_recv(c, NULL, buf, sizeof(buf), 0), 1);
    assert_int_equal(buf[0], 'x');
    assert_int_equal(shmbus_recv(c, NULL, buf, sizeof(buf), 0), -EAGAIN);

    signal(SIGUSR1, SIG_DFL);
    shmbus_leave(c);
    shmbus_leave(a);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

/* ---- key files --------------------------------------------------------------------------- */

static void key_path_of(const char *name, char *path, size_t size)
{
    char dir[512];
    assert_true(shmbus_runtime_dir(dir, sizeof(dir)) > 0);
    snprintf(path, size, "%s/%s.bus", dir, name);
}

static void ensure_dir(void)
{
    shmbus_bus *b;
    const char *name = th_name("mkdir");
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

/* A FIFO, a symlink, a directory and garbage as key files: refused at once, never waited
 * on; shmbus_clean() passes them by; destroy_force removes them. */
static void test_bad_key_files(void **state)
{
    (void)state;
    ensure_dir();
    char path[600], target[600];
    const char *fifo = "t-fifo", *link = "t-link", *junk = "t-junk";
    key_path_of(fifo, path, sizeof(path));
    assert_int_equal(mkfifo(path, 0600), 0);
    key_path_of(link, path, sizeof(path));
    key_path_of(fifo, target, sizeof(target));
    assert_int_equal(symlink(target, path), 0);
    key_path_of(junk, path, sizeof(path));
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a key file\n", f);
    fclose(f);

    uint64_t t0 = th_now_ns();
    const char *names[] = {fifo, link, junk};
    shmbus_bus *b;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(shmbus_bus_open(names[i], NULL, 0, &b), -EUCLEAN);
        assert_int_equal(shmbus_bus_open(names[i], NULL, SHMBUS_OPEN_RDONLY, &b), -EUCLEAN);
        assert_int_equal(shmbus_bus_open(names[i], NULL, SHMBUS_OPEN_CREATE, &b), -EUCLEAN);
        assert_int_equal(shmbus_bus_destroy(names[i]), -EUCLEAN);
        assert_int_equal(shmbus_bus_shmid(names[i]), -EUCLEAN);
    }
    assert_int_equal(shmbus_clean(1, NULL, NULL), 0);
    assert_int_equal(shmbus_clean(0, NULL, NULL), 0);
    assert_true(th_now_ns() - t0 < 2000000000ull);
    for (int i = 0; i < 3; i++)
        assert_int_equal(shmbus_bus_destroy_force(names[i], NULL, NULL), 1);
    assert_int_equal(shmbus_bus_destroy_force(fifo, NULL, NULL), -ENOENT);
}

/* A relative SHMBUS_DIR names one folder, whatever the working directory later is. */
static void test_relative_dir(void **state)
{
    (void)state;
    const char *tmp = getenv("TEST_TMPDIR");
    if (tmp == NULL)
        skip();
    char old[512], a[600], b2[600], abs[700];
    assert_true(shmbus_runtime_dir(old, sizeof(old)) > 0);
    snprintf(a, sizeof(a), "%s/rel-a", tmp);
    snprintf(b2, sizeof(b2), "%s/rel-b", tmp);
    assert_int_equal(mkdir(a, 0700), 0);
    assert_int_equal(mkdir(b2, 0700), 0);
    char cwd[600];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(a), 0);
    setenv("SHMBUS_DIR", "kd", 1);
    char dir[512];
    assert_true(shmbus_runtime_dir(dir, sizeof(dir)) > 0);
    snprintf(abs, sizeof(abs), "%s/kd", a);
    assert_string_equal(dir, abs);
    shmbus_bus *b;
    const char *name = th_name("keep");
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    shmbus_bus_close(b);

    /* From elsewhere, "kd" is another folder: clean there finds nothing to remove. */
    assert_int_equal(chdir(b2), 0);
    assert_int_equal(shmbus_clean(0, NULL, NULL), 0);
    setenv("SHMBUS_DIR", abs, 1);
    assert_int_equal(shmbus_bus_open(name, NULL, 0, &b), 0); /* still there, healthy */
    shmbus_bus_close(b);
    assert_int_equal(shmbus_clean(0, NULL, NULL), 0);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    assert_int_equal(chdir(cwd), 0);
    setenv("SHMBUS_DIR", old, 1);
}

/* ---- clean while buses come and go ------------------------------------------------------- */

static int churn(void *arg)
{
    (void)arg;
    char name[32];
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < 8; i++) {
            snprintf(name, sizeof(name), "churn-%d-%d", (int)getpid(), i);
            shmbus_bus *b;
            struct shmbus_bus_opts o = {.max_clients = 2, .slots = 2, .msg_size = 8};
            if (shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE, &b) == 0) {
                shmbus_client *c;
                if (shmbus_join(b, 0, NULL, &c) == 0)
                    shmbus_leave(c);
                shmbus_bus_close(b);
            }
        }
        for (int i = 0; i < 8; i++) {
            snprintf(name, sizeof(name), "churn-%d-%d", (int)getpid(), i);
            shmbus_bus_destroy(name);
        }
    }
    return 0;
}

static void test_clean_while_buses_change(void **state)
{
    (void)state;
    ensure_dir();
    pid_t p1 = th_fork(churn, NULL), p2 = th_fork(churn, NULL);
    /* Dry runs only: a real clean would count the churners' half-made buses as stale. */
    for (int runs = 0; runs < 300; runs++)
        assert_true(shmbus_clean(1, NULL, NULL) >= 0);
    assert_int_equal(th_wait(p1, 30000), 0);
    assert_int_equal(th_wait(p2, 30000), 0);
}

/* ---- a creator that dies half-way ------------------------------------------------------- */

static _Atomic int die_creating;

void sb__test_point(int where)
{
    if (where == SB_TP_CREATING && atomic_load(&die_creating))
        _exit(9);
}

static int create_and_die(void *arg)
{
    atomic_store(&die_creating, 1);
    shmbus_bus *b;
    shmbus_bus_open(arg, NULL, SHMBUS_OPEN_CREATE, &b);
    return 0; /* not reached */
}

static int count_segments(const char *kind, const char *what, const char *why, void *arg)
{
    (void)what;
    (void)why;
    if (strcmp(kind, "segment") == 0)
        ++*(int *)arg;
    return 0;
}

static void count_cb(const char *kind, const char *what, const char *why, void *arg)
{
    count_segments(kind, what, why, arg);
}

static void test_creator_dies(void **state)
{
    (void)state;
    const char *name = th_name("halfmade");
    char nm[64];
    snprintf(nm, sizeof(nm), "%s", name);
    assert_int_equal(th_wait(th_fork(create_and_die, nm), 10000), 9);
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(nm, NULL, 0, &b), -ENOENT); /* never named */
    assert_int_equal(shmbus_bus_open(nm, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    shmbus_bus_close(b);
    int segs = 0;
    assert_int_equal(shmbus_clean(0, count_cb, &segs), 1);
    assert_int_equal(segs, 1); /* the half-made one; the new bus stays */
    assert_int_equal(shmbus_bus_open(nm, NULL, 0, &b), 0);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(nm), 0);
}

/* ---- planting ---------------------------------------------------------------------------- */

static int plant_fd[2];

/* As nobody: create a segment and hand its ownership to root (the victim) with IPC_SET, as
 * the attacker of the issue did; report its id through the pipe. */
static int plant_as_nobody(void *arg)
{
    size_t size = *(size_t *)arg;
    if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
        setresuid(65534, 65534, 65534) != 0)
        return 1;
    int id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);
    if (id < 0)
        return 2;
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) != 0)
        return 3;
    ds.shm_perm.uid = 0;
    ds.shm_perm.mode = 0666; /* so that the attacker keeps access after giving it away */
    if (shmctl(id, IPC_SET, &ds) != 0)
        return 4;
    if (write(plant_fd[1], &id, sizeof(id)) != (ssize_t)sizeof(id))
        return 5;
    return 0;
}

static void write_key_file(const char *name, int shmid, uint64_t nonce)
{
    char path[600];
    key_path_of(name, path, sizeof(path));
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "shmbus-bus 1 %d %016llx\n", shmid, (unsigned long long)nonce);
    fclose(f);
}

/* A copy of bus b (header, nonce and all) in segment id. */
static void copy_bus(shmbus_bus *b, int id, size_t size)
{
    uint8_t *copy = shmat(id, NULL, 0), *orig = attach_raw(b);
    assert_true(copy != (void *)-1);
    memcpy(copy, orig, size);
    shmdt(orig);
    shmdt(copy);
}

/*
 * Our key file names a segment that is a perfect copy of our bus (as if a shmid had been
 * reused, or the file pointed elsewhere): accepted only while the segment is ours by owner
 * AND creator AND mode. Another user's segment handed to us with IPC_SET (owner us, creator
 * them), or one open to the group or to others, is refused.
 */
static void test_planted_segment_refused(void **state)
{
    (void)state;
    const char *name = th_name("planted");
    shmbus_bus *b, *x;
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    struct shmbus_bus_info info;
    assert_int_equal(shmbus_bus_info(b, &info), 0);
    int id = shmget(IPC_PRIVATE, info.segment_size, IPC_CREAT | 0600);
    assert_true(id >= 0);
    th_track_shmid(id);
    copy_bus(b, id, info.segment_size);
    write_key_file(name, id, info.nonce);
    assert_int_equal(shmbus_bus_open(name, NULL, 0, &x), 0); /* ours in every way */
    shmbus_bus_close(x);
    struct shmid_ds ds;
    static const unsigned bad_modes[] = {0640, 0604, 0666};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(shmctl(id, IPC_STAT, &ds), 0);
        ds.shm_perm.mode = bad_modes[i];
        assert_int_equal(shmctl(id, IPC_SET, &ds), 0);
        assert_int_equal(shmbus_bus_open(name, NULL, 0, &x), -EACCES);
    }
    shmctl(id, IPC_RMID, NULL);

    if (geteuid() == 0) {
        /* The attack: created by another user, then given to us. */
        assert_int_equal(pipe(plant_fd), 0);
        size_t size = info.segment_size;
        int st = th_wait(th_fork(plant_as_nobody, &size), 10000);
        int planted = -1;
        assert_int_equal(st, 0);
        assert_int_equal(read(plant_fd[0], &planted, sizeof(planted)), (ssize_t)sizeof(planted));
        close(plant_fd[0]);
        close(plant_fd[1]);
        th_track_shmid(planted);
        assert_int_equal(shmctl(planted, IPC_STAT, &ds), 0);
        assert_int_equal(ds.shm_perm.uid, 0);
        assert_int_equal(ds.shm_perm.cuid, 65534);
        ds.shm_perm.mode = 0600; /* even made private to us: its creator is not us */
        assert_int_equal(shmctl(planted, IPC_SET, &ds), 0);
        copy_bus(b, planted, info.segment_size);
        write_key_file(name, planted, info.nonce);
        assert_int_equal(shmbus_bus_open(name, NULL, 0, &x), -EACCES);
        assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, &x), -EACCES);
        shmctl(planted, IPC_RMID, NULL);
    }
    shmbus_bus_close(b);
    /* The key file now names a removed segment: destroy says so and removes the file; the
     * real bus, named by no key file and used by nobody, is an orphan that clean removes. */
    assert_int_equal(shmbus_bus_destroy(name), -ENOENT);
    int segs = 0;
    assert_int_equal(shmbus_clean(0, count_cb, &segs), 1);
    assert_int_equal(segs, 1);
    assert_int_equal(shmctl(info.shmid, IPC_STAT, &ds), -1);
}

/* ---- a durable bus's journal control -------------------------------------------------- */

/* Each word of the journal control block in the segment scribbled while the bus runs (a
 * buggy process of the owner can do that): sends, receives and attaches return at once
 * with an error or work, never crash or hang past their timeout, and once the word is put
 * back nothing accepted is lost. */
static void test_scribbled_journal_control(void **state)
{
    (void)state;
    const char *name = th_name("jctl");
    const char *tmp = getenv("TEST_TMPDIR");
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/jctl-%d", tmp != NULL && tmp[0] == '/' ? tmp : "/tmp",
             (int)getpid());
    struct shmbus_bus_opts o = {.max_clients = 4, .msg_size = 64, .ring_bytes = 64 * 1024};
    struct shmbus_durable d = {.dir = dir, .sync = SHMBUS_SYNC_BATCH};
    shmbus_bus *b, *x;
    shmbus_client *a, *c;
    assert_int_equal(shmbus_bus_open_durable(name, &o, &d, SHMBUS_OPEN_CREATE, &b), 0);
    assert_int_equal(shmbus_join(b, 1, "a", &a), 0);
    assert_int_equal(shmbus_join(b, 2, "c", &c), 0);
    uint8_t *raw = attach_raw(b);
    struct sb_jctl *jc = &((struct sb_header *)raw)->journal;
    int sent = 0, got = 0;
    char buf[64];
    struct shmbus_msg m;
    enum {
        EPOCH,
        EPOCH0,
        TARGET,
        TARGET_CUR,
        SYNC_OWNER,
        COMPACT_OWNER,
        SYNCED,
        DIR,
        MAGIC,
        NWORDS
    };
    for (int w = 0; w < NWORDS; w++) {
        uint64_t e = atomic_load(&jc->epoch);
        char savedir[sizeof(jc->dir)];
        memcpy(savedir, jc->dir, sizeof(savedir));
        uint64_t saved[NWORDS] = {e, e, 0, 0, 0, 0, atomic_load(&jc->synced), 0, jc->magic};
        switch (w) {
        case EPOCH:
            atomic_store(&jc->epoch, e + 7);
            break;
        case EPOCH0:
            atomic_store(&jc->epoch, 0);
            break;
        case TARGET:
            atomic_store(&jc->compact_target, e + 1);
            break;
        case TARGET_CUR:
            atomic_store(&jc->compact_target, e);
            break;
        case SYNC_OWNER:
            atomic_store(&jc->sync_owner, 1); /* init: alive, not us */
            break;
        case COMPACT_OWNER:
            atomic_store(&jc->compact_owner, 1);
            break;
        case SYNCED:
            atomic_store(&jc->synced, ~0ull >> 1);
            break;
        case DIR:
            snprintf(jc->dir, sizeof(jc->dir), "/");
            break;
        case MAGIC:
            jc->magic ^= 1;
            break;
        }
        /* A send through the open handle: its file is the one in use, unless the epoch
         * names another (no such file: the segment is garbage). A synchronous send does
         * not wait long for a flusher that never flushes (a live pid, not ours). */
        struct span s = span_start();
        char msg[16];
        int n = snprintf(msg, sizeof(msg), "m%d", sent);
        int r = shmbus_send(a, 2, msg, (size_t)n, SHMBUS_SEND_SYNC, 100);
        span_check(s, 100, "send");
        assert_int_equal(r, w == EPOCH || w == EPOCH0 ? -EBADMSG : 0);
        sent += r == 0;
        /* A new process attaching checks what the segment says of the journal. */
        s = span_start();
        r = shmbus_bus_open(name, NULL, 0, &x);
        span_check(s, 0, "attach");
        if (r == 0)
            shmbus_bus_close(x);
        if (w == DIR) /* "/": another user's (-EACCES), or ours with no such file */
            assert_true(r == (geteuid() == 0 ? -EBADMSG : -EACCES));
        else
            assert_int_equal(r, w == EPOCH || w == EPOCH0 || w == MAGIC ? -EBADMSG : 0);
        switch (w) {
        case EPOCH:
        case EPOCH0:
            atomic_store(&jc->epoch, saved[w]);
            break;
        case TARGET:
        case TARGET_CUR:
            atomic_store(&jc->compact_target, 0);
            break;
        case SYNC_OWNER:
            atomic_store(&jc->sync_owner, 0);
            break;
        case COMPACT_OWNER:
            atomic_store(&jc->compact_owner, 0);
            break;
        case SYNCED:
            atomic_store(&jc->synced, saved[w]);
            break;
        case DIR:
            memcpy(jc->dir, savedir, sizeof(savedir));
            break;
        case MAGIC:
            jc->magic = saved[w];
            break;
        }
        /* Put back: everything sent so far arrives, in order. */
        while ((r = shmbus_recv(c, &m, buf, sizeof(buf) - 1, 0)) >= 0) {
            buf[r] = '\0';
            char want[16];
            snprintf(want, sizeof(want), "m%d", got++);
            assert_string_equal(buf, want);
        }
        assert_int_equal(r, -EAGAIN);
        assert_int_equal(got, sent);
    }
    shmdt(raw);
    shmbus_leave(a);
    shmbus_leave(c);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    th_rm_rf(dir);
}

/* ---- destroy --force --------------------------------------------------------------------- */

static void test_force_scribbled(void **state)
{
    (void)state;
    const char *name = th_name("scribbled");
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    struct shmbus_bus_info info;
    assert_int_equal(shmbus_bus_info(b, &info), 0);
    uint8_t *raw = attach_raw(b);
    memset(raw, 0xa5, SB_HEADER_SIZE);
    shmdt(raw);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_open(name, NULL, 0, &b), -EPROTO);
    assert_int_equal(shmbus_bus_destroy(name), -EPROTO);
    assert_int_equal(shmbus_clean(0, NULL, NULL), 0); /* unrecognisable: not clean's */
    assert_int_equal(shmbus_bus_shmid(name), info.shmid);
    int segs = 0;
    assert_int_equal(shmbus_bus_destroy_force(name, count_cb, &segs), 2); /* segment + key */
    assert_int_equal(segs, 1);
    struct shmid_ds ds;
    assert_int_equal(shmctl(info.shmid, IPC_STAT, &ds), -1);
    assert_int_equal(shmbus_bus_shmid(name), -ENOENT);
}

/* ---- umask ------------------------------------------------------------------------------- */

static void test_umask_0277(void **state)
{
    (void)state;
    const char *tmp = getenv("TEST_TMPDIR");
    if (tmp == NULL)
        skip();
    char old[512], fresh[600];
    assert_true(shmbus_runtime_dir(old, sizeof(old)) > 0);
    snprintf(fresh, sizeof(fresh), "%s/umask-run", tmp);
    setenv("SHMBUS_DIR", fresh, 1);
    mode_t m = umask(0277);
    const char *name = th_name("umask");
    shmbus_bus *b;
    assert_int_equal(shmbus_bus_open(name, NULL, SHMBUS_OPEN_CREATE, &b), 0);
    shmbus_bus_close(b);
    struct stat st;
    assert_int_equal(stat(fresh, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* A folder an older version left 0500 is repaired too. */
    assert_int_equal(chmod(fresh, 0500), 0);
    assert_int_equal(shmbus_bus_open(name, NULL, 0, &b), 0);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
    assert_int_equal(stat(fresh, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    umask(m);
    setenv("SHMBUS_DIR", old, 1);
}

/* `test_security scribble SHMID`: overwrite a segment's header page, for the shell test of
 * `shmbus destroy --force` (tests/test_cli_security.sh). */
static int scribble(const char *arg)
{
    uint8_t *p = shmat(atoi(arg), NULL, 0);
    if (p == (void *)-1) {
        perror("scribble: shmat");
        return 1;
    }
    memset(p, 0xa5, SB_HEADER_SIZE);
    shmdt(p);
    return 0;
}

/* A record whose header word says READY but names another lap of the ring (a stale header,
 * or a scribble) is not a message: the receive fails with -EBADMSG and delivers nothing,
 * whichever path looks at it (the fast one checks the whole word at once, rv_ready0()).
 * Put back as it was, the same record is taken. */
static void test_header_of_another_lap(void **state)
{
    (void)state;
    const char *name = th_name("lap");
    struct shmbus_bus_opts o = {.max_clients = 4, .msg_size = 64};
    shmbus_bus *b;
    shmbus_client *a, *c;
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE, &b), 0);
    assert_int_equal(shmbus_join(b, 1, "a", &a), 0);
    assert_int_equal(shmbus_join(b, 2, "c", &c), 0);
    uint8_t *raw = attach_raw(b);
    char msg[64] = "one lap", buf[64];
    assert_int_equal(shmbus_send(a, 2, msg, sizeof(msg), 0, 0), 0);
    /* A new mailbox's first record is at unit 0 of its ring. */
    _Atomic uint64_t *hw = &((struct sb_rec *)(void *)raw_mbox(raw, 2)->ring)->hw;
    uint64_t v = atomic_load(hw);
    assert_int_equal(SB_HW_STATE(v), SB_HW_READY);
    atomic_store(hw, v + (1ull << 24)); /* the next lap's */
    assert_int_equal(shmbus_recv(c, NULL, buf, sizeof(buf), 0), -EBADMSG);
    atomic_store(hw, v);
    assert_int_equal(shmbus_recv(c, NULL, buf, sizeof(buf), 0), (int)sizeof(msg));
    assert_memory_equal(buf, msg, sizeof(msg));
    shmdt(raw);
    shmbus_leave(c);
    shmbus_leave(a);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "scribble") == 0)
        return scribble(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scribbled_semaphores),
        cmocka_unit_test(test_scribbled_forever_sleeps),
        cmocka_unit_test(test_signal_stops_wait),
        cmocka_unit_test(test_bad_key_files),
        cmocka_unit_test(test_relative_dir),
        cmocka_unit_test(test_clean_while_buses_change),
        cmocka_unit_test(test_creator_dies),
        cmocka_unit_test(test_planted_segment_refused),
        cmocka_unit_test(test_force_scribbled),
        cmocka_unit_test(test_umask_0277),
        cmocka_unit_test(test_header_of_another_lap),
        cmocka_unit_test(test_scribbled_journal_control),
    };
    return cmocka_run_group_tests(tests, NULL, th_cleanup);
}
