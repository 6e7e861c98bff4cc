/*
 * Copyright (C) AMonitor authors
 *
 * Core support: allocator hooks, growable buffers, status code texts and
 * their RFC 6455 close codes, strings.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem(), memrchr() */
#endif

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "amon_core.h"


void *
amon_alloc(const amon_allocator_t *a, size_t size)
{
    if (a == NULL || a->alloc == NULL) {
        return malloc(size);
    }

    return a->alloc(a->data, size);
}


void
amon_free(const amon_allocator_t *a, void *p)
{
    if (p == NULL) {
        return;
    }

    if (a == NULL || a->free == NULL) {
        free(p);
        return;
    }

    a->free(a->data, p);
}


int
amon_buf_reserve(
    amon_buf_t *b, size_t need, size_t max, const amon_allocator_t *a)
{
    size_t         cap;
    unsigned char *p;

    if (need <= b->cap - b->len) {
        return AMON_OK;
    }

    if (need > max || b->len > max - need) {
        return AMON_ETOOBIG;
    }

    cap = b->cap ? b->cap : 256;

    while (cap < b->len + need) {
        cap = (cap > max / 2) ? max : cap * 2;
    }

    p = amon_alloc(a, cap);
    if (p == NULL) {
        return AMON_ENOMEM;
    }

    if (b->len) {
        memcpy(p, b->data, b->len);
    }

    amon_free(a, b->data);

    b->data = p;
    b->cap = cap;

    return AMON_OK;
}


void
amon_buf_free(amon_buf_t *b, const amon_allocator_t *a)
{
    amon_free(a, b->data);

    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}


const char *
amon_strerror(int rc)
{
    switch (rc) {
    case AMON_OK: return "ok";
    case AMON_AGAIN: return "more data needed";
    case AMON_EPROTO: return "websocket protocol error";
    case AMON_ERSV: return "reserved bits set without extension";
    case AMON_EOPCODE: return "reserved opcode";
    case AMON_ECTRL_LEN:
        return "control frame with a 16- or 64-bit length (over 125 bytes)";
    case AMON_ECTRL_FRAG: return "fragmented control frame";
    case AMON_EMASK: return "wrong frame masking";
    case AMON_ECONT: return "continuation frame without a message";
    case AMON_EFRAG: return "data frame inside a fragmented message";
    case AMON_ELEN: return "invalid payload length";
    case AMON_ECLOSE_LEN: return "close frame payload of 1 byte";
    case AMON_ECLOSE_CODE: return "invalid close status code";
    case AMON_EUTF8: return "invalid UTF-8";
    case AMON_EHANDSHAKE: return "websocket handshake failed";
    case AMON_EINVAL: return "invalid argument";
    case AMON_ENOSPC: return "output buffer too small";
    case AMON_ETOOBIG: return "message too big";
    case AMON_EDEPTH: return "JSON nested too deep";
    case AMON_EFIELD_LONG: return "field too long";
    case AMON_ENOMEM: return "out of memory";
    case AMON_EJSON: return "message is not valid JSON";
    case AMON_ENOTOBJ: return "message is not a JSON object";
    case AMON_ENO_MSG_ID: return "msg_id is missing or empty";
    case AMON_ENO_TYPE: return "type is missing or empty";
    case AMON_EFIELD_TYPE: return "a field has the wrong type";
    case AMON_EPROTOBUF: return "message is not a valid protobuf Envelope";
    case AMON_ENO_PAYLOAD: return "payload is missing";
    case AMON_EFIELD_NUL: return "a field holds a NUL character (\\u0000)";
    case AMON_EFIELD_DUP:
        return "a field the agent reads is given twice (msg_id, type, "
               "target_id, payload, action, ...)";
    default: return "unknown error";
    }
}


uint16_t
amon_close_code(int rc)
{
    if (rc == AMON_EUTF8) {
        return 1007;
    }

    if (rc == AMON_ETOOBIG) {
        return 1009;
    }

    if (amon_is_proto_error(rc)) {
        return 1002;
    }

    if (rc == AMON_OK) {
        return 1000;
    }

    return 1011;
}


