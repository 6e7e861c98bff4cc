/*
 * Copyright (C) AMonitor authors
 *
 * Unit tests of the protocol additions: errors that correlate (trace_id,
 * action_msg_id, success:false, final), duplicate acks with their state,
 * action_status in JSON and protobuf, and "final" read back by the
 * decoder from both encodings.
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


#define MAX 65536

#define S(s) ((amon_str_t) amon_string(s))
#define NONE ((amon_str_t) amon_null_string)


static void
assert_bytes(amon_buf_t *b, const char *want)
{
    assert_int_equal(b->len, strlen(want));
    assert_memory_equal(b->data, want, b->len);
}


static void
test_error_about_an_action(void **state)
{
    amon_buf_t       b = {NULL, 0, 0};
    amon_error_out_t e;

    (void) state;

    memset(&e, 0, sizeof(e));
    e.msg_id = S("m1");
    e.trace_id = S("t1");
    e.target_id = S("a");
    e.timestamp = 5;
    e.code = "UNKNOWN_TARGET";
    e.message = S("no such target");
    e.action_msg_id = S("m1");
    e.final = AMON_FINAL_YES;

    assert_int_equal(
        amon_envelope_build_error_out(&b, MAX, NULL, &e, 0), AMON_OK);
    assert_bytes(&b,
        "{\"msg_id\":\"m1\",\"trace_id\":\"t1\",\"type\":\"error\","
        "\"target_id\":\"a\",\"timestamp\":5,\"payload\":{\"code\":"
        "\"UNKNOWN_TARGET\",\"message\":\"no such target\","
        "\"action_msg_id\":\"m1\",\"success\":false,\"final\":true}}");

    /* a progress notice */
    b.len = 0;
    e.code = "ACK_TIMEOUT";
    e.message = S("late");
    e.final = AMON_FINAL_NO;
    assert_int_equal(
        amon_envelope_build_error_out(&b, MAX, NULL, &e, 0), AMON_OK);
    assert_non_null(strstr((char *) b.data, "\"final\":false}}"));

    amon_buf_free(&b, NULL);
}


static void
test_error_not_about_an_action(void **state)
{
    amon_buf_t b = {NULL, 0, 0};

    (void) state;

    /* the old builder keeps its bytes: code and message only */
    assert_int_equal(amon_envelope_build_error(&b, MAX, NULL, S("x"), NONE, 7,
                         "INVALID_MESSAGE", S("unknown message type"), 0),
        AMON_OK);
    assert_bytes(&b,
        "{\"msg_id\":\"x\",\"type\":\"error\",\"timestamp\":7,\"payload\":"
        "{\"code\":\"INVALID_MESSAGE\",\"message\":\"unknown message type\"}}");

    amon_buf_free(&b, NULL);
}


static void
test_duplicate_with_state(void **state)
{
    amon_buf_t     b = {NULL, 0, 0};
    amon_ack_out_t ack;

    (void) state;

    memset(&ack, 0, sizeof(ack));
    ack.msg_id = S("n");
    ack.action_msg_id = S("m1");
    ack.timestamp = 1;
    ack.message = S("duplicate ignored: the first attempt is still pending");
    ack.duplicate = 1;
    ack.state = S("pending");
    ack.final = AMON_FINAL_YES;

    assert_int_equal(amon_envelope_build_ack(&b, MAX, NULL, &ack, 0), AMON_OK);
    assert_bytes(&b,
        "{\"msg_id\":\"n\",\"type\":\"action_ack\",\"timestamp\":1,"
        "\"payload\":{\"action_msg_id\":\"m1\",\"success\":false,"
        "\"message\":\"duplicate ignored: the first attempt is still "
        "pending\",\"duplicate\":true,\"state\":\"pending\",\"final\":true}}");

    amon_buf_free(&b, NULL);
}


