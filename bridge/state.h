/* state.h - a bridge's state file (state.c), shared by shmbus-bridge, which writes it, and
 * shmbus-monitor, which reads it. */
#ifndef SHMBUS_BRIDGE_STATE_H
#define SHMBUS_BRIDGE_STATE_H

#include <stddef.h>

/* The state file of bridge AS on bus BUS is RUNTIME_DIR/BUS.AS.bridge.json. */
#define BRIDGE_STATE_SUFFIX ".bridge.json"

/* Its path into out (cap bytes): 0, or -errno (-ENAMETOOLONG, or shmbus_runtime_dir()'s). */
int bridge_state_path(char *out, size_t cap, const char *bus, const char *as);

/* Is pid (from a state file, which outlives its writer) a running shmbus-bridge, and not
 * another process that got its number? 1 or 0. */
int bridge_running(long pid);

#endif
