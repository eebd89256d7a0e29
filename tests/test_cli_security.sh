#!/bin/bash
# shmbus command against the mistakes and attacks of issue 9: a FIFO where a key file should
# be (every command returns), a relative SHMBUS_DIR (clean from another directory never
# removes a healthy bus), a scribbled bus (destroy refuses it and says how; ls shows its
# shmid and key; destroy --force removes it and ipcs shows nothing left), limits named in
# create's errors, --as out of a bus's range, a umask of 0277 at first use.
#
# Run by tests/run.sh (BUILD and SHMBUS_DIR set); by hand: BUILD=build bash tests/test_cli_security.sh
set -u
. "$(dirname "$0")/cli_lib.sh"
helper=$bdir/tests/test_security
[ -x "$helper" ] || { echo "skip: $helper is not built"; exit 77; }
b=cli-sec-$$
cleanup() {
    for n in "$b" "$b-keep" "$b-sc" "$b-small" "$b-fifo"; do
        "$SHMBUS" destroy --force "$n" >/dev/null 2>&1
    done
    (cd "$work/x" 2>/dev/null && SHMBUS_DIR=kd "$SHMBUS" destroy --force "$b-keep" >/dev/null 2>&1)
    SHMBUS_DIR="$work/um" "$SHMBUS" destroy --force "$b" >/dev/null 2>&1
    [ -n "${own_dir:-}" ] && rm -rf "$SHMBUS_DIR"
}
trap cleanup EXIT

# A FIFO as a key file: every command returns (the old code blocked in open() forever).
expect 0 "$SHMBUS" create "$b"
mkfifo "$SHMBUS_DIR/$b-fifo.bus"
for cmd in "ls" "ls --json" "clean" "clean --dry-run" "stat $b-fifo" "destroy $b-fifo" \
    "send $b-fifo --as 1 --to 1 x" "recv $b-fifo --as 1 --timeout 0"; do
    # shellcheck disable=SC2086
    timeout 10 "$SHMBUS" $cmd >"$work/out" 2>"$work/err"
    rc=$?
    [ $rc -eq 124 ] && fail "'shmbus $cmd' hung on a FIFO key file"
    case $cmd in
    ls | clean* | "ls --json") [ $rc -eq 0 ] || fail "'shmbus $cmd' exited $rc" ;;
    *) [ $rc -eq 1 ] || fail "'shmbus $cmd' exited $rc, expected 1"
       grep -q "not a shmbus key file" "$work/err" || fail "'shmbus $cmd': $(cat "$work/err")" ;;
    esac
done
expect 0 "$SHMBUS" ls
out_has "$b-fifo: not a bus: not a shmbus key file"
expect 0 "$SHMBUS" destroy --force "$b-fifo"
out_has "removing key file $SHMBUS_DIR/$b-fifo.bus: a FIFO"
[ -e "$SHMBUS_DIR/$b-fifo.bus" ] && fail "destroy --force left the FIFO"

# A relative SHMBUS_DIR: clean from another working directory leaves the bus alone.
mkdir -p "$work/x" "$work/y"
(cd "$work/x" && SHMBUS_DIR=kd "$SHMBUS" create "$b-keep") || fail "create with a relative dir"
(cd "$work/y" && SHMBUS_DIR=kd "$SHMBUS" clean) >"$work/out" 2>&1 || fail "clean from y"
(cd "$work/x" && SHMBUS_DIR=kd "$SHMBUS" clean) >>"$work/out" 2>&1 || fail "clean from x"
SHMBUS_DIR="$work/y/kd" "$SHMBUS" clean >>"$work/out" 2>&1
[ -s "$work/out" ] && fail "clean removed something: $(cat "$work/out")"
(cd "$work/x" && SHMBUS_DIR=kd "$SHMBUS" ls) >"$work/out" 2>&1
out_has "$b-keep: 0 live clients"
SHMBUS_DIR="$work/x/kd" expect 0 "$SHMBUS" send "$b-keep" --as 1 --to 1 hello
SHMBUS_DIR="$work/x/kd" expect 0 "$SHMBUS" destroy "$b-keep"

# A scribbled bus: destroy refuses and says what to do; ls shows shmid and key; --force
# removes it and nothing is left.
expect 0 "$SHMBUS" create "$b-sc"
id=$(awk '{print $3}' "$SHMBUS_DIR/$b-sc.bus")
"$helper" scribble "$id" || fail "could not scribble segment $id"
expect 1 "$SHMBUS" destroy "$b-sc"
err_has "not a shmbus bus"
err_has "remove it with --force"
expect 0 "$SHMBUS" ls
out_has "$b-sc: not a usable bus"
out_has "(shmid $id, key 0x00000000"
expect 0 "$SHMBUS" ls --json
out_has "\"shmid\":$id,\"key\":\"0x00000000\""
expect 0 "$SHMBUS" clean
expect 0 "$SHMBUS" destroy --force "$b-sc"
out_has "removing segment shmid $id, key 0x00000000"
out_has "removing key file $SHMBUS_DIR/$b-sc.bus: a regular file"
ipcs -m | awk -v id="$id" '$2 == id { found = 1 } END { exit !found }' &&
    fail "segment $id is still there after destroy --force"
[ -e "$SHMBUS_DIR/$b-sc.bus" ] && fail "destroy --force left the key file"
expect 1 "$SHMBUS" destroy --force "$b-sc"
err_has "no such bus"

# Limits are named.
expect 2 "$SHMBUS" create "$b-small" --slots 2097152
err_has "--slots: a power of two from 2 to 1048576"
expect 1 "$SHMBUS" create "$b-small" --clients 4096 --slots 1048576 --msg-size 1048576
err_has "over the 64 GiB limit"
expect 0 "$SHMBUS" create "$b-small" --clients 64
expect 1 "$SHMBUS" send "$b-small" --as 65 --to 1 x
err_has "--as 65: this bus has client ids 1..64"
expect 0 "$SHMBUS" destroy "$b-small"

# A umask of 0277 at first use leaves a usable folder.
(umask 0277 && SHMBUS_DIR="$work/um" "$SHMBUS" create "$b") || fail "create under umask 0277"
[ "$(stat -c %a "$work/um")" = 700 ] || fail "folder is $(stat -c %a "$work/um") after umask 0277"
SHMBUS_DIR="$work/um" expect 0 "$SHMBUS" send "$b" --as 1 --to 1 x
SHMBUS_DIR="$work/um" expect 0 "$SHMBUS" destroy "$b"

expect 0 "$SHMBUS" destroy "$b"
[ $fails -eq 0 ] && echo "cli security: FIFO, relative dir, --force, limits, umask"
exit $((fails > 0))
