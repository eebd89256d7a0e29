/*
 * cmd_msg.c - `shmbus send` and `shmbus recv`: drive a bus from the shell.
 *
 * Both join the bus for the length of the command and leave before they exit, also on
 * SIGINT/SIGTERM/SIGHUP (exit 128 + the signal) and when their output is closed (exit 141).
 * The signal handler only sets a flag: the library's waits return -EINTR when it runs, the
 * loops look at the flag between calls, and recv waits in slices of at most 200 ms. Neither
 * creates a bus: a mistyped name must fail ("no such bus"), not make a new 17 MiB bus that
 * nobody else uses; `shmbus create` is the one command that creates.
 *
 * recv takes a message only once it has handed it on: it peeks (shmbus_peek), writes the
 * whole line with write(2) (no stdio buffer ever holds a taken message), waits, when standard
 * output is a pipe or FIFO, until the reader has read the line (sb_pace_wait), and only then
 * consumes it (shmbus_consume), which is also when an --ack sender is released. After a write
 * that fails it takes nothing more, and it leaves with shmbus_leave_keep(): the message it was
 * writing and all that came after stay in the mailbox for the next client of its id. recv
 * keeps its mailbox however it stops (closed output, a stop signal, --count, --timeout): a
 * message it did not print was not handed on, and discarding it is never what was asked.
 *
 * --as takes an id (all digits: join with that id) or a name (join with the lowest free id
 * under that name); --to takes an id, a name, or "all" (a broadcast). Named groups: send
 * --topic publishes and send --group hands each message to one member (a work queue), recv
 * --sub joins a group first; `shmbus pub` and `shmbus sub` (cmd_group.c) are these with the
 * group as an argument. With a group, --as may be left out: an anonymous client joins.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools.h"

/* Longest wait in one shmbus_recv() call, so that a stop signal is seen within it. */
#define RECV_SLICE_MS 200

/* Check --as / --to values before touching the bus: an id 1..SHMBUS_MAX_CLIENTS or a name. */
static const char *bad_client(const char *s)
{
    uint32_t id;

    if (sb_is_number(s))
        return sb_parse_u32(s, 1, SHMBUS_MAX_CLIENTS, &id) < 0 ? "an id is 1..4096" : NULL;
    return sb_bad_name(s);
}

/* The id of the live client `to` (an id or a name), or -EHOSTUNREACH. */
static int find_client(shmbus_bus *bus, const char *to)
{
    struct shmbus_client_info *infos;
    uint32_t id;
    int n, i, found = -EHOSTUNREACH;

    if (!sb_is_number(to))
        return shmbus_lookup(bus, to);
    sb_parse_u32(to, 1, SHMBUS_MAX_CLIENTS, &id);
    /* sb_list_clients() sizes the array for the count it lists (clients may join between a
     * count and a listing: looping to a second, larger count read past the array). */
    n = sb_list_clients(bus, &infos);
    if (n < 0)
        return n;
    for (i = 0; i < n; i++)
        if (infos[i].id == id && infos[i].state == SHMBUS_CLIENT_LIVE)
            found = (int)id;
    free(infos);
    return n < 0 ? n : found;
}

/* Resolve --to, waiting up to wait_ms (polling every 10 ms) for the client to join. */
static int resolve_dst(shmbus_bus *bus, const char *to, int wait_ms)
{
    uint64_t deadline = sb_now_ns() + (uint64_t)(wait_ms < 0 ? 0 : wait_ms) * 1000000u;
    struct timespec tick = {0, 10 * 1000 * 1000};
    int rc;

    for (;;) {
        rc = find_client(bus, to);
        if (rc != -EHOSTUNREACH || sb_stop)
            return rc;
        if (wait_ms >= 0 && sb_now_ns() >= deadline)
            return rc;
        nanosleep(&tick, NULL);
    }
}

