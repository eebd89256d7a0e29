# Shared by the shell tests of the shmbus command (tests/test_cli_*.sh, tests/test_ring*.sh):
# source it first. It finds the binary (skipping with exit 77 if it is not built), makes sure
# SHMBUS_DIR is private (tests/run.sh sets it; by hand a temporary one is made and own_dir
# set so the test's cleanup removes it), and defines the assertion helpers below. A test
# counts failures in $fails and exits non-zero at the end if there were any.
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bdir=${BUILD:-$top/build}
case $bdir in /*) ;; *) bdir=$PWD/$bdir ;; esac
SHMBUS=$bdir/bin/shmbus
[ -x "$SHMBUS" ] || { echo "skip: $SHMBUS is not built"; exit 77; }
if [ -z "${SHMBUS_DIR:-}" ]; then
    SHMBUS_DIR=$(mktemp -d) && export SHMBUS_DIR && own_dir=1
fi
work=${TEST_TMPDIR:-$SHMBUS_DIR}

fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# expect RC CMD...: run CMD, keep its output in $work/out and $work/err, check the status.
expect() {
    local want=$1
    shift
    "$@" >"$work/out" 2>"$work/err"
    local rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "'$*' exited $rc, expected $want; stderr:"
        sed 's/^/    /' "$work/err"
    fi
}

# err_has TEXT / out_has TEXT: the last command's stderr / stdout holds TEXT.
err_has() {
    grep -qF -- "$1" "$work/err" || fail "stderr lacks '$1': $(cat "$work/err")"
}

out_has() {
    grep -qF -- "$1" "$work/out" || fail "stdout lacks '$1': $(head -20 "$work/out")"
}

# json_valid [FILE]: FILE (default: the last command's stdout) holds one JSON document per
# line. Needs python3 (scripts/deps.sh test installs it): without it this fails, it does not
# quietly pass.
json_valid() {
    local f=${1:-$work/out}
    if ! command -v python3 >/dev/null 2>&1; then
        fail "python3 is missing (scripts/deps.sh test): cannot check $f is JSON"
        return
    fi
    python3 -c 'import json, sys
n = 0
for line in sys.stdin:
    if line.strip():
        json.loads(line)
        n += 1
sys.exit(0 if n else 1)' <"$f" || fail "$f is not one JSON document per line: $(head -c 400 "$f")"
}

# wait_for WHAT CMD...: poll CMD until it succeeds (deadline 20 s; a state, never a fixed
# time); on the deadline, fail "timed out waiting for WHAT" and return 1.
wait_for() {
    local what=$1 end=$((SECONDS + 20))
    shift
    until "$@"; do
        [ $SECONDS -lt $end ] || { fail "timed out waiting for $what"; return 1; }
        sleep 0.02
    done
}
