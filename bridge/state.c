/*
 * state.c - a bridge's state file: where it is, and whether the bridge that wrote it runs.
 *
 * shmbus-bridge rewrites RUNTIME_DIR/BUS.AS.bridge.json once per --interval; `shmbus bridge
 * BUS --stats` and shmbus-monitor read it. The file stays when its bridge dies, so a reader
 * asks the kernel whether the pid it names is still a shmbus-bridge. Libc and the public
 * header only: the monitor links this file without libnats.
 */
#include "state.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "shmbus.h"

int bridge_state_path(char *out, size_t cap, const char *bus, const char *as)
{
    char dir[PATH_MAX];
    int n = shmbus_runtime_dir(dir, sizeof(dir));

    if (n < 0)
        return n;
    if (snprintf(out, cap, "%s/%s.%s" BRIDGE_STATE_SUFFIX, dir, bus, as) >= (int)cap)
        return -ENAMETOOLONG;
    return 0;
}

int bridge_running(long pid)
{
    char path[64], comm[32] = "";
    FILE *f;

    if (pid <= 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    if (fgets(comm, sizeof(comm), f) == NULL)
        comm[0] = '\0';
    fclose(f);
    return strcmp(comm, "shmbus-bridge\n") == 0;
}
