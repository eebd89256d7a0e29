/*
 * test_monitor_load: `shmbus monitor` holds 1,000 live views (/events streams) at once and
 * keeps answering /metrics and /api/bus while they are open.
 *
 * On loopback, bounded in count and time: start the monitor on a small bus, open VIEWS
 * event streams with one epoll loop, wait until every one has received a sample, then time
 * SCRAPES scrapes of /metrics and of /api/bus while they are held, check that every view
 * still receives the next samples, read the monitor's RSS, close everything and stop the
 * monitor. Prints views held, scrape latency and memory. Asserts that all views got data
 * and all scrapes were answered (within a generous functional bound of 5 s each), not any
 * performance figure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "shmbus.h"

#define VIEWS   1000
#define SCRAPES 20

struct view {
    int fd;
    int sent;     /* the request has been written */
    int events;   /* "data: " lines seen */
    char tail[8]; /* the last bytes read, so a marker split across reads is found */
    size_t ntail;
};

static pid_t mon_pid = -1;

/* Start `shmbus monitor bus` on a free loopback port; returns the port. */
static int start_monitor(const char *bus)
{
    const char *build = getenv("BUILD");
    char exe[4096];
    snprintf(exe, sizeof(exe), "%s/bin/shmbus", build ? build : "build");
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    fflush(NULL);
    mon_pid = fork();
    assert_true(mon_pid >= 0);
    if (mon_pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execl(exe, "shmbus", "monitor", bus, "--listen", "127.0.0.1:0", "--interval", "200",
              (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char line[256];
    int port = -1;
    /* Blocking read of the first line: the monitor prints it once it listens (bounded by
     * the test runner's timeout should it never come). */
    if (fgets(line, sizeof(line), f) != NULL) {
        char *p = strstr(line, "http://127.0.0.1:");
        if (p)
            port = atoi(p + strlen("http://127.0.0.1:"));
    }
    fclose(f);
    assert_true(port > 0);
    return port;
}

static int connect_to(int port, int nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    assert_true(r == 0 || (nonblock && errno == EINPROGRESS));
    return fd;
}

/* One GET with Connection: close on a blocking socket with a 5 s timeout; returns the status
 * and fills body (NUL-terminated, truncated to cap). */
static int scrape(int port, const char *path, char *body, size_t cap, uint64_t *ns)
{
    uint64_t t0 = th_now_ns();
    int fd = connect_to(port, 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t got = 0;
    char buf[65536];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r <= 0)
            break;
        size_t k = (size_t)r;
        if (got + k >= cap)
            k = cap - 1 - got;
        memcpy(body + got, buf, k);
        got += k;
    }
    body[got] = '\0';
    close(fd);
    *ns = th_now_ns() - t0;
    int status = 0;
    sscanf(body, "HTTP/1.%*d %d", &status);
    return status;
}

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* Read what is there on view v and count event lines. Returns -1 if the stream ended. */
static int pump(struct view *v)
{
    char buf[16384 + sizeof(v->tail)];
    for (;;) {
        memcpy(buf, v->tail, v->ntail);
        ssize_t r = read(v->fd, buf + v->ntail, sizeof(buf) - v->ntail);
        if (r == 0)
            return -1;
        if (r < 0)
            return errno == EAGAIN ? 0 : -1;
        size_t len = v->ntail + (size_t)r;
        for (const char *p = buf; (p = memmem(p, (size_t)(buf + len - p), "data: ", 6)); p += 6)
            v->events++;
        /* Keep the last 5 bytes: "data: " cut after them is found next time, and a marker
         * wholly inside them was already counted (it needs 6). */
        v->ntail = len < 5 ? len : 5;
        memcpy(v->tail, buf + len - v->ntail, v->ntail);
    }
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* Run the epoll loop until every view has at least `want` events or the deadline. Returns
 * how many views reached it. */
static int pump_until(int ep, struct view *views, int want, uint64_t deadline)
{
    static const char req[] = "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    for (;;) {
        int ok = 0;
        for (int i = 0; i < VIEWS; i++)
            ok += views[i].events >= want;
        if (ok == VIEWS || th_now_ns() > deadline)
            return ok;
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 100);
        for (int k = 0; k < n; k++) {
            struct view *v = &views[evs[k].data.u32];
            if (!v->sent && (evs[k].events & EPOLLOUT)) {
                assert_int_equal(write(v->fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
                v->sent = 1;
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[k].data.u32};
                epoll_ctl(ep, EPOLL_CTL_MOD, v->fd, &ev);
            }
            if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                if (pump(v) < 0) {
                    fail_msg("view %u: the stream ended (%d events)", evs[k].data.u32, v->events);
                }
        }
    }
}

static void test_thousand_views(void **state)
{
    (void)state;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < VIEWS + 64) {
        rl.rlim_cur = rl.rlim_max < VIEWS + 64 ? rl.rlim_max : VIEWS + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < VIEWS + 64)
        fail_msg("the open-file limit (hard %llu) is below the %d sockets this test needs",
                 (unsigned long long)rl.rlim_max, VIEWS + 64);

    const char *name = th_name("monload");
    struct shmbus_bus_opts o = {.max_clients = 8, .slots = 16, .msg_size = 64};
    shmbus_bus *b;
    shmbus_client *a, *c;
    assert_int_equal(shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &b), 0);
    assert_int_equal(shmbus_join(b, 1, "alpha", &a), 0);
    assert_int_equal(shmbus_join(b, 2, "beta", &c), 0);
    assert_int_equal(shmbus_send(a, 2, "hi", 2, 0, 0), 0);

    int port = start_monitor(name);
    long rss0 = rss_kb(mon_pid);

    /* Open the views in waves of 100, so the listen backlog is never the question. */
    static struct view views[VIEWS];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    assert_true(ep >= 0);
    uint64_t t0 = th_now_ns();
    for (int w = 0; w < VIEWS; w += 100) {
        for (int i = w; i < w + 100; i++) {
            views[i] = (struct view){.fd = connect_to(port, 1)};
            struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)i};
            assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, views[i].fd, &ev), 0);
        }
        uint64_t deadline = th_now_ns() + 20000000000ull;
        int ok;
        do {
            ok = 0;
            pump_until(ep, views, 1, th_now_ns() + 100000000ull);
            for (int i = w; i < w + 100; i++)
                ok += views[i].events >= 1;
        } while (ok < 100 && th_now_ns() < deadline);
        assert_int_equal(ok, 100);
    }
    double open_s = (double)(th_now_ns() - t0) / 1e9;
    int held = pump_until(ep, views, 1, th_now_ns());
    assert_int_equal(held, VIEWS);

    /* Scrapes while all views are open. */
    static char body[1 << 20];
    uint64_t lat_m[SCRAPES], lat_a[SCRAPES];
    for (int i = 0; i < SCRAPES; i++) {
        assert_int_equal(scrape(port, "/metrics", body, sizeof(body), &lat_m[i]), 200);
        assert_non_null(strstr(body, "shmbus_"));
        assert_int_equal(scrape(port, "/api/bus", body, sizeof(body), &lat_a[i]), 200);
        assert_non_null(strstr(body, "\"alpha\""));
        assert_true(lat_m[i] < 5000000000ull && lat_a[i] < 5000000000ull);
        /* Keep the views drained meanwhile, as browsers would. */
        pump_until(ep, views, 1, th_now_ns());
    }
    long rss1 = rss_kb(mon_pid);

    /* Every view keeps streaming: each receives at least two samples more. */
    int base = 1 << 30;
    for (int i = 0; i < VIEWS; i++)
        if (views[i].events < base)
            base = views[i].events;
    int still = pump_until(ep, views, base + 2, th_now_ns() + 20000000000ull);

    qsort(lat_m, SCRAPES, sizeof(lat_m[0]), cmp_u64);
    qsort(lat_a, SCRAPES, sizeof(lat_a[0]), cmp_u64);
    print_message("monitor load: %d live views held (opened in %.1f s), %d of them kept "
                  "streaming; with them open, /metrics median %.2f ms max %.2f ms, /api/bus "
                  "median %.2f ms max %.2f ms over %d scrapes each; monitor RSS %ld kB before, "
                  "%ld kB with the views open (%.1f kB per view)\n",
                  held, open_s, still, lat_m[SCRAPES / 2] / 1e6, lat_m[SCRAPES - 1] / 1e6,
                  lat_a[SCRAPES / 2] / 1e6, lat_a[SCRAPES - 1] / 1e6, SCRAPES, rss0, rss1,
                  (double)(rss1 - rss0) / VIEWS);
    assert_int_equal(still, VIEWS);
    /* Bounded memory: far below a thread (and its stack) per view; a sanitizer build (SAN
     * set by make check) keeps shadow memory and redzones besides. */
    const char *san = getenv("SAN");
    long bound_kb = san && *san ? 256 * 1024 : 64 * 1024;
    assert_true(rss1 - rss0 < bound_kb);

    for (int i = 0; i < VIEWS; i++)
        close(views[i].fd);
    close(ep);
    /* A scrape after the crowd left, and the monitor stops cleanly. */
    uint64_t ns;
    assert_int_equal(scrape(port, "/api/bus", body, sizeof(body), &ns), 200);
    kill(mon_pid, SIGTERM);
    assert_int_equal(th_wait(mon_pid, 10000), 0);
    mon_pid = -1;

    shmbus_leave(a);
    shmbus_leave(c);
    shmbus_bus_close(b);
    assert_int_equal(shmbus_bus_destroy(name), 0);
}

static int teardown(void **state)
{
    if (mon_pid > 0) {
        kill(mon_pid, SIGKILL);
        waitpid(mon_pid, NULL, 0);
    }
    return th_cleanup(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thousand_views),
    };
    th_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, teardown);
}
