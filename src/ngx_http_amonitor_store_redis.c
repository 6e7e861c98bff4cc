/*
 * Copyright (C) AMonitor authors
 *
 * The Redis backend of the dedupe store, its connection: hiredis' async
 * API driven by nginx's event loop (level-triggered events on the hiredis
 * socket), TCP keepalive, a deadline for every command, AUTH/SELECT/PING
 * before any claim, reconnects with backoff.  The claims are in
 * ngx_http_amonitor_store_redis_claim.c.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor_store_redis.h"


/* TCP keepalive of the Redis socket: first probe after 10 s idle */
#define NGX_HTTP_AMONITOR_REDIS_KEEPIDLE  10
#define NGX_HTTP_AMONITOR_REDIS_KEEPINTVL 5
#define NGX_HTTP_AMONITOR_REDIS_KEEPCNT   3
#define NGX_HTTP_AMONITOR_REDIS_READ_BUF  (1024 * 1024)

/* the last setup command before the format check, which makes it ready */
#define NGX_HTTP_AMONITOR_REDIS_LAST_SETUP "PING"

/* this worker's last format check failed (the same Redis for all its
 * connections: the store's, the cluster's) */
static ngx_uint_t ngx_http_amonitor_redis_format_refused;
static const char ngx_http_amonitor_redis_format_check[] = "format check";
static ngx_msec_t ngx_http_amonitor_redis_format_logged; /* at most 1/min */


static void ngx_http_amonitor_redis_keepalive(ngx_http_amonitor_redis_t *ctx);
static void ngx_http_amonitor_redis_reconnect_handler(ngx_event_t *ev);
static void ngx_http_amonitor_redis_schedule(ngx_http_amonitor_redis_t *ctx);
static void ngx_http_amonitor_redis_drop(ngx_http_amonitor_redis_t *ctx);
static void ngx_http_amonitor_redis_connected(
    const redisAsyncContext *ac, int status);
static void ngx_http_amonitor_redis_disconnected(
    const redisAsyncContext *ac, int status);
static void ngx_http_amonitor_redis_setup(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);
static void      ngx_http_amonitor_redis_ready(ngx_http_amonitor_redis_t *ctx);
static ngx_int_t ngx_http_amonitor_redis_format(ngx_http_amonitor_redis_t *ctx);
static void      ngx_http_amonitor_redis_track(
         ngx_http_amonitor_redis_t *ctx, ngx_http_amonitor_redis_cmd_t *cmd);
static void ngx_http_amonitor_redis_reply(
    redisAsyncContext *ac, void *r, void *privdata);
static void ngx_http_amonitor_redis_timeout_handler(ngx_event_t *ev);
static void ngx_http_amonitor_redis_tick_handler(ngx_event_t *ev);
static void ngx_http_amonitor_redis_read_handler(ngx_event_t *ev);
static void ngx_http_amonitor_redis_write_handler(ngx_event_t *ev);


/* the connection's context; the claims complete it, then start it */
ngx_http_amonitor_redis_t *
ngx_http_amonitor_redis_conn_init(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_redis_conf_t *conf)
{
    ngx_http_amonitor_redis_t *ctx;

    ctx = ngx_pcalloc(w->cycle->pool, sizeof(ngx_http_amonitor_redis_t));
    if (ctx == NULL) {
        return NULL;
    }

    ctx->conf = conf;
    ctx->worker = w;
    ctx->log = w->cycle->log;
    ctx->backoff = w->amcf->reconnect_min;

    ngx_queue_init(&ctx->sent);

    ctx->reconnect.handler = ngx_http_amonitor_redis_reconnect_handler;
    ctx->reconnect.data = ctx;
    ctx->reconnect.log = ctx->log;
    ctx->reconnect.cancelable = 1;

    ctx->timeout.handler = ngx_http_amonitor_redis_timeout_handler;
    ctx->timeout.data = ctx;
    ctx->timeout.log = ctx->log;
    ctx->timeout.cancelable = 1;

    ctx->tick.handler = ngx_http_amonitor_redis_tick_handler;
    ctx->tick.data = ctx;
    ctx->tick.log = ctx->log;
    ctx->tick.cancelable = 1;

    /* the registry of learned targets stays in the zone in this version */
    ngx_http_amonitor_registry_methods(&ctx->store);
    ctx->store.zone = w->amcf->shm_zone;
    ctx->store.registry =
        ngx_http_amonitor_store_shm_registry(w->amcf->shm_zone);
    ctx->store.data = ctx;

    return ctx;
}


