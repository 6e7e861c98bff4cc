/*
 * Copyright (C) AMonitor authors
 *
 * The records of this worker's Redis claims: one allocation each (the
 * record, its msg_id, owner token and room for a result), found by msg_id
 * through an index of chains with as many slots as claims= allows claims
 * (at most 64 Ki), so that a lookup touches one slot and the record it
 * finds; records with room for a usual msg_id are kept for use again.
 * And what the records answer without the claim script: the refusal of
 * the claims that waited for a connection; at exit, the
 * release of the claims whose reply had not come back.  With
 * amonitor_cluster, the claims of other workers' actions that this
 * worker's SDK connections run are held here too (adopted: renewed and
 * ended like this worker's own).  And which records go in one call.
 * Below the claims (store_redis_claim.c); calls nothing above it.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store_redis.h"


#define NGX_HTTP_AMONITOR_REDIS_FREE_RECS 256 /* kept for use again */
#define NGX_HTTP_AMONITOR_REDIS_ID_CAP    64 /* a recycled msg_id's room */


static ngx_http_amonitor_redis_rec_t *ngx_http_amonitor_redis_rec_alloc(
    ngx_http_amonitor_redis_t *ctx, ngx_str_t *msg_id, uint32_t hash,
    size_t owner);


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

        if (rec->adopted) {
            /* another worker's: its asker ends it */
            n--;

        } else {
            held++;
        }

        ngx_http_amonitor_redis_rec_free(rec);
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
            "unrenewed, they are lost after %M ms: a retry is then told "
            "their actions failed (they may have run)",
            n, ctx->conf->lease);
    }
}


/*
 * A record for a new claim of "msg_id" (of "hash"), in the index, for an
 * action to "target": its value "p" token "|" target ";h" TTL
 * (store_redis_lua.h; a target over AMON_MAX_ID_LEN bytes is left out)
 */
ngx_http_amonitor_redis_rec_t *
ngx_http_amonitor_redis_rec_new(ngx_http_amonitor_redis_t *ctx,
    ngx_str_t *msg_id, uint32_t hash, ngx_str_t *target)
{
    u_char                        *p;
    ngx_http_amonitor_redis_rec_t *rec;

    rec = ngx_http_amonitor_redis_rec_alloc(ctx, msg_id, hash, 0);
    if (rec == NULL) {
        return NULL;
    }

    p = ngx_cpymem(rec->owner.data, ctx->owner.data, ctx->owner.len);
    p = ngx_http_amonitor_redis_uint(p, ++ctx->seq);
    *p++ = '|';

    if (target->len && target->len <= AMON_MAX_ID_LEN) {
        p = ngx_cpymem(p, target->data, target->len);
    }

    *p++ = ';';
    *p++ = 'h';
    p = ngx_cpymem(p, ctx->keep_arg.data, ctx->keep_arg.len);
    rec->owner.len = p - rec->owner.data;
    rec->value.data = p;

    return rec;
}


/*
 * A record with room for "msg_id", an owner token ("owner" bytes, or one
 * of this worker's: the room of every record kept for use again) and a
 * result; in the index, owner and value still to be set
 */
