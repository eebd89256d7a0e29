#!/bin/bash
# shmbus send and recv: the pipeline from the issue, ids and names, JSON output (lossless for
# any bytes), sender names and the time of day, broadcast, priorities and acks, missing
# destinations, timeouts, and SIGINT on a waiting receiver.
#
# A receiver is known to be ready when `shmbus stat --json` lists it live: the test polls
# for that state with a deadline, never sleeps a fixed time to synchronise.
set -u
. "$(dirname "$0")/cli_lib.sh"
demo=demo-$$
bus=cli-msg-$$
small=cli-small-$$
pids=()

cleanup() {
    local p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    for b in "$demo" "$bus" "$small" "$small-full"; do "$SHMBUS" destroy "$b" >/dev/null 2>&1; done
    [ -n "${own_dir:-}" ] && rm -rf "$SHMBUS_DIR"
}
trap cleanup EXIT




# wait_live BUS ID|NAME: poll until the client is listed live (deadline 30 s).
wait_live() {
    local pat end
    if [[ $2 =~ ^[0-9]+$ ]]; then pat="\"id\":$2,"; else pat="\"name\":\"$2\""; fi
    end=$((SECONDS + 30))
    while [ $SECONDS -lt $end ]; do
        "$SHMBUS" stat "$1" --json 2>/dev/null | grep -qE "$pat[^}]*\"state\":\"live\"" && return 0
        sleep 0.01
    done
    fail "client $2 never appeared on $1"
    return 1
}

# wait_gone BUS ID: poll until the client is no longer listed (deadline 30 s).
wait_gone() {
    local end
    end=$((SECONDS + 30))
    while [ $SECONDS -lt $end ]; do
        "$SHMBUS" stat "$1" --json 2>/dev/null | grep -q "\"id\":$2," || return 0
        sleep 0.01
    done
    fail "client $2 still on $1"
    return 1
}

# finish PID: wait for a background command, return its status.
finish() {
    wait "$1"
}

# untimed FILE: recv's lines without their leading time of day ("HH:MM:SS.mmm ").
untimed() {
    sed -E 's/^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} //' "$1"
}


