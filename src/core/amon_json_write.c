/*
 * Copyright (C) AMonitor authors
 *
 * The JSON writer: containers with automatic commas, keys, escaped strings,
 * integers, literals and verbatim JSON text, appended to a bounded buffer
 * with one sticky error.
 */

#include <string.h>

#include "amon_json_write.h"


static int  amon_json_w_reserve(amon_json_w_t *w, size_t need);
static void amon_json_w_add(amon_json_w_t *w, const void *p, size_t len);
static int  amon_json_w_value(amon_json_w_t *w);
static void amon_json_w_begin(amon_json_w_t *w, int object);
static void amon_json_w_end(amon_json_w_t *w, int object);
static int  amon_json_w_escape(amon_buf_t *out, size_t max,
     const amon_allocator_t *a, const unsigned char *p, size_t len);


static const char amon_json_w_hex[] = "0123456789abcdef";


void
amon_json_w_init(
    amon_json_w_t *w, amon_buf_t *out, size_t max, const amon_allocator_t *a)
{
    memset(w, 0, sizeof(amon_json_w_t));

    w->out = out;
    w->max = max;
    w->allocator = a;
    w->start = out->len;
}


int
amon_json_w_finish(amon_json_w_t *w)
{
    if (w->err == AMON_OK && (w->depth || w->after_key)) {
        w->err = AMON_EINVAL;
    }

    if (w->err != AMON_OK) {
        w->out->len = w->start;
    }

    return w->err;
}


void
amon_json_w_limit(amon_json_w_t *w, size_t max)
{
    w->max = max;
}


/*
 * Room for "need" more bytes, the used length kept within "max" even when
 * the buffer is already larger.  Sets the sticky error.
 */
static int
amon_json_w_reserve(amon_json_w_t *w, size_t need)
{
    int rc;

    if (w->err != AMON_OK) {
        return w->err;
    }

    if (need > w->max || w->out->len > w->max - need) {
        w->err = AMON_ETOOBIG;
        return w->err;
    }

    rc = amon_buf_reserve(w->out, need, w->max, w->allocator);
    if (rc != AMON_OK) {
        w->err = rc;
    }

    return rc;
}


static void
amon_json_w_add(amon_json_w_t *w, const void *p, size_t len)
{
    if (len == 0 || amon_json_w_reserve(w, len) != AMON_OK) {
        return;
    }

    memcpy(w->out->data + w->out->len, p, len);
    w->out->len += len;
}


/*
 * Before any value: check that a value may come here and write the comma
 * that separates it from the previous one.  Returns 0 when the value must
 * not be written.
 */
static int
amon_json_w_value(amon_json_w_t *w)
{
    uint64_t bit;

    if (w->err != AMON_OK) {
        return 0;
    }

    bit = (uint64_t) 1 << w->depth;

    if (w->after_key) {
        w->after_key = 0;
        return 1;
    }

    if (w->object & bit) {
        /* a value inside an object needs its key first */
        w->err = AMON_EINVAL;
        return 0;
    }

    if (w->more & bit) {
        if (w->depth == 0) {
            /* one top-level value only */
            w->err = AMON_EINVAL;
            return 0;
        }

        amon_json_w_add(w, ",", 1);
    }

    w->more |= bit;

    return w->err == AMON_OK;
}


static void
amon_json_w_begin(amon_json_w_t *w, int object)
{
    uint64_t bit;

    if (!amon_json_w_value(w)) {
        return;
    }

    if (w->depth >= AMON_JSON_W_MAX_DEPTH) {
        w->err = AMON_EDEPTH;
        return;
    }

    amon_json_w_add(w, object ? "{" : "[", 1);

    w->depth++;
    bit = (uint64_t) 1 << w->depth;
    w->more &= ~bit;

    if (object) {
        w->object |= bit;

    } else {
        w->object &= ~bit;
    }
}


static void
amon_json_w_end(amon_json_w_t *w, int object)
{
    uint64_t bit;

    if (w->err != AMON_OK) {
        return;
    }

    bit = (uint64_t) 1 << w->depth;

    if (w->depth == 0 || w->after_key || !(w->object & bit) != !object) {
        w->err = AMON_EINVAL;
        return;
    }

    amon_json_w_add(w, object ? "}" : "]", 1);

    w->depth--;
}


void
amon_json_w_object_begin(amon_json_w_t *w)
{
    amon_json_w_begin(w, 1);
}


void
amon_json_w_object_end(amon_json_w_t *w)
{
    amon_json_w_end(w, 1);
}


void
amon_json_w_array_begin(amon_json_w_t *w)
{
    amon_json_w_begin(w, 0);
}


