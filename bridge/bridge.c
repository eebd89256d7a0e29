/*
 * bridge.c - shmbus-bridge: programs on different hosts talk through NATS as if on one bus.
 *
 * Design notes.
 *   One bridge per bus and host. It is an ordinary client of the bus (public API only,
 *   include/shmbus.h), joined under a name (--as, default "bridge"), plus the clients
 *   "<name>.req" (and "<name>.r2" ... as needed, up to --requests) that make the requests
 *   remote nodes ask for (a request waits for its reply on the receive side of its client,
 *   which the main loop must keep for itself), and with --topic "<name>.pub", the member of
 *   the exported topics.
 *
 *   Threads. The main thread takes what local programs send to the bridge (peek, publish,
 *   consume: a message leaves the mailbox only once NATS took it, into its socket or into
 *   its reconnect buffer), follows the work queues it serves (subscribed on NATS while the
 *   group has members here) every 100 ms, and writes the state file once per --interval.
 *   The topic thread drains "<name>.pub" and exports. libnats runs one thread per
 *   subscription: PREFIX.NODE.msg (delivers to local clients), PREFIX.NODE.rep.* (hands
 *   replies to local requesters with shmbus_reply()),
 *   PREFIX.topic.T per topic (publishes here), PREFIX.queue.Q per served queue (gives the
 *   job to one local member). PREFIX.NODE.req is synchronous: the server threads take
 *   requests from it themselves, make each through their own client and publish the reply
 *   (see "Requests from remote nodes"). Per-sender order holds because each of those paths
 *   is one thread (requests: taken in order) and NATS keeps one publisher's order on a
 *   subject.
 *
 *   Loops. A topic's copies come back to their exporter twice: from NATS (it subscribes to
 *   the subject it publishes on: dropped by the frame's origin node) and from the bus (its
 *   own client is a member of the topic it publishes imports to: dropped by sender id). So
 *   an imported message is never exported again, and each bridge exports only what
 *   programs of its own bus published.
 *
 *   Losses. Core NATS is at most once: a server that dies takes what it held. Every frame
 *   carries a sequence number per (sending bridge, destination node, kind), per topic for
 *   topics; the receiving bridge counts the gaps ("lost"), the messages libnats dropped for
 *   a slow consumer, and the ones it could not deliver (no such client, its mailbox full for
 *   --timeout), so that every loss shows in the state file. Work-queue frames go to one of
 *   several bridges and are not numbered; a queue that no bridge serves is reported by the
 *   server ("no responders") and counted by the sender. With --jetstream, direct messages
 *   go through a stream per node instead and are delivered at least once (see "JetStream"
 *   below).
 *
 *   Counters are relaxed atomics: each is exact, they are only read for the state file, and
 *   nothing is ordered by them (no release/acquire pairs in this file).
 *
 *   Crashes. A bridge killed with -9 leaves a dead client that the library reaps; local
 *   traffic between other clients never passes through the bridge. On SIGINT/SIGTERM the
 *   bridge leaves with shmbus_leave_keep(), so that messages queued for it wait for the
 *   next bridge of that name.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "frame.h"
#include "shmbus.h"
#include "state.h"

#define PENDING    1024 /* requests in flight across the bridge at once */
#define SEQ_KEYS   256  /* (node, kind) pairs followed for sequence numbers */
#define MAX_GROUPS 32   /* --topic and --queue options, each */
#define MAX_SERVE  16   /* --requests: requests from remote nodes served at once */
#define JOBS       256  /* requests from remote nodes waiting for a free server */
#define EXIT_FAIL  1
#define EXIT_USAGE 2

struct config {
    const char *bus, *url, *node, *as, *prefix;
    const char *creds, *user, *password, *tls_ca, *tls_cert, *tls_key;
    const char *topics[MAX_GROUPS], *queues[MAX_GROUPS];
    int ntopics, nqueues, requests, jetstream;
    int once, timeout_ms, interval_ms, quiet, bench, count, spin_us;
};

struct counters {
    atomic_uint_fast64_t out_msgs, out_bytes, in_msgs, in_bytes;
    atomic_uint_fast64_t requests_out, replies_in, requests_in, replies_out;
    atomic_uint_fast64_t topic_out, topic_in, queue_out, queue_in, error_replies;
    atomic_uint_fast64_t lost, dropped_slow, undeliverable, bad, errors;
    atomic_uint_fast64_t disconnects, reconnects;
    atomic_int connected;
    atomic_uint generation; /* 1 at the first connection, + 1 at each reconnection */
};

/* A remote node as the main thread sees it (see peer_ready()). */
struct peer {
    char node[NODE_MAX + 1];
    unsigned gen;      /* the connection generation its bridge last answered in; 0 never */
    int absent;        /* its bridge did not answer: drop what is for it, ping again later */
    int64_t since;     /* when we started waiting for it to come back (0: not waiting) */
    int64_t next_ping; /* when absent: no ping before this */
    int64_t js_since;  /* --jetstream: when "no stream" began (0: it answers) */
};

struct pending {
    uint64_t token; /* 0: free */
    struct shmbus_msg req;
    char addr[ADDR_MAX + 1]; /* where it went, for an error reply */
};

/* Sequence numbers are followed per (node, name, kind): name is "" but for topics. */
struct seqkey {
    char node[NODE_MAX + 1];
    char name[SHMBUS_NAME_MAX + 1];
    uint8_t kind;
    uint64_t epoch, seq; /* out: last sent (epoch unused); in: sender's epoch, last seen */
};

/* A work queue this bridge serves (--queue): subscribed on NATS while the group has local
 * members. Only the main thread touches it. */
struct served {
    natsSubscription *sub;     /* the queue subscription, or NULL */
    natsSubscription *retired; /* a subscription draining after the last member left */
};

static struct config cfg;
static struct counters st;
static volatile sig_atomic_t stop;
static shmbus_bus *bus;
static shmbus_client *cl, *reqcl, *pubcl; /* pubcl: topics (--topic), or NULL */
static uint32_t msg_size;
static uint64_t epoch;
static natsConnection *nc;
static natsSubscription *subs[5], *topic_subs[MAX_GROUPS];
static struct served served[MAX_GROUPS];
static char topic_of[SHMBUS_GROUPS][SHMBUS_NAME_MAX + 1]; /* group index -> exported topic */
static pthread_t topic_thread;
static int topic_thread_on;
static jsCtx *js;                /* --jetstream */
static natsSubscription *js_sub; /* our stream's durable pull consumer */
static pthread_t js_thread;
static int js_thread_on;
static uint64_t bus_nonce; /* tells this bus's messages apart in JetStream's ids */
static char last_error[160];

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* guards the tables below */
static struct pending pending[PENDING];
static uint64_t next_token = 1;
static struct seqkey seq_out[SEQ_KEYS], seq_in[SEQ_KEYS];
static struct peer peers[SEQ_KEYS]; /* the main thread's only */

static void nap(int ms);

/* Start a thread of ours with SIGINT/SIGTERM blocked (the main thread takes them); *on = 1
 * once it runs. Returns 0 or -1 (said on stderr). */
