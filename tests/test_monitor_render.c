/*
 * test_monitor_render: what `shmbus monitor` serves as /api/bus and /metrics, from samples
 * built by hand - in particular from client names a scribbling peer could have left in the
 * segment (quotes, backslashes, control bytes, no terminating NUL), which must still give
 * valid JSON and valid Prometheus lines. The HTTP side is tests/test_monitor.sh.
 *
 * The renderer is part of the shmbus command, not of the library, so it is compiled in here.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "../tools/monitor_render.c"

static struct sb_mon_client clients[3];
static struct sb_mon_flow flows[2];

/* A sample of three clients; client 1 sends 100/s, 60/s of it to 2 and 40/s to 3, as the
 * bus's per-pair counts say (there is no flow between 2 and 3). */
static struct sb_mon_snap make_snap(void)
{
    struct sb_mon_snap s = {0};
    memset(clients, 0, sizeof(clients));
    memset(flows, 0, sizeof(flows));
    s.seq = 7;
    s.interval_ms = 1000;
    strcpy(s.bus.name, "demo");
    s.bus.max_clients = 64;
    for (unsigned i = 0; i < 3; i++) {
        clients[i].info.id = i + 1;
        clients[i].info.state = SHMBUS_CLIENT_LIVE;
        clients[i].info.capacity = 256;
    }
    strcpy(clients[0].info.name, "alpha");
    clients[0].sent_rate = 100;
    clients[1].recv_rate = 60;
    clients[2].recv_rate = 40;
    clients[0].has_rate = clients[1].has_rate = clients[2].has_rate = 1;
    clients[1].info.counters.lat_hist[shmbus_hist_bucket(5000)] = 10;
    clients[1].samples = 10;
    clients[1].p50 = clients[1].p90 = clients[1].p99 = shmbus_hist_value(shmbus_hist_bucket(5000));
    s.stats.lat_hist[shmbus_hist_bucket(5000)] = 10;
    s.stats.lat_count = 10;
    s.stats.lat_sum_ns = 50000;
    s.stats.sent = 1000;
    s.stats.received = 990;
    flows[0] = (struct sb_mon_flow){{1, 2, 600}, 60, 1};
    flows[1] = (struct sb_mon_flow){{1, 3, 390}, 40, 1};
    s.flows = flows;
    s.nflows = 2;
    s.has_rate = 1;
    s.sent_rate = s.recv_rate = 100;
    s.live = 3;
    s.clients = clients;
    s.n = 3;
    return s;
}

/* Every byte printable ASCII (or a newline where allowed): no raw control or 8-bit byte. */
static void assert_clean(const struct sb_mon_buf *b, int newlines)
{
    assert_false(b->oom);
    assert_int_equal(strlen(b->p), b->len);
    for (size_t i = 0; i < b->len; i++) {
        unsigned char c = (unsigned char)b->p[i];
        if (!(c >= 0x20 && c < 0x7f) && !(newlines && c == '\n'))
            fail_msg("byte 0x%02x at %zu in: %s", c, i, b->p);
    }
}

static void test_json_edges(void **state)
{
    (void)state;
    struct sb_mon_snap s = make_snap();
    struct sb_mon_buf b = {0};
    sb_mon_render_json(&s, &b);
    assert_clean(&b, 0);
    assert_non_null(strstr(b.p, "\"seq\":7,"));
    assert_non_null(strstr(b.p, "\"error\":null,"));
    assert_non_null(strstr(b.p, "\"name\":\"alpha\""));
    /* The edges are the flows, exactly: no 2 -> 3, no estimate. */
    assert_null(strstr(b.p, "estimated"));
    assert_non_null(strstr(b.p, "\"edges\":[{\"from\":1,\"to\":2,\"messages\":600,\"rate\":60.00},"
                                "{\"from\":1,\"to\":3,\"messages\":390,\"rate\":40.00}]"));
    assert_non_null(strstr(b.p, "\"latency_hist\":[[0,0],"));
    /* Totals from the bus's counters; a client without samples has null percentiles. */
    assert_non_null(strstr(b.p, "\"totals\":{\"sent\":1000,\"received\":990,"));
    assert_non_null(strstr(b.p, "\"latency_ns\":{\"samples\":0,\"p50\":null,\"p90\":null,"
                                "\"p99\":null}"));
    assert_non_null(strstr(b.p, "\"latency_sum_ns\":50000}"));
    sb_mon_buf_free(&b);

    /* The first sample: rates are not known, and say so (null), not 0. */
    s.has_rate = 0;
    flows[0].has_rate = flows[1].has_rate = 0;
    clients[0].has_rate = 0;
    struct sb_mon_buf b2 = {0};
    sb_mon_render_json(&s, &b2);
    assert_non_null(strstr(b2.p, "{\"from\":1,\"to\":2,\"messages\":600,\"rate\":null}"));
    assert_non_null(strstr(b2.p, "\"sent_rate\":null,\"recv_rate\":null,\"latency_ns\""));
    sb_mon_buf_free(&b2);
}

