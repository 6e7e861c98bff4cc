/*
 * Copyright (C) AMonitor authors
 *
 * Envelope decoding: a JSON text is validated and its routing fields are
 * picked in one pass of the JSON scanner, without a tree and without
 * allocation (amon_envelope_unpack.c unpacks a protobuf Envelope).
 */

#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "amon_envelope.h"
#include "amon_json.h"
#include "amon_envelope_int.h"
#include "amonitor.pb-c.h"


static int amon_envelope_member(void *data, unsigned level,
    const amon_json_value_t *key, const amon_json_value_t *value);
static int amon_envelope_lookup(const amon_json_value_t *key, int payload);
static int amon_envelope_json_str(amon_envelope_t *env,
    const amon_json_value_t *v, size_t limit, amon_str_t *out);
static int amon_envelope_json_str_other(amon_envelope_t *env,
    const amon_json_value_t *v, size_t limit, amon_str_t *out);
static int amon_envelope_json_final(
    amon_envelope_t *env, const amon_json_value_t *v);
static int amon_envelope_json_type(const amon_json_value_t *v, int want);
static int amon_envelope_json_action(
    amon_envelope_t *env, const amon_json_value_t *pay);
static int amon_envelope_json_outcome(
    amon_envelope_t *env, const amon_json_value_t *pay);
static int amon_envelope_json_ack(
    amon_envelope_t *env, const amon_json_value_t *pay);
static int amon_envelope_json_payload(
    amon_envelope_t *env, const amon_json_value_t *pay);
static int amon_envelope_json_root(
    amon_envelope_t *env, amon_envelope_scan_t *sc);
static int amon_envelope_json_ids(
    amon_envelope_t *env, const amon_envelope_scan_t *sc, int rc);


static int
amon_envelope_lookup(const amon_json_value_t *key, int payload)
{
    size_t        n;
    unsigned char buf[16];

    if (!key->escaped) {
        return payload
            ? amon_envelope_payload_index(key->start + 1, key->len - 2)
            : amon_envelope_root_index(key->start + 1, key->len - 2);
    }

    /* an escaped key: no known name is longer than the buffer */
    if (amon_json_unescape(key, buf, sizeof(buf), &n) != AMON_OK) {
        return -1;
    }

    return payload ? amon_envelope_payload_index(buf, n)
                   : amon_envelope_root_index(buf, n);
}


static int
amon_envelope_member(void *data, unsigned level, const amon_json_value_t *key,
    const amon_json_value_t *value)
{
    int                   i;
    amon_envelope_scan_t *sc;

    sc = data;

    /*
     * A field the agent reads, given twice, is refused: JSON parsers differ
     * on which copy counts (most keep the last), so the agent and an SDK or
     * panel could read two different messages from one text (a msg_id
     * checked against the dedupe table but another one run).  The scan
     * goes on, so that the refusal can still name the msg_id if that one
     * was given once.
     */

    if (level == 0 && !sc->payload_only) {
        i = amon_envelope_lookup(key, 0);

        if (i >= 0) {
            if (sc->root[i].type != AMON_JSON_NONE) {
                sc->dup = 1;
                sc->dup_root |= 1u << i;
                return 0;
            }
            sc->root[i] = *value;
        }

        return 0;
    }

    i = amon_envelope_lookup(key, 1);

    if (i >= 0) {
        if (sc->pay[i].type != AMON_JSON_NONE) {
            sc->dup = 1;
            return 0;
        }
        sc->pay[i] = *value;
    }

    return 0;
}


/*
 * A string field: absent or null leaves *out absent.  Verbatim strings
 * point into the input, escaped ones are unescaped into env->scratch.
 */
static inline int
amon_envelope_json_str(amon_envelope_t *env, const amon_json_value_t *v,
    size_t limit, amon_str_t *out)
{
    /* the usual field, inline: a verbatim string within its limit */
    if (v->type == AMON_JSON_STRING && !v->escaped && v->len - 2 <= limit) {
        out->data = v->start + 1;
        out->len = v->len - 2;
        return AMON_OK;
    }

    return amon_envelope_json_str_other(env, v, limit, out);
}


