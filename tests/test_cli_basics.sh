#!/bin/bash
# shmbus command: --help and --version, usage errors (exit 2) for every subcommand, create
# and destroy, and the exit 1 with a clear message for a bus that does not exist.
#
# Run by tests/run.sh (BUILD and SHMBUS_DIR set); by hand: BUILD=build bash tests/test_cli_basics.sh
set -u
. "$(dirname "$0")/cli_lib.sh"
b1=cli-basics-$$-a
b2=cli-basics-$$-b

cleanup() {
    "$SHMBUS" destroy "$b1" >/dev/null 2>&1
    "$SHMBUS" destroy "$b2" >/dev/null 2>&1
    [ -n "${own_dir:-}" ] && rm -rf "$SHMBUS_DIR"
}
trap cleanup EXIT





# The command itself.
expect 0 "$SHMBUS" --help
out_has "Usage: shmbus COMMAND"
for c in create destroy send recv ls stat top clean ring monitor bench; do
    grep -q "^  $c " "$work/out" || fail "--help does not list $c"
done
expect 0 "$SHMBUS" --version
grep -qE '^shmbus [0-9]+\.[0-9]+\.[0-9]+ ' "$work/out" || fail "--version: $(cat "$work/out")"
expect 2 "$SHMBUS"
err_has "no command given"
expect 2 "$SHMBUS" frobnicate
err_has "shmbus: frobnicate: unknown command"
grep -q "did you mean" "$work/err" && fail "frobnicate is no typo of a command: $(head -1 "$work/err")"
# A typo gets the nearest command or option (edit distance), and still exit 2.
expect 2 "$SHMBUS" recieve
err_has "shmbus: recieve: unknown command (did you mean 'recv'?)"
expect 2 "$SHMBUS" sned
err_has "shmbus: sned: unknown command (did you mean 'send'?)"
expect 2 "$SHMBUS" destory
err_has "(did you mean 'destroy'?)"
expect 2 "$SHMBUS" recv "$b1" --as 1 --jsno
err_has "shmbus: recv: unknown option '--jsno' (did you mean '--json'?)"
expect 2 "$SHMBUS" create "$b1" --clinets 4
err_has "shmbus: create: unknown option '--clinets' (did you mean '--clients'?)"
expect 2 "$SHMBUS" send "$b1" --as 1 --to 2 --timeuot=5 x
err_has "unknown option '--timeuot=5' (did you mean '--timeout'?)"
expect 2 "$SHMBUS" monitor "$b1" --intreval 100
err_has "shmbus: monitor: unknown option '--intreval' (did you mean '--interval'?)"

# Every subcommand has --help (exit 0, usage on stdout) and refuses an unknown option (2).
for c in create destroy send recv ls stat top clean ring; do
    expect 0 "$SHMBUS" "$c" --help
    out_has "Usage: shmbus $c"
    expect 2 "$SHMBUS" "$c" --no-such-option
    err_has "shmbus: $c: unknown option '--no-such-option'"
    grep -q "Usage: shmbus $c" "$work/err" || fail "$c: no usage after a bad option"
done

# create --help also gives the size of a bus with the options before it.
expect 0 "$SHMBUS" create --clients 8 --slots 16 --help
grep -qE '^With these options a bus takes [0-9]+ bytes' "$work/out" || fail "create --help: no size"

