#!/bin/bash
# test_fuzz_journal: run the journal fuzzer (tests/fuzz_journal.c) for FUZZ_SECONDS
# (default 20 in make check) and report executions and finds (tests/fuzz_lib.sh: a find
# fails the test and its input is kept in $BUILD/fuzz/finds-fuzz_journal/ for replay).
set -u
top=${SHMBUS_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
# shellcheck source=tests/fuzz_lib.sh
. "$top/tests/fuzz_lib.sh"
fuzz_run fuzz_journal 2048 "${FUZZ_SECONDS:-20}"