static const char send_usage[] =
    "Usage: shmbus send BUS --as ID|NAME --to ID|NAME|all [OPTION]... [MESSAGE]...\n"
    "Join BUS as --as, send each MESSAGE (or, with none, each line of standard input) to\n"
    "--to, and leave. The bus must exist (shmbus create BUS).\n"
    "  -a, --as ID|NAME     join as this id (digits) or under this name (lowest free id)\n"
    "  -t, --to ID|NAME|all destination; `all` sends to every other live client\n"
    "  -o, --topic NAME     instead of --to: publish to every member of group NAME\n"
    "  -g, --group NAME     instead of --to: give each message to one member of group NAME,\n"
    "                       the least loaded (a work queue); waits for a member and for\n"
    "                       room within --timeout\n"
    "  -p, --prio P         priority 0 (default, lowest) .. 7\n"
    "  -k, --ack            wait until the receiver has taken each message\n"
    "  -T, --timeout MS     wait at most MS for room in a full mailbox (and for the ack);\n"
    "                       -1 (default) waits forever\n"
    "  -w, --wait MS        wait up to MS for the destination to join (default 0: it must\n"
    "                       be there); -1 waits forever\n"
    "  -h, --help           this text\n"
    "Exit status: 0 all sent; 1 failure; 2 bad usage; 130/143/129 stopped by\n"
    "SIGINT/SIGTERM/SIGHUP, also while waiting for room, an ack or the destination (the\n"
    "message being waited for is not sent, or with --ack not known to be taken).\n";

struct send_args {
    const char *bus, *as, *to, *topic, *group;
    unsigned prio, flags;
    int timeout, wait;
};

/* Send one message; returns 0 or -1 after printing why. */
static int send_one(shmbus_client *cl, const struct send_args *a, int dst, const char *data,
                    size_t len)
{
    int rc;

    if (a->topic != NULL)
        rc = shmbus_publish(cl, a->topic, data, len, SHMBUS_PRIO(a->prio), a->timeout);
    else if (a->group != NULL)
        rc =
            shmbus_send_group(cl, a->group, data, len, SHMBUS_PRIO(a->prio) | a->flags, a->timeout);
    else if (dst == 0)
        rc = shmbus_broadcast(cl, data, len, SHMBUS_PRIO(a->prio) | a->flags, a->timeout);
    else
        rc = shmbus_send(cl, (uint32_t)dst, data, len, SHMBUS_PRIO(a->prio) | a->flags, a->timeout);
    if (rc >= 0)
        return 0;
    if (rc == -EINTR && sb_stop)
        return -1; /* asked to stop: the caller exits 128 + signal, nothing to report */
    if (a->topic != NULL && (rc == -ETIMEDOUT || rc == -EAGAIN))
        sb_errf("send %s", a->bus,
                "a subscriber's mailbox of topic %s stayed full for %d ms (counted as missed)",
                a->topic, a->timeout);
    else if (a->group != NULL && rc == -EHOSTUNREACH)
        sb_errf("send %s", a->bus, "group %s had no live member for %d ms", a->group, a->timeout);
    else if (rc == -EHOSTUNREACH)
        sb_errf("send %s", a->bus, "no client %s on the bus", a->to);
    else if (rc == -ECONNRESET)
        sb_errf("send %s", a->bus, "client %s died", a->to);
    else if ((rc == -ETIMEDOUT || rc == -EAGAIN) && (a->flags & SHMBUS_SEND_ACK))
        sb_errf("send %s", a->bus, "client %s did not take the message within %d ms", a->to,
                a->timeout);
    else if (rc == -ETIMEDOUT || rc == -EAGAIN)
        sb_errf("send %s", a->bus, "the mailbox of client %s stayed full for %d ms", a->to,
                a->timeout);
    else
        sb_errf("send %s", a->bus, "%s", shmbus_strerror(rc));
    return -1;
}

