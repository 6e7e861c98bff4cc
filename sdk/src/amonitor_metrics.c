/*
 * Copyright (C) AMonitor authors
 *
 * A heartbeat's metrics: what the host's metrics callback adds, as JSON
 * members of the heartbeat's "metrics" object, each checked (UTF-8, not
 * already there) and kept within the object's budget.  Called by the
 * heartbeat (amonitor_msg.c) through the callback; calls the bottom only.
 */

#include <stdio.h>
#include <string.h>

#include "amonitor_sdk_int.h"


/* Is the JSON-escaped key already a member of the metrics object? */
static int
amonitor_metrics_has(amonitor_metrics_t *m, const char *key)
{
    int            found;
    size_t         i;
    amon_buf_t     needle;
    unsigned char *p;

    memset(&needle, 0, sizeof(needle));

    if (amon_json_append_string(
            &needle, AMONITOR_METRICS_MAX, NULL, amonitor_cstr(key))
            != AMON_OK
        || amonitor_buf_add(&needle, AMONITOR_METRICS_MAX + 1, ":", 1)
            != AMON_OK) {
        amon_buf_free(&needle, NULL);
        return 1;
    }

    /*
     * A quote inside a JSON string is always escaped, so "{" or "," right
     * before the needle can only be the start of a member.
     */
    found = 0;
    p = m->buf->data;

    for (i = m->start; i + needle.len <= m->buf->len; i++) {
        if ((p[i - 1] == '{' || p[i - 1] == ',')
            && memcmp(p + i, needle.data, needle.len) == 0) {
            found = 1;
            break;
        }
    }

    amon_buf_free(&needle, NULL);

    return found;
}


int
amonitor_metrics_add(amonitor_metrics_t *m, const char *key, const char *value)
{
    int           rc;
    size_t        mark;
    amon_json_w_t saved;

    if (m == NULL || key == NULL || value == NULL
        || amon_utf8_validate((const unsigned char *) key, strlen(key))
            != AMON_OK
        || amon_utf8_validate((const unsigned char *) value, strlen(value))
            != AMON_OK
        || amonitor_metrics_has(m, key)) {
        return AMONITOR_ERR_INVAL;
    }

    /* a member that does not fit is left out, the others stay */
    saved = m->w;
    mark = m->buf->len;

    amon_json_w_key(&m->w, key);
    amon_json_w_cstring(&m->w, value);

    rc = amon_json_w_error(&m->w);
    if (rc != AMON_OK) {
        m->w = saved;
        m->buf->len = mark;
        return rc == AMON_ENOMEM ? AMONITOR_ERR_NOMEM : AMONITOR_ERR_TOOBIG;
    }

    return AMONITOR_OK;
}


int
amonitor_metrics_add_int(
    amonitor_metrics_t *m, const char *key, long long value)
{
    char num[32];

    snprintf(num, sizeof(num), "%lld", value);

    return amonitor_metrics_add(m, key, num);
}