# Bad usage: missing or malformed arguments.
expect 2 "$SHMBUS" create
err_has "no bus name given"
expect 2 "$SHMBUS" create "$b1" "$b2"
expect 2 "$SHMBUS" create "a/b"
err_has "names hold only"
expect 2 "$SHMBUS" create ..
expect 2 "$SHMBUS" create "$(printf 'x%.0s' $(seq 32))"
err_has "longer than 31"
expect 2 "$SHMBUS" create "$b1" --clients 0
expect 2 "$SHMBUS" create "$b1" --clients 5000
expect 2 "$SHMBUS" create "$b1" --clients 12x
expect 2 "$SHMBUS" create "$b1" --slots 3
expect 2 "$SHMBUS" create "$b1" --msg-size 0
expect 2 "$SHMBUS" create "$b1" --mode 0666
expect 2 "$SHMBUS" create "$b1" --clients
err_has "needs a value"
expect 2 "$SHMBUS" destroy
expect 2 "$SHMBUS" send "$b1" --to 2 hello
err_has "--as and --to are required"
expect 2 "$SHMBUS" send "$b1" --as 1 hello
expect 2 "$SHMBUS" send "$b1" --as 0 --to 2 hello
expect 2 "$SHMBUS" send "$b1" --as 1 --to 2 --prio 8 hello
expect 2 "$SHMBUS" send "$b1" --as 1 --to all --ack hello
expect 2 "$SHMBUS" send "$b1" --as 'bad name' --to 2 hello
expect 2 "$SHMBUS" send --as 1 --to 2
expect 2 "$SHMBUS" recv "$b1"
err_has "--as is required"
expect 2 "$SHMBUS" recv "$b1" --as 2 --count 0
expect 2 "$SHMBUS" recv "$b1" --as 2 --timeout soon
expect 2 "$SHMBUS" ls extra
expect 2 "$SHMBUS" stat
expect 2 "$SHMBUS" top
expect 2 "$SHMBUS" top "$b1" --iterations 0
expect 2 "$SHMBUS" clean extra
# None of the refusals above created anything.
[ -z "$(ls -A "$SHMBUS_DIR" 2>/dev/null)" ] || fail "bad usage left files: $(ls -A "$SHMBUS_DIR")"

# A bus that does not exist: exit 1 and "no such bus". Only create makes a bus: send and
# recv do not (a typo in a name used to create a 17 MiB bus), and say how to create it.
for c in destroy stat top; do
    expect 1 "$SHMBUS" "$c" "$b1"
    err_has "shmbus: $c $b1: no such bus"
done
segs_before=$(ipcs -m | grep -c '^0x')
expect 1 "$SHMBUS" recv "$b1" --as 1 --count 1 --timeout 100
err_has "shmbus: recv $b1: no such bus (create it first: shmbus create $b1)"
expect 1 "$SHMBUS" send "$b1" --as 1 --to 2 hello
err_has "shmbus: send $b1: no such bus (create it first: shmbus create $b1)"
expect 1 "$SHMBUS" send "$b1" --as 1 --to all hello
err_has "no such bus"
[ -z "$(ls -A "$SHMBUS_DIR" 2>/dev/null)" ] || fail "send/recv on a missing bus made files: $(ls -A "$SHMBUS_DIR")"
[ "$(ipcs -m | grep -c '^0x')" -eq "$segs_before" ] || fail "send/recv on a missing bus made a segment"

# create, then the same again (exit 1, "bus exists"), then destroy (twice: 0 then 1).
expect 0 "$SHMBUS" create "$b1" --clients 8 --slots 16 --msg-size 100
expect 1 "$SHMBUS" create "$b1"
err_has "shmbus: create $b1: bus exists"
expect 0 "$SHMBUS" stat "$b1" --json
out_has '"clients":[]'
expect 0 "$SHMBUS" ls --json
out_has "\"name\":\"$b1\",\"max_clients\":8,\"slots\":16,\"msg_size\":100,\"mode\":\"0600\""
expect 0 "$SHMBUS" create "$b2" --mode 0660
expect 0 "$SHMBUS" ls --json
out_has "\"name\":\"$b2\",\"max_clients\":64,\"slots\":256,\"msg_size\":1024,\"mode\":\"0660\""
expect 0 "$SHMBUS" destroy "$b1" "$b2"
expect 1 "$SHMBUS" destroy "$b1"
err_has "no such bus"
expect 0 "$SHMBUS" ls
out_has "no buses in $SHMBUS_DIR"

# The man page documents every command and renders without warnings.
for c in create destroy send recv ls stat top clean ring monitor bench; do
    grep -q "^\.SS \"shmbus $c" "$top/tools/shmbus.1" || fail "shmbus.1 lacks a section for $c"
done
if command -v groff >/dev/null 2>&1; then
    groff -man -ww -z "$top/tools/shmbus.1" 2>"$work/err" || fail "groff failed on shmbus.1"
    [ -s "$work/err" ] && fail "shmbus.1 warnings: $(cat "$work/err")"
fi

# monitor is dispatched to the web monitor.
expect 0 "$SHMBUS" monitor --help
out_has "monitor"

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"