static ngx_http_amonitor_redis_rec_t *
ngx_http_amonitor_redis_rec_alloc(ngx_http_amonitor_redis_t *ctx,
    ngx_str_t *msg_id, uint32_t hash, size_t owner)
{
    size_t                         cap, room;
    ngx_http_amonitor_redis_rec_t *rec, **slot;

    room = ctx->owner.len + 2 * NGX_INT64_LEN + 3 + AMON_MAX_ID_LEN + 1;

    /* the owner, then the value: its letter and NGX_HTTP_AMONITOR_STORED_MAX */
    rec = (msg_id->len <= NGX_HTTP_AMONITOR_REDIS_ID_CAP && owner < room)
        ? ngx_http_amonitor_kept_get(&ctx->kept)
        : NULL;

    if (rec != NULL) {
        cap = NGX_HTTP_AMONITOR_REDIS_ID_CAP;

    } else {
        cap = ngx_max(msg_id->len, NGX_HTTP_AMONITOR_REDIS_ID_CAP);
        rec = ngx_alloc(sizeof(ngx_http_amonitor_redis_rec_t) + cap
                + ngx_max(owner + 1, room) + NGX_HTTP_AMONITOR_STORED_MAX,
            ctx->log);
        if (rec == NULL) {
            return NULL;
        }
    }

    ngx_memzero(rec, sizeof(ngx_http_amonitor_redis_rec_t));
    rec->id_cap = cap;

    rec->msg_id.data = (u_char *) (rec + 1);
    rec->msg_id.len = msg_id->len;
    ngx_memcpy(rec->msg_id.data, msg_id->data, msg_id->len);

    rec->owner.data = rec->msg_id.data + cap;

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


/*
 * amonitor_cluster: the owner of a target took an action of another
 * worker and wrote it to its SDK.  It holds that worker's claim too (the
 * asker's token "owner"): renewed while the action lives, finished with
 * the SDK's ack or the error the asker gets, so that the outcome is
 * recorded even if the asking worker dies meanwhile.  The asker's own
 * end writes the same value again, or finds it written.  NGX_DECLINED:
 * not held (a claim of this msg_id is here already, or the bound).
 */
ngx_int_t
ngx_http_amonitor_redis_adopt(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
    uint32_t hash, ngx_str_t *owner)
{
    ngx_http_amonitor_redis_t *ctx = st->data;

    ngx_http_amonitor_redis_rec_t *rec;

    if (owner->len < 2 || owner->len > NGX_HTTP_AMONITOR_REDIS_CLAIM_LEN
        || owner->data[0] != 'p' || ctx->nadopted >= ctx->conf->claims
        || ngx_http_amonitor_redis_rec_find(ctx, msg_id, hash)) {
        return NGX_DECLINED;
    }

    rec = ngx_http_amonitor_redis_rec_alloc(ctx, msg_id, hash, owner->len);
    if (rec == NULL) {
        return NGX_DECLINED;
    }

    rec->owner.len = owner->len;
    rec->value.data = ngx_cpymem(rec->owner.data, owner->data, owner->len);

    rec->adopted = 1;
    ctx->nadopted++;
    rec->state = NGX_HTTP_AMONITOR_REC_HELD;
    rec->renewed = ngx_current_msec;
    ngx_queue_insert_tail(&ctx->held, &rec->queue);
    rec->in_queue = 1;

    return NGX_OK;
}


/* an adopted claim whose action ended with nothing to record */
void
ngx_http_amonitor_redis_disown(
    ngx_http_amonitor_store_t *st, ngx_str_t *msg_id, uint32_t hash)
{
    ngx_http_amonitor_redis_t *ctx = st->data;

    ngx_http_amonitor_redis_rec_t *rec;

    rec = ngx_http_amonitor_redis_rec_find(ctx, msg_id, hash);

    if (rec && rec->adopted && rec->state == NGX_HTTP_AMONITOR_REC_HELD) {
        ngx_http_amonitor_redis_rec_free(rec);
    }
}


/*
 * The value ("p" + token) of this worker's claim of "msg_id", whose
 * action goes to the worker holding its target (which may end it)
 */
ngx_int_t
ngx_http_amonitor_redis_claim_token(ngx_http_amonitor_store_t *st,
    ngx_str_t *msg_id, uint32_t hash, ngx_str_t *token)
{
    ngx_http_amonitor_redis_t *ctx = st->data;

    ngx_http_amonitor_redis_rec_t *rec;

    rec = ngx_http_amonitor_redis_rec_find(ctx, msg_id, hash);

    if (rec == NULL || rec->adopted
        || rec->state != NGX_HTTP_AMONITOR_REC_HELD) {
        return NGX_DECLINED;
    }

    *token = rec->owner;
    rec->forwarded = 1;

    return NGX_OK;
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
    ctx->nadopted -= rec->adopted;
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
        ctx->nclaims - ctx->nadopted, msg_id, ctx->full_refused);

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


/*
 * The records at the head of "queue" that go in one call, at most
 * NGX_HTTP_AMONITOR_REDIS_BATCH; of ends ("ends"), finishes in a row or
 * one release alone.  They stay queued until sent (redis_taken).
 */
ngx_uint_t
ngx_http_amonitor_redis_take(
    ngx_queue_t *queue, ngx_http_amonitor_redis_rec_t **recs, ngx_uint_t ends)
{
    ngx_uint_t                     n;
    ngx_queue_t                   *q;
    ngx_http_amonitor_redis_rec_t *rec;

    n = 0;

    for (q = ngx_queue_head(queue);
         q != ngx_queue_sentinel(queue) && n < NGX_HTTP_AMONITOR_REDIS_BATCH;
         q = ngx_queue_next(q)) {
        rec = ngx_queue_data(q, ngx_http_amonitor_redis_rec_t, queue);

        if (ends && rec->state != NGX_HTTP_AMONITOR_REC_FINISHING) {
            if (n == 0) {
                recs[n++] = rec;
            }

            break;
        }

        recs[n++] = rec;
    }

    return n;
}


/* sent: out of their queue */
void
ngx_http_amonitor_redis_taken(
    ngx_http_amonitor_redis_rec_t **recs, ngx_uint_t n)
{
    while (n--) {
        ngx_queue_remove(&recs[n]->queue);
        recs[n]->in_queue = 0;
    }
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