static void
test_action_result(void **state)
{
    amon_buf_t b = {NULL, 0, 0};
    amon_str_t msg = S("ok");

    (void) state;

    assert_int_equal(amon_envelope_build_action_result(
                         &b, MAX, NULL, S("m1"), 1, NULL, &msg),
        AMON_OK);
    assert_bytes(&b,
        "{\"action_msg_id\":\"m1\",\"success\":true,"
        "\"message\":\"ok\"}");

    b.len = 0;
    assert_int_equal(
        amon_envelope_build_action_result(&b, 20, NULL, S("m1"), 1, NULL, &msg),
        AMON_ETOOBIG);
    assert_int_equal(b.len, 0);

    amon_buf_free(&b, NULL);
}


static void
test_final_decoded(void **state)
{
    amon_envelope_t  env;
    amon_buf_t       b = {NULL, 0, 0};
    amon_error_out_t e;

    static const char ack[] =
        "{\"msg_id\":\"a\",\"type\":\"action_ack\",\"payload\":"
        "{\"final\":true,\"action_msg_id\":\"m\",\"success\":true}}";
    static const char bad[] =
        "{\"msg_id\":\"a\",\"type\":\"error\",\"payload\":{\"final\":1}}";

    (void) state;

    assert_int_equal(amon_envelope_decode_json(
                         &env, (const unsigned char *) ack, sizeof(ack) - 1),
        AMON_OK);
    assert_true(env.has_final);
    assert_true(env.final);

    assert_int_equal(amon_envelope_decode_json(
                         &env, (const unsigned char *) bad, sizeof(bad) - 1),
        AMON_EFIELD_TYPE);

    /* protobuf: a final error round-trips */
    memset(&e, 0, sizeof(e));
    e.msg_id = S("m9");
    e.code = "ACK_TIMEOUT";
    e.message = S("no ack");
    e.action_msg_id = S("m9");
    e.final = AMON_FINAL_YES;

    assert_int_equal(
        amon_envelope_build_error_out(&b, MAX, NULL, &e, 1), AMON_OK);
    assert_int_equal(
        amon_envelope_decode_pb(&env, b.data, b.len, NULL), AMON_OK);
    assert_int_equal(env.type, AMON_MSG_ERROR);
    assert_true(env.has_final && env.final);
    assert_int_equal(env.code.len, 11);
    amon_envelope_release(&env);

    /* and a progress notice has no final in protobuf (false is absent) */
    b.len = 0;
    e.final = AMON_FINAL_NO;
    assert_int_equal(
        amon_envelope_build_error_out(&b, MAX, NULL, &e, 1), AMON_OK);
    assert_int_equal(
        amon_envelope_decode_pb(&env, b.data, b.len, NULL), AMON_OK);
    assert_false(env.has_final);
    amon_envelope_release(&env);

    amon_buf_free(&b, NULL);
}


