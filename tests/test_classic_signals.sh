#!/bin/bash
# SIGINT (Ctrl-C in start.sh's terminal, start.sh alone, or one client) and SIGTERM stop the
# classic exchange: every client stops within a second and says why, nothing is left in
# ipcs -m or /dev/shm, and a fresh run afterwards completes.
#
# start.sh is the seed's seven lines; the supervision is the clients': Ctrl-C reaches the
# whole process group (each client exits 130); a signal to start.sh alone kills it (130 or
# 143, its own status) and its clients hear of it through PR_SET_PDEATHSIG (SIGHUP: "my
# parent ended", exit 129); a signal to one client reaches its peers through the control
# segment (they exit with the same 128 + signal). The per-client statuses of the last case
# come from tests/classic_start_order.sh, which reports them.
#
# The signal comes while clients 1 and 2 wait for client 3, which start.sh (seed delays)
# starts a second later: a moment when the exchange is live and waiting, reached by waiting
# for client 2 to appear, not by sleeping.
. "$SHMBUS_TOP/tests/classic_lib.sh"

slowest=0

# Send SIG to TARGET (group, start, client1) once client 2 runs; check what followed.
interrupt() { # NAME SIG TARGET EXPECTED_STATUS
    local name=$1 sig=$2 target=$3 want=$4 out=$TEST_TMPDIR/$1.out c1 c2 t0 rc ms c
    if [ "$target" = client1 ]; then
        ORDER="1 2 3" start_bg "$out"
    else
        start_bg "$out"
    fi
    c2=$(wait_client "$bg" 2)
    c1=$(client_pid "$bg" 1)
    t0=$(now_ms)
    case $target in
    group) kill -s "$sig" -- "-$bg" ;;   # what the terminal does on Ctrl-C
    start) kill -s "$sig" "$bg" ;;
    client1) kill -s "$sig" "$c1" ;;
    esac
    wait_exit "$bg" 10
    rc=$?
    wait_gone 10 "$c1" "$c2" # start.sh may end before its clients
    ms=$(($(now_ms) - t0))
    [ $ms -gt $slowest ] && slowest=$ms
    # Within 2 s: start.sh's sleep 1 may delay the last client of the client1 case, and a
    # shell acts on a signal only after its foreground sleep ends.
    [ $ms -lt 2500 ] || fail "$name: the clients took $ms ms to stop"
    [ "$rc" = "$want" ] || fail "$name: start.sh exited $rc, not $want: $(cat "$out")"
    case $target in
    client1)
        # The starter goes on and starts client 3 a second later: it must stop at once (the
        # run's note), saying why, and exit as its peers did.
        if grep -q "^client3:" "$out"; then
            grep -q "^client3: stopping: client 1 (pid $c1) was interrupted (SIG$sig)$" "$out" ||
                fail "$name: the late client 3 did not stop at once: $(cat "$out")"
            grep -q "client3 (pid [0-9]*) exited with status 130" "$out" || fail "$name: client3 not 130"
        fi
        grep -q "^client1: interrupted (SIG$sig); stopping$" "$out" || fail "$name: client1 silent"
        grep -q "^client2: stopping: client 1 (pid $c1) was interrupted (SIG$sig)$" "$out" ||
            fail "$name: client2 did not say why it stopped: $(cat "$out")"
        grep -q "client1 (pid $c1) exited with status 130" "$out" || fail "$name: client1 not 130"
        grep -q "client2 (pid $c2) exited with status 130" "$out" || fail "$name: client2 not 130"
        ;;
    group)
        grep -q "^client3:" "$out" && fail "$name: client 3 started after the signal: $(cat "$out")"
        # Each client stops on its own signal, or on its peer's news of one if that came
        # first: either way it says so.
        for c in 1 2; do
            grep -qE "^client$c: (interrupted \(SIG$sig\); stopping|stopping: client [12] \(pid [0-9]+\) was interrupted \(SIG$sig\))$" "$out" ||
                fail "$name: client$c did not say it was interrupted: $(cat "$out")"
        done
        ;;
    start)
        grep -q "^client3:" "$out" && fail "$name: client 3 started after the signal: $(cat "$out")"
        # start.sh died of the signal; its clients heard it through PR_SET_PDEATHSIG.
        for c in 1 2; do
            grep -qE "^client$c: (my parent \(pid $bg\) ended; stopping|stopping: client [12] \(pid [0-9]+\) stopped: its parent \(pid $bg\) ended)$" "$out" ||
                fail "$name: client$c did not say start.sh ended: $(cat "$out")"
        done
        ;;
    esac
    assert_clean "$name"
    fresh_run "$name"
    echo "ok: $name: start.sh exit $rc, all stopped in $ms ms, nothing left, fresh run fine"
}

interrupt ctrl-c INT group 130
interrupt sigint-to-start.sh INT start 130
interrupt sigint-to-client1 INT client1 130
interrupt sigterm-to-start.sh TERM start 143
echo "slowest stop: $slowest ms"
