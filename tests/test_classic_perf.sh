#!/bin/bash
# Idle clients sleep. While the exchange is held (the client due to receive message 40 stops
# itself, SIGSTOP, holding semName), the two others are waiting: each may wake only when its
# bounded wait (CLASSIC_WAIT_MS, 50 ms) runs out to look for dead peers and seed clients,
# i.e. about 20-40 times a second. A client that polls (sleeps 1 ms and looks) wakes about
# 1000 times a second. The test counts the waiting clients' context switches
# (/proc/PID/status) over a window of about a second and fails above 100 a second per
# client: no timing is asserted, a loaded machine only lowers the count.
# The figures of a free-running exchange (wall time, CPU of the three clients) are reported,
# not asserted (performance is the bench's business).
. "$SHMBUS_TOP/tests/classic_lib.sh"

switches() { # PID: voluntary + involuntary context switches so far
    awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { n += $2 } END { print n + 0 }' "/proc/$1/status"
}

for round in 1 2 3; do
    out=$TEST_TMPDIR/hold-$round.out
    ORDER="1 2 3" start_bg "$out" START_DELAY=0 CLASSIC_TEST_STOP_AT=40
    # Message 40's addressee (the routing table says which) stops holding semName.
    to=$(expected | sed -n '121p' | awk '{ print $2 }')
    held=$(wait_client "$bg" "$to" T)
    set -- $(for c in 1 2 3; do [ "$c" = "$to" ] || client_pid "$bg" "$c"; done)
    c2=$1 c3=$2
    a2=$(switches "$c2") a3=$(switches "$c3") t0=$(now_ms)
    sleep 1 # the measuring window, not a synchronisation
    b2=$(switches "$c2") b3=$(switches "$c3") t1=$(now_ms)
    kill -CONT "$held"
    wait_exit "$bg" 10 || fail "the held exchange failed: $(tail -5 "$out")"
    assert_exchange "$out"
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1000 }')
    r2=$(awk -v n=$((b2 - a2)) -v s="$secs" 'BEGIN { printf "%d", n / s }')
    r3=$(awk -v n=$((b3 - a3)) -v s="$secs" 'BEGIN { printf "%d", n / s }')
    echo "round $round: while held for $secs s, the two waiting clients woke $r2/s and $r3/s"
    [ "$r2" -lt 100 ] && [ "$r3" -lt 100 ] ||
        fail "waiting clients woke $r2/s and $r3/s (limit 100/s): they poll instead of sleeping"
done
assert_clean "the held runs"

# The figures of a free-running exchange: reported only.
out=$TEST_TMPDIR/perf.out
TIMEFORMAT='%R %U %S'
t=$({ time {
    for c in 1 2 3; do
        "$CLASSIC_BIN/client$c" >>"$out" 2>&1 &
    done
    wait
}; } 2>&1) || fail "the exchange failed: $(tail -5 "$out")"
echo "All clients finished" >>"$out"
assert_exchange "$out"
read -r wall user sys <<<"$t"
echo "90 messages: wall $(awk -v w="$wall" 'BEGIN { printf "%d", w * 1000 }') ms, CPU (3 clients) $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%d", (u + s) * 1000 }') ms (reported, not asserted)"
assert_clean "the timed run"
