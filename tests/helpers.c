#include "helpers.h"
#include "shmbus.h"

#include <sys/shm.h>

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *th_name(const char *tag)
{
    static char buf[64];
    snprintf(buf, sizeof(buf), "t-%s-%d", tag, (int)getpid());
    return buf;
}

pid_t th_fork(int (*fn)(void *), void *arg)
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(99);
        _exit(fn(arg) & 0xff);
    }
    return pid;
}

uint64_t th_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int th_wait(pid_t pid, int timeout_ms)
{
    uint64_t deadline = th_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(status))
                return WEXITSTATUS(status);
            return 128 + WTERMSIG(status);
        }
        if (r < 0 && errno != EINTR)
            return -1;
        if (th_now_ns() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        /* Polling a child's exit is the one place a short sleep is right: waitpid has no
         * timeout, and this is not synchronising with the child's work. */
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

uint64_t th_cpu_ns(void)
{
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    uint64_t us = 0;
    us += (uint64_t)self.ru_utime.tv_sec * 1000000u + (uint64_t)self.ru_utime.tv_usec;
    us += (uint64_t)self.ru_stime.tv_sec * 1000000u + (uint64_t)self.ru_stime.tv_usec;
    us += (uint64_t)kids.ru_utime.tv_sec * 1000000u + (uint64_t)kids.ru_utime.tv_usec;
    us += (uint64_t)kids.ru_stime.tv_sec * 1000000u + (uint64_t)kids.ru_stime.tv_usec;
    return us * 1000u;
}

void th_filter_from_env(void)
{
    const char *f = getenv("TH_FILTER");
    if (f != NULL && *f != '\0')
        cmocka_set_test_filter(f);
}

static int tracked[64];
static int ntracked;

void th_track_shmid(int shmid)
{
    if (ntracked < 64)
        tracked[ntracked++] = shmid;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    remove(p);
    return 0;
}

void th_rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void th_reboot_sim(const char *name)
{
    shmbus_bus_destroy_force(name, NULL, NULL);
    char rd[512];
    if (shmbus_runtime_dir(rd, sizeof(rd)) > 0)
        th_rm_rf(rd);
}

int th_cleanup(void **state)
{
    (void)state;
    char names[256][SHMBUS_NAME_MAX + 1];
    int n = shmbus_bus_names(names, 256);
    for (int i = 0; i < n && i < 256; i++)
        if (shmbus_bus_destroy(names[i]) < 0)
            shmbus_bus_destroy_force(names[i], NULL, NULL); /* a test scribbled on it */
    for (int i = 0; i < ntracked; i++)
        shmctl(tracked[i], IPC_RMID, NULL);
    ntracked = 0;
    return 0;
}

shmbus_bus *th_open_bus(const char *tag, uint32_t clients, uint32_t slots, uint32_t msg)
{
    struct shmbus_bus_opts o = {.max_clients = clients, .slots = slots, .msg_size = msg};
    shmbus_bus *b = NULL;
    assert_int_equal(shmbus_bus_open(th_name(tag), &o, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &b),
                     0);
    return b;
}

void th_close_bus(shmbus_bus *b)
{
    struct shmbus_bus_info info;
    shmbus_bus_info(b, &info);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(info.name), 0);
}
