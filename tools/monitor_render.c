/*
 * monitor_render.c - a sample of the bus as JSON and as Prometheus text.
 *
 * Design notes
 * ------------
 * Everything here is a pure function of a struct sb_mon_snap: no locks, no segment access.
 * Client names come from the segment, which is hostile (STYLE.md rule 4): they are read up
 * to their fixed size only and escaped byte by byte, so a scribbled name can make the output
 * ugly but never invalid JSON or an invalid metrics line.
 *
 * Counts that add up. The bus's totals, rates and latency come from the bus's own counters
 * (shmbus_bus_stats()), which only grow while clients come and go; sums over the clients
 * listed now went down whenever one left. Edges are the library's exact per-pair counts
 * (shmbus_bus_flows(): messages taken by id d from id s), so only flows that happened are
 * drawn, each with its measured rate.
 *
 * No data is not 0: a rate that cannot be known yet (first sample) is null in JSON, and a
 * percentile of an empty histogram is null in JSON and left out of /metrics, rather than a
 * 0 that reads as "instant".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "monitor.h"

void sb_mon_buf_put(struct sb_mon_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sb_mon_buf_puts(struct sb_mon_buf *b, const char *s)
{
    sb_mon_buf_put(b, s, strlen(s));
}

void sb_mon_buf_printf(struct sb_mon_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        sb_mon_buf_put(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_mon_buf_put(b, big, (size_t)n);
    free(big);
}

void sb_mon_buf_free(struct sb_mon_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* A fixed-size name field from the segment: its length up to the first NUL, at most size. */
static size_t field_len(const char *s, size_t size)
{
    const char *nul = memchr(s, '\0', size);
    return nul ? (size_t)(nul - s) : size;
}

static void buf_put(void *ctx, const char *s, size_t n)
{
    sb_mon_buf_put(ctx, s, n);
}

/* s as a JSON string, plain ASCII (tools/json.h with utf8 off): names are [A-Za-z0-9._-] by
 * contract, so the escapes only ever show in a corrupted one. */
static void json_str(struct sb_mon_buf *b, const char *s, size_t n)
{
    sb_json_escape(s, n, 0, buf_put, b);
}

static const char *state_name(enum shmbus_client_state st)
{
    switch (st) {
    case SHMBUS_CLIENT_LIVE:
        return "live";
    case SHMBUS_CLIENT_DEAD:
        return "dead";
    case SHMBUS_CLIENT_JOINING:
        return "joining";
    case SHMBUS_CLIENT_KEPT:
        return "kept";
    }
    return "unknown";
}

/* A rate with a sensible number of digits; JSON has no NaN or infinity, so those become 0. */
static void json_rate(struct sb_mon_buf *b, const char *key, double v)
{
    if (!(v >= 0 && v < 1e18))
        v = 0;
    sb_mon_buf_printf(b, "\"%s\":%.2f", key, v);
}

/* A rate, or null when it is not known yet. */
static void json_rate_or_null(struct sb_mon_buf *b, const char *key, double v, int known)
{
    if (known)
        json_rate(b, key, v);
    else
        sb_mon_buf_printf(b, "\"%s\":null", key);
}

/* "latency_ns":{"samples":N,"p50":..,"p90":..,"p99":..}: null percentiles without samples. */
static void json_latency(struct sb_mon_buf *b, uint64_t samples, uint64_t p50, uint64_t p90,
                         uint64_t p99)
{
    sb_mon_buf_printf(b, "\"latency_ns\":{\"samples\":%llu,", (unsigned long long)samples);
    if (samples == 0)
        sb_mon_buf_puts(b, "\"p50\":null,\"p90\":null,\"p99\":null}");
    else
        sb_mon_buf_printf(b, "\"p50\":%llu,\"p90\":%llu,\"p99\":%llu}", (unsigned long long)p50,
                          (unsigned long long)p90, (unsigned long long)p99);
}

static void json_bus(const struct sb_mon_snap *s, struct sb_mon_buf *b)
{
    const struct shmbus_bus_info *bi = &s->bus;
    sb_mon_buf_puts(b, "\"bus\":{\"name\":");
    json_str(b, bi->name, field_len(bi->name, sizeof(bi->name)));
    /* live_clients and dead_clients count the rows of "clients", as `shmbus ls` does. */
    sb_mon_buf_printf(b,
                      ",\"max_clients\":%u,\"slots\":%u,\"msg_size\":%u,\"mode\":\"0%o\","
                      "\"layout_version\":%u,\"creator_uid\":%u,\"creator_pid\":%d,\"shmid\":%d,"
                      "\"segment_size\":%zu,\"attached\":%u,\"live_clients\":%u,"
                      "\"dead_clients\":%u,\"created_ns\":%llu,\"ring_bytes\":%llu}",
                      bi->max_clients, bi->slots, bi->msg_size, bi->mode, bi->layout_version,
                      (unsigned)bi->creator_uid, (int)bi->creator_pid, bi->shmid, bi->segment_size,
                      bi->attached, s->live, s->dead, (unsigned long long)bi->created_ns,
                      (unsigned long long)bi->ring_bytes);
}

