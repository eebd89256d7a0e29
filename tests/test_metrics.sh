#!/bin/bash
# /metrics adds up: the bus's counters on `shmbus monitor`'s /metrics never go down when
# clients leave (Prometheus would read a decrease as a counter reset), they count exactly
# what was sent and taken, the per-pair flow counters name exactly the pairs that exchanged
# messages, and the page parses with the project's parser (tests/prom_text.py) and with
# promtool when it is installed. Before the bus kept its own counters the exporter summed
# the clients listed now, which dropped what a leaving client had counted: the check that
# the per-client sum falls below the bus's total shows that is what this test would catch.
set -u
. "$(dirname "$0")/cli_lib.sh"
. "$SHMBUS_TOP/tests/proc_lib.sh"
command -v python3 >/dev/null || { echo "FAIL: python3 is missing (scripts/deps.sh test)"; exit 1; }
bus=metrics-$$
tmp=$work
pids=""
cleanup() {
    exec 8>&- 2>/dev/null
    # shellcheck disable=SC2086
    stop_pids $pids
    "$SHMBUS" destroy "$bus" >/dev/null 2>&1
    [ -n "${own_dir:-}" ] && rm -rf "$SHMBUS_DIR"
}
trap cleanup EXIT

client_listed() { "$SHMBUS" stat "$bus" --json 2>/dev/null | grep -q "\"name\":\"$1\""; }
client_gone() { ! client_listed "$1"; }

expect 0 "$SHMBUS" create "$bus" --clients 8 --slots 64
"$SHMBUS" monitor "$bus" --listen 127.0.0.1:0 --interval 50 >"$tmp/mon.out" 2>"$tmp/mon.err" &
pids="$pids $!"
wait_for "the monitor's URL" grep -q '^listening on http' "$tmp/mon.out"
url=$(sed -n 's/^listening on \(http:.*\)$/\1/p' "$tmp/mon.out")

# A receiver r, a sender s1 that stays (lines from a FIFO) and one-shot senders s2.
"$SHMBUS" recv "$bus" --as r >"$tmp/r.out" 2>&1 &
rpid=$!
pids="$pids $rpid"
wait_for "receiver r" client_listed r
mkfifo "$tmp/s1.in"
"$SHMBUS" send "$bus" --as s1 --to r <"$tmp/s1.in" >"$tmp/s1.err" 2>&1 &
s1pid=$!
pids="$pids $s1pid"
exec 8>"$tmp/s1.in"
wait_for "sender s1" client_listed s1
ids=$("$SHMBUS" stat "$bus" --json | python3 -c '
import json, sys
c = {x["name"]: x["id"] for x in json.load(sys.stdin)["clients"]}
print(c["r"], c["s1"])')
read -r rid s1id <<<"$ids"
printf '1\n2\n3\n4\n5\n' >&8
expect 0 "$SHMBUS" send "$bus" --as s2 --to r six seven

# scrape FILE: /metrics into FILE (python3, no curl).
scrape() {
    python3 -c 'import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(sys.argv[1] + "metrics", timeout=10).read().decode())' \
        "$url" >"$1"
}
# value FILE SERIES: the value of one series line (exact name{labels}) in FILE, or nothing.
value() { awk -v s="$2" 'index($0, s " ") == 1 { print $2 }' "$1"; }
received_is() {
    scrape "$tmp/m"
    [ "$(value "$tmp/m" "shmbus_bus_received_messages_total{bus=\"$bus\"}")" = "$1" ]
}
wait_for "all 7 messages counted as received" received_is 7
cp "$tmp/m" "$tmp/before"

# Clients leave: s1 (its input closes), then r (SIGINT); the monitor samples again.
exec 8>&-
wait "$s1pid" || fail "s1 exited $?: $(cat "$tmp/s1.err")"
kill -INT "$rpid"
wait "$rpid"
wait_for "s1 and r to leave" client_gone s1
wait_for "r to leave" client_gone r
left_sampled() {
    scrape "$tmp/m"
    ! grep -q "name=\"r\"" "$tmp/m"
}
wait_for "a sample without r" left_sampled
cp "$tmp/m" "$tmp/after"

python3 - "$tmp/before" "$tmp/after" "$bus" "$rid" "$s1id" <<'PY' || fail "the counters did not add up"
import os, sys
sys.path.insert(0, os.environ["SHMBUS_TOP"] + "/tests")
import prom_text
before_path, after_path, bus, rid, s1id = sys.argv[1:]
parsed = []
for path in (before_path, after_path):
    try:
        parsed.append(prom_text.parse(open(path).read(), bus))
    except ValueError as e:
        sys.exit(f"FAIL: {path}: {e}")
(tb, sb), (ta, sa) = parsed
bad = 0
# Every bus-wide and flow counter (and the histogram) is there after, and not lower.
for prefix in ("shmbus_bus_", "shmbus_flow_"):
    for key, v in prom_text.counters(tb, sb, prefix).items():
        if key not in sa:
            print(f"FAIL: {key} disappeared after clients left"); bad += 1
        elif sa[key] < v:
            print(f"FAIL: {key} went down: {v} -> {sa[key]}"); bad += 1
def get(samples, name, **labels):
    return samples.get((name, tuple(sorted({"bus": bus, **labels}.items()))))
for s, when in ((sb, "before"), (sa, "after")):
    if get(s, "shmbus_bus_sent_messages_total") != 7 or get(s, "shmbus_bus_received_messages_total") != 7:
        print(f"FAIL: {when}: bus counts are not 7 sent, 7 received"); bad += 1
    if get(s, "shmbus_flow_messages_total", src=s1id, dst=rid) != 5:
        print(f"FAIL: {when}: flow s1 -> r is not 5"); bad += 1
    flows = [k for k in s if k[0] == "shmbus_flow_messages_total"]
    if len(flows) != 2 or sum(s[k] for k in flows) != 7:
        print(f"FAIL: {when}: flows are not exactly s1 -> r and s2 -> r: {flows}"); bad += 1
    if get(s, "shmbus_bus_latency_seconds_count") is None or get(s, "shmbus_bus_latency_seconds_sum") is None:
        print(f"FAIL: {when}: no latency _count/_sum"); bad += 1
    if not any(k[0] == "shmbus_build_info" for k in s):
        print(f"FAIL: {when}: no shmbus_build_info"); bad += 1
# What the old exporter would have shown: the sum over the clients listed now fell.
per_client = sum(v for (n, _), v in sa.items() if n == "shmbus_client_received_messages_total")
if not per_client < get(sa, "shmbus_bus_received_messages_total"):
    print(f"FAIL: the per-client sum did not fall ({per_client}): the test would not catch a reset"); bad += 1
print(f"bus counters before/after: {get(sb, 'shmbus_bus_received_messages_total')} / "
      f"{get(sa, 'shmbus_bus_received_messages_total')} received; per-client sum after: {per_client}")
sys.exit(1 if bad else 0)
PY

if command -v promtool >/dev/null; then
    for f in before after; do
        promtool check metrics <"$tmp/$f" || fail "promtool check metrics ($f)"
    done
    echo "promtool check metrics: ok"
else
    echo "note: promtool not installed (Debian package prometheus): the project's parser ran"
fi

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"
