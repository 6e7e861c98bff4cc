/*
 * Copyright (C) AMonitor authors
 *
 * The registry's change log: a ring of the entries changes touched, so
 * that a worker reads what changed since it last looked rather than the
 * whole registry, and the whole registry once when it fell further
 * behind than the ring (or has never looked).  An entry removed from the
 * registry stays readable while a record names it.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"
#include "ngx_http_amonitor_registry_log.h"


/* buckets of the index, or records, copied per hold of the mutex */
#define NGX_HTTP_AMONITOR_REG_BATCH 256


static ngx_int_t ngx_http_amonitor_registry_whole(ngx_http_amonitor_store_t *st,
    ngx_array_t *out, ngx_uint_t *from, ngx_uint_t once);
static ngx_int_t ngx_http_amonitor_registry_since(
    ngx_http_amonitor_store_t *st, ngx_array_t *out, ngx_uint_t *from);
static ngx_int_t ngx_http_amonitor_registry_copy(ngx_array_t *out,
    ngx_http_amonitor_reg_t *reg, ngx_http_amonitor_reg_t *now);


/*
 * Under the mutex: "reg" was added, removed or changed its kind.  The
 * record it overwrites lets go of its entry, freed when it was removed
 * and no record names it any more.
 */
void
ngx_http_amonitor_registry_record(
    ngx_http_amonitor_store_t *st, ngx_http_amonitor_reg_t *reg)
{
    ngx_uint_t                    slot;
    ngx_http_amonitor_reg_t      *old;
    ngx_http_amonitor_registry_t *rg;

    rg = st->registry;
    slot = rg->seq % NGX_HTTP_AMONITOR_REG_LOG;
    old = rg->log[slot];

    /* first the new reference: "old" may be "reg" */
    reg->refs++;
    rg->log[slot] = reg;

    if (old != NULL && --old->refs == 0 && !old->live) {
        ngx_http_amonitor_store_zone_free(st, old);
    }

    /* readers compare it without the mutex: the record is written first */
    ngx_memory_barrier();
    rg->seq++;
}


/*
 * What changed since record *seq: for each record, the entry now in the
 * registry under its id (or none), copied into "out" under the mutex.
 * The copies live in "out"'s pool: ngx_palloc() mostly moves a pointer.
 * The mutex (the dedupe table's too) is held for at most
 * NGX_HTTP_AMONITOR_REG_BATCH records, or buckets of the index when the
 * worker reads the registry whole (it never looked, or fell further
 * behind than the ring): NGX_DONE then.
 */
ngx_int_t
ngx_http_amonitor_registry_changes(ngx_http_amonitor_store_t *st,
    ngx_uint_t *seq, ngx_uint_t *synced, ngx_array_t *out)
{
    ngx_int_t                     rc;
    ngx_uint_t                    from, whole, tries;
    ngx_http_amonitor_registry_t *rg;

    rg = st->registry;

    if (*synced && *seq == rg->seq) {
        return NGX_DECLINED;
    }

    from = *seq;
    whole = !*synced || rg->seq - from > NGX_HTTP_AMONITOR_REG_LOG;

    for (tries = 0; /* void */; tries++) {
        if (whole) {
            out->nelts = 0;

            /*
             * What changes during the read is in the log from "from" on;
             * after the ring lapped the reader twice, the registry is
             * read in one hold.
             */
            if (ngx_http_amonitor_registry_whole(st, out, &from, tries >= 2)
                != NGX_OK) {
                return NGX_ERROR;
            }
        }

        rc = ngx_http_amonitor_registry_since(st, out, &from);

        if (rc == NGX_OK) {
            *seq = from;
            *synced = 1;
            return whole ? NGX_DONE : NGX_OK;
        }

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        /* NGX_DECLINED: the ring overwrote a record not read yet */
        whole = 1;
    }
}


/*
 * Copy every entry, NGX_HTTP_AMONITOR_REG_BATCH buckets of the index by
 * id per hold of the mutex (or all in one: "once"), and the sequence
 * number at the start into *from: the buckets stay for the zone's life.
 */
