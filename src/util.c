/*
 * util.c - layout arithmetic, names, clocks, error text and latency histograms.
 *
 * Nothing here touches a segment: these are the pure functions the rest builds on.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static uint64_t round_up(uint64_t v, uint64_t to)
{
    return (v + to - 1) / to * to;
}

/* The default ring: room for `slots` of the largest records, rounded down to a power of two
 * (so a default bus, 256 x 1 KiB, is no larger than layout 2's), but never under two of
 * them (rounded up). */
static uint64_t default_ring_units(uint32_t slots, uint32_t rec)
{
    uint64_t want = (uint64_t)slots * rec, u = 1;
    while (u * 2 <= want)
        u *= 2;
    while (u < 2ull * rec)
        u *= 2;
    return u;
}

int sb__layout(struct sb_layout *lay, uint32_t max_clients, uint32_t slots, uint32_t msg_size,
               uint64_t ring_bytes)
{
    if (max_clients < 1 || max_clients > SHMBUS_MAX_CLIENTS)
        return -EINVAL;
    if (slots < 2 || slots > SHMBUS_MAX_SLOTS || (slots & (slots - 1)) != 0)
        return -EINVAL;
    if (msg_size < 1 || msg_size > SHMBUS_MAX_MSG_SIZE)
        return -EINVAL;
    uint32_t rec = sb__rec_units(msg_size);
    uint64_t units;
    if (ring_bytes == 0) {
        units = default_ring_units(slots, rec);
    } else {
        if (ring_bytes % SB_UNIT != 0)
            return -EINVAL;
        units = ring_bytes / SB_UNIT;
        if ((units & (units - 1)) != 0 || units < 2ull * rec)
            return -EINVAL;
    }
    if (units > SB_MAX_RING)
        return ring_bytes == 0 ? -EFBIG : -EINVAL;
    lay->max_clients = max_clients;
    lay->slots = slots;
    lay->msg_size = msg_size;
    lay->ring_units = (uint32_t)units;
    lay->ring_shift = 0;
    while ((1ull << lay->ring_shift) < units)
        lay->ring_shift++;
    lay->entry_size = round_up(sizeof(struct sb_entry), SB_LINE);
    lay->mbox_size = sizeof(struct sb_mbox) + units * SB_UNIT; /* a multiple of 4 KiB or less */
    lay->mbox_size = round_up(lay->mbox_size, 4096);
    lay->registry_off = SB_HEADER_SIZE;
    lay->mbox_off = round_up(lay->registry_off + (uint64_t)max_clients * lay->entry_size, 4096);
    lay->flows_off = lay->mbox_off + (uint64_t)max_clients * lay->mbox_size;
    lay->flow_row_size =
        round_up(sizeof(struct sb_flow_row) + (uint64_t)max_clients * sizeof(uint64_t), SB_LINE);
    lay->tap_off = lay->flows_off + (uint64_t)max_clients * lay->flow_row_size;
    lay->group_off = round_up(lay->tap_off + sb__tap_size(), SB_LINE);
    lay->group_size =
        round_up(sizeof(struct sb_group) + (uint64_t)max_clients * sizeof(uint32_t), SB_LINE);
    lay->inflight_slot = round_up(sizeof(struct sb_inflight) + (uint64_t)msg_size, SB_LINE);
    lay->inflight_size = (uint64_t)SB_INFLIGHT * lay->inflight_slot;
    lay->inflight_off = round_up(lay->group_off + SB_GROUPS * lay->group_size, 4096);
    lay->tap_bulk_off =
        round_up(lay->inflight_off + (uint64_t)max_clients * lay->inflight_size, 4096);
    lay->total_size = lay->tap_bulk_off + SB_TAP_BULK;
    /* 64 GiB: far beyond what a sane bus needs, and keeps every product above in range. */
    if (lay->total_size > SHMBUS_MAX_BUS_SIZE)
        return -EFBIG;
    return 0;
}

