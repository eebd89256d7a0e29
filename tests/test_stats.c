/*
 * test_stats.c - bus-wide counters and per-pair counts (src/stats.c): exact, by sender and
 * receiver, and never lower after clients leave, rejoin or are replaced under their id.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static void send_n(shmbus_client *c, uint32_t dst, int n, const char *text)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(shmbus_send(c, dst, text, strlen(text), 0, 1000), 0);
}

static void recv_n(shmbus_client *c, int n)
{
    char buf[64];
    struct shmbus_msg m;
    for (int i = 0; i < n; i++)
        assert_true(shmbus_recv(c, &m, buf, sizeof(buf), 1000) >= 0);
}

/* messages from src to dst in the flow table, 0 if absent; also checks nothing unexpected
 * is there (only pairs in `allowed`, a list of src*100+dst). */
static uint64_t flow(shmbus_bus *b, uint32_t src, uint32_t dst, const int *allowed, int nallowed)
{
    struct shmbus_flow f[32];
    int n = shmbus_bus_flows(b, f, 32);
    uint64_t v = 0;
    assert_true(n >= 0 && n <= 32);
    for (int i = 0; i < n; i++) {
        int ok = 0;
        for (int k = 0; k < nallowed; k++)
            ok |= allowed[k] == (int)(f[i].src * 100 + f[i].dst);
        if (!ok)
            fail_msg("unexpected flow %u -> %u (%llu)", f[i].src, f[i].dst,
                     (unsigned long long)f[i].messages);
        if (i > 0)
            assert_true(f[i - 1].src < f[i].src ||
                        (f[i - 1].src == f[i].src && f[i - 1].dst < f[i].dst));
        if (f[i].src == src && f[i].dst == dst)
            v = f[i].messages;
    }
    return v;
}

static void assert_not_lower(const struct shmbus_bus_stats *now,
                             const struct shmbus_bus_stats *then)
{
    assert_true(now->sent >= then->sent);
    assert_true(now->received >= then->received);
    assert_true(now->bytes_sent >= then->bytes_sent);
    assert_true(now->bytes_received >= then->bytes_received);
    assert_true(now->lat_count >= then->lat_count);
    assert_true(now->lat_sum_ns >= then->lat_sum_ns);
    for (unsigned k = 0; k < SHMBUS_LAT_BUCKETS; k++)
        assert_true(now->lat_hist[k] >= then->lat_hist[k]);
}

static void test_counts_add_up(void **state)
{
    (void)state;
    shmbus_bus *b = th_open_bus("stats", 4, 16, 64);
    shmbus_client *a, *bb, *c;
    struct shmbus_bus_stats s0, s1, s2, s3;
    static const int pairs[] = {102, 203, 301, 302};

    assert_int_equal(shmbus_bus_stats(b, &s0), 0);
    assert_int_equal(s0.sent + s0.received + s0.lat_count, 0);
    assert_int_equal(shmbus_bus_flows(b, NULL, 0), 0);
    assert_int_equal(shmbus_join(b, 1, "a", &a), 0);
    assert_int_equal(shmbus_join(b, 2, "b", &bb), 0);
    assert_int_equal(shmbus_join(b, 3, "c", &c), 0);
    send_n(a, 2, 3, "abc");
    send_n(bb, 3, 2, "hello");
    recv_n(bb, 3);
    recv_n(c, 2);
    /* A batch, taken by recv_batch's fast path. */
    struct shmbus_iov iov[4] = {{"w", 1}, {"x", 1}, {"y", 1}, {"z", 1}};
    assert_int_equal(shmbus_send_batch(c, 1, iov, 4, 0, 1000), 4);
    struct shmbus_msg hdrs[4];
    char bufs[4][64];
    int got = 0;
    while (got < 4) {
        int r = shmbus_recv_batch(a, hdrs, bufs, 64, 4 - (size_t)got, 1000);
        assert_true(r > 0);
        got += r;
    }
    assert_int_equal(shmbus_bus_stats(b, &s1), 0);
    assert_int_equal(s1.sent, 9);
    assert_int_equal(s1.received, 9);
    assert_int_equal(s1.bytes_sent, 3 * 3 + 2 * 5 + 4);
    assert_int_equal(s1.bytes_received, 3 * 3 + 2 * 5 + 4);
    assert_int_equal(flow(b, 1, 2, pairs, 4), 3);
    assert_int_equal(flow(b, 2, 3, pairs, 3), 2);
    assert_int_equal(flow(b, 3, 1, pairs, 3), 4);

    /* The latency samples are those of the clients' histograms, with a sum. */
    struct shmbus_client_info ci[4];
    int n = shmbus_list(b, ci, 4);
    uint64_t samples = 0, hist_total = 0;
    for (int i = 0; i < n; i++)
        for (unsigned k = 0; k < SHMBUS_LAT_BUCKETS; k++)
            samples += ci[i].counters.lat_hist[k];
    for (unsigned k = 0; k < SHMBUS_LAT_BUCKETS; k++)
        hist_total += s1.lat_hist[k];
    assert_int_equal(s1.lat_count, samples);
    assert_int_equal(hist_total, samples);
    assert_true(samples > 0);
    assert_true(s1.lat_sum_ns > 0);

    /* Clients leave: nothing goes down (the clients' own counters go with them). */
    shmbus_leave(a);
    shmbus_leave(bb);
    assert_int_equal(shmbus_bus_stats(b, &s2), 0);
    assert_not_lower(&s2, &s1);
    assert_int_equal(s2.sent, 9);
    assert_int_equal(flow(b, 1, 2, pairs, 3), 3);

    /* A new client under id 1 adds to id 1's flows; a message sent and not yet taken is
     * sent but not received, and no flow until it is taken. */
    assert_int_equal(shmbus_join(b, 1, "a2", &a), 0);
    assert_int_equal(shmbus_join(b, 2, NULL, &bb), 0);
    send_n(a, 2, 1, "again");
    send_n(c, 2, 1, "pending");
    assert_int_equal(shmbus_bus_stats(b, &s3), 0);
    assert_not_lower(&s3, &s2);
    assert_int_equal(s3.sent, 11);
    assert_int_equal(s3.received, 9);
    assert_int_equal(flow(b, 3, 2, pairs, 4), 0);
    recv_n(bb, 2);
    assert_int_equal(flow(b, 1, 2, pairs, 4), 4);
    assert_int_equal(flow(b, 3, 2, pairs, 4), 1);
    assert_int_equal(shmbus_bus_stats(b, &s3), 0);
    assert_int_equal(s3.received, 11);

    shmbus_leave(a);
    shmbus_leave(bb);
    shmbus_leave(c);
    assert_int_equal(shmbus_bus_stats(NULL, &s3), -EINVAL);
    assert_int_equal(shmbus_bus_flows(b, NULL, 3), -EINVAL);
    th_close_bus(b);
}

int main(void)
{
    th_filter_from_env();
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_counts_add_up)};
    return cmocka_run_group_tests(tests, NULL, th_cleanup);
}
