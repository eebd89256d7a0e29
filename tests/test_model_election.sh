#!/bin/bash
# test_model_election: model-check leader election with epochs and fencing
# (tests/model/election.pml, src/election.c) and leases (tests/model/lease.pml) with spin.
#
# Safety runs check the assertions (one leader per epoch, epochs only grow, a fenced send
# accepted only while no newer leader exists) and end states; liveness runs check, under
# weak fairness, that a dead leader is replaced while someone still campaigns. The broken
# variants must fail, so the model keeps its teeth. A pan that crashes, runs out of memory
# or time is a failure, never an expected one (tests/model/pan_run.sh).
#
#   MODEL_BUDGET=N    seconds allowed per run (default 240)
set -u

top=${SHMBUS_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
# shellcheck source=tests/model/pan_run.sh
. "$top/tests/model/pan_run.sh"
pan_init "$top/tests/model/election.pml"

mem="-DMEMLIM=1024"
safety="-DSAFETY -DNOCLAIM -DCOLLAPSE $mem"
live="-DCOLLAPSE -DNFAIR=4 $mem"

pan_run "safety: 3 candidates x 2 campaigns, 1 death, cleaner" pass "-DSAFETY" "$safety" "-m100000"
pan_run "liveness: 2 candidates x 2 campaigns, 1 death: a dead leader is replaced" pass \
    "-DN=2" "$live" "-a -f -m100000"
pan_run "liveness: 3 candidates x 2 campaigns, 1 death" pass "" "$live" "-a -f -m100000"
pan_run "take-over by plain store: two leaders in one epoch" fail \
    "-DSAFETY -DBROKEN_CHECK" "$safety" "-m100000"
pan_run "dead leaders never noticed: a campaigner waits for ever" fail \
    "-DN=2 -DNO_DEATH_CHECK -DNOCLEANER" "$live" "-a -f -m100000"

# Leases: a renewal and a takeover never both succeed; a campaigner that dies after marking
# the lease leaves a takeover the next one finishes.
pan_model="$top/tests/model/lease.pml"
pan_run "lease safety: 2 renewals, 2 campaigners, one dies after marking" pass "-DSAFETY" \
    "$safety" "-m100000"
pan_run "lease liveness: the stuck leader is replaced" pass "" "$live" "-a -f -m100000"
pan_run "lease renewal by plain store: a renewal cut short" fail "-DSAFETY -DBROKEN_RENEW" \
    "$safety" "-m100000"
pan_run "a mark left by a dead campaigner never finished: the leader never replaced" fail \
    "-DNO_MARK_FINISH" "$live" "-a -f -m100000"
pan_exit
