/*
 * Copyright (C) AMonitor authors
 *
 * What the Redis store answers of a msg_id without claiming it, and what
 * a value read back from Redis says: action_status (the worker's own
 * record first, else the claim's key and its marker's in one MGET), a
 * duplicate of a claim this worker holds, a claim or record found by a
 * claim script, a claim lost (its marker left without it).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store_redis.h"


static ngx_http_amonitor_claim_e ngx_http_amonitor_redis_lost(
    ngx_str_t *target, ngx_str_t *result);
static void ngx_http_amonitor_redis_queried(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);


/* action_status: the worker's own claims first, else one MGET */
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
    ngx_str_t                        infix;
    ngx_http_amonitor_redis_rec_t   *rec;
    ngx_http_amonitor_redis_query_t *q;

    rec = ngx_http_amonitor_redis_rec_find(
        ctx, msg_id, ngx_http_amonitor_hash(msg_id->data, msg_id->len));

    /* another worker's claim held here: that worker may have ended it */
    if (rec && !(rec->adopted && rec->state == NGX_HTTP_AMONITOR_REC_HELD)) {
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

    ngx_http_amonitor_redis_infix(msg_id, &infix);

    rc = ngx_http_amonitor_redis_command(ctx, ngx_http_amonitor_redis_queried,
        q, "query", "MGET %b%b%b %bheld:%b", ctx->conf->prefix.data,
        ctx->conf->prefix.len, infix.data, infix.len, msg_id->data, msg_id->len,
        ctx->conf->prefix.data, ctx->conf->prefix.len, msg_id->data,
        msg_id->len);

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

    u_char                    buf[NGX_HTTP_AMONITOR_STORED_MAX];
    ngx_str_t                 result, target;
    redisReply               *claim, *held;
    ngx_http_amonitor_claim_e state;

    result.data = buf;
    result.len = 0;
    state = NGX_HTTP_AMONITOR_CLAIM_ERROR;

    /* the claim's value and its marker's */
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        claim = reply->element[0];
        held = reply->element[1];

        if (claim->type == REDIS_REPLY_STRING && claim->len >= 1) {
            state = ngx_http_amonitor_redis_value(claim, &result);

        } else if (claim->type == REDIS_REPLY_NIL
            && held->type == REDIS_REPLY_STRING) {
            target.data = (u_char *) held->str;
            target.len = held->len;
            state = ngx_http_amonitor_redis_lost(&target, &result);

        } else if (claim->type == REDIS_REPLY_NIL) {
            state = NGX_HTTP_AMONITOR_CLAIM_NEW;
        }
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


/*
 * A claim lost (its marker, naming "target", without it): failed, with a
 * record written where result->data points (NGX_HTTP_AMONITOR_STORED_MAX
 * bytes)
 */
static ngx_http_amonitor_claim_e
ngx_http_amonitor_redis_lost(ngx_str_t *target, ngx_str_t *result)
{
    if (target->len > AMON_MAX_ID_LEN) {
        target->len = 0;
    }

    if (ngx_http_amonitor_stored_error(result, target, "TARGET_DISCONNECTED",
            "the agent worker that held this action stopped (or lost redis) "
            "before its outcome was known; it may have run")
        != NGX_OK) {
        result->len = 0;
    }

    return NGX_HTTP_AMONITOR_CLAIM_FAILED;
}


/*
 * A claim's value found in Redis ("p" + owner, "d" or "f" + result, or
 * from a claim script "l" + the target of a lost claim): its state, and
 * its record in "result" (pointing into "reply", or for a lost claim
 * written where result->data points, NGX_HTTP_AMONITOR_STORED_MAX bytes)
 */
ngx_http_amonitor_claim_e
ngx_http_amonitor_redis_value(redisReply *reply, ngx_str_t *result)
{
    ngx_str_t                 target;
    ngx_http_amonitor_claim_e state;

    switch (reply->str[0]) {
    case 'd': state = NGX_HTTP_AMONITOR_CLAIM_DONE; break;
    case 'f': state = NGX_HTTP_AMONITOR_CLAIM_FAILED; break;

    case 'l':
        target.data = (u_char *) reply->str + 1;
        target.len = reply->len - 1;

        return ngx_http_amonitor_redis_lost(&target, result);

    default: return NGX_HTTP_AMONITOR_CLAIM_PENDING;
    }

    result->data = (u_char *) reply->str + 1;
    result->len =
        ngx_min((size_t) reply->len - 1, NGX_HTTP_AMONITOR_STORED_MAX);

    return state;
}
