/*
 * tools.h - what the parts of the `shmbus` command share.
 *
 * One file per group of subcommands (cmd_bus.c: create and destroy; cmd_msg.c: send and
 * recv; cmd_ls.c: ls and stat; cmd_top.c: top; cmd_clean.c: clean; ring.c: ring), each
 * exporting a `sb_cmd_<name>(argc, argv)` that gets argv[0] = the subcommand's name and
 * returns the process exit status:
 *
 *   SB_EXIT_OK (0) success, SB_EXIT_FAIL (1) failure, SB_EXIT_USAGE (2) bad usage.
 *
 * Errors are printed as "shmbus: <what>: <why>" (sb_err); library errors use
 * shmbus_strerror(). Helpers here never exit: the subcommand decides.
 */
#ifndef SHMBUS_TOOLS_H
#define SHMBUS_TOOLS_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "shmbus.h"

enum { SB_EXIT_OK = 0, SB_EXIT_FAIL = 1, SB_EXIT_USAGE = 2 };

/* Standard output or error was closed (the reader of a pipe left): the command stopped,
 * cleaned up (left the bus, removed what it created) and exits with what a shell shows for a
 * process killed by SIGPIPE. A stop signal exits 128 + its number (sb_stop_status()). */
enum { SB_EXIT_OUTPUT = 141 };

/* Subcommands. */
int sb_cmd_create(int argc, char **argv);
int sb_cmd_destroy(int argc, char **argv);
int sb_cmd_send(int argc, char **argv);
int sb_cmd_recv(int argc, char **argv);
int sb_cmd_tail(int argc, char **argv);
int sb_cmd_record(int argc, char **argv); /* cmd_record.c */
int sb_cmd_play(int argc, char **argv);   /* cmd_record.c */
int sb_cmd_ls(int argc, char **argv);
int sb_cmd_stat(int argc, char **argv);
int sb_cmd_top(int argc, char **argv);
int sb_cmd_clean(int argc, char **argv);
int sb_cmd_ring(int argc, char **argv);
int sb_cmd_pub(int argc, char **argv);    /* cmd_group.c */
int sb_cmd_sub(int argc, char **argv);    /* cmd_group.c */
int sb_cmd_group(int argc, char **argv);  /* cmd_group.c */
int sb_cmd_leader(int argc, char **argv); /* cmd_group.c */
int sb_cmd_replay(int argc, char **argv); /* cmd_journal.c */
/* cmd_journal.c: "64K", "10M", "2G" (powers of 1024) and "30s", "5min", "2h", "7d" (in ns);
 * 0 on success, -1 if s is not one. */
int sb_parse_size(const char *s, uint64_t *out);
int sb_parse_duration(const char *s, uint64_t *out);

/* Attach to the existing bus `name` (never creating it: only `shmbus create` does) with
 * shmbus_bus_open() flags (0 or SHMBUS_OPEN_RDONLY). On failure prints
 * "shmbus: <cmd> <name>: <why>", for a missing bus "no such bus" and how to create it, and
 * returns the negative error. */
int sb_open_bus(const char *cmd, const char *name, unsigned flags, shmbus_bus **out);

/* Open the existing bus `name` and join it as `as` (an id, a name, or NULL: an anonymous
 * client). 0, or -1 after saying why on stderr (the bus is closed again). */
int sb_open_and_join(const char *cmd, const char *name, const char *as, shmbus_bus **busp,
                     shmbus_client **clp);

/* How many of the n listed clients are in each state, as the rows of a listing show them. */
struct sb_client_counts {
    unsigned live, dead, joining, kept;
};
void sb_count_clients(const struct shmbus_client_info *cl, int n, struct sb_client_counts *k);

/* "1 live client", "2 live clients, 1 dead, 1 kept" ...: the counts of a listing as text, for
 * headers over its rows (ls, top), so a header never disagrees with the rows under it. */
const char *sb_fmt_client_counts(const struct sb_client_counts *k, char *buf, size_t size);

