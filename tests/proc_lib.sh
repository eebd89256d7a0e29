# Shared by shell tests that start background processes: source it.

# pid_running PID: is PID a process that has not ended? A zombie has ended: it waits only for
# its parent to collect its status, and a process whose parent died is collected by init,
# which on some machines does that seconds later, so `kill -0` alone would count it running.
pid_running() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "${st%% *}" != Z ]
}

# stop_pids PID...: SIGTERM each, wait up to 3 s for all to exit (polling for the state,
# with a deadline), SIGKILL any still there, and reap them. Empty arguments are ignored.
stop_pids() {
    local p i alive
    for p in "$@"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
    for ((i = 0; i < 300; i++)); do
        alive=0
        for p in "$@"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive -eq 0 ] && break
        sleep 0.01
    done
    for p in "$@"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
}
