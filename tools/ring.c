/*
 * ring.c - `shmbus ring -c N -n M`: the seed's exchange, generalised to N clients, on a
 * private libshmbus bus.
 *
 * Design notes
 *
 * The exchange. One message is in flight at a time, like the seed's single shared struct:
 * client N sends message 0 to client 1; whoever receives message K prints it and, unless K
 * is the last (M - 1), forwards message K + 1. Client k's i-th send goes to the
 * (i mod (N - 1))-th of the other clients in ascending order (ring_dest()); client N's first
 * message counts as its send 0. For N = 3 this is the seed's routing table:
 * client 1 -> 2,3,2,3..., client 2 -> 1,3,1,3..., client 3 -> 1,2,1,2...
 * The receiver of message M - 1 broadcasts STOP; every client leaves the bus and exits 0.
 *
 * Output order. The receiver writes its two transcript lines with one write(2) on the shared
 * standard output before it forwards, so the next line can only come after it: the combined
 * transcript is in message order with no locking. A write that fails because the output is
 * gone (`shmbus ring | head -3`) ends that client with SB_EXIT_OUTPUT; the parent then stops
 * the others and removes the bus like on any failure, and exits 141 itself.
 *
 * Processes. The parent creates the bus (unique name, SHMBUS_OPEN_EXCL), forks N children and
 * never joins. Each child sets PR_SET_PDEATHSIG (it dies with the parent), opens the bus by
 * name, joins as its id, writes one byte to the `ready` pipe and blocks reading the `go`
 * pipe; when all N are ready the parent closes go's write end and every child reads EOF at
 * once. Nobody sends before every client joined, so no send meets a missing client.
 * The parent watches children and signals through a signalfd (SIGCHLD, SIGINT, SIGTERM,
 * SIGHUP blocked in the parent) with a deadline (--timeout). On any failure - a child that
 * exits non-zero or dies, a signal, the deadline - it kills and reaps every child it started,
 * then destroys the bus: nothing is left behind.
 *
 * Counting. A MAP_SHARED anonymous mapping made before the fork holds one bit per message
 * (set with an atomic fetch-or by the receiver: a bit found already set is a duplicate), the
 * per-client receive counts and the per-hop latencies (receive time minus the header's
 * sent_ns, both CLOCK_MONOTONIC). The parent checks: every bit set, no duplicate, counts
 * summing to M. Any mismatch is a failure (exit 1).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tools.h"

/* Latencies kept for the percentiles: every message up to this many, then every k-th. */
#define RING_LAT_MAX (1u << 22)

enum { RING_DATA = 1, RING_STOP = 2 };

/* The payload of a ring message: the seed's struct Memory, minus the routing fields that the
 * bus header carries (src, dst). */
struct ring_msg {
    uint32_t kind;
    uint32_t packet_no;
    char text[56];
};

/* Shared between the parent and the children (MAP_SHARED | MAP_ANONYMOUS before fork). */
struct ring_shared {
    _Atomic uint64_t dups;  /* messages received a second time */
    _Atomic uint64_t bad;   /* malformed messages (wrong size, kind or packet_no) */
    _Atomic uint64_t *seen; /* one bit per packet_no, set by the receiver */
    uint64_t *count;        /* count[k]: messages client k received */
    uint32_t *lat;          /* lat[K / lat_stride]: hop latency of K in ns (clamped) */
    uint64_t lat_stride, nlat;
};

struct ring_args {
    uint32_t clients;
    uint64_t messages;
    unsigned spin;
    unsigned timeout_s;
    int quiet;
    char bus[SHMBUS_NAME_MAX + 1];
};