/* "shmbus: <what>: <why>" on stderr; why is printf-style. */
void sb_err(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The same with what = printf(what_fmt, obj), e.g. sb_errf("send %s", bus, "%s", why). */
void sb_errf(const char *what_fmt, const char *obj, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The usage text of a subcommand: with to_stderr == 0 (asked for with --help) on stdout,
 * returning SB_EXIT_OK; otherwise on stderr after "shmbus: <cmd>: <why>", returning
 * SB_EXIT_USAGE. */
int sb_usage(const char *usage, int to_stderr);

/* Bad usage: "shmbus: <cmd>: <why>", the usage text on stderr, and SB_EXIT_USAGE. */
int sb_bad_usage(const char *cmd, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* All clients of a bus in a malloc'd array (*out, freed by the caller); returns the count or
 * a negative error. Retries if clients joined between counting and listing. */
int sb_list_clients(shmbus_bus *bus, struct shmbus_client_info **out);

/* Parse a whole decimal unsigned number in [min, max]; 0 on success, -1 if it is not one. */
int sb_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);
int sb_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Parse a timeout in milliseconds: a number >= 0, or -1 for "forever". */
int sb_parse_timeout(const char *s, int *out);

/* NULL if s is a valid bus or client name ([A-Za-z0-9._-], 1..SHMBUS_NAME_MAX characters,
 * not "." or ".."), else why it is not. */
const char *sb_bad_name(const char *s);

/* Report a getopt_long failure (unknown option, missing argument) as bad usage. Call with
 * the value getopt_long returned ('?' or ':'); optstring must start with ':'. */
int sb_getopt_error(const char *cmd, const char *usage, int ret, char **argv);

/* Is s a client id (all digits) rather than a name? */
int sb_is_number(const char *s);

/* Write s (len bytes) as a JSON string, quotes included, valid UTF-8 kept: the one escaper
 * of tools/json.h. */
void sb_json_str(FILE *f, const char *s, size_t len);

/* Write a payload as the JSON member "data":"..." when it is valid UTF-8, else
 * "data_base64":"...": lossless for any bytes (tools/json.h, sb_json_payload()). */
void sb_json_payload_file(FILE *f, const char *s, size_t len);

/* Name of a client state: "live", "dead", "joining" or "unknown". */
const char *sb_state_name(int state);

/* Monotonic clock in nanoseconds. */
uint64_t sb_now_ns(void);

/* The wall-clock time (CLOCK_REALTIME, ns since the epoch) of a CLOCK_MONOTONIC instant
 * such as shmbus_msg.sent_ns, from the two clocks' offset now. */
uint64_t sb_wall_of_mono_ns(uint64_t mono_ns);

/* A wall-clock time as the local time of day "HH:MM:SS.mmm" (into buf). */
const char *sb_fmt_time_of_day(uint64_t wall_ns, char *buf, size_t size);

/* A wall-clock time as UTC ISO 8601 with microseconds, "2026-11-30T21:05:03.123456Z". */
const char *sb_fmt_utc(uint64_t wall_ns, char *buf, size_t size);

/* A latency in nanoseconds as text with a unit ("850 ns", "12.3 us", "4.56 ms") into buf. */
const char *sb_fmt_ns(uint64_t ns, char *buf, size_t size);

/* A size in bytes as text: "512 B", "64 KiB", "1.5 MiB", into buf. */
const char *sb_fmt_bytes(uint64_t bytes, char *buf, size_t size);

/* The p-th percentile of a latency histogram as sb_fmt_ns() text, or "-" if it is empty. */
const char *sb_fmt_pct(const uint64_t *hist, double p, char *buf, size_t size);

/* SIGINT/SIGTERM/SIGHUP set sb_stop to the signal's number (no SA_RESTART, so blocking
 * reads and the library's waits return EINTR). */
extern volatile sig_atomic_t sb_stop;
void sb_catch_stop_signals(void);

/* From tools/output.c: closed outputs and stop signals. */

/* Called by the stop-signal handler (async-signal-safe): from now on a SIGALRM every 100 ms
 * interrupts any blocking call, so a stop signal that came just before a wait began is not
 * missed by it. */
void sb_nudge_stop(void);

/* The exit status for a stop signal: 128 + its number (130 SIGINT, 143 SIGTERM, 129 SIGHUP),
 * or SB_EXIT_OK if none came. */
int sb_stop_status(void);

/* Reopen any of descriptors 0, 1, 2 that is closed on /dev/null read-only, so that writes to
 * it fail (EBADF: output closed) and no file opened later takes its number. */
void sb_guard_std_fds(void);

/* write(2) all of buf to fd, retrying short writes and EINTR (unless sb_stop is set: then
 * -EINTR). 0 or -errno. */
int sb_write_all(int fd, const void *buf, size_t len);

/* Does this -errno from a write mean the output is gone (reader left, descriptor closed)? */
int sb_output_gone(int err);

/* Has the reader of the pipe fd left (checked without writing)? 1 or 0. */
int sb_reader_gone(int fd);

/* The idle timeout of a loop that prints messages as they come (recv, tail): --timeout MS
 * without a message ends it (timeout_ms -1: never). */
struct sb_idle {
    int timeout_ms;
    uint64_t deadline; /* CLOCK_MONOTONIC ns, when timeout_ms >= 0 */
};
/* Start, or start again after a message. */
void sb_idle_reset(struct sb_idle *w);
/* How long the next wait may be: at most max_ms, less near the deadline; -1 once it passed. */
int sb_idle_slice(const struct sb_idle *w, int max_ms);
/* How such a loop ends: 128 + signal when stopped, SB_EXIT_FAIL with "timed out after N of
 * M messages" when --count (0: none) was not reached, else SB_EXIT_OK. */
int sb_stream_status(const char *cmd, const char *bus, uint64_t got, uint64_t count);

/* Waiting until the reader of a pipe has read what was written (see output.c). */
struct sb_pace {
    int fd;
    int pipe;  /* fd is a pipe, FIFO or socket: sb_reader_gone() can tell */
    int on;    /* pacing: fd is a pipe or FIFO and pacing was asked for */
    int exact; /* shrunk to one page: POLLOUT means empty */
};

/* Look at fd and, if `pace` and fd is a pipe or FIFO, set up pacing on it. Returns p->on. */
int sb_pace_init(struct sb_pace *p, int fd, int pace);

/* Wait until the reader has read every byte written to p->fd (at once if pacing is off).
 * 0: read; -EPIPE: the reader left without reading it all; -EINTR: sb_stop was set. */
int sb_pace_wait(const struct sb_pace *p);

#endif
