#!/bin/bash
# shmbus bench --quick --json: the shape of the report, not the speed.
#
# Checks that the JSON document has every section, that every measurement either carries
# positive numbers or says why it was skipped, that the floors (which need nothing but the
# kernel) were measured, that the targets are all evaluated to MET / MISSED / NOT MEASURED,
# each under its issue (5, 11, 12, 13), issue 11's from its own rows (shmbus-percall,
# shmbus-loan) and from the Memory section's buses, and that the run left nothing behind:
# no System V message queue, no /dev/shm entry, no iox-roudi, no RouDi socket or lock in
# /tmp. The journal floor rows are measured and the durable-none target quotes them with the
# bound they imply. Then the table of an --only run: the one-message-per-call row, the
# journal floor's rows (selected by their group name), and the Targets section with its
# issue blocks. Bad options exit 2.
set -u
bin="$BUILD/bin/shmbus-bench"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
if [ ! -x "$bin" ]; then
    echo "skip: $bin not built"
    exit 77
fi
command -v python3 >/dev/null || {
    echo "FAIL: python3 is needed to read the JSON (scripts/deps.sh test installs it)"
    exit 1
}

# What this bench can leave, and only that: other people's tests run on this machine at the
# same time and come and go in /dev/shm and ipcs -m (tests/run.sh checks the whole machine at
# the end of the suite). System V queues: the bench's are IPC_PRIVATE (key 0).
snapshot() {
    ipcs -q 2>/dev/null | awk '$1 == "0x00000000" && $2 ~ /^[0-9]+$/ {print "msq " $2}'
    ls -d /dev/shm/iceoryx_mgmt "/dev/shm/$(id -un)" /dev/shm/sem.shmbus-bench* 2>/dev/null
    ls -d /tmp/roudi /tmp/roudi.lock /tmp/iox-unique-roudi.lock /tmp/shmbus-bench-* 2>/dev/null
}
roudi_count() { pgrep -x iox-roudi 2>/dev/null | wc -l; }

"$bin" --help >/dev/null || { echo "FAIL: --help did not exit 0"; exit 1; }
"$bin" --no-such-option >/dev/null 2>&1
[ $? -eq 2 ] || { echo "FAIL: a bad option did not exit 2"; exit 1; }

before=$(snapshot | sort)
roudis_before=" $(pgrep -x iox-roudi | tr '\n' ' ') "
start=$(date +%s)
TMPDIR="$tmp" "$bin" --quick --json >"$tmp/bench.json" 2>"$tmp/progress.txt"
rc=$?
secs=$(($(date +%s) - start))
after=$(snapshot | sort)
roudi_after=$(roudi_count)
echo "shmbus-bench --quick --json: exit $rc in ${secs}s"
[ $rc -eq 0 ] || { echo "FAIL: exit $rc"; tail -n 20 "$tmp/progress.txt"; exit 1; }

fail=0
grep -q '^\[ *[0-9]*/ *[0-9]*\]' "$tmp/progress.txt" || {
    echo "FAIL: no progress lines on stderr"
    fail=1
}
leaked=$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')
# Another bench (someone else's make check) may have its own RouDi up right now: its files are
# not this run's.
if [ "$roudi_after" -gt 0 ]; then
    leaked=$(echo "$leaked" | grep -v -E '^(/dev/shm/iceoryx_mgmt|/dev/shm/'"$(id -un)"'|/tmp/roudi(\.lock)?|/tmp/iox-unique-roudi\.lock|/tmp/shmbus-bench-.*)$')
fi
if [ -n "$leaked" ]; then
    echo "FAIL: the bench left IPC objects or files behind:"
    echo "$leaked"
    fail=1
fi
# A RouDi that started during the run and is left running would have lost its parent (this
# bench); one whose parent is another live bench belongs to that bench.
for p in $(pgrep -x iox-roudi); do
    case "$roudis_before" in *" $p "*) continue ;; esac
    parent=$(ps -o comm= -p "$(ps -o ppid= -p "$p" | tr -d ' ')" 2>/dev/null)
    case "$parent" in
    shmbus-bench | shmbus) ;;
    *)
        echo "FAIL: iox-roudi (pid $p, parent '$parent') is running without its bench"
        fail=1
        ;;
    esac
done
if ls -d "$tmp"/shmbus-bench.* >/dev/null 2>&1; then
    echo "FAIL: the bench left its private directory behind"
    fail=1
fi

python3 - "$tmp/bench.json" <<'EOF' || fail=1
import json, sys

