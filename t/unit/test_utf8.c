/*
 * Copyright (C) AMonitor authors
 *
 * Unit tests of the UTF-8 validator (RFC 3629): whole buffers, fed one
 * byte at a time and split at every position, and failing at the first
 * byte that cannot continue a valid sequence.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "amon_core.h"
#include "test_util.h"


typedef struct {
    const char *hex;
    int         valid;
    int         bad_at; /* index of the first byte refused; -1: the end */
} utf8_case_t;


static const utf8_case_t cases[] = {
    {"", 1, 0},
    {"41 42 43", 1, 0},
    {"00 7f", 1, 0},
    /* boundaries of each length */
    {"c2 80", 1, 0},
    {"df bf", 1, 0},
    {"e0 a0 80", 1, 0},
    {"ef bf bf", 1, 0},
    {"f0 90 80 80", 1, 0},
    {"f4 8f bf bf", 1, 0},
    /* around the surrogates */
    {"ed 9f bf", 1, 0},
    {"ee 80 80", 1, 0},
    {"e2 82 ac 20 f0 9f 98 80 20 c3 a9", 1, 0},
    /* overlong forms */
    {"c0 80", 0, 0},
    {"c1 bf", 0, 0},
    {"e0 80 80", 0, 1},
    {"e0 9f bf", 0, 1},
    {"f0 80 80 80", 0, 1},
    {"f0 8f bf bf", 0, 1},
    /* UTF-16 surrogates */
    {"ed a0 80", 0, 1},
    {"ed bf bf", 0, 1},
    {"ed af bf ed b0 80", 0, 1},
    /* above U+10FFFF and bytes that never appear */
    {"f4 90 80 80", 0, 1},
    {"f5 80 80 80", 0, 0},
    {"f8 88 80 80 80", 0, 0},
    {"fe", 0, 0},
    {"ff", 0, 0},
    /* stray or missing continuation bytes */
    {"80", 0, 0},
    {"41 bf", 0, 1},
    {"c3 41", 0, 1},
    {"e2 82 41", 0, 2},
    {"f0 9f 98 41", 0, 3},
    {"c3 a9 a9", 0, 2},
    /* truncated at the end: fine while feeding, invalid at the end */
    {"c3", 0, -1},
    {"41 e2 82", 0, -1},
    {"f0 9f 98", 0, -1},
};


static void
test_whole(void **state)
{
    size_t        i, len;
    unsigned char buf[64];

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        len = hex(cases[i].hex, buf);
        assert_int_equal(amon_utf8_validate(buf, len),
            cases[i].valid ? AMON_OK : AMON_EUTF8);
    }
}


static void
test_bytewise_fail_fast(void **state)
{
    int           rc;
    size_t        i, j, len;
    uint32_t      st;
    unsigned char buf[64];

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        len = hex(cases[i].hex, buf);
        st = 0;
        rc = AMON_OK;

        for (j = 0; j < len; j++) {
            rc = amon_utf8_feed(&st, buf + j, 1);
            if (rc != AMON_OK) {
                break;
            }
        }

        if (cases[i].valid) {
            assert_int_equal(rc, AMON_OK);
            assert_int_equal(st, 0);

        } else if (cases[i].bad_at < 0) {
            /* every byte accepted, but the text ends inside a character */
            assert_int_equal(rc, AMON_OK);
            assert_int_not_equal(st, 0);

        } else {
            assert_int_equal(rc, AMON_EUTF8);
            assert_int_equal(j, (size_t) cases[i].bad_at);
        }
    }
}


static void
test_split_everywhere(void **state)
{
    int           rc;
    size_t        i, k, len;
    uint32_t      st;
    unsigned char buf[64];

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        len = hex(cases[i].hex, buf);

        for (k = 0; k <= len; k++) {
            st = 0;
            rc = amon_utf8_feed(&st, buf, k);
            if (rc == AMON_OK) {
                rc = amon_utf8_feed(&st, buf + k, len - k);
            }

            if (rc == AMON_OK && st != 0) {
                rc = AMON_EUTF8;
            }

            assert_int_equal(rc, cases[i].valid ? AMON_OK : AMON_EUTF8);
        }
    }
}


