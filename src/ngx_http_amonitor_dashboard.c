/*
 * Copyright (C) AMonitor authors
 *
 * "amonitor_dashboard on": the web dashboard, a few static files built
 * into the module (dashboard/, turned into C by scripts/embed-dashboard.sh)
 * or read from "amonitor_dashboard_root" for a customised copy.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"


static ngx_int_t ngx_http_amonitor_dashboard_name(
    ngx_http_request_t *r, ngx_str_t *name);
static ngx_int_t ngx_http_amonitor_dashboard_file(
    ngx_http_request_t *r, ngx_str_t *root, ngx_str_t *name);
static ngx_int_t ngx_http_amonitor_dashboard_headers(
    ngx_http_request_t *r, ngx_str_t *name, off_t len);
static ngx_str_t *ngx_http_amonitor_dashboard_type(ngx_str_t *name);


char *
ngx_http_amonitor_dashboard(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_amonitor_loc_conf_t *alcf = conf;

    ngx_str_t                *value;
    ngx_http_core_loc_conf_t *clcf;

    if (alcf->dashboard != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "on") == 0) {
        alcf->dashboard = 1;

        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

        if (clcf->exact_match) {
            /* its page would load, and none of the files the page asks */
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                "\"%V\" cannot serve the dashboard's files from an exact "
                "location \"= %V\": use a prefix location such as "
                "\"location %V\"",
                &cmd->name, &clcf->name, &clcf->name);
            return NGX_CONF_ERROR;
        }

    } else if (ngx_strcmp(value[1].data, "off") == 0) {
        alcf->dashboard = 0;
        return NGX_CONF_OK;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "invalid value \"%V\" in \"%V\" directive, it must be \"on\" or "
            "\"off\"",
            &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    return ngx_http_amonitor_conf_handler(
        cf, ngx_http_amonitor_dashboard_handler);
}


/*
 * amonitor_dashboard_root: a relative path is under the prefix, as root's;
 * an empty one would be the prefix itself (nginx.conf, the logs)
 */