static void json_client(const struct sb_mon_client *mc, struct sb_mon_buf *b)
{
    const struct shmbus_client_info *ci = &mc->info;
    const struct shmbus_counters *k = &ci->counters;
    sb_mon_buf_printf(b, "{\"id\":%u,\"name\":", ci->id);
    json_str(b, ci->name, field_len(ci->name, sizeof(ci->name)));
    sb_mon_buf_printf(b,
                      ",\"state\":\"%s\",\"pid\":%d,\"depth\":%u,\"capacity\":%u,"
                      "\"joined_ns\":%llu,\"sent\":%llu,\"received\":%llu,\"bytes_sent\":%llu,"
                      "\"bytes_received\":%llu,\"full_waits\":%llu,\"wakeups\":%llu,"
                      "\"spins\":%llu,\"dropped\":%llu,\"lost\":%llu,",
                      state_name(ci->state), (int)ci->pid, ci->depth, ci->capacity,
                      (unsigned long long)ci->joined_ns, (unsigned long long)k->sent,
                      (unsigned long long)k->received, (unsigned long long)k->bytes_sent,
                      (unsigned long long)k->bytes_received, (unsigned long long)k->full_waits,
                      (unsigned long long)k->wakeups, (unsigned long long)k->spins,
                      (unsigned long long)k->dropped, (unsigned long long)k->lost);
    json_rate_or_null(b, "sent_rate", mc->sent_rate, mc->has_rate);
    sb_mon_buf_puts(b, ",");
    json_rate_or_null(b, "recv_rate", mc->recv_rate, mc->has_rate);
    sb_mon_buf_puts(b, ",");
    json_latency(b, mc->samples, mc->p50, mc->p90, mc->p99);
    sb_mon_buf_puts(b, "}");
}

/* A named group: who is in it, who leads, what went through it. */
static void json_group(const struct sb_mon_snap *s, size_t i, struct sb_mon_buf *b)
{
    const struct shmbus_group_info *g = &s->groups[i];
    sb_mon_buf_printf(b, "{\"index\":%u,\"name\":", g->index);
    json_str(b, g->name, field_len(g->name, sizeof(g->name)));
    sb_mon_buf_printf(b,
                      ",\"members\":%u,\"leader\":%u,\"epoch\":%llu,\"published\":%llu,"
                      "\"missed\":%llu,\"queued\":%llu,\"elections\":%llu,\"redelivered\":%llu,"
                      "\"lost\":%llu,",
                      g->members, g->leader, (unsigned long long)g->epoch,
                      (unsigned long long)g->published, (unsigned long long)g->missed,
                      (unsigned long long)g->queued, (unsigned long long)g->elections,
                      (unsigned long long)g->redelivered, (unsigned long long)g->lost);
    json_rate(b, "rate", s->group_rate[i]);
    sb_mon_buf_puts(b, "}");
}

