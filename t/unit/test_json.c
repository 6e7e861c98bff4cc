/*
 * Copyright (C) AMonitor authors
 *
 * Unit tests of the strict JSON scanner: RFC 8259 grammar, strings and
 * UTF-8 (cross-checked with the core UTF-8 validator), depth limits,
 * member reporting with exact spans, unescaping and integers.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "amon_json.h"


#define MAX_MEMBERS 32


typedef struct {
    unsigned          level;
    char              key[64];
    amon_json_value_t value;
} member_t;


typedef struct {
    member_t m[MAX_MEMBERS];
    int      n;
    int      stop_at; /* return 7 from this call on (0: never) */
} members_t;


static int
scan_str(const char *s)
{
    return amon_json_validate((const unsigned char *) s, strlen(s), 32);
}


/* Copy a heap duplicate so that reads past the end are caught by tools. */
static int
scan_exact(const unsigned char *p, size_t len, unsigned depth)
{
    int            rc;
    unsigned char *copy;

    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) {
        memcpy(copy, p, len);
    }

    rc = amon_json_validate(copy, len, depth);
    free(copy);

    return rc;
}


static int
collect(void *data, unsigned level, const amon_json_value_t *key,
    const amon_json_value_t *value)
{
    size_t     n;
    members_t *ms;
    member_t  *m;

    ms = data;
    assert_true(ms->n < MAX_MEMBERS);

    m = &ms->m[ms->n++];
    m->level = level;
    m->value = *value;

    assert_int_equal(key->type, AMON_JSON_STRING);
    assert_int_equal(
        amon_json_unescape(key, (unsigned char *) m->key, 63, &n), AMON_OK);
    m->key[n] = '\0';

    if (ms->stop_at && ms->n >= ms->stop_at) {
        return 7;
    }

    return 0;
}


static void
test_valid_texts(void **state)
{
    size_t             i;
    static const char *ok[] = {
        "{}",
        "[]",
        "0",
        "-0",
        "1",
        "-12.5e+10",
        "1E-2",
        "0.0",
        "123456789012345678901234567890",
        "\"\"",
        "\"x\"",
        "true",
        "false",
        "null",
        " \t\r\n{ \"a\" : [ 1 , 2 , { \"b\" : null } ] } \n",
        "{\"\":\"\"}",
        "[[],{},[{}],{\"a\":[]}]",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
        "\"\\u0000\\u00e9\\uFFFF\\uD83D\\uDE00\"",
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f\"",
        "{\"a\":1,\"a\":2}",
        "[1,\"2\",true,false,null,{},[]]",
    };

    (void) state;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (scan_str(ok[i]) != AMON_OK) {
            fail_msg("rejected valid JSON: %s", ok[i]);
        }
    }
}


static void
test_invalid_texts(void **state)
{
    size_t             i;
    static const char *bad[] = {
        "",
        " ",
        "{",
        "}",
        "[",
        "]",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{,\"a\":1}",
        "{\"a\" 1}",
        "{\"a\":1 \"b\":2}",
        "{a:1}",
        "{'a':1}",
        "{1:1}",
        "[1,]",
        "[,1]",
        "[1 2]",
        "[1]]",
        "{}}",
        "{} x",
        "{}{}",
        "01",
        "-01",
        "1.",
        ".5",
        "+1",
        "-",
        "1e",
        "1e+",
        "1.e5",
        "0x10",
        "NaN",
        "Infinity",
        "tru",
        "nul",
        "fals",
        "True",
        "nulll",
        "\"abc",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "\"\\U0041\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\\ud800x\"",
        "\"\\ud800\\ud800\"",
        "\"\\udc00\\ud800\"",
        "\"\\",
        "\"a\nb\"",
        "\"a\tb\"",
        "\"\x1f\"",
        "\"\xff\"",
        "\"\xc0\xaf\"",
        "\"\xc1\xbf\"",
        "\"\xe0\x80\x80\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xf5\x80\x80\x80\"",
        "\"\xe2\x82\"",
        "\"\x80\"",
        "\xef\xbb\xbf{}",
        "/* c */ {}",
        "[1,2",
        "{\"a\":[}",
    };

    (void) state;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (scan_exact((const unsigned char *) bad[i], strlen(bad[i]), 32)
            != AMON_EJSON) {
            fail_msg("accepted invalid JSON #%zu: %s", i, bad[i]);
        }
    }

    /* a NUL byte is not whitespace */
    assert_int_equal(
        scan_exact((const unsigned char *) "{}\0", 3, 32), AMON_EJSON);
    assert_int_equal(
        scan_exact((const unsigned char *) "\"a\0\"", 4, 32), AMON_EJSON);
}