static char *
ngx_http_amonitor_dashboard_root_full(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t *path = data;

    if (path->len == 0) {
        return "must name a directory";
    }

    if (ngx_conf_full_name(cf->cycle, path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_conf_post_t ngx_http_amonitor_dashboard_root_post = {
    ngx_http_amonitor_dashboard_root_full};


ngx_int_t
ngx_http_amonitor_dashboard_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                     name;
    ngx_buf_t                    *b;
    ngx_chain_t                   out;
    ngx_http_amonitor_asset_t    *a;
    ngx_http_amonitor_loc_conf_t *alcf;

    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return ngx_http_amonitor_not_allowed(r);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_amonitor_dashboard_name(r, &name);
    if (rc != NGX_OK) {
        return rc;
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_amonitor_module);

    if (alcf->dashboard_root.len) {
        return ngx_http_amonitor_dashboard_file(
            r, &alcf->dashboard_root, &name);
    }

    for (a = ngx_http_amonitor_assets; a->name.len; a++) {
        if (a->name.len == name.len
            && ngx_strncmp(a->name.data, name.data, name.len) == 0) {
            break;
        }
    }

    if (a->name.len == 0) {
        return NGX_HTTP_NOT_FOUND;
    }

    rc = ngx_http_amonitor_dashboard_headers(r, &name, a->body.len);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the bytes are the module's own, never written */
    b->pos = a->body.data;
    b->last = a->body.data + a->body.len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * The file a request names: what follows the location's prefix, and
 * index.html for the prefix itself.  Names are plain file names (letters,
 * digits, "-", "_", "."; no leading dot), so nothing outside is reachable.
 */
static ngx_int_t
ngx_http_amonitor_dashboard_name(ngx_http_request_t *r, ngx_str_t *name)
{
    u_char                   *p, *last, *loc;
    size_t                    len;
    ngx_uint_t                prefix;
    ngx_http_core_loc_conf_t *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    p = r->uri.data;
    last = r->uri.data + r->uri.len;

    /*
     * a prefix location's name starts the URI; a regex location's name is
     * its regex, and a named one's is not in the URI
     */
    prefix = !clcf->exact_match && !clcf->named
#if (NGX_PCRE)
        && clcf->regex == NULL
#endif
        && r->uri.len >= clcf->name.len
        && ngx_strncmp(r->uri.data, clcf->name.data, clcf->name.len) == 0;

    if (prefix) {
        p += clcf->name.len;

        /* "location /amonitor": "/amonitor/app.js" names "app.js" */
        if (p < last && *p == '/' && p[-1] != '/') {
            p++;
        }

    } else {
        /*
         * "location = /x/" or "~ ^/x/": serve its index at "/x/", the last
         * part of the URI otherwise ("/x/app.js": "app.js")
         */
        for (p = last; p > r->uri.data && p[-1] != '/'; p--) { /* void */
        }
    }

    if (p == last) {
        if (r->uri.len == 0 || last[-1] != '/') {
            /*
             * "/amonitor" -> "/amonitor/", so relative URLs resolve; the
             * query (token=, panel=) goes along, as for a directory
             */
            len = r->uri.len + 1 + (r->args.len ? 1 + r->args.len : 0);
            loc = ngx_pnalloc(r->pool, len);
            if (loc == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            p = ngx_cpymem(loc, r->uri.data, r->uri.len);
            *p++ = '/';

            if (r->args.len) {
                *p++ = '?';
                ngx_memcpy(p, r->args.data, r->args.len);
            }

            r->headers_out.location = ngx_list_push(&r->headers_out.headers);
            if (r->headers_out.location == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            r->headers_out.location->hash = 1;
            ngx_str_set(&r->headers_out.location->key, "Location");
            r->headers_out.location->value.data = loc;
            r->headers_out.location->value.len = len;

            return NGX_HTTP_MOVED_PERMANENTLY;
        }

        ngx_str_set(name, "index.html");
        return NGX_OK;
    }

    if (*p == '.') {
        return NGX_HTTP_NOT_FOUND;
    }

    name->data = p;
    name->len = last - p;

    for (/* void */; p < last; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
                || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'
                || *p == '.')) {
            return NGX_HTTP_NOT_FOUND;
        }
    }

    return NGX_OK;
}


/* a customised dashboard: the same names, read from a directory */
static ngx_int_t
ngx_http_amonitor_dashboard_file(
    ngx_http_request_t *r, ngx_str_t *root, ngx_str_t *name)
{
    u_char                  *path, *p;
    ngx_fd_t                 fd;
    ngx_int_t                rc;
    ngx_buf_t               *b;
    ngx_file_info_t          fi;
    ngx_chain_t              out;
    ngx_pool_cleanup_t      *cln;
    ngx_pool_cleanup_file_t *clnf;

    path = ngx_pnalloc(r->pool, root->len + name->len + 2);
    if (path == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(path, root->data, root->len);
    *p++ = '/';
    p = ngx_cpymem(p, name->data, name->len);
    *p = '\0';

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_pool_cleanup_file_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    fd = ngx_open_file(path, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, ngx_errno,
            "amonitor dashboard: " ngx_open_file_n " \"%s\" failed", path);
        return NGX_HTTP_NOT_FOUND;
    }

    cln->handler = ngx_pool_cleanup_file;
    clnf = cln->data;
    clnf->fd = fd;
    clnf->name = path;
    clnf->log = r->pool->log;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR || !ngx_is_file(&fi)) {
        return NGX_HTTP_NOT_FOUND;
    }

    rc = ngx_http_amonitor_dashboard_headers(r, name, ngx_file_size(&fi));
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->file = ngx_pcalloc(r->pool, sizeof(ngx_file_t));
    if (b->file == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->file_pos = 0;
    b->file_last = ngx_file_size(&fi);
    b->in_file = b->file_last ? 1 : 0;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;
    b->sync = b->in_file ? 0 : 1;

    b->file->fd = fd;
    b->file->name.data = path;
    b->file->name.len = p - path;
    b->file->log = r->connection->log;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
ngx_http_amonitor_dashboard_headers(
    ngx_http_request_t *r, ngx_str_t *name, off_t len)
{
    ngx_table_elt_t *h;

    /*
     * connect-src 'self' alone: CSP Level 3 matches ws: (wss:) on the
     * page's own host and port with it; a "ws:" source would let the
     * page hand the panel token to a WebSocket on any host
     */
    static ngx_str_t csp =
        ngx_string("default-src 'self'; connect-src 'self'; "
                   "img-src 'self' data:; frame-ancestors 'none'");

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = len;
    r->headers_out.content_type = *ngx_http_amonitor_dashboard_type(name);
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    /* small and changed with the module: always revalidate */
    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-cache");

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Content-Security-Policy");
    h->value = csp;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Content-Type-Options");
    ngx_str_set(&h->value, "nosniff");

    return ngx_http_send_header(r);
}


static ngx_str_t *
ngx_http_amonitor_dashboard_type(ngx_str_t *name)
{
    ngx_uint_t                 i;
    ngx_http_amonitor_asset_t *a;

    static ngx_str_t other = ngx_string("application/octet-stream");
    static ngx_str_t types[] = {ngx_string(".html"),
        ngx_string("text/html; charset=utf-8"), ngx_string(".css"),
        ngx_string("text/css; charset=utf-8"), ngx_string(".js"),
        ngx_string("text/javascript; charset=utf-8"), ngx_string(".svg"),
        ngx_string("image/svg+xml"), ngx_string(".png"),
        ngx_string("image/png"), ngx_string(".json"),
        ngx_string("application/json"), ngx_null_string};

    for (a = ngx_http_amonitor_assets; a->name.len; a++) {
        if (a->name.len == name->len
            && ngx_strncmp(a->name.data, name->data, name->len) == 0) {
            return &a->type;
        }
    }

    /* a customised dashboard may have files of its own */
    for (i = 0; types[i].len; i += 2) {
        if (name->len > types[i].len
            && ngx_strncmp(name->data + name->len - types[i].len, types[i].data,
                   types[i].len)
                == 0) {
            return &types[i + 1];
        }
    }

    return &other;
}
