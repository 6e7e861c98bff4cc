/*
 * Copyright (C) AMonitor authors
 *
 * Unit tests of the JSON writer (commas, escaping, numbers, limits, the
 * sticky error, grammar misuse) and of the builders of the agent's own
 * envelopes written with it: target status, stored results, duplicate
 * acks, each against the bytes the agent has always sent.
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
#include "amon_json.h"
#include "amon_json_write.h"


#define MAX 65536

#define S(s)  ((amon_str_t) amon_string(s))
#define NONE  ((amon_str_t) amon_null_string)
#define UUID1 "6f1c2a9e-0d4b-4c5e-9a51-3b7f0e2d8c11"


/* allocator hooks that can be told to fail */
typedef struct {
    int allocs;
    int fail; /* every allocation fails */
} counter_t;


static void *
counting_alloc(void *data, size_t size)
{
    counter_t *c = data;

    if (c->fail) {
        return NULL;
    }

    c->allocs++;

    return malloc(size);
}


static void
counting_free(void *data, void *p)
{
    (void) data;

    free(p);
}


static void
assert_str_equal_len(amon_str_t s, const char *want)
{
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.data, want, s.len);
}


static void
assert_out(const amon_buf_t *out, const char *want)
{
    assert_int_equal(out->len, strlen(want));
    assert_memory_equal(out->data, want, out->len);
}


/* Is the text one valid JSON value for the core's scanner? */
static int
valid_json(const amon_buf_t *out)
{
    amon_json_value_t root;
    amon_str_t        none = amon_null_string;

    return amon_json_scan(out->data, out->len, AMON_MAX_JSON_DEPTH, none, NULL,
               NULL, &root)
        == AMON_OK;
}


static void
test_containers_and_commas(void **state)
{
    size_t        first;
    amon_buf_t    out = {NULL, 0, 0};
    amon_json_w_t w;

    (void) state;

    amon_json_w_init(&w, &out, MAX, NULL);
    amon_json_w_object_begin(&w);
    amon_json_w_key(&w, "a");
    amon_json_w_int64(&w, 1);
    amon_json_w_key(&w, "b");
    amon_json_w_array_begin(&w);
    amon_json_w_bool(&w, 1);
    amon_json_w_bool(&w, 0);
    amon_json_w_null(&w);
    amon_json_w_array_begin(&w);
    amon_json_w_array_end(&w);
    amon_json_w_object_begin(&w);
    amon_json_w_object_end(&w);
    amon_json_w_cstring(&w, "x");
    amon_json_w_array_end(&w);
    amon_json_w_key(&w, "c");
    amon_json_w_object_begin(&w);
    amon_json_w_key(&w, "d");
    amon_json_w_raw(&w, "{\"e\":[1, 2]}", 12);
    amon_json_w_object_end(&w);
    amon_json_w_key(&w, "f");
    amon_json_w_cstring(&w, NULL);
    amon_json_w_object_end(&w);
    assert_int_equal(amon_json_w_finish(&w), AMON_OK);

    assert_out(&out,
        "{\"a\":1,\"b\":[true,false,null,[],{},\"x\"],"
        "\"c\":{\"d\":{\"e\":[1, 2]}},\"f\":\"\"}");
    assert_true(valid_json(&out));
    first = out.len;

    /* a top-level scalar, appended after what the buffer holds */
    amon_json_w_init(&w, &out, MAX, NULL);
    amon_json_w_int64(&w, 7);
    assert_int_equal(amon_json_w_finish(&w), AMON_OK);
    assert_int_equal(out.len, first + 1);
    assert_memory_equal(out.data + first, "7", 1);

    /* nothing written is fine: an empty text */
    out.len = 0;
    amon_json_w_init(&w, &out, MAX, NULL);
    assert_int_equal(amon_json_w_finish(&w), AMON_OK);
    assert_int_equal(out.len, 0);

    amon_buf_free(&out, NULL);
}


