/*
 * Copyright (C) AMonitor authors
 *
 * Envelope encoding as JSON text, written with the core's JSON writer:
 * the envelopes the agent, the SDK and the CLI make themselves (acks,
 * duplicate acks, errors, target status, stored action results, forwarded
 * payloads), random UUIDs for message ids, and the message type names.
 */

#include <string.h>

#include <openssl/rand.h>

#include "amon_envelope.h"
#include "amon_envelope_pb.h"
#include "amon_json.h"


static void amon_envelope_str_member(
    amon_json_w_t *w, const char *name, amon_str_t s);
static void amon_envelope_head(amon_json_w_t *w, const amon_envelope_out_t *e);
static int  amon_envelope_is_object(amon_str_t json);


static const char amon_envelope_hex[] = "0123456789abcdef";


typedef struct {
    const char *name;
    size_t      len;
} amon_envelope_name_t;


#define amon_envelope_name(s) \
    { \
        s, sizeof(s) - 1 \
    }

static const amon_envelope_name_t amon_envelope_type_names[] = {
    amon_envelope_name(""),
    amon_envelope_name("register"),
    amon_envelope_name("heartbeat"),
    amon_envelope_name("event"),
    amon_envelope_name("action"),
    amon_envelope_name("action_ack"),
    amon_envelope_name("error"),
    amon_envelope_name("target_status"),
    amon_envelope_name("action_status"),
    amon_envelope_name("subscribe"),
    amon_envelope_name("subscribed"),
};

#define AMON_ENVELOPE_NTYPES \
    (sizeof(amon_envelope_type_names) / sizeof(amon_envelope_type_names[0]))


amon_msg_type_e
amon_msg_type(amon_str_t name)
{
    size_t i;

    /* the types of every action's round trip first, without a loop */
    if (name.len == 6 && memcmp(name.data, "action", 6) == 0) {
        return AMON_MSG_ACTION;
    }

    if (name.len == 10 && memcmp(name.data, "action_ack", 10) == 0) {
        return AMON_MSG_ACTION_ACK;
    }

    for (i = 1; i < AMON_ENVELOPE_NTYPES; i++) {
        if (name.len == amon_envelope_type_names[i].len
            && memcmp(name.data, amon_envelope_type_names[i].name, name.len)
                == 0) {
            return (amon_msg_type_e) i;
        }
    }

    return AMON_MSG_UNKNOWN;
}


const char *
amon_msg_type_name(amon_msg_type_e type)
{
    if ((size_t) type == 0 || (size_t) type >= AMON_ENVELOPE_NTYPES) {
        return "unknown";
    }

    return amon_envelope_type_names[type].name;
}


/* "name": s, left out when s is absent (data == NULL) */
static void
amon_envelope_str_member(amon_json_w_t *w, const char *name, amon_str_t s)
{
    if (s.data == NULL) {
        return;
    }

    amon_json_w_key(w, name);
    amon_json_w_string(w, s);
}


/* The envelope's object and its fields up to (not including) the payload. */
static void
amon_envelope_head(amon_json_w_t *w, const amon_envelope_out_t *e)
{
    amon_json_w_object_begin(w);

    amon_envelope_str_member(w, "msg_id", e->msg_id);
    amon_envelope_str_member(w, "trace_id", e->trace_id);
    amon_envelope_str_member(w, "type", e->type);
    amon_envelope_str_member(w, "target_id", e->target_id);

    if (e->timestamp != AMON_TIMESTAMP_NONE) {
        amon_json_w_key(w, "timestamp");
        amon_json_w_int64(w, e->timestamp);
    }
}


static int
amon_envelope_is_object(amon_str_t json)
{
    amon_json_value_t root;
    amon_str_t        none = amon_null_string;

    if (json.data == NULL
        || amon_json_scan(json.data, json.len, AMON_MAX_JSON_DEPTH, none, NULL,
               NULL, &root)
            != AMON_OK) {
        return 0;
    }

    return root.type == AMON_JSON_OBJECT;
}


int
amon_envelope_build_json(amon_buf_t *out, size_t max, const amon_allocator_t *a,
    const amon_envelope_out_t *e)
{
    amon_json_w_t w;

    if (e->payload_json.data && !amon_envelope_is_object(e->payload_json)) {
        return AMON_EINVAL;
    }

    amon_json_w_init(&w, out, max, a);

    amon_envelope_head(&w, e);

    if (e->payload_json.data) {
        amon_json_w_key(&w, "payload");
        amon_json_w_raw(&w, e->payload_json.data, e->payload_json.len);
    }

    amon_json_w_object_end(&w);

    return amon_json_w_finish(&w);
}


