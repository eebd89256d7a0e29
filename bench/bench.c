/*
 * shmbus bench: the driver. Parses the options, notes the machine, walks the table of
 * transports through every measurement that fits it, and hands the results to the report.
 *
 * Design notes
 * - One run measures everything, floors included, so that every figure can be read as a ratio
 *   to numbers taken minutes apart on the same (shared, noisy) machine.
 * - The walk goes round by round over all rows (a row's rounds are spread over the whole run,
 *   and each figure is the row's best round), so no row alone profits from a quiet moment.
 *   iceoryx's daemon is started for the first iceoryx measurement and stopped after the last.
 * - The children and RouDi are tracked here. A SIGINT/SIGTERM/SIGHUP kills them, stops the
 *   walk, and lets the ordinary teardown remove everything the run made (queues, buses, RouDi's
 *   files, the private directory) before the signal is raised again.
 */
#include "bench.h"
#include "harness.h"
#include "results.h"

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

char bench_tmpdir[256];

const struct bench_transport *const bench_rows[] = {
    &bench_floor_spin,
    &bench_floor_sem,
    &bench_floor_ring,
    &bench_floor_journal_writev,
    &bench_floor_journal_mapped,
    &bench_peer_pipe,
    &bench_peer_uds,
    &bench_peer_posixmq,
    &bench_peer_sysvmq,
    &bench_peer_zmq,
    &bench_peer_iox_poll,
    &bench_peer_iox_wait,
    &bench_shmbus_spin,
    &bench_shmbus_sleep,
    &bench_shmbus_default,
    &bench_shmbus_percall,
    &bench_shmbus_poll,
    &bench_shmbus_loan,
    &bench_shmbus_durable_none,
    &bench_shmbus_durable_batch,
    &bench_shmbus_durable_always,
    &bench_peer_sqlite,
    &bench_shmbus_tapped,
    NULL,
};

static const size_t lat_sizes[] = {64, 1024, 65536};
static const size_t stream_sizes[] = {64, 1024};
static const int scale_clients[] = {3, 16, 64};

/* --only: a comma-separated list of row names to run (and nothing else); NULL for all. The
 * name "scale" selects the Scale section (the ring hop and its floor); a row's group name
 * (floor-journal) selects every row of the group. */
static const char *only;

