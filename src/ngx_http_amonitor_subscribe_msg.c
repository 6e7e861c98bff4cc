/*
 * Copyright (C) AMonitor authors
 *
 * A panel's set of targets as it gives it: the handshake's ?targets=
 * list, and the subscribe message that changes the set at run time (JSON
 * or protobuf), answered with "subscribed" and the resulting set, then
 * the snapshot of that set; and the budget that paces a panel's sets
 * and their snapshots.  Called by the panel's handshake and the router;
 * the sets themselves are subscribe.c's.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_subscribe.h"
#include "amon_json.h"


/* what a scan of the payload found */
typedef struct {
    amon_json_value_t targets;
    ngx_uint_t        found; /* 2: given twice */
} ngx_http_amonitor_sub_scan_t;


static ngx_int_t ngx_http_amonitor_subscribe_parse(
    ngx_http_amonitor_worker_t *w, amon_envelope_t *env, ngx_str_t *list,
    ngx_uint_t *n, u_char *buf);
static int  ngx_http_amonitor_subscribe_member(void *data, unsigned level,
     const amon_json_value_t *key, const amon_json_value_t *value);
static void ngx_http_amonitor_subscribe_answer(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_about_t *about);


/* ?targets=a,b,web-* as a list of ngx_str_t, unescaped */
ngx_int_t
ngx_http_amonitor_subscribe_split(
    ngx_pool_t *pool, ngx_str_t *arg, ngx_array_t **list)
{
    u_char    *p, *src, *start, *last;
    ngx_str_t *e;

    *list = ngx_array_create(pool, 4, sizeof(ngx_str_t));
    p = ngx_pnalloc(pool, arg->len + 1);

    if (*list == NULL || p == NULL) {
        return NGX_ERROR;
    }

    src = arg->data;
    start = p;
    ngx_unescape_uri(&p, &src, arg->len, 0);
    last = p;

    if (last == start) {
        /* "targets=": no target at all, only the panel's own answers */
        return NGX_OK;
    }

    for (p = start; /* void */; p++) {
        if (p < last && *p != ',') {
            continue;
        }

        e = ngx_array_push(*list);
        if (e == NULL) {
            return NGX_ERROR;
        }

        e->data = start;
        e->len = p - start;
        start = p + 1;

        if (p == last) {
            return NGX_OK;
        }
    }
}


/*
 * 0 when the panel may make a set of this cost now, else how many ms it
 * must wait for its budget to hold it (the cost is taken when the set
 * is made).  A panel whose last snapshots left its budget below 0 waits
 * even for a set that costs nothing.
 */
ngx_msec_t
ngx_http_amonitor_subscribe_wait(ngx_http_amonitor_conn_t *wc, ngx_uint_t cost)
{
    ngx_msec_t               elapsed;
    ngx_http_amonitor_sub_t *s;

    s = wc->sub;

    if (s == NULL) {
        return 0;
    }

    elapsed = ngx_current_msec - s->credit_time;
    s->credit_time = ngx_current_msec;

    if (elapsed >= 1000 * (ngx_msec_t) NGX_HTTP_AMONITOR_SUB_MATCH_BURST
            / NGX_HTTP_AMONITOR_SUB_MATCH_RATE) {
        s->credit = NGX_HTTP_AMONITOR_SUB_MATCH_BURST;

    } else {
        s->credit +=
            (ngx_int_t) elapsed * NGX_HTTP_AMONITOR_SUB_MATCH_RATE / 1000;
        s->credit = ngx_min(s->credit, NGX_HTTP_AMONITOR_SUB_MATCH_BURST);
    }

    if (s->credit >= (ngx_int_t) cost) {
        return 0;
    }

    return (ngx_msec_t) ((ngx_int_t) cost - s->credit) * 1000
        / NGX_HTTP_AMONITOR_SUB_MATCH_RATE
        + 1;
}


/* what a subscribe's snapshot cost, taken from the panel's budget */
void
ngx_http_amonitor_subscribe_charge(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t cost)
{
    ngx_http_amonitor_sub_t *s;

    s = wc->sub;

    if (s == NULL) {
        return;
    }

    s->credit -= (ngx_int_t) ngx_min(cost, NGX_HTTP_AMONITOR_SUB_MATCH_BURST);
}


/*
 * A subscribe message: {"targets":[...]} replaces the panel's set; the
 * answer is "subscribed" with the new set.  NGX_OK when it changed.
 */
