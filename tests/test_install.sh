#!/bin/bash
# The lean install, as a user meets it:
#  1. the README's install-and-run-the-example steps (the lines between its
#     "install-example" markers), run exactly, in a copy of the source tree with an empty
#     $HOME as the prefix: the example must build against the installed library through
#     pkg-config, find libshmbus.so.3 at run time (rpath) and pass its two messages;
#  2. what got installed: soname, man pages, bash completion, the monitor companion, no
#     benchmark, and `ldd` of shmbus and libshmbus.so listing only libc-level libraries;
#  3. `make install` asks scripts/deps.sh for the build and monitor groups only (never the
#     test, bench or fuzz toolchains), honours DESTDIR, and `make install-bench` adds the
#     benchmark that `shmbus bench` then runs.
set -u
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
# pkg-config and objdump come with scripts/deps.sh (build, test): missing, this fails.
command -v pkg-config >/dev/null || { echo "FAIL: pkg-config is not installed"; exit 1; }
command -v objdump >/dev/null || { echo "FAIL: objdump is not installed (binutils)"; exit 1; }

src=$TEST_TMPDIR/src
home=$TEST_TMPDIR/home
prefix=$home/.local
mkdir -p "$src" "$home"
tar -C "$SHMBUS_TOP" --exclude=./build --exclude=./.git --exclude=./artifacts \
    --exclude=./tests/browser/node_modules -cf - . | tar -C "$src" -xf -
destroy_demo() {
    [ -x "$prefix/bin/shmbus" ] && "$prefix/bin/shmbus" destroy demo >/dev/null 2>&1
    return 0
}
trap destroy_demo EXIT

# 1. The README's lines, as a new user runs them: a plain build (no sanitizer, no build
# directory of the suite), in the copy, with the prefix empty.
sed -n '/<!-- install-example: begin -->/,/<!-- install-example: end -->/p' \
    "$SHMBUS_TOP/README.md" | sed '/^<!--/d; /^```/d' >"$TEST_TMPDIR/steps.sh"
[ "$(grep -c . "$TEST_TMPDIR/steps.sh")" -ge 5 ] || { echo "FAIL: README has no install-example block"; exit 1; }
if ! (cd "$src" && env -u SAN -u BUILD -u CFLAGS -u LD_LIBRARY_PATH -u PKG_CONFIG_PATH \
    HOME="$home" MAKEFLAGS=-j2 bash -eu "$TEST_TMPDIR/steps.sh") >"$TEST_TMPDIR/steps.out" 2>&1; then
    fail "the README's install-example steps failed:"
    tail -30 "$TEST_TMPDIR/steps.out" | sed 's/^/    /'
fi
diff <(printf 'from 1: hello\nfrom 1: world\n') "$src/received.txt" >/dev/null 2>&1 ||
    fail "the example did not pass its messages: $(cat "$src/received.txt" 2>&1)"
grep -qF -- "from 1: world" "$TEST_TMPDIR/steps.out" || fail "the README's last step printed no messages"

# 2. What is installed.
soname=$(objdump -p "$prefix/lib/libshmbus.so.3" 2>/dev/null | awk '/SONAME/ {print $2}')
[ "$soname" = libshmbus.so.3 ] || fail "soname is '$soname', not libshmbus.so.3"
ver=$(sed -n 's/^#define SHMBUS_VERSION_STRING "\(.*\)"/\1/p' "$src/include/shmbus.h")
pcver=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --modversion shmbus 2>&1)
[ "$pcver" = "$ver" ] || fail "shmbus.pc says version '$pcver', shmbus.h '$ver'"
for f in include/shmbus.h lib/libshmbus.a lib/pkgconfig/shmbus.pc bin/shmbus \
    libexec/shmbus/shmbus-monitor share/man/man1/shmbus.1 share/bash-completion/completions/shmbus \
    share/man/man3/shmbus_bus_open.3 share/man/man3/shmbus_join.3 share/man/man3/shmbus_send.3 \
    share/man/man3/shmbus_recv.3 share/man/man3/shmbus_list.3 share/man/man3/shmbus_peek.3; do
    [ -e "$prefix/$f" ] || fail "make install did not install $f"
done
[ ! -e "$prefix/bin/shmbus-bench" ] || fail "make install installed the benchmark"
# Each API page renders and names the errors its calls return.
if command -v man >/dev/null; then
    for p in bus_open:EEXIST join:EUSERS send:EHOSTUNREACH recv:ETIMEDOUT peek:ENOMSG; do
        out=$(MANWIDTH=100 man -M "$prefix/share/man" 3 "shmbus_${p%%:*}" 2>&1) ||
            fail "man shmbus_${p%%:*}: $out"
        grep -q "ERRORS" <<<"$out" && grep -q -- "-${p#*:}" <<<"$out" ||
            fail "man shmbus_${p%%:*} lacks an ERRORS section with -${p#*:}"
    done