static int start_thread(pthread_t *t, void *(*fn)(void *), int *on, const char *what)
{
    sigset_t set, old;
    int rc;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    rc = pthread_create(t, NULL, fn, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        fprintf(stderr, "shmbus: bridge: %s thread: %s\n", what, strerror(rc));
        return -1;
    }
    *on = 1;
    return 0;
}
static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
    va_list ap;

    if (cfg.quiet)
        return;
    va_start(ap, fmt);
    fputs("shmbus-bridge: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* An error that is counted and remembered for the state file; logged for the first 20. */
static void count_error(atomic_uint_fast64_t *which, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void count_error(atomic_uint_fast64_t *which, const char *fmt, ...)
{
    va_list ap;
    uint64_t n = atomic_fetch_add_explicit(&st.errors, 1, memory_order_relaxed);

    if (which != NULL)
        atomic_fetch_add_explicit(which, 1, memory_order_relaxed);
    pthread_mutex_lock(&lock);
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    if (n < 20)
        logmsg("%s%s", last_error, n == 19 ? " (further errors are only counted)" : "");
    pthread_mutex_unlock(&lock);
}

static void add(atomic_uint_fast64_t *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static uint64_t get(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* ---- sequence numbers ---------------------------------------------------------------- */

static int same(const char *a, const char *b, size_t blen)
{
    return strlen(a) == blen && memcmp(a, b, blen) == 0;
}

/* The entry of (node, name, kind) in t, made if it is new; the caller holds `lock`. node
 * and name are at most NODE_MAX and SHMBUS_NAME_MAX bytes (checked by the callers). */
static struct seqkey *seq_find(struct seqkey *t, const char *node, size_t len, const char *name,
                               size_t nlen, uint8_t kind)
{
    size_t i;

    for (i = 0; i < SEQ_KEYS; i++) {
        if (t[i].kind == 0) {
            memcpy(t[i].node, node, len);
            t[i].node[len] = '\0';
            memcpy(t[i].name, name, nlen);
            t[i].name[nlen] = '\0';
            t[i].kind = kind;
            return &t[i];
        }
        if (t[i].kind == kind && same(t[i].node, node, len) && same(t[i].name, name, nlen))
            return &t[i];
    }
    return NULL; /* more than SEQ_KEYS peers: not followed */
}

/* The next number for a frame to node (for a topic: node "", name the topic). */
static uint64_t seq_next(const char *node, size_t len, const char *name, size_t nlen, uint8_t kind)
{
    struct seqkey *k;
    uint64_t s = 0;

    pthread_mutex_lock(&lock);
    k = seq_find(seq_out, node, len, name, nlen, kind);
    if (k != NULL)
        s = ++k->seq;
    pthread_mutex_unlock(&lock);
    return s;
}

/* A frame numbered by seq_next() was not sent: take its number back so the peer sees no
 * gap. */
static void seq_unsend(const char *node, size_t len, const char *name, size_t nlen, uint8_t kind)
{
    struct seqkey *k;

    pthread_mutex_lock(&lock);
    k = seq_find(seq_out, node, len, name, nlen, kind);
    if (k != NULL && k->seq > 0)
        k->seq--;
    pthread_mutex_unlock(&lock);
}

/* Count the frames missing between the last one seen from f's sender and this one. The
 * sender's node is the origin's node (before the '/'); topics are numbered per topic. */
static void seq_check(const struct frame *f)
{
    const char *slash = memchr(f->org, '/', f->org_len);
    size_t len = slash != NULL ? (size_t)(slash - f->org) : 0;
    size_t nlen = f->kind == FRAME_TOPIC ? f->dst_len : 0;
    struct seqkey *k;
    uint64_t gap = 0;

    if (len == 0 || len > NODE_MAX || nlen > SHMBUS_NAME_MAX || f->seq == 0)
        return;
    pthread_mutex_lock(&lock);
    k = seq_find(seq_in, f->org, len, f->dst, nlen, f->kind);
    if (k != NULL) {
        if (k->epoch == 0) {
            /* The first frame we see from there: what it sent before we were here is not
             * ours to count. */
            k->epoch = f->epoch;
            k->seq = f->seq;
        } else if (k->epoch != f->epoch) {
            /* A new bridge there: its numbers start at 1 again. */
            k->epoch = f->epoch;
            gap = f->seq - 1;
            k->seq = f->seq;
        } else {
            if (f->seq > k->seq + 1)
                gap = f->seq - k->seq - 1;
            if (f->seq > k->seq)
                k->seq = f->seq;
        }
    }
    pthread_mutex_unlock(&lock);
    if (gap > 0)
        count_error(NULL, "%" PRIu64 " message(s) from %.*s lost on the way (NATS at most once)",
                    gap, (int)len, f->org);
    add(&st.lost, gap);
}

/* ---- local side ---------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* origin_of() without its lock. */
static void origin_locked(uint32_t id, char *out, size_t cap)
{
    static struct shmbus_client_info *list;
    static size_t have, room;
    static int64_t when;
    int64_t now = now_ms();
    size_t i;
    int pass, n;

    for (pass = 0; pass < 2; pass++) {
        if (pass == 1 || list == NULL || now - when > 50) {
            n = shmbus_list(bus, list, room);
            if (n > (int)room) {
                free(list);
                room = (size_t)n + 16;
                list = calloc(room, sizeof(*list));
                n = list != NULL ? shmbus_list(bus, list, room) : 0;
            }
            have = n < 0 ? 0 : (size_t)n < room ? (size_t)n : room;
            when = now;
        }
        for (i = 0; i < have; i++)
            if (list[i].id == id && list[i].state == SHMBUS_CLIENT_LIVE) {
                if (list[i].name[0] == '\0')
                    break;
                snprintf(out, cap, "%s/%s", cfg.node, list[i].name);
                return;
            }
        if (i < have)
            break; /* listed without a name */
    }
    snprintf(out, cap, "%s/#%" PRIu32, cfg.node, id);
}

/*
 * The name of local client `id` ("#ID" if it has none), as remote nodes will address it.
 * The list of clients is read at most every 50 ms (it costs a /proc read per client), and
 * again when `id` is not in it. So a sender that left before the bridge took its message
 * shows as "#ID", and one whose id was reused within 50 ms may show under the old name.
 * The main thread and the topic thread call it; the list is theirs under list_lock.
 */
static void origin_of(uint32_t id, char *out, size_t cap)
{
    static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;

    pthread_mutex_lock(&list_lock);
    origin_locked(id, out, cap);
    pthread_mutex_unlock(&list_lock);
}

/* The local client a frame's destination names, or a negative errno. */
static int resolve(const char *dst, size_t len)
{
    char name[SHMBUS_NAME_MAX + 1];

    if (!frame_name_ok(dst, len))
        return -EINVAL;
    memcpy(name, dst, len);
    name[len] = '\0';
    if (name[0] == '#')
        return atoi(name + 1) > 0 ? atoi(name + 1) : -EINVAL;
    return shmbus_lookup(bus, name);
}

/* "ORIGIN body" into buf (cap bytes): returns its length or -EMSGSIZE. */
static long with_origin(const struct frame *f, char *buf, size_t cap)
{
    size_t n = f->org_len + 1 + f->body_len;

    if (n > cap)
        return -EMSGSIZE;
    memcpy(buf, f->org, f->org_len);
    buf[f->org_len] = ' ';
    if (f->body_len > 0)
        memcpy(buf + f->org_len + 1, f->body, f->body_len);
    return (long)n;
}

/* ---- NATS callbacks -------------------------------------------------------------------- */

static void subject(char *out, size_t cap, const char *node, size_t len, const char *kind)
{
    snprintf(out, cap, "%s.%.*s.%s", cfg.prefix, (int)len, node, kind);
}

static int publish(const char *subj, const char *reply, const uint8_t *data, size_t len)
{
    natsStatus s;

    if (reply != NULL)
        s = natsConnection_PublishRequest(nc, subj, reply, data, (int)len);
    else
        s = natsConnection_Publish(nc, subj, data, (int)len);
    return s == NATS_OK ? 0 : (int)s;
}

/* Deliver frame f (a direct message) to its local client, with the origin prefixed, through
 * buf (msg_size bytes). 0, or -errno: no such client, too long, or the send's error. */
static int deliver_local(const struct frame *f, char *buf)
{
    int id = resolve(f->dst, f->dst_len);
    long n = with_origin(f, buf, msg_size);
    if (id < 0 || n < 0)
        return id < 0 ? id : (int)n;
    return shmbus_send(cl, (uint32_t)id, buf, (size_t)n, SHMBUS_PRIO(f->prio), cfg.timeout_ms);
}

/* Count how a delivery ended: in_msgs/in_bytes, or an undeliverable message with why. */
static void count_delivery(const struct frame *f, int rc)
{
    if (rc < 0) {
        count_error(&st.undeliverable, "message from %.*s to %.*s: %s", (int)f->org_len, f->org,
                    (int)f->dst_len, f->dst, shmbus_strerror(rc));
        return;
    }
    add(&st.in_msgs, 1);
    add(&st.in_bytes, f->body_len);
}

/* A direct message for a local client. */
static void on_msg(natsConnection *c, natsSubscription *sub, natsMsg *m, void *arg)
{
    struct frame f;
    char *buf = malloc(msg_size);

    (void)c, (void)sub, (void)arg;
    if (buf == NULL || frame_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &f) ||
        f.kind != FRAME_MSG) {
        count_error(&st.bad, "a malformed frame on %s ignored", natsMsg_GetSubject(m));
        goto out;
    }
    seq_check(&f);
    count_delivery(&f, deliver_local(&f, buf));
out:
    free(buf);
    natsMsg_Destroy(m);
}

/* ---- error replies ------------------------------------------------------------------- */

/* The text and symbolic name of an error a request across can end with. */
static const char *err_text(int err)
{
    switch (err) {
    case EHOSTDOWN:
        return "no bridge answers for that node";
    case EAGAIN:
        return "the remote bridge is busy (too many requests waiting)";
    case EINVAL:
        return "not an address (NODE/NAME or NODE/#ID)";
    default:
        return shmbus_strerror(-err);
    }
}

static const char *err_name(int err)
{
    static const struct {
        int err;
        const char *name;
    } names[] = {{EHOSTUNREACH, "EHOSTUNREACH"},
                 {EHOSTDOWN, "EHOSTDOWN"},
                 {ECONNRESET, "ECONNRESET"},
                 {ETIMEDOUT, "ETIMEDOUT"},
                 {EAGAIN, "EAGAIN"},
                 {EINVAL, "EINVAL"},
                 {EMSGSIZE, "EMSGSIZE"},
                 {EINTR, "EINTR"},
                 {EIDRM, "EIDRM"},
                 {EBADMSG, "EBADMSG"}};
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].err == err)
            return names[i].name;
    return "EIO";
}

/*
 * Answer local request `req` (to address addr, alen bytes) with an error instead of a
 * reply, so that the requester learns at once why rather than waiting out its timeout:
 * the body is "shmbus-bridge: ADDR: WHY (ENAME)" (ENAME: EHOSTUNREACH, EHOSTDOWN,
 * ETIMEDOUT, ... as in err_name()). err > 0. c: the client the request was sent to.
 */
static void reply_error(shmbus_client *c, const struct shmbus_msg *req, const char *addr,
                        size_t alen, int err)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "shmbus-bridge: %.*s: %s (%s)", (int)alen, addr,
                     err_text(err), err_name(err));
    int rc;

    if (n < 0 || (size_t)n >= sizeof(body))
        n = (int)sizeof(body) - 1;
    rc = shmbus_reply(c, req, body, (size_t)n < msg_size ? (size_t)n : msg_size, 0, cfg.timeout_ms);
    if (rc < 0)
        count_error(NULL, "error reply to local client %" PRIu32 ": %s", req->src,
                    shmbus_strerror(rc));
    else
        add(&st.error_replies, 1);
}

/* ---- requests from remote nodes ----------------------------------------------------- */

/*
 * Requests from remote nodes are served by up to --requests threads at once, each with its
 * own client on the bus ("<as>.req", then "<as>.r2", ...; shmbus_request() waits on the
 * receive side of its client, so one client makes one request at a time). The first is made
 * at start; more are made as servers take requests (below), and stay.
 *
 * The servers take requests straight from PREFIX.NODE.req, a synchronous subscription that
 * all of them wait on in natsSubscription_NextMsg() (libnats pops each message under the
 * subscription's lock and wakes one waiter per message): libnats's reader thread wakes the
 * server that makes the request, with no callback thread handing it over in between (one
 * thread wake-up less per request across; docs/design.md, "Where a bridged round trip
 * goes"). A server that
 * takes a request and leaves no other server waiting starts one more, so that the next
 * request finds one; at --requests, it answers the oldest waiting requests with EAGAIN
 * while JOBS or more wait.
 */
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER; /* guards the four below */
static int servers, idle_servers, servers_stop;
static pthread_t server_threads[MAX_SERVE];

static int server_start(void);
static void refuse_request(natsMsg *m);

/* Serve one request m with client c (bufs of msg_size bytes): make it on the bus, publish
 * the reply (or the error) to the NATS reply subject. */
