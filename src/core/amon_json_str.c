/*
 * Copyright (C) AMonitor authors
 *
 * Helpers for values the JSON scanner has validated: key comparison,
 * unescaping of strings into caller buffers, integers.  They trust the
 * validation and do no checks of their own.
 */

#include <string.h>

#include "amon_json.h"


static uint32_t amon_json_hex(const unsigned char *p);
static unsigned amon_json_decode_escape(
    const unsigned char **pp, unsigned char out[4]);
static uint64_t amon_json_digits8(const unsigned char *p);


/* Four validated hex digits. */
static uint32_t
amon_json_hex(const unsigned char *p)
{
    unsigned i;
    uint32_t v;

    v = 0;

    for (i = 0; i < 4; i++) {
        v <<= 4;
        v |= (p[i] <= '9') ? (uint32_t) (p[i] - '0')
                           : (uint32_t) ((p[i] | 0x20) - 'a' + 10);
    }

    return v;
}


/*
 * Decode the escape at **pp (the byte after a backslash) of a validated
 * string into UTF-8; advances *pp past it and returns the byte count.
 */
static unsigned
amon_json_decode_escape(const unsigned char **pp, unsigned char out[4])
{
    uint32_t             cp, lo;
    const unsigned char *p;

    p = *pp;

    switch (*p) {
    case 'b': out[0] = '\b'; break;
    case 'f': out[0] = '\f'; break;
    case 'n': out[0] = '\n'; break;
    case 'r': out[0] = '\r'; break;
    case 't': out[0] = '\t'; break;
    case 'u': break;
    default: out[0] = *p; break;
    }

    if (*p != 'u') {
        *pp = p + 1;
        return 1;
    }

    cp = amon_json_hex(p + 1);
    p += 5;

    if (cp >= 0xd800 && cp <= 0xdbff) {
        lo = amon_json_hex(p + 2);
        p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }

    *pp = p;

    if (cp < 0x80) {
        out[0] = (unsigned char) cp;
        return 1;
    }

    if (cp < 0x800) {
        out[0] = (unsigned char) (0xc0 | (cp >> 6));
        out[1] = (unsigned char) (0x80 | (cp & 0x3f));
        return 2;
    }

    if (cp < 0x10000) {
        out[0] = (unsigned char) (0xe0 | (cp >> 12));
        out[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
        out[2] = (unsigned char) (0x80 | (cp & 0x3f));
        return 3;
    }

    out[0] = (unsigned char) (0xf0 | (cp >> 18));
    out[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
    out[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
    out[3] = (unsigned char) (0x80 | (cp & 0x3f));

    return 4;
}


/*
 * Eight validated decimal digits, most significant first, as a number:
 * pairs, then fours, then the eight, each step one multiply of the
 * little-endian word (on a big-endian machine, a loop).
 */
static uint64_t
amon_json_digits8(const unsigned char *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;

    memcpy(&v, p, 8);
    v -= 0x3030303030303030ULL;

    /* byte 2i: digit pair i (10 * first + second) */
    v = (v * 10 + (v >> 8)) & 0x00ff00ff00ff00ffULL;
    /* 16-bit lane 2i: four digits */
    v = (v * 100 + (v >> 16)) & 0x0000ffff0000ffffULL;
    /* the low 32 bits: eight digits */
    v = (v * 10000 + (v >> 32)) & 0xffffffffULL;

    return v;
#else
    unsigned i;
    uint64_t v;

    v = 0;

    for (i = 0; i < 8; i++) {
        v = v * 10 + (uint64_t) (p[i] - '0');
    }

    return v;
#endif
}


int
amon_json_str_eq(const amon_json_value_t *v, const char *name, size_t n)
{
    unsigned             k;
    const unsigned char *p, *end, *q, *qend;
    unsigned char        u[4];

    if (v->type != AMON_JSON_STRING) {
        return 0;
    }

    p = v->start + 1;
    end = v->start + v->len - 1;

    if (!v->escaped) {
        return (size_t) (end - p) == n && memcmp(p, name, n) == 0;
    }

    q = (const unsigned char *) name;
    qend = q + n;

    while (p < end) {
        if (*p != '\\') {
            if (q == qend || *q != *p) {
                return 0;
            }
            p++;
            q++;
            continue;
        }

        p++;
        k = amon_json_decode_escape(&p, u);

        if ((size_t) (qend - q) < k || memcmp(q, u, k) != 0) {
            return 0;
        }

        q += k;
    }

    return q == qend;
}


amon_str_t
amon_json_raw_string(const amon_json_value_t *v)
{
    amon_str_t s;

    s.data = v->start + 1;
    s.len = v->len - 2;

    return s;
}


int
amon_json_unescape(
    const amon_json_value_t *v, unsigned char *dst, size_t cap, size_t *n)
{
    size_t               run, used;
    unsigned             k;
    const unsigned char *p, *end, *bs;
    unsigned char        u[4];

    p = v->start + 1;
    end = v->start + v->len - 1;
    used = 0;

    while (p < end) {
        bs = memchr(p, '\\', (size_t) (end - p));
        run = (size_t) ((bs ? bs : end) - p);

        if (cap - used < run) {
            return AMON_ENOSPC;
        }

        memcpy(dst + used, p, run);
        used += run;
        p += run;

        if (bs == NULL) {
            break;
        }

        p++;
        k = amon_json_decode_escape(&p, u);

        if (cap - used < k) {
            return AMON_ENOSPC;
        }

        memcpy(dst + used, u, k);
        used += k;
    }

    *n = used;

    return AMON_OK;
}


size_t
amon_json_unescaped_len(const amon_json_value_t *v)
{
    size_t               n;
    const unsigned char *p, *end;
    unsigned char        u[4];

    p = v->start + 1;
    end = v->start + v->len - 1;

    if (!v->escaped) {
        return (size_t) (end - p);
    }

    n = 0;

    while (p < end) {
        if (*p != '\\') {
            n++;
            p++;
            continue;
        }

        p++;
        n += amon_json_decode_escape(&p, u);
    }

    return n;
}


int
amon_json_int64(const amon_json_value_t *v, int64_t *out)
{
    int                  neg;
    uint64_t             acc, lim;
    const unsigned char *p, *end;

    if (v->type != AMON_JSON_NUMBER || !v->integer) {
        return AMON_EINVAL;
    }

    p = v->start;
    end = p + v->len;
    neg = (*p == '-');
    p += neg;

    /* magnitude limit: 2^63 - 1, or 2^63 for a negative number */
    lim = (uint64_t) INT64_MAX + (uint64_t) neg;
    acc = 0;

    /* up to 18 digits cannot overflow: check only longer numbers */
    if (end - p <= 18) {
        while (end - p >= 8) {
            acc = acc * 100000000 + amon_json_digits8(p);
            p += 8;
        }

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /*
         * The last 1 to 7 digits as one word: the eight bytes that end
         * the number, those before the digits made '0'.
         */
        if (p < end && v->len >= 8) {
            uint64_t w, low;
            size_t   r;

            static const uint64_t pow10[8] = {
                1, 10, 100, 1000, 10000, 100000, 1000000, 10000000};

            r = (size_t) (end - p);
            low = (1ULL << (8 * (8 - r))) - 1;

            memcpy(&w, end - 8, 8);
            w = (w & ~low) | (0x3030303030303030ULL & low);

            acc = acc * pow10[r] + amon_json_digits8((unsigned char *) &w);
            p = end;
        }
#endif

        for (; p < end; p++) {
            acc = acc * 10 + (uint64_t) (*p - '0');
        }
    }

    for (; p < end; p++) {
        if (acc > (lim - (uint64_t) (*p - '0')) / 10) {
            return AMON_EINVAL;
        }
        acc = acc * 10 + (uint64_t) (*p - '0');
    }

    if (neg) {
        *out = (acc == (uint64_t) INT64_MAX + 1) ? INT64_MIN : -(int64_t) acc;

    } else {
        *out = (int64_t) acc;
    }

    return AMON_OK;
}


int
amon_json_array_string(
    const amon_json_value_t *arr, size_t *pos, amon_json_value_t *item)
{
    size_t               i, start;
    unsigned             escaped;
    const unsigned char *p;

    p = arr->start;
    i = *pos ? *pos : 1; /* past the '[' */

    while (i < arr->len
        && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'
            || p[i] == ',')) {
        i++;
    }

    if (i >= arr->len || p[i] == ']') {
        *pos = arr->len;
        return AMON_AGAIN;
    }

    if (p[i] != '"') {
        return AMON_EFIELD_TYPE;
    }

    start = i++;
    escaped = 0;

    /* validated: the closing quote is the first one not escaped */
    while (p[i] != '"') {
        if (p[i] == '\\') {
            escaped = 1;
            i++;
        }

        i++;
    }

    i++;

    item->start = p + start;
    item->len = i - start;
    item->type = AMON_JSON_STRING;
    item->escaped = escaped;
    item->integer = 0;

    *pos = i;

    return AMON_OK;
}
