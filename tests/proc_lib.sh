# Shared by shell tests that start background processes: source it.

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
