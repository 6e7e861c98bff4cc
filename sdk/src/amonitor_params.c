/*
 * Copyright (C) AMonitor authors
 *
 * A parsed view of an action's params object for handlers, through the
 * protocol core's one-pass JSON scanner: no allocation, no cJSON.  Calls
 * nothing else of the SDK.
 */

#include <string.h>

#include "amonitor_sdk_int.h"


typedef struct {
    const char       *name;
    amon_json_value_t value;
    int               found;
    int               twice;
} amonitor_param_find_t;


static int
amonitor_param_member(void *data, unsigned level, const amon_json_value_t *key,
    const amon_json_value_t *value)
{
    amonitor_param_find_t *f = data;

    if (level != 0 || !amon_json_str_eq(key, f->name, strlen(f->name))) {
        return 0;
    }

    if (f->found) {
        /* JSON libraries differ on which copy counts: neither does */
        f->twice = 1;
        return 1;
    }

    f->value = *value;
    f->found = 1;

    return 0;
}


static int
amonitor_param_find(
    const amonitor_action_t *action, const char *name, amon_json_value_t *value)
{
    int                   rc;
    amon_str_t            none;
    amon_json_value_t     root;
    amonitor_param_find_t f;

    if (action == NULL || name == NULL || action->params == NULL) {
        return AMONITOR_ERR_INVAL;
    }

    memset(&f, 0, sizeof(f));
    f.name = name;
    none.data = NULL;
    none.len = 0;

    rc = amon_json_scan((const unsigned char *) action->params,
        action->params_len, AMON_MAX_JSON_DEPTH, none, amonitor_param_member,
        &f, &root);

    if (rc == 1 && f.twice) {
        return AMONITOR_ERR_INVAL;
    }

    if (rc != AMON_OK || root.type != AMON_JSON_OBJECT || !f.found) {
        return AMONITOR_ERR_NOTFOUND;
    }

    *value = f.value;

    return AMONITOR_OK;
}


int
amonitor_action_param_string(
    const amonitor_action_t *action, const char *name, char *buf, size_t size)
{
    int               rc;
    size_t            n;
    amon_json_value_t v;

    rc = amonitor_param_find(action, name, &v);
    if (rc != AMONITOR_OK) {
        return rc;
    }

    if (v.type != AMON_JSON_STRING) {
        return AMONITOR_ERR_INVAL;
    }

    if (buf == NULL || size == 0 || amon_json_unescaped_len(&v) >= size) {
        return AMONITOR_ERR_TOOBIG;
    }

    if (amon_json_unescape(&v, (unsigned char *) buf, size - 1, &n)
        != AMON_OK) {
        return AMONITOR_ERR_TOOBIG;
    }

    /*
     * "\u0000" would end the C string early: the program would check and
     * use a shorter text than the one the panel sent.
     */
    if (memchr(buf, '\0', n) != NULL) {
        buf[0] = '\0';
        return AMONITOR_ERR_INVAL;
    }

    buf[n] = '\0';

    return AMONITOR_OK;
}


int
amonitor_action_param_int(
    const amonitor_action_t *action, const char *name, long long *value)
{
    int               rc;
    int64_t           n;
    amon_json_value_t v;

    rc = amonitor_param_find(action, name, &v);
    if (rc != AMONITOR_OK) {
        return rc;
    }

    if (v.type != AMON_JSON_NUMBER || amon_json_int64(&v, &n) != AMON_OK) {
        return AMONITOR_ERR_INVAL;
    }

    *value = (long long) n;

    return AMONITOR_OK;
}


int
amonitor_action_param_bool(
    const amonitor_action_t *action, const char *name, int *value)
{
    int               rc;
    amon_json_value_t v;

    rc = amonitor_param_find(action, name, &v);
    if (rc != AMONITOR_OK) {
        return rc;
    }

    if (v.type != AMON_JSON_TRUE && v.type != AMON_JSON_FALSE) {
        return AMONITOR_ERR_INVAL;
    }

    *value = (v.type == AMON_JSON_TRUE);

    return AMONITOR_OK;
}
