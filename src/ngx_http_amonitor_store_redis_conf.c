/*
 * Copyright (C) AMonitor authors
 *
 * The amonitor_redis directive: address, database, password, key prefix,
 * command timeout, claim lease and the bound on open claims, checked when
 * the configuration is read; what a reload may not change of the store.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor_store_redis.h"


/* host:port, resolved here, once: the worker hands hiredis an address */
static ngx_int_t
ngx_http_amonitor_redis_addr(
    ngx_conf_t *cf, ngx_http_amonitor_redis_conf_t *rc, ngx_str_t *addr)
{
    u_char   *p;
    ngx_url_t u;

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = *addr;
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in redis address \"%V\"",
            u.err ? u.err : "host not found", addr);
        return NGX_ERROR;
    }

    if (u.family == AF_UNIX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "unix sockets are not supported in \"amonitor_redis\"");
        return NGX_ERROR;
    }

    p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    rc->host.data = p;
    rc->host.len = ngx_sock_ntop(
        u.addrs[0].sockaddr, u.addrs[0].socklen, p, NGX_SOCKADDR_STRLEN, 0);
    p[rc->host.len] = '\0';
    rc->port = ngx_inet_get_port(u.addrs[0].sockaddr);

    return NGX_OK;
}


/* one NAME=VALUE parameter; NGX_ERROR: unknown or invalid */
static ngx_int_t
ngx_http_amonitor_redis_param(ngx_http_amonitor_redis_conf_t *rc, ngx_str_t *v)
{
    ngx_int_t  n;
    ngx_str_t  s;
    ngx_msec_t t;

    if (ngx_strncmp(v->data, "db=", 3) == 0) {
        n = ngx_atoi(v->data + 3, v->len - 3);
        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        rc->db = n;
        return NGX_OK;
    }

    if (ngx_strncmp(v->data, "password=", 9) == 0 && v->len > 9) {
        rc->password.data = v->data + 9;
        rc->password.len = v->len - 9;
        return NGX_OK;
    }

    if (ngx_strncmp(v->data, "prefix=", 7) == 0) {
        rc->prefix.data = v->data + 7;
        rc->prefix.len = v->len - 7;
        return NGX_OK;
    }

    if (ngx_strncmp(v->data, "claims=", 7) == 0) {
        n = ngx_atoi(v->data + 7, v->len - 7);
        if (n == NGX_ERROR || n == 0) {
            return NGX_ERROR;
        }

        rc->claims = n;
        return NGX_OK;
    }

    if (ngx_strncmp(v->data, "timeout=", 8) == 0) {
        s.data = v->data + 8;
        s.len = v->len - 8;

    } else if (ngx_strncmp(v->data, "lease=", 6) == 0) {
        s.data = v->data + 6;
        s.len = v->len - 6;

    } else {
        return NGX_ERROR;
    }

    t = ngx_parse_time(&s, 0);
    if (t == (ngx_msec_t) NGX_ERROR || t == 0) {
        return NGX_ERROR;
    }

    if (v->data[0] == 't') {
        rc->timeout = t;

    } else {
        rc->lease = t;
    }

    return NGX_OK;
}


/*
 * amonitor_redis ADDR [db=N] [password=P] [prefix=S] [timeout=T] [lease=T]
 * [claims=N]: the directive's parser lives with its backend.
 */
