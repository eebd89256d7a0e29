#!/bin/bash
# shmbus tail: the traffic of a bus, shown as it flows and taken from no one. A receiver
# still gets every message; tail shows sender and receiver names, priority, the time of day
# and the payload escaped (plain) or lossless (JSON); it stops on --count, SIGINT and a
# missing bus with the documented statuses.
#
# tail joins nothing, so the test knows it watches once a probe message it keeps sending
# shows up in its output (polled with a deadline, never a fixed sleep).
set -u
. "$(dirname "$0")/cli_lib.sh"
bus=cli-tail-$$
pids=()

cleanup() {
    local p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    "$SHMBUS" destroy "$bus" >/dev/null 2>&1
    [ -n "${own_dir:-}" ] && rm -rf "$SHMBUS_DIR"
}
trap cleanup EXIT

# until_seen FILE TEXT: send probes to client 2 until FILE holds TEXT (deadline 20 s).
until_seen() {
    local end=$((SECONDS + 20))
    while [ $SECONDS -lt $end ]; do
        grep -qF -- "$2" "$1" && return 0
        "$SHMBUS" send "$bus" --as 3 --to 2 probe >/dev/null 2>&1
        sleep 0.05
    done
    fail "never saw '$2' in $1: $(head -c 300 "$1")"
    return 1
}

expect 0 "$SHMBUS" create "$bus" --slots 64
"$SHMBUS" recv "$bus" --as 2 --no-pace >"$work/recv.out" 2>"$work/recv.err" &
pids+=($!)
recv_pid=$!
end=$((SECONDS + 20))
until "$SHMBUS" stat "$bus" --json 2>/dev/null | grep -qE '"id":2,[^}]*"state":"live"'; do
    [ $SECONDS -lt $end ] || { fail "the receiver never joined"; break; }
    sleep 0.01
done

# JSON: names, priority, lossless payload, and the receiver still gets everything.
"$SHMBUS" tail "$bus" --json >"$work/tail.json" 2>"$work/tail.err" &
pids+=($!)
tail_pid=$!
until_seen "$work/tail.json" '"data":"probe"'
printf 'hi\xff\x00' | "$SHMBUS" send "$bus" --as alice --to 2 --prio 3 >/dev/null ||
    fail "send of binary bytes failed"
"$SHMBUS" send "$bus" --as alice --to 2 last-one >/dev/null || fail "send failed"
end=$((SECONDS + 20))
until grep -qF '"data":"last-one"' "$work/tail.json"; do
    [ $SECONDS -lt $end ] || { fail "tail never showed last-one"; break; }
    sleep 0.01
done
json_valid "$work/tail.json"
grep -F '"data_base64":"aGn/AA=="' "$work/tail.json" | grep -F '"src_name":"alice"' |
    grep -F '"dst":2' | grep -qF '"prio":3' ||
    fail "tail --json lacks the binary message with its names and prio: $(cat "$work/tail.json")"
kill -INT "$tail_pid"
wait "$tail_pid"
rc=$?
[ "$rc" -eq 130 ] || fail "tail stopped by SIGINT exited $rc, not 130"
end=$((SECONDS + 20))
until grep -qF "last-one" "$work/recv.out"; do
    [ $SECONDS -lt $end ] || { fail "the receiver did not get last-one: tail took it?"; break; }
    sleep 0.01
done
grep -qF "$(printf 'hi\xff')" "$work/recv.out" || fail "the receiver did not get the binary message"

# Plain: one line per message, escaped, and --count stops it.
"$SHMBUS" tail "$bus" --count 2 --timeout 20000 >"$work/tail.txt" 2>"$work/tail.err" &
pids+=($!)
tail_pid=$!
until_seen "$work/tail.txt" '"probe"'
printf 'a\tb\001c' | "$SHMBUS" send "$bus" --as 3 --to 2 >/dev/null
wait "$tail_pid"
rc=$?
[ "$rc" -eq 0 ] || fail "tail --count 2 exited $rc: $(cat "$work/tail.err")"
[ "$(wc -l <"$work/tail.txt")" -eq 2 ] || fail "tail --count 2 printed: $(cat "$work/tail.txt")"
grep -qE '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} 3 -> 2 prio 0 seq [0-9]+ flags 0 len 5: "a\\tb\\u0001c"$' \
    "$work/tail.txt" || fail "the escaped line is not as documented: $(cat "$work/tail.txt")"
grep -q "$(printf '\001')" "$work/tail.txt" && fail "tail printed a raw control byte"

# A missing bus: a clear error, nothing created.
expect 1 "$SHMBUS" tail "nosuch-$$" --count 1 --timeout 100
err_has "no such bus"
[ ! -e "$SHMBUS_DIR/nosuch-$$" ] || fail "tail created a bus"
expect 2 "$SHMBUS" tail
kill -TERM "$recv_pid" 2>/dev/null
wait "$recv_pid" 2>/dev/null
exit $((fails > 0))
