/* subscriber: subscribe to topic "news" on bus "demo" and print what is published to it
 * until nothing comes for 5 s. Try: shmbus pub demo news hello
 * Build: cc subscriber.c $(pkg-config --cflags --libs shmbus) -o subscriber */
#include <stdio.h>
#include <shmbus.h>

int main(void)
{
    shmbus_bus *bus;
    shmbus_client *me;
    int r = shmbus_bus_open("demo", NULL, SHMBUS_OPEN_CREATE, &bus);
    if (r == 0)
        r = shmbus_join(bus, 0, NULL, &me); /* any free id */
    if (r == 0 && (r = shmbus_subscribe(me, "news", 0)) < 0)
        shmbus_leave(me);
    if (r < 0) {
        fprintf(stderr, "subscriber: %s\n", shmbus_strerror(r));
        return 1;
    }
    char buf[1024];
    struct shmbus_msg m;
    while ((r = shmbus_recv(me, &m, buf, sizeof(buf), 5000)) >= 0)
        printf("news from %u: %.*s\n", m.src, r, buf);
    shmbus_leave(me); /* ends the subscription */
    shmbus_bus_close(bus);
    return 0;
}
