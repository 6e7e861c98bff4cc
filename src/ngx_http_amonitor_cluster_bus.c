/*
 * Copyright (C) AMonitor authors
 *
 * The cluster bus of one worker: two Redis connections (the connection
 * code of the Redis store), one for commands and PUBLISH, one that only
 * SUBSCRIBEs (a subscribed connection cannot send other commands), and
 * the bus messages: a kind byte, then fields with a 4-byte length each.
 * Messages read go to cl->on_message, set by cluster.c above.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor_cluster.h"


static void ngx_http_amonitor_bus_cmd_flush(ngx_http_amonitor_redis_t *ctx);
static void ngx_http_amonitor_bus_sub_flush(ngx_http_amonitor_redis_t *ctx);
static void ngx_http_amonitor_bus_noop(ngx_http_amonitor_redis_t *ctx);
static void ngx_http_amonitor_bus_quit(ngx_http_amonitor_redis_t *ctx);
static void ngx_http_amonitor_bus_drain(ngx_event_t *ev);
static void ngx_http_amonitor_bus_drained(ngx_http_amonitor_cluster_t *cl);
static void ngx_http_amonitor_bus_subscribed(
    redisAsyncContext *ac, void *r, void *privdata);
static void ngx_http_amonitor_bus_published(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);
static ngx_int_t ngx_http_amonitor_bus_unpack(
    u_char *p, size_t len, ngx_http_amonitor_bus_msg_t *m);


ngx_int_t
ngx_http_amonitor_bus_init(ngx_http_amonitor_cluster_t *cl)
{
    ngx_http_amonitor_worker_t *w;

    w = cl->worker;

    cl->cmd = ngx_http_amonitor_redis_conn_init(w, cl->redis);
    cl->sub = ngx_http_amonitor_redis_conn_init(w, cl->redis);

    if (cl->cmd == NULL || cl->sub == NULL) {
        return NGX_ERROR;
    }

    /* not counted as the store's connections (metrics) */
    cl->cmd->store.zone = NULL;
    cl->sub->store.zone = NULL;

    cl->cmd->flush = ngx_http_amonitor_bus_cmd_flush;
    cl->cmd->renew = ngx_http_amonitor_bus_noop;
    cl->sub->flush = ngx_http_amonitor_bus_sub_flush;
    cl->sub->renew = ngx_http_amonitor_bus_noop;
    cl->sub->subscriber = 1;
    cl->sub->quit = ngx_http_amonitor_bus_quit;

    ngx_http_amonitor_redis_conn_start(cl->cmd);
    ngx_http_amonitor_redis_conn_start(cl->sub);

    return NGX_OK;
}


void
ngx_http_amonitor_bus_exit(ngx_http_amonitor_cluster_t *cl)
{
    if (cl->drain.timer_set) {
        ngx_del_timer(&cl->drain);
    }

    if (cl->sub) {
        ngx_http_amonitor_redis_conn_exit(cl->sub);
    }

    if (cl->cmd) {
        ngx_http_amonitor_redis_conn_exit(cl->cmd);
    }
}


/* both connections usable: commands can go, and messages come in */
ngx_int_t
ngx_http_amonitor_bus_ready(ngx_http_amonitor_cluster_t *cl)
{
    return cl->cmd->ready && cl->sub->ready && cl->subscribed == cl->sub->ac
        && cl->subscribed != NULL;
}


/* called when the command connection is ready and on its every tick */
static void
ngx_http_amonitor_bus_cmd_flush(ngx_http_amonitor_redis_t *ctx)
{
    ngx_http_amonitor_cluster_t *cl;

    cl = ctx->worker->cluster;

    if (cl != NULL && ctx->ready && cl->on_ready) {
        cl->on_ready(cl);
    }
}


static void
ngx_http_amonitor_bus_noop(ngx_http_amonitor_redis_t *ctx)
{
}


