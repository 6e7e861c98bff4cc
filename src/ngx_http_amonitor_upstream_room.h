/*
 * Copyright (C) AMonitor authors
 *
 * Whether a worker has room to dial an SDK: upstream_io.c asks before
 * each attempt, upstream_log.c says what ran short.
 */

#ifndef _NGX_HTTP_AMONITOR_UPSTREAM_ROOM_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_UPSTREAM_ROOM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_amonitor.h"


/* connections and descriptors a worker keeps free of dials */
#define NGX_HTTP_AMONITOR_DIAL_RESERVE 16

/* what stops a dial: nothing, worker_connections, descriptors */
#define NGX_HTTP_AMONITOR_ROOM    0
#define NGX_HTTP_AMONITOR_NO_CONN 1
#define NGX_HTTP_AMONITOR_NO_FD   2


/*
 * Dials leave NGX_HTTP_AMONITOR_DIAL_RESERVE connections of the worker
 * free, and as many descriptors below RLIMIT_NOFILE (the dial's own
 * counted; worker.c counts fd_base): for the worker's channel to the
 * master (taken after the modules' init_process: without it the worker
 * exits and is not respawned) and for panels, which nginx could not
 * accept otherwise.
 */
static ngx_inline ngx_uint_t
ngx_http_amonitor_upstream_dial_room(ngx_http_amonitor_worker_t *w)
{
    ngx_uint_t used;

    if (ngx_cycle->free_connection_n < NGX_HTTP_AMONITOR_DIAL_RESERVE) {
        return NGX_HTTP_AMONITOR_NO_CONN;
    }

    used = ngx_cycle->connection_n - ngx_cycle->free_connection_n;

    if (w->nofile
        && used + w->fd_base + NGX_HTTP_AMONITOR_DIAL_RESERVE >= w->nofile) {
        return NGX_HTTP_AMONITOR_NO_FD;
    }

    return NGX_HTTP_AMONITOR_ROOM;
}


#endif /* _NGX_HTTP_AMONITOR_UPSTREAM_ROOM_H_INCLUDED_ */
