#!/bin/bash
# The Python module (python/shmbus/) under pytest: tests/python/test_shmbus.py, against the
# library this build made. Then: `make install` puts the module where Debian's python3
# finds it, and the installed copy loads the installed library.
set -eu
TEST_TIMEOUT=120
# A sanitizer build's library needs its runtime preloaded into python: not worth it here.
[ -z "${SAN:-}" ] || { echo "skip: ctypes cannot load a sanitizer build of the library"; exit 77; }
py=/usr/bin/python3
# python3-pytest comes with scripts/deps.sh test: missing, this fails.
"$py" -c 'import pytest' 2>/dev/null || { echo "FAIL: python3-pytest is not installed"; exit 1; }
export SHMBUS_LIBRARY="$BUILD/lib/libshmbus.so.3"
export PYTHONDONTWRITEBYTECODE=1
cd "$SHMBUS_TOP"
"$py" -m pytest -q -p no:cacheprovider tests/python

# Installed: for PREFIX=/usr/local the module goes into a folder on python3's own path.
dir=$(make -s --no-print-directory print-pythondir PREFIX=/usr/local BUILD="${BUILD#$SHMBUS_TOP/}")
"$py" -c 'import sys; sys.exit(0 if sys.argv[1] in sys.path else 1)' "$dir" ||
    { echo "FAIL: make install would put the module in $dir, not on python3's path"; exit 1; }
prefix="$TEST_TMPDIR/prefix"
make -s -C "$SHMBUS_TOP" install-python PREFIX="$prefix" LIBDIR="$BUILD/lib" \
    BUILD="${BUILD#$SHMBUS_TOP/}" >/dev/null
pydir=$(make -s --no-print-directory print-pythondir PREFIX="$prefix" BUILD="${BUILD#$SHMBUS_TOP/}")
unset SHMBUS_LIBRARY
cd "$TEST_TMPDIR"
PYTHONPATH="$pydir" "$py" -c '
import shmbus, sys
assert shmbus.__file__.startswith(sys.argv[1]), shmbus.__file__
with shmbus.Bus("pyinst", create=True) as b, b.join(1) as a:
    a.send(1, b"self")
    assert a.recv(1).data == b"self"
shmbus.destroy("pyinst")
' "$pydir"
echo "pytest passed; make install puts the module in $dir (on python3's path); installed copy works"