static void
test_int64(void **state)
{
    amon_buf_t    out = {NULL, 0, 0};
    amon_json_w_t w;

    (void) state;

    amon_json_w_init(&w, &out, MAX, NULL);
    amon_json_w_array_begin(&w);
    amon_json_w_int64(&w, 0);
    amon_json_w_int64(&w, -1);
    amon_json_w_int64(&w, 1764120000000LL);
    amon_json_w_int64(&w, INT64_MAX);
    amon_json_w_int64(&w, INT64_MIN);
    amon_json_w_array_end(&w);
    assert_int_equal(amon_json_w_finish(&w), AMON_OK);

    assert_out(&out,
        "[0,-1,1764120000000,9223372036854775807,"
        "-9223372036854775808]");

    amon_buf_free(&out, NULL);
}


/* Every byte below 0x80, one at a time, as the escaping rules say. */
static void
test_escape_ascii(void **state)
{
    amon_buf_t    out = {NULL, 0, 0};
    amon_json_w_t w;
    unsigned      c;
    unsigned char ch;
    char          want[16];

    (void) state;

    for (c = 0; c < 0x80; c++) {
        ch = (unsigned char) c;

        if (c == '"' || c == '\\') {
            snprintf(want, sizeof(want), "\"\\%c\"", (char) c);

        } else if (c < 0x20) {
            snprintf(want, sizeof(want), "\"\\u%04x\"", c);

        } else {
            snprintf(want, sizeof(want), "\"%c\"", (char) c);
        }

        out.len = 0;
        amon_json_w_init(&w, &out, MAX, NULL);
        amon_json_w_string(&w, (amon_str_t){&ch, 1});
        assert_int_equal(amon_json_w_finish(&w), AMON_OK);
        assert_out(&out, want);
        assert_true(valid_json(&out));
    }

    amon_buf_free(&out, NULL);
}


static void
test_escape_strings(void **state)
{
    amon_buf_t    out = {NULL, 0, 0};
    amon_json_w_t w;
    const char    mixed[] = "a\"b\\c\n\t\x01\x1f\x7f /<>";
    const char    utf8[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";

    (void) state;

    amon_json_w_init(&w, &out, MAX, NULL);
    amon_json_w_array_begin(&w);
    amon_json_w_cstring(&w, mixed);
    amon_json_w_cstring(&w, utf8);
    amon_json_w_string(&w, NONE);
    /* a NUL inside a counted string is a control character */
    amon_json_w_string(&w, (amon_str_t){(const unsigned char *) "a\0b", 3});
    amon_json_w_array_end(&w);
    assert_int_equal(amon_json_w_finish(&w), AMON_OK);

    /* non-ASCII and DEL verbatim, '/' not escaped */
    assert_out(&out,
        "[\"a\\\"b\\\\c\\u000a\\u0009\\u0001\\u001f\x7f /<>\","
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\",\"\","
        "\"a\\u0000b\"]");
    assert_true(valid_json(&out));

    /* keys are escaped alike */
    out.len = 0;
    amon_json_w_init(&w, &out, MAX, NULL);
    amon_json_w_object_begin(&w);
    amon_json_w_key(&w, "k\"\n\xc3\xa9");
    amon_json_w_int64(&w, 1);
    amon_json_w_object_end(&w);
    assert_int_equal(amon_json_w_finish(&w), AMON_OK);
    assert_out(&out, "{\"k\\\"\\u000a\xc3\xa9\":1}");

    /* the same bytes as amon_json_append_string() */
    out.len = 0;
    assert_int_equal(
        amon_json_append_string(&out, MAX, NULL, S("a\"b\\c\n\t\x01\x7f")),
        AMON_OK);
    assert_out(&out, "\"a\\\"b\\\\c\\u000a\\u0009\\u0001\x7f\"");

    amon_buf_free(&out, NULL);
}


/* Not UTF-8: AMON_EINVAL, and nothing is left in the buffer. */
static void
test_invalid_utf8(void **state)
{
    amon_buf_t    out = {NULL, 0, 0};
    amon_json_w_t w;
    const char   *bad[] = {"\xff", "\xc3", "\xc0\xaf", "\xed\xa0\x80",
          "\xf4\x90\x80\x80", "ok\x80"};
    size_t        i;

    (void) state;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        out.len = 0;
        amon_json_append_string(&out, MAX, NULL, S("keep"));

        amon_json_w_init(&w, &out, MAX, NULL);
        amon_json_w_object_begin(&w);
        amon_json_w_key(&w, "v");
        amon_json_w_cstring(&w, bad[i]);
        amon_json_w_object_end(&w);
        assert_int_equal(amon_json_w_error(&w), AMON_EINVAL);
        assert_int_equal(amon_json_w_finish(&w), AMON_EINVAL);
        assert_out(&out, "\"keep\"");

        out.len = 0;
        assert_int_equal(
            amon_json_append_string(&out, MAX, NULL,
                (amon_str_t){(const unsigned char *) bad[i], strlen(bad[i])}),
            AMON_EINVAL);
        assert_int_equal(out.len, 0);

        /* as a key too */
        amon_json_w_init(&w, &out, MAX, NULL);
        amon_json_w_object_begin(&w);
        amon_json_w_key(&w, bad[i]);
        amon_json_w_int64(&w, 1);
        amon_json_w_object_end(&w);
        assert_int_equal(amon_json_w_finish(&w), AMON_EINVAL);
        assert_int_equal(out.len, 0);
    }

    amon_buf_free(&out, NULL);
}


