/*
 * Copyright (C) AMonitor authors
 *
 * Unit tests of the envelope codec: decoding of every message type in
 * JSON and protobuf, every error code, unescaping, limits, builders and
 * round trips (build -> decode), protobuf bytes against protobuf-c's own
 * encoder.
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
#include "amonitor.pb-c.h"


#define MAX 65536

#define S(s) ((amon_str_t) amon_string(s))
#define NONE ((amon_str_t) amon_null_string)


static const char action_json[] =
    "{\"msg_id\":\"6f1c2a9e-0d4b-4c5e-9a51-3b7f0e2d8c11\","
    "\"trace_id\":\"tr-1\",\"type\":\"action\",\"target_id\":\"demo-target-a\","
    "\"timestamp\":1764120000000,"
    "\"payload\":{\"action\":\"restart\",\"params\":{\"from\":\"panel\","
    "\"n\":[1,2]},\"target_url\":\"ws://127.0.0.1:8765/\"}}";


/* allocator hooks that count, and can be told to fail */
typedef struct {
    int allocs;
    int frees;
    int fail_after; /* fail the n-th allocation and later (0: never) */
} counter_t;


static void *
counting_alloc(void *data, size_t size)
{
    counter_t *c = data;

    if (c->fail_after && c->allocs + 1 >= c->fail_after) {
        return NULL;
    }

    c->allocs++;

    return malloc(size);
}


static void
counting_free(void *data, void *p)
{
    counter_t *c = data;

    c->frees++;
    free(p);
}


static int
decode(amon_envelope_t *env, const char *s)
{
    int           rc;
    static char   copy[32768];
    static size_t n;

    /* decode from a copy: fields must point into the given buffer */
    n = strlen(s);
    assert_true(n < sizeof(copy));
    memcpy(copy, s, n);

    rc = amon_envelope_decode_json(env, (const unsigned char *) copy, n);

    return rc;
}


static void
assert_str(amon_str_t s, const char *want)
{
    if (want == NULL) {
        assert_null(s.data);
        assert_int_equal(s.len, 0);
        return;
    }

    assert_non_null(s.data);
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.data, want, s.len);
}


static int
points_into(amon_str_t s, const void *p, size_t len)
{
    const unsigned char *b = p;

    return s.data >= b && s.data + s.len <= b + len;
}


static void
test_decode_action(void **state)
{
    amon_envelope_t env;
    const char     *params, *payload;

    (void) state;

    assert_int_equal(
        amon_envelope_decode_json(
            &env, (const unsigned char *) action_json, sizeof(action_json) - 1),
        AMON_OK);

    assert_int_equal(env.type, AMON_MSG_ACTION);
    assert_false(env.binary);
    assert_str(env.type_name, "action");
    assert_str(env.msg_id, "6f1c2a9e-0d4b-4c5e-9a51-3b7f0e2d8c11");
    assert_str(env.trace_id, "tr-1");
    assert_str(env.target_id, "demo-target-a");
    assert_true(env.has_timestamp);
    assert_true(env.timestamp == 1764120000000LL);
    assert_true(env.has_payload);
    assert_str(env.action, "restart");
    assert_str(env.target_url, "ws://127.0.0.1:8765/");
    assert_false(env.has_success);
    assert_str(env.message, NULL);
    assert_str(env.payload_target_id, NULL);

    /* the payload and params spans are exactly the raw bytes */
    payload = strstr(action_json, "{\"action\"");
    assert_ptr_equal(env.payload.data, (const unsigned char *) payload);
    assert_int_equal(env.payload.len, strlen(payload) - 1);

    params = strstr(action_json, "{\"from\"");
    assert_ptr_equal(env.params.data, (const unsigned char *) params);
    assert_int_equal(
        env.params.len, strlen("{\"from\":\"panel\",\"n\":[1,2]}"));

    /* verbatim strings point into the input */
    assert_true(points_into(env.msg_id, action_json, sizeof(action_json)));
    assert_true(points_into(env.action, action_json, sizeof(action_json)));

    amon_envelope_release(&env);
}


static void
test_decode_types(void **state)
{
    amon_envelope_t env;

    (void) state;

    assert_int_equal(decode(&env,
                         "{\"msg_id\":\"h1\",\"type\":\"heartbeat\","
                         "\"target_id\":\"t\",\"timestamp\":5,\"payload\":"
                         "{\"target_id\":\"t\",\"status\":\"up\",\"metrics\":"
                         "{\"cpu\":\"0.5\",\"rss\":1024}}}"),
        AMON_OK);
    assert_int_equal(env.type, AMON_MSG_HEARTBEAT);
    assert_str(env.payload_target_id, "t");
    assert_str(env.action, NULL);

    assert_int_equal(decode(&env,
                         "{\"msg_id\":\"e1\",\"type\":\"event\",\"payload\":"
                         "{\"target_id\":\"t2\",\"event_name\":\"started\","
                         "\"data\":[1,{\"x\":null}]}}"),
        AMON_OK);
    assert_int_equal(env.type, AMON_MSG_EVENT);
    assert_str(env.payload_target_id, "t2");
    assert_str(env.event_name, "started");
    assert_false(env.has_timestamp);

    assert_int_equal(decode(&env,
                         "{\"msg_id\":\"r1\",\"type\":\"register\",\"payload\":"
                         "{\"target_id\":\"t3\",\"sdk_url\":\"ws://h:1/\","
                         "\"metadata\":{\"v\":\"1\"}}}"),
        AMON_OK);
    assert_int_equal(env.type, AMON_MSG_REGISTER);
    assert_str(env.sdk_url, "ws://h:1/");
    assert_str(env.payload_target_id, "t3");

    assert_int_equal(
        decode(&env,
            "{\"msg_id\":\"k1\",\"type\":\"action_ack\",\"payload\":"
            "{\"action_msg_id\":\"a1\",\"success\":false,"
            "\"message\":\"unsupported action: x\"}}"),
        AMON_OK);
    assert_int_equal(env.type, AMON_MSG_ACTION_ACK);
    assert_str(env.action_msg_id, "a1");
    assert_true(env.has_success);
    assert_int_equal(env.success, 0);
    assert_str(env.message, "unsupported action: x");

    assert_int_equal(
        decode(&env,
            "{\"msg_id\":\"k2\",\"type\":\"action_ack\",\"payload\":"
            "{\"action_msg_id\":\"a1\",\"success\":true}}"),
        AMON_OK);
    assert_true(env.has_success);
    assert_int_equal(env.success, 1);

    /* what an agent adds to a duplicate's ack, of the schema's types */
    assert_int_equal(
        decode(&env,
            "{\"msg_id\":\"k3\",\"type\":\"action_ack\",\"payload\":"
            "{\"action_msg_id\":\"a1\",\"success\":true,"
            "\"duplicate\":true,\"state\":\"done\",\"original\":{}}}"),
        AMON_OK);
    assert_int_equal(
        decode(&env,
            "{\"msg_id\":\"k4\",\"type\":\"action_ack\",\"payload\":"
            "{\"action_msg_id\":\"a1\",\"duplicate\":null,"
            "\"state\":null}}"),
        AMON_OK);

    assert_int_equal(decode(&env,
                         "{\"msg_id\":\"x1\",\"type\":\"error\",\"payload\":"
                         "{\"code\":\"UNKNOWN_TARGET\",\"message\":\"no\"}}"),
        AMON_OK);
    assert_int_equal(env.type, AMON_MSG_ERROR);
    assert_str(env.code, "UNKNOWN_TARGET");
    assert_str(env.message, "no");

    assert_int_equal(
        decode(&env,
            "{\"msg_id\":\"s1\",\"type\":\"target_status\","
            "\"payload\":{\"target_id\":\"t\",\"status\":\"down\"}}"),
        AMON_OK);
    assert_int_equal(env.type, AMON_MSG_TARGET_STATUS);
    assert_str(env.payload_target_id, "t");

    /* an unknown type is allowed and keeps its name */
    assert_int_equal(decode(&env,
                         "{\"msg_id\":\"u1\",\"type\":\"telemetry\","
                         "\"payload\":{\"action\":5}}"),
        AMON_OK);
    assert_int_equal(env.type, AMON_MSG_UNKNOWN);
    assert_str(env.type_name, "telemetry");
    assert_true(env.has_payload);

    /* a heartbeat needs no payload; null counts as absent */
    assert_int_equal(decode(&env,
                         "{\"msg_id\":\"h2\",\"type\":\"heartbeat\","
                         "\"trace_id\":null,\"target_id\":null,"
                         "\"timestamp\":null,\"payload\":null}"),
        AMON_OK);
    assert_false(env.has_payload);
    assert_false(env.has_timestamp);
    assert_str(env.trace_id, NULL);
    assert_str(env.target_id, NULL);
    assert_str(env.payload, NULL);

    /* other types' payload fields are not looked at */
    assert_int_equal(decode(&env,
                         "{\"msg_id\":\"e2\",\"type\":\"event\","
                         "\"payload\":{\"success\":\"yes\"}}"),
        AMON_OK);
    assert_false(env.has_success);
}


