/*
 * Copyright (C) AMonitor authors
 *
 * Unit tests of the one-walk reading of the usual envelope
 * (amon_envelope_fast.c) against the general scanner: the texts it must
 * take, the texts it must leave to the scanner, and every truncation and
 * one-byte change of those texts, where whatever it takes the scanner
 * must take too, with the same members.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "amon_envelope.h"
#include "amon_envelope_int.h"


/* texts the walk takes */
static const char *taken[] = {
    "{\"msg_id\":\"6f1c2a9e-0d4b\",\"trace_id\":\"tr-1\",\"type\":\"action\","
    "\"target_id\":\"demo-target-a\",\"timestamp\":1764120000000,"
    "\"payload\":{\"action\":\"restart\",\"params\":{\"from\":\"panel\","
    "\"n\":[1,2]},\"target_url\":\"ws://127.0.0.1:8765/\"}}",

    "{\"msg_id\":\"k-a1-2-3\",\"type\":\"action_ack\",\"target_id\":\"b-0\","
    "\"timestamp\":1765000000125,\"payload\":{\"action_msg_id\":\"a1-2-3\","
    "\"success\":true,\"message\":\"ok\"}}",

    " {\n \"msg_id\" : \"hb-1\" ,\t\"type\":\"heartbeat\", \"payload\" : "
    "{ \"metrics\" : { \"cpu\" : 1.5e3 , \"x\" : [ true , false , null , "
    "-0.5 , [ ] , { } ] } , \"target_id\" : \"t\" } }\r\n",

    "{\"msg_id\":\"e\",\"type\":\"event\",\"extra\":[\"a\",{\"b\":null}],"
    "\"n\":-12.5E-3,\"z\":0,\"f\":false,\"payload\":{\"event_name\":\"x\","
    "\"message\":\"a\\\"b\\u00e9\\ud83d\\ude00 \xc3\xa9\xe2\x82\xac\"}}",

    "{}",
    "{\"payload\":{}}",
    "{\"msg_id\":\"a\",\"type\":\"x\",\"payload\":\"not an object\"}",
    "{\"msg_id\":\"a\",\"type\":\"x\",\"payload\":null}",
    "{\"msg_id\":\"a\",\"payload\":[1],\"unknown\":{\"payload\":{}}}",
    "{\"msg_id\":\"\\u0041\",\"type\":\"action\",\"payload\":{\"action\":1}}",
};

/* texts the walk leaves to the scanner, and what the scanner says */
static const struct {
    const char *text;
    int         rc;
    unsigned    dup;
} left[] = {
    {"{\"msg\\u005fid\":\"x\",\"type\":\"t\"}", AMON_OK, 0},
    {"{\"msg_id\":\"a\",\"msg_id\":\"b\"}", AMON_OK, 1},
    {"{\"payload\":{\"action\":\"a\",\"action\":\"b\"}}", AMON_OK, 1},
    {"{\"payload\":{},\"payload\":{}}", AMON_OK, 1},
    {"[1,2]", AMON_OK, 0},
    {"\"text\"", AMON_OK, 0},
    {"{\"a\":1,}", AMON_EJSON, 0},
    {"{\"a\" 1}", AMON_EJSON, 0},
    {"{\"a\":01}", AMON_EJSON, 0},
    {"{\"a\":1.}", AMON_EJSON, 0},
    {"{\"a\":-}", AMON_EJSON, 0},
    {"{\"a\":tru}", AMON_EJSON, 0},
    {"{\"a\":\"x}", AMON_EJSON, 0},
    {"{\"a\":\"\x01\"}", AMON_EJSON, 0},
    {"{\"a\":\"\xc0\xaf\"}", AMON_EJSON, 0},
    {"{\"a\":\"\\x\"}", AMON_EJSON, 0},
    {"{\"a\":\"\\ud800\"}", AMON_EJSON, 0},
    {"{\"a\":1} x", AMON_EJSON, 0},
    {"{\"a\":[1,]}", AMON_EJSON, 0},
    {"{\"a\":{\"b\"}}", AMON_EJSON, 0},
    {"", AMON_EJSON, 0},
};


static int
fast(const unsigned char *p, size_t len, amon_envelope_scan_t *sc,
    amon_json_value_t *root)
{
    amon_envelope_scan_init(sc, 0);

    return amon_envelope_scan_fast(p, len, sc, root);
}


/*
 * Whatever the walk takes, the scanner takes with the same members.
 * Returns whether the walk took it.
 */
static int
agree(const unsigned char *p, size_t len)
{
    amon_envelope_scan_t a, b;
    amon_json_value_t    ar, br;

    if (fast(p, len, &a, &ar) != AMON_OK) {
        return 0;
    }

    assert_int_equal(amon_envelope_scan_json(p, len, &b, &br, 0), AMON_OK);
    assert_true(amon_envelope_scan_same(&a, &ar, &b, &br));

    return 1;
}


