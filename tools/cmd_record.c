/*
 * cmd_record.c - `shmbus record BUS FILE` and `shmbus play FILE BUS`: capture the traffic of
 * a bus into a file, and send it again later, with its timing or as fast as possible.
 *
 * record is tail with a whole tap (shmbus_tap_open_flags(SHMBUS_TAP_WHOLE)): every message
 * sent on the bus from the moment it starts, whole, with its header and the names its
 * sender and receiver had, taking nothing from anyone. What the tap could not keep is
 * written down too: a gap record for messages missed (record fell more than 1024 messages
 * behind), and a message whose whole payload was written over (more than 8 MiB behind)
 * keeps its first bytes and says so (captured < len). play refuses to pass such a cut
 * message off as the real one: it skips it and says so.
 *
 * The file (docs/design.md, "Recordings"): a 64-byte header, then records, all numbers in
 * the byte order of the machine that recorded (the header's order mark refuses another):
 *
 *   header   "SHMBREC1" | u32 version 1 | u32 header size 64 | u32 order mark 0x01020304 |
 *            u32 0 | u64 wall-clock ns at the start | char bus[32]
 *   record   u32 magic "SBRC" | u32 kind (1 message, 2 gap) | u32 body bytes | u32 crc of
 *            the body (CRC-32C) | body
 *   message  u64 sent_ns (CLOCK_MONOTONIC of the sender) | u64 wall ns | u64 seq |
 *            u64 corr | u32 src | u32 dst | u32 len | u32 captured | u8 prio | u8 flags |
 *            u8[6] 0 | char src_name[32] | char dst_name[32] | captured payload bytes
 *   gap      u64 messages missed
 *
 * play checks every field before it uses it: a file that is not a recording, of another
 * byte order or version, truncated, or with a damaged record gets a clear error, never a
 * crash; what came before the damage has been played.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools.h"

#define REC_MAGIC       "SHMBREC1"
#define REC_VERSION     1u
#define REC_HEADER_SIZE 64u
#define REC_ORDER       0x01020304u
#define REC_RECORD      0x43524253u /* "SBRC" read as a little-endian u32 */
#define REC_MSG         1u
#define REC_GAP         2u
#define REC_SLICE_MS    200 /* longest wait in one call, so that a stop signal is seen */

struct rec_header {
    char magic[8];
    uint32_t version, header_size, order, zero;
    uint64_t started_wall_ns;
    char bus[32];
};
_Static_assert(sizeof(struct rec_header) == REC_HEADER_SIZE, "the header is 64 bytes");

struct rec_prefix {
    uint32_t magic, kind, size, crc;
};

struct rec_msg {
    uint64_t sent_ns, wall_ns, seq, corr;
    uint32_t src, dst, len, captured;
    uint8_t prio, flags, zero[6];
    char src_name[32], dst_name[32];
};
_Static_assert(sizeof(struct rec_msg) == 120, "a message record's fixed part is 120 bytes");
_Static_assert(SHMBUS_NAME_MAX + 1 == 32, "names fit the recording's 32 bytes");

/* ---- record ------------------------------------------------------------------------- */

static const char record_usage[] =
    "Usage: shmbus record BUS FILE [--count N] [--timeout MS]\n"
    "Write every message sent on BUS from now on into FILE (- for standard output), whole,\n"
    "with its header, time and the names of its sender and receiver, taking nothing from\n"
    "anyone's mailbox (a tap, as `shmbus tail`). Play it back with `shmbus play`. Messages\n"
    "record could not keep (it fell behind) are written down as such, never left out\n"
    "silently, and counted at the end.\n"
    "  -n, --count N      stop after N messages\n"
    "  -T, --timeout MS   stop after MS milliseconds without a message (default: never)\n"
    "  -h, --help         this text\n"
    "Senders pay one more copy of each message while a recording runs. FILE is complete\n"
    "whichever way record stops.\n"
    "Exit status: 0 done; 1 failure (FILE cannot be written: it keeps every message\n"
    "before the one that did not fit), or --count messages did not come in time; 2 bad\n"
    "usage; 130/143/129 stopped by SIGINT/SIGTERM/SIGHUP (the usual way to end a\n"
    "recording).\n";

