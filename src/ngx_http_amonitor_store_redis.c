/*
 * Copyright (C) AMonitor authors
 *
 * The Redis backend of the dedupe store: hiredis' async API driven by
 * nginx's event loop (level-triggered events on the hiredis socket), so
 * several nginx instances share one dedupe table.  Claims are one Lua
 * script (atomic GET-or-SET NX PX); the worker reconnects with backoff.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"


/* "p" pending, "d" + result done, "f" + result failed */
#define NGX_HTTP_AMONITOR_REDIS_CLAIM \
    "local v = redis.call('GET', KEYS[1]) " \
    "if v then return v end " \
    "redis.call('SET', KEYS[1], 'p', 'PX', ARGV[1]) " \
    "return false"

#define NGX_HTTP_AMONITOR_REDIS_RELEASE \
    "if redis.call('GET', KEYS[1]) == 'p' then " \
    "return redis.call('DEL', KEYS[1]) end return 0"


typedef struct {
    ngx_http_amonitor_store_t       store;
    ngx_http_amonitor_redis_conf_t *conf;
    ngx_http_amonitor_worker_t     *worker;
    redisAsyncContext              *ac;
    ngx_connection_t               *conn;
    ngx_event_t                     reconnect;
    ngx_msec_t                      backoff;
    ngx_msec_t                      ttl;
    ngx_log_t                      *log;
    ngx_uint_t                      failures;
    unsigned                        ready : 1;
    unsigned                        stopped : 1;
} ngx_http_amonitor_redis_t;


typedef struct {
    ngx_http_amonitor_claim_pt handler;
    void                      *data;
    ngx_http_amonitor_redis_t *ctx;
} ngx_http_amonitor_redis_req_t;


static void ngx_http_amonitor_redis_connect(ngx_http_amonitor_redis_t *ctx);
static void ngx_http_amonitor_redis_reconnect_handler(ngx_event_t *ev);
static void ngx_http_amonitor_redis_schedule(ngx_http_amonitor_redis_t *ctx);
static void ngx_http_amonitor_redis_connected(
    const redisAsyncContext *ac, int status);
static void ngx_http_amonitor_redis_disconnected(
    const redisAsyncContext *ac, int status);
static void ngx_http_amonitor_redis_setup_cb(
    redisAsyncContext *ac, void *r, void *privdata);
static void      ngx_http_amonitor_redis_read_handler(ngx_event_t *ev);
static void      ngx_http_amonitor_redis_write_handler(ngx_event_t *ev);
static void      ngx_http_amonitor_redis_add_read(void *privdata);
static void      ngx_http_amonitor_redis_del_read(void *privdata);
static void      ngx_http_amonitor_redis_add_write(void *privdata);
static void      ngx_http_amonitor_redis_del_write(void *privdata);
static void      ngx_http_amonitor_redis_cleanup(void *privdata);
static ngx_int_t ngx_http_amonitor_redis_claim(ngx_http_amonitor_store_t *st,
    ngx_str_t *msg_id, ngx_http_amonitor_claim_e *state, ngx_str_t *result,
    ngx_http_amonitor_claim_pt handler, void *data);
static void      ngx_http_amonitor_redis_claim_cb(
         redisAsyncContext *ac, void *r, void *privdata);
static void ngx_http_amonitor_redis_finish(ngx_http_amonitor_store_t *st,
    ngx_str_t *msg_id, ngx_http_amonitor_claim_e state, ngx_str_t *result);
static void ngx_http_amonitor_redis_release(
    ngx_http_amonitor_store_t *st, ngx_str_t *msg_id);
static void ngx_http_amonitor_redis_write_cb(
    redisAsyncContext *ac, void *r, void *privdata);


