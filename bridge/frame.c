/*
 * frame.c - addresses and NATS frames of shmbus-bridge (the format is in frame.h).
 *
 * Pure functions over byte strings: no state, no allocation, safe from any thread.
 */
#include "frame.h"

#include <errno.h>
#include <string.h>

static int is_node_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-';
}

int frame_node_ok(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > NODE_MAX)
        return 0;
    for (i = 0; i < len; i++)
        if (!is_node_char(s[i]))
            return 0;
    return 1;
}

/* A client name as the library takes it ([A-Za-z0-9._-], not "." or ".."), or "#ID". */
int frame_name_ok(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > 31)
        return 0;
    if (s[0] == '#') {
        if (len < 2 || len > 5) /* ids are at most SHMBUS_MAX_CLIENTS (4096) */
            return 0;
        for (i = 1; i < len; i++)
            if (s[i] < '0' || s[i] > '9')
                return 0;
        return 1;
    }
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return 0;
    for (i = 0; i < len; i++)
        if (!is_node_char(s[i]) && s[i] != '.')
            return 0;
    return 1;
}

int frame_group_ok(const char *s, size_t len)
{
    size_t i;

    if (!frame_name_ok(s, len) || s[0] == '#' || s[0] == '.' || s[len - 1] == '.')
        return 0;
    for (i = 1; i < len; i++)
        if (s[i] == '.' && s[i - 1] == '.')
            return 0;
    return 1;
}

int frame_split(const char *p, size_t len, const char **node, size_t *node_len, const char **target,
                size_t *target_len, const char **body, size_t *body_len)
{
    const char *sp = memchr(p, ' ', len);
    size_t alen = sp != NULL ? (size_t)(sp - p) : len;
    const char *slash = memchr(p, '/', alen);
    size_t nlen, tlen;

    if (slash == NULL)
        return -EINVAL;
    nlen = (size_t)(slash - p);
    tlen = alen - nlen - 1;
    if (nlen == 1 && p[0] == '*') {
        if (!frame_group_ok(slash + 1, tlen))
            return -EINVAL;
    } else if (!frame_node_ok(p, nlen) || !frame_name_ok(slash + 1, tlen)) {
        return -EINVAL;
    }
    *node = p;
    *node_len = nlen;
    *target = slash + 1;
    *target_len = tlen;
    *body = sp != NULL ? sp + 1 : p + len;
    *body_len = sp != NULL ? len - alen - 1 : 0;
    return 0;
}

static void put64(uint8_t *p, uint64_t v)
{
    int i;

    for (i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

long frame_encode(const struct frame *f, uint8_t *out, size_t cap)
{
    size_t total = FRAME_HDR + f->dst_len + f->org_len + f->body_len;
    uint8_t *p;

    if (f->dst_len > ADDR_MAX || f->org_len > ADDR_MAX || total > cap)
        return -EMSGSIZE;
    memset(out, 0, FRAME_HDR);
    out[0] = 'S';
    out[1] = 'B';
    out[2] = FRAME_VERSION;
    out[3] = f->kind;
    out[4] = f->prio;
    out[5] = f->flags;
    out[6] = (uint8_t)f->dst_len;
    out[7] = (uint8_t)f->org_len;
    put64(out + 8, f->epoch);
    put64(out + 16, f->seq);
    put64(out + 24, f->token);
    out[32] = (uint8_t)(f->status >> 24);
    out[33] = (uint8_t)(f->status >> 16);
    out[34] = (uint8_t)(f->status >> 8);
    out[35] = (uint8_t)f->status;
    out[36] = f->hops;
    p = out + FRAME_HDR;
    memcpy(p, f->dst, f->dst_len);
    p += f->dst_len;
    memcpy(p, f->org, f->org_len);
    p += f->org_len;
    if (f->body_len > 0)
        memcpy(p, f->body, f->body_len);
    return (long)total;
}

int frame_decode(const void *data, size_t len, struct frame *f)
{
    const uint8_t *p = data;
    size_t dlen, olen;

    if (len < FRAME_HDR || p[0] != 'S' || p[1] != 'B' || p[2] != FRAME_VERSION)
        return -EBADMSG;
    if (p[3] < FRAME_MSG || p[3] > FRAME_QUEUE || p[4] > 7)
        return -EBADMSG;
    dlen = p[6];
    olen = p[7];
    if (dlen > ADDR_MAX || olen > ADDR_MAX || FRAME_HDR + dlen + olen > len)
        return -EBADMSG;
    f->kind = p[3];
    f->prio = p[4];
    f->flags = p[5];
    f->epoch = get64(p + 8);
    f->seq = get64(p + 16);
    f->token = get64(p + 24);
    f->status = (uint32_t)p[32] << 24 | (uint32_t)p[33] << 16 | (uint32_t)p[34] << 8 | p[35];
    f->hops = p[36];
    f->dst = (const char *)p + FRAME_HDR;
    f->dst_len = dlen;
    f->org = f->dst + dlen;
    f->org_len = olen;
    f->body = f->org + olen;
    f->body_len = len - FRAME_HDR - dlen - olen;
    return 0;
}
