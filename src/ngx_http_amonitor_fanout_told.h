/*
 * Copyright (C) AMonitor authors
 *
 * What new panels' snapshots tell about each target, built once for all
 * of them (fanout_told.c).  Called by fanout.c and worker.c.
 */

#ifndef _NGX_HTTP_AMONITOR_FANOUT_TOLD_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_FANOUT_TOLD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"


/* a record found by its id, not by its place: not kept in the cache */
#define NGX_HTTP_AMONITOR_TOLD_NONE ((ngx_uint_t) -1)


ngx_int_t ngx_http_amonitor_told(ngx_http_amonitor_worker_t *w, ngx_uint_t i,
    ngx_http_amonitor_tsnap_t *snap, ngx_http_amonitor_upstream_t **u,
    ngx_str_t *out);
void      ngx_http_amonitor_told_free(ngx_http_amonitor_worker_t *w);


#endif /* _NGX_HTTP_AMONITOR_FANOUT_TOLD_H_INCLUDED_ */
