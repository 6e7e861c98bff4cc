/*
 * Copyright (C) AMonitor authors
 *
 * The amonitor_redis directive: address, database, password, key prefix,
 * command timeout, claim lease and the bound on open claims, checked when
 * the configuration is read.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor_store_redis.h"


/*
 * amonitor_redis ADDR [db=N] [password=P] [prefix=S] [timeout=T] [lease=T]
 * [claims=N]: the directive's parser lives with its backend.
 */
char *
ngx_http_amonitor_store_redis_conf(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_amonitor_main_conf_t *amcf = conf;

    u_char                         *p;
    ngx_int_t                       n;
    ngx_url_t                       u;
    ngx_str_t                      *value, s;
    ngx_msec_t                      t;
    ngx_uint_t                      i;
    ngx_http_amonitor_redis_conf_t *rc;

    if (amcf->redis) {
        return "is duplicate";
    }

    rc = ngx_pcalloc(cf->pool, sizeof(ngx_http_amonitor_redis_conf_t));
    if (rc == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    ngx_str_set(&rc->prefix, "amonitor:");
    rc->addr = value[1];
    rc->timeout = 1000;
    rc->lease = 5000;
    rc->claims = 4096;

    /* resolved here, once: the worker hands hiredis a numeric address */
    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = value[1];
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in redis address \"%V\"",
            u.err ? u.err : "host not found", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (u.family == AF_UNIX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "unix sockets are not supported in \"amonitor_redis\"");
        return NGX_CONF_ERROR;
    }

    p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    rc->host.data = p;
    rc->host.len = ngx_sock_ntop(
        u.addrs[0].sockaddr, u.addrs[0].socklen, p, NGX_SOCKADDR_STRLEN, 0);
    p[rc->host.len] = '\0';
    rc->port = ngx_inet_get_port(u.addrs[0].sockaddr);

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            rc->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0
            && value[i].len > 9) {
            rc->password.data = value[i].data + 9;
            rc->password.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "prefix=", 7) == 0) {
            rc->prefix.data = value[i].data + 7;
            rc->prefix.len = value[i].len - 7;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;
            t = ngx_parse_time(&s, 0);
            if (t == (ngx_msec_t) NGX_ERROR || t == 0) {
                goto invalid;
            }

            rc->timeout = t;
            continue;
        }

        if (ngx_strncmp(value[i].data, "lease=", 6) == 0) {
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;
            t = ngx_parse_time(&s, 0);
            if (t == (ngx_msec_t) NGX_ERROR || t == 0) {
                goto invalid;
            }

            rc->lease = t;
            continue;
        }

        if (ngx_strncmp(value[i].data, "claims=", 7) == 0) {
            n = ngx_atoi(value[i].data + 7, value[i].len - 7);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            rc->claims = n;
            continue;
        }

        goto invalid;
    }

    if (rc->lease < 3 * rc->timeout) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "redis lease of %M ms is shorter than 3 times its timeout "
            "of %M ms",
            rc->lease, rc->timeout);
        return NGX_CONF_ERROR;
    }

    amcf->redis = rc;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
        "invalid parameter \"%V\" in \"amonitor_redis\"", &value[i]);
    return NGX_CONF_ERROR;
}
