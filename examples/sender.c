/* sender: join bus "demo" as client 1 and send each argument to client 2.
 * Build: cc sender.c $(pkg-config --cflags --libs shmbus) -o sender */
#include <stdio.h>
#include <string.h>
#include <shmbus.h>

int main(int argc, char **argv)
{
    shmbus_bus *bus;
    shmbus_client *me;
    int r = shmbus_bus_open("demo", NULL, SHMBUS_OPEN_CREATE, &bus);
    if (r == 0)
        r = shmbus_join(bus, 1, "sender", &me);
    for (int i = 1; r == 0 && i < argc; i++)
        r = shmbus_send(me, 2, argv[i], strlen(argv[i]), 0, 1000);
    if (r < 0) {
        fprintf(stderr, "sender: %s\n", shmbus_strerror(r));
        return 1;
    }
    shmbus_leave(me);
    shmbus_bus_close(bus);
    return 0;
}
