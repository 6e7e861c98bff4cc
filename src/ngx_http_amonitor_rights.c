/*
 * Copyright (C) AMonitor authors
 *
 * Who may act: amonitor_panel_token with its rights (read_only, targets=),
 * the token a panel presents and what it may make the agent do.  Calls
 * nothing of the other glue files: panel.c asks at the handshake,
 * action.c before an action is claimed.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"


static char *ngx_http_amonitor_rights_targets(
    ngx_conf_t *cf, ngx_http_amonitor_rights_t *rt, ngx_str_t *value);
static ngx_int_t ngx_http_amonitor_rights_given(
    ngx_http_request_t *r, ngx_str_t *given);


/*
 * amonitor_panel_token TOKEN [read_only] [targets=ID,PREFIX*,...]; may be
 * given several times at one level: a panel is let in with any of them and
 * gets that token's rights.  Without options a token may do everything.
 */
char *
ngx_http_amonitor_conf_panel_token(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_amonitor_loc_conf_t *alcf = conf;

    ngx_str_t                  *value;
    ngx_uint_t                  i;
    ngx_http_amonitor_rights_t *rt;

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "empty panel token");
        return NGX_CONF_ERROR;
    }

    if (alcf->panel_tokens == NGX_CONF_UNSET_PTR) {
        alcf->panel_tokens =
            ngx_array_create(cf->pool, 2, sizeof(ngx_http_amonitor_rights_t));
        if (alcf->panel_tokens == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    rt = alcf->panel_tokens->elts;
    for (i = 0; i < alcf->panel_tokens->nelts; i++) {
        if (rt[i].token.len == value[1].len
            && ngx_strncmp(rt[i].token.data, value[1].data, value[1].len)
                == 0) {
            return "is duplicate (the same token twice)";
        }
    }

    rt = ngx_array_push(alcf->panel_tokens);
    if (rt == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(rt, sizeof(ngx_http_amonitor_rights_t));
    rt->token = value[1];

    for (i = 2; i < cf->args->nelts; i++) {

        if (value[i].len == 9 && ngx_strncmp(value[i].data, "read_only", 9) == 0
            && !rt->read_only) {
            rt->read_only = 1;
            continue;
        }

        if (value[i].len > 8 && ngx_strncmp(value[i].data, "targets=", 8) == 0
            && rt->targets == NULL) {
            if (ngx_http_amonitor_rights_targets(cf, rt, &value[i])
                != NGX_CONF_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "invalid parameter \"%V\", expected \"read_only\" or "
            "\"targets=id,prefix*,...\", each at most once",
            &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* targets=a,b,web-*: ids, or prefixes ending with "*" */
static char *
ngx_http_amonitor_rights_targets(
    ngx_conf_t *cf, ngx_http_amonitor_rights_t *rt, ngx_str_t *value)
{
    u_char    *p, *last, *comma;
    ngx_str_t *s;

    rt->targets = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
    if (rt->targets == NULL) {
        return NGX_CONF_ERROR;
    }

    p = value->data + 8;
    last = value->data + value->len;

    while (p < last) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        if (comma == p || comma - p > AMON_MAX_ID_LEN
            || ngx_strlchr(p, comma - 1, '*') != NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                "invalid target pattern in \"%V\": an id, or a prefix "
                "followed by one \"*\"",
                value);
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(rt->targets);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        s->data = p;
        s->len = comma - p;

        p = comma + 1;
    }

    return NGX_CONF_OK;
}


/*
 * The rights of the token the request presents (Authorization: Bearer T,
 * or ?token=T for browsers, which cannot set the header), or NULL.  Every
 * token is compared in full, so the time taken does not tell which bytes
 * matched.
 */
ngx_http_amonitor_rights_t *
ngx_http_amonitor_rights_auth(ngx_http_request_t *r, ngx_array_t *tokens)
{
    u_char                      diff;
    size_t                      i;
    ngx_str_t                   given;
    ngx_uint_t                  n;
    ngx_http_amonitor_rights_t *rt, *found;

    if (ngx_http_amonitor_rights_given(r, &given) != NGX_OK) {
        return NULL;
    }

    rt = tokens->elts;
    found = NULL;

    for (n = 0; n < tokens->nelts; n++) {
        diff = (given.len != rt[n].token.len);

        for (i = 0; i < rt[n].token.len; i++) {
            diff |= (i < given.len ? given.data[i] : 0) ^ rt[n].token.data[i];
        }

        if (diff == 0) {
            found = &rt[n];
        }
    }

    return found;
}


static ngx_int_t
ngx_http_amonitor_rights_given(ngx_http_request_t *r, ngx_str_t *given)
{
    u_char   *p, *last;
    ngx_str_t arg;

    ngx_str_null(given);

    if (r->headers_in.authorization) {
        p = r->headers_in.authorization->value.data;
        last = p + r->headers_in.authorization->value.len;

        if (last - p > 7 && ngx_strncasecmp(p, (u_char *) "Bearer ", 7) == 0) {
            p += 7;
            while (p < last && *p == ' ') {
                p++;
            }

            given->data = p;
            given->len = last - p;
        }

    } else if (ngx_http_arg(r, (u_char *) "token", 5, &arg) == NGX_OK) {
        given->data = ngx_pnalloc(r->pool, arg.len);
        if (given->data == NULL) {
            return NGX_ERROR;
        }

        p = given->data;
        ngx_unescape_uri(&p, &arg.data, arg.len, NGX_UNESCAPE_URI);
        given->len = p - given->data;
    }

    return NGX_OK;
}


/*
 * May a panel with these rights (NULL: no token configured, everything)
 * make an action reach the target named "id"?  NULL when it may, the
 * reason of the refusal otherwise.
 */
const char *
ngx_http_amonitor_rights_check(ngx_http_amonitor_rights_t *rt, ngx_str_t *id)
{
    if (rt == NULL) {
        return NULL;
    }

    if (rt->read_only) {
        return "this panel's token is read-only";
    }

    if (ngx_http_amonitor_rights_cover(rt, id)) {
        return NULL;
    }

    return "this panel's token may not act on this target";
}


/*
 * Is the target named "id" within the token's targets= (1 without one)?
 * What a panel may learn of an earlier action (the result of a duplicate
 * or of action_status) is bounded by this, read_only or not.
 */
ngx_uint_t
ngx_http_amonitor_rights_cover(ngx_http_amonitor_rights_t *rt, ngx_str_t *id)
{
    ngx_str_t *s;
    ngx_uint_t i;

    if (rt == NULL || rt->targets == NULL) {
        return 1;
    }

    s = rt->targets->elts;

    for (i = 0; i < rt->targets->nelts; i++) {

        if (s[i].data[s[i].len - 1] == '*') {
            if (id->len >= s[i].len - 1
                && ngx_strncmp(id->data, s[i].data, s[i].len - 1) == 0) {
                return 1;
            }

            continue;
        }

        if (s[i].len == id->len
            && ngx_strncmp(s[i].data, id->data, id->len) == 0) {
            return 1;
        }
    }

    return 0;
}
