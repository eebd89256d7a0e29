/* shmbus-bench: the benchmark, its own program so that the shmbus command never links the
 * peers (ZeroMQ, iceoryx). `make bench` runs it; `shmbus bench` execs it. */
#include "bench.h"

int main(int argc, char **argv)
{
    return sb_bench_main(argc, argv);
}