static void
test_decode_escapes(void **state)
{
    amon_envelope_t env;
    const char      s[] = "{\"msg_id\":\"a\\\"b\\\\c\\u00e9\\ud83d\\ude00\\n\","
                          "\"type\":\"act\\u0069on\",\"payload\":"
                          "{\"action\":\"re\\/start\",\"target_url\":\"ws://x/\"}"
                          ",\"target_id\":\"plain\"}";

    (void) state;

    assert_int_equal(amon_envelope_decode_json(
                         &env, (const unsigned char *) s, sizeof(s) - 1),
        AMON_OK);

    assert_str(env.msg_id, "a\"b\\c\xc3\xa9\xf0\x9f\x98\x80\n");
    assert_str(env.type_name, "action");
    assert_int_equal(env.type, AMON_MSG_ACTION);
    assert_str(env.action, "re/start");
    assert_str(env.target_id, "plain");

    /* escaped ones live in the scratch space, the others in the input */
    assert_true(points_into(env.msg_id, env.scratch, sizeof(env.scratch)));
    assert_true(points_into(env.action, env.scratch, sizeof(env.scratch)));
    assert_true(points_into(env.target_id, s, sizeof(s)));

    /* escaped keys count too */
    assert_int_equal(decode(&env,
                         "{\"m\\u0073g_id\":\"m\",\"\\u0074ype\":"
                         "\"error\",\"p\\u0061yload\":{\"c\\u006fde\":"
                         "\"C\"}}"),
        AMON_OK);
    assert_str(env.msg_id, "m");
    assert_str(env.code, "C");
}


static void
test_decode_extra_and_duplicates(void **state)
{
    amon_envelope_t env;

    (void) state;

    assert_int_equal(decode(&env,
                         "{\"x\":{\"msg_id\":1,\"type\":[]},\"msg_id\":\"m1\","
                         "\"extra\":[{\"payload\":5},null,true,-1.5e-3],"
                         "\"type\":\"action\",\"version\":2,\"payload\":"
                         "{\"action\":\"a\",\"unknown\":{\"deep\":[[[]]]}}}"),
        AMON_OK);
    assert_str(env.msg_id, "m1");
    assert_str(env.action, "a");

    /* unknown members may repeat: the agent does not read them */
    assert_int_equal(decode(&env,
                         "{\"msg_id\":\"m2\",\"x\":1,\"x\":2,\"type\":"
                         "\"action\",\"payload\":{\"action\":\"a\","
                         "\"y\":1,\"y\":[],\"params\":{\"z\":1,\"z\":2}}}"),
        AMON_OK);
    assert_str(env.msg_id, "m2");
    assert_int_equal(env.has_source, 0);

    /* members only the agent sets are found, whatever their value */
    assert_int_equal(decode(&env,
                         "{\"msg_id\":\"m3\",\"type\":\"heartbeat\","
                         "\"source\":null}"),
        AMON_OK);
    assert_int_equal(env.has_source, 1);
    assert_int_equal(
        decode(&env,
            "{\"msg_id\":\"m4\",\"type\":\"action_ack\","
            "\"payload\":{\"action_msg_id\":\"a\",\"final\":null}}"),
        AMON_OK);
    assert_int_equal(env.final_member, 1);
    assert_int_equal(env.has_final, 0);
    assert_int_equal(decode(&env,
                         "{\"msg_id\":\"m5\",\"type\":\"action_ack\","
                         "\"payload\":{\"action_msg_id\":\"a\"}}"),
        AMON_OK);
    assert_int_equal(env.final_member, 0);
}


/*
 * A field the agent reads, given twice, is refused: most parsers keep the
 * last copy, and the agent must not read another message than the SDK.
 */
static void
test_decode_duplicate_fields(void **state)
{
    amon_envelope_t    env;
    unsigned           i;
    static const char *dups[] = {
        "{\"msg_id\":\"first\",\"msg_id\":\"second\",\"type\":\"action\","
        "\"payload\":{\"action\":\"a\"}}",
        /* the same name with an escape */
        "{\"msg_id\":\"first\",\"msg\\u005fid\":\"second\",\"type\":"
        "\"action\",\"payload\":{\"action\":\"a\"}}",
        "{\"msg_id\":\"m\",\"type\":\"action\",\"type\":\"heartbeat\"}",
        "{\"msg_id\":\"m\",\"type\":\"action\",\"target_id\":\"a\","
        "\"target_id\":\"b\",\"payload\":{\"action\":\"a\"}}",
        "{\"msg_id\":\"m\",\"type\":\"action\",\"payload\":"
        "{\"action\":\"one\"},\"payload\":{\"action\":\"two\"}}",
        "{\"msg_id\":\"m\",\"type\":\"action\",\"payload\":5,\"payload\":"
        "{\"action\":\"two\"}}",
        "{\"msg_id\":\"m\",\"type\":\"action\",\"payload\":"
        "{\"action\":\"one\",\"action\":\"two\"}}",
        "{\"msg_id\":\"m\",\"type\":\"action\",\"payload\":"
        "{\"action\":\"a\",\"params\":{},\"params\":{\"x\":1}}}",
        "{\"msg_id\":\"m\",\"type\":\"action_ack\",\"payload\":"
        "{\"action_msg_id\":\"a\",\"success\":true,\"success\":false}}",
        "{\"msg_id\":\"m\",\"type\":\"heartbeat\",\"timestamp\":1,"
        "\"timestamp\":2}",
        "{\"source\":\"a\",\"msg_id\":\"m\",\"type\":\"heartbeat\","
        "\"source\":\"b\"}",
    };

    (void) state;

    for (i = 0; i < sizeof(dups) / sizeof(dups[0]); i++) {
        assert_int_equal(decode(&env, dups[i]), AMON_EFIELD_DUP);
    }

    /* a text that is not JSON is refused as such, whatever its members */
    assert_int_equal(
        decode(&env, "{\"msg_id\":\"a\",\"msg_id\":\"b\",\"type\":"),
        AMON_EJSON);
    assert_int_equal(decode(&env,
                         "{\"msg_id\":\"a\",\"msg_id\":\"b\",\"x\":"
                         "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]"
                         "]]]]]]]]]]]]]]]]]]]}"),
        AMON_EDEPTH);

    /*
     * The ids given once are still read, so that the refusal can answer
     * them; one given twice is not (which copy would it be?).
     */
    assert_int_equal(decode(&env,
                         "{\"msg_id\":\"m1\",\"type\":\"action\",\"trace_id\":"
                         "\"t1\",\"target_id\":\"web\",\"payload\":{\"action\":"
                         "\"a\",\"action\":\"b\"}}"),
        AMON_EFIELD_DUP);
    assert_int_equal(env.type, AMON_MSG_ACTION);
    assert_str(env.msg_id, "m1");
    assert_str(env.trace_id, "t1");
    assert_str(env.target_id, "web");
    /* members after the repeated one count too */
    assert_int_equal(decode(&env,
                         "{\"payload\":{},\"payload\":{},\"type\":"
                         "\"action\",\"msg_id\":\"m2\"}"),
        AMON_EFIELD_DUP);
    assert_int_equal(env.type, AMON_MSG_ACTION);
    assert_str(env.msg_id, "m2");
    assert_int_equal(decode(&env, dups[0]), AMON_EFIELD_DUP);
    assert_int_equal(env.msg_id.len, 0);
    assert_null(env.msg_id.data);
    assert_int_equal(env.type, AMON_MSG_ACTION);
    assert_int_equal(decode(&env, dups[2]), AMON_EFIELD_DUP);
    assert_str(env.msg_id, "m");
    assert_int_equal(env.type_name.len, 0);
    assert_int_equal(env.type, AMON_MSG_UNKNOWN);
    /* an id of the wrong type is left out, the refusal stays the same */
    assert_int_equal(
        decode(&env, "{\"msg_id\":5,\"type\":\"action\",\"type\":\"x\"}"),
        AMON_EFIELD_DUP);
    assert_int_equal(env.msg_id.len, 0);
}


