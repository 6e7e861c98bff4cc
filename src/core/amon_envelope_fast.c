/*
 * Copyright (C) AMonitor authors
 *
 * The usual envelope read in one walk over its members: the root
 * object's, and the payload's inside it, each key looked up as soon as it
 * is read.  The general scanner (amon_json_scan() with a member callback)
 * pays for its generality on every member: a key kept for the callback,
 * an indirect call, a lookup after the value.  Here only what the shape
 * allows is read; anything else is left to that scanner, which also
 * tells why a text is refused.
 */

#include <string.h>

#include "amon_envelope_int.h"
#include "amon_json_int.h"


static const unsigned char *amon_envelope_fast_members(const unsigned char *p,
    const unsigned char *end, unsigned level, amon_envelope_scan_t *sc);
static const unsigned char *amon_envelope_fast_skip(
    const unsigned char *p, const unsigned char *end, unsigned max_depth);
static inline const unsigned char *amon_envelope_fast_value(
    const unsigned char *p, const unsigned char *end, unsigned max_depth,
    amon_json_value_t *v);


/* inline here too: it runs for every member of every envelope */
__attribute__((always_inline)) inline int
amon_envelope_root_index(const unsigned char *k, size_t len)
{
    switch (len) {
    case 4: return memcmp(k, "type", 4) ? -1 : AMON_ENVELOPE_F_TYPE;
    case 6:
        if (memcmp(k, "msg_id", 6) == 0) {
            return AMON_ENVELOPE_F_MSG_ID;
        }
        return memcmp(k, "source", 6) ? -1 : AMON_ENVELOPE_F_SOURCE;
    case 7: return memcmp(k, "payload", 7) ? -1 : AMON_ENVELOPE_F_PAYLOAD;
    case 8: return memcmp(k, "trace_id", 8) ? -1 : AMON_ENVELOPE_F_TRACE_ID;
    case 9:
        if (memcmp(k, "target_id", 9) == 0) {
            return AMON_ENVELOPE_F_TARGET_ID;
        }
        return memcmp(k, "timestamp", 9) ? -1 : AMON_ENVELOPE_F_TIMESTAMP;
    default: return -1;
    }
}


__attribute__((always_inline)) inline int
amon_envelope_payload_index(const unsigned char *k, size_t len)
{
    switch (len) {
    case 4: return memcmp(k, "code", 4) ? -1 : AMON_ENVELOPE_P_CODE;
    case 5:
        if (memcmp(k, "final", 5) == 0) {
            return AMON_ENVELOPE_P_FINAL;
        }
        return memcmp(k, "state", 5) ? -1 : AMON_ENVELOPE_P_STATE;
    case 6:
        if (memcmp(k, "action", 6) == 0) {
            return AMON_ENVELOPE_P_ACTION;
        }
        return memcmp(k, "params", 6) ? -1 : AMON_ENVELOPE_P_PARAMS;
    case 7:
        if (memcmp(k, "message", 7) == 0) {
            return AMON_ENVELOPE_P_MESSAGE;
        }
        if (memcmp(k, "success", 7) == 0) {
            return AMON_ENVELOPE_P_SUCCESS;
        }
        return memcmp(k, "sdk_url", 7) ? -1 : AMON_ENVELOPE_P_SDK_URL;
    case 9:
        if (memcmp(k, "target_id", 9) == 0) {
            return AMON_ENVELOPE_P_TARGET_ID;
        }
        return memcmp(k, "duplicate", 9) ? -1 : AMON_ENVELOPE_P_DUPLICATE;
    case 10:
        if (memcmp(k, "target_url", 10) == 0) {
            return AMON_ENVELOPE_P_TARGET_URL;
        }
        return memcmp(k, "event_name", 10) ? -1 : AMON_ENVELOPE_P_EVENT_NAME;
    case 13:
        return memcmp(k, "action_msg_id", 13) ? -1
                                              : AMON_ENVELOPE_P_ACTION_MSG_ID;
    default: return -1;
    }
}


