/*
 * Copyright (C) AMonitor authors
 *
 * The records of this worker's Redis claims: one allocation each (the
 * record, its msg_id, owner token and room for a result), found by msg_id
 * through an index of chains with as many slots as claims= allows claims
 * (at most 64 Ki), so that a lookup touches one slot and the record it
 * finds; records with room for a usual msg_id are kept for use again.
 * Below the claims (store_redis_claim.c); calls nothing above it.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store_redis.h"


#define NGX_HTTP_AMONITOR_REDIS_FREE_RECS 64 /* kept for use again */
#define NGX_HTTP_AMONITOR_REDIS_ID_CAP    64 /* a recycled msg_id's room */


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


/* the records kept for use again; those of open claims are freed apart */
void
ngx_http_amonitor_redis_recs_exit(ngx_http_amonitor_redis_t *ctx)
{
    ngx_http_amonitor_kept_exit(&ctx->kept);
}


/* a record for a new claim, in the index */
ngx_http_amonitor_redis_rec_t *
ngx_http_amonitor_redis_rec_new(
    ngx_http_amonitor_redis_t *ctx, ngx_str_t *msg_id)
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
                + NGX_HTTP_AMONITOR_RESULT_MAX,
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
    rec->hash = ngx_http_amonitor_hash(msg_id->data, msg_id->len);

    slot = &ctx->index[rec->hash & ctx->index_mask];
    rec->next = *slot;
    *slot = rec;
    rec->in_index = 1;

    ctx->nclaims++;

    return rec;
}


ngx_http_amonitor_redis_rec_t *
ngx_http_amonitor_redis_rec_find(
    ngx_http_amonitor_redis_t *ctx, ngx_str_t *msg_id)
{
    uint32_t                       hash;
    ngx_http_amonitor_redis_rec_t *rec;

    hash = ngx_http_amonitor_hash(msg_id->data, msg_id->len);

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


void
ngx_http_amonitor_redis_rec_free(ngx_http_amonitor_redis_rec_t *rec)
{
    ngx_http_amonitor_redis_t *ctx;

    ctx = rec->ctx;

    if (rec->in_index) {
        ngx_http_amonitor_redis_rec_unindex(rec);
    }

    if (rec->in_queue) {
        ngx_queue_remove(&rec->queue);
    }

    ctx->nclaims--;

    if (rec->id_cap == NGX_HTTP_AMONITOR_REDIS_ID_CAP && !ctx->stopped) {
        ngx_http_amonitor_kept_put(
            &ctx->kept, rec, NGX_HTTP_AMONITOR_REDIS_FREE_RECS);
        return;
    }

    ngx_free(rec);
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
