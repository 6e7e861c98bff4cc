/*
 * Copyright (C) AMonitor authors
 *
 * Targets of this worker: finding one by id or by URL, and learning a new
 * one (an action's payload.target_url, an SDK's register message) in one
 * place: allow check, cap, dial, then the shared registry through the
 * store, so that the other workers dial it too.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"


ngx_http_amonitor_upstream_t *
ngx_http_amonitor_target_find(ngx_http_amonitor_worker_t *w, ngx_str_t *id)
{
    ngx_queue_t                  *q;
    ngx_http_amonitor_upstream_t *u;

    for (q = ngx_queue_head(&w->upstreams);
         q != ngx_queue_sentinel(&w->upstreams); q = ngx_queue_next(q)) {
        u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, queue);

        if (u->id.len == id->len
            && ngx_strncmp(u->id.data, id->data, id->len) == 0) {
            return u;
        }
    }

    return NULL;
}


ngx_http_amonitor_upstream_t *
ngx_http_amonitor_target_find_url(
    ngx_http_amonitor_worker_t *w, ngx_str_t *norm)
{
    ngx_queue_t                  *q;
    ngx_http_amonitor_upstream_t *u;

    for (q = ngx_queue_head(&w->upstreams);
         q != ngx_queue_sentinel(&w->upstreams); q = ngx_queue_next(q)) {
        u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, queue);

        if (u->norm.len == norm->len
            && ngx_strncmp(u->norm.data, norm->data, norm->len) == 0) {
            return u;
        }
    }

    return NULL;
}


/*
 * Parse a ws:// URL and normalise it into "norm" (whose data points to a
 * buffer of at least AMON_MAX_URL_LEN + 16 bytes).
 */
ngx_int_t
ngx_http_amonitor_target_url(
    u_char *data, size_t len, amon_ws_url_t *wu, ngx_str_t *norm)
{
    if (amon_ws_url_parse(data, len, wu) != AMON_OK) {
        return NGX_ERROR;
    }

    norm->len = amon_ws_url_normalize(wu, norm->data, AMON_MAX_URL_LEN + 16);

    return NGX_OK;
}


/*
 * Learn a target the worker does not know yet (the caller looked): it
 * must be allowed by amonitor_allow_url, the cap must leave room, and the
 * host must be an IP address (a worker never does blocking DNS).  "id"
 * empty: the target is named by its URL.
 */
ngx_http_amonitor_learn_e
ngx_http_amonitor_target_learn(ngx_http_amonitor_worker_t *w, ngx_str_t *id,
    amon_ws_url_t *wu, ngx_str_t *norm, ngx_http_amonitor_upstream_t **up)
{
    size_t                        i;
    ngx_http_amonitor_upstream_t *u;

    /* a target's name shows in logs and panels: no control characters */
    for (i = 0; i < id->len; i++) {
        if (id->data[i] < 0x20 || id->data[i] == 0x7f) {
            return NGX_HTTP_AMONITOR_LEARN_BAD_ID;
        }
    }

    if (!ngx_http_amonitor_target_allowed(w, wu)) {
        return NGX_HTTP_AMONITOR_LEARN_NOT_ALLOWED;
    }

    if (w->ndynamic >= NGX_HTTP_AMONITOR_MAX_DYNAMIC) {
        return NGX_HTTP_AMONITOR_LEARN_FULL;
    }

    u = w->dial(w, id->len ? id : norm, wu);
    if (u == NULL) {
        return NGX_HTTP_AMONITOR_LEARN_NO_ADDR;
    }

    if (w->store->learn(w->store, &u->id, norm) != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, w->cycle->log, 0,
            "amonitor: registry of learned targets is "
            "full, \"%V\" stays local to this worker",
            &u->id);
    }

    *up = u;

    return NGX_HTTP_AMONITOR_LEARN_OK;
}


