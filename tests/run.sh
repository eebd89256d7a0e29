#!/bin/bash
# The test runner behind `make check`.
#
#   tests/run.sh TEST...
#
# Each TEST is a test binary (cmocka, one per feature) or a shell script. Every test runs:
#   - under `timeout` (TEST_TIMEOUT seconds, default 300; a script may lower it),
#   - in its own temporary directory, exported as TEST_TMPDIR, and with SHMBUS_DIR pointing
#     inside it, so key files, buses and semaphores of two tests never meet,
#   - with BUILD exported as an absolute path to the build directory.
# Exit status 0 is a pass, 77 a skip (the test says why), anything else a failure, whose
# output is then shown. After all tests the runner checks that no System V segment and no
# /dev/shm entry was left behind, and counts a leak as a failure.
# The last line is the plain summary CI reads: "N passed, N failed, N skipped".
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
export BUILD="$top/${BUILD:-build}"
export SHMBUS_TOP="$top"
timeout_s=${TEST_TIMEOUT:-300}
logdir="$BUILD/test-logs"
mkdir -p "$logdir"

ipc_snapshot() {
    { ipcs -m 2>/dev/null | awk 'NR>3 && $2 ~ /^[0-9]+$/ {print "segment " $2 " key " $1}'
      ls /dev/shm 2>/dev/null | sed 's|^|/dev/shm/|'; } | sort
}

before=$(ipc_snapshot)
pass=0 fail=0 skip=0 failed_names=""

for t in "$@"; do
    name=$(basename "$t")
    log="$logdir/$name.log"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmbus-test.XXXXXX")
    chmod 700 "$tmp"
    start=$(date +%s.%N)
    case "$t" in
    *.sh) cmd=(bash "$top/$t") ;;
    *) cmd=("$t") ;;
    esac
    TEST_TMPDIR="$tmp" SHMBUS_DIR="$tmp/run" timeout -k 10 "$timeout_s" "${cmd[@]}" >"$log" 2>&1
    rc=$?
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    rm -rf "$tmp"
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1))
        echo "PASS  $name (${secs}s)"
    elif [ $rc -eq 77 ]; then
        skip=$((skip + 1))
        echo "SKIP  $name: $(tail -n 1 "$log")"
    else
        fail=$((fail + 1))
        failed_names="$failed_names $name"
        [ $rc -eq 124 ] && why="timed out after ${timeout_s}s" || why="exit $rc"
        echo "FAIL  $name ($why, ${secs}s); its output:"
        tail -n 60 "$log" | sed 's/^/    | /'
    fi
done

after=$(ipc_snapshot)
leaked=$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')
if [ -n "$leaked" ]; then
    fail=$((fail + 1))
    failed_names="$failed_names ipc-leak-check"
    echo "FAIL  ipc-leak-check: the suite left IPC objects behind:"
    echo "$leaked" | sed 's/^/    | /'
else
    pass=$((pass + 1))
    echo "PASS  ipc-leak-check (nothing left in ipcs -m or /dev/shm)"
fi

[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
