/*
 * Copyright (C) AMonitor authors
 *
 * Envelope decoding, protobuf side: an Envelope is unpacked with
 * protobuf-c through the caller's allocator, its strings copied into the
 * decoded envelope's scratch space; a broken one still yields its msg_id
 * and trace_id where they can be read (for the error that answers it).
 */

#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "amon_envelope.h"
#include "amon_envelope_int.h"
#include "amonitor.pb-c.h"


static void *amon_envelope_pb_alloc(void *data, size_t size);
static void  amon_envelope_pb_free(void *data, void *p);
static int   amon_envelope_pb_str(const char *s, size_t limit, amon_str_t *out);
static int   amon_envelope_pb_payload(
      amon_envelope_t *env, ProtobufCAllocator *pa);
static int amon_envelope_pb_report(
    amon_envelope_t *env, ProtobufCAllocator *pa);
static int amon_envelope_pb_action(
    amon_envelope_t *env, ProtobufCAllocator *pa);
static int amon_envelope_pb_outcome(
    amon_envelope_t *env, ProtobufCAllocator *pa);
static int amon_envelope_pb_query(amon_envelope_t *env, ProtobufCAllocator *pa);
static void amon_envelope_pb_salvage(
    amon_envelope_t *env, const unsigned char *p, size_t len);
static uint32_t amon_envelope_pb_nuls(const unsigned char *p, size_t len);
static int      amon_envelope_pb_head(amon_envelope_t *env,
         Amonitor__Control__V1__Envelope *e, const unsigned char *p, size_t len);
static int      amon_envelope_pb_field(const unsigned char *p, size_t len,
         size_t *pos, uint64_t *key, amon_str_t *s);
static int      amon_envelope_pb_varint(
         const unsigned char *p, size_t len, size_t *pos, uint64_t *value);


/* the string fields of each message the agent reads, a bit per number */
#define AMON_PB_F(n) ((uint32_t) 1 << (n))
#define AMON_PB_ENVELOPE_STRS \
    (AMON_PB_F(1) | AMON_PB_F(2) | AMON_PB_F(3) | AMON_PB_F(4) | AMON_PB_F(7))

/* what protobuf-c allocates through: tells a failed allocation apart */
typedef struct {
    const amon_allocator_t *a;
    unsigned                failed;
} amon_envelope_pb_ctx_t;

static void *
amon_envelope_pb_alloc(void *data, size_t size)
{
    void                   *p;
    amon_envelope_pb_ctx_t *ctx;

    ctx = data;

    p = amon_alloc(ctx->a, size);
    if (p == NULL) {
        ctx->failed = 1;
    }

    return p;
}


static void
amon_envelope_pb_free(void *data, void *p)
{
    amon_envelope_pb_ctx_t *ctx;

    ctx = data;

    amon_free(ctx->a, p);
}


/* protobuf-c strings: proto3 makes "" and absent the same */
static int
amon_envelope_pb_str(const char *s, size_t limit, amon_str_t *out)
{
    size_t n;

    if (s == NULL || s[0] == '\0') {
        return AMON_OK;
    }

    n = strlen(s);

    if (amon_utf8_validate((const unsigned char *) s, n) != AMON_OK) {
        return AMON_EPROTOBUF;
    }

    if (n > limit) {
        return AMON_EFIELD_LONG;
    }

    out->data = (const unsigned char *) s;
    out->len = n;

    return AMON_OK;
}


int
amon_envelope_decode_pb(amon_envelope_t *env, const unsigned char *p,
    size_t len, const amon_allocator_t *a)
{
    int                              rc;
    ProtobufCAllocator               pa;
    amon_envelope_pb_ctx_t           ctx;
    Amonitor__Control__V1__Envelope *e;

    memset(env, 0, offsetof(amon_envelope_t, scratch));

    env->binary = 1;
    env->allocator = a;

    ctx.a = a;
    ctx.failed = 0;
    pa.alloc = amon_envelope_pb_alloc;
    pa.free = amon_envelope_pb_free;
    pa.allocator_data = &ctx;

    e = amonitor__control__v1__envelope__unpack(&pa, len, p);
    if (e == NULL) {
        if (ctx.failed) {
            return AMON_ENOMEM;
        }

        /* broken, but its ids may be readable: an error can echo them */
        amon_envelope_pb_salvage(env, p, len);
        return AMON_EPROTOBUF;
    }

    env->pb_envelope = e;

    rc = amon_envelope_pb_head(env, e, p, len);
    if (rc != AMON_OK) {
        return rc;
    }

    /* proto3: a zero timestamp is an absent one */
    if (e->timestamp != 0) {
        env->timestamp = e->timestamp;
        env->has_timestamp = 1;
    }

    if (e->payload.len == 0) {
        return env->type == AMON_MSG_ACTION ? AMON_ENO_PAYLOAD : AMON_OK;
    }

    env->has_payload = 1;
    env->payload.data = e->payload.data;
    env->payload.len = e->payload.len;

    rc = amon_envelope_pb_payload(env, &pa);

    if (rc == AMON_EPROTOBUF && ctx.failed) {
        return AMON_ENOMEM;
    }

    return rc;
}


