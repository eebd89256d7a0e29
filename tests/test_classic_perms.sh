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

# A seed client (client 1) creates the segment 0666; our client 2 joins, closes it.
read -r sem_name _ <<<"$sems"
(cd "$CLASSIC_DIR" && SEED_SEM_NAME=$sem_name exec "$BUILD/tests/classic_seedclient" 1) \
    >"$TEST_TMPDIR/seed.out" 2>&1 &
seed=$!
bg_pids+=("$seed")
deadline=$(($(now_ms) + 10000))
until ipcs -m | awk -v a="$memkey" '$1 == a { found = 1 } END { exit !found }'; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "the seed client made no segment"
    sleep 0.01
done
mode=$(ipcs -m | awk -v a="$memkey" '$1 == a { print $4 }')
[ "$mode" = 666 ] || fail "the seed client's segment is $mode, not 666: the test proves nothing"
CLASSIC_TEST_STOP_AT=1 "$CLASSIC_BIN/client2" >"$TEST_TMPDIR/c2.out" 2>&1 &
c2=$!
"$CLASSIC_BIN/client3" >"$TEST_TMPDIR/c3.out" 2>&1 &
c3=$!
bg_pids+=("$c2" "$c3")
deadline=$(($(now_ms) + 10000))
until [ "$(ps -o stat= -p "$c2" | cut -c1)" = T ]; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "client 2 never reached message 1"
    sleep 0.01
done
mode=$(ipcs -m | awk -v a="$memkey" '$1 == a { print $4 }')
kill -CONT "$c2"
for p in $seed $c2 $c3; do
    wait_exit "$p" 30 || fail "a client of the mixed run failed: $(cat "$TEST_TMPDIR"/*.out)"
done
[ "$mode" = 600 ] || fail "after our client joined, the seed's segment is $mode, not 600"
echo "ok: a seed client's 0666 segment became 600 when our client joined"
assert_clean "the permission runs"
