/*
 * cmd_bus.c - `shmbus create` and `shmbus destroy`: make a bus with chosen sizes, remove one.
 *
 * create refuses an existing bus (SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL): a script that creates a
 * bus must know it got a fresh one, not somebody else's with other sizes.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools.h"

static const char create_usage[] =
    "Usage: shmbus create BUS [--clients N] [--slots S] [--msg-size B] [--ring-bytes R]\n"
    "                         [--mode MODE] [--durable DIR [--sync none|batch|always]\n"
    "                         [--retain SIZE|TIME] [--compact SIZE]]\n"
    "Create the bus BUS; fails if it exists.\n"
    "  -c, --clients N    client ids 1..N (default 64, at most 4096)\n"
    "  -s, --slots S      size the default mailbox ring for about S messages of the largest\n"
    "                     size: a power of two from 2 to 1048576 (default 256)\n"
    "  -m, --msg-size B   largest message in bytes (default 1024, at most 1048576)\n"
    "  -r, --ring-bytes R each mailbox's ring in bytes, instead of --slots: a power of two,\n"
    "                     with room for two messages of the largest size (a message takes\n"
    "                     48 + its length bytes, rounded up to 64)\n"
    "      --mode MODE    0600 (owner only, the default) or 0660 (group too)\n"
    "      --durable DIR  keep every accepted message in a journal under DIR until it is\n"
    "                     taken; if DIR holds this bus's journal (after a reboot, or after\n"
    "                     every process died and the bus was removed), rebuild the bus from\n"
    "                     it: what was not taken waits for the next client of its id\n"
    "      --sync LEVEL   none (the default: survives any process dying, not a power cut),\n"
    "                     batch (flushed to disk every few ms; sends with the sync flag\n"
    "                     wait for it), always (on disk before each send returns)\n"
    "      --retain SIZE|TIME  keep taken messages in the journal, the newest SIZE (64K,\n"
    "                     10M, 2G) or those of the last TIME (30s, 5min, 2h, 7d), for\n"
    "                     shmbus replay (default: taken messages are deleted)\n"
    "      --compact SIZE compact the journal when it grows past SIZE (default 64M)\n"
    "  -h, --help         this text, and the size of a bus with the options given before\n";

int sb_cmd_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"clients", required_argument, NULL, 'c'},
        {"slots", required_argument, NULL, 's'},
        {"msg-size", required_argument, NULL, 'm'},
        {"mode", required_argument, NULL, 'M'},
        {"ring-bytes", required_argument, NULL, 'r'},
        {"durable", required_argument, NULL, 'D'},
        {"sync", required_argument, NULL, 'S'},
        {"retain", required_argument, NULL, 'R'},
        {"compact", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct shmbus_bus_opts bo;
    shmbus_bus *bus;
    const char *name, *why;
    char *end;
    long mode;
    ssize_t size;
    int c, rc, help = 0;
    const char *durable = NULL, *sync = NULL, *retain = NULL, *compact = NULL;
    struct shmbus_durable dur = {NULL, SHMBUS_SYNC_NONE, 0, 0, 0};
    char dirbuf[SHMBUS_JOURNAL_DIR_MAX + 2];

    memset(&bo, 0, sizeof(bo));
    while ((c = getopt_long(argc, argv, ":c:s:m:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (sb_parse_u32(optarg, 1, SHMBUS_MAX_CLIENTS, &bo.max_clients) < 0)
                return sb_bad_usage("create", create_usage, "--clients: 1..%d, not '%s'",
                                    SHMBUS_MAX_CLIENTS, optarg);
            break;
        case 's':
            if (sb_parse_u32(optarg, 2, SHMBUS_MAX_SLOTS, &bo.slots) < 0 ||
                (bo.slots & (bo.slots - 1)) != 0)
                return sb_bad_usage("create", create_usage,
                                    "--slots: a power of two from 2 to %d, not '%s'",
                                    SHMBUS_MAX_SLOTS, optarg);
            break;
        case 'm':
            if (sb_parse_u32(optarg, 1, SHMBUS_MAX_MSG_SIZE, &bo.msg_size) < 0)
                return sb_bad_usage("create", create_usage, "--msg-size: 1..%d, not '%s'",
                                    SHMBUS_MAX_MSG_SIZE, optarg);
            break;
        case 'r':
            if (sb_parse_u64(optarg, 128, UINT64_MAX, &bo.ring_bytes) < 0 ||
                (bo.ring_bytes & (bo.ring_bytes - 1)) != 0)
                return sb_bad_usage("create", create_usage,
                                    "--ring-bytes: a power of two from 128, not '%s'", optarg);
            break;
        case 'M':
            mode = strtol(optarg, &end, 8);
            if (*optarg == '\0' || *end != '\0' || (mode != 0600 && mode != 0660))
                return sb_bad_usage("create", create_usage, "--mode: 0600 or 0660, not '%s'",
                                    optarg);
            bo.mode = (uint32_t)mode;
            break;
        case 'D':
            durable = optarg;
            break;
        case 'S':
            sync = optarg;
            if (strcmp(sync, "none") == 0)
                dur.sync = SHMBUS_SYNC_NONE;
            else if (strcmp(sync, "batch") == 0)
                dur.sync = SHMBUS_SYNC_BATCH;
            else if (strcmp(sync, "always") == 0)
                dur.sync = SHMBUS_SYNC_ALWAYS;
            else
                return sb_bad_usage("create", create_usage,
                                    "--sync: none, batch or always, not '%s'", sync);
            break;
        case 'R':
            retain = optarg;
            if (sb_parse_duration(optarg, &dur.retain_ns) < 0 &&
                sb_parse_size(optarg, &dur.retain_bytes) < 0)
                return sb_bad_usage("create", create_usage,
                                    "--retain: a size (64K, 10M, 2G) or a duration (30s, 5min, "
                                    "2h, 7d), not '%s'",
                                    optarg);
            break;
        case 'C':
            compact = optarg;
            if (sb_parse_size(optarg, &dur.compact_bytes) < 0 || dur.compact_bytes < 4096)
                return sb_bad_usage("create", create_usage,
                                    "--compact: a size of at least 4K, not '%s'", optarg);
            break;
        case 'h':
            help = 1;
            break;
        default:
            return sb_getopt_error("create", create_usage, c, argv);
        }
    }
    /* The library's rule for the ring (room for two of the largest messages, at most its
     * limit), said in the option's words. */
    if (bo.ring_bytes != 0 && shmbus_bus_size(&bo) == -EINVAL)
        return sb_bad_usage("create", create_usage,
                            "--ring-bytes: %llu bytes does not hold two messages of %u bytes "
                            "(or is over the limit)",
                            (unsigned long long)bo.ring_bytes,
                            bo.msg_size ? bo.msg_size : SHMBUS_DEFAULT_MSG_SIZE);
    if (help) {
        /* The size for the options given with --help (the defaults without any). */
        size = shmbus_bus_size(&bo);
        sb_usage(create_usage, 0);
        if (size > 0)
            printf("With these options a bus takes %zd bytes (%.1f MiB) of shared memory.\n", size,
                   (double)size / 1048576.0);
        return SB_EXIT_OK;
    }
    if (argc - optind != 1)
        return sb_bad_usage("create", create_usage,
                            argc - optind == 0 ? "no bus name given" : "one bus name only");
    name = argv[optind];
    if ((why = sb_bad_name(name)) != NULL)
        return sb_bad_usage("create", create_usage, "'%s': %s", name, why);

    if ((sync != NULL || retain != NULL || compact != NULL) && durable == NULL)
        return sb_bad_usage("create", create_usage, "--%s needs --durable DIR",
                            sync != NULL     ? "sync"
                            : retain != NULL ? "retain"
                                             : "compact");
    if (durable != NULL) {
        /* The segment records the directory for every later opener: make it absolute. */
        char cwd[SHMBUS_JOURNAL_DIR_MAX + 1];
        int n = -1;
        if (durable[0] == '/')
            n = snprintf(dirbuf, sizeof(dirbuf), "%s", durable);
        else if (getcwd(cwd, sizeof(cwd)) != NULL)
            n = snprintf(dirbuf, sizeof(dirbuf), "%s/%s", cwd, durable);
        if (durable[0] == '\0' || n < 0 || n > SHMBUS_JOURNAL_DIR_MAX)
            return sb_bad_usage("create", create_usage,
                                "--durable: a directory path of at most %d bytes, not '%s'",
                                SHMBUS_JOURNAL_DIR_MAX, durable);
        dur.dir = dirbuf;
    }

    size = shmbus_bus_size(&bo);
    if (size == -EFBIG) {
        sb_errf("create %s", name,
                "the bus would be over the %llu GiB limit (clients x mailbox ring: "
                "lower one of them)",
                (unsigned long long)(SHMBUS_MAX_BUS_SIZE >> 30));
        return SB_EXIT_FAIL;
    }
    if (durable != NULL)
        rc = shmbus_bus_open_durable(name, &bo, &dur, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &bus);
    else
        rc = shmbus_bus_open(name, &bo, SHMBUS_OPEN_CREATE | SHMBUS_OPEN_EXCL, &bus);
    if (durable != NULL && (rc == -EPROTO || rc == -EPROTONOSUPPORT)) {
        sb_errf("create %s", name, "journal in %s: %s", dur.dir,
                rc == -EPROTO ? "not a journal of this bus (another bus's, or damaged "
                                "header); left untouched"
                              : "written in another journal format version; left untouched");
        return SB_EXIT_FAIL;
    }
    if (durable != NULL && rc == -EACCES) {
        sb_errf("create %s", name,
                "journal in %s: permission denied (the directory must be yours, and not "
                "writable by group or others)",
                dur.dir);
        return SB_EXIT_FAIL;
    }
    if (durable != NULL && rc < 0 && rc != -EEXIST) {
        sb_errf("create %s", name, "journal in %s: %s", dur.dir, shmbus_strerror(rc));
        return SB_EXIT_FAIL;
    }
    if ((rc == -ENOMEM || rc == -ENOSPC || rc == -EINVAL) && size > 0) {
        /* Most likely the segment is over kernel.shmmax/shmall: say how large it is. */
        sb_errf("create %s", name, "%s (the bus needs %zd bytes; see sysctl kernel.shmmax)",
                shmbus_strerror(rc), size);
        return SB_EXIT_FAIL;
    }
    if (rc < 0) {
        sb_errf("create %s", name, "%s", rc == -EEXIST ? "bus exists" : shmbus_strerror(rc));
        return SB_EXIT_FAIL;
    }
    struct shmbus_journal_stats js;
    if (shmbus_journal_stats(bus, &js) == 0 && js.durable &&
        (js.rebuilt || js.deferred || js.damaged || js.torn))
        /* What the rebuild found, on stderr: stdout stays empty as for any create. */
        fprintf(stderr,
                "shmbus: create %s: rebuilt from %s: %llu messages waiting, %llu left in the "
                "journal (mailbox full), %llu damaged and %llu torn records skipped\n",
                name, js.dir, (unsigned long long)js.rebuilt, (unsigned long long)js.deferred,
                (unsigned long long)js.damaged, (unsigned long long)js.torn);
    shmbus_bus_close(bus);
    return SB_EXIT_OK;
}