int
amon_str_eq_ci(amon_str_t s, const char *cstr)
{
    size_t        i;
    unsigned char c1, c2;

    for (i = 0; i < s.len; i++) {
        c2 = (unsigned char) cstr[i];
        if (c2 == '\0') {
            return 0;
        }

        c1 = s.data[i];
        c1 = (c1 >= 'A' && c1 <= 'Z') ? (unsigned char) (c1 | 0x20) : c1;
        c2 = (c2 >= 'A' && c2 <= 'Z') ? (unsigned char) (c2 | 0x20) : c2;

        if (c1 != c2) {
            return 0;
        }
    }

    return cstr[s.len] == '\0';
}


amon_str_t
amon_str_trim(const unsigned char *p, size_t len)
{
    amon_str_t s;

    while (len && (*p == ' ' || *p == '\t')) {
        p++;
        len--;
    }

    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
        len--;
    }

    s.data = p;
    s.len = len;

    return s;
}


/* 64 bits in, every bit mixed into every other (a splitmix64 finish) */
static uint64_t
amon_hash_mix(uint64_t h)
{
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;

    return h;
}


uint32_t
amon_hash(const unsigned char *p, size_t len)
{
    uint64_t h, w;

    h = 0x9e3779b97f4a7c15ULL ^ (uint64_t) len;

    while (len >= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }

    if (len) {
        /*
         * The last 1 to 7 bytes in at most two loads, never a byte past
         * them: 4 to 7 as two 4-byte words that may overlap, 1 to 3 as
         * the first, middle and last byte (the length is in "h" already,
         * so no two strings of one length give the same word).
         */
        if (len >= 4) {
            uint32_t a, b;

            memcpy(&a, p, 4);
            memcpy(&b, p + len - 4, 4);
            w = ((uint64_t) a << 32) | b;

        } else {
            w = (uint64_t) p[0] | ((uint64_t) p[len >> 1] << 8)
                | ((uint64_t) p[len - 1] << 16);
        }

        h = (h ^ w) * 0xff51afd7ed558ccdULL;
    }

    return (uint32_t) amon_hash_mix(h);
}


#define amon_rotl(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define amon_sipround(v0, v1, v2, v3) \
    do { \
        v0 += v1; \
        v1 = amon_rotl(v1, 13); \
        v1 ^= v0; \
        v0 = amon_rotl(v0, 32); \
        v2 += v3; \
        v3 = amon_rotl(v3, 16); \
        v3 ^= v2; \
        v0 += v3; \
        v3 = amon_rotl(v3, 21); \
        v3 ^= v0; \
        v2 += v1; \
        v1 = amon_rotl(v1, 17); \
        v1 ^= v2; \
        v2 = amon_rotl(v2, 32); \
    } while (0)


/* eight bytes as a little-endian word */
static inline uint64_t
amon_load64le(const unsigned char *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t m;

    memcpy(&m, p, 8);

    return m;
#else
    return (uint64_t) p[0] | (uint64_t) p[1] << 8 | (uint64_t) p[2] << 16
        | (uint64_t) p[3] << 24 | (uint64_t) p[4] << 32 | (uint64_t) p[5] << 40
        | (uint64_t) p[6] << 48 | (uint64_t) p[7] << 56;
#endif
}


