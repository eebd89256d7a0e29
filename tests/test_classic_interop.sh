#!/bin/bash
# Our classic clients beside clients that behave as the seed's originals
# (tests/classic_seedclient.cpp, C++ against classic/client.h: they never write packet_no,
# route by loop iteration, key on ftok("MemDispatch", 65) in their working directory
# without creating it (-1 when missing), print a blank line after each message, and stop
# after NUM_MESSAGES one-second rounds; built with 10 rounds).
#
# Every mix (the seed client in each seat, in each pair of seats, in all three as a
# control) in three start orders (the seed's, with its one-second sleeps, and two reversed
# ones without), each in its own folder and its own IPC namespace and /dev/shm (the seed's
# names are global), all with the seed's default names: every client prints DONE and exits
# 0, the output is the seed's format (header, text, blank line), messages cross between the
# two kinds of client, and nothing is left in ipcs -m or /dev/shm, nor a MemDispatch file.
# Also: a folder that has a MemDispatch file (both kinds key on it), and a client alone,
# which gives up after NUM_MESSAGES (30) seconds with exit 5.
. "$SHMBUS_TOP/tests/classic_lib.sh"
need_private_ns

seed=$BUILD/tests/classic_seedclient
[ -x "$seed" ] || fail "$seed missing"

# One mixed run in DIR, in the background: SEEDS (seats, "1 3"), ORDER, DELAY, [TOUCH].
mix() { # NAME SEEDS ORDER DELAY [touch]
    local dir=$TEST_TMPDIR/mix/$1 c
    mkdir -p "$dir/bin"
    for c in 1 2 3; do
        ln -s "$CLASSIC_BIN/client$c" "$dir/bin/client$c"
    done
    for c in $2; do
        ln -sf "$seed" "$dir/bin/client$c"
    done
    [ "${5:-}" = touch ] && touch "$dir/MemDispatch"
    echo "$2" >"$dir/seeds"
    ORDER_ARGS=$3 CLIENT_DIR=$dir/bin START_DELAY=$4 ORDERED=$ORDERED \
        in_private_ns "$dir" '
        timeout 60 "$ORDERED" $ORDER_ARGS >out 2>&1
        echo $? >rc
        ipcs -m | awk '\''$2 ~ /^[0-9]+$/ { print "segment " $1 }'\'' >left
        ls /dev/shm >>left' &
    runs+=("$dir")
}

# The checks on one finished run's folder.
check_mix() { # DIR
    local dir=$1 name seeds out c
    name=$(basename "$dir")
    seeds=$(cat "$dir/seeds")
    out=$dir/out
    [ "$(cat "$dir/rc" 2>/dev/null)" = 0 ] || fail "$name: clients failed (rc $(cat "$dir/rc" 2>/dev/null)): $(cat "$out")"
    for c in 1 2 3; do
        [ "$(grep -c "^client$c: DONE\$" "$out")" = 1 ] || fail "$name: client$c: DONE missing: $(cat "$out")"
    done
    [ "$(tail -n 1 "$out")" = "All clients finished" ] || fail "$name: last line is not the seed's"
    # The seed's format: every received message is its header, its text, a blank line; the
    # text names the sender the header names. Nothing else but DONE lines and the last line.
    awk -v name="$name" -v seeds=" $seeds " '
        function bad(why) { print name ": " why " at line " NR ": " $0; failed = 1; exit 1 }
        state == 0 && /^client[123]: DONE$/ { next }
        state == 0 && /^All clients finished$/ { next }
        state == 0 && /^Client [123] has received a message from client [123]:$/ {
            to = $2; from = $9; sub(":", "", from); state = 1; next }
        state == 1 { if ($0 !~ "^This is message [0-9]+ from client " from "$") bad("text")
                     state = 2; n++; seedto = index(seeds, " " to " ") > 0
                     seedfrom = index(seeds, " " from " ") > 0
                     got[to]++; if (seedto != seedfrom) cross++; next }
        state == 2 { if ($0 != "") bad("no blank line after the text"); state = 0; next }
        { bad("unexpected line") }
        END { if (failed) exit 1; if (state) bad("cut message"); if (n < 3) bad("only " n " messages")
              if (seeds != " 1 2 3 " && !cross) bad("no message crossed between the two kinds")
              printf "%d messages, %d crossing", n, cross }' "$out" >"$dir/summary" ||
        fail "$(cat "$dir/summary")"
    [ -z "$(cat "$dir/left")" ] || fail "$name: left behind: $(cat "$dir/left")"
    if [ -e "$dir/MemDispatch" ] && [[ $name != *touch* ]]; then
        fail "$name: a MemDispatch file was created"
    fi
    echo "ok: $name (seed clients in seats $seeds): all DONE, seed format, $(cat "$dir/summary"), nothing left"
}

runs=()
i=0
for seeds in "1" "2" "3" "1 2" "1 3" "2 3" "1 2 3"; do
    for order in "1 2 3" "3 2 1" "2 3 1"; do
        i=$((i + 1))
        delay=0
        [ "$order" = "1 2 3" ] && delay=1 # the seed's own start.sh
        mix "m$i-seeds-${seeds// /}-order-${order// /}" "$seeds" "$order" $delay
    done
done
mix "m-touch-seeds-2" "2" "1 2 3" 1 touch
mix "m-touch-seeds-13" "1 3" "3 1 2" 0 touch

# A client alone, with the default give-up time (NUM_MESSAGES = 30 s) and seed names.
alone=$TEST_TMPDIR/alone
in_private_ns "$alone" '
    t0=$(date +%s%N)
    timeout 60 "'"$CLASSIC_BIN"'/client2" >out 2>&1
    echo $? >rc
    echo $((($(date +%s%N) - t0) / 1000000)) >ms
    ipcs -m | awk '\''$2 ~ /^[0-9]+$/ { print "segment " $1 }'\'' >left
    ls /dev/shm >>left' &
alone_pid=$!

for p in $(jobs -p); do
    wait "$p"
done
for dir in "${runs[@]}"; do
    check_mix "$dir"
done

rc=$(cat "$alone/rc")
ms=$(cat "$alone/ms")
[ "$rc" = 5 ] || fail "client2 alone exited $rc, not 5: $(cat "$alone/out")"
grep -qx "client2: no other client came in 30 s; giving up" "$alone/out" ||
    fail "client2 alone did not say why: $(cat "$alone/out")"
[ "$ms" -ge 30000 ] && [ "$ms" -lt 33000 ] || fail "client2 alone gave up after $ms ms, not 30 to 33 s"
[ -z "$(cat "$alone/left")" ] || fail "client2 alone left: $(cat "$alone/left")"
[ ! -e "$alone/MemDispatch" ] || fail "client2 alone made a MemDispatch file"
echo "ok: a client alone gave up after $ms ms (NUM_MESSAGES = 30 s) with exit 5, nothing left"
