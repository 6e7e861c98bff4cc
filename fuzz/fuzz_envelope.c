/*
 * Copyright (C) AMonitor authors
 *
 * libFuzzer target for the envelope codec.  The input is decoded as a
 * JSON envelope and as a protobuf Envelope; whatever decodes is built
 * again (JSON and protobuf) and decoded once more, and the fields must
 * come back the same.  A mismatch traps.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "amon_envelope.h"
#include "amon_envelope_int.h"
#include "amon_json.h"
#include "amonitor.pb-c.h"


#define CHECK(x) \
    do { \
        if (!(x)) { \
            __builtin_trap(); \
        } \
    } while (0)


typedef struct {
    long allocs;
    long frees;
} counter_t;


static amon_envelope_t env, env2;


static void *
count_alloc(void *data, size_t size)
{
    counter_t *c = data;

    c->allocs++;

    return malloc(size);
}


static void
count_free(void *data, void *p)
{
    counter_t *c = data;

    c->frees++;
    free(p);
}


static int
same(amon_str_t a, amon_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}


static int
has_nul(amon_str_t s)
{
    return s.len && memchr(s.data, '\0', s.len) != NULL;
}


/* Fields a protobuf round trip keeps: strings without NUL bytes. */
static int
pb_safe(const amon_envelope_t *e)
{
    return !has_nul(e->msg_id) && !has_nul(e->trace_id)
        && !has_nul(e->type_name) && !has_nul(e->target_id)
        && !has_nul(e->action) && !has_nul(e->target_url)
        && !has_nul(e->action_msg_id) && !has_nul(e->message)
        && !has_nul(e->code) && !has_nul(e->sdk_url) && !has_nul(e->event_name)
        && !has_nul(e->payload_target_id);
}


static void
same_payload_fields(const amon_envelope_t *a, const amon_envelope_t *b)
{
    CHECK(a->type == b->type);
    CHECK(same(a->action, b->action));
    CHECK(same(a->params, b->params));
    CHECK(same(a->target_url, b->target_url));
    CHECK(same(a->action_msg_id, b->action_msg_id));
    CHECK(same(a->message, b->message));
    CHECK(same(a->code, b->code));
    CHECK(same(a->sdk_url, b->sdk_url));
    CHECK(same(a->event_name, b->event_name));
    CHECK(same(a->payload_target_id, b->payload_target_id));
    CHECK(
        (a->has_success ? a->success : 0) == (b->has_success ? b->success : 0));
}


static void
fill_out(amon_envelope_out_t *o, const amon_envelope_t *e, int payload)
{
    memset(o, 0, sizeof(*o));

    o->msg_id = e->msg_id;
    o->trace_id = e->trace_id;
    o->type = e->type_name;
    o->target_id = e->target_id;
    o->timestamp = e->has_timestamp ? e->timestamp : AMON_TIMESTAMP_NONE;

    if (payload && e->has_payload) {
        o->payload_json = e->payload;
    }
}