static int only_names(const char *name)
{
    if (!only)
        return 1;
    size_t n = strlen(name);
    for (const char *p = only; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

static int selected(const struct bench_transport *t)
{
    return only_names(t->name) || (t->group && only_names(t->group));
}

/* ---- cleanup on a signal ---- */

#define TRACK_MAX 32
static volatile sig_atomic_t tracked_pid[TRACK_MAX];

static void track(volatile sig_atomic_t *set, int v)
{
    for (int i = 0; i < TRACK_MAX; i++)
        if (set[i] == 0) {
            set[i] = v + 1; /* 0 means a free entry */
            return;
        }
}

static void forget(volatile sig_atomic_t *set, int v)
{
    for (int i = 0; i < TRACK_MAX; i++)
        if (set[i] == v + 1)
            set[i] = 0;
}

void bench_track_pid(int pid)
{
    track(tracked_pid, pid);
}
void bench_forget_pid(int pid)
{
    forget(tracked_pid, pid);
}

/* The signal that interrupted the run, 0 if none. */
static volatile sig_atomic_t interrupted;

/* Async-signal-safe: kill(2) only. The children die (RouDi takes SIGTERM and removes its own
 * shared memory), so whatever the main loop waits for returns; it then sees `interrupted`,
 * stops measuring and runs the ordinary teardown (queues, buses, RouDi's files, the private
 * directory) before the signal is raised again with its default action. SA_RESETHAND: a
 * second ^C kills at once. */
static void on_signal(int sig)
{
    interrupted = sig;
    for (int i = 0; i < TRACK_MAX; i++)
        if (tracked_pid[i])
            kill((pid_t)(tracked_pid[i] - 1), SIGTERM);
}

/* ---- machine facts ---- */

static double clock_cost_ns(void)
{
    uint64_t best = UINT64_MAX;
    for (int round = 0; round < 5; round++) {
        uint64_t t0 = bench_now_ns();
        for (int i = 0; i < 100000; i++)
            (void)bench_now_ns();
        uint64_t d = bench_now_ns() - t0;
        if (d < best)
            best = d;
    }
    return (double)best / 100000.0;
}

static void machine_facts(struct bench_machine *m)
{
    snprintf(m->cpu, sizeof(m->cpu), "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *v = strchr(line, ':');
            if (v) {
                v += 1 + strspn(v + 1, " \t");
                v[strcspn(v, "\n")] = 0;
                snprintf(m->cpu, sizeof(m->cpu), "%s", v);
            }
            break;
        }
    }
    if (f)
        fclose(f);
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(m->kernel, sizeof(m->kernel), "%s %s %s", u.sysname, u.release, u.machine);
    m->online = (int)sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    m->cpu_a = m->cpu_b = -1;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        m->usable = CPU_COUNT(&set);
        for (int c = 0; c < CPU_SETSIZE; c++) {
            if (!CPU_ISSET(c, &set))
                continue;
            if (m->cpu_a < 0)
                m->cpu_a = c;
            else if (m->cpu_b < 0)
                m->cpu_b = c;
        }
    }
    m->pinned = m->usable >= 2;
    if (!m->pinned)
        m->cpu_a = m->cpu_b = -1;
    m->clock_ns = clock_cost_ns();
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    m->sanitizers = "yes";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(undefined_behavior_sanitizer)
    m->sanitizers = "yes";
#else
    m->sanitizers = "none";
#endif
#else
    m->sanitizers = "none";
#endif
    m->compiler = __VERSION__;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(m->date, sizeof(m->date), "%Y-%m-%d %H:%M UTC", &tm);
}

/* ---- progress ---- */

static int step, steps;

static void progress(const char *what)
{
    step++;
    if (isatty(2))
        fprintf(stderr, "\r\033[K[%3d/%3d] %s", step, steps, what);
    else
        fprintf(stderr, "[%3d/%3d] %s\n", step, steps, what);
}

static void progress_done(void)
{
    if (isatty(2))
        fprintf(stderr, "\r\033[K");
}

static const char *what_name(enum bench_what w)
{
    switch (w) {
    case BENCH_LAT:
        return "round trip";
    case BENCH_OPEN:
        return "open loop";
    case BENCH_STREAM:
        return "stream 1:1";
    case BENCH_FANIN:
        return "fan-in 8:1";
    }
    return "?";
}

/* ---- the walk ---- */

static struct bench_rec *new_rec(struct bench_run *r, const struct bench_transport *t,
                                 enum bench_what w, size_t size, int nprod)
{
    if (r->nrecs >= BENCH_MAX_RECS)
        return NULL;
    struct bench_rec *x = &r->recs[r->nrecs++];
    memset(x, 0, sizeof(*x));
    x->t = t;
    x->what = w;
    x->size = size;
    x->nprod = nprod;
    return x;
}

/* How good a measured outcome is: lower median round trip, higher rate. */
static double score_of(const struct bench_rec *x)
{
    if (!x->ok)
        return 0;
    if (x->what == BENCH_LAT || x->what == BENCH_OPEN)
        return 1.0 / (double)(x->median + 1);
    return x->rate;
}

/* One round of one measurement. The record keeps the best round so far: on a shared machine a
 * run is slowed by whoever else runs, never sped up, so the best round is the closest to what
 * the transport can do. Every row gets the same rounds, floors included, and the rounds are
 * spread over the whole run (see walk()), so no row profits from a quiet moment alone. */