ngx_http_amonitor_store_t *
ngx_http_amonitor_store_redis_create(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_redis_conf_t *conf)
{
    ngx_http_amonitor_redis_t *ctx;

    ctx = ngx_pcalloc(w->cycle->pool, sizeof(ngx_http_amonitor_redis_t));
    if (ctx == NULL) {
        return NULL;
    }

    ctx->conf = conf;
    ctx->worker = w;
    ctx->ttl = w->amcf->dedupe_ttl;
    ctx->log = w->cycle->log;
    ctx->backoff = w->amcf->reconnect_min;

    ctx->reconnect.handler = ngx_http_amonitor_redis_reconnect_handler;
    ctx->reconnect.data = ctx;
    ctx->reconnect.log = ctx->log;
    ctx->reconnect.cancelable = 1;

    ctx->store.claim = ngx_http_amonitor_redis_claim;
    ctx->store.finish = ngx_http_amonitor_redis_finish;
    ctx->store.release = ngx_http_amonitor_redis_release;

    /* the registry of learned targets stays in the zone in this version */
    ctx->store.learn = ngx_http_amonitor_registry_add;
    ctx->store.learned = ngx_http_amonitor_registry_snapshot;
    ctx->store.zone = w->amcf->shm_zone;
    ctx->store.data = ctx;

    ngx_http_amonitor_redis_connect(ctx);

    return &ctx->store;
}


void
ngx_http_amonitor_store_redis_exit(ngx_http_amonitor_store_t *st)
{
    ngx_http_amonitor_redis_t *ctx = st->data;

    ctx->stopped = 1;
    ngx_http_amonitor_store_redis_ready(&ctx->store, ctx->ready, 0);
    ctx->ready = 0;

    if (ctx->reconnect.timer_set) {
        ngx_del_timer(&ctx->reconnect);
    }

    if (ctx->ac) {
        /* callbacks of commands still waiting run with a NULL reply */
        redisAsyncFree(ctx->ac);
        ctx->ac = NULL;
    }
}


static void
ngx_http_amonitor_redis_connect(ngx_http_amonitor_redis_t *ctx)
{
    redisAsyncContext *ac;
    ngx_connection_t  *c;

    if (ctx->stopped || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    /* a numeric address resolved at configuration time: no DNS here */
    ac = redisAsyncConnect((char *) ctx->conf->host.data, ctx->conf->port);

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
            "amonitor: cannot create a redis context");
        ngx_http_amonitor_redis_schedule(ctx);
        return;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0, "amonitor: redis %V: %s",
            &ctx->conf->addr, ac->errstr);
        redisAsyncFree(ac);
        ngx_http_amonitor_redis_schedule(ctx);
        return;
    }

    c = ngx_get_connection(ac->c.fd, ctx->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_http_amonitor_redis_schedule(ctx);
        return;
    }

    c->data = ctx;
    c->read->handler = ngx_http_amonitor_redis_read_handler;
    c->write->handler = ngx_http_amonitor_redis_write_handler;
    c->read->log = ctx->log;
    c->write->log = ctx->log;

    ctx->ac = ac;
    ctx->conn = c;

    ac->data = ctx;
    ac->ev.data = ctx;
    ac->ev.addRead = ngx_http_amonitor_redis_add_read;
    ac->ev.delRead = ngx_http_amonitor_redis_del_read;
    ac->ev.addWrite = ngx_http_amonitor_redis_add_write;
    ac->ev.delWrite = ngx_http_amonitor_redis_del_write;
    ac->ev.cleanup = ngx_http_amonitor_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_http_amonitor_redis_connected);
    redisAsyncSetDisconnectCallback(ac, ngx_http_amonitor_redis_disconnected);

    /* hiredis waits for the connect to complete on a write event */
    ngx_http_amonitor_redis_add_write(ctx);
}


