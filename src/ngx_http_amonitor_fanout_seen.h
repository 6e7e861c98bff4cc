/*
 * Copyright (C) AMonitor authors
 *
 * The snapshot filter of a panel (fanout_seen.c).  Called by fanout.c.
 */

#ifndef _NGX_HTTP_AMONITOR_FANOUT_SEEN_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_FANOUT_SEEN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_fanout.h"


/*
 * What a panel's snapshot told it about one target that a live frame of
 * this worker may still repeat: the heartbeat when this worker has not
 * fanned it out yet, the state when this worker's own connection does
 * not agree with it yet (see fanout_snapshot_one).
 */
typedef struct {
    uint32_t target; /* hash of the target's name, | 1; 0: a free slot */
    uint32_t hb; /* hash of the heartbeat's msg_id */
    u_char   hb_pending;
    u_char   state_pending;
    u_char   up;
} ngx_http_amonitor_seen_t;


/*
 * The snapshot filter of one panel (wc->seen): open addressing with
 * linear probing, keyed by the hash of the target's name, a power of two
 * of slots at most half used, so a live frame costs one probe or two
 * whatever the number of targets.  It ends (freed) when every entry was matched, or
 * when "ev" fires: amonitor_reconnect's max + amonitor_connect_timeout
 * after the snapshot, by which time this worker has received the
 * heartbeat the snapshot told (heartbeats reach every worker within
 * moments) and its connection, down or connecting at the snapshot, has
 * made its next attempt.  A frame that comes later still is told again:
 * a repeat, never a loss.
 */
typedef struct {
    ngx_event_t               ev;
    ngx_http_amonitor_seen_t *slot;
    ngx_uint_t                mask; /* slots - 1 */
    ngx_uint_t                used; /* slots */
    ngx_uint_t                unseen; /* frames still to match */
} ngx_http_amonitor_seen_tab_t;


ngx_uint_t ngx_http_amonitor_seen_match(
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_live_t *live);
ngx_http_amonitor_seen_t *ngx_http_amonitor_seen_add(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *wc,
    uint32_t target);
void ngx_http_amonitor_seen_end(ngx_http_amonitor_conn_t *wc);


#endif /* _NGX_HTTP_AMONITOR_FANOUT_SEEN_H_INCLUDED_ */
