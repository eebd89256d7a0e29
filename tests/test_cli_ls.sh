#!/bin/bash
# shmbus ls, stat, top and clean: what they show of a bus in use, and the cleanup of a bus
# whose only client was killed with SIGKILL.
set -u
# `shmbus clean` acts on every stale object of this user, not only this test's: orphaned
# segments of other tests (whose leaks the runner must still see) or of the user's own
# programs. So the test runs in a private IPC namespace when it can (root, or the isolation
# wrapper), where the only buses are its own; otherwise the real `clean` runs only if the
# dry run finds nothing stale but this test's bus.
if [ -z "${SHMBUS_CLI_LS_NS:-}" ] && unshare --ipc true 2>/dev/null; then
    SHMBUS_CLI_LS_NS=1 exec unshare --ipc bash "$0" "$@"
fi
. "$(dirname "$0")/cli_lib.sh"
[ -n "${SHMBUS_CLI_LS_NS:-}" ] && echo "note: in a private IPC namespace: clean sees only this test's buses"
bus=cli-ls-$$
stale=cli-stale-$$
pids=()

cleanup() {
    local p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    for b in "$bus" "$stale" "$bus-r"; do "$SHMBUS" destroy "$b" >/dev/null 2>&1; done
    [ -n "${own_dir:-}" ] && rm -rf "$SHMBUS_DIR"
}
trap cleanup EXIT





# poll_stat BUS REGEX: poll `stat BUS --json` until it matches (deadline 30 s).
poll_stat() {
    local end
    end=$((SECONDS + 30))
    while [ $SECONDS -lt $end ]; do
        "$SHMBUS" stat "$1" --json 2>/dev/null | grep -qE "$2" && return 0
        sleep 0.01
    done
    fail "stat $1 never matched $2: $("$SHMBUS" stat "$1" --json 2>&1)"
    return 1
}

expect 0 "$SHMBUS" create "$bus" --clients 16 --slots 32
"$SHMBUS" recv "$bus" --as worker >"$work/worker.out" 2>&1 &
worker=$!
"$SHMBUS" recv "$bus" --as 3 >"$work/three.out" 2>&1 &
three=$!
pids+=("$worker" "$three")
poll_stat "$bus" '"name":"worker","pid":[0-9]+,"state":"live"'
poll_stat "$bus" '"id":3,[^}]*"state":"live"'
expect 0 "$SHMBUS" send "$bus" --as 2 --to 3 one two three four five
poll_stat "$bus" '"id":3,[^}]*"received":5,'

# ls: the bus with its two clients, their pids, live, mailbox sizes.
expect 0 "$SHMBUS" ls
# 32 messages of 1024 B (17 units of 64 B each) round down to a ring of 512 units: 32 KiB.
out_has "$bus: 2 live clients (max 16), 32 KiB mailboxes, messages up to 1024 B, mode 0600"
grep -qE "^ +1 +worker +$worker +live +0$" "$work/out" || fail "ls: worker row: $(cat "$work/out")"
grep -qE "^ +3 +- +$three +live +0$" "$work/out" || fail "ls: client 3 row: $(cat "$work/out")"
expect 0 "$SHMBUS" ls --json
json_valid
out_has "\"dir\":\"$SHMBUS_DIR\""
out_has "{\"id\":1,\"name\":\"worker\",\"pid\":$worker,\"state\":\"live\",\"depth\":0,\"capacity\":30,"
out_has "{\"id\":3,\"name\":\"\",\"pid\":$three,\"state\":\"live\",\"depth\":0,\"capacity\":30,"
grep -q '"stale":\[[^]]*'"$bus" "$work/out" && fail "ls --json: the bus in use is listed stale"
out_has '"ring_bytes":32768,"clients":['

# create --ring-bytes: the ring's size in bytes, shown by ls; a ring that cannot hold two
# of the largest messages is a usage error, said in the option's words.
expect 0 "$SHMBUS" create "$bus-r" --clients 2 --msg-size 100 --ring-bytes 65536
expect 0 "$SHMBUS" ls
out_has "$bus-r: 0 live clients (max 2), 64 KiB mailboxes, messages up to 100 B"
expect 2 "$SHMBUS" create "$bus-r2" --ring-bytes 1000
err_has "--ring-bytes: a power of two from 128, not '1000'"
expect 2 "$SHMBUS" create "$bus-r2" --msg-size 4096 --ring-bytes 4096
err_has "--ring-bytes: 4096 bytes does not hold two messages of 4096 bytes"
expect 0 "$SHMBUS" destroy "$bus-r"

# stat: per-client counters and percentiles, and the bus total.
expect 0 "$SHMBUS" stat "$bus"
grep -qE '^ +ID +NAME +SENT +RECEIVED .* P50 +P99 +P99\.9$' "$work/out" || fail "stat header"
grep -qE '^ +3 +- +0 +5 ' "$work/out" || fail "stat: client 3 row: $(cat "$work/out")"
grep -qE '^ +all +\(bus\) ' "$work/out" || fail "stat: no total row"
expect 0 "$SHMBUS" stat "$bus" --json
json_valid
out_has "\"bus\":\"$bus\""
grep -qE '"id":3,[^}]*"received":5,"bytes_sent":0,"bytes_received":[0-9]+' "$work/out" ||
    fail "stat --json: client 3: $(cat "$work/out")"
grep -qE '"total":\{"sent":[0-9]+,"received":5,.*"latency_ns":\{"p50":[0-9]+,"p99":[0-9]+,"p99\.9":[0-9]+\}\}\}$' \
    "$work/out" || fail "stat --json: total: $(cat "$work/out")"