# 1. The pipeline from the issue. recv does not create the bus (`create` does).
expect 1 "$SHMBUS" recv "$demo" --as 2 --count 3 --timeout 100
err_has "shmbus: recv $demo: no such bus (create it first: shmbus create $demo)"
expect 0 "$SHMBUS" create "$demo"
expect 0 "$SHMBUS" create "$bus"
"$SHMBUS" recv "$demo" --as 2 --count 3 >"$work/pipe.out" 2>"$work/pipe.err" &
rpid=$!
pids+=("$rpid")
wait_live "$demo" 2
printf 'a\nb\nc\n' | "$SHMBUS" send "$demo" --as 1 --to 2 || fail "pipeline: send failed"
finish "$rpid" || fail "pipeline: recv exited $?: $(cat "$work/pipe.err")"
printf 'from 1 prio 0 seq 1: a\nfrom 1 prio 0 seq 2: b\nfrom 1 prio 0 seq 3: c\n' >"$work/pipe.want"
untimed "$work/pipe.out" | diff -u "$work/pipe.want" - || fail "pipeline output differs"
# Each line starts with the wall-clock time of day of its send (not a monotonic clock):
# within a minute of `date`, taken modulo a day.
now=$(date +%s)
while read -r t _; do
    [[ $t =~ ^([0-9]{2}):([0-9]{2}):([0-9]{2})\.[0-9]{3}$ ]] || { fail "no time of day: '$t'"; continue; }
    secs=$((10#${BASH_REMATCH[1]} * 3600 + 10#${BASH_REMATCH[2]} * 60 + 10#${BASH_REMATCH[3]}))
    here=$((10#$(date -d "@$now" +%H) * 3600 + 10#$(date -d "@$now" +%M) * 60 + 10#$(date -d "@$now" +%S)))
    d=$(((here - secs + 86400) % 86400))
    [ $d -le 60 ] || fail "time of day $t is $d s away from now ($(date -d "@$now" +%T))"
done <"$work/pipe.out"

# 2. Names for --as and --to; messages as arguments; --json with escaping.
"$SHMBUS" recv "$bus" --as alice --count 3 --json >"$work/json.out" 2>"$work/json.err" &
rpid=$!
pids+=("$rpid")
wait_live "$bus" alice
expect 0 "$SHMBUS" send "$bus" --as bob --to alice 'say "hi"' "$(printf 'tab\there\\')" 'héllo'
finish "$rpid" || fail "json: recv exited $?: $(cat "$work/json.err")"
json_valid "$work/json.out"
[ "$(wc -l <"$work/json.out")" -eq 3 ] || fail "json: expected 3 lines: $(cat "$work/json.out")"
grep -qF '"data":"say \"hi\""' "$work/json.out" || fail "json: quote not escaped"
grep -qF '"data":"tab\there\\"' "$work/json.out" || fail "json: tab/backslash not escaped"
grep -qF '"data":"héllo"' "$work/json.out" || fail "json: UTF-8 not kept"
grep -q '"seq":1,"prio":0' "$work/json.out" || fail "json: no seq/prio"

# 2b. JSON is lossless for any bytes: a payload that is not valid UTF-8 (0xff, a NUL, a
# lone continuation byte) comes out as data_base64 and decodes to exactly the bytes sent;
# valid UTF-8 stays readable in data. Lines of standard input carry the NUL.
"$SHMBUS" recv "$bus" --as carol --count 3 --json >"$work/bin.out" 2>"$work/bin.err" &
rpid=$!
pids+=("$rpid")
wait_live "$bus" carol
printf 'a\377b\nx\000y\200\nplain\n' | "$SHMBUS" send "$bus" --as dave --to carol ||
    fail "binary: send failed"
finish "$rpid" || fail "binary: recv exited $?: $(cat "$work/bin.err")"
json_valid "$work/bin.out"
python3 - "$work/bin.out" <<'PY' || fail "binary payloads did not round-trip: $(cat "$work/bin.out")"
import base64, json, sys
want = [b"a\xffb", b"x\x00y\x80", b"plain"]
got = []
for line in open(sys.argv[1]):
    m = json.loads(line)
    assert ("data" in m) != ("data_base64" in m), m
    got.append(base64.b64decode(m["data_base64"]) if "data_base64" in m else m["data"].encode())
    assert m["len"] == len(got[-1]), m
assert got == want, got
assert "data" in json.loads(open(sys.argv[1]).readlines()[2]), "valid UTF-8 not kept as data"
PY

# 2c. Sender names: a sender still on the bus is shown by name (and id) in text and JSON;
# the time of day is UTC ISO 8601 in JSON. (A sender that has left by the time its message
# is printed can only be shown by id.)
mkfifo "$work/bob.in"
"$SHMBUS" send "$bus" --as bob --to erin --wait 10000 <"$work/bob.in" >"$work/bob.err" 2>&1 &
spid=$!
pids+=("$spid")
exec 8>"$work/bob.in"
wait_live "$bus" bob
bob_id=$("$SHMBUS" stat "$bus" --json | python3 -c 'import json,sys; print([c["id"] for c in json.load(sys.stdin)["clients"] if c["name"]=="bob"][0])')
"$SHMBUS" recv "$bus" --as erin --count 1 >"$work/name.out" 2>&1 &
rpid=$!
pids+=("$rpid")
echo "from a named sender" >&8
finish "$rpid" || fail "names: recv exited $?: $(cat "$work/name.out")"
untimed "$work/name.out" | grep -qx "from bob ($bob_id) prio 0 seq 1: from a named sender" ||
    fail "names: text line lacks the sender's name: $(cat "$work/name.out")"
"$SHMBUS" recv "$bus" --as erin --count 1 --json >"$work/name.json" 2>&1 &
rpid=$!
pids+=("$rpid")
wait_live "$bus" erin
echo "again" >&8
finish "$rpid" || fail "names: recv --json exited $?: $(cat "$work/name.json")"
grep -q "\"src\":$bob_id,\"src_name\":\"bob\"" "$work/name.json" || fail "names: JSON lacks src_name: $(cat "$work/name.json")"
grep -qE '"time":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z"' "$work/name.json" ||
    fail "names: JSON lacks the time: $(cat "$work/name.json")"
exec 8>&-
finish "$spid" || fail "names: send exited $?: $(cat "$work/bob.err")"

# 3. Priority, ack and a timeout on the send side.
"$SHMBUS" recv "$bus" --as 2 --count 2 >"$work/prio.out" 2>"$work/prio.err" &
rpid=$!
pids+=("$rpid")
wait_live "$bus" 2
expect 0 "$SHMBUS" send "$bus" --as 1 --to 2 --prio 7 urgent
expect 0 "$SHMBUS" send "$bus" --as 1 --to 2 --ack --timeout 10000 acked
finish "$rpid" || fail "prio: recv exited $?: $(cat "$work/prio.err")"
untimed "$work/prio.out" | grep -qx 'from 1 prio 7 seq [0-9]*: urgent' || fail "prio: $(cat "$work/prio.out")"
untimed "$work/prio.out" | grep -qx 'from 1 prio 0 seq [0-9]*: acked' || fail "ack: $(cat "$work/prio.out")"

# 3b. What --ack and --prio change: with the receiver stopped (SIGSTOP: alive, taking
# nothing), an --ack send fails after its timeout, naming why (ignoring --ack it would return
# at once); then a normal and a --prio 7 message queue behind it, and once the receiver runs
# again the prio 7 one comes out first, the other two in the order sent.
"$SHMBUS" recv "$bus" --as 6 --count 3 >"$work/order.out" 2>"$work/order.err" &
r6=$!
pids+=("$r6")
wait_live "$bus" 6
kill -STOP "$r6"
expect 1 "$SHMBUS" send "$bus" --as 1 --to 6 --ack --timeout 300 not-yet
err_has "client 6 did not take the message within 300 ms"
expect 0 "$SHMBUS" send "$bus" --as 1 --to 6 low
expect 0 "$SHMBUS" send "$bus" --as 1 --to 6 --prio 7 high
kill -CONT "$r6"
finish "$r6" || fail "order: recv exited $?: $(cat "$work/order.err")"
untimed "$work/order.out" | sed 's/ seq [0-9]*:/:/' >"$work/order.got"
printf 'from 1 prio 7: high\nfrom 1 prio 0: not-yet\nfrom 1 prio 0: low\n' >"$work/order.want"
diff -u "$work/order.want" "$work/order.got" || fail "--prio 7 was not taken first"

# 4. Broadcast: every other live client gets exactly one copy. After the broadcast each
# receiver is sent an "end" of its own and reads two messages: a duplicate copy would come
# second (same priority, first in first out), in place of "end".
"$SHMBUS" recv "$bus" --as 2 --count 2 --timeout 10000 >"$work/b2.out" 2>&1 &
r2=$!
"$SHMBUS" recv "$bus" --as 3 --count 2 --timeout 10000 >"$work/b3.out" 2>&1 &
r3=$!
pids+=("$r2" "$r3")
wait_live "$bus" 2
wait_live "$bus" 3
expect 0 "$SHMBUS" send "$bus" --as 1 --to all everyone
expect 0 "$SHMBUS" send "$bus" --as 1 --to 2 end
expect 0 "$SHMBUS" send "$bus" --as 1 --to 3 end
finish "$r2" || fail "broadcast: receiver 2 exited $?"
finish "$r3" || fail "broadcast: receiver 3 exited $?"
for k in 2 3; do
    untimed "$work/b$k.out" | sed 's/ seq [0-9]*:/:/' >"$work/b$k.got"
    printf 'from 1 prio 0: everyone\nfrom 1 prio 0: end\n' | diff -u - "$work/b$k.got" ||
        fail "broadcast: receiver $k did not get exactly one copy"
done

# 5. --wait: the sender starts first and waits for its destination to join.
"$SHMBUS" send "$bus" --as 7 --to late --wait 10000 early-bird >"$work/w.out" 2>&1 &
spid=$!
pids+=("$spid")
expect 0 "$SHMBUS" recv "$bus" --as late --count 1 --timeout 10000
untimed "$work/out" | grep -qx 'from 7 prio 0 seq [0-9]*: early-bird' || fail "--wait: $(cat "$work/out")"
finish "$spid" || fail "--wait: send exited $?: $(cat "$work/w.out")"

# 6. Failures: a destination that is not there, an id in use, a message too large.
expect 1 "$SHMBUS" send "$bus" --as 1 --to 9 nobody
err_has "shmbus: send $bus: no client 9 on the bus"
expect 1 "$SHMBUS" send "$bus" --as 1 --to ghost nobody
err_has "no client ghost on the bus"
"$SHMBUS" recv "$bus" --as 4 >"$work/hold.out" 2>&1 &
hold=$!
pids+=("$hold")
wait_live "$bus" 4
expect 1 "$SHMBUS" send "$bus" --as 4 --to 4 mine
err_has "client 4 is already on the bus"
expect 0 "$SHMBUS" create "$small" --msg-size 4
"$SHMBUS" recv "$small" --as 2 --count 1 --timeout 10000 >"$work/small.out" 2>&1 &
rs=$!
pids+=("$rs")
wait_live "$small" 2
expect 1 "$SHMBUS" send "$small" --as 1 --to 2 toolong
err_has "shmbus: send $small:"
expect 0 "$SHMBUS" send "$small" --as 1 --to 2 fits
finish "$rs" || fail "small: recv exited $?"

# Backpressure: a full mailbox (a sender's own, which nobody reads) makes send wait, and fail
# after --timeout rather than drop.
expect 0 "$SHMBUS" create "$small-full" --slots 2 --msg-size 16 # a ring of 2 units
expect 1 "$SHMBUS" send "$small-full" --as 1 --to 1 --timeout 100 a b c
err_has "the mailbox of client 1 stayed full for 100 ms"
expect 0 "$SHMBUS" destroy "$small-full"

# 7. SIGINT stops a waiting receiver cleanly: exit 130 (128 + SIGINT), and it left the bus.
kill -INT "$hold"
finish "$hold"
rc=$?
[ $rc -eq 130 ] || fail "recv after SIGINT exited $rc, expected 130"
wait_gone "$bus" 4

# 8. recv timeouts: idle timeout without --count is a normal end; with --count it is not.
expect 0 "$SHMBUS" recv "$bus" --as 5 --timeout 100
[ -s "$work/out" ] && fail "recv --timeout printed: $(cat "$work/out")"
expect 1 "$SHMBUS" recv "$bus" --as 5 --count 1 --timeout 100
err_has "timed out after 0 of 1 messages"

# Nobody is left on the buses.
wait_gone "$bus" 1
expect 0 "$SHMBUS" stat "$bus" --json
grep -q '"clients":\[\]' "$work/out" || fail "clients left: $(cat "$work/out")"

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"
