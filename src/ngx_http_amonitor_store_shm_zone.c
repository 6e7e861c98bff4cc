/*
 * Copyright (C) AMonitor authors
 *
 * The shared memory zone's setup: made once, kept across reloads (a
 * reload may not resize it, and a zone of another version of the module
 * is refused), and what other files read of it: the counters' slots,
 * the target state, the registry.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor_store_shm.h"


static ngx_uint_t ngx_http_amonitor_shm_resized(ngx_shm_zone_t *shm_zone);


/* a reload that changes the size of a running zone (same name and tag) */
static ngx_uint_t
ngx_http_amonitor_shm_resized(ngx_shm_zone_t *shm_zone)
{
    ngx_uint_t       i;
    ngx_shm_zone_t  *oz;
    ngx_list_part_t *part;

    if (ngx_cycle == NULL || ngx_cycle->shared_memory.part.elts == NULL) {
        return 0;
    }

    part = (ngx_list_part_t *) &ngx_cycle->shared_memory.part;
    oz = part->elts;

    for (i = 0; /* void */; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                return 0;
            }

            part = part->next;
            oz = part->elts;
            i = 0;
        }

        if (oz[i].tag == shm_zone->tag
            && oz[i].shm.name.len == shm_zone->shm.name.len
            && ngx_strncmp(oz[i].shm.name.data, shm_zone->shm.name.data,
                   shm_zone->shm.name.len)
                == 0) {
            return oz[i].shm.size != shm_zone->shm.size;
        }
    }
}


ngx_int_t
ngx_http_amonitor_store_shm_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_amonitor_shctx_t *octx = data;

    size_t                     len;
    ngx_uint_t                 n;
    ngx_slab_pool_t           *shpool;
    ngx_http_amonitor_shctx_t *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (octx) {
        /* reload: keep the dedupe state of the running zone */
        if (octx->magic != NGX_HTTP_AMONITOR_ZONE_MAGIC) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                "amonitor zone \"%V\" was made by an incompatible "
                "version of the module",
                &shm_zone->shm.name);
            return NGX_ERROR;
        }

        shm_zone->data = octx;
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    if (ngx_http_amonitor_shm_resized(shm_zone)) {
        /* nginx would make a new, empty zone: refuse rather than forget */
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
            "the size of amonitor zone \"%V\" cannot change on reload: "
            "the dedupe state would be lost; keep the old size, or restart "
            "nginx to resize it",
            &shm_zone->shm.name);
        return NGX_ERROR;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_amonitor_shctx_t));
    if (sh == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
            "amonitor zone \"%V\" is too small", &shm_zone->shm.name);
        return NGX_ERROR;
    }

    sh->magic = NGX_HTTP_AMONITOR_ZONE_MAGIC;

    if (amon_hash_key_random(&sh->shared.hash_key) != 0) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, ngx_errno,
            "amonitor zone \"%V\": getrandom() failed", &shm_zone->shm.name);
        return NGX_ERROR;
    }

    shpool->data = sh;
    shm_zone->data = sh;

    for (n = 64; n < 2 * (shm_zone->shm.size / NGX_HTTP_AMONITOR_NODE_MIN);
         n <<= 1) { /* void */
    }

    sh->slots = ngx_slab_calloc(shpool, n * sizeof(uint64_t));
    sh->mask = n - 1;
    ngx_queue_init(&sh->lru);
    ngx_queue_init(&sh->pending);

    if (sh->slots == NULL
        || ngx_http_amonitor_registry_init(
               &sh->registry, shpool, shm_zone->shm.size)
            != NGX_OK) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
            "amonitor zone \"%V\" is too small", &shm_zone->shm.name);
        return NGX_ERROR;
    }

    len = sizeof(" in amonitor zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(
        shpool->log_ctx, " in amonitor zone \"%V\"%Z", &shm_zone->shm.name);

    shpool->log_nomem = 0;

    return NGX_OK;
}


/* the counters' slots, one per worker (store_state.c reads them) */
ngx_http_amonitor_counter_slot_t *
ngx_http_amonitor_store_shm_counter_slots(ngx_shm_zone_t *shm_zone)
{
    ngx_http_amonitor_shctx_t *sh = shm_zone->data;

    return sh->counters;
}


ngx_http_amonitor_shared_t *
ngx_http_amonitor_store_shm_shared(ngx_shm_zone_t *shm_zone)
{
    ngx_http_amonitor_shctx_t *sh = shm_zone->data;

    return &sh->shared;
}


ngx_http_amonitor_registry_t *
ngx_http_amonitor_store_shm_registry(ngx_shm_zone_t *shm_zone)
{
    ngx_http_amonitor_shctx_t *sh = shm_zone->data;

    return &sh->registry;
}
