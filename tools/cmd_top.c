/*
 * cmd_top.c - `shmbus top BUS`: a live terminal view of one bus.
 *
 * Every interval (1 s by default) it lists the clients read-only and shows, per client and
 * for the bus: messages sent and received per second (from the difference of the counters
 * with the previous snapshot), mailbox depth, and latency percentiles of the messages
 * received in that interval (the difference of the histograms). A client is matched with
 * its previous snapshot by id and join time, so a new client under an old id starts at 0.
 *
 * Quits on `q` (when standard input is a terminal, put in non-canonical mode and restored
 * on the way out), on SIGINT/SIGTERM, after --iterations screens, or when the bus goes away.
 *
 * On a terminal each screen replaces the last (cursor home, clear). Anywhere else (a pipe,
 * a file, a log) the screens are plain text one after the other, each headed by the time
 * of day and separated by a blank line, with no escape sequences.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "tools.h"

static const char top_usage[] = "Usage: shmbus top BUS [--interval MS] [--iterations N]\n"
                                "A live view of BUS, refreshed every second: clients, messages\n"
                                "per second, mailbox depth, latency. Press q to quit.\n"
                                "  -i, --interval MS    refresh period (default 1000)\n"
                                "  -n, --iterations N   stop after N screens (default: never)\n"
                                "  -h, --help           this text\n"
                                "Exit status: 0 after q or N screens; 1 failure; 2 bad usage;\n"
                                "141 standard output closed; 130/143/129 stopped by\n"
                                "SIGINT/SIGTERM/SIGHUP.\n";

struct snapshot {
    struct shmbus_client_info *v;
    int n;
    uint64_t at_ns;
};

static int take_snapshot(shmbus_bus *bus, struct snapshot *s)
{
    struct shmbus_client_info *v;
    int n = sb_list_clients(bus, &v);
    if (n < 0)
        return n;
    s->v = v;
    s->n = n;
    s->at_ns = sb_now_ns();
    return 0;
}

/* The same client in the previous snapshot, or NULL. */
static const struct shmbus_client_info *find_prev(const struct snapshot *prev,
                                                  const struct shmbus_client_info *c)
{
    int i;

    for (i = 0; i < prev->n; i++)
        if (prev->v[i].id == c->id && prev->v[i].joined_ns == c->joined_ns)
            return &prev->v[i];
    return NULL;
}

static uint64_t delta(uint64_t now, uint64_t before)
{
    return now >= before ? now - before : 0;
}

/* Draw one screen; returns 0, or -1 if it could not all be written (output closed). */
static int draw(const char *name, const struct shmbus_bus_info *bi, const struct snapshot *cur,
                const struct snapshot *prev, int first, int term)
{
    struct sb_client_counts k;
    char counts[96], when[24];
    static uint64_t hist[SHMBUS_LAT_BUCKETS], bus_hist[SHMBUS_LAT_BUCKETS];
    double secs = first ? 0 : (double)(cur->at_ns - prev->at_ns) / 1e9;
    double tx_total = 0, rx_total = 0;
    uint64_t depth_total = 0;
    char p50[24], p99[24];
    unsigned b;
    int i;

    memset(bus_hist, 0, sizeof(bus_hist));
    if (term)
        fputs("\033[H\033[2J", stdout); /* home, clear: the whole view is redrawn each time */
    else if (!first)
        fputc('\n', stdout);
    /* The counts are those of the rows below (see sb_count_clients()). */
    sb_count_clients(cur->v, cur->n, &k);
    char ring[32];
    sb_fmt_bytes(bi->ring_bytes, ring, sizeof(ring));
    printf("shmbus top - bus %s at %s: %s (max %u), %s mailboxes, messages up to %u B, "
           "%u attached\n\n",
           name, sb_fmt_time_of_day(sb_wall_of_mono_ns(cur->at_ns), when, sizeof(when)),
           sb_fmt_client_counts(&k, counts, sizeof(counts)), bi->max_clients, ring, bi->msg_size,
           bi->attached);
    printf("%5s %-16s %8s %-7s %11s %11s %9s %9s %9s\n", "ID", "NAME", "PID", "STATE", "SENT/S",
           "RECV/S", "MAILBOX", "P50", "P99");
    for (i = 0; i < cur->n; i++) {
        const struct shmbus_client_info *c = &cur->v[i];
        const struct shmbus_client_info *p = first ? NULL : find_prev(prev, c);
        double tx = 0, rx = 0;

        for (b = 0; b < SHMBUS_LAT_BUCKETS; b++) {
            hist[b] = delta(c->counters.lat_hist[b], p ? p->counters.lat_hist[b] : 0);
            bus_hist[b] += hist[b];
        }
        if (p != NULL && secs > 0) {
            tx = (double)delta(c->counters.sent, p->counters.sent) / secs;
            rx = (double)delta(c->counters.received, p->counters.received) / secs;
        }
        tx_total += tx;
        rx_total += rx;
        depth_total += c->depth;
        /* MAILBOX: messages waiting (the ring's size in bytes is in the title line). */
        printf("%5u %-16s %8d %-7s %11.0f %11.0f %9u %9s %9s\n", c->id, c->name[0] ? c->name : "-",
               (int)c->pid, sb_state_name(c->state), tx, rx, c->depth,
               sb_fmt_pct(hist, 50, p50, sizeof(p50)), sb_fmt_pct(hist, 99, p99, sizeof(p99)));
    }
    printf("%5s %-16s %8s %-7s %11.0f %11.0f %9llu %9s %9s\n", "all", "(bus)", "", "", tx_total,
           rx_total, (unsigned long long)depth_total, sb_fmt_pct(bus_hist, 50, p50, sizeof(p50)),
           sb_fmt_pct(bus_hist, 99, p99, sizeof(p99)));
    printf("\nrates and latency over the last %.1f s%s\n", secs, term ? "; q quits" : "");
    return fflush(stdout) != 0 || ferror(stdout) ? -1 : 0;
}

