/*
 * Copyright (C) AMonitor authors
 *
 * The records of Redis commands.  A claim and its finish are two
 * commands per action: records with room for a usual call (a script's
 * call with its key and arguments) are kept for use again, up to 256 per
 * connection, so that they cost no malloc and free each.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_amonitor_store_redis_cmd.h"


#define NGX_HTTP_AMONITOR_REDIS_CMD_CAP   384 /* a kept record's room */
#define NGX_HTTP_AMONITOR_REDIS_FREE_CMDS 256


/* a command's record, with "size" bytes after it for the caller */
ngx_http_amonitor_redis_cmd_t *
ngx_http_amonitor_redis_cmd_new(ngx_http_amonitor_redis_cmds_t *cmds,
    ngx_log_t *log, ngx_http_amonitor_redis_reply_pt handler, void *data,
    const char *name, size_t size)
{
    size_t                         cap;
    ngx_http_amonitor_redis_cmd_t *cmd;

    cmd = (size <= NGX_HTTP_AMONITOR_REDIS_CMD_CAP)
        ? ngx_http_amonitor_kept_get(&cmds->kept)
        : NULL;

    if (cmd != NULL) {
        cap = NGX_HTTP_AMONITOR_REDIS_CMD_CAP;

    } else {
        cap = ngx_max(size, NGX_HTTP_AMONITOR_REDIS_CMD_CAP);
        cmd = ngx_alloc(sizeof(ngx_http_amonitor_redis_cmd_t) + cap, log);
        if (cmd == NULL) {
            return NULL;
        }
    }

    ngx_memzero(cmd, sizeof(ngx_http_amonitor_redis_cmd_t));

    cmd->handler = handler;
    cmd->data = data;
    cmd->name = name;
    cmd->cap = cap;

    return cmd;
}


void
ngx_http_amonitor_redis_cmd_free(
    ngx_http_amonitor_redis_cmds_t *cmds, ngx_http_amonitor_redis_cmd_t *cmd)
{
    if (cmd->cap == NGX_HTTP_AMONITOR_REDIS_CMD_CAP) {
        ngx_http_amonitor_kept_put(
            &cmds->kept, cmd, NGX_HTTP_AMONITOR_REDIS_FREE_CMDS);
        return;
    }

    ngx_free(cmd);
}


/* the connection is gone for good: free what was kept, keep no more */
void
ngx_http_amonitor_redis_cmds_exit(ngx_http_amonitor_redis_cmds_t *cmds)
{
    ngx_http_amonitor_kept_exit(&cmds->kept);
}


void
ngx_http_amonitor_redis_ignore(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply)
{
}
