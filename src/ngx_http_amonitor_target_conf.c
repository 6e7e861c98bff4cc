/*
 * Copyright (C) AMonitor authors
 *
 * The directives that name SDK targets and the URLs the agent may dial:
 * amonitor_target, amonitor_reconnect and amonitor_allow_url.  The command
 * table in module.c points here.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"


static ngx_int_t ngx_http_amonitor_conf_target_id(
    ngx_conf_t *cf, ngx_str_t *id);
static ngx_int_t ngx_http_amonitor_allow_path(
    ngx_http_amonitor_allow_t *a, u_char *p, u_char **last);
static ngx_int_t ngx_http_amonitor_target_host(
    ngx_conf_t *cf, ngx_http_amonitor_target_conf_t *t, amon_ws_url_t *u);
static char *ngx_http_amonitor_target_token(
    ngx_conf_t *cf, ngx_http_amonitor_target_conf_t *t, ngx_str_t *value);
static char *ngx_http_amonitor_target_addrs(
    ngx_conf_t *cf, ngx_http_amonitor_target_conf_t *t, amon_ws_url_t *wu);
static ngx_int_t ngx_http_amonitor_conf_wss(
    ngx_conf_t *cf, ngx_http_amonitor_main_conf_t *amcf, ngx_str_t *url);
static ngx_int_t ngx_http_amonitor_conf_seen(ngx_conf_t *cf,
    ngx_http_amonitor_main_conf_t *amcf, ngx_rbtree_t **tree, ngx_str_t *s,
    ngx_http_amonitor_target_conf_t **found);
static ngx_int_t ngx_http_amonitor_conf_remember(
    ngx_conf_t *cf, ngx_rbtree_t *tree, ngx_str_t *s, ngx_uint_t index);


/* a target's id or URL, while the configuration is read */
typedef struct {
    ngx_str_node_t sn;
    ngx_uint_t     index; /* in amcf->targets */
} ngx_http_amonitor_conf_name_t;


