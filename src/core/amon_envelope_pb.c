/*
 * Copyright (C) AMonitor authors
 *
 * Envelope encoding as protobuf.  The messages are small and flat, so they
 * are written directly from counted strings and JSON spans: one pass
 * counts the bytes, a second one writes them into the reserved room.  No
 * temporary copies, no NUL-terminated strings.  Fields are written in
 * field number order, default (empty) values left out, as proto3 does.
 */

#include <string.h>

#include "amon_envelope.h"
#include "amon_envelope_pb.h"
#include "amon_json.h"


#define AMON_PB_LEN 2 /* wire type: length-delimited */
#define AMON_PB_VAR 0 /* wire type: varint */


/* a writer: counts only while "p" is NULL */
typedef struct {
    unsigned char *p;
    size_t         n;
} amon_pb_w_t;


/* JSON payload members the schema has */
enum {
    AMON_PB_C_TARGET_ID = 0,
    AMON_PB_C_SDK_URL,
    AMON_PB_C_EVENT_NAME,
    AMON_PB_C_DATA,
    AMON_PB_C_ACTION,
    AMON_PB_C_PARAMS,
    AMON_PB_C_TARGET_URL,
    AMON_PB_C_ACTION_MSG_ID,
    AMON_PB_C_SUCCESS,
    AMON_PB_C_MESSAGE,
    AMON_PB_C_CODE,
    AMON_PB_C_DUPLICATE,
    AMON_PB_C_STATE,
    AMON_PB_C_ORIGINAL,
    AMON_PB_C_FINAL,
    AMON_PB_C_RESULT,
    AMON_PB_C_MAP, /* metadata or metrics, by type */
    AMON_PB_C_N
};


typedef struct {
    amon_json_value_t f[AMON_PB_C_N];
    amon_pb_w_t      *w; /* set: write map entries as they are found */
    amon_str_t        map; /* the map member's name */
    unsigned          map_field;
} amon_pb_conv_t;


static size_t amon_pb_varint_size(uint64_t v);
static void   amon_pb_w_raw(amon_pb_w_t *w, const void *data, size_t len);
static void   amon_pb_w_varint(amon_pb_w_t *w, uint64_t v);
static void   amon_pb_w_bytes(
      amon_pb_w_t *w, unsigned field, const unsigned char *data, size_t len);
static size_t amon_pb_jlen(const amon_json_value_t *v);
static void   amon_pb_w_json(
      amon_pb_w_t *w, unsigned field, const amon_json_value_t *v);
static int amon_pb_member(void *data, unsigned level,
    const amon_json_value_t *key, const amon_json_value_t *value);
static int amon_pb_json_payload(
    amon_pb_w_t *w, amon_msg_type_e type, amon_str_t json);
static int amon_pb_payload(amon_pb_w_t *w, const amon_pb_env_t *pe);
static int amon_pb_utf8(amon_str_t s);


static const char *amon_pb_names[AMON_PB_C_N] = {
    "target_id",
    "sdk_url",
    "event_name",
    "data",
    "action",
    "params",
    "target_url",
    "action_msg_id",
    "success",
    "message",
    "code",
    "duplicate",
    "state",
    "original",
    "final",
    "result",
    NULL,
};

/* the schema's fields 1..AMON_PB_FIELDS - 1 of one payload message */
#define AMON_PB_FIELDS 8

#define amon_pb_is_bool(m) \
    ((m) == AMON_PB_C_SUCCESS || (m) == AMON_PB_C_DUPLICATE \
        || (m) == AMON_PB_C_FINAL)

/* members kept as the JSON text of their value, whatever its type */
#define amon_pb_is_opaque(m) \
    ((m) == AMON_PB_C_DATA || (m) == AMON_PB_C_PARAMS \
        || (m) == AMON_PB_C_ORIGINAL || (m) == AMON_PB_C_RESULT)


static size_t
amon_pb_varint_size(uint64_t v)
{
    size_t n;

    n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }

    return n;
}


static void
amon_pb_w_raw(amon_pb_w_t *w, const void *data, size_t len)
{
    if (w->p && len) {
        memcpy(w->p + w->n, data, len);
    }

    w->n += len;
}


