/*
 * monitor_http.c - the monitor's HTTP server, on libmicrohttpd.
 *
 * Design notes
 * ------------
 * Routes (GET and HEAD only; any other method gets 405 with an Allow header):
 *   /  /app.js  /style.css    the page, embedded in the binary (monitor_assets.c)
 *   /api/bus                  the latest sample as JSON
 *   /metrics                  the latest sample in Prometheus text format
 *   /events                   server-sent events: one `data: <json>` per sample, for as long
 *                             as the browser stays
 *   anything else             404
 *
 * Threads: libmicrohttpd runs one thread per connection (MHD_USE_THREAD_PER_CONNECTION), so
 * the /events content callback may simply block on the state's condition variable until the
 * sampler publishes the next sample; it wakes every few seconds anyway to send a keep-alive
 * comment, which is also how a stream whose browser went away is noticed and ended. At
 * shutdown `stop` is set and `cond` broadcast before MHD_stop_daemon(), so no callback keeps
 * the daemon waiting. The number of connections is capped, so a stuck browser costs at
 * most one thread each.
 *
 * DNS rebinding: a web page elsewhere could point a name of its own at 127.0.0.1 and read
 * the monitor from the user's browser. Unless --allow-remote was given, a request whose
 * Host header is not a loopback name or address is refused (403).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "monitor.h"

#define MAX_CONNECTIONS      64
#define CONNECTION_TIMEOUT_S 60
#define KEEPALIVE_S          5

struct sb_mon_http {
    struct sb_mon_state *st;
    struct MHD_Daemon *daemon;
};

/* Every response says: no sniffing, nothing but this origin's own files. */
static void add_common_headers(struct MHD_Response *r, const char *type, int cache)
{
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache ? "no-cache" : "no-store");
}

static enum MHD_Result queue(struct MHD_Connection *conn, unsigned status, const char *type,
                             const char *data, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, mode);
    if (!r)
        return MHD_NO;
    add_common_headers(r, type, mode == MHD_RESPMEM_PERSISTENT);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result queue_text(struct MHD_Connection *conn, unsigned status, const char *msg)
{
    return queue(conn, status, "text/plain; charset=utf-8", msg, strlen(msg),
                 MHD_RESPMEM_PERSISTENT);
}

/* Is the Host header (if any) a loopback name or address, with or without a port? */
static int host_is_loopback(const char *host)
{
    if (!host)
        return 1; /* HTTP/1.0 without Host: nothing a rebinding page could have sent */
    if (host[0] == '[')
        return strncmp(host, "[::1]", 5) == 0 && (host[5] == '\0' || host[5] == ':');
    size_t n = strcspn(host, ":");
    if (n == 9 && strncasecmp(host, "localhost", 9) == 0)
        return 1;
    if (n < 4 || strncmp(host, "127.", 4) != 0)
        return 0;
    for (size_t i = 4; i < n; i++)
        if (!(host[i] == '.' || (host[i] >= '0' && host[i] <= '9')))
            return 0;
    return 1;
}

/* The latest JSON or metrics, copied under the lock. */
static enum MHD_Result serve_snapshot(struct sb_mon_state *st, struct MHD_Connection *conn,
                                      int metrics)
{
    struct sb_mon_buf b = {0};
    pthread_mutex_lock(&st->lock);
    if (metrics)
        sb_mon_render_metrics(&st->snap, &b);
    else
        sb_mon_buf_put(&b, st->json ? st->json : "{}", st->json ? st->json_len : 2);
    pthread_mutex_unlock(&st->lock);
    if (!metrics)
        sb_mon_buf_puts(&b, "\n");
    if (b.oom) {
        sb_mon_buf_free(&b);
        return queue_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    }
    const char *type = metrics ? "text/plain; version=0.0.4; charset=utf-8" : "application/json";
    enum MHD_Result ret = queue(conn, MHD_HTTP_OK, type, b.p, b.len, MHD_RESPMEM_MUST_COPY);
    sb_mon_buf_free(&b);
    return ret;
}

/* ---- /events ---------------------------------------------------------------------------- */