static void
ngx_http_amonitor_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_amonitor_redis_t *ctx = ac->data;

    redisAsyncContext *mac;

    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
            "amonitor: cannot connect to redis %V: %s", &ctx->conf->addr,
            ac->errstr);

        /* hiredis frees the context after this callback */
        ctx->ac = NULL;
        ngx_http_amonitor_redis_schedule(ctx);
        return;
    }

    mac = (redisAsyncContext *) ac;

    if (ctx->conf->password.len) {
        (void) redisAsyncCommand(mac, ngx_http_amonitor_redis_setup_cb, ctx,
            "AUTH %b", ctx->conf->password.data, ctx->conf->password.len);
    }

    if (ctx->conf->db) {
        (void) redisAsyncCommand(mac, ngx_http_amonitor_redis_setup_cb, ctx,
            "SELECT %d", (int) ctx->conf->db);
    }

    /* commands are pipelined in order: claims go after AUTH and SELECT */
    ngx_http_amonitor_store_redis_ready(&ctx->store, ctx->ready, 1);
    ctx->ready = 1;

    if (ctx->failures) {
        ngx_log_error(NGX_LOG_WARN, ctx->log, 0,
            "amonitor: reconnected to redis %V after %ui failed attempts",
            &ctx->conf->addr, ctx->failures);

    } else {
        ngx_log_error(NGX_LOG_INFO, ctx->log, 0,
            "amonitor: connected to redis %V", &ctx->conf->addr);
    }

    ctx->failures = 0;
    ctx->backoff = ctx->worker->amcf->reconnect_min;
}


static void
ngx_http_amonitor_redis_setup_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_http_amonitor_redis_t *ctx = privdata;

    redisReply *reply = r;

    if (reply == NULL || reply->type != REDIS_REPLY_ERROR || ctx->stopped) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
        "amonitor: redis %V refused the setup: %*s", &ctx->conf->addr,
        (size_t) reply->len, reply->str);

    ngx_http_amonitor_store_redis_ready(&ctx->store, ctx->ready, 0);
    ctx->ready = 0;
    redisAsyncDisconnect(ac);
}


static void
ngx_http_amonitor_redis_disconnected(const redisAsyncContext *ac, int status)
{
    ngx_http_amonitor_redis_t *ctx = ac->data;

    ngx_http_amonitor_store_redis_ready(&ctx->store, ctx->ready, 0);
    ctx->ready = 0;
    ctx->ac = NULL;

    if (ctx->stopped) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
        "amonitor: lost the connection to redis %V%s%s", &ctx->conf->addr,
        status == REDIS_OK ? "" : ": ", status == REDIS_OK ? "" : ac->errstr);

    ngx_http_amonitor_redis_schedule(ctx);
}


static void
ngx_http_amonitor_redis_schedule(ngx_http_amonitor_redis_t *ctx)
{
    ngx_msec_t delay;

    if (ctx->stopped || ngx_exiting || ngx_quit || ngx_terminate
        || ctx->reconnect.timer_set) {
        return;
    }

    ctx->failures++;

    delay = ngx_http_amonitor_backoff(ctx->worker->amcf, &ctx->backoff);

    ngx_add_timer(&ctx->reconnect, delay);
}


static void
ngx_http_amonitor_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_amonitor_redis_connect(ev->data);
}


/* the event hooks hiredis calls; level-triggered: it reads once a call */

static void
ngx_http_amonitor_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t          *c = ev->data;
    ngx_http_amonitor_redis_t *ctx = c->data;

    if (ctx->ac) {
        redisAsyncHandleRead(ctx->ac);
    }
}


static void
ngx_http_amonitor_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t          *c = ev->data;
    ngx_http_amonitor_redis_t *ctx = c->data;

    if (ctx->ac) {
        redisAsyncHandleWrite(ctx->ac);
    }
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


