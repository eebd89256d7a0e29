#!/bin/bash
# shmbus-bridge, a flood of requests from another node (issue 15): what a busy bridge does
# when more requests arrive than it can serve. Bridge B serves one request at a time
# (--requests 1); a server on B holds the first request it gets until told to let go, while
# 300 clients on A each make one request to it. Then:
#   - every requester gets an answer long before its timeout: a reply, or the error reply
#     "the remote bridge is busy (EAGAIN)", never silence;
#   - the requests refused are exactly those beyond the 256 that may wait (shmbus-bridge(1),
#     --requests): once the held request is answered, the server takes the next one, sees
#     298 more waiting, and refuses the 43 oldest of them; the other 257 are served;
#   - bridge B counts each refusal as undeliverable and logs it; bridge A passes each on to
#     its requester as an error reply.
# Every wait polls for a state with a deadline; every process is stopped by pid.
set -u
TEST_TIMEOUT=180
. "$(dirname "$0")/cli_lib.sh"
. "$SHMBUS_TOP/tests/proc_lib.sh"
. "$SHMBUS_TOP/tests/bridge_lib.sh"

two_hosts bbusy-$$

N=300    # requesters on A
JOBS=256 # requests that may wait at a bridge (JOBS in bridge/bridge.c, shmbus-bridge(1))
# Served: the held one, the one the server takes after it, and the JOBS - 1 left waiting
# once it has refused the oldest (a server refuses while JOBS or more wait).
want_served=$((2 + JOBS - 1))
want_refused=$((N - want_served))

cat >"$work/peer.py" <<'PY'
import sys, threading, shmbus
b = shmbus.Bus(sys.argv[1])
mode = sys.argv[2]
if mode == "holder":  # hold the first request until a direct message "... LET-GO" comes
    c = b.join(name="holder")
    first = c.recv(timeout=None)
    if not first.is_request:
        sys.exit("holder: first message is not a request: %r" % first.data)
    print("holding", flush=True)
    while True:
        m = c.recv(timeout=None)
        if not m.is_request and m.data.endswith(b" LET-GO"):
            break
        # Bridge B has one server, and it is waiting for our reply: nothing else can come.
        sys.exit("holder: %r arrived while the only server was busy" % m.data)
    c.reply(first, b"re:" + first.data, timeout=10)
    n = 1
    while True:
        m = c.recv(timeout=None)
        if m.is_request:
            c.reply(m, b"re:" + m.data, timeout=10)
            n += 1
            print("served %d" % n, flush=True)
elif mode == "flood":  # flood N: N clients, one request each, all at once; print a summary
    n = int(sys.argv[3])
    bridge = b.lookup("bridge")
    ready = threading.Barrier(n)
    res = [None] * n
    def one(i):
        c = b.join(name="f%d" % i)
        ready.wait()
        try:
            res[i] = c.request(bridge, b"hostB/holder %d" % i, timeout=60).data.decode()
        except Exception as e:  # a timeout or an error code: counted below, never hidden
            res[i] = "exception: %s" % e
        finally:
            c.leave()
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts: t.start()
    for t in ts: t.join()
    served = sum(1 for i, r in enumerate(res) if r == "re:hostA/f%d %d" % (i, i))
    busy = sum(1 for r in res if r.endswith("the remote bridge is busy (too many requests waiting) (EAGAIN)"))
    print("served %d" % served)
    print("refused %d" % busy)
    for r in res:
        if not r.startswith("re:") and "(EAGAIN)" not in r:
            print("other: %s" % r)
PY

port=$(free_port)
url=nats://127.0.0.1:$port
expect 0 onA "$SHMBUS" create "$bus" --clients 400
expect 0 onB "$SHMBUS" create "$bus" --clients 32
start_nats
# Long delivery timeouts: the held request must not time out on either side.
start_bridge "$A" hostA "$work/bridgeA.log" --timeout 60000
start_bridge "$B" hostB "$work/bridgeB.log" --timeout 60000 --requests 1
wait_for "bridge A connected" state_is "$A" connected true
wait_for "bridge B connected" state_is "$B" connected true

onB python3 "$work/peer.py" "$bus" holder >"$work/holder.out" 2>&1 &
holder=$!
pids="$pids $holder"
wait_for "holder on B" has_client "$B" holder

onA timeout 120 python3 "$work/peer.py" "$bus" flood "$N" >"$work/flood.out" 2>&1 &
flood=$!
pids="$pids $flood"
# Bridge A has published all N requests, in the order it took them from its mailbox; the
# "let go" message it publishes after them reaches bridge B after them too (NATS keeps one
# connection's order), so all N - 1 others wait at B when the holder answers.
wait_for "bridge A to send $N requests" state_ge "$A" requests_out "$N"
wait_for "the holder to hold one" grep -q holding "$work/holder.out"
expect 0 onA "$SHMBUS" send "$bus" --as letgo --to bridge "hostB/holder LET-GO"

wait "$flood"
rc=$?
[ "$rc" -eq 0 ] || fail "the flood exited $rc: $(head -5 "$work/flood.out")"
cat "$work/flood.out"
grep -qx "served $want_served" "$work/flood.out" ||
    fail "want $want_served served: $(grep -v '^other' "$work/flood.out" | tr '\n' ' ')"
grep -qx "refused $want_refused" "$work/flood.out" ||
    fail "want $want_refused refused with EAGAIN: $(grep -v '^other' "$work/flood.out" | tr '\n' ' ')"
grep -q "^other" "$work/flood.out" && fail "answers that are neither: $(grep '^other' "$work/flood.out" | head -3)"
# B counted and logged each refusal; A passed each on as an error reply.
wait_for "bridge B's count" state_ge "$B" undeliverable "$want_refused"
[ "$(state "$B" undeliverable)" = "$want_refused" ] ||
    fail "bridge B counted $(state "$B" undeliverable) undeliverable, want $want_refused"
# (The log shows the first 20 of a kind; the rest are only counted.)
grep -q "$JOBS requests wait already: one refused" "$work/bridgeB.log" || fail "bridge B logged no refusal"
wait_for "bridge A's error replies" state_ge "$A" error_replies "$want_refused"
grep -q "request to hostB/holder failed there: the remote bridge is busy (too many requests waiting) (EAGAIN)" \
    "$work/bridgeA.log" || fail "bridge A logged no refusal: $(head -3 "$work/bridgeA.log")"

if [ "$fails" -ne 0 ]; then
    for f in bridgeA.log bridgeB.log holder.out nats.log; do
        echo "--- $f"
        tail -20 "$work/$f" 2>/dev/null
    done
fi
exit $((fails > 0))