/*
 * Any root member refused (wrong type, too long, an empty msg_id): the
 * ids that are valid are read all the same, whatever their order, so that
 * the error answers the msg_id and trace_id and names the target.
 */
static void
test_decode_refused_keeps_ids(void **state)
{
    amon_envelope_t env;

    (void) state;

    assert_int_equal(decode(&env,
                         "{\"msg_id\":\"f2\",\"type\":\"action\",\"target_id\":"
                         "\"t-node\",\"trace_id\":7,\"payload\":{\"action\":"
                         "\"x\"}}"),
        AMON_EFIELD_TYPE);
    assert_str(env.msg_id, "f2");
    assert_str(env.target_id, "t-node");
    assert_int_equal(env.trace_id.len, 0);
    assert_int_equal(env.type, AMON_MSG_ACTION);

    assert_int_equal(decode(&env,
                         "{\"trace_id\":\"T8\",\"msg_id\":\"\",\"type\":"
                         "\"action\",\"target_id\":\"t\"}"),
        AMON_ENO_MSG_ID);
    assert_null(env.msg_id.data);
    assert_str(env.trace_id, "T8");
    assert_str(env.target_id, "t");

    assert_int_equal(
        decode(&env,
            "{\"msg_id\":\"m\",\"type\":\"action\",\"target_id\":"
            "\"w\",\"timestamp\":\"x\",\"trace_id\":\"t\\u0031\"}"),
        AMON_EFIELD_TYPE);
    assert_str(env.msg_id, "m");
    assert_str(env.trace_id, "t1");
    assert_str(env.target_id, "w");
}


typedef struct {
    const char *json;
    int         rc;
} bad_t;


static void
test_decode_errors(void **state)
{
    size_t             i;
    amon_envelope_t    env;
    static const bad_t bad[] = {
        {"hello", AMON_EJSON},
        {"", AMON_EJSON},
        {"{\"msg_id\":\"m\",\"type\":\"action\"", AMON_EJSON},
        {"{\"msg_id\":\"m\",\"type\":\"heartbeat\"} x", AMON_EJSON},
        {"{\"msg_id\":\"m\",\"type\":\"heartbeat\"}}", AMON_EJSON},
        {"{\"msg_id\":\"m\\q\",\"type\":\"heartbeat\"}", AMON_EJSON},
        {"{\"msg_id\":\"\\ud800\",\"type\":\"heartbeat\"}", AMON_EJSON},
        {"{\"msg_id\":\"\\udc00\\ud800\",\"type\":\"heartbeat\"}", AMON_EJSON},
        {"{\"msg_id\":\"\xff\",\"type\":\"heartbeat\"}", AMON_EJSON},
        {"{\"msg_id\":\"\xc3\",\"type\":\"heartbeat\"}", AMON_EJSON},
        {"{\"msg_id\":\"a\x01\",\"type\":\"heartbeat\"}", AMON_EJSON},
        {"{\"msg_id\":\"m\",\"type\":\"heartbeat\",\"payload\":{\"x\":\"\xed"
         "\xa0\x80\"}}",
            AMON_EJSON},
        {"[]", AMON_ENOTOBJ},
        {"[{\"msg_id\":\"m\",\"type\":\"heartbeat\"}]", AMON_ENOTOBJ},
        {"42", AMON_ENOTOBJ},
        {"\"str\"", AMON_ENOTOBJ},
        {"null", AMON_ENOTOBJ},
        {"{\"type\":\"heartbeat\"}", AMON_ENO_MSG_ID},
        {"{\"msg_id\":\"\",\"type\":\"heartbeat\"}", AMON_ENO_MSG_ID},
        {"{\"msg_id\":null,\"type\":\"heartbeat\"}", AMON_ENO_MSG_ID},
        {"{\"msg_id\":42,\"type\":\"heartbeat\"}", AMON_EFIELD_TYPE},
        {"{\"msg_id\":{},\"type\":\"heartbeat\"}", AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\"}", AMON_ENO_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"\"}", AMON_ENO_TYPE},
        {"{\"msg_id\":\"m\",\"type\":null}", AMON_ENO_TYPE},
        {"{\"msg_id\":\"m\",\"type\":1}", AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"heartbeat\",\"trace_id\":true}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"heartbeat\",\"target_id\":[]}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"heartbeat\",\"timestamp\":\"1\"}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"heartbeat\",\"timestamp\":1.5}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"heartbeat\",\"timestamp\":1e3}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"heartbeat\",\"timestamp\":"
         "99999999999999999999}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"heartbeat\",\"payload\":[]}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"heartbeat\",\"payload\":\"{}\"}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"action\"}", AMON_ENO_PAYLOAD},
        {"{\"msg_id\":\"m\",\"type\":\"action\",\"payload\":null}",
            AMON_ENO_PAYLOAD},
        {"{\"msg_id\":\"m\",\"type\":\"action\",\"payload\":{\"action\":5}}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"action\",\"payload\":"
         "{\"target_url\":{}}}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"action_ack\",\"payload\":"
         "{\"success\":\"true\"}}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"action_ack\",\"payload\":"
         "{\"success\":1}}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"action_ack\",\"payload\":"
         "{\"action_msg_id\":1}}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"action_ack\",\"payload\":"
         "{\"message\":false}}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"a\\u0000b\",\"type\":\"heartbeat\"}", AMON_EFIELD_NUL},
        {"{\"msg_id\":\"m\",\"type\":\"action_ack\",\"payload\":"
         "{\"message\":\"x\\u0000\"}}",
            AMON_EFIELD_NUL},
        {"{\"msg_id\":\"m\",\"type\":\"action_ack\",\"payload\":"
         "{\"duplicate\":\"6f1c\"}}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"action_ack\",\"payload\":"
         "{\"duplicate\":1}}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"action_ack\",\"payload\":"
         "{\"state\":true}}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"action_status\",\"payload\":"
         "{\"action_msg_id\":\"a\",\"state\":{}}}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"error\",\"payload\":{\"code\":7}}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"error\",\"payload\":"
         "{\"code\":\"X\",\"action_msg_id\":[]}}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"event\",\"payload\":"
         "{\"event_name\":[]}}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"register\",\"payload\":"
         "{\"sdk_url\":1}}",
            AMON_EFIELD_TYPE},
        {"{\"msg_id\":\"m\",\"type\":\"heartbeat\",\"payload\":"
         "{\"target_id\":1}}",
            AMON_EFIELD_TYPE},
    };

    (void) state;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = decode(&env, bad[i].json);

        if (rc != bad[i].rc) {
            fail_msg("#%zu %s: got %d, want %d", i, bad[i].json, rc, bad[i].rc);
        }
    }
}


/* Every proper prefix of a valid envelope is "not JSON". */
static void
test_decode_truncated(void **state)
{
    size_t          i;
    amon_envelope_t env;

    (void) state;

    for (i = 0; i < sizeof(action_json) - 1; i++) {
        unsigned char *p = malloc(i + 1);

        memcpy(p, action_json, i);
        assert_int_equal(amon_envelope_decode_json(&env, p, i), AMON_EJSON);
        free(p);
    }
}


static void
test_decode_depth(void **state)
{
    char            buf[256];
    unsigned        i, n;
    amon_envelope_t env;

    (void) state;

    /* root and payload objects + 30 arrays = 32 levels: fine */
    n = (unsigned) sprintf(
        buf, "{\"msg_id\":\"m\",\"type\":\"event\",\"payload\":{\"data\":");
    for (i = 0; i < 30; i++) {
        buf[n++] = '[';
    }
    for (i = 0; i < 30; i++) {
        buf[n++] = ']';
    }
    strcpy(buf + n, "}}");

    assert_int_equal(decode(&env, buf), AMON_OK);

    /* one more: 33 */
    n = (unsigned) sprintf(
        buf, "{\"msg_id\":\"m\",\"type\":\"event\",\"payload\":{\"data\":");
    for (i = 0; i < 31; i++) {
        buf[n++] = '[';
    }
    for (i = 0; i < 31; i++) {
        buf[n++] = ']';
    }
    strcpy(buf + n, "}}");

    assert_int_equal(decode(&env, buf), AMON_EDEPTH);
}


