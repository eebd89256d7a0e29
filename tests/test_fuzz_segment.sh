#!/bin/bash
# test_fuzz_segment: run the segment fuzzer (tests/fuzz_segment.c) for FUZZ_SECONDS
# (default 60; `make fuzz` runs it for 600) and report executions and finds.
#
# A find (crash, sanitizer report, hang over 10 s, leak) fails the test; the input that did it
# is kept in $BUILD/fuzz/finds-fuzz_segment/ so it can be replayed: build/fuzz/fuzz_segment
# FILE. The corpus persists in $BUILD/fuzz/corpus-fuzz_segment between runs, so each run
# starts where the last one stopped (tests/fuzz_lib.sh).
set -u
top=${SHMBUS_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
# shellcheck source=tests/fuzz_lib.sh
. "$top/tests/fuzz_lib.sh"
# SHMBUS_DIR comes from tests/run.sh (private to this test); the fuzzer makes its bus there.
fuzz_run fuzz_segment 512 "${FUZZ_SECONDS:-60}"
