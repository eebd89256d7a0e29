#!/bin/bash
# kill -9 of any classic client, at a random moment or while it holds semName: the others
# notice within a second, say which client died, clean up and exit non-zero; nothing is left
# behind, and a fresh start.sh afterwards runs cleanly. Leftovers of a run whose every
# process was killed are recognised and replaced. A second start.sh while an exchange is live
# refuses and disturbs nothing.
#
# The runs that need each client's exit status use tests/classic_start_order.sh (start.sh's
# shape, reporting statuses): the seven-line start.sh reports none. A client killed before
# it registered cannot be noticed by its peers; they give up (CLASSIC_GIVE_UP, 3 s here,
# NUM_MESSAGES s by default), so such a kill may take up to that long plus 2 s.
. "$SHMBUS_TOP/tests/classic_lib.sh"

slowest=0
note_time() { # MS WHAT [LIMIT_MS]
    [ "$1" -gt $slowest ] && slowest=$1
    [ "$1" -lt "${3:-2000}" ] || fail "$2: took $1 ms to stop after the kill"
}

# The packets client N receives (the lines of the expected transcript).
receipts_of() {
    expected | awk -v c="Client $1" 'NR % 3 == 1 && index($0, c " has") == 1 { print (NR - 1) / 3 }'
}

# 1. A random moment: start.sh with short delays (clients start at 0, 0.2, 0.4 s) and the
#    victim killed at a random time from 0 to 450 ms after start.sh began, or, if it has not
#    started by then, as soon as it appears (so also before it has registered). Whether the
#    kill lands before, during or after its part, the outcome must fit.
random_kill() { # VICTIM ROUND ORDER
    local v=$1 out=$TEST_TMPDIR/random-$1-$2.out pid rc t0 ms
    ORDER=$3 start_bg "$out" START_DELAY=0.2 CLASSIC_GIVE_UP=3
    sleep "0.$(printf '%03d' $((RANDOM % 450)))" # picks the moment; nothing waits on it
    pid=$(find_client "$bg" "$v")
    t0=$(now_ms)
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    wait_exit "$bg" 10
    rc=$?
    ms=$(($(now_ms) - t0))
    if [ -n "$pid" ] && grep -q "client$v (pid $pid) exited with status 137 (SIGKILL)" "$out"; then
        [ "$rc" != 0 ] || fail "random kill of client$v: start.sh exited 0"
        if grep -q "giving up$" "$out"; then # killed before it registered
            note_time $ms "random kill of client$v (before it registered)" 5500
        else
            note_time $ms "random kill of client$v"
        fi
        echo "ok: client$v killed at a random moment (order $3): start.sh exit $rc after $ms ms"
    else
        [ "$rc" = 0 ] || fail "client$v not killed, yet start.sh exited $rc: $(cat "$out")"
        assert_exchange "$out"
        echo "ok: client$v had finished before the random kill (order $3): exchange complete"
    fi
    assert_clean "a random kill of client$v"
    fresh_run "a random kill of client$v"
}

# 2. While it holds semName: the victim stops itself (SIGSTOP) holding it at a random packet
#    of its own, and is killed there.
held_kill() { # VICTIM
    local v=$1 out=$TEST_TMPDIR/held-$1.out p pid rc t0 ms
    p=$(receipts_of "$v" | shuf -n 1)
    ORDER="1 2 3" start_bg "$out" START_DELAY=0 CLASSIC_TEST_STOP_AT="$p"
    pid=$(wait_client "$bg" "$v" T)
    t0=$(now_ms)
    kill -9 "$pid"
    wait_exit "$bg" 10
    rc=$?
    ms=$(($(now_ms) - t0))
    note_time $ms "kill of client$v holding semName"
    [ "$rc" != 0 ] || fail "client$v killed holding semName, yet start.sh exited 0"
    # The peers' own words, or start.sh's (it may report the death first): either way
    # naming the dead client and the semaphore it held.
    grep -qE "^client[123]: (stopping: )?client $v \(pid $pid\) .*holding semName" "$out" ||
        fail "no peer said client $v died holding semName: $(cat "$out")"
    assert_clean "a kill of client$v holding semName"
    fresh_run "a kill of client$v holding semName"
    echo "ok: client$v killed holding semName at message $p: peers said so, stopped in $ms ms"
}

