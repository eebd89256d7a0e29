#!/bin/sh
# Install the Debian packages a make target needs.
#
#   scripts/deps.sh GROUP...     groups: build, test, monitor, bench, fuzz, browser, bridge
#
# Each group names Debian 12 packages. Packages already installed cost one dpkg-query.
# As root, missing packages are installed with apt-get; otherwise the exact command is
# printed and the script exits 1, so make stops before a confusing compiler error.
set -eu

pkgs_build="gcc make pkg-config libc6-dev"
# Everything a test needs, so that nothing skips for want of a tool: python3 and jq read
# JSON, procps gives ps/pgrep (tests/run.sh finds stray processes), util-linux gives setsid,
# ipcs and unshare, binutils gives objdump (the soname check), pkg-config the install test,
# g++ the C++ check of classic/client.h, python3-pytest the Python module's tests.
pkgs_test="libcmocka-dev valgrind spin procps util-linux g++ python3 python3-pytest jq binutils pkg-config"
pkgs_monitor="libmicrohttpd-dev"
pkgs_bench="libzmq3-dev libiceoryx-binding-c-dev iceoryx python3-zmq libsqlite3-dev"
pkgs_fuzz="clang libclang-rt-14-dev"
pkgs_browser="chromium nodejs npm"
# The NATS bridge (bridge/, shmbus-bridge): the official C client to build it, and the server
# its test starts on a loopback port.
pkgs_bridge="libnats-dev nats-server"

want=""
for group in "$@"; do
    case "$group" in
    build) want="$want $pkgs_build" ;;
    test) want="$want $pkgs_test" ;;
    monitor) want="$want $pkgs_monitor" ;;
    bench) want="$want $pkgs_bench" ;;
    fuzz) want="$want $pkgs_fuzz" ;;
    browser) want="$want $pkgs_browser" ;;
    bridge) want="$want $pkgs_bridge" ;;
    *)
        echo "deps.sh: unknown group '$group'" >&2
        exit 2
        ;;
    esac
done

missing=""
for p in $want; do
    # npm ships inside nodesource's nodejs package on some machines; accept either.
    if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then
        continue
    fi
    if [ "$p" = nodejs ] && command -v node >/dev/null 2>&1; then
        continue
    fi
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
    esac
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "shmbus: missing Debian packages:$missing" >&2
    echo "shmbus: run this, then make again:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi

echo "shmbus: installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists; refresh them once if a lookup fails.
if ! apt-get -o DPkg::Lock::Timeout=120 install -y --no-install-recommends $missing >/dev/null 2>&1; then
    apt-get -o DPkg::Lock::Timeout=120 update >/dev/null
    apt-get -o DPkg::Lock::Timeout=120 install -y --no-install-recommends $missing
fi
