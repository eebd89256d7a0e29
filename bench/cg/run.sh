#!/bin/bash
# `make callgrind`: instructions per message on the hot path (bench/cg/cgprobe.c), counted
# by callgrind in measured() only. Prints one line per figure. Needs valgrind
# (scripts/deps.sh test). Runs in a private IPC namespace when it can, so its bus is its own.
set -euo pipefail
probe=${1:?usage: run.sh PATH/TO/cgprobe}
n=${CG_N:-2000}
command -v valgrind >/dev/null || { echo "run.sh: valgrind is not installed (scripts/deps.sh test)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export SHMBUS_DIR=$dir/run
count() { # mode messages-per-iteration
    local out=$dir/cg.$1
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=measured --callgrind-out-file="$out" \
        "$probe" "cg-$$-$1" "$1" "$n" >/dev/null 2>"$dir/log.$1" ||
        { cat "$dir/log.$1" >&2; return 1; }
    local ir
    ir=$(awk '/^totals:/ {print $2}' "$out")
    awk -v ir="$ir" -v n="$n" -v k="$2" -v m="$1" \
        'BEGIN { printf "%-6s %8.1f instructions per %s\n", m, ir / (n * k), (k > 1 ? "message (batches of " k ")" : "iteration") }'
}
count pair 1
count batch 32
count ref 1
count loan 1
