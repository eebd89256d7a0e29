/*
 * Test helpers shared by the cmocka binaries in tests/.
 *
 * Multi-process tests fork inside their own binary (libuv style). Every child gets
 * PR_SET_PDEATHSIG so it dies with the test, every wait has a timeout, and every bus name
 * is unique to the test process, so parallel or repeated runs never meet.
 */
#ifndef SHMBUS_TESTS_HELPERS_H
#define SHMBUS_TESTS_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/types.h>
#include <cmocka.h>

#include "shmbus.h"

/* A bus name unique to this process and tag: "t-<tag>-<pid>". Static storage, one per call
 * site is enough: the next call overwrites it. */
const char *th_name(const char *tag);

/* Fork a child that runs fn(arg) and exits with its return value (0..255). The child dies
 * with SIGKILL if the test process dies. Returns the child's pid; fails the test on error. */
pid_t th_fork(int (*fn)(void *), void *arg);

/* Wait for pid up to timeout_ms. Returns its exit status (0..255), 128+signal if it was
 * killed, or -1 after killing it because the time ran out. */
int th_wait(pid_t pid, int timeout_ms);

/* Monotonic time in nanoseconds. */
uint64_t th_now_ns(void);

/* CPU time (user + system) of this process and its waited-for children, in nanoseconds. */
uint64_t th_cpu_ns(void);

/* Create a new bus named th_name(tag) with these sizes (0: the default), failing the test
 * if it cannot; the caller owns the handle and gives it back with th_close_bus(). */
shmbus_bus *th_open_bus(const char *tag, uint32_t clients, uint32_t slots, uint32_t msg);

/* Close bus b and destroy it, failing the test if the destroy fails. */
void th_close_bus(shmbus_bus *b);

/* Remember a raw segment a test made, so th_cleanup() removes it even if the test fails. */
void th_track_shmid(int shmid);

/* If TH_FILTER is set, run only the cmocka tests whose names match it (a cmocka pattern,
 * `*` and `?` wildcards): `make mutants` runs one test per mutant this way. */
void th_filter_from_env(void);

/* Remove the file or directory tree at path (errors ignored: what is left is reported by the
 * runner's leak check). */
void th_rm_rf(const char *path);

/* What a reboot does to bus `name`: its segment, semaphores and key file gone (destroyed by
 * force, whoever is attached), and the runtime directory removed. Journal files stay. */
void th_reboot_sim(const char *name);

/* Group teardown: destroy every bus in this test's SHMBUS_DIR and every tracked segment.
 * Runs even when tests failed, so a failing test leaves nothing behind. */
int th_cleanup(void **state);

#endif
