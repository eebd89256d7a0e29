/*
 * cmd_tail.c - `shmbus tail BUS`: print the traffic of a bus as it flows, taking nothing.
 *
 * Built on a tap (shmbus_tap_open(), see shmbus.h): every message sent on the bus from the
 * moment tail starts, with its sender and receiver (names where they have one), time of
 * day, priority, flags, length and the first SHMBUS_TAP_CAPTURE bytes of its payload. The
 * payload is escaped as a JSON string would be (quotes included), so a terminal never sees
 * a raw control byte; --json gives lossless "data" or "data_base64" members instead. When
 * the tap fell behind, a line says how many messages it missed.
 *
 * tail does not join the bus, so it takes no client id and no mailbox. It stops on --count,
 * --timeout (idle), a closed output (exit 141) or a stop signal (exit 128 + signal).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools.h"

#define TAIL_SLICE_MS 200 /* longest wait in one call, so that a stop signal is seen */

static const char tail_usage[] =
    "Usage: shmbus tail BUS [--count N] [--timeout MS] [--json]\n"
    "Print every message sent on BUS from now on, as\n"
    "    HH:MM:SS.mmm FROM -> TO prio P seq N flags F len L: \"PAYLOAD\"\n"
    "(FROM and TO are `name (id)` or `id`; the payload is its first 400 bytes, escaped as a\n"
    "JSON string, with `...` when longer), without taking anything from anyone's mailbox.\n"
    "A line `missed N messages` says when tail fell behind (it keeps the last 1024).\n"
    "  -n, --count N      stop after N messages\n"
    "  -T, --timeout MS   stop after MS milliseconds without a message (default: never)\n"
    "  -j, --json         one JSON object per line: src, src_name, dst, dst_name, seq, prio,\n"
    "                     flags, time (UTC, ISO 8601), sent_ns, len, captured, and data\n"
    "                     (valid UTF-8) or data_base64; a gap is {\"missed\":N}\n"
    "  -h, --help         this text\n"
    "Exit status: 0 done; 1 failure, or --count messages did not come in time; 2 bad usage;\n"
    "141 standard output closed; 130/143/129 stopped by SIGINT/SIGTERM/SIGHUP.\n";

struct tail_args {
    const char *bus;
    uint64_t count; /* 0: no limit */
    int timeout;    /* idle timeout, -1: none */
    int json;
};

static void put_party(FILE *f, const char *name, uint32_t id, int json)
{
    if (name[0] == '\0')
        name = NULL;
    if (json) {
        if (name != NULL)
            sb_json_str(f, name, strlen(name));
        else
            fputs("null", f);
    } else if (name != NULL) {
        fprintf(f, "%s (%u)", name, id);
    } else {
        fprintf(f, "%u", id);
    }
}

/* One line for a message (or a gap, when tm is NULL) in a malloc'd buffer. */
static int format_line(const struct tail_args *a, const struct shmbus_tap_msg *tm, const char *buf,
                       int kept, uint64_t missed, char **out, size_t *outlen)
{
    FILE *f = open_memstream(out, outlen);
    char when[40];

    if (f == NULL)
        return -ENOMEM;
    if (tm == NULL) {
        if (a->json)
            fprintf(f, "{\"missed\":%llu}\n", (unsigned long long)missed);
        else
            fprintf(f, "missed %llu messages\n", (unsigned long long)missed);
    } else {
        const struct shmbus_msg *h = &tm->msg;
        uint64_t wall = sb_wall_of_mono_ns(h->sent_ns);
        const char *src = tm->src_name, *dst = tm->dst_name;
        if (a->json) {
            fprintf(f, "{\"src\":%u,\"src_name\":", h->src);
            put_party(f, src, h->src, 1);
            fprintf(f, ",\"dst\":%u,\"dst_name\":", h->dst);
            put_party(f, dst, h->dst, 1);
            fprintf(f,
                    ",\"seq\":%llu,\"prio\":%u,\"flags\":%u,\"time\":\"%s\",\"sent_ns\":%llu,"
                    "\"len\":%u,\"captured\":%d,",
                    (unsigned long long)h->seq, (unsigned)h->prio, (unsigned)h->flags,
                    sb_fmt_utc(wall, when, sizeof(when)), (unsigned long long)h->sent_ns, h->len,
                    kept);
            sb_json_payload_file(f, buf, (size_t)kept);
            fputs("}\n", f);
        } else {
            fprintf(f, "%s ", sb_fmt_time_of_day(wall, when, sizeof(when)));
            put_party(f, src, h->src, 0);
            fputs(" -> ", f);
            put_party(f, dst, h->dst, 0);
            fprintf(f, " prio %u seq %llu flags %u len %u: ", (unsigned)h->prio,
                    (unsigned long long)h->seq, (unsigned)h->flags, h->len);
            sb_json_str(f, buf, (size_t)kept);
            fputs((uint32_t)kept < h->len ? "...\n" : "\n", f);
        }
    }
    int failed = ferror(f);
    if (fclose(f) != 0 || failed) {
        free(*out);
        *out = NULL;
        return -ENOMEM;
    }
    return 0;
}

