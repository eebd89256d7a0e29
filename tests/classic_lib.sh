# Shared by the tests/test_classic_*.sh scripts (sourced, not run).
#
# Every test works in its own directory ($TEST_TMPDIR/classic, exported as CLASSIC_DIR), so
# its key file, segments and semaphore names are its own. An EXIT trap kills whatever the
# test started (each start.sh runs in a session of its own, so its process group holds it
# and its clients) and removes every object under the test's keys, pass or fail, then checks
# that nothing is left. Waiting is for conditions (a process has ended, a client is stopped),
# each with a deadline, never a sleep standing in for synchronisation.
set -u
# shellcheck source=tests/proc_lib.sh
. "$SHMBUS_TOP/tests/proc_lib.sh"

: "${BUILD:?run me from make check}" "${TEST_TMPDIR:?}" "${SHMBUS_TOP:?}"
CLASSIC_BIN=$BUILD/classic
START=$SHMBUS_TOP/classic/start.sh
ORDERED=$SHMBUS_TOP/tests/classic_start_order.sh # start.sh's shape, any order, statuses told
export CLIENT_DIR=$CLASSIC_BIN
export CLASSIC_DIR=$TEST_TMPDIR/classic
mkdir -p "$CLASSIC_DIR"
unset CLASSIC_MESSAGES CLASSIC_GROUP CLASSIC_RUN CLASSIC_TEST_STOP_AT CLASSIC_GIVE_UP \
    START_DELAY CLIENT_WRAPPER

for b in client1 client2 client3; do
    [ -x "$CLASSIC_BIN/$b" ] || {
        echo "FAIL: $CLASSIC_BIN/$b missing: build with make first"
        exit 1
    }
done

fail() {
    echo "FAIL: $*" >&2 # stderr: still seen when called where stdout is captured
    exit 1
}

# The test's objects, from the clients themselves: memkey, ctlkey, and the semaphore names.
eval "$("$CLASSIC_BIN/client1" --names | awk '
    $1 == "memkey" || $1 == "ctlkey" { print $1 "=" $2 }
    $1 == "sem" { sems = sems " " $2 }
    END { print "sems=\"" sems "\"" }')"

# Our objects still in existence, one a line (empty if none).
leftovers() {
    ipcs -m | awk -v a="$memkey" -v b="$ctlkey" '$1 == a || $1 == b { print "segment " $1 " id " $2 }'
    local s
    for s in $sems; do
        [ -e "/dev/shm/sem.$s" ] && echo "/dev/shm/sem.$s"
    done
    return 0
}

assert_clean() {
    local left
    left=$(leftovers)
    [ -z "$left" ] || fail "left behind after $1: $left"
}

bg_groups=() # process groups (start.sh sessions) to kill at exit
bg_pids=()   # single processes to kill at exit
classic_cleanup() {
    local g s id
    for g in "${bg_groups[@]}"; do
        kill -9 -- "-$g" 2>/dev/null
    done
    for g in "${bg_pids[@]}"; do
        kill -9 "$g" 2>/dev/null
    done
    for id in $(ipcs -m | awk -v a="$memkey" -v b="$ctlkey" '$1 == a || $1 == b { print $2 }'); do
        ipcrm -m "$id" 2>/dev/null
    done
    for s in $sems; do
        rm -f "/dev/shm/sem.$s"
    done
    return 0
}
trap classic_cleanup EXIT

# The exchange the seed's routing table gives for N messages (default 90), printed as the
# seed's clients print it: two lines and a blank line a message.
expected() {
    awk -v n="${1:-90}" 'BEGIN {
        sent[1] = sent[2] = sent[3] = 0
        from = 3; to = 1; sent[3] = 1      # client 3 message 0, its i = 0: to client 1
        for (p = 0; p < n; p++) {
            printf "Client %d has received a message from client %d:\n", to, from
            printf "This is message %d from client %d\n\n", p, from
            i = sent[to]++
            if (to == 1) next_to = 2 + i % 2
            else if (to == 2) next_to = 1 + 2 * (i % 2)
            else next_to = 1 + i % 2
            from = to; to = next_to
        }
    }'
}

# The exchange as printed (blank lines included), without DONE lines, traces or diagnostics.
transcript() {
    grep -E '^(Client [123] has received a message from client [123]:|This is message [0-9]+ from client [123]|)$' "$1"
}