static void
make_field(char *buf, const char *type, const char *name, size_t len,
    const char *unit, int in_payload)
{
    size_t n;

    n = (size_t) sprintf(buf, "{\"msg_id\":\"m\",\"type\":\"%s\",", type);
    n += (size_t) sprintf(buf + n,
        in_payload ? "\"payload\":{\"%s\":\"" : "\"payload\":{},\"%s\":\"",
        name);

    while (len--) {
        n += (size_t) sprintf(buf + n, "%s", unit);
    }

    strcpy(buf + n, in_payload ? "\"}}" : "\"}");
}


static void
test_decode_limits(void **state)
{
    amon_envelope_t env;
    static char     buf[16384];
    char            long_id[300];

    (void) state;

    make_field(buf, "action", "target_id", 256, "a", 0);
    assert_int_equal(decode(&env, buf), AMON_OK);
    assert_int_equal(env.target_id.len, 256);

    make_field(buf, "action", "target_id", 257, "a", 0);
    assert_int_equal(decode(&env, buf), AMON_EFIELD_LONG);
    /* msg_id was read before the fault: a caller can echo it */
    assert_str(env.msg_id, "m");

    memset(long_id, 'i', 257);
    long_id[257] = '\0';
    sprintf(buf, "{\"msg_id\":\"%s\",\"type\":\"heartbeat\"}", long_id);
    assert_int_equal(decode(&env, buf), AMON_EFIELD_LONG);
    long_id[256] = '\0';
    sprintf(buf, "{\"msg_id\":\"%s\",\"type\":\"heartbeat\"}", long_id);
    assert_int_equal(decode(&env, buf), AMON_OK);
    assert_int_equal(env.msg_id.len, 256);

    make_field(buf, "action", "trace_id", 257, "a", 0);
    assert_int_equal(decode(&env, buf), AMON_EFIELD_LONG);

    make_field(buf, "action", "target_url", 2048, "u", 1);
    assert_int_equal(decode(&env, buf), AMON_OK);
    assert_int_equal(env.target_url.len, 2048);

    make_field(buf, "action", "target_url", 2049, "u", 1);
    assert_int_equal(decode(&env, buf), AMON_EFIELD_LONG);

    make_field(buf, "register", "sdk_url", 2049, "u", 1);
    assert_int_equal(decode(&env, buf), AMON_EFIELD_LONG);

    make_field(buf, "action_ack", "action_msg_id", 257, "x", 1);
    assert_int_equal(decode(&env, buf), AMON_EFIELD_LONG);

    /* limits apply to the unescaped length */
    make_field(buf, "action", "target_id", 200, "\\u0041", 0);
    assert_int_equal(decode(&env, buf), AMON_OK);
    assert_int_equal(env.target_id.len, 200);
    assert_int_equal(env.target_id.data[199], 'A');

    make_field(buf, "action", "target_id", 129, "\\u00e9", 0);
    assert_int_equal(decode(&env, buf), AMON_EFIELD_LONG);

    make_field(buf, "action", "target_url", 1024, "\\u00e9", 1);
    assert_int_equal(decode(&env, buf), AMON_OK);
    assert_int_equal(env.target_url.len, 2048);

    /* a long message without escapes needs no scratch space: no limit */
    make_field(buf, "action_ack", "message", 10000, "m", 1);
    assert_int_equal(decode(&env, buf), AMON_OK);
    assert_int_equal(env.message.len, 10000);

    /* an escaped message must fit in the scratch space */
    make_field(buf, "action_ack", "message", 2000, "\\n", 1);
    assert_int_equal(decode(&env, buf), AMON_OK);
    assert_int_equal(env.message.len, 2000);
    assert_int_equal(env.message.data[1999], '\n');

    make_field(
        buf, "action_ack", "message", AMON_ENVELOPE_SCRATCH + 1, "\\t", 1);
    assert_int_equal(decode(&env, buf), AMON_EFIELD_LONG);
}


static void
test_msg_type(void **state)
{
    int         t;
    const char *name;
    amon_str_t  s;

    (void) state;

    for (t = AMON_MSG_REGISTER; t <= AMON_MSG_TARGET_STATUS; t++) {
        name = amon_msg_type_name((amon_msg_type_e) t);
        s.data = (const unsigned char *) name;
        s.len = strlen(name);
        assert_int_equal(amon_msg_type(s), t);
    }

    assert_string_equal(amon_msg_type_name(AMON_MSG_ACTION_ACK), "action_ack");
    assert_string_equal(
        amon_msg_type_name(AMON_MSG_TARGET_STATUS), "target_status");
    assert_string_equal(amon_msg_type_name(AMON_MSG_HEARTBEAT), "heartbeat");
    assert_int_equal(amon_msg_type(S("Action")), AMON_MSG_UNKNOWN);
    assert_int_equal(amon_msg_type(S("actio")), AMON_MSG_UNKNOWN);
    assert_int_equal(amon_msg_type(S("")), AMON_MSG_UNKNOWN);
    assert_int_equal(amon_msg_type(S("action_acks")), AMON_MSG_UNKNOWN);
}


/* --- builders ----------------------------------------------------------- */


static void
test_append_string(void **state)
{
    amon_buf_t        out = {NULL, 0, 0};
    const char        in[] = "a\"b\\c\x01\n\x1f\x7f/\xc3\xa9\xf0\x9f\x98\x80";
    const char        want[] = "\"a\\\"b\\\\c\\u0001\\u000a\\u001f\x7f/"
                               "\xc3\xa9\xf0\x9f\x98\x80\"";
    amon_str_t        s;
    amon_json_value_t v;
    size_t            n;
    unsigned char     back[64];

    (void) state;

    s.data = (const unsigned char *) in;
    s.len = sizeof(in) - 1;

    assert_int_equal(amon_json_append_string(&out, MAX, NULL, s), AMON_OK);
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, out.len);

    /* and back */
    assert_int_equal(
        amon_json_scan(out.data, out.len, 32, NONE, NULL, NULL, &v), AMON_OK);
    assert_int_equal(amon_json_unescape(&v, back, sizeof(back), &n), AMON_OK);
    assert_int_equal(n, s.len);
    assert_memory_equal(back, in, n);

    /* every control character */
    out.len = 0;
    for (n = 0; n < 0x20; n++) {
        back[n] = (unsigned char) n;
    }
    s.data = back;
    s.len = 0x20;
    assert_int_equal(amon_json_append_string(&out, MAX, NULL, s), AMON_OK);
    assert_int_equal(out.len, 2 + 6 * 0x20);
    assert_memory_equal(out.data, "\"\\u0000\\u0001", 13);
    assert_memory_equal(out.data + out.len - 7, "\\u001f\"", 7);

    /* invalid UTF-8 is refused, nothing appended */
    out.len = 0;
    assert_int_equal(
        amon_json_append_string(&out, MAX, NULL, S("ab\xff")), AMON_EINVAL);
    assert_int_equal(
        amon_json_append_string(&out, MAX, NULL, S("\xed\xa0\x80")),
        AMON_EINVAL);
    assert_int_equal(out.len, 0);

    /* the limit */
    assert_int_equal(
        amon_json_append_string(&out, 4, NULL, S("abc")), AMON_ETOOBIG);
    assert_int_equal(out.len, 0);
    assert_int_equal(amon_json_append_string(&out, 5, NULL, S("abc")), AMON_OK);
    assert_int_equal(out.len, 5);

    amon_buf_free(&out, NULL);
}