/* amon_envelope_json_str() for all but a verbatim string in its limit */
static int
amon_envelope_json_str_other(amon_envelope_t *env, const amon_json_value_t *v,
    size_t limit, amon_str_t *out)
{
    size_t n, room;

    if (v->type == AMON_JSON_NONE || v->type == AMON_JSON_NULL) {
        return AMON_OK;
    }

    if (v->type != AMON_JSON_STRING) {
        return AMON_EFIELD_TYPE;
    }

    if (!v->escaped) {
        if (v->len - 2 > limit) {
            return AMON_EFIELD_LONG;
        }

        *out = amon_json_raw_string(v);
        return AMON_OK;
    }

    /*
     * The limits of all fields one type can have add up to less than the
     * scratch space; only an unlimited "message" can run out of it.
     */
    room = sizeof(env->scratch) - env->scratch_used;

    if (amon_json_unescape(v, env->scratch + env->scratch_used,
            limit < room ? limit : room, &n)
        != AMON_OK) {
        return AMON_EFIELD_LONG;
    }

    /*
     * Only an escape makes a NUL; ids, codes and text with one would not
     * survive C strings (protobuf-c's among them).
     */
    if (memchr(env->scratch + env->scratch_used, '\0', n) != NULL) {
        return AMON_EFIELD_NUL;
    }

    out->data = env->scratch + env->scratch_used;
    out->len = n;
    env->scratch_used += n;

    return AMON_OK;
}


int
amon_envelope_scan_json(const unsigned char *p, size_t len,
    amon_envelope_scan_t *sc, amon_json_value_t *root, unsigned fast)
{
    static const amon_str_t payload = amon_string("payload");

    /*
     * The usual text is read in one walk; any other, and any text that
     * is not valid, is scanned again by the scanner that tells why.
     */
    amon_envelope_scan_init(sc, 0);

    if (fast && amon_envelope_scan_fast(p, len, sc, root) == AMON_OK) {
        return AMON_OK;
    }

    amon_envelope_scan_init(sc, 0);

    return amon_json_scan(
        p, len, AMON_MAX_JSON_DEPTH, payload, amon_envelope_member, sc, root);
}


int
amon_envelope_decode_json(
    amon_envelope_t *env, const unsigned char *p, size_t len)
{
    int                  rc;
    amon_envelope_scan_t sc;
    amon_json_value_t    root, *v;
    memset(env, 0, offsetof(amon_envelope_t, scratch));

    rc = amon_envelope_scan_json(p, len, &sc, &root, 1);
    if (rc != AMON_OK) {
        return rc;
    }

    if (root.type != AMON_JSON_OBJECT) {
        return AMON_ENOTOBJ;
    }

    if (sc.dup) {
        return amon_envelope_json_ids(env, &sc, AMON_EFIELD_DUP);
    }

    rc = amon_envelope_json_root(env, &sc);

    if (rc != AMON_OK) {
        /* the ids that can be read still are, for the error's answer */
        env->scratch_used = 0;
        return amon_envelope_json_ids(env, &sc, rc);
    }

    v = &sc.root[AMON_ENVELOPE_F_PAYLOAD];

    if (v->type == AMON_JSON_NONE || v->type == AMON_JSON_NULL) {
        return env->type == AMON_MSG_ACTION ? AMON_ENO_PAYLOAD : AMON_OK;
    }

    if (v->type != AMON_JSON_OBJECT) {
        return AMON_EFIELD_TYPE;
    }

    env->has_payload = 1;
    env->payload.data = v->start;
    env->payload.len = v->len;

    return amon_envelope_json_payload(env, sc.pay);
}


/* the root members: the ids, the type and the timestamp */
static int
amon_envelope_json_root(amon_envelope_t *env, amon_envelope_scan_t *sc)
{
    int                rc;
    amon_json_value_t *v;

    /* msg_id first: a caller answering an error wants to echo it */

    rc = amon_envelope_json_str(
        env, &sc->root[AMON_ENVELOPE_F_MSG_ID], AMON_MAX_ID_LEN, &env->msg_id);
    if (rc != AMON_OK) {
        return rc;
    }

    if (env->msg_id.len == 0) {
        env->msg_id.data = NULL;
        return AMON_ENO_MSG_ID;
    }

    rc = amon_envelope_json_str(
        env, &sc->root[AMON_ENVELOPE_F_TYPE], AMON_MAX_ID_LEN, &env->type_name);
    if (rc != AMON_OK) {
        return rc;
    }

    if (env->type_name.len == 0) {
        env->type_name.data = NULL;
        return AMON_ENO_TYPE;
    }

    env->type = amon_msg_type(env->type_name);
    env->has_source = (sc->root[AMON_ENVELOPE_F_SOURCE].type != AMON_JSON_NONE);

    rc = amon_envelope_json_str(env, &sc->root[AMON_ENVELOPE_F_TRACE_ID],
        AMON_MAX_ID_LEN, &env->trace_id);
    if (rc != AMON_OK) {
        return rc;
    }

    rc = amon_envelope_json_str(env, &sc->root[AMON_ENVELOPE_F_TARGET_ID],
        AMON_MAX_ID_LEN, &env->target_id);
    if (rc != AMON_OK) {
        return rc;
    }

    v = &sc->root[AMON_ENVELOPE_F_TIMESTAMP];

    if (v->type != AMON_JSON_NONE && v->type != AMON_JSON_NULL) {
        if (amon_json_int64(v, &env->timestamp) != AMON_OK) {
            return AMON_EFIELD_TYPE;
        }

        env->has_timestamp = 1;
    }

    return AMON_OK;
}


