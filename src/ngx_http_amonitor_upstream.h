/*
 * Copyright (C) AMonitor authors
 *
 * What upstream.c (creating targets, their list, the registry reconcile)
 * takes from upstream_io.c (one connection: connect, handshake, open
 * connection, backoff).  upstream_io.c calls nothing in upstream.c.
 */

#ifndef _NGX_HTTP_AMONITOR_UPSTREAM_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_UPSTREAM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_amonitor.h"


void ngx_http_amonitor_upstream_connect(ngx_http_amonitor_upstream_t *u);
void ngx_http_amonitor_upstream_reconnect_handler(ngx_event_t *ev);
void ngx_http_amonitor_upstream_message(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t opcode, u_char *data, size_t len);
void ngx_http_amonitor_upstream_on_close(ngx_http_amonitor_conn_t *wc);
void ngx_http_amonitor_upstream_fail(ngx_http_amonitor_upstream_t *u);

/* upstream_log.c: what one target's attempts say, once per outage */
void ngx_http_amonitor_upstream_log_failure(
    ngx_http_amonitor_upstream_t *u, ngx_err_t err, const char *fmt, ...);
void ngx_http_amonitor_upstream_log_up(ngx_http_amonitor_upstream_t *u);
void ngx_http_amonitor_upstream_log_starved(
    ngx_http_amonitor_upstream_t *u, ngx_uint_t spent);
void    ngx_http_amonitor_upstream_log_close(ngx_http_amonitor_upstream_t *u);
u_char *ngx_http_amonitor_upstream_log_error(
    ngx_log_t *log, u_char *buf, size_t len);

/* upstream_ssl.c: the TLS leg of one attempt, below upstream_io.c */
typedef void (*ngx_http_amonitor_ssl_done_pt)(
    ngx_http_amonitor_upstream_t *u, ngx_int_t rc);

void ngx_http_amonitor_upstream_ssl_start(
    ngx_http_amonitor_upstream_t *u, ngx_http_amonitor_ssl_done_pt done);
void ngx_http_amonitor_upstream_ssl_close(ngx_connection_t *c);
void ngx_http_amonitor_upstream_ssl_log_done(ngx_http_amonitor_upstream_t *u);


#endif /* _NGX_HTTP_AMONITOR_UPSTREAM_H_INCLUDED_ */
