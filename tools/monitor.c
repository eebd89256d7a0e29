/*
 * monitor.c - `shmbus monitor BUS`: a live web view of a bus.
 *
 * Design notes
 * ------------
 * Order of events: parse the options (bad usage: exit 2, before touching anything), attach
 * to the bus read-only (no bus: exit 1), take the first sample, bind the listening socket
 * ourselves (so a busy port gives a plain "Address already in use" and port 0 can be
 * reported), start the HTTP server, print "listening on http://ADDR:PORT/", then sample
 * every interval until SIGINT, SIGTERM or SIGHUP (exit 0).
 *
 * Signals are blocked in every thread (the HTTP event loop and waker inherit the mask from
 * this one) and taken synchronously by sigtimedwait(), which is also the sampling loop's
 * sleep: no handler, no flag, no race between checking a flag and going to sleep.
 *
 * If the bus is destroyed while we watch (-EIDRM), the page says so and the monitor tries
 * to attach again by name at every interval, so it follows a bus that is re-created.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../bridge/state.h"
#include "monitor.h"
#include "suggest.h"

int sb_monitor_main(int argc, char **argv);

static const char usage_text[] =
    "usage: shmbus monitor BUS [--listen ADDR:PORT] [--interval MS] [--allow-remote]\n"
    "\n"
    "Serve a live web view of BUS, attached read-only: nothing it serves can change the bus.\n"
    "  --listen ADDR:PORT  where to listen (default 127.0.0.1:8080); port 0 picks a free\n"
    "                      port. ADDR is an IPv4 address, [IPv6 address] or localhost\n"
    "  --interval MS       how often to sample the bus, 50..10000 (default 1000)\n"
    "  --allow-remote      allow a non-loopback ADDR: anyone who reaches it sees the bus\n"
    "Pages: / (the live view), /events (server-sent events), /api/bus (JSON),\n"
    "/metrics (Prometheus text format). Stops on SIGINT, SIGTERM or SIGHUP.\n";

struct options {
    const char *bus;
    const char *listen;
    unsigned interval_ms;
    int allow_remote;
};

static int bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "shmbus: monitor: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage_text);
    return 2;
}

/* 0, 1 (--help given: exit 0) or 2 (bad usage, already reported). */
static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"interval", required_argument, NULL, 'i'},
        {"allow-remote", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    o->listen = "127.0.0.1:8080";
    o->interval_ms = 1000;
    optind = 0; /* glibc: full re-initialisation, whatever parsed argv before us */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            o->listen = optarg;
            break;
        case 'i': {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || v < 50 || v > 10000)
                return bad_usage("--interval: '%s' is not a number of ms in 50..10000", optarg);
            o->interval_ms = (unsigned)v;
            break;
        }
        case 'r':
            o->allow_remote = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 1;
        case ':':
            return bad_usage("%s needs a value", argv[optind - 1]);
        default: {
            char near[48];
            const char *arg = argv[optind - 1];

            if (sb_suggest_option(arg, usage_text, near, sizeof(near)) != NULL) {
                fprintf(stderr, "shmbus: monitor: unknown option '%s' (did you mean '%s'?)\n%s",
                        arg, near, usage_text);
                return 2;
            }
            return bad_usage("unknown option '%s'", arg);
        }
        }
    }
    if (optind >= argc)
        return bad_usage("%s", "which bus? (give its name)");
    if (optind + 1 < argc)
        return bad_usage("unexpected argument '%s'", argv[optind + 1]);
    o->bus = argv[optind];
    return 0;
}

