/*
 * Copyright (C) AMonitor authors
 *
 * "amonitor_status": a JSON snapshot of the zone's counters and of this
 * worker's targets, for monitoring the monitor.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"
#include "ngx_http_amonitor_cluster.h"


static const char *ngx_http_amonitor_states[] = {
    "idle", "connecting", "handshake", "up", "backoff"};


ngx_int_t
ngx_http_amonitor_status_handler(ngx_http_request_t *r)
{
    size_t                         len;
    ngx_int_t                      rc;
    ngx_buf_t                     *b;
    ngx_uint_t                     remote, leases, held;
    ngx_queue_t                   *q;
    ngx_http_amonitor_worker_t    *w;
    ngx_http_amonitor_counters_t  *n, sum;
    ngx_http_amonitor_upstream_t  *u;
    ngx_http_amonitor_main_conf_t *amcf;

    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return ngx_http_amonitor_not_allowed(r);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_amonitor_module);
    w = amcf->worker;

    if (w == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ngx_http_amonitor_store_counters_sum(amcf->shm_zone, &sum);
    n = &sum;

    len = 512 + 14 * NGX_ATOMIC_T_LEN + 2 * NGX_INT_T_LEN;

    for (q = ngx_queue_head(&w->upstreams);
         q != ngx_queue_sentinel(&w->upstreams); q = ngx_queue_next(q)) {
        u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, queue);
        len += 128 + 6 * u->id.len + 6 * u->norm.len + NGX_INT_T_LEN;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last,
        "{\"version\":\"" NGX_HTTP_AMONITOR_VERSION
        "\",\"pid\":%P,\"panels\":%uA,\"upstreams_open\":%uA,"
        "\"forwarded\":%uA,\"dropped\":%uA,"
        "\"actions\":%uA,\"duplicates\":%uA,\"acks\":%uA,"
        "\"errors\":%uA,\"ack_timeouts\":%uA,"
        "\"evictions\":%uA,\"invalid\":%uA,\"forbidden\":%uA,"
        "\"oversize\":%uA,",
        ngx_pid, n->panels, n->upstreams_open, n->forwarded, n->dropped,
        n->actions, n->duplicates, n->acks, n->errors, n->ack_timeouts,
        n->evictions, n->invalid, n->forbidden, n->oversize);

    if (w->cluster) {
        /* amonitor_cluster: this worker's lease records, those it holds */
        leases = ngx_http_amonitor_cluster_leases(w, &held);
        b->last = ngx_sprintf(b->last,
            "\"cluster\":{\"leases\":%ui,\"held\":%ui},", leases, held);
    }

    b->last = ngx_sprintf(b->last, "\"targets\":[");

    for (q = ngx_queue_head(&w->upstreams);
         q != ngx_queue_sentinel(&w->upstreams); q = ngx_queue_next(q)) {
        u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, queue);

        if (q != ngx_queue_head(&w->upstreams)) {
            *b->last++ = ',';
        }

        b->last = ngx_sprintf(b->last, "{\"id\":\"");
        b->last = (u_char *) ngx_escape_json(b->last, u->id.data, u->id.len);
        b->last = ngx_sprintf(b->last, "\",\"url\":\"");
        b->last =
            (u_char *) ngx_escape_json(b->last, u->norm.data, u->norm.len);
        /*
         * amonitor_cluster: a target another worker (here or in another
         * instance) has open is up for this agent too: panels see it up
         * and its actions go there
         */
        remote = (u->state != NGX_HTTP_AMONITOR_UP_OPEN && u->remote_up);

        b->last = ngx_sprintf(b->last,
            "\",\"state\":\"%s\",\"remote\":%s,\"dynamic\":%s,"
            "\"failures\":%ui}",
            remote ? "up" : ngx_http_amonitor_states[u->state],
            remote ? "true" : "false", u->dynamic ? "true" : "false",
            u->failures);
    }

    b->last = ngx_sprintf(b->last, "]}\n");

    return ngx_http_amonitor_status_send(r, b, "application/json");
}


/*
 * A method other than GET and HEAD (status, metrics, dashboard): 405 with
 * the Allow header RFC 9110 (15.5.6) asks for
 */
ngx_int_t
ngx_http_amonitor_not_allowed(ngx_http_request_t *r)
{
    ngx_table_elt_t *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    ngx_str_set(&h->value, "GET, HEAD");

    return NGX_HTTP_NOT_ALLOWED;
}


/* a document built in one buffer, 200 with its type (status, metrics) */
ngx_int_t
ngx_http_amonitor_status_send(
    ngx_http_request_t *r, ngx_buf_t *b, const char *type)
{
    ngx_int_t   rc;
    ngx_chain_t out;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * A location's content handler is set by one of amonitor_panel,
 * amonitor_status, amonitor_metrics and amonitor_dashboard: a second one
 * in the same location would silently leave the first without effect.
 */
char *
ngx_http_amonitor_conf_handler(ngx_conf_t *cf, ngx_http_handler_pt handler)
{
    ngx_str_t                *value;
    ngx_uint_t                i;
    ngx_http_core_loc_conf_t *clcf;

    static struct {
        ngx_http_handler_pt handler;
        const char         *name;
    } known[] = {{ngx_http_amonitor_panel_handler, "amonitor_panel"},
        {ngx_http_amonitor_status_handler, "amonitor_status"},
        {ngx_http_amonitor_metrics_handler, "amonitor_metrics"},
        {ngx_http_amonitor_dashboard_handler, "amonitor_dashboard"}};

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (clcf->handler == known[i].handler && handler != known[i].handler) {
            value = cf->args->elts;

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                "\"%V\" and \"%s\" cannot be in the same location: each "
                "answers the location's requests; give each its own location",
                &value[0], known[i].name);

            return NGX_CONF_ERROR;
        }
    }

    clcf->handler = handler;

    return NGX_CONF_OK;
}
