/*
 * Copyright (C) AMonitor authors
 *
 * The records of this worker's Redis claims: one allocation each (the
 * record, its msg_id, owner token and room for a result), found by msg_id
 * through an index of chains with as many slots as claims= allows claims
 * (at most 64 Ki), so that a lookup touches one slot and the record it
 * finds; records with room for a usual msg_id are kept for use again.
 * And what the records answer without the claim script: a duplicate of
 * a claim this worker holds, action_status (one GET when not held here),
 * the refusal of the claims that waited for a connection; at exit, the
 * release of the claims whose reply had not come back.  Below the
 * claims (store_redis_claim.c); calls nothing above it.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store_redis.h"


#define NGX_HTTP_AMONITOR_REDIS_FREE_RECS 256 /* kept for use again */
#define NGX_HTTP_AMONITOR_REDIS_ID_CAP    64 /* a recycled msg_id's room */


static void ngx_http_amonitor_redis_queried(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);


ngx_int_t
ngx_http_amonitor_redis_recs_init(ngx_http_amonitor_redis_t *ctx)
{
    ngx_uint_t n;

    for (n = 64; n < ctx->conf->claims && n < 65536; n *= 2) { /* void */
    }

    ctx->index = ngx_pcalloc(
        ctx->worker->cycle->pool, n * sizeof(ngx_http_amonitor_redis_rec_t *));
    if (ctx->index == NULL) {
        return NGX_ERROR;
    }

    ctx->index_mask = n - 1;

    return NGX_OK;
}


/*
 * The worker exits: what conn_exit wrote in full is done (ends, and the
 * releases of claims whose reply had not come back); else the claims
 * still open expire by their lease.
 */
void
ngx_http_amonitor_redis_recs_exit(
    ngx_http_amonitor_redis_t *ctx, ngx_uint_t released)
{
    ngx_uint_t                     n, held;
    ngx_queue_t                   *q;
    ngx_http_amonitor_redis_rec_t *rec;

    if (ctx->batch.posted) {
        ngx_delete_posted_event(&ctx->batch);
    }

    ngx_http_amonitor_redis_recs_refuse(ctx);

    n = ctx->nclaims;
    held = 0;

    while (!ngx_queue_empty(&ctx->todo)) {
        q = ngx_queue_head(&ctx->todo);
        rec = ngx_queue_data(q, ngx_http_amonitor_redis_rec_t, queue);
        ngx_http_amonitor_redis_rec_free(rec);
    }

    while (!ngx_queue_empty(&ctx->held)) {
        q = ngx_queue_head(&ctx->held);
        rec = ngx_queue_data(q, ngx_http_amonitor_redis_rec_t, queue);
        ngx_http_amonitor_redis_rec_free(rec);
        held++;
    }

    ngx_http_amonitor_kept_exit(&ctx->kept);

    if (ctx->exit_written) {
        n = held;

        if (released) {
            ngx_log_error(NGX_LOG_NOTICE, ctx->log, 0,
                "amonitor: %ui redis claims whose reply had not come back "
                "are released as this worker exits",
                released);
        }
    }

    if (n) {
        ngx_log_error(NGX_LOG_WARN, ctx->log, 0,
            "amonitor: %ui redis claims of this worker may be left open; "
            "they expire within %M ms",
            n, ctx->conf->lease);
    }
}


/* a record for a new claim of "msg_id" (of "hash"), in the index */
ngx_http_amonitor_redis_rec_t *
ngx_http_amonitor_redis_rec_new(
    ngx_http_amonitor_redis_t *ctx, ngx_str_t *msg_id, uint32_t hash)
{
    u_char                        *p;
    size_t                         cap;
    ngx_http_amonitor_redis_rec_t *rec, **slot;

    rec = (msg_id->len <= NGX_HTTP_AMONITOR_REDIS_ID_CAP)
        ? ngx_http_amonitor_kept_get(&ctx->kept)
        : NULL;

    if (rec != NULL) {
        cap = NGX_HTTP_AMONITOR_REDIS_ID_CAP;

    } else {
        cap = ngx_max(msg_id->len, NGX_HTTP_AMONITOR_REDIS_ID_CAP);
        rec = ngx_alloc(sizeof(ngx_http_amonitor_redis_rec_t) + cap
                + ctx->owner.len + NGX_INT64_LEN + 1
                + NGX_HTTP_AMONITOR_STORED_MAX,
            ctx->log);
        if (rec == NULL) {
            return NULL;
        }
    }

    ngx_memzero(rec, sizeof(ngx_http_amonitor_redis_rec_t));
    rec->id_cap = cap;

    p = (u_char *) (rec + 1);

    rec->msg_id.data = p;
    rec->msg_id.len = msg_id->len;
    ngx_memcpy(p, msg_id->data, msg_id->len);
    p += cap;

    rec->owner.data = p;
    p = ngx_cpymem(p, ctx->owner.data, ctx->owner.len);
    p = ngx_http_amonitor_redis_uint(p, ++ctx->seq);
    rec->owner.len = p - rec->owner.data;

    rec->value.data = p;

    rec->ctx = ctx;
    rec->state = NGX_HTTP_AMONITOR_REC_CLAIMING;
    rec->hash = hash;

    slot = &ctx->index[rec->hash & ctx->index_mask];
    rec->next = *slot;
    *slot = rec;
    rec->in_index = 1;

    ctx->nclaims++;
    (void) ngx_atomic_fetch_add(&ctx->worker->counters->redis_claims, 1);

    return rec;
}