/* Parse ADDR:PORT into ss. Returns 0, or -1 if it is not one. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[64];
    const char *colon;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
            return -1;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof(host))
            return -1;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || colon[1] == '-' || port > 65535)
        return -1;
    memset(ss, 0, sizeof(*ss));
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (s[0] != '[' && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof(*v4);
        return 0;
    }
    if (s[0] == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*v6);
        return 0;
    }
    return -1;
}

static int is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
        return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
    if (IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr))
        return 1;
    return IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr) && v6->sin6_addr.s6_addr[12] == 127;
}

/* Bind and listen; the bound address (with the real port) is left in *ss. -errno on error. */
static int open_listener(struct sockaddr_storage *ss, socklen_t len)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    socklen_t sl = sizeof(*ss);
    if (bind(fd, (struct sockaddr *)ss, len) < 0 || listen(fd, 1024) < 0 ||
        getsockname(fd, (struct sockaddr *)ss, &sl) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static void print_url(const struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
        printf("listening on http://%s:%u/\n", host, ntohs(v4->sin_port));
    } else {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
        printf("listening on http://[%s]:%u/\n", host, ntohs(v6->sin6_port));
    }
    fflush(stdout);
}

/* ---- sampling --------------------------------------------------------------------------- */

static uint64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double rate(uint64_t now, uint64_t before, double dt)
{
    return dt > 0 && now >= before ? (double)(now - before) / dt : 0;
}

/* Fill the rates of `next` from `prev` (both in id order). A client is the same one only if
 * its id, pid and join time all match: an id reused by a new process starts from zero. The
 * bus's rates and latency come from its own counters (shmbus_bus_stats()), not from sums
 * over the clients listed now, which drop what clients that left had counted. */
static void derive(struct sb_mon_snap *next, const struct sb_mon_snap *prev)
{
    size_t j = 0;
    for (size_t i = 0; i < next->n; i++) {
        struct sb_mon_client *c = &next->clients[i];
        const struct shmbus_counters *k = &c->info.counters;
        for (unsigned b = 0; b < SHMBUS_LAT_BUCKETS; b++)
            c->samples += k->lat_hist[b];
        c->p50 = shmbus_hist_percentile(k->lat_hist, 50);
        c->p90 = shmbus_hist_percentile(k->lat_hist, 90);
        c->p99 = shmbus_hist_percentile(k->lat_hist, 99);
        if (c->info.state == SHMBUS_CLIENT_LIVE)
            next->live++;
        else if (c->info.state == SHMBUS_CLIENT_DEAD)
            next->dead++;
        while (j < prev->n && prev->clients[j].info.id < c->info.id)
            j++;
        if (next->dt > 0 && j < prev->n && prev->clients[j].info.id == c->info.id &&
            prev->clients[j].info.pid == c->info.pid &&
            prev->clients[j].info.joined_ns == c->info.joined_ns) {
            const struct shmbus_counters *o = &prev->clients[j].info.counters;
            c->sent_rate = rate(k->sent, o->sent, next->dt);
            c->recv_rate = rate(k->received, o->received, next->dt);
            c->has_rate = 1;
        }
    }
    /* The previous sample is comparable only if it read the same bus (same nonce). */
    int same_bus = !next->err && !prev->err && prev->seq != 0 && next->dt > 0 &&
                   prev->bus.nonce == next->bus.nonce;
    if (same_bus) {
        next->sent_rate = rate(next->stats.sent, prev->stats.sent, next->dt);
        next->recv_rate = rate(next->stats.received, prev->stats.received, next->dt);
        next->has_rate = 1;
    }
    size_t k = 0;
    for (size_t i = 0; i < next->nflows; i++) {
        struct sb_mon_flow *f = &next->flows[i];
        if (!same_bus)
            continue;
        while (k < prev->nflows &&
               (prev->flows[k].f.src < f->f.src ||
                (prev->flows[k].f.src == f->f.src && prev->flows[k].f.dst < f->f.dst)))
            k++;
        uint64_t before = 0;
        if (k < prev->nflows && prev->flows[k].f.src == f->f.src &&
            prev->flows[k].f.dst == f->f.dst)
            before = prev->flows[k].f.messages;
        f->rate = rate(f->f.messages, before, next->dt);
        f->has_rate = 1;
    }
    next->p50 = shmbus_hist_percentile(next->stats.lat_hist, 50);
    next->p90 = shmbus_hist_percentile(next->stats.lat_hist, 90);
    next->p99 = shmbus_hist_percentile(next->stats.lat_hist, 99);
    /* A group is the same one if its index and name match (groups are never removed). */
    for (size_t g = 0; same_bus && g < next->ngroups; g++) {
        const struct shmbus_group_info *n = &next->groups[g];
        for (size_t h = 0; h < prev->ngroups; h++) {
            const struct shmbus_group_info *o = &prev->groups[h];
            if (o->index == n->index && strcmp(o->name, n->name) == 0)
                next->group_rate[g] =
                    rate(n->published + n->queued, o->published + o->queued, next->dt);
        }
    }
}