/* Every proper prefix of a valid text is invalid (no closing yet). */
static void
test_truncated(void **state)
{
    size_t     i, len;
    const char s[] = "{\"msg_id\":\"a\\u00e9\",\"n\":[1.5e3,true,null],"
                     "\"o\":{\"k\":\"\xf0\x9f\x98\x80\"}}";

    (void) state;

    len = sizeof(s) - 1;
    assert_int_equal(scan_exact((const unsigned char *) s, len, 32), AMON_OK);

    for (i = 0; i < len; i++) {
        if (scan_exact((const unsigned char *) s, i, 32) != AMON_EJSON) {
            fail_msg("prefix of %zu bytes accepted", i);
        }
    }
}


/* "depth" nested containers around a 0, objects and arrays alternating */
static void
nest(char *buf, unsigned depth, int objects)
{
    unsigned i, n;

    n = 0;

    for (i = 0; i < depth; i++) {
        if (objects && (i % 2)) {
            memcpy(buf + n, "{\"k\":", 5);
            n += 5;

        } else {
            buf[n++] = '[';
        }
    }

    buf[n++] = '0';

    for (i = depth; i > 0; i--) {
        buf[n++] = (objects && ((i - 1) % 2)) ? '}' : ']';
    }

    buf[n] = '\0';
}


static void
test_depth(void **state)
{
    char buf[512];

    (void) state;

    nest(buf, 32, 0);
    assert_int_equal(scan_str(buf), AMON_OK);
    nest(buf, 33, 0);
    assert_int_equal(scan_str(buf), AMON_EDEPTH);

    nest(buf, 32, 1);
    assert_int_equal(scan_str(buf), AMON_OK);
    nest(buf, 33, 1);
    assert_int_equal(scan_str(buf), AMON_EDEPTH);

    /* the caller's limit, not a fixed one */
    nest(buf, 3, 0);
    assert_int_equal(
        amon_json_validate((unsigned char *) buf, strlen(buf), 3), AMON_OK);
    assert_int_equal(
        amon_json_validate((unsigned char *) buf, strlen(buf), 2), AMON_EDEPTH);

    /* scalars have no depth */
    assert_int_equal(amon_json_validate((unsigned char *) "1", 1, 0), AMON_OK);
    assert_int_equal(
        amon_json_validate((unsigned char *) "[]", 2, 0), AMON_EDEPTH);
}


/*
 * Every byte as the only content of a string, behind every offset into
 * a 16-byte block and an 8-byte word, with a short and a long rest of
 * the string after it, so that the 16-byte path (x86-64), the
 * word-at-a-time path and the byte path all see it in every position.
 */
static void
test_string_bytes(void **state)
{
    int           want;
    unsigned      c, off, t, tail;
    unsigned char buf[80];

    static const unsigned tails[] = {9, 24};

    (void) state;

    for (t = 0; t < 2; t++) {
        tail = tails[t];

        for (off = 0; off < 41; off++) {
            for (c = 0; c < 256; c++) {
                buf[0] = '"';
                memset(buf + 1, 'a', off);
                buf[1 + off] = (unsigned char) c;
                memset(buf + 2 + off, 'x', tail);
                buf[2 + off + tail] = '"';

                /* a backslash is followed by 'x': an invalid escape */
                want = (c >= 0x20 && c < 0x80 && c != '"' && c != '\\')
                    ? AMON_OK
                    : AMON_EJSON;

                if (scan_exact(buf, 3 + off + tail, 32) != want) {
                    fail_msg(
                        "byte 0x%02x at offset %u, %u after", c, off, tail);
                }
            }
        }
    }
}