ngx_http_amonitor_redis_rec_t *
ngx_http_amonitor_redis_rec_find(
    ngx_http_amonitor_redis_t *ctx, ngx_str_t *msg_id, uint32_t hash)
{
    ngx_http_amonitor_redis_rec_t *rec;

    for (rec = ctx->index[hash & ctx->index_mask]; rec; rec = rec->next) {
        if (rec->hash == hash && rec->msg_id.len == msg_id->len
            && ngx_memcmp(rec->msg_id.data, msg_id->data, msg_id->len) == 0) {
            return rec;
        }
    }

    return NULL;
}


/* out of the index: a new claim of its msg_id may start */
void
ngx_http_amonitor_redis_rec_unindex(ngx_http_amonitor_redis_rec_t *rec)
{
    ngx_http_amonitor_redis_t      *ctx;
    ngx_http_amonitor_redis_rec_t **pp;

    ctx = rec->ctx;

    for (pp = &ctx->index[rec->hash & ctx->index_mask]; *pp;
         pp = &(*pp)->next) {
        if (*pp == rec) {
            *pp = rec->next;
            break;
        }
    }

    rec->next = NULL;
    rec->in_index = 0;
}


/*
 * Who waits for a finish (an ack held for its panel until Redis has the
 * result, so that a repeat of its msg_id anywhere says "done") is told
 * when the finish's reply comes, or when it cannot be known to come: the
 * connection is lost (the finish is written again on the next one), the
 * record goes.
 */
ngx_int_t
ngx_http_amonitor_redis_stored(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
    ngx_http_amonitor_stored_pt handler, void *data)
{
    ngx_http_amonitor_redis_t *ctx = st->data;

    ngx_http_amonitor_redis_rec_t *rec;

    rec = ngx_http_amonitor_redis_rec_find(
        ctx, msg_id, ngx_http_amonitor_hash(msg_id->data, msg_id->len));

    if (rec == NULL || rec->state != NGX_HTTP_AMONITOR_REC_FINISHING
        || !ctx->ready || rec->stored) {
        return NGX_DECLINED;
    }

    rec->stored = handler;
    rec->stored_data = data;

    return NGX_AGAIN;
}


void
ngx_http_amonitor_redis_rec_tell(ngx_http_amonitor_redis_rec_t *rec)
{
    ngx_http_amonitor_stored_pt handler;

    handler = rec->stored;

    if (handler) {
        rec->stored = NULL;
        handler(rec->stored_data);
    }
}


/*
 * The connection was lost before the pass's finishes went out: they are
 * written on the next one, and wait no one.  (Those already sent are
 * told by their lost reply.)
 */
void
ngx_http_amonitor_redis_recs_tell(ngx_http_amonitor_redis_t *ctx)
{
    ngx_queue_t *q;

    for (q = ngx_queue_head(&ctx->todo); q != ngx_queue_sentinel(&ctx->todo);
         q = ngx_queue_next(q)) {
        ngx_http_amonitor_redis_rec_tell(
            ngx_queue_data(q, ngx_http_amonitor_redis_rec_t, queue));
    }
}


void
ngx_http_amonitor_redis_rec_free(ngx_http_amonitor_redis_rec_t *rec)
{
    ngx_http_amonitor_redis_t *ctx;

    ctx = rec->ctx;

    ngx_http_amonitor_redis_rec_tell(rec);

    if (rec->in_index) {
        ngx_http_amonitor_redis_rec_unindex(rec);
    }

    if (rec->in_queue) {
        ngx_queue_remove(&rec->queue);
    }

    ctx->nclaims--;
    (void) ngx_atomic_fetch_add(&ctx->worker->counters->redis_claims, -1);

    if (rec->id_cap == NGX_HTTP_AMONITOR_REDIS_ID_CAP) {
        ngx_http_amonitor_kept_put(
            &ctx->kept, rec, NGX_HTTP_AMONITOR_REDIS_FREE_RECS);
        return;
    }

    ngx_free(rec);
}


