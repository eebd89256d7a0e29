#!/bin/bash
# shmbus-bridge, named groups and requests across hosts (issue 15): two buses in two
# runtime directories stand for two hosts, each with its bridge (--topic news --queue jobs),
# joined through a real nats-server this test starts on a free loopback port.
#   - a topic across: a publisher on A, one subscriber on A and two on B; then one on B:
#     every subscriber gets every message once, in order; no bridge exports what it
#     imported (no echo, no loop)
#   - a work queue across: workers on both hosts, "*/jobs" sent on A: each message taken by
#     exactly one worker, and both hosts take some; a queue with no worker anywhere is
#     counted, not silently lost
#   - requests: a remote failure (no such client, no bridge for that node, a request to a
#     queue) comes back to the requester at once as an error reply; requests from another
#     node are served concurrently (a server on B answers only once it holds two requests)
# Every wait polls for a state with a deadline; every process is stopped by pid.
set -u
TEST_TIMEOUT=120
. "$(dirname "$0")/cli_lib.sh"
. "$SHMBUS_TOP/tests/proc_lib.sh"
. "$SHMBUS_TOP/tests/bridge_lib.sh"

two_hosts bgroups-$$

# bg HOSTDIR CMD...: start CMD in the background on that host (exec'd by the shell itself,
# so that $! is CMD's own pid); the pid joins $pids.
bg() {
    SHMBUS_DIR=$1 "${@:2}" &
    last=$!
    pids="$pids $last"
}
# payloads FILE: the payloads `shmbus recv` printed, one a line.
payloads() { sed 's/^[^:]*:[^:]*:[^:]*: //' "$1"; }

port=$(free_port)
url=nats://127.0.0.1:$port
expect 0 onA "$SHMBUS" create "$bus" --clients 32
expect 0 onB "$SHMBUS" create "$bus" --clients 32
start_nats
start_bridge "$A" hostA "$work/bridgeA.log" --topic news --queue jobs
start_bridge "$B" hostB "$work/bridgeB.log" --topic news --queue jobs --requests 4
wait_for "bridge A connected" state_is "$A" connected true
wait_for "bridge B connected" state_is "$B" connected true

# Bad options are refused before anything starts.
expect 2 onA "$BRIDGE" "$bus" --node hostA --topic .bad
err_has "no leading, trailing or double dot"
expect 2 onA "$BRIDGE" "$bus" --node topic
err_has "reserved"

# 1. A topic across. Subscribers: s1 and s2 on B, s3 on A; the publisher on A.
bg "$B" "$SHMBUS" sub "$bus" news --as s1 >"$work/s1.out" 2>&1
bg "$B" "$SHMBUS" sub "$bus" news --as s2 >"$work/s2.out" 2>&1
bg "$A" "$SHMBUS" sub "$bus" news --as s3 >"$work/s3.out" 2>&1
wait_for "s1, s2 on B" eval 'has_client "$B" s1 && has_client "$B" s2'
wait_for "s3 on A" has_client "$A" s3
seq 1 300 | sed 's/^/news /' >"$work/news.in"
expect 0 onA timeout 30 "$SHMBUS" pub "$bus" news --as pubA --timeout 10000 <"$work/news.in"
# And one from B: A's subscriber gets it through the bridges, B's from their bus.
expect 0 onB timeout 30 "$SHMBUS" pub "$bus" news --as pubB --timeout 10000 "news from B"
for s in s1 s2 s3; do
    wait_for "301 messages at $s" lines "$work/$s.out" 301
done
# Once more after everything settled: nothing arrived twice, nothing came round again.
wait_for "bridge A's count" state_is "$A" topic_out 300
wait_for "bridge B's count" state_is "$B" topic_out 1
for s in s1 s2 s3; do
    [ "$(wc -l <"$work/$s.out")" -eq 301 ] || fail "$s got $(wc -l <"$work/$s.out") messages, want 301"
    [ "$(payloads "$work/$s.out" | grep -v '^news from B$')" = "$(cat "$work/news.in")" ] ||
        fail "$s: A's 300 not once each in order: $(payloads "$work/$s.out" | head -3 | tr '\n' '|')..."
    [ "$(payloads "$work/$s.out" | grep -c '^news from B$')" -eq 1 ] || fail "$s: B's message not once"
done
# Each bridge delivered only the other's: its own exports, back from NATS, are dropped.
[ "$(state "$B" topic_in)" = 300 ] || fail "bridge B imported $(state "$B" topic_in) copies, want 300"
[ "$(state "$A" topic_in)" = 1 ] || fail "bridge A imported $(state "$A" topic_in) copies, want 1"

