/*
 * Copyright (C) AMonitor authors
 *
 * Unit tests of amon_glob_match (and of a pattern compiled once with
 * amon_glob_compile), the "*" patterns panels subscribe with:
 * the forms the protocol documents, edge cases of stars at either end and
 * next to each other, agreement with a plain backtracking matcher over
 * every short pattern and id of a small alphabet, and that it reads no
 * byte past either string.
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


static int
glob(const char *p, const char *s)
{
    return amon_glob_match((const unsigned char *) p, strlen(p),
        (const unsigned char *) s, strlen(s));
}


/* the reference: backtracking to the last star */
static int
glob_ref(
    const unsigned char *p, size_t plen, const unsigned char *s, size_t slen)
{
    size_t i, j, star, mark;

    i = 0;
    j = 0;
    star = (size_t) -1;
    mark = 0;

    while (j < slen) {
        if (i < plen && p[i] == '*') {
            star = i++;
            mark = j;

        } else if (i < plen && p[i] == s[j]) {
            i++;
            j++;

        } else if (star != (size_t) -1) {
            i = star + 1;
            j = ++mark;

        } else {
            return 0;
        }
    }

    while (i < plen && p[i] == '*') {
        i++;
    }

    return i == plen;
}


static void
test_documented_forms(void **state)
{
    (void) state;

    assert_true(glob("web-*", "web-1"));
    assert_true(glob("web-*", "web-"));
    assert_false(glob("web-*", "db-1"));
    assert_false(glob("web-*", "xweb-1"));
    assert_true(glob("*-eu-*", "db-eu-1"));
    assert_true(glob("*-eu-*", "-eu-"));
    assert_false(glob("*-eu-*", "db-us-1"));
    assert_true(glob("*", ""));
    assert_true(glob("*", "anything"));
    assert_true(glob("db-1", "db-1"));
    assert_false(glob("db-1", "db-10"));
    assert_false(glob("db-1", "db-"));
}


static void
test_edges(void **state)
{
    (void) state;

    /* the first and the last part must not overlap */
    assert_false(glob("ab*ba", "aba"));
    assert_true(glob("ab*ba", "abba"));
    assert_true(glob("a*a", "aa"));
    assert_false(glob("a*a", "a"));

    /* stars next to each other are one */
    assert_true(glob("a**b", "ab"));
    assert_true(glob("***", ""));
    assert_true(glob("**x**", "x"));

    /* middle parts in order, not overlapping */
    assert_true(glob("*ab*bc*", "abbc"));
    assert_false(glob("*abc*cd*", "abcd"));
    assert_true(glob("*abc*cd*", "abccd"));
    assert_false(glob("*b*a*", "ab"));
    assert_true(glob("x*a*b*c*y", "xaabbccy"));
    assert_false(glob("x*a*b*c*y", "xcbay"));

    /* the empty pattern matches only the empty id */
    assert_true(glob("", ""));
    assert_false(glob("", "a"));

    /* bytes are bytes: no case folding, NUL and high bytes are literal */
    assert_false(glob("WEB-*", "web-1"));
    assert_int_equal(amon_glob_match((const unsigned char *) "a*\0", 3,
                         (const unsigned char *) "ab\0", 3),
        1);
    assert_int_equal(amon_glob_match((const unsigned char *) "a*\0", 3,
                         (const unsigned char *) "ab", 2),
        0);
    assert_true(glob("*\xc3\xa9*", "caf\xc3\xa9s"));
}


/* every pattern up to 7 bytes over {a, b, *} against every id up to 7 */
static void
test_agrees_with_backtracking(void **state)
{
    unsigned char p[8], s[8];
    size_t        plen, slen, i;
    unsigned long pc, sc, pmax, smax, n, matched;

    (void) state;

    n = 0;
    matched = 0;

    for (plen = 0; plen <= 7; plen++) {
        for (pmax = 1, i = 0; i < plen; i++) {
            pmax *= 3;
        }

        for (pc = 0; pc < pmax; pc++) {
            unsigned long x = pc;
            amon_glob_t   g;

            for (i = 0; i < plen; i++, x /= 3) {
                p[i] = "ab*"[x % 3];
            }

            /* compiled once, used for every id */
            amon_glob_compile(&g, p, plen);

            for (slen = 0; slen <= 7; slen++) {
                smax = 1UL << slen;

                for (sc = 0; sc < smax; sc++) {
                    for (i = 0; i < slen; i++) {
                        s[i] = (sc >> i) & 1 ? 'b' : 'a';
                    }

                    int want = glob_ref(p, plen, s, slen);
                    int got = amon_glob_match(p, plen, s, slen);

                    if (amon_glob_match_compiled(&g, s, slen) != got) {
                        fail_msg("pattern \"%.*s\" id \"%.*s\": the compiled "
                                 "pattern answers otherwise",
                            (int) plen, p, (int) slen, s);
                    }

                    if (want != got) {
                        fail_msg("pattern \"%.*s\" id \"%.*s\": %d, "
                                 "expected %d",
                            (int) plen, p, (int) slen, s, got, want);
                    }

                    n++;
                    matched += (unsigned long) want;
                }
            }
        }
    }

    /* both outcomes were seen often */
    assert_true(n > 800000);
    assert_true(matched > n / 20 && matched < n / 2);
}


/* each pattern and id in a heap block of exactly its size (ASan) */
static void
test_exact_bounds(void **state)
{
    unsigned char *p, *s;
    size_t         k;
    const char    *pats[] = {"*a", "a*", "*ab*", "ab", "*", "a*b*a"};
    const char    *ids[] = {"", "a", "ab", "aba", "bab"};

    (void) state;

    for (k = 0; k < sizeof(pats) / sizeof(pats[0]); k++) {
        size_t plen = strlen(pats[k]), j;

        p = malloc(plen);
        assert_non_null(p);
        memcpy(p, pats[k], plen);

        for (j = 0; j < sizeof(ids) / sizeof(ids[0]); j++) {
            size_t slen = strlen(ids[j]);

            s = malloc(slen ? slen : 1);
            assert_non_null(s);
            memcpy(s, ids[j], slen);

            amon_glob_t g;

            amon_glob_compile(&g, p, plen);
            assert_int_equal(
                amon_glob_match(p, plen, s, slen), glob_ref(p, plen, s, slen));
            assert_int_equal(amon_glob_match_compiled(&g, s, slen),
                glob_ref(p, plen, s, slen));
            free(s);
        }

        free(p);
    }
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_documented_forms),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_agrees_with_backtracking),
        cmocka_unit_test(test_exact_bounds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
