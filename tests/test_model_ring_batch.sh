#!/bin/bash
# test_model_ring_batch: model-check batches on the mailbox v2 ring (tests/model/ring_v2.pml
# with -DBATCH; docs/mailbox-v2.md 4 and 13) with spin: a send_batch() claim of two records,
# the second header READY|INNER written inside the claim, one commit; kills at every step;
# the chain rule after a batch whose first record was taken and zeroed. The broken variants
# must fail (tests/model/pan_run.sh: a crashed or memory-bound pan never counts as a failure).
# The rest of the ring's runs are tests/test_model_ring.sh.
#
#   MODEL_FULL=1 tests/test_model_ring_batch.sh   also the larger configurations (`make model`)
#   MODEL_BUDGET=N    seconds allowed per run (default 240)
set -u

top=${SHMBUS_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
# shellcheck source=tests/model/pan_run.sh
. "$top/tests/model/pan_run.sh"
pan_init "$top/tests/model/ring_v2.pml"

mem="-DMEMLIM=1536" # MB: the machine is shared; a run that needs more fails
safety="-DSAFETY -DNOCLAIM -DCOLLAPSE $mem"
live="-DCOLLAPSE -DNFAIR=3 $mem"

# Batches (-DBATCH): one claim of two 1-unit records (send_batch()), the second header
# READY|INNER written inside the claim, one commit CLAIMED(2) -> READY(1); kills at every
# step, skips of the whole claim. -DIDLE lets the consumer return after any receive and never
# be called again (a receiver busy elsewhere, or waiting for a reply by other means): no
# kills then, and a producer left waiting for anything but room is an invalid end state.
pan_run "batch: 4 msgs (a batch of 2 + 2), up to 1 kill, consumer skips" pass \
    "-DBATCH -DMAXKILL=1 -DNOCLEANER" "$safety" "-m100000"
pan_run "batch: 3 msgs (a batch of 2 + 1, ring of 2), up to 1 kill, cleaner reaps" pass \
    "-DBATCH -DSMALL -DMAXKILL=1" "$safety" "-m100000"
pan_run "batch liveness: 3 msgs, up to 1 kill, consumer skips: consumer always finishes" pass \
    "-DBATCH -DSMALL -DMAXKILL=1 -DNOCLEANER" "$live" "-a -f -m100000"
pan_run "batch, idle consumer: 4 msgs, no producer waits but for room" pass \
    "-DBATCH -DIDLE -DMAXKILL=0 -DNOCLEANER" "$safety" "-m100000"
pan_run "batch, idle consumer, the old chain rule (head != tail): a producer waits for ever" fail \
    "-DBATCH -DIDLE -DMAXKILL=0 -DNOCLEANER -DBATCH_OLD_CHAIN" "$safety" "-m100000"
pan_run "batch, idle consumer, no publish at an INNER record: a producer waits for ever" fail \
    "-DBATCH -DIDLE -DMAXKILL=0 -DNOCLEANER -DBATCH_NO_INNER_PUBLISH" "$safety" "-m100000"
pan_run "batch, a skip's DONE covers the first record only: the consumer lands inside the claim" fail \
    "-DBATCH -DSMALL -DMAXKILL=1 -DNOCLEANER -DBATCH_SKIP_SHORT" "$safety" "-m100000"
if [ "${MODEL_FULL:-0}" = 1 ]; then
    pan_run "full batch: 3 msgs, up to 2 kills, cleaner reaps" pass \
        "-DBATCH -DSMALL -DMAXKILL=2" "$safety" "-m100000"
    pan_run "full batch liveness: 3 msgs, up to 1 kill, cleaner reaps" pass \
        "-DBATCH -DSMALL -DMAXKILL=1" "$live" "-a -f -m100000"
    pan_run "full batch liveness: 4 msgs, up to 1 kill, consumer skips" pass \
        "-DBATCH -DMAXKILL=1 -DNOCLEANER" "$live" "-a -f -m100000"
    pan_run "full batch: 4 msgs, up to 2 kills, consumer skips" pass \
        "-DBATCH -DMAXKILL=2 -DNOCLEANER" "$safety" "-m100000"
    pan_run "full batch: 4 msgs, up to 1 kill, cleaner reaps" pass \
        "-DBATCH -DMAXKILL=1" "$safety" "-m100000"
fi
pan_exit
