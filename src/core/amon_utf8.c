/*
 * Copyright (C) AMonitor authors
 *
 * UTF-8 validation per RFC 3629, whole-buffer and incremental (for text
 * messages split across fragments and reads).  ASCII runs are checked 32
 * bytes (SSE2), then a word at a time.
 */

#include <stdio.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "amon_core.h"


/*
 * The state of an unfinished sequence: bytes still needed in bits 16..,
 * the allowed range of the next byte in bits 8..15 (low) and 0..7 (high).
 * 0 means "between characters".
 */
#define AMON_UTF8_STATE(need, lo, hi) \
    (((uint32_t) (need) << 16) | ((uint32_t) (lo) << 8) | (uint32_t) (hi))


/*
 * Skip ASCII from p: 32 bytes a round (SSE2), the last fewer than 32 of a
 * text of "len" >= 16 bytes in two 16-byte loads, then a word at a time.
 * Returns the first byte that may not be ASCII, or end.
 */
static inline const unsigned char *
amon_utf8_ascii(const unsigned char *p, const unsigned char *end, size_t len)
{
    uint64_t w;

#if defined(__SSE2__)
    while (end - p >= 32) {
        if (_mm_movemask_epi8(_mm_or_si128(_mm_loadu_si128((const __m128i *) p),
                _mm_loadu_si128((const __m128i *) (p + 16))))) {
            break;
        }
        p += 32;
    }

    /* the 16 from here and the text's last 16 cover what is left */
    if (end - p < 32 && len >= 16
        && !_mm_movemask_epi8(
            _mm_or_si128(_mm_loadu_si128((const __m128i *) (end - 16)),
                _mm_loadu_si128(
                    (const __m128i *) (end - p >= 16 ? p : end - 16))))) {
        return end;
    }
#endif

    while (end - p >= 8) {
        memcpy(&w, p, 8);
        if (w & 0x8080808080808080ULL) {
            break;
        }
        p += 8;
    }

    return p;
}


int
amon_utf8_feed(uint32_t *state, const unsigned char *p, size_t len)
{
    uint32_t             st, need;
    unsigned char        c, lo, hi;
    const unsigned char *end;

    if (len == 0) {
        return AMON_OK;
    }

    st = *state;
    end = p + len;

    while (p < end) {

        if (st == 0) {
            p = amon_utf8_ascii(p, end, len);

            if (p == end) {
                break;
            }

            c = *p++;

            if (c < 0x80) {
                continue;
            }

            if (c >= 0xc2 && c <= 0xdf) {
                st = AMON_UTF8_STATE(1, 0x80, 0xbf);

            } else if (c == 0xe0) {
                st = AMON_UTF8_STATE(2, 0xa0, 0xbf);

            } else if (c == 0xed) {
                /* no surrogates U+D800..U+DFFF */
                st = AMON_UTF8_STATE(2, 0x80, 0x9f);

            } else if (c >= 0xe1 && c <= 0xef) {
                st = AMON_UTF8_STATE(2, 0x80, 0xbf);

            } else if (c == 0xf0) {
                st = AMON_UTF8_STATE(3, 0x90, 0xbf);

            } else if (c >= 0xf1 && c <= 0xf3) {
                st = AMON_UTF8_STATE(3, 0x80, 0xbf);

            } else if (c == 0xf4) {
                /* nothing above U+10FFFF */
                st = AMON_UTF8_STATE(3, 0x80, 0x8f);

            } else {
                *state = st;
                return AMON_EUTF8;
            }

            continue;
        }

        c = *p++;
        lo = (unsigned char) (st >> 8);
        hi = (unsigned char) st;

        if (c < lo || c > hi) {
            *state = st;
            return AMON_EUTF8;
        }

        need = (st >> 16) - 1;
        st = need ? AMON_UTF8_STATE(need, 0x80, 0xbf) : 0;
    }

    *state = st;

    return AMON_OK;
}


int
amon_utf8_validate(const unsigned char *p, size_t len)
{
    uint32_t state;

    state = 0;

    if (amon_utf8_feed(&state, p, len) != AMON_OK || state != 0) {
        return AMON_EUTF8;
    }

    return AMON_OK;
}


/*
 * Text from a peer made safe to print to a terminal or write as one log
 * line: C0 controls (but what "flags" keeps), DEL and C1 controls become
 * \u00HH (a JSON escape: JSON text keeps its meaning), bytes that are not
 * UTF-8 \xHH.  Writes whole escapes only, then a NUL, into "out" (size
 * AMON_ESC_MAX_PER_BYTE * len + 1 holds any text); returns the length.
 */
size_t
amon_escape_text(
    const unsigned char *p, size_t len, char *out, size_t size, unsigned flags)
{
    size_t i, k, o;

    if (size == 0) {
        return 0;
    }

    o = 0;

    for (i = 0; i < len && o + AMON_ESC_MAX_PER_BYTE < size; i += k) {
        k = p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : p[i] >= 0xc2 ? 2 : 1;

        if (p[i] < 0x80) {
            k = 1;

            if ((p[i] < 0x20 && !(p[i] == '\t' && (flags & AMON_ESC_KEEP_TAB))
                    && !(p[i] == '\n' && i + 1 == len
                        && (flags & AMON_ESC_KEEP_LAST_NL)))
                || p[i] == 0x7f) {
                o += (size_t) snprintf(out + o, size - o, "\\u%04x", p[i]);

            } else {
                out[o++] = (char) p[i];
            }

        } else if (k == 1 || k > len - i
            || amon_utf8_validate(p + i, k) != AMON_OK) {
            k = 1;
            o += (size_t) snprintf(out + o, size - o, "\\x%02x", p[i]);

        } else if (k == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0) {
            o += (size_t) snprintf(out + o, size - o, "\\u%04x", p[i + 1]);

        } else {
            memcpy(out + o, p + i, k);
            o += k;
        }
    }

    out[o] = '\0';

    return o;
}