static void
test_action_status(void **state)
{
    amon_buf_t          b = {NULL, 0, 0};
    amon_envelope_out_t head;
    amon_envelope_t     env;

    static const char q[] = "{\"msg_id\":\"q1\",\"type\":\"action_status\","
                            "\"payload\":{\"action_msg_id\":\"m1\"}}";

    (void) state;

    assert_int_equal(amon_envelope_decode_json(
                         &env, (const unsigned char *) q, sizeof(q) - 1),
        AMON_OK);
    assert_int_equal(env.type, AMON_MSG_ACTION_STATUS);
    assert_int_equal(env.action_msg_id.len, 2);
    assert_memory_equal(env.action_msg_id.data, "m1", 2);

    memset(&head, 0, sizeof(head));
    head.msg_id = S("q1");
    head.trace_id = S("t");
    head.timestamp = 3;

    assert_int_equal(amon_envelope_build_action_status(&b, MAX, NULL, &head,
                         S("m1"), "done", S("{\"success\":true}"), 0),
        AMON_OK);
    assert_bytes(&b,
        "{\"msg_id\":\"q1\",\"trace_id\":\"t\",\"type\":\"action_status\","
        "\"timestamp\":3,\"payload\":{\"action_msg_id\":\"m1\",\"state\":"
        "\"done\",\"result\":{\"success\":true}}}");

    /* a result that is not an object is refused */
    b.len = 0;
    assert_int_equal(amon_envelope_build_action_status(
                         &b, MAX, NULL, &head, S("m1"), "done", S("[1]"), 0),
        AMON_EINVAL);

    /* protobuf: the query and the answer decode */
    b.len = 0;
    assert_int_equal(amon_envelope_build_action_status(
                         &b, MAX, NULL, &head, S("m1"), "unknown", NONE, 1),
        AMON_OK);
    assert_int_equal(
        amon_envelope_decode_pb(&env, b.data, b.len, NULL), AMON_OK);
    assert_int_equal(env.type, AMON_MSG_ACTION_STATUS);
    assert_int_equal(env.action_msg_id.len, 2);
    assert_memory_equal(env.action_msg_id.data, "m1", 2);
    amon_envelope_release(&env);

    assert_string_equal(
        amon_msg_type_name(AMON_MSG_ACTION_STATUS), "action_status");

    amon_buf_free(&b, NULL);
}


/*
 * Protobuf event data: JSON stays JSON, other UTF-8 text becomes a
 * string, and bytes that are neither have no JSON form (the message
 * is not converted: a panel would get it with its data lost).
 */
static void
test_convert_pb_event_data(void **state)
{
    size_t          i;
    unsigned char   m[64], *q;
    amon_buf_t      js = {NULL, 0, 0};
    amon_envelope_t c;

    static const struct {
        const char *data;
        size_t      len;
        int         rc;
        const char *json;
    } cases[] = {
        {"{\"a\":1}", 7, AMON_OK,
            "{\"msg_id\":\"e9\",\"type\":\"event\",\"payload\":"
            "{\"event_name\":\"raw\",\"data\":{\"a\":1}}}"},
        {"hello", 5, AMON_OK,
            "{\"msg_id\":\"e9\",\"type\":\"event\",\"payload\":"
            "{\"event_name\":\"raw\",\"data\":\"hello\"}}"},
        {"not json \xff", 10, AMON_EINVAL, NULL},
    };

    (void) state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* EventPayload { event_name = 2; data = 3 } in Envelope */
        q = m;
        *q++ = 0x0a;
        *q++ = 2;
        memcpy(q, "e9", 2);
        q += 2;
        *q++ = 0x1a;
        *q++ = 5;
        memcpy(q, "event", 5);
        q += 5;
        *q++ = 0x32;
        *q++ = (unsigned char) (5 + 2 + cases[i].len);
        *q++ = 0x12;
        *q++ = 3;
        memcpy(q, "raw", 3);
        q += 3;
        *q++ = 0x1a;
        *q++ = (unsigned char) cases[i].len;
        memcpy(q, cases[i].data, cases[i].len);
        q += cases[i].len;

        js.len = 0;
        assert_int_equal(
            amon_envelope_decode_pb(&c, m, (size_t) (q - m), NULL), AMON_OK);
        assert_int_equal(
            amon_envelope_convert(&js, MAX, NULL, &c, NONE, 0), cases[i].rc);
        if (cases[i].json) {
            assert_bytes(&js, cases[i].json);
        }
        amon_envelope_release(&c);
    }

    amon_buf_free(&js, NULL);
}


