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
#include "ngx_http_amonitor_subscribe.h"


static ngx_table_elt_t *ngx_http_amonitor_panel_upgrade(
    ngx_http_request_t *r, amon_ws_request_t *req);
static ngx_int_t ngx_http_amonitor_panel_check(ngx_http_request_t *r,
    u_char **accept, ngx_http_amonitor_rights_t **rights, const char **reason);
static ngx_int_t ngx_http_amonitor_panel_accept(
    ngx_http_request_t *r, u_char *accept, ngx_uint_t *encoding);
static ngx_int_t ngx_http_amonitor_panel_targets(ngx_http_request_t *r,
    ngx_http_amonitor_worker_t *w, ngx_array_t **list, const char **reason);
static ngx_int_t ngx_http_amonitor_panel_origin(
    ngx_http_request_t *r, ngx_array_t *allow);
static ngx_int_t ngx_http_amonitor_panel_header_out(
    ngx_http_request_t *r, const char *name, const char *value);
static ngx_uint_t ngx_http_amonitor_panel_duplicate(
    ngx_http_request_t *r, const char *name);
static ngx_table_elt_t *ngx_http_amonitor_panel_header(
    ngx_http_request_t *r, const char *name, ngx_table_elt_t *after);
static ngx_int_t ngx_http_amonitor_panel_reject(
    ngx_http_request_t *r, ngx_uint_t status, const char *reason);


ngx_int_t
ngx_http_amonitor_panel_handler(ngx_http_request_t *r)
{
    u_char                        *accept;
    ngx_int_t                      rc, status;
    ngx_uint_t                     body, encoding;
    const char                    *reason;
    ngx_array_t                   *targets;
    ngx_http_amonitor_rights_t    *rights;
    ngx_http_amonitor_main_conf_t *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_amonitor_module);
    targets = NULL;

    if (amcf->worker == NULL || r != r->main) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    /*
     * Before the discard: it counts content_length_n down as it reads.
     * Another method is answered 405 by the checks below, body or not.
     */
    body = (r->method == NGX_HTTP_GET
        && (r->headers_in.content_length_n > 0 || r->headers_in.chunked));

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (body) {
        /*
         * What of the body comes after the header would be read as
         * WebSocket frames once the connection is the panel's.
         */
        reason = "the WebSocket upgrade request must not have a body";
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
            "amonitor: panel handshake refused: %s", reason);
        return ngx_http_amonitor_panel_reject(r, NGX_HTTP_BAD_REQUEST, reason);
    }

    accept = NULL;
    rights = NULL;
    reason = NULL;

    status = ngx_http_amonitor_panel_check(r, &accept, &rights, &reason);

    if (status == NGX_HTTP_INTERNAL_SERVER_ERROR) {
        return status;
    }

    if (status == 0) {
        status =
            ngx_http_amonitor_panel_targets(r, amcf->worker, &targets, &reason);
    }

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

    return ngx_http_amonitor_panel_start(r, amcf, encoding, targets, rights);
}


/* the upgrade request as the core's check reads it; its key header */
static ngx_table_elt_t *
ngx_http_amonitor_panel_upgrade(ngx_http_request_t *r, amon_ws_request_t *req)
{
    ngx_table_elt_t *h, *key, *version;

    key = ngx_http_amonitor_panel_header(r, "Sec-WebSocket-Key", NULL);
    version = ngx_http_amonitor_panel_header(r, "Sec-WebSocket-Version", NULL);

    ngx_memzero(req, sizeof(amon_ws_request_t));

    req->method.data = r->method_name.data;
    req->method.len = r->method_name.len;
    req->http_version = r->http_version;

    if (r->headers_in.upgrade) {
        req->upgrade.data = r->headers_in.upgrade->value.data;
        req->upgrade.len = r->headers_in.upgrade->value.len;
    }

    /*
     * nginx 1.22 does not keep a pointer to Connection: look it up.  Its
     * tokens may come in several lines (RFC 9110 5.3): the one with
     * "upgrade" counts.
     */
    for (h = ngx_http_amonitor_panel_header(r, "Connection", NULL); h;
         h = ngx_http_amonitor_panel_header(r, "Connection", h)) {
        req->connection.data = h->value.data;
        req->connection.len = h->value.len;

        if (amon_http_token_list_has(h->value.data, h->value.len, "upgrade")) {
            break;
        }
    }

    if (key) {
        req->key.data = key->value.data;
        req->key.len = key->value.len;
    }

    if (version) {
        req->version.data = version->value.data;
        req->version.len = version->value.len;
    }

    return key;
}


