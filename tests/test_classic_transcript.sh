#!/bin/bash
# The classic exchange follows the seed's routing table exactly and prints it as the seed's
# clients do (a blank line after each message): in the seed's start order with its sleeps
# (classic/start.sh itself), in all six start orders without sleeps, and with another
# length. The expected transcript is computed from the table (classic_lib.sh: expected), not
# stored. Run without CLASSIC_DIR (the seed's names) in a private namespace, start.sh makes
# no MemDispatch file and leaves nothing in /dev/shm.
. "$SHMBUS_TOP/tests/classic_lib.sh"

out=$TEST_TMPDIR/seed.out
timeout 30 "$START" >"$out" 2>&1 || fail "start.sh in the seed's order: exit $?: $(tail -5 "$out")"
assert_exchange "$out"
assert_clean "a run in the seed's order"
echo "ok: seed order (client1, sleep 1, client2, sleep 1, client3): 90 messages as routed"

for order in "1 2 3" "1 3 2" "2 1 3" "2 3 1" "3 1 2" "3 2 1"; do
    out=$TEST_TMPDIR/order.out
    START_DELAY=0 timeout 30 "$ORDERED" $order >"$out" 2>&1 ||
        fail "start order $order without sleeps: exit $?: $(tail -5 "$out")"
    assert_exchange "$out"
    assert_clean "start order $order"
    echo "ok: start order $order, no sleeps: same transcript"
done

out=$TEST_TMPDIR/short.out
CLASSIC_MESSAGES=13 START_DELAY=0 timeout 30 "$ORDERED" 3 2 1 >"$out" 2>&1 ||
    fail "CLASSIC_MESSAGES=13: exit $?: $(tail -5 "$out")"
assert_exchange "$out" 13
assert_clean "a 13-message run"
echo "ok: CLASSIC_MESSAGES=13: 13 messages as routed"

# Started by hand, the seed's way, with the length as an option: same exchange.
out=$TEST_TMPDIR/hand.out
pids=()
for c in 3 1 2; do
    timeout 30 "$CLASSIC_BIN/client$c" --messages 30 >>"$out" 2>&1 &
    pids+=($!)
done
for p in "${pids[@]}"; do
    wait "$p" || fail "a client started by hand with --messages 30 failed: $(tail -5 "$out")"
done
echo "All clients finished" >>"$out"
assert_exchange "$out" 30
assert_clean "a run started by hand"
echo "ok: clients started by hand with --messages 30: 30 messages as routed"

# Started the way `(./client1 &)` does, their parent a subshell that ends at once: they
# outlive it (only a start.sh parent's end stops them) and complete the exchange.
out=$TEST_TMPDIR/orphans.out
pids=()
for c in 2 3 1; do
    ("$CLASSIC_BIN/client$c" >>"$out" 2>&1 & echo $! >"$TEST_TMPDIR/pid$c")
    pids+=("$(cat "$TEST_TMPDIR/pid$c")")
    bg_pids+=("${pids[-1]}")
done
wait_gone 30 "${pids[@]}"
echo "All clients finished" >>"$out"
assert_exchange "$out"
assert_clean "clients whose parent ended at once"
echo "ok: clients whose parent ended at once ((client &)): 90 messages as routed"

# The seed's default names (no CLASSIC_DIR), as a user runs start.sh: same exchange, no key
# file made, nothing left in ipcs -m or /dev/shm (the lock file goes with the last client).
need_private_ns
seeddir=$TEST_TMPDIR/default
in_private_ns "$seeddir" '
    START_DELAY=0 timeout 30 "'"$START"'" >out 2>&1
    echo $? >rc
    { ipcs -m | awk '\''$2 ~ /^[0-9]+$/ { print "segment " $1 }'\''; ls /dev/shm; } >left'
[ "$(cat "$seeddir/rc")" = 0 ] || fail "start.sh with the seed's names failed: $(tail -5 "$seeddir/out")"
assert_exchange "$seeddir/out"
[ -z "$(cat "$seeddir/left")" ] || fail "start.sh with the seed's names left: $(cat "$seeddir/left")"
[ ! -e "$seeddir/MemDispatch" ] || fail "start.sh made a MemDispatch file"
echo "ok: the seed's names (key -1, semName): same exchange, no key file made, nothing left"
