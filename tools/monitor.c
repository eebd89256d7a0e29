/* Placeholder until the web monitor lands: keeps the shmbus command linking. */
#include <stdio.h>

int sb_monitor_main(int argc, char **argv);

int sb_monitor_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "shmbus: monitor: not built yet\n");
    return 1;
}