/*
 * A message refused for "rc" (a member given twice, a root member of the
 * wrong type, too long, missing) still has the ids that are given once
 * and valid read (errors in them leave them out), so that the refusal
 * answers the message's msg_id and trace_id, names its target and, for
 * an action, has the shape of an ack.
 */
static int
amon_envelope_json_ids(
    amon_envelope_t *env, const amon_envelope_scan_t *sc, int rc)
{
    unsigned    i;
    amon_str_t *out[AMON_ENVELOPE_F_N];

    static const unsigned fields[] = {AMON_ENVELOPE_F_MSG_ID,
        AMON_ENVELOPE_F_TYPE, AMON_ENVELOPE_F_TRACE_ID,
        AMON_ENVELOPE_F_TARGET_ID};

    out[AMON_ENVELOPE_F_MSG_ID] = &env->msg_id;
    out[AMON_ENVELOPE_F_TYPE] = &env->type_name;
    out[AMON_ENVELOPE_F_TRACE_ID] = &env->trace_id;
    out[AMON_ENVELOPE_F_TARGET_ID] = &env->target_id;

    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if ((sc->dup_root & (1u << fields[i])) == 0
            && amon_envelope_json_str(
                   env, &sc->root[fields[i]], AMON_MAX_ID_LEN, out[fields[i]])
                != AMON_OK) {
            out[fields[i]]->data = NULL;
            out[fields[i]]->len = 0;
        }
    }

    if (env->msg_id.len == 0) {
        env->msg_id.data = NULL;
    }

    if (env->type_name.len) {
        env->type = amon_msg_type(env->type_name);
    }

    return rc;
}


/*
 * A member the schema types but the decoder does not keep: absent, null,
 * or of the type "want" (AMON_JSON_STRING, or AMON_JSON_TRUE for either
 * boolean), as the protobuf form needs it.
 */
static int
amon_envelope_json_type(const amon_json_value_t *v, int want)
{
    if (v->type == AMON_JSON_NONE || v->type == AMON_JSON_NULL
        || (int) v->type == want
        || (want == AMON_JSON_TRUE && v->type == AMON_JSON_FALSE)) {
        return AMON_OK;
    }

    return AMON_EFIELD_TYPE;
}


/* "final" of an ack or error: a boolean when present */
static int
amon_envelope_json_final(amon_envelope_t *env, const amon_json_value_t *v)
{
    env->final_member = (v->type != AMON_JSON_NONE);

    if (v->type == AMON_JSON_TRUE || v->type == AMON_JSON_FALSE) {
        env->has_final = 1;
        env->final = (v->type == AMON_JSON_TRUE);
        return AMON_OK;
    }

    if (v->type != AMON_JSON_NONE && v->type != AMON_JSON_NULL) {
        return AMON_EFIELD_TYPE;
    }

    return AMON_OK;
}


/* an action's payload: its name, the URL it may name, opaque params */
static int
amon_envelope_json_action(amon_envelope_t *env, const amon_json_value_t *pay)
{
    int                      rc;
    const amon_json_value_t *v;

    rc = amon_envelope_json_str(
        env, &pay[AMON_ENVELOPE_P_ACTION], AMON_MAX_ID_LEN, &env->action);
    if (rc != AMON_OK) {
        return rc;
    }

    rc = amon_envelope_json_str(env, &pay[AMON_ENVELOPE_P_TARGET_URL],
        AMON_MAX_URL_LEN, &env->target_url);
    if (rc != AMON_OK) {
        return rc;
    }

    /* "params" is opaque: any JSON value, kept as its raw text */
    v = &pay[AMON_ENVELOPE_P_PARAMS];
    if (v->type != AMON_JSON_NONE && v->type != AMON_JSON_NULL) {
        env->params.data = v->start;
        env->params.len = v->len;
    }

    return AMON_OK;
}


/* What an action_ack and an error both end with: "final", "message". */
static int
amon_envelope_json_outcome(amon_envelope_t *env, const amon_json_value_t *pay)
{
    int rc;

    rc = amon_envelope_json_final(env, &pay[AMON_ENVELOPE_P_FINAL]);
    if (rc != AMON_OK) {
        return rc;
    }

    return amon_envelope_json_str(env, &pay[AMON_ENVELOPE_P_MESSAGE],
        AMON_ENVELOPE_NO_LIMIT, &env->message);
}


