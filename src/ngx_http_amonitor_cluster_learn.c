/*
 * Copyright (C) AMonitor authors
 *
 * amonitor_cluster: the routes other instances announce, learned as
 * targets where this instance allows them, and the ones that name a
 * target of this instance otherwise (the instances' lines differ).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor_cluster.h"


static void ngx_http_amonitor_cluster_differs(ngx_http_amonitor_cluster_t *cl,
    ngx_http_amonitor_upstream_t *u, ngx_str_t *id, ngx_str_t *norm);


/* a route from the cluster: dialed (when leased) if this instance allows */
void
ngx_http_amonitor_cluster_learn(ngx_http_amonitor_cluster_t *cl, ngx_str_t *id,
    ngx_str_t *url, ngx_str_t *origin)
{
    u_char                        norm[AMON_MAX_URL_LEN + 16];
    u_char                        ebuf[NGX_HTTP_AMONITOR_LOG_STR];
    ngx_str_t                     n, e;
    ngx_uint_t                    kind;
    amon_ws_url_t                 wu;
    ngx_http_amonitor_upstream_t *u;

    if (id->len == 0) {
        return;
    }

    n.data = norm;

    if (url->len > AMON_MAX_URL_LEN
        || ngx_http_amonitor_target_url(url->data, url->len, &wu, &n)
            != NGX_OK) {
        return;
    }

    u = ngx_http_amonitor_target_find(cl->worker, id);
    if (u == NULL) {
        u = ngx_http_amonitor_target_find_url(cl->worker, &n);
    }

    if (u != NULL) {
        ngx_http_amonitor_cluster_differs(cl, u, id, &n);
        return;
    }

    /* a dial stays a dial (limits, precedence); a register or a
     * configured target elsewhere is learned like a register */
    kind = (origin->len == 4 && ngx_strncmp(origin->data, "dial", 4) == 0)
        ? NGX_HTTP_AMONITOR_DIALED
        : NGX_HTTP_AMONITOR_REGISTERED;

    if (ngx_http_amonitor_target_learn(cl->worker, id, &wu, &n, kind, 0, &u)
        == NGX_HTTP_AMONITOR_LEARN_OK) {
        ngx_log_error(NGX_LOG_INFO, cl->log, 0,
            "amonitor: learned target \"%V\" at %V from the cluster (%V)",
            &u->id, &u->norm, origin);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, cl->log, 0,
        "amonitor cluster route of \"%V\" at \"%V\" not used here",
        ngx_http_amonitor_log_str(id, &e, ebuf, sizeof(ebuf)), &n);
}


/*
 * A route names a target this worker knows under another URL, or its URL
 * under another id: the instances' amonitor_target lines differ, and an
 * action may reach another SDK than this instance's status names.  Said
 * once per target and worker.
 */
static void
ngx_http_amonitor_cluster_differs(ngx_http_amonitor_cluster_t *cl,
    ngx_http_amonitor_upstream_t *u, ngx_str_t *id, ngx_str_t *norm)
{
    u_char    ebuf[NGX_HTTP_AMONITOR_LOG_STR];
    ngx_str_t e;

    if (u->route_differs
        || (u->id.len == id->len
            && ngx_memcmp(u->id.data, id->data, id->len) == 0
            && u->norm.len == norm->len
            && ngx_memcmp(u->norm.data, norm->data, norm->len) == 0)) {
        return;
    }

    u->route_differs = 1;

    ngx_log_error(NGX_LOG_WARN, cl->log, 0,
        "amonitor: target \"%V\" at %V here, but another instance of the "
        "cluster has \"%V\" at %V: give every instance the same "
        "amonitor_target lines",
        &u->id, &u->norm, ngx_http_amonitor_log_str(id, &e, ebuf, sizeof(ebuf)),
        norm);
}
