/*
 * Copyright (C) AMonitor authors
 *
 * The claims of the Redis store.  A claim is written as "p" + an owner
 * token (host:pid:random:sequence) + "|" + the action's target + ";h" +
 * the dedupe TTL, kept for a lease plus that TTL, which the owner renews
 * while its action lives; only that owner finishes or releases it
 * (compare-and-set in one script), and an end that could not be written
 * waits for the next connection.  A dead owner's claim is left with less than the
 * dedupe TTL to live: lost (store_redis_lua.h).  Its action may have
 * run, so its msg_id is not claimed again; its duplicates are told it
 * failed (store_redis_query.c).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor_store_redis.h"
#include "ngx_http_amonitor_store_redis_lua.h"


/* the scripts (store_redis_lua.h), called by SHA1 (made once per worker) */
static ngx_http_amonitor_redis_script_t ngx_http_amonitor_redis_scripts[7];

#define NGX_HTTP_AMONITOR_S_CLAIM    (&ngx_http_amonitor_redis_scripts[0])
#define NGX_HTTP_AMONITOR_S_FINISH   (&ngx_http_amonitor_redis_scripts[1])
#define NGX_HTTP_AMONITOR_S_RELEASE  (&ngx_http_amonitor_redis_scripts[2])
#define NGX_HTTP_AMONITOR_S_RENEW    (&ngx_http_amonitor_redis_scripts[3])
#define NGX_HTTP_AMONITOR_S_CLAIMS   (&ngx_http_amonitor_redis_scripts[4])
#define NGX_HTTP_AMONITOR_S_FINISHES (&ngx_http_amonitor_redis_scripts[5])
#define NGX_HTTP_AMONITOR_S_QUERY    (&ngx_http_amonitor_redis_scripts[6])


static ngx_int_t ngx_http_amonitor_redis_claims_init(
    ngx_http_amonitor_redis_t *ctx);
static void ngx_http_amonitor_redis_claims_flush(
    ngx_http_amonitor_redis_t *ctx);
static void ngx_http_amonitor_redis_claims_tick(ngx_http_amonitor_redis_t *ctx);
static ngx_int_t ngx_http_amonitor_redis_claims_setup(
    ngx_http_amonitor_redis_t *ctx);
static ngx_int_t ngx_http_amonitor_redis_claim(ngx_http_amonitor_store_t *st,
    ngx_str_t *msg_id, uint32_t hash, ngx_str_t *target,
    ngx_http_amonitor_claim_e *state, ngx_str_t *result,
    ngx_http_amonitor_claim_pt handler, void *data);
static ngx_int_t ngx_http_amonitor_redis_claim_send(
    ngx_http_amonitor_redis_rec_t *rec);
static ngx_int_t ngx_http_amonitor_redis_claims_send(
    ngx_http_amonitor_redis_t *ctx, ngx_http_amonitor_redis_rec_t **recs,
    ngx_uint_t n);
static ngx_int_t ngx_http_amonitor_redis_finishes_send(
    ngx_http_amonitor_redis_t *ctx, ngx_http_amonitor_redis_rec_t **recs,
    ngx_uint_t n);
static void ngx_http_amonitor_redis_claims_post(ngx_event_t *ev);
static void ngx_http_amonitor_redis_claimed(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);
static void ngx_http_amonitor_redis_finish(ngx_http_amonitor_store_t *st,
    ngx_str_t *msg_id, uint32_t hash, ngx_http_amonitor_claim_e state,
    ngx_str_t *result);
static void ngx_http_amonitor_redis_release(
    ngx_http_amonitor_store_t *st, ngx_str_t *msg_id);
static void ngx_http_amonitor_redis_end(
    ngx_http_amonitor_redis_rec_t *rec, ngx_http_amonitor_rec_state_e state);
static ngx_int_t ngx_http_amonitor_redis_send_end(
    ngx_http_amonitor_redis_rec_t *rec);
static void ngx_http_amonitor_redis_ended(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);
static void ngx_http_amonitor_redis_renewed(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);


/*
 * The Redis store: the connection (store_redis.c) below, the claims of
 * this worker here, above it.
 */
