#!/bin/bash
# valgrind memcheck on each classic client, through a whole exchange and through an
# interrupted one: no errors, no leaks (every leak kind counts as an error).
. "$SHMBUS_TOP/tests/classic_lib.sh"

if [ -n "${SAN:-}" ]; then
    echo "skip: valgrind cannot run a sanitizer build ($SAN)"
    exit 77
fi
if ! command -v valgrind >/dev/null; then
    echo "skip: valgrind is not installed (scripts/deps.sh test installs it)"
    exit 77
fi
vg="valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all"

out=$TEST_TMPDIR/vg.out
t0=$(now_ms)
START_DELAY=0 CLIENT_WRAPPER=$vg timeout 120 "$START" >"$out" 2>&1 ||
    fail "the exchange under valgrind failed (exit $?): $(grep -v '^Client\|^This' "$out" | tail -30)"
assert_exchange "$out"
grep -q '==[0-9]*==' "$out" && fail "valgrind reported: $(grep '==[0-9]*==' "$out" | head -30)"
assert_clean "the exchange under valgrind"
echo "ok: 90 messages under memcheck, clients 1-3: no errors, no leaks ($(($(now_ms) - t0)) ms)"

# Interrupted: clients 1 and 2 waiting for client 3, SIGINT to start.sh, which dies of it;
# its clients hear of that through PR_SET_PDEATHSIG and stop, cleaning up, under memcheck.
out=$TEST_TMPDIR/vg-int.out
start_bg "$out" START_DELAY=3 CLIENT_WRAPPER="$vg"
c2=$(wait_client "$bg" 2)
c1=$(client_pid "$bg" 1)
kill -INT "$bg"
wait_exit "$bg" 60
rc=$?
wait_gone 60 "$c1" "$c2"
[ "$rc" = 130 ] || fail "interrupted under valgrind: exit $rc: $(cat "$out")"
[ "$(grep -c "my parent (pid $bg) ended; stopping\|its parent (pid $bg) ended" "$out")" = 2 ] ||
    fail "the clients did not both stop for start.sh's end: $(cat "$out")"
grep -q '==[0-9]*==' "$out" && fail "valgrind reported: $(grep '==[0-9]*==' "$out" | head -30)"
assert_clean "the interrupted run under valgrind"
echo "ok: SIGINT to start.sh under memcheck: clients stopped, no errors, no leaks"
