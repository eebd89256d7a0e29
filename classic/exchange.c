/*
 * exchange.c: one client's side of the seed's exchange: options, signals, the routing table,
 * waiting for a turn, printing what arrives and forwarding the next message.
 *
 * Design notes
 * - The routing is the seed's table. Because each client's k-th message goes to a fixed
 *   client, the whole exchange is known in advance: plan() lists the addressee of every
 *   packet, so each client knows which packets it will receive and when its part is over.
 *   Nothing depends on timing or on start order.
 * - semName is the seed's mutex over struct Memory: every read or write of the segment,
 *   including the look at destClientNo, is done holding it. It is created at 0, i.e. taken:
 *   a run begins with the memory in client 3's hands (the seed's Initialization Sequence),
 *   and client 3's first sem_post opens the exchange. So client 3 may write message 0 before
 *   the others exist; whoever arrives later still finds it, addressed to client 1.
 * - Nobody polls. A client whose turn has not come sleeps on its own turn semaphore, which the
 *   sender posts after writing (and releasing semName). It wakes at once, takes semName and
 *   checks that the message is really addressed to it; a turn post is a hint, the segment is
 *   the truth, so a stale post costs one look and nothing else.
 * - Every sleep is bounded by CLASSIC_WAIT_MS. When it runs out the client checks for a
 *   signal, a stop raised by a peer, and a dead peer (which may hold semName: a dead holder
 *   would otherwise block everyone forever), and it looks at the segment under semName anyway:
 *   a client that follows only the seed's protocol posts semName and never our turn
 *   semaphores, and this is how we notice its messages, within CLASSIC_WAIT_MS.
 * - Output: the two lines for a received message are flushed before the memory is handed on,
 *   so the combined output of three clients on one terminal or pipe is the exchange in order.
 */
#include "classic.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
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
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        if (sigaction(sigs[i], &sa, NULL) != 0)
            return classic_fail(s, "sigaction", errno);
    }
    return 0;
}

/* ---- options ----------------------------------------------------------------------------- */

struct options {
    bool names;
    const char *abort_reason;
    int stop_at; /* test hook: stop (SIGSTOP) holding semName at this packet; -1: never */
};