/*
 * The Envelope's own strings.  protobuf-c gives strings NUL-terminated:
 * one with a NUL inside would be read cut short (two msg_ids as one, a
 * target_id checked shorter than the SDK reads it).  Refused as JSON's
 * \u0000 is; the msg_id (and trace_id) are echoed only when they have
 * none.
 */
static int
amon_envelope_pb_head(amon_envelope_t *env, Amonitor__Control__V1__Envelope *e,
    const unsigned char *p, size_t len)
{
    int      rc;
    uint32_t nuls;

    nuls = amon_envelope_pb_nuls(p, len) & AMON_PB_ENVELOPE_STRS;

    if (nuls & AMON_PB_F(1)) {
        return AMON_EFIELD_NUL;
    }

    rc = amon_envelope_pb_str(e->msg_id, AMON_MAX_ID_LEN, &env->msg_id);
    if (rc != AMON_OK) {
        return rc;
    }

    if (nuls & AMON_PB_F(2)) {
        return AMON_EFIELD_NUL;
    }

    if (env->msg_id.len == 0) {
        return AMON_ENO_MSG_ID;
    }

    rc = amon_envelope_pb_str(e->type, AMON_MAX_ID_LEN, &env->type_name);
    if (rc != AMON_OK) {
        return rc;
    }

    if (env->type_name.len == 0) {
        return AMON_ENO_TYPE;
    }

    env->type = amon_msg_type(env->type_name);

    rc = amon_envelope_pb_str(e->trace_id, AMON_MAX_ID_LEN, &env->trace_id);
    if (rc != AMON_OK) {
        return rc;
    }

    if (nuls) {
        return AMON_EFIELD_NUL;
    }

    rc = amon_envelope_pb_str(e->target_id, AMON_MAX_ID_LEN, &env->target_id);
    if (rc != AMON_OK) {
        return rc;
    }

    env->has_source = (e->source != NULL && e->source[0] != '\0');

    return AMON_OK;
}


/* a varint at p[*pos] (at most ten bytes); 0 when it runs past "len" */
static int
amon_envelope_pb_varint(
    const unsigned char *p, size_t len, size_t *pos, uint64_t *value)
{
    size_t shift;

    *value = 0;

    for (shift = 0; *pos < len && shift < 70; shift += 7) {
        *value |= (uint64_t) (p[*pos] & 0x7f) << shift;

        if ((p[(*pos)++] & 0x80) == 0) {
            return 1;
        }
    }

    return 0;
}


/*
 * The next field of a message at p[*pos]: its key, and for a
 * length-delimited one its bytes in "s".  The position moves past it.  0
 * at the end, or when the field runs past "len" or has a wire type that
 * proto3 does not use.
 */
static int
amon_envelope_pb_field(const unsigned char *p, size_t len, size_t *pos,
    uint64_t *key, amon_str_t *s)
{
    uint64_t v;

    if (*pos >= len || !amon_envelope_pb_varint(p, len, pos, key)) {
        return 0;
    }

    s->data = NULL;
    s->len = 0;

    switch (*key & 7) {
    case 0: return amon_envelope_pb_varint(p, len, pos, &v);
    case 1: v = 8; break;
    case 5: v = 4; break;

    case 2:
        if (!amon_envelope_pb_varint(p, len, pos, &v)) {
            return 0;
        }
        break;

    default: return 0;
    }

    if (v > len - *pos) {
        return 0;
    }

    if ((*key & 7) == 2) {
        s->data = p + *pos;
        s->len = (size_t) v;
    }

    *pos += (size_t) v;

    return 1;
}


/*
 * The msg_id (1) and trace_id (2) of an Envelope that did not decode as a
 * whole, when its fields up to them are complete: read field by field,
 * kept when they are complete UTF-8 strings within the id limit.
 */