static void serve_request(natsMsg *m, shmbus_client *c, char *buf, char *rbuf, uint8_t *out,
                          size_t cap)
{
    struct frame f, r;
    struct shmbus_msg rh;
    const char *reply = natsMsg_GetReply(m), *slash;
    size_t org_node;
    long n, fl;
    int id, rc = 0;

    if (reply == NULL || frame_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &f) ||
        f.kind != FRAME_REQ) {
        count_error(&st.bad, "a malformed request on %s ignored", natsMsg_GetSubject(m));
        return;
    }
    slash = memchr(f.org, '/', f.org_len);
    if (slash == NULL || !frame_node_ok(f.org, (size_t)(slash - f.org))) {
        count_error(&st.bad, "a request with a bad origin ignored");
        return;
    }
    org_node = (size_t)(slash - f.org);
    seq_check(&f);
    add(&st.requests_in, 1);
    id = resolve(f.dst, f.dst_len);
    n = with_origin(&f, buf, msg_size);
    if (id < 0)
        rc = id;
    else if (n < 0)
        rc = (int)n;
    else
        rc = shmbus_request(c, (uint32_t)id, buf, (size_t)n, &rh, rbuf, msg_size,
                            SHMBUS_PRIO(f.prio), cfg.timeout_ms);
    if (rc < 0)
        count_error(&st.undeliverable, "request from %.*s to %.*s: %s", (int)f.org_len, f.org,
                    (int)f.dst_len, f.dst, shmbus_strerror(rc));
    memset(&r, 0, sizeof(r));
    r.kind = FRAME_REP;
    r.prio = f.prio;
    r.flags = SHMBUS_MSG_REPLY;
    r.epoch = epoch;
    r.seq = seq_next(f.org, org_node, "", 0, FRAME_REP);
    r.token = f.token;
    r.status = rc < 0 ? (uint32_t)-rc : 0;
    r.dst = f.org;
    r.dst_len = f.org_len;
    r.org = f.dst;
    r.org_len = f.dst_len;
    r.body = rbuf;
    r.body_len = rc < 0 ? 0 : (size_t)rc;
    fl = frame_encode(&r, out, cap);
    if (fl < 0 || publish(reply, NULL, out, (size_t)fl) != 0) {
        count_error(NULL, "reply to %.*s: cannot publish", (int)f.org_len, f.org);
        return;
    }
    if (rc >= 0) {
        add(&st.replies_out, 1);
        add(&st.in_msgs, 1);
        add(&st.in_bytes, f.body_len);
    }
}

/* After taking a request: if no other server is left waiting for the next one, start one
 * more (a request that arrives while all are busy finds it), or, at --requests already,
 * refuse the oldest waiting requests while JOBS or more wait. */
static void servers_follow(natsSubscription *sub)
{
    int n = 0;
    natsMsg *m;

    pthread_mutex_lock(&jobs_lock);
    if (idle_servers == 0 && !servers_stop && server_start() == -EAGAIN &&
        natsSubscription_GetPending(sub, &n, NULL) == NATS_OK)
        for (; n >= JOBS; n--) {
            if (natsSubscription_NextMsg(&m, sub, 0) != NATS_OK)
                break;
            count_error(&st.undeliverable, "%d requests wait already: one refused", JOBS);
            refuse_request(m);
            natsMsg_Destroy(m);
        }
    pthread_mutex_unlock(&jobs_lock);
}

/* A server thread: arg is its number (0: uses reqcl, joined at start). It waits for
 * requests on subs[1] until the bridge stops (servers_stop) or the connection closes. */
static void *server_main(void *arg)
{
    int k = (int)(intptr_t)arg;
    size_t cap = (size_t)msg_size + FRAME_HDR + 2 * ADDR_MAX;
    char *buf = malloc(msg_size), *rbuf = malloc(msg_size), name[SHMBUS_NAME_MAX + 1];
    uint8_t *out = malloc(cap);
    natsSubscription *sub = subs[1];
    shmbus_client *c = reqcl;
    natsStatus s;
    natsMsg *m;
    int rc = 0;

    if (k > 0) {
        snprintf(name, sizeof(name), "%s.r%d", cfg.as, k + 1);
        rc = shmbus_join(bus, 0, name, &c);
        if (rc < 0)
            count_error(NULL, "cannot serve more requests at once: join as %s: %s", name,
                        shmbus_strerror(rc));
        else
            shmbus_client_set_spin(c, (unsigned)cfg.spin_us);
    }
    while (rc == 0 && buf != NULL && rbuf != NULL && out != NULL) {
        pthread_mutex_lock(&jobs_lock);
        if (servers_stop) {
            pthread_mutex_unlock(&jobs_lock);
            break;
        }
        idle_servers++;
        pthread_mutex_unlock(&jobs_lock);
        m = NULL;
        s = natsSubscription_NextMsg(&m, sub, 500); /* 0.5 s: to see servers_stop */
        pthread_mutex_lock(&jobs_lock);
        idle_servers--;
        pthread_mutex_unlock(&jobs_lock);
        if (s == NATS_TIMEOUT || s == NATS_SLOW_CONSUMER) /* the latter: counted as dropped */
            continue;
        if (s != NATS_OK)
            break; /* the connection or the subscription closed: the bridge is stopping */
        servers_follow(sub);
        serve_request(m, c, buf, rbuf, out, cap);
        natsMsg_Destroy(m);
    }
    if (k > 0 && rc == 0)
        shmbus_leave(c);
    free(buf);
    free(rbuf);
    free(out);
    return NULL;
}

/* Start server thread number servers (the caller holds jobs_lock, or no server runs yet).
 * Signals stay blocked in it, as in every thread but the main one. 0 or -errno (-EAGAIN:
 * --requests run already). */
static int server_start(void)
{
    sigset_t set, old;
    int rc;

    if (servers >= cfg.requests)
        return -EAGAIN;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    rc = pthread_create(&server_threads[servers], NULL, server_main, (void *)(intptr_t)servers);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    servers++;
    return 0;
}

/* Stop the server threads once each has finished the request it is making (the caller
 * closed the NATS connection first, which wakes those waiting for one). */
static void servers_join(void)
{
    int i, n;

    pthread_mutex_lock(&jobs_lock);
    servers_stop = 1;
    n = servers;
    pthread_mutex_unlock(&jobs_lock);
    for (i = 0; i < n; i++)
        pthread_join(server_threads[i], NULL);
}

/* The NATS error reply to a request we cannot serve: status EAGAIN, no body. */
static void refuse_request(natsMsg *m)
{
    uint8_t out[FRAME_HDR + 2 * ADDR_MAX];
    struct frame f, r;
    long fl;

    if (natsMsg_GetReply(m) == NULL ||
        frame_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &f) ||
        f.kind != FRAME_REQ)
        return;
    memset(&r, 0, sizeof(r));
    r.kind = FRAME_REP;
    r.prio = f.prio;
    r.flags = SHMBUS_MSG_REPLY;
    r.epoch = epoch; /* seq 0: not numbered, so that the peer counts no gap */
    r.token = f.token;
    r.status = EAGAIN;
    r.dst = f.org;
    r.dst_len = f.org_len;
    r.org = f.dst;
    r.org_len = f.dst_len;
    fl = frame_encode(&r, out, sizeof(out));
    if (fl > 0)
        publish(natsMsg_GetReply(m), NULL, out, (size_t)fl);
}

/* Take the parked request of `token` out of the table: 1 if it was there. */
static int pending_take(uint64_t token, struct pending *out)
{
    struct pending *p;
    int found = 0;

    pthread_mutex_lock(&lock);
    p = &pending[token % PENDING];
    if (p->token == token && token != 0) {
        *out = *p;
        p->token = 0;
        found = 1;
    }
    pthread_mutex_unlock(&lock);
    return found;
}

/* PREFIX.NODE.rep.TOKEN: a reply to a request a local client made through us, or the NATS
 * server's "no responders" status when no bridge of that node was subscribed. */
static void on_rep(natsConnection *c, natsSubscription *sub, natsMsg *m, void *arg)
{
    const char *subj = natsMsg_GetSubject(m), *dot = strrchr(subj, '.');
    struct pending p;
    struct frame f;
    int rc;

    (void)c, (void)sub, (void)arg;
    if (natsMsg_IsNoResponders(m)) {
        if (dot != NULL && pending_take(strtoull(dot + 1, NULL, 10), &p)) {
            count_error(&st.undeliverable, "request to %s: no bridge answers for its node", p.addr);
            reply_error(cl, &p.req, p.addr, strlen(p.addr), EHOSTDOWN);
        }
        goto out;
    }
    if (frame_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &f) ||
        f.kind != FRAME_REP) {
        count_error(&st.bad, "a malformed reply on %s ignored", subj);
        goto out;
    }
    seq_check(&f);
    if (!pending_take(f.token, &p)) {
        count_error(&st.undeliverable, "a reply from %.*s came too late", (int)f.org_len, f.org);
        goto out;
    }
    if (f.status != 0) {
        count_error(&st.undeliverable, "request to %s failed there: %s (%s)", p.addr,
                    err_text((int)f.status), err_name((int)f.status));
        reply_error(cl, &p.req, p.addr, strlen(p.addr), (int)f.status);
        goto out;
    }
    rc = shmbus_reply(cl, &p.req, f.body, f.body_len, 0, cfg.timeout_ms);
    if (rc < 0) {
        count_error(&st.undeliverable, "reply from %.*s to local client %" PRIu32 ": %s",
                    (int)f.org_len, f.org, p.req.src, shmbus_strerror(rc));
        goto out;
    }
    add(&st.replies_in, 1);
    add(&st.in_msgs, 1);
    add(&st.in_bytes, f.body_len);
out:
    natsMsg_Destroy(m);
}

/* PREFIX.NODE.ping: answer, so that a peer knows our subscriptions are on its server. */
static void on_ping(natsConnection *c, natsSubscription *sub, natsMsg *m, void *arg)
{
    (void)sub, (void)arg;
    if (natsMsg_GetReply(m) != NULL)
        natsConnection_Publish(c, natsMsg_GetReply(m), NULL, 0);
    natsMsg_Destroy(m);
}

/* ---- topics and work queues across hosts ------------------------------------------- */

/* PREFIX.KIND.NAME: the subject of topic or work queue NAME (KIND "topic" or "queue"). */
static void group_subject(char *out, size_t cap, const char *kind, const char *name, size_t len)
{
    snprintf(out, cap, "%s.%s.%.*s", cfg.prefix, kind, (int)len, name);
}

/* Did frame f come from this node (our own export, back from NATS)? */
static int from_here(const struct frame *f)
{
    const char *slash = memchr(f->org, '/', f->org_len);

    return slash != NULL && same(cfg.node, f->org, (size_t)(slash - f->org));
}

