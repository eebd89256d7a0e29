#!/bin/bash
# libshmbus.so exports the public API and nothing else: every defined dynamic symbol is a
# shmbus_* function (src/libshmbus.map), so programs cannot come to depend on internal sb__*
# functions. The public calls themselves must still be there.
set -eu
so="$BUILD/lib/libshmbus.so.3"
[ -f "$so" ] || { echo "FAIL: $so is not built"; exit 1; }
command -v nm >/dev/null || { echo "FAIL: nm is not installed (binutils)"; exit 1; }
syms=$(nm -D --defined-only "$so" | awk '{print $NF}' | sed 's/@.*//')
count=$(printf '%s\n' "$syms" | grep -c . || true)
others=$(printf '%s\n' "$syms" | grep -v '^shmbus_' || true)
if [ -n "$others" ]; then
    echo "FAIL: $so exports symbols outside the public API:"
    printf '    %s\n' $others
    exit 1
fi
# Every function the header declares is exported (a version script typo would drop them).
missing=""
for f in $(grep -v '^static' "$SHMBUS_TOP/include/shmbus.h" | grep -oE '^[a-z_ ]+\**shmbus_[a-z_]+\(' | grep -oE 'shmbus_[a-z_]+\($' | tr -d '('); do
    printf '%s\n' "$syms" | grep -qx "$f" || missing="$missing $f"
done
[ -z "$missing" ] || { echo "FAIL: declared in shmbus.h but not exported:$missing"; exit 1; }
echo "libshmbus.so.3 exports $count symbols, all shmbus_*"