/* The inline UTF-8 checks agree with amon_utf8_validate(). */
static void
test_string_utf8_cross(void **state)
{
    int           want, got;
    unsigned      a, b, c, lead[] = {0xe0, 0xe1, 0xed, 0xef, 0xf0, 0xf4};
    unsigned char buf[16], long_buf[40], s[4];
    size_t        i;

    (void) state;

    for (a = 0x80; a < 0x100; a++) {
        for (b = 0; b < 0x100; b++) {
            s[0] = (unsigned char) a;
            s[1] = (unsigned char) b;

            buf[0] = '"';
            memcpy(buf + 1, s, 2);
            buf[3] = '"';

            want = (amon_utf8_validate(s, 2) == AMON_OK && b >= 0x20 && b != '"'
                       && b != '\\')
                ? AMON_OK
                : AMON_EJSON;
            got = scan_exact(buf, 4, 32);

            if (got != want) {
                fail_msg("%02x %02x: got %d", a, b, got);
            }

            /* the same pair inside a long string: the 16-byte path finds it */
            long_buf[0] = '"';
            memset(long_buf + 1, 'a', 17);
            memcpy(long_buf + 18, s, 2);
            memset(long_buf + 20, 'b', 17);
            long_buf[37] = '"';

            got = scan_exact(long_buf, 38, 32);

            if (got != want) {
                fail_msg("%02x %02x in a long string: got %d", a, b, got);
            }
        }
    }

    for (i = 0; i < sizeof(lead) / sizeof(lead[0]); i++) {
        for (b = 0x70; b < 0xd0; b++) {
            for (c = 0x70; c < 0xd0; c++) {
                s[0] = (unsigned char) lead[i];
                s[1] = (unsigned char) b;
                s[2] = (unsigned char) c;
                s[3] = 0x80;

                buf[0] = '"';
                memcpy(buf + 1, s, 4);
                buf[5] = '"';

                /* with a 3-byte lead, the 0x80 is a stray byte */
                want = (amon_utf8_validate(s, 4) == AMON_OK) ? AMON_OK
                                                             : AMON_EJSON;

                got = scan_exact(buf, 6, 32);
                if (got != want) {
                    fail_msg("%02x %02x %02x 80: got %d", lead[i], b, c, got);
                }

                /* without the fourth byte */
                buf[4] = '"';
                want = (amon_utf8_validate(s, 3) == AMON_OK) ? AMON_OK
                                                             : AMON_EJSON;
                got = scan_exact(buf, 5, 32);
                if (got != want) {
                    fail_msg("%02x %02x %02x: got %d", lead[i], b, c, got);
                }
            }
        }
    }
}


