#!/bin/sh
# Test plumbing, not part of the product: start.sh's shape (start, sleep, start, sleep,
# start, wait) with the start order as arguments, e.g. `classic_start_order.sh 3 1 2`, that
# also reports each client's exit status, as the tests need to know it:
#   "start: clientN (pid P) exited with status S" on stderr for S != 0 (SIGNAME appended
#   for a death by signal), and exits with the first non-zero status.
# CLIENT_DIR, START_DELAY and CLIENT_WRAPPER as for classic/start.sh.
d=${CLIENT_DIR:?}
pids=""
first=1
for n in "$@"; do
    [ $first = 1 ] || sleep "${START_DELAY:-1}"
    first=0
    $CLIENT_WRAPPER "$d/client$n" &
    pids="$pids $n:$!"
done
status=0
for e in $pids; do
    wait "${e#*:}"
    rc=$?
    [ $rc = 0 ] && continue
    why=""
    [ $rc -gt 128 ] && why=" (SIG$(kill -l $((rc - 128))))"
    echo "start: client${e%%:*} (pid ${e#*:}) exited with status $rc$why" >&2
    [ $status = 0 ] && status=$rc
done
echo "All clients finished"
exit $status