# Assert that OUT holds the full exchange of N messages, one DONE per client, and the
# seed's closing line last.
assert_exchange() { # OUT [N]
    local out=$1 n=${2:-90}
    diff <(expected "$n") <(transcript "$out") >"$out.diff" ||
        fail "transcript differs from the routing table (see below)
$(head -20 "$out.diff")"
    for c in 1 2 3; do
        [ "$(grep -c "^client$c: DONE\$" "$out")" = 1 ] || fail "client$c: DONE missing in $out"
    done
    [ "$(tail -n 1 "$out")" = "All clients finished" ] || fail "last line of $out is not the seed's"
}

now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# Start start.sh (or, with ORDER=..., classic_start_order.sh in that order) in the
# background, in a session of its own (its pid is its process group), with SIGINT at its
# default disposition (a background job of a script has it ignored). Sets $bg to its pid.
# Extra arguments are VAR=value settings for it.
start_bg() { # OUT [VAR=value...]
    local out=$1 cmd=("$START")
    shift
    [ -n "${ORDER:-}" ] && cmd=("$ORDERED" $ORDER)
    setsid env --default-signal=INT "$@" "${cmd[@]}" >"$out" 2>&1 &
    bg=$!
    bg_groups+=("$bg")
}

# Wait until none of PIDS runs any more (they need not be our children), up to SECS.
wait_gone() { # SECS PID...
    local deadline=$(($(now_ms) + $1 * 1000)) p
    shift
    for p in "$@"; do
        while pid_running "$p"; do
            [ "$(now_ms)" -lt "$deadline" ] || fail "pid $p still running after the deadline"
            sleep 0.01
        done
    done
}

# Run a bash snippet with the seed's default names in a private IPC namespace and a private
# /dev/shm (unshare --ipc --mount, as root), in a fresh folder DIR; CLASSIC_DIR unset.
# Exits 77 (skip) when unshare is not possible. The namespace dies with the snippet, and its
# objects with it; the snippet still checks its own leftovers.
# need_private_ns first (it skips the test when that is impossible).
need_private_ns() {
    if [ "$(id -u)" != 0 ] || ! unshare --ipc --mount true 2>/dev/null; then
        echo "skip: needs root and unshare --ipc --mount (private names for the seed's defaults)"
        exit 77
    fi
}
in_private_ns() { # DIR SNIPPET
    local dir=$1
    mkdir -p "$dir"
    (cd "$dir" && env -u CLASSIC_DIR unshare --ipc --mount --propagation private bash -c '
        mount -t tmpfs -o mode=1777 tmpfs /dev/shm || exit 99
        '"$2")
}

# Wait for a background child to end, up to SECS; its exit status, or fail.
wait_exit() { # PID SECS
    local pid=$1 deadline=$(($(now_ms) + $2 * 1000))
    while kill -0 "$pid" 2>/dev/null; do
        [ "$(now_ms)" -lt "$deadline" ] || fail "pid $pid still running after $2 s"
        sleep 0.01
    done
    wait "$pid"
}

# The pid of clientN started by the start.sh with pid SP ("" if not (yet) running).
# Matched on the command line, so a client run under valgrind (CLIENT_WRAPPER) is found too.
client_pid() { # SP N
    ps -o pid=,args= --ppid "$1" |
        awk -v c="client$2" '{ for (i = 2; i <= NF; i++) if ($i ~ "(^|/)" c "$") { print $1; next } }'
}

# The pid of clientN of start.sh SP once it runs; nothing if start.sh ends first.
find_client() { # SP N
    local pid
    while kill -0 "$1" 2>/dev/null; do
        pid=$(client_pid "$1" "$2")
        [ -n "$pid" ] && echo "$pid" && return
        sleep 0.005
    done
}

# Wait until clientN of start.sh SP runs, or (with state T) is stopped; prints its pid.
wait_client() { # SP N [STATE] SECS
    local sp=$1 n=$2 state=${3:-} secs=${4:-10} pid deadline
    deadline=$(($(now_ms) + secs * 1000))
    while :; do
        pid=$(client_pid "$sp" "$n")
        if [ -n "$pid" ]; then
            [ -z "$state" ] && break
            [ "$(ps -o stat= -p "$pid" | cut -c1)" = "$state" ] && break
        fi
        [ "$(now_ms)" -lt "$deadline" ] || fail "client$n of start.sh $sp not in state '${state:-running}' after $secs s"
        kill -0 "$sp" 2>/dev/null || fail "start.sh $sp ended before client$n was seen"
        sleep 0.01
    done
    echo "$pid"
}

# A run to completion: start.sh with no sleeps, checked and clean afterwards.
fresh_run() { # WHY
    local out=$TEST_TMPDIR/fresh.out
    START_DELAY=0 timeout 30 "$START" >"$out" 2>&1 || fail "fresh run after $1 failed: $(tail -5 "$out")"
    assert_exchange "$out"
    assert_clean "the fresh run after $1"
}