static void
amon_envelope_pb_salvage(
    amon_envelope_t *env, const unsigned char *p, size_t len)
{
    size_t     pos;
    uint64_t   key;
    amon_str_t s;

    pos = 0;

    while (amon_envelope_pb_field(p, len, &pos, &key, &s)) {

        if ((key >> 3) != 1 && (key >> 3) != 2) {
            continue;
        }

        if ((key & 7) != 2 || s.len == 0 || s.len > AMON_MAX_ID_LEN
            || amon_utf8_validate(s.data, s.len) != AMON_OK) {
            return;
        }

        if ((key >> 3) == 1) {
            env->msg_id = s;

        } else {
            env->trace_id = s;
        }
    }
}


/*
 * The numbers (below 32) of the length-delimited fields of a message that
 * hold a NUL byte, a bit each.  The message has been unpacked already: a
 * malformed tail only ends the walk.
 */
static uint32_t
amon_envelope_pb_nuls(const unsigned char *p, size_t len)
{
    size_t     pos;
    uint32_t   found;
    uint64_t   key;
    amon_str_t s;

    pos = 0;
    found = 0;

    while (amon_envelope_pb_field(p, len, &pos, &key, &s)) {
        if (s.len && (key >> 3) < 32 && memchr(s.data, '\0', s.len) != NULL) {
            found |= AMON_PB_F(key >> 3);
        }
    }

    return found;
}


/*
 * Unpack the payload message of the envelope's type.  target_status has
 * no message in the schema and carries JSON text; unknown types keep
 * their payload as opaque bytes.
 */
static int
amon_envelope_pb_payload(amon_envelope_t *env, ProtobufCAllocator *pa)
{
    uint32_t strs;

    /* the payload's string fields the agent reads: no NUL (as above) */
    switch (env->type) {
    case AMON_MSG_REGISTER:
    case AMON_MSG_EVENT:
    case AMON_MSG_ACTION_STATUS: strs = AMON_PB_F(1) | AMON_PB_F(2); break;
    case AMON_MSG_HEARTBEAT: strs = AMON_PB_F(1); break;
    case AMON_MSG_ACTION: strs = AMON_PB_F(1) | AMON_PB_F(3); break;
    case AMON_MSG_ACTION_ACK:
        strs = AMON_PB_F(1) | AMON_PB_F(3) | AMON_PB_F(5);
        break;
    case AMON_MSG_ERROR:
        strs = AMON_PB_F(1) | AMON_PB_F(2) | AMON_PB_F(3);
        break;
    default: strs = 0;
    }

    if (strs
        && (amon_envelope_pb_nuls(env->payload.data, env->payload.len)
            & strs)) {
        return AMON_EFIELD_NUL;
    }

    switch (env->type) {
    case AMON_MSG_REGISTER:
    case AMON_MSG_HEARTBEAT:
    case AMON_MSG_EVENT: return amon_envelope_pb_report(env, pa);
    case AMON_MSG_ACTION: return amon_envelope_pb_action(env, pa);
    case AMON_MSG_ACTION_ACK:
    case AMON_MSG_ERROR: return amon_envelope_pb_outcome(env, pa);
    case AMON_MSG_ACTION_STATUS: return amon_envelope_pb_query(env, pa);
    case AMON_MSG_TARGET_STATUS:
    case AMON_MSG_SUBSCRIBE:
    case AMON_MSG_SUBSCRIBED: return amon_envelope_pb_json_payload(env);
    default: return AMON_OK;
    }
}


/* what an SDK reports: register, heartbeat, event */
static int
amon_envelope_pb_report(amon_envelope_t *env, ProtobufCAllocator *pa)
{
    int                                      rc;
    size_t                                   len;
    const char                              *id, *url, *name;
    const uint8_t                           *p;
    Amonitor__Control__V1__RegisterPayload  *reg;
    Amonitor__Control__V1__HeartbeatPayload *hb;
    Amonitor__Control__V1__EventPayload     *ev;

    p = env->payload.data;
    len = env->payload.len;
    url = NULL;
    name = NULL;

    if (env->type == AMON_MSG_REGISTER) {
        reg = amonitor__control__v1__register_payload__unpack(pa, len, p);
        if (reg == NULL) {
            return AMON_EPROTOBUF;
        }
        env->pb_payload = reg;
        id = reg->target_id;
        url = reg->sdk_url;

    } else if (env->type == AMON_MSG_HEARTBEAT) {
        hb = amonitor__control__v1__heartbeat_payload__unpack(pa, len, p);
        if (hb == NULL) {
            return AMON_EPROTOBUF;
        }
        env->pb_payload = hb;
        id = hb->target_id;

    } else {
        ev = amonitor__control__v1__event_payload__unpack(pa, len, p);
        if (ev == NULL) {
            return AMON_EPROTOBUF;
        }
        env->pb_payload = ev;
        id = ev->target_id;
        name = ev->event_name;
    }

    rc = amon_envelope_pb_str(id, AMON_MAX_ID_LEN, &env->payload_target_id);

    if (rc == AMON_OK && url) {
        rc = amon_envelope_pb_str(url, AMON_MAX_URL_LEN, &env->sdk_url);
    }

    if (rc == AMON_OK && name) {
        rc = amon_envelope_pb_str(name, AMON_MAX_ID_LEN, &env->event_name);
    }

    return rc;
}


