/*
 * suggest.h - "did you mean ...?" for mistyped commands and options: the nearest candidate
 * by edit distance. Used by the shmbus command (tools/shmbus.c, tools/util.c) and by
 * shmbus-monitor (tools/monitor.c), which links only this and its own files.
 */
#ifndef SHMBUS_TOOLS_SUGGEST_H
#define SHMBUS_TOOLS_SUGGEST_H

#include <stddef.h>

/* The candidate nearest to `word` (optimal string alignment distance: insertions, deletions,
 * substitutions and swaps of two neighbours cost 1), or NULL if even the nearest is too far
 * to be a typo (more than 1 + strlen(word) / 3 edits) or two are equally near. */
const char *sb_suggest(const char *word, const char *const *cands, size_t n);

/* The same for a mistyped long option `arg` ("--jsno", "--jsno=1"), the candidates being
 * the long options ("--json") a usage text names: writes the nearest, with its dashes, into
 * buf and returns buf, or returns NULL. */
const char *sb_suggest_option(const char *arg, const char *usage, char *buf, size_t size);

#endif
