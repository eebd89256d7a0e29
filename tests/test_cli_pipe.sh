#!/bin/bash
# Pipelines and stop signals (issues 17 and 9): a reader that stops early takes no message
# it did not hand on, and what it did not hand on stays in the mailbox (recv leaves with
# shmbus_leave_keep) for the next recv of the same id; a closed standard output or error
# makes every command stop cleanly (it leaves the bus, removes what it made, exits 141)
# instead of dying of SIGPIPE, and SIGINT/SIGTERM stop a send blocked on a full mailbox or
# an ack (exit 130/143).
#
# State is observed with `shmbus stat --json` polled against a deadline; the one pipeline
# that must stay still is watched over a series of polls. Every background process is
# remembered by pid and stopped by pid; every bus is destroyed at exit, pass or fail.
set -u
. "$(dirname "$0")/cli_lib.sh"
bus=cli-pipe-$$
full=cli-pipe-full-$$
joins=cli-pipe-joins-$$
pids=()

cleanup() {
    local p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    for b in "$bus" "$full" "$joins"; do "$SHMBUS" destroy "$b" >/dev/null 2>&1; done
    [ -n "${own_dir:-}" ] && rm -rf "$SHMBUS_DIR"
}
trap cleanup EXIT

# field BUS ID NAME...: numbers (or the state) of client ID from one stat --json, one line
# each; empty if the client is not listed.
field() {
    local bus=$1 id=$2 obj f
    shift 2
    obj=$("$SHMBUS" stat "$bus" --json 2>/dev/null | grep -o "{\"id\":$id,[^}]*")
    for f in "$@"; do
        grep -o "\"$f\":\"\?[a-z0-9]*" <<<"$obj" | sed 's/.*:"\?//'
    done
}

# wait_field BUS ID NAME VALUE: poll until the field has that value (deadline 30 s).
wait_field() {
    local end=$((SECONDS + 30))
    while [ $SECONDS -lt $end ]; do
        [ "$(field "$1" "$2" "$3")" = "$4" ] && return 0
        sleep 0.01
    done
    fail "client $2 of $1: $3 is '$(field "$1" "$2" "$3")', never '$4'"
    return 1
}

# wait_gone BUS ID: poll until the client is no longer listed (it left, or was never there).
wait_gone() {
    local end=$((SECONDS + 30))
    while [ $SECONDS -lt $end ]; do
        "$SHMBUS" stat "$1" --json 2>/dev/null | grep -q "\"id\":$2," || return 0
        sleep 0.01
    done
    fail "client $2 still on $1 ($(field "$1" "$2" state))"
    return 1
}

# wait_exit PID SECONDS: poll until the process is gone; fail if it outlives the bound.
wait_exit() {
    local end=$((SECONDS + $2))
    while kill -0 "$1" 2>/dev/null; do
        if [ $SECONDS -ge $end ]; then
            fail "pid $1 still running $2 s later"
            return 1
        fi
        sleep 0.01
    done
}

# wait_lines FILE N: poll until FILE has N lines.
wait_lines() {
    local end=$((SECONDS + 30))
    while [ $SECONDS -lt $end ]; do
        [ "$(wc -l <"$1" 2>/dev/null)" = "$2" ] && return 0
        sleep 0.01
    done
    fail "$1 has $(wc -l <"$1") lines, never $2"
    return 1
}

# A pipe with no reader on descriptor 9: writes to it fail with EPIPE (SIGPIPE if not
# ignored). The FIFO is opened read-write first so that opening the write end does not
# block, then its only reader is closed.
fifo=$work/noreader
mkfifo "$fifo"
exec 8<>"$fifo" 9>"$fifo" 8<&-

expect 0 "$SHMBUS" create "$bus" --slots 2048

