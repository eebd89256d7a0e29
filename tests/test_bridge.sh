#!/bin/bash
# shmbus-bridge (issue 15): two buses in two runtime directories stand for two hosts, each
# with its bridge, joined through a real nats-server this test starts on a free loopback port.
#   - credentials reach NATS (--user, $SHMBUS_NATS_PASSWORD)
#   - NATS unreachable at start: --once fails with a clear error; without it the bridge
#     retries with backoff (little CPU while it waits) and connects once the server is up
#   - direct messages across, in order per sender, priority carried, origin shown
#   - request/reply across: the reply finds its way back to the requester
#   - the server killed (-9) and restarted mid-stream: both bridges reconnect, what arrives
#     arrives in order, and every message that did not arrive is counted: lost (a gap in
#     the sequence numbers the receiving bridge saw) or undeliverable (the sending bridge
#     gave up waiting for its peer), in the bridges' state (`shmbus-bridge --stats`)
#   - a bridge killed (-9): local traffic on its bus is unaffected; restarted, it carries on
#   - `shmbus-bridge --bench` runs, states its ratio against the 1.5x target and prints both
#     sides' throughput
#   - `shmbus monitor` shows the bridge on /metrics (every counter of its state file, as valid
#     labelled series) and in /api/bus (the page's Bridges card)
# Every wait polls for a state with a deadline; every process is stopped by pid.
set -u
TEST_TIMEOUT=120
. "$(dirname "$0")/cli_lib.sh"
. "$SHMBUS_TOP/tests/proc_lib.sh"
. "$SHMBUS_TOP/tests/bridge_lib.sh"
export BRIDGE_TEST_BUS=bridge-$$

two_hosts bridge-$$

# The local programs, in Python (the module in python/): sink, serve, send, request.
cat >"$work/peer.py" <<'EOF'
import os, sys, shmbus
sys.argv[1:1] = [os.environ["BRIDGE_TEST_BUS"]]
mode = sys.argv[2]
b = shmbus.Bus(sys.argv[1])
if mode == "sink":  # sink NAME FILE: each message as "prio payload" on a line
    c = b.join(name=sys.argv[3])
    out = open(sys.argv[4], "a", buffering=1)
    while True:
        try:
            m = c.recv(timeout=0.25)
        except TimeoutError:
            continue
        out.write("%d %s\n" % (m.prio, m.data.decode()))
elif mode == "serve":  # serve NAME: answer each request with "re:" + its payload
    c = b.join(name=sys.argv[3])
    while True:
        try:
            m = c.recv(timeout=0.25)
        except TimeoutError:
            continue
        if m.is_request:
            c.reply(m, b"re:" + m.data, timeout=5)
elif mode == "send":  # send NAME TO ADDR FIRST LAST PRIO: "ADDR i" for i in FIRST..LAST
    c = b.join(name=sys.argv[3])
    to = b.lookup(sys.argv[4])
    last = int(sys.argv[7])
    for i in range(int(sys.argv[6]), last + 1):  # the last with an ACK: taken when we leave
        c.send(to, ("%s %d" % (sys.argv[5], i)).encode(), prio=int(sys.argv[8]), timeout=10,
               ack=i == last)
elif mode == "request":  # request NAME ADDR BODY: print the reply
    c = b.join(name=sys.argv[3])
    r = c.request(b.lookup("bridge"), ("%s %s" % (sys.argv[4], sys.argv[5])).encode(),
                  prio=3, timeout=10)
    print(r.data.decode(), r.prio)
EOF
port=$(free_port)
url=nats://127.0.0.1:$port

expect 0 onA "$SHMBUS" create "$bus" --clients 16
expect 0 onB "$SHMBUS" create "$bus" --clients 16

