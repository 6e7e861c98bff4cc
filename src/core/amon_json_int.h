/*
 * Copyright (C) AMonitor authors
 *
 * The JSON scanner's string and number scanning (byte classes, UTF-8
 * ranges, escapes), shared with scanners of a known shape
 * (amon_envelope_fast.c) so that they inline it.  Not part of the core's
 * interface.
 */

#ifndef AMON_JSON_INT_H
#define AMON_JSON_INT_H

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "amon_json.h"


#define AMON_JSON_ONES  0x0101010101010101ULL
#define AMON_JSON_HIGHS 0x8080808080808080ULL


/* byte classes inside a string */
enum {
    AMON_JSON_C_PLAIN = 0,
    AMON_JSON_C_QUOTE,
    AMON_JSON_C_BSLASH,
    AMON_JSON_C_CTRL,
    AMON_JSON_C_U2, /* C2..DF: one continuation byte */
    AMON_JSON_C_E0, /* E0: A0..BF, then one */
    AMON_JSON_C_E1, /* E1..EC, EE, EF: two */
    AMON_JSON_C_ED, /* ED: 80..9F (no surrogates), then one */
    AMON_JSON_C_F0, /* F0: 90..BF, then two */
    AMON_JSON_C_F1, /* F1..F3: three */
    AMON_JSON_C_F4, /* F4: 80..8F (max U+10FFFF), then two */
    AMON_JSON_C_BAD /* 80..C1, F5..FF */
};


/* the class of each byte inside a string (AMON_JSON_C_*) */
/* clang-format off */
static const unsigned char amon_json_cls[256] = {
    /* 0_ */  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,
    /* 1_ */  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,
    /* 2_ */  0,  0,  1,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    /* 3_ */  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    /* 4_ */  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    /* 5_ */  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,
    /* 6_ */  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    /* 7_ */  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    /* 8_ */ 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11,
    /* 9_ */ 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11,
    /* a_ */ 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11,
    /* b_ */ 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11,
    /* c_ */ 11, 11,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,
    /* d_ */  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,
    /* e_ */  5,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  7,  6,  6,
    /* f_ */  8,  9,  9,  9, 10, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11,
};
/* clang-format on */

/* per lead byte class from U2 on: second byte range, continuation bytes */
static const unsigned char amon_json_utf8[][3] = {
    {0x80, 0xbf, 1}, /* C2..DF */
    {0xa0, 0xbf, 2}, /* E0: no overlong forms */
    {0x80, 0xbf, 2}, /* E1..EC, EE, EF */
    {0x80, 0x9f, 2}, /* ED: no surrogates */
    {0x90, 0xbf, 3}, /* F0: no overlong forms */
    {0x80, 0xbf, 3}, /* F1..F3 */
    {0x80, 0x8f, 3}, /* F4: nothing above U+10FFFF */
};


static inline int
amon_json_hex4(const unsigned char *p, uint32_t *cp)
{
    unsigned      i;
    uint32_t      v;
    unsigned char c;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            v = (v << 4) | (uint32_t) (c - '0');

        } else {
            c |= 0x20;
            if (c < 'a' || c > 'f') {
                return -1;
            }
            v = (v << 4) | (uint32_t) (c - 'a' + 10);
        }
    }

    *cp = v;

    return 0;
}


/*
 * Validate the escape after a backslash at p[-1]; returns the byte after.
 * Out of line: escapes are rare, the string scan that calls it is not.
 */
static __attribute__((noinline, unused)) const unsigned char *
amon_json_escape(const unsigned char *p, const unsigned char *end)
{
    uint32_t cp, lo;

    if (p == end) {
        return NULL;
    }

    switch (*p) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't': return p + 1;
    case 'u': break;
    default: return NULL;
    }

    p++;

    if (end - p < 4 || amon_json_hex4(p, &cp) != 0) {
        return NULL;
    }

    p += 4;

    if (cp < 0xd800 || cp > 0xdfff) {
        return p;
    }

    /* a surrogate: must be a high one followed by an escaped low one */

    if (cp > 0xdbff || end - p < 6 || p[0] != '\\' || p[1] != 'u'
        || amon_json_hex4(p + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff) {
        return NULL;
    }

    return p + 6;
}


/* Does the 8-byte word hold a byte that ends the plain-string fast path? */
static inline uint64_t
amon_json_special(uint64_t w)
{
    uint64_t q, b;

    q = w ^ (AMON_JSON_ONES * '"');
    b = w ^ (AMON_JSON_ONES * '\\');

    return ((w - AMON_JSON_ONES * 0x20) & ~w) | ((q - AMON_JSON_ONES) & ~q)
        | ((b - AMON_JSON_ONES) & ~b) | w;
}


/*
 * Skip plain string bytes: returns the first byte that is a quote, a
 * backslash, a control character or non-ASCII, or a point fewer than
 * eight bytes before the end from which the caller goes byte by byte.
 */