static void
amon_pb_w_varint(amon_pb_w_t *w, uint64_t v)
{
    size_t        n;
    unsigned char b[10];

    n = 0;

    while (v >= 0x80) {
        b[n++] = (unsigned char) (v | 0x80);
        v >>= 7;
    }

    b[n++] = (unsigned char) v;

    amon_pb_w_raw(w, b, n);
}


static void
amon_pb_w_bytes(
    amon_pb_w_t *w, unsigned field, const unsigned char *data, size_t len)
{
    if (len == 0) {
        return;
    }

    amon_pb_w_varint(w, (field << 3) | AMON_PB_LEN);
    amon_pb_w_varint(w, len);
    amon_pb_w_raw(w, data, len);
}


/* The bytes a JSON value becomes: a string unescaped, else its text. */
static size_t
amon_pb_jlen(const amon_json_value_t *v)
{
    if (v->type == AMON_JSON_STRING) {
        return amon_json_unescaped_len(v);
    }

    return v->len;
}


static void
amon_pb_w_json(amon_pb_w_t *w, unsigned field, const amon_json_value_t *v)
{
    size_t len, n;

    if (v->type != AMON_JSON_STRING) {
        amon_pb_w_bytes(w, field, v->start, v->len);
        return;
    }

    len = amon_json_unescaped_len(v);

    if (len == 0) {
        return;
    }

    amon_pb_w_varint(w, (field << 3) | AMON_PB_LEN);
    amon_pb_w_varint(w, len);

    if (w->p) {
        (void) amon_json_unescape(v, w->p + w->n, len, &n);
    }

    w->n += len;
}


static int
amon_pb_member(void *data, unsigned level, const amon_json_value_t *key,
    const amon_json_value_t *value)
{
    int             i;
    size_t          k, v, entry;
    amon_pb_conv_t *c;

    c = data;

    if (level == 0) {
        if (c->w) {
            return 0;
        }

        for (i = 0; i < AMON_PB_C_MAP; i++) {
            if (c->f[i].type == AMON_JSON_NONE
                && amon_json_str_eq(
                    key, amon_pb_names[i], strlen(amon_pb_names[i]))) {
                c->f[i] = *value;
                return 0;
            }
        }

        if (c->map.data && c->f[AMON_PB_C_MAP].type == AMON_JSON_NONE
            && amon_json_str_eq(key, (const char *) c->map.data, c->map.len)) {
            c->f[AMON_PB_C_MAP] = *value;
        }

        return 0;
    }

    /* level 1: an entry of the map; the key and a string value unescaped */

    if (c->w == NULL) {
        return 0;
    }

    k = amon_pb_jlen(key);
    v = amon_pb_jlen(value);
    entry = (k ? 1 + amon_pb_varint_size(k) + k : 0)
        + (v ? 1 + amon_pb_varint_size(v) + v : 0);

    amon_pb_w_varint(c->w, (c->map_field << 3) | AMON_PB_LEN);
    amon_pb_w_varint(c->w, entry);
    amon_pb_w_json(c->w, 1, key);
    amon_pb_w_json(c->w, 2, value);

    return 0;
}


/*
 * Encode a JSON payload as the message of its type.  Strings stay strings
 * (unescaped), "params" and "data" become the JSON text of their values,
 * map values that are not strings become their JSON text.
 */
/*
 * The schema of one payload message: the member behind each field number
 * 1..AMON_PB_FIELDS - 1 (AMON_PB_C_N: none), and the map member if any.
 * A type without a schema (no field 1) is sent as its JSON text.
 */
typedef struct {
    unsigned char field[AMON_PB_FIELDS];
    const char   *map;
    unsigned      map_field;
} amon_pb_schema_t;


#define N AMON_PB_C_N

