/*
 * client.h: the seed's shared constants and the one structure the three clients map.
 *
 * Design notes
 * - Names, values and the byte layout of struct Memory are the seed's, unchanged: a client
 *   written from the seed's README alone (tests/classic_seedclient.c) maps the same segment
 *   with shmget(ftok(MEMNAME, 65), sizeof(struct Memory), ...) and must read what ours write.
 *   The static asserts below pin that layout, so a "harmless" edit cannot break it.
 * - Nothing else lives in the segment. What our clients need besides the seed's fields
 *   (who takes part, who holds semName, why an exchange stopped) is kept in a second, private
 *   segment described in classic.h, so a seed client that creates the segment with exactly
 *   sizeof(struct Memory) bytes still meets ours.
 */
#ifndef CLASSIC_CLIENT_H
#define CLASSIC_CLIENT_H

#include <stddef.h>
#include <sys/stat.h>

/* Group read/write: what the seed used for its semaphore. Our clients use it only when group
 * access is asked for (--group or CLASSIC_GROUP=1); the default is owner-only (0600). */
#define SEM_PERMS (S_IRUSR | S_IWUSR | S_IRGRP | S_IWGRP)

/* The named semaphore guarding struct Memory, and the key file given to ftok(). */
#define semName "semName"
#define MEMNAME "MemDispatch"

#define BUF_LEN      1024
#define NUM_MESSAGES 30 /* per client: the exchange carries 3 * NUM_MESSAGES messages */

struct Memory {
    int packet_no;               /* sequence number: 0 for client 3's first message */
    unsigned short srcClientNo;  /* 1, 2 or 3 */
    unsigned short destClientNo; /* 1, 2 or 3; 0 before the exchange starts */
    char message[BUF_LEN];       /* NUL-terminated text */
};

_Static_assert(offsetof(struct Memory, packet_no) == 0, "seed layout");
_Static_assert(offsetof(struct Memory, srcClientNo) == 4, "seed layout");
_Static_assert(offsetof(struct Memory, destClientNo) == 6, "seed layout");
_Static_assert(offsetof(struct Memory, message) == 8, "seed layout");
_Static_assert(sizeof(struct Memory) == 8 + BUF_LEN, "seed layout");

#endif