static void
json_round_trip(size_t max)
{
    int                 rc;
    amon_buf_t          out = {NULL, 0, 0};
    amon_envelope_out_t o;
    amon_ack_out_t      ack;

    /* JSON -> JSON: every field, the payload bytes verbatim */

    fill_out(&o, &env, 1);

    rc = amon_envelope_build_json(&out, max, NULL, &o);
    CHECK(rc == AMON_OK);

    rc = amon_envelope_decode_json(&env2, out.data, out.len);
    CHECK(rc == AMON_OK);
    CHECK(same(env.msg_id, env2.msg_id));
    CHECK(same(env.trace_id, env2.trace_id));
    CHECK(same(env.type_name, env2.type_name));
    CHECK(same(env.target_id, env2.target_id));
    CHECK(env2.has_timestamp
        == (env.has_timestamp && env.timestamp != AMON_TIMESTAMP_NONE));
    CHECK(!env2.has_timestamp || env2.timestamp == env.timestamp);
    CHECK(env.has_payload == env2.has_payload);
    CHECK(same(env.payload, env2.payload));
    same_payload_fields(&env, &env2);

    /* JSON -> protobuf: the fields the schema has */

    out.len = 0;
    rc = amon_envelope_build_pb(&out, max, NULL, &o);

    if (rc == AMON_EFIELD_TYPE
        && (env.type == AMON_MSG_REGISTER || env.type == AMON_MSG_HEARTBEAT)) {
        /*
         * The decoder passes "metadata"/"metrics" through whatever their
         * JSON type; only an object has a protobuf form (a map).  Their
         * other fields' types the decoder has checked already.
         */
        goto acks;
    }

    CHECK(rc == AMON_OK);

    rc = amon_envelope_decode_pb(&env2, out.data, out.len, NULL);

    /*
     * proto3 cannot tell an empty ActionPayload from none: an action whose
     * payload has none of the schema's fields has no payload as protobuf.
     */
    if (env.type == AMON_MSG_ACTION && env.action.len == 0
        && env.params.len == 0 && env.target_url.len == 0) {
        CHECK(rc == AMON_ENO_PAYLOAD);

    } else if (pb_safe(&env)) {
        CHECK(rc == AMON_OK);
        CHECK(same(env.msg_id, env2.msg_id));
        CHECK(same(env.trace_id, env2.trace_id));
        CHECK(same(env.type_name, env2.type_name));
        CHECK(same(env.target_id, env2.target_id));
        CHECK(env2.timestamp
            == ((env.has_timestamp && env.timestamp != AMON_TIMESTAMP_NONE)
                    ? env.timestamp
                    : 0));
        same_payload_fields(&env, &env2);

        if (env.type == AMON_MSG_UNKNOWN
            || env.type == AMON_MSG_TARGET_STATUS) {
            CHECK(same(env.payload, env2.payload));
        }
    }

    amon_envelope_release(&env2);

acks:

    /* an ack or an error made from the fields decodes to the same */

    if (env.type == AMON_MSG_ACTION_ACK) {
        memset(&ack, 0, sizeof(ack));
        ack.msg_id = env.msg_id;
        ack.trace_id = env.trace_id;
        ack.target_id = env.target_id;
        ack.timestamp = env.has_timestamp ? env.timestamp : AMON_TIMESTAMP_NONE;
        ack.action_msg_id = env.action_msg_id;
        ack.success = env.success;
        ack.message = env.message;
        ack.duplicate = 1;
        ack.original = env.payload;

        out.len = 0;
        rc = amon_envelope_build_ack(&out, max, NULL, &ack, 0);
        CHECK(rc == AMON_OK);

        rc = amon_envelope_decode_json(&env2, out.data, out.len);
        CHECK(rc == AMON_OK);
        same_payload_fields(&env, &env2);
    }

    amon_buf_free(&out, NULL);
}


