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
 * One event loop, not a thread per connection: libmicrohttpd's internal polling thread
 * (epoll) serves every connection, so an open live view costs a socket and a small memory
 * pool (CONNECTION_MEMORY), not a thread. An /events stream with nothing new to send is
 * parked: its content callback links it into `parked` and suspends its connection (which
 * then costs MHD nothing per loop). A second thread, the waker, sleeps on the state's
 * condition variable, which the sampler broadcasts at each publish; it resumes the parked
 * streams that have a new sample to send or whose keep-alive comment is due (every
 * KEEPALIVE_S, which is also how a stream whose browser went away is noticed and ended).
 * Parking and resuming both happen under st->lock, so a publish between the callback's look
 * at `gen` and its suspension cannot be missed.
 *
 * Room for scrapes: at most `views_max` streams are held (MAX_VIEWS, less if the file
 * limit is lower); the connection limit is views_max + SCRAPE_ROOM, so /metrics and
 * /api/bus are answered however many views are open; one view more gets 503.
 *
 * One copy of each event: the first stream to need sample `gen` renders "data: <json>" into
 * a reference-counted `struct event` that every stream then sends from. Only the MHD thread
 * touches events and their counts (content callbacks and free callbacks run there).
 *
 * Shutdown: `stop` is set and `cond` broadcast; the waker resumes every parked stream and
 * exits; each stream's next callback ends it; then MHD_stop_daemon() (which must not find a
 * suspended connection). A parked stream's connection is suspended, and MHD frees nothing
 * suspended, so a stream is never freed while it is in the parked list.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "monitor.h"

#define MAX_VIEWS            4096  /* /events streams held at once, at most */
#define SCRAPE_ROOM          64    /* connections always left for everything else */
#define CONNECTION_MEMORY    16384 /* MHD's memory pool per connection */
#define STREAM_BLOCK         4096  /* bytes per content callback */
#define CONNECTION_TIMEOUT_S 60
#define KEEPALIVE_S          5

/* One rendered event, shared by every stream sending it. MHD thread only. */
struct event {
    unsigned refs;
    uint64_t gen;
    size_t len;
    char data[];
};

struct stream;