/*
 * PREFIX.topic.T (arg: T's index in cfg.topics): what another node published to T goes to
 * T's subscribers here, body unchanged, from our client "<as>.pub". That client is a member
 * of T too (to export), so it gets a copy of its own publish: the topic thread drops
 * copies whose sender is itself, so nothing imported is exported again. Our own exports
 * come back from NATS too (a subscriber on the same connection): dropped by origin.
 */
static void on_topic(natsConnection *c, natsSubscription *sub, natsMsg *m, void *arg)
{
    const char *name = cfg.topics[(intptr_t)arg];
    struct frame f;
    int rc;

    (void)c, (void)sub;
    if (frame_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &f) ||
        f.kind != FRAME_TOPIC || !same(name, f.dst, f.dst_len)) {
        count_error(&st.bad, "a malformed frame on %s ignored", natsMsg_GetSubject(m));
        goto out;
    }
    if (from_here(&f))
        goto out;
    seq_check(&f);
    rc = shmbus_publish(pubcl, name, f.body, f.body_len, SHMBUS_PRIO(f.prio), cfg.timeout_ms);
    if (rc < 0 && rc != -ETIMEDOUT && rc != -EAGAIN) {
        count_error(&st.undeliverable, "topic %s from %.*s: %s", name, (int)f.org_len, f.org,
                    shmbus_strerror(rc));
        goto out;
    }
    if (rc < 0) /* delivered to all but a subscriber whose mailbox stayed full */
        count_error(&st.undeliverable, "topic %s from %.*s: a subscriber missed it (full)", name,
                    (int)f.org_len, f.org);
    add(&st.topic_in, 1);
    add(&st.in_msgs, 1);
    add(&st.in_bytes, f.body_len);
out:
    natsMsg_Destroy(m);
}

/*
 * Export one copy the topic thread took: a copy published here (not by us) goes to
 * PREFIX.topic.T. Never waits for NATS: while it is unreachable libnats keeps what it can
 * in its reconnect buffer; what does not fit is dropped and counted, so that local
 * publishers never wait for the network (they would, for a member whose mailbox is full).
 */
static void export_topic(const struct shmbus_msg *h, const char *data, size_t len, uint8_t *out,
                         size_t cap)
{
    char org[ADDR_MAX + 8], subj[256];
    const char *name;
    struct frame f;
    long fl;

    if (h->src == shmbus_client_id(pubcl))
        return; /* our own import */
    if (!(h->flags & SHMBUS_MSG_TOPIC) || h->corr >= SHMBUS_GROUPS ||
        topic_of[h->corr][0] == '\0') {
        count_error(&st.bad, "client %" PRIu32 ": a message to %s.pub that is not a topic's",
                    h->src, cfg.as);
        return;
    }
    name = topic_of[h->corr];
    origin_of(h->src, org, sizeof(org));
    memset(&f, 0, sizeof(f));
    f.kind = FRAME_TOPIC;
    f.prio = h->prio;
    f.flags = h->flags;
    f.epoch = epoch;
    f.seq = seq_next("", 0, name, strlen(name), FRAME_TOPIC);
    f.dst = name;
    f.dst_len = strlen(name);
    f.org = org;
    f.org_len = strlen(org);
    f.body = data;
    f.body_len = len;
    group_subject(subj, sizeof(subj), "topic", name, strlen(name));
    fl = frame_encode(&f, out, cap);
    if (fl < 0 || publish(subj, NULL, out, (size_t)fl) != 0) {
        seq_unsend("", 0, name, strlen(name), FRAME_TOPIC);
        count_error(&st.undeliverable, "topic %s: NATS cannot take it now: dropped", name);
        return;
    }
    add(&st.topic_out, 1);
    add(&st.out_msgs, 1);
    add(&st.out_bytes, len);
}

/* The topic thread: drains "<as>.pub", the member of every exported topic. */
static void *topic_main(void *arg)
{
    size_t cap = (size_t)msg_size + FRAME_HDR + 2 * ADDR_MAX;
    char *buf = malloc(msg_size);
    uint8_t *out = malloc(cap);
    struct shmbus_msg h;
    int n;

    (void)arg;
    while (!stop && buf != NULL && out != NULL) {
        n = shmbus_recv(pubcl, &h, buf, msg_size, 100);
        if (n == -ETIMEDOUT || n == -EAGAIN || n == -EINTR)
            continue;
        if (n < 0) {
            count_error(NULL, "%s.pub: %s: topics are no longer exported", cfg.as,
                        shmbus_strerror(n));
            break;
        }
        export_topic(&h, buf, (size_t)n, out, cap);
    }
    free(buf);
    free(out);
    return NULL;
}

/*
 * PREFIX.queue.Q (arg: Q's index in cfg.queues), a NATS queue group: NATS gave this
 * message to us among the bridges serving Q; one local member of group Q gets it
 * (shmbus_send_group(): the least loaded). If Q has no member any more (the last one left
 * after we subscribed), it goes back to NATS once, for another node's bridge.
 */
static void on_queue(natsConnection *c, natsSubscription *sub, natsMsg *m, void *arg)
{
    const char *name = cfg.queues[(intptr_t)arg];
    uint8_t *out = NULL;
    struct frame f;
    long fl;
    int rc;

    (void)c, (void)sub;
    if (frame_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &f) ||
        f.kind != FRAME_QUEUE || !same(name, f.dst, f.dst_len)) {
        count_error(&st.bad, "a malformed frame on %s ignored", natsMsg_GetSubject(m));
        goto out;
    }
    rc = shmbus_send_group(cl, name, f.body, f.body_len, SHMBUS_PRIO(f.prio), cfg.timeout_ms);
    if (rc == -EHOSTUNREACH && f.hops == 0 && (out = malloc(natsMsg_GetDataLength(m))) != NULL) {
        memcpy(out, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
        out[36] = 1; /* hops (frame.h) */
        fl = natsMsg_GetDataLength(m);
        if (publish(natsMsg_GetSubject(m), natsMsg_GetReply(m), out, (size_t)fl) == 0)
            goto out;
    }
    if (rc < 0) {
        count_error(&st.undeliverable, "work queue %s from %.*s: %s", name, (int)f.org_len, f.org,
                    shmbus_strerror(rc));
        goto out;
    }
    add(&st.queue_in, 1);
    add(&st.in_msgs, 1);
    add(&st.in_bytes, f.body_len);
out:
    free(out);
    natsMsg_Destroy(m);
}

/* PREFIX.NODE.nr.Q: the NATS server says no bridge serves work queue Q (none has a
 * member of Q, or none runs with --queue Q): the message we sent is lost; count it. */
static void on_noresp(natsConnection *c, natsSubscription *sub, natsMsg *m, void *arg)
{
    const char *subj = natsMsg_GetSubject(m);
    size_t skip = strlen(cfg.prefix) + strlen(cfg.node) + 5; /* PREFIX.NODE.nr. */

    (void)c, (void)sub, (void)arg;
    if (natsMsg_IsNoResponders(m) && strlen(subj) > skip)
        count_error(&st.undeliverable,
                    "work queue %s: no node has a member of it (no bridge serves it): a "
                    "message was dropped",
                    subj + skip);
    natsMsg_Destroy(m);
}

/*
 * Follow the groups of the queues we serve: subscribe to PREFIX.queue.Q (queue group
 * "workers") while group Q has a live member on our bus, and drain the subscription when
 * it has none (what NATS already gave us is still delivered, or passed back). Main thread,
 * every 100 ms.
 */
static void follow_queues(void)
{
    struct shmbus_group_info g[SHMBUS_GROUPS];
    char subj[256];
    int n, i, j, members;

    if (cfg.nqueues == 0)
        return;
    n = shmbus_group_list(bus, g, SHMBUS_GROUPS);
    if (n < 0)
        return;
    for (i = 0; i < cfg.nqueues; i++) {
        struct served *q = &served[i];

        if (q->retired != NULL && !natsSubscription_IsValid(q->retired)) {
            natsSubscription_Destroy(q->retired);
            q->retired = NULL;
        }
        members = 0;
        for (j = 0; j < n && j < SHMBUS_GROUPS; j++)
            if (strcmp(g[j].name, cfg.queues[i]) == 0)
                members = (int)g[j].members;
        if (members > 0 && q->sub == NULL) {
            group_subject(subj, sizeof(subj), "queue", cfg.queues[i], strlen(cfg.queues[i]));
            if (natsConnection_QueueSubscribe(&q->sub, nc, subj, "workers", on_queue,
                                              (void *)(intptr_t)i) != NATS_OK) {
                count_error(NULL, "subscribe %s: %s", subj, nats_GetLastError(NULL));
                q->sub = NULL;
                continue;
            }
            natsConnection_FlushTimeout(nc, 1000); /* on the server before we say so */
            logmsg("work queue %s: a member here; serving it", cfg.queues[i]);
        } else if (members == 0 && q->sub != NULL && q->retired == NULL) {
            natsSubscription_Drain(q->sub);
            q->retired = q->sub;
            q->sub = NULL;
            logmsg("work queue %s: no member here; not serving it", cfg.queues[i]);
        }
    }
}

/* Join "<as>.pub", make it a member of every --topic, and learn the topics' group indexes
 * (the corr of what is published to them). */
static int join_topics(void)
{
    struct shmbus_group_info g[SHMBUS_GROUPS];
    char name[SHMBUS_NAME_MAX + 1];
    int rc, i, j, n;

    if (cfg.ntopics == 0)
        return 0;
    snprintf(name, sizeof(name), "%s.pub", cfg.as);
    rc = shmbus_join(bus, 0, name, &pubcl);
    for (i = 0; rc == 0 && i < cfg.ntopics; i++)
        rc = shmbus_subscribe(pubcl, cfg.topics[i], 0);
    n = rc == 0 ? shmbus_group_list(bus, g, SHMBUS_GROUPS) : rc;
    if (n < 0) {
        fprintf(stderr, "shmbus: bridge: %s: topics (as %s): %s\n", cfg.bus, name,
                shmbus_strerror(n));
        return -1;
    }
    for (i = 0; i < n && i < SHMBUS_GROUPS; i++)
        for (j = 0; j < cfg.ntopics; j++)
            if (strcmp(g[i].name, cfg.topics[j]) == 0 && g[i].index < SHMBUS_GROUPS)
                snprintf(topic_of[g[i].index], sizeof(topic_of[0]), "%s", cfg.topics[j]);
    shmbus_client_set_spin(pubcl, (unsigned)cfg.spin_us);
    return 0;
}

