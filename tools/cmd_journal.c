/*
 * cmd_journal.c - `shmbus replay`: send again what a durable bus's journal kept (taken
 * messages that retention keeps, see `shmbus create --retain`), flagged as replayed; and
 * the parsers of the sizes and durations `shmbus create --retain/--compact` take.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools.h"

/* "512", "64K", "10M", "2G" (powers of 1024; KiB, MiB, GiB too): bytes. */
int sb_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno != 0 || s[0] == '-')
        return -1;
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024;
    else if (*end == 'M')
        mul = 1024 * 1024;
    else if (*end == 'G')
        mul = 1024ull * 1024 * 1024;
    else if (*end != '\0')
        return -1;
    if (*end != '\0' && strcmp(end + 1, "") != 0 && strcmp(end + 1, "iB") != 0)
        return -1;
    if (v > UINT64_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

/* "30s", "5min", "2h", "7d": nanoseconds. */
int sb_parse_duration(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno != 0 || s[0] == '-')
        return -1;
    uint64_t sec;
    if (strcmp(end, "s") == 0)
        sec = 1;
    else if (strcmp(end, "min") == 0)
        sec = 60;
    else if (strcmp(end, "h") == 0)
        sec = 3600;
    else if (strcmp(end, "d") == 0)
        sec = 86400;
    else
        return -1;
    if (v > UINT64_MAX / 1000000000u / sec)
        return -1;
    *out = v * sec * 1000000000u;
    return 0;
}

static const char replay_usage[] =
    "Usage: shmbus replay BUS --from TIME|SEQ --to ID|NAME [--as ID|NAME] [--timeout MS]\n"
    "Send again, flagged as replayed, the taken messages a durable bus's journal keeps\n"
    "(see shmbus create --retain), oldest first, to --to. Waiting messages (not taken yet)\n"
    "are not sent: their receiver still gets them; nor are earlier replays.\n"
    "  -f, --from TIME|SEQ  @SECONDS (since 1970) or a duration ago (30s, 5min, 2h, 7d):\n"
    "                       messages journaled then or later; or a number: messages whose\n"
    "                       sequence number (per sender) is at least SEQ\n"
    "  -t, --to ID|NAME     destination client (it must be on the bus)\n"
    "  -a, --as ID|NAME     join as this id or name (default: the lowest free id)\n"
    "  -T, --timeout MS     wait at most MS for room for each message (default 5000)\n"
    "  -h, --help           this text\n"
    "Prints how many messages it sent. Exit status: 0 all sent; 1 failure; 2 bad usage.\n";

struct pick {
    uint64_t from_ns, from_seq;
    bool by_seq;
    size_t n, cap;
    struct {
        uint8_t prio;
        uint32_t len;
        uint8_t *data;
    } * m;
};

static int pick_one(const struct shmbus_journal_entry *e, const void *data, void *arg)
{
    struct pick *p = arg;
    if (!e->taken || (e->msg.flags & SHMBUS_MSG_REPLAYED))
        return 0; /* waiting ones are still delivered; replays are not replayed again */
    if (p->by_seq ? e->msg.seq < p->from_seq : e->time_ns < p->from_ns)
        return 0;
    if (p->n == p->cap) {
        size_t c = p->cap ? p->cap * 2 : 64;
        void *q = realloc(p->m, c * sizeof(*p->m));
        if (q == NULL)
            return -ENOMEM;
        p->m = q;
        p->cap = c;
    }
    uint8_t *copy = malloc(e->msg.len ? e->msg.len : 1);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, data, e->msg.len);
    p->m[p->n].prio = e->msg.prio;
    p->m[p->n].len = e->msg.len;
    p->m[p->n].data = copy;
    p->n++;
    return 0;
}

static int client_id(shmbus_bus *bus, const char *who)
{
    uint32_t id;
    if (sb_is_number(who))
        return sb_parse_u32(who, 1, SHMBUS_MAX_CLIENTS, &id) == 0 ? (int)id : -EINVAL;
    return shmbus_lookup(bus, who);
}