fi
# ldd: the command and the library need libc (and its parts) only; the monitor companion
# adds libmicrohttpd (and what that needs), and is the only one that does.
libc_only() {
    grep -vE '^\s*(linux-vdso\.so|linux-gate\.so|/lib.*/ld-linux|libc\.so|libpthread\.so|librt\.so|libdl\.so|libm\.so)' "$1"
}
for f in bin/shmbus lib/libshmbus.so.3; do
    ldd "$prefix/$f" >"$TEST_TMPDIR/ldd" 2>&1
    echo "ldd $f:"
    sed 's/ (0x[0-9a-f]*)//; s/^/    /' "$TEST_TMPDIR/ldd"
    extra=$(libc_only "$TEST_TMPDIR/ldd")
    [ -z "$extra" ] || fail "$f links more than libc: $extra"
done
needed=$(objdump -p "$prefix/libexec/shmbus/shmbus-monitor" | awk '/NEEDED/ {print $2}' | tr '\n' ' ')
echo "shmbus-monitor needs: $needed"
grep -q libmicrohttpd <<<"$needed" || fail "shmbus-monitor does not link libmicrohttpd"
extra=$(tr ' ' '\n' <<<"$needed" | grep -vE '^(libmicrohttpd\.so|libc\.so|libpthread\.so|librt\.so|$)')
[ -z "$extra" ] || fail "shmbus-monitor links more than libmicrohttpd and libc: $extra"
# Every example program builds against the installed header and library alone.
for ex in epoll_receiver subscriber worker leader durable; do
    cc -std=c11 -Wall -Werror "$src/examples/$ex.c" \
        $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs shmbus) \
        -o "$TEST_TMPDIR/$ex" 2>"$TEST_TMPDIR/cc.err" ||
        fail "examples/$ex.c does not build against the install: $(cat "$TEST_TMPDIR/cc.err")"
done
# The installed command finds its monitor, and says clearly that the benchmark is absent.
PATH=/usr/bin:/bin "$prefix/bin/shmbus" monitor --help >"$TEST_TMPDIR/out" 2>&1 ||
    fail "installed 'shmbus monitor --help' failed: $(cat "$TEST_TMPDIR/out")"
grep -q "shmbus monitor BUS" "$TEST_TMPDIR/out" || fail "'shmbus monitor --help' did not run the monitor"
PATH=/usr/bin:/bin "$prefix/bin/shmbus" bench --quick >"$TEST_TMPDIR/out" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "'shmbus bench' without shmbus-bench exited $rc, not 1"
grep -qF "shmbus: bench: shmbus-bench is not installed (build it with make, install it with make install-bench)" \
    "$TEST_TMPDIR/out" || fail "'shmbus bench' without shmbus-bench said: $(cat "$TEST_TMPDIR/out")"
# Bash completion completes commands and bus names.
got=$(bash -c 'source "$1"; COMP_WORDS=(shmbus re); COMP_CWORD=1; _shmbus; echo "${COMPREPLY[*]}"' _ \
    "$prefix/share/bash-completion/completions/shmbus")
[ "$got" = "recv record replay" ] ||
    fail "completion of 'shmbus re' gave '$got', not 'recv record replay'"

# 3. In the source tree (the suite's build): the package groups, DESTDIR, install-bench.
cat >"$TEST_TMPDIR/deps-log" <<EOF2
#!/bin/sh
echo "\$*" >>"$TEST_TMPDIR/deps-groups"
EOF2
chmod +x "$TEST_TMPDIR/deps-log"
stage=$TEST_TMPDIR/stage
make -s -C "$SHMBUS_TOP" install DESTDIR="$stage" PREFIX=/usr/local DEPS="$TEST_TMPDIR/deps-log" \
    BUILD="${BUILD#$SHMBUS_TOP/}" >"$TEST_TMPDIR/out" 2>&1 || fail "make install DESTDIR=: $(tail -5 "$TEST_TMPDIR/out")"
groups=$(sort -u "$TEST_TMPDIR/deps-groups" 2>/dev/null | tr '\n' ';')
[ "$groups" = "build monitor;" ] || fail "make install asked deps.sh for '$groups', not 'build monitor'"
[ -x "$stage/usr/local/bin/shmbus" ] || fail "DESTDIR: no $stage/usr/local/bin/shmbus"
grep -q '^prefix=/usr/local$' "$stage/usr/local/lib/pkgconfig/shmbus.pc" || fail "DESTDIR leaked into shmbus.pc"
rm -f "$TEST_TMPDIR/deps-groups"
make -s -C "$SHMBUS_TOP" install-bench DESTDIR="$stage" PREFIX=/usr/local DEPS="$TEST_TMPDIR/deps-log" \
    BUILD="${BUILD#$SHMBUS_TOP/}" >"$TEST_TMPDIR/out" 2>&1 || fail "make install-bench: $(tail -5 "$TEST_TMPDIR/out")"
groups=$(sort -u "$TEST_TMPDIR/deps-groups" 2>/dev/null | tr '\n' ';')
[ "$groups" = "build bench;" ] || fail "make install-bench asked deps.sh for '$groups', not 'build bench'"
PATH=/usr/bin:/bin "$stage/usr/local/bin/shmbus" bench --help >"$TEST_TMPDIR/out" 2>&1 ||
    fail "'shmbus bench --help' with shmbus-bench installed: $(cat "$TEST_TMPDIR/out")"
grep -q "usage: shmbus bench" "$TEST_TMPDIR/out" || fail "'shmbus bench --help' did not run shmbus-bench"

[ $fails -eq 0 ] || exit 1
echo "README install steps ran on an empty prefix; example talks; shmbus and libshmbus.so need libc only"