static inline const unsigned char *
amon_json_plain(const unsigned char *p, const unsigned char *end)
{
    uint64_t w, m;
#if defined(__SSE2__)
    __m128i  v;
    unsigned bits;

    /* sixteen at a time: control and non-ASCII bytes in one signed test */
    while (end - p >= 16) {
        v = _mm_loadu_si128((const __m128i *) p);
        bits = (unsigned) _mm_movemask_epi8(
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                             _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                _mm_cmplt_epi8(v, _mm_set1_epi8(0x20))));

        if (bits) {
            return p + __builtin_ctz(bits);
        }

        p += 16;
    }
#endif

    while (end - p >= 8) {
        memcpy(&w, p, 8);
        m = amon_json_special(w) & AMON_JSON_HIGHS;

        if (m == 0) {
            p += 8;
            continue;
        }

        /*
         * The lowest flagged byte is always a real one (a borrow only
         * flags bytes above it): go straight to it.
         */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) \
    && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        return p + (__builtin_ctzll(m) >> 3);
#else
        while (amon_json_cls[*p] == AMON_JSON_C_PLAIN) {
            p++;
        }

        return p;
#endif
    }

    return p;
}


/*
 * Scan a string whose opening quote is at p[-1].  Returns the byte after
 * the closing quote, or NULL when the string is invalid or unterminated.
 */
static inline __attribute__((always_inline)) const unsigned char *
amon_json_string(
    const unsigned char *p, const unsigned char *end, unsigned *escaped)
{
    unsigned char        lo, hi;
    unsigned             need;
    const unsigned char *r;

    for (;;) {
        p = amon_json_plain(p, end);

        if (p == end) {
            return NULL;
        }

        /* the usual stop, tested before the table's indirect jump */
        if (*p == '"') {
            return p + 1;
        }

        switch (amon_json_cls[*p]) {

        case AMON_JSON_C_PLAIN: p++; continue;

        case AMON_JSON_C_QUOTE: return p + 1;

        case AMON_JSON_C_BSLASH:
            *escaped = 1;
            p = amon_json_escape(p + 1, end);
            if (p == NULL) {
                return NULL;
            }
            continue;

        case AMON_JSON_C_CTRL:
        case AMON_JSON_C_BAD: return NULL;

        default: break;
        }

        /* a multi-byte UTF-8 sequence */

        r = amon_json_utf8[amon_json_cls[*p] - AMON_JSON_C_U2];
        lo = r[0];
        hi = r[1];
        need = r[2];
        p++;

        if ((size_t) (end - p) < need || p[0] < lo || p[0] > hi) {
            return NULL;
        }

        p++;

        while (--need) {
            if ((*p & 0xc0) != 0x80) {
                return NULL;
            }
            p++;
        }
    }
}


/* The first byte at or after p that is not a decimal digit (or end). */
static inline const unsigned char *
amon_json_digits(const unsigned char *p, const unsigned char *end)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) \
    && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w, m;

    /*
     * Eight at a time: a digit's high nibble is 3, before and after
     * adding 6.  A byte's carry only spoils the bytes above it, and the
     * lowest byte flagged is a real one.
     */
    while (end - p >= 8) {
        memcpy(&w, p, 8);
        m = ((w & (AMON_JSON_ONES * 0xf0)) ^ (AMON_JSON_ONES * 0x30))
            | (((w + AMON_JSON_ONES * 0x06) & (AMON_JSON_ONES * 0xf0))
                ^ (AMON_JSON_ONES * 0x30));

        if (m) {
            return p + (__builtin_ctzll(m) >> 3);
        }

        p += 8;
    }
#endif

    while (p < end && *p >= '0' && *p <= '9') {
        p++;
    }

    return p;
}


/*
 * A number that starts at p: returns the byte after it, or NULL; sets
 * *integer when it has neither a fraction nor an exponent.
 */
static inline const unsigned char *
amon_json_number(
    const unsigned char *p, const unsigned char *end, unsigned *integer)
{
    if (p < end && *p == '-') {
        p++;
    }

    if (p == end) {
        return NULL;
    }

    if (*p == '0') {
        p++;

    } else if (*p >= '1' && *p <= '9') {
        p = amon_json_digits(p + 1, end);

    } else {
        return NULL;
    }

    *integer = 1;

    if (p < end && *p == '.') {
        p++;
        if (p == end || *p < '0' || *p > '9') {
            return NULL;
        }
        p = amon_json_digits(p + 1, end);
        *integer = 0;
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p == end || *p < '0' || *p > '9') {
            return NULL;
        }
        p = amon_json_digits(p + 1, end);
        *integer = 0;
    }

    return p;
}


/* JSON white space; one test when there is none, the usual case */
#define amon_json_skip_ws(p, end) \
    do { \
        if (p < end && *p <= ' ') { \
            while (p < end \
                && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) { \
                p++; \
            } \
        } \
    } while (0)


#endif /* AMON_JSON_INT_H */
