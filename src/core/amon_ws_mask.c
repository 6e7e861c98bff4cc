/*
 * Copyright (C) AMonitor authors
 *
 * RFC 6455 masking: the payload XORed with the 4-byte key, a word (or
 * sixteen bytes) at a time, in place or while copying.
 */

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "amon_ws_frame.h"


/*
 * The key as 8 bytes starting at "offset", so that one 64-bit XOR masks
 * eight payload bytes: on a little-endian machine the mask word rotated
 * by the offset, elsewhere built bytewise (right on either byte order).
 */
static void
amon_ws_make_key8(
    unsigned char key8[8], const unsigned char mask[4], unsigned offset)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t m;
    uint64_t k;

    /* byte i of the word is mask[(offset + i) & 3]: a rotation */
    memcpy(&m, mask, 4);

    if (offset) {
        m = (m >> (8 * offset)) | (m << (32 - 8 * offset));
    }

    k = (uint64_t) m | ((uint64_t) m << 32);
    memcpy(key8, &k, 8);
#else
    unsigned i;

    for (i = 0; i < 8; i++) {
        key8[i] = mask[(offset + i) & 3];
    }
#endif
}


unsigned
amon_ws_mask(unsigned char *data, size_t len, const unsigned char mask[4],
    unsigned offset)
{
    /* each word is read before it is written: in place is a copy onto itself */
    return amon_ws_mask_copy(data, data, len, mask, offset);
}


unsigned
amon_ws_mask_copy(unsigned char *dst, const unsigned char *src, size_t len,
    const unsigned char mask[4], unsigned offset)
{
    size_t        i;
    uint32_t      k4, w4;
    uint64_t      k, w0, w1;
    unsigned char key8[8];
#if defined(__SSE2__)
    __m128i k16, v0, v1;
#endif

    offset &= 3;
    amon_ws_make_key8(key8, mask, offset);
    memcpy(&k, key8, 8);

    i = 0;

#if defined(__SSE2__)
    /* 32 bytes a round: the key repeats every 4, so every 16 too */
    k16 = _mm_set1_epi64x((long long) k);

    for (; len - i >= 32; i += 32) {
        v0 = _mm_loadu_si128((const __m128i *) (src + i));
        v1 = _mm_loadu_si128((const __m128i *) (src + i + 16));
        _mm_storeu_si128((__m128i *) (dst + i), _mm_xor_si128(v0, k16));
        _mm_storeu_si128((__m128i *) (dst + i + 16), _mm_xor_si128(v1, k16));
    }
#endif

    /* two independent words per round keep the pipeline busy */
    for (; len - i >= 16; i += 16) {
        memcpy(&w0, src + i, 8);
        memcpy(&w1, src + i + 8, 8);
        w0 ^= k;
        w1 ^= k;
        memcpy(dst + i, &w0, 8);
        memcpy(dst + i + 8, &w1, 8);
    }

    if (len - i >= 8) {
        memcpy(&w0, src + i, 8);
        w0 ^= k;
        memcpy(dst + i, &w0, 8);
        i += 8;
    }

    /* i is a multiple of 8 here: the key starts again */
    if (len - i >= 4) {
        memcpy(&w4, src + i, 4);
        memcpy(&k4, key8, 4);
        w4 ^= k4;
        memcpy(dst + i, &w4, 4);
        i += 4;
    }

    for (; i < len; i++) {
        dst[i] = src[i] ^ key8[i & 7];
    }

    return (unsigned) ((offset + len) & 3);
}
