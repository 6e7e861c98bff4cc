/*
 * Copyright (C) AMonitor authors
 *
 * What the Redis store answers of a msg_id without claiming it, and what
 * a value read back from Redis says: action_status (the worker's own
 * record first, else the lookup script), a duplicate of a claim this
 * worker holds, a claim or record found by a script, a claim lost (left
 * unrenewed by its workers: store_redis_lua.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store_redis.h"


static ngx_http_amonitor_claim_e ngx_http_amonitor_redis_lost(
    redisReply *reply, ngx_str_t *result);
static void ngx_http_amonitor_redis_queried(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);


/* action_status: the worker's own claims first, else the lookup script */
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
    ngx_str_t                        args[2];
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

    args[0] = ctx->conf->prefix;
    args[1] = *msg_id;

    rc = ngx_http_amonitor_redis_eval(
        ctx, ngx_http_amonitor_redis_queried, q, "query", ctx->query, args, 2);

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
    ngx_str_t                 result;
    ngx_http_amonitor_claim_e state;

    result.data = buf;
    result.len = 0;
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


/*
 * A claim lost ("l" + its value, "p" token "|" target ";h" TTL): failed,
 * with a record naming its target written where result->data points
 * (NGX_HTTP_AMONITOR_STORED_MAX bytes)
 */
static ngx_http_amonitor_claim_e
ngx_http_amonitor_redis_lost(redisReply *reply, ngx_str_t *result)
{
    u_char   *p, *h, *last;
    ngx_str_t target;

    p = (u_char *) reply->str;
    last = p + reply->len;

    ngx_str_null(&target);

    p = ngx_strlchr(p, last, '|');

    /* the last ";h": the target may hold one */
    for (h = last - 2; p && h > p; h--) {
        if (h[0] == ';' && h[1] == 'h') {
            target.data = p + 1;
            target.len = h - target.data;
            break;
        }
    }

    if (target.len > AMON_MAX_ID_LEN) {
        target.len = 0;
    }

    if (ngx_http_amonitor_stored_error(result, &target, "TARGET_DISCONNECTED",
            "the agent worker that held this action stopped (or lost redis) "
            "before its outcome was known; it may have run")
        != NGX_OK) {
        result->len = 0;
    }

    return NGX_HTTP_AMONITOR_CLAIM_FAILED;
}


/*
 * A claim's value found in Redis ("p" + owner, "d" or "f" + result, or
 * from a script "l" + the value of a lost claim): its state, and
 * its record in "result" (pointing into "reply", or for a lost claim
 * written where result->data points, NGX_HTTP_AMONITOR_STORED_MAX bytes)
 */
ngx_http_amonitor_claim_e
ngx_http_amonitor_redis_value(redisReply *reply, ngx_str_t *result)
{
    ngx_http_amonitor_claim_e state;

    switch (reply->str[0]) {
    case 'd': state = NGX_HTTP_AMONITOR_CLAIM_DONE; break;
    case 'f': state = NGX_HTTP_AMONITOR_CLAIM_FAILED; break;
    case 'l': return ngx_http_amonitor_redis_lost(reply, result);

    default: return NGX_HTTP_AMONITOR_CLAIM_PENDING;
    }

    result->data = (u_char *) reply->str + 1;
    result->len =
        ngx_min((size_t) reply->len - 1, NGX_HTTP_AMONITOR_STORED_MAX);

    return state;
}
