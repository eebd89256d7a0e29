/*
 * util.c - helpers shared by the subcommands of `shmbus`: error and usage messages, number
 * parsing, JSON strings, time, and the stop-signal flag.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "suggest.h"
#include "tools.h"

volatile sig_atomic_t sb_stop;

void sb_err(const char *what, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "shmbus: %s: ", what);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void sb_errf(const char *what_fmt, const char *obj, const char *fmt, ...)
{
    va_list ap;

    fputs("shmbus: ", stderr);
    /* what_fmt is always a literal of ours with one %s. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    fprintf(stderr, what_fmt, obj);
#pragma GCC diagnostic pop
    fputs(": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int sb_usage(const char *usage, int to_stderr)
{
    fputs(usage, to_stderr ? stderr : stdout);
    return to_stderr ? SB_EXIT_USAGE : SB_EXIT_OK;
}

int sb_bad_usage(const char *cmd, const char *usage, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "shmbus: %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fputs(usage, stderr);
    return SB_EXIT_USAGE;
}

int sb_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    /* strtoull accepts a sign and leading blanks; a count on a command line has neither. */
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int sb_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v;

    if (sb_parse_u64(s, min, max, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int sb_parse_timeout(const char *s, int *out)
{
    uint64_t v;

    if (s != NULL && strcmp(s, "-1") == 0) {
        *out = -1;
        return 0;
    }
    if (sb_parse_u64(s, 0, INT_MAX, &v) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

const char *sb_bad_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0)
        return "empty name";
    if (n > SHMBUS_NAME_MAX)
        return "name longer than 31 characters";
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return "'.' and '..' are not names";
    if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n)
        return "names hold only letters, digits, '.', '_' and '-'";
    return NULL;
}

int sb_getopt_error(const char *cmd, const char *usage, int ret, char **argv)
{
    const char *arg = argv[optind - 1];
    char near[48];

    if (ret == ':')
        return sb_bad_usage(cmd, usage, "option '%s' needs a value", arg);
    if (optopt != 0 && arg[0] == '-' && arg[1] != '-')
        return sb_bad_usage(cmd, usage, "unknown option '-%c'", optopt);
    if (sb_suggest_option(arg, usage, near, sizeof(near)) != NULL)
        return sb_bad_usage(cmd, usage, "unknown option '%s' (did you mean '%s'?)", arg, near);
    return sb_bad_usage(cmd, usage, "unknown option '%s'", arg);
}

int sb_is_number(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

void sb_json_str(FILE *f, const char *str, size_t len)
{
    sb_json_escape(str, len, 1, sb_json_put_file, f);
}

void sb_json_payload_file(FILE *f, const char *str, size_t len)
{
    sb_json_payload(str, len, sb_json_put_file, f);
}

const char *sb_state_name(int state)
{
    switch (state) {
    case SHMBUS_CLIENT_LIVE:
        return "live";
    case SHMBUS_CLIENT_DEAD:
        return "dead";
    case SHMBUS_CLIENT_JOINING:
        return "joining";
    case SHMBUS_CLIENT_KEPT:
        return "kept";
    default:
        return "unknown";
    }
}

int sb_open_bus(const char *cmd, const char *name, unsigned flags, shmbus_bus **out)
{
    int rc = shmbus_bus_open(name, NULL, flags, out);

    if (rc == -ENOENT)
        fprintf(stderr, "shmbus: %s %s: no such bus (create it first: shmbus create %s)\n", cmd,
                name, name);
    else if (rc < 0)
        fprintf(stderr, "shmbus: %s %s: %s\n", cmd, name, shmbus_strerror(rc));
    return rc;
}

/* Open the existing bus and join it as `as` (NULL: an anonymous client). */
int sb_open_and_join(const char *cmd, const char *name, const char *as, shmbus_bus **busp,
                     shmbus_client **clp)
{
    struct shmbus_bus_info bi;
    char what[64];
    uint32_t id = 0;
    int rc;

    snprintf(what, sizeof(what), "%s %s", cmd, name);
    if (sb_open_bus(cmd, name, 0, busp) < 0)
        return -1;
    if (as != NULL && sb_is_number(as))
        sb_parse_u32(as, 1, SHMBUS_MAX_CLIENTS, &id);
    rc = shmbus_join(*busp, id, id != 0 ? NULL : as, clp);
    if (as == NULL)
        as = "an anonymous client";
    if (rc < 0) {
        if (rc == -EEXIST)
            sb_err(what, "client %s%s is already on the bus", id != 0 ? "" : "name ", as);
        else if (rc == -EINVAL && id != 0 && shmbus_bus_info(*busp, &bi) == 0)
            sb_err(what, "--as %s: this bus has client ids 1..%u", as, bi.max_clients);
        else
            sb_err(what, "joining as %s: %s", as, shmbus_strerror(rc));
        shmbus_bus_close(*busp);
        return -1;
    }
    return 0;
}

void sb_count_clients(const struct shmbus_client_info *cl, int n, struct sb_client_counts *k)
{
    int i;

    memset(k, 0, sizeof(*k));
    for (i = 0; i < n; i++) {
        switch (cl[i].state) {
        case SHMBUS_CLIENT_LIVE:
            k->live++;
            break;
        case SHMBUS_CLIENT_JOINING:
            k->joining++;
            break;
        case SHMBUS_CLIENT_KEPT:
            k->kept++;
            break;
        default: /* dead, or a state this tool does not know: not live */
            k->dead++;
            break;
        }
    }
}

const char *sb_fmt_client_counts(const struct sb_client_counts *k, char *buf, size_t size)
{
    int len = snprintf(buf, size, "%u live client%s", k->live, k->live == 1 ? "" : "s");

    if (k->dead > 0 && len >= 0 && (size_t)len < size)
        len += snprintf(buf + len, size - (size_t)len, ", %u dead", k->dead);
    if (k->joining > 0 && len >= 0 && (size_t)len < size)
        len += snprintf(buf + len, size - (size_t)len, ", %u joining", k->joining);
    if (k->kept > 0 && len >= 0 && (size_t)len < size)
        snprintf(buf + len, size - (size_t)len, ", %u kept", k->kept);
    return buf;
}

uint64_t sb_wall_of_mono_ns(uint64_t mono_ns)
{
    struct timespec ts;
    uint64_t mono_now = sb_now_ns(), wall_now;

    clock_gettime(CLOCK_REALTIME, &ts);
    wall_now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    /* A sent_ns from the future (a scribbled header) is taken as now. */
    return mono_ns <= mono_now ? wall_now - (mono_now - mono_ns) : wall_now;
}

const char *sb_fmt_time_of_day(uint64_t wall_ns, char *buf, size_t size)
{
    time_t secs = (time_t)(wall_ns / 1000000000u);
    struct tm tm;

    if (localtime_r(&secs, &tm) == NULL)
        snprintf(buf, size, "??:??:??.???");
    else
        snprintf(buf, size, "%02d:%02d:%02d.%03u", tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (unsigned)(wall_ns % 1000000000u / 1000000u));
    return buf;
}

const char *sb_fmt_utc(uint64_t wall_ns, char *buf, size_t size)
{
    time_t secs = (time_t)(wall_ns / 1000000000u);
    struct tm tm;

    if (gmtime_r(&secs, &tm) == NULL)
        snprintf(buf, size, "1970-01-01T00:00:00.000000Z");
    else
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (unsigned)(wall_ns % 1000000000u / 1000u));
    return buf;
}

uint64_t sb_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *sb_fmt_ns(uint64_t ns, char *buf, size_t size)
{
    if (ns < 1000)
        snprintf(buf, size, "%llu ns", (unsigned long long)ns);
    else if (ns < 1000000)
        snprintf(buf, size, "%.1f us", (double)ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, size, "%.2f ms", (double)ns / 1e6);
    else
        snprintf(buf, size, "%.2f s", (double)ns / 1e9);
    return buf;
}

const char *sb_fmt_bytes(uint64_t bytes, char *buf, size_t size)
{
    if (bytes < 1024)
        snprintf(buf, size, "%llu B", (unsigned long long)bytes);
    else if (bytes < 1048576)
        snprintf(buf, size, bytes % 1024 ? "%.1f KiB" : "%.0f KiB", (double)bytes / 1024.0);
    else
        snprintf(buf, size, bytes % 1048576 ? "%.1f MiB" : "%.0f MiB", (double)bytes / 1048576.0);
    return buf;
}

const char *sb_fmt_pct(const uint64_t *hist, double p, char *buf, size_t size)
{
    unsigned b;

    for (b = 0; b < SHMBUS_LAT_BUCKETS; b++)
        if (hist[b] != 0)
            return sb_fmt_ns(shmbus_hist_percentile(hist, p), buf, size);
    snprintf(buf, size, "-");
    return buf;
}

static void on_stop_signal(int sig)
{
    sb_stop = sig; /* nonzero: the number tells the exit status (sb_stop_status()) */
    sb_nudge_stop();
}

void sb_catch_stop_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocked read returns EINTR and the loop sees sb_stop */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* All clients of a bus in a malloc'd array (*out, freed by the caller); returns the count
 * or a negative error. Retries if clients joined between counting and listing. */
int sb_list_clients(shmbus_bus *bus, struct shmbus_client_info **out)
{
    struct shmbus_client_info *v = NULL, *nv;
    size_t cap = 16;
    int n;

    for (;;) {
        nv = realloc(v, cap * sizeof(*v));
        if (nv == NULL) {
            free(v);
            return -ENOMEM;
        }
        v = nv;
        n = shmbus_list(bus, v, cap);
        if (n < 0) {
            free(v);
            return n;
        }
        if ((size_t)n <= cap)
            break;
        cap = (size_t)n + 16;
    }
    *out = v;
    return n;
}

void sb_idle_reset(struct sb_idle *w)
{
    if (w->timeout_ms >= 0)
        w->deadline = sb_now_ns() + (uint64_t)w->timeout_ms * 1000000u;
}

int sb_idle_slice(const struct sb_idle *w, int max_ms)
{
    if (w->timeout_ms < 0)
        return max_ms;
    uint64_t now = sb_now_ns();
    if (now >= w->deadline)
        return -1;
    if ((w->deadline - now) / 1000000u < (uint64_t)max_ms)
        return (int)((w->deadline - now + 999999u) / 1000000u);
    return max_ms;
}

int sb_stream_status(const char *cmd, const char *bus, uint64_t got, uint64_t count)
{
    char what[96];

    if (sb_stop)
        return sb_stop_status();
    if (count != 0 && got < count) {
        snprintf(what, sizeof(what), "%s %s", cmd, bus);
        sb_err(what, "timed out after %llu of %llu messages", (unsigned long long)got,
               (unsigned long long)count);
        return SB_EXIT_FAIL;
    }
    return SB_EXIT_OK;
}
