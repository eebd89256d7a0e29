/* leader: campaign for leadership of "chief" on bus "demo", then act as leader for 5 s,
 * telling client 1 with fenced sends (refused once a newer leader exists), and resign. Run
 * two at once: the second leads after the first resigns or is killed.
 * Watch: shmbus leader demo chief --watch
 * Build: cc leader.c $(pkg-config --cflags --libs shmbus) -o leader */
#define _POSIX_C_SOURCE 200809L /* nanosleep() under -std=c11 */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <shmbus.h>

int main(void)
{
    shmbus_bus *bus;
    shmbus_client *me;
    int r = shmbus_bus_open("demo", NULL, SHMBUS_OPEN_CREATE, &bus);
    if (r == 0)
        r = shmbus_join(bus, 0, NULL, &me);
    if (r < 0) {
        fprintf(stderr, "leader: %s\n", shmbus_strerror(r));
        return 1;
    }
    int epoch = shmbus_elect(me, "chief", -1); /* waits until we lead */
    if (epoch < 0) {
        fprintf(stderr, "leader: %s\n", shmbus_strerror(epoch));
        shmbus_leave(me);
        return 1;
    }
    printf("client %u leads with epoch %d\n", shmbus_client_id(me), epoch);
    for (int i = 0; i < 5; i++) {
        r = shmbus_send_fenced(me, 1, "chief", (uint64_t)epoch, "tick", 4, 0, 1000);
        if (r == -ESTALE)
            break; /* deposed: a newer leader acts now */
        struct timespec second = {1, 0};
        nanosleep(&second, NULL);
    }
    shmbus_resign(me, "chief");
    shmbus_leave(me);
    shmbus_bus_close(bus);
    return 0;
}