# 1. NATS unreachable at start.
expect 1 onA timeout 10 "$BRIDGE" "$bus" --nats "$url" --node hostA --once
err_has "cannot connect"
start_bridge "$A" hostA "$work/bridgeA.log"
start_bridge "$B" hostB "$work/bridgeB.log"
wait_for "bridge A's retries" grep -q "retrying in 1 s" "$work/bridgeA.log"
# Backoff, not a busy loop: after three retries (~1.75 s) it has used well under a second.
cpu=$(awk '{print $14 + $15}' "/proc/$bridge_hostA/stat")
[ "$cpu" -lt 50 ] || fail "bridge A used $cpu ticks of CPU while retrying"
start_nats
wait_for "bridge A connected" state_is "$A" connected true
wait_for "bridge B connected" state_is "$B" connected true

# Credentials go to NATS: a server that wants a user and password refuses a wrong one,
# and takes the right one from $SHMBUS_NATS_PASSWORD (kept out of the process list).
aport=$(free_port)
nats-server -a 127.0.0.1 -p "$aport" --user u --pass secret >>"$work/nats-auth.log" 2>&1 &
auth_pid=$!
pids="$pids $auth_pid"
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for "the second server" port_open "$aport"
expect 1 onA timeout 10 "$BRIDGE" "$bus" --nats "nats://127.0.0.1:$aport" --node hostA --as auth \
    --once --user u --password wrong
err_has "cannot connect"
SHMBUS_DIR=$A SHMBUS_NATS_PASSWORD=secret "$BRIDGE" "$bus" --nats "nats://127.0.0.1:$aport" \
    --node hostA --as auth --user u --once --interval 100 >"$work/auth.log" 2>&1 &
auth_bridge=$!
pids="$pids $auth_bridge"
auth_connected() { [ "$(SHMBUS_DIR=$A "$BRIDGE" "$bus" --as auth --stats 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["connected"])')" = True ]; }
wait_for "the bridge with the right password" auth_connected
kill -TERM "$auth_bridge" "$auth_pid"
wait "$auth_bridge" "$auth_pid" 2>/dev/null # both end on SIGTERM (the run's timeout bounds it)

# 2. Direct messages across, in order, with priority and origin.
SHMBUS_DIR=$B python3 "$work/peer.py" sink sink "$work/sink.out" &
pids="$pids $!"
wait_for "sink on B" has_client "$B" sink
expect 0 onA timeout 30 python3 "$work/peer.py" send src bridge hostB/sink 1 200 5
wait_for "200 messages at B's sink" lines "$work/sink.out" 200
want=$(for i in $(seq 1 200); do echo "5 hostA/src $i"; done)
[ "$(cat "$work/sink.out")" = "$want" ] ||
    fail "sink got, in this order: $(head -3 "$work/sink.out") ... (want '5 hostA/src 1'...)"

# 3. Request/reply across.
SHMBUS_DIR=$B python3 "$work/peer.py" serve svc &
pids="$pids $!"
wait_for "svc on B" has_client "$B" svc
expect 0 onA timeout 30 python3 "$work/peer.py" request asker hostB/svc hello
out_has "re:hostA/asker hello 3"

# The monitor of bus B shows its bridge on /metrics.
SHMBUS_DIR=$B "$SHMBUS" monitor "$bus" --listen 127.0.0.1:0 --interval 50 >"$work/mon.out" 2>&1 &
pids="$pids $!"
wait_for "the monitor's URL" grep -q '^listening on http' "$work/mon.out"
mon=$(sed -n 's/^listening on \(http:.*\)$/\1/p' "$work/mon.out")
scrape() {
    python3 -c 'import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(sys.argv[1] + "metrics", timeout=10).read().decode())' \
        "$mon" >"$work/metrics" 2>&1
}
has_metric() { scrape && grep -qF -- "$1" "$work/metrics"; }
wait_for "the bridge on /metrics" has_metric \
    "shmbus_bridge_up{bus=\"$bus\",bridge=\"bridge\",node=\"hostB\"} 1"
# 200 messages and one request delivered on B.
wait_for "the bridge's deliveries on /metrics" has_metric \
    "shmbus_bridge_received_messages_total{bus=\"$bus\",bridge=\"bridge\",node=\"hostB\"} 201"
