/*
 * Copyright (C) AMonitor authors
 *
 * libFuzzer target for the JSON writer.  The input is cut into strings
 * that are written as keys and values of an object (and as an array);
 * the text must then be valid JSON for the core's scanner, and each
 * string must unescape to the bytes it was made from.  Input that is not
 * UTF-8 must be refused with nothing left in the buffer.  A mismatch
 * traps.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "amon_core.h"
#include "amon_json.h"
#include "amon_json_write.h"


#define CHECK(x) \
    do { \
        if (!(x)) { \
            __builtin_trap(); \
        } \
    } while (0)


/* The string written as the only element of an array, back and unescaped. */
static void
round_trip(const unsigned char *p, size_t len)
{
    int               rc;
    size_t            n;
    amon_buf_t        out = {NULL, 0, 0};
    amon_json_w_t     w;
    amon_json_value_t root;
    amon_str_t        none = amon_null_string;
    unsigned char    *back;

    amon_json_w_init(&w, &out, 1 << 20, NULL);
    amon_json_w_string(&w, (amon_str_t){p, len});
    rc = amon_json_w_finish(&w);

    if (amon_utf8_validate(p, len) != AMON_OK) {
        CHECK(rc == AMON_EINVAL);
        CHECK(out.len == 0);
        amon_buf_free(&out, NULL);
        return;
    }

    CHECK(rc == AMON_OK);
    CHECK(amon_json_scan(
              out.data, out.len, AMON_MAX_JSON_DEPTH, none, NULL, NULL, &root)
        == AMON_OK);
    CHECK(root.type == AMON_JSON_STRING);

    back = malloc(len + 1);
    CHECK(back != NULL);
    CHECK(amon_json_unescape(&root, back, len, &n) == AMON_OK);
    CHECK(n == len && (len == 0 || memcmp(back, p, len) == 0));

    free(back);
    amon_buf_free(&out, NULL);
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                  rc, ok;
    size_t               i, start, max;
    char                *key;
    amon_buf_t           out = {NULL, 0, 0};
    amon_json_w_t        w;
    const unsigned char *p;

    round_trip(data, size);

    /* the first byte picks a limit; the rest splits at '|' into members */
    if (size == 0) {
        return 0;
    }

    max = (size_t) data[0] * 8;
    p = data + 1;
    size--;

    amon_json_w_init(&w, &out, max, NULL);
    amon_json_w_object_begin(&w);

    ok = 1;
    start = 0;

    for (i = 0; i <= size; i++) {
        if (i < size && p[i] != '|') {
            continue;
        }

        key = malloc(i - start + 1);
        CHECK(key != NULL);
        memcpy(key, p + start, i - start);
        key[i - start] = '\0';

        /* a NUL cuts the key short: check what the writer saw */
        if (amon_utf8_validate((const unsigned char *) key, strlen(key))
                != AMON_OK
            || amon_utf8_validate(p + start, i - start) != AMON_OK) {
            ok = 0;
        }

        amon_json_w_key(&w, key);
        amon_json_w_string(&w, (amon_str_t){p + start, i - start});
        amon_json_w_key(&w, "n");
        amon_json_w_int64(&w, (int64_t) (i - start) - 100);

        free(key);
        start = i + 1;
    }

    amon_json_w_object_end(&w);
    rc = amon_json_w_finish(&w);

    if (rc == AMON_OK) {
        CHECK(ok);
        CHECK(out.len <= max);
        CHECK(amon_json_validate(out.data, out.len, AMON_MAX_JSON_DEPTH)
            == AMON_OK);

    } else {
        CHECK(rc == AMON_ETOOBIG || (rc == AMON_EINVAL && !ok));
        CHECK(out.len == 0);
    }

    amon_buf_free(&out, NULL);

    return 0;
}
