/* durable: a job queue that survives crashes and reboots.
 *     durable /var/tmp/jobs-journal work                (a worker: does each job it gets)
 *     durable /var/tmp/jobs-journal add "ship order 17" (queue a job; a worker must run)
 * Every job accepted is in the journal until the worker has done it. After a reboot (or
 * after every process died and `shmbus destroy jobs`), the next `work` rebuilds the bus
 * and gets the jobs not done yet, once each, in order. The worker peeks, does the job,
 * then consumes: a crash in between makes it do that one job again, never skip it.
 * Build: cc durable.c $(pkg-config --cflags --libs shmbus) -o durable */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <shmbus.h>

int main(int argc, char **argv)
{
    if (argc < 3 || argv[1][0] != '/' || (strcmp(argv[2], "add") == 0 && argc != 4)) {
        fprintf(stderr, "usage: durable /ABSOLUTE/DIR add TEXT | durable /ABSOLUTE/DIR work\n");
        return 2;
    }
    struct shmbus_durable dur = {.dir = argv[1], .sync = SHMBUS_SYNC_ALWAYS};
    shmbus_bus *bus;
    shmbus_client *me;
    /* Creates the bus, or rebuilds it from the journal after a reboot, or opens it. */
    int r = shmbus_bus_open_durable("jobs", NULL, &dur, SHMBUS_OPEN_CREATE, &bus);
    if (r < 0) {
        fprintf(stderr, "durable: %s: %s\n", argv[1], shmbus_strerror(r));
        return 1;
    }
    int adding = strcmp(argv[2], "add") == 0;
    /* Id 2 is the worker's mailbox: it keeps the jobs while no worker runs. */
    r = shmbus_join(bus, adding ? 1 : 2, NULL, &me);
    if (r == 0 && adding) {
        r = shmbus_send(me, 2, argv[3], strlen(argv[3]), 0, 1000);
        if (r == -EHOSTUNREACH)
            fprintf(stderr, "durable: start a worker first (durable %s work)\n", argv[1]);
        shmbus_leave(me);
    } else if (r == 0) {
        char job[1024];
        struct shmbus_msg m;
        while ((r = shmbus_peek(me, &m, job, sizeof(job), -1)) >= 0) {
            printf("doing: %.*s\n", r, job);
            fflush(stdout);
            shmbus_consume(me); /* done: taken for good */
        }
        shmbus_leave_keep(me); /* jobs that arrive later wait for the next worker */
    }
    if (r < 0)
        fprintf(stderr, "durable: %s\n", shmbus_strerror(r));
    shmbus_bus_close(bus);
    return r < 0;
}
