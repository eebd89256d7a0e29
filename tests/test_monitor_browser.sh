#!/bin/bash
# shmbus monitor in a real browser: headless Debian chromium, driven by playwright-core from
# npm (tests/browser/), opens the monitor while `shmbus ring` runs and checks that the client
# nodes appear and the counters rise (tests/browser/monitor.mjs). Saves a screenshot as
# $BUILD/artifacts/monitor.png for CI to keep.
#
# Needs the Debian packages of scripts/deps.sh's `browser` group (installed by it as root)
# and playwright-core from the npm registry (installed once into tests/browser/node_modules,
# again only when package.json pins another version). Skips (77) with the reason when
# either cannot be had.
set -u
shmbus="$BUILD/bin/shmbus"
[ -x "$shmbus" ] || { echo "shmbus binary not built"; exit 77; }
top=$SHMBUS_TOP
tmp=$TEST_TMPDIR
fail() { echo "FAIL: $*"; exit 1; }

if ! "$top/scripts/deps.sh" browser; then
    echo "chromium/nodejs/npm missing and not installable here (run scripts/deps.sh browser as root)"
    exit 77
fi
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "no chromium at $chromium"; exit 77; }
command -v node >/dev/null || { echo "node not found"; exit 77; }
command -v npm >/dev/null || { echo "npm not found"; exit 77; }

# -- playwright-core, once per pinned version ---------------------------------------------
dir="$top/tests/browser"
want=$(node -e 'console.log(require(process.argv[1]).dependencies["playwright-core"])' \
    "$dir/package.json") || fail "cannot read tests/browser/package.json"
have() {
    node -e 'console.log(require(process.argv[1]).version)' \
        "$dir/node_modules/playwright-core/package.json" 2>/dev/null
}
mkdir -p "$BUILD"
(
    # Two suites (plain and sanitized) may run at once: one installs, the other waits.
    flock -w 300 9 || exit 1
    [ "$(have)" = "$want" ] && exit 0
    echo "installing playwright-core $want from npm into tests/browser/node_modules"
    cd "$dir" && timeout 240 npm install --no-audit --no-fund --no-package-lock \
        --loglevel=error >"$tmp/npm.log" 2>&1
) 9>"$BUILD/.npm-install.lock"
if [ "$(have)" != "$want" ]; then
    cat "$tmp/npm.log" 2>/dev/null | tail -n 20
    echo "could not install playwright-core $want with npm (is the registry reachable?)"
    exit 77
fi

