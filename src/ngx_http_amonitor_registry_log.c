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
        ngx_slab_free_locked((ngx_slab_pool_t *) st->zone->shm.addr, old);
    }

    /* readers compare it without the mutex: the record is written first */
    ngx_memory_barrier();
    rg->seq++;
}


/*
 * What changed since record *seq: for each record, the entry now in the
 * registry under its id (or none), copied into "out" under the mutex.
 * The copies live in "out"'s pool: ngx_palloc() mostly moves a pointer,
 * and the lock is held for at most NGX_HTTP_AMONITOR_REG_LOG records or,
 * resyncing, one walk of the entries.
 */
ngx_int_t
ngx_http_amonitor_registry_changes(ngx_http_amonitor_store_t *st,
    ngx_uint_t *seq, ngx_uint_t *synced, ngx_array_t *out)
{
    ngx_int_t                     rc;
    ngx_uint_t                    s, k;
    ngx_queue_t                  *queue, *q;
    ngx_slab_pool_t              *shpool;
    ngx_http_amonitor_reg_t      *reg, *now;
    ngx_http_amonitor_registry_t *rg;
    ngx_str_t                     id;

    rg = st->registry;

    if (*synced && *seq == rg->seq) {
        return NGX_DECLINED;
    }

    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;
    rc = NGX_OK;

    ngx_shmtx_lock(&shpool->mutex);

    if (!*synced || rg->seq - *seq > NGX_HTTP_AMONITOR_REG_LOG) {
        rc = NGX_DONE;

        for (k = 0; k < 2 && rc == NGX_DONE; k++) {
            queue = k ? &rg->registered : &rg->dialed;

            for (q = ngx_queue_head(queue); q != ngx_queue_sentinel(queue);
                 q = ngx_queue_next(q)) {
                reg = ngx_queue_data(q, ngx_http_amonitor_reg_t, queue);

                if (ngx_http_amonitor_registry_copy(out, reg, reg) != NGX_OK) {
                    rc = NGX_ERROR;
                    break;
                }
            }
        }

    } else {
        for (s = *seq; s != rg->seq; s++) {
            reg = rg->log[s % NGX_HTTP_AMONITOR_REG_LOG];
            now = reg;

            if (!reg->live) {
                id.data = reg->data;
                id.len = reg->id_len;
                now = ngx_http_amonitor_registry_find(rg, &id);
            }

            if (ngx_http_amonitor_registry_copy(out, reg, now) != NGX_OK) {
                rc = NGX_ERROR;
                break;
            }
        }
    }

    if (rc != NGX_ERROR) {
        *seq = rg->seq;
        *synced = 1;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
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
