#!/bin/bash
# test_model_redeliver: model-check work-queue redelivery (tests/model/redeliver.pml;
# src/redeliver.c, the salvage in registry.c, the in-flight hook in mailbox.c) with spin.
#
# The safety run checks that no message is ever lost (ltl [] NO_LOSS, and every message done
# once everything stops) and that one live reaper at a time works on an entry, with a worker
# and a reaper killed at any step; the liveness run checks, under weak fairness, that every
# message is done. The broken variants must fail, so the model keeps its teeth. A pan that
# crashes, runs out of memory or time is a failure, never an expected one
# (tests/model/pan_run.sh).
#
#   MODEL_BUDGET=N    seconds allowed per run (default 240)
set -u

top=${SHMBUS_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
# shellcheck source=tests/model/pan_run.sh
. "$top/tests/model/pan_run.sh"
pan_init "$top/tests/model/redeliver.pml"

mem="-DMEMLIM=2048"
safety="-DSAFETY -DCOLLAPSE $mem"
live="-DCOLLAPSE -DNFAIR=4 $mem"

pan_run "safety: 3 workers, 2 messages, 1 worker and 1 reaper killed" pass "-DSAFETY" \
    "$safety" "-m100000"
pan_run "liveness: every message done, under weak fairness" pass "" "$live" "-a -f -m100000"
pan_run "DONE before the in-flight record: a death between loses the message" fail \
    "-DSAFETY -DBROKEN_ORDER" "$safety" "-m100000"
pan_run "slot freed before the copy: a reaper's death between loses it" fail \
    "-DSAFETY -DBROKEN_CLEAR" "$safety" "-m100000"
pan_run "FREE with a live sender's claim in the ring: what it commits is lost" fail \
    "-DSAFETY -DBROKEN_CLAIM" "$safety" "-m100000"
pan_exit