static const amon_pb_schema_t amon_pb_schemas[] = {
    /* AMON_MSG_UNKNOWN */
    {{N, N, N, N, N, N, N, N}, NULL, 0},
    /* AMON_MSG_REGISTER */
    {{N, AMON_PB_C_TARGET_ID, AMON_PB_C_SDK_URL, N, N, N, N, N}, "metadata", 3},
    /* AMON_MSG_HEARTBEAT */
    {{N, AMON_PB_C_TARGET_ID, N, N, N, N, N, N}, "metrics", 2},
    /* AMON_MSG_EVENT */
    {{N, AMON_PB_C_TARGET_ID, AMON_PB_C_EVENT_NAME, AMON_PB_C_DATA, N, N, N, N},
        NULL, 0},
    /* AMON_MSG_ACTION */
    {{N, AMON_PB_C_ACTION, AMON_PB_C_PARAMS, AMON_PB_C_TARGET_URL, N, N, N, N},
        NULL, 0},
    /* AMON_MSG_ACTION_ACK */
    {{N, AMON_PB_C_ACTION_MSG_ID, AMON_PB_C_SUCCESS, AMON_PB_C_MESSAGE,
         AMON_PB_C_DUPLICATE, AMON_PB_C_STATE, AMON_PB_C_ORIGINAL,
         AMON_PB_C_FINAL},
        NULL, 0},
    /* AMON_MSG_ERROR */
    {{N, AMON_PB_C_CODE, AMON_PB_C_MESSAGE, AMON_PB_C_ACTION_MSG_ID,
         AMON_PB_C_FINAL, N, N, N},
        NULL, 0},
    /* AMON_MSG_TARGET_STATUS: no schema, its JSON text */
    {{N, N, N, N, N, N, N, N}, NULL, 0},
    /* AMON_MSG_ACTION_STATUS */
    {{N, AMON_PB_C_ACTION_MSG_ID, AMON_PB_C_STATE, AMON_PB_C_RESULT, N, N, N,
         N},
        NULL, 0}};

#undef N


/* the members' JSON types against the schema, as the decoder would */
static int
amon_pb_check_types(const amon_pb_conv_t *c, const unsigned char *s)
{
    unsigned                 i;
    const amon_json_value_t *v;

    for (i = 0; i < AMON_PB_FIELDS; i++) {
        if (s[i] == AMON_PB_C_N) {
            continue;
        }

        v = &c->f[s[i]];

        if (v->type == AMON_JSON_NONE || v->type == AMON_JSON_NULL
            || amon_pb_is_opaque(s[i])) {
            continue;
        }

        if (amon_pb_is_bool(s[i])) {
            if (v->type != AMON_JSON_TRUE && v->type != AMON_JSON_FALSE) {
                return AMON_EFIELD_TYPE;
            }

        } else if (s[i] == AMON_PB_C_MAP) {
            if (v->type != AMON_JSON_OBJECT) {
                return AMON_EFIELD_TYPE;
            }

        } else if (v->type != AMON_JSON_STRING) {
            return AMON_EFIELD_TYPE;
        }
    }

    return AMON_OK;
}


/* the schema's fields that are present, in field number order */
static void
amon_pb_write_fields(
    amon_pb_w_t *w, const amon_pb_conv_t *c, const unsigned char *s)
{
    unsigned                 i;
    const amon_json_value_t *v;

    for (i = 1; i < AMON_PB_FIELDS; i++) {
        if (s[i] == AMON_PB_C_N) {
            continue;
        }

        v = &c->f[s[i]];

        if (v->type == AMON_JSON_NONE || v->type == AMON_JSON_NULL) {
            continue;
        }

        if (amon_pb_is_bool(s[i])) {
            if (v->type == AMON_JSON_TRUE) {
                amon_pb_w_varint(w, (i << 3) | AMON_PB_VAR);
                amon_pb_w_varint(w, 1);
            }

        } else if (amon_pb_is_opaque(s[i])) {
            /* opaque: the JSON text of the value, whatever its type */
            amon_pb_w_bytes(w, i, v->start, v->len);

        } else {
            amon_pb_w_json(w, i, v);
        }
    }
}