/* The limit is exact: "max" bytes fit, one more does not. */
static void
test_limits(void **state)
{
    amon_buf_t    out = {NULL, 0, 0};
    amon_json_w_t w;
    size_t        max;
    const char    want[] = "{\"k\":\"v\\u0001\",\"n\":[12345]}";

    (void) state;

    for (max = 0; max <= sizeof(want) + 1; max++) {
        out.len = 0;
        amon_json_w_init(&w, &out, max, NULL);
        amon_json_w_object_begin(&w);
        amon_json_w_key(&w, "k");
        amon_json_w_cstring(&w, "v\x01");
        amon_json_w_key(&w, "n");
        amon_json_w_array_begin(&w);
        amon_json_w_int64(&w, 12345);
        amon_json_w_array_end(&w);
        amon_json_w_object_end(&w);

        if (max < sizeof(want) - 1) {
            assert_int_equal(amon_json_w_finish(&w), AMON_ETOOBIG);
            assert_int_equal(out.len, 0);
            assert_true(out.len <= max);

        } else {
            assert_int_equal(amon_json_w_finish(&w), AMON_OK);
            assert_out(&out, want);
        }
    }

    /* a buffer already larger than "max": the used length is what counts */
    out.len = 0;
    assert_int_equal(amon_buf_reserve(&out, 1000, 1000, NULL), AMON_OK);
    out.len = 10;
    amon_json_w_init(&w, &out, 12, NULL);
    amon_json_w_cstring(&w, "ab");
    assert_int_equal(amon_json_w_finish(&w), AMON_ETOOBIG);
    assert_int_equal(out.len, 10);

    amon_json_w_init(&w, &out, 12, NULL);
    amon_json_w_raw(&w, "[]", 2);
    assert_int_equal(amon_json_w_finish(&w), AMON_OK);
    assert_int_equal(out.len, 12);

    amon_buf_free(&out, NULL);
}


