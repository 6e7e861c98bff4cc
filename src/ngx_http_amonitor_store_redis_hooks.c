/*
 * Copyright (C) AMonitor authors
 *
 * The event hooks hiredis calls to watch a Redis connection's socket in
 * nginx's event loop (level-triggered: hiredis reads once a call).  A
 * command is written at the end of the event loop's pass (a posted write
 * event), all of that pass's in one write, with no epoll_ctl(); the socket
 * waits in epoll for writing only for the connect and for a socket buffer
 * left full.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_amonitor_store_redis.h"


static void ngx_http_amonitor_redis_add_read(void *privdata);
static void ngx_http_amonitor_redis_del_read(void *privdata);
static void ngx_http_amonitor_redis_del_write(void *privdata);
static void ngx_http_amonitor_redis_cleanup(void *privdata);


/* the hooks of a new hiredis context (ctx->ac) */
void
ngx_http_amonitor_redis_hooks(ngx_http_amonitor_redis_t *ctx)
{
    redisAsyncContext *ac;

    ac = ctx->ac;

    ac->ev.data = ctx;
    ac->ev.addRead = ngx_http_amonitor_redis_add_read;
    ac->ev.delRead = ngx_http_amonitor_redis_del_read;
    ac->ev.addWrite = ngx_http_amonitor_redis_add_write;
    ac->ev.delWrite = ngx_http_amonitor_redis_del_write;
    ac->ev.cleanup = ngx_http_amonitor_redis_cleanup;
}


static void
ngx_http_amonitor_redis_add_read(void *privdata)
{
    ngx_http_amonitor_redis_t *ctx = privdata;

    if (ctx->conn && !ctx->conn->read->active) {
        (void) ngx_add_event(ctx->conn->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_amonitor_redis_del_read(void *privdata)
{
    ngx_http_amonitor_redis_t *ctx = privdata;

    if (ctx->conn && ctx->conn->read->active) {
        (void) ngx_del_event(ctx->conn->read, NGX_READ_EVENT, 0);
    }
}


void
ngx_http_amonitor_redis_add_write(void *privdata)
{
    ngx_http_amonitor_redis_t *ctx = privdata;

    ngx_connection_t *c;

    c = ctx->conn;
    if (c == NULL) {
        return;
    }

    if (ctx->writing || ctx->ac == NULL
        || !(ctx->ac->c.flags & REDIS_CONNECTED)) {
        if (ctx->writing && !c->write->active) {
            ngx_log_debug0(NGX_LOG_DEBUG_EVENT, ctx->log, 0,
                "amonitor: redis socket buffer full, "
                "the rest waits for it to drain");
        }

        if (!c->write->active) {
            (void) ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
        }

        return;
    }

    ngx_http_amonitor_post_first(c->write);
}


static void
ngx_http_amonitor_redis_del_write(void *privdata)
{
    ngx_http_amonitor_redis_t *ctx = privdata;

    if (ctx->conn && ctx->conn->write->active) {
        (void) ngx_del_event(ctx->conn->write, NGX_WRITE_EVENT, 0);
    }
}


/* hiredis frees its context and closes the socket: forget our side */
static void
ngx_http_amonitor_redis_cleanup(void *privdata)
{
    ngx_http_amonitor_redis_t *ctx = privdata;

    ngx_connection_t *c;

    c = ctx->conn;
    if (c == NULL) {
        return;
    }

    ngx_http_amonitor_redis_del_read(ctx);
    ngx_http_amonitor_redis_del_write(ctx);

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    ctx->conn = NULL;
}