# 2. A work queue across: worker wA on A, wB1 and wB2 on B; 200 jobs sent on A to "*/jobs".
bg "$A" "$SHMBUS" recv "$bus" --as wA --sub jobs >"$work/wA.out" 2>&1
bg "$B" "$SHMBUS" recv "$bus" --as wB1 --sub jobs >"$work/wB1.out" 2>&1
wB1=$last
bg "$B" "$SHMBUS" recv "$bus" --as wB2 --sub jobs >"$work/wB2.out" 2>&1
wB2=$last
serving() { [ "$(state "$1" serving)" = "['jobs']" ]; }
wait_for "A serving jobs" serving "$A"
wait_for "B serving jobs" serving "$B"
seq 1 200 | sed 's|^|*/jobs job |' >"$work/jobs.in"
expect 0 onA timeout 30 "$SHMBUS" send "$bus" --as jsrc --to bridge --timeout 10000 <"$work/jobs.in"
done_jobs() { [ "$(cat "$work"/w*.out | wc -l)" -ge 200 ]; }
wait_for "200 jobs done" done_jobs
wait_for "the bridges' counts" eval '[ $(( $(state "$A" queue_in) + $(state "$B" queue_in) )) -ge 200 ]'
cat "$work"/w*.out | sed 's/^[^:]*:[^:]*:[^:]*: //' | sort -k2n >"$work/jobs.done"
[ "$(cat "$work/jobs.done")" = "$(seq 1 200 | sed 's/^/job /')" ] ||
    fail "jobs not done exactly once each: $(wc -l <"$work/jobs.done") lines, $(uniq -d "$work/jobs.done" | head -3 | tr '\n' '|')"
onA_n=$(wc -l <"$work/wA.out")
onB_n=$(($(wc -l <"$work/wB1.out") + $(wc -l <"$work/wB2.out")))
echo "work queue: $onA_n jobs done on A, $onB_n on B"
[ "$onA_n" -gt 0 ] && [ "$onB_n" -gt 0 ] || fail "jobs did not spread over both hosts (A $onA_n, B $onB_n)"
# The bridges follow their groups: once B has no worker left, its bridge leaves the NATS
# queue group and every job goes to A (none is lost on B's side).
kill -TERM "$wB1" "$wB2"
wait "$wB1" "$wB2" 2>/dev/null
wait_for "B to stop serving jobs" state_is "$B" serving "[]"
seq 1 50 | sed 's|^|*/jobs late |' >"$work/late.in"
expect 0 onA timeout 30 "$SHMBUS" send "$bus" --as jsrc --to bridge --timeout 10000 <"$work/late.in"
late_at_A() { [ "$(grep -c ': late ' "$work/wA.out")" -ge 50 ]; }
wait_for "the 50 late jobs at A" late_at_A
[ "$(grep -c ': late ' "$work/wA.out")" -eq 50 ] || fail "A's worker got $(grep -c ': late ' "$work/wA.out") late jobs, want 50"

# A queue nobody serves: NATS says "no responders"; the sending bridge counts the loss.
before=$(state "$A" undeliverable)
expect 0 onA "$SHMBUS" send "$bus" --as jsrc --to bridge "*/idle x"
wait_for "the loss counted" state_ge "$A" undeliverable $((before + 1))
grep -q "work queue idle: no node has a member" "$work/bridgeA.log" || fail "no log line for the queue nobody serves"

# 3. Requests: error replies, and concurrency.
cat >"$work/peer.py" <<'PY'
import sys, time, shmbus
b = shmbus.Bus(sys.argv[1])
mode = sys.argv[2]
if mode == "request":  # request NAME "ADDR BODY": print the reply and how long it took
    c = b.join(name=sys.argv[3])
    t = time.monotonic()
    r = c.request(b.lookup("bridge"), sys.argv[4].encode(), timeout=20)
    print(r.data.decode())
    print("took %.1f s" % (time.monotonic() - t), file=sys.stderr)
elif mode == "pair":  # pair NAME: answer requests only two at a time, once both are here
    c = b.join(name=sys.argv[3])
    while True:
        held = [c.recv(timeout=None), c.recv(timeout=None)]
        for m in held:
            c.reply(m, b"both:" + m.data, timeout=5)
PY
req() { timeout 30 python3 "$work/peer.py" "$bus" request "$@"; }
expect 0 onA req asker "hostB/nosuch hi"
out_has "shmbus-bridge: hostB/nosuch: no such client on the bus (EHOSTUNREACH)"
expect 0 onA req asker "nowhere/x hi"
out_has "shmbus-bridge: nowhere/x: no bridge answers for that node (EHOSTDOWN)"
expect 0 onA req asker "*/jobs hi"
out_has "(EINVAL)"
# Each error came long before the request's timeout (20 s) or the bridge's (5 s).
bg "$B" python3 "$work/peer.py" "$bus" pair pair
wait_for "pair on B" has_client "$B" pair
SHMBUS_DIR=$A timeout 30 python3 "$work/peer.py" "$bus" request r1 "hostB/pair one" >"$work/r1.out" 2>&1 &
r1=$!
SHMBUS_DIR=$A timeout 30 python3 "$work/peer.py" "$bus" request r2 "hostB/pair two" >"$work/r2.out" 2>&1 &
r2=$!
pids="$pids $r1 $r2"
wait "$r1" || fail "request 1 failed: $(cat "$work/r1.out")"
wait "$r2" || fail "request 2 failed: $(cat "$work/r2.out")"
grep -q "^both:hostA/r1 one$" "$work/r1.out" || fail "request 1: $(cat "$work/r1.out")"
grep -q "^both:hostA/r2 two$" "$work/r2.out" || fail "request 2: $(cat "$work/r2.out")"
# The state file is rewritten every few hundred ms: wait for it to show the second server.
wait_for "bridge B to report 2 request servers" state_ge "$B" servers 2

if [ "$fails" -ne 0 ]; then
    for f in bridgeA.log bridgeB.log nats.log; do
        echo "--- $f"
        tail -20 "$work/$f" 2>/dev/null
    done
fi
exit $((fails > 0))
