/*
 * Copyright (C) AMonitor authors
 *
 * The one JSON writer of the project.  Every JSON text the agent, the SDK
 * and the CLI make themselves is written through it: it appends to an
 * amon_buf_t, places commas and colons, escapes strings, and keeps the
 * first error so that the caller checks once, at the end.
 */

#ifndef AMON_JSON_WRITE_H
#define AMON_JSON_WRITE_H


#include "amon_core.h"

#ifdef __cplusplus
extern "C" {
#endif


/*
 * Writer state.  Set up with amon_json_w_init(); the fields are private.
 * The structure may be copied to save a position: restoring the copy and
 * the buffer's "len" undoes everything written after it.
 */
typedef struct {
    amon_buf_t             *out;
    size_t                  max;
    const amon_allocator_t *allocator;
    size_t                  start; /* out->len at init */
    int                     err; /* the first error, sticky */
    unsigned                depth;
    unsigned                after_key; /* a key waits for its value */
    uint64_t                more; /* per level: a value was written */
    uint64_t                object; /* per level: object, not array */
} amon_json_w_t;

/* The deepest nesting the writer accepts (deeper: AMON_EDEPTH). */
#define AMON_JSON_W_MAX_DEPTH 63


/*
 * Start writing at the end of "out".  The buffer grows through "a" (NULL:
 * malloc), and never beyond "max" bytes in total (then AMON_ETOOBIG).
 */
void amon_json_w_init(
    amon_json_w_t *w, amon_buf_t *out, size_t max, const amon_allocator_t *a);

/*
 * The first error, or AMON_OK.  On error, "out" is cut back to its length
 * at amon_json_w_init(): nothing partial is left.  AMON_ETOOBIG (over
 * "max"), AMON_ENOMEM, AMON_EINVAL (a string is not UTF-8, or the calls
 * do not make JSON: a key outside an object, an unclosed container, ...),
 * AMON_EDEPTH (nested deeper than AMON_JSON_W_MAX_DEPTH).
 */
int amon_json_w_finish(amon_json_w_t *w);

/*
 * Change the limit for what is written from now on, e.g. a lower one for
 * a part of the text that has a budget of its own.
 */
void amon_json_w_limit(amon_json_w_t *w, size_t max);

/* The sticky error so far, without finishing. */
#define amon_json_w_error(w) ((w)->err)

void amon_json_w_object_begin(amon_json_w_t *w);
void amon_json_w_object_end(amon_json_w_t *w);
void amon_json_w_array_begin(amon_json_w_t *w);
void amon_json_w_array_end(amon_json_w_t *w);

/* A member name inside an object; the next call writes its value. */
void amon_json_w_key(amon_json_w_t *w, const char *name);

/*
 * A string value: counted UTF-8 (data NULL with len 0 is ""), written with
 * '"' and '\' escaped, control characters as \u00XX, and everything else,
 * non-ASCII included, as it is.
 */
void amon_json_w_string(amon_json_w_t *w, amon_str_t s);

/* A NUL-terminated string value; NULL writes "". */
void amon_json_w_cstring(amon_json_w_t *w, const char *s);

void amon_json_w_int64(amon_json_w_t *w, int64_t v);
void amon_json_w_bool(amon_json_w_t *w, int v);
void amon_json_w_null(amon_json_w_t *w);

/*
 * A value given as JSON text, copied verbatim.  The writer does not
 * validate it: the caller vouches for it (or validates it with the
 * scanner of amon_json.h).
 */
void amon_json_w_raw(amon_json_w_t *w, const void *p, size_t len);


/*
 * Append "s" to "out" as a JSON string literal, quotes included, escaped as
 * amon_json_w_string() does.  Returns AMON_OK, AMON_EINVAL (not UTF-8),
 * AMON_ETOOBIG or AMON_ENOMEM; appends nothing on error.
 */
int amon_json_append_string(
    amon_buf_t *out, size_t max, const amon_allocator_t *a, amon_str_t s);


#ifdef __cplusplus
}
#endif

#endif /* AMON_JSON_WRITE_H */
