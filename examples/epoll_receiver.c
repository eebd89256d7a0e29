/* epoll_receiver: join bus "demo" as client 2 and print messages from inside an epoll loop
 * (which could watch sockets, timers and pipes too), until none comes for 5 s.
 * Build: cc epoll_receiver.c $(pkg-config --cflags --libs shmbus) -o epoll_receiver
 * Try it with ./sender (from sender.c) in another terminal. */
#include <errno.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <shmbus.h>

int main(void)
{
    shmbus_bus *bus;
    shmbus_client *me;
    int r = shmbus_bus_open("demo", NULL, SHMBUS_OPEN_CREATE, &bus);
    if (r == 0)
        r = shmbus_join(bus, 2, "receiver", &me);
    if (r < 0) {
        fprintf(stderr, "epoll_receiver: %s\n", shmbus_strerror(r));
        return 1;
    }
    int fd = shmbus_client_fd(me); /* owned by the client: shmbus_leave() closes it */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (fd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        fprintf(stderr, "epoll_receiver: %s\n", fd < 0 ? shmbus_strerror(fd) : "epoll failed");
        return 1;
    }
    char buf[1024];
    struct shmbus_msg m;
    for (;;) {
        /* Arm, then wait: a message that came meanwhile makes fd readable at once. */
        if (shmbus_client_arm(me) == 0 && epoll_wait(ep, &ev, 1, 5000) == 0)
            break; /* 5 s without a message */
        /* Readable: take everything there is without blocking, then arm again. */
        while ((r = shmbus_recv(me, &m, buf, sizeof(buf), 0)) >= 0)
            printf("from %u: %.*s\n", m.src, r, buf);
        fflush(stdout);
        if (r != -EAGAIN) {
            fprintf(stderr, "epoll_receiver: %s\n", shmbus_strerror(r));
            break;
        }
    }
    close(ep);
    shmbus_leave(me);
    shmbus_bus_close(bus);
    return 0;
}
