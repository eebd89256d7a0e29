/*
 * A log-linear latency histogram, in the manner of HdrHistogram (no such library is packaged
 * in Debian 12, and this one is forty lines).
 *
 * Design notes
 * - Bucket i < 64 holds exactly the value i (ns). Above that, a value v with its highest bit at
 *   position e (e >= 6) falls in one of 64 equal buckets covering [2^e, 2^(e+1)): the bucket is
 *   the next 6 bits below the top one. So the width of a bucket is 1/64 of its lower bound and
 *   the reported midpoint is within 1/128 of every value in it.
 * - Recording is a few shifts and an increment, cheap enough to do on every round trip inside
 *   the timed loop. Values past the last bucket are clamped into it; min and max are exact.
 * - A histogram is written by one process only (the measuring child) in shared memory, then read
 *   by the parent after that child has exited: no atomics needed.
 */
#include "internal.h"

#include <string.h>

void bench_hist_init(struct bench_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static int bucket_of(uint64_t v)
{
    if (v < BENCH_HIST_SUB)
        return (int)v;
    int e = 63 - __builtin_clzll(v); /* e >= 6 */
    if (e >= BENCH_HIST_EXP)
        return BENCH_HIST_BUCKETS - 1;
    int sub = (int)((v >> (e - 6)) & (BENCH_HIST_SUB - 1));
    return BENCH_HIST_SUB + (e - 6) * BENCH_HIST_SUB + sub;
}

/* The midpoint of bucket i, in ns. */
static uint64_t value_of(int i)
{
    if (i < BENCH_HIST_SUB)
        return (uint64_t)i;
    int e = 6 + (i - BENCH_HIST_SUB) / BENCH_HIST_SUB;
    uint64_t sub = (uint64_t)((i - BENCH_HIST_SUB) % BENCH_HIST_SUB);
    uint64_t lo = (BENCH_HIST_SUB + sub) << (e - 6);
    return lo + ((1ull << (e - 6)) >> 1);
}

void bench_hist_add(struct bench_hist *h, uint64_t ns)
{
    h->bucket[bucket_of(ns)]++;
    h->count++;
    h->sum += (double)ns;
    if (ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
}

uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q >= 1.0)
        return h->max;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count)
        rank++; /* ceil: the smallest value with at least q of the samples at or below it */
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t v = value_of(i);
            if (v < h->min)
                v = h->min;
            if (v > h->max)
                v = h->max;
            return v;
        }
    }
    return h->max;
}
