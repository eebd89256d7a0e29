/*
 * test_json: the one JSON string escaper (tools/json.h) that `shmbus ls/stat/clean/recv
 * --json`, the web monitor and the bench report share. The copies it replaced disagreed
 * (the bench let 0x7f and broken UTF-8 through, the monitor turned every UTF-8 letter into
 * \u00XX); here each class of byte is checked in both modes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tools/json.h"
#include "helpers.h"

struct out {
    char buf[256];
    size_t n;
};

static void put(void *ctx, const char *s, size_t n)
{
    struct out *o = ctx;
    assert_true(o->n + n < sizeof(o->buf));
    memcpy(o->buf + o->n, s, n);
    o->n += n;
    o->buf[o->n] = '\0';
}

static void check(const char *in, size_t len, int utf8, const char *want)
{
    struct out o = {{0}, 0};
    sb_json_escape(in, len, utf8, put, &o);
    assert_string_equal(o.buf, want);
}

static void test_escapes(void **state)
{
    (void)state;
    for (int utf8 = 0; utf8 < 2; utf8++) {
        check("plain name-1.x", 14, utf8, "\"plain name-1.x\"");
        check("a\"b\\c", 5, utf8, "\"a\\\"b\\\\c\"");
        check("\n\t\r\b\f\x01\x1f\x7f", 8, utf8, "\"\\n\\t\\r\\b\\f\\u0001\\u001f\\u007f\"");
        check("a\0b", 3, utf8, "\"a\\u0000b\""); /* a NUL inside the length is data */
        /* Never valid UTF-8: 0xff, an overlong '/', a surrogate, a truncated sequence. */
        check("\xff", 1, utf8, "\"\\u00ff\"");
        check("\xc0\xaf", 2, utf8, "\"\\u00c0\\u00af\"");
        check("\xed\xa0\x80", 3, utf8, "\"\\u00ed\\u00a0\\u0080\"");
        check("\xc3", 1, utf8, "\"\\u00c3\"");
    }
    /* Valid UTF-8: kept for the command's output, plain ASCII for the monitor's. */
    check("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15, 1,
          "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"");
    check("h\xc3\xa9", 3, 0, "\"h\\u00c3\\u00a9\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_escapes)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
