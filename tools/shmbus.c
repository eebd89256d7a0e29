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
 *
 * `monitor`, `bench` and `bridge` are companion programs (shmbus-monitor links
 * libmicrohttpd, shmbus-bench the benchmark's peers, shmbus-bridge libnats), so that this command
 * needs nothing but libc: they are exec'd in place of this process (same pid, same descriptors),
 * found by run_companion().
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "suggest.h"
#include "tools.h"

/* Exec `prog` if path dir/rel/prog is executable; returns only if it is not (or exec failed:
 * *err is set then). */
static void try_exec(const char *dir, const char *rel, const char *prog, char **argv, int *err)
{
    char path[PATH_MAX + 64];

    if (snprintf(path, sizeof(path), "%s%s/%s", dir, rel, prog) >= (int)sizeof(path))
        return;
    if (access(path, X_OK) != 0)
        return;
    execv(path, argv);
    *err = errno;
}

/*
 * Run the companion program `prog` with this command's arguments (argv[0] = the command's
 * name becomes prog). Looked for, in order: next to this executable (build/bin/, or BINDIR
 * for shmbus-bench), in ../libexec/shmbus/ from it (an installed shmbus-monitor, wherever
 * PREFIX was), then in PATH. Returns only on failure, with the exit status.
 */
static int run_companion(const char *cmd, const char *prog, const char *how, char **argv)
{
    char self[PATH_MAX], *slash;
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    int err = 0;

    argv[0] = (char *)prog;
    signal(SIGPIPE, SIG_DFL); /* an ignored signal would stay ignored across exec */
    if (n > 0) {
        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            try_exec(self, "", prog, argv, &err);
            try_exec(self, "/../libexec/shmbus", prog, argv, &err);
        }
    }
    if (err == 0) {
        execvp(prog, argv);
        err = errno;
    }
    if (err == ENOENT)
        sb_err(cmd, "%s is not installed (%s)", prog, how);
    else
        sb_err(cmd, "cannot run %s: %s", prog, strerror(err));
    return SB_EXIT_FAIL;
}

static int cmd_monitor(int argc, char **argv)
{
    (void)argc;
    return run_companion("monitor", "shmbus-monitor", "make install installs it", argv);
}

static int cmd_bench(int argc, char **argv)
{
    (void)argc;
    return run_companion("bench", "shmbus-bench",
                         "build it with make, install it with make install-bench", argv);
}

static int cmd_bridge(int argc, char **argv)
{
    (void)argc;
    return run_companion("bridge", "shmbus-bridge",
                         "build it with make, install it with make install-bridge", argv);
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
    {"tail", sb_cmd_tail, "print the traffic of a bus, taking nothing"},
    {"record", sb_cmd_record, "write the traffic of a bus into a file, taking nothing"},
    {"play", sb_cmd_play, "send the messages of a recording again"},
    {"replay", sb_cmd_replay, "send again what a durable bus's journal kept"},
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
    {"bridge", cmd_bridge, "carry messages to buses on other hosts through NATS"},
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

/* "unknown command", with the nearest known one if it looks like a typo of it. */
static int unknown_command(const char *word)
{
    const char *names[sizeof(commands) / sizeof(commands[0])];
    const char *near;
    size_t i;

    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        names[i] = commands[i].name;
    near = sb_suggest(word, names, sizeof(names) / sizeof(names[0]));
    if (near != NULL)
        fprintf(stderr, "shmbus: %s: unknown command (did you mean '%s'?)\n", word, near);
    else
        fprintf(stderr, "shmbus: %s: unknown command\n", word);
    usage(stderr);
    return SB_EXIT_USAGE;
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
    return unknown_command(argv[1]);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    sb_guard_std_fds();
    return finish(dispatch(argc, argv));
}