void
ngx_http_amonitor_redis_conn_exit(ngx_http_amonitor_redis_t *ctx)
{
    int        done;
    ngx_uint_t i;

    if (ctx->ready && ctx->ac) {
        /* ends still to write: one try, without waiting for answers */
        ctx->flush(ctx);

        done = 0;
        for (i = 0; i < 8 && !done; i++) {
            if (redisBufferWrite(&ctx->ac->c, &done) != REDIS_OK) {
                break;
            }
        }

        ctx->exit_written = done;
    }

    ctx->stopped = 1;
    ngx_http_amonitor_store_redis_ready(&ctx->store, ctx->ready, 0);
    ctx->ready = 0;

    if (ctx->reconnect.timer_set) {
        ngx_del_timer(&ctx->reconnect);
    }

    if (ctx->timeout.timer_set) {
        ngx_del_timer(&ctx->timeout);
    }

    if (ctx->tick.timer_set) {
        ngx_del_timer(&ctx->tick);
    }

    if (ctx->ac) {
        /* callbacks of commands still waiting run with a NULL reply */
        redisAsyncFree(ctx->ac);
        ctx->ac = NULL;
    }

    ngx_http_amonitor_redis_cmds_exit(&ctx->cmds);
}


/*
 * Send one command; "handler" gets its reply, or NULL when the connection
 * goes away first.  NGX_DECLINED: not connected.  Every command has the
 * deadline "timeout=" of amonitor_redis.
 */
ngx_int_t
ngx_http_amonitor_redis_command(ngx_http_amonitor_redis_t *ctx,
    ngx_http_amonitor_redis_reply_pt handler, void *data, const char *name,
    const char *fmt, ...)
{
    int                            rc;
    va_list                        args;
    ngx_http_amonitor_redis_cmd_t *cmd;

    if (ctx->ac == NULL || !ctx->connected || ctx->dropping || ctx->stopped) {
        return NGX_DECLINED;
    }

    cmd = ngx_http_amonitor_redis_cmd_new(
        &ctx->cmds, ctx->log, handler, data, name, 0);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    va_start(args, fmt);
    rc = redisvAsyncCommand(
        ctx->ac, ngx_http_amonitor_redis_reply, cmd, fmt, args);
    va_end(args);

    if (rc != REDIS_OK) {
        ngx_http_amonitor_redis_cmd_free(&ctx->cmds, cmd);
        return NGX_ERROR;
    }

    ngx_http_amonitor_redis_track(ctx, cmd);

    return NGX_OK;
}


/*
 * Send a command formatted by the caller (RESP), with "cmd" made by
 * redis_cmd_new (freed after the reply).  As redis_command; on an error the
 * caller keeps "cmd".
 */
ngx_int_t
ngx_http_amonitor_redis_send(ngx_http_amonitor_redis_t *ctx,
    ngx_http_amonitor_redis_cmd_t *cmd, u_char *buf, size_t len)
{
    if (ctx->ac == NULL || !ctx->connected || ctx->dropping || ctx->stopped) {
        return NGX_DECLINED;
    }

    cmd->ctx = ctx;

    if (redisAsyncFormattedCommand(
            ctx->ac, ngx_http_amonitor_redis_reply, cmd, (char *) buf, len)
        != REDIS_OK) {
        return NGX_ERROR;
    }

    ngx_http_amonitor_redis_track(ctx, cmd);

    return NGX_OK;
}


/* every command has the deadline "timeout=" of amonitor_redis */
static void
ngx_http_amonitor_redis_track(
    ngx_http_amonitor_redis_t *ctx, ngx_http_amonitor_redis_cmd_t *cmd)
{
    cmd->ctx = ctx;
    cmd->deadline = ngx_current_msec + ctx->conf->timeout;

    ngx_queue_insert_tail(&ctx->sent, &cmd->queue);

    if (!ctx->timeout.timer_set) {
        ngx_add_timer(&ctx->timeout, ctx->conf->timeout);
    }
}