/*
 * The token and the upgrade request (RFC 6455 4.2.1): 0, the value of
 * Sec-WebSocket-Accept and the rights of the token presented (NULL when
 * the location needs none), or the HTTP status that refuses the panel
 * (with the headers that go with it) and why.
 */
static ngx_int_t
ngx_http_amonitor_panel_check(ngx_http_request_t *r, u_char **accept,
    ngx_http_amonitor_rights_t **rights, const char **reason)
{
    int                           status;
    ngx_table_elt_t              *key;
    amon_ws_request_t             req;
    ngx_http_amonitor_loc_conf_t *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_amonitor_module);

    if (alcf->panel_tokens) {
        *rights = ngx_http_amonitor_rights_auth(r, alcf->panel_tokens);
    }

    if (alcf->panel_tokens && *rights == NULL) {
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

    if (r->http_version >= NGX_HTTP_VERSION_20) {
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

    key = ngx_http_amonitor_panel_upgrade(r, &req);

    /* RFC 6455 11.3.1 and 11.3.5: neither may appear more than once */
    if (ngx_http_amonitor_panel_duplicate(r, "Sec-WebSocket-Key")) {
        *reason = "duplicate Sec-WebSocket-Key";
        status = NGX_HTTP_BAD_REQUEST;

    } else if (ngx_http_amonitor_panel_duplicate(r, "Sec-WebSocket-Version")) {
        *reason = "duplicate Sec-WebSocket-Version";
        status = NGX_HTTP_BAD_REQUEST;

    } else {
        status = amon_ws_server_check(&req, reason);
    }

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
 * ?targets=a,b,web-*: the targets the panel wants (ids and patterns);
 * none given: "*", everything.  A list that cannot be used refuses the
 * panel with 400 and why.
 */
static ngx_int_t
ngx_http_amonitor_panel_targets(ngx_http_request_t *r,
    ngx_http_amonitor_worker_t *w, ngx_array_t **list, const char **reason)
{
    ngx_str_t  arg, *all;
    ngx_uint_t cost;

    if (ngx_http_arg(r, (u_char *) "targets", 7, &arg) != NGX_OK) {
        *list = ngx_array_create(r->pool, 1, sizeof(ngx_str_t));
        all = *list ? ngx_array_push(*list) : NULL;

        if (all == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_str_set(all, "*");
        return 0;
    }

    if (ngx_http_amonitor_subscribe_split(r->pool, &arg, list) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *reason = ngx_http_amonitor_subscribe_check(
        w, (*list)->elts, (*list)->nelts, &cost);

    if (*reason == NULL) {
        return 0;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
        "amonitor: panel handshake refused: %s", *reason);

    return NGX_HTTP_BAD_REQUEST;
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

    /* several lines are one list, in their order (RFC 6455 11.3.4) */
    i = -1;

    proto = ngx_http_amonitor_panel_header(r, "Sec-WebSocket-Protocol", NULL);

    while (proto && i < 0) {
        i = amon_ws_select_subprotocol(
            proto->value.data, proto->value.len, protos);
        proto =
            ngx_http_amonitor_panel_header(r, "Sec-WebSocket-Protocol", proto);
    }

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

    h = ngx_http_amonitor_panel_header(r, "Origin", NULL);
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


/* whether the request has header "name" more than once */
static ngx_uint_t
ngx_http_amonitor_panel_duplicate(ngx_http_request_t *r, const char *name)
{
    ngx_table_elt_t *h;

    h = ngx_http_amonitor_panel_header(r, name, NULL);

    return h && ngx_http_amonitor_panel_header(r, name, h);
}


/* the request header "name" after "after" (NULL: the first), or NULL */
static ngx_table_elt_t *
ngx_http_amonitor_panel_header(
    ngx_http_request_t *r, const char *name, ngx_table_elt_t *after)
{
    size_t           len;
    ngx_uint_t       i, past;
    ngx_list_part_t *part;
    ngx_table_elt_t *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;
    past = (after == NULL);

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (&h[i] == after) {
            past = 1;
            continue;
        }

        if (past && h[i].key.len == len
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


/* the directives of a panel location */

/*
 * What a browser's Origin can be (RFC 6454: scheme "://" host [":" port],
 * nothing after), with "*." allowed before the host's domain, or "*":
 * NULL, or what is wrong with the pattern (it could never match).
 */
static const char *
ngx_http_amonitor_origin_invalid(ngx_str_t *o)
{
    u_char *p, *last, *host, *port;

    static const char *shape = "expected scheme://host[:port], "
                               "scheme://*.domain[:port] or \"*\"";

    if (o->len == 1 && o->data[0] == '*') {
        return NULL;
    }

    last = o->data + o->len;
    host = ngx_strlcasestrn(o->data, last, (u_char *) "://", 3 - 1);

    if (host == NULL || host == o->data || !isalpha(o->data[0])) {
        return shape;
    }

    for (p = o->data; p < host; p++) {
        if (!isalnum(*p) && *p != '+' && *p != '-' && *p != '.') {
            return shape;
        }
    }

    p = host + 3;

    if (last - p > 2 && p[0] == '*' && p[1] == '.') {
        p += 2;
    }

    port = NULL;

    for (host = p; p < last; p++) {
        switch (*p) {
        case '*':
            return "\"*\" may only begin the host, as \"*.\" "
                   "(any subdomain)";
        case '/':
        case '?':
        case '#':
            return "an origin has no path, query or fragment "
                   "(browsers send scheme://host[:port])";
        case '@': return "an origin has no user part";
        case ':': port = p; break;
        case ']': port = NULL; break;
        default:
            if (*p <= ' ' || *p == 0x7f) {
                return "a space or control character";
            }
        }
    }

    if (port == host || (host < last && *host == ':')) {
        return "no host";
    }

    if (port && *host != '[' && ngx_strlchr(host, port, ':')) {
        return shape;
    }

    if (port
        && (port + 1 == last || ngx_atoi(port + 1, last - port - 1) < 1
            || ngx_atoi(port + 1, last - port - 1) > 65535)) {
        return "the port is not a number from 1 to 65535";
    }

    return host == last ? "no host" : NULL;
}

/*
 * amonitor_panel_allow_origin ORIGIN...: the browser origins that may open
 * a panel: exact origins, "scheme://" + "*.domain" patterns, or "*".
 * Requests without Origin (non-browser clients) are not affected.
 */
char *
ngx_http_amonitor_panel_allow_origin(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_amonitor_loc_conf_t *alcf = conf;

    ngx_str_t  *value, *o;
    ngx_uint_t  i;
    const char *why;

    if (alcf->allow_origin) {
        return "is duplicate";
    }

    alcf->allow_origin = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
    if (alcf->allow_origin == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        why = ngx_http_amonitor_origin_invalid(&value[i]);

        if (why) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                "invalid origin \"%V\": %s", &value[i], why);
            return NGX_CONF_ERROR;
        }

        o = ngx_array_push(alcf->allow_origin);
        if (o == NULL) {
            return NGX_CONF_ERROR;
        }

        *o = value[i];
        ngx_strlow(o->data, o->data, o->len);
    }

    return NGX_CONF_OK;
}


/* amonitor_panel on: this location's content handler is the panel's */
char *
ngx_http_amonitor_panel_conf(ngx_conf_t *cf, void *post, void *data)
{
    ngx_flag_t *fp = data;

    ngx_http_amonitor_main_conf_t *amcf;

    if (!*fp) {
        return NGX_CONF_OK;
    }

    if (ngx_http_amonitor_conf_handler(cf, ngx_http_amonitor_panel_handler)
        != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_amonitor_module);

    if (amcf->panel_file.len == 0) {
        amcf->panel_file = cf->conf_file->file.name;
        amcf->panel_line = cf->conf_file->line;
    }

    return NGX_CONF_OK;
}