static const char destroy_usage[] =
    "Usage: shmbus destroy [--force] BUS...\n"
    "Remove each bus: its segment and key file. Processes still attached keep working on it\n"
    "until they detach; their calls then fail.\n"
    "  -f, --force  remove whatever you own under the name, recognisable or not: the segment\n"
    "               the key file names (a corrupt bus, or anything else of yours), the key\n"
    "               file whatever it is, and half-made segments of that bus; each is printed\n"
    "               (\"removing KIND WHAT: WHY\") before it is removed\n"
    "  -h, --help   this text\n";

static void say_removing(const char *kind, const char *what, const char *why, void *arg)
{
    (void)arg;
    printf("removing %s %s: %s\n", kind, what, why);
    fflush(stdout);
}

int sb_cmd_destroy(int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *why;
    int c, i, rc, force = 0, status = SB_EXIT_OK;

    while ((c = getopt_long(argc, argv, ":fh", opts, NULL)) != -1) {
        if (c == 'h')
            return sb_usage(destroy_usage, 0);
        if (c == 'f') {
            force = 1;
            continue;
        }
        return sb_getopt_error("destroy", destroy_usage, c, argv);
    }
    if (optind == argc)
        return sb_bad_usage("destroy", destroy_usage, "no bus name given");
    for (i = optind; i < argc; i++)
        if ((why = sb_bad_name(argv[i])) != NULL)
            return sb_bad_usage("destroy", destroy_usage, "'%s': %s", argv[i], why);
    for (i = optind; i < argc; i++) {
        rc = force ? shmbus_bus_destroy_force(argv[i], say_removing, NULL)
                   : shmbus_bus_destroy(argv[i]);
        if (rc == -ENOENT) {
            sb_errf("destroy %s", argv[i], "no such bus");
            status = SB_EXIT_FAIL;
        } else if (rc < 0 && !force &&
                   (rc == -EPROTO || rc == -EBADMSG || rc == -EUCLEAN || rc == -EPROTONOSUPPORT)) {
            sb_errf("destroy %s", argv[i], "%s; left as it is (remove it with --force)",
                    shmbus_strerror(rc));
            status = SB_EXIT_FAIL;
        } else if (rc < 0) {
            sb_errf("destroy %s", argv[i], "%s", shmbus_strerror(rc));
            status = SB_EXIT_FAIL;
        }
    }
    return status;
}