# The whole page parses (tests/prom_text.py), and every number the monitor shows of a bridge
# is a series labelled bus, bridge and node, with the counts of what went through: 200
# direct messages and one request in, its reply out, nothing lost.
SHMBUS_TOP=$SHMBUS_TOP python3 - "$work/metrics" "$bus" <<'EOF' || fail "the bridge's series on /metrics"
import os, sys
sys.path.insert(0, os.environ["SHMBUS_TOP"] + "/tests")
import prom_text
types, samples = prom_text.parse(open(sys.argv[1]).read(), sys.argv[2])
labels = tuple(sorted({"bus": sys.argv[2], "bridge": "bridge", "node": "hostB"}.items()))
want = {
    "shmbus_bridge_up": 1, "shmbus_bridge_jetstream": 0,
    "shmbus_bridge_received_messages_total": 201, "shmbus_bridge_received_bytes_total": None,
    "shmbus_bridge_sent_messages_total": None, "shmbus_bridge_sent_bytes_total": None,
    "shmbus_bridge_queue_messages": 0, "shmbus_bridge_nats_buffered_bytes": None,
    "shmbus_bridge_topic_sent_messages_total": 0, "shmbus_bridge_topic_received_messages_total": 0,
    "shmbus_bridge_queue_sent_messages_total": 0, "shmbus_bridge_queue_received_messages_total": 0,
    "shmbus_bridge_requests_sent_total": 0, "shmbus_bridge_replies_received_total": 0,
    "shmbus_bridge_requests_received_total": 1, "shmbus_bridge_replies_sent_total": 1,
    "shmbus_bridge_error_replies_total": 0, "shmbus_bridge_request_servers": None,
    "shmbus_bridge_lost_messages_total": 0, "shmbus_bridge_dropped_slow_messages_total": 0,
    "shmbus_bridge_undeliverable_messages_total": 0, "shmbus_bridge_bad_messages_total": 0,
    "shmbus_bridge_errors_total": 0, "shmbus_bridge_disconnects_total": 0,
    "shmbus_bridge_reconnects_total": 0,
}
have = {n for n in types if n.startswith("shmbus_bridge_")}
if have != set(want):
    sys.exit("bridge families: extra %s, missing %s" % (sorted(have - set(want)), sorted(set(want) - have)))
for name, v in want.items():
    got = samples.get((name, labels))
    if got is None or (v is not None and got != v):
        sys.exit("%s%s: %s, want %s" % (name, dict(labels), got, v))
print("ok: %d bridge series on /metrics, valid" % len(want))
EOF
# The page's data (/api/bus) lists the bridge for its Bridges card.
python3 -c 'import json, sys, urllib.request
snap = json.load(urllib.request.urlopen(sys.argv[1] + "api/bus", timeout=10))
br = [b for b in snap["bridges"] if b["name"] == "bridge"]
assert br and br[0]["node"] == "hostB" and br[0]["up"] is True and br[0]["in_msgs"] == 201, snap["bridges"]' \
    "$mon" || fail "the bridge in /api/bus"

# 4. The server killed mid-stream and restarted.
[ "$(state "$B" lost)" = 0 ] || fail "messages lost before any fault: $(state "$B" lost)"
: >"$work/sink2.out"
SHMBUS_DIR=$B python3 "$work/peer.py" sink sink2 "$work/sink2.out" &
pids="$pids $!"
wait_for "sink2 on B" has_client "$B" sink2
SHMBUS_DIR=$A python3 -c '
import sys, time, shmbus
b = shmbus.Bus(sys.argv[1]); c = b.join(name="src2"); to = b.lookup("bridge")
for i in range(1, 3001):
    c.send(to, b"hostB/sink2 %d" % i, timeout=10)
    time.sleep(0.001)' "$bus" &
