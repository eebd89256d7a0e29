#!/bin/bash
# classic/start.sh: start the seed's three clients and wait for them.
#
# The seed's script, in the seed's order: client1 &, sleep 1, client2 &, sleep 1, client3 &,
# wait, echo "All clients finished". What it adds, and why:
#   CLIENT_DIR     where the clients are (default: ../build/classic next to this script).
#   START_DELAY    the seconds slept between starts (default 1; 0 drops the sleeps) and
#   START_ORDER    the order, e.g. "3 1 2" (default "1 2 3"): the exchange must not depend on
#                  either, and the tests show that it does not.
#   CLIENT_WRAPPER a command to run each client under (the tests use valgrind).
#   CLASSIC_RUN    one id for this script's three clients (made up here if unset), so that the
#                  clients of a second start.sh refuse to join, and so disturb, a live
#                  exchange.
# It waits for each client as it ends (wait -n) and exits with the first failure's status
# (0 if all succeed). Once a client has failed, or SIGINT/SIGTERM came, it starts no more
# clients. SIGINT and SIGTERM are passed on to the clients. A client that died cannot tell
# its peers, possibly not even that it existed (kill -9 before it registered), so the script
# tells them: `client1 --abort REASON` stops this run's exchange and cleans up if nobody is
# left to.
set -u

here=$(cd "$(dirname "$0")" && pwd)
dir=${CLIENT_DIR:-$here/../build/classic}
delay=${START_DELAY:-1}
order=${START_ORDER:-1 2 3}
wrapper=${CLIENT_WRAPPER:-}
export CLASSIC_RUN="${CLASSIC_RUN:-start.sh.$$.$(date +%s%N)}"

if [ "$(printf '%s\n' $order | sort | tr '\n' ' ')" != "1 2 3 " ]; then
    echo "start.sh: START_ORDER must list 1, 2 and 3 once each, not '$order'" >&2
    exit 2
fi
for n in 1 2 3; do
    if [ ! -x "$dir/client$n" ]; then
        echo "start.sh: $dir/client$n not found: run make first (or set CLIENT_DIR)" >&2
        exit 1
    fi
done

declare -A client_of=() # pid -> client number, for the clients not yet waited for
status=0
stopping=0
sleeper=""
signalled=""

on_signal() { # SIGNAME NUMBER
    stopping=1
    signalled=$1
    [ "$status" -eq 0 ] && status=$((128 + $2))
    local pid
    for pid in "${!client_of[@]}"; do
        kill -s "$1" "$pid" 2>/dev/null
    done
}
trap 'on_signal INT 2' INT
trap 'on_signal TERM 15' TERM

reap() { # PID STATUS
    local pid=$1 rc=$2 n=${client_of[$1]} why
    unset "client_of[$pid]"
    [ "$rc" -eq 0 ] && return
    why="exited with status $rc"
    if [ "$rc" -lt 0 ] || [ "$rc" -gt 255 ]; then
        # bash (5.2) loses the status of a child that ends while a trap interrupts wait -n;
        # that happens only when we were signalled, and then our status is already set.
        [ -n "$signalled" ] && return
        why="ended, its exit status unknown"
        rc=1
    elif [ "$rc" -gt 128 ]; then
        why="$why (SIG$(kill -l $((rc - 128)) 2>/dev/null || echo "?"))"
    fi
    echo "start.sh: client$n (pid $pid) $why" >&2
    [ "$status" -eq 0 ] && status=$rc
    stopping=1
    # Tell the peers with one of our clients; a stand-in that knows no --abort (a seed-only
    # client in the interop test) would take the option for a client number, or ignore it.
    local m
    for m in 1 2 3; do
        if grep -qa -- "--abort WHY" "$dir/client$m"; then
            "$dir/client$m" --abort "client $n (pid $pid) $why" || true
            break
        fi
    done
}

# Wait until a child ends (or a signal's trap has run), then reap every client that has
# ended. wait -n -p names the child and its status; a child that ended while a trap ran can
# be missed by it, so clients no longer running are also picked up with `wait PID`, which
# returns the status bash saved for that pid.
wait_one() {
    local done="" rc pid
    wait -n -p done 2>/dev/null
    rc=$?
    if [ -n "${done:-}" ] && [ -n "${client_of[$done]:-}" ]; then
        reap "$done" $rc
    elif [ -n "${done:-}" ] && [ "$done" = "$sleeper" ]; then
        sleeper=""
    fi
    for pid in "${!client_of[@]}"; do
        # 127: no child left to wait for, so none of these can still be running.
        if [ $rc -eq 127 ] || ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null
            reap "$pid" $?
        fi
    done
    if [ -n "$sleeper" ] && { [ $rc -eq 127 ] || ! kill -0 "$sleeper" 2>/dev/null; }; then
        sleeper=""
    fi
}

# A script's background jobs start with SIGINT ignored, so a SIGINT arriving before a client
# has installed its handler would be lost, and that client would wait on alone: start the
# clients with SIGINT at its default (env execs them, keeping the pid).
sigdefault=()
env --default-signal=INT true 2>/dev/null && sigdefault=(env --default-signal=INT)

first=1
for n in $order; do
    if [ $first -eq 0 ] && [ "$delay" != 0 ]; then
        sleep "$delay" &
        sleeper=$!
        while [ -n "$sleeper" ] && [ $stopping -eq 0 ]; do
            wait_one
        done
    fi
    first=0
    [ $stopping -eq 1 ] && break
    "${sigdefault[@]}" $wrapper "$dir/client$n" &
    client_of[$!]=$n
done
if [ -n "$sleeper" ]; then
    kill "$sleeper" 2>/dev/null # bash reaps it; waiting for it by pid upsets wait -n
    sleeper=""
fi
while [ ${#client_of[@]} -gt 0 ]; do
    wait_one
done
echo "All clients finished"
exit "$status"
