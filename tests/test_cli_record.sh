#!/bin/bash
# shmbus record / play: the traffic of a bus into a file, taking nothing from anyone, and
# back onto another bus: every message whole (a 5000-byte one and binary bytes included), in
# order, with its priority, to the recorded receiver (by id, or by name with --by-name).
# A damaged, truncated, foreign or newer file gets a clear error and exit 1 (what came
# before the damage was sent); a missing bus creates nothing; SIGINT ends a recording with
# 130 and leaves a whole file.
#
# record says "recording into FILE" once its tap is open: the test waits for that line
# (polled with a deadline), and for receivers to show as live, never for a fixed time.
set -u
. "$(dirname "$0")/cli_lib.sh"
a=cli-rec-a-$$
b=cli-rec-b-$$
pids=()

cleanup() {
    local p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    "$SHMBUS" destroy "$a" >/dev/null 2>&1
    "$SHMBUS" destroy "$b" >/dev/null 2>&1
    [ -n "${own_dir:-}" ] && rm -rf "$SHMBUS_DIR"
}
trap cleanup EXIT

live() { "$SHMBUS" stat "$1" --json 2>/dev/null | grep -qE "\"name\":\"$2\"[^}]*\"state\":\"live\""; }

expect 0 "$SHMBUS" create "$a" --clients 8 --msg-size 65536
expect 0 "$SHMBUS" create "$b" --clients 8 --msg-size 65536

# -- record on A while a receiver takes everything ------------------------------------------
"$SHMBUS" recv "$a" --as rx --no-pace --count 4 --timeout 30000 >"$work/rx.out" 2>&1 &
pids+=($!)
rx_pid=$!
wait_for "rx live on $a" live "$a" rx
rx_id=$("$SHMBUS" stat "$a" --json 2>/dev/null | sed -n 's/.*"id":\([0-9]*\),"name":"rx".*/\1/p')
[ -n "$rx_id" ] || fail "no id for rx on $a"
"$SHMBUS" record "$a" "$work/rec.bin" --count 4 --timeout 30000 2>"$work/rec.err" &
pids+=($!)
rec_pid=$!
wait_for "record started" grep -qF "recording into" "$work/rec.err"
"$SHMBUS" send "$a" --as alice --to rx --prio 3 one >/dev/null || fail "send one"
printf 'hi\xff\x00' | "$SHMBUS" send "$a" --as alice --to rx >/dev/null || fail "send binary"
head -c 5000 /dev/zero | tr '\0' 'x' >"$work/big"
"$SHMBUS" send "$a" --as alice --to rx <"$work/big" >/dev/null || fail "send 5000 bytes"
"$SHMBUS" send "$a" --as alice --to rx --prio 7 last >/dev/null || fail "send last"
wait "$rec_pid"
rc=$?
[ "$rc" -eq 0 ] || fail "record --count 4 exited $rc: $(cat "$work/rec.err")"
grep -qF "4 messages (0 cut to their first bytes), 0 missed" "$work/rec.err" ||
    fail "record's summary: $(cat "$work/rec.err")"
wait "$rx_pid" || fail "the receiver on $a did not get its 4 messages: record took some?"

# -- play onto B: by id, a dummy holds rx's old id ----------------------------------------------
"$SHMBUS" recv "$b" --as "$rx_id" --json --count 4 --timeout 30000 >"$work/byid.json" 2>&1 &
pids+=($!)
byid_pid=$!
wait_for "id $rx_id live on $b" bash -c "'$SHMBUS' stat '$b' --json | grep -qE '\"id\":$rx_id,[^}]*\"state\":\"live\"'"
"$SHMBUS" recv "$b" --as rx --json --count 4 --timeout 30000 >"$work/byname.json" 2>&1 &
pids+=($!)
byname_pid=$!
wait_for "rx live on $b" live "$b" rx
expect 0 "$SHMBUS" play "$work/rec.bin" "$b" --fast
err_has "4 of 4 messages sent, 0 failed"
wait "$byid_pid" || fail "the receiver of id $rx_id on $b did not get 4 messages"
json_valid "$work/byid.json"
big=$(cat "$work/big")
for want in '"data":"one"' '"data_base64":"aGn/AA=="' "\"data\":\"$big\"" '"data":"last"'; do
    grep -qF -- "$want" "$work/byid.json" || fail "played by id: missing ${want:0:40}"
done
grep -F '"data":"one"' "$work/byid.json" | grep -qF '"prio":3' || fail "prio 3 not kept"
grep -F '"data":"last"' "$work/byid.json" | grep -qF '"prio":7' || fail "prio 7 not kept"

# -- by name, with the recorded timing sped up -------------------------------------------
expect 0 "$SHMBUS" play "$work/rec.bin" "$b" --by-name --speed 1000
wait "$byname_pid" || fail "rx on $b did not get 4 messages by name"
grep -qF '"data":"last"' "$work/byname.json" || fail "played by name: last missing"