sender=$!
pids="$pids $sender"
wait_for "the stream to start" lines "$work/sink2.out" 100
kill -KILL "$nats_pid"
wait "$nats_pid" 2>/dev/null
wait_for "bridge B to see the server gone" state_is "$B" connected false
start_nats
wait_for "bridge A reconnected" state_ge "$A" reconnects 1
wait_for "bridge B reconnected" state_ge "$B" reconnects 1
wait_for "the sender to finish" eval '! pid_running '"$sender"
# One more message after both are back: every loss before it is now a gap B has seen.
expect 0 onA timeout 30 python3 "$work/peer.py" send src2 bridge hostB/sink2 3001 3001 0
wait_for "the last message" grep -q ' 3001$' "$work/sink2.out"
got=$(wc -l <"$work/sink2.out")
lost=$(state "$B" lost)
undeliverable=$(state "$A" undeliverable)
[ $((got + lost + undeliverable)) -eq 3001 ] ||
    fail "received $got + lost (B) $lost + undeliverable (A) $undeliverable != 3001 sent"
awk '$3 <= last { bad = 1 } { last = $3 } END { exit bad }' "$work/sink2.out" ||
    fail "sink2's messages are out of order"
echo "server restart: $got of 3001 arrived, $lost counted lost by B, $undeliverable dropped by A"

# 5. Bridge A killed with -9: local traffic on A unaffected; restarted, it carries on.
kill -KILL "$bridge_hostA"
wait "$bridge_hostA" 2>/dev/null
SHMBUS_DIR=$A python3 "$work/peer.py" sink local "$work/local.out" &
pids="$pids $!"
wait_for "local on A" has_client "$A" local
expect 0 onA timeout 30 python3 "$work/peer.py" send lsrc local here 1 50 0
wait_for "local messages" lines "$work/local.out" 50
[ "$(awk '{print $3}' "$work/local.out" | tr '\n' ' ')" = "$(seq -s ' ' 1 50) " ] ||
    fail "local traffic after the bridge died: $(head -3 "$work/local.out")"
start_bridge "$A" hostA "$work/bridgeA2.log"
wait_for "bridge A back" state_is "$A" connected true
: >"$work/sink.out"
expect 0 onA timeout 30 python3 "$work/peer.py" send src bridge hostB/sink 1 20 2
wait_for "20 messages after the restart" lines "$work/sink.out" 20
[ "$(cat "$work/sink.out")" = "$(for i in $(seq 1 20); do echo "2 hostA/src $i"; done)" ] ||
    fail "after the bridge's restart: $(head -3 "$work/sink.out")"
# A new bridge numbers its frames from 1 again: B must not count that as a loss.
[ "$(state "$B" lost)" = "$lost" ] || fail "B counted $(state "$B" lost) lost, was $lost"

# 6. The bench runs (a few round trips: its figures are not judged here, only that it
# measures both sides, states the ratio against the issue's 1.5x target and counts both
# sides' wake-ups per round trip).
timeout 60 "$BRIDGE" --bench --nats "$url" --count 200 >"$work/bench.out" 2>&1 ||
    fail "shmbus-bridge --bench failed: $(tail -3 "$work/bench.out")"
grep -q "^  NATS C client direct .* median .* us" "$work/bench.out" &&
    grep -q "^  across two bridges .* median .* us" "$work/bench.out" &&
    grep -Eq "^  ratio \(median\) +[0-9.]+x: (within|ABOVE) the target of at most 1.5x$" "$work/bench.out" &&
    grep -Eq "^  wake-ups per round trip .*: direct [0-9.]+, across [0-9.]+$" "$work/bench.out" &&
    grep -Eq "^  NATS C client direct +[0-9.]+ k msg/s .*; [0-9]+ of [0-9]+ lost\)$" "$work/bench.out" &&
    grep -Eq "^  across two bridges +[0-9.]+ k msg/s .*; [0-9]+ of [0-9]+ lost\)$" "$work/bench.out" ||
    fail "the bench's output: $(cat "$work/bench.out")"

if [ "$fails" -ne 0 ]; then
    for f in bridgeA.log bridgeA2.log bridgeB.log nats.log; do
        echo "--- $f"
        tail -20 "$work/$f" 2>/dev/null
    done
fi
exit $((fails > 0))