doc = json.load(open(sys.argv[1]))
errors = []

def need(cond, what):
    if not cond:
        errors.append(what)

for key in ("bench", "mode", "date", "total_seconds", "machine", "method", "transports",
            "latency", "open_loop", "throughput", "fan_in", "scale", "memory", "groups",
            "classic", "targets"):
    need(key in doc, "missing section: " + key)
if errors:
    print("\n".join(errors)); sys.exit(1)

need(doc["mode"] == "quick", "mode is not quick")
m = doc["machine"]
for key in ("cpu", "kernel", "cpus_online", "cpus_usable", "pinned", "clock_read_ns"):
    need(key in m, "machine." + key + " missing")
need(isinstance(m.get("pinned"), bool), "machine.pinned is not a boolean")

# Every number in the document is positive, except the CPU numbers (CPU 0 exists; -1 means
# not pinned).
def walk(v, path):
    if isinstance(v, bool):
        return
    if isinstance(v, (int, float)):
        if path.split(".")[-1] not in ("cpu_a", "cpu_b"):
            need(v > 0, "not positive: %s = %r" % (path, v))
    elif isinstance(v, dict):
        for k, x in v.items():
            walk(x, path + "." + k)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            walk(x, "%s[%d]" % (path, i))
    elif v is None:
        errors.append("null at " + path)
walk(doc, "$")

names = {t["name"] for t in doc["transports"]}
for n in ("floor-spin", "floor-sem", "floor-ring", "pipe", "uds", "posix-mq", "sysv-mq",
          "zmq-ipc", "iceoryx-poll", "iceoryx-wait", "shmbus-spin", "shmbus-sleep",
          "shmbus-default", "shmbus-percall", "shmbus-loan", "shmbus-durable-none",
          "shmbus-durable-batch", "shmbus-durable-always", "sqlite-wal", "shmbus-tapped",
          "floor-journal-writev", "floor-journal-mapped"):
    need(n in names, "transport row missing: " + n)

lat_fields = ("samples", "seconds", "median_ns", "p99_ns", "p999_ns", "max_ns", "mean_ns")
rate_fields = ("samples", "seconds", "msgs_per_s", "bytes_per_s")
def check(section, fields):
    rows = doc[section]
    need(len(rows) > 0, section + " is empty")
    for r in rows:
        where = "%s %s %s B" % (section, r.get("transport"), r.get("size"))
        need(r.get("size", 0) > 0, where + ": no size")
        if "skipped" in r:
            why = r["skipped"]
            need(isinstance(why, str) and (why.startswith("skipped: ") or why.startswith("failed: "))
                 and len(why) > 10, where + ": a skip without a reason")
            if why.startswith("failed: "):
                print("note: %s: %s" % (where, why))
            continue
        for f in fields:
            need(f in r, where + ": missing " + f)
        if "median_ns" in r:
            need(r["median_ns"] <= r["p99_ns"] <= r["p999_ns"] <= r["max_ns"],
                 where + ": percentiles out of order")
    return rows

lat = check("latency", lat_fields)
check("open_loop", lat_fields)
tput = check("throughput", rate_fields)
check("fan_in", rate_fields)

def measured(rows, t, size):
    return any(r["transport"] == t and r["size"] == size and "skipped" not in r for r in rows)
for size in (64, 1024, 65536):
    for t in ("floor-spin", "floor-sem"):
        need(measured(lat, t, size), "floor not measured: %s %d B" % (t, size))
for size in (64, 1024):
    need(measured(tput, "floor-ring", size), "floor-ring not measured at %d B" % size)
# The journal floor needs the kernel and the library's CRC only: always measured, at 64 B.
for t in ("floor-journal-writev", "floor-journal-mapped"):
    need(measured(tput, t, 64), "journal floor not measured: " + t)
need({r["size"] for r in lat} >= {64, 1024, 65536}, "latency sizes missing")

need(len(doc["scale"]) == 3 and [s["clients"] for s in doc["scale"]] == [3, 16, 64],
     "scale must list 3, 16 and 64 clients")
for s in doc["scale"]:
    if "skipped" not in s:
        for f in ("hop_median_ns", "hop_p99_ns", "segment_bytes", "messages"):
            need(f in s, "scale %d: missing %s" % (s["clients"], f))
    # The ring's floor (semaphores only) needs nothing but the kernel: always measured.
    fl = s.get("floor", {})
    need("skipped" not in fl and fl.get("hop_median_ns", 0) > 0 and fl.get("messages", 0) > 0,
         "scale %d: the floor ring not measured: %r" % (s["clients"], fl))
