/*
 * Copyright (C) AMonitor authors
 *
 * fanout.c: a shared frame to the panels that take everything and to the
 * subscribers of its target, converted once for panels of the other
 * encoding; a new panel's snapshot, and the filter that keeps a live
 * frame from repeating what the snapshot told.  Called by the router
 * (and the snapshot by the panel); calls only subscribe, reply and conn.
 */

#ifndef _NGX_HTTP_AMONITOR_FANOUT_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_FANOUT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_amonitor.h"


/* a live frame about a target, as the snapshot filter sees it */
typedef struct {
    ngx_str_t *target;
    uint32_t   target_hash;
    ngx_uint_t heartbeat; /* else a target_status */
    uint32_t   value; /* heartbeat msg_id hash, or 1 for up */
} ngx_http_amonitor_live_t;


void ngx_http_amonitor_fanout_broadcast(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_msg_t *msg, ngx_uint_t opcode,
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env, u_char *data,
    size_t len, ngx_http_amonitor_live_t *live);


#endif /* _NGX_HTTP_AMONITOR_FANOUT_H_INCLUDED_ */
