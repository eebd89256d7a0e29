#!/bin/bash
# Named groups from the shell: pub/sub (every subscriber prints every message, in order),
# send --group (a work queue: each message printed by exactly one worker), group ls (text
# and JSON), leader (none, then who leads), bad usage, and a killed worker's jobs printed by
# another, marked redelivered.
#
# A subscriber is known to be ready when `shmbus group ls --json` counts it as a member: the
# test polls for that with a deadline, never sleeps a fixed time to synchronise.
set -u
. "$(dirname "$0")/cli_lib.sh"
bus=cli-grp-$$
pids=()

cleanup() {
    local p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    "$SHMBUS" destroy "$bus" >/dev/null 2>&1
    [ -n "${own_dir:-}" ] && rm -rf "$SHMBUS_DIR"
}
trap cleanup EXIT

# wait_members BUS GROUP N: poll until GROUP has N live members (deadline 30 s).
wait_members() {
    local end=$((SECONDS + 30))
    while [ $SECONDS -lt $end ]; do
        "$SHMBUS" group ls "$1" --json 2>/dev/null |
            grep -q "\"name\":\"$2\",\"members\":$3," && return 0
        sleep 0.01
    done
    fail "group $2 on $1 never had $3 members: $("$SHMBUS" group ls "$1" 2>&1)"
    return 1
}

expect 0 "$SHMBUS" create "$bus"

# 1. pub/sub: two subscribers each print the three messages, in order.
"$SHMBUS" sub "$bus" news --count 3 >"$work/s1.out" 2>"$work/s1.err" &
s1=$!
pids+=("$s1")
"$SHMBUS" sub "$bus" news --as reader2 --count 3 >"$work/s2.out" 2>"$work/s2.err" &
s2=$!
pids+=("$s2")
wait_members "$bus" news 2
expect 0 "$SHMBUS" pub "$bus" news one two three
wait "$s1" || fail "sub 1 exited $?: $(cat "$work/s1.err")"
wait "$s2" || fail "sub 2 exited $?: $(cat "$work/s2.err")"
for f in "$work/s1.out" "$work/s2.out"; do
    got=$(sed 's/.*: //' "$f" | tr '\n' ' ')
    [ "$got" = "one two three " ] || fail "$f: expected 'one two three', got '$got'"
done

# 2. A work queue: 20 jobs to two workers, each job printed by exactly one of them.
"$SHMBUS" recv "$bus" --sub jobs --json --timeout 2000 >"$work/w1.out" 2>"$work/w1.err" &
w1=$!
pids+=("$w1")
"$SHMBUS" recv "$bus" --sub jobs --json --timeout 2000 >"$work/w2.out" 2>"$work/w2.err" &
w2=$!
pids+=("$w2")
wait_members "$bus" jobs 2
expect 0 "$SHMBUS" send "$bus" --group jobs --timeout 5000 $(seq 1 20)
wait "$w1" || fail "worker 1 exited $?: $(cat "$work/w1.err")"
wait "$w2" || fail "worker 2 exited $?: $(cat "$work/w2.err")"
json_valid "$work/w1.out"
json_valid "$work/w2.out"
all=$(cat "$work/w1.out" "$work/w2.out" | sed 's/.*"data":"\([0-9]*\)".*/\1/' | sort -n | tr '\n' ' ')
[ "$all" = "$(seq 1 20 | tr '\n' ' ')" ] || fail "jobs done: '$all'"
[ -s "$work/w1.out" ] && [ -s "$work/w2.out" ] || fail "one worker got nothing"
grep -q '"flags":32' "$work/w1.out" "$work/w2.out" || fail "work-queue flag not shown"

# 3. No member: a clear error after the timeout.
expect 1 "$SHMBUS" send "$bus" --group nobody --timeout 100 job
err_has "shmbus: send $bus: group nobody had no live member for 100 ms"

# 4. group ls, text and JSON.
expect 0 "$SHMBUS" group ls "$bus"
out_has "news"
out_has "jobs"
expect 0 "$SHMBUS" group ls "$bus" --json
json_valid
out_has '"name":"news","members":0,'
out_has '"published":6,'
out_has '"queued":20,'