c = doc["classic"]
need("skipped" in c or ("hop_us" in c and "cpu_us_per_message" in c), "classic: no figures, no reason")

g = doc["groups"]
need([q.get("receivers") for q in g.get("fanout", [])] == [1, 4, 16],
     "groups.fanout must list 1, 4 and 16 subscribers")
for q in g.get("fanout", []) + [g.get("queue", {})]:
    need("skipped" not in q, "groups: shmbus not measured: %s" % q.get("skipped"))
    need(q.get("group_rate", 0) > 0 and q.get("direct_rate", 0) > 0,
         "groups %r: no rates" % q.get("receivers"))
fo = g.get("failover", {})
need("skipped" not in fo, "groups.failover not measured: %s" % fo.get("skipped"))
need(fo.get("kills", 0) >= 20 and 0 < fo.get("p50_ns", 0) <= fo.get("p99_ns", 0),
     "groups.failover: bad figures %r" % fo)

# Memory (issue 11): the segment sizes of the run's own buses, and a 1024-client bus's
# resident pages (or why not). Shape only: which sizes are met is the targets' business.
mem = doc["memory"]
for f in ("clients", "default_bytes", "ring_bytes", "big_bytes"):
    need(f in mem, "memory: missing " + f)
res = mem.get("resident", {})
if "skipped" in res:
    print("note: memory.resident: %s" % res["skipped"])
else:
    for f in ("clients", "segment_bytes", "created_bytes", "after_info_bytes"):
        need(f in res, "memory.resident: missing " + f)
    need(res.get("created_bytes", 0) <= res.get("after_info_bytes", 0) <= res.get("segment_bytes", 0),
         "memory.resident: resident bytes out of order: %r" % res)
need(mem.get("layout2", {}).get("default_bytes", 0) > 0, "memory: no layout 2 reference")

need(len(doc["targets"]) == 24, "there must be 24 targets")
need([t.get("issue") for t in doc["targets"]] == [5] * 8 + [11] * 11 + [12] * 2 + [13] * 3,
     "targets must come grouped by issue: 8 of 5, 11 of 11, 2 of 12, 3 of 13")
# Issue 11: every target of the issue has its line, evaluated from the rows it names.
need(measured(tput, "shmbus-percall", 64), "no 64 B 1:1 stream figure for shmbus-percall")
need(measured(lat, "shmbus-loan", 65536), "no 64 KiB round trip figure for shmbus-loan")
want11 = {"spinning receiver, 64 B round trip <= 1.5x": "shmbus-spin",
          "64 B stream 1:1 in batches": "shmbus-default",
          "64 B stream 1:1, one shmbus_send()": "shmbus-percall",
          "64 KiB round trip with loans": "shmbus-loan",
          "no regression: fan-in of 8": "shmbus-default",
          "no regression: sleeping receiver": "shmbus-sleep",
          "no regression: 64-client ring hop": "clients",
          "memory: a default bus": "per client",
          "memory: a bus for 64 KiB messages": "per client",
          "memory grows with use": "resident"}
t11 = [t for t in doc["targets"] if t.get("issue") == 11]
for prefix, word in want11.items():
    ts = [t for t in t11 if t["target"].startswith(prefix)]
    need(len(ts) == 1, "issue 11 target missing: " + prefix)
    for t in ts:
        if prefix == "memory grows with use" and "skipped" in res:
            continue
        need(t["status"] in ("MET", "MISSED") and "value" in t and word in t["detail"],
             "issue 11 target %r not evaluated from %s: %r" % (prefix, word, t))
need(any(t["target"].startswith("callgrind") and t["status"] == "NOT MEASURED" for t in t11),
     "issue 11's callgrind targets must say they are not measured here")
# Issue 13: the durable rows against the in-memory bus and SQLite (same messages, same disk),
# and the tap's cost, are measured and evaluated from the same run.
for t in ("shmbus-durable-none", "shmbus-durable-batch", "sqlite-wal", "shmbus-tapped"):
    need(measured(tput, t, 64), "no 64 B 1:1 stream figure for " + t)
want = {"durable bus, sync none": "shmbus-durable-none", "durable bus, sync batch": "sqlite-wal",
        "an attached tail": "shmbus-tapped"}
