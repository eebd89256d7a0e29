/*
 * exchange.c: one client's side of the seed's exchange: options, signals, the routing table,
 * waiting for a message, printing what arrives and forwarding the next message.
 *
 * Design notes
 * - Our routing is the seed's table, by the number of messages we sent (route()): with only
 *   our clients the whole exchange is deterministic, whatever the start order. We write
 *   packet_no (the number of the message we received, plus one), and the exchange ends when
 *   packet 3 * NUM_MESSAGES - 1 is taken: its reader raises `finished`, and everybody stops.
 * - We accept every message addressed to us, whoever wrote it, whatever its packet_no. The
 *   seed's own clients never write packet_no and route by their loop iteration (timing
 *   dependent); they take part in the same segment under the same semName.
 * - semName is the seed's mutex over struct Memory: every read or write of the segment,
 *   including the look at destClientNo, is done holding it. It is created at 0, i.e. taken:
 *   a run begins with the memory in client 3's hands (the seed's Initialization Sequence),
 *   and client 3's first sem_post opens the exchange.
 * - Nobody polls. A client waits on its own turn semaphore, which our senders post after
 *   writing (and releasing semName). A post is a hint, the segment is the truth.
 * - Every sleep is bounded by CLASSIC_WAIT_MS. When it runs out the client checks for a
 *   signal, a stop raised by a peer, a dead peer (which may hold semName), and looks at the
 *   segment under semName anyway: a seed client posts only semName, never our turn
 *   semaphores, and this is how we notice its messages.
 * - Ends besides `finished`: when seed clients took part and all have left (they stop after
 *   NUM_MESSAGES one-second rounds) with the message addressed to no live client of ours,
 *   the exchange is over too (DONE, exit 0). When nothing moves in the segment for the
 *   give-up time (NUM_MESSAGES seconds, the seed's), a client gives up: exit 5.
 * - Output is the seed's, line for line: "Client R has received a message from client S:",
 *   the text (which ends with a newline, as the seed's does), and a newline, so a blank line
 *   follows each message. Flushed before the memory is handed on. A closed stdout (EPIPE;
 *   SIGPIPE is ignored) stops the exchange cleanly: exit 141.
 */
#include "classic.h"
#include "../src/internal.h" /* sb__proc_start_time(): src/proc.c */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    if (!stop_signal) /* the first cause is the one reported (Ctrl-C, then start.sh's end) */
        stop_signal = sig;
}

/* Our parent runs a script called start.sh (one of its arguments is .../start.sh): the
 * seed's way of starting the clients, `./start.sh`, `sh start.sh` or make demo's. */
static bool parent_is_start_sh(pid_t ppid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)ppid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    (void)close(fd); /* read-only procfs file: close cannot lose data */
    if (n <= 0)
        return false;
    buf[n] = '\0';
    for (char *arg = buf; arg < buf + n; arg += strlen(arg) + 1) {
        const char *base = strrchr(arg, '/');
        if (strcmp(base ? base + 1 : arg, "start.sh") == 0)
            return true;
    }
    return false;
}

/* SA_RESTART is harmless here: every wait is bounded, and the flag is checked in between. */
static int install_signals(struct session *s)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    if (sigemptyset(&sa.sa_mask) != 0)
        return classic_fail(s, "sigemptyset", errno);
    /* SIGINT too when inherited ignored: a shell's background job (start.sh's clients) has
     * it ignored, and Ctrl-C must still stop the exchange. */
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        if (sigaction(sigs[i], &sa, NULL) != 0)
            return classic_fail(s, "sigaction", errno);
    }
    /* A closed stdout or stderr is an error to handle (EPIPE), not a death mid-cleanup. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        return classic_fail(s, "signal(SIGPIPE)", errno);
    /* The supervision start.sh no longer does: when our parent, a start.sh, ends (killed by a
     * signal, say), we hear SIGHUP and stop. Only for start.sh: a client started by hand
     * with `(./client1 &)` outlives its short-lived parent, as the seed's does. A parent
     * already gone is caught by the check. */
    if (!parent_is_start_sh(s->ppid))
        return 0;
    if (prctl(PR_SET_PDEATHSIG, SIGHUP) != 0)
        return classic_fail(s, "prctl(PR_SET_PDEATHSIG)", errno);
    if (getppid() != s->ppid)
        stop_signal = SIGHUP;
    return 0;
}

