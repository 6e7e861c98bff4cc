/*
 * Copyright (C) AMonitor authors
 *
 * The claims' Lua scripts as Redis runs them cheaply: EVALSHA with the
 * script's SHA1, formatted here as RESP (no printf-like formatting per
 * command).  A Redis that does not know the script (restarted, SCRIPT
 * FLUSH, another server behind the same address) answers NOSCRIPT: the
 * same call is then sent once more as EVAL, which also teaches it the
 * script, and the caller never sees the error.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_sha1.h>

#include "ngx_http_amonitor_store_redis.h"


#define NGX_HTTP_AMONITOR_RESP_HDR (1 + NGX_SIZE_T_LEN + 2)

/* the size of a bulk string of n bytes: "$" n CRLF bytes CRLF */
#define ngx_http_amonitor_resp_bulk_size(n) \
    (NGX_HTTP_AMONITOR_RESP_HDR + (n) + 2)


static u_char *ngx_http_amonitor_resp_bulk(
    u_char *p, u_char *a, size_t alen, u_char *b, size_t blen);
static ngx_int_t ngx_http_amonitor_redis_eval_keys(
    ngx_http_amonitor_redis_t *ctx, ngx_http_amonitor_redis_reply_pt handler,
    void *data, const char *name, ngx_http_amonitor_redis_script_t *script,
    ngx_str_t *prefix, ngx_str_t *keys, ngx_uint_t nkeys, ngx_str_t *args,
    ngx_uint_t nargs);
static void ngx_http_amonitor_redis_batch_reply(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);
static ngx_int_t ngx_http_amonitor_redis_eval_again(
    ngx_http_amonitor_redis_cmd_t *cmd, redisReply *reply);


/* one script's call for several items: the handler and data of each */
typedef struct {
    ngx_http_amonitor_redis_reply_pt handler;
    ngx_uint_t                       n;
    void                            *data[1];
} ngx_http_amonitor_redis_batch_t;


void
ngx_http_amonitor_redis_script_init(
    ngx_http_amonitor_redis_script_t *script, const char *text)
{
    u_char     digest[20];
    ngx_sha1_t sha1;

    script->text.data = (u_char *) text;
    script->text.len = ngx_strlen(text);

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, script->text.data, script->text.len);
    ngx_sha1_final(digest, &sha1);

    (void) ngx_hex_dump(script->sha, digest, sizeof(digest));
}


static u_char *
ngx_http_amonitor_resp_bulk(
    u_char *p, u_char *a, size_t alen, u_char *b, size_t blen)
{
    *p++ = '$';
    p = ngx_http_amonitor_redis_uint(p, alen + blen);
    *p++ = CR;
    *p++ = LF;
    p = ngx_cpymem(p, a, alen);

    if (blen) {
        p = ngx_cpymem(p, b, blen);
    }

    *p++ = CR;
    *p++ = LF;

    return p;
}


/*
 * Run "script" with one key, args[0] and args[1] joined (prefix and
 * msg_id), and ARGV args[2] ... args[n - 1].  As redis_command: NGX_OK,
 * NGX_DECLINED (not connected) or NGX_ERROR.
 */
ngx_int_t
ngx_http_amonitor_redis_eval(ngx_http_amonitor_redis_t *ctx,
    ngx_http_amonitor_redis_reply_pt handler, void *data, const char *name,
    ngx_http_amonitor_redis_script_t *script, ngx_str_t *args, ngx_uint_t n)
{
    return ngx_http_amonitor_redis_eval_keys(ctx, handler, data, name, script,
        &args[0], &args[1], 1, &args[2], n - 2);
}


/*
 * Run "script" once for n items: KEYS the prefix joined with keys[0] ...
 * keys[n - 1], ARGV args[0] ... args[n * per] ("per" for each item in
 * turn, then one for all).  The script answers an array of n replies,
 * the one of item i for handler(data[i]); a reply that is not such an
 * array (an error, or none: NULL) goes to each.
 */
ngx_int_t
ngx_http_amonitor_redis_eval_batch(ngx_http_amonitor_redis_t *ctx,
    ngx_http_amonitor_redis_reply_pt handler, void **data, const char *name,
    ngx_http_amonitor_redis_script_t *script, ngx_str_t *keys, ngx_str_t *args,
    ngx_uint_t n, ngx_uint_t per)
{
    ngx_int_t                        rc;
    ngx_http_amonitor_redis_batch_t *b;

    b = ngx_alloc(
        sizeof(ngx_http_amonitor_redis_batch_t) + (n - 1) * sizeof(void *),
        ctx->log);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->handler = handler;
    b->n = n;
    ngx_memcpy(b->data, data, n * sizeof(void *));

    rc = ngx_http_amonitor_redis_eval_keys(ctx,
        ngx_http_amonitor_redis_batch_reply, b, name, script,
        &ctx->conf->prefix, keys, n, args, n * per + 1);

    if (rc != NGX_OK) {
        ngx_free(b);
    }

    return rc;
}


static void
ngx_http_amonitor_redis_batch_reply(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply)
{
    ngx_http_amonitor_redis_batch_t *b = data;

    ngx_uint_t  i, each;
    redisReply *r;

    each = (reply != NULL && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == b->n);

    for (i = 0; i < b->n; i++) {
        r = each ? reply->element[i] : reply;
        b->handler(ctx, b->data[i], r);
    }

    ngx_free(b);
}


