#!/bin/bash
# The bench's log-linear latency histogram (bench/hist.c) against known distributions: exact
# below 64 ns, percentiles of a uniform distribution within 1%, any single value within 1/128,
# and values past the last bucket still reported as themselves.
set -u
bin="$BUILD/bin/shmbus-bench"
if [ ! -x "$bin" ]; then
    echo "skip: $bin not built"
    exit 77
fi
"$bin" --self-test
