#!/bin/bash
# A client written from the seed's README alone (tests/classic_seedclient.c: it polls
# destClientNo, takes semName as a mutex, shmget(key, sizeof(struct Memory), IPC_CREAT|0666))
# takes the place of each of the three classic clients in turn, and the exchange completes,
# routed as the table says. Our clients never hear a turn post from it: they must notice its
# messages by looking under semName when their bounded wait runs out.
. "$SHMBUS_TOP/tests/classic_lib.sh"

seed=$BUILD/tests/classic_seedclient
[ -x "$seed" ] || fail "$seed missing"
# The seed client knows no CLASSIC_DIR: it finds MEMNAME in its working directory, and is
# told the test's name for semName.
read -r SEED_SEM_NAME _ <<<"$sems" # the first name: semName's
export SEED_SEM_NAME
bin=$TEST_TMPDIR/bin
for role in 1 2 3; do
    for order in "1 2 3" "3 2 1"; do
        rm -rf "$bin"
        mkdir -p "$bin"
        for c in 1 2 3; do
            ln -s "$CLASSIC_BIN/client$c" "$bin/client$c"
        done
        ln -sf "$seed" "$bin/client$role" # start.sh runs it as client$role
        out=$TEST_TMPDIR/seed-$role.out
        t0=$(now_ms)
        (cd "$CLASSIC_DIR" && CLIENT_DIR=$bin START_DELAY=0 START_ORDER=$order \
            timeout 60 "$START") >"$out" 2>&1 ||
            fail "seed client as client $role (order $order): exit $?: $(grep -v "^Client\|^This" "$out")"
        assert_exchange "$out"
        assert_clean "a run with the seed client as client $role"
        echo "ok: seed client as client $role, order $order: exchange complete in $(($(now_ms) - t0)) ms"
    done
done