echo "section 1 at ${SECONDS}s"
# ---- 1. A reader that stalls after one line: recv has taken exactly that one. ----------
# Then the reader reads the rest: all 1000 arrive, once each, in order.
go=$work/go
mkfifo "$go"
(
    "$SHMBUS" recv "$bus" --as 2 --count 1000
    echo $? >"$work/recv1.rc"
) | {
    head -1 >"$work/first"
    read -r _ <"$go"
    cat >"$work/rest"
} &
reader=$!
pids+=($reader)
wait_field "$bus" 2 state live
seq 1000 | "$SHMBUS" send "$bus" --as 1 --to 2 >"$work/out" 2>"$work/err" ||
    fail "sending 1000: $(cat "$work/err")"
wait_lines "$work/first" 1
wait_field "$bus" 2 received 1
# The second line is written and waits in the pipe; recv must not take anything more while
# nobody reads. Watched over 20 polls of stat.
for i in $(seq 20); do
    read -r r d < <(field "$bus" 2 received depth | paste -sd' ')
    if [ "$r" != 1 ] || [ "$d" != 999 ]; then
        fail "stalled reader: recv took $r messages (depth $d), expected 1 (999 left)"
        break
    fi
done
echo go >"$go"
wait "$reader"
[ "$(cat "$work/recv1.rc" 2>/dev/null)" = 0 ] || fail "recv --count 1000 exited $(cat "$work/recv1.rc")"
cat "$work/first" "$work/rest" | sed 's/^[0-9:.]* from 1 prio 0 seq \([0-9]*\): \([0-9]*\)$/\1 \2/' >"$work/seqs"
seq 1000 | paste -d' ' - <(seq 1000) | cmp -s - "$work/seqs" ||
    fail "the 1000 messages did not arrive once each in order: $(head -3 "$work/seqs")"
wait_gone "$bus" 2

# The same stall without pacing takes what the pipe can hold: this is what pacing prevents
# (and shows the check above would catch its absence).
(
    "$SHMBUS" recv "$bus" --as 2 --no-pace
    echo $? >"$work/recv2.rc"
) | {
    head -1 >/dev/null
    exec sleep 300
} &
reader=$!
pids+=($reader)
wait_field "$bus" 2 state live
seq 1000 | "$SHMBUS" send "$bus" --as 1 --to 2 2>"$work/err" || fail "sending: $(cat "$work/err")"
wait_field "$bus" 2 received 1000
kill -TERM "$reader"
wait "$reader" 2>/dev/null
wait_gone "$bus" 2
# An idle recv notices that its reader left (within a wait slice), without a message to write.
[ "$(cat "$work/recv2.rc" 2>/dev/null)" = 141 ] ||
    fail "idle recv whose reader left exited '$(cat "$work/recv2.rc" 2>/dev/null)', expected 141"

echo "section 2 at ${SECONDS}s"
# ---- 2. The reader leaves: recv exits 141, takes nothing it did not hand on, and keeps the
# rest in the mailbox: `shmbus ls`/`stat` show them, the next recv of id 2 gets them all. --
(
    "$SHMBUS" recv "$bus" --as 2
    echo $? >"$work/recv3.rc"
) | {
    head -1 >"$work/first"
    exec sleep 300
} &
reader=$!
pids+=($reader)
wait_field "$bus" 2 state live
seq 1000 | "$SHMBUS" send "$bus" --as 1 --to 2 2>"$work/err" || fail "sending: $(cat "$work/err")"
wait_field "$bus" 2 received 1
kill -TERM "$reader" # the reader leaves with line 2 unread in the pipe
wait "$reader" 2>/dev/null
wait_field "$bus" 2 state kept
[ "$(cat "$work/recv3.rc" 2>/dev/null)" = 141 ] ||
    fail "recv whose reader left exited '$(cat "$work/recv3.rc" 2>/dev/null)', expected 141"