static void
pb_round_trip(size_t max)
{
    int                 rc;
    amon_buf_t          out = {NULL, 0, 0};
    amon_envelope_out_t o;
    amon_ack_out_t      ack;

    /* the envelope without its payload, as JSON and as protobuf */

    fill_out(&o, &env, 0);

    rc = amon_envelope_build_json(&out, max, NULL, &o);
    CHECK(rc == AMON_OK);

    rc = amon_envelope_decode_json(&env2, out.data, out.len);
    CHECK(rc == AMON_OK
        || (rc == AMON_ENO_PAYLOAD && env.type == AMON_MSG_ACTION));
    CHECK(same(env.msg_id, env2.msg_id));
    CHECK(same(env.type_name, env2.type_name));

    if (rc == AMON_OK) {
        CHECK(same(env.trace_id, env2.trace_id));
        CHECK(same(env.target_id, env2.target_id));
        CHECK(env2.has_timestamp
            == (env.has_timestamp && env.timestamp != AMON_TIMESTAMP_NONE));
    }

    out.len = 0;
    rc = amon_envelope_build_pb(&out, max, NULL, &o);
    CHECK(rc == AMON_OK);

    rc = amon_envelope_decode_pb(&env2, out.data, out.len, NULL);
    CHECK(rc == AMON_OK
        || (rc == AMON_ENO_PAYLOAD && env.type == AMON_MSG_ACTION));
    CHECK(same(env.msg_id, env2.msg_id));
    CHECK(same(env.type_name, env2.type_name));
    amon_envelope_release(&env2);

    /* acks and errors can be rebuilt from their fields */

    if (env.type == AMON_MSG_ACTION_ACK) {
        memset(&ack, 0, sizeof(ack));
        ack.msg_id = env.msg_id;
        ack.trace_id = env.trace_id;
        ack.target_id = env.target_id;
        ack.timestamp = env.timestamp;
        ack.action_msg_id = env.action_msg_id;
        ack.success = env.success;
        ack.message = env.message;

        out.len = 0;
        rc = amon_envelope_build_ack(&out, max, NULL, &ack, 1);
        CHECK(rc == AMON_OK);

        rc = amon_envelope_decode_pb(&env2, out.data, out.len, NULL);
        CHECK(rc == AMON_OK);
        same_payload_fields(&env, &env2);
        amon_envelope_release(&env2);

        /*
         * As JSON, a long message full of characters that need escapes
         * may not fit the decoder's scratch space once unescaped.
         */
        out.len = 0;
        rc = amon_envelope_build_ack(&out, max, NULL, &ack, 0);
        CHECK(rc == AMON_OK);

        rc = amon_envelope_decode_json(&env2, out.data, out.len);
        CHECK(rc == AMON_OK
            || (rc == AMON_EFIELD_LONG
                && env.message.len
                    > AMON_ENVELOPE_SCRATCH - 5 * AMON_MAX_ID_LEN));
        if (rc == AMON_OK) {
            same_payload_fields(&env, &env2);
        }
    }

    if (env.type == AMON_MSG_ERROR) {
        out.len = 0;
        rc = amon_envelope_build_error(&out, max, NULL, env.msg_id,
            env.target_id, env.timestamp,
            env.code.data ? (const char *) env.code.data : NULL, env.message,
            1);
        CHECK(rc == AMON_OK);

        rc = amon_envelope_decode_pb(&env2, out.data, out.len, NULL);
        CHECK(rc == AMON_OK);
        same_payload_fields(&env, &env2);
        CHECK(same(env.msg_id, env2.msg_id));
        amon_envelope_release(&env2);
    }

    amon_buf_free(&out, NULL);
}


/* The JSON -> protobuf payload converter, for every type. */
static void
convert_payload(const uint8_t *data, size_t size, size_t max)
{
    int               rc, t;
    amon_buf_t        out = {NULL, 0, 0};
    amon_str_t        json;
    ProtobufCMessage *m;

    json.data = data;
    json.len = size;

    for (t = AMON_MSG_UNKNOWN; t <= AMON_MSG_TARGET_STATUS; t++) {
        out.len = 0;
        rc =
            amon_payload_json_to_pb(&out, max, NULL, (amon_msg_type_e) t, json);

        if (rc != AMON_OK) {
            CHECK(rc == AMON_EJSON || rc == AMON_EDEPTH || rc == AMON_ENOTOBJ
                || rc == AMON_EFIELD_TYPE);
            continue;
        }

        m = NULL;

        switch (t) {
        case AMON_MSG_REGISTER:
            m = (ProtobufCMessage *)
                amonitor__control__v1__register_payload__unpack(
                    NULL, out.len, out.data);
            break;
        case AMON_MSG_HEARTBEAT:
            m = (ProtobufCMessage *)
                amonitor__control__v1__heartbeat_payload__unpack(
                    NULL, out.len, out.data);
            break;
        case AMON_MSG_EVENT:
            m = (ProtobufCMessage *)
                amonitor__control__v1__event_payload__unpack(
                    NULL, out.len, out.data);
            break;
        case AMON_MSG_ACTION:
            m = (ProtobufCMessage *)
                amonitor__control__v1__action_payload__unpack(
                    NULL, out.len, out.data);
            break;
        case AMON_MSG_ACTION_ACK:
            m = (ProtobufCMessage *)
                amonitor__control__v1__action_ack_payload__unpack(
                    NULL, out.len, out.data);
            break;
        case AMON_MSG_ERROR:
            m = (ProtobufCMessage *)
                amonitor__control__v1__error_payload__unpack(
                    NULL, out.len, out.data);
            break;
        default:
            /* no schema message: the JSON text itself */
            CHECK(out.len == size && memcmp(out.data, data, size) == 0);
            continue;
        }

        CHECK(m != NULL);
        protobuf_c_message_free_unpacked(m, NULL);
    }

    amon_buf_free(&out, NULL);
}