void
amon_json_w_array_end(amon_json_w_t *w)
{
    amon_json_w_end(w, 0);
}


void
amon_json_w_key(amon_json_w_t *w, const char *name)
{
    int      rc;
    uint64_t bit;

    if (w->err != AMON_OK) {
        return;
    }

    bit = (uint64_t) 1 << w->depth;

    if (name == NULL || w->after_key || !(w->object & bit)) {
        w->err = AMON_EINVAL;
        return;
    }

    if (w->more & bit) {
        amon_json_w_add(w, ",", 1);
    }

    if (w->err == AMON_OK) {
        rc = amon_json_w_escape(w->out, w->max, w->allocator,
            (const unsigned char *) name, strlen(name));
        if (rc != AMON_OK) {
            w->err = rc;
            return;
        }
    }

    amon_json_w_add(w, ":", 1);

    w->more |= bit;
    w->after_key = 1;
}


void
amon_json_w_string(amon_json_w_t *w, amon_str_t s)
{
    int rc;

    if (!amon_json_w_value(w)) {
        return;
    }

    rc = amon_json_w_escape(w->out, w->max, w->allocator, s.data, s.len);
    if (rc != AMON_OK) {
        w->err = rc;
    }
}


void
amon_json_w_cstring(amon_json_w_t *w, const char *s)
{
    amon_str_t str;

    str.data = (const unsigned char *) s;
    str.len = s ? strlen(s) : 0;

    amon_json_w_string(w, str);
}


void
amon_json_w_int64(amon_json_w_t *w, int64_t v)
{
    size_t        n;
    uint64_t      u;
    unsigned char num[24];

    if (!amon_json_w_value(w)) {
        return;
    }

    /* the magnitude as unsigned: INT64_MIN has no positive twin */
    u = (v < 0) ? (uint64_t) 0 - (uint64_t) v : (uint64_t) v;
    n = sizeof(num);

    do {
        num[--n] = (unsigned char) ('0' + u % 10);
        u /= 10;
    } while (u);

    if (v < 0) {
        num[--n] = '-';
    }

    amon_json_w_add(w, num + n, sizeof(num) - n);
}


void
amon_json_w_bool(amon_json_w_t *w, int v)
{
    if (amon_json_w_value(w)) {
        amon_json_w_add(w, v ? "true" : "false", v ? 4 : 5);
    }
}


void
amon_json_w_null(amon_json_w_t *w)
{
    if (amon_json_w_value(w)) {
        amon_json_w_add(w, "null", 4);
    }
}


void
amon_json_w_raw(amon_json_w_t *w, const void *p, size_t len)
{
    if (p == NULL || len == 0) {
        /* no text is no JSON value */
        if (w->err == AMON_OK) {
            w->err = AMON_EINVAL;
        }
        return;
    }

    if (amon_json_w_value(w)) {
        amon_json_w_add(w, p, len);
    }
}


/*
 * A string literal, quotes included.  The exact size is counted first so
 * that the buffer grows at most once.
 */
static int
amon_json_w_escape(amon_buf_t *out, size_t max, const amon_allocator_t *a,
    const unsigned char *p, size_t len)
{
    int           rc;
    size_t        i, n;
    unsigned char c, *d;

    if (len && amon_utf8_validate(p, len) != AMON_OK) {
        return AMON_EINVAL;
    }

    n = 2;

    for (i = 0; i < len; i++) {
        c = p[i];
        n += (c == '"' || c == '\\') ? 2 : (c < 0x20) ? 6 : 1;
    }

    if (n > max || out->len > max - n) {
        return AMON_ETOOBIG;
    }

    rc = amon_buf_reserve(out, n, max, a);
    if (rc != AMON_OK) {
        return rc;
    }

    d = out->data + out->len;
    *d++ = '"';

    for (i = 0; i < len; i++) {
        c = p[i];

        if (c == '"' || c == '\\') {
            *d++ = '\\';
            *d++ = c;

        } else if (c < 0x20) {
            *d++ = '\\';
            *d++ = 'u';
            *d++ = '0';
            *d++ = '0';
            *d++ = (unsigned char) amon_json_w_hex[c >> 4];
            *d++ = (unsigned char) amon_json_w_hex[c & 0xf];

        } else {
            *d++ = c;
        }
    }

    *d = '"';
    out->len += n;

    return AMON_OK;
}


int
amon_json_append_string(
    amon_buf_t *out, size_t max, const amon_allocator_t *a, amon_str_t s)
{
    return amon_json_w_escape(out, max, a, s.data, s.len);
}