static const char ring_usage[] =
    "Usage: shmbus ring [-c N] [-n M] [--quiet] [--spin USEC] [--timeout SEC]\n"
    "Run the seed's exchange with N client processes on a fresh private bus: client N sends\n"
    "message 0 to client 1; each receiver prints it and forwards the next message, client\n"
    "k's i-th forward going to the (i mod (N-1))-th of the other clients in ascending order.\n"
    "Prints the transcript, then messages, wall time, per-hop latency and CPU time, after\n"
    "checking that every message was received exactly once (exit 1 if not).\n"
    "  -c, --clients N     client processes, 2..4096 (default 3)\n"
    "  -n, --messages M    messages in all, numbered 0..M-1 (default 90)\n"
    "  -q, --quiet         print only the summary\n"
    "  -s, --spin USEC     receivers spin up to USEC microseconds before sleeping (default 0)\n"
    "  -t, --timeout SEC   give up (kill the clients, exit 1) after SEC seconds (default 600)\n"
    "  -h, --help          this text\n"
    "Exit status: 0 every message once; 1 failure; 2 bad usage; 141 standard output closed\n"
    "(the clients are stopped and the bus removed); 130/143/129 stopped by\n"
    "SIGINT/SIGTERM/SIGHUP (the same).\n";

/* The destination of client k's i-th send among clients 1..n: the (i mod (n-1))-th of the
 * others in ascending order. */
static uint32_t ring_dest(uint32_t k, uint64_t i, uint32_t n)
{
    uint32_t j = (uint32_t)(i % (n - 1)) + 1; /* 1-based rank among the others */

    return j < k ? j : j + 1;
}

/* ---------------------------------------------------------------------------------------- */
/* A client (child process) */

static void child_fail(uint32_t k, const char *what, int err)
{
    char who[32];

    snprintf(who, sizeof(who), "ring: client %u", k);
    sb_err(who, "%s: %s", what, err < 0 ? shmbus_strerror(err) : strerror(err));
}

static int send_data(shmbus_client *cl, uint32_t k, uint32_t dst, uint64_t packet)
{
    struct ring_msg m;
    int rc;

    memset(&m, 0, sizeof(m));
    m.kind = RING_DATA;
    m.packet_no = (uint32_t)packet;
    snprintf(m.text, sizeof(m.text), "This is message %llu from client %u",
             (unsigned long long)packet, k);
    rc = shmbus_send(cl, dst, &m, sizeof(m), 0, -1);
    if (rc < 0)
        child_fail(k, "send", rc);
    return rc;
}

/* Account for message K received by client k; returns 0, or -1 if it is malformed. */
static int record(struct ring_shared *sh, const struct ring_args *a, uint32_t k,
                  const struct shmbus_msg *h, const struct ring_msg *m, int len)
{
    uint64_t K = m->packet_no, bit, now, lat;

    if (len != (int)sizeof(*m) || K >= a->messages || h->src < 1 || h->src > a->clients ||
        memchr(m->text, '\0', sizeof(m->text)) == NULL) {
        atomic_fetch_add_explicit(&sh->bad, 1, memory_order_relaxed);
        return -1;
    }
    /* Relaxed is enough: the parent reads the bits after waitpid(), which orders them. */
    bit = atomic_fetch_or_explicit(&sh->seen[K / 64], 1ull << (K % 64), memory_order_relaxed);
    if (bit & (1ull << (K % 64)))
        atomic_fetch_add_explicit(&sh->dups, 1, memory_order_relaxed);
    sh->count[k]++;
    if (K % sh->lat_stride == 0 && K / sh->lat_stride < sh->nlat) {
        now = sb_now_ns();
        lat = now > h->sent_ns ? now - h->sent_ns : 0;
        sh->lat[K / sh->lat_stride] = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
    }
    return 0;
}

