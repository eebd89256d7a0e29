/* bench.h - shmbus-bridge --bench (bench.c). */
#ifndef SHMBUS_BRIDGE_BENCH_H
#define SHMBUS_BRIDGE_BENCH_H

/* Measure `count` round trips straight through the NATS server at url and as many across
 * two bridges (this program, `self`, run twice as children on two temporary buses); print
 * the medians, 99th percentiles and their ratio. spin_us: --spin for the bridges and the
 * two bus clients (0: sleep at once). Returns the exit status (0 or 1). */
int bridge_bench(const char *self, const char *url, int count, int spin_us);

#endif
