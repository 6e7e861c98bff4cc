/*
 * Copyright (C) AMonitor authors
 *
 * The dashboard side: a location with "amonitor_panel on" becomes a
 * WebSocket endpoint: check (token, upgrade request), accept (101), start
 * (the connection, then its messages go to the router).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"


/* a panel: the request that became a WebSocket connection */
typedef struct {
    ngx_http_amonitor_conn_t    wc;
    ngx_http_request_t         *request;
    ngx_http_amonitor_worker_t *worker;
    unsigned                    in_handler : 1;
    unsigned                    lingering : 1;
    unsigned                    finalized : 1;
} ngx_http_amonitor_panel_t;


static ngx_int_t ngx_http_amonitor_panel_check(
    ngx_http_request_t *r, u_char **accept, const char **reason);
static ngx_int_t ngx_http_amonitor_panel_accept(
    ngx_http_request_t *r, u_char *accept, ngx_uint_t *encoding);
static ngx_int_t ngx_http_amonitor_panel_start(ngx_http_request_t *r,
    ngx_http_amonitor_main_conf_t *amcf, ngx_uint_t encoding);
static ngx_int_t ngx_http_amonitor_panel_origin(
    ngx_http_request_t *r, ngx_array_t *allow);
static ngx_int_t ngx_http_amonitor_panel_header_out(
    ngx_http_request_t *r, const char *name, const char *value);
static ngx_table_elt_t *ngx_http_amonitor_panel_header(
    ngx_http_request_t *r, const char *name);
static ngx_int_t ngx_http_amonitor_panel_reject(
    ngx_http_request_t *r, ngx_uint_t status, const char *reason);
static void ngx_http_amonitor_panel_read_handler(ngx_http_request_t *r);
static void ngx_http_amonitor_panel_write_handler(ngx_http_request_t *r);
static void ngx_http_amonitor_panel_message(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t opcode, u_char *data, size_t len);
static void ngx_http_amonitor_panel_on_close(ngx_http_amonitor_conn_t *wc);
static void ngx_http_amonitor_panel_cleanup(void *data);
static void ngx_http_amonitor_panel_linger_handler(ngx_event_t *ev);


ngx_int_t
ngx_http_amonitor_panel_handler(ngx_http_request_t *r)
{
    u_char                        *accept;
    ngx_int_t                      rc, status;
    ngx_uint_t                     encoding;
    const char                    *reason;
    ngx_http_amonitor_main_conf_t *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_amonitor_module);

    if (amcf->worker == NULL || r != r->main) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    accept = NULL;
    reason = NULL;

    status = ngx_http_amonitor_panel_check(r, &accept, &reason);

    if (status == NGX_HTTP_INTERNAL_SERVER_ERROR) {
        return status;
    }

    if (status) {
        return ngx_http_amonitor_panel_reject(r, status, reason);
    }

    rc = ngx_http_amonitor_panel_accept(r, accept, &encoding);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_amonitor_panel_start(r, amcf, encoding);
}


/*
 * The token and the upgrade request (RFC 6455 4.2.1): 0 and the value of
 * Sec-WebSocket-Accept, or the HTTP status that refuses the panel (with
 * the headers that go with it) and why.
 */