static void
test_build_json_exact(void **state)
{
    amon_buf_t          out = {NULL, 0, 0};
    amon_envelope_out_t e;
    const char          want[] = "{\"msg_id\":\"m1\",\"trace_id\":\"t1\","
                                 "\"type\":\"action\",\"target_id\":\"a\","
                                 "\"timestamp\":1764120000000,\"payload\":"
                                 "{\"action\":\"restart\"}}";

    (void) state;

    memset(&e, 0, sizeof(e));
    e.msg_id = S("m1");
    e.trace_id = S("t1");
    e.type = S("action");
    e.target_id = S("a");
    e.timestamp = 1764120000000LL;
    e.payload_json = S("{\"action\":\"restart\"}");

    assert_int_equal(amon_envelope_build_json(&out, MAX, NULL, &e), AMON_OK);
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, out.len);

    /* absent fields left out, timestamp 0 kept, < 0 left out */
    out.len = 0;
    e.trace_id = NONE;
    e.target_id = NONE;
    e.timestamp = 0;
    e.payload_json = NONE;
    assert_int_equal(amon_envelope_build_json(&out, MAX, NULL, &e), AMON_OK);
    assert_int_equal(out.len,
        strlen("{\"msg_id\":\"m1\",\"type\":\"action\","
               "\"timestamp\":0}"));
    assert_memory_equal(out.data,
        "{\"msg_id\":\"m1\",\"type\":\"action\",\"timestamp\":0}", out.len);

    out.len = 0;
    e.timestamp = -1;
    assert_int_equal(amon_envelope_build_json(&out, MAX, NULL, &e), AMON_OK);
    assert_int_equal(out.len,
        strlen("{\"msg_id\":\"m1\",\"type\":\"action\",\"timestamp\":-1}"));

    out.len = 0;
    e.timestamp = AMON_TIMESTAMP_NONE;
    assert_int_equal(amon_envelope_build_json(&out, MAX, NULL, &e), AMON_OK);
    assert_int_equal(
        out.len, strlen("{\"msg_id\":\"m1\",\"type\":\"action\"}"));

    /* a payload that is not a JSON object is refused */
    out.len = 0;
    e.payload_json = S("[1]");
    assert_int_equal(
        amon_envelope_build_json(&out, MAX, NULL, &e), AMON_EINVAL);
    e.payload_json = S("{\"a\":}");
    assert_int_equal(
        amon_envelope_build_json(&out, MAX, NULL, &e), AMON_EINVAL);
    assert_int_equal(out.len, 0);

    /* too big: nothing appended */
    e.payload_json = S("{\"action\":\"restart\"}");
    out.len = 3;
    assert_int_equal(
        amon_envelope_build_json(&out, 20, NULL, &e), AMON_ETOOBIG);
    assert_int_equal(out.len, 3);

    amon_buf_free(&out, NULL);
}


/* build -> decode with strings that need escaping */
static void
test_json_round_trip(void **state)
{
    amon_buf_t          out = {NULL, 0, 0};
    amon_envelope_out_t e;
    amon_envelope_t     env;
    const char id[] = "id \"q\" \\b\\ \x01\x02\n\t\x1f \xc3\xa9\xe2\x82"
                      "\xac\xf0\x9f\x98\x80 end";

    (void) state;

    memset(&e, 0, sizeof(e));
    e.msg_id = S(id);
    e.trace_id = S("tr\"ace");
    e.type = S("heartbeat");
    e.target_id = S("\\target\\");
    e.timestamp = INT64_MAX;
    e.payload_json = S(" {\"target_id\":\"x\"} ");

    assert_int_equal(amon_envelope_build_json(&out, MAX, NULL, &e), AMON_OK);
    assert_int_equal(
        amon_envelope_decode_json(&env, out.data, out.len), AMON_OK);

    assert_str(env.msg_id, id);
    assert_str(env.trace_id, "tr\"ace");
    assert_str(env.type_name, "heartbeat");
    assert_str(env.target_id, "\\target\\");
    assert_true(env.has_timestamp);
    assert_true(env.timestamp == INT64_MAX);
    assert_str(env.payload, "{\"target_id\":\"x\"}");
    assert_str(env.payload_target_id, "x");

    amon_buf_free(&out, NULL);
}


static void
test_build_ack(void **state)
{
    amon_buf_t      out = {NULL, 0, 0};
    amon_ack_out_t  ack;
    amon_envelope_t env;
    const char      want[] =
        "{\"msg_id\":\"k1\",\"type\":\"action_ack\",\"target_id\":\"t\","
        "\"timestamp\":7,\"payload\":{\"action_msg_id\":\"a\\\"1\","
        "\"success\":true,\"message\":\"duplicate ignored\","
        "\"duplicate\":true,\"original\":{\"success\":false}}}";

    (void) state;

    memset(&ack, 0, sizeof(ack));
    ack.msg_id = S("k1");
    ack.target_id = S("t");
    ack.timestamp = 7;
    ack.action_msg_id = S("a\"1");
    ack.success = 1;
    ack.message = S("duplicate ignored");
    ack.duplicate = 1;
    ack.original = S("{\"success\":false}");

    assert_int_equal(
        amon_envelope_build_ack(&out, MAX, NULL, &ack, 0), AMON_OK);
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, out.len);

    assert_int_equal(
        amon_envelope_decode_json(&env, out.data, out.len), AMON_OK);
    assert_int_equal(env.type, AMON_MSG_ACTION_ACK);
    assert_str(env.action_msg_id, "a\"1");
    assert_true(env.has_success);
    assert_int_equal(env.success, 1);
    assert_str(env.message, "duplicate ignored");

    /* a plain ack: no duplicate, no original */
    out.len = 0;
    ack.duplicate = 0;
    ack.original = NONE;
    ack.success = 0;
    ack.message = S("unsupported action: x");
    ack.timestamp = AMON_TIMESTAMP_NONE;
    ack.target_id = NONE;
    assert_int_equal(
        amon_envelope_build_ack(&out, MAX, NULL, &ack, 0), AMON_OK);
    assert_int_equal(out.len,
        strlen("{\"msg_id\":\"k1\",\"type\":\"action_ack\",\"payload\":"
               "{\"action_msg_id\":\"a\\\"1\",\"success\":false,"
               "\"message\":\"unsupported action: x\"}}"));
    assert_memory_equal(out.data,
        "{\"msg_id\":\"k1\",\"type\":\"action_ack\",\"payload\":"
        "{\"action_msg_id\":\"a\\\"1\",\"success\":false,"
        "\"message\":\"unsupported action: x\"}}",
        out.len);

    /* "original" must be an object */
    out.len = 0;
    ack.original = S("\"x\"");
    assert_int_equal(
        amon_envelope_build_ack(&out, MAX, NULL, &ack, 0), AMON_EINVAL);
    assert_int_equal(out.len, 0);

    /* binary: an ActionAckPayload */
    ack.original = NONE;
    ack.success = 1;
    ack.message = S("ok");
    ack.trace_id = S("tr");
    assert_int_equal(
        amon_envelope_build_ack(&out, MAX, NULL, &ack, 1), AMON_OK);
    assert_int_equal(
        amon_envelope_decode_pb(&env, out.data, out.len, NULL), AMON_OK);
    assert_true(env.binary);
    assert_int_equal(env.type, AMON_MSG_ACTION_ACK);
    assert_str(env.msg_id, "k1");
    assert_str(env.trace_id, "tr");
    assert_str(env.action_msg_id, "a\"1");
    assert_int_equal(env.success, 1);
    assert_str(env.message, "ok");
    amon_envelope_release(&env);

    amon_buf_free(&out, NULL);
}


static int
is_uuid4(const unsigned char *p, size_t len)
{
    size_t i;

    if (len != AMON_UUID_LEN || p[14] != '4' || !strchr("89ab", p[19])) {
        return 0;
    }

    for (i = 0; i < AMON_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (p[i] != '-') {
                return 0;
            }

        } else if (!strchr("0123456789abcdef", p[i])) {
            return 0;
        }
    }

    return 1;
}