/* ---- options ----------------------------------------------------------------------------- */

struct options {
    bool names;
    int stop_at;    /* test hook: stop (SIGSTOP) holding semName at this packet; -1: never */
    int stop_leave; /* test hook: client N stops (SIGSTOP) after the exchange, before leaving */
};

static void usage(const struct session *s)
{
    fprintf(stderr,
            "usage: %s [--messages N] [--group] | --names\n"
            "  --messages N  length of the exchange (default %d = 3 * NUM_MESSAGES, at least %d);\n"
            "                also CLASSIC_MESSAGES=N; all three clients must agree\n"
            "  --group       let the owner's group use the objects (SEM_PERMS); also "
            "CLASSIC_GROUP=1\n"
            "  --names       print the key file, keys and semaphore names, and exit\n"
            "environment: CLASSIC_DIR (isolated runs: key file directory, also prefixes the\n"
            "semaphore names; default: the seed's names, ftok(\"MemDispatch\", 65) in the\n"
            "working directory), CLASSIC_GIVE_UP (seconds, default %d), CLASSIC_RUN\n",
            s->tag, 3 * NUM_MESSAGES, CLASSIC_MIN_MESSAGES, NUM_MESSAGES);
}

static int parse_int(const struct session *s, const char *name, const char *txt, long lo, long hi,
                     int *out)
{
    char *end;
    errno = 0;
    long v = strtol(txt, &end, 10);
    if (errno || end == txt || *end || v < lo || v > hi) {
        classic_say(s, "%s: '%s' is not a number from %ld to %ld", name, txt, lo, hi);
        return CLASSIC_EXIT_USAGE;
    }
    *out = (int)v;
    return 0;
}

static int parse_env(struct session *s, struct options *o)
{
    const char *v = getenv("CLASSIC_MESSAGES");
    if (v && *v &&
        parse_int(s, "CLASSIC_MESSAGES", v, CLASSIC_MIN_MESSAGES, CLASSIC_MAX_MESSAGES,
                  &s->messages))
        return CLASSIC_EXIT_USAGE;
    v = getenv("CLASSIC_GROUP");
    if (v && strcmp(v, "1") == 0)
        s->mode = SEM_PERMS;
    /* The run: clients started by one start.sh (one parent) belong together; CLASSIC_RUN
     * names a run explicitly (the tests). It decides who a stopped run's note is for. */
    v = getenv("CLASSIC_RUN");
    if (v && snprintf(s->run, sizeof(s->run), "%s", v) >= (int)sizeof(s->run)) {
        classic_say(s, "CLASSIC_RUN is longer than %d characters", CLASSIC_RUN_LEN - 1);
        return CLASSIC_EXIT_USAGE;
    }
    if (!v || !*v)
        snprintf(s->run, sizeof(s->run), "parent %d %llu", (int)s->ppid,
                 (unsigned long long)sb__proc_start_time(s->ppid));
    int secs = NUM_MESSAGES;
    v = getenv("CLASSIC_GIVE_UP");
    if (v && *v && parse_int(s, "CLASSIC_GIVE_UP", v, 1, 86400, &secs))
        return CLASSIC_EXIT_USAGE;
    s->give_up_ms = secs * 1000;
    v = getenv("CLASSIC_TEST_STOP_AT");
    if (v && *v && parse_int(s, "CLASSIC_TEST_STOP_AT", v, 0, CLASSIC_MAX_MESSAGES, &o->stop_at))
        return CLASSIC_EXIT_USAGE;
    v = getenv("CLASSIC_TEST_STOP_LEAVE");
    if (v && *v && parse_int(s, "CLASSIC_TEST_STOP_LEAVE", v, 1, 3, &o->stop_leave))
        return CLASSIC_EXIT_USAGE;
    return 0;
}

static int parse_options(struct session *s, int argc, char **argv, struct options *o)
{
    int rc = parse_env(s, o);
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--messages") == 0 && i + 1 < argc)
            rc = parse_int(s, "--messages", argv[++i], CLASSIC_MIN_MESSAGES, CLASSIC_MAX_MESSAGES,
                           &s->messages);
        else if (strcmp(a, "--group") == 0)
            s->mode = SEM_PERMS;
        else if (strcmp(a, "--names") == 0)
            o->names = true;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(s);
            exit(0);
        } else {
            usage(s);
            rc = CLASSIC_EXIT_USAGE;
        }
    }
    return rc;
}