struct record_args {
    const char *bus, *file;
    uint64_t count;
    int timeout;
};

struct rec_out {
    FILE *f;
    const char *file;
    uint64_t messages, missed, cut;
    off_t good; /* the end of the last whole record (for cutting off a partial one) */
};

static int put_record(struct rec_out *o, uint32_t kind, const void *a, size_t alen, const void *b,
                      size_t blen)
{
    struct rec_prefix p = {REC_RECORD, kind, (uint32_t)(alen + blen), 0};
    p.crc = shmbus_crc32c(shmbus_crc32c(0, a, alen), b, blen);
    if (fwrite(&p, sizeof(p), 1, o->f) != 1 || fwrite(a, alen, 1, o->f) != 1 ||
        (blen != 0 && fwrite(b, blen, 1, o->f) != 1) || fflush(o->f) != 0) {
        int err = errno;
        /* A full disk or a file size limit: cut off the partial record, so that the file
         * stays a whole recording of everything before it (a pipe cannot be cut). */
        int cut = ftruncate(fileno(o->f), o->good) == 0;
        sb_err("record", "writing %s: %s%s", o->file, strerror(err),
               cut ? " (the file holds every message before this one)" : "");
        return -1;
    }
    o->good += (off_t)(sizeof(p) + alen + blen);
    return 0;
}

static int record_loop(shmbus_tap *t, const struct record_args *a, struct rec_out *o, uint8_t *buf,
                       size_t cap)
{
    struct sb_idle idle = {.timeout_ms = a->timeout};
    struct shmbus_tap_msg tm;
    int slice;

    sb_idle_reset(&idle);
    while (!sb_stop && (a->count == 0 || o->messages < a->count) &&
           (slice = sb_idle_slice(&idle, REC_SLICE_MS)) >= 0) {
        int n = shmbus_tap_next(t, &tm, buf, cap, slice);
        if (tm.missed != 0) {
            o->missed += tm.missed;
            if (put_record(o, REC_GAP, &tm.missed, sizeof(tm.missed), NULL, 0) < 0)
                return SB_EXIT_FAIL;
        }
        if (n == -ETIMEDOUT || n == -EAGAIN || n == -EINTR)
            continue;
        if (n < 0) {
            sb_errf("record %s", a->bus, "%s", shmbus_strerror(n));
            return SB_EXIT_FAIL;
        }
        struct rec_msg m = {
            .sent_ns = tm.msg.sent_ns,
            .wall_ns = sb_wall_of_mono_ns(tm.msg.sent_ns),
            .seq = tm.msg.seq,
            .corr = tm.msg.corr,
            .src = tm.msg.src,
            .dst = tm.msg.dst,
            .len = tm.msg.len,
            .captured = (uint32_t)n,
            .prio = tm.msg.prio,
            .flags = tm.msg.flags,
        };
        memcpy(m.src_name, tm.src_name, sizeof(m.src_name));
        memcpy(m.dst_name, tm.dst_name, sizeof(m.dst_name));
        if ((uint32_t)n < tm.msg.len)
            o->cut++;
        if (put_record(o, REC_MSG, &m, sizeof(m), buf, (size_t)n) < 0)
            return SB_EXIT_FAIL;
        o->messages++;
        sb_idle_reset(&idle);
    }
    return sb_stream_status("record", a->bus, o->messages, a->count);
}