/* Wait up to ms for a key; returns 1 if it was q (or Q), else 0. */
static int wait_key(int tty, int ms)
{
    struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
    uint64_t end = sb_now_ns() + (uint64_t)ms * 1000000u;
    char ch;

    while (!sb_stop) {
        uint64_t now = sb_now_ns();
        int left;

        if (now >= end)
            return 0;
        left = (int)((end - now + 999999u) / 1000000u);
        if (!tty) {
            poll(NULL, 0, left);
            continue;
        }
        if (poll(&pfd, 1, left) > 0) {
            if (read(STDIN_FILENO, &ch, 1) != 1)
                tty = 0; /* end of input: keep refreshing until a signal */
            else if (ch == 'q' || ch == 'Q')
                return 1;
        }
    }
    return 0;
}

int sb_cmd_top(int argc, char **argv)
{
    static const struct option opts[] = {
        {"interval", required_argument, NULL, 'i'},
        {"iterations", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct snapshot cur = {NULL, 0, 0}, prev = {NULL, 0, 0};
    struct shmbus_bus_info bi;
    struct termios saved, raw;
    shmbus_bus *bus;
    const char *name, *why;
    uint64_t iterations = 0, done = 0;
    uint32_t interval = 1000;
    int c, rc, tty, term, status = SB_EXIT_OK;

    while ((c = getopt_long(argc, argv, ":i:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (sb_parse_u32(optarg, 10, 3600000, &interval) < 0)
                return sb_bad_usage("top", top_usage, "--interval: 10..3600000 ms, not '%s'",
                                    optarg);
            break;
        case 'n':
            if (sb_parse_u64(optarg, 1, UINT64_MAX, &iterations) < 0)
                return sb_bad_usage("top", top_usage, "--iterations: a number >= 1, not '%s'",
                                    optarg);
            break;
        case 'h':
            return sb_usage(top_usage, 0);
        default:
            return sb_getopt_error("top", top_usage, c, argv);
        }
    }
    if (argc - optind != 1)
        return sb_bad_usage("top", top_usage,
                            argc - optind == 0 ? "no bus name given" : "one bus name only");
    name = argv[optind];
    if ((why = sb_bad_name(name)) != NULL)
        return sb_bad_usage("top", top_usage, "'%s': %s", name, why);

    if (sb_open_bus("top", name, SHMBUS_OPEN_RDONLY, &bus) < 0)
        return SB_EXIT_FAIL;
    term = isatty(STDOUT_FILENO);
    sb_catch_stop_signals();
    tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
        raw = saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    while (!sb_stop) {
        rc = shmbus_bus_info(bus, &bi);
        if (rc == 0)
            rc = take_snapshot(bus, &cur);
        if (rc < 0) {
            sb_errf("top %s", name, "%s", shmbus_strerror(rc));
            status = SB_EXIT_FAIL;
            break;
        }
        if (draw(name, &bi, &cur, &prev, done == 0, term) < 0) {
            status = SB_EXIT_OUTPUT; /* nobody is watching any more */
            break;
        }
        free(prev.v);
        prev = cur;
        cur.v = NULL;
        done++;
        if (iterations != 0 && done >= iterations)
            break;
        if (wait_key(tty, (int)interval))
            break;
    }
    if (tty)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    free(prev.v);
    free(cur.v);
    shmbus_bus_close(bus);
    return sb_stop && status == SB_EXIT_OK ? sb_stop_status() : status;
}