ngx_int_t
ngx_http_amonitor_subscribe_message(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, amon_envelope_t *env,
    ngx_http_amonitor_about_t *about)
{
    u_char     *buf, text[128];
    ngx_int_t   rc;
    ngx_uint_t  n, cost;
    ngx_msec_t  wait;
    ngx_str_t  *list;
    const char *reason;

    buf = ngx_alloc(env->payload.len + 1, wc->connection->log);
    list = ngx_alloc((NGX_HTTP_AMONITOR_SUB_MAX + 1) * sizeof(ngx_str_t),
        wc->connection->log);

    if (buf == NULL || list == NULL) {
        rc = NGX_ERROR;
        goto done;
    }

    rc = ngx_http_amonitor_subscribe_parse(w, env, list, &n, buf);

    if (rc != NGX_OK) {
        ngx_http_amonitor_reply_error(w, wc, about, "INVALID_MESSAGE",
            rc == NGX_ABORT
                ? "payload.targets is given twice: JSON parsers differ on "
                  "which copy counts"
                : "a subscribe needs payload.targets, an array of strings",
            1);
        goto done;
    }

    reason = ngx_http_amonitor_subscribe_check(w, list, n, &cost);
    wait = reason ? 0 : ngx_http_amonitor_subscribe_wait(wc, cost);

    if (wait) {
        ngx_snprintf(text, sizeof(text),
            "subscribing too often for the number of targets and "
            "patterns: try again in %M ms%Z",
            wait);
        ngx_log_error(NGX_LOG_INFO, wc->connection->log, 0,
            "amonitor: subscribe of panel #%ui refused: %s", wc->id, text);
        ngx_http_amonitor_reply_error(
            w, wc, about, "RATE_LIMITED", (char *) text, 1);
        rc = NGX_DECLINED;
        goto done;
    }

    if (reason) {
        ngx_log_error(NGX_LOG_INFO, wc->connection->log, 0,
            "amonitor: subscribe of panel #%ui refused: %s", wc->id, reason);
        ngx_http_amonitor_reply_error(
            w, wc, about, "INVALID_SUBSCRIPTION", reason, 1);
        rc = NGX_DECLINED;
        goto done;
    }

    rc = ngx_http_amonitor_subscribe_set(w, wc, list, n);

    if (rc == NGX_OK) {
        ngx_http_amonitor_subscribe_answer(w, wc, about);
    }

done:

    if (buf) {
        ngx_free(buf);
    }

    if (list) {
        ngx_free(list);
    }

    return rc;
}


/* payload.targets, unescaped into "buf"; more than the maximum is kept */
static ngx_int_t
ngx_http_amonitor_subscribe_parse(ngx_http_amonitor_worker_t *w,
    amon_envelope_t *env, ngx_str_t *list, ngx_uint_t *n, u_char *buf)
{
    size_t                       pos, len;
    amon_str_t                   none = amon_null_string;
    amon_json_value_t            root, item;
    ngx_http_amonitor_sub_scan_t sc;

    ngx_memzero(&sc, sizeof(sc));
    *n = 0;

    if (env->payload.len == 0
        || amon_json_scan(env->payload.data, env->payload.len,
               AMON_MAX_JSON_DEPTH, none, ngx_http_amonitor_subscribe_member,
               &sc, &root)
            != AMON_OK
        || root.type != AMON_JSON_OBJECT || !sc.found
        || sc.targets.type != AMON_JSON_ARRAY) {
        return NGX_DECLINED;
    }

    if (sc.found > 1) {
        return NGX_ABORT;
    }

    pos = 0;

    for (;;) {
        switch (amon_json_array_string(&sc.targets, &pos, &item)) {
        case AMON_OK: break;
        case AMON_AGAIN: return NGX_OK;
        default: return NGX_DECLINED;
        }

        if (*n > NGX_HTTP_AMONITOR_SUB_MAX) {
            /* one more than allowed is enough for the check to refuse */
            continue;
        }

        if (amon_json_unescape(&item, buf, item.len, &len) != AMON_OK) {
            return NGX_DECLINED;
        }

        list[*n].data = buf;
        list[*n].len = len;
        (*n)++;
        buf += len;
    }
}


static int
ngx_http_amonitor_subscribe_member(void *data, unsigned level,
    const amon_json_value_t *key, const amon_json_value_t *value)
{
    ngx_http_amonitor_sub_scan_t *sc = data;

    if (level == 0 && amon_json_str_eq(key, "targets", 7)) {
        if (sc->found++ == 0) {
            sc->targets = *value;
        }
    }

    return AMON_OK;
}


static void
ngx_http_amonitor_subscribe_answer(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_about_t *about)
{
    int                      rc;
    ngx_uint_t               i;
    amon_str_t              *targets;
    amon_envelope_out_t      head;
    ngx_http_amonitor_sub_t *s;

    s = wc->sub;

    targets =
        ngx_alloc((s->nentries + 1) * sizeof(amon_str_t), wc->connection->log);
    if (targets == NULL) {
        return;
    }

    for (i = 0; i < s->nentries; i++) {
        targets[i].data = s->entries[i].data;
        targets[i].len = s->entries[i].len;
    }

    ngx_memzero(&head, sizeof(amon_envelope_out_t));

    head.msg_id.data = about->msg_id.len ? about->msg_id.data : NULL;
    head.msg_id.len = about->msg_id.len;
    head.trace_id.data = about->trace_id.len ? about->trace_id.data : NULL;
    head.trace_id.len = about->trace_id.len;
    head.timestamp = ngx_http_amonitor_reply_now();

    w->scratch.len = 0;

    rc = amon_envelope_build_subscribed(&w->scratch, w->amcf->max_message,
        &w->allocator, &head, targets, s->nentries, about->binary);

    ngx_free(targets);

    if (rc == AMON_OK) {
        ngx_http_amonitor_conn_answer(wc,
            about->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT,
            w->scratch.data, w->scratch.len);
    }
}