static int send_messages(shmbus_client *cl, const struct send_args *a, int dst, int nmsg,
                         char **msgs)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int i, status = SB_EXIT_OK;

    if (nmsg > 0) {
        for (i = 0; i < nmsg && !sb_stop; i++)
            if (send_one(cl, a, dst, msgs[i], strlen(msgs[i])) < 0)
                return sb_stop ? sb_stop_status() : SB_EXIT_FAIL;
        return sb_stop_status();
    }
    while (!sb_stop && (len = getline(&line, &cap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (send_one(cl, a, dst, line, (size_t)len) < 0) {
            status = SB_EXIT_FAIL;
            break;
        }
    }
    if (status == SB_EXIT_OK && ferror(stdin) && !sb_stop) {
        sb_errf("send %s", a->bus, "reading standard input: %s", strerror(errno));
        status = SB_EXIT_FAIL;
    }
    free(line);
    return sb_stop ? sb_stop_status() : status;
}

int sb_cmd_send(int argc, char **argv)
{
    static const struct option opts[] = {
        {"as", required_argument, NULL, 'a'},      {"to", required_argument, NULL, 't'},
        {"prio", required_argument, NULL, 'p'},    {"ack", no_argument, NULL, 'k'},
        {"timeout", required_argument, NULL, 'T'}, {"wait", required_argument, NULL, 'w'},
        {"topic", required_argument, NULL, 'o'},   {"group", required_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    struct send_args a = {.timeout = -1, .wait = 0};
    shmbus_bus *bus;
    shmbus_client *cl;
    const char *why;
    int c, dst, status;

    while ((c = getopt_long(argc, argv, ":a:t:o:g:p:kT:w:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            a.as = optarg;
            break;
        case 't':
            a.to = optarg;
            break;
        case 'o':
            a.topic = optarg;
            break;
        case 'g':
            a.group = optarg;
            break;
        case 'p':
            if (sb_parse_u32(optarg, 0, SHMBUS_PRIO_LEVELS - 1, &a.prio) < 0)
                return sb_bad_usage("send", send_usage, "--prio: 0..7, not '%s'", optarg);
            break;
        case 'k':
            a.flags |= SHMBUS_SEND_ACK;
            break;
        case 'T':
            if (sb_parse_timeout(optarg, &a.timeout) < 0)
                return sb_bad_usage("send", send_usage, "--timeout: milliseconds or -1, not '%s'",
                                    optarg);
            break;
        case 'w':
            if (sb_parse_timeout(optarg, &a.wait) < 0)
                return sb_bad_usage("send", send_usage, "--wait: milliseconds or -1, not '%s'",
                                    optarg);
            break;
        case 'h':
            return sb_usage(send_usage, 0);
        default:
            return sb_getopt_error("send", send_usage, c, argv);
        }
    }
    if (optind >= argc)
        return sb_bad_usage("send", send_usage, "no bus name given");
    a.bus = argv[optind++];
    if ((why = sb_bad_name(a.bus)) != NULL)
        return sb_bad_usage("send", send_usage, "'%s': %s", a.bus, why);
    if (a.topic == NULL && a.group == NULL && (a.as == NULL || a.to == NULL))
        return sb_bad_usage("send", send_usage, "--as and --to are required");
    if ((a.to != NULL) + (a.topic != NULL) + (a.group != NULL) != 1)
        return sb_bad_usage("send", send_usage, "one of --to, --topic and --group, not several");
    if (a.as != NULL && (why = bad_client(a.as)) != NULL)
        return sb_bad_usage("send", send_usage, "--as '%s': %s", a.as, why);
    if (a.topic != NULL && (why = sb_bad_name(a.topic)) != NULL)
        return sb_bad_usage("send", send_usage, "--topic '%s': %s", a.topic, why);
    if (a.group != NULL && (why = sb_bad_name(a.group)) != NULL)
        return sb_bad_usage("send", send_usage, "--group '%s': %s", a.group, why);
    if (a.to != NULL && strcmp(a.to, "all") != 0 && (why = bad_client(a.to)) != NULL)
        return sb_bad_usage("send", send_usage, "--to '%s': %s", a.to, why);
    if ((a.flags & SHMBUS_SEND_ACK) && (a.topic != NULL || (a.to && strcmp(a.to, "all") == 0)))
        return sb_bad_usage("send", send_usage, "--ack needs one destination");

    sb_catch_stop_signals();
    if (sb_open_and_join("send", a.bus, a.as, &bus, &cl) < 0)
        return SB_EXIT_FAIL;
    dst = 0;
    if (a.to != NULL && strcmp(a.to, "all") != 0) {
        dst = resolve_dst(bus, a.to, a.wait);
        if (dst < 0 && sb_stop) {
            /* stopped while waiting for it to join: 128 + signal below */
        } else if (dst < 0) {
            if (dst == -EHOSTUNREACH)
                sb_errf("send %s", a.bus, "no client %s on the bus", a.to);
            else
                sb_errf("send %s", a.bus, "%s", shmbus_strerror(dst));
        }
    }
    status = dst < 0 ? SB_EXIT_FAIL : send_messages(cl, &a, dst, argc - optind, argv + optind);
    shmbus_leave(cl);
    shmbus_bus_close(bus);
    return sb_stop ? sb_stop_status() : status;
}

static const char recv_usage[] =
    "Usage: shmbus recv BUS --as ID|NAME [--sub NAME [--confirm|--lossy]] [--count N]\n"
    "                     [--timeout MS]"
    "                     [--json] [--no-pace]\n"
    "Join BUS as --as and print each message received, as\n"
    "    HH:MM:SS.mmm from NAME (ID) prio P seq N: PAYLOAD\n"
    "(the local time of day it was sent; a sender without a name shows as `from ID`; a\n"
    "work-queue message given again after a member died shows `redelivered` after the seq, a\n"
    "message sent again from a journal `replayed`)\n"
    "until N messages (--count), MS milliseconds without a message (--timeout), a closed\n"
    "standard output, or SIGINT/SIGTERM/SIGHUP; then leave. The bus must exist (shmbus\n"
    "create BUS).\n"
    "A message is taken from the mailbox only once its line is handed on: written whole and,\n"
    "when standard output is a pipe or FIFO, read from it by the reader (recv waits for that\n"
    "before taking the next; the pipe is shrunk to one page). So `recv ... | head -1` takes\n"
    "just the message head printed, and an --ack sender is released only then. recv keeps its\n"
    "mailbox when it leaves, however it stops: what it did not print (including the line being\n"
    "written when the reader left) stays for the next client of its id, e.g. the next\n"
    "`shmbus recv BUS --as ID`; `shmbus ls` and `stat` show it as a kept client meanwhile.\n"
    "  -a, --as ID|NAME   join as this id (digits) or under this name (lowest free id)\n"
    "  -S, --sub NAME     subscribe to group NAME first: receive what is published to it and\n"
    "                     a share of what is sent to it as a work queue (--as optional)\n"
    "  -C, --confirm      with --sub: confirm each work-queue message (shmbus_done) once its\n"
    "                     line is handed on; one taken and not confirmed when recv dies is\n"
    "                     redelivered to another member\n"
    "  -L, --lossy        with --sub: when the mailbox is full, publishers of the topic drop\n"
    "                     its oldest unread messages instead of waiting; each one is counted\n"
    "                     (`lost` in `shmbus ls`, `stat`, `group ls` and the monitor). Each\n"
    "                     message is then taken before its line is written, so a slow reader\n"
    "                     of the output does not hold the publishers up either\n"
    "  -n, --count N      stop after N messages\n"
    "  -T, --timeout MS   stop after MS milliseconds without a message (default: never)\n"
    "  -s, --spin USEC    spin up to USEC microseconds before sleeping (default 0)\n"
    "  -j, --json         one JSON object per message and line: src, src_name (null if\n"
    "                     none), dst, seq, prio, flags, time (UTC, ISO 8601), sent_ns\n"
    "                     (monotonic), latency_ns, len, and data (the payload as a string\n"
    "                     when it is valid UTF-8) or data_base64 (when it is not)\n"
    "  -P, --no-pace      on a pipe, take each message once its line is written, without\n"
    "                     waiting for the reader: faster, but lines still in the pipe when\n"
    "                     the reader leaves (up to the pipe's size) are lost\n"
    "  -h, --help         this text\n"
    "Exit status: 0 done; 1 failure, or --count messages did not arrive in time; 2 bad usage;\n"
    "141 standard output closed (nothing taken that was not handed on); 130/143/129 stopped\n"
    "by SIGINT/SIGTERM/SIGHUP.\n";

/*
 * Sender names, from shmbus_list(): a cache refreshed when a message comes from an id it
 * does not hold, or when it is over a second older than the message (a client that joined
 * since may have taken a free id). A cached client that joined after the message was sent
 * is not its sender: no name is shown then rather than a wrong one.
 */
struct name_cache {
    struct shmbus_client_info *v;
    int n;
    uint64_t at_ns; /* CLOCK_MONOTONIC when listed */
};

static void refresh_names(shmbus_bus *bus, struct name_cache *nc)
{
    struct shmbus_client_info *v;
    int n = sb_list_clients(bus, &v);

    if (n < 0)
        return; /* names are a courtesy: keep the old ones */
    free(nc->v);
    nc->v = v;
    nc->n = n;
    nc->at_ns = sb_now_ns();
}

static const struct shmbus_client_info *cached_client(const struct name_cache *nc, uint32_t id)
{
    int i;

    for (i = 0; i < nc->n; i++)
        if (nc->v[i].id == id && nc->v[i].state != SHMBUS_CLIENT_KEPT)
            return &nc->v[i];
    return NULL;
}

/* The name of the client that sent a message at wall-clock time sent_wall, or NULL. */
static const char *sender_name(shmbus_bus *bus, struct name_cache *nc, uint32_t id,
                               uint64_t sent_mono, uint64_t sent_wall)
{
    const struct shmbus_client_info *c = cached_client(nc, id);

    if (c == NULL || (sent_mono > nc->at_ns && sent_mono - nc->at_ns > 1000000000u)) {
        refresh_names(bus, nc);
        c = cached_client(nc, id);
    }
    if (c == NULL || c->name[0] == '\0' || c->joined_ns > sent_wall)
        return NULL;
    return c->name;
}

/* The line for one message, in a malloc'd buffer (*out, *outlen). 0 or -ENOMEM. */
static int format_msg(const struct shmbus_msg *h, const char *name, const char *buf, int len,
                      int json, char **out, size_t *outlen)
{
    uint64_t now = sb_now_ns();
    uint64_t wall = sb_wall_of_mono_ns(h->sent_ns);
    char when[40];
    FILE *f = open_memstream(out, outlen);

    if (f == NULL)
        return -ENOMEM;
    if (json) {
        fprintf(f, "{\"src\":%u,\"src_name\":", h->src);
        if (name != NULL)
            sb_json_str(f, name, strlen(name));
        else
            fputs("null", f);
        fprintf(f,
                ",\"dst\":%u,\"seq\":%llu,\"prio\":%u,\"flags\":%u,\"time\":\"%s\","
                "\"sent_ns\":%llu,\"latency_ns\":%llu,\"len\":%d,",
                h->dst, (unsigned long long)h->seq, (unsigned)h->prio, (unsigned)h->flags,
                sb_fmt_utc(wall, when, sizeof(when)), (unsigned long long)h->sent_ns,
                (unsigned long long)(now > h->sent_ns ? now - h->sent_ns : 0), len);
        sb_json_payload_file(f, buf, (size_t)len);
        fputs("}\n", f);
    } else {
        fprintf(f, "%s from ", sb_fmt_time_of_day(wall, when, sizeof(when)));
        if (name != NULL)
            fprintf(f, "%s (%u)", name, h->src);
        else
            fprintf(f, "%u", h->src);
        fprintf(f, " prio %u seq %llu%s: ", (unsigned)h->prio, (unsigned long long)h->seq,
                !(h->flags & SHMBUS_MSG_REDELIVERED) ? ""
                : (h->flags & SHMBUS_MSG_GROUP)      ? " redelivered"
                                                     : " replayed");
        fwrite(buf, 1, (size_t)len, f);
        fputc('\n', f);
    }
    int failed = ferror(f);

    /* fclose() sets *out and *outlen even when it fails: free what it made. */
    if (fclose(f) != 0 || failed) {
        free(*out);
        *out = NULL;
        return -ENOMEM;
    }
    return 0;
}

struct recv_args {
    const char *bus, *as, *sub;
    uint64_t count; /* 0: no limit */
    int timeout;    /* idle timeout, -1: none */
    unsigned spin;
    int json;
    int no_pace;
    int confirm;
    int lossy;
};

/*
 * Hand the peeked message on: write its line, wait for the reader if pacing, then take it.
 * 0 when taken; SB_EXIT_OUTPUT when the output is gone (not taken); 128 + signal when
 * stopped (not taken); SB_EXIT_FAIL after printing why.
 */
static int hand_on(shmbus_client *cl, const struct recv_args *a, const struct sb_pace *pace,
                   struct name_cache *nc, const struct shmbus_msg *hdr, const char *buf, int len)
{
    const char *name;
    char *line = NULL;
    size_t n = 0;
    int rc;

    name = sender_name(shmbus_client_bus(cl), nc, hdr->src, hdr->sent_ns,
                       sb_wall_of_mono_ns(hdr->sent_ns));
    rc = format_msg(hdr, name, buf, len, a->json, &line, &n);
    if (rc < 0) {
        sb_errf("recv %s", a->bus, "%s", strerror(-rc));
        return SB_EXIT_FAIL;
    }
    rc = sb_write_all(STDOUT_FILENO, line, n);
    free(line);
    if (rc == 0)
        rc = sb_pace_wait(pace);
    if (rc == -EINTR)
        return sb_stop_status();
    if (sb_output_gone(rc))
        return SB_EXIT_OUTPUT;
    if (rc < 0) {
        sb_errf("recv %s", a->bus, "writing standard output: %s", strerror(-rc));
        return SB_EXIT_FAIL;
    }
    /* --lossy took it already (recv_loop()). */
    rc = a->lossy ? 0 : shmbus_consume(cl);
    if (rc < 0) {
        sb_errf("recv %s", a->bus, "taking the message after printing it: %s", shmbus_strerror(rc));
        return SB_EXIT_FAIL;
    }
    /* Handed on: done with it. -ENOENT: not a message of a group we confirm. */
    if (a->confirm && (hdr->flags & SHMBUS_MSG_GROUP) && (rc = shmbus_done(cl, hdr)) < 0 &&
        rc != -ENOENT) {
        sb_errf("recv %s", a->bus, "confirming the message: %s", shmbus_strerror(rc));
        return SB_EXIT_FAIL;
    }
    return 0;
}

static int recv_loop(shmbus_bus *bus, shmbus_client *cl, const struct recv_args *a)
{
    struct shmbus_bus_info info;
    struct shmbus_msg hdr;
    struct name_cache names = {NULL, 0, 0};
    struct sb_pace pace;
    struct sb_idle idle = {.timeout_ms = a->timeout};
    uint64_t got = 0;
    char *buf;
    int rc, slice;

    rc = shmbus_bus_info(bus, &info);
    if (rc < 0) {
        sb_errf("recv %s", a->bus, "%s", shmbus_strerror(rc));
        return SB_EXIT_FAIL;
    }
    buf = malloc(info.msg_size > 0 ? info.msg_size : 1);
    if (buf == NULL) {
        sb_errf("recv %s", a->bus, "%s", strerror(ENOMEM));
        return SB_EXIT_FAIL;
    }
    sb_pace_init(&pace, STDOUT_FILENO, !a->no_pace);
    sb_idle_reset(&idle);
    while (!sb_stop && (a->count == 0 || got < a->count) &&
           (slice = sb_idle_slice(&idle, RECV_SLICE_MS)) >= 0) {
        /* A lossy subscriber takes each message before writing its line: one peeked at is
         * never shed (shmbus_subscribe(3)), so a slow reader of our output would make
         * publishers wait after all. */
        rc = a->lossy ? shmbus_recv(cl, &hdr, buf, info.msg_size, slice)
                      : shmbus_peek(cl, &hdr, buf, info.msg_size, slice);
        if (rc == -ETIMEDOUT || rc == -EAGAIN || rc == -EINTR) {
            /* Idle: a reader that left is noticed now, not at the next message. */
            if (pace.pipe && sb_reader_gone(STDOUT_FILENO)) {
                free(names.v);
                free(buf);
                return SB_EXIT_OUTPUT;
            }
            continue;
        }
        if (rc < 0) {
            sb_errf("recv %s", a->bus, "%s", shmbus_strerror(rc));
            free(names.v);
            free(buf);
            return SB_EXIT_FAIL;
        }
        rc = hand_on(cl, a, &pace, &names, &hdr, buf, rc);
        if (rc != 0) {
            free(names.v);
            free(buf);
            return rc;
        }
        got++;
        sb_idle_reset(&idle);
    }
    free(names.v);
    free(buf);
    return sb_stream_status("recv", a->bus, got, a->count);
}

int sb_cmd_recv(int argc, char **argv)
{
    static const struct option opts[] = {
        {"as", required_argument, NULL, 'a'},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 'T'},
        {"spin", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"no-pace", no_argument, NULL, 'P'},
        {"sub", required_argument, NULL, 'S'},
        {"confirm", no_argument, NULL, 'C'},
        {"lossy", no_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct recv_args a = {.timeout = -1};
    shmbus_bus *bus;
    shmbus_client *cl;
    const char *why;
    int c, status;

    while ((c = getopt_long(argc, argv, ":a:n:T:s:jPS:CLh", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            a.as = optarg;
            break;
        case 'C':
            a.confirm = 1;
            break;
        case 'L':
            a.lossy = 1;
            break;
        case 'S':
            a.sub = optarg;
            break;
        case 'n':
            if (sb_parse_u64(optarg, 1, UINT64_MAX, &a.count) < 0)
                return sb_bad_usage("recv", recv_usage, "--count: a number >= 1, not '%s'", optarg);
            break;
        case 'T':
            if (sb_parse_timeout(optarg, &a.timeout) < 0)
                return sb_bad_usage("recv", recv_usage, "--timeout: milliseconds or -1, not '%s'",
                                    optarg);
            break;
        case 's':
            if (sb_parse_u32(optarg, 0, 10000000, &a.spin) < 0)
                return sb_bad_usage("recv", recv_usage, "--spin: microseconds, not '%s'", optarg);
            break;
        case 'j':
            a.json = 1;
            break;
        case 'P':
            a.no_pace = 1;
            break;
        case 'h':
            return sb_usage(recv_usage, 0);
        default:
            return sb_getopt_error("recv", recv_usage, c, argv);
        }
    }
    if (argc - optind != 1)
        return sb_bad_usage("recv", recv_usage,
                            argc - optind == 0 ? "no bus name given" : "one bus name only");
    a.bus = argv[optind];
    if ((why = sb_bad_name(a.bus)) != NULL)
        return sb_bad_usage("recv", recv_usage, "'%s': %s", a.bus, why);
    if (a.as == NULL && a.sub == NULL)
        return sb_bad_usage("recv", recv_usage, "--as is required (or --sub)");
    if (a.as != NULL && (why = bad_client(a.as)) != NULL)
        return sb_bad_usage("recv", recv_usage, "--as '%s': %s", a.as, why);
    if (a.sub != NULL && (why = sb_bad_name(a.sub)) != NULL)
        return sb_bad_usage("recv", recv_usage, "--sub '%s': %s", a.sub, why);
    if (a.confirm && a.sub == NULL)
        return sb_bad_usage("recv", recv_usage, "--confirm needs --sub");
    if (a.lossy && a.sub == NULL)
        return sb_bad_usage("recv", recv_usage, "--lossy needs --sub");

    sb_catch_stop_signals();
    if (sb_open_and_join("recv", a.bus, a.as, &bus, &cl) < 0)
        return SB_EXIT_FAIL;
    if (a.spin > 0)
        shmbus_client_set_spin(cl, a.spin);
    if (a.sub != NULL && (c = shmbus_subscribe(cl, a.sub,
                                               (a.confirm ? SHMBUS_SUB_CONFIRM : 0u) |
                                                   (a.lossy ? SHMBUS_SUB_LOSSY : 0u))) < 0) {
        sb_errf("recv %s", a.bus, "subscribing to %s: %s", a.sub, shmbus_strerror(c));
        shmbus_leave(cl);
        shmbus_bus_close(bus);
        return SB_EXIT_FAIL;
    }
    status = recv_loop(bus, cl, &a);
    /* Keep what was not printed for the next client of this id (see the notes above). It
     * fails only if a cleaner already judged us dead; nothing is left to keep then. */
    shmbus_leave_keep(cl);
    shmbus_bus_close(bus);
    return status;
}
