/*
 * Copyright (C) AMonitor authors
 *
 * amonitor_cluster: the directive, the cluster runtime of a worker (its
 * token, channels, timers) and what it does with bus messages: events and
 * acks of other workers through the router, routes learned through
 * target.c, errors for actions through action.c.  It sits next to
 * worker.c, above the files it calls; the cluster files below it reach it
 * only through cl->on_message, cl->on_ready and cl->on_subscribed.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor_cluster.h"


#define NGX_HTTP_AMONITOR_CODE_MAX 64
#define NGX_HTTP_AMONITOR_TEXT_MAX 256


static ngx_int_t ngx_http_amonitor_cluster_names(
    ngx_http_amonitor_cluster_t *cl, ngx_pool_t *pool);
static ngx_int_t ngx_http_amonitor_cluster_name(ngx_pool_t *pool,
    ngx_str_t *out, ngx_str_t *prefix, const char *what, ngx_str_t *tail);
static void      ngx_http_amonitor_cluster_message(
         ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_bus_msg_t *m);
static void ngx_http_amonitor_cluster_error(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_bus_msg_t *m);
static void ngx_http_amonitor_cluster_ready(ngx_http_amonitor_cluster_t *cl);
static void ngx_http_amonitor_cluster_subscribed(
    ngx_http_amonitor_cluster_t *cl);
static void ngx_http_amonitor_cluster_confirm(ngx_http_amonitor_cluster_t *cl);
static void ngx_http_amonitor_cluster_tell_held(
    ngx_http_amonitor_cluster_t *cl, ngx_str_t *asker);
static void ngx_http_amonitor_cluster_held(
    ngx_http_amonitor_cluster_t *cl, ngx_str_t *ids);
static void       ngx_http_amonitor_cluster_tick(ngx_event_t *ev);
static void       ngx_http_amonitor_cluster_resync(ngx_event_t *ev);
static ngx_uint_t ngx_http_amonitor_cluster_opcode(
    ngx_http_amonitor_cluster_t *cl, ngx_str_t *f);
static ngx_http_amonitor_upstream_t *ngx_http_amonitor_cluster_target(
    ngx_http_amonitor_cluster_t *cl, ngx_str_t *id);


/* amonitor_cluster on|off [lease=T] [route_ttl=T] */
char *
ngx_http_amonitor_cluster_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_amonitor_main_conf_t *amcf = conf;

    ngx_str_t                        *value, s;
    ngx_msec_t                        t;
    ngx_uint_t                        i;
    ngx_http_amonitor_cluster_conf_t *cc;

    value = cf->args->elts;

    if (amcf->cluster_set) {
        return "is duplicate";
    }

    amcf->cluster_set = 1;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts > 2) {
            return "takes no parameters with \"off\"";
        }

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "on") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "invalid value \"%V\" in \"amonitor_cluster\", "
            "it must be \"on\" or \"off\"",
            &value[1]);
        return NGX_CONF_ERROR;
    }

    cc = ngx_pcalloc(cf->pool, sizeof(ngx_http_amonitor_cluster_conf_t));
    if (cc == NULL) {
        return NGX_CONF_ERROR;
    }

    cc->lease = 2000;
    cc->route_ttl = 24 * 60 * 60 * 1000;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "lease=", 6) == 0) {
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;
            t = ngx_parse_time(&s, 0);

            if (t == (ngx_msec_t) NGX_ERROR || t < 500 || t > 60000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                    "invalid cluster lease \"%V\", it must be between "
                    "500ms and 60s",
                    &value[i]);
                return NGX_CONF_ERROR;
            }

            cc->lease = t;
            continue;
        }

        if (ngx_strncmp(value[i].data, "route_ttl=", 10) == 0) {
            s.data = value[i].data + 10;
            s.len = value[i].len - 10;
            t = ngx_parse_time(&s, 0);

            if (t == (ngx_msec_t) NGX_ERROR || t < 60000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                    "invalid cluster route_ttl \"%V\", it must be at "
                    "least 1m",
                    &value[i]);
                return NGX_CONF_ERROR;
            }

            cc->route_ttl = t;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "invalid parameter \"%V\" in \"amonitor_cluster\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    amcf->cluster = cc;

    return NGX_CONF_OK;
}