int
amon_envelope_build_pb(amon_buf_t *out, size_t max, const amon_allocator_t *a,
    const amon_envelope_out_t *e)
{
    amon_pb_env_t pe;

    memset(&pe, 0, sizeof(pe));

    pe.head = *e;
    pe.kind = AMON_PB_PAYLOAD_JSON;
    pe.payload_type = amon_msg_type(e->type);

    return amon_pb_envelope(out, max, a, &pe);
}


int
amon_envelope_build_ack(amon_buf_t *out, size_t max, const amon_allocator_t *a,
    const amon_ack_out_t *ack, int binary)
{
    amon_json_w_t       w;
    amon_pb_env_t       pe;
    amon_envelope_out_t e;
    static const char   type[] = "action_ack";

    memset(&e, 0, sizeof(e));

    e.msg_id = ack->msg_id;
    e.trace_id = ack->trace_id;
    e.type.data = (const unsigned char *) type;
    e.type.len = sizeof(type) - 1;
    e.target_id = ack->target_id;
    e.timestamp = ack->timestamp;

    if (binary) {
        memset(&pe, 0, sizeof(pe));
        pe.head = e;
        pe.kind = AMON_PB_PAYLOAD_ACK;
        pe.ack = ack;

        return amon_pb_envelope(out, max, a, &pe);
    }

    if (ack->original.data && !amon_envelope_is_object(ack->original)) {
        return AMON_EINVAL;
    }

    amon_json_w_init(&w, out, max, a);

    amon_envelope_head(&w, &e);

    amon_json_w_key(&w, "payload");
    amon_json_w_object_begin(&w);

    amon_envelope_str_member(&w, "action_msg_id", ack->action_msg_id);
    amon_json_w_key(&w, "success");
    amon_json_w_bool(&w, ack->success);
    amon_envelope_str_member(&w, "message", ack->message);

    if (ack->duplicate) {
        amon_json_w_key(&w, "duplicate");
        amon_json_w_bool(&w, 1);
    }

    if (ack->state.data) {
        amon_envelope_str_member(&w, "state", ack->state);
    }

    if (ack->original.data) {
        amon_json_w_key(&w, "original");
        amon_json_w_raw(&w, ack->original.data, ack->original.len);
    }

    if (ack->final != AMON_FINAL_ABSENT) {
        amon_json_w_key(&w, "final");
        amon_json_w_bool(&w, ack->final == AMON_FINAL_YES);
    }

    amon_json_w_object_end(&w);
    amon_json_w_object_end(&w);

    return amon_json_w_finish(&w);
}


int
amon_envelope_build_error(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, amon_str_t msg_id, amon_str_t target_id,
    int64_t timestamp, const char *code, amon_str_t message, int binary)
{
    amon_error_out_t err;

    memset(&err, 0, sizeof(err));

    err.msg_id = msg_id;
    err.target_id = target_id;
    err.timestamp = timestamp;
    err.code = code;
    err.message = message;

    return amon_envelope_build_error_out(out, max, a, &err, binary);
}


/*
 * An error envelope.  Every envelope needs a msg_id; when the offending
 * message had none, the error gets a fresh random one.
 */
int
amon_envelope_build_error_out(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, const amon_error_out_t *err, int binary)
{
    unsigned char       rnd[16], id[AMON_UUID_LEN];
    amon_json_w_t       w;
    amon_pb_env_t       pe;
    amon_envelope_out_t e;
    amon_str_t          c, msg_id;
    static const char   type[] = "error";

    memset(&e, 0, sizeof(e));

    msg_id = err->msg_id;

    if (msg_id.data == NULL || msg_id.len == 0) {
        if (RAND_bytes(rnd, sizeof(rnd)) == 1) {
            amon_uuid4(rnd, id);
            msg_id.data = id;
            msg_id.len = sizeof(id);
        }
    }

    c.data = (const unsigned char *) err->code;
    c.len = err->code ? strlen(err->code) : 0;

    e.msg_id = msg_id;
    e.trace_id = err->trace_id;
    e.type.data = (const unsigned char *) type;
    e.type.len = sizeof(type) - 1;
    e.target_id = err->target_id;
    e.timestamp = err->timestamp;

    if (binary) {
        memset(&pe, 0, sizeof(pe));
        pe.head = e;
        pe.kind = AMON_PB_PAYLOAD_ERROR;
        pe.code = c;
        pe.message = err->message;
        pe.error = err;

        return amon_pb_envelope(out, max, a, &pe);
    }

    amon_json_w_init(&w, out, max, a);

    amon_envelope_head(&w, &e);

    amon_json_w_key(&w, "payload");
    amon_json_w_object_begin(&w);
    amon_envelope_str_member(&w, "code", c);
    amon_envelope_str_member(&w, "message", err->message);

    if (err->action_msg_id.data) {
        amon_envelope_str_member(&w, "action_msg_id", err->action_msg_id);
        amon_json_w_key(&w, "success");
        amon_json_w_bool(&w, 0);
    }

    if (err->final != AMON_FINAL_ABSENT) {
        amon_json_w_key(&w, "final");
        amon_json_w_bool(&w, err->final == AMON_FINAL_YES);
    }

    amon_json_w_object_end(&w);

    amon_json_w_object_end(&w);

    return amon_json_w_finish(&w);
}