static int
amon_pb_json_payload(amon_pb_w_t *w, amon_msg_type_e type, amon_str_t json)
{
    int                     rc;
    unsigned char           s[AMON_PB_FIELDS];
    amon_pb_conv_t          c;
    amon_json_value_t       root;
    const amon_pb_schema_t *sc;

    memset(&c, 0, sizeof(c));

    sc = &amon_pb_schemas[0];
    if ((size_t) type < sizeof(amon_pb_schemas) / sizeof(amon_pb_schemas[0])) {
        sc = &amon_pb_schemas[type];
    }

    if (sc->map) {
        c.map.data = (const unsigned char *) sc->map;
        c.map.len = strlen(sc->map);
        c.map_field = sc->map_field;
    }

    rc = amon_json_scan(json.data, json.len, AMON_MAX_JSON_DEPTH, c.map,
        amon_pb_member, &c, &root);
    if (rc != AMON_OK) {
        return rc;
    }

    if (root.type != AMON_JSON_OBJECT) {
        return AMON_ENOTOBJ;
    }

    if (sc->field[1] == AMON_PB_C_N) {
        /* no message in the schema for this type: the JSON text itself */
        amon_pb_w_raw(w, json.data, json.len);
        return AMON_OK;
    }

    /* s[0] is the map: checked, then written by the second scan below */
    memcpy(s, sc->field, AMON_PB_FIELDS);
    s[0] = c.map_field ? AMON_PB_C_MAP : AMON_PB_C_N;

    rc = amon_pb_check_types(&c, s);
    if (rc != AMON_OK) {
        return rc;
    }

    amon_pb_write_fields(w, &c, s);

    if (c.map_field == 0 || c.f[AMON_PB_C_MAP].type != AMON_JSON_OBJECT) {
        return AMON_OK;
    }

    /* the map entries, in a second scan that writes them as it finds them */

    c.w = w;

    return amon_json_scan(json.data, json.len, AMON_MAX_JSON_DEPTH, c.map,
        amon_pb_member, &c, NULL);
}


static int
amon_pb_utf8(amon_str_t s)
{
    return s.data == NULL || s.len == 0
        || amon_utf8_validate(s.data, s.len) == AMON_OK;
}


/* The payload message of an envelope. */
static int
amon_pb_payload(amon_pb_w_t *w, const amon_pb_env_t *pe)
{
    const amon_ack_out_t *ack;

    switch (pe->kind) {

    case AMON_PB_PAYLOAD_ACK:
        ack = pe->ack;

        if (!amon_pb_utf8(ack->action_msg_id) || !amon_pb_utf8(ack->message)) {
            return AMON_EINVAL;
        }

        amon_pb_w_bytes(w, 1, ack->action_msg_id.data, ack->action_msg_id.len);

        if (ack->success) {
            amon_pb_w_varint(w, (2 << 3) | AMON_PB_VAR);
            amon_pb_w_varint(w, 1);
        }

        amon_pb_w_bytes(w, 3, ack->message.data, ack->message.len);

        if (ack->duplicate) {
            amon_pb_w_varint(w, (4 << 3) | AMON_PB_VAR);
            amon_pb_w_varint(w, 1);
        }

        if (!amon_pb_utf8(ack->state)) {
            return AMON_EINVAL;
        }

        amon_pb_w_bytes(w, 5, ack->state.data, ack->state.len);
        amon_pb_w_bytes(w, 6, ack->original.data, ack->original.len);

        if (ack->final == AMON_FINAL_YES) {
            amon_pb_w_varint(w, (7 << 3) | AMON_PB_VAR);
            amon_pb_w_varint(w, 1);
        }

        return AMON_OK;

    case AMON_PB_PAYLOAD_ERROR:
        if (!amon_pb_utf8(pe->code) || !amon_pb_utf8(pe->message)) {
            return AMON_EINVAL;
        }

        amon_pb_w_bytes(w, 1, pe->code.data, pe->code.len);
        amon_pb_w_bytes(w, 2, pe->message.data, pe->message.len);

        if (pe->error) {
            if (!amon_pb_utf8(pe->error->action_msg_id)) {
                return AMON_EINVAL;
            }

            amon_pb_w_bytes(w, 3, pe->error->action_msg_id.data,
                pe->error->action_msg_id.len);

            if (pe->error->final == AMON_FINAL_YES) {
                amon_pb_w_varint(w, (4 << 3) | AMON_PB_VAR);
                amon_pb_w_varint(w, 1);
            }
        }

        return AMON_OK;

    case AMON_PB_PAYLOAD_STATUS:
        if (!amon_pb_utf8(pe->action_msg_id)) {
            return AMON_EINVAL;
        }

        amon_pb_w_bytes(w, 1, pe->action_msg_id.data, pe->action_msg_id.len);
        amon_pb_w_bytes(w, 2, pe->code.data, pe->code.len);
        amon_pb_w_bytes(w, 3, pe->message.data, pe->message.len);

        return AMON_OK;

    default:
        if (pe->head.payload_json.data == NULL) {
            return AMON_OK;
        }

        return amon_pb_json_payload(w, pe->payload_type, pe->head.payload_json);
    }
}


