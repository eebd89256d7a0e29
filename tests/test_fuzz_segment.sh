#!/bin/bash
# test_fuzz_segment: run the segment fuzzer (tests/fuzz_segment.c) for FUZZ_SECONDS
# (default 60; `make fuzz` runs it for 600) and report executions and finds.
#
# A find (crash, sanitizer report, hang over 10 s, leak) fails the test; the input that did it
# is kept in $BUILD/fuzz/finds/ so it can be replayed: build/fuzz/fuzz_segment FILE.
# The corpus persists in $BUILD/fuzz/corpus between runs, so each run starts where the last
# one stopped.
set -u
top=${SHMBUS_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
bin="$top/build/fuzz/fuzz_segment"
if [ ! -x "$bin" ]; then
    echo "skip: $bin not built (needs clang and libclang-rt-14-dev: scripts/deps.sh fuzz)"
    exit 77
fi
secs=${FUZZ_SECONDS:-60}
corpus="$top/build/fuzz/corpus"
finds="$top/build/fuzz/finds"
mkdir -p "$corpus" "$finds"
log="${TEST_TMPDIR:-/tmp}/fuzz.log"
# SHMBUS_DIR comes from tests/run.sh (private to this test); the fuzzer makes its bus there.
"$bin" -max_total_time="$secs" -timeout=10 -max_len=512 -rss_limit_mb=2048 \
    -artifact_prefix="$finds/" -print_final_stats=1 "$corpus" >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
echo "fuzz_segment: ${secs}s, ${execs:-?} executions, ${rate:-?} exec/s, ${cov:-cov ?}," \
    "corpus $(ls "$corpus" | wc -l) inputs"
if [ $rc -ne 0 ]; then
    echo "fuzz_segment found something (exit $rc); the input is in $finds:"
    grep -A 30 -E "ERROR|runtime error|deadly signal|timeout" "$log" | head -n 60
    exit 1
fi
exit 0
