/*
 * Copyright (C) AMonitor authors
 *
 * amonitor_connection_buffer_limit: the bytes one connection may make the
 * agent hold (frames queued and not yet written, plus the message being
 * reassembled).  A panel over it is closed with 1008; an SDK's queue
 * refuses the frame (the action fails) and the SDK stays connected.  A
 * panel's actions whose frames wait (their claim, their SDK's
 * connection) count with them: an action past it is refused.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_amonitor_conn.h"


/* queued and not written yet, and the message being reassembled */
static size_t
ngx_http_amonitor_conn_held(ngx_http_amonitor_conn_t *wc)
{
    return (size_t) (wc->queued_bytes - wc->sent_bytes)
        + wc->session.message.cap;
}


/*
 * A panel's action keeps its frame until it is queued for the SDK (its
 * claim, a connection being made, an owner in the cluster): NGX_OK and
 * counted in actions_held when "len" more bytes fit with what the panel
 * holds, NGX_DECLINED (the action is refused, RATE_LIMITED) when they do
 * not.  conn_over() leaves actions_held out: a panel that reads is not
 * closed because its actions wait, so the two together stay under twice
 * the limit.
 */
ngx_int_t
ngx_http_amonitor_conn_hold(ngx_http_amonitor_conn_t *wc, size_t len)
{
    if (wc->frames->buffer_limit
        && ngx_http_amonitor_conn_held(wc) + wc->actions_held + len
            > wc->frames->buffer_limit) {
        return NGX_DECLINED;
    }

    wc->actions_held += len;

    return NGX_OK;
}


/*
 * NGX_OK: "len" more bytes fit; NGX_DECLINED: they do not; NGX_ABORT:
 * they do not and the panel is to be closed with 1008 (logged, counted).
 * Calls nothing in conn.c, which calls it.
 */
ngx_int_t
ngx_http_amonitor_conn_over(
    ngx_http_amonitor_conn_t *wc, size_t len, ngx_uint_t priority)
{
    size_t held;

    if (wc->frames->buffer_limit == 0) {
        return NGX_OK;
    }

    if (wc->over) {
        /* closing over the limit: only its close frame may still go */
        return priority ? NGX_OK : NGX_DECLINED;
    }

    held = ngx_http_amonitor_conn_held(wc);

    if (held + len <= wc->frames->buffer_limit) {
        return NGX_OK;
    }

    if (wc->client) {
        /* an SDK that reads slowly is not closed for what panels send */
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_INFO, wc->connection->log, 0,
        "amonitor: panel #%ui closed: it does not read, %uz bytes held "
        "and %uz more would pass amonitor_connection_buffer_limit %uz",
        wc->id, held, len, wc->frames->buffer_limit);

    if (wc->frames->oversize) {
        (void) ngx_atomic_fetch_add(wc->frames->oversize, 1);
    }

    /* the caller closes it (1008) */
    return NGX_ABORT;
}