/* The bus's counters and flows into *next. 0 or a negative errno. */
static int sample_flows(shmbus_bus *bus, struct sb_mon_snap *next)
{
    int err = shmbus_bus_stats(bus, &next->stats);
    if (err < 0)
        return err;
    for (int tries = 0; tries < 4; tries++) {
        int n = shmbus_bus_flows(bus, NULL, 0);
        if (n < 0)
            return n;
        size_t cap = (size_t)n + 16;
        struct shmbus_flow *fl = calloc(cap, sizeof(*fl));
        struct sb_mon_flow *mf = calloc(cap, sizeof(*mf));
        if (!fl || !mf) {
            free(fl);
            free(mf);
            return -ENOMEM;
        }
        n = shmbus_bus_flows(bus, fl, cap);
        if (n < 0 || (size_t)n > cap) { /* an error, or new pairs meanwhile: again */
            free(fl);
            free(mf);
            if (n < 0)
                return n;
            continue;
        }
        for (int i = 0; i < n; i++)
            mf[i].f = fl[i];
        free(fl);
        next->flows = mf;
        next->nflows = (size_t)n;
        return 0;
    }
    return -EAGAIN;
}

/* Take one sample of the bus into *next. Returns 0 or a negative errno (also kept in
 * next->err). */
static int sample(shmbus_bus *bus, struct sb_mon_snap *next)
{
    int err = shmbus_bus_info(bus, &next->bus);
    if (err < 0)
        return next->err = err;
    size_t cap = next->bus.max_clients ? next->bus.max_clients : 64;
    for (int tries = 0; tries < 4; tries++) {
        struct sb_mon_client *cs = calloc(cap, sizeof(*cs));
        struct shmbus_client_info *infos = calloc(cap, sizeof(*infos));
        if (!cs || !infos) {
            free(cs);
            free(infos);
            return next->err = -ENOMEM;
        }
        int n = shmbus_list(bus, infos, cap);
        if (n < 0) {
            free(cs);
            free(infos);
            return next->err = n;
        }
        if ((size_t)n > cap) { /* clients joined meanwhile: more room, again */
            free(cs);
            free(infos);
            cap = (size_t)n + 16;
            continue;
        }
        for (int i = 0; i < n; i++)
            cs[i].info = infos[i];
        free(infos);
        next->clients = cs;
        next->n = (size_t)n;
        int g = shmbus_group_list(bus, next->groups, SHMBUS_GROUPS);
        next->ngroups = g < 0 ? 0 : g > (int)SHMBUS_GROUPS ? SHMBUS_GROUPS : (size_t)g;
        err = sample_flows(bus, next);
        return err < 0 ? (next->err = err) : 0;
    }
    return next->err = -EAGAIN;
}

/* The number after "key": in a bridge's one-line state file (0 if absent). */
static uint64_t state_u64(const char *line, const char *key)
{
    char pat[48];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(line, pat);
    return p ? strtoull(p + strlen(pat), NULL, 10) : 0;
}

