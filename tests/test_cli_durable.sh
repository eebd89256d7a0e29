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
jdir=$work/journal-$$
pids=()

cleanup() {
    local p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    for b in "$bus" "$other"; do "$SHMBUS" destroy "$b" >/dev/null 2>&1; done
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

# Send three, take one; the receiver leaves keeping the rest (shmbus recv does).
expect 0 "$SHMBUS" create "$bus" --durable "$jdir" --sync batch
[ -n "$(ls "$jdir"/"$bus".*.jnl 2>/dev/null)" ] || fail "no journal file in $jdir"
"$SHMBUS" recv "$bus" --as 2 --count 1 --timeout 10000 >"$work/r1.out" 2>"$work/r1.err" &
pids+=($!)
wait_live "$bus" 2
expect 0 "$SHMBUS" send "$bus" --as 1 --to 2 first second third
wait "${pids[-1]}" || fail "recv exited $?: $(cat "$work/r1.err")"
cat "$work/r1.err"
grep -q ": first$" "$work/r1.out" || fail "recv did not print first: $(cat "$work/r1.out")"

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

[ "$fails" -eq 0 ] || exit 1
echo "durable create, rebuild and errors: ok"