static void
test_every_code_point(void **state)
{
    size_t        n;
    uint32_t      cp;
    unsigned char b[4];

    /* encode each scalar value and check the validator agrees */
    for (cp = 0; cp <= 0x10ffff; cp++) {
        if (cp < 0x80) {
            b[0] = (unsigned char) cp;
            n = 1;

        } else if (cp < 0x800) {
            b[0] = (unsigned char) (0xc0 | (cp >> 6));
            b[1] = (unsigned char) (0x80 | (cp & 0x3f));
            n = 2;

        } else if (cp < 0x10000) {
            b[0] = (unsigned char) (0xe0 | (cp >> 12));
            b[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
            b[2] = (unsigned char) (0x80 | (cp & 0x3f));
            n = 3;

        } else {
            b[0] = (unsigned char) (0xf0 | (cp >> 18));
            b[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
            b[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
            b[3] = (unsigned char) (0x80 | (cp & 0x3f));
            n = 4;
        }

        if (cp >= 0xd800 && cp <= 0xdfff) {
            assert_int_equal(amon_utf8_validate(b, n), AMON_EUTF8);

        } else {
            assert_int_equal(amon_utf8_validate(b, n), AMON_OK);
        }
    }
}


static void
test_long_ascii_runs(void **state)
{
    size_t        i, pos;
    unsigned char buf[100];

    /* the fast paths (32 bytes, a word) must still see every byte */
    memset(buf, 'a', sizeof(buf));
    assert_int_equal(amon_utf8_validate(buf, sizeof(buf)), AMON_OK);

    for (pos = 0; pos < sizeof(buf); pos++) {
        memset(buf, 'a', sizeof(buf));
        buf[pos] = 0x80;
        assert_int_equal(amon_utf8_validate(buf, sizeof(buf)), AMON_EUTF8);

        buf[pos] = 0xff;
        assert_int_equal(amon_utf8_validate(buf, sizeof(buf)), AMON_EUTF8);
    }

    /* a valid 2-byte character at every alignment */
    for (pos = 0; pos + 1 < sizeof(buf); pos++) {
        memset(buf, 'a', sizeof(buf));
        buf[pos] = 0xc3;
        buf[pos + 1] = 0xa9;
        assert_int_equal(amon_utf8_validate(buf, sizeof(buf)), AMON_OK);

        /* cut short right before the end */
        assert_int_equal(amon_utf8_validate(buf, pos + 1), AMON_EUTF8);
    }

    for (i = 0; i < 8; i++) {
        memset(buf, 'a', sizeof(buf));
        buf[sizeof(buf) - 1 - i] = 0xe2;
        assert_int_equal(amon_utf8_validate(buf, sizeof(buf)), AMON_EUTF8);
    }

    /* the 32-byte path from every start within a block, every bad byte */
    for (i = 0; i < 33; i++) {
        for (pos = i; pos < sizeof(buf); pos++) {
            memset(buf, 'a', sizeof(buf));
            buf[pos] = 0x80;
            assert_int_equal(
                amon_utf8_validate(buf + i, sizeof(buf) - i), AMON_EUTF8);
            assert_int_equal(amon_utf8_validate(buf + i, pos - i), AMON_OK);
        }
    }
}


/* peer text made safe for a terminal or a log line */
static void
test_escape_text(void **state)
{
    char                 out[128];
    size_t               n;
    static const char    in[] = "a\tb\x1b]0;x\x07\x7f\xc2\x9b\xc3\xa9\xff\n";
    const unsigned char *p = (const unsigned char *) in;

    n = amon_escape_text(p, sizeof(in) - 1, out, sizeof(out), 0);
    assert_string_equal(
        out, "a\\u0009b\\u001b]0;x\\u0007\\u007f\\u009b\xc3\xa9\\xff\\u000a");
    assert_int_equal(n, strlen(out));

    (void) amon_escape_text(p, sizeof(in) - 1, out, sizeof(out),
        AMON_ESC_KEEP_TAB | AMON_ESC_KEEP_LAST_NL);
    assert_string_equal(
        out, "a\tb\\u001b]0;x\\u0007\\u007f\\u009b\xc3\xa9\\xff\n");

    /* a newline that does not end the text is escaped all the same */
    (void) amon_escape_text((const unsigned char *) "a\nb", 3, out, sizeof(out),
        AMON_ESC_KEEP_LAST_NL);
    assert_string_equal(out, "a\\u000ab");

    /* a truncated sequence; whole escapes only in a short buffer */
    (void) amon_escape_text(
        (const unsigned char *) "\xe2\x82", 2, out, sizeof(out), 0);
    assert_string_equal(out, "\\xe2\\x82");
    n = amon_escape_text(p, sizeof(in) - 1, out, 10, 0);
    assert_true(n < 10);
    assert_string_equal(out, "a\\u0009");
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),
        cmocka_unit_test(test_bytewise_fail_fast),
        cmocka_unit_test(test_split_everywhere),
        cmocka_unit_test(test_every_code_point),
        cmocka_unit_test(test_long_ascii_runs),
        cmocka_unit_test(test_escape_text),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
