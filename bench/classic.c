/*
 * The classic three-client exchange (classic/start.sh) against the seed's claims: "1 to 10 us
 * per semaphore operation" and "sub-millisecond per message".
 *
 * Design notes
 * - The exchange is run as a user runs it: start.sh with START_DELAY=0, the clients from the
 *   build directory, CLASSIC_DIR in the bench's private directory (so its key file and
 *   semaphores never meet a real run's), and CLASSIC_MESSAGES long enough that starting three
 *   processes is a small part of the total.
 * - Per hop: the clients print and flush one transcript line pair per message received; the
 *   bench reads them from a pipe and timestamps the first and the last, so process start-up
 *   is not counted. CPU per message: user + system time of start.sh and its clients (from
 *   getrusage(RUSAGE_CHILDREN)) over the messages; this does include their start-up.
 * - The seed's semaphore claim is checked two ways: the cost of one uncontended operation on a
 *   named semaphore (sem_post + sem_wait in one process, halved), and the hand-off to a
 *   sleeping process (half the floor-sem round trip, in the report).
 * - Where the programs are: CLIENT_DIR if set, else <dir of this executable>/../classic (both
 *   $(BUILD)/bench/shmbus-bench and $(BUILD)/bin/shmbus sit one level under $(BUILD));
 *   start.sh is found as classic/start.sh above the build directory.
 */
#include "results.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static double sem_op_us(void)
{
    char name[64];
    snprintf(name, sizeof(name), "/shmbus-bench-sem.%d", (int)getpid());
    sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, 0);
    if (s == SEM_FAILED)
        return 0;
    sem_unlink(name); /* nothing left in /dev/shm, whatever happens next */
    const int n = 200000;
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < n; i++) {
        sem_post(s);
        sem_wait(s);
    }
    uint64_t t1 = bench_now_ns();
    sem_close(s);
    return (double)(t1 - t0) / 1e3 / (2.0 * n);
}

static int find_programs(char *clients, size_t clen, char *script, size_t slen)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = 0; /* exe is now the executable's directory */
    const char *env = getenv("CLIENT_DIR");
    if (env && *env)
        snprintf(clients, clen, "%s", env);
    else
        snprintf(clients, clen, "%.*s/../classic", (int)clen - 16, exe);
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof(probe), "%s/client1", clients);
    if (access(probe, X_OK) != 0)
        return -1;
    /* classic/start.sh in the first of the executable's ancestors that has one. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", exe);
    for (int up = 0; up < 5; up++) {
        snprintf(script, slen, "%s/classic/start.sh", dir);
        if (access(script, R_OK) == 0)
            return 0;
        size_t len = strlen(dir);
        if (len + 4 >= sizeof(dir))
            return -1;
        memcpy(dir + len, "/..", 4);
    }
    return -1;
}

static double cpu_children(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_CHILDREN, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* One run of start.sh; fills messages, seconds (first to last receipt) and CPU seconds. */
static int run_once(const char *clients, const char *script, int messages, struct bench_classic *c,
                    double *cpu)
{
    int fd[2];
    if (pipe(fd) != 0)
        return bench_fail(c->why, sizeof(c->why), "failed: pipe");
    char classic_dir[300], count[32];
    snprintf(classic_dir, sizeof(classic_dir), "%s/classic", bench_tmpdir);
    snprintf(count, sizeof(count), "%d", messages);
    double cpu0 = cpu_children();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return bench_fail(c->why, sizeof(c->why), "failed: fork");
    }
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        dup2(fd[1], 1);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 2);
        close(fd[0]);
        setenv("CLIENT_DIR", clients, 1);
        setenv("START_DELAY", "0", 1);
        setenv("CLASSIC_DIR", classic_dir, 1);
        setenv("CLASSIC_MESSAGES", count, 1);
        execl("/bin/bash", "bash", script, (char *)NULL);
        _exit(127);
    }
    bench_track_pid(pid);
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    char line[512];
    uint64_t first = 0, last = 0, got = 0;
    while (f && fgets(line, sizeof(line), f)) {
        if (!strstr(line, "has received a message"))
            continue;
        uint64_t now = bench_now_ns();
        if (!first)
            first = now;
        last = now;
        got++;
    }
    if (f)
        fclose(f);
    else
        close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    bench_forget_pid(pid);
    *cpu = cpu_children() - cpu0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || got < 2) {
        snprintf(c->why, sizeof(c->why), "failed: start.sh exited %d after %llu messages",
                 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), (unsigned long long)got);
        return -1;
    }
    c->messages = got;
    c->seconds = (double)(last - first) / 1e9;
    return 0;
}

void bench_measure_classic(struct bench_run *r)
{
    struct bench_classic *c = &r->classic;
    memset(c, 0, sizeof(*c));
    c->sem_op_us = sem_op_us();
    char clients[PATH_MAX], script[PATH_MAX + 32];
    if (find_programs(clients, sizeof(clients), script, sizeof(script)) < 0) {
        snprintf(c->why, sizeof(c->why),
                 "skipped: classic clients or classic/start.sh not found (make classic; or set "
                 "CLIENT_DIR)");
        return;
    }
    double cpu = 0;
    if (run_once(clients, script, r->quick ? 900 : 9000, c, &cpu) < 0)
        return;
    c->ok = 1;
    c->hop_us = c->seconds * 1e6 / (double)(c->messages - 1);
    c->cpu_us = cpu * 1e6 / (double)c->messages;
    if (c->hop_us <= 0 || c->cpu_us <= 0) {
        c->ok = 0;
        snprintf(c->why, sizeof(c->why), "failed: no time measured");
    }
}