static void test_json_hostile_names(void **state)
{
    (void)state;
    struct sb_mon_snap s = make_snap();
    memcpy(clients[1].info.name, "a\"b\\c\n\xff", 8);
    memset(clients[2].info.name, 'x', sizeof(clients[2].info.name)); /* no NUL */
    memset(s.bus.name, 'y', sizeof(s.bus.name));
    clients[0].sent_rate = NAN; /* known, but not a number */
    struct sb_mon_buf b = {0};
    sb_mon_render_json(&s, &b);
    assert_clean(&b, 0);
    assert_non_null(strstr(b.p, "\"name\":\"a\\\"b\\\\c\\n\\u00ff\""));
    char want[64];
    snprintf(want, sizeof(want), "\"name\":\"%.*s\"", (int)sizeof(clients[2].info.name),
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    assert_non_null(strstr(b.p, want));
    assert_non_null(strstr(b.p, "\"sent_rate\":0.00")); /* NaN is not JSON */
    sb_mon_buf_free(&b);
}

static void test_metrics(void **state)
{
    (void)state;
    struct sb_mon_snap s = make_snap();
    memcpy(clients[1].info.name, "a\"b\\c\n\xff", 8);
    clients[0].info.counters.sent = 12345;
    struct sb_mon_buf b = {0};
    sb_mon_render_metrics(&s, &b);
    assert_clean(&b, 1);
    assert_non_null(strstr(b.p, "# TYPE shmbus_client_sent_messages_total counter\n"));
    assert_non_null(strstr(
        b.p,
        "shmbus_client_sent_messages_total{bus=\"demo\",client=\"1\",name=\"alpha\"} 12345\n"));
    assert_non_null(strstr(b.p, "client=\"2\",name=\"a\\\"b\\\\c\\n?\"} "));
    /* The histogram: the 5 us sample is under le=0.000008192 (2^13 ns), not under 2^12. */
    assert_non_null(
        strstr(b.p, "shmbus_bus_latency_seconds_bucket{bus=\"demo\",le=\"0.000004096\"} 0\n"));
    assert_non_null(
        strstr(b.p, "shmbus_bus_latency_seconds_bucket{bus=\"demo\",le=\"0.000008192\"} 10\n"));
    assert_non_null(
        strstr(b.p, "shmbus_bus_latency_seconds_bucket{bus=\"demo\",le=\"+Inf\"} 10\n"));
    assert_non_null(strstr(b.p, "shmbus_bus_latency_seconds_count{bus=\"demo\"} 10\n"));
    assert_non_null(strstr(b.p, "shmbus_bus_latency_seconds_sum{bus=\"demo\"} 0.000050000\n"));
    /* Counters of the bus, exact flows, build info. */
    assert_non_null(strstr(b.p, "# TYPE shmbus_bus_sent_messages_total counter\n"
                                "shmbus_bus_sent_messages_total{bus=\"demo\"} 1000\n"));
    assert_non_null(
        strstr(b.p, "shmbus_flow_messages_total{bus=\"demo\",src=\"1\",dst=\"3\"} 390\n"));
    assert_null(strstr(b.p, "dst=\"2\",src"));
    assert_null(strstr(b.p, "src=\"2\""));
    char info[128];
    snprintf(info, sizeof(info), "shmbus_build_info{bus=\"demo\",version=\"%s\",",
             shmbus_version());
    assert_non_null(strstr(b.p, info));
    /* No data is no sample: client 2 has latency samples, 1 and 3 have none. */
    assert_non_null(strstr(b.p, "shmbus_client_latency_p50_seconds{bus=\"demo\",client=\"2\""));
    assert_null(strstr(b.p, "shmbus_client_latency_p50_seconds{bus=\"demo\",client=\"1\""));
    assert_null(strstr(b.p, "shmbus_client_latency_p99_seconds{bus=\"demo\",client=\"3\""));
    /* Every line is a comment or ends in a number. */
    for (char *line = b.p; *line; line = strchr(line, '\n') + 1) {
        assert_non_null(strchr(line, '\n'));
        if (line[0] != '#')
            assert_true(strchr(line, ' ') != NULL);
    }
    sb_mon_buf_free(&b);
}

static void test_bus_gone(void **state)
{
    (void)state;
    struct sb_mon_snap s = {0};
    strcpy(s.bus.name, "gone");
    s.err = -EIDRM;
    struct sb_mon_buf b = {0};
    sb_mon_render_json(&s, &b);
    assert_clean(&b, 0);
    char want[128];
    snprintf(want, sizeof(want), "\"error\":\"%s\"", shmbus_strerror(-EIDRM));
    assert_non_null(strstr(b.p, want));
    assert_non_null(strstr(b.p, "\"clients\":[]"));
    b.len = 0;
    sb_mon_render_metrics(&s, &b);
    assert_string_equal(b.p, "# HELP shmbus_monitor_up 1 if the monitor's last look at the bus "
                             "succeeded, 0 if it failed.\n"
                             "# TYPE shmbus_monitor_up gauge\n"
                             "shmbus_monitor_up{bus=\"gone\"} 0\n");
    sb_mon_buf_free(&b);
}

/* Named groups: in the JSON (with their delivery rate) and as labelled /metrics series; a
 * scribbled group name still gives valid output. */
static void test_groups(void **state)
{
    (void)state;
    struct sb_mon_snap s = make_snap();
    s.ngroups = 2;
    s.groups[0] = (struct shmbus_group_info){.index = 3,
                                             .members = 2,
                                             .leader = 1,
                                             .epoch = 4,
                                             .published = 10,
                                             .missed = 1,
                                             .queued = 5,
                                             .elections = 4,
                                             .redelivered = 2,
                                             .lost = 7};
    strcpy(s.groups[0].name, "news");
    s.group_rate[0] = 12.5;
    s.groups[1].index = 9;
    memset(s.groups[1].name, '"', sizeof(s.groups[1].name)); /* no NUL, all quotes */
    struct sb_mon_buf b = {0};
    sb_mon_render_json(&s, &b);
    assert_clean(&b, 0);
    assert_non_null(strstr(b.p, "\"groups\":[{\"index\":3,\"name\":\"news\",\"members\":2,"
                                "\"leader\":1,\"epoch\":4,\"published\":10,\"missed\":1,"
                                "\"queued\":5,\"elections\":4,\"redelivered\":2,\"lost\":7,"
                                "\"rate\":12.50}"));
    sb_mon_buf_free(&b);
    memset(&b, 0, sizeof(b));
    sb_mon_render_metrics(&s, &b);
    assert_clean(&b, 1);
    assert_non_null(strstr(b.p, "shmbus_group_members{bus=\"demo\",group=\"news\"} 2\n"));
    assert_non_null(strstr(b.p, "shmbus_group_epoch{bus=\"demo\",group=\"news\"} 4\n"));
    assert_non_null(strstr(b.p, "shmbus_group_missed_total{bus=\"demo\",group=\"news\"} 1\n"));
    assert_non_null(strstr(b.p, "# TYPE shmbus_group_queued_total counter\n"));
    assert_non_null(strstr(b.p, "shmbus_group_redelivered_total{bus=\"demo\",group=\"news\"} 2\n"));
    /* A lossy subscriber's losses (SHMBUS_SUB_LOSSY) are never silent. */
    assert_non_null(strstr(b.p, "shmbus_group_lost_total{bus=\"demo\",group=\"news\"} 7\n"));
    sb_mon_buf_free(&b);
}

/* NATS bridges: every number of a bridge's state file the monitor reads is one labelled
 * /metrics series (HELP, TYPE, counters named _total) and a field of the JSON the page's
 * Bridges card draws; a scribbled name or error text still gives valid output. */
static void test_bridges(void **state)
{
    (void)state;
    struct sb_mon_snap s = make_snap();
    struct sb_mon_bridge br[2];
    memset(br, 0, sizeof(br));
    strcpy(br[0].name, "bridge");
    strcpy(br[0].node, "hostB");
    strcpy(br[0].last_error, "NATS: \"timeout\"\n");
    /* The numbers run from up to reconnects, all uint64_t: 100, 101, ... each its own. */
    uint64_t *v = &br[0].up;
    size_t nv = (offsetof(struct sb_mon_bridge, reconnects) - offsetof(struct sb_mon_bridge, up)) /
                    sizeof(uint64_t) +
                1;
    for (size_t i = 0; i < nv; i++)
        v[i] = 100 + i;
    memset(br[1].name, '"', sizeof(br[1].name)); /* no NUL, all quotes */
    memset(br[1].node, '\\', sizeof(br[1].node));
    memset(br[1].last_error, 0x7f, sizeof(br[1].last_error));
    s.bridges = br;
    s.nbridges = 2;

    struct sb_mon_buf b = {0};
    sb_mon_render_json(&s, &b);
    assert_clean(&b, 0);
    assert_non_null(strstr(b.p, "\"bridges\":[{\"name\":\"bridge\",\"node\":\"hostB\",\"up\":true,"
                                "\"jetstream\":true,\"out_msgs\":102,\"out_bytes\":103,"
                                "\"in_msgs\":104,\"in_bytes\":105,\"queue\":106,"));
    assert_non_null(strstr(b.p, "\"errors\":122,\"disconnects\":123,\"reconnects\":124,"
                                "\"last_error\":\"NATS: \\\"timeout\\\"\\n\"}"));
    sb_mon_buf_free(&b);

    memset(&b, 0, sizeof(b));
    sb_mon_render_metrics(&s, &b);
    assert_clean(&b, 1);
    assert_non_null(
        strstr(b.p, "# TYPE shmbus_bridge_up gauge\n"
                    "shmbus_bridge_up{bus=\"demo\",bridge=\"bridge\",node=\"hostB\"} 100\n"));
    assert_non_null(strstr(b.p, "shmbus_bridge_queue_messages{bus=\"demo\",bridge=\"bridge\","
                                "node=\"hostB\"} 106\n"));
    assert_non_null(strstr(b.p, "shmbus_bridge_reconnects_total{bus=\"demo\",bridge=\"bridge\","
                                "node=\"hostB\"} 124\n"));
    /* Each number once, in a family with its HELP and TYPE, counters named _total. */
    int seen[64] = {0};
    size_t families = 0;
    char family[128] = "", type[16] = "";
    for (char *line = b.p, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        assert_non_null(end);
        *end = '\0';
        char name[128];
        if (sscanf(line, "# TYPE %127s %15s", name, type) == 2 &&
            !strncmp(name, "shmbus_bridge_", 14)) {
            assert_int_equal(!strcmp(type, "counter"),
                             strlen(name) > 6 && !strcmp(name + strlen(name) - 6, "_total"));
            assert_true(!strcmp(type, "counter") || !strcmp(type, "gauge"));
            snprintf(family, sizeof(family), "%s", name);
            families++;
        } else if (!strncmp(line, "shmbus_bridge_", 14) && strstr(line, "bridge=\"bridge\"")) {
            assert_int_equal(strncmp(line, family, strlen(family)), 0);
            assert_int_equal(line[strlen(family)], '{');
            unsigned long long x = strtoull(strrchr(line, ' ') + 1, NULL, 10);
            assert_in_range(x, 100, 100 + nv - 1);
            seen[x - 100]++;
        }
        *end = '\n';
    }
    assert_int_equal(families, nv);
    for (size_t i = 0; i < nv; i++)
        if (seen[i] != 1)
            fail_msg("the bridge's number %zu (%llu) is in %d series", i,
                     (unsigned long long)(100 + i), seen[i]);
    /* HELP before TYPE for every family. */
    for (const char *p = b.p; (p = strstr(p, "# TYPE shmbus_bridge_")) != NULL; p++) {
        char name[128], help[160];
        sscanf(p, "# TYPE %127s", name);
        snprintf(help, sizeof(help), "# HELP %s ", name);
        const char *h = strstr(b.p, help);
        assert_true(h != NULL && h < p);
    }
    sb_mon_buf_free(&b);

    /* No bridge: no bridge series at all, an empty list in the JSON. */
    s.nbridges = 0;
    s.bridges = NULL;
    memset(&b, 0, sizeof(b));
    sb_mon_render_metrics(&s, &b);
    assert_null(strstr(b.p, "shmbus_bridge_"));
    sb_mon_buf_free(&b);
    memset(&b, 0, sizeof(b));
    sb_mon_render_json(&s, &b);
    assert_non_null(strstr(b.p, "\"bridges\":[]"));
    sb_mon_buf_free(&b);
}

int main(void)
{
    th_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_edges), cmocka_unit_test(test_json_hostile_names),
        cmocka_unit_test(test_metrics),    cmocka_unit_test(test_bus_gone),
        cmocka_unit_test(test_groups),     cmocka_unit_test(test_bridges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