read -r r d < <(field "$bus" 2 received depth | paste -sd' ')
[ "$r" = 1 ] && [ "$d" = 999 ] || fail "after the reader left: received $r, kept $d (expected 1, 999)"
"$SHMBUS" ls >"$work/ls"
grep -Eq '^ +2 +- +0 +kept +999$' "$work/ls" || fail "ls does not show the 999 kept: $(cat "$work/ls")"
"$SHMBUS" stat "$bus" >"$work/stat"
grep -Eq '^ +2 - \(kept\) +0 +1 ' "$work/stat" || fail "stat does not show id 2 as kept: $(cat "$work/stat")"
# The pipeline of the issue, with 999 waiting: head prints one, the other 998 stay.
"$SHMBUS" recv "$bus" --as 2 | head -1 >"$work/first"
st=("${PIPESTATUS[@]}")
[ "${st[0]}" = 141 ] || fail "recv | head -1 with 999 waiting: recv exited ${st[0]}, expected 141"
[ "$(cut -d' ' -f2- "$work/first")" = "from 1 prio 0 seq 2: 2" ] || fail "recv | head -1 printed: $(cat "$work/first")"
wait_field "$bus" 2 state kept
read -r r d < <(field "$bus" 2 received depth | paste -sd' ')
[ "$r" = 1 ] && [ "$d" = 998 ] || fail "after recv | head -1: received $r, kept $d (expected 1, 998)"
# The next recv gets exactly the rest, in order, once each.
"$SHMBUS" recv "$bus" --as 2 --count 998 --timeout 20000 >"$work/rest" 2>"$work/err" ||
    fail "recv --count 998 of the kept: $(cat "$work/err")"
sed 's/^[0-9:.]* from 1 prio 0 seq \([0-9]*\): \([0-9]*\)$/\1 \2/' "$work/rest" >"$work/seqs"
seq 3 1000 | paste -d' ' - <(seq 3 1000) | cmp -s - "$work/seqs" ||
    fail "the 998 kept messages did not arrive once each in order: $(head -3 "$work/seqs")"
wait_gone "$bus" 2

echo "section 3 at ${SECONDS}s"
# ---- 3. `recv | head -1` with --ack senders: exactly the printed message is acked. ------
# head really exits; the message being handed on when it does is neither taken nor acked:
# it is kept, its sender still waits, and the next recv of id 2 takes it (releasing the
# sender) and the one after. Text and JSON output, stderr open or closed.
ack_case() {
    local label=$1
    shift
    rm -f "$work/rc"
    (
        "$SHMBUS" recv "$bus" --as 2 "$@"
        echo $? >"$work/rc"
    ) | head -1 >"$work/first" &
    local pipeline=$!
    pids+=($pipeline)
    wait_field "$bus" 2 state live
    "$SHMBUS" send "$bus" --as 1 --to 2 --ack --timeout 20000 first second third \
        >"$work/out" 2>"$work/err" &
    local sender=$!
    pids+=($sender)
    wait "$pipeline"
    wait_field "$bus" 2 state kept
    [ "$(field "$bus" 2 depth)" = 1 ] || fail "$label: kept $(field "$bus" 2 depth), expected 1"
    [ "$(wc -l <"$work/first")" = 1 ] && grep -q "first" "$work/first" ||
        fail "$label: head printed: $(cat "$work/first")"
    [ "$(cat "$work/rc" 2>/dev/null)" = 141 ] || fail "$label: recv exited $(cat "$work/rc")"
    "$SHMBUS" recv "$bus" --as 2 --count 2 --timeout 20000 "$@" >"$work/next" 2>&1 ||
        fail "$label: the next recv: $(cat "$work/next")"
    wait "$sender"
    local src=$?
    [ $src -eq 0 ] || fail "$label: send --ack exited $src, expected 0: $(cat "$work/err")"
    [ "$(wc -l <"$work/next")" = 2 ] && grep -q "second" "$work/next" &&
        grep -q "third" "$work/next" || fail "$label: the next recv printed: $(cat "$work/next")"
    wait_gone "$bus" 2
}
ack_case text
ack_case json --json
ack_case "closed stderr" 2>&-
ack_case "stderr to a pipe without reader" 2>&9