/*
 * The worker exits: the claims whose reply has not come back were never
 * forwarded, so each is released now rather than left to its lease.  The
 * release is compare-and-set on the owner token and follows the claim on
 * this connection: where the claim did not take, it deletes nothing.
 * Written with the ends by redis_conn_exit; the number sent.
 */
ngx_uint_t
ngx_http_amonitor_redis_recs_abandon(
    ngx_http_amonitor_redis_t *ctx, ngx_http_amonitor_redis_script_t *release)
{
    ngx_str_t                      args[3];
    ngx_uint_t                     i, n;
    ngx_http_amonitor_redis_rec_t *rec;

    if (!ctx->ready) {
        return 0;
    }

    n = 0;
    args[0] = ctx->conf->prefix;

    for (i = 0; i <= ctx->index_mask; i++) {
        for (rec = ctx->index[i]; rec; rec = rec->next) {
            if (rec->state != NGX_HTTP_AMONITOR_REC_CLAIMING || rec->in_queue) {
                continue;
            }

            args[1] = rec->msg_id;
            args[2] = rec->owner;

            if (ngx_http_amonitor_redis_eval(ctx,
                    ngx_http_amonitor_redis_ignore, NULL, "release", release,
                    args, 3)
                != NGX_OK) {
                return n;
            }

            n++;
        }
    }

    return n;
}


/*
 * The bound is reached: the action is refused (the caller answers
 * RATE_LIMITED; nothing was claimed).  An overload refuses many at once,
 * so one line a second says how many.
 */
void
ngx_http_amonitor_redis_recs_full(
    ngx_http_amonitor_redis_t *ctx, ngx_str_t *msg_id)
{
    ngx_msec_t now;

    now = ngx_current_msec;
    ctx->full_refused++;
    (void) ngx_atomic_fetch_add(&ctx->worker->counters->redis_refused, 1);

    if (ctx->full_logged && now - ctx->full_logged < 1000) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
        "amonitor: %ui redis claims of this worker are open (claims=), "
        "action \"%V\" refused (%ui refused since the last such line)",
        ctx->nclaims, msg_id, ctx->full_refused);

    ctx->full_logged = now ? now : 1;
    ctx->full_refused = 0;
}


/*
 * The first connection failed (or the worker exits): the claims that
 * waited for it are refused, as a claim made now would be.
 */
void
ngx_http_amonitor_redis_recs_refuse(ngx_http_amonitor_redis_t *ctx)
{
    void                          *data;
    ngx_str_t                      result;
    ngx_uint_t                     n;
    ngx_queue_t                   *q;
    ngx_http_amonitor_claim_pt     handler;
    ngx_http_amonitor_redis_rec_t *rec;

    n = 0;

    while (!ngx_queue_empty(&ctx->waiting)) {
        q = ngx_queue_head(&ctx->waiting);
        rec = ngx_queue_data(q, ngx_http_amonitor_redis_rec_t, queue);

        handler = rec->handler;
        data = rec->data;
        ngx_http_amonitor_redis_rec_free(rec);

        ngx_str_null(&result);
        handler(data, NGX_HTTP_AMONITOR_CLAIM_ERROR, &result);
        n++;
    }

    if (n && !ctx->stopped) {
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
            "amonitor: redis %V is not available, "
            "%ui actions that waited for it are refused",
            &ctx->conf->addr, n);
    }
}


/* action_status: the worker's own claims first, else one GET */
typedef struct {
    ngx_http_amonitor_claim_pt handler;
    void                      *data;
} ngx_http_amonitor_redis_query_t;


