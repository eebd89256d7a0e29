/*
 * fuzz_journal: libFuzzer target for journal files (durable buses, src/journal.c). A
 * journal on disk is hostile input: a power cut, a full disk, a bad sector or a person
 * can leave anything there. Reading it must never crash, hang, read out of bounds, or
 * deliver a message whose record failed its checks.
 *
 * Each input is a journal file's contents. The first byte chooses how it is used:
 *   bit 0 clear: a valid header for bus "fj" is written first, then the rest of the input,
 *                so that the fuzzer spends its time on records;
 *   bit 0 set:   the rest of the input is the whole file (header included).
 * It is written as <dir>/fj.0000000000000001.jnl, then:
 *   - sb__journal_parse() walks it (every record the callback sees must pass the checks
 *     the rebuild relies on: its size in bounds, its CRC right);
 *   - shmbus_bus_open_durable() rebuilds a bus from it (or refuses the header with -EPROTO
 *     or -EPROTONOSUPPORT, the only errors allowed), every client id joins and takes what
 *     was rebuilt, and every payload taken must be one that a good record held;
 *   - the bus is destroyed and the directory emptied;
 *   - then, if the header was good, its records are appended to the file in use of a new
 *     bus (a hostile writer) that compacts every 4 KiB, and messages are sent and taken
 *     until a compaction has read them (snap_scan() in journal.c): no crash, and every
 *     message sent comes back as it was sent.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmbus.h"
#include "../src/journal.h"

static char dir[256];
static char file[512];

static void empty_dir(void)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
}

static void at_exit(void)
{
    shmbus_bus_destroy_force("fj", NULL, NULL);
    empty_dir();
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *t = getenv("TEST_TMPDIR");
    snprintf(dir, sizeof(dir), "%s/fuzz-journal-%d", t && t[0] == '/' ? t : "/tmp", (int)getpid());
    mkdir(dir, 0700);
    snprintf(file, sizeof(file), "%s/fj.0000000000000001.jnl", dir);
    atexit(at_exit);
    return 0;
}

/* The good records' payloads, to check what a receive returns against. */
struct seen {
    const uint8_t *p[4096];
    uint32_t len[4096];
    size_t n;
};

static void on_rec(const struct sb_jrec *r, const uint8_t *payload, size_t off, void *arg)
{
    (void)off;
    struct seen *s = arg;
    if (r->size < sizeof(*r) || r->size > sizeof(*r) + SHMBUS_MAX_MSG_SIZE)
        abort();
    uint32_t crc = sb__crc32c(0, (const uint8_t *)r + 12, sizeof(*r) - 12);
    if (sb__crc32c(crc, payload, r->size - sizeof(*r)) != r->crc)
        abort();
    if (r->type == SB_JREC_MSG && s->n < 4096) {
        s->p[s->n] = payload;
        s->len[s->n++] = r->size - (uint32_t)sizeof(*r);
    }
}

/* The records recs[0..n) appended by a hostile writer to a running bus's journal, then read
 * by its compaction. */
static void compact_hostile(const uint8_t *recs, size_t n)
{
    struct shmbus_bus_opts o = {.max_clients = 4, .msg_size = 256, .ring_bytes = 4096};
    struct shmbus_durable dur = {.dir = dir, .sync = SHMBUS_SYNC_NONE, .compact_bytes = 4096};
    shmbus_bus *b = NULL;
    if (shmbus_bus_open_durable("fj", &o, &dur, SHMBUS_OPEN_CREATE, &b) < 0)
        abort();
    shmbus_client *tx, *rx;
    if (shmbus_join(b, 1, NULL, &tx) < 0 || shmbus_join(b, 2, NULL, &rx) < 0)
        abort();
    int fd = open(file, O_WRONLY | O_APPEND);
    if (fd < 0 || write(fd, recs, n) != (ssize_t)n)
        abort();
    close(fd);
    struct shmbus_journal_stats js = {0};
    for (int i = 0; i < 64 && js.compactions == 0; i++) {
        uint8_t m[200], got[256];
        memset(m, 'a' + i % 26, sizeof(m));
        if (shmbus_send(tx, 2, m, sizeof(m), 0, 0) < 0)
            abort();
        if (shmbus_recv(rx, NULL, got, sizeof(got), 0) != (int)sizeof(m) ||
            memcmp(got, m, sizeof(m)) != 0)
            abort();
        if (shmbus_journal_stats(b, &js) < 0)
            abort();
    }
    shmbus_leave(rx);
    shmbus_leave(tx);
    shmbus_bus_close(b);
    shmbus_bus_destroy_force("fj", NULL, NULL);
    empty_dir();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t blen = size - 1 + (data[0] & 1 ? 0 : sizeof(struct sb_jfile_hdr));
    uint8_t *buf = malloc(blen + 1);
    if (buf == NULL)
        return 0;
    size_t at = 0;
    if (!(data[0] & 1)) {
        struct sb_jfile_hdr h;
        memset(&h, 0, sizeof(h));
        memcpy(h.magic, SB_JFILE_MAGIC, sizeof(h.magic));
        h.version = SB_JFILE_VERSION;
        h.header_size = sizeof(h);
        h.jid = 0x1234567;
        h.epoch = 1;
        snprintf(h.bus, sizeof(h.bus), "fj");
        h.crc = sb__crc32c(0, &h, offsetof(struct sb_jfile_hdr, crc));
        memcpy(buf, &h, sizeof(h));
        at = sizeof(h);
    }
    memcpy(buf + at, data + 1, size - 1);

    struct seen s = {.n = 0};
    struct sb_jscan st;
    if (sb__jfile_check(buf, blen, "fj", NULL) == 0)
        sb__journal_parse(buf, blen, on_rec, &s, &st);

    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, buf, blen) != (ssize_t)blen)
        abort();
    close(fd);

    struct shmbus_bus_opts o = {.max_clients = 4, .msg_size = 256, .ring_bytes = 4096};
    struct shmbus_durable dur = {.dir = dir, .sync = SHMBUS_SYNC_NONE};
    shmbus_bus *b = NULL;
    int r = shmbus_bus_open_durable("fj", &o, &dur, SHMBUS_OPEN_CREATE, &b);
    if (r < 0 && r != -EPROTO && r != -EPROTONOSUPPORT)
        abort();
    if (b != NULL) {
        for (uint32_t id = 1; id <= 4; id++) {
            shmbus_client *c;
            if (shmbus_join(b, id, NULL, &c) < 0)
                abort();
            uint8_t m[256];
            struct shmbus_msg h;
            int n;
            while ((n = shmbus_recv(c, &h, m, sizeof(m), 0)) >= 0) {
                bool found = false;
                for (size_t k = 0; k < s.n && !found; k++)
                    found = s.len[k] == (uint32_t)n && memcmp(s.p[k], m, (size_t)n) == 0;
                if (!found)
                    abort(); /* delivered something no good record held */
            }
            if (n != -EAGAIN)
                abort();
            shmbus_leave(c);
        }
        shmbus_bus_close(b);
    }
    shmbus_bus_destroy_force("fj", NULL, NULL);
    empty_dir();
    if (blen > sizeof(struct sb_jfile_hdr) && sb__jfile_check(buf, blen, "fj", NULL) == 0)
        compact_hostile(buf + sizeof(struct sb_jfile_hdr), blen - sizeof(struct sb_jfile_hdr));
    free(buf);
    return 0;
}