ngx_http_amonitor_store_t *
ngx_http_amonitor_store_redis_create(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_redis_conf_t *conf)
{
    ngx_http_amonitor_redis_t *ctx;

    ctx = ngx_http_amonitor_redis_conn_init(w, conf);
    if (ctx == NULL) {
        return NULL;
    }

    if (ngx_http_amonitor_redis_claims_init(ctx) != NGX_OK) {
        return NULL;
    }

    ctx->flush = ngx_http_amonitor_redis_claims_flush;
    ctx->renew = ngx_http_amonitor_redis_claims_tick;
    ctx->setup = ngx_http_amonitor_redis_claims_setup;
    ctx->refuse = ngx_http_amonitor_redis_recs_refuse;

    ngx_http_amonitor_redis_conn_start(ctx);

    return &ctx->store;
}


void
ngx_http_amonitor_store_redis_exit(ngx_http_amonitor_store_t *st)
{
    ngx_http_amonitor_redis_t *ctx = st->data;

    ngx_uint_t released;

    ctx->exiting = 1;

    (void) ngx_http_amonitor_redis_eval_exit(ctx);
    released =
        ngx_http_amonitor_redis_recs_abandon(ctx, NGX_HTTP_AMONITOR_S_RELEASE);
    ngx_http_amonitor_redis_conn_exit(ctx);
    ngx_http_amonitor_redis_recs_exit(ctx, released);
}


/* claim, finish, release, query, the owner token of this worker */
static ngx_int_t
ngx_http_amonitor_redis_claims_init(ngx_http_amonitor_redis_t *ctx)
{
    u_char                        *p;
    uint32_t                       rnd[2];
    ngx_msec_t                     keep;
    ngx_cycle_t                   *cycle;
    ngx_http_amonitor_main_conf_t *amcf;

    cycle = ctx->worker->cycle;

    ngx_http_amonitor_redis_script_init(
        NGX_HTTP_AMONITOR_S_CLAIM, NGX_HTTP_AMONITOR_REDIS_CLAIM);
    ngx_http_amonitor_redis_script_init(
        NGX_HTTP_AMONITOR_S_FINISH, NGX_HTTP_AMONITOR_REDIS_FINISH);
    ngx_http_amonitor_redis_script_init(
        NGX_HTTP_AMONITOR_S_RELEASE, NGX_HTTP_AMONITOR_REDIS_RELEASE);
    ngx_http_amonitor_redis_script_init(
        NGX_HTTP_AMONITOR_S_RENEW, NGX_HTTP_AMONITOR_REDIS_RENEW);
    ngx_http_amonitor_redis_script_init(
        NGX_HTTP_AMONITOR_S_CLAIMS, NGX_HTTP_AMONITOR_REDIS_CLAIMS);
    ngx_http_amonitor_redis_script_init(
        NGX_HTTP_AMONITOR_S_FINISHES, NGX_HTTP_AMONITOR_REDIS_FINISHES);
    ngx_http_amonitor_redis_script_init(
        NGX_HTTP_AMONITOR_S_QUERY, NGX_HTTP_AMONITOR_REDIS_QUERY);
    ctx->query = NGX_HTTP_AMONITOR_S_QUERY;

    /* ends: written again, the same, they change nothing more */
    NGX_HTTP_AMONITOR_S_FINISH->again_at_exit = 1;
    NGX_HTTP_AMONITOR_S_FINISHES->again_at_exit = 1;
    NGX_HTTP_AMONITOR_S_RELEASE->again_at_exit = 1;

    if (ngx_http_amonitor_redis_recs_init(ctx) != NGX_OK) {
        return NGX_ERROR;
    }
    ngx_queue_init(&ctx->held);
    ngx_queue_init(&ctx->todo);
    ngx_queue_init(&ctx->waiting);

    ctx->batch.handler = ngx_http_amonitor_redis_claims_post;
    ctx->batch.data = ctx;
    ctx->batch.log = ctx->log;

    /* unique among instances and workers, and across pid reuse */
    p = ctx->owner_buf;
    *p++ = 'p';
    p = ngx_cpymem(p, cycle->hostname.data,
        ngx_min(cycle->hostname.len, NGX_MAXHOSTNAMELEN));
    ngx_http_amonitor_random((u_char *) rnd, sizeof(rnd));
    p = ngx_sprintf(p, ":%P:%08xD%08xD:", ngx_pid, rnd[0], rnd[1]);

    ctx->owner.data = ctx->owner_buf;
    ctx->owner.len = p - ctx->owner_buf;

    /*
     * The same with every claim, finish and renewal.  A claim under way
     * is kept for the lease plus "keep", renewed to that: one with less
     * than "keep" left was not renewed for a lease.  "keep" is the dedupe
     * TTL, or while its action may still be answered (ack timeout + late
     * window) if that is longer, as in the zone: a lost claim is not
     * claimed again while its first run may still go on.
     */
    amcf = ctx->worker->amcf;
    keep = ngx_max(amcf->dedupe_ttl, amcf->ack_timeout + amcf->late_window);

    ctx->keep_arg.data = ctx->keep_buf;
    ctx->keep_arg.len =
        ngx_http_amonitor_redis_uint(ctx->keep_buf, keep) - ctx->keep_buf;
    ctx->hold_arg.data = ctx->hold_buf;
    ctx->hold_arg.len =
        ngx_http_amonitor_redis_uint(ctx->hold_buf, ctx->conf->lease + keep)
        - ctx->hold_buf;
    ctx->lease_arg.data = ctx->lease_buf;
    ctx->lease_arg.len =
        ngx_http_amonitor_redis_uint(ctx->lease_buf, ctx->conf->lease)
        - ctx->lease_buf;
    ctx->ttl_arg.data = ctx->ttl_buf;
    ctx->ttl_arg.len = ngx_http_amonitor_redis_uint(
                           ctx->ttl_buf, ctx->worker->amcf->dedupe_ttl)
        - ctx->ttl_buf;

    ctx->store.claim = ngx_http_amonitor_redis_claim;
    ctx->store.finish = ngx_http_amonitor_redis_finish;
    ctx->store.stored = ngx_http_amonitor_redis_stored;
    ctx->store.release = ngx_http_amonitor_redis_release;
    ctx->store.query = ngx_http_amonitor_redis_query;

    return NGX_OK;
}