/* a new subscriber connection subscribes once it is ready */
static void
ngx_http_amonitor_bus_sub_flush(ngx_http_amonitor_redis_t *ctx)
{
    ngx_http_amonitor_cluster_t *cl;

    cl = ctx->worker->cluster;

    if (cl == NULL || ctx->ac == NULL || !ctx->ready
        || cl->subscribed == ctx->ac) {
        return;
    }

    /* the owners channel last: the third confirmation says "subscribed" */
    if (redisAsyncCommand(ctx->ac, ngx_http_amonitor_bus_subscribed, cl,
            cl->owner ? "SUBSCRIBE %b %b %b %b" : "SUBSCRIBE %b %b %b",
            cl->ch_events.data, cl->ch_events.len, cl->ch_routes.data,
            cl->ch_routes.len, cl->ch_self.data, cl->ch_self.len,
            cl->ch_owners.data, cl->ch_owners.len)
        != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, cl->log, 0,
            "amonitor: cannot subscribe to the cluster channels");
        return;
    }

    cl->subscribed = ctx->ac;

    /* nginx tells it when the worker exits gracefully (bus_quit) */
    ctx->conn->idle = 1;
}


/*
 * nginx closes its idle connections: the worker exits gracefully; or,
 * with c->error, worker_shutdown_timeout has passed: nothing waits longer
 */
static void
ngx_http_amonitor_bus_quit(ngx_http_amonitor_redis_t *ctx)
{
    ngx_http_amonitor_cluster_t *cl;

    cl = ctx->worker->cluster;

    if (!ngx_http_amonitor_cluster_quit(ctx->worker) || !ctx->conn->error) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, cl->log, 0,
        "amonitor: worker_shutdown_timeout: the worker exits before the "
        "cluster actions it ran were acked");

    if (cl->drain.timer_set) {
        ngx_del_timer(&cl->drain);
    }

    ngx_http_amonitor_bus_drained(cl);
}


/*
 * The worker exits gracefully (a reload, a stop).  If it has held a
 * lease, it takes no more actions before it closes its SDK connections
 * and releases its leases: it unsubscribes from its own channel.  Redis
 * delivers what was published there before that, and those actions run
 * on the connections still open here; an action published after it finds
 * no owner on the channel and waits for the next (on_hold).  The worker
 * goes on once the unsubscribe is confirmed and the actions it runs for
 * others are acked, or after lease/4 at most (its leases are not renewed
 * meanwhile).  1: wait (the first idle connection nginx closes starts
 * it; the SDK connections wait for it).
 */
ngx_uint_t
ngx_http_amonitor_cluster_quit(ngx_http_amonitor_worker_t *w)
{
    ngx_http_amonitor_cluster_t *cl;

    cl = w->cluster;

    if (cl == NULL || cl->drained) {
        return 0;
    }

    if (cl->draining) {
        return 1;
    }

    cl->drained = 1;

    if (!cl->owner || ngx_terminate || cl->subscribed == NULL
        || cl->subscribed != cl->sub->ac
        || redisAsyncCommand(cl->subscribed, NULL, NULL, "UNSUBSCRIBE %b",
               cl->ch_self.data, cl->ch_self.len)
            != REDIS_OK) {
        return 0;
    }

    ngx_log_error(NGX_LOG_INFO, cl->log, 0,
        "amonitor: the worker exits: it takes no more cluster actions");

    cl->drained = 0;
    cl->draining = 1;
    cl->drain_until = ngx_current_msec + ngx_max(cl->conf->lease / 4, 1);

    /* not cancelable: the worker does not exit while it is set */
    cl->drain.handler = ngx_http_amonitor_bus_drain;
    cl->drain.data = cl;
    cl->drain.log = cl->log;

    ngx_add_timer(&cl->drain, NGX_HTTP_AMONITOR_CLUSTER_DRAIN);

    return 1;
}


/* the drain is done, or its time is up: the SDK connections close now */
static void
ngx_http_amonitor_bus_drained(ngx_http_amonitor_cluster_t *cl)
{
    cl->draining = 0;
    cl->drained = 1;

    ngx_close_idle_connections(cl->worker->cycle);
}


