/*
 * json.h - the one JSON string escaper, for the shmbus command (ls, stat, clean, recv),
 * its web monitor and the benchmark's report.
 *
 * Header-only on purpose: the tools, the bench (its own library) and the monitor's render
 * test (which compiles tools/monitor_render.c by itself) all use it without a link rule
 * between them, and no copy can drift from another.
 *
 * The rule: '"' and '\' get a backslash; newline, tab, carriage return, backspace and form
 * feed their short escapes (\n \t \r \b \f); every other byte below 0x20, and 0x7f, is \u00XX;
 * a byte from 0x80 up is kept when it starts a valid UTF-8 sequence and `utf8` is set (the
 * sequence is copied whole), otherwise written as \u00XX (the code point of the same
 * number). So the output is always valid JSON, and with utf8 == 0 it is plain ASCII (the
 * monitor serves names from a segment a peer may have scribbled).
 *
 * Escaping is lossless only for valid UTF-8 (a lone 0xff byte becomes U+00FF, which reads
 * back as two bytes). Bytes that are not valid UTF-8 go out as base64 instead:
 * sb_json_payload() writes a "data" member when the bytes are valid UTF-8 and a
 * "data_base64" member otherwise, so any payload round-trips.
 */
#ifndef SHMBUS_TOOLS_JSON_H
#define SHMBUS_TOOLS_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef void (*sb_json_put_fn)(void *ctx, const char *s, size_t n);

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if there is none. */
static inline size_t sb_json_utf8_len(const unsigned char *s, size_t n)
{
    size_t len, i;
    uint32_t cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and code points past U+10FFFF are not valid UTF-8. */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Write s (len bytes) as a JSON string, quotes included, through put(ctx, ...). */
static inline void sb_json_escape(const char *str, size_t len, int utf8, sb_json_put_fn put,
                                  void *ctx)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, n;

    put(ctx, "\"", 1);
    while (i < len) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(ctx, esc, 2);
            i++;
        } else if (c == '\n' || c == '\t' || c == '\r' || c == '\b' || c == '\f') {
            char esc[2] = {'\\', c == '\n'   ? 'n'
                                 : c == '\t' ? 't'
                                 : c == '\r' ? 'r'
                                 : c == '\b' ? 'b'
                                             : 'f'};
            put(ctx, esc, 2);
            i++;
        } else if (c >= 0x20 && c < 0x7f) {
            /* A run of plain bytes in one call. */
            n = 1;
            while (i + n < len && s[i + n] >= 0x20 && s[i + n] < 0x7f && s[i + n] != '"' &&
                   s[i + n] != '\\')
                n++;
            put(ctx, str + i, n);
            i += n;
        } else if (c >= 0x80 && utf8 && (n = sb_json_utf8_len(s + i, len - i)) > 0) {
            put(ctx, str + i, n);
            i += n;
        } else {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(ctx, u, 6);
            i++;
        }
    }
    put(ctx, "\"", 1);
}

/* Is s (len bytes) valid UTF-8 throughout? */
static inline int sb_json_is_utf8(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, n;

    while (i < len) {
        n = sb_json_utf8_len(s + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* Write s (len bytes) as a quoted base64 string (RFC 4648, with padding). */
static inline void sb_json_base64(const char *str, size_t len, sb_json_put_fn put, void *ctx)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = (const unsigned char *)str;
    char out[4];
    size_t i;

    put(ctx, "\"", 1);
    for (i = 0; i + 2 < len; i += 3) {
        out[0] = b64[s[i] >> 2];
        out[1] = b64[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
        out[2] = b64[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
        out[3] = b64[s[i + 2] & 63];
        put(ctx, out, 4);
    }
    if (len - i == 1) {
        out[0] = b64[s[i] >> 2];
        out[1] = b64[(s[i] & 3) << 4];
        out[2] = out[3] = '=';
        put(ctx, out, 4);
    } else if (len - i == 2) {
        out[0] = b64[s[i] >> 2];
        out[1] = b64[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
        out[2] = b64[(s[i + 1] & 15) << 2];
        out[3] = '=';
        put(ctx, out, 4);
    }
    put(ctx, "\"", 1);
}

/* A payload as one JSON member: "data":"..." (valid UTF-8, escaped) or "data_base64":"..."
 * (anything else), so that any bytes round-trip. */
static inline void sb_json_payload(const char *str, size_t len, sb_json_put_fn put, void *ctx)
{
    if (sb_json_is_utf8(str, len)) {
        put(ctx, "\"data\":", 7);
        sb_json_escape(str, len, 1, put, ctx);
    } else {
        put(ctx, "\"data_base64\":", 14);
        sb_json_base64(str, len, put, ctx);
    }
}

static inline void sb_json_put_file(void *ctx, const char *s, size_t n)
{
    fwrite(s, 1, n, (FILE *)ctx);
}

#endif