static void
test_taken(void **state)
{
    size_t               i;
    amon_envelope_scan_t sc;
    amon_json_value_t    root;
    amon_envelope_t      env;
    const unsigned char *p;

    (void) state;

    for (i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
        p = (const unsigned char *) taken[i];
        assert_int_equal(fast(p, strlen(taken[i]), &sc, &root), AMON_OK);
        assert_true(agree(p, strlen(taken[i])));
    }

    /* the members found point at the values, quotes included */
    p = (const unsigned char *) taken[1];
    assert_int_equal(fast(p, strlen(taken[1]), &sc, &root), AMON_OK);
    assert_int_equal(sc.root[AMON_ENVELOPE_F_MSG_ID].len, 10);
    assert_memory_equal(
        sc.root[AMON_ENVELOPE_F_MSG_ID].start, "\"k-a1-2-3\"", 10);
    assert_int_equal(sc.pay[AMON_ENVELOPE_P_SUCCESS].type, AMON_JSON_TRUE);
    assert_true(sc.root[AMON_ENVELOPE_F_TIMESTAMP].integer);
    assert_int_equal(sc.root[AMON_ENVELOPE_F_TRACE_ID].type, AMON_JSON_NONE);
    assert_int_equal(root.len, strlen(taken[1]));

    /* a payload that is no object is the decoder's to refuse */
    p = (const unsigned char *) taken[6];
    assert_int_equal(
        amon_envelope_decode_json(&env, p, strlen(taken[6])), AMON_EFIELD_TYPE);

    /* an escaped value is taken, and unescaped by the decoder */
    p = (const unsigned char *) taken[9];
    assert_int_equal(
        amon_envelope_decode_json(&env, p, strlen(taken[9])), AMON_EFIELD_TYPE);
    assert_int_equal(env.msg_id.len, 1);
    assert_int_equal(env.msg_id.data[0], 'A');
}


static void
test_left(void **state)
{
    size_t               i, len;
    amon_envelope_scan_t sc;
    amon_json_value_t    root;
    const unsigned char *p;

    (void) state;

    for (i = 0; i < sizeof(left) / sizeof(left[0]); i++) {
        p = (const unsigned char *) left[i].text;
        len = strlen(left[i].text);

        assert_int_equal(fast(p, len, &sc, &root), AMON_AGAIN);
        assert_int_equal(
            amon_envelope_scan_json(p, len, &sc, &root, 1), left[i].rc);

        if (left[i].rc == AMON_OK) {
            assert_int_equal(sc.dup, left[i].dup);
        }
    }

    /* an escaped key is still found by the scanner */
    p = (const unsigned char *) left[0].text;
    assert_int_equal(
        amon_envelope_scan_json(p, strlen(left[0].text), &sc, &root, 1),
        AMON_OK);
    assert_int_equal(sc.root[AMON_ENVELOPE_F_MSG_ID].type, AMON_JSON_STRING);
}


/* nesting up to the limit is taken, one level more is left (and refused) */
static void
test_depth(void **state)
{
    int                  i, extra;
    size_t               len;
    char                 buf[512];
    amon_envelope_scan_t sc;
    amon_json_value_t    root;

    (void) state;

    for (extra = 0; extra <= 1; extra++) {
        /* root (1) + payload (2) + params (3) + arrays to the limit */
        len = (size_t) snprintf(buf, sizeof(buf),
            "{\"msg_id\":\"d\",\"type\":\"action\",\"payload\":{\"params\":{"
            "\"a\":");

        for (i = 0; i < AMON_MAX_JSON_DEPTH - 3 + extra; i++) {
            buf[len++] = '[';
        }

        for (i = 0; i < AMON_MAX_JSON_DEPTH - 3 + extra; i++) {
            buf[len++] = ']';
        }

        memcpy(buf + len, "}}}", 3);
        len += 3;

        if (extra) {
            assert_int_equal(
                fast((unsigned char *) buf, len, &sc, &root), AMON_AGAIN);
            assert_int_equal(amon_envelope_scan_json(
                                 (unsigned char *) buf, len, &sc, &root, 1),
                AMON_EDEPTH);

        } else {
            assert_true(agree((unsigned char *) buf, len));
        }
    }

    /* a root member's own nesting counts from the root */
    len = (size_t) snprintf(buf, sizeof(buf), "{\"x\":");

    for (i = 0; i < AMON_MAX_JSON_DEPTH; i++) {
        buf[len++] = '[';
    }

    for (i = 0; i < AMON_MAX_JSON_DEPTH; i++) {
        buf[len++] = ']';
    }

    buf[len++] = '}';

    assert_int_equal(fast((unsigned char *) buf, len, &sc, &root), AMON_AGAIN);
    assert_int_equal(
        amon_envelope_scan_json((unsigned char *) buf, len, &sc, &root, 1),
        AMON_EDEPTH);
}


/* every truncation and one-byte change of the texts above */
static void
test_changes(void **state)
{
    size_t                     i, n, pos, len, k, took;
    unsigned char              buf[1024];
    const char                *texts[sizeof(taken) / sizeof(taken[0])
        + sizeof(left) / sizeof(left[0])];
    static const unsigned char bytes[] = {'"', '\\', ',', ':', '{', '}', '[',
        ']', 'x', '0', '-', '.', 'e', ' ', 't', 'n', 0x80, 0xc3, 0x01, 0x7f};

    (void) state;

    n = 0;

    for (i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
        texts[n++] = taken[i];
    }

    for (i = 0; i < sizeof(left) / sizeof(left[0]); i++) {
        texts[n++] = left[i].text;
    }

    took = 0;

    for (i = 0; i < n; i++) {
        len = strlen(texts[i]);
        assert_true(len <= sizeof(buf));

        for (pos = 0; pos < len; pos++) {
            memcpy(buf, texts[i], len);
            took += agree(buf, pos);

            for (k = 0; k < sizeof(bytes); k++) {
                buf[pos] = bytes[k];
                took += agree(buf, len);
            }
        }
    }

    /* the changes that keep a text valid are taken too, not only left */
    assert_true(took > 1000);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_taken),
        cmocka_unit_test(test_left),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_changes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