/*
 * An object or array at p, nested at most max_depth levels (itself
 * included), validated.  Returns the byte after it or NULL.
 */
static const unsigned char *
amon_envelope_fast_skip(
    const unsigned char *p, const unsigned char *end, unsigned max_depth)
{
    unsigned          escaped;
    unsigned char     close;
    amon_json_value_t v;

    if (max_depth == 0) {
        return NULL;
    }

    close = (*p == '{') ? '}' : ']';
    p++;
    amon_json_skip_ws(p, end);

    if (p < end && *p == close) {
        return p + 1;
    }

    for (;;) {
        if (close == '}') {
            if (p == end || *p != '"') {
                return NULL;
            }

            p = amon_json_string(p + 1, end, &escaped);
            if (p == NULL) {
                return NULL;
            }

            amon_json_skip_ws(p, end);

            if (p == end || *p != ':') {
                return NULL;
            }

            p++;
            amon_json_skip_ws(p, end);
        }

        if (p == end) {
            return NULL;
        }

        p = amon_envelope_fast_value(p, end, max_depth - 1, &v);
        if (p == NULL) {
            return NULL;
        }

        amon_json_skip_ws(p, end);

        if (p == end) {
            return NULL;
        }

        if (*p == close) {
            return p + 1;
        }

        if (*p != ',') {
            return NULL;
        }

        p++;
        amon_json_skip_ws(p, end);
    }
}


/*
 * A value at p (not at the end), containers in it nested at most
 * max_depth levels.  Returns the byte after it or NULL.
 */
static inline __attribute__((always_inline)) const unsigned char *
amon_envelope_fast_value(const unsigned char *p, const unsigned char *end,
    unsigned max_depth, amon_json_value_t *v)
{
    unsigned             flag;
    amon_json_type_e     type;
    const unsigned char *q;

    flag = 0;

    switch (*p) {

    case '"':
        q = amon_json_string(p + 1, end, &flag);
        type = AMON_JSON_STRING;
        break;

    case '{':
    case '[':
        q = amon_envelope_fast_skip(p, end, max_depth);
        type = (*p == '{') ? AMON_JSON_OBJECT : AMON_JSON_ARRAY;
        break;

    case 't':
        q = (end - p >= 4 && memcmp(p, "true", 4) == 0) ? p + 4 : NULL;
        type = AMON_JSON_TRUE;
        break;

    case 'f':
        q = (end - p >= 5 && memcmp(p, "false", 5) == 0) ? p + 5 : NULL;
        type = AMON_JSON_FALSE;
        break;

    case 'n':
        q = (end - p >= 4 && memcmp(p, "null", 4) == 0) ? p + 4 : NULL;
        type = AMON_JSON_NULL;
        break;

    default:
        q = amon_json_number(p, end, &flag);
        type = AMON_JSON_NUMBER;
        break;
    }

    if (q == NULL) {
        return NULL;
    }

    /* one store of the whole description: no read-modify-write of bits */
    *v = (amon_json_value_t){.start = p,
        .len = (size_t) (q - p),
        .type = type,
        .escaped = (type == AMON_JSON_STRING) & flag,
        .integer = (type == AMON_JSON_NUMBER) & flag};

    return q;
}


/*
 * The members of an object whose '{' is at p[-1]: the root's (level 0)
 * or the payload's (level 1).  Returns the byte after its '}', or NULL
 * where this walk stops: invalid text, a key with an escape, a member
 * the agent reads given twice.
 */
