/*
 * stats.c - bus-wide counters and exact per-pair message counts.
 *
 * Design notes
 * ------------
 * What it owns: the flow rows after the mailboxes (struct sb_flow_row in internal.h), one per
 * client id. A row holds the counters of every client that ever had that id: they are never
 * reset at a join (unlike the entry's counters, which describe one client), so a sum over the
 * rows only grows while clients come and go. That is what a Prometheus counter needs; the
 * sums of the entries' counters went down whenever a client left.
 *
 * Per-pair counts: row d's from[s-1] counts the messages a client of id d took from a client
 * of id s. They are counted when taken, not when sent, so a flow exists only if a message
 * really went from s to d. The table is max_clients^2 words (32 KiB for the default 64
 * clients, 128 MiB at the 4096 maximum, beside 1.1 GiB of mailboxes at the default sizes).
 *
 * Writers: a row's send line is written by the sending threads of its id (atomic adds, on
 * a line of its own, so senders of different ids never share one); the receive part and
 * from[] only by the receiving thread of its id, which the API allows one at a time per
 * client, so a load and a store suffice, as for the entry's receive counters. Nothing here
 * orders anything: all accesses are relaxed, and a sum of several counters is not taken at
 * one instant (each is exact, and each only grows).
 *
 * Readers (shmbus_bus_stats(), shmbus_bus_flows()) compute every address from the trusted
 * local layout; the values are plain numbers, so a scribbled one is a wrong count, never a
 * crash. A process that dies here loses at most the message it was counting.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

void sb__stats_latency(struct sb_flow_row *r, uint64_t ns)
{
    sb__bump(&r->lat_count, 1);
    sb__bump(&r->lat_sum_ns, ns);
    sb__bump(&r->lat_hist[shmbus_hist_bucket(ns)], 1);
}

int shmbus_bus_stats(shmbus_bus *b, struct shmbus_bus_stats *out)
{
    if (b == NULL || out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if (sb__destroyed(b))
        return -EIDRM;
    for (uint32_t id = 1; id <= b->lay.max_clients; id++) {
        struct sb_flow_row *r = sb__flow_row(b, id);
        out->sent += atomic_load_explicit(&r->sent, memory_order_relaxed);
        out->bytes_sent += atomic_load_explicit(&r->bytes_sent, memory_order_relaxed);
        out->received += atomic_load_explicit(&r->received, memory_order_relaxed);
        out->bytes_received += atomic_load_explicit(&r->bytes_received, memory_order_relaxed);
        out->lat_count += atomic_load_explicit(&r->lat_count, memory_order_relaxed);
        out->lat_sum_ns += atomic_load_explicit(&r->lat_sum_ns, memory_order_relaxed);
        for (unsigned k = 0; k < SHMBUS_LAT_BUCKETS; k++)
            out->lat_hist[k] += atomic_load_explicit(&r->lat_hist[k], memory_order_relaxed);
    }
    return 0;
}

int shmbus_bus_flows(shmbus_bus *b, struct shmbus_flow *out, size_t n)
{
    if (b == NULL || (out == NULL && n != 0))
        return -EINVAL;
    if (sb__destroyed(b))
        return -EIDRM;
    size_t count = 0;
    for (uint32_t src = 1; src <= b->lay.max_clients; src++) {
        for (uint32_t dst = 1; dst <= b->lay.max_clients; dst++) {
            uint64_t v =
                atomic_load_explicit(sb__flow_cell(sb__flow_row(b, dst), src), memory_order_relaxed);
            if (v == 0)
                continue;
            if (count < n) {
                out[count].src = src;
                out[count].dst = dst;
                out[count].messages = v;
            }
            count++;
        }
    }
    return count > INT32_MAX ? INT32_MAX : (int)count;
}
