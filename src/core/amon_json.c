/*
 * Copyright (C) AMonitor authors
 *
 * Strict RFC 8259 JSON scanner: an iterative state machine over the text
 * with an explicit container stack, a 16- or 8-byte fast path for plain
 * string bytes, and inline UTF-8 checks of string contents.
 */

#include <string.h>

#include "amon_json.h"
#include "amon_json_int.h"


/* the deepest nesting any caller may ask for (bounds the stack below) */
#define AMON_JSON_DEPTH_CAP 256

int
amon_json_scan(const unsigned char *p, size_t len, unsigned max_depth,
    amon_str_t sub_key, amon_json_member_pt handler, void *data,
    amon_json_value_t *root)
{
    int                  rc, herr;
    unsigned             depth, escaped, integer, cur_sub, sub_seen;
    unsigned             sub_active;
    amon_json_value_t    val, key[2];
    const unsigned char *end, *s;
    unsigned char        is_obj[AMON_JSON_DEPTH_CAP];
    const unsigned char *start[AMON_JSON_DEPTH_CAP];

    if (len == 0) {
        return AMON_EJSON;
    }

    if (max_depth > AMON_JSON_DEPTH_CAP) {
        max_depth = AMON_JSON_DEPTH_CAP;
    }

    end = p + len;
    herr = 0;
    depth = 0;
    cur_sub = 0;
    sub_active = 0;
    sub_seen = (handler == NULL || sub_key.data == NULL);

    memset(&key, 0, sizeof(key));

value:

    amon_json_skip_ws(p, end);

    if (p == end) {
        return AMON_EJSON;
    }

    s = p;
    val.escaped = 0;
    val.integer = 0;

    switch (*p) {

    case '{':
    case '[':
        if (depth >= max_depth) {
            return AMON_EDEPTH;
        }

        is_obj[depth] = (*p == '{');
        start[depth] = p;
        depth++;
        p++;

        amon_json_skip_ws(p, end);

        if (p == end) {
            return AMON_EJSON;
        }

        if (is_obj[depth - 1]) {
            if (depth == 2 && cur_sub) {
                sub_active = 1;
            }

            if (*p == '}') {
                goto close;
            }

            goto member;
        }

        if (*p == ']') {
            goto close;
        }

        goto value;

    case '"':
        escaped = 0;
        p = amon_json_string(p + 1, end, &escaped);
        if (p == NULL) {
            return AMON_EJSON;
        }
        val.type = AMON_JSON_STRING;
        val.escaped = escaped;
        break;

    case 't':
        if (end - p < 4 || memcmp(p, "true", 4) != 0) {
            return AMON_EJSON;
        }
        p += 4;
        val.type = AMON_JSON_TRUE;
        break;

    case 'f':
        if (end - p < 5 || memcmp(p, "false", 5) != 0) {
            return AMON_EJSON;
        }
        p += 5;
        val.type = AMON_JSON_FALSE;
        break;

    case 'n':
        if (end - p < 4 || memcmp(p, "null", 4) != 0) {
            return AMON_EJSON;
        }
        p += 4;
        val.type = AMON_JSON_NULL;
        break;

    default:
        integer = 0;
        p = amon_json_number(p, end, &integer);
        if (p == NULL) {
            return AMON_EJSON;
        }
        val.type = AMON_JSON_NUMBER;
        val.integer = integer;
        break;
    }

    val.start = s;
    val.len = (size_t) (p - s);

done:

    /* a complete value in "val"; p is the byte after it */

    if (depth == 0) {
        amon_json_skip_ws(p, end);

        if (p != end) {
            return AMON_EJSON;
        }

        if (root) {
            *root = val;
        }

        return herr;
    }

    if (is_obj[depth - 1]) {
        /*
         * A handler's refusal is told once the text is known to be JSON:
         * a text that is not is refused as such, whatever its members.
         */
        rc = 0;

        if (depth == 1 && handler) {
            rc = handler(data, 0, &key[0], &val);

        } else if (depth == 2 && sub_active && handler) {
            rc = handler(data, 1, &key[1], &val);
        }

        if (rc != 0) {
            herr = rc;
            handler = NULL;
        }
    }

    amon_json_skip_ws(p, end);

    if (p == end) {
        return AMON_EJSON;
    }

    if (*p == ',') {
        p++;

        if (!is_obj[depth - 1]) {
            goto value;
        }

        amon_json_skip_ws(p, end);

        if (p == end) {
            return AMON_EJSON;
        }

        goto member;
    }

    if (*p != (is_obj[depth - 1] ? '}' : ']')) {
        return AMON_EJSON;
    }

close:

    /* p is at the closing bracket of the innermost container */

    depth--;
    p++;

    val.start = start[depth];
    val.len = (size_t) (p - start[depth]);
    val.type = is_obj[depth] ? AMON_JSON_OBJECT : AMON_JSON_ARRAY;
    val.escaped = 0;
    val.integer = 0;

    if (depth == 1) {
        sub_active = 0;
    }

    goto done;

member:

    /* p is at the first byte of a key */

    if (*p != '"') {
        return AMON_EJSON;
    }

    s = p;
    escaped = 0;
    p = amon_json_string(p + 1, end, &escaped);
    if (p == NULL) {
        return AMON_EJSON;
    }

    if (depth <= 2) {
        key[depth - 1].start = s;
        key[depth - 1].len = (size_t) (p - s);
        key[depth - 1].type = AMON_JSON_STRING;
        key[depth - 1].escaped = escaped;
        key[depth - 1].integer = 0;

        if (depth == 1) {
            cur_sub = 0;

            /* a verbatim key of another length cannot match */
            if (!sub_seen && (escaped || (size_t) (p - s) - 2 == sub_key.len)
                && amon_json_str_eq(
                    &key[0], (const char *) sub_key.data, sub_key.len)) {
                sub_seen = 1;
                cur_sub = 1;
            }
        }
    }

    amon_json_skip_ws(p, end);

    if (p == end || *p != ':') {
        return AMON_EJSON;
    }

    p++;

    goto value;
}


int
amon_json_validate(const unsigned char *p, size_t len, unsigned max_depth)
{
    amon_str_t none = amon_null_string;

    return amon_json_scan(p, len, max_depth, none, NULL, NULL, NULL);
}
