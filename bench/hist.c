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

/* ---- self-test (shmbus-bench --self-test, run by tests/test_bench_hist.sh) ---- */

static int near(uint64_t got, uint64_t want, double rel)
{
    double d = (double)got - (double)want;
    return (d < 0 ? -d : d) <= rel * (double)want + 1.0;
}

int bench_hist_selftest(FILE *out)
{
    static struct bench_hist h;
    int bad = 0;
    bench_hist_init(&h);
    if (bench_hist_quantile(&h, 0.5) != 0) {
        fprintf(out, "empty histogram: quantile is not 0\n");
        bad++;
    }
    for (uint64_t v = 0; v < 64; v++)
        bench_hist_add(&h, v);
    if (bench_hist_quantile(&h, 0.5) != 31 || bench_hist_quantile(&h, 1.0) != 63) {
        fprintf(out, "values below 64 are not exact\n");
        bad++;
    }
    bench_hist_init(&h);
    for (uint64_t v = 1; v <= 1000000; v++)
        bench_hist_add(&h, v);
    const double qs[] = {0.5, 0.9, 0.99, 0.999};
    for (int i = 0; i < 4; i++) {
        uint64_t want = (uint64_t)(qs[i] * 1e6), got = bench_hist_quantile(&h, qs[i]);
        if (!near(got, want, 1.0 / 100)) {
            fprintf(out, "uniform 1..1e6: q%g = %llu, want about %llu\n", qs[i],
                    (unsigned long long)got, (unsigned long long)want);
            bad++;
        }
    }
    if (h.min != 1 || h.max != 1000000 || h.count != 1000000) {
        fprintf(out, "uniform 1..1e6: min/max/count wrong\n");
        bad++;
    }
    /* One value at a time, over 40 powers of two: the reported value is within 1/128. */
    for (uint64_t v = 65; v < (1ull << 41); v = v * 3 / 2 + 7) {
        bench_hist_init(&h);
        bench_hist_add(&h, v);
        bench_hist_add(&h, v);
        bench_hist_add(&h, 2 * v);
        uint64_t got = bench_hist_quantile(&h, 0.5);
        if (!near(got, v, 1.0 / 128)) {
            fprintf(out, "value %llu reported as %llu\n", (unsigned long long)v,
                    (unsigned long long)got);
            bad++;
        }
    }
    bench_hist_init(&h);
    bench_hist_add(&h, 1ull << 50); /* past the last bucket: clamped, max still exact */
    if (bench_hist_quantile(&h, 0.5) != 1ull << 50) {
        fprintf(out, "a value past the last bucket is not reported as itself\n");
        bad++;
    }
    fprintf(out, "histogram self-test: %s\n", bad ? "FAILED" : "ok");
    return bad ? -1 : 0;
}