static void on_disconnected(natsConnection *c, void *arg)
{
    (void)c, (void)arg;
    atomic_store_explicit(&st.connected, 0, memory_order_relaxed);
    if (stop)
        return; /* our own close */
    add(&st.disconnects, 1);
    logmsg("disconnected from NATS; reconnecting (local messages wait in the bridge's "
           "mailbox)");
}

static void on_reconnected(natsConnection *c, void *arg)
{
    (void)c, (void)arg;
    atomic_fetch_add_explicit(&st.generation, 1, memory_order_relaxed);
    atomic_store_explicit(&st.connected, 1, memory_order_relaxed);
    add(&st.reconnects, 1);
    logmsg("reconnected to NATS");
}

static void on_nats_error(natsConnection *c, natsSubscription *sub, natsStatus err, void *arg)
{
    (void)c, (void)sub, (void)arg;
    count_error(NULL, "NATS: %s", natsStatus_GetText(err));
}

/* The main thread's entry for node (made if new), or NULL if SEQ_KEYS nodes are known. */
static struct peer *peer_find(const char *node, size_t len)
{
    size_t i;

    for (i = 0; i < SEQ_KEYS; i++) {
        if (peers[i].node[0] == '\0') {
            memcpy(peers[i].node, node, len);
            return &peers[i];
        }
        if (same(peers[i].node, node, len))
            return &peers[i];
    }
    return NULL;
}

/* ---- JetStream (--jetstream): direct messages at least once ------------------------- */

/*
 * With --jetstream, direct messages for node N go to PREFIX.N.js, the subject of stream
 * SHMBUS_PREFIX_N (file storage, work-queue retention) that N's bridge makes at start, and
 * reach N's bus through that bridge's durable pull consumer "bridge", fetched by its
 * JetStream thread: one message in flight (MaxAckPending 1, so that a redelivery cannot
 * overtake), acknowledged only once the local client has it in its mailbox. The sending bridge
 * consumes a message from its mailbox only once the stream acknowledged it, and gives each a
 * message id made of the bus's nonce, the sender's id, its sequence number and send time, so that a
 * publish retried after a timeout, or by the next bridge after a crash, is dropped by the stream's
 * duplicate window (2 minutes) rather than stored twice. What remains: a receiving bridge (or the
 * server) that dies between the local delivery and the acknowledgement delivers that message again.
 * Requests, topics and work queues still go through core NATS.
 */
static void stream_name(char *out, size_t cap, const char *node, size_t len)
{
    snprintf(out, cap, "SHMBUS_%s_%.*s", cfg.prefix, (int)len, node);
}

/* One message of our stream: deliver, then acknowledge. m stays the caller's. */
static void deliver_js(natsMsg *m)
{
    char *buf = malloc(msg_size);
    struct frame f;
    int rc;

    if (buf == NULL) {
        natsMsg_NakWithDelay(m, 1000, NULL);
        goto out;
    }
    if (frame_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &f) ||
        f.kind != FRAME_MSG) {
        count_error(&st.bad, "a malformed frame in the stream dropped");
        natsMsg_Term(m, NULL);
        goto out;
    }
    rc = deliver_local(&f, buf);
    if (rc == -ETIMEDOUT || rc == -EAGAIN || rc == -EINTR) {
        /* Its mailbox stayed full: again in a second; nothing passes it meanwhile. */
        natsMsg_NakWithDelay(m, 1000, NULL);
        goto out;
    }
    natsMsg_Ack(m, NULL);
    count_delivery(&f, rc);
out:
    free(buf);
}

/*
 * The JetStream thread: fetch our stream's messages one at a time from the durable pull
 * consumer and deliver them. A pull consumer rather than a push one: each fetch is a new
 * request, so delivery resumes by itself once a restarted server is back (a push consumer
 * restored by nats-server 2.9 could stay silent after a restart in our tests).
 */
static void *js_main(void *arg)
{
    natsMsgList list;
    natsStatus s;
    int i;

    (void)arg;
    while (!stop) {
        memset(&list, 0, sizeof(list));
        s = natsSubscription_Fetch(&list, js_sub, 1, 500, NULL);
        for (i = 0; s == NATS_OK && i < list.Count; i++)
            deliver_js(list.Msgs[i]);
        natsMsgList_Destroy(&list);
        if (s != NATS_OK && s != NATS_TIMEOUT)
            nap(100); /* NATS is away: no busy loop */
    }
    return NULL;
}

/* Make (or find) our stream and bind our durable consumer to it. */
static int jetstream_setup(void)
{
    char name[96], subj[256];
    const char *subjects[1] = {subj};
    jsStreamConfig sc;
    jsStreamInfo *si = NULL;
    jsSubOptions so;
    jsErrCode jerr = 0;
    natsStatus s;

    stream_name(name, sizeof(name), cfg.node, strlen(cfg.node));
    subject(subj, sizeof(subj), cfg.node, strlen(cfg.node), "js");
    s = natsConnection_JetStream(&js, nc, NULL);
    if (s == NATS_OK) {
        jsStreamConfig_Init(&sc);
        sc.Name = name;
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.Retention = js_WorkQueuePolicy;
        s = js_AddStream(&si, js, &sc, NULL, &jerr);
        jsStreamInfo_Destroy(si);
        if (jerr == JSStreamNameExistErr)
            s = NATS_OK; /* made by an earlier bridge, with other settings: use it */
    }
    if (s != NATS_OK) {
        fprintf(stderr,
                "shmbus: bridge: --jetstream: stream %s: %s (does the server run with "
                "JetStream, nats-server -js?)\n",
                name,
                nats_GetLastError(NULL) != NULL ? nats_GetLastError(NULL) : natsStatus_GetText(s));
        return -1;
    }
    jsSubOptions_Init(&so);
    so.Stream = name;
    so.ManualAck = true;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.AckWait = (int64_t)(cfg.timeout_ms + 5000) * 1000000; /* nanoseconds */
    so.Config.MaxAckPending = 1;
    so.Config.DeliverPolicy = js_DeliverAll;
    s = js_PullSubscribe(&js_sub, js, subj, "bridge", NULL, &so, &jerr);
    if (s != NATS_OK) {
        fprintf(stderr, "shmbus: bridge: --jetstream: consumer on %s: %s\n", name,
                nats_GetLastError(NULL));
        return -1;
    }
    return start_thread(&js_thread, js_main, &js_thread_on, "JetStream");
}

/* Publish the frame out (len bytes) for node to its stream. Returns 0 (stored), -EHOSTDOWN
 * (refused and counted: consume it) or -EAGAIN (not now: it stays in the mailbox). */
static int forward_js(const struct shmbus_msg *h, const char *node, size_t nlen, const uint8_t *out,
                      size_t len)
{
    char subj[256], id[96];
    jsPubOptions po;
    jsPubAck *pa = NULL;
    struct peer *p;
    jsErrCode jerr = 0;
    natsStatus s;

    subject(subj, sizeof(subj), node, nlen, "js");
    snprintf(id, sizeof(id), "%016" PRIx64 "-%" PRIu32 "-%" PRIu64 "-%" PRIu64, bus_nonce, h->src,
             h->seq, h->sent_ns);
    jsPubOptions_Init(&po);
    po.MsgId = id;
    po.MaxWait = 2000;
    s = js_Publish(&pa, js, subj, out, (int)len, &po, &jerr);
    jsPubAck_Destroy(pa);
    p = peer_find(node, nlen);
    if (s == NATS_OK) {
        if (p != NULL)
            p->js_since = 0;
        return 0;
    }
    /* "No responders": no stream takes that subject. A server that has just restarted says
     * so too, for a few seconds while it restores its streams: give it 10 s in a row. */
    if (s == NATS_NO_RESPONDERS && p != NULL && p->js_since == 0)
        p->js_since = now_ms();
    if (s == NATS_NO_RESPONDERS && (p == NULL || now_ms() - p->js_since >= 10000)) {
        count_error(&st.undeliverable,
                    "node %.*s has no JetStream stream (its bridge runs without --jetstream?): "
                    "message from client %" PRIu32 " dropped",
                    (int)nlen, node, h->src);
        return -EHOSTDOWN;
    }
    if (s == NATS_NO_RESPONDERS)
        nap(100);   /* not a busy loop meanwhile */
    return -EAGAIN; /* again later; the message id makes a stored one a duplicate */
}

/* ---- from the bus to NATS -------------------------------------------------------------- */

/*
 * May we publish to `node` now? Core NATS drops what has no subscriber, so before the first
 * message to a node, and again after each reconnection (ours or, as the server restarted,
 * likely theirs too), we ask its bridge PREFIX.NODE.ping: an answer means its
 * subscriptions are on our server. Returns 0 (go), -EAGAIN (not yet: NATS is down, or a
 * bridge that answered before has not come back yet, for up to 5 s: the message waits in
 * our mailbox) or -EHOSTUNREACH (no bridge answers for that node: the caller drops the
 * message and counts it; we ping again at most once a second).
 */
static int peer_ready(const char *node, size_t len)
{
    unsigned gen = atomic_load_explicit(&st.generation, memory_order_relaxed);
    char subj[256];
    natsMsg *r = NULL;
    struct peer *p = NULL;
    int64_t now;

    if (!atomic_load_explicit(&st.connected, memory_order_relaxed))
        return -EAGAIN;
    p = peer_find(node, len);
    if (p == NULL)
        return 0; /* more nodes than we follow: publish and hope */
    if (p->gen == gen)
        return 0;
    now = now_ms();
    if (p->absent && now < p->next_ping)
        return -EHOSTUNREACH;
    subject(subj, sizeof(subj), node, len, "ping");
    if (natsConnection_Request(&r, nc, subj, NULL, 0, 500) == NATS_OK) {
        natsMsg_Destroy(r);
        p->gen = gen;
        p->absent = 0;
        p->since = 0;
        return 0;
    }
    if (!p->absent && p->gen != 0) {
        if (p->since == 0)
            p->since = now;
        if (now - p->since < 5000)
            return -EAGAIN;
    }
    p->absent = 1;
    p->since = 0;
    p->next_ping = now + 1000;
    return -EHOSTUNREACH;
}