static ngx_int_t
ngx_http_amonitor_redis_claim(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
    uint32_t hash, ngx_str_t *target, ngx_http_amonitor_claim_e *state,
    ngx_str_t *result, ngx_http_amonitor_claim_pt handler, void *data)
{
    ngx_http_amonitor_redis_t *ctx = st->data;

    ngx_http_amonitor_redis_rec_t *rec;

    /* a claim of this worker: what it knows is the truth */
    rec = ngx_http_amonitor_redis_rec_find(ctx, msg_id, hash);
    if (rec) {
        return ngx_http_amonitor_redis_known(rec, state, result);
    }

    /*
     * Not ready: refused, except while the first connection of this
     * worker is being set up (a start, a reload); then the claim waits
     * for it, within amonitor_ack_timeout like any claim.
     */
    if (!ctx->ready && (ctx->readies || ctx->failures || ctx->stopped)) {
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
            "amonitor: redis %V is not %s, action \"%V\" refused",
            &ctx->conf->addr, ctx->connected ? "ready" : "connected", msg_id);
        return NGX_ERROR;
    }

    if (ctx->nclaims - ctx->nadopted >= ctx->conf->claims) {
        ngx_http_amonitor_redis_recs_full(ctx, msg_id);
        return NGX_BUSY;
    }

    rec = ngx_http_amonitor_redis_rec_new(ctx, msg_id, hash, target);
    if (rec == NULL) {
        return NGX_ERROR;
    }

    rec->handler = handler;
    rec->data = data;
    rec->renewed = ngx_current_msec;

    /* sent at the end of this pass of the event loop, with the others */
    ngx_queue_insert_tail(&ctx->waiting, &rec->queue);
    rec->in_queue = 1;

    if (!ctx->ready) {
        ngx_log_debug1(NGX_LOG_DEBUG_EVENT, ctx->log, 0,
            "amonitor redis claim \"%V\" waits for the connection", msg_id);

    } else {
        ngx_http_amonitor_post_first(&ctx->batch);
    }

    return NGX_AGAIN;
}