# -- traffic and the monitor ----------------------------------------------------------------
ring_pid="" mon_pid="" sub_pid="" gmon_pid="" nats_pid="" bridge_pid=""
. "$SHMBUS_TOP/tests/proc_lib.sh"
cleanup() {
    stop_pids "$gmon_pid" "$bridge_pid" "$nats_pid" "$sub_pid" "$mon_pid" "$ring_pid"
    for f in "$SHMBUS_DIR"/*.bus; do
        [ -e "$f" ] && "$shmbus" destroy "$(basename "$f" .bus)" >/dev/null 2>&1
    done
}
trap cleanup EXIT

nice -n 19 "$shmbus" ring -c 3 -n 1000000000 --quiet --timeout 240 >"$tmp/ring.out" 2>&1 &
ring_pid=$!
bus=""
for ((i = 0; i < 100; i++)); do
    f=$(ls "$SHMBUS_DIR"/ring-*.bus 2>/dev/null | head -n 1)
    [ -n "$f" ] && { bus=$(basename "$f" .bus); break; }
    sleep 0.1
done
[ -n "$bus" ] || { cat "$tmp/ring.out"; fail "shmbus ring made no bus"; }

"$shmbus" monitor "$bus" --listen 127.0.0.1:0 >"$tmp/mon.out" 2>"$tmp/mon.err" &
mon_pid=$!
url=""
for ((i = 0; i < 100; i++)); do
    url=$(sed -n 's/^listening on \(http:.*\)$/\1/p' "$tmp/mon.out" 2>/dev/null)
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { cat "$tmp/mon.out" "$tmp/mon.err"; fail "the monitor did not start"; }
echo "ring on bus $bus, monitor at $url"

# -- the browser ----------------------------------------------------------------------------
mkdir -p "$BUILD/artifacts"
shot="$BUILD/artifacts/monitor.png"
rm -f "$shot"
# Chromium gets a fresh profile and a private home: nothing of the user's is read or written.
HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/home/.config" XDG_CACHE_HOME="$tmp/home/.cache" \
    CHROMIUM="$chromium" \
    timeout 120 node "$dir/monitor.mjs" "$url" "$shot" "$tmp/chromium-profile" 3
rc=$?
[ $rc -eq 0 ] || { cat "$tmp/mon.err"; fail "browser checks (exit $rc)"; }
[ -s "$shot" ] || fail "no screenshot at $shot"
echo "ok: screenshot saved as $shot"

kill -TERM "$mon_pid"
for ((i = 0; i < 50; i++)); do kill -0 "$mon_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$mon_pid" 2>/dev/null && kill -KILL "$mon_pid" # counted as a failure below
wait "$mon_pid"
rc=$?
mon_pid=""
[ $rc -eq 0 ] || { cat "$tmp/mon.err"; fail "monitor exit $rc after SIGTERM"; }

# -- the Groups card: a topic with one subscriber, on a bus of its own ------------------------
gbus=groups-$$
"$shmbus" create "$gbus" --clients 4 >/dev/null || fail "shmbus create $gbus"
"$shmbus" sub "$gbus" news --timeout 100000 >"$tmp/sub.out" 2>&1 &
sub_pid=$!
for ((i = 0; i < 100; i++)); do # the subscription exists: a state, polled with a deadline
    "$shmbus" group ls "$gbus" --json 2>/dev/null | grep -q '"name":"news","members":1' && break
    sleep 0.1
done
"$shmbus" pub "$gbus" news one two three || fail "shmbus pub to $gbus"
"$shmbus" monitor "$gbus" --listen 127.0.0.1:0 >"$tmp/gmon.out" 2>"$tmp/gmon.err" &
gmon_pid=$!
gurl=""
for ((i = 0; i < 100; i++)); do
    gurl=$(sed -n 's/^listening on \(http:.*\)$/\1/p' "$tmp/gmon.out" 2>/dev/null)
    [ -n "$gurl" ] && break
    sleep 0.1
done
[ -n "$gurl" ] || { cat "$tmp/gmon.out" "$tmp/gmon.err"; fail "the groups monitor did not start"; }
HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/home/.config" XDG_CACHE_HOME="$tmp/home/.cache" \
    CHROMIUM="$chromium" \
    timeout 90 node "$dir/groups.mjs" "$gurl" "$tmp/chromium-profile2" news 3 ||
    { cat "$tmp/gmon.err"; fail "groups card checks"; }

# -- the Bridges card: a shmbus-bridge on the groups bus, connected to a nats-server of ours --
# (on a free loopback port, as the bridge tests do; without nats-server only this part is
# left out, and said so).
if command -v nats-server >/dev/null && [ -x "$BUILD/bin/shmbus-bridge" ]; then
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    nats-server -a 127.0.0.1 -p "$port" >"$tmp/nats.log" 2>&1 &
    nats_pid=$!
    "$BUILD/bin/shmbus-bridge" "$gbus" --nats "nats://127.0.0.1:$port" --node hostB \
        --interval 100 >"$tmp/bridge.log" 2>&1 &
    bridge_pid=$!
    # A message for a node that no bridge serves: counted undeliverable, an error on the card
    # (it waits in the bridge's mailbox until the bridge is connected). The bridge's client
    # exists first: a state, polled with a deadline.
    for ((i = 0; i < 100; i++)); do
        "$shmbus" stat "$gbus" --json 2>/dev/null | grep -q '"name":"bridge"' && break
        sleep 0.1
    done
    "$shmbus" send "$gbus" --as sender --to bridge "nowhere/x hello" ||
        fail "shmbus send to the bridge"
    HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/home/.config" XDG_CACHE_HOME="$tmp/home/.cache" \
        CHROMIUM="$chromium" \
        timeout 90 node "$dir/bridges.mjs" "$gurl" "$tmp/chromium-profile3" bridge hostB \
        "$BUILD/artifacts/bridges.png" ||
        { cat "$tmp/gmon.err" "$tmp/bridge.log"; fail "bridges card checks"; }
else
    echo "note: nats-server or shmbus-bridge missing: the Bridges card is not checked"
fi

echo "browser test passed"
