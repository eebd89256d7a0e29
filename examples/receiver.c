/* receiver: join bus "demo" as client 2 and print messages until none comes for 5 s.
 * Build: cc receiver.c $(pkg-config --cflags --libs shmbus) -o receiver */
#include <stdio.h>
#include <shmbus.h>

int main(void)
{
    shmbus_bus *bus;
    shmbus_client *me;
    int r = shmbus_bus_open("demo", NULL, SHMBUS_OPEN_CREATE, &bus);
    if (r == 0)
        r = shmbus_join(bus, 2, "receiver", &me);
    if (r < 0) {
        fprintf(stderr, "receiver: %s\n", shmbus_strerror(r));
        return 1;
    }
    char buf[1024];
    struct shmbus_msg m;
    while ((r = shmbus_recv(me, &m, buf, sizeof(buf), 5000)) >= 0)
        printf("from %u: %.*s\n", m.src, r, buf);
    shmbus_leave(me);
    shmbus_bus_close(bus);
    return 0;
}
