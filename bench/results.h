/*
 * shmbus bench: what one run measured, as the driver (bench.c) collects it and the report
 * (report.c) prints it.
 */
#ifndef SHMBUS_BENCH_RESULTS_H
#define SHMBUS_BENCH_RESULTS_H

#include "internal.h"

enum bench_what { BENCH_LAT, BENCH_OPEN, BENCH_STREAM, BENCH_FANIN };

/* One measurement: a transport, a kind of run, a message size. */
struct bench_rec {
    const struct bench_transport *t;
    enum bench_what what;
    size_t size;
    int nprod;
    int ok;                               /* measured; else why says why not */
    char why[BENCH_WHY_LEN];              /* "skipped: ..." or "failed: ..." */
    uint64_t samples;                     /* round trips timed, or messages received */
    uint64_t median, p99, p999, max, min; /* ns (latency runs) */
    double mean;                          /* ns (latency runs) */
    double seconds;
    double rate; /* messages per second (streams) */
};

/* The hops of one ring run (ring.c): N processes passing one message around. */
struct bench_hops {
    int ok;
    char why[BENCH_WHY_LEN];
    uint64_t messages;
    uint64_t hop_median, hop_p99; /* ns */
    double seconds;
    double faults, switches; /* page faults and context switches per hop, all clients */
};

/* The Scale section for one number of clients: the shmbus ring and its floor, measured one
 * after the other. */
struct bench_scale {
    int clients;
    struct bench_hops bus;   /* shmbus_send() to shmbus_recv() returning */
    uint64_t segment_bytes;  /* the shmbus ring's bus */
    struct bench_hops floor; /* sem_post() to sem_clockwait() returning, nothing else */
};

/* What a bus costs in memory (issue 11), measured on buses the run creates and destroys. */
struct bench_memory {
    int ok; /* the segment sizes below were measured; else why */
    char why[BENCH_WHY_LEN];
    uint32_t clients;          /* of the two buses below: the default, 64 */
    uint64_t default_bytes;    /* segment of a bus with every option at its default */
    uint32_t default_msg;      /* its largest message (1 KiB) */
    uint64_t ring_bytes;       /* its ring per mailbox; the 64 KiB bus gets the same */
    uint64_t big_bytes;        /* segment of a bus for 64 KiB messages with that ring */
    uint64_t big_default_ring; /* shmbus_bus_size() of 64 KiB messages with the ring left to
                                * its default (sized for `slots` of them); 0: refused */
    int rss_ok;                /* the resident figures were measured; else rss_why */
    char rss_why[BENCH_WHY_LEN];
    uint32_t many_clients; /* 1024 */
    uint64_t many_bytes;   /* that bus's segment */
    uint64_t many_created; /* resident bytes right after shmbus_bus_open() created it */
    uint64_t many_scanned; /* resident after shmbus_bus_info() read every registry entry */
};

/* The classic three-client exchange. */
struct bench_classic {
    int ok;
    char why[BENCH_WHY_LEN];
    uint64_t messages;
    double seconds;
    double hop_us;    /* wall time per message */
    double cpu_us;    /* user + system CPU of all clients per message */
    double sem_op_us; /* measured sem_wait+sem_post pair on one semaphore, uncontended */
};

/* Named groups (groups.c): a group call against the same receivers served directly. */
struct bench_group_rate {
    int receivers; /* subscribers, or workers */
    int ok;
    char why[BENCH_WHY_LEN];
    double group_rate;  /* deliveries per second through the group call */
    double direct_rate; /* the same deliveries by shmbus_send() */
};

struct bench_failover {
    int kills;
    int ok;
    char why[BENCH_WHY_LEN];
    uint64_t p50, p99, max; /* ns from kill() to the successor's win */
};

#define BENCH_FANOUTS 3
struct bench_groups {
    int ran;
    struct bench_group_rate fanout[BENCH_FANOUTS]; /* 1, 4, 16 subscribers */
    struct bench_group_rate queue;                 /* two workers */
    struct bench_failover failover;
};

struct bench_machine {
    char cpu[128];
    char kernel[200];
    int online; /* CPUs online */
    int usable; /* CPUs this process may run on */
    int cpu_a, cpu_b;
    int pinned;
    double clock_ns; /* cost of one CLOCK_MONOTONIC read */
    const char *sanitizers;
    const char *compiler;
    char date[64];
};

#define BENCH_MAX_RECS  192 /* 108 measurements in a run with every row, issue 13 included */
#define BENCH_MAX_SCALE 4

struct bench_run {
    int quick;
    int json;
    struct bench_machine m;
    uint64_t open_rate;    /* round trips per second in the open-loop run */
    double open_seconds;   /* per open-loop measurement */
    double lat_seconds;    /* per closed-loop measurement */
    double stream_seconds; /* per stream round */
    int rounds;            /* closed-loop and stream figures: best of this many rounds */
    uint64_t warmup;
    int nrecs;
    struct bench_rec recs[BENCH_MAX_RECS];
    int nscale;
    struct bench_scale scale[BENCH_MAX_SCALE];
    struct bench_memory memory;
    struct bench_classic classic;
    struct bench_groups groups;
    double total_seconds;
};

/* The transport rows in report order, NULL-terminated (bench.c). */
extern const struct bench_transport *const bench_rows[];

void bench_report_table(FILE *f, const struct bench_run *r);
void bench_report_json(FILE *f, const struct bench_run *r);

/* Scale and the classic exchange (ring.c, classic.c): fill in the results, or why not. */
void bench_measure_scale(struct bench_run *r, const int *clients, int n,
                         void (*progress)(const char *));
/* The shmbus ring of s->clients clients on a fresh bus, hops in total (shmbus.c): fills in
 * s->bus and s->segment_bytes. */
void bench_sb_ring(struct bench_scale *s, uint64_t hops);
void bench_measure_classic(struct bench_run *r);
/* Memory (shmbus.c): segment sizes of a default bus and of one for 64 KiB messages, and the
 * resident pages of a 1024-client bus right after its creation. */
void bench_measure_memory(struct bench_run *r);
/* Named groups (groups.c): topic fan-out, work queue, failover. */
void bench_measure_groups(struct bench_run *r, void (*progress)(const char *));

#endif
