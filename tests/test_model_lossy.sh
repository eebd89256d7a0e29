#!/bin/bash
# test_model_lossy: model-check lossy subscriptions on the mailbox ring
# (tests/model/ring_lossy.pml, docs/mailbox-v2.md section 16) with spin: a publisher of a
# lossy topic that finds no room drops the oldest unread messages of the topic under the
# mailbox's pass lock.
#
# Safety runs check: nothing delivered twice, nothing both delivered and dropped, only
# READY lossy-topic messages dropped (oldest first), whole records, per-producer FIFO, every
# header read a real one, everything committed delivered or counted dropped, no deadlock.
# The liveness run checks under weak fairness that the consumer always finishes. The broken
# variants must fail (tests/model/pan_run.sh: a crashed pan never counts as a failure).
#
#   MODEL_FULL=1 tests/test_model_lossy.sh   also the larger configurations (`make model`)
#   MODEL_BUDGET=N    seconds allowed per run (default 240)
set -u

top=${SHMBUS_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
# shellcheck source=tests/model/pan_run.sh
. "$top/tests/model/pan_run.sh"
pan_init "$top/tests/model/ring_lossy.pml"

mem="-DMEMLIM=1536"
safety="-DSAFETY -DNOCLAIM -DCOLLAPSE $mem"
live="-DCOLLAPSE -DNFAIR=3 $mem"

# The kill runs have no cleaner process: the consumer's skip needs no live claimant, which a
# killed producer never is, and the cleaner's interleavings would double the states.
pan_run "safety: 2 lossy + 1 direct msgs, walker killed anywhere (lock held too)" pass \
    "-DSMALL -DMAXKILL=1 -DNOCLEANER" "$safety" "-m100000"
pan_run "liveness: 2 lossy + 1 direct msgs: the consumer always finishes" pass \
    "-DSMALL -DMAXKILL=0" "$live" "-a -f -m100000"
pan_run "drop by plain store under the lock (what the lock buys): still safe" pass \
    "-DSMALL -DMAXKILL=0 -DDROP_STORE" "$safety" "-m100000"
pan_run "walker without the pass lock: a consumer inside a receive reads a passed unit" fail \
    "-DMAXKILL=0 -DNO_PASS_LOCK" "$safety" "-m100000"
pan_run "consumer keeps its h after taking the lock: reads a unit a walker passed" fail \
    "-DMAXKILL=0 -DNO_REREAD_HEAD" "$safety" "-m100000"
pan_run "walker drops a direct message" fail \
    "-DMAXKILL=0 -DDROP_DIRECT" "$safety" "-m100000"
if [ "${MODEL_FULL:-0}" = 1 ]; then
    pan_run "full safety: 3 lossy + 1 direct msgs, walker killed anywhere" pass \
        "-DMAXKILL=1 -DNOCLEANER" "$safety" "-m100000"
    pan_run "full liveness: 3 lossy + 1 direct msgs, no kill" pass \
        "-DMAXKILL=0" "$live" "-a -f -m100000"
    pan_run "full liveness: 2 lossy + 1 direct msgs, walker killed, cleaner reaps" pass \
        "-DSMALL -DMAXKILL=1" "$live" "-a -f -m100000"
fi
pan_exit
