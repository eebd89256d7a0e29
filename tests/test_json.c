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

static void check_payload(const char *in, size_t len, const char *want)
{
    struct out o = {{0}, 0};
    sb_json_payload(in, len, put, &o);
    assert_string_equal(o.buf, want);
}

/* A payload is lossless: valid UTF-8 as "data", anything else as "data_base64" (every
 * padding length), since \u00ff would read back as U+00FF, two bytes in UTF-8. */
static void test_payload(void **state)
{
    (void)state;
    check_payload("h\xc3\xa9 \"x\"\n", 8, "\"data\":\"h\xc3\xa9 \\\"x\\\"\\n\"");
    check_payload("a\0b", 3, "\"data\":\"a\\u0000b\"");
    check_payload("", 0, "\"data\":\"\"");
    check_payload("\xff", 1, "\"data_base64\":\"/w==\"");
    check_payload("a\xff", 2, "\"data_base64\":\"Yf8=\"");
    check_payload("a\xff" "b", 3, "\"data_base64\":\"Yf9i\"");
    check_payload("\xc3", 1, "\"data_base64\":\"ww==\"");
    check_payload("ok\xed\xa0\x80", 5, "\"data_base64\":\"b2vtoIA=\"");
}

int main(void)
{
    th_filter_from_env();
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_escapes),
                                       cmocka_unit_test(test_payload)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