for prefix, row in want.items():
    ts = [t for t in doc["targets"] if t["target"].startswith(prefix)]
    need(len(ts) == 1, "target missing: " + prefix)
    for t in ts:
        need(t["status"] in ("MET", "MISSED") and "value" in t and row in t["detail"],
             "target %r not evaluated from %s: %r" % (prefix, row, t))
# The durable-none line quotes the journal floor and the best a sender doing its work could
# reach (a ratio of the in-memory bus, so between 0 and 1).
for t in [t for t in doc["targets"] if t["target"].startswith("durable bus, sync none")]:
    need("journal floor" in t["detail"] and "writev" in t["detail"] and "mapped" in t["detail"],
         "the durable-none target does not quote the journal floor: %r" % t["detail"])
    need(0 < t.get("bound", 0) < 1, "the durable-none target has no bound in (0, 1): %r" % t)
for t in doc["targets"]:
    need(t.get("status") in ("MET", "MISSED", "NOT MEASURED"), "bad target status: %r" % t)
    need(t.get("detail"), "target without detail: %r" % t.get("target"))
    print("target %-12s %s" % (t["status"], t["target"]))
# A report that measured nothing of its own subject is not a report: every shmbus row must
# have figures (a peer such as iceoryx may be skipped or fail with a reason; shmbus may not),
# and at least one target must have been evaluated.
for section in ("latency", "open_loop", "throughput", "fan_in"):
    for r in doc[section]:
        if str(r.get("transport", "")).startswith("shmbus") and "skipped" in r:
            need(False, "%s %s %s B: shmbus itself was not measured: %s"
                 % (section, r["transport"], r.get("size"), r["skipped"]))
for t in ("shmbus-spin", "shmbus-sleep", "shmbus-default"):
    need(any(measured(lat, t, size) for size in (64, 1024)), "no latency figure for " + t)
for s in doc["scale"]:
    need("skipped" not in s, "scale %d clients: shmbus not measured: %s"
         % (s["clients"], s.get("skipped")))
need(any(t.get("status") != "NOT MEASURED" for t in doc["targets"]),
     "every target is NOT MEASURED: the run measured nothing")

if errors:
    print("FAIL:\n  " + "\n  ".join(errors))
    sys.exit(1)
print("JSON shape ok: %d latency, %d open-loop, %d throughput, %d fan-in entries"
      % (len(lat), len(doc["open_loop"]), len(tput), len(doc["fan_in"])))
EOF

# The table of a short run of a few rows: the one-message-per-call row is in the 1:1
# throughput section, so are both journal floor rows (the group name selects them, the
# receiver is none), and the Targets section lists the issues with a block each.
"$bin" --quick --only shmbus-percall,floor-ring,floor-journal >"$tmp/only.txt" 2>/dev/null
rc=$?
[ $rc -eq 0 ] || { echo "FAIL: --only shmbus-percall,floor-ring,floor-journal exited $rc"; fail=1; }
for row in floor-journal-writev floor-journal-mapped; do
    sed -n '/^== Throughput, 1 producer/,/^$/p' "$tmp/only.txt" | grep -q "^$row  *none  *64 B  *[0-9.]* [kMG]*msg/s" || {
        echo "FAIL: no $row 64 B row in the 1:1 throughput table"
        fail=1
    }
done
sed -n '/^== Throughput, 1 producer/,/^$/p' "$tmp/only.txt" | grep -q '^shmbus-percall  *spin+sleep  *64 B  *[0-9.]* [kMG]*msg/s' || {
    echo "FAIL: no shmbus-percall 64 B row in the 1:1 throughput table"
    fail=1
}
grep -q '^== Targets (issues 5, 11, 12, 13)' "$tmp/only.txt" || {
    echo "FAIL: no Targets section naming issues 5, 11, 12, 13"
    fail=1
}
for i in 5 11 12 13; do
    grep -q "^-- issue $i: " "$tmp/only.txt" || { echo "FAIL: no block for issue $i"; fail=1; }
done
sed -n '/^-- issue 11: /,/^-- issue 12: /p' "$tmp/only.txt" |
    grep -A1 -E '^(MET|MISSED) +64 B stream 1:1, one shmbus_send' | grep -q 'shmbus-percall .* vs floor-ring' || {
    echo "FAIL: issue 11's one-message-per-call target is not evaluated from shmbus-percall"
    fail=1
}
grep -q '^== Memory: ' "$tmp/only.txt" || { echo "FAIL: no Memory section"; fail=1; }
[ $fail -eq 0 ] && echo "table shape ok: shmbus-percall and journal floor rows, Targets by issue, Memory"

exit $fail