# top into a file (not a terminal): two screens of plain text, one after the other, each
# headed with the time of day, and no escape sequence anywhere.
expect 0 "$SHMBUS" top "$bus" --iterations 2 --interval 50
[ "$(grep -c "^shmbus top - bus $bus at [0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]*: 2 live clients" \
    "$work/out")" -eq 2 ] || fail "top: expected 2 plain screens: $(cat "$work/out")"
grep -q $'\033' "$work/out" && fail "top wrote escape sequences to a file: $(cat -A "$work/out" | head -3)"
grep -q "q quits" "$work/out" && fail "top offered 'q quits' with no terminal"
# On a terminal (script(1) gives it one) each screen starts with cursor home and clear.
if command -v script >/dev/null; then
    script -qec "'$SHMBUS' top '$bus' --iterations 2 --interval 50" /dev/null </dev/null >"$work/tty.out" 2>&1
    [ "$(grep -c $'\033\[H\033\[2J' "$work/tty.out")" -eq 2 ] ||
        fail "top on a terminal: expected 2 cleared screens: $(cat -A "$work/tty.out" | head -3)"
else
    fail "script(1) is missing (util-linux/bsdutils): cannot check top on a terminal"
fi
out_has "2 live clients"
grep -qE "^ +1 +worker +$worker +live " "$work/out" || fail "top: worker row: $(cat "$work/out")"
grep -qE '^ +all +\(bus\) ' "$work/out" || fail "top: no total row"
# top quits on SIGINT too, with 130 (sent once its first screen shows that it is running).
"$SHMBUS" top "$bus" --interval 50 >"$work/top.out" 2>&1 </dev/null &
tpid=$!
pids+=("$tpid")
end=$((SECONDS + 30))
while [ $SECONDS -lt $end ]; do
    grep -q "shmbus top" "$work/top.out" && break
    sleep 0.01
done
kill -INT "$tpid"
wait "$tpid"
rc=$?
[ $rc -eq 130 ] || fail "top after SIGINT exited $rc, expected 130"

kill -INT "$worker" "$three"
wait "$worker"
rc=$?
[ $rc -eq 130 ] || fail "worker exited $rc after SIGINT, expected 130"
wait "$three"
rc=$?
[ $rc -eq 130 ] || fail "receiver 3 exited $rc after SIGINT, expected 130"

# clean: a bus whose only client was killed is stale; --dry-run lists it and keeps it,
# clean removes it; a bus in use or idle is left alone. (clean covers every stale object of
# this user, not only this test's: the checks look only at this test's buses.)
expect 0 "$SHMBUS" create "$stale" --clients 4 --slots 4
"$SHMBUS" recv "$stale" --as 1 >/dev/null 2>&1 &
victim=$!
pids+=("$victim")
poll_stat "$stale" '"id":1,[^}]*"state":"live"'
kill -KILL "$victim"
wait "$victim" 2>/dev/null
poll_stat "$stale" '"id":1,[^}]*"state":"dead"'
expect 0 "$SHMBUS" ls
grep -qE "^ +1 +- +$victim +dead " "$work/out" || fail "ls: dead client: $(cat "$work/out")"
# The header counts what the rows show: no live client, one dead (it used to say "1 live
# client" over a row that said "dead").
grep -q "^$stale: 0 live clients, 1 dead (max 4)" "$work/out" ||
    fail "ls: header of $stale does not match its dead row: $(grep "^$stale" "$work/out")"
grep -q "^stale (remove with \`shmbus clean\`):" "$work/out" || fail "ls: no stale section"
expect 0 "$SHMBUS" ls --json
json_valid
python3 - "$work/out" "$stale" <<'PY' || fail "ls --json: counts do not match the rows"
import json, sys
doc = json.load(open(sys.argv[1]))
for b in doc["buses"]:
    if "clients" not in b:
        continue
    states = [c["state"] for c in b["clients"]]
    assert b["live_clients"] == states.count("live"), b
    assert b["dead_clients"] == states.count("dead"), b
    if b["name"] == sys.argv[2]:
        assert (b["live_clients"], b["dead_clients"]) == (0, 1), b
PY
expect 0 "$SHMBUS" clean --dry-run
grep -q "^stale .*$stale" "$work/out" || fail "clean --dry-run: $(cat "$work/out")"
grep -q "$bus" "$work/out" && fail "clean --dry-run lists the idle bus: $(cat "$work/out")"
expect 0 "$SHMBUS" stat "$stale"
expect 0 "$SHMBUS" clean --dry-run --json
json_valid
out_has '"removed":false'
others=""
if [ -z "${SHMBUS_CLI_LS_NS:-}" ]; then
    "$SHMBUS" clean --dry-run >"$work/dry"
    others=$(grep -v -F "$stale" "$work/dry" | grep -E '^stale ' || true)
fi
if [ -n "$others" ]; then
    echo "note: other stale shmbus objects of this user exist and no private IPC namespace is"
    echo "note: available: the real clean is not run, so as not to remove them:"
    echo "$others" | sed 's/^/    /'
    skipped_clean=1
else
    expect 0 "$SHMBUS" clean
    grep -q "^removed .*$stale" "$work/out" || fail "clean: $(cat "$work/out")"
    expect 1 "$SHMBUS" stat "$stale"
    expect 0 "$SHMBUS" clean --dry-run
    grep -q "$stale" "$work/out" && fail "still stale after clean: $(cat "$work/out")"
    expect 0 "$SHMBUS" stat "$bus"
fi

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
if [ -n "${skipped_clean:-}" ]; then
    echo "skip: the real shmbus clean (other stale objects of this user, no IPC namespace)"
    exit 77
fi
echo "all checks passed"