/*
 * Publish the message the main loop peeked. Returns 0 when it is done with (published, or
 * refused and counted: it is consumed either way; a refused request gets an error reply),
 * -EAGAIN when NATS cannot take it now (its reconnect buffer is full or it is closed): it
 * stays in the mailbox for a later try.
 */
static int forward(const struct shmbus_msg *h, const char *data, size_t len, uint8_t *out,
                   size_t cap)
{
    const char *node, *target, *body;
    size_t nlen, tlen, blen, alen;
    char org[ADDR_MAX + 8], subj[256], reply[256];
    int request = (h->flags & SHMBUS_MSG_REQUEST) != 0, queue;
    struct pending *p, gone;
    struct frame f;
    uint64_t token = 0;
    long fl;
    int s;

    if (h->flags & SHMBUS_MSG_BROADCAST)
        return 0; /* broadcasts stay on their bus */
    if (h->flags & SHMBUS_MSG_REPLY) {
        count_error(&st.bad, "a reply from client %" PRIu32 " to the bridge ignored", h->src);
        return 0;
    }
    if (frame_split(data, len, &node, &nlen, &target, &tlen, &body, &blen) != 0) {
        count_error(&st.bad,
                    "client %" PRIu32 ": a message without a \"NODE/NAME \" address ignored",
                    h->src);
        if (request) {
            const char *sp = memchr(data, ' ', len);

            alen = sp != NULL ? (size_t)(sp - data) : len;
            reply_error(cl, h, data, alen < ADDR_MAX ? alen : ADDR_MAX, EINVAL);
        }
        return 0;
    }
    alen = (size_t)(target + tlen - node);
    queue = nlen == 1 && node[0] == '*';
    if (queue && request) {
        count_error(&st.bad, "client %" PRIu32 ": a request to work queue %.*s refused", h->src,
                    (int)tlen, target);
        reply_error(cl, h, node, alen, EINVAL);
        return 0;
    }
    if (queue || (cfg.jetstream && !request)) {
        if (!atomic_load_explicit(&st.connected, memory_order_relaxed))
            return -EAGAIN; /* (the stream keeps it for a bridge that is down, not NATS) */
    } else {
        s = peer_ready(node, nlen);
        if (s == -EAGAIN)
            return -EAGAIN;
        if (s < 0) {
            count_error(&st.undeliverable,
                        "no bridge answers for node %.*s: message from client %" PRIu32 " dropped",
                        (int)nlen, node, h->src);
            if (request)
                reply_error(cl, h, node, alen, EHOSTDOWN);
            return 0;
        }
    }
    origin_of(h->src, org, sizeof(org));
    memset(&f, 0, sizeof(f));
    f.kind = queue ? FRAME_QUEUE : request ? FRAME_REQ : FRAME_MSG;
    f.prio = h->prio;
    f.flags = h->flags;
    f.epoch = epoch;
    f.dst = target;
    f.dst_len = tlen;
    f.org = org;
    f.org_len = strlen(org);
    f.body = body;
    f.body_len = blen;
    reply[0] = '\0';
    if (queue) {
        /* Not numbered: each goes to one of several bridges, which cannot see gaps. The
         * reply subject only ever gets the server's "no responders" (on_noresp()). */
        group_subject(subj, sizeof(subj), "queue", target, tlen);
        snprintf(reply, sizeof(reply), "%s.%s.nr.%.*s", cfg.prefix, cfg.node, (int)tlen, target);
    } else if (cfg.jetstream && !request) {
        /* Not numbered either: the stream loses nothing, and may deliver twice. */
    } else {
        subject(subj, sizeof(subj), node, nlen, request ? "req" : "msg");
        f.seq = seq_next(node, nlen, "", 0, f.kind);
    }
    if (request) {
        pthread_mutex_lock(&lock);
        token = next_token++;
        p = &pending[token % PENDING];
        p->token = token; /* an older request still waiting here is forgotten */
        p->req = *h;
        snprintf(p->addr, sizeof(p->addr), "%.*s", (int)alen, node);
        pthread_mutex_unlock(&lock);
        f.token = token;
        snprintf(reply, sizeof(reply), "%s.%s.rep.%" PRIu64, cfg.prefix, cfg.node, token);
    }
    fl = frame_encode(&f, out, cap);
    if (fl < 0) {
        if (f.seq != 0)
            seq_unsend(node, nlen, "", 0, f.kind);
        count_error(&st.bad, "client %" PRIu32 ": message too large", h->src);
        if (request && pending_take(token, &gone))
            reply_error(cl, h, node, alen, EMSGSIZE);
        return 0;
    }
    if (cfg.jetstream && !request && !queue)
        s = forward_js(h, node, nlen, out, (size_t)fl);
    else
        s = publish(subj, reply[0] != '\0' ? reply : NULL, out, (size_t)fl);
    if (s == -EHOSTDOWN)
        return 0; /* dropped, and counted */
    if (s != 0) {
        if (token != 0)
            pending_take(token, &gone);
        if (f.seq != 0) /* not sent: take the number back so that the peer sees no gap */
            seq_unsend(node, nlen, "", 0, f.kind);
        return -EAGAIN;
    }
    add(&st.out_msgs, 1);
    add(&st.out_bytes, blen);
    if (request)
        add(&st.requests_out, 1);
    if (queue)
        add(&st.queue_out, 1);
    return 0;
}

/* ---- state file ------------------------------------------------------------------------ */

/* This bridge's state file (state.c). */
static int state_path(char *out, size_t cap)
{
    return bridge_state_path(out, cap, cfg.bus, cfg.as);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", (unsigned char)*s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

/* Write the state, atomically (a reader sees the old file or the new one). */
static void write_state(void)
{
    char path[PATH_MAX], tmp[PATH_MAX + 16], err[sizeof(last_error)];
    struct shmbus_client_info info[64];
    uint32_t depth = 0, myid = shmbus_client_id(cl);
    int64_t dropped = 0;
    int n, i, nservers;
    FILE *f;

    if (state_path(path, sizeof(path)) != 0)
        return;
    pthread_mutex_lock(&jobs_lock);
    nservers = servers;
    pthread_mutex_unlock(&jobs_lock);
    n = shmbus_list(bus, info, 64);
    for (i = 0; i < n && i < 64; i++)
        if (info[i].id == myid)
            depth = info[i].depth;
    for (i = 0; i < 5 + 2 * MAX_GROUPS; i++) {
        natsSubscription *sub = i < 5                ? subs[i]
                                : i < 5 + MAX_GROUPS ? topic_subs[i - 5]
                                                     : served[i - 5 - MAX_GROUPS].sub;
        int64_t d = 0;

        if (sub != NULL && natsSubscription_GetDropped(sub, &d) == NATS_OK)
            dropped += d;
    }
    if (subs[0] != NULL) /* else closed: keep the last count */
        atomic_store_explicit(&st.dropped_slow, (uint64_t)dropped, memory_order_relaxed);
    dropped = (int64_t)get(&st.dropped_slow);
    pthread_mutex_lock(&lock);
    memcpy(err, last_error, sizeof(err));
    pthread_mutex_unlock(&lock);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL)
        return;
    fprintf(f, "{\"bus\":");
    json_str(f, cfg.bus);
    fprintf(f, ",\"node\":");
    json_str(f, cfg.node);
    fprintf(f, ",\"client\":");
    json_str(f, cfg.as);
    fprintf(f, ",\"id\":%" PRIu32 ",\"pid\":%ld,\"url\":", myid, (long)getpid());
    json_str(f, cfg.url);
    fprintf(f,
            ",\"connected\":%s,\"disconnects\":%" PRIu64 ",\"reconnects\":%" PRIu64
            ",\"out_msgs\":%" PRIu64 ",\"out_bytes\":%" PRIu64 ",\"in_msgs\":%" PRIu64
            ",\"in_bytes\":%" PRIu64 ",\"requests_out\":%" PRIu64 ",\"replies_in\":%" PRIu64
            ",\"requests_in\":%" PRIu64 ",\"replies_out\":%" PRIu64 ",\"queue\":%" PRIu32
            ",\"nats_buffered\":%d,\"lost\":%" PRIu64 ",\"dropped_slow\":%" PRIu64
            ",\"undeliverable\":%" PRIu64 ",\"bad\":%" PRIu64 ",\"errors\":%" PRIu64
            ",\"topic_out\":%" PRIu64 ",\"topic_in\":%" PRIu64 ",\"queue_out\":%" PRIu64
            ",\"queue_in\":%" PRIu64 ",\"error_replies\":%" PRIu64 ",\"servers\":%d"
            ",\"jetstream\":%d,\"last_error\":",
            atomic_load_explicit(&st.connected, memory_order_relaxed) ? "true" : "false",
            get(&st.disconnects), get(&st.reconnects), get(&st.out_msgs), get(&st.out_bytes),
            get(&st.in_msgs), get(&st.in_bytes), get(&st.requests_out), get(&st.replies_in),
            get(&st.requests_in), get(&st.replies_out), depth,
            nc != NULL ? natsConnection_Buffered(nc) : 0, get(&st.lost), (uint64_t)dropped,
            get(&st.undeliverable), get(&st.bad), get(&st.errors), get(&st.topic_out),
            get(&st.topic_in), get(&st.queue_out), get(&st.queue_in), get(&st.error_replies),
            nservers, cfg.jetstream);
    json_str(f, err);
    /* The lists last: the monitor reads single numbers out of this line by their key. */
    fprintf(f, ",\"topics\":[");
    for (i = 0; i < cfg.ntopics; i++) {
        fputs(i > 0 ? "," : "", f);
        json_str(f, cfg.topics[i]);
    }
    fprintf(f, "],\"serving\":[");
    for (i = 0, n = 0; i < cfg.nqueues; i++)
        if (served[i].sub != NULL) {
            fputs(n++ > 0 ? "," : "", f);
            json_str(f, cfg.queues[i]);
        }
    fprintf(f, "]}\n");
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        unlink(tmp);
}