/* The exchange, as client k, once every client joined. */
static int exchange(shmbus_client *cl, struct ring_shared *sh, const struct ring_args *a,
                    uint32_t k)
{
    const uint32_t n = a->clients;
    struct shmbus_msg h;
    struct ring_msg m;
    uint64_t sends = 0;
    char line[160];
    int len, rc;

    if (k == n && send_data(cl, k, ring_dest(k, sends++, n), 0) < 0)
        return 1;
    for (;;) {
        len = shmbus_recv(cl, &h, &m, sizeof(m), -1);
        if (len == -EINTR)
            continue;
        if (len < 0) {
            child_fail(k, "recv", len);
            return 1;
        }
        if (len == (int)sizeof(m) && m.kind == RING_STOP)
            return 0;
        if (m.kind != RING_DATA || record(sh, a, k, &h, &m, len) < 0) {
            child_fail(k, "recv", -EBADMSG);
            return 1;
        }
        if (!a->quiet) {
            len = snprintf(line, sizeof(line),
                           "Client %u has received a message from client %u:\n%s\n", k, h.src,
                           m.text);
            rc = sb_write_all(STDOUT_FILENO, line, (size_t)len);
            if (sb_output_gone(rc))
                return SB_EXIT_OUTPUT; /* the parent stops the others and removes the bus */
            if (rc < 0) {
                child_fail(k, "writing standard output", -rc);
                return 1;
            }
        }
        if (m.packet_no + 1 == a->messages) {
            memset(&m, 0, sizeof(m));
            m.kind = RING_STOP;
            rc = shmbus_broadcast(cl, &m, sizeof(m), 0, 10000);
            if (rc < 0 || (uint32_t)rc != n - 1) {
                child_fail(k, "broadcast of stop", rc < 0 ? rc : -ETIMEDOUT);
                return 1;
            }
            return 0;
        }
        if (send_data(cl, k, ring_dest(k, sends++, n), (uint64_t)m.packet_no + 1) < 0)
            return 1;
    }
}

static int child_main(struct ring_shared *sh, const struct ring_args *a, uint32_t k, pid_t parent,
                      int ready_fd, int go_fd)
{
    shmbus_bus *bus;
    shmbus_client *cl;
    char byte = 'r';
    ssize_t r;
    int rc, status;

    /* Die with the parent; if it is already gone, the signal will never come. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    rc = shmbus_bus_open(a->bus, NULL, 0, &bus);
    if (rc < 0) {
        child_fail(k, "open bus", rc);
        return 1;
    }
    rc = shmbus_join(bus, k, NULL, &cl);
    if (rc < 0) {
        child_fail(k, "join", rc);
        shmbus_bus_close(bus);
        return 1;
    }
    if (a->spin > 0)
        shmbus_client_set_spin(cl, a->spin);
    status = 1;
    if (write(ready_fd, &byte, 1) == 1) {
        close(ready_fd);
        /* Blocks until the parent closes the write end: EOF is the start signal for all. */
        do
            r = read(go_fd, &byte, 1);
        while (r < 0 && errno == EINTR);
        if (r == 0)
            status = exchange(cl, sh, a, k);
    }
    shmbus_leave(cl);
    shmbus_bus_close(bus);
    return status;
}

/* ---------------------------------------------------------------------------------------- */
/* The parent */

static struct ring_shared *shared_map(const struct ring_args *a, size_t *size)
{
    size_t words = (size_t)((a->messages + 63) / 64);
    size_t head = (sizeof(struct ring_shared) + 63) & ~(size_t)63;
    struct ring_shared *sh;
    uint64_t stride = (a->messages + RING_LAT_MAX - 1) / RING_LAT_MAX;
    uint64_t nlat = (a->messages + stride - 1) / stride;
    char *p;

    *size = head + words * 8 + ((size_t)a->clients + 1) * 8 + (size_t)nlat * 4;
    p = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    sh = (struct ring_shared *)p;
    sh->seen = (_Atomic uint64_t *)(p + head);
    sh->count = (uint64_t *)(p + head + words * 8);
    sh->lat = (uint32_t *)(sh->count + a->clients + 1);
    sh->lat_stride = stride;
    sh->nlat = nlat;
    return sh;
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

    return a < b ? -1 : a > b;
}

/* Kill and reap every child still running (pids[i] > 0). */
static void kill_all(pid_t *pids, uint32_t n)
{
    uint32_t i;

    for (i = 0; i < n; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGKILL);
    for (i = 0; i < n; i++)
        if (pids[i] > 0) {
            while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
                ;
            pids[i] = 0;
        }
}