static void
test_build_error(void **state)
{
    amon_buf_t      out = {NULL, 0, 0};
    amon_envelope_t env;
    const char      want[] = "{\"msg_id\":\"m9\",\"type\":\"error\","
                             "\"target_id\":\"t\",\"timestamp\":12,"
                             "\"payload\":{\"code\":\"UNKNOWN_TARGET\","
                             "\"message\":\"no \\\"t\\\"\"}}";

    (void) state;

    assert_int_equal(amon_envelope_build_error(&out, MAX, NULL, S("m9"), S("t"),
                         12, "UNKNOWN_TARGET", S("no \"t\""), 0),
        AMON_OK);
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, out.len);

    assert_int_equal(
        amon_envelope_decode_json(&env, out.data, out.len), AMON_OK);
    assert_int_equal(env.type, AMON_MSG_ERROR);
    assert_str(env.code, "UNKNOWN_TARGET");
    assert_str(env.message, "no \"t\"");

    /* no msg_id to echo: a fresh UUID4, still decodable */
    out.len = 0;
    assert_int_equal(amon_envelope_build_error(&out, MAX, NULL, NONE, NONE,
                         AMON_TIMESTAMP_NONE, "BAD_MESSAGE", S("not JSON"), 0),
        AMON_OK);
    assert_int_equal(
        amon_envelope_decode_json(&env, out.data, out.len), AMON_OK);
    assert_true(is_uuid4(env.msg_id.data, env.msg_id.len));
    assert_str(env.target_id, NULL);
    assert_false(env.has_timestamp);

    /* binary */
    out.len = 0;
    assert_int_equal(amon_envelope_build_error(&out, MAX, NULL, S("m9"), S("t"),
                         12, "TIMEOUT", S("late"), 1),
        AMON_OK);
    assert_int_equal(
        amon_envelope_decode_pb(&env, out.data, out.len, NULL), AMON_OK);
    assert_int_equal(env.type, AMON_MSG_ERROR);
    assert_str(env.msg_id, "m9");
    assert_str(env.target_id, "t");
    assert_true(env.timestamp == 12);
    assert_str(env.code, "TIMEOUT");
    assert_str(env.message, "late");
    amon_envelope_release(&env);

    amon_buf_free(&out, NULL);
}


static void
test_uuid4(void **state)
{
    unsigned char rnd[16], out[AMON_UUID_LEN];
    unsigned      i;

    (void) state;

    for (i = 0; i < 16; i++) {
        rnd[i] = (unsigned char) i;
    }

    amon_uuid4(rnd, out);
    assert_memory_equal(
        out, "00010203-0405-4607-8809-0a0b0c0d0e0f", AMON_UUID_LEN);

    memset(rnd, 0xff, sizeof(rnd));
    amon_uuid4(rnd, out);
    assert_memory_equal(
        out, "ffffffff-ffff-4fff-bfff-ffffffffffff", AMON_UUID_LEN);
    assert_true(is_uuid4(out, AMON_UUID_LEN));
}


/* --- protobuf ----------------------------------------------------------- */


/* Our encoder writes what protobuf-c's own packer writes. */
static void
test_pb_bytes_match_protobuf_c(void **state)
{
    amon_buf_t                      out = {NULL, 0, 0};
    amon_envelope_out_t             e;
    Amonitor__Control__V1__Envelope pe = AMONITOR__CONTROL__V1__ENVELOPE__INIT;
    Amonitor__Control__V1__ActionPayload pa =
        AMONITOR__CONTROL__V1__ACTION_PAYLOAD__INIT;
    unsigned char payload[256], want[512];
    size_t        plen, wlen;
    const char    params[] = "{\"from\":\"panel\"}";

    (void) state;

    pa.action = "re\"start";
    pa.params.data = (uint8_t *) params;
    pa.params.len = sizeof(params) - 1;
    pa.target_url = "ws://127.0.0.1:8765/";
    plen = amonitor__control__v1__action_payload__pack(&pa, payload);

    pe.msg_id = "m1";
    pe.trace_id = "t1";
    pe.type = "action";
    pe.target_id = "demo";
    pe.timestamp = 1764120000000LL;
    pe.payload.data = payload;
    pe.payload.len = plen;
    wlen = amonitor__control__v1__envelope__pack(&pe, want);

    memset(&e, 0, sizeof(e));
    e.msg_id = S("m1");
    e.trace_id = S("t1");
    e.type = S("action");
    e.target_id = S("demo");
    e.timestamp = 1764120000000LL;
    e.payload_json = S("{\"action\":\"re\\\"start\",\"params\":"
                       "{\"from\":\"panel\"},"
                       "\"target_url\":\"ws://127.0.0.1:8765/\","
                       "\"extra\":1}");

    assert_int_equal(amon_envelope_build_pb(&out, MAX, NULL, &e), AMON_OK);
    assert_int_equal(out.len, wlen);
    assert_memory_equal(out.data, want, wlen);

    /* the payload alone */
    out.len = 0;
    assert_int_equal(amon_payload_json_to_pb(
                         &out, MAX, NULL, AMON_MSG_ACTION, e.payload_json),
        AMON_OK);
    assert_int_equal(out.len, plen);
    assert_memory_equal(out.data, payload, plen);

    amon_buf_free(&out, NULL);
}


static void
test_pb_round_trip_types(void **state)
{
    amon_buf_t                               out = {NULL, 0, 0};
    amon_envelope_out_t                      e;
    amon_envelope_t                          env;
    Amonitor__Control__V1__HeartbeatPayload *hb;
    Amonitor__Control__V1__RegisterPayload  *reg;
    Amonitor__Control__V1__EventPayload     *ev;

    (void) state;

    memset(&e, 0, sizeof(e));
    e.msg_id = S("h1");
    e.type = S("heartbeat");
    e.target_id = S("t\xc3\xa9");
    e.timestamp = 5;
    e.payload_json = S("{\"target_id\":\"t\\u00e9\",\"status\":\"up\","
                       "\"metrics\":{\"cpu\":\"0.5\",\"rss\":1024,"
                       "\"k\\\"\":\"v\\n\",\"obj\":{\"a\":[1]}}}");

    assert_int_equal(amon_envelope_build_pb(&out, MAX, NULL, &e), AMON_OK);
    assert_int_equal(
        amon_envelope_decode_pb(&env, out.data, out.len, NULL), AMON_OK);
    assert_int_equal(env.type, AMON_MSG_HEARTBEAT);
    assert_str(env.msg_id, "h1");
    assert_str(env.target_id, "t\xc3\xa9");
    assert_str(env.payload_target_id, "t\xc3\xa9");
    assert_true(env.has_timestamp);
    assert_true(env.timestamp == 5);

    hb = env.pb_payload;
    assert_int_equal(hb->n_metrics, 4);
    assert_string_equal(hb->metrics[0]->key, "cpu");
    assert_string_equal(hb->metrics[0]->value, "0.5");
    assert_string_equal(hb->metrics[1]->key, "rss");
    assert_string_equal(hb->metrics[1]->value, "1024");
    assert_string_equal(hb->metrics[2]->key, "k\"");
    assert_string_equal(hb->metrics[2]->value, "v\n");
    assert_string_equal(hb->metrics[3]->key, "obj");
    assert_string_equal(hb->metrics[3]->value, "{\"a\":[1]}");
    amon_envelope_release(&env);

    out.len = 0;
    e.msg_id = S("r1");
    e.type = S("register");
    e.timestamp = AMON_TIMESTAMP_NONE;
    e.payload_json = S("{\"target_id\":\"t3\",\"sdk_url\":\"ws://h:1/\","
                       "\"metadata\":{\"v\":\"1\",\"pid\":42}}");
    assert_int_equal(amon_envelope_build_pb(&out, MAX, NULL, &e), AMON_OK);
    assert_int_equal(
        amon_envelope_decode_pb(&env, out.data, out.len, NULL), AMON_OK);
    assert_int_equal(env.type, AMON_MSG_REGISTER);
    assert_false(env.has_timestamp);
    assert_str(env.sdk_url, "ws://h:1/");
    assert_str(env.payload_target_id, "t3");
    reg = env.pb_payload;
    assert_int_equal(reg->n_metadata, 2);
    assert_string_equal(reg->metadata[1]->key, "pid");
    assert_string_equal(reg->metadata[1]->value, "42");
    amon_envelope_release(&env);

    out.len = 0;
    e.msg_id = S("e1");
    e.type = S("event");
    e.payload_json = S("{\"target_id\":\"t\",\"event_name\":\"boot\","
                       "\"data\":\"text\"}");
    assert_int_equal(amon_envelope_build_pb(&out, MAX, NULL, &e), AMON_OK);
    assert_int_equal(
        amon_envelope_decode_pb(&env, out.data, out.len, NULL), AMON_OK);
    assert_str(env.event_name, "boot");
    ev = env.pb_payload;
    /* "data" is the JSON text of the value, quotes included */
    assert_int_equal(ev->data.len, 6);
    assert_memory_equal(ev->data.data, "\"text\"", 6);
    amon_envelope_release(&env);

    out.len = 0;
    e.msg_id = S("a1");
    e.type = S("action");
    e.payload_json = S("{\"action\":\"restart\",\"params\":[1, 2]}");
    assert_int_equal(amon_envelope_build_pb(&out, MAX, NULL, &e), AMON_OK);
    assert_int_equal(
        amon_envelope_decode_pb(&env, out.data, out.len, NULL), AMON_OK);
    assert_str(env.action, "restart");
    assert_str(env.params, "[1, 2]");
    assert_str(env.target_url, NULL);
    amon_envelope_release(&env);

    out.len = 0;
    e.msg_id = S("k1");
    e.type = S("action_ack");
    e.payload_json = S("{\"action_msg_id\":\"a1\",\"success\":false,"
                       "\"message\":\"m\"}");
    assert_int_equal(amon_envelope_build_pb(&out, MAX, NULL, &e), AMON_OK);
    assert_int_equal(
        amon_envelope_decode_pb(&env, out.data, out.len, NULL), AMON_OK);
    assert_str(env.action_msg_id, "a1");
    assert_true(env.has_success);
    assert_int_equal(env.success, 0);
    assert_str(env.message, "m");
    amon_envelope_release(&env);

    /* a type without a schema message: the JSON text as bytes */
    out.len = 0;
    e.msg_id = S("s1");
    e.type = S("target_status");
    e.payload_json = S("{\"target_id\":\"t\",\"status\":\"down\"}");
    assert_int_equal(amon_envelope_build_pb(&out, MAX, NULL, &e), AMON_OK);
    assert_int_equal(
        amon_envelope_decode_pb(&env, out.data, out.len, NULL), AMON_OK);
    assert_int_equal(env.type, AMON_MSG_TARGET_STATUS);
    assert_str(env.payload, "{\"target_id\":\"t\",\"status\":\"down\"}");
    amon_envelope_release(&env);

    amon_buf_free(&out, NULL);
}