static void
ngx_http_amonitor_redis_add_write(void *privdata)
{
    ngx_http_amonitor_redis_t *ctx = privdata;

    if (ctx->conn && !ctx->conn->write->active) {
        (void) ngx_add_event(
            ctx->conn->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }
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


static ngx_int_t
ngx_http_amonitor_redis_claim(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
    ngx_http_amonitor_claim_e *state, ngx_str_t *result,
    ngx_http_amonitor_claim_pt handler, void *data)
{
    ngx_http_amonitor_redis_t *ctx = st->data;

    u_char                         ttl[NGX_INT_T_LEN];
    size_t                         len;
    ngx_http_amonitor_redis_req_t *req;

    if (!ctx->ready || ctx->ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
            "amonitor: redis %V is not connected, action \"%V\" refused",
            &ctx->conf->addr, msg_id);
        return NGX_ERROR;
    }

    req = ngx_alloc(sizeof(ngx_http_amonitor_redis_req_t), ctx->log);
    if (req == NULL) {
        return NGX_ERROR;
    }

    req->handler = handler;
    req->data = data;
    req->ctx = ctx;

    len = ngx_sprintf(ttl, "%M", ctx->ttl) - ttl;

    if (redisAsyncCommand(ctx->ac, ngx_http_amonitor_redis_claim_cb, req,
            "EVAL %s 1 %b%b %b", NGX_HTTP_AMONITOR_REDIS_CLAIM,
            ctx->conf->prefix.data, ctx->conf->prefix.len, msg_id->data,
            msg_id->len, ttl, len)
        != REDIS_OK) {
        ngx_free(req);
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


static void
ngx_http_amonitor_redis_claim_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_http_amonitor_redis_req_t *req = privdata;

    ngx_str_t                 result;
    redisReply               *reply = r;
    ngx_http_amonitor_claim_e state;

    ngx_str_null(&result);
    state = NGX_HTTP_AMONITOR_CLAIM_ERROR;

    if (reply == NULL) {
        /* disconnected or freed: the action is answered INTERNAL */

    } else if (reply->type == REDIS_REPLY_NIL) {
        state = NGX_HTTP_AMONITOR_CLAIM_NEW;

    } else if (reply->type == REDIS_REPLY_STRING && reply->len >= 1) {
        result.data = (u_char *) reply->str + 1;
        result.len = reply->len - 1;

        switch (reply->str[0]) {
        case 'd': state = NGX_HTTP_AMONITOR_CLAIM_DONE; break;
        case 'f': state = NGX_HTTP_AMONITOR_CLAIM_FAILED; break;
        default: state = NGX_HTTP_AMONITOR_CLAIM_PENDING; ngx_str_null(&result);
        }

    } else if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, req->ctx->log, 0,
            "amonitor: redis claim failed: %*s", (size_t) reply->len,
            reply->str);
    }

    req->handler(req->data, state, &result);

    ngx_free(req);
}


static void
ngx_http_amonitor_redis_finish(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
    ngx_http_amonitor_claim_e state, ngx_str_t *result)
{
    ngx_http_amonitor_redis_t *ctx = st->data;

    u_char value[1 + NGX_HTTP_AMONITOR_RESULT_MAX], ttl[NGX_INT_T_LEN];
    size_t len, tlen;

    if (!ctx->ready || ctx->ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
            "amonitor: redis %V is not connected, the result of \"%V\" "
            "is not recorded",
            &ctx->conf->addr, msg_id);
        return;
    }

    value[0] = (state == NGX_HTTP_AMONITOR_CLAIM_DONE) ? 'd' : 'f';
    len = 1;

    if (result && result->len <= NGX_HTTP_AMONITOR_RESULT_MAX) {
        len = ngx_cpymem(value + 1, result->data, result->len) - value;
    }

    tlen = ngx_sprintf(ttl, "%M", ctx->ttl) - ttl;

    (void) redisAsyncCommand(ctx->ac, ngx_http_amonitor_redis_write_cb, ctx,
        "SET %b%b %b PX %b", ctx->conf->prefix.data, ctx->conf->prefix.len,
        msg_id->data, msg_id->len, value, len, ttl, tlen);
}


static void
ngx_http_amonitor_redis_release(
    ngx_http_amonitor_store_t *st, ngx_str_t *msg_id)
{
    ngx_http_amonitor_redis_t *ctx = st->data;

    if (!ctx->ready || ctx->ac == NULL) {
        return;
    }

    (void) redisAsyncCommand(ctx->ac, ngx_http_amonitor_redis_write_cb, ctx,
        "EVAL %s 1 %b%b", NGX_HTTP_AMONITOR_REDIS_RELEASE,
        ctx->conf->prefix.data, ctx->conf->prefix.len, msg_id->data,
        msg_id->len);
}


static void
ngx_http_amonitor_redis_write_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_http_amonitor_redis_t *ctx = privdata;

    redisReply *reply = r;

    if (reply && reply->type == REDIS_REPLY_ERROR && !ctx->stopped) {
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
            "amonitor: redis command failed: %*s", (size_t) reply->len,
            reply->str);
    }
}