int
amon_pb_envelope(amon_buf_t *out, size_t max, const amon_allocator_t *a,
    const amon_pb_env_t *pe)
{
    int                        rc, pass;
    size_t                     psize, total;
    amon_pb_w_t                w;
    const amon_envelope_out_t *e;

    e = &pe->head;

    if (!amon_pb_utf8(e->msg_id) || !amon_pb_utf8(e->trace_id)
        || !amon_pb_utf8(e->type) || !amon_pb_utf8(e->target_id)) {
        return AMON_EINVAL;
    }

    /* the payload's size first: the envelope holds it length-prefixed */

    w.p = NULL;
    w.n = 0;

    rc = amon_pb_payload(&w, pe);
    if (rc != AMON_OK) {
        return rc;
    }

    psize = w.n;
    total = 0;

    for (pass = 0; pass < 2; pass++) {
        w.n = 0;

        amon_pb_w_bytes(&w, 1, e->msg_id.data, e->msg_id.len);
        amon_pb_w_bytes(&w, 2, e->trace_id.data, e->trace_id.len);
        amon_pb_w_bytes(&w, 3, e->type.data, e->type.len);
        amon_pb_w_bytes(&w, 4, e->target_id.data, e->target_id.len);

        /* 0 is proto3's default: not written */
        if (e->timestamp != AMON_TIMESTAMP_NONE && e->timestamp != 0) {
            amon_pb_w_varint(&w, (5 << 3) | AMON_PB_VAR);
            amon_pb_w_varint(&w, (uint64_t) e->timestamp);
        }

        if (psize) {
            amon_pb_w_varint(&w, (6 << 3) | AMON_PB_LEN);
            amon_pb_w_varint(&w, psize);

            if (pass == 0) {
                w.n += psize;

            } else {
                rc = amon_pb_payload(&w, pe);
                if (rc != AMON_OK) {
                    return rc;
                }
            }
        }

        if (pass == 0) {
            total = w.n;

            if (total == 0) {
                return AMON_OK;
            }

            rc = amon_pb_reserve(out, total, max, a);
            if (rc != AMON_OK) {
                return rc;
            }

            w.p = out->data + out->len;
        }
    }

    if (w.n != total) {
        return AMON_EINVAL;
    }

    out->len += total;

    return AMON_OK;
}


int
amon_payload_json_to_pb(amon_buf_t *out, size_t max, const amon_allocator_t *a,
    amon_msg_type_e type, amon_str_t json)
{
    int         rc;
    amon_pb_w_t w;

    if (json.data == NULL) {
        return AMON_EINVAL;
    }

    w.p = NULL;
    w.n = 0;

    rc = amon_pb_json_payload(&w, type, json);
    if (rc != AMON_OK || w.n == 0) {
        return rc;
    }

    rc = amon_pb_reserve(out, w.n, max, a);
    if (rc != AMON_OK) {
        return rc;
    }

    w.p = out->data + out->len;
    w.n = 0;

    rc = amon_pb_json_payload(&w, type, json);
    if (rc != AMON_OK) {
        return rc;
    }

    out->len += w.n;

    return AMON_OK;
}
