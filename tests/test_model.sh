#!/bin/bash
# test_model: model-check the mailbox protocol (tests/model/mailbox.pml) with spin.
#
# Each run: spin -a generates pan.c, cc compiles it, pan explores every state. Safety runs
# check the assertions (no duplicate, no torn message, per-producer FIFO, nothing committed
# lost) and end states (no deadlock); liveness runs check, under weak fairness, that the
# consumer always finishes (never stuck behind a dead writer). The last run puts back the
# skip rule the library had before the model found its flaw and expects it to fail
# (tests/model/pan_run.sh: a crashed or memory-bound pan never counts as that failure).
#
#   MODEL_FULL=1 tests/test_model.sh    also the larger configurations (`make model`)
#   MODEL_BUDGET=N                      seconds allowed per run (default 240)
set -u

top=${SHMBUS_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
# shellcheck source=tests/model/pan_run.sh
. "$top/tests/model/pan_run.sh"
pan_init "$top/tests/model/mailbox.pml"

safety="-DSAFETY -DNOCLAIM -DCOLLAPSE"
live="-DCOLLAPSE -DNFAIR=3"
pan_run "safety: 2 producers x 2 msgs, 2 slots, up to 2 kills, consumer skips" pass \
    "-DM=2 -DMAXKILL=2 -DNOCLEANER" "$safety" "-m100000"
pan_run "safety: 2 producers x 1 msg, 2 slots, up to 2 kills, consumer and cleaner skip" pass \
    "-DM=1 -DMAXKILL=2" "$safety" "-m100000"
pan_run "liveness: 2 x 1, up to 1 kill, consumer and cleaner: consumer always finishes" pass \
    "-DM=1 -DMAXKILL=1" "$live" "-a -f -m100000"
pan_run "liveness: 2 x 2, up to 1 kill, consumer skips: consumer always finishes" pass \
    "-DM=2 -DMAXKILL=1 -DNOCLEANER" "$live" "-a -f -m100000"
pan_run "old skip rule (needed a dead claimant): consumer can be stuck for ever" fail \
    "-DM=1 -DMAXKILL=1 -DOLD_SKIP_RULE" "$live" "-a -f -m100000"
if [ "${MODEL_FULL:-0}" = 1 ]; then
    pan_run "full safety: 2 x 2, up to 2 kills, consumer and cleaner" pass \
        "-DM=2 -DMAXKILL=2" "$safety" "-m100000 -w28"
    pan_run "full liveness: 2 x 1, up to 2 kills, consumer and cleaner" pass \
        "-DM=1 -DMAXKILL=2" "$live" "-a -f -m100000"
    pan_run "full liveness: 2 x 2, up to 2 kills, consumer skips" pass \
        "-DM=2 -DMAXKILL=2 -DNOCLEANER" "$live" "-a -f -m100000"
fi
pan_exit