/* Milliseconds until deadline (ns), at least 0. */
static int ms_left(uint64_t deadline)
{
    uint64_t now = sb_now_ns();

    return now >= deadline ? 0 : (int)((deadline - now + 999999u) / 1000000u);
}

/* Reap the children that have exited. Returns 0, or the exit status for the first that
 * failed: SB_EXIT_OUTPUT if it stopped because standard output was closed, else
 * SB_EXIT_FAIL after saying why. */
static int reap(pid_t *pids, uint32_t n, uint32_t *left)
{
    int st;
    uint32_t i;
    pid_t p;

    while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
        for (i = 0; i < n && pids[i] != p; i++)
            ;
        if (i == n)
            continue;
        pids[i] = 0;
        (*left)--;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            continue;
        if (WIFEXITED(st) && WEXITSTATUS(st) == SB_EXIT_OUTPUT)
            return SB_EXIT_OUTPUT;
        if (WIFEXITED(st))
            sb_err("ring", "client %u exited with status %d", i + 1, WEXITSTATUS(st));
        else
            sb_err("ring", "client %u was killed by signal %d", i + 1, WTERMSIG(st));
        return SB_EXIT_FAIL;
    }
    return 0;
}

/*
 * Wait until every child exited (0), or a failure, signal or the deadline: then the exit
 * status (SB_EXIT_FAIL, SB_EXIT_OUTPUT, 128 + signal). With ready_fd >= 0, instead wait
 * until all n children wrote their ready byte.
 */
static int watch(int sfd, int ready_fd, pid_t *pids, uint32_t n, uint32_t *left, uint64_t deadline)
{
    struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN}, {.fd = ready_fd, .events = POLLIN}};
    struct signalfd_siginfo si;
    uint32_t ready = 0;
    char buf[256];
    ssize_t r;
    int rc;

    while (ready_fd >= 0 ? ready < n : *left > 0) {
        rc = poll(fds, ready_fd >= 0 ? 2 : 1, ms_left(deadline));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0) {
            sb_err("ring", "timed out (see --timeout)");
            return SB_EXIT_FAIL;
        }
        if (rc < 0) {
            sb_err("ring", "poll: %s", strerror(errno));
            return SB_EXIT_FAIL;
        }
        if (fds[0].revents & POLLIN) {
            if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si) && si.ssi_signo != SIGCHLD) {
                sb_err("ring", "interrupted by signal %u", si.ssi_signo);
                return 128 + (int)si.ssi_signo;
            }
            rc = reap(pids, n, left);
            if (rc != 0)
                return rc;
            /* A child that exits 0 before the start is a failure too. */
            if (ready_fd >= 0 && *left < n) {
                sb_err("ring", "a client exited before the start");
                return SB_EXIT_FAIL;
            }
        }
        if (ready_fd >= 0 && (fds[1].revents & (POLLIN | POLLHUP))) {
            r = read(ready_fd, buf, sizeof(buf));
            if (r == 0) {
                sb_err("ring", "a client failed before the start");
                return SB_EXIT_FAIL;
            }
            if (r > 0)
                ready += (uint32_t)r;
        }
    }
    return 0;
}

