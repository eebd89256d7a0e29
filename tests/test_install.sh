#!/bin/bash
# make install into a private prefix, then build the examples against the installed copy
# through pkg-config, link them to the shared library, and pass a message between them.
set -eu
prefix="$TEST_TMPDIR/prefix"
# pkg-config and objdump come with scripts/deps.sh (build, test): missing, this fails.
command -v pkg-config >/dev/null || { echo "FAIL: pkg-config is not installed"; exit 1; }
command -v objdump >/dev/null || { echo "FAIL: objdump is not installed (binutils)"; exit 1; }
make -s -C "$SHMBUS_TOP" install PREFIX="$prefix" BUILD="${BUILD#$SHMBUS_TOP/}" >/dev/null
test -f "$prefix/include/shmbus.h"
test -L "$prefix/lib/libshmbus.so.0"
soname=$(objdump -p "$prefix/lib/libshmbus.so.0" | awk '/SONAME/ {print $2}')
[ "$soname" = libshmbus.so.0 ] || { echo "FAIL: soname is '$soname', not libshmbus.so.0"; exit 1; }
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs shmbus)
# Under a sanitizer build the installed library carries the sanitizer's runtime needs.
san=${SAN:+-fsanitize=$SAN}
for ex in sender receiver subscriber worker leader; do
    cc -std=c11 -Wall -Werror $san "$SHMBUS_TOP/examples/$ex.c" $flags -o "$TEST_TMPDIR/$ex"
done
export LD_LIBRARY_PATH="$prefix/lib"
# The shared library, not the static one, is what got linked.
ldd "$TEST_TMPDIR/sender" | grep -q "libshmbus.so.0 => $prefix/lib/libshmbus.so.0"
# Remove bus "demo" without the shmbus tool: its key file reads "shmbus-bus 1 SHMID NONCE".
destroy_demo() {
    local f="$SHMBUS_DIR/demo.bus"
    [ -f "$f" ] || return 0
    ipcrm -m "$(awk '{print $3}' "$f")" 2>/dev/null || true
    rm -f "$f"
}
"$TEST_TMPDIR/receiver" > "$TEST_TMPDIR/out" &
rpid=$!
trap 'kill $rpid 2>/dev/null || true; destroy_demo' EXIT
# The sender gets "no such client" until the receiver has joined: retry within a deadline.
deadline=$((SECONDS + 10))
until "$TEST_TMPDIR/sender" hello world 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "sender never reached the receiver"; exit 1; }
done
wait $rpid
diff <(printf 'from 1: hello\nfrom 1: world\n') "$TEST_TMPDIR/out"
echo "installed library: header, .a, .so.0 (soname $soname), pkg-config; examples talk"
