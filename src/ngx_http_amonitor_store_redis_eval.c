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
static u_char *ngx_http_amonitor_resp_key(
    u_char *p, ngx_str_t *prefix, ngx_str_t *infix, ngx_str_t *key);
static void ngx_http_amonitor_redis_infix(ngx_str_t *msg_id, ngx_str_t *infix);
static void ngx_http_amonitor_redis_script_loaded(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);
static void ngx_http_amonitor_redis_memory(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);
static ngx_int_t ngx_http_amonitor_redis_info(
    redisReply *reply, const char *field, ngx_str_t *value);
static ngx_int_t ngx_http_amonitor_redis_eval_keys(
    ngx_http_amonitor_redis_t *ctx, ngx_http_amonitor_redis_reply_pt handler,
    void *data, const char *name, ngx_http_amonitor_redis_script_t *script,
    ngx_str_t *prefix, ngx_str_t *keys, ngx_uint_t nkeys, ngx_str_t *args,
    ngx_uint_t nargs);
static void ngx_http_amonitor_redis_batch_reply(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);
static ngx_int_t ngx_http_amonitor_redis_eval_again(
    ngx_http_amonitor_redis_cmd_t *cmd, redisReply *reply);
static ngx_int_t ngx_http_amonitor_redis_eval_text(
    ngx_http_amonitor_redis_cmd_t *cmd, ngx_http_amonitor_redis_cmd_t *src,
    ngx_http_amonitor_redis_script_t *script);


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


/*
 * A new connection's setup: Redis learns the scripts (SCRIPT LOAD, ahead
 * of every call on that connection), so that no EVALSHA meets NOSCRIPT
 * and waits for a second call: a finish then reaches Redis in the write
 * that goes before its ack is written to the panel.  It is also asked
 * whether it evicts keys when full (INFO memory).
 */
ngx_int_t
ngx_http_amonitor_redis_scripts_load(ngx_http_amonitor_redis_t *ctx,
    ngx_http_amonitor_redis_script_t *scripts, ngx_uint_t n)
{
    ngx_uint_t i;

    for (i = 0; i < n; i++) {
        if (ngx_http_amonitor_redis_command(ctx,
                ngx_http_amonitor_redis_script_loaded, &scripts[i],
                "SCRIPT LOAD", "SCRIPT LOAD %b", scripts[i].text.data,
                scripts[i].text.len)
            != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_http_amonitor_redis_command(ctx, ngx_http_amonitor_redis_memory,
        NULL, "INFO memory", "INFO memory");
}


/*
 * A Redis with a maxmemory and a policy other than noeviction may evict
 * the dedupe records (all of them have a TTL, so volatile-* policies too):
 * a repeat of an evicted msg_id would run again, which nothing else says.
 * A Redis that does not answer INFO is not refused for it.
 */
static void
ngx_http_amonitor_redis_memory(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply)
{
    ngx_str_t max, policy;

    if (reply == NULL || reply->type != REDIS_REPLY_STRING
        || ngx_http_amonitor_redis_info(reply, "maxmemory", &max) != NGX_OK
        || ngx_http_amonitor_redis_info(reply, "maxmemory_policy", &policy)
            != NGX_OK) {
        return;
    }

    if ((max.len == 1 && max.data[0] == '0')
        || (policy.len == 10
            && ngx_strncmp(policy.data, "noeviction", 10) == 0)) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ctx->log, 0,
        "amonitor: redis %V evicts keys when it is full (maxmemory %V, "
        "maxmemory-policy %V): an evicted dedupe record lets a repeated "
        "msg_id run again; set maxmemory-policy noeviction",
        &ctx->conf->addr, &max, &policy);
}


/* a field of an INFO reply: "\r\n" field ":" value "\r\n" */
static ngx_int_t
ngx_http_amonitor_redis_info(
    redisReply *reply, const char *field, ngx_str_t *value)
{
    u_char *p, *last, *nl;
    size_t  len;

    len = ngx_strlen(field);
    p = (u_char *) reply->str;
    last = p + reply->len;

    while (p < last) {
        nl = ngx_strlchr(p, last, '\n');
        if (nl == NULL) {
            nl = last;
        }

        if ((size_t) (nl - p) > len && p[len] == ':'
            && ngx_strncmp(p, field, len) == 0) {
            value->data = p + len + 1;
            value->len = nl - value->data;

            if (value->len && value->data[value->len - 1] == '\r') {
                value->len--;
            }

            return value->len ? NGX_OK : NGX_ERROR;
        }

        p = nl + 1;
    }

    return NGX_ERROR;
}


/* a script Redis did not take is sent with its text when it is called */
static void
ngx_http_amonitor_redis_script_loaded(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply)
{
    ngx_http_amonitor_redis_script_t *script = data;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_WARN, ctx->log, 0,
            "amonitor: redis %V did not load the script %*s: %*s",
            &ctx->conf->addr, (size_t) 40, script->sha, (size_t) reply->len,
            reply->str);
    }
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