int
amon_envelope_build_action_status(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, const amon_envelope_out_t *head,
    amon_str_t action_msg_id, const char *state, amon_str_t result, int binary)
{
    amon_json_w_t       w;
    amon_pb_env_t       pe;
    amon_envelope_out_t e;
    static const char   type[] = "action_status";

    if (result.data && !amon_envelope_is_object(result)) {
        return AMON_EINVAL;
    }

    e = *head;
    e.type.data = (const unsigned char *) type;
    e.type.len = sizeof(type) - 1;
    e.payload_json.data = NULL;
    e.payload_json.len = 0;

    if (binary) {
        memset(&pe, 0, sizeof(pe));
        pe.head = e;
        pe.kind = AMON_PB_PAYLOAD_STATUS;
        pe.code.data = (const unsigned char *) state;
        pe.code.len = strlen(state);
        pe.message = result;
        pe.action_msg_id = action_msg_id;

        return amon_pb_envelope(out, max, a, &pe);
    }

    amon_json_w_init(&w, out, max, a);

    amon_envelope_head(&w, &e);

    amon_json_w_key(&w, "payload");
    amon_json_w_object_begin(&w);
    amon_envelope_str_member(&w, "action_msg_id", action_msg_id);
    amon_json_w_key(&w, "state");
    amon_json_w_cstring(&w, state);

    if (result.data) {
        amon_json_w_key(&w, "result");
        amon_json_w_raw(&w, result.data, result.len);
    }

    amon_json_w_object_end(&w);

    amon_json_w_object_end(&w);

    return amon_json_w_finish(&w);
}


int
amon_envelope_build_target_state(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, amon_str_t msg_id, amon_str_t target_id,
    int64_t timestamp, const char *state, amon_str_t url, int64_t since,
    amon_str_t reason)
{
    amon_json_w_t       w;
    amon_envelope_out_t e;
    static const char   type[] = "target_status";

    memset(&e, 0, sizeof(e));

    e.msg_id = msg_id;
    e.type.data = (const unsigned char *) type;
    e.type.len = sizeof(type) - 1;
    e.target_id = target_id;
    e.timestamp = timestamp;

    amon_json_w_init(&w, out, max, a);

    amon_envelope_head(&w, &e);

    amon_json_w_key(&w, "payload");
    amon_json_w_object_begin(&w);
    amon_json_w_key(&w, "target_id");
    amon_json_w_string(&w, target_id);
    amon_json_w_key(&w, "state");
    amon_json_w_cstring(&w, state);
    amon_json_w_key(&w, "url");
    amon_json_w_string(&w, url);

    if (since >= 0) {
        amon_json_w_key(&w, "since");
        amon_json_w_int64(&w, since);
    }

    amon_envelope_str_member(&w, "reason", reason);

    amon_json_w_object_end(&w);

    amon_json_w_object_end(&w);

    return amon_json_w_finish(&w);
}


int
amon_envelope_build_result(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, int success, const char *code,
    const amon_str_t *message)
{
    amon_str_t none = amon_null_string;

    return amon_envelope_build_action_result(
        out, max, a, none, success, code, message);
}


int
amon_envelope_build_action_result(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, amon_str_t action_msg_id, int success,
    const char *code, const amon_str_t *message)
{
    amon_json_w_t w;

    amon_json_w_init(&w, out, max, a);

    amon_json_w_object_begin(&w);

    amon_envelope_str_member(&w, "action_msg_id", action_msg_id);

    amon_json_w_key(&w, "success");
    amon_json_w_bool(&w, success);

    if (code) {
        amon_json_w_key(&w, "code");
        amon_json_w_cstring(&w, code);
    }

    if (message) {
        amon_json_w_key(&w, "message");
        amon_json_w_string(&w, *message);
    }

    amon_json_w_object_end(&w);

    return amon_json_w_finish(&w);
}


void
amon_uuid4(const unsigned char random16[16], unsigned char out[AMON_UUID_LEN])
{
    unsigned      i, n;
    unsigned char b;

    n = 0;

    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[n++] = '-';
        }

        b = random16[i];

        if (i == 6) {
            b = (unsigned char) ((b & 0x0f) | 0x40); /* version 4 */

        } else if (i == 8) {
            b = (unsigned char) ((b & 0x3f) | 0x80); /* RFC 4122 variant */
        }

        out[n++] = (unsigned char) amon_envelope_hex[b >> 4];
        out[n++] = (unsigned char) amon_envelope_hex[b & 0xf];
    }
}
