/*
 * Copyright (C) AMonitor authors
 *
 * The record of a Redis command (_store_redis_cmd.c): what its reply is
 * for, its deadline, and for a script's call what it takes to send it
 * again.  Below the connection (_store_redis.c), which owns the records
 * kept for use again.
 */

#ifndef _NGX_HTTP_AMONITOR_STORE_REDIS_CMD_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_STORE_REDIS_CMD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>

#include "ngx_http_amonitor_kept.h"


typedef struct ngx_http_amonitor_redis_s     ngx_http_amonitor_redis_t;
typedef struct ngx_http_amonitor_redis_cmd_s ngx_http_amonitor_redis_cmd_t;


/* reply is NULL when the connection went away before the answer */
typedef void (*ngx_http_amonitor_redis_reply_pt)(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);


/* a Lua script, called by its SHA1 (store_redis_eval.c) */
typedef struct {
    ngx_str_t text;
    u_char    sha[40]; /* hex */
    unsigned  again_at_exit : 1; /* may run twice: see redis_eval_exit */
} ngx_http_amonitor_redis_script_t;


/* one command sent and not answered yet; ctx->sent keeps them in order */
struct ngx_http_amonitor_redis_cmd_s {
    ngx_queue_t                      queue;
    ngx_msec_t                       deadline;
    ngx_http_amonitor_redis_t       *ctx;
    ngx_http_amonitor_redis_reply_pt handler;
    void                            *data;
    const char                      *name; /* for the log */

    /*
     * A script's call: "again" may send it once more instead of handing
     * the reply over (NGX_OK: sent again, the handler waits).
     */
    ngx_int_t (*again)(ngx_http_amonitor_redis_cmd_t *cmd, redisReply *r);
    ngx_http_amonitor_redis_script_t *script;
    u_char                           *rest; /* keys and arguments, RESP */
    size_t                            rest_len;
    ngx_uint_t                        argc;
    ngx_uint_t                        nkeys;
    size_t                            cap; /* bytes after the record */
};


/* records kept for use again, one list per connection */
typedef struct {
    ngx_http_amonitor_kept_t kept;
} ngx_http_amonitor_redis_cmds_t;


ngx_http_amonitor_redis_cmd_t *ngx_http_amonitor_redis_cmd_new(
    ngx_http_amonitor_redis_cmds_t *cmds, ngx_log_t *log,
    ngx_http_amonitor_redis_reply_pt handler, void *data, const char *name,
    size_t size);
void ngx_http_amonitor_redis_cmd_free(
    ngx_http_amonitor_redis_cmds_t *cmds, ngx_http_amonitor_redis_cmd_t *cmd);
void ngx_http_amonitor_redis_cmds_exit(ngx_http_amonitor_redis_cmds_t *cmds);

/* the handler of a command whose reply nobody needs */
void ngx_http_amonitor_redis_ignore(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);


#endif /* _NGX_HTTP_AMONITOR_STORE_REDIS_CMD_H_INCLUDED_ */
