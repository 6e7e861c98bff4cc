/*
 * Copyright (C) AMonitor authors
 *
 * Envelope encoding as JSON text: the envelopes the agent, the SDK and
 * the CLI make themselves (acks, errors, forwarded payloads), JSON string
 * escaping, random UUIDs for message ids, and the message type names.
 */

#include <string.h>

#include <openssl/rand.h>

#include "amon_envelope.h"
#include "amon_envelope_pb.h"
#include "amon_json.h"


static int amon_env_add(amon_buf_t *out, size_t max, const amon_allocator_t *a,
    const void *data, size_t len);
static int amon_env_key(amon_buf_t *out, size_t max, const amon_allocator_t *a,
    unsigned char *sep, const char *name);
static int amon_env_str_field(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, unsigned char *sep, const char *name,
    amon_str_t s);
static int amon_env_head(amon_buf_t *out, size_t max, const amon_allocator_t *a,
    const amon_envelope_out_t *e);
static int amon_env_is_object(amon_str_t json);


static const char amon_env_hex[] = "0123456789abcdef";


typedef struct {
    const char *name;
    size_t      len;
} amon_env_name_t;


#define amon_env_name(s) \
    { \
        s, sizeof(s) - 1 \
    }

static const amon_env_name_t amon_env_type_names[] = {
    amon_env_name(""),
    amon_env_name("register"),
    amon_env_name("heartbeat"),
    amon_env_name("event"),
    amon_env_name("action"),
    amon_env_name("action_ack"),
    amon_env_name("error"),
    amon_env_name("target_status"),
};

#define AMON_ENV_NTYPES \
    (sizeof(amon_env_type_names) / sizeof(amon_env_type_names[0]))


amon_msg_type_e
amon_msg_type(amon_str_t name)
{
    size_t i;

    for (i = 1; i < AMON_ENV_NTYPES; i++) {
        if (name.len == amon_env_type_names[i].len
            && memcmp(name.data, amon_env_type_names[i].name, name.len) == 0) {
            return (amon_msg_type_e) i;
        }
    }

    return AMON_MSG_UNKNOWN;
}


const char *
amon_msg_type_name(amon_msg_type_e type)
{
    if ((size_t) type == 0 || (size_t) type >= AMON_ENV_NTYPES) {
        return "unknown";
    }

    return amon_env_type_names[type].name;
}


static int
amon_env_add(amon_buf_t *out, size_t max, const amon_allocator_t *a,
    const void *data, size_t len)
{
    int rc;

    if (len == 0) {
        return AMON_OK;
    }

    rc = amon_env_reserve(out, len, max, a);
    if (rc != AMON_OK) {
        return rc;
    }

    memcpy(out->data + out->len, data, len);
    out->len += len;

    return AMON_OK;
}


int
amon_json_append_string(
    amon_buf_t *out, size_t max, const amon_allocator_t *a, amon_str_t s)
{
    int                  rc;
    size_t               i, n;
    unsigned char        c, *d;
    const unsigned char *p;

    p = s.data;

    if (s.len && amon_utf8_validate(p, s.len) != AMON_OK) {
        return AMON_EINVAL;
    }

    /* the exact size first, so that the buffer grows once */

    n = 2;

    for (i = 0; i < s.len; i++) {
        c = p[i];
        n += (c == '"' || c == '\\') ? 2 : (c < 0x20) ? 6 : 1;
    }

    rc = amon_env_reserve(out, n, max, a);
    if (rc != AMON_OK) {
        return rc;
    }

    d = out->data + out->len;
    *d++ = '"';

    for (i = 0; i < s.len; i++) {
        c = p[i];

        if (c == '"' || c == '\\') {
            *d++ = '\\';
            *d++ = c;

        } else if (c < 0x20) {
            *d++ = '\\';
            *d++ = 'u';
            *d++ = '0';
            *d++ = '0';
            *d++ = (unsigned char) amon_env_hex[c >> 4];
            *d++ = (unsigned char) amon_env_hex[c & 0xf];

        } else {
            *d++ = c;
        }
    }

    *d++ = '"';
    out->len += n;

    return AMON_OK;
}


