/*
 * Copyright (C) AMonitor authors
 *
 * What the two halves of the Redis store share: the connection (commands
 * with a deadline each, setup, reconnects) in _store_redis.c, and the
 * claims this worker owns (tokens, leases, results to write) in
 * _store_redis_claim.c.  Outside the store only the cluster includes
 * this file (its bus runs on connections of this kind).
 */

#ifndef _NGX_HTTP_AMONITOR_STORE_REDIS_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_STORE_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"
#include "ngx_http_amonitor_store_redis_cmd.h"


/* "p" + host ":" pid ":" random ":" sequence */
#define NGX_HTTP_AMONITOR_REDIS_OWNER_LEN (NGX_MAXHOSTNAMELEN + 64)

/* a claim's value at most: owner, sequence, "|" target ";h" TTL */
#define NGX_HTTP_AMONITOR_REDIS_CLAIM_LEN \
    (NGX_HTTP_AMONITOR_REDIS_OWNER_LEN + 2 * NGX_INT64_LEN + 3 \
        + AMON_MAX_ID_LEN)

/* a pass's claims (and finishes) go in calls of at most this many */
#define NGX_HTTP_AMONITOR_REDIS_BATCH 64

/*
 * The format of what the agents keep in Redis under one prefix (keys,
 * values, scripts' meaning, cluster bus messages): raised by a release
 * whose agents cannot share a prefix with those of the releases before.
 * Every connection's setup (once its PING is answered: after AUTH and
 * SELECT) and every tick of a connection that sends commands run the
 * script below on prefix + "format": a key holding another format is an
 * error reply (the connection is dropped, actions are refused), else the
 * key is written or its TTL (3 x lease, ARGV[2]) lengthened, so that it
 * goes once no agent of its format is left (a Redis out of memory
 * refuses that write: the check still passes).
 */
#define NGX_HTTP_AMONITOR_REDIS_FORMAT "1"

#define NGX_HTTP_AMONITOR_LUA_FORMAT \
    "local v = redis.call('GET', KEYS[1]) " \
    "if v and v ~= ARGV[1] then return redis.error_reply('AMONITOR_FORMAT " \
    "the agents that use this prefix keep format ' .. string.sub(v, 1, 32) " \
    ".. ' (key ' .. KEYS[1] .. '), this agent keeps format ' .. ARGV[1] " \
    ".. ': a build of another release; give it a prefix= of its own, or " \
    "stop the others (the key expires ' .. ARGV[2] .. ' ms after the " \
    "last)') " \
    "end " \
    "if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then " \
    "redis.pcall('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end " \
    "return 1"


typedef enum {
    NGX_HTTP_AMONITOR_REC_CLAIMING = 0, /* the claim script is under way */
    NGX_HTTP_AMONITOR_REC_HELD, /* ours; renewed until it ends */
    NGX_HTTP_AMONITOR_REC_FINISHING, /* the result is to be written */
    NGX_HTTP_AMONITOR_REC_RELEASING /* the claim is to be deleted */
} ngx_http_amonitor_rec_state_e;


typedef struct ngx_http_amonitor_redis_rec_s ngx_http_amonitor_redis_rec_t;

/*
 * A claim this worker made and has not closed in Redis yet.  It is in
 * ctx->index by msg_id (except when releasing) and in ctx->held (held),
 * ctx->todo (an end to write at the end of this pass of the event loop,
 * or when Redis is back) or ctx->waiting (a claim to send at the end of
 * this pass, or made before the first connection was ready).  Commands
 * about one claim are answered in the order they were sent, so the
 * command that ends it is the last one that refers to it.
 */
struct ngx_http_amonitor_redis_rec_s {
    ngx_str_t                      msg_id;
    uint32_t                       hash; /* of msg_id */
    size_t                         id_cap; /* room for a msg_id, recycled */
    ngx_http_amonitor_redis_rec_t *next; /* in its index bucket, or free */
    ngx_queue_t                    queue;
    ngx_http_amonitor_redis_t     *ctx;
    ngx_http_amonitor_claim_pt     handler; /* while claiming */
    void                          *data;
    ngx_str_t                      owner; /* the pending value: "p" token */
    ngx_str_t                      value; /* finishing: "d"/"f" + result */
    ngx_http_amonitor_stored_pt    stored; /* told when the finish is in */
    void                          *stored_data;
    ngx_msec_t                     renewed;
    ngx_http_amonitor_rec_state_e  state;
    unsigned                       in_index : 1;
    unsigned                       in_queue : 1;
    unsigned                       renewing : 1;
    unsigned                       lost : 1;
    unsigned                       refused : 1; /* its finish, for now */
    unsigned                       adopted : 1; /* another worker's claim */
    unsigned                       forwarded : 1; /* its action ran there */
};