/* the claim script for a new record; its answer comes later */
static ngx_int_t
ngx_http_amonitor_redis_claim_send(ngx_http_amonitor_redis_rec_t *rec)
{
    ngx_str_t                  args[4];
    ngx_http_amonitor_redis_t *ctx;

    ctx = rec->ctx;

    args[0] = ctx->conf->prefix;
    args[1] = rec->msg_id;
    args[2] = rec->owner;
    args[3] = ctx->hold_arg;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, ctx->log, 0,
        "amonitor redis claim \"%V\" as \"%V\"", &rec->msg_id, &rec->owner);

    return ngx_http_amonitor_redis_eval(ctx, ngx_http_amonitor_redis_claimed,
        rec, "claim", NGX_HTTP_AMONITOR_S_CLAIM, args, 4);
}


/* the claims of a pass in one call (as claim_send each) */
static ngx_int_t
ngx_http_amonitor_redis_claims_send(ngx_http_amonitor_redis_t *ctx,
    ngx_http_amonitor_redis_rec_t **recs, ngx_uint_t n)
{
    void      *data[NGX_HTTP_AMONITOR_REDIS_BATCH];
    ngx_str_t  keys[NGX_HTTP_AMONITOR_REDIS_BATCH];
    ngx_str_t  args[NGX_HTTP_AMONITOR_REDIS_BATCH + 1];
    ngx_uint_t i;

    for (i = 0; i < n; i++) {
        data[i] = recs[i];
        keys[i] = recs[i]->msg_id;
        args[i] = recs[i]->owner;

        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, ctx->log, 0,
            "amonitor redis claim \"%V\" as \"%V\"", &recs[i]->msg_id,
            &recs[i]->owner);
    }

    args[n] = ctx->hold_arg;

    return ngx_http_amonitor_redis_eval_batch(ctx,
        ngx_http_amonitor_redis_claimed, data, "claims",
        NGX_HTTP_AMONITOR_S_CLAIMS, keys, args, n, n + 1);
}


/* finishes in one call (as send_end each) */
static ngx_int_t
ngx_http_amonitor_redis_finishes_send(ngx_http_amonitor_redis_t *ctx,
    ngx_http_amonitor_redis_rec_t **recs, ngx_uint_t n)
{
    void      *data[NGX_HTTP_AMONITOR_REDIS_BATCH];
    ngx_str_t  keys[NGX_HTTP_AMONITOR_REDIS_BATCH];
    ngx_str_t  args[2 * NGX_HTTP_AMONITOR_REDIS_BATCH + 1];
    ngx_uint_t i;

    for (i = 0; i < n; i++) {
        data[i] = recs[i];
        keys[i] = recs[i]->msg_id;
        args[2 * i] = recs[i]->owner;
        args[2 * i + 1] = recs[i]->value;
    }

    args[2 * n] = ctx->ttl_arg;

    return ngx_http_amonitor_redis_eval_batch(ctx,
        ngx_http_amonitor_redis_ended, data, "finishes",
        NGX_HTTP_AMONITOR_S_FINISHES, keys, args, n, 2 * n + 1);
}


/* a new connection learns the scripts before its first claim */
static ngx_int_t
ngx_http_amonitor_redis_claims_setup(ngx_http_amonitor_redis_t *ctx)
{
    return ngx_http_amonitor_redis_scripts_load(ctx,
        ngx_http_amonitor_redis_scripts,
        sizeof(ngx_http_amonitor_redis_scripts)
            / sizeof(ngx_http_amonitor_redis_script_t));
}


/*
 * The end of a pass in which claims were made or ended: they go out.
 * Claims made while a connection that was ready is lost are refused, as
 * a claim made now is; the ends wait for the next connection.
 */
static void
ngx_http_amonitor_redis_claims_post(ngx_event_t *ev)
{
    ngx_http_amonitor_redis_t *ctx = ev->data;

    if (!ctx->ready && ctx->readies) {
        ngx_http_amonitor_redis_recs_refuse(ctx);
        /* the finishes of this pass wait for the next connection */
        ngx_http_amonitor_redis_recs_tell(ctx);
        return;
    }

    ngx_http_amonitor_redis_claims_flush(ctx);
}


