/* shmbus-monitor: the web monitor as its own program (it links libmicrohttpd, which the
 * shmbus command must not). `shmbus monitor ARGS` execs it; argv[0] plays the subcommand's
 * name, as sb_monitor_main() expects. */
#include "monitor.h"

int sb_monitor_main(int argc, char **argv);

int main(int argc, char **argv)
{
    return sb_monitor_main(argc, argv);
}
