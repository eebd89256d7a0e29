/*
 * cmd_group.c - named groups from the shell: `shmbus pub`, `shmbus sub`, `shmbus group ls`
 * and `shmbus leader`.
 *
 * pub and sub are `send --topic` and `recv --sub` (cmd_msg.c) with the topic as an
 * argument, so that a message is handed on, paced and kept exactly as recv does it; there is
 * one receive loop in the tools, not two. group ls and leader only read the bus (opened
 * read-only) and print, with --json one object per line.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools.h"

/* argv with the topic moved into an option: {cmd, BUS, opt, TOPIC, rest...}. */
static int rerun_with_option(int argc, char **argv, const char *cmd, const char *opt,
                             const char *usage, int (*run)(int, char **))
{
    int bus_at = -1, topic_at = -1;
    /* The first two arguments that are not options (nor option values) are BUS and TOPIC;
     * every option of send and recv that takes a value is given as its own word or with '='. */
    static const char *const with_value[] = {"-a", "--as",   "-p", "--prio",  "-T", "--timeout",
                                             "-w", "--wait", "-n", "--count", "-s", "--spin"};
    for (int i = 1; i < argc && topic_at < 0; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
                if (strcmp(argv[i], with_value[k]) == 0)
                    i++;
            continue;
        }
        if (bus_at < 0)
            bus_at = i;
        else
            topic_at = i;
    }
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return sb_usage(usage, 0);
    if (topic_at < 0)
        return sb_bad_usage(cmd, usage, "BUS and TOPIC are required");
    char **nv = calloc((size_t)argc + 2, sizeof(*nv));
    if (nv == NULL) {
        sb_err(cmd, "%s", strerror(ENOMEM));
        return SB_EXIT_FAIL;
    }
    int n = 0;
    nv[n++] = argv[0];
    nv[n++] = (char *)opt;
    nv[n++] = argv[topic_at];
    for (int i = 1; i < argc; i++)
        if (i != topic_at)
            nv[n++] = argv[i];
    nv[n] = NULL;
    optind = 0; /* the subcommand parses its own argv from the start */
    int rc = run(n, nv);
    free(nv);
    return rc;
}

/* Attach to bus `name` read-only; on failure print why ("shmbus: <what> <name>: <why>"). */
static int open_rdonly(const char *what, const char *name, shmbus_bus **bus)
{
    char w[80];
    int rc = shmbus_bus_open(name, NULL, SHMBUS_OPEN_RDONLY, bus);
    snprintf(w, sizeof(w), "%s %s", what, name);
    if (rc == -ENOENT)
        sb_err(w, "no such bus");
    else if (rc < 0)
        sb_err(w, "%s", shmbus_strerror(rc));
    return rc;
}

static const char pub_usage[] =
    "Usage: shmbus pub BUS TOPIC [--as ID|NAME] [OPTION]... [MESSAGE]...\n"
    "Publish each MESSAGE (or each line of standard input) to every subscriber of TOPIC:\n"
    "`shmbus send BUS --topic TOPIC` (see `shmbus send --help` for the options). Without\n"
    "--as an anonymous client joins. A subscriber whose mailbox stays full for --timeout\n"
    "milliseconds misses the message: it is counted (group ls) and pub fails (exit 1).\n";

int sb_cmd_pub(int argc, char **argv)
{
    return rerun_with_option(argc, argv, "pub", "--topic", pub_usage, sb_cmd_send);
}

static const char sub_usage[] =
    "Usage: shmbus sub BUS TOPIC [--as ID|NAME] [OPTION]...\n"
    "Subscribe to TOPIC and print what is published to it (and this client's share of what is\n"
    "sent to TOPIC as a work queue): `shmbus recv BUS --sub TOPIC` (see `shmbus recv --help`\n"
    "for the options and the output). Without --as an anonymous client joins. Leaving (at\n"
    "--count, --timeout, a signal or a closed output) ends the subscription.\n";

int sb_cmd_sub(int argc, char **argv)
{
    return rerun_with_option(argc, argv, "sub", "--sub", sub_usage, sb_cmd_recv);
}

static const char group_usage[] = "Usage: shmbus group ls BUS [--json]\n"
                                  "List the named groups of BUS: members (live subscribers),\n"
                                  "leader and epoch, and counters (published, missed, lost by\n"
                                  "lossy subscribers, queued, redelivered, elections).\n"
                                  "  -j, --json   one JSON object per group and line\n"
                                  "  -h, --help   this text\n";

static void group_json(const struct shmbus_group_info *g)
{
    printf("{\"index\":%u,\"name\":", g->index);
    sb_json_str(stdout, g->name, strlen(g->name));
    printf(",\"members\":%u,\"leader\":%u,\"epoch\":%llu,\"published\":%llu,\"missed\":%llu,"
           "\"queued\":%llu,\"elections\":%llu,\"redelivered\":%llu,\"lost\":%llu}\n",
           g->members, g->leader, (unsigned long long)g->epoch, (unsigned long long)g->published,
           (unsigned long long)g->missed, (unsigned long long)g->queued,
           (unsigned long long)g->elections, (unsigned long long)g->redelivered,
           (unsigned long long)g->lost);
}

