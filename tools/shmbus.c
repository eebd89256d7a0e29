/*
 * shmbus.c - the `shmbus` command: see, drive and clean buses from the shell.
 *
 * main() only dispatches: `shmbus <command> ...` runs the command's function with argv
 * shifted so that argv[0] is the command's name (getopt_long then works as in any program).
 * Each command parses its own options, prints its own usage and returns the exit status:
 * 0 success, 1 failure, 2 bad usage, 141 output closed, 128 + N stopped by signal N (see
 * tools.h).
 *
 * Before any command runs, SIGPIPE is ignored and closed standard descriptors are reopened
 * on /dev/null (tools/output.c): a closed output becomes a failed write the command sees and
 * handles, never a death half-way through leaving or destroying a bus. Commands that print
 * with stdio are checked here once they return: output that could not be written turns a
 * success into SB_EXIT_OUTPUT. Commands that print messages they take off a bus (recv) or
 * that run until stopped (top, ring) check every write themselves and stop at the first
 * that fails.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "tools.h"

#ifdef HAVE_BENCH
#include "../bench/bench.h"
#endif

static int cmd_monitor(int argc, char **argv)
{
    return sb_monitor_main(argc, argv);
}

static int cmd_bench(int argc, char **argv)
{
#ifdef HAVE_BENCH
    return sb_bench_main(argc, argv);
#else
    (void)argc;
    (void)argv;
    sb_err("bench", "not built (bench/ was not part of this build)");
    return SB_EXIT_FAIL;
#endif
}

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"create", sb_cmd_create, "create a bus"},
    {"destroy", sb_cmd_destroy, "remove a bus"},
    {"send", sb_cmd_send, "send messages (arguments or lines of standard input)"},
    {"recv", sb_cmd_recv, "receive and print messages"},
    {"pub", sb_cmd_pub, "publish to a topic (every subscriber gets a copy)"},
    {"sub", sb_cmd_sub, "subscribe to a topic and print what arrives"},
    {"group", sb_cmd_group, "list the named groups of a bus (group ls)"},
    {"leader", sb_cmd_leader, "who leads a named group, and the epoch"},
    {"ls", sb_cmd_ls, "list buses, their clients and stale objects"},
    {"stat", sb_cmd_stat, "counters and latency percentiles of a bus"},
    {"top", sb_cmd_top, "live view of a bus in the terminal"},
    {"clean", sb_cmd_clean, "remove stale buses, clients and key files"},
    {"ring", sb_cmd_ring, "run the seed's N-client exchange on a private bus"},
    {"monitor", cmd_monitor, "serve a live web view of a bus"},
    {"bench", cmd_bench, "run the benchmark"},
};

static void usage(FILE *f)
{
    size_t i;

    fputs("Usage: shmbus COMMAND [OPTION]... [ARG]...\n"
          "       shmbus --help | --version\n"
          "\n"
          "A local message bus over shared memory. Commands:\n",
          f);
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "`shmbus COMMAND --help` describes a command. Buses live in $SHMBUS_DIR, else\n"
          "$XDG_RUNTIME_DIR/shmbus, else /tmp/shmbus-<uid>.\n"
          "Exit status: 0 success, 1 failure, 2 bad usage, 141 standard output or error\n"
          "closed (the command stopped and cleaned up), 130/143/129 stopped by\n"
          "SIGINT/SIGTERM/SIGHUP (the same). See shmbus(1).\n",
          f);
}

/* The status to exit with, once stdio's buffers are out: a command that succeeded but
 * could not write all it printed exits SB_EXIT_OUTPUT. */
static int finish(int status)
{
    int out_failed = fflush(stdout) != 0 || ferror(stdout);
    int err_failed = fflush(stderr) != 0 || ferror(stderr);

    if (status == SB_EXIT_OK && (out_failed || err_failed))
        return SB_EXIT_OUTPUT;
    return status;
}

static int dispatch(int argc, char **argv)
{
    size_t i;

    if (argc < 2) {
        fputs("shmbus: no command given\n", stderr);
        usage(stderr);
        return SB_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return SB_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("shmbus %s (library %s)\n", SHMBUS_VERSION_STRING, shmbus_version());
        return SB_EXIT_OK;
    }
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "shmbus: %s: unknown command\n", argv[1]);
    usage(stderr);
    return SB_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    sb_guard_std_fds();
    return finish(dispatch(argc, argv));
}