static int
amon_envelope_pb_action(amon_envelope_t *env, ProtobufCAllocator *pa)
{
    int                                   rc;
    Amonitor__Control__V1__ActionPayload *act;

    act = amonitor__control__v1__action_payload__unpack(
        pa, env->payload.len, env->payload.data);
    if (act == NULL) {
        return AMON_EPROTOBUF;
    }
    env->pb_payload = act;

    rc = amon_envelope_pb_str(act->action, AMON_MAX_ID_LEN, &env->action);
    if (rc != AMON_OK) {
        return rc;
    }

    rc = amon_envelope_pb_str(
        act->target_url, AMON_MAX_URL_LEN, &env->target_url);
    if (rc != AMON_OK) {
        return rc;
    }

    /* opaque bytes (JSON text when they came from a JSON peer) */
    if (act->params.len) {
        env->params.data = act->params.data;
        env->params.len = act->params.len;
    }

    return AMON_OK;
}


/* the outcome of an action: action_ack or error */
static int
amon_envelope_pb_outcome(amon_envelope_t *env, ProtobufCAllocator *pa)
{
    int                                      rc;
    const char                              *message;
    Amonitor__Control__V1__ActionAckPayload *ack;
    Amonitor__Control__V1__ErrorPayload     *err;

    if (env->type == AMON_MSG_ACTION_ACK) {
        ack = amonitor__control__v1__action_ack_payload__unpack(
            pa, env->payload.len, env->payload.data);
        if (ack == NULL) {
            return AMON_EPROTOBUF;
        }
        env->pb_payload = ack;

        rc = amon_envelope_pb_str(
            ack->action_msg_id, AMON_MAX_ID_LEN, &env->action_msg_id);
        if (rc != AMON_OK) {
            return rc;
        }

        env->has_success = 1;
        env->success = ack->success ? 1 : 0;
        env->has_final = ack->final ? 1 : 0;
        message = ack->message;

    } else {
        err = amonitor__control__v1__error_payload__unpack(
            pa, env->payload.len, env->payload.data);
        if (err == NULL) {
            return AMON_EPROTOBUF;
        }
        env->pb_payload = err;

        rc = amon_envelope_pb_str(err->code, AMON_MAX_ID_LEN, &env->code);
        if (rc != AMON_OK) {
            return rc;
        }

        env->has_final = err->final ? 1 : 0;
        message = err->message;
    }

    if (env->has_final) {
        env->final = 1;
    }

    return amon_envelope_pb_str(message, AMON_ENVELOPE_NO_LIMIT, &env->message);
}


static int
amon_envelope_pb_query(amon_envelope_t *env, ProtobufCAllocator *pa)
{
    Amonitor__Control__V1__ActionStatusPayload *st;

    st = amonitor__control__v1__action_status_payload__unpack(
        pa, env->payload.len, env->payload.data);
    if (st == NULL) {
        return AMON_EPROTOBUF;
    }
    env->pb_payload = st;

    return amon_envelope_pb_str(
        st->action_msg_id, AMON_MAX_ID_LEN, &env->action_msg_id);
}


void
amon_envelope_release(amon_envelope_t *env)
{
    ProtobufCAllocator     pa, *pap;
    amon_envelope_pb_ctx_t ctx;

    ctx.a = env->allocator;
    ctx.failed = 0;
    pa.alloc = amon_envelope_pb_alloc;
    pa.free = amon_envelope_pb_free;
    pa.allocator_data = &ctx;
    pap = &pa;

    if (env->pb_payload) {
        protobuf_c_message_free_unpacked(env->pb_payload, pap);
        env->pb_payload = NULL;
    }

    if (env->pb_envelope) {
        protobuf_c_message_free_unpacked(env->pb_envelope, pap);
        env->pb_envelope = NULL;
    }
}
