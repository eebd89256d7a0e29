#!/bin/bash
# The test runner behind `make check`.
#
#   tests/run.sh TEST...
#
# Each TEST is a test binary (cmocka, one per feature) or a shell script. Every test runs:
#   - under `timeout` (TEST_TIMEOUT seconds, default 300; a script may lower it),
#   - in its own session (setsid), so every process it starts can be found afterwards,
#   - in its own temporary directory, exported as TEST_TMPDIR, and with SHMBUS_DIR pointing
#     inside it, so key files, buses and semaphores of two tests never meet,
#   - with BUILD exported as an absolute path to the build directory.
# Exit status 0 is a pass, 77 a skip (the test prints why as its last line), anything else a
# failure, whose output is then shown.
#
# Leaks, checked after EACH test, so one test's leak is reported against it and no later
# test can clean it up unseen: new System V segments, semaphore sets and message queues,
# new entries in /dev/shm and /dev/mqueue, and processes of the test's session still alive
# 2 s after it ended (reported, then killed by pid). A leak fails the test that left it, and
# is then removed, so that a later test (one counting what shmbus_clean finds, say) never
# trips over an earlier test's leftovers.
#
# Skips: tests/expected-skips lists the skips that are expected (e.g. valgrind under a
# sanitizer). Any other skip is reported as unexpected; with STRICT_SKIPS=1 (.ci/run sets
# it) an unexpected skip counts as a failure.
# The last line is the plain summary CI reads: "N passed, N failed, N skipped".
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
export BUILD="$top/${BUILD:-build}"
export SHMBUS_TOP="$top"
timeout_s=${TEST_TIMEOUT:-300}
strict=${STRICT_SKIPS:-0}
san=${SAN:-}
logdir="$BUILD/test-logs"
mkdir -p "$logdir"

ipc_snapshot() {
    ipcs -m 2>/dev/null | awk 'NR>3 && $2 ~ /^[0-9]+$/ {print "shm segment " $2 " key " $1}'
    ipcs -s 2>/dev/null | awk 'NR>3 && $2 ~ /^[0-9]+$/ {print "semaphore set " $2 " key " $1}'
    ipcs -q 2>/dev/null | awk 'NR>3 && $2 ~ /^[0-9]+$/ {print "message queue " $2 " key " $1}'
    ls -A /dev/shm 2>/dev/null | sed 's|^|/dev/shm/|'
    ls -A /dev/mqueue 2>/dev/null | sed 's|^|/dev/mqueue/|'
}

# remove_leaked: remove the objects named by ipc_snapshot lines on stdin.
remove_leaked() {
    local a b id
    while read -r a b id _; do
        case "$a $b" in
        "shm segment") ipcrm -m "$id" ;;
        "semaphore set") ipcrm -s "$id" ;;
        "message queue") ipcrm -q "$id" ;;
        *) rm -f -- "$a" ;;
        esac
    done 2>/dev/null
}

# session_procs SID: the processes still in session SID, one "pid args" a line.
session_procs() {
    ps -e -o pid=,sid=,args= 2>/dev/null | awk -v s="$1" '$2 == s { $2 = ""; print }'
}

# expected_skip NAME: is a skip of NAME in tests/expected-skips (for this build)?
expected_skip() {
    local t when
    while read -r t when _; do
        case $t in '#'* | '') continue ;; esac
        [ "$t" = "$1" ] || continue
        case $when in
        always) return 0 ;;
        san) [ -n "$san" ] && return 0 ;;
        esac
    done <"$top/tests/expected-skips"
    return 1
}

command -v ipcs >/dev/null && command -v ps >/dev/null && command -v setsid >/dev/null || {
    echo "tests/run.sh: needs ipcs, setsid (util-linux) and ps (procps): scripts/deps.sh test"
    exit 1
}

pass=0 fail=0 skip=0 failed_names="" unexpected=""

for t in "$@"; do
    name=$(basename "$t")
    log="$logdir/$name.log"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmbus-test.XXXXXX")
    chmod 700 "$tmp"
    case "$t" in
    *.sh) cmd=(bash "$top/$t") ;;
    *) cmd=("$t") ;;
    esac
    before=$(ipc_snapshot | sort)
    start=$(date +%s.%N)
    # Backgrounded from a shell without job control, setsid does not need to fork: the
    # test's session id is $!.
    TEST_TMPDIR="$tmp" SHMBUS_DIR="$tmp/run" setsid timeout -k 10 "$timeout_s" "${cmd[@]}" \
        >"$log" 2>&1 </dev/null &
    sid=$!
    wait "$sid"
    rc=$?
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')

    # Processes the test left: give the ones dying with it (PR_SET_PDEATHSIG) 2 s to go.
    strays=""
    for ((i = 0; i < 200; i++)); do
        strays=$(session_procs "$sid")
        [ -z "$strays" ] && break
        sleep 0.01
    done
    if [ -n "$strays" ]; then
        for p in $(echo "$strays" | awk '{print $1}'); do kill -KILL "$p" 2>/dev/null; done
    fi
    leaked=$(comm -13 <(echo "$before") <(ipc_snapshot | sort) | sed '/^$/d')
    [ -n "$leaked" ] && echo "$leaked" | remove_leaked
    rm -rf "$tmp"

    leak_note=""
    if [ -n "$strays" ] || [ -n "$leaked" ]; then
        leak_note=1
        [ $rc -eq 0 ] || [ $rc -eq 77 ] && rc=99
    fi
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1))
        echo "PASS  $name (${secs}s)"
    elif [ $rc -eq 77 ]; then
        skip=$((skip + 1))
        why=$(tail -n 1 "$log")
        if expected_skip "$name"; then
            echo "SKIP  $name (expected): $why"
        else
            unexpected="$unexpected $name"
            echo "SKIP  $name (UNEXPECTED: not in tests/expected-skips): $why"
        fi
    else
        fail=$((fail + 1))
        failed_names="$failed_names $name"
        case $rc in
        124) why="timed out after ${timeout_s}s" ;;
        99) why="passed, but left things behind" ;;
        *) why="exit $rc" ;;
        esac
        echo "FAIL  $name ($why, ${secs}s); its output:"
        tail -n 60 "$log" | sed 's/^/    | /'
        if [ -n "$leak_note" ]; then
            [ -n "$leaked" ] && echo "$leaked" | sed 's/^/    | leaked IPC object (removed now): /'
            [ -n "$strays" ] && echo "$strays" | sed 's/^/    | process left alive (killed now): /'
        fi
    fi
done

if [ -n "$unexpected" ]; then
    echo "unexpected skips:$unexpected (install what they name: scripts/deps.sh; or, if the skip is right, list it in tests/expected-skips)"
    if [ "$strict" = 1 ]; then
        fail=$((fail + 1))
        failed_names="$failed_names unexpected-skips"
    fi
fi
[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