static ngx_int_t
ngx_http_amonitor_registry_whole(ngx_http_amonitor_store_t *st,
    ngx_array_t *out, ngx_uint_t *from, ngx_uint_t once)
{
    ngx_uint_t                    b, last, n;
    ngx_slab_pool_t              *shpool;
    ngx_http_amonitor_reg_t      *reg;
    ngx_http_amonitor_registry_t *rg;

    rg = st->registry;
    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;
    n = rg->mask + 1;

    for (b = 0; b < n; b = last) {
        last = once ? n : ngx_min(n, b + NGX_HTTP_AMONITOR_REG_BATCH);

        ngx_shmtx_lock(&shpool->mutex);

        if (b == 0) {
            *from = rg->seq;
        }

        for (/* void */; b < last; b++) {
            for (reg = rg->by_id[b]; reg; reg = reg->id_next) {
                if (ngx_http_amonitor_registry_copy(out, reg, reg) != NGX_OK) {
                    ngx_shmtx_unlock(&shpool->mutex);
                    return NGX_ERROR;
                }
            }
        }

        ngx_shmtx_unlock(&shpool->mutex);
    }

    return NGX_OK;
}


/*
 * Copy the records from *from on, NGX_HTTP_AMONITOR_REG_BATCH per hold of
 * the mutex, until none is left (*from is then the sequence number), or
 * NGX_DECLINED when the ring overwrote one not copied yet.
 */
static ngx_int_t
ngx_http_amonitor_registry_since(
    ngx_http_amonitor_store_t *st, ngx_array_t *out, ngx_uint_t *from)
{
    ngx_int_t                     rc;
    ngx_str_t                     id;
    ngx_uint_t                    s, k;
    ngx_slab_pool_t              *shpool;
    ngx_http_amonitor_reg_t      *reg, *now;
    ngx_http_amonitor_registry_t *rg;

    rg = st->registry;
    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;
    s = *from;

    for (;;) {
        rc = NGX_OK;

        ngx_shmtx_lock(&shpool->mutex);

        if (rg->seq - s > NGX_HTTP_AMONITOR_REG_LOG) {
            rc = NGX_DECLINED;
        }

        for (k = 0;
             rc == NGX_OK && s != rg->seq && k < NGX_HTTP_AMONITOR_REG_BATCH;
             s++, k++) {
            reg = rg->log[s % NGX_HTTP_AMONITOR_REG_LOG];
            now = reg;

            if (!reg->live) {
                id.data = reg->data;
                id.len = reg->id_len;
                now = ngx_http_amonitor_registry_find(rg, &id);
            }

            if (ngx_http_amonitor_registry_copy(out, reg, now) != NGX_OK) {
                rc = NGX_ERROR;
            }
        }

        if (rc == NGX_OK && s == rg->seq) {
            rc = NGX_DONE;
        }

        ngx_shmtx_unlock(&shpool->mutex);

        if (rc != NGX_OK) {
            break;
        }
    }

    if (rc != NGX_DONE) {
        return rc;
    }

    *from = s;

    return NGX_OK;
}


/* the id of "reg", with the URL and kind of "now" (NULL: gone) */
static ngx_int_t
ngx_http_amonitor_registry_copy(ngx_array_t *out, ngx_http_amonitor_reg_t *reg,
    ngx_http_amonitor_reg_t *now)
{
    size_t                          len;
    u_char                         *p;
    ngx_http_amonitor_reg_change_t *ch;

    len = reg->id_len + (now ? now->url_len : 0);

    ch = ngx_array_push(out);
    p = ngx_pnalloc(out->pool, len ? len : 1);

    if (ch == NULL || p == NULL) {
        return NGX_ERROR;
    }

    ch->id.data = p;
    ch->id.len = reg->id_len;
    p = ngx_cpymem(p, reg->data, reg->id_len);

    ch->url.data = p;
    ch->url.len = 0;
    ch->kind = 0;

    if (now != NULL) {
        ngx_memcpy(p, ngx_http_amonitor_reg_url(now), now->url_len);
        ch->url.len = now->url_len;
        ch->kind = now->kind;
    }

    return NGX_OK;
}