/* a key: "$" n CRLF prefix infix key CRLF */
static u_char *
ngx_http_amonitor_resp_key(
    u_char *p, ngx_str_t *prefix, ngx_str_t *infix, ngx_str_t *key)
{
    *p++ = '$';
    p = ngx_http_amonitor_redis_uint(p, prefix->len + infix->len + key->len);
    *p++ = CR;
    *p++ = LF;
    p = ngx_cpymem(p, prefix->data, prefix->len);
    p = ngx_cpymem(p, infix->data, infix->len);
    p = ngx_cpymem(p, key->data, key->len);
    *p++ = CR;
    *p++ = LF;

    return p;
}


/*
 * What goes between the prefix and a msg_id in its claim's key: "id:"
 * for a msg_id that could name one of the module's own keys (it starts
 * with "lease:" or "id:", or is "routes", "seen", "state", "lost" or
 * "format"), else nothing.  So a panel cannot choose a msg_id that writes
 * over a lease, the routes, the data-loss keys (amonitor_cluster) or the
 * format; the mapping is one to one.
 */
static void
ngx_http_amonitor_redis_infix(ngx_str_t *msg_id, ngx_str_t *infix)
{
    u_char *d;
    size_t  n;

    d = msg_id->data;
    n = msg_id->len;

    if ((n >= 3 && ngx_strncmp(d, "id:", 3) == 0)
        || (n >= 6 && ngx_strncmp(d, "lease:", 6) == 0)
        || (n == 6 && ngx_strncmp(d, "routes", 6) == 0)
        || (n == 4 && ngx_strncmp(d, "seen", 4) == 0)
        || (n == 5 && ngx_strncmp(d, "state", 5) == 0)
        || (n == 4 && ngx_strncmp(d, "lost", 4) == 0)
        || (n == 6 && ngx_strncmp(d, "format", 6) == 0)) {
        ngx_str_set(infix, "id:");
        return;
    }

    ngx_str_set(infix, "");
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
 * keys[n - 1], ARGV args[0] ... args[nargs - 1].  The script answers an array of n replies,
 * the one of item i for handler(data[i]); a reply that is not such an
 * array (an error, or none: NULL) goes to each.
 */
ngx_int_t
ngx_http_amonitor_redis_eval_batch(ngx_http_amonitor_redis_t *ctx,
    ngx_http_amonitor_redis_reply_pt handler, void **data, const char *name,
    ngx_http_amonitor_redis_script_t *script, ngx_str_t *keys, ngx_str_t *args,
    ngx_uint_t n, ngx_uint_t nargs)
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
        &ctx->conf->prefix, keys, n, args, nargs);

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
 * for a retry.  A worker that exits reads no reply (no NOSCRIPT): its
 * last calls are EVAL with the script's text.
 */