# 2b. At the end: the exchange is over and the victim is the last to leave (it stops itself,
#    SIGSTOP, before leaving, and is killed there). The others have left already, so they
#    must not simply exit: they wait for it, and clean up when it dies.
leave_kill() { # VICTIM
    local v=$1 out=$TEST_TMPDIR/leave-$1.out pid rc
    ORDER="1 2 3" start_bg "$out" START_DELAY=0 CLASSIC_TEST_STOP_LEAVE="$v"
    pid=$(wait_client "$bg" "$v" T)
    kill -9 "$pid"
    wait_exit "$bg" 10
    rc=$?
    [ "$rc" = 137 ] || fail "client$v killed at its leave, yet start.sh exited $rc: $(cat "$out")"
    diff <(expected) <(transcript "$out") >/dev/null || fail "the exchange was not complete: $(cat "$out")"
    [ "$(grep -c '^client[123]: DONE$' "$out")" = 2 ] || fail "the survivors did not end DONE: $(cat "$out")"
    assert_clean "a kill of client$v at its leave, the others gone"
    echo "ok: client$v killed at its leave after the exchange: the others cleaned up"
}

# Each round another start order, so that each client spends time waiting for its peers.
round=0
for order in "1 2 3" "3 1 2" "2 3 1"; do
    round=$((round + 1))
    for v in 1 2 3; do
        random_kill "$v" "$round" "$order"
    done
done
for v in 1 2 3; do
    held_kill "$v"
done
for v in 1 2 3; do
    leave_kill "$v"
done

# 3. Everything killed at once, the clients first (start.sh's end would stop them cleanly,
#    through PR_SET_PDEATHSIG): the objects stay, and the next start.sh must recognise them as
#    a dead run's and replace them.
out=$TEST_TMPDIR/all.out
start_bg "$out" START_DELAY=0 CLASSIC_TEST_STOP_AT=46
wait_client "$bg" 2 T >/dev/null
victims=$(ps -o pid= --ppid "$bg")
kill -9 $victims
kill -9 "$bg"
wait_exit "$bg" 10
for p in $victims; do
    while pid_running "$p"; do sleep 0.01; done # reparented: not our child to wait
done
[ -n "$(leftovers)" ] || fail "killing everything left nothing behind: the test proves nothing"
fresh_run "a run whose processes were all killed"
echo "ok: a dead run's leftovers were recognised and replaced by the next start.sh"

# 4. A second start.sh while an exchange is live (held at message 40 by a stopped client 2).
out=$TEST_TMPDIR/live.out
start_bg "$out" START_DELAY=0 CLASSIC_TEST_STOP_AT=40
held=$(wait_client "$bg" 2 T)
out2=$TEST_TMPDIR/second.out
START_DELAY=0 timeout 30 "$ORDERED" 1 2 3 >"$out2" 2>&1
rc=$?
[ "$rc" = 4 ] || fail "a second start.sh exited $rc, not 4 (refused): $(cat "$out2")"
for c in 1 2 3; do
    grep -q "client$c (pid [0-9]*) exited with status 4$" "$out2" || fail "client$c of the second run did not exit 4"
done
for c in 1 2 3; do
    grep -q "^client$c: another exchange is running in $CLASSIC_DIR .*refusing to disturb it$" \
        "$out2" || fail "client$c of the second start.sh did not refuse clearly: $(cat "$out2")"
done
kill -CONT "$held"
wait_exit "$bg" 10 || fail "the first exchange was disturbed: $(cat "$out")"
assert_exchange "$out"
assert_clean "the first exchange"
echo "ok: a second start.sh refused (exit 4), the live exchange then completed undisturbed"
echo "slowest stop after a kill: $slowest ms"

# 5. A latecomer of a stopped run: start.sh may launch a client just before it learns that
#    another died, after the survivors have already removed everything. The late client must
#    stop (the key file's note tells it), not begin the exchange again and wait forever.
export CLASSIC_RUN=late-$$
"$CLASSIC_BIN/client3" >"$TEST_TMPDIR/late3.out" 2>&1 &
c3=$!
CLASSIC_TEST_STOP_AT=0 "$CLASSIC_BIN/client1" >"$TEST_TMPDIR/late1.out" 2>&1 &
c1=$!
bg_pids+=("$c3" "$c1")
deadline=$(($(now_ms) + 10000))
until [ "$(ps -o stat= -p "$c1" | cut -c1)" = T ]; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "client 1 never stopped at message 0"
    sleep 0.01
done
kill -9 "$c1"
wait_exit "$c3" 10
rc=$?
[ "$rc" = 3 ] || fail "client 3 exited $rc after client 1 died: $(cat "$TEST_TMPDIR/late3.out")"
assert_clean "client 3 alone after client 1 died"
timeout 10 "$CLASSIC_BIN/client2" >"$TEST_TMPDIR/late2.out" 2>&1
rc=$?
[ "$rc" = 3 ] || fail "the latecomer exited $rc, not 3: $(cat "$TEST_TMPDIR/late2.out")"
grep -q "^client2: stopping: client 1 (pid $c1) died holding semName$" "$TEST_TMPDIR/late2.out" ||
    fail "the latecomer did not say why: $(cat "$TEST_TMPDIR/late2.out")"
assert_clean "the latecomer"
unset CLASSIC_RUN
fresh_run "a stopped run's latecomer"
echo "ok: a client arriving after its run stopped says why and exits 3, at once"
