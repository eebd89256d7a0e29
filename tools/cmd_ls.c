/*
 * cmd_ls.c - `shmbus ls` and `shmbus stat`: what is on this user's buses.
 *
 * Both attach read-only (SHMBUS_OPEN_RDONLY) and never join, so looking at a bus does not change
 * who is on it. A snapshot of many clients is not taken at one instant (the counters are
 * relaxed atomics, see shmbus.h): a sum can be a few messages off while traffic flows.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>

#include "tools.h"

/* ---------------------------------------------------------------------------------------- */
/* ls */

struct stale {
    char kind[16];
    char what[96];
    char why[128];
};

struct stale_list {
    struct stale *v;
    size_t n, cap;
};

static void collect_stale(const char *kind, const char *what, const char *why, void *arg)
{
    struct stale_list *l = arg;
    struct stale *nv;

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        nv = realloc(l->v, l->cap * sizeof(*nv));
        if (nv == NULL)
            return; /* listing stale objects is best effort */
        l->v = nv;
    }
    snprintf(l->v[l->n].kind, sizeof(l->v[l->n].kind), "%s", kind);
    snprintf(l->v[l->n].what, sizeof(l->v[l->n].what), "%s", what);
    snprintf(l->v[l->n].why, sizeof(l->v[l->n].why), "%s", why);
    l->n++;
}

/* The names of all buses (malloc'd, *out); returns how many or a negative error. */
static int bus_names(char (**out)[SHMBUS_NAME_MAX + 1])
{
    char(*names)[SHMBUS_NAME_MAX + 1] = NULL;
    void *nv;
    size_t cap = 32;
    int n;

    for (;;) {
        nv = realloc(names, cap * sizeof(*names));
        if (nv == NULL) {
            free(names);
            return -ENOMEM;
        }
        names = nv;
        n = shmbus_bus_names(names, cap);
        if (n < 0) {
            free(names);
            return n;
        }
        if ((size_t)n <= cap)
            break;
        cap = (size_t)n + 32;
    }
    *out = names;
    return n;
}

/* What an unrecognisable bus's key file names: its shmid and key (ipcs shows them). 0 if
 * the key file names a segment that exists, -1 otherwise. */
static int broken_segment(const char *name, int *shmid, unsigned *key)
{
    struct shmid_ds ds;

    *shmid = shmbus_bus_shmid(name);
    if (*shmid < 0 || shmctl(*shmid, IPC_STAT, &ds) != 0)
        return -1;
    *key = (unsigned)ds.shm_perm.__key;
    return 0;
}

static void ls_bus_text(const char *name)
{
    struct shmbus_client_info *cl = NULL;
    struct sb_client_counts k;
    struct shmbus_bus_info bi;
    char counts[96];
    shmbus_bus *bus;
    int rc, n, i;

    rc = shmbus_bus_open(name, NULL, SHMBUS_OPEN_RDONLY, &bus);
    if (rc < 0) {
        int shmid;
        unsigned key;

        if (rc != -ENOENT && rc != -EACCES && broken_segment(name, &shmid, &key) == 0)
            printf("%s: not a usable bus: %s (shmid %d, key 0x%08x; remove with `shmbus "
                   "destroy --force %s`)\n",
                   name, shmbus_strerror(rc), shmid, key, name);
        else if (rc == -EUCLEAN)
            printf("%s: not a bus: %s\n", name, shmbus_strerror(rc));
        else
            printf("%s: %s\n", name, shmbus_strerror(rc));
        return;
    }
    rc = shmbus_bus_info(bus, &bi);
    n = rc < 0 ? rc : sb_list_clients(bus, &cl);
    if (n < 0) {
        printf("%s: %s\n", name, shmbus_strerror(n));
        shmbus_bus_close(bus);
        return;
    }
    sb_count_clients(cl, n, &k);
    char ring[32];
    sb_fmt_bytes(bi.ring_bytes, ring, sizeof(ring));
    /* The mailbox is a byte ring (layout 3): its size in bytes, not slots. */
    printf("%s: %s (max %u), %s mailboxes, messages up to %u B, mode %04o, %zu KiB, "
           "%u attached\n",
           name, sb_fmt_client_counts(&k, counts, sizeof(counts)), bi.max_clients, ring,
           bi.msg_size, bi.mode, bi.segment_size / 1024, bi.attached);
    if (n > 0)
        printf("  %5s  %-*s  %8s  %-7s  %s\n", "ID", 16, "NAME", "PID", "STATE",
               "MAILBOX (messages waiting)");
    for (i = 0; i < n; i++) {
        printf("  %5u  %-*s  %8d  %-7s  %u", cl[i].id, 16, cl[i].name[0] ? cl[i].name : "-",
               (int)cl[i].pid, sb_state_name(cl[i].state), cl[i].depth);
        /* A lossy subscriber's losses are never silent (shmbus_subscribe(3)). */
        if (cl[i].counters.lost != 0)
            printf(" (%llu lost)", (unsigned long long)cl[i].counters.lost);
        putchar('\n');
    }
    free(cl);
    shmbus_bus_close(bus);
}

