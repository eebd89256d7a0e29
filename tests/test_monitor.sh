#!/bin/bash
# shmbus monitor, the HTTP side (no browser): usage and refusals, /api/bus, /metrics parsed
# line by line as Prometheus text format (and by promtool if it is installed), /events,
# 404/405/403, following a bus that goes away, and a clean exit on SIGTERM and SIGINT.
# Traffic comes from `shmbus ring`. HTTP is spoken by python3's standard library (no curl).
set -u
shmbus="$BUILD/bin/shmbus"
[ -x "$shmbus" ] || { echo "shmbus binary not built"; exit 77; }
command -v python3 >/dev/null || { echo "python3 not found"; exit 77; }
top=$SHMBUS_TOP
tmp=$TEST_TMPDIR
fail() { echo "FAIL: $*"; exit 1; }

ring_pid="" mon_pids=""
. "$SHMBUS_TOP/tests/proc_lib.sh"
cleanup() {
    # The ring destroys its own bus when told to stop; destroy it by hand if it could not.
    # shellcheck disable=SC2086
    stop_pids $mon_pids "$ring_pid"
    for f in "$SHMBUS_DIR"/*.bus; do
        [ -e "$f" ] && "$shmbus" destroy "$(basename "$f" .bus)" >/dev/null 2>&1
    done
}
trap cleanup EXIT

# wait_exit PID SECONDS: the exit status of PID, or 124 after killing it when time runs out.
wait_exit() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$1" 2>/dev/null && { kill -KILL "$1"; wait "$1" 2>/dev/null; return 124; }
    wait "$1"
}

# start_monitor OUT ARGS...: start the monitor, wait for its URL; sets mon_pid and url.
start_monitor() {
    local out=$1 i
    shift
    "$shmbus" monitor "$@" >"$out" 2>"$out.err" &
    mon_pid=$!
    mon_pids="$mon_pids $mon_pid"
    for ((i = 0; i < 100; i++)); do
        url=$(sed -n 's/^listening on \(http:.*\)$/\1/p' "$out" 2>/dev/null)
        [ -n "$url" ] && return 0
        kill -0 "$mon_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$out" "$out.err"
    fail "monitor $* did not print 'listening on http://...'"
}

# -- the embedded page is what tools/web holds -------------------------------------------
"$top/scripts/embed-web.sh" | cmp -s - "$top/tools/monitor_assets.c" ||
    fail "tools/monitor_assets.c is stale: run scripts/embed-web.sh > tools/monitor_assets.c"
echo "ok: embedded page up to date"

# -- usage, refusals, a missing bus ------------------------------------------------------
expect() { # expect STATUS PATTERN ARGS...: exit status and a line of stderr
    local want=$1 pat=$2 rc
    shift 2
    timeout 10 "$shmbus" monitor "$@" >"$tmp/o" 2>"$tmp/e"
    rc=$?
    [ $rc -eq "$want" ] || { cat "$tmp/e"; fail "monitor $*: exit $rc, wanted $want"; }
    grep -q -- "$pat" "$tmp/e" || { cat "$tmp/e"; fail "monitor $*: stderr lacks '$pat'"; }
    echo "ok: monitor $* -> exit $rc"
}
timeout 10 "$shmbus" monitor --help | grep -q '^usage: shmbus monitor BUS' || fail "--help"
expect 2 'usage: shmbus monitor' # no bus
expect 2 'usage: shmbus monitor' somebus extra
expect 2 "unknown option" somebus --frobnicate
expect 2 "needs a value" somebus --listen
expect 2 "is not ADDR:PORT" somebus --listen nonsense
expect 2 "is not ADDR:PORT" somebus --listen 127.0.0.1:99999
expect 2 "50..10000" somebus --interval 10
expect 2 "allow-remote" somebus --listen 0.0.0.0:0
expect 2 "allow-remote" somebus --listen 192.0.2.1:0
expect 2 "allow-remote" somebus --listen '[::]:0'
expect 1 "^shmbus: monitor: no-such-bus: " no-such-bus --listen 127.0.0.1:0

# -- traffic -----------------------------------------------------------------------------
"$shmbus" ring -c 3 -n 1000000000 --quiet --timeout 240 >"$tmp/ring.out" 2>&1 &
ring_pid=$!
bus=""
for ((i = 0; i < 100; i++)); do
    f=$(ls "$SHMBUS_DIR"/ring-*.bus 2>/dev/null | head -n 1)
    [ -n "$f" ] && { bus=$(basename "$f" .bus); break; }
    sleep 0.1
done
[ -n "$bus" ] || { cat "$tmp/ring.out"; fail "shmbus ring made no bus"; }
echo "ok: shmbus ring runs on bus $bus"

start_monitor "$tmp/mon1" "$bus" --listen 127.0.0.1:0 --interval 200
echo "ok: monitor listening at $url"

# -- the HTTP checks, in python3 ---------------------------------------------------------
timeout 60 python3 - "$url" "$bus" "$tmp/metrics.txt" <<'EOF' || fail "HTTP checks"
import http.client, json, math, os, re, sys, time
from urllib.parse import urlsplit
sys.path.insert(0, os.environ["SHMBUS_TOP"] + "/tests")
import prom_text

url, bus, metrics_path = sys.argv[1], sys.argv[2], sys.argv[3]
host, port = urlsplit(url).hostname, urlsplit(url).port

def req(method, path, headers=None, body=None):
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, r, data

def ok(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)

# /api/bus
st, r, body = req("GET", "/api/bus")
ok(st == 200 and r.getheader("Content-Type").startswith("application/json"), "/api/bus is JSON")
snap = json.loads(body)
ok(snap["bus"]["name"] == bus and snap["error"] is None, "/api/bus names the bus, no error")
ids = sorted(c["id"] for c in snap["clients"])
ok(ids == [1, 2, 3], f"/api/bus lists the ring's clients {ids}")
ok(all(c["state"] == "live" and c["pid"] > 0 and c["capacity"] > 0 for c in snap["clients"]),
   "clients are live, with pid and mailbox capacity")
for key in ("sent", "received", "sent_rate", "recv_rate", "latency_ns"):
    ok(key in snap["totals"], f"totals has {key}")
# Poll (deadline 10 s) until the monitor has taken a newer sample.
for _ in range(100):
    snap2 = json.loads(req("GET", "/api/bus")[2])
    if snap2["seq"] > snap["seq"] and snap2["totals"]["received"] > snap["totals"]["received"]:
        break
    time.sleep(0.1)
ok(snap2["seq"] > snap["seq"], f"samples advance ({snap['seq']} -> {snap2['seq']})")
ok(snap2["totals"]["received"] > snap["totals"]["received"],
   f"received rises ({snap['totals']['received']} -> {snap2['totals']['received']})")
ok(snap2["totals"]["recv_rate"] > 0, f"receive rate {snap2['totals']['recv_rate']}/s")
edges = {(e["from"], e["to"]) for e in snap2["edges"]}
ok("edges_estimated" not in snap2 and edges and edges <= {(a, b) for a in (1, 2, 3) for b in (1, 2, 3)}
   and all(e["messages"] > 0 for e in snap2["edges"]),
   f"edges are the ring's flows between its clients {sorted(edges)}")
ok(len(snap2["latency_hist"]) > 0 and snap2["totals"]["latency_ns"]["p50"] > 0,
   "latency histogram and percentiles present")

# /metrics: the project's strict parser of the text exposition format (tests/prom_text.py).
st, r, body = req("GET", "/metrics")
ok(st == 200 and r.getheader("Content-Type").startswith("text/plain; version=0.0.4"),
   "/metrics is Prometheus text 0.0.4")
text = body.decode("utf-8")
open(metrics_path, "w").write(text)
try:
    types, samples = prom_text.parse(text, bus)
except ValueError as e:
    ok(False, f"/metrics: {e}")
ok(len(samples) > 20, f"/metrics: {len(samples)} series, every line parses")
ok(types.get("shmbus_client_received_messages_total") == "counter", "received counter present")
ok(all(types[f] == "counter" for f in types if f.endswith("_total")), "_total names are counters")
ok(types.get("shmbus_bus_latency_seconds") == "histogram" and
   any(n == "shmbus_bus_latency_seconds_sum" for n, _ in samples), "latency histogram has _sum")
ok(any(n == "shmbus_build_info" for n, _ in samples), "shmbus_build_info present")
ring_flows = {(dict(l)["src"], dict(l)["dst"]) for n, l in samples if n == "shmbus_flow_messages_total"}
ok(ring_flows and {(str(a), str(b)) for a, b in edges} <= ring_flows,
   f"flow counters {sorted(ring_flows)} hold the page's edges")

# Errors and methods: read-only, loopback names only.
for path in ("/nope", "/api", "/api/bus/x", "/metrics/", "/index.html"):
    ok(req("GET", path)[0] == 404, f"GET {path} -> 404")
for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
    st, r, _ = req(method, "/api/bus", body=b"x" if method != "OPTIONS" else None)
    ok(st == 405 and r.getheader("Allow") == "GET, HEAD", f"{method} /api/bus -> 405, Allow")
st, r, body = req("HEAD", "/")
ok(st == 200 and body == b"" and r.getheader("Content-Type").startswith("text/html"),
   "HEAD / -> 200, no body")
st, r, body = req("GET", "/")
ok(st == 200 and b"shmbus monitor" in body and b"exact count" in body, "GET / serves the page")
ok("default-src 'self'" in (r.getheader("Content-Security-Policy") or ""), "page sent with a CSP")
ok(not re.search(rb'(src|href)="(https?:)?//', body), "page links nothing outside the monitor")
for path, typ in (("/app.js", "text/javascript"), ("/style.css", "text/css")):
    st, r, body = req("GET", path)
    ok(st == 200 and r.getheader("Content-Type").startswith(typ) and body, f"GET {path}")
ok(req("GET", "/api/bus", {"Host": "evil.example"})[0] == 403, "foreign Host -> 403")
ok(req("GET", "/api/bus", {"Host": f"localhost:{port}"})[0] == 200, "Host localhost -> 200")

# /events: a stream of JSON snapshots, several a second at --interval 200.
c = http.client.HTTPConnection(host, port, timeout=10)
c.request("GET", "/events")
r = c.getresponse()
ok(r.status == 200 and r.getheader("Content-Type") == "text/event-stream", "/events streams")
t0, seqs = time.time(), []
while len(seqs) < 6 and time.time() - t0 < 10:
    line = r.fp.readline()
    if line.startswith(b"data: "):
        seqs.append(json.loads(line[6:])["seq"])
secs = time.time() - t0
ok(len(seqs) == 6 and seqs == sorted(set(seqs)), f"/events: {len(seqs)} snapshots in {secs:.2f}s")
c.close()
EOF

if command -v promtool >/dev/null; then
    promtool check metrics <"$tmp/metrics.txt" || fail "promtool check metrics"
    echo "ok: promtool check metrics"
else
    echo "note: promtool not installed (Debian package prometheus); the python parser ran"
fi

# -- SIGTERM with a stream open: exit 0 promptly -----------------------------------------
python3 -c "
import socket, sys, time
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
s.sendall(b'GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
s.recv(100)
open(sys.argv[2], 'w').close()
time.sleep(30)" "$(basename "${url##*:}")" "$tmp/stream-open" 2>"$tmp/holder.err" &
holder=$!
# The stream is open once the holder has read the response's first bytes and said so.
for ((i = 0; i < 100; i++)); do
    [ -e "$tmp/stream-open" ] && break
    sleep 0.05
done
[ -e "$tmp/stream-open" ] || fail "could not open an /events stream: $(cat "$tmp/holder.err")"
kill -TERM "$mon_pid"
wait_exit "$mon_pid" 5
rc=$?
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
[ $rc -eq 0 ] || { cat "$tmp/mon1.err"; fail "monitor after SIGTERM: exit $rc, wanted 0 within 5 s"; }
echo "ok: SIGTERM with an /events stream open -> exit 0"

# -- --allow-remote: a wildcard address is accepted, and still answers on loopback -------
start_monitor "$tmp/mon2" "$bus" --listen 0.0.0.0:0 --allow-remote
port=${url##*:}
port=${port%/}
python3 -c "
import http.client, sys
c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=5)
c.request('GET', '/api/bus', headers={'Host': 'some.host.example'})
sys.exit(0 if c.getresponse().status == 200 else 1)" "$port" ||
    fail "--allow-remote: any Host should be served"
kill -INT "$mon_pid"
wait_exit "$mon_pid" 5 || fail "monitor after SIGINT: exit $?, wanted 0"
echo "ok: --allow-remote 0.0.0.0 serves; SIGINT -> exit 0"

# -- the bus goes away: the monitor stays up and says so ---------------------------------
start_monitor "$tmp/mon3" "$bus" --listen 127.0.0.1:0 --interval 100
kill -TERM "$ring_pid"
wait_exit "$ring_pid" 10
ring_pid=""
[ -e "$SHMBUS_DIR/$bus.bus" ] && fail "the ring left its bus behind"
timeout 20 python3 - "$url" <<'EOF' || fail "monitor after the bus went away"
import json, sys, time, urllib.request
url = sys.argv[1]
for _ in range(100):
    snap = json.load(urllib.request.urlopen(url + "api/bus", timeout=5))
    if snap["error"]:
        break
    time.sleep(0.1)
print("ok: /api/bus error after the bus went away:", snap["error"])
assert snap["error"] and snap["clients"] == []
m = urllib.request.urlopen(url + "metrics", timeout=5).read().decode()
assert [l for l in m.splitlines() if l.startswith("shmbus_monitor_up{")][0].endswith(" 0"), m
print("ok: shmbus_monitor_up 0")
EOF
kill -TERM "$mon_pid"
wait_exit "$mon_pid" 5 || fail "monitor exit after the bus went away: $?"
grep -q "shmbus: monitor: $bus: " "$tmp/mon3.err" || fail "no message about the lost bus"
echo "ok: the bus went away, the monitor said so and exited cleanly"
mon_pids=""
echo "all monitor checks passed"
