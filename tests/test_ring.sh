#!/bin/bash
# shmbus ring: `-c 3 -n 90` prints the seed's transcript (expected lines generated here from
# the seed's routing table, and compared with the classic clients' when they are built);
# other sizes route by the general rule; the summary; bad usage; nothing left behind.
set -u
. "$(dirname "$0")/cli_lib.sh"

. "$(dirname "$0")/proc_lib.sh"
pids=() # every ring started in the background, stopped by pid in cleanup

cleanup() {
    # Background rings first (their clients die with them: PR_SET_PDEATHSIG).
    stop_pids "${pids[@]}"
    # ring destroys its own bus, also when it fails; if a bug left one in this test's
    # private runtime directory, remove it here (the checks report it first).
    local b
    for b in $("$SHMBUS" ls --json 2>/dev/null | grep -o '"name":"ring-[0-9]*-[0-9a-f]*"' | cut -d'"' -f4); do
        "$SHMBUS" destroy "$b" >/dev/null 2>&1
    done
    [ -n "${own_dir:-}" ] && rm -rf "$SHMBUS_DIR"
}
trap cleanup EXIT


# The seed's table for three clients: client 1 sends to 2 + i % 2, client 2 to 1 + 2 * (i % 2),
# client 3 to 1 + i % 2, where i counts that client's sends; client 3's first message
# (message 0, to client 1) is its send 0.
seed_transcript() {
    awk -v m="$1" 'BEGIN {
        n[1] = 0; n[2] = 0; n[3] = 1; dst = 1; src = 3
        for (k = 0; k < m; k++) {
            printf "Client %d has received a message from client %d:\n", dst, src
            printf "This is message %d from client %d\n", k, src
            if (dst == 1) next_dst = 2 + n[1] % 2
            else if (dst == 2) next_dst = 1 + 2 * (n[2] % 2)
            else next_dst = 1 + n[3] % 2
            n[dst]++; src = dst; dst = next_dst
        }
    }'
}

# The general rule for N clients: client k's i-th send goes to the (i mod (N-1))-th of the
# others in ascending order; client N starts with message 0 to client 1.
general_transcript() {
    awk -v c="$1" -v m="$2" 'BEGIN {
        for (k = 1; k <= c; k++) n[k] = 0
        n[c] = 1; dst = 1; src = c
        for (k = 0; k < m; k++) {
            printf "Client %d has received a message from client %d:\n", dst, src
            printf "This is message %d from client %d\n", k, src
            j = n[dst] % (c - 1) + 1
            next_dst = j < dst ? j : j + 1
            n[dst]++; src = dst; dst = next_dst
        }
    }'
}

# 1. The seed's exchange: -c 3 -n 90.
"$SHMBUS" ring -c 3 -n 90 >"$work/ring.out" 2>"$work/ring.err" || fail "ring -c 3 -n 90 exited $?: $(cat "$work/ring.err")"
grep -v '^ring: ' "$work/ring.out" >"$work/ring.lines"
seed_transcript 90 >"$work/seed.lines"
[ "$(wc -l <"$work/seed.lines")" -eq 180 ] || fail "expected transcript is not 180 lines"
diff -u "$work/seed.lines" "$work/ring.lines" >"$work/ring.diff" || {
    fail "ring -c 3 -n 90 differs from the seed's table:"
    head -20 "$work/ring.diff"
}
# The general rule is the seed's table for three clients.
general_transcript 3 90 | cmp -s - "$work/seed.lines" || fail "general rule != seed table for N=3"
grep -qx 'ring: 90 messages among 3 clients: 90 received, 0 missing, 0 duplicated, 0 malformed' \
    "$work/ring.out" || fail "ring summary: $(grep '^ring:' "$work/ring.out")"
grep -qE '^ring: wall time [0-9.]+ s, [0-9]+ messages/s$' "$work/ring.out" || fail "no wall time"
grep -qE '^ring: per-hop latency median [0-9.]+ [num]?s, p99 [0-9.]+ [num]?s$' "$work/ring.out" ||
    fail "no latency: $(grep '^ring:' "$work/ring.out")"
grep -qE '^ring: CPU time [0-9.]+ s user, [0-9.]+ s system$' "$work/ring.out" || fail "no CPU time"

# 2. The classic clients print the same message lines (when they are built).
if [ -x "$bdir/classic/client1" ] && [ -x "$top/classic/start.sh" ]; then
    (cd "$work" && CLIENT_DIR="$bdir/classic" timeout 120 "$top/classic/start.sh") \
        >"$work/classic.out" 2>&1 || fail "classic start.sh exited $?: $(grep -v '^Client\|^This' "$work/classic.out")"
    grep -E '^(Client [0-9]+ has received a message from client [0-9]+:|This is message [0-9]+ from client [0-9]+)$' \
        "$work/classic.out" >"$work/classic.lines"
    diff -u "$work/classic.lines" "$work/ring.lines" >"$work/classic.diff" || {
        fail "ring -c 3 -n 90 differs from classic/start.sh:"
        head -20 "$work/classic.diff"
    }
else
    echo "note: classic clients not built; compared with the seed's table only"
fi