static void
test_convert_round_trip(void **state)
{
    amon_buf_t      pb = {NULL, 0, 0}, js = {NULL, 0, 0};
    amon_envelope_t a, b;

    static const char hb[] =
        "{\"msg_id\":\"h1\",\"type\":\"heartbeat\",\"target_id\":\"t\","
        "\"timestamp\":9,\"payload\":{\"target_id\":\"t\",\"metrics\":"
        "{\"cpu\":\"1\",\"q\\\"\":\"x\"}}}";
    static const char ev[] =
        "{\"msg_id\":\"e1\",\"type\":\"event\",\"payload\":"
        "{\"event_name\":\"boot\",\"data\":{\"a\":[1,2]}}}";

    (void) state;

    /* JSON -> protobuf -> JSON gives the same text back */
    assert_int_equal(amon_envelope_decode_json(
                         &a, (const unsigned char *) hb, sizeof(hb) - 1),
        AMON_OK);
    assert_int_equal(
        amon_envelope_convert(&pb, MAX, NULL, &a, NONE, 1), AMON_OK);
    assert_int_equal(
        amon_envelope_decode_pb(&b, pb.data, pb.len, NULL), AMON_OK);
    assert_int_equal(
        amon_envelope_convert(&js, MAX, NULL, &b, NONE, 0), AMON_OK);
    assert_bytes(&js, hb);
    amon_envelope_release(&b);

    /* the wrong direction is refused */
    assert_int_equal(
        amon_envelope_convert(&js, MAX, NULL, &a, NONE, 0), AMON_EINVAL);

    /* event data stays JSON; a source goes first, and into field 7 */
    pb.len = js.len = 0;
    assert_int_equal(amon_envelope_decode_json(
                         &a, (const unsigned char *) ev, sizeof(ev) - 1),
        AMON_OK);
    assert_int_equal(
        amon_envelope_convert(&pb, MAX, NULL, &a, S("agent"), 1), AMON_OK);
    assert_int_equal(pb.data[pb.len - 7], (7 << 3) | 2);
    assert_int_equal(
        amon_envelope_decode_pb(&b, pb.data, pb.len, NULL), AMON_OK);
    assert_int_equal(
        amon_envelope_convert(&js, MAX, NULL, &b, S("agent"), 0), AMON_OK);
    assert_bytes(&js,
        "{\"source\":\"agent\",\"msg_id\":\"e1\",\"type\":\"event\","
        "\"payload\":{\"event_name\":\"boot\",\"data\":{\"a\":[1,2]}}}");
    amon_envelope_release(&b);

    /* a negative timestamp is an int64 like any other: kept both ways */
    pb.len = js.len = 0;
    {
        static const char neg[] =
            "{\"msg_id\":\"h2\",\"type\":\"heartbeat\",\"timestamp\":-5,"
            "\"payload\":{\"target_id\":\"t\",\"metrics\":{}}}";

        assert_int_equal(amon_envelope_decode_json(
                             &a, (const unsigned char *) neg, sizeof(neg) - 1),
            AMON_OK);
        assert_int_equal(
            amon_envelope_convert(&pb, MAX, NULL, &a, NONE, 1), AMON_OK);
        assert_int_equal(
            amon_envelope_decode_pb(&b, pb.data, pb.len, NULL), AMON_OK);
        assert_true(b.has_timestamp);
        assert_true(b.timestamp == -5);
        assert_int_equal(
            amon_envelope_convert(&js, MAX, NULL, &b, NONE, 0), AMON_OK);
        assert_bytes(&js, neg);
        amon_envelope_release(&b);
    }

    /* limits hold: nothing is appended past "max" */
    js.len = 0;
    assert_int_equal(
        amon_envelope_decode_pb(&b, pb.data, pb.len, NULL), AMON_OK);
    assert_int_equal(
        amon_envelope_convert(&js, 10, NULL, &b, NONE, 0), AMON_ETOOBIG);
    amon_envelope_release(&b);

    amon_buf_free(&pb, NULL);
    amon_buf_free(&js, NULL);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_about_an_action),
        cmocka_unit_test(test_error_not_about_an_action),
        cmocka_unit_test(test_duplicate_with_state),
        cmocka_unit_test(test_action_result),
        cmocka_unit_test(test_final_decoded),
        cmocka_unit_test(test_action_status),
        cmocka_unit_test(test_convert_round_trip),
        cmocka_unit_test(test_convert_pb_event_data),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
