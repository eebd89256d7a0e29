/* shmbus-bench: the benchmark on its own, for `make bench` (the `shmbus bench` subcommand
 * calls the same sb_bench_main()). */
#include "bench.h"

int main(int argc, char **argv)
{
    return sb_bench_main(argc, argv);
}
