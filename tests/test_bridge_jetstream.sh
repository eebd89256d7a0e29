#!/bin/bash
# shmbus-bridge --jetstream (issue 15): direct messages at least once across a NATS server
# killed with -9 mid-stream and restarted on its JetStream storage (a folder of this test).
# Two buses in two runtime directories stand for two hosts, each with its bridge.
#   - 3000 messages from A to a client on B while the server is killed and restarted:
#     every one arrives (none lost), first arrivals in the order sent; duplicates (only
#     possible for messages in flight at the kill) are counted and shown
#   - the receiving bridge killed (-9): what is sent meanwhile waits in its stream, and the
#     next bridge of that node (the same durable consumer) delivers all of it, in order
#   - a bridge without a stream on the other side: the sender counts the message
#     undeliverable instead of waiting forever
# Every wait polls for a state with a deadline; every process is stopped by pid.
set -u
TEST_TIMEOUT=150
. "$(dirname "$0")/cli_lib.sh"
. "$SHMBUS_TOP/tests/proc_lib.sh"
. "$SHMBUS_TOP/tests/bridge_lib.sh"

two_hosts bjs-$$
mkdir -p "$work/js"
# The JetStream store stays for a failed run to be looked at.
cleanup_extra() { [ "$fails" -eq 0 ] && rm -rf "$work/js"; }

port=$(free_port)
url=nats://127.0.0.1:$port
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
expect 0 onA "$SHMBUS" create "$bus" --clients 16
expect 0 onB "$SHMBUS" create "$bus" --clients 16
start_nats -js -sd "$work/js"
wait_for "the server" port_open
start_bridge "$A" hostA "$work/bridgeA.log" --jetstream
start_bridge "$B" hostB "$work/bridgeB.log" --jetstream --timeout 2000
wait_for "bridge A connected" state_is "$A" connected true
wait_for "bridge B connected" state_is "$B" connected true

# 1. 3000 messages across a server killed and restarted.
SHMBUS_DIR=$B "$SHMBUS" recv "$bus" --as sink >"$work/sink.out" 2>&1 &
pids="$pids $!"
wait_for "sink on B" has_client "$B" sink
seq 1 3000 | sed 's|^|hostB/sink |' >"$work/in"
SHMBUS_DIR=$A "$SHMBUS" send "$bus" --as src --to bridge --timeout 60000 <"$work/in" >"$work/send.log" 2>&1 &
sender=$!
pids="$pids $sender"
wait_for "the stream to start" lines "$work/sink.out" 200
kill -KILL "$nats_pid"
wait "$nats_pid" 2>/dev/null
got_at_kill=$(wc -l <"$work/sink.out")
wait_for "bridge B to see the server gone" state_is "$B" connected false
start_nats -js -sd "$work/js"
wait_for "bridge A reconnected" state_ge "$A" reconnects 1
wait_for "bridge B reconnected" state_ge "$B" reconnects 1
wait_for "the sender to finish" eval '! pid_running '"$sender"
wait "$sender" || fail "the sender failed: $(cat "$work/send.log")"
payloads() { sed 's/^[^:]*:[^:]*:[^:]*: //' "$work/sink.out"; }
all_there() { [ "$(payloads | awk '{print $2}' | sort -un | wc -l)" -ge 3000 ]; }
# Up to the consumer's ack wait (--timeout + 5 s) for what was in flight at the kill.
wait_for "all 3000 at the sink" all_there
distinct=$(payloads | awk '{print $2}' | sort -un | wc -l)
total=$(wc -l <"$work/sink.out")
[ "$distinct" -eq 3000 ] || fail "$distinct of 3000 messages arrived: lost $((3000 - distinct))"
# First arrivals in the order sent, every line from node hostA (as "hostA/src", or as
# "hostA/#ID" once the sender has left: all 3000 fit in the bridge's mailbox at once).
payloads | awk '$1 !~ /^hostA\// { print "line " NR ": " $0; bad = 1 }
    !seen[$2]++ { if ($2 != ++n) { print "line " NR ": " $0 " (want " n ")"; bad = 1; n = $2 } }
    END { exit bad }' >"$work/order" || fail "first arrivals out of order: $(head -5 "$work/order" | tr '\n' '|')"
echo "server killed at $got_at_kill received: $distinct of 3000 arrived, $((total - distinct)) twice"
[ "$(state "$B" lost)" = 0 ] || fail "bridge B counted $(state "$B" lost) lost"

# 2. Bridge B killed with -9: 100 messages sent meanwhile wait in B's stream; the next
# bridge of node hostB takes the same durable consumer over and delivers them, in order.
kill -KILL "$bridge_hostB"
wait "$bridge_hostB" 2>/dev/null
: >"$work/sink2.out"
SHMBUS_DIR=$B "$SHMBUS" recv "$bus" --as sink2 >"$work/sink2.out" 2>&1 &
pids="$pids $!"
wait_for "sink2 on B" has_client "$B" sink2
seq 1 100 | sed 's|^|hostB/sink2 |' >"$work/in2"
expect 0 onA timeout 30 "$SHMBUS" send "$bus" --as src2 --to bridge --timeout 10000 <"$work/in2"
wait_for "A to have stored them" state_ge "$A" out_msgs $((3000 + 100))
[ ! -s "$work/sink2.out" ] || fail "sink2 got messages with no bridge on B: $(head -2 "$work/sink2.out")"
start_bridge "$B" hostB "$work/bridgeB2.log" --jetstream --timeout 2000
wait_for "the 100 after B's restart" lines "$work/sink2.out" 100
[ "$(sed 's/^[^:]*:[^:]*:[^:]*: //' "$work/sink2.out" | awk '{print $2}' | tr '\n' ' ')" = "$(seq -s ' ' 1 100) " ] ||
    fail "after B's restart, not 1..100 in order: $(head -3 "$work/sink2.out" | tr '\n' '|')"

# 3. A node whose bridge has no stream: the sender counts it and moves on.
before=$(state "$A" undeliverable)
expect 0 onA "$SHMBUS" send "$bus" --as src --to bridge "nostream/x hello"
wait_for "the message counted undeliverable" state_ge "$A" undeliverable $((before + 1))
grep -q "node nostream has no JetStream stream" "$work/bridgeA.log" || fail "no log line for the node without a stream"

if [ "$fails" -ne 0 ]; then
    for f in bridgeA.log bridgeB.log bridgeB2.log nats.log; do
        echo "--- $f"
        tail -20 "$work/$f" 2>/dev/null
    done
fi
exit $((fails > 0))