/* A NATS bridge of the bus (its state file, read by the sampler): every number it counts. */
static void json_bridge(const struct sb_mon_bridge *br, struct sb_mon_buf *b)
{
    sb_mon_buf_puts(b, "{\"name\":");
    json_str(b, br->name, field_len(br->name, sizeof(br->name)));
    sb_mon_buf_puts(b, ",\"node\":");
    json_str(b, br->node, field_len(br->node, sizeof(br->node)));
    sb_mon_buf_printf(
        b,
        ",\"up\":%s,\"jetstream\":%s,\"out_msgs\":%llu,\"out_bytes\":%llu,\"in_msgs\":%llu,"
        "\"in_bytes\":%llu,\"queue\":%llu,\"nats_buffered\":%llu,\"topic_out\":%llu,"
        "\"topic_in\":%llu,\"queue_out\":%llu,\"queue_in\":%llu,\"requests_out\":%llu,"
        "\"replies_in\":%llu,\"requests_in\":%llu,\"replies_out\":%llu,"
        "\"error_replies\":%llu,\"servers\":%llu,\"lost\":%llu,\"dropped_slow\":%llu,"
        "\"undeliverable\":%llu,\"bad\":%llu,\"errors\":%llu,\"disconnects\":%llu,"
        "\"reconnects\":%llu,\"last_error\":",
        br->up ? "true" : "false", br->jetstream ? "true" : "false",
        (unsigned long long)br->out_msgs, (unsigned long long)br->out_bytes,
        (unsigned long long)br->in_msgs, (unsigned long long)br->in_bytes,
        (unsigned long long)br->queue, (unsigned long long)br->nats_buffered,
        (unsigned long long)br->topic_out, (unsigned long long)br->topic_in,
        (unsigned long long)br->queue_out, (unsigned long long)br->queue_in,
        (unsigned long long)br->requests_out, (unsigned long long)br->replies_in,
        (unsigned long long)br->requests_in, (unsigned long long)br->replies_out,
        (unsigned long long)br->error_replies, (unsigned long long)br->servers,
        (unsigned long long)br->lost, (unsigned long long)br->dropped_slow,
        (unsigned long long)br->undeliverable, (unsigned long long)br->bad,
        (unsigned long long)br->errors, (unsigned long long)br->disconnects,
        (unsigned long long)br->reconnects);
    json_str(b, br->last_error, field_len(br->last_error, sizeof(br->last_error)));
    sb_mon_buf_puts(b, "}");
}

/* The flows (see the design notes): every pair of ids a message went between, with its
 * count since the bus was made and its rate over the last interval (null at first). */
static void json_edges(const struct sb_mon_snap *s, struct sb_mon_buf *b)
{
    sb_mon_buf_puts(b, "\"edges\":[");
    for (size_t i = 0; i < s->nflows; i++) {
        const struct sb_mon_flow *f = &s->flows[i];
        sb_mon_buf_printf(b, "%s{\"from\":%u,\"to\":%u,\"messages\":%llu,", i ? "," : "", f->f.src,
                          f->f.dst, (unsigned long long)f->f.messages);
        json_rate_or_null(b, "rate", f->rate, f->has_rate);
        sb_mon_buf_puts(b, "}");
    }
    sb_mon_buf_puts(b, "]");
}

/* The bus-wide histogram, cut after its last non-empty bucket, with each bucket's lower
 * bound: [[lower_ns, count], ...]. */
static void json_hist(const struct sb_mon_snap *s, struct sb_mon_buf *b)
{
    unsigned last = 0;
    for (unsigned i = 0; i < SHMBUS_LAT_BUCKETS; i++)
        if (s->stats.lat_hist[i])
            last = i + 1;
    sb_mon_buf_puts(b, "\"latency_hist\":[");
    for (unsigned i = 0; i < last; i++)
        sb_mon_buf_printf(b, "%s[%llu,%llu]", i ? "," : "",
                          (unsigned long long)shmbus_hist_value(i),
                          (unsigned long long)s->stats.lat_hist[i]);
    sb_mon_buf_puts(b, "]");
}

void sb_mon_render_json(const struct sb_mon_snap *s, struct sb_mon_buf *b)
{
    sb_mon_buf_printf(b, "{\"version\":\"%s\",\"seq\":%llu,\"time_ms\":%llu,\"interval_ms\":%u,",
                      shmbus_version(), (unsigned long long)s->seq, (unsigned long long)s->time_ms,
                      s->interval_ms);
    if (s->err) {
        sb_mon_buf_puts(b, "\"error\":");
        const char *why = shmbus_strerror(s->err);
        json_str(b, why, strlen(why));
        sb_mon_buf_puts(b, ",");
    } else {
        sb_mon_buf_puts(b, "\"error\":null,");
    }
    json_bus(s, b);
    /* The bus's own counters: they never go down (see the design notes). */
    sb_mon_buf_printf(b,
                      ",\"totals\":{\"sent\":%llu,\"received\":%llu,\"bytes_sent\":%llu,"
                      "\"bytes_received\":%llu,",
                      (unsigned long long)s->stats.sent, (unsigned long long)s->stats.received,
                      (unsigned long long)s->stats.bytes_sent,
                      (unsigned long long)s->stats.bytes_received);
    json_rate_or_null(b, "sent_rate", s->sent_rate, s->has_rate);
    sb_mon_buf_puts(b, ",");
    json_rate_or_null(b, "recv_rate", s->recv_rate, s->has_rate);
    sb_mon_buf_puts(b, ",");
    json_latency(b, s->stats.lat_count, s->p50, s->p90, s->p99);
    sb_mon_buf_printf(b, ",\"latency_sum_ns\":%llu},", (unsigned long long)s->stats.lat_sum_ns);
    sb_mon_buf_puts(b, "\"clients\":[");
    for (size_t i = 0; i < s->n; i++) {
        if (i)
            sb_mon_buf_puts(b, ",");
        json_client(&s->clients[i], b);
    }
    sb_mon_buf_puts(b, "],\"groups\":[");
    for (size_t i = 0; i < s->ngroups && i < SHMBUS_GROUPS; i++) {
        if (i)
            sb_mon_buf_puts(b, ",");
        json_group(s, i, b);
    }
    sb_mon_buf_puts(b, "],\"bridges\":[");
    for (size_t i = 0; i < s->nbridges; i++) {
        if (i)
            sb_mon_buf_puts(b, ",");
        json_bridge(&s->bridges[i], b);
    }
    sb_mon_buf_puts(b, "],");
    json_edges(s, b);
    sb_mon_buf_puts(b, ",");
    json_hist(s, b);
    sb_mon_buf_puts(b, "}");
}