/* The string after "key": in a bridge's state file, unescaped into out ("" if absent). A
 * \uXXXX escape (a control byte the bridge escaped) becomes '?': the page shows text only. */
static void state_str(const char *line, const char *key, char *out, size_t cap)
{
    char pat[48];
    const char *p;
    size_t n = 0;

    snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    p = strstr(line, pat);
    for (p = p ? p + strlen(pat) : ""; *p && *p != '"' && n + 1 < cap; p++) {
        if (*p == '\\' && p[1] == 'u' && strlen(p) >= 6) {
            out[n++] = '?';
            p += 5;
        } else if (*p == '\\' && p[1]) {
            p++;
            out[n++] = *p == 'n' ? ' ' : *p == 't' ? ' ' : *p;
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

/* The numbers of a bridge's state file (shmbus-bridge(1)) the monitor shows, by key. */
static const struct {
    const char *key;
    size_t off;
} bridge_keys[] = {
    {"jetstream", offsetof(struct sb_mon_bridge, jetstream)},
    {"out_msgs", offsetof(struct sb_mon_bridge, out_msgs)},
    {"out_bytes", offsetof(struct sb_mon_bridge, out_bytes)},
    {"in_msgs", offsetof(struct sb_mon_bridge, in_msgs)},
    {"in_bytes", offsetof(struct sb_mon_bridge, in_bytes)},
    {"queue", offsetof(struct sb_mon_bridge, queue)},
    {"nats_buffered", offsetof(struct sb_mon_bridge, nats_buffered)},
    {"topic_out", offsetof(struct sb_mon_bridge, topic_out)},
    {"topic_in", offsetof(struct sb_mon_bridge, topic_in)},
    {"queue_out", offsetof(struct sb_mon_bridge, queue_out)},
    {"queue_in", offsetof(struct sb_mon_bridge, queue_in)},
    {"requests_out", offsetof(struct sb_mon_bridge, requests_out)},
    {"replies_in", offsetof(struct sb_mon_bridge, replies_in)},
    {"requests_in", offsetof(struct sb_mon_bridge, requests_in)},
    {"replies_out", offsetof(struct sb_mon_bridge, replies_out)},
    {"error_replies", offsetof(struct sb_mon_bridge, error_replies)},
    {"servers", offsetof(struct sb_mon_bridge, servers)},
    {"lost", offsetof(struct sb_mon_bridge, lost)},
    {"dropped_slow", offsetof(struct sb_mon_bridge, dropped_slow)},
    {"undeliverable", offsetof(struct sb_mon_bridge, undeliverable)},
    {"bad", offsetof(struct sb_mon_bridge, bad)},
    {"errors", offsetof(struct sb_mon_bridge, errors)},
    {"disconnects", offsetof(struct sb_mon_bridge, disconnects)},
    {"reconnects", offsetof(struct sb_mon_bridge, reconnects)},
};

/* The bus's NATS bridges, from their state files in the runtime directory (at most 16). */
static void sample_bridges(const char *bus, struct sb_mon_snap *next)
{
    char dir[PATH_MAX], path[PATH_MAX + 300], line[4096];
    size_t blen = strlen(bus);
    struct dirent *e;
    DIR *d;

    if (shmbus_runtime_dir(dir, sizeof(dir)) < 0 || !(d = opendir(dir)))
        return;
    while ((e = readdir(d)) && next->nbridges < 16) {
        size_t len = strlen(e->d_name), sfx = strlen(BRIDGE_STATE_SUFFIX);
        if (len <= blen + 1 + sfx || strncmp(e->d_name, bus, blen) || e->d_name[blen] != '.' ||
            strcmp(e->d_name + len - sfx, BRIDGE_STATE_SUFFIX))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        int ok = fgets(line, sizeof(line), f) != NULL;
        fclose(f);
        if (!ok)
            continue;
        if (!next->bridges && !(next->bridges = calloc(16, sizeof(*next->bridges))))
            break;
        struct sb_mon_bridge *b = &next->bridges[next->nbridges++];
        size_t nlen = len - blen - 1 - sfx;
        snprintf(b->name, sizeof(b->name), "%.*s", (int)nlen, e->d_name + blen + 1);
        const char *p = strstr(line, "\"node\":\"");
        if (p)
            snprintf(b->node, sizeof(b->node), "%.*s", (int)strcspn(p + 8, "\""), p + 8);
        b->up = strstr(line, "\"connected\":true") && bridge_running((long)state_u64(line, "pid"));
        state_str(line, "last_error", b->last_error, sizeof(b->last_error));
        for (size_t k = 0; k < sizeof(bridge_keys) / sizeof(bridge_keys[0]); k++) {
            uint64_t v = state_u64(line, bridge_keys[k].key);
            memcpy((char *)b + bridge_keys[k].off, &v, sizeof(v));
        }
    }
    closedir(d);
}

struct monitor {
    struct options opt;
    shmbus_bus *bus;
    int lost; /* the bus went away: reported once, attach again each interval */
    uint64_t last_ns, seq;
    struct sb_mon_state st;
};

/* Sample, derive, render and publish one snapshot. */
static void tick(struct monitor *m)
{
    struct sb_mon_snap next = {0};
    uint64_t t = now_ns(CLOCK_MONOTONIC);
    next.seq = ++m->seq;
    next.time_ms = now_ns(CLOCK_REALTIME) / 1000000;
    next.interval_ms = m->opt.interval_ms;
    next.dt = m->last_ns ? (double)(t - m->last_ns) / 1e9 : 0;
    m->last_ns = t;

    if (!m->bus) {
        int err = shmbus_bus_open(m->opt.bus, NULL, SHMBUS_OPEN_RDONLY, &m->bus);
        if (err < 0) {
            m->bus = NULL;
            next.err = err;
        } else {
            fprintf(stderr, "shmbus: monitor: %s: attached again\n", m->opt.bus);
            m->lost = 0;
        }
    }
    if (m->bus && sample(m->bus, &next) == -EIDRM) {
        shmbus_bus_close(m->bus);
        m->bus = NULL;
    }
    if (next.err && !m->lost) {
        fprintf(stderr, "shmbus: monitor: %s: %s (retrying every interval)\n", m->opt.bus,
                shmbus_strerror(next.err));
        m->lost = 1;
    }
    if (next.err) /* keep the name on the page while the bus is away */
        snprintf(next.bus.name, sizeof(next.bus.name), "%s", m->opt.bus);
    else
        sample_bridges(m->opt.bus, &next);

    /* Only this thread writes st.snap, so reading the previous one needs no lock. */
    derive(&next, &m->st.snap);
    struct sb_mon_buf json = {0};
    sb_mon_render_json(&next, &json);

    pthread_mutex_lock(&m->st.lock);
    struct sb_mon_snap old = m->st.snap;
    char *old_json = m->st.json;
    m->st.snap = next;
    if (!json.oom) {
        m->st.json = json.p;
        m->st.json_len = json.len;
        json.p = NULL;
    } else {
        old_json = NULL; /* keep serving the previous JSON */
    }
    m->st.gen++;
    pthread_cond_broadcast(&m->st.cond); /* wakes monitor_http.c's waker: streams resume */
    pthread_mutex_unlock(&m->st.lock);

    free(old.clients);
    free(old.flows);
    free(old.bridges);
    free(old_json);
    sb_mon_buf_free(&json);
}

static int state_init(struct sb_mon_state *st)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -ENOMEM;
    /* The streams wait with CLOCK_MONOTONIC deadlines (monitor_http.c). */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int err = pthread_cond_init(&st->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (err)
        return -err;
    pthread_mutex_init(&st->lock, NULL);
    return 0;
}

/* Sleep until the next tick or a stop signal: returns 1 on a stop signal. */
static int wait_tick(const sigset_t *stopset, uint64_t deadline)
{
    for (;;) {
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        if (now >= deadline)
            return 0;
        uint64_t left = deadline - now;
        struct timespec ts = {(time_t)(left / 1000000000ull), (long)(left % 1000000000ull)};
        int sig = sigtimedwait(stopset, NULL, &ts);
        if (sig > 0)
            return 1;
        if (errno != EINTR && errno != EAGAIN)
            return 1;
    }
}

int sb_monitor_main(int argc, char **argv)
{
    struct monitor m = {0};
    int rc = parse_options(argc, argv, &m.opt);
    if (rc)
        return rc == 1 ? 0 : 2;

    struct sockaddr_storage ss;
    socklen_t sl;
    if (parse_listen(m.opt.listen, &ss, &sl) < 0)
        return bad_usage("--listen: '%s' is not ADDR:PORT (e.g. 127.0.0.1:8080, [::1]:0)",
                         m.opt.listen);
    if (!is_loopback(&ss) && !m.opt.allow_remote) {
        fprintf(stderr,
                "shmbus: monitor: --listen %s: not a loopback address; anyone who can reach "
                "it would see the bus. Add --allow-remote if that is what you want.\n",
                m.opt.listen);
        return 2;
    }
    m.st.allow_remote = m.opt.allow_remote;

    int err = shmbus_bus_open(m.opt.bus, NULL, SHMBUS_OPEN_RDONLY, &m.bus);
    if (err < 0) {
        fprintf(stderr, "shmbus: monitor: %s: %s\n", m.opt.bus, shmbus_strerror(err));
        return 1;
    }
    if ((err = state_init(&m.st)) < 0) {
        fprintf(stderr, "shmbus: monitor: %s\n", strerror(-err));
        shmbus_bus_close(m.bus);
        return 1;
    }

    /* Block the stop signals before any thread starts, so every thread inherits the mask and
     * only wait_tick() takes them. A peer that closes a connection must not kill us. */
    sigset_t stopset, oldset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGINT);
    sigaddset(&stopset, SIGTERM);
    sigaddset(&stopset, SIGHUP); /* the terminal went away: stop as cleanly */
    pthread_sigmask(SIG_BLOCK, &stopset, &oldset);
    signal(SIGPIPE, SIG_IGN);

    tick(&m); /* the first sample exists before anyone can ask for it */
    rc = 1;
    int fd = open_listener(&ss, sl);
    struct sb_mon_http *http = NULL;
    if (fd < 0) {
        fprintf(stderr, "shmbus: monitor: --listen %s: %s\n", m.opt.listen, strerror(-fd));
    } else if ((err = sb_mon_http_start(&m.st, fd, &http)) < 0) {
        fprintf(stderr, "shmbus: monitor: cannot start the HTTP server: %s\n", strerror(-err));
        close(fd);
    } else {
        print_url(&ss);
        uint64_t deadline = now_ns(CLOCK_MONOTONIC);
        for (;;) {
            uint64_t step = (uint64_t)m.opt.interval_ms * 1000000ull;
            deadline += step;
            /* After a stall (suspend, SIGSTOP) do not fire the missed ticks in a burst. */
            if (deadline + step < now_ns(CLOCK_MONOTONIC))
                deadline = now_ns(CLOCK_MONOTONIC) + step;
            if (wait_tick(&stopset, deadline))
                break;
            tick(&m);
        }
        rc = 0;
    }

    sb_mon_http_stop(http);
    pthread_sigmask(SIG_SETMASK, &oldset, NULL);
    shmbus_bus_close(m.bus);
    free(m.st.snap.clients);
    free(m.st.snap.flows);
    free(m.st.snap.bridges);
    free(m.st.json);
    pthread_cond_destroy(&m.st.cond);
    pthread_mutex_destroy(&m.st.lock);
    return rc;
}
