/*
 * Copyright (C) AMonitor authors
 *
 * The store interface: the dedupe table and the registry of learned
 * targets behind one small vtable, so that the shared memory backend and
 * a Redis backend fit the router alike.  Calls may complete
 * inline (NGX_OK, results in the out arguments) or later (NGX_AGAIN, then
 * the handler runs from the event loop); shm always completes inline.
 */

#ifndef _NGX_HTTP_AMONITOR_STORE_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_amonitor.h"


typedef enum {
    NGX_HTTP_AMONITOR_CLAIM_NEW = 0, /* first arrival: forward it */
    NGX_HTTP_AMONITOR_CLAIM_PENDING, /* seen, outcome not known yet */
    NGX_HTTP_AMONITOR_CLAIM_DONE, /* seen, ack result stored */
    NGX_HTTP_AMONITOR_CLAIM_FAILED, /* seen, ended in an error */
    NGX_HTTP_AMONITOR_CLAIM_ERROR /* the store failed (async only) */
} ngx_http_amonitor_claim_e;


/*
 * "result" is a JSON object text (the SDK's ack result or the error) of at
 * most NGX_HTTP_AMONITOR_RESULT_MAX bytes, copied into the caller's buffer.
 */
/* a target learned at run time, as kept in the zone */
typedef struct {
    u_short id_len;
    u_short url_len;
    u_char  id[256];
    u_char  url[512];
} ngx_http_amonitor_reg_t;


typedef void (*ngx_http_amonitor_claim_pt)(
    void *data, ngx_http_amonitor_claim_e state, ngx_str_t *result);


struct ngx_http_amonitor_store_s {
    /*
     * Claim "msg_id" atomically.  Returns NGX_OK with *state and "result"
     * filled in, NGX_AGAIN when "handler" will be called later, or
     * NGX_ERROR (the caller answers INTERNAL).
     */
    ngx_int_t (*claim)(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
        ngx_http_amonitor_claim_e *state, ngx_str_t *result,
        ngx_http_amonitor_claim_pt handler, void *data);

    /* record the outcome (DONE or FAILED) with its result */
    void (*finish)(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
        ngx_http_amonitor_claim_e state, ngx_str_t *result);

    /*
     * What is known of "msg_id", claiming nothing: NGX_OK with *state
     * (NEW: nothing) and "result" filled in, inline; NGX_ERROR when the
     * store cannot tell now.  NULL: the backend cannot answer queries.
     */
    ngx_int_t (*query)(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
        ngx_http_amonitor_claim_e *state, ngx_str_t *result);

    /* forget a claim whose action never reached the SDK */
    void (*release)(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id);

    /*
     * The registry of targets learned at run time, shared by the workers:
     * add one (NGX_OK, or NGX_DECLINED when full), and copy all of them
     * into "out" (room for NGX_HTTP_AMONITOR_MAX_DYNAMIC) when the
     * generation differs from *gen; returns how many were copied.
     */
    ngx_int_t (*learn)(
        ngx_http_amonitor_store_t *st, ngx_str_t *id, ngx_str_t *url);
    ngx_uint_t (*learned)(ngx_http_amonitor_store_t *st,
        ngx_http_amonitor_reg_t *out, ngx_uint_t *gen);

    ngx_shm_zone_t *zone; /* amonitor_zone, whatever the backend */
    void           *data;
};


ngx_int_t ngx_http_amonitor_store_shm_init_zone(
    ngx_shm_zone_t *shm_zone, void *data);
ngx_http_amonitor_store_t *ngx_http_amonitor_store_shm_create(
    ngx_shm_zone_t *shm_zone, ngx_pool_t *pool, ngx_msec_t ttl);
void *ngx_http_amonitor_store_shm_counters(ngx_shm_zone_t *shm_zone);

ngx_http_amonitor_store_t *ngx_http_amonitor_store_redis_create(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_redis_conf_t *conf);
void ngx_http_amonitor_store_redis_exit(ngx_http_amonitor_store_t *st);

ngx_int_t ngx_http_amonitor_registry_add(
    ngx_http_amonitor_store_t *st, ngx_str_t *id, ngx_str_t *url);
ngx_uint_t ngx_http_amonitor_registry_snapshot(ngx_http_amonitor_store_t *st,
    ngx_http_amonitor_reg_t *out, ngx_uint_t *gen);


#endif /* _NGX_HTTP_AMONITOR_STORE_H_INCLUDED_ */