static ngx_int_t
ngx_http_amonitor_panel_check(
    ngx_http_request_t *r, u_char **accept, const char **reason)
{
    int                           status;
    ngx_table_elt_t              *h, *key, *version;
    amon_ws_request_t             req;
    ngx_http_amonitor_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_amonitor_module);

    if (alcf->panel_tokens
        && ngx_http_amonitor_rights_auth(r, alcf->panel_tokens) == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
            "amonitor: panel rejected: missing or wrong token");

        if (ngx_http_amonitor_panel_header_out(
                r, "WWW-Authenticate", "Bearer realm=\"amonitor\"")
            != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        *reason = "missing or wrong panel token";
        return NGX_HTTP_UNAUTHORIZED;
    }

    if (r->http_version > NGX_HTTP_VERSION_11) {
        /* HTTP/2 and later have no Upgrade (RFC 8441 is not supported) */
        *reason = "the WebSocket upgrade needs HTTP/1.1";
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
            "amonitor: panel handshake refused: %s", *reason);
        return NGX_HTTP_BAD_REQUEST;
    }

    if (alcf->allow_origin
        && ngx_http_amonitor_panel_origin(r, alcf->allow_origin) != NGX_OK) {
        *reason = "origin not allowed";
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
            "amonitor: panel rejected: origin not allowed by "
            "amonitor_panel_allow_origin");
        return NGX_HTTP_FORBIDDEN;
    }

    key = ngx_http_amonitor_panel_header(r, "Sec-WebSocket-Key");
    version = ngx_http_amonitor_panel_header(r, "Sec-WebSocket-Version");

    ngx_memzero(&req, sizeof(amon_ws_request_t));

    req.method.data = r->method_name.data;
    req.method.len = r->method_name.len;
    req.http_version = r->http_version;

    if (r->headers_in.upgrade) {
        req.upgrade.data = r->headers_in.upgrade->value.data;
        req.upgrade.len = r->headers_in.upgrade->value.len;
    }

    /* nginx 1.22 does not keep a pointer to Connection: look it up */
    h = ngx_http_amonitor_panel_header(r, "Connection");
    if (h) {
        req.connection.data = h->value.data;
        req.connection.len = h->value.len;
    }

    if (key) {
        req.key.data = key->value.data;
        req.key.len = key->value.len;
    }

    if (version) {
        req.version.data = version->value.data;
        req.version.len = version->value.len;
    }

    status = amon_ws_server_check(&req, reason);

    if (status == 0) {
        *accept = ngx_pnalloc(r->pool, AMON_WS_ACCEPT_LEN);
        if (*accept == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (amon_ws_accept(key->value.data, key->value.len, *accept)
            == AMON_OK) {
            return 0;
        }

        *reason = "invalid Sec-WebSocket-Key";
        return NGX_HTTP_BAD_REQUEST;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
        "amonitor: panel handshake refused: %s", *reason);

    if ((status == 426
            && ngx_http_amonitor_panel_header_out(
                   r, "Sec-WebSocket-Version", "13")
                != NGX_OK)
        || (status == NGX_HTTP_NOT_ALLOWED
            && ngx_http_amonitor_panel_header_out(r, "Allow", "GET")
                != NGX_OK)) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return status;
}


/*
 * The 101 response, flushed: frames must not overtake it.  The panel's
 * encoding: subprotocol amonitor.v1.json or amonitor.v1.proto, else
 * ?encoding=json|protobuf, else 0 (each message as its sender wrote it).
 */
