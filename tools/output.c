/*
 * output.c - what the `shmbus` command does when its standard output or error goes away.
 *
 * Design notes
 * ------------
 * A closed output is an ordinary event (`shmbus recv BUS | head -1`), not a crash: main()
 * ignores SIGPIPE, so a write to a pipe without readers fails with EPIPE instead of killing
 * the process half-way through leaving a bus or destroying one. Every command then stops at
 * its next write, cleans up what it owns, and exits SB_EXIT_OUTPUT (141, what a shell shows
 * for a process killed by SIGPIPE, so scripts that already expect it keep working).
 *
 * Standard descriptors closed at start (`2>&-`) are reopened on /dev/null read-only: writes
 * to them still fail (EBADF, counted as "output closed"), and no file the library opens can
 * land on descriptor 1 or 2 and receive our output.
 *
 * Stop signals. The handler (tools/util.c) sets sb_stop; a blocking library call returns
 * -EINTR when the signal interrupts its wait. A signal that lands just before the wait
 * begins interrupts nothing, and a wait with no timeout would then never end: so the handler
 * also starts a 100 ms interval timer (sb_nudge_stop) whose SIGALRM interrupts whatever wait
 * comes next, until the command has stopped.
 *
 * Handing a message on. A write(2) that succeeds means only that the kernel holds the bytes:
 * on a pipe they sit in its buffer (64 KiB by default) until the reader takes them, and a
 * reader that leaves first takes them with it. sb_pace_wait() waits until the reader has
 * read everything written so far: the pipe is shrunk to one page, so that it is "full" (not
 * writable) from the first byte until the reader has emptied it, and poll(POLLOUT) sleeps
 * until then. POLLERR without POLLOUT means the reader left without reading.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "tools.h"

void sb_guard_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int nfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (nfd >= 0 && nfd != fd) {
            dup2(nfd, fd); /* the lowest free descriptor is fd itself, but be sure */
            close(nfd);
        }
    }
}

int sb_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t w = write(fd, p, len);

        if (w < 0 && errno == EINTR) {
            if (sb_stop)
                return -EINTR;
            continue;
        }
        if (w < 0)
            return -errno;
        if (w == 0)
            return -EIO;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int sb_output_gone(int err)
{
    return err == -EPIPE || err == -EBADF || err == -ECONNRESET;
}

static void on_nudge(int sig)
{
    (void)sig; /* only to interrupt a blocking call (no SA_RESTART) */
}

void sb_nudge_stop(void)
{
    struct sigaction sa = {.sa_handler = on_nudge};
    struct itimerval every = {.it_interval = {0, 100000}, .it_value = {0, 100000}};

    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    setitimer(ITIMER_REAL, &every, NULL);
}

int sb_stop_status(void)
{
    return sb_stop ? 128 + sb_stop : SB_EXIT_OK;
}

int sb_pace_init(struct sb_pace *p, int fd, int pace)
{
    struct stat st;

    p->fd = fd;
    p->on = 0;
    p->exact = 0;
    p->pipe = fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
    if (!pace || !p->pipe || !S_ISFIFO(st.st_mode))
        return 0;
    p->on = 1;
    /* One page: the smallest pipe, and the one in which "writable" means "empty". Fails with
     * EBUSY if it holds more than that already; then sb_pace_wait() polls FIONREAD. */
    p->exact = fcntl(fd, F_SETPIPE_SZ, (int)sysconf(_SC_PAGESIZE)) >= 0;
    return 1;
}

int sb_pace_wait(const struct sb_pace *p)
{
    int backoff = 1, exact = p->exact;

    if (!p->on)
        return 0;
    for (;;) {
        struct pollfd pfd = {.fd = p->fd, .events = exact ? POLLOUT : 0};
        int unread = 0;

        if (ioctl(p->fd, FIONREAD, &unread) == 0 && unread == 0)
            return 0; /* the reader has read every byte written */
        if (sb_stop)
            return -EINTR;
        /* Exact: sleep until the one-page pipe is empty (or the reader leaves). Otherwise
         * POLLOUT says nothing: wait for POLLERR only, looking again every few ms. */
        int r = poll(&pfd, 1, exact ? -1 : backoff);
        if (r < 0 && errno == EINTR)
            continue; /* sb_stop is looked at above */
        if (r < 0)
            return -errno;
        if (r > 0 && (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) && !(pfd.revents & POLLOUT)) {
            /* The reader left. It may have read everything just before: look once more. */
            if (ioctl(p->fd, FIONREAD, &unread) == 0 && unread == 0)
                return 0;
            return -EPIPE;
        }
        if (r > 0 && (pfd.revents & POLLOUT))
            exact = 0; /* writable yet not empty: the kernel did not shrink it after all */
        if (backoff < 20)
            backoff *= 2;
    }
}

int sb_reader_gone(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = 0};

    /* On the write end of a pipe, POLLERR means no reader is left. Only asked of pipes and
     * sockets: on a terminal POLLERR/POLLHUP mean other things. */
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLERR | POLLNVAL));
}
