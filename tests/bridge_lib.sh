# shellcheck shell=bash
# Shared by the bridge's shell tests (tests/test_bridge*.sh): source it after cli_lib.sh and
# proc_lib.sh. Two buses called $bus in two runtime directories, $A and $B, stand for two
# hosts (two_hosts() below sets them up and cleans them up); nats-server runs on a free
# loopback port ($url). The caller adds what it starts in the background to $pids (the
# server's pid is $nats_pid).

# wait_for comes from cli_lib.sh.

# What every bridge test needs, checked once: nats-server (a skip without it), the bridge
# binary and python3 (failures: the build and deps.sh provide them). Sets BRIDGE, and points
# the Python peers at this build's library (the unversioned name: no soname to keep in step).
BRIDGE=$bdir/bin/shmbus-bridge
command -v nats-server >/dev/null ||
    { echo "skip: nats-server is not installed (scripts/deps.sh bridge installs it)"; exit 77; }
[ -x "$BRIDGE" ] || { echo "FAIL: $BRIDGE is not built (libnats-dev: scripts/deps.sh bridge)"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 is missing (scripts/deps.sh test)"; exit 1; }
export SHMBUS_LIBRARY=$bdir/lib/libshmbus.so PYTHONPATH=$SHMBUS_TOP/python

# Under ASan (SAN=address,...) the library the Python peers load with ctypes needs the
# sanitizer's runtime loaded first: python3 is then a wrapper, first on PATH, that preloads
# ASan's runtime (UBSan's comes as the library's own dependency) with leak checking off in
# Python alone (the interpreter's allocations at exit are not ours to judge); our own
# programs (shmbus, shmbus-bridge) keep every check. Under TSan there is no such way out.
if [ -n "${SAN:-}" ]; then
    case $SAN in
    *address*) ;;
    *) echo "skip: the Python peers cannot load a $SAN build of the library"; exit 77 ;;
    esac
    asan_rt=$(${CC:-cc} -print-file-name=libasan.so)
    [ -f "$asan_rt" ] || { echo "FAIL: no ASan runtime ($asan_rt) to preload into python3"; exit 1; }
    mkdir -p "$work/sanbin"
    py=$(python3 -c 'import sys; print(sys.executable)') # the interpreter, not a shim
    printf '#!/bin/sh\nLD_PRELOAD=%s ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 exec %s "$@"\n' \
        "$asan_rt" "$py" >"$work/sanbin/python3"
    chmod +x "$work/sanbin/python3"
    export PATH="$work/sanbin:$PATH"
fi

# two_hosts NAME: the bus $bus = NAME in two runtime directories $A and $B; $pids and
# $nats_pid start empty. At exit, whatever the test's outcome: every pid in them stopped,
# both buses destroyed, the test's own cleanup_extra run if it defines one, and the private
# SHMBUS_DIR removed if cli_lib.sh made it.
two_hosts() {
    bus=$1
    A=$work/hostA
    B=$work/hostB
    mkdir -p "$A" "$B"
    pids=""
    nats_pid=""
    trap two_hosts_cleanup EXIT
}
two_hosts_cleanup() {
    # shellcheck disable=SC2086
    stop_pids $pids $nats_pid
    SHMBUS_DIR=$A "$SHMBUS" destroy "$bus" >/dev/null 2>&1
    SHMBUS_DIR=$B "$SHMBUS" destroy "$bus" >/dev/null 2>&1
    if declare -F cleanup_extra >/dev/null; then cleanup_extra; fi
    [ -n "${own_dir:-}" ] && rm -rf "$SHMBUS_DIR"
}

# free_port: a TCP port on 127.0.0.1 nobody listens on now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

onA() { SHMBUS_DIR=$A "$@"; }
onB() { SHMBUS_DIR=$B "$@"; }

# start_nats [ARGS...]: nats-server on $port (loopback only), its pid in $nats_pid.
start_nats() {
    nats-server -a 127.0.0.1 -p "$port" "$@" >>"$work/nats.log" 2>&1 &
    nats_pid=$!
}

# state HOST KEY: a field of that host's bridge state (shmbus-bridge --stats), lower case;
# fails quietly while there is no state yet.
state() {
    SHMBUS_DIR=$1 "$BRIDGE" "$bus" --stats 2>/dev/null | python3 -c 'import json, sys
try:
    print(str(json.load(sys.stdin)[sys.argv[1]]).lower())
except ValueError:
    sys.exit(1)' "$2"
}
state_is() { [ "$(state "$1" "$2")" = "$3" ]; }
state_ge() { local v; v=$(state "$1" "$2") && [ "${v:-0}" -ge "$3" ]; }
has_client() { SHMBUS_DIR=$1 "$SHMBUS" stat "$bus" --json 2>/dev/null | grep -q "\"name\":\"$2\""; }
lines() { [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ]; }

# start_bridge HOSTDIR NODE LOG [OPTION...]: a bridge for $bus there, its pid in
# $bridge_NODE and added to $pids.
start_bridge() {
    local dir=$1 node=$2 log=$3
    shift 3
    SHMBUS_DIR=$dir "$BRIDGE" "$bus" --nats "$url" --node "$node" --interval 100 "$@" >>"$log" 2>&1 &
    eval "bridge_$node=$!"
    pids="$pids $!"
}