/* ---------------------------------------------------------------------------------------
 * Prometheus text format 0.0.4: "# HELP name text", "# TYPE name type", then samples
 * `name{label="value",...} number`. Label values escape \ " and newline; help text escapes
 * \ and newline. Our help texts are constants without either.
 * --------------------------------------------------------------------------------------- */

/* A label value. The format has no escape for other bytes and must be UTF-8, so a byte
 * outside printable ASCII (only ever in a corrupted name) is written as '?'. */
static void prom_label_value(struct sb_mon_buf *b, const char *s, size_t n)
{
    sb_mon_buf_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == '"') {
            char esc[2] = {'\\', (char)c};
            sb_mon_buf_put(b, esc, 2);
        } else if (c == '\n') {
            sb_mon_buf_puts(b, "\\n");
        } else if (c < 0x20 || c >= 0x7f) {
            sb_mon_buf_puts(b, "?");
        } else {
            sb_mon_buf_put(b, (const char *)&c, 1);
        }
    }
    sb_mon_buf_puts(b, "\"");
}

static void prom_head(struct sb_mon_buf *b, const char *name, const char *type, const char *help)
{
    sb_mon_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{bus="...",client="ID",name="..."<extra>} */
static void prom_client_labels(struct sb_mon_buf *b, const struct sb_mon_snap *s,
                               const struct sb_mon_client *mc, const char *name, const char *extra)
{
    sb_mon_buf_printf(b, "%s{bus=", name);
    prom_label_value(b, s->bus.name, field_len(s->bus.name, sizeof(s->bus.name)));
    sb_mon_buf_printf(b, ",client=\"%u\",name=", mc->info.id);
    prom_label_value(b, mc->info.name, field_len(mc->info.name, sizeof(mc->info.name)));
    sb_mon_buf_printf(b, "%s} ", extra ? extra : "");
}

/* What each per-client metric reads from a client. */
enum field {
    F_SENT,
    F_RECEIVED,
    F_BYTES_SENT,
    F_BYTES_RECEIVED,
    F_FULL_WAITS,
    F_WAKEUPS,
    F_SPINS,
    F_DROPPED,
    F_LOST,
    F_DEPTH,
    F_CAPACITY,
    F_UP,
    F_P50,
    F_P90,
    F_P99,
};

static const struct metric {
    const char *name, *type, *help;
    enum field field;
} client_metrics[] = {
    {"shmbus_client_sent_messages_total", "counter",
     "Messages the client sent (a broadcast counts each copy).", F_SENT},
    {"shmbus_client_received_messages_total", "counter",
     "Messages the client took from its mailbox.", F_RECEIVED},
    {"shmbus_client_sent_bytes_total", "counter", "Payload bytes the client sent.", F_BYTES_SENT},
    {"shmbus_client_received_bytes_total", "counter", "Payload bytes the client received.",
     F_BYTES_RECEIVED},
    {"shmbus_client_full_waits_total", "counter",
     "Times a send of the client found the destination mailbox full and waited.", F_FULL_WAITS},
    {"shmbus_client_wakeups_total", "counter", "Times the client slept in recv and was woken.",
     F_WAKEUPS},
    {"shmbus_client_spins_total", "counter", "Receives that found a message while spinning.",
     F_SPINS},
    {"shmbus_client_dropped_messages_total", "counter",
     "Messages discarded: torn by a dead sender, or meant for a previous owner of the id.",
     F_DROPPED},
    {"shmbus_client_lost_messages_total", "counter",
     "Topic messages publishers dropped unread from the client's full mailbox (it subscribed "
     "lossy).",
     F_LOST},
    {"shmbus_client_mailbox_depth", "gauge", "Messages waiting in the client's mailbox.", F_DEPTH},
    {"shmbus_client_mailbox_capacity", "gauge", "Capacity of the client's mailbox in messages.",
     F_CAPACITY},
    {"shmbus_client_up", "gauge", "1 if the client's process is alive, 0 if it is dead.", F_UP},
    {"shmbus_client_latency_p50_seconds", "gauge",
     "Median send-to-receive latency of the client's sampled messages since it joined.", F_P50},
    {"shmbus_client_latency_p90_seconds", "gauge",
     "90th percentile send-to-receive latency since the client joined.", F_P90},
    {"shmbus_client_latency_p99_seconds", "gauge",
     "99th percentile send-to-receive latency since the client joined.", F_P99},
};

static void prom_value(struct sb_mon_buf *b, const struct sb_mon_client *mc, enum field f)
{
    const struct shmbus_counters *k = &mc->info.counters;
    uint64_t v = 0;
    switch (f) {
    case F_SENT:
        v = k->sent;
        break;
    case F_RECEIVED:
        v = k->received;
        break;
    case F_BYTES_SENT:
        v = k->bytes_sent;
        break;
    case F_BYTES_RECEIVED:
        v = k->bytes_received;
        break;
    case F_FULL_WAITS:
        v = k->full_waits;
        break;
    case F_WAKEUPS:
        v = k->wakeups;
        break;
    case F_SPINS:
        v = k->spins;
        break;
    case F_DROPPED:
        v = k->dropped;
        break;
    case F_LOST:
        v = k->lost;
        break;
    case F_DEPTH:
        v = mc->info.depth;
        break;
    case F_CAPACITY:
        v = mc->info.capacity;
        break;
    case F_UP:
        v = mc->info.state == SHMBUS_CLIENT_LIVE;
        break;
    case F_P50:
    case F_P90:
    case F_P99: { /* only called with samples (see sb_mon_render_metrics()) */
        uint64_t ns = f == F_P50 ? mc->p50 : f == F_P90 ? mc->p90 : mc->p99;
        sb_mon_buf_printf(b, "%.9f\n", (double)ns / 1e9);
        return;
    }
    }
    sb_mon_buf_printf(b, "%llu\n", (unsigned long long)v);
}

/* The bus-wide latency histogram as a Prometheus histogram, from the bus's own counters (so
 * it never goes down when a client leaves). Its `le` bounds are powers of two of
 * nanoseconds, which are bucket boundaries of the library's log-linear histogram (4 buckets
 * per power of two), so every count is exact; _sum is the library's sum of the sampled
 * latencies, _count the +Inf bucket. */
static void prom_hist(struct sb_mon_buf *b, const struct sb_mon_snap *s)
{
    const char *name = "shmbus_bus_latency_seconds";
    prom_head(b, name, "histogram",
              "Send-to-receive latency of sampled messages, all clients of the bus since it "
              "was created.");
    uint64_t cum = 0;
    unsigned b_next = 0;
    for (unsigned edge = 4; edge <= SHMBUS_LAT_BUCKETS; edge += 4) {
        /* Buckets below `edge` all lie under shmbus_hist_value(edge). */
        for (; b_next < edge; b_next++)
            cum += s->stats.lat_hist[b_next];
        if (edge == SHMBUS_LAT_BUCKETS)
            break;
        uint64_t le_ns = shmbus_hist_value(edge);
        sb_mon_buf_printf(b, "%s_bucket{bus=", name);
        prom_label_value(b, s->bus.name, field_len(s->bus.name, sizeof(s->bus.name)));
        /* Exact decimal seconds: a rounded bound would not be the bucket's boundary. */
        char frac[16];
        snprintf(frac, sizeof(frac), "%09llu", (unsigned long long)(le_ns % 1000000000ull));
        for (size_t k = strlen(frac); k > 1 && frac[k - 1] == '0'; k--)
            frac[k - 1] = '\0';
        sb_mon_buf_printf(b, ",le=\"%llu.%s\"} %llu\n", (unsigned long long)(le_ns / 1000000000ull),
                          frac, (unsigned long long)cum);
    }
    sb_mon_buf_printf(b, "%s_bucket{bus=", name);
    prom_label_value(b, s->bus.name, field_len(s->bus.name, sizeof(s->bus.name)));
    sb_mon_buf_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    sb_mon_buf_printf(b, "%s_sum{bus=", name);
    prom_label_value(b, s->bus.name, field_len(s->bus.name, sizeof(s->bus.name)));
    sb_mon_buf_printf(b, "} %llu.%09llu\n",
                      (unsigned long long)(s->stats.lat_sum_ns / 1000000000ull),
                      (unsigned long long)(s->stats.lat_sum_ns % 1000000000ull));
    sb_mon_buf_printf(b, "%s_count{bus=", name);
    prom_label_value(b, s->bus.name, field_len(s->bus.name, sizeof(s->bus.name)));
    sb_mon_buf_printf(b, "} %llu\n", (unsigned long long)cum);
}

static void prom_bus_counter(struct sb_mon_buf *b, const struct sb_mon_snap *s, const char *name,
                             const char *help, unsigned long long v)
{
    prom_head(b, name, "counter", help);
    sb_mon_buf_printf(b, "%s{bus=", name);
    prom_label_value(b, s->bus.name, field_len(s->bus.name, sizeof(s->bus.name)));
    sb_mon_buf_printf(b, "} %llu\n", v);
}

/* Exact per-pair counts: one counter per pair of ids a message went between. */
static void prom_flows(struct sb_mon_buf *b, const struct sb_mon_snap *s)
{
    const char *name = "shmbus_flow_messages_total";
    prom_head(b, name, "counter",
              "Messages taken by clients of id dst from clients of id src, since the bus was "
              "created.");
    for (size_t i = 0; i < s->nflows; i++) {
        sb_mon_buf_printf(b, "%s{bus=", name);
        prom_label_value(b, s->bus.name, field_len(s->bus.name, sizeof(s->bus.name)));
        sb_mon_buf_printf(b, ",src=\"%u\",dst=\"%u\"} %llu\n", s->flows[i].f.src, s->flows[i].f.dst,
                          (unsigned long long)s->flows[i].f.messages);
    }
}

/* shmbus_build_info: the version of the library the monitor runs and of the bus's layout. */
static void prom_build_info(struct sb_mon_buf *b, const struct sb_mon_snap *s)
{
    prom_head(b, "shmbus_build_info", "gauge",
              "Always 1; the labels say the shmbus version and segment layout version.");
    sb_mon_buf_puts(b, "shmbus_build_info{bus=");
    prom_label_value(b, s->bus.name, field_len(s->bus.name, sizeof(s->bus.name)));
    sb_mon_buf_printf(b, ",version=\"%s\",layout=\"%u\"} 1\n", shmbus_version(),
                      s->err ? 0u : s->bus.layout_version);
}

static void prom_bus_gauge(struct sb_mon_buf *b, const struct sb_mon_snap *s, const char *name,
                           const char *help, unsigned long long v)
{
    prom_head(b, name, "gauge", help);
    sb_mon_buf_printf(b, "%s{bus=", name);
    prom_label_value(b, s->bus.name, field_len(s->bus.name, sizeof(s->bus.name)));
    sb_mon_buf_printf(b, "} %llu\n", v);
}

/* The per-group series, labelled bus and group. */
static void prom_groups(struct sb_mon_buf *b, const struct sb_mon_snap *s)
{
    static const struct {
        const char *name, *type, *help;
    } gm[] = {
        {"shmbus_group_members", "gauge", "Live members (subscribers) of a named group."},
        {"shmbus_group_leader", "gauge", "Client id of the group's live leader, 0 if none."},
        {"shmbus_group_epoch", "gauge", "The group's latest leader epoch."},
        {"shmbus_group_published_total", "counter", "Topic copies delivered to members."},
        {"shmbus_group_missed_total", "counter",
         "Topic copies not delivered: a member's mailbox stayed full."},
        {"shmbus_group_queued_total", "counter", "Work-queue messages delivered."},
        {"shmbus_group_elections_total", "counter", "Leaders elected."},
        {"shmbus_group_redelivered_total", "counter",
         "Work-queue messages given again after their member died or left."},
        {"shmbus_group_lost_total", "counter",
         "Topic copies dropped unread from lossy subscribers' full mailboxes."},
    };
    for (size_t m = 0; m < sizeof(gm) / sizeof(gm[0]); m++) {
        prom_head(b, gm[m].name, gm[m].type, gm[m].help);
        for (size_t i = 0; i < s->ngroups && i < SHMBUS_GROUPS; i++) {
            const struct shmbus_group_info *g = &s->groups[i];
            unsigned long long v[] = {g->members,   g->leader,      g->epoch,
                                      g->published, g->missed,      g->queued,
                                      g->elections, g->redelivered, g->lost};
            sb_mon_buf_printf(b, "%s{bus=", gm[m].name);
            prom_label_value(b, s->bus.name, field_len(s->bus.name, sizeof(s->bus.name)));
            sb_mon_buf_puts(b, ",group=");
            prom_label_value(b, g->name, field_len(g->name, sizeof(g->name)));
            sb_mon_buf_printf(b, "} %llu\n", v[m]);
        }
    }
}

/* The bus's NATS bridges (shmbus-bridge): nothing at all when it has none. */
static void prom_bridges(struct sb_mon_buf *b, const struct sb_mon_snap *s)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } ms[] = {
        {"shmbus_bridge_up", "gauge", "1 if the bridge runs and is connected to NATS.",
         offsetof(struct sb_mon_bridge, up)},
        {"shmbus_bridge_jetstream", "gauge",
         "1 if the bridge sends direct messages through JetStream (at least once).",
         offsetof(struct sb_mon_bridge, jetstream)},
        {"shmbus_bridge_sent_messages_total", "counter",
         "Messages the bridge took from the bus and published to NATS (all kinds).",
         offsetof(struct sb_mon_bridge, out_msgs)},
        {"shmbus_bridge_sent_bytes_total", "counter", "Their payload bytes.",
         offsetof(struct sb_mon_bridge, out_bytes)},
        {"shmbus_bridge_received_messages_total", "counter",
         "Messages from NATS the bridge delivered on the bus (all kinds, replies included).",
         offsetof(struct sb_mon_bridge, in_msgs)},
        {"shmbus_bridge_received_bytes_total", "counter", "Their payload bytes.",
         offsetof(struct sb_mon_bridge, in_bytes)},
        {"shmbus_bridge_queue_messages", "gauge",
         "Messages waiting in the bridge's mailbox for NATS.",
         offsetof(struct sb_mon_bridge, queue)},
        {"shmbus_bridge_nats_buffered_bytes", "gauge",
         "Bytes the NATS client holds for the server (its reconnect buffer while disconnected).",
         offsetof(struct sb_mon_bridge, nats_buffered)},
        {"shmbus_bridge_topic_sent_messages_total", "counter",
         "Topic messages published here and exported to NATS.",
         offsetof(struct sb_mon_bridge, topic_out)},
        {"shmbus_bridge_topic_received_messages_total", "counter",
         "Topic messages from other nodes published on this bus.",
         offsetof(struct sb_mon_bridge, topic_in)},
        {"shmbus_bridge_queue_sent_messages_total", "counter",
         "Work-queue messages sent to NATS queue groups.",
         offsetof(struct sb_mon_bridge, queue_out)},
        {"shmbus_bridge_queue_received_messages_total", "counter",
         "Work-queue messages from NATS given to a local member.",
         offsetof(struct sb_mon_bridge, queue_in)},
        {"shmbus_bridge_requests_sent_total", "counter",
         "Requests of local programs sent to other nodes.",
         offsetof(struct sb_mon_bridge, requests_out)},
        {"shmbus_bridge_replies_received_total", "counter",
         "Replies from other nodes handed to local requesters.",
         offsetof(struct sb_mon_bridge, replies_in)},
        {"shmbus_bridge_requests_received_total", "counter",
         "Requests from other nodes made on this bus.",
         offsetof(struct sb_mon_bridge, requests_in)},
        {"shmbus_bridge_replies_sent_total", "counter",
         "Replies of local servers sent back to other nodes.",
         offsetof(struct sb_mon_bridge, replies_out)},
        {"shmbus_bridge_error_replies_total", "counter",
         "Local requests the bridge answered with an error reply (node absent, timeout...).",
         offsetof(struct sb_mon_bridge, error_replies)},
        {"shmbus_bridge_request_servers", "gauge",
         "Clients the bridge has joined to make requests from other nodes.",
         offsetof(struct sb_mon_bridge, servers)},
        {"shmbus_bridge_lost_messages_total", "counter",
         "Messages for this bus lost inside NATS (gaps in the peers' sequence numbers).",
         offsetof(struct sb_mon_bridge, lost)},
        {"shmbus_bridge_dropped_slow_messages_total", "counter",
         "Messages the NATS client dropped because the bridge was a slow consumer.",
         offsetof(struct sb_mon_bridge, dropped_slow)},
        {"shmbus_bridge_undeliverable_messages_total", "counter",
         "Messages the bridge could not deliver (no such client or node, mailbox full).",
         offsetof(struct sb_mon_bridge, undeliverable)},
        {"shmbus_bridge_bad_messages_total", "counter",
         "Malformed frames or misaddressed messages the bridge ignored.",
         offsetof(struct sb_mon_bridge, bad)},
        {"shmbus_bridge_errors_total", "counter", "Errors of any kind the bridge counted.",
         offsetof(struct sb_mon_bridge, errors)},
        {"shmbus_bridge_disconnects_total", "counter", "Times the NATS connection was lost.",
         offsetof(struct sb_mon_bridge, disconnects)},
        {"shmbus_bridge_reconnects_total", "counter", "Times the NATS connection came back.",
         offsetof(struct sb_mon_bridge, reconnects)},
    };

    if (s->nbridges == 0)
        return;
    for (size_t m = 0; m < sizeof(ms) / sizeof(ms[0]); m++) {
        prom_head(b, ms[m].name, ms[m].type, ms[m].help);
        for (size_t i = 0; i < s->nbridges; i++) {
            const struct sb_mon_bridge *br = &s->bridges[i];
            uint64_t v;
            memcpy(&v, (const char *)br + ms[m].off, sizeof(v)); /* every field is a uint64_t */
            sb_mon_buf_printf(b, "%s{bus=", ms[m].name);
            prom_label_value(b, s->bus.name, field_len(s->bus.name, sizeof(s->bus.name)));
            sb_mon_buf_puts(b, ",bridge=");
            prom_label_value(b, br->name, field_len(br->name, sizeof(br->name)));
            sb_mon_buf_puts(b, ",node=");
            prom_label_value(b, br->node, field_len(br->node, sizeof(br->node)));
            sb_mon_buf_printf(b, "} %llu\n", (unsigned long long)v);
        }
    }
}