echo "section 4 at ${SECONDS}s"
# ---- 4. Output closed before anything is printed: nothing taken, nothing acked. ----------
for how in "stdout closed" "stdout to a pipe without reader" "both"; do
    rm -f "$work/rc"
    case $how in
    "stdout closed") ("$SHMBUS" recv "$bus" --as 2 >&-; echo $? >"$work/rc") & ;;
    "stdout to a pipe without reader") ("$SHMBUS" recv "$bus" --as 2 >&9; echo $? >"$work/rc") & ;;
    both) ("$SHMBUS" recv "$bus" --as 2 >&9 2>&9; echo $? >"$work/rc") & ;;
    esac
    p=$!
    pids+=($p)
    # On a dead pipe recv may notice it idle and leave before the message comes (then the
    # send finds no client 2): either way the message must not be acked. If it came, it is
    # kept untaken (the ack wait then runs out), and the next recv of id 2 gets it.
    "$SHMBUS" send "$bus" --as 1 --to 2 --wait 5000 --ack --timeout 3000 one \
        >"$work/out" 2>"$work/err" && fail "$how: a message recv could not print was acked"
    wait "$p"
    [ "$(cat "$work/rc")" = 141 ] || fail "$how: recv exited $(cat "$work/rc"), expected 141"
    if [ "$(field "$bus" 2 state)" = kept ]; then
        read -r r d < <(field "$bus" 2 received depth | paste -sd' ')
        [ "$r" = 0 ] && [ "$d" = 1 ] || fail "$how: received $r, kept $d (expected 0, 1)"
        "$SHMBUS" recv "$bus" --as 2 --count 1 --timeout 5000 >"$work/next" 2>&1 &&
            grep -q ': one$' "$work/next" || fail "$how: the kept message: $(cat "$work/next")"
    fi
    wait_gone "$bus" 2
done

echo "section 5 at ${SECONDS}s"
# ---- 5. Errors to a closed stderr: no death by SIGPIPE, the client still leaves. ---------
"$SHMBUS" send "$bus" --as 5 --to 9 hello 2>&9
rc=$?
[ $rc -eq 1 ] || fail "send to a missing client with stderr to a dead pipe exited $rc, expected 1"
wait_gone "$bus" 5
"$SHMBUS" send "$bus" --as 5 --to 9 hello 2>&-
rc=$?
[ $rc -eq 1 ] || fail "send to a missing client with stderr closed exited $rc, expected 1"
wait_gone "$bus" 5

echo "section 6 at ${SECONDS}s"
# ---- 6. Commands that print with stdio: 141 when the output is gone, and finish. --------
"$SHMBUS" stat "$bus" >&9
[ $? -eq 141 ] || fail "stat to a pipe without reader did not exit 141"
"$SHMBUS" ls >&9
[ $? -eq 141 ] || fail "ls to a pipe without reader did not exit 141"
"$SHMBUS" top "$bus" --iterations 3 --interval 10 >&9
[ $? -eq 141 ] || fail "top to a pipe without reader did not exit 141"
"$SHMBUS" --help >&9
[ $? -eq 141 ] || fail "--help to a pipe without reader did not exit 141"

echo "section 7 at ${SECONDS}s"
# ---- 7. ring: a closed output stops the exchange and removes its bus. -------------------
for n in 1 3 20; do
    "$SHMBUS" ring -c 3 -n 200000 --timeout 120 | head -$n >/dev/null
    st=("${PIPESTATUS[@]}")
    [ "${st[0]}" = 141 ] || fail "ring | head -$n: ring exited ${st[0]}, expected 141"
done
"$SHMBUS" ring -c 3 -n 100 >&9 2>&9
[ $? -eq 141 ] || fail "ring with both outputs gone did not exit 141"
ls "$SHMBUS_DIR" | grep -q '^ring-' && fail "ring left a bus: $(ls "$SHMBUS_DIR")"

