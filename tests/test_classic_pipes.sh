#!/bin/bash
# A closed pipe (issue 17): `classic/start.sh 2>&1 | head -N` and `make demo 2>&1 | head -N`
# leave no System V segment and no named semaphore behind, for several N, with the seed's
# default names as a user runs them (each in a private IPC namespace and /dev/shm). A client
# whose stdout is closed says so and exits 141 (128 + SIGPIPE, but after cleaning up), its
# peers stop (3); a client whose stderr is a closed pipe still cleans up and exits with its
# own status. What may remain is the lock file /dev/shm/classic-<key>.lock, carrying for
# 10 s the note that tells the stopped run's latecomers; the next run removes it.
. "$SHMBUS_TOP/tests/classic_lib.sh"
need_private_ns

# What is left in the namespace: segments and semaphores (must be none), and the lock file.
leftovers_ns='{ ipcs -m | awk '\''$2 ~ /^[0-9]+$/ { print "segment " $1 }'\''; ls /dev/shm | grep -v "^classic-.*\.lock$" | sed "s|^|/dev/shm/|"; } >left'

check_ns() { # DIR WHAT
    [ -z "$(cat "$1/left")" ] || fail "$2 left: $(cat "$1/left")"
}

# The 90-message exchange prints about 8 KB, less than a pipe holds: the clients may finish
# before head exits and never see the closed pipe. So each N also runs with 3000 messages
# (250 KB), where they must.
for n in 1 3 10 50 200; do
    for delay in 0 1 long; do
        [ "$delay" = 1 ] && [ "$n" != 3 ] && continue # the issue's case, with the seed's sleeps
        msgs=90
        [ "$delay" = long ] && msgs=3000 && delay=0
        d=$TEST_TMPDIR/start-$n-$delay-$msgs
        in_private_ns "$d" '
            CLASSIC_MESSAGES='"$msgs"' START_DELAY='"$delay"' timeout 30 "'"$START"'" 2>&1 |
                head -'"$n"' >head.out
            echo "${PIPESTATUS[0]}" >rc
            '"$leftovers_ns"'
            # the next run finds the stopped run'\''s objects gone and completes
            START_DELAY=0 timeout 30 "'"$START"'" >next.out 2>&1
            ls /dev/shm >next.left; ipcs -m | awk '\''$2 ~ /^[0-9]+$/'\'' >>next.left'
        check_ns "$d" "start.sh 2>&1 | head -$n (START_DELAY=$delay, $msgs messages)"
        [ "$(wc -l <"$d/head.out")" = "$n" ] || fail "head -$n printed $(wc -l <"$d/head.out") lines"
        # start.sh owns nothing: its last line, the echo, may meet the closed pipe (141).
        case $(cat "$d/rc") in 0 | 141) ;; *) fail "start.sh | head -$n: start.sh exit $(cat "$d/rc")" ;; esac
        grep -q "^client1: DONE$" "$d/next.out" || fail "the run after head -$n failed: $(cat "$d/next.out")"
        [ -z "$(cat "$d/next.left")" ] || fail "the run after head -$n left: $(cat "$d/next.left")"
        echo "ok: start.sh 2>&1 | head -$n (START_DELAY=$delay, $msgs messages): no segment or semaphore left; the next run completed and left nothing"
    done
done

# make demo, as the issue ran it (the clients are built already: make only checks).
# (CLASSIC_MESSAGES=3000 again makes sure the clients meet the closed pipe.)
for n in 2 5 40 5:3000 40:3000; do
    msgs=${n#*:} n=${n%:*}
    [ "$msgs" = "$n" ] && msgs=90
    d=$TEST_TMPDIR/demo-$n-$msgs
    in_private_ns "$d" '
        cd "'"$SHMBUS_TOP"'" && CLASSIC_MESSAGES='"$msgs"' timeout 60 make -s --no-print-directory \
            BUILD="'"$BUILD"'" demo 2>&1 | head -'"$n"' >"'"$d"'/head.out"
        cd "'"$d"'"
        '"$leftovers_ns"
    check_ns "$d" "make demo 2>&1 | head -$n ($msgs messages)"
    echo "ok: make demo 2>&1 | head -$n ($msgs messages): no segment or semaphore left"
done

# Exit statuses: the starter that reports them, stdout into head -3.
d=$TEST_TMPDIR/status
in_private_ns "$d" '
    CLASSIC_MESSAGES=3000 START_DELAY=0 CLIENT_DIR="'"$CLASSIC_BIN"'" \
        timeout 30 "'"$ORDERED"'" 1 2 3 2>err | head -3 >/dev/null
    '"$leftovers_ns"
check_ns "$d" "the status run"
grep -qE "^start: client[123] \(pid [0-9]+\) exited with status 141 \(SIGPIPE\)$" "$d/err" ||
    fail "no client exited 141 after its stdout closed: $(cat "$d/err")"
grep -qE "^client[123]: my output was closed \(EPIPE\); stopping$" "$d/err" ||
    fail "no client said its output was closed: $(cat "$d/err")"
if grep -E "exited with status" "$d/err" | grep -vqE "status (141 \(SIGPIPE\)|3)$"; then
    fail "unexpected statuses: $(cat "$d/err")"
fi
echo "ok: stdout closed: $(grep -c 'status 141' "$d/err") client(s) exit 141, the others 3, nothing left"

# A closed stderr: a client alone gives up (CLASSIC_GIVE_UP=1) and says so into a pipe whose
# reader is gone; it must still clean up and exit 5, not die of SIGPIPE.
d=$TEST_TMPDIR/stderr
in_private_ns "$d" '
    { CLASSIC_GIVE_UP=1 timeout 30 "'"$CLASSIC_BIN"'/client1" 2>&1 >out | true; } 
    echo "${PIPESTATUS[0]}" >rc
    '"$leftovers_ns"'
    ls /dev/shm >all'
check_ns "$d" "a client with a closed stderr"
[ "$(cat "$d/rc")" = 5 ] || fail "a client with a closed stderr exited $(cat "$d/rc"), not 5"
[ -z "$(cat "$d/all")" ] || fail "a client with a closed stderr left $(cat "$d/all")"
echo "ok: stderr closed: the client gave up, exit 5, nothing left"