/* SipHash-c-d (Aumasson, Bernstein 2012): 8-byte words little-endian */
static inline uint64_t
amon_siphash_cd(const amon_hash_key_t *key, const unsigned char *p, size_t len,
    unsigned c, unsigned d)
{
    size_t   i, left;
    uint64_t v0, v1, v2, v3, m;
    unsigned r;

    v0 = key->k0 ^ 0x736f6d6570736575ULL;
    v1 = key->k1 ^ 0x646f72616e646f6dULL;
    v2 = key->k0 ^ 0x6c7967656e657261ULL;
    v3 = key->k1 ^ 0x7465646279746573ULL;

    for (i = 0; i + 8 <= len; i += 8) {
        m = amon_load64le(p + i);

        v3 ^= m;
        for (r = 0; r < c; r++) {
            amon_sipround(v0, v1, v2, v3);
        }
        v0 ^= m;
    }

    /* the last 0 to 7 bytes, and the length's low byte on top */
    m = 0;
    left = len - i;

    if (len >= 8) {
        /* the tail is the top of the text's last eight bytes */
        if (left) {
            m = amon_load64le(p + len - 8) >> (64 - 8 * left);
        }

    } else {
        for (; left; left--) {
            m |= (uint64_t) p[i + left - 1] << (8 * (left - 1));
        }
    }

    m |= (uint64_t) (len & 0xff) << 56;

    v3 ^= m;
    for (r = 0; r < c; r++) {
        amon_sipround(v0, v1, v2, v3);
    }
    v0 ^= m;

    v2 ^= 0xff;
    for (r = 0; r < d; r++) {
        amon_sipround(v0, v1, v2, v3);
    }

    return v0 ^ v1 ^ v2 ^ v3;
}


uint64_t
amon_siphash(const amon_hash_key_t *key, const unsigned char *p, size_t len,
    unsigned c, unsigned d)
{
    return amon_siphash_cd(key, p, len, c, d);
}


int
amon_hash_key_random(amon_hash_key_t *key)
{
    if (getrandom(key, sizeof(amon_hash_key_t), 0)
        != (ssize_t) sizeof(amon_hash_key_t)) {
        return -1;
    }

    return 0;
}


uint32_t
amon_hash_keyed(const amon_hash_key_t *key, const unsigned char *p, size_t len)
{
    uint64_t h;

    h = amon_siphash_cd(key, p, len, 1, 3);

    return (uint32_t) (h ^ (h >> 32));
}


/*
 * The part before the first "*" must begin "s" and the part after the
 * last one end it; each part in between is found leftmost in what is
 * left, which is never worse for the parts after it.  memmem() is linear,
 * so a match costs O(plen + slen): a backtracking matcher takes
 * O(plen * slen) for a pattern like "*aaa...ab" against a run of "a"s.
 */
int
amon_glob_match(
    const unsigned char *p, size_t plen, const unsigned char *s, size_t slen)
{
    amon_glob_t g;

    amon_glob_compile(&g, p, plen);

    return amon_glob_match_compiled(&g, s, slen);
}


void
amon_glob_compile(amon_glob_t *g, const unsigned char *p, size_t len)
{
    const unsigned char *first, *last;

    g->p = p;
    g->len = (uint32_t) len;

    first = len ? memchr(p, '*', len) : NULL;

    if (first == NULL) {
        g->head = (uint32_t) len;
        g->tail = 0;
        g->middle = 0;
        return;
    }

    last = memrchr(p, '*', len);
    g->head = (uint32_t) (first - p);
    g->tail = (uint32_t) (p + len - (last + 1));
    g->middle = (uint32_t) (last - first);
}


/* ids and patterns are short: a loop that stops at the first difference */
static int
amon_glob_same(const unsigned char *a, const unsigned char *b, size_t n)
{
    while (n--) {
        if (*a++ != *b++) {
            return 0;
        }
    }

    return 1;
}


int
amon_glob_match_compiled(
    const amon_glob_t *g, const unsigned char *s, size_t slen)
{
    size_t               n;
    const unsigned char *p, *last, *star, *end, *found;

    if (g->head == g->len) {
        /* no star */
        return slen == g->len && amon_glob_same(g->p, s, slen);
    }

    if ((size_t) g->head + g->tail > slen || !amon_glob_same(g->p, s, g->head)
        || !amon_glob_same(
            g->p + g->len - g->tail, s + slen - g->tail, g->tail)) {
        return 0;
    }

    end = s + slen - g->tail;
    s += g->head;
    last = g->p + g->head + g->middle;

    for (p = g->p + g->head + 1; p < last; p = star + 1) {
        star = memchr(p, '*', (size_t) (last - p));
        if (star == NULL) {
            star = last;
        }

        n = (size_t) (star - p);
        if (n == 0) {
            continue;
        }

        found = memmem(s, (size_t) (end - s), p, n);
        if (found == NULL) {
            return 0;
        }

        s = found + n;
    }

    return 1;
}