struct ngx_http_amonitor_redis_s {
    ngx_http_amonitor_store_t       store;
    ngx_http_amonitor_redis_conf_t *conf;
    ngx_http_amonitor_worker_t     *worker;
    redisAsyncContext              *ac;
    ngx_connection_t               *conn;
    ngx_log_t                      *log;
    ngx_event_t                     reconnect;
    ngx_event_t                     timeout; /* connect, oldest command */
    ngx_event_t                     tick; /* renewals, the format check */
    ngx_event_t                     batch; /* posted: claims, ends go out */
    ngx_msec_t                      backoff;
    ngx_uint_t                      failures;
    ngx_uint_t                      readies; /* times it became ready */
    ngx_queue_t                     sent; /* cmd_t, oldest first */

    /* rec_t by msg_id: a table of index_mask + 1 chains */
    ngx_http_amonitor_redis_rec_t **index;
    ngx_uint_t                      index_mask;
    ngx_http_amonitor_kept_t        kept; /* records to use again */
    ngx_queue_t                     held;
    ngx_queue_t                     todo;
    ngx_queue_t                     waiting; /* claims not sent yet */
    ngx_uint_t                      nclaims;
    ngx_uint_t                      nadopted; /* of them, other workers' */
    ngx_http_amonitor_redis_cmds_t  cmds; /* records to use again */
    ngx_msec_t full_logged; /* the last "claims are open" line */
    ngx_uint_t full_refused; /* refused since */
    ngx_str_t  owner; /* "p" host:pid:random: */
    ngx_str_t  hold_arg; /* a claim's TTL: lease + keep in ms, ARGV */
    ngx_str_t  lease_arg; /* the lease in ms, ARGV */
    ngx_http_amonitor_redis_script_t *query; /* action_status's lookup */
    ngx_str_t ttl_arg; /* amonitor_dedupe_ttl in ms, the same */
    ngx_str_t keep_arg; /* the TTL a claim names (claims_init) */
    u_char    hold_buf[NGX_INT64_LEN];
    u_char    lease_buf[NGX_INT64_LEN];
    u_char    ttl_buf[NGX_INT64_LEN];
    u_char    keep_buf[NGX_INT64_LEN];
    uint64_t  seq; /* appended to "owner" */
    u_char    owner_buf[NGX_HTTP_AMONITOR_REDIS_OWNER_LEN];

    /*
     * Set by the claims (store_redis_claim.c), which sit above the
     * connection: write the ends that waited, and renew the claims held;
     * called when the connection is ready and on every tick.
     */
    void (*flush)(ngx_http_amonitor_redis_t *ctx);
    void (*renew)(ngx_http_amonitor_redis_t *ctx);
    /* commands of a new connection's setup, before its PING (or NULL) */
    ngx_int_t (*setup)(ngx_http_amonitor_redis_t *ctx);

    /* the first connection failed: refuse what waited for it (or NULL) */
    void (*refuse)(ngx_http_amonitor_redis_t *ctx);
    /* the worker exits gracefully (nginx closes idle connections: the
     * one who sets it marks the connection idle) */
    void (*quit)(ngx_http_amonitor_redis_t *ctx);

    unsigned connected : 1; /* TCP is up */
    unsigned ready : 1; /* AUTH, SELECT, PING, format check ok */
    unsigned dropping : 1; /* we close it */
    unsigned stopped : 1;
    unsigned subscriber : 1; /* cluster: SUBSCRIBE only, no format check */
    unsigned writing : 1; /* in the write handler */
    unsigned exiting : 1; /* scripts go as EVAL with their text */
    unsigned exit_written : 1; /* all was written on the way out */
};


ngx_int_t ngx_http_amonitor_redis_command(ngx_http_amonitor_redis_t *ctx,
    ngx_http_amonitor_redis_reply_pt handler, void *data, const char *name,
    const char *fmt, ...);
ngx_int_t ngx_http_amonitor_redis_send(ngx_http_amonitor_redis_t *ctx,
    ngx_http_amonitor_redis_cmd_t *cmd, u_char *buf, size_t len);

/* scripts (store_redis_eval.c) */
void ngx_http_amonitor_redis_script_init(
    ngx_http_amonitor_redis_script_t *script, const char *text);
ngx_int_t  ngx_http_amonitor_redis_scripts_load(ngx_http_amonitor_redis_t *ctx,
     ngx_http_amonitor_redis_script_t *scripts, ngx_uint_t n);
ngx_int_t  ngx_http_amonitor_redis_eval(ngx_http_amonitor_redis_t *ctx,
     ngx_http_amonitor_redis_reply_pt handler, void *data, const char *name,
     ngx_http_amonitor_redis_script_t *script, ngx_str_t *args, ngx_uint_t n);
ngx_uint_t ngx_http_amonitor_redis_eval_exit(ngx_http_amonitor_redis_t *ctx);
ngx_int_t  ngx_http_amonitor_redis_eval_batch(ngx_http_amonitor_redis_t *ctx,
     ngx_http_amonitor_redis_reply_pt handler, void **data, const char *name,
     ngx_http_amonitor_redis_script_t *script, ngx_str_t *keys, ngx_str_t *args,
     ngx_uint_t n, ngx_uint_t nargs);