# 3. Other sizes follow the general rule; --quiet prints only the summary.
for cm in "2 7" "5 101" "8 64" "3 1"; do
    set -- $cm
    "$SHMBUS" ring -c "$1" -n "$2" >"$work/r.out" 2>"$work/r.err" || fail "ring -c $1 -n $2 exited $?: $(cat "$work/r.err")"
    grep -v '^ring: ' "$work/r.out" | cmp -s - <(general_transcript "$1" "$2") ||
        fail "ring -c $1 -n $2: transcript does not follow the rule"
    grep -q "^ring: $2 messages among $1 clients: $2 received, 0 missing" "$work/r.out" ||
        fail "ring -c $1 -n $2: summary"
done
"$SHMBUS" ring -c 4 -n 200 --quiet --spin 20 >"$work/q.out" 2>&1 || fail "ring --quiet --spin exited $?"
grep -v -q '^ring: ' "$work/q.out" && fail "--quiet printed transcript lines"
[ "$(wc -l <"$work/q.out")" -eq 4 ] || fail "--quiet: expected 4 summary lines: $(cat "$work/q.out")"

# 4. Bad usage: exit 2 and the usage text.
for args in "-c 1" "-c 0" "-c x" "-c 5000" "-n 0" "-n -3" "--spin x" "--timeout 0" "extra" "-z" "-c"; do
    # shellcheck disable=SC2086
    "$SHMBUS" ring $args >"$work/u.out" 2>"$work/u.err"
    rc=$?
    [ $rc -eq 2 ] || fail "ring $args exited $rc, expected 2"
    grep -q '^Usage: shmbus ring' "$work/u.err" || fail "ring $args: no usage on stderr"
done

# 5. A timeout kills the clients and still removes the bus: nothing of the ring is left.
"$SHMBUS" ring -c 4 -n 100000000 --quiet --timeout 1 >"$work/t.out" 2>"$work/t.err"
rc=$?
[ $rc -eq 1 ] || fail "ring --timeout 1 exited $rc, expected 1"
grep -q 'shmbus: ring: timed out' "$work/t.err" || fail "ring timeout: $(cat "$work/t.err")"
"$SHMBUS" ls --json >"$work/ls.out"
grep -q '"buses":\[\]' "$work/ls.out" || fail "ring left a bus: $(cat "$work/ls.out")"

# 6. A client killed mid-exchange: the ring kills and reaps the others, removes its bus and
#    exits 1 naming the client.
# children PID N: poll until PID has N child processes (deadline 30 s).
children() {
    local end
    end=$((SECONDS + 30))
    while [ $SECONDS -lt $end ]; do
        [ "$(pgrep -P "$1" | wc -l)" -eq "$2" ] && return 0
        sleep 0.01
    done
    fail "ring $1 never had $2 children"
    return 1
}
# The kill tests need pgrep (procps, scripts/deps.sh test): without it they fail, they are
# not quietly skipped.
if ! command -v pgrep >/dev/null 2>&1; then
    fail "pgrep is missing (scripts/deps.sh test installs procps): the kill tests cannot run"
else
    "$SHMBUS" ring -c 4 -n 100000000 --quiet >"$work/k.out" 2>"$work/k.err" &
    rpid=$!
    pids+=("$rpid")
    if children "$rpid" 4; then
        kids=$(pgrep -P "$rpid")
        kill -KILL $(echo "$kids" | head -1)
    fi
    wait "$rpid"
    rc=$?
    [ $rc -eq 1 ] || fail "ring with a killed client exited $rc, expected 1"
    grep -q 'shmbus: ring: client [0-9] was killed by signal 9' "$work/k.err" ||
        fail "killed client not reported: $(cat "$work/k.err")"
    for k in $kids; do kill -0 "$k" 2>/dev/null && fail "client $k outlived the ring"; done
    "$SHMBUS" ls --json | grep -q '"buses":\[\]' || fail "ring left its bus after a client died"

    # SIGTERM to the ring: the same cleanup.
    "$SHMBUS" ring -c 3 -n 100000000 --quiet >"$work/s.out" 2>"$work/s.err" &
    rpid=$!
    pids+=("$rpid")
    children "$rpid" 3 && kids=$(pgrep -P "$rpid")
    kill -TERM "$rpid"
    wait "$rpid"
    rc=$?
    [ $rc -eq 143 ] || fail "ring after SIGTERM exited $rc, expected 143 (128 + SIGTERM)"
    grep -q 'interrupted by signal' "$work/s.err" || fail "SIGTERM: $(cat "$work/s.err")"
    for k in $kids; do kill -0 "$k" 2>/dev/null && fail "client $k outlived the ring"; done
    "$SHMBUS" ls --json | grep -q '"buses":\[\]' || fail "ring left its bus after SIGTERM"

    # The ring itself killed: its clients die with it (PR_SET_PDEATHSIG). Its bus is left
    # (nobody could remove it) and is removed here.
    "$SHMBUS" ring -c 3 -n 100000000 --quiet >/dev/null 2>&1 &
    rpid=$!
    pids+=("$rpid")
    if children "$rpid" 3; then
        kids=$(pgrep -P "$rpid")
        kill -KILL "$rpid"
        wait "$rpid" 2>/dev/null
        for k in $kids; do
            end=$((SECONDS + 30))
            while [ $SECONDS -lt $end ]; do
                kill -0 "$k" 2>/dev/null || break
                sleep 0.01
            done
            kill -0 "$k" 2>/dev/null && fail "client $k outlived the killed ring"
        done
    fi
    for b in $("$SHMBUS" ls --json | grep -o '"name":"ring-[0-9]*-[0-9a-f]*"' | cut -d'"' -f4); do
        "$SHMBUS" destroy "$b" || fail "could not destroy $b"
    done
fi

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"