static void measure(struct bench_run *r, struct bench_rec *x, const char *skip, int round)
{
    char line[160];
    snprintf(line, sizeof(line), "%s %s %zu B (round %d)", x->t->name, what_name(x->what), x->size,
             round + 1);
    progress(line);
    if (skip) {
        bench_why(x->why, sizeof(x->why), "skipped: ", skip);
        return;
    }
    struct bench_params p = {
        .cpu_a = r->m.cpu_a,
        .cpu_b = r->m.cpu_b,
        .warmup = r->warmup,
        .duration_ns = (uint64_t)(r->lat_seconds * 1e9),
        .max_iters = 50000000,
        .period_ns = 1000000000ull / r->open_rate,
        .timeout_ns = r->quick ? 10000000000ull : 20000000000ull, /* a hung side costs this much */
    };
    static struct bench_outcome o; /* 20 KiB of histogram: not on the stack */
    int rc;
    if (x->what == BENCH_OPEN)
        p.duration_ns = (uint64_t)(r->open_seconds * 1e9);
    if (x->what == BENCH_STREAM || x->what == BENCH_FANIN)
        p.duration_ns = (uint64_t)(r->stream_seconds * 1e9);
    /* A row alone does one side's work without the other's pauses: half a stream's time
     * gives as many chunks, and keeps the two journal floor rows well under 2 s a run. */
    if (x->t->caps & BENCH_CAP_ALONE)
        p.duration_ns /= 2;
    if (x->t->caps & BENCH_CAP_ALONE)
        rc = bench_run_alone(x->t, x->size, &p, &o);
    else if (x->what == BENCH_LAT || x->what == BENCH_OPEN)
        rc = bench_run_latency(x->t, x->size, x->what == BENCH_OPEN, &p, &o);
    else
        rc = bench_run_stream(x->t, x->size, x->nprod, &p, &o);

    struct bench_rec y = *x;
    y.ok = 0;
    if (rc < 0 || !o.ok) {
        if (!x->ok) /* keep an earlier good round; else say why this one failed */
            bench_why(x->why, sizeof(x->why), "", o.why[0] ? o.why : "failed");
        return;
    }
    y.ok = 1;
    y.samples = o.messages;
    y.seconds = o.seconds;
    if (x->what == BENCH_LAT || x->what == BENCH_OPEN) {
        y.median = bench_hist_quantile(&o.hist, 0.5);
        y.p99 = bench_hist_quantile(&o.hist, 0.99);
        y.p999 = bench_hist_quantile(&o.hist, 0.999);
        y.max = o.hist.max;
        y.min = o.hist.min;
        y.mean = o.hist.count ? o.hist.sum / (double)o.hist.count : 0;
        y.ok = o.hist.count > 0;
    } else {
        y.rate = o.seconds > 0 ? (double)o.messages / o.seconds : 0;
        y.ok = y.rate > 0;
    }
    if (!y.ok) {
        if (!x->ok)
            snprintf(x->why, sizeof(x->why), "failed: nothing measured");
        return;
    }
    if (!x->ok || score_of(&y) > score_of(x)) {
        y.why[0] = 0;
        *x = y;
    }
}

static int is_iceoryx(const struct bench_transport *t)
{
    return t == &bench_peer_iox_poll || t == &bench_peer_iox_wait;
}

/* RouDi is started for the first iceoryx measurement and kept until the end of the walk. */
static int roudi_started; /* 0 not yet, 1 running, -1 could not start (roudi_why) */
static char roudi_why[BENCH_WHY_LEN];

/* Why this transport cannot run at all in this run, or NULL. */
static const char *row_skip(const struct bench_transport *t, char *why, size_t whylen)
{
    if (t->kind == BENCH_SHMBUS)
        return bench_shmbus_unavailable();
    if (!is_iceoryx(t))
        return NULL;
    const char *no = bench_iox_unavailable();
    if (no)
        return no;
    if (roudi_started == 0)
        roudi_started = bench_roudi_start(roudi_why, sizeof(roudi_why)) == 0 ? 1 : -1;
    if (roudi_started < 0) {
        snprintf(why, whylen, "%s", roudi_why);
        return why;
    }
    return NULL;
}