static ngx_int_t
ngx_http_amonitor_panel_accept(
    ngx_http_request_t *r, u_char *accept, ngx_uint_t *encoding)
{
    ngx_int_t        rc, i;
    ngx_str_t        arg;
    ngx_table_elt_t *h, *proto;

    static const char *protos[] = {
        "amonitor.v1", "amonitor.v1.json", "amonitor.v1.proto", NULL};

    *encoding = 0;

    if (ngx_http_arg(r, (u_char *) "encoding", 8, &arg) == NGX_OK) {
        if (arg.len == 4 && ngx_strncmp(arg.data, "json", 4) == 0) {
            *encoding = AMON_WS_OP_TEXT;

        } else if (arg.len == 8 && ngx_strncmp(arg.data, "protobuf", 8) == 0) {
            *encoding = AMON_WS_OP_BINARY;
        }
    }

    r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
    ngx_str_set(&r->headers_out.status_line, "101 Switching Protocols");
    r->headers_out.content_length_n = -1;
    r->keepalive = 0;

    if (ngx_http_amonitor_panel_header_out(r, "Upgrade", "websocket")
        != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Sec-WebSocket-Accept");
    h->value.data = accept;
    h->value.len = AMON_WS_ACCEPT_LEN;

    proto = ngx_http_amonitor_panel_header(r, "Sec-WebSocket-Protocol");

    i = proto ? amon_ws_select_subprotocol(
            proto->value.data, proto->value.len, protos)
              : -1;

    if (i >= 0) {
        if (ngx_http_amonitor_panel_header_out(
                r, "Sec-WebSocket-Protocol", protos[i])
            != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (i == 1) {
            *encoding = AMON_WS_OP_TEXT;

        } else if (i == 2) {
            *encoding = AMON_WS_OP_BINARY;
        }
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_special(r, NGX_HTTP_FLUSH);

    if (rc == NGX_ERROR || r->out) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The panel after the 101: its connection, its place among the worker's
 * panels, the request's handlers, and frames that came with the handshake.
 */
static ngx_int_t
ngx_http_amonitor_panel_start(ngx_http_request_t *r,
    ngx_http_amonitor_main_conf_t *amcf, ngx_uint_t encoding)
{
    ngx_connection_t             *c;
    ngx_http_cleanup_t           *cln;
    ngx_http_amonitor_panel_t    *p;
    ngx_http_amonitor_worker_t   *w;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_amonitor_loc_conf_t *alcf;

    c = r->connection;
    w = amcf->worker;

    p = ngx_pcalloc(r->pool, sizeof(ngx_http_amonitor_panel_t));
    if (p == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    p->request = r;
    p->worker = w;
    p->wc.id = ++w->panel_seq;
    p->wc.data = p;
    p->wc.on_message = ngx_http_amonitor_panel_message;
    p->wc.on_close = ngx_http_amonitor_panel_on_close;
    p->wc.log_level = NGX_LOG_INFO;

    if (ngx_http_amonitor_conn_init(&p->wc, c, &w->frames, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    p->wc.encoding = encoding;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_amonitor_module);
    if (alcf->panel_tokens) {
        /* checked before the upgrade; the rights go with the panel */
        p->wc.rights = ngx_http_amonitor_rights_auth(r, alcf->panel_tokens);
    }

    cln->handler = ngx_http_amonitor_panel_cleanup;
    cln->data = p;

    ngx_http_set_ctx(r, p, ngx_http_amonitor_module);

    ngx_queue_insert_tail(&w->panels, &p->wc.queue);
    (void) ngx_atomic_fetch_add(&w->counters->panels, 1);

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_amonitor_module);

    if (alcf->panel_snapshot) {
        /* what is known now comes before any live frame */
        ngx_http_amonitor_router_panel_snapshot(w, &p->wc);
    }

    ngx_log_debug1(
        NGX_LOG_DEBUG_HTTP, c->log, 0, "amonitor panel #%ui open", p->wc.id);

    c->log->action = "relaying amonitor panel messages";

    /* small acks must not wait for the peer's delayed ACK (Nagle) */
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->tcp_nodelay && ngx_tcp_nodelay(c) != NGX_OK) {
        return NGX_ERROR;
    }
    c->idle = 1;

    r->read_event_handler = ngx_http_amonitor_panel_read_handler;
    r->write_event_handler = ngx_http_amonitor_panel_write_handler;

    r->main->count++;

    ngx_http_amonitor_conn_start_ping(&p->wc, amcf->ping);

    p->in_handler = 1;

    if (r->header_in->last > r->header_in->pos) {
        /* frames that came with the handshake */
        if (ngx_http_amonitor_conn_feed(&p->wc, r->header_in->pos,
                r->header_in->last - r->header_in->pos)
            != NGX_OK) {
            p->in_handler = 0;
            return NGX_DONE;
        }

        r->header_in->pos = r->header_in->last;
    }

    p->in_handler = 0;

    if (c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);

    } else if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_amonitor_panel_on_close(&p->wc);
    }

    return NGX_DONE;
}


/*
 * A browser's Origin against amonitor_panel_allow_origin: an exact origin,
 * a wildcard pattern (scheme, "://", "*.domain") for its subdomains, or
 * "*".  No Origin: allowed.
 */
static ngx_int_t
ngx_http_amonitor_panel_origin(ngx_http_request_t *r, ngx_array_t *allow)
{
    u_char          *host;
    size_t           plen, hlen;
    ngx_str_t       *a, o;
    ngx_uint_t       i;
    ngx_table_elt_t *h;

    h = ngx_http_amonitor_panel_header(r, "Origin");
    if (h == NULL) {
        return NGX_OK;
    }

    o = h->value;
    a = allow->elts;

    for (i = 0; i < allow->nelts; i++) {

        if (a[i].len == 1 && a[i].data[0] == '*') {
            return NGX_OK;
        }

        if (a[i].len == o.len
            && ngx_strncasecmp(a[i].data, o.data, o.len) == 0) {
            return NGX_OK;
        }

        /* a wildcard: the same scheme, a host ending in .domain */
        host = ngx_strlcasestrn(
            a[i].data, a[i].data + a[i].len, (u_char *) "://*.", 5 - 1);
        if (host == NULL) {
            continue;
        }

        plen = host - a[i].data + 3; /* "scheme://" */
        hlen = a[i].len - plen - 1; /* ".domain" */

        if (o.len > plen + hlen && ngx_strncasecmp(o.data, a[i].data, plen) == 0
            && ngx_strncasecmp(
                   o.data + o.len - hlen, a[i].data + plen + 1, hlen)
                == 0) {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_amonitor_panel_header_out(
    ngx_http_request_t *r, const char *name, const char *value)
{
    ngx_table_elt_t *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);

    return NGX_OK;
}


static ngx_table_elt_t *
ngx_http_amonitor_panel_header(ngx_http_request_t *r, const char *name)
{
    size_t           len;
    ngx_uint_t       i;
    ngx_list_part_t *part;
    ngx_table_elt_t *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0) {
            return &h[i];
        }
    }
}


static ngx_int_t
ngx_http_amonitor_panel_reject(
    ngx_http_request_t *r, ngx_uint_t status, const char *reason)
{
    size_t      len;
    ngx_int_t   rc;
    ngx_buf_t  *b;
    ngx_chain_t out;

    len = ngx_strlen(reason);

    b = ngx_create_temp_buf(r->pool, len + 1);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, reason, len);
    *b->last++ = '\n';
    b->last_buf = 1;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len + 1;
    ngx_str_set(&r->headers_out.content_type, "text/plain");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->keepalive = 0;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static void
ngx_http_amonitor_panel_read_handler(ngx_http_request_t *r)
{
    ngx_http_amonitor_panel_t *p;

    p = ngx_http_get_module_ctx(r, ngx_http_amonitor_module);

    if (p == NULL || p->wc.closed) {
        return;
    }

    p->in_handler = 1;
    ngx_http_amonitor_conn_read(&p->wc);
    p->in_handler = 0;
}


static void
ngx_http_amonitor_panel_write_handler(ngx_http_request_t *r)
{
    ngx_http_amonitor_panel_t *p;

    p = ngx_http_get_module_ctx(r, ngx_http_amonitor_module);

    if (p == NULL || p->wc.closed) {
        return;
    }

    p->in_handler = 1;

    if (ngx_http_amonitor_conn_flush(&p->wc) != NGX_OK
        || (p->lingering && p->wc.q_count == 0)) {
        ngx_http_amonitor_panel_on_close(&p->wc);
    }

    p->in_handler = 0;
}


static void
ngx_http_amonitor_panel_message(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t opcode, u_char *data, size_t len)
{
    ngx_http_amonitor_panel_t *p = wc->data;

    ngx_http_amonitor_router_panel_message(p->worker, wc, opcode, data, len);
}


/*
 * End the panel.  Inside the request's own handlers nginx runs the posted
 * termination afterwards; from elsewhere (timers, fan-out) we run it.
 */
static void
ngx_http_amonitor_panel_on_close(ngx_http_amonitor_conn_t *wc)
{
    ngx_http_amonitor_panel_t *p = wc->data;

    ngx_connection_t   *c;
    ngx_http_request_t *r;

    if (p->finalized) {
        return;
    }

    r = p->request;
    c = r->connection;

    if (!p->lingering && wc->close_sent && wc->q_count && !c->error
        && !c->close) {
        /*
         * Our close frame is still queued: keep the socket a little, so
         * that a peer that reads again learns why (1008, 1009, ...).
         */
        p->lingering = 1;

        /* for the worker it is gone already */
        ngx_queue_remove(&wc->queue);
        (void) ngx_atomic_fetch_add(&p->worker->counters->panels, -1);

        if (wc->ping.timer_set) {
            ngx_del_timer(&wc->ping);
        }

        wc->ping.handler = ngx_http_amonitor_panel_linger_handler;
        ngx_add_timer(&wc->ping, NGX_HTTP_AMONITOR_CLOSE_TIMEOUT);
        return;
    }

    p->finalized = 1;

    ngx_http_finalize_request(r, NGX_HTTP_CLOSE);

    if (!p->in_handler) {
        ngx_http_run_posted_requests(c);
    }
}


static void
ngx_http_amonitor_panel_linger_handler(ngx_event_t *ev)
{
    ngx_http_amonitor_conn_t *wc = ev->data;

    ngx_http_amonitor_panel_on_close(wc);
}


static void
ngx_http_amonitor_panel_cleanup(void *data)
{
    ngx_http_amonitor_panel_t *p = data;

    if (p->wc.closed) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, p->wc.connection->log, 0,
        "amonitor panel #%ui closed", p->wc.id);

    if (!p->wc.close_sent && !p->wc.connection->error) {
        /*
         * worker shutdown or reload: a code of its own (not the 1001 of a
         * ping timeout), so that a panel knows to reconnect at once
         */
        ngx_http_amonitor_conn_close_frame(&p->wc, AMON_WS_CLOSE_RESTART,
            "agent reloading or stopping: reconnect");
    }

    p->finalized = 1;

    if (!p->lingering) {
        ngx_queue_remove(&p->wc.queue);
        (void) ngx_atomic_fetch_add(&p->worker->counters->panels, -1);
    }

    ngx_http_amonitor_router_panel_gone(p->worker, &p->wc);
    ngx_http_amonitor_conn_free(&p->wc);
}


void
ngx_http_amonitor_panel_close_all(ngx_http_amonitor_worker_t *w)
{
    ngx_queue_t              *q;
    ngx_http_amonitor_conn_t *wc;

    while (!ngx_queue_empty(&w->panels)) {
        q = ngx_queue_head(&w->panels);
        wc = ngx_queue_data(q, ngx_http_amonitor_conn_t, queue);
        ngx_http_amonitor_panel_cleanup(wc->data);
    }
}
