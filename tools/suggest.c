/*
 * suggest.c - the nearest command or option to a mistyped one (see suggest.h).
 *
 * Words here are short (a command, an option name), so the distance is the textbook dynamic
 * programme on a small fixed table; longer words are never a typo of ours and get no
 * suggestion.
 */
#include <stdio.h>
#include <string.h>

#include "suggest.h"

#define WORD_MAX 40

/* Optimal string alignment distance between a and b (both at most WORD_MAX bytes). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t d[WORD_MAX + 1][WORD_MAX + 1];

    for (i = 0; i <= la; i++)
        d[i][0] = i;
    for (j = 0; j <= lb; j++)
        d[0][j] = j;
    for (i = 1; i <= la; i++) {
        for (j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = d[i - 1][j] + 1;

            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

const char *sb_suggest(const char *word, const char *const *cands, size_t n)
{
    size_t len = strlen(word), best = (size_t)-1, i, dist;
    const char *found = NULL;
    int tie = 0;

    if (len == 0 || len > WORD_MAX)
        return NULL;
    for (i = 0; i < n; i++) {
        if (strlen(cands[i]) > WORD_MAX)
            continue;
        dist = distance(word, cands[i]);
        if (dist < best) {
            best = dist;
            found = cands[i];
            tie = 0;
        } else if (dist == best && strcmp(found, cands[i]) != 0) {
            tie = 1;
        }
    }
    if (found == NULL || tie || best == 0 || best > 1 + len / 3)
        return NULL;
    return found;
}

const char *sb_suggest_option(const char *arg, const char *usage, char *buf, size_t size)
{
    char word[WORD_MAX + 1], names[32][WORD_MAX + 1];
    const char *cands[32], *p, *hit;
    size_t n = 0, len, k;

    if (strncmp(arg, "--", 2) != 0)
        return NULL;
    arg += 2;
    len = strcspn(arg, "=");
    if (len == 0 || len > WORD_MAX)
        return NULL;
    memcpy(word, arg, len);
    word[len] = '\0';
    /* Every "--name" in the usage text, once each. */
    for (p = strstr(usage, "--"); p != NULL && n < 32; p = strstr(p + 2, "--")) {
        len = strspn(p + 2, "abcdefghijklmnopqrstuvwxyz0123456789-");
        if (len == 0 || len > WORD_MAX)
            continue;
        memcpy(names[n], p + 2, len);
        names[n][len] = '\0';
        for (k = 0; k < n && strcmp(names[k], names[n]) != 0; k++)
            ;
        if (k == n) {
            cands[n] = names[n];
            n++;
        }
    }
    hit = sb_suggest(word, cands, n);
    if (hit == NULL)
        return NULL;
    snprintf(buf, size, "--%s", hit);
    return buf;
}