int sb_cmd_group(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, json = 0;
    const char *why;

    while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = 1;
            break;
        case 'h':
            return sb_usage(group_usage, 0);
        default:
            return sb_getopt_error("group", group_usage, c, argv);
        }
    }
    if (argc - optind != 2 || strcmp(argv[optind], "ls") != 0)
        return sb_bad_usage("group", group_usage, "expected: group ls BUS");
    const char *name = argv[optind + 1];
    if ((why = sb_bad_name(name)) != NULL)
        return sb_bad_usage("group", group_usage, "'%s': %s", name, why);
    shmbus_bus *bus;
    if (open_rdonly("group ls", name, &bus) < 0)
        return SB_EXIT_FAIL;
    struct shmbus_group_info g[SHMBUS_GROUPS];
    int n = shmbus_group_list(bus, g, SHMBUS_GROUPS);
    shmbus_bus_close(bus);
    if (n < 0) {
        sb_errf("group ls %s", name, "%s", shmbus_strerror(n));
        return SB_EXIT_FAIL;
    }
    if (n > SHMBUS_GROUPS)
        n = SHMBUS_GROUPS;
    if (!json)
        printf("%-5s %-20s %7s %6s %6s %10s %7s %7s %8s %11s\n", "INDEX", "GROUP", "MEMBERS",
               "LEADER", "EPOCH", "PUBLISHED", "MISSED", "LOST", "QUEUED", "REDELIVERED");
    for (int i = 0; i < n; i++) {
        if (json) {
            group_json(&g[i]);
            continue;
        }
        char leader[16] = "-";
        if (g[i].leader != 0)
            snprintf(leader, sizeof(leader), "%u", g[i].leader);
        printf("%-5u %-20s %7u %6s %6llu %10llu %7llu %7llu %8llu %11llu\n", g[i].index, g[i].name,
               g[i].members, leader, (unsigned long long)g[i].epoch,
               (unsigned long long)g[i].published, (unsigned long long)g[i].missed,
               (unsigned long long)g[i].lost, (unsigned long long)g[i].queued,
               (unsigned long long)g[i].redelivered);
    }
    return SB_EXIT_OK;
}

static const char leader_usage[] =
    "Usage: shmbus leader BUS NAME [--watch] [--json]\n"
    "Print who leads group NAME and the epoch: `leader ID epoch E`, or `none epoch E`.\n"
    "  -w, --watch  keep printing a line at every change (polling every 10 ms) until\n"
    "               SIGINT/SIGTERM/SIGHUP\n"
    "  -j, --json   {\"leader\":ID,\"epoch\":E} (leader 0: none)\n"
    "  -h, --help   this text\n";

static void print_leader(uint32_t id, uint64_t epoch, int json)
{
    if (json)
        printf("{\"leader\":%u,\"epoch\":%llu}\n", id, (unsigned long long)epoch);
    else if (id != 0)
        printf("leader %u epoch %llu\n", id, (unsigned long long)epoch);
    else
        printf("none epoch %llu\n", (unsigned long long)epoch);
    fflush(stdout);
}

int sb_cmd_leader(int argc, char **argv)
{
    static const struct option opts[] = {
        {"watch", no_argument, NULL, 'w'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, json = 0, watch = 0;
    const char *why;

    while ((c = getopt_long(argc, argv, ":wjh", opts, NULL)) != -1) {
        switch (c) {
        case 'w':
            watch = 1;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            return sb_usage(leader_usage, 0);
        default:
            return sb_getopt_error("leader", leader_usage, c, argv);
        }
    }
    if (argc - optind != 2)
        return sb_bad_usage("leader", leader_usage, "BUS and NAME are required");
    const char *name = argv[optind], *group = argv[optind + 1];
    if ((why = sb_bad_name(name)) != NULL)
        return sb_bad_usage("leader", leader_usage, "'%s': %s", name, why);
    if ((why = sb_bad_name(group)) != NULL)
        return sb_bad_usage("leader", leader_usage, "'%s': %s", group, why);
    sb_catch_stop_signals();
    shmbus_bus *bus;
    if (open_rdonly("leader", name, &bus) < 0)
        return SB_EXIT_FAIL;
    uint32_t id, last_id = 0;
    uint64_t epoch, last_epoch = 0;
    int rc, first = 1, status = SB_EXIT_OK;
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (;;) {
        rc = shmbus_leader(bus, group, &id, &epoch);
        if (rc < 0) {
            sb_errf("leader %s", name, "%s", shmbus_strerror(rc));
            status = SB_EXIT_FAIL;
            break;
        }
        if (first || id != last_id || epoch != last_epoch)
            print_leader(id, epoch, json);
        first = 0;
        last_id = id;
        last_epoch = epoch;
        if (!watch || sb_stop)
            break;
        nanosleep(&tick, NULL);
        if (sb_stop)
            break;
    }
    shmbus_bus_close(bus);
    return sb_stop ? sb_stop_status() : status;
}