static void ls_bus_json(const char *name)
{
    struct shmbus_client_info *cl = NULL;
    struct sb_client_counts k;
    struct shmbus_bus_info bi;
    shmbus_bus *bus;
    int rc, n, i;

    fputs("{\"name\":", stdout);
    sb_json_str(stdout, name, strlen(name));
    rc = shmbus_bus_open(name, NULL, SHMBUS_OPEN_RDONLY, &bus);
    if (rc < 0) {
        int shmid;
        unsigned key;

        printf(",\"error\":");
        sb_json_str(stdout, shmbus_strerror(rc), strlen(shmbus_strerror(rc)));
        if (rc != -ENOENT && rc != -EACCES && broken_segment(name, &shmid, &key) == 0)
            printf(",\"shmid\":%d,\"key\":\"0x%08x\"", shmid, key);
        fputc('}', stdout);
        return;
    }
    rc = shmbus_bus_info(bus, &bi);
    n = rc < 0 ? rc : sb_list_clients(bus, &cl);
    if (n < 0) {
        printf(",\"error\":");
        sb_json_str(stdout, shmbus_strerror(n), strlen(shmbus_strerror(n)));
        fputc('}', stdout);
        shmbus_bus_close(bus);
        return;
    }
    sb_count_clients(cl, n, &k);
    printf(",\"max_clients\":%u,\"slots\":%u,\"msg_size\":%u,\"mode\":\"%04o\","
           "\"layout_version\":%u,\"creator_uid\":%u,\"creator_pid\":%d,\"shmid\":%d,"
           "\"segment_size\":%zu,\"attached\":%u,\"live_clients\":%u,\"dead_clients\":%u,"
           "\"joining_clients\":%u,\"kept_clients\":%u,\"created_ns\":%llu,\"ring_bytes\":%llu,"
           "\"clients\":[",
           bi.max_clients, bi.slots, bi.msg_size, bi.mode, bi.layout_version,
           (unsigned)bi.creator_uid, (int)bi.creator_pid, bi.shmid, bi.segment_size, bi.attached,
           k.live, k.dead, k.joining, k.kept, (unsigned long long)bi.created_ns,
           (unsigned long long)bi.ring_bytes);
    for (i = 0; i < n; i++) {
        printf("%s{\"id\":%u,\"name\":", i ? "," : "", cl[i].id);
        sb_json_str(stdout, cl[i].name, strlen(cl[i].name));
        printf(",\"pid\":%d,\"state\":\"%s\",\"depth\":%u,\"capacity\":%u,\"joined_ns\":%llu,"
               "\"lost\":%llu}",
               (int)cl[i].pid, sb_state_name(cl[i].state), cl[i].depth, cl[i].capacity,
               (unsigned long long)cl[i].joined_ns, (unsigned long long)cl[i].counters.lost);
    }
    fputs("]}", stdout);
    free(cl);
    shmbus_bus_close(bus);
}

static const char ls_usage[] =
    "Usage: shmbus ls [--json]\n"
    "List every bus of this user (in the runtime directory) with its clients: id, name,\n"
    "pid, live or dead, mailbox depth and capacity (and the messages a lossy subscriber\n"
    "lost); then the stale objects `shmbus clean` would remove. A name whose key file or\n"
    "segment is not a usable bus is listed with why,\n"
    "and the shmid and key of the segment it names (`shmbus destroy --force` removes it).\n"
    "  -j, --json   one JSON object: {\"dir\", \"buses\": [...], \"stale\": [...]}\n"
    "  -h, --help   this text\n";