static void
test_payload_json_to_pb_errors(void **state)
{
    amon_buf_t out = {NULL, 0, 0};

    (void) state;

    assert_int_equal(amon_payload_json_to_pb(
                         &out, MAX, NULL, AMON_MSG_ACTION, S("{\"action\":")),
        AMON_EJSON);
    assert_int_equal(
        amon_payload_json_to_pb(&out, MAX, NULL, AMON_MSG_ACTION, S("[1]")),
        AMON_ENOTOBJ);
    assert_int_equal(amon_payload_json_to_pb(
                         &out, MAX, NULL, AMON_MSG_ACTION, S("{\"action\":1}")),
        AMON_EFIELD_TYPE);
    assert_int_equal(amon_payload_json_to_pb(&out, MAX, NULL,
                         AMON_MSG_HEARTBEAT, S("{\"metrics\":[]}")),
        AMON_EFIELD_TYPE);
    assert_int_equal(amon_payload_json_to_pb(&out, MAX, NULL,
                         AMON_MSG_ACTION_ACK, S("{\"success\":\"yes\"}")),
        AMON_EFIELD_TYPE);
    assert_int_equal(
        amon_payload_json_to_pb(&out, MAX, NULL, AMON_MSG_ACTION, NONE),
        AMON_EINVAL);
    assert_int_equal(out.len, 0);

    /* an empty message is zero bytes */
    assert_int_equal(
        amon_payload_json_to_pb(&out, MAX, NULL, AMON_MSG_ACTION, S("{}")),
        AMON_OK);
    assert_int_equal(out.len, 0);

    /* a size limit */
    assert_int_equal(amon_payload_json_to_pb(&out, 4, NULL, AMON_MSG_ACTION,
                         S("{\"action\":\"restart\"}")),
        AMON_ETOOBIG);
    assert_int_equal(out.len, 0);

    amon_buf_free(&out, NULL);
}


static size_t
pb_envelope(unsigned char *buf, const char *msg_id, const char *type,
    const char *target_id, const unsigned char *payload, size_t plen)
{
    Amonitor__Control__V1__Envelope pe = AMONITOR__CONTROL__V1__ENVELOPE__INIT;

    pe.msg_id = (char *) msg_id;
    pe.type = (char *) type;
    pe.target_id = (char *) target_id;
    pe.payload.data = (uint8_t *) payload;
    pe.payload.len = plen;

    return amonitor__control__v1__envelope__pack(&pe, buf);
}


static void
test_pb_errors(void **state)
{
    amon_envelope_t env;
    unsigned char   buf[4096];
    char            long_id[300];
    size_t          n;
    /* Envelope{msg_id: "\xff", type: "heartbeat"} written by hand */
    static const unsigned char bad_utf8[] = {0x0a, 0x01, 0xff, 0x1a, 0x09, 'h',
        'e', 'a', 'r', 't', 'b', 'e', 'a', 't'};

    (void) state;

    assert_int_equal(amon_envelope_decode_pb(
                         &env, (const unsigned char *) "\xff\xff\xff", 3, NULL),
        AMON_EPROTOBUF);
    amon_envelope_release(&env);

    /* a field 1 claiming more bytes than there are */
    assert_int_equal(amon_envelope_decode_pb(&env,
                         (const unsigned char *) "\x0a\x10"
                                                 "ab",
                         4, NULL),
        AMON_EPROTOBUF);
    amon_envelope_release(&env);

    assert_int_equal(
        amon_envelope_decode_pb(&env, bad_utf8, sizeof(bad_utf8), NULL),
        AMON_EPROTOBUF);
    amon_envelope_release(&env);

    /* empty input: an Envelope with every field empty */
    assert_int_equal(
        amon_envelope_decode_pb(&env, buf, 0, NULL), AMON_ENO_MSG_ID);
    amon_envelope_release(&env);

    n = pb_envelope(buf, "", "heartbeat", "", NULL, 0);
    assert_int_equal(
        amon_envelope_decode_pb(&env, buf, n, NULL), AMON_ENO_MSG_ID);
    amon_envelope_release(&env);

    n = pb_envelope(buf, "m", "", "", NULL, 0);
    assert_int_equal(
        amon_envelope_decode_pb(&env, buf, n, NULL), AMON_ENO_TYPE);
    amon_envelope_release(&env);

    n = pb_envelope(buf, "m", "action", "t", NULL, 0);
    assert_int_equal(
        amon_envelope_decode_pb(&env, buf, n, NULL), AMON_ENO_PAYLOAD);
    amon_envelope_release(&env);

    /* an action payload that is not an ActionPayload */
    n = pb_envelope(
        buf, "m", "action", "t", (const unsigned char *) "\x0a\x7f", 2);
    assert_int_equal(
        amon_envelope_decode_pb(&env, buf, n, NULL), AMON_EPROTOBUF);
    amon_envelope_release(&env);

    memset(long_id, 'x', 257);
    long_id[257] = '\0';
    n = pb_envelope(buf, "m", "heartbeat", long_id, NULL, 0);
    assert_int_equal(
        amon_envelope_decode_pb(&env, buf, n, NULL), AMON_EFIELD_LONG);
    assert_str(env.msg_id, "m");
    amon_envelope_release(&env);

    long_id[256] = '\0';
    n = pb_envelope(buf, "m", "heartbeat", long_id, NULL, 0);
    assert_int_equal(amon_envelope_decode_pb(&env, buf, n, NULL), AMON_OK);
    assert_int_equal(env.target_id.len, 256);
    amon_envelope_release(&env);

    /* release twice is harmless */
    amon_envelope_release(&env);
}


/*
 * protobuf-c reads strings up to a NUL: a string field the agent reads
 * with one inside is refused as JSON's "\u0000" is, never read cut short.
 * The messages are written by hand (protobuf-c's packer cannot write such
 * strings).
 */