struct sb_mon_http {
    struct sb_mon_state *st;
    struct MHD_Daemon *daemon;
    pthread_t waker;
    int waker_started;
    unsigned views_max;
    unsigned views;      /* streams open: MHD thread only */
    struct event *cur;   /* the latest event rendered (one reference): MHD thread only */
    struct stream *park; /* parked streams (doubly linked): under st->lock */
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
    struct sb_mon_http *h;
    struct MHD_Connection *conn;
    struct stream *next, *prev; /* in h->park while parked (under st->lock) */
    int parked;
    int greeted;           /* the "retry:" line has been sent */
    uint64_t gen;          /* the generation last sent */
    uint64_t keepalive_ns; /* when a keep-alive comment is due (CLOCK_MONOTONIC) */
    struct event *ev;      /* the event being sent (a reference), or NULL */
    const char *p;         /* what is left to send */
    size_t left;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void event_put(struct event *ev)
{
    if (ev && --ev->refs == 0)
        free(ev);
}

/* The event of the current sample, rendered once. Called with st->lock held. */
static struct event *current_event(struct sb_mon_http *h)
{
    struct sb_mon_state *st = h->st;
    if (h->cur && h->cur->gen == st->gen)
        return h->cur;
    static const char pre[] = "data: ", post[] = "\n\n";
    size_t len = sizeof(pre) - 1 + st->json_len + sizeof(post) - 1;
    struct event *ev = malloc(sizeof(*ev) + len);
    if (!ev)
        return NULL;
    ev->refs = 1; /* h->cur's */
    ev->gen = st->gen;
    ev->len = len;
    memcpy(ev->data, pre, sizeof(pre) - 1);
    memcpy(ev->data + sizeof(pre) - 1, st->json, st->json_len);
    memcpy(ev->data + sizeof(pre) - 1 + st->json_len, post, sizeof(post) - 1);
    event_put(h->cur);
    h->cur = ev;
    return ev;
}

static void park(struct stream *s)
{
    struct sb_mon_http *h = s->h;
    s->prev = NULL;
    s->next = h->park;
    if (h->park)
        h->park->prev = s;
    h->park = s;
    s->parked = 1;
}

static void unpark(struct stream *s)
{
    struct sb_mon_http *h = s->h;
    if (s->prev)
        s->prev->next = s->next;
    else
        h->park = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->parked = 0;
}

/* Find what to send next: a new sample, a keep-alive comment, or nothing yet (then the
 * stream is parked and its connection suspended). Returns 0, or -1 to end the stream. */
static int next_piece(struct stream *s)
{
    struct sb_mon_http *h = s->h;
    struct sb_mon_state *st = h->st;
    event_put(s->ev);
    s->ev = NULL;
    uint64_t now = mono_ns();
    int ret = 0;
    pthread_mutex_lock(&st->lock);
    if (st->stop) {
        ret = -1;
    } else if (!s->greeted) {
        static const char hello[] = "retry: 2000\n";
        s->p = hello;
        s->left = sizeof(hello) - 1;
        s->greeted = 1;
    } else if (st->gen != s->gen && st->json) {
        struct event *ev = current_event(h);
        if (!ev) {
            ret = -1;
        } else {
            ev->refs++;
            s->ev = ev;
            s->p = ev->data;
            s->left = ev->len;
            s->gen = ev->gen;
            s->keepalive_ns = now + KEEPALIVE_S * 1000000000ull;
        }
    } else if (now >= s->keepalive_ns) {
        static const char ka[] = ": keep-alive\n\n";
        s->p = ka;
        s->left = sizeof(ka) - 1;
        s->keepalive_ns = now + KEEPALIVE_S * 1000000000ull;
    } else {
        /* Nothing to send: wait in the parked list, costing no loop iterations. The waker
         * resumes us under this same lock, so it sees us parked or sees no reason to. */
        park(s);
        MHD_suspend_connection(s->conn);
    }
    pthread_mutex_unlock(&st->lock);
    return ret;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    (void)pos;
    if (s->left == 0 && next_piece(s) < 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = s->left < max ? s->left : max;
    memcpy(buf, s->p, n); /* 0 bytes when parked: MHD calls again once resumed */
    s->p += n;
    s->left -= n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    /* Never parked here (see the design notes): MHD frees no suspended connection. */
    event_put(s->ev);
    s->h->views--;
    free(s);
}

/* The waker: resume parked streams that have something to send. */
static void *waker_main(void *arg)
{
    struct sb_mon_http *h = arg;
    struct sb_mon_state *st = h->st;
    pthread_mutex_lock(&st->lock);
    for (;;) {
        uint64_t now = mono_ns();
        struct stream *s = h->park;
        while (s) {
            struct stream *next = s->next;
            if (st->stop || (st->json && s->gen != st->gen) || now >= s->keepalive_ns) {
                unpark(s);
                MHD_resume_connection(s->conn);
            }
            s = next;
        }
        if (st->stop)
            break;
        /* Woken by each publish (monitor.c) and by stop; at least once a second for the
         * keep-alives. */
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&st->cond, &st->lock, &until);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

static enum MHD_Result serve_events(struct sb_mon_http *h, struct MHD_Connection *conn, int head)
{
    const char *type = "text/event-stream";
    if (head) /* headers only: do not hold a stream nobody reads */
        return queue(conn, MHD_HTTP_OK, type, "", 0, MHD_RESPMEM_PERSISTENT);
    if (h->views >= h->views_max)
        return queue_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "too many live views open: close some, or use /api/bus\n");
    struct stream *s = calloc(1, sizeof(*s));
    if (!s)
        return MHD_NO;
    s->h = h;
    s->conn = conn;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
                                                               stream_read, s, stream_free);
    if (!r) {
        free(s);
        return MHD_NO;
    }
    h->views++; /* stream_free() takes it back, whatever becomes of the response */
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
    struct sb_mon_http *h = cls;
    struct sb_mon_state *st = h->st;
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
        return serve_events(h, conn, head);
    return queue_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* Raise the soft limit on open files towards the hard one (every view is a socket) and
 * return how many views fit. */
static unsigned views_that_fit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 64;
    rlim_t want = MAX_VIEWS + SCRAPE_ROOM + 64;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return MAX_VIEWS;
    if (rl.rlim_cur < SCRAPE_ROOM + 64 + 16)
        return 16;
    return (unsigned)(rl.rlim_cur - SCRAPE_ROOM - 64);
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
    h->views_max = views_that_fit();
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, fd,
                                 MHD_OPTION_CONNECTION_LIMIT, h->views_max + SCRAPE_ROOM,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
                                 MHD_OPTION_END);
    if (!h->daemon) {
        free(h);
        return -EIO;
    }
    int err = pthread_create(&h->waker, NULL, waker_main, h);
    if (err) {
        MHD_stop_daemon(h->daemon);
        free(h);
        return -err;
    }
    h->waker_started = 1;
    *out = h;
    return 0;
}

void sb_mon_http_stop(struct sb_mon_http *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->st->lock);
    h->st->stop = 1;
    pthread_cond_broadcast(&h->st->cond); /* the waker resumes every parked stream */
    pthread_mutex_unlock(&h->st->lock);
    if (h->waker_started)
        pthread_join(h->waker, NULL);
    MHD_stop_daemon(h->daemon);
    event_put(h->cur);
    free(h);
}