/* The first error sticks: later calls write nothing and keep it. */
static void
test_sticky_error(void **state)
{
    amon_buf_t       out = {NULL, 0, 0};
    amon_json_w_t    w;
    counter_t        c = {0, 0};
    amon_allocator_t a = {counting_alloc, counting_free, &c};

    (void) state;

    c.fail = 1;
    amon_json_w_init(&w, &out, MAX, &a);
    amon_json_w_object_begin(&w);
    assert_int_equal(amon_json_w_error(&w), AMON_ENOMEM);
    amon_json_w_key(&w, "a");
    amon_json_w_cstring(&w, "\xff");
    amon_json_w_object_end(&w);
    assert_int_equal(amon_json_w_finish(&w), AMON_ENOMEM);
    assert_int_equal(out.len, 0);
    assert_null(out.data);

    /* too big, then more calls that would fit: still too big */
    c.fail = 0;
    amon_json_w_init(&w, &out, 8, &a);
    amon_json_w_array_begin(&w);
    amon_json_w_cstring(&w, "0123456789");
    amon_json_w_int64(&w, 1);
    amon_json_w_array_end(&w);
    assert_int_equal(amon_json_w_finish(&w), AMON_ETOOBIG);
    assert_int_equal(out.len, 0);

    amon_buf_free(&out, &a);
}


/* Calls that cannot make JSON are AMON_EINVAL, never bad output. */
static void
test_misuse(void **state)
{
    amon_buf_t    out = {NULL, 0, 0};
    amon_json_w_t w;
    unsigned      i;

    (void) state;

    /* a value in an object without its key */
    amon_json_w_init(&w, &out, MAX, NULL);
    amon_json_w_object_begin(&w);
    amon_json_w_int64(&w, 1);
    assert_int_equal(amon_json_w_finish(&w), AMON_EINVAL);
    assert_int_equal(out.len, 0);

    /* a key in an array, a key at the top, two keys in a row */
    amon_json_w_init(&w, &out, MAX, NULL);
    amon_json_w_array_begin(&w);
    amon_json_w_key(&w, "a");
    assert_int_equal(amon_json_w_finish(&w), AMON_EINVAL);

    amon_json_w_init(&w, &out, MAX, NULL);
    amon_json_w_key(&w, "a");
    assert_int_equal(amon_json_w_finish(&w), AMON_EINVAL);

    amon_json_w_init(&w, &out, MAX, NULL);
    amon_json_w_object_begin(&w);
    amon_json_w_key(&w, "a");
    amon_json_w_key(&w, "b");
    assert_int_equal(amon_json_w_finish(&w), AMON_EINVAL);

    /* a key without a value at the end */
    amon_json_w_init(&w, &out, MAX, NULL);
    amon_json_w_object_begin(&w);
    amon_json_w_key(&w, "a");
    amon_json_w_object_end(&w);
    assert_int_equal(amon_json_w_finish(&w), AMON_EINVAL);

    /* mismatched and unbalanced containers */
    amon_json_w_init(&w, &out, MAX, NULL);
    amon_json_w_object_begin(&w);
    amon_json_w_array_end(&w);
    assert_int_equal(amon_json_w_finish(&w), AMON_EINVAL);

    amon_json_w_init(&w, &out, MAX, NULL);
    amon_json_w_array_begin(&w);
    assert_int_equal(amon_json_w_finish(&w), AMON_EINVAL);

    amon_json_w_init(&w, &out, MAX, NULL);
    amon_json_w_array_end(&w);
    assert_int_equal(amon_json_w_finish(&w), AMON_EINVAL);

    /* two top-level values; an empty raw value */
    amon_json_w_init(&w, &out, MAX, NULL);
    amon_json_w_int64(&w, 1);
    amon_json_w_int64(&w, 2);
    assert_int_equal(amon_json_w_finish(&w), AMON_EINVAL);

    amon_json_w_init(&w, &out, MAX, NULL);
    amon_json_w_raw(&w, "", 0);
    assert_int_equal(amon_json_w_finish(&w), AMON_EINVAL);
    assert_int_equal(out.len, 0);

    /* nesting: AMON_JSON_W_MAX_DEPTH levels fit, one more does not */
    amon_json_w_init(&w, &out, MAX, NULL);
    for (i = 0; i < AMON_JSON_W_MAX_DEPTH; i++) {
        amon_json_w_array_begin(&w);
    }
    for (i = 0; i < AMON_JSON_W_MAX_DEPTH; i++) {
        amon_json_w_array_end(&w);
    }
    assert_int_equal(amon_json_w_finish(&w), AMON_OK);
    assert_int_equal(out.len, 2 * AMON_JSON_W_MAX_DEPTH);

    out.len = 0;
    amon_json_w_init(&w, &out, MAX, NULL);
    for (i = 0; i <= AMON_JSON_W_MAX_DEPTH; i++) {
        amon_json_w_array_begin(&w);
    }
    assert_int_equal(amon_json_w_finish(&w), AMON_EDEPTH);
    assert_int_equal(out.len, 0);

    amon_buf_free(&out, NULL);
}