static ngx_int_t
ngx_http_amonitor_redis_eval_keys(ngx_http_amonitor_redis_t *ctx,
    ngx_http_amonitor_redis_reply_pt handler, void *data, const char *name,
    ngx_http_amonitor_redis_script_t *script, ngx_str_t *prefix,
    ngx_str_t *keys, ngx_uint_t nkeys, ngx_str_t *args, ngx_uint_t nargs)
{
    u_char                        *p, *start, nk[NGX_INT_T_LEN];
    size_t                         len, nk_len;
    ngx_str_t                      verb, body, infix;
    ngx_int_t                      rc;
    ngx_uint_t                     i;
    ngx_http_amonitor_redis_cmd_t *cmd;

    if (ctx->exiting) {
        ngx_str_set(&verb, "EVAL");
        body = script->text;

    } else {
        ngx_str_set(&verb, "EVALSHA");
        body.data = script->sha;
        body.len = 40;
    }

    nk_len = ngx_http_amonitor_redis_uint(nk, nkeys) - nk;

    len = NGX_HTTP_AMONITOR_RESP_HDR
        + ngx_http_amonitor_resp_bulk_size(verb.len)
        + ngx_http_amonitor_resp_bulk_size(body.len)
        + ngx_http_amonitor_resp_bulk_size(nk_len);

    /* each key with its infix: "id:" or none */
    for (i = 0; i < nkeys; i++) {
        len += ngx_http_amonitor_resp_bulk_size(
            prefix->len + sizeof("id:") - 1 + keys[i].len);
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
    p = ngx_http_amonitor_resp_bulk(p, verb.data, verb.len, NULL, 0);
    p = ngx_http_amonitor_resp_bulk(p, body.data, body.len, NULL, 0);
    p = ngx_http_amonitor_resp_bulk(p, nk, nk_len, NULL, 0);

    cmd->rest = p;

    for (i = 0; i < nkeys; i++) {
        ngx_http_amonitor_redis_infix(&keys[i], &infix);
        p = ngx_http_amonitor_resp_key(p, prefix, &infix, &keys[i]);
    }

    for (i = 0; i < nargs; i++) {
        p = ngx_http_amonitor_resp_bulk(p, args[i].data, args[i].len, NULL, 0);
    }

    cmd->rest_len = p - cmd->rest;
    cmd->argc = 3 + nkeys + nargs;
    cmd->nkeys = nkeys;
    cmd->script = ctx->exiting ? NULL : script;
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
    ngx_http_amonitor_redis_script_t *script;

    script = cmd->script;

    if (script == NULL || reply->type != REDIS_REPLY_ERROR || reply->len < 8
        || ngx_strncmp(reply->str, "NOSCRIPT", 8) != 0) {
        return NGX_DECLINED;
    }

    cmd->script = NULL;

    ngx_log_error(NGX_LOG_NOTICE, cmd->ctx->log, 0,
        "amonitor: redis %V did not know the \"%s\" script, sent it again "
        "with its text",
        &cmd->ctx->conf->addr, cmd->name);

    return ngx_http_amonitor_redis_eval_text(cmd, cmd, script) == NGX_OK
        ? NGX_OK
        : NGX_DECLINED;
}


/* "cmd" goes as EVAL: the text of "script", the keys and ARGV of "src" */
static ngx_int_t
ngx_http_amonitor_redis_eval_text(ngx_http_amonitor_redis_cmd_t *cmd,
    ngx_http_amonitor_redis_cmd_t                               *src,
    ngx_http_amonitor_redis_script_t                            *script)
{
    u_char   *buf, *p, nk[NGX_INT_T_LEN];
    size_t    len, nk_len;
    ngx_int_t rc;

    len = NGX_HTTP_AMONITOR_RESP_HDR + ngx_http_amonitor_resp_bulk_size(4)
        + ngx_http_amonitor_resp_bulk_size(script->text.len)
        + ngx_http_amonitor_resp_bulk_size(NGX_INT_T_LEN) + src->rest_len;

    buf = ngx_alloc(len, src->ctx->log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(buf, "*%ui\r\n", src->argc);
    p = ngx_http_amonitor_resp_bulk(p, (u_char *) "EVAL", 4, NULL, 0);
    p = ngx_http_amonitor_resp_bulk(
        p, script->text.data, script->text.len, NULL, 0);
    nk_len = ngx_http_amonitor_redis_uint(nk, src->nkeys) - nk;
    p = ngx_http_amonitor_resp_bulk(p, nk, nk_len, NULL, 0);
    p = ngx_cpymem(p, src->rest, src->rest_len);

    /* hiredis copies the command: the buffer is ours again */
    rc = ngx_http_amonitor_redis_send(src->ctx, cmd, buf, p - buf);

    ngx_free(buf);

    return rc;
}


/*
 * The worker exits and reads no more replies, so a NOSCRIPT would go
 * unseen: each call still unanswered that went by SHA1, of a script that
 * may run twice (an end: finish, release), is sent once more with the
 * script's text.  Where Redis knew the script, the second run writes
 * what the first did.  The number sent.
 */
ngx_uint_t
ngx_http_amonitor_redis_eval_exit(ngx_http_amonitor_redis_t *ctx)
{
    ngx_uint_t                     n;
    ngx_queue_t                   *q, *last;
    ngx_http_amonitor_redis_cmd_t *cmd, *twin;

    n = 0;

    if (!ctx->ready || ngx_queue_empty(&ctx->sent)) {
        return 0;
    }

    /* the twins join the queue behind the last one of now */
    last = ngx_queue_last(&ctx->sent);

    for (q = ngx_queue_head(&ctx->sent);; q = ngx_queue_next(q)) {
        cmd = ngx_queue_data(q, ngx_http_amonitor_redis_cmd_t, queue);

        if (cmd->script && cmd->script->again_at_exit) {
            twin = ngx_http_amonitor_redis_cmd_new(&ctx->cmds, ctx->log,
                ngx_http_amonitor_redis_ignore, NULL, cmd->name, 0);

            if (twin == NULL) {
                break;
            }

            if (ngx_http_amonitor_redis_eval_text(twin, cmd, cmd->script)
                != NGX_OK) {
                ngx_http_amonitor_redis_cmd_free(&ctx->cmds, twin);
                break;
            }

            n++;
        }

        if (q == last) {
            break;
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, ctx->log, 0,
        "amonitor redis: %ui ends sent again with their scripts' text", n);

    return n;
}
