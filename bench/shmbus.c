/*
 * shmbus as rows of the benchmark: three receiver modes, and the ring scale test.
 *
 * Design notes
 * - Built against libshmbus only when the bench module finds the library (BENCH_HAVE_SHMBUS);
 *   otherwise every shmbus row says "skipped: library not ready".
 */
#include "results.h"

#include <stdio.h>
#include <string.h>

static const char *not_ready(size_t size, char *why, size_t whylen)
{
    (void)size;
    (void)why;
    (void)whylen;
    return bench_shmbus_unavailable();
}

const char *bench_shmbus_unavailable(void)
{
    return "library not ready (libshmbus was not built when the bench was)";
}

const struct bench_transport bench_shmbus_spin = {
    .name = "shmbus-spin",
    .about = "libshmbus, receiver spins",
    .kind = BENCH_SHMBUS,
    .wait = BENCH_SPIN,
    .caps = BENCH_CAP_LATENCY | BENCH_CAP_STREAM,
    .probe = not_ready,
};

const struct bench_transport bench_shmbus_sleep = {
    .name = "shmbus-sleep",
    .about = "libshmbus, receiver sleeps on its semaphore",
    .kind = BENCH_SHMBUS,
    .wait = BENCH_SLEEP,
    .caps = BENCH_CAP_LATENCY | BENCH_CAP_STREAM,
    .probe = not_ready,
};

const struct bench_transport bench_shmbus_default = {
    .name = "shmbus-default",
    .about = "libshmbus, default: bounded spin, then sleep",
    .kind = BENCH_SHMBUS,
    .wait = BENCH_HYBRID,
    .caps = BENCH_CAP_LATENCY | BENCH_CAP_STREAM | BENCH_CAP_FANIN,
    .probe = not_ready,
};

void bench_measure_scale(struct bench_run *r, const int *clients, int n,
                         void (*progress)(const char *))
{
    r->nscale = 0;
    for (int i = 0; i < n && i < BENCH_MAX_SCALE; i++) {
        struct bench_scale *s = &r->scale[r->nscale++];
        char line[64];
        snprintf(line, sizeof(line), "shmbus ring, %d clients", clients[i]);
        progress(line);
        memset(s, 0, sizeof(*s));
        s->clients = clients[i];
        snprintf(s->why, sizeof(s->why), "skipped: %s", bench_shmbus_unavailable());
    }
}