/* The measurements of one row, in report order; returns how many (recs may be NULL). */
static int row_plan(struct bench_run *r, const struct bench_transport *t, int round,
                    struct bench_rec **recs)
{
    int n = 0;
    size_t nlat = sizeof(lat_sizes) / sizeof(lat_sizes[0]);
    size_t nstream = sizeof(stream_sizes) / sizeof(stream_sizes[0]);
    struct bench_rec plan[8];
    if (t->caps & BENCH_CAP_LATENCY) {
        for (size_t s = 0; s < nlat; s++) {
            plan[n++] =
                (struct bench_rec){.t = t, .what = BENCH_LAT, .size = lat_sizes[s], .nprod = 1};
            /* The floor of a 64 B message with shmbus's record header: two lines. */
            if (t == &bench_floor_spin && lat_sizes[s] == 64)
                plan[n++] = (struct bench_rec){
                    .t = t, .what = BENCH_LAT, .size = BENCH_SB_RECORD_64, .nprod = 1};
        }
        /* One open-loop round only: its point is to show stalls, not to dodge them. */
        if (round == 0)
            plan[n++] = (struct bench_rec){.t = t, .what = BENCH_OPEN, .size = 64, .nprod = 1};
    }
    if (t->caps & BENCH_CAP_STREAM)
        for (size_t s = 0; s < nstream; s++)
            plan[n++] = (struct bench_rec){
                .t = t, .what = BENCH_STREAM, .size = stream_sizes[s], .nprod = 1};
    if (t->caps & BENCH_CAP_FANIN)
        plan[n++] = (struct bench_rec){
            .t = t, .what = BENCH_FANIN, .size = 64, .nprod = BENCH_MAX_PRODUCERS};
    /* The journal floor: the 64 B stream's sender work alone, for the durable target. */
    if (t->caps & BENCH_CAP_ALONE)
        plan[n++] = (struct bench_rec){.t = t, .what = BENCH_STREAM, .size = 64, .nprod = 1};
    for (int i = 0; recs && i < n; i++) {
        recs[i] = NULL;
        for (int j = 0; j < r->nrecs; j++) {
            struct bench_rec *x = &r->recs[j];
            if (x->t == t && x->what == plan[i].what && x->size == plan[i].size)
                recs[i] = x;
        }
        if (!recs[i])
            recs[i] = new_rec(r, t, plan[i].what, plan[i].size, plan[i].nprod);
    }
    return n;
}

static int count_steps(struct bench_run *r)
{
    int n = 0;
    for (int round = 0; round < r->rounds; round++)
        for (int i = 0; bench_rows[i]; i++)
            n += selected(bench_rows[i]) ? row_plan(r, bench_rows[i], round, NULL) : 0;
    int nscale = (int)(sizeof(scale_clients) / sizeof(scale_clients[0]));
    /* per number of clients: the shmbus ring and its floor; then memory and classic */
    return n + (only_names("scale") ? 2 * nscale : 0) + (only ? 0 : 1 + 1);
}

/* Round by round over all rows, so that each row's rounds are spread over the whole run. */
static void walk(struct bench_run *r)
{
    for (int round = 0; round < r->rounds && !interrupted; round++) {
        for (int i = 0; bench_rows[i] && !interrupted; i++) {
            const struct bench_transport *t = bench_rows[i];
            if (!selected(t))
                continue;
            char why[BENCH_WHY_LEN];
            const char *skip = row_skip(t, why, sizeof(why));
            struct bench_rec *recs[8];
            int n = row_plan(r, t, round, recs);
            for (int k = 0; k < n && !interrupted; k++)
                if (recs[k])
                    measure(r, recs[k], skip, round);
        }
    }
    bench_roudi_stop();
    roudi_started = 0;
    if (only) {
        snprintf(r->classic.why, sizeof(r->classic.why), "skipped: not run (--only)");
        snprintf(r->memory.why, sizeof(r->memory.why), "skipped: not run (--only)");
        snprintf(r->memory.rss_why, sizeof(r->memory.rss_why), "skipped: not run (--only)");
    }
    if (interrupted)
        return;
    if (only_names("scale"))
        bench_measure_scale(r, scale_clients, 3, progress);
    if (interrupted || only)
        return;
    progress("memory: segment sizes, resident pages of a 1024-client bus");
    bench_measure_memory(r);
    if (interrupted)
        return;
    bench_measure_groups(r, progress);
    if (interrupted)
        return;
    progress("classic exchange");
    bench_measure_classic(r);
}