static void usage(const struct session *s)
{
    fprintf(stderr,
            "usage: %s [--messages N] [--group] | --names | --abort REASON\n"
            "  --messages N  length of the exchange (default %d = 3 * NUM_MESSAGES, at least %d);\n"
            "                also CLASSIC_MESSAGES=N; all three clients must agree\n"
            "  --group       let the owner's group use the objects (SEM_PERMS); also "
            "CLASSIC_GROUP=1\n"
            "  --names       print the key file, keys and semaphore names, and exit\n"
            "  --abort WHY   stop the live exchange of this CLASSIC_RUN (start.sh uses this)\n"
            "environment: CLASSIC_DIR (key file directory, default %s; also prefixes the\n"
            "semaphore names), CLASSIC_RUN (set by start.sh)\n",
            s->tag, 3 * NUM_MESSAGES, CLASSIC_MIN_MESSAGES, CLASSIC_DEFAULT_DIR);
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
    v = getenv("CLASSIC_RUN");
    if (v && snprintf(s->run, sizeof(s->run), "%s", v) >= (int)sizeof(s->run)) {
        classic_say(s, "CLASSIC_RUN is longer than %d characters", CLASSIC_RUN_LEN - 1);
        return CLASSIC_EXIT_USAGE;
    }
    v = getenv("CLASSIC_TEST_STOP_AT");
    if (v && *v && parse_int(s, "CLASSIC_TEST_STOP_AT", v, 0, CLASSIC_MAX_MESSAGES, &o->stop_at))
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
        else if (strcmp(a, "--abort") == 0 && i + 1 < argc)
            o->abort_reason = argv[++i];
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

/* The addressee of every packet of an n-message exchange. Caller frees. */
static unsigned char *plan(int n)
{
    unsigned char *dest = malloc((size_t)n);
    if (!dest)
        return NULL;
    int sent[4] = {0, 0, 0, 0};
    int from = 3;
    for (int p = 0; p < n; p++) {
        dest[p] = (unsigned char)route(from, sent[from]++);
        from = dest[p];
    }
    return dest;
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

/* A signal, or a stop raised by another client: the exit code, having said why; else 0. */
static int check_stop(struct session *s)
{
    int sig = stop_signal;
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

/* Sleep until packet p, addressed to us, is in the segment; return holding semName. */
static int wait_turn(struct session *s, int p)
{
    for (;;) {
        int rc = check_stop(s);
        if (rc)
            return rc;
        int err = sem_take(s->sem[s->me]);
        if (err == EINTR)
            continue;
        if (err && err != ETIMEDOUT)
            return classic_fail(s, "sem_clockwait(turn)", err);
        if (err == ETIMEDOUT && (rc = check_peers(s)) != 0)
            return rc;
        /* Posted, or timed out: a seed-protocol peer posts only semName, so look either way. */
        rc = mutex_acquire(s);
        if (rc)
            return rc;
        int dest = s->mem->destClientNo;
        int got = s->mem->packet_no;
        if (dest == s->me && got == p)
            return 0;
        if (dest == s->me) {
            session_set_abort(s, CLASSIC_EXIT_PEER,
                              "client %d expected message %d and found message %d", s->me, p, got);
            classic_say(s, "protocol error: expected message %d, found message %d", p, got);
            return CLASSIC_EXIT_ERROR; /* session_leave() releases semName */
        }
        rc = mutex_release(s);
        if (rc)
            return rc;
    }
}

/* ---- the exchange ------------------------------------------------------------------------ */

/* Print the message in the segment (we hold semName). The segment is shared with peers we do
 * not trust: copy the text out, bounded, and keep control characters off the terminal. */
static int deliver(struct session *s)
{
    int from = s->mem->srcClientNo;
    char text[BUF_LEN];
    memcpy(text, s->mem->message, sizeof(text));
    text[sizeof(text) - 1] = '\0';
    for (char *c = text; *c; c++) {
        if ((unsigned char)*c < ' ' || *c == 0x7f)
            *c = '?';
    }
    if (printf("Client %d has received a message from client %d:\n%s\n", s->me, from, text) < 0 ||
        fflush(stdout) != 0)
        return classic_fail(s, "write(stdout)", errno);
    return 0;
}

/* Write packet p for client `to`, hand the memory on, wake the addressee. */
static int forward(struct session *s, int p, int to)
{
    s->mem->packet_no = p;
    s->mem->srcClientNo = (unsigned short)s->me;
    s->mem->destClientNo = (unsigned short)to;
    snprintf(s->mem->message, BUF_LEN, "This is message %d from client %d", p, s->me);
    int rc = mutex_release(s);
    if (rc)
        return rc;
    if (sem_post(s->sem[to]) != 0)
        return classic_fail(s, "sem_post(turn)", errno);
    return 0;
}

static int run_exchange(struct session *s, const unsigned char *dest, int stop_at)
{
    int n = s->messages;
    if (s->me == 3) {
        /* The exchange opens: semName was created taken (see the notes above). */
        s->holding = true;
        int rc = forward(s, 0, dest[0]);
        if (rc)
            return rc;
    }
    for (int p = 0; p < n; p++) {
        if (dest[p] != s->me)
            continue;
        int rc = wait_turn(s, p);
        if (rc)
            return rc;
        if (p == stop_at && raise(SIGSTOP) != 0)
            return classic_fail(s, "raise(SIGSTOP)", errno);
        rc = deliver(s);
        if (rc)
            return rc;
        rc = p + 1 < n ? forward(s, p + 1, dest[p + 1]) : mutex_release(s);
        if (rc)
            return rc;
    }
    return 0;
}

static void session_defaults(struct session *s, int me)
{
    memset(s, 0, sizeof(*s));
    s->me = me;
    snprintf(s->tag, sizeof(s->tag), "client%d", me);
    s->mode = S_IRUSR | S_IWUSR;
    s->messages = 3 * NUM_MESSAGES;
    s->lock_fd = -1;
    s->mem_id = -1;
    s->ctl_id = -1;
    s->pid = getpid();
}

static int run_client(struct session *s, const struct options *o)
{
    unsigned char *dest = plan(s->messages);
    if (!dest)
        return classic_fail(s, "malloc", errno);
    int rc = install_signals(s);
    if (!rc)
        rc = session_init(s, true);
    if (!rc)
        rc = session_join(s);
    if (!rc)
        rc = run_exchange(s, dest, o->stop_at);
    int left = session_leave(s);
    free(dest);
    if (!rc && left)
        rc = left;
    if (!rc && (printf("%s: DONE\n", s->tag) < 0 || fflush(stdout) != 0))
        rc = classic_fail(s, "write(stdout)", errno);
    return rc;
}

int client_main(int me, int argc, char **argv)
{
    struct session s;
    struct options o = {.names = false, .abort_reason = NULL, .stop_at = -1};
    session_defaults(&s, me);
    int rc = parse_options(&s, argc, argv, &o);
    if (rc)
        return rc;
    if (o.names) {
        rc = session_init(&s, true);
        if (!rc)
            session_print_names(&s);
        return rc ? rc : session_leave(&s);
    }
    if (o.abort_reason) {
        s.me = 0; /* acting for start.sh, not as a client: wake and count all three */
        rc = session_init(&s, false);
        return rc ? rc : session_abort_run(&s, o.abort_reason);
    }
    return run_client(&s, &o);
}