static void
ngx_http_amonitor_redis_claimed(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply)
{
    ngx_http_amonitor_redis_rec_t *rec = data;

    u_char                     buf[NGX_HTTP_AMONITOR_STORED_MAX];
    void                      *hdata;
    ngx_str_t                  result;
    ngx_http_amonitor_claim_e  state;
    ngx_http_amonitor_claim_pt handler;

    handler = rec->handler;
    hdata = rec->data;
    rec->handler = NULL;

    result.data = buf;
    result.len = 0;
    state = NGX_HTTP_AMONITOR_CLAIM_ERROR;

    if (reply == NULL) {
        /*
         * The script may have run: the action is refused, and the claim
         * is released by its owner when Redis is back (or expires).  At
         * exit the release went already (redis_recs_abandon).
         */
        if (!ctx->stopped) {
            ngx_log_error(NGX_LOG_WARN, ctx->log, 0,
                "amonitor: the claim of \"%V\" in redis has an unknown "
                "outcome; it is released when redis is back or expires in "
                "%M ms",
                &rec->msg_id, ctx->conf->lease);
        }

        ngx_http_amonitor_redis_end(rec, NGX_HTTP_AMONITOR_REC_RELEASING);

    } else if (reply->type == REDIS_REPLY_NIL) {
        state = NGX_HTTP_AMONITOR_CLAIM_NEW;
        rec->state = NGX_HTTP_AMONITOR_REC_HELD;
        ngx_queue_insert_tail(&ctx->held, &rec->queue);
        rec->in_queue = 1;

    } else if (reply->type == REDIS_REPLY_STRING && reply->len >= 1) {
        state = ngx_http_amonitor_redis_value(reply, &result);

        /* someone else's claim: nothing of ours to end */
        ngx_http_amonitor_redis_rec_free(rec);

    } else {
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
            "amonitor: redis claim of \"%V\" failed: %*s", &rec->msg_id,
            (size_t) (reply->type == REDIS_REPLY_ERROR ? reply->len : 0),
            reply->str);
        ngx_http_amonitor_redis_end(rec, NGX_HTTP_AMONITOR_REC_RELEASING);
    }

    handler(hdata, state, &result);
}


static void
ngx_http_amonitor_redis_finish(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
    uint32_t hash, ngx_http_amonitor_claim_e state, ngx_str_t *result)
{
    ngx_http_amonitor_redis_t *ctx = st->data;

    u_char                        *p;
    ngx_http_amonitor_redis_rec_t *rec;

    rec = ngx_http_amonitor_redis_rec_find(ctx, msg_id, hash);

    if (rec == NULL || rec->state != NGX_HTTP_AMONITOR_REC_HELD) {
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
            "amonitor: this worker holds no redis claim of \"%V\", "
            "its result is not recorded",
            msg_id);
        return;
    }

    p = rec->value.data;
    *p++ = (state == NGX_HTTP_AMONITOR_CLAIM_DONE) ? 'd' : 'f';

    if (result && result->len <= NGX_HTTP_AMONITOR_STORED_MAX) {
        p = ngx_cpymem(p, result->data, result->len);
    }

    rec->value.len = p - rec->value.data;

    if (!ctx->ready) {
        ngx_log_error(NGX_LOG_WARN, ctx->log, 0,
            "amonitor: redis %V is not connected, the result of \"%V\" "
            "is written when it is back",
            &ctx->conf->addr, msg_id);
    }

    ngx_http_amonitor_redis_end(rec, NGX_HTTP_AMONITOR_REC_FINISHING);
}


static void
ngx_http_amonitor_redis_release(
    ngx_http_amonitor_store_t *st, ngx_str_t *msg_id)
{
    ngx_http_amonitor_redis_t *ctx = st->data;

    ngx_http_amonitor_redis_rec_t *rec;

    rec = ngx_http_amonitor_redis_rec_find(
        ctx, msg_id, ngx_http_amonitor_hash(msg_id->data, msg_id->len));

    if (rec && rec->state == NGX_HTTP_AMONITOR_REC_HELD) {
        ngx_http_amonitor_redis_end(rec, NGX_HTTP_AMONITOR_REC_RELEASING);
    }
}