/* ---- private directory ---- */

static int make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(bench_tmpdir, sizeof(bench_tmpdir), "%s/shmbus-bench.XXXXXX",
             base && *base ? base : "/tmp");
    if (!mkdtemp(bench_tmpdir)) {
        fprintf(stderr, "shmbus: bench: cannot make a directory in %s: %s\n",
                base && *base ? base : "/tmp", strerror(errno));
        return -1;
    }
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (type == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : -1;
}

/* Transports unlink their own files; what may remain is a key file of a bus, the classic
 * exchange's directory, or a socket of a killed child. The directory is ours alone. */
static void remove_tmpdir(void)
{
    if (!bench_tmpdir[0])
        return;
    if (nftw(bench_tmpdir, remove_one, 8, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "shmbus: bench: could not remove all of %s: %s\n", bench_tmpdir,
                strerror(errno));
    bench_tmpdir[0] = 0;
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: shmbus bench [--quick] [--json] [--only ROW,...]\n"
               "  Measures round-trip latency and throughput of shmbus against the physical\n"
               "  floors (cache line, semaphore, batched ring, journal) and its peers (pipe,\n"
               "  Unix socket, POSIX and System V message queues, ZeroMQ, iceoryx; durable\n"
               "  buses against SQLite), in one run. SHMBUS_BENCH_JOURNAL=DIR puts the\n"
               "  journals, the journal floor's files and the SQLite database in DIR\n"
               "  (default: a temporary directory, often a tmpfs).\n"
               "  Also what a bus takes in memory, and the targets of issues 5, 11, 12 and 13,\n"
               "  each MET, MISSED or NOT MEASURED from this run's own figures.\n"
               "  --quick   fewer iterations, under a minute\n"
               "  --json    one JSON document on stdout instead of the table\n"
               "  --only A,B   run only these rows (names as in the report); the name scale\n"
               "               runs the Scale section (ring hop and its floor), the name\n"
               "               floor-journal both journal floor rows; no memory, groups or\n"
               "               classic\n"
               "  --self-test  check the latency histogram and exit\n"
               "  progress goes to stderr\n");
}

int sb_bench_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"quick", no_argument, NULL, 'q'},      {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},       {"self-test", no_argument, NULL, 't'},
        {"only", required_argument, NULL, 'o'}, {NULL, 0, NULL, 0},
    };
    static struct bench_run r;
    memset(&r, 0, sizeof(r));
    optind = 1;
    only = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "qjho:", opts, NULL)) != -1) {
        switch (c) {
        case 'q':
            r.quick = 1;
            break;
        case 'j':
            r.json = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 't':
            return bench_hist_selftest(stdout) == 0 ? 0 : 1;
        case 'o':
            only = optarg;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "shmbus: bench: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    r.lat_seconds = r.quick ? 0.08 : 0.25;
    r.stream_seconds = r.quick ? 0.1 : 0.3;
    r.rounds = r.quick ? 1 : 3;
    r.warmup = r.quick ? 200 : 2000;
    r.open_seconds = r.quick ? 0.2 : 1.0;
    /* 5000/s: every sleeping peer here needs 40-110 us per round trip, so each stays at or
     * under half load and a queue only builds after a stall, which is what the run shows. */
    r.open_rate = 5000;

    if (make_tmpdir() < 0)
        return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    interrupted = 0;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    machine_facts(&r.m);
    steps = count_steps(&r);
    uint64_t t0 = bench_now_ns();
    walk(&r);
    r.total_seconds = (double)(bench_now_ns() - t0) / 1e9;
    progress_done();
    remove_tmpdir();
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    if (interrupted) {
        fprintf(stderr, "shmbus: bench: interrupted; everything it made is removed\n");
        raise(interrupted);
        return 128 + interrupted;
    }

    if (r.json)
        bench_report_json(stdout, &r);
    else
        bench_report_table(stdout, &r);
    fflush(stdout);
    return 0;
}
