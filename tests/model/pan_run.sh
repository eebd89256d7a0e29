# shellcheck shell=bash
# pan_run.sh - the shared runner for spin models, sourced by every tests/test_model*.sh.
# Not a test by itself: tests/module.mk only runs tests/test_*.sh.
#
#   pan_init MODEL.pml         once: skips under a sanitizer build, checks spin, makes the
#                              work folder
#   pan_run NAME EXPECT "SPIN DEFINES" "CC FLAGS" "PAN FLAGS"
#                              EXPECT is pass (0 errors) or fail (errors > 0, the
#                              deliberately broken variants)
#   pan_exit                   exits 0 if every run went as expected, else 1
#
# A run counts only if pan finished its search and said so: pan's exit status is checked,
# pan.out must hold an "errors: N" line, and a search that ran out of memory, depth or time
# is a FAILURE whatever was expected. So a crashed or killed pan can never pass for the
# expected failure of a broken variant.
#
#   MODEL_BUDGET=N    seconds allowed per run (default 240)

pan_init() {
    # A model checks the protocol, not a build: under a sanitizer (SAN, set by make check
    # SAN=...) it would only repeat the plain suite's run, minutes of CI for nothing new.
    # tests/expected-skips lists every model script for the sanitizer stage.
    if [ -n "${SAN:-}" ]; then
        echo "skip: the spin model does not depend on the build; the plain make check runs it"
        exit 77
    fi
    if ! command -v spin >/dev/null 2>&1; then
        echo "skip: spin is not installed (scripts/deps.sh test installs it)"
        exit 77
    fi
    pan_model=$1
    pan_work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/model.XXXXXX")
    trap 'rm -rf "$pan_work"' EXIT
    pan_budget=${MODEL_BUDGET:-240}
    pan_cc=${CC:-cc}
    pan_failed=0
    pan_total_start=$(date +%s.%N)
}

# Seconds since $1 (a date +%s.%N value), one decimal.
pan_secs() {
    awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'
}

pan_fail() {
    echo "FAIL $1"
    pan_failed=1
}

pan_run() {
    local name=$1 expect=$2 defs=$3 ccflags=$4 panflags=$5
    local dir
    dir=$(mktemp -d "$pan_work/run.XXXXXX")
    local base
    base=$(basename "$pan_model")
    cp "$pan_model" "$dir/$base"
    # shellcheck disable=SC2086 # the defines and flags are word lists
    if ! (cd "$dir" && spin $defs -a "$base" >spin.out 2>&1); then
        pan_fail "$name: spin -a failed"
        sed 's/^/    /' "$dir/spin.out"
        return
    fi
    # shellcheck disable=SC2086
    if ! (cd "$dir" && $pan_cc -O2 -w $ccflags -o pan pan.c >cc.out 2>&1); then
        pan_fail "$name: cannot compile pan.c"
        sed 's/^/    /' "$dir/cc.out" | head -n 20
        return
    fi
    local start rc secs
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    (cd "$dir" && timeout "$pan_budget" ./pan $panflags >pan.out 2>&1)
    rc=$?
    secs=$(pan_secs "$start")
    if [ $rc -eq 124 ]; then
        pan_fail "$name: over the ${pan_budget}s budget"
        return
    fi
    # pan exits 0 when the search ran to its end, with or without errors; anything else
    # (a signal, an abort, out of memory) means it did not.
    if [ $rc -ne 0 ]; then
        pan_fail "$name: pan exited with status $rc (${secs}s)"
        sed 's/^/    /' "$dir/pan.out" | tail -n 20
        return
    fi
    local errors states
    errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$dir/pan.out" | head -n 1)
    states=$(awk '/states, stored/ { print $1; exit }' "$dir/pan.out")
    if [ -z "$errors" ] || [ -z "$states" ]; then
        pan_fail "$name: no \"errors:\" or state count in pan's output (crashed?)"
        sed 's/^/    /' "$dir/pan.out" | tail -n 20
        return
    fi
    if grep -q "out of memory\|reached -DMEMLIM bound\|max search depth too small\|aborted" "$dir/pan.out"; then
        pan_fail "$name: search ran out of memory or depth"
        sed 's/^/    /' "$dir/pan.out" | tail -n 20
        return
    fi
    # An error stops the search early ("Search not completed" then is expected); a clean
    # run must have searched everything.
    if [ "$errors" = 0 ] && grep -q "Search not completed" "$dir/pan.out"; then
        pan_fail "$name: search incomplete"
        sed 's/^/    /' "$dir/pan.out" | tail -n 20
        return
    fi
    local got=pass
    [ "$errors" != 0 ] && got=fail
    if [ "$got" = "$expect" ]; then
        echo "ok   $name: $states states, $errors errors (expected: $expect), ${secs}s"
        return
    fi
    pan_fail "$name: expected $expect, got $got ($states states, ${secs}s)"
    sed 's/^/    /' "$dir/pan.out" | head -n 40
    if [ "$got" = fail ]; then
        # shellcheck disable=SC2086
        (cd "$dir" && spin $defs -t -p -g "$base" | tail -n 60)
    fi
}

pan_exit() {
    echo "total $(pan_secs "$pan_total_start")s"
    exit "$pan_failed"
}
