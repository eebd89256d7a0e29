/*
 * cgprobe.c - the hot path's instruction counts, for `make callgrind`.
 *
 * One process, a sender and a receiver on one bus: callgrind counts the instructions of
 * measured() only (bench/cg/run.sh passes --toggle-collect=measured), after a warm-up run
 * of the same loop, and run.sh divides by the number of messages. Instructions are what a
 * call costs on any core, with no second process or machine load to blur them; cycles and
 * cache-line traffic are `shmbus bench`'s job.
 *
 * usage: cgprobe BUS MODE N     MODE: pair (64 B send + recv), batch (32 x 64 B
 *                                send_batch + recv_batch), ref (64 B send + recv_ref +
 *                                release), loan (64 KiB loan + commit + recv_ref + release)
 * Exit 0, or 1 with a message when a call fails.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmbus.h"

#define BATCH 32

static shmbus_client *tx, *rx;
static char msg[64] = "x";
static char bufs[BATCH][64];
static struct shmbus_msg hdrs[BATCH];
static struct shmbus_iov iov[BATCH];

enum { PAIR, BATCHED, REF, LOAN };

static __attribute__((noinline)) int loop(int mode, int n)
{
    for (int i = 0; i < n; i++) {
        if (mode == PAIR) {
            if (shmbus_send(tx, 2, msg, 64, 0, 0) != 0 ||
                shmbus_recv(rx, &hdrs[0], bufs[0], 64, 0) != 64)
                return -1;
        } else if (mode == BATCHED) {
            if (shmbus_send_batch(tx, 2, iov, BATCH, 0, 0) != BATCH ||
                shmbus_recv_batch(rx, hdrs, bufs, 64, BATCH, 0) != BATCH)
                return -1;
        } else if (mode == REF) {
            const void *p;
            if (shmbus_send(tx, 2, msg, 64, 0, 0) != 0 ||
                shmbus_recv_ref(rx, &hdrs[0], &p, 0) != 64 || shmbus_recv_release(rx, p) != 0)
                return -1;
        } else {
            struct shmbus_loan l;
            const void *p;
            if (shmbus_loan(tx, 2, 65536, 0, 0, &l) != 0)
                return -1;
            memcpy(l.data, msg, sizeof(msg)); /* the user writes a little: not the probe's cost */
            if (shmbus_loan_commit(tx, &l, 65536) != 0 ||
                shmbus_recv_ref(rx, &hdrs[0], &p, 0) != 65536 || shmbus_recv_release(rx, p) != 0)
                return -1;
        }
    }
    return 0;
}

/* The only function callgrind counts. */
__attribute__((noinline)) int measured(int mode, int n)
{
    int r = loop(mode, n);
    /* Not a tail call: callgrind must see loop() called from here, and return here. */
    __asm__ volatile("" ::: "memory");
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: cgprobe BUS pair|batch|ref|loan N\n");
        return 2;
    }
    const char *name = argv[1];
    static const char *const modes[] = {"pair", "batch", "ref", "loan"};
    int mode = -1, n = atoi(argv[3]);
    for (int i = 0; i < 4; i++)
        if (strcmp(argv[2], modes[i]) == 0)
            mode = i;
    if (mode < 0 || n < 1) {
        fprintf(stderr, "usage: cgprobe BUS pair|batch|ref|loan N\n");
        return 2;
    }
    bool big = mode == LOAN;
    struct shmbus_bus_opts o = {.max_clients = 4, .msg_size = big ? 65536 : 64};
    shmbus_bus *b;
    int r = shmbus_bus_open(name, &o, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &b);
    if (r < 0) {
        fprintf(stderr, "cgprobe: open %s: %s\n", name, shmbus_strerror(r));
        return 1;
    }
    for (int i = 0; i < BATCH; i++)
        iov[i] = (struct shmbus_iov){msg, 64};
    int rc = 0;
    if (shmbus_join(b, 1, NULL, &tx) < 0 || shmbus_join(b, 2, NULL, &rx) < 0) {
        fprintf(stderr, "cgprobe: join failed\n");
        rc = 1;
    } else if (loop(mode, n) < 0 || measured(mode, n) < 0) {
        fprintf(stderr, "cgprobe: %s: a call failed\n", argv[2]);
        rc = 1;
    }
    if (tx != NULL)
        shmbus_leave(tx);
    if (rx != NULL)
        shmbus_leave(rx);
    shmbus_bus_close(b);
    shmbus_bus_destroy(name);
    return rc;
}
