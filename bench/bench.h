/*
 * shmbus bench: the benchmark behind `shmbus bench` and `make bench`.
 *
 * sb_bench_main() takes the subcommand's arguments (argv[0] is the subcommand name):
 *   [--quick] [--json] [--only ROW,...] [--self-test]
 * It prints the report on stdout and progress on stderr, and returns the exit status:
 * 0 after a run (skipped or failed measurements are reported, not fatal), 1 when it could not
 * run at all, 2 on bad options. It forks children, installs handlers for SIGINT, SIGTERM and
 * SIGHUP for the duration of the run (to remove what it made), and starts and stops iox-roudi
 * itself for the iceoryx rows. Not thread-safe: call it from a process's main thread.
 */
#ifndef SHMBUS_BENCH_H
#define SHMBUS_BENCH_H

int sb_bench_main(int argc, char **argv);

#endif
