/*
 * Copyright (C) AMonitor authors
 *
 * One message in the other encoding, for a panel that chose one: JSON text
 * from a decoded protobuf envelope, and a protobuf envelope from a decoded
 * JSON one.  The schema's fields are carried; fields outside it are not.
 */

#include <string.h>

#include "amon_envelope.h"
#include "amon_json.h"
#include "amon_json_write.h"
#include "amonitor.pb-c.h"


static void amon_conv_str(amon_json_w_t *w, const char *name, const char *s);
static int  amon_conv_text(
     amon_json_w_t *w, const char *name, const uint8_t *p, size_t len);
static void amon_conv_map(
    amon_json_w_t *w, const char *name, size_t n, void **entries, int metrics);
static int amon_conv_outcome(amon_json_w_t *w, const amon_envelope_t *env);
static int amon_conv_payload_json(amon_json_w_t *w, const amon_envelope_t *env);
static int amon_conv_pb_field7(
    amon_buf_t *out, size_t max, const amon_allocator_t *a, amon_str_t source);


int
amon_envelope_convert(amon_buf_t *out, size_t max, const amon_allocator_t *a,
    const amon_envelope_t *env, amon_str_t source, int to_binary)
{
    int                 rc;
    size_t              start;
    amon_json_w_t       w;
    amon_envelope_out_t e;

    if (to_binary) {
        if (env->binary) {
            return AMON_EINVAL;
        }

        memset(&e, 0, sizeof(e));
        e.msg_id = env->msg_id;
        e.trace_id = env->trace_id;
        e.type = env->type_name;
        e.target_id = env->target_id;
        e.timestamp = env->has_timestamp ? env->timestamp : AMON_TIMESTAMP_NONE;
        e.payload_json =
            env->has_payload ? env->payload : (amon_str_t) amon_null_string;

        start = out->len;

        rc = amon_envelope_build_pb(out, max, a, &e);
        if (rc != AMON_OK) {
            return rc;
        }

        rc = amon_conv_pb_field7(out, max, a, source);
        if (rc != AMON_OK) {
            out->len = start;
        }

        return rc;
    }

    if (!env->binary) {
        return AMON_EINVAL;
    }

    amon_json_w_init(&w, out, max, a);
    amon_json_w_object_begin(&w);

    if (source.data) {
        amon_json_w_key(&w, "source");
        amon_json_w_string(&w, source);
    }

    amon_json_w_key(&w, "msg_id");
    amon_json_w_string(&w, env->msg_id);

    if (env->trace_id.data) {
        amon_json_w_key(&w, "trace_id");
        amon_json_w_string(&w, env->trace_id);
    }

    amon_json_w_key(&w, "type");
    amon_json_w_string(&w, env->type_name);

    if (env->target_id.data) {
        amon_json_w_key(&w, "target_id");
        amon_json_w_string(&w, env->target_id);
    }

    if (env->has_timestamp) {
        amon_json_w_key(&w, "timestamp");
        amon_json_w_int64(&w, env->timestamp);
    }

    if (env->has_payload) {
        rc = amon_conv_payload_json(&w, env);
        if (rc != AMON_OK) {
            (void) amon_json_w_finish(&w);
            return rc;
        }
    }

    amon_json_w_object_end(&w);

    return amon_json_w_finish(&w);
}


/* the members of an action_ack or an error */
static int
amon_conv_outcome(amon_json_w_t *w, const amon_envelope_t *env)
{
    Amonitor__Control__V1__ActionAckPayload *ack;
    Amonitor__Control__V1__ErrorPayload     *err;

    if (env->type == AMON_MSG_ERROR) {
        err = env->pb_payload;
        amon_conv_str(w, "code", err->code);
        amon_conv_str(w, "message", err->message);

        if (err->action_msg_id && err->action_msg_id[0]) {
            amon_conv_str(w, "action_msg_id", err->action_msg_id);
            amon_json_w_key(w, "success");
            amon_json_w_bool(w, 0);
            amon_json_w_key(w, "final");
            amon_json_w_bool(w, err->final);
        }

        return AMON_OK;
    }

    ack = env->pb_payload;

    if (ack->final) {
        amon_json_w_key(w, "final");
        amon_json_w_bool(w, 1);
    }

    amon_conv_str(w, "action_msg_id", ack->action_msg_id);
    amon_json_w_key(w, "success");
    amon_json_w_bool(w, ack->success);
    amon_conv_str(w, "message", ack->message);

    if (ack->duplicate) {
        amon_json_w_key(w, "duplicate");
        amon_json_w_bool(w, 1);
    }

    amon_conv_str(w, "state", ack->state);

    return amon_conv_text(w, "original", ack->original.data, ack->original.len);
}