/* Write the separator and "name": */
static int
amon_env_key(amon_buf_t *out, size_t max, const amon_allocator_t *a,
    unsigned char *sep, const char *name)
{
    int    rc;
    size_t n;

    n = strlen(name);

    rc = amon_env_reserve(out, n + 4, max, a);
    if (rc != AMON_OK) {
        return rc;
    }

    out->data[out->len++] = *sep;
    out->data[out->len++] = '"';
    memcpy(out->data + out->len, name, n);
    out->len += n;
    out->data[out->len++] = '"';
    out->data[out->len++] = ':';

    *sep = ',';

    return AMON_OK;
}


static int
amon_env_str_field(amon_buf_t *out, size_t max, const amon_allocator_t *a,
    unsigned char *sep, const char *name, amon_str_t s)
{
    int rc;

    if (s.data == NULL) {
        return AMON_OK;
    }

    rc = amon_env_key(out, max, a, sep, name);
    if (rc != AMON_OK) {
        return rc;
    }

    return amon_json_append_string(out, max, a, s);
}


/* The envelope up to (not including) the payload; always opens the object. */
static int
amon_env_head(amon_buf_t *out, size_t max, const amon_allocator_t *a,
    const amon_envelope_out_t *e)
{
    int           rc, n;
    uint64_t      v;
    unsigned char sep, num[24];

    sep = '{';

    rc = amon_env_str_field(out, max, a, &sep, "msg_id", e->msg_id);
    if (rc != AMON_OK) {
        return rc;
    }

    rc = amon_env_str_field(out, max, a, &sep, "trace_id", e->trace_id);
    if (rc != AMON_OK) {
        return rc;
    }

    rc = amon_env_str_field(out, max, a, &sep, "type", e->type);
    if (rc != AMON_OK) {
        return rc;
    }

    rc = amon_env_str_field(out, max, a, &sep, "target_id", e->target_id);
    if (rc != AMON_OK) {
        return rc;
    }

    if (e->timestamp >= 0) {
        rc = amon_env_key(out, max, a, &sep, "timestamp");
        if (rc != AMON_OK) {
            return rc;
        }

        v = (uint64_t) e->timestamp;
        n = (int) sizeof(num);

        do {
            num[--n] = (unsigned char) ('0' + v % 10);
            v /= 10;
        } while (v);

        rc = amon_env_add(out, max, a, num + n, sizeof(num) - (size_t) n);
        if (rc != AMON_OK) {
            return rc;
        }
    }

    if (sep == '{') {
        /* nothing written: still open the object */
        return amon_env_add(out, max, a, "{", 1);
    }

    return AMON_OK;
}


