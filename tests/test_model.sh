#!/bin/bash
# test_model: model-check the mailbox protocol (tests/model/mailbox.pml) with spin.
#
# Each run: spin -a generates pan.c, cc compiles it, pan explores every state. Safety runs
# check the assertions (no duplicate, no torn message, per-producer FIFO, nothing committed
# lost) and end states (no deadlock); liveness runs check, under weak fairness, that the
# consumer always finishes (never stuck behind a dead writer). The last run puts back the
# skip rule the library had before the model found its flaw and expects it to fail.
#
#   MODEL_FULL=1 tests/test_model.sh    also the larger configurations (`make model`)
#   MODEL_BUDGET=N                      seconds allowed per run (default 240)
set -u

# The model checks the protocol, not a build: under a sanitizer (SAN, set by make check
# SAN=...) it would only repeat the plain suite's run, minutes of CI for nothing new.
if [ -n "${SAN:-}" ]; then
    echo "skip: the spin model does not depend on the build; the plain make check runs it"
    exit 77
fi

if ! command -v spin >/dev/null 2>&1; then
    echo "FAIL: spin is not installed (scripts/deps.sh test installs it)"
    exit 1
fi
top=${SHMBUS_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
model="$top/tests/model/mailbox.pml"
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/model.XXXXXX")
trap 'rm -rf "$work"' EXIT
budget=${MODEL_BUDGET:-240}
cc=${CC:-cc}
failed=0

# run NAME EXPECT(pass|fail) "SPIN DEFINES" "CC FLAGS" "PAN FLAGS"
run() {
    local name=$1 expect=$2 defs=$3 ccflags=$4 panflags=$5
    local dir="$work/$name"
    mkdir -p "$dir"
    cp "$model" "$dir/mailbox.pml"
    (cd "$dir" && spin $defs -a mailbox.pml >spin.out 2>&1) || {
        echo "FAIL $name: spin -a failed"; cat "$dir/spin.out"; failed=1; return; }
    (cd "$dir" && $cc -O2 -w $ccflags -o pan pan.c) || {
        echo "FAIL $name: cannot compile pan.c"; failed=1; return; }
    local start=$(date +%s.%N)
    (cd "$dir" && timeout "$budget" ./pan $panflags >pan.out 2>&1)
    local rc=$?
    local secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    local errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$dir/pan.out" | head -n 1)
    local states=$(awk '/states, stored/ {print $1; exit}' "$dir/pan.out")
    if [ $rc -eq 124 ]; then
        echo "FAIL $name: over the ${budget}s budget"; failed=1; return
    fi
    # A pan that crashed, ran out of memory or printed no verdict is a failure of the run,
    # never the expected failure of a broken rule: that needs a clean exit and "errors: N".
    if [ $rc -ge 126 ]; then
        echo "FAIL $name: pan exited $rc (crashed or killed)"; tail -n 20 "$dir/pan.out"
        failed=1; return
    fi
    if ! [[ $errors =~ ^[0-9]+$ ]]; then
        echo "FAIL $name: no 'errors:' line in pan.out (pan exit $rc)"; tail -n 20 "$dir/pan.out"
        failed=1; return
    fi
    if [ $rc -ne 0 ] && [ "$errors" = 0 ]; then
        echo "FAIL $name: pan exited $rc yet reports no errors"; tail -n 20 "$dir/pan.out"
        failed=1; return
    fi
    local got=pass
    if [ "$errors" != 0 ]; then
        got=fail
    elif grep -q "Search not completed\|max search depth too small" "$dir/pan.out"; then
        echo "FAIL $name: search incomplete"; sed 's/^/    /' "$dir/pan.out"; failed=1; return
    fi
    if [ "$got" = "$expect" ]; then
        echo "ok   $name: $states states, ${errors} errors (expected: $expect), pan exit $rc, ${secs}s"
    else
        echo "FAIL $name: expected $expect, got $got ($states states, ${secs}s)"
        sed 's/^/    /' "$dir/pan.out" | head -n 40
        [ "$got" = fail ] && (cd "$dir" && spin $defs -t -p -g mailbox.pml | tail -n 60)
        failed=1
    fi
}

safety="-DSAFETY -DNOCLAIM -DCOLLAPSE"
live="-DCOLLAPSE -DNFAIR=3"
run "safety: 2 producers x 2 msgs, 2 slots, up to 2 kills, consumer skips" pass \
    "-DM=2 -DMAXKILL=2 -DNOCLEANER" "$safety" "-m100000"
run "safety: 2 producers x 1 msg, 2 slots, up to 2 kills, consumer and cleaner skip" pass \
    "-DM=1 -DMAXKILL=2" "$safety" "-m100000"
run "liveness: 2 x 1, up to 1 kill, consumer and cleaner: consumer always finishes" pass \
    "-DM=1 -DMAXKILL=1" "$live" "-a -f -m100000"
run "liveness: 2 x 2, up to 1 kill, consumer skips: consumer always finishes" pass \
    "-DM=2 -DMAXKILL=1 -DNOCLEANER" "$live" "-a -f -m100000"
run "old skip rule (needed a dead claimant): consumer can be stuck for ever" fail \
    "-DM=1 -DMAXKILL=1 -DOLD_SKIP_RULE" "$live" "-a -f -m100000"
if [ "${MODEL_FULL:-0}" = 1 ]; then
    run "full safety: 2 x 2, up to 2 kills, consumer and cleaner" pass \
        "-DM=2 -DMAXKILL=2" "$safety" "-m100000 -w28"
    run "full liveness: 2 x 1, up to 2 kills, consumer and cleaner" pass \
        "-DM=1 -DMAXKILL=2" "$live" "-a -f -m100000"
    run "full liveness: 2 x 2, up to 2 kills, consumer skips" pass \
        "-DM=2 -DMAXKILL=2 -DNOCLEANER" "$live" "-a -f -m100000"
fi
exit $failed
