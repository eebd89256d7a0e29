#!/bin/bash
# Idle clients sleep: the 90-message classic exchange, clients started together with no
# sleeps, takes well under 100 ms of wall time and the three clients under 50 ms of CPU in
# all (the issue's figures, reported here). Asserted only with wide margins (2 s, 500 ms),
# so a loaded machine cannot make it flake; a client that polled would blow them anyway.
. "$SHMBUS_TOP/tests/classic_lib.sh"

# The clients alone, as start.sh would start them without sleeps; bash's `time` reports the
# wall time and the CPU of the children it waited for.
run_once() {
    local out=$TEST_TMPDIR/perf.out TIMEFORMAT='%R %U %S' t
    t=$({ time {
        for c in 1 2 3; do
            "$CLASSIC_BIN/client$c" >>"$out" 2>&1 &
        done
        wait
    }; } 2>&1) || fail "the exchange failed: $(tail -5 "$out")"
    echo "All clients finished" >>"$out"
    assert_exchange "$out"
    rm -f "$out"
    read -r wall user sys <<<"$t"
}

best_wall=999 best_cpu=999
for i in 1 2 3 4 5; do
    run_once
    wall_ms=$(awk -v w="$wall" 'BEGIN { printf "%d", w * 1000 }')
    cpu_ms=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%d", (u + s) * 1000 }')
    echo "run $i: 90 messages, wall $wall_ms ms, CPU (3 clients) $cpu_ms ms"
    [ "$wall_ms" -lt 2000 ] || fail "wall time $wall_ms ms: clients are not sleeping"
    [ "$cpu_ms" -lt 500 ] || fail "CPU time $cpu_ms ms: clients are not sleeping"
    [ "$wall_ms" -lt "$best_wall" ] && best_wall=$wall_ms
    [ "$cpu_ms" -lt "$best_cpu" ] && best_cpu=$cpu_ms
done
assert_clean "the timed runs"
echo "best of 5: wall $best_wall ms (goal < 100), CPU $best_cpu ms (goal < 50)"