static void
ngx_http_amonitor_bus_drain(ngx_event_t *ev)
{
    ngx_http_amonitor_cluster_t *cl = ev->data;

    ngx_uint_t   i, n;
    ngx_queue_t *q, *list;

    if ((cl->unsubscribed || cl->subscribed == NULL)
        && ngx_queue_empty(&cl->remote) && ngx_queue_empty(&cl->remote_wait)) {
        ngx_log_error(NGX_LOG_INFO, cl->log, 0,
            "amonitor: the worker ran its last cluster actions");
        ngx_http_amonitor_bus_drained(cl);
        return;
    }

    if ((ngx_msec_int_t) (cl->drain_until - ngx_current_msec) <= 0) {
        n = 0;

        /* written and waiting for the ack, then not written yet */
        for (i = 0; i < 2; i++) {
            list = i ? &cl->remote_wait : &cl->remote;

            for (q = ngx_queue_head(list); q != ngx_queue_sentinel(list);
                 q = ngx_queue_next(q)) {
                n++;
            }
        }

        ngx_log_error(NGX_LOG_WARN, cl->log, 0,
            "amonitor: the worker exits with %ui cluster actions not acked%s",
            n, cl->unsubscribed ? "" : " (its unsubscribe was not confirmed)");
        ngx_http_amonitor_bus_drained(cl);
        return;
    }

    ngx_add_timer(ev, NGX_HTTP_AMONITOR_CLUSTER_DRAIN);
}


/*
 * The worker took its first lease: it is counted on the owners channel
 * (nothing is published there; the lease scripts count its subscribers)
 * from now on, so that a loss of Redis's data is told from a first start.
 */
void
ngx_http_amonitor_bus_owner(ngx_http_amonitor_cluster_t *cl)
{
    if (cl->owner) {
        return;
    }

    cl->owner = 1;

    /* else with the other channels, when the connection is (again) ready */
    if (cl->subscribed != NULL && cl->subscribed == cl->sub->ac
        && redisAsyncCommand(cl->subscribed, ngx_http_amonitor_bus_subscribed,
               cl, "SUBSCRIBE %b", cl->ch_owners.data, cl->ch_owners.len)
            != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, cl->log, 0,
            "amonitor: cannot subscribe to the cluster's owners channel");
    }
}


/*
 * Every message on the subscribed channels, and the confirmations; NULL
 * when the connection goes: it subscribes again once it is back.
 */
static void
ngx_http_amonitor_bus_subscribed(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_http_amonitor_cluster_t *cl = privdata;

    redisReply                 *reply = r, *kind, *data;
    ngx_http_amonitor_bus_msg_t m;

    if (reply == NULL) {
        if (cl->subscribed == ac) {
            cl->subscribed = NULL;
        }

        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) {
        return;
    }

    kind = reply->element[0];
    data = reply->element[2];

    if (kind->type != REDIS_REPLY_STRING) {
        return;
    }

    if (kind->len == 9 && ngx_strncmp(kind->str, "subscribe", 9) == 0) {
        /* the last of the three: what was missed meanwhile, all at once */
        if (data->type == REDIS_REPLY_INTEGER && data->integer == 3) {
            ngx_log_error(NGX_LOG_INFO, cl->log, 0,
                "amonitor: cluster bus subscribed as \"%V\"", &cl->token);
            cl->on_subscribed(cl);
        }

        return;
    }

    if (kind->len == 11 && ngx_strncmp(kind->str, "unsubscribe", 11) == 0) {
        /* bus_quit's: nothing comes on this worker's channel after it */
        cl->unsubscribed = 1;
        return;
    }

    if (kind->len != 7 || ngx_strncmp(kind->str, "message", 7) != 0
        || data->type != REDIS_REPLY_STRING) {
        return;
    }

    if (!ngx_http_amonitor_redis_format_ok()) {
        /* agents of another format: this one leaves at the next tick */
        return;
    }

    if (ngx_http_amonitor_bus_unpack((u_char *) data->str, data->len, &m)
        != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, cl->log, 0,
            "amonitor: invalid cluster bus message dropped");
        return;
    }

    cl->received++;

    cl->on_message(cl, &m);
}


/*
 * One bus message into "out" (ngx_alloc'd, the caller frees it): the kind,
 * then each field as a 4-byte big-endian length and its bytes.
 */
