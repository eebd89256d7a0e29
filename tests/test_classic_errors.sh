#!/bin/bash
# The classic clients fail cleanly: a foreign segment under our key (wrong size, or another
# user's), missing permission, an unwritable key directory and bad options each give a clear
# "clientN: ..." message and a non-zero exit within seconds, never a hang, and touch nothing
# that is not theirs.
. "$SHMBUS_TOP/tests/classic_lib.sh"

ipc=$BUILD/tests/classic_ipc
[ -x "$ipc" ] || fail "$ipc missing"
keyfile=$CLASSIC_DIR/MemDispatch

# expect_error NAME STATUS PATTERN CMD...: CMD exits STATUS within 10 s, its stderr matching.
expect_error() {
    local name=$1 want=$2 pattern=$3 err=$TEST_TMPDIR/err rc
    shift 3
    timeout 10 "$@" >/dev/null 2>"$err"
    rc=$?
    [ "$rc" = 124 ] && fail "$name: hung"
    [ "$rc" = "$want" ] || fail "$name: exit $rc, not $want: $(cat "$err")"
    grep -qE "$pattern" "$err" || fail "$name: unclear message: $(cat "$err")"
    echo "ok: $name: exit $rc: $(head -1 "$err")"
}

# A segment of another size under our key: refused, and left alone.
id=$("$ipc" mkseg "$keyfile" 65 4096 600) || fail "could not plant a segment"
expect_error "foreign segment (4096 bytes)" 1 \
    "^client1: shmget\(key $memkey\): segment $id is 4096 bytes, not 1032: a foreign segment" \
    "$CLASSIC_BIN/client1"
ipcs -m | grep -q " $id " || fail "the client removed a segment that was not ours"
"$ipc" rmseg "$id"

# The same for the control segment's key.
id=$("$ipc" mkseg "$keyfile" 66 64 600) || fail "could not plant a segment"
expect_error "foreign control segment" 1 "^client2: shmget\(key $ctlkey\): segment $id is 64 bytes" \
    "$CLASSIC_BIN/client2"
"$ipc" rmseg "$id"
assert_clean "the foreign-segment checks"

# Bad options and environment.
expect_error "--messages 2" 2 "^client1: --messages: '2' is not a number from 4 to" \
    "$CLASSIC_BIN/client1" --messages 2
expect_error "CLASSIC_MESSAGES=abc" 2 "^client3: CLASSIC_MESSAGES: 'abc' is not a number" \
    env CLASSIC_MESSAGES=abc "$CLASSIC_BIN/client3"
expect_error "unknown option" 2 "^usage: client2" "$CLASSIC_BIN/client2" --bogus
expect_error "CLASSIC_GIVE_UP=0" 2 "^client1: CLASSIC_GIVE_UP: '0' is not a number from 1 to" \
    env CLASSIC_GIVE_UP=0 "$CLASSIC_BIN/client1"
expect_error "missing key directory parent" 1 \
    "^client1: mkdir\($TEST_TMPDIR/nope/dir\): No such file or directory" \
    env CLASSIC_DIR="$TEST_TMPDIR/nope/dir" "$CLASSIC_BIN/client1"
assert_clean "the option checks"

# Permissions need another user: as root, nobody (65534) via setpriv; otherwise ourselves
# against a directory and key file we make unusable (root would not notice those).
other=()
if [ "$(id -u)" = 0 ]; then
    command -v setpriv >/dev/null || { echo "skip: setpriv missing (util-linux, scripts/deps.sh test)"; exit 77; }
    other=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi
shared=$(mktemp -d /tmp/classic-perm.XXXXXX)
chmod 755 "$shared"
extra_cleanup() {
    local id
    for id in $(ipcs -m | awk -v k="$pkey" '$1 == k { print $2 }'); do
        ipcrm -m "$id" 2>/dev/null
    done
    rm -rf "$shared"
}
pkey=none
trap 'classic_cleanup; extra_cleanup' EXIT

# An unwritable key directory: no key file can be made there.
mkdir "$shared/ro"
chmod 555 "$shared/ro"
expect_error "unwritable key directory" 1 \
    "^client1: open\($shared/ro/MemDispatch\): Permission denied" \
    env CLASSIC_DIR="$shared/ro" "${other[@]}" "$CLASSIC_BIN/client1"

# Another user's segment under the key: readable key file, segment 0600 not ours.
mkdir "$shared/seg"
pkey=$(CLASSIC_DIR="$shared/seg" "$CLASSIC_BIN/client1" --names | awk '$1 == "memkey" { print $2 }')
chmod 755 "$shared/seg"
chmod 644 "$shared/seg/MemDispatch"
if [ ${#other[@]} -gt 0 ]; then
    id=$("$ipc" mkseg "$shared/seg/MemDispatch" 65 1032 600) || fail "could not plant a segment"
    expect_error "another user's segment (permission denied)" 1 \
        "^client1: shmget\(key $pkey\): Permission denied: the segment under our key belongs to another user" \
        env CLASSIC_DIR="$shared/seg" "${other[@]}" "$CLASSIC_BIN/client1"
    "$ipc" rmseg "$id"
    # ... and the other way round: a segment of the right size that nobody (65534) owns,
    # readable by us (root reads anything): not ours, so refused, not used.
    id=$("${other[@]}" "$ipc" mkseg "$shared/seg/MemDispatch" 65 1032 666) || fail "no plant"
    expect_error "a segment owned by another user" 1 \
        "^client1: shmget\(key $pkey\): segment $id belongs to uid 65534, not to us" \
        env CLASSIC_DIR="$shared/seg" "$CLASSIC_BIN/client1"
    "$ipc" rmseg "$id"
fi
# A key file we may not open.
chmod 600 "$shared/seg/MemDispatch"
[ ${#other[@]} -gt 0 ] || chmod 000 "$shared/seg/MemDispatch"
expect_error "unreadable key file" 1 "^client2: open\($shared/seg/MemDispatch\): Permission denied" \
    env CLASSIC_DIR="$shared/seg" "${other[@]}" "$CLASSIC_BIN/client2"
[ -z "$(ipcs -m | awk -v k="$pkey" '$1 == k')" ] || fail "objects left under $pkey"