char *
ngx_http_amonitor_store_redis_conf(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_amonitor_main_conf_t *amcf = conf;

    ngx_str_t                      *value;
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

    if (ngx_http_amonitor_redis_addr(cf, rc, &value[1]) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_http_amonitor_redis_param(rc, &value[i]) != NGX_OK) {
            goto invalid;
        }
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


/*
 * The running configuration's store, kept in the master across reloads
 * (the module stays loaded while the old cycle lives): a reload that
 * renames the zone or adds or removes amonitor_redis would start from an
 * empty dedupe table, and a msg_id acked before it would run again.  A
 * reload that removes the whole configuration keeps the zone.
 */
static u_char     ngx_http_amonitor_store_zone[256];
static size_t     ngx_http_amonitor_store_zone_len;
static size_t     ngx_http_amonitor_store_zone_size;
static ngx_uint_t ngx_http_amonitor_store_known;
static ngx_uint_t ngx_http_amonitor_store_redis;


static ngx_int_t ngx_http_amonitor_store_zone_keep(
    ngx_conf_t *cf, ngx_http_amonitor_main_conf_t *amcf);


ngx_int_t
ngx_http_amonitor_store_reload_check(
    ngx_conf_t *cf, ngx_http_amonitor_main_conf_t *amcf)
{
    ngx_str_t *name;

    if (!ngx_http_amonitor_store_known
        || ngx_http_amonitor_store_zone_len == 0) {
        return NGX_OK;
    }

    if (amcf->shm_zone == NULL) {
        return ngx_http_amonitor_store_zone_keep(cf, amcf);
    }

    name = &amcf->shm_zone->shm.name;

    if (name->len != ngx_http_amonitor_store_zone_len
        || ngx_memcmp(name->data, ngx_http_amonitor_store_zone, name->len)
            != 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
            "amonitor zone \"%*s\" cannot be renamed to \"%V\" on reload: "
            "the dedupe state would be lost; keep the name, or restart "
            "nginx to rename it",
            ngx_http_amonitor_store_zone_len, ngx_http_amonitor_store_zone,
            name);
        return NGX_ERROR;
    }

    if ((amcf->redis != NULL) != ngx_http_amonitor_store_redis) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
            "\"amonitor_redis\" cannot be %s on reload: the dedupe state "
            "would be lost; restart nginx to change the store",
            amcf->redis ? "added" : "removed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A reload without any amonitor_zone while one runs (the amonitor lines
 * commented out, the module still loaded): nginx would free the zone,
 * and the next reload that brings the configuration back would start
 * from an empty dedupe table and new counters.  The zone is kept as it
 * is, unused, until nginx restarts.
 */
static ngx_int_t
ngx_http_amonitor_store_zone_keep(
    ngx_conf_t *cf, ngx_http_amonitor_main_conf_t *amcf)
{
    ngx_str_t name;

    name.len = ngx_http_amonitor_store_zone_len;
    name.data = ngx_pnalloc(cf->pool, name.len);
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(name.data, ngx_http_amonitor_store_zone, name.len);

    amcf->shm_zone = ngx_shared_memory_add(cf, &name,
        ngx_http_amonitor_store_zone_size, &ngx_http_amonitor_module);
    if (amcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    amcf->shm_zone->init = ngx_http_amonitor_store_shm_init_zone;
    amcf->shm_zone->data = amcf;
    amcf->zone_kept = 1;

    ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
        "amonitor zone \"%V\" is kept although no \"amonitor_zone\" is "
        "configured: its dedupe state and counters stay for when the "
        "configuration comes back; restart nginx to free it",
        &name);

    return NGX_OK;
}


/* the cycle is the running one now: what the next reload is held to */
void
ngx_http_amonitor_store_reload_keep(ngx_http_amonitor_main_conf_t *amcf)
{
    ngx_str_t *name;

    ngx_http_amonitor_store_known = 1;

    if (amcf->zone_kept) {
        /* the configuration is out: held to what it was */
        return;
    }

    ngx_http_amonitor_store_zone_len = 0;
    ngx_http_amonitor_store_redis = (amcf->redis != NULL);

    if (amcf->shm_zone) {
        name = &amcf->shm_zone->shm.name;

        if (name->len <= sizeof(ngx_http_amonitor_store_zone)) {
            ngx_memcpy(ngx_http_amonitor_store_zone, name->data, name->len);
            ngx_http_amonitor_store_zone_len = name->len;
            ngx_http_amonitor_store_zone_size = amcf->shm_zone->shm.size;
        }
    }
}