/* the claim ends: write it now, or when Redis is back */
static void
ngx_http_amonitor_redis_end(
    ngx_http_amonitor_redis_rec_t *rec, ngx_http_amonitor_rec_state_e state)
{
    ngx_http_amonitor_redis_t *ctx;

    ctx = rec->ctx;

    if (rec->in_queue) {
        ngx_queue_remove(&rec->queue);
        rec->in_queue = 0;
    }

    if (state == NGX_HTTP_AMONITOR_REC_RELEASING && rec->in_index) {
        /* a new claim of this msg_id may start while this one ends */
        ngx_http_amonitor_redis_rec_unindex(rec);
    }

    rec->state = state;

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, ctx->log, 0,
        "amonitor redis %s \"%V\"%s",
        state == NGX_HTTP_AMONITOR_REC_FINISHING ? "finish" : "release",
        &rec->msg_id, ctx->ready ? "" : " when redis is back");

    /* written at the end of this pass, or when redis is back */
    ngx_queue_insert_tail(&ctx->todo, &rec->queue);
    rec->in_queue = 1;

    if (ctx->ready) {
        ngx_http_amonitor_post_first(&ctx->batch);
    }
}


static ngx_int_t
ngx_http_amonitor_redis_send_end(ngx_http_amonitor_redis_rec_t *rec)
{
    ngx_str_t                       args[5];
    ngx_http_amonitor_redis_t      *ctx;
    ngx_http_amonitor_redis_conf_t *rc;

    ctx = rec->ctx;
    rc = ctx->conf;

    if (!ctx->ready) {
        return NGX_DECLINED;
    }

    args[0] = rc->prefix;
    args[1] = rec->msg_id;
    args[2] = rec->owner;

    if (rec->state == NGX_HTTP_AMONITOR_REC_FINISHING) {
        args[3] = rec->value;
        args[4] = ctx->ttl_arg;

        return ngx_http_amonitor_redis_eval(ctx, ngx_http_amonitor_redis_ended,
            rec, "finish", NGX_HTTP_AMONITOR_S_FINISH, args, 5);
    }

    return ngx_http_amonitor_redis_eval(ctx, ngx_http_amonitor_redis_ended, rec,
        "release", NGX_HTTP_AMONITOR_S_RELEASE, args, 3);
}


static void
ngx_http_amonitor_redis_ended(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply)
{
    ngx_http_amonitor_redis_rec_t *rec = data;

    ngx_http_amonitor_redis_rec_tell(rec);

    if (reply == NULL) {
        /* not known to be written: again on the next connection */
        ngx_queue_insert_tail(&ctx->todo, &rec->queue);
        rec->in_queue = 1;
        return;
    }

    if (ngx_http_amonitor_redis_end_again(rec, reply) == NGX_OK) {
        return;
    }

    if (rec->adopted && reply->type == REDIS_REPLY_STRING) {
        /* the asking worker's end came first: it stands */
        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, ctx->log, 0,
            "amonitor redis claim \"%V\" of another worker ended as \"%c\"",
            &rec->msg_id, reply->len ? reply->str[0] : '-');

    } else if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
            "amonitor: redis could not %s the claim of \"%V\": %*s; "
            "it expires in %M ms",
            rec->state == NGX_HTTP_AMONITOR_REC_FINISHING ? "finish"
                                                          : "release",
            &rec->msg_id, (size_t) reply->len, reply->str, ctx->conf->lease);

    } else if (rec->state == NGX_HTTP_AMONITOR_REC_FINISHING && rec->forwarded
        && reply->type == REDIS_REPLY_STRING && reply->len == 1
        && reply->str[0] != 'p') {
        /* amonitor_cluster: ended by the worker that ran it, a late ack */
        ngx_log_error(NGX_LOG_NOTICE, ctx->log, 0,
            "amonitor: the redis claim of \"%V\" was ended already "
            "(\"%c\" found), by the agent that ran its action; that "
            "record stands",
            &rec->msg_id, reply->str[0]);

    } else if (rec->state == NGX_HTTP_AMONITOR_REC_FINISHING
        && reply->type == REDIS_REPLY_STRING) {
        /* its lease expired and another owner took it meanwhile */
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
            "amonitor: the redis claim of \"%V\" expired and was taken "
            "by another owner (\"%*s\" found), its result is not recorded; "
            "the action may have run twice",
            &rec->msg_id, (size_t) reply->len, reply->str);
    }

    ngx_http_amonitor_redis_rec_free(rec);
}