static const unsigned char *
amon_envelope_fast_members(const unsigned char *p, const unsigned char *end,
    unsigned level, amon_envelope_scan_t *sc)
{
    int                  i;
    unsigned             escaped;
    amon_json_value_t    v, *slot;
    const unsigned char *k, *q;

    amon_json_skip_ws(p, end);

    if (p < end && *p == '}') {
        return p + 1;
    }

    for (;;) {
        if (p == end || *p != '"') {
            return NULL;
        }

        k = p + 1;
        escaped = 0;
        p = amon_json_string(k, end, &escaped);

        if (p == NULL || escaped) {
            return NULL;
        }

        i = level ? amon_envelope_payload_index(k, (size_t) (p - 1 - k))
                  : amon_envelope_root_index(k, (size_t) (p - 1 - k));

        /* the ':' right after the key first: compact text */
        if (p == end || *p != ':') {
            amon_json_skip_ws(p, end);

            if (p == end || *p != ':') {
                return NULL;
            }
        }

        p++;
        amon_json_skip_ws(p, end);

        if (p == end) {
            return NULL;
        }

        /* a member read goes straight to its place, any other to "v" */
        slot = &v;

        if (i >= 0) {
            slot = level ? &sc->pay[i] : &sc->root[i];

            if (slot->type != AMON_JSON_NONE) {
                return NULL;
            }
        }

        if (level == 0 && i == AMON_ENVELOPE_F_PAYLOAD && *p == '{') {
            /* the payload object is the root's second level */
            q = amon_envelope_fast_members(p + 1, end, 1, sc);
            if (q == NULL) {
                return NULL;
            }

            *slot = (amon_json_value_t){
                .start = p, .len = (size_t) (q - p), .type = AMON_JSON_OBJECT};

        } else {
            /* a value of this object nests below its own level */
            q = amon_envelope_fast_value(
                p, end, AMON_MAX_JSON_DEPTH - 1 - level, slot);
            if (q == NULL) {
                return NULL;
            }
        }

        p = q;

        /* the ',' right after the value first: compact text */
        if (p == end || *p != ',') {
            amon_json_skip_ws(p, end);

            if (p == end) {
                return NULL;
            }

            if (*p == '}') {
                return p + 1;
            }

            if (*p != ',') {
                return NULL;
            }
        }

        p++;
        amon_json_skip_ws(p, end);
    }
}


int
amon_envelope_scan_fast(const unsigned char *p, size_t len,
    amon_envelope_scan_t *sc, amon_json_value_t *root)
{
    const unsigned char *end, *s, *q;

    end = p + len;
    amon_json_skip_ws(p, end);

    if (p == end || *p != '{') {
        return AMON_AGAIN;
    }

    s = p;
    q = amon_envelope_fast_members(p + 1, end, 0, sc);

    if (q == NULL) {
        return AMON_AGAIN;
    }

    p = q;
    amon_json_skip_ws(p, end);

    if (p != end) {
        return AMON_AGAIN;
    }

    root->start = s;
    root->len = (size_t) (q - s);
    root->type = AMON_JSON_OBJECT;
    root->escaped = 0;
    root->integer = 0;

    return AMON_OK;
}


static int
amon_envelope_value_same(const amon_json_value_t *a, const amon_json_value_t *b)
{
    return a->type == b->type
        && (a->type == AMON_JSON_NONE
            || (a->start == b->start && a->len == b->len
                && a->escaped == b->escaped && a->integer == b->integer));
}


int
amon_envelope_scan_same(const amon_envelope_scan_t *a,
    const amon_json_value_t *ar, const amon_envelope_scan_t *b,
    const amon_json_value_t *br)
{
    unsigned i;

    if (a->dup != b->dup || a->dup_root != b->dup_root
        || !amon_envelope_value_same(ar, br)) {
        return 0;
    }

    for (i = 0; i < AMON_ENVELOPE_F_N; i++) {
        if (!amon_envelope_value_same(&a->root[i], &b->root[i])) {
            return 0;
        }
    }

    for (i = 0; i < AMON_ENVELOPE_P_N; i++) {
        if (!amon_envelope_value_same(&a->pay[i], &b->pay[i])) {
            return 0;
        }
    }

    return 1;
}
