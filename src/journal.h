/*
 * journal.h - the journal file format of durable buses (journal.c), for the library, its
 * tests and the fuzz target. All fields are little-endian (the machine's: a journal is read
 * on the machine that wrote it) and packed without holes.
 */
#ifndef SHMBUS_JOURNAL_H
#define SHMBUS_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SB_JFILE_MAGIC   "SBJOURNL"
#define SB_JFILE_VERSION 2u          /* 2: TAKEN markers cover runs (rest) */
#define SB_JREC_MAGIC    0x52424a53u /* "SJBR" */

enum { SB_JREC_MSG = 1, SB_JREC_TAKEN = 2, SB_JREC_CANCEL = 3 };

/* The file header: 128 bytes at offset 0. */
struct sb_jfile_hdr {
    char magic[8];        /* SB_JFILE_MAGIC */
    uint32_t version;     /* SB_JFILE_VERSION */
    uint32_t header_size; /* sizeof(struct sb_jfile_hdr) */
    uint64_t jid;         /* the journal's identity, the same in every file of one bus */
    uint64_t epoch;       /* the number in the file's name */
    uint64_t created_ns;  /* CLOCK_REALTIME */
    char bus[32];         /* the bus's name, NUL-terminated */
    uint8_t pad[52];
    uint32_t crc; /* CRC32C of the 124 bytes before it */
};
_Static_assert(sizeof(struct sb_jfile_hdr) == 128, "journal file header is 128 bytes");

/* A record: this header, then `size - 56` payload bytes (MSG only), then zeroes up to a
 * multiple of 8. TAKEN and CANCEL name a MSG by (src, src_gen, seq) (TAKEN: a run of them,
 * see rest); dst is the taker. */
struct sb_jrec {
    uint32_t magic; /* SB_JREC_MAGIC */
    uint32_t size;  /* 56 + payload length */
    uint32_t crc;   /* CRC32C of bytes 12..size (the fields below and the payload) */
    uint8_t type;   /* SB_JREC_* */
    uint8_t prio;
    uint8_t flags; /* SHMBUS_MSG_* */
    uint8_t pad;
    uint32_t src;
    uint32_t src_gen;
    uint32_t dst;
    uint32_t rest; /* MSG: records of the same write that follow this one (a batch is kept
                    * whole or not at all: a write cut short loses all of it). TAKEN: the
                    * marker covers a run: seq, seq + 1, ..., seq + rest of (src, src_gen)
                    * (one marker per run of a receive batch, format 2). CANCEL: a run
                    * too (the messages of a send batch that were never placed). */
    uint64_t seq;
    uint64_t corr;
    uint64_t time_ns; /* CLOCK_REALTIME when written */
};
_Static_assert(sizeof(struct sb_jrec) == 56, "journal record header is 56 bytes");

/* What a parse found. */
struct sb_jscan {
    uint64_t records;       /* good records */
    uint64_t damaged;       /* whole records with a bad CRC, skipped */
    uint64_t torn;          /* records cut short (in the middle, or at the tail) */
    uint64_t skipped_bytes; /* bytes skipped between good records */
    uint64_t tail_cut;      /* bytes of a torn tail */
    size_t good_end;        /* end of the last good record */
};

uint32_t sb__crc32c(uint32_t crc, const void *data, size_t len);
/* The same CRC by the table alone, and whether sb__crc32c() uses the SSE4.2 instruction
 * (the CPU has it and SHMBUS_CRC32C_TABLE is not set in the environment). */
uint32_t sb__crc32c_table(uint32_t crc, const void *data, size_t len);
bool sb__crc32c_hw(void);
/* Check a file header (buf holds len bytes of the file): 0, -EPROTO (not a journal, a bad
 * CRC, or bus != NULL and another bus's), -EPROTONOSUPPORT (another format version). */
int sb__jfile_check(const void *buf, size_t len, const char *bus, struct sb_jfile_hdr *out);
/* Walk the records after the header of a journal of len bytes: fn (may be NULL) for each
 * good one, in file order, with its payload; damage is counted in *st. Never fails. */
typedef void (*sb__jrec_fn)(const struct sb_jrec *r, const uint8_t *payload, size_t off, void *arg);
int sb__journal_parse(const uint8_t *buf, size_t len, sb__jrec_fn fn, void *arg,
                      struct sb_jscan *st);
/* Read file (relative to dirfd) into a malloc'd buffer. */
int sb__journal_read(int dirfd, const char *file, uint8_t **out, size_t *len);

#endif
