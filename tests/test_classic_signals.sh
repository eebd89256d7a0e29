#!/bin/bash
# SIGINT (Ctrl-C in start.sh's terminal, start.sh alone, or one client) and SIGTERM stop the
# classic exchange: every client stops within a second and says why, an interrupted client
# (and its peers, stopped by the news) exits 130, nothing is left in ipcs -m or /dev/shm,
# and a fresh run afterwards completes.
#
# The signal comes while clients 1 and 2 wait for client 3, which start.sh (seed delays)
# starts a second later: a moment when the exchange is live and waiting, reached by waiting
# for client 2 to appear, not by sleeping.
. "$SHMBUS_TOP/tests/classic_lib.sh"

slowest=0

# Send SIG to TARGET (group, start, client1) once client 2 runs; check what followed.
interrupt() { # NAME SIG TARGET EXPECTED_STATUS
    local name=$1 sig=$2 target=$3 want=$4 out=$TEST_TMPDIR/$1.out c1 t0 rc ms
    start_bg "$out"
    wait_client "$bg" 2 >/dev/null
    c1=$(client_pid "$bg" 1)
    t0=$(now_ms)
    case $target in
    group) kill -s "$sig" -- "-$bg" ;;   # what the terminal does on Ctrl-C
    start) kill -s "$sig" "$bg" ;;
    client1) kill -s "$sig" "$c1" ;;
    esac
    wait_exit "$bg" 10
    rc=$?
    ms=$(($(now_ms) - t0))
    [ $ms -gt $slowest ] && slowest=$ms
    [ $ms -lt 2000 ] || fail "$name: the clients took $ms ms to stop"
    [ "$rc" = "$want" ] || fail "$name: start.sh exited $rc, not $want: $(cat "$out")"
    grep -q "^client3:" "$out" && fail "$name: client 3 started after the signal: $(cat "$out")"
    if [ "$target" = client1 ]; then
        grep -q "^client1: interrupted (SIG$sig); stopping$" "$out" || fail "$name: client1 silent"
        grep -q "^client2: stopping: client 1 (pid $c1) was interrupted (SIG$sig)$" "$out" ||
            fail "$name: client2 did not say why it stopped: $(cat "$out")"
        grep -q "client1 (pid $c1) exited with status 130" "$out" || fail "$name: client1 not 130"
    else
        # Each client stops on its own signal, or on its peer's news of one if that came
        # first: either way it says so, and exits 128 + signal (start.sh's status shows it).
        for c in 1 2; do
            grep -qE "^client$c: (interrupted \(SIG$sig\); stopping|stopping: client [12] \(pid [0-9]+\) was interrupted \(SIG$sig\))$" "$out" ||
                fail "$name: client$c did not say it was interrupted: $(cat "$out")"
        done
    fi
    assert_clean "$name"
    fresh_run "$name"
    echo "ok: $name: start.sh exit $rc, all stopped in $ms ms, nothing left, fresh run fine"
}

interrupt ctrl-c INT group 130
interrupt sigint-to-start.sh INT start 130
interrupt sigint-to-client1 INT client1 130
interrupt sigterm-to-start.sh TERM start 143
echo "slowest stop: $slowest ms"