/* The payload of an action_ack. */
static int
amon_envelope_json_ack(amon_envelope_t *env, const amon_json_value_t *pay)
{
    int                      rc;
    const amon_json_value_t *v;

    rc = amon_envelope_json_str(env, &pay[AMON_ENVELOPE_P_ACTION_MSG_ID],
        AMON_MAX_ID_LEN, &env->action_msg_id);
    if (rc != AMON_OK) {
        return rc;
    }

    v = &pay[AMON_ENVELOPE_P_SUCCESS];
    if (v->type == AMON_JSON_TRUE || v->type == AMON_JSON_FALSE) {
        env->has_success = 1;
        env->success = (v->type == AMON_JSON_TRUE);

    } else if (v->type != AMON_JSON_NONE && v->type != AMON_JSON_NULL) {
        return AMON_EFIELD_TYPE;
    }

    /* what an agent adds to a duplicate's ack */
    rc = amon_envelope_json_type(
        &pay[AMON_ENVELOPE_P_DUPLICATE], AMON_JSON_TRUE);
    if (rc != AMON_OK) {
        return rc;
    }

    rc = amon_envelope_json_type(&pay[AMON_ENVELOPE_P_STATE], AMON_JSON_STRING);
    if (rc != AMON_OK) {
        return rc;
    }

    return amon_envelope_json_outcome(env, pay);
}


/* The payload fields the envelope's type defines. */
static int
amon_envelope_json_payload(amon_envelope_t *env, const amon_json_value_t *pay)
{
    int rc;

    rc = AMON_OK;

    switch (env->type) {

    case AMON_MSG_REGISTER:
        rc = amon_envelope_json_str(env, &pay[AMON_ENVELOPE_P_SDK_URL],
            AMON_MAX_URL_LEN, &env->sdk_url);
        break;

    case AMON_MSG_EVENT:
        rc = amon_envelope_json_str(env, &pay[AMON_ENVELOPE_P_EVENT_NAME],
            AMON_MAX_ID_LEN, &env->event_name);
        break;

    case AMON_MSG_ACTION: return amon_envelope_json_action(env, pay);

    case AMON_MSG_ACTION_ACK: return amon_envelope_json_ack(env, pay);

    case AMON_MSG_ACTION_STATUS:
        rc = amon_envelope_json_type(
            &pay[AMON_ENVELOPE_P_STATE], AMON_JSON_STRING);
        if (rc != AMON_OK) {
            return rc;
        }

        return amon_envelope_json_str(env, &pay[AMON_ENVELOPE_P_ACTION_MSG_ID],
            AMON_MAX_ID_LEN, &env->action_msg_id);

    case AMON_MSG_ERROR:
        rc = amon_envelope_json_str(
            env, &pay[AMON_ENVELOPE_P_CODE], AMON_MAX_ID_LEN, &env->code);
        if (rc != AMON_OK) {
            return rc;
        }

        rc = amon_envelope_json_type(
            &pay[AMON_ENVELOPE_P_ACTION_MSG_ID], AMON_JSON_STRING);
        if (rc != AMON_OK) {
            return rc;
        }

        return amon_envelope_json_outcome(env, pay);

    default: break;
    }

    if (rc != AMON_OK) {
        return rc;
    }

    switch (env->type) {
    case AMON_MSG_REGISTER:
    case AMON_MSG_HEARTBEAT:
    case AMON_MSG_EVENT:
    case AMON_MSG_TARGET_STATUS:
        return amon_envelope_json_str(env, &pay[AMON_ENVELOPE_P_TARGET_ID],
            AMON_MAX_ID_LEN, &env->payload_target_id);
    default: return AMON_OK;
    }
}


/*
 * A payload without a message in the schema holds JSON text (what
 * amon_payload_json_to_pb() makes of it): read the same fields from it as
 * from a JSON envelope's payload.
 */
int
amon_envelope_pb_json_payload(amon_envelope_t *env)
{
    int                  rc;
    amon_envelope_scan_t sc;
    amon_json_value_t    root;
    amon_str_t           none = amon_null_string;

    amon_envelope_scan_init(&sc, 1);

    rc = amon_json_scan(env->payload.data, env->payload.len,
        AMON_MAX_JSON_DEPTH - 1, none, amon_envelope_member, &sc, &root);
    if (rc == AMON_EJSON) {
        return AMON_EPROTOBUF;
    }

    if (rc != AMON_OK) {
        return rc;
    }

    if (root.type != AMON_JSON_OBJECT) {
        return AMON_EFIELD_TYPE;
    }

    if (sc.dup) {
        return AMON_EFIELD_DUP;
    }

    return amon_envelope_json_payload(env, sc.pay);
}
