#!/bin/bash
# test_model_ring: model-check the mailbox v2 ring protocol (tests/model/ring_v2.pml,
# docs/mailbox-v2.md) with spin.
#
# Safety runs check the assertions (no duplicate, no torn record, per-producer FIFO within
# a priority, only dead writers skipped, every header read is a real one, nothing committed
# lost) and end states (no deadlock); liveness runs check, under weak fairness, that the
# consumer always finishes (never stuck behind a dead writer). The last runs put back
# deliberately broken rules and expect them to fail, so the model keeps its teeth. A pan
# that crashes, runs out of memory (MEMLIM) or time is a failure, never an expected one
# (tests/model/pan_run.sh).
#
# Batches (one claim of several records) are checked by tests/test_model_ring_batch.sh, on
# the same model: one script each keeps both well inside tests/run.sh's time limit.
#
#   MODEL_FULL=1 tests/test_model_ring.sh    also the larger configurations (`make model`)
#   MODEL_BUDGET=N                           seconds allowed per run (default 240)
set -u

top=${SHMBUS_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
# shellcheck source=tests/model/pan_run.sh
. "$top/tests/model/pan_run.sh"
pan_init "$top/tests/model/ring_v2.pml"

mem="-DMEMLIM=1536" # MB: the machine is shared; a run that needs more fails
safety="-DSAFETY -DNOCLAIM -DCOLLAPSE $mem"
live="-DCOLLAPSE -DNFAIR=3 $mem"

pan_run "safety: 3 msgs (wrap, pad, full, prio), up to 1 kill, consumer skips" pass \
    "-DMAXKILL=1 -DNOCLEANER" "$safety" "-m100000"
pan_run "safety: 2 msgs (wrap, pad, full), up to 2 kills, consumer skips, cleaner reaps" pass \
    "-DSMALL -DMAXKILL=2" "$safety" "-m100000"
pan_run "liveness: 2 msgs, up to 1 kill, cleaner reaps: consumer always finishes" pass \
    "-DSMALL -DMAXKILL=1" "$live" "-a -f -m100000"
pan_run "liveness: 3 msgs, up to 1 kill, consumer skips: consumer always finishes" pass \
    "-DMAXKILL=1 -DNOCLEANER" "$live" "-a -f -m100000"
pan_run "loans: 2 msgs committed or cancelled, up to 1 kill, consumer skips" pass \
    "-DSMALL -DLOANS -DMAXKILL=1 -DNOCLEANER" "$safety" "-m100000"
pan_run "loans liveness: 2 msgs committed or cancelled, up to 1 kill, cleaner reaps" pass \
    "-DSMALL -DLOANS -DMAXKILL=1" "$live" "-a -f -m100000"
pan_run "a cancelled loan's DONE header shorter than its claim: a payload word read as a header" fail \
    "-DSMALL -DLOANS -DCANCEL_SHORT -DMAXKILL=1 -DNOCLEANER" "$safety" "-m100000"
pan_run "old skip rule (needed a dead claimant): consumer stuck for ever" fail \
    "-DSMALL -DMAXKILL=1 -DOLD_SKIP_RULE" "$live" "-a -f -m100000"
pan_run "skip when a dead intent names it: a live writer's claim is skipped" fail \
    "-DMAXKILL=1 -DNOCLEANER -DSKIP_IF_DEAD" "$safety" "-m100000"
pan_run "no chain rule: a claim without header that is not the last" fail \
    "-DMAXKILL=0 -DNOCLEANER -DNO_CHAIN_WAIT" "$safety" "-m100000"
pan_run "chain rule without the head check: producers wait for ever" fail \
    "-DMAXKILL=0 -DNOCLEANER -DCHAIN_NO_HEAD" "$safety" "-m100000"
# The consumer's own death (-DCONSUMER_DIES): killed once between any two of its steps, its
# successor walks from the published head over the units it zeroed. The 3-message ring is
# the smallest where a kill can fall between zeroing a 2-unit record's two units with a
# later claim behind it (what -DZERO_FIRST_TO_LAST needs); with one writer kill as well it
# needs more than MEMLIM, so writer kills go with the 2-message ring (MODEL_FULL).
pan_run "consumer dies: 3 msgs, successor from the published head, no writer kill" pass \
    "-DCONSUMER_DIES -DMAXKILL=0 -DNOCLEANER" "$safety" "-m100000"
pan_run "consumer dies, liveness: 2 msgs, no writer kill: the successor always finishes" pass \
    "-DCONSUMER_DIES -DSMALL -DMAXKILL=0 -DNOCLEANER" "$live" "-a -f -m100000"
pan_run "consumer dies, units zeroed first to last: the successor reads a payload word" fail \
    "-DCONSUMER_DIES -DMAXKILL=0 -DNOCLEANER -DZERO_FIRST_TO_LAST" "$safety" "-m100000"
pan_run "consumer dies, successor steps over any zero: it walks into a live claim" fail \
    "-DCONSUMER_DIES -DSMALL -DMAXKILL=0 -DNOCLEANER -DSTEP_ANY_ZERO" "$safety" "-m100000"
if [ "${MODEL_FULL:-0}" = 1 ]; then
    pan_run "full consumer dies: 2 msgs, up to 1 writer kill, cleaner reaps" pass \
        "-DCONSUMER_DIES -DSMALL -DMAXKILL=1" "$safety" "-m100000"
    pan_run "full consumer dies, liveness: 2 msgs, up to 1 writer kill, consumer skips" pass \
        "-DCONSUMER_DIES -DSMALL -DMAXKILL=1 -DNOCLEANER" "$live" "-a -f -m100000"
    pan_run "full safety: 3 msgs, up to 2 kills, consumer skips" pass \
        "-DMAXKILL=2 -DNOCLEANER" "$safety" "-m100000"
    pan_run "full safety: 3 msgs, up to 1 kill, cleaner reaps" pass \
        "-DMAXKILL=1" "$safety" "-m100000"
    pan_run "full liveness: 3 msgs, up to 2 kills, consumer skips" pass \
        "-DMAXKILL=2 -DNOCLEANER" "$live" "-a -f -m100000"
    pan_run "full safety: 4 msgs (-DBIG), no kills (34M+ states with one)" pass \
        "-DBIG -DMAXKILL=0 -DNOCLEANER" "$safety" "-m100000"
    pan_run "full liveness: 3 msgs, up to 1 kill, cleaner reaps" pass \
        "-DMAXKILL=1" "$live" "-a -f -m100000"
    pan_run "full loans: 3 msgs committed or cancelled, up to 1 kill, consumer skips" pass \
        "-DLOANS -DMAXKILL=1 -DNOCLEANER" "$safety" "-m100000"
fi
pan_exit