# -- damaged files: clear errors, what came before is sent -------------------------------
"$SHMBUS" recv "$b" --as 7 --no-pace --timeout 30000 >/dev/null 2>&1 &
pids+=($!)
wait_for "id 7 live on $b" bash -c "'$SHMBUS' stat '$b' --json | grep -qE '\"id\":7,[^}]*\"state\":\"live\"'"
size=$(stat -c %s "$work/rec.bin")
head -c $((size - 3)) "$work/rec.bin" >"$work/short.bin"
expect 1 "$SHMBUS" play "$work/short.bin" "$b" --fast --to 7
err_has "truncated; stopped there"
err_has "3 of 3 messages sent"
cp "$work/rec.bin" "$work/flip.bin"
printf 'X' | dd of="$work/flip.bin" bs=1 seek=$((size - 20)) conv=notrunc status=none
expect 1 "$SHMBUS" play "$work/flip.bin" "$b" --fast --to 7
err_has "damaged (its checksum does not match)"
head -c 200 /dev/urandom >"$work/noise.bin"
expect 1 "$SHMBUS" play "$work/noise.bin" "$b"
err_has "not a shmbus recording"
cp "$work/rec.bin" "$work/v9.bin"
printf '\x09' | dd of="$work/v9.bin" bs=1 seek=8 conv=notrunc status=none
expect 1 "$SHMBUS" play "$work/v9.bin" "$b"
err_has "format version 9"
expect 1 "$SHMBUS" play "$work/no-such-file" "$b"
err_has "No such file or directory"
expect 2 "$SHMBUS" play "$work/rec.bin" "$b" --speed 0
expect 2 "$SHMBUS" play "$work/rec.bin" "$b" --by-name --to rx

# -- a full disk (a file size limit of 8 KiB): a clear error, a file that plays -------------------
"$SHMBUS" recv "$a" --as 4 --no-pace --count 5 --timeout 30000 >/dev/null 2>&1 &
pids+=($!)
wait_for "id 4 live on $a" bash -c "'$SHMBUS' stat '$a' --json | grep -qE '\"id\":4,[^}]*\"state\":\"live\"'"
(ulimit -f 8 && exec "$SHMBUS" record "$a" "$work/full.bin" --count 5 --timeout 30000) \
    2>"$work/full.err" &
pids+=($!)
full_pid=$!
wait_for "the limited record started" grep -qF "recording into" "$work/full.err"
for i in 1 2 3 4 5; do
    "$SHMBUS" send "$a" --as 6 --to 4 <"$work/big" >/dev/null || fail "send big $i"
done
wait "$full_pid"
rc=$?
[ "$rc" -eq 1 ] || fail "record into a full file exited $rc, not 1: $(cat "$work/full.err")"
grep -qF "File too large (the file holds every message before this one)" "$work/full.err" ||
    fail "record's error on a full file: $(cat "$work/full.err")"
"$SHMBUS" recv "$b" --as 4 --no-pace --timeout 30000 >/dev/null 2>&1 &
pids+=($!)
wait_for "id 4 live on $b" bash -c "'$SHMBUS' stat '$b' --json | grep -qE '\"id\":4,[^}]*\"state\":\"live\"'"
expect 0 "$SHMBUS" play "$work/full.bin" "$b" --fast
grep -qE "play $b: [1-9] of [1-9] messages sent, 0 failed" "$work/err" ||
    fail "the file cut at the limit does not play whole: $(cat "$work/err")"

# -- a missing bus creates nothing; SIGINT leaves a whole file ---------------------------------
expect 1 "$SHMBUS" record "nosuch-$$" "$work/x.bin"
err_has "no such bus"
[ ! -e "$SHMBUS_DIR/nosuch-$$.bus" ] || fail "record created a bus"
"$SHMBUS" record "$a" "$work/int.bin" 2>"$work/int.err" &
pids+=($!)
int_pid=$!
wait_for "second record started" grep -qF "recording into" "$work/int.err"
"$SHMBUS" recv "$a" --as 5 --count 1 --timeout 30000 >/dev/null 2>&1 &
pids+=($!)
wait_for "id 5 live" bash -c "'$SHMBUS' stat '$a' --json | grep -qE '\"id\":5,[^}]*\"state\":\"live\"'"
"$SHMBUS" send "$a" --as 6 --to 5 kept >/dev/null || fail "send kept"
wait_for "recorded one" grep -qF "kept" "$work/int.bin"
kill -INT "$int_pid"
wait "$int_pid"
rc=$?
[ "$rc" -eq 130 ] || fail "record stopped by SIGINT exited $rc, not 130"
"$SHMBUS" recv "$b" --as 5 --count 1 --timeout 30000 >"$work/int.out" 2>&1 &
pids+=($!)
int_rx=$!
wait_for "id 5 live on $b" bash -c "'$SHMBUS' stat '$b' --json | grep -qE '\"id\":5,[^}]*\"state\":\"live\"'"
expect 0 "$SHMBUS" play "$work/int.bin" "$b" --fast
wait "$int_rx" || fail "the message recorded before SIGINT was not played"
grep -qF kept "$work/int.out" || fail "played: $(cat "$work/int.out")"
exit $((fails > 0))