/*
 * The target an action names: a known target_id wins, else a known URL,
 * else an allowed URL, learned and dialed now when "dial" is set.  NGX_OK
 * with *up (NULL only without "dial": allowed, not known yet), or
 * NGX_DECLINED with the error code and message to answer.
 */
ngx_int_t
ngx_http_amonitor_target_resolve(ngx_http_amonitor_worker_t *w, ngx_str_t *id,
    ngx_str_t *url, ngx_uint_t dial, ngx_http_amonitor_upstream_t **up,
    const char **code, const char **message)
{
    u_char        norm[AMON_MAX_URL_LEN + 16];
    ngx_str_t     n;
    amon_ws_url_t wu;

    *up = id->len ? ngx_http_amonitor_target_find(w, id) : NULL;

    if (*up) {
        return NGX_OK;
    }

    if (url->len == 0) {
        *code = "UNKNOWN_TARGET";
        *message = "no such target";
        return NGX_DECLINED;
    }

    n.data = norm;

    if (ngx_http_amonitor_target_url(url->data, url->len, &wu, &n) != NGX_OK
        || wu.tls) {
        *code = "INVALID_MESSAGE";
        *message = "payload.target_url is not a ws:// URL";
        return NGX_DECLINED;
    }

    *up = ngx_http_amonitor_target_find_url(w, &n);

    if (*up || (!dial && ngx_http_amonitor_target_allowed(w, &wu))) {
        return NGX_OK;
    }

    switch (dial ? ngx_http_amonitor_target_learn(w, id, &wu, &n, up)
                 : NGX_HTTP_AMONITOR_LEARN_NOT_ALLOWED) {

    case NGX_HTTP_AMONITOR_LEARN_OK:
        /* amonitor_cluster: a shared route */
        ngx_http_amonitor_cluster_route(w, &(*up)->id, &n, "dial");
        return NGX_OK;

    case NGX_HTTP_AMONITOR_LEARN_NOT_ALLOWED:
        *code = "TARGET_URL_NOT_ALLOWED";
        *message = "payload.target_url is not allowed by amonitor_allow_url";
        return NGX_DECLINED;

    case NGX_HTTP_AMONITOR_LEARN_FULL:
        *code = "TARGET_UNAVAILABLE";
        *message = "too many learned targets";
        return NGX_DECLINED;

    case NGX_HTTP_AMONITOR_LEARN_BAD_ID:
        *code = "INVALID_MESSAGE";
        *message = "target_id has control characters";
        return NGX_DECLINED;

    default:
        *code = "TARGET_UNAVAILABLE";
        *message = "cannot dial payload.target_url (an IP address is needed)";
        return NGX_DECLINED;
    }
}


/* an action is a reason to try now rather than after the backoff delay */
void
ngx_http_amonitor_target_kick(ngx_http_amonitor_upstream_t *u)
{
    if (u->state == NGX_HTTP_AMONITOR_UP_BACKOFF) {
        u->worker->kick(u);
    }
}


/* does an amonitor_allow_url pattern allow dialing this URL? */
ngx_uint_t
ngx_http_amonitor_target_allowed(
    ngx_http_amonitor_worker_t *w, amon_ws_url_t *u)
{
    ngx_uint_t                     i;
    ngx_http_amonitor_allow_t     *a;
    ngx_http_amonitor_main_conf_t *amcf;

    amcf = w->amcf;

    if (u->tls) {
        return 0;
    }

    a = amcf->allow.elts;

    for (i = 0; i < amcf->allow.nelts; i++) {

        if (a[i].host.len != u->host.len
            || ngx_strncasecmp(
                   a[i].host.data, (u_char *) u->host.data, u->host.len)
                != 0) {
            continue;
        }

        if (a[i].port && a[i].port != u->port) {
            continue;
        }

        if (a[i].path.len
            && (a[i].path.len != u->path.len
                || ngx_strncmp(a[i].path.data, u->path.data, u->path.len)
                    != 0)) {
            continue;
        }

        return 1;
    }

    return 0;
}