/*
 * EVALSHA sha nkeys (prefix key)... args...: the part after nkeys is kept
 * for a retry.
 */
static ngx_int_t
ngx_http_amonitor_redis_eval_keys(ngx_http_amonitor_redis_t *ctx,
    ngx_http_amonitor_redis_reply_pt handler, void *data, const char *name,
    ngx_http_amonitor_redis_script_t *script, ngx_str_t *prefix,
    ngx_str_t *keys, ngx_uint_t nkeys, ngx_str_t *args, ngx_uint_t nargs)
{
    u_char                        *p, *start, nk[NGX_INT_T_LEN];
    size_t                         len, nk_len;
    ngx_int_t                      rc;
    ngx_uint_t                     i;
    ngx_http_amonitor_redis_cmd_t *cmd;

    nk_len = ngx_http_amonitor_redis_uint(nk, nkeys) - nk;

    len = NGX_HTTP_AMONITOR_RESP_HDR + ngx_http_amonitor_resp_bulk_size(7)
        + ngx_http_amonitor_resp_bulk_size(40)
        + ngx_http_amonitor_resp_bulk_size(nk_len);

    for (i = 0; i < nkeys; i++) {
        len += ngx_http_amonitor_resp_bulk_size(prefix->len + keys[i].len);
    }

    for (i = 0; i < nargs; i++) {
        len += ngx_http_amonitor_resp_bulk_size(args[i].len);
    }

    cmd = ngx_http_amonitor_redis_cmd_new(
        &ctx->cmds, ctx->log, handler, data, name, len);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    start = (u_char *) (cmd + 1);

    p = start;
    *p++ = '*';
    p = ngx_http_amonitor_redis_uint(p, 3 + nkeys + nargs);
    *p++ = CR;
    *p++ = LF;
    p = ngx_http_amonitor_resp_bulk(p, (u_char *) "EVALSHA", 7, NULL, 0);
    p = ngx_http_amonitor_resp_bulk(p, script->sha, 40, NULL, 0);
    p = ngx_http_amonitor_resp_bulk(p, nk, nk_len, NULL, 0);

    cmd->rest = p;

    for (i = 0; i < nkeys; i++) {
        p = ngx_http_amonitor_resp_bulk(
            p, prefix->data, prefix->len, keys[i].data, keys[i].len);
    }

    for (i = 0; i < nargs; i++) {
        p = ngx_http_amonitor_resp_bulk(p, args[i].data, args[i].len, NULL, 0);
    }

    cmd->rest_len = p - cmd->rest;
    cmd->argc = 3 + nkeys + nargs;
    cmd->nkeys = nkeys;
    cmd->script = script;
    cmd->again = ngx_http_amonitor_redis_eval_again;

    rc = ngx_http_amonitor_redis_send(ctx, cmd, start, p - start);

    if (rc != NGX_OK) {
        ngx_http_amonitor_redis_cmd_free(&ctx->cmds, cmd);
    }

    return rc;
}


/* NOSCRIPT: the same call as EVAL with the script's text, once */
static ngx_int_t
ngx_http_amonitor_redis_eval_again(
    ngx_http_amonitor_redis_cmd_t *cmd, redisReply *reply)
{
    u_char                           *buf, *p, nk[NGX_INT_T_LEN];
    size_t                            len, nk_len;
    ngx_int_t                         rc;
    ngx_http_amonitor_redis_script_t *script;

    script = cmd->script;

    if (script == NULL || reply->type != REDIS_REPLY_ERROR || reply->len < 8
        || ngx_strncmp(reply->str, "NOSCRIPT", 8) != 0) {
        return NGX_DECLINED;
    }

    cmd->script = NULL;

    len = NGX_HTTP_AMONITOR_RESP_HDR + ngx_http_amonitor_resp_bulk_size(4)
        + ngx_http_amonitor_resp_bulk_size(script->text.len)
        + ngx_http_amonitor_resp_bulk_size(NGX_INT_T_LEN) + cmd->rest_len;

    buf = ngx_alloc(len, cmd->ctx->log);
    if (buf == NULL) {
        return NGX_DECLINED;
    }

    p = ngx_sprintf(buf, "*%ui\r\n", cmd->argc);
    p = ngx_http_amonitor_resp_bulk(p, (u_char *) "EVAL", 4, NULL, 0);
    p = ngx_http_amonitor_resp_bulk(
        p, script->text.data, script->text.len, NULL, 0);
    nk_len = ngx_http_amonitor_redis_uint(nk, cmd->nkeys) - nk;
    p = ngx_http_amonitor_resp_bulk(p, nk, nk_len, NULL, 0);
    p = ngx_cpymem(p, cmd->rest, cmd->rest_len);

    ngx_log_error(NGX_LOG_NOTICE, cmd->ctx->log, 0,
        "amonitor: redis %V did not know the \"%s\" script, sent it again "
        "with its text",
        &cmd->ctx->conf->addr, cmd->name);

    /* hiredis copies the command: the buffer is ours again */
    rc = ngx_http_amonitor_redis_send(cmd->ctx, cmd, buf, p - buf);

    ngx_free(buf);

    return rc == NGX_OK ? NGX_OK : NGX_DECLINED;
}