/*
 * Write the ends (of this pass, or that waited for a connection), oldest
 * first, then the claims, several in one call where they can go together.
 * What could not be sent stays queued; claims that cannot are refused.
 */
static void
ngx_http_amonitor_redis_claims_flush(ngx_http_amonitor_redis_t *ctx)
{
    ngx_int_t                      rc;
    ngx_uint_t                     n;
    ngx_http_amonitor_redis_rec_t *recs[NGX_HTTP_AMONITOR_REDIS_BATCH];

    while (ctx->ready && !ngx_queue_empty(&ctx->todo)) {
        n = ngx_http_amonitor_redis_take(&ctx->todo, recs, 1);

        rc = (n == 1) ? ngx_http_amonitor_redis_send_end(recs[0])
                      : ngx_http_amonitor_redis_finishes_send(ctx, recs, n);

        if (rc != NGX_OK) {
            return;
        }

        ngx_http_amonitor_redis_taken(recs, n);
    }

    while (ctx->ready && !ngx_queue_empty(&ctx->waiting)) {
        n = ngx_http_amonitor_redis_take(&ctx->waiting, recs, 0);

        rc = (n == 1) ? ngx_http_amonitor_redis_claim_send(recs[0])
                      : ngx_http_amonitor_redis_claims_send(ctx, recs, n);

        if (rc != NGX_OK) {
            ngx_http_amonitor_redis_recs_refuse(ctx);
            return;
        }

        ngx_http_amonitor_redis_taken(recs, n);
    }
}


/* renew the leases of the claims held, each about every lease/3 */
static void
ngx_http_amonitor_redis_claims_tick(ngx_http_amonitor_redis_t *ctx)
{
    ngx_str_t                      args[5];
    ngx_msec_t                     every;
    ngx_queue_t                   *q;
    ngx_http_amonitor_redis_rec_t *rec;

    every = ctx->conf->lease / 6;

    for (q = ngx_queue_head(&ctx->held); q != ngx_queue_sentinel(&ctx->held);
         q = ngx_queue_next(q)) {
        rec = ngx_queue_data(q, ngx_http_amonitor_redis_rec_t, queue);

        if (rec->renewing || rec->lost
            || ngx_current_msec - rec->renewed < every) {
            continue;
        }

        args[0] = ctx->conf->prefix;
        args[1] = rec->msg_id;
        args[2] = rec->owner;
        args[3] = ctx->hold_arg;
        args[4] = ctx->lease_arg;

        if (ngx_http_amonitor_redis_eval(ctx, ngx_http_amonitor_redis_renewed,
                rec, "renew", NGX_HTTP_AMONITOR_S_RENEW, args, 5)
            != NGX_OK) {
            return;
        }

        rec->renewing = 1;
        rec->renewed = ngx_current_msec;
    }
}


static void
ngx_http_amonitor_redis_renewed(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply)
{
    ngx_http_amonitor_redis_rec_t *rec = data;

    rec->renewing = 0;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        return;
    }

    if (reply->integer == 2) {
        ngx_log_error(NGX_LOG_WARN, ctx->log, 0,
            "amonitor: the redis claim of \"%V\" had expired and was "
            "taken again by its owner",
            &rec->msg_id);

    } else if ((reply->integer == 0 || reply->integer == 3) && !rec->lost) {
        rec->lost = 1;

        if (rec->adopted || (rec->forwarded && reply->integer == 3)) {
            /*
             * amonitor_cluster: the other of the two workers holding it
             * ended it (the owner wrote the ack before it came back here)
             */
            return;
        }

        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
            "amonitor: the redis claim of \"%V\" expired and was taken "
            "by another owner while its action was under way; "
            "the action may run twice",
            &rec->msg_id);
    }
}