int sb_cmd_record(int argc, char **argv)
{
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct record_args a = {.timeout = -1};
    const char *why;
    int c;

    while ((c = getopt_long(argc, argv, ":n:T:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (sb_parse_u64(optarg, 1, UINT64_MAX, &a.count) < 0)
                return sb_bad_usage("record", record_usage, "--count: a number >= 1, not '%s'",
                                    optarg);
            break;
        case 'T':
            if (sb_parse_timeout(optarg, &a.timeout) < 0)
                return sb_bad_usage("record", record_usage,
                                    "--timeout: milliseconds or -1, not '%s'", optarg);
            break;
        case 'h':
            return sb_usage(record_usage, 0);
        default:
            return sb_getopt_error("record", record_usage, c, argv);
        }
    }
    if (argc - optind != 2)
        return sb_bad_usage("record", record_usage, "give a bus and a file");
    a.bus = argv[optind];
    a.file = argv[optind + 1];
    if ((why = sb_bad_name(a.bus)) != NULL)
        return sb_bad_usage("record", record_usage, "'%s': %s", a.bus, why);

    sb_catch_stop_signals();
    signal(SIGXFSZ, SIG_IGN); /* a file size limit is a write error (EFBIG), not a death */
    shmbus_bus *bus;
    struct shmbus_bus_info bi;
    if (sb_open_bus("record", a.bus, 0, &bus) < 0)
        return SB_EXIT_FAIL;
    shmbus_bus_info(bus, &bi);
    shmbus_tap *t;
    int rc = shmbus_tap_open_flags(bus, SHMBUS_TAP_WHOLE, &t);
    if (rc < 0) {
        sb_errf("record %s", a.bus, "%s", shmbus_strerror(rc));
        shmbus_bus_close(bus);
        return SB_EXIT_FAIL;
    }
    struct rec_out o = {.file = a.file};
    int to_stdout = strcmp(a.file, "-") == 0;
    o.f = to_stdout ? stdout : fopen(a.file, "wb");
    uint8_t *buf = malloc(bi.msg_size ? bi.msg_size : 1);
    if (o.f == NULL || buf == NULL) {
        sb_err("record", "%s: %s", a.file, strerror(errno));
        rc = SB_EXIT_FAIL;
        goto out;
    }
    struct rec_header h = {.version = REC_VERSION,
                           .header_size = REC_HEADER_SIZE,
                           .order = REC_ORDER,
                           .started_wall_ns = sb_wall_of_mono_ns(sb_now_ns())};
    memcpy(h.magic, REC_MAGIC, sizeof(h.magic));
    snprintf(h.bus, sizeof(h.bus), "%s", a.bus);
    o.good = (off_t)sizeof(h);
    if (fwrite(&h, sizeof(h), 1, o.f) != 1 || fflush(o.f) != 0) {
        sb_err("record", "writing %s: %s", a.file, strerror(errno));
        rc = SB_EXIT_FAIL;
        goto out;
    }
    fprintf(stderr, "shmbus: record %s: recording into %s\n", a.bus, to_stdout ? "-" : a.file);
    rc = record_loop(t, &a, &o, buf, bi.msg_size);
    fprintf(stderr,
            "shmbus: record %s: %llu messages (%llu cut to their first bytes), %llu missed\n",
            a.bus, (unsigned long long)o.messages, (unsigned long long)o.cut,
            (unsigned long long)o.missed);
out:
    if (o.f != NULL && !to_stdout && fclose(o.f) != 0 && rc == 0) {
        sb_err("record", "closing %s: %s", a.file, strerror(errno));
        rc = SB_EXIT_FAIL;
    }
    free(buf);
    shmbus_tap_close(t);
    shmbus_bus_close(bus);
    return rc;
}

/* ---- play --------------------------------------------------------------------------- */

static const char play_usage[] =
    "Usage: shmbus play FILE BUS [--as ID|NAME] [--fast | --speed X] [--by-name | --to ID|NAME]\n"
    "                   [--timeout MS]\n"
    "Send the messages of a recording (`shmbus record`) to BUS again, in order, with their\n"
    "priorities and the recorded gaps between them. Each goes to the id it was sent to when\n"
    "recorded; the sender is the client play joins as.\n"
    "  -a, --as ID|NAME     join as this id or name (default: an anonymous client)\n"
    "  -f, --fast           as fast as possible, not with the recorded timing\n"
    "  -s, --speed X        the recorded timing X times faster (e.g. 2, 0.5)\n"
    "  -N, --by-name        send to the client that now has the recorded receiver's name\n"
    "                       (messages to a receiver without a name go to its id)\n"
    "  -t, --to ID|NAME     send every message to this client instead\n"
    "  -T, --timeout MS     wait at most MS for room in a full mailbox (default 5000)\n"
    "  -h, --help           this text\n"
    "Messages that were cut in the recording (it fell more than 8 MiB behind) are not sent:\n"
    "they are counted and named on stderr, and so are the recording's gaps.\n"
    "Exit status: 0 every message sent; 1 a message could not be sent or was cut, or FILE\n"
    "is not a whole recording (what came before the damage was sent); 2 bad usage;\n"
    "130/143/129 stopped by SIGINT/SIGTERM/SIGHUP.\n";

struct play_args {
    const char *file, *bus, *as, *to;
    int fast, by_name, timeout;
    double speed;
};

/* Read exactly n bytes: 1 done, 0 clean end of file before any, -1 short (truncated) or an
 * error (errno). */
static int read_exact(FILE *f, void *p, size_t n)
{
    size_t got = fread(p, 1, n, f);
    if (got == n)
        return 1;
    if (got == 0 && feof(f))
        return 0;
    if (!ferror(f))
        errno = 0;
    return -1;
}

/* Sleep until CLOCK_MONOTONIC reaches `until` ns, in slices, stopping for a stop signal. */
static void sleep_until(uint64_t until)
{
    while (!sb_stop) {
        uint64_t now = sb_now_ns();
        if (now >= until)
            return;
        uint64_t d = until - now;
        if (d > 200000000ull)
            d = 200000000ull;
        struct timespec ts = {(time_t)(d / 1000000000ull), (long)(d % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
}

struct play_state {
    uint64_t sent, failed, cut, gaps, missed, n;
    uint64_t first_sent_ns, start_ns;
    int started;
};

/* The destination of message m: -errno when there is none. */
static int destination(shmbus_bus *bus, const struct play_args *a, const struct rec_msg *m,
                       uint32_t to)
{
    if (to != 0)
        return (int)to;
    if (a->by_name && m->dst_name[0] != '\0')
        return shmbus_lookup(bus, m->dst_name);
    return (int)m->dst;
}

static int play_one(shmbus_bus *bus, shmbus_client *cl, const struct play_args *a,
                    struct play_state *st, const struct rec_msg *m, const uint8_t *payload,
                    uint32_t to)
{
    if (m->captured < m->len) {
        st->cut++;
        fprintf(stderr,
                "shmbus: play %s: message %llu (seq %llu from %u) was cut in the recording "
                "(%u of %u bytes): not sent\n",
                a->file, (unsigned long long)st->n, (unsigned long long)m->seq, m->src, m->captured,
                m->len);
        return 0;
    }
    if (!a->fast) {
        if (!st->started) {
            st->started = 1;
            st->first_sent_ns = m->sent_ns;
            st->start_ns = sb_now_ns();
        } else if (m->sent_ns > st->first_sent_ns) {
            sleep_until(st->start_ns +
                        (uint64_t)((double)(m->sent_ns - st->first_sent_ns) / a->speed));
        }
    }
    int dst = destination(bus, a, m, to);
    int rc = dst < 0 ? dst
                     : shmbus_send(cl, (uint32_t)dst, payload, m->captured,
                                   SHMBUS_PRIO(m->prio & 7u), a->timeout);
    if (rc == -EINTR && sb_stop)
        return -1;
    if (rc < 0) {
        st->failed++;
        fprintf(stderr, "shmbus: play %s: message %llu (seq %llu from %u to %s%s%u): %s\n", a->file,
                (unsigned long long)st->n, (unsigned long long)m->seq, m->src,
                m->dst_name[0] ? m->dst_name : "", m->dst_name[0] ? " " : "", m->dst,
                shmbus_strerror(rc));
        return 0;
    }
    st->sent++;
    return 0;
}

/* Check and play every record of f. 0: the file was whole; -1: it was not (said why). */
static int play_file(FILE *f, shmbus_bus *bus, shmbus_client *cl, const struct play_args *a,
                     struct play_state *st, uint32_t to, size_t max_len)
{
    struct rec_header h;
    int r = read_exact(f, &h, sizeof(h));
    if (r <= 0 || memcmp(h.magic, REC_MAGIC, sizeof(h.magic)) != 0) {
        sb_err("play", "%s: not a shmbus recording", a->file);
        return -1;
    }
    if (h.order != REC_ORDER) {
        sb_err("play", "%s: recorded on a machine of another byte order", a->file);
        return -1;
    }
    if (h.version != REC_VERSION || h.header_size != REC_HEADER_SIZE) {
        sb_err("play", "%s: a recording of format version %u; this shmbus reads version %u",
               a->file, h.version, REC_VERSION);
        return -1;
    }
    uint8_t *payload = malloc(max_len ? max_len : 1);
    if (payload == NULL) {
        sb_err("play", "%s", strerror(ENOMEM));
        return -1;
    }
    int whole = -1;
    for (;;) {
        struct rec_prefix p;
        long at = ftell(f);
        r = read_exact(f, &p, sizeof(p));
        if (r == 0) {
            whole = 0; /* the end, between two records */
            break;
        }
        const char *bad = NULL;
        struct rec_msg m;
        uint64_t gap = 0;
        if (r < 0)
            bad = "truncated";
        else if (p.magic != REC_RECORD)
            bad = "not a record";
        else if (p.kind == REC_GAP && p.size == sizeof(gap))
            r = read_exact(f, &gap, sizeof(gap));
        else if (p.kind == REC_MSG && p.size >= sizeof(m))
            r = read_exact(f, &m, sizeof(m));
        else
            bad = "a record of unknown kind or size";
        if (bad == NULL && r <= 0)
            bad = "truncated";
        if (bad == NULL && p.kind == REC_MSG &&
            (m.captured > m.len || m.len > SHMBUS_MAX_MSG_SIZE ||
             p.size != sizeof(m) + m.captured || m.src_name[31] != '\0' || m.dst_name[31] != '\0'))
            bad = "a message record with impossible lengths or names";
        if (bad == NULL && p.kind == REC_MSG && m.captured > max_len) {
            sb_err("play", "%s: message %llu is %u bytes, more than %s takes (%zu)", a->file,
                   (unsigned long long)st->n + 1, m.captured, a->bus, max_len);
            break;
        }
        if (bad == NULL && p.kind == REC_MSG && m.captured != 0 &&
            read_exact(f, payload, m.captured) <= 0)
            bad = "truncated";
        if (bad == NULL) {
            uint32_t crc = p.kind == REC_GAP ? shmbus_crc32c(0, &gap, sizeof(gap))
                                             : shmbus_crc32c(shmbus_crc32c(0, &m, sizeof(m)),
                                                             payload, m.captured);
            if (crc != p.crc)
                bad = "damaged (its checksum does not match)";
        }
        if (bad != NULL) {
            sb_err("play", "%s: the record at byte %ld is %s; stopped there", a->file, at, bad);
            break;
        }
        if (p.kind == REC_GAP) {
            st->gaps++;
            st->missed += gap;
            fprintf(stderr, "shmbus: play %s: the recording missed %llu messages here\n", a->file,
                    (unsigned long long)gap);
            continue;
        }
        st->n++;
        if (play_one(bus, cl, a, st, &m, payload, to) < 0 || sb_stop)
            break;
    }
    free(payload);
    return whole;
}

int sb_cmd_play(int argc, char **argv)
{
    static const struct option opts[] = {
        {"as", required_argument, NULL, 'a'},    {"fast", no_argument, NULL, 'f'},
        {"speed", required_argument, NULL, 's'}, {"by-name", no_argument, NULL, 'N'},
        {"to", required_argument, NULL, 't'},    {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    struct play_args a = {.timeout = 5000, .speed = 1.0};
    const char *why;
    char *end;
    int c;

    while ((c = getopt_long(argc, argv, ":a:fs:Nt:T:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            a.as = optarg;
            break;
        case 'f':
            a.fast = 1;
            break;
        case 's':
            errno = 0;
            a.speed = strtod(optarg, &end);
            if (errno != 0 || end == optarg || *end != '\0' || !(a.speed > 0 && a.speed <= 1e6))
                return sb_bad_usage("play", play_usage, "--speed: a factor above 0, not '%s'",
                                    optarg);
            break;
        case 'N':
            a.by_name = 1;
            break;
        case 't':
            a.to = optarg;
            break;
        case 'T':
            if (sb_parse_timeout(optarg, &a.timeout) < 0)
                return sb_bad_usage("play", play_usage, "--timeout: milliseconds or -1, not '%s'",
                                    optarg);
            break;
        case 'h':
            return sb_usage(play_usage, 0);
        default:
            return sb_getopt_error("play", play_usage, c, argv);
        }
    }
    if (argc - optind != 2)
        return sb_bad_usage("play", play_usage, "give a file and a bus");
    if (a.by_name && a.to != NULL)
        return sb_bad_usage("play", play_usage, "--by-name and --to exclude each other");
    a.file = argv[optind];
    a.bus = argv[optind + 1];
    if ((why = sb_bad_name(a.bus)) != NULL)
        return sb_bad_usage("play", play_usage, "'%s': %s", a.bus, why);
    if (a.as != NULL && !sb_is_number(a.as) && (why = sb_bad_name(a.as)) != NULL)
        return sb_bad_usage("play", play_usage, "--as '%s': %s", a.as, why);

    FILE *f = strcmp(a.file, "-") == 0 ? stdin : fopen(a.file, "rb");
    if (f == NULL) {
        sb_err("play", "%s: %s", a.file, strerror(errno));
        return SB_EXIT_FAIL;
    }
    sb_catch_stop_signals();
    shmbus_bus *bus;
    shmbus_client *cl;
    if (sb_open_and_join("play", a.bus, a.as, &bus, &cl) < 0) {
        if (f != stdin)
            fclose(f);
        return SB_EXIT_FAIL;
    }
    uint32_t to = 0;
    int rc = SB_EXIT_OK;
    if (a.to != NULL) {
        int id = sb_is_number(a.to) ? (int)strtoul(a.to, NULL, 10) : shmbus_lookup(bus, a.to);
        if (id <= 0) {
            sb_errf("play %s", a.bus, "--to %s: no such client", a.to);
            rc = SB_EXIT_FAIL;
            goto out;
        }
        to = (uint32_t)id;
    }
    struct shmbus_bus_info bi;
    shmbus_bus_info(bus, &bi);
    struct play_state st = {0};
    int whole = play_file(f, bus, cl, &a, &st, to, bi.msg_size);
    fprintf(stderr,
            "shmbus: play %s: %llu of %llu messages sent, %llu failed, %llu cut in the "
            "recording (not sent); %llu gaps (%llu messages the recording missed)\n",
            a.bus, (unsigned long long)st.sent, (unsigned long long)st.n,
            (unsigned long long)st.failed, (unsigned long long)st.cut, (unsigned long long)st.gaps,
            (unsigned long long)st.missed);
    if (sb_stop)
        rc = sb_stop_status();
    else if (whole < 0 || st.failed != 0 || st.cut != 0)
        rc = SB_EXIT_FAIL;
out:
    shmbus_leave(cl);
    shmbus_bus_close(bus);
    if (f != stdin)
        fclose(f);
    return rc;
}