/* at the end of the main configuration: what the cluster needs */
char *
ngx_http_amonitor_cluster_check(
    ngx_conf_t *cf, ngx_http_amonitor_main_conf_t *amcf)
{
    u_char     c;
    ngx_uint_t i;

    if (amcf->cluster == NULL) {
        return NGX_CONF_OK;
    }

    if (amcf->redis == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "\"amonitor_cluster\" requires \"amonitor_redis\"");
        return NGX_CONF_ERROR;
    }

    if (amcf->cluster->lease < 2 * amcf->redis->timeout) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
            "cluster lease of %M ms is shorter than 2 times the redis "
            "timeout of %M ms",
            amcf->cluster->lease, amcf->redis->timeout);
        return NGX_CONF_ERROR;
    }

    if (amcf->instance_id.data) {
        /* it goes into tokens, routes ("url\norigin\ninstance"), logs */
        for (i = 0; i < amcf->instance_id.len; i++) {
            c = amcf->instance_id.data[i];

            if (!(isalnum(c) || c == '.' || c == '_' || c == '-')) {
                break;
            }
        }

        if (amcf->instance_id.len == 0 || amcf->instance_id.len > 64
            || i < amcf->instance_id.len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                "invalid \"amonitor_instance_id\" \"%V\": 1 to 64 letters, "
                "digits, \".\", \"_\" or \"-\"",
                &amcf->instance_id);
            return NGX_CONF_ERROR;
        }

        amcf->cluster->instance = amcf->instance_id;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_amonitor_cluster_init(ngx_http_amonitor_worker_t *w)
{
    ngx_http_amonitor_cluster_t *cl;

    if (w->amcf->cluster == NULL) {
        return NGX_OK;
    }

    cl = ngx_pcalloc(w->cycle->pool, sizeof(ngx_http_amonitor_cluster_t));
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->worker = w;
    cl->conf = w->amcf->cluster;
    cl->redis = w->amcf->redis;
    cl->log = w->cycle->log;

    if (ngx_http_amonitor_cluster_names(cl, w->cycle->pool) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_queue_init(&cl->leases);
    ngx_queue_init(&cl->remote);
    ngx_queue_init(&cl->remote_wait);
    ngx_queue_init(&cl->held);
    ngx_rbtree_init(
        &cl->remote_tree, &cl->remote_sentinel, ngx_str_rbtree_insert_value);

    cl->on_message = ngx_http_amonitor_cluster_message;
    cl->on_ready = ngx_http_amonitor_cluster_ready;
    cl->on_subscribed = ngx_http_amonitor_cluster_subscribed;
    cl->on_hold = ngx_http_amonitor_action_holdable;
    cl->on_rehome = ngx_http_amonitor_action_rehome;

    cl->tick.handler = ngx_http_amonitor_cluster_tick;
    cl->tick.data = cl;
    cl->tick.log = cl->log;
    cl->tick.cancelable = 1;

    cl->resync.handler = ngx_http_amonitor_cluster_resync;
    cl->resync.data = cl;
    cl->resync.log = cl->log;
    cl->resync.cancelable = 1;

    /* before the upstreams start: only lease holders dial */
    w->cluster = cl;

    if (ngx_http_amonitor_bus_init(cl) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_add_timer(&cl->tick, ngx_max(cl->conf->lease / 8, 50));
    ngx_add_timer(&cl->resync, NGX_HTTP_AMONITOR_CLUSTER_RESYNC);

    return NGX_OK;
}


/* the token (instance:pid:random;c), the channels and keys of this worker */
static ngx_int_t
ngx_http_amonitor_cluster_names(
    ngx_http_amonitor_cluster_t *cl, ngx_pool_t *pool)
{
    u_char     *p, rnd[4];
    ngx_str_t  *prefix, none;
    ngx_uint_t  i;
    static char hex[] = "0123456789abcdef";

    if (cl->conf->instance.len == 0) {
        /* default: host:master pid, unique among running instances */
        p = ngx_pnalloc(pool, ngx_cycle->hostname.len + NGX_INT_T_LEN + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        cl->conf->instance.data = p;
        cl->conf->instance.len =
            ngx_sprintf(p, "%V:%P", &ngx_cycle->hostname, ngx_parent) - p;
    }

    ngx_http_amonitor_random(rnd, sizeof(rnd));

    p = ngx_snprintf(cl->tbuf, NGX_HTTP_AMONITOR_CLUSTER_TOKEN_LEN - 11,
        "%V:%P:", &cl->conf->instance, ngx_pid);

    for (i = 0; i < sizeof(rnd); i++) {
        *p++ = hex[rnd[i] >> 4];
        *p++ = hex[rnd[i] & 0xf];
    }

    /*
     * ";c": this worker takes an action's claim with it (a fifth field,
     * ngx_http_amonitor_cluster_forward); an owner of an earlier version
     * has a token without it, and gets the four fields it knows
     */
    *p++ = ';';
    *p++ = 'c';

    cl->token.data = cl->tbuf;
    cl->token.len = p - cl->tbuf;

    prefix = &cl->redis->prefix;
    ngx_str_null(&none);

    if (ngx_http_amonitor_cluster_name(
            pool, &cl->ch_events, prefix, "ev", &none)
            != NGX_OK
        || ngx_http_amonitor_cluster_name(
               pool, &cl->ch_routes, prefix, "rt", &none)
            != NGX_OK
        || ngx_http_amonitor_cluster_name(
               pool, &cl->w_prefix, prefix, "w:", &none)
            != NGX_OK
        || ngx_http_amonitor_cluster_name(
               pool, &cl->ch_self, prefix, "w:", &cl->token)
            != NGX_OK
        || ngx_http_amonitor_cluster_name(
               pool, &cl->k_routes, prefix, "routes", &none)
            != NGX_OK
        || ngx_http_amonitor_cluster_name(
               pool, &cl->k_seen, prefix, "seen", &none)
            != NGX_OK
        || ngx_http_amonitor_cluster_name(
               pool, &cl->k_state, prefix, "state", &none)
            != NGX_OK
        || ngx_http_amonitor_cluster_name(
               pool, &cl->k_lost, prefix, "lost", &none)
            != NGX_OK
        || ngx_http_amonitor_cluster_name(
               pool, &cl->ch_owners, prefix, "owners", &none)
            != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_amonitor_cluster_name(ngx_pool_t *pool, ngx_str_t *out,
    ngx_str_t *prefix, const char *what, ngx_str_t *tail)
{
    u_char *p;
    size_t  n;

    n = ngx_strlen(what);

    p = ngx_pnalloc(pool, prefix->len + n + tail->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    p = ngx_cpymem(p, prefix->data, prefix->len);
    p = ngx_cpymem(p, what, n);

    if (tail->len) {
        p = ngx_cpymem(p, tail->data, tail->len);
    }

    out->len = p - out->data;

    return NGX_OK;
}


void
ngx_http_amonitor_cluster_exit(ngx_http_amonitor_worker_t *w)
{
    ngx_http_amonitor_cluster_t *cl;

    cl = w->cluster;
    if (cl == NULL) {
        return;
    }

    if (cl->tick.timer_set) {
        ngx_del_timer(&cl->tick);
    }

    if (cl->resync.timer_set) {
        ngx_del_timer(&cl->resync);
    }

    ngx_http_amonitor_lease_exit(cl);
    ngx_http_amonitor_remote_exit(cl);
    ngx_http_amonitor_forward_exit(cl);

    cl->on_ready = NULL;

    /* the releases are written before the connection goes */
    ngx_http_amonitor_bus_exit(cl);

    w->cluster = NULL;
}


/* the command connection is (again) usable: tell this instance's routes */
static void
ngx_http_amonitor_cluster_ready(ngx_http_amonitor_cluster_t *cl)
{
    if (cl->announced == cl->cmd->readies) {
        return;
    }

    if (cl->announced) {
        /* a reconnect, not the first connection */
        ngx_http_amonitor_lease_reconnected(cl);
    }

    cl->announced = cl->cmd->readies;

    ngx_http_amonitor_routes_announce_conf(cl);
}


/*
 * Subscribed: the routes are read again, and the states of the targets
 * other workers hold are asked: a new worker learns them at once, and one
 * whose bus was lost those it missed meanwhile.
 */
static void
ngx_http_amonitor_cluster_subscribed(ngx_http_amonitor_cluster_t *cl)
{
    cl->confirm = 1;
    cl->routes_asked = 0;
    cl->routes_read = 0;

    ngx_http_amonitor_cluster_confirm(cl);
}


/*
 * On the tick: once the bus is back and the routes are read (the answers
 * name targets learned from them), every worker is asked which targets it
 * holds (each answers on this worker's channel with their state); a
 * target this worker had as up at its owner that nobody claims within a
 * lease is told down to this worker's panels.
 */
static void
ngx_http_amonitor_cluster_confirm(ngx_http_amonitor_cluster_t *cl)
{
    ngx_queue_t                  *q;
    ngx_http_amonitor_upstream_t *u;
    ngx_http_amonitor_worker_t   *w;

    w = cl->worker;

    if (cl->confirm && ngx_http_amonitor_bus_ready(cl)) {
        if (!cl->routes_read) {
            if (!cl->routes_asked
                && ngx_http_amonitor_routes_resync(cl) == NGX_OK) {
                /* (the command connection may come back after this one) */
                cl->routes_asked = 1;
            }

            return;
        }

        if (ngx_http_amonitor_bus_publish(cl, &cl->ch_events,
                NGX_HTTP_AMONITOR_BUS_QUERY, &cl->token, 1, 0)
            != NGX_OK) {
            return;
        }

        ngx_http_amonitor_cluster_tell_held(cl, NULL);

        cl->confirm = 0;
        cl->confirm_at = ngx_current_msec + cl->conf->lease;

        for (q = ngx_queue_head(&w->upstreams);
             q != ngx_queue_sentinel(&w->upstreams); q = ngx_queue_next(q)) {
            u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, queue);
            u->remote_unsure =
                !ngx_http_amonitor_router_remote_seed(u) && u->remote_up;
        }

        return;
    }

    if (cl->confirm_at == 0
        || (ngx_msec_int_t) (ngx_current_msec - cl->confirm_at) < 0) {
        return;
    }

    cl->confirm_at = 0;

    for (q = ngx_queue_head(&w->upstreams);
         q != ngx_queue_sentinel(&w->upstreams); q = ngx_queue_next(q)) {
        u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, queue);

        if (u->remote_unsure) {
            u->remote_unsure = 0;

            if (u->remote_up && !u->stopped) {
                ngx_log_error(NGX_LOG_WARN, cl->log, 0,
                    "amonitor: no worker of the cluster holds target \"%V\" "
                    "after the cluster bus was lost, its panels here are "
                    "told it is down",
                    &u->id);
                ngx_http_amonitor_router_remote_unconfirmed(u);
            }
        }
    }
}


/*
 * A worker asks which targets this one holds: their ids in one message on
 * its channel, whatever their number (one message per question).  With no
 * asker (this worker has just subscribed) the same goes to every worker:
 * those that started or asked while this one's bus was lost learn what it
 * holds.
 */
static void
ngx_http_amonitor_cluster_tell_held(
    ngx_http_amonitor_cluster_t *cl, ngx_str_t *asker)
{
    u_char                       *p, *base;
    size_t                        size;
    ngx_str_t                     f[2], channel;
    ngx_queue_t                  *q;
    ngx_http_amonitor_worker_t   *w;
    ngx_http_amonitor_upstream_t *u;

    w = cl->worker;
    size = asker ? cl->w_prefix.len + asker->len : 0;

    for (q = ngx_queue_head(&w->upstreams);
         q != ngx_queue_sentinel(&w->upstreams); q = ngx_queue_next(q)) {
        u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, queue);

        if (u->state == NGX_HTTP_AMONITOR_UP_OPEN) {
            size += u->id.len + 1;
        }
    }

    if (size == 0) {
        return; /* (nothing held, and nobody asked) */
    }

    base = ngx_alloc(size, cl->log);
    if (base == NULL) {
        return;
    }

    p = base;

    if (asker) {
        channel.data = p;
        p = ngx_cpymem(p, cl->w_prefix.data, cl->w_prefix.len);
        p = ngx_cpymem(p, asker->data, asker->len);
        channel.len = p - channel.data;

    } else {
        channel = cl->ch_events;
    }

    f[0] = cl->token;
    f[1].data = p;

    for (q = ngx_queue_head(&w->upstreams);
         q != ngx_queue_sentinel(&w->upstreams); q = ngx_queue_next(q)) {
        u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, queue);

        if (u->state == NGX_HTTP_AMONITOR_UP_OPEN) {
            p = ngx_cpymem(p, u->id.data, u->id.len);
            *p++ = '\n';
        }
    }

    f[1].len = p - f[1].data;

    (void) ngx_http_amonitor_bus_publish(
        cl, &channel, NGX_HTTP_AMONITOR_BUS_HELD, f, 2, 0);

    ngx_free(base);
}


/* another worker's answer: the targets it holds open */
static void
ngx_http_amonitor_cluster_held(ngx_http_amonitor_cluster_t *cl, ngx_str_t *ids)
{
    u_char                       *p, *last, *nl;
    ngx_str_t                     id;
    ngx_http_amonitor_upstream_t *u;

    p = ids->data;
    last = p + ids->len;

    while (p < last) {
        nl = ngx_strlchr(p, last, '\n');
        if (nl == NULL) {
            nl = last;
        }

        id.data = p;
        id.len = nl - p;
        p = nl + 1;

        u = ngx_http_amonitor_cluster_target(cl, &id);

        if (u && u->state != NGX_HTTP_AMONITOR_UP_OPEN) {
            ngx_http_amonitor_router_remote_held(u);
        }
    }
}


static void
ngx_http_amonitor_cluster_tick(ngx_event_t *ev)
{
    ngx_http_amonitor_cluster_t *cl = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_http_amonitor_lease_tick(cl);
    ngx_http_amonitor_remote_expire(cl);
    ngx_http_amonitor_cluster_confirm(cl);

    ngx_add_timer(ev, ngx_max(cl->conf->lease / 8, 50));
}


static void
ngx_http_amonitor_cluster_resync(ngx_event_t *ev)
{
    ngx_http_amonitor_cluster_t *cl = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (cl->cmd->ready) {
        (void) ngx_http_amonitor_routes_resync(cl);
    }

    ngx_add_timer(ev, NGX_HTTP_AMONITOR_CLUSTER_RESYNC);
}


/* the routes, events and answers other workers sent */
static void
ngx_http_amonitor_cluster_message(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_bus_msg_t *m)
{
    ngx_uint_t                    opcode;
    ngx_http_amonitor_upstream_t *u;

    switch (m->kind) {

    case NGX_HTTP_AMONITOR_BUS_EVENT:
    case NGX_HTTP_AMONITOR_BUS_ROUTE:
        if (m->n != 4
            || ngx_http_amonitor_cluster_mine(
                cl, (char *) m->f[0].data, m->f[0].len)) {
            /* our own: local panels had it already */
            return;
        }

        if (m->kind == NGX_HTTP_AMONITOR_BUS_ROUTE) {
            ngx_http_amonitor_cluster_learn(cl, &m->f[1], &m->f[2], &m->f[3]);
            return;
        }

        u = ngx_http_amonitor_cluster_target(cl, &m->f[1]);
        opcode = ngx_http_amonitor_cluster_opcode(cl, &m->f[2]);

        if (u == NULL || opcode == 0) {
            return;
        }

        ngx_http_amonitor_router_remote_message(
            u, opcode, m->f[3].data, m->f[3].len);
        return;

    case NGX_HTTP_AMONITOR_BUS_ACTION:
        ngx_http_amonitor_remote_run(cl, m);
        return;

    case NGX_HTTP_AMONITOR_BUS_ACK:
        if (m->n != 3) {
            return;
        }

        u = ngx_http_amonitor_cluster_target(cl, &m->f[0]);
        opcode = ngx_http_amonitor_cluster_opcode(cl, &m->f[1]);

        if (u == NULL || opcode == 0) {
            return;
        }

        ngx_http_amonitor_router_remote_message(
            u, opcode, m->f[2].data, m->f[2].len);
        return;

    case NGX_HTTP_AMONITOR_BUS_ERROR:
        ngx_http_amonitor_cluster_error(cl, m);
        return;

    case NGX_HTTP_AMONITOR_BUS_QUERY:
        if (m->n == 1
            && !ngx_http_amonitor_cluster_mine(
                cl, (char *) m->f[0].data, m->f[0].len)) {
            ngx_http_amonitor_cluster_tell_held(cl, &m->f[0]);
        }

        return;

    case NGX_HTTP_AMONITOR_BUS_HELD:
        if (m->n == 2
            && !ngx_http_amonitor_cluster_mine(
                cl, (char *) m->f[0].data, m->f[0].len)) {
            ngx_http_amonitor_cluster_held(cl, &m->f[1]);
        }

        return;

    default: return;
    }
}


/*
 * The frame type of a relayed message: text or binary, else 0 (dropped: a
 * panel must never get another kind of frame, a close frame above all).
 */
static ngx_uint_t
ngx_http_amonitor_cluster_opcode(ngx_http_amonitor_cluster_t *cl, ngx_str_t *f)
{
    if (f->len == 1
        && (f->data[0] == '0' + AMON_WS_OP_TEXT
            || f->data[0] == '0' + AMON_WS_OP_BINARY)) {
        return f->data[0] - '0';
    }

    ngx_log_error(NGX_LOG_WARN, cl->log, 0,
        "amonitor: invalid cluster bus message dropped: its frame type is "
        "neither text nor binary");

    return 0;
}


static ngx_http_amonitor_upstream_t *
ngx_http_amonitor_cluster_target(ngx_http_amonitor_cluster_t *cl, ngx_str_t *id)
{
    return ngx_http_amonitor_target_find(cl->worker, id);
}


/* the owner (or Redis) says an action of this worker ended in an error */
static void
ngx_http_amonitor_cluster_error(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_bus_msg_t *m)
{
    u_char                        code[NGX_HTTP_AMONITOR_CODE_MAX];
    u_char                        text[NGX_HTTP_AMONITOR_TEXT_MAX];
    ngx_http_amonitor_upstream_t *u;

    if (m->n != 4 || m->f[2].len >= sizeof(code)
        || m->f[3].len >= sizeof(text)) {
        return;
    }

    u = ngx_http_amonitor_cluster_target(cl, &m->f[0]);
    if (u == NULL) {
        return;
    }

    *ngx_cpymem(code, m->f[2].data, m->f[2].len) = '\0';
    *ngx_cpymem(text, m->f[3].data, m->f[3].len) = '\0';

    ngx_http_amonitor_action_remote_error(
        u, &m->f[1], (const char *) code, (const char *) text);
}