/* ---- routing ----------------------------------------------------------------------------- */

/* The seed's table: where a client's i-th message (i = 0, 1, ...) goes. Client 3's first
 * message, packet 0, is its i = 0: to client 1. */
static int route(int client, int i)
{
    switch (client) {
    case 1:
        return 2 + i % 2;
    case 2:
        return 1 + 2 * (i % 2);
    default:
        return 1 + i % 2;
    }
}

/* ---- waiting ----------------------------------------------------------------------------- */

static void deadline(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts); /* cannot fail with a valid clock and pointer */
    ts->tv_nsec += CLASSIC_WAIT_MS * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Sleep on a semaphore for at most CLASSIC_WAIT_MS: 0 if taken, else ETIMEDOUT or an errno.
 * CLOCK_MONOTONIC, so a change of the wall clock cannot stretch or skip the wait. */
static int sem_take(sem_t *sem)
{
    struct timespec ts;
    deadline(&ts);
    while (sem_clockwait(sem, CLOCK_MONOTONIC, &ts) != 0) {
        if (errno != EINTR)
            return errno;
        if (stop_signal)
            return EINTR;
    }
    return 0;
}

static void trace(const struct session *s, const char *what)
{
#ifdef DEBUG
    /* The seed's Debug Mode: on stdout, flushed, so it interleaves with the exchange. */
    printf("Client %d: %s\n", s->me, what);
    fflush(stdout);
#else
    (void)s;
    (void)what;
#endif
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail with a valid clock and pointer */
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What the segment holds, reduced to a number: when it changes, somebody moved a message. */
static unsigned long long fingerprint(const struct Memory *m)
{
    unsigned long long h = 1469598103934665603ull; /* FNV-1a over the seed's whole struct */
    const unsigned char *b = (const unsigned char *)m;
    for (size_t i = 0; i < sizeof(*m); i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

struct progress {
    long long since;         /* when the segment last changed (or we started) */
    unsigned long long seen; /* its fingerprint then */
};

static struct progress progress;

/* A signal, or a stop raised by another client: the exit code, having said why; else 0. */
static int check_stop(struct session *s)
{
    int sig = stop_signal;
    if (sig == SIGHUP && getppid() != s->ppid) {
        session_set_abort(s, 128 + sig, "client %d (pid %d) stopped: its parent (pid %d) ended",
                          s->me, (int)s->pid, (int)s->ppid);
        classic_say(s, "my parent (pid %d) ended; stopping", (int)s->ppid);
        return 128 + sig;
    }
    if (sig) {
        session_set_abort(s, 128 + sig, "client %d (pid %d) was interrupted (SIG%s)", s->me,
                          (int)s->pid, sigabbrev_np(sig));
        classic_say(s, "interrupted (SIG%s); stopping", sigabbrev_np(sig));
        return 128 + sig;
    }
    char why[CLASSIC_REASON_LEN];
    int status = session_aborted(s, why, sizeof(why));
    if (status)
        classic_say(s, "stopping: %s", why);
    return status;
}

static int check_peers(struct session *s)
{
    pid_t pid;
    int n = session_dead_peer(s, &pid);
    if (!n)
        return 0;
    bool held = atomic_load_explicit(&s->ctl->holder, memory_order_relaxed) == pid;
    const char *how = held ? " holding semName" : "";
    session_set_abort(s, CLASSIC_EXIT_PEER, "client %d (pid %d) died%s", n, (int)pid, how);
    classic_say(s, "client %d (pid %d) died%s; stopping", n, (int)pid, how);
    return CLASSIC_EXIT_PEER;
}

/* Nothing moved for the give-up time: exit 5, telling our peers why. */
static int check_give_up(struct session *s)
{
    long long idle = now_ms() - progress.since;
    if (idle < s->give_up_ms)
        return 0;
    bool alone =
        !session_had_peer(s) && !atomic_load_explicit(&s->ctl->seed_seen, memory_order_relaxed);
    const char *why = alone ? "no other client came" : "no message moved";
    if (!alone) /* alone: nobody to tell, and no note to leave */
        session_set_abort(s, CLASSIC_EXIT_PEER, "client %d gave up: %s in %d s", s->me, why,
                          s->give_up_ms / 1000);
    classic_say(s, "%s in %d s; giving up", why, s->give_up_ms / 1000);
    return CLASSIC_EXIT_GAVE_UP;
}

static int mutex_acquire(struct session *s)
{
    trace(s, "Acquiring semaphore...");
    for (;;) {
        int rc = check_stop(s);
        if (rc)
            return rc;
        int err = sem_take(s->sem[0]);
        if (err == 0)
            break;
        if (err == EINTR)
            continue;
        if (err != ETIMEDOUT)
            return classic_fail(s, "sem_clockwait(semName)", err);
        rc = check_peers(s);
        if (!rc)
            rc = check_give_up(s); /* alone, semName still in client 3's hands */
        if (rc)
            return rc;
    }
    s->holding = true;
    atomic_store_explicit(&s->ctl->holder, s->pid, memory_order_relaxed);
    trace(s, "Semaphore acquired");
    return 0;
}

static int mutex_release(struct session *s)
{
    trace(s, "Releasing semaphore");
    atomic_store_explicit(&s->ctl->holder, 0, memory_order_relaxed);
    s->holding = false;
    if (sem_post(s->sem[0]) != 0)
        return classic_fail(s, "sem_post(semName)", errno);
    return 0;
}

/* The exchange is over for everybody: wake them to see it. */
static void finish(struct session *s)
{
    atomic_store_explicit(&s->ctl->finished, 1, memory_order_relaxed);
    session_wake_all(s);
}

/* Holding semName, the message not ours, after a quiet wait: has the exchange ended (seed
 * clients took part and all have left, the message addressed to no live client of ours), or
 * has nothing moved for too long? */
static int check_end(struct session *s, bool *over)
{
    unsigned long long f = fingerprint(s->mem);
    if (f != progress.seen) {
        progress.seen = f;
        progress.since = now_ms();
    }
    int seeds = session_seed_clients(s);
    if (seeds > 0)
        atomic_store_explicit(&s->ctl->seed_seen, 1, memory_order_relaxed);
    if (seeds == 0 && atomic_load_explicit(&s->ctl->seed_seen, memory_order_relaxed) &&
        !session_seat_live(s, s->mem->destClientNo)) {
        finish(s);
        *over = true;
        return 0;
    }
    return check_give_up(s);
}

/* Sleep until a message addressed to us is in the segment, and return holding semName; or
 * set *over when the exchange has ended. */
static int wait_message(struct session *s, bool *over)
{
    for (;;) {
        int rc = check_stop(s);
        if (rc)
            return rc;
        if (atomic_load_explicit(&s->ctl->finished, memory_order_relaxed)) {
            *over = true;
            return 0;
        }
        int err = sem_take(s->sem[s->me]);
        if (err == EINTR)
            continue;
        if (err && err != ETIMEDOUT)
            return classic_fail(s, "sem_clockwait(turn)", err);
        if (err == ETIMEDOUT && (rc = check_peers(s)) != 0)
            return rc;
        /* Posted, or timed out: a seed client posts only semName, so look either way. */
        rc = mutex_acquire(s);
        if (rc)
            return rc;
        if (s->mem->destClientNo == s->me)
            return 0;
        if (err == ETIMEDOUT)
            rc = check_end(s, over);
        if (rc)
            return rc; /* session_leave() releases semName */
        rc = mutex_release(s);
        if (rc || *over)
            return rc;
    }
}

/* ---- the exchange ------------------------------------------------------------------------ */

/* A write to stdout failed: EPIPE (the reader left) stops the run cleanly with 141. */
static int output_failed(struct session *s, int err)
{
    if (err != EPIPE)
        return classic_fail(s, "write(stdout)", err);
    if (s->ctl)
        session_set_abort(s, CLASSIC_EXIT_PEER, "client %d's output was closed", s->me);
    classic_say(s, "my output was closed (EPIPE); stopping");
    return CLASSIC_EXIT_OUTPUT;
}

/* Print the message in the segment (we hold semName), as the seed does: the text as it is,
 * then a newline. The segment is shared with peers we do not trust: copy the text out,
 * bounded, and keep control characters other than newline and tab off the terminal. */
static int deliver(struct session *s)
{
    int from = s->mem->srcClientNo;
    char text[BUF_LEN];
    memcpy(text, s->mem->message, sizeof(text));
    text[sizeof(text) - 1] = '\0';
    for (char *c = text; *c; c++) {
        if (((unsigned char)*c < ' ' && *c != '\n' && *c != '\t') || *c == 0x7f)
            *c = '?';
    }
    errno = 0;
    if (printf("Client %d has received a message from client %d:\n%s\n", s->me, from, text) < 0 ||
        fflush(stdout) != 0)
        return output_failed(s, errno ? errno : EIO);
    return 0;
}

/* Write packet p for client `to`, hand the memory on, wake the addressee. */
static int forward(struct session *s, int p, int to)
{
    s->mem->packet_no = p;
    s->mem->srcClientNo = (unsigned short)s->me;
    s->mem->destClientNo = (unsigned short)to;
    snprintf(s->mem->message, BUF_LEN, "This is message %d from client %d\n", p, s->me);
    s->sent++;
    int rc = mutex_release(s);
    if (rc)
        return rc;
    if (sem_post(s->sem[to]) != 0)
        return classic_fail(s, "sem_post(turn)", errno);
    return 0;
}

static int run_exchange(struct session *s, int stop_at)
{
    int n = s->messages;
    progress.since = now_ms();
    if (s->me == 3) {
        /* The exchange opens: semName was created taken (see the notes above). */
        s->holding = true;
        int rc = forward(s, 0, route(3, s->sent));
        if (rc)
            return rc;
    }
    for (;;) {
        bool over = false;
        int rc = wait_message(s, &over);
        if (rc || over)
            return rc;
        int p = s->mem->packet_no; /* hostile: whatever a peer (or nobody) wrote */
        if (p < 0 || p >= n)
            p = p < 0 ? 0 : n - 1;
        if (p == stop_at && raise(SIGSTOP) != 0)
            return classic_fail(s, "raise(SIGSTOP)", errno);
        rc = deliver(s);
        if (rc)
            return rc;
        progress.since = now_ms();
        if (p + 1 < n)
            rc = forward(s, p + 1, route(s->me, s->sent));
        else {
            rc = mutex_release(s); /* the last message: the exchange is over */
            finish(s);
            return rc;
        }
        if (rc)
            return rc;
    }
}

static void session_defaults(struct session *s, int me)
{
    memset(s, 0, sizeof(*s));
    s->me = me;
    snprintf(s->tag, sizeof(s->tag), "client%d", me);
    s->mode = S_IRUSR | S_IWUSR;
    s->messages = 3 * NUM_MESSAGES;
    s->give_up_ms = NUM_MESSAGES * 1000;
    s->lock_fd = -1;
    s->mem_id = -1;
    s->ctl_id = -1;
    s->pid = getpid();
    s->ppid = getppid();
}

static int run_client(struct session *s, const struct options *o)
{
    int rc = install_signals(s);
    if (!rc)
        rc = session_init(s, true);
    if (!rc)
        rc = session_join(s);
    if (!rc)
        rc = run_exchange(s, o->stop_at);
    if (!rc && o->stop_leave == s->me && raise(SIGSTOP) != 0)
        rc = classic_fail(s, "raise(SIGSTOP)", errno);
    int left = session_leave(s);
    if (!rc && left)
        rc = left;
    if (!rc) {
        errno = 0;
        if (printf("%s: DONE\n", s->tag) < 0 || fflush(stdout) != 0)
            rc = output_failed(s, errno ? errno : EIO);
    }
    return rc;
}

int client_main(int me, int argc, char **argv)
{
    struct session s;
    struct options o = {.names = false, .stop_at = -1, .stop_leave = 0};
    session_defaults(&s, me);
    int rc = parse_options(&s, argc, argv, &o);
    if (rc)
        return rc;
    if (o.names) {
        /* Isolated: the key file is made, as its inode is the key; default: nothing. */
        const char *dir = getenv("CLASSIC_DIR");
        rc = session_init(&s, dir && *dir);
        if (!rc)
            session_print_names(&s);
        if (s.lock_fd >= 0)
            (void)close(s.lock_fd);
        return rc;
    }
    return run_client(&s, &o);
}