static void
test_members(void **state)
{
    members_t         ms;
    amon_json_value_t root;
    amon_str_t        sub = amon_string("payload");
    const char        s[] = " {\"msg_id\" : \"m1\", \"n\":-1.5,\"i\":42,"
                            "\"payload\":{\"action\":\"restart\","
                            "\"params\":{\"deep\":{\"x\":1}},\"t\":true},"
                            "\"arr\":[{\"payload\":1}],\"payload\":{\"z\":0}} ";

    (void) state;

    memset(&ms, 0, sizeof(ms));

    assert_int_equal(amon_json_scan((const unsigned char *) s, sizeof(s) - 1,
                         32, sub, collect, &ms, &root),
        AMON_OK);

    assert_int_equal(root.type, AMON_JSON_OBJECT);
    assert_ptr_equal(root.start, s + 1);
    assert_int_equal(root.len, sizeof(s) - 3);

    /* payload members come before the payload itself; the second payload
       object is reported as a root member only */
    assert_int_equal(ms.n, 9);

    assert_int_equal(ms.m[0].level, 0);
    assert_string_equal(ms.m[0].key, "msg_id");
    assert_int_equal(ms.m[0].value.type, AMON_JSON_STRING);
    assert_int_equal(ms.m[0].value.len, 4);
    assert_memory_equal(ms.m[0].value.start, "\"m1\"", 4);

    assert_string_equal(ms.m[1].key, "n");
    assert_int_equal(ms.m[1].value.type, AMON_JSON_NUMBER);
    assert_false(ms.m[1].value.integer);
    assert_string_equal(ms.m[2].key, "i");
    assert_true(ms.m[2].value.integer);

    assert_int_equal(ms.m[3].level, 1);
    assert_string_equal(ms.m[3].key, "action");
    assert_int_equal(ms.m[4].level, 1);
    assert_string_equal(ms.m[4].key, "params");
    assert_int_equal(ms.m[4].value.type, AMON_JSON_OBJECT);
    assert_int_equal(ms.m[4].value.len, strlen("{\"deep\":{\"x\":1}}"));
    assert_memory_equal(
        ms.m[4].value.start, "{\"deep\":{\"x\":1}}", ms.m[4].value.len);
    assert_int_equal(ms.m[5].level, 1);
    assert_int_equal(ms.m[5].value.type, AMON_JSON_TRUE);

    assert_int_equal(ms.m[6].level, 0);
    assert_string_equal(ms.m[6].key, "payload");
    assert_int_equal(ms.m[6].value.type, AMON_JSON_OBJECT);
    assert_memory_equal(ms.m[6].value.start,
        "{\"action\":\"restart\",\"params\":{\"deep\":{\"x\":1}},\"t\":true}",
        ms.m[6].value.len);

    assert_string_equal(ms.m[7].key, "arr");
    assert_int_equal(ms.m[7].value.type, AMON_JSON_ARRAY);
    assert_int_equal(ms.m[8].level, 0);
    assert_string_equal(ms.m[8].key, "payload");
}


static int
scan_members(const char *s, amon_str_t sub, members_t *ms)
{
    memset(ms, 0, sizeof(*ms));

    return amon_json_scan(
        (const unsigned char *) s, strlen(s), 32, sub, collect, ms, NULL);
}


static void
test_members_sub_rules(void **state)
{
    members_t  ms;
    amon_str_t sub = amon_string("payload");
    amon_str_t none = amon_null_string;

    (void) state;

    /* an escaped key matches once unescaped */
    assert_int_equal(
        scan_members("{\"pay\\u006coad\":{\"a\":1}}", sub, &ms), AMON_OK);
    assert_int_equal(ms.n, 2);
    assert_int_equal(ms.m[0].level, 1);
    assert_string_equal(ms.m[0].key, "a");
    assert_string_equal(ms.m[1].key, "payload");

    /* only the first member of that name: a non-object one hides later */
    assert_int_equal(
        scan_members("{\"payload\":null,\"payload\":{\"a\":1}}", sub, &ms),
        AMON_OK);
    assert_int_equal(ms.n, 2);
    assert_int_equal(ms.m[0].level, 0);
    assert_int_equal(ms.m[1].level, 0);

    /* no sub key: level 0 only */
    assert_int_equal(
        scan_members("{\"payload\":{\"a\":1}}", none, &ms), AMON_OK);
    assert_int_equal(ms.n, 1);

    /* root not an object: nothing reported */
    assert_int_equal(
        scan_members("[{\"payload\":{\"a\":1}}]", sub, &ms), AMON_OK);
    assert_int_equal(ms.n, 0);

    /* a handler's non-zero return stops the scan and is returned */
    memset(&ms, 0, sizeof(ms));
    ms.stop_at = 2;
    assert_int_equal(amon_json_scan((const unsigned char *) "{\"a\":1,\"b\":2}",
                         13, 32, sub, collect, &ms, NULL),
        7);
    assert_int_equal(ms.n, 2);

    /* members reported before an error later in the text: still EJSON */
    assert_int_equal(scan_members("{\"a\":1,\"b\":}", sub, &ms), AMON_EJSON);
    assert_int_equal(ms.n, 1);
}