/* "payload" from the protobuf message of the envelope's type */
static int
amon_conv_payload_json(amon_json_w_t *w, const amon_envelope_t *env)
{
    int                                         rc;
    amon_str_t                                  raw;
    Amonitor__Control__V1__RegisterPayload     *reg;
    Amonitor__Control__V1__HeartbeatPayload    *hb;
    Amonitor__Control__V1__EventPayload        *ev;
    Amonitor__Control__V1__ActionPayload       *act;
    Amonitor__Control__V1__ActionStatusPayload *st;

    if (env->pb_payload == NULL) {
        /* no message in the schema: the payload holds JSON text */
        raw = env->payload;

        if (amon_json_validate(raw.data, raw.len, AMON_MAX_JSON_DEPTH)
            == AMON_OK) {
            amon_json_w_key(w, "payload");
            amon_json_w_raw(w, raw.data, raw.len);
        }

        return AMON_OK;
    }

    amon_json_w_key(w, "payload");
    amon_json_w_object_begin(w);

    rc = AMON_OK;

    switch (env->type) {

    case AMON_MSG_REGISTER:
        reg = env->pb_payload;
        amon_conv_str(w, "target_id", reg->target_id);
        amon_conv_str(w, "sdk_url", reg->sdk_url);
        amon_conv_map(
            w, "metadata", reg->n_metadata, (void **) reg->metadata, 0);
        break;

    case AMON_MSG_HEARTBEAT:
        hb = env->pb_payload;
        amon_conv_str(w, "target_id", hb->target_id);
        amon_conv_map(w, "metrics", hb->n_metrics, (void **) hb->metrics, 1);
        break;

    case AMON_MSG_EVENT:
        ev = env->pb_payload;
        amon_conv_str(w, "target_id", ev->target_id);
        amon_conv_str(w, "event_name", ev->event_name);
        rc = amon_conv_text(w, "data", ev->data.data, ev->data.len);
        break;

    case AMON_MSG_ACTION:
        act = env->pb_payload;
        amon_conv_str(w, "action", act->action);
        rc = amon_conv_text(w, "params", act->params.data, act->params.len);
        amon_conv_str(w, "target_url", act->target_url);
        break;

    case AMON_MSG_ACTION_ACK:
    case AMON_MSG_ERROR: rc = amon_conv_outcome(w, env); break;

    case AMON_MSG_ACTION_STATUS:
        st = env->pb_payload;
        amon_conv_str(w, "action_msg_id", st->action_msg_id);
        amon_conv_str(w, "state", st->state);
        rc = amon_conv_text(w, "result", st->result.data, st->result.len);
        break;

    default: break;
    }

    amon_json_w_object_end(w);

    return rc;
}


/* a non-empty string member ("" is proto3's absent) */
static void
amon_conv_str(amon_json_w_t *w, const char *name, const char *s)
{
    if (s == NULL || s[0] == '\0') {
        return;
    }

    amon_json_w_key(w, name);
    amon_json_w_cstring(w, s);
}


/*
 * Bytes that hold JSON text (params, data, results): the JSON itself;
 * other UTF-8 text as a string.  Other bytes have no form in JSON: the
 * message is not converted (AMON_EINVAL), so that a panel does not get it
 * with its data lost.
 */
static int
amon_conv_text(amon_json_w_t *w, const char *name, const uint8_t *p, size_t len)
{
    amon_str_t s;

    if (len == 0) {
        return AMON_OK;
    }

    if (amon_json_validate(p, len, AMON_MAX_JSON_DEPTH) == AMON_OK) {
        amon_json_w_key(w, name);
        amon_json_w_raw(w, p, len);
        return AMON_OK;
    }

    if (amon_utf8_validate(p, len) != AMON_OK) {
        return AMON_EINVAL;
    }

    s.data = p;
    s.len = len;

    amon_json_w_key(w, name);
    amon_json_w_string(w, s);

    return AMON_OK;
}


/* map<string,string> as an object of strings */
static void
amon_conv_map(
    amon_json_w_t *w, const char *name, size_t n, void **entries, int metrics)
{
    size_t                                                 i;
    const char                                            *k, *v;
    Amonitor__Control__V1__HeartbeatPayload__MetricsEntry *me;
    Amonitor__Control__V1__RegisterPayload__MetadataEntry *md;

    amon_json_w_key(w, name);
    amon_json_w_object_begin(w);

    for (i = 0; i < n; i++) {
        if (metrics) {
            me = entries[i];
            k = me->key;
            v = me->value;

        } else {
            md = entries[i];
            k = md->key;
            v = md->value;
        }

        amon_json_w_key(w, k ? k : "");
        amon_json_w_cstring(w, v ? v : "");
    }

    amon_json_w_object_end(w);
}


/* Envelope.source = 7, appended (a field may follow the others) */
static int
amon_conv_pb_field7(
    amon_buf_t *out, size_t max, const amon_allocator_t *a, amon_str_t source)
{
    int           rc;
    size_t        n, v;
    unsigned char hdr[11];

    if (source.data == NULL || source.len == 0) {
        return AMON_OK;
    }

    n = 0;
    hdr[n++] = (7 << 3) | 2;

    for (v = source.len; v >= 0x80; v >>= 7) {
        hdr[n++] = (unsigned char) (v | 0x80);
    }

    hdr[n++] = (unsigned char) v;

    rc = amon_buf_reserve(out, n + source.len, max, a);
    if (rc != AMON_OK) {
        return rc;
    }

    memcpy(out->data + out->len, hdr, n);
    memcpy(out->data + out->len + n, source.data, source.len);
    out->len += n + source.len;

    return AMON_OK;
}
