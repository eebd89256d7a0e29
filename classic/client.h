/*
 * client.h: the seed's shared constants and the one structure the three clients map.
 *
 * Design notes
 * - Names, values and the byte layout of struct Memory are the seed's, unchanged: a client
 *   that behaves as the seed's own (tests/classic_seedclient.cpp, C++) maps the same segment
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

#define BUF_LEN 1024
#ifndef NUM_MESSAGES    /* a test may build a seed-like client with fewer one-second rounds */
#define NUM_MESSAGES 30 /* per client: the exchange carries 3 * NUM_MESSAGES messages */
#endif

struct Memory {
    int packet_no;               /* sequence number; ours write it, the seed's clients never do */
    unsigned short srcClientNo;  /* 1, 2 or 3 */
    unsigned short destClientNo; /* 1, 2 or 3; 0 before the exchange starts */
    char message[BUF_LEN];       /* NUL-terminated text */
};

/* The seed's header is included by C++ clients too (tests/classic_seedclient.cpp, like the
 * seed's client1.cpp): static_assert there (C++11, what the seed asks for; older C++ goes
 * without the checks), _Static_assert in C11. */
#if !defined(__cplusplus) || __cplusplus >= 201103L
#ifdef __cplusplus
#define CLASSIC_LAYOUT_ASSERT static_assert
#else
#define CLASSIC_LAYOUT_ASSERT _Static_assert
#endif
CLASSIC_LAYOUT_ASSERT(offsetof(struct Memory, packet_no) == 0, "seed layout");
CLASSIC_LAYOUT_ASSERT(offsetof(struct Memory, srcClientNo) == 4, "seed layout");
CLASSIC_LAYOUT_ASSERT(offsetof(struct Memory, destClientNo) == 6, "seed layout");
CLASSIC_LAYOUT_ASSERT(offsetof(struct Memory, message) == 8, "seed layout");
CLASSIC_LAYOUT_ASSERT(sizeof(struct Memory) == 8 + BUF_LEN, "seed layout");
#endif

#endif