int sb_cmd_replay(int argc, char **argv)
{
    static const struct option opts[] = {
        {"from", required_argument, NULL, 'f'}, {"to", required_argument, NULL, 't'},
        {"as", required_argument, NULL, 'a'},   {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    const char *from = NULL, *to = NULL, *as = NULL;
    int timeout = 5000, c;
    struct pick p = {0};
    while ((c = getopt_long(argc, argv, ":f:t:a:T:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            from = optarg;
            break;
        case 't':
            to = optarg;
            break;
        case 'a':
            as = optarg;
            break;
        case 'T':
            if (sb_parse_timeout(optarg, &timeout) < 0)
                return sb_bad_usage("replay", replay_usage, "--timeout: a number of ms, not '%s'",
                                    optarg);
            break;
        case 'h':
            return sb_usage(replay_usage, 0);
        default:
            return sb_getopt_error("replay", replay_usage, c, argv);
        }
    }
    if (argc - optind != 1)
        return sb_bad_usage("replay", replay_usage,
                            argc - optind == 0 ? "no bus name given" : "one bus name only");
    if (from == NULL || to == NULL)
        return sb_bad_usage("replay", replay_usage, "--from and --to are needed");
    const char *name = argv[optind];
    uint64_t ns;
    if (from[0] == '@') {
        char *end;
        double secs = strtod(from + 1, &end);
        if (end == from + 1 || *end != '\0' || secs < 0)
            return sb_bad_usage("replay", replay_usage, "--from: @SECONDS, not '%s'", from);
        p.from_ns = (uint64_t)(secs * 1e9);
    } else if (sb_parse_duration(from, &ns) == 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        uint64_t t = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
        p.from_ns = t > ns ? t - ns : 0;
    } else if (sb_parse_u64(from, 0, UINT64_MAX, &p.from_seq) == 0) {
        p.by_seq = true;
    } else {
        return sb_bad_usage("replay", replay_usage,
                            "--from: @SECONDS, a duration (30s, 5min, 2h, 7d) or a sequence "
                            "number, not '%s'",
                            from);
    }

    shmbus_bus *bus;
    if (sb_open_bus("replay", name, 0, &bus) < 0)
        return SB_EXIT_FAIL;
    int rc = shmbus_journal_scan(bus, pick_one, &p);
    int status = SB_EXIT_FAIL;
    shmbus_client *cl = NULL;
    if (rc == -ENOTSUP) {
        sb_errf("replay %s", name, "not a durable bus (shmbus create --durable)");
        goto out;
    }
    if (rc < 0) {
        sb_errf("replay %s", name, "reading the journal: %s", shmbus_strerror(rc));
        goto out;
    }
    int dst = client_id(bus, to);
    if (dst <= 0) {
        sb_errf("replay %s", name, "no client %s on the bus", to);
        goto out;
    }
    int id = as == NULL ? 0 : sb_is_number(as) ? client_id(bus, as) : 0;
    if (id < 0) {
        sb_errf("replay %s", name, "--as %s: not a client id", as);
        goto out;
    }
    rc = shmbus_join(bus, (uint32_t)id, as != NULL && !sb_is_number(as) ? as : NULL, &cl);
    if (rc < 0) {
        sb_errf("replay %s", name, "joining: %s", shmbus_strerror(rc));
        goto out;
    }
    size_t sent = 0;
    for (; sent < p.n; sent++) {
        rc = shmbus_send(cl, (uint32_t)dst, p.m[sent].data, p.m[sent].len,
                         SHMBUS_SEND_REPLAY | SHMBUS_PRIO(p.m[sent].prio), timeout);
        if (rc < 0) {
            sb_errf("replay %s", name, "sending to %s after %zu of %zu messages: %s", to, sent, p.n,
                    shmbus_strerror(rc));
            break;
        }
    }
    if (sent == p.n) {
        printf("replayed %zu messages to %s\n", sent, to);
        status = SB_EXIT_OK;
    }
out:
    if (cl != NULL)
        shmbus_leave(cl);
    shmbus_bus_close(bus);
    for (size_t i = 0; i < p.n; i++)
        free(p.m[i].data);
    free(p.m);
    return status;
}