static amon_json_value_t
one_string(const char *s)
{
    amon_json_value_t root;
    amon_str_t        none = amon_null_string;

    assert_int_equal(amon_json_scan((const unsigned char *) s, strlen(s), 32,
                         none, NULL, NULL, &root),
        AMON_OK);
    assert_int_equal(root.type, AMON_JSON_STRING);

    return root;
}


static void
test_unescape(void **state)
{
    size_t            n;
    unsigned char     out[64];
    amon_json_value_t v;
    amon_str_t        raw;

    (void) state;

    v = one_string("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac"
                   "\\ud83d\\ude00\\u0000z\"");
    assert_true(v.escaped);
    assert_int_equal(amon_json_unescape(&v, out, sizeof(out), &n), AMON_OK);
    assert_int_equal(n, 24);
    assert_memory_equal(
        out, "a\"b\\c/d\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0z", 24);
    assert_int_equal(amon_json_unescaped_len(&v), 24);

    /* exactly enough room, then one byte short */
    assert_int_equal(amon_json_unescape(&v, out, 24, &n), AMON_OK);
    assert_int_equal(amon_json_unescape(&v, out, 23, &n), AMON_ENOSPC);
    assert_int_equal(amon_json_unescape(&v, out, 0, &n), AMON_ENOSPC);

    v = one_string("\"plain\"");
    assert_false(v.escaped);
    raw = amon_json_raw_string(&v);
    assert_int_equal(raw.len, 5);
    assert_memory_equal(raw.data, "plain", 5);
    assert_int_equal(amon_json_unescaped_len(&v), 5);
    assert_int_equal(amon_json_unescape(&v, out, 5, &n), AMON_OK);
    assert_int_equal(n, 5);
    assert_int_equal(amon_json_unescape(&v, out, 4, &n), AMON_ENOSPC);

    v = one_string("\"\"");
    assert_int_equal(amon_json_unescape(&v, out, 0, &n), AMON_OK);
    assert_int_equal(n, 0);
}


static void
test_str_eq(void **state)
{
    amon_json_value_t v;

    (void) state;

    v = one_string("\"type\"");
    assert_true(amon_json_str_eq(&v, "type", 4));
    assert_false(amon_json_str_eq(&v, "typ", 3));
    assert_false(amon_json_str_eq(&v, "types", 5));
    assert_false(amon_json_str_eq(&v, "Type", 4));

    v = one_string("\"t\\u0079p\\u0065\"");
    assert_true(amon_json_str_eq(&v, "type", 4));
    assert_false(amon_json_str_eq(&v, "typ", 3));
    assert_false(amon_json_str_eq(&v, "typex", 5));

    v = one_string("\"\\u00e9\"");
    assert_true(amon_json_str_eq(&v, "\xc3\xa9", 2));
    assert_false(amon_json_str_eq(&v, "\xc3", 1));
}


static void
test_int64(void **state)
{
    size_t               i;
    int64_t              out;
    amon_json_value_t    root;
    amon_str_t           none = amon_null_string;
    static const char   *ok[] = {"0", "-0", "1764120000000",
          "9223372036854775807", "-9223372036854775808"};
    static const int64_t want[] = {0, 0, 1764120000000LL, INT64_MAX, INT64_MIN};
    static const char   *bad[] = {"9223372036854775808", "-9223372036854775809",
          "99999999999999999999", "1.0", "1e3", "-1.5", "\"1\"", "true"};

    (void) state;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(amon_json_scan((const unsigned char *) ok[i],
                             strlen(ok[i]), 32, none, NULL, NULL, &root),
            AMON_OK);
        assert_int_equal(amon_json_int64(&root, &out), AMON_OK);
        assert_true(out == want[i]);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(amon_json_scan((const unsigned char *) bad[i],
                             strlen(bad[i]), 32, none, NULL, NULL, &root),
            AMON_OK);
        if (amon_json_int64(&root, &out) != AMON_EINVAL) {
            fail_msg("accepted %s as int64", bad[i]);
        }
    }
}