static int
amon_env_is_object(amon_str_t json)
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
    int    rc;
    size_t saved;

    if (e->payload_json.data && !amon_env_is_object(e->payload_json)) {
        return AMON_EINVAL;
    }

    saved = out->len;

    rc = amon_env_head(out, max, a, e);

    if (rc == AMON_OK && e->payload_json.data) {
        rc = amon_env_add(out, max, a, ",\"payload\":", 11);
        if (rc == AMON_OK) {
            rc = amon_env_add(
                out, max, a, e->payload_json.data, e->payload_json.len);
        }
    }

    if (rc == AMON_OK) {
        rc = amon_env_add(out, max, a, "}", 1);
    }

    if (rc != AMON_OK) {
        out->len = saved;
    }

    return rc;
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
    int                 rc;
    size_t              saved;
    unsigned char       sep;
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

    if (ack->original.data && !amon_env_is_object(ack->original)) {
        return AMON_EINVAL;
    }

    saved = out->len;
    sep = '{';

    rc = amon_env_head(out, max, a, &e);
    if (rc != AMON_OK) {
        goto failed;
    }

    rc = amon_env_add(out, max, a, ",\"payload\":", 11);
    if (rc != AMON_OK) {
        goto failed;
    }

    rc = amon_env_str_field(
        out, max, a, &sep, "action_msg_id", ack->action_msg_id);
    if (rc != AMON_OK) {
        goto failed;
    }

    rc = amon_env_key(out, max, a, &sep, "success");
    if (rc != AMON_OK) {
        goto failed;
    }

    rc = ack->success ? amon_env_add(out, max, a, "true", 4)
                      : amon_env_add(out, max, a, "false", 5);
    if (rc != AMON_OK) {
        goto failed;
    }

    rc = amon_env_str_field(out, max, a, &sep, "message", ack->message);
    if (rc != AMON_OK) {
        goto failed;
    }

    if (ack->duplicate) {
        rc = amon_env_add(out, max, a, ",\"duplicate\":true", 17);
        if (rc != AMON_OK) {
            goto failed;
        }
    }

    if (ack->original.data) {
        rc = amon_env_key(out, max, a, &sep, "original");
        if (rc != AMON_OK) {
            goto failed;
        }

        rc = amon_env_add(out, max, a, ack->original.data, ack->original.len);
        if (rc != AMON_OK) {
            goto failed;
        }
    }

    rc = amon_env_add(out, max, a, "}}", 2);
    if (rc == AMON_OK) {
        return AMON_OK;
    }

failed:

    out->len = saved;

    return rc;
}


/*
 * An error envelope.  Every envelope needs a msg_id; when the offending
 * message had none, the error gets a fresh random one.
 */
int
amon_envelope_build_error(amon_buf_t *out, size_t max,
    const amon_allocator_t *a, amon_str_t msg_id, amon_str_t target_id,
    int64_t timestamp, const char *code, amon_str_t message, int binary)
{
    int                 rc;
    size_t              saved;
    unsigned char       sep, rnd[16], id[AMON_UUID_LEN];
    amon_pb_env_t       pe;
    amon_envelope_out_t e;
    amon_str_t          c;
    static const char   type[] = "error";

    memset(&e, 0, sizeof(e));

    if (msg_id.data == NULL || msg_id.len == 0) {
        if (RAND_bytes(rnd, sizeof(rnd)) == 1) {
            amon_uuid4(rnd, id);
            msg_id.data = id;
            msg_id.len = sizeof(id);
        }
    }

    c.data = (const unsigned char *) code;
    c.len = code ? strlen(code) : 0;

    e.msg_id = msg_id;
    e.type.data = (const unsigned char *) type;
    e.type.len = sizeof(type) - 1;
    e.target_id = target_id;
    e.timestamp = timestamp;

    if (binary) {
        memset(&pe, 0, sizeof(pe));
        pe.head = e;
        pe.kind = AMON_PB_PAYLOAD_ERROR;
        pe.code = c;
        pe.message = message;

        return amon_pb_envelope(out, max, a, &pe);
    }

    saved = out->len;
    sep = '{';

    rc = amon_env_head(out, max, a, &e);
    if (rc == AMON_OK) {
        rc = amon_env_add(out, max, a, ",\"payload\":", 11);
    }

    if (rc == AMON_OK) {
        rc = amon_env_str_field(out, max, a, &sep, "code", c);
    }

    if (rc == AMON_OK) {
        rc = amon_env_str_field(out, max, a, &sep, "message", message);
    }

    if (rc == AMON_OK) {
        rc = (sep == '{') ? amon_env_add(out, max, a, "{}}", 3)
                          : amon_env_add(out, max, a, "}}", 2);
    }

    if (rc != AMON_OK) {
        out->len = saved;
    }

    return rc;
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

        out[n++] = (unsigned char) amon_env_hex[b >> 4];
        out[n++] = (unsigned char) amon_env_hex[b & 0xf];
    }
}