/* replies come in the order of the commands: the head is answered */
static void
ngx_http_amonitor_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_http_amonitor_redis_cmd_t *cmd = privdata;

    ngx_http_amonitor_redis_t *ctx;

    ctx = cmd->ctx;

    /*
     * The timeout timer stays as it is: when it fires it looks at the
     * oldest command left and waits for that one's deadline (a timer
     * moved on every reply cost two tree updates per command).
     */
    ngx_queue_remove(&cmd->queue);

    if (r && cmd->again && cmd->again(cmd, r) == NGX_OK) {
        /* sent once more: the reply to that goes to the handler */
        return;
    }

    cmd->handler(ctx, cmd->data, r);

    ngx_http_amonitor_redis_cmd_free(&ctx->cmds, cmd);
}


static void
ngx_http_amonitor_redis_timeout_handler(ngx_event_t *ev)
{
    ngx_http_amonitor_redis_t *ctx = ev->data;

    ngx_queue_t                   *q;
    ngx_msec_int_t                 left;
    ngx_http_amonitor_redis_cmd_t *cmd;

    if (ctx->ac == NULL || ctx->dropping) {
        return;
    }

    if (!ctx->connected) {
        ngx_log_error(NGX_LOG_ERR, ctx->log, NGX_ETIMEDOUT,
            "amonitor: cannot connect to redis %V in %M ms", &ctx->conf->addr,
            ctx->conf->timeout);
        ngx_http_amonitor_redis_drop(ctx);
        return;
    }

    if (ngx_queue_empty(&ctx->sent)) {
        return;
    }

    q = ngx_queue_head(&ctx->sent);
    cmd = ngx_queue_data(q, ngx_http_amonitor_redis_cmd_t, queue);

    left = (ngx_msec_int_t) (cmd->deadline - ngx_current_msec);
    if (left > 0) {
        ngx_add_timer(&ctx->timeout, (ngx_msec_t) left);
        return;
    }

    /* what it did is unknown: the claims' owners sort it out later */
    ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
        "amonitor: redis %V did not answer \"%s\" within %M ms, "
        "closing the connection",
        &ctx->conf->addr, cmd->name, ctx->conf->timeout);

    ngx_http_amonitor_redis_drop(ctx);
}


/* (again): reconnect_handler calls it after a backoff */
void
ngx_http_amonitor_redis_conn_start(ngx_http_amonitor_redis_t *ctx)
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

    /*
     * The reader keeps its buffer up to this size between replies: by
     * default it gives back more than 16 KiB after every read, and grows
     * it again on the next (a malloc and a free per read under load).
     */
    ac->c.reader->maxbuf = NGX_HTTP_AMONITOR_REDIS_READ_BUF;

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
    ctx->connected = 0;
    ctx->dropping = 0;

    ac->data = ctx;
    ngx_http_amonitor_redis_hooks(ctx);

    redisAsyncSetConnectCallback(ac, ngx_http_amonitor_redis_connected);
    redisAsyncSetDisconnectCallback(ac, ngx_http_amonitor_redis_disconnected);

    ngx_http_amonitor_redis_keepalive(ctx);

    /* a connect that hangs (lost SYN) is given up after the timeout */
    ngx_add_timer(&ctx->timeout, ctx->conf->timeout);

    /* hiredis waits for the connect to complete on a write event */
    ngx_http_amonitor_redis_add_write(ctx);
}


/* a peer that vanished without a FIN is found even while idle */
static void
ngx_http_amonitor_redis_keepalive(ngx_http_amonitor_redis_t *ctx)
{
    int          value;
    ngx_socket_t s;

    s = ctx->ac->c.fd;
    value = 1;

    if (setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &value, sizeof(int)) == -1) {
        ngx_log_error(NGX_LOG_ALERT, ctx->log, ngx_socket_errno,
            "setsockopt(SO_KEEPALIVE) to redis failed");
        return;
    }

#if (NGX_HAVE_KEEPALIVE_TUNABLE)

    value = NGX_HTTP_AMONITOR_REDIS_KEEPIDLE;
    (void) setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &value, sizeof(int));

    value = NGX_HTTP_AMONITOR_REDIS_KEEPINTVL;
    (void) setsockopt(s, IPPROTO_TCP, TCP_KEEPINTVL, &value, sizeof(int));

    value = NGX_HTTP_AMONITOR_REDIS_KEEPCNT;
    (void) setsockopt(s, IPPROTO_TCP, TCP_KEEPCNT, &value, sizeof(int));

#endif
}