/* A copy of the writer saves a position; restoring it undoes the rest. */
static void
test_save_restore(void **state)
{
    amon_buf_t    out = {NULL, 0, 0};
    amon_json_w_t w, saved;
    size_t        mark;

    (void) state;

    amon_json_w_init(&w, &out, 24, NULL);
    amon_json_w_object_begin(&w);
    amon_json_w_key(&w, "a");
    amon_json_w_int64(&w, 1);

    saved = w;
    mark = out.len;

    amon_json_w_key(&w, "b");
    amon_json_w_cstring(&w, "too long for the limit");
    assert_int_equal(amon_json_w_error(&w), AMON_ETOOBIG);

    w = saved;
    out.len = mark;

    amon_json_w_key(&w, "c");
    amon_json_w_int64(&w, 2);
    amon_json_w_object_end(&w);
    assert_int_equal(amon_json_w_finish(&w), AMON_OK);
    assert_out(&out, "{\"a\":1,\"c\":2}");

    amon_buf_free(&out, NULL);
}


/* --- the agent's own envelopes ------------------------------------------ */


/*
 * The target_status envelope as the agent's router has always written it:
 * the payload from a template, then the generic envelope builder.
 */
static void
target_status_reference(amon_buf_t *out, amon_str_t msg_id, amon_str_t id,
    int64_t ts, const char *state, amon_str_t url)
{
    unsigned char       payload[AMON_MAX_URL_LEN + 512];
    amon_buf_t          b;
    amon_envelope_out_t e;
    int                 n;

    b.data = payload;
    b.cap = sizeof(payload);
    b.len =
        (size_t) snprintf((char *) payload, sizeof(payload), "{\"target_id\":");
    assert_int_equal(
        amon_json_append_string(&b, sizeof(payload) - 64, NULL, id), AMON_OK);
    n = snprintf((char *) payload + b.len, sizeof(payload) - b.len,
        ",\"state\":\"%s\",\"url\":", state);
    b.len += (size_t) n;
    assert_int_equal(
        amon_json_append_string(&b, sizeof(payload) - 2, NULL, url), AMON_OK);
    payload[b.len++] = '}';

    memset(&e, 0, sizeof(e));
    e.msg_id = msg_id;
    e.type = S("target_status");
    e.target_id = id;
    e.timestamp = ts;
    e.payload_json.data = payload;
    e.payload_json.len = b.len;

    assert_int_equal(amon_envelope_build_json(out, MAX, NULL, &e), AMON_OK);
}


/* a target_status without since/reason, through the core's builder */
static int
build_target_status(amon_buf_t *out, size_t max, amon_str_t msg_id,
    amon_str_t target_id, int64_t timestamp, const char *st, amon_str_t url)
{
    return amon_envelope_build_target_state(
        out, max, NULL, msg_id, target_id, timestamp, st, url, -1, NONE);
}


