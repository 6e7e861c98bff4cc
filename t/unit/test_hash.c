/*
 * Copyright (C) AMonitor authors
 *
 * Unit tests of amon_hash, the hash of names and msg_ids in the module's
 * trees and in the zone's indexes: it reads exactly the bytes it is
 * given, every byte and bit of them changes the result, and msg_ids that
 * differ little spread evenly over the low bits (an index's slot) and the
 * high ones.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "amon_core.h"


/* each prefix from a heap block of exactly its size: no byte past it */
static void
test_exact_lengths(void **state)
{
    size_t         len;
    uint32_t       a, b;
    unsigned char *p;
    const char    *text = "0123456789abcdefghijklmnopqrstuvwxyz-_.~!$&'()";

    (void) state;

    for (len = 0; len <= strlen(text); len++) {
        p = malloc(len ? len : 1);
        assert_non_null(p);
        memcpy(p, text, len);

        a = amon_hash(p, len);
        b = amon_hash((const unsigned char *) text, len);
        assert_int_equal(a, b);

        free(p);
    }

    /* the length counts: a zero byte more is another key */
    assert_int_not_equal(amon_hash((const unsigned char *) "ab\0", 2),
        amon_hash((const unsigned char *) "ab\0", 3));
    assert_int_not_equal(amon_hash((const unsigned char *) "", 0),
        amon_hash((const unsigned char *) "\0", 1));
}


/* any one byte changed, at any position (the tail too), changes it */
static void
test_every_byte_counts(void **state)
{
    size_t        len, i;
    unsigned      v;
    uint32_t      h0;
    unsigned char buf[40];

    (void) state;

    for (len = 1; len <= sizeof(buf); len++) {
        memset(buf, 'x', sizeof(buf));
        h0 = amon_hash(buf, len);

        for (i = 0; i < len; i++) {
            for (v = 0; v < 256; v += 37) {
                if (v == 'x') {
                    continue;
                }

                buf[i] = (unsigned char) v;
                assert_int_not_equal(amon_hash(buf, len), h0);
                buf[i] = 'x';
            }
        }
    }
}


/* one input bit flipped flips about half of the 32 output bits */
static void
test_avalanche(void **state)
{
    int           k, bit;
    double        mean;
    uint32_t      h0, d;
    unsigned long flips, n;
    unsigned char buf[37];

    (void) state;

    flips = 0;
    n = 0;

    for (k = 0; k < 200; k++) {
        snprintf((char *) buf, sizeof(buf), "%08d-4a1b-4c2d-8e3f-%012d", k,
            k * 7919);

        h0 = amon_hash(buf, 36);

        for (bit = 0; bit < 36 * 8; bit++) {
            buf[bit / 8] ^= (unsigned char) (1u << (bit % 8));
            d = amon_hash(buf, 36) ^ h0;
            buf[bit / 8] ^= (unsigned char) (1u << (bit % 8));

            flips += (unsigned long) __builtin_popcount(d);
            n++;
        }
    }

    mean = (double) flips / (double) n;
    print_message("mean flipped output bits: %.2f of 32\n", mean);
    assert_true(mean > 15.0 && mean < 17.0);
}


/* sequential msg_ids fill 1024 slots evenly, by low and by high bits */
static void
test_spread(void **state)
{
    int           i, len;
    uint32_t      h;
    unsigned      lo[1024], hi[1024], min_lo, max_lo, min_hi, max_hi;
    unsigned char buf[32];

    (void) state;

    memset(lo, 0, sizeof(lo));
    memset(hi, 0, sizeof(hi));

    /* 102,400 keys: 100 per slot on average */
    for (i = 0; i < 102400; i++) {
        len =
            snprintf((char *) buf, sizeof(buf), "a%d-%d-%d", i % 16, i / 16, i);
        h = amon_hash(buf, (size_t) len);
        lo[h & 1023]++;
        hi[h >> 22]++;
    }

    min_lo = min_hi = 1u << 30;
    max_lo = max_hi = 0;

    for (i = 0; i < 1024; i++) {
        min_lo = lo[i] < min_lo ? lo[i] : min_lo;
        max_lo = lo[i] > max_lo ? lo[i] : max_lo;
        min_hi = hi[i] < min_hi ? hi[i] : min_hi;
        max_hi = hi[i] > max_hi ? hi[i] : max_hi;
    }

    print_message("per slot: low bits %u..%u, high bits %u..%u\n", min_lo,
        max_lo, min_hi, max_hi);

    /* a fair draw stays within about 4.5 standard deviations (10) */
    assert_true(min_lo >= 55 && max_lo <= 145);
    assert_true(min_hi >= 55 && max_hi <= 145);
}


/* SipHash-2-4 of the paper's key 00..0f and messages 00 01 02 ... */
static void
test_siphash_vectors(void **state)
{
    size_t          i;
    unsigned char   m[16];
    amon_hash_key_t k;

    (void) state;

    for (i = 0; i < sizeof(m); i++) {
        m[i] = (unsigned char) i;
    }

    k.k0 = 0x0706050403020100ULL;
    k.k1 = 0x0f0e0d0c0b0a0908ULL;

    assert_true(amon_siphash(&k, m, 0, 2, 4) == 0x726fdb47dd0e0e31ULL);
    assert_true(amon_siphash(&k, m, 8, 2, 4) == 0x93f5f5799a932462ULL);
    assert_true(amon_siphash(&k, m, 15, 2, 4) == 0xa129ca6149be45e5ULL);

    /* the keyed hash is SipHash-1-3 folded to 32 bits */
    for (i = 0; i <= sizeof(m); i++) {
        uint64_t h = amon_siphash(&k, m, i, 1, 3);

        assert_int_equal(amon_hash_keyed(&k, m, i), (uint32_t) (h ^ (h >> 32)));
    }
}


/*
 * Flipping the top bit of an 8-byte word flips the top bit of the
 * product and, after the shift, bit 34: flipping both in the next word
 * cancels it.  So amon_hash has collisions whatever its start, and a
 * seed would not help it; under a key they are gone.
 */
static void
test_keyed_against_collisions(void **state)
{
    int             i, same_keyed;
    uint64_t        w[2], v[2];
    amon_hash_key_t k1 = {0x0123456789abcdefULL, 0x0fedcba987654321ULL};
    amon_hash_key_t k2 = {0x1111111111111111ULL, 0x2222222222222222ULL};

    (void) state;

    same_keyed = 0;

    for (i = 0; i < 64; i++) {
        w[0] = 0x6162636465666768ULL * (uint64_t) (i + 1);
        w[1] = 0x3132333435363738ULL ^ (uint64_t) i;
        v[0] = w[0] ^ (1ULL << 63);
        v[1] = w[1] ^ (1ULL << 63) ^ (1ULL << 34);

        assert_int_equal(amon_hash((unsigned char *) w, 16),
            amon_hash((unsigned char *) v, 16));

        same_keyed += amon_hash_keyed(&k1, (unsigned char *) w, 16)
            == amon_hash_keyed(&k1, (unsigned char *) v, 16);
    }

    assert_int_equal(same_keyed, 0);

    /* another key, another hash */
    assert_int_not_equal(amon_hash_keyed(&k1, (unsigned char *) "msg-1", 5),
        amon_hash_keyed(&k2, (unsigned char *) "msg-1", 5));
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_lengths),
        cmocka_unit_test(test_every_byte_counts),
        cmocka_unit_test(test_avalanche),
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_siphash_vectors),
        cmocka_unit_test(test_keyed_against_collisions),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