struct stream {
    struct sb_mon_state *st;
    uint64_t gen;        /* the generation last sent */
    struct sb_mon_buf b; /* what is being sent */
    size_t off;          /* how much of b has been handed to MHD */
};

/* Fill s->b with the next event: wait for a new sample (or a keep-alive period). Returns 0,
 * or -1 when the monitor is stopping. */
static int next_event(struct stream *s)
{
    struct sb_mon_state *st = s->st;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += KEEPALIVE_S;

    s->b.len = 0;
    s->off = 0;
    pthread_mutex_lock(&st->lock);
    int timed_out = 0;
    while (!st->stop && st->gen == s->gen && !timed_out)
        timed_out = pthread_cond_timedwait(&st->cond, &st->lock, &until) == ETIMEDOUT;
    if (st->stop) {
        pthread_mutex_unlock(&st->lock);
        return -1;
    }
    if (st->gen != s->gen && st->json) {
        if (s->gen == 0)
            sb_mon_buf_puts(&s->b, "retry: 2000\n");
        sb_mon_buf_puts(&s->b, "data: ");
        sb_mon_buf_put(&s->b, st->json, st->json_len);
        sb_mon_buf_puts(&s->b, "\n\n");
        s->gen = st->gen;
    } else {
        sb_mon_buf_puts(&s->b, ": keep-alive\n\n");
    }
    pthread_mutex_unlock(&st->lock);
    return s->b.oom ? -1 : 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    (void)pos;
    if (s->off >= s->b.len && next_event(s) < 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = s->b.len - s->off;
    if (n > max)
        n = max;
    memcpy(buf, s->b.p + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    sb_mon_buf_free(&s->b);
    free(s);
}

static enum MHD_Result serve_events(struct sb_mon_state *st, struct MHD_Connection *conn, int head)
{
    const char *type = "text/event-stream";
    if (head) /* headers only: do not hold a thread for a stream nobody reads */
        return queue(conn, MHD_HTTP_OK, type, "", 0, MHD_RESPMEM_PERSISTENT);
    struct stream *s = calloc(1, sizeof(*s));
    if (!s)
        return MHD_NO;
    s->st = st;
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free);
    if (!r) {
        free(s);
        return MHD_NO;
    }
    add_common_headers(r, type, 0);
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- routing ---------------------------------------------------------------------------- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct sb_mon_state *st = cls;
    (void)version;
    (void)upload_data;
    (void)con_cls;
    int head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
        *upload_data_size = 0; /* a body, if any, is ignored */
        return queue_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                          "method not allowed: the monitor is read-only (GET, HEAD)\n");
    }
    if (!st->allow_remote &&
        !host_is_loopback(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host")))
        return queue_text(conn, MHD_HTTP_FORBIDDEN,
                          "forbidden: the Host header is not a loopback address\n");

    for (size_t i = 0; i < sb_mon_nassets; i++)
        if (strcmp(url, sb_mon_assets[i].path) == 0)
            return queue(conn, MHD_HTTP_OK, sb_mon_assets[i].type, sb_mon_assets[i].data,
                         sb_mon_assets[i].len, MHD_RESPMEM_PERSISTENT);
    if (strcmp(url, "/api/bus") == 0)
        return serve_snapshot(st, conn, 0);
    if (strcmp(url, "/metrics") == 0)
        return serve_snapshot(st, conn, 1);
    if (strcmp(url, "/events") == 0)
        return serve_events(st, conn, head);
    return queue_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

int sb_mon_http_start(struct sb_mon_state *st, int fd, struct sb_mon_http **out)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return -errno;
    struct sb_mon_http *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->st = st;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, st, MHD_OPTION_LISTEN_SOCKET, fd,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
                                 MHD_OPTION_END);
    if (!h->daemon) {
        free(h);
        return -EIO;
    }
    *out = h;
    return 0;
}

void sb_mon_http_stop(struct sb_mon_http *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->st->lock);
    h->st->stop = 1;
    pthread_cond_broadcast(&h->st->cond); /* ends every /events stream (next_event) */
    pthread_mutex_unlock(&h->st->lock);
    MHD_stop_daemon(h->daemon);
    free(h);
}
