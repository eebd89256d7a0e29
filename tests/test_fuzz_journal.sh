#!/bin/bash
# test_fuzz_journal: run the journal fuzzer (tests/fuzz_journal.c) for FUZZ_SECONDS
# (default 20 in make check; `make fuzz` runs it for 600) and report executions and finds.
# A find fails the test; its input is kept in $BUILD/fuzz/finds-journal/ for replay:
# build/fuzz/fuzz_journal FILE. The corpus persists in $BUILD/fuzz/corpus-journal.
set -u
top=${SHMBUS_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
bin="$top/build/fuzz/fuzz_journal"
if [ ! -x "$bin" ]; then
    echo "skip: $bin not built (needs clang and libclang-rt-14-dev: scripts/deps.sh fuzz)"
    exit 77
fi
secs=${FUZZ_SECONDS:-20}
corpus="$top/build/fuzz/corpus-journal"
finds="$top/build/fuzz/finds-journal"
mkdir -p "$corpus" "$finds"
log="${TEST_TMPDIR:-/tmp}/fuzz-journal.log"
"$bin" -max_total_time="$secs" -timeout=10 -max_len=2048 -rss_limit_mb=2048 \
    -artifact_prefix="$finds/" -print_final_stats=1 "$corpus" >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
echo "fuzz_journal: ${secs}s, ${execs:-?} executions, ${rate:-?} exec/s, ${cov:-cov ?}," \
    "corpus $(ls "$corpus" | wc -l) inputs"
if [ $rc -ne 0 ]; then
    echo "fuzz_journal found something (exit $rc); the input is in $finds:"
    grep -A 30 -E "ERROR|runtime error|deadly signal|timeout" "$log" | head -n 60
    exit 1
fi
exit 0