/* Check the counts; print the summary. Returns the exit status. */
static int summary(const struct ring_shared *sh, const struct ring_args *a, uint64_t wall_ns)
{
    uint64_t total = 0, missing = 0, K, dups, bad;
    uint32_t *lat = sh->lat, k;
    struct rusage ru;
    char med[24], p99[24];
    double wall = (double)wall_ns / 1e9;

    for (k = 1; k <= a->clients; k++)
        total += sh->count[k];
    for (K = 0; K < a->messages; K++)
        missing +=
            !(atomic_load_explicit(&sh->seen[K / 64], memory_order_relaxed) & (1ull << (K % 64)));
    dups = atomic_load(&sh->dups);
    bad = atomic_load(&sh->bad);
    qsort(lat, sh->nlat, sizeof(*lat), cmp_u32);
    getrusage(RUSAGE_CHILDREN, &ru);

    printf("ring: %llu messages among %u clients: %llu received, %llu missing, %llu "
           "duplicated, %llu malformed\n",
           (unsigned long long)a->messages, a->clients, (unsigned long long)total,
           (unsigned long long)missing, (unsigned long long)dups, (unsigned long long)bad);
    printf("ring: wall time %.3f s, %.0f messages/s\n", wall,
           wall > 0 ? (double)a->messages / wall : 0.0);
    printf("ring: per-hop latency median %s, p99 %s%s\n",
           sb_fmt_ns(lat[(sh->nlat - 1) / 2], med, sizeof(med)),
           sb_fmt_ns(lat[(uint64_t)((double)(sh->nlat - 1) * 0.99)], p99, sizeof(p99)),
           sh->lat_stride > 1 ? " (sampled)" : "");
    printf("ring: CPU time %.3f s user, %.3f s system\n",
           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    fflush(stdout);
    if (total != a->messages || missing != 0 || dups != 0 || bad != 0) {
        sb_err("ring", "message count mismatch: expected each of %llu messages exactly once",
               (unsigned long long)a->messages);
        return SB_EXIT_FAIL;
    }
    return SB_EXIT_OK;
}

/* Create the private bus under a fresh name (a->bus). */
static int create_bus(struct ring_args *a)
{
    struct shmbus_bus_opts bo = {
        .max_clients = a->clients, .slots = 8, .msg_size = sizeof(struct ring_msg)};
    shmbus_bus *bus;
    int tries, rc = -EEXIST;

    for (tries = 0; tries < 8 && rc == -EEXIST; tries++) {
        snprintf(a->bus, sizeof(a->bus), "ring-%d-%08x", (int)getpid(),
                 (unsigned)(sb_now_ns() * 2654435761u >> 7) ^ (unsigned)tries);
        rc = shmbus_bus_open(a->bus, &bo, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &bus);
    }
    if (rc < 0) {
        sb_errf("ring: create bus %s", a->bus, "%s", shmbus_strerror(rc));
        return -1;
    }
    /* The children open it by name; the parent needs no handle (not across fork either). */
    shmbus_bus_close(bus);
    return 0;
}

/* Fork the clients, start them together, wait for them all. Returns the exit status; the
 * wall time of the exchange in *wall_ns. The caller has blocked the signals in `block`
 * (watched here through a signalfd); the children go back to the mask `saved`. */
static int run(struct ring_args *a, struct ring_shared *sh, uint64_t *wall_ns,
               const sigset_t *block, const sigset_t *saved)
{
    int ready[2] = {-1, -1}, go[2] = {-1, -1}, sfd = -1, status = SB_EXIT_FAIL;
    uint64_t deadline, t0 = 0, t1 = 0;
    uint32_t i, left = 0;
    pid_t *pids, parent = getpid();

    pids = calloc(a->clients, sizeof(*pids));
    if (pids == NULL || pipe(ready) < 0 || pipe(go) < 0) {
        sb_err("ring", "%s", strerror(errno ? errno : ENOMEM));
        goto out;
    }
    fflush(NULL);
    deadline = sb_now_ns() + (uint64_t)a->timeout_s * 1000000000u;
    for (i = 0; i < a->clients; i++) {
        pid_t p = fork();

        if (p < 0) {
            sb_err("ring", "fork: %s", strerror(errno));
            goto out_kill;
        }
        if (p == 0) {
            sigprocmask(SIG_SETMASK, saved, NULL);
            close(ready[0]);
            close(go[1]);
            _exit(child_main(sh, a, i + 1, parent, ready[1], go[0]));
        }
        pids[i] = p;
        left++;
    }
    close(ready[1]);
    close(go[0]);
    ready[1] = go[0] = -1;
    /* Blocked signals stay pending, so a signalfd made now still sees every SIGCHLD. */
    sfd = signalfd(-1, block, SFD_CLOEXEC);
    if (sfd < 0) {
        sb_err("ring", "signalfd: %s", strerror(errno));
        goto out_kill;
    }
    status = watch(sfd, ready[0], pids, a->clients, &left, deadline);
    if (status != 0)
        goto out_kill;
    t0 = sb_now_ns();
    close(go[1]); /* go: every child reads EOF */
    go[1] = -1;
    status = watch(sfd, -1, pids, a->clients, &left, deadline);
    if (status != 0)
        goto out_kill;
    t1 = sb_now_ns();
    status = SB_EXIT_OK;
out_kill:
    kill_all(pids, a->clients);
out:
    if (sfd >= 0)
        close(sfd);
    for (i = 0; i < 2; i++) {
        if (ready[i] >= 0)
            close(ready[i]);
        if (go[i] >= 0)
            close(go[i]);
    }
    free(pids);
    *wall_ns = t1 - t0;
    return status;
}

int sb_cmd_ring(int argc, char **argv)
{
    static const struct option opts[] = {
        {"clients", required_argument, NULL, 'c'},
        {"messages", required_argument, NULL, 'n'},
        {"quiet", no_argument, NULL, 'q'},
        {"spin", required_argument, NULL, 's'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct ring_args a = {.clients = 3, .messages = 90, .timeout_s = 600};
    struct ring_shared *sh;
    sigset_t block, saved;
    uint64_t wall_ns = 0;
    size_t size;
    int c, rc, status;

    while ((c = getopt_long(argc, argv, ":c:n:qs:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (sb_parse_u32(optarg, 2, SHMBUS_MAX_CLIENTS, &a.clients) < 0)
                return sb_bad_usage("ring", ring_usage, "-c: 2..%d clients, not '%s'",
                                    SHMBUS_MAX_CLIENTS, optarg);
            break;
        case 'n':
            if (sb_parse_u64(optarg, 1, UINT32_MAX, &a.messages) < 0)
                return sb_bad_usage("ring", ring_usage, "-n: 1..%u messages, not '%s'", UINT32_MAX,
                                    optarg);
            break;
        case 'q':
            a.quiet = 1;
            break;
        case 's':
            if (sb_parse_u32(optarg, 0, 10000000, &a.spin) < 0)
                return sb_bad_usage("ring", ring_usage, "--spin: microseconds, not '%s'", optarg);
            break;
        case 't':
            if (sb_parse_u32(optarg, 1, 86400 * 7, &a.timeout_s) < 0)
                return sb_bad_usage("ring", ring_usage, "--timeout: seconds >= 1, not '%s'",
                                    optarg);
            break;
        case 'h':
            return sb_usage(ring_usage, 0);
        default:
            return sb_getopt_error("ring", ring_usage, c, argv);
        }
    }
    if (optind != argc)
        return sb_bad_usage("ring", ring_usage, "unexpected argument '%s'", argv[optind]);

    sh = shared_map(&a, &size);
    if (sh == NULL) {
        sb_err("ring", "mmap: %s", strerror(errno));
        return SB_EXIT_FAIL;
    }
    /* Blocked from before the bus exists until it is gone: a signal is read through the
     * signalfd in run() (and ends the run cleanly), or stays pending until the end. */
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &saved);
    if (create_bus(&a) < 0) {
        sigprocmask(SIG_SETMASK, &saved, NULL);
        munmap(sh, size);
        return SB_EXIT_FAIL;
    }
    status = run(&a, sh, &wall_ns, &block, &saved);
    /* Destroyed before printing the summary: a closed stdout (SIGPIPE) cannot leak it. */
    rc = shmbus_bus_destroy(a.bus);
    if (rc < 0) {
        sb_errf("ring: destroy bus %s", a.bus, "%s", shmbus_strerror(rc));
        status = SB_EXIT_FAIL;
    }
    /* A signal still pending is delivered now, with nothing left to clean up. */
    sigprocmask(SIG_SETMASK, &saved, NULL);
    if (status == SB_EXIT_OK)
        status = summary(sh, &a, wall_ns);
    munmap(sh, size);
    return status;
}
