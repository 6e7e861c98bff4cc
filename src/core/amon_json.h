/*
 * Copyright (C) AMonitor authors
 *
 * A strict RFC 8259 JSON validator and scanner.  One pass over the text,
 * no allocation, no recursion limit other than the caller's depth bound.
 * While it validates, it reports the members of the root object (and of
 * one named member object of the root) as raw spans of the input, so that
 * a caller can pick fields without building a tree.
 */

#ifndef AMON_JSON_H
#define AMON_JSON_H


#include "amon_core.h"

#ifdef __cplusplus
extern "C" {
#endif


typedef enum {
    AMON_JSON_NONE = 0,
    AMON_JSON_NULL,
    AMON_JSON_FALSE,
    AMON_JSON_TRUE,
    AMON_JSON_NUMBER,
    AMON_JSON_STRING,
    AMON_JSON_ARRAY,
    AMON_JSON_OBJECT
} amon_json_type_e;


/*
 * A value (or an object key) as it appears in the input: "start"/"len" is
 * the raw text, quotes included for strings.  Points into the scanned
 * input and is valid as long as the input is.
 */
typedef struct {
    const unsigned char *start;
    size_t               len;
    amon_json_type_e     type;
    unsigned             escaped : 1; /* string: holds a backslash escape */
    unsigned             integer : 1; /* number: no fraction, no exponent */
} amon_json_value_t;


/*
 * Called for every member of the root object (level 0) and for every
 * member of the root's "sub_key" member when that is an object (level 1),
 * after the member's value has been validated.  Level 1 members are thus
 * reported before the level 0 member that holds them.  A non-zero return
 * stops the scan, and amon_json_scan() returns it.
 */
typedef int (*amon_json_member_pt)(void *data, unsigned level,
    const amon_json_value_t *key, const amon_json_value_t *value);


/*
 * Validate "len" bytes as one JSON text: RFC 8259 grammar and numbers,
 * string escapes (a \u escape of a surrogate must be a high/low pair),
 * no raw control characters in strings, UTF-8 (RFC 3629) inside strings,
 * only whitespace around the value, and at most "max_depth" nested
 * arrays/objects (the root counts as one).
 *
 * "handler" may be NULL (plain validation).  "sub_key" names the root
 * member whose object members are reported at level 1; only the first
 * member with that name is considered (data == NULL: none).  Keys are
 * compared after unescaping.  "root", when not NULL, receives the span
 * and type of the root value.
 *
 * Returns AMON_OK, AMON_EJSON (not JSON), AMON_EDEPTH (nested deeper than
 * max_depth) or, for JSON only, the first non-zero value the handler
 * returned (it is not called again after that; the text is still
 * validated to its end).  The handler may have been called before an
 * error is found later in the text.
 */
int amon_json_scan(const unsigned char *p, size_t len, unsigned max_depth,
    amon_str_t sub_key, amon_json_member_pt handler, void *data,
    amon_json_value_t *root);

/* amon_json_scan() without a handler. */
int amon_json_validate(const unsigned char *p, size_t len, unsigned max_depth);

/*
 * Does a validated key or string value equal "name" once unescaped?
 * No allocation.
 */
int amon_json_str_eq(const amon_json_value_t *v, const char *name, size_t n);

/*
 * The contents of a validated string value without its quotes.  Only
 * meaningful when v->escaped is 0; otherwise use amon_json_unescape().
 */
amon_str_t amon_json_raw_string(const amon_json_value_t *v);

/*
 * Unescape a validated string value into "dst" (not NUL-terminated) and
 * store its length in *n.  Returns AMON_OK, or AMON_ENOSPC when the result
 * would exceed "cap" bytes (then *n is not set).  The result is never
 * longer than v->len - 2.
 */
int amon_json_unescape(
    const amon_json_value_t *v, unsigned char *dst, size_t cap, size_t *n);

/*
 * The next element of a validated array "arr", from offset *pos (0 at
 * first; advanced past the element): AMON_OK with "item" set, AMON_AGAIN
 * at the end, or AMON_EFIELD_TYPE when the element is not a string (only
 * arrays of strings are walked).
 */
int amon_json_array_string(
    const amon_json_value_t *arr, size_t *pos, amon_json_value_t *item);

/* The length of a validated string value once unescaped, quotes excluded. */
size_t amon_json_unescaped_len(const amon_json_value_t *v);

/*
 * A validated integer number as int64_t.  Returns AMON_OK, or AMON_EINVAL
 * when the value is not an integer (fraction or exponent) or does not fit.
 */
int amon_json_int64(const amon_json_value_t *v, int64_t *out);


#ifdef __cplusplus
}
#endif

#endif /* AMON_JSON_H */
