/*
 * Copyright (C) AMonitor authors
 *
 * Helpers shared by the cmocka unit tests; include after <cmocka.h>.
 */

#ifndef AMON_TEST_UTIL_H
#define AMON_TEST_UTIL_H


#include <stdio.h>


/* "81 05 48" -> bytes; spaces ignored */
static size_t
hex(const char *s, unsigned char *out)
{
    size_t       n;
    unsigned int b;

    n = 0;

    while (*s) {
        if (*s == ' ') {
            s++;
            continue;
        }

        assert_int_equal(sscanf(s, "%2x", &b), 1);
        out[n++] = (unsigned char) b;
        s += 2;
    }

    return n;
}


#endif /* AMON_TEST_UTIL_H */