static void
test_build_target_status(void **state)
{
    amon_buf_t      out = {NULL, 0, 0}, ref = {NULL, 0, 0};
    amon_envelope_t env;
    const char      want[] =
        "{\"msg_id\":\"" UUID1 "\",\"type\":\"target_status\","
        "\"target_id\":\"demo-a\",\"timestamp\":1764120000000,"
        "\"payload\":{\"target_id\":\"demo-a\",\"state\":\"up\","
        "\"url\":\"ws://127.0.0.1:8765/\"}}";
    static const char *ids[] = {"demo-a", "t\"q\\b", "caf\xc3\xa9\x01", ""};
    static const char *states[] = {"up", "down"};
    size_t             i, j;

    (void) state;

    assert_int_equal(build_target_status(&out, MAX, S(UUID1), S("demo-a"),
                         1764120000000LL, "up", S("ws://127.0.0.1:8765/")),
        AMON_OK);
    assert_out(&out, want);

    assert_int_equal(
        amon_envelope_decode_json(&env, out.data, out.len), AMON_OK);
    assert_int_equal(env.type, AMON_MSG_TARGET_STATUS);

    /* byte for byte what the router's template made */
    for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        for (j = 0; j < 2; j++) {
            amon_str_t id = {(const unsigned char *) ids[i], strlen(ids[i])};

            out.len = 0;
            ref.len = 0;
            target_status_reference(
                &ref, S(UUID1), id, 5, states[j], S("ws://h:1/p?q=\"x\""));
            assert_int_equal(build_target_status(&out, MAX, S(UUID1), id, 5,
                                 states[j], S("ws://h:1/p?q=\"x\"")),
                AMON_OK);
            assert_int_equal(out.len, ref.len);
            assert_memory_equal(out.data, ref.data, ref.len);
        }
    }

    /* limits: exactly the size fits */
    out.len = 0;
    assert_int_equal(
        build_target_status(&out, sizeof(want) - 2, S(UUID1), S("demo-a"),
            1764120000000LL, "up", S("ws://127.0.0.1:8765/")),
        AMON_ETOOBIG);
    assert_int_equal(out.len, 0);
    assert_int_equal(
        build_target_status(&out, sizeof(want) - 1, S(UUID1), S("demo-a"),
            1764120000000LL, "up", S("ws://127.0.0.1:8765/")),
        AMON_OK);

    /* with what the agent knows of the state: since and reason */
    out.len = 0;
    assert_int_equal(
        amon_envelope_build_target_state(&out, MAX, NULL, S(UUID1), S("demo-a"),
            5, "down", S("ws://h:1/"), 1764120000000LL, S("connection lost")),
        AMON_OK);
    assert_out(&out,
        "{\"msg_id\":\"" UUID1 "\",\"type\":\"target_status\","
        "\"target_id\":\"demo-a\",\"timestamp\":5,\"payload\":{"
        "\"target_id\":\"demo-a\",\"state\":\"down\",\"url\":\"ws://h:1/\","
        "\"since\":1764120000000,\"reason\":\"connection lost\"}}");

    amon_buf_free(&out, NULL);
    amon_buf_free(&ref, NULL);
}


/* The stored results of an action, as the router's templates made them. */
static void
test_build_result(void **state)
{
    amon_buf_t out = {NULL, 0, 0};
    amon_str_t msg, none = amon_null_string;

    (void) state;

    assert_int_equal(
        amon_envelope_build_result(&out, MAX, NULL, 1, NULL, NULL), AMON_OK);
    assert_out(&out, "{\"success\":true}");

    out.len = 0;
    assert_int_equal(
        amon_envelope_build_result(&out, MAX, NULL, 0, NULL, NULL), AMON_OK);
    assert_out(&out, "{\"success\":false}");

    /* an ack without a message still stores "message":"" */
    out.len = 0;
    assert_int_equal(
        amon_envelope_build_result(&out, MAX, NULL, 1, NULL, &none), AMON_OK);
    assert_out(&out, "{\"success\":true,\"message\":\"\"}");

    out.len = 0;
    msg = S("done \"ok\"\n");
    assert_int_equal(
        amon_envelope_build_result(&out, MAX, NULL, 0, NULL, &msg), AMON_OK);
    assert_out(
        &out, "{\"success\":false,\"message\":\"done \\\"ok\\\"\\u000a\"}");

    out.len = 0;
    msg = S("no SDK answered in time");
    assert_int_equal(
        amon_envelope_build_result(&out, MAX, NULL, 0, "TIMEOUT", &msg),
        AMON_OK);
    assert_out(&out,
        "{\"success\":false,\"code\":\"TIMEOUT\","
        "\"message\":\"no SDK answered in time\"}");

    /* the router's 255-byte store buffer: too long is an error, not cut */
    out.len = 0;
    msg.data = (const unsigned char *) "\x01\x01\x01\x01\x01\x01\x01\x01"
                                       "\x01\x01\x01\x01\x01\x01\x01\x01"
                                       "\x01\x01\x01\x01\x01\x01\x01\x01"
                                       "\x01\x01\x01\x01\x01\x01\x01\x01"
                                       "\x01\x01\x01\x01\x01\x01\x01\x01";
    msg.len = 40;
    assert_int_equal(amon_envelope_build_result(&out, 255, NULL, 1, NULL, &msg),
        AMON_ETOOBIG);
    assert_int_equal(out.len, 0);

    msg.data = (const unsigned char *) "\xff";
    msg.len = 1;
    assert_int_equal(amon_envelope_build_result(&out, MAX, NULL, 1, NULL, &msg),
        AMON_EINVAL);
    assert_int_equal(out.len, 0);

    amon_buf_free(&out, NULL);
}