char *
ngx_http_amonitor_conf_target(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_amonitor_main_conf_t *amcf = conf;

    u_char                          *p;
    size_t                           len;
    ngx_str_t                       *value;
    amon_ws_url_t                    u;
    ngx_http_amonitor_target_conf_t *t, *tt;

    value = cf->args->elts;

    if (ngx_http_amonitor_conf_target_id(cf, &value[1]) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_amonitor_conf_seen(cf, amcf, &amcf->target_ids, &value[1], &tt)
        != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (tt) {
        ngx_conf_log_error(
            NGX_LOG_EMERG, cf, 0, "duplicate target id \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (amon_ws_url_parse(value[2].data, value[2].len, &u) != AMON_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "invalid target URL \"%V\": expected "
            "ws://host[:port][/path]",
            &value[2]);
        return NGX_CONF_ERROR;
    }

    if (u.tls && ngx_http_amonitor_conf_wss(cf, amcf, &value[2]) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    t = ngx_array_push(&amcf->targets);
    if (t == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(t, sizeof(ngx_http_amonitor_target_conf_t));

    t->id = value[1];
    t->url = value[2];

    len = value[2].len + 16;
    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    t->norm.data = p;
    t->norm.len = amon_ws_url_normalize(&u, p, len);

    t->host_port.data = (u_char *) u.host_port.data;
    t->host_port.len = u.host_port.len;
    t->path.data = (u_char *) u.path.data;
    t->path.len = u.path.len;
    t->tls = u.tls;

    if (ngx_http_amonitor_target_host(cf, t, &u) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_amonitor_conf_seen(cf, amcf, &amcf->target_urls, &t->norm, &tt)
        != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (tt) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "targets \"%V\" and \"%V\" have the same "
            "URL \"%V\"",
            &tt->id, &t->id, &t->url);
        return NGX_CONF_ERROR;
    }

    /* t's index: the array may move as it grows */
    if (ngx_http_amonitor_conf_remember(
            cf, amcf->target_ids, &t->id, amcf->targets.nelts - 1)
            != NGX_OK
        || ngx_http_amonitor_conf_remember(
               cf, amcf->target_urls, &t->norm, amcf->targets.nelts - 1)
            != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 4
        && ngx_http_amonitor_target_token(cf, t, &value[3]) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_amonitor_target_addrs(cf, t, &u);
}


/*
 * A target id is what a message can carry and a learned target may use
 * (target.c): 1 to AMON_MAX_ID_LEN bytes of UTF-8, no control characters.
 * Other bytes would make the status JSON and the metrics invalid, and
 * panels' snapshots leave such a target out.  The error names the first
 * bad byte and shows only the valid text before it.
 */
static ngx_int_t
ngx_http_amonitor_conf_target_id(ngx_conf_t *cf, ngx_str_t *id)
{
    size_t   i, good;
    uint32_t state;

    if (id->len == 0 || id->len > AMON_MAX_ID_LEN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "invalid target id \"%V\": not 1 to %d bytes", id, AMON_MAX_ID_LEN);
        return NGX_ERROR;
    }

    state = 0;
    good = 0;

    for (i = 0; i < id->len; i++) {
        if (amon_utf8_feed(&state, &id->data[i], 1) != AMON_OK) {
            break;
        }

        if (state != 0) {
            continue;
        }

        if (id->data[i] < 0x20 || id->data[i] == 0x7f) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                "invalid target id: a control character at byte %uz "
                "(after \"%*s\")",
                i + 1, i, id->data);
            return NGX_ERROR;
        }

        good = i + 1;
    }

    if (good < id->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "invalid target id: not UTF-8 at byte %uz (after \"%*s\")",
            good + 1, good, id->data);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Whether "s" is a configured target's id (or URL) already: a tree per
 * kind, made with the first target, so that 10,000 targets are checked in
 * n log n rather than compared each with all before it.
 */
static ngx_int_t
ngx_http_amonitor_conf_seen(ngx_conf_t *cf, ngx_http_amonitor_main_conf_t *amcf,
    ngx_rbtree_t **tree, ngx_str_t *s, ngx_http_amonitor_target_conf_t **found)
{
    ngx_rbtree_node_t             *sentinel;
    ngx_http_amonitor_conf_name_t *cn;

    *found = NULL;

    if (*tree == NULL) {
        *tree = ngx_palloc(cf->pool, sizeof(ngx_rbtree_t));
        sentinel = ngx_palloc(cf->pool, sizeof(ngx_rbtree_node_t));

        if (*tree == NULL || sentinel == NULL) {
            return NGX_ERROR;
        }

        ngx_rbtree_init(*tree, sentinel, ngx_str_rbtree_insert_value);
        return NGX_OK;
    }

    /* the configuration's own strings: no key needed (nor known yet) */
    cn = (ngx_http_amonitor_conf_name_t *) ngx_str_rbtree_lookup(
        *tree, s, amon_hash(s->data, s->len));

    if (cn) {
        *found =
            (ngx_http_amonitor_target_conf_t *) amcf->targets.elts + cn->index;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_amonitor_conf_remember(
    ngx_conf_t *cf, ngx_rbtree_t *tree, ngx_str_t *s, ngx_uint_t index)
{
    ngx_http_amonitor_conf_name_t *cn;

    cn = ngx_palloc(cf->pool, sizeof(ngx_http_amonitor_conf_name_t));
    if (cn == NULL) {
        return NGX_ERROR;
    }

    cn->sn.str = *s;
    cn->sn.node.key = amon_hash(s->data, s->len);
    cn->index = index;

    ngx_rbtree_insert(tree, &cn->sn.node);

    return NGX_OK;
}


/* the name to verify and to send in SNI, as a C string, no brackets */
static ngx_int_t
ngx_http_amonitor_target_host(
    ngx_conf_t *cf, ngx_http_amonitor_target_conf_t *t, amon_ws_url_t *u)
{
    u_char    *p;
    amon_str_t host;

    host = amon_ws_url_hostname(u);
    t->host.len = host.len;
    t->host.data = (u_char *) host.data;

    p = ngx_pnalloc(cf->pool, t->host.len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn(p, t->host.data, t->host.len + 1);
    t->host.data = p;

    return NGX_OK;
}


/* token=T: sent to the SDK as a Bearer token */
static char *
ngx_http_amonitor_target_token(
    ngx_conf_t *cf, ngx_http_amonitor_target_conf_t *t, ngx_str_t *value)
{
    u_char *p, *last;

    if (ngx_strncmp(value->data, "token=", 6) != 0 || value->len == 6) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "invalid parameter \"%V\", expected "
            "\"token=...\"",
            value);
        return NGX_CONF_ERROR;
    }

    t->token.data = value->data + 6;
    t->token.len = value->len - 6;

    last = t->token.data + t->token.len;
    for (p = t->token.data; p < last; p++) {
        if (*p <= ' ' || *p == 0x7f) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                "invalid token for target \"%V\"", &t->id);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* a wss:// URL: the SSL context will be made (upstream_ssl.c) */
static ngx_int_t
ngx_http_amonitor_conf_wss(
    ngx_conf_t *cf, ngx_http_amonitor_main_conf_t *amcf, ngx_str_t *url)
{
#if (NGX_HTTP_SSL)

    if (!amcf->ssl_used) {
        /* where the first one is, for the errors found at the end */
        amcf->ssl_used = 1;
        amcf->ssl_file = cf->conf_file->file.name;
        amcf->ssl_line = cf->conf_file->line;
    }

    return NGX_OK;

#else

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
        "\"%V\": wss:// requires nginx built with "
        "the http_ssl_module",
        url);

    return NGX_ERROR;

#endif
}


/* the target's addresses, resolved here, once: workers never do DNS */
static char *
ngx_http_amonitor_target_addrs(
    ngx_conf_t *cf, ngx_http_amonitor_target_conf_t *t, amon_ws_url_t *wu)
{
    ngx_uint_t i;
    ngx_url_t  url;
    amon_str_t host;

    ngx_memzero(&url, sizeof(ngx_url_t));

    host = amon_ws_url_hostname(wu);
    url.url.data = (u_char *) host.data;
    url.url.len = host.len;
    url.default_port = (in_port_t) wu->port;
    url.no_resolve = 0;

    if (ngx_strlchr(url.url.data, url.url.data + url.url.len, ':')) {
        /* an IPv6 address: ngx_parse_url() reads it in brackets only */
        url.url.data = ngx_pnalloc(cf->pool, host.len + 2);
        if (url.url.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_sprintf(url.url.data, "[%*s]", host.len, host.data);
        url.url.len = host.len + 2;
    }

    if (ngx_parse_url(cf->pool, &url) != NGX_OK || url.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in target URL \"%V\"",
            url.err ? url.err : "host not found", &t->url);
        return NGX_CONF_ERROR;
    }

    t->addrs = url.addrs;
    t->naddrs = url.naddrs;

    for (i = 0; i < t->naddrs; i++) {
        ngx_inet_set_port(t->addrs[i].sockaddr, (in_port_t) wu->port);
    }

    return NGX_CONF_OK;
}


char *
ngx_http_amonitor_conf_reconnect(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_amonitor_main_conf_t *amcf = conf;

    ngx_str_t *value;
    ngx_msec_t min, max;

    if (amcf->reconnect_min != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    min = ngx_parse_time(&value[1], 0);
    if (min == (ngx_msec_t) NGX_ERROR || min == 0) {
        ngx_conf_log_error(
            NGX_LOG_EMERG, cf, 0, "invalid reconnect delay \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    max = min;

    if (cf->args->nelts == 3) {
        max = ngx_parse_time(&value[2], 0);
        if (max == (ngx_msec_t) NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                "invalid reconnect delay \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }
    }

    if (max < min) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "reconnect maximum \"%V\" is less than the "
            "minimum \"%V\"",
            &value[2], &value[1]);
        return NGX_CONF_ERROR;
    }

    amcf->reconnect_min = min;
    amcf->reconnect_max = max;

    return NGX_CONF_OK;
}


/*
 * The path (and query) of a pattern, which ends its host part ("last"):
 * none is "/" only; a final "*" makes it a prefix; no other "*", no "#".
 */
static ngx_int_t
ngx_http_amonitor_allow_path(
    ngx_http_amonitor_allow_t *a, u_char *p, u_char **last)
{
    a->path.data = ngx_strlchr(p, *last, '/');

    if (a->path.data == NULL) {
        ngx_str_set(&a->path, "/");
        return NGX_OK;
    }

    a->path.len = *last - a->path.data;
    *last = a->path.data;

    if (a->path.data[a->path.len - 1] == '*') {
        a->path.len--;
        a->prefix = 1;
    }

    if (ngx_strlchr(a->path.data, a->path.data + a->path.len, '*')
        || ngx_strlchr(a->path.data, a->path.data + a->path.len, '#')) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* an amonitor_allow_url pattern that could never match, and why */
static char *
ngx_http_amonitor_allow_refused(ngx_conf_t *cf, ngx_str_t *s, const char *why)
{
    ngx_conf_log_error(
        NGX_LOG_EMERG, cf, 0, "invalid URL pattern \"%V\": %s", s, why);
    return NGX_CONF_ERROR;
}


char *
ngx_http_amonitor_conf_allow_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_amonitor_main_conf_t *amcf = conf;

    u_char                    *p, *last, *colon;
    size_t                     n;
    ngx_str_t                 *value, s;
    ngx_int_t                  port;
    ngx_http_amonitor_allow_t *a;

    value = cf->args->elts;
    s = value[1];

    n = 0;

    if (s.len >= 6 && ngx_strncasecmp(s.data, (u_char *) "ws://", 5) == 0) {
        n = 5;

    } else if (s.len >= 7
        && ngx_strncasecmp(s.data, (u_char *) "wss://", 6) == 0) {
        if (ngx_http_amonitor_conf_wss(cf, amcf, &s) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        n = 6;
    }

    if (n == 0) {
        goto invalid;
    }

    a = ngx_array_push(&amcf->allow);
    if (a == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(a, sizeof(ngx_http_amonitor_allow_t));
    a->pattern = s;
    a->tls = (n == 6);

    p = s.data + n;
    last = s.data + s.len;

    if (ngx_http_amonitor_allow_path(a, p, &last) != NGX_OK) {
        return ngx_http_amonitor_allow_refused(cf, &s,
            "\"*\" may only end the path (a prefix), and \"#\" is not "
            "allowed");
    }

    colon = NULL;
    if (*p == '[') {
        colon = ngx_strlchr(p, last, ']');
        if (colon == NULL) {
            goto invalid;
        }
        colon = ngx_strlchr(colon, last, ':');

    } else {
        colon = ngx_strlchr(p, last, ':');
    }

    if (colon == NULL || colon == p) {
        goto invalid;
    }

    a->host.data = ngx_pnalloc(cf->pool, colon - p);
    if (a->host.data == NULL) {
        return NGX_CONF_ERROR;
    }

    a->host.len = colon - p;
    ngx_strlow(a->host.data, p, a->host.len);

    if (ngx_strlchr(p, colon, '*') || ngx_strlchr(p, colon, '@')) {
        /* hosts are compared as written: "*" would match only itself */
        return ngx_http_amonitor_allow_refused(cf, &s,
            "the host must be written out (no \"*\" or user part); only "
            "the port may be \"*\"");
    }

    if (last - colon == 2 && colon[1] == '*') {
        a->port = 0;
        return NGX_CONF_OK;
    }

    port = ngx_atoi(colon + 1, last - colon - 1);
    if (port < 1 || port > 65535) {
        goto invalid;
    }

    a->port = port;

    return NGX_CONF_OK;

invalid:

    return ngx_http_amonitor_allow_refused(
        cf, &s, "expected ws://host:port or ws://host:*");
}