int sb_cmd_ls(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char(*names)[SHMBUS_NAME_MAX + 1] = NULL;
    struct stale_list stale = {NULL, 0, 0};
    char dir[4096];
    int c, n, i, rc, json = 0;
    size_t k;

    while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'h')
            return sb_usage(ls_usage, 0);
        else
            return sb_getopt_error("ls", ls_usage, c, argv);
    }
    if (optind != argc)
        return sb_bad_usage("ls", ls_usage, "unexpected argument '%s'", argv[optind]);

    rc = shmbus_runtime_dir(dir, sizeof(dir));
    if (rc < 0) {
        sb_err("ls", "runtime directory: %s", shmbus_strerror(rc));
        return SB_EXIT_FAIL;
    }
    n = bus_names(&names);
    if (n < 0) {
        sb_err("ls", "%s: %s", dir, shmbus_strerror(n));
        return SB_EXIT_FAIL;
    }
    rc = shmbus_clean(1, collect_stale, &stale);
    if (json) {
        fputs("{\"dir\":", stdout);
        sb_json_str(stdout, dir, strlen(dir));
        fputs(",\"buses\":[", stdout);
        for (i = 0; i < n; i++) {
            if (i)
                fputc(',', stdout);
            ls_bus_json(names[i]);
        }
        fputs("],\"stale\":[", stdout);
        for (k = 0; k < stale.n; k++) {
            printf("%s{\"kind\":", k ? "," : "");
            sb_json_str(stdout, stale.v[k].kind, strlen(stale.v[k].kind));
            fputs(",\"what\":", stdout);
            sb_json_str(stdout, stale.v[k].what, strlen(stale.v[k].what));
            fputs(",\"why\":", stdout);
            sb_json_str(stdout, stale.v[k].why, strlen(stale.v[k].why));
            fputc('}', stdout);
        }
        fputs("]}\n", stdout);
    } else {
        if (n == 0)
            printf("no buses in %s\n", dir);
        for (i = 0; i < n; i++)
            ls_bus_text(names[i]);
        if (stale.n > 0)
            printf("stale (remove with `shmbus clean`):\n");
        for (k = 0; k < stale.n; k++)
            printf("  %s %s: %s\n", stale.v[k].kind, stale.v[k].what, stale.v[k].why);
    }
    if (rc < 0)
        sb_err("ls", "looking for stale objects: %s", shmbus_strerror(rc));
    free(stale.v);
    free(names);
    return SB_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* stat */

static const char stat_usage[] =
    "Usage: shmbus stat BUS [--json]\n"
    "Counters of every client of BUS (sent, received, bytes, waits on a full mailbox,\n"
    "wake-ups, spins, dropped, lost by a lossy subscription) and send-to-receive latency "
    "percentiles (p50, p99, p99.9)\n"
    "per client and for the whole bus.\n"
    "  -j, --json   one JSON object: {\"bus\", \"clients\": [...], \"total\": {...}}\n"
    "  -h, --help   this text\n";

static void add_counters(struct shmbus_counters *sum, const struct shmbus_counters *c)
{
    unsigned b;

    sum->sent += c->sent;
    sum->received += c->received;
    sum->bytes_sent += c->bytes_sent;
    sum->bytes_received += c->bytes_received;
    sum->full_waits += c->full_waits;
    sum->wakeups += c->wakeups;
    sum->spins += c->spins;
    sum->dropped += c->dropped;
    sum->lost += c->lost;
    for (b = 0; b < SHMBUS_LAT_BUCKETS; b++)
        sum->lat_hist[b] += c->lat_hist[b];
}

static void stat_json_counters(const struct shmbus_counters *c)
{
    printf("\"sent\":%llu,\"received\":%llu,\"bytes_sent\":%llu,\"bytes_received\":%llu,"
           "\"full_waits\":%llu,\"wakeups\":%llu,\"spins\":%llu,\"dropped\":%llu,\"lost\":%llu,"
           "\"latency_ns\":{\"p50\":%llu,\"p99\":%llu,\"p99.9\":%llu}",
           (unsigned long long)c->sent, (unsigned long long)c->received,
           (unsigned long long)c->bytes_sent, (unsigned long long)c->bytes_received,
           (unsigned long long)c->full_waits, (unsigned long long)c->wakeups,
           (unsigned long long)c->spins, (unsigned long long)c->dropped,
           (unsigned long long)c->lost, (unsigned long long)shmbus_hist_percentile(c->lat_hist, 50),
           (unsigned long long)shmbus_hist_percentile(c->lat_hist, 99),
           (unsigned long long)shmbus_hist_percentile(c->lat_hist, 99.9));
}

