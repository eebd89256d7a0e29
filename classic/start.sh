#!/bin/sh
# classic/start.sh: the seed's start script, line for line. CLIENT_DIR: where the clients are
# (default ../build/classic next to this script); START_DELAY: the sleeps (default 1);
# CLIENT_WRAPPER: a command to run each client under (the tests use valgrind). Supervision
# lives in the clients (README): a dead or interrupted client stops its peers, the last one
# out cleans up, a client whose parent (this script) dies stops, a second run is refused.
d=${CLIENT_DIR:-$(dirname "$0")/../build/classic}
$CLIENT_WRAPPER "$d/client1" &
sleep "${START_DELAY:-1}"
$CLIENT_WRAPPER "$d/client2" &
sleep "${START_DELAY:-1}"
$CLIENT_WRAPPER "$d/client3" &
wait
echo "All clients finished"