/* the connection (store_redis.c) */
ngx_http_amonitor_redis_t *ngx_http_amonitor_redis_conn_init(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_redis_conf_t *conf);
void ngx_http_amonitor_redis_conn_start(ngx_http_amonitor_redis_t *ctx);
void ngx_http_amonitor_redis_conn_exit(ngx_http_amonitor_redis_t *ctx);
/* the hiredis event hooks (store_redis_hooks.c) */
void ngx_http_amonitor_redis_hooks(ngx_http_amonitor_redis_t *ctx);
void ngx_http_amonitor_redis_add_write(void *privdata);
/* this worker's last format check passed (or none was made yet) */
ngx_uint_t ngx_http_amonitor_redis_format_ok(void);


/* a decimal number, for RESP and for scripts' arguments */
static ngx_inline u_char *
ngx_http_amonitor_redis_uint(u_char *p, uint64_t n)
{
    u_char  tmp[NGX_INT64_LEN];
    u_char *t;

    t = tmp + sizeof(tmp);

    do {
        *--t = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_cpymem(p, t, tmp + sizeof(tmp) - t);
}


/* store_redis_rec.c: the records of the claims */
ngx_int_t ngx_http_amonitor_redis_recs_init(ngx_http_amonitor_redis_t *ctx);
void      ngx_http_amonitor_redis_recs_exit(
         ngx_http_amonitor_redis_t *ctx, ngx_uint_t released);
void       ngx_http_amonitor_redis_recs_refuse(ngx_http_amonitor_redis_t *ctx);
ngx_uint_t ngx_http_amonitor_redis_recs_abandon(
    ngx_http_amonitor_redis_t *ctx, ngx_http_amonitor_redis_script_t *release);
ngx_http_amonitor_claim_e ngx_http_amonitor_redis_value(
    redisReply *reply, ngx_str_t *result);
ngx_int_t ngx_http_amonitor_redis_known(ngx_http_amonitor_redis_rec_t *rec,
    ngx_http_amonitor_claim_e *state, ngx_str_t *result);
ngx_int_t ngx_http_amonitor_redis_query(ngx_http_amonitor_store_t *st,
    ngx_str_t *msg_id, ngx_http_amonitor_claim_e *state, ngx_str_t *result,
    ngx_http_amonitor_claim_pt handler, void *data);
ngx_http_amonitor_redis_rec_t *ngx_http_amonitor_redis_rec_new(
    ngx_http_amonitor_redis_t *ctx, ngx_str_t *msg_id, uint32_t hash,
    ngx_str_t *target);
ngx_http_amonitor_redis_rec_t *ngx_http_amonitor_redis_rec_find(
    ngx_http_amonitor_redis_t *ctx, ngx_str_t *msg_id, uint32_t hash);
void ngx_http_amonitor_redis_rec_unindex(ngx_http_amonitor_redis_rec_t *rec);
void ngx_http_amonitor_redis_rec_free(ngx_http_amonitor_redis_rec_t *rec);
ngx_uint_t ngx_http_amonitor_redis_take(
    ngx_queue_t *queue, ngx_http_amonitor_redis_rec_t **recs, ngx_uint_t ends);
void ngx_http_amonitor_redis_taken(
    ngx_http_amonitor_redis_rec_t **recs, ngx_uint_t n);
ngx_int_t ngx_http_amonitor_redis_adopt(ngx_http_amonitor_store_t *st,
    ngx_str_t *msg_id, uint32_t hash, ngx_str_t *owner);
void      ngx_http_amonitor_redis_disown(
         ngx_http_amonitor_store_t *st, ngx_str_t *msg_id, uint32_t hash);
ngx_int_t ngx_http_amonitor_redis_claim_token(ngx_http_amonitor_store_t *st,
    ngx_str_t *msg_id, uint32_t hash, ngx_str_t *token);
ngx_int_t ngx_http_amonitor_redis_end_again(
    ngx_http_amonitor_redis_rec_t *rec, redisReply *reply);
ngx_int_t ngx_http_amonitor_redis_stored(ngx_http_amonitor_store_t *st,
    ngx_str_t *msg_id, ngx_http_amonitor_stored_pt handler, void *data);
void      ngx_http_amonitor_redis_rec_tell(ngx_http_amonitor_redis_rec_t *rec);
void      ngx_http_amonitor_redis_recs_tell(ngx_http_amonitor_redis_t *ctx);
void      ngx_http_amonitor_redis_recs_full(
         ngx_http_amonitor_redis_t *ctx, ngx_str_t *msg_id);


#endif /* _NGX_HTTP_AMONITOR_STORE_REDIS_H_INCLUDED_ */