static void stat_text_row(const char *id, const char *name, const struct shmbus_counters *c)
{
    char p50[24], p99[24], p999[24];

    printf("%5s %-12s %10llu %10llu %12llu %12llu %8llu %8llu %8llu %7llu %7llu %9s %9s %9s\n", id,
           name, (unsigned long long)c->sent, (unsigned long long)c->received,
           (unsigned long long)c->bytes_sent, (unsigned long long)c->bytes_received,
           (unsigned long long)c->full_waits, (unsigned long long)c->wakeups,
           (unsigned long long)c->spins, (unsigned long long)c->dropped,
           (unsigned long long)c->lost, sb_fmt_pct(c->lat_hist, 50, p50, sizeof(p50)),
           sb_fmt_pct(c->lat_hist, 99, p99, sizeof(p99)),
           sb_fmt_pct(c->lat_hist, 99.9, p999, sizeof(p999)));
}

int sb_cmd_stat(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct shmbus_client_info *cl = NULL;
    struct shmbus_counters *total;
    shmbus_bus *bus;
    const char *name, *why;
    char idbuf[16];
    int c, n, i, json = 0;

    while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'h')
            return sb_usage(stat_usage, 0);
        else
            return sb_getopt_error("stat", stat_usage, c, argv);
    }
    if (argc - optind != 1)
        return sb_bad_usage("stat", stat_usage,
                            argc - optind == 0 ? "no bus name given" : "one bus name only");
    name = argv[optind];
    if ((why = sb_bad_name(name)) != NULL)
        return sb_bad_usage("stat", stat_usage, "'%s': %s", name, why);

    if (sb_open_bus("stat", name, SHMBUS_OPEN_RDONLY, &bus) < 0)
        return SB_EXIT_FAIL;
    n = sb_list_clients(bus, &cl);
    if (n < 0) {
        sb_errf("stat %s", name, "%s", shmbus_strerror(n));
        shmbus_bus_close(bus);
        return SB_EXIT_FAIL;
    }
    total = calloc(1, sizeof(*total));
    if (total == NULL) {
        sb_errf("stat %s", name, "%s", strerror(ENOMEM));
        free(cl);
        shmbus_bus_close(bus);
        return SB_EXIT_FAIL;
    }
    for (i = 0; i < n; i++)
        add_counters(total, &cl[i].counters);

    if (json) {
        fputs("{\"bus\":", stdout);
        sb_json_str(stdout, name, strlen(name));
        fputs(",\"clients\":[", stdout);
        for (i = 0; i < n; i++) {
            printf("%s{\"id\":%u,\"name\":", i ? "," : "", cl[i].id);
            sb_json_str(stdout, cl[i].name, strlen(cl[i].name));
            printf(",\"pid\":%d,\"state\":\"%s\",\"depth\":%u,\"capacity\":%u,", (int)cl[i].pid,
                   sb_state_name(cl[i].state), cl[i].depth, cl[i].capacity);
            stat_json_counters(&cl[i].counters);
            fputc('}', stdout);
        }
        fputs("],\"total\":{", stdout);
        stat_json_counters(total);
        fputs("}}\n", stdout);
    } else {
        printf("%5s %-12s %10s %10s %12s %12s %8s %8s %8s %7s %7s %9s %9s %9s\n", "ID", "NAME",
               "SENT", "RECEIVED", "BYTES_SENT", "BYTES_RECV", "FULLWAIT", "WAKEUPS", "SPINS",
               "DROPPED", "LOST", "P50", "P99", "P99.9");
        for (i = 0; i < n; i++) {
            char nm[SHMBUS_NAME_MAX + 8];

            /* A free id whose mailbox was kept for its next client: say so. */
            snprintf(idbuf, sizeof(idbuf), "%u", cl[i].id);
            snprintf(nm, sizeof(nm), "%s%s", cl[i].name[0] ? cl[i].name : "-",
                     cl[i].state == SHMBUS_CLIENT_KEPT ? " (kept)" : "");
            stat_text_row(idbuf, nm, &cl[i].counters);
        }
        stat_text_row("all", "(bus)", total);
    }
    free(total);
    free(cl);
    shmbus_bus_close(bus);
    return SB_EXIT_OK;
}
