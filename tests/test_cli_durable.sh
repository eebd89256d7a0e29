#!/bin/bash
# shmbus create --durable DIR --sync LEVEL: a durable bus from the command line. Messages
# sent and not taken survive a simulated reboot (the bus, its key file and the whole
# runtime directory removed): `shmbus create` with the same DIR rebuilds the bus, says what
# it found, and `shmbus recv` gets what was left, once, in order. Bad options and a journal
# of another bus get clear errors.
#
# A receiver is known to be ready when `shmbus stat --json` lists it live: polled with a
# deadline, never a fixed sleep.
set -u
. "$(dirname "$0")/cli_lib.sh"
bus=cli-dur-$$
other=cli-dur-other-$$
ret=cli-dur-ret-$$
jdir=$work/journal-$$
pids=()

cleanup() {
    local p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    for b in "$bus" "$other" "$ret"; do "$SHMBUS" destroy "$b" >/dev/null 2>&1; done
    rm -rf "$jdir"
    [ -n "${own_dir:-}" ] && rm -rf "$SHMBUS_DIR"
}
trap cleanup EXIT

wait_live() {
    local end=$((SECONDS + 30))
    while [ $SECONDS -lt $end ]; do
        "$SHMBUS" stat "$1" --json 2>/dev/null | grep -qE "\"id\":$2,[^}]*\"state\":\"live\"" &&
            return 0
        sleep 0.01
    done
    fail "client $2 never appeared on $1"
    return 1
}

# What a reboot does to everything but the journal.
reboot_sim() {
    "$SHMBUS" destroy --force "$1" >/dev/null 2>&1
    rm -rf "${SHMBUS_DIR:?}"/*
}

# Usage errors.
expect 2 "$SHMBUS" create "$bus" --sync batch
err_has "--sync needs --durable"
expect 2 "$SHMBUS" create "$bus" --durable "$jdir" --sync sometimes
err_has "--sync: none, batch or always"

# A journal directory others can write to is refused, and nothing is written into it.
mkdir -m 0700 "$jdir" && chmod 0777 "$jdir"
expect 1 "$SHMBUS" create "$bus" --durable "$jdir"
err_has "not writable by group or others"
[ -z "$(ls -A "$jdir")" ] || fail "files written into a refused journal directory"
rmdir "$jdir"

# Take one message; then a receiver that is killed while it holds two more (peeked, its
# line written to a pipe nobody reads, so not consumed: shmbus recv takes a message only
# once its reader has read the line).
expect 0 "$SHMBUS" create "$bus" --durable "$jdir" --sync batch
[ -n "$(ls "$jdir"/"$bus".*.jnl 2>/dev/null)" ] || fail "no journal file in $jdir"
"$SHMBUS" recv "$bus" --as 2 --count 1 --timeout 10000 >"$work/r1.out" 2>"$work/r1.err" &
pids+=($!)
wait_live "$bus" 2
expect 0 "$SHMBUS" send "$bus" --as 1 --to 2 first
wait "${pids[-1]}" || fail "recv exited $?: $(cat "$work/r1.err")"
grep -q ": first$" "$work/r1.out" || fail "recv did not print first: $(cat "$work/r1.out")"
exec 7> >(exec sleep 60)
pids+=($!)
"$SHMBUS" recv "$bus" --as 2 --count 5 --timeout 20000 >&7 2>/dev/null &
rpid=$!
pids+=($rpid)
exec 7>&-
wait_live "$bus" 2
expect 0 "$SHMBUS" send "$bus" --as 1 --to 2 second third
kill -KILL "$rpid"
kill -KILL "${pids[-2]}"

reboot_sim "$bus"
expect 0 "$SHMBUS" create "$bus" --durable "$jdir"
err_has "2 messages waiting"
expect 0 "$SHMBUS" recv "$bus" --as 2 --count 2 --timeout 5000
out_has ": second"
out_has ": third"
grep -n "" "$work/out" | grep -q "^1:.*second$" || fail "second must come first"
expect 1 "$SHMBUS" recv "$bus" --as 2 --count 1 --timeout 200 # nothing else

# Taken means taken: after another reboot nothing comes back.
reboot_sim "$bus"
expect 0 "$SHMBUS" create "$bus" --durable "$jdir" --sync always
[ -s "$work/err" ] && fail "nothing should have been rebuilt: $(cat "$work/err")"
expect 1 "$SHMBUS" recv "$bus" --as 2 --count 1 --timeout 200

# A journal of another bus is refused with a clear error, and left alone.
reboot_sim "$bus"
f=$(ls "$jdir"/"$bus".*.jnl | head -1)
cp "$f" "$jdir/$other.0000000000000001.jnl"
expect 1 "$SHMBUS" create "$other" --durable "$jdir"
err_has "not a journal of this bus"
[ -f "$jdir/$other.0000000000000001.jnl" ] || fail "the foreign journal was removed"

# Retention and replay: taken messages stay in the journal (through compactions) and are
# sent again, flagged replayed (flags 128), from a time or from a sequence number.
expect 2 "$SHMBUS" create "$ret" --retain 1h
err_has "--retain needs --durable"
expect 2 "$SHMBUS" create "$ret" --durable "$jdir" --retain 5m
err_has "--retain: a size"
expect 0 "$SHMBUS" create "$ret" --durable "$jdir" --retain 1h --compact 4K
"$SHMBUS" recv "$ret" --as 2 --count 3 --timeout 10000 >"$work/r2.out" 2>"$work/r2.err" &
pids+=($!)
wait_live "$ret" 2
expect 0 "$SHMBUS" send "$ret" --as 1 --to 2 r1 r2 r3
wait "${pids[-1]}" || fail "recv exited $?: $(cat "$work/r2.err")"
"$SHMBUS" recv "$ret" --as 2 --count 5 --json --timeout 10000 >"$work/r3.out" 2>"$work/r3.err" &
pids+=($!)
wait_live "$ret" 2
expect 0 "$SHMBUS" replay "$ret" --from 30min --to 2
out_has "replayed 3 messages to 2"
expect 0 "$SHMBUS" replay "$ret" --from 2 --to 2
out_has "replayed 2 messages to 2"
wait "${pids[-1]}" || fail "recv of the replay exited $?: $(cat "$work/r3.err")"
for m in r1 r2 r3; do grep -q "\"$m\"" "$work/r3.out" || fail "$m was not replayed: $(cat "$work/r3.out")"; done
[ "$(grep -c '"flags":128' "$work/r3.out")" -eq 5 ] || fail "replayed messages must be flagged 128: $(cat "$work/r3.out")"
expect 2 "$SHMBUS" replay "$ret" --from yesterday --to 2
err_has "--from:"
expect 0 "$SHMBUS" create "$other"
expect 1 "$SHMBUS" replay "$other" --from 1h --to 2
err_has "not a durable bus"

[ "$fails" -eq 0 ] || exit 1
echo "durable create, rebuild and errors: ok"