static void
test_pb_nul(void **state)
{
    amon_envelope_t env;
    /* Envelope{msg_id: "m\0x", type: "heartbeat"} */
    static const unsigned char nul_id[] = {0x0a, 0x03, 'm', 0x00, 'x', 0x1a,
        0x09, 'h', 'e', 'a', 'r', 't', 'b', 'e', 'a', 't'};
    /* Envelope{msg_id: "m", type: "heartbeat", target_id: "t\0u"} */
    static const unsigned char nul_target[] = {0x0a, 0x01, 'm', 0x1a, 0x09, 'h',
        'e', 'a', 'r', 't', 'b', 'e', 'a', 't', 0x22, 0x03, 't', 0x00, 'u'};
    /* Envelope{msg_id: "m", type: "action", target_id: "t",
     *     payload: ActionPayload{action: "rest\0art"}} */
    static const unsigned char nul_action[] = {0x0a, 0x01, 'm', 0x1a, 0x06, 'a',
        'c', 't', 'i', 'o', 'n', 0x22, 0x01, 't', 0x32, 0x0a, 0x0a, 0x08, 'r',
        'e', 's', 't', 0x00, 'a', 'r', 't'};
    /* the same with ActionPayload{action: "restart", params: "\0"}: bytes */
    static const unsigned char nul_params[] = {0x0a, 0x01, 'm', 0x1a, 0x06, 'a',
        'c', 't', 'i', 'o', 'n', 0x22, 0x01, 't', 0x32, 0x0c, 0x0a, 0x07, 'r',
        'e', 's', 't', 'a', 'r', 't', 0x12, 0x01, 0x00};
    /* Envelope{msg_id: "m", type: "action_ack",
     *     payload: ActionAckPayload{action_msg_id: "a", message: "o\0k"}} */
    static const unsigned char nul_message[] = {0x0a, 0x01, 'm', 0x1a, 0x0a,
        'a', 'c', 't', 'i', 'o', 'n', '_', 'a', 'c', 'k', 0x32, 0x08, 0x0a,
        0x01, 'a', 0x1a, 0x03, 'o', 0x00, 'k'};

    (void) state;

    assert_int_equal(
        amon_envelope_decode_pb(&env, nul_id, sizeof(nul_id), NULL),
        AMON_EFIELD_NUL);
    assert_int_equal(env.msg_id.len, 0); /* never echoed cut short */
    amon_envelope_release(&env);

    assert_int_equal(
        amon_envelope_decode_pb(&env, nul_target, sizeof(nul_target), NULL),
        AMON_EFIELD_NUL);
    assert_str(env.msg_id, "m");
    amon_envelope_release(&env);

    assert_int_equal(
        amon_envelope_decode_pb(&env, nul_action, sizeof(nul_action), NULL),
        AMON_EFIELD_NUL);
    amon_envelope_release(&env);

    /* params are bytes: a NUL there is the SDK's to read */
    assert_int_equal(
        amon_envelope_decode_pb(&env, nul_params, sizeof(nul_params), NULL),
        AMON_OK);
    assert_str(env.action, "restart");
    assert_int_equal(env.params.len, 1);
    amon_envelope_release(&env);

    assert_int_equal(
        amon_envelope_decode_pb(&env, nul_message, sizeof(nul_message), NULL),
        AMON_EFIELD_NUL);
    amon_envelope_release(&env);
}


static void
test_pb_allocator(void **state)
{
    amon_buf_t          out = {NULL, 0, 0};
    amon_envelope_out_t e;
    amon_envelope_t     env;
    counter_t           c;
    amon_allocator_t    a;
    int                 i, rc, ok;

    (void) state;

    memset(&c, 0, sizeof(c));
    a.alloc = counting_alloc;
    a.free = counting_free;
    a.data = &c;

    memset(&e, 0, sizeof(e));
    e.msg_id = S("m1");
    e.type = S("action");
    e.payload_json = S("{\"action\":\"restart\",\"params\":{}}");

    assert_int_equal(amon_envelope_build_pb(&out, MAX, &a, &e), AMON_OK);
    assert_true(c.allocs >= 1);

    c.allocs = c.frees = 0;
    assert_int_equal(
        amon_envelope_decode_pb(&env, out.data, out.len, &a), AMON_OK);
    assert_true(c.allocs >= 2);
    amon_envelope_release(&env);
    assert_int_equal(c.allocs, c.frees);

    /* fail each allocation in turn: ENOMEM, and nothing leaks */
    ok = 0;
    for (i = 1; i < 20; i++) {
        c.allocs = c.frees = 0;
        c.fail_after = i;
        rc = amon_envelope_decode_pb(&env, out.data, out.len, &a);
        amon_envelope_release(&env);
        assert_int_equal(c.allocs, c.frees);

        if (rc == AMON_OK) {
            ok = 1;
            break;
        }

        assert_int_equal(rc, AMON_ENOMEM);
    }
    assert_true(ok);

    /* builders report ENOMEM and keep the buffer as it was */
    c.fail_after = 1;
    c.allocs = c.frees = 0;
    {
        amon_buf_t fresh = {NULL, 0, 0};

        assert_int_equal(
            amon_envelope_build_json(&fresh, MAX, &a, &e), AMON_ENOMEM);
        assert_int_equal(fresh.len, 0);
        assert_int_equal(
            amon_envelope_build_pb(&fresh, MAX, &a, &e), AMON_ENOMEM);
        assert_int_equal(fresh.len, 0);
    }

    c.fail_after = 0;
    amon_buf_free(&out, &a);
}


/* JSON -> protobuf -> fields equal, for the builder's JSON form too */
static void
test_cross_form(void **state)
{
    amon_buf_t          json = {NULL, 0, 0}, pb = {NULL, 0, 0};
    amon_envelope_out_t e;
    amon_envelope_t     a, b;

    (void) state;

    assert_int_equal(
        amon_envelope_decode_json(
            &a, (const unsigned char *) action_json, sizeof(action_json) - 1),
        AMON_OK);

    memset(&e, 0, sizeof(e));
    e.msg_id = a.msg_id;
    e.trace_id = a.trace_id;
    e.type = a.type_name;
    e.target_id = a.target_id;
    e.timestamp = a.timestamp;
    e.payload_json = a.payload;

    assert_int_equal(amon_envelope_build_pb(&pb, MAX, NULL, &e), AMON_OK);
    assert_int_equal(
        amon_envelope_decode_pb(&b, pb.data, pb.len, NULL), AMON_OK);

    assert_int_equal(a.type, b.type);
    assert_int_equal(a.msg_id.len, b.msg_id.len);
    assert_memory_equal(a.msg_id.data, b.msg_id.data, a.msg_id.len);
    assert_memory_equal(a.target_id.data, b.target_id.data, a.target_id.len);
    assert_true(a.timestamp == b.timestamp);
    assert_int_equal(a.action.len, b.action.len);
    assert_memory_equal(a.action.data, b.action.data, a.action.len);
    assert_int_equal(a.params.len, b.params.len);
    assert_memory_equal(a.params.data, b.params.data, a.params.len);
    assert_int_equal(a.target_url.len, b.target_url.len);
    assert_memory_equal(a.target_url.data, b.target_url.data, a.target_url.len);

    assert_int_equal(amon_envelope_build_json(&json, MAX, NULL, &e), AMON_OK);
    assert_int_equal(json.len, sizeof(action_json) - 1);
    assert_memory_equal(json.data, action_json, json.len);

    amon_envelope_release(&b);
    amon_buf_free(&json, NULL);
    amon_buf_free(&pb, NULL);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_action),
        cmocka_unit_test(test_decode_types),
        cmocka_unit_test(test_decode_escapes),
        cmocka_unit_test(test_decode_extra_and_duplicates),
        cmocka_unit_test(test_decode_duplicate_fields),
        cmocka_unit_test(test_decode_refused_keeps_ids),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_decode_truncated),
        cmocka_unit_test(test_decode_depth),
        cmocka_unit_test(test_decode_limits),
        cmocka_unit_test(test_msg_type),
        cmocka_unit_test(test_append_string),
        cmocka_unit_test(test_build_json_exact),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_build_ack),
        cmocka_unit_test(test_build_error),
        cmocka_unit_test(test_uuid4),
        cmocka_unit_test(test_pb_bytes_match_protobuf_c),
        cmocka_unit_test(test_pb_round_trip_types),
        cmocka_unit_test(test_payload_json_to_pb_errors),
        cmocka_unit_test(test_pb_errors),
        cmocka_unit_test(test_pb_nul),
        cmocka_unit_test(test_pb_allocator),
        cmocka_unit_test(test_cross_form),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