echo "section 8 at ${SECONDS}s"
# ---- 8. SIGINT and SIGTERM stop a send blocked on a full mailbox, and on an ack. ---------
expect 0 "$SHMBUS" create "$full" --slots 2 --msg-size 16
# Client 2's reader never reads: recv holds message 1 (written, unread), message 2 fills
# the mailbox (a ring of two 64-byte units: a message of up to 16 bytes takes one), and
# every later send blocks.
"$SHMBUS" recv "$full" --as 2 | exec sleep 300 &
stall=$!
pids+=($stall)
wait_field "$full" 2 state live
expect 0 "$SHMBUS" send "$full" --as 3 --to 2 m1 m2
wait_field "$full" 2 depth 2
blocked_send() { # SIGNAL WANT ID [SEND OPTIONS]
    local sig=$1 want=$2 id=$3
    shift 3
    "$SHMBUS" send "$full" --as "$id" "$@" >"$work/out" 2>"$work/err" &
    local p=$!
    pids+=($p)
    wait_field "$full" "$id" full_waits 1 || return
    kill -"$sig" "$p"
    wait_exit "$p" 3 || {
        kill -KILL "$p"
        return
    }
    wait "$p"
    local rc=$?
    [ $rc -eq "$want" ] || fail "send $* blocked, SIG$sig: exited $rc, expected $want"
    wait_gone "$full" "$id"
}
blocked_send INT 130 4 --to 2 m3
blocked_send TERM 143 4 --to 2 m3
blocked_send INT 130 5 --to all m3
# The receiver's reader leaves: m1 and m2 are kept, and the next recv gets them.
kill -TERM "$stall"
wait_field "$full" 2 state kept
"$SHMBUS" recv "$full" --as 2 --count 2 --timeout 10000 >"$work/next" 2>&1 ||
    fail "recv of the kept m1 m2: $(cat "$work/next")"
[ "$(sed 's/.*: //' "$work/next" | paste -sd' ')" = "m1 m2" ] || fail "kept m1 m2: $(cat "$work/next")"
wait_gone "$full" 2
# Blocked on the ack: room is made by the reader, then the message waits to be taken.
"$SHMBUS" recv "$full" --as 2 | exec sleep 300 &
stall=$!
pids+=($stall)
wait_field "$full" 2 state live
"$SHMBUS" send "$full" --as 6 --to 2 --ack first-ack >"$work/out" 2>&1 &
p=$!
pids+=($p)
wait_field "$full" 2 depth 1
kill -INT "$p"
wait_exit "$p" 3 || kill -KILL "$p"
wait "$p"
rc=$?
[ $rc -eq 130 ] || fail "send --ack blocked on its ack, SIGINT: exited $rc, expected 130"
wait_gone "$full" 6
# The bus is still usable: a new receiver gets the kept message (its sender gave up on the
# ack, not on the message), then a new one.
kill -TERM "$stall"
wait_field "$full" 2 state kept
"$SHMBUS" recv "$full" --as 2 --count 2 --timeout 20000 >"$work/recv.out" 2>&1 &
p=$!
pids+=($p)
wait_field "$full" 2 state live
expect 0 "$SHMBUS" send "$full" --as 3 --to 2 after-signals
wait "$p" || fail "recv after the signals failed: $(cat "$work/recv.out")"
[ "$(sed 's/.*: //' "$work/recv.out" | paste -sd' ')" = "first-ack after-signals" ] ||
    fail "recv after the signals printed $(cat "$work/recv.out")"

echo "section 9 at ${SECONDS}s"
# ---- 9. find_client while clients join and leave (issue 9: read past its array). --------
expect 0 "$SHMBUS" create "$joins"
touch "$work/joining"
# Six joiners against three lookups polling for 4 s: with the old code ASan reported the
# overflow in one of three lookups of a trial run (it needs a join between two listings).
for k in 1 2 3 4 5 6; do
    (while [ -e "$work/joining" ]; do "$SHMBUS" send "$joins" --as "j$k" --to all </dev/null; done) \
        >/dev/null 2>&1 &
    pids+=($!)
done
for k in 1 2 3; do
    "$SHMBUS" send "$joins" --as "w$k" --to 60 --wait 4000 x >"$work/out" 2>"$work/err$k" &
    pids+=($!)
    eval "w$k=\$!"
done
for k in 1 2 3; do
    eval "wait \$w$k"
    rc=$?
    [ $rc -eq 1 ] || fail "send --wait to a missing client while others join exited $rc"
    grep -q "no client 60" "$work/err$k" || fail "send --wait while others join: $(cat "$work/err$k")"
    grep -q "Sanitizer" "$work/err$k" && fail "sanitizer report: $(cat "$work/err$k")"
done
rm -f "$work/joining"

exit $((fails > 0))