# 5. leader: nobody has led "chief" yet.
expect 0 "$SHMBUS" leader "$bus" chief
out_has "none epoch 0"
expect 0 "$SHMBUS" leader "$bus" chief --json
out_has '{"leader":0,"epoch":0}'

# 6. Bad usage and missing buses.
expect 2 "$SHMBUS" pub "$bus"
err_has "shmbus: pub: BUS and TOPIC are required"
expect 2 "$SHMBUS" send "$bus" --topic a --group b x
err_has "one of --to, --topic and --group, not several"
expect 2 "$SHMBUS" recv "$bus" --sub 'bad/name'
expect 2 "$SHMBUS" group list "$bus"
expect 2 "$SHMBUS" leader "$bus"
expect 1 "$SHMBUS" group ls no-such-bus-$$
err_has "shmbus: group ls no-such-bus-$$: no such bus"
expect 0 "$SHMBUS" pub --help
out_has "Usage: shmbus pub"

# 7. Redelivery: a worker killed with three jobs waiting; the other worker prints them, each
#    marked redelivered (its blocked receive reaps the dead one within about a second).
"$SHMBUS" recv "$bus" --sub rq --as w1 >"$work/r1.out" 2>"$work/r1.err" &
r1=$!
pids+=("$r1")
wait_members "$bus" rq 1
kill -STOP "$r1" # alive, but takes nothing
expect 0 "$SHMBUS" send "$bus" --group rq --timeout 5000 a b c
"$SHMBUS" sub "$bus" rq --as w2 --confirm --count 3 --timeout 10000 >"$work/r2.out" \
    2>"$work/r2.err" &
r2=$!
pids+=("$r2")
wait_members "$bus" rq 2
kill -KILL "$r1"
wait "$r1" 2>/dev/null
wait "$r2" || fail "worker 2 exited $?: $(cat "$work/r2.err")"
got=$(sed 's/.*: //' "$work/r2.out" | tr '\n' ' ')
[ "$got" = "a b c " ] || fail "redelivered jobs: expected 'a b c', got '$got'"
[ "$(grep -c ' redelivered: ' "$work/r2.out")" = 3 ] || fail "not marked: $(cat "$work/r2.out")"
expect 0 "$SHMBUS" group ls "$bus" --json
out_has '"name":"rq",'
out_has '"redelivered":3,"lost":0}'
expect 2 "$SHMBUS" recv "$bus" --as x --confirm
err_has "--confirm needs --sub"

# 8. A lossy subscriber (sub --lossy) whose output nobody reads: its recv waits for the
#    reader of its FIFO, outside any receive call. 6000 messages (more than its mailbox holds)
#    are all published without a miss; its oldest are dropped and counted, where `ls`,
#    `stat` and `group ls` show them.
expect 2 "$SHMBUS" recv "$bus" --as x --lossy
err_has "--lossy needs --sub"
mkfifo "$work/lossy.fifo"
exec 7<>"$work/lossy.fifo" # a reader that never reads: the FIFO opens at once, then fills
"$SHMBUS" sub "$bus" ticks --lossy --as slow >"$work/lossy.fifo" 2>"$work/lossy.err" &
ls1=$!
pids+=("$ls1")
wait_members "$bus" ticks 1
seq 1 6000 >"$work/ticks.in"
expect 0 "$SHMBUS" pub "$bus" ticks --timeout 5000 <"$work/ticks.in"
expect 0 "$SHMBUS" group ls "$bus" --json
out_has '"name":"ticks",'
lost=$(sed -n 's/.*"name":"ticks",.*"lost":\([0-9]*\)}.*/\1/p' "$work/out")
[ -n "$lost" ] && [ "$lost" -gt 0 ] || fail "no loss counted for ticks: $(cat "$work/out")"
expect 0 "$SHMBUS" ls --json
out_has "\"name\":\"slow\","
out_has "\"lost\":$lost}"
expect 0 "$SHMBUS" stat "$bus" --json
out_has "\"lost\":$lost,"
kill -KILL "$ls1"
wait "$ls1" 2>/dev/null
exec 7<&-

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"
