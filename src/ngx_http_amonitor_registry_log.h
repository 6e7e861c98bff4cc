/*
 * Copyright (C) AMonitor authors
 *
 * The change log the workers follow (registry_log.c), and what it and
 * registry.c (the entries, their indexes and queues, above it) both need:
 * the layout of an entry and finding one by id.  Nothing else includes
 * it.
 */

#ifndef _NGX_HTTP_AMONITOR_REGISTRY_LOG_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_REGISTRY_LOG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"


#define ngx_http_amonitor_registry_now() \
    ((uint64_t) ngx_cached_time->sec * 1000 + ngx_cached_time->msec)

#define ngx_http_amonitor_reg_url(reg) ((reg)->data + (reg)->id_len)


/* under the zone's mutex */
void ngx_http_amonitor_registry_record(
    ngx_http_amonitor_store_t *st, ngx_http_amonitor_reg_t *reg);
void ngx_http_amonitor_registry_remove(
    ngx_http_amonitor_store_t *st, ngx_http_amonitor_reg_t *reg);

/* the entry of "id" (both files look entries up by id) */
static ngx_inline ngx_http_amonitor_reg_t *
ngx_http_amonitor_registry_find(ngx_http_amonitor_registry_t *rg, ngx_str_t *id)
{
    uint32_t                 hash;
    ngx_http_amonitor_reg_t *reg;

    hash = ngx_http_amonitor_hash(id->data, id->len);

    for (reg = rg->by_id[hash & rg->mask]; reg; reg = reg->id_next) {
        if (reg->id_hash == hash
            && ngx_memn2cmp(reg->data, id->data, reg->id_len, id->len) == 0) {
            return reg;
        }
    }

    return NULL;
}


ngx_int_t ngx_http_amonitor_registry_changes(ngx_http_amonitor_store_t *st,
    ngx_uint_t *seq, ngx_uint_t *synced, ngx_array_t *out);


#endif /* _NGX_HTTP_AMONITOR_REGISTRY_LOG_H_INCLUDED_ */