ngx_int_t
ngx_http_amonitor_redis_query(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
    ngx_http_amonitor_claim_e *state, ngx_str_t *result,
    ngx_http_amonitor_claim_pt handler, void *data)
{
    ngx_http_amonitor_redis_t *ctx = st->data;

    ngx_int_t                        rc;
    ngx_http_amonitor_redis_rec_t   *rec;
    ngx_http_amonitor_redis_query_t *q;

    rec = ngx_http_amonitor_redis_rec_find(
        ctx, msg_id, ngx_http_amonitor_hash(msg_id->data, msg_id->len));
    if (rec) {
        return ngx_http_amonitor_redis_known(rec, state, result);
    }

    if (!ctx->ready) {
        return NGX_ERROR;
    }

    q = ngx_alloc(sizeof(ngx_http_amonitor_redis_query_t), ctx->log);
    if (q == NULL) {
        return NGX_ERROR;
    }

    q->handler = handler;
    q->data = data;

    rc = ngx_http_amonitor_redis_command(ctx, ngx_http_amonitor_redis_queried,
        q, "query", "GET %b%b", ctx->conf->prefix.data, ctx->conf->prefix.len,
        msg_id->data, msg_id->len);

    if (rc != NGX_OK) {
        ngx_free(q);
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


static void
ngx_http_amonitor_redis_queried(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply)
{
    ngx_http_amonitor_redis_query_t *q = data;

    ngx_str_t                 result;
    ngx_http_amonitor_claim_e state;

    ngx_str_null(&result);
    state = NGX_HTTP_AMONITOR_CLAIM_ERROR;

    if (reply && reply->type == REDIS_REPLY_NIL) {
        state = NGX_HTTP_AMONITOR_CLAIM_NEW;

    } else if (reply && reply->type == REDIS_REPLY_STRING && reply->len >= 1) {
        state = ngx_http_amonitor_redis_value(reply, &result);
    }

    q->handler(q->data, state, &result);
    ngx_free(q);
}


/* a duplicate of a claim this worker holds or is ending */
ngx_int_t
ngx_http_amonitor_redis_known(ngx_http_amonitor_redis_rec_t *rec,
    ngx_http_amonitor_claim_e *state, ngx_str_t *result)
{
    size_t len;

    result->len = 0;

    if (rec->state != NGX_HTTP_AMONITOR_REC_FINISHING) {
        *state = NGX_HTTP_AMONITOR_CLAIM_PENDING;
        return NGX_OK;
    }

    *state = (rec->value.data[0] == 'd') ? NGX_HTTP_AMONITOR_CLAIM_DONE
                                         : NGX_HTTP_AMONITOR_CLAIM_FAILED;

    len = ngx_min(rec->value.len - 1, NGX_HTTP_AMONITOR_STORED_MAX);
    if (len) {
        result->len =
            ngx_cpymem(result->data, rec->value.data + 1, len) - result->data;
    }

    return NGX_OK;
}


/* a claim's value found in Redis ("p" + owner, "d" or "f" + result) */
ngx_http_amonitor_claim_e
ngx_http_amonitor_redis_value(redisReply *reply, ngx_str_t *result)
{
    ngx_http_amonitor_claim_e state;

    switch (reply->str[0]) {
    case 'd': state = NGX_HTTP_AMONITOR_CLAIM_DONE; break;
    case 'f': state = NGX_HTTP_AMONITOR_CLAIM_FAILED; break;
    default: return NGX_HTTP_AMONITOR_CLAIM_PENDING;
    }

    result->data = (u_char *) reply->str + 1;
    result->len =
        ngx_min((size_t) reply->len - 1, NGX_HTTP_AMONITOR_STORED_MAX);

    return state;
}


/*
 * A finish that Redis refused for now (it refuses writes: no disk for its
 * snapshot (MISCONF), a replica now (READONLY), loading, a script busy)
 * waits in "todo" and goes again on the next tick or batch: dropped, its
 * claim would lapse with the lease, and a repeat of an action that ran
 * would run again.  NGX_DECLINED: another error, the end is dropped.
 */
ngx_int_t
ngx_http_amonitor_redis_end_again(
    ngx_http_amonitor_redis_rec_t *rec, redisReply *reply)
{
    size_t                     i, n;
    ngx_http_amonitor_redis_t *ctx;
    static const char *again[] = {"MISCONF", "READONLY", "LOADING", "BUSY",
        "OOM", "MASTERDOWN", "NOREPLICAS", "TRYAGAIN"};

    if (reply->type != REDIS_REPLY_ERROR
        || rec->state != NGX_HTTP_AMONITOR_REC_FINISHING) {
        return NGX_DECLINED;
    }

    for (i = 0; i < sizeof(again) / sizeof(again[0]); i++) {
        n = ngx_strlen(again[i]);

        if (reply->len > n && reply->str[n] == ' '
            && ngx_strncmp(reply->str, again[i], n) == 0) {
            break;
        }
    }

    if (i == sizeof(again) / sizeof(again[0])) {
        return NGX_DECLINED;
    }

    ctx = rec->ctx;

    if (!rec->refused) {
        rec->refused = 1;
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
            "amonitor: redis refused the finish of \"%V\": %*s; it is sent "
            "again every %M ms until redis takes it",
            &rec->msg_id, (size_t) reply->len, reply->str,
            ctx->conf->lease / 3);
    }

    ngx_queue_insert_tail(&ctx->todo, &rec->queue);
    rec->in_queue = 1;

    return NGX_OK;
}