static void
ngx_http_amonitor_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_amonitor_redis_t *ctx = ac->data;

    ngx_http_amonitor_redis_conf_t *rc;

    rc = ctx->conf;

    if (ctx->timeout.timer_set) {
        ngx_del_timer(&ctx->timeout);
    }

    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
            "amonitor: cannot connect to redis %V: %s", &rc->addr, ac->errstr);

        /* hiredis frees the context after this callback */
        ctx->ac = NULL;
        ngx_http_amonitor_redis_schedule(ctx);
        return;
    }

    ctx->connected = 1;

    /*
     * No claim goes out before all of these are answered: a claim must
     * never run unauthenticated or in another database.
     */

    if (rc->password.len
        && ngx_http_amonitor_redis_command(ctx, ngx_http_amonitor_redis_setup,
               "AUTH", "AUTH", "AUTH %b", rc->password.data, rc->password.len)
            != NGX_OK) {
        goto failed;
    }

    if (rc->db
        && ngx_http_amonitor_redis_command(ctx, ngx_http_amonitor_redis_setup,
               "SELECT", "SELECT", "SELECT %d", (int) rc->db)
            != NGX_OK) {
        goto failed;
    }

    if (ctx->setup && ctx->setup(ctx) != NGX_OK) {
        goto failed;
    }

    if (ngx_http_amonitor_redis_command(ctx, ngx_http_amonitor_redis_setup,
            NGX_HTTP_AMONITOR_REDIS_LAST_SETUP, "PING", "PING")
        == NGX_OK) {
        return;
    }

failed:

    ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
        "amonitor: cannot send the setup to redis %V", &rc->addr);
    ngx_http_amonitor_redis_drop(ctx);
}


static void
ngx_http_amonitor_redis_setup(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply)
{
    const char *name = data;

    ngx_uint_t foreign;

    if (reply == NULL || ctx->stopped || ctx->dropping) {
        return;
    }

    /* agents of another format use the prefix (not LOADING, BUSY, ...) */
    foreign = name == ngx_http_amonitor_redis_format_check
        && reply->type == REDIS_REPLY_ERROR
        && (size_t) reply->len >= sizeof("AMONITOR_FORMAT") - 1
        && ngx_strncmp(
               reply->str, "AMONITOR_FORMAT", sizeof("AMONITOR_FORMAT") - 1)
            == 0;

    if (foreign) {
        if (ngx_http_amonitor_redis_format_refused
            && ngx_current_msec - ngx_http_amonitor_redis_format_logged
                < NGX_HTTP_AMONITOR_LOG_SUMMARY) {
            /* said already, by this or another connection */
            ngx_http_amonitor_redis_drop(ctx);
            return;
        }

        /* the subscriber drops at its tick */
        ngx_http_amonitor_redis_format_refused = 1;
        ngx_http_amonitor_redis_format_logged = ngx_current_msec;

    } else if (name == ngx_http_amonitor_redis_format_check
        && reply->type != REDIS_REPLY_ERROR) {
        ngx_http_amonitor_redis_format_refused = 0;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
            "amonitor: redis %V refused \"%s\": %*s; actions are refused "
            "until it accepts",
            &ctx->conf->addr, name, (size_t) reply->len, reply->str);
        ngx_http_amonitor_redis_drop(ctx);
        return;
    }

    if (ctx->ready) {
        /* a tick's format check */
        return;
    }

    if (ngx_strcmp(name, NGX_HTTP_AMONITOR_REDIS_LAST_SETUP) == 0) {
        /* AUTH and SELECT went through: the format check may write */
        if (ngx_http_amonitor_redis_format(ctx) != NGX_OK) {
            ngx_http_amonitor_redis_drop(ctx);
        }

        return;
    }

    if (name == ngx_http_amonitor_redis_format_check) {
        ngx_http_amonitor_redis_ready(ctx);
    }
}


static void
ngx_http_amonitor_redis_ready(ngx_http_amonitor_redis_t *ctx)
{
    ngx_http_amonitor_store_redis_ready(&ctx->store, ctx->ready, 1);
    ctx->ready = 1;
    ctx->readies++;

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

    /* the ends that waited for Redis first, then renewals: before claims */
    ctx->flush(ctx);
    ctx->renew(ctx);

    if (!ctx->tick.timer_set) {
        ngx_add_timer(&ctx->tick, ctx->conf->lease / 3);
    }
}