/* Write one line; 0, or the exit status to stop with. */
static int emit(const struct tail_args *a, const struct shmbus_tap_msg *tm, const char *buf,
                int kept, uint64_t missed)
{
    char *line = NULL;
    size_t n = 0;
    int rc = format_line(a, tm, buf, kept, missed, &line, &n);

    if (rc < 0) {
        sb_errf("tail %s", a->bus, "%s", strerror(-rc));
        return SB_EXIT_FAIL;
    }
    rc = sb_write_all(STDOUT_FILENO, line, n);
    free(line);
    if (rc == -EINTR)
        return sb_stop_status();
    if (sb_output_gone(rc))
        return SB_EXIT_OUTPUT;
    if (rc < 0) {
        sb_errf("tail %s", a->bus, "writing standard output: %s", strerror(-rc));
        return SB_EXIT_FAIL;
    }
    return 0;
}

static int tail_loop(shmbus_tap *t, const struct tail_args *a)
{
    struct shmbus_tap_msg tm;
    char buf[SHMBUS_TAP_CAPTURE];
    struct sb_idle idle = {.timeout_ms = a->timeout};
    uint64_t got = 0;
    int rc = 0, slice;

    sb_idle_reset(&idle);
    while (!sb_stop && (a->count == 0 || got < a->count) &&
           (slice = sb_idle_slice(&idle, TAIL_SLICE_MS)) >= 0) {
        int n = shmbus_tap_next(t, &tm, buf, sizeof(buf), slice);
        if (tm.missed != 0 && (rc = emit(a, NULL, NULL, 0, tm.missed)) != 0)
            return rc;
        if (n == -ETIMEDOUT || n == -EAGAIN || n == -EINTR) {
            if (sb_reader_gone(STDOUT_FILENO))
                return SB_EXIT_OUTPUT;
            continue;
        }
        if (n < 0) {
            sb_errf("tail %s", a->bus, "%s", shmbus_strerror(n));
            return SB_EXIT_FAIL;
        }
        if ((rc = emit(a, &tm, buf, n, 0)) != 0)
            return rc;
        got++;
        sb_idle_reset(&idle);
    }
    return sb_stream_status("tail", a->bus, got, a->count);
}

int sb_cmd_tail(int argc, char **argv)
{
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 'T'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct tail_args a = {.timeout = -1};
    shmbus_bus *bus;
    shmbus_tap *t;
    const char *why;
    int c, rc;

    while ((c = getopt_long(argc, argv, ":n:T:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (sb_parse_u64(optarg, 1, UINT64_MAX, &a.count) < 0)
                return sb_bad_usage("tail", tail_usage, "--count: a number >= 1, not '%s'", optarg);
            break;
        case 'T':
            if (sb_parse_timeout(optarg, &a.timeout) < 0)
                return sb_bad_usage("tail", tail_usage, "--timeout: milliseconds or -1, not '%s'",
                                    optarg);
            break;
        case 'j':
            a.json = 1;
            break;
        case 'h':
            return sb_usage(tail_usage, 0);
        default:
            return sb_getopt_error("tail", tail_usage, c, argv);
        }
    }
    if (argc - optind != 1)
        return sb_bad_usage("tail", tail_usage,
                            argc - optind == 0 ? "no bus name given" : "one bus name only");
    a.bus = argv[optind];
    if ((why = sb_bad_name(a.bus)) != NULL)
        return sb_bad_usage("tail", tail_usage, "'%s': %s", a.bus, why);

    sb_catch_stop_signals();
    if (sb_open_bus("tail", a.bus, 0, &bus) < 0)
        return SB_EXIT_FAIL;
    rc = shmbus_tap_open(bus, &t);
    if (rc < 0) {
        sb_errf("tail %s", a.bus, "%s", shmbus_strerror(rc));
        shmbus_bus_close(bus);
        return SB_EXIT_FAIL;
    }
    rc = tail_loop(t, &a);
    shmbus_tap_close(t);
    shmbus_bus_close(bus);
    return rc;
}
