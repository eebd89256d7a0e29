#!/bin/bash
# The classic run's objects are owner-only (0600) whatever the umask, group-shared (0660,
# the seed's SEM_PERMS) only when asked, and a segment a seed client made 0666 is closed to
# other users as soon as one of ours joins.
. "$SHMBUS_TOP/tests/classic_lib.sh"

# Modes of the live run's objects, "segment segment sem sem sem sem": checked while the
# exchange is held at message 40 by a stopped client 2.
modes_of_live_run() { # [VAR=value...]
    local out=$TEST_TMPDIR/perms.out held s m
    start_bg "$out" START_DELAY=0 CLASSIC_TEST_STOP_AT=40 "$@"
    held=$(wait_client "$bg" 2 T)
    m=$(ipcs -m | awk -v a="$memkey" -v b="$ctlkey" '$1 == a || $1 == b { printf "%s ", $4 }')
    for s in $sems; do
        m="$m$(stat -c %a "/dev/shm/sem.$s") "
    done
    kill -CONT "$held"
    wait_exit "$bg" 10 || fail "the held run failed: $(tail -5 "$out")"
    assert_exchange "$out"
    echo "$m"
}

umask 000
got=$(modes_of_live_run)
[ "$got" = "600 600 600 600 600 600 " ] || fail "with umask 000, modes are '$got', not all 600"
echo "ok: umask 000: segments and semaphores are 600"

got=$(modes_of_live_run CLASSIC_GROUP=1)
[ "$got" = "660 660 660 660 660 660 " ] || fail "with CLASSIC_GROUP=1, modes are '$got', not 660"
echo "ok: CLASSIC_GROUP=1: segments and semaphores are 660 (SEM_PERMS)"
umask 022

# A seed client (client 1, tests/classic_seedclient.cpp) creates the segment 0666; our client
# 2 joins and closes it. The seed's names are global: in a private IPC namespace and /dev/shm.
need_private_ns
ns=$TEST_TMPDIR/seedperm
SEED=$BUILD/tests/classic_seedclient BIN=$CLASSIC_BIN in_private_ns "$ns" '
    now_ms() { echo $(($(date +%s%N) / 1000000)); }
    "$SEED" 1 >seed.out 2>&1 &
    seed=$!
    deadline=$(($(now_ms) + 10000))
    until ipcs -m | awk '\''$1 == "0xffffffff" { f = 1 } END { exit !f }'\''; do
        [ "$(now_ms)" -lt "$deadline" ] || { echo "the seed client made no segment" >err; exit 1; }
        sleep 0.01
    done
    ipcs -m | awk '\''$1 == "0xffffffff" { print $4 }'\'' >mode.before
    CLASSIC_TEST_STOP_AT=1 "$BIN/client2" >c2.out 2>&1 &
    c2=$!
    "$BIN/client3" >c3.out 2>&1 &
    c3=$!
    deadline=$(($(now_ms) + 10000))
    until [ "$(ps -o stat= -p "$c2" | cut -c1)" = T ]; do
        [ "$(now_ms)" -lt "$deadline" ] || { echo "client 2 never reached message 1" >err; kill -9 $seed $c2 $c3; exit 1; }
        sleep 0.01
    done
    ipcs -m | awk '\''$1 == "0xffffffff" { print $4 }'\'' >mode.after
    kill -CONT "$c2"
    for p in $seed $c2 $c3; do
        timeout 30 tail --pid="$p" -f /dev/null || kill -9 "$p"
        wait "$p" || echo "pid $p failed" >>err
    done
    { ipcs -m | awk '\''$2 ~ /^[0-9]+$/ { print "segment " $1 }'\''; ls /dev/shm; } >left'
[ ! -s "$ns/err" ] || fail "the mixed run failed: $(cat "$ns/err" "$ns"/*.out)"
[ "$(cat "$ns/mode.before")" = 666 ] || fail "the seed client's segment is $(cat "$ns/mode.before"), not 666: the test proves nothing"
[ "$(cat "$ns/mode.after")" = 600 ] || fail "after our client joined, the seed's segment is $(cat "$ns/mode.after"), not 600"
[ -z "$(cat "$ns/left")" ] || fail "the mixed run left: $(cat "$ns/left")"
echo "ok: a seed client's 0666 segment became 600 when our client joined; all three DONE, nothing left"
assert_clean "the permission runs"
