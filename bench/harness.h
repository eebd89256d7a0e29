/*
 * shmbus bench: the measuring harness (harness.c). See the design notes there.
 */
#ifndef SHMBUS_BENCH_HARNESS_H
#define SHMBUS_BENCH_HARNESS_H

#include "internal.h"

struct bench_params {
    int cpu_a;            /* ping and producers; -1: not pinned */
    int cpu_b;            /* pong and the consumer; -1: not pinned */
    uint64_t warmup;      /* round trips before timing starts */
    uint64_t duration_ns; /* how long a measurement runs */
    uint64_t max_iters;   /* round trips at most (closed loop) */
    uint64_t period_ns;   /* open loop: one round trip started every period */
    uint64_t timeout_ns;  /* beyond duration, before a hung side is killed */
};

struct bench_outcome {
    int ok;                  /* 1: measured; 0: skipped or failed, see why */
    char why[BENCH_WHY_LEN]; /* "skipped: ..." or "failed: ..." */
    struct bench_hist hist;  /* round trips (latency runs) */
    uint64_t messages;       /* round trips timed, or messages received (streams) */
    double seconds;          /* wall time of the timed part */
};

/* Round trips of size-byte messages between a ping on CPU A and a pong on CPU B. Closed loop
 * (next ping as soon as the reply is in) or open loop (one ping per period, each timed from
 * its intended send time). 0 or -1 with out->why. */
int bench_run_latency(const struct bench_transport *t, size_t size, int open_loop,
                      const struct bench_params *p, struct bench_outcome *out);

/* nprod producers on CPU A stream size-byte messages for the duration to one consumer on
 * CPU B; out->messages / out->seconds is the rate. 0 or -1 with out->why. */
int bench_run_stream(const struct bench_transport *t, size_t size, int nprod,
                     const struct bench_params *p, struct bench_outcome *out);

/* One process on CPU A calls t->stream_send() in chunks for the duration, with nobody
 * receiving (BENCH_CAP_ALONE); out->messages / out->seconds is the rate. 0 or -1 with
 * out->why. */
int bench_run_alone(const struct bench_transport *t, size_t size, const struct bench_params *p,
                    struct bench_outcome *out);

#endif