bool sb__valid_name(const char *name)
{
    if (name == NULL)
        return false;
    size_t n = strnlen(name, SHMBUS_NAME_MAX + 1);
    if (n == 0 || n > SHMBUS_NAME_MAX)
        return false;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

uint64_t sb__realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sb__abs_deadline(struct timespec *ts, uint64_t ns_from_now)
{
    uint64_t t = sb__now_ns() + ns_from_now;
    ts->tv_sec = (time_t)(t / 1000000000ull);
    ts->tv_nsec = (long)(t % 1000000000ull);
}

uint64_t sb__deadline(int timeout_ms)
{
    if (timeout_ms == 0)
        return 0;
    if (timeout_ms < 0)
        return UINT64_MAX;
    return sb__now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

const char *shmbus_version(void)
{
    return SHMBUS_VERSION_STRING;
}

const char *shmbus_strerror(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case 0:
        return "success";
    case ENOENT:
        return "no such bus";
    case EEXIST:
        return "already exists";
    case EPROTO:
        return "not a shmbus bus (the key file names a foreign segment)";
    case EPROTONOSUPPORT:
        return "incompatible shmbus layout version";
    case EUCLEAN:
        return "not a shmbus key file (remove it with `shmbus destroy --force`)";
    case EFBIG:
        return "bus too large (over the 64 GiB limit)";
    case EBUSY:
        return "another process holds the bus directory's lock";
    case EINTR:
        return "interrupted by a signal";
    case EBADMSG:
        return "corrupt bus segment";
    case EIDRM:
        return "bus was destroyed";
    case EHOSTUNREACH:
        return "no such client on the bus";
    case ECONNRESET:
        return "destination client died";
    case EMSGSIZE:
        return "message too large";
    case EAGAIN:
        return "would block";
    case ETIMEDOUT:
        return "timed out";
    case EUSERS:
        return "bus is full (no free client id)";
    case EROFS:
        return "bus is attached read-only";
    case EINVAL:
        return "invalid argument";
    case EACCES:
        return "permission denied";
    case EPERM:
        return "operation not permitted";
    case ENOMEM:
        return "out of memory";
    case ENOSPC:
        return "no space for the segment (see kernel.shmmax / shmall / shmmni)";
    case ENAMETOOLONG:
        return "name too long";
    default:
        return strerror(err);
    }
}

/* Log-linear: bucket 4k+j (k >= 0, j in 0..3) starts at 2^k * (4 + j) / 4 ns, below 4 ns
 * buckets are exact nanoseconds. 128 buckets reach 2^32 ns (about 4.3 s); the last bucket
 * holds everything above. Each bucket is at most 25% wide: p99 is exact to that. */
uint64_t shmbus_hist_value(unsigned b)
{
    if (b < 4)
        return b;
    unsigned k = b / 4 - 1, j = b % 4;
    return ((uint64_t)(4 + j) << k) / 1;
}

unsigned shmbus_hist_bucket(uint64_t ns)
{
    if (ns < 4)
        return (unsigned)ns;
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns); /* ns in [2^msb, 2^(msb+1)) */
    unsigned k = msb - 2;                               /* value = (4+j) << k */
    unsigned j = (unsigned)((ns >> k) - 4);
    unsigned b = 4 * (k + 1) + j;
    return b < SHMBUS_LAT_BUCKETS ? b : SHMBUS_LAT_BUCKETS - 1;
}

uint64_t shmbus_hist_percentile(const uint64_t *hist, double p)
{
    if (hist == NULL || !(p > 0.0) || p > 100.0)
        return 0;
    uint64_t total = 0;
    for (unsigned b = 0; b < SHMBUS_LAT_BUCKETS; b++)
        total += hist[b];
    if (total == 0)
        return 0;
    double want = p / 100.0 * (double)total;
    uint64_t seen = 0;
    for (unsigned b = 0; b < SHMBUS_LAT_BUCKETS; b++) {
        seen += hist[b];
        if ((double)seen >= want && hist[b] != 0) {
            /* Report the middle of the bucket: the error is then at most half its width. */
            uint64_t lo = shmbus_hist_value(b);
            uint64_t hi = b + 1 < SHMBUS_LAT_BUCKETS ? shmbus_hist_value(b + 1) : lo;
            return lo + (hi - lo) / 2;
        }
    }
    return shmbus_hist_value(SHMBUS_LAT_BUCKETS - 1);
}