/* a duplicate ack as reply.c makes one, through the generic builder */
static int
build_duplicate_ack(amon_buf_t *out, amon_str_t original, int binary)
{
    amon_ack_out_t ack;

    memset(&ack, 0, sizeof(ack));
    ack.msg_id = S(UUID1);
    ack.target_id = S("demo");
    ack.timestamp = 12;
    ack.action_msg_id = S("m1");
    ack.success = 1;
    ack.message = S("duplicate ignored");
    ack.duplicate = 1;
    ack.original = original;

    return amon_envelope_build_ack(out, MAX, NULL, &ack, binary);
}


static void
test_build_duplicate_ack(void **state)
{
    amon_buf_t      out = {NULL, 0, 0};
    amon_envelope_t env;
    const char      want[] =
        "{\"msg_id\":\"" UUID1 "\",\"type\":\"action_ack\","
        "\"target_id\":\"demo\",\"timestamp\":12,"
        "\"payload\":{\"action_msg_id\":\"m1\",\"success\":true,"
        "\"message\":\"duplicate ignored\",\"duplicate\":true,"
        "\"original\":{\"success\":true}}}";

    (void) state;

    assert_int_equal(
        build_duplicate_ack(&out, S("{\"success\":true}"), 0), AMON_OK);
    assert_out(&out, want);

    assert_int_equal(
        amon_envelope_decode_json(&env, out.data, out.len), AMON_OK);
    assert_int_equal(env.type, AMON_MSG_ACTION_ACK);
    assert_true(env.success);
    assert_str_equal_len(env.message, "duplicate ignored");

    /* the protobuf form decodes to the same duplicate ack */
    out.len = 0;
    assert_int_equal(build_duplicate_ack(&out, NONE, 1), AMON_OK);
    assert_int_equal(
        amon_envelope_decode_pb(&env, out.data, out.len, NULL), AMON_OK);
    assert_int_equal(env.type, AMON_MSG_ACTION_ACK);
    assert_true(env.success);
    assert_str_equal_len(env.message, "duplicate ignored");
    assert_str_equal_len(env.action_msg_id, "m1");
    amon_envelope_release(&env);

    /* an original that is not a JSON object */
    out.len = 0;
    assert_int_equal(build_duplicate_ack(&out, S("[1]"), 0), AMON_EINVAL);
    assert_int_equal(out.len, 0);

    amon_buf_free(&out, NULL);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_containers_and_commas),
        cmocka_unit_test(test_int64),
        cmocka_unit_test(test_escape_ascii),
        cmocka_unit_test(test_escape_strings),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_sticky_error),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_save_restore),
        cmocka_unit_test(test_build_target_status),
        cmocka_unit_test(test_build_result),
        cmocka_unit_test(test_build_duplicate_ack),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