void sb_mon_render_metrics(const struct sb_mon_snap *s, struct sb_mon_buf *b)
{
    prom_bus_gauge(b, s, "shmbus_monitor_up",
                   "1 if the monitor's last look at the bus succeeded, 0 if it failed.",
                   s->err == 0);
    if (s->err)
        return;
    prom_build_info(b, s);
    prom_bus_gauge(b, s, "shmbus_bus_live_clients", "Clients of the bus whose process is alive.",
                   s->live);
    prom_bus_gauge(b, s, "shmbus_bus_dead_clients",
                   "Clients whose process died, not yet cleaned up.", s->dead);
    prom_bus_counter(
        b, s, "shmbus_bus_sent_messages_total",
        "Messages sent on the bus since it was created (a broadcast counts each copy).",
        (unsigned long long)s->stats.sent);
    prom_bus_counter(b, s, "shmbus_bus_received_messages_total",
                     "Messages taken from mailboxes since the bus was created.",
                     (unsigned long long)s->stats.received);
    prom_bus_counter(b, s, "shmbus_bus_sent_bytes_total",
                     "Payload bytes sent on the bus since it was created.",
                     (unsigned long long)s->stats.bytes_sent);
    prom_bus_counter(b, s, "shmbus_bus_received_bytes_total",
                     "Payload bytes taken from mailboxes since the bus was created.",
                     (unsigned long long)s->stats.bytes_received);
    prom_bus_gauge(b, s, "shmbus_bus_attached_processes",
                   "Processes attached to the bus segment (the kernel's shm_nattch).",
                   s->bus.attached);
    prom_bus_gauge(b, s, "shmbus_bus_max_clients", "Client ids the bus has room for.",
                   s->bus.max_clients);
    prom_bus_gauge(b, s, "shmbus_bus_segment_bytes", "Size of the bus's shared memory segment.",
                   (unsigned long long)s->bus.segment_size);
    for (size_t m = 0; m < sizeof(client_metrics) / sizeof(client_metrics[0]); m++) {
        const struct metric *mt = &client_metrics[m];
        prom_head(b, mt->name, mt->type, mt->help);
        for (size_t i = 0; i < s->n; i++) {
            /* No samples, no percentile: the series is left out, not written as 0. */
            if ((mt->field == F_P50 || mt->field == F_P90 || mt->field == F_P99) &&
                s->clients[i].samples == 0)
                continue;
            prom_client_labels(b, s, &s->clients[i], mt->name, NULL);
            prom_value(b, &s->clients[i], mt->field);
        }
    }
    prom_flows(b, s);
    prom_hist(b, s);
    prom_groups(b, s);
    prom_bridges(b, s);
}
