/*
 * The classic three-client exchange against the seed's performance claims.
 */
#include "results.h"

#include <string.h>

void bench_measure_classic(struct bench_run *r)
{
    memset(&r->classic, 0, sizeof(r->classic));
    snprintf(r->classic.why, sizeof(r->classic.why), "skipped: classic clients not built yet");
}
