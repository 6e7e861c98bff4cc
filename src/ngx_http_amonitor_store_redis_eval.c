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
static ngx_int_t ngx_http_amonitor_redis_eval_again(
    ngx_http_amonitor_redis_cmd_t *cmd, redisReply *reply);


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
    u_char                        *p, *start;
    size_t                         len;
    ngx_int_t                      rc;
    ngx_uint_t                     i;
    ngx_http_amonitor_redis_cmd_t *cmd;

    /* EVALSHA sha 1 key argv...: the part after "1" is kept for a retry */
    len = NGX_HTTP_AMONITOR_RESP_HDR + ngx_http_amonitor_resp_bulk_size(7)
        + ngx_http_amonitor_resp_bulk_size(40)
        + ngx_http_amonitor_resp_bulk_size(1)
        + ngx_http_amonitor_resp_bulk_size(args[0].len + args[1].len);

    for (i = 2; i < n; i++) {
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
    p = ngx_http_amonitor_redis_uint(p, n + 2);
    *p++ = CR;
    *p++ = LF;
    p = ngx_http_amonitor_resp_bulk(p, (u_char *) "EVALSHA", 7, NULL, 0);
    p = ngx_http_amonitor_resp_bulk(p, script->sha, 40, NULL, 0);
    p = ngx_http_amonitor_resp_bulk(p, (u_char *) "1", 1, NULL, 0);

    cmd->rest = p;
    p = ngx_http_amonitor_resp_bulk(
        p, args[0].data, args[0].len, args[1].data, args[1].len);

    for (i = 2; i < n; i++) {
        p = ngx_http_amonitor_resp_bulk(p, args[i].data, args[i].len, NULL, 0);
    }

    cmd->rest_len = p - cmd->rest;
    cmd->argc = n + 2;
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
    u_char                           *buf, *p;
    size_t                            len;
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
        + ngx_http_amonitor_resp_bulk_size(1) + cmd->rest_len;

    buf = ngx_alloc(len, cmd->ctx->log);
    if (buf == NULL) {
        return NGX_DECLINED;
    }

    p = ngx_sprintf(buf, "*%ui\r\n", cmd->argc);
    p = ngx_http_amonitor_resp_bulk(p, (u_char *) "EVAL", 4, NULL, 0);
    p = ngx_http_amonitor_resp_bulk(
        p, script->text.data, script->text.len, NULL, 0);
    p = ngx_http_amonitor_resp_bulk(p, (u_char *) "1", 1, NULL, 0);
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
