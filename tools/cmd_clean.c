/*
 * cmd_clean.c - `shmbus clean [--dry-run]`: remove this user's stale shmbus objects.
 *
 * The deciding is the library's (shmbus_clean: what is stale, and never a live bus or a
 * segment that is not ours); this prints one line per object it found.
 */
#include <getopt.h>
#include <string.h>

#include "tools.h"

static const char clean_usage[] =
    "Usage: shmbus clean [--dry-run] [--json]\n"
    "Remove this user's stale shmbus objects: buses whose clients all died, bus segments\n"
    "that no key file names and nobody uses (their creator died while making them, or their\n"
    "folder was wiped), key files without a segment, dead clients of buses in use. Live and\n"
    "idle buses are left alone, and so is anything not recognisable as a bus (see `shmbus\n"
    "destroy --force`). Prints one line per object:\n"
    "    removed|stale KIND WHAT: WHY\n"
    "  -n, --dry-run   only list what would be removed\n"
    "  -j, --json      one JSON object per line: {\"kind\", \"what\", \"why\", \"removed\"}\n"
    "  -h, --help      this text\n";

struct clean_out {
    int dry_run, json;
};

static void print_found(const char *kind, const char *what, const char *why, void *arg)
{
    const struct clean_out *o = arg;

    if (o->json) {
        fputs("{\"kind\":", stdout);
        sb_json_str(stdout, kind, strlen(kind));
        fputs(",\"what\":", stdout);
        sb_json_str(stdout, what, strlen(what));
        fputs(",\"why\":", stdout);
        sb_json_str(stdout, why, strlen(why));
        printf(",\"removed\":%s}\n", o->dry_run ? "false" : "true");
    } else {
        printf("%s %s %s: %s\n", o->dry_run ? "stale" : "removed", kind, what, why);
    }
}

int sb_cmd_clean(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dry-run", no_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct clean_out o = {0, 0};
    int c, rc;

    while ((c = getopt_long(argc, argv, ":njh", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            o.dry_run = 1;
            break;
        case 'j':
            o.json = 1;
            break;
        case 'h':
            return sb_usage(clean_usage, 0);
        default:
            return sb_getopt_error("clean", clean_usage, c, argv);
        }
    }
    if (optind != argc)
        return sb_bad_usage("clean", clean_usage, "unexpected argument '%s'", argv[optind]);
    rc = shmbus_clean(o.dry_run, print_found, &o);
    fflush(stdout);
    if (rc < 0) {
        sb_err("clean", "%s", shmbus_strerror(rc));
        return SB_EXIT_FAIL;
    }
    return SB_EXIT_OK;
}
