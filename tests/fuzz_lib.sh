# shellcheck shell=bash
# fuzz_lib.sh - the shared runner of the libFuzzer targets, sourced by tests/test_fuzz_*.sh
# (not a test by itself: tests/module.mk only runs tests/test_*.sh).
#
#   fuzz_run NAME MAX_LEN SECS
#       runs $top/build/fuzz/NAME for SECS seconds with inputs of at most MAX_LEN bytes, on
#       the corpus $top/build/fuzz/corpus-NAME (kept between runs); prints executions, rate,
#       coverage and corpus size; a find (crash, sanitizer report, hang over 10 s, leak)
#       fails with the input kept in $top/build/fuzz/finds-NAME/ for replay (BIN FILE).
#       Skips (77) when the target is not built.
fuzz_run() {
    local name=$1 max_len=$2 secs=$3
    local bin="$top/build/fuzz/$name" corpus="$top/build/fuzz/corpus-$name"
    local finds="$top/build/fuzz/finds-$name" log="${TEST_TMPDIR:-/tmp}/$name.log"
    if [ ! -x "$bin" ]; then
        echo "skip: $bin not built (needs clang and libclang-rt-14-dev: scripts/deps.sh fuzz)"
        exit 77
    fi
    mkdir -p "$corpus" "$finds"
    "$bin" -max_total_time="$secs" -timeout=10 -max_len="$max_len" -rss_limit_mb=2048 \
        -artifact_prefix="$finds/" -print_final_stats=1 "$corpus" >"$log" 2>&1
    local rc=$?
    local execs rate cov
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    echo "$name: ${secs}s, ${execs:-?} executions, ${rate:-?} exec/s, ${cov:-cov ?}," \
        "corpus $(ls "$corpus" | wc -l) inputs"
    if [ $rc -ne 0 ]; then
        echo "$name found something (exit $rc); the input is in $finds:"
        grep -A 30 -E "ERROR|runtime error|deadly signal|timeout" "$log" | head -n 60
        exit 1
    fi
    exit 0
}