ngx_int_t
ngx_http_amonitor_bus_pack(ngx_http_amonitor_worker_t *w, u_char kind,
    ngx_str_t *fields, ngx_uint_t n, ngx_str_t *out)
{
    u_char    *p;
    size_t     size;
    ngx_uint_t i;

    size = 1;

    for (i = 0; i < n; i++) {
        size += 4 + fields[i].len;
    }

    p = ngx_alloc(size, w->cycle->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    out->len = size;

    *p++ = kind;

    for (i = 0; i < n; i++) {
        *p++ = (u_char) (fields[i].len >> 24);
        *p++ = (u_char) (fields[i].len >> 16);
        *p++ = (u_char) (fields[i].len >> 8);
        *p++ = (u_char) fields[i].len;

        if (fields[i].len) {
            p = ngx_cpymem(p, fields[i].data, fields[i].len);
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_amonitor_bus_unpack(
    u_char *p, size_t len, ngx_http_amonitor_bus_msg_t *m)
{
    size_t  n;
    u_char *last;

    if (len < 1) {
        return NGX_ERROR;
    }

    last = p + len;
    m->kind = *p++;
    m->n = 0;

    while (p < last) {
        if (last - p < 4 || m->n == NGX_HTTP_AMONITOR_CLUSTER_FIELDS) {
            return NGX_ERROR;
        }

        n = ((size_t) p[0] << 24) | ((size_t) p[1] << 16) | ((size_t) p[2] << 8)
            | (size_t) p[3];
        p += 4;

        if ((size_t) (last - p) < n) {
            return NGX_ERROR;
        }

        m->f[m->n].data = p;
        m->f[m->n].len = n;
        m->n++;
        p += n;
    }

    return NGX_OK;
}


/*
 * PUBLISH one message.  A droppable one (events) is dropped, and counted,
 * while the bus is down or too many commands are waiting for Redis: a
 * slow Redis never makes a queue without bound.
 */
ngx_int_t
ngx_http_amonitor_bus_publish(ngx_http_amonitor_cluster_t *cl,
    ngx_str_t *channel, u_char kind, ngx_str_t *fields, ngx_uint_t n,
    ngx_uint_t droppable)
{
    ngx_int_t rc;
    ngx_str_t out;

    if (!cl->cmd->ready
        || (droppable && cl->inflight >= NGX_HTTP_AMONITOR_CLUSTER_INFLIGHT)) {
        if (cl->dropped++ % 1000 == 0) {
            ngx_log_error(NGX_LOG_WARN, cl->log, 0,
                "amonitor: cluster bus: redis is %s, %uA messages for "
                "other workers dropped so far",
                cl->cmd->ready ? "slow" : "not connected", cl->dropped);
        }

        return NGX_DECLINED;
    }

    if (ngx_http_amonitor_bus_pack(cl->worker, kind, fields, n, &out)
        != NGX_OK) {
        cl->dropped++;
        return NGX_ERROR;
    }

    rc = ngx_http_amonitor_redis_command(cl->cmd,
        ngx_http_amonitor_bus_published, cl, "PUBLISH", "PUBLISH %b %b",
        channel->data, channel->len, out.data, out.len);

    ngx_free(out.data);

    if (rc != NGX_OK) {
        cl->dropped++;
        return rc;
    }

    cl->inflight++;
    cl->published++;

    return NGX_OK;
}


static void
ngx_http_amonitor_bus_published(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply)
{
    ngx_http_amonitor_cluster_t *cl = data;

    if (cl->inflight) {
        cl->inflight--;
    }
}


/* the owner publishes what its SDK sent, for every other worker */
void
ngx_http_amonitor_cluster_event(ngx_http_amonitor_upstream_t *u,
    ngx_uint_t opcode, u_char *data, size_t len)
{
    u_char                       op;
    ngx_str_t                    f[4];
    ngx_http_amonitor_cluster_t *cl;

    cl = u->worker->cluster;
    if (cl == NULL) {
        return;
    }

    op = (u_char) ('0' + opcode);

    f[0] = cl->token;
    f[1] = u->id;
    f[2].data = &op;
    f[2].len = 1;
    f[3].data = data;
    f[3].len = len;

    (void) ngx_http_amonitor_bus_publish(
        cl, &cl->ch_events, NGX_HTTP_AMONITOR_BUS_EVENT, f, 4, 1);
}