/* every length, digits taken eight at a time or one by one: as strtoll */
static void
test_int64_lengths(void **state)
{
    int               n, k, d;
    char              text[32];
    int64_t           out;
    uint64_t          seed;
    long long         want;
    amon_json_value_t root;
    amon_str_t        none = amon_null_string;

    (void) state;
    seed = 0x9e3779b97f4a7c15ULL;

    for (n = 1; n <= 19; n++) {
        for (k = 0; k < 2000; k++) {
            /* a first digit 1-9 (0 alone for n == 1), then any; each
             * digit, and runs of 0 and 9, in every place */
            for (d = 0; d < n; d++) {
                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                text[d + 1] = (char) ('0' + (seed >> 33) % 10);
                if (k % 7 == 1) {
                    text[d + 1] = '9';
                } else if (k % 7 == 2) {
                    text[d + 1] = '0';
                }
            }

            if (n > 1 && text[1] == '0') {
                text[1] = (char) ('1' + k % 9);
            }

            if (n == 19 && text[1] == '9') {
                text[1] = '8'; /* under INT64_MAX */
            }

            text[0] = '-';
            text[n + 1] = '\0';

            for (d = 0; d < 2; d++) {
                const char *t = text + 1 - d;

                want = strtoll(t, NULL, 10);
                assert_int_equal(amon_json_scan((const unsigned char *) t,
                                     strlen(t), 32, none, NULL, NULL, &root),
                    AMON_OK);
                assert_int_equal(amon_json_int64(&root, &out), AMON_OK);
                if (out != want) {
                    fail_msg("%s read as %lld", t, (long long) out);
                }
            }
        }
    }
}


/* the strings of a validated array, one by one; anything else refused */
static void
test_array_string(void **state)
{
    size_t            pos, n;
    amon_str_t        none = amon_null_string;
    amon_json_value_t root, item;
    unsigned char     buf[32];

    static const char ok[] = " [ \"a\" , \"w\\\"*\" ,\"\"] ";
    static const char bad[] = "[\"a\",1]";
    static const char empty[] = "[ ]";

    (void) state;

    assert_int_equal(amon_json_scan((const unsigned char *) ok, sizeof(ok) - 1,
                         8, none, NULL, NULL, &root),
        AMON_OK);
    assert_int_equal(root.type, AMON_JSON_ARRAY);

    pos = 0;
    assert_int_equal(amon_json_array_string(&root, &pos, &item), AMON_OK);
    assert_int_equal(item.len, 3);
    assert_memory_equal(item.start, "\"a\"", 3);
    assert_false(item.escaped);

    assert_int_equal(amon_json_array_string(&root, &pos, &item), AMON_OK);
    assert_true(item.escaped);
    assert_int_equal(amon_json_unescape(&item, buf, sizeof(buf), &n), AMON_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "w\"*", 3);

    assert_int_equal(amon_json_array_string(&root, &pos, &item), AMON_OK);
    assert_int_equal(item.len, 2);
    assert_int_equal(amon_json_array_string(&root, &pos, &item), AMON_AGAIN);
    assert_int_equal(amon_json_array_string(&root, &pos, &item), AMON_AGAIN);

    assert_int_equal(amon_json_scan((const unsigned char *) bad,
                         sizeof(bad) - 1, 8, none, NULL, NULL, &root),
        AMON_OK);
    pos = 0;
    assert_int_equal(amon_json_array_string(&root, &pos, &item), AMON_OK);
    assert_int_equal(
        amon_json_array_string(&root, &pos, &item), AMON_EFIELD_TYPE);

    assert_int_equal(amon_json_scan((const unsigned char *) empty,
                         sizeof(empty) - 1, 8, none, NULL, NULL, &root),
        AMON_OK);
    pos = 0;
    assert_int_equal(amon_json_array_string(&root, &pos, &item), AMON_AGAIN);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_texts),
        cmocka_unit_test(test_invalid_texts),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_string_bytes),
        cmocka_unit_test(test_string_utf8_cross),
        cmocka_unit_test(test_members),
        cmocka_unit_test(test_members_sub_rules),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_str_eq),
        cmocka_unit_test(test_int64),
        cmocka_unit_test(test_int64_lengths),
        cmocka_unit_test(test_array_string),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
