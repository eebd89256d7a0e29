/*
 * proc.c - is a process alive? Asked of the kernel, never of a heartbeat.
 *
 * A process is alive while /proc/<pid>/stat exists, its state is not zombie or dead, and its
 * start time (field 22, clock ticks since boot) is the one recorded when it joined. The
 * start time defeats pid reuse; treating zombies as dead matters because a parent that has
 * not reaped a killed child would otherwise keep it "alive" forever. A stopped (SIGSTOP) or
 * starved process is alive: nothing here depends on how long ago it last ran.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Read /proc/<pid>/stat and return its state letter and start time. */
static int read_stat(pid_t pid, char *state, uint64_t *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -EIO;
    buf[n] = '\0';
    /* The command name (field 2) is in parentheses and may hold spaces or ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ')
        return -EIO;
    p += 2;
    *state = *p;
    /* Fields after the name start at 3 (state); start time is field 22. */
    unsigned field = 3;
    while (*p != '\0' && field < 22) {
        if (*p == ' ')
            field++;
        p++;
    }
    if (field != 22)
        return -EIO;
    unsigned long long v = 0;
    if (sscanf(p, "%llu", &v) != 1)
        return -EIO;
    *start = v;
    return 0;
}

uint64_t sb__proc_start_time(pid_t pid)
{
    char state;
    uint64_t start;
    if (read_stat(pid, &state, &start) != 0)
        return 0;
    return start;
}

/*
 * The one liveness rule (libshmbus and the classic clients share it). When /proc/<pid>/stat
 * cannot be read:
 *   - EACCES, EPERM, or any error other than "no such entry": alive. The entry exists and we
 *     may not look (a hardened /proc); declaring a live process dead would let a cleaner take
 *     its client entry or its half-written messages from under it, while calling a dead one
 *     alive only delays the clean-up.
 *   - ENOENT/ESRCH: dead, unless kill(pid, 0) says the pid exists (0 or EPERM): /proc mounted
 *     with hidepid, or not mounted at all, hides processes that still run. Then alive, and
 *     start_time cannot be checked.
 */
bool sb__proc_alive(pid_t pid, uint64_t start_time)
{
    if (pid <= 0)
        return false;
    char state;
    uint64_t start;
    int r = read_stat(pid, &state, &start);
    if (r == -ENOENT || r == -ESRCH)
        return kill(pid, 0) == 0 || errno == EPERM;
    if (r != 0)
        return true; /* cannot tell: never declare a process dead on a guess */
    if (state == 'Z' || state == 'X' || state == 'x')
        return false;
    if (start_time != 0 && start != start_time)
        return false; /* the pid was reused */
    return true;
}