/* renew the claims held; a PING when the connection was idle */
static void
ngx_http_amonitor_redis_tick_handler(ngx_event_t *ev)
{
    ngx_http_amonitor_redis_t *ctx = ev->data;

    ngx_msec_t interval;

    if (!ctx->ready || ctx->stopped) {
        return;
    }

    interval = ctx->conf->lease / 3;

    ctx->flush(ctx);
    ctx->renew(ctx);

    if (ngx_http_amonitor_redis_format_refused) {
        /* another connection's check failed: a subscriber has none */
        ngx_http_amonitor_redis_drop(ctx);
        return;
    }

    if (!ctx->subscriber) {
        (void) ngx_http_amonitor_redis_format(ctx);
    }

    ngx_add_timer(&ctx->tick, interval);
}


/* the format check (NGX_HTTP_AMONITOR_LUA_FORMAT); its reply goes to setup */
static ngx_int_t
ngx_http_amonitor_redis_format(ngx_http_amonitor_redis_t *ctx)
{
    ngx_http_amonitor_redis_conf_t *rc;

    rc = ctx->conf;

    return ngx_http_amonitor_redis_command(ctx, ngx_http_amonitor_redis_setup,
        (void *) ngx_http_amonitor_redis_format_check,
        ngx_http_amonitor_redis_format_check, "EVAL %s 1 %bformat %s %llu",
        NGX_HTTP_AMONITOR_LUA_FORMAT, rc->prefix.data, rc->prefix.len,
        NGX_HTTP_AMONITOR_REDIS_FORMAT, (unsigned long long) rc->lease * 3);
}


ngx_uint_t
ngx_http_amonitor_redis_format_ok(void)
{
    return !ngx_http_amonitor_redis_format_refused;
}


/*
 * Close the connection ourselves (timeout, refused setup): commands still
 * waiting get a NULL reply, then a reconnect is scheduled.  Inside a
 * hiredis callback the context is freed when the callback returns.
 */
static void
ngx_http_amonitor_redis_drop(ngx_http_amonitor_redis_t *ctx)
{
    redisAsyncContext *ac;

    ac = ctx->ac;

    if (ac == NULL || ctx->dropping) {
        return;
    }

    ngx_http_amonitor_store_redis_ready(&ctx->store, ctx->ready, 0);
    ctx->dropping = 1;
    ctx->ready = 0;

    if (!ctx->connected) {
        /* hiredis calls no disconnect callback before it connected */
        ctx->ac = NULL;
        redisAsyncFree(ac);
        ctx->dropping = 0;
        ngx_http_amonitor_redis_schedule(ctx);
        return;
    }

    redisAsyncFree(ac);
}


static void
ngx_http_amonitor_redis_disconnected(const redisAsyncContext *ac, int status)
{
    ngx_http_amonitor_redis_t *ctx = ac->data;

    ngx_uint_t dropped;

    dropped = ctx->dropping;

    ngx_http_amonitor_store_redis_ready(&ctx->store, ctx->ready, 0);
    ctx->ac = NULL;
    ctx->connected = 0;
    ctx->ready = 0;
    ctx->dropping = 0;

    if (ctx->timeout.timer_set) {
        ngx_del_timer(&ctx->timeout);
    }

    if (ctx->tick.timer_set) {
        ngx_del_timer(&ctx->tick);
    }

    if (ctx->stopped) {
        return;
    }

    if (!dropped) {
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
            "amonitor: lost the connection to redis %V%s%s", &ctx->conf->addr,
            status == REDIS_OK ? "" : ": ",
            status == REDIS_OK ? "" : ac->errstr);
    }

    ngx_http_amonitor_redis_schedule(ctx);
}


static void
ngx_http_amonitor_redis_schedule(ngx_http_amonitor_redis_t *ctx)
{
    ngx_msec_t delay;

    if (ctx->readies == 0 && ctx->refuse) {
        ctx->refuse(ctx);
    }

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
    ngx_http_amonitor_redis_conn_start(ev->data);
}


/*
 * The socket's handlers, which nginx calls and which call hiredis; the
 * hooks hiredis calls back are in store_redis_hooks.c.
 */

static void
ngx_http_amonitor_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t          *c = ev->data;
    ngx_http_amonitor_redis_t *ctx = c->data;

    if (c->close && ctx->quit) {
        /* an idle connection (ctx->quit set it so) as the worker exits */
        c->close = 0;
        c->idle = 0;
        ctx->quit(ctx);
    }

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
        ctx->writing = 1;
        redisAsyncHandleWrite(ctx->ac);
        ctx->writing = 0;
    }
}