/* shmbus-bridge --stats BUS: print the state file of the bridge; 1 if it is not running. */
static int show_state(void)
{
    char path[PATH_MAX], line[4096];
    const char *p;
    FILE *f;
    long pid = 0;
    int rc = state_path(path, sizeof(path));

    if (rc != 0) {
        fprintf(stderr, "shmbus: bridge: %s: %s\n", cfg.bus, shmbus_strerror(rc));
        return EXIT_FAIL;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "shmbus: bridge: %s: no bridge has run on this bus (%s: %s)\n", cfg.bus,
                path, strerror(errno));
        return EXIT_FAIL;
    }
    if (fgets(line, sizeof(line), f) == NULL)
        line[0] = '\0';
    fclose(f);
    p = strstr(line, "\"pid\":");
    if (p != NULL)
        pid = strtol(p + 6, NULL, 10);
    fputs(line, stdout);
    if (!bridge_running(pid)) {
        fprintf(stderr, "shmbus: bridge: %s: not running (above: its last state)\n", cfg.bus);
        return EXIT_FAIL;
    }
    return 0;
}

/* ---- start-up ---------------------------------------------------------------------------- */

static int nats_options(natsOptions **opts)
{
    natsStatus s = natsOptions_Create(opts);
    char name[96];

    snprintf(name, sizeof(name), "shmbus-bridge %s/%s", cfg.node, cfg.bus);
    if (s == NATS_OK)
        s = natsOptions_SetURL(*opts, cfg.url);
    if (s == NATS_OK)
        s = natsOptions_SetName(*opts, name);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(*opts, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(*opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(*opts, -1); /* forever; the state file says so */
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(*opts, 250);
    /* Write each publish at once rather than leave it to libnats's flusher thread: one
     * thread hand-off less per message, which is most of the bridge's added latency. */
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(*opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(*opts, on_disconnected, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(*opts, on_reconnected, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(*opts, on_nats_error, NULL);
    if (s == NATS_OK && cfg.creds != NULL)
        s = natsOptions_SetUserCredentialsFromFiles(*opts, cfg.creds, NULL);
    if (s == NATS_OK && cfg.user != NULL)
        s = natsOptions_SetUserInfo(*opts, cfg.user, cfg.password);
    if (s == NATS_OK && (cfg.tls_ca != NULL || cfg.tls_cert != NULL))
        s = natsOptions_SetSecure(*opts, true);
    if (s == NATS_OK && cfg.tls_ca != NULL)
        s = natsOptions_LoadCATrustedCertificates(*opts, cfg.tls_ca);
    if (s == NATS_OK && cfg.tls_cert != NULL)
        s = natsOptions_LoadCertificatesChain(*opts, cfg.tls_cert, cfg.tls_key);
    if (s != NATS_OK) {
        fprintf(stderr, "shmbus: bridge: NATS options: %s\n", nats_GetLastError(NULL));
        return -1;
    }
    return 0;
}

/* Sleep ms milliseconds, or less if a signal asks us to stop. */
static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (!stop && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Connect, retrying with backoff (250 ms doubling to 10 s) unless --once. NATS threads are
 * made with SIGINT/SIGTERM blocked so that the main thread is the one that sees them. */
static int connect_nats(natsOptions *opts)
{
    sigset_t set, old;
    int delay = 250;
    natsStatus s;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    for (;;) {
        pthread_sigmask(SIG_BLOCK, &set, &old);
        s = natsConnection_Connect(&nc, opts);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (s == NATS_OK)
            return 0;
        if (cfg.once) {
            fprintf(stderr, "shmbus: bridge: %s: cannot connect: %s\n", cfg.url,
                    natsStatus_GetText(s));
            return -1;
        }
        fprintf(stderr, "shmbus: bridge: %s: cannot connect: %s; retrying in %.2g s\n", cfg.url,
                natsStatus_GetText(s), delay / 1000.0);
        nap(delay);
        if (stop)
            return -1;
        delay = delay * 2 > 10000 ? 10000 : delay * 2;
    }
}

static int subscribe(void)
{
    static const char *const kinds[5] = {"msg", "req", "rep.*", "ping", "nr.>"};
    natsMsgHandler cbs[5] = {on_msg, NULL, on_rep, on_ping, on_noresp};
    char subj[256];
    natsStatus s;
    int i;

    for (i = 0; i < 5; i++) {
        subject(subj, sizeof(subj), cfg.node, strlen(cfg.node), kinds[i]);
        /* requests: synchronous, taken by the server threads themselves (server_main()) */
        s = cbs[i] == NULL ? natsConnection_SubscribeSync(&subs[i], nc, subj)
                           : natsConnection_Subscribe(&subs[i], nc, subj, cbs[i], NULL);
        if (s != NATS_OK) {
            fprintf(stderr, "shmbus: bridge: subscribe %s: %s\n", subj, nats_GetLastError(NULL));
            return -1;
        }
    }
    if (server_start() != 0) {
        fprintf(stderr, "shmbus: bridge: cannot start a thread to serve requests\n");
        return -1;
    }
    for (i = 0; i < cfg.ntopics; i++) {
        group_subject(subj, sizeof(subj), "topic", cfg.topics[i], strlen(cfg.topics[i]));
        if (natsConnection_Subscribe(&topic_subs[i], nc, subj, on_topic, (void *)(intptr_t)i) !=
            NATS_OK) {
            fprintf(stderr, "shmbus: bridge: subscribe %s: %s\n", subj, nats_GetLastError(NULL));
            return -1;
        }
    }
    /* The subscriptions must be on the server before we say we are ready. */
    if (natsConnection_FlushTimeout(nc, 5000) != NATS_OK) {
        fprintf(stderr, "shmbus: bridge: %s: %s\n", cfg.url, nats_GetLastError(NULL));
        return -1;
    }
    return 0;
}

static int join_bus(void)
{
    struct shmbus_bus_info info;
    char reqname[SHMBUS_NAME_MAX + 1];
    int rc = shmbus_bus_open(cfg.bus, NULL, SHMBUS_OPEN_CREATE, &bus);

    if (rc == 0)
        rc = shmbus_bus_info(bus, &info);
    if (rc < 0) {
        fprintf(stderr, "shmbus: bridge: %s: %s\n", cfg.bus, shmbus_strerror(rc));
        return -1;
    }
    msg_size = info.msg_size;
    bus_nonce = info.nonce;
    shmbus_reap(bus); /* a bridge killed with -9 may still hold our name */
    rc = shmbus_join(bus, 0, cfg.as, &cl);
    snprintf(reqname, sizeof(reqname), "%s.req", cfg.as);
    if (rc == 0)
        rc = shmbus_join(bus, 0, reqname, &reqcl);
    if (rc < 0) {
        fprintf(stderr, "shmbus: bridge: %s: join as %s: %s\n", cfg.bus, cfg.as,
                shmbus_strerror(rc));
        return -1;
    }
    shmbus_client_set_spin(cl, (unsigned)cfg.spin_us);
    shmbus_client_set_spin(reqcl, (unsigned)cfg.spin_us);
    return join_topics();
}

static void usage(FILE *f)
{
    fputs("Usage: shmbus-bridge BUS --node NAME [--nats URL] [OPTION]...\n"
          "       shmbus-bridge BUS --stats [--as NAME]\n"
          "       shmbus-bridge --bench [--nats URL] [--count N]\n"
          "Carry messages between BUS and the buses of other hosts through NATS.\n"
          "Local programs send \"NODE/NAME body\" (or \"NODE/#ID body\") to the client\n"
          "named `bridge`; the bridge of NODE delivers \"ORIGIN body\" to NAME there.\n"
          "\"*/QUEUE body\" gives body to one member of group QUEUE on any node whose\n"
          "bridge has --queue QUEUE. What is published to a topic given with --topic\n"
          "reaches its subscribers on every node whose bridge has the same --topic.\n"
          "\n"
          "  --nats URL         NATS server (default nats://127.0.0.1:4222)\n"
          "  --node NAME        this host's node name ([A-Za-z0-9_-])\n"
          "  --as NAME          the bridge's client name on BUS (default bridge)\n"
          "  --prefix P         NATS subject prefix (default shmbus)\n"
          "  --topic NAME       carry topic NAME both ways (repeatable, up to 32)\n"
          "  --queue NAME       serve work queue NAME (\"*/NAME\") for other nodes while\n"
          "                     group NAME has members here (repeatable, up to 32)\n"
          "  --requests N       serve up to N requests from other nodes at once, each with\n"
          "                     its own client on BUS (default 4, at most 16)\n"
          "  --jetstream        direct messages at least once, through a JetStream stream\n"
          "                     per node (every bridge needs it; the server runs -js)\n"
          "  --creds FILE       NATS credentials file (JWT and seed)\n"
          "  --user U --password P   NATS user and password ($SHMBUS_NATS_PASSWORD)\n"
          "  --tls-ca FILE --tls-cert FILE --tls-key FILE   TLS to the NATS server\n"
          "  --once             fail if NATS is unreachable at start (default: retry)\n"
          "  --timeout MS       how long a delivery may wait for room (default 5000)\n"
          "  --interval MS      how often the state file is written (default 1000)\n"
          "  --spin USEC        spin before sleeping when waiting on the bus (default 0)\n"
          "  --stats            print the running bridge's state (JSON) and exit\n"
          "  --bench [--count N]  round trips across two bridges (two temporary buses)\n"
          "                     against the NATS C client direct, same server; one run\n"
          "  --quiet            log nothing but fatal errors\n"
          "See shmbus-bridge(1).\n",
          f);
}

static int parse_ms(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < 0 || v > INT_MAX)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, int *stats)
{
    static const struct option longopts[] = {{"nats", required_argument, NULL, 'n'},
                                             {"node", required_argument, NULL, 'N'},
                                             {"as", required_argument, NULL, 'a'},
                                             {"prefix", required_argument, NULL, 'P'},
                                             {"creds", required_argument, NULL, 'c'},
                                             {"user", required_argument, NULL, 'u'},
                                             {"password", required_argument, NULL, 'p'},
                                             {"tls-ca", required_argument, NULL, 'C'},
                                             {"tls-cert", required_argument, NULL, 'T'},
                                             {"tls-key", required_argument, NULL, 'K'},
                                             {"once", no_argument, NULL, '1'},
                                             {"timeout", required_argument, NULL, 't'},
                                             {"interval", required_argument, NULL, 'i'},
                                             {"stats", no_argument, NULL, 's'},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {"bench", no_argument, NULL, 'B'},
                                             {"count", required_argument, NULL, 'k'},
                                             {"spin", required_argument, NULL, 'S'},
                                             {"topic", required_argument, NULL, 'o'},
                                             {"queue", required_argument, NULL, 'Q'},
                                             {"requests", required_argument, NULL, 'r'},
                                             {"jetstream", no_argument, NULL, 'J'},
                                             {NULL, 0, NULL, 0}};
    int o;

    cfg.url = "nats://127.0.0.1:4222";
    cfg.as = "bridge";
    cfg.prefix = "shmbus";
    cfg.timeout_ms = 5000;
    cfg.interval_ms = 1000;
    cfg.requests = 4;
    while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (o) {
        case 'o':
        case 'Q':
            if (!frame_group_ok(optarg, strlen(optarg))) {
                fprintf(stderr,
                        "shmbus: bridge: --%s %s: a group name of at most 31 characters "
                        "[A-Za-z0-9._-], no leading, trailing or double dot\n",
                        o == 'o' ? "topic" : "queue", optarg);
                return EXIT_USAGE;
            }
            if ((o == 'o' ? cfg.ntopics : cfg.nqueues) == MAX_GROUPS) {
                fprintf(stderr, "shmbus: bridge: --%s: at most %d\n", o == 'o' ? "topic" : "queue",
                        MAX_GROUPS);
                return EXIT_USAGE;
            }
            if (o == 'o')
                cfg.topics[cfg.ntopics++] = optarg;
            else
                cfg.queues[cfg.nqueues++] = optarg;
            break;
        case 'J':
            cfg.jetstream = 1;
            break;
        case 'r':
            if (parse_ms(optarg, &cfg.requests) != 0 || cfg.requests < 1 ||
                cfg.requests > MAX_SERVE) {
                fprintf(stderr, "shmbus: bridge: --requests: not a number from 1 to %d: %s\n",
                        MAX_SERVE, optarg);
                return EXIT_USAGE;
            }
            break;
        case 'n':
            cfg.url = optarg;
            break;
        case 'N':
            cfg.node = optarg;
            break;
        case 'a':
            cfg.as = optarg;
            break;
        case 'P':
            cfg.prefix = optarg;
            break;
        case 'c':
            cfg.creds = optarg;
            break;
        case 'u':
            cfg.user = optarg;
            break;
        case 'p':
            cfg.password = optarg;
            break;
        case 'C':
            cfg.tls_ca = optarg;
            break;
        case 'T':
            cfg.tls_cert = optarg;
            break;
        case 'K':
            cfg.tls_key = optarg;
            break;
        case '1':
            cfg.once = 1;
            break;
        case 'q':
            cfg.quiet = 1;
            break;
        case 's':
            *stats = 1;
            break;
        case 'B':
            cfg.bench = 1;
            break;
        case 'S':
            if (parse_ms(optarg, &cfg.spin_us) != 0) {
                fprintf(stderr, "shmbus: bridge: --spin: not a number of microseconds: %s\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'k':
            if (parse_ms(optarg, &cfg.count) != 0 || cfg.count < 1) {
                fprintf(stderr, "shmbus: bridge: --count: not a positive number: %s\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 't':
        case 'i':
            if (parse_ms(optarg, o == 't' ? &cfg.timeout_ms : &cfg.interval_ms) != 0 ||
                (o == 'i' && cfg.interval_ms == 0)) {
                fprintf(stderr, "shmbus: bridge: --%s: not a number of milliseconds: %s\n",
                        o == 't' ? "timeout" : "interval", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("shmbus-bridge %s\n", shmbus_version());
            exit(0);
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (cfg.bench)
        return optind == argc ? 0 : EXIT_USAGE;
    if (optind != argc - 1) {
        fprintf(stderr, "shmbus: bridge: %s\n", optind >= argc ? "no BUS given" : "one BUS only");
        usage(stderr);
        return EXIT_USAGE;
    }
    cfg.bus = argv[optind];
    if (strlen(cfg.as) > SHMBUS_NAME_MAX - 4 || !frame_name_ok(cfg.as, strlen(cfg.as)) ||
        cfg.as[0] == '#') {
        fprintf(stderr,
                "shmbus: bridge: --as %s: a client name of at most %d characters "
                "[A-Za-z0-9._-]\n",
                cfg.as, SHMBUS_NAME_MAX - 4);
        return EXIT_USAGE;
    }
    if (*stats)
        return 0;
    if (cfg.node == NULL || !frame_node_ok(cfg.node, strlen(cfg.node))) {
        fprintf(stderr, "shmbus: bridge: --node: %s\n",
                cfg.node == NULL ? "required (this host's node name)"
                                 : "at most 31 characters [A-Za-z0-9_-] (no dot)");
        return EXIT_USAGE;
    }
    if (strcmp(cfg.node, "topic") == 0 || strcmp(cfg.node, "queue") == 0) {
        fprintf(stderr, "shmbus: bridge: --node %s: reserved (PREFIX.%s.* are its subjects)\n",
                cfg.node, cfg.node);
        return EXIT_USAGE;
    }
    if (!frame_node_ok(cfg.prefix, strlen(cfg.prefix))) {
        fprintf(stderr, "shmbus: bridge: --prefix %s: at most 31 characters [A-Za-z0-9_-]\n",
                cfg.prefix);
        return EXIT_USAGE;
    }
    if (cfg.password == NULL)
        cfg.password = getenv("SHMBUS_NATS_PASSWORD");
    if ((cfg.password != NULL && cfg.user == NULL) ||
        (cfg.tls_key != NULL) != (cfg.tls_cert != NULL)) {
        fprintf(stderr, "shmbus: bridge: %s\n",
                cfg.user == NULL && cfg.password != NULL ? "--password needs --user"
                                                         : "--tls-cert and --tls-key go together");
        return EXIT_USAGE;
    }
    return 0;
}

/* Start the thread that exports topics (none without --topic). */
static int start_topic_thread(void)
{
    return pubcl == NULL ? 0 : start_thread(&topic_thread, topic_main, &topic_thread_on, "topic");
}

/* The main loop: peek, publish, consume; the state file once per interval; the work queues
 * we serve followed every 100 ms. */
static int run(void)
{
    size_t cap = (size_t)msg_size + FRAME_HDR + 2 * ADDR_MAX;
    char *buf = malloc(msg_size);
    uint8_t *out = malloc(cap);
    struct timespec now;
    int64_t next = 0, next_queues = 0, t;
    int rc = 0, n;

    if (buf == NULL || out == NULL) {
        fprintf(stderr, "shmbus: bridge: %s\n", strerror(ENOMEM));
        free(buf);
        free(out);
        return EXIT_FAIL;
    }
    while (!stop) {
        struct shmbus_msg h;

        clock_gettime(CLOCK_MONOTONIC, &now);
        t = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
        if (t >= next_queues) {
            follow_queues();
            next_queues = t + 100;
        }
        if (t >= next) {
            write_state();
            next = t + cfg.interval_ms;
        }
        n = shmbus_peek(cl, &h, buf, msg_size, 100);
        if (n == -ETIMEDOUT || n == -EAGAIN || n == -EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "shmbus: bridge: %s: %s\n", cfg.bus, shmbus_strerror(n));
            rc = EXIT_FAIL;
            break;
        }
        if (forward(&h, buf, (size_t)n, out, cap) == -EAGAIN) {
            nap(50); /* NATS cannot take it now (closed, or its buffer is full): try again */
            continue;
        }
        shmbus_consume(cl);
    }
    free(buf);
    free(out);
    return rc;
}

int main(int argc, char **argv)
{
    natsOptions *opts = NULL;
    struct sigaction sa;
    int stats = 0, rc, i, asked;

    rc = parse_args(argc, argv, &stats);
    if (rc != 0)
        return rc;
    if (stats)
        return show_state();
    if (cfg.bench)
        return bridge_bench("/proc/self/exe", cfg.url, cfg.count > 0 ? cfg.count : 4000,
                            cfg.spin_us);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (getrandom(&epoch, sizeof(epoch), 0) != (ssize_t)sizeof(epoch))
        epoch = (uint64_t)time(NULL) << 20 ^ (uint64_t)getpid();
    if (join_bus() != 0)
        return EXIT_FAIL;
    write_state();
    rc = EXIT_FAIL;
    if (nats_Open(-1) != NATS_OK || nats_options(&opts) != 0 || connect_nats(opts) != 0)
        goto out;
    atomic_store_explicit(&st.generation, 1, memory_order_relaxed);
    atomic_store_explicit(&st.connected, 1, memory_order_relaxed);
    if ((cfg.jetstream && jetstream_setup() != 0) || subscribe() != 0 || start_topic_thread() != 0)
        goto out;
    logmsg("bus %s, client %s (id %" PRIu32 "), node %s, NATS %s: ready", cfg.bus, cfg.as,
           shmbus_client_id(cl), cfg.node, cfg.url);
    rc = run();
out:
    asked = stop;
    stop = 1; /* the topic thread's end too */
    if (topic_thread_on)
        pthread_join(topic_thread, NULL);
    if (js_thread_on) /* its fetch returns within 0.5 s */
        pthread_join(js_thread, NULL);
    if (nc != NULL) {
        natsConnection_Close(nc);
        servers_join(); /* each finishes the request it is making (its reply is lost) */
        write_state();  /* the last counts, while the subscriptions are still there */
        for (i = 0; i < 5; i++) {
            natsSubscription_Destroy(subs[i]);
            subs[i] = NULL;
        }
        /* Destroyed, never unsubscribed: that would delete the durable consumer. */
        natsSubscription_Destroy(js_sub);
        js_sub = NULL;
        jsCtx_Destroy(js);
        js = NULL;
        for (i = 0; i < MAX_GROUPS; i++) {
            natsSubscription_Destroy(topic_subs[i]);
            natsSubscription_Destroy(served[i].sub);
            natsSubscription_Destroy(served[i].retired);
            topic_subs[i] = served[i].sub = served[i].retired = NULL;
        }
        natsConnection_Destroy(nc);
        nc = NULL;
    }
    natsOptions_Destroy(opts);
    nats_CloseAndWait(cfg.timeout_ms + 2000);
    atomic_store_explicit(&st.connected, 0, memory_order_relaxed);
    write_state();
    if (asked)
        rc = 0; /* asked to stop: a clean end */
    shmbus_leave(pubcl);
    shmbus_leave(reqcl);
    shmbus_leave_keep(cl); /* what waits for the bridge waits for the next one */
    shmbus_bus_close(bus);
    return rc;
}
