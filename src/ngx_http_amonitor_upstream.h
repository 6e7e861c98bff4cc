/*
 * Copyright (C) AMonitor authors
 *
 * What upstream.c (targets, connect, backoff, reconcile) and
 * upstream_hs.c (the handshake and the open connection) share.
 */

#ifndef _NGX_HTTP_AMONITOR_UPSTREAM_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_UPSTREAM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_amonitor.h"


void ngx_http_amonitor_upstream_hs_write(ngx_event_t *wev);
void ngx_http_amonitor_upstream_hs_read(ngx_event_t *rev);
void ngx_http_amonitor_upstream_message(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t opcode, u_char *data, size_t len);
void ngx_http_amonitor_upstream_on_close(ngx_http_amonitor_conn_t *wc);
void ngx_http_amonitor_upstream_fail(ngx_http_amonitor_upstream_t *u);


#endif /* _NGX_HTTP_AMONITOR_UPSTREAM_H_INCLUDED_ */
