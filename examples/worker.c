/* worker: take jobs from work queue "jobs" on bus "demo" (each job goes to one worker, the
 * least loaded) until none comes for 5 s. Start two, then: shmbus send demo --group jobs a b c
 * Build: cc worker.c $(pkg-config --cflags --libs shmbus) -o worker */
#include <stdio.h>
#include <shmbus.h>

int main(void)
{
    shmbus_bus *bus;
    shmbus_client *me;
    int r = shmbus_bus_open("demo", NULL, SHMBUS_OPEN_CREATE, &bus);
    if (r == 0)
        r = shmbus_join(bus, 0, NULL, &me);
    if (r == 0 && (r = shmbus_subscribe(me, "jobs", 0)) < 0)
        shmbus_leave(me);
    if (r < 0) {
        fprintf(stderr, "worker: %s\n", shmbus_strerror(r));
        return 1;
    }
    char buf[1024];
    struct shmbus_msg m;
    while ((r = shmbus_recv(me, &m, buf, sizeof(buf), 5000)) >= 0)
        printf("worker %u does job: %.*s\n", shmbus_client_id(me), r, buf);
    shmbus_leave(me);
    shmbus_bus_close(bus);
    return 0;
}