/*
 * A decoded envelope in the other encoding (what a panel that chose one
 * gets) decodes again, as the same message.
 */
static void
convert_check(const amon_envelope_t *e, size_t max, int to_binary)
{
    int             rc;
    amon_buf_t      out = {NULL, 0, 0};
    amon_envelope_t env2;
    amon_str_t      source = amon_string("agent");

    rc = amon_envelope_convert(&out, max, NULL, e, source, to_binary);

    if (rc == AMON_OK) {
        rc = to_binary ? amon_envelope_decode_pb(&env2, out.data, out.len, NULL)
                       : amon_envelope_decode_json(&env2, out.data, out.len);

        /* a converted message decodes, with the same id and type */
        if (rc == AMON_OK) {
            CHECK(env2.msg_id.len == e->msg_id.len
                && memcmp(env2.msg_id.data, e->msg_id.data, e->msg_id.len)
                    == 0);
            CHECK(env2.type == e->type);
        }

        amon_envelope_release(&env2);

    } else {
        CHECK(rc == AMON_ETOOBIG || rc == AMON_ENOMEM || rc == AMON_EINVAL
            || rc < 0);
    }

    amon_buf_free(&out, NULL);
}


/*
 * The walk of the usual envelope and the general scanner find the same
 * members in every text the walk takes, and the walk takes none that the
 * scanner refuses.
 */
static void
fast_check(const uint8_t *data, size_t size)
{
    amon_envelope_scan_t fast, full;
    amon_json_value_t    fast_root, full_root;

    amon_envelope_scan_init(&fast, 0);

    if (amon_envelope_scan_fast(data, size, &fast, &fast_root) != AMON_OK) {
        return;
    }

    CHECK(amon_envelope_scan_json(data, size, &full, &full_root, 0) == AMON_OK);
    CHECK(amon_envelope_scan_same(&fast, &fast_root, &full, &full_root));
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              rc, vrc;
    size_t           max;
    counter_t        c;
    amon_allocator_t a;

    max = 8 * size + 65536;

    /* JSON */

    fast_check(data, size);

    rc = amon_envelope_decode_json(&env, data, size);
    vrc = amon_json_validate(data, size, AMON_MAX_JSON_DEPTH);

    if (vrc != AMON_OK) {
        CHECK(rc == vrc);

    } else {
        CHECK(rc != AMON_EJSON && rc != AMON_EDEPTH);
    }

    /*
     * Text that decodes (or is valid JSON) is valid UTF-8: the module
     * leaves the UTF-8 check of a whole text frame to the decoder
     * (amon_ws_session_utf8_later()).
     */
    if (rc == AMON_OK || vrc == AMON_OK) {
        CHECK(amon_utf8_validate(data, size) == AMON_OK);
    }

    if (rc == AMON_OK) {
        CHECK(env.msg_id.len > 0 && env.msg_id.len <= AMON_MAX_ID_LEN);
        CHECK(env.type_name.len > 0);
        CHECK(env.type != AMON_MSG_ACTION || env.has_payload);

        if (env.has_payload) {
            CHECK(env.payload.data >= data
                && env.payload.data + env.payload.len <= data + size);
            CHECK(env.payload.data[0] == '{');
            CHECK(amon_json_validate(
                      env.payload.data, env.payload.len, AMON_MAX_JSON_DEPTH)
                == AMON_OK);
        }

        json_round_trip(max);
        convert_check(&env, max, 1);
    }

    amon_envelope_release(&env);

    convert_payload(data, size, max);

    /* protobuf, through counting allocator hooks */

    c.allocs = 0;
    c.frees = 0;
    a.alloc = count_alloc;
    a.free = count_free;
    a.data = &c;

    rc = amon_envelope_decode_pb(&env, data, size, &a);

    if (rc == AMON_OK) {
        CHECK(env.binary);
        CHECK(env.msg_id.len > 0 && env.type_name.len > 0);
        pb_round_trip(max);
        convert_check(&env, max, 0);
    }

    amon_envelope_release(&env);
    CHECK(c.allocs == c.frees);

    return 0;
}
